//! The `funnel_daily` view summed against the report in each store, and clicks sent as text.

use super::*;

/// The count columns of `funnel_daily` and the money columns (summed per currency).
const VIEW_COUNTS: &[&str] = &[
    "impressions",
    "clicks",
    "sessions",
    "new_users",
    "engaged_sessions",
    "add_to_carts",
    "checkouts_started",
    "email_opens",
    "email_clicks",
    "orders",
    "abandoned_checkouts",
    "refunds",
    "email_attributed_orders",
    "reported_purchases_meta_ads",
    "reported_purchases_ga4",
];
const VIEW_MONEY: &[&str] = &[
    "spend",
    "revenue",
    "refunded_amount",
    "email_attributed_revenue",
];

/// `funnel_daily` summed over `since..=until`: every count over all rows, every money column per
/// currency (`column/CUR`), as exact decimals.
fn view_totals(
    store: &str,
    conn: &Connection,
    pg: Option<&mut postgres::Client>,
    since: &str,
    until: &str,
) -> BTreeMap<String, Decimal> {
    let mut out = BTreeMap::new();
    let counts: Vec<String> = VIEW_COUNTS
        .iter()
        .map(|c| format!("CAST(COALESCE(SUM({c}), 0) AS TEXT)"))
        .collect();
    let counts = counts.join(", ");
    match (store, pg) {
        ("sqlite", _) => {
            let got: Vec<String> = conn
                .query_row(
                    &format!("SELECT {counts} FROM funnel_daily WHERE date BETWEEN ?1 AND ?2"),
                    [since, until],
                    |r| (0..VIEW_COUNTS.len()).map(|i| r.get(i)).collect(),
                )
                .unwrap();
            for (c, v) in VIEW_COUNTS.iter().zip(got) {
                out.insert(c.to_string(), Decimal::from_str(&v).unwrap());
            }
            // The view's SQLite money is the double nearest the exact sum: back to 10^-6 units.
            let money: Vec<String> = VIEW_MONEY
                .iter()
                .map(|c| format!("SUM(CAST(ROUND({c} * 1000000) AS INTEGER))"))
                .collect();
            let mut stmt = conn
                .prepare(&format!(
                    "SELECT currency, {} FROM funnel_daily WHERE date BETWEEN ?1 AND ?2
                     AND currency IS NOT NULL GROUP BY currency",
                    money.join(", ")
                ))
                .unwrap();
            let rows = stmt
                .query_map([since, until], |r| {
                    let cur: String = r.get(0)?;
                    let units: Vec<i64> = (1..=VIEW_MONEY.len())
                        .map(|i| r.get(i))
                        .collect::<Result<_, _>>()?;
                    Ok((cur, units))
                })
                .unwrap();
            for row in rows {
                let (cur, units) = row.unwrap();
                for (c, u) in VIEW_MONEY.iter().zip(units) {
                    out.insert(format!("{c}/{cur}"), Decimal::new(u, 6).normalize());
                }
            }
        }
        (_, Some(client)) => {
            let row = client
                .query_one(
                    &format!(
                        "SELECT {counts} FROM funnel_daily
                         WHERE date BETWEEN $1::text::date AND $2::text::date"
                    ),
                    &[&since, &until],
                )
                .unwrap();
            for (i, c) in VIEW_COUNTS.iter().enumerate() {
                out.insert(c.to_string(), Decimal::from_str(row.get(i)).unwrap());
            }
            let money: Vec<String> = VIEW_MONEY
                .iter()
                .map(|c| format!("CAST(SUM({c}) AS TEXT)"))
                .collect();
            for row in client
                .query(
                    &format!(
                        "SELECT currency, {} FROM funnel_daily
                         WHERE date BETWEEN $1::text::date AND $2::text::date
                           AND currency IS NOT NULL GROUP BY currency",
                        money.join(", ")
                    ),
                    &[&since, &until],
                )
                .unwrap()
            {
                let cur: String = row.get(0);
                for (i, c) in VIEW_MONEY.iter().enumerate() {
                    let v = Decimal::from_str(row.get(i + 1)).unwrap().normalize();
                    out.insert(format!("{c}/{cur}"), v);
                }
            }
        }
        _ => unreachable!(),
    }
    // A currency with nothing in one money column is the same as no row for it.
    out.retain(|_, v| !v.is_zero());
    out
}

/// What the report says `funnel_daily` must sum to: counts over every currency, money per currency
/// (the report currency's, and each of `other_currencies`).
fn report_totals(r: &Report) -> BTreeMap<String, Decimal> {
    let mut out: BTreeMap<String, Decimal> = [
        ("impressions", r.awareness.impressions),
        ("clicks", r.awareness.clicks),
        ("sessions", r.awareness.sessions),
        ("new_users", r.awareness.new_users),
        ("engaged_sessions", r.consideration.engaged_sessions),
        ("add_to_carts", r.consideration.add_to_carts),
        ("checkouts_started", r.consideration.checkouts_started),
        ("email_opens", r.consideration.email_opens),
        ("email_clicks", r.consideration.email_clicks),
        ("orders", r.conversion.orders),
        ("abandoned_checkouts", r.conversion.abandoned_checkouts),
        ("refunds", r.feedback.refunds),
        (
            "email_attributed_orders",
            r.feedback.reported_purchases.klaviyo,
        ),
        (
            "reported_purchases_meta_ads",
            r.feedback.reported_purchases.meta_ads,
        ),
        ("reported_purchases_ga4", r.feedback.reported_purchases.ga4),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), Decimal::from(v)))
    .collect();
    let mut money = |cur: &str, spend, revenue, refunded, email| {
        for (c, v) in VIEW_MONEY.iter().zip([spend, revenue, refunded, email]) {
            out.insert(format!("{c}/{cur}"), v);
        }
    };
    money(
        &r.currency,
        r.awareness.spend,
        r.conversion.revenue,
        r.feedback.refunded_amount,
        r.retention.email_attributed_revenue,
    );
    for (cur, o) in &r.other_currencies {
        money(
            cur,
            o.spend,
            o.revenue,
            o.refunded_amount,
            o.email_attributed_revenue,
        );
    }
    out.retain(|_, v| !v.is_zero());
    out
}

#[test]
fn funnel_daily_sums_to_the_report_in_each_store() {
    let conn = fixture();
    let schema = TestSchema::new("funnel_daily");
    let mut pg = schema.as_ref().map(|s| copy_to_postgres(&conn, s));
    let mut stores = vec!["sqlite"];
    if pg.is_some() {
        stores.push("postgres");
    }
    for store in stores {
        for (since, until, currency) in [
            ("2025-03-01", "2025-03-30", None),
            ("2025-03-01", "2025-03-30", Some("EUR")),
            ("2025-02-01", "2025-04-30", None),
            ("2025-03-15", "2025-03-15", None),
        ] {
            let opts = ReportOptions {
                currency: currency.map(str::to_string),
                ..window(since, until)
            };
            let report = match (store, pg.as_mut()) {
                ("sqlite", _) => build_report(&conn, &opts).unwrap(),
                (_, Some(client)) => build_report(&mut *client, &opts).unwrap(),
                _ => unreachable!(),
            };
            let want = report_totals(&report);
            let got = view_totals(store, &conn, pg.as_mut(), since, until);
            assert!(
                want["orders"] > Decimal::ZERO || since == "2025-03-15",
                "{store}: the window has orders"
            );
            assert_eq!(got, want, "{store}: {since}..={until} {currency:?}");
        }
    }
}

#[test]
fn clicks_sent_as_text_count_and_a_non_number_is_zero_in_each_store() {
    let c = db();
    for clicks in [json!("5"), json!(2), json!("n/a"), json!(null)] {
        event(
            &c,
            Ev {
                source: "ads",
                event_type: "ad_insights",
                campaign: Some("Brand"),
                quantity: 100.0,
                value: Some(1.0),
                currency: Some("USD"),
                attributes: json!({ "clicks": clicks }),
                ..Default::default()
            },
        );
    }
    let opts = window("2025-03-15", "2025-03-15");
    for (store, r) in each(&c, &opts) {
        let r = r.unwrap_or_else(|e| panic!("{store}: {e}"));
        assert_eq!(r.awareness.clicks, 7, "{store}");
        assert_eq!(r.campaigns[0].clicks, 7, "{store}");
    }
    let view: i64 = c
        .query_row("SELECT SUM(clicks) FROM funnel_daily", [], |r| r.get(0))
        .unwrap();
    assert_eq!(view, 7);
}
