//! A `serde(with)` adapter for `serde_json::Value` fields (or maps and lists of them).
//!
//! Postcard is not self-describing and cannot deserialize a `Value` as such, so in binary
//! formats the value is written as a small tagged tree (null, bool, u64, i64, f64,
//! string, array, object), read back without parsing any text. Schema version 1 stored
//! JSON text instead; records of that format ([`FORMAT_POSTCARD_V1`]) are read through
//! `legacy_text`, which the record decoder turns on for them. In human-readable formats
//! (serde_json itself) the value stays a plain JSON value, so the types serialize to the
//! JSON users expect.
//!
//! [`FORMAT_POSTCARD_V1`]: super::envelope::FORMAT_POSTCARD_V1

use std::cell::Cell;
use std::fmt;

use serde::de::{self, DeserializeOwned, DeserializeSeed, EnumAccess, VariantAccess, Visitor};
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Number, Value};

thread_local! {
    /// Set while a schema-1 body (JSON values as text) is being decoded.
    static LEGACY_TEXT: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` with JSON-valued fields read as schema 1 wrote them (JSON text).
pub(crate) fn legacy_text<R>(f: impl FnOnce() -> R) -> R {
    struct Reset(bool);
    impl Drop for Reset {
        fn drop(&mut self) {
            LEGACY_TEXT.with(|l| l.set(self.0));
        }
    }
    let _reset = Reset(LEGACY_TEXT.with(|l| l.replace(true)));
    f()
}

/// Serializes `value`: a binary tree in binary formats, itself in human-readable ones.
///
/// # Errors
/// When the value does not serialize to JSON (a map with non-string keys), or the
/// serializer fails.
pub fn serialize<T: Serialize, S: Serializer>(value: &T, s: S) -> Result<S::Ok, S::Error> {
    if s.is_human_readable() {
        return value.serialize(s);
    }
    let tree = serde_json::to_value(value).map_err(serde::ser::Error::custom)?;
    Tree(&tree).serialize(s)
}

/// Deserializes a value written by [`serialize`] (or by schema 1, as JSON text).
///
/// # Errors
/// When the stored bytes are not a value of type `T`.
pub fn deserialize<'de, T: DeserializeOwned, D: Deserializer<'de>>(d: D) -> Result<T, D::Error> {
    if d.is_human_readable() {
        return T::deserialize(d);
    }
    let tree = if LEGACY_TEXT.with(Cell::get) {
        let text = String::deserialize(d)?;
        serde_json::from_str(&text).map_err(de::Error::custom)?
    } else {
        OwnedTree::deserialize(d)?.0
    };
    T::deserialize(tree).map_err(de::Error::custom)
}

const NAME: &str = "JsonValue";
const VARIANTS: &[&str] = &[
    "Null", "Bool", "U64", "I64", "F64", "String", "Array", "Object",
];

/// A JSON value written as a tagged tree.
struct Tree<'a>(&'a Value);

impl Serialize for Tree<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Value::Null => s.serialize_unit_variant(NAME, 0, "Null"),
            Value::Bool(b) => s.serialize_newtype_variant(NAME, 1, "Bool", b),
            Value::Number(n) => match (n.as_u64(), n.as_i64(), n.as_f64()) {
                (Some(u), _, _) => s.serialize_newtype_variant(NAME, 2, "U64", &u),
                (None, Some(i), _) => s.serialize_newtype_variant(NAME, 3, "I64", &i),
                (None, None, Some(f)) => s.serialize_newtype_variant(NAME, 4, "F64", &f),
                (None, None, None) => Err(serde::ser::Error::custom("unrepresentable number")),
            },
            Value::String(text) => s.serialize_newtype_variant(NAME, 5, "String", text),
            Value::Array(items) => s.serialize_newtype_variant(NAME, 6, "Array", &Items(items)),
            Value::Object(map) => s.serialize_newtype_variant(NAME, 7, "Object", &Entries(map)),
        }
    }
}

struct Items<'a>(&'a [Value]);

impl Serialize for Items<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for item in self.0 {
            seq.serialize_element(&Tree(item))?;
        }
        seq.end()
    }
}

struct Entries<'a>(&'a Map<String, Value>);

impl Serialize for Entries<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in self.0 {
            map.serialize_entry(k, &Tree(v))?;
        }
        map.end()
    }
}

/// A JSON value read back from a tagged tree.
struct OwnedTree(Value);

impl<'de> Deserialize<'de> for OwnedTree {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_enum(NAME, VARIANTS, TreeVisitor)
            .map(OwnedTree)
    }
}

struct TreeVisitor;

impl<'de> Visitor<'de> for TreeVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value tree")
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<Value, A::Error> {
        let (tag, variant) = data.variant_seed(Tag)?;
        Ok(match tag {
            0 => {
                variant.unit_variant()?;
                Value::Null
            }
            1 => Value::Bool(variant.newtype_variant()?),
            2 => Value::Number(variant.newtype_variant::<u64>()?.into()),
            3 => Value::Number(variant.newtype_variant::<i64>()?.into()),
            4 => {
                let f: f64 = variant.newtype_variant()?;
                Number::from_f64(f).map_or(Value::Null, Value::Number)
            }
            5 => Value::String(variant.newtype_variant()?),
            6 => Value::Array(variant.newtype_variant::<OwnedItems>()?.0),
            _ => Value::Object(variant.newtype_variant::<OwnedEntries>()?.0),
        })
    }
}

/// A variant index, refusing the ones the tree does not have.
struct Tag;

impl<'de> DeserializeSeed<'de> for Tag {
    type Value = u32;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<u32, D::Error> {
        let tag = u32::deserialize(d)?;
        if tag < 8 {
            Ok(tag)
        } else {
            Err(de::Error::custom(format!("unknown JSON value tag {tag}")))
        }
    }
}

struct OwnedItems(Vec<Value>);

impl<'de> Deserialize<'de> for OwnedItems {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ItemsVisitor;
        impl<'de> Visitor<'de> for ItemsVisitor {
            type Value = Vec<Value>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of JSON values")
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<Value>, A::Error> {
                // The hint comes from the file: cap it so a damaged length cannot
                // allocate more than the body could hold.
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
                while let Some(OwnedTree(v)) = seq.next_element()? {
                    out.push(v);
                }
                Ok(out)
            }
        }
        d.deserialize_seq(ItemsVisitor).map(OwnedItems)
    }
}

struct OwnedEntries(Map<String, Value>);

impl<'de> Deserialize<'de> for OwnedEntries {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct EntriesVisitor;
        impl<'de> Visitor<'de> for EntriesVisitor {
            type Value = Map<String, Value>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of JSON values")
            }
            fn visit_map<A: de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Map<String, Value>, A::Error> {
                let mut out = Map::new();
                while let Some((k, OwnedTree(v))) = map.next_entry::<String, OwnedTree>()? {
                    out.insert(k, v);
                }
                Ok(out)
            }
        }
        d.deserialize_map(EntriesVisitor).map(OwnedEntries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Doc {
        #[serde(with = "super")]
        memory: std::collections::HashMap<String, Value>,
        after: u32,
    }

    fn doc() -> Doc {
        let memory = json!({
            "null": null, "t": true, "u": 7, "i": -7, "f": 1.5, "s": "text",
            "list": [1, "two", [3], {"four": 4}], "deep": {"a": {"b": {"c": []}}},
            "big": u64::MAX, "small": i64::MIN
        });
        Doc {
            memory: serde_json::from_value(memory).unwrap(),
            after: 99,
        }
    }

    #[test]
    fn round_trips_every_kind_of_value_through_postcard() {
        let bytes = postcard::to_stdvec(&doc()).unwrap();
        assert_eq!(postcard::from_bytes::<Doc>(&bytes).unwrap(), doc());
    }

    #[test]
    fn reads_schema_1_text() {
        #[derive(Serialize)]
        struct Legacy {
            memory: String,
            after: u32,
        }
        let legacy = Legacy {
            memory: serde_json::to_string(&doc().memory).unwrap(),
            after: 99,
        };
        let bytes = postcard::to_stdvec(&legacy).unwrap();
        assert!(postcard::from_bytes::<Doc>(&bytes).is_err());
        let read = legacy_text(|| postcard::from_bytes::<Doc>(&bytes)).unwrap();
        assert_eq!(read, doc());
        // The mode ends with the call.
        assert!(!LEGACY_TEXT.with(Cell::get));
    }

    #[test]
    fn stays_plain_json_in_json() {
        let text = serde_json::to_string(&doc()).unwrap();
        assert!(text.contains("\"deep\":{\"a\""));
        assert_eq!(serde_json::from_str::<Doc>(&text).unwrap(), doc());
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let good = postcard::to_stdvec(&doc()).unwrap();
        for cut in 0..good.len() {
            let _ = postcard::from_bytes::<Doc>(&good[..cut]);
        }
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0xFF;
            let _ = postcard::from_bytes::<Doc>(&bad);
        }
    }
}
