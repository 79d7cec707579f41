//! Moving data in and out of a store, and looking inside it: lossless export and import
//! ([`Store::export`], [`Store::import`]) in edgestate's JSON Lines format or as
//! DynamoDB JSON items in the seed's table layout ([`Format`]), and records decoded for
//! people ([`Store::inspect`], [`Store::inspect_key`], [`Store::dump`]). The `edgestate`
//! command-line tool is built on these.
//!
//! An export is taken from one read transaction, so it is one committed state, and
//! carries every family exactly: versions, absolute expiry instants, stored bodies, the
//! card reverse index, pending sequence numbers and the tenant index (JSON Lines; the
//! DynamoDB layout rebuilds the card index from the cards). Importing writes records as
//! they are, replacing what their keys hold, and keeps the expiry index exact.
//!
//! ```
//! use edgestate::export::Format;
//! use edgestate::Store;
//!
//! # fn main() -> edgestate::Result<()> {
//! let store = Store::in_memory()?;
//! store.kv().put("bot", "position", b"long", None)?;
//! let mut out = Vec::new();
//! store.export(Format::Jsonl, &mut out, &mut |_| {})?;
//!
//! let copy = Store::in_memory()?;
//! let report = copy.import(Format::Jsonl, &mut out.as_slice(), &mut |_| {})?;
//! assert_eq!(report.records, 1);
//! assert_eq!(copy.kv().get("bot", "position")?.map(|e| e.version), Some(1));
//! # Ok(())
//! # }
//! ```

mod b64;
mod dynamodb;
mod jsonl;
pub(crate) mod raw;
mod view;

use std::io::{BufRead, Write};
use std::path::PathBuf;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::schema::{self, SCHEMA_VERSION};
use crate::Store;
use raw::RawRecord;
pub use view::RecordView;

/// A record family: one kind of item in an edgestate file, as export, import and the
/// CLI name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Family {
    /// Generic key/value records (blobs included), key `namespace/key`.
    Kv,
    /// User contexts, key `user`.
    Contexts,
    /// The card index, key `fingerprint`.
    Cards,
    /// The card reverse index, key `user/fingerprint`.
    UserCards,
    /// Processed transaction ids, key `txn id`.
    Dedup,
    /// Idempotency records, key `key`.
    Idempotency,
    /// Session keys, key `user`.
    Sessions,
    /// The current-merchant cache, key `user`.
    Locations,
    /// Pending captures, key `user#seq`.
    Pending,
    /// The next pending sequence number per user, key `user`.
    PendingSeq,
    /// Execution snapshots, key `execution id`.
    Snapshots,
    /// Execution ids by tenant, key `tenant/execution id`.
    SnapshotsByTenant,
    /// Working memory, key `execution id/key`.
    WorkingMemory,
}

impl Family {
    /// Every family, in export order.
    pub const ALL: [Family; 13] = [
        Family::Kv,
        Family::Contexts,
        Family::Cards,
        Family::UserCards,
        Family::Dedup,
        Family::Idempotency,
        Family::Sessions,
        Family::Locations,
        Family::Pending,
        Family::PendingSeq,
        Family::Snapshots,
        Family::SnapshotsByTenant,
        Family::WorkingMemory,
    ];

    /// Its name (`kv`, `user_cards`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Family::Kv => "kv",
            Family::Contexts => "contexts",
            Family::Cards => "cards",
            Family::UserCards => "user_cards",
            Family::Dedup => "dedup",
            Family::Idempotency => "idempotency",
            Family::Sessions => "sessions",
            Family::Locations => "locations",
            Family::Pending => "pending",
            Family::PendingSeq => "pending_seq",
            Family::Snapshots => "snapshots",
            Family::SnapshotsByTenant => "snapshots_by_tenant",
            Family::WorkingMemory => "working_memory",
        }
    }

    /// The family of a name; the handle names (`location`, `memory`) are accepted too.
    pub fn from_name(name: &str) -> Option<Family> {
        match name {
            "location" => Some(Family::Locations),
            "memory" => Some(Family::WorkingMemory),
            _ => Family::ALL.into_iter().find(|f| f.name() == name),
        }
    }

    /// What its keys look like (`namespace/key`, `user#seq`, ...).
    pub fn key_shape(self) -> &'static str {
        match self {
            Family::Kv => "[namespace, key]",
            Family::Contexts | Family::Sessions | Family::Locations | Family::PendingSeq => {
                "[user]"
            }
            Family::Cards => "[fingerprint]",
            Family::UserCards => "[user, fingerprint]",
            Family::Dedup => "[txn id]",
            Family::Idempotency => "[key]",
            Family::Pending => "[user, seq]",
            Family::Snapshots => "[execution id]",
            Family::SnapshotsByTenant => "[tenant, execution id]",
            Family::WorkingMemory => "[execution id, key]",
        }
    }

    /// The table it lives in.
    pub fn table(self) -> schema::Table {
        use schema::Table;
        match self {
            Family::Kv => Table::Kv,
            Family::Contexts => Table::Contexts,
            Family::Cards => Table::Cards,
            Family::UserCards => Table::UserCards,
            Family::Dedup => Table::Dedup,
            Family::Idempotency => Table::Idempotency,
            Family::Sessions => Table::Sessions,
            Family::Locations => Table::Locations,
            Family::Pending => Table::Pending,
            Family::PendingSeq => Table::PendingSeq,
            Family::Snapshots => Table::Snapshots,
            Family::SnapshotsByTenant => Table::SnapshotsByTenant,
            Family::WorkingMemory => Table::WorkingMemory,
        }
    }

    fn table_name(self) -> &'static str {
        self.table().name()
    }
}

impl std::fmt::Display for Family {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// An export and import format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Format {
    /// edgestate's JSON Lines: a header line, then one line per stored item with its
    /// version, absolute expiry, format and body (base64), carried byte for byte.
    #[default]
    Jsonl,
    /// DynamoDB JSON items (`{"Item": {...}}` per line) in the seed's single-table
    /// layout: `pk`/`sk` keys, `ttl` in Unix seconds. Seed items import as edgestate
    /// records; the families the seed did not have travel as `EDGESTATE#<family>` items.
    DynamoDb,
}

/// One write an import line stands for.
pub(crate) enum Op {
    Put(RawRecord),
    /// Raise a user's next pending sequence number to at least this.
    RaiseSeq(String, u64),
}

/// What [`Store::import`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct ImportReport {
    /// Input lines read (blank lines and the header included).
    pub lines: u64,
    /// Stored items written.
    pub records: u64,
    /// Transactions committed.
    pub batches: u64,
}

/// Lines per import transaction.
pub const IMPORT_BATCH: usize = 1000;

fn output_error(source: std::io::Error) -> Error {
    Error::Io {
        path: PathBuf::from("<export output>"),
        source,
    }
}

/// Lines written to a caller's writer, counted, with the caller's progress callback
/// told every 1000 and at the end. The writer and the callback are the caller's code:
/// a panic in them is theirs, not taken for damaged storage.
struct Lines<'a> {
    out: &'a mut dyn Write,
    progress: &'a mut dyn FnMut(u64),
    count: u64,
}

impl<'a> Lines<'a> {
    fn new(out: &'a mut dyn Write, progress: &'a mut dyn FnMut(u64)) -> Self {
        Lines {
            out,
            progress,
            count: 0,
        }
    }

    /// Writes one line; `counted` lines are items (a header is not).
    fn write(&mut self, line: &str, counted: bool) -> Result<()> {
        crate::txn::caller_code(|| writeln!(self.out, "{line}")).map_err(output_error)?;
        if counted {
            self.count += 1;
            if self.count.is_multiple_of(1000) {
                let count = self.count;
                crate::txn::caller_code(|| (self.progress)(count));
            }
        }
        Ok(())
    }

    /// Flushes the writer and reports the final count.
    fn finish(self) -> Result<u64> {
        self.out.flush().map_err(output_error)?;
        (self.progress)(self.count);
        Ok(self.count)
    }
}

fn input_error(source: std::io::Error) -> Error {
    Error::Io {
        path: PathBuf::from("<import input>"),
        source,
    }
}

/// Refuses a record whose body is not of its family's type (or not the JSON its format
/// says), so that an import never stores what the typed handles cannot read.
fn check_body(rec: &RawRecord) -> Result<()> {
    if let raw::Body::Record {
        format, payload, ..
    } = &rec.body
    {
        view::decode_body(rec.family, &rec.shown_key(), *format, payload)?;
    }
    Ok(())
}

impl Store {
    /// Writes every stored item of every family to `out`, from one snapshot, in
    /// `format`; calls `progress` with the number of items written so far (every 1000
    /// and at the end). Returns the number of items written.
    ///
    /// # Errors
    /// [`Error::Io`] when writing fails; [`Error::Corrupt`] for a damaged record;
    /// [`Error::Decode`] when a DynamoDB export meets a body that is not its family's
    /// type; [`Error::Closed`] and storage errors.
    pub fn export(
        &self,
        format: Format,
        out: &mut dyn Write,
        progress: &mut dyn FnMut(u64),
    ) -> Result<u64> {
        let mut lines = Lines::new(out, progress);
        self.read(|tx| {
            tx.contain(|| {
                if format == Format::Jsonl {
                    let header = jsonl::Header {
                        edgestate_export: jsonl::FORMAT_VERSION,
                        schema_version: SCHEMA_VERSION,
                    };
                    let text = serde_json::to_string(&header).map_err(|e| Error::Encode {
                        what: "export header",
                        reason: e.to_string(),
                    })?;
                    lines.write(&text, false)?;
                }
                for family in Family::ALL {
                    raw::for_each(tx.raw(), family, &mut |rec| {
                        let line = match format {
                            Format::Jsonl => Some(jsonl::to_line(&rec)?),
                            Format::DynamoDb => {
                                dynamodb::to_item(&rec)?.map(|item| item.to_string())
                            }
                        };
                        match line {
                            Some(line) => lines.write(&line, true),
                            None => Ok(()),
                        }
                    })?;
                }
                Ok::<_, Error>(())
            })
        })?;
        lines.finish()
    }

    /// Reads `input` in `format` and stores every item as it is, replacing what its key
    /// holds, [`IMPORT_BATCH`] lines per transaction; calls `progress` with the number of
    /// lines read after each batch.
    ///
    /// A line that does not parse, or whose record cannot be stored, fails the import
    /// with [`Error::Import`] naming the line: nothing of that line's batch is written
    /// (the batches before it stay committed, and the report of the error says how many
    /// lines that is).
    ///
    /// # Errors
    /// [`Error::Import`] for a bad line; [`Error::Io`] when reading fails;
    /// [`Error::Closed`], commit and storage errors.
    pub fn import(
        &self,
        format: Format,
        input: &mut dyn BufRead,
        progress: &mut dyn FnMut(u64),
    ) -> Result<ImportReport> {
        let mut report = ImportReport::default();
        let mut batch: Vec<(u64, Op)> = Vec::new();
        let mut batch_lines = 0usize;
        let mut text = String::new();
        loop {
            text.clear();
            let read = input.read_line(&mut text).map_err(input_error)?;
            if read > 0 {
                report.lines += 1;
                let line_no = report.lines;
                let trimmed = text.trim();
                if !trimmed.is_empty() {
                    let bad = |reason: String| Error::Import {
                        line: line_no,
                        committed_lines: report.lines - 1 - batch_lines as u64,
                        reason,
                    };
                    match format {
                        Format::Jsonl => match jsonl::parse_line(trimmed).map_err(bad)? {
                            jsonl::Parsed::Header(h) => {
                                if h.edgestate_export != jsonl::FORMAT_VERSION
                                    || h.schema_version > SCHEMA_VERSION
                                {
                                    return Err(bad(format!(
                                        "export format {} of schema {}; this build reads format {} up to schema {}",
                                        h.edgestate_export,
                                        h.schema_version,
                                        jsonl::FORMAT_VERSION,
                                        SCHEMA_VERSION
                                    )));
                                }
                            }
                            jsonl::Parsed::Record(rec) => batch.push((line_no, Op::Put(rec))),
                        },
                        Format::DynamoDb => {
                            for op in dynamodb::parse_line(trimmed).map_err(bad)? {
                                batch.push((line_no, op));
                            }
                        }
                    }
                }
                batch_lines += 1;
            }
            if (read == 0 && batch_lines > 0) || batch_lines >= IMPORT_BATCH {
                let committed_lines = report.lines - batch_lines as u64;
                let written = self.transaction(|tx| {
                    let mut written = 0u64;
                    for (line, op) in &batch {
                        let applied = match op {
                            Op::Put(rec) => {
                                check_body(rec).and_then(|()| raw::put(tx, rec)).map(|()| 1)
                            }
                            Op::RaiseSeq(user, next) => {
                                raw::raise_next_seq(tx, user, *next).map(|()| 0)
                            }
                        };
                        written += applied.map_err(|e| match e {
                            Error::InvalidInput { .. }
                            | Error::Decode { .. }
                            | Error::Encode { .. } => Error::Import {
                                line: *line,
                                committed_lines,
                                reason: e.to_string(),
                            },
                            other => other,
                        })?;
                    }
                    Ok(written)
                })?;
                report.records += written;
                report.batches += 1;
                batch.clear();
                batch_lines = 0;
                progress(report.lines);
            }
            if read == 0 {
                return Ok(report);
            }
        }
    }

    /// Items of `family` whose shown key starts with `prefix`, at most `limit`, decoded
    /// (expired records included, marked `expired`).
    ///
    /// # Errors
    /// [`Error::Corrupt`] or [`Error::Decode`] for a damaged record; [`Error::Closed`] and
    /// storage errors.
    pub fn inspect(&self, family: Family, prefix: &str, limit: usize) -> Result<Vec<RecordView>> {
        self.read(|tx| {
            tx.contain(|| {
                let mut out = Vec::new();
                let now = tx.now_ms();
                raw::for_each(tx.raw(), family, &mut |rec| {
                    if out.len() < limit && rec.shown_key().starts_with(prefix) {
                        out.push(RecordView::from_raw(&rec, now)?);
                    }
                    Ok(())
                })?;
                Ok(out)
            })
        })
    }

    /// The item of `family` under `key` as [`RecordView::key`] shows it (`namespace/key`,
    /// `user#seq`, `user`), decoded; `None` if there is none.
    ///
    /// # Errors
    /// As [`inspect`](Store::inspect).
    pub fn inspect_key(&self, family: Family, key: &str) -> Result<Option<RecordView>> {
        self.read(|tx| {
            tx.contain(|| {
                let now = tx.now_ms();
                let mut found = None;
                raw::for_each(tx.raw(), family, &mut |rec| {
                    if found.is_none() && rec.shown_key() == key {
                        found = Some(RecordView::from_raw(&rec, now)?);
                    }
                    Ok(())
                })?;
                Ok(found)
            })
        })
    }

    /// Writes every item of every family to `out` as JSON Lines of [`RecordView`]s
    /// (values decoded for reading; [`Store::export`] is the lossless format). Returns
    /// the number of lines.
    ///
    /// # Errors
    /// As [`export`](Store::export).
    pub fn dump(&self, out: &mut dyn Write, progress: &mut dyn FnMut(u64)) -> Result<u64> {
        let mut lines = Lines::new(out, progress);
        self.read(|tx| {
            tx.contain(|| {
                let now = tx.now_ms();
                for family in Family::ALL {
                    raw::for_each(tx.raw(), family, &mut |rec| {
                        let view = RecordView::from_raw(&rec, now)?;
                        let text = serde_json::to_string(&view).map_err(|e| Error::Encode {
                            what: "dump line",
                            reason: e.to_string(),
                        })?;
                        lines.write(&text, true)
                    })?;
                }
                Ok::<_, Error>(())
            })
        })?;
        lines.finish()
    }

    /// Records whose expiry has passed (by the store's clock) and that no sweep has
    /// removed yet: invisible to reads, still taking space.
    ///
    /// # Errors
    /// [`Error::Closed`] and storage errors.
    pub fn expired_awaiting_sweep(&self) -> Result<u64> {
        self.read(|tx| tx.contain(|| raw::expired_awaiting_sweep(tx.raw(), tx.now_ms())))
    }
}
