//! Rendering the plans as the REST API's JSON: products, coupons, orders (with their attribution
//! meta and line items), refunds and customers, in WooCommerce's exact shape and key order.

use super::*;

impl Generator {
    // ----- JSON -----

    pub(super) fn product_json(&self, p: &ProductPlan) -> Value {
        let (cat_id, cat_name, cat_slug) = CATEGORIES[p.category];
        let permalink = format!("{}/product/{}/", self.site, p.slug);
        let image_src = format!(
            "{}/wp-content/uploads/{}/{}.jpg",
            self.site,
            (p.created + self.offset).format("%Y/%m"),
            p.slug
        );
        obj(vec![
            ("id", json!(p.id)),
            ("name", json!(p.name)),
            ("slug", json!(p.slug)),
            ("permalink", json!(permalink)),
            ("date_created", json!(self.local(p.created))),
            ("date_created_gmt", json!(Self::gmt(p.created))),
            ("date_modified", json!(self.local(p.modified))),
            ("date_modified_gmt", json!(Self::gmt(p.modified))),
            ("type", json!("simple")),
            ("status", json!("publish")),
            ("featured", json!(p.popularity > 26)),
            ("catalog_visibility", json!("visible")),
            (
                "description",
                json!(format!("<p>{} — made to last.</p>", p.name)),
            ),
            ("short_description", json!("")),
            ("sku", json!(p.sku)),
            ("price", json!(money(p.price()))),
            ("regular_price", json!(money(p.regular))),
            ("sale_price", json!(p.sale.map(money).unwrap_or_default())),
            ("date_on_sale_from", Value::Null),
            ("date_on_sale_from_gmt", Value::Null),
            ("date_on_sale_to", Value::Null),
            ("date_on_sale_to_gmt", Value::Null),
            ("on_sale", json!(p.sale.is_some())),
            ("purchasable", json!(true)),
            ("total_sales", json!(p.total_sales)),
            ("virtual", json!(false)),
            ("downloadable", json!(false)),
            ("tax_status", json!("taxable")),
            ("tax_class", json!("")),
            ("manage_stock", json!(false)),
            ("stock_quantity", Value::Null),
            ("stock_status", json!("instock")),
            ("backorders", json!("no")),
            ("weight", json!("")),
            (
                "dimensions",
                json!({ "length": "", "width": "", "height": "" }),
            ),
            ("shipping_required", json!(true)),
            ("reviews_allowed", json!(true)),
            ("average_rating", json!("0.00")),
            ("rating_count", json!(0)),
            ("parent_id", json!(0)),
            (
                "categories",
                json!([{ "id": cat_id, "name": cat_name, "slug": cat_slug }]),
            ),
            ("tags", json!([])),
            (
                "images",
                json!([{ "id": p.image_id, "src": image_src, "name": p.slug, "alt": "" }]),
            ),
            ("attributes", json!([])),
            ("default_attributes", json!([])),
            ("variations", json!([])),
            ("menu_order", json!(0)),
            ("meta_data", json!([])),
            (
                "_links",
                json!({
                    "self": link(format!("{}/wp-json/wc/v3/products/{}", self.site, p.id)),
                    "collection": link(format!("{}/wp-json/wc/v3/products", self.site)),
                }),
            ),
        ])
    }

    pub(super) fn coupon_json(&self, c: &CouponPlan) -> Value {
        let discount_type = match c.kind {
            CouponKind::Percent => "percent",
            CouponKind::FixedCart | CouponKind::FreeShipping => "fixed_cart",
        };
        let expires = (c.active_until < self.end).then_some(c.active_until);
        obj(vec![
            ("id", json!(c.id)),
            ("code", json!(c.code)),
            ("amount", json!(money(c.amount))),
            ("status", json!("publish")),
            ("date_created", json!(self.local(c.created))),
            ("date_created_gmt", json!(Self::gmt(c.created))),
            ("date_modified", json!(self.local(c.modified))),
            ("date_modified_gmt", json!(Self::gmt(c.modified))),
            ("discount_type", json!(discount_type)),
            ("description", json!(c.description)),
            ("date_expires", json!(expires.map(|t| self.local(t)))),
            ("date_expires_gmt", json!(expires.map(Self::gmt))),
            ("usage_count", json!(c.usage_count)),
            ("individual_use", json!(c.first_order_only)),
            ("product_ids", json!([])),
            ("excluded_product_ids", json!([])),
            ("usage_limit", Value::Null),
            (
                "usage_limit_per_user",
                if c.first_order_only {
                    json!(1)
                } else {
                    Value::Null
                },
            ),
            ("limit_usage_to_x_items", Value::Null),
            ("free_shipping", json!(c.kind == CouponKind::FreeShipping)),
            ("product_categories", json!([])),
            ("excluded_product_categories", json!([])),
            ("exclude_sale_items", json!(false)),
            ("minimum_amount", json!(money(c.minimum))),
            ("maximum_amount", json!("0.00")),
            ("email_restrictions", json!([])),
            ("used_by", json!(c.used_by)),
            ("meta_data", json!([])),
            (
                "_links",
                json!({
                    "self": link(format!("{}/wp-json/wc/v3/coupons/{}", self.site, c.id)),
                    "collection": link(format!("{}/wp-json/wc/v3/coupons", self.site)),
                }),
            ),
        ])
    }

    pub(super) fn address(p: &Person, with_email: bool) -> Value {
        let (city, state, postcode, _, _) = CITIES[p.city];
        let mut pairs = vec![
            ("first_name", json!(p.first)),
            ("last_name", json!(p.last)),
            ("company", json!(p.company)),
            ("address_1", json!(p.street)),
            ("address_2", json!("")),
            ("city", json!(if p.street.is_empty() { "" } else { city })),
            ("state", json!(if p.street.is_empty() { "" } else { state })),
            (
                "postcode",
                json!(if p.street.is_empty() { "" } else { postcode }),
            ),
            (
                "country",
                json!(if p.street.is_empty() { "" } else { "US" }),
            ),
        ];
        if with_email {
            pairs.push(("email", json!(p.email)));
        }
        pairs.push(("phone", json!(p.phone)));
        obj(pairs)
    }

    pub(super) fn attribution_meta(
        &self,
        source: &Source,
        session: &Session,
    ) -> Vec<(&'static str, String)> {
        let mut out: Vec<(&'static str, String)> = Vec::new();
        let entry_with = |query: &str| {
            if query.is_empty() {
                format!("{}{}", self.site, session.landing_path)
            } else {
                format!("{}{}?{}", self.site, session.landing_path, query)
            }
        };
        let session_fields = |out: &mut Vec<(&'static str, String)>, entry: String| {
            out.push(("_wc_order_attribution_session_entry", entry));
            out.push((
                "_wc_order_attribution_session_start_time",
                session.start.format("%Y-%m-%d %H:%M:%S").to_string(),
            ));
            out.push((
                "_wc_order_attribution_session_pages",
                session.pages.to_string(),
            ));
            out.push((
                "_wc_order_attribution_session_count",
                session.count.to_string(),
            ));
            out.push(("_wc_order_attribution_user_agent", session.ua.0.to_owned()));
            out.push(("_wc_order_attribution_device_type", session.ua.1.to_owned()));
        };
        match source {
            Source::None => {}
            Source::Admin => out.push(("_wc_order_attribution_source_type", "admin".to_owned())),
            Source::Typein => {
                out.push(("_wc_order_attribution_source_type", "typein".to_owned()));
                out.push(("_wc_order_attribution_utm_source", "(direct)".to_owned()));
                session_fields(&mut out, entry_with(""));
            }
            Source::Organic { engine, referrer } => {
                out.push(("_wc_order_attribution_source_type", "organic".to_owned()));
                out.push(("_wc_order_attribution_referrer", (*referrer).to_owned()));
                out.push(("_wc_order_attribution_utm_source", (*engine).to_owned()));
                out.push(("_wc_order_attribution_utm_medium", "organic".to_owned()));
                session_fields(&mut out, entry_with(""));
            }
            Source::Referral { host, referrer } => {
                out.push(("_wc_order_attribution_source_type", "referral".to_owned()));
                out.push(("_wc_order_attribution_referrer", (*referrer).to_owned()));
                out.push(("_wc_order_attribution_utm_source", (*host).to_owned()));
                out.push(("_wc_order_attribution_utm_medium", "referral".to_owned()));
                session_fields(&mut out, entry_with(""));
            }
            Source::Utm {
                source,
                medium,
                campaign,
                content,
                term,
                utm_id,
                referrer,
            } => {
                out.push(("_wc_order_attribution_source_type", "utm".to_owned()));
                if let Some(r) = referrer {
                    out.push(("_wc_order_attribution_referrer", (*r).to_owned()));
                }
                out.push(("_wc_order_attribution_utm_campaign", campaign.clone()));
                out.push(("_wc_order_attribution_utm_source", (*source).to_owned()));
                out.push(("_wc_order_attribution_utm_medium", (*medium).to_owned()));
                let mut query =
                    format!("utm_source={source}&utm_medium={medium}&utm_campaign={campaign}");
                if let Some(c) = content {
                    out.push(("_wc_order_attribution_utm_content", (*c).to_owned()));
                    query.push_str(&format!("&utm_content={c}"));
                }
                if let Some(id) = utm_id {
                    out.push(("_wc_order_attribution_utm_id", id.clone()));
                    query.push_str(&format!("&utm_id={id}"));
                }
                if let Some(t) = term {
                    out.push(("_wc_order_attribution_utm_term", (*t).to_owned()));
                    query.push_str(&format!("&utm_term={}", t.replace(' ', "+")));
                }
                session_fields(&mut out, entry_with(&query));
            }
        }
        out
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn order_json(
        &mut self,
        o: &OrderPlan,
        p: &Priced,
        products: &[ProductPlan],
        coupons: &[CouponPlan],
        users: &[UserPlan],
        guests: &[Person],
    ) -> (Value, Option<Value>) {
        let mut rng = SplitMix64::new(o.id.wrapping_mul(0x9E37_79B9) ^ self.rng.clone().next_u64());
        let (customer_id, person) = match o.buyer {
            Buyer::Customer(u) => (users[u].id, users[u].person.clone()),
            Buyer::Guest(g) => (0, guests[g].clone()),
        };
        let mut billing_person = person.clone();
        billing_person.email = o.billing_email.clone();
        let billing = Self::address(&billing_person, true);
        let mut shipping_person = person.clone();
        shipping_person.phone = String::new();
        let shipping = Self::address(&shipping_person, false);
        let (_, state, _, _, rate_id) = CITIES[person.city];

        let is_paid = o.paid.is_some();
        let (payment_title, transaction_id) = match o.payment {
            "bacs" => ("Direct bank transfer", String::new()),
            "ppcp-gateway" => (
                "PayPal",
                if is_paid {
                    rng.string_from(b"ABCDEFGHJKLMNPRSTUVWXYZ0123456789", 17)
                } else {
                    String::new()
                },
            ),
            _ => (
                "Credit / Debit Card",
                if is_paid {
                    format!("pi_{}", rng.alnum(24))
                } else {
                    String::new()
                },
            ),
        };
        let created_via = match o.source {
            Source::Admin => "admin",
            Source::None => "rest-api",
            _ if rng.chance(0.3) => "store-api",
            _ => "checkout",
        };
        let user_agent = match o.source {
            Source::Admin | Source::None => String::new(),
            _ => o.session.ua.0.to_owned(),
        };
        let ip = if matches!(o.source, Source::Admin) {
            String::new()
        } else {
            match rng.below(3) {
                0 => format!("192.0.2.{}", rng.range(1, 254)),
                1 => format!("198.51.100.{}", rng.range(1, 254)),
                _ => format!("203.0.113.{}", rng.range(1, 254)),
            }
        };
        let order_key = format!("wc_order_{}", rng.alnum(13));

        // meta_data
        let mut meta =
            vec![json!({ "id": self.next_post_meta(), "key": "is_vat_exempt", "value": "no" })];
        for (k, v) in self.attribution_meta(&o.source, &o.session) {
            meta.push(json!({ "id": self.next_post_meta(), "key": k, "value": v }));
        }
        if o.payment == "stripe" && is_paid {
            meta.push(
                json!({ "id": self.next_post_meta(), "key": "_stripe_currency", "value": "USD" }),
            );
        }

        // line items
        let mut line_ids = Vec::new();
        let mut line_items = Vec::new();
        for l in &p.lines {
            let prod = &products[l.product];
            let id = self.next_item_id();
            line_ids.push(id);
            let taxes = if p.rate.is_zero() {
                json!([])
            } else {
                json!([{ "id": rate_id, "total": tax_str(l.total_tax), "subtotal": tax_str(l.subtotal_tax) }])
            };
            line_items.push(obj(vec![
                ("id", json!(id)),
                ("name", json!(prod.name)),
                ("product_id", json!(prod.id)),
                ("variation_id", json!(0)),
                ("quantity", json!(l.qty)),
                ("tax_class", json!("")),
                ("subtotal", json!(money(l.subtotal))),
                ("subtotal_tax", json!(money(l.subtotal_tax))),
                ("total", json!(money(l.total))),
                ("total_tax", json!(money(l.total_tax))),
                ("taxes", taxes),
                ("meta_data", json!([])),
                ("sku", json!(prod.sku)),
                ("price", number(l.total / Decimal::from(l.qty))),
                (
                    "image",
                    json!({
                        "id": prod.image_id.to_string(),
                        "src": format!("{}/wp-content/uploads/{}/{}.jpg", self.site, (prod.created + self.offset).format("%Y/%m"), prod.slug),
                    }),
                ),
                ("parent_name", Value::Null),
            ]));
        }
        let tax_lines = if p.rate.is_zero() {
            json!([])
        } else {
            let pct = p.rate * Decimal::ONE_HUNDRED;
            json!([{
                "id": self.next_item_id(),
                "rate_code": format!("US-{state}-{state} TAX-1"),
                "rate_id": rate_id,
                "label": format!("{state} Tax"),
                "compound": false,
                "tax_total": money(p.cart_tax),
                "shipping_tax_total": money(p.shipping_tax),
                "rate_percent": number(pct),
                "meta_data": []
            }])
        };
        let (method_title, method_id, instance) = p.shipping_method;
        let shipping_taxes = if p.rate.is_zero() {
            json!([])
        } else {
            json!([{ "id": rate_id, "total": tax_str(p.shipping_tax), "subtotal": "" }])
        };
        let shipping_lines = json!([{
            "id": self.next_item_id(),
            "method_title": method_title,
            "method_id": method_id,
            "instance_id": instance,
            "total": money(p.shipping_total),
            "total_tax": money(p.shipping_tax),
            "taxes": shipping_taxes,
            "meta_data": []
        }]);
        let coupon_lines = match o.coupon {
            Some(c) => json!([{
                "id": self.next_item_id(),
                "code": coupons[c].code,
                "discount": money(p.discount_total),
                "discount_tax": money(p.discount_tax),
                "meta_data": []
            }]),
            None => json!([]),
        };

        // refund
        let mut refunds_summary = json!([]);
        let mut refund_json = None;
        if let Some(r) = &o.refund {
            let (amount, items) = self.refund_lines(r, p, products, &line_ids, rate_id);
            refunds_summary =
                json!([{ "id": r.id, "reason": r.reason, "total": format!("-{}", money(amount)) }]);
            refund_json = Some(obj(vec![
                ("id", json!(r.id)),
                ("parent_id", json!(o.id)),
                ("date_created", json!(self.local(r.created))),
                ("date_created_gmt", json!(Self::gmt(r.created))),
                ("amount", json!(money(amount))),
                ("reason", json!(r.reason)),
                ("refunded_by", json!(r.refunded_by)),
                ("refunded_payment", json!(o.payment != "bacs")),
                ("meta_data", json!([])),
                ("line_items", Value::Array(items)),
                (
                    "_links",
                    json!({
                        "self": link(format!("{}/wp-json/wc/v3/orders/{}/refunds/{}", self.site, o.id, r.id)),
                        "collection": link(format!("{}/wp-json/wc/v3/orders/{}/refunds", self.site, o.id)),
                        "up": link(format!("{}/wp-json/wc/v3/orders/{}", self.site, o.id)),
                        "refunded_by": [{ "href": format!("{}/wp-json/wp/v2/users/{}", self.site, r.refunded_by), "embeddable": true }],
                    }),
                ),
            ]));
        }

        let fmt_opt_local = |t: Option<Ts>| t.map(|t| self.local(t));
        let fmt_opt_gmt = |t: Option<Ts>| t.map(Self::gmt);
        let version = if o.created < self.start + TimeDelta::days(90) {
            "9.6.2"
        } else {
            "9.8.5"
        };
        let needs_payment = matches!(o.status, Status::Pending | Status::Failed);
        let mut links = Map::new();
        links.insert(
            "self".into(),
            link(format!("{}/wp-json/wc/v3/orders/{}", self.site, o.id)),
        );
        links.insert(
            "collection".into(),
            link(format!("{}/wp-json/wc/v3/orders", self.site)),
        );
        if customer_id > 0 {
            links.insert(
                "customer".into(),
                link(format!(
                    "{}/wp-json/wc/v3/customers/{}",
                    self.site, customer_id
                )),
            );
        }
        let order = obj(vec![
            ("id", json!(o.id)),
            ("parent_id", json!(0)),
            ("status", json!(o.status.as_str())),
            ("currency", json!("USD")),
            ("version", json!(version)),
            ("prices_include_tax", json!(false)),
            ("date_created", json!(self.local(o.created))),
            ("date_modified", json!(self.local(o.modified))),
            ("discount_total", json!(money(p.discount_total))),
            ("discount_tax", json!(money(p.discount_tax))),
            ("shipping_total", json!(money(p.shipping_total))),
            ("shipping_tax", json!(money(p.shipping_tax))),
            ("cart_tax", json!(money(p.cart_tax))),
            ("total", json!(money(p.total))),
            ("total_tax", json!(money(p.total_tax))),
            ("customer_id", json!(customer_id)),
            ("order_key", json!(order_key)),
            ("billing", billing),
            ("shipping", shipping),
            ("payment_method", json!(o.payment)),
            ("payment_method_title", json!(payment_title)),
            ("transaction_id", json!(transaction_id)),
            ("customer_ip_address", json!(ip)),
            ("customer_user_agent", json!(user_agent)),
            ("created_via", json!(created_via)),
            ("customer_note", json!(o.note)),
            ("date_completed", json!(fmt_opt_local(o.completed))),
            ("date_paid", json!(fmt_opt_local(o.paid))),
            ("cart_hash", json!(rng.hex(32))),
            ("number", json!(o.id.to_string())),
            ("meta_data", Value::Array(meta)),
            ("line_items", Value::Array(line_items)),
            ("tax_lines", tax_lines),
            ("shipping_lines", shipping_lines),
            ("fee_lines", json!([])),
            ("coupon_lines", coupon_lines),
            ("refunds", refunds_summary),
            (
                "payment_url",
                json!(format!(
                    "{}/checkout/order-pay/{}/?pay_for_order=true&key={}",
                    self.site, o.id, order_key
                )),
            ),
            (
                "is_editable",
                json!(matches!(
                    o.status,
                    Status::Pending | Status::OnHold | Status::Failed
                )),
            ),
            ("needs_payment", json!(needs_payment)),
            ("needs_processing", json!(true)),
            ("date_created_gmt", json!(Self::gmt(o.created))),
            ("date_modified_gmt", json!(Self::gmt(o.modified))),
            ("date_completed_gmt", json!(fmt_opt_gmt(o.completed))),
            ("date_paid_gmt", json!(fmt_opt_gmt(o.paid))),
            ("currency_symbol", json!("$")),
            ("_links", Value::Object(links)),
        ]);
        (order, refund_json)
    }

    /// The refund's amount and its (negative) line items.
    pub(super) fn refund_lines(
        &mut self,
        r: &RefundPlan,
        p: &Priced,
        products: &[ProductPlan],
        line_ids: &[u64],
        rate_id: u64,
    ) -> (Decimal, Vec<Value>) {
        let mut items = Vec::new();
        let mut refund_item = |gen: &mut Self,
                               li: usize,
                               qty: u32,
                               total: Decimal,
                               tax: Decimal| {
            let l = &p.lines[li];
            let prod = &products[l.product];
            let taxes = if p.rate.is_zero() {
                json!([])
            } else {
                json!([{ "id": rate_id, "total": tax_str(-tax), "subtotal": tax_str(-tax) }])
            };
            items.push(obj(vec![
                ("id", json!(gen.next_item_id())),
                ("name", json!(prod.name)),
                ("product_id", json!(prod.id)),
                ("variation_id", json!(0)),
                ("quantity", json!(-i64::from(qty))),
                ("tax_class", json!("")),
                ("subtotal", json!(money(-total))),
                ("subtotal_tax", json!(money(-tax))),
                ("total", json!(money(-total))),
                ("total_tax", json!(money(-tax))),
                ("taxes", taxes),
                (
                    "meta_data",
                    json!([{ "id": gen.next_post_meta(), "key": "_refunded_item_id", "value": line_ids[li].to_string() }]),
                ),
                ("sku", json!(prod.sku)),
                ("price", number(-(total / Decimal::from(qty)))),
            ]));
        };
        let amount = match r.kind {
            RefundKind::Full => {
                for (li, l) in p.lines.iter().enumerate() {
                    refund_item(self, li, l.qty, l.total, l.total_tax);
                }
                p.total
            }
            RefundKind::OneUnit(li) => {
                let l = &p.lines[li];
                let q = Decimal::from(l.qty);
                let total = round2(l.total / q);
                let tax = round2(l.total_tax / q);
                refund_item(self, li, 1, total, tax);
                total + tax
            }
            RefundKind::Goodwill(pct) => {
                round2(p.total * Decimal::from(pct) / Decimal::ONE_HUNDRED).max(cents(1))
            }
        };
        (amount.min(p.total), items)
    }

    pub(super) fn customer_json(
        &mut self,
        u: &UserPlan,
        orders: &[OrderPlan],
        priced: &[Priced],
    ) -> Value {
        let mut rng = SplitMix64::new(u.id.wrapping_mul(0xA076_1D64_78BD_642F) ^ 0x5151);
        let last_order = u.orders.last().map(|&i| orders[i].created);
        let modified = match last_order {
            Some(t) => (t + TimeDelta::seconds(rng.range(20, 300))).min(self.end),
            None if rng.chance(0.5) => u.registered,
            None => {
                let hi = (u.registered + TimeDelta::days(60)).min(self.end);
                Self::between(&mut rng, u.registered.min(hi), hi)
            }
        }
        .max(u.registered);
        let is_paying = u
            .orders
            .iter()
            .any(|&i| orders[i].paid.is_some() && !priced[i].lines.is_empty());
        let mut meta = Vec::new();
        if let Some(first) = u.registered_at_order {
            for (k, v) in self.attribution_meta(&orders[first].source, &orders[first].session) {
                meta.push(json!({ "id": self.next_user_meta(), "key": k, "value": v }));
            }
        }
        if u.role == "customer" {
            let active = last_order.unwrap_or(u.registered);
            let day = active.and_utc().timestamp() / 86_400 * 86_400;
            meta.push(json!({ "id": self.next_user_meta(), "key": "wc_last_active", "value": day.to_string() }));
        }
        let billing = if u.role == "customer" {
            Self::address(&u.person, true)
        } else {
            let mut blank = u.person.clone();
            blank.street.clear();
            blank.phone.clear();
            blank.company.clear();
            blank.email.clear();
            Self::address(&blank, true)
        };
        let mut ship_person = u.person.clone();
        ship_person.phone = String::new();
        if u.role != "customer" {
            ship_person.street.clear();
            ship_person.company.clear();
        }
        let shipping = Self::address(&ship_person, false);
        obj(vec![
            ("id", json!(u.id)),
            ("date_created", json!(self.local(u.registered))),
            ("date_created_gmt", json!(Self::gmt(u.registered))),
            ("date_modified", json!(self.local(modified))),
            ("date_modified_gmt", json!(Self::gmt(modified))),
            ("email", json!(u.person.email)),
            ("first_name", json!(u.person.first)),
            ("last_name", json!(u.person.last)),
            ("role", json!(u.role)),
            ("username", json!(u.username)),
            ("billing", billing),
            ("shipping", shipping),
            ("is_paying_customer", json!(is_paying)),
            (
                "avatar_url",
                json!(format!(
                    "https://secure.gravatar.com/avatar/{}?s=96&d=mm&r=g",
                    u.avatar
                )),
            ),
            ("meta_data", Value::Array(meta)),
            (
                "_links",
                json!({
                    "self": link(format!("{}/wp-json/wc/v3/customers/{}", self.site, u.id)),
                    "collection": link(format!("{}/wp-json/wc/v3/customers", self.site)),
                }),
            ),
        ])
    }
}
