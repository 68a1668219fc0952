//! A simulated Klaviyo account speaking the JSON:API (revision 2026-07-15) under `/klaviyo`.
//!
//! The client's `base_url` is `http://127.0.0.1:PORT/klaviyo`; the API lives at `/klaviyo/api/`:
//!
//! | route | serves | page size (default / max) | rate tier (burst/s, steady/min) |
//! | --- | --- | --- | --- |
//! | `GET events` | [`KlaviyoAccount::events`]; `include=metric,profile,attributions` | 200 / 1000 (revision ≥ 2026-01-15) | 350, 3500 |
//! | `GET metrics` | [`KlaviyoAccount::metrics`] | 200, no `page[size]` | 10, 150 |
//! | `GET profiles` | [`KlaviyoAccount::profiles`] | 20 / 100 | 75, 750 |
//! | `GET campaigns` | [`KlaviyoAccount::campaigns`]; `equals(messages.channel,…)` required | 100 / 100 | 10, 150 |
//! | `GET flows` | [`KlaviyoAccount::flows`] | 50 / 50 | 3, 60 |
//! | `GET lists` | [`KlaviyoAccount::lists`] | 10 / 10 | 75, 750 |
//!
//! Every request needs `Authorization: Klaviyo-API-Key {api_key}` (else 401) and a `revision` header
//! (else 400). `filter` takes `op(field,value)` expressions, comma-separated or inside `and(…)`, with the
//! operators and fields each endpoint allows (others are 400); `sort` (`field` or `-field`),
//! `page[size]`, `page[cursor]` (`links.next` is a full URL built from the `Host` header) and `fields[TYPE]`
//! sparse fieldsets (applied to attributes of data and included resources) are honoured. Rate tiers are
//! fixed one-second and one-minute windows per endpoint; a request over either gets `429` with
//! `Retry-After` and a `throttled` error document, counted by [`KlaviyoAccount::throttled_count`].

mod routes;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde_json::{json, Value};

use crate::rendered::Rendered;
use crate::rng::SplitMix64;

pub(crate) use routes::router;
pub use routes::tier_of;

/// Path prefix of the simulated account: the client's `base_url` is `http://HOST:PORT/klaviyo`.
pub const PREFIX: &str = "klaviyo";

/// Days of events before `end`.
pub const EVENT_DAYS: i64 = 180;

/// The metric names generated, in order (ids differ per seed).
pub const METRIC_NAMES: [&str; 6] = [
    "Received Email",
    "Opened Email",
    "Clicked Email",
    "Viewed Product",
    "Started Checkout",
    "Placed Order",
];

/// Where resources' own `links.self` point (documents' `links` use the request's `Host`).
const SELF_BASE: &str = "https://a.klaviyo.com/api";

/// The generated account: its data, in the JSON:API shape the API serves, and the key it accepts.
#[derive(Debug)]
pub struct KlaviyoAccount {
    /// The private API key the account accepts (`Authorization: Klaviyo-API-Key …`).
    pub api_key: String,
    /// `metric` resources.
    pub metrics: Vec<Value>,
    /// `profile` resources, sorted by id.
    pub profiles: Vec<Value>,
    /// `campaign` resources, email and sms.
    pub campaigns: Vec<Value>,
    /// Each campaign's channel (`email` or `sms`) by campaign id: what `equals(messages.channel,…)` tests.
    pub campaign_channels: HashMap<String, String>,
    /// `flow` resources.
    pub flows: Vec<Value>,
    /// `list` resources.
    pub lists: Vec<Value>,
    /// `event` resources, sorted by (`datetime`, id): held as numbers and indexes and rendered as the
    /// API's JSON only for the page served ([`Rendered`] renders them all when a test reads them).
    pub events: Rendered,
    /// `attribution` resources the events' `attributions` relationships point at.
    pub attributions: Vec<Value>,
    /// The events as the server reads them.
    pub(crate) event_data: Arc<EventData>,
    limiter: Arc<Limiter>,
}

impl Clone for KlaviyoAccount {
    /// The same account (its rate windows shared, like the clones of a shared account).
    fn clone(&self) -> Self {
        KlaviyoAccount {
            api_key: self.api_key.clone(),
            metrics: self.metrics.clone(),
            profiles: self.profiles.clone(),
            campaigns: self.campaigns.clone(),
            campaign_channels: self.campaign_channels.clone(),
            flows: self.flows.clone(),
            lists: self.lists.clone(),
            events: self.events.share(),
            attributions: self.attributions.clone(),
            event_data: self.event_data.clone(),
            limiter: self.limiter.clone(),
        }
    }
}

/// The product names of `Viewed Product` and `Started Checkout` events.
const PRODUCT_NAMES: [&str; 3] = ["Linen Shirt", "Canvas Tote", "Wool Beanie"];

/// The events and what their JSON repeats (ids and names), kept compactly: 30,000 events of a scale-10
/// account held as JSON values with their relationship links took ≈ 280 MB of the demo's memory.
#[derive(Debug)]
pub(crate) struct EventData {
    /// Sorted by (`at`, `id`), as served.
    pub(crate) events: Vec<Event>,
    /// The metrics' ids, by metric index (the order of [`METRIC_NAMES`]).
    pub(crate) metric_ids: Vec<String>,
    /// The profiles' ids, by position in [`KlaviyoAccount::profiles`].
    pub(crate) profile_ids: Vec<String>,
    /// The attributions' ids, by position in [`KlaviyoAccount::attributions`].
    attribution_ids: Vec<String>,
    /// Email campaigns' (campaign id, message id, name).
    campaign_messages: Vec<(String, String, String)>,
    /// Flows' (flow id, message id, name).
    flow_messages: Vec<(String, String, String)>,
}

/// One event as the numbers and indexes its JSON is made of ([`EventData::render`]).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Event {
    /// The 12-character id.
    pub(crate) id: [u8; 12],
    /// Unix seconds.
    pub(crate) at: i64,
    /// Index of the metric (and the kind of event) in [`METRIC_NAMES`].
    pub(crate) metric: u8,
    /// Position of the profile in [`KlaviyoAccount::profiles`].
    pub(crate) profile: u32,
    props: Props,
    /// The uuid's 24 random hex digits.
    uuid: [u8; 24],
    /// Position of its attribution record, if it has one.
    attribution: Option<u32>,
}

/// What an event's `event_properties` are made of.
#[derive(Debug, Clone, PartialEq)]
enum Props {
    /// Received, opened (`clicked` false) or clicked an email.
    Email { message: Message, clicked: bool },
    /// Viewed a product or started a checkout.
    Product {
        event_id: [u8; 10],
        product: u8,
        cents: i64,
    },
    /// Placed an order, attributed in its properties or not.
    Order {
        order: i64,
        cents: i64,
        attributed: Option<Message>,
    },
}

/// An email message: a campaign's (index in the email campaigns) or a flow's (index in the flows).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Message {
    Campaign(u32),
    Flow(u32),
}

/// The bytes of an ASCII id of known length.
fn ascii<const N: usize>(s: &str) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(s.as_bytes());
    out
}

fn text(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).expect("generated ids are ASCII")
}

impl Event {
    /// The event's id.
    pub(crate) fn id(&self) -> &str {
        text(&self.id)
    }
}

impl EventData {
    /// The API's JSON of the `i`-th event, exactly as it was generated before events were kept
    /// compactly (same keys in the same order, same numbers).
    pub(crate) fn render(&self, i: usize) -> Value {
        let e = &self.events[i];
        let id = e.id();
        let at = DateTime::from_timestamp(e.at, 0).expect("a generated time");
        let props = match e.props {
            Props::Email { message, clicked } => {
                let mut p = json!({"$event_id": format!("{}", e.at),
                                   "Email Domain": "example.com", "Client Name": "Apple Mail",
                                   "Client Type": "Email Client", "Inbox Provider": "Gmail"});
                match message {
                    Message::Campaign(c) => {
                        let (_, msg, name) = &self.campaign_messages[c as usize];
                        p["$message"] = json!(msg);
                        p["Campaign Name"] = json!(name);
                        p["Subject"] = json!(format!("{name}: don't miss it"));
                    }
                    Message::Flow(f) => {
                        let (flow, msg, name) = &self.flow_messages[f as usize];
                        p["$message"] = json!(msg);
                        p["$flow"] = json!(flow);
                        p["Subject"] = json!(format!("{name} #1"));
                    }
                }
                if clicked {
                    p["URL"] = json!(
                        "https://store.example.com/shop/?utm_source=klaviyo&utm_medium=email"
                    );
                }
                p
            }
            Props::Product {
                ref event_id,
                product,
                cents,
            } => {
                json!({"$event_id": text(event_id), "ProductName": PRODUCT_NAMES[product as usize],
                       "$value": (cents as f64) / 100.0, "$currency_code": "USD"})
            }
            Props::Order {
                order,
                cents,
                attributed,
            } => {
                let mut p = json!({"$event_id": order.to_string(), "OrderId": order.to_string(),
                                   "$value": (cents as f64) / 100.0, "$currency_code": "USD",
                                   "ItemNames": ["Linen Shirt"], "Source Name": "web"});
                match attributed {
                    Some(Message::Campaign(c)) => {
                        let (_, msg, _) = &self.campaign_messages[c as usize];
                        p["$attributed_channel"] = json!("Email");
                        p["$attributed_message"] = json!(msg);
                    }
                    Some(Message::Flow(f)) => {
                        let (flow, msg, _) = &self.flow_messages[f as usize];
                        p["$attributed_channel"] = json!("Email");
                        p["$attributed_flow"] = json!(flow);
                        p["$attributed_message"] = json!(msg);
                    }
                    None => {}
                }
                p
            }
        };
        let attribution_links: Vec<Value> = e
            .attribution
            .map(|a| json!({"type": "attribution", "id": self.attribution_ids[a as usize]}))
            .into_iter()
            .collect();
        let ev_links = |rel: &str| {
            json!({"self": format!("{SELF_BASE}/events/{id}/relationships/{rel}/"),
                   "related": format!("{SELF_BASE}/events/{id}/{rel}/")})
        };
        let u = text(&e.uuid);
        json!({"type": "event", "id": id,
            "attributes": {"timestamp": e.at, "event_properties": props,
                           "datetime": ts(at),
                           "uuid": format!("{}-{}-11ef-8001-{}", &u[..8], &u[8..12], &u[12..])},
            "relationships": {
                "profile": {"data": {"type": "profile", "id": self.profile_ids[e.profile as usize]},
                            "links": ev_links("profile")},
                "metric": {"data": {"type": "metric", "id": self.metric_ids[e.metric as usize]},
                           "links": ev_links("metric")},
                "attributions": {"data": attribution_links, "links": ev_links("attributions")}},
            "links": {"self": format!("{SELF_BASE}/events/{id}/")}})
    }
}

/// Fixed-window counters per endpoint and the number of 429s served.
#[derive(Debug, Default)]
pub(crate) struct Limiter {
    windows: Mutex<HashMap<&'static str, Windows>>,
    throttled: AtomicU64,
}

#[derive(Debug, Default, Clone, Copy)]
struct Windows {
    second: u64,
    second_count: u32,
    minute: u64,
    minute_count: u32,
}

impl Limiter {
    /// Count one request against `endpoint`'s windows at `now_ms` (Unix milliseconds). `Ok(remaining in
    /// the minute window, seconds until it resets)` or `Err(retry_after_secs)`.
    pub(crate) fn admit(
        &self,
        endpoint: &'static str,
        (burst, steady): (u32, u32),
        now_ms: u64,
    ) -> Result<(u32, u64), u64> {
        let second = now_ms / 1000;
        let minute = now_ms / 60_000;
        let mut all = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        let w = all.entry(endpoint).or_default();
        if w.second != second {
            w.second = second;
            w.second_count = 0;
        }
        if w.minute != minute {
            w.minute = minute;
            w.minute_count = 0;
        }
        let minute_reset = ((minute + 1) * 60_000 - now_ms).div_ceil(1000).max(1);
        if w.minute_count >= steady {
            self.throttled.fetch_add(1, Ordering::SeqCst);
            return Err(minute_reset);
        }
        if w.second_count >= burst {
            self.throttled.fetch_add(1, Ordering::SeqCst);
            return Err(1);
        }
        w.second_count += 1;
        w.minute_count += 1;
        Ok((steady - w.minute_count, minute_reset))
    }
}

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, false)
}

fn ts_micros(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, false)
}

/// A ULID-looking id (26 Crockford base-32 characters).
fn ulid(rng: &mut SplitMix64) -> String {
    format!(
        "01{}",
        rng.string_from(b"0123456789ABCDEFGHJKMNPQRSTVWXYZ", 24)
    )
}

/// Mixed-case spelling of an email, as a person may type it into a signup form.
fn shout(email: &str) -> String {
    let mut out = String::new();
    let mut up = true;
    for c in email.chars() {
        if up && c.is_ascii_alphabetic() {
            out.push(c.to_ascii_uppercase());
            up = false;
        } else {
            out.push(c);
        }
        if c == '.' || c == '@' {
            up = true;
        }
    }
    out
}

impl KlaviyoAccount {
    /// Generate the account deterministically; `emails` are the store's customers (normalised), so
    /// that profiles join the store's customers on email.
    pub fn generate(
        seed: u64,
        scale: u32,
        end: DateTime<Utc>,
        emails: &[String],
    ) -> KlaviyoAccount {
        let scale = scale.max(1) as usize;
        let mut root = SplitMix64::new(seed ^ 0x6B6C_6176_6979_6F00);
        let mut rng = root.fork(1);
        let api_key = format!("pk_{}", rng.hex(34));
        let start = end - Duration::days(EVENT_DAYS);

        // Metrics.
        let mut rng = root.fork(2);
        let integration = |id: &str, name: &str, category: &str| json!({"object": "integration", "id": id, "name": name, "category": category});
        let klaviyo_int = integration("0eMvjm", "Klaviyo", "Internal");
        let woo_int = integration("9WcMrz", "WooCommerce", "eCommerce");
        let metric_created = end - Duration::days(900);
        let metrics: Vec<Value> = METRIC_NAMES
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let id = rng.alnum(6);
                let created = ts(metric_created + Duration::minutes(i as i64 * 7));
                let integ = if i < 3 { &klaviyo_int } else { &woo_int };
                json!({
                    "type": "metric", "id": id,
                    "attributes": {"name": name, "created": created, "updated": created,
                                   "integration": integ},
                    "relationships": {"flow-triggers": {"links": {
                        "self": format!("{SELF_BASE}/metrics/{id}/relationships/flow-triggers/"),
                        "related": format!("{SELF_BASE}/metrics/{id}/flow-triggers/")}}},
                    "links": {"self": format!("{SELF_BASE}/metrics/{id}/")}
                })
            })
            .collect();
        let metric_id = |i: usize| metrics[i]["id"].as_str().unwrap().to_string();

        // Lists.
        let mut rng = root.fork(3);
        let list_names = [
            "Newsletter",
            "VIP",
            "Winback",
            "Sale Alerts",
            "New Arrivals",
            "Wholesale",
            "Blog Readers",
            "Giveaway 2024",
            "Giveaway 2025",
            "Holiday",
            "SMS Subscribers",
            "Restock",
            "Loyalty",
            "Preview Club",
        ];
        let lists: Vec<Value> = (0..list_names.len() * scale)
            .map(|i| {
                let id = rng.alnum(6);
                let created = end - Duration::seconds(rng.range(86_400 * 60, 86_400 * 800));
                let updated = created + Duration::seconds(rng.range(0, (end - created).num_seconds()));
                let name = if i < list_names.len() {
                    list_names[i].to_string()
                } else {
                    format!("{} {}", list_names[i % list_names.len()], i / list_names.len())
                };
                json!({"type": "list", "id": id,
                       "attributes": {"name": name, "created": ts(created), "updated": ts(updated),
                                      "opt_in_process": if rng.chance(0.5) {"double_opt_in"} else {"single_opt_in"}},
                       "relationships": {"tags": {"links": {
                           "self": format!("{SELF_BASE}/lists/{id}/relationships/tags/"),
                           "related": format!("{SELF_BASE}/lists/{id}/tags/")}}},
                       "links": {"self": format!("{SELF_BASE}/lists/{id}/")}})
            })
            .collect();

        // Flows, each with one email message id for attribution.
        let mut rng = root.fork(4);
        let flow_names = [
            ("Welcome Series", "Added to List"),
            ("Abandoned Checkout", "Metric"),
            ("Browse Abandonment", "Metric"),
            ("Post-Purchase", "Metric"),
            ("Winback", "Metric"),
            ("Birthday", "Date Based"),
            ("Price Drop", "Price Drop"),
        ];
        let mut flow_messages: Vec<(String, String, String)> = Vec::new(); // (flow id, message id, name)
        let flows: Vec<Value> = flow_names
            .iter()
            .map(|(name, trigger)| {
                let id = rng.alnum(6);
                let created = end - Duration::seconds(rng.range(86_400 * 200, 86_400 * 700));
                let updated = end - Duration::seconds(rng.range(3_600, 86_400 * 150));
                let status = *rng.pick(&["live", "live", "live", "manual", "draft"]);
                flow_messages.push((id.clone(), rng.alnum(6), (*name).to_string()));
                json!({"type": "flow", "id": id,
                       "attributes": {"name": name, "status": status, "archived": false,
                                      "created": ts(created), "updated": ts(updated), "trigger_type": trigger},
                       "relationships": {
                           "flow-actions": {"links": {
                               "self": format!("{SELF_BASE}/flows/{id}/relationships/flow-actions/"),
                               "related": format!("{SELF_BASE}/flows/{id}/flow-actions/")}},
                           "tags": {"links": {
                               "self": format!("{SELF_BASE}/flows/{id}/relationships/tags/"),
                               "related": format!("{SELF_BASE}/flows/{id}/tags/")}}},
                       "links": {"self": format!("{SELF_BASE}/flows/{id}/")}})
            })
            .collect();

        // Campaigns: weekly-ish emails and a few SMS, each with one message.
        let mut rng = root.fork(5);
        let themes = [
            "Summer Launch",
            "Weekend Sale",
            "New Arrivals",
            "Back in Stock",
            "Staff Picks",
            "Last Chance",
            "Free Shipping",
            "Gift Guide",
        ];
        let mut campaign_messages: Vec<(String, String, String, DateTime<Utc>)> = Vec::new(); // email only
        let mut campaigns = Vec::new();
        let mut campaign_channels = HashMap::new();
        for (channel, count) in [("email", 24 * scale), ("sms", 6 * scale)] {
            for _ in 0..count {
                let id = ulid(&mut rng);
                let message = ulid(&mut rng);
                let send = start + Duration::seconds(rng.range(0, (EVENT_DAYS - 2) * 86_400));
                let send = send - Duration::seconds(send.timestamp() % 3600);
                let created = send - Duration::seconds(rng.range(86_400, 86_400 * 10));
                let scheduled = created + Duration::seconds(rng.range(600, 86_400));
                let updated = send + Duration::seconds(rng.range(30, 3_600));
                let name = format!("{} {}", send.format("%Y-%m-%d"), rng.pick(&themes));
                let list = rng.pick(&lists)["id"].clone();
                if channel == "email" {
                    campaign_messages.push((id.clone(), message.clone(), name.clone(), send));
                }
                campaigns.push(json!({"type": "campaign", "id": id,
                    "attributes": {"name": name, "status": "Sent", "archived": false,
                        "audiences": {"included": [list], "excluded": []},
                        "send_options": {"use_smart_sending": true},
                        "tracking_options": {"add_tracking_params": true, "custom_tracking_params": [],
                                             "is_tracking_clicks": true, "is_tracking_opens": channel == "email"},
                        "send_strategy": {"method": "static", "datetime": ts(send), "options": {"is_local": false}},
                        "created_at": ts_micros(created), "scheduled_at": ts_micros(scheduled),
                        "updated_at": ts_micros(updated), "send_time": ts(send)},
                    "relationships": {
                        "campaign-messages": {"data": [{"type": "campaign-message", "id": message}],
                            "links": {"self": format!("{SELF_BASE}/campaigns/{id}/relationships/campaign-messages/"),
                                      "related": format!("{SELF_BASE}/campaigns/{id}/campaign-messages/")}},
                        "tags": {"data": [], "links": {
                            "self": format!("{SELF_BASE}/campaigns/{id}/relationships/tags/"),
                            "related": format!("{SELF_BASE}/campaigns/{id}/tags/")}}},
                    "links": {"self": format!("{SELF_BASE}/campaigns/{id}/")}}));
                campaign_channels.insert(id, channel.to_string());
            }
        }

        // Profiles: most store customers (some typed in mixed case), plus newsletter-only people and a few
        // without an email (SMS only).
        let mut rng = root.fork(6);
        let mut profiles = Vec::new();
        let mut people: Vec<Option<String>> = Vec::new();
        for (i, e) in emails.iter().enumerate() {
            if rng.chance(0.85) {
                people.push(Some(if i % 5 == 0 { shout(e) } else { e.clone() }));
            }
        }
        for i in 0..150 * scale {
            people.push(if i % 25 == 0 {
                None
            } else {
                Some(format!(
                    "subscriber{i}.{}@mail.example.org",
                    rng.alnum(4).to_lowercase()
                ))
            });
        }
        for email in &people {
            let id = ulid(&mut rng);
            let created = end - Duration::seconds(rng.range(86_400 * 30, 86_400 * 600));
            let updated = created + Duration::seconds(rng.range(60, (end - created).num_seconds()));
            let phone = if email.is_none() || rng.chance(0.3) {
                Value::String(format!("+1500555{:04}", rng.below(10_000)))
            } else {
                Value::Null
            };
            profiles.push(json!({"type": "profile", "id": id,
                "attributes": {"email": email, "phone_number": phone, "external_id": null,
                    "first_name": null, "last_name": null, "organization": null, "locale": "en-US",
                    "title": null, "image": null, "created": ts(created), "updated": ts(updated),
                    "last_event_date": null, "location": {"country": "United States", "timezone": "America/New_York"},
                    "properties": {"$source": if email.is_some() {"WooCommerce"} else {"SMS signup"}}},
                "relationships": {
                    "lists": {"links": {"self": format!("{SELF_BASE}/profiles/{id}/relationships/lists/"),
                                        "related": format!("{SELF_BASE}/profiles/{id}/lists/")}},
                    "segments": {"links": {"self": format!("{SELF_BASE}/profiles/{id}/relationships/segments/"),
                                           "related": format!("{SELF_BASE}/profiles/{id}/segments/")}}},
                "links": {"self": format!("{SELF_BASE}/profiles/{id}/")}}));
        }
        profiles.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));

        // Events over the EVENT_DAYS before `end`: kept as numbers and indexes (see `Event`), rendered
        // as the API's JSON when served. The draws are those the JSON was built from, in order.
        let mut rng = root.fork(7);
        let mut events = Vec::new();
        let mut attributions = Vec::new();
        let span = EVENT_DAYS * 86_400;
        let campaign_refs: Vec<(String, String, String)> = campaign_messages
            .iter()
            .map(|(c, m, name, _)| (c.clone(), m.clone(), name.clone()))
            .collect();
        let profile_ids: Vec<String> = profiles
            .iter()
            .map(|p| p["id"].as_str().unwrap_or("").to_string())
            .collect();
        // Positions (in `profiles`) of the profiles with an email: events are theirs.
        let with_email: Vec<u32> = profiles
            .iter()
            .enumerate()
            .filter(|(_, p)| p["attributes"]["email"].is_string())
            .map(|(i, _)| i as u32)
            .collect();
        for _ in 0..3_000 * scale {
            let kind = rng.weighted(&[30, 24, 11, 16, 8, 11]);
            let profile = *rng.pick(&with_email);
            let at = start + Duration::seconds(rng.range(0, span - 1));
            let id = rng.alnum(12);
            let mut attribution = None;
            let props = if kind < 3 {
                // Email engagement: a campaign's message or a flow's.
                let message = if rng.chance(0.7) {
                    Message::Campaign(rng.index(campaign_refs.len()) as u32)
                } else {
                    Message::Flow(rng.index(flow_messages.len()) as u32)
                };
                Props::Email {
                    message,
                    clicked: kind == 2,
                }
            } else if kind < 5 {
                let event_id = rng.alnum(10);
                let product = rng.index(PRODUCT_NAMES.len()) as u8;
                let cents = rng.range(900, 19_900);
                Props::Product {
                    event_id: ascii(&event_id),
                    product,
                    cents,
                }
            } else {
                let cents = rng.range(1_500, 45_000);
                let order = rng.range(10_000, 99_999);
                let mut attributed = None;
                match rng.below(6) {
                    0 => {
                        let c = rng.index(campaign_refs.len());
                        let (campaign, msg, _) = &campaign_refs[c];
                        attributed = Some(Message::Campaign(c as u32));
                        let aid = rng.hex(32);
                        attribution = Some(attributions.len() as u32);
                        attributions.push(attribution_json(
                            &aid,
                            &id,
                            Some(campaign),
                            Some(msg),
                            None,
                        ));
                    }
                    1 => {
                        attributed = Some(Message::Flow(rng.index(flow_messages.len()) as u32));
                    }
                    2 => {
                        // Attributed through the relationship only.
                        let aid = rng.hex(32);
                        let record = if rng.chance(0.5) {
                            let (campaign, msg, _) = rng.pick(&campaign_refs);
                            attribution_json(&aid, &id, Some(campaign), Some(msg), None)
                        } else {
                            let (flow, _, _) = rng.pick(&flow_messages);
                            attribution_json(&aid, &id, None, None, Some(flow))
                        };
                        attribution = Some(attributions.len() as u32);
                        attributions.push(record);
                    }
                    _ => {}
                }
                Props::Order {
                    order,
                    cents,
                    attributed,
                }
            };
            let uuid = format!("{}{}{}", rng.hex(8), rng.hex(4), rng.hex(12));
            events.push(Event {
                id: ascii(&id),
                at: at.timestamp(),
                metric: kind as u8,
                profile,
                props,
                uuid: ascii(&uuid),
                attribution,
            });
        }
        events.sort_by_key(|e| (e.at, e.id));
        let attribution_ids: Vec<String> = attributions
            .iter()
            .map(|a| a["id"].as_str().unwrap_or("").to_string())
            .collect();
        let event_data = Arc::new(EventData {
            events,
            metric_ids: (0..metrics.len()).map(metric_id).collect(),
            profile_ids,
            attribution_ids,
            campaign_messages: campaign_refs,
            flow_messages,
        });
        let rendered = event_data.clone();
        let events = Rendered::new(event_data.events.len(), move || {
            (0..rendered.events.len())
                .map(|i| rendered.render(i))
                .collect()
        });

        KlaviyoAccount {
            api_key,
            metrics,
            profiles,
            campaigns,
            campaign_channels,
            flows,
            lists,
            events,
            attributions,
            event_data,
            limiter: Arc::new(Limiter::default()),
        }
    }

    /// How many requests were answered `429` by the simulated rate tiers so far.
    pub fn throttled_count(&self) -> u64 {
        self.limiter.throttled.load(Ordering::SeqCst)
    }

    /// A campaign's channel (`email` or `sms`).
    pub fn campaign_channel(&self, campaign: &Value) -> &str {
        campaign["id"]
            .as_str()
            .and_then(|id| self.campaign_channels.get(id))
            .map_or("email", String::as_str)
    }

    /// The name of an event's metric.
    pub fn metric_name(&self, event: &Value) -> Option<&str> {
        let id = event.pointer("/relationships/metric/data/id")?.as_str()?;
        self.metrics
            .iter()
            .find(|m| m["id"] == id)?
            .pointer("/attributes/name")?
            .as_str()
    }

    /// Whether Klaviyo attributed an event to a campaign or flow (properties or relationship).
    pub fn is_attributed(event: &Value) -> bool {
        let props = &event["attributes"]["event_properties"];
        props.get("$attributed_message").is_some()
            || props.get("$attributed_flow").is_some()
            || event
                .pointer("/relationships/attributions/data")
                .and_then(Value::as_array)
                .is_some_and(|a| !a.is_empty())
    }

    pub(crate) fn limiter(&self) -> &Limiter {
        &self.limiter
    }
}

fn attribution_json(
    id: &str,
    event: &str,
    campaign: Option<&str>,
    message: Option<&str>,
    flow: Option<&str>,
) -> Value {
    let mut rels = serde_json::Map::new();
    rels.insert(
        "event".into(),
        json!({"data": {"type": "event", "id": event}}),
    );
    if let Some(c) = campaign {
        rels.insert(
            "campaign".into(),
            json!({"data": {"type": "campaign", "id": c}}),
        );
    }
    if let Some(m) = message {
        rels.insert(
            "campaign-message".into(),
            json!({"data": {"type": "campaign-message", "id": m}}),
        );
    }
    if let Some(f) = flow {
        rels.insert("flow".into(), json!({"data": {"type": "flow", "id": f}}));
    }
    json!({"type": "attribution", "id": id, "relationships": rels,
           "links": {"self": format!("{SELF_BASE}/attributions/{id}/")}})
}
