//! `edgestate`: look inside, check, back up, export and import an edgestate store from
//! the shell.
//!
//! ```text
//! edgestate info bot.db
//! edgestate get bot.db kv bot/position
//! edgestate ls bot.db pending --prefix alice --limit 20
//! edgestate verify bot.db
//! edgestate backup bot.db copy.db
//! edgestate export bot.db --output bot.jsonl
//! edgestate import new.db bot.jsonl
//! ```
//!
//! Exit codes: 0 success; 1 any other failure (I/O, storage); 2 bad usage; 3 the store
//! is in use by another process; 4 the store file or the record does not exist; 5 the
//! file is damaged or not a store (`verify` found a problem); 6 a bad line in an import.

#![forbid(unsafe_code)]

use std::fs::File;
use std::io::{BufReader, BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand, ValueEnum};
use edgestate::export::{Family, Format, RecordView};
use edgestate::{Error, Store, Table};

/// Exit code: a failure not covered by another code (I/O, storage).
const EXIT_FAILURE: u8 = 1;
/// Exit code: the store is held open by another process.
const EXIT_IN_USE: u8 = 3;
/// Exit code: the store file, or the record asked for, does not exist.
const EXIT_NOT_FOUND: u8 = 4;
/// Exit code: the file is damaged or is not an edgestate store.
const EXIT_DAMAGED: u8 = 5;
/// Exit code: an import line is bad.
const EXIT_BAD_INPUT: u8 = 6;

#[derive(Parser)]
#[command(
    name = "edgestate",
    version,
    about = "Inspect, check, back up, export and import an edgestate store file",
    after_help = "Exit codes: 0 ok, 1 failure, 2 bad usage, 3 store in use by another process, \
                  4 not found, 5 damaged or not a store, 6 bad import line."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum FormatArg {
    /// edgestate's lossless JSON Lines.
    Jsonl,
    /// DynamoDB JSON items in the loop-agent seed's table layout.
    Dynamodb,
}

impl From<FormatArg> for Format {
    fn from(f: FormatArg) -> Format {
        match f {
            FormatArg::Jsonl => Format::Jsonl,
            FormatArg::Dynamodb => Format::DynamoDb,
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Schema version, file sizes, records per family, expired records awaiting a sweep.
    Info {
        /// The store file.
        store: PathBuf,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// One record as JSON: `get bot.db kv namespace/key`, `get bot.db pending user#seq`.
    Get {
        /// The store file.
        store: PathBuf,
        /// The family: kv, contexts, cards, user_cards, dedup, idempotency, sessions,
        /// locations, pending, pending_seq, snapshots, snapshots_by_tenant, working_memory.
        family: String,
        /// The key: `namespace/key` for kv, `user#seq` for pending, otherwise the id.
        key: String,
        /// Print compact JSON on one line.
        #[arg(long)]
        json: bool,
    },
    /// Records of a family, in key order.
    Ls {
        /// The store file.
        store: PathBuf,
        /// The family (see `get`).
        family: String,
        /// Only keys starting with this.
        #[arg(long, default_value = "")]
        prefix: String,
        /// At most this many records.
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// Print JSON Lines instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Every record of every family as JSON Lines, values decoded.
    Dump {
        /// The store file.
        store: PathBuf,
        /// Write to this file instead of stdout.
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Checks every page checksum and every record; exit code 5 when something is damaged.
    Verify {
        /// The store file.
        store: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Removes every expired record now.
    Sweep {
        /// The store file.
        store: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Rewrites the file to release free space.
    Compact {
        /// The store file.
        store: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Writes a verified copy of the store to a new file; restoring is opening the copy.
    Backup {
        /// The store file.
        store: PathBuf,
        /// Where the copy goes (must not exist).
        dest: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Writes every record in a portable format (stdout by default).
    Export {
        /// The store file.
        store: PathBuf,
        /// The format.
        #[arg(long, value_enum, default_value = "jsonl")]
        format: FormatArg,
        /// Write to this file instead of stdout.
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Reads an export into a store (created if missing), one transaction per 1000 lines.
    Import {
        /// The store file.
        store: PathBuf,
        /// The export to read (`-` for stdin).
        file: PathBuf,
        /// The format.
        #[arg(long, value_enum, default_value = "jsonl")]
        format: FormatArg,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// A failure: the sentence to print and the exit code.
struct Failure {
    code: u8,
    message: String,
}

impl Failure {
    fn new(code: u8, message: impl Into<String>) -> Self {
        Failure {
            code,
            message: message.into(),
        }
    }
}

/// One sentence for an error: its message and its causes, joined.
fn sentence(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}

fn store_failure(path: &Path, e: &Error) -> Failure {
    match e {
        Error::AlreadyOpen { .. } => Failure::new(
            EXIT_IN_USE,
            format!(
                "{} is in use by another process (a running bot?); edgestate allows one process \
                 per file: stop that process and run this again, or have it write a copy with \
                 Store::backup_to and inspect the copy",
                path.display()
            ),
        ),
        Error::NotAStore { .. } | Error::SchemaTooNew { .. } | Error::SchemaTooOld { .. } => {
            Failure::new(EXIT_DAMAGED, sentence(e))
        }
        Error::Corrupt { .. } | Error::Decode { .. } => Failure::new(
            EXIT_DAMAGED,
            format!("{} is damaged: {}", path.display(), sentence(e)),
        ),
        Error::Import { .. } => Failure::new(EXIT_BAD_INPUT, sentence(e)),
        _ => Failure::new(EXIT_FAILURE, sentence(e)),
    }
}

/// Opens an existing store (never creates one).
fn open_existing(path: &Path) -> Result<Store, Failure> {
    if !path.exists() {
        return Err(Failure::new(
            EXIT_NOT_FOUND,
            format!("{} does not exist", path.display()),
        ));
    }
    // A file that is not a store is refused before anything is created beside it.
    Store::open(path).map_err(|e| store_failure(path, &e))
}

fn family(name: &str) -> Result<Family, Failure> {
    Family::from_name(name).ok_or_else(|| {
        let names: Vec<&str> = Family::ALL.iter().map(|f| f.name()).collect();
        Failure::new(
            2,
            format!("unknown family `{name}`; families are {}", names.join(", ")),
        )
    })
}

fn io_failure(what: &Path, e: &std::io::Error) -> Failure {
    Failure::new(EXIT_FAILURE, format!("{}: {e}", what.display()))
}

fn print_json(value: &serde_json::Value, pretty: bool) -> Result<(), Failure> {
    let text = if pretty {
        serde_json::to_string_pretty(value)
    } else {
        serde_json::to_string(value)
    }
    .map_err(|e| Failure::new(EXIT_FAILURE, e.to_string()))?;
    println!("{text}");
    Ok(())
}

/// A progress line on stderr, only when stderr is a terminal.
struct Progress {
    label: &'static str,
    total: Option<u64>,
    enabled: bool,
    last: Option<Instant>,
    shown: bool,
}

impl Progress {
    fn new(label: &'static str, total: Option<u64>) -> Self {
        Progress {
            label,
            total,
            enabled: std::io::stderr().is_terminal(),
            last: None,
            shown: false,
        }
    }

    fn update(&mut self, done: u64) {
        if !self.enabled {
            return;
        }
        let now = Instant::now();
        if self
            .last
            .is_some_and(|t| now.duration_since(t) < Duration::from_millis(100))
        {
            return;
        }
        self.last = Some(now);
        self.shown = true;
        let mut err = std::io::stderr();
        let _ = match self.total {
            Some(total) if total > 0 => {
                let pct = done.saturating_mul(100) / total;
                let filled = usize::try_from(pct.min(100) / 5).unwrap_or(20);
                write!(
                    err,
                    "\r{} [{}{}] {done}/{total}",
                    self.label,
                    "#".repeat(filled),
                    " ".repeat(20 - filled)
                )
            }
            _ => write!(err, "\r{} {done}", self.label),
        };
        let _ = err.flush();
    }

    fn finish(&mut self) {
        if self.shown {
            eprintln!();
        }
    }
}

fn record_total(store: &Store) -> Option<u64> {
    let stats = store.stats().ok()?;
    Some(Family::ALL.iter().map(|f| stats.records(f.table())).sum())
}

/// An output file, or stdout.
fn output(path: Option<&Path>) -> Result<Box<dyn Write>, Failure> {
    Ok(match path {
        Some(p) => Box::new(BufWriter::new(
            File::create(p).map_err(|e| io_failure(p, &e))?,
        )),
        None => Box::new(BufWriter::new(std::io::stdout().lock())),
    })
}

fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

fn expiry_text(view: &RecordView) -> String {
    match view.expires_at_ms {
        None => "-".to_owned(),
        Some(at) if view.expired => format!("{at} (expired)"),
        Some(at) => at.to_string(),
    }
}

fn file_sizes(path: &Path) -> (u64, u64) {
    let Ok(meta) = std::fs::metadata(path) else {
        return (0, 0);
    };
    #[cfg(unix)]
    let allocated = {
        use std::os::unix::fs::MetadataExt;
        meta.blocks().saturating_mul(512)
    };
    #[cfg(not(unix))]
    let allocated = meta.len();
    (meta.len(), allocated)
}

fn info(path: &Path, json: bool) -> Result<(), Failure> {
    let store = open_existing(path)?;
    let fail = |e: Error| store_failure(path, &e);
    let stats = store.stats().map_err(fail)?;
    let expired = store.expired_awaiting_sweep().map_err(fail)?;
    let (size, allocated) = file_sizes(path);
    let mut log = path.as_os_str().to_owned();
    log.push("-wal");
    let (log_size, _) = file_sizes(Path::new(&log));
    let families: Vec<(Family, u64)> = Family::ALL
        .iter()
        .map(|&f| (f, stats.records(f.table())))
        .collect();
    if json {
        let counts: serde_json::Map<String, serde_json::Value> = families
            .iter()
            .map(|(f, n)| (f.name().to_owned(), serde_json::Value::from(*n)))
            .collect();
        return print_json(
            &serde_json::json!({
                "path": path.display().to_string(),
                "schema_version": stats.schema_version,
                "file_size_bytes": size,
                "allocated_bytes": allocated,
                "page_log_bytes": log_size,
                "records": counts,
                "expiry_index_entries": stats.records(Table::Expiry),
                "expired_awaiting_sweep": expired,
                "last_commit_durability": "unknown",
            }),
            true,
        );
    }
    println!("store                   {}", path.display());
    println!("schema version          {}", stats.schema_version);
    println!("file size               {size} bytes ({allocated} allocated)");
    println!("page log                {log_size} bytes");
    println!("expired, not swept      {expired}");
    println!("last commit durability  unknown (not recorded in the file)");
    println!();
    println!("{:<22}{:>12}", "FAMILY", "RECORDS");
    for (f, n) in families {
        println!("{:<22}{n:>12}", f.name());
    }
    Ok(())
}

fn get(path: &Path, family_name: &str, key: &str, json: bool) -> Result<(), Failure> {
    let family = family(family_name)?;
    let store = open_existing(path)?;
    match store
        .inspect_key(family, key)
        .map_err(|e| store_failure(path, &e))?
    {
        Some(view) => {
            let value = serde_json::to_value(&view)
                .map_err(|e| Failure::new(EXIT_FAILURE, e.to_string()))?;
            print_json(&value, !json)
        }
        None => Err(Failure::new(
            EXIT_NOT_FOUND,
            format!("{family} has no record under `{key}`"),
        )),
    }
}

fn ls(
    path: &Path,
    family_name: &str,
    prefix: &str,
    limit: usize,
    json: bool,
) -> Result<(), Failure> {
    let family = family(family_name)?;
    let store = open_existing(path)?;
    let views = store
        .inspect(family, prefix, limit)
        .map_err(|e| store_failure(path, &e))?;
    if json {
        for view in &views {
            let value = serde_json::to_value(view)
                .map_err(|e| Failure::new(EXIT_FAILURE, e.to_string()))?;
            print_json(&value, false)?;
        }
        return Ok(());
    }
    println!(
        "{:<32} {:>8} {:<28} VALUE",
        "KEY", "VERSION", "EXPIRES AT (MS)"
    );
    for view in &views {
        let version = view
            .version
            .map_or_else(|| "-".to_owned(), |v| v.to_string());
        println!(
            "{:<32} {version:>8} {:<28} {}",
            truncate(&view.key, 32),
            expiry_text(view),
            truncate(&view.value.to_string(), 60)
        );
    }
    eprintln!("{} record(s)", views.len());
    Ok(())
}

fn dump(path: &Path, out_path: Option<&Path>) -> Result<(), Failure> {
    let store = open_existing(path)?;
    let mut progress = Progress::new("dump", record_total(&store));
    let mut out = output(out_path)?;
    let result = store.dump(&mut out, &mut |n| progress.update(n));
    progress.finish();
    result.map_err(|e| store_failure(path, &e))?;
    Ok(())
}

fn verify(path: &Path, json: bool) -> Result<(), Failure> {
    let store = open_existing(path)?;
    let intact = store
        .check_integrity()
        .map_err(|e| store_failure(path, &e))?;
    let mut progress = Progress::new("verify", record_total(&store));
    let records = store.dump(&mut std::io::sink(), &mut |n| progress.update(n));
    progress.finish();
    let (records, problem) = match records {
        Ok(n) => (n, None),
        Err(e) => (0, Some(sentence(&e))),
    };
    let problem = match (intact, problem) {
        (_, Some(p)) => Some(p),
        (false, None) => Some("page checksums failed; redb repaired what it could".to_owned()),
        (true, None) => None,
    };
    if json {
        print_json(
            &serde_json::json!({ "ok": problem.is_none(), "records": records, "problem": problem }),
            true,
        )?;
    } else if problem.is_none() {
        println!("{}: intact ({records} records checked)", path.display());
    }
    match problem {
        None => Ok(()),
        Some(p) => Err(Failure::new(
            EXIT_DAMAGED,
            format!("{} is damaged: {p}", path.display()),
        )),
    }
}

fn sweep(path: &Path, json: bool) -> Result<(), Failure> {
    let store = open_existing(path)?;
    let removed = store
        .sweep_all_expired(1000)
        .map_err(|e| store_failure(path, &e))?;
    if json {
        print_json(&serde_json::json!({ "removed": removed }), true)
    } else {
        println!("removed {removed} expired record(s)");
        Ok(())
    }
}

fn compact(path: &Path, json: bool) -> Result<(), Failure> {
    let store = open_existing(path)?;
    let (before, _) = file_sizes(path);
    if !json && std::io::stderr().is_terminal() {
        eprintln!("compacting {} ...", path.display());
    }
    let compacted = store.compact().map_err(|e| store_failure(path, &e))?;
    store.close().map_err(|e| store_failure(path, &e))?;
    let (after, _) = file_sizes(path);
    if json {
        print_json(
            &serde_json::json!({ "compacted": compacted, "bytes_before": before, "bytes_after": after }),
            true,
        )
    } else {
        println!("{}: {before} bytes -> {after} bytes", path.display());
        Ok(())
    }
}

fn backup(path: &Path, dest: &Path, json: bool) -> Result<(), Failure> {
    let store = open_existing(path)?;
    let report = store.backup_to(dest).map_err(|e| store_failure(path, &e))?;
    if json {
        print_json(
            &serde_json::json!({
                "path": report.path.display().to_string(),
                "records": report.records(),
                "bytes": report.bytes,
            }),
            true,
        )
    } else {
        println!(
            "wrote {} ({} records, {} bytes), verified",
            report.path.display(),
            report.records(),
            report.bytes
        );
        Ok(())
    }
}

fn export(path: &Path, format: Format, out_path: Option<&Path>) -> Result<(), Failure> {
    let store = open_existing(path)?;
    let mut progress = Progress::new("export", record_total(&store));
    let mut out = output(out_path)?;
    let result = store.export(format, &mut out, &mut |n| progress.update(n));
    progress.finish();
    let n = result.map_err(|e| store_failure(path, &e))?;
    if out_path.is_some() && std::io::stderr().is_terminal() {
        eprintln!("exported {n} record(s)");
    }
    Ok(())
}

fn import(path: &Path, file: &Path, format: Format, json: bool) -> Result<(), Failure> {
    let mut input: Box<dyn std::io::BufRead> = if file == Path::new("-") {
        Box::new(BufReader::new(std::io::stdin().lock()))
    } else {
        let f = File::open(file).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Failure::new(EXIT_NOT_FOUND, format!("{} does not exist", file.display()))
            } else {
                io_failure(file, &e)
            }
        })?;
        Box::new(BufReader::new(f))
    };
    let store = Store::open(path).map_err(|e| store_failure(path, &e))?;
    let mut progress = Progress::new("import (lines)", None);
    let result = store.import(format, &mut input, &mut |n| progress.update(n));
    progress.finish();
    let report = result.map_err(|e| store_failure(path, &e))?;
    store.close().map_err(|e| store_failure(path, &e))?;
    if json {
        print_json(
            &serde_json::json!({
                "lines": report.lines,
                "records": report.records,
                "batches": report.batches,
            }),
            true,
        )
    } else {
        println!(
            "imported {} record(s) from {} line(s) into {}",
            report.records,
            report.lines,
            path.display()
        );
        Ok(())
    }
}

fn run(cli: Cli) -> Result<(), Failure> {
    match cli.command {
        Command::Info { store, json } => info(&store, json),
        Command::Get {
            store,
            family,
            key,
            json,
        } => get(&store, &family, &key, json),
        Command::Ls {
            store,
            family,
            prefix,
            limit,
            json,
        } => ls(&store, &family, &prefix, limit, json),
        Command::Dump { store, output } => dump(&store, output.as_deref()),
        Command::Verify { store, json } => verify(&store, json),
        Command::Sweep { store, json } => sweep(&store, json),
        Command::Compact { store, json } => compact(&store, json),
        Command::Backup { store, dest, json } => backup(&store, &dest, json),
        Command::Export {
            store,
            format,
            output,
        } => export(&store, format.into(), output.as_deref()),
        Command::Import {
            store,
            file,
            format,
            json,
        } => import(&store, &file, format.into(), json),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("edgestate: {}", failure.message);
            ExitCode::from(failure.code)
        }
    }
}
