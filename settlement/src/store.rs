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

use batch::*;
pub use batch::{GiftBatchStats, GiftCommit};
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
mod batch;
use tokio::sync::{mpsc, oneshot};

/// Stripes of a room's account per shard.
pub const ROOM_STRIPES: i64 = 16;
/// Connections per shard pool.
pub const POOL_CONNECTIONS_MAX: u32 = 8;

const SCHEMA: [&str; 7] = [
    "CREATE TABLE IF NOT EXISTS accounts (account TEXT PRIMARY KEY, balance BIGINT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS transfers (owner TEXT NOT NULL, id TEXT NOT NULL, \
     fingerprint TEXT NOT NULL, balance_after BIGINT NOT NULL, PRIMARY KEY (owner, id))",
    "CREATE TABLE IF NOT EXISTS rooms (room TEXT PRIMARY KEY, host TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS room_stripes (room TEXT NOT NULL, stripe BIGINT NOT NULL, \
     status TEXT NOT NULL, balance BIGINT NOT NULL, gifted BIGINT NOT NULL, \
     PRIMARY KEY (room, stripe))",
    "CREATE TABLE IF NOT EXISTS outbox (credit_id TEXT PRIMARY KEY, amount BIGINT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS credits (credit_id TEXT PRIMARY KEY, amount BIGINT NOT NULL)",
    // Which shard of how many this database is (one row): see `check_shard_place`.
    "CREATE TABLE IF NOT EXISTS ledger_shard (singleton BIGINT PRIMARY KEY, \
     shard BIGINT NOT NULL, shards BIGINT NOT NULL)",
];

/// Refuses a database that was first written as another shard, or as a shard of another
/// count: users are placed on shards by their id and the shard count, so a ledger
/// started with another `--shards`, or its URLs in another order, would look for
/// balances and transfer ids where they are not (a retried gift or deposit id would be
/// applied again, against new funds). The first start records the place.
async fn check_shard_place(pool: &AnyPool, shard: usize, shards: usize) -> Result<()> {
    let (shard, shards) = (shard as i64, shards as i64);
    sqlx::query(
        "INSERT INTO ledger_shard (singleton, shard, shards) VALUES (1, $1, $2) \
         ON CONFLICT (singleton) DO NOTHING",
    )
    .bind(shard)
    .bind(shards)
    .execute(pool)
    .await?;
    let (written_shard, written_shards): (i64, i64) =
        sqlx::query_as("SELECT shard, shards FROM ledger_shard WHERE singleton = 1")
            .fetch_one(pool)
            .await?;
    if (written_shard, written_shards) != (shard, shards) {
        return Err(StoreError::Config(format!(
            "database {shard} of this start was written as shard {written_shard} of \
             {written_shards}; this start names it shard {shard} of {shards}. Give the \
             ledger the same shard count and its databases in the same order as when it \
             was first started"
        )));
    }
    Ok(())
}

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
        for (shard, url) in urls.iter().enumerate() {
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
            check_shard_place(&pool, shard, urls.len()).await?;
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
        ovation_ledger::validate_user(user)?;
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
        let treasury = add_to_account(&mut tx, TREASURY, -amount).await?;
        let balance = add_to_account(&mut tx, &user_account(&deposit.user), amount).await?;
        let inserted =
            record_transfer(&mut tx, &deposit.user, &deposit.id, &fingerprint, balance).await?;
        if !inserted {
            // A concurrent retry won: undo ours and answer as it did (before the limit:
            // ours added on top of the winner's, which a retry must not be refused for).
            tx.rollback().await?;
            return self
                .replay(pool, &deposit.user, &deposit.id, &fingerprint)
                .await?
                .ok_or_else(|| StoreError::Database("transfer vanished".into()));
        }
        let before = amount_u64(balance)?.saturating_sub(deposit.amount);
        // The treasury only mints: above 0 only in a damaged database. Its bound and the
        // largest amount fit an i64 (limits.rs).
        let minted = u64::try_from(-i128::from(treasury))
            .map_err(|_| StoreError::Database(format!("treasury above 0: {treasury}")))?;
        let minted_before = minted.saturating_sub(deposit.amount);
        let limits = ovation_ledger::check_balance_after(before, deposit.amount)
            .and_then(|()| ovation_ledger::check_minted_after(minted_before, deposit.amount));
        if let Err(refused) = limits {
            tx.rollback().await?; // the transfer record goes with it
            return Err(refused.into());
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
        ovation_ledger::validate_room_id(room)?;
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
        ovation_ledger::validate_room_id(room)?;
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
