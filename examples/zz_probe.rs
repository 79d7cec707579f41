//! probe
use edgestate::{PaymentWebhook, Store};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
fn main() -> edgestate::Result<()> {
    let threads: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(16);
    let dir = tempfile::tempdir_in("/work").unwrap();
    let path = dir.path().join("p.db");
    let store = Store::open(&path)?;
    for u in 0..2000 {
        store.transaction(|tx| { tx.cards().put(&format!("fp{u}"), &format!("u{u}"), "4242")?; tx.contexts().get_or_init(&format!("u{u}"))?; Ok(()) })?;
    }
    let n = AtomicU64::new(0);
    let t = Instant::now();
    std::thread::scope(|s| {
        for th in 0..threads {
            let (store, n) = (&store, &n);
            s.spawn(move || {
                let mut i = 0u64;
                while t.elapsed() < Duration::from_secs(3) {
                    i += 1;
                    store.process_webhook(&PaymentWebhook { txn_id: format!("t{th}-{i}"), card_fingerprint: format!("fp{}", (i as usize * 7 + th * 131) % 2000), amount_cents: 5, merchant_id: "m".into(), ..Default::default() }).unwrap();
                    n.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
    });
    println!("{threads} threads: {:.0} webhooks/s", n.load(Ordering::Relaxed) as f64 / t.elapsed().as_secs_f64());
    Ok(())
}
