//! End to end: every record the sandbox's five platforms give, synced as a user syncs them and read
//! back as the rebuild reads it (the stored JSON text), maps to the same journey rows, and the same
//! errors, parsed under its mapper's projection (what the rebuild does) as parsed whole.

use std::collections::BTreeMap;

use growthflow_core::project::parse_record;
use growthflow_tests::{db, RecentSandbox};

#[tokio::test]
async fn every_synced_record_maps_the_same_projected_as_whole() {
    let env = RecentSandbox::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = env.config(
        dir.path(),
        &format!("url = \"sqlite://{}\"", dir.path().join("gf.db").display()),
    );
    let (code, out) = env.cli(&config, &["sync"]).await;
    assert_eq!(code, 0, "{out}");

    let mappers = growthflow_cli::registry::mappers();
    let conn = db(&config);
    let mut stmt = conn
        .prepare(
            "SELECT s.type, r.stream, r.record_id, r.payload FROM raw_records r
             JOIN growthflow_sources s ON s.source = r.source ORDER BY 1, 2, 3",
        )
        .unwrap();
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
            ))
        })
        .unwrap();
    // (type, stream) → (records, records the mapper turned into rows, records it projected).
    let mut seen: BTreeMap<(String, String), (usize, usize, usize)> = BTreeMap::new();
    for row in rows {
        let (source_type, stream, id, payload) = row.unwrap();
        let mapper = mappers
            .iter()
            .find(|m| m.source_type() == source_type)
            .unwrap_or_else(|| panic!("no mapper for {source_type}"));
        let projection = mapper.projection(&stream);
        let full = parse_record(None, &payload)
            .map_err(|e| e.to_string())
            .and_then(|v| mapper.map(&stream, &v).map_err(|e| e.to_string()));
        let projected = parse_record(projection, &payload)
            .map_err(|e| e.to_string())
            .and_then(|v| mapper.map(&stream, &v).map_err(|e| e.to_string()));
        assert_eq!(
            projected, full,
            "{source_type} {stream} {id}: the projected record maps differently: {payload}"
        );
        let counts = seen.entry((source_type, stream)).or_default();
        counts.0 += 1;
        counts.1 += usize::from(full.is_ok_and(|rows| !rows.is_empty()));
        counts.2 += usize::from(projection.is_some());
    }

    // Every stream of every platform had records, and every stream that feeds the model had records
    // that became rows, each of them checked under a projection.
    assert_eq!(seen.len(), 20, "{seen:?}");
    for ((source_type, stream), (records, _, projected)) in &seen {
        assert!(*records > 0, "{source_type} {stream}");
        assert_eq!(projected, records, "{source_type} {stream} projected");
    }
    let mapped = |t: &str, s: &str| seen[&(t.to_string(), s.to_string())].1;
    for (t, s) in [
        ("woocommerce", "orders"),
        ("woocommerce", "refunds"),
        ("woocommerce", "customers"),
        ("shopify", "orders"),
        ("shopify", "customers"),
        ("shopify", "abandoned_checkouts"),
        ("klaviyo", "events"),
        ("klaviyo", "profiles"),
        ("ga4", "traffic_daily"),
        ("meta_ads", "ad_insights"),
    ] {
        assert!(mapped(t, s) > 0, "{t} {s}: no record became rows: {seen:?}");
    }
}
