//! User OAuth: the refresh grant, one refresh on a 401, the testing app's expiry, batched reads.

use super::*;

const CLIENT_SECRET: &str = "GOCSPX-not-a-real-client-secret";
const REFRESH_TOKEN: &str = "1//0g-not-a-real-refresh-token";

fn oauth_connector(server: &MockServer, clock: &TestClock) -> Ga4 {
    let config: Ga4Config = serde_json::from_value(json!({
        "property_id": "123456789",
        "client_id": "1234-abc.apps.googleusercontent.com",
        "client_secret": CLIENT_SECRET,
        "refresh_token": REFRESH_TOKEN,
        "token_url": format!("{}/oauth/token", server.uri()),
        "base_url": server.uri(),
    }))
    .unwrap();
    Ga4::new(
        "web",
        config,
        &ClientOptions::with_clock(Arc::new(clock.clone())),
    )
    .unwrap()
}

fn user_token(token: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(
        json!({"access_token": token, "expires_in": 3599, "token_type": "Bearer",
               "scope": "https://www.googleapis.com/auth/analytics.readonly"}),
    )
}

fn form(req: &Request) -> std::collections::BTreeMap<String, String> {
    url::form_urlencoded::parse(&req.body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

async fn token_requests(server: &MockServer) -> Vec<Request> {
    server
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.url.path() == "/oauth/token")
        .collect()
}

#[tokio::test]
async fn user_oauth_posts_the_refresh_grant_and_reuses_the_bearer_token() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/oauth/token"))
        .respond_with(user_token("ya29.user-1"))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(META))
        .and(header("authorization", "Bearer ya29.user-1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("metadata.json")))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(BATCH))
        .and(header("authorization", "Bearer ya29.user-1"))
        .respond_with(Reports(|day: &str, offset, limit| {
            day_report(day, &["google"], offset, limit)
        }))
        .expect(2)
        .mount(&server)
        .await;
    let catch_all = mount_catch_all(&server).await;
    let clock = TestClock::at(Utc.with_ymd_and_hms(2024, 7, 1, 0, 0, 0).unwrap());
    let ga4 = oauth_connector(&server, &clock);
    ga4.check().await.unwrap();
    assert_eq!(read_pages(&ga4, one_day(1)).await.unwrap().len(), 1);
    assert_eq!(read_pages(&ga4, one_day(2)).await.unwrap().len(), 1);

    let tokens = token_requests(&server).await;
    assert_eq!(
        tokens.len(),
        1,
        "the access token is cached across requests"
    );
    let f = form(&tokens[0]);
    assert_eq!(
        f.get("grant_type").map(String::as_str),
        Some("refresh_token")
    );
    assert_eq!(
        f.get("refresh_token").map(String::as_str),
        Some(REFRESH_TOKEN)
    );
    assert_eq!(
        f.get("client_id").map(String::as_str),
        Some("1234-abc.apps.googleusercontent.com")
    );
    assert_eq!(
        f.get("client_secret").map(String::as_str),
        Some(CLIENT_SECRET)
    );
    assert!(
        !tokens[0].headers.contains_key("authorization"),
        "client credentials go in the body"
    );
    assert_no_unexpected(catch_all).await;
}

#[tokio::test]
async fn a_401_refreshes_the_user_token_once() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/oauth/token"))
        .respond_with(user_token("ya29.user-1"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/oauth/token"))
        .respond_with(user_token("ya29.user-2"))
        .with_priority(2)
        .mount(&server)
        .await;
    mount_metadata(&server).await;
    let unauthenticated = ResponseTemplate::new(401).set_body_json(json!({"error":{"code":401,
        "message":"Request had invalid authentication credentials.","status":"UNAUTHENTICATED"}}));
    Mock::given(method("POST"))
        .and(path(BATCH))
        .and(header("authorization", "Bearer ya29.user-1"))
        .respond_with(unauthenticated.clone())
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(BATCH))
        .and(header("authorization", "Bearer ya29.user-2"))
        .respond_with(Reports(|day: &str, offset, limit| {
            day_report(day, &["google"], offset, limit)
        }))
        .mount(&server)
        .await;
    let catch_all = mount_catch_all(&server).await;
    let clock = TestClock::at(Utc.with_ymd_and_hms(2024, 7, 1, 0, 0, 0).unwrap());
    let ga4 = oauth_connector(&server, &clock);
    let pages = read_pages(&ga4, one_day(1)).await.unwrap();
    assert_eq!(pages[0].records.len(), 1);
    assert_eq!(
        token_requests(&server).await.len(),
        2,
        "refreshed after the 401"
    );
    assert_eq!(
        bodies(&server, BATCH).await.len(),
        2,
        "the report was replayed once"
    );
    assert_no_unexpected(catch_all).await;

    // A token the API keeps refusing is refreshed once, then the source fails on auth.
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/oauth/token"))
        .respond_with(user_token("ya29.user-1"))
        .mount(&server)
        .await;
    mount_metadata(&server).await;
    Mock::given(method("POST"))
        .and(path(BATCH))
        .respond_with(unauthenticated)
        .mount(&server)
        .await;
    let catch_all = mount_catch_all(&server).await;
    let ga4 = oauth_connector(&server, &clock);
    let err = read_pages(&ga4, one_day(1)).await.unwrap_err();
    assert!(matches!(err, Error::Auth { .. }), "{err}");
    assert!(err.to_string().contains("source \"web\""), "{err}");
    assert_eq!(token_requests(&server).await.len(), 2);
    assert_eq!(bodies(&server, BATCH).await.len(), 2);
    assert_no_unexpected(catch_all).await;
}

#[tokio::test]
async fn invalid_grant_names_the_source_and_the_testing_apps_7_day_expiry() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/oauth/token"))
        .respond_with(ResponseTemplate::new(400).set_body_json(
            json!({"error":"invalid_grant","error_description":"Token has been expired or revoked."}),
        ))
        .expect(1)
        .mount(&server)
        .await;
    let catch_all = mount_catch_all(&server).await;
    let clock = TestClock::new();
    let ga4 = oauth_connector(&server, &clock);
    let err = ga4.check().await.unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::Auth { .. }), "{msg}");
    assert!(msg.contains("invalid_grant"), "{msg}");
    assert!(msg.contains("source \"web\""), "{msg}");
    assert!(msg.contains("sources.web.refresh_token"), "{msg}");
    assert!(
        msg.contains("\"Testing\"") && msg.contains("7 days"),
        "{msg}"
    );
    for shown in [msg, format!("{err:?}"), format!("{ga4:?}")] {
        assert!(
            !shown.contains(CLIENT_SECRET) && !shown.contains(REFRESH_TOKEN),
            "a secret leaked: {shown}"
        );
    }
    assert_no_unexpected(catch_all).await;
}

#[tokio::test]
async fn user_reports_are_batched_and_replace_their_days_too() {
    let server = MockServer::start().await;
    mount_token(&server).await;
    mount_metadata(&server).await;
    Mock::given(method("POST"))
        .and(path(BATCH))
        .respond_with(Reports(|day: &str, offset, limit| {
            let sources: &[&str] = if day == "2024-06-01" {
                &["DE", "FR"]
            } else {
                &[]
            };
            day_report(day, sources, offset, limit)
        }))
        .expect(2)
        .mount(&server)
        .await;
    let catch_all = mount_catch_all(&server).await;
    let mut config = Ga4Config::with_service_account("123456789", key_file(&server, "user-report"));
    config.base_url = Some(server.uri());
    config.reports = vec![ReportConfig {
        name: "by_country".into(),
        dimensions: vec!["country".into()],
        metrics: vec!["sessions".into()],
        dimension_filter: Some(json!({"filter":{"fieldName":"country",
            "inListFilter":{"values":["DE","FR"]}}})),
    }];
    let clock = TestClock::at(Utc.with_ymd_and_hms(2024, 7, 1, 0, 0, 0).unwrap());
    let ga4 = Ga4::new(
        "web",
        config,
        &ClientOptions::with_clock(Arc::new(clock.clone())),
    )
    .unwrap();
    let mut req = window((6, 1), (6, 3));
    req.stream = "report_by_country".into();
    let pages = read_pages(&ga4, req).await.unwrap();
    assert_eq!(
        summary(&pages),
        vec![
            (
                2,
                Some("2024-06-01".into()),
                Some(json!({"cursor": "2024-06-01"}))
            ),
            (
                0,
                Some("2024-06-02".into()),
                Some(json!({"cursor": "2024-06-02"}))
            )
        ]
    );
    let batches = bodies(&server, BATCH).await;
    let asked: Vec<Vec<String>> = batches.iter().map(batch_days).collect();
    assert_eq!(asked, [vec!["2024-06-01"], vec!["2024-06-02"]]);
    for inner in batches
        .iter()
        .flat_map(|b| b["requests"].as_array().unwrap())
    {
        assert_eq!(
            inner["dimensions"],
            json!([{"name":"date"},{"name":"country"}])
        );
        assert_eq!(inner["dimensionFilter"]["filter"]["fieldName"], "country");
    }
    assert_no_unexpected(catch_all).await;
}
