//! The `edgestate` binary, run for real on real files.
#![cfg(feature = "cli")]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use edgestate::{PendingCapture, Store};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_edgestate"))
}

fn run(args: &[&str]) -> Output {
    bin().args(args).output().expect("run edgestate")
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).expect("utf8 stdout")
}

fn stderr(out: &Output) -> String {
    String::from_utf8(out.stderr.clone()).expect("utf8 stderr")
}

fn ok(args: &[&str]) -> String {
    let out = run(args);
    assert!(out.status.success(), "{args:?} failed: {}", stderr(&out));
    stdout(&out)
}

/// Fails with `code` and one line on stderr that contains `needle`.
fn fails(args: &[&str], code: i32, needle: &str) {
    let out = run(args);
    assert_eq!(out.status.code(), Some(code), "{args:?}: {}", stderr(&out));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "one sentence: {err}");
    assert!(err.starts_with("edgestate: "), "{err}");
    assert!(err.contains(needle), "{err}");
    assert!(!err.contains("{ "), "not a Debug dump: {err}");
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf8 path")
}

/// A store file with a few families filled, closed.
fn fixture(dir: &Path) -> PathBuf {
    let path = dir.join("bot.db");
    let store = Store::open(&path).expect("open");
    store
        .kv()
        .put("bot", "position", b"long", None)
        .expect("kv");
    store.kv().put("bot", "mode", b"live", None).expect("kv");
    store
        .kv()
        .put("cache", "q", b"1", Some(Duration::from_millis(1)))
        .expect("kv ttl");
    store.cards().put("fp_1", "alice", "4242").expect("card");
    store
        .pending()
        .push(
            "alice",
            &PendingCapture {
                merchant_id: "m_1".into(),
                amount_cents: 450,
                ..Default::default()
            },
        )
        .expect("pending");
    store.close().expect("close");
    std::thread::sleep(Duration::from_millis(5)); // the cache entry expires
    path
}

#[test]
fn help_lists_every_subcommand_and_the_exit_codes() {
    let help = ok(&["--help"]);
    for sub in [
        "info", "get", "ls", "dump", "verify", "sweep", "compact", "backup", "export", "import",
    ] {
        assert!(help.contains(sub), "{sub} missing from help");
    }
    assert!(help.contains("Exit codes"));
    assert!(ok(&["--version"]).starts_with("edgestate "));
    let out = run(&["frobnicate"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn info_get_ls_dump_verify() {
    let dir = tempfile::tempdir().expect("dir");
    let db = fixture(dir.path());
    let db = s(&db);

    let human = ok(&["info", db]);
    assert!(human.contains("schema version"));
    assert!(human.contains("kv"));
    let info: serde_json::Value = serde_json::from_str(&ok(&["info", db, "--json"])).expect("json");
    assert_eq!(info["records"]["kv"], 3);
    assert_eq!(info["records"]["user_cards"], 1);
    assert_eq!(info["expired_awaiting_sweep"], 1);
    assert!(info["file_size_bytes"].as_u64().expect("size") > 0);

    let got: serde_json::Value =
        serde_json::from_str(&ok(&["get", db, "kv", "bot/position"])).expect("json");
    assert_eq!(got["value"], "long");
    assert_eq!(got["version"], 1);
    let card: serde_json::Value =
        serde_json::from_str(&ok(&["get", db, "cards", "fp_1", "--json"])).expect("json");
    assert_eq!(card["value"]["user_pubkey"], "alice");
    fails(&["get", db, "kv", "bot/none"], 4, "no record");
    fails(&["get", db, "nope", "x"], 2, "unknown family");

    let ls = ok(&["ls", db, "kv", "--prefix", "bot/", "--json"]);
    assert_eq!(ls.lines().count(), 2);
    assert_eq!(
        ok(&["ls", db, "kv", "--limit", "1", "--json"])
            .lines()
            .count(),
        1
    );
    let table = ok(&["ls", db, "pending"]);
    assert!(
        table.contains("KEY") && table.contains("alice#1"),
        "{table}"
    );

    let dump = ok(&["dump", db]);
    assert_eq!(dump.lines().count(), 7); // 3 kv, card, its index entry, pending, its seq
    for line in dump.lines() {
        serde_json::from_str::<serde_json::Value>(line).expect("json line");
    }
    assert!(ok(&["verify", db]).contains("intact"));
    let v: serde_json::Value = serde_json::from_str(&ok(&["verify", db, "--json"])).expect("json");
    assert_eq!(v["ok"], true);
}

#[test]
fn sweep_compact_backup() {
    let dir = tempfile::tempdir().expect("dir");
    let db = fixture(dir.path());
    let db = s(&db);
    assert!(ok(&["sweep", db]).contains("removed 1"));
    let c: serde_json::Value = serde_json::from_str(&ok(&["compact", db, "--json"])).expect("json");
    assert!(c["bytes_after"].as_u64().is_some());
    let copy = dir.path().join("copy.db");
    assert!(ok(&["backup", db, s(&copy)]).contains("verified"));
    fails(&["backup", db, s(&copy)], 1, "already exists");
    let restored = Store::open(&copy).expect("copy opens");
    assert_eq!(
        restored
            .kv()
            .get("bot", "position")
            .expect("get")
            .map(|e| e.value),
        Some(b"long".to_vec())
    );
}

#[test]
fn export_import_round_trip_and_bad_input() {
    let dir = tempfile::tempdir().expect("dir");
    let db = fixture(dir.path());
    let db = s(&db);
    let out = dir.path().join("bot.jsonl");
    ok(&["export", db, "--output", s(&out)]);
    let first = std::fs::read(&out).expect("read");
    assert_eq!(
        ok(&["export", db]).as_bytes(),
        first.as_slice(),
        "stdout by default"
    );

    let new_db = dir.path().join("new.db");
    assert!(ok(&["import", s(&new_db), s(&out)]).contains("imported"));
    assert_eq!(ok(&["export", s(&new_db)]).as_bytes(), first.as_slice());

    let dynamo = dir.path().join("bot.dynamodb.json");
    ok(&["export", db, "--format", "dynamodb", "-o", s(&dynamo)]);
    let from_dynamo = dir.path().join("from_dynamo.db");
    ok(&[
        "import",
        s(&from_dynamo),
        s(&dynamo),
        "--format",
        "dynamodb",
    ]);
    assert_eq!(
        ok(&["export", s(&from_dynamo)]).as_bytes(),
        first.as_slice()
    );

    let bad = dir.path().join("bad.jsonl");
    let mut text = String::from_utf8(first).expect("utf8");
    text.push_str("{\"family\":\"kv\"\n");
    std::fs::write(&bad, text).expect("write");
    let target = dir.path().join("target.db");
    fails(&["import", s(&target), s(&bad)], 6, "line 9");
    // The failed batch (the whole file here) left nothing behind.
    let info: serde_json::Value =
        serde_json::from_str(&ok(&["info", s(&target), "--json"])).expect("json");
    assert_eq!(info["records"]["kv"], 0);
    fails(
        &["import", s(&target), s(&dir.path().join("none.jsonl"))],
        4,
        "does not exist",
    );
}

#[test]
fn errors_are_one_sentence_with_documented_codes() {
    let dir = tempfile::tempdir().expect("dir");
    let missing = dir.path().join("missing.db");
    fails(&["info", s(&missing)], 4, "does not exist");
    assert!(
        !missing.exists(),
        "a read-only command never creates a store"
    );
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "hello, not a database").expect("write");
    fails(&["info", s(&text)], 5, "not an edgestate store");
    fails(&["verify", s(&text)], 5, "not a redb file");
    fails(&["import", s(&text), s(&text)], 5, "not an edgestate store");
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .expect("ls")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(names.len(), 1, "nothing created beside the file: {names:?}");
    fails(&["info", s(dir.path())], 5, "is a directory");
}

#[test]
fn a_live_bot_in_another_process_is_reported_as_in_use() {
    let dir = tempfile::tempdir().expect("dir");
    let db = fixture(dir.path());
    // This test process is the bot: it holds the store open and keeps writing.
    let bot = Store::open(&db).expect("bot opens");
    bot.kv().put("bot", "tick", b"1", None).expect("write");
    for args in [
        vec!["info", s(&db)],
        vec!["dump", s(&db)],
        vec!["get", s(&db), "kv", "bot/position"],
    ] {
        fails(&args, 3, "in use by another process");
    }
    bot.kv()
        .put("bot", "tick", b"2", None)
        .expect("bot keeps working");
    bot.close().expect("close");
    // Once the bot has stopped, the same commands work and see its last write.
    let got: serde_json::Value =
        serde_json::from_str(&ok(&["get", s(&db), "kv", "bot/tick"])).expect("json");
    assert_eq!(got["value"], "2");
}

#[test]
fn progress_stays_quiet_when_piped() {
    let dir = tempfile::tempdir().expect("dir");
    let db = fixture(dir.path());
    let out = run(&["export", s(&db), "-o", s(&dir.path().join("x.jsonl"))]);
    assert!(out.status.success());
    assert!(out.stderr.is_empty(), "{}", stderr(&out));
    let out = run(&["verify", s(&db)]);
    assert!(out.stderr.is_empty(), "{}", stderr(&out));
}

#[test]
fn verify_reports_a_damaged_record() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("bot.db");
    let store = Store::open(&path).expect("open");
    let marker = b"find-me-0123456789-find-me";
    store.kv().put("bot", "victim", marker, None).expect("kv");
    store.close().expect("close");
    let mut bytes = std::fs::read(&path).expect("read");
    let at = bytes
        .windows(marker.len())
        .position(|w| w == marker)
        .expect("record in the file after a clean close");
    bytes[at + 3] ^= 0x01;
    std::fs::write(&path, bytes).expect("write");
    let out = run(&["verify", s(&path)]);
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert!(stderr(&out).contains("damaged"), "{}", stderr(&out));
}
