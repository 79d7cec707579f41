//! The current-merchant cache: which merchant's geofence a user is in, for
//! [`StoreConfig::location_ttl`](crate::StoreConfig::location_ttl) (default one hour)
//! after they entered it. An expired entry reads as `None` at once.

use redb::ReadableTable;
use serde::{Deserialize, Serialize};

use super::record::{self, NewRecord, TtlKey};
use super::Expect;
use crate::clock::expiry_after;
use crate::codec::{self, keys};
use crate::error::Result;
use crate::limits;
use crate::schema::{TtlTable, LOCATIONS};
use crate::store::Store;
use crate::txn::{ReadTx, WriteTx};

const TABLE: &str = "edgestate.locations";

/// A user's cached current merchant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurrentMerchant {
    /// The merchant whose geofence the user entered.
    pub merchant_id: String,
    /// When the user entered it: the store clock at caching time, ms since the epoch.
    pub entered_at_ms: u64,
    /// When the cache entry stops being visible, ms since the epoch.
    pub expires_at_ms: u64,
}

impl CurrentMerchant {
    /// When the user entered the geofence, in unix seconds (the seed's `entered_at`).
    pub fn entered_at(&self) -> i64 {
        i64::try_from(self.entered_at_ms / 1000).unwrap_or(i64::MAX)
    }
}

/// The stored body; the expiry lives in the record header.
#[derive(Serialize, Deserialize)]
struct Body {
    merchant_id: String,
    entered_at_ms: u64,
}

fn shown(user: &str) -> impl Fn() -> String + '_ {
    move || user.to_owned()
}

fn ttl_key(user: &str) -> TtlKey {
    TtlKey {
        table: TtlTable::Locations,
        packed: keys::pack(&[user.as_bytes()]),
    }
}

fn get_in<T>(table: &T, user: &str, now: u64) -> Result<Option<CurrentMerchant>>
where
    T: ReadableTable<&'static str, &'static [u8]>,
{
    limits::check_key("user", user)?;
    let Some(stored) = record::get_live(table, TABLE, user, &shown(user), now)? else {
        return Ok(None);
    };
    let body: Body = codec::from_postcard(TABLE, user, &stored.payload)?;
    Ok(Some(CurrentMerchant {
        merchant_id: body.merchant_id,
        entered_at_ms: body.entered_at_ms,
        // Always written with an expiry; a record without one would never expire.
        expires_at_ms: stored.expires_at_ms.unwrap_or(u64::MAX),
    }))
}

/// Location cache access inside a write transaction. Obtained from [`WriteTx::location`].
#[derive(Debug, Clone, Copy)]
pub struct LocationCacheTx<'t> {
    tx: &'t WriteTx,
}

impl WriteTx {
    /// The current-merchant location cache.
    pub fn location(&self) -> LocationCacheTx<'_> {
        LocationCacheTx { tx: self }
    }
}

impl LocationCacheTx<'_> {
    /// Caches `merchant_id` as the user's current merchant, entered now, replacing any
    /// other; it expires `location_ttl` from now. Returns what was cached.
    pub fn cache_current_merchant(&self, user: &str, merchant_id: &str) -> Result<CurrentMerchant> {
        limits::check_key("user", user)?;
        limits::check_key("merchant_id", merchant_id)?;
        let now = self.tx.now_ms();
        let expires_at_ms = expiry_after(now, self.tx.config().location_ttl);
        let payload = codec::to_postcard(
            "current merchant",
            &Body {
                merchant_id: merchant_id.to_owned(),
                entered_at_ms: now,
            },
        )?;
        record::put(
            self.tx,
            LOCATIONS,
            user,
            &shown(user),
            Some(&|| ttl_key(user)),
            NewRecord::postcard(&payload, Some(expires_at_ms), Expect::Any),
        )?;
        Ok(CurrentMerchant {
            merchant_id: merchant_id.to_owned(),
            entered_at_ms: now,
            expires_at_ms,
        })
    }

    /// The user's current merchant, or `None` if none is cached or it has expired.
    pub fn current_merchant(&self, user: &str) -> Result<Option<CurrentMerchant>> {
        let table = self.tx.raw().open_table(LOCATIONS)?;
        get_in(&table, user, self.tx.now_ms())
    }

    /// Only the merchant id of [`current_merchant`](Self::current_merchant) (the seed's
    /// `get_current_merchant`).
    pub fn current_merchant_id(&self, user: &str) -> Result<Option<String>> {
        Ok(self.current_merchant(user)?.map(|m| m.merchant_id))
    }

    /// Forgets the user's current merchant. Returns whether a live entry was removed.
    pub fn clear(&self, user: &str) -> Result<bool> {
        limits::check_key("user", user)?;
        let removed = record::delete(
            self.tx,
            LOCATIONS,
            user,
            &shown(user),
            Some(&|| ttl_key(user)),
        )?;
        Ok(removed.is_some())
    }
}

/// Location cache reads on a snapshot. Obtained from [`ReadTx::location`].
#[derive(Debug, Clone, Copy)]
pub struct LocationCacheRead<'t> {
    tx: &'t ReadTx,
}

impl ReadTx {
    /// The current-merchant location cache.
    pub fn location(&self) -> LocationCacheRead<'_> {
        LocationCacheRead { tx: self }
    }
}

impl LocationCacheRead<'_> {
    /// The user's current merchant, or `None` if none is cached or it has expired.
    pub fn current_merchant(&self, user: &str) -> Result<Option<CurrentMerchant>> {
        let table = self.tx.raw().open_table(LOCATIONS)?;
        get_in(&table, user, self.tx.now_ms())
    }

    /// Only the merchant id of the user's current merchant.
    pub fn current_merchant_id(&self, user: &str) -> Result<Option<String>> {
        Ok(self.current_merchant(user)?.map(|m| m.merchant_id))
    }
}

/// Location cache calls on the store, each in its own transaction. Obtained from
/// [`Store::location`].
///
/// ```
/// use edgestate::{ManualClock, Store};
/// use std::time::Duration;
///
/// # fn main() -> edgestate::Result<()> {
/// let clock = ManualClock::new(1_700_000_000_000);
/// let store = Store::builder().clock(clock.clone()).in_memory()?;
/// let location = store.location();
/// location.cache_current_merchant("alice", "coffee-42")?;
/// let here = location.current_merchant("alice")?.expect("just cached");
/// assert_eq!(here.merchant_id, "coffee-42");
/// assert_eq!(here.entered_at(), 1_700_000_000);
///
/// clock.advance(Duration::from_secs(60 * 60)); // the default location TTL
/// assert_eq!(location.current_merchant_id("alice")?, None);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy)]
pub struct LocationCache<'s> {
    store: &'s Store,
}

impl Store {
    /// The current-merchant location cache, one transaction per call.
    pub fn location(&self) -> LocationCache<'_> {
        LocationCache { store: self }
    }
}

impl LocationCache<'_> {
    /// Caches the user's current merchant: see [`LocationCacheTx::cache_current_merchant`].
    pub fn cache_current_merchant(&self, user: &str, merchant_id: &str) -> Result<CurrentMerchant> {
        self.store
            .write(|tx| tx.location().cache_current_merchant(user, merchant_id))
    }

    /// The user's current merchant, or `None` if none is cached or it has expired.
    pub fn current_merchant(&self, user: &str) -> Result<Option<CurrentMerchant>> {
        self.store.read(|tx| tx.location().current_merchant(user))
    }

    /// Only the merchant id of the user's current merchant.
    pub fn current_merchant_id(&self, user: &str) -> Result<Option<String>> {
        self.store
            .read(|tx| tx.location().current_merchant_id(user))
    }

    /// Forgets the user's current merchant. Returns whether a live entry was removed.
    pub fn clear(&self, user: &str) -> Result<bool> {
        self.store.write(|tx| tx.location().clear(user))
    }
}
