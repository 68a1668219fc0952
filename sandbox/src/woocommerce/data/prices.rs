//! Money and formatting: cent rounding, WooCommerce's decimal strings, dates, slugs, and an order's
//! prices computed the way WooCommerce computes them.

use super::*;

pub(super) fn round2(d: Decimal) -> Decimal {
    d.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero)
}

/// Money as WooCommerce sends it: a string with exactly 2 decimals.
pub(super) fn money(d: Decimal) -> String {
    let mut r = round2(d);
    r.rescale(2);
    r.to_string()
}

/// A tax amount in a `taxes[]` entry: WooCommerce sends these unpadded (`"9.6"`).
pub(super) fn tax_str(d: Decimal) -> String {
    round2(d).normalize().to_string()
}

/// A JSON number for a decimal: an integer when whole (`3`), else a float (`20.4`).
pub(super) fn number(d: Decimal) -> Value {
    let d = d.normalize();
    if d.scale() == 0 {
        if let Some(i) = d.to_i64() {
            return Value::from(i);
        }
    }
    d.to_f64()
        .and_then(serde_json::Number::from_f64)
        .map(Value::Number)
        .unwrap_or(Value::Null)
}

pub(super) fn cents(c: i64) -> Decimal {
    Decimal::new(c, 2)
}

pub(super) const WC_FORMAT: &str = "%Y-%m-%dT%H:%M:%S";

pub(super) fn slugify(s: &str) -> String {
    let mut out = String::new();
    for ch in s.chars() {
        if ch.is_ascii_alphanumeric() {
            out.push(ch.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    out.trim_end_matches('-').to_owned()
}

pub(super) fn obj(pairs: Vec<(&str, Value)>) -> Value {
    let mut m = Map::new();
    for (k, v) in pairs {
        m.insert(k.to_owned(), v);
    }
    Value::Object(m)
}

pub(super) fn link(href: String) -> Value {
    json!([{ "href": href }])
}

/// Email capitalised the way people type it: `Jane.Doe@Example.com`.
pub(super) fn capitalised(email: &str) -> String {
    let (local, domain) = email.split_once('@').unwrap_or((email, ""));
    let mut out = String::with_capacity(email.len());
    let mut up = true;
    for ch in local.chars() {
        if up {
            out.extend(ch.to_uppercase());
        } else {
            out.push(ch);
        }
        up = matches!(ch, '.' | '_');
    }
    if !domain.is_empty() {
        out.push('@');
        let mut chars = domain.chars();
        if let Some(first) = chars.next() {
            out.extend(first.to_uppercase());
        }
        out.extend(chars);
    }
    out
}

/// Compute an order's money: line subtotals, coupon discount, shipping and tax, all rounded to cents
/// per line like WooCommerce, so that `total = Σ subtotal − discount_total + shipping_total + total_tax`
/// holds exactly.
pub(super) fn price_order(
    o: &OrderPlan,
    products: &[ProductPlan],
    coupons: &[CouponPlan],
    users: &[UserPlan],
    guests: &[Person],
) -> Priced {
    let city = match o.buyer {
        Buyer::Customer(u) => users[u].person.city,
        Buyer::Guest(g) => guests[g].city,
    };
    let rate = Decimal::new(CITIES[city].3, 5); // hundredths of a percent → fraction
    let coupon = o.coupon.map(|c| &coupons[c]);
    let subtotals: Vec<Decimal> = o
        .lines
        .iter()
        .map(|&(p, q)| products[p].price() * Decimal::from(q))
        .collect();
    let cart_subtotal: Decimal = subtotals.iter().copied().sum();
    let mut discounts: Vec<Decimal> = vec![Decimal::ZERO; subtotals.len()];
    match coupon.map(|c| (c.kind, c.amount)) {
        Some((CouponKind::Percent, pct)) => {
            for (d, s) in discounts.iter_mut().zip(&subtotals) {
                *d = round2(*s * pct / Decimal::ONE_HUNDRED);
            }
        }
        Some((CouponKind::FixedCart, amount)) => {
            let amount = amount.min(cart_subtotal);
            let mut left = amount;
            let n = subtotals.len();
            for i in 0..n {
                let share = if i + 1 == n {
                    left
                } else {
                    round2(amount * subtotals[i] / cart_subtotal)
                };
                discounts[i] = share.min(subtotals[i]);
                left -= discounts[i];
            }
        }
        Some((CouponKind::FreeShipping, _)) | None => {}
    }
    let lines: Vec<PricedLine> = o
        .lines
        .iter()
        .zip(subtotals.iter().zip(&discounts))
        .map(|(&(product, qty), (&subtotal, &discount))| {
            let total = subtotal - discount;
            PricedLine {
                product,
                qty,
                subtotal,
                subtotal_tax: round2(subtotal * rate),
                total,
                total_tax: round2(total * rate),
            }
        })
        .collect();
    let items_total: Decimal = lines.iter().map(|l| l.total).sum();
    let free_coupon = coupon.is_some_and(|c| c.kind == CouponKind::FreeShipping);
    let (shipping_total, shipping_method) = if free_coupon || items_total >= cents(7500) {
        (Decimal::ZERO, ("Free shipping", "free_shipping", "2"))
    } else if o.express {
        (cents(1200), ("Express (1-2 days)", "flat_rate", "3"))
    } else {
        (cents(500), ("Flat rate", "flat_rate", "1"))
    };
    let shipping_tax = round2(shipping_total * rate);
    let discount_total: Decimal = discounts.iter().copied().sum();
    let discount_tax: Decimal = lines.iter().map(|l| l.subtotal_tax - l.total_tax).sum();
    let cart_tax: Decimal = lines.iter().map(|l| l.total_tax).sum();
    let total_tax = cart_tax + shipping_tax;
    let total = items_total + shipping_total + total_tax;
    Priced {
        lines,
        discount_total,
        discount_tax,
        shipping_total,
        shipping_tax,
        shipping_method,
        cart_tax,
        total_tax,
        total,
        rate,
    }
}
