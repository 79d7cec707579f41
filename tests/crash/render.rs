//! How each record is reduced to a comparable line, shared by the model and the store
//! dump so that both sides are rendered identically.

use std::collections::BTreeMap;

use edgestate::{
    CardMapping, ExecutionSnapshot, IdempotencyState, PendingEntry, ProcessedTransaction,
    SessionKeyData, UserContext,
};

use crate::rng::fnv;

/// A store state reduced to comparable lines: (table, key) -> (rendering, expiry).
pub type Flat = BTreeMap<(&'static str, String), Line>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub render: String,
    /// The expiry where the API shows it (KV, pending); `None` otherwise.
    pub expires_at_ms: Option<u64>,
}

fn line(render: String) -> Line {
    Line {
        render,
        expires_at_ms: None,
    }
}

pub fn kv(
    ns: &str,
    key: &str,
    value: &[u8],
    version: u64,
    expires_at_ms: Option<u64>,
) -> ((&'static str, String), Line) {
    (
        ("kv", format!("{ns}/{key}")),
        Line {
            render: format!("v{version} len {} fnv {:016x}", value.len(), fnv(value)),
            expires_at_ms,
        },
    )
}

pub fn card(c: &CardMapping) -> ((&'static str, String), Line) {
    (
        ("cards", c.fingerprint.clone()),
        line(format!(
            "{} {} {}",
            c.user_pubkey, c.card_last4, c.linked_at_s
        )),
    )
}

pub fn user_cards(user: &str, fingerprints: &[String]) -> ((&'static str, String), Line) {
    (
        ("user_cards", user.to_owned()),
        line(fingerprints.join(",")),
    )
}

pub fn claim(c: &ProcessedTransaction) -> ((&'static str, String), Line) {
    (
        ("dedup", c.txn_id.clone()),
        line(format!(
            "{} {} {}",
            c.user_pubkey, c.amount, c.processed_at_s
        )),
    )
}

pub fn context(c: &UserContext) -> ((&'static str, String), Line) {
    let memory: BTreeMap<_, _> = c.agent_memory.iter().collect();
    (
        ("contexts", c.pubkey.clone()),
        line(format!(
            "v{} updated {} vault {:?} prefs {:?} events {:?} memory {memory:?}",
            c.version, c.updated_at_s, c.vault, c.preferences, c.recent_events
        )),
    )
}

pub fn session(user: &str, s: &SessionKeyData) -> ((&'static str, String), Line) {
    (("sessions", user.to_owned()), line(format!("{s:?}")))
}

pub fn pending(user: &str, e: &PendingEntry) -> ((&'static str, String), Line) {
    (
        ("pending", format!("{user}#{:08}", e.seq)),
        Line {
            render: format!("{:?}", e.capture),
            expires_at_ms: Some(e.expires_at_ms),
        },
    )
}

pub fn snapshot(s: &ExecutionSnapshot) -> ((&'static str, String), Line) {
    let outputs: BTreeMap<_, _> = s.step_outputs.iter().collect();
    let variables: BTreeMap<_, _> = s.variables.iter().collect();
    (
        ("snapshots", s.execution_id.clone()),
        line(format!(
            "{} seq {} {} user {:?} step {:?} outputs {outputs:?} variables {variables:?} at {}",
            s.tenant_id, s.sequence_number, s.state, s.user_id, s.current_step_id, s.timestamp_ms
        )),
    )
}

pub fn tenant_index(tenant: &str, execs: &[String]) -> ((&'static str, String), Line) {
    (
        ("snapshots_by_tenant", tenant.to_owned()),
        line(execs.join(",")),
    )
}

/// `expires_at_ms`: the expiry the value names (the API does not show it).
pub fn memory(
    exec: &str,
    key: &str,
    value: &[u8],
    expires_at_ms: Option<u64>,
) -> ((&'static str, String), Line) {
    (
        ("memory", format!("{exec}/{key}")),
        Line {
            render: String::from_utf8_lossy(value).into_owned(),
            expires_at_ms,
        },
    )
}

pub fn idempotency(
    key: &str,
    payload: &[u8],
    state: &IdempotencyState,
    expires_at_ms: u64,
) -> ((&'static str, String), Line) {
    (
        ("idempotency", key.to_owned()),
        Line {
            render: format!("{} {state:?}", String::from_utf8_lossy(payload)),
            expires_at_ms: Some(expires_at_ms),
        },
    )
}

pub fn location(
    user: &str,
    merchant: &str,
    entered_at_ms: u64,
    expires_at_ms: u64,
) -> ((&'static str, String), Line) {
    (
        ("locations", user.to_owned()),
        Line {
            render: format!("{merchant} entered {entered_at_ms}"),
            expires_at_ms: Some(expires_at_ms),
        },
    )
}

/// Tables whose every record carries an expiry, shown or not.
pub const ALWAYS_EXPIRING: [&str; 3] = ["dedup", "sessions", "pending"];

/// Records in `flat` that must each have one expiry index entry.
pub fn expiring(flat: &Flat) -> u64 {
    flat.iter()
        .filter(|((table, _), l)| l.expires_at_ms.is_some() || ALWAYS_EXPIRING.contains(table))
        .count() as u64
}

/// Lines of one table.
pub fn count(flat: &Flat, table: &str) -> u64 {
    flat.keys().filter(|(t, _)| *t == table).count() as u64
}
