//! Input limits, checked before anything is written. Every limit is documented here so a
//! caller can validate ahead of time.

use crate::error::{Error, Result};

/// Longest key (user id, fingerprint, transaction id, KV key, ...) in bytes.
pub const MAX_KEY_LEN: usize = 1024;
/// Longest KV namespace in bytes.
pub const MAX_NAMESPACE_LEN: usize = 256;
/// Largest value or encoded record body in bytes (64 MiB).
pub const MAX_VALUE_LEN: usize = 64 * 1024 * 1024;

/// Refuses an empty key or one longer than [`MAX_KEY_LEN`].
pub(crate) fn check_key(field: &str, key: &str) -> Result<()> {
    check_len(field, key, MAX_KEY_LEN)
}

/// Refuses an empty namespace or one longer than [`MAX_NAMESPACE_LEN`].
pub(crate) fn check_namespace(field: &str, ns: &str) -> Result<()> {
    check_len(field, ns, MAX_NAMESPACE_LEN)
}

fn check_len(field: &str, s: &str, max: usize) -> Result<()> {
    if s.is_empty() {
        return Err(Error::invalid(field, "must not be empty"));
    }
    if s.len() > max {
        return Err(Error::invalid(
            field,
            format!("is {} bytes, more than the maximum of {max}", s.len()),
        ));
    }
    Ok(())
}

/// Refuses a value longer than [`MAX_VALUE_LEN`].
pub(crate) fn check_value_len(field: &str, len: usize) -> Result<()> {
    if len > MAX_VALUE_LEN {
        return Err(Error::invalid(
            field,
            format!("is {len} bytes, more than the maximum of {MAX_VALUE_LEN}"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_enforced_with_the_field_named() {
        assert!(check_key("user", "u").is_ok());
        let err = check_key("user", "").expect_err("empty");
        assert!(err.to_string().contains("`user`"));
        assert!(check_key("k", &"x".repeat(MAX_KEY_LEN)).is_ok());
        assert!(check_key("k", &"x".repeat(MAX_KEY_LEN + 1)).is_err());
        assert!(check_namespace("ns", &"x".repeat(MAX_NAMESPACE_LEN + 1)).is_err());
        assert!(check_value_len("v", MAX_VALUE_LEN + 1).is_err());
    }
}
