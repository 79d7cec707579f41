//! The payment webhook: one transaction over four tables, exactly once.

#![allow(clippy::unwrap_used)] // tests state their expectations by unwrapping

use std::sync::Arc;

use edgestate::{Error, PaymentWebhook, Store, Table, WebhookOutcome};

fn hook(txn: &str, fingerprint: &str, amount: u64) -> PaymentWebhook {
    PaymentWebhook {
        txn_id: txn.into(),
        card_fingerprint: fingerprint.into(),
        amount_cents: amount,
        merchant_id: "m-1".into(),
        merchant_name: Some("Cafe".into()),
        proof_data: Some("receipt".into()),
        proof_type: Some("pos".into()),
        location: None,
    }
}

/// Everything the webhook can touch, for before/after comparisons.
fn fingerprint_of_state(s: &Store, user: &str) -> (Option<u64>, usize, bool, Vec<u64>) {
    let ctx = s.contexts().get(user).unwrap();
    let pending = s.pending().list(user).unwrap();
    let stats = s.stats().unwrap();
    let counts = [
        "edgestate.dedup",
        "edgestate.pending",
        "edgestate.contexts",
        "edgestate.expiry",
    ]
    .iter()
    .map(|t| stats.records(Table::from_name(t).unwrap()))
    .collect();
    (
        ctx.map(|c| c.version),
        pending.len(),
        s.dedup().contains("t1").unwrap(),
        counts,
    )
}

#[test]
fn processes_once_and_replays_change_nothing() {
    let s = Store::temporary().unwrap();
    s.cards().put("fp", "alice", "4242").unwrap();
    let first = s.process_webhook(&hook("t1", "fp", 1250)).unwrap();
    let WebhookOutcome::Processed {
        user,
        pending_seq,
        context_version,
        ..
    } = first
    else {
        panic!("expected Processed, got {first:?}");
    };
    assert_eq!(
        (user.as_str(), pending_seq, context_version),
        ("alice", 1, 1)
    );
    let after_first = fingerprint_of_state(&s, "alice");
    for _ in 0..1_000 {
        match s.process_webhook(&hook("t1", "fp", 1250)).unwrap() {
            WebhookOutcome::Duplicate(first) => {
                assert_eq!((first.user_pubkey.as_str(), first.amount), ("alice", 1250));
            }
            other => panic!("expected Duplicate, got {other:?}"),
        }
    }
    assert_eq!(fingerprint_of_state(&s, "alice"), after_first);
    let ctx = s.contexts().get("alice").unwrap().unwrap();
    assert_eq!(ctx.recent_events.len(), 1);
    assert!(ctx.recent_events[0].summary.contains("t1"));
    let pending = s.pending().list("alice").unwrap();
    assert_eq!(pending[0].capture.amount_cents, 1250);
    assert_eq!(pending[0].capture.card_last4.as_deref(), Some("4242"));
}

#[test]
fn unknown_card_writes_nothing_and_a_retry_after_linking_is_processed() {
    let s = Store::in_memory().unwrap();
    let before = fingerprint_of_state(&s, "alice");
    assert_eq!(
        s.process_webhook(&hook("t1", "fp", 10)).unwrap(),
        WebhookOutcome::UnknownCard
    );
    assert_eq!(fingerprint_of_state(&s, "alice"), before);
    s.cards().put("fp", "alice", "4242").unwrap();
    assert!(s
        .process_webhook(&hook("t1", "fp", 10))
        .unwrap()
        .is_processed());
}

#[test]
fn a_failing_step_leaves_no_partial_write() {
    // Pending capacity 0 makes step 3 (append capture) fail after step 2 claimed the id.
    let s = Store::builder().pending_capacity(0).in_memory().unwrap();
    s.cards().put("fp", "alice", "4242").unwrap();
    let before = fingerprint_of_state(&s, "alice");
    let err = s.process_webhook(&hook("t1", "fp", 10)).unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err:?}");
    assert_eq!(
        fingerprint_of_state(&s, "alice"),
        before,
        "the claim was rolled back too"
    );

    // An error raised by the caller after the whole webhook applied rolls all of it back.
    let s = Store::in_memory().unwrap();
    s.cards().put("fp", "alice", "4242").unwrap();
    let before = fingerprint_of_state(&s, "alice");
    let r: Result<(), Error> = s.write(|tx| {
        assert!(tx.process_webhook(&hook("t1", "fp", 10))?.is_processed());
        Err(Error::invalid("caller", "changed its mind"))
    });
    assert!(r.is_err());
    assert_eq!(fingerprint_of_state(&s, "alice"), before);
}

#[test]
fn bad_input_is_refused_before_anything_is_read() {
    let s = Store::in_memory().unwrap();
    for (txn, fp) in [("", "fp"), ("t", "")] {
        assert!(matches!(
            s.process_webhook(&hook(txn, fp, 1)),
            Err(Error::InvalidInput { .. })
        ));
    }
}

#[test]
fn concurrent_deliveries_apply_each_webhook_exactly_once() {
    let s = Store::temporary().unwrap();
    for u in 0..4 {
        s.cards()
            .put(&format!("fp{u}"), &format!("user{u}"), "4242")
            .unwrap();
    }
    let s = Arc::new(s);
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let s = Arc::clone(&s);
            std::thread::spawn(move || {
                let mut processed = 0;
                for n in 0..40 {
                    if s.process_webhook(&hook(&format!("t{n}"), &format!("fp{}", n % 4), 100))
                        .unwrap()
                        .is_processed()
                    {
                        processed += 1;
                    }
                }
                processed
            })
        })
        .collect();
    let total: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
    assert_eq!(total, 40);
    for u in 0..4 {
        let ctx = s.contexts().get(&format!("user{u}")).unwrap().unwrap();
        assert_eq!(ctx.version, 10, "one context write per processed webhook");
        assert_eq!(s.pending().list(&format!("user{u}")).unwrap().len(), 10);
    }
    assert_eq!(s.stats().unwrap().records(Table::Dedup), 40);
}

#[test]
fn ring_buffer_stays_bounded_under_a_stream_of_webhooks() {
    let s = Store::builder()
        .pending_capacity(3)
        .max_recent_events(2)
        .in_memory()
        .unwrap();
    s.cards().put("fp", "alice", "4242").unwrap();
    for n in 0..10 {
        s.process_webhook(&hook(&format!("t{n}"), "fp", n)).unwrap();
    }
    let pending = s.pending().list("alice").unwrap();
    assert_eq!(
        pending.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![10, 9, 8]
    );
    let ctx = s.contexts().get("alice").unwrap().unwrap();
    assert_eq!(ctx.recent_events.len(), 2);
    assert_eq!(ctx.version, 10);
}
