//! Adaptive concurrency: how many requests one source has in flight, learnt from its host's answers.
//!
//! A fixed pace is wrong both ways: ten requests a second starves a store whose host builds eight pages
//! at once, and is still too much for a host that shares one PHP worker with the storefront. So a source
//! that can read side by side (date windows) asks an [`AdaptiveLimiter`] for a [`Permit`] around each
//! request, and the limiter grows and shrinks the number of permits the way TCP grows its window
//! (AIMD):
//!
//! - it starts at [`AdaptiveConfig::initial`] (2) in flight;
//! - after a *round* of successes (as many as the current limit) whose latency stays within
//!   [`AdaptiveConfig::grow_within`] of the best seen, it allows one more — or, until the first sign
//!   of load, twice as many (TCP's slow start: a long read should not spend its first seconds
//!   creeping up; the first round that queues at the host halves the overshoot). While requests
//!   wait for room, slow start grows by one with each fast answer instead, as TCP does per
//!   acknowledgement: the same doubling by the round trip, without waiting for the round's last
//!   answer;
//! - on a 429, 503, 504, 408 or a timed-out request — the host saying it is overloaded — it halves, at
//!   most once per round trip (answers to requests sent before the cut say nothing new);
//! - when a round's latency rises above [`AdaptiveConfig::shrink_above`] times the best seen (requests
//!   queueing at the host), it halves too;
//! - it stays within `[1, cap]`; a configured cap always wins.
//!
//! Requests waiting for room are served first come, first served: the streams of a source share its
//! limit, and without a queue the one whose wake-up happened to be polled last (a stream with a single
//! request waiting, say) could wait for the whole read of the others, becoming the tail of the sync.
//!
//! Latency is judged per request path and response size (in quarter octaves), because a page of
//! orders and a page of coupons, or a full page and a window's short last one, cost the host
//! different amounts; the "best seen" of each is the lowest of a moving average (so that one lucky
//! answer does not become the yardstick). A host that became slower for good shrinks the limit to
//! one request, whose latency then is the new best (one request queues behind nothing of ours).

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use crate::http::{Clock, Response};
use crate::{Error, Result};

/// The limiter's knobs; the defaults suit a web shop's host.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdaptiveConfig {
    /// Requests in flight at the start.
    pub initial: usize,
    /// The most requests ever in flight (a configured cap, or [`DEFAULT_CAP`]).
    pub cap: usize,
    /// A round whose mean latency is at most this many times the best seen grows the limit by one.
    pub grow_within: f64,
    /// A round whose mean latency is above this many times the best seen halves the limit.
    pub shrink_above: f64,
}

/// Sixteen requests at once: more than a typical shop host serves side by side, few enough that a
/// host which does not push back (no 429/503, latency flat) is not flooded.
pub const DEFAULT_CAP: usize = 16;

impl Default for AdaptiveConfig {
    fn default() -> Self {
        AdaptiveConfig {
            initial: 2,
            cap: DEFAULT_CAP,
            grow_within: 1.2,
            shrink_above: 2.0,
        }
    }
}

impl AdaptiveConfig {
    /// The defaults with `cap` as the ceiling (at least 1).
    pub fn with_cap(cap: usize) -> Self {
        let cap = cap.max(1);
        AdaptiveConfig {
            cap,
            initial: AdaptiveConfig::default().initial.min(cap),
            ..Default::default()
        }
    }
}

/// What one request told the limiter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A successful answer: its latency counts.
    Success,
    /// The host is overloaded (429, 503, 504, 408, a timeout): halve.
    Overload,
    /// Anything else (a 404, an auth failure, a refused connection): says nothing about load.
    Neutral,
}

impl Outcome {
    /// The signal in an HTTP status.
    pub fn of_status(status: u16) -> Outcome {
        match status {
            200..=299 => Outcome::Success,
            408 | 429 | 503 | 504 => Outcome::Overload,
            _ => Outcome::Neutral,
        }
    }

    /// The signal in one attempt's result as the HTTP layer sees it (before retries).
    pub fn of(result: &Result<Response>) -> Outcome {
        match result {
            Ok(resp) => Outcome::of_status(resp.status.as_u16()),
            Err(Error::Transient { message }) if message.starts_with("timed out") => {
                Outcome::Overload
            }
            Err(_) => Outcome::Neutral,
        }
    }
}

/// How many samples of a path are averaged before its best latency is trusted.
const WARM_UP: u32 = 3;
/// Weight of a new sample in a path's moving average.
const ALPHA: f64 = 0.3;
/// The fewest samples a round judges latency on.
const MIN_ROUND: usize = 3;

#[derive(Debug, Default)]
struct PathStats {
    average: f64,
    samples: u32,
    best: Option<f64>,
}

#[derive(Debug)]
struct State {
    limit: usize,
    in_flight: usize,
    peak: usize,
    /// Bumped on every cut: answers to requests sent before it are not counted again.
    epoch: u64,
    /// Doubling per round until the first sign of load (TCP's slow start), then one at a time.
    slow_start: bool,
    round_sum: f64,
    round_len: usize,
    /// The most requests in flight during the round: a limit that was not used is not grown.
    round_peak: usize,
    /// The limit already grew answer by answer this round (slow start with requests waiting).
    round_grew: bool,
    paths: HashMap<String, PathStats>,
    /// Tickets of the requests waiting for room, first come first.
    queue: VecDeque<u64>,
    next_ticket: u64,
}

/// The adaptive concurrency limit of one source; shared by all its streams (they hit the same host).
pub struct AdaptiveLimiter {
    config: AdaptiveConfig,
    clock: Arc<dyn Clock>,
    state: Mutex<State>,
    freed: Notify,
}

impl fmt::Debug for AdaptiveLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdaptiveLimiter")
            .field("config", &self.config)
            .field("limit", &self.limit())
            .field("in_flight", &self.in_flight())
            .finish()
    }
}

impl AdaptiveLimiter {
    /// A limiter timing requests on `clock` (tests pass a `TestClock`).
    pub fn new(config: AdaptiveConfig, clock: Arc<dyn Clock>) -> Arc<AdaptiveLimiter> {
        let cap = config.cap.max(1);
        let config = AdaptiveConfig { cap, ..config };
        Arc::new(AdaptiveLimiter {
            config,
            clock,
            state: Mutex::new(State {
                limit: config.initial.clamp(1, cap),
                in_flight: 0,
                peak: 0,
                epoch: 0,
                slow_start: true,
                round_sum: 0.0,
                round_len: 0,
                round_peak: 0,
                round_grew: false,
                paths: HashMap::new(),
                queue: VecDeque::new(),
                next_ticket: 0,
            }),
            freed: Notify::new(),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("limiter lock")
    }

    /// Requests allowed in flight now.
    pub fn limit(&self) -> usize {
        self.state().limit
    }

    /// Requests in flight now.
    pub fn in_flight(&self) -> usize {
        self.state().in_flight
    }

    /// Room that no request uses or waits for now: the limit less the requests in flight and in
    /// line. What a reader may spend on more requests side by side without slowing the others.
    pub fn idle(&self) -> usize {
        let s = self.state();
        s.limit.saturating_sub(s.in_flight + s.queue.len())
    }

    /// The most requests that were ever in flight at once.
    pub fn peak_in_flight(&self) -> usize {
        self.state().peak
    }

    /// The configuration (cap included).
    pub fn config(&self) -> AdaptiveConfig {
        self.config
    }

    /// Wait for room for one more request to `path` (the request's URL path, which its latency is
    /// judged against). Dropping the future gives nothing up; dropping the permit frees the room.
    pub async fn acquire(self: &Arc<Self>, path: &str) -> Permit {
        let mut ticket: Option<Ticket> = None;
        loop {
            let freed = self.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            if let Some(epoch) = self.try_take(&mut ticket) {
                return Permit {
                    limiter: self.clone(),
                    path: path.to_string(),
                    started: self.clock.now(),
                    epoch,
                };
            }
            freed.await;
        }
    }

    /// Take room if there is some left after the requests waiting before this one; else queue (once).
    fn try_take(self: &Arc<Self>, ticket: &mut Option<Ticket>) -> Option<u64> {
        let mut s = self.state();
        let ahead = match ticket {
            Some(t) => s.queue.iter().position(|id| *id == t.id).unwrap_or(0),
            None => s.queue.len(),
        };
        if s.in_flight + ahead < s.limit {
            if let Some(mut t) = ticket.take() {
                s.queue.retain(|id| *id != t.id);
                t.queued = false;
            }
            s.in_flight += 1;
            s.peak = s.peak.max(s.in_flight);
            s.round_peak = s.round_peak.max(s.in_flight);
            let more = s.in_flight < s.limit && !s.queue.is_empty();
            let epoch = s.epoch;
            drop(s);
            if more {
                // Room for the next in line too.
                self.freed.notify_waiters();
            }
            Some(epoch)
        } else {
            if ticket.is_none() {
                let id = s.next_ticket;
                s.next_ticket += 1;
                s.queue.push_back(id);
                *ticket = Some(Ticket {
                    limiter: self.clone(),
                    id,
                    queued: true,
                });
            }
            None
        }
    }

    /// A waiting request gave up (its future was dropped): out of the line, and the next one told.
    fn leave(&self, id: u64) {
        let mut s = self.state();
        let Some(at) = s.queue.iter().position(|t| *t == id) else {
            return;
        };
        s.queue.remove(at);
        let wake = s.in_flight + at < s.limit && s.queue.len() > at;
        drop(s);
        if wake {
            self.freed.notify_waiters();
        }
    }

    fn release(&self) {
        self.state().in_flight -= 1;
        self.freed.notify_waiters();
    }

    fn record(&self, permit: &Permit, outcome: Outcome, size: Option<usize>) {
        let latency = self
            .clock
            .now()
            .saturating_duration_since(permit.started)
            .as_secs_f64();
        let mut s = self.state();
        let before = s.limit;
        match outcome {
            Outcome::Neutral => {}
            Outcome::Overload => {
                if permit.epoch == s.epoch {
                    cut(&mut s, "overload");
                }
            }
            Outcome::Success => {
                let key = match size {
                    // Quarter octaves: pages within ~19% of each other's size are compared.
                    Some(bytes) => format!(
                        "{} {}",
                        permit.path,
                        ((bytes.max(1) as f64).log2() * 4.0) as u32
                    ),
                    None => permit.path.clone(),
                };
                let ratio = sample(&mut s, &key, latency);
                if permit.epoch == s.epoch {
                    if s.slow_start && ratio <= self.config.grow_within && !s.queue.is_empty() {
                        // Requests are waiting and this answer came back at the best pace: one more
                        // at once for each such answer (doubling by the round trip, as TCP's slow
                        // start does per acknowledgement) rather than once the whole round is in.
                        s.limit = (s.limit + 1).min(self.config.cap);
                        s.round_grew = true;
                    }
                    s.round_sum += ratio;
                    s.round_len += 1;
                    if s.round_len >= s.limit.max(MIN_ROUND) {
                        let mean = s.round_sum / s.round_len as f64;
                        let used = s.round_peak >= s.limit;
                        let grew = std::mem::take(&mut s.round_grew);
                        s.round_sum = 0.0;
                        s.round_len = 0;
                        // Counted before this request leaves: it was in flight.
                        s.round_peak = s.in_flight;
                        if mean > self.config.shrink_above && s.limit == 1 {
                            // One request at a time queues behind nothing of ours: the host itself
                            // became slower, and this is its latency now.
                            for p in s.paths.values_mut() {
                                p.best = p.best.map(|_| p.average);
                            }
                        } else if mean > self.config.shrink_above {
                            cut(&mut s, "latency");
                        } else if mean <= self.config.grow_within && (!used || grew) {
                            // Fewer requests than allowed went out (a read winding down): nothing
                            // was learnt about more. Or slow start grew it answer by answer.
                        } else if mean <= self.config.grow_within {
                            let grown = if s.slow_start {
                                s.limit * 2
                            } else {
                                s.limit + 1
                            };
                            s.limit = grown.min(self.config.cap);
                        } else if s.slow_start {
                            // The first round that queued at the host: the doubling overshot.
                            cut(&mut s, "slow start overshot");
                        }
                    }
                }
            }
        }
        let after = s.limit;
        drop(s);
        if after > before {
            tracing::debug!(limit = after, "adaptive limit grew");
            self.freed.notify_waiters();
        }
    }
}

/// A request's place in the line for room; leaves the line when dropped unserved.
struct Ticket {
    limiter: Arc<AdaptiveLimiter>,
    id: u64,
    queued: bool,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if self.queued {
            self.limiter.leave(self.id);
        }
    }
}

/// Halve the limit (at least 1) and start a new round that ignores answers to earlier requests.
fn cut(s: &mut State, why: &'static str) {
    s.slow_start = false;
    s.limit = (s.limit / 2).max(1);
    s.epoch += 1;
    s.round_sum = 0.0;
    s.round_len = 0;
    s.round_grew = false;
    tracing::debug!(limit = s.limit, why, "adaptive limit halved");
}

/// Fold a latency into its path's statistics; return it as a multiple of the path's best (1.0 while
/// the path is warming up: no evidence of congestion yet).
fn sample(s: &mut State, path: &str, latency: f64) -> f64 {
    let p = s.paths.entry(path.to_string()).or_default();
    let ratio = match p.best {
        Some(best) if best > 0.0 => latency / best,
        _ => 1.0,
    };
    p.average = if p.samples == 0 {
        latency
    } else {
        p.average * (1.0 - ALPHA) + latency * ALPHA
    };
    p.samples += 1;
    if p.samples >= WARM_UP {
        p.best = Some(match p.best {
            Some(best) => best.min(p.average),
            None => p.average,
        });
    }
    ratio
}

/// Room for one request. [`finish`](Permit::finish) it with what the request showed; dropping it
/// unfinished (a cancelled request) frees the room without a signal.
#[derive(Debug)]
pub struct Permit {
    limiter: Arc<AdaptiveLimiter>,
    path: String,
    started: Instant,
    epoch: u64,
}

impl Permit {
    /// Tell the limiter how the request went (its latency runs from the permit's grant to now).
    pub fn finish(self, outcome: Outcome) {
        self.limiter.record(&self, outcome, None);
    }

    /// [`finish`](Self::finish) with what an attempt returned: its signal, and its body's size, so
    /// that a page is compared with pages of about its size (a one-record page answers faster than a
    /// full one without the host being any less loaded).
    pub fn finish_response(self, result: &Result<Response>) {
        let size = result.as_ref().ok().map(|r| r.body.len());
        self.limiter.record(&self, Outcome::of(result), size);
    }

    /// How long this permit has been held.
    pub fn elapsed(&self) -> Duration {
        self.limiter
            .clock
            .now()
            .saturating_duration_since(self.started)
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.limiter.release();
    }
}
