//! The streams: `traffic_daily` and user-defined `report_<name>` reports. Each day is its own report (a
//! single day is never sampled on standard properties); up to five days go in one batchRunReports
//! request, and a day with more rows than a page goes on with runReport, paged by `offset`/`rowCount`.

use std::collections::{HashMap, HashSet};
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use chrono::{Duration as Days, NaiveDate};
use futures::stream::BoxStream;
use futures::StreamExt;
use rust_decimal::Decimal;
use serde_json::{json, Map, Value};
use tokio::sync::OnceCell;
use url::Url;

use growthflow_core::adaptive::AdaptiveLimiter;
use growthflow_core::connector::{Page, Payload, ReadRequest, Record, StreamDef, SyncMode};
use growthflow_core::http::HttpClient;
use growthflow_core::paginate::{NextPage, Offset};
use growthflow_core::start::{read_start_day, Rewind};
use growthflow_core::time::start_of_day;
use growthflow_core::window::{Span, WindowPlan};
use growthflow_core::{Error, Result};

use crate::config::ReportConfig;
use crate::policy::quota_pause_in;

mod windows;

pub use windows::{daily_tokens, span_days, DAYS_PER_WINDOW, MAX_WINDOWS, WINDOWS_FROM_DAYS};
pub(crate) use windows::{plan_windows, read_window};

/// The built-in stream.
pub const TRAFFIC_DAILY: &str = "traffic_daily";
/// Prefix of user-defined report streams.
pub const REPORT_PREFIX: &str = "report_";
/// Rows a response may hold: a day's report is paged by this many rows, and batches are sized so that
/// their days together stay about this big ([`next_batch`]). The API allows 250,000 a report, but five
/// such reports in one answer would be over a gigabyte of JSON; 100,000 rows keep memory bounded while
/// a typical day still fits in one page.
pub const DEFAULT_PAGE_SIZE: u64 = 100_000;
/// Reports per batchRunReports request (the API's maximum).
pub const MAX_BATCH: usize = 5;
/// The endpoint name runReport and batchRunReports share in the HTTP client: GA4's quota is the
/// property's, so a pause learnt from one holds the other.
pub const REPORT_ENDPOINT: &str = "reports";
/// Separator of dimension values in record ids.
pub const ID_SEPARATOR: char = '\u{1f}';
/// The field of a stream's saved state that records which names were last checked against the
/// property's metadata ([`ReportSpec::checked`]): a run whose names match it does not ask for the
/// metadata again (see [`name_check`]).
pub const CHECKED: &str = "checked";

/// `traffic_daily`'s dimensions.
pub const TRAFFIC_DIMENSIONS: &[&str] = &[
    "date",
    "sessionSource",
    "sessionMedium",
    "sessionCampaignName",
    "sessionDefaultChannelGroup",
];
/// `traffic_daily`'s metrics.
pub const TRAFFIC_METRICS: &[&str] = &[
    "sessions",
    "newUsers",
    "engagedSessions",
    "addToCarts",
    "checkouts",
    "ecommercePurchases",
    "purchaseRevenue",
];

/// Names GA4 retired, with their replacements.
pub const RENAMED: &[(&str, &str)] = &[
    ("conversions", "keyEvents"),
    ("sessionConversionRate", "sessionKeyEventRate"),
    ("userConversionRate", "userKeyEventRate"),
    (
        "sessionDefaultChannelGrouping",
        "sessionDefaultChannelGroup",
    ),
    (
        "firstUserDefaultChannelGrouping",
        "firstUserDefaultChannelGroup",
    ),
];

/// The built-in streams, as data. User-defined reports are added by the connector.
pub fn stream_defs() -> Vec<StreamDef> {
    vec![StreamDef {
        name: TRAFFIC_DAILY,
        primary_key: &["property", "date", "dimensions"],
        mode: SyncMode::Incremental {
            cursor_field: "date",
        },
        sorted: true,
        parent: None,
        description: "daily sessions, new users, engagement, add-to-carts, checkouts and purchases by source, \
                      medium, campaign and channel group",
    }]
}

/// Everything a read needs, shared by the connector and its streams.
#[derive(Debug)]
pub(crate) struct Reader {
    /// The source's name, for messages.
    pub source: String,
    /// The client, with GA4's policy and bearer auth.
    pub client: HttpClient,
    /// `https://analyticsdata.googleapis.com` or `base_url`.
    pub api_base: Url,
    /// The property's digits.
    pub property: String,
    /// Days re-read before the saved cursor.
    pub lookback_days: u32,
    /// Rows per request.
    pub page_size: u64,
    /// User-defined reports.
    pub reports: Vec<ReportConfig>,
    /// The property's metadata names (dimensions, metrics), fetched once.
    pub metadata: OnceCell<(HashSet<String>, HashSet<String>)>,
    /// The property's adaptive concurrency limit (windows are opened as it allows).
    pub limiter: Arc<AdaptiveLimiter>,
    /// The most rows a day of each stream had so far, so that a window after the first batches
    /// days as a sequential read would instead of starting again at one day a request.
    pub largest_day: Mutex<HashMap<String, u64>>,
    /// The first day's report of a read, fetched by [`plan_windows`] to learn the day's cost: the
    /// read (in sequence or its first window) takes it from here instead of asking again.
    pub probed: Mutex<HashMap<(String, NaiveDate), Value>>,
}

/// One report's shape.
#[derive(Debug, Clone)]
pub struct ReportSpec {
    /// Dimensions, `date` first.
    pub dimensions: Vec<String>,
    /// Metrics.
    pub metrics: Vec<String>,
    /// Optional filter expression.
    pub dimension_filter: Option<Value>,
    /// The config key that chose these names.
    pub config_key: String,
}

impl ReportSpec {
    /// What a check of the names covers — the property and the report's dimension and metric names —
    /// as a short digest, saved in the stream's state under [`CHECKED`]: a changed name (or property)
    /// gives another digest, and the next read checks the names against the metadata again. A digest
    /// rather than the names keeps `state show` short; the filter is not part of it, as the metadata
    /// check does not look at it.
    pub fn checked(&self, property: &str) -> String {
        let text = format!(
            "{property}\n{}\n{}",
            self.dimensions.join(","),
            self.metrics.join(",")
        );
        let digest = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
        digest.as_ref()[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// What a read does about its names ([`name_check`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NameCheck {
    /// Check the names against the property's metadata before the first report.
    pub check: bool,
    /// Record them as checked ([`CHECKED`]) in the read's checkpoints.
    pub record: bool,
}

/// What a read with saved state `state` does about `spec`'s names. A first read (no state) checks
/// them, and so does a read whose state records other names: a misspelt or retired name then fails
/// before any report, with the config key, the name and GA4's replacement; both record the names
/// checked. A state that records the same names is not checked again — a run would otherwise spend
/// a request on the metadata every time — and records them on.
///
/// A state that records none (saved by an older growthflow) is neither checked nor given a record: GA4's own check of the first report
/// stands in, its refusal of a name answered with the metadata check's error
/// ([`Reader::send_report`]); and a resumed or repeated sync then ends with the state of one
/// uninterrupted sync, as a sync that read nothing new must.
pub fn name_check(state: Option<&Value>, spec: &ReportSpec, property: &str) -> NameCheck {
    match state.map(|s| s.get(CHECKED).and_then(Value::as_str)) {
        None => NameCheck {
            check: true,
            record: true,
        },
        Some(Some(checked)) => NameCheck {
            check: checked != spec.checked(property),
            record: true,
        },
        Some(None) => NameCheck {
            check: false,
            record: false,
        },
    }
}

impl Reader {
    /// `…/v1beta/properties/{id}{suffix}`.
    pub fn url(&self, suffix: &str) -> Url {
        let base = self.api_base.as_str().trim_end_matches('/');
        Url::parse(&format!(
            "{base}/v1beta/properties/{}{suffix}",
            self.property
        ))
        .expect("a valid base URL stays valid")
    }

    /// The report behind `stream`.
    pub fn spec(&self, stream: &str) -> Result<ReportSpec> {
        if stream == TRAFFIC_DAILY {
            return Ok(ReportSpec {
                dimensions: TRAFFIC_DIMENSIONS.iter().map(|s| s.to_string()).collect(),
                metrics: TRAFFIC_METRICS.iter().map(|s| s.to_string()).collect(),
                dimension_filter: None,
                config_key: format!("sources.{}", self.source),
            });
        }
        let found = stream
            .strip_prefix(REPORT_PREFIX)
            .and_then(|n| self.reports.iter().enumerate().find(|(_, r)| r.name == n));
        let Some((i, r)) = found else {
            return Err(Error::Internal(format!(
                "GA4 source \"{}\" has no stream \"{stream}\"",
                self.source
            )));
        };
        let mut dimensions = vec!["date".to_string()];
        dimensions.extend(r.dimensions.iter().filter(|d| *d != "date").cloned());
        Ok(ReportSpec {
            dimensions,
            metrics: r.metrics.clone(),
            dimension_filter: r.dimension_filter.clone(),
            config_key: format!("sources.{}.reports[{i}]", self.source),
        })
    }

    /// The property's metadata (fetched on first use).
    pub async fn metadata(&self) -> Result<&(HashSet<String>, HashSet<String>)> {
        self.metadata
            .get_or_try_init(|| async {
                let req = self.client.reqwest().get(self.url("/metadata"));
                let (_, body) = self
                    .client
                    .send_decoded("metadata", req, |resp| resp.json::<Value>())
                    .await?;
                let names = |k: &str| -> HashSet<String> {
                    body.get(k)
                        .and_then(|v| v.as_array())
                        .into_iter()
                        .flatten()
                        .filter_map(|d| {
                            d.get("apiName")
                                .and_then(|n| n.as_str())
                                .map(str::to_string)
                        })
                        .collect()
                };
                Ok((names("dimensions"), names("metrics")))
            })
            .await
    }

    /// Check a report's names against the property's metadata; the error names the wrong one.
    pub async fn validate(&self, spec: &ReportSpec) -> Result<()> {
        let (dims, mets) = self.metadata().await?;
        let check = |kind: &str,
                     key: &str,
                     names: &[String],
                     known: &HashSet<String>|
         -> Result<()> {
            for name in names {
                if known.contains(name) {
                    continue;
                }
                let hint = RENAMED
                    .iter()
                    .find(|(old, _)| old == name)
                    .map(|(_, new)| format!(" (GA4 renamed it to \"{new}\")"))
                    .unwrap_or_default();
                return Err(Error::config(
                    format!("{}.{key}", spec.config_key),
                    format!(
                        "GA4 property {} of source \"{}\" has no {kind} \"{name}\"{hint}: correct or remove it \
                         (the property's names: GET /v1beta/properties/{}/metadata)",
                        self.property, self.source, self.property
                    ),
                ));
            }
            Ok(())
        };
        check("dimension", "dimensions", &spec.dimensions, dims)?;
        check("metric", "metrics", &spec.metrics, mets)
    }

    /// The RunReportRequest for `day` from row `offset`: one day's range (a single day is never
    /// sampled on standard properties), ordered by every dimension so pages are stable.
    pub fn report_request(&self, spec: &ReportSpec, day: NaiveDate, offset: u64) -> Value {
        let d = day.format("%Y-%m-%d").to_string();
        let mut body = json!({
            "dateRanges": [{"startDate": d, "endDate": d}],
            "dimensions": spec.dimensions.iter().map(|n| json!({"name": n})).collect::<Vec<_>>(),
            "metrics": spec.metrics.iter().map(|n| json!({"name": n})).collect::<Vec<_>>(),
            "orderBys": spec.dimensions.iter().map(|n| json!({"dimension": {"dimensionName": n}})).collect::<Vec<_>>(),
            "limit": self.page_size.to_string(),
            "offset": offset.to_string(),
            "keepEmptyRows": false,
            "returnPropertyQuota": true,
        });
        if let Some(f) = &spec.dimension_filter {
            body["dimensionFilter"] = f.clone();
        }
        body
    }

    /// One runReport page for `day` at `offset`: how a day that overflows its batched first page goes on.
    pub async fn run_report(
        &self,
        spec: &ReportSpec,
        day: NaiveDate,
        offset: u64,
    ) -> Result<Value> {
        let req = self
            .client
            .reqwest()
            .post(self.url(":runReport"))
            .json(&self.report_request(spec, day, offset));
        self.send_report(spec, req).await
    }

    /// Send a report request. GA4 answers a name it does not know with 400 `INVALID_ARGUMENT`
    /// ("Field … is not a valid dimension"); a read that skipped the metadata check
    /// ([`name_check`]) makes it then, so that the error names the config key, the name and what to
    /// do as the check would have. Any other refusal, or one the metadata does not explain (names
    /// GA4 knows but will not combine, a bad filter), is GA4's own error.
    async fn send_report(&self, spec: &ReportSpec, req: reqwest::RequestBuilder) -> Result<Value> {
        // Parsed once, as part of the request; the hourly
        // quota it reports pauses the next report request as the policy's pacing would.
        let decoded = self
            .client
            .send_decoded(REPORT_ENDPOINT, req, |resp| {
                let body: Value = resp.json()?;
                Ok((quota_pause_in(&body), body))
            })
            .await;
        match decoded {
            Ok((_, (pause, body))) => {
                if let Some(pause) = pause {
                    self.client.pause(REPORT_ENDPOINT, pause);
                }
                Ok(body)
            }
            Err(refused @ Error::Api { status: 400, .. }) => match self.validate(spec).await {
                Err(named @ Error::Config { .. }) => Err(named),
                _ => Err(refused),
            },
            Err(e) => Err(e),
        }
    }

    /// The first page of each of `days` (at most [`MAX_BATCH`]) in one batchRunReports request, in
    /// the order of `days`. Each inner report is charged its own quota tokens; batching saves round
    /// trips and concurrent-request slots, not tokens.
    pub async fn batch_run_reports(
        &self,
        spec: &ReportSpec,
        days: &[NaiveDate],
    ) -> Result<Vec<Value>> {
        let requests: Vec<Value> = days
            .iter()
            .map(|d| self.report_request(spec, *d, 0))
            .collect();
        let req = self
            .client
            .reqwest()
            .post(self.url(":batchRunReports"))
            .json(&json!({ "requests": requests }));
        let mut body = self.send_report(spec, req).await?;
        let reports = match body.get_mut("reports").map(Value::take) {
            Some(Value::Array(reports)) => reports,
            _ => Vec::new(),
        };
        if reports.len() != days.len() {
            return Err(Error::Decode {
                message: format!(
                    "GA4 batchRunReports answered {} reports for {} requests (property {})",
                    reports.len(),
                    days.len(),
                    self.property
                ),
            });
        }
        Ok(reports)
    }
}

/// `rowCount` of a report: an int32 (a number, or a string from some proxies); absent when 0.
pub fn row_count(body: &Value) -> u64 {
    body.get("rowCount")
        .and_then(|v| v.as_u64().or_else(|| v.as_str()?.parse().ok()))
        .unwrap_or(0)
}

/// A metric value parsed per its `metricHeaders[].type` (integers may be fractional: attribution credit).
pub fn parse_metric(value: &str, metric_type: &str) -> Result<Decimal> {
    let v = value.trim();
    Decimal::from_str(v)
        .or_else(|_| Decimal::from_scientific(v))
        .map(|d| d.normalize())
        .map_err(|e| Error::Decode {
            message: format!("GA4 metric value \"{v}\" ({metric_type}) is not a number: {e}"),
        })
}

/// `YYYYMMDD` → date.
pub fn parse_ga4_date(s: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(s, "%Y%m%d").ok()
}

/// The value GA4 gives every dimension of the row it folds other rows into.
const OTHER: &str = "(other)";

/// The records of one runReport response for `day` (every report asks for one day).
pub fn records(property: &str, day: NaiveDate, body: &Value) -> Result<Vec<Record>> {
    let names = |k: &str| -> Vec<(String, String)> {
        body.get(k)
            .and_then(|v| v.as_array())
            .into_iter()
            .flatten()
            .map(|h| {
                (
                    h.get("name")
                        .and_then(|n| n.as_str())
                        .unwrap_or("")
                        .to_string(),
                    h.get("type")
                        .and_then(|n| n.as_str())
                        .unwrap_or("TYPE_STANDARD")
                        .to_string(),
                )
            })
            .collect()
    };
    let dim_headers = names("dimensionHeaders");
    let met_headers = names("metricHeaders");
    let mut metadata = Map::new();
    if let Some(m) = body.get("metadata").and_then(|m| m.as_object()) {
        for k in [
            "currencyCode",
            "timeZone",
            "samplingMetadatas",
            "dataLossFromOtherRow",
            "subjectToThresholding",
            "emptyReason",
        ] {
            if let Some(v) = m.get(k) {
                metadata.insert(k.to_string(), v.clone());
            }
        }
        if m.contains_key("samplingMetadatas") {
            tracing::warn!(property, "GA4 sampled this report");
        }
        if m.get("dataLossFromOtherRow").and_then(|v| v.as_bool()) == Some(true) {
            tracing::warn!(
                property,
                "GA4 folded rows into (other): too many distinct values"
            );
        }
    }
    let values = |row: &Value, k: &str| -> Vec<String> {
        row.get(k)
            .and_then(|v| v.as_array())
            .into_iter()
            .flatten()
            .map(|c| {
                c.get("value")
                    .and_then(|v| v.as_str())
                    .unwrap_or("")
                    .to_string()
            })
            .collect()
    };
    let rows = body.get("rows").and_then(|r| r.as_array());
    let mut out = Vec::new();
    for row in rows.into_iter().flatten() {
        let dv = values(row, "dimensionValues");
        let mv = values(row, "metricValues");
        let mut dims = Map::new();
        let mut date = None;
        let mut rest = Vec::new();
        for ((name, _), v) in dim_headers.iter().zip(&dv) {
            if name == "date" {
                // The `(other)` row, where GA4 folds what is past its cardinality limits, has
                // `(other)` in every dimension, the date included: it is the report's day.
                date = if v == OTHER {
                    Some(day)
                } else {
                    parse_ga4_date(v)
                };
            } else {
                rest.push(v.as_str());
            }
            dims.insert(name.clone(), Value::String(v.clone()));
        }
        let date = date.ok_or_else(|| Error::Decode {
            message: "a GA4 report row has no valid date dimension (YYYYMMDD)".to_string(),
        })?;
        let mut mets = Map::new();
        for ((name, ty), v) in met_headers.iter().zip(&mv) {
            mets.insert(
                name.clone(),
                Value::String(parse_metric(v, ty)?.to_string()),
            );
        }
        let mut meta = metadata.clone();
        if dv.iter().any(|v| v == OTHER) {
            meta.insert("other_row".into(), Value::Bool(true));
        }
        let iso = date.format("%Y-%m-%d").to_string();
        out.push(Record {
            id: format!("{property}:{iso}:{}", rest.join(&ID_SEPARATOR.to_string())),
            cursor: Some(iso.clone()),
            payload: Payload::from(json!({
                "property": property,
                "date": iso,
                "dimensions": dims,
                "metrics": mets,
                "metadata": meta,
            })),
        });
    }
    Ok(out)
}

/// The days to read: a backfill window's dates, or from the saved cursor less the lookback (else the start)
/// up to today. A saved cursor that is not a date is an error saying how to reset it: restarting from
/// `start_date` instead would silently re-read (and spend quota on) the whole history.
pub fn days(
    request: &ReadRequest,
    lookback_days: u32,
    today: NaiveDate,
) -> Result<(NaiveDate, NaiveDate)> {
    if let Some(w) = request.window {
        let last = (w.until - Days::seconds(1)).date_naive();
        return Ok((w.since.date_naive(), last.min(today)));
    }
    let from = read_start_day(request, Rewind::days(lookback_days))?;
    Ok((from, today))
}

/// How many days the next batchRunReports request asks for: as many as keep the answer within about
/// `page_size` rows, judged by the largest day of the previous request, up to [`MAX_BATCH`]. The first
/// request asks for one day, as nothing is known of the property's size yet.
pub fn next_batch(page_size: u64, largest_day: Option<u64>) -> usize {
    match largest_day {
        None => 1,
        Some(rows) => (page_size / rows.max(1)).clamp(1, MAX_BATCH as u64) as usize,
    }
}

/// Read one stream, up to [`MAX_BATCH`] days per batchRunReports request, each day as one or more pages
/// in date order. A day's first page replaces the day's stored rows (`replaces`), so rows GA4 dropped
/// from a restated day go too — an empty day still yields an (empty) replacing page; its last page
/// checkpoints `{"cursor": day}`.
pub(crate) fn read(reader: Arc<Reader>, request: ReadRequest) -> BoxStream<'static, Result<Page>> {
    async_stream::try_stream! {
        let today = reader.client.clock().utc_now().date_naive();
        let (from, to) = days(&request, reader.lookback_days, today)?;
        let spec = reader.spec(&request.stream)?;
        let names = name_check(request.state.as_ref(), &spec, &reader.property);
        let mut pages = read_days(reader, request.stream, from, to, false, names);
        while let Some(page) = pages.next().await {
            yield page?;
        }
    }
    .boxed()
}

/// Read the days `from..=to` of `stream` (see [`read`]). A window (`window`) starts batching from the
/// largest day other windows of the stream have seen; a whole read starts at one day, as always. The
/// names are checked against the metadata first, and recorded as checked ([`CHECKED`]) in every
/// checkpoint, as `names` says ([`name_check`]).
fn read_days(
    reader: Arc<Reader>,
    stream: String,
    from: NaiveDate,
    to: NaiveDate,
    window: bool,
    names: NameCheck,
) -> BoxStream<'static, Result<Page>> {
    async_stream::try_stream! {
        let spec = reader.spec(&stream)?;
        if names.check {
            reader.validate(&spec).await?;
        }
        let checked = names.record.then(|| spec.checked(&reader.property));
        let all: Vec<NaiveDate> = from.iter_days().take_while(|d| *d <= to).collect();
        let mut largest: Option<u64> = if window { reader.largest_day(&stream) } else { None };
        let mut next = 0;
        while next < all.len() {
            let probed = reader
                .probed
                .lock()
                .expect("probe lock")
                .remove(&(stream.clone(), all[next]));
            let (chunk, reports) = match probed {
                Some(report) => (&all[next..next + 1], vec![report]),
                None => {
                    let n = next_batch(reader.page_size, largest).min(all.len() - next);
                    let chunk = &all[next..next + n];
                    (chunk, reader.batch_run_reports(&spec, chunk).await?)
                }
            };
            next += chunk.len();
            largest = reports
                .iter()
                .map(|r| row_count(r).min(reader.page_size))
                .max();
            if let Some(rows) = largest {
                reader.note_largest_day(&stream, rows);
            }
            for (day, first) in chunk.iter().zip(reports) {
                let iso = day.format("%Y-%m-%d").to_string();
                let mut replaces = Some(iso.clone());
                let mut body = first;
                let mut rows = Offset::new("offset", "limit", reader.page_size, None);
                loop {
                    let recs = records(&reader.property, *day, &body)?;
                    // An empty page ends the day even if rowCount promised more: no endless loop.
                    let done = rows.advance(recs.len(), Some(row_count(&body))) == NextPage::Done;
                    // Backfills checkpoint too: the engine saves no state for them, but tells the
                    // user how far a stopped one got.
                    let checkpoint = done.then(|| {
                        let mut cp = json!({ "cursor": iso });
                        if let Some(checked) = &checked {
                            cp[CHECKED] = json!(checked);
                        }
                        cp
                    });
                    yield Page::with_checkpoint(recs, checkpoint).replacing(replaces.take());
                    if done {
                        break;
                    }
                    body = reader.run_report(&spec, *day, rows.offset()).await?;
                }
            }
        }
    }
    .boxed()
}

impl Reader {
    /// The largest day of `stream` seen by an earlier batch of this process, if any.
    fn largest_day(&self, stream: &str) -> Option<u64> {
        self.largest_day
            .lock()
            .expect("largest day lock")
            .get(stream)
            .copied()
    }

    fn note_largest_day(&self, stream: &str, rows: u64) {
        self.largest_day
            .lock()
            .expect("largest day lock")
            .insert(stream.to_string(), rows);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use chrono::Utc;

    fn d(m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2024, m, day).unwrap()
    }

    #[test]
    fn windows_of_days_share_no_day_and_leave_none_out() {
        let at = |m, day, h| Utc.with_ymd_and_hms(2024, m, day, h, 0, 0).unwrap();
        let today = d(6, 30);
        // A span starting mid-day leaves that day to the window before it.
        assert_eq!(
            span_days(
                Span {
                    since: at(4, 1, 0),
                    until: Some(at(4, 11, 8))
                },
                today
            ),
            Some((d(4, 1), d(4, 11)))
        );
        assert_eq!(
            span_days(
                Span {
                    since: at(4, 11, 8),
                    until: Some(at(4, 21, 16))
                },
                today
            ),
            Some((d(4, 12), d(4, 21)))
        );
        // The open last window reads on to today; a span holding no midnight reads nothing.
        assert_eq!(
            span_days(
                Span {
                    since: at(6, 20, 0),
                    until: None
                },
                today
            ),
            Some((d(6, 20), today))
        );
        assert_eq!(
            span_days(
                Span {
                    since: at(4, 1, 2),
                    until: Some(at(4, 1, 20))
                },
                today
            ),
            None
        );
    }

    #[test]
    fn the_daily_budget_is_read_from_the_property_quota() {
        let report =
            json!({"propertyQuota": {"tokensPerDay": {"consumed": 12, "remaining": 199610}}});
        assert_eq!(daily_tokens(&report), Some((12, 199_610)));
        assert_eq!(daily_tokens(&json!({"rows": []})), None);
    }
}
