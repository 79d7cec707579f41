//! Invariants checked on the reopened store itself, independently of the model: they
//! say what must hold whatever the workload did.

use std::collections::BTreeMap;

use edgestate::flows::webhook::CAPTURE_EVENT_TYPE;
use edgestate::{ContextEvent, StoreStats};

use crate::model_agent::AgentTables;
use crate::render::{self, Flat};
use crate::run::Dump;
use crate::workload::{parse_memory_value, DEDUP_TTL_MS, MAX_RECENT_EVENTS, PENDING_CAPACITY};

/// The txn id a capture event names (its summary ends `(txn <id>)`).
fn txn_of(e: &ContextEvent) -> Option<&str> {
    if e.event_type != CAPTURE_EVENT_TYPE {
        return None;
    }
    let start = e.summary.rfind("(txn ")? + "(txn ".len();
    e.summary[start..].strip_suffix(')')
}

/// `physical`: every record (read at the epoch); `live`: what reads show at `now`, the
/// clock of the op after the last one the store reflects.
pub fn check(physical: &Dump, live: &Dump, now: u64) -> Vec<String> {
    let mut bad = Vec::new();

    // Card index: forward and reverse agree exactly.
    let mut by_user: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for c in &physical.cards {
        by_user
            .entry(&c.user_pubkey)
            .or_default()
            .push(&c.fingerprint);
    }
    for (user, cards) in &physical.user_cards {
        let reverse: Vec<&str> = cards.iter().map(|c| c.fingerprint.as_str()).collect();
        let forward = by_user.remove(user.as_str()).unwrap_or_default();
        if reverse != forward {
            bad.push(format!(
                "card index: {user} owns {forward:?} but the reverse index lists {reverse:?}"
            ));
        }
    }
    if !by_user.is_empty() {
        bad.push(format!("cards of unknown users: {by_user:?}"));
    }

    // Pending rings: within capacity, seqs strictly decreasing newest first.
    for (user, entries) in &physical.pending {
        if entries.len() > PENDING_CAPACITY {
            bad.push(format!("{user} holds {} pending captures", entries.len()));
        }
        if entries.windows(2).any(|w| w[0].seq <= w[1].seq) {
            let seqs: Vec<u64> = entries.iter().map(|e| e.seq).collect();
            bad.push(format!(
                "{user}'s pending seqs are not strictly ordered: {seqs:?}"
            ));
        }
    }

    for (user, s) in &physical.sessions {
        if s.actions_used > s.max_actions {
            bad.push(format!(
                "{user}'s session used {} of {}",
                s.actions_used, s.max_actions
            ));
        }
    }

    // Exactly once: every claim shows as one capture event in its user's context, unless
    // newer events have pushed it out of the bounded list.
    for claim in &physical.claims {
        let ctx = physical
            .contexts
            .iter()
            .find(|c| c.pubkey == claim.user_pubkey);
        let Some(ctx) = ctx else {
            bad.push(format!(
                "claim {} of {} has no context",
                claim.txn_id, claim.user_pubkey
            ));
            continue;
        };
        let hits = ctx
            .recent_events
            .iter()
            .filter(|e| txn_of(e) == Some(&claim.txn_id) && e.timestamp_s == claim.processed_at_s)
            .count();
        let pushed_out = ctx.recent_events.len() == MAX_RECENT_EVENTS
            && ctx
                .recent_events
                .last()
                .is_some_and(|e| e.timestamp_s >= claim.processed_at_s);
        if hits > 1 || (hits == 0 && !pushed_out) {
            bad.push(format!(
                "claim {} of {} at {}s shows {hits} time(s) in its context's events",
                claim.txn_id, claim.user_pubkey, claim.processed_at_s
            ));
        }
    }
    // ... and no capture event outlives a claim that has not expired, nor repeats one.
    for ctx in &physical.contexts {
        let mut seen: BTreeMap<&str, i64> = BTreeMap::new();
        for e in &ctx.recent_events {
            let Some(txn) = txn_of(e) else { continue };
            let claimed = physical.claims.iter().any(|c| {
                c.txn_id == txn && c.user_pubkey == ctx.pubkey && c.processed_at_s == e.timestamp_s
            });
            let claim_could_expire = e.timestamp_s as u64 * 1000 + DEDUP_TTL_MS <= now;
            if !claimed && !claim_could_expire {
                bad.push(format!(
                    "{}'s event for {txn} at {}s has no claim",
                    ctx.pubkey, e.timestamp_s
                ));
            }
            if let Some(other) = seen.insert(txn, e.timestamp_s) {
                if (other - e.timestamp_s).unsigned_abs() * 1000 + 1000 < DEDUP_TTL_MS {
                    bad.push(format!(
                        "{} was processed twice for {} within the dedup TTL",
                        txn, ctx.pubkey
                    ));
                }
            }
        }
    }

    // A live capture always has its live claim (captures expire before claims).
    for (user, entries) in &live.pending {
        for e in entries {
            let txn = e.capture.proof_data.as_deref().unwrap_or("?");
            let claimed = live.claims.iter().any(|c| {
                c.txn_id == txn
                    && &c.user_pubkey == user
                    && c.processed_at_s == e.capture.created_at_s
            });
            if !claimed {
                bad.push(format!(
                    "{user}'s live capture #{} ({txn}) has no live claim",
                    e.seq
                ));
            }
        }
    }
    bad
}

/// The agent tables on the store: each snapshot filed under its tenant and nowhere else,
/// every index entry pointing at a snapshot of that tenant, and no working-memory key
/// older than its execution's last cleanup (`agent` tells when those cleanups ran).
pub fn check_agent(physical: &Dump, agent: &AgentTables) -> Vec<String> {
    let mut bad = Vec::new();
    let mut filed: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (tenant, execs) in &physical.tenant_index {
        for exec in execs {
            filed.entry(exec).or_default().push(tenant);
            let owner = physical.snapshots.iter().find(|s| &s.execution_id == exec);
            match owner {
                Some(s) if &s.tenant_id == tenant => {}
                Some(s) => bad.push(format!(
                    "tenant index files {exec} under {tenant}, its snapshot says {}",
                    s.tenant_id
                )),
                None => bad.push(format!(
                    "tenant index files {exec} under {tenant}, but it has no snapshot"
                )),
            }
        }
    }
    for s in &physical.snapshots {
        let tenants = filed
            .get(s.execution_id.as_str())
            .cloned()
            .unwrap_or_default();
        if tenants != [s.tenant_id.as_str()] {
            bad.push(format!(
                "snapshot {} of {} is filed under {tenants:?}",
                s.execution_id, s.tenant_id
            ));
        }
    }
    for (exec, key, value) in &physical.memory {
        let Some((written, _)) = parse_memory_value(value) else {
            bad.push(format!("working memory {exec}/{key} holds {value:?}"));
            continue;
        };
        if let (_, Some(cleanup)) = agent.cleanups(exec) {
            if written < cleanup {
                bad.push(format!(
                    "working memory {exec}/{key} written by op {written} survived the \
                     cleanup of op {cleanup}"
                ));
            }
        }
    }
    bad
}

/// Record counts: every table holds exactly the records the dump found (nothing outside
/// the workload's key pools, no orphans), the expiry index one entry per expiring
/// record. `probes`: records the
/// parent keeps in the KV table; `pending_counters`: users that ever had a capture.
pub fn check_counts(
    stats: &StoreStats,
    physical: &Flat,
    probes: u64,
    pending_counters: u64,
) -> Vec<String> {
    let cards = render::count(physical, "cards");
    let snapshots = render::count(physical, "snapshots");
    let want = [
        ("edgestate.kv", render::count(physical, "kv") + probes),
        ("edgestate.expiry", render::expiring(physical)),
        ("edgestate.cards", cards),
        ("edgestate.user_cards", cards),
        ("edgestate.dedup", render::count(physical, "dedup")),
        ("edgestate.contexts", render::count(physical, "contexts")),
        ("edgestate.sessions", render::count(physical, "sessions")),
        ("edgestate.pending", render::count(physical, "pending")),
        ("edgestate.pending_seq", pending_counters),
        (
            "edgestate.idempotency",
            render::count(physical, "idempotency"),
        ),
        ("edgestate.locations", render::count(physical, "locations")),
        ("edgestate.snapshots", snapshots),
        ("edgestate.snapshots_by_tenant", snapshots),
        (
            "edgestate.working_memory",
            render::count(physical, "memory"),
        ),
    ];
    want.iter()
        .map(|(table, n)| {
            (
                table,
                n,
                edgestate::Table::from_name(table).map(|t| stats.records(t)),
            )
        })
        .filter(|(_, n, found)| *found != Some(**n))
        .map(|(table, n, found)| format!("{table} holds {found:?} records, want {n}"))
        .collect()
}
