//! The seeds' APIs on edgestate: the agent SDK's trait and DynamoDB method names, the
//! agent runtime's snapshot store, the solver's byte store.

#![allow(clippy::unwrap_used)] // tests state their expectations by unwrapping

use std::time::Duration;

use edgestate::compat::agent_runtime::AgentStateStore;
use edgestate::compat::loop_agent::{
    init_user_context, LoopAgentConfig, LoopAgentStore, StateError, StateStore,
};
use edgestate::compat::solver::SolverStateStore;
use edgestate::compat::ByteStore;
use edgestate::tables::snapshots::{ExecutionSnapshot, ExecutionState};
use edgestate::{ContextEvent, Error, ManualClock, PendingCapture, SessionKeyData, Store};
use serde_json::json;

const T0_MS: u64 = 1_700_000_000_000;
const T0_S: i64 = 1_700_000_000;

fn agent() -> (LoopAgentStore, ManualClock) {
    let clock = ManualClock::new(T0_MS);
    (
        LoopAgentStore::from_store(Store::builder().clock(clock.clone()).in_memory().unwrap()),
        clock,
    )
}

fn capture(created_at: i64) -> PendingCapture {
    PendingCapture {
        merchant_id: "m".into(),
        merchant_name: None,
        amount_cents: 5,
        card_last4: None,
        proof_data: None,
        proof_type: None,
        location: None,
        created_at_s: created_at,
        expires_at_s: created_at + 100,
    }
}

#[test]
fn the_seed_trait_works_through_a_trait_object() {
    let (store, _clock) = agent();
    let dyn_store: &dyn StateStore = &store;
    assert_eq!(
        dyn_store.context_fetch("u").unwrap_err(),
        StateError::NotFound
    );
    // The seed's own flow: init with version 1, push, then read-modify-increment-push.
    dyn_store.context_push(init_user_context("u")).unwrap();
    let mut ctx = dyn_store.context_fetch("u").unwrap();
    assert_eq!(ctx.version, 1);
    ctx.vault.cred_balance = 7;
    ctx.version += 1;
    dyn_store.context_push(ctx.clone()).unwrap();
    assert_eq!(dyn_store.context_fetch("u").unwrap().version, 2);
    // Pushing the same (now stale) version again conflicts, reporting what is stored.
    assert_eq!(
        dyn_store.context_push(ctx).unwrap_err(),
        StateError::VersionConflict {
            expected: 1,
            actual: 2
        }
    );
    // Version 1 on an existing user only creates: no silent overwrite.
    assert!(matches!(
        dyn_store.context_push(init_user_context("u")),
        Err(StateError::VersionConflict { .. })
    ));

    dyn_store
        .context_patch("u", "preferences.auto_stake", json!(false))
        .unwrap();
    let err = dyn_store
        .context_patch("u", "preferences.nope", json!(1))
        .unwrap_err();
    assert!(
        matches!(err, StateError::InvalidInput { ref field, .. } if field.contains("preferences.nope")),
        "{err:?}"
    );
    let err = dyn_store
        .context_patch("u", "preferences.auto_stake", json!("yes"))
        .unwrap_err();
    assert!(matches!(err, StateError::InvalidInput { .. }));
    assert_eq!(
        dyn_store
            .context_patch("ghost", "vault.cred_balance", json!(1))
            .unwrap_err(),
        StateError::NotFound
    );

    for i in 0..12 {
        let event = ContextEvent {
            event_type: "e".into(),
            timestamp_s: i,
            summary: format!("{i}"),
            amount: None,
        };
        dyn_store.push_event("v", event).unwrap();
    }
    let v = dyn_store.get_or_init("v").unwrap();
    assert_eq!(v.recent_events.len(), 10);
    assert_eq!(v.recent_events[0].summary, "11");

    let batch = dyn_store
        .context_batch_fetch(&["u".into(), "ghost".into(), "v".into()])
        .unwrap();
    assert_eq!(
        batch.iter().map(|c| c.pubkey.as_str()).collect::<Vec<_>>(),
        ["u", "v"]
    );
}

#[test]
fn every_dynamo_method_name_is_available() {
    let (s, clock) = agent();
    s.link_card("fp1", "alice", "4242").unwrap();
    s.link_card("fp2", "alice", "1111").unwrap();
    assert_eq!(
        s.lookup_user_by_card("fp1").unwrap().unwrap().user_pubkey,
        "alice"
    );
    assert_eq!(s.get_user_cards("alice").unwrap().len(), 2);
    s.unlink_card("fp1").unwrap();
    s.unlink_card("fp1").unwrap(); // unlinking twice is fine, as in DynamoDB
    assert_eq!(s.get_user_cards("alice").unwrap().len(), 1);

    assert!(!s.is_transaction_processed("t").unwrap());
    s.mark_transaction_processed("t", "alice", 10).unwrap();
    assert!(s.is_transaction_processed("t").unwrap());
    assert!(!s.claim_transaction("t", "bob", 99).unwrap());
    assert_eq!(
        s.store().dedup().get("t").unwrap().unwrap().user_pubkey,
        "alice",
        "never overwritten"
    );

    let session = SessionKeyData {
        key_pubkey: "k".into(),
        vault_pubkey: "v".into(),
        scopes: vec!["s".into()],
        expires_at_s: T0_S + 60,
        created_at_s: T0_S,
        max_actions: 3,
        actions_used: 0,
    };
    s.store_session_key("alice", &session).unwrap();
    assert_eq!(s.get_session_key("alice").unwrap().unwrap().key_pubkey, "k");
    s.invalidate_session("alice").unwrap();
    assert!(s.get_session_key("alice").unwrap().is_none());

    s.add_pending_capture("alice", &capture(T0_S)).unwrap();
    s.add_pending_capture("alice", &capture(T0_S)).unwrap();
    s.add_pending_capture("alice", &capture(T0_S + 1)).unwrap();
    assert_eq!(s.get_pending_captures("alice").unwrap().len(), 3);
    s.remove_pending_capture("alice", T0_S).unwrap();
    let left = s.get_pending_captures("alice").unwrap();
    assert_eq!(
        left.iter().map(|c| c.created_at_s).collect::<Vec<_>>(),
        [T0_S + 1]
    );

    s.cache_current_merchant("alice", "m-9").unwrap();
    assert_eq!(
        s.get_current_merchant("alice").unwrap().as_deref(),
        Some("m-9")
    );
    clock.advance(Duration::from_secs(3_600));
    assert_eq!(s.get_current_merchant("alice").unwrap(), None, "1 h TTL");
    s.cache_current_merchant("alice", "m-9").unwrap();
    s.clear_current_merchant("alice").unwrap();
    assert_eq!(s.get_current_merchant("alice").unwrap(), None);
}

#[test]
fn errors_map_onto_the_seed_shape() {
    let (s, _clock) = agent();
    assert!(matches!(
        s.link_card("", "alice", "4242"),
        Err(StateError::InvalidInput { .. })
    ));
    let e: StateError = Error::Closed.into();
    assert!(matches!(e, StateError::StorageError(_)));
}

#[test]
fn config_from_the_seed_environment_drives_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.edgestate");
    let path_str = path.to_str().unwrap().to_owned();
    let config = LoopAgentConfig::from_lookup(|name| match name {
        "EDGESTATE_PATH" => Some(path_str.clone()),
        "MAX_PENDING_CAPTURES" => Some("2".into()),
        _ => None,
    });
    let s = LoopAgentStore::with_config(&config).unwrap();
    for i in 0..5 {
        s.add_pending_capture("u", &capture(T0_S + i)).unwrap();
    }
    assert_eq!(s.get_pending_captures("u").unwrap().len(), 2);
    assert!(path.exists());
}

#[test]
fn agent_runtime_snapshots_and_working_memory() {
    let clock = ManualClock::new(T0_MS);
    let s = Store::builder().clock(clock.clone()).in_memory().unwrap();
    s.save_snapshot(ExecutionSnapshot::new(
        "e1",
        "t",
        ExecutionState::new("running"),
        5,
    ))
    .unwrap();
    let stale = s.save_snapshot(ExecutionSnapshot::new(
        "e1",
        "t",
        ExecutionState::new("running"),
        4,
    ));
    assert!(matches!(
        stale,
        Err(Error::StaleSnapshot {
            stored: 5,
            offered: 4,
            ..
        })
    ));
    assert_eq!(s.list_snapshots("t", 10).unwrap(), ["e1"]);
    s.set("exec:e1:var:a", b"1", None).unwrap();
    s.set("exec:e1:var:b", b"2", Some(Duration::from_secs(1)))
        .unwrap();
    s.set("global", b"g", None).unwrap();
    assert!(s.exists("exec:e1:var:b").unwrap());
    clock.advance(Duration::from_secs(1));
    assert!(!s.exists("exec:e1:var:b").unwrap());
    s.delete_execution_state("e1").unwrap();
    assert!(s.load_snapshot("e1").unwrap().is_none());
    assert!(s.get("exec:e1:var:a").unwrap().is_none());
    assert_eq!(s.get("global").unwrap().as_deref(), Some(&b"g"[..]));
    s.delete("global").unwrap();
    assert!(!s.exists("global").unwrap());
}

#[test]
fn solver_byte_store_shape() {
    let bytes = ByteStore::new(Store::in_memory().unwrap(), "solver").unwrap();
    let store: &dyn SolverStateStore = &bytes;
    store.set("order:a:1", b"x").unwrap();
    store.set("order:a:2", b"y").unwrap();
    assert_eq!(store.list("order:a:").unwrap(), ["order:a:1", "order:a:2"]);
    assert_eq!(
        store
            .batch_get(&["order:a:2".into(), "nope".into()])
            .unwrap(),
        vec![Some(b"y".to_vec()), None]
    );
    store.delete("order:a:1").unwrap();
    assert_eq!(store.get("order:a:1").unwrap(), None);
}

#[test]
fn seed_data_is_accepted_by_the_sync_store() {
    let (s, clock) = agent();
    // Card tails that are not four digits, as a seed deployment may hold them.
    s.link_card("fp1", "alice", "").unwrap();
    s.link_card("fp2", "alice", "12345").unwrap();
    assert_eq!(
        s.lookup_user_by_card("fp1").unwrap().unwrap().card_last4,
        ""
    );
    let mut tails: Vec<String> = s
        .get_user_cards("alice")
        .unwrap()
        .into_iter()
        .map(|c| c.card_last4)
        .collect();
    tails.sort();
    assert_eq!(tails, ["", "12345"]);
    // The native index shows the placeholder; a native relink wins over the kept tail.
    assert_eq!(
        s.store().cards().get("fp2").unwrap().unwrap().card_last4,
        edgestate::compat::PLACEHOLDER_LAST4
    );
    s.store().cards().put("fp2", "bob", "0000").unwrap();
    assert_eq!(
        s.lookup_user_by_card("fp2").unwrap().unwrap().card_last4,
        "0000"
    );
    s.unlink_card("fp1").unwrap();
    assert!(s.lookup_user_by_card("fp1").unwrap().is_none());
    assert!(s
        .store()
        .kv()
        .get(edgestate::compat::SEED_LAST4_NAMESPACE, "fp1")
        .unwrap()
        .is_none());

    // An already expired session is stored as the seed did: it reads back as None.
    let live = SessionKeyData {
        key_pubkey: "k".into(),
        vault_pubkey: "v".into(),
        scopes: vec![],
        expires_at_s: T0_S + 60,
        created_at_s: T0_S,
        max_actions: 1,
        actions_used: 0,
    };
    s.store_session_key("alice", &live).unwrap();
    let expired = SessionKeyData {
        expires_at_s: T0_S - 1,
        ..live.clone()
    };
    s.store_session_key("alice", &expired).unwrap();
    assert!(s.get_session_key("alice").unwrap().is_none());
    clock.advance(Duration::from_secs(1));
    assert!(s.get_session_key("alice").unwrap().is_none());
}
