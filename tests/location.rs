//! The current-merchant location cache.

mod common;

use std::time::Duration;

use edgestate::{Error, ManualClock, Store, Table};

const T0_MS: u64 = 1_700_000_000_123;

fn store() -> (Store, ManualClock) {
    common::clocked_store_with(T0_MS, |b| b)
}

fn records(store: &Store, table: Table) -> u64 {
    store.stats().expect("stats").records(table)
}

#[test]
fn cache_and_read_back() {
    let (store, _) = store();
    let loc = store.location();
    assert_eq!(loc.get("alice").expect("get"), None);
    let cached = loc.put("alice", "coffee-42").expect("cache");
    assert_eq!(cached.merchant_id, "coffee-42");
    assert_eq!(cached.entered_at_ms, T0_MS);
    assert_eq!(cached.entered_at_s(), 1_700_000_000);
    assert_eq!(cached.expires_at_ms, T0_MS + 3_600_000);
    assert_eq!(loc.get("alice").expect("get"), Some(cached));
    assert_eq!(
        loc.get("alice")
            .map(|m| m.map(|m| m.merchant_id))
            .expect("get"),
        Some("coffee-42".to_string())
    );
    assert_eq!(
        loc.get("bob")
            .map(|m| m.map(|m| m.merchant_id))
            .expect("get"),
        None
    );
}

#[test]
fn expires_after_the_location_ttl_before_any_sweep() {
    let (store, clock) = store();
    let loc = store.location();
    loc.put("alice", "coffee-42").expect("cache");
    clock.advance(Duration::from_secs(3600) - Duration::from_millis(1));
    assert!(loc.get("alice").expect("get").is_some());
    clock.advance(Duration::from_millis(1));
    assert_eq!(loc.get("alice").expect("get"), None);
    assert_eq!(records(&store, Table::Locations), 1);
    assert_eq!(store.sweep_all_expired(10).expect("sweep"), 1);
    assert_eq!(records(&store, Table::Locations), 0);
    assert_eq!(records(&store, Table::Expiry), 0);
}

#[test]
fn recaching_replaces_the_merchant_and_restarts_the_ttl() {
    let (store, clock) = store();
    let loc = store.location();
    loc.put("alice", "coffee-42").expect("cache");
    clock.advance(Duration::from_secs(1800));
    let again = loc.put("alice", "bakery-7").expect("cache");
    assert_eq!(again.entered_at_ms, T0_MS + 1_800_000);
    clock.advance(Duration::from_secs(1800));
    // The first TTL has run out; the second has not.
    assert_eq!(
        loc.get("alice")
            .map(|m| m.map(|m| m.merchant_id))
            .expect("get"),
        Some("bakery-7".to_string())
    );
    // One expiry entry, not two.
    assert_eq!(records(&store, Table::Expiry), 1);
    assert_eq!(store.sweep_all_expired(10).expect("sweep"), 0);
}

#[test]
fn a_custom_location_ttl_is_honoured() {
    let clock = ManualClock::new(T0_MS);
    let store = Store::builder()
        .clock(clock.clone())
        .location_ttl(Duration::from_secs(30))
        .in_memory()
        .expect("store");
    let cached = store.location().put("alice", "m").expect("cache");
    assert_eq!(cached.expires_at_ms, T0_MS + 30_000);
    clock.advance(Duration::from_secs(30));
    assert_eq!(store.location().get("alice").expect("get"), None);
}

#[test]
fn clear_forgets_the_merchant() {
    let (store, _) = store();
    let loc = store.location();
    loc.put("alice", "coffee-42").expect("cache");
    assert!(loc.delete("alice").expect("clear"));
    assert!(!loc.delete("alice").expect("clear again"));
    assert_eq!(loc.get("alice").expect("get"), None);
    assert_eq!(records(&store, Table::Expiry), 0);
}

#[test]
fn bad_input_is_refused_and_nothing_is_written() {
    let (store, _) = store();
    let loc = store.location();
    assert!(matches!(
        loc.put("", "m"),
        Err(Error::InvalidInput { field, .. }) if field == "user"
    ));
    assert!(matches!(
        loc.put("alice", ""),
        Err(Error::InvalidInput { field, .. }) if field == "merchant_id"
    ));
    assert!(matches!(loc.delete(""), Err(Error::InvalidInput { .. })));
    assert_eq!(records(&store, Table::Locations), 0);
}

#[test]
fn usable_inside_transactions() {
    let (store, _) = store();
    store
        .write(|tx| {
            tx.location().put("alice", "m-1")?;
            assert_eq!(
                tx.location().get("alice")?.map(|m| m.merchant_id),
                Some("m-1".into())
            );
            Ok::<_, Error>(())
        })
        .expect("write");
    let seen = store
        .read(|tx| tx.location().get("alice").map(|m| m.map(|m| m.merchant_id)))
        .expect("read");
    assert_eq!(seen, Some("m-1".into()));

    let rolled_back: Result<(), Error> = store.write(|tx| {
        tx.location().put("alice", "m-2")?;
        Err(Error::NotFound {
            table: "test",
            key: "abort".into(),
        })
    });
    assert!(rolled_back.is_err());
    assert_eq!(
        store
            .location()
            .get("alice")
            .map(|m| m.map(|m| m.merchant_id))
            .expect("get"),
        Some("m-1".into())
    );
}
