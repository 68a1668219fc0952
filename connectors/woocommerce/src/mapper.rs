//! How WooCommerce records become journey rows.
//!
//! Orders become [`OrderRow`]s (the rebuild derives their `order` events, so none are emitted here),
//! refunds from the global refunds stream become `refund` feedback events dated by the refund, and
//! registered customers become [`CustomerRow`]s. Products and coupons are kept raw only.
//!
//! Money is parsed from WooCommerce's decimal strings into [`Decimal`] and never passes through `f64`.
//! Attribution comes from WooCommerce's own Order Attribution (WC ≥ 8.5), stored as
//! `_wc_order_attribution_*` order meta — last-session, like GA4's session attribution.

use rust_decimal::Decimal;
use serde_json::{json, Value};

use growthflow_core::channel::{classify, ChannelInput};
use growthflow_core::extract::{text, Fields};
use growthflow_core::model::{CustomerRow, EventRow, JourneyMapper, JourneyRows, OrderRow, Stage};
use growthflow_core::project::Projection::{self, All};
use growthflow_core::Result;

/// WooCommerce's field readers: every decode error starts with "WooCommerce".
const FIELDS: Fields = Fields::new("WooCommerce");

use crate::streams::{gmt_field, id_text};

/// The connector type this mapper belongs to.
pub const SOURCE_TYPE: &str = "woocommerce";

/// Order statuses that are not sales. `cancelled`, `failed` and `trash` never became (or stopped being)
/// a sale; `checkout-draft` is the block checkout's in-progress cart, not an order at all. `refunded`
/// orders *were* sales and stay valid: their refunds are counted as refunds, so that revenue and the
/// refund rate both see them.
pub const CANCELLED_STATUSES: [&str; 4] = ["cancelled", "failed", "trash", "checkout-draft"];

/// The meta-key prefix WooCommerce's Order Attribution uses by default. Sites can change it with the
/// `wc_order_attribution_tracking_field_prefix` filter; such sites' orders map without attribution.
pub const ATTRIBUTION_PREFIX: &str = "_wc_order_attribution_";

/// Maps WooCommerce records into the journey model.
#[derive(Debug, Clone, Copy, Default)]
pub struct WooMapper;

impl JourneyMapper for WooMapper {
    fn source_type(&self) -> &'static str {
        SOURCE_TYPE
    }

    fn map(&self, stream: &str, record: &Value) -> Result<JourneyRows> {
        let mut rows = JourneyRows::default();
        match stream {
            "orders" => rows.orders.push(order_row(record)?),
            "refunds" => rows.events.push(refund_event(record)?),
            "customers" => rows.customers.extend(customer_row(record)?),
            _ => {}
        }
        Ok(rows)
    }

    fn projection(&self, stream: &str) -> Option<&'static Projection> {
        Some(match stream {
            "orders" => &ORDER,
            "refunds" => &REFUND,
            "customers" => &CUSTOMER,
            _ => &Projection::NOTHING,
        })
    }
}

// What `map` reads of each stream's records (see `JourneyMapper::projection`): every leaf it reads
// is kept whole, since the readers print an unreadable value in their error. Keep these in step with
// the functions below; `tests/projection.rs` maps records both ways and fails on any difference.

/// What [`order_row`] reads: an order is ~3–4 KB of JSON, of which this is a few hundred bytes.
const ORDER: Projection = Projection::fields(&[
    ("id", All),
    ("date_created_gmt", All),
    ("total", All),
    ("line_items", Projection::fields(&[("total", All)])),
    ("refunds", Projection::fields(&[("total", All)])),
    ("status", All),
    ("billing", Projection::fields(&[("email", All)])),
    (
        "meta_data",
        Projection::fields(&[("key", All), ("value", All)]),
    ),
    ("currency", All),
    ("discount_total", All),
]);

/// What [`refund_event`] reads.
const REFUND: Projection = Projection::fields(&[
    ("id", All),
    ("date_created_gmt", All),
    ("amount", All),
    ("parent_id", All),
    ("reason", All),
]);

/// What [`customer_row`] reads.
const CUSTOMER: Projection = Projection::fields(&[
    ("id", All),
    ("email", All),
    ("billing", Projection::fields(&[("email", All)])),
    ("date_created_gmt", All),
]);

/// The `_wc_order_attribution_*` values of an order, by the name after the prefix.
#[derive(Debug, Default)]
struct Attribution {
    source_type: Option<String>,
    utm_source: Option<String>,
    utm_medium: Option<String>,
    utm_campaign: Option<String>,
    referrer: Option<String>,
    session_entry: Option<String>,
}

fn attribution(meta: Option<&Value>) -> Attribution {
    let mut a = Attribution::default();
    for entry in meta.and_then(Value::as_array).into_iter().flatten() {
        let Some(name) = entry
            .get("key")
            .and_then(Value::as_str)
            .and_then(|k| k.strip_prefix(ATTRIBUTION_PREFIX))
        else {
            continue;
        };
        let value = text(entry.get("value"));
        let slot = match name {
            "source_type" => &mut a.source_type,
            "utm_source" => &mut a.utm_source,
            "utm_medium" => &mut a.utm_medium,
            "utm_campaign" => &mut a.utm_campaign,
            "referrer" => &mut a.referrer,
            "session_entry" => &mut a.session_entry,
            _ => continue,
        };
        if value.is_some() {
            *slot = value;
        }
    }
    a
}

/// One order as the `orders` table holds it.
pub fn order_row(record: &Value) -> Result<OrderRow> {
    let obj = FIELDS.object(record, "order")?;
    let order_id =
        id_text(obj.get("id")).ok_or_else(|| FIELDS.decode("order", "`id` is missing"))?;
    let what = format!("order {order_id}");
    let created_at = gmt_field(record, "date_created_gmt", &what)?
        .ok_or_else(|| FIELDS.decode(&what, "`date_created_gmt` is missing"))?;
    let total_price = FIELDS.required_money(obj.get("total"), "total", &what)?;

    let subtotal_price = match obj.get("line_items").and_then(Value::as_array) {
        Some(items) => {
            let mut sum = Decimal::ZERO;
            for (i, item) in items.iter().enumerate() {
                let field = format!("line_items[{i}].total");
                sum += FIELDS
                    .money(item.get("total"), &field, &what)?
                    .unwrap_or_default();
            }
            Some(sum)
        }
        None => None,
    };
    // Refund summaries carry negative totals ("-18.36"); `abs` keeps the sum positive whatever the sign
    // convention of the WooCommerce version.
    let mut total_refunded = Decimal::ZERO;
    for (i, refund) in obj
        .get("refunds")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let field = format!("refunds[{i}].total");
        total_refunded += FIELDS
            .money(refund.get("total"), &field, &what)?
            .unwrap_or_default()
            .abs();
    }

    let status = text(obj.get("status"));
    let cancelled = status
        .as_deref()
        .is_some_and(|s| CANCELLED_STATUSES.contains(&s));
    let email = obj.get("billing").and_then(|b| text(b.get("email")));
    let a = attribution(obj.get("meta_data"));
    let channel = classify(&ChannelInput {
        utm_source: a.utm_source.as_deref(),
        utm_medium: a.utm_medium.as_deref(),
        utm_campaign: a.utm_campaign.as_deref(),
        referrer: a.referrer.as_deref(),
        source_type: a.source_type.as_deref(),
    });
    Ok(OrderRow {
        order_id,
        email,
        created_at,
        currency: text(obj.get("currency")),
        total_price,
        subtotal_price,
        total_discounts: FIELDS.money(obj.get("discount_total"), "discount_total", &what)?,
        total_refunded,
        financial_status: status,
        cancelled,
        test: false,
        utm_source: a.utm_source,
        utm_medium: a.utm_medium,
        utm_campaign: a.utm_campaign,
        channel,
        landing_page: a.session_entry,
        referrer: a.referrer,
    })
}

/// One refund from `GET /refunds` as a feedback event, dated by the refund itself (not its order).
pub fn refund_event(record: &Value) -> Result<EventRow> {
    let obj = FIELDS.object(record, "refund")?;
    let id = id_text(obj.get("id")).ok_or_else(|| FIELDS.decode("refund", "`id` is missing"))?;
    let what = format!("refund {id}");
    let at = gmt_field(record, "date_created_gmt", &what)?
        .ok_or_else(|| FIELDS.decode(&what, "`date_created_gmt` is missing"))?;
    let amount = FIELDS
        .required_money(obj.get("amount"), "amount", &what)?
        .abs();
    let order_id = id_text(obj.get("parent_id"))
        .ok_or_else(|| FIELDS.decode(&what, "`parent_id` (its order) is missing"))?;
    let mut event = EventRow::at(format!("refund:{id}"), at, Stage::Feedback, "refund");
    event.value = Some(amount);
    event.attributes = json!({
        "order_id": order_id,
        "reason": text(obj.get("reason")),
    });
    Ok(event)
}

/// A registered customer, when they have an email (WordPress allows users without one).
pub fn customer_row(record: &Value) -> Result<Option<CustomerRow>> {
    let obj = FIELDS.object(record, "customer")?;
    let id = id_text(obj.get("id")).unwrap_or_else(|| "?".into());
    let what = format!("customer {id}");
    let email =
        text(obj.get("email")).or_else(|| obj.get("billing").and_then(|b| text(b.get("email"))));
    let Some(email) = email else {
        return Ok(None);
    };
    Ok(Some(CustomerRow {
        email,
        first_seen_at: gmt_field(record, "date_created_gmt", &what)?,
    }))
}
