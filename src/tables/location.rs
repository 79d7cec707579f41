//! The current-merchant cache: which merchant's geofence a user is in, for
//! [`StoreConfig::location_ttl`](crate::StoreConfig::location_ttl) (default one hour)
//! after they entered it. An expired entry reads as `None` at once.

use serde::{Deserialize, Serialize};

use super::record::{self, Stored};
use super::{handle, Expect};
use crate::access::{Access, WriteAccess};
use crate::clock::expiry_after;
use crate::codec::{self, envelope};
use crate::error::Result;
use crate::limits;
use crate::schema::LOCATIONS;

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
    /// When the user entered the geofence, in Unix seconds (the seed's `entered_at`).
    pub fn entered_at_s(&self) -> i64 {
        super::unix_seconds(self.entered_at_ms)
    }
}

/// The stored body; the expiry lives in the record header.
#[derive(Serialize, Deserialize)]
struct Body {
    merchant_id: String,
    entered_at_ms: u64,
}

fn decode(user: &str, stored: &Stored) -> Result<CurrentMerchant> {
    let body: Body = stored.decode(LOCATIONS.name, user)?;
    Ok(CurrentMerchant {
        merchant_id: body.merchant_id,
        entered_at_ms: body.entered_at_ms,
        // Always written with an expiry; a record without one would never expire.
        expires_at_ms: stored.expires_at_ms.unwrap_or(u64::MAX),
    })
}

handle! {
    /// The current-merchant location cache, from `tx.location()`, `read.location()` or
    /// `store.location()`. On a [`Store`](crate::Store) each call is its own
    /// transaction; inside [`Store::write`](crate::Store::write) reads see the
    /// transaction's own writes.
    ///
    /// ```
    /// use edgestate::{ManualClock, Store};
    /// use std::time::Duration;
    ///
    /// # fn main() -> edgestate::Result<()> {
    /// let clock = ManualClock::new(1_700_000_000_000);
    /// let store = Store::builder().clock(clock.clone()).in_memory()?;
    /// let location = store.location();
    /// location.put("alice", "coffee-42")?;
    /// let here = location.get("alice")?.expect("just cached");
    /// assert_eq!(here.merchant_id, "coffee-42");
    /// assert_eq!(here.entered_at_s(), 1_700_000_000);
    ///
    /// // Inside a transaction, together with other tables.
    /// store.write(|tx| {
    ///     tx.location().put("bob", "bakery-7")?;
    ///     Ok::<_, edgestate::Error>(())
    /// })?;
    /// assert!(location.delete("bob")?);
    ///
    /// clock.advance(Duration::from_secs(60 * 60)); // the default location TTL
    /// assert_eq!(location.get("alice")?, None);
    /// # Ok(())
    /// # }
    /// ```
    LocationCache
}

impl<A: Access> LocationCache<'_, A> {
    /// The user's current merchant, or `None` if none is cached or it has expired.
    ///
    /// # Errors
    /// [`InvalidInput`](crate::Error::InvalidInput) for an empty or oversized user;
    /// [`Corrupt`](crate::Error::Corrupt) or [`Decode`](crate::Error::Decode) for a
    /// damaged record; storage errors.
    pub fn get(&self, user: &str) -> Result<Option<CurrentMerchant>> {
        limits::check_key("user", user)?;
        self.src
            .with_reader(|r| match record::get(r, &LOCATIONS, user)? {
                Some(stored) => Ok(Some(decode(user, &stored)?)),
                None => Ok(None),
            })
    }
}

impl<A: WriteAccess> LocationCache<'_, A> {
    /// Caches `merchant_id` as the user's current merchant, entered now, replacing any
    /// other; it expires `location_ttl` from now. Returns what was cached.
    ///
    /// # Errors
    /// [`InvalidInput`](crate::Error::InvalidInput) for an empty or oversized user or
    /// merchant id; [`Corrupt`](crate::Error::Corrupt) when the entry it replaces is
    /// damaged; storage and commit errors.
    pub fn put(&self, user: &str, merchant_id: &str) -> Result<CurrentMerchant> {
        limits::check_key("user", user)?;
        limits::check_key("merchant_id", merchant_id)?;
        self.src.with_writer(|tx| {
            let now = tx.now_ms();
            let expires_at_ms = expiry_after(now, tx.config().location_ttl);
            let payload = codec::to_postcard(
                "current merchant",
                &Body {
                    merchant_id: merchant_id.to_owned(),
                    entered_at_ms: now,
                },
            )?;
            record::put(
                tx,
                LOCATIONS,
                user,
                envelope::FORMAT_POSTCARD,
                &payload,
                Some(expires_at_ms),
                Expect::Any,
            )?;
            Ok(CurrentMerchant {
                merchant_id: merchant_id.to_owned(),
                entered_at_ms: now,
                expires_at_ms,
            })
        })
    }

    /// Forgets the user's current merchant. Returns whether a live entry was removed.
    ///
    /// # Errors
    /// [`InvalidInput`](crate::Error::InvalidInput) for an empty or oversized user;
    /// storage and commit errors.
    pub fn delete(&self, user: &str) -> Result<bool> {
        limits::check_key("user", user)?;
        self.src
            .with_writer(|tx| Ok(record::delete(tx, LOCATIONS, user)?.is_some()))
    }
}
