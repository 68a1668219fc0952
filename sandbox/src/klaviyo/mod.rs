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
#[derive(Debug, Clone)]
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
    /// `event` resources, sorted by (`datetime`, id).
    pub events: Vec<Value>,
    /// `attribution` resources the events' `attributions` relationships point at.
    pub attributions: Vec<Value>,
    limiter: Arc<Limiter>,
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
        let with_email: Vec<String> = profiles
            .iter()
            .filter(|p| p["attributes"]["email"].is_string())
            .map(|p| p["id"].as_str().unwrap().to_string())
            .collect();

        // Events over the EVENT_DAYS before `end`.
        let mut rng = root.fork(7);
        let mut events = Vec::new();
        let mut attributions = Vec::new();
        let span = EVENT_DAYS * 86_400;
        for _ in 0..3_000 * scale {
            let kind = rng.weighted(&[30, 24, 11, 16, 8, 11]);
            let profile = rng.pick(&with_email).clone();
            let at = start + Duration::seconds(rng.range(0, span - 1));
            let id = rng.alnum(12);
            let mut attribution_links = Vec::new();
            let props = if kind < 3 {
                // Email engagement: a campaign's message or a flow's.
                let mut p = json!({"$event_id": format!("{}", at.timestamp()),
                                   "Email Domain": "example.com", "Client Name": "Apple Mail",
                                   "Client Type": "Email Client", "Inbox Provider": "Gmail"});
                if rng.chance(0.7) {
                    let (_, msg, name, _) = rng.pick(&campaign_messages).clone();
                    p["$message"] = json!(msg);
                    p["Campaign Name"] = json!(name);
                    p["Subject"] = json!(format!("{name}: don't miss it"));
                } else {
                    let (flow, msg, name) = rng.pick(&flow_messages).clone();
                    p["$message"] = json!(msg);
                    p["$flow"] = json!(flow);
                    p["Subject"] = json!(format!("{name} #1"));
                }
                if kind == 2 {
                    p["URL"] = json!(
                        "https://store.example.com/shop/?utm_source=klaviyo&utm_medium=email"
                    );
                }
                p
            } else if kind < 5 {
                json!({"$event_id": rng.alnum(10), "ProductName": rng.pick(&["Linen Shirt", "Canvas Tote", "Wool Beanie"]),
                       "$value": (rng.range(900, 19_900) as f64) / 100.0, "$currency_code": "USD"})
            } else {
                let cents = rng.range(1_500, 45_000);
                let order = rng.range(10_000, 99_999);
                let mut p = json!({"$event_id": order.to_string(), "OrderId": order.to_string(),
                                   "$value": (cents as f64) / 100.0, "$currency_code": "USD",
                                   "ItemNames": ["Linen Shirt"], "Source Name": "web"});
                match rng.below(6) {
                    0 => {
                        let (campaign, msg, _, _) = rng.pick(&campaign_messages).clone();
                        p["$attributed_channel"] = json!("Email");
                        p["$attributed_message"] = json!(msg.clone());
                        let aid = rng.hex(32);
                        attributions.push(attribution(
                            &aid,
                            &id,
                            Some(&campaign),
                            Some(&msg),
                            None,
                        ));
                        attribution_links.push(json!({"type": "attribution", "id": aid}));
                    }
                    1 => {
                        let (flow, msg, _) = rng.pick(&flow_messages).clone();
                        p["$attributed_channel"] = json!("Email");
                        p["$attributed_flow"] = json!(flow.clone());
                        p["$attributed_message"] = json!(msg);
                    }
                    2 => {
                        // Attributed through the relationship only.
                        let aid = rng.hex(32);
                        if rng.chance(0.5) {
                            let (campaign, msg, _, _) = rng.pick(&campaign_messages).clone();
                            attributions.push(attribution(
                                &aid,
                                &id,
                                Some(&campaign),
                                Some(&msg),
                                None,
                            ));
                        } else {
                            let (flow, _, _) = rng.pick(&flow_messages).clone();
                            attributions.push(attribution(&aid, &id, None, None, Some(&flow)));
                        }
                        attribution_links.push(json!({"type": "attribution", "id": aid}));
                    }
                    _ => {}
                }
                p
            };
            let metric = metric_id(kind);
            let ev_links = |rel: &str| {
                json!({"self": format!("{SELF_BASE}/events/{id}/relationships/{rel}/"),
                       "related": format!("{SELF_BASE}/events/{id}/{rel}/")})
            };
            events.push(json!({"type": "event", "id": id,
                "attributes": {"timestamp": at.timestamp(), "event_properties": props,
                               "datetime": ts(at),
                               "uuid": format!("{}-{}-11ef-8001-{}", rng.hex(8), rng.hex(4), rng.hex(12))},
                "relationships": {
                    "profile": {"data": {"type": "profile", "id": profile}, "links": ev_links("profile")},
                    "metric": {"data": {"type": "metric", "id": metric}, "links": ev_links("metric")},
                    "attributions": {"data": attribution_links, "links": ev_links("attributions")}},
                "links": {"self": format!("{SELF_BASE}/events/{id}/")}}));
        }
        events.sort_by(|a, b| {
            (a["attributes"]["timestamp"].as_i64(), a["id"].as_str())
                .cmp(&(b["attributes"]["timestamp"].as_i64(), b["id"].as_str()))
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

fn attribution(
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
