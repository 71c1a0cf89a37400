//! `cargo xtask bench fanout`: broadcast fan-out of our rooms against peers on this
//! machine, under the same load (`ovation-load fanout`), one target after another.
//!
//! Targets: `ovation` (the edge worker), `naive-do` and `partyserver` (bench/peers, the
//! Durable Objects a user writes first), all three in workerd through the same host
//! (bench/host/host.mjs: Miniflare, without `wrangler dev`'s proxy),
//! `socketio` (bench/peers/socketio on Node) and `native` (bench/native-peer, the
//! physical-limit reference). The same edge bundle also runs self-hosted
//! (`ovation-workerd`: workerd alone on the config `cargo xtask serve` writes, through
//! `ovation-selfhost`) and under the development server (`ovation-wrangler-dev`, opt-in:
//! its proxy dies near 3,300 sockets here). Each server runs in its own process group; its CPU time is
//! the sum over the group (node, workerd) across the generator's measured
//! window, so deliveries per CPU-second compare what each server spends per comment
//! delivered, whatever its process layout. Results: a table on stdout,
//! target/bench/fanout/report.json (raw reports, CPU, ratios, cost figures) and one
//! latency chart per target.

mod outcome;
mod report;
mod server;
mod shards;

pub(crate) use report::{format_number, print_table};
pub(crate) use server::{group_processes, ServerGroup, ServerSpec, SERVER_START_S_MAX};
pub use shards::bench_shards;

use crate::{build_worker, cargo, free_port, output_of, root, run, setup, step, Result};
use outcome::{JoinCpu, Outcome};
use report::{json_report, print_results};
use serde_json::{json, Value};
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const USAGE: &str = "\
usage: cargo xtask bench fanout [--viewers N] [--comments-per-s C] [--duration-s D]
                                [--rooms R] [--likes-per-s L] [--churn-per-s K]
                                [--warmup-s W] [--seed S] [--shards S]
                                [--only ovation,ovation-workerd,native,...]
defaults: 2000 viewers over all rooms, 20 comments/s and 0 likes/s per room, churn 0/s,
1 room, 20 s measured after 2 s warm-up, seed 1, every target but ovation-wrangler-dev;
--shards S makes each of our rooms a big room with S shards (default: what the audience
gives, none below 5,001)
targets: ovation (ours in workerd through Miniflare, as the peers), ovation-workerd (ours
self-hosted: workerd alone, `cargo xtask serve`'s config), ovation-wrangler-dev (ours under
`wrangler dev`; its proxy fails near 3,300 sockets here), naive-do, partyserver,
socketio, native";

/// Every target, in the order they run. The `ovation*` targets are ours (one Worker
/// bundle under three runtimes); the others are the peers.
const TARGETS: [&str; 7] = [
    "ovation",
    "ovation-workerd",
    "ovation-wrangler-dev",
    "naive-do",
    "partyserver",
    "socketio",
    "native",
];
/// Ours in workerd through Miniflare (bench/host/host.mjs), as the Durable Object peers
/// run, so that their ratios compare rooms, not hosts.
pub(crate) const OURS: &str = "ovation";
/// Ours self-hosted: workerd alone on the config `ovation-selfhost` writes.
const OURS_SELF_HOSTED: &str = "ovation-workerd";
/// Ours under `wrangler dev` (a proxy in front of workerd).
const OURS_WRANGLER_DEV: &str = "ovation-wrangler-dev";

/// Runs only when `--only` names it: `wrangler dev`'s proxy holds about six descriptors
/// per WebSocket and dies near 3,300 sockets under this machine's open-file limit.
const OPT_IN_TARGETS: [&str; 1] = [OURS_WRANGLER_DEV];

/// Whether the target runs our edge bundle (whatever the runtime).
fn is_ours(target: &str) -> bool {
    matches!(target, OURS | OURS_SELF_HOSTED | OURS_WRANGLER_DEV)
}

struct Params {
    viewers: u64,
    comments_per_s: f64,
    likes_per_s: f64,
    churn_per_s: f64,
    duration_s: u64,
    warmup_s: u64,
    rooms: u64,
    seed: u64,
    /// Our rooms' shard count (`None`: from the audience).
    shards: Option<u16>,
    /// Our rooms' expected audience (`None`: the viewers per room); set by the S curve.
    expected_audience: Option<u64>,
    only: Vec<&'static str>,
}

/// `--name value` and `--name=value` arguments as (name, value) pairs; `-h`/`--help` and a
/// missing value end with `usage`.
pub(crate) fn options(args: &[String], usage: &str) -> Result<Vec<(String, String)>> {
    let mut options = Vec::new();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        if arg == "-h" || arg == "--help" {
            return Err(usage.into());
        }
        let (name, inline) = match arg.split_once('=') {
            Some((name, value)) => (name, Some(value.to_owned())),
            None => (arg.as_str(), None),
        };
        let value = inline
            .or_else(|| args.next().cloned())
            .ok_or_else(|| format!("{name} needs a value\n{usage}"))?;
        options.push((name.to_owned(), value));
    }
    Ok(options)
}

impl Params {
    /// The options of `bench fanout` (also `bench shards`'s load options); `usage` is
    /// the text an error ends with.
    fn parse(options: &[(String, String)], usage: &str) -> Result<Params> {
        let mut params = Params {
            viewers: 2_000,
            comments_per_s: 20.0,
            likes_per_s: 0.0,
            churn_per_s: 0.0,
            duration_s: 20,
            warmup_s: 2,
            rooms: 1,
            seed: 1,
            shards: None,
            expected_audience: None,
            only: TARGETS
                .into_iter()
                .filter(|t| !OPT_IN_TARGETS.contains(t))
                .collect(),
        };
        for (name, value) in options {
            let name = name.as_str();
            let bad = |e: &dyn std::fmt::Display| format!("{name} {value}: {e}\n{usage}");
            match name {
                "--viewers" => params.viewers = value.parse().map_err(|e| bad(&e))?,
                "--comments-per-s" => params.comments_per_s = value.parse().map_err(|e| bad(&e))?,
                "--likes-per-s" => params.likes_per_s = value.parse().map_err(|e| bad(&e))?,
                "--churn-per-s" => params.churn_per_s = value.parse().map_err(|e| bad(&e))?,
                "--duration-s" => params.duration_s = value.parse().map_err(|e| bad(&e))?,
                "--warmup-s" => params.warmup_s = value.parse().map_err(|e| bad(&e))?,
                "--rooms" => params.rooms = value.parse().map_err(|e| bad(&e))?,
                "--seed" => params.seed = value.parse().map_err(|e| bad(&e))?,
                "--shards" => params.shards = Some(value.parse().map_err(|e| bad(&e))?),
                "--only" => {
                    params.only = Vec::new();
                    for wanted in value.split(',').filter(|t| !t.is_empty()) {
                        let target = TARGETS
                            .iter()
                            .find(|t| **t == wanted)
                            .ok_or_else(|| bad(&format!("unknown target `{wanted}`")))?;
                        params.only.push(target);
                    }
                }
                _ => return Err(format!("unknown option `{name}`\n{usage}")),
            }
        }
        Ok(params)
    }

    fn to_json(&self) -> Value {
        json!({
            "viewers": self.viewers,
            "comments_per_s": self.comments_per_s,
            "likes_per_s": self.likes_per_s,
            "churn_per_s": self.churn_per_s,
            "duration_s": self.duration_s,
            "warmup_s": self.warmup_s,
            "rooms": self.rooms,
            "seed": self.seed,
            "shards": self.shards,
            "expected_audience": self.expected_audience,
            "targets": self.only,
        })
    }
}

/// `cargo xtask bench fanout [options]` (the options follow `fanout` on the command line).
pub fn bench_fanout() -> Result {
    let args: Vec<String> = std::env::args()
        .skip_while(|a| a != "fanout")
        .skip(1)
        .collect();
    let params = Params::parse(&options(&args, USAGE)?, USAGE)?;
    let bench = prepare(params.only.iter().any(|t| is_ours(t)), "fanout")?;
    let (generator, out, ticks_per_s) = (&bench.generator, &bench.out, bench.ticks_per_s);
    let worker_build_error = &bench.worker_build_error;

    let mut outcomes = Vec::new();
    for target in params.only.iter().copied() {
        step(&format!(
            "fanout: {target} ({} viewers in {} room(s), {} comments/s, {} likes/s, {} s)",
            params.viewers,
            params.rooms,
            params.comments_per_s,
            params.likes_per_s,
            params.duration_s
        ));
        let measured = match worker_build_error {
            Some(error) if is_ours(target) => Err(error.clone()),
            _ => measure(target, &params, generator, out, ticks_per_s),
        };
        let outcome = match measured {
            Ok(outcome) => outcome,
            Err(error) => {
                eprintln!("fanout: {target} failed: {error}");
                Outcome {
                    target,
                    report: Value::Null,
                    server_cpu_s: None,
                    server_cpu_span: "none",
                    server_cpu_s_whole_run: None,
                    window_s: None,
                    joins_cpu: None,
                    error: Some(error),
                }
            }
        };
        outcomes.push(outcome);
    }

    step("fanout: results");
    print_results(&params, &outcomes);
    let report = json_report(&params, &outcomes, ticks_per_s);
    let report_path = out.join("report.json");
    let text = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
    fs::write(&report_path, text)
        .map_err(|e| format!("cannot write {}: {e}", report_path.display()))?;
    println!("\nreport: {}", report_path.display());
    println!("charts: {}/<target>.png", out.display());
    match outcomes
        .iter()
        .find(|o| is_ours(o.target) && o.error.is_some())
    {
        Some(Outcome {
            target,
            error: Some(error),
            ..
        }) => Err(format!("the {target} target failed: {error}")),
        _ => Ok(()),
    }
}

/// What every fan-out benchmark needs before its first run.
pub(crate) struct Bench {
    pub(crate) generator: PathBuf,
    /// `target/bench/<name>`.
    pub(crate) out: PathBuf,
    ticks_per_s: f64,
    /// Fails the ovation target only: the peers still run.
    pub(crate) worker_build_error: Option<String>,
}

/// Installs the tools, builds the generator, the native peer and (when `with_ours`) the
/// edge worker.
pub(crate) fn prepare(with_ours: bool, name: &str) -> Result<Bench> {
    setup()?;
    let root = root();
    step("building ovation-load and ovation-native-peer (release)");
    run(cargo()
        .args([
            "build",
            "--release",
            "-p",
            "ovation-load",
            "-p",
            "ovation-native-peer",
        ])
        .current_dir(&root))?;
    let worker_build_error = if with_ours {
        build_worker(true)
            .err()
            .map(|e| format!("the edge worker did not build: {e}"))
    } else {
        None
    };
    let generator = root.join("target/release/ovation-load");
    let has_fanout = Command::new(&generator)
        .args(["fanout", "--help"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !has_fanout {
        return Err(format!(
            "{} has no `fanout` scenario yet (`ovation-load fanout --help` fails)",
            generator.display()
        ));
    }
    let out = root.join("target/bench").join(name);
    fs::create_dir_all(&out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let ticks_per_s = output_of("getconf", &["CLK_TCK"])
        .and_then(|s| s.trim().parse::<f64>().ok())
        .unwrap_or(100.0);
    Ok(Bench {
        generator,
        out,
        ticks_per_s,
        worker_build_error,
    })
}

/// Starts the target's server, runs the load generator against it, stops the server.
fn measure(
    target: &'static str,
    params: &Params,
    generator: &Path,
    out: &Path,
    ticks_per_s: f64,
) -> Result<Outcome> {
    let root = root();
    let port = free_port();
    let state = out.join(format!("{target}-state"));
    let _ = fs::remove_dir_all(&state);
    let spec = ServerSpec::of(target, port, &state)?;
    let log = out.join(format!("{target}.server.log"));
    let mut group = ServerGroup::start(&spec.program, &spec.args, &spec.dir, &log)?;
    group.wait_ready(port, &spec.ready, Duration::from_secs(SERVER_START_S_MAX))?;
    eprintln!(
        "fanout: {target} is up on 127.0.0.1:{port} (log {})",
        log.display()
    );

    let report_path = out.join(format!("{target}.json"));
    let chart_path = out.join(format!("{target}.png"));
    let _ = fs::remove_file(&report_path);
    // The generator raises its own descriptor limit.
    let mut load = Command::new(generator);
    load.arg("fanout")
        .args(&spec.generator_args)
        .args(["--rooms", &params.rooms.to_string()])
        .args(["--viewers", &params.viewers.to_string()])
        .args(["--comments-per-s", &params.comments_per_s.to_string()])
        .args(["--likes-per-s", &params.likes_per_s.to_string()])
        .args(["--churn-per-s", &params.churn_per_s.to_string()])
        .args(["--duration-s", &params.duration_s.to_string()])
        .args(["--warmup-s", &params.warmup_s.to_string()])
        .args(["--seed", &params.seed.to_string()])
        .args(
            params
                .shards
                .filter(|_| is_ours(target))
                .map(|shards| ["--shards".to_owned(), shards.to_string()])
                .into_iter()
                .flatten(),
        )
        .args(
            params
                .expected_audience
                .filter(|_| is_ours(target))
                .map(|audience| ["--expected-audience".to_owned(), audience.to_string()])
                .into_iter()
                .flatten(),
        )
        .arg("--json")
        .arg(&report_path)
        .arg("--png")
        .arg(&chart_path)
        .current_dir(&root)
        .stderr(Stdio::piped());
    let cpu = run_generator(&mut load, &group, params.warmup_s)?;
    group.stop();
    let report = fs::read_to_string(&report_path)
        .ok()
        .and_then(|text| serde_json::from_str::<Value>(&text).ok());
    let error = match (&report, cpu.status.success()) {
        (Some(_), true) => None,
        (Some(_), false) => Some(format!(
            "ovation-load exited with {} (report kept)",
            cpu.status
        )),
        (None, _) => {
            return Err(format!(
                "ovation-load exited with {} and wrote no report at {}",
                cpu.status,
                report_path.display()
            ))
        }
    };
    let seconds = |ticks: u64| ticks as f64 / ticks_per_s;
    let (server_cpu_s, server_cpu_span) = match cpu.window_ticks {
        Some(ticks) => (seconds(ticks), "window"),
        None => {
            eprintln!(
                "fanout: {target}: the generator's window lines were not seen; server CPU \
                 is over the whole run (connecting and warm-up included)"
            );
            (seconds(cpu.whole_run_ticks), "whole run")
        }
    };
    Ok(Outcome {
        target,
        report: report.unwrap_or(Value::Null),
        server_cpu_s: Some(server_cpu_s),
        server_cpu_span,
        server_cpu_s_whole_run: Some(seconds(cpu.whole_run_ticks)),
        window_s: cpu.window_s,
        joins_cpu: cpu.join_ticks.map(|(ticks, wall_s)| JoinCpu {
            server_cpu_s: seconds(ticks),
            wall_s,
        }),
        error,
    })
}

/// The server's CPU ticks while the generator ran.
struct GeneratorRun {
    status: ExitStatus,
    /// Over the measured window only (after connecting and warm-up), when the
    /// generator's phase lines were seen.
    window_ticks: Option<u64>,
    /// Wall-clock length of that sample (about `--duration-s`).
    window_s: Option<f64>,
    /// From the generator's start to its end.
    whole_run_ticks: u64,
    /// Over the connect phase (`connecting …` to `connected …`), with its wall-clock
    /// length.
    join_ticks: Option<(u64, f64)>,
}

/// Runs the generator, echoing its stderr, and samples the server group's CPU at the
/// start and end of the generator's measured window, so that CPU time and deliveries
/// (counted in the window) cover the same seconds. The generator says
/// `running N s (W s warm-up)` when warm-up starts and `window over` when the window
/// ends.
fn run_generator(load: &mut Command, group: &ServerGroup, warmup_s: u64) -> Result<GeneratorRun> {
    let whole_run_start = group.cpu_ticks();
    let mut child = load
        .spawn()
        .map_err(|e| format!("cannot run the load generator: {e}"))?;
    let stderr = child.stderr.take().ok_or("no stderr pipe")?;
    let (lines_in, lines) = mpsc::channel::<String>();
    let echo = std::thread::spawn(move || {
        for line in BufReader::new(stderr)
            .lines()
            .map_while(std::result::Result::ok)
        {
            eprintln!("{line}");
            let _ = lines_in.send(line);
        }
    });
    let mut window_starts_at: Option<Instant> = None;
    let mut window_start: Option<(Instant, u64)> = None;
    let mut window_end: Option<(Instant, u64)> = None;
    let mut joins_start: Option<(Instant, u64)> = None;
    let mut join_ticks: Option<(u64, f64)> = None;
    loop {
        let wait = match (window_starts_at, window_start) {
            (Some(at), None) => at.saturating_duration_since(Instant::now()),
            _ => Duration::from_secs(1),
        };
        let line = match lines.recv_timeout(wait) {
            Ok(line) => Some(line),
            Err(mpsc::RecvTimeoutError::Timeout) => None,
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        };
        if window_start.is_none() && window_starts_at.is_some_and(|at| Instant::now() >= at) {
            window_start = Some((Instant::now(), group.cpu_ticks()));
        }
        let Some(line) = line else { continue };
        if joins_start.is_none() && line.contains("ovation-load: connecting ") {
            joins_start = Some((Instant::now(), group.cpu_ticks()));
        } else if let (Some((at, ticks)), None) = (joins_start, join_ticks) {
            if line.contains("ovation-load: connected ") && line.contains(" in ") {
                let spent = group.cpu_ticks().saturating_sub(ticks);
                join_ticks = Some((spent, at.elapsed().as_secs_f64()));
            }
        }
        if window_starts_at.is_none() && line.contains("ovation-load: running ") {
            window_starts_at = Some(Instant::now() + Duration::from_secs(warmup_s));
        } else if line.contains("ovation-load: window over") && window_start.is_some() {
            window_end = Some((Instant::now(), group.cpu_ticks()));
        }
    }
    let status = child
        .wait()
        .map_err(|e| format!("waiting for the load generator: {e}"))?;
    let whole_run_ticks = group.cpu_ticks().saturating_sub(whole_run_start);
    let _ = echo.join();
    let window = match (window_start, window_end) {
        (Some((start, start_ticks)), Some((end, end_ticks))) => Some((
            end_ticks.saturating_sub(start_ticks),
            end.duration_since(start).as_secs_f64(),
        )),
        _ => None,
    };
    Ok(GeneratorRun {
        status,
        window_ticks: window.map(|(ticks, _)| ticks),
        window_s: window.map(|(_, s)| s),
        whole_run_ticks,
        join_ticks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Params> {
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        Params::parse(&options(&args, USAGE)?, USAGE)
    }

    #[test]
    fn every_target_but_wrangler_dev_runs_by_default() {
        let params = parse(&[]).unwrap();
        assert!(params.only.contains(&OURS_SELF_HOSTED));
        assert!(!params.only.contains(&OURS_WRANGLER_DEV));
        assert_eq!(params.only.len(), TARGETS.len() - OPT_IN_TARGETS.len());
    }

    #[test]
    fn only_picks_our_runtimes_by_name_and_refuses_unknown_ones() {
        let params = parse(&["--only", "ovation,ovation-workerd,ovation-wrangler-dev"]).unwrap();
        assert_eq!(params.only, [OURS, OURS_SELF_HOSTED, OURS_WRANGLER_DEV]);
        assert!(params.only.iter().all(|t| is_ours(t)));
        assert!(!is_ours("naive-do"));
        assert!(parse(&["--only", "ovation-miniflare"]).is_err());
    }
}
