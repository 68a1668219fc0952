//! The rebuild's cross-record steps for Klaviyo: "Placed Order" events staged by the person's order
//! ordinal, and campaign/flow ids on events resolved into the names of the synced campaigns and flows.
//! Both hold for a full rebuild and for an incremental one.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use growthflow_core::connector::Record;
use growthflow_core::destination::sqlite::SqliteDestination;
use growthflow_core::destination::{Destination, WriteBatch};
use growthflow_core::model::{Channel, EventRow, JourneyMapper, JourneyRows, Stage};
use growthflow_core::Result;
use rusqlite::Connection;
use serde_json::{json, Value};

/// Maps `events` records `{id, kind: placed|opened, email, at, campaign, message, flow, name}` the way
/// the Klaviyo connector does (same attributes, same fallback campaign), and nothing else.
struct KlaviyoLike;

impl JourneyMapper for KlaviyoLike {
    fn source_type(&self) -> &'static str {
        "klaviyo"
    }

    fn map(&self, stream: &str, v: &Value) -> Result<JourneyRows> {
        let mut rows = JourneyRows::default();
        if stream != "events" {
            return Ok(rows);
        }
        let s = |k: &str| v[k].as_str().map(str::to_string);
        let at: DateTime<Utc> = v["at"].as_str().unwrap().parse().unwrap();
        let placed = v["kind"] == "placed";
        let mut e = EventRow::at(
            format!("event:{}", v["id"].as_str().unwrap()),
            at,
            if placed {
                Stage::Conversion
            } else {
                Stage::Consideration
            },
            if placed {
                "placed_order"
            } else {
                "email_opened"
            },
        );
        e.email = s("email");
        e.channel = Some(Channel::Email);
        e.campaign = s("name")
            .or_else(|| s("message"))
            .or_else(|| s("campaign"))
            .or_else(|| s("flow"));
        e.attributes = if placed {
            json!({"attributed": true, "campaign": v["campaign"], "flow": v["flow"],
                   "message": v["message"]})
        } else {
            json!({"message": v["message"], "flow": v["flow"], "campaign_name": v["name"]})
        };
        rows.events.push(e);
        Ok(rows)
    }
}

fn batch(source: &str, stream: &str, records: Vec<(&str, Value)>) -> WriteBatch {
    WriteBatch {
        source: source.into(),
        stream: stream.into(),
        records: records
            .into_iter()
            .map(|(id, payload)| Record {
                id: id.to_string(),
                cursor: None,
                payload: payload.into(),
            })
            .collect(),
        state: None,
        replaces: None,
    }
}

fn placed(id: &str, email: Option<&str>, at: &str) -> (String, Value) {
    (
        id.to_string(),
        json!({"id": id, "kind": "placed", "email": email, "at": at}),
    )
}

fn commit(dest: &mut SqliteDestination, source: &str, stream: &str, records: Vec<(String, Value)>) {
    let records = records
        .iter()
        .map(|(id, v)| (id.as_str(), v.clone()))
        .collect();
    dest.commit(&[batch(source, stream, records)]).unwrap();
}

fn rebuild(dest: &mut SqliteDestination) {
    let mappers: Vec<Arc<dyn JourneyMapper>> = vec![Arc::new(KlaviyoLike)];
    dest.rebuild_journey(&mappers).unwrap();
}

/// (event_id, stage, campaign) of every event, by id.
fn events(conn: &Connection) -> Vec<(String, String, Option<String>)> {
    let mut stmt = conn
        .prepare("SELECT event_id, stage, campaign FROM journey_events ORDER BY event_id")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap()
}

fn stage_of(conn: &Connection, event_id: &str) -> String {
    conn.query_row(
        "SELECT stage FROM journey_events WHERE event_id = ?1",
        [event_id],
        |r| r.get(0),
    )
    .unwrap()
}

fn campaign_of(conn: &Connection, event_id: &str) -> Option<String> {
    conn.query_row(
        "SELECT campaign FROM journey_events WHERE event_id = ?1",
        [event_id],
        |r| r.get(0),
    )
    .unwrap()
}

/// The same raw data rebuilt from scratch.
fn full_rebuild_of(dest: &SqliteDestination) -> Vec<(String, String, Option<String>)> {
    let mut fresh = SqliteDestination::in_memory().unwrap();
    let conn = dest.connection();
    let mut stmt = conn
        .prepare("SELECT source, type FROM growthflow_sources")
        .unwrap();
    let sources: Vec<(String, String)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    for (s, t) in sources {
        fresh.register_source(&s, &t).unwrap();
    }
    let mut stmt = conn
        .prepare("SELECT source, stream, record_id, payload FROM raw_records")
        .unwrap();
    let raw: Vec<(String, String, String, String)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    for (source, stream, id, payload) in raw {
        let v: Value = serde_json::from_str(&payload).unwrap();
        fresh
            .commit(&[batch(&source, &stream, vec![(id.as_str(), v)])])
            .unwrap();
    }
    rebuild(&mut fresh);
    events(fresh.connection())
}

#[test]
fn a_persons_second_placed_order_is_retention() {
    let mut dest = SqliteDestination::in_memory().unwrap();
    dest.register_source("kl", "klaviyo").unwrap();
    dest.register_source("kl2", "klaviyo").unwrap();
    commit(
        &mut dest,
        "kl",
        "events",
        vec![
            placed("p1", Some("A@x.com "), "2025-03-01T10:00:00Z"),
            placed("p2", Some("a@x.com"), "2025-03-05T10:00:00Z"),
            placed("p3", Some("a@x.com"), "2025-03-09T10:00:00Z"),
            placed("p4", Some("b@x.com"), "2025-03-09T10:00:00Z"),
            placed("p5", None, "2025-03-10T10:00:00Z"),
            placed("p6", None, "2025-03-11T10:00:00Z"),
        ],
    );
    // Another Klaviyo account numbers its own orders.
    commit(
        &mut dest,
        "kl2",
        "events",
        vec![placed("q1", Some("a@x.com"), "2025-03-20T10:00:00Z")],
    );
    rebuild(&mut dest);
    let c = dest.connection();
    assert_eq!(stage_of(c, "kl:events:p1:event:p1"), "conversion");
    assert_eq!(stage_of(c, "kl:events:p2:event:p2"), "retention");
    assert_eq!(stage_of(c, "kl:events:p3:event:p3"), "retention");
    assert_eq!(stage_of(c, "kl:events:p4:event:p4"), "conversion");
    assert_eq!(stage_of(c, "kl:events:p5:event:p5"), "conversion");
    assert_eq!(stage_of(c, "kl:events:p6:event:p6"), "conversion");
    assert_eq!(stage_of(c, "kl2:events:q1:event:q1"), "conversion");

    // An earlier order synced later: the incremental rebuild renumbers the person, like a full one.
    commit(
        &mut dest,
        "kl",
        "events",
        vec![placed("p0", Some("a@x.com"), "2025-02-01T10:00:00Z")],
    );
    rebuild(&mut dest);
    let c = dest.connection();
    assert_eq!(stage_of(c, "kl:events:p0:event:p0"), "conversion");
    assert_eq!(stage_of(c, "kl:events:p1:event:p1"), "retention");
    assert_eq!(events(c), full_rebuild_of(&dest));
}

#[test]
fn campaign_and_flow_ids_are_named_from_the_synced_records() {
    let mut dest = SqliteDestination::in_memory().unwrap();
    dest.register_source("kl", "klaviyo").unwrap();
    let ev = |id: &str, extra: Value| {
        let mut v = json!({"id": id, "kind": "opened", "email": "a@x.com",
                           "at": "2025-03-01T10:00:00Z"});
        for (k, x) in extra.as_object().unwrap() {
            v[k] = x.clone();
        }
        (id.to_string(), v)
    };
    commit(
        &mut dest,
        "kl",
        "events",
        vec![
            // An open of campaign C1's message, without a "Campaign Name".
            ev("e1", json!({"message": "M1"})),
            // An order attributed to C1 by id.
            ev(
                "e2",
                json!({"kind": "placed", "campaign": "C1", "message": "M1"}),
            ),
            // A flow's order.
            ev(
                "e3",
                json!({"kind": "placed", "flow": "F1", "message": "FM1"}),
            ),
            // A message nobody knows: the id stays.
            ev("e4", json!({"message": "M9"})),
            // Its own "Campaign Name" when the campaign is not synced.
            ev("e5", json!({"message": "M8", "name": "Old Newsletter"})),
        ],
    );
    rebuild(&mut dest);
    let c = dest.connection();
    // No campaigns or flows synced yet: the mapper's fallback.
    assert_eq!(
        campaign_of(c, "kl:events:e1:event:e1").as_deref(),
        Some("M1")
    );
    assert_eq!(
        campaign_of(c, "kl:events:e3:event:e3").as_deref(),
        Some("FM1")
    );

    let campaign = |name: &str| {
        json!({"type": "campaign", "id": "C1", "attributes": {"name": name},
               "relationships": {"campaign-messages": {"data": [{"type": "campaign-message", "id": "M1"}]}}})
    };
    commit(
        &mut dest,
        "kl",
        "campaigns",
        vec![("C1".into(), campaign(" Spring Launch "))],
    );
    commit(
        &mut dest,
        "kl",
        "flows",
        vec![(
            "F1".into(),
            json!({"type": "flow", "id": "F1", "attributes": {"name": "Welcome Series"}}),
        )],
    );
    rebuild(&mut dest);
    let c = dest.connection();
    assert_eq!(
        campaign_of(c, "kl:events:e1:event:e1").as_deref(),
        Some("Spring Launch")
    );
    assert_eq!(
        campaign_of(c, "kl:events:e2:event:e2").as_deref(),
        Some("Spring Launch")
    );
    assert_eq!(
        campaign_of(c, "kl:events:e3:event:e3").as_deref(),
        Some("Welcome Series")
    );
    assert_eq!(
        campaign_of(c, "kl:events:e4:event:e4").as_deref(),
        Some("M9")
    );
    assert_eq!(
        campaign_of(c, "kl:events:e5:event:e5").as_deref(),
        Some("Old Newsletter")
    );
    assert_eq!(events(c), full_rebuild_of(&dest));

    // A renamed campaign renames its events at the next (incremental) rebuild.
    commit(
        &mut dest,
        "kl",
        "campaigns",
        vec![("C1".into(), campaign("Spring Launch 2025"))],
    );
    rebuild(&mut dest);
    let c = dest.connection();
    assert_eq!(
        campaign_of(c, "kl:events:e2:event:e2").as_deref(),
        Some("Spring Launch 2025")
    );
    assert_eq!(events(c), full_rebuild_of(&dest));

    // Every event of the source is looked at again when a campaign is synced again, and only those
    // whose name changes are written: none for the same name, the campaign's two for a new one.
    dest.connection()
        .execute_batch(
            "CREATE TABLE test_renamed (event_id TEXT);
             CREATE TRIGGER test_renames AFTER UPDATE OF campaign ON journey_events
             BEGIN INSERT INTO test_renamed VALUES (NEW.event_id); END;",
        )
        .unwrap();
    let renamed = |dest: &SqliteDestination| -> Vec<String> {
        let c = dest.connection();
        let mut stmt = c
            .prepare("SELECT event_id FROM test_renamed ORDER BY event_id")
            .unwrap();
        let ids = stmt
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        c.execute("DELETE FROM test_renamed", []).unwrap();
        ids
    };
    commit(
        &mut dest,
        "kl",
        "campaigns",
        vec![("C1".into(), campaign("Spring Launch 2025"))],
    );
    rebuild(&mut dest);
    assert_eq!(renamed(&dest), Vec::<String>::new());
    commit(
        &mut dest,
        "kl",
        "campaigns",
        vec![("C1".into(), campaign("Summer Launch"))],
    );
    rebuild(&mut dest);
    assert_eq!(
        renamed(&dest),
        vec!["kl:events:e1:event:e1", "kl:events:e2:event:e2"]
    );
    assert_eq!(
        campaign_of(dest.connection(), "kl:events:e1:event:e1").as_deref(),
        Some("Summer Launch")
    );
    assert_eq!(events(dest.connection()), full_rebuild_of(&dest));
}
