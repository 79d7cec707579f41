//! The card index: which user a payment card (by its fingerprint) belongs to, and which
//! cards a user has. This is the glue from a POS webhook, which knows only the card, to
//! the user's state.
//!
//! `fingerprint -> mapping` is unique (a card belongs to at most one user) and
//! `user -> {fingerprint}` is its reverse index. Both change in the same transaction on
//! every link and unlink, so they always agree; a user's cards are read from the reverse
//! index, never by a scan.

use redb::{ReadableMultimapTable, ReadableTable};
use serde::{Deserialize, Serialize};

use super::record::{self, NewRecord};
use super::{unix_seconds, Expect};
use crate::codec::{self, envelope};
use crate::error::{Error, Result};
use crate::limits;
use crate::schema::{CARDS, USER_CARDS};
use crate::store::Store;
use crate::txn::{ReadTx, WriteTx};

const TABLE: &str = "edgestate.cards";
const REVERSE_TABLE: &str = "edgestate.user_cards";

/// A card linked to a user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CardMapping {
    /// The card's fingerprint (from the payment processor); the record's key.
    pub fingerprint: String,
    /// The user the card belongs to.
    pub user_pubkey: String,
    /// The last four digits of the card number: exactly four ASCII digits.
    pub card_last4: String,
    /// When the card was (last) linked, in Unix seconds (the store's clock).
    pub linked_at: i64,
}

/// What [`CardsTx::link`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkOutcome {
    /// The mapping as stored now.
    pub mapping: CardMapping,
    /// The user the card belonged to before, when it moved from another user.
    pub previous_owner: Option<String>,
    /// True if the card was already linked to this same user (its last four digits and
    /// `linked_at` were refreshed).
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

fn shown(fingerprint: &str) -> impl Fn() -> String + '_ {
    move || fingerprint.to_owned()
}

fn decode(fingerprint: &str, stored: record::Stored) -> Result<CardMapping> {
    if stored.format != envelope::FORMAT_POSTCARD_V1 {
        return Err(Error::Decode {
            table: TABLE,
            key: fingerprint.to_owned(),
            reason: format!("record format {} is not a card mapping", stored.format),
        });
    }
    codec::from_postcard(TABLE, fingerprint, &stored.payload)
}

// Reads, generic over read and write transactions.

fn lookup_in<T>(cards: &T, fingerprint: &str, now: u64) -> Result<Option<CardMapping>>
where
    T: ReadableTable<&'static str, &'static [u8]>,
{
    limits::check_key("fingerprint", fingerprint)?;
    match record::get_live(cards, TABLE, fingerprint, &shown(fingerprint), now)? {
        Some(stored) => Ok(Some(decode(fingerprint, stored)?)),
        None => Ok(None),
    }
}

fn user_cards_in<T, M>(cards: &T, index: &M, user: &str, now: u64) -> Result<Vec<CardMapping>>
where
    T: ReadableTable<&'static str, &'static [u8]>,
    M: ReadableMultimapTable<&'static str, &'static str>,
{
    limits::check_key("user", user)?;
    let mut fingerprints = Vec::new();
    for fingerprint in index.get(user)? {
        fingerprints.push(fingerprint?.value().to_owned());
    }
    let mut out = Vec::with_capacity(fingerprints.len());
    for fingerprint in fingerprints {
        match lookup_in(cards, &fingerprint, now)? {
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
}

/// The forward record of a card as a write sees it.
enum Current {
    Absent,
    Linked(CardMapping),
    /// Damaged: its owner cannot be read, so the reverse index is scrubbed by a scan.
    Unreadable,
}

/// The card index inside a write transaction: reads see the transaction's own writes.
/// Obtained from [`WriteTx::cards`].
#[derive(Debug, Clone, Copy)]
pub struct CardsTx<'t> {
    tx: &'t WriteTx,
}

impl WriteTx {
    /// The card index.
    pub fn cards(&self) -> CardsTx<'_> {
        CardsTx { tx: self }
    }
}

impl CardsTx<'_> {
    /// The mapping of a card, or `None` if it is not linked.
    pub fn lookup(&self, fingerprint: &str) -> Result<Option<CardMapping>> {
        let cards = self.tx.raw().open_table(CARDS)?;
        lookup_in(&cards, fingerprint, self.tx.now_ms())
    }

    /// The user's cards, in fingerprint order, from the reverse index.
    pub fn user_cards(&self, user: &str) -> Result<Vec<CardMapping>> {
        let cards = self.tx.raw().open_table(CARDS)?;
        let index = self.tx.raw().open_multimap_table(USER_CARDS)?;
        user_cards_in(&cards, &index, user, self.tx.now_ms())
    }

    /// Links the card to `user`, moving it if another user had it (reported as
    /// [`LinkOutcome::previous_owner`]); relinking to the same user refreshes
    /// `card_last4` and `linked_at`. `card_last4` must be exactly four ASCII digits.
    pub fn link(&self, fingerprint: &str, user: &str, card_last4: &str) -> Result<LinkOutcome> {
        limits::check_key("fingerprint", fingerprint)?;
        limits::check_key("user", user)?;
        check_last4(card_last4)?;
        let current = self.current(fingerprint)?;
        let mapping = CardMapping {
            fingerprint: fingerprint.to_owned(),
            user_pubkey: user.to_owned(),
            card_last4: card_last4.to_owned(),
            linked_at: unix_seconds(self.tx.now_ms()),
        };
        let body = codec::to_postcard("card mapping", &mapping)?;
        record::put(
            self.tx,
            CARDS,
            fingerprint,
            &shown(fingerprint),
            None,
            NewRecord::postcard(&body, None, Expect::Any),
        )?;
        let (previous_owner, relinked) = match current {
            Current::Linked(old) if old.user_pubkey == user => (None, true),
            Current::Linked(old) => {
                let mut index = self.tx.raw().open_multimap_table(USER_CARDS)?;
                index.remove(old.user_pubkey.as_str(), fingerprint)?;
                (Some(old.user_pubkey), false)
            }
            Current::Unreadable => {
                self.scrub_reverse(fingerprint)?;
                (None, false)
            }
            Current::Absent => (None, false),
        };
        let mut index = self.tx.raw().open_multimap_table(USER_CARDS)?;
        index.insert(user, fingerprint)?;
        Ok(LinkOutcome {
            mapping,
            previous_owner,
            relinked,
        })
    }

    /// Unlinks the card from its user; returns the mapping it had, if any.
    pub fn unlink(&self, fingerprint: &str) -> Result<Option<CardMapping>> {
        limits::check_key("fingerprint", fingerprint)?;
        let current = self.current(fingerprint)?;
        record::delete(self.tx, CARDS, fingerprint, &shown(fingerprint), None)?;
        match current {
            Current::Linked(old) => {
                let mut index = self.tx.raw().open_multimap_table(USER_CARDS)?;
                index.remove(old.user_pubkey.as_str(), fingerprint)?;
                Ok(Some(old))
            }
            Current::Unreadable => {
                self.scrub_reverse(fingerprint)?;
                Ok(None)
            }
            Current::Absent => Ok(None),
        }
    }

    fn current(&self, fingerprint: &str) -> Result<Current> {
        match self.lookup(fingerprint) {
            Ok(Some(mapping)) => Ok(Current::Linked(mapping)),
            Ok(None) => Ok(Current::Absent),
            Err(Error::Corrupt { .. } | Error::Decode { .. }) => Ok(Current::Unreadable),
            Err(e) => Err(e),
        }
    }

    /// Removes `fingerprint` from every user's set. A full scan, taken only when the
    /// forward record is damaged and so cannot name its owner.
    fn scrub_reverse(&self, fingerprint: &str) -> Result<()> {
        let mut index = self.tx.raw().open_multimap_table(USER_CARDS)?;
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
}

/// Card index reads on a snapshot. Obtained from [`ReadTx::cards`].
#[derive(Debug, Clone, Copy)]
pub struct CardsRead<'t> {
    tx: &'t ReadTx,
}

impl ReadTx {
    /// The card index.
    pub fn cards(&self) -> CardsRead<'_> {
        CardsRead { tx: self }
    }
}

impl CardsRead<'_> {
    /// The mapping of a card, or `None` if it is not linked.
    pub fn lookup(&self, fingerprint: &str) -> Result<Option<CardMapping>> {
        let cards = self.tx.raw().open_table(CARDS)?;
        lookup_in(&cards, fingerprint, self.tx.now_ms())
    }

    /// The user's cards, in fingerprint order, from the reverse index.
    pub fn user_cards(&self, user: &str) -> Result<Vec<CardMapping>> {
        let cards = self.tx.raw().open_table(CARDS)?;
        let index = self.tx.raw().open_multimap_table(USER_CARDS)?;
        user_cards_in(&cards, &index, user, self.tx.now_ms())
    }
}

/// Card index calls on the store, each in its own transaction. Obtained from
/// [`Store::cards`]; see [`CardsTx`] for the semantics.
///
/// ```
/// use edgestate::Store;
///
/// # fn main() -> edgestate::Result<()> {
/// let store = Store::in_memory()?;
/// let cards = store.cards();
///
/// cards.link("fp_visa_1", "alice", "4242")?;
/// let owner = cards.lookup("fp_visa_1")?.expect("linked");
/// assert_eq!(owner.user_pubkey, "alice");
///
/// // The card changes hands: the move is reported and both directions follow.
/// let moved = cards.link("fp_visa_1", "bob", "4242")?;
/// assert_eq!(moved.previous_owner.as_deref(), Some("alice"));
/// assert!(cards.user_cards("alice")?.is_empty());
/// assert_eq!(cards.user_cards("bob")?.len(), 1);
///
/// assert!(cards.unlink("fp_visa_1")?.is_some());
/// assert!(cards.user_cards("bob")?.is_empty());
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Cards<'s> {
    store: &'s Store,
}

impl Store {
    /// The card index.
    pub fn cards(&self) -> Cards<'_> {
        Cards { store: self }
    }
}

impl Cards<'_> {
    /// The mapping of a card, or `None` if it is not linked.
    pub fn lookup(&self, fingerprint: &str) -> Result<Option<CardMapping>> {
        self.store.read(|tx| tx.cards().lookup(fingerprint))
    }

    /// The user's cards, in fingerprint order, from the reverse index.
    pub fn user_cards(&self, user: &str) -> Result<Vec<CardMapping>> {
        self.store.read(|tx| tx.cards().user_cards(user))
    }

    /// Links (or moves, or refreshes) a card; see [`CardsTx::link`].
    pub fn link(&self, fingerprint: &str, user: &str, card_last4: &str) -> Result<LinkOutcome> {
        self.store
            .write(|tx| tx.cards().link(fingerprint, user, card_last4))
    }

    /// Unlinks a card; returns the mapping it had, if any.
    pub fn unlink(&self, fingerprint: &str) -> Result<Option<CardMapping>> {
        self.store.write(|tx| tx.cards().unlink(fingerprint))
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
}
