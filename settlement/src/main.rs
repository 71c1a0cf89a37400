//! `ovation-settlement`: the gift ledger service.

use clap::Parser;
use ovation_settlement::http::{app, AppState, Metrics};
use ovation_settlement::store::GiftCommit;
use ovation_settlement::SqlLedger;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

/// The Ovation settlement service: a sharded gift ledger with room accounts and
/// exactly-once settlement, on SQLite files (default) or PostgreSQL databases.
#[derive(Parser)]
#[command(name = "ovation-settlement", version)]
struct Args {
    /// Address to listen on.
    #[arg(
        long,
        env = "OVATION_SETTLEMENT_LISTEN",
        default_value = "127.0.0.1:8788"
    )]
    listen: String,
    /// Bearer secret shared with the edge worker (required).
    #[arg(long, env = "OVATION_SETTLEMENT_SECRET", hide_env_values = true)]
    secret: String,
    /// PostgreSQL shards, one URL per shard (comma-separated or repeated). Without it,
    /// SQLite files in --data-dir are used.
    #[arg(long, env = "OVATION_SETTLEMENT_POSTGRES", value_delimiter = ',')]
    postgres: Vec<String>,
    /// Directory of the SQLite shard files (shard-N.db).
    #[arg(
        long,
        env = "OVATION_SETTLEMENT_DATA",
        default_value = ".data/settlement"
    )]
    data_dir: PathBuf,
    /// Number of SQLite shards (1..=64). Never change it for existing data: each
    /// database records which shard of how many it is at the first start, and a start
    /// with another count (or PostgreSQL URLs in another order) is refused.
    #[arg(long, env = "OVATION_SETTLEMENT_SHARDS", default_value_t = 4)]
    shards: u16,
    /// How gifts commit: `batched` (group commit per shard: the gifts that arrived while
    /// the previous batch committed go in one transaction, each with its own outcome) or
    /// `per-gift` (one transaction each, for comparison).
    #[arg(
        long,
        env = "OVATION_SETTLEMENT_GIFT_COMMIT",
        default_value = "batched"
    )]
    gift_commit: GiftCommit,
    /// Serve `GET /metrics` without the bearer (for a scraper on a private network).
    /// Off by default: the counters tell who uses the service how, so they need the
    /// bearer like every other route except the OpenAPI document.
    #[arg(long, env = "OVATION_SETTLEMENT_METRICS_PUBLIC")]
    metrics_public: bool,
    /// Fault injection for crash tests: after this many committed writes, stop writing
    /// and print a marker on stderr (0: never).
    #[arg(
        long,
        env = "OVATION_SETTLEMENT_FAULT_PAUSE_AFTER_COMMIT",
        default_value_t = 0,
        hide = true
    )]
    fault_pause_after_commit: u64,
}

/// Shortest secret accepted.
use ovation_proto::limits::SETTLEMENT_SECRET_BYTES_MIN as SECRET_BYTES_MIN;

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ovation-settlement: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), String> {
    if args.secret.len() < SECRET_BYTES_MIN {
        return Err(format!(
            "--secret must be at least {SECRET_BYTES_MIN} bytes"
        ));
    }
    let urls = if args.postgres.is_empty() {
        std::fs::create_dir_all(&args.data_dir)
            .map_err(|e| format!("creating {}: {e}", args.data_dir.display()))?;
        (0..args.shards)
            .map(|k| format!("sqlite://{}/shard-{k}.db?mode=rwc", args.data_dir.display()))
            .collect()
    } else {
        args.postgres.clone()
    };
    let engine = if args.postgres.is_empty() {
        "sqlite"
    } else {
        "postgres"
    };
    let ledger = SqlLedger::connect(&urls)
        .await
        .map_err(|e| e.to_string())?
        .with_fault_pause_after_commit(args.fault_pause_after_commit)
        .with_gift_commit(args.gift_commit);
    let state = AppState {
        ledger,
        secret: Arc::new(args.secret),
        metrics: Arc::new(Metrics::default()),
        metrics_public: args.metrics_public,
    };
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .map_err(|e| format!("listening on {}: {e}", args.listen))?;
    tracing::info!(listen = %args.listen, engine, shards = urls.len(), "settlement service up");
    axum::serve(listener, app(state))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .map_err(|e| e.to_string())
}
