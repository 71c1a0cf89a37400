//! `ovation-load vote-burst | fanout`: see the library docs. Progress goes to stderr (a
//! progress bar when it is a terminal, and one plain line per phase), the report (JSON)
//! to stdout or `--json FILE`.

use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use ovation_auth::{dev, SigningKey};
use ovation_load::fanout::chart;
use ovation_load::{fanout, vote_burst, BurstConfig, FanoutConfig, Minter, Progress, Target};
use std::path::PathBuf;
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
    /// Viewers spread over chat rooms; senders comment at a steady rate (with likes and
    /// churn); measures each comment's delivery latency to every viewer, losses,
    /// duplicates, bytes and messages. Runs alike against our server and JSON or
    /// Socket.IO peers.
    Fanout(FanoutArgs),
}

#[derive(clap::Args)]
struct FanoutArgs {
    /// Which server: ours, a JSON peer, or a Socket.IO v4 peer.
    #[arg(long, value_enum)]
    target: Target,
    /// Our server's HTTP base (target ovation).
    #[arg(long, default_value = "http://127.0.0.1:8787")]
    base: String,
    /// Peer targets: a ws:// URL with {room} and {user} placeholders. Default for json:
    /// ws://127.0.0.1:9000/parties/main/{room}?user={user}; for socketio:
    /// ws://127.0.0.1:9000/socket.io/?EIO=4&transport=websocket&room={room}&user={user}.
    #[arg(long)]
    url_template: Option<String>,
    #[arg(long, default_value_t = 1)]
    rooms: usize,
    /// Viewers over all rooms, spread evenly.
    #[arg(long)]
    viewers: usize,
    /// Comments per second per room.
    #[arg(long, default_value_t = 20.0)]
    comments_per_s: f64,
    /// Likes per second per room, each from a random viewer.
    #[arg(long, default_value_t = 0.0)]
    likes_per_s: f64,
    /// Viewers leaving (each replaced by a new one in the same room) per second, over
    /// all rooms.
    #[arg(long, default_value_t = 0.0)]
    churn_per_s: f64,
    /// The measured window.
    #[arg(long, default_value_t = 20)]
    duration_s: u64,
    /// Load before the measured window; nothing in it is measured.
    #[arg(long, default_value_t = 2)]
    warmup_s: u64,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Viewers per room that comment (default: enough that each sends at most 0.5
    /// comments/s; our server limits a user to 1/s, burst 3).
    #[arg(long)]
    senders_per_room: Option<usize>,
    /// Room ids are <prefix>-<index>; the prefix starts with a region (weur-, wnam-, …).
    /// Default: weur-fanout-<unix ms>, fresh for every run.
    #[arg(long)]
    room_prefix: Option<String>,
    /// Target ovation: the audience rooms are created for (default: viewers per room).
    #[arg(long)]
    expected_audience: Option<u64>,
    /// Target ovation: grow each room to this many shards (1..=250, `SHARDS_PER_ROOM_MAX`) after creating it.
    #[arg(long)]
    shards: Option<u16>,
    /// The tenant whose key signs the viewers' tokens (target ovation).
    #[arg(long, default_value = dev::TENANT)]
    tenant: String,
    #[arg(long, env = "OVATION_SECRET", default_value = dev::HS256_SECRET)]
    secret: String,
    /// Write the report here instead of stdout.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Draw per-second latency and deliveries into this PNG.
    #[arg(long)]
    png: Option<PathBuf>,
    /// Exit non-zero when any owed delivery was lost or any comment arrived twice.
    #[arg(long)]
    fail_on_loss: bool,
}

fn main() -> ExitCode {
    match Cli::parse().scenario {
        scenario @ Scenario::VoteBurst { .. } => run_vote_burst(scenario),
        Scenario::Fanout(args) => run_fanout(args),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// Writes the report to `path`, or stdout.
fn write_report(text: &str, path: Option<&PathBuf>) -> Result<(), String> {
    match path {
        Some(path) => {
            std::fs::write(path, text).map_err(|e| format!("writing {}: {e}", path.display()))
        }
        None => {
            println!("{text}");
            Ok(())
        }
    }
}

fn run_fanout(args: FanoutArgs) -> ExitCode {
    let config = FanoutConfig {
        target: args.target,
        url_template: args
            .url_template
            .unwrap_or_else(|| args.target.default_url_template().into()),
        base: args.base,
        rooms: args.rooms,
        viewers: args.viewers,
        comments_per_s: args.comments_per_s,
        likes_per_s: args.likes_per_s,
        churn_per_s: args.churn_per_s,
        duration_s: args.duration_s,
        warmup_s: args.warmup_s,
        seed: args.seed,
        senders_per_room: args.senders_per_room,
        room_prefix: args
            .room_prefix
            .unwrap_or_else(|| format!("weur-fanout-{}", ovation_load::now_ms())),
        expected_audience: args.expected_audience,
        shards: args.shards,
        minter: Minter {
            key: SigningKey::hs256(args.secret.as_bytes()),
            tenant: args.tenant,
        },
    };
    let bar =
        ProgressBar::with_draw_target(Some(config.viewers as u64), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("{prefix:>10} [{bar:40}] {pos}/{len} {msg}")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    bar.set_prefix("connecting");
    let mut running = false;
    let on_progress = |update: Progress| match update {
        // Printed above the bar, or alone when stderr is not a terminal (the bar hides).
        Progress::Line(line) => bar.suspend(|| eprintln!("ovation-load: {line}")),
        Progress::Connecting {
            answered,
            connected,
            ..
        } => {
            bar.set_position(answered as u64);
            bar.set_message(format!("{connected} connected"));
        }
        Progress::Running {
            elapsed_s,
            total_s,
            deliveries_per_s,
            latency_ms_p99,
        } => {
            if !running {
                running = true;
                bar.set_prefix("running s");
                bar.set_length(total_s);
            }
            bar.set_position(elapsed_s);
            bar.set_message(format!(
                "{deliveries_per_s} deliveries/s, p99 {latency_ms_p99:.1} ms"
            ));
        }
    };
    let result = runtime().block_on(fanout(config, on_progress));
    bar.finish_and_clear();
    let report = match result {
        Ok(report) => report,
        Err(e) => {
            eprintln!("ovation-load: {e}");
            return ExitCode::FAILURE;
        }
    };
    let text = serde_json::to_string_pretty(&report).expect("serializable");
    if let Err(e) = write_report(&text, args.json.as_ref()) {
        eprintln!("ovation-load: {e}");
        return ExitCode::FAILURE;
    }
    if let Some(path) = &args.png {
        if let Err(e) = chart::draw(&report, path) {
            eprintln!("ovation-load: {e}");
            return ExitCode::FAILURE;
        }
    }
    if args.fail_on_loss && (report.losses > 0 || report.duplicates > 0) {
        eprintln!(
            "ovation-load: {} owed deliveries lost and {} duplicates (--fail-on-loss)",
            report.losses, report.duplicates
        );
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

fn run_vote_burst(scenario: Scenario) -> ExitCode {
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
    } = scenario
    else {
        unreachable!("called for vote-burst only")
    };
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
    let result = runtime().block_on(vote_burst(config, |line| eprintln!("ovation-load: {line}")));
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
