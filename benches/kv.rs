//! Criterion benches of the core engine: KV get, put (durable and relaxed), CAS update
//! and sweeps. `cargo bench --bench kv`

#![allow(missing_docs)] // criterion_group! generates undocumented items

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use edgestate::{Durability, Expect, ManualClock, Store};

fn file_store(durability: Durability) -> Store {
    Store::builder()
        .durability(durability)
        .temporary()
        .expect("temporary store")
}

fn bench_get(c: &mut Criterion) {
    let store = file_store(Durability::Relaxed);
    store
        .write(|tx| {
            for i in 0..10_000 {
                tx.kv()
                    .put("bench", &format!("key{i:05}"), &[1u8; 128], None)?;
            }
            Ok::<_, edgestate::Error>(())
        })
        .expect("seed");
    let mut i = 0u32;
    c.bench_function("kv/get (10k keys, 128 B)", |b| {
        b.iter(|| {
            i = (i + 7919) % 10_000;
            store.kv().get("bench", &format!("key{i:05}")).expect("get")
        })
    });
    c.bench_function("kv/get_many 16 (one snapshot)", |b| {
        let keys: Vec<String> = (0..16).map(|i| format!("key{:05}", i * 600)).collect();
        let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        b.iter(|| store.kv().get_many("bench", &refs).expect("get_many"))
    });
}

fn bench_put(c: &mut Criterion) {
    let mut group = c.benchmark_group("kv/put 128 B");
    for (name, durability) in [
        ("immediate (fsync)", Durability::Immediate),
        ("relaxed", Durability::Relaxed),
    ] {
        let store = file_store(durability);
        let mut i = 0u64;
        group.bench_function(name, |b| {
            b.iter(|| {
                i += 1;
                store
                    .kv()
                    .put("bench", &format!("key{}", i % 1_000), &[2u8; 128], None)
                    .expect("put")
            })
        });
    }
    group.finish();
}

fn bench_cas(c: &mut Criterion) {
    let store = file_store(Durability::Relaxed);
    store
        .kv()
        .put_value("bench", "counter", &0u64, None)
        .expect("seed");
    c.bench_function("kv/cas update (relaxed)", |b| {
        b.iter(|| {
            let cur = store
                .kv()
                .get("bench", "counter")
                .expect("get")
                .expect("present");
            store
                .kv()
                .put_if(
                    "bench",
                    "counter",
                    &cur.value,
                    None,
                    Expect::Version(cur.version),
                )
                .expect("cas")
        })
    });
    c.bench_function("kv/update_value closure (relaxed)", |b| {
        b.iter(|| {
            store
                .kv()
                .update_value("bench", "counter", None, |n: Option<u64>| {
                    Ok(n.unwrap_or(0) + 1)
                })
                .expect("update")
        })
    });
}

fn bench_sweep(c: &mut Criterion) {
    c.bench_function("ttl/sweep 1k expired (one batch)", |b| {
        b.iter_batched(
            || {
                let clock = ManualClock::new(1_000_000);
                let store = Store::builder()
                    .clock(clock.clone())
                    .durability(Durability::Relaxed)
                    .in_memory()
                    .expect("store");
                store
                    .write(|tx| {
                        for i in 0..1_000 {
                            tx.kv().put(
                                "bench",
                                &format!("k{i}"),
                                b"v",
                                Some(Duration::from_millis(10)),
                            )?;
                        }
                        Ok::<_, edgestate::Error>(())
                    })
                    .expect("seed");
                clock.advance(Duration::from_secs(1));
                store
            },
            |store| assert_eq!(store.sweep_expired(1_000).expect("sweep"), 1_000),
            BatchSize::PerIteration,
        )
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(Duration::from_secs(3));
    targets = bench_get, bench_put, bench_cas, bench_sweep
}
criterion_main!(benches);
