//! Customers read side by side: the one stream without a date filter, so windows cannot split it.
//!
//! Every sync lists all customers by id (`orderby=id&order=asc`), which one page after another costs a
//! slow host's full page time per hundred customers — 42 s for 8,000 of them on a host that builds a
//! page in half a second, while it could build eight at once. So the first page (`page=1`, as before)
//! says how many there are (`X-WP-Total`), and the rest is read as overlapping slices
//! ([`Overlap`]: `offset` = k × (`per_page` − 1)) side by side, as many at once as the source's
//! adaptive limit allows (every request holds one of its permits; this only keeps that many slices
//! asked for), and handed on in id order.
//!
//! Why this loses nothing while customers are added or deleted during the read:
//!
//! - new customers get higher ids, so they only append: a slice that comes back full where the count
//!   said the listing ends means one slice more, and the counts of later answers extend the plan;
//! - a deletion shifts every later customer one place forward. Each slice repeats the previous
//!   slice's last customer as its first; if it does not (or comes back empty), the listing moved
//!   between the two answers and a record may have slid past both, so the stream is read again from
//!   the first page, one page after another, as before (re-reads are upserts). When every join holds
//!   and the last slice ends the listing, every customer that existed throughout the read was in some
//!   slice (see [`Overlap`]); one created or deleted meanwhile is read or not, as with any read.
//!
//! The stream saves its cursor only once it is read to the end (it is unsorted), so the order in which
//! slices are answered never reaches the state.

use futures::future::BoxFuture;
use futures::stream::FuturesOrdered;

use growthflow_core::paginate::Overlap;

use super::*;

/// One slice's answer: its index, response and items.
type Answer = Result<(u64, Response, Vec<(Record, Head)>)>;

/// Where a scan stands.
enum Scan {
    /// Nothing asked yet.
    Start,
    /// Slices in flight.
    Slices(Box<Slices>),
    /// A join failed (or the platform sent no count): the sequential read, from page 1.
    Again(BoxStream<'static, Result<Page>>),
    /// Read to the end, or failed.
    Done,
}

/// The slices side by side.
struct Slices {
    overlap: Overlap,
    /// Answers in the order of their slices.
    in_flight: FuturesOrdered<BoxFuture<'static, Answer>>,
    /// The next slice to ask for.
    next: u64,
    /// The last slice the counts seen so far call for.
    last: u64,
    /// The id of the last record handed on: the next slice must start with it.
    tail: Option<String>,
}

/// Read a stream without a date filter (customers) from its first page, the rest side by side.
pub(crate) fn scan(reader: Arc<Reader>, plan: Arc<Plan>) -> BoxStream<'static, Result<Page>> {
    futures::stream::unfold(Scan::Start, move |state| {
        let reader = reader.clone();
        let plan = plan.clone();
        async move {
            let mut state = state;
            loop {
                match state {
                    Scan::Done => return None,
                    Scan::Again(mut pages) => {
                        let page = pages.next().await?;
                        return Some((page, Scan::Again(pages)));
                    }
                    Scan::Start => {
                        let (page, next) = match first(&reader, &plan).await {
                            Ok(v) => v,
                            Err(e) => return Some((Err(e), Scan::Done)),
                        };
                        match page {
                            Some(page) => return Some((Ok(page), next)),
                            None => state = next,
                        }
                    }
                    Scan::Slices(mut slices) => {
                        fill(&reader, &plan, &mut slices);
                        let Some(answer) = slices.in_flight.next().await else {
                            // `take` always plans one slice more until one ends the listing.
                            let e = Error::Internal("customers: no slice left to read".into());
                            return Some((Err(e), Scan::Done));
                        };
                        match take(&plan, &mut slices, answer) {
                            Err(e) => return Some((Err(e), Scan::Done)),
                            Ok(Taken::Page(page, ended)) => {
                                let next = if ended {
                                    Scan::Done
                                } else {
                                    Scan::Slices(slices)
                                };
                                return Some((Ok(page), next));
                            }
                            Ok(Taken::Shifted) => {
                                tracing::info!(
                                    stream = plan.spec.def.name,
                                    "the listing moved while it was read side by side; reading it \
                                     again page by page"
                                );
                                state = Scan::Again(read_plan(reader.clone(), plan.clone()));
                            }
                        }
                    }
                }
            }
        }
    })
    .boxed()
}

/// The URL of a request of `plan` with these paging parameters.
fn url_of(plan: &Plan, paging: &[(String, String)]) -> Url {
    let mut url = plan.url.clone();
    set_query(&mut url, &plan.params);
    set_query(&mut url, paging);
    url
}

/// The kept records of `items`, skipping the first `skip` (the overlap already handed on).
fn records_of(plan: &Plan, items: Vec<(Record, Head)>, skip: usize) -> Result<Vec<Record>> {
    let mut records = Vec::with_capacity(items.len());
    for (record, head) in items.into_iter().skip(skip) {
        if kept(&plan.keep, &record, &head)? {
            records.push(record);
        }
    }
    Ok(records)
}

/// The first page, as the sequential read asks for it; what follows it.
async fn first(reader: &Arc<Reader>, plan: &Arc<Plan>) -> Result<(Option<Page>, Scan)> {
    let size = reader.per_page;
    let url = url_of(
        plan,
        &[param("page", "1"), param("per_page", size.to_string())],
    );
    let (resp, items) = reader.get_records(url, &plan.spec).await?;
    let total = total_of(&resp);
    let tail = items.last().map(|(r, _)| r.id.clone());
    let count = items.len();
    let page = Page::new(records_of(plan, items, 0)?);
    let Some(overlap) = Overlap::new(u64::from(size)) else {
        // Pages of one record cannot overlap: page on one at a time.
        return Ok((None, Scan::Again(read_plan(reader.clone(), plan.clone()))));
    };
    if overlap.ends(0, count, total) {
        return Ok((Some(page), Scan::Done));
    }
    let Some(total) = total else {
        // No count to plan slices by: the sequential read (it asks for page 1 again).
        return Ok((None, Scan::Again(read_plan(reader.clone(), plan.clone()))));
    };
    let slices = Slices {
        overlap,
        in_flight: FuturesOrdered::new(),
        next: 1,
        last: overlap.slices_for(total).max(1),
        tail,
    };
    Ok((Some(page), Scan::Slices(Box::new(slices))))
}

/// Ask for slices up to the last one planned, keeping as many in flight as the adaptive limit allows.
fn fill(reader: &Arc<Reader>, plan: &Arc<Plan>, slices: &mut Slices) {
    let room = reader.limiter.limit().max(1);
    while slices.in_flight.len() < room && slices.next <= slices.last {
        let k = slices.next;
        slices.next += 1;
        let url = url_of(
            plan,
            &[
                param("offset", slices.overlap.offset(k).to_string()),
                param("per_page", slices.overlap.size.to_string()),
            ],
        );
        let reader = reader.clone();
        let plan = plan.clone();
        slices.in_flight.push_back(Box::pin(async move {
            let (resp, items) = reader.get_records(url, &plan.spec).await?;
            Ok((k, resp, items))
        }));
    }
}

/// What one slice's answer gave.
enum Taken {
    /// Its records (the overlap dropped); `true` when it ended the listing.
    Page(Page, bool),
    /// It did not join the slice before.
    Shifted,
}

/// Check one slice's answer against the slice before and turn it into a page.
fn take(plan: &Plan, slices: &mut Slices, answer: Answer) -> Result<Taken> {
    let (k, resp, items) = answer?;
    let first = items.first().map(|(r, _)| r.id.clone());
    if !Overlap::joins(slices.tail.as_ref(), first.as_ref()) {
        return Ok(Taken::Shifted);
    }
    let total = total_of(&resp);
    if let Some(t) = total {
        // Customers added meanwhile: a later count extends the plan.
        slices.last = slices.last.max(slices.overlap.slices_for(t));
    }
    let ended = slices.overlap.ends(k, items.len(), total);
    if !ended && k >= slices.last {
        // Full where the plan ended (appended customers, no count): one slice more.
        slices.last = k + 1;
    }
    slices.tail = items.last().map(|(r, _)| r.id.clone());
    Ok(Taken::Page(Page::new(records_of(plan, items, 1)?), ended))
}
