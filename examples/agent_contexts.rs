//! A local-first agent keeping per-user contexts: get-or-init, field patches, a bounded
//! event history, optimistic locking between two workers, session keys with a bounded
//! number of actions, and an execution snapshot to resume from.
//!
//! `cargo run --release --example agent_contexts`

use edgestate::compat::loop_agent::{LoopAgentStore, StateError, StateStore};
use edgestate::tables::snapshots::{ExecutionSnapshot, ExecutionState};
use edgestate::{ContextEvent, SessionKeyData, Store};
use serde_json::json;

fn main() -> Result<(), StateError> {
    let agent = LoopAgentStore::from_store(Store::temporary()?);
    let user = "5A7ETEST";

    let ctx = agent.get_or_init(user)?;
    println!(
        "new context v{} risk={}",
        ctx.version, ctx.preferences.risk_tolerance
    );

    agent.context_patch(user, "preferences.risk_tolerance", json!("aggressive"))?;
    agent.context_patch(
        user,
        "agent_memory.favourite_merchant",
        json!({"id": "m-1", "visits": 3}),
    )?;
    match agent.context_patch(user, "preferences.no_such_field", json!(true)) {
        Err(StateError::InvalidInput { field, .. }) => println!("refused unknown path `{field}`"),
        other => println!("unexpected: {other:?}"),
    }

    for i in 0..12 {
        agent.push_event(
            user,
            ContextEvent {
                event_type: "capture".into(),
                timestamp_s: i,
                summary: format!("capture #{i}"),
                amount: Some(100),
            },
        )?;
    }

    // Two workers read the same version; only the first push wins.
    let mut a = agent.context_fetch(user)?;
    let mut b = a.clone();
    a.vault.cred_balance += 50;
    a.version += 1;
    b.vault.cred_balance += 70;
    b.version += 1;
    agent.context_push(a)?;
    match agent.context_push(b) {
        Err(StateError::VersionConflict { expected, actual }) => {
            println!("second worker lost the race: expected v{expected}, found v{actual}; it re-reads and retries")
        }
        other => println!("unexpected: {other:?}"),
    }
    let ctx = agent.context_fetch(user)?;
    println!(
        "context v{}: {} events kept (newest: {}), balance {}",
        ctx.version,
        ctx.recent_events.len(),
        ctx.recent_events[0].summary,
        ctx.vault.cred_balance
    );

    let store = agent.store();
    let now_s =
        i64::try_from(edgestate::Clock::now_ms(&edgestate::SystemClock) / 1000).unwrap_or(i64::MAX);
    store.sessions().put(
        user,
        &SessionKeyData {
            key_pubkey: "sess-key".into(),
            vault_pubkey: "vault".into(),
            scopes: vec!["stake".into()],
            expires_at_s: now_s + 3_600,
            created_at_s: now_s,
            max_actions: 2,
            actions_used: 0,
        },
    )?;
    for _ in 0..3 {
        match store.sessions().use_action(user) {
            Ok(s) => println!("session action used: {}/{}", s.actions_used, s.max_actions),
            Err(e) => println!("session refused: {e}"),
        }
    }

    let mut snapshot =
        ExecutionSnapshot::new("exec-42", "tenant-a", ExecutionState::new("running"), 7);
    snapshot
        .variables
        .insert("goal".into(), json!("restake yield"));
    store.snapshots().put(&snapshot)?;
    let resumed = store
        .snapshots()
        .get("exec-42")?
        .ok_or(StateError::NotFound)?;
    println!(
        "resume exec-42 at sequence {} (fresh vs 7: {})",
        resumed.sequence_number,
        resumed.is_fresh(7)
    );
    Ok(())
}
