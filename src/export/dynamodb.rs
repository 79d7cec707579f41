//! DynamoDB JSON items in the seed's single-table layout (`loop_agent_sdk`'s
//! `DynamoStateStore`): partition key `pk`, sort key `sk`, TTL attribute `ttl` (Unix
//! seconds). One item per line, as `{"Item": {...}}` (DynamoDB's S3 export shape); a
//! bare item map is read too.
//!
//! | pk | sk | attributes |
//! |----|----|------------|
//! | `CARD#<fingerprint>` | `META` | `fingerprint`, `user_pubkey`, `card_last4`, `linked_at` |
//! | `TXN#<txn id>` | `PROCESSED` | `user_pubkey`, `cred_amount`, `processed_at`, `ttl` |
//! | `USER#<user>` | `SESSION` | `session_data` (JSON), `expires_at`, `ttl` |
//! | `USER#<user>` | `PENDING#<20-digit number>` | `capture_data` (JSON), `merchant_id`, `amount_cents`, `created_at`, `ttl` |
//! | `USER#<user>` | `LOCATION` | `merchant_id`, `entered_at`, `ttl` |
//! | `USER#<user>` | `CONTEXT` | `context_data` (JSON), `version`, `updated_at` |
//!
//! edgestate adds attributes the seed ignores, so that a round trip loses nothing:
//! `version` on every item, `expires_at_ms` (the exact expiry; `ttl` is rounded up to
//! a second), `entered_at_ms` on a location; `USER#<user>`/`PENDING_SEQ` items with
//! `next_seq`; and the families the seed did not have (kv, idempotency, snapshots and
//! their tenant index, working memory) as `EDGESTATE#<family>` items whose `sk` is the
//! key as a JSON array, with `format`, `payload` (binary) and the expiry. Importing a seed
//! item takes its sort key's number as the pending sequence number (the seed's
//! timestamp) and expiry from `ttl`; the card reverse index is rebuilt from the cards.

use serde_json::{json, Map, Value};

use super::raw::{Body, RawRecord};
use super::view::LocationBody;
use super::{b64, Family, Op};
use crate::codec::{self, envelope};
use crate::error::{Error, Result};
use crate::{CardMapping, PendingCapture, ProcessedTransaction, SessionKeyData, UserContext};

/// The seed's TTL attribute.
pub(crate) const TTL_ATTRIBUTE: &str = "ttl";

fn s(v: impl Into<String>) -> Value {
    json!({ "S": v.into() })
}

fn n(v: impl ToString) -> Value {
    json!({ "N": v.to_string() })
}

fn ttl_seconds(expires_at_ms: u64) -> u64 {
    expires_at_ms.div_ceil(1000)
}

fn json_text<T: serde::Serialize>(value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(|e| Error::Encode {
        what: "DynamoDB attribute",
        reason: e.to_string(),
    })
}

fn user_of(key: &[Value]) -> String {
    key.first()
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// The DynamoDB item for one stored item; `None` for the card reverse index, which an
/// import rebuilds from the cards.
pub(crate) fn to_item(rec: &RawRecord) -> Result<Option<Value>> {
    let family = rec.family;
    let (version, expires_at_ms, format, payload) = match &rec.body {
        Body::Record {
            version,
            expires_at_ms,
            format,
            payload,
        } => (*version, *expires_at_ms, *format, payload.as_slice()),
        Body::Entry if family == Family::UserCards => return Ok(None),
        Body::Entry => {
            let mut item = Map::new();
            item.insert("pk".into(), s(format!("EDGESTATE#{}", family.name())));
            item.insert("sk".into(), s(json_text(&rec.key)?));
            return Ok(Some(json!({ "Item": item })));
        }
        Body::NextSeq(next) => {
            return Ok(Some(json!({ "Item": {
                "pk": s(format!("USER#{}", user_of(&rec.key))),
                "sk": s("PENDING_SEQ"),
                "next_seq": n(next),
            }})));
        }
    };
    let key = rec.shown_key();
    let t = family.table_name();
    let mut item = Map::new();
    let mut put = |k: &str, v: Value| {
        item.insert(k.to_owned(), v);
    };
    match family {
        Family::Cards => {
            let m: CardMapping = codec::from_postcard_record(t, &key, format, payload)?;
            put("pk", s(format!("CARD#{}", m.fingerprint)));
            put("sk", s("META"));
            put("fingerprint", s(m.fingerprint));
            put("user_pubkey", s(m.user_pubkey));
            put("card_last4", s(m.card_last4));
            put("linked_at", n(m.linked_at_s));
        }
        Family::Dedup => {
            let p: ProcessedTransaction = codec::from_postcard_record(t, &key, format, payload)?;
            put("pk", s(format!("TXN#{}", p.txn_id)));
            put("sk", s("PROCESSED"));
            put("user_pubkey", s(p.user_pubkey));
            put("cred_amount", n(p.amount));
            put("processed_at", n(p.processed_at_s));
        }
        Family::Sessions => {
            let sess: SessionKeyData = codec::from_postcard_record(t, &key, format, payload)?;
            put("pk", s(format!("USER#{}", user_of(&rec.key))));
            put("sk", s("SESSION"));
            put("expires_at", n(sess.expires_at_s));
            put("session_data", s(json_text(&sess)?));
        }
        Family::Pending => {
            let c: PendingCapture = codec::from_postcard_record(t, &key, format, payload)?;
            let seq = rec.key.get(1).and_then(Value::as_u64).unwrap_or(0);
            put("pk", s(format!("USER#{}", user_of(&rec.key))));
            put("sk", s(format!("PENDING#{seq:020}")));
            put("merchant_id", s(c.merchant_id.clone()));
            put("amount_cents", n(c.amount_cents));
            put("created_at", n(c.created_at_s));
            put("capture_data", s(json_text(&c)?));
        }
        Family::Locations => {
            let l: LocationBody = codec::from_postcard_record(t, &key, format, payload)?;
            put("pk", s(format!("USER#{}", user_of(&rec.key))));
            put("sk", s("LOCATION"));
            put("merchant_id", s(l.merchant_id));
            put("entered_at", n(l.entered_at_ms / 1000));
            put("entered_at_ms", n(l.entered_at_ms));
        }
        Family::Contexts => {
            let mut ctx: UserContext = codec::from_postcard_record(t, &key, format, payload)?;
            ctx.version = version;
            put("pk", s(format!("USER#{}", user_of(&rec.key))));
            put("sk", s("CONTEXT"));
            put("updated_at", n(ctx.updated_at_s));
            put("context_data", s(json_text(&ctx)?));
        }
        _ => {
            put("pk", s(format!("EDGESTATE#{}", family.name())));
            put("sk", s(json_text(&rec.key)?));
            put("format", n(format));
            put("payload", json!({ "B": b64::encode(payload) }));
        }
    }
    put("version", n(version));
    if let Some(at) = expires_at_ms {
        put(TTL_ATTRIBUTE, n(ttl_seconds(at)));
        put("expires_at_ms", n(at));
    }
    Ok(Some(json!({ "Item": item })))
}

type Item = Map<String, Value>;

fn attr<'a>(
    item: &'a Item,
    name: &str,
    kind: &str,
) -> std::result::Result<Option<&'a str>, String> {
    match item.get(name) {
        None => Ok(None),
        Some(v) => v
            .get(kind)
            .and_then(Value::as_str)
            .map(Some)
            .ok_or_else(|| format!("attribute `{name}` is not of type {kind}")),
    }
}

fn req_s<'a>(item: &'a Item, name: &str) -> std::result::Result<&'a str, String> {
    attr(item, name, "S")?.ok_or_else(|| format!("missing string attribute `{name}`"))
}

fn opt_n<T: std::str::FromStr>(item: &Item, name: &str) -> std::result::Result<Option<T>, String> {
    attr(item, name, "N")?
        .map(|t| {
            t.parse::<T>().map_err(|_| {
                format!("attribute `{name}` is not a number of the expected range: {t}")
            })
        })
        .transpose()
}

fn req_n<T: std::str::FromStr>(item: &Item, name: &str) -> std::result::Result<T, String> {
    opt_n(item, name)?.ok_or_else(|| format!("missing number attribute `{name}`"))
}

fn postcard<T: serde::Serialize>(value: &T) -> std::result::Result<Vec<u8>, String> {
    codec::to_postcard("record", value).map_err(|e| e.to_string())
}

fn from_json_attr<T: serde::de::DeserializeOwned>(
    item: &Item,
    name: &str,
) -> std::result::Result<T, String> {
    serde_json::from_str(req_s(item, name)?).map_err(|e| format!("attribute `{name}`: {e}"))
}

/// The operations one DynamoDB item line stands for.
pub(crate) fn parse_line(text: &str) -> std::result::Result<Vec<Op>, String> {
    let value: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let item = match value {
        Value::Object(mut map) => match map.remove("Item") {
            Some(Value::Object(item)) => item,
            Some(_) => return Err("`Item` is not a map".into()),
            None => map,
        },
        _ => return Err("not a DynamoDB item (a JSON object)".into()),
    };
    let pk = req_s(&item, "pk")?;
    let sk = req_s(&item, "sk")?;
    let version: u64 = opt_n(&item, "version")?.unwrap_or(1);
    let expires_at_ms: Option<u64> = match opt_n::<u64>(&item, "expires_at_ms")? {
        Some(at) => Some(at),
        None => opt_n::<u64>(&item, TTL_ATTRIBUTE)?.map(|s| s.saturating_mul(1000)),
    };
    let record = |family: Family, key: Vec<Value>, payload: Vec<u8>, expires: Option<u64>| {
        Op::Put(RawRecord {
            family,
            key,
            body: Body::Record {
                version,
                expires_at_ms: expires,
                format: envelope::FORMAT_POSTCARD,
                payload,
            },
        })
    };
    if let Some(fp) = pk.strip_prefix("CARD#") {
        let user = req_s(&item, "user_pubkey")?;
        let m = CardMapping {
            fingerprint: fp.to_owned(),
            user_pubkey: user.to_owned(),
            card_last4: req_s(&item, "card_last4")?.to_owned(),
            linked_at_s: opt_n(&item, "linked_at")?.unwrap_or(0),
        };
        return Ok(vec![
            record(Family::Cards, vec![json!(fp)], postcard(&m)?, None),
            Op::Put(RawRecord {
                family: Family::UserCards,
                key: vec![json!(user), json!(fp)],
                body: Body::Entry,
            }),
        ]);
    }
    if let Some(txn) = pk.strip_prefix("TXN#") {
        let p = ProcessedTransaction {
            txn_id: txn.to_owned(),
            user_pubkey: req_s(&item, "user_pubkey")?.to_owned(),
            amount: req_n(&item, "cred_amount")?,
            processed_at_s: opt_n(&item, "processed_at")?.unwrap_or(0),
        };
        return Ok(vec![record(
            Family::Dedup,
            vec![json!(txn)],
            postcard(&p)?,
            expires_at_ms,
        )]);
    }
    if let Some(family) = pk.strip_prefix("EDGESTATE#") {
        let family =
            Family::from_name(family).ok_or_else(|| format!("unknown family `{family}`"))?;
        let key: Vec<Value> =
            serde_json::from_str(sk).map_err(|e| format!("`sk` is not a JSON key: {e}"))?;
        let body = match family {
            Family::UserCards | Family::SnapshotsByTenant => Body::Entry,
            _ => Body::Record {
                version,
                expires_at_ms,
                format: req_n(&item, "format")?,
                payload: attr(&item, "payload", "B")?
                    .and_then(b64::decode)
                    .ok_or("missing or bad binary attribute `payload`")?,
            },
        };
        return Ok(vec![Op::Put(RawRecord { family, key, body })]);
    }
    let user = pk
        .strip_prefix("USER#")
        .ok_or_else(|| format!("unknown partition key `{pk}`"))?;
    let key = vec![json!(user)];
    match sk {
        "SESSION" => {
            let sess: SessionKeyData = from_json_attr(&item, "session_data")?;
            Ok(vec![record(
                Family::Sessions,
                key,
                postcard(&sess)?,
                expires_at_ms,
            )])
        }
        "LOCATION" => {
            let entered_at_ms = match opt_n::<u64>(&item, "entered_at_ms")? {
                Some(ms) => ms,
                None => opt_n::<u64>(&item, "entered_at")?
                    .unwrap_or(0)
                    .saturating_mul(1000),
            };
            let body = LocationBody {
                merchant_id: req_s(&item, "merchant_id")?.to_owned(),
                entered_at_ms,
            };
            Ok(vec![record(
                Family::Locations,
                key,
                postcard(&body)?,
                expires_at_ms,
            )])
        }
        "CONTEXT" => {
            let mut ctx: UserContext = from_json_attr(&item, "context_data")?;
            if ctx.pubkey != user {
                return Err(format!(
                    "context_data is for `{}`, the item for `{user}`",
                    ctx.pubkey
                ));
            }
            ctx.version = version;
            Ok(vec![record(Family::Contexts, key, postcard(&ctx)?, None)])
        }
        "PENDING_SEQ" => Ok(vec![Op::Put(RawRecord {
            family: Family::PendingSeq,
            key,
            body: Body::NextSeq(req_n(&item, "next_seq")?),
        })]),
        other => {
            let seq: u64 = other
                .strip_prefix("PENDING#")
                .and_then(|n| n.parse().ok())
                .ok_or_else(|| format!("unknown sort key `{other}`"))?;
            let capture: PendingCapture = from_json_attr(&item, "capture_data")?;
            Ok(vec![
                record(
                    Family::Pending,
                    vec![json!(user), json!(seq)],
                    postcard(&capture)?,
                    expires_at_ms,
                ),
                Op::RaiseSeq(user.to_owned(), seq.saturating_add(1)),
            ])
        }
    }
}
