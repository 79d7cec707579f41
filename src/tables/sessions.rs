//! Session keys: one active, TTL-bound session per user, whose `max_actions` are spent
//! one at a time by an atomic [`SessionsTx::use_action`].
//!
//! A stored session expires at the EARLIER of two instants: the session's own
//! `expires_at` (unix seconds, as in the seed) and the transaction's now plus
//! [`StoreConfig::session_ttl`](crate::StoreConfig::session_ttl). The store-wide TTL is a
//! ceiling set by the operator; a session key itself may well be shorter-lived, and once
//! it has expired there is nothing left to use it for. An expired session reads as `None`
//! at once, whether or not a sweep has removed it yet.

use redb::ReadableTable;
use serde::{Deserialize, Serialize};

use super::record::{self, NewRecord, Stored, TtlKey};
use super::Expect;
use crate::clock::expiry_after;
use crate::codec::{self, keys};
use crate::error::{Error, Result, SessionRefusal};
use crate::limits;
use crate::schema::{TtlTable, SESSIONS};
use crate::store::Store;
use crate::txn::{ReadTx, WriteTx};

const TABLE: &str = "edgestate.sessions";

/// A user's session key, as the agent SDK seed stores it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionKeyData {
    /// Public key of the session key pair.
    pub key_pubkey: String,
    /// Public key of the vault the session acts for.
    pub vault_pubkey: String,
    /// What the session may do.
    pub scopes: Vec<String>,
    /// When the session stops being valid, in unix seconds. A session is expired once
    /// `now >= expires_at`.
    pub expires_at: i64,
    /// When the session was created, in unix seconds (informational).
    pub created_at: i64,
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
        u64::try_from(self.expires_at)
            .ok()
            .filter(|s| *s > 0)
            .map(|s| s.saturating_mul(1000))
    }

    /// Whether the session's own `expires_at` has passed at `now_ms`.
    fn is_expired_at(&self, now_ms: u64) -> bool {
        self.expires_at_ms().is_none_or(|at| now_ms >= at)
    }
}

fn shown(user: &str) -> impl Fn() -> String + '_ {
    move || user.to_owned()
}

fn ttl_key(user: &str) -> TtlKey {
    TtlKey {
        table: TtlTable::Sessions,
        packed: keys::pack(&[user.as_bytes()]),
    }
}

fn decode(user: &str, stored: &Stored) -> Result<SessionKeyData> {
    codec::from_postcard(TABLE, user, &stored.payload)
}

/// What is stored for a user, judged at `now`.
enum Lookup {
    Missing,
    Expired,
    Live(Stored, SessionKeyData),
}

fn lookup_in<T>(table: &T, user: &str, now: u64) -> Result<Lookup>
where
    T: ReadableTable<&'static str, &'static [u8]>,
{
    limits::check_key("user", user)?;
    let Some(guard) = table.get(user)? else {
        return Ok(Lookup::Missing);
    };
    let Some(stored) = record::decode_live(TABLE, &shown(user), guard.value(), now)? else {
        return Ok(Lookup::Expired);
    };
    let session = decode(user, &stored)?;
    // The record's expiry already covers `expires_at`; checking the body as well keeps
    // the seed's rule even for a record whose header says otherwise.
    if session.is_expired_at(now) {
        return Ok(Lookup::Expired);
    }
    Ok(Lookup::Live(stored, session))
}

fn get_in<T>(table: &T, user: &str, now: u64) -> Result<Option<SessionKeyData>>
where
    T: ReadableTable<&'static str, &'static [u8]>,
{
    Ok(match lookup_in(table, user, now)? {
        Lookup::Live(_, session) => Some(session),
        Lookup::Missing | Lookup::Expired => None,
    })
}

/// Session access inside a write transaction. Obtained from [`WriteTx::sessions`].
#[derive(Debug, Clone, Copy)]
pub struct SessionsTx<'t> {
    tx: &'t WriteTx,
}

impl WriteTx {
    /// The per-user session keys.
    pub fn sessions(&self) -> SessionsTx<'_> {
        SessionsTx { tx: self }
    }
}

impl SessionsTx<'_> {
    /// Stores `session` as the user's one active session, replacing any other. It expires
    /// at the earlier of `session.expires_at` and now + `session_ttl` (see the module
    /// docs).
    ///
    /// Refuses with [`Error::InvalidInput`] (field `expires_at`) a session that has
    /// already expired, rather than silently storing something unreadable; any session
    /// already stored is then left in place.
    pub fn store_session(&self, user: &str, session: &SessionKeyData) -> Result<()> {
        limits::check_key("user", user)?;
        let now = self.tx.now_ms();
        let own_expiry = session
            .expires_at_ms()
            .filter(|at| *at > now)
            .ok_or_else(|| {
                Error::invalid(
                    "expires_at",
                    format!(
                        "session expired at {}s, before the store's now ({now} ms)",
                        session.expires_at
                    ),
                )
            })?;
        let expires_at_ms = own_expiry.min(expiry_after(now, self.tx.config().session_ttl));
        let payload = codec::to_postcard("session", session)?;
        record::put(
            self.tx,
            SESSIONS,
            user,
            &shown(user),
            Some(&|| ttl_key(user)),
            NewRecord::postcard(&payload, Some(expires_at_ms), Expect::Any),
        )?;
        Ok(())
    }

    /// The user's live session, or `None` if there is none or it has expired.
    pub fn get_session(&self, user: &str) -> Result<Option<SessionKeyData>> {
        let table = self.tx.raw().open_table(SESSIONS)?;
        get_in(&table, user, self.tx.now_ms())
    }

    /// Removes the user's session. Returns whether a live session was removed.
    pub fn invalidate(&self, user: &str) -> Result<bool> {
        limits::check_key("user", user)?;
        let removed = record::delete(
            self.tx,
            SESSIONS,
            user,
            &shown(user),
            Some(&|| ttl_key(user)),
        )?;
        Ok(removed.is_some())
    }

    /// Spends one action of the user's session and returns the session as updated.
    ///
    /// Refuses with [`Error::SessionRefused`] when there is no session
    /// ([`SessionRefusal::Missing`], which is also what a swept-away expired session
    /// gives), when it has expired ([`SessionRefusal::Expired`]), or when
    /// `actions_used >= max_actions` ([`SessionRefusal::Exhausted`]). A refusal writes
    /// nothing. The session keeps its expiry.
    pub fn use_action(&self, user: &str) -> Result<SessionKeyData> {
        let now = self.tx.now_ms();
        let found = {
            let table = self.tx.raw().open_table(SESSIONS)?;
            lookup_in(&table, user, now)?
        };
        let refuse = |reason| Error::SessionRefused {
            user: user.to_owned(),
            reason,
        };
        let (stored, mut session) = match found {
            Lookup::Missing => return Err(refuse(SessionRefusal::Missing)),
            Lookup::Expired => return Err(refuse(SessionRefusal::Expired)),
            Lookup::Live(stored, session) => (stored, session),
        };
        if session.actions_used >= session.max_actions {
            return Err(refuse(SessionRefusal::Exhausted));
        }
        session.actions_used += 1;
        let payload = codec::to_postcard("session", &session)?;
        record::put(
            self.tx,
            SESSIONS,
            user,
            &shown(user),
            Some(&|| ttl_key(user)),
            NewRecord::postcard(
                &payload,
                stored.expires_at_ms,
                Expect::Version(stored.version),
            ),
        )?;
        Ok(session)
    }
}

/// Session reads on a snapshot. Obtained from [`ReadTx::sessions`].
#[derive(Debug, Clone, Copy)]
pub struct SessionsRead<'t> {
    tx: &'t ReadTx,
}

impl ReadTx {
    /// The per-user session keys.
    pub fn sessions(&self) -> SessionsRead<'_> {
        SessionsRead { tx: self }
    }
}

impl SessionsRead<'_> {
    /// The user's live session, or `None` if there is none or it has expired.
    pub fn get_session(&self, user: &str) -> Result<Option<SessionKeyData>> {
        let table = self.tx.raw().open_table(SESSIONS)?;
        get_in(&table, user, self.tx.now_ms())
    }
}

/// Session calls on the store, each in its own transaction. Obtained from
/// [`Store::sessions`].
///
/// ```
/// use edgestate::{Error, ManualClock, SessionKeyData, SessionRefusal, Store};
/// use std::time::Duration;
///
/// # fn main() -> edgestate::Result<()> {
/// let clock = ManualClock::new(1_700_000_000_000);
/// let store = Store::builder().clock(clock.clone()).in_memory()?;
/// let sessions = store.sessions();
/// sessions.store_session(
///     "alice",
///     &SessionKeyData {
///         key_pubkey: "sk-pub".into(),
///         vault_pubkey: "vault".into(),
///         scopes: vec!["capture".into()],
///         expires_at: 1_700_000_000 + 3600, // one hour from the clock's now
///         created_at: 1_700_000_000,
///         max_actions: 2,
///         actions_used: 0,
///     },
/// )?;
/// assert_eq!(sessions.use_action("alice")?.actions_used, 1);
/// assert_eq!(sessions.use_action("alice")?.remaining_actions(), 0);
/// assert!(matches!(
///     sessions.use_action("alice"),
///     Err(Error::SessionRefused { reason: SessionRefusal::Exhausted, .. })
/// ));
///
/// clock.advance(Duration::from_secs(3600));
/// assert!(sessions.get_session("alice")?.is_none()); // expired: gone at once
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Sessions<'s> {
    store: &'s Store,
}

impl Store {
    /// The per-user session keys, one transaction per call.
    pub fn sessions(&self) -> Sessions<'_> {
        Sessions { store: self }
    }
}

impl Sessions<'_> {
    /// Stores the user's session: see [`SessionsTx::store_session`].
    pub fn store_session(&self, user: &str, session: &SessionKeyData) -> Result<()> {
        self.store
            .write(|tx| tx.sessions().store_session(user, session))
    }

    /// The user's live session, or `None` if there is none or it has expired.
    pub fn get_session(&self, user: &str) -> Result<Option<SessionKeyData>> {
        self.store.read(|tx| tx.sessions().get_session(user))
    }

    /// Removes the user's session. Returns whether a live session was removed.
    pub fn invalidate(&self, user: &str) -> Result<bool> {
        self.store.write(|tx| tx.sessions().invalidate(user))
    }

    /// Spends one action atomically: see [`SessionsTx::use_action`].
    pub fn use_action(&self, user: &str) -> Result<SessionKeyData> {
        self.store.write(|tx| tx.sessions().use_action(user))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(expires_at: i64) -> SessionKeyData {
        SessionKeyData {
            key_pubkey: String::new(),
            vault_pubkey: String::new(),
            scopes: Vec::new(),
            expires_at,
            created_at: 0,
            max_actions: 1,
            actions_used: 0,
        }
    }

    #[test]
    fn own_expiry_follows_the_seed_rule() {
        // Valid while now (in seconds) < expires_at.
        assert!(!session(10).is_expired_at(9_999));
        assert!(session(10).is_expired_at(10_000));
        assert!(session(0).is_expired_at(0));
        assert!(session(-5).is_expired_at(0));
        assert_eq!(session(i64::MAX).expires_at_ms(), Some(u64::MAX));
    }
}
