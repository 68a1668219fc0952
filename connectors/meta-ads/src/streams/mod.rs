//! The streams a Meta ad account is read as, declared as data, and the read loops they share.
//!
//! - `ad_insights`: `GET /{version}/act_{id}/insights` at `level=ad`, one row per ad and day
//!   (`time_increment=1`), incremental by date. Insights are restated while conversions are attributed
//!   (up to 28 days), so every sync re-reads `lookback_days` before the saved cursor and each row's id
//!   `{ad_id}:{date_start}` makes a restated day replace its row. Ranges of up to
//!   [`INSIGHTS_CHUNK_DAYS`] days are one synchronous GET; longer ones (first syncs, backfills) are
//!   planned up front ([`plan`]) as asynchronous report jobs (`POST` → `report_run_id` → poll →
//!   `/{report_run_id}/insights`) of at most [`INSIGHTS_JOB_DAYS`] days each, because long
//!   synchronous ranges time out at Meta and big jobs fail there.
//!
//!   The slices wait in a queue in date order. Their jobs run side by side, started in queue order
//!   as slots free up: four at first, more (up to [`MAX_CONCURRENT_JOBS`]) while Meta's insights
//!   throttle stays low, half as many when it runs high ([`JobSlots`]); each polling round waits once on the client's
//!   clock ([`JOB_POLL_FIRST`], doubling to [`JOB_POLL_MAX`], back to the first when new jobs start)
//!   and then polls every running job. The head slice's pages are read as soon as its job completed,
//!   while the jobs behind it keep running, so records still come in date order, one page at a time.
//!   A failed, skipped or timed-out job ([`JOB_TIMEOUT`] after its own start) is split and its parts
//!   take its place in the queue, to get jobs like any other slice: first the window in halves down
//!   to single days, then a day by level — one job per campaign that delivered that day, and a
//!   campaign-day that fails again one job per ad set (see `Reader::split`).
//!
//!   Each slice is checkpointed as `{"cursor": "<last complete date>"}` once its last page is read,
//!   never past a day that a queued, running or unread slice still covers (see
//!   [`completed_through`]). "Today" is the client clock's, so tests pin it.
//! - `campaigns`, `adsets`, `ads`: `GET /act_{id}/{edge}` filtered on `updated_time` (unix seconds),
//!   unsorted, so the engine saves the cursor when the stream is done.
//!
//! Every page after the first is `paging.next` followed as given, except for its `access_token`, which
//! is removed (the authenticator adds the configured one back) so the token is never copied, stored or
//! sent twice; a `next` URL on another origin than the API root is refused by the core HTTP client's
//! origin rule rather than sent the token.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use futures::stream::{BoxStream, StreamExt};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{json, Value};
use url::Url;

use growthflow_core::connector::{
    failed_read, Page, Payload, ReadRequest, Record, StreamDef, SyncMode,
};
use growthflow_core::http::{HttpClient, Response};
use growthflow_core::paginate::{paged, JsonCursor, NextPage};
use growthflow_core::start::{read_start_day, Rewind};
use growthflow_core::time::{format_utc, parse_date, parse_utc};
use growthflow_core::{Error, Result};

mod insights;
mod jobs;

use insights::read_insights;
pub use insights::{
    completed_through, insight_records, insights_range, plan, Scope, Slice, INSIGHTS_JOB_DAYS,
};
pub use jobs::{
    Job, JobOutcome, JobSlots, FIRST_CONCURRENT_JOBS, JOB_POLL_FIRST, JOB_POLL_MAX, JOB_TIMEOUT,
    MAX_CONCURRENT_JOBS, THROTTLE_GROW_BELOW, THROTTLE_SHRINK_AT,
};

/// Daily ad-level insights.
pub const AD_INSIGHTS: StreamDef = StreamDef {
    name: "ad_insights",
    primary_key: &["ad_id", "date_start"],
    mode: SyncMode::Incremental {
        cursor_field: "date_start",
    },
    sorted: false,
    parent: None,
    description: "Daily ad-level insights (GET /act_{id}/insights?level=ad&time_increment=1), \
                  incremental on date_start with a 28-day lookback",
};

/// Campaigns.
pub const CAMPAIGNS: StreamDef = StreamDef {
    name: "campaigns",
    primary_key: &["id"],
    mode: SyncMode::Incremental {
        cursor_field: "updated_time",
    },
    sorted: false,
    parent: None,
    description: "Campaigns (GET /act_{id}/campaigns), incremental on updated_time",
};

/// Ad sets.
pub const ADSETS: StreamDef = StreamDef {
    name: "adsets",
    primary_key: &["id"],
    mode: SyncMode::Incremental {
        cursor_field: "updated_time",
    },
    sorted: false,
    parent: None,
    description: "Ad sets (GET /act_{id}/adsets), incremental on updated_time",
};

/// Ads.
pub const ADS: StreamDef = StreamDef {
    name: "ads",
    primary_key: &["id"],
    mode: SyncMode::Incremental {
        cursor_field: "updated_time",
    },
    sorted: false,
    parent: None,
    description: "Ads (GET /act_{id}/ads), incremental on updated_time",
};

/// Every stream, in the order `discover` lists and `sync` reads them.
pub fn stream_defs() -> Vec<StreamDef> {
    vec![AD_INSIGHTS, CAMPAIGNS, ADSETS, ADS]
}

/// Insights fields requested (metrics arrive as strings; `account_currency` says what `spend` is in).
pub const INSIGHTS_FIELDS: &str = "date_start,date_stop,account_id,account_currency,campaign_id,\
campaign_name,adset_id,adset_name,ad_id,ad_name,impressions,reach,clicks,inline_link_clicks,spend,\
actions,action_values";

/// Campaign fields.
pub const CAMPAIGN_FIELDS: &str = "id,account_id,name,status,configured_status,effective_status,\
objective,buying_type,bid_strategy,daily_budget,lifetime_budget,budget_remaining,start_time,stop_time,\
created_time,updated_time,special_ad_categories";

/// Ad set fields.
pub const ADSET_FIELDS: &str = "id,account_id,name,campaign_id,status,effective_status,\
optimization_goal,billing_event,bid_strategy,daily_budget,lifetime_budget,start_time,end_time,\
created_time,updated_time";

/// Ad fields.
pub const AD_FIELDS: &str =
    "id,account_id,name,adset_id,campaign_id,status,effective_status,creative{id},created_time,updated_time";

/// Insights page size.
pub const INSIGHTS_PAGE_SIZE: u32 = 500;

/// Object page size.
pub const OBJECTS_PAGE_SIZE: u32 = 100;

/// Longest range read synchronously: longer ranges time out or run out of memory at Meta, so they go
/// through an async report job.
pub const INSIGHTS_CHUNK_DAYS: i64 = 30;

/// Meta keeps insights for 37 months; an older `time_range` is a 400, so starts are clamped to this
/// many days before today (36 months, leaving a margin).
pub const INSIGHTS_RETENTION_DAYS: i64 = 1095;

/// What every read needs: the client and where the account lives.
#[derive(Debug)]
pub(crate) struct Reader {
    /// The shared client (policy, auth, clock).
    pub client: HttpClient,
    /// `{base}/{version}/`.
    pub api_base: Url,
    /// The ad account's numeric id.
    pub account_id: String,
    /// Days re-read before the saved cursor.
    pub lookback_days: u32,
    /// `action_attribution_windows`.
    pub attribution_windows: Vec<String>,
    /// The insights throttle Meta last reported, which sizes how many report jobs run at once.
    pub insights_throttle: jobs::InsightsThrottle,
}

impl Reader {
    /// `{root}act_{id}/{edge}`.
    pub fn account_url(&self, edge: &str) -> Url {
        let mut url = self.api_base.clone();
        url.set_path(&format!(
            "{}act_{}/{edge}",
            self.api_base.path(),
            self.account_id
        ));
        url
    }

    /// GET `url` on `endpoint` and decode the JSON body.
    pub async fn get(&self, endpoint: &str, url: Url) -> Result<Value> {
        self.get_page(endpoint, url, Ok).await
    }

    /// GET `url` on `endpoint` and hand the decoded body to `then`, both as part of the request
    /// ([`HttpClient::send_decoded`]): the page is parsed once, a truncated one is asked for once
    /// more, and what `then` refuses in a whole page is final.
    pub async fn get_page<T, F>(&self, endpoint: &str, url: Url, then: F) -> Result<T>
    where
        T: Send + 'static,
        F: Fn(Value) -> Result<T> + Send + Sync + 'static,
    {
        let (_, decoded) = self
            .client
            .send_decoded(endpoint, self.client.reqwest().get(url), move |resp| {
                then(resp.json()?)
            })
            .await?;
        Ok(decoded)
    }

    /// GET a page of rows on `endpoint` and make records of them with `then`, both as part of the
    /// request (see [`Reader::get_page`]): the page is parsed once, its rows kept as text, and
    /// `paging.next` read from the same parse. What `then` refuses comes back beside the next link,
    /// final as it always was.
    pub(crate) async fn get_rows<F>(
        &self,
        endpoint: &'static str,
        url: Url,
        then: F,
    ) -> Result<(Result<Vec<Record>>, NextPage)>
    where
        F: Fn(Vec<Box<RawValue>>) -> Result<Vec<Record>> + Send + Sync + 'static,
    {
        let (_, decoded) = self
            .client
            .send_decoded(endpoint, self.client.reqwest().get(url), move |resp| {
                let (rows, next) = rows_page(resp, endpoint)?;
                Ok((then(rows), next))
            })
            .await?;
        Ok(decoded)
    }

    /// The `level=ad` insights request for `[since, until]` (both inclusive, account time zone),
    /// narrowed to `scope`.
    pub fn insights_url(&self, since: NaiveDate, until: NaiveDate, scope: &Scope) -> Url {
        let mut url = self.account_url("insights");
        url.query_pairs_mut()
            .append_pair("level", "ad")
            .append_pair("time_increment", "1")
            .append_pair("time_range", &time_range(since, until))
            .append_pair("fields", INSIGHTS_FIELDS)
            .append_pair(
                "action_attribution_windows",
                &Value::from(self.attribution_windows.clone()).to_string(),
            )
            .append_pair("limit", &INSIGHTS_PAGE_SIZE.to_string());
        if let Some(filter) = scope.filtering() {
            url.query_pairs_mut()
                .append_pair("filtering", &filter.to_string());
        }
        url
    }

    /// A `paging.next` URL made safe to follow: on the client's origin (the API root's scheme, host and
    /// port) and without its `access_token` (the authenticator adds the configured one).
    pub fn next_url(&self, next: &str) -> Result<Url> {
        let url = Url::parse(next).map_err(|e| Error::Decode {
            message: format!("Meta paging.next is not a URL: {e}"),
        })?;
        let mut url = strip_access_token(&self.on_our_base(url));
        // Core refuses it on sending anyway; refusing on reading keeps it out of any checkpoint.
        self.client.check_origin(&url)?;
        url.set_fragment(None);
        Ok(url)
    }
}

impl Reader {
    /// A link on Meta's own host, rebased onto the configured `base_url` when that is another (a
    /// pass-through proxy): Meta writes its absolute links with its own host, and the proxy passes
    /// them on as they are, so page 2 was refused as off-origin. The link's version segment is
    /// replaced by the API root's path (`{base}/{version}/`); any other host is left for the
    /// origin check to refuse.
    fn on_our_base(&self, url: Url) -> Url {
        if url.origin().ascii_serialization() != META_ORIGIN
            || self.api_base.origin() == url.origin()
        {
            return url;
        }
        let rest: Vec<&str> = url
            .path_segments()
            .map(|s| s.skip(1).collect())
            .unwrap_or_default();
        let mut rebased = self.api_base.clone();
        rebased.set_path(&format!("{}{}", self.api_base.path(), rest.join("/")));
        rebased.set_query(url.query());
        rebased
    }
}

/// Meta's own origin, which writes its paging links.
const META_ORIGIN: &str = "https://graph.facebook.com";

/// `url` without any `access_token` query parameter.
pub fn strip_access_token(url: &Url) -> Url {
    let kept: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| k != "access_token")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let mut out = url.clone();
    if kept.is_empty() {
        out.set_query(None);
    } else {
        out.query_pairs_mut().clear().extend_pairs(kept);
    }
    out
}

/// Read `request.stream` as pages.
pub(crate) fn read(reader: Arc<Reader>, request: ReadRequest) -> BoxStream<'static, Result<Page>> {
    match request.stream.as_str() {
        "ad_insights" => {
            let today = reader.today();
            // A backfill's checkpoints are not saved, so only an incremental read has a floor.
            let floor = match request.window {
                Some(_) => None,
                None => request.state_cursor().and_then(parse_date),
            };
            match insights_range(&request, reader.lookback_days, today) {
                Ok(Some((since, until))) => read_insights(reader, plan(since, until), floor),
                Ok(None) => futures::stream::empty().boxed(),
                Err(e) => failed_read(e),
            }
        }
        "campaigns" => read_objects(reader, "campaigns", "campaign", CAMPAIGN_FIELDS, &request),
        "adsets" => read_objects(reader, "adsets", "adset", ADSET_FIELDS, &request),
        "ads" => read_objects(reader, "ads", "ad", AD_FIELDS, &request),
        other => {
            let e = Error::Internal(format!(
                "Meta Ads has no stream {other:?}; streams: ad_insights, campaigns, adsets, ads"
            ));
            failed_read(e)
        }
    }
}

/// `{"since":"…","until":"…"}`, Meta's `time_range`.
fn time_range(since: NaiveDate, until: NaiveDate) -> String {
    json!({"since": since.to_string(), "until": until.to_string()}).to_string()
}

fn data_array<'a>(body: &'a Value, what: &str) -> Result<&'a Vec<Value>> {
    body.get("data")
        .and_then(Value::as_array)
        .ok_or_else(|| Error::Decode {
            message: format!(
                "Meta {what} response without a data array: {}",
                body.to_string().chars().take(200).collect::<String>()
            ),
        })
}

/// Meta's object times (`2024-03-12T15:02:47-0700`, an offset without colon) as RFC 3339 UTC.
pub fn parse_meta_time(s: &str) -> Option<DateTime<Utc>> {
    parse_utc(s).or_else(|| {
        DateTime::parse_from_str(s.trim(), "%Y-%m-%dT%H:%M:%S%z")
            .ok()
            .map(|t| t.with_timezone(&Utc))
    })
}

/// A page of rows as parsed: each row's text cut out as Meta sent it (it goes to the dataset
/// unparsed, see [`Payload`]), and `paging`.
#[derive(Deserialize)]
struct RawRows {
    data: Option<Vec<Box<RawValue>>>,
    paging: Option<Value>,
}

/// A page's rows and `paging.next`, from the page's one parse. A page without a data array (or not
/// JSON at all) is parsed again as a value, on that failure path only, so that its error is the one
/// it always was ([`data_array`]'s, or a truncated body's, which is asked for once more).
fn rows_page(resp: &Response, what: &str) -> Result<(Vec<Box<RawValue>>, NextPage)> {
    let parsed = serde_json::from_slice::<RawRows>(&resp.body);
    if let Ok(RawRows {
        data: Some(rows),
        paging,
    }) = parsed
    {
        let paging = json!({ "paging": paging });
        return Ok((rows, JsonCursor::url("/paging/next").next_from(&paging)));
    }
    let body: Value = resp.json()?;
    data_array(&body, what)?;
    Err(Error::Decode {
        message: format!(
            "Meta {what} response is not a page of rows: {}",
            parsed.err().map(|e| e.to_string()).unwrap_or_default()
        ),
    })
}

/// What [`object_records`] reads of an object; the rest is skipped, not built.
#[derive(Deserialize)]
struct ObjectHead {
    id: Option<Value>,
    updated_time: Option<Value>,
}

/// The records of a campaigns, adsets or ads page: id `id`, cursor `updated_time`; each object's
/// text is kept as Meta sent it.
fn object_records(rows: Vec<Box<RawValue>>, edge: &str) -> Result<Vec<Record>> {
    rows.into_iter()
        .map(|o| {
            let head: Option<ObjectHead> = serde_json::from_str(o.get()).ok();
            let head = head.as_ref();
            let id = head
                .and_then(|h| h.id.as_ref())
                .and_then(Value::as_str)
                .ok_or_else(|| Error::Decode {
                    message: format!("Meta {edge} item without id: {}", o.get()),
                })?
                .to_string();
            let cursor = head
                .and_then(|h| h.updated_time.as_ref())
                .and_then(Value::as_str)
                .and_then(parse_meta_time)
                .map(format_utc);
            Ok(Record {
                id,
                cursor,
                payload: Payload::from_raw(o),
            })
        })
        .collect()
}

fn read_objects(
    reader: Arc<Reader>,
    edge: &'static str,
    object: &'static str,
    fields: &'static str,
    request: &ReadRequest,
) -> BoxStream<'static, Result<Page>> {
    let mut url = reader.account_url(edge);
    url.query_pairs_mut()
        .append_pair("fields", fields)
        .append_pair("limit", &OBJECTS_PAGE_SIZE.to_string());
    // Backfills and first runs read every object (they are few and old campaigns still spend); later
    // runs only what changed, one second early so that an edit in the cursor's own second is kept.
    let since = match (request.window, request.state_cursor()) {
        (None, Some(cursor)) => parse_meta_time(cursor),
        _ => None,
    };
    if let Some(since) = since {
        let filter = json!([{
            "field": format!("{object}.updated_time"),
            "operator": "GREATER_THAN",
            "value": since.timestamp() - 1,
        }]);
        url.query_pairs_mut()
            .append_pair("filtering", &filter.to_string());
    }
    paged(url, move |url: Url| {
        let reader = reader.clone();
        async move {
            let (records, next) = reader
                .get_rows(edge, url, move |rows| object_records(rows, edge))
                .await?;
            let records = records?;
            let next = match next {
                NextPage::Url(next) => Some(reader.next_url(&next)?),
                _ => None,
            };
            Ok((Page::new(records), next))
        }
    })
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_times_without_colon_parse() {
        assert_eq!(
            format_utc(parse_meta_time("2024-06-01T07:45:19-0700").unwrap()),
            "2024-06-01T14:45:19Z"
        );
    }

    fn answer(body: &str) -> Response {
        Response {
            status: reqwest::StatusCode::OK,
            headers: Default::default(),
            body: body.as_bytes().to_vec(),
        }
    }

    /// Rows are kept as Meta sent them and `paging.next` comes from the same parse; a page without
    /// a data array says so as it always did.
    #[test]
    fn a_page_of_rows_keeps_their_text_and_its_next_link() {
        let body = r#"{"data":[{"id":"7","name":"caf\u00e9","updated_time":"2024-06-01T07:45:19-0700"}],
            "paging":{"cursors":{"after":"QQ"},"next":"https://graph.facebook.com/v25.0/act_1/ads?after=QQ"}}"#;
        let (rows, next) = rows_page(&answer(body), "ads").unwrap();
        assert_eq!(
            next,
            NextPage::Url("https://graph.facebook.com/v25.0/act_1/ads?after=QQ".into())
        );
        let records = object_records(rows, "ads").unwrap();
        assert_eq!(records[0].id, "7");
        assert_eq!(records[0].cursor.as_deref(), Some("2024-06-01T14:45:19Z"));
        assert_eq!(
            records[0].payload.as_str(),
            r#"{"id":"7","name":"caf\u00e9","updated_time":"2024-06-01T07:45:19-0700"}"#
        );
        let (rows, next) = rows_page(&answer(r#"{"data":[]}"#), "ads").unwrap();
        assert_eq!((rows.len(), next), (0, NextPage::Done));
        let err = rows_page(&answer(r#"{"data":{"x":1}}"#), "ads").unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"could not decode the response: Meta ads response without a data array: {"data":{"x":1}}"#
        );
        assert!(matches!(
            rows_page(&answer(r#"{"data":[{"id"#), "ads"),
            Err(Error::Decode { .. })
        ));
        let (rows, _) = rows_page(&answer(r#"{"data":[{"name":"x"}]}"#), "ads").unwrap();
        assert_eq!(
            object_records(rows, "ads").unwrap_err().to_string(),
            r#"could not decode the response: Meta ads item without id: {"name":"x"}"#
        );
    }

    #[test]
    fn strip_token_keeps_the_rest() {
        let u = Url::parse("https://graph.facebook.com/v25.0/act_1/insights?access_token=EAAB&fields=a%2Cb&after=MQ").unwrap();
        assert_eq!(
            strip_access_token(&u).as_str(),
            "https://graph.facebook.com/v25.0/act_1/insights?fields=a%2Cb&after=MQ"
        );
    }
}
