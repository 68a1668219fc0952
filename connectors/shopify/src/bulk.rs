//! Bulk operations for long backfill windows.
//!
//! Paging a year of orders costs thousands of requests and runs into Shopify's deep-pagination cap; a bulk
//! operation runs the same query server-side and hands back one JSONL file. The flow is Shopify's:
//! `bulkOperationRunQuery` → poll `node(id:)` until `COMPLETED` (failing clearly on `FAILED`, `EXPIRED`,
//! `CANCELED`, `TIMEOUT`, `ACCESS_DENIED`) → download the file from its signed URL (without the Admin API
//! token, which must not leave Shopify) through core's `send_raw`, line by line.
//!
//! In the file, each node of a nested *connection* (an order's line items, a product's variants) is its own
//! line with `__parentId`; since API 2026-01 (`groupObjects: false`) a child may come before its parent.
//! Children are therefore collected by parent id and re-attached at the end as `{field: {nodes: [...]}}`, so
//! a bulk record has the same shape as a paged one and maps the same way.

use std::time::Duration;

use futures::StreamExt;
use serde_json::{json, Map, Value};

use growthflow_core::connector::{Record, Window};
use growthflow_core::poll::{poll_until, PollBackoff, Polled};
use growthflow_core::{Error, Result};

use crate::streams::{search_time, to_record, Reader};

/// The pause key of bulk result downloads (a storage bucket, not the Admin API).
pub const DOWNLOAD_ENDPOINT: &str = "bulk-download";

/// First poll delay; doubles up to [`MAX_POLL_INTERVAL`].
pub const FIRST_POLL_INTERVAL: Duration = Duration::from_secs(1);
/// Longest delay between two polls.
pub const MAX_POLL_INTERVAL: Duration = Duration::from_secs(30);
/// Give up waiting after this long (Shopify lets an operation run for up to 10 days; a backfill should not).
pub const MAX_BULK_WAIT: Duration = Duration::from_secs(6 * 3600);

/// Wait between two attempts to start an operation while the shop's bulk slots are taken (five bulk
/// queries at once per app and shop since 2026-01, one before): `LIMIT_REACHED` or
/// `OPERATION_IN_PROGRESS`, e.g. operations a killed backfill left running, which finish on their own.
pub const SLOT_RETRY_INTERVAL: Duration = Duration::from_secs(30);

/// Give up waiting for a free bulk slot after this long.
pub const MAX_SLOT_WAIT: Duration = Duration::from_secs(30 * 60);

const RUN_MUTATION: &str = "mutation RunBulk($query: String!) {
  bulkOperationRunQuery(query: $query) {
    bulkOperation { id status }
    userErrors { field message code }
  }
}";

const POLL_QUERY: &str = "query PollBulk($id: ID!) {
  node(id: $id) { ... on BulkOperation { id status errorCode objectCount url partialDataUrl } }
}";

const VISIT_FIELDS: &str =
    "id occurredAt source sourceType sourceDescription landingPage referrerUrl \
     referralCode utmParameters { source medium campaign content term }";

/// The bulk query of a stream over a creation-time window, with nested connections as `edges { node }`
/// (bulk queries take no `first:` on them) and `__typename` on every node.
fn bulk_query(stream: &str, window: Window) -> Option<String> {
    let filter = format!(
        "created_at:>={} created_at:<{}",
        search_time(window.since),
        search_time(window.until)
    );
    let (root, fields) = match stream {
        "orders" => (
            "orders",
            format!(
                "id legacyResourceId name createdAt updatedAt processedAt cancelledAt cancelReason
                 email test tags sourceName currencyCode presentmentCurrencyCode discountCodes
                 displayFinancialStatus displayFulfillmentStatus
                 customer {{ id defaultEmailAddress {{ emailAddress }} }}
                 totalPriceSet {{ shopMoney {{ amount currencyCode }} }}
                 subtotalPriceSet {{ shopMoney {{ amount currencyCode }} }}
                 totalDiscountsSet {{ shopMoney {{ amount currencyCode }} }}
                 totalTaxSet {{ shopMoney {{ amount currencyCode }} }}
                 totalShippingPriceSet {{ shopMoney {{ amount currencyCode }} }}
                 totalRefundedSet {{ shopMoney {{ amount currencyCode }} }}
                 lineItems {{ edges {{ node {{ __typename id name sku quantity currentQuantity
                   originalUnitPriceSet {{ shopMoney {{ amount currencyCode }} }}
                   discountedTotalSet {{ shopMoney {{ amount currencyCode }} }}
                   product {{ id }} variant {{ id }} }} }} }}
                 refunds {{ id createdAt note totalRefundedSet {{ shopMoney {{ amount currencyCode }} }} }}
                 customerJourneySummary {{ ready customerOrderIndex daysToConversion
                   firstVisit {{ {VISIT_FIELDS} }} lastVisit {{ {VISIT_FIELDS} }} }}"
            ),
        ),
        "customers" => (
            "customers",
            "id defaultEmailAddress { emailAddress } firstName lastName state tags createdAt updatedAt numberOfOrders
             amountSpent { amount currencyCode }
             emailMarketingConsent { marketingState marketingOptInLevel consentUpdatedAt }"
                .to_string(),
        ),
        "products" => (
            "products",
            "id legacyResourceId title handle status vendor productType tags createdAt updatedAt publishedAt
             variants { edges { node { __typename id sku title price compareAtPrice } } }"
                .to_string(),
        ),
        "abandoned_checkouts" => (
            "abandonedCheckouts",
            "id name createdAt updatedAt completedAt abandonedCheckoutUrl discountCodes
             customer { id defaultEmailAddress { emailAddress } }
             subtotalPriceSet { shopMoney { amount currencyCode } }
             totalDiscountSet { shopMoney { amount currencyCode } }
             totalPriceSet { shopMoney { amount currencyCode } }
             lineItems { edges { node { __typename id title quantity variant { id } } } }"
                .to_string(),
        ),
        _ => return None,
    };
    Some(format!(
        "{{ {root}(query: {filter:?}, sortKey: CREATED_AT) {{ edges {{ node {{ __typename {fields} }} }} }} }}"
    ))
}

/// The parent field a child line of `__typename` belongs in.
fn child_field(typename: &str) -> &'static str {
    match typename {
        "ProductVariant" => "variants",
        _ => "lineItems",
    }
}

/// Re-assembles flattened JSONL lines into parent records, whatever order the lines come in, in
/// bounded memory.
///
/// A one-year backfill file can hold millions of lines, and since API 2026-01 a child line may come
/// before its parent, so nothing can be handed out until the whole file is read. Lines are therefore
/// spilled into a private temporary SQLite database on disk (indexed by parent), and parents are then
/// read back a page at a time with their children attached: memory holds one page, not the file.
#[derive(Debug)]
pub struct Assembler {
    conn: rusqlite::Connection,
    seq: i64,
}

fn spill_error(e: rusqlite::Error) -> Error {
    Error::Internal(format!(
        "could not spill the Shopify bulk result to a temporary file: {e}"
    ))
}

impl Assembler {
    /// An empty assembler backed by a private temporary database (deleted when dropped).
    pub fn new() -> Result<Self> {
        // An empty path opens a private on-disk temporary database.
        let conn = rusqlite::Connection::open("").map_err(spill_error)?;
        conn.execute_batch(
            "CREATE TABLE lines (seq INTEGER PRIMARY KEY, id TEXT, parent TEXT, json TEXT NOT NULL);
             CREATE INDEX lines_parent ON lines (parent, seq);
             BEGIN;",
        )
        .map_err(spill_error)?;
        Ok(Assembler { conn, seq: 0 })
    }

    /// Add one line of the file (blank lines are ignored).
    pub fn push_line(&mut self, line: &str) -> Result<()> {
        let line = line.trim();
        if line.is_empty() {
            return Ok(());
        }
        let value: Value = serde_json::from_str(line).map_err(|e| Error::Decode {
            message: format!("Shopify bulk result line is not JSON: {e}"),
        })?;
        let Value::Object(mut obj) = value else {
            return Err(Error::Decode {
                message: "Shopify bulk result line is not a JSON object".into(),
            });
        };
        let parent = match obj.shift_remove("__parentId") {
            Some(Value::String(p)) => Some(p),
            _ => None,
        };
        let id = obj.get("id").and_then(Value::as_str).map(str::to_string);
        self.seq += 1;
        self.conn
            .prepare_cached("INSERT INTO lines (seq, id, parent, json) VALUES (?1, ?2, ?3, ?4)")
            .and_then(|mut st| {
                st.execute(rusqlite::params![
                    self.seq,
                    id,
                    parent,
                    Value::Object(obj).to_string()
                ])
            })
            .map_err(spill_error)?;
        Ok(())
    }

    /// Stop adding lines; the roots can now be read back in file order.
    pub fn finish(self) -> Result<Roots> {
        self.conn.execute_batch("COMMIT").map_err(spill_error)?;
        let orphans: i64 = self
            .conn
            .query_row(
                "SELECT COUNT(*) FROM lines c WHERE c.parent IS NOT NULL AND NOT EXISTS
                   (SELECT 1 FROM lines p WHERE p.id = c.parent AND p.parent IS NULL)",
                [],
                |r| r.get(0),
            )
            .map_err(spill_error)?;
        if orphans > 0 {
            tracing::warn!(
                lines = orphans,
                "Shopify bulk result had child lines without their parent; they were dropped"
            );
        }
        Ok(Roots {
            conn: self.conn,
            after: 0,
        })
    }
}

/// The assembled root objects of a bulk result, read back a batch at a time.
#[derive(Debug)]
pub struct Roots {
    conn: rusqlite::Connection,
    after: i64,
}

impl Roots {
    /// The next `n` roots in file order, each with its children attached; empty at the end.
    pub fn next_batch(&mut self, n: usize) -> Result<Vec<Value>> {
        let limit = i64::try_from(n).unwrap_or(i64::MAX);
        let rows: Vec<(i64, Option<String>, String)> = {
            let mut st = self
                .conn
                .prepare_cached(
                    "SELECT seq, id, json FROM lines WHERE parent IS NULL AND seq > ?1 ORDER BY seq LIMIT ?2",
                )
                .map_err(spill_error)?;
            let rows = st
                .query_map(rusqlite::params![self.after, limit], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })
                .map_err(spill_error)?;
            rows.collect::<std::result::Result<_, _>>()
                .map_err(spill_error)?
        };
        let mut out = Vec::with_capacity(rows.len());
        for (seq, id, json) in rows {
            self.after = seq;
            let Value::Object(mut root) = serde_json::from_str(&json)? else {
                continue;
            };
            if let Some(id) = id {
                let mut st = self
                    .conn
                    .prepare_cached("SELECT json FROM lines WHERE parent = ?1 ORDER BY seq")
                    .map_err(spill_error)?;
                let children = st
                    .query_map([id], |r| r.get::<_, String>(0))
                    .map_err(spill_error)?;
                for child in children {
                    if let Value::Object(c) = serde_json::from_str(&child.map_err(spill_error)?)? {
                        attach(&mut root, c);
                    }
                }
            }
            out.push(Value::Object(root));
        }
        Ok(out)
    }
}

fn attach(parent: &mut Map<String, Value>, child: Map<String, Value>) {
    let typename = child
        .get("__typename")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let field = child_field(typename);
    let slot = parent
        .entry(field)
        .or_insert_with(|| json!({ "nodes": [] }));
    if let Some(nodes) = slot.get_mut("nodes").and_then(Value::as_array_mut) {
        nodes.push(Value::Object(child));
    }
}

/// The final state of a bulk operation, as far as a reader cares.
fn failed(source: &str, status: &str, op: &Value) -> Error {
    let code = op
        .get("errorCode")
        .and_then(Value::as_str)
        .unwrap_or("none");
    let id = op.get("id").and_then(Value::as_str).unwrap_or("?");
    if status == "ACCESS_DENIED" || code == "ACCESS_DENIED" {
        return Error::Auth {
            message: format!(
                "Shopify denied the bulk operation {id} of source \"{source}\": the app lacks a scope for \
                 this data (read_all_orders for orders older than 60 days)"
            ),
        };
    }
    Error::Api {
        platform: "Shopify",
        status: 200,
        code: Some(format!("BULK_{status}")),
        message: format!(
            "bulk operation {id} ended {status} (errorCode {code}); run the backfill again, or with a \
             shorter window"
        ),
    }
}

impl Reader {
    /// Read every record of `stream` created in `window` through a bulk operation.
    pub(crate) async fn bulk_read(&self, stream: &str, window: Window) -> Result<Option<Roots>> {
        let query = bulk_query(stream, window)
            .ok_or_else(|| Error::Other(format!("Shopify has no bulk query for {stream:?}")))?;
        let clock = self.client.clock().clone();
        let mut slot_wait = Duration::ZERO;
        let run = loop {
            let (_, body) = self.post(RUN_MUTATION, json!({ "query": query })).await?;
            let run = body
                .pointer("/data/bulkOperationRunQuery")
                .cloned()
                .ok_or_else(|| Error::Decode {
                    message: "Shopify answered bulkOperationRunQuery without data".into(),
                })?;
            let Some(err) = run
                .get("userErrors")
                .and_then(Value::as_array)
                .and_then(|e| e.first())
            else {
                break run;
            };
            let code = err.get("code").and_then(Value::as_str).map(str::to_string);
            let message = err
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("(no message)")
                .to_string();
            let busy = matches!(
                code.as_deref(),
                Some("LIMIT_REACHED" | "OPERATION_IN_PROGRESS")
            );
            if !busy || slot_wait >= MAX_SLOT_WAIT {
                let message = if busy {
                    format!(
                        "could not start a bulk operation after waiting {} min for a free slot: {message}",
                        slot_wait.as_secs() / 60
                    )
                } else {
                    format!("could not start a bulk operation: {message}")
                };
                return Err(Error::Api {
                    platform: "Shopify",
                    status: 200,
                    code,
                    message,
                });
            }
            tracing::info!(stream, %message, "the shop's bulk operation slots are taken; waiting");
            clock.sleep(SLOT_RETRY_INTERVAL).await;
            slot_wait += SLOT_RETRY_INTERVAL;
        };
        let id = run
            .pointer("/bulkOperation/id")
            .and_then(Value::as_str)
            .ok_or_else(|| Error::Decode {
                message: "Shopify started a bulk operation without an id".into(),
            })?
            .to_string();
        tracing::info!(stream, operation = %id, "bulk operation started");

        let url = poll_until(
            clock.as_ref(),
            PollBackoff::new(FIRST_POLL_INTERVAL, MAX_POLL_INTERVAL),
            MAX_BULK_WAIT,
            || async {
                let (_, body) = self.post(POLL_QUERY, json!({ "id": id })).await?;
                let op = body
                    .pointer("/data/node")
                    .filter(|n| !n.is_null())
                    .ok_or_else(|| Error::Decode {
                        message: format!("Shopify does not know bulk operation {id}"),
                    })?;
                let status = op.get("status").and_then(Value::as_str).unwrap_or("");
                match status {
                    "COMPLETED" => Ok(Polled::Done(
                        op.get("url").and_then(Value::as_str).map(str::to_string),
                    )),
                    "CREATED" | "RUNNING" => Ok(Polled::Pending),
                    _ => Err(failed(&self.source, status, op)),
                }
            },
            |_| Error::Transient {
                message: format!(
                    "bulk operation {id} still running after {} h; run the backfill again later",
                    MAX_BULK_WAIT.as_secs() / 3600
                ),
            },
        )
        .await?;
        // A completed operation that matched nothing has no file.
        let Some(url) = url else {
            return Ok(None);
        };
        let resp = self
            .client
            .send_raw(DOWNLOAD_ENDPOINT, self.client.reqwest().get(&url))
            .await
            .map_err(|e| match e {
                // The storage host refusing its own signed link is not the Admin API refusing the
                // token (the download carries none): an expired or unusable link, which a new
                // operation replaces. As an auth error it blamed the token and stopped the
                // source's other streams.
                Error::Auth { .. } => Error::Transient {
                    message: "the storage host refused the bulk result's signed link (expired or \
                              not valid); its slice is read again by new operations"
                        .into(),
                },
                other => other,
            })?;
        let mut assembler = Assembler::new()?;
        let mut buffer: Vec<u8> = Vec::new();
        let mut chunks = resp.bytes_stream();
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk.map_err(|e| Error::Transient {
                message: format!("the bulk result download dropped: {}", e.without_url()),
            })?;
            buffer.extend_from_slice(&chunk);
            while let Some(pos) = buffer.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = buffer.drain(..=pos).collect();
                assembler.push_line(&String::from_utf8_lossy(&line))?;
            }
        }
        assembler.push_line(&String::from_utf8_lossy(&buffer))?;
        assembler.finish().map(Some)
    }
}

/// The next page of a bulk result as records (bulk and paged records look alike).
pub(crate) fn next_records(roots: &mut Roots, stream: &str, n: usize) -> Result<Vec<Record>> {
    roots
        .next_batch(n)?
        .into_iter()
        .map(|node| to_record(stream, strip_typename(node)))
        .collect()
}

/// Drop the `__typename` bulk queries add, so bulk and paged records look alike.
fn strip_typename(mut node: Value) -> Value {
    if let Some(obj) = node.as_object_mut() {
        obj.shift_remove("__typename");
        for field in ["lineItems", "variants"] {
            if let Some(nodes) = obj
                .get_mut(field)
                .and_then(|f| f.get_mut("nodes"))
                .and_then(Value::as_array_mut)
            {
                for n in nodes {
                    if let Some(n) = n.as_object_mut() {
                        n.shift_remove("__typename");
                    }
                }
            }
        }
    }
    node
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    #[test]
    fn children_are_reattached_even_before_their_parent() {
        let mut a = Assembler::new().unwrap();
        for line in [
            r#"{"__typename":"LineItem","id":"gid://shopify/LineItem/1","__parentId":"gid://shopify/Order/9"}"#,
            r#"{"__typename":"Order","id":"gid://shopify/Order/9"}"#,
            "",
            r#"{"__typename":"LineItem","id":"gid://shopify/LineItem/2","__parentId":"gid://shopify/Order/9"}"#,
            r#"{"__typename":"Order","id":"gid://shopify/Order/10"}"#,
        ] {
            a.push_line(line).unwrap();
        }
        let mut reader = a.finish().unwrap();
        let first = reader.next_batch(1).unwrap();
        let second = reader.next_batch(1).unwrap();
        assert!(reader.next_batch(1).unwrap().is_empty());
        let roots = [first[0].clone(), second[0].clone()];
        let items: Vec<&str> = roots[0]["lineItems"]["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["id"].as_str().unwrap())
            .collect();
        assert_eq!(
            items,
            ["gid://shopify/LineItem/1", "gid://shopify/LineItem/2"]
        );
        assert!(roots[0]["lineItems"]["nodes"][0]
            .get("__parentId")
            .is_none());
        assert!(roots[1].get("lineItems").is_none());
        assert!(a_line_error("not json"));
    }

    #[test]
    fn a_large_result_is_read_back_in_batches_in_file_order() {
        let mut a = Assembler::new().unwrap();
        // Each order's second line item comes before the order itself, the first after it.
        for i in 0..1000 {
            a.push_line(&format!(
                r#"{{"__typename":"LineItem","id":"L{i}b","__parentId":"O{i}"}}"#
            ))
            .unwrap();
            a.push_line(&format!(r#"{{"__typename":"Order","id":"O{i}"}}"#))
                .unwrap();
            a.push_line(&format!(
                r#"{{"__typename":"LineItem","id":"L{i}a","__parentId":"O{i}"}}"#
            ))
            .unwrap();
        }
        let mut roots = a.finish().unwrap();
        let mut sizes = Vec::new();
        let mut next = 0;
        loop {
            let batch = roots.next_batch(300).unwrap();
            if batch.is_empty() {
                break;
            }
            sizes.push(batch.len());
            for order in batch {
                assert_eq!(order["id"], format!("O{next}"));
                let items: Vec<&str> = order["lineItems"]["nodes"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|n| n["id"].as_str().unwrap())
                    .collect();
                assert_eq!(items, [format!("L{next}b"), format!("L{next}a")]);
                next += 1;
            }
        }
        assert_eq!(sizes, [300, 300, 300, 100]);
    }

    fn a_line_error(line: &str) -> bool {
        Assembler::new().unwrap().push_line(line).is_err()
    }

    #[test]
    fn bulk_queries_filter_by_creation_and_have_no_first() {
        let w = Window {
            since: Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap(),
            until: Utc.with_ymd_and_hms(2024, 4, 1, 0, 0, 0).unwrap(),
        };
        for stream in ["orders", "customers", "products", "abandoned_checkouts"] {
            let q = bulk_query(stream, w).unwrap();
            assert!(
                q.contains(r#"query: "created_at:>='2024-01-01T00:00:00Z' created_at:<'2024-04-01T00:00:00Z'""#),
                "{q}"
            );
            assert!(!q.contains("first:"), "{q}");
        }
        assert!(bulk_query("nope", w).is_none());
    }
}
