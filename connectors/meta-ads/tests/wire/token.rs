//! The access token: an expired one says to renew it; it is never shown nor sent to another host.

use super::*;

#[tokio::test]
async fn an_expired_token_says_to_renew_it_and_never_shows_it() {
    let server = MockServer::start().await;
    let clock = pinned();
    Mock::given(method("GET"))
        .and(path(CAMPAIGNS))
        .respond_with(
            ResponseTemplate::new(400)
                .insert_header("content-type", "application/json")
                .set_body_json(fixture("error_190.json", "")),
        )
        .expect(1)
        .mount(&server)
        .await;
    let catch_all = mount_catch_all(&server).await;
    let meta = connector(&server, &clock);
    let err = meta.check().await.unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, Error::Auth { .. }), "{err:?}");
    assert!(message.contains("source \"meta\""), "{message}");
    assert!(message.contains("190/463"), "{message}");
    assert!(message.contains("renew the token"), "{message}");
    assert!(!message.contains(TOKEN), "{message}");
    assert!(!format!("{err:?}").contains(TOKEN));
    assert!(!format!("{meta:?}").contains(TOKEN));
    let mut config = MetaAdsConfig::new("act_123456789012345", TOKEN);
    config.base_url = Some(server.uri());
    assert!(!format!("{config:?}").contains(TOKEN));
    assert!(clock.sleeps().is_empty(), "auth errors are not retried");
    assert_no_unexpected(catch_all).await;
}

#[tokio::test]
async fn a_next_url_on_another_host_is_refused() {
    let server = MockServer::start().await;
    let clock = pinned();
    Mock::given(method("GET"))
        .and(path(CAMPAIGNS))
        .respond_with(ok(fixture("campaigns.json", "https://evil.example")))
        .expect(1)
        .mount(&server)
        .await;
    let catch_all = mount_catch_all(&server).await;
    let meta = connector(&server, &clock);
    let err = read_pages(&meta, request("campaigns", None, None))
        .await
        .unwrap_err();
    match &err {
        Error::OffOrigin { host, .. } => assert_eq!(host, "evil.example"),
        other => panic!("expected OffOrigin, got {other:?}"),
    }
    assert!(err.to_string().contains("evil.example"), "{err}");
    assert!(!err.to_string().contains(STALE), "{err}");
    assert!(!err.to_string().contains(TOKEN), "{err}");
    assert_no_unexpected(catch_all).await;
}
