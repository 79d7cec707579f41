//! Per-user context documents (the seed's `UserContext`): get, conditional put, update
//! closures, patch by field path, a bounded recent-events list, get-or-init and batch
//! get from one snapshot.
//!
//! Versions: a stored context's `version` is its record version (1 on create, +1 per
//! write) and is set from the record on every read, so the two never disagree. A
//! context that was never stored has version 0. [`Contexts::put`] is the optimistic
//! lock: it writes only if the stored version still equals `ctx.version` (version 0:
//! only if no context is stored), and otherwise returns [`Error::VersionConflict`] and
//! writes nothing. Every write sets `updated_at_s` (Unix seconds; `updated_at` in the
//! stored body and in JSON) from the store's clock. Every write reads the stored record
//! once.

mod model;
mod patch;

use super::record::{self, Slot, Stored};
use super::{handle, unix_seconds, Expect};
use crate::access::{Access, WriteAccess};
use crate::codec::{self, envelope};
use crate::error::{Error, Result};
use crate::limits;
use crate::schema::CONTEXTS;
use crate::txn::WriteTx;

pub use model::{ContextEvent, NotificationPrefs, UserContext, UserPreferences, VaultState};

/// The result of a batch get: every user asked for is in exactly one of the lists.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ContextBatch {
    /// The contexts found, in the order the users were asked for.
    pub found: Vec<UserContext>,
    /// The users that have no context, in the order they were asked for.
    pub missing: Vec<String>,
}

fn decode(user: &str, stored: &Stored) -> Result<UserContext> {
    let mut ctx: UserContext = stored.decode(CONTEXTS.name, user)?;
    // The record header is the authority on the version.
    ctx.version = stored.version;
    Ok(ctx)
}

fn not_found(user: &str) -> Error {
    Error::NotFound {
        table: CONTEXTS.name,
        key: user.to_owned(),
    }
}

/// The expectation [`Contexts::put`] derives from `ctx.version`.
fn expect_of(ctx: &UserContext) -> Expect {
    match ctx.version {
        0 => Expect::Absent,
        v => Expect::Version(v),
    }
}

/// Writes `ctx` through `slot` (the caller has checked what it expects of the live
/// record): stamps `updated_at_s` and embeds the new version in the body.
fn write(
    tx: &WriteTx,
    slot: Slot<'_, '_, &'static str>,
    mut ctx: UserContext,
) -> Result<UserContext> {
    ctx.updated_at_s = unix_seconds(tx.now_ms());
    // The version lives inside the body too, so it is known before encoding.
    ctx.version = slot.next_version();
    let body = codec::to_postcard("user context", &ctx)?;
    ctx.version = slot.put(envelope::FORMAT_POSTCARD, &body, None)?;
    Ok(ctx)
}

/// Read-modify-write of one context in `tx`: `f` edits the stored context (or a fresh
/// one when `init` and there is none), which is then written back.
fn modify<F>(tx: &WriteTx, user: &str, init: bool, f: F) -> Result<UserContext>
where
    F: FnOnce(&mut UserContext) -> Result<()>,
{
    let slot = Slot::open(tx, CONTEXTS, user)?;
    let mut ctx = match slot.live() {
        Some(stored) => decode(user, stored)?,
        None if init => UserContext::new(user, tx.now_ms()),
        None => return Err(not_found(user)),
    };
    crate::txn::caller_code(|| f(&mut ctx))?;
    if ctx.pubkey != user {
        return Err(Error::invalid(
            "pubkey",
            "an update cannot change the context's pubkey",
        ));
    }
    write(tx, slot, ctx)
}

handle! {
    /// The per-user context documents, from `tx.contexts()`, `read.contexts()` or
    /// `store.contexts()`. On a [`Store`](crate::Store) each call is its own
    /// transaction; inside [`Store::write`](crate::Store::write) reads see the
    /// transaction's own writes.
    ///
    /// ```
    /// use edgestate::{ContextEvent, Error, Store};
    /// use serde_json::json;
    ///
    /// # fn main() -> edgestate::Result<()> {
    /// let store = Store::in_memory()?;
    /// let contexts = store.contexts();
    ///
    /// let ctx = contexts.get_or_init("alice")?;
    /// assert_eq!(ctx.version, 1);
    ///
    /// // Patch one field by path; a typo or a wrong type is an error, never a no-op.
    /// contexts.patch("alice", "preferences.risk_tolerance", json!("aggressive"))?;
    /// contexts.patch("alice", "agent_memory.goal", json!("save for a bike"))?;
    /// let err = contexts.patch("alice", "preferences.risk_tolerence", json!("x"))
    ///     .expect_err("typo");
    /// assert!(matches!(err, Error::InvalidInput { .. }));
    ///
    /// // Optimistic locking: `ctx` is stale now, so putting it writes nothing.
    /// let err = contexts.put(ctx).expect_err("stale");
    /// assert!(err.is_conflict());
    ///
    /// let event = ContextEvent::new("capture", 1_700_000_000, "coffee").with_amount(450);
    /// let stored = contexts.push_event("alice", event)?;
    /// assert_eq!(stored.version, 4);
    /// assert_eq!(stored.recent_events[0].summary, "coffee");
    ///
    /// // Inside a transaction, together with other tables.
    /// store.write(|tx| {
    ///     let ctx = tx.contexts().get("alice")?.expect("stored above");
    ///     tx.contexts().put(ctx)?;
    ///     Ok::<_, edgestate::Error>(())
    /// })?;
    /// assert_eq!(contexts.get("alice")?.map(|c| c.version), Some(5));
    /// # Ok(())
    /// # }
    /// ```
    Contexts
}

impl<A: Access> Contexts<'_, A> {
    /// The user's context, or `None`.
    ///
    /// # Errors
    /// [`InvalidInput`](crate::Error::InvalidInput) for an empty or oversized user;
    /// [`Corrupt`](crate::Error::Corrupt) or [`Decode`](crate::Error::Decode) for a
    /// damaged record; storage errors.
    pub fn get(&self, user: &str) -> Result<Option<UserContext>> {
        limits::check_key("user", user)?;
        self.src
            .with_reader(|r| match record::get(r, &CONTEXTS, user)? {
                Some(stored) => Ok(Some(decode(user, &stored)?)),
                None => Ok(None),
            })
    }

    /// Several contexts from one snapshot; users without one are listed in
    /// [`ContextBatch::missing`].
    ///
    /// # Errors
    /// As [`get`](Self::get), for any of the users (all are checked before reading).
    pub fn get_many(&self, users: &[&str]) -> Result<ContextBatch> {
        for user in users {
            limits::check_key("user", user)?;
        }
        self.src.with_reader(|r| {
            let table = r.open(CONTEXTS.def)?;
            let mut batch = ContextBatch::default();
            for user in users {
                match record::get_in(&table, &CONTEXTS, user, r.now_ms())? {
                    Some(stored) => batch.found.push(decode(user, &stored)?),
                    None => batch.missing.push((*user).to_owned()),
                }
            }
            Ok(batch)
        })
    }
}

impl<A: WriteAccess> Contexts<'_, A> {
    /// Stores `ctx` under `ctx.pubkey` if the stored version still equals `ctx.version`
    /// (version 0: if no context is stored). Returns the context as stored: the new
    /// version (1 on create) and `updated_at_s` set to now.
    ///
    /// # Errors
    /// [`VersionConflict`](crate::Error::VersionConflict) (`expected: None` means
    /// "expected none stored"; nothing written) when the stored version differs;
    /// otherwise as [`put_if`](Self::put_if).
    pub fn put(&self, ctx: UserContext) -> Result<UserContext> {
        let expect = expect_of(&ctx);
        self.put_if(ctx, expect)
    }

    /// Stores `ctx` under `ctx.pubkey` if the stored record matches `expect`
    /// ([`Expect::Any`] overwrites unconditionally); `ctx.version` is ignored. Returns
    /// the context as stored.
    ///
    /// # Errors
    /// [`InvalidInput`](crate::Error::InvalidInput) for an empty or oversized pubkey or
    /// an oversized context; [`VersionConflict`](crate::Error::VersionConflict) when the
    /// stored record does not match `expect`; [`Corrupt`](crate::Error::Corrupt) when
    /// the record it replaces is damaged; [`Encode`](crate::Error::Encode); storage and
    /// commit errors.
    pub fn put_if(&self, ctx: UserContext, expect: Expect) -> Result<UserContext> {
        limits::check_key("pubkey", &ctx.pubkey)?;
        let user = ctx.pubkey.clone();
        self.src.with_writer(|tx| {
            let slot = Slot::open(tx, CONTEXTS, user.as_str())?;
            slot.check(expect)?;
            write(tx, slot, ctx)
        })
    }

    /// Read-modify-write in one transaction: `f` edits the stored context, which is then
    /// written back (the new version, `updated_at_s` now). Cannot conflict with itself.
    /// Returns the context as stored.
    ///
    /// # Errors
    /// [`NotFound`](crate::Error::NotFound) if the user has no context;
    /// [`InvalidInput`](crate::Error::InvalidInput) for a bad user or if `f` changes
    /// `pubkey`; whatever `f` returns; as [`put_if`](Self::put_if) otherwise. Nothing
    /// is written on error.
    pub fn update<F>(&self, user: &str, f: F) -> Result<UserContext>
    where
        F: FnOnce(&mut UserContext) -> Result<()>,
    {
        limits::check_key("user", user)?;
        self.src.with_writer(|tx| modify(tx, user, false, f))
    }

    /// Like [`update`](Self::update), but starts from [`UserContext::new`] when the
    /// user has no context.
    ///
    /// # Errors
    /// As [`update`](Self::update), except that a missing context is not an error.
    pub fn update_or_init<F>(&self, user: &str, f: F) -> Result<UserContext>
    where
        F: FnOnce(&mut UserContext) -> Result<()>,
    {
        limits::check_key("user", user)?;
        self.src.with_writer(|tx| modify(tx, user, true, f))
    }

    /// Sets one field by its dotted path (the JSON field names) and bumps the version,
    /// e.g. `"preferences.notifications.min_notify_amount"`, `"vault.cred_balance"`,
    /// `"vault.snapshot_at"`, `"recent_events.0.summary"`, `"agent_memory.goal"`
    /// (creates or replaces that memory key; keys may also be created inside a memory
    /// value) or `"agent_memory"` (replaces the whole memory with an object).
    ///
    /// The path must name an existing field (new keys only inside `agent_memory`), and
    /// `value` must have the field's exact type and range (a whole struct must have all
    /// of its fields and no others). `pubkey`, `version` and `updated_at` are kept by
    /// the store. Returns the context as stored.
    ///
    /// # Errors
    /// [`InvalidInput`](crate::Error::InvalidInput) whose field is the path for any
    /// violation; [`NotFound`](crate::Error::NotFound) if the user has no context; as
    /// [`update`](Self::update) otherwise. Nothing is written on error.
    pub fn patch(&self, user: &str, path: &str, value: serde_json::Value) -> Result<UserContext> {
        self.update(user, |ctx| patch::apply(ctx, path, value))
    }

    /// Adds `event` at the front of the user's recent events and keeps the newest
    /// `StoreConfig::max_recent_events`. Creates the context first if the user has none.
    /// Returns the context as stored.
    ///
    /// # Errors
    /// As [`update_or_init`](Self::update_or_init).
    pub fn push_event(&self, user: &str, event: ContextEvent) -> Result<UserContext> {
        limits::check_key("user", user)?;
        self.src.with_writer(|tx| {
            let max = tx.config().max_recent_events;
            modify(tx, user, true, |ctx| {
                ctx.recent_events.insert(0, event);
                ctx.recent_events.truncate(max);
                Ok(())
            })
        })
    }

    /// The user's context, created (version 1, defaults) if there is none. On a store,
    /// an existing context is returned from a read snapshot without taking the write
    /// lock.
    ///
    /// # Errors
    /// [`InvalidInput`](crate::Error::InvalidInput) for a bad user;
    /// [`Corrupt`](crate::Error::Corrupt) or [`Decode`](crate::Error::Decode) for a
    /// damaged record; storage and commit errors.
    pub fn get_or_init(&self, user: &str) -> Result<UserContext> {
        if A::PER_CALL {
            if let Some(ctx) = self.get(user)? {
                return Ok(ctx);
            }
        } else {
            limits::check_key("user", user)?;
        }
        self.src.with_writer(|tx| {
            let slot = Slot::open(tx, CONTEXTS, user)?;
            match slot.live() {
                Some(stored) => decode(user, stored),
                None => write(tx, slot, UserContext::new(user, tx.now_ms())),
            }
        })
    }

    /// Removes the user's context; returns it if there was one.
    ///
    /// # Errors
    /// [`InvalidInput`](crate::Error::InvalidInput) for a bad user;
    /// [`Decode`](crate::Error::Decode) when the stored record is not a context;
    /// storage and commit errors. (A record too damaged to read is removed, and
    /// reported as no context.)
    pub fn delete(&self, user: &str) -> Result<Option<UserContext>> {
        limits::check_key("user", user)?;
        self.src
            .with_writer(|tx| match record::delete(tx, CONTEXTS, user)? {
                Some(stored) => Ok(Some(decode(user, &stored)?)),
                None => Ok(None),
            })
    }
}
