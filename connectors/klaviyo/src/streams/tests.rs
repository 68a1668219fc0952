//! Unit tests of the stream specs and read plans, apart to keep `streams/mod.rs` under ~700 lines.

use super::*;
use serde_json::json;

#[test]
fn included_resources_are_joined_by_relationship() {
    let mut doc = json!({
        "data": [
            {"type": "event", "id": "e1", "attributes": {"datetime": "2024-06-01T08:00:00+00:00"},
             "relationships": {
                "metric": {"data": {"type": "metric", "id": "m1"}},
                "profile": {"data": {"type": "profile", "id": "p-missing"}},
                "attributions": {"data": [{"type": "attribution", "id": "a1"}]}}}
        ],
        "included": [
            {"type": "metric", "id": "m1", "attributes": {"name": "Opened Email"}},
            {"type": "attribution", "id": "a1", "relationships": {}}
        ]
    });
    let items = join_included(&mut doc);
    assert_eq!(
        items[0]["included"],
        json!({
            "metric": {"type": "metric", "id": "m1", "attributes": {"name": "Opened Email"}},
            "attributions": [{"type": "attribution", "id": "a1", "relationships": {}}]
        })
    );
    let r = to_record(&Spec::of("events").unwrap(), &items[0]).unwrap();
    assert_eq!(r.cursor.as_deref(), Some("2024-06-01T08:00:00Z"));

    let mut plain = json!({"data": [{"type": "list", "id": "l1"}]});
    assert_eq!(
        join_included(&mut plain),
        vec![json!({"type": "list", "id": "l1"})]
    );
}

#[test]
fn events_fall_back_to_the_epoch_timestamp() {
    let r = to_record(
        &Spec::of("events").unwrap(),
        &json!({"id": "e", "attributes": {"datetime": null, "timestamp": 1717228800}}),
    )
    .unwrap();
    assert_eq!(r.cursor.as_deref(), Some("2024-06-01T08:00:00Z"));
    let r = to_record(
        &Spec::of("metrics").unwrap(),
        &json!({"id": "m", "attributes": {"updated": "2021-03-31T10:50:36.123456"}}),
    )
    .unwrap();
    assert_eq!(r.cursor.as_deref(), Some("2021-03-31T10:50:36Z"));
    assert!(to_record(&Spec::of("events").unwrap(), &json!({"attributes": {}})).is_err());
}

fn reader() -> Reader {
    Reader {
        client: HttpClient::builder(Arc::new(growthflow_core::http::DefaultPolicy("Klaviyo")))
            .build()
            .unwrap(),
        api_base: Url::parse("https://a.klaviyo.com/api").unwrap(),
        revision: "2026-07-15".into(),
        lookback_days: 3,
        limiter: crate::limits::concurrency(Arc::new(growthflow_core::http::TokioClock)),
        probed: Mutex::default(),
    }
}

fn filters_of(stream: &str, request: &ReadRequest) -> (Vec<String>, bool) {
    let (urls, keep) = reader().plan(&Spec::of(stream).unwrap(), request).unwrap();
    let filters = urls
        .iter()
        .map(|u| {
            u.query_pairs()
                .find(|(k, _)| k == "filter")
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        })
        .collect();
    (filters, matches!(keep, Keep::CreatedIn(..)))
}

#[test]
fn backfill_windows_filter_on_creation_time() {
    use chrono::TimeZone;
    let request = |stream: &str| ReadRequest {
        stream: stream.into(),
        state: Some(json!({"cursor": "2024-07-01T00:00:00Z"})),
        start: Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap(),
        window: Some(growthflow_core::connector::Window {
            since: Utc.with_ymd_and_hms(2024, 5, 1, 0, 0, 0).unwrap(),
            until: Utc.with_ymd_and_hms(2024, 6, 1, 0, 0, 0).unwrap(),
        }),
    };
    assert_eq!(
        filters_of("profiles", &request("profiles")),
        (
            vec!["greater-than(created,2024-04-30T23:59:59Z),less-than(created,2024-06-01T00:00:00Z)".to_string()],
            false
        )
    );
    assert_eq!(
        filters_of("campaigns", &request("campaigns")).0,
        vec![
            "equals(messages.channel,'email'),greater-or-equal(created_at,2024-05-01T00:00:00Z),less-than(created_at,2024-06-01T00:00:00Z)".to_string(),
            "equals(messages.channel,'sms'),greater-or-equal(created_at,2024-05-01T00:00:00Z),less-than(created_at,2024-06-01T00:00:00Z)".to_string(),
        ]
    );
    assert_eq!(
        filters_of("lists", &request("lists")),
        (vec![String::new()], true)
    );
    assert_eq!(
        filters_of("metrics", &request("metrics")),
        (vec![String::new()], false)
    );
}

#[test]
fn streams_are_declared_once_each() {
    let defs = stream_defs();
    for d in &defs {
        assert_eq!(&Spec::of(d.name).unwrap().def, d);
    }
    let unsorted: Vec<&str> = defs.iter().filter(|d| !d.sorted).map(|d| d.name).collect();
    assert_eq!(unsorted, ["metrics", "campaigns"]);
}
