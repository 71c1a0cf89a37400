//! The sharded ledger on SQL: one code path for SQLite files and PostgreSQL databases
//! (sqlx `Any`), one database per shard. The rules and ids come from `ovation-ledger`;
//! this module only maps them onto transactions.
//!
//! The hot room account is striped: each shard holds `ROOM_STRIPES` rows per room and a
//! gift touches the stripe its id hashes to, so a busy room's gifts do not queue on one
//! row. Settlement locks every stripe of the room (status `settling`) before summing them,
//! which waits for gifts in flight and refuses later ones.

use ovation_ledger::{
    plan_settlement, Audit, Deposit, Gift, GiftReceipt, LedgerError, RoomStatus, RoomSummary,
    SettlementPlan, SettlementStep, ShardMap,
};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};
use std::fmt;

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

fn amount_u64(value: i64) -> u64 {
    u64::try_from(value).expect("stored amounts are never negative")
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
    .get(0))
}

/// The ledger over one database per shard.
#[derive(Clone)]
pub struct SqlLedger {
    map: ShardMap,
    pools: Vec<AnyPool>,
    step_pause_ms: u64,
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
            step_pause_ms: 0,
        })
    }

    pub fn map(&self) -> ShardMap {
        self.map
    }

    fn pool_of(&self, user: &str) -> &AnyPool {
        &self.pools[usize::from(self.map.shard_of(user))]
    }

    pub async fn balance(&self, user: &str) -> Result<u64> {
        let row: Option<AnyRow> = sqlx::query("SELECT balance FROM accounts WHERE account = $1")
            .bind(user_account(user))
            .fetch_optional(self.pool_of(user))
            .await?;
        Ok(row.map(|r| amount_u64(r.get::<i64, _>(0))).unwrap_or(0))
    }

    async fn replay(
        &self,
        pool: &AnyPool,
        owner: &str,
        id: &str,
        fingerprint: &str,
    ) -> Result<Option<u64>> {
        let row: Option<AnyRow> = sqlx::query(
            "SELECT fingerprint, balance_after FROM transfers WHERE owner = $1 AND id = $2",
        )
        .bind(owner)
        .bind(id)
        .fetch_optional(pool)
        .await?;
        match row {
            None => Ok(None),
            Some(row) if row.get::<String, _>(0) == fingerprint => {
                Ok(Some(amount_u64(row.get::<i64, _>(1))))
            }
            Some(_) => Err(LedgerError::IdConflict.into()),
        }
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
        tx.commit().await?;
        Ok(amount_u64(balance))
    }

    /// Opens the room in every shard (its stripes), idempotently.
    pub async fn open_room(&self, room: &str, host: &str) -> Result<()> {
        ovation_ledger::validate_room(room, host)?;
        for pool in &self.pools {
            let mut tx = pool.begin().await?;
            sqlx::query(
                "INSERT INTO rooms (room, host) VALUES ($1, $2) ON CONFLICT (room) DO NOTHING",
            )
            .bind(room)
            .bind(host)
            .execute(&mut *tx)
            .await?;
            let existing: String = sqlx::query("SELECT host FROM rooms WHERE room = $1")
                .bind(room)
                .fetch_one(&mut *tx)
                .await?
                .get(0);
            if existing != host {
                return Err(LedgerError::RoomHostConflict.into());
            }
            for stripe in 0..ROOM_STRIPES {
                sqlx::query(
                    "INSERT INTO room_stripes (room, stripe, status, balance, gifted) \
                     VALUES ($1, $2, 'open', 0, 0) ON CONFLICT (room, stripe) DO NOTHING",
                )
                .bind(room)
                .bind(stripe)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
        }
        Ok(())
    }

    /// One local transaction in the sender's shard.
    pub async fn gift(&self, gift: &Gift) -> Result<GiftReceipt> {
        gift.validate()?;
        let pool = self.pool_of(&gift.from);
        let fingerprint = gift.fingerprint();
        if let Some(balance) = self
            .replay(pool, &gift.from, &gift.id, &fingerprint)
            .await?
        {
            return Ok(GiftReceipt::replayed(balance));
        }
        let amount = amount_i64(gift.amount);
        let mut tx = pool.begin().await?;
        let debited: Option<AnyRow> = sqlx::query(
            "UPDATE accounts SET balance = balance - $1 WHERE account = $2 AND balance >= $1 \
             RETURNING balance",
        )
        .bind(amount)
        .bind(user_account(&gift.from))
        .fetch_optional(&mut *tx)
        .await?;
        let Some(debited) = debited else {
            tx.rollback().await?;
            // The same precedence as the model: unknown room, closed room, then funds.
            if self.room_status_in(pool, &gift.room).await? != RoomStatus::Open {
                return Err(LedgerError::RoomNotOpen.into());
            }
            let balance = self.balance(&gift.from).await?;
            return Err(LedgerError::InsufficientFunds {
                balance,
                needed: gift.amount,
            }
            .into());
        };
        let balance: i64 = debited.get(0);
        let inserted =
            record_transfer(&mut tx, &gift.from, &gift.id, &fingerprint, balance).await?;
        if !inserted {
            tx.rollback().await?;
            return self
                .replay(pool, &gift.from, &gift.id, &fingerprint)
                .await?
                .map(GiftReceipt::replayed)
                .ok_or_else(|| StoreError::Database("transfer vanished".into()));
        }
        // Last, so the stripe row is held for the shortest time.
        let credited = sqlx::query(
            "UPDATE room_stripes SET balance = balance + $1, gifted = gifted + $1 \
             WHERE room = $2 AND stripe = $3 AND status = 'open'",
        )
        .bind(amount)
        .bind(&gift.room)
        .bind(stripe_of(&gift.id))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if credited == 0 {
            tx.rollback().await?;
            return Err(match self.room_status_in(pool, &gift.room).await? {
                RoomStatus::Open => StoreError::Database("open room refused a gift".into()),
                _ => LedgerError::RoomNotOpen.into(),
            });
        }
        tx.commit().await?;
        Ok(GiftReceipt {
            balance: amount_u64(balance),
            replayed: false,
        })
    }

    async fn room_status_in(&self, pool: &AnyPool, room: &str) -> Result<RoomStatus> {
        let row: Option<AnyRow> =
            sqlx::query("SELECT status FROM room_stripes WHERE room = $1 AND stripe = 0")
                .bind(room)
                .fetch_optional(pool)
                .await?;
        match row.map(|r| r.get::<String, _>(0)).as_deref() {
            None => Err(LedgerError::RoomUnknown.into()),
            Some("open") => Ok(RoomStatus::Open),
            Some("settling") => Ok(RoomStatus::Settling),
            Some(_) => Ok(RoomStatus::Settled),
        }
    }

    async fn host_of(&self, room: &str) -> Result<String> {
        let row: Option<AnyRow> = sqlx::query("SELECT host FROM rooms WHERE room = $1")
            .bind(room)
            .fetch_optional(&self.pools[0])
            .await?;
        row.map(|r| r.get::<String, _>(0))
            .ok_or_else(|| LedgerError::RoomUnknown.into())
    }

    pub async fn room(&self, room: &str) -> Result<RoomSummary> {
        let host = self.host_of(room).await?;
        let mut gifted = 0;
        let mut statuses = Vec::new();
        for pool in &self.pools {
            let row = sqlx::query(
                "SELECT CAST(COALESCE(SUM(gifted), 0) AS BIGINT), MIN(status), MAX(status) FROM room_stripes \
                 WHERE room = $1",
            )
            .bind(room)
            .fetch_one(pool)
            .await?;
            gifted += amount_u64(row.get::<i64, _>(0));
            statuses.push(row.get::<String, _>(1));
            statuses.push(row.get::<String, _>(2));
        }
        let plan = plan_settlement(self.map, room, &host);
        let mut settled = 0;
        for step in &plan.steps {
            if let SettlementStep::Credit { credit_id, .. } = step {
                let row: Option<AnyRow> =
                    sqlx::query("SELECT amount FROM credits WHERE credit_id = $1")
                        .bind(credit_id)
                        .fetch_optional(&self.pools[usize::from(plan.host_shard)])
                        .await?;
                settled += row.map(|r| amount_u64(r.get::<i64, _>(0))).unwrap_or(0);
            }
        }
        let status = if statuses.iter().all(|s| s == "settled") {
            RoomStatus::Settled
        } else if statuses.iter().all(|s| s == "open") {
            RoomStatus::Open
        } else {
            RoomStatus::Settling
        };
        Ok(RoomSummary {
            room: room.to_owned(),
            host,
            status,
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
                let pool = &self.pools[usize::from(*shard)];
                let mut tx = pool.begin().await?;
                // The system's transfers have the owner "" (no user id is empty).
                let first = record_transfer(&mut tx, "", clear_id, "settle-clear", 0).await?;
                if !first {
                    tx.rollback().await?;
                    return Ok(());
                }
                // Locks every stripe: gifts in flight finish first, later ones are refused.
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
                .get(0);
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
                tx.commit().await?;
            }
            SettlementStep::Credit {
                source,
                host_shard,
                credit_id,
            } => {
                let amount: i64 = sqlx::query("SELECT amount FROM outbox WHERE credit_id = $1")
                    .bind(credit_id)
                    .fetch_one(&self.pools[usize::from(*source)])
                    .await?
                    .get(0);
                let host_pool = &self.pools[usize::from(*host_shard)];
                let mut tx = host_pool.begin().await?;
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
                tx.commit().await?;
                sqlx::query("UPDATE room_stripes SET status = 'settled' WHERE room = $1")
                    .bind(&plan.room)
                    .execute(&self.pools[usize::from(*source)])
                    .await?;
            }
        }
        Ok(())
    }

    /// Settles the room: every step, each idempotent, so a re-run after a crash finishes
    /// the job and pays once.
    pub async fn settle(&self, room: &str) -> Result<RoomSummary> {
        let host = self.host_of(room).await?;
        let plan = self.plan(room, &host);
        for step in &plan.steps {
            self.apply_step(&plan, step).await?;
            if self.step_pause_ms > 0 {
                tokio::time::sleep(std::time::Duration::from_millis(self.step_pause_ms)).await;
            }
        }
        self.room(room).await
    }

    /// Fault injection for crash tests: pause this long after each settlement step, so a
    /// test can kill the process between any two steps.
    pub fn with_step_pause_ms(mut self, pause_ms: u64) -> SqlLedger {
        self.step_pause_ms = pause_ms;
        self
    }

    pub async fn audit(&self) -> Result<Audit> {
        let mut audit = Audit::default();
        for pool in &self.pools {
            let row = sqlx::query(
                "SELECT CAST(COALESCE(SUM(balance), 0) AS BIGINT), \
                 CAST(COALESCE(SUM(CASE WHEN account LIKE 'user:%' AND balance < 0 THEN 1 ELSE 0 END), 0) \
                 AS BIGINT) \
                 FROM accounts",
            )
            .fetch_one(pool)
            .await?;
            audit.balances_sum += i128::from(row.get::<i64, _>(0));
            audit.negative_users += amount_u64(row.get::<i64, _>(1));
            let rooms: i64 =
                sqlx::query("SELECT CAST(COALESCE(SUM(balance), 0) AS BIGINT) FROM room_stripes")
                    .fetch_one(pool)
                    .await?
                    .get(0);
            audit.balances_sum += i128::from(rooms);
        }
        let rooms: Vec<String> = sqlx::query("SELECT room FROM rooms")
            .fetch_all(&self.pools[0])
            .await?
            .into_iter()
            .map(|r| r.get::<String, _>(0))
            .collect();
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
                    .get(0);
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
