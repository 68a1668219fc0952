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
///
/// The text is owned as a plain `str`, not a `RawValue`: a `RawValue` can only be made by scanning
/// its text, and [`read_array`] knows an item's text is well formed from the scan that read its head.
#[derive(Clone)]
pub struct Payload(Box<str>);

impl Payload {
    /// The record's JSON as text, exactly as the dataset stores it.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The record parsed into a value, for code that reads more than a field or two.
    pub fn to_value(&self) -> Value {
        // The text was checked when the payload was made, so it parses.
        serde_json::from_str(&self.0).unwrap_or(Value::Null)
    }

    /// The record read into a type of the caller's choosing: a struct naming only the fields it
    /// needs skips the rest without building it.
    pub fn read<'a, T: Deserialize<'a>>(&'a self) -> serde_json::Result<T> {
        serde_json::from_str(&self.0)
    }

    /// The record read into an owned type (see [`Payload::read`]).
    pub fn read_owned<T: DeserializeOwned>(&self) -> serde_json::Result<T> {
        serde_json::from_str(&self.0)
    }

    /// A payload from JSON text, checked to be one well-formed JSON value.
    pub fn from_text(text: &str) -> serde_json::Result<Payload> {
        RawValue::from_string(text.to_owned()).map(Payload::from_raw)
    }

    /// A payload from JSON text already cut out of a page (see [`RawValue`]).
    pub fn from_raw(raw: Box<RawValue>) -> Payload {
        Payload::from_checked(raw.into())
    }

    /// A payload from text known to be one well-formed JSON value. Private: only this module's
    /// scans can know that.
    fn from_checked(text: Box<str>) -> Payload {
        match without_lone_surrogates(&text) {
            // Replacing a six-byte escape by another keeps the text well-formed.
            Some(repaired) => Payload(repaired.into_boxed_str()),
            None => Payload(text),
        }
    }

    /// A payload printed from a value the connector built.
    pub fn from_value(value: &Value) -> Payload {
        // A `Value` always prints, and its print is well-formed.
        Payload(
            serde_json::to_string(value)
                .expect("a JSON value prints")
                .into_boxed_str(),
        )
    }
}

/// Every item of a page that is one JSON array, as a payload with what `H` reads of it, in the
/// page's order; `None` for an item that does not read as `H` (not an object, say).
///
/// One scan of the page, where cutting it into `RawValue`s and then reading each item's head was two:
/// a WooCommerce page's items are read as `H` one after the other, and the scan that reads an item's
/// head (skipping its other members, which checks them) says where the item ends. A page that is not
/// that simple (an item that is no object or does not read as `H`, bytes that are not UTF-8, a
/// syntax error) is read the two-scan way, so it decodes, or fails, exactly as it always did.
pub fn read_array<H: DeserializeOwned>(
    page: &[u8],
) -> serde_json::Result<Vec<(Payload, Option<H>)>> {
    match std::str::from_utf8(page).ok().and_then(read_objects) {
        Some(items) => Ok(items),
        None => read_array_twice(page),
    }
}

/// [`read_array`] the two-scan way: the page cut into items, then each item read as `H`.
fn read_array_twice<H: DeserializeOwned>(
    page: &[u8],
) -> serde_json::Result<Vec<(Payload, Option<H>)>> {
    let items: Vec<Box<RawValue>> = serde_json::from_slice(page)?;
    Ok(items
        .into_iter()
        .map(|item| {
            let head = serde_json::from_str(item.get()).ok();
            (Payload::from_raw(item), head)
        })
        .collect())
}

/// [`read_array`]'s one-scan reading of an array of objects that all read as `H`, or `None`.
fn read_objects<H: DeserializeOwned>(page: &str) -> Option<Vec<(Payload, Option<H>)>> {
    let b = page.as_bytes();
    let skip_ws = |mut at: usize| {
        while matches!(b.get(at), Some(b' ' | b'\n' | b'\t' | b'\r')) {
            at += 1;
        }
        at
    };
    let mut at = skip_ws(0);
    if b.get(at) != Some(&b'[') {
        return None;
    }
    at = skip_ws(at + 1);
    let mut items = Vec::new();
    if b.get(at) == Some(&b']') {
        return (skip_ws(at + 1) == b.len()).then_some(items);
    }
    loop {
        // An object ends at its own `}`: no look past it is needed to know the value is whole.
        if b.get(at) != Some(&b'{') {
            return None;
        }
        let rest = &page[at..];
        let mut stream = serde_json::Deserializer::from_str(rest).into_iter::<H>();
        let head = stream.next()?.ok()?;
        let end = at + stream.byte_offset();
        items.push((Payload::from_checked(page[at..end].into()), Some(head)));
        at = skip_ws(end);
        match b.get(at) {
            Some(b',') => at = skip_ws(at + 1),
            Some(b']') => return (skip_ws(at + 1) == b.len()).then_some(items),
            _ => return None,
        }
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
    // took 3 % of a sync's CPU. Its finder is built once: building it for every record was 3 % of
    // the thread that decodes pages.
    static ESCAPE: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
        std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b"\\u"));
    let suspect = ESCAPE.find_iter(b).any(|i| {
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
        // Borrowed as raw JSON so that a JSON serializer writes the text as it is.
        let raw: &RawValue = serde_json::from_str(&self.0).map_err(serde::ser::Error::custom)?;
        raw.serialize(serializer)
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

    #[derive(Debug, Default, PartialEq, Deserialize)]
    struct Head {
        #[serde(default)]
        id: Option<Value>,
        #[serde(default)]
        at: Option<String>,
    }

    type Items = Vec<(String, Option<Head>)>;

    fn texts(items: Vec<(Payload, Option<Head>)>) -> Items {
        items
            .into_iter()
            .map(|(p, h)| (p.as_str().to_string(), h))
            .collect()
    }

    #[test]
    fn a_page_read_in_one_scan_gives_what_two_scans_give() {
        let pages = [
            "[]",
            " [ ] \n",
            r#"[{"id":1,"at":"x","more":[1,{"a":"}"}],"s":"\"]"}]"#,
            " [\n {\"id\" : 2 , \"n\":null}\t,{\"at\":\"y\",\"id\":\"3\"} ]\r\n",
            r#"[{"id":4,"name":"Sale \ud83d"},{"id":5,"e":"caf\u00e9 \/"}]"#,
            r#"[{},{"id":{"nested":[true,false,null,-1.5e3]}}]"#,
        ];
        for page in pages {
            let one = read_objects::<Head>(page).expect(page);
            let two = read_array_twice::<Head>(page.as_bytes()).unwrap();
            assert_eq!(texts(one), texts(two), "{page}");
        }
        let items = texts(read_array::<Head>(pages[3].as_bytes()).unwrap());
        assert_eq!(items[0].0, r#"{"id" : 2 , "n":null}"#);
        assert_eq!(items[1].1.as_ref().unwrap().at.as_deref(), Some("y"));
        // The lone half of a pair is repaired in either reading.
        let items = texts(read_array::<Head>(pages[4].as_bytes()).unwrap());
        assert_eq!(items[0].0, r#"{"id":4,"name":"Sale \ufffd"}"#);
    }

    #[test]
    fn a_page_one_scan_cannot_read_is_read_as_before_or_refused_as_before() {
        // Items that are no object, or do not read as the head: the two-scan reading, heads `None`.
        for page in [
            r#"[{"id":1},7,{"id":2}]"#,
            r#"[{"id":1,"at":5}]"#,
            r#"[{"id":1,"id":2}]"#,
            r#"["x",null,[{"id":1}]]"#,
        ] {
            assert!(read_objects::<Head>(page).is_none(), "{page}");
            let got = texts(read_array::<Head>(page.as_bytes()).unwrap());
            let two = texts(read_array_twice::<Head>(page.as_bytes()).unwrap());
            assert_eq!(got, two, "{page}");
            assert!(got.iter().any(|(_, h)| h.is_none()), "{page}");
        }
        // Not one well-formed array: the same error as cutting the page into items gives.
        for page in [
            &b"{\"id\":1}"[..],
            b"[{\"id\":1}",
            b"[{\"id\":1},]",
            b"[{\"id\":1}] x",
            b"[{\"id\":1} {\"id\":2}]",
            b"[{\"id\":1,\"s\":\"\xff\"}]",
            b"[{\"id\":1,\"s\":\"a\nb\"}]",
            b"",
        ] {
            let one = read_array::<Head>(page).unwrap_err().to_string();
            let two = serde_json::from_slice::<Vec<Box<RawValue>>>(page)
                .unwrap_err()
                .to_string();
            assert_eq!(one, two, "{}", String::from_utf8_lossy(page));
        }
    }

    #[test]
    fn a_payload_serializes_as_its_own_text() {
        let p = Payload::from_text(r#"{"b":1,"a":"caf\u00e9"}"#).unwrap();
        assert_eq!(
            serde_json::to_string(&json!({"p": p})).unwrap(),
            r#"{"p":{"b":1,"a":"café"}}"#
        );
        let mut out = Vec::new();
        p.serialize(&mut serde_json::Serializer::new(&mut out))
            .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"b":1,"a":"caf\u00e9"}"#
        );
    }
}
