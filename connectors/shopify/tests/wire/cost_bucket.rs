//! Cost bucket: THROTTLED at 200, pacing, MAX_COST_EXCEEDED.

use super::*;

#[tokio::test]
async fn throttled_at_200_waits_exactly_what_the_bucket_needs_then_succeeds() {
    let h = Harness::start().await;
    h.graphql()
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("throttled.json")))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&h.server)
        .await;
    h.graphql()
        .respond_with(page(
            "orders",
            vec![order(1, "2025-03-02T10:00:00Z")],
            None,
            1900,
        ))
        .expect(1)
        .mount(&h.server)
        .await;
    let guard = h.catch_all().await;
    let pages = read_all(&h.connector(), read_request("orders", None))
        .await
        .unwrap();
    assert_eq!(ids(&pages), ["1"]);
    // (requestedQueryCost 612 − currentlyAvailable 58) / restoreRate 100 = 5.54 s, once.
    assert_eq!(h.clock.sleeps(), vec![Duration::from_millis(5540)]);
    assert_eq!(h.finish(guard).await.len(), 2);
}

#[tokio::test]
async fn a_falling_bucket_makes_the_client_pause_before_it_runs_dry() {
    let h = Harness::start().await;
    // Customers: the default page (100) fits the query cost limit from the start, so the size stays.
    // Each page costs 400; the bucket reports 1500, then 250 (too little for the next page), then 1000.
    h.graphql()
        .and(Var("after", Value::Null))
        .respond_with(page(
            "customers",
            vec![customer(1, "2025-03-02T10:00:00Z")],
            Some("c1"),
            1500,
        ))
        .mount(&h.server)
        .await;
    h.graphql()
        .and(Var("after", json!("c1")))
        .respond_with(page(
            "customers",
            vec![customer(2, "2025-03-03T10:00:00Z")],
            Some("c2"),
            250,
        ))
        .mount(&h.server)
        .await;
    h.graphql()
        .and(Var("after", json!("c2")))
        .respond_with(page(
            "customers",
            vec![customer(3, "2025-03-04T10:00:00Z")],
            None,
            1000,
        ))
        .mount(&h.server)
        .await;
    let guard = h.catch_all().await;
    let pages = read_all(&h.connector(), read_request("customers", None))
        .await
        .unwrap();
    assert_eq!(ids(&pages), ["1", "2", "3"]);
    // After page 2 only 250 of the 400 points are left: wait (400 − 250) / 100 = 1.5 s, and only then.
    assert_eq!(h.clock.sleeps(), vec![Duration::from_millis(1500)]);
    assert_eq!(h.finish(guard).await.len(), 3);
}

#[tokio::test]
async fn max_cost_exceeded_halves_the_page_size_and_keeps_it() {
    // Customers start at the configured 100 (their estimated cost fits); Shopify still says no.
    let h = Harness::start().await;
    h.graphql()
        .and(Var("first", json!(100)))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("max_cost_exceeded.json")))
        .expect(1)
        .mount(&h.server)
        .await;
    h.graphql()
        .and(Var("first", json!(50)))
        .and(Var("after", Value::Null))
        .respond_with(page(
            "customers",
            vec![customer(1, "2025-03-02T10:00:00Z")],
            Some("c1"),
            1900,
        ))
        .mount(&h.server)
        .await;
    h.graphql()
        .and(Var("first", json!(50)))
        .and(Var("after", json!("c1")))
        .respond_with(page(
            "customers",
            vec![customer(2, "2025-03-03T10:00:00Z")],
            None,
            1900,
        ))
        .mount(&h.server)
        .await;
    let guard = h.catch_all().await;
    let pages = read_all(&h.connector(), read_request("customers", None))
        .await
        .unwrap();
    assert_eq!(ids(&pages), ["1", "2"]);
    let requests = h.finish(guard).await;
    let firsts: Vec<Value> = requests
        .iter()
        .map(|r| variables(r)["first"].clone())
        .collect();
    assert_eq!(firsts, [json!(100), json!(50), json!(50)]);
    assert!(h.clock.sleeps().is_empty(), "not a throttle: no waiting");
}
