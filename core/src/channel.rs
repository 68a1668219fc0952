//! The channel classifier: one place that decides which marketing channel a visit or an order came from.
//!
//! Shopify and WooCommerce orders carry UTM parameters, a referrer and (WooCommerce) an attribution
//! "source type"; GA4 already reports its own `sessionDefaultChannelGroup`. For the report to put an order
//! and a GA4 session of the same campaign under the same channel, both must be classified by the same rules
//! — and since GA4's are the ones marketers already know, we follow GA4's *default channel grouping*
//! ("\[GA4\] Default channel group") and map its groups onto the contract's eight channels:
//!
//! | GA4 group | contract channel |
//! |---|---|
//! | Paid Social | `paid_social` |
//! | Paid Search, Paid Shopping | `paid_search` |
//! | Email, SMS | `email` |
//! | Organic Search, Organic Shopping | `organic_search` |
//! | Organic Social, Organic Video | `organic_social` |
//! | Referral, Affiliates | `referral` |
//! | Direct | `direct` |
//! | Cross-network, Paid Video, Display, Paid Other, Audio, Mobile Push Notifications, Unassigned | `other` |
//!
//! The GA4 rules are evaluated in GA4's own order (Direct, Cross-network, Paid Shopping, Paid Search, Paid
//! Social, Paid Video, Display, Paid Other, Organic Shopping, Organic Social, Organic Video, Organic Search,
//! Referral, Email, Affiliates, Audio, SMS, Mobile Push Notifications), case-insensitively on trimmed values.
//!
//! Where GA4's literal rules would contradict the contract or plainly misfile store traffic, we deviate, and
//! say so here so nobody "fixes" it back:
//!
//! - **Email and SMS senders** (`klaviyo`, `mailchimp`, `omnisend`, `attentive`, …, and `newsletter`) count
//!   as email sources. GA4 only knows the literal source `email`; Klaviyo tags its links
//!   `utm_source=Klaviyo`.
//! - **The "shop" campaign-name rule** (Paid/Organic Shopping when the campaign matches
//!   `(^|[^a-df-z])shop|shopping`) is not applied to traffic from a social or video site or an email/SMS
//!   sender, nor to social, email or SMS media: the contract says Meta traffic is `paid_social`, and a
//!   Klaviyo "Shop the sale" email is email, not organic search.
//! - **Paid Other with a telling medium**: a paid medium naming its network (`paid_social`, `paid-search`,
//!   `paid_shopping`) from a source we do not recognise goes to `paid_social` / `paid_search` rather than
//!   `other`.
//! - **Referrers** stand in for a missing `utm_source` the way GA4's own auto-detection does: the host
//!   (without `www.`, `m.`, `l.`, `lm.`, `mobile.`, `mbasic.`) becomes the source and the medium is `organic`
//!   for a search engine, `referral` otherwise. Webmail hosts (`mail.google.com`, `outlook.live.com`, the
//!   Gmail app) are email. Payment and login round-trips (PayPal, Stripe, Klarna, Shop Pay,
//!   `checkout.shopify.com`, …) are ignored, as GA4's "unwanted referrals" list would.
//! - **Blank and placeholder values** (`""`, `(not set)`, `(none)`) count as absent; with nothing left at
//!   all the visit is `direct`.
//! - **Platform hints** (`source_type`): WooCommerce's `typein` is direct; `organic` and `referral` supply the
//!   medium when none is given; `admin`, `mobile_app`, `pos` and Shopify draft orders are orders keyed in
//!   by staff or at a till — not website traffic of any channel — and are `other` (putting them under
//!   `direct` would inflate the "typed the URL" channel with phone and in-store sales); `unknown` with no
//!   other signal is `other` too, since WooCommerce uses it when it could not tell.

use crate::model::Channel;

/// What is known about how a visitor arrived, as the platforms hand it over. Every field is optional
/// because every platform leaves some of them out; the classifier works with whatever is there.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChannelInput<'a> {
    /// `utm_source` (or the platform's equivalent, e.g. WooCommerce's attribution source).
    pub utm_source: Option<&'a str>,
    /// `utm_medium`.
    pub utm_medium: Option<&'a str>,
    /// `utm_campaign`: GA4 uses it for the shopping and cross-network rules.
    pub utm_campaign: Option<&'a str>,
    /// The referring URL (or bare host), used when there is no `utm_source`.
    pub referrer: Option<&'a str>,
    /// A platform's own hint about the visit: WooCommerce's attribution source type (`typein`, `organic`,
    /// `referral`, `utm`, `admin`, `mobile_app`, `unknown`) or a store's order origin (`pos`,
    /// `shopify_draft_order`).
    pub source_type: Option<&'a str>,
}

/// Classify a visit or order into one of the contract's channels, following GA4's default channel
/// grouping (see the module documentation for the rules and our documented deviations).
pub fn classify(input: &ChannelInput<'_>) -> Channel {
    let hint = clean(input.source_type);
    let mut source = clean(input.utm_source);
    let mut medium = clean(input.utm_medium);
    let campaign = clean(input.utm_campaign);

    match hint.as_deref() {
        Some("admin" | "mobile_app" | "pos" | "shopify_draft_order" | "draft_order" | "phone") => {
            return Channel::Other;
        }
        Some("typein") if source.is_none() || source.as_deref() == Some("(direct)") => {
            return Channel::Direct;
        }
        _ => {}
    }

    if source.is_none() {
        match input.referrer.map(referrer_signal) {
            Some(Referrer::Email) => {
                medium.get_or_insert_with(|| "email".to_string());
            }
            Some(Referrer::Host(host)) => {
                if medium.is_none() {
                    let kind = SourceKind::of(&host);
                    medium = Some(if kind.search { "organic" } else { "referral" }.to_string());
                }
                source = Some(host);
            }
            Some(Referrer::None) | None => {}
        }
    }

    if medium.is_none() {
        match hint.as_deref() {
            Some("organic") => medium = Some("organic".to_string()),
            Some("referral") => medium = Some("referral".to_string()),
            _ => {}
        }
    }

    if source.is_none() && medium.is_none() && campaign.is_none() {
        return if hint.as_deref() == Some("unknown") {
            Channel::Other
        } else {
            Channel::Direct
        };
    }

    ga4_rules(source.as_deref(), medium.as_deref(), campaign.as_deref())
}

/// Map GA4's `sessionDefaultChannelGroup` (or `defaultChannelGroup`) onto the contract's channels, so
/// that GA4 rows and classified orders share one vocabulary. Unknown groups, `Unassigned` and `(other)`
/// are `other`. Also accepts the contract's own names (`paid_social`), so stored values round-trip.
pub fn from_ga4_channel_group(group: &str) -> Channel {
    let g: String = group
        .trim()
        .to_lowercase()
        .chars()
        .map(|c| if c == '_' { ' ' } else { c })
        .collect();
    let g = g.split_whitespace().collect::<Vec<_>>().join(" ");
    match g.as_str() {
        "paid social" => Channel::PaidSocial,
        "paid search" | "paid shopping" => Channel::PaidSearch,
        "email" | "sms" => Channel::Email,
        "organic search" | "organic shopping" => Channel::OrganicSearch,
        "organic social" | "organic video" => Channel::OrganicSocial,
        "referral" | "affiliates" | "affiliate" => Channel::Referral,
        "direct" => Channel::Direct,
        _ => Channel::Other,
    }
}

/// Parse a channel name as stored in the dataset (`paid_social`, …). `None` for anything else, so callers
/// reading the `channel` column can tell a stray value from a real channel.
pub fn parse_stored(name: &str) -> Option<Channel> {
    let n = name.trim();
    Channel::ALL
        .into_iter()
        .find(|c| c.as_str().eq_ignore_ascii_case(n))
}

/// GA4's rule table, in GA4's evaluation order, already mapped onto the contract's channels.
fn ga4_rules(source: Option<&str>, medium: Option<&str>, campaign: Option<&str>) -> Channel {
    let kind = source.map(SourceKind::of).unwrap_or_default();
    let m = medium.unwrap_or("");

    // Direct: source "(direct)" and medium "(none)" / "(not set)" (both cleaned to absent).
    if source == Some("(direct)") && medium.is_none() {
        return Channel::Direct;
    }
    // Cross-network (Performance Max and friends).
    if campaign.is_some_and(|c| c.contains("cross-network")) {
        return Channel::Other;
    }

    let paid = is_paid_medium(m);
    let email_medium = is_email_token(m);
    let sms_medium = m == "sms";
    let social_medium = SOCIAL_MEDIA.contains(&m);
    let shop_campaign = campaign.is_some_and(is_shop_campaign)
        && !(kind.social
            || kind.video
            || kind.email
            || kind.sms
            || email_medium
            || sms_medium
            || social_medium);
    let shopping = kind.shopping || shop_campaign;

    if paid {
        if shopping || kind.search {
            return Channel::PaidSearch; // Paid Shopping, Paid Search
        }
        if kind.social {
            return Channel::PaidSocial;
        }
        if kind.video {
            return Channel::Other; // Paid Video
        }
    }
    if DISPLAY_MEDIA.contains(&m) {
        return Channel::Other;
    }
    if paid {
        // Paid Other, unless the medium itself names the network (documented deviation).
        if m.contains("social") {
            return Channel::PaidSocial;
        }
        if m.contains("search") || m.contains("shopping") {
            return Channel::PaidSearch;
        }
        return Channel::Other;
    }
    if shopping {
        return Channel::OrganicSearch; // Organic Shopping
    }
    if kind.social || social_medium {
        return Channel::OrganicSocial;
    }
    if kind.video || m.contains("video") {
        return Channel::OrganicSocial; // Organic Video
    }
    if kind.search || m == "organic" {
        return Channel::OrganicSearch;
    }
    if matches!(m, "referral" | "app" | "link") {
        return Channel::Referral;
    }
    if kind.email || email_medium {
        return Channel::Email;
    }
    if m == "affiliate" || m == "affiliates" {
        return Channel::Referral;
    }
    if m == "audio" {
        return Channel::Other;
    }
    if kind.sms || sms_medium {
        return Channel::Email;
    }
    // Mobile Push Notifications and Unassigned.
    Channel::Other
}

/// GA4's paid medium: `^(.*cp.*|ppc|retargeting|paid.*)$`.
fn is_paid_medium(m: &str) -> bool {
    m.contains("cp") || m == "ppc" || m == "retargeting" || m.starts_with("paid")
}

/// GA4's campaign shopping regex: `^(.*(([^a-df-z]|^)shop|shopping).*)$`.
fn is_shop_campaign(c: &str) -> bool {
    if c.contains("shopping") {
        return true;
    }
    c.match_indices("shop").any(|(i, _)| {
        c[..i]
            .chars()
            .next_back()
            .is_none_or(|p| !(p.is_ascii_lowercase() && p != 'e'))
    })
}

/// GA4's literal email source/medium values.
fn is_email_token(s: &str) -> bool {
    matches!(s, "email" | "e-mail" | "e_mail" | "e mail")
}

const SOCIAL_MEDIA: &[&str] = &[
    "social",
    "social-network",
    "social-media",
    "sm",
    "social network",
    "social media",
];

const DISPLAY_MEDIA: &[&str] = &["display", "banner", "expandable", "interstitial", "cpm"];

/// Search engines, matched against any dot/dash/underscore-separated word of the source or host, so that
/// `google`, `google.co.uk`, `search.yahoo.com` and `google_ads` all count.
const SEARCH_WORDS: &[&str] = &[
    "google",
    "googleads",
    "adwords",
    "bing",
    "yahoo",
    "duckduckgo",
    "baidu",
    "yandex",
    "ecosia",
    "ask",
    "aol",
    "naver",
    "seznam",
    "qwant",
    "startpage",
    "sogou",
    "daum",
    "kagi",
    "mojeek",
    "brave",
    "googlequicksearchbox",
];

/// Social networks, matched like [`SEARCH_WORDS`].
const SOCIAL_WORDS: &[&str] = &[
    "facebook",
    "fb",
    "instagram",
    "ig",
    "meta",
    "tiktok",
    "pinterest",
    "linkedin",
    "lnkd",
    "twitter",
    "reddit",
    "youtube",
    "snapchat",
    "whatsapp",
    "telegram",
    "tumblr",
    "quora",
    "discord",
    "threads",
    "vk",
    "weibo",
    "wechat",
    "messenger",
    "nextdoor",
    "mastodon",
    "bluesky",
    "bsky",
];

/// Social sources matched only as the whole source/host, because their words are too short or too
/// common to match inside other names (`x` would match `brand-x`).
const SOCIAL_EXACT: &[&str] = &[
    "x",
    "x.com",
    "t.co",
    "fb.me",
    "pin.it",
    "youtu.be",
    "threads.net",
];

/// Video sites, matched like [`SEARCH_WORDS`]. YouTube is also social, which wins (GA4 checks social
/// first).
const VIDEO_WORDS: &[&str] = &["youtube", "vimeo", "twitch", "dailymotion", "wistia"];

/// Shopping sites, matched like [`SEARCH_WORDS`].
const SHOPPING_WORDS: &[&str] = &[
    "amazon",
    "ebay",
    "etsy",
    "walmart",
    "aliexpress",
    "igshopping",
];

/// Shopping sources matched only as the whole source/host.
const SHOPPING_EXACT: &[&str] = &["shopping.google.com", "google shopping", "shopping.google"];

/// Email service providers (deviation from GA4: see the module docs).
const EMAIL_WORDS: &[&str] = &[
    "klaviyo",
    "mailchimp",
    "mailchi",
    "sendgrid",
    "brevo",
    "sendinblue",
    "omnisend",
    "activecampaign",
    "constantcontact",
    "campaignmonitor",
    "mailerlite",
    "convertkit",
    "newsletter",
];

/// SMS providers (deviation from GA4: see the module docs).
const SMS_WORDS: &[&str] = &["attentive", "postscript"];

/// What kind of site a source (or referrer host) is.
#[derive(Debug, Default, Clone, Copy)]
struct SourceKind {
    search: bool,
    social: bool,
    video: bool,
    shopping: bool,
    email: bool,
    sms: bool,
}

impl SourceKind {
    fn of(source: &str) -> SourceKind {
        let s = normalize_source(source);
        let words: Vec<&str> = s
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .collect();
        let has = |list: &[&str]| words.iter().any(|w| list.contains(w));
        SourceKind {
            search: has(SEARCH_WORDS),
            social: has(SOCIAL_WORDS) || SOCIAL_EXACT.contains(&s.as_str()),
            video: has(VIDEO_WORDS),
            shopping: has(SHOPPING_WORDS) || SHOPPING_EXACT.contains(&s.as_str()),
            email: is_email_token(&s) || has(EMAIL_WORDS),
            sms: s == "sms" || has(SMS_WORDS),
        }
    }
}

/// A source may be a bare name (`facebook`), a host (`m.facebook.com`) or a whole URL; reduce it to the
/// name or host without the mobile/redirect prefixes platforms put in front.
fn normalize_source(source: &str) -> String {
    let s = source.trim().to_lowercase();
    let s = if s.contains("://") {
        host_of(&s).unwrap_or(s)
    } else {
        s
    };
    strip_host_prefixes(&s).to_string()
}

fn strip_host_prefixes(host: &str) -> &str {
    let mut h = host;
    loop {
        let before = h;
        for p in ["www.", "m.", "l.", "lm.", "mobile.", "mbasic."] {
            if let Some(rest) = h.strip_prefix(p) {
                if rest.contains('.') {
                    h = rest;
                }
            }
        }
        if h == before {
            return h;
        }
    }
}

/// The host of a URL or bare `host/path`, lower-cased. For `android-app://package/…` it is the package.
fn host_of(s: &str) -> Option<String> {
    let s = s.trim();
    let parsed = if s.contains("://") {
        url::Url::parse(s).ok()
    } else if s.contains('.') && !s.contains(char::is_whitespace) {
        url::Url::parse(&format!("http://{s}")).ok()
    } else {
        None
    }?;
    parsed
        .host_str()
        .map(|h| h.trim_end_matches('.').to_lowercase())
        .filter(|h| !h.is_empty())
}

/// What a referrer says about the visit.
enum Referrer {
    /// Unusable, or a round-trip we ignore (payment, login).
    None,
    /// A webmail client: the visit came from an email.
    Email,
    /// Another site, by normalised host.
    Host(String),
}

/// Android apps that send a referrer of their own package.
const ANDROID_EMAIL_APPS: &[&str] = &[
    "com.google.android.gm",
    "com.microsoft.office.outlook",
    "com.yahoo.mobile.client.android.mail",
];

/// Payment and login round-trips: a customer coming back from them is not a new referral.
const IGNORED_REFERRER_WORDS: &[&str] = &[
    "paypal", "stripe", "klarna", "afterpay", "clearpay", "affirm", "mollie", "adyen", "sezzle",
];
const IGNORED_REFERRER_HOSTS: &[&str] = &[
    "checkout.shopify.com",
    "shop.app",
    "pay.google.com",
    "pay.amazon.com",
    "payments.amazon.com",
    "accounts.google.com",
];

fn referrer_signal(referrer: &str) -> Referrer {
    let Some(host) = host_of(referrer) else {
        return Referrer::None;
    };
    if ANDROID_EMAIL_APPS.contains(&host.as_str()) {
        return Referrer::Email;
    }
    let host = strip_host_prefixes(&host).to_string();
    let labels: Vec<&str> = host.split('.').collect();
    if IGNORED_REFERRER_HOSTS.contains(&host.as_str())
        || labels.iter().any(|l| IGNORED_REFERRER_WORDS.contains(l))
    {
        return Referrer::None;
    }
    let webmail =
        (labels.len() >= 3 && matches!(labels[0], "mail" | "webmail")) || labels[0] == "outlook";
    if webmail {
        return Referrer::Email;
    }
    Referrer::Host(host)
}

/// Lower-cased and trimmed; blanks and GA4's placeholders count as absent (but `(direct)` is kept, it
/// is meaningful).
fn clean(v: Option<&str>) -> Option<String> {
    let v = v?.trim().to_lowercase();
    match v.as_str() {
        "" | "(not set)" | "(none)" | "(not provided)" => None,
        _ => Some(v),
    }
}
