//! The model of the seed tables: card index, dedup claims, contexts, pending rings and
//! sessions, as plain maps, with the semantics the workload relies on.

use std::collections::BTreeMap;

use edgestate::flows::webhook::CAPTURE_EVENT_TYPE;
use edgestate::{
    CardMapping, ContextEvent, PendingCapture, PendingEntry, ProcessedTransaction, SessionKeyData,
    UserContext,
};

use crate::render::{self, Flat};
use crate::workload::{
    txn_id, Step, DEDUP_TTL_MS, MAX_RECENT_EVENTS, PENDING_CAPACITY, PENDING_TTL_MS, SESSION_TTL_MS,
};

fn seconds(now_ms: u64) -> i64 {
    (now_ms / 1000) as i64
}

/// The merchant name a webhook carries when it carries one.
pub fn merchant_name(merchant: &str) -> String {
    format!("Name of {merchant}")
}

#[derive(Debug, Clone, Default)]
struct Ring {
    next_seq: u64,
    rows: BTreeMap<u64, PendingEntry>,
}

/// How often each table path ran in the model (so a run shows what it covered).
#[derive(Debug, Clone, Default)]
pub struct Coverage {
    pub webhooks_processed: u64,
    pub webhook_duplicates: u64,
    pub webhook_unknown_card: u64,
    pub captures_evicted: u64,
    pub captures_taken: u64,
    pub cards_moved: u64,
    pub session_actions: u64,
    pub session_refusals: u64,
}

#[derive(Debug, Clone, Default)]
pub struct Tables {
    pub coverage: Coverage,
    cards: BTreeMap<String, CardMapping>,
    /// Claim and the instant it expires.
    claims: BTreeMap<String, (ProcessedTransaction, u64)>,
    contexts: BTreeMap<String, UserContext>,
    /// Session and the instant its record expires.
    sessions: BTreeMap<String, (SessionKeyData, u64)>,
    pending: BTreeMap<String, Ring>,
}

impl Tables {
    /// Users that ever had a pending capture: each keeps its seq counter row for good.
    pub fn pending_counters(&self) -> u64 {
        self.pending.len() as u64
    }

    fn push_event(&mut self, user: &str, event: ContextEvent, now: u64) {
        let mut ctx = self
            .contexts
            .get(user)
            .cloned()
            .unwrap_or_else(|| UserContext::new(user, now));
        ctx.recent_events.insert(0, event);
        ctx.recent_events.truncate(MAX_RECENT_EVENTS);
        self.rewrite_context(ctx, now);
    }

    fn rewrite_context(&mut self, mut ctx: UserContext, now: u64) {
        ctx.version += 1;
        ctx.updated_at_s = seconds(now);
        self.contexts.insert(ctx.pubkey.clone(), ctx);
    }

    fn add_pending(&mut self, user: &str, capture: PendingCapture, now: u64) {
        let ring = self.pending.entry(user.to_owned()).or_default();
        let seq = ring.next_seq.max(1);
        ring.next_seq = seq + 1;
        ring.rows.insert(
            seq,
            PendingEntry {
                seq,
                capture,
                expires_at_ms: now + PENDING_TTL_MS,
            },
        );
        // Eviction counts rows that expired but were not swept yet.
        while ring.rows.len() > PENDING_CAPACITY {
            ring.rows.pop_first();
            self.coverage.captures_evicted += 1;
        }
    }

    fn webhook(
        &mut self,
        txn: u64,
        fingerprint: &str,
        amount_cents: u64,
        merchant: &str,
        named: bool,
        now: u64,
    ) {
        let Some(card) = self.cards.get(fingerprint).cloned() else {
            self.coverage.webhook_unknown_card += 1;
            return; // unknown card: nothing written
        };
        let id = txn_id(txn);
        if self.claims.get(&id).is_some_and(|(_, exp)| *exp > now) {
            self.coverage.webhook_duplicates += 1;
            return; // duplicate: nothing written
        }
        self.coverage.webhooks_processed += 1;
        let user = card.user_pubkey;
        let now_s = seconds(now);
        self.claims.insert(
            id.clone(),
            (
                ProcessedTransaction {
                    txn_id: id.clone(),
                    user_pubkey: user.clone(),
                    amount: amount_cents,
                    processed_at_s: now_s,
                },
                now + DEDUP_TTL_MS,
            ),
        );
        let name = named.then(|| merchant_name(merchant));
        self.add_pending(
            &user,
            PendingCapture {
                merchant_id: merchant.to_owned(),
                merchant_name: name.clone(),
                amount_cents,
                card_last4: Some(card.card_last4),
                proof_data: Some(id.clone()),
                proof_type: Some("receipt".to_owned()),
                location: None,
                created_at_s: now_s,
                expires_at_s: now_s + (PENDING_TTL_MS / 1000) as i64,
            },
            now,
        );
        let shown = name.as_deref().unwrap_or(merchant);
        self.push_event(
            &user,
            ContextEvent {
                event_type: CAPTURE_EVENT_TYPE.to_owned(),
                timestamp_s: now_s,
                summary: format!("{amount_cents} cents at {shown} (txn {id})"),
                amount: Some(amount_cents),
            },
            now,
        );
    }

    /// Applies a table step; returns `false` for steps that are not table steps.
    pub fn step(&mut self, step: &Step, op_index: u64, now: u64) -> bool {
        let now_s = seconds(now);
        match step {
            Step::CardLink {
                fingerprint,
                user,
                last4,
            } => {
                if self
                    .cards
                    .get(*fingerprint)
                    .is_some_and(|c| c.user_pubkey != *user)
                {
                    self.coverage.cards_moved += 1;
                }
                self.cards.insert(
                    (*fingerprint).to_owned(),
                    CardMapping {
                        fingerprint: (*fingerprint).to_owned(),
                        user_pubkey: (*user).to_owned(),
                        card_last4: (*last4).to_owned(),
                        linked_at_s: now_s,
                    },
                );
            }
            Step::CardUnlink { fingerprint } => {
                self.cards.remove(*fingerprint);
            }
            Step::Webhook {
                txn,
                fingerprint,
                amount_cents,
                merchant,
                named,
            } => self.webhook(*txn, fingerprint, *amount_cents, merchant, *named, now),
            Step::ContextNote { user } => self.push_event(user, note(op_index, now), now),
            Step::ContextPatch { user, balance } => {
                if let Some(mut ctx) = self.contexts.get(*user).cloned() {
                    ctx.vault.cred_balance = *balance;
                    self.rewrite_context(ctx, now);
                }
            }
            Step::PendingTake { user } => {
                if let Some(ring) = self.pending.get_mut(*user) {
                    let oldest_live = ring
                        .rows
                        .iter()
                        .find(|(_, e)| e.expires_at_ms > now)
                        .map(|(seq, _)| *seq);
                    if let Some(seq) = oldest_live {
                        ring.rows.remove(&seq);
                        self.coverage.captures_taken += 1;
                    }
                }
            }
            Step::SessionStore {
                user,
                lifetime_s,
                max_actions,
            } => {
                let data = session_data(user, op_index, *lifetime_s, *max_actions, now);
                let own_ms = data.expires_at_s as u64 * 1000;
                let expiry = own_ms.min(now + SESSION_TTL_MS);
                self.sessions.insert((*user).to_owned(), (data, expiry));
            }
            Step::SessionUse { user } => {
                if let Some((data, expiry)) = self.sessions.get_mut(*user) {
                    if *expiry > now && data.actions_used < data.max_actions {
                        data.actions_used += 1;
                        self.coverage.session_actions += 1;
                        return true;
                    }
                }
                self.coverage.session_refusals += 1;
            }
            Step::SessionInvalidate { user } => {
                self.sessions.remove(*user);
            }
            _ => return false,
        }
        true
    }

    /// Removes every record due at `now`.
    pub fn sweep_all(&mut self, now: u64) {
        self.claims.retain(|_, (_, exp)| *exp > now);
        self.sessions.retain(|_, (_, exp)| *exp > now);
        for ring in self.pending.values_mut() {
            ring.rows.retain(|_, e| e.expires_at_ms > now);
        }
    }

    /// Adds the table lines of the records visible at `at` (`None`: every physical
    /// record, expired or not).
    pub fn render_into(&self, out: &mut Flat, at: Option<u64>) {
        let live = |exp: u64| at.is_none_or(|t| exp > t);
        let mut reverse: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for c in self.cards.values() {
            out.extend([render::card(c)]);
            reverse
                .entry(c.user_pubkey.as_str())
                .or_default()
                .push(c.fingerprint.clone());
        }
        for (user, fps) in reverse {
            out.extend([render::user_cards(user, &fps)]);
        }
        for (c, exp) in self.claims.values() {
            if live(*exp) {
                out.extend([render::claim(c)]);
            }
        }
        for c in self.contexts.values() {
            out.extend([render::context(c)]);
        }
        for (user, (s, exp)) in &self.sessions {
            if live(*exp) {
                out.extend([render::session(user, s)]);
            }
        }
        for (user, ring) in &self.pending {
            for e in ring.rows.values() {
                if live(e.expires_at_ms) {
                    out.extend([render::pending(user, e)]);
                }
            }
        }
    }
}

/// The event of a [`Step::ContextNote`].
pub fn note(op_index: u64, now: u64) -> ContextEvent {
    ContextEvent {
        event_type: "note".to_owned(),
        timestamp_s: seconds(now),
        summary: format!("note of op {op_index}"),
        amount: None,
    }
}

/// The session of a [`Step::SessionStore`].
pub fn session_data(
    user: &str,
    op_index: u64,
    lifetime_s: i64,
    max_actions: u32,
    now: u64,
) -> SessionKeyData {
    SessionKeyData {
        key_pubkey: format!("sk-{op_index}"),
        vault_pubkey: format!("vault-{user}"),
        scopes: vec!["capture".to_owned()],
        expires_at_s: seconds(now) + lifetime_s,
        created_at_s: seconds(now),
        max_actions,
        actions_used: 0,
    }
}
