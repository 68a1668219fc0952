//! The simulated Klaviyo account over HTTP: auth, revision, filters, cursors, includes and rate tiers.

use std::collections::HashSet;

use growthflow_sandbox::{KlaviyoAccount, Sandbox, SandboxConfig};
use serde_json::Value;

const REVISION: &str = "2026-07-15";

async fn start() -> Sandbox {
    Sandbox::start(SandboxConfig::default()).await.unwrap()
}

fn client() -> reqwest::Client {
    reqwest::Client::new()
}

async fn get(sandbox: &Sandbox, url: &str) -> (u16, reqwest::header::HeaderMap, Value) {
    let resp = client()
        .get(url)
        .header(
            "Authorization",
            format!("Klaviyo-API-Key {}", sandbox.klaviyo().api_key),
        )
        .header("revision", REVISION)
        .header("accept", "application/vnd.api+json")
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.json().await.unwrap_or(Value::Null);
    (status, headers, body)
}

/// Every item of a collection, following `links.next`; also the number of pages.
async fn all(sandbox: &Sandbox, first: &str) -> (Vec<Value>, Vec<Value>, usize) {
    let (mut data, mut included, mut pages) = (Vec::new(), Vec::new(), 0);
    let mut url = Some(first.to_string());
    while let Some(u) = url {
        let (status, _, body) = get(sandbox, &u).await;
        assert_eq!(status, 200, "{u}: {body}");
        pages += 1;
        data.extend(body["data"].as_array().unwrap().iter().cloned());
        if let Some(inc) = body["included"].as_array() {
            included.extend(inc.iter().cloned());
        }
        url = body["links"]["next"].as_str().map(str::to_string);
    }
    (data, included, pages)
}

fn api(sandbox: &Sandbox, path: &str) -> String {
    format!("{}/api/{path}", sandbox.klaviyo_url())
}

#[test]
fn generation_is_deterministic_and_shaped() {
    let end = SandboxConfig::default().end;
    let emails: Vec<String> = (0..50).map(|i| format!("c{i}@example.com")).collect();
    let a = KlaviyoAccount::generate(7, 1, end, &emails);
    let b = KlaviyoAccount::generate(7, 1, end, &emails);
    assert_eq!(a.events, b.events);
    assert_eq!(a.profiles, b.profiles);
    assert_eq!(a.api_key, b.api_key);
    assert!(a.api_key.starts_with("pk_") && a.api_key.len() == 37);
    assert!(a.events.len() >= 2000, "{}", a.events.len());
    let start = end - chrono::Duration::days(180);
    for e in &a.events {
        let t = chrono::DateTime::parse_from_rfc3339(e["attributes"]["datetime"].as_str().unwrap())
            .unwrap();
        assert!(t >= start && t < end);
        assert_eq!(e["attributes"]["timestamp"].as_i64(), Some(t.timestamp()));
        assert!(a.metric_name(e).is_some());
    }
    let orders: Vec<&Value> = a
        .events
        .iter()
        .filter(|e| a.metric_name(e) == Some("Placed Order"))
        .collect();
    let attributed = orders
        .iter()
        .filter(|e| KlaviyoAccount::is_attributed(e))
        .count();
    assert!(attributed * 4 > orders.len() && attributed * 4 < orders.len() * 3);
    assert!(orders
        .iter()
        .all(|e| e["attributes"]["event_properties"]["$value"].is_number()));
    let channels: HashSet<&str> = a.campaigns.iter().map(|c| a.campaign_channel(c)).collect();
    assert_eq!(channels, HashSet::from(["email", "sms"]));
}

#[tokio::test]
async fn auth_and_revision_errors_are_json_api() {
    let sandbox = start().await;
    let url = api(&sandbox, "metrics");
    let resp = client()
        .get(&url)
        .header("revision", REVISION)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["errors"][0]["code"], "not_authenticated");
    let resp = client()
        .get(&url)
        .header("Authorization", "Klaviyo-API-Key pk_wrong")
        .header("revision", REVISION)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["errors"][0]["status"], 401);
    let resp = client()
        .get(&url)
        .header(
            "Authorization",
            format!("Klaviyo-API-Key {}", sandbox.klaviyo().api_key),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["errors"][0]["source"]["parameter"], "revision");
    let (status, headers, body) = get(&sandbox, &url).await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "application/vnd.api+json");
    assert_eq!(headers["ratelimit-limit"], "150");
    assert_eq!(body["data"].as_array().unwrap().len(), 6);
    // Campaigns need a channel filter; a page size over the maximum is refused.
    let (status, _, body) = get(&sandbox, &api(&sandbox, "campaigns")).await;
    assert_eq!(status, 400, "{body}");
    let (status, _, _) = get(
        &sandbox,
        &format!("{}?page[size]=101", api(&sandbox, "profiles")),
    )
    .await;
    assert_eq!(status, 400);
    let (status, _, _) = get(
        &sandbox,
        &format!(
            "{}?filter=greater-or-equal(updated,2024-01-01T00:00:00Z)",
            api(&sandbox, "profiles")
        ),
    )
    .await;
    assert_eq!(
        status, 400,
        "profiles allow only greater-than/less-than on updated"
    );
    sandbox.shutdown().await;
}

#[tokio::test]
async fn cursors_return_every_event_exactly_once_with_included_joins() {
    let sandbox = start().await;
    let account = sandbox.klaviyo();
    let url = format!(
        "{}?sort=datetime&include=metric,profile,attributions&fields[metric]=name,integration&fields[profile]=email&page[size]=300",
        api(&sandbox, "events")
    );
    let (data, included, pages) = all(&sandbox, &url).await;
    assert_eq!(pages, account.events.len().div_ceil(300));
    let ids: Vec<&str> = data.iter().map(|e| e["id"].as_str().unwrap()).collect();
    let unique: HashSet<&str> = ids.iter().copied().collect();
    assert_eq!(unique.len(), ids.len());
    assert_eq!(
        data, account.events,
        "every event once, in datetime order, as generated"
    );
    // Included resources are deduplicated per page and cover every relationship.
    let inc: HashSet<(String, String)> = included
        .iter()
        .map(|r| {
            (
                r["type"].as_str().unwrap().into(),
                r["id"].as_str().unwrap().into(),
            )
        })
        .collect();
    for e in &data {
        let m = e["relationships"]["metric"]["data"]["id"].as_str().unwrap();
        assert!(inc.contains(&("metric".into(), m.into())));
        let p = e["relationships"]["profile"]["data"]["id"]
            .as_str()
            .unwrap();
        assert!(inc.contains(&("profile".into(), p.into())));
        for a in e["relationships"]["attributions"]["data"]
            .as_array()
            .unwrap()
        {
            assert!(inc.contains(&("attribution".into(), a["id"].as_str().unwrap().into())));
        }
    }
    let profile = included.iter().find(|r| r["type"] == "profile").unwrap();
    assert_eq!(
        profile["attributes"]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        ["email"]
    );
    // Lists page by 10.
    let (lists, _, pages) = all(&sandbox, &api(&sandbox, "lists")).await;
    assert_eq!(lists.len(), account.lists.len());
    assert_eq!(pages, account.lists.len().div_ceil(10));
    sandbox.shutdown().await;
}

#[tokio::test]
async fn filters_select_what_the_connector_asks_for() {
    let sandbox = start().await;
    let account = sandbox.klaviyo();
    let since = "2025-05-01T00:00:00Z";
    let until = "2025-06-01T00:00:00Z";
    let url = format!(
        "{}?filter=greater-or-equal(datetime,{since}),less-than(datetime,{until})&sort=datetime&page[size]=1000",
        api(&sandbox, "events")
    );
    let (data, _, _) = all(&sandbox, &url).await;
    let expected: Vec<&Value> = account
        .events
        .iter()
        .filter(|e| {
            let d = e["attributes"]["datetime"].as_str().unwrap();
            ("2025-05-01T00:00:00+00:00".."2025-06-01T00:00:00+00:00").contains(&d)
        })
        .collect();
    assert!(!expected.is_empty());
    assert_eq!(data.iter().collect::<Vec<_>>(), expected);

    for channel in ["email", "sms"] {
        let url = format!(
            "{}?filter=equals(messages.channel,'{channel}'),greater-or-equal(updated_at,2015-01-01T00:00:00Z)",
            api(&sandbox, "campaigns")
        );
        let (data, _, _) = all(&sandbox, &url).await;
        let n = account
            .campaigns
            .iter()
            .filter(|c| account.campaign_channel(c) == channel)
            .count();
        assert_eq!(data.len(), n, "{channel}");
    }
    let url = format!(
        "{}?filter=greater-than(updated,2025-03-01T00:00:00Z)&sort=updated&page[size]=100",
        api(&sandbox, "profiles")
    );
    let (data, _, _) = all(&sandbox, &url).await;
    let n = account
        .profiles
        .iter()
        .filter(|p| p["attributes"]["updated"].as_str().unwrap() > "2025-03-01T00:00:00+00:00")
        .count();
    assert_eq!(data.len(), n);
    let updated: Vec<&str> = data
        .iter()
        .map(|p| p["attributes"]["updated"].as_str().unwrap())
        .collect();
    assert!(
        updated.windows(2).all(|w| w[0] <= w[1]),
        "sorted by updated"
    );
    sandbox.shutdown().await;
}

#[tokio::test]
async fn exceeding_a_tier_is_a_429_with_retry_after() {
    // On a clock that does not move, every request falls in the same burst window, however long a
    // loaded machine takes to send them.
    let sandbox = Sandbox::start_with_clock(
        SandboxConfig::default(),
        std::sync::Arc::new(growthflow_core::http::TestClock::new()),
    )
    .await
    .unwrap();
    assert_eq!(growthflow_sandbox::klaviyo::tier_of("flows"), Some((3, 60)));
    let url = api(&sandbox, "flows");
    let mut throttled = None;
    for _ in 0..12 {
        let (status, headers, body) = get(&sandbox, &url).await;
        if status == 429 {
            throttled = Some((headers, body));
            break;
        }
        assert_eq!(status, 200);
    }
    let (headers, body) = throttled.expect("the burst window of flows (3/s) was exceeded");
    let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry >= 1);
    assert_eq!(body["errors"][0]["code"], "throttled");
    assert!(sandbox.klaviyo().throttled_count() >= 1);
    sandbox.shutdown().await;
}
