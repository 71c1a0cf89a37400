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

use crate::{build_worker, cargo, free_port, output_of, root, run, setup, step, Result};
use ovation_proto::limits::{room_sockets_max, SHARDS_PER_ROOM_MAX, SHARD_VIEWERS_TARGET};
use ovation_selfhost::{workerd_command, EdgeManifest, Secret, SelfHost};
use serde_json::{json, Value};
use std::ffi::OsString;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
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

/// Targets billed as Durable Objects on Cloudflare (requests per WebSocket connect and
/// message). Self-hosted workerd bills nothing per request.
const DURABLE_OBJECT_TARGETS: [&str; 4] = ["ovation", OURS_WRANGLER_DEV, "naive-do", "partyserver"];

/// Cloudflare bills incoming WebSocket messages to a Durable Object at 20 per request
/// (auto-response pings count 0); each WebSocket connect is one request.
const INCOMING_MESSAGES_PER_BILLED_REQUEST: f64 = 20.0;

/// The host bundles the Worker and starts workerd first: on two busy cores that can take a
/// while.
pub(crate) const SERVER_START_S_MAX: u64 = 180;

/// The shell that runs each server: raise the descriptor limit (thousands of sockets),
/// run the server with the arguments after the script, and stop the whole group when the
/// pipe on its stdin closes, that is when xtask ends, even by Ctrl-C (the group is not
/// the terminal's foreground group, so the terminal's signal does not reach it).
const SERVER_SHELL: &str = "ulimit -n \"$(ulimit -Hn)\" || exit 1; \
    \"$0\" \"$@\" </dev/null & read -r _lifeline; kill -TERM -$$";

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

/// What one target measured, or why it could not.
struct Outcome {
    target: &'static str,
    /// The load generator's report as written (field names read generically).
    report: Value,
    /// The server group's CPU over `server_cpu_span`: the generator's measured window
    /// when its phase lines were seen, else its whole run.
    server_cpu_s: Option<f64>,
    server_cpu_span: &'static str,
    server_cpu_s_whole_run: Option<f64>,
    window_s: Option<f64>,
    error: Option<String>,
}

impl Outcome {
    fn number(&self, field: &str) -> Option<f64> {
        self.report.get(field).and_then(Value::as_f64)
    }

    /// The first of these report fields that is there (names the report may use).
    fn first_number(&self, fields: &[&str]) -> Option<f64> {
        fields.iter().find_map(|field| self.number(field))
    }

    /// Viewers connected per second of the generator's connect phase (a join storm:
    /// every viewer connects at the start).
    fn joins_per_s(&self) -> Option<f64> {
        let connect_s = self.number("connect_s").filter(|s| *s > 0.0)?;
        Some(self.number("viewers_connected")? / connect_s)
    }

    fn deliveries_per_cpu_s(&self) -> Option<f64> {
        let cpu_s = self.server_cpu_s.filter(|s| *s > 0.0)?;
        Some(self.number("deliveries")? / cpu_s)
    }

    /// Server CPU per WebSocket message the viewers received, in µs: where batching
    /// pays (a batch carries several comments in one message).
    fn cpu_us_per_message(&self) -> Option<f64> {
        let messages = self.number("messages_received").filter(|m| *m > 0.0)?;
        Some(self.server_cpu_s? * 1e6 / messages)
    }

    /// Every data message the clients sent in the window (comments, likes, heartbeat
    /// answers, churn handshakes).
    fn client_messages(&self) -> Option<f64> {
        self.first_number(&["messages_sent", "client_messages_sent"])
    }

    fn client_messages_per_delivery(&self) -> Option<f64> {
        let deliveries = self.number("deliveries").filter(|d| *d > 0.0)?;
        Some(self.client_messages()? / deliveries)
    }

    /// Bytes on the wire per delivered comment: the report's payload bytes per delivery
    /// plus, when it counts received messages, the WebSocket header of each (2 bytes up
    /// to 125 payload bytes, 4 up to 64 KiB, 10 above; server frames are not masked). The
    /// flag says whether the headers are in.
    fn wire_bytes_per_delivery(&self) -> Option<(f64, bool)> {
        let payload = self.number("bytes_per_delivery")?;
        let frames = self
            .first_number(&["frames_received", "messages_received"])
            .filter(|f| *f > 0.0);
        let deliveries = self.number("deliveries").filter(|d| *d > 0.0);
        let (Some(frames), Some(deliveries)) = (frames, deliveries) else {
            return Some((payload, false));
        };
        let bytes_per_frame = self
            .first_number(&["payload_bytes_received", "bytes_received"])
            .unwrap_or(0.0)
            / frames;
        let header_bytes = match bytes_per_frame {
            b if b < 126.0 => 2.0,
            b if b < 65_536.0 => 4.0,
            _ => 10.0,
        };
        Some((payload + header_bytes * frames / deliveries, true))
    }

    /// WebSocket connects of the run: the report's `connects` when it has them, else the
    /// viewers connected at the start plus the churn's joins.
    fn connects(&self, params: &Params) -> Option<f64> {
        self.number("connects").or_else(|| {
            let churn_joins = self.number("churn_joins").unwrap_or_else(|| {
                params.churn_per_s
                    * self
                        .number("duration_s")
                        .unwrap_or(params.duration_s as f64)
            });
            Some(self.number("viewers_connected")? + churn_joins)
        })
    }

    /// Billable Durable Object requests of the run, split: one per WebSocket connect, and
    /// incoming messages at 20 to 1 (plus, for ours, the room↔shard requests when the
    /// report counts them).
    fn durable_object_requests(&self, params: &Params) -> Option<(f64, f64)> {
        if !DURABLE_OBJECT_TARGETS.contains(&self.target) {
            return None;
        }
        let internal = if is_ours(self.target) {
            self.number("do_internal_requests").unwrap_or(0.0)
        } else {
            0.0
        };
        Some((
            self.connects(params)?,
            self.client_messages()? / INCOMING_MESSAGES_PER_BILLED_REQUEST + internal,
        ))
    }

    /// `durable_object_requests` per 1,000 viewer-minutes of the window (viewers ×
    /// duration).
    fn durable_object_requests_per_1k_viewer_minutes(&self, params: &Params) -> Option<(f64, f64)> {
        let (connects, messages) = self.durable_object_requests(params)?;
        let viewers = self
            .number("viewers_connected")
            .unwrap_or(params.viewers as f64);
        let duration_s = self
            .number("duration_s")
            .unwrap_or(params.duration_s as f64);
        let per_1k = 1_000.0 / (viewers * duration_s / 60.0);
        per_1k
            .is_finite()
            .then_some((connects * per_1k, messages * per_1k))
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

const SHARDS_USAGE: &str = "\
usage: cargo xtask bench shards [--viewers 1000,5000,10000] [--shards 0,1,2,4]
                                [--comments-per-s C] [--duration-s D] [--seed S] ...
runs our rooms alone at every (viewers, shards) pair, one after another, under the same
host and load as `cargo xtask bench fanout` (whose other options it takes): how S shards
change deliveries per CPU-second and p99 latency. S = 0: the room object holds every
socket (at most 10,000); S > 0: the room is created small and grown to S shards.";

/// `cargo xtask bench shards`: the S curve of our rooms.
pub fn bench_shards() -> Result {
    let args: Vec<String> = std::env::args()
        .skip_while(|a| a != "shards")
        .skip(1)
        .collect();
    let mut viewer_counts: Vec<u64> = vec![1_000, 5_000, 10_000];
    let mut shard_counts: Vec<u16> = vec![0, 1, 2, 4];
    let mut load_options = Vec::new();
    for (name, value) in options(&args, SHARDS_USAGE)? {
        let bad = |e: &dyn std::fmt::Display| format!("{name} {value}: {e}\n{SHARDS_USAGE}");
        match name.as_str() {
            "--only" => return Err(format!("bench shards runs ours only\n{SHARDS_USAGE}")),
            "--viewers" => viewer_counts = parse_list(&value).map_err(|e| bad(&e))?,
            "--shards" => shard_counts = parse_list(&value).map_err(|e| bad(&e))?,
            _ => load_options.push((name, value)),
        }
    }
    if let Some(shards) = shard_counts.iter().find(|&&s| s > SHARDS_PER_ROOM_MAX) {
        return Err(format!(
            "--shards {shards}: at most {SHARDS_PER_ROOM_MAX} per room"
        ));
    }
    if viewer_counts.contains(&0) {
        return Err(format!(
            "--viewers: each count must be at least 1\n{SHARDS_USAGE}"
        ));
    }
    let mut params = Params::parse(&load_options, SHARDS_USAGE)?;
    params.only = vec![OURS];
    let bench = prepare(true, "shards")?;
    if let Some(error) = &bench.worker_build_error {
        return Err(error.clone());
    }

    let mut cells = Vec::new();
    let runs = viewer_counts.len() * shard_counts.len();
    for &viewers in &viewer_counts {
        for &shards in &shard_counts {
            let sockets_max = room_sockets_max(shards) as u64;
            let per_room = viewers.div_ceil(params.rooms.max(1));
            let outcome = if per_room > sockets_max {
                Err(format!(
                    "{per_room} viewers in a room are more than {shards} shard(s) hold \
                     ({sockets_max} sockets)"
                ))
            } else {
                step(&format!(
                    "shards: run {} of {runs}: {viewers} viewers, S = {shards}",
                    cells.len() + 1
                ));
                params.viewers = viewers;
                params.shards = (shards > 0).then_some(shards);
                // Created below the sharding threshold, then grown to S: the same room
                // whatever the audience would have given.
                params.expected_audience = Some(per_room.min(SHARD_VIEWERS_TARGET));
                let out = bench.out.join(format!("{viewers}-viewers-{shards}-shards"));
                fs::create_dir_all(&out)
                    .map_err(|e| format!("cannot create {}: {e}", out.display()))?;
                measure(OURS, &params, &bench.generator, &out, bench.ticks_per_s)
            };
            if let Err(error) = &outcome {
                eprintln!("shards: {viewers} viewers, S = {shards}: {error}");
            }
            cells.push((viewers, shards, outcome));
        }
    }

    step("shards: results");
    println!(
        "\nshards: ours alone; per room {} comments/s, {} s measured; each cell: deliveries \
         per CPU-second, p99 ms, and (when any) deliveries lost and comments sampled (shown to their sender \
         only)",
        params.comments_per_s, params.duration_s
    );
    let mut headers = vec!["viewers".to_owned()];
    headers.extend(shard_counts.iter().map(|s| format!("S = {s}")));
    let rows: Vec<Vec<String>> = viewer_counts
        .iter()
        .map(|&viewers| {
            let mut row = vec![format_number(Some(viewers as f64), 0)];
            row.extend(
                cells
                    .iter()
                    .filter(|(v, _, _)| *v == viewers)
                    .map(|(_, _, outcome)| shard_cell(outcome)),
            );
            row
        })
        .collect();
    print_table(
        &headers.iter().map(String::as_str).collect::<Vec<_>>(),
        &rows,
    );
    let report = json!({
        "params": params.to_json(),
        "cpus": std::thread::available_parallelism().map(|n| n.get()).ok(),
        "cells": cells.iter().map(|(viewers, shards, outcome)| match outcome {
            Ok(o) => json!({
                "viewers": viewers, "shards": shards, "ok": o.error.is_none(),
                "error": o.error,
                "deliveries_per_cpu_s": o.deliveries_per_cpu_s(),
                "server_cpu_us_per_message": o.cpu_us_per_message(),
                "server_cpu_s": o.server_cpu_s,
                "report": o.report,
            }),
            Err(error) => json!({
                "viewers": viewers, "shards": shards, "ok": false, "error": error,
            }),
        }).collect::<Vec<_>>(),
    });
    let report_path = bench.out.join("report.json");
    let text = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
    fs::write(&report_path, text)
        .map_err(|e| format!("cannot write {}: {e}", report_path.display()))?;
    println!("\nreport: {}", report_path.display());
    Ok(())
}

/// `1000,5000` → `[1000, 5000]`.
fn parse_list<T: std::str::FromStr>(value: &str) -> std::result::Result<Vec<T>, String>
where
    T::Err: std::fmt::Display,
{
    let list = value
        .split(',')
        .map(|item| {
            item.trim()
                .parse::<T>()
                .map_err(|e| format!("`{item}`: {e}"))
        })
        .collect::<std::result::Result<Vec<T>, String>>()?;
    if list.is_empty() {
        return Err("an empty list".into());
    }
    Ok(list)
}

fn shard_cell(outcome: &Result<Outcome>) -> String {
    let Ok(o) = outcome else {
        return "not run".into();
    };
    if o.report.is_null() {
        return "failed".into();
    }
    let mut cell = format!(
        "{} / {} ms",
        format_number(o.deliveries_per_cpu_s(), 0),
        format_number(o.number("latency_ms_p99"), 0)
    );
    let (lost, sampled) = (
        o.number("losses").unwrap_or(0.0),
        o.number("comments_sampled").unwrap_or(0.0),
    );
    if lost > 0.0 {
        cell.push_str(&format!(", {lost} lost"));
    }
    if sampled > 0.0 {
        cell.push_str(&format!(", {sampled} sampled"));
    }
    cell
}

/// How to run one target's server and point the load generator at it.
pub(crate) struct ServerSpec {
    pub(crate) program: PathBuf,
    pub(crate) args: Vec<OsString>,
    pub(crate) dir: PathBuf,
    pub(crate) ready: Ready,
    /// The generator's `--target` and endpoint options.
    pub(crate) generator_args: Vec<String>,
}

impl ServerSpec {
    pub(crate) fn of(target: &str, port: u16, state: &Path) -> Result<ServerSpec> {
        let root = root();
        let json_peer = vec![
            "--target".into(),
            "json".into(),
            "--url-template".into(),
            format!("ws://127.0.0.1:{port}/parties/main/{{room}}?user={{user}}"),
        ];
        // The Durable Object targets run in workerd through bench/host/host.mjs
        // (Miniflare, bundled as `wrangler deploy` bundles), not under `wrangler dev`:
        // the dev proxy holds about six descriptors per WebSocket and dies near 3,300
        // sockets under this machine's open-file limit, and it adds its own CPU per
        // message to every Durable Object target alike.
        let workerd = |dir: &str, ready: Ready, generator_args: Vec<String>| ServerSpec {
            program: PathBuf::from("node"),
            args: vec![
                root.join("bench/host/host.mjs").into(),
                "--config".into(),
                root.join(dir).join("wrangler.toml").into(),
                "--port".into(),
                port.to_string().into(),
                "--persist".into(),
                state.as_os_str().to_owned(),
            ],
            dir: root.join(dir),
            ready,
            generator_args,
        };
        let ours_args = vec![
            "--target".into(),
            "ovation".into(),
            "--base".into(),
            format!("http://127.0.0.1:{port}"),
        ];
        // wrangler.toml carries no key: the development tenants' keys come from a
        // generated file, as under `wrangler dev` (an env file) or an operator's
        // `--keys-file` (the keys' JSON).
        let dev_keys_file = |name: &str, text: String| -> Result<PathBuf> {
            fs::create_dir_all(state).map_err(|e| format!("creating {}: {e}", state.display()))?;
            let file = state.join(name);
            fs::write(&file, text).map_err(|e| format!("writing {}: {e}", file.display()))?;
            Ok(file)
        };
        Ok(match target {
            OURS => {
                let env_file = dev_keys_file("dev.vars", ovation_auth::dev::dev_vars(&[]))?;
                let mut spec = workerd("edge-worker", Ready::HttpOk("/v1/openapi.json"), ours_args);
                spec.args.extend(["--env-file".into(), env_file.into()]);
                spec
            }
            OURS_SELF_HOSTED => {
                // As an operator runs it: the config `cargo xtask serve` writes (crate
                // ovation-selfhost) into a data directory, and the command it starts.
                let keys =
                    dev_keys_file("tenant-keys.json", ovation_auth::dev::tenant_keys_json())?;
                let manifest = EdgeManifest::read(&root.join("edge-worker/wrangler.toml"))
                    .map_err(|e| e.to_string())?;
                let config = SelfHost {
                    listen: format!("127.0.0.1:{port}"),
                    data_dir: state.to_path_buf(),
                    bundle_dir: root.join("edge-worker/build"),
                    tenant_keys: Secret::File(keys),
                    settlement: None,
                    vars: Vec::new(),
                }
                .write(&manifest)
                .map_err(|e| e.to_string())?;
                let command = workerd_command(&crate::serve::workerd_default(), &config);
                ServerSpec {
                    program: PathBuf::from(command.get_program()),
                    args: command.get_args().map(OsString::from).collect(),
                    dir: command
                        .get_current_dir()
                        .map_or_else(|| state.to_path_buf(), Path::to_path_buf),
                    ready: Ready::HttpOk("/v1/openapi.json"),
                    generator_args: ours_args,
                }
            }
            OURS_WRANGLER_DEV => {
                let env_file = dev_keys_file("dev.vars", ovation_auth::dev::dev_vars(&[]))?;
                // wrangler dev serves a copy of the Worker as built now: it reloads, and
                // drops every socket, when the file it serves changes, and on a shared
                // machine someone may rebuild during a run. (The other runtimes of ours
                // copy the bundle when they start.)
                let worker = state.join("worker");
                copy_files(&root.join("edge-worker/build"), &worker.join("build"))?;
                copy_files_named(&root.join("edge-worker"), &worker, &["wrangler.toml"])?;
                ServerSpec {
                    program: root.join("node_modules/.bin/wrangler"),
                    args: vec![
                        "dev".into(),
                        "--config".into(),
                        worker.join("wrangler.toml").into(),
                        "--ip".into(),
                        "127.0.0.1".into(),
                        "--port".into(),
                        port.to_string().into(),
                        "--inspector-port".into(),
                        free_port().to_string().into(),
                        "--persist-to".into(),
                        state.join("wrangler").into(),
                        "--env-file".into(),
                        env_file.into(),
                        "--show-interactive-dev-session=false".into(),
                    ],
                    dir: worker,
                    ready: Ready::HttpOk("/v1/openapi.json"),
                    generator_args: ours_args,
                }
            }
            "naive-do" | "partyserver" => workerd(
                &format!("bench/peers/{target}"),
                Ready::HttpAnswer("/"),
                json_peer,
            ),
            "socketio" => ServerSpec {
                program: PathBuf::from("node"),
                args: vec![
                    root.join("bench/peers/socketio/server.mjs").into(),
                    port.to_string().into(),
                ],
                dir: root.clone(),
                ready: Ready::TcpConnect,
                generator_args: vec![
                    "--target".into(),
                    "socketio".into(),
                    "--url-template".into(),
                    format!(
                        "ws://127.0.0.1:{port}/socket.io/?EIO=4&transport=websocket\
                         &room={{room}}&user={{user}}"
                    ),
                ],
            },
            "native" => ServerSpec {
                program: root.join("target/release/ovation-native-peer"),
                args: vec!["--port".into(), port.to_string().into()],
                dir: root.clone(),
                ready: Ready::TcpConnect,
                generator_args: json_peer,
            },
            other => return Err(format!("unknown target `{other}`")),
        })
    }
}

/// Copies the files (not the directories) at the top of `from` into `to`.
fn copy_files(from: &Path, to: &Path) -> Result {
    let names: Vec<String> = fs::read_dir(from)
        .map_err(|e| format!("reading {}: {e}", from.display()))?
        .filter_map(|entry| entry.ok())
        .filter(|entry| entry.file_type().is_ok_and(|t| t.is_file()))
        .filter_map(|entry| entry.file_name().into_string().ok())
        .collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    copy_files_named(from, to, &names)
}

fn copy_files_named(from: &Path, to: &Path, names: &[&str]) -> Result {
    fs::create_dir_all(to).map_err(|e| format!("creating {}: {e}", to.display()))?;
    for name in names {
        fs::copy(from.join(name), to.join(name))
            .map_err(|e| format!("copying {}: {e}", from.join(name).display()))?;
    }
    Ok(())
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
    })
}

/// How to tell that a server is up.
pub(crate) enum Ready {
    /// An HTTP GET of the path answers 200 (the worker itself is serving).
    HttpOk(&'static str),
    /// An HTTP GET of the path answers anything below 500 (a peer's 404 will do).
    HttpAnswer(&'static str),
    /// The port accepts a TCP connection (servers that listen once they are ready).
    TcpConnect,
}

/// A server in its own process group (see `SERVER_SHELL`), stopped on drop.
pub(crate) struct ServerGroup {
    child: Child,
    /// Closing it (dropping it, or xtask ending) makes the shell stop the group.
    _lifeline: Option<ChildStdin>,
    log: PathBuf,
}

impl ServerGroup {
    pub(crate) fn start(
        program: &Path,
        args: &[OsString],
        dir: &Path,
        log: &Path,
    ) -> Result<ServerGroup> {
        let log_file =
            fs::File::create(log).map_err(|e| format!("cannot create {}: {e}", log.display()))?;
        let log_copy = log_file.try_clone().map_err(|e| e.to_string())?;
        let mut child = Command::new("sh")
            .args(["-c", SERVER_SHELL])
            .arg(program)
            .args(args)
            .current_dir(dir)
            .env("WRANGLER_SEND_METRICS", "false")
            .env("CI", "true")
            .stdin(Stdio::piped())
            .stdout(log_copy)
            .stderr(log_file)
            .process_group(0)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", program.display()))?;
        let lifeline = child.stdin.take();
        Ok(ServerGroup {
            child,
            _lifeline: lifeline,
            log: log.to_path_buf(),
        })
    }

    pub(crate) fn group_id(&self) -> u32 {
        self.child.id()
    }

    pub(crate) fn wait_ready(&mut self, port: u16, ready: &Ready, limit: Duration) -> Result {
        let started = Instant::now();
        let address = SocketAddr::from(([127, 0, 0, 1], port));
        while started.elapsed() < limit {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!(
                    "the server exited with {status} before it was ready; log:\n{}",
                    self.log_tail()
                ));
            }
            let up = match ready {
                Ready::TcpConnect => {
                    TcpStream::connect_timeout(&address, Duration::from_secs(1)).is_ok()
                }
                Ready::HttpOk(path) => http_status(address, path) == Some(200),
                Ready::HttpAnswer(path) => http_status(address, path).is_some_and(|s| s < 500),
            };
            if up {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(300));
        }
        Err(format!(
            "the server did not answer on port {port} within {limit:?}; log:\n{}",
            self.log_tail()
        ))
    }

    fn log_tail(&self) -> String {
        let log = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// User and system CPU ticks of every process in the group, including the children
    /// they have reaped (so a process that ends during the run still counts).
    fn cpu_ticks(&self) -> u64 {
        group_processes(self.group_id())
            .iter()
            // Fields 14 to 17 (utime, stime, cutime, cstime).
            .filter(|process| process.stat.len() >= 15)
            .map(|process| {
                process.stat[11..15]
                    .iter()
                    .filter_map(|f| f.parse::<u64>().ok())
                    .sum::<u64>()
            })
            .sum()
    }

    pub(crate) fn stop(&mut self) {
        let group = format!("-{}", self.group_id());
        let _ = Command::new("kill")
            .args(["-TERM", "--", &group])
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            let any_left = Command::new("kill")
                .args(["-0", "--", &group])
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if !any_left {
                break;
            }
            let _ = self.child.try_wait();
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.wait();
    }
}

impl Drop for ServerGroup {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The status code of `GET path`, if the server answers within a few seconds.
fn http_status(address: SocketAddr, path: &str) -> Option<u16> {
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(1)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).ok()?;
    // "HTTP/1.1 200"
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

pub(crate) fn format_number(value: Option<f64>, decimals: usize) -> String {
    match value {
        Some(v) if v.is_finite() => format!("{v:.decimals$}"),
        _ => "-".into(),
    }
}

/// Prints rows under headers, the first column left-aligned and the others right-aligned.
pub(crate) fn print_table(headers: &[&str], rows: &[Vec<String>]) {
    let widths: Vec<usize> = (0..headers.len())
        .map(|column| {
            rows.iter()
                .map(|row| row[column].chars().count())
                .chain([headers[column].chars().count()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: Vec<&str>| {
        let text: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(column, cell)| {
                if column == 0 {
                    format!("{cell:<width$}", width = widths[column])
                } else {
                    format!("{cell:>width$}", width = widths[column])
                }
            })
            .collect();
        println!("  {}", text.join("  "));
    };
    line(headers.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

fn print_results(params: &Params, outcomes: &[Outcome]) {
    println!(
        "\nfanout: {} viewers in {} room(s); per room {} comments/s and {} likes/s; churn \
         {}/s; {} s measured after {} s warm-up; seed {}",
        params.viewers,
        params.rooms,
        params.comments_per_s,
        params.likes_per_s,
        params.churn_per_s,
        params.duration_s,
        params.warmup_s,
        params.seed
    );
    let ours = ours_measured(outcomes);
    let measured: Vec<&Outcome> = outcomes.iter().filter(|o| !o.report.is_null()).collect();
    let rows: Vec<Vec<String>> = measured
        .iter()
        .map(|o| {
            vec![
                o.target.to_string(),
                format_number(o.number("viewers_connected"), 0),
                format_number(o.number("deliveries"), 0),
                format_number(o.number("losses"), 0),
                format_number(o.number("comments_sampled"), 0),
                format_number(o.number("duplicates"), 0),
                format_number(o.number("latency_ms_p50"), 1),
                format_number(o.number("latency_ms_p99"), 1),
                format_number(o.number("latency_ms_max"), 1),
                format_number(o.number("deliveries_per_s"), 0),
                format_number(o.joins_per_s(), 0),
                format_number(o.server_cpu_s, 2),
                format_number(o.deliveries_per_cpu_s(), 0),
                format_number(o.cpu_us_per_message(), 1),
                format_number(o.number("bytes_per_delivery"), 1),
            ]
        })
        .collect();
    print_table(
        &[
            "target",
            "viewers",
            "deliveries",
            "losses",
            "sampled",
            "dups",
            "p50 ms",
            "p99 ms",
            "max ms",
            "deliv/s",
            "joins/s",
            "server CPU s",
            "deliv/CPU-s",
            "CPU µs/msg",
            "B/delivery",
        ],
        &rows,
    );

    let mut headers_in = false;
    let rows: Vec<Vec<String>> = measured
        .iter()
        .map(|o| {
            let wire = o.wire_bytes_per_delivery();
            headers_in |= wire.is_some_and(|(_, headers)| headers);
            let requests = o.durable_object_requests_per_1k_viewer_minutes(params);
            let mut row = vec![
                o.target.to_string(),
                format_number(o.number("generator_cpu_s"), 2),
                format_number(o.client_messages_per_delivery(), 4),
                format_number(wire.map(|(bytes, _)| bytes), 1),
                format_number(requests.map(|(connects, messages)| connects + messages), 0),
                format_number(requests.map(|(_, messages)| messages), 1),
            ];
            // One pair of columns per runtime of ours: its deliveries per CPU-second over
            // this row's, and both p99s.
            for ours in &ours {
                if ours.target == o.target {
                    row.extend(["-".to_owned(), "-".to_owned()]);
                    continue;
                }
                row.push(format_number(
                    ratio(ours.deliveries_per_cpu_s(), o.deliveries_per_cpu_s()),
                    2,
                ));
                row.push(format!(
                    "{} vs {}",
                    format_number(ours.number("latency_ms_p99"), 1),
                    format_number(o.number("latency_ms_p99"), 1)
                ));
            }
            row
        })
        .collect();
    let mut headers: Vec<String> = [
        "target",
        "gen CPU s",
        "client msgs/delivery",
        "wire B/delivery",
        "DO req/1k viewer-min",
        "(messages)",
    ]
    .map(String::from)
    .to_vec();
    for ours in &ours {
        headers.push(format!("{}/row deliv/CPU-s", ours.target));
        headers.push(format!("p99 ms {} vs row", ours.target));
    }
    println!();
    print_table(
        &headers.iter().map(String::as_str).collect::<Vec<_>>(),
        &rows,
    );
    let spans: Vec<String> = measured
        .iter()
        .filter(|o| o.server_cpu_span != "window")
        .map(|o| format!("{} ({})", o.target, o.server_cpu_span))
        .collect();
    println!(
        "\n  server CPU s: user + system time of every process in the server's process group \
         (node, workerd, ...) over the measured window{}; CPU µs/msg: that time \
         per WebSocket message the viewers received.\n  \
         wire B/delivery: the report's payload bytes per delivered comment{}.\n  \
         DO req/1k viewer-min (Durable Object targets): WebSocket connects (1 request \
         each; a {} s run pays every viewer's connect, so they dominate) + incoming \
         WebSocket messages / 20{} (the \"messages\" column), per 1,000 viewer-minutes of \
         the window.",
        if spans.is_empty() {
            String::new()
        } else {
            format!("; over the whole run for {}", spans.join(", "))
        },
        if headers_in {
            " plus the WebSocket frame header (2-4 bytes) of each message received"
        } else {
            " (the report counts no frames: frame headers not included)"
        },
        params.duration_s,
        match ours.iter().find_map(|o| o.number("do_internal_requests")) {
            Some(_) => " + room↔shard requests (ovation)",
            None => "",
        }
    );
    for dropped in measured
        .iter()
        .filter(|o| o.number("viewers_dropped").is_some_and(|d| d > 0.0))
    {
        println!(
            "\n  {}: {} viewers were dropped during the run (the server restarted or \
             reloaded?): its figures do not compare with the others'",
            dropped.target,
            format_number(dropped.number("viewers_dropped"), 0)
        );
    }
    for failed in outcomes.iter().filter(|o| o.error.is_some()) {
        println!(
            "\n  {} FAILED: {}",
            failed.target,
            failed.error.as_deref().unwrap_or_default()
        );
    }
}

/// Every runtime of ours that was measured without error, in run order.
fn ours_measured(outcomes: &[Outcome]) -> Vec<&Outcome> {
    outcomes
        .iter()
        .filter(|o| is_ours(o.target) && o.error.is_none())
        .collect()
}

fn ratio(numerator: Option<f64>, denominator: Option<f64>) -> Option<f64> {
    Some(numerator? / denominator.filter(|d| *d > 0.0)?)
}

fn json_report(params: &Params, outcomes: &[Outcome], ticks_per_s: f64) -> Value {
    let ours = ours_measured(outcomes);
    let targets: Vec<Value> = outcomes
        .iter()
        .map(|o| {
            let wire = o.wire_bytes_per_delivery();
            // Keyed by the runtime of ours compared with this target.
            let versus_ours: serde_json::Map<String, Value> = ours
                .iter()
                .filter(|ours| ours.target != o.target)
                .map(|ours| {
                    (
                        ours.target.to_owned(),
                        json!({
                            "deliveries_per_cpu_s_ours_over_peer":
                                ratio(ours.deliveries_per_cpu_s(), o.deliveries_per_cpu_s()),
                            "latency_ms_p99_ours": ours.number("latency_ms_p99"),
                            "latency_ms_p99_peer": o.number("latency_ms_p99"),
                            "latency_ms_p99_ours_over_peer":
                                ratio(ours.number("latency_ms_p99"), o.number("latency_ms_p99")),
                        }),
                    )
                })
                .collect();
            json!({
                "target": o.target,
                "ok": o.error.is_none(),
                "error": o.error,
                "server_cpu_s": o.server_cpu_s,
                "server_cpu_span": o.server_cpu_span,
                "server_cpu_sample_s": o.window_s,
                "server_cpu_s_whole_run": o.server_cpu_s_whole_run,
                "deliveries_per_cpu_s": o.deliveries_per_cpu_s(),
                "server_cpu_us_per_message": o.cpu_us_per_message(),
                "joins_per_s": o.joins_per_s(),
                "client_messages_per_delivery": o.client_messages_per_delivery(),
                "wire_bytes_per_delivery": wire.map(|(bytes, _)| bytes),
                "wire_bytes_include_frame_headers": wire.map(|(_, headers)| headers),
                "durable_object_requests": o.durable_object_requests(params).map(
                    |(connects, messages)| json!({"connects": connects, "messages": messages,
                        "total": connects + messages})),
                "durable_object_requests_per_1k_viewer_minutes":
                    o.durable_object_requests_per_1k_viewer_minutes(params).map(
                        |(connects, messages)| json!({"connects": connects,
                            "messages": messages, "total": connects + messages})),
                "versus_ours": versus_ours,
                "report": o.report,
            })
        })
        .collect();
    json!({
        "params": params.to_json(),
        "cpus": std::thread::available_parallelism().map(|n| n.get()).ok(),
        "clock_ticks_per_s": ticks_per_s,
        "billing": "Durable Object requests: connects = WebSocket connects (1 each); \
            messages = incoming WebSocket messages / 20 (+ do_internal_requests for ovation \
            when reported); per 1,000 viewer-minutes = viewers_connected x duration_s / 60",
        "targets": targets,
    })
}

/// One process of a process group, from /proc.
pub(crate) struct GroupProcess {
    /// Its /proc directory.
    pub dir: PathBuf,
    /// The fields of `stat` after the command name, from field 3 (state) on.
    pub stat: Vec<String>,
}

/// Every process whose process group is `group` (the servers the benchmarks start lead
/// their own group, so their children are found however they were spawned).
pub(crate) fn group_processes(group: u32) -> Vec<GroupProcess> {
    let group = group.to_string();
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut processes = Vec::new();
    for entry in entries.flatten() {
        if !entry
            .file_name()
            .to_string_lossy()
            .bytes()
            .all(|b| b.is_ascii_digit())
        {
            continue;
        }
        let Ok(stat) = fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // The command name (field 2) may hold spaces and parentheses: the fields after
        // its closing parenthesis start at field 3 (state); field 5 is pgrp.
        let Some(after_name) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            continue;
        };
        let stat: Vec<String> = after_name.split_whitespace().map(str::to_owned).collect();
        if stat.get(2) == Some(&group) {
            processes.push(GroupProcess {
                dir: entry.path(),
                stat,
            });
        }
    }
    processes
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

    #[test]
    fn self_hosted_workerd_is_not_billed_per_request() {
        let outcome = Outcome {
            target: OURS_SELF_HOSTED,
            report: json!({"viewers_connected": 10.0, "messages_sent": 40.0}),
            server_cpu_s: None,
            server_cpu_span: "window",
            server_cpu_s_whole_run: None,
            window_s: None,
            error: None,
        };
        let params = parse(&[]).unwrap();
        assert_eq!(outcome.durable_object_requests(&params), None);
        let billed = Outcome {
            target: OURS,
            ..outcome
        };
        assert_eq!(billed.durable_object_requests(&params), Some((10.0, 2.0)));
    }

    #[test]
    fn joins_per_s_is_viewers_over_the_connect_phase() {
        let outcome = Outcome {
            target: OURS_SELF_HOSTED,
            report: json!({"viewers_connected": 1000.0, "connect_s": 4.0}),
            server_cpu_s: None,
            server_cpu_span: "window",
            server_cpu_s_whole_run: None,
            window_s: None,
            error: None,
        };
        assert_eq!(outcome.joins_per_s(), Some(250.0));
    }
}
