//! Criterion benches of the seed tables and the webhook transaction, against the KV put
//! measured in the same run as the baseline. `cargo bench --bench tables`

#![allow(missing_docs)] // criterion_group! generates undocumented items

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use edgestate::{Durability, Expect, PaymentWebhook, Store};

fn seeded(durability: Durability) -> Store {
    let store = Store::builder()
        .durability(durability)
        .temporary()
        .expect("store");
    store
        .write(|tx| {
            for u in 0..1_000 {
                let user = format!("user-{u:04}");
                tx.contexts().get_or_init(&user)?;
                tx.cards().put(&format!("fp-{u:04}"), &user, "4242")?;
            }
            Ok::<_, edgestate::Error>(())
        })
        .expect("seed");
    store
}

fn webhook(n: u64) -> PaymentWebhook {
    PaymentWebhook {
        txn_id: format!("txn-{n}"),
        card_fingerprint: format!("fp-{:04}", n % 1_000),
        amount_cents: 1_000 + n % 500,
        merchant_id: "m-1".into(),
        merchant_name: Some("Cafe".into()),
        proof_data: None,
        proof_type: None,
        location: None,
    }
}

fn bench_reads(c: &mut Criterion) {
    let store = seeded(Durability::Relaxed);
    let mut i = 0u32;
    c.bench_function("contexts/fetch", |b| {
        b.iter(|| {
            i = (i + 7) % 1_000;
            store
                .contexts()
                .get(&format!("user-{i:04}"))
                .expect("fetch")
        })
    });
    c.bench_function("cards/lookup", |b| {
        b.iter(|| {
            i = (i + 7) % 1_000;
            store.cards().get(&format!("fp-{i:04}")).expect("lookup")
        })
    });
}

fn bench_writes(c: &mut Criterion) {
    for (label, durability) in [
        ("relaxed", Durability::Relaxed),
        ("immediate", Durability::Immediate),
    ] {
        let store = seeded(durability);
        let mut group = c.benchmark_group(format!("writes ({label})"));
        if durability == Durability::Immediate {
            group.sample_size(20);
        }
        let mut n = 0u64;
        group.bench_function("kv/put baseline", |b| {
            b.iter(|| {
                n += 1;
                store
                    .kv()
                    .put("bench", &format!("k{}", n % 1_000), &[0u8; 128], None)
                    .expect("put")
            })
        });
        group.bench_function("contexts/conditional push", |b| {
            b.iter(|| {
                let ctx = store
                    .contexts()
                    .get("user-0001")
                    .expect("fetch")
                    .expect("present");
                let version = ctx.version;
                store
                    .contexts()
                    .put_if(ctx, Expect::Version(version))
                    .expect("push")
            })
        });
        group.bench_function("dedup/claim", |b| {
            b.iter(|| {
                n += 1;
                store
                    .dedup()
                    .claim(&format!("claim-{n}"), "user-0001", 5)
                    .expect("claim")
            })
        });
        group.bench_function("webhook/process (4 tables, 1 commit)", |b| {
            b.iter(|| {
                n += 1;
                store.process_webhook(&webhook(n)).expect("webhook")
            })
        });
        group.bench_function("webhook/duplicate", |b| {
            b.iter(|| store.process_webhook(&webhook(1)).expect("webhook"))
        });
        group.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(Duration::from_secs(3));
    targets = bench_reads, bench_writes
}
criterion_main!(benches);
