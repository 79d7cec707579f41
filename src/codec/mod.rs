//! Bytes in and out: the record envelope, postcard bodies, and packed keys for the
//! expiry index. Only this module calls postcard.

pub mod envelope;
pub(crate) mod keys;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Error, Result};
pub use envelope::{Envelope, EnvelopeError, Header};

/// Serializes an edgestate type with postcard.
pub(crate) fn to_postcard<T: Serialize + ?Sized>(what: &'static str, value: &T) -> Result<Vec<u8>> {
    postcard::to_stdvec(value).map_err(|e| Error::Encode {
        what,
        reason: e.to_string(),
    })
}

/// Deserializes a postcard body; a body that does not parse is reported as corrupt,
/// since it passed its checksum and so was written this way.
pub(crate) fn from_postcard<T: DeserializeOwned>(
    table: &'static str,
    key: &str,
    payload: &[u8],
) -> Result<T> {
    postcard::from_bytes(payload).map_err(|e| Error::Decode {
        table,
        key: key.to_owned(),
        reason: e.to_string(),
    })
}

/// Serializes a value as JSON text.
pub(crate) fn to_json<T: Serialize + ?Sized>(what: &'static str, value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| Error::Encode {
        what,
        reason: e.to_string(),
    })
}

/// Deserializes JSON text.
pub(crate) fn from_json<T: DeserializeOwned>(
    table: &'static str,
    key: &str,
    payload: &[u8],
) -> Result<T> {
    serde_json::from_slice(payload).map_err(|e| Error::Decode {
        table,
        key: key.to_owned(),
        reason: e.to_string(),
    })
}

/// A `serde(with)` adapter for `serde_json::Value` fields (or maps of them). Postcard is
/// not self-describing and cannot deserialize `Value`, so in binary formats the value is
/// stored as JSON text; in human-readable formats (serde_json itself) it stays a plain
/// JSON value, so the types still serialize to the JSON users expect.
pub mod json_text {
    use serde::de::{DeserializeOwned, Error as _};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    /// Serializes `value` as JSON text (binary formats) or as itself (human-readable).
    ///
    /// # Errors
    /// When the value cannot be written as JSON, or the serializer fails.
    pub fn serialize<T: Serialize, S: Serializer>(value: &T, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            return value.serialize(s);
        }
        let text = serde_json::to_string(value).map_err(serde::ser::Error::custom)?;
        s.serialize_str(&text)
    }

    /// Deserializes a value stored by [`serialize`].
    ///
    /// # Errors
    /// When the stored text is not JSON of type `T`.
    pub fn deserialize<'de, T: DeserializeOwned, D: Deserializer<'de>>(
        d: D,
    ) -> Result<T, D::Error> {
        if d.is_human_readable() {
            return T::deserialize(d);
        }
        let text = String::deserialize(d)?;
        serde_json::from_str(&text).map_err(D::Error::custom)
    }
}
