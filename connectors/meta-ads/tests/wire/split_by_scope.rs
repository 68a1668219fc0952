//! A failing day split by campaign then by ad set, on the fake Graph API.

use super::*;

#[tokio::test]
async fn a_failing_day_is_split_by_campaign_then_by_ad_set_and_only_parts_retried() {
    let server = MockServer::start().await;
    let clock = pinned();
    let fake = FakeGraph::new("2024-05-20", &["account", "c1"]);
    mount_fake(&server, &fake).await;
    let catch_all = mount_catch_all(&server).await;
    let meta = connector(&server, &clock);
    let pages = read_pages(
        &meta,
        request("ad_insights", None, window((2024, 5, 1), (2024, 6, 1))),
    )
    .await
    .unwrap();

    // Every job, in the order started: each failed range's parts are started in the round that
    // saw it fail (up to four jobs running), so the halving reaches the failing day a round at a time
    // while the halves that completed wait to be read; that day per campaign, the failing
    // campaign-day per ad set. Each part is run once, and the set of jobs is the same as when they
    // ran one by one.
    let campaign =
        |id: &str| Some(json!([{"field": "campaign.id", "operator": "IN", "value": [id]}]));
    let adset = |id: &str| Some(json!([{"field": "adset.id", "operator": "IN", "value": [id]}]));
    let range = |a: &str, b: &str| json!({"since": a, "until": b}).to_string();
    let jobs: Vec<(String, Option<Value>)> = fake
        .jobs()
        .iter()
        .map(|(r, level, f)| {
            assert_eq!(level, "ad", "parts are still read at level=ad");
            (r.clone(), f.clone())
        })
        .collect();
    let day = "2024-05-20";
    assert_eq!(
        jobs,
        vec![
            (range("2024-05-01", "2024-05-31"), None), // round 1: fails
            (range("2024-05-01", "2024-05-15"), None), // round 2: completes
            (range("2024-05-16", "2024-05-31"), None), // round 2: fails
            (range("2024-05-16", "2024-05-23"), None), // round 3: fails
            (range("2024-05-24", "2024-05-31"), None), // round 3: completes
            (range("2024-05-16", "2024-05-19"), None),
            (range("2024-05-20", "2024-05-23"), None), // round 4: fails
            (range("2024-05-20", "2024-05-21"), None), // round 5: fails
            (range("2024-05-22", "2024-05-23"), None),
            (range(day, day), None), // round 6: fails
            (range("2024-05-21", "2024-05-21"), None),
            (range(day, day), campaign("c1")), // round 7: fails
            (range(day, day), campaign("c2")),
            (range(day, day), adset("s1")), // round 8: both complete
            (range(day, day), adset("s2")),
        ]
    );
    assert!(fake.max_running() <= 4);
    // The listings: campaigns of the day, then ad sets of the failed campaign.
    let listings: Vec<(String, Option<String>)> = server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.method.as_str() == "GET" && r.url.path() == INSIGHTS)
        .map(|r| {
            let q = query_map(r);
            assert_eq!(q["time_range"], range(day, day));
            (q["level"].clone(), q.get("filtering").cloned())
        })
        .collect();
    assert_eq!(
        listings,
        vec![
            ("campaign".to_string(), None),
            (
                "adset".to_string(),
                Some(campaign("c1").unwrap().to_string())
            ),
        ]
    );

    // Every ad's every day exactly once.
    let mut ids: Vec<String> = pages
        .iter()
        .flat_map(|p| &p.records)
        .map(|r| r.id.clone())
        .collect();
    assert_eq!(ids.len(), 31 * 3);
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 31 * 3, "no row twice");

    // The split day is claimed complete only by its last part.
    let checkpoints: Vec<Option<Value>> = pages.iter().map(|p| p.checkpoint.clone()).collect();
    let cp = |d: &str| Some(json!({ "cursor": d }));
    assert_eq!(
        checkpoints,
        vec![
            cp("2024-05-15"),
            cp("2024-05-19"),
            cp("2024-05-19"), // s1's part of the 20th
            cp("2024-05-19"), // s2's
            cp("2024-05-20"), // c2's, the day's last part
            cp("2024-05-21"),
            cp("2024-05-23"),
            cp("2024-05-31"),
        ]
    );
    // Eight polling rounds, each after 1 s: every round started new jobs, which resets the wait.
    assert_eq!(waits(&clock), vec![Duration::from_secs(1); 8]);
    assert_no_unexpected(catch_all).await;
}

#[tokio::test]
async fn an_ad_set_day_that_fails_is_an_error_naming_the_day_and_ad_set() {
    let server = MockServer::start().await;
    let clock = pinned();
    let fake = FakeGraph::new("2024-05-20", &["account", "c1", "s2"]);
    mount_fake(&server, &fake).await;
    let catch_all = mount_catch_all(&server).await;
    let meta = connector(&server, &clock);
    // The parts read before the error never claim the failing day.
    let mut pages = Vec::new();
    let mut stream = meta.read(request(
        "ad_insights",
        None,
        window((2024, 5, 15), (2024, 6, 16)),
    ));
    let err = loop {
        match futures::StreamExt::next(&mut stream).await {
            Some(Ok(p)) => pages.push(p),
            Some(Err(e)) => break e,
            None => panic!("the read ended without the error"),
        }
    };
    let message = err.to_string();
    assert!(message.contains("2024-05-20"), "{message}");
    assert!(message.contains("ad set s2"), "{message}");
    assert!(message.contains("run again later"), "{message}");
    let last = pages.iter().rev().find_map(|p| p.checkpoint.clone());
    assert_eq!(last, Some(json!({"cursor": "2024-05-19"})));
    // s1's rows of the day arrived; s2's part was the last job.
    assert!(pages
        .iter()
        .flat_map(|p| &p.records)
        .any(|r| r.id == "a1:2024-05-20"));
    assert_eq!(
        fake.jobs().last().unwrap().2,
        Some(json!([{"field": "adset.id", "operator": "IN", "value": ["s2"]}]))
    );
    assert_no_unexpected(catch_all).await;
}
