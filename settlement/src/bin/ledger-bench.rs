//! `cargo xtask bench ledger`: one busy room, many senders over 4 shards; gifts/s and
//! latency percentiles on each engine, in both gift commit modes (group commit, and one
//! transaction per gift), with pgbench's built-in simple-update TPS on the same
//! PostgreSQL printed beside it as the reference (the mean of a run before and one after
//! the PostgreSQL scenarios); then the rows that serialize: one hot sender giving to one
//! room, in both modes.

use ovation_ledger::{Deposit, Gift};
use ovation_settlement::postgres_admin::fresh_databases;
use ovation_settlement::store::{GiftBatchStats, GiftCommit};
use ovation_settlement::SqlLedger;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

const SHARDS: u16 = 4;
const SENDERS: u64 = 10_000;
const GIFTS: u64 = 20_000;
const CONCURRENCY: u64 = 64;

struct Figures {
    gifts_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    /// Group commit only: what the gift loops did.
    batches: GiftBatchStats,
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index].as_secs_f64() * 1000.0
}

/// The senders of a scenario: everyone (`SENDERS`), or one hot sender.
#[derive(Clone, Copy)]
enum Senders {
    Many,
    OneHot,
}

async fn run(engine: &str, ledger: SqlLedger, senders: Senders) -> Figures {
    let ledger = Arc::new(ledger);
    ledger.open_room("weur-bench", "star").await.expect("open");
    eprintln!("[{engine}] depositing to {SENDERS} senders…");
    let mut tasks = Vec::new();
    for worker in 0..CONCURRENCY {
        let ledger = ledger.clone();
        tasks.push(tokio::spawn(async move {
            for user in (worker..SENDERS).step_by(CONCURRENCY as usize) {
                let deposit = Deposit {
                    id: "seed".into(),
                    user: format!("fan-{user}"),
                    amount: 1_000_000,
                };
                ledger.deposit(&deposit).await.expect("deposit");
            }
        }));
    }
    for task in tasks {
        task.await.expect("deposit task");
    }
    eprintln!("[{engine}] {GIFTS} gifts, {CONCURRENCY} in flight…");
    let started = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..CONCURRENCY {
        let ledger = ledger.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            for n in (worker..GIFTS).step_by(CONCURRENCY as usize) {
                let from = match senders {
                    Senders::Many => n % SENDERS,
                    Senders::OneHot => 0,
                };
                let gift = Gift {
                    id: format!("g{n}"),
                    room: "weur-bench".into(),
                    from: format!("fan-{from}"),
                    amount: 1 + n % 50,
                    sku: "rose".into(),
                    qty: 1,
                };
                let at = Instant::now();
                ledger.gift(&gift).await.expect("gift");
                latencies.push(at.elapsed());
            }
            latencies
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.expect("gift task"));
    }
    let elapsed = started.elapsed();
    latencies.sort();
    let audit = ledger.audit().await.expect("audit");
    assert!(
        audit.ok(),
        "ledger invariants broken by the benchmark: {audit:?}"
    );
    let batches = ledger.gift_batch_stats();
    // PostgreSQL's connection slots are needed by the next run and by pgbench.
    ledger.close().await;
    Figures {
        gifts_per_s: GIFTS as f64 / elapsed.as_secs_f64(),
        p50_ms: percentile(&latencies, 0.50),
        p99_ms: percentile(&latencies, 0.99),
        batches,
    }
}

/// pgbench's simple-update script on its own database: the reference TPS.
fn pgbench_tps(database: &str) -> Result<f64, String> {
    let init = Command::new("pgbench")
        .args([
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-i",
            "-q",
            "-s",
            "4",
            database,
        ])
        .output()
        .map_err(|e| format!("cannot run pgbench: {e} (install postgresql-client)"))?;
    if !init.status.success() {
        return Err(format!(
            "pgbench -i failed: {}",
            String::from_utf8_lossy(&init.stderr)
        ));
    }
    let clients = CONCURRENCY.to_string();
    let out = Command::new("pgbench")
        .args([
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-b",
            "simple-update",
            "-T",
            "10",
        ])
        .args(["-c", &clients, "-j", "2", database])
        .output()
        .map_err(|e| format!("cannot run pgbench: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find(|l| l.starts_with("tps = "))
        .and_then(|l| l.trim_start_matches("tps = ").split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| {
            format!(
                "no tps in pgbench output: {}",
                String::from_utf8_lossy(&out.stderr)
            )
        })
}

async fn sqlite(dir: &std::path::Path, name: &str) -> SqlLedger {
    let dir = dir.join(name);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let urls: Vec<String> = (0..SHARDS)
        .map(|k| format!("sqlite://{}/shard-{k}.db?mode=rwc", dir.display()))
        .collect();
    SqlLedger::connect(&urls).await.expect("sqlite")
}

async fn postgres(name: &str) -> SqlLedger {
    let urls = fresh_databases(name, SHARDS)
        .await
        .expect("PostgreSQL on 127.0.0.1:5432");
    SqlLedger::connect(&urls).await.expect("postgres")
}

#[tokio::main]
async fn main() {
    sqlx::any::install_default_drivers();
    let dir = std::env::temp_dir().join(format!("ovation-ledger-bench-{}", std::process::id()));
    use GiftCommit::{Batched, PerGift};
    use Senders::{Many, OneHot};
    let mut rows: Vec<(String, Figures)> = Vec::new();
    for (label, mode, senders) in [
        ("sqlite, group commit", Batched, Many),
        ("sqlite, one tx per gift", PerGift, Many),
        ("sqlite, group, 1 hot sender", Batched, OneHot),
        ("sqlite, per gift, 1 hot sender", PerGift, OneHot),
    ] {
        let ledger = sqlite(&dir, &rows.len().to_string())
            .await
            .with_gift_commit(mode);
        rows.push((label.into(), run(label, ledger, senders).await));
    }
    let _ = std::fs::remove_dir_all(&dir);
    // pgbench before and after the PostgreSQL scenarios: this VM's load moves within
    // minutes, so the reference is the mean of the two, both printed.
    let pgbench_database = fresh_databases("ovation_bench_pgbench", 1)
        .await
        .expect("pgbench database");
    let pgbench_name = pgbench_database[0].rsplit('/').next().expect("a name");
    eprintln!("[pgbench] simple-update, {CONCURRENCY} clients, 10 s…");
    let pgbench_before = pgbench_tps(pgbench_name);
    for (label, mode, senders) in [
        ("postgres, group commit", Batched, Many),
        ("postgres, one tx per gift", PerGift, Many),
        ("postgres, group, 1 hot sender", Batched, OneHot),
        ("postgres, per gift, 1 hot sender", PerGift, OneHot),
    ] {
        let ledger = postgres(&format!("ovation_bench_ledger_{}", rows.len()))
            .await
            .with_gift_commit(mode);
        rows.push((label.into(), run(label, ledger, senders).await));
    }
    eprintln!("[pgbench] simple-update, {CONCURRENCY} clients, 10 s…");
    let pgbench_after = pgbench_tps(pgbench_name);

    println!("\nledger benchmark: 1 room, {SENDERS} senders (or 1 hot one), {SHARDS} shards, {GIFTS} gifts, {CONCURRENCY} in flight");
    println!(
        "{:<34} {:>10} {:>9} {:>9} {:>13}",
        "engine", "gifts/s", "p50 ms", "p99 ms", "gifts/batch"
    );
    for (name, f) in &rows {
        let per_batch = if f.batches.batches == 0 {
            String::new()
        } else {
            format!(
                "{:.1}{}",
                f.batches.gifts as f64 / f.batches.batches as f64,
                if f.batches.slow_batches > 0 {
                    format!(" ({} slow)", f.batches.slow_batches)
                } else {
                    String::new()
                }
            )
        };
        println!(
            "{name:<34} {:>10.0} {:>9.2} {:>9.2} {per_batch:>13}",
            f.gifts_per_s, f.p50_ms, f.p99_ms
        );
    }
    let figure = |label: &str| {
        rows.iter()
            .find(|(name, _)| name == label)
            .map(|(_, f)| f.gifts_per_s)
            .expect("measured")
    };
    println!(
        "ratio sqlite group commit / one tx per gift: {:.2}",
        figure("sqlite, group commit") / figure("sqlite, one tx per gift")
    );
    println!(
        "ratio group commit / one tx per gift, 1 hot sender: sqlite {:.2}, postgres {:.2}",
        figure("sqlite, group, 1 hot sender") / figure("sqlite, per gift, 1 hot sender"),
        figure("postgres, group, 1 hot sender") / figure("postgres, per gift, 1 hot sender")
    );
    match (pgbench_before, pgbench_after) {
        (Ok(before), Ok(after)) => {
            println!(
                "{:<34} {:>10.0}   (transactions/s, same PostgreSQL; {before:.0} before, {after:.0} after)",
                "pgbench simple-update, mean",
                (before + after) / 2.0
            );
            let tps = (before + after) / 2.0;
            println!(
                "ratio postgres group commit / pgbench: {:.2} (one tx per gift: {:.2}; 1 hot sender: {:.2})",
                figure("postgres, group commit") / tps,
                figure("postgres, one tx per gift") / tps,
                figure("postgres, group, 1 hot sender") / tps
            );
        }
        (Err(why), _) | (_, Err(why)) => println!("pgbench: {why}"),
    }
}
