//! Records that exist to expire: idempotency leases and results, sessions, the
//! location cache.

use edgestate::{Begin, CurrentMerchant, IdempotencyRecord, IdempotencyState, SessionRefusal};

use super::*;

impl Model {
    pub(super) fn apply_leases(&mut self, op: &Op) -> Outcome {
        let now = self.now;
        match op {
            Op::IdemBegin { key, payload } => {
                let (key, fp) = (IDEM_KEYS[*key].to_owned(), PAYLOADS[*payload]);
                match live(&self.idempotency, &key, now).map(|r| &r.value) {
                    Some((stored_fp, _)) if stored_fp != fp => err(ErrKind::IdemMismatch { key }),
                    Some((
                        _,
                        IdempotencyState::InProgress {
                            lease_expires_at_ms,
                            ..
                        },
                    )) => err(ErrKind::IdemInProgress {
                        key,
                        lease_expires_at_ms: *lease_expires_at_ms,
                    }),
                    Some((_, IdempotencyState::Completed { result, .. })) => {
                        Outcome::Begin(Begin::Completed(result.clone()))
                    }
                    None => {
                        let lease = now + IDEMPOTENCY_LEASE_MS;
                        let state = IdempotencyState::InProgress {
                            started_at_ms: now,
                            lease_expires_at_ms: lease,
                        };
                        put(
                            &mut self.idempotency,
                            &key,
                            (fp.to_vec(), state),
                            Some(lease),
                            now,
                        );
                        Outcome::Begin(Begin::Started {
                            lease_expires_at_ms: lease,
                        })
                    }
                }
            }
            Op::IdemComplete {
                key,
                payload,
                result,
            } => {
                let (key, fp) = (IDEM_KEYS[*key].to_owned(), PAYLOADS[*payload]);
                match live(&self.idempotency, &key, now).map(|r| &r.value) {
                    Some((stored_fp, _)) if stored_fp != fp => err(ErrKind::IdemMismatch { key }),
                    Some((_, IdempotencyState::Completed { .. })) => Outcome::Bool(false),
                    _ => {
                        let state = IdempotencyState::Completed {
                            result: vec![*result],
                            completed_at_ms: now,
                        };
                        let expires = now + IDEMPOTENCY_TTL_MS;
                        put(
                            &mut self.idempotency,
                            &key,
                            (fp.to_vec(), state),
                            Some(expires),
                            now,
                        );
                        Outcome::Bool(true)
                    }
                }
            }
            Op::IdemAbandon { key } => {
                let key = IDEM_KEYS[*key].to_owned();
                let in_progress = matches!(
                    live(&self.idempotency, &key, now).map(|r| &r.value.1),
                    Some(IdempotencyState::InProgress { .. })
                );
                if in_progress {
                    self.idempotency.remove(&key);
                }
                Outcome::Bool(in_progress)
            }
            Op::IdemGet { key } => {
                let key = IDEM_KEYS[*key].to_owned();
                Outcome::Idem(
                    live(&self.idempotency, &key, now).map(|r| IdempotencyRecord {
                        key: key.clone(),
                        payload_fingerprint: r.value.0.clone(),
                        state: r.value.1.clone(),
                        expires_at_ms: r.expires,
                    }),
                )
            }

            Op::SessionStore {
                user,
                expires_in_s,
                max_actions,
                actions_used,
            } => {
                let user = USERS[*user];
                let session = session_data(user, now, *expires_in_s, *max_actions, *actions_used);
                let own = u64::try_from(session.expires_at_s)
                    .ok()
                    .filter(|s| *s > 0)
                    .map(|s| s * 1000);
                match own.filter(|at| *at > now) {
                    None => invalid("expires_at_s"),
                    Some(own) => {
                        let expires = own.min(now + SESSION_TTL_MS);
                        put(
                            &mut self.sessions,
                            &user.to_owned(),
                            session,
                            Some(expires),
                            now,
                        );
                        Outcome::Unit
                    }
                }
            }
            Op::SessionGet { user } => Outcome::Session(
                live(&self.sessions, &USERS[*user].to_owned(), now).map(|r| r.value.clone()),
            ),
            Op::SessionUseAction { user } => {
                let user = USERS[*user].to_owned();
                let refuse = |reason| {
                    err(ErrKind::SessionRefused {
                        user: user.clone(),
                        reason,
                    })
                };
                match self.sessions.get(&user) {
                    None => refuse(SessionRefusal::Missing),
                    Some(r) if !r.is_live(now) => refuse(SessionRefusal::Expired),
                    Some(r) if r.value.actions_used >= r.value.max_actions => {
                        refuse(SessionRefusal::Exhausted)
                    }
                    Some(r) => {
                        let mut session = r.value.clone();
                        session.actions_used += 1;
                        let expires = r.expires;
                        put(&mut self.sessions, &user, session.clone(), expires, now);
                        Outcome::SessionUsed(session)
                    }
                }
            }
            Op::SessionInvalidate { user } => {
                Outcome::Bool(remove(&mut self.sessions, &USERS[*user].to_owned(), now).is_some())
            }

            Op::LocCache { user, merchant } => {
                let merchant = MERCHANTS[*merchant];
                if merchant.is_empty() {
                    return invalid("merchant_id");
                }
                let expires = now + LOCATION_TTL_MS;
                let user = USERS[*user].to_owned();
                put(
                    &mut self.locations,
                    &user,
                    (merchant.to_owned(), now),
                    Some(expires),
                    now,
                );
                Outcome::Merchant(CurrentMerchant {
                    merchant_id: merchant.to_owned(),
                    entered_at_ms: now,
                    expires_at_ms: expires,
                })
            }
            Op::LocGet { user } => Outcome::MaybeMerchant(
                live(&self.locations, &USERS[*user].to_owned(), now).map(|r| CurrentMerchant {
                    merchant_id: r.value.0.clone(),
                    entered_at_ms: r.value.1,
                    expires_at_ms: r.expires.unwrap_or(u64::MAX),
                }),
            ),
            Op::LocClear { user } => {
                Outcome::Bool(remove(&mut self.locations, &USERS[*user].to_owned(), now).is_some())
            }

            _ => unreachable!("not a lease op: {op:?}"),
        }
    }
}
