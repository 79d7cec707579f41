//! A point-of-sale webhook processor that survives restarts: each run processes the next
//! window of a provider's webhook stream, which overlaps the previous window the way
//! real providers retry. Every webhook is one atomic transaction (card -> claim ->
//! pending capture -> context), so replays and restarts never double-count.
//!
//! `cargo run --release --example pos_webhook [path]` (default `./edgestate-pos.db`).
//! Run it several times: retried webhooks show up as duplicates, the ring buffers stay
//! bounded, and the contexts keep counting from where the last run stopped.

use edgestate::{PaymentWebhook, Store, Table, Versioned, WebhookOutcome};

const WINDOW: u64 = 20;
const OVERLAP: u64 = 5;
const CARDS: [(&str, &str, &str); 3] = [
    ("fp_visa_ana", "user-ana", "4242"),
    ("fp_mc_ben", "user-ben", "5454"),
    ("fp_amex_cy", "user-cy", "0005"),
];

fn webhook(n: u64) -> PaymentWebhook {
    // Every 7th payment comes from a card nobody has linked.
    let fingerprint = if n.is_multiple_of(7) {
        "fp_unknown".to_owned()
    } else {
        CARDS[(n % 3) as usize].0.to_owned()
    };
    PaymentWebhook {
        txn_id: format!("txn-{n:06}"),
        card_fingerprint: fingerprint,
        amount_cents: 250 + (n * 137) % 4_000,
        merchant_id: format!("m-{}", n % 4),
        merchant_name: Some(
            ["Cafe Nero", "Book Nook", "Fresh Mart", "Cycle Hub"][(n % 4) as usize].into(),
        ),
        proof_data: None,
        proof_type: None,
        location: None,
    }
}

fn main() -> edgestate::Result<()> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "edgestate-pos.db".into());
    let store = Store::open(&path)?;
    for (fingerprint, user, last4) in CARDS {
        if store.cards().get(fingerprint)?.is_none() {
            store.cards().put(fingerprint, user, last4)?;
        }
    }

    // Where the last run stopped; the provider resends the last OVERLAP webhooks.
    let cursor: u64 = store
        .kv()
        .get_value::<u64>("pos", "cursor")?
        .map_or(0, |v: Versioned<u64>| v.value);
    let start = cursor.saturating_sub(OVERLAP) + 1;
    let end = cursor + WINDOW;
    let (mut processed, mut duplicates, mut unknown) = (0, 0, 0);
    for n in start..=end {
        match store.process_webhook(&webhook(n))? {
            WebhookOutcome::Processed { .. } => processed += 1,
            WebhookOutcome::Duplicate(_) => duplicates += 1,
            WebhookOutcome::UnknownCard => unknown += 1,
            _ => {}
        }
    }
    store.kv().put_value("pos", "cursor", &end, None)?;
    println!(
        "{path}: webhooks {start}..={end}: processed {processed}, duplicates {duplicates}, unknown card {unknown}"
    );

    drop(store);
    // A restart: everything acknowledged above is there.
    let store = Store::open(&path)?;
    for (_, user, _) in CARDS {
        let ctx = store.contexts().get(user)?;
        let pending = store.pending().list(user)?;
        let (version, last) = ctx
            .map(|c| {
                (
                    c.version,
                    c.recent_events.first().map(|e| e.summary.clone()),
                )
            })
            .unwrap_or((0, None));
        println!(
            "  {user}: {} pending captures (capacity {}), context v{version}, last event: {}",
            pending.len(),
            store.config().pending_capacity,
            last.unwrap_or_else(|| "none".into())
        );
    }
    let stats = store.stats()?;
    println!(
        "  processed ids on record: {}, file {} bytes",
        stats.records(Table::Dedup),
        stats.file_size_bytes
    );
    Ok(())
}
