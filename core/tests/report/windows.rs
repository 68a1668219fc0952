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
