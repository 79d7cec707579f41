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

/// Deserializes the postcard body of a record of `format` ([`envelope::FORMAT_POSTCARD_V1`]
/// or [`envelope::FORMAT_POSTCARD_V2`]); any other format is a decode error.
pub(crate) fn from_postcard_record<T: DeserializeOwned>(
    table: &'static str,
    key: &str,
    format: u8,
    payload: &[u8],
) -> Result<T> {
    match format {
        envelope::FORMAT_POSTCARD_V2 => from_postcard(table, key, payload),
        envelope::FORMAT_POSTCARD_V1 => {
            json_value::legacy_text(|| from_postcard(table, key, payload))
        }
        other => Err(Error::Decode {
            table,
            key: key.to_owned(),
            reason: format!("record format {other} is not a postcard body"),
        }),
    }
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

pub mod json_value;
