//! Group commit: the gifts of one shard that arrive together are read in one statement, planned gift by gift in Rust (each with its own outcome), written with multi-row statements and answered after their commit; anything unexpected falls back to one gift at a time.

use super::*;

/// A batch's rows as JSON text: one statement takes a whole batch in one parameter
/// (`json_array_elements` on PostgreSQL, `json_each` on SQLite; sqlx's `Any` binds no
/// arrays).
pub(crate) fn json<T: serde::Serialize>(rows: &T) -> String {
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
pub(crate) const BATCH_READ_POSTGRES: &str = "\
     SELECT CAST(0 AS BIGINT), room, '', status, stripe FROM room_stripes WHERE \
       room = ANY(ARRAY(SELECT e.value->>0 FROM json_array_elements($1::json) AS e(value))) \
       AND stripe = ANY(ARRAY(SELECT CAST(e.value->>1 AS BIGINT) FROM json_array_elements($1::json) AS e(value))) \
     UNION ALL SELECT CAST(1 AS BIGINT), account, '', '', balance FROM accounts WHERE \
       account = ANY(ARRAY(SELECT json_array_elements_text($2::json))) \
     UNION ALL SELECT CAST(2 AS BIGINT), t.owner, t.id, t.fingerprint, t.balance_after \
       FROM json_array_elements($3::json) AS e(value), LATERAL (SELECT owner, id, fingerprint, \
       balance_after FROM transfers WHERE owner = e.value->>0 AND id = e.value->>1 OFFSET 0) t";

/// The same on SQLite (one connection per shard: its transaction is the lock).
pub(crate) const BATCH_READ_SQLITE: &str = "\
     SELECT CAST(0 AS BIGINT), room, '', status, stripe FROM room_stripes WHERE (room, stripe) IN \
       (SELECT e.value->>0, CAST(e.value->>1 AS BIGINT) FROM json_each($1) AS e) \
     UNION ALL SELECT CAST(1 AS BIGINT), account, '', '', balance FROM accounts WHERE account IN \
       (SELECT e.value FROM json_each($2) AS e) \
     UNION ALL SELECT CAST(2 AS BIGINT), owner, id, fingerprint, balance_after FROM transfers \
       WHERE (owner, id) IN (SELECT e.value->>0, e.value->>1 FROM json_each($3) AS e)";

/// What [`BATCH_WRITE_POSTGRES`] fails with when the rows it writes are no longer what
/// the batch read (then nothing of it is written).
pub(crate) const BATCH_ROWS_CHANGED: &str = "ovation: gift batch rows changed";

/// A batch's writes in one statement, so in one transaction of its own (answered after
/// its commit): the stripes it credits locked first, in key order (as Clear locks a
/// room's, so neither waits for the other in a cycle); the debits (each account set
/// from the balance read to the one planned: a compare-and-set), the transfer records
/// (none may exist already) and the stripe credits (only to stripes still `open`). When
/// a count differs from the plan's ($4, $5, $6) the statement fails with
/// [`BATCH_ROWS_CHANGED`] and writes nothing. The `= ANY` repeats of the join keys are
/// for the planner (a primary-key lookup, not a scan).
pub(crate) const BATCH_WRITE_POSTGRES: &str = "WITH \
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
pub(crate) const BATCH_WRITE_SQLITE: [&str; 3] = [
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
pub(crate) struct BatchState {
    /// Each stripe's status by (room, stripe); absent: the shard lacks the room.
    stripes: std::collections::HashMap<(String, i64), RoomStatus>,
    /// Balance by account; absent: no account (0).
    balances: std::collections::HashMap<String, u64>,
    /// (fingerprint, balance after) by (owner, id).
    transfers: std::collections::HashMap<(String, String), (String, u64)>,
}

/// The rows of a batch read (`BATCH_READ_*`) as a [`BatchState`].
pub(crate) fn batch_state(rows: Vec<AnyRow>) -> Result<BatchState> {
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
pub(crate) struct BatchPlan {
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
pub(crate) fn plan_batch(shard: ShardId, gifts: &[&Gift], state: &BatchState) -> Option<BatchPlan> {
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
pub(crate) struct GiftRequest {
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
pub(crate) struct BatchCounters {
    batches: AtomicU64,
    gifts: AtomicU64,
    slow_batches: AtomicU64,
}

impl SqlLedger {
    /// What the gift loops did so far.
    pub fn gift_batch_stats(&self) -> GiftBatchStats {
        let counters = &self.batch_counters;
        GiftBatchStats {
            batches: counters.batches.load(Ordering::Relaxed),
            gifts: counters.gifts.load(Ordering::Relaxed),
            slow_batches: counters.slow_batches.load(Ordering::Relaxed),
        }
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

    pub(crate) fn start_gift_loops(&self) -> Vec<mpsc::Sender<GiftRequest>> {
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
}

#[cfg(test)]
mod tests;
