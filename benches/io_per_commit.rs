//! What one durable commit writes: `write` calls, bytes, `sync_data` and `set_len` calls
//! per durable webhook and per durable context update, counted by a storage backend that
//! wraps redb's `FileBackend`. Deterministic (no timing), so each storage lever's effect
//! can be read off directly.
//!
//! `cargo bench --bench io_per_commit`

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use edgestate::{ContextEvent, PaymentWebhook, PendingCapture, Store};
use redb::backends::FileBackend;
use redb::StorageBackend;

#[derive(Debug, Default)]
struct Counters {
    writes: AtomicU64,
    bytes: AtomicU64,
    syncs: AtomicU64,
    set_lens: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> [u64; 4] {
        [
            self.writes.load(Ordering::SeqCst),
            self.bytes.load(Ordering::SeqCst),
            self.syncs.load(Ordering::SeqCst),
            self.set_lens.load(Ordering::SeqCst),
        ]
    }
}

#[derive(Debug)]
struct Counting {
    inner: FileBackend,
    counters: Arc<Counters>,
}

impl StorageBackend for Counting {
    fn len(&self) -> Result<u64, io::Error> {
        self.inner.len()
    }
    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), io::Error> {
        self.inner.read(offset, out)
    }
    fn set_len(&self, len: u64) -> Result<(), io::Error> {
        self.counters.set_lens.fetch_add(1, Ordering::SeqCst);
        self.inner.set_len(len)
    }
    fn sync_data(&self) -> Result<(), io::Error> {
        self.counters.syncs.fetch_add(1, Ordering::SeqCst);
        self.inner.sync_data()
    }
    fn write(&self, offset: u64, data: &[u8]) -> Result<(), io::Error> {
        self.counters.writes.fetch_add(1, Ordering::SeqCst);
        self.counters
            .bytes
            .fetch_add(data.len() as u64, Ordering::SeqCst);
        self.inner.write(offset, data)
    }
    fn close(&self) -> Result<(), io::Error> {
        self.inner.close()
    }
}

const USERS: usize = 2_000;
const COMMITS: u64 = 300;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("io.edgestate");
    Store::open(&path)?.close()?;
    let counters = Arc::new(Counters::default());
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)?;
    let backend = Counting {
        inner: FileBackend::new(file)?,
        counters: Arc::clone(&counters),
    };
    // EDGESTATE_IO_QUICK_REPAIR=1: redb saves its allocator state in every commit.
    let quick_repair = std::env::var("EDGESTATE_IO_QUICK_REPAIR").is_ok_and(|v| v == "1");
    let store = Store::builder()
        .quick_repair(quick_repair)
        .open_with_backend(backend)?;

    let memory = "x".repeat(600);
    for chunk in (0..USERS).collect::<Vec<_>>().chunks(500) {
        store.transaction(|tx| {
            for &u in chunk {
                let user = format!("user-{u:05}");
                let mut ctx = tx.contexts().get_or_init(&user)?;
                ctx.agent_memory
                    .insert("notes".into(), serde_json::Value::String(memory.clone()));
                tx.contexts().put(ctx)?;
                tx.cards().put(&format!("fp-{u:05}"), &user, "4242")?;
                for j in 0..10 {
                    tx.pending().push(
                        &user,
                        &PendingCapture {
                            merchant_id: format!("m-{j}"),
                            amount_cents: 100,
                            ..PendingCapture::default()
                        },
                    )?;
                }
            }
            Ok(())
        })?;
    }

    println!("| durable commit | write calls | bytes written | sync_data | set_len |");
    println!("|---|---|---|---|---|");
    let report = |name: &str, before: [u64; 4], after: [u64; 4]| {
        let per = |i: usize| (after[i] - before[i]) as f64 / COMMITS as f64;
        println!(
            "| {name} | {:.1} | {:.1} KiB | {:.2} | {:.3} |",
            per(0),
            per(1) / 1024.0,
            per(2),
            per(3)
        );
    };

    let before = counters.snapshot();
    for n in 0..COMMITS {
        let u = (n as usize * 7919) % USERS;
        let outcome = store.process_webhook(&PaymentWebhook {
            txn_id: format!("txn-{n}"),
            card_fingerprint: format!("fp-{u:05}"),
            amount_cents: 100 + n,
            merchant_id: "m-42".into(),
            merchant_name: Some("Corner Cafe".into()),
            ..PaymentWebhook::default()
        })?;
        assert!(outcome.is_processed());
    }
    report(
        "webhook (card, claim, capture, context)",
        before,
        counters.snapshot(),
    );

    let before = counters.snapshot();
    for n in 0..COMMITS {
        let user = format!("user-{:05}", (n as usize * 104_729) % USERS);
        let ctx = store.contexts().get(&user)?.ok_or("no context")?;
        let mut next = ctx.clone();
        next.vault.cred_balance += 1;
        store.contexts().put(next)?;
    }
    report("context conditional update", before, counters.snapshot());

    let before = counters.snapshot();
    for n in 0..COMMITS {
        let user = format!("user-{:05}", (n as usize * 31) % USERS);
        store
            .contexts()
            .push_event(&user, ContextEvent::new("note", 0, "x"))?;
    }
    report("context push_event", before, counters.snapshot());
    store.close()?;
    Ok(())
}
