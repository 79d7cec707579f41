//! Packs a primary key into bytes for the expiry index, and back. Each part is a
//! little-endian `u32` length followed by its bytes. Unpacking is fallible: the index
//! is on disk and may be damaged.

/// Packs key parts.
pub(crate) fn pack(parts: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::with_capacity(parts.iter().map(|p| p.len() + 4).sum());
    for part in parts {
        // Keys are bounded far below u32::MAX by `limits`, so the length always fits.
        let len = u32::try_from(part.len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(part);
    }
    out
}

/// Unpacks exactly `N` parts, or `None` if the bytes are not a packing of `N` parts.
pub(crate) fn unpack<const N: usize>(bytes: &[u8]) -> Option<[&[u8]; N]> {
    let mut parts: [&[u8]; N] = [&[]; N];
    let mut rest = bytes;
    for slot in parts.iter_mut() {
        let (len_bytes, tail) = rest.split_first_chunk::<4>()?;
        let len = usize::try_from(u32::from_le_bytes(*len_bytes)).ok()?;
        if tail.len() < len {
            return None;
        }
        let (part, tail) = tail.split_at(len);
        *slot = part;
        rest = tail;
    }
    rest.is_empty().then_some(parts)
}

/// Unpacks one UTF-8 string part.
fn unpack_str(bytes: &[u8]) -> Option<&str> {
    let [a] = unpack::<1>(bytes)?;
    std::str::from_utf8(a).ok()
}

/// Unpacks two UTF-8 string parts.
fn unpack_str_str(bytes: &[u8]) -> Option<(&str, &str)> {
    let [a, b] = unpack::<2>(bytes)?;
    Some((std::str::from_utf8(a).ok()?, std::str::from_utf8(b).ok()?))
}

/// Unpacks a UTF-8 string and a big-endian u64.
fn unpack_str_u64(bytes: &[u8]) -> Option<(&str, u64)> {
    let [a, b] = unpack::<2>(bytes)?;
    let n = u64::from_be_bytes(b.try_into().ok()?);
    Some((std::str::from_utf8(a).ok()?, n))
}

/// The key shapes of edgestate's record tables: how a key is shown in errors and packed
/// into the expiry index. One impl per shape, so every table of a shape agrees.
pub(crate) trait KeyShape: redb::Key + 'static {
    /// The key as errors show it (`user`, `namespace/key`, `user#seq`).
    fn show(key: &Self::SelfType<'_>) -> String;
    /// The key packed for the expiry index.
    fn pack(key: &Self::SelfType<'_>) -> Vec<u8>;
    /// A packed key back; `None` when the bytes are damaged.
    fn unpack(packed: &[u8]) -> Option<Self::SelfType<'_>>;
}

impl KeyShape for &'static str {
    fn show(key: &&str) -> String {
        (*key).to_owned()
    }
    fn pack(key: &&str) -> Vec<u8> {
        pack(&[key.as_bytes()])
    }
    fn unpack(packed: &[u8]) -> Option<&str> {
        unpack_str(packed)
    }
}

impl KeyShape for (&'static str, &'static str) {
    fn show(key: &(&str, &str)) -> String {
        format!("{}/{}", key.0, key.1)
    }
    fn pack(key: &(&str, &str)) -> Vec<u8> {
        pack(&[key.0.as_bytes(), key.1.as_bytes()])
    }
    fn unpack(packed: &[u8]) -> Option<(&str, &str)> {
        unpack_str_str(packed)
    }
}

impl KeyShape for (&'static str, u64) {
    fn show(key: &(&str, u64)) -> String {
        format!("{}#{}", key.0, key.1)
    }
    fn pack(key: &(&str, u64)) -> Vec<u8> {
        pack(&[key.0.as_bytes(), &key.1.to_be_bytes()])
    }
    fn unpack(packed: &[u8]) -> Option<(&str, u64)> {
        unpack_str_u64(packed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let p = pack(&[b"ns", b"key"]);
        assert_eq!(unpack_str_str(&p), Some(("ns", "key")));
        let p = pack(&[b"user", &42u64.to_be_bytes()]);
        assert_eq!(unpack_str_u64(&p), Some(("user", 42)));
        assert_eq!(unpack_str(&pack(&[b""])), Some(""));
    }

    #[test]
    fn garbage_is_none_not_panic() {
        for bytes in [
            &b""[..],
            b"\x01",
            b"\xff\xff\xff\xff",
            b"\x01\x00\x00\x00ab",
        ] {
            assert!(unpack_str(bytes).is_none() || bytes.is_empty());
            assert!(unpack_str_str(bytes).is_none());
            assert!(unpack_str_u64(bytes).is_none());
        }
    }
}
