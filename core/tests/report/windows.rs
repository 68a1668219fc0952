//! Report windows: inclusive boundaries, the default window, half-open and backwards windows.

use super::*;

#[test]
fn window_boundaries_are_inclusive() {
    let conn = fixture();
    // Only bob's order at 2025-03-01T00:00:00Z, the GA4 "(direct)" row and nothing else that day.
    let r = build(&conn, &window("2025-03-01", "2025-03-01")).unwrap();
    assert_eq!(r.conversion.orders, 1);
    assert_eq!(r.conversion.revenue.to_string(), "19.99");
    assert_eq!(r.awareness.sessions, 100);
    // Only carol's order at 2025-03-30T23:59:59Z, the GA4 "(organic)" row and one email open.
    let r = build(&conn, &window("2025-03-30", "2025-03-30")).unwrap();
    assert_eq!(r.conversion.orders, 1);
    assert_eq!(r.conversion.revenue.to_string(), "30.01");
    assert_eq!(r.awareness.sessions, 5);
    assert_eq!(r.consideration.email_opens, 1);
    // The day before and the day after the main window hold frank's and bob's orders.
    let r = build(&conn, &window("2025-02-28", "2025-02-28")).unwrap();
    assert_eq!(r.conversion.orders, 1);
    assert_eq!(r.conversion.revenue.to_string(), "60");
    let r = build(&conn, &window("2025-03-31", "2025-03-31")).unwrap();
    assert_eq!(r.conversion.orders, 1);
    assert_eq!(r.conversion.revenue.to_string(), "40");
    assert_eq!(r.feedback.reported_purchases.meta_ads, 10);
}

#[test]
fn default_window_is_the_last_30_days_of_data() {
    let conn = fixture();
    // Latest data: the refund dated 2025-04-02 (later than any order) → 2025-03-04 ..= 2025-04-02.
    let r = build(&conn, &ReportOptions::default()).unwrap();
    assert_eq!((r.since, r.until), (d("2025-03-04"), d("2025-04-02")));
    // Valid orders in it: 1002 50.10, 1004 10.00, 1006 20.00, 2002 30.01, 1005 40.00.
    assert_eq!(r.conversion.orders, 5);
    // (1004's 10.00 is in EUR, left out of the USD revenue.)
    assert_eq!(r.conversion.revenue.to_string(), "140.11");

    // Orders only: the latest order's date ends the window; a day 30 days back is outside.
    let c = db();
    for (id, at) in [
        ("1", "2025-01-01T12:00:00Z"),
        ("2", "2025-01-02T00:00:00Z"),
        ("3", "2025-01-31T23:00:00Z"),
    ] {
        order(
            &c,
            Order {
                id,
                created_at: at,
                total: 1.0,
                ..Default::default()
            },
        );
    }
    let r = build(&c, &ReportOptions::default()).unwrap();
    assert_eq!((r.since, r.until), (d("2025-01-02"), d("2025-01-31")));
    assert_eq!(r.conversion.orders, 2);
}

#[test]
fn half_open_windows_and_backwards_windows() {
    let conn = fixture();
    let r = build(
        &conn,
        &ReportOptions {
            since: None,
            until: Some(d("2025-03-30")),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!((r.since, r.until), (d("2025-03-01"), d("2025-03-30")));
    let r = build(
        &conn,
        &ReportOptions {
            since: Some(d("2025-03-20")),
            until: None,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!((r.since, r.until), (d("2025-03-20"), d("2025-04-02")));
    // A since after the data ends still gives a (one-day) window, not an error.
    let r = build(
        &conn,
        &ReportOptions {
            since: Some(d("2026-01-01")),
            until: None,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!((r.since, r.until), (d("2026-01-01"), d("2026-01-01")));
    assert_eq!(r.conversion.orders, 0);
    let err = build(&conn, &window("2025-03-30", "2025-03-01")).unwrap_err();
    assert!(matches!(err, ReportError::InvalidWindow { .. }), "{err}");
}

/// Customers whose first order is before the window and last after it: their summaries cannot say
/// whether they ordered in the window, so their orders are looked up (per currency for the lifetime
/// value). The window 2025-03-01 ..= 2025-03-30, with orders before, in and after it.
#[test]
fn customers_whose_orders_straddle_the_window() {
    let conn = db();
    #[rustfmt::skip]
    let orders = [
        // gina: before, in, after → customer, repeat; lifetime value to `until` 10 + 20.
        ("g1", "gina", "2025-02-01T10:00:00Z", "USD", 1, 10.0, false),
        ("g2", "gina", "2025-03-10T10:00:00Z", "USD", 2, 20.0, false),
        ("g3", "gina", "2025-04-05T10:00:00Z", "USD", 3, 40.0, false),
        // hank: before and after only → neither.
        ("h1", "hank", "2025-02-01T10:00:00Z", "USD", 1, 5.0, false),
        ("h2", "hank", "2025-04-05T10:00:00Z", "USD", 2, 7.0, false),
        // ivy: in the window only cancelled → neither.
        ("i1", "ivy", "2025-02-01T10:00:00Z", "USD", 1, 3.0, false),
        ("i2", "ivy", "2025-03-10T10:00:00Z", "USD", 2, 3.0, true),
        ("i3", "ivy", "2025-04-05T10:00:00Z", "USD", 3, 3.0, false),
        // jo: first in the window, the repeat after it → customer, not repeat; value 1.
        ("j1", "jo", "2025-03-10T10:00:00Z", "USD", 1, 1.0, false),
        ("j2", "jo", "2025-04-01T10:00:00Z", "USD", 2, 2.0, false),
        // kim: repeats before, in and after → customer, repeat; value 4 + 6 + 8.
        ("k1", "kim", "2025-02-01T10:00:00Z", "USD", 1, 4.0, false),
        ("k2", "kim", "2025-02-15T10:00:00Z", "USD", 2, 6.0, false),
        ("k3", "kim", "2025-03-12T10:00:00Z", "USD", 3, 8.0, false),
        ("k4", "kim", "2025-04-02T10:00:00Z", "USD", 4, 10.0, false),
        // mia: in the window in EUR only → customer, repeat, not in the USD lifetime value.
        ("m1", "mia", "2025-02-01T10:00:00Z", "USD", 1, 3.0, false),
        ("m2", "mia", "2025-03-10T10:00:00Z", "EUR", 2, 3.0, false),
        ("m3", "mia", "2025-04-05T10:00:00Z", "USD", 3, 3.0, false),
    ];
    for (id, customer, created_at, currency, index, total, cancelled) in orders {
        order(
            &conn,
            Order {
                id,
                customer: Some(customer),
                created_at,
                currency,
                total,
                cancelled,
                index: Some(index),
                ..Default::default()
            },
        );
    }
    let r = build(&conn, &window("2025-03-01", "2025-03-30")).unwrap();
    assert_eq!(r.currency, "USD");
    // gina, jo, kim, mia; gina, kim, mia.
    assert_eq!(
        (r.retention.customers, r.retention.repeat_customers),
        (4, 3)
    );
    // gina 30, jo 1, kim 18.
    assert_eq!(r.retention.ltv, Some(49.0 / 3.0));
    // Over every order: everyone, each with a valid repeat order; USD 70 + 12 + 6 + 3 + 28 + 6.
    let r = build(&conn, &window("2025-02-01", "2025-04-05")).unwrap();
    assert_eq!(
        (r.retention.customers, r.retention.repeat_customers),
        (6, 6)
    );
    assert_eq!(r.retention.ltv, Some(125.0 / 6.0));
}
