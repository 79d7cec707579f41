//! Side-by-side peer benchmark: one workload on edgestate (`Immediate` and `Relaxed`),
//! SQLite (rusqlite with bundled SQLite, WAL, `synchronous=FULL` / `NORMAL`) and raw redb
//! tables, printed as one markdown table with edgestate/SQLite and edgestate/redb ratios
//! from the same run.
//!
//! ```sh
//! cargo bench --bench peers                             # default run, about 2-3 minutes
//! EDGESTATE_PEERS_QUICK=1 cargo bench --bench peers     # smoke run, about 20 seconds
//! EDGESTATE_PEERS_SCALE=0.5 cargo bench --bench peers   # scales every time budget
//! EDGESTATE_PEERS_DIR=/path cargo bench --bench peers   # where the files go (default: temp dir)
//! EDGESTATE_PEERS_QUICK_REPAIR=1 cargo bench --bench peers  # edgestate with quick_repair(true)
//! ```
//!
//! Data (the same for every store): 10k users, 15k cards (half the users have two), a
//! ~1 KiB `UserContext` per user (with `agent_memory` JSON), 10 pending captures per user.
//! Each store is used the way a user of its public API would write the code:
//! - edgestate: `store.contexts()`, `store.cards()`, `store.process_webhook`,
//!   `store.write_with(Durability::Relaxed, ..)`, `store.sweep_expired`.
//! - SQLite: one connection behind a `Mutex`, prepared cached statements, JSON bodies
//!   (serde_json of the same edgestate types), `BEGIN IMMEDIATE` transactions.
//! - raw redb: hand-written tables of the same shape, postcard bodies, native tuple keys
//!   and values, `Durability::Immediate` (durable) or `Durability::None` (relaxed).
//!
//! Latencies are measured around each call; the files live in one temporary directory
//! (one filesystem) and are warm in the OS page cache.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Barrier, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use edgestate::{
    CardMapping, Clock, ContextEvent, Durability, PaymentWebhook, PendingCapture, PendingLocation,
    Store, UserContext, WebhookOutcome,
};
use redb::{
    MultimapTableDefinition, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction,
};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

const DAY_MS: u64 = 24 * 60 * 60 * 1000;
/// The store defaults edgestate applies; the peers use the same numbers.
const PENDING_CAPACITY: u64 = 10;
const MAX_RECENT_EVENTS: usize = 10;
const DEDUP_TTL_MS: u64 = 30 * DAY_MS;
const PENDING_TTL_MS: u64 = 21 * DAY_MS;
/// Users per transaction while loading.
const LOAD_CHUNK: usize = 500;
const CAPTURE_EVENT: &str = "capture_pending";

fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn secs(ms: u64) -> i64 {
    i64::try_from(ms / 1000).unwrap_or(i64::MAX)
}

fn sql_int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

// ---------------------------------------------------------------------------------------
// Settings and data
// ---------------------------------------------------------------------------------------

struct Settings {
    users: usize,
    /// Multiplies every time budget.
    scale: f64,
    sweep_records: usize,
    sweep_batch: usize,
    threads: usize,
    base_dir: PathBuf,
    quick: bool,
}

impl Settings {
    fn from_env() -> Res<Self> {
        let quick = std::env::var("EDGESTATE_PEERS_QUICK").is_ok_and(|v| v != "0" && !v.is_empty());
        let mut scale = if quick { 0.15 } else { 1.0 };
        if let Ok(s) = std::env::var("EDGESTATE_PEERS_SCALE") {
            scale *= s
                .parse::<f64>()
                .map_err(|e| format!("EDGESTATE_PEERS_SCALE={s}: {e}"))?;
        }
        let base_dir = std::env::var_os("EDGESTATE_PEERS_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(std::env::temp_dir);
        Ok(Settings {
            users: 10_000,
            scale,
            sweep_records: if quick { 10_000 } else { 50_000 },
            sweep_batch: 500,
            threads: 16,
            base_dir,
            quick,
        })
    }

    fn budget(&self, base_secs: f64) -> Duration {
        Duration::from_secs_f64((base_secs * self.scale).max(0.05))
    }
}

/// splitmix64: the same sequence for every store.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n.max(1) as u64).unwrap_or(0)
    }
}

struct Card {
    fingerprint: String,
    user: usize,
    last4: String,
}

struct Dataset {
    users: Vec<String>,
    cards: Vec<Card>,
    /// Per user, the indexes of its cards in `cards`.
    user_cards: Vec<Vec<usize>>,
}

impl Dataset {
    fn new(users: usize) -> Self {
        let names: Vec<String> = (0..users).map(|i| format!("user-{i:05}")).collect();
        let mut cards = Vec::new();
        let mut user_cards = vec![Vec::new(); users];
        for (u, owned) in user_cards.iter_mut().enumerate() {
            let count = if u < users / 2 { 2 } else { 1 };
            for k in 0..count {
                owned.push(cards.len());
                cards.push(Card {
                    fingerprint: format!("fp-{u:05}-{k}"),
                    user: u,
                    last4: format!("{:04}", (u * 7 + k * 13) % 10_000),
                });
            }
        }
        Dataset {
            users: names,
            cards,
            user_cards,
        }
    }

    fn cards_of(&self, u: usize) -> impl Iterator<Item = &Card> {
        self.user_cards[u].iter().map(|&c| &self.cards[c])
    }
}

/// The user's context as first stored: about 1 KiB of postcard (more as JSON), with
/// recent events and free-form `agent_memory`. `version` 0 (not stored yet).
fn initial_context(user: &str, u: usize, now_ms: u64) -> UserContext {
    let now_s = secs(now_ms);
    let mut ctx = UserContext::new(user, now_ms);
    ctx.vault.cred_balance = 1_000_000_000 + u as u64 * 17;
    ctx.vault.oxo_balance = 50_000 + u as u64;
    ctx.vault.total_staked = 250_000_000;
    ctx.vault.pending_yield = 1_234_567;
    ctx.vault.active_positions = 3;
    ctx.vault.snapshot_at_s = now_s - 3_600;
    for k in 0..4 {
        ctx.recent_events.push(
            ContextEvent::new(
                CAPTURE_EVENT,
                now_s - 86_400 * (k + 1),
                format!(
                    "{} cents at Corner Cafe on Market Street (txn seed-{u:05}-{k})",
                    450 + k * 25
                ),
            )
            .with_amount(450 + k as u64 * 25),
        );
    }
    let memory = serde_json::json!({
        "goal": "save 500 USDC for a road bike by June; prefers low-risk staking",
        "favorite_merchants": ["Corner Cafe", "Green Grocer", "Book Nook", "Metro Transit"],
        "spending_profile": {
            "weekly_avg_cents": 8_450 + u % 1_000,
            "categories": {"food": 0.42, "transport": 0.18, "books": 0.07, "other": 0.33}
        },
        "last_recommendation": {
            "action": "stake",
            "amount": 25_000_000,
            "duration_days": 90,
            "accepted": true
        }
    });
    if let serde_json::Value::Object(map) = memory {
        ctx.agent_memory.extend(map);
    }
    // Pad a free-text note so that the postcard body is ~1 KiB.
    let base = postcard::to_stdvec(&ctx).map(|b| b.len()).unwrap_or(0);
    let filler = "User asked about yield on weekends and rounding up purchases. ";
    let mut notes = String::new();
    while base + notes.len() + 16 < 1024 {
        notes.push_str(filler);
    }
    notes.truncate(1024usize.saturating_sub(base + 16));
    ctx.agent_memory
        .insert("notes".to_owned(), serde_json::Value::String(notes));
    ctx
}

fn location() -> PendingLocation {
    PendingLocation {
        latitude: 37.7749,
        longitude: -122.4194,
        accuracy_m: 12.5,
    }
}

fn seed_capture(card: &Card, j: u64, now_ms: u64) -> PendingCapture {
    PendingCapture {
        merchant_id: format!("m-{j}"),
        merchant_name: Some(format!("Merchant {j}")),
        amount_cents: 300 + j * 11,
        card_last4: Some(card.last4.clone()),
        proof_data: Some(format!("receipt-seed-{j}")),
        proof_type: Some("pos".to_owned()),
        location: Some(location()),
        created_at_s: secs(now_ms),
        expires_at_s: secs(now_ms + PENDING_TTL_MS),
    }
}

fn hook(txn_id: String, card: &Card, n: u64) -> PaymentWebhook {
    PaymentWebhook {
        txn_id,
        card_fingerprint: card.fingerprint.clone(),
        amount_cents: 100 + n % 5_000,
        merchant_id: "m-42".to_owned(),
        merchant_name: Some("Corner Cafe".to_owned()),
        proof_data: Some(format!("receipt-{n}")),
        proof_type: Some("pos".to_owned()),
        location: Some(location()),
    }
}

/// What the peers build from a webhook, exactly as edgestate's flow does.
fn capture_of(hook: &PaymentWebhook, last4: &str, now_ms: u64) -> PendingCapture {
    PendingCapture {
        merchant_id: hook.merchant_id.clone(),
        merchant_name: hook.merchant_name.clone(),
        amount_cents: hook.amount_cents,
        card_last4: Some(last4.to_owned()),
        proof_data: hook.proof_data.clone(),
        proof_type: hook.proof_type.clone(),
        location: hook.location,
        created_at_s: secs(now_ms),
        expires_at_s: secs(now_ms + PENDING_TTL_MS),
    }
}

fn event_of(hook: &PaymentWebhook, now_ms: u64) -> ContextEvent {
    let merchant = hook.merchant_name.as_deref().unwrap_or(&hook.merchant_id);
    ContextEvent {
        event_type: CAPTURE_EVENT.to_owned(),
        timestamp_s: secs(now_ms),
        summary: format!(
            "{} cents at {merchant} (txn {})",
            hook.amount_cents, hook.txn_id
        ),
        amount: Some(hook.amount_cents),
    }
}

fn push_event(ctx: &mut UserContext, event: ContextEvent) {
    ctx.recent_events.insert(0, event);
    ctx.recent_events.truncate(MAX_RECENT_EVENTS);
}

// ---------------------------------------------------------------------------------------
// The stores
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hook {
    Processed,
    Duplicate,
    UnknownCard,
}

/// One store under test. `Sync`: the concurrent phase shares one handle among threads.
trait Peer: Sync {
    fn ctx_get(&self, user: &str) -> Res<UserContext>;
    /// Reads the context, changes it, writes it if its version is unchanged (durable).
    /// `false` when the version moved in between.
    fn ctx_conditional_update(&self, user: &str) -> Res<bool>;
    fn card(&self, fingerprint: &str) -> Res<Option<CardMapping>>;
    fn user_cards(&self, user: &str) -> Res<Vec<CardMapping>>;
    fn webhook(&self, hook: &PaymentWebhook, durable: bool) -> Res<Hook>;
    /// Before the relaxed webhook phase (SQLite switches to `synchronous=NORMAL`).
    fn relaxed_begin(&self) -> Res<()>;
    /// After it: everything made durable, durable mode restored (not timed).
    fn relaxed_end(&self) -> Res<()>;
    /// Stores `n` dedup claims that expired a day ago (not timed).
    fn seed_expired_dedup(&self, n: usize) -> Res<()>;
    /// One sweep batch: removes up to `limit` expired records, durably.
    fn sweep(&self, limit: usize) -> Res<usize>;
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

// --- edgestate -------------------------------------------------------------------------

/// The wall clock plus an offset, so expired dedup claims can be written "in the past".
#[derive(Debug, Clone, Default)]
struct OffsetClock(Arc<AtomicI64>);

impl Clock for OffsetClock {
    fn now_ms(&self) -> u64 {
        let offset = self.0.load(Ordering::Relaxed);
        wall_ms().saturating_add_signed(offset)
    }
}

struct Es {
    store: Store,
    clock: OffsetClock,
}

impl Es {
    fn open(path: &Path) -> Res<Es> {
        let clock = OffsetClock::default();
        // EDGESTATE_PEERS_PAGE_LOG=0 measures edgestate without its page log;
        // EDGESTATE_PEERS_QUICK_REPAIR=1 with redb's allocator state saved in every commit.
        let page_log = std::env::var("EDGESTATE_PEERS_PAGE_LOG").map_or(true, |v| v != "0");
        let quick_repair =
            std::env::var("EDGESTATE_PEERS_QUICK_REPAIR").is_ok_and(|v| v != "0" && !v.is_empty());
        let store = Store::builder()
            .clock(clock.clone())
            .page_log(page_log)
            .quick_repair(quick_repair)
            .open(path)?;
        Ok(Es { store, clock })
    }

    fn load(&self, data: &Dataset) -> Res<()> {
        for chunk in (0..data.users.len()).collect::<Vec<_>>().chunks(LOAD_CHUNK) {
            self.store.transaction(|tx| {
                let now = tx.now_ms();
                for &u in chunk {
                    let user = &data.users[u];
                    tx.contexts().put(initial_context(user, u, now))?;
                    for card in data.cards_of(u) {
                        tx.cards().put(&card.fingerprint, user, &card.last4)?;
                    }
                    let first = &data.cards[data.user_cards[u][0]];
                    for j in 0..PENDING_CAPACITY {
                        tx.pending().push(user, &seed_capture(first, j, now))?;
                    }
                }
                Ok(())
            })?;
        }
        Ok(())
    }

    fn close(self) -> Res<()> {
        self.store.close()?;
        Ok(())
    }
}

fn es_outcome(outcome: WebhookOutcome) -> Hook {
    match outcome {
        WebhookOutcome::Processed { .. } => Hook::Processed,
        WebhookOutcome::Duplicate(first) => {
            black_box(first);
            Hook::Duplicate
        }
        _ => Hook::UnknownCard,
    }
}

impl Peer for Es {
    fn ctx_get(&self, user: &str) -> Res<UserContext> {
        Ok(self.store.contexts().get(user)?.ok_or("no context")?)
    }

    fn ctx_conditional_update(&self, user: &str) -> Res<bool> {
        let contexts = self.store.contexts();
        let mut ctx = contexts.get(user)?.ok_or("no context")?;
        ctx.vault.cred_balance += 1;
        // `put` writes only if the stored version is still `ctx.version`.
        match contexts.put(ctx) {
            Ok(_) => Ok(true),
            Err(e) if e.is_conflict() => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    fn card(&self, fingerprint: &str) -> Res<Option<CardMapping>> {
        Ok(self.store.cards().get(fingerprint)?)
    }

    fn user_cards(&self, user: &str) -> Res<Vec<CardMapping>> {
        Ok(self.store.cards().list(user)?)
    }

    fn webhook(&self, hook: &PaymentWebhook, durable: bool) -> Res<Hook> {
        let outcome = if durable {
            self.store.process_webhook(hook)?
        } else {
            self.store
                .write_with(Durability::Relaxed, |tx| tx.process_webhook(hook))?
        };
        Ok(es_outcome(outcome))
    }

    fn relaxed_begin(&self) -> Res<()> {
        Ok(())
    }

    fn relaxed_end(&self) -> Res<()> {
        Ok(self.store.flush()?)
    }

    fn seed_expired_dedup(&self, n: usize) -> Res<()> {
        self.clock
            .0
            .store(-i64::try_from(DEDUP_TTL_MS + DAY_MS)?, Ordering::Relaxed);
        let seeded = (0..n)
            .collect::<Vec<_>>()
            .chunks(5_000)
            .try_for_each(|chunk| {
                self.store.write_with(Durability::Relaxed, |tx| {
                    for &i in chunk {
                        tx.dedup().claim(&format!("x-{i}"), "user-00000", 100)?;
                    }
                    Ok::<_, edgestate::Error>(())
                })
            });
        self.clock.0.store(0, Ordering::Relaxed);
        seeded?;
        Ok(self.store.flush()?)
    }

    fn sweep(&self, limit: usize) -> Res<usize> {
        Ok(self.store.sweep_expired(limit)?)
    }
}

// --- SQLite ----------------------------------------------------------------------------

const SQLITE_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS contexts (
    user TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS cards (
    fingerprint TEXT PRIMARY KEY,
    user TEXT NOT NULL,
    last4 TEXT NOT NULL,
    linked_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS cards_user ON cards (user);
CREATE TABLE IF NOT EXISTS dedup (
    txn_id TEXT PRIMARY KEY,
    user TEXT NOT NULL,
    amount INTEGER NOT NULL,
    processed_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS dedup_expires ON dedup (expires_at);
CREATE TABLE IF NOT EXISTS pending (
    user TEXT NOT NULL,
    seq INTEGER NOT NULL,
    body TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (user, seq)
);
CREATE INDEX IF NOT EXISTS pending_expires ON pending (expires_at);
";

struct Sq {
    conn: Mutex<Connection>,
}

fn sqlite_connection(path: &Path) -> Res<Connection> {
    let conn = Connection::open(path)?;
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(format!("SQLite refused WAL mode: {mode}").into());
    }
    conn.pragma_update(None, "synchronous", "FULL")?;
    // redb's default page cache is 1 GiB (allocated lazily); give SQLite the same.
    conn.pragma_update(None, "cache_size", -1_048_576)?;
    conn.busy_timeout(Duration::from_secs(60))?;
    conn.set_prepared_statement_cache_capacity(64);
    conn.execute_batch(SQLITE_SCHEMA)?;
    Ok(conn)
}

impl Sq {
    fn open(path: &Path) -> Res<Sq> {
        Ok(Sq {
            conn: Mutex::new(sqlite_connection(path)?),
        })
    }

    fn lock(&self) -> Res<MutexGuard<'_, Connection>> {
        self.conn.lock().map_err(|_| "SQLite mutex poisoned".into())
    }

    fn load(&self, data: &Dataset) -> Res<()> {
        let mut conn = self.lock()?;
        for chunk in (0..data.users.len()).collect::<Vec<_>>().chunks(LOAD_CHUNK) {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let now = wall_ms();
            for &u in chunk {
                let user = &data.users[u];
                let mut ctx = initial_context(user, u, now);
                ctx.version = 1;
                tx.prepare_cached("INSERT INTO contexts (user, version, body) VALUES (?1, 1, ?2)")?
                    .execute(params![user, serde_json::to_string(&ctx)?])?;
                for card in data.cards_of(u) {
                    tx.prepare_cached(
                        "INSERT INTO cards (fingerprint, user, last4, linked_at) VALUES (?1, ?2, ?3, ?4)",
                    )?
                    .execute(params![card.fingerprint, user, card.last4, secs(now)])?;
                }
                let first = &data.cards[data.user_cards[u][0]];
                for j in 0..PENDING_CAPACITY {
                    tx.prepare_cached(
                        "INSERT INTO pending (user, seq, body, expires_at) VALUES (?1, ?2, ?3, ?4)",
                    )?
                    .execute(params![
                        user,
                        sql_int(j + 1),
                        serde_json::to_string(&seed_capture(first, j, now))?,
                        sql_int(now + PENDING_TTL_MS)
                    ])?;
                }
            }
            tx.commit()?;
        }
        Ok(())
    }

    /// Checkpoints the WAL into the main file and closes.
    fn close(self) -> Res<()> {
        let conn = self
            .conn
            .into_inner()
            .map_err(|_| "SQLite mutex poisoned")?;
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        conn.close().map_err(|(_, e)| e)?;
        Ok(())
    }

    fn read_context(conn: &Connection, user: &str) -> Res<UserContext> {
        let (version, body): (i64, String) = conn
            .prepare_cached("SELECT version, body FROM contexts WHERE user = ?1")?
            .query_row([user], |r| Ok((r.get(0)?, r.get(1)?)))?;
        let mut ctx: UserContext = serde_json::from_str(&body)?;
        ctx.version = u64::try_from(version)?;
        Ok(ctx)
    }
}

impl Peer for Sq {
    fn ctx_get(&self, user: &str) -> Res<UserContext> {
        let conn = self.lock()?;
        Sq::read_context(&conn, user)
    }

    fn ctx_conditional_update(&self, user: &str) -> Res<bool> {
        let conn = self.lock()?;
        let mut ctx = Sq::read_context(&conn, user)?;
        ctx.vault.cred_balance += 1;
        let read_version = ctx.version;
        ctx.version += 1;
        ctx.updated_at_s = secs(wall_ms());
        let body = serde_json::to_string(&ctx)?;
        let changed = conn
            .prepare_cached(
                "UPDATE contexts SET version = ?1, body = ?2 WHERE user = ?3 AND version = ?4",
            )?
            .execute(params![
                sql_int(ctx.version),
                body,
                user,
                sql_int(read_version)
            ])?;
        Ok(changed == 1)
    }

    fn card(&self, fingerprint: &str) -> Res<Option<CardMapping>> {
        let conn = self.lock()?;
        let card = conn
            .prepare_cached("SELECT user, last4, linked_at FROM cards WHERE fingerprint = ?1")?
            .query_row([fingerprint], |r| {
                Ok(CardMapping {
                    fingerprint: fingerprint.to_owned(),
                    user_pubkey: r.get(0)?,
                    card_last4: r.get(1)?,
                    linked_at_s: r.get(2)?,
                })
            })
            .optional()?;
        Ok(card)
    }

    fn user_cards(&self, user: &str) -> Res<Vec<CardMapping>> {
        let conn = self.lock()?;
        let mut stmt = conn.prepare_cached(
            "SELECT fingerprint, last4, linked_at FROM cards WHERE user = ?1 ORDER BY fingerprint",
        )?;
        let rows = stmt.query_map([user], |r| {
            Ok(CardMapping {
                fingerprint: r.get(0)?,
                user_pubkey: user.to_owned(),
                card_last4: r.get(1)?,
                linked_at_s: r.get(2)?,
            })
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    fn webhook(&self, hook: &PaymentWebhook, _durable: bool) -> Res<Hook> {
        // Durability is the connection's `synchronous` setting (see relaxed_begin).
        let mut conn = self.lock()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let now = wall_ms();
        let card: Option<(String, String)> = tx
            .prepare_cached("SELECT user, last4 FROM cards WHERE fingerprint = ?1")?
            .query_row([&hook.card_fingerprint], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        let Some((user, last4)) = card else {
            tx.rollback()?;
            return Ok(Hook::UnknownCard);
        };
        let claimed = tx
            .prepare_cached(
                "INSERT OR IGNORE INTO dedup (txn_id, user, amount, processed_at, expires_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![
                hook.txn_id,
                user,
                sql_int(hook.amount_cents),
                secs(now),
                sql_int(now + DEDUP_TTL_MS)
            ])?;
        if claimed == 0 {
            // The first claim, as edgestate reports it.
            let first: (String, i64, i64) = tx
                .prepare_cached("SELECT user, amount, processed_at FROM dedup WHERE txn_id = ?1")?
                .query_row([&hook.txn_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
            black_box(first);
            tx.rollback()?;
            return Ok(Hook::Duplicate);
        }
        let seq: i64 = tx
            .prepare_cached("SELECT COALESCE(MAX(seq), 0) + 1 FROM pending WHERE user = ?1")?
            .query_row([&user], |r| r.get(0))?;
        let capture = capture_of(hook, &last4, now);
        tx.prepare_cached(
            "INSERT INTO pending (user, seq, body, expires_at) VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![
            user,
            seq,
            serde_json::to_string(&capture)?,
            sql_int(now + PENDING_TTL_MS)
        ])?;
        tx.prepare_cached("DELETE FROM pending WHERE user = ?1 AND seq <= ?2")?
            .execute(params![user, seq - sql_int(PENDING_CAPACITY)])?;
        let mut ctx = Sq::read_context(&tx, &user)?;
        push_event(&mut ctx, event_of(hook, now));
        ctx.version += 1;
        ctx.updated_at_s = secs(now);
        tx.prepare_cached("UPDATE contexts SET version = ?1, body = ?2 WHERE user = ?3")?
            .execute(params![
                sql_int(ctx.version),
                serde_json::to_string(&ctx)?,
                user
            ])?;
        tx.commit()?;
        Ok(Hook::Processed)
    }

    fn relaxed_begin(&self) -> Res<()> {
        Ok(self.lock()?.pragma_update(None, "synchronous", "NORMAL")?)
    }

    fn relaxed_end(&self) -> Res<()> {
        let conn = self.lock()?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))?;
        Ok(())
    }

    fn seed_expired_dedup(&self, n: usize) -> Res<()> {
        let mut conn = self.lock()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let now = wall_ms();
        let claimed_at = now - DEDUP_TTL_MS - DAY_MS;
        for i in 0..n {
            tx.prepare_cached(
                "INSERT INTO dedup (txn_id, user, amount, processed_at, expires_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![
                format!("x-{i}"),
                "user-00000",
                100,
                secs(claimed_at),
                sql_int(claimed_at + DEDUP_TTL_MS)
            ])?;
        }
        tx.commit()?;
        Ok(())
    }

    fn sweep(&self, limit: usize) -> Res<usize> {
        let mut conn = self.lock()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let now = sql_int(wall_ms());
        let limit_sql = i64::try_from(limit)?;
        let mut removed = tx
            .prepare_cached(
                "DELETE FROM dedup WHERE txn_id IN \
                 (SELECT txn_id FROM dedup WHERE expires_at <= ?1 ORDER BY expires_at LIMIT ?2)",
            )?
            .execute(params![now, limit_sql])?;
        if removed < limit {
            removed += tx
                .prepare_cached(
                    "DELETE FROM pending WHERE rowid IN \
                     (SELECT rowid FROM pending WHERE expires_at <= ?1 ORDER BY expires_at LIMIT ?2)",
                )?
                .execute(params![now, i64::try_from(limit - removed)?])?;
        }
        tx.commit()?;
        Ok(removed)
    }
}

// --- raw redb --------------------------------------------------------------------------

/// user -> (version, postcard `UserContext`).
const R_CONTEXTS: TableDefinition<&str, (u64, &[u8])> = TableDefinition::new("contexts");
/// fingerprint -> (user, last4, linked_at_s).
const R_CARDS: TableDefinition<&str, (&str, &str, i64)> = TableDefinition::new("cards");
/// user -> fingerprint.
const R_USER_CARDS: MultimapTableDefinition<&str, &str> =
    MultimapTableDefinition::new("user_cards");
/// txn_id -> (user, amount, processed_at_s, expires_at_ms).
const R_DEDUP: TableDefinition<&str, (&str, u64, i64, u64)> = TableDefinition::new("dedup");
/// (expires_at_ms, txn_id).
const R_DEDUP_EXPIRY: TableDefinition<(u64, &str), ()> = TableDefinition::new("dedup_expiry");
/// (user, seq) -> (expires_at_ms, postcard `PendingCapture`).
const R_PENDING: TableDefinition<(&str, u64), (u64, &[u8])> = TableDefinition::new("pending");
/// (expires_at_ms, user, seq).
const R_PENDING_EXPIRY: TableDefinition<(u64, &str, u64), ()> =
    TableDefinition::new("pending_expiry");

struct Rd {
    db: redb::Database,
}

fn redb_durability(durable: bool) -> redb::Durability {
    if durable {
        redb::Durability::Immediate
    } else {
        redb::Durability::None
    }
}

impl Rd {
    fn open(path: &Path) -> Res<Rd> {
        let db = redb::Database::create(path)?;
        let txn = db.begin_write()?;
        txn.open_table(R_CONTEXTS)?;
        txn.open_table(R_CARDS)?;
        txn.open_multimap_table(R_USER_CARDS)?;
        txn.open_table(R_DEDUP)?;
        txn.open_table(R_DEDUP_EXPIRY)?;
        txn.open_table(R_PENDING)?;
        txn.open_table(R_PENDING_EXPIRY)?;
        txn.commit()?;
        Ok(Rd { db })
    }

    fn load(&self, data: &Dataset) -> Res<()> {
        for chunk in (0..data.users.len()).collect::<Vec<_>>().chunks(LOAD_CHUNK) {
            let txn = self.db.begin_write()?;
            {
                let now = wall_ms();
                let mut contexts = txn.open_table(R_CONTEXTS)?;
                let mut cards = txn.open_table(R_CARDS)?;
                let mut user_cards = txn.open_multimap_table(R_USER_CARDS)?;
                let mut pending = txn.open_table(R_PENDING)?;
                let mut pending_expiry = txn.open_table(R_PENDING_EXPIRY)?;
                for &u in chunk {
                    let user = data.users[u].as_str();
                    let mut ctx = initial_context(user, u, now);
                    ctx.version = 1;
                    contexts.insert(user, (1, postcard::to_stdvec(&ctx)?.as_slice()))?;
                    for card in data.cards_of(u) {
                        let fp = card.fingerprint.as_str();
                        cards.insert(fp, (user, card.last4.as_str(), secs(now)))?;
                        user_cards.insert(user, fp)?;
                    }
                    let first = &data.cards[data.user_cards[u][0]];
                    let expires = now + PENDING_TTL_MS;
                    for j in 0..PENDING_CAPACITY {
                        let body = postcard::to_stdvec(&seed_capture(first, j, now))?;
                        pending.insert((user, j + 1), (expires, body.as_slice()))?;
                        pending_expiry.insert((expires, user, j + 1), ())?;
                    }
                }
            }
            txn.commit()?;
        }
        Ok(())
    }

    fn close(self) -> Res<()> {
        self.db.close()?;
        Ok(())
    }

    fn read_context(
        table: &impl ReadableTable<&'static str, (u64, &'static [u8])>,
        user: &str,
    ) -> Res<UserContext> {
        let guard = table.get(user)?.ok_or("no context")?;
        let (version, body) = guard.value();
        let mut ctx: UserContext = postcard::from_bytes(body)?;
        ctx.version = version;
        Ok(ctx)
    }

    /// The webhook's steps inside `txn`; the caller commits on `Processed`.
    fn webhook_in(txn: &WriteTransaction, hook: &PaymentWebhook) -> Res<Hook> {
        let now = wall_ms();
        let (user, last4) = {
            let cards = txn.open_table(R_CARDS)?;
            let Some(card) = cards.get(hook.card_fingerprint.as_str())? else {
                return Ok(Hook::UnknownCard);
            };
            let (user, last4, _) = card.value();
            (user.to_owned(), last4.to_owned())
        };
        let user = user.as_str();
        {
            let mut dedup = txn.open_table(R_DEDUP)?;
            if let Some(first) = dedup.get(hook.txn_id.as_str())? {
                let (first_user, amount, processed_at, _) = first.value();
                black_box((first_user.to_owned(), amount, processed_at));
                return Ok(Hook::Duplicate);
            }
            let expires = now + DEDUP_TTL_MS;
            dedup.insert(
                hook.txn_id.as_str(),
                (user, hook.amount_cents, secs(now), expires),
            )?;
            txn.open_table(R_DEDUP_EXPIRY)?
                .insert((expires, hook.txn_id.as_str()), ())?;
        }
        {
            let mut pending = txn.open_table(R_PENDING)?;
            let mut pending_expiry = txn.open_table(R_PENDING_EXPIRY)?;
            let last = match pending.range((user, 0u64)..=(user, u64::MAX))?.next_back() {
                Some(entry) => entry?.0.value().1,
                None => 0,
            };
            let seq = last + 1;
            let expires = now + PENDING_TTL_MS;
            let body = postcard::to_stdvec(&capture_of(hook, &last4, now))?;
            pending.insert((user, seq), (expires, body.as_slice()))?;
            pending_expiry.insert((expires, user, seq), ())?;
            if seq > PENDING_CAPACITY {
                let mut doomed = Vec::new();
                for entry in pending.range((user, 0u64)..=(user, seq - PENDING_CAPACITY))? {
                    let (k, v) = entry?;
                    doomed.push((k.value().1, v.value().0));
                }
                for (old_seq, old_expires) in doomed {
                    pending.remove((user, old_seq))?;
                    pending_expiry.remove((old_expires, user, old_seq))?;
                }
            }
        }
        let mut contexts = txn.open_table(R_CONTEXTS)?;
        let mut ctx = Rd::read_context(&contexts, user)?;
        push_event(&mut ctx, event_of(hook, now));
        ctx.version += 1;
        ctx.updated_at_s = secs(now);
        let body = postcard::to_stdvec(&ctx)?;
        contexts.insert(user, (ctx.version, body.as_slice()))?;
        Ok(Hook::Processed)
    }
}

impl Peer for Rd {
    fn ctx_get(&self, user: &str) -> Res<UserContext> {
        let read = self.db.begin_read()?;
        Rd::read_context(&read.open_table(R_CONTEXTS)?, user)
    }

    fn ctx_conditional_update(&self, user: &str) -> Res<bool> {
        let mut ctx = self.ctx_get(user)?;
        ctx.vault.cred_balance += 1;
        let read_version = ctx.version;
        ctx.version += 1;
        ctx.updated_at_s = secs(wall_ms());
        let body = postcard::to_stdvec(&ctx)?;
        let txn = self.db.begin_write()?;
        let current = {
            let contexts = txn.open_table(R_CONTEXTS)?;
            let guard = contexts.get(user)?;
            guard.map(|g| g.value().0)
        };
        if current != Some(read_version) {
            txn.abort()?;
            return Ok(false);
        }
        txn.open_table(R_CONTEXTS)?
            .insert(user, (ctx.version, body.as_slice()))?;
        txn.commit()?;
        Ok(true)
    }

    fn card(&self, fingerprint: &str) -> Res<Option<CardMapping>> {
        let read = self.db.begin_read()?;
        let cards = read.open_table(R_CARDS)?;
        let card = cards.get(fingerprint)?.map(|g| {
            let (user, last4, linked_at) = g.value();
            CardMapping {
                fingerprint: fingerprint.to_owned(),
                user_pubkey: user.to_owned(),
                card_last4: last4.to_owned(),
                linked_at_s: linked_at,
            }
        });
        Ok(card)
    }

    fn user_cards(&self, user: &str) -> Res<Vec<CardMapping>> {
        let read = self.db.begin_read()?;
        let index = read.open_multimap_table(R_USER_CARDS)?;
        let cards = read.open_table(R_CARDS)?;
        let mut out = Vec::new();
        for fingerprint in index.get(user)? {
            let fingerprint = fingerprint?;
            let fp = fingerprint.value();
            let guard = cards.get(fp)?.ok_or("reverse index names a missing card")?;
            let (owner, last4, linked_at) = guard.value();
            out.push(CardMapping {
                fingerprint: fp.to_owned(),
                user_pubkey: owner.to_owned(),
                card_last4: last4.to_owned(),
                linked_at_s: linked_at,
            });
        }
        Ok(out)
    }

    fn webhook(&self, hook: &PaymentWebhook, durable: bool) -> Res<Hook> {
        let mut txn = self.db.begin_write()?;
        txn.set_durability(redb_durability(durable))?;
        match Rd::webhook_in(&txn, hook) {
            Ok(Hook::Processed) => {
                txn.commit()?;
                Ok(Hook::Processed)
            }
            Ok(other) => {
                txn.abort()?;
                Ok(other)
            }
            Err(e) => {
                txn.abort()?;
                Err(e)
            }
        }
    }

    fn relaxed_begin(&self) -> Res<()> {
        Ok(())
    }

    fn relaxed_end(&self) -> Res<()> {
        // An empty durable commit persists the non-durable ones before it.
        self.db.begin_write()?.commit()?;
        Ok(())
    }

    fn seed_expired_dedup(&self, n: usize) -> Res<()> {
        let txn = self.db.begin_write()?;
        {
            let claimed_at = wall_ms() - DEDUP_TTL_MS - DAY_MS;
            let expires = claimed_at + DEDUP_TTL_MS;
            let mut dedup = txn.open_table(R_DEDUP)?;
            let mut expiry = txn.open_table(R_DEDUP_EXPIRY)?;
            for i in 0..n {
                let id = format!("x-{i}");
                dedup.insert(id.as_str(), ("user-00000", 100, secs(claimed_at), expires))?;
                expiry.insert((expires, id.as_str()), ())?;
            }
        }
        txn.commit()?;
        Ok(())
    }

    fn sweep(&self, limit: usize) -> Res<usize> {
        let txn = self.db.begin_write()?;
        let now = wall_ms();
        let mut removed = 0;
        {
            let mut expiry = txn.open_table(R_DEDUP_EXPIRY)?;
            let mut dedup = txn.open_table(R_DEDUP)?;
            let mut doomed: Vec<(u64, String)> = Vec::new();
            for entry in expiry.range(..(now + 1, ""))?.take(limit) {
                let (key, _) = entry?;
                let (expires, id) = key.value();
                doomed.push((expires, id.to_owned()));
            }
            for (expires, id) in &doomed {
                dedup.remove(id.as_str())?;
                expiry.remove((*expires, id.as_str()))?;
            }
            removed += doomed.len();
        }
        if removed < limit {
            let mut expiry = txn.open_table(R_PENDING_EXPIRY)?;
            let mut pending = txn.open_table(R_PENDING)?;
            let mut doomed: Vec<(u64, String, u64)> = Vec::new();
            for entry in expiry.range(..(now + 1, "", 0u64))?.take(limit - removed) {
                let (key, _) = entry?;
                let (expires, user, seq) = key.value();
                doomed.push((expires, user.to_owned(), seq));
            }
            for (expires, user, seq) in &doomed {
                pending.remove((user.as_str(), *seq))?;
                expiry.remove((*expires, user.as_str(), *seq))?;
            }
            removed += doomed.len();
        }
        txn.commit()?;
        Ok(removed)
    }
}

// ---------------------------------------------------------------------------------------
// Measurement
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Sample {
    /// Operations (or records, for the sweep) per second of wall time.
    rate: f64,
    p50_us: f64,
    p99_us: f64,
    p999_us: f64,
    calls: usize,
}

impl Sample {
    fn new(mut lat_ns: Vec<u64>, units: usize, wall: Duration) -> Sample {
        lat_ns.sort_unstable();
        let pct = |q: f64| -> f64 {
            if lat_ns.is_empty() {
                return 0.0;
            }
            let rank = ((q * lat_ns.len() as f64).ceil() as usize).clamp(1, lat_ns.len());
            lat_ns[rank - 1] as f64 / 1_000.0
        };
        Sample {
            rate: units as f64 / wall.as_secs_f64().max(1e-9),
            p50_us: pct(0.50),
            p99_us: pct(0.99),
            p999_us: pct(0.999),
            calls: lat_ns.len(),
        }
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Runs `op` for a tenth of `budget` as warm-up, then for `budget`, timing each call.
fn measure(budget: Duration, mut op: impl FnMut() -> Res<()>) -> Res<Sample> {
    let warm = Instant::now();
    while warm.elapsed() < budget / 10 {
        op()?;
    }
    let mut lat = Vec::with_capacity(1 << 16);
    let start = Instant::now();
    loop {
        let t = Instant::now();
        op()?;
        lat.push(nanos(t.elapsed()));
        if start.elapsed() >= budget {
            break;
        }
    }
    let wall = start.elapsed();
    let n = lat.len();
    Ok(Sample::new(lat, n, wall))
}

/// A concurrent caller's handle: the shared store, or its own SQLite connection.
enum Caller<'a> {
    Shared(&'a dyn Peer),
    Own(Sq),
}

impl Caller<'_> {
    fn peer(&self) -> &dyn Peer {
        match self {
            Caller::Shared(p) => *p,
            Caller::Own(sq) => sq,
        }
    }
}

/// `threads` threads each calling the durable webhook for `budget` with new ids; all
/// start together once every caller has its handle. Total calls per second of wall time.
fn concurrent_webhooks<'a>(
    threads: usize,
    budget: Duration,
    data: &Dataset,
    id_prefix: &str,
    caller: impl Fn(usize) -> Res<Caller<'a>> + Sync,
) -> Res<Sample> {
    let barrier = Barrier::new(threads + 1);
    let (per_thread, wall) = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (barrier, caller) = (&barrier, &caller);
                s.spawn(move || -> Res<Vec<u64>> {
                    let handle = caller(t);
                    barrier.wait();
                    let handle = handle?;
                    let peer = handle.peer();
                    let deadline = Instant::now() + budget;
                    let mut rng = Rng::new(1_000 + t as u64);
                    let mut lat = Vec::new();
                    let mut n = 0u64;
                    while Instant::now() < deadline {
                        let card = &data.cards[rng.below(data.cards.len())];
                        let h = hook(format!("{id_prefix}{t}-{n}"), card, n);
                        n += 1;
                        let began = Instant::now();
                        let outcome = peer.webhook(&h, true)?;
                        lat.push(nanos(began.elapsed()));
                        if outcome != Hook::Processed {
                            return Err(format!("{}: {outcome:?}", h.txn_id).into());
                        }
                    }
                    Ok(lat)
                })
            })
            .collect();
        barrier.wait();
        let start = Instant::now();
        let results: Vec<Res<Vec<u64>>> = handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err("thread panicked".into())))
            .collect();
        (results, start.elapsed())
    });
    let mut lat = Vec::new();
    for result in per_thread {
        lat.extend(result?);
    }
    let n = lat.len();
    Ok(Sample::new(lat, n, wall))
}

// ---------------------------------------------------------------------------------------
// The table
// ---------------------------------------------------------------------------------------

const COLUMNS: [&str; 5] = [
    "edgestate Immediate",
    "edgestate Relaxed",
    "SQLite FULL",
    "SQLite NORMAL",
    "raw redb",
];
const ES_IMM: usize = 0;
const ES_REL: usize = 1;
const SQ_FULL: usize = 2;
const SQ_NORMAL: usize = 3;
const REDB: usize = 4;

#[derive(Debug, Clone)]
enum Cell {
    Empty,
    Sample(Sample),
    Bytes(u64),
    Secs(f64),
}

struct Row {
    op: String,
    cells: [Cell; 5],
    /// The columns the ratios compare: (edgestate, SQLite).
    es: usize,
    sq: usize,
}

impl Row {
    fn new(op: &str, es: usize, sq: usize) -> Row {
        Row {
            op: op.to_owned(),
            cells: std::array::from_fn(|_| Cell::Empty),
            es,
            sq,
        }
    }
}

fn fmt_rate(r: f64) -> String {
    if r >= 1e6 {
        format!("{:.2}M/s", r / 1e6)
    } else if r >= 1e4 {
        format!("{:.0}k/s", r / 1e3)
    } else if r >= 1e3 {
        format!("{:.1}k/s", r / 1e3)
    } else {
        format!("{r:.0}/s")
    }
}

fn fmt_us(us: f64) -> String {
    if us < 10.0 {
        format!("{us:.2}")
    } else if us < 100.0 {
        format!("{us:.1}")
    } else {
        format!("{us:.0}")
    }
}

fn fmt_bytes(b: u64) -> String {
    format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0))
}

fn fmt_cell(c: &Cell) -> String {
    match c {
        Cell::Empty => "—".to_owned(),
        Cell::Sample(s) => format!(
            "{} · {}/{}/{} µs",
            fmt_rate(s.rate),
            fmt_us(s.p50_us),
            fmt_us(s.p99_us),
            fmt_us(s.p999_us)
        ),
        Cell::Bytes(b) => fmt_bytes(*b),
        Cell::Secs(s) => format!("{s:.2} s"),
    }
}

/// edgestate ÷ peer, of the value shown (ops/s, bytes or seconds).
fn ratio(es: &Cell, peer: &Cell) -> String {
    let value = |c: &Cell| match c {
        Cell::Empty => None,
        Cell::Sample(s) => Some(s.rate),
        Cell::Bytes(b) => Some(*b as f64),
        Cell::Secs(s) => Some(*s),
    };
    match (value(es), value(peer)) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}×", a / b),
        _ => "—".to_owned(),
    }
}

fn print_table(rows: &[Row]) {
    println!("| op | {} | es/SQLite | es/redb |", COLUMNS.join(" | "));
    println!("|---|---|---|---|---|---|---|---|");
    for row in rows {
        let cells: Vec<String> = row.cells.iter().map(fmt_cell).collect();
        println!(
            "| {} | {} | {} | {} |",
            row.op,
            cells.join(" | "),
            ratio(&row.cells[row.es], &row.cells[row.sq]),
            ratio(&row.cells[row.es], &row.cells[REDB]),
        );
    }
}

// ---------------------------------------------------------------------------------------
// The run
// ---------------------------------------------------------------------------------------

struct Peers {
    es: Es,
    sq: Sq,
    rd: Rd,
}

impl Peers {
    /// (peer, its column for durable ops, its column for relaxed ops).
    fn each(&self) -> [(&dyn Peer, usize, usize, &'static str); 3] {
        [
            (&self.es, ES_IMM, ES_REL, "edgestate"),
            (&self.sq, SQ_FULL, SQ_NORMAL, "SQLite"),
            (&self.rd, REDB, REDB, "raw redb"),
        ]
    }
}

struct Paths {
    es: PathBuf,
    sq: PathBuf,
    rd: PathBuf,
}

impl Paths {
    fn sqlite_size(&self) -> u64 {
        let mut wal = self.sq.clone().into_os_string();
        wal.push("-wal");
        file_len(&self.sq) + file_len(Path::new(&wal))
    }

    fn sizes(&self) -> [(usize, u64); 3] {
        [
            (ES_IMM, file_len(&self.es)),
            (SQ_FULL, self.sqlite_size()),
            (REDB, file_len(&self.rd)),
        ]
    }
}

fn open_all(paths: &Paths) -> Res<Peers> {
    Ok(Peers {
        es: Es::open(&paths.es)?,
        sq: Sq::open(&paths.sq)?,
        rd: Rd::open(&paths.rd)?,
    })
}

fn close_all(peers: Peers) -> Res<()> {
    peers.es.close()?;
    peers.sq.close()?;
    peers.rd.close()
}

fn progress(what: &str) {
    eprintln!("[peers] {what}");
}

fn main() -> Res<()> {
    let settings = Settings::from_env()?;
    let dir = tempfile::Builder::new()
        .prefix("edgestate-peers-")
        .tempdir_in(&settings.base_dir)?;
    let paths = Paths {
        es: dir.path().join("edgestate.redb"),
        sq: dir.path().join("sqlite.db"),
        rd: dir.path().join("raw.redb"),
    };
    let data = Dataset::new(settings.users);
    let mut rows = Vec::new();

    // Load, close, measure the files.
    progress(&format!(
        "loading {} users, {} cards, {} pending captures into {}",
        data.users.len(),
        data.cards.len(),
        data.users.len() as u64 * PENDING_CAPACITY,
        dir.path().display()
    ));
    let mut load_row = Row::new(
        &format!(
            "load {}k users ({LOAD_CHUNK}/txn, durable), wall time",
            data.users.len() / 1000
        ),
        ES_IMM,
        SQ_FULL,
    );
    {
        let peers = open_all(&paths)?;
        let t = Instant::now();
        peers.es.load(&data)?;
        load_row.cells[ES_IMM] = Cell::Secs(t.elapsed().as_secs_f64());
        let t = Instant::now();
        peers.sq.load(&data)?;
        load_row.cells[SQ_FULL] = Cell::Secs(t.elapsed().as_secs_f64());
        let t = Instant::now();
        peers.rd.load(&data)?;
        load_row.cells[REDB] = Cell::Secs(t.elapsed().as_secs_f64());
        close_all(peers)?;
    }
    let mut size_row = Row::new("file size after load + close", ES_IMM, SQ_FULL);
    for (col, size) in paths.sizes() {
        size_row.cells[col] = Cell::Bytes(size);
    }

    progress("reopening");
    let peers = open_all(&paths)?;
    let budget_read = settings.budget(2.0);
    let budget_write = settings.budget(4.0);

    // Reads and the conditional update.
    type Op = fn(&dyn Peer, &Dataset, &mut Rng) -> Res<()>;
    let single: [(&str, Duration, Op); 4] = [
        ("context get (decode)", budget_read, |p, d, rng| {
            black_box(p.ctx_get(&d.users[rng.below(d.users.len())])?);
            Ok(())
        }),
        (
            "context conditional update (durable)",
            budget_write,
            |p, d, rng| {
                if p.ctx_conditional_update(&d.users[rng.below(d.users.len())])? {
                    Ok(())
                } else {
                    Err("conditional update lost without contention".into())
                }
            },
        ),
        ("card lookup", budget_read, |p, d, rng| {
            let card = &d.cards[rng.below(d.cards.len())];
            let found = p.card(&card.fingerprint)?.ok_or("card missing")?;
            if found.user_pubkey != d.users[card.user] {
                return Err("card has the wrong user".into());
            }
            Ok(())
        }),
        ("user's cards", budget_read, |p, d, rng| {
            let u = rng.below(d.users.len());
            let cards = p.user_cards(&d.users[u])?;
            if cards.len() != d.user_cards[u].len() {
                return Err("wrong number of cards".into());
            }
            black_box(cards);
            Ok(())
        }),
    ];
    for (name, budget, op) in single {
        let mut row = Row::new(name, ES_IMM, SQ_FULL);
        for (peer, col, _, label) in peers.each() {
            progress(&format!("{name}: {label}"));
            let mut rng = Rng::new(42);
            row.cells[col] = Cell::Sample(measure(budget, || op(peer, &data, &mut rng))?);
        }
        rows.push(row);
    }

    // Webhooks: durable, relaxed, duplicate.
    let mut durable_done = [0u64; 5];
    for relaxed in [false, true] {
        let name = if relaxed {
            "relaxed webhook (4 tables, 1 commit; redb Durability::None)"
        } else {
            "durable webhook (4 tables, 1 commit)"
        };
        let mut row = if relaxed {
            Row::new(name, ES_REL, SQ_NORMAL)
        } else {
            Row::new(name, ES_IMM, SQ_FULL)
        };
        for (peer, durable_col, relaxed_col, label) in peers.each() {
            progress(&format!("{name}: {label}"));
            let mut rng = Rng::new(7);
            let mut n = 0u64;
            let prefix = if relaxed { "r" } else { "d" };
            if relaxed {
                peer.relaxed_begin()?;
            }
            let sample = measure(budget_write, || {
                let card = &data.cards[rng.below(data.cards.len())];
                let h = hook(format!("{prefix}-{n}"), card, n);
                n += 1;
                match peer.webhook(&h, !relaxed)? {
                    Hook::Processed => Ok(()),
                    other => Err(format!("webhook {}: {other:?}", h.txn_id).into()),
                }
            })?;
            if relaxed {
                peer.relaxed_end()?;
                row.cells[relaxed_col] = Cell::Sample(sample);
            } else {
                durable_done[durable_col] = n;
                row.cells[durable_col] = Cell::Sample(sample);
            }
        }
        rows.push(row);
    }
    {
        let name = "duplicate webhook (replayed id, no write)";
        let mut row = Row::new(name, ES_IMM, SQ_FULL);
        for (peer, col, _, label) in peers.each() {
            progress(&format!("{name}: {label}"));
            let mut rng = Rng::new(9);
            let done = usize::try_from(durable_done[col])?;
            row.cells[col] = Cell::Sample(measure(budget_read, || {
                let k = rng.below(done);
                // Same card as when it was first delivered does not matter: the id decides.
                let card = &data.cards[rng.below(data.cards.len())];
                let h = hook(format!("d-{k}"), card, k as u64);
                match peer.webhook(&h, true)? {
                    Hook::Duplicate => Ok(()),
                    other => Err(format!("replay of {}: {other:?}", h.txn_id).into()),
                }
            })?);
        }
        rows.push(row);
    }

    // TTL sweep of the same number of expired dedup records in every store.
    {
        let n = settings.sweep_records;
        let batch = settings.sweep_batch;
        let name = format!(
            "TTL sweep: {}k expired dedup records, {batch}/txn (records/s; latency per batch)",
            n / 1000
        );
        let mut row = Row::new(&name, ES_IMM, SQ_FULL);
        for (peer, col, _, label) in peers.each() {
            progress(&format!("TTL sweep: {label}"));
            peer.seed_expired_dedup(n)?;
            let mut lat = Vec::new();
            let mut removed = 0;
            let start = Instant::now();
            loop {
                let t = Instant::now();
                let got = peer.sweep(batch)?;
                lat.push(nanos(t.elapsed()));
                removed += got;
                if got < batch {
                    break;
                }
            }
            let wall = start.elapsed();
            if removed != n {
                return Err(format!("{label} swept {removed} records, expected {n}").into());
            }
            row.cells[col] = Cell::Sample(Sample::new(lat, removed, wall));
        }
        rows.push(row);
    }

    // Concurrent durable webhooks on one store.
    {
        let threads = settings.threads;
        let budget = settings.budget(5.0);
        let name = format!("{threads} threads: durable webhook on one store (total)");
        let mut row = Row::new(&name, ES_IMM, SQ_FULL);
        for (peer, col, _, label) in peers.each() {
            progress(&format!("{name}: {label}"));
            let sample =
                concurrent_webhooks(threads, budget, &data, "c", |_| Ok(Caller::Shared(peer)))?;
            row.cells[col] = Cell::Sample(sample);
        }
        // SQLite again, the other way an application shares it: one connection per thread
        // (BEGIN IMMEDIATE, busy_timeout), instead of one connection behind a mutex.
        let name_own =
            format!("{threads} threads, SQLite with a connection per thread (es, redb: row above)");
        let mut row_own = Row::new(&name_own, ES_IMM, SQ_FULL);
        progress(&format!("{name_own}: SQLite"));
        let sample = concurrent_webhooks(threads, budget, &data, "o", |_| {
            Ok(Caller::Own(Sq::open(&paths.sq)?))
        })?;
        row_own.cells[SQ_FULL] = Cell::Sample(sample);
        row_own.cells[ES_IMM] = row.cells[ES_IMM].clone();
        row_own.cells[REDB] = row.cells[REDB].clone();
        rows.push(row);
        rows.push(row_own);
    }

    progress("closing");
    close_all(peers)?;
    let mut final_size_row = Row::new("file size after the whole run + close", ES_IMM, SQ_FULL);
    for (col, size) in paths.sizes() {
        final_size_row.cells[col] = Cell::Bytes(size);
    }
    rows.push(size_row);
    rows.push(final_size_row);
    rows.push(load_row);

    let sample_ctx = {
        let mut c = initial_context(&data.users[0], 0, wall_ms());
        c.version = 1;
        c
    };
    let sample_capture = seed_capture(&data.cards[0], 0, wall_ms());
    println!(
        "edgestate {} vs SQLite {} (rusqlite, bundled) vs redb 4.6; {} users, {} cards, {} pending; \
         context {} B postcard / {} B JSON; capture {} B postcard / {} B JSON; scale {}{}",
        env!("CARGO_PKG_VERSION"),
        rusqlite::version(),
        data.users.len(),
        data.cards.len(),
        data.users.len() as u64 * PENDING_CAPACITY,
        postcard::to_stdvec(&sample_ctx)?.len(),
        serde_json::to_string(&sample_ctx)?.len(),
        postcard::to_stdvec(&sample_capture)?.len(),
        serde_json::to_string(&sample_capture)?.len(),
        settings.scale,
        if settings.quick { " (quick)" } else { "" },
    );
    println!();
    print_table(&rows);
    println!();
    println!(
        "Cells: throughput · p50/p99/p99.9 latency per call. Ratios: edgestate ÷ peer of the \
         value shown (ops/s: >1 means edgestate is faster; bytes and seconds: <1 means \
         edgestate is smaller/faster). Relaxed row: edgestate Relaxed vs SQLite NORMAL vs redb \
         Durability::None. Calls measured: {}.",
        rows.iter()
            .flat_map(|r| r.cells.iter())
            .filter_map(|c| match c {
                Cell::Sample(s) => Some(s.calls),
                _ => None,
            })
            .sum::<usize>()
    );
    Ok(())
}
