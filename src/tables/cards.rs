//! The card index: which user a payment card (by its fingerprint) belongs to, and which
//! cards a user has. This is the glue from a POS webhook, which knows only the card, to
//! the user's state.
//!
//! `fingerprint -> mapping` is unique (a card belongs to at most one user) and
//! `user -> {fingerprint}` is its reverse index. Both change in the same transaction on
//! every [`put`](Cards::put) and [`delete`](Cards::delete), so they always agree; a
//! user's cards ([`list`](Cards::list)) are read from the reverse index, never by a scan.

use redb::ReadableMultimapTable;
use serde::{Deserialize, Serialize};

use super::record::{self, Slot, Stored};
use super::{handle, unix_seconds};
use crate::access::{Access, WriteAccess};
use crate::codec::{self, envelope};
use crate::error::{Error, Result};
use crate::limits;
use crate::schema::{CARDS, USER_CARDS};
use crate::txn::WriteTx;

/// The reverse index's name, as errors show it.
const REVERSE_TABLE: &str = "edgestate.user_cards";

/// A card linked to a user.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CardMapping {
    /// The card's fingerprint (from the payment processor); the record's key.
    pub fingerprint: String,
    /// The user the card belongs to.
    pub user_pubkey: String,
    /// The last four digits of the card number: exactly four ASCII digits.
    pub card_last4: String,
    /// When the card was (last) linked, in Unix seconds (the store's clock).
    #[serde(rename = "linked_at")]
    pub linked_at_s: i64,
}

/// What [`Cards::put`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkOutcome {
    /// The mapping as stored now.
    pub mapping: CardMapping,
    /// The user the card belonged to before, when it moved from another user.
    pub previous_owner: Option<String>,
    /// True if the card was already linked to this same user (its last four digits and
    /// `linked_at_s` were refreshed).
    pub relinked: bool,
}

/// Accepts exactly four ASCII digits, the only form a card number's tail takes.
fn check_last4(last4: &str) -> Result<()> {
    if last4.len() == 4 && last4.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(Error::invalid(
            "card_last4",
            "must be exactly four ASCII digits",
        ))
    }
}

fn decode(fingerprint: &str, stored: &Stored) -> Result<CardMapping> {
    stored.decode(CARDS.name, fingerprint)
}

/// The forward record of a card as a write sees it.
enum Current {
    Absent,
    Linked(CardMapping),
    /// Undecodable: its owner cannot be read, so the reverse index is scrubbed by a scan.
    Unreadable,
}

impl Current {
    /// Classifies the live record of an opened slot.
    fn of(fingerprint: &str, live: Option<&Stored>) -> Result<Self> {
        match live.map(|stored| decode(fingerprint, stored)) {
            None => Ok(Current::Absent),
            Some(Ok(mapping)) => Ok(Current::Linked(mapping)),
            Some(Err(Error::Corrupt { .. } | Error::Decode { .. })) => Ok(Current::Unreadable),
            Some(Err(e)) => Err(e),
        }
    }
}

/// Removes `fingerprint` from every user's set. A full scan, taken only when the
/// forward record is damaged and so cannot name its owner.
fn scrub_reverse(tx: &WriteTx, fingerprint: &str) -> Result<()> {
    let mut index = tx.open_multimap_table(USER_CARDS)?;
    let mut owners = Vec::new();
    for entry in index.iter()? {
        let (user, fingerprints) = entry?;
        for fp in fingerprints {
            if fp?.value() == fingerprint {
                owners.push(user.value().to_owned());
            }
        }
    }
    for owner in owners {
        index.remove(owner.as_str(), fingerprint)?;
    }
    Ok(())
}

handle! {
    /// The card index, from `tx.cards()`, `read.cards()` or `store.cards()`. On a
    /// [`Store`](crate::Store) each call is its own transaction; inside
    /// [`Store::write`](crate::Store::write) reads see the transaction's own writes, and
    /// a link commits together with whatever else the transaction does.
    ///
    /// ```
    /// use edgestate::Store;
    ///
    /// # fn main() -> edgestate::Result<()> {
    /// let store = Store::in_memory()?;
    /// let cards = store.cards();
    ///
    /// cards.put("fp_visa_1", "alice", "4242")?;
    /// let owner = cards.get("fp_visa_1")?.expect("linked");
    /// assert_eq!(owner.user_pubkey, "alice");
    ///
    /// // The card changes hands: the move is reported and both directions follow.
    /// let moved = cards.put("fp_visa_1", "bob", "4242")?;
    /// assert_eq!(moved.previous_owner.as_deref(), Some("alice"));
    /// assert!(cards.list("alice")?.is_empty());
    /// assert_eq!(cards.list("bob")?.len(), 1);
    ///
    /// // Inside one transaction, reads see the transaction's own writes.
    /// store.write(|tx| {
    ///     tx.cards().put("fp_amex_2", "bob", "0005")?;
    ///     assert_eq!(tx.cards().list("bob")?.len(), 2);
    ///     Ok::<_, edgestate::Error>(())
    /// })?;
    ///
    /// assert!(cards.delete("fp_visa_1")?.is_some());
    /// assert_eq!(cards.list("bob")?.len(), 1);
    /// # Ok(())
    /// # }
    /// ```
    Cards
}

impl<A: Access> Cards<'_, A> {
    /// The mapping of a card, or `None` if it is not linked.
    ///
    /// # Errors
    /// [`InvalidInput`](crate::Error::InvalidInput) for an empty or oversized
    /// fingerprint; [`Corrupt`](crate::Error::Corrupt) or
    /// [`Decode`](crate::Error::Decode) for a damaged record; storage errors.
    pub fn get(&self, fingerprint: &str) -> Result<Option<CardMapping>> {
        limits::check_key("fingerprint", fingerprint)?;
        self.src.with_reader(|r| {
            record::get(r, &CARDS, fingerprint)?
                .map(|stored| decode(fingerprint, &stored))
                .transpose()
        })
    }

    /// The user's cards, in fingerprint order, from the reverse index (each card read
    /// from the same snapshot).
    ///
    /// # Errors
    /// [`InvalidInput`](crate::Error::InvalidInput) for an empty or oversized user;
    /// [`Corrupt`](crate::Error::Corrupt) when the reverse index lists a card that is not
    /// linked to this user, or for a damaged card record;
    /// [`Decode`](crate::Error::Decode) for an undecodable one; storage errors.
    pub fn list(&self, user: &str) -> Result<Vec<CardMapping>> {
        limits::check_key("user", user)?;
        self.src.with_reader(|r| {
            let index = r.open_multimap(USER_CARDS)?;
            let mut fingerprints = Vec::new();
            for fingerprint in index.get(user)? {
                fingerprints.push(fingerprint?.value().to_owned());
            }
            let cards = r.open(CARDS.def)?;
            let now = r.now_ms();
            let mut out = Vec::with_capacity(fingerprints.len());
            for fingerprint in fingerprints {
                let mapping = record::get_in(&cards, &CARDS, fingerprint.as_str(), now)?
                    .map(|stored| decode(&fingerprint, &stored))
                    .transpose()?;
                match mapping {
                    Some(mapping) if mapping.user_pubkey == user => out.push(mapping),
                    _ => {
                        return Err(Error::Corrupt {
                            table: REVERSE_TABLE,
                            key: user.to_owned(),
                            reason: format!(
                                "the reverse index lists card `{fingerprint}`, which is not linked to this user"
                            ),
                        })
                    }
                }
            }
            Ok(out)
        })
    }
}

impl<A: WriteAccess> Cards<'_, A> {
    /// Links the card to `user`, moving it if another user had it (reported as
    /// [`LinkOutcome::previous_owner`]); relinking to the same user refreshes
    /// `card_last4` and `linked_at_s`. The reverse index changes in the same
    /// transaction. An undecodable mapping is replaced (its stale reverse entries are
    /// scrubbed by a scan of the reverse index).
    ///
    /// # Errors
    /// [`InvalidInput`](crate::Error::InvalidInput) for an empty or oversized fingerprint
    /// or user, or a `card_last4` that is not exactly four ASCII digits;
    /// [`Corrupt`](crate::Error::Corrupt) when the stored record is damaged (nothing is
    /// written; [`delete`](Self::delete) removes it); storage and commit errors.
    pub fn put(&self, fingerprint: &str, user: &str, card_last4: &str) -> Result<LinkOutcome> {
        limits::check_key("fingerprint", fingerprint)?;
        limits::check_key("user", user)?;
        check_last4(card_last4)?;
        self.src.with_writer(|tx| {
            let slot = Slot::open(tx, CARDS, fingerprint)?;
            let current = Current::of(fingerprint, slot.live())?;
            let mapping = CardMapping {
                fingerprint: fingerprint.to_owned(),
                user_pubkey: user.to_owned(),
                card_last4: card_last4.to_owned(),
                linked_at_s: unix_seconds(tx.now_ms()),
            };
            let body = codec::to_postcard("card mapping", &mapping)?;
            slot.put(envelope::FORMAT_POSTCARD, &body, None)?;
            let (previous_owner, relinked) = match current {
                Current::Linked(old) if old.user_pubkey == user => (None, true),
                Current::Linked(old) => {
                    let mut index = tx.open_multimap_table(USER_CARDS)?;
                    index.remove(old.user_pubkey.as_str(), fingerprint)?;
                    (Some(old.user_pubkey), false)
                }
                Current::Unreadable => {
                    scrub_reverse(tx, fingerprint)?;
                    (None, false)
                }
                Current::Absent => (None, false),
            };
            let mut index = tx.open_multimap_table(USER_CARDS)?;
            index.insert(user, fingerprint)?;
            Ok(LinkOutcome {
                mapping,
                previous_owner,
                relinked,
            })
        })
    }

    /// Unlinks the card from its user (both directions, in one transaction); returns the
    /// mapping it had, if any. A damaged record is removed too (returning `None`), and
    /// its stale reverse entries are scrubbed by a scan of the reverse index.
    ///
    /// # Errors
    /// [`InvalidInput`](crate::Error::InvalidInput) for an empty or oversized
    /// fingerprint; storage and commit errors.
    pub fn delete(&self, fingerprint: &str) -> Result<Option<CardMapping>> {
        limits::check_key("fingerprint", fingerprint)?;
        self.src.with_writer(|tx| {
            let current = match Slot::open(tx, CARDS, fingerprint) {
                Ok(slot) => {
                    let current = Current::of(fingerprint, slot.live())?;
                    slot.delete()?;
                    current
                }
                // A damaged envelope: a slot refuses it, the lenient delete removes it.
                Err(Error::Corrupt { .. }) => {
                    record::delete(tx, CARDS, fingerprint)?;
                    Current::Unreadable
                }
                Err(e) => return Err(e),
            };
            match current {
                Current::Linked(old) => {
                    let mut index = tx.open_multimap_table(USER_CARDS)?;
                    index.remove(old.user_pubkey.as_str(), fingerprint)?;
                    Ok(Some(old))
                }
                Current::Unreadable => {
                    scrub_reverse(tx, fingerprint)?;
                    Ok(None)
                }
                Current::Absent => Ok(None),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use redb::{MultimapTableDefinition, MultimapTableHandle};

    #[test]
    fn last4_is_four_ascii_digits() {
        assert!(check_last4("0042").is_ok());
        for bad in ["", "123", "12345", "12a4", "١٢٣٤", " 123"] {
            assert!(check_last4(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn reverse_table_name_matches_schema() {
        let def: MultimapTableDefinition<&str, &str> = USER_CARDS;
        assert_eq!(def.name(), REVERSE_TABLE);
    }

    #[test]
    fn linked_at_keeps_its_json_name() {
        let mapping = CardMapping {
            linked_at_s: 7,
            ..CardMapping::default()
        };
        let json = serde_json::to_value(&mapping).unwrap();
        assert_eq!(json["linked_at"], 7);
        assert!(json.get("linked_at_s").is_none());
    }
}
