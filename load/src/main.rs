//! `ovation-load vote-burst`: see the library docs. Progress goes to stderr, the report
//! (JSON) to stdout or `--json FILE`.

use clap::{Parser, Subcommand};
use ovation_auth::{dev, SigningKey};
use ovation_load::{vote_burst, BurstConfig, Minter};
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "ovation-load", about = "Load generator for Ovation live rooms")]
struct Cli {
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand)]
enum Scenario {
    /// N viewers join a room; a poll opens; a share of them vote within a burst; checks
    /// that every acknowledged vote is in the result and how soon the result arrives.
    VoteBurst {
        #[arg(long, default_value = "http://127.0.0.1:8787")]
        base: String,
        /// The room (it must exist and be live).
        #[arg(long)]
        room: String,
        #[arg(long, default_value_t = 2_000)]
        viewers: usize,
        #[arg(long, default_value_t = 70)]
        voting_percent: u32,
        #[arg(long, default_value_t = 1_000)]
        burst_ms: u64,
        #[arg(long, default_value_t = 5_000)]
        window_ms: u64,
        #[arg(long, default_value_t = 4)]
        options: u8,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// The tenant whose key signs the viewers' tokens.
        #[arg(long, default_value = dev::TENANT)]
        tenant: String,
        #[arg(long, env = "OVATION_SECRET", default_value = dev::HS256_SECRET)]
        secret: String,
        /// Write the report here instead of stdout.
        #[arg(long)]
        json: Option<std::path::PathBuf>,
    },
}

fn main() -> ExitCode {
    let Scenario::VoteBurst {
        base,
        room,
        viewers,
        voting_percent,
        burst_ms,
        window_ms,
        options,
        seed,
        tenant,
        secret,
        json,
    } = Cli::parse().scenario;
    let config = BurstConfig {
        base,
        room,
        viewers,
        voting_percent,
        burst_ms,
        window_ms,
        options,
        seed,
        minter: Minter {
            key: SigningKey::hs256(secret.as_bytes()),
            tenant,
        },
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let result = runtime.block_on(vote_burst(config, |line| eprintln!("ovation-load: {line}")));
    match result {
        Ok(report) => {
            let text = serde_json::to_string_pretty(&report).expect("serializable");
            match json {
                Some(path) => {
                    if let Err(e) = std::fs::write(&path, text) {
                        eprintln!("ovation-load: writing {}: {e}", path.display());
                        return ExitCode::FAILURE;
                    }
                }
                None => println!("{text}"),
            }
            if report.tallies_exact {
                ExitCode::SUCCESS
            } else {
                eprintln!("ovation-load: the result does not match the acknowledged votes");
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("ovation-load: {e}");
            ExitCode::FAILURE
        }
    }
}
