//! PostgreSQL connection loss.

use super::*;

#[tokio::test]
async fn postgres_lock_ends_with_its_connection_and_is_taken_again_or_reported_lost() {
    let Some(schema) = TestSchema::new("locks_conn") else {
        return;
    };
    blocking(|| drop(schema.open()));
    let target = LockTarget::Postgres(Box::new(schema.target()));
    let a = session(target.clone(), "run-a").await;
    let b = session(target, "run-b").await;

    // The connection dies and nobody takes the lock meanwhile: a takes it again.
    let shop = taken(a.try_lock("shop").await.unwrap());
    let pid = blocking(|| backend_holding(&schema, "shop"));
    blocking(|| terminate(&schema, pid));
    assert_eq!(a.heartbeat().await.unwrap(), Vec::<String>::new());
    assert_eq!(shop.lost(), None);
    assert_ne!(blocking(|| backend_holding(&schema, "shop")), pid);
    assert_eq!(held(b.try_lock("shop").await.unwrap()).run_id, "run-a");

    // The connection dies and another run takes the lock: the server released it with the
    // connection, and a, noticing, reports it lost instead of going on without it.
    let pid = blocking(|| backend_holding(&schema, "shop"));
    blocking(|| terminate(&schema, pid));
    let shop_b = taken(b.try_lock("shop").await.unwrap());
    assert_eq!(a.heartbeat().await.unwrap(), vec!["shop"]);
    let why = shop.lost().expect("a lost it");
    assert!(why.contains("run run-b"), "{why}");
    assert!(a.held().await.unwrap().is_empty());
    drop(shop);
    // a's late release does not free b's lock.
    assert!(a.held().await.unwrap().is_empty());
    assert_eq!(held(a.try_lock("shop").await.unwrap()).run_id, "run-b");
    drop(shop_b);
    assert!(b.held().await.unwrap().is_empty());
    drop(taken(a.try_lock("shop").await.unwrap()));
}
