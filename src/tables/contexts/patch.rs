//! Patching one field of a context by its dotted path, strictly: the path must name a
//! field that exists (new keys only inside `agent_memory`) and the value must have the
//! field's exact type and range, or nothing changes.
//!
//! Paths use the serde (JSON) field names, which are the seed's: `vault.snapshot_at`
//! and `recent_events.0.timestamp` reach the Rust fields `snapshot_at_s` and
//! `timestamp_s`.
//!
//! The context is turned into a JSON tree, the node at the path is replaced, and the tree
//! is read back as the typed context. Reading back catches wrong types and out-of-range
//! numbers; comparing the typed result with the tree catches fields the types would
//! silently drop.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::model::{ContextEvent, UserContext, UserPreferences, VaultState};
use crate::error::{Error, Result};

/// The fields a patch may reach. `pubkey`, `version` and `updated_at` (the serde name
/// of `UserContext::updated_at_s`) are kept by the store and stay out. `agent_memory` is a plain map here (no JSON-text adapter), so
/// paths walk into it.
#[derive(Serialize, Deserialize)]
struct Patchable {
    vault: VaultState,
    preferences: UserPreferences,
    recent_events: Vec<ContextEvent>,
    agent_memory: HashMap<String, Value>,
}

const MEMORY: &str = "agent_memory";
const STORE_KEPT: [&str; 3] = ["pubkey", "version", "updated_at"];

/// Sets the field at `path` (e.g. `"preferences.notifications.min_notify_amount"`,
/// `"agent_memory.goal"`, `"recent_events.0.summary"`) to `value`. On error `ctx` is
/// unchanged and the error's field is `path`.
pub(crate) fn apply(ctx: &mut UserContext, path: &str, value: Value) -> Result<()> {
    let bad = |reason: String| Error::invalid(path, reason);
    let segments: Vec<&str> = path.split('.').collect();
    if segments.iter().any(|s| s.is_empty()) {
        return Err(bad(
            "a patch path is field names separated by single dots".into()
        ));
    }
    let (first, rest) = match segments.split_first() {
        Some(split) => split,
        None => return Err(bad("empty path".into())),
    };
    if STORE_KEPT.contains(first) {
        return Err(bad(format!(
            "`{first}` is maintained by the store and cannot be patched"
        )));
    }

    let before = Patchable {
        vault: ctx.vault.clone(),
        preferences: ctx.preferences.clone(),
        recent_events: ctx.recent_events.clone(),
        agent_memory: ctx.agent_memory.clone(),
    };
    let mut tree = serde_json::to_value(&before).map_err(|e| Error::Encode {
        what: "context patch",
        reason: e.to_string(),
    })?;

    let in_memory = *first == MEMORY;
    let Some((last, parents)) = segments.split_last() else {
        return Err(bad("empty path".into()));
    };
    let mut node = &mut tree;
    for (depth, seg) in parents.iter().enumerate() {
        node = child(node, seg).ok_or_else(|| bad(missing(&segments, depth)))?;
    }
    match node {
        Value::Object(map) => {
            // Inside agent memory any key may be created; elsewhere only existing fields
            // may be set, so a typo is an error instead of a silently ignored key.
            let may_create = in_memory && !rest.is_empty();
            if !(may_create || map.contains_key(*last)) {
                return Err(bad(missing(&segments, parents.len())));
            }
            map.insert((*last).to_owned(), value);
        }
        Value::Array(items) => {
            let slot = last
                .parse::<usize>()
                .ok()
                .and_then(|i| items.get_mut(i))
                .ok_or_else(|| bad(missing(&segments, parents.len())))?;
            *slot = value;
        }
        _ => return Err(bad(missing(&segments, parents.len()))),
    }

    let typed: Patchable = serde_json::from_value(tree.clone())
        .map_err(|e| bad(format!("the value does not fit the field: {e}")))?;
    let reencoded = serde_json::to_value(&typed).map_err(|e| Error::Encode {
        what: "context patch",
        reason: e.to_string(),
    })?;
    if reencoded != tree {
        return Err(bad(
            "the value has fields the context does not have".to_owned()
        ));
    }

    ctx.vault = typed.vault;
    ctx.preferences = typed.preferences;
    ctx.recent_events = typed.recent_events;
    ctx.agent_memory = typed.agent_memory;
    Ok(())
}

/// The child of an object (by name) or a list (by index).
fn child<'v>(node: &'v mut Value, seg: &str) -> Option<&'v mut Value> {
    match node {
        Value::Object(map) => map.get_mut(seg),
        Value::Array(items) => items.get_mut(seg.parse::<usize>().ok()?),
        _ => None,
    }
}

fn missing(segments: &[&str], depth: usize) -> String {
    let upto = segments[..=depth].join(".");
    if depth == 0 {
        format!("the context has no field `{upto}`")
    } else {
        let parent = segments[..depth].join(".");
        format!("`{parent}` has no field or element `{}`", segments[depth])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn field_of(e: Error) -> String {
        match e {
            Error::InvalidInput { field, .. } => field,
            other => panic!("expected InvalidInput, got {other:?}"),
        }
    }

    #[test]
    fn sets_nested_fields_and_memory_keys() {
        let mut ctx = UserContext::new("u", 0);
        apply(&mut ctx, "vault.cred_balance", json!(7)).expect("vault");
        apply(&mut ctx, "preferences.risk_tolerance", json!("high")).expect("pref");
        apply(
            &mut ctx,
            "preferences.notifications.min_notify_amount",
            json!(5),
        )
        .expect("nested");
        apply(&mut ctx, "agent_memory.goal", json!({"x": 1})).expect("memory");
        apply(&mut ctx, "agent_memory.goal.y", json!(2)).expect("inside memory");
        assert_eq!(ctx.vault.cred_balance, 7);
        assert_eq!(ctx.preferences.risk_tolerance, "high");
        assert_eq!(ctx.preferences.notifications.min_notify_amount, 5);
        assert_eq!(ctx.agent_memory["goal"], json!({"x": 1, "y": 2}));
    }

    #[test]
    fn refuses_bad_paths_and_values_without_change() {
        let mut ctx = UserContext::new("u", 0);
        let before = ctx.clone();
        for (path, value) in [
            ("", json!(1)),
            ("vault..cred_balance", json!(1)),
            ("vault.nope", json!(1)),
            ("nope", json!(1)),
            ("pubkey", json!("x")),
            ("version", json!(9)),
            ("updated_at", json!(9)),
            ("vault.cred_balance", json!("many")),
            ("vault.cred_balance", json!(-1)),
            ("vault.active_positions", json!(70_000)),
            ("preferences.auto_stake", json!(1)),
            ("vault", json!({"cred_balance": 1})),
            ("recent_events.0", json!(null)),
            ("vault.cred_balance.deeper", json!(1)),
            ("agent_memory.a.b", json!(1)),
            ("agent_memory", json!([1])),
        ] {
            let err = apply(&mut ctx, path, value).expect_err(path);
            assert_eq!(field_of(err), path);
            assert_eq!(ctx, before, "{path} changed the context");
        }
    }

    #[test]
    fn time_fields_are_reached_by_their_serde_names() {
        let mut ctx = UserContext::new("u", 0);
        ctx.recent_events
            .push(ContextEvent::new("capture", 1, "coffee"));
        apply(&mut ctx, "vault.snapshot_at", json!(42)).expect("snapshot_at");
        apply(&mut ctx, "recent_events.0.timestamp", json!(43)).expect("timestamp");
        assert_eq!(ctx.vault.snapshot_at_s, 42);
        assert_eq!(ctx.recent_events[0].timestamp_s, 43);
        let err = apply(&mut ctx, "vault.snapshot_at_s", json!(1)).expect_err("rust name");
        assert_eq!(field_of(err), "vault.snapshot_at_s");
    }

    #[test]
    fn refuses_extra_fields_in_a_replaced_object() {
        let mut ctx = UserContext::new("u", 0);
        let mut vault = serde_json::to_value(&ctx.vault).expect("vault");
        vault["bogus"] = json!(1);
        let err = apply(&mut ctx, "vault", vault).expect_err("extra field");
        assert_eq!(field_of(err), "vault");
    }
}
