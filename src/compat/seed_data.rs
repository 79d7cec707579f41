//! Writes that accept data a seed deployment already holds, built on the public API:
//! card tails that are not four digits, and sessions that have already expired.

use crate::error::{Error, Result};
use crate::store::Store;
use crate::tables::cards::CardMapping;
use crate::tables::sessions::SessionKeyData;
use crate::txn::ReadTx;

/// KV namespace holding a card's `card_last4` as the seed stored it, when that is not
/// four ASCII digits (the card index then holds [`PLACEHOLDER_LAST4`]). The value is
/// JSON `{"user_pubkey": ..., "card_last4": ...}`, keyed by fingerprint; it applies
/// only while the index still shows the placeholder for that same user, so a card
/// relinked through the native API is read as the index says.
pub const SEED_LAST4_NAMESPACE: &str = "compat.card_last4";

#[derive(serde::Serialize, serde::Deserialize)]
struct SeedLast4 {
    user_pubkey: String,
    card_last4: String,
}

/// What the card index holds for a card whose seed `card_last4` is not four digits.
pub const PLACEHOLDER_LAST4: &str = "0000";

fn four_digits(last4: &str) -> bool {
    last4.len() == 4 && last4.bytes().all(|b| b.is_ascii_digit())
}

/// Links a card, accepting any `card_last4` (the seed stored any string). A tail that is
/// not four digits is kept beside the card, in the same transaction.
pub(crate) fn link_card(
    store: &Store,
    fingerprint: &str,
    user: &str,
    card_last4: &str,
) -> Result<()> {
    store.transaction(|tx| {
        if four_digits(card_last4) {
            tx.cards().put(fingerprint, user, card_last4)?;
            tx.kv().delete(SEED_LAST4_NAMESPACE, fingerprint)?;
        } else {
            tx.cards().put(fingerprint, user, PLACEHOLDER_LAST4)?;
            let kept = SeedLast4 {
                user_pubkey: user.to_owned(),
                card_last4: card_last4.to_owned(),
            };
            let json = serde_json::to_vec(&kept).map_err(|e| Error::Encode {
                what: "card_last4",
                reason: e.to_string(),
            })?;
            tx.kv()
                .put(SEED_LAST4_NAMESPACE, fingerprint, &json, None)?;
        }
        Ok(())
    })
}

/// Unlinks a card and forgets any seed tail kept for it.
pub(crate) fn unlink_card(store: &Store, fingerprint: &str) -> Result<()> {
    store.transaction(|tx| {
        tx.cards().delete(fingerprint)?;
        tx.kv().delete(SEED_LAST4_NAMESPACE, fingerprint)?;
        Ok(())
    })
}

/// Puts back the seed tail of a card read from the index, if one was kept.
fn restore_last4(tx: &ReadTx, mut mapping: CardMapping) -> Result<CardMapping> {
    if mapping.card_last4 != PLACEHOLDER_LAST4 {
        return Ok(mapping);
    }
    if let Some(entry) = tx.kv().get(SEED_LAST4_NAMESPACE, &mapping.fingerprint)? {
        let kept: SeedLast4 = serde_json::from_slice(&entry.value).map_err(|e| Error::Decode {
            table: "compat.card_last4",
            key: mapping.fingerprint.clone(),
            reason: e.to_string(),
        })?;
        if kept.user_pubkey == mapping.user_pubkey {
            mapping.card_last4 = kept.card_last4;
        }
    }
    Ok(mapping)
}

/// The card's mapping with its seed tail, from one snapshot.
pub(crate) fn lookup_card(store: &Store, fingerprint: &str) -> Result<Option<CardMapping>> {
    store.read(|tx| match tx.cards().get(fingerprint)? {
        Some(m) => restore_last4(tx, m).map(Some),
        None => Ok(None),
    })
}

/// The user's cards with their seed tails, from one snapshot.
pub(crate) fn user_cards(store: &Store, user: &str) -> Result<Vec<CardMapping>> {
    store.read(|tx| {
        tx.cards()
            .list(user)?
            .into_iter()
            .map(|m| restore_last4(tx, m))
            .collect()
    })
}

/// Stores a session as the seed did: an already expired one replaces any stored session
/// and reads back as `None` (the seed wrote it and its read filtered it out).
pub(crate) fn store_session(store: &Store, user: &str, session: &SessionKeyData) -> Result<()> {
    store.transaction(|tx| match tx.sessions().put(user, session) {
        Err(Error::InvalidInput { field, .. }) if field == "expires_at_s" => {
            tx.sessions().delete(user)?;
            Ok(())
        }
        other => other,
    })
}
