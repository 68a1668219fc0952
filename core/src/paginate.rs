//! The paging styles the five platforms use, as small reusable pieces.
//!
//! A [`Paginator`] looks at a page's response and says where the next page is: new parameter values
//! (page number, offset, cursor — the connector puts them in the query string, a JSON body or GraphQL
//! variables, wherever its platform wants them), a URL to follow verbatim (JSON:API
//! `links.next`, Graph API `paging.next`), or nothing. [`paged`] turns a fetch function into a lazy stream
//! of pages, so a connector never loads more than one page at a time.

use std::fmt;
use std::future::Future;

use futures::Stream;

use crate::http::Response;
use crate::{Error, Result};

/// Where the next page is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NextPage {
    /// No more pages.
    Done,
    /// Request again with these parameters set (replacing earlier values of the same names).
    Params(Vec<(String, String)>),
    /// Follow this URL as given.
    Url(String),
}

/// Decides the next page from the current one.
pub trait Paginator: Send + fmt::Debug {
    /// Parameters for the very first page (page 1, offset 0, no cursor), whatever page the paginator has
    /// reached: a caller that re-anchors its query must get the new listing's start, never its own
    /// position in the old one.
    fn first(&self) -> Vec<(String, String)>;
    /// Start over: forget the position reached, so that the next [`Paginator::next`] counts from the
    /// first page again, and return the first page's parameters.
    fn reset(&mut self) -> Vec<(String, String)>;
    /// The next page after `resp`, which held `records` records.
    fn next(&mut self, resp: &Response, records: usize) -> Result<NextPage>;
}

/// `?page=N&per_page=M`, stopping at the total-pages header when the platform sends one (WooCommerce's
/// `X-WP-TotalPages`), else at the first short page.
#[derive(Debug, Clone)]
pub struct PageNumber {
    /// Name of the page parameter.
    pub page_param: &'static str,
    /// Name of the page-size parameter.
    pub size_param: &'static str,
    /// Page size requested.
    pub size: u32,
    /// Header holding the total number of pages, if any.
    pub total_pages_header: Option<&'static str>,
    page: u32,
}

impl PageNumber {
    /// Start at page 1.
    pub fn new(
        page_param: &'static str,
        size_param: &'static str,
        size: u32,
        total_pages_header: Option<&'static str>,
    ) -> Self {
        PageNumber {
            page_param,
            size_param,
            size,
            total_pages_header,
            page: 1,
        }
    }

    /// The page number the next request will ask for.
    pub fn page(&self) -> u32 {
        self.page
    }
}

impl Paginator for PageNumber {
    fn first(&self) -> Vec<(String, String)> {
        vec![
            (self.page_param.into(), "1".into()),
            (self.size_param.into(), self.size.to_string()),
        ]
    }

    fn reset(&mut self) -> Vec<(String, String)> {
        self.page = 1;
        self.first()
    }

    fn next(&mut self, resp: &Response, records: usize) -> Result<NextPage> {
        let total = self
            .total_pages_header
            .and_then(|h| resp.header(h))
            .and_then(|v| v.trim().parse::<u32>().ok());
        let more = match total {
            Some(total) => self.page < total && records > 0,
            None => records >= self.size as usize,
        };
        if !more {
            return Ok(NextPage::Done);
        }
        self.page += 1;
        Ok(NextPage::Params(vec![
            (self.page_param.into(), self.page.to_string()),
            (self.size_param.into(), self.size.to_string()),
        ]))
    }
}

/// A cursor inside the JSON body: Klaviyo's `links.next` and Meta's `paging.next` (URLs, followed
/// verbatim), Meta's `paging.cursors.after` or Shopify's `pageInfo.endCursor` (values for a parameter).
#[derive(Debug, Clone)]
pub struct JsonCursor {
    /// JSON pointer to the cursor, e.g. `/links/next`.
    pub pointer: String,
    /// Parameter to put the cursor in; `None` means the cursor is a URL.
    pub param: Option<&'static str>,
    /// JSON pointer to a "more pages" flag (Shopify's `hasNextPage`); when false, stop.
    pub has_more_pointer: Option<String>,
}

impl JsonCursor {
    /// The cursor is a URL to follow.
    pub fn url(pointer: impl Into<String>) -> Self {
        JsonCursor {
            pointer: pointer.into(),
            param: None,
            has_more_pointer: None,
        }
    }

    /// The cursor is a value for `param`.
    pub fn param(pointer: impl Into<String>, param: &'static str) -> Self {
        JsonCursor {
            pointer: pointer.into(),
            param: Some(param),
            has_more_pointer: None,
        }
    }

    /// Stop when the boolean at `pointer` is false.
    pub fn with_has_more(mut self, pointer: impl Into<String>) -> Self {
        self.has_more_pointer = Some(pointer.into());
        self
    }

    /// The next page read from an already parsed body.
    pub fn next_from(&self, body: &serde_json::Value) -> NextPage {
        if let Some(p) = &self.has_more_pointer {
            if body.pointer(p).and_then(|v| v.as_bool()) != Some(true) {
                return NextPage::Done;
            }
        }
        match body.pointer(&self.pointer).and_then(|v| v.as_str()) {
            Some(c) if !c.is_empty() => match self.param {
                Some(param) => NextPage::Params(vec![(param.to_string(), c.to_string())]),
                None => NextPage::Url(c.to_string()),
            },
            _ => NextPage::Done,
        }
    }
}

impl Paginator for JsonCursor {
    fn first(&self) -> Vec<(String, String)> {
        Vec::new()
    }

    fn reset(&mut self) -> Vec<(String, String)> {
        Vec::new()
    }

    /// Parses the whole body for one pointer: a connector that parses the page anyway (as part of
    /// the request, with [`HttpClient::send_decoded`](crate::http::HttpClient::send_decoded)) calls
    /// [`JsonCursor::next_from`] on that parse instead.
    fn next(&mut self, resp: &Response, _records: usize) -> Result<NextPage> {
        let body: serde_json::Value = resp.json()?;
        Ok(self.next_from(&body))
    }
}

/// `offset`/`limit` paging (GA4's runReport), stopping at a total count in the body when there is one,
/// else at the first short page.
#[derive(Debug, Clone)]
pub struct Offset {
    /// Name of the offset parameter.
    pub offset_param: &'static str,
    /// Name of the limit parameter.
    pub limit_param: &'static str,
    /// Page size.
    pub limit: u64,
    /// JSON pointer to the total row count, e.g. `/rowCount`.
    pub total_pointer: Option<String>,
    offset: u64,
}

impl Offset {
    /// Start at offset 0.
    pub fn new(
        offset_param: &'static str,
        limit_param: &'static str,
        limit: u64,
        total_pointer: Option<String>,
    ) -> Self {
        Offset {
            offset_param,
            limit_param,
            limit,
            total_pointer,
            offset: 0,
        }
    }

    /// Rows read so far: the offset of the next page.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The next page after a body already parsed, which held `records` records: the total is read
    /// at [`Offset::total_pointer`] (a number, or a number as a string) without parsing the page
    /// again, as [`Paginator::next`] must.
    pub fn next_from(&mut self, body: &serde_json::Value, records: usize) -> NextPage {
        let total = self
            .total_pointer
            .as_deref()
            .and_then(|p| body.pointer(p))
            .and_then(|v| {
                v.as_u64()
                    .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
            });
        self.advance(records, total)
    }

    /// The next page given the page's record count and the total (if known).
    pub fn advance(&mut self, records: usize, total: Option<u64>) -> NextPage {
        self.offset += records as u64;
        let more = records > 0
            && match total {
                Some(t) => self.offset < t,
                None => records as u64 >= self.limit,
            };
        if more {
            NextPage::Params(vec![
                (self.offset_param.into(), self.offset.to_string()),
                (self.limit_param.into(), self.limit.to_string()),
            ])
        } else {
            NextPage::Done
        }
    }
}

impl Paginator for Offset {
    fn first(&self) -> Vec<(String, String)> {
        vec![
            (self.offset_param.into(), "0".into()),
            (self.limit_param.into(), self.limit.to_string()),
        ]
    }

    fn reset(&mut self) -> Vec<(String, String)> {
        self.offset = 0;
        self.first()
    }

    /// Parses the whole body when there is a total to read: a connector that parses the page anyway
    /// calls [`Offset::next_from`] on that parse instead.
    fn next(&mut self, resp: &Response, records: usize) -> Result<NextPage> {
        if self.total_pointer.is_none() {
            return Ok(self.advance(records, None));
        }
        let body: serde_json::Value = resp.json()?;
        Ok(self.next_from(&body, records))
    }
}

/// Slices of a listing in a stable order (by id), read side by side by offset once its first page
/// told the total, each overlapping the one before by one record.
///
/// Page numbers over a live listing cannot be read side by side safely on their own: a record deleted
/// before a page already read shifts every later record one place forward, and the record that slides
/// from the next page onto the read one is never seen (a sequential reader has the same hole, it only
/// hits it less often). Slice `k` therefore starts at offset `k × (size − 1)`: its first record must be
/// the previous slice's last ([`Overlap::joins`]). When every join holds and the last slice ends the
/// listing, the slices cover it without a gap, whatever was served when: a record present throughout
/// the read lies between two joined records and was in the slice that covers them. A join that fails
/// means the listing shifted between two slices; the caller reads again (a re-read is an upsert, a
/// missed record is data loss). Records created during the read only append (ids grow), so a slice
/// that comes back full where it was planned to be the last just means one slice more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Overlap {
    /// Records per slice (the page size; at least 2, or slices would not advance).
    pub size: u64,
}

impl Overlap {
    /// Slices of `size` records; `None` below 2, where a one-record overlap leaves no room to advance.
    pub fn new(size: u64) -> Option<Overlap> {
        (size >= 2).then_some(Overlap { size })
    }

    /// The offset of slice `k` (slice 0 is the first page).
    pub fn offset(&self, k: u64) -> u64 {
        k * (self.size - 1)
    }

    /// The last slice needed for a listing of `total` records: the first that reaches its end (0 when
    /// the first page holds it all).
    pub fn slices_for(&self, total: u64) -> u64 {
        total.saturating_sub(self.size).div_ceil(self.size - 1)
    }

    /// True when slice `k`, which held `records` records of a listing its own response counted at
    /// `total` (when the platform says), reached the listing's end.
    pub fn ends(&self, k: u64, records: usize, total: Option<u64>) -> bool {
        (records as u64) < self.size || total.is_some_and(|t| self.offset(k) + records as u64 >= t)
    }

    /// True when a slice that starts with `first` joins the one before, which ended with `last`: they
    /// share that record. An empty slice never joins (the listing shrank under it).
    pub fn joins<T: PartialEq>(last: Option<&T>, first: Option<&T>) -> bool {
        matches!((last, first), (Some(a), Some(b)) if a == b)
    }
}

/// One query parameter as [`set_query`] takes it, so that a connector's lists of parameters read as
/// `param("page", "1")` rather than pairs of `to_string()`s.
pub fn param(name: &str, value: impl Into<String>) -> (String, String) {
    (name.to_string(), value.into())
}

/// Set `params` on `url`, replacing existing values of the same names.
pub fn set_query(url: &mut url::Url, params: &[(String, String)]) {
    let kept: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| !params.iter().any(|(p, _)| p == k))
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    url.query_pairs_mut()
        .clear()
        .extend_pairs(kept)
        .extend_pairs(params.iter().map(|(k, v)| (k.as_str(), v.as_str())));
}

/// A lazy stream of pages: `fetch` gets the current page's request state and returns the page's item and
/// the next request state (`None` when done). Nothing is fetched until the stream is polled, and only one
/// page is held at a time.
pub fn paged<S, T, F, Fut>(first: S, mut fetch: F) -> impl Stream<Item = Result<T>>
where
    F: FnMut(S) -> Fut,
    Fut: Future<Output = Result<(T, Option<S>)>>,
{
    futures::stream::try_unfold(Some(first), move |state| {
        let fut = state.map(&mut fetch);
        async move {
            match fut {
                None => Ok::<_, Error>(None),
                Some(fut) => {
                    let (item, next) = fut.await?;
                    Ok(Some((item, next)))
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderMap, HeaderValue};

    #[test]
    fn overlapping_slices_cover_a_listing_and_prove_their_joins() {
        assert_eq!(Overlap::new(1), None);
        let o = Overlap::new(100).unwrap();
        assert_eq!((o.offset(0), o.offset(1), o.offset(3)), (0, 99, 297));
        // 100 records fit the first page; 199 need slice 1 (99..=198); 200 need slice 2.
        assert_eq!(
            [
                o.slices_for(0),
                o.slices_for(100),
                o.slices_for(101),
                o.slices_for(199),
                o.slices_for(200)
            ],
            [0, 0, 1, 1, 2]
        );
        assert!(o.ends(1, 100, Some(199)), "reaches the counted end");
        assert!(!o.ends(1, 100, Some(200)));
        assert!(
            !o.ends(1, 100, None),
            "a full slice with no count may not be the last"
        );
        assert!(o.ends(2, 2, None), "a short slice is the last");
        assert!(Overlap::joins(Some(&7), Some(&7)));
        assert!(!Overlap::joins(Some(&7), Some(&8)), "shifted");
        assert!(!Overlap::joins(Some(&7), None), "emptied");
        assert!(!Overlap::joins::<u64>(None, None));
    }

    fn resp(headers: &[(&'static str, &str)], body: &str) -> Response {
        let mut h = HeaderMap::new();
        for (k, v) in headers {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        Response {
            status: reqwest::StatusCode::OK,
            headers: h,
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn page_number_stops_at_total_pages() {
        let mut p = PageNumber::new("page", "per_page", 100, Some("X-WP-TotalPages"));
        let r = resp(&[("X-WP-TotalPages", "2")], "[]");
        assert_eq!(
            p.next(&r, 100).unwrap(),
            NextPage::Params(vec![
                ("page".into(), "2".into()),
                ("per_page".into(), "100".into())
            ])
        );
        assert_eq!(p.next(&r, 100).unwrap(), NextPage::Done);
    }

    /// Re-anchoring a keyset read asks for the first page again: `first` must mean page 1 even after
    /// paging on, and `reset` must make the following pages count from 1 again.
    #[test]
    fn first_and_reset_mean_page_one_whatever_page_was_reached() {
        let mut p = PageNumber::new("page", "per_page", 2, None);
        let r = resp(&[], "[]");
        p.next(&r, 2).unwrap();
        p.next(&r, 2).unwrap();
        assert_eq!(p.page(), 3);
        let one = vec![("page".into(), "1".into()), ("per_page".into(), "2".into())];
        assert_eq!(p.first(), one);
        assert_eq!(p.reset(), one);
        assert_eq!(p.page(), 1);
        assert_eq!(
            p.next(&r, 2).unwrap(),
            NextPage::Params(vec![
                ("page".into(), "2".into()),
                ("per_page".into(), "2".into())
            ])
        );

        let mut o = Offset::new("offset", "limit", 2, None);
        o.advance(2, None);
        assert_eq!(
            o.reset(),
            vec![("offset".into(), "0".into()), ("limit".into(), "2".into())]
        );
        assert_eq!(
            o.advance(2, None),
            NextPage::Params(vec![
                ("offset".into(), "2".into()),
                ("limit".into(), "2".into())
            ])
        );
    }

    #[test]
    fn page_number_without_header_stops_on_short_page() {
        let mut p = PageNumber::new("page", "per_page", 10, None);
        let r = resp(&[], "[]");
        assert!(matches!(p.next(&r, 10).unwrap(), NextPage::Params(_)));
        assert_eq!(p.next(&r, 3).unwrap(), NextPage::Done);
    }

    #[test]
    fn json_cursor_url_param_and_has_more() {
        let r = resp(
            &[],
            r#"{"links":{"next":"https://a/api/events?page%5Bcursor%5D=abc"}}"#,
        );
        assert_eq!(
            JsonCursor::url("/links/next").next(&r, 1).unwrap(),
            NextPage::Url("https://a/api/events?page%5Bcursor%5D=abc".into())
        );
        let r = resp(&[], r#"{"links":{"next":null}}"#);
        assert_eq!(
            JsonCursor::url("/links/next").next(&r, 1).unwrap(),
            NextPage::Done
        );
        let body: serde_json::Value =
            serde_json::from_str(r#"{"pageInfo":{"hasNextPage":false,"endCursor":"x"}}"#).unwrap();
        let c = JsonCursor::param("/pageInfo/endCursor", "after")
            .with_has_more("/pageInfo/hasNextPage");
        assert_eq!(c.next_from(&body), NextPage::Done);
    }

    #[test]
    fn offset_uses_total_as_string_or_number() {
        let mut o = Offset::new("offset", "limit", 2, Some("/rowCount".into()));
        let r = resp(&[], r#"{"rowCount":"3"}"#);
        assert_eq!(
            o.next(&r, 2).unwrap(),
            NextPage::Params(vec![
                ("offset".into(), "2".into()),
                ("limit".into(), "2".into())
            ])
        );
        assert_eq!(o.next(&r, 1).unwrap(), NextPage::Done);

        // The same from a body already parsed, the total a number this time.
        let mut o = Offset::new("offset", "limit", 2, Some("/rowCount".into()));
        let body = serde_json::json!({"rowCount": 3});
        assert_eq!(
            o.next_from(&body, 2),
            NextPage::Params(vec![
                ("offset".into(), "2".into()),
                ("limit".into(), "2".into())
            ])
        );
        assert_eq!(o.next_from(&body, 1), NextPage::Done);
        // Without a total, a full page asks for more and the body is not read.
        let mut o = Offset::new("offset", "limit", 2, None);
        assert!(matches!(
            o.next(&resp(&[], "not json"), 2),
            Ok(NextPage::Params(_))
        ));
    }

    #[test]
    fn set_query_replaces() {
        let mut u = url::Url::parse("http://h/p?page=1&x=y").unwrap();
        set_query(&mut u, &[("page".into(), "2".into())]);
        assert_eq!(u.as_str(), "http://h/p?x=y&page=2");
    }
}
