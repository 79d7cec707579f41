//! Export and import: lossless JSON Lines round trips, the seed's DynamoDB items, and
//! bad input.

use std::time::Duration;

use edgestate::compat::loop_agent::{LoopAgentStore, StateStore};
use edgestate::export::{Family, Format, IMPORT_BATCH};
use edgestate::{
    ContextEvent, Error, ExecutionSnapshot, ExecutionState, ManualClock, PendingCapture,
    SessionKeyData, Store, Table,
};

const T0_MS: u64 = 1_700_000_000_000;

fn clocked() -> (Store, ManualClock) {
    let clock = ManualClock::new(T0_MS);
    let store = Store::builder()
        .clock(clock.clone())
        .pending_capacity(3)
        .in_memory()
        .expect("store");
    (store, clock)
}

/// A store with something in every family, including expired-but-unswept records,
/// evicted pending entries (so sequence numbers have gaps) and a moved card.
fn populated() -> (Store, ManualClock) {
    let (store, clock) = clocked();
    let kv = store.kv();
    kv.put("bot", "position", b"long 2 BTC", None).expect("kv");
    kv.put("bot", "position", b"flat", None).expect("kv v2");
    kv.put("bot", "binary", &[0, 159, 146, 150], None)
        .expect("kv bin");
    kv.put("cache", "quote", b"64000", Some(Duration::from_secs(60)))
        .expect("kv ttl");
    kv.put("cache", "stale", b"1", Some(Duration::from_secs(1)))
        .expect("kv short ttl");
    kv.put_value("typed", "point", &(3u32, -4i64), None)
        .expect("typed");
    kv.put_json(
        "json",
        "doc",
        &serde_json::json!({"z": 1, "a": [true, null]}),
        None,
    )
    .expect("json");
    store
        .blobs()
        .put("cfg", &serde_json::json!({"k": "v"}))
        .expect("blob");

    store.contexts().get_or_init("alice").expect("ctx");
    store
        .contexts()
        .push_event(
            "alice",
            ContextEvent::new("capture", 1_700_000_000, "coffee"),
        )
        .expect("event");
    store
        .contexts()
        .patch("alice", "agent_memory.mood", serde_json::json!("calm"))
        .expect("patch");

    store.cards().put("fp_1", "alice", "4242").expect("card");
    store.cards().put("fp_2", "bob", "1111").expect("card");
    store
        .cards()
        .put("fp_2", "alice", "1111")
        .expect("card moved");

    store.dedup().claim("txn_1", "alice", 500).expect("dedup");
    store.idempotency().begin("req_1", b"fp").expect("begin");
    store.idempotency().begin("req_2", b"fp2").expect("begin");
    store
        .idempotency()
        .complete("req_2", b"fp2", b"result")
        .expect("complete");
    store
        .sessions()
        .put(
            "alice",
            &SessionKeyData {
                key_pubkey: "sk".into(),
                vault_pubkey: "vault".into(),
                scopes: vec!["stake".into()],
                expires_at_s: 1_700_003_600,
                created_at_s: 1_700_000_000,
                max_actions: 10,
                actions_used: 1,
            },
        )
        .expect("session");
    store.location().put("alice", "m_1").expect("location");
    for i in 0..5u64 {
        store
            .pending()
            .push(
                "alice",
                &PendingCapture {
                    merchant_id: format!("m_{i}"),
                    amount_cents: 100 * i,
                    created_at_s: 1_700_000_000 + i as i64,
                    ..Default::default()
                },
            )
            .expect("pending");
    }
    let mut snap = ExecutionSnapshot::new("exec_1", "tenant_a", ExecutionState::new("running"), 7);
    snap.variables
        .insert("x".into(), serde_json::json!({"deep": [1, 2.5, "s"]}));
    store.snapshots().put(&snap).expect("snapshot");
    store
        .memory()
        .put(
            "exec_1",
            "scratch",
            b"notes",
            Some(Duration::from_secs(600)),
        )
        .expect("memory");
    clock.advance(Duration::from_secs(2)); // "cache/stale" is now expired, not swept
    (store, clock)
}

fn export(store: &Store, format: Format) -> Vec<u8> {
    let mut out = Vec::new();
    store.export(format, &mut out, &mut |_| {}).expect("export");
    out
}

fn import(
    store: &Store,
    format: Format,
    data: &[u8],
) -> edgestate::Result<edgestate::export::ImportReport> {
    store.import(format, &mut &data[..], &mut |_| {})
}

#[test]
fn jsonl_export_import_export_is_byte_identical() {
    let (store, _clock) = populated();
    let first = export(&store, Format::Jsonl);
    let (copy, clock2) = clocked();
    clock2.advance(Duration::from_secs(2));
    let report = import(&copy, Format::Jsonl, &first).expect("import");
    assert_eq!(
        report.lines,
        first.iter().filter(|&&b| b == b'\n').count() as u64
    );
    let second = export(&copy, Format::Jsonl);
    assert_eq!(
        String::from_utf8_lossy(&first),
        String::from_utf8_lossy(&second)
    );
    // Every table, the expiry index included, holds the same number of entries.
    let (a, b) = (store.stats().expect("stats"), copy.stats().expect("stats"));
    for table in Table::ALL {
        if table != Table::Meta {
            assert_eq!(a.records(table), b.records(table), "{table}");
        }
    }
    assert_eq!(
        store.expired_awaiting_sweep().expect("due"),
        copy.expired_awaiting_sweep().expect("due")
    );
    assert_eq!(copy.expired_awaiting_sweep().expect("due"), 1);
}

#[test]
fn imported_records_read_back_through_the_typed_handles() {
    let (store, _clock) = populated();
    let data = export(&store, Format::Jsonl);
    let (copy, clock) = clocked();
    clock.advance(Duration::from_secs(2));
    import(&copy, Format::Jsonl, &data).expect("import");

    assert_eq!(
        copy.kv().get("bot", "position").expect("get"),
        store.kv().get("bot", "position").expect("get")
    );
    assert_eq!(
        copy.kv().get("cache", "quote").expect("get"),
        store.kv().get("cache", "quote").expect("get")
    );
    assert_eq!(copy.kv().get("cache", "stale").expect("get"), None);
    assert_eq!(
        copy.contexts().get("alice").expect("ctx"),
        store.contexts().get("alice").expect("ctx")
    );
    assert_eq!(
        copy.cards().list("alice").expect("cards"),
        store.cards().list("alice").expect("cards")
    );
    assert!(copy.cards().list("bob").expect("cards").is_empty());
    assert_eq!(
        copy.idempotency().get("req_1").expect("idem"),
        store.idempotency().get("req_1").expect("idem")
    );
    assert_eq!(
        copy.idempotency().get("req_2").expect("idem"),
        store.idempotency().get("req_2").expect("idem")
    );
    assert_eq!(
        copy.location().get("alice").expect("loc"),
        store.location().get("alice").expect("loc")
    );
    assert_eq!(
        copy.sessions().get("alice").expect("s"),
        store.sessions().get("alice").expect("s")
    );
    assert_eq!(
        copy.pending().list("alice").expect("p"),
        store.pending().list("alice").expect("p")
    );
    assert_eq!(
        copy.snapshots().list("tenant_a").expect("s"),
        vec!["exec_1".to_owned()]
    );
    assert_eq!(
        copy.memory().get("exec_1", "scratch").expect("m"),
        Some(b"notes".to_vec())
    );
    // Pending sequence numbers continue where the original left off.
    let next = copy
        .pending()
        .push("alice", &PendingCapture::default())
        .expect("push");
    let orig = store
        .pending()
        .push("alice", &PendingCapture::default())
        .expect("push");
    assert_eq!(next.seq, orig.seq);
    // Imported expiry instants are absolute: the sweep removes exactly the expired one.
    assert_eq!(copy.sweep_all_expired(100).expect("sweep"), 1);
}

#[test]
fn dynamodb_round_trip_keeps_every_family() {
    let (store, _clock) = populated();
    let dynamo = export(&store, Format::DynamoDb);
    let text = String::from_utf8(dynamo.clone()).expect("utf8");
    assert!(text.lines().all(|l| l.starts_with("{\"Item\":{")));
    assert!(text.contains("\"pk\":{\"S\":\"CARD#fp_1\"}"));
    assert!(text.contains("\"sk\":{\"S\":\"PENDING#00000000000000000004\"}"));
    let (copy, _clock) = clocked();
    import(&copy, Format::DynamoDb, &dynamo).expect("import");
    // Lossless: the native exports of both stores agree byte for byte.
    assert_eq!(
        String::from_utf8_lossy(&export(&store, Format::Jsonl)),
        String::from_utf8_lossy(&export(&copy, Format::Jsonl))
    );
}

/// Items as the seed's `DynamoStateStore` writes them (attribute names, key prefixes,
/// `ttl` in Unix seconds), as a DynamoDB table export holds them.
fn seed_items() -> String {
    let now = T0_MS / 1000;
    let session = serde_json::json!({
        "key_pubkey": "sess_pk", "vault_pubkey": "vault_pk", "scopes": ["stake"],
        "expires_at": now + 3600, "created_at": now, "max_actions": 5, "actions_used": 0
    });
    let capture = serde_json::json!({
        "merchant_id": "m_9", "merchant_name": "Cafe", "amount_cents": 450,
        "card_last4": "4242", "proof_data": null, "proof_type": null, "location": null,
        "created_at": now - 10, "expires_at": now + 86_400
    });
    let mut ctx = serde_json::to_value(edgestate::UserContext::new("alice", T0_MS)).expect("ctx");
    ctx["version"] = serde_json::json!(4);
    ctx["vault"]["cred_balance"] = serde_json::json!(1234);
    let s = |v: &str| serde_json::json!({ "S": v });
    let n = |v: u64| serde_json::json!({ "N": v.to_string() });
    let items = vec![
        serde_json::json!({"pk": s("CARD#fp_9"), "sk": s("META"), "fingerprint": s("fp_9"),
            "user_pubkey": s("alice"), "card_last4": s("4242"), "linked_at": n(now - 100)}),
        serde_json::json!({"pk": s("TXN#txn_9"), "sk": s("PROCESSED"), "user_pubkey": s("alice"),
            "cred_amount": n(450), "processed_at": n(now - 5), "ttl": n(now + 30 * 86_400)}),
        serde_json::json!({"pk": s("USER#alice"), "sk": s("SESSION"),
            "session_data": s(&session.to_string()), "expires_at": n(now + 3600), "ttl": n(now + 86_400)}),
        serde_json::json!({"pk": s("USER#alice"), "sk": s(&format!("PENDING#{:020}", now - 10)),
            "capture_data": s(&capture.to_string()), "merchant_id": s("m_9"),
            "amount_cents": n(450), "created_at": n(now - 10), "ttl": n(now + 1_814_400)}),
        serde_json::json!({"pk": s("USER#alice"), "sk": s("LOCATION"), "merchant_id": s("m_9"),
            "entered_at": n(now - 60), "ttl": n(now + 3540)}),
        serde_json::json!({"pk": s("USER#alice"), "sk": s("CONTEXT"),
            "context_data": s(&ctx.to_string()), "version": n(4), "updated_at": n(now)}),
    ];
    items
        .into_iter()
        .enumerate()
        // Both shapes: `{"Item": {...}}` (S3 export) and a bare item.
        .map(|(i, item)| {
            if i % 2 == 0 {
                serde_json::json!({ "Item": item })
            } else {
                item
            }
        })
        .map(|v| v.to_string() + "\n")
        .collect()
}

#[test]
fn a_seed_dynamodb_export_imports_and_reads_back_through_the_compat_api() {
    let (store, clock) = clocked();
    let report = import(&store, Format::DynamoDb, seed_items().as_bytes()).expect("import");
    assert_eq!(report.lines, 6);
    assert_eq!(report.records, 7); // the card brings its reverse-index entry
    let seed = LoopAgentStore::from_store(store.clone());
    let card = seed
        .lookup_user_by_card("fp_9")
        .expect("card")
        .expect("found");
    assert_eq!(card.user_pubkey, "alice");
    assert_eq!(seed.get_user_cards("alice").expect("cards").len(), 1);
    assert!(seed.is_transaction_processed("txn_9").expect("dedup"));
    let session = seed
        .get_session_key("alice")
        .expect("session")
        .expect("live");
    assert_eq!(session.key_pubkey, "sess_pk");
    let pending = seed.get_pending_captures("alice").expect("pending");
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].merchant_name.as_deref(), Some("Cafe"));
    assert_eq!(
        seed.get_current_merchant("alice").expect("loc").as_deref(),
        Some("m_9")
    );
    let ctx = seed.context_fetch("alice").expect("ctx");
    assert_eq!(ctx.version, 4);
    assert_eq!(ctx.vault.cred_balance, 1234);
    // The seed's optimistic lock carries on from the imported version.
    let mut next = ctx.clone();
    next.vault.cred_balance = 1;
    next.version += 1; // the seed increments before pushing
    seed.context_push(next).expect("push at version 4");
    assert_eq!(seed.context_fetch("alice").expect("ctx").version, 5);
    // New pending captures sort after the imported one.
    let id = store
        .pending()
        .push("alice", &PendingCapture::default())
        .expect("push");
    assert_eq!(id.seq, T0_MS / 1000 - 10 + 1);
    // Expiry came from `ttl` as an absolute instant: the location expires at its ttl.
    clock.advance(Duration::from_secs(3540));
    assert_eq!(seed.get_current_merchant("alice").expect("loc"), None);
}

#[test]
fn a_bad_line_is_named_and_its_batch_is_not_applied() {
    let (store, _clock) = populated();
    let good = String::from_utf8(export(&store, Format::Jsonl)).expect("utf8");
    let lines: Vec<&str> = good.lines().collect();

    // Unparsable third line: nothing at all is imported.
    let mut bad = lines[..2].join("\n");
    bad.push_str("\n{not json\n");
    bad.push_str(&lines[2..].join("\n"));
    let (copy, _c) = clocked();
    let err = import(&copy, Format::Jsonl, bad.as_bytes()).expect_err("bad line");
    match &err {
        Error::Import {
            line,
            committed_lines,
            ..
        } => {
            assert_eq!((*line, *committed_lines), (3, 0));
        }
        other => panic!("{other:?}"),
    }
    assert!(
        err.to_string()
            .starts_with("line 3 of the import: not JSON"),
        "{err}"
    );
    assert_eq!(copy.kv().list("bot", "").expect("list").len(), 0);

    // A line that parses but cannot be stored (version 0) fails at the write: the lines
    // before it in its batch are rolled back.
    let mut bad = lines.clone();
    let zero = r#"{"family":"kv","key":["x","y"],"version":0,"expires_at_ms":null,"format":1,"payload":""}"#;
    bad.insert(4, zero);
    let (copy, _c) = clocked();
    let err = import(&copy, Format::Jsonl, bad.join("\n").as_bytes()).expect_err("bad record");
    assert!(matches!(err, Error::Import { line: 5, .. }), "{err:?}");
    assert!(copy.kv().get("bot", "position").expect("get").is_none());
    assert_eq!(copy.stats().expect("stats").records(Table::Kv), 0);

    // A wrong key shape and an unknown family are named too.
    for (text, needle) in [
        (
            r#"{"family":"kv","key":["only"],"version":1,"expires_at_ms":null,"format":1,"payload":""}"#,
            "not a key of kv",
        ),
        (r#"{"family":"nope","key":["a"]}"#, "unknown family"),
        (
            r#"{"family":"kv","key":["a","b"],"version":1,"expires_at_ms":null,"format":1,"payload":"%%"}"#,
            "base64",
        ),
    ] {
        let err = import(&copy, Format::Jsonl, text.as_bytes()).expect_err(needle);
        assert!(err.to_string().contains(needle), "{err}");
        assert!(matches!(err, Error::Import { line: 1, .. }));
    }
}

#[test]
fn earlier_batches_stay_committed_and_the_failed_batch_is_all_or_nothing() {
    let (store, _clock) = clocked();
    for i in 0..(IMPORT_BATCH + 500) {
        store
            .kv()
            .put("n", &format!("{i:06}"), b"v", None)
            .expect("put");
    }
    let good = String::from_utf8(export(&store, Format::Jsonl)).expect("utf8");
    let mut lines: Vec<&str> = good.lines().collect();
    lines.insert(IMPORT_BATCH + 200, "[]");
    let (copy, _c) = clocked();
    let err = import(&copy, Format::Jsonl, lines.join("\n").as_bytes()).expect_err("bad");
    match err {
        Error::Import {
            line,
            committed_lines,
            ..
        } => {
            assert_eq!(line, IMPORT_BATCH as u64 + 201);
            assert_eq!(committed_lines, IMPORT_BATCH as u64);
        }
        other => panic!("{other:?}"),
    }
    // The header and 999 records of the first batch; nothing of the second.
    assert_eq!(
        copy.kv().list("n", "").expect("list").len(),
        IMPORT_BATCH - 1
    );
}

#[test]
fn inspect_and_dump_decode_values() {
    let (store, _clock) = populated();
    let views = store.inspect(Family::Kv, "bot/", 10).expect("ls");
    assert_eq!(views.len(), 2);
    let pos = store
        .inspect_key(Family::Kv, "bot/position")
        .expect("get")
        .expect("found");
    assert_eq!(pos.version, Some(2));
    assert_eq!(pos.value, serde_json::json!("flat"));
    let stale = store
        .inspect_key(Family::Kv, "cache/stale")
        .expect("get")
        .expect("found");
    assert!(stale.expired);
    let loc = store
        .inspect_key(Family::Locations, "alice")
        .expect("get")
        .expect("found");
    assert_eq!(loc.value["merchant_id"], "m_1");
    let p = store.inspect(Family::Pending, "alice#", 10).expect("ls");
    assert_eq!(p.len(), 3);
    assert_eq!(p[0].key, "alice#3");
    assert_eq!(store.inspect(Family::Kv, "", 3).expect("ls").len(), 3);
    let mut out = Vec::new();
    let n = store.dump(&mut out, &mut |_| {}).expect("dump");
    assert_eq!(
        n as usize,
        String::from_utf8(out).expect("utf8").lines().count()
    );
}

#[test]
fn a_body_of_the_wrong_type_is_refused() {
    let (copy, _c) = clocked();
    // Format 4 (postcard) but not a card mapping.
    let card = r#"{"family":"cards","key":["fp"],"version":1,"expires_at_ms":null,"format":4,"payload":"/w=="}"#;
    let err = import(&copy, Format::Jsonl, card.as_bytes()).expect_err("bad body");
    assert!(matches!(err, Error::Import { line: 1, .. }), "{err:?}");
    // Format 3 (JSON text) that is not JSON.
    let kv = r#"{"family":"kv","key":["a","b"],"version":1,"expires_at_ms":null,"format":3,"payload":"e3t7"}"#;
    let err = import(&copy, Format::Jsonl, kv.as_bytes()).expect_err("bad json");
    assert!(matches!(err, Error::Import { line: 1, .. }), "{err:?}");
    // An expiry on a family whose records never expire.
    let ctx = r#"{"family":"snapshots","key":["e"],"version":1,"expires_at_ms":5,"format":1,"payload":""}"#;
    let err = import(&copy, Format::Jsonl, ctx.as_bytes()).expect_err("expiry");
    assert!(matches!(err, Error::Import { line: 1, .. }), "{err:?}");
    assert_eq!(copy.stats().expect("stats").records(Table::Cards), 0);
}
