//! The record envelope: a fixed header that can be read without decoding the body, and a
//! checksum over everything, so that a damaged record is reported instead of misread.
//!
//! ```text
//! offset 0  format        u8   what the payload is (see FORMAT_*)
//! offset 1  flags         u8   bit 0: expires_at_ms is meaningful
//!                              bit 1: the checksum covers the record's table and key
//! offset 2  version       u64  little-endian, 1 on create, +1 per write
//! offset 10 expires_at_ms u64  little-endian, 0 when bit 0 of flags is clear
//! offset 18 crc32         u32  little-endian, over bytes 0..18, then (bit 1 set) the
//!                              table name and the key bytes, each after its u32
//!                              little-endian length, then the payload
//! offset 22 payload
//! ```
//!
//! Binding the checksum to where the record is stored (schema 3 on) turns damage to a
//! key, or a b-tree pointer that leads into another table, into a checksum mismatch
//! instead of a record read under the wrong name. Records written before that (bit 1
//! clear) are still read, checked over the header and payload only.

/// Length of the fixed header.
pub const HEADER_LEN: usize = 22;

/// Payload is opaque caller bytes.
pub const FORMAT_BYTES: u8 = 1;
/// Payload is a postcard-encoded edgestate type whose JSON-valued fields are JSON text
/// (written by schema version 1; still read).
pub const FORMAT_POSTCARD_V1: u8 = 2;
/// Payload is JSON text.
pub const FORMAT_JSON: u8 = 3;
/// Payload is a postcard-encoded edgestate type whose JSON-valued fields are binary
/// trees, read without parsing text (schema version 2 on).
pub const FORMAT_POSTCARD_V2: u8 = 4;
/// The postcard format this build writes.
pub const FORMAT_POSTCARD: u8 = FORMAT_POSTCARD_V2;

const FLAG_HAS_EXPIRY: u8 = 0b0000_0001;
const FLAG_KEY_BOUND: u8 = 0b0000_0010;
const KNOWN_FLAGS: u8 = FLAG_HAS_EXPIRY | FLAG_KEY_BOUND;
const CRC_OFFSET: usize = 18;

/// Why a byte string is not a valid envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvelopeError {
    /// Shorter than the header.
    Truncated {
        /// The length that was found.
        len: usize,
    },
    /// The format byte is not one this build knows.
    UnknownFormat(u8),
    /// Flag bits this build does not know are set.
    UnknownFlags(u8),
    /// The checksum does not match the contents.
    CrcMismatch {
        /// The checksum stored in the header.
        stored: u32,
        /// The checksum of the bytes as found.
        computed: u32,
    },
    /// The expiry field is set while the flag says it is not.
    InconsistentExpiry,
}

impl std::fmt::Display for EnvelopeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EnvelopeError::Truncated { len } => {
                write!(
                    f,
                    "record is {len} bytes, shorter than the {HEADER_LEN}-byte header"
                )
            }
            EnvelopeError::UnknownFormat(b) => write!(f, "unknown record format {b}"),
            EnvelopeError::UnknownFlags(b) => write!(f, "unknown record flags {b:#04x}"),
            EnvelopeError::CrcMismatch { stored, computed } => {
                write!(
                    f,
                    "checksum mismatch (stored {stored:#010x}, computed {computed:#010x})"
                )
            }
            EnvelopeError::InconsistentExpiry => f.write_str("expiry set without its flag"),
        }
    }
}

impl std::error::Error for EnvelopeError {}

/// The header fields of a record, readable without checking the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// What the payload is.
    pub format: u8,
    /// The record's version.
    pub version: u64,
    /// When the record stops being visible, if ever.
    pub expires_at_ms: Option<u64>,
}

impl Header {
    /// True when the record is invisible at `now_ms`.
    pub fn is_expired(&self, now_ms: u64) -> bool {
        self.expires_at_ms.is_some_and(|at| now_ms >= at)
    }
}

/// A decoded, checksum-verified record borrowing its payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Envelope<'a> {
    /// Header fields.
    pub header: Header,
    /// The body bytes.
    pub payload: &'a [u8],
}

fn le_u64(bytes: &[u8], at: usize) -> u64 {
    let mut buf = [0u8; 8];
    buf.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(buf)
}

/// Where a record is stored: its table's name and its key, as the bytes redb stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Binding<'a> {
    /// The table's name.
    pub table: &'a str,
    /// The key's stored bytes.
    pub key: &'a [u8],
}

fn checksum(header_without_crc: &[u8], bound_to: Option<Binding<'_>>, payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(header_without_crc);
    if let Some(binding) = bound_to {
        for part in [binding.table.as_bytes(), binding.key] {
            // Lengths keep (table "ab", key "c") apart from (table "a", key "bc").
            let len = u32::try_from(part.len()).unwrap_or(u32::MAX);
            hasher.update(&len.to_le_bytes());
            hasher.update(part);
        }
    }
    hasher.update(payload);
    hasher.finalize()
}

/// Builds an envelope around `payload`. With `bound_to` (what edgestate writes), the
/// checksum also covers the table and key the record is stored under, and the record
/// only verifies there; `None` writes the older, unbound layout, which is still read.
pub fn encode(
    format: u8,
    version: u64,
    expires_at_ms: Option<u64>,
    bound_to: Option<Binding<'_>>,
    payload: &[u8],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.push(format);
    let mut flags = 0;
    if expires_at_ms.is_some() {
        flags |= FLAG_HAS_EXPIRY;
    }
    if bound_to.is_some() {
        flags |= FLAG_KEY_BOUND;
    }
    out.push(flags);
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(&expires_at_ms.unwrap_or(0).to_le_bytes());
    let crc = checksum(&out, bound_to, payload);
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// Reads the header only (no checksum): for cheap expiry and version checks on paths that
/// will not hand the payload to anyone.
///
/// # Errors
/// [`EnvelopeError`] when the bytes are too short or the header's format or flags are
/// unknown.
pub fn peek_header(bytes: &[u8]) -> Result<Header, EnvelopeError> {
    if bytes.len() < HEADER_LEN {
        return Err(EnvelopeError::Truncated { len: bytes.len() });
    }
    let format = bytes[0];
    if !matches!(
        format,
        FORMAT_BYTES | FORMAT_POSTCARD_V1 | FORMAT_JSON | FORMAT_POSTCARD_V2
    ) {
        return Err(EnvelopeError::UnknownFormat(format));
    }
    let flags = bytes[1];
    if flags & !KNOWN_FLAGS != 0 {
        return Err(EnvelopeError::UnknownFlags(flags));
    }
    let version = le_u64(bytes, 2);
    let raw_expiry = le_u64(bytes, 10);
    let expires_at_ms = if flags & FLAG_HAS_EXPIRY != 0 {
        Some(raw_expiry)
    } else if raw_expiry != 0 {
        return Err(EnvelopeError::InconsistentExpiry);
    } else {
        None
    };
    Ok(Header {
        format,
        version,
        expires_at_ms,
    })
}

/// Decodes and verifies a whole record found under `found_at`. A record bound to its
/// table and key verifies only there; an unbound one (written before schema 3) is
/// checked over its header and payload. Never panics, whatever `bytes` holds.
///
/// # Errors
/// [`EnvelopeError`] when the bytes are truncated, of an unknown format or flags, or
/// fail the checksum (for a bound record, also when found under another table or key).
pub fn decode<'b>(bytes: &'b [u8], found_at: Binding<'_>) -> Result<Envelope<'b>, EnvelopeError> {
    let header = peek_header(bytes)?;
    let mut crc_bytes = [0u8; 4];
    crc_bytes.copy_from_slice(&bytes[CRC_OFFSET..HEADER_LEN]);
    let stored = u32::from_le_bytes(crc_bytes);
    let payload = &bytes[HEADER_LEN..];
    let bound_to = (bytes[1] & FLAG_KEY_BOUND != 0).then_some(found_at);
    let computed = checksum(&bytes[..CRC_OFFSET], bound_to, payload);
    if stored != computed {
        return Err(EnvelopeError::CrcMismatch { stored, computed });
    }
    Ok(Envelope { header, payload })
}

#[cfg(test)]
mod tests {
    use super::*;

    const AT: Binding<'static> = Binding {
        table: "edgestate.kv",
        key: b"ns\0key",
    };

    fn sample() -> Vec<u8> {
        encode(FORMAT_BYTES, 7, Some(1_234), Some(AT), b"hello")
    }

    fn decode(bytes: &[u8]) -> Result<Envelope<'_>, EnvelopeError> {
        super::decode(bytes, AT)
    }

    #[test]
    fn a_bound_record_verifies_only_under_its_table_and_key() {
        let bytes = sample();
        assert!(decode(&bytes).is_ok());
        let elsewhere = [
            Binding {
                table: "edgestate.kv",
                key: b"ns\0kez",
            },
            Binding {
                table: "edgestate.kv",
                key: b"ns\0ke",
            },
            Binding {
                table: "edgestate.contexts",
                key: AT.key,
            },
            // The same bytes split differently between table and key.
            Binding {
                table: "edgestate.kvn",
                key: b"s\0key",
            },
        ];
        for at in elsewhere {
            assert!(
                matches!(
                    super::decode(&bytes, at),
                    Err(EnvelopeError::CrcMismatch { .. })
                ),
                "verified under {at:?}"
            );
        }
    }

    #[test]
    fn an_unbound_record_still_verifies_anywhere() {
        let bytes = encode(FORMAT_BYTES, 3, None, None, b"written by schema 2");
        assert_eq!(bytes[1], 0, "the schema-2 layout, byte for byte");
        let at = Binding {
            table: "edgestate.contexts",
            key: b"anyone",
        };
        assert_eq!(
            super::decode(&bytes, at).expect("valid").payload,
            b"written by schema 2"
        );
        // Clearing the bound flag of a bound record breaks its checksum.
        let mut unflagged = sample();
        unflagged[1] &= !FLAG_KEY_BOUND;
        assert!(matches!(
            decode(&unflagged),
            Err(EnvelopeError::CrcMismatch { .. })
        ));
    }

    #[test]
    fn round_trip() {
        let bytes = sample();
        let env = decode(&bytes).expect("valid");
        assert_eq!(env.header.version, 7);
        assert_eq!(env.header.expires_at_ms, Some(1_234));
        assert_eq!(env.payload, b"hello");
        let no_ttl = encode(FORMAT_JSON, 1, None, Some(AT), b"");
        assert_eq!(decode(&no_ttl).expect("valid").header.expires_at_ms, None);
    }

    #[test]
    fn truncated_inputs_are_errors() {
        let bytes = sample();
        for len in 0..HEADER_LEN {
            assert_eq!(decode(&bytes[..len]), Err(EnvelopeError::Truncated { len }));
        }
        // Cutting the payload breaks the checksum.
        assert!(matches!(
            decode(&bytes[..bytes.len() - 1]),
            Err(EnvelopeError::CrcMismatch { .. })
        ));
    }

    #[test]
    fn every_single_bit_flip_is_detected() {
        let bytes = sample();
        for i in 0..bytes.len() * 8 {
            let mut damaged = bytes.clone();
            damaged[i / 8] ^= 1 << (i % 8);
            assert!(decode(&damaged).is_err(), "flip of bit {i} went unnoticed");
        }
    }

    #[test]
    fn wrong_format_and_flags() {
        let mut bytes = sample();
        bytes[0] = 99;
        assert_eq!(decode(&bytes), Err(EnvelopeError::UnknownFormat(99)));
        let mut bytes = sample();
        bytes[1] = 0x80 | FLAG_HAS_EXPIRY;
        assert!(matches!(
            decode(&bytes),
            Err(EnvelopeError::UnknownFlags(_))
        ));
        let mut bytes = encode(FORMAT_BYTES, 1, None, Some(AT), b"x");
        bytes[10] = 1;
        assert_eq!(decode(&bytes), Err(EnvelopeError::InconsistentExpiry));
    }

    #[test]
    fn wrong_crc() {
        let mut bytes = sample();
        bytes[CRC_OFFSET] ^= 0xff;
        assert!(matches!(
            decode(&bytes),
            Err(EnvelopeError::CrcMismatch { .. })
        ));
    }

    #[test]
    fn expiry_is_inclusive() {
        let h = peek_header(&sample()).expect("valid");
        assert!(!h.is_expired(1_233));
        assert!(h.is_expired(1_234));
    }
}
