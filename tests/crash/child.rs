//! The child side: opens the store, runs the workload from the stored cursor on, and
//! reports on stdout (`@start`, `@ack`, `@flushed`, `@error` lines) what it did.

use std::io::Write;
use std::path::{Path, PathBuf};

use edgestate::{Durability, ManualClock};

use crate::run::{is_harness_op, read_cursor, run_op};
use crate::store_model::{builder, Workload, T0_MS};

/// Set in a child's environment: `<mode>;<seed>;<max_ops>;<quick_repair>;<path>`.
pub const CHILD_ENV: &str = "EDGESTATE_CRASH_CHILD";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Immediate,
    /// `Durability::Relaxed`, with a `flush()` after every `flush_every` ops.
    Relaxed {
        flush_every: u64,
    },
}

impl Mode {
    pub fn encode(self) -> String {
        match self {
            Mode::Immediate => "immediate".into(),
            Mode::Relaxed { flush_every } => format!("relaxed{flush_every}"),
        }
    }

    pub fn decode(s: &str) -> Mode {
        match s.strip_prefix("relaxed") {
            Some(k) => Mode::Relaxed {
                flush_every: k.parse().unwrap(),
            },
            None => Mode::Immediate,
        }
    }
}

/// If this process is a crash child, runs the workload and exits; otherwise returns.
pub fn run_child_if_asked() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let mut parts = spec.splitn(5, ';');
    let mode = Mode::decode(parts.next().unwrap());
    let seed: u64 = parts.next().unwrap().parse().unwrap();
    let max_ops: u64 = parts.next().unwrap().parse().unwrap();
    let quick_repair = parts.next().unwrap() == "1";
    let path = PathBuf::from(parts.next().unwrap());
    let code = match child(mode, seed, max_ops, quick_repair, &path) {
        Ok(()) => 0,
        Err(e) => {
            let e = e.replace('\n', " ");
            println!("@error {e}");
            3
        }
    };
    std::process::exit(code);
}

fn child(
    mode: Mode,
    seed: u64,
    max_ops: u64,
    quick_repair: bool,
    path: &Path,
) -> Result<(), String> {
    let mut workload = Workload::new(seed, is_harness_op);
    let clock = ManualClock::new(T0_MS);
    let durability = match mode {
        Mode::Immediate => Durability::Immediate,
        Mode::Relaxed { .. } => Durability::Relaxed,
    };
    let store = builder(&clock)
        .durability(durability)
        .quick_repair(quick_repair)
        .open(path)
        .map_err(|e| format!("open: {e}"))?;
    let start = read_cursor(&store).map_err(|e| format!("cursor: {e}"))?;
    let mut out = std::io::stdout().lock();
    let mut say = |line: String| {
        // The parent counts a line only once it is out of this process.
        writeln!(out, "\n{line}").unwrap();
        out.flush().unwrap();
    };
    say(format!("@start {start}"));
    for i in start..start + max_ops {
        clock.set_ms(workload.time(i));
        run_op(&store, &workload.op(i), i)?;
        say(format!("@ack {i}"));
        if let Mode::Relaxed { flush_every } = mode {
            if (i + 1) % flush_every == 0 {
                store.flush().map_err(|e| format!("flush: {e}"))?;
                say(format!("@flushed {}", i + 1));
            }
        }
    }
    store.close().map_err(|e| format!("close: {e}"))
}

#[derive(Debug)]
pub enum Event {
    /// The child opened the file and found this cursor.
    Start(u64),
    /// Op `i` committed.
    Ack(u64),
    /// Everything up to this cursor is synced.
    Flushed(u64),
    Error(String),
}

pub fn parse(line: &str) -> Option<Event> {
    let at = line.find('@')?;
    let (word, rest) = line[at + 1..].split_once(' ')?;
    let n = || rest.trim().parse::<u64>().ok();
    match word {
        "start" => n().map(Event::Start),
        "ack" => n().map(Event::Ack),
        "flushed" => n().map(Event::Flushed),
        "error" => Some(Event::Error(rest.to_owned())),
        _ => None,
    }
}
