//! The agent SDK seed (`loop_agent_sdk`): caller code written as the seed's callers
//! write it, compiled against `edgestate::compat::loop_agent_sdk` with only the import
//! and the table name changed, asserting the seed's behaviour with its bugs fixed.

#![cfg(feature = "tokio")]
#![allow(clippy::unwrap_used)] // tests state their expectations by unwrapping

mod common;

use common::gate_clock::GateClock;
use std::time::{SystemTime, UNIX_EPOCH};

use edgestate::compat::loop_agent_sdk::dynamo::{
    CardMapping, DynamoConfig, DynamoStateStore, PendingCapture, PendingLocation, SessionKeyData,
};
use edgestate::compat::loop_agent_sdk::state::{
    init_user_context, ContextEvent, DynamoStateConfig, StateError, StateStore, UserContext,
};
use serde_json::json;

/// Seed caller code: unchanged from a seed deployment.
mod seed_caller {
    use super::*;

    pub fn now() -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
    }

    /// The POS webhook, in the seed's calls.
    pub async fn on_payment(
        store: &DynamoStateStore,
        fingerprint: &str,
        txn_id: &str,
        merchant_id: &str,
        amount_cents: u64,
    ) -> Result<Option<String>, StateError> {
        let Some(card) = store.lookup_user_by_card(fingerprint).await? else {
            return Ok(None);
        };
        if store.is_transaction_processed(txn_id).await? {
            return Ok(None);
        }
        store
            .mark_transaction_processed(txn_id, &card.user_pubkey, amount_cents)
            .await?;
        let capture = PendingCapture {
            merchant_id: merchant_id.to_string(),
            merchant_name: Some("Coffee".to_string()),
            amount_cents,
            card_last4: Some(card.card_last4.clone()),
            proof_data: None,
            proof_type: None,
            location: Some(PendingLocation {
                latitude: 1.5,
                longitude: 2.5,
                accuracy_m: 10.0,
            }),
            created_at: now(),
            expires_at: now() + 3600,
        };
        store
            .add_pending_capture(&card.user_pubkey, &capture)
            .await?;
        Ok(Some(card.user_pubkey))
    }

    /// Returns the call directly: compiles only if the seed's return type is kept.
    pub async fn queue(
        store: &DynamoStateStore,
        user: &str,
        capture: &PendingCapture,
    ) -> Result<(), StateError> {
        store.add_pending_capture(user, capture).await
    }

    pub async fn start_session(
        store: &DynamoStateStore,
        user: &str,
        session: &SessionKeyData,
    ) -> Result<(), StateError> {
        store.store_session_key(user, session).await
    }

    /// The seed's read-modify-increment-push.
    pub fn credit(
        store: &dyn StateStore,
        user: &str,
        amount: u64,
    ) -> Result<UserContext, StateError> {
        let mut ctx = store.get_or_init(user)?;
        ctx.vault.cred_balance += amount;
        ctx.version += 1;
        ctx.updated_at = now();
        store.context_push(ctx.clone())?;
        Ok(ctx)
    }

    /// An exhaustive match on the seed's error: compiles only with exactly its variants.
    pub fn describe(e: &StateError) -> &'static str {
        match e {
            StateError::NotFound => "not found",
            StateError::VersionConflict { .. } => "conflict",
            StateError::StorageError(_) => "storage",
            StateError::SerializationError(_) => "serialization",
            StateError::Timeout => "timeout",
        }
    }
}

fn config(dir: &tempfile::TempDir) -> DynamoConfig {
    // Every field of the seed's struct, written out as a seed caller does.
    DynamoConfig {
        table_name: dir.path().join("agent.edgestate").display().to_string(),
        fingerprint_gsi: "CardFingerprintIndex".to_string(),
        ttl_attribute: "ttl".to_string(),
        max_pending_captures: 3,
        session_ttl_seconds: 86400,
        pending_ttl_seconds: 1814400,
        dax_endpoint: Some("dax://ignored".to_string()),
    }
}

fn capture(merchant: &str, created_at: i64) -> PendingCapture {
    PendingCapture {
        merchant_id: merchant.to_string(),
        merchant_name: None,
        amount_cents: 100,
        card_last4: None,
        proof_data: None,
        proof_type: None,
        location: None,
        created_at,
        expires_at: created_at + 3600,
    }
}

#[tokio::test(flavor = "current_thread")]
async fn the_seed_webhook_runs_unchanged_on_a_current_thread_runtime() {
    // The seed's DynamoDB store called Handle::block_on from its sync trait (a panic
    // inside a runtime); here async methods run on the blocking pool and the sync
    // trait needs no runtime at all.
    let dir = tempfile::tempdir().unwrap();
    let store = DynamoStateStore::with_config(config(&dir)).await.unwrap();
    assert!(dir.path().join("agent.edgestate").exists());

    store.link_card("fp_1", "alice", "4242").await.unwrap();
    assert_eq!(
        seed_caller::on_payment(&store, "fp_1", "txn-1", "m-1", 500)
            .await
            .unwrap()
            .as_deref(),
        Some("alice")
    );
    // A retried webhook is a no-op.
    assert_eq!(
        seed_caller::on_payment(&store, "fp_1", "txn-1", "m-1", 500)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        seed_caller::on_payment(&store, "fp_unknown", "txn-2", "m-1", 1)
            .await
            .unwrap(),
        None
    );
    let pending = store.get_pending_captures("alice").await.unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].card_last4.as_deref(), Some("4242"));
    assert_eq!(pending[0].location.unwrap().latitude, 1.5);

    // The sync trait from async code: through the *_async forms.
    let ctx = store.context_fetch_async("alice").await;
    assert_eq!(ctx.unwrap_err(), StateError::NotFound);
    store
        .push_event_async(
            "alice",
            ContextEvent {
                event_type: "capture".to_string(),
                timestamp: seed_caller::now(),
                summary: "coffee".to_string(),
                amount: Some(500),
            },
        )
        .await
        .unwrap();
    let ctx = store.context_fetch_async("alice").await.unwrap();
    assert_eq!(ctx.recent_events[0].summary, "coffee");
    store
        .context_patch_async("alice", "preferences.auto_stake", json!(false))
        .await
        .unwrap();
    let mut ctx = store.context_fetch_async("alice").await.unwrap();
    assert!(!ctx.preferences.auto_stake);
    ctx.version += 1;
    store.context_push_async(ctx).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_seed_method_with_the_seed_return_types() {
    let dir = tempfile::tempdir().unwrap();
    let store = DynamoStateStore::with_config(config(&dir)).await.unwrap();
    let now = seed_caller::now();

    // Cards: any card_last4 a seed deployment holds is accepted and read back as given.
    store.link_card("fp_a", "alice", "4242").await.unwrap();
    store.link_card("fp_b", "alice", "").await.unwrap();
    store.link_card("fp_c", "alice", "x1").await.unwrap();
    let card: CardMapping = store.lookup_user_by_card("fp_b").await.unwrap().unwrap();
    assert_eq!(card.card_last4, "");
    assert!(card.linked_at >= now);
    let mut tails: Vec<String> = store
        .get_user_cards("alice")
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.card_last4)
        .collect();
    tails.sort();
    assert_eq!(tails, ["", "4242", "x1"]);
    // Relinking with a real tail forgets the odd one; unlinking twice is fine.
    store.link_card("fp_c", "bob", "1234").await.unwrap();
    let c = store.lookup_user_by_card("fp_c").await.unwrap().unwrap();
    assert_eq!(
        (c.user_pubkey.as_str(), c.card_last4.as_str()),
        ("bob", "1234")
    );
    store.unlink_card("fp_b").await.unwrap();
    store.unlink_card("fp_b").await.unwrap();
    assert!(store.lookup_user_by_card("fp_b").await.unwrap().is_none());
    assert_eq!(store.get_user_cards("alice").await.unwrap().len(), 1);

    // Dedup: the first mark wins.
    store
        .mark_transaction_processed("t1", "alice", 10)
        .await
        .unwrap();
    store
        .mark_transaction_processed("t1", "mallory", 99)
        .await
        .unwrap();
    assert!(store.is_transaction_processed("t1").await.unwrap());
    assert_eq!(
        store
            .store()
            .dedup()
            .get("t1")
            .unwrap()
            .unwrap()
            .user_pubkey,
        "alice"
    );

    // Sessions: a live one round-trips; an already expired one is accepted, replaces
    // the live one and reads back as None (the seed's behaviour).
    let live = SessionKeyData {
        key_pubkey: "k1".to_string(),
        vault_pubkey: "v1".to_string(),
        scopes: vec!["stake".to_string()],
        expires_at: now + 600,
        created_at: now,
        max_actions: 5,
        actions_used: 0,
    };
    seed_caller::start_session(&store, "alice", &live)
        .await
        .unwrap();
    assert_eq!(
        store.get_session_key("alice").await.unwrap(),
        Some(live.clone())
    );
    let expired = SessionKeyData {
        expires_at: now - 1,
        ..live.clone()
    };
    seed_caller::start_session(&store, "alice", &expired)
        .await
        .unwrap();
    assert_eq!(store.get_session_key("alice").await.unwrap(), None);
    seed_caller::start_session(&store, "alice", &live)
        .await
        .unwrap();
    store.invalidate_session("alice").await.unwrap();
    assert_eq!(store.get_session_key("alice").await.unwrap(), None);

    // Pending ring buffer (3 per user here): two captures in one second both survive
    // (the seed's timestamp key lost one), the oldest are evicted, newest first.
    for (i, m) in ["m1", "m2", "m3", "m4"].iter().enumerate() {
        seed_caller::queue(&store, "alice", &capture(m, now + (i as i64) / 2))
            .await
            .unwrap();
    }
    let merchants: Vec<String> = store
        .get_pending_captures("alice")
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.merchant_id)
        .collect();
    assert_eq!(merchants, ["m4", "m3", "m2"]);
    store
        .remove_pending_capture("alice", now + 1)
        .await
        .unwrap();
    let left = store.get_pending_captures("alice").await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].merchant_id, "m2");

    // Location cache.
    store.cache_current_merchant("alice", "m-9").await.unwrap();
    assert_eq!(
        store
            .get_current_merchant("alice")
            .await
            .unwrap()
            .as_deref(),
        Some("m-9")
    );
    store.clear_current_merchant("alice").await.unwrap();
    assert_eq!(store.get_current_merchant("alice").await.unwrap(), None);

    // Bad input is a typed error, never a panic.
    let err = store.link_card("", "alice", "4242").await.unwrap_err();
    assert_eq!(seed_caller::describe(&err), "storage");
    assert!(err.to_string().contains("invalid input"), "{err}");
}

#[test]
fn the_sync_trait_with_the_seed_context_flow() {
    let store = DynamoStateStore::temporary()
        .unwrap()
        .with_state_config(DynamoStateConfig {
            table_name: "ignored".to_string(),
            region: "eu-west-1".to_string(),
            vault_cache_ttl: 30,
            max_events: 3,
        });
    let dyn_store: &dyn StateStore = &store;

    assert_eq!(
        dyn_store.context_fetch("u").unwrap_err(),
        StateError::NotFound
    );
    dyn_store.context_push(init_user_context("u")).unwrap();
    let ctx = seed_caller::credit(dyn_store, "u", 7).unwrap();
    assert_eq!(ctx.version, 2);
    assert_eq!(dyn_store.context_fetch("u").unwrap().vault.cred_balance, 7);

    // Pushing a stale version conflicts and reports what is stored.
    let err = dyn_store.context_push(ctx).unwrap_err();
    assert_eq!(
        err,
        StateError::VersionConflict {
            expected: 1,
            actual: 2
        }
    );
    assert_eq!(seed_caller::describe(&err), "conflict");

    // The seed silently ignored an unknown patch path; here it is an error.
    let err = dyn_store
        .context_patch("u", "preferences.no_such_field", json!(1))
        .unwrap_err();
    assert_eq!(seed_caller::describe(&err), "storage");
    dyn_store
        .context_patch("u", "preferences.default_duration_days", json!(30))
        .unwrap();
    assert_eq!(
        dyn_store
            .context_fetch("u")
            .unwrap()
            .preferences
            .default_duration_days,
        30
    );

    // max_events from DynamoStateConfig bounds the recent events.
    for i in 0..5 {
        dyn_store
            .push_event(
                "v",
                ContextEvent {
                    event_type: "e".to_string(),
                    timestamp: i,
                    summary: i.to_string(),
                    amount: None,
                },
            )
            .unwrap();
    }
    let v = dyn_store.get_or_init("v").unwrap();
    let summaries: Vec<&str> = v.recent_events.iter().map(|e| e.summary.as_str()).collect();
    assert_eq!(summaries, ["4", "3", "2"]);

    let batch = dyn_store
        .context_batch_fetch(&["u".to_string(), "ghost".to_string(), "v".to_string()])
        .unwrap();
    let users: Vec<&str> = batch.iter().map(|c| c.pubkey.as_str()).collect();
    assert_eq!(users, ["u", "v"]);
}

#[test]
fn values_the_seed_serialised_deserialise_and_store() {
    // The seed's JSON, as its DynamoDB items held it.
    let context: UserContext = serde_json::from_value(json!({
        "pubkey": "5A7E",
        "vault": {"cred_balance": 5, "oxo_balance": 0, "total_staked": 9, "pending_yield": 0,
                  "active_positions": 1, "snapshot_at": 1711468800},
        "preferences": {"auto_stake": true, "default_duration_days": 90, "auto_compound": true,
                        "compound_threshold": 10000000000u64, "risk_tolerance": "balanced",
                        "notifications": {"on_capture": true, "on_stake": false, "on_yield": true,
                                          "on_unlock": true, "min_notify_amount": 1000000000}},
        "recent_events": [{"event_type": "capture", "timestamp": 1711468800, "summary": "s",
                           "amount": 3}],
        "agent_memory": {"goal": "save"},
        "updated_at": 1711468800,
        "version": 1
    }))
    .unwrap();
    let session: SessionKeyData = serde_json::from_value(json!({
        "key_pubkey": "k", "vault_pubkey": "v", "scopes": ["stake"], "expires_at": 4102444800i64,
        "created_at": 1711468800, "max_actions": 3, "actions_used": 1
    }))
    .unwrap();
    let capture: PendingCapture = serde_json::from_value(json!({
        "merchant_id": "m", "merchant_name": null, "amount_cents": 5, "card_last4": "4242",
        "proof_data": null, "proof_type": null,
        "location": {"latitude": 1.0, "longitude": 2.0, "accuracy_m": 3.0},
        "created_at": 1711468800, "expires_at": 4102444800i64
    }))
    .unwrap();
    let card: CardMapping = serde_json::from_value(json!({
        "fingerprint": "fp", "user_pubkey": "5A7E", "card_last4": "4242", "linked_at": 1711468800
    }))
    .unwrap();
    assert_eq!(card.linked_at, 1_711_468_800);

    let store = DynamoStateStore::temporary().unwrap();
    store.context_push(context.clone()).unwrap();
    let stored = store.context_fetch("5A7E").unwrap();
    // `updated_at` is stamped by the store's clock at the write (listed difference).
    assert!(stored.updated_at >= seed_caller::now() - 60);
    assert_eq!(
        stored,
        UserContext {
            updated_at: stored.updated_at,
            ..context
        }
    );
    // Serialising gives the seed's JSON back.
    let again = serde_json::to_value(&stored).unwrap();
    assert_eq!(again["updated_at"], stored.updated_at);
    assert_eq!(again["recent_events"][0]["timestamp"], 1_711_468_800);
    assert_eq!(again["vault"]["snapshot_at"], 1_711_468_800);

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        store.store_session_key("5A7E", &session).await.unwrap();
        assert_eq!(store.get_session_key("5A7E").await.unwrap(), Some(session));
        store.add_pending_capture("5A7E", &capture).await.unwrap();
        assert_eq!(
            store.get_pending_captures("5A7E").await.unwrap(),
            vec![capture]
        );
    });
}

#[test]
fn the_seed_environment_configures_the_store() {
    let c = DynamoConfig::from_lookup(|name| match name {
        "DYNAMO_TABLE" => Some("prod-state".to_string()),
        "DYNAMO_FINGERPRINT_GSI" => Some("Gsi".to_string()),
        "MAX_PENDING_CAPTURES" => Some("25".to_string()),
        "SESSION_TTL_SECONDS" => Some("not a number".to_string()),
        "DAX_ENDPOINT" => Some("dax".to_string()),
        _ => None,
    });
    assert_eq!(c.table_name, "prod-state");
    assert_eq!(
        c.store_path(),
        std::path::PathBuf::from("prod-state.edgestate")
    );
    assert_eq!(c.fingerprint_gsi, "Gsi");
    assert_eq!(c.max_pending_captures, 25);
    assert_eq!(c.session_ttl_seconds, 86_400);
    assert_eq!(c.pending_ttl_seconds, 1_814_400);
    assert_eq!(c.dax_endpoint.as_deref(), Some("dax"));
    let c = DynamoConfig::from_lookup(|n| (n == "EDGESTATE_PATH").then(|| "/x/y.db".to_string()));
    assert_eq!(c.store_path(), std::path::PathBuf::from("/x/y.db"));
    assert_eq!(
        DynamoConfig::default().store_path(),
        std::path::PathBuf::from("loop-agent-state.edgestate")
    );
}

#[test]
fn async_methods_leave_the_runtime_thread_free() {
    use std::sync::atomic::Ordering::SeqCst;
    let clock = GateClock::default();
    let store = DynamoStateStore::from_store(
        edgestate::Store::builder()
            .clock(clock.clone())
            .temporary()
            .unwrap(),
    );
    clock.armed.store(true, SeqCst);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let call = store.cache_current_merchant("alice", "m-1");
        let opener = async {
            tokio::task::yield_now().await;
            clock.open();
        };
        let (result, ()) = tokio::join!(call, opener);
        result.unwrap();
    });
    assert!(
        !clock.timed_out.load(SeqCst),
        "the call held the runtime thread"
    );
    assert_eq!(
        rt.block_on(store.get_current_merchant("alice"))
            .unwrap()
            .as_deref(),
        Some("m-1")
    );
}
