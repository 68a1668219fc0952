//! How Shopify records become journey rows.
//!
//! Orders become [`OrderRow`]s (the rebuild derives their `order` events) and each of their refunds a
//! `refund` feedback event dated by the refund itself — refunds come embedded in the order, so they are
//! emitted from it rather than read as a stream of their own. Customers become [`CustomerRow`]s and
//! abandoned checkouts `checkout_abandoned` conversion events; products are kept raw only.
//!
//! Attribution is the order's `customerJourneySummary.lastVisit` (last touch, like GA4's session
//! attribution): its `utmParameters`, falling back to the `utm_*` parameters of its landing page URL,
//! which Shopify often leaves parsed-out as null. Money is parsed from Shopify's decimal strings into
//! [`Decimal`] and never passes through `f64`.

use rust_decimal::Decimal;
use serde_json::{json, Map, Value};
use url::Url;

use growthflow_core::channel::{classify, ChannelInput};
use growthflow_core::extract::{text, Fields};
use growthflow_core::model::{CustomerRow, EventRow, JourneyMapper, JourneyRows, OrderRow, Stage};
use growthflow_core::project::Projection::{self, All};
use growthflow_core::Result;

/// Shopify's field readers: every decode error starts with "Shopify".
const FIELDS: Fields = Fields::new("Shopify");

use crate::streams::gid_tail;

/// The connector type this mapper belongs to.
pub const SOURCE_TYPE: &str = "shopify";

/// Maps Shopify records into the journey model.
#[derive(Debug, Clone, Copy, Default)]
pub struct ShopifyMapper;

impl JourneyMapper for ShopifyMapper {
    fn source_type(&self) -> &'static str {
        SOURCE_TYPE
    }

    fn map(&self, stream: &str, record: &Value) -> Result<JourneyRows> {
        let mut rows = JourneyRows::default();
        match stream {
            "orders" => {
                rows.orders.push(order_row(record)?);
                rows.events.extend(refund_events(record)?);
            }
            "customers" => rows.customers.extend(customer_row(record)?),
            "abandoned_checkouts" => rows.events.extend(abandoned_checkout_event(record)?),
            _ => {}
        }
        Ok(rows)
    }

    fn projection(&self, stream: &str) -> Option<&'static Projection> {
        Some(match stream {
            "orders" => &ORDER,
            "customers" => &CUSTOMER,
            "abandoned_checkouts" => &ABANDONED_CHECKOUT,
            _ => &Projection::NOTHING,
        })
    }
}

// What `map` reads of each stream's records (see `JourneyMapper::projection`): every leaf it reads
// is kept whole, since the readers print an unreadable value in their error. Keep these in step with
// the functions below; `tests/projection.rs` maps records both ways and fails on any difference.

/// A `MoneyBag` as [`shop_money`] reads it.
const MONEY_BAG: Projection = Projection::fields(&[(
    "shopMoney",
    Projection::fields(&[("amount", All), ("currencyCode", All)]),
)]);

/// A visit of the customer journey, as [`visit_utm`], [`channel_hint`] and [`order_row`] read it.
const VISIT: Projection = Projection::fields(&[
    (
        "utmParameters",
        Projection::fields(&[("source", All), ("medium", All), ("campaign", All)]),
    ),
    ("landingPage", All),
    ("referrerUrl", All),
    ("sourceType", All),
]);

/// What [`order_row`] and [`refund_events`] read.
const ORDER: Projection = Projection::fields(&[
    ("id", All),
    ("createdAt", All),
    ("totalPriceSet", MONEY_BAG),
    ("subtotalPriceSet", MONEY_BAG),
    ("totalDiscountsSet", MONEY_BAG),
    ("totalRefundedSet", MONEY_BAG),
    (
        "refunds",
        Projection::fields(&[
            ("id", All),
            ("createdAt", All),
            ("totalRefundedSet", MONEY_BAG),
        ]),
    ),
    ("email", All),
    ("customer", CUSTOMER_EMAIL),
    (
        "customerJourneySummary",
        Projection::fields(&[("lastVisit", VISIT), ("firstVisit", VISIT)]),
    ),
    ("sourceName", All),
    ("currencyCode", All),
    ("displayFinancialStatus", All),
    ("cancelledAt", All),
    ("test", All),
]);

/// What [`customer_row`] reads.
const CUSTOMER: Projection = Projection::fields(&[
    ("id", All),
    ("email", All),
    (
        "defaultEmailAddress",
        Projection::fields(&[("emailAddress", All)]),
    ),
    ("createdAt", All),
]);

/// What [`abandoned_checkout_event`] reads.
const ABANDONED_CHECKOUT: Projection = Projection::fields(&[
    ("id", All),
    ("completedAt", All),
    ("createdAt", All),
    ("totalPriceSet", MONEY_BAG),
    ("email", All),
    ("customer", CUSTOMER_EMAIL),
]);

/// A `Customer`'s email: `defaultEmailAddress.emailAddress`, which the queries select (since
/// 2025-04; `email` is deprecated in its favour), else `email`, which records read before carry.
fn customer_email(customer: &Value) -> Option<String> {
    customer
        .get("defaultEmailAddress")
        .and_then(|d| text(d.get("emailAddress")))
        .or_else(|| text(customer.get("email")))
}

/// The customer projection's email fields, for [`customer_email`].
const CUSTOMER_EMAIL: Projection = Projection::fields(&[
    ("email", All),
    (
        "defaultEmailAddress",
        Projection::fields(&[("emailAddress", All)]),
    ),
]);

/// The record's id as the numeric tail of its gid.
fn record_id(obj: &Map<String, Value>, what: &str) -> Result<String> {
    text(obj.get("id"))
        .map(|gid| gid_tail(&gid).to_string())
        .ok_or_else(|| FIELDS.decode(what, "`id` is missing"))
}

/// `{field}.shopMoney.amount` of a `MoneyBag`, and its currency.
fn shop_money(
    obj: &Map<String, Value>,
    field: &str,
    what: &str,
) -> Result<(Option<Decimal>, Option<String>)> {
    let money = obj.get(field).and_then(|m| m.get("shopMoney"));
    let amount = FIELDS.money(
        money.and_then(|m| m.get("amount")),
        &format!("{field}.shopMoney.amount"),
        what,
    )?;
    Ok((amount, money.and_then(|m| text(m.get("currencyCode")))))
}

/// The visit an order is attributed to: the last one, else the first (single-visit journeys).
fn attributed_visit(obj: &Map<String, Value>) -> Option<&Map<String, Value>> {
    let summary = obj.get("customerJourneySummary")?;
    summary
        .get("lastVisit")
        .and_then(Value::as_object)
        .or_else(|| summary.get("firstVisit").and_then(Value::as_object))
}

/// UTM values of a visit: its parsed `utmParameters`, each missing one taken from the landing page URL.
#[derive(Debug, Default, PartialEq)]
struct Utm {
    source: Option<String>,
    medium: Option<String>,
    campaign: Option<String>,
}

fn landing_page_utm(landing_page: &str) -> Utm {
    // Landing pages are usually absolute; a bare path (REST's `landing_site`) gets a dummy origin.
    let url = Url::parse(landing_page)
        .or_else(|_| Url::parse("https://shop.invalid/").and_then(|b| b.join(landing_page)));
    let mut utm = Utm::default();
    if let Ok(url) = url {
        for (k, v) in url.query_pairs() {
            let v = v.trim();
            if v.is_empty() {
                continue;
            }
            let slot = match k.as_ref() {
                "utm_source" => &mut utm.source,
                "utm_medium" => &mut utm.medium,
                "utm_campaign" => &mut utm.campaign,
                _ => continue,
            };
            slot.get_or_insert_with(|| v.to_string());
        }
    }
    utm
}

fn visit_utm(visit: &Map<String, Value>) -> Utm {
    let params = visit.get("utmParameters");
    let from_landing = text(visit.get("landingPage"))
        .map(|l| landing_page_utm(&l))
        .unwrap_or_default();
    Utm {
        source: text(params.and_then(|p| p.get("source"))).or(from_landing.source),
        medium: text(params.and_then(|p| p.get("medium"))).or(from_landing.medium),
        campaign: text(params.and_then(|p| p.get("campaign"))).or(from_landing.campaign),
    }
}

/// The classifier's hint: orders keyed in by staff or at a till (`sourceName` `pos`,
/// `shopify_draft_order`) are not website traffic; otherwise Shopify's `sourceType` marketing tactic,
/// with `SEO` read as organic.
fn channel_hint(obj: &Map<String, Value>, visit: Option<&Map<String, Value>>) -> Option<String> {
    let source_name = text(obj.get("sourceName")).map(|s| s.to_lowercase());
    if let Some(s) = source_name.filter(|s| matches!(s.as_str(), "pos" | "shopify_draft_order")) {
        return Some(s);
    }
    let tactic = visit
        .and_then(|v| text(v.get("sourceType")))?
        .to_lowercase();
    Some(if tactic == "seo" {
        "organic".into()
    } else {
        tactic
    })
}

/// One order as the `orders` table holds it.
pub fn order_row(record: &Value) -> Result<OrderRow> {
    let obj = FIELDS.object(record, "order")?;
    let order_id = record_id(obj, "order")?;
    let what = format!("order {order_id}");
    let created_at = FIELDS.required_time(obj.get("createdAt"), "createdAt", &what)?;
    let (total, total_currency) = shop_money(obj, "totalPriceSet", &what)?;
    let total_price = total.ok_or_else(|| FIELDS.decode(&what, "`totalPriceSet` is missing"))?;
    let (subtotal_price, _) = shop_money(obj, "subtotalPriceSet", &what)?;
    let (total_discounts, _) = shop_money(obj, "totalDiscountsSet", &what)?;
    let total_refunded = match shop_money(obj, "totalRefundedSet", &what)?.0 {
        Some(t) => t.abs(),
        None => {
            let mut sum = Decimal::ZERO;
            for refund in refunds(obj) {
                let (amount, _) = shop_money(refund, "totalRefundedSet", &what)?;
                sum += amount.unwrap_or_default().abs();
            }
            sum
        }
    };
    let email = text(obj.get("email")).or_else(|| obj.get("customer").and_then(customer_email));
    let visit = attributed_visit(obj);
    let utm = visit.map(visit_utm).unwrap_or_default();
    let landing_page = visit.and_then(|v| text(v.get("landingPage")));
    let referrer = visit.and_then(|v| text(v.get("referrerUrl")));
    let hint = channel_hint(obj, visit);
    let channel = classify(&ChannelInput {
        utm_source: utm.source.as_deref(),
        utm_medium: utm.medium.as_deref(),
        utm_campaign: utm.campaign.as_deref(),
        referrer: referrer.as_deref(),
        source_type: hint.as_deref(),
    });
    Ok(OrderRow {
        order_id,
        email,
        created_at,
        // The currency of the amounts: `shopMoney`'s, the shop currency (never the presentment one).
        currency: total_currency.or_else(|| text(obj.get("currencyCode"))),
        total_price,
        subtotal_price,
        total_discounts,
        total_refunded,
        financial_status: text(obj.get("displayFinancialStatus")).map(|s| s.to_lowercase()),
        cancelled: !matches!(obj.get("cancelledAt"), None | Some(Value::Null)),
        test: obj.get("test").and_then(Value::as_bool).unwrap_or(false),
        utm_source: utm.source,
        utm_medium: utm.medium,
        utm_campaign: utm.campaign,
        channel,
        landing_page,
        referrer,
    })
}

fn refunds(obj: &Map<String, Value>) -> impl Iterator<Item = &Map<String, Value>> {
    obj.get("refunds")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object)
}

/// The order's refunds as feedback events, each dated by the refund itself (not its order).
pub fn refund_events(record: &Value) -> Result<Vec<EventRow>> {
    let obj = FIELDS.object(record, "order")?;
    let order_id = record_id(obj, "order")?;
    let mut events = Vec::new();
    for refund in refunds(obj) {
        let id = record_id(refund, &format!("refund of order {order_id}"))?;
        let what = format!("refund {id} of order {order_id}");
        let at = FIELDS.required_time(refund.get("createdAt"), "createdAt", &what)?;
        let (amount, currency) = shop_money(refund, "totalRefundedSet", &what)?;
        let mut event = EventRow::at(format!("refund:{id}"), at, Stage::Feedback, "refund");
        event.value = Some(amount.unwrap_or_default().abs());
        event.currency = currency
            .or_else(|| {
                obj.get("totalPriceSet")
                    .and_then(|m| m.get("shopMoney"))
                    .and_then(|m| text(m.get("currencyCode")))
            })
            .or_else(|| text(obj.get("currencyCode")));
        event.email = text(obj.get("email"));
        event.attributes = json!({ "order_id": order_id });
        events.push(event);
    }
    Ok(events)
}

/// A customer, when they have an email (phone-only customers have none).
pub fn customer_row(record: &Value) -> Result<Option<CustomerRow>> {
    let obj = FIELDS.object(record, "customer")?;
    let id = record_id(obj, "customer")?;
    let what = format!("customer {id}");
    let email = customer_email(record);
    let Some(email) = email else {
        return Ok(None);
    };
    Ok(Some(CustomerRow {
        email,
        first_seen_at: FIELDS.time(obj.get("createdAt"), "createdAt", &what, false)?,
    }))
}

/// A customer's lifetime order count. Shopify sends `numberOfOrders` as an `UnsignedInt64`, i.e. a JSON
/// **string** (`"3"`); a number is accepted too.
pub fn number_of_orders(record: &Value) -> Result<Option<u64>> {
    match record.get("numberOfOrders") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => s.trim().parse().map(Some).map_err(|_| {
            FIELDS.decode(
                "customer",
                format!("`numberOfOrders` is not a count: {s:?}"),
            )
        }),
        Some(Value::Number(n)) => n.as_u64().map(Some).ok_or_else(|| {
            FIELDS.decode("customer", format!("`numberOfOrders` is not a count: {n}"))
        }),
        Some(other) => Err(FIELDS.decode(
            "customer",
            format!("`numberOfOrders` is not a count: {other}"),
        )),
    }
}

/// An abandoned checkout as a conversion-stage event at its creation time, valued at its total; `None`
/// once it was completed (it became an order).
pub fn abandoned_checkout_event(record: &Value) -> Result<Option<EventRow>> {
    let obj = FIELDS.object(record, "abandoned checkout")?;
    let id = record_id(obj, "abandoned checkout")?;
    let what = format!("abandoned checkout {id}");
    if !matches!(obj.get("completedAt"), None | Some(Value::Null)) {
        return Ok(None);
    }
    let at = FIELDS.required_time(obj.get("createdAt"), "createdAt", &what)?;
    let (total, currency) = shop_money(obj, "totalPriceSet", &what)?;
    let mut event = EventRow::at(
        format!("checkout_abandoned:{id}"),
        at,
        Stage::Conversion,
        "checkout_abandoned",
    );
    event.value = total;
    event.currency = currency;
    event.email = text(obj.get("email")).or_else(|| obj.get("customer").and_then(customer_email));
    event.attributes = json!({ "checkout_id": id });
    Ok(Some(event))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn landing_page_utm_reads_absolute_and_relative_urls() {
        assert_eq!(
            landing_page_utm(
                "https://x.co/p?utm_source=klaviyo&utm_medium=email&utm_campaign=a%20b"
            ),
            Utm {
                source: Some("klaviyo".into()),
                medium: Some("email".into()),
                campaign: Some("a b".into()),
            }
        );
        assert_eq!(
            landing_page_utm("/products/x?utm_source=ig")
                .source
                .as_deref(),
            Some("ig")
        );
        assert_eq!(landing_page_utm("not a url at all"), Utm::default());
    }
}
