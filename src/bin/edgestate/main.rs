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

mod commands;
mod failure;
mod output;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use edgestate::export::Format;

use commands::*;
use failure::Failure;

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
