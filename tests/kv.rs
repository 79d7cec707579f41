//! Behaviour of the generic key/value layer.

#![allow(clippy::unwrap_used)] // tests state their expectations by unwrapping

mod common;

use std::time::Duration;

use common::store;
use edgestate::limits::{MAX_KEY_LEN, MAX_NAMESPACE_LEN, MAX_VALUE_LEN};
use edgestate::{Error, Expect, ManualClock, Store, Table, Versioned};
use serde::{Deserialize, Serialize};

#[test]
fn put_get_delete_and_versions() {
    let s = store();
    assert_eq!(s.kv().get("ns", "k").unwrap(), None);
    assert_eq!(s.kv().put("ns", "k", b"a", None).unwrap(), 1);
    assert_eq!(s.kv().put("ns", "k", b"b", None).unwrap(), 2);
    let e = s.kv().get("ns", "k").unwrap().unwrap();
    assert_eq!(
        (e.value.as_slice(), e.version, e.expires_at_ms),
        (&b"b"[..], 2, None)
    );
    assert!(s.kv().delete("ns", "k").unwrap());
    assert!(!s.kv().delete("ns", "k").unwrap());
    assert_eq!(s.kv().get("ns", "k").unwrap(), None);
    // A re-created record starts again at version 1.
    assert_eq!(s.kv().put("ns", "k", b"c", None).unwrap(), 1);
}

#[test]
fn namespaces_are_separate() {
    let s = store();
    s.kv().put("a", "k", b"1", None).unwrap();
    s.kv().put("b", "k", b"2", None).unwrap();
    assert_eq!(s.kv().get("a", "k").unwrap().unwrap().value, b"1");
    assert_eq!(s.kv().get("b", "k").unwrap().unwrap().value, b"2");
    assert_eq!(s.kv().list_up_to("a", "", 10).unwrap().len(), 1);
}

#[test]
fn conditional_put_conflicts_carry_versions_and_write_nothing() {
    let s = store();
    s.kv()
        .put_if("ns", "k", b"v1", None, Expect::Absent)
        .unwrap();
    let err = s
        .kv()
        .put_if("ns", "k", b"x", None, Expect::Absent)
        .unwrap_err();
    match err {
        Error::VersionConflict {
            expected, actual, ..
        } => {
            assert_eq!((expected, actual), (None, Some(1)));
        }
        other => panic!("unexpected {other:?}"),
    }
    let err = s
        .kv()
        .put_if("ns", "k", b"x", None, Expect::Version(7))
        .unwrap_err();
    assert!(matches!(
        err,
        Error::VersionConflict {
            expected: Some(7),
            actual: Some(1),
            ..
        }
    ));
    let err = s
        .kv()
        .put_if("ns", "missing", b"x", None, Expect::Version(1))
        .unwrap_err();
    assert!(matches!(
        err,
        Error::VersionConflict {
            expected: Some(1),
            actual: None,
            ..
        }
    ));
    assert!(err.is_conflict());
    let e = s.kv().get("ns", "k").unwrap().unwrap();
    assert_eq!((e.value.as_slice(), e.version), (&b"v1"[..], 1));
    assert_eq!(s.kv().get("ns", "missing").unwrap(), None);
    assert_eq!(
        s.kv()
            .put_if("ns", "k", b"v2", None, Expect::Version(1))
            .unwrap(),
        2
    );
}

#[test]
fn conditional_delete() {
    let s = store();
    s.kv().put("ns", "k", b"v", None).unwrap();
    assert!(s.kv().delete_if("ns", "k", Expect::Version(2)).is_err());
    assert!(s.kv().get("ns", "k").unwrap().is_some());
    assert!(s.kv().delete_if("ns", "k", Expect::Version(1)).unwrap());
}

#[test]
fn update_closure_reads_modifies_writes() {
    let s = store();
    for _ in 0..5 {
        s.kv()
            .update("ns", "counter", None, |cur| {
                let n = cur.map_or(0, |e| e.value[0]);
                Ok(Some(vec![n + 1]))
            })
            .unwrap();
    }
    let e = s.kv().get("ns", "counter").unwrap().unwrap();
    assert_eq!((e.value[0], e.version), (5, 5));
    // Returning None deletes.
    assert_eq!(
        s.kv().update("ns", "counter", None, |_| Ok(None)).unwrap(),
        None
    );
    assert!(s.kv().get("ns", "counter").unwrap().is_none());
    // An error inside the closure writes nothing.
    s.kv().put("ns", "k", b"keep", None).unwrap();
    let r = s.kv().update("ns", "k", None, |_| {
        Err(Error::NotFound {
            table: "t",
            key: "x".into(),
        })
    });
    assert!(r.is_err());
    assert_eq!(s.kv().get("ns", "k").unwrap().unwrap().value, b"keep");
}

#[test]
fn prefix_listing_is_ordered_limited_and_skips_expired() {
    let clock = ManualClock::new(1_000);
    let s = Store::builder().clock(clock.clone()).in_memory().unwrap();
    for k in ["order:3", "order:1", "order:2", "fill:1", "orders"] {
        s.kv().put("ns", k, k.as_bytes(), None).unwrap();
    }
    s.kv()
        .put(
            "ns",
            "order:15",
            b"short-lived",
            Some(Duration::from_secs(1)),
        )
        .unwrap();
    s.kv().put("other", "order:9", b"x", None).unwrap();
    let keys = |v: Vec<edgestate::KvEntry>| v.into_iter().map(|e| e.key).collect::<Vec<_>>();
    assert_eq!(
        keys(s.kv().list_up_to("ns", "order:", 100).unwrap()),
        ["order:1", "order:15", "order:2", "order:3"]
    );
    clock.advance(Duration::from_secs(1));
    assert_eq!(
        keys(s.kv().list_up_to("ns", "order:", 100).unwrap()),
        ["order:1", "order:2", "order:3"]
    );
    assert_eq!(
        keys(s.kv().list_up_to("ns", "order:", 2).unwrap()),
        ["order:1", "order:2"]
    );
    assert!(s.kv().list_up_to("ns", "order:", 0).unwrap().is_empty());
    assert_eq!(s.kv().list_up_to("ns", "", 100).unwrap().len(), 5);
    assert!(s.kv().list_up_to("ns", "zzz", 100).unwrap().is_empty());
}

#[test]
fn batch_get_keeps_order_and_reports_missing() {
    let s = store();
    s.kv().put("ns", "a", b"1", None).unwrap();
    s.kv().put("ns", "c", b"3", None).unwrap();
    let got = s.kv().get_many("ns", &["c", "b", "a"]).unwrap();
    let values: Vec<Option<Vec<u8>>> = got.into_iter().map(|e| e.map(|e| e.value)).collect();
    assert_eq!(values, vec![Some(b"3".to_vec()), None, Some(b"1".to_vec())]);
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Position {
    symbol: String,
    qty: i64,
    avg_price: f64,
}

#[test]
fn typed_values_round_trip() {
    let s = store();
    let p = Position {
        symbol: "BTCUSDT".into(),
        qty: -3,
        avg_price: 64_000.5,
    };
    s.kv().put_value("bot", "pos", &p, None).unwrap();
    let got: Versioned<Position> = s.kv().get_value("bot", "pos").unwrap().unwrap();
    assert_eq!(got.value, p);
    let json = serde_json::json!({"realised": 12.5, "halted": true, "nested": {"a": [1, 2]}});
    s.kv().put_json("bot", "risk", &json, None).unwrap();
    let got: Versioned<serde_json::Value> = s.kv().get_value("bot", "risk").unwrap().unwrap();
    assert_eq!(got.value, json);
    // Asking for the wrong type is a typed decode error, not a panic.
    let err = s.kv().get_value::<Position>("bot", "risk").unwrap_err();
    assert!(matches!(err, Error::Decode { .. }), "{err:?}");
    let v = s
        .kv()
        .update_value("bot", "pos", None, |p: Option<Position>| {
            let mut p = p.expect("present");
            p.qty += 1;
            Ok(p)
        })
        .unwrap();
    assert_eq!(v, 2);
}

#[test]
fn bad_input_is_refused_and_writes_nothing() {
    let s = store();
    let long_key = "k".repeat(MAX_KEY_LEN + 1);
    let long_ns = "n".repeat(MAX_NAMESPACE_LEN + 1);
    let cases: Vec<(&str, &str, usize, &str)> = vec![
        ("", "k", 1, "namespace"),
        ("ns", "", 1, "key"),
        ("ns", &long_key, 1, "key"),
        (&long_ns, "k", 1, "namespace"),
        ("ns", "big", MAX_VALUE_LEN + 1, "value"),
    ];
    for (ns, key, len, field) in cases {
        let value = vec![0u8; len];
        match s.kv().put(ns, key, &value, None) {
            Err(Error::InvalidInput { field: f, .. }) => assert_eq!(f, field),
            other => panic!("expected InvalidInput for {field}, got {other:?}"),
        }
    }
    assert_eq!(s.stats().unwrap().records(Table::Kv), 0);
    assert!(matches!(
        s.kv().get("", "k"),
        Err(Error::InvalidInput { .. })
    ));
}

#[test]
fn write_rolls_back_everything_on_error() {
    let s = store();
    let r: Result<(), Error> = s.write(|tx| {
        tx.kv().put("ns", "1", b"a", None)?;
        tx.kv().put("ns", "2", b"b", Some(Duration::from_secs(5)))?;
        tx.kv().put("ns", "3", b"c", None)?;
        Err(Error::NotFound {
            table: "test",
            key: "boom".into(),
        })
    });
    assert!(r.is_err());
    assert!(s.kv().list_up_to("ns", "", 10).unwrap().is_empty());
    let stats = s.stats().unwrap();
    assert_eq!(stats.records(Table::Kv), 0);
    assert_eq!(stats.records(Table::Expiry), 0);
}

#[test]
fn write_rolls_back_on_panic() {
    let s = store();
    let s2 = s.clone();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _: Result<(), Error> = s2.write(|tx| {
            tx.kv().put("ns", "1", b"a", None)?;
            panic!("caller bug");
        });
    }));
    assert!(r.is_err());
    assert!(s.kv().get("ns", "1").unwrap().is_none());
    // The store keeps working after the panic.
    s.kv().put("ns", "1", b"ok", None).unwrap();
}

#[test]
fn reads_inside_a_write_see_its_own_writes_and_snapshot_reads_are_consistent() {
    let s = store();
    s.write(|tx| {
        tx.kv().put("ns", "a", b"1", None)?;
        assert_eq!(
            tx.kv().get("ns", "a")?.map(|e| e.value),
            Some(b"1".to_vec())
        );
        assert_eq!(tx.kv().list_up_to("ns", "", 10)?.len(), 1);
        Ok::<_, Error>(())
    })
    .unwrap();
    s.read(|tx| {
        let many = tx.kv().get_many("ns", &["a"])?;
        assert!(many[0].is_some());
        Ok::<_, Error>(())
    })
    .unwrap();
}

#[test]
fn nested_write_is_an_error_not_a_deadlock() {
    let s = store();
    let inner = s.clone();
    let r: Result<(), Error> = s.write(|_tx| {
        let nested = inner.kv().put("ns", "k", b"v", None);
        assert!(matches!(nested, Err(Error::NestedTransaction)));
        assert!(matches!(inner.compact(), Err(Error::NestedTransaction)));
        Ok(())
    });
    r.unwrap();
    // Reads inside a write are fine (they see the last commit).
    s.write(|_tx| inner.kv().get("ns", "k").map(|_| ()))
        .unwrap();
}
