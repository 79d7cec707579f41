//! An integration test that used to need DynamoDB: the agent SDK's store replaced by a
//! temporary edgestate file and a manual clock, so TTL behaviour is tested without
//! sleeping and without a network.
//!
//! `cargo run --release --example offline_integration_test`

use std::time::Duration;

use edgestate::compat::loop_agent::{LoopAgentStore, StateError};
use edgestate::{ManualClock, PendingCapture, SessionKeyData, Store};

fn capture(merchant: &str, created_at: i64) -> PendingCapture {
    PendingCapture {
        merchant_id: merchant.into(),
        merchant_name: None,
        amount_cents: 999,
        card_last4: Some("4242".into()),
        proof_data: None,
        proof_type: None,
        location: None,
        created_at_s: created_at,
        expires_at_s: created_at + 1_814_400,
    }
}

fn main() -> Result<(), StateError> {
    // The only line that changes from the DynamoDB version: the constructor.
    let clock = ManualClock::new(1_700_000_000_000);
    let store = LoopAgentStore::from_store(Store::builder().clock(clock.clone()).temporary()?);
    let now_s = 1_700_000_000;

    store.link_card("fp_1", "alice", "4242")?;
    store.link_card("fp_2", "alice", "1111")?;
    assert_eq!(store.get_user_cards("alice")?.len(), 2);

    assert!(!store.is_transaction_processed("txn-1")?);
    store.mark_transaction_processed("txn-1", "alice", 500)?;
    assert!(store.is_transaction_processed("txn-1")?);

    // Two captures in the same second: the seed's second-resolution key lost one.
    store.add_pending_capture("alice", &capture("m-1", now_s))?;
    store.add_pending_capture("alice", &capture("m-2", now_s))?;
    assert_eq!(store.get_pending_captures("alice")?.len(), 2);

    store.cache_current_merchant("alice", "m-2")?;
    store.store_session_key(
        "alice",
        &SessionKeyData {
            key_pubkey: "k".into(),
            vault_pubkey: "v".into(),
            scopes: vec![],
            expires_at_s: now_s + 86_400,
            created_at_s: now_s,
            max_actions: 5,
            actions_used: 0,
        },
    )?;

    // One hour later the location cache is gone; the session is not.
    clock.advance(Duration::from_secs(3_600));
    assert_eq!(store.get_current_merchant("alice")?, None);
    assert!(store.get_session_key("alice")?.is_some());

    // A day later the session is gone too, before any sweep ran.
    clock.advance(Duration::from_secs(86_400));
    assert!(store.get_session_key("alice")?.is_none());

    // 30 days: the dedup record expired, so the id could be claimed again.
    clock.advance(Duration::from_secs(30 * 86_400));
    assert!(!store.is_transaction_processed("txn-1")?);
    assert!(
        store.get_pending_captures("alice")?.is_empty(),
        "21-day TTL passed"
    );
    let swept = store.store().sweep_all_expired(1_000)?;
    println!("offline integration test passed; sweep reclaimed {swept} expired records");
    Ok(())
}
