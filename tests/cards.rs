//! The card index: link, lookup, unlink, moves between users, and the reverse index
//! agreeing with the forward one under any sequence of operations.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use common::clocked_store as store;
use edgestate::{Error, Store, Table};
use proptest::prelude::*;

fn fingerprints_of(store: &Store, user: &str) -> Vec<String> {
    store
        .cards()
        .list(user)
        .expect("user cards")
        .into_iter()
        .map(|m| m.fingerprint)
        .collect()
}

#[test]
fn link_lookup_unlink() {
    let (store, _) = store();
    let cards = store.cards();
    assert!(cards.get("fp1").expect("lookup").is_none());

    let outcome = cards.put("fp1", "alice", "4242").expect("link");
    assert_eq!(outcome.previous_owner, None);
    assert!(!outcome.relinked);
    assert_eq!(outcome.mapping.user_pubkey, "alice");
    assert_eq!(outcome.mapping.card_last4, "4242");
    assert_eq!(outcome.mapping.linked_at_s, 1_700_000_000);

    let found = cards.get("fp1").expect("lookup").expect("linked");
    assert_eq!(found, outcome.mapping);
    assert_eq!(cards.list("alice").expect("cards"), vec![found.clone()]);

    let removed = cards.delete("fp1").expect("unlink").expect("was linked");
    assert_eq!(removed, found);
    assert!(cards.get("fp1").expect("lookup").is_none());
    assert!(cards.list("alice").expect("cards").is_empty());
    assert!(cards.delete("fp1").expect("unlink again").is_none());
}

#[test]
fn moving_a_card_reports_the_previous_owner_and_both_directions_follow() {
    let (store, clock) = store();
    let cards = store.cards();
    cards.put("fp1", "alice", "1111").expect("link");
    cards.put("fp2", "alice", "2222").expect("link");

    clock.advance(Duration::from_secs(60));
    let moved = cards.put("fp1", "bob", "1111").expect("move");
    assert_eq!(moved.previous_owner.as_deref(), Some("alice"));
    assert!(!moved.relinked);
    assert_eq!(moved.mapping.linked_at_s, 1_700_000_060);

    assert_eq!(fingerprints_of(&store, "alice"), vec!["fp2"]);
    assert_eq!(fingerprints_of(&store, "bob"), vec!["fp1"]);
    assert_eq!(
        cards
            .get("fp1")
            .expect("lookup")
            .expect("linked")
            .user_pubkey,
        "bob"
    );

    // Back again.
    let back = cards.put("fp1", "alice", "1111").expect("move back");
    assert_eq!(back.previous_owner.as_deref(), Some("bob"));
    assert_eq!(fingerprints_of(&store, "alice"), vec!["fp1", "fp2"]);
    assert!(fingerprints_of(&store, "bob").is_empty());
}

#[test]
fn relinking_to_the_same_user_just_updates() {
    let (store, clock) = store();
    let cards = store.cards();
    cards.put("fp1", "alice", "1111").expect("link");
    clock.advance(Duration::from_secs(5));
    let again = cards.put("fp1", "alice", "9999").expect("relink");
    assert!(again.relinked);
    assert_eq!(again.previous_owner, None);
    assert_eq!(again.mapping.card_last4, "9999");
    assert_eq!(again.mapping.linked_at_s, 1_700_000_005);
    let listed = cards.list("alice").expect("cards");
    assert_eq!(listed, vec![again.mapping]);
}

#[test]
fn user_cards_are_in_fingerprint_order_and_per_user() {
    let (store, _) = store();
    let cards = store.cards();
    for fp in ["fp-c", "fp-a", "fp-b"] {
        cards.put(fp, "alice", "0000").expect("link");
    }
    cards.put("fp-z", "bob", "0000").expect("link");
    assert_eq!(
        fingerprints_of(&store, "alice"),
        vec!["fp-a", "fp-b", "fp-c"]
    );
    assert_eq!(fingerprints_of(&store, "bob"), vec!["fp-z"]);
    assert!(fingerprints_of(&store, "carol").is_empty());
    cards.delete("fp-b").expect("unlink");
    assert_eq!(fingerprints_of(&store, "alice"), vec!["fp-a", "fp-c"]);
}

#[test]
fn invalid_input_is_refused_and_writes_nothing() {
    let (store, _) = store();
    let cards = store.cards();
    for bad in ["", "123", "12345", "12a4", "12 4"] {
        match cards.put("fp1", "alice", bad) {
            Err(Error::InvalidInput { field, .. }) => assert_eq!(field, "card_last4"),
            other => panic!("{bad:?} gave {other:?}"),
        }
    }
    assert!(matches!(
        cards.put("", "alice", "1234"),
        Err(Error::InvalidInput { field, .. }) if field == "fingerprint"
    ));
    assert!(matches!(
        cards.put("fp1", "", "1234"),
        Err(Error::InvalidInput { field, .. }) if field == "user"
    ));
    assert!(cards.get("fp1").expect("lookup").is_none());
    let stats = store.stats().expect("stats");
    assert_eq!(stats.records(Table::Cards), 0);
    assert_eq!(stats.records(Table::UserCards), 0);
}

#[test]
fn both_indexes_roll_back_together() {
    let (store, _) = store();
    store.cards().put("fp1", "alice", "1111").expect("link");
    let outcome: Result<(), Error> = store.write(|tx| {
        tx.cards().put("fp1", "bob", "1111")?;
        tx.cards().put("fp2", "bob", "2222")?;
        assert_eq!(tx.cards().list("bob")?.len(), 2, "sees its own writes");
        Err(Error::NotFound {
            table: "demo",
            key: "abort".into(),
        })
    });
    assert!(outcome.is_err());
    assert_eq!(fingerprints_of(&store, "alice"), vec!["fp1"]);
    assert!(fingerprints_of(&store, "bob").is_empty());
    assert!(store.cards().get("fp2").expect("lookup").is_none());
}

#[test]
fn read_snapshot_sees_both_directions() {
    let (store, _) = store();
    store.cards().put("fp1", "alice", "1111").expect("link");
    let (mapping, listed) = store
        .read(|tx| {
            let m = tx.cards().get("fp1")?;
            let l = tx.cards().list("alice")?;
            Ok::<_, Error>((m, l))
        })
        .expect("read");
    assert_eq!(mapping.map(|m| m.user_pubkey).as_deref(), Some("alice"));
    assert_eq!(listed.len(), 1);
}

#[derive(Debug, Clone)]
enum Op {
    Link { fp: usize, user: usize },
    Unlink { fp: usize },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..6usize, 0..4usize).prop_map(|(fp, user)| Op::Link { fp, user }),
        1 => (0..6usize).prop_map(|fp| Op::Unlink { fp }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn random_link_unlink_sequences_keep_both_directions_in_agreement(
        ops in proptest::collection::vec(op(), 1..40)
    ) {
        let store = Store::in_memory().expect("store");
        let cards = store.cards();
        let fps: Vec<String> = (0..6).map(|i| format!("fp{i}")).collect();
        let users: Vec<String> = (0..4).map(|i| format!("user{i}")).collect();
        let mut model: HashMap<String, String> = HashMap::new();

        for op in ops {
            match op {
                Op::Link { fp, user } => {
                    let outcome = cards.put(&fps[fp], &users[user], "1234").expect("link");
                    let before = model.insert(fps[fp].clone(), users[user].clone());
                    let expected_previous = before.clone().filter(|u| *u != users[user]);
                    prop_assert_eq!(outcome.previous_owner, expected_previous);
                    prop_assert_eq!(outcome.relinked, before.as_deref() == Some(users[user].as_str()));
                }
                Op::Unlink { fp } => {
                    let removed = cards.delete(&fps[fp]).expect("unlink");
                    let before = model.remove(&fps[fp]);
                    prop_assert_eq!(removed.map(|m| m.user_pubkey), before);
                }
            }

            for fp in &fps {
                let stored = cards.get(fp).expect("lookup").map(|m| m.user_pubkey);
                prop_assert_eq!(stored.as_ref(), model.get(fp));
            }
            for user in &users {
                let listed: BTreeSet<String> = cards
                    .list(user)
                    .expect("user cards")
                    .into_iter()
                    .map(|m| {
                        assert_eq!(&m.user_pubkey, user, "reverse entry points back");
                        m.fingerprint
                    })
                    .collect();
                let expected: BTreeSet<String> = model
                    .iter()
                    .filter(|(_, u)| *u == user)
                    .map(|(fp, _)| fp.clone())
                    .collect();
                prop_assert_eq!(listed, expected);
            }
        }
        let stats = store.stats().expect("stats");
        let linked = u64::try_from(model.len()).expect("small");
        prop_assert_eq!(stats.records(Table::Cards), linked);
        prop_assert_eq!(stats.records(Table::UserCards), linked);
    }
}
