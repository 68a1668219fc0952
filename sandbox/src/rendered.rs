//! [`Rendered`]: a platform's records, kept compactly and made JSON values only when read as values.

use std::fmt;
use std::ops::Deref;
use std::sync::{Arc, OnceLock};

use serde_json::Value;

/// Renders every record of a collection, in order.
type RenderAll = Arc<dyn Fn() -> Vec<Value> + Send + Sync>;

/// A collection of records exactly as the API serves them, rendered as JSON values the first time
/// they are read as values (and kept from then on).
///
/// Why: a platform holds its records compactly (numbers and ids, or each record's JSON text) and
/// renders only the page it serves; a scale-10 sandbox holding every record as a
/// [`serde_json::Value`] took most of `growthflow demo`'s memory. Tests still read the records as
/// values to compare them with what a connector synced: for them this derefs to `Vec<Value>`,
/// rendered by the same code that renders the pages served, so it is the same JSON. `len` and
/// `is_empty` answer without rendering.
///
/// Not `Clone` on purpose: `records.clone()` is the `Vec<Value>` of the records, as it was when the
/// platforms held them as values.
pub struct Rendered {
    len: usize,
    render: RenderAll,
    values: OnceLock<Vec<Value>>,
}

impl Rendered {
    /// `len` records that `render` makes, in order, when first read as values.
    pub(crate) fn new(len: usize, render: impl Fn() -> Vec<Value> + Send + Sync + 'static) -> Self {
        Rendered {
            len,
            render: Arc::new(render),
            values: OnceLock::new(),
        }
    }

    /// The same records, not rendered yet (for the platforms' `Clone`).
    pub(crate) fn share(&self) -> Rendered {
        Rendered {
            len: self.len,
            render: self.render.clone(),
            values: OnceLock::new(),
        }
    }

    /// The number of records (without rendering them).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are no records (without rendering them).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether the records were rendered as values already (a server that only served pages never
    /// renders them all).
    pub fn is_rendered(&self) -> bool {
        self.values.get().is_some()
    }
}

impl Deref for Rendered {
    type Target = Vec<Value>;

    fn deref(&self) -> &Vec<Value> {
        self.values.get_or_init(|| {
            let values = (self.render)();
            debug_assert_eq!(values.len(), self.len);
            values
        })
    }
}

impl fmt::Debug for Rendered {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.values.get() {
            Some(values) => values.fmt(f),
            None => write!(f, "Rendered({} records)", self.len),
        }
    }
}

impl PartialEq for Rendered {
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len && **self == **other
    }
}

impl PartialEq<Vec<Value>> for Rendered {
    fn eq(&self, other: &Vec<Value>) -> bool {
        **self == *other
    }
}

impl PartialEq<Rendered> for Vec<Value> {
    fn eq(&self, other: &Rendered) -> bool {
        *self == **other
    }
}

impl serde::Serialize for Rendered {
    /// As the JSON array of the records.
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        (**self).serialize(serializer)
    }
}

impl<'a> IntoIterator for &'a Rendered {
    type Item = &'a Value;
    type IntoIter = std::slice::Iter<'a, Value>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn renders_once_when_read_and_not_for_its_length() {
        let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = calls.clone();
        let r = Rendered::new(2, move || {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            vec![json!({"id": 1}), json!({"id": 2})]
        });
        assert_eq!((r.len(), r.is_empty(), r.is_rendered()), (2, false, false));
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 0);
        assert_eq!(r[1]["id"], 2);
        assert_eq!(vec![json!({"id": 1}), json!({"id": 2})], r);
        let copy: Vec<Value> = r.clone();
        assert_eq!(copy, r);
        assert!(!r.share().is_rendered());
        let ids: Vec<&Value> = (&r).into_iter().map(|v| &v["id"]).collect();
        assert_eq!(ids, [&json!(1), &json!(2)]);
        assert!(r.is_rendered());
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1);
    }
}
