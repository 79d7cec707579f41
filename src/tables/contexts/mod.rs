//! Per-user context documents (the seed's `UserContext`): fetch, conditional push,
//! update closures, patch by field path, a bounded recent-events list, get-or-init and
//! batch fetch from one snapshot.
//!
//! Versions: a stored context's `version` is its record version (1 on create, +1 per
//! write) and is set from the record on every read, so the two never disagree. A
//! context that was never stored has version 0. [`ContextsTx::push`] is the optimistic
//! lock: it writes only if the stored version still equals `ctx.version` (version 0:
//! only if no context is stored), and otherwise returns [`Error::VersionConflict`] and
//! writes nothing. Every write sets `updated_at` (Unix seconds) from the store's clock.

mod model;
mod patch;

use redb::ReadableTable;

use super::record::{self, NewHeader};
use super::Expect;
use crate::codec::{self, envelope};
use crate::error::{Error, Result};
use crate::limits;
use crate::schema::CONTEXTS;
use crate::store::Store;
use crate::txn::{ReadTx, WriteTx};

pub use model::{ContextEvent, NotificationPrefs, UserContext, UserPreferences, VaultState};

const TABLE: &str = "edgestate.contexts";

/// The result of a batch fetch: every user asked for is in exactly one of the lists.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ContextBatch {
    /// The contexts found, in the order the users were asked for.
    pub found: Vec<UserContext>,
    /// The users that have no context, in the order they were asked for.
    pub missing: Vec<String>,
}

fn shown(user: &str) -> impl Fn() -> String + '_ {
    move || user.to_owned()
}

fn decode(user: &str, stored: record::Stored) -> Result<UserContext> {
    if stored.format != envelope::FORMAT_POSTCARD_V1 {
        return Err(Error::Decode {
            table: TABLE,
            key: user.to_owned(),
            reason: format!("record format {} is not a context", stored.format),
        });
    }
    let mut ctx: UserContext = codec::from_postcard(TABLE, user, &stored.payload)?;
    // The record header is the authority on the version.
    ctx.version = stored.version;
    Ok(ctx)
}

// Reads, generic over read and write transactions.

fn fetch_in<T>(table: &T, user: &str, now: u64) -> Result<Option<UserContext>>
where
    T: ReadableTable<&'static str, &'static [u8]>,
{
    limits::check_key("user", user)?;
    match record::get_live(table, TABLE, user, &shown(user), now)? {
        Some(stored) => Ok(Some(decode(user, stored)?)),
        None => Ok(None),
    }
}

fn fetch_many_in<T>(table: &T, users: &[&str], now: u64) -> Result<ContextBatch>
where
    T: ReadableTable<&'static str, &'static [u8]>,
{
    for user in users {
        limits::check_key("user", user)?;
    }
    let mut batch = ContextBatch::default();
    for user in users {
        match fetch_in(table, user, now)? {
            Some(ctx) => batch.found.push(ctx),
            None => batch.missing.push((*user).to_owned()),
        }
    }
    Ok(batch)
}

fn not_found(user: &str) -> Error {
    Error::NotFound {
        table: TABLE,
        key: user.to_owned(),
    }
}

/// Contexts inside a write transaction: reads see the transaction's own writes.
/// Obtained from [`WriteTx::contexts`].
#[derive(Debug, Clone, Copy)]
pub struct ContextsTx<'t> {
    tx: &'t WriteTx,
}

impl WriteTx {
    /// The per-user context documents.
    pub fn contexts(&self) -> ContextsTx<'_> {
        ContextsTx { tx: self }
    }
}

impl ContextsTx<'_> {
    /// The user's context, or `None`.
    pub fn fetch(&self, user: &str) -> Result<Option<UserContext>> {
        let table = self.tx.raw().open_table(CONTEXTS)?;
        fetch_in(&table, user, self.tx.now_ms())
    }

    /// Several contexts; users without one are listed in [`ContextBatch::missing`].
    pub fn fetch_many(&self, users: &[&str]) -> Result<ContextBatch> {
        let table = self.tx.raw().open_table(CONTEXTS)?;
        fetch_many_in(&table, users, self.tx.now_ms())
    }

    /// Stores `ctx` under `ctx.pubkey` if the stored version still equals `ctx.version`
    /// (version 0: if no context is stored). Otherwise returns
    /// [`Error::VersionConflict`] (`expected: None` means "expected none stored") and
    /// writes nothing. Returns the context as stored: version + 1 (1 on create) and
    /// `updated_at` set to now.
    pub fn push(&self, ctx: UserContext) -> Result<UserContext> {
        let expect = match ctx.version {
            0 => Expect::Absent,
            v => Expect::Version(v),
        };
        self.put_if(ctx, expect)
    }

    /// Stores `ctx` under `ctx.pubkey` if the stored record matches `expect`
    /// ([`Expect::Any`] overwrites unconditionally); `ctx.version` is ignored. Returns
    /// the context as stored.
    pub fn put_if(&self, mut ctx: UserContext, expect: Expect) -> Result<UserContext> {
        limits::check_key("pubkey", &ctx.pubkey)?;
        let user = ctx.pubkey.clone();
        ctx.updated_at = super::unix_seconds(self.tx.now_ms());
        // The version lives inside the body too, so the body is built once the new
        // version is known.
        let version = record::put_with(
            self.tx,
            CONTEXTS,
            user.as_str(),
            &shown(&user),
            None,
            NewHeader {
                format: envelope::FORMAT_POSTCARD_V1,
                expires_at_ms: None,
                expect,
            },
            |version| {
                ctx.version = version;
                codec::to_postcard("user context", &ctx)
            },
        )?;
        ctx.version = version;
        Ok(ctx)
    }

    /// Read-modify-write in this transaction: `f` edits the stored context, which is
    /// then written back. Cannot conflict with itself. [`Error::NotFound`] if the user
    /// has no context; if `f` fails, or changes `pubkey` ([`Error::InvalidInput`]),
    /// nothing is written. Returns the context as stored.
    pub fn update<F>(&self, user: &str, f: F) -> Result<UserContext>
    where
        F: FnOnce(&mut UserContext) -> Result<()>,
    {
        let ctx = self.fetch(user)?.ok_or_else(|| not_found(user))?;
        self.modify(user, ctx, f)
    }

    /// Like [`update`](Self::update), but starts from [`UserContext::new`] when the
    /// user has no context.
    pub fn update_or_init<F>(&self, user: &str, f: F) -> Result<UserContext>
    where
        F: FnOnce(&mut UserContext) -> Result<()>,
    {
        let ctx = match self.fetch(user)? {
            Some(ctx) => ctx,
            None => UserContext::new(user, self.tx.now_ms()),
        };
        self.modify(user, ctx, f)
    }

    fn modify<F>(&self, user: &str, mut ctx: UserContext, f: F) -> Result<UserContext>
    where
        F: FnOnce(&mut UserContext) -> Result<()>,
    {
        let version = ctx.version;
        f(&mut ctx)?;
        if ctx.pubkey != user {
            return Err(Error::invalid(
                "pubkey",
                "an update cannot change the context's pubkey",
            ));
        }
        ctx.version = version;
        self.push(ctx)
    }

    /// Sets one field by its dotted path and bumps the version, e.g.
    /// `"preferences.notifications.min_notify_amount"`, `"vault.cred_balance"`,
    /// `"recent_events.0.summary"`, `"agent_memory.goal"` (creates or replaces that
    /// memory key; keys may also be created inside a memory value) or `"agent_memory"`
    /// (replaces the whole memory with an object).
    ///
    /// The path must name an existing field (new keys only inside `agent_memory`), and
    /// `value` must have the field's exact type and range (a whole struct must have all
    /// of its fields and no others). `pubkey`, `version` and `updated_at` are kept by
    /// the store. Any violation is [`Error::InvalidInput`] whose field is the path, and
    /// writes nothing. [`Error::NotFound`] if the user has no context.
    pub fn patch(&self, user: &str, path: &str, value: serde_json::Value) -> Result<UserContext> {
        self.update(user, |ctx| patch::apply(ctx, path, value))
    }

    /// Adds `event` at the front of the user's recent events and keeps the newest
    /// `StoreConfig::max_recent_events`. Creates the context first if the user has none.
    /// Returns the context as stored.
    pub fn push_event(&self, user: &str, event: ContextEvent) -> Result<UserContext> {
        let max = self.tx.config().max_recent_events;
        self.update_or_init(user, |ctx| {
            ctx.recent_events.insert(0, event);
            ctx.recent_events.truncate(max);
            Ok(())
        })
    }

    /// The user's context, created (version 1, defaults) if there is none.
    pub fn get_or_init(&self, user: &str) -> Result<UserContext> {
        match self.fetch(user)? {
            Some(ctx) => Ok(ctx),
            None => self.push(UserContext::new(user, self.tx.now_ms())),
        }
    }

    /// Removes the user's context; returns it if there was one.
    pub fn delete(&self, user: &str) -> Result<Option<UserContext>> {
        limits::check_key("user", user)?;
        match record::delete(self.tx, CONTEXTS, user, &shown(user), None)? {
            Some(stored) => Ok(Some(decode(user, stored)?)),
            None => Ok(None),
        }
    }
}

/// Context reads on a snapshot. Obtained from [`ReadTx::contexts`].
#[derive(Debug, Clone, Copy)]
pub struct ContextsRead<'t> {
    tx: &'t ReadTx,
}

impl ReadTx {
    /// The per-user context documents.
    pub fn contexts(&self) -> ContextsRead<'_> {
        ContextsRead { tx: self }
    }
}

impl ContextsRead<'_> {
    /// The user's context, or `None`.
    pub fn fetch(&self, user: &str) -> Result<Option<UserContext>> {
        let table = self.tx.raw().open_table(CONTEXTS)?;
        fetch_in(&table, user, self.tx.now_ms())
    }

    /// Several contexts from this one snapshot; users without one are listed in
    /// [`ContextBatch::missing`].
    pub fn fetch_many(&self, users: &[&str]) -> Result<ContextBatch> {
        let table = self.tx.raw().open_table(CONTEXTS)?;
        fetch_many_in(&table, users, self.tx.now_ms())
    }
}

/// Context calls on the store, each in its own transaction. Obtained from
/// [`Store::contexts`]; see [`ContextsTx`] for the semantics of each call.
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
/// // Optimistic locking: `ctx` is stale now, so pushing it writes nothing.
/// let err = contexts.push(ctx).expect_err("stale");
/// assert!(err.is_conflict());
///
/// let event = ContextEvent {
///     event_type: "capture".into(),
///     timestamp: 1_700_000_000,
///     summary: "coffee".into(),
///     amount: Some(450),
/// };
/// let stored = contexts.push_event("alice", event)?;
/// assert_eq!(stored.version, 4);
/// assert_eq!(stored.recent_events[0].summary, "coffee");
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Contexts<'s> {
    store: &'s Store,
}

impl Store {
    /// The per-user context documents.
    pub fn contexts(&self) -> Contexts<'_> {
        Contexts { store: self }
    }
}

impl Contexts<'_> {
    /// The user's context, or `None`.
    pub fn fetch(&self, user: &str) -> Result<Option<UserContext>> {
        self.store.read(|tx| tx.contexts().fetch(user))
    }

    /// Several contexts from one consistent snapshot.
    pub fn fetch_many(&self, users: &[&str]) -> Result<ContextBatch> {
        self.store.read(|tx| tx.contexts().fetch_many(users))
    }

    /// Conditional write on `ctx.version`; see [`ContextsTx::push`].
    pub fn push(&self, ctx: UserContext) -> Result<UserContext> {
        self.store.write(|tx| tx.contexts().push(ctx))
    }

    /// Write on an explicit expectation; see [`ContextsTx::put_if`].
    pub fn put_if(&self, ctx: UserContext, expect: Expect) -> Result<UserContext> {
        self.store.write(|tx| tx.contexts().put_if(ctx, expect))
    }

    /// Read-modify-write in one transaction; see [`ContextsTx::update`].
    pub fn update<F>(&self, user: &str, f: F) -> Result<UserContext>
    where
        F: FnOnce(&mut UserContext) -> Result<()>,
    {
        self.store.write(|tx| tx.contexts().update(user, f))
    }

    /// Read-modify-write, creating the context if needed; see
    /// [`ContextsTx::update_or_init`].
    pub fn update_or_init<F>(&self, user: &str, f: F) -> Result<UserContext>
    where
        F: FnOnce(&mut UserContext) -> Result<()>,
    {
        self.store.write(|tx| tx.contexts().update_or_init(user, f))
    }

    /// Sets one field by its dotted path; see [`ContextsTx::patch`].
    pub fn patch(&self, user: &str, path: &str, value: serde_json::Value) -> Result<UserContext> {
        self.store
            .write(|tx| tx.contexts().patch(user, path, value))
    }

    /// Adds a recent event, newest first, bounded; see [`ContextsTx::push_event`].
    pub fn push_event(&self, user: &str, event: ContextEvent) -> Result<UserContext> {
        self.store.write(|tx| tx.contexts().push_event(user, event))
    }

    /// The user's context, created if there is none. Existing contexts are returned
    /// from a read snapshot without taking the write lock.
    pub fn get_or_init(&self, user: &str) -> Result<UserContext> {
        if let Some(ctx) = self.fetch(user)? {
            return Ok(ctx);
        }
        self.store.write(|tx| tx.contexts().get_or_init(user))
    }

    /// Removes the user's context; returns it if there was one.
    pub fn delete(&self, user: &str) -> Result<Option<UserContext>> {
        self.store.write(|tx| tx.contexts().delete(user))
    }
}
