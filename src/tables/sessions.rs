//! Session keys: one active, TTL-bound session per user, whose `max_actions` are spent
//! one at a time by an atomic [`use_action`](Sessions::use_action).
//!
//! A stored session expires at the EARLIER of two instants: the session's own
//! `expires_at_s` (Unix seconds, as in the seed) and the transaction's now plus
//! [`StoreConfig::session_ttl`](crate::StoreConfig::session_ttl). The store-wide TTL is a
//! ceiling set by the operator; a session key itself may well be shorter-lived, and once
//! it has expired there is nothing left to use it for. An expired session reads as `None`
//! at once, whether or not a sweep has removed it yet.

use serde::{Deserialize, Serialize};

use super::record::{self, Slot, Stored};
use super::{handle, Expect};
use crate::access::{Access, WriteAccess};
use crate::clock::expiry_after;
use crate::codec::{self, envelope};
use crate::error::{Error, Result, SessionRefusal};
use crate::limits;
use crate::schema::SESSIONS;

/// A user's session key, as the agent SDK seed stores it.
///
/// `Default` gives an empty session that expired at the epoch (no scopes, no actions):
/// fill in at least `expires_at_s` and `max_actions` with struct update syntax.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionKeyData {
    /// Public key of the session key pair.
    pub key_pubkey: String,
    /// Public key of the vault the session acts for.
    pub vault_pubkey: String,
    /// What the session may do.
    pub scopes: Vec<String>,
    /// When the session stops being valid, in Unix seconds. A session is expired once
    /// `now >= expires_at_s`. Serialized as `expires_at`.
    #[serde(rename = "expires_at")]
    pub expires_at_s: i64,
    /// When the session was created, in Unix seconds (informational). Serialized as
    /// `created_at`.
    #[serde(rename = "created_at")]
    pub created_at_s: i64,
    /// How many actions the session may take in all.
    pub max_actions: u32,
    /// How many actions it has taken.
    pub actions_used: u32,
}

impl SessionKeyData {
    /// Actions still available (0 when exhausted).
    pub fn remaining_actions(&self) -> u32 {
        self.max_actions.saturating_sub(self.actions_used)
    }

    /// The session's own expiry in ms since the epoch; `None` if it lies at or before
    /// the epoch (the session was never valid).
    fn expires_at_ms(&self) -> Option<u64> {
        u64::try_from(self.expires_at_s)
            .ok()
            .filter(|s| *s > 0)
            .map(|s| s.saturating_mul(1000))
    }

    /// Whether the session's own `expires_at_s` has passed at `now_ms`.
    fn is_expired_at(&self, now_ms: u64) -> bool {
        self.expires_at_ms().is_none_or(|at| now_ms >= at)
    }
}

/// The session in a live record, or `None` when its own `expires_at_s` has passed at
/// `now` (the record's expiry already covers it; checking the body as well keeps the
/// seed's rule even for a record whose header says otherwise).
fn live_session(user: &str, stored: &Stored, now: u64) -> Result<Option<SessionKeyData>> {
    let session: SessionKeyData = stored.decode(SESSIONS.name, user)?;
    Ok((!session.is_expired_at(now)).then_some(session))
}

handle! {
    /// The per-user session keys, from `tx.sessions()`, `read.sessions()` or
    /// `store.sessions()`. On a [`Store`](crate::Store) each call is its own
    /// transaction; inside [`Store::write`](crate::Store::write) reads see the
    /// transaction's own writes.
    ///
    /// ```
    /// use edgestate::{Error, ManualClock, SessionKeyData, SessionRefusal, Store};
    /// use std::time::Duration;
    ///
    /// # fn main() -> edgestate::Result<()> {
    /// let clock = ManualClock::new(1_700_000_000_000);
    /// let store = Store::builder().clock(clock.clone()).in_memory()?;
    /// let sessions = store.sessions();
    /// sessions.put(
    ///     "alice",
    ///     &SessionKeyData {
    ///         key_pubkey: "sk-pub".into(),
    ///         vault_pubkey: "vault".into(),
    ///         scopes: vec!["capture".into()],
    ///         expires_at_s: 1_700_000_000 + 3600, // one hour from the clock's now
    ///         created_at_s: 1_700_000_000,
    ///         max_actions: 2,
    ///         ..SessionKeyData::default()
    ///     },
    /// )?;
    /// assert_eq!(sessions.use_action("alice")?.actions_used, 1);
    ///
    /// // Inside a transaction, together with other families: all or nothing.
    /// store.write(|tx| {
    ///     let session = tx.sessions().use_action("alice")?;
    ///     assert_eq!(session.remaining_actions(), 0);
    ///     Ok::<_, edgestate::Error>(())
    /// })?;
    /// assert!(matches!(
    ///     sessions.use_action("alice"),
    ///     Err(Error::SessionRefused { reason: SessionRefusal::Exhausted, .. })
    /// ));
    ///
    /// clock.advance(Duration::from_secs(3600));
    /// assert!(sessions.get("alice")?.is_none()); // expired: gone at once
    /// assert!(!sessions.delete("alice")?); // nothing live to delete
    /// # Ok(())
    /// # }
    /// ```
    Sessions
}

impl<A: Access> Sessions<'_, A> {
    /// The user's live session, or `None` if there is none or it has expired.
    ///
    /// # Errors
    /// [`InvalidInput`](crate::Error::InvalidInput) for an empty or oversized user;
    /// [`Corrupt`](crate::Error::Corrupt) or [`Decode`](crate::Error::Decode) for a
    /// damaged record; storage errors.
    pub fn get(&self, user: &str) -> Result<Option<SessionKeyData>> {
        limits::check_key("user", user)?;
        self.src
            .with_reader(|r| match record::get(r, &SESSIONS, user)? {
                Some(stored) => live_session(user, &stored, r.now_ms()),
                None => Ok(None),
            })
    }
}

impl<A: WriteAccess> Sessions<'_, A> {
    /// Stores `session` as the user's one active session, replacing any other. It expires
    /// at the earlier of `session.expires_at_s` and now + `session_ttl` (see the module
    /// docs).
    ///
    /// # Errors
    /// [`InvalidInput`](crate::Error::InvalidInput) for a bad user, and (field
    /// `expires_at_s`) for a session that has already expired at the transaction's now,
    /// rather than silently storing something unreadable (any session already stored is
    /// then left in place); [`Encode`](crate::Error::Encode) when the session does not
    /// serialize; [`Corrupt`](crate::Error::Corrupt) when the record it replaces is
    /// damaged; storage and commit errors.
    pub fn put(&self, user: &str, session: &SessionKeyData) -> Result<()> {
        limits::check_key("user", user)?;
        let payload = codec::to_postcard("session", session)?;
        limits::check_value_len("value", payload.len())?;
        self.src.with_writer(|tx| {
            let now = tx.now_ms();
            let own_expiry = session
                .expires_at_ms()
                .filter(|at| *at > now)
                .ok_or_else(|| {
                    Error::invalid(
                        "expires_at_s",
                        format!(
                            "session expired at {}s, before the store's now ({now} ms)",
                            session.expires_at_s
                        ),
                    )
                })?;
            let expires_at_ms = own_expiry.min(expiry_after(now, tx.config().session_ttl));
            record::put(
                tx,
                SESSIONS,
                user,
                envelope::FORMAT_POSTCARD,
                &payload,
                Some(expires_at_ms),
                Expect::Any,
            )?;
            Ok(())
        })
    }

    /// Deletes the user's session (live or expired). Returns whether a live session was
    /// removed.
    ///
    /// # Errors
    /// [`InvalidInput`](crate::Error::InvalidInput) for a bad user; storage and commit
    /// errors.
    pub fn delete(&self, user: &str) -> Result<bool> {
        limits::check_key("user", user)?;
        self.src
            .with_writer(|tx| Ok(record::delete(tx, SESSIONS, user)?.is_some()))
    }

    /// Spends one action of the user's session and returns the session as updated. The
    /// session keeps its expiry.
    ///
    /// # Errors
    /// [`SessionRefused`](crate::Error::SessionRefused) when there is no session
    /// ([`SessionRefusal::Missing`], which is also what a swept-away expired session
    /// gives), when it has expired ([`SessionRefusal::Expired`]), or when
    /// `actions_used >= max_actions` ([`SessionRefusal::Exhausted`]); a refusal writes
    /// nothing. [`InvalidInput`](crate::Error::InvalidInput) for a bad user;
    /// [`Corrupt`](crate::Error::Corrupt) or [`Decode`](crate::Error::Decode) for a
    /// damaged record; storage and commit errors.
    pub fn use_action(&self, user: &str) -> Result<SessionKeyData> {
        limits::check_key("user", user)?;
        let refuse = |reason| Error::SessionRefused {
            user: user.to_owned(),
            reason,
        };
        self.src.with_writer(|tx| {
            let slot = Slot::open(tx, SESSIONS, user)?;
            let (stored, mut session) = match slot.live() {
                Some(stored) => match live_session(user, stored, tx.now_ms())? {
                    Some(session) => (stored, session),
                    None => return Err(refuse(SessionRefusal::Expired)),
                },
                None => {
                    return Err(refuse(if slot.is_stored() {
                        SessionRefusal::Expired
                    } else {
                        SessionRefusal::Missing
                    }));
                }
            };
            if session.actions_used >= session.max_actions {
                return Err(refuse(SessionRefusal::Exhausted));
            }
            session.actions_used += 1;
            let expires_at_ms = stored.expires_at_ms;
            let payload = codec::to_postcard("session", &session)?;
            slot.put(envelope::FORMAT_POSTCARD, &payload, expires_at_ms)?;
            Ok(session)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(expires_at_s: i64) -> SessionKeyData {
        SessionKeyData {
            expires_at_s,
            max_actions: 1,
            ..SessionKeyData::default()
        }
    }

    #[test]
    fn own_expiry_follows_the_seed_rule() {
        // Valid while now (in seconds) < expires_at_s.
        assert!(!session(10).is_expired_at(9_999));
        assert!(session(10).is_expired_at(10_000));
        assert!(session(0).is_expired_at(0));
        assert!(session(-5).is_expired_at(0));
        assert_eq!(session(i64::MAX).expires_at_ms(), Some(u64::MAX));
    }

    #[test]
    fn renamed_time_fields_keep_their_serialized_names() {
        let json = serde_json::to_value(session(10)).expect("json");
        assert_eq!(json["expires_at"], 10);
        assert_eq!(json["created_at"], 0);
        assert!(json.get("expires_at_s").is_none());
    }
}
