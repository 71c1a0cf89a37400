//! The sharded ledger on SQL: one code path for SQLite files and PostgreSQL databases
//! (sqlx `Any`), one database per shard. The rules and ids come from `ovation-ledger`;
//! this module only maps them onto transactions.
//!
//! Opening a room follows [`ovation_ledger::plan_opening`]: every shard prepares the room
//! (stripes `opening`, no gifts), then the coordinator's activation commits it; a shard
//! not yet activated activates itself in the transaction of its first gift once the
//! coordinator is active. Every write is one transaction that applies once, so a crash
//! between any two of them leaves a state that the same call, retried, completes.
//!
//! The hot room account is striped: each shard holds `ROOM_STRIPES` rows per room and a
//! gift touches the stripe its id hashes to, so a busy room's gifts do not queue on one
//! row. Settlement locks every stripe of the room (status `settling`) before summing them,
//! which waits for gifts in flight and refuses later ones.

use ovation_ledger::{
    may_activate, plan_opening, plan_settlement, room_status_of, Audit, Deposit, Gift, GiftReceipt,
    LedgerError, OpeningPlan, OpeningStep, RoomStatus, RoomSummary, SettlementPlan, SettlementStep,
    ShardId, ShardMap, COORDINATOR_SHARD, GIFTS_QUEUED_PER_SHARD_MAX, GIFT_BATCH_MAX,
};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{Any, AnyPool, Row, Transaction};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use tokio::sync::{mpsc, oneshot};

/// Stripes of a room's account per shard.
pub const ROOM_STRIPES: i64 = 16;
/// Connections per shard pool.
pub const POOL_CONNECTIONS_MAX: u32 = 8;

const SCHEMA: [&str; 6] = [
    "CREATE TABLE IF NOT EXISTS accounts (account TEXT PRIMARY KEY, balance BIGINT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS transfers (owner TEXT NOT NULL, id TEXT NOT NULL, \
     fingerprint TEXT NOT NULL, balance_after BIGINT NOT NULL, PRIMARY KEY (owner, id))",
    "CREATE TABLE IF NOT EXISTS rooms (room TEXT PRIMARY KEY, host TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS room_stripes (room TEXT NOT NULL, stripe BIGINT NOT NULL, \
     status TEXT NOT NULL, balance BIGINT NOT NULL, gifted BIGINT NOT NULL, \
     PRIMARY KEY (room, stripe))",
    "CREATE TABLE IF NOT EXISTS outbox (credit_id TEXT PRIMARY KEY, amount BIGINT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS credits (credit_id TEXT PRIMARY KEY, amount BIGINT NOT NULL)",
];

#[derive(Debug)]
pub enum StoreError {
    Ledger(LedgerError),
    Database(String),
    Config(String),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Ledger(e) => write!(f, "{e}"),
            StoreError::Database(e) => write!(f, "database: {e}"),
            StoreError::Config(e) => write!(f, "configuration: {e}"),
        }
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> StoreError {
        StoreError::Database(e.to_string())
    }
}

impl From<LedgerError> for StoreError {
    fn from(e: LedgerError) -> StoreError {
        StoreError::Ledger(e)
    }
}

pub type Result<T> = std::result::Result<T, StoreError>;

fn user_account(user: &str) -> String {
    format!("user:{user}")
}
const TREASURY: &str = "treasury";
const CLEARING: &str = "clearing";

fn stripe_of(id: &str) -> i64 {
    // Same stable FNV-1a as the shard map, on the transfer id.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in id.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    (hash % ROOM_STRIPES as u64) as i64
}

fn amount_i64(amount: u64) -> i64 {
    i64::try_from(amount).expect("amounts are bounded by AMOUNT_MAX")
}

/// A stored amount; a negative one is a damaged database, answered as an error (no read
/// may panic on what it finds).
fn amount_u64(value: i64) -> Result<u64> {
    u64::try_from(value).map_err(|_| StoreError::Database(format!("negative amount {value}")))
}

/// A sum of stored amounts; past `u64` only on a damaged database (an error, no panic).
fn checked_sum(a: u64, b: u64) -> Result<u64> {
    a.checked_add(b)
        .ok_or_else(|| StoreError::Database("stored amounts overflow".into()))
}

fn status_of(stored: &str) -> Result<RoomStatus> {
    RoomStatus::parse(stored)
        .ok_or_else(|| StoreError::Database(format!("unknown room status {stored:?}")))
}

/// Fault injection for crash tests: after the `pause_after`-th committed write, the
/// service stops writing (every later commit waits forever) and says so on stderr, so a
/// test can SIGKILL it with exactly that many writes durable.
#[derive(Default)]
struct Faults {
    /// 0: never.
    pause_after: AtomicU64,
    commits: AtomicU64,
    frozen: AtomicBool,
}

/// What the service prints on stderr when a fault pause begins.
pub const FAULT_PAUSE_MARKER: &str = "ovation-settlement fault: paused after commit";

impl Faults {
    async fn before_commit(&self) {
        if self.frozen.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
    }

    async fn after_commit(&self) {
        let pause_after = self.pause_after.load(Ordering::SeqCst);
        if pause_after == 0 {
            return;
        }
        let n = self.commits.fetch_add(1, Ordering::SeqCst) + 1;
        if n == pause_after {
            self.frozen.store(true, Ordering::SeqCst);
            eprintln!("{FAULT_PAUSE_MARKER} {n}");
            std::future::pending::<()>().await;
        }
    }
}

/// Records a transfer under its idempotency key; false when the key already exists (a
/// concurrent retry won, and the caller rolls back).
async fn record_transfer(
    conn: &mut sqlx::AnyConnection,
    owner: &str,
    id: &str,
    fingerprint: &str,
    balance_after: i64,
) -> Result<bool> {
    let inserted = sqlx::query(
        "INSERT INTO transfers (owner, id, fingerprint, balance_after) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (owner, id) DO NOTHING",
    )
    .bind(owner)
    .bind(id)
    .bind(fingerprint)
    .bind(balance_after)
    .execute(conn)
    .await?
    .rows_affected();
    Ok(inserted == 1)
}

/// Adds `delta` to an account (creating it), returning the new balance.
async fn add_to_account(conn: &mut sqlx::AnyConnection, account: &str, delta: i64) -> Result<i64> {
    Ok(sqlx::query(
        "INSERT INTO accounts (account, balance) VALUES ($1, $2) \
         ON CONFLICT (account) DO UPDATE SET balance = accounts.balance + $2 \
         RETURNING balance",
    )
    .bind(account)
    .bind(delta)
    .fetch_one(conn)
    .await?
    .try_get(0)?)
}

/// The answer a transfer id got, read on `conn` (sees the caller's transaction).
async fn replay_in(
    conn: &mut sqlx::AnyConnection,
    owner: &str,
    id: &str,
    fingerprint: &str,
) -> Result<Option<u64>> {
    let row: Option<AnyRow> = sqlx::query(
        "SELECT fingerprint, balance_after FROM transfers WHERE owner = $1 AND id = $2",
    )
    .bind(owner)
    .bind(id)
    .fetch_optional(conn)
    .await?;
    match row {
        None => Ok(None),
        Some(row) if row.try_get::<String, _>(0)? == fingerprint => {
            Ok(Some(amount_u64(row.try_get(1)?)?))
        }
        Some(_) => Err(LedgerError::IdConflict.into()),
    }
}

/// The room's status in this shard (`None`: the shard has no stripes of it).
async fn shard_status_in(conn: &mut sqlx::AnyConnection, room: &str) -> Result<Option<RoomStatus>> {
    let row: Option<AnyRow> =
        sqlx::query("SELECT status FROM room_stripes WHERE room = $1 AND stripe = 0")
            .bind(room)
            .fetch_optional(conn)
            .await?;
    row.map(|r| status_of(&r.try_get::<String, _>(0)?))
        .transpose()
}

async fn balance_in(conn: &mut sqlx::AnyConnection, account: &str) -> Result<u64> {
    let row: Option<AnyRow> = sqlx::query("SELECT balance FROM accounts WHERE account = $1")
        .bind(account)
        .fetch_optional(conn)
        .await?;
    match row {
        Some(row) => amount_u64(row.try_get(0)?),
        None => Ok(0),
    }
}

/// Credits the gift to its stripe of the room when that stripe takes gifts (`open`);
/// false when it does not.
async fn credit_stripe(conn: &mut sqlx::AnyConnection, gift: &Gift, amount: i64) -> Result<bool> {
    let credited = sqlx::query(
        "UPDATE room_stripes SET balance = balance + $1, gifted = gifted + $1 \
         WHERE room = $2 AND stripe = $3 AND status = 'open'",
    )
    .bind(amount)
    .bind(&gift.room)
    .bind(stripe_of(&gift.id))
    .execute(conn)
    .await?
    .rows_affected();
    Ok(credited == 1)
}

/// Activates the room's stripes in this shard (`opening` → `open`; no other status
/// changes); true when there were stripes to activate.
async fn activate(conn: &mut sqlx::AnyConnection, room: &str) -> Result<bool> {
    let activated = sqlx::query(
        "UPDATE room_stripes SET status = 'open' WHERE room = $1 AND status = 'opening'",
    )
    .bind(room)
    .execute(conn)
    .await?
    .rows_affected();
    Ok(activated > 0)
}

/// A batch's rows as JSON text: one statement takes a whole batch in one parameter
/// (`json_array_elements` on PostgreSQL, `json_each` on SQLite; sqlx's `Any` binds no
/// arrays).
fn json<T: serde::Serialize>(rows: &T) -> String {
    serde_json::to_string(rows).expect("strings and integers serialize")
}

/// Reads what a batch touches, in one statement: its stripes (kind 0: room, status,
/// stripe), its senders' accounts (kind 1: account, balance) and the transfers already
/// recorded under its ids (kind 2: owner, id, fingerprint, balance after). On
/// PostgreSQL outside any transaction: [`BATCH_WRITE_POSTGRES`] checks that what was
/// read still holds. Every table is reached through its primary key (`= ANY(ARRAY(…))`,
/// a lateral lookup per id): the planner guesses 100 rows for a JSON set and would
/// otherwise scan a small table whole. (Stripes are matched on rooms × stripes: a few
/// more rows than asked, ignored.)
const BATCH_READ_POSTGRES: &str = "\
     SELECT CAST(0 AS BIGINT), room, '', status, stripe FROM room_stripes WHERE \
       room = ANY(ARRAY(SELECT e.value->>0 FROM json_array_elements($1::json) AS e(value))) \
       AND stripe = ANY(ARRAY(SELECT CAST(e.value->>1 AS BIGINT) FROM json_array_elements($1::json) AS e(value))) \
     UNION ALL SELECT CAST(1 AS BIGINT), account, '', '', balance FROM accounts WHERE \
       account = ANY(ARRAY(SELECT json_array_elements_text($2::json))) \
     UNION ALL SELECT CAST(2 AS BIGINT), t.owner, t.id, t.fingerprint, t.balance_after \
       FROM json_array_elements($3::json) AS e(value), LATERAL (SELECT owner, id, fingerprint, \
       balance_after FROM transfers WHERE owner = e.value->>0 AND id = e.value->>1 OFFSET 0) t";
/// The same on SQLite (one connection per shard: its transaction is the lock).
const BATCH_READ_SQLITE: &str = "\
     SELECT CAST(0 AS BIGINT), room, '', status, stripe FROM room_stripes WHERE (room, stripe) IN \
       (SELECT e.value->>0, CAST(e.value->>1 AS BIGINT) FROM json_each($1) AS e) \
     UNION ALL SELECT CAST(1 AS BIGINT), account, '', '', balance FROM accounts WHERE account IN \
       (SELECT e.value FROM json_each($2) AS e) \
     UNION ALL SELECT CAST(2 AS BIGINT), owner, id, fingerprint, balance_after FROM transfers \
       WHERE (owner, id) IN (SELECT e.value->>0, e.value->>1 FROM json_each($3) AS e)";
/// What [`BATCH_WRITE_POSTGRES`] fails with when the rows it writes are no longer what
/// the batch read (then nothing of it is written).
const BATCH_ROWS_CHANGED: &str = "ovation: gift batch rows changed";
/// A batch's writes in one statement, so in one transaction of its own (answered after
/// its commit): the stripes it credits locked first, in key order (as Clear locks a
/// room's, so neither waits for the other in a cycle); the debits (each account set
/// from the balance read to the one planned: a compare-and-set), the transfer records
/// (none may exist already) and the stripe credits (only to stripes still `open`). When
/// a count differs from the plan's ($4, $5, $6) the statement fails with
/// [`BATCH_ROWS_CHANGED`] and writes nothing. The `= ANY` repeats of the join keys are
/// for the planner (a primary-key lookup, not a scan).
const BATCH_WRITE_POSTGRES: &str = "WITH \
     l AS (SELECT 1 FROM room_stripes WHERE \
       room = ANY(ARRAY(SELECT e.value->>0 FROM json_array_elements($3::json) AS e(value))) \
       AND stripe = ANY(ARRAY(SELECT CAST(e.value->>1 AS BIGINT) FROM json_array_elements($3::json) AS e(value))) \
       ORDER BY room, stripe FOR UPDATE), \
     d AS (UPDATE accounts SET balance = CAST(e.value->>2 AS BIGINT) \
       FROM json_array_elements($1::json) AS e(value) \
       WHERE accounts.account = e.value->>0 AND accounts.balance = CAST(e.value->>1 AS BIGINT) \
       AND accounts.account = ANY(ARRAY(SELECT e.value->>0 FROM json_array_elements($1::json) AS e(value))) \
       RETURNING 1), \
     t AS (INSERT INTO transfers (owner, id, fingerprint, balance_after) \
       SELECT e.value->>0, e.value->>1, e.value->>2, CAST(e.value->>3 AS BIGINT) \
       FROM json_array_elements($2::json) AS e(value) ON CONFLICT (owner, id) DO NOTHING \
       RETURNING 1), \
     c AS (UPDATE room_stripes SET balance = room_stripes.balance + CAST(e.value->>2 AS BIGINT), \
       gifted = room_stripes.gifted + CAST(e.value->>2 AS BIGINT) \
       FROM json_array_elements($3::json) AS e(value) \
       WHERE room_stripes.room = e.value->>0 AND room_stripes.stripe = CAST(e.value->>1 AS BIGINT) \
       AND room_stripes.status = 'open' \
       AND room_stripes.room = ANY(ARRAY(SELECT e.value->>0 FROM json_array_elements($3::json) AS e(value))) \
       RETURNING 1), \
     n AS (SELECT (SELECT COUNT(*) FROM l) AS locked, (SELECT COUNT(*) FROM d) AS debited, \
       (SELECT COUNT(*) FROM t) AS recorded, (SELECT COUNT(*) FROM c) AS credited) \
     SELECT CASE WHEN debited = $4 AND recorded = $5 AND credited = $6 THEN locked \
       ELSE CAST('ovation: gift batch rows changed ' || CAST(locked AS TEXT) AS BIGINT) END FROM n";
/// The same writes on SQLite, one statement each (no writes inside `WITH`).
const BATCH_WRITE_SQLITE: [&str; 3] = [
    "UPDATE accounts SET balance = CAST(e.value->>2 AS BIGINT) FROM json_each($1) AS e \
     WHERE accounts.account = e.value->>0 AND accounts.balance = CAST(e.value->>1 AS BIGINT)",
    // (`WHERE true`: SQLite's parser needs it before an upsert's ON CONFLICT.)
    "INSERT INTO transfers (owner, id, fingerprint, balance_after) \
     SELECT e.value->>0, e.value->>1, e.value->>2, CAST(e.value->>3 AS BIGINT) \
     FROM json_each($1) AS e WHERE true ON CONFLICT (owner, id) DO NOTHING",
    "UPDATE room_stripes SET balance = room_stripes.balance + CAST(e.value->>2 AS BIGINT), \
     gifted = room_stripes.gifted + CAST(e.value->>2 AS BIGINT) FROM json_each($1) AS e \
     WHERE room_stripes.room = e.value->>0 AND room_stripes.stripe = CAST(e.value->>1 AS BIGINT) \
     AND room_stripes.status = 'open'",
];

/// What a shard holds for a batch: read in the batch's transaction on SQLite, just
/// before its write (which checks it still holds) on PostgreSQL.
#[derive(Default)]
struct BatchState {
    /// Each stripe's status by (room, stripe); absent: the shard lacks the room.
    stripes: std::collections::HashMap<(String, i64), RoomStatus>,
    /// Balance by account; absent: no account (0).
    balances: std::collections::HashMap<String, u64>,
    /// (fingerprint, balance after) by (owner, id).
    transfers: std::collections::HashMap<(String, String), (String, u64)>,
}

/// The rows of a batch read (`BATCH_READ_*`) as a [`BatchState`].
fn batch_state(rows: Vec<AnyRow>) -> Result<BatchState> {
    let mut state = BatchState::default();
    for row in rows {
        let kind: i64 = row.try_get(0)?;
        let key: String = row.try_get(1)?;
        let text: String = row.try_get(3)?;
        let number: i64 = row.try_get(4)?;
        match kind {
            0 => {
                state.stripes.insert((key, number), status_of(&text)?);
            }
            1 => {
                state.balances.insert(key, amount_u64(number)?);
            }
            _ => {
                let id: String = row.try_get(2)?;
                state
                    .transfers
                    .insert((key, id), (text, amount_u64(number)?));
            }
        }
    }
    Ok(state)
}

/// A batch's outcomes and the writes that make them so.
struct BatchPlan {
    /// One per gift, in the batch's order.
    outcomes: Vec<Result<GiftReceipt>>,
    /// (account, balance read, balance after the batch).
    debits: Vec<(String, i64, i64)>,
    /// (owner, id, fingerprint, balance after).
    transfers: Vec<(String, String, String, i64)>,
    /// (room, stripe, amount).
    credits: Vec<(String, i64, i64)>,
}

/// Decides each gift of a batch in order, as [`SqlLedger::apply_gift`] would one after
/// the other: the id first (a copy of a gift already recorded, here or earlier in the
/// batch, gets its answer back; another gift under that id is an `id_conflict`), then
/// the room, then the funds (a gift sees the balance its predecessors left). `None` when
/// a gift's stripe is `opening` in a shard other than the coordinator (it may activate,
/// which needs the coordinator's status: left to the gift-by-gift path).
fn plan_batch(shard: ShardId, gifts: &[&Gift], state: &BatchState) -> Option<BatchPlan> {
    use std::collections::HashMap;
    let mut balances: HashMap<&str, (u64, u64)> = HashMap::new();
    let mut recorded: HashMap<(&str, &str), (String, u64)> = HashMap::new();
    let mut credits: HashMap<(&str, i64), i64> = HashMap::new();
    let mut transfers = Vec::new();
    let mut outcomes = Vec::with_capacity(gifts.len());
    for gift in gifts {
        let fingerprint = gift.fingerprint();
        let key = (gift.from.as_str(), gift.id.as_str());
        let earlier = recorded
            .get(&key)
            .or_else(|| state.transfers.get(&(gift.from.clone(), gift.id.clone())));
        if let Some((stored, balance_after)) = earlier {
            outcomes.push(if *stored == fingerprint {
                Ok(GiftReceipt::replayed(*balance_after))
            } else {
                Err(LedgerError::IdConflict.into())
            });
            continue;
        }
        let stripe = stripe_of(&gift.id);
        match state.stripes.get(&(gift.room.clone(), stripe)) {
            Some(RoomStatus::Open) => {}
            Some(RoomStatus::Opening) if shard != COORDINATOR_SHARD => return None,
            _ => {
                outcomes.push(Err(LedgerError::RoomNotOpen.into()));
                continue;
            }
        }
        let account = user_account(&gift.from);
        let read = state.balances.get(&account).copied().unwrap_or(0);
        let (_, balance) = balances.entry(gift.from.as_str()).or_insert((read, read));
        if *balance < gift.amount {
            outcomes.push(Err(LedgerError::InsufficientFunds {
                balance: *balance,
                needed: gift.amount,
            }
            .into()));
            continue;
        }
        *balance -= gift.amount;
        let balance_after = *balance;
        transfers.push((
            gift.from.clone(),
            gift.id.clone(),
            fingerprint.clone(),
            amount_i64(balance_after),
        ));
        recorded.insert(key, (fingerprint, balance_after));
        *credits.entry((gift.room.as_str(), stripe)).or_insert(0) += amount_i64(gift.amount);
        outcomes.push(Ok(GiftReceipt {
            balance: balance_after,
            replayed: false,
        }));
    }
    let mut debits: Vec<(String, i64, i64)> = balances
        .into_iter()
        .filter(|(_, (read, after))| read != after)
        .map(|(user, (read, after))| (user_account(user), amount_i64(read), amount_i64(after)))
        .collect();
    debits.sort_unstable();
    let mut credits: Vec<(String, i64, i64)> = credits
        .into_iter()
        .map(|((room, stripe), amount)| (room.to_owned(), stripe, amount))
        .collect();
    credits.sort_unstable();
    Some(BatchPlan {
        outcomes,
        debits,
        transfers,
        credits,
    })
}

/// How gifts reach their shard's database.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum GiftCommit {
    /// Group commit: each shard's gift loop applies what arrived while its previous batch
    /// committed (at most `GIFT_BATCH_MAX`), each gift with its own outcome, in one
    /// transaction, and answers every gift of the batch after it commits.
    #[default]
    Batched,
    /// One transaction per gift.
    PerGift,
}

impl std::str::FromStr for GiftCommit {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<GiftCommit, String> {
        match s {
            "batched" => Ok(GiftCommit::Batched),
            "per-gift" => Ok(GiftCommit::PerGift),
            other => Err(format!(
                "gift commit is `batched` or `per-gift`, not `{other}`"
            )),
        }
    }
}

/// A gift waiting in its shard's loop, and where its answer goes.
struct GiftRequest {
    gift: Gift,
    answer: oneshot::Sender<Result<GiftReceipt>>,
}

/// What the gift loops did since the ledger connected (for `cargo xtask bench ledger`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GiftBatchStats {
    /// Batches taken by the loops (a lone gift is a batch of one).
    pub batches: u64,
    /// Gifts in those batches.
    pub gifts: u64,
    /// Batches that went statement by statement (a room to activate, rows changed
    /// under the batch) or gift by gift (a failed batch).
    pub slow_batches: u64,
}

#[derive(Default)]
struct BatchCounters {
    batches: AtomicU64,
    gifts: AtomicU64,
    slow_batches: AtomicU64,
}

/// The ledger over one database per shard.
#[derive(Clone)]
pub struct SqlLedger {
    map: ShardMap,
    pools: Vec<AnyPool>,
    faults: Arc<Faults>,
    /// PostgreSQL shards (else SQLite): row locks to take in a fixed order.
    postgres: bool,
    gift_commit: GiftCommit,
    /// One gift loop per shard, started with the first batched gift.
    gift_loops: Arc<OnceLock<Vec<mpsc::Sender<GiftRequest>>>>,
    batch_counters: Arc<BatchCounters>,
}

impl SqlLedger {
    /// Connects to one URL per shard (`sqlite://…?mode=rwc` or `postgres://…`) and runs
    /// the migrations.
    pub async fn connect(urls: &[String]) -> Result<SqlLedger> {
        sqlx::any::install_default_drivers();
        let shards =
            u16::try_from(urls.len()).map_err(|_| StoreError::Config("too many shards".into()))?;
        let map = ShardMap::new(shards).map_err(|e| StoreError::Config(e.to_string()))?;
        let mut pools = Vec::with_capacity(urls.len());
        for url in urls {
            let pool = AnyPoolOptions::new()
                .max_connections(if url.starts_with("sqlite") {
                    1
                } else {
                    POOL_CONNECTIONS_MAX
                })
                .connect(url)
                .await?;
            if url.starts_with("sqlite") {
                sqlx::query("PRAGMA journal_mode=WAL")
                    .execute(&pool)
                    .await?;
                sqlx::query("PRAGMA synchronous=FULL")
                    .execute(&pool)
                    .await?;
            }
            for statement in SCHEMA {
                sqlx::query(statement).execute(&pool).await?;
            }
            pools.push(pool);
        }
        Ok(SqlLedger {
            map,
            pools,
            faults: Arc::default(),
            postgres: urls.first().is_some_and(|u| u.starts_with("postgres")),
            gift_commit: GiftCommit::default(),
            gift_loops: Arc::default(),
            batch_counters: Arc::default(),
        })
    }

    /// Fault injection for crash tests: stop writing after the `commits`-th committed
    /// write (0: never) and print [`FAULT_PAUSE_MARKER`] on stderr.
    pub fn with_fault_pause_after_commit(self, commits: u64) -> SqlLedger {
        self.faults.pause_after.store(commits, Ordering::SeqCst);
        self
    }

    /// How gifts commit: batched per shard (the default) or one transaction each (kept to
    /// compare in `cargo xtask bench ledger`). Set before the first gift.
    pub fn with_gift_commit(mut self, mode: GiftCommit) -> SqlLedger {
        self.gift_commit = mode;
        self
    }

    /// Commits through the fault hooks (every write of the ledger goes through here).
    async fn commit(&self, tx: Transaction<'static, Any>) -> Result<()> {
        self.faults.before_commit().await;
        tx.commit().await?;
        self.faults.after_commit().await;
        Ok(())
    }

    /// What the gift loops did so far.
    pub fn gift_batch_stats(&self) -> GiftBatchStats {
        let counters = &self.batch_counters;
        GiftBatchStats {
            batches: counters.batches.load(Ordering::Relaxed),
            gifts: counters.gifts.load(Ordering::Relaxed),
            slow_batches: counters.slow_batches.load(Ordering::Relaxed),
        }
    }

    fn pool(&self, shard: ShardId) -> &AnyPool {
        &self.pools[usize::from(shard)]
    }

    pub fn map(&self) -> ShardMap {
        self.map
    }

    /// Closes every shard's connections (the gift loops hold the ledger, so dropping it
    /// does not); later calls fail with a database error.
    pub async fn close(&self) {
        for pool in &self.pools {
            pool.close().await;
        }
    }

    fn pool_of(&self, user: &str) -> &AnyPool {
        &self.pools[usize::from(self.map.shard_of(user))]
    }

    pub async fn balance(&self, user: &str) -> Result<u64> {
        let mut conn = self.pool_of(user).acquire().await?;
        balance_in(&mut conn, &user_account(user)).await
    }

    /// The answer a transfer id got, on a connection of its own (never inside a
    /// transaction of the same SQLite shard: that holds its only connection).
    async fn replay(
        &self,
        pool: &AnyPool,
        owner: &str,
        id: &str,
        fingerprint: &str,
    ) -> Result<Option<u64>> {
        let mut conn = pool.acquire().await?;
        replay_in(&mut conn, owner, id, fingerprint).await
    }

    pub async fn deposit(&self, deposit: &Deposit) -> Result<u64> {
        deposit.validate()?;
        let pool = self.pool_of(&deposit.user);
        let fingerprint = deposit.fingerprint();
        if let Some(balance) = self
            .replay(pool, &deposit.user, &deposit.id, &fingerprint)
            .await?
        {
            return Ok(balance);
        }
        let amount = amount_i64(deposit.amount);
        let mut tx = pool.begin().await?;
        add_to_account(&mut tx, TREASURY, -amount).await?;
        let balance = add_to_account(&mut tx, &user_account(&deposit.user), amount).await?;
        let inserted =
            record_transfer(&mut tx, &deposit.user, &deposit.id, &fingerprint, balance).await?;
        if !inserted {
            // A concurrent retry won: undo ours and answer as it did.
            tx.rollback().await?;
            return self
                .replay(pool, &deposit.user, &deposit.id, &fingerprint)
                .await?
                .ok_or_else(|| StoreError::Database("transfer vanished".into()));
        }
        self.commit(tx).await?;
        amount_u64(balance)
    }

    /// Opens the room: every step of [`plan_opening`], each its own transaction. Opening
    /// again with the same host changes nothing, or completes an interrupted opening.
    pub async fn open_room(&self, room: &str, host: &str) -> Result<()> {
        ovation_ledger::validate_room(room, host)?;
        let plan = plan_opening(self.map, room, host);
        for step in &plan.steps {
            self.apply_opening_step(&plan, step).await?;
        }
        Ok(())
    }

    pub fn opening_plan(&self, room: &str, host: &str) -> OpeningPlan {
        plan_opening(self.map, room, host)
    }

    /// Applies one opening step in one transaction; applying it again changes nothing.
    pub async fn apply_opening_step(&self, plan: &OpeningPlan, step: &OpeningStep) -> Result<()> {
        match step {
            OpeningStep::Prepare { shard } => {
                let mut tx = self.pool(*shard).begin().await?;
                sqlx::query(
                    "INSERT INTO rooms (room, host) VALUES ($1, $2) ON CONFLICT (room) DO NOTHING",
                )
                .bind(&plan.room)
                .bind(&plan.host)
                .execute(&mut *tx)
                .await?;
                let existing: String = sqlx::query("SELECT host FROM rooms WHERE room = $1")
                    .bind(&plan.room)
                    .fetch_one(&mut *tx)
                    .await?
                    .try_get(0)?;
                if existing != plan.host {
                    tx.rollback().await?;
                    return Err(LedgerError::RoomHostConflict.into());
                }
                for stripe in 0..ROOM_STRIPES {
                    sqlx::query(
                        "INSERT INTO room_stripes (room, stripe, status, balance, gifted) \
                         VALUES ($1, $2, 'opening', 0, 0) ON CONFLICT (room, stripe) DO NOTHING",
                    )
                    .bind(&plan.room)
                    .bind(stripe)
                    .execute(&mut *tx)
                    .await?;
                }
                self.commit(tx).await
            }
            OpeningStep::Activate { shard } => {
                let mut tx = self.pool(*shard).begin().await?;
                activate(&mut tx, &plan.room).await?;
                self.commit(tx).await
            }
        }
    }

    /// The room's status in one shard (`None`: the shard has no stripes of it).
    async fn shard_status(&self, shard: ShardId, room: &str) -> Result<Option<RoomStatus>> {
        let mut conn = self.pool(shard).acquire().await?;
        shard_status_in(&mut conn, room).await
    }

    /// Whether the room takes gifts in `shard` (possibly by activating it there), read on
    /// `conn` (the shard's connection: with one connection per SQLite shard, another
    /// read of it would wait for this very transaction).
    async fn takes_gifts_in(
        &self,
        conn: &mut sqlx::AnyConnection,
        shard: ShardId,
        room: &str,
    ) -> Result<bool> {
        Ok(match shard_status_in(conn, room).await? {
            Some(RoomStatus::Open) => true,
            // (The coordinator's own status is the one just read: never read its pool
            // again from inside its transaction.)
            Some(RoomStatus::Opening) if shard != COORDINATOR_SHARD => {
                may_activate(shard, self.shard_status(COORDINATOR_SHARD, room).await?)
            }
            _ => false,
        })
    }

    /// A gift: one local write in the sender's shard, committed with the other gifts of
    /// its shard that arrived meanwhile (or alone, in `GiftCommit::PerGift`). Answered
    /// only after its transaction commits.
    pub async fn gift(&self, gift: &Gift) -> Result<GiftReceipt> {
        gift.validate()?;
        let shard = self.map.shard_of(&gift.from);
        match self.gift_commit {
            GiftCommit::PerGift => {
                // A retry of a committed gift needs no write.
                if let Some(balance) = self
                    .replay(self.pool(shard), &gift.from, &gift.id, &gift.fingerprint())
                    .await?
                {
                    return Ok(GiftReceipt::replayed(balance));
                }
                self.apply_alone(shard, gift).await
            }
            // A retry is answered by the batch, which reads the batch's ids in one
            // statement (a read per gift here would cost a round trip each, and on
            // SQLite wait for the shard's only connection).
            GiftCommit::Batched => {
                let loops = self.gift_loops.get_or_init(|| self.start_gift_loops());
                let (answer, answered) = oneshot::channel();
                let request = GiftRequest {
                    gift: gift.clone(),
                    answer,
                };
                loops[usize::from(shard)]
                    .send(request)
                    .await
                    .map_err(|_| StoreError::Database("the gift loop stopped".into()))?;
                answered
                    .await
                    .map_err(|_| StoreError::Database("the gift loop dropped a gift".into()))?
            }
        }
    }

    fn start_gift_loops(&self) -> Vec<mpsc::Sender<GiftRequest>> {
        (0..self.map.shards())
            .map(|shard| {
                let (sender, requests) = mpsc::channel(GIFTS_QUEUED_PER_SHARD_MAX);
                tokio::spawn(self.clone().gift_loop(shard, requests));
                sender
            })
            .collect()
    }

    /// One shard's group commit: take what arrived (at most `GIFT_BATCH_MAX`), apply it
    /// in one transaction, answer every gift after the commit, repeat. Gifts arriving
    /// while a batch commits form the next one, so an idle shard adds no wait.
    async fn gift_loop(self, shard: ShardId, mut requests: mpsc::Receiver<GiftRequest>) {
        let mut batch = Vec::with_capacity(GIFT_BATCH_MAX);
        while requests.recv_many(&mut batch, GIFT_BATCH_MAX).await > 0 {
            // Stripes are locked in (room, stripe) order, as settlement's Clear locks a
            // room's (no deadlock between them). The gifts of a batch arrived together,
            // so any order is one they could have had; copies of one gift keep theirs.
            batch.sort_by_cached_key(|r| (r.gift.room.clone(), stripe_of(&r.gift.id)));
            let counters = &self.batch_counters;
            counters.batches.fetch_add(1, Ordering::Relaxed);
            counters
                .gifts
                .fetch_add(batch.len() as u64, Ordering::Relaxed);
            let applied = match self.apply_batch(shard, &batch).await {
                // A room still to activate in this shard, or rows changed under the
                // batch: the same transaction, a few statements per gift.
                Ok(None) => {
                    counters.slow_batches.fetch_add(1, Ordering::Relaxed);
                    self.apply_batch_gift_by_gift(shard, &batch).await
                }
                Ok(Some(outcomes)) => Ok(outcomes),
                Err(e) => Err(e),
            };
            match applied {
                Ok(outcomes) => {
                    for (request, outcome) in batch.drain(..).zip(outcomes) {
                        let _ = request.answer.send(outcome);
                    }
                }
                Err(e) => {
                    counters.slow_batches.fetch_add(1, Ordering::Relaxed);
                    // Nothing of the batch was written (a deadlock victim, a damaged
                    // row, ...): each gift goes again in a transaction of its own, so one
                    // gift's failure is its own.
                    tracing::warn!(error = %e, gifts = batch.len(), "a gift batch failed; applying its gifts one by one");
                    for request in batch.drain(..) {
                        let outcome = self.apply_alone(shard, &request.gift).await;
                        let _ = request.answer.send(outcome);
                    }
                }
            }
        }
    }

    /// One gift in a transaction of its own.
    async fn apply_alone(&self, shard: ShardId, gift: &Gift) -> Result<GiftReceipt> {
        let mut tx = self.pool(shard).begin().await?;
        let outcome = self.apply_gift(&mut tx, shard, gift).await;
        match &outcome {
            Ok(receipt) if !receipt.replayed => self.commit(tx).await?,
            _ => tx.rollback().await?,
        }
        outcome
    }

    /// Applies a batch in a fixed number of statements whatever its size: one read of
    /// what the batch touches (its stripes, its senders' accounts, its transfer ids),
    /// the outcomes decided here by [`plan_batch`], then the writes. On PostgreSQL two
    /// round trips: the read outside any transaction and one write statement, its own
    /// transaction, that checks the rows are still what was read. On SQLite (a
    /// statement costs no round trip; the shard's only connection is the lock) the read
    /// and three writes in one transaction. `None` (nothing written) when the plan does
    /// not apply: a room to activate in this shard (that needs the coordinator's
    /// status), or rows changed since the read (a deposit to a sender, a transfer id
    /// taken by a deposit, a stripe settling).
    async fn apply_batch(
        &self,
        shard: ShardId,
        batch: &[GiftRequest],
    ) -> Result<Option<Vec<Result<GiftReceipt>>>> {
        let gifts: Vec<&Gift> = batch.iter().map(|r| &r.gift).collect();
        let mut stripes: Vec<(&str, i64)> = gifts
            .iter()
            .map(|g| (g.room.as_str(), stripe_of(&g.id)))
            .collect();
        stripes.sort_unstable();
        stripes.dedup();
        let mut accounts: Vec<String> = gifts.iter().map(|g| user_account(&g.from)).collect();
        accounts.sort_unstable();
        accounts.dedup();
        let ids: Vec<(&str, &str)> = gifts
            .iter()
            .map(|g| (g.from.as_str(), g.id.as_str()))
            .collect();
        let read = |sql| {
            sqlx::query(sql)
                .bind(json(&stripes))
                .bind(json(&accounts))
                .bind(json(&ids))
        };
        if self.postgres {
            // No transaction around the read: the write checks what the plan read.
            let rows = read(BATCH_READ_POSTGRES)
                .fetch_all(self.pool(shard))
                .await?;
            let Some(plan) = plan_batch(shard, &gifts, &batch_state(rows)?) else {
                return Ok(None);
            };
            if plan.transfers.is_empty() {
                // Only refusals and replays: nothing to write.
                return Ok(Some(plan.outcomes));
            }
            self.faults.before_commit().await;
            let written = sqlx::query(BATCH_WRITE_POSTGRES)
                .bind(json(&plan.debits))
                .bind(json(&plan.transfers))
                .bind(json(&plan.credits))
                .bind(plan.debits.len() as i64)
                .bind(plan.transfers.len() as i64)
                .bind(plan.credits.len() as i64)
                .execute(self.pool(shard))
                .await;
            return match written {
                Ok(_) => {
                    self.faults.after_commit().await;
                    Ok(Some(plan.outcomes))
                }
                Err(e) if e.to_string().contains(BATCH_ROWS_CHANGED) => Ok(None),
                Err(e) => Err(e.into()),
            };
        }
        let mut tx = self.pool(shard).begin().await?;
        let rows = read(BATCH_READ_SQLITE).fetch_all(&mut *tx).await?;
        let Some(plan) = plan_batch(shard, &gifts, &batch_state(rows)?) else {
            tx.rollback().await?;
            return Ok(None);
        };
        if plan.transfers.is_empty() {
            tx.rollback().await?;
            return Ok(Some(plan.outcomes));
        }
        let mut written = [0; 3];
        for (n, (statement, values)) in BATCH_WRITE_SQLITE
            .iter()
            .zip([
                json(&plan.debits),
                json(&plan.transfers),
                json(&plan.credits),
            ])
            .enumerate()
        {
            written[n] = sqlx::query(statement)
                .bind(values)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        }
        let expected = [plan.debits.len(), plan.transfers.len(), plan.credits.len()];
        if written.iter().zip(expected).any(|(&w, e)| w != e as u64) {
            tx.rollback().await?;
            return Ok(None);
        }
        self.commit(tx).await?;
        Ok(Some(plan.outcomes))
    }

    /// The batch in one transaction, a few statements per gift (each gift's refusal
    /// undone by its inverse writes); for what [`Self::apply_batch`] leaves.
    async fn apply_batch_gift_by_gift(
        &self,
        shard: ShardId,
        batch: &[GiftRequest],
    ) -> Result<Vec<Result<GiftReceipt>>> {
        let mut tx = self.pool(shard).begin().await?;
        let mut outcomes = Vec::with_capacity(batch.len());
        for request in batch {
            match self.apply_gift(&mut tx, shard, &request.gift).await {
                // The transaction may be unusable: the whole batch fails (rolled back).
                Err(StoreError::Database(e)) => return Err(StoreError::Database(e)),
                outcome => outcomes.push(outcome),
            }
        }
        self.commit(tx).await?;
        Ok(outcomes)
    }

    /// Applies one gift on `conn` (inside the caller's transaction). A refusal or a
    /// replay leaves the transaction as it found it (a write already made is undone by
    /// its inverse), so the gifts of a batch never fail each other; a `Database` error
    /// means the transaction is unusable. Refusals follow the model's precedence: the id
    /// first (a copy of this gift that won a race gets its answer back), then the room,
    /// then the funds.
    async fn apply_gift(
        &self,
        conn: &mut sqlx::AnyConnection,
        shard: ShardId,
        gift: &Gift,
    ) -> Result<GiftReceipt> {
        let fingerprint = gift.fingerprint();
        let amount = amount_i64(gift.amount);
        let account = user_account(&gift.from);
        let debited: Option<AnyRow> = sqlx::query(
            "UPDATE accounts SET balance = balance - $1 WHERE account = $2 AND balance >= $1 \
             RETURNING balance",
        )
        .bind(amount)
        .bind(&account)
        .fetch_optional(&mut *conn)
        .await?;
        let Some(debited) = debited else {
            if let Some(balance) = replay_in(conn, &gift.from, &gift.id, &fingerprint).await? {
                return Ok(GiftReceipt::replayed(balance));
            }
            if !self.takes_gifts_in(conn, shard, &gift.room).await? {
                return Err(LedgerError::RoomNotOpen.into());
            }
            let balance = balance_in(conn, &account).await?;
            return Err(LedgerError::InsufficientFunds {
                balance,
                needed: gift.amount,
            }
            .into());
        };
        let balance: i64 = debited.try_get(0)?;
        let inserted = record_transfer(conn, &gift.from, &gift.id, &fingerprint, balance).await?;
        if !inserted {
            add_to_account(conn, &account, amount).await?;
            return replay_in(conn, &gift.from, &gift.id, &fingerprint)
                .await?
                .map(GiftReceipt::replayed)
                .ok_or_else(|| StoreError::Database("transfer vanished".into()));
        }
        // Last, so the stripe row is held for the shortest time.
        let mut credited = credit_stripe(conn, gift, amount).await?;
        if !credited && shard != COORDINATOR_SHARD {
            // Prepared here but not yet activated: the first gift after the coordinator's
            // commit point activates this shard (in this transaction).
            let coordinator = self.shard_status(COORDINATOR_SHARD, &gift.room).await?;
            if may_activate(shard, coordinator) && activate(conn, &gift.room).await? {
                credited = credit_stripe(conn, gift, amount).await?;
            }
        }
        if !credited {
            sqlx::query("DELETE FROM transfers WHERE owner = $1 AND id = $2")
                .bind(&gift.from)
                .bind(&gift.id)
                .execute(&mut *conn)
                .await?;
            add_to_account(conn, &account, amount).await?;
            return Err(LedgerError::RoomNotOpen.into());
        }
        Ok(GiftReceipt {
            balance: amount_u64(balance)?,
            replayed: false,
        })
    }

    async fn host_of(&self, room: &str) -> Result<String> {
        let row: Option<AnyRow> = sqlx::query("SELECT host FROM rooms WHERE room = $1")
            .bind(room)
            .fetch_optional(self.pool(COORDINATOR_SHARD))
            .await?;
        match row {
            Some(row) => Ok(row.try_get(0)?),
            None => Err(LedgerError::RoomUnknown.into()),
        }
    }

    /// The room's totals over its shards; answers on any state a crash can leave (a shard
    /// without the room counts as still opening).
    pub async fn room(&self, room: &str) -> Result<RoomSummary> {
        let host = self.host_of(room).await?;
        let mut gifted = 0;
        let mut statuses = Vec::with_capacity(self.pools.len());
        for pool in &self.pools {
            let rows = sqlx::query(
                "SELECT status, CAST(COALESCE(SUM(gifted), 0) AS BIGINT) FROM room_stripes \
                 WHERE room = $1 GROUP BY status",
            )
            .bind(room)
            .fetch_all(pool)
            .await?;
            // Stripes of a shard change status together; should they ever disagree, the
            // least advanced one speaks for the shard.
            let mut shard_status: Option<RoomStatus> = None;
            for row in rows {
                let status = status_of(&row.try_get::<String, _>(0)?)?;
                gifted = checked_sum(gifted, amount_u64(row.try_get(1)?)?)?;
                shard_status = Some(shard_status.map_or(status, |seen| seen.min(status)));
            }
            statuses.push(shard_status);
        }
        let plan = plan_settlement(self.map, room, &host);
        let mut settled = 0;
        for step in &plan.steps {
            if let SettlementStep::Credit { credit_id, .. } = step {
                let row: Option<AnyRow> =
                    sqlx::query("SELECT amount FROM credits WHERE credit_id = $1")
                        .bind(credit_id)
                        .fetch_optional(self.pool(plan.host_shard))
                        .await?;
                if let Some(row) = row {
                    settled = checked_sum(settled, amount_u64(row.try_get(0)?)?)?;
                }
            }
        }
        Ok(RoomSummary {
            room: room.to_owned(),
            host,
            status: room_status_of(&statuses),
            gifted,
            settled,
        })
    }

    pub fn plan(&self, room: &str, host: &str) -> SettlementPlan {
        plan_settlement(self.map, room, host)
    }

    /// Applies one step in one transaction; applying it again changes nothing.
    pub async fn apply_step(&self, plan: &SettlementPlan, step: &SettlementStep) -> Result<()> {
        match step {
            SettlementStep::Clear {
                shard,
                clear_id,
                credit_id,
            } => {
                let mut tx = self.pool(*shard).begin().await?;
                // The system's transfers have the owner "" (no user id is empty).
                let first = record_transfer(&mut tx, "", clear_id, "settle-clear", 0).await?;
                if !first {
                    tx.rollback().await?;
                    return Ok(());
                }
                // Locks every stripe: gifts in flight finish first, later ones are refused.
                // On PostgreSQL in stripe order first, the order a gift batch takes them.
                if self.postgres {
                    sqlx::query(
                        "SELECT stripe FROM room_stripes WHERE room = $1 ORDER BY stripe FOR UPDATE",
                    )
                    .bind(&plan.room)
                    .fetch_all(&mut *tx)
                    .await?;
                }
                sqlx::query("UPDATE room_stripes SET status = 'settling' WHERE room = $1")
                    .bind(&plan.room)
                    .execute(&mut *tx)
                    .await?;
                let amount: i64 = sqlx::query(
                    "SELECT CAST(COALESCE(SUM(balance), 0) AS BIGINT) FROM room_stripes WHERE room = $1",
                )
                .bind(&plan.room)
                .fetch_one(&mut *tx)
                .await?
                .try_get(0)?;
                sqlx::query("UPDATE room_stripes SET balance = 0 WHERE room = $1")
                    .bind(&plan.room)
                    .execute(&mut *tx)
                    .await?;
                add_to_account(&mut tx, CLEARING, amount).await?;
                sqlx::query("INSERT INTO outbox (credit_id, amount) VALUES ($1, $2)")
                    .bind(credit_id)
                    .bind(amount)
                    .execute(&mut *tx)
                    .await?;
                self.commit(tx).await?;
            }
            SettlementStep::Credit {
                source,
                host_shard,
                credit_id,
            } => {
                let amount: i64 = sqlx::query("SELECT amount FROM outbox WHERE credit_id = $1")
                    .bind(credit_id)
                    .fetch_one(self.pool(*source))
                    .await?
                    .try_get(0)?;
                let mut tx = self.pool(*host_shard).begin().await?;
                let first = sqlx::query(
                    "INSERT INTO credits (credit_id, amount) VALUES ($1, $2) \
                     ON CONFLICT (credit_id) DO NOTHING",
                )
                .bind(credit_id)
                .bind(amount)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if first == 1 {
                    add_to_account(&mut tx, CLEARING, -amount).await?;
                    add_to_account(&mut tx, &user_account(&plan.host), amount).await?;
                }
                self.commit(tx).await?;
                let mut tx = self.pool(*source).begin().await?;
                sqlx::query("UPDATE room_stripes SET status = 'settled' WHERE room = $1")
                    .bind(&plan.room)
                    .execute(&mut *tx)
                    .await?;
                self.commit(tx).await?;
            }
        }
        Ok(())
    }

    /// Settles the room: every step, each idempotent, so a re-run after a crash finishes
    /// the job and pays once. A room whose opening was interrupted is opened first (with
    /// the host its coordinator holds), so it settles with what it took: nothing.
    pub async fn settle(&self, room: &str) -> Result<RoomSummary> {
        let host = self.host_of(room).await?;
        self.open_room(room, &host).await?;
        let plan = self.plan(room, &host);
        for step in &plan.steps {
            self.apply_step(&plan, step).await?;
        }
        self.room(room).await
    }

    pub async fn audit(&self) -> Result<Audit> {
        let mut audit = Audit::default();
        for pool in &self.pools {
            // One statement, one snapshot: a gift committing between two sums would
            // show as money created or destroyed.
            let row = sqlx::query(
                "SELECT CAST((SELECT COALESCE(SUM(balance), 0) FROM accounts) AS BIGINT), \
                 CAST((SELECT COALESCE(SUM(CASE WHEN account LIKE 'user:%' AND balance < 0 \
                 THEN 1 ELSE 0 END), 0) FROM accounts) AS BIGINT), \
                 CAST((SELECT COALESCE(SUM(balance), 0) FROM room_stripes) AS BIGINT)",
            )
            .fetch_one(pool)
            .await?;
            audit.balances_sum += i128::from(row.try_get::<i64, _>(0)?);
            audit.negative_users += amount_u64(row.try_get(1)?)?;
            audit.balances_sum += i128::from(row.try_get::<i64, _>(2)?);
        }
        let rooms = sqlx::query("SELECT room FROM rooms")
            .fetch_all(self.pool(COORDINATOR_SHARD))
            .await?
            .into_iter()
            .map(|r| r.try_get::<String, _>(0))
            .collect::<std::result::Result<Vec<String>, _>>()?;
        for room in rooms {
            let summary = self.room(&room).await?;
            if summary.status == RoomStatus::Settled {
                for pool in &self.pools {
                    let left: i64 = sqlx::query(
                        "SELECT CAST(COALESCE(SUM(balance), 0) AS BIGINT) FROM room_stripes WHERE room = $1",
                    )
                    .bind(&room)
                    .fetch_one(pool)
                    .await?
                    .try_get(0)?;
                    if left != 0 {
                        audit.settled_rooms_nonzero += 1;
                    }
                }
                if summary.settled != summary.gifted {
                    audit.host_mismatches += 1;
                }
            }
        }
        Ok(audit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gift(id: &str, from: &str, amount: u64) -> Gift {
        Gift {
            id: id.into(),
            room: "weur-show".into(),
            from: from.into(),
            amount,
            sku: "rose".into(),
            qty: 1,
        }
    }

    /// Every stripe of the show open, and the given balances.
    fn state(balances: &[(&str, u64)]) -> BatchState {
        let mut state = BatchState::default();
        for stripe in 0..ROOM_STRIPES {
            state
                .stripes
                .insert(("weur-show".into(), stripe), RoomStatus::Open);
        }
        for (user, balance) in balances {
            state.balances.insert(user_account(user), *balance);
        }
        state
    }

    fn plan(shard: ShardId, gifts: &[Gift], state: &BatchState) -> Option<BatchPlan> {
        plan_batch(shard, &gifts.iter().collect::<Vec<_>>(), state)
    }

    fn receipt(balance: u64) -> GiftReceipt {
        GiftReceipt {
            balance,
            replayed: false,
        }
    }

    #[test]
    fn a_refused_gift_leaves_its_neighbours_and_the_sender_s_balance_alone() {
        let gifts = [
            gift("a", "ana", 30),
            gift("b", "ana", 80),
            gift("c", "ana", 50),
        ];
        let plan = plan(1, &gifts, &state(&[("ana", 100)])).expect("planned");
        assert_eq!(plan.outcomes[0].as_ref().ok(), Some(&receipt(70)));
        assert!(matches!(
            plan.outcomes[1],
            Err(StoreError::Ledger(LedgerError::InsufficientFunds {
                balance: 70,
                needed: 80
            }))
        ));
        assert_eq!(plan.outcomes[2].as_ref().ok(), Some(&receipt(20)));
        // One debit for the sender, from the balance read to what is left.
        assert_eq!(plan.debits, vec![(user_account("ana"), 100, 20)]);
        assert_eq!(plan.transfers.len(), 2);
        let credited: i64 = plan.credits.iter().map(|c| c.2).sum();
        assert_eq!(credited, 80);
    }

    #[test]
    fn a_copy_gets_the_original_answer_and_another_gift_under_its_id_a_conflict() {
        let mut recorded = state(&[("ana", 100)]);
        recorded.transfers.insert(
            ("ana".into(), "old".into()),
            (gift("old", "ana", 5).fingerprint(), 95),
        );
        let gifts = [
            gift("old", "ana", 5),
            gift("new", "ana", 10),
            gift("new", "ana", 10),
            gift("new", "ana", 11),
            gift("old", "ana", 6),
        ];
        let plan = plan(1, &gifts, &recorded).expect("planned");
        assert_eq!(
            plan.outcomes[0].as_ref().ok(),
            Some(&GiftReceipt::replayed(95))
        );
        assert_eq!(plan.outcomes[1].as_ref().ok(), Some(&receipt(90)));
        assert_eq!(
            plan.outcomes[2].as_ref().ok(),
            Some(&GiftReceipt::replayed(90))
        );
        for conflict in [3, 4] {
            assert!(matches!(
                plan.outcomes[conflict],
                Err(StoreError::Ledger(LedgerError::IdConflict))
            ));
        }
        assert_eq!(plan.transfers.len(), 1, "only `new` is written, once");
        assert_eq!(plan.debits, vec![(user_account("ana"), 100, 90)]);
    }

    #[test]
    fn the_id_is_checked_before_the_room_and_the_room_before_the_funds() {
        let mut closed = state(&[("ana", 100)]);
        for status in closed.stripes.values_mut() {
            *status = RoomStatus::Settling;
        }
        closed.transfers.insert(
            ("ana".into(), "old".into()),
            (gift("old", "ana", 5).fingerprint(), 95),
        );
        let gifts = [gift("old", "ana", 5), gift("poor", "ana", 1_000)];
        let plan = plan(1, &gifts, &closed).expect("planned");
        assert_eq!(
            plan.outcomes[0].as_ref().ok(),
            Some(&GiftReceipt::replayed(95))
        );
        assert!(matches!(
            plan.outcomes[1],
            Err(StoreError::Ledger(LedgerError::RoomNotOpen))
        ));
        assert!(plan.transfers.is_empty() && plan.debits.is_empty() && plan.credits.is_empty());
    }

    #[test]
    fn a_room_still_opening_is_refused_on_the_coordinator_and_left_to_the_slow_path_elsewhere() {
        let mut opening = state(&[("ana", 100)]);
        for status in opening.stripes.values_mut() {
            *status = RoomStatus::Opening;
        }
        let gifts = [gift("a", "ana", 5)];
        let on_coordinator = plan(COORDINATOR_SHARD, &gifts, &opening).expect("planned");
        assert!(matches!(
            on_coordinator.outcomes[0],
            Err(StoreError::Ledger(LedgerError::RoomNotOpen))
        ));
        assert!(plan(1, &gifts, &opening).is_none());
    }

    /// The one-statement write of a PostgreSQL batch writes nothing when what it planned
    /// on no longer holds: a balance changed since the read, a transfer id taken, a
    /// stripe no longer open. (Then the batch goes statement by statement.)
    #[tokio::test]
    async fn a_postgres_batch_write_planned_on_stale_rows_writes_nothing() {
        let urls = crate::postgres_admin::fresh_databases(
            &format!("ovation_unit_{}_stale", std::process::id()),
            1,
        )
        .await
        .expect("PostgreSQL on 127.0.0.1:5432");
        let ledger = SqlLedger::connect(&urls).await.expect("postgres");
        ledger.open_room("weur-show", "star").await.unwrap();
        let deposit = |id: &str, amount| Deposit {
            id: id.into(),
            user: "ana".into(),
            amount,
        };
        ledger.deposit(&deposit("d1", 100)).await.unwrap();
        let pool = ledger.pool(0);
        let write = |plan: &BatchPlan| {
            sqlx::query(BATCH_WRITE_POSTGRES)
                .bind(json(&plan.debits))
                .bind(json(&plan.transfers))
                .bind(json(&plan.credits))
                .bind(plan.debits.len() as i64)
                .bind(plan.transfers.len() as i64)
                .bind(plan.credits.len() as i64)
                .execute(pool)
        };
        let gifts = [gift("g1", "ana", 30)];
        let stale = plan(0, &gifts, &state(&[("ana", 100)])).expect("planned");
        // A deposit lands between the batch's read and its write.
        ledger.deposit(&deposit("d2", 50)).await.unwrap();
        let refused = write(&stale).await.expect_err("a stale balance");
        assert!(
            refused.to_string().contains(BATCH_ROWS_CHANGED),
            "{refused}"
        );
        // A deposit took the gift's id (its owner is the sender) meanwhile.
        let current = plan(0, &[gift("d2", "ana", 30)], &state(&[("ana", 150)])).unwrap();
        let refused = write(&current).await.expect_err("an id taken");
        assert!(
            refused.to_string().contains(BATCH_ROWS_CHANGED),
            "{refused}"
        );
        assert_eq!(ledger.balance("ana").await.unwrap(), 150);
        assert_eq!(ledger.room("weur-show").await.unwrap().gifted, 0);
        // The room settles between the read (stripes open) and the write.
        ledger.settle("weur-show").await.unwrap();
        let fresh = plan(0, &gifts, &state(&[("ana", 150)])).unwrap();
        let refused = write(&fresh).await.expect_err("a stripe settled");
        assert!(
            refused.to_string().contains(BATCH_ROWS_CHANGED),
            "{refused}"
        );
        assert_eq!(ledger.balance("ana").await.unwrap(), 150);
        // And through the loop, the gift is refused for the room, nothing moves.
        assert!(matches!(
            ledger.gift(&gifts[0]).await,
            Err(StoreError::Ledger(LedgerError::RoomNotOpen))
        ));
        let audit = ledger.audit().await.unwrap();
        assert!(audit.ok(), "{audit:?}");
        ledger.close().await;
        crate::postgres_admin::drop_databases(
            &format!("ovation_unit_{}_", std::process::id()),
            None,
        )
        .await
        .unwrap();
    }

    #[test]
    fn a_sender_without_an_account_has_nothing_to_give() {
        let plan = plan(1, &[gift("a", "bob", 1)], &state(&[])).expect("planned");
        assert!(matches!(
            plan.outcomes[0],
            Err(StoreError::Ledger(LedgerError::InsufficientFunds {
                balance: 0,
                needed: 1
            }))
        ));
        assert!(plan.debits.is_empty());
    }
}
