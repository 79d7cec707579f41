//! Every redb table of an edgestate file, the schema version, and the meta table.
//! Only this module names tables.

use redb::{
    MultimapTableDefinition, MultimapTableHandle, ReadableDatabase, ReadableTableMetadata,
    TableDefinition, TableHandle,
};

use crate::codec::keys::KeyShape;
use crate::error::{Error, Result};

/// The schema version this build writes.
///
/// - 1: the first layout.
/// - 2: JSON-valued fields of postcard bodies (a context's `agent_memory`, a snapshot's
///   `step_outputs` and `variables`) are stored as binary trees, read without parsing
///   text (record format 4). Opening a schema-1 file moves its version to 2 and nothing
///   else: its records (format 2) stay readable and are rewritten in the new form when
///   they are next written. Older builds then refuse the file rather than misread it.
/// - 3: every record's checksum also covers its table and key (envelope flag bit 1), so
///   a damaged key or a b-tree pointer into the wrong table reads as
///   [`Error::Corrupt`](crate::Error::Corrupt), not as another record. Opening a
///   schema-1 or -2 file moves its version to 3 and nothing else; its records are read
///   as they are and bound when next written. Older builds refuse the file (their
///   envelope decoder would report every bound record as damaged).
pub const SCHEMA_VERSION: u32 = 3;
/// The oldest schema version this build can open (migrating it on open).
pub const OLDEST_SUPPORTED_SCHEMA: u32 = 1;

/// Store-wide facts: schema version, creation time, creating crate version.
pub(crate) const META: TableDefinition<&str, &[u8]> = TableDefinition::new("edgestate.meta");
/// Generic namespaced key/value records: `(namespace, key) -> envelope`.
pub(crate) const KV: RecordTable<(&str, &str)> =
    RecordTable::new("edgestate.kv", Some(TtlTable::Kv));
/// Expiry index, ordered by time: `(expires_at_ms, table tag, packed key) -> ()`.
pub(crate) const EXPIRY: TableDefinition<(u64, u8, &[u8]), ()> =
    TableDefinition::new("edgestate.expiry");
/// User contexts: `user -> envelope(UserContext)`.
pub(crate) const CONTEXTS: RecordTable<&str> = RecordTable::new("edgestate.contexts", None);
/// Card index, unique: `fingerprint -> envelope(CardMapping)`.
pub(crate) const CARDS: RecordTable<&str> = RecordTable::new("edgestate.cards", None);
/// Reverse card index: `user -> {fingerprint}`.
pub(crate) const USER_CARDS: MultimapTableDefinition<&str, &str> =
    MultimapTableDefinition::new("edgestate.user_cards");
/// Processed transaction ids: `txn id -> envelope(claim)`.
pub(crate) const DEDUP: RecordTable<&str> =
    RecordTable::new("edgestate.dedup", Some(TtlTable::Dedup));
/// Idempotency records with leases: `key -> envelope(record)`.
pub(crate) const IDEMPOTENCY: RecordTable<&str> =
    RecordTable::new("edgestate.idempotency", Some(TtlTable::Idempotency));
/// Session keys: `user -> envelope(session)`.
pub(crate) const SESSIONS: RecordTable<&str> =
    RecordTable::new("edgestate.sessions", Some(TtlTable::Sessions));
/// Current-merchant location cache: `user -> envelope(location)`.
pub(crate) const LOCATIONS: RecordTable<&str> =
    RecordTable::new("edgestate.locations", Some(TtlTable::Locations));
/// Pending captures ring buffers: `(user, seq) -> envelope(capture)`.
pub(crate) const PENDING: RecordTable<(&str, u64)> =
    RecordTable::new("edgestate.pending", Some(TtlTable::Pending));
/// Next pending sequence number per user: `user -> next seq`.
pub(crate) const PENDING_SEQ: TableDefinition<&str, u64> =
    TableDefinition::new("edgestate.pending_seq");
/// Execution snapshots: `execution id -> envelope(snapshot)`.
pub(crate) const SNAPSHOTS: RecordTable<&str> = RecordTable::new("edgestate.snapshots", None);
/// Snapshots by tenant: `tenant -> {execution id}`.
pub(crate) const SNAPSHOTS_BY_TENANT: MultimapTableDefinition<&str, &str> =
    MultimapTableDefinition::new("edgestate.snapshots_by_tenant");
/// Working memory per execution: `(execution id, key) -> envelope(bytes)`.
pub(crate) const WORKING_MEMORY: RecordTable<(&str, &str)> =
    RecordTable::new("edgestate.working_memory", Some(TtlTable::WorkingMemory));

/// A table of enveloped records: its redb definition, its name, and whether (and under
/// which tag) its records may carry a TTL. How its keys are shown and packed follows
/// from the key shape ([`KeyShape`]). The record layer takes one of these instead of a
/// bundle of per-table helpers.
pub(crate) struct RecordTable<K: KeyShape> {
    /// The redb table.
    pub(crate) def: TableDefinition<'static, K, &'static [u8]>,
    /// Its name in the file, as errors show it.
    pub(crate) name: &'static str,
    /// The expiry-index tag, for tables whose records may expire.
    pub(crate) ttl: Option<TtlTable>,
}

impl<K: KeyShape> RecordTable<K> {
    const fn new(name: &'static str, ttl: Option<TtlTable>) -> Self {
        RecordTable {
            def: TableDefinition::new(name),
            name,
            ttl,
        }
    }
}

impl<K: KeyShape> Clone for RecordTable<K> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<K: KeyShape> Copy for RecordTable<K> {}

/// Tables whose records may carry a TTL. The tag is stored in the expiry index, so the
/// numbers are part of the file format and never change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum TtlTable {
    /// [`KV`], key packed as (namespace, key).
    Kv = 1,
    /// [`DEDUP`], key packed as (txn id).
    Dedup = 2,
    /// [`IDEMPOTENCY`], key packed as (key).
    Idempotency = 3,
    /// [`SESSIONS`], key packed as (user).
    Sessions = 4,
    /// [`LOCATIONS`], key packed as (user).
    Locations = 5,
    /// [`PENDING`], key packed as (user, seq big-endian).
    Pending = 6,
    /// [`WORKING_MEMORY`], key packed as (execution id, key).
    WorkingMemory = 7,
}

impl TtlTable {
    /// The tag stored in the expiry index.
    pub(crate) fn tag(self) -> u8 {
        self as u8
    }

    /// The table for a stored tag, if the tag is known.
    pub(crate) fn from_tag(tag: u8) -> Option<Self> {
        Some(match tag {
            1 => TtlTable::Kv,
            2 => TtlTable::Dedup,
            3 => TtlTable::Idempotency,
            4 => TtlTable::Sessions,
            5 => TtlTable::Locations,
            6 => TtlTable::Pending,
            7 => TtlTable::WorkingMemory,
            _ => return None,
        })
    }
}

const META_SCHEMA_VERSION: &str = "schema_version";
const META_CREATED_AT_MS: &str = "created_at_ms";
const META_CREATED_BY: &str = "created_by";

fn table_error(path: &std::path::Path, e: redb::TableError) -> Error {
    match e {
        redb::TableError::TableTypeMismatch { .. }
        | redb::TableError::TableIsMultimap(_)
        | redb::TableError::TableIsNotMultimap(_)
        | redb::TableError::TypeDefinitionChanged { .. } => Error::NotAStore {
            path: path.to_owned(),
            reason: format!("a table has another layout than edgestate's: {e}"),
        },
        other => Error::from(other),
    }
}

/// Creates every table that is missing and records the schema version; refuses files of
/// a newer schema or of another application. Runs in one durable write transaction, and
/// only when something is missing.
pub(crate) fn ensure(db: &redb::Database, path: &std::path::Path, now_ms: u64) -> Result<()> {
    let found = {
        let read = db.begin_read()?;
        let names: Vec<String> = read.list_tables()?.map(|t| t.name().to_owned()).collect();
        let multimaps: Vec<String> = read
            .list_multimap_tables()?
            .map(|t| t.name().to_owned())
            .collect();
        let has_meta = names.iter().any(|n| n == META.name());
        if !has_meta && (!names.is_empty() || !multimaps.is_empty()) {
            return Err(Error::NotAStore {
                path: path.to_owned(),
                reason:
                    "a redb file without edgestate's meta table (another application's database?)"
                        .into(),
            });
        }
        let version = if has_meta {
            let meta = read.open_table(META).map_err(|e| table_error(path, e))?;
            let raw = meta.get(META_SCHEMA_VERSION)?.map(|g| g.value().to_vec());
            match raw.as_deref().map(<[u8; 4]>::try_from) {
                Some(Ok(bytes)) => Some(u32::from_le_bytes(bytes)),
                Some(Err(_)) | None => {
                    return Err(Error::NotAStore {
                        path: path.to_owned(),
                        reason: "meta table without a readable schema version".into(),
                    })
                }
            }
        } else {
            None
        };
        if let Some(v) = version {
            if v > SCHEMA_VERSION {
                return Err(Error::SchemaTooNew {
                    found: v,
                    supported: SCHEMA_VERSION,
                });
            }
            if v < OLDEST_SUPPORTED_SCHEMA {
                return Err(Error::SchemaTooOld {
                    found: v,
                    oldest: OLDEST_SUPPORTED_SCHEMA,
                });
            }
        }
        let all_present = ALL_TABLES.iter().all(|t| names.iter().any(|n| n == t))
            && ALL_MULTIMAP_TABLES
                .iter()
                .all(|t| multimaps.iter().any(|n| n == t));
        if version == Some(SCHEMA_VERSION) && all_present {
            // Check the layouts anyway: a same-named table of another type is a foreign file.
            verify_layouts(&read, path)?;
            return Ok(());
        }
        version
    };

    let mut tx = db.begin_write()?;
    tx.set_durability(redb::Durability::Immediate)?;
    {
        let mut meta = tx.open_table(META).map_err(|e| table_error(path, e))?;
        if found.is_none() {
            meta.insert(META_CREATED_AT_MS, now_ms.to_le_bytes().as_slice())?;
            meta.insert(
                META_CREATED_BY,
                concat!("edgestate ", env!("CARGO_PKG_VERSION")).as_bytes(),
            )?;
        }
        // Migrations from older schema versions go here, inside this transaction. 1 -> 2
        // and 2 -> 3 need none: older records are read as they are (see SCHEMA_VERSION).
        meta.insert(META_SCHEMA_VERSION, SCHEMA_VERSION.to_le_bytes().as_slice())?;
    }
    open_all_for_write(&tx, path)?;
    tx.commit()
        .map_err(|e| Error::CommitOutcomeUnknown(e.into()))?;
    Ok(())
}

/// Every table of the schema, by name (for stats and checks).
pub(crate) const ALL_TABLES: [&str; 13] = [
    "edgestate.meta",
    "edgestate.kv",
    "edgestate.expiry",
    "edgestate.contexts",
    "edgestate.cards",
    "edgestate.dedup",
    "edgestate.idempotency",
    "edgestate.sessions",
    "edgestate.locations",
    "edgestate.pending",
    "edgestate.pending_seq",
    "edgestate.snapshots",
    "edgestate.working_memory",
];

/// Every multimap table of the schema, by name.
pub(crate) const ALL_MULTIMAP_TABLES: [&str; 2] =
    ["edgestate.user_cards", "edgestate.snapshots_by_tenant"];

fn open_all_for_write(tx: &redb::WriteTransaction, path: &std::path::Path) -> Result<()> {
    let e = |e| table_error(path, e);
    tx.open_table(KV.def).map_err(e)?;
    tx.open_table(EXPIRY).map_err(e)?;
    tx.open_table(CONTEXTS.def).map_err(e)?;
    tx.open_table(CARDS.def).map_err(e)?;
    tx.open_multimap_table(USER_CARDS).map_err(e)?;
    tx.open_table(DEDUP.def).map_err(e)?;
    tx.open_table(IDEMPOTENCY.def).map_err(e)?;
    tx.open_table(SESSIONS.def).map_err(e)?;
    tx.open_table(LOCATIONS.def).map_err(e)?;
    tx.open_table(PENDING.def).map_err(e)?;
    tx.open_table(PENDING_SEQ).map_err(e)?;
    tx.open_table(SNAPSHOTS.def).map_err(e)?;
    tx.open_multimap_table(SNAPSHOTS_BY_TENANT).map_err(e)?;
    tx.open_table(WORKING_MEMORY.def).map_err(e)?;
    Ok(())
}

fn verify_layouts(read: &redb::ReadTransaction, path: &std::path::Path) -> Result<()> {
    let e = |e| table_error(path, e);
    read.open_table(KV.def).map_err(e)?;
    read.open_table(EXPIRY).map_err(e)?;
    read.open_table(CONTEXTS.def).map_err(e)?;
    read.open_table(CARDS.def).map_err(e)?;
    read.open_multimap_table(USER_CARDS).map_err(e)?;
    read.open_table(DEDUP.def).map_err(e)?;
    read.open_table(IDEMPOTENCY.def).map_err(e)?;
    read.open_table(SESSIONS.def).map_err(e)?;
    read.open_table(LOCATIONS.def).map_err(e)?;
    read.open_table(PENDING.def).map_err(e)?;
    read.open_table(PENDING_SEQ).map_err(e)?;
    read.open_table(SNAPSHOTS.def).map_err(e)?;
    read.open_multimap_table(SNAPSHOTS_BY_TENANT).map_err(e)?;
    read.open_table(WORKING_MEMORY.def).map_err(e)?;
    Ok(())
}

/// Every table of an edgestate file, as [`crate::Store::stats`] reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Table {
    /// Store-wide facts: schema version, creation time.
    Meta,
    /// Generic key/value records.
    Kv,
    /// The expiry index: one entry per record that has a TTL.
    Expiry,
    /// User contexts.
    Contexts,
    /// The card index, fingerprint to user.
    Cards,
    /// The reverse card index, user to fingerprints.
    UserCards,
    /// Processed transaction ids.
    Dedup,
    /// Idempotency records.
    Idempotency,
    /// Session keys.
    Sessions,
    /// The current-merchant location cache.
    Locations,
    /// Pending captures.
    Pending,
    /// The next pending sequence number per user.
    PendingSeq,
    /// Execution snapshots.
    Snapshots,
    /// Execution ids by tenant.
    SnapshotsByTenant,
    /// Working memory per execution.
    WorkingMemory,
}

impl Table {
    /// Every table, in the order [`crate::StoreStats`] lists them.
    pub const ALL: [Table; 15] = [
        Table::Meta,
        Table::Kv,
        Table::Expiry,
        Table::Contexts,
        Table::Cards,
        Table::UserCards,
        Table::Dedup,
        Table::Idempotency,
        Table::Sessions,
        Table::Locations,
        Table::Pending,
        Table::PendingSeq,
        Table::Snapshots,
        Table::SnapshotsByTenant,
        Table::WorkingMemory,
    ];

    /// The table with this name in the file, if it is one of edgestate's.
    pub fn from_name(name: &str) -> Option<Table> {
        Table::ALL.into_iter().find(|t| t.name() == name)
    }

    /// The table's name in the file (`"edgestate.kv"`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Table::Meta => "edgestate.meta",
            Table::Kv => KV.name,
            Table::Expiry => "edgestate.expiry",
            Table::Contexts => CONTEXTS.name,
            Table::Cards => CARDS.name,
            Table::UserCards => "edgestate.user_cards",
            Table::Dedup => DEDUP.name,
            Table::Idempotency => IDEMPOTENCY.name,
            Table::Sessions => SESSIONS.name,
            Table::Locations => LOCATIONS.name,
            Table::Pending => PENDING.name,
            Table::PendingSeq => "edgestate.pending_seq",
            Table::Snapshots => SNAPSHOTS.name,
            Table::SnapshotsByTenant => "edgestate.snapshots_by_tenant",
            Table::WorkingMemory => WORKING_MEMORY.name,
        }
    }
}

impl std::fmt::Display for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Record counts per table, for [`crate::StoreStats`].
pub(crate) fn table_counts(read: &redb::ReadTransaction) -> Result<Vec<(Table, u64)>> {
    Table::ALL
        .iter()
        .map(|&table| {
            let count = match table {
                Table::Meta => read.open_table(META)?.len()?,
                Table::Kv => read.open_table(KV.def)?.len()?,
                Table::Expiry => read.open_table(EXPIRY)?.len()?,
                Table::Contexts => read.open_table(CONTEXTS.def)?.len()?,
                Table::Cards => read.open_table(CARDS.def)?.len()?,
                Table::UserCards => read.open_multimap_table(USER_CARDS)?.len()?,
                Table::Dedup => read.open_table(DEDUP.def)?.len()?,
                Table::Idempotency => read.open_table(IDEMPOTENCY.def)?.len()?,
                Table::Sessions => read.open_table(SESSIONS.def)?.len()?,
                Table::Locations => read.open_table(LOCATIONS.def)?.len()?,
                Table::Pending => read.open_table(PENDING.def)?.len()?,
                Table::PendingSeq => read.open_table(PENDING_SEQ)?.len()?,
                Table::Snapshots => read.open_table(SNAPSHOTS.def)?.len()?,
                Table::SnapshotsByTenant => read.open_multimap_table(SNAPSHOTS_BY_TENANT)?.len()?,
                Table::WorkingMemory => read.open_table(WORKING_MEMORY.def)?.len()?,
            };
            Ok((table, count))
        })
        .collect()
}

/// Reads the schema version recorded in the file.
pub(crate) fn stored_schema_version(read: &redb::ReadTransaction) -> Result<Option<u32>> {
    let meta = read.open_table(META)?;
    let raw = meta.get(META_SCHEMA_VERSION)?;
    Ok(raw.and_then(|g| <[u8; 4]>::try_from(g.value()).ok().map(u32::from_le_bytes)))
}

#[allow(unused_imports)]
use ReadableDatabase as _;
