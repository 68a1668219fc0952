//! Parsing a raw record's JSON text into only the parts its mapper reads.
//!
//! The journey rebuild maps every raw record of the dataset, and most of its time went into building
//! each payload's whole [`Value`] tree: with serde_json's `preserve_order` every object is an
//! `IndexMap` and every key and string its own allocation, while a mapper reads a handful of fields
//! (a WooCommerce order is 3–4 KB of JSON of which the mapper reads about fifteen values). A
//! [`Projection`] names those fields; [`Projection::parse`] reads the text into a [`Value`] holding
//! only them and skips everything else without building it (serde's [`IgnoredAny`]: the skipped
//! text is checked as JSON and nothing is allocated for it).
//!
//! A projection only ever *removes object members the mapper does not read*; it never changes a value
//! it keeps. So it must never make a mapper's answer differ from the full parse's:
//!
//! - every value keeps its JSON type: a field projection meeting a string, number, boolean or `null`
//!   keeps that scalar as it is, and meeting an array applies itself to each element, keeping every
//!   element (so lengths and indices stay what they were);
//! - a kept object keeps its listed members in their original order, and a key written twice keeps its
//!   last value at its first position, as [`Value`]'s own parse does;
//! - numbers and strings are read exactly as [`Value`]'s parse reads them.
//!
//! Skipped text is checked for JSON syntax only, as [`IgnoredAny`] checks it, so three things the full
//! parse refuses pass when they sit in a *skipped* member: a number out of `f64`'s range (`1e400`), a
//! `\u` escape of a lone surrogate, and nesting deeper than serde_json's 128 levels. A stored payload
//! may hold them: it is the platform's own text, which the sync checked for syntax only (see
//! [`crate::payload`]). Where they sit in a member the mapper never reads, the record now maps where
//! the full parse would have refused it; in a kept member each fails as in the full parse. Checking them too (a skip that parses numbers and unescapes
//! strings, still allocating nothing) measured 5–10 µs against 3–5 µs for skipping a whole 4.7 KB
//! order, whose full parse takes 28–46 µs.
//!
//! What a mapper reads is its own business: a leaf it reads (or may print in an error message) must
//! be kept whole ([`Projection::All`]), and a field it only navigates into may be projected further.
//! [`parse_record`] is how the rebuild applies a mapper's projection, falling back to the full parse
//! when the projected one fails so that malformed text fails with the full parse's own error.

use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::{Map, Number, Value};

/// Which parts of a JSON value to keep. Declared as constants next to the mapper that reads them
/// (the slices are `'static`, so a projection costs nothing to hand out per record):
///
/// ```
/// use growthflow_core::project::Projection::{self, All};
///
/// const ORDER: Projection = Projection::fields(&[
///     ("id", All),
///     ("billing", Projection::fields(&[("email", All)])),
///     ("line_items", Projection::fields(&[("total", All)])),
/// ]);
/// let v = ORDER
///     .parse(r#"{"id":7,"note":"x","billing":{"email":"a@b.c","phone":"1"},"line_items":[{"total":"2","sku":"s"}]}"#)
///     .unwrap();
/// assert_eq!(v, serde_json::json!({"id":7,"billing":{"email":"a@b.c"},"line_items":[{"total":"2"}]}));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Projection {
    /// Keep the value whole, exactly as the full parse builds it.
    All,
    /// Of an object, keep only these members, each projected by its own projection (members not
    /// present stay absent). Of an array, apply this projection to every element. A scalar is kept as
    /// it is: the projection describes what to drop, never what a value must look like, so a record of
    /// an unexpected shape still parses and the mapper sees what it would have seen.
    Fields(&'static [(&'static str, Projection)]),
}

impl Projection {
    /// Nothing of an object: for records of streams a mapper ignores, which then cost only a scan of
    /// their text.
    pub const NOTHING: Projection = Projection::Fields(&[]);

    /// [`Projection::Fields`], as a `const fn` for reading declarations.
    pub const fn fields(fields: &'static [(&'static str, Projection)]) -> Projection {
        Projection::Fields(fields)
    }

    /// Parse `text` (one JSON value, surrounded by whitespace at most) keeping only the projected
    /// parts. Fails only where [`serde_json::from_str`] fails too, though not always with the same
    /// error: see [`parse_record`] for the rebuild's use, which does give the same error.
    pub fn parse(&self, text: &str) -> serde_json::Result<Value> {
        let mut de = serde_json::Deserializer::from_str(text);
        let value = ProjectSeed(self).deserialize(&mut de)?;
        de.end()?;
        Ok(value)
    }

    /// The projection of an already parsed value: what [`parse`](Self::parse) of its text gives. The
    /// reference the projected parse is tested against; the rebuild never builds the full value.
    pub fn apply(&self, value: &Value) -> Value {
        match (self, value) {
            (Projection::All, v) => v.clone(),
            (Projection::Fields(fields), Value::Object(map)) => Value::Object(
                map.iter()
                    .filter(|(k, _)| fields.iter().any(|(name, _)| name == k))
                    .map(|(k, v)| {
                        let sub = fields
                            .iter()
                            .find(|(name, _)| name == k)
                            .map_or(&Projection::All, |(_, p)| p);
                        (k.clone(), sub.apply(v))
                    })
                    .collect(),
            ),
            (Projection::Fields(_), Value::Array(items)) => {
                Value::Array(items.iter().map(|v| self.apply(v)).collect())
            }
            (Projection::Fields(_), scalar) => scalar.clone(),
        }
    }

    /// The sub-projection of member `key` of an object, if the projection keeps it.
    fn member(fields: &'static [(&'static str, Projection)], key: &str) -> Option<usize> {
        fields.iter().position(|(name, _)| *name == key)
    }
}

/// Parse a raw record's `text` for a mapper whose [`projection`](crate::model::JourneyMapper::projection)
/// for the record's stream is `projection`: the whole value for `None`, else the projected one.
///
/// When the projected parse fails, the text is parsed whole and that result returned, so a record that
/// fails to parse fails with exactly the error it fails with unprojected (position included), and a
/// projection can never make a record fail that the full parse reads.
pub fn parse_record(projection: Option<&Projection>, text: &str) -> serde_json::Result<Value> {
    match projection {
        None => serde_json::from_str(text),
        Some(p) => p.parse(text).or_else(|_| serde_json::from_str(text)),
    }
}

/// A [`DeserializeSeed`] reading one JSON value into a [`Value`] holding only what the projection
/// keeps: the projected parse for any serde deserializer (with serde_json, [`Projection::parse`] is
/// the usual entry point). Skipped members are read as [`IgnoredAny`], so nothing is built for them.
#[derive(Debug, Clone, Copy)]
pub struct ProjectSeed<'p>(pub &'p Projection);

impl<'de> DeserializeSeed<'de> for ProjectSeed<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        match self.0 {
            Projection::All => Value::deserialize(deserializer),
            Projection::Fields(fields) => deserializer.deserialize_any(FieldsVisitor {
                projection: self.0,
                fields,
            }),
        }
    }
}

/// Builds a value under a [`Projection::Fields`]: objects keep the listed members, arrays project each
/// element, scalars are built exactly as [`Value`]'s own visitor builds them.
struct FieldsVisitor<'p> {
    projection: &'p Projection,
    fields: &'static [(&'static str, Projection)],
}

impl<'de> Visitor<'de> for FieldsVisitor<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any valid JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_i128<E: serde::de::Error>(self, v: i128) -> Result<Value, E> {
        Value::deserialize(serde::de::value::I128Deserializer::new(v))
    }

    fn visit_u128<E: serde::de::Error>(self, v: u128) -> Result<Value, E> {
        Value::deserialize(serde::de::value::U128Deserializer::new(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        // Like `Value`: a non-finite float (which JSON text cannot hold anyway) becomes null.
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        ProjectSeed(self.projection).deserialize(deserializer)
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(ProjectSeed(self.projection))? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        // Room for every member kept from the start: an order's top-level object keeps ten, which
        // grown one by one reallocated its entries and its index three times each.
        let mut map = Map::with_capacity(self.fields.len());
        while let Some(kept) = access.next_key_seed(KeySeed(self.fields))? {
            match kept {
                Some(i) => {
                    let (name, sub) = &self.fields[i];
                    let value = access.next_value_seed(ProjectSeed(sub))?;
                    // `insert` on a repeated key keeps its first position and the last value, as the
                    // full parse does.
                    map.insert((*name).to_owned(), value);
                }
                None => {
                    access.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Value::Object(map))
    }
}

/// Reads an object key without allocating it: the index of the projected member it names, or `None`
/// for a member to skip. Compared after unescaping, so `"\u0069d"` is the member `id`.
struct KeySeed(&'static [(&'static str, Projection)]);

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Option<usize>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Option<usize>, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = Option<usize>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_str<E>(self, key: &str) -> Result<Option<usize>, E> {
        Ok(Projection::member(self.0, key))
    }
}

/// Checks for connectors' tests (feature `testing`): a mapper must give the same answer for a record
/// parsed whole and parsed under its projection. One copy here so that every connector's test holds
/// its projections to the same standard: on the record itself and on variations of every value in it
/// (each one removed, or replaced by values of every JSON type), which reach the mapper's fallbacks
/// and error messages that a well-formed record never reaches.
#[cfg(feature = "testing")]
pub mod check {
    use serde_json::{json, Value};

    use crate::model::JourneyMapper;

    /// The mapper's answer for `text` under `projection` (`None`: the whole record), errors as text
    /// since an error's message is part of the answer.
    fn answer(
        mapper: &dyn JourneyMapper,
        stream: &str,
        projection: Option<&super::Projection>,
        text: &str,
    ) -> std::result::Result<crate::model::JourneyRows, String> {
        let value = super::parse_record(projection, text).map_err(|e| e.to_string())?;
        mapper.map(stream, &value).map_err(|e| e.to_string())
    }

    /// Panics, naming the record, when `mapper` maps `record` of `stream` differently from its text
    /// parsed under [`projection`](JourneyMapper::projection) and parsed whole.
    pub fn same_rows(mapper: &dyn JourneyMapper, stream: &str, record: &Value) {
        let text = record.to_string();
        let full = answer(mapper, stream, None, &text);
        let projected = answer(mapper, stream, mapper.projection(stream), &text);
        assert_eq!(
            projected,
            full,
            "{} {stream}: the projected record maps differently from the whole one: {text}",
            mapper.source_type()
        );
    }

    /// [`same_rows`] on `record` and on every variation of it ([`for_each_variant`]); the number of
    /// records checked.
    pub fn same_rows_on_variants(
        mapper: &dyn JourneyMapper,
        stream: &str,
        record: &Value,
    ) -> usize {
        same_rows(mapper, stream, record);
        let mut checked = 1;
        for_each_variant(record, &mut |v| {
            same_rows(mapper, stream, &v);
            checked += 1;
        });
        checked
    }

    /// Replacements tried at every place of a record: every JSON type, blanks, and text a mapper
    /// would read as a number, a time or a WooCommerce attribution key.
    fn replacements() -> Vec<Value> {
        vec![
            Value::Null,
            json!(true),
            json!(0),
            json!(-7),
            json!(2.5),
            json!(""),
            json!("  "),
            json!("x"),
            json!("12.50"),
            json!("2025-03-05T14:22:31"),
            json!("_wc_order_attribution_utm_source"),
            json!({}),
            json!([]),
            json!({"k": "v"}),
            json!([1, "a", {"k": null}]),
        ]
    }

    /// Call `f` with every variation of `record` with one value changed: each object member removed,
    /// and each value (members and array elements, at any depth, the record itself excepted) replaced
    /// by each of a set of values of every JSON type. One at a time: a record has thousands.
    pub fn for_each_variant(record: &Value, f: &mut dyn FnMut(Value)) {
        let mut path = Vec::new();
        walk(record, record, &mut path, &replacements(), f);
    }

    /// A step into a value: an object member or an array element.
    #[derive(Clone)]
    enum Step {
        Key(String),
        Index(usize),
    }

    fn at<'v>(root: &'v mut Value, path: &[Step]) -> &'v mut Value {
        path.iter().fold(root, |v, step| match step {
            Step::Key(k) => &mut v[k.as_str()],
            Step::Index(i) => &mut v[*i],
        })
    }

    fn walk(
        root: &Value,
        node: &Value,
        path: &mut Vec<Step>,
        replacements: &[Value],
        f: &mut dyn FnMut(Value),
    ) {
        let children: Vec<(Step, &Value)> = match node {
            Value::Object(map) => map.iter().map(|(k, v)| (Step::Key(k.clone()), v)).collect(),
            Value::Array(items) => items
                .iter()
                .enumerate()
                .map(|(i, v)| (Step::Index(i), v))
                .collect(),
            _ => Vec::new(),
        };
        for (step, child) in children {
            if let Step::Key(k) = &step {
                let mut removed = root.clone();
                if let Some(map) = at(&mut removed, path).as_object_mut() {
                    map.shift_remove(k);
                }
                f(removed);
            }
            path.push(step);
            for r in replacements {
                if r != child {
                    let mut changed = root.clone();
                    *at(&mut changed, path) = r.clone();
                    f(changed);
                }
            }
            walk(root, child, path, replacements, f);
            path.pop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Projection::{self, All};
    use super::*;
    use serde_json::json;

    const ORDER: Projection = Projection::fields(&[
        ("id", All),
        ("total", All),
        ("billing", Projection::fields(&[("email", All)])),
        (
            "line_items",
            Projection::fields(&[("total", All), ("meta", Projection::fields(&[("k", All)]))]),
        ),
    ]);

    /// The projected parse of `text` is the projection of its full parse.
    fn same_as_reference(p: &Projection, text: &str) -> Value {
        let full: Value = serde_json::from_str(text).unwrap();
        let got = p.parse(text).unwrap();
        assert_eq!(got, p.apply(&full), "{text}");
        // Same members in the same order, not only equal maps.
        assert_eq!(got.to_string(), p.apply(&full).to_string(), "{text}");
        got
    }

    #[test]
    fn unlisted_members_are_skipped_listed_ones_kept_in_order() {
        let got = same_as_reference(
            &ORDER,
            r#"{"note":{"deep":[1,{"x":"y"}]},"total":"12.50","id":48213,"status":"processing",
                "billing":{"first_name":"P","email":"p@x.co","phone":null}}"#,
        );
        assert_eq!(
            got.to_string(),
            r#"{"total":"12.50","id":48213,"billing":{"email":"p@x.co"}}"#
        );
    }

    #[test]
    fn arrays_project_every_element_and_keep_their_length() {
        let got = same_as_reference(
            &ORDER,
            r#"{"line_items":[{"total":"1","sku":"a","meta":[{"k":1,"v":2},{"v":3},7]},
                "text", null, 5, [ {"total":"2","name":"n"} ], {}]}"#,
        );
        assert_eq!(
            got,
            json!({"line_items":[{"total":"1","meta":[{"k":1},{},7]},"text",null,5,[{"total":"2"}],{}]})
        );
    }

    #[test]
    fn scalars_in_place_of_objects_are_kept_as_they_are() {
        for text in [
            r#""just a string""#,
            "12.5",
            "-3",
            "18446744073709551615",
            "true",
            "null",
            r#"{"billing":"p@x.co","line_items":{"total":"3","x":1}}"#,
            r#"{"billing":[{"email":"a@b.c","x":1},"s"],"line_items":"none"}"#,
            r#"{"billing":{"email":{"nested":[1,2]},"x":1}}"#,
        ] {
            same_as_reference(&ORDER, text);
        }
        assert_eq!(ORDER.parse("1.5e3").unwrap(), json!(1500.0));
        assert_eq!(
            ORDER.parse(r#"{"billing":7}"#).unwrap(),
            json!({"billing":7})
        );
    }

    #[test]
    fn whole_values_and_numbers_are_the_full_parse_exactly() {
        let text = r#"{"id":[1,-2,3.25,1e-7,0.1,12345678901234567890,{"a":"\u00e9\n"}],
                       "total":{"k":[],"z":{}},"x":0}"#;
        let got = same_as_reference(&ORDER, text);
        let full: Value = serde_json::from_str(text).unwrap();
        assert_eq!(got["id"], full["id"]);
        assert_eq!(got["total"], full["total"]);
        assert_eq!(All.parse(text).unwrap(), full);
    }

    #[test]
    fn nothing_keeps_an_empty_object_and_scalars() {
        assert_eq!(
            Projection::NOTHING
                .parse(r#"{"a":[1,2,{"b":3}],"c":"d"}"#)
                .unwrap(),
            json!({})
        );
        assert_eq!(
            Projection::NOTHING.parse("[{},{\"a\":1},2]").unwrap(),
            json!([{}, {}, 2])
        );
        assert_eq!(Projection::NOTHING.parse(" \"s\" ").unwrap(), json!("s"));
    }

    #[test]
    fn escaped_keys_match_by_their_unescaped_text() {
        let got = same_as_reference(&ORDER, r#"{"\u0069d":1,"t\u006ftal":"2","\"id\"":3}"#);
        assert_eq!(got, json!({"id":1,"total":"2"}));
    }

    #[test]
    fn a_repeated_key_keeps_its_last_value_at_its_first_place() {
        let text =
            r#"{"id":1,"total":"a","id":2,"billing":{"email":"x","email":"y"},"id":{"n":3}}"#;
        let got = same_as_reference(&ORDER, text);
        assert_eq!(
            got.to_string(),
            r#"{"id":{"n":3},"total":"a","billing":{"email":"y"}}"#
        );
        // A skipped key repeated, and a projected object repeated (the last one wins whole).
        let got = same_as_reference(
            &ORDER,
            r#"{"x":1,"billing":{"email":"a","p":1},"x":2,"billing":{"p":2}}"#,
        );
        assert_eq!(got, json!({"billing":{}}));
    }

    #[test]
    fn invalid_json_fails_as_the_full_parse_does() {
        for text in [
            "",
            "   ",
            "{",
            r#"{"id":1"#,
            r#"{"id":1,}"#,
            r#"{"note":[1,2}"#,
            r#"{"note":tru}"#,
            r#"{"note":01}"#,
            r#"{"note":1.}"#,
            r#"{"note":"\q"}"#,
            r#"{"note":"a"#,
            "{\"note\":\"tab\there\"}",
            r#"{"note" 1}"#,
            r#"{note:1}"#,
            r#"{"id":1} trailing"#,
            r#"{"id":1}{"id":2}"#,
            r#"{"billing":{"email":"a",}}"#,
            r#"[1,2"#,
        ] {
            assert!(serde_json::from_str::<Value>(text).is_err(), "{text:?}");
            assert!(ORDER.parse(text).is_err(), "projected parse took {text:?}");
            assert!(
                Projection::NOTHING.parse(text).is_err(),
                "empty projection took {text:?}"
            );
            let full = serde_json::from_str::<Value>(text).unwrap_err().to_string();
            let record = parse_record(Some(&ORDER), text).unwrap_err().to_string();
            assert_eq!(record, full, "{text:?}");
        }
    }

    #[test]
    fn skipped_text_is_checked_for_syntax_only() {
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        for odd in ["1e400", r#""\ud800""#, deep.as_str()] {
            let skipped = format!(r#"{{"note":{odd},"id":1}}"#);
            assert!(serde_json::from_str::<Value>(&skipped).is_err(), "{odd}");
            assert_eq!(ORDER.parse(&skipped).unwrap(), json!({"id":1}), "{odd}");
            let kept = format!(r#"{{"id":{odd}}}"#);
            let full = serde_json::from_str::<Value>(&kept).unwrap_err();
            assert!(ORDER.parse(&kept).is_err(), "{odd}");
            assert_eq!(
                parse_record(Some(&ORDER), &kept).unwrap_err().to_string(),
                full.to_string()
            );
        }
    }

    #[test]
    fn parse_record_without_a_projection_is_the_full_parse() {
        let text = r#"{"a":{"b":[1,2]},"id":3}"#;
        assert_eq!(
            parse_record(None, text).unwrap(),
            serde_json::from_str::<Value>(text).unwrap()
        );
        assert_eq!(parse_record(Some(&ORDER), text).unwrap(), json!({"id":3}));
    }
}
