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
/// Kept as the platform sent it, unknown fields, key order and escapes included. Two payloads are
/// equal when their texts are; compare [`Payload::to_value`]s to compare what they say.
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
        RawValue::from_string(text.to_owned()).map(Payload)
    }

    /// A payload from JSON text already cut out of a page (see [`RawValue`]).
    pub fn from_raw(raw: Box<RawValue>) -> Payload {
        Payload(raw)
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
        Payload(raw)
    }
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
        Box::<RawValue>::deserialize(deserializer).map(Payload)
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
