//! SQLite takeover.

use super::*;

#[tokio::test]
async fn sqlite_lock_of_a_dead_process_on_this_host_is_taken_over_at_once() {
    let ds = SqliteFile::new();
    let host = RunOwner::this_process().host;
    let far = "2999-01-01T00:00:00.000000Z";
    // No such process (above Linux's largest pid), on this host: taken over at once.
    insert_row(&ds, "shop", "crashed-run", &host, 99_999_999, far);
    // The same pid on another host cannot be checked from here: still held.
    insert_row(&ds, "ads", "remote-run", "another-host", 99_999_999, far);
    // Another live process on this host (pid 1 always is): held.
    insert_row(&ds, "web", "live-run", &host, 1, far);
    let me = session(ds.target(), "me").await;
    let shop = taken(me.try_lock("shop").await.unwrap());
    assert_eq!(row_owner(&ds, "shop").as_deref(), Some("me"));
    assert_eq!(held(me.try_lock("ads").await.unwrap()).run_id, "remote-run");
    assert_eq!(held(me.try_lock("web").await.unwrap()).run_id, "live-run");
    drop(shop);
    assert!(me.held().await.unwrap().is_empty());
    assert_eq!(row_owner(&ds, "shop"), None);
}

#[tokio::test]
async fn sqlite_lock_with_an_expired_heartbeat_is_taken_over_and_its_holder_told() {
    let ds = SqliteFile::new();
    let now = Utc::now();
    let a = session_at(ds.target(), "run-a", now).await;
    let shop = taken(a.try_lock("shop").await.unwrap());
    // Within the ttl (2 minutes) the lock is a's...
    let b = session_at(ds.target(), "run-b", now + chrono::Duration::seconds(119)).await;
    assert_eq!(held(b.try_lock("shop").await.unwrap()).run_id, "run-a");
    drop(b);
    // ...after it, without a heartbeat, it is taken over.
    let c = session_at(ds.target(), "run-c", now + chrono::Duration::seconds(121)).await;
    let _shop_c = taken(c.try_lock("shop").await.unwrap());
    assert_eq!(row_owner(&ds, "shop").as_deref(), Some("run-c"));
    // a learns it at its next heartbeat, and its guard says so.
    assert_eq!(a.heartbeat().await.unwrap(), vec!["shop"]);
    assert!(shop.lost().unwrap().contains("another run took it over"));
    // Its guard's release leaves c's row alone.
    drop(shop);
    assert!(a.held().await.unwrap().is_empty());
    assert_eq!(row_owner(&ds, "shop").as_deref(), Some("run-c"));
}

#[tokio::test]
async fn a_heartbeat_keeps_a_sqlite_lock_alive() {
    let ds = SqliteFile::new();
    let now = Utc::now();
    let later = Arc::new(Mutex::new(now));
    let clock = later.clone();
    let a = LockSession::open(
        ds.target(),
        owner("run-a"),
        LockSettings {
            wall_clock: Arc::new(move || *clock.lock().unwrap()),
            ..LockSettings::default()
        },
    )
    .await
    .unwrap();
    let _shop = taken(a.try_lock("shop").await.unwrap());
    *later.lock().unwrap() = now + chrono::Duration::seconds(100);
    assert!(a.heartbeat().await.unwrap().is_empty());
    // 200 s after the lock was taken, 100 s after its heartbeat: still a's.
    let b = session_at(ds.target(), "run-b", now + chrono::Duration::seconds(200)).await;
    assert_eq!(held(b.try_lock("shop").await.unwrap()).run_id, "run-a");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_runs_racing_for_a_stale_lock_never_both_win() {
    let ds = SqliteFile::new();
    let host = RunOwner::this_process().host;
    let mut sessions = Vec::new();
    for i in 0..4 {
        sessions.push(session(ds.target(), &format!("racer-{i}")).await);
    }
    for round in 0..25 {
        let source = format!("s{round}");
        insert_row(
            &ds,
            &source,
            "crashed",
            &host,
            99_999_999,
            "2999-01-01T00:00:00.000000Z",
        );
        let results = futures::future::join_all(sessions.iter().map(|s| {
            let (s, source) = (s.clone(), source.clone());
            tokio::spawn(async move { s.try_lock(&source).await.unwrap() })
        }))
        .await;
        let mut winners = Vec::new();
        let mut holders = Vec::new();
        for r in results {
            match r.unwrap() {
                TryLock::Taken(l) => winners.push(l),
                TryLock::Held(h) => holders.push(h.run_id),
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: {holders:?}");
        let winner = row_owner(&ds, &source).unwrap();
        assert!(
            holders.iter().all(|h| *h == winner),
            "{holders:?} vs {winner}"
        );
    }
}
