//! The native export format: JSON Lines. The first line is a header; every other line
//! is one stored item, carried exactly:
//!
//! ```text
//! {"edgestate_export":1,"schema_version":2}
//! {"family":"kv","key":["bot","position"],"version":3,"expires_at_ms":null,"format":1,"payload":"bG9uZw=="}
//! {"family":"user_cards","key":["alice","fp_1"]}
//! {"family":"pending_seq","key":["alice"],"next_seq":7}
//! ```
//!
//! `payload` is the stored body in base64 and `format` its envelope format byte (1
//! bytes, 2 and 4 postcard, 3 JSON text), so records come back byte for byte. Expiry is
//! an absolute instant (ms since the epoch), never a TTL relative to the import.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::raw::{Body, RawRecord};
use super::{b64, Family};
use crate::error::{Error, Result};

/// The version of this format, in the header line.
pub(crate) const FORMAT_VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Header {
    pub(crate) edgestate_export: u32,
    pub(crate) schema_version: u32,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    family: String,
    key: Vec<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    version: Option<u64>,
    // Present (possibly null) on every record line, absent on other lines.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "present_or_null"
    )]
    expires_at_ms: Option<Option<u64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    format: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    payload: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    next_seq: Option<u64>,
}

mod present_or_null {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[allow(clippy::ref_option)]
    pub(super) fn serialize<S: Serializer>(
        v: &Option<Option<u64>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        v.flatten().serialize(s)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Option<u64>>, D::Error> {
        Option::<u64>::deserialize(d).map(Some)
    }
}

/// One item as a line (without the newline).
pub(crate) fn to_line(rec: &RawRecord) -> Result<String> {
    let line = match &rec.body {
        Body::Record {
            version,
            expires_at_ms,
            format,
            payload,
        } => Line {
            family: rec.family.name().to_owned(),
            key: rec.key.clone(),
            version: Some(*version),
            expires_at_ms: Some(*expires_at_ms),
            format: Some(*format),
            payload: Some(b64::encode(payload)),
            next_seq: None,
        },
        Body::Entry => Line {
            family: rec.family.name().to_owned(),
            key: rec.key.clone(),
            version: None,
            expires_at_ms: None,
            format: None,
            payload: None,
            next_seq: None,
        },
        Body::NextSeq(n) => Line {
            family: rec.family.name().to_owned(),
            key: rec.key.clone(),
            version: None,
            expires_at_ms: None,
            format: None,
            payload: None,
            next_seq: Some(*n),
        },
    };
    serde_json::to_string(&line).map_err(|e| Error::Encode {
        what: "export line",
        reason: e.to_string(),
    })
}

/// What one input line holds.
pub(crate) enum Parsed {
    Header(Header),
    Record(RawRecord),
}

/// Parses one line; the error is the reason, the caller adds the line number.
pub(crate) fn parse_line(text: &str) -> std::result::Result<Parsed, String> {
    let value: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    if value.get("edgestate_export").is_some() {
        let header: Header =
            serde_json::from_value(value).map_err(|e| format!("bad header: {e}"))?;
        return Ok(Parsed::Header(header));
    }
    let line: Line = serde_json::from_value(value).map_err(|e| format!("bad record: {e}"))?;
    let family = Family::from_name(&line.family)
        .ok_or_else(|| format!("unknown family `{}`", line.family))?;
    let body = match family {
        Family::UserCards | Family::SnapshotsByTenant => Body::Entry,
        Family::PendingSeq => {
            Body::NextSeq(line.next_seq.ok_or("a pending_seq line needs `next_seq`")?)
        }
        _ => {
            let payload = line.payload.ok_or("a record line needs `payload`")?;
            Body::Record {
                version: line.version.ok_or("a record line needs `version`")?,
                expires_at_ms: line.expires_at_ms.flatten(),
                format: line.format.ok_or("a record line needs `format`")?,
                payload: b64::decode(&payload).ok_or("`payload` is not base64")?,
            }
        }
    };
    Ok(Parsed::Record(RawRecord {
        family,
        key: line.key,
        body,
    }))
}
