//! The same suite on both engines: SQLite files and the machine's PostgreSQL
//! (127.0.0.1:5432, one database per shard, created by the test).

use ovation_ledger::{Deposit, Gift, LedgerError, MemoryLedger, RoomStatus};
use ovation_settlement::postgres_admin::{drop_databases, fresh_databases};
use ovation_settlement::store::GiftCommit;
use ovation_settlement::{SqlLedger, StoreError};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

static NEXT: AtomicU64 = AtomicU64::new(0);

fn unique() -> String {
    format!(
        "{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

async fn sqlite(shards: u16) -> SqlLedger {
    SqlLedger::connect(&sqlite_urls(&fresh_sqlite_dir(), shards))
        .await
        .expect("sqlite shards")
}

fn fresh_sqlite_dir() -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../target/settlement-tests")
        .join(unique());
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn sqlite_urls(dir: &std::path::Path, shards: u16) -> Vec<String> {
    (0..shards)
        .map(|k| format!("sqlite://{}/shard-{k}.db?mode=rwc", dir.display()))
        .collect()
}

/// A ledger's databases are its shards in one order and count: started again with
/// another count, or the same databases in another order, it refuses to start (users
/// would be looked for on shards that do not hold their balances and ids, and a retried
/// deposit would mint again); the same start as the first is taken.
async fn a_ledger_refuses_its_databases_as_other_shards(urls: Vec<String>, more: Vec<String>) {
    let first = SqlLedger::connect(&urls).await.expect("first start");
    first
        .deposit(&Deposit {
            user: "u1".into(),
            amount: 100,
            id: "d1".into(),
        })
        .await
        .unwrap();
    drop(first);
    let mut grown = urls.clone();
    grown.extend(more);
    let mut reordered = urls.clone();
    reordered.swap(0, 1);
    for (what, wrong) in [("more shards", grown), ("another order", reordered)] {
        let refused = SqlLedger::connect(&wrong).await;
        assert!(
            matches!(&refused, Err(StoreError::Config(message)) if message.contains("same shard count")),
            "{what}: {:?}",
            refused.err()
        );
    }
    let again = SqlLedger::connect(&urls)
        .await
        .expect("the same start again");
    assert_eq!(
        again
            .deposit(&Deposit {
                user: "u1".into(),
                amount: 100,
                id: "d1".into(),
            })
            .await
            .unwrap(),
        100,
        "a retried deposit id is answered, not applied again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_refuses_its_databases_as_other_shards() {
    let dir = fresh_sqlite_dir();
    let urls = sqlite_urls(&dir, 6);
    a_ledger_refuses_its_databases_as_other_shards(urls[..4].to_vec(), urls[4..].to_vec()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_refuses_its_databases_as_other_shards() {
    let _ = postgres(1).await; // cleans earlier processes' databases once
    let urls = fresh_databases(&format!("ovation_test_{}", unique()), 6)
        .await
        .expect("create shard databases");
    a_ledger_refuses_its_databases_as_other_shards(urls[..4].to_vec(), urls[4..].to_vec()).await;
}

async fn postgres(shards: u16) -> SqlLedger {
    // Databases of earlier test processes are dropped once; this process's are in use.
    static CLEANED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if !CLEANED.swap(true, Ordering::SeqCst) {
        let mine = format!("ovation_test_{}_", std::process::id());
        drop_databases("ovation_test_", Some(&mine))
            .await
            .expect("PostgreSQL on 127.0.0.1:5432 (.ci/run starts it)");
    }
    let urls = fresh_databases(&format!("ovation_test_{}", unique()), shards)
        .await
        .expect("create shard databases");
    SqlLedger::connect(&urls).await.expect("postgres shards")
}

/// splitmix64 for reproducible operation sequences.
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) % n
    }
}

fn ledger_error(result: Result<u64, StoreError>) -> Result<u64, LedgerError> {
    result.map_err(|e| match e {
        StoreError::Ledger(e) => e,
        other => panic!("engine failed: {other}"),
    })
}

/// Random deposits, gifts (with retries and conflicting reuse of ids), openings and
/// settlements that crash after a random number of steps and are re-run: the engine must
/// answer exactly as the reference model does.
async fn matches_the_reference_model(engine: SqlLedger, seed: u64) {
    let mut model = MemoryLedger::new(engine.map());
    let mut rng = Rng(seed);
    for _ in 0..150 {
        let user = format!("user-{}", rng.below(8));
        let room = format!("weur-room-{}", rng.below(3));
        match rng.below(12) {
            0..=2 => {
                let d = Deposit {
                    id: format!("d{}", rng.below(30)),
                    user: user.clone(),
                    amount: 1 + rng.below(500),
                };
                assert_eq!(
                    ledger_error(engine.deposit(&d).await),
                    model.deposit(&d),
                    "{d:?}"
                );
            }
            3..=8 => {
                let g = Gift {
                    id: format!("g{}", rng.below(40)),
                    room: room.clone(),
                    from: user.clone(),
                    amount: 1 + rng.below(150),
                    sku: "rose".into(),
                    qty: 1 + rng.below(2) as u32,
                };
                let engine_answer = engine.gift(&g).await.map_err(|e| match e {
                    StoreError::Ledger(e) => e,
                    other => panic!("engine failed: {other}"),
                });
                assert_eq!(engine_answer, model.gift(&g), "{g:?}");
            }
            9..=10 => {
                let host = format!("user-{}", rng.below(8));
                // Half the openings crash after a random number of steps (a later open,
                // gift or settle meets what they left).
                let plan = engine.opening_plan(&room, &host);
                let crash_after = if rng.below(2) == 0 {
                    plan.steps.len()
                } else {
                    rng.below(plan.steps.len() as u64) as usize
                };
                let mut engine_result = Ok(());
                let mut model_result = Ok(());
                for step in plan.steps.iter().take(crash_after) {
                    engine_result =
                        engine
                            .apply_opening_step(&plan, step)
                            .await
                            .map_err(|e| match e {
                                StoreError::Ledger(e) => e,
                                other => panic!("{other}"),
                            });
                    model_result = model.apply_opening_step(&plan, step);
                    assert_eq!(engine_result, model_result, "{step:?}");
                    if engine_result.is_err() {
                        break;
                    }
                }
                assert_eq!(engine_result, model_result);
                let engine_status = engine.room(&room).await.ok().map(|s| s.status);
                assert_eq!(engine_status, model.room(&room).map(|s| s.status));
            }
            _ => {
                let Some(summary) = model.room(&room) else {
                    continue;
                };
                let plan = engine.plan(&room, &summary.host);
                // Settlement steps run only after the opening's (`settle` runs both).
                let crash_after = if summary.status == RoomStatus::Opening {
                    0
                } else {
                    rng.below(plan.steps.len() as u64 + 1) as usize
                };
                for step in plan.steps.iter().take(crash_after) {
                    engine.apply_step(&plan, step).await.unwrap();
                }
                let settled = engine.settle(&room).await.unwrap();
                let expected = model.settle(&room).unwrap();
                assert_eq!(settled, expected);
                assert_eq!(settled.status, RoomStatus::Settled);
            }
        }
        for u in 0..8 {
            let user = format!("user-{u}");
            assert_eq!(
                engine.balance(&user).await.unwrap(),
                model.balance(&user),
                "{user}"
            );
        }
    }
    let audit = engine.audit().await.unwrap();
    assert!(audit.ok(), "{audit:?}");
    assert_eq!(audit, model.audit());
}

/// Many concurrent gifts, each sent twice at once (a retry racing the original).
async fn concurrent_gifts_with_duplicate_retries_count_once(engine: SqlLedger) {
    let engine = Arc::new(engine);
    engine.open_room("weur-busy", "star").await.unwrap();
    let users = 40;
    for u in 0..users {
        let d = Deposit {
            id: "seed".into(),
            user: format!("fan-{u}"),
            amount: 1_000,
        };
        engine.deposit(&d).await.unwrap();
    }
    let mut tasks = Vec::new();
    for u in 0..users {
        for g in 0..5 {
            for _copy in 0..2 {
                let engine = engine.clone();
                tasks.push(tokio::spawn(async move {
                    let gift = Gift {
                        id: format!("gift-{g}"),
                        room: "weur-busy".into(),
                        from: format!("fan-{u}"),
                        amount: 10 + g,
                        sku: "rose".into(),
                        qty: 1,
                    };
                    engine.gift(&gift).await
                }));
            }
        }
    }
    for task in tasks {
        task.await.unwrap().expect("gift accepted");
    }
    let per_user: u64 = (0..5).map(|g| 10 + g).sum();
    for u in 0..users {
        assert_eq!(
            engine.balance(&format!("fan-{u}")).await.unwrap(),
            1_000 - per_user
        );
    }
    let summary = engine.room("weur-busy").await.unwrap();
    assert_eq!(summary.gifted, per_user * users);
    let settled = engine.settle("weur-busy").await.unwrap();
    assert_eq!(settled.settled, per_user * users);
    assert_eq!(engine.balance("star").await.unwrap(), per_user * users);
    let late = Gift {
        id: "late".into(),
        room: "weur-busy".into(),
        from: "fan-0".into(),
        amount: 1,
        sku: "rose".into(),
        qty: 1,
    };
    assert!(matches!(
        engine.gift(&late).await,
        Err(StoreError::Ledger(LedgerError::RoomNotOpen))
    ));
    assert!(engine.audit().await.unwrap().ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_matches_the_reference_model() {
    for seed in 0..6 {
        let engine = sqlite(1 + (seed % 4) as u16)
            .await
            .with_gift_commit(mode_of(seed));
        matches_the_reference_model(engine, seed).await;
    }
}

/// Both gift commit modes meet the same model: even seeds batched, odd ones per gift.
fn mode_of(seed: u64) -> GiftCommit {
    if seed.is_multiple_of(2) {
        GiftCommit::Batched
    } else {
        GiftCommit::PerGift
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_matches_the_reference_model() {
    for seed in 0..6 {
        let engine = postgres(1 + (seed % 4) as u16)
            .await
            .with_gift_commit(mode_of(seed));
        matches_the_reference_model(engine, seed).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_concurrent_gifts_with_duplicate_retries_count_once() {
    concurrent_gifts_with_duplicate_retries_count_once(sqlite(4).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_concurrent_gifts_with_duplicate_retries_count_once() {
    concurrent_gifts_with_duplicate_retries_count_once(postgres(4).await).await;
}

/// Four identical copies of one gift at once, with a balance that covers exactly one:
/// every copy gets the original answer (the id is checked before any refusal), the money
/// moves once; a different gift racing them for the same balance is refused for funds.
async fn identical_copies_racing_for_one_balance_get_the_original_answer(engine: SqlLedger) {
    let engine = Arc::new(engine);
    engine.open_room("weur-race", "star").await.unwrap();
    for round in 0..20 {
        let user = format!("racer-{round}");
        let seed = Deposit {
            id: "seed".into(),
            user: user.clone(),
            amount: 70,
        };
        engine.deposit(&seed).await.unwrap();
        let gift = |id: &str| Gift {
            id: id.into(),
            room: "weur-race".into(),
            from: user.clone(),
            amount: 50,
            sku: "rose".into(),
            qty: 1,
        };
        let mut tasks = Vec::new();
        for copy in 0..5 {
            let engine = engine.clone();
            // Four copies of "g", and one other gift racing for the same 70.
            let gift = gift(if copy == 4 { "other" } else { "g" });
            tasks.push(tokio::spawn(async move { engine.gift(&gift).await }));
        }
        let mut answers = Vec::new();
        for task in tasks {
            answers.push(task.await.unwrap().map_err(|e| match e {
                StoreError::Ledger(e) => e,
                other => panic!("engine failed: {other}"),
            }));
        }
        let other = answers.pop().unwrap();
        let copies_won = answers.iter().any(Result::is_ok);
        if copies_won {
            for answer in &answers {
                assert_eq!(
                    answer.as_ref().map(|r| r.balance),
                    Ok(20),
                    "round {round}: every copy gets the original answer: {answers:?}"
                );
            }
            assert_eq!(
                answers
                    .iter()
                    .filter(|a| matches!(a, Ok(r) if !r.replayed))
                    .count(),
                1,
                "one copy applied, the others replayed: {answers:?}"
            );
            assert_eq!(
                other,
                Err(LedgerError::InsufficientFunds {
                    balance: 20,
                    needed: 50
                })
            );
        } else {
            // The other gift won the balance: every copy is refused alike.
            assert_eq!(other.map(|r| r.balance), Ok(20));
            for answer in &answers {
                assert_eq!(
                    answer,
                    &Err(LedgerError::InsufficientFunds {
                        balance: 20,
                        needed: 50
                    })
                );
            }
        }
        assert_eq!(engine.balance(&user).await.unwrap(), 20);
        // A later retry of the copies gets the same answer as the race did.
        let retry = engine.gift(&gift("g")).await.map_err(|e| match e {
            StoreError::Ledger(e) => e,
            other => panic!("engine failed: {other}"),
        });
        assert_eq!(
            retry.map(|r| r.balance),
            answers[0].clone().map(|r| r.balance)
        );
    }
    let summary = engine.settle("weur-race").await.unwrap();
    assert_eq!(summary.settled, 20 * 50);
    assert!(engine.audit().await.unwrap().ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_identical_copies_racing_for_one_balance_get_the_original_answer() {
    for mode in [GiftCommit::Batched, GiftCommit::PerGift] {
        let engine = sqlite(4).await.with_gift_commit(mode);
        identical_copies_racing_for_one_balance_get_the_original_answer(engine).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_identical_copies_racing_for_one_balance_get_the_original_answer() {
    for mode in [GiftCommit::Batched, GiftCommit::PerGift] {
        let engine = postgres(4).await.with_gift_commit(mode);
        identical_copies_racing_for_one_balance_get_the_original_answer(engine).await;
    }
}

/// Settlement racing a stream of gifts to the same room: every gift is either accepted
/// (and paid to the host) or refused `room_not_open`; none fails with a database error
/// (a batch and the Clear step lock the room's stripes in one order), the host is paid
/// exactly the accepted ones, and the audit holds.
async fn settlement_racing_gifts_pays_exactly_the_accepted_ones(engine: SqlLedger) {
    let engine = Arc::new(engine);
    engine.open_room("weur-race-end", "star").await.unwrap();
    let users = 32u64;
    for u in 0..users {
        let seed = Deposit {
            id: "seed".into(),
            user: format!("ender-{u}"),
            amount: 100_000,
        };
        engine.deposit(&seed).await.unwrap();
    }
    let mut tasks = Vec::new();
    for u in 0..users {
        let engine = engine.clone();
        tasks.push(tokio::spawn(async move {
            let mut accepted = 0;
            for g in 0..40u64 {
                let gift = Gift {
                    id: format!("end-{g}"),
                    room: "weur-race-end".into(),
                    from: format!("ender-{u}"),
                    amount: 1 + g % 7,
                    sku: "rose".into(),
                    qty: 1,
                };
                match engine.gift(&gift).await {
                    Ok(receipt) => {
                        assert!(!receipt.replayed);
                        accepted += gift.amount;
                    }
                    Err(StoreError::Ledger(LedgerError::RoomNotOpen)) => {}
                    Err(other) => panic!("a gift racing settlement failed: {other}"),
                }
            }
            accepted
        }));
    }
    tokio::time::sleep(std::time::Duration::from_millis(30)).await;
    let settled = engine.settle("weur-race-end").await.expect("settle");
    let mut accepted = 0;
    for task in tasks {
        accepted += task.await.unwrap();
    }
    assert!(accepted > 0, "no gift got in before the settlement");
    assert_eq!(settled.gifted, accepted);
    assert_eq!(settled.settled, accepted);
    assert_eq!(engine.balance("star").await.unwrap(), accepted);
    assert!(engine.audit().await.unwrap().ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_settlement_racing_gifts_pays_exactly_the_accepted_ones() {
    settlement_racing_gifts_pays_exactly_the_accepted_ones(sqlite(4).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_settlement_racing_gifts_pays_exactly_the_accepted_ones() {
    for mode in [GiftCommit::Batched, GiftCommit::PerGift] {
        let engine = postgres(4).await.with_gift_commit(mode);
        settlement_racing_gifts_pays_exactly_the_accepted_ones(engine).await;
    }
}

/// Runs `count` tasks that start together (a barrier), their answers in order: spawned
/// and awaited one by one they would run one after another and race nothing.
async fn all_at_once<T, F>(count: usize, task: impl Fn(usize) -> F) -> Vec<T>
where
    T: Send + 'static,
    F: std::future::Future<Output = T> + Send + 'static,
{
    let start = Arc::new(tokio::sync::Barrier::new(count));
    let tasks: Vec<_> = (0..count)
        .map(|k| {
            let start = Arc::clone(&start);
            let work = task(k);
            tokio::spawn(async move {
                start.wait().await;
                work.await
            })
        })
        .collect();
    let mut answers = Vec::with_capacity(count);
    for task in tasks {
        answers.push(task.await.expect("task"));
    }
    answers
}

/// Sets accounts' balances in a shard's database, as a long history would have left them
/// (each account must exist).
async fn set_balances(pool: &sqlx::AnyPool, balances: &[(&str, i64)]) {
    for (account, balance) in balances {
        let updated = sqlx::query("UPDATE accounts SET balance = $1 WHERE account = $2")
            .bind(balance)
            .bind(account)
            .execute(pool)
            .await
            .unwrap()
            .rows_affected();
        assert_eq!(updated, 1, "{account}");
    }
}

/// A fresh one-shard PostgreSQL ledger's URL (dropping earlier processes' databases).
async fn fresh_postgres_shard() -> Vec<String> {
    let _ = postgres(1).await;
    fresh_databases(&format!("ovation_test_{}", unique()), 1)
        .await
        .expect("create shard database")
}

/// A balance stops at `LEDGER_BALANCE_MAX` (2^53 − 1, what a JavaScript number carries):
/// a deposit reaching it exactly is taken, one past it is refused `balance_limit` with
/// nothing changed, and four different deposits racing for the last minor unit move it
/// once. The balance is set near the limit in the database (with the treasury to match):
/// 9,007 deposits of the largest amount would take the test's time for nothing more.
async fn a_deposit_past_the_largest_balance_is_refused(urls: Vec<String>) {
    use ovation_proto::limits::{LEDGER_AMOUNT_MAX, LEDGER_BALANCE_MAX};
    let engine = Arc::new(SqlLedger::connect(&urls).await.expect("one shard"));
    let deposit = |id: &str, amount: u64| Deposit {
        id: id.into(),
        user: "rich".into(),
        amount,
    };
    engine.deposit(&deposit("d0", 1)).await.unwrap();
    let near = i64::try_from(LEDGER_BALANCE_MAX - LEDGER_AMOUNT_MAX - 1).unwrap();
    let pool = sqlx::AnyPool::connect(&urls[0]).await.unwrap();
    set_balances(&pool, &[("user:rich", near), ("treasury", -near)]).await;
    let refused = |balance: u64, amount: u64| LedgerError::BalanceLimit { balance, amount };

    assert_eq!(
        ledger_error(engine.deposit(&deposit("d1", LEDGER_AMOUNT_MAX)).await),
        Ok(LEDGER_BALANCE_MAX - 1)
    );
    // Four different deposits race for the one minor unit left.
    let answers = all_at_once(4, |k| {
        let engine = Arc::clone(&engine);
        async move {
            let racer = Deposit {
                id: format!("last-{k}"),
                user: "rich".into(),
                amount: 1,
            };
            ledger_error(engine.deposit(&racer).await)
        }
    })
    .await;
    assert_eq!(
        answers
            .iter()
            .filter(|a| **a == Ok(LEDGER_BALANCE_MAX))
            .count(),
        1,
        "{answers:?}"
    );
    assert!(
        answers
            .iter()
            .all(|a| *a == Ok(LEDGER_BALANCE_MAX) || *a == Err(refused(LEDGER_BALANCE_MAX, 1))),
        "{answers:?}"
    );
    for _ in 0..2 {
        assert_eq!(
            ledger_error(engine.deposit(&deposit("past", 1)).await),
            Err(refused(LEDGER_BALANCE_MAX, 1))
        );
    }
    assert_eq!(engine.balance("rich").await.unwrap(), LEDGER_BALANCE_MAX);

    // Copies of one deposit that fits once but not twice, racing: every copy gets the
    // original answer (a retry is never refused for the money its original added), and
    // a different body under the same id is `id_conflict`, not `balance_limit`.
    let pool_user = "careful";
    let near = i64::try_from(LEDGER_BALANCE_MAX - 10).unwrap();
    engine
        .deposit(&Deposit {
            id: "seed".into(),
            user: pool_user.into(),
            amount: 1,
        })
        .await
        .unwrap();
    let treasury = -near - i64::try_from(LEDGER_BALANCE_MAX).unwrap();
    set_balances(
        &pool,
        &[(&format!("user:{pool_user}"), near), ("treasury", treasury)],
    )
    .await;
    let copies = all_at_once(4, |_| {
        let engine = Arc::clone(&engine);
        async move {
            let copy = Deposit {
                id: "retried".into(),
                user: "careful".into(),
                amount: 6,
            };
            ledger_error(engine.deposit(&copy).await)
        }
    })
    .await;
    for copy in copies {
        assert_eq!(copy, Ok(LEDGER_BALANCE_MAX - 4));
    }
    let other_body = Deposit {
        id: "retried".into(),
        user: "careful".into(),
        amount: 7,
    };
    assert_eq!(
        ledger_error(engine.deposit(&other_body).await),
        Err(LedgerError::IdConflict)
    );
    assert_eq!(
        engine.balance("careful").await.unwrap(),
        LEDGER_BALANCE_MAX - 4
    );
    let audit = engine.audit().await.unwrap();
    assert!(audit.ok(), "a refused deposit moves nothing: {audit:?}");
}

/// A shard's treasury mints at most `LEDGER_SHARD_MINTED_MAX` (2^56), so no account leaves
/// an `i64` (past −2^63 the database's arithmetic fails, a 500): four deposits
/// racing for the last five minor units move them once, the others and one more past the
/// bound are refused `treasury_limit` with nothing moved, and the winner's retry gets its
/// answer. The shard's history is set near the bound in the database.
async fn a_deposit_past_the_treasurys_bound_is_refused(urls: Vec<String>) {
    use ovation_proto::limits::LEDGER_SHARD_MINTED_MAX;
    let engine = Arc::new(SqlLedger::connect(&urls).await.expect("one shard"));
    let deposit = |id: String, user: &str, amount: u64| Deposit {
        id,
        user: user.into(),
        amount,
    };
    engine
        .deposit(&deposit("seed".into(), "earlier", 1))
        .await
        .unwrap();
    let history = i64::try_from(LEDGER_SHARD_MINTED_MAX - 5).unwrap();
    let pool = sqlx::AnyPool::connect(&urls[0]).await.unwrap();
    set_balances(&pool, &[("user:earlier", history), ("treasury", -history)]).await;
    let refused = |amount: u64| {
        Err(LedgerError::TreasuryLimit {
            minted: LEDGER_SHARD_MINTED_MAX,
            amount,
        })
    };
    let answers = all_at_once(4, |k| {
        let engine = Arc::clone(&engine);
        let racer = deposit(format!("last-{k}"), &format!("racer{k}"), 5);
        async move { ledger_error(engine.deposit(&racer).await) }
    })
    .await;
    let winner = answers.iter().position(|a| *a == Ok(5));
    assert!(winner.is_some(), "{answers:?}");
    assert_eq!(
        answers.iter().filter(|a| **a == refused(5)).count(),
        3,
        "{answers:?}"
    );
    for _ in 0..2 {
        assert_eq!(
            ledger_error(engine.deposit(&deposit("past".into(), "late", 1)).await),
            refused(1)
        );
    }
    assert_eq!(engine.balance("late").await.unwrap(), 0);
    let k = winner.unwrap();
    assert_eq!(
        ledger_error(
            engine
                .deposit(&deposit(format!("last-{k}"), &format!("racer{k}"), 5))
                .await
        ),
        Ok(5),
        "the winner's retry gets its answer"
    );
    let audit = engine.audit().await.unwrap();
    assert!(audit.ok(), "a refused deposit moves nothing: {audit:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_a_deposit_past_the_treasurys_bound_is_refused() {
    a_deposit_past_the_treasurys_bound_is_refused(sqlite_urls(&fresh_sqlite_dir(), 1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_a_deposit_past_the_treasurys_bound_is_refused() {
    let urls = fresh_postgres_shard().await;
    a_deposit_past_the_treasurys_bound_is_refused(urls).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_a_deposit_past_the_largest_balance_is_refused() {
    a_deposit_past_the_largest_balance_is_refused(sqlite_urls(&fresh_sqlite_dir(), 1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_a_deposit_past_the_largest_balance_is_refused() {
    let urls = fresh_postgres_shard().await;
    a_deposit_past_the_largest_balance_is_refused(urls).await;
}
