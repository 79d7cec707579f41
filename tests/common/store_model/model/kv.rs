//! KV records, the JSON blobs stored in KV namespace `"blobs"`, and the byte store's
//! limited namespace.

use edgestate::{Expect, KvEntry};
use serde_json::Value;

use super::*;

impl Model {
    pub(super) fn apply_kv(&mut self, op: &Op) -> Outcome {
        let now = self.now;
        match op {
            Op::KvPut {
                ns,
                key,
                value,
                ttl,
            } => self.kv_put(
                NAMESPACES[*ns],
                KEYS[*key],
                kv_bytes(*value),
                *ttl,
                Expect::Any,
            ),
            Op::KvPutIf {
                ns,
                key,
                value,
                ttl,
                expect,
            } => self.kv_put(NAMESPACES[*ns], KEYS[*key], kv_bytes(*value), *ttl, *expect),
            Op::KvDelete { ns, key } => Outcome::Bool(
                remove(&mut self.kv, &pair(NAMESPACES[*ns], KEYS[*key]), now).is_some(),
            ),
            Op::KvDeleteIf { ns, key, expect } => {
                let (ns, key) = (NAMESPACES[*ns], KEYS[*key]);
                let k = pair(ns, key);
                let actual = live(&self.kv, &k, now).map(|r| r.version);
                match check(expect, actual) {
                    Ok(()) => Outcome::Bool(remove(&mut self.kv, &k, now).is_some()),
                    Err(()) => err(conflict(
                        "edgestate.kv",
                        format!("{ns}/{key}"),
                        *expect,
                        actual,
                    )),
                }
            }
            Op::KvDeletePrefix { ns, prefix } => {
                let ns = NAMESPACES[*ns];
                let doomed: Vec<Pair> = self
                    .kv
                    .keys()
                    .filter(|(n, k)| n == ns && k.starts_with(PREFIXES[*prefix]))
                    .cloned()
                    .collect();
                let live = doomed
                    .iter()
                    .filter(|k| remove(&mut self.kv, k, now).is_some())
                    .count();
                Outcome::Count(live)
            }
            Op::KvUpdate {
                ns,
                key,
                ttl,
                action,
            } => {
                let k = pair(NAMESPACES[*ns], KEYS[*key]);
                match action {
                    UpdateAction::Refuse => invalid("update"),
                    UpdateAction::Remove => {
                        self.kv.remove(&k);
                        Outcome::MaybeVersion(None)
                    }
                    UpdateAction::Increment => {
                        let first = live(&self.kv, &k, now)
                            .and_then(|r| r.value.bytes.first().copied())
                            .unwrap_or(0);
                        let value = KvValue {
                            json: false,
                            bytes: vec![first.wrapping_add(1)],
                        };
                        let expires = ttl.map(|t| now + t);
                        Outcome::MaybeVersion(Some(put(&mut self.kv, &k, value, expires, now)))
                    }
                }
            }
            Op::KvGet { ns, key } => Outcome::Kv(self.kv_entry(NAMESPACES[*ns], KEYS[*key])),
            Op::KvList { ns, prefix, limit } => {
                let ns = NAMESPACES[*ns];
                let entries = self
                    .kv
                    .iter()
                    .filter(|((n, k), r)| {
                        n == ns && k.starts_with(PREFIXES[*prefix]) && r.is_live(now)
                    })
                    .map(|((_, k), r)| kv_entry(k, r))
                    .take(*limit)
                    .collect();
                Outcome::KvList(entries)
            }
            Op::KvGetMany { ns, keys } => Outcome::KvMany(
                keys.iter()
                    .map(|k| self.kv_entry(NAMESPACES[*ns], KEYS[*k]))
                    .collect(),
            ),

            Op::BlobSave { key, value } => {
                let bytes = serde_json::to_vec(&blob_value(*value)).expect("json");
                let k = pair(edgestate::BLOB_NAMESPACE, BLOB_KEYS[*key]);
                put(&mut self.kv, &k, KvValue { json: true, bytes }, None, now);
                Outcome::Unit
            }
            Op::BlobLoad { key } => {
                let k = pair(edgestate::BLOB_NAMESPACE, BLOB_KEYS[*key]);
                match live(&self.kv, &k, now) {
                    None => Outcome::Blob(None),
                    Some(r) if r.value.json => Outcome::Blob(Some(
                        serde_json::from_slice::<Value>(&r.value.bytes).expect("json"),
                    )),
                    // Bytes are not a blob; postcard cannot read a `Value`.
                    Some(_) => err(ErrKind::Decode {
                        table: "edgestate.kv",
                        key: format!("{}/{}", k.0, k.1),
                    }),
                }
            }
            Op::BlobDelete { key } => {
                let k = pair(edgestate::BLOB_NAMESPACE, BLOB_KEYS[*key]);
                Outcome::Bool(remove(&mut self.kv, &k, now).is_some())
            }

            Op::ByteSet { key, value } => {
                let k = pair(BYTE_NS, KEYS[*key]);
                let live_keys = self
                    .kv
                    .iter()
                    .filter(|((n, _), r)| n == BYTE_NS && r.is_live(now))
                    .count();
                if live(&self.kv, &k, now).is_none() && live_keys >= BYTE_MAX_ITEMS {
                    return invalid("max_items");
                }
                let value = KvValue {
                    json: false,
                    bytes: vec![*value],
                };
                put(&mut self.kv, &k, value, Some(now + BYTE_TTL_MS), now);
                Outcome::Unit
            }
            _ => unreachable!("not a KV op: {op:?}"),
        }
    }

    fn kv_put(
        &mut self,
        ns: &str,
        key: &str,
        bytes: Vec<u8>,
        ttl: Option<u64>,
        expect: Expect,
    ) -> Outcome {
        let k = pair(ns, key);
        let actual = live(&self.kv, &k, self.now).map(|r| r.version);
        if check(&expect, actual).is_err() {
            return err(conflict(
                "edgestate.kv",
                format!("{ns}/{key}"),
                expect,
                actual,
            ));
        }
        let expires = ttl.map(|t| self.now + t);
        let value = KvValue { json: false, bytes };
        Outcome::Version(put(&mut self.kv, &k, value, expires, self.now))
    }

    fn kv_entry(&self, ns: &str, key: &str) -> Option<KvEntry> {
        live(&self.kv, &pair(ns, key), self.now).map(|r| kv_entry(key, r))
    }
}

/// `Expect::check`: whether a record at version `actual` (`None`: no live record)
/// meets the expectation.
fn check(expect: &Expect, actual: Option<u64>) -> Result<(), ()> {
    let ok = match expect {
        Expect::Any => true,
        Expect::Absent => actual.is_none(),
        Expect::Version(v) => actual == Some(*v),
    };
    if ok {
        Ok(())
    } else {
        Err(())
    }
}

fn conflict(table: &'static str, key: String, expect: Expect, actual: Option<u64>) -> ErrKind {
    ErrKind::Conflict {
        table,
        key,
        expected: match expect {
            Expect::Version(v) => Some(v),
            Expect::Any | Expect::Absent => None,
        },
        actual,
    }
}

fn kv_entry(key: &str, r: &Rec<KvValue>) -> KvEntry {
    KvEntry {
        key: key.to_owned(),
        value: r.value.bytes.clone(),
        version: r.version,
        expires_at_ms: r.expires,
    }
}
