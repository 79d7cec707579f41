//! JSON blobs, the solver byte store, and its prefix wrappers.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use edgestate::compat::{ByteStore, FillStore, OrderStore, PrefixStore};
use edgestate::{Error, ManualClock, Store, BLOB_NAMESPACE};
use serde_json::json;

fn clocked() -> (Store, ManualClock) {
    let clock = ManualClock::new(1_700_000_000_000);
    let store = Store::builder()
        .clock(clock.clone())
        .in_memory()
        .expect("store");
    (store, clock)
}

fn bytes(store: &Store, ns: &str) -> ByteStore {
    ByteStore::new(store.clone(), ns).expect("byte store")
}

#[test]
fn json_blobs_round_trip_nested_values() {
    let store = Store::in_memory().expect("store");
    let blobs = store.blobs();
    let values = [
        json!(null),
        json!(true),
        json!(-12.5),
        json!(u64::MAX),
        json!("ünïcødé ✓"),
        json!([1, [2, [3, {"four": 4}]], null]),
        json!({
            "session_pnl": {"realised": 12.5, "peak": 40.0, "trades": [{"id": 1, "pnl": -3.25}]},
            "breaker": {"halted": true, "losses_in_a_row": 3, "until": null},
            "": {"empty key": []}
        }),
    ];
    for (i, v) in values.iter().enumerate() {
        let key = format!("bot/{i}");
        blobs.put(&key, v).expect("save");
        assert_eq!(blobs.get(&key).expect("load").as_ref(), Some(v));
    }
}

#[test]
fn missing_blob_is_none_and_save_overwrites() {
    let store = Store::in_memory().expect("store");
    let blobs = store.blobs();
    assert_eq!(blobs.get("bot/BTCUSDT").expect("load"), None);
    blobs.put("k", &json!(1)).expect("save");
    blobs.put("k", &json!({"v": 2})).expect("save");
    assert_eq!(blobs.get("k").expect("load"), Some(json!({"v": 2})));
    assert!(blobs.delete("k").expect("delete"));
    assert_eq!(blobs.get("k").expect("load"), None);
    store.flush().expect("flush");
}

#[test]
fn blobs_survive_a_reopen_and_live_in_their_namespace() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("blobs.edgestate");
    let state = json!({"realised": 1.5, "halted": false});
    {
        let store = Store::builder()
            .durability(edgestate::Durability::Relaxed)
            .open(&path)
            .expect("open");
        store.blobs().put("bot/ETH", &state).expect("save");
        store.flush().expect("flush");
        store.close().expect("close");
    }
    let store = Store::open(&path).expect("reopen");
    assert_eq!(store.blobs().get("bot/ETH").expect("load"), Some(state));
    assert!(store
        .kv()
        .get(BLOB_NAMESPACE, "bot/ETH")
        .expect("kv get")
        .is_some());
}

#[test]
fn a_non_json_value_under_a_blob_key_is_a_decode_error() {
    let store = Store::in_memory().expect("store");
    store
        .kv()
        .put(BLOB_NAMESPACE, "raw", b"\xff\x00 not json", None)
        .expect("put");
    assert!(matches!(
        store.blobs().get("raw"),
        Err(Error::Decode { .. })
    ));
}

#[test]
fn blobs_inside_transactions() {
    let store = Store::in_memory().expect("store");
    let outcome: Result<(), Error> = store.write(|tx| {
        tx.blobs().put("a", &json!(1))?;
        assert_eq!(tx.blobs().get("a")?, Some(json!(1)));
        Err(Error::NotFound {
            table: "test",
            key: "abort".into(),
        })
    });
    assert!(outcome.is_err());
    assert_eq!(store.read(|tx| tx.blobs().get("a")).expect("read"), None);
}

#[test]
fn blob_keys_are_validated() {
    let store = Store::in_memory().expect("store");
    assert!(matches!(
        store.blobs().put("", &json!(1)),
        Err(Error::InvalidInput { .. })
    ));
    assert!(matches!(
        store.blobs().get(""),
        Err(Error::InvalidInput { .. })
    ));
}

#[test]
fn byte_store_get_set_delete() {
    let store = Store::in_memory().expect("store");
    let b = bytes(&store, "solver");
    assert_eq!(b.get("state:x").expect("get"), None);
    b.set("state:x", b"1").expect("set");
    b.set("state:x", b"2").expect("set");
    assert_eq!(b.get("state:x").expect("get"), Some(b"2".to_vec()));
    assert!(b.delete("state:x").expect("delete"));
    assert!(!b.delete("state:x").expect("delete again"));
    assert_eq!(b.get("state:x").expect("get"), None);
    // Clones share everything; other namespaces are separate.
    b.clone().set("k", b"v").expect("set");
    assert_eq!(b.get("k").expect("get"), Some(b"v".to_vec()));
    assert_eq!(bytes(&store, "other").get("k").expect("get"), None);
    assert!(ByteStore::new(store.clone(), "").is_err());
    assert!(matches!(b.set("", b"v"), Err(Error::InvalidInput { .. })));
}

#[test]
fn byte_store_list_is_in_key_order_by_prefix() {
    let store = Store::in_memory().expect("store");
    let b = bytes(&store, "solver");
    for key in ["order:b", "fill:1", "order:a", "order:c:1", "settlement:9"] {
        b.set(key, key.as_bytes()).expect("set");
    }
    bytes(&store, "solver2").set("order:z", b"x").expect("set");
    assert_eq!(
        b.list("order:").expect("list"),
        vec!["order:a", "order:b", "order:c:1"]
    );
    assert_eq!(b.list("").expect("list").len(), 5);
    assert!(b.list("nothing").expect("list").is_empty());
    assert_eq!(b.count().expect("count"), 5);
}

#[test]
fn byte_store_batch_get_keeps_the_order_of_the_keys() {
    let store = Store::in_memory().expect("store");
    let b = bytes(&store, "solver");
    b.set("a", b"1").expect("set");
    b.set("c", b"3").expect("set");
    assert_eq!(
        b.batch_get(&["c", "missing", "a", "c"]).expect("batch"),
        vec![
            Some(b"3".to_vec()),
            None,
            Some(b"1".to_vec()),
            Some(b"3".to_vec())
        ]
    );
    assert!(b.batch_get(&[]).expect("batch").is_empty());
}

#[test]
fn byte_store_ttl_applies_to_every_set() {
    let (store, clock) = clocked();
    let b = bytes(&store, "cache").with_ttl(Duration::from_secs(60));
    assert_eq!(b.ttl(), Some(Duration::from_secs(60)));
    b.set("a", b"1").expect("set");
    clock.advance(Duration::from_secs(30));
    b.set("b", b"2").expect("set");
    clock.advance(Duration::from_secs(30));
    assert_eq!(b.get("a").expect("get"), None);
    assert_eq!(b.list("").expect("list"), vec!["b"]);
    assert_eq!(
        b.batch_get(&["a", "b"]).expect("batch"),
        vec![None, Some(b"2".to_vec())]
    );
    // Setting again restarts the TTL.
    b.set("b", b"3").expect("set");
    clock.advance(Duration::from_secs(59));
    assert_eq!(b.get("b").expect("get"), Some(b"3".to_vec()));
    assert_eq!(store.sweep_all_expired(10).expect("sweep"), 1);
}

#[test]
fn byte_store_max_items_refuses_new_keys_but_allows_overwrites() {
    let (store, clock) = clocked();
    let b = bytes(&store, "solver")
        .with_max_items(2)
        .with_ttl(Duration::from_secs(60));
    b.set("a", b"1").expect("set");
    b.set("b", b"2").expect("set");
    let err = b.set("c", b"3").expect_err("full");
    assert!(
        matches!(&err, Error::InvalidInput { field, .. } if field == "max_items"),
        "{err:?}"
    );
    assert_eq!(b.get("c").expect("get"), None);
    b.set("a", b"1'").expect("overwrite");
    assert_eq!(b.get("a").expect("get"), Some(b"1'".to_vec()));

    // Deleting frees a slot.
    b.delete("b").expect("delete");
    b.set("c", b"3").expect("set");
    // Expired keys do not count, swept or not.
    clock.advance(Duration::from_secs(60));
    b.set("d", b"4").expect("set");
    b.set("e", b"5").expect("set");
    assert!(b.set("f", b"6").is_err());
    assert_eq!(b.list("").expect("list"), vec!["d", "e"]);

    // The limit is per namespace.
    bytes(&store, "elsewhere")
        .with_max_items(1)
        .set("x", b"1")
        .expect("set");
}

#[test]
fn byte_store_max_items_zero_refuses_everything() {
    let store = Store::in_memory().expect("store");
    let b = bytes(&store, "solver").with_max_items(0);
    assert!(b.set("a", b"1").is_err());
    assert_eq!(b.count().expect("count"), 0);
}

#[test]
fn byte_store_max_items_holds_under_concurrency() {
    const MAX: usize = 5;
    let store = Store::temporary().expect("store");
    let b = bytes(&store, "solver").with_max_items(MAX);
    let stored = Arc::new(AtomicUsize::new(0));
    let handles: Vec<_> = (0..4)
        .map(|t| {
            let b = b.clone();
            let stored = Arc::clone(&stored);
            thread::spawn(move || {
                for i in 0..5 {
                    match b.set(&format!("k-{t}-{i}"), b"v") {
                        Ok(()) => {
                            stored.fetch_add(1, Ordering::SeqCst);
                        }
                        Err(Error::InvalidInput { .. }) => {}
                        Err(e) => panic!("unexpected: {e}"),
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("thread");
    }
    assert_eq!(stored.load(Ordering::SeqCst), MAX);
    assert_eq!(b.count().expect("count"), MAX);
}

#[test]
fn order_and_fill_stores() {
    let store = Store::in_memory().expect("store");
    let b = bytes(&store, "solver");
    let orders = OrderStore::new(b.clone(), "order:eip7683").expect("orders");
    let fills = FillStore::new(b.clone(), "fill").expect("fills");
    orders.store_order("0xabc", b"order-abc").expect("store");
    orders.store_order("0x123", b"order-123").expect("store");
    fills.store_fill("0xabc:0xtx", b"fill").expect("store");

    assert_eq!(
        orders.get_order("0xabc").expect("get"),
        Some(b"order-abc".to_vec())
    );
    assert_eq!(orders.get_order("0xnope").expect("get"), None);
    assert_eq!(orders.list_orders().expect("list"), vec!["0x123", "0xabc"]);
    assert_eq!(fills.list_fills().expect("list"), vec!["0xabc:0xtx"]);
    assert_eq!(
        fills.get_fill("0xabc:0xtx").expect("get"),
        Some(b"fill".to_vec())
    );
    assert_eq!(
        orders.prefix_store().list_keys().expect("keys"),
        vec!["order:eip7683:0x123", "order:eip7683:0xabc"]
    );
    // Stored through the byte store under the full key.
    assert_eq!(
        b.get("order:eip7683:0xabc").expect("get"),
        Some(b"order-abc".to_vec())
    );
    assert!(orders.store_order("", b"x").is_err());
    assert!(OrderStore::new(b, "").is_err());
}

#[test]
fn a_prefix_does_not_see_a_longer_prefix() {
    let store = Store::in_memory().expect("store");
    let b = bytes(&store, "solver");
    let short = PrefixStore::new(b.clone(), "order").expect("prefix");
    let long = PrefixStore::new(b.clone(), "orders").expect("prefix");
    short.store("1", b"a").expect("store");
    long.store("2", b"b").expect("store");
    assert_eq!(short.list().expect("list"), vec!["1"]);
    assert_eq!(long.list().expect("list"), vec!["2"]);
    assert!(short.delete("1").expect("delete"));
    assert!(short.list().expect("list").is_empty());
}

#[test]
fn prefix_stores_inherit_the_byte_store_limits() {
    let (store, clock) = clocked();
    let b = bytes(&store, "solver")
        .with_ttl(Duration::from_secs(10))
        .with_max_items(1);
    let orders = OrderStore::new(b.clone(), "order").expect("orders");
    let fills = FillStore::new(b, "fill").expect("fills");
    orders.store_order("1", b"o").expect("store");
    assert!(fills.store_fill("1", b"f").is_err()); // the namespace is full
    clock.advance(Duration::from_secs(10));
    assert!(orders.list_orders().expect("list").is_empty());
    fills.store_fill("1", b"f").expect("room again");
}
