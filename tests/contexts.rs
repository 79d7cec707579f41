//! User contexts: CAS, update closures, patch by path, bounded events, get-or-init,
//! batch fetch, and the version field agreeing with the record.

mod common;

use std::time::Duration;

use common::clocked_store as store;
use common::T0_MS;
use edgestate::{ContextEvent, Error, Expect, ManualClock, Store, Table, UserContext};
use serde_json::json;

fn event(n: i64) -> ContextEvent {
    ContextEvent {
        event_type: "capture".into(),
        timestamp_s: n,
        summary: format!("event {n}"),
        amount: Some(u64::try_from(n).expect("non-negative")),
    }
}

fn invalid_field(err: Error) -> String {
    match err {
        Error::InvalidInput { field, .. } => field,
        other => panic!("expected InvalidInput, got {other:?}"),
    }
}

#[test]
fn push_creates_with_version_zero_and_then_requires_the_stored_version() {
    let (store, _) = store();
    let c = store.contexts();

    let created = c.put(UserContext::new("alice", T0_MS)).expect("create");
    assert_eq!(created.version, 1);

    // Version 0 means "create": refused once a context exists.
    let err = c.put(UserContext::new("alice", T0_MS)).expect_err("exists");
    assert!(matches!(
        err,
        Error::VersionConflict {
            expected: None,
            actual: Some(1),
            ..
        }
    ));

    let mut next = created.clone();
    next.vault.cred_balance = 10;
    let v2 = c.put(next).expect("cas on 1");
    assert_eq!(v2.version, 2);

    // A stale copy conflicts and writes nothing.
    let mut stale = created;
    stale.vault.cred_balance = 999;
    let err = c.put(stale).expect_err("stale");
    match err {
        Error::VersionConflict {
            expected, actual, ..
        } => {
            assert_eq!(expected, Some(1));
            assert_eq!(actual, Some(2));
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    let stored = c.get("alice").expect("fetch").expect("present");
    assert_eq!(stored, v2);
    assert_eq!(stored.vault.cred_balance, 10);

    // Expecting a version on an absent user is a conflict too.
    let mut ghost = UserContext::new("ghost", T0_MS);
    ghost.version = 5;
    let err = c.put(ghost).expect_err("absent");
    assert!(matches!(
        err,
        Error::VersionConflict {
            expected: Some(5),
            actual: None,
            ..
        }
    ));
    assert!(c.get("ghost").expect("fetch").is_none());
}

#[test]
fn version_field_always_matches_the_record() {
    let (store, _) = store();
    let c = store.contexts();
    let mut ctx = UserContext::new("bob", T0_MS);
    ctx.version = 77; // ignored by an unconditional put
    let stored = c.put_if(ctx, Expect::Any).expect("put any");
    assert_eq!(stored.version, 1);
    assert_eq!(c.get("bob").expect("fetch").expect("present").version, 1);

    c.patch("bob", "vault.oxo_balance", json!(3))
        .expect("patch");
    c.push_event("bob", event(1)).expect("event");
    let updated = c
        .update("bob", |ctx| {
            ctx.version = 1_000; // the closure cannot forge a version
            Ok(())
        })
        .expect("update");
    assert_eq!(updated.version, 4);
    let fetched = c.get("bob").expect("fetch").expect("present");
    assert_eq!(fetched.version, 4);
    assert_eq!(fetched, updated);

    let in_tx = store
        .read(|tx| tx.contexts().get("bob"))
        .expect("read")
        .expect("present");
    assert_eq!(in_tx.version, 4);
}

#[test]
fn put_if_honours_each_expectation() {
    let (store, _) = store();
    let c = store.contexts();
    let ctx = UserContext::new("carol", T0_MS);
    c.put_if(ctx.clone(), Expect::Absent).expect("absent ok");
    assert!(c
        .put_if(ctx.clone(), Expect::Absent)
        .expect_err("not absent")
        .is_conflict());
    assert!(c
        .put_if(ctx.clone(), Expect::Version(2))
        .expect_err("wrong version")
        .is_conflict());
    assert_eq!(
        c.put_if(ctx.clone(), Expect::Version(1))
            .expect("v1")
            .version,
        2
    );
    assert_eq!(c.put_if(ctx, Expect::Any).expect("any").version, 3);
}

#[test]
fn updated_at_follows_the_injected_clock_in_seconds() {
    let (store, clock) = store();
    let c = store.contexts();
    let ctx = c.get_or_init("dave").expect("init");
    assert_eq!(ctx.updated_at_s, 1_700_000_000);
    clock.advance(Duration::from_secs(90));
    let patched = c
        .patch("dave", "preferences.auto_stake", json!(false))
        .expect("patch");
    assert_eq!(patched.updated_at_s, 1_700_000_090);
}

#[test]
fn patch_reaches_every_kind_of_field() {
    let (store, _) = store();
    let c = store.contexts();
    c.get_or_init("erin").expect("init");
    c.push_event("erin", event(1)).expect("event");

    let cases = [
        ("vault.cred_balance", json!(12_345)),
        ("vault.active_positions", json!(65_535)),
        ("vault.snapshot_at", json!(-5)),
        ("preferences.auto_stake", json!(false)),
        ("preferences.default_duration_days", json!(180)),
        ("preferences.risk_tolerance", json!("aggressive")),
        ("preferences.notifications.min_notify_amount", json!(42)),
        ("preferences.notifications.on_stake", json!(true)),
        ("recent_events.0.summary", json!("renamed")),
        ("recent_events.0.amount", json!(null)),
        (
            "agent_memory.goal",
            json!({"target": 100, "tags": ["bike"]}),
        ),
        ("agent_memory.goal.reached", json!(false)),
        ("agent_memory.counter", json!(1)),
        ("agent_memory.counter", json!(2)),
    ];
    let mut version = c.get("erin").expect("fetch").expect("present").version;
    for (path, value) in cases {
        let stored = c.patch("erin", path, value).expect(path);
        version += 1;
        assert_eq!(stored.version, version, "{path} bumps the version");
    }

    let ctx = c.get("erin").expect("fetch").expect("present");
    assert_eq!(ctx.vault.cred_balance, 12_345);
    assert_eq!(ctx.vault.active_positions, 65_535);
    assert_eq!(ctx.vault.snapshot_at_s, -5);
    assert!(!ctx.preferences.auto_stake);
    assert_eq!(ctx.preferences.default_duration_days, 180);
    assert_eq!(ctx.preferences.risk_tolerance, "aggressive");
    assert_eq!(ctx.preferences.notifications.min_notify_amount, 42);
    assert!(ctx.preferences.notifications.on_stake);
    assert_eq!(ctx.recent_events[0].summary, "renamed");
    assert_eq!(ctx.recent_events[0].amount, None);
    assert_eq!(
        ctx.agent_memory["goal"],
        json!({"target": 100, "tags": ["bike"], "reached": false})
    );
    assert_eq!(ctx.agent_memory["counter"], json!(2));

    // Whole sub-documents can be replaced when complete and exact.
    let mut notifications = serde_json::to_value(&ctx.preferences.notifications).expect("json");
    notifications["on_yield"] = json!(false);
    c.patch("erin", "preferences.notifications", notifications)
        .expect("whole struct");
    c.patch("erin", "agent_memory", json!({"only": "this"}))
        .expect("whole memory");
    let ctx = c.get("erin").expect("fetch").expect("present");
    assert!(!ctx.preferences.notifications.on_yield);
    assert_eq!(ctx.agent_memory.len(), 1);
    assert_eq!(ctx.agent_memory["only"], json!("this"));
}

#[test]
fn bad_patches_name_the_path_and_write_nothing() {
    let (store, clock) = store();
    let c = store.contexts();
    c.get_or_init("frank").expect("init");
    c.push_event("frank", event(1)).expect("event");
    let before = c.get("frank").expect("fetch").expect("present");
    clock.advance(Duration::from_secs(10));

    for (path, value) in [
        ("preferences.risk_tolerence", json!("typo")),
        ("preferences.notifications.on_everything", json!(true)),
        ("nonexistent", json!(1)),
        ("vault.cred_balance.inner", json!(1)),
        ("recent_events.3", json!(null)),
        ("agent_memory.missing.key", json!(1)),
        ("pubkey", json!("mallory")),
        ("version", json!(1)),
        ("updated_at", json!(0)),
        ("", json!(1)),
        ("vault..cred_balance", json!(1)),
        ("vault.cred_balance", json!("lots")),
        ("vault.cred_balance", json!(-1)),
        ("vault.cred_balance", json!(1.5)),
        ("vault.active_positions", json!(65_536)),
        ("preferences.default_duration_days", json!(-1)),
        ("preferences.auto_stake", json!("yes")),
        ("preferences.risk_tolerance", json!(3)),
        ("preferences.notifications", json!({"on_capture": true})),
        ("vault", json!(null)),
        ("agent_memory", json!("not a map")),
    ] {
        let err = c.patch("frank", path, value).expect_err(path);
        assert_eq!(invalid_field(err), path, "the error names the path");
        let now = c.get("frank").expect("fetch").expect("present");
        assert_eq!(now, before, "{path} changed the stored context");
    }
}

#[test]
fn patch_and_update_of_a_missing_user_are_not_found() {
    let (store, _) = store();
    let c = store.contexts();
    assert!(matches!(
        c.patch("nobody", "vault.cred_balance", json!(1)),
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        c.update("nobody", |_| Ok(())),
        Err(Error::NotFound { .. })
    ));
    assert!(c.get("nobody").expect("fetch").is_none());
}

#[test]
fn update_closures_commit_or_write_nothing() {
    let (store, _) = store();
    let c = store.contexts();
    let made = c
        .update_or_init("gina", |ctx| {
            ctx.vault.cred_balance = 5;
            Ok(())
        })
        .expect("init via update");
    assert_eq!(made.version, 1);

    let err = c
        .update("gina", |ctx| {
            ctx.vault.cred_balance = 1_000;
            Err(Error::InvalidInput {
                field: "amount".into(),
                reason: "refused by the caller".into(),
            })
        })
        .expect_err("closure error");
    assert!(matches!(err, Error::InvalidInput { .. }));

    let err = c
        .update("gina", |ctx| {
            ctx.pubkey = "someone-else".into();
            Ok(())
        })
        .expect_err("pubkey change");
    assert_eq!(invalid_field(err), "pubkey");

    let ctx = c.get("gina").expect("fetch").expect("present");
    assert_eq!(ctx.vault.cred_balance, 5);
    assert_eq!(ctx.version, 1);
    assert!(c.get("someone-else").expect("fetch").is_none());
}

#[test]
fn concurrent_updates_never_lose_an_increment() {
    let (store, _) = store();
    store.contexts().get_or_init("hank").expect("init");
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let store = store.clone();
            std::thread::spawn(move || {
                for _ in 0..25 {
                    store
                        .contexts()
                        .update("hank", |ctx| {
                            ctx.vault.cred_balance += 1;
                            Ok(())
                        })
                        .expect("update");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("thread");
    }
    let ctx = store
        .contexts()
        .get("hank")
        .expect("fetch")
        .expect("present");
    assert_eq!(ctx.vault.cred_balance, 100);
    assert_eq!(ctx.version, 101);
}

#[test]
fn push_event_keeps_the_newest_first_within_the_configured_bound() {
    let clock = ManualClock::new(T0_MS);
    let store = Store::builder()
        .clock(clock)
        .max_recent_events(3)
        .in_memory()
        .expect("store");
    let c = store.contexts();

    // The first event creates the context, like the seed.
    let first = c.push_event("ivy", event(1)).expect("first");
    assert_eq!(first.version, 1);
    assert_eq!(first.recent_events, vec![event(1)]);

    for n in 2..=5 {
        c.push_event("ivy", event(n)).expect("push");
    }
    let ctx = c.get("ivy").expect("fetch").expect("present");
    assert_eq!(ctx.recent_events, vec![event(5), event(4), event(3)]);
    assert_eq!(ctx.version, 5);
}

#[test]
fn push_event_uses_the_seed_default_of_ten() {
    let (store, _) = store();
    for n in 0..15 {
        store.contexts().push_event("jay", event(n)).expect("push");
    }
    let ctx = store
        .contexts()
        .get("jay")
        .expect("fetch")
        .expect("present");
    assert_eq!(ctx.recent_events.len(), 10);
    assert_eq!(ctx.recent_events[0], event(14));
    assert_eq!(ctx.recent_events[9], event(5));
}

#[test]
fn get_or_init_creates_once_with_defaults() {
    let (store, clock) = store();
    let c = store.contexts();
    let first = c.get_or_init("kim").expect("init");
    assert_eq!(first.version, 1);
    assert_eq!(first.pubkey, "kim");
    assert_eq!(first.preferences, edgestate::UserPreferences::default());
    assert_eq!(first.vault, edgestate::VaultState::default());

    clock.advance(Duration::from_secs(5));
    let again = c.get_or_init("kim").expect("again");
    assert_eq!(again, first, "an existing context is returned untouched");

    let in_tx = store
        .write(|tx| tx.contexts().get_or_init("kim"))
        .expect("in tx");
    assert_eq!(in_tx, first);
}

#[test]
fn fetch_many_reports_missing_users_in_order() {
    let (store, _) = store();
    let c = store.contexts();
    c.get_or_init("a").expect("a");
    c.get_or_init("c").expect("c");
    let batch = c.get_many(&["c", "b", "a", "d"]).expect("batch");
    let found: Vec<&str> = batch.found.iter().map(|x| x.pubkey.as_str()).collect();
    assert_eq!(found, vec!["c", "a"]);
    assert_eq!(batch.missing, vec!["b".to_owned(), "d".to_owned()]);

    let empty = c.get_many(&[]).expect("empty");
    assert!(empty.found.is_empty() && empty.missing.is_empty());
    assert!(matches!(
        c.get_many(&["a", ""]),
        Err(Error::InvalidInput { .. })
    ));
}

#[test]
fn invalid_keys_are_refused_before_writing() {
    let (store, _) = store();
    let c = store.contexts();
    assert_eq!(invalid_field(c.get("").expect_err("empty")), "user");
    assert_eq!(
        invalid_field(c.put(UserContext::new("", T0_MS)).expect_err("empty")),
        "pubkey"
    );
    let long = "x".repeat(edgestate::limits::MAX_KEY_LEN + 1);
    assert!(c.get_or_init(&long).is_err());
    assert_eq!(store.stats().expect("stats").records(Table::Contexts), 0);
}

#[test]
fn context_writes_roll_back_with_their_transaction() {
    let (store, _) = store();
    let outcome: Result<(), Error> = store.write(|tx| {
        tx.contexts().get_or_init("lee")?;
        tx.contexts().patch("lee", "vault.cred_balance", json!(9))?;
        assert_eq!(
            tx.contexts().get("lee")?.map(|c| c.vault.cred_balance),
            Some(9),
            "a transaction sees its own writes"
        );
        Err(Error::NotFound {
            table: "demo",
            key: "abort".into(),
        })
    });
    assert!(outcome.is_err());
    assert!(store.contexts().get("lee").expect("fetch").is_none());
}

#[test]
fn delete_removes_the_context() {
    let (store, _) = store();
    let c = store.contexts();
    c.get_or_init("max").expect("init");
    let removed = c.delete("max").expect("delete").expect("was there");
    assert_eq!(removed.pubkey, "max");
    assert!(c.get("max").expect("fetch").is_none());
    assert!(c.delete("max").expect("delete again").is_none());
    // Recreating starts over at version 1.
    assert_eq!(c.get_or_init("max").expect("init").version, 1);
}

#[test]
fn contexts_with_agent_memory_survive_a_reopen() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("ctx.edgestate");
    let written = {
        let store = Store::open(&path).expect("open");
        store.contexts().get_or_init("nia").expect("init");
        store
            .contexts()
            .patch(
                "nia",
                "agent_memory.plan",
                json!({"steps": [1, 2, 3], "f": 0.25}),
            )
            .expect("patch")
    };
    let store = Store::open(&path).expect("reopen");
    let read = store
        .contexts()
        .get("nia")
        .expect("fetch")
        .expect("present");
    assert_eq!(read, written);
    assert_eq!(read.agent_memory["plan"]["f"], json!(0.25));
}
