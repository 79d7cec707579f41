//! `Store::run_blocking` for async callers (feature `tokio`).

#![cfg(feature = "tokio")]
#![allow(clippy::unwrap_used)] // tests state their expectations by unwrapping

use edgestate::{Error, Store};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_calls_from_many_tasks() {
    let store = Store::temporary().unwrap();
    let tasks: Vec<_> = (0..32)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .run_blocking(move |s| {
                        s.kv()
                            .update_value("async", "counter", None, |n: Option<u64>| {
                                Ok(n.unwrap_or(0) + i)
                            })
                    })
                    .await
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let total = store
        .run_blocking(|s| s.kv().get_value::<u64>("async", "counter"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(total.value, (0..32).sum::<u64>());
    assert_eq!(total.version, 32);
}

#[tokio::test(flavor = "current_thread")]
async fn errors_come_back_typed() {
    let store = Store::in_memory().unwrap();
    let err = store
        .run_blocking(|s| s.kv().put("", "k", b"v", None))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }));
}
