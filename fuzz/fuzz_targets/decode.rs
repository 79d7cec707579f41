//! Fuzzes the record envelope: `decode` and `peek_header` on arbitrary bytes must never
//! panic and must agree with each other; a valid envelope re-encodes to the same bytes;
//! and any fields encoded then decoded come back unchanged, with every single-bit flip
//! of the encoding detected.
//!
//! `cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run decode -- -max_total_time=60`
#![no_main]

use edgestate::codec::envelope::{
    encode, peek_header, Binding, Envelope, EnvelopeError, FORMAT_BYTES, FORMAT_JSON,
    FORMAT_POSTCARD_V1, HEADER_LEN,
};
use libfuzzer_sys::fuzz_target;

/// Where the fuzzed records are taken to be stored.
const AT: Binding<'static> = Binding {
    table: "edgestate.kv",
    key: b"fuzz\0key",
};

fn decode(bytes: &[u8]) -> Result<Envelope<'_>, EnvelopeError> {
    edgestate::codec::envelope::decode(bytes, AT)
}

fn le_u64(bytes: &[u8]) -> u64 {
    let mut buf = [0u8; 8];
    buf.copy_from_slice(bytes);
    u64::from_le_bytes(buf)
}

fuzz_target!(|data: &[u8]| {
    // 1. Arbitrary bytes as a stored record.
    let peeked = peek_header(data);
    match decode(data) {
        Ok(env) => {
            assert_eq!(peeked, Ok(env.header), "peek_header disagrees with decode");
            assert_eq!(env.payload, &data[HEADER_LEN..]);
            // The encoding is canonical: a record that decodes is exactly what encode
            // would write for its fields.
            let bound = data[1] & 0b10 != 0;
            let again = encode(
                env.header.format,
                env.header.version,
                env.header.expires_at_ms,
                bound.then_some(AT),
                env.payload,
            );
            assert_eq!(again, data, "valid envelope does not re-encode to itself");
        }
        // Only the checksum is beyond what the header check sees.
        Err(EnvelopeError::CrcMismatch { .. }) => assert!(peeked.is_ok()),
        Err(e) => assert_eq!(peeked, Err(e), "decode and peek_header fail differently"),
    }

    // 2. The input split into fields: encode then decode round-trips.
    if data.len() >= 18 {
        let format = [FORMAT_BYTES, FORMAT_POSTCARD_V1, FORMAT_JSON][usize::from(data[0]) % 3];
        let expires_at_ms = (data[1] & 1 == 1).then(|| le_u64(&data[10..18]));
        let version = le_u64(&data[2..10]);
        let payload = &data[18..];
        let bound_to = (data[1] & 2 == 2).then_some(AT);
        let bytes = encode(format, version, expires_at_ms, bound_to, payload);
        assert_eq!(bytes.len(), HEADER_LEN + payload.len());
        let env = decode(&bytes).expect("an encoding decodes");
        assert_eq!(env.header.format, format);
        assert_eq!(env.header.version, version);
        assert_eq!(env.header.expires_at_ms, expires_at_ms);
        assert_eq!(env.payload, payload);
        assert_eq!(peek_header(&bytes), Ok(env.header));
        // crc32 catches every single-bit error, wherever it lands.
        let bit = (version as usize) % (bytes.len() * 8);
        let mut damaged = bytes.clone();
        damaged[bit / 8] ^= 1 << (bit % 8);
        assert!(decode(&damaged).is_err(), "bit flip {bit} went unnoticed");
        // A bound record does not verify under a key one bit away (crc32 catches every
        // error burst up to 32 bits, so this cannot collide).
        if bound_to.is_some() {
            let mut key = AT.key.to_vec();
            let bit = (version as usize) % (key.len() * 8);
            key[bit / 8] ^= 1 << (bit % 8);
            let elsewhere = Binding {
                table: AT.table,
                key: &key,
            };
            assert!(
                edgestate::codec::envelope::decode(&bytes, elsewhere).is_err(),
                "a bound record verified under another key"
            );
        }
    }
});
