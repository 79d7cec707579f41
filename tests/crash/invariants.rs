//! Invariants checked on the reopened store itself, through its public reads, besides
//! the comparison with the model: what must hold whatever the workload did.

use std::collections::BTreeMap;

use edgestate::{Result, Store};

use crate::store_model::ops::{EXECS, FINGERPRINTS, TENANTS, USERS};
use crate::store_model::{Op, Outcome, PENDING_CAPACITY};

/// What the committed ops did, as far as the invariants need it (folded in while the
/// parent replays the model), and which kinds of op ran.
#[derive(Debug, Default)]
pub struct History {
    /// Per execution: deletions of its snapshot so far.
    snapshot_deletes: [u64; EXECS.len()],
    /// Per execution: whether working memory was written since its last cleanup.
    memory_since_cleanup: [bool; EXECS.len()],
    /// Ops replayed, by kind.
    pub kinds: BTreeMap<String, u64>,
    /// Data ops the model (and so the store) refused with an error.
    pub refused: u64,
}

fn kind(op: &Op) -> String {
    let shown = format!("{op:?}");
    let end = shown
        .find(|c: char| !c.is_ascii_alphanumeric())
        .unwrap_or(shown.len());
    shown[..end].to_owned()
}

impl History {
    /// Folds in a committed op and the outcome the model gave it.
    pub fn record(&mut self, op: &Op, outcome: &Outcome) {
        *self.kinds.entry(kind(op)).or_default() += 1;
        self.effect(op, outcome);
    }

    fn effect(&mut self, op: &Op, outcome: &Outcome) {
        match (op, outcome) {
            (Op::Batch { ops, .. }, Outcome::Many(outcomes)) => {
                for (op, outcome) in ops.iter().zip(outcomes) {
                    self.effect(op, outcome);
                }
            }
            (_, Outcome::Err(_)) => self.refused += 1,
            (Op::MemSet { exec, .. }, _) => self.memory_since_cleanup[*exec] = true,
            (Op::SnapDelete { exec }, Outcome::Bool(true)) => self.snapshot_deletes[*exec] += 1,
            (Op::SnapDeleteExecutionState { exec }, Outcome::Cleanup(c)) => {
                self.memory_since_cleanup[*exec] = false;
                if c.snapshot_removed {
                    self.snapshot_deletes[*exec] += 1;
                }
            }
            _ => {}
        }
    }
}

/// Reads the store (at its clock's time; the caller sets it to the start, so that every
/// physical record shows) and returns what is broken. `seqs`: each stored snapshot's
/// sequence number and deletion count at the last verified state; updated.
pub fn check(
    store: &Store,
    history: &History,
    seqs: &mut BTreeMap<usize, (u64, u64)>,
) -> Result<Vec<String>> {
    let mut bad = Vec::new();

    // Card index: forward and reverse agree exactly.
    let mut by_user: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for fp in FINGERPRINTS {
        if let Some(c) = store.cards().get(fp)? {
            by_user
                .entry(c.user_pubkey)
                .or_default()
                .push(c.fingerprint);
        }
    }
    for user in USERS {
        let mut reverse: Vec<String> = store
            .cards()
            .list(user)?
            .into_iter()
            .map(|c| c.fingerprint)
            .collect();
        reverse.sort();
        let mut forward = by_user.remove(user).unwrap_or_default();
        forward.sort();
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
    for user in USERS {
        let entries = store.pending().list(user)?;
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

    // Snapshots: each filed under its own tenant and nowhere else; the tenant index
    // points only at snapshots of that tenant.
    let mut filed: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for tenant in TENANTS.iter().filter(|t| !t.is_empty()) {
        for exec in store.snapshots().list_up_to(tenant, usize::MAX)? {
            match store.snapshots().get(&exec)? {
                Some(s) if s.tenant_id == *tenant => {}
                Some(s) => bad.push(format!(
                    "tenant index files {exec} under {tenant}, its snapshot says {}",
                    s.tenant_id
                )),
                None => bad.push(format!(
                    "tenant index files {exec} under {tenant}, but it has no snapshot"
                )),
            }
            filed.entry(exec).or_default().push(tenant);
        }
    }
    let mut now_seqs = BTreeMap::new();
    for (e, exec) in EXECS.iter().enumerate() {
        let deletes = history.snapshot_deletes[e];
        match store.snapshots().get(exec)? {
            Some(s) => {
                let tenants = filed.get(*exec).cloned().unwrap_or_default();
                if tenants != [s.tenant_id.as_str()] {
                    bad.push(format!(
                        "snapshot {exec} of {} is filed under {tenants:?}",
                        s.tenant_id
                    ));
                }
                // A stored sequence number never goes back, unless the snapshot was
                // deleted in between.
                if let Some((before, before_deletes)) = seqs.get(&e) {
                    if *before_deletes == deletes && s.sequence_number < *before {
                        bad.push(format!(
                            "snapshot {exec} went back from sequence {before} to {}",
                            s.sequence_number
                        ));
                    }
                }
                now_seqs.insert(e, (s.sequence_number, deletes));
            }
            None => {
                if let Some((_, before_deletes)) = seqs.get(&e) {
                    if *before_deletes == deletes {
                        bad.push(format!("snapshot {exec} vanished without a delete"));
                    }
                }
            }
        }
        // No working memory outlives its execution's cleanup.
        if !history.memory_since_cleanup[e] {
            let keys = store.memory().list(exec)?;
            if !keys.is_empty() {
                bad.push(format!(
                    "working memory {keys:?} of {exec} survived its execution's cleanup"
                ));
            }
        }
    }
    *seqs = now_seqs;
    Ok(bad)
}
