//! The streams Klaviyo is read as, declared as data, and the one read loop they share.
//!
//! Every stream is a JSON:API collection paged by cursor: the first request carries the filter, sort,
//! includes and page size; every later one is `links.next` followed verbatim (it already holds all of
//! them plus `page[cursor]`). They differ in the field the server can filter on and how:
//!
//! - events: `greater-or-equal(datetime,…)`, sorted by `datetime`, re-reading `lookback_days` because
//!   Klaviyo accepts events with past timestamps; `include=metric,profile,attributions` so that the
//!   mapper knows the metric's name, the person's email and the attributed campaign or flow;
//! - profiles and lists: `greater-than(updated,…)` (the only operator Klaviyo allows there), sorted;
//! - campaigns: `greater-or-equal(updated_at,…)`, once per channel, because Klaviyo refuses to list
//!   campaigns without an `equals(messages.channel,…)` filter — two requests, so unsorted overall;
//! - flows: `greater-or-equal(updated,…)`, sorted;
//! - metrics: no date filter at all; a small list read whole every time.
//!
//! Each record is the `data` item as Klaviyo sent it, plus an `included` object holding the included
//! resources its relationships point at (by relationship name), so a record stands on its own.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};
use futures::stream::{BoxStream, StreamExt};
use reqwest::header::ACCEPT;
use serde_json::{Map, Value};
use url::Url;

use growthflow_core::adaptive::AdaptiveLimiter;
use growthflow_core::connector::{
    failed_read, unknown_stream, Page, Payload, ReadRequest, Record, StreamDef, SyncMode,
};
use growthflow_core::http::{join_path, HttpClient, Response};
use growthflow_core::paginate::{paged, param, set_query, JsonCursor, NextPage};
use growthflow_core::start::{read_start, Rewind};
use growthflow_core::time::format_utc;
use growthflow_core::window::{windows_for_pages, ReadRange, Span, WindowPlan};
use growthflow_core::{Error, Result};

use crate::config::revision_at_least;

mod windows;

/// Klaviyo sizes its event windows by core's page rule, under the names it has always exported.
pub use growthflow_core::window::{MAX_WINDOWS, PAGES_PER_WINDOW, WINDOWS_FROM_PAGES};
pub(crate) use windows::{plan_windows, read_window};

/// The media type of JSON:API, which Klaviyo answers in.
pub const JSON_API: &str = "application/vnd.api+json";

/// Events with their metric, profile and attributions.
pub const EVENTS: StreamDef = StreamDef {
    name: "events",
    primary_key: &["id"],
    mode: SyncMode::Incremental {
        cursor_field: "datetime",
    },
    sorted: true,
    parent: None,
    description:
        "Events (GET /api/events?include=metric,profile,attributions), incremental on datetime \
                  with a lookback",
};

/// Metrics (the event types), read whole.
pub const METRICS: StreamDef = StreamDef {
    name: "metrics",
    primary_key: &["id"],
    mode: SyncMode::FullRefresh,
    sorted: false,
    parent: None,
    description: "Metrics (GET /api/metrics); no server-side date filter, so a full refresh",
};

/// Profiles (people).
pub const PROFILES: StreamDef = StreamDef {
    name: "profiles",
    primary_key: &["id"],
    mode: SyncMode::Incremental {
        cursor_field: "updated",
    },
    sorted: true,
    parent: None,
    description: "Profiles (GET /api/profiles), incremental on updated",
};

/// Email and SMS campaigns.
pub const CAMPAIGNS: StreamDef = StreamDef {
    name: "campaigns",
    primary_key: &["id"],
    mode: SyncMode::Incremental {
        cursor_field: "updated_at",
    },
    sorted: false,
    parent: None,
    description:
        "Email and SMS campaigns (GET /api/campaigns, one request per channel), incremental on \
                  updated_at",
};

/// Flows (automations).
pub const FLOWS: StreamDef = StreamDef {
    name: "flows",
    primary_key: &["id"],
    mode: SyncMode::Incremental {
        cursor_field: "updated",
    },
    sorted: true,
    parent: None,
    description: "Flows (GET /api/flows), incremental on updated",
};

/// Lists.
pub const LISTS: StreamDef = StreamDef {
    name: "lists",
    primary_key: &["id"],
    mode: SyncMode::Incremental {
        cursor_field: "updated",
    },
    sorted: true,
    parent: None,
    description: "Lists (GET /api/lists), incremental on updated",
};

/// Every stream, in the order `discover` lists and `sync` reads them.
pub fn stream_defs() -> Vec<StreamDef> {
    vec![EVENTS, METRICS, PROFILES, CAMPAIGNS, FLOWS, LISTS]
}

/// The campaign channels read, one request each (Klaviyo requires the filter).
pub const CAMPAIGN_CHANNELS: [&str; 2] = ["email", "sms"];

/// Largest event page: `page[size]` exists on `/api/events` from revision 2026-01-15 (max 1000); before
/// it, pages are a fixed 200 and the parameter is rejected.
pub const EVENTS_PAGE_SIZE: u32 = 1000;

/// The first revision whose `/api/events` accepts `page[size]`.
pub const EVENTS_PAGE_SIZE_SINCE: &str = "2026-01-15";

/// Largest profile page (default 20).
pub const PROFILES_PAGE_SIZE: u32 = 100;

/// What the read loop needs to know about a stream beyond its [`StreamDef`].
#[derive(Debug, Clone)]
struct Spec {
    def: StreamDef,
    /// Path below `/api` and the rate-limit endpoint name.
    path: &'static str,
    /// Server-side date filter on the incremental field: (operator, exclusive?).
    updated_filter: Option<(&'static str, bool)>,
    /// Server-side filter on creation time for backfills, if the endpoint has one.
    created_field: Option<&'static str>,
    /// `sort=` value.
    sort: Option<&'static str>,
}

impl Spec {
    fn of(name: &str) -> Option<Spec> {
        let (def, updated_filter, created_field, sort) = match name {
            "events" => (
                EVENTS,
                Some(("greater-or-equal", false)),
                Some("datetime"),
                Some("datetime"),
            ),
            "metrics" => (METRICS, None, None, None),
            "profiles" => (
                PROFILES,
                Some(("greater-than", true)),
                Some("created"),
                Some("updated"),
            ),
            "campaigns" => (
                CAMPAIGNS,
                Some(("greater-or-equal", false)),
                Some("created_at"),
                None,
            ),
            "flows" => (
                FLOWS,
                Some(("greater-or-equal", false)),
                Some("created"),
                Some("updated"),
            ),
            "lists" => (LISTS, Some(("greater-than", true)), None, Some("updated")),
            _ => return None,
        };
        Some(Spec {
            path: def.name,
            def,
            updated_filter,
            created_field,
            sort,
        })
    }

    fn cursor_field(&self) -> &'static str {
        self.def.cursor_field().unwrap_or("updated")
    }
}

/// Records to drop client-side, for bounds the server cannot apply (lists have no `created` filter).
#[derive(Debug, Clone, Copy)]
enum Keep {
    All,
    /// `attributes.created` in `[since, until)`.
    CreatedIn(DateTime<Utc>, DateTime<Utc>),
}

/// The connector's reading half: client, API root, revision and lookback. Shared by the streams it reads.
#[derive(Debug)]
pub(crate) struct Reader {
    pub(crate) client: HttpClient,
    pub(crate) api_base: Url,
    pub(crate) revision: String,
    pub(crate) lookback_days: u32,
    pub(crate) limiter: Arc<AdaptiveLimiter>,
    /// First pages fetched by [`plan_windows`] for a read it left in sequence, by URL: the read
    /// takes its first page from here, so that measuring a short read costs no request.
    pub(crate) probed: Mutex<HashMap<String, Value>>,
}

/// A time as Klaviyo's filters take it: unquoted RFC 3339 UTC.
pub fn filter_time(t: DateTime<Utc>) -> String {
    format_utc(t)
}

impl Reader {
    /// The URL of an endpoint below `/api`.
    pub(crate) fn endpoint_url(&self, path: &str) -> Url {
        join_path(&self.api_base, path)
    }

    /// `page[size]` for a stream, when the endpoint takes one larger than its default.
    fn page_size(&self, stream: &str) -> Option<u32> {
        match stream {
            "events" if revision_at_least(&self.revision, EVENTS_PAGE_SIZE_SINCE) => {
                Some(EVENTS_PAGE_SIZE)
            }
            "profiles" => Some(PROFILES_PAGE_SIZE),
            _ => None,
        }
    }

    /// Where an incremental read starts: the saved cursor less a second for exclusive filters (the cursor
    /// keeps whole seconds) and, for events, less `lookback_days`; else the configured start.
    fn incremental_start(
        &self,
        spec: &Spec,
        request: &ReadRequest,
        exclusive: bool,
    ) -> Result<DateTime<Utc>> {
        let rewind = Rewind {
            overlap: if exclusive {
                Duration::seconds(1)
            } else {
                Duration::zero()
            },
            lookback_days: if spec.def.name == "events" {
                self.lookback_days
            } else {
                0
            },
        };
        read_start(request, rewind)
    }

    /// The first URL(s) of a read (campaigns: one per channel) and the client-side filter.
    fn plan(&self, spec: &Spec, request: &ReadRequest) -> Result<(Vec<Url>, Keep)> {
        let mut filters: Vec<String> = Vec::new();
        let mut keep = Keep::All;
        // A backfill's window ends tomorrow by default; Klaviyo refuses a filter's end date in the
        // future on some endpoints ("End date may not be in the future"), and nothing was created
        // after now, so the object streams' windows end now at the latest.
        let window = request.window.map(|mut w| {
            w.until = w.until.min(self.client.clock().utc_now()).max(w.since);
            w
        });
        match (window, spec.updated_filter) {
            (_, None) => {}
            (Some(w), Some(_)) => match spec.created_field {
                // Profiles only allow greater-than/less-than on `created`: one second back keeps the
                // window's start inclusive.
                Some(field) if spec.def.name == "profiles" => {
                    filters.push(format!(
                        "greater-than({field},{})",
                        filter_time(w.since - Duration::seconds(1))
                    ));
                    filters.push(format!("less-than({field},{})", filter_time(w.until)));
                }
                Some(field) => {
                    filters.push(format!(
                        "greater-or-equal({field},{})",
                        filter_time(w.since)
                    ));
                    filters.push(format!("less-than({field},{})", filter_time(w.until)));
                }
                None => keep = Keep::CreatedIn(w.since, w.until),
            },
            (None, Some((op, exclusive))) => {
                let start = self.incremental_start(spec, request, exclusive)?;
                filters.push(format!(
                    "{op}({},{})",
                    spec.cursor_field(),
                    filter_time(start)
                ));
            }
        }
        Ok((self.urls(spec, &filters), keep))
    }

    /// The first URL(s) of a read with these filters on its date field: sort, includes, page size,
    /// and for campaigns one URL per channel.
    fn urls(&self, spec: &Spec, filters: &[String]) -> Vec<Url> {
        let mut common = Vec::new();
        if let Some(sort) = spec.sort {
            common.push(param("sort", sort));
        }
        if spec.def.name == "events" {
            common.push(param("include", "metric,profile,attributions"));
            common.push(param("fields[metric]", "name,integration"));
            common.push(param("fields[profile]", "email"));
        }
        if let Some(size) = self.page_size(spec.def.name) {
            common.push(param("page[size]", size.to_string()));
        }
        let channels: Vec<Option<&str>> = if spec.def.name == "campaigns" {
            CAMPAIGN_CHANNELS.iter().map(|c| Some(*c)).collect()
        } else {
            vec![None]
        };
        channels
            .into_iter()
            .map(|channel| {
                let mut all: Vec<String> = channel
                    .map(|c| format!("equals(messages.channel,'{c}')"))
                    .into_iter()
                    .collect();
                all.extend(filters.iter().cloned());
                let mut params = Vec::new();
                if !all.is_empty() {
                    params.push(param("filter", all.join(",")));
                }
                params.extend(common.iter().cloned());
                let mut url = self.endpoint_url(spec.path);
                set_query(&mut url, &params);
                url
            })
            .collect()
    }

    /// The filters of one window of events: `datetime` from the span's start (inclusive) to its end
    /// (exclusive; none for the open last window), so adjacent windows neither overlap nor leave a
    /// gap. Backfills filter events on `datetime` too (their creation time), so both read the same.
    fn span_filters(span: Span) -> Vec<String> {
        let mut filters = vec![format!(
            "greater-or-equal(datetime,{})",
            filter_time(span.since)
        )];
        if let Some(until) = span.until {
            filters.push(format!("less-than(datetime,{})", filter_time(until)));
        }
        filters
    }

    /// GET one JSON:API page with the revision and accept headers.
    pub(crate) async fn get(&self, url: Url, endpoint: &'static str) -> Result<Value> {
        self.fetch(url, endpoint, Ok).await
    }

    /// GET one page of `spec` and make its records (see [`page_of`]) where the page is decoded: the
    /// body is parsed once, and the next link comes from the same parse.
    async fn get_page(
        &self,
        url: Url,
        spec: Arc<Spec>,
        keep: Keep,
    ) -> Result<(Vec<Record>, NextPage)> {
        let endpoint = spec.path;
        self.fetch(url, endpoint, move |document| {
            page_of(&spec, keep, document)
        })
        .await
    }

    /// GET one JSON:API page and hand its document to `then`, both as part of the request
    /// ([`HttpClient::send_decoded`]): a truncated page is asked for once more, what `then` refuses
    /// in a whole page is final.
    async fn fetch<T, F>(&self, url: Url, endpoint: &'static str, then: F) -> Result<T>
    where
        T: Send + 'static,
        F: Fn(Value) -> Result<T> + Send + Sync + 'static,
    {
        let request = self
            .client
            .reqwest()
            .get(url)
            .header("revision", &self.revision)
            .header(ACCEPT, JSON_API);
        let (_, decoded) = self
            .client
            .send_decoded(endpoint, request, move |resp| {
                then(decode_document(resp, endpoint)?)
            })
            .await?;
        Ok(decoded)
    }
}

/// The records of one page, in its order, without those `keep` drops, and where the next page is.
/// An item that is no record (no `id`, an unreadable time) fails the page.
fn page_of(spec: &Spec, keep: Keep, mut document: Value) -> Result<(Vec<Record>, NextPage)> {
    let next = JsonCursor::url("/links/next").next_from(&document);
    let mut records = Vec::new();
    for item in join_included(&mut document) {
        let record = to_record(spec, &item)?;
        if kept(keep, &item, &record.id)? {
            records.push(record);
        }
    }
    Ok((records, next))
}

/// A page body as a JSON:API document. A 200 HTML page is a proxy or challenge page, not data.
fn decode_document(resp: &Response, endpoint: &str) -> Result<Value> {
    if resp.is_html() {
        return Err(Error::Decode {
            message: format!(
                "Klaviyo answered /api/{endpoint} with an HTML page instead of JSON:API: check base_url \
                 and any proxy in between"
            ),
        });
    }
    let body: Value = resp.json().map_err(|e| match e {
        Error::Decode { message } => Error::Decode {
            message: format!("Klaviyo /api/{endpoint}: {message}"),
        },
        other => other,
    })?;
    if !body.get("data").is_some_and(Value::is_array) {
        return Err(Error::Decode {
            message: format!("Klaviyo /api/{endpoint}: the document has no `data` array"),
        });
    }
    Ok(body)
}

/// Add to each `data` item an `included` object: for every relationship whose resources were included,
/// the resource (to-one) or the list of resources (to-many), under the relationship's name. Items of a
/// document without `included` are left as sent.
pub fn join_included(document: &mut Value) -> Vec<Value> {
    let included: HashMap<(String, String), Value> = document
        .get("included")
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(|r| {
                    let t = r.get("type")?.as_str()?.to_string();
                    let id = r.get("id")?.as_str()?.to_string();
                    Some(((t, id), r.clone()))
                })
                .collect()
        })
        .unwrap_or_default();
    let has_included = document.get("included").is_some();
    let data = match document.get_mut("data").map(Value::take) {
        Some(Value::Array(items)) => items,
        _ => Vec::new(),
    };
    if !has_included {
        return data;
    }
    let lookup = |linkage: &Value| -> Option<Value> {
        let t = linkage.get("type")?.as_str()?;
        let id = linkage.get("id")?.as_str()?;
        included.get(&(t.to_string(), id.to_string())).cloned()
    };
    data.into_iter()
        .map(|mut item| {
            let mut joined = Map::new();
            if let Some(rels) = item.get("relationships").and_then(Value::as_object) {
                for (name, rel) in rels {
                    match rel.get("data") {
                        Some(Value::Array(links)) => {
                            let found: Vec<Value> = links.iter().filter_map(lookup).collect();
                            joined.insert(name.clone(), Value::Array(found));
                        }
                        Some(linkage @ Value::Object(_)) => {
                            if let Some(found) = lookup(linkage) {
                                joined.insert(name.clone(), found);
                            }
                        }
                        _ => {}
                    }
                }
            }
            if let Some(obj) = item.as_object_mut() {
                obj.insert("included".to_string(), Value::Object(joined));
            }
            item
        })
        .collect()
}

/// A time attribute of a resource: `Ok(None)` when absent or null, a decode error naming the field when
/// present but unreadable. Epoch seconds (events' `timestamp`) are accepted too.
pub(crate) fn time_attr(item: &Value, field: &str, what: &str) -> Result<Option<DateTime<Utc>>> {
    crate::mapper::FIELDS.time(
        item.pointer(&format!("/attributes/{field}")),
        field,
        what,
        true,
    )
}

/// A record with its id and cursor pulled out. Events without `datetime` fall back to `timestamp`.
fn to_record(spec: &Spec, item: &Value) -> Result<Record> {
    let stream = spec.def.name;
    let Some(id) = item
        .get("id")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
    else {
        return Err(Error::Decode {
            message: format!("Klaviyo {stream} record without an `id`"),
        });
    };
    let what = format!("{stream} record {id}");
    let mut cursor = time_attr(item, spec.cursor_field(), &what)?;
    if cursor.is_none() && stream == "events" {
        cursor = time_attr(item, "timestamp", &what)?;
    }
    Ok(Record {
        id,
        cursor: cursor.map(format_utc),
        // The item with its `included` joined in: built here, so printed once here.
        payload: Payload::from_value(item),
    })
}

fn kept(keep: Keep, item: &Value, id: &str) -> Result<bool> {
    Ok(match keep {
        Keep::All => true,
        Keep::CreatedIn(since, until) => match time_attr(item, "created", id)? {
            Some(c) => c >= since && c < until,
            None => false,
        },
    })
}

/// The paging state between two requests: the URL to fetch and the first URLs still to read.
struct Cursor {
    url: Url,
    queued: Vec<Url>,
}

/// Read one stream lazily, one page in memory at a time.
pub(crate) fn read(reader: Arc<Reader>, request: ReadRequest) -> BoxStream<'static, Result<Page>> {
    let Some(spec) = Spec::of(&request.stream) else {
        return failed_read(unknown_stream("Klaviyo", &request.stream, &stream_defs()));
    };
    let (urls, keep) = match reader.plan(&spec, &request) {
        Ok(p) => p,
        Err(e) => return failed_read(e),
    };
    read_urls(reader, spec, urls, keep)
}

/// Page through the reads that start at `urls`, one after the other.
fn read_urls(
    reader: Arc<Reader>,
    spec: Spec,
    mut urls: Vec<Url>,
    keep: Keep,
) -> BoxStream<'static, Result<Page>> {
    // The URLs carry filters only; credentials go in a header, so they can be logged.
    tracing::debug!(stream = spec.def.name, urls = ?urls.iter().map(Url::as_str).collect::<Vec<_>>(), "reading");
    urls.reverse();
    let Some(first) = urls.pop() else {
        return futures::stream::empty().boxed();
    };
    let start = Cursor {
        url: first,
        queued: urls,
    };
    let spec = Arc::new(spec);
    paged(start, move |mut cursor: Cursor| {
        let reader = reader.clone();
        let spec = spec.clone();
        async move {
            let probed = reader
                .probed
                .lock()
                .expect("probe lock")
                .remove(cursor.url.as_str());
            let (records, next) = match probed {
                Some(document) => page_of(&spec, keep, document)?,
                None => {
                    reader
                        .get_page(cursor.url.clone(), spec.clone(), keep)
                        .await?
                }
            };
            let next = match next {
                NextPage::Url(u) => {
                    cursor.url = Url::parse(&u).map_err(|e| Error::Decode {
                        message: format!("Klaviyo links.next is not a URL ({e}): {u:?}"),
                    })?;
                    // Credentials only go to the configured origin (core's rule, checked again on
                    // sending): a link elsewhere ends the stream here.
                    reader.client.check_origin(&cursor.url)?;
                    Some(cursor)
                }
                NextPage::Params(_) | NextPage::Done => cursor.queued.pop().map(|url| {
                    cursor.url = url;
                    cursor
                }),
            };
            Ok((Page::new(records), next))
        }
    })
    .boxed()
}

#[cfg(test)]
mod tests;
