//! What the payment webhook touches: contexts, the card index, dedup claims, and the
//! webhook itself (which also adds a pending capture).

use edgestate::{
    CardMapping, Claim, ContextBatch, ContextEvent, LinkOutcome, PendingCapture,
    ProcessedTransaction, UserContext, WebhookOutcome,
};
use serde_json::Value;

use super::*;

impl Model {
    pub(super) fn apply_accounts(&mut self, op: &Op) -> Outcome {
        let now = self.now;
        match op {
            Op::CtxFetch { user } => Outcome::MaybeCtx(self.contexts.get(USERS[*user]).cloned()),
            Op::CtxFetchMany { users } => {
                let mut batch = ContextBatch::default();
                for u in users {
                    match self.contexts.get(USERS[*u]) {
                        Some(ctx) => batch.found.push(ctx.clone()),
                        None => batch.missing.push(USERS[*u].to_owned()),
                    }
                }
                Outcome::CtxBatch(batch)
            }
            Op::CtxGetOrInit { user } => {
                let user = USERS[*user];
                match self.contexts.get(user) {
                    Some(ctx) => Outcome::Ctx(ctx.clone()),
                    None => Outcome::Ctx(self.ctx_write(UserContext::new(user, now))),
                }
            }
            Op::CtxPush {
                user,
                version,
                cred,
            } => {
                let user = USERS[*user];
                let actual = self.contexts.get(user).map(|c| c.version);
                let ok = match version {
                    0 => actual.is_none(),
                    v => actual == Some(*v),
                };
                if ok {
                    Outcome::Ctx(self.ctx_write(pushed_context(user, *version, *cred)))
                } else {
                    err(ErrKind::Conflict {
                        table: "edgestate.contexts",
                        key: user.to_owned(),
                        expected: (*version != 0).then_some(*version),
                        actual,
                    })
                }
            }
            Op::CtxPatch { user, patch } => {
                let user = USERS[*user];
                let Some(mut ctx) = self.contexts.get(user).cloned() else {
                    return err(ErrKind::NotFound {
                        table: "edgestate.contexts",
                        key: user.to_owned(),
                    });
                };
                if apply_patch(&mut ctx, *patch) {
                    Outcome::Ctx(self.ctx_write(ctx))
                } else {
                    invalid(PATCHES[*patch].0)
                }
            }
            Op::CtxPushEvent { user, amount } => {
                Outcome::Ctx(self.push_event(USERS[*user], note_event(now, *amount)))
            }
            Op::CtxDelete { user } => Outcome::MaybeCtx(self.contexts.remove(USERS[*user])),

            Op::CardLink { fp, user, last4 } => {
                let (fp, user, last4) = (FINGERPRINTS[*fp], USERS[*user], LAST4[*last4]);
                if !(last4.len() == 4 && last4.bytes().all(|b| b.is_ascii_digit())) {
                    return invalid("card_last4");
                }
                let mapping = CardMapping {
                    fingerprint: fp.to_owned(),
                    user_pubkey: user.to_owned(),
                    card_last4: last4.to_owned(),
                    linked_at_s: secs(now),
                };
                let previous = self.cards.insert(fp.to_owned(), mapping.clone());
                if let Some(old) = &previous {
                    self.user_cards.remove(&pair(&old.user_pubkey, fp));
                }
                self.user_cards.insert(pair(user, fp));
                Outcome::Link(LinkOutcome {
                    mapping,
                    previous_owner: previous
                        .as_ref()
                        .filter(|old| old.user_pubkey != user)
                        .map(|old| old.user_pubkey.clone()),
                    relinked: previous.is_some_and(|old| old.user_pubkey == user),
                })
            }
            Op::CardUnlink { fp } => {
                let fp = FINGERPRINTS[*fp];
                let old = self.cards.remove(fp);
                if let Some(old) = &old {
                    self.user_cards.remove(&pair(&old.user_pubkey, fp));
                }
                Outcome::Card(old)
            }
            Op::CardLookup { fp } => Outcome::Card(self.cards.get(FINGERPRINTS[*fp]).cloned()),
            Op::CardUserCards { user } => {
                let user = USERS[*user];
                Outcome::Cards(
                    self.user_cards
                        .iter()
                        .filter(|(u, _)| u == user)
                        .map(|(_, fp)| self.cards[fp].clone())
                        .collect(),
                )
            }

            Op::DedupClaim { txn, user, amount } => {
                Outcome::Claim(self.claim(TXNS[*txn], USERS[*user], *amount))
            }
            Op::DedupIsProcessed { txn } => {
                Outcome::Bool(live(&self.dedup, &TXNS[*txn].to_owned(), now).is_some())
            }
            Op::DedupGet { txn } => Outcome::Processed(
                live(&self.dedup, &TXNS[*txn].to_owned(), now).map(|r| r.value.clone()),
            ),
            Op::DedupForget { txn } => {
                Outcome::Bool(remove(&mut self.dedup, &TXNS[*txn].to_owned(), now).is_some())
            }

            Op::Webhook {
                txn,
                fp,
                amount,
                merchant,
                named,
            } => Outcome::Webhook(match self.webhook(*txn, *fp, *amount, *merchant, *named) {
                Ok(outcome) => outcome,
                Err(kind) => return err(kind),
            }),

            _ => unreachable!("not an accounts op: {op:?}"),
        }
    }

    fn ctx_write(&mut self, mut ctx: UserContext) -> UserContext {
        ctx.version = self.contexts.get(&ctx.pubkey).map_or(1, |c| c.version + 1);
        ctx.updated_at_s = secs(self.now);
        self.contexts.insert(ctx.pubkey.clone(), ctx.clone());
        ctx
    }

    fn push_event(&mut self, user: &str, event: ContextEvent) -> UserContext {
        let mut ctx = self
            .contexts
            .get(user)
            .cloned()
            .unwrap_or_else(|| UserContext::new(user, self.now));
        ctx.recent_events.insert(0, event);
        ctx.recent_events.truncate(MAX_RECENT_EVENTS);
        self.ctx_write(ctx)
    }

    fn claim(&mut self, txn: &str, user: &str, amount: u64) -> Claim {
        let key = txn.to_owned();
        if let Some(first) = live(&self.dedup, &key, self.now) {
            return Claim::Duplicate(first.value.clone());
        }
        let record = ProcessedTransaction {
            txn_id: key.clone(),
            user_pubkey: user.to_owned(),
            amount,
            processed_at_s: secs(self.now),
        };
        put(
            &mut self.dedup,
            &key,
            record,
            Some(self.now + DEDUP_TTL_MS),
            self.now,
        );
        Claim::New
    }

    fn webhook(
        &mut self,
        txn: usize,
        fp: usize,
        amount: u64,
        merchant: usize,
        named: bool,
    ) -> Result<WebhookOutcome, ErrKind> {
        let merchant_id = MERCHANTS[merchant];
        if merchant_id.is_empty() {
            return Err(ErrKind::Invalid {
                field: "merchant_id".into(),
            });
        }
        let Some(card) = self.cards.get(FINGERPRINTS[fp]).cloned() else {
            return Ok(WebhookOutcome::UnknownCard);
        };
        let user = card.user_pubkey;
        if let Claim::Duplicate(first) = self.claim(TXNS[txn], &user, amount) {
            return Ok(WebhookOutcome::Duplicate(first));
        }
        let now_s = secs(self.now);
        let merchant_name = named.then(|| "Cafe".to_owned());
        let shown_merchant = merchant_name
            .clone()
            .unwrap_or_else(|| merchant_id.to_owned());
        let capture = PendingCapture {
            merchant_id: merchant_id.to_owned(),
            merchant_name,
            amount_cents: amount,
            card_last4: Some(card.card_last4),
            proof_data: None,
            proof_type: None,
            location: None,
            created_at_s: now_s,
            expires_at_s: now_s + (PENDING_TTL_MS / 1000) as i64,
        };
        let id = self.pending_add(&user, capture);
        let ctx = self.push_event(
            &user,
            ContextEvent {
                event_type: "capture_pending".into(),
                timestamp_s: now_s,
                summary: format!("{amount} cents at {shown_merchant} (txn {})", TXNS[txn]),
                amount: Some(amount),
            },
        );
        Ok(WebhookOutcome::Processed {
            user,
            pending_seq: id.seq,
            evicted: id.evicted,
            context_version: ctx.version,
        })
    }
}

/// Patch `i` of [`PATCHES`], by hand: returns false (and leaves `ctx` alone) where the
/// store must refuse it.
fn apply_patch(ctx: &mut UserContext, i: usize) -> bool {
    let value = patch_value(i);
    match i {
        0 => ctx.vault.cred_balance = 7,
        1 => ctx.preferences.risk_tolerance = "aggressive".into(),
        2 => ctx.preferences.notifications.min_notify_amount = 5,
        3 | 4 => {
            let key = if i == 3 { "goal" } else { "plan" };
            ctx.agent_memory.insert(key.into(), value);
        }
        5 => match ctx.agent_memory.get_mut("plan") {
            Some(Value::Object(plan)) => {
                plan.insert("done".into(), value);
            }
            _ => return false,
        },
        6 => match ctx.recent_events.first_mut() {
            Some(event) => event.summary = "edited".into(),
            None => return false,
        },
        7 => {
            let Value::Object(map) = value else {
                unreachable!("patch 7 is an object")
            };
            ctx.agent_memory = map.into_iter().collect();
        }
        _ => return false,
    }
    true
}
