//! A record's JSON as text, from the platform's page to the dataset's `payload` column.
//!
//! A record used to travel as a `serde_json::Value`: parsed out of the page, held while its page waited
//! for a commit, and printed back to text for the column. With the workspace's ordered maps a parsed
//! WooCommerce order takes four to five times its 3–4 KB of text, and the parse and the print were a
//! quarter of the sync's CPU. A connector that passes records through (most of them) now cuts each
//! record's text out of the page and keeps it; one that builds its records (GA4's rows, Meta's
//! flattened insights) prints its value once, here.

use std::fmt;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;

/// One record's JSON text, checked to be well-formed JSON when it was made.
///
/// Kept as the platform sent it, unknown fields, key order and escapes included, with one repair: an
/// escape of half a UTF-16 surrogate pair without its other half (`"\ud83d"`, an emoji cut in two by
/// a platform that truncates strings) becomes `\ufffd`, the replacement character. Such text is well
/// formed but names no character: PostgreSQL refuses it in a JSONB column (the whole commit, again on
/// every run, so the stream would never get past it) and serde refuses to parse it (the journey model
/// would skip the record). Two payloads are equal when their texts are; compare
/// [`Payload::to_value`]s to compare what they say.
#[derive(Clone)]
pub struct Payload(Box<RawValue>);

impl Payload {
    /// The record's JSON as text, exactly as the dataset stores it.
    pub fn as_str(&self) -> &str {
        self.0.get()
    }

    /// The record parsed into a value, for code that reads more than a field or two.
    pub fn to_value(&self) -> Value {
        // The text was checked when the payload was made, so it parses.
        serde_json::from_str(self.0.get()).unwrap_or(Value::Null)
    }

    /// The record read into a type of the caller's choosing: a struct naming only the fields it
    /// needs skips the rest without building it.
    pub fn read<'a, T: Deserialize<'a>>(&'a self) -> serde_json::Result<T> {
        serde_json::from_str(self.0.get())
    }

    /// The record read into an owned type (see [`Payload::read`]).
    pub fn read_owned<T: DeserializeOwned>(&self) -> serde_json::Result<T> {
        serde_json::from_str(self.0.get())
    }

    /// A payload from JSON text, checked to be one well-formed JSON value.
    pub fn from_text(text: &str) -> serde_json::Result<Payload> {
        RawValue::from_string(text.to_owned()).map(Payload::from_raw)
    }

    /// A payload from JSON text already cut out of a page (see [`RawValue`]).
    pub fn from_raw(raw: Box<RawValue>) -> Payload {
        match without_lone_surrogates(raw.get()) {
            // Replacing a six-byte escape by another keeps the text well-formed.
            Some(repaired) => Payload(RawValue::from_string(repaired).unwrap_or(raw)),
            None => Payload(raw),
        }
    }

    /// A payload printed from a value the connector built.
    pub fn from_value(value: &Value) -> Payload {
        // A `Value` always prints, and its print is well-formed.
        Payload(serde_json::value::to_raw_value(value).expect("a JSON value prints"))
    }

    /// The raw JSON, for writers that hand it on as it is.
    pub fn raw(&self) -> &RawValue {
        &self.0
    }
}

impl From<Value> for Payload {
    fn from(value: Value) -> Payload {
        Payload::from_value(&value)
    }
}

impl From<&Value> for Payload {
    fn from(value: &Value) -> Payload {
        Payload::from_value(value)
    }
}

impl From<Box<RawValue>> for Payload {
    fn from(raw: Box<RawValue>) -> Payload {
        Payload::from_raw(raw)
    }
}

/// `text` with every `\uXXXX` escape of a lone surrogate replaced by `\ufffd`, or `None` when it
/// has none (nearly always: the scan only runs on text that holds a surrogate's escape at all).
fn without_lone_surrogates(text: &str) -> Option<String> {
    let b = text.as_bytes();
    // Cheap test first: `\ud8`..`\udf` in either case. A false alarm (an escaped backslash before
    // such letters, or a whole pair: an emoji) only costs the exact scan below.
    // `memmem` scans with SIMD: this runs on every record of every page, and `str::match_indices`
    // took 3 % of a sync's CPU.
    let suspect = memchr::memmem::find_iter(b, b"\\u").any(|i| {
        matches!(b.get(i + 2), Some(b'd' | b'D'))
            && matches!(b.get(i + 3), Some(b'8'..=b'9' | b'a'..=b'f' | b'A'..=b'F'))
    });
    if !suspect {
        return None;
    }
    let unit = |at: usize| -> Option<u16> {
        let hex = text.get(at + 2..at + 6)?;
        (b.get(at) == Some(&b'\\') && b.get(at + 1) == Some(&b'u'))
            .then(|| u16::from_str_radix(hex, 16).ok())
            .flatten()
    };
    let mut lone = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' {
            i += 1;
            continue;
        }
        match unit(i) {
            Some(0xD800..=0xDBFF) if matches!(unit(i + 6), Some(0xDC00..=0xDFFF)) => i += 12,
            Some(0xD800..=0xDFFF) => {
                lone.push(i);
                i += 6;
            }
            Some(_) => i += 6,
            // Any other escape is two characters: `\\` must not start one.
            None => i += 2,
        }
    }
    if lone.is_empty() {
        return None;
    }
    let mut out = String::with_capacity(text.len());
    let mut from = 0;
    for at in lone {
        out.push_str(&text[from..at]);
        out.push_str("\\ufffd");
        from = at + 6;
    }
    out.push_str(&text[from..]);
    Some(out)
}

impl Default for Payload {
    fn default() -> Payload {
        Payload::from_value(&Value::Null)
    }
}

impl PartialEq for Payload {
    fn eq(&self, other: &Payload) -> bool {
        self.as_str() == other.as_str()
    }
}

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Payload {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Payload {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Payload, D::Error> {
        Box::<RawValue>::deserialize(deserializer).map(Payload::from_raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_page_item_keeps_its_text_and_reads_back_as_the_same_value() {
        let page = r#"[{"id":7,"note":"caf\u00e9 \/ bar","extra":{"kept":true}} , {"id":8}]"#;
        let items: Vec<Box<RawValue>> = serde_json::from_str(page).unwrap();
        let first = Payload::from_raw(items.into_iter().next().unwrap());
        // The platform's own escapes stay: the dataset holds what was sent.
        assert_eq!(
            first.as_str(),
            r#"{"id":7,"note":"caf\u00e9 \/ bar","extra":{"kept":true}}"#
        );
        assert_eq!(first.to_value()["note"], json!("café / bar"));
        assert_eq!(first.to_value()["extra"]["kept"], json!(true));
    }

    #[test]
    fn half_a_surrogate_pair_becomes_the_replacement_character_and_nothing_else_changes() {
        let text = r#"{"name":"Sale \ud83d","pair":"\ud83d\ude00","low":"\uDE00x","both":"\ud83d\ud83d\ude00","lit":"\\ud83d","e":"caf\u00e9"}"#;
        let p = Payload::from_text(text).unwrap();
        assert_eq!(
            p.as_str(),
            r#"{"name":"Sale \ufffd","pair":"\ud83d\ude00","low":"\ufffdx","both":"\ufffd\ud83d\ude00","lit":"\\ud83d","e":"caf\u00e9"}"#
        );
        let v = p.to_value();
        assert_eq!(v["name"], json!("Sale \u{FFFD}"));
        assert_eq!(v["pair"], json!("\u{1F600}"));
        assert_eq!(v["both"], json!("\u{FFFD}\u{1F600}"));
        assert_eq!(v["lit"], json!("\\ud83d"));
        // The same repair whichever way the payload is made.
        let items: Vec<Box<RawValue>> = serde_json::from_str(&format!("[{text}]")).unwrap();
        let from_page = Payload::from(items.into_iter().next().unwrap());
        assert_eq!(from_page, p);
        let read: Payload = serde_json::from_str(text).unwrap();
        assert_eq!(read, p);
        // Text without a surrogate's escape is kept as it is, to the byte.
        let plain = r#"{"a":"\\u0041 \/ \u00e9 \ud7ff \ue000"}"#;
        assert_eq!(Payload::from_text(plain).unwrap().as_str(), plain);
    }

    #[test]
    fn a_built_value_prints_once_in_its_key_order() {
        let p = Payload::from(json!({"b": 1, "a": [1.5, "x"]}));
        assert_eq!(p.as_str(), r#"{"b":1,"a":[1.5,"x"]}"#);
        assert_eq!(p, Payload::from_text(r#"{"b":1,"a":[1.5,"x"]}"#).unwrap());
        assert!(Payload::from_text("{\"a\":").is_err());
        #[derive(Deserialize)]
        struct Head<'a> {
            b: i64,
            #[serde(borrow)]
            a: Vec<&'a RawValue>,
        }
        let head: Head = p.read().unwrap();
        assert_eq!((head.b, head.a.len()), (1, 2));
    }
}
