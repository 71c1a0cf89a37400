//! `cargo xtask bench soak [--minutes M]`: what a held socket costs in resident memory, and
//! whether memory stays flat over time, ours beside the naive Durable Object
//! (bench/peers/naive-do) in the same run.
//!
//! Each target runs in workerd through the host of `bench fanout` (bench/host/host.mjs),
//! loaded by the same generator (`ovation-load fanout`), one target after another:
//!
//! 1. Held sockets: N silent viewers (1,000, again 1,000, then 5,000) join one room and
//!    stay; resident memory is read before they join, while they are held, and after they
//!    left and the room ended (ours: the generator ends its rooms) or emptied (the peer).
//!    Bytes per held socket = (held − before) ÷ sockets connected. Neither workerd nor
//!    its allocator hands freed memory back to the system (returned to the OS = (held −
//!    after) ÷ (held − before) stays near 0 for both targets), so whether a room that
//!    ended gave its memory back is measured by reuse: the same N sockets again, in a new
//!    room, grow resident memory by what the first room did not give back
//!    (reused = 1 − growth again ÷ growth the first time).
//! 2. Soak (ours; `--soak-only` adds the peer): M minutes of steady mixed traffic in a few
//!    rooms (comments, likes, viewers leaving and joining again), a poll opened in one of
//!    them every `--poll-every-s`, and every `--cycle-every-s` a short-lived set of rooms
//!    that fills, chats, empties and is ended. Growth after warm-up = the last sample of
//!    the soak against the first one after warm-up.
//!
//! Resident memory is VmRSS (/proc/<pid>/status) summed over the workerd processes of the
//! server's process group (the node host that starts workerd is reported apart), sampled
//! every 10 s, and read three times two seconds apart (the median kept) at each
//! before/held/after point. Results: a table on stdout, target/bench/soak/report.json and
//! target/bench/soak/memory.png (memory over time, one line per target).

mod admin;
mod chart;
mod generator;
mod memory;
mod outcome;
mod report;

use crate::fanout::{
    format_number, options, prepare, Bench, ServerGroup, ServerSpec, OURS, SERVER_START_S_MAX,
};
use crate::{free_port, step, Result};
use admin::{open_poll, WasmProbe};
use chart::draw_chart;
use generator::{Generator, Load};
use memory::{mib, Recorder, Resident};
use outcome::{Held, Outcome, Soak};
use report::{json_report, print_results};
use serde_json::{json, Value};
use std::fs;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

const USAGE: &str = "\
usage: cargo xtask bench soak [--minutes M] [--warmup-minutes W] [--held 1000,5000]
                              [--only ovation,naive-do] [--soak-only ovation]
                              [--rooms R] [--viewers V] [--comments-per-s C]
                              [--likes-per-s L] [--churn-per-s K] [--poll-every-s P]
                              [--cycle-every-s S] [--seed S]
defaults: a 30-minute soak of ours after 5 minutes' warm-up (a third of shorter runs);
1,000 and 5,000 held sockets for ours and the naive Durable Object; soak traffic: 1,000
viewers in 10 rooms, per room 1 comment/s and 2 likes/s, 5 viewers/s leaving and joining
again, a poll every 20 s, and every 60 s 5 short-lived rooms of 40 viewers each";

/// Targets whose held sockets are measured, in order: ours and the naive Durable Object.
const TARGETS: [&str; 2] = [OURS, "naive-do"];

/// How often resident memory is sampled for the chart and the growth figure.
const SAMPLE_EVERY_S: u64 = 10;
/// A before/held/after point is the median of this many readings, this far apart.
const POINT_READINGS: usize = 3;
const POINT_READING_GAP_S: u64 = 2;
/// Quiet time after a server is up or a phase ends before the next "before" reading.
const SETTLE_S: u64 = 15;
/// Held sockets stay connected this long (the generator's measured window); they are read
/// `HELD_READ_AFTER_S` after the last one joined.
const HELD_S: u64 = 40;
const HELD_READ_AFTER_S: u64 = 20;
/// After the held sockets left (and the room ended), how long workerd gets to free them
/// (objects without connections are evicted after some seconds idle).
const RELEASE_WAIT_S: u64 = 45;
/// Connecting 5,000 viewers takes about 11 s on this machine; more is a failure.
const CONNECT_S_MAX: u64 = 120;
/// Each short-lived room set of the soak: rooms, viewers over them, and how long it chats.
const CYCLE_ROOMS: u64 = 5;
const CYCLE_VIEWERS: u64 = 200;
const CYCLE_CHAT_S: u64 = 20;
/// How long each soak poll stays open.
const POLL_WINDOW_MS: u64 = 10_000;

/// Goals of issue 20: our bytes per held socket at most the naive object's; growth after
/// warm-up under 5 %; a room that ended or emptied gives back at least this share of what
/// its sockets took, for the next room to reuse.
const GROWTH_PERCENT_MAX: f64 = 5.0;
const REUSED_PERCENT_MIN: f64 = 90.0;

struct Params {
    minutes: u64,
    warmup_minutes: Option<u64>,
    held: Vec<u64>,
    only: Vec<&'static str>,
    soak_only: Vec<&'static str>,
    rooms: u64,
    viewers: u64,
    comments_per_s: f64,
    likes_per_s: f64,
    churn_per_s: f64,
    poll_every_s: u64,
    cycle_every_s: u64,
    seed: u64,
}

impl Params {
    fn parse(args: &[String]) -> Result<Params> {
        let mut params = Params {
            minutes: 30,
            warmup_minutes: None,
            held: vec![1_000, 5_000],
            only: TARGETS.to_vec(),
            soak_only: vec![OURS],
            rooms: 10,
            viewers: 1_000,
            comments_per_s: 1.0,
            likes_per_s: 2.0,
            churn_per_s: 5.0,
            poll_every_s: 20,
            cycle_every_s: 60,
            seed: 1,
        };
        let targets = |value: &str| -> Result<Vec<&'static str>> {
            value
                .split(',')
                .filter(|t| !t.is_empty())
                .map(|wanted| {
                    TARGETS
                        .iter()
                        .copied()
                        .find(|t| *t == wanted)
                        .ok_or_else(|| {
                            format!("unknown target `{wanted}` (known: ovation, naive-do)")
                        })
                })
                .collect()
        };
        for (name, value) in options(args, USAGE)? {
            let bad = |e: &dyn std::fmt::Display| format!("{name} {value}: {e}\n{USAGE}");
            match name.as_str() {
                "--minutes" => params.minutes = value.parse().map_err(|e| bad(&e))?,
                "--warmup-minutes" => {
                    params.warmup_minutes = Some(value.parse().map_err(|e| bad(&e))?)
                }
                "--held" => {
                    params.held = value
                        .split(',')
                        .map(|n| n.trim().parse::<u64>())
                        .collect::<std::result::Result<_, _>>()
                        .map_err(|e| bad(&e))?
                }
                "--only" => params.only = targets(&value).map_err(|e| bad(&e))?,
                "--soak-only" => params.soak_only = targets(&value).map_err(|e| bad(&e))?,
                "--rooms" => params.rooms = value.parse().map_err(|e| bad(&e))?,
                "--viewers" => params.viewers = value.parse().map_err(|e| bad(&e))?,
                "--comments-per-s" => params.comments_per_s = value.parse().map_err(|e| bad(&e))?,
                "--likes-per-s" => params.likes_per_s = value.parse().map_err(|e| bad(&e))?,
                "--churn-per-s" => params.churn_per_s = value.parse().map_err(|e| bad(&e))?,
                "--poll-every-s" => params.poll_every_s = value.parse().map_err(|e| bad(&e))?,
                "--cycle-every-s" => params.cycle_every_s = value.parse().map_err(|e| bad(&e))?,
                "--seed" => params.seed = value.parse().map_err(|e| bad(&e))?,
                _ => return Err(format!("unknown option `{name}`\n{USAGE}")),
            }
        }
        if params.minutes == 0 {
            return Err(format!("--minutes must be at least 1\n{USAGE}"));
        }
        if params.held.contains(&0) || params.rooms == 0 || params.viewers < params.rooms {
            return Err(format!(
                "--held counts and --rooms must be at least 1, and --viewers at least --rooms\n{USAGE}"
            ));
        }
        if params.poll_every_s == 0 || params.cycle_every_s == 0 {
            return Err(format!(
                "--poll-every-s and --cycle-every-s must be at least 1\n{USAGE}"
            ));
        }
        if params.warmup_minutes.unwrap_or(0) >= params.minutes {
            return Err(format!(
                "--warmup-minutes must be less than --minutes\n{USAGE}"
            ));
        }
        Ok(params)
    }

    /// 5 minutes, or a third of a shorter soak.
    fn warmup_s(&self) -> u64 {
        match self.warmup_minutes {
            Some(minutes) => minutes * 60,
            None => (self.minutes * 60 / 3).min(300),
        }
    }

    fn to_json(&self) -> Value {
        json!({
            "minutes": self.minutes,
            "warmup_s": self.warmup_s(),
            "held": self.held,
            "targets": self.only,
            "soak_targets": self.soak_only,
            "rooms": self.rooms,
            "viewers": self.viewers,
            "comments_per_s_per_room": self.comments_per_s,
            "likes_per_s_per_room": self.likes_per_s,
            "churn_per_s": self.churn_per_s,
            "poll_every_s": self.poll_every_s,
            "cycle_every_s": self.cycle_every_s,
            "cycle_rooms": CYCLE_ROOMS,
            "cycle_viewers": CYCLE_VIEWERS,
            "cycle_chat_s": CYCLE_CHAT_S,
            "sample_every_s": SAMPLE_EVERY_S,
            "seed": self.seed,
        })
    }
}

/// `cargo xtask bench soak [options]`.
pub fn bench_soak() -> Result {
    let args: Vec<String> = std::env::args()
        .skip_while(|a| a != "soak")
        .skip(1)
        .collect();
    let params = Params::parse(&args)?;
    let bench = prepare(params.only.contains(&OURS), "soak")?;
    let mut outcomes = Vec::new();
    for target in params.only.iter().copied() {
        let outcome = match (&bench.worker_build_error, target) {
            (Some(error), OURS) => Outcome {
                target,
                held: Vec::new(),
                soak: None,
                samples: Vec::new(),
                error: Some(error.clone()),
            },
            _ => measure(target, &params, &bench),
        };
        if let Some(error) = &outcome.error {
            eprintln!("soak: {target} failed: {error}");
        }
        outcomes.push(outcome);
    }

    step("soak: results");
    let goals = print_results(&params, &outcomes);
    let chart_path = bench.out.join("memory.png");
    if let Err(error) = draw_chart(&params, &outcomes, &chart_path) {
        eprintln!("soak: {error}");
    }
    let report = json_report(&params, &outcomes, &goals);
    let report_path = bench.out.join("report.json");
    let text = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
    fs::write(&report_path, text)
        .map_err(|e| format!("cannot write {}: {e}", report_path.display()))?;
    println!("\nreport: {}", report_path.display());
    println!("chart: {}", chart_path.display());
    match outcomes.iter().find(|o| o.target == OURS) {
        Some(Outcome {
            error: Some(error), ..
        }) => Err(format!("the ovation target failed: {error}")),
        _ => Ok(()),
    }
}

/// Starts the target's server, measures held sockets and (when asked) the soak, stops it.
fn measure(target: &'static str, params: &Params, bench: &Bench) -> Outcome {
    let mut outcome = Outcome {
        target,
        held: Vec::new(),
        soak: None,
        samples: Vec::new(),
        error: None,
    };
    let out = bench.out.join(target);
    let port = free_port();
    let state = out.join("state");
    let _ = fs::remove_dir_all(&state);
    let started = fs::create_dir_all(&out)
        .map_err(|e| format!("cannot create {}: {e}", out.display()))
        .and_then(|()| ServerSpec::of(target, port, &state))
        .and_then(|spec| {
            let log = out.join("server.log");
            let group = ServerGroup::start(&spec.program, &spec.args, &spec.dir, &log)?;
            Ok((spec, group))
        });
    let (spec, mut group) = match started {
        Ok(started) => started,
        Err(error) => {
            outcome.error = Some(error);
            return outcome;
        }
    };
    let (recorder, sampler) = Recorder::start(group.group_id());
    let result = group
        .wait_ready(port, &spec.ready, Duration::from_secs(SERVER_START_S_MAX))
        .map(|()| {
            step(&format!(
                "soak: {target} is up on 127.0.0.1:{port} (logs in {})",
                out.display()
            ));
            recorder.set_phase("idle");
            if target == OURS {
                match WasmProbe::create(port) {
                    Ok(probe) => *recorder.probe.lock().expect("probe lock") = Some(probe),
                    Err(error) => eprintln!("soak: no wasm memory figures: {error}"),
                }
            }
            std::thread::sleep(Duration::from_secs(SETTLE_S));
            // The first count twice in a row: the second room reuses what the first
            // gave back.
            let mut counts: Vec<(u64, bool)> = params.held.iter().map(|&n| (n, false)).collect();
            counts.insert(1, (params.held[0], true));
            for (index, &(sockets, again)) in counts.iter().enumerate() {
                let held = hold(
                    target,
                    (sockets, again),
                    params.seed + index as u64,
                    bench,
                    &spec,
                    &out,
                    &recorder,
                );
                outcome.held.push(held);
            }
            if params.soak_only.contains(&target) {
                outcome.soak = Some(soak(target, params, bench, &spec, port, &out, &recorder));
            }
        });
    if let Err(error) = result {
        outcome.error = Some(error);
    }
    recorder.stop.store(true, Ordering::Relaxed);
    let _ = sampler.join();
    group.stop();
    outcome.samples = recorder.samples();
    outcome
}

/// `sockets` silent viewers join one room, stay `HELD_S`, and leave; the room is ended
/// (ours) or left empty (the peer).
fn hold(
    target: &str,
    (sockets, again): (u64, bool),
    seed: u64,
    bench: &Bench,
    spec: &ServerSpec,
    out: &Path,
    recorder: &Recorder,
) -> Held {
    let again_label = if again { " again" } else { "" };
    step(&format!(
        "soak: {target}: {sockets} held sockets in one room{again_label}"
    ));
    let mut held = Held {
        sockets,
        again,
        connected: None,
        before: Resident::default(),
        held: Resident::default(),
        after: Resident::default(),
        error: None,
    };
    recorder.set_phase(&format!("before {sockets} held"));
    held.before = recorder.point();
    let load = Load {
        label: format!("held{sockets}{}", if again { "-again" } else { "" }),
        rooms: 1,
        viewers: sockets,
        comments_per_s: 0.0,
        likes_per_s: 0.0,
        churn_per_s: 0.0,
        duration_s: HELD_S,
    };
    let generator = match Generator::start(bench, spec, &load, out, seed) {
        Ok(generator) => generator,
        Err(error) => {
            held.error = Some(error);
            return held;
        }
    };
    recorder.set_phase(&format!("{sockets} joining"));
    if generator.wait_running() {
        recorder.set_phase(&format!("{sockets} held"));
        std::thread::sleep(Duration::from_secs(HELD_READ_AFTER_S));
        held.held = recorder.point();
    } else {
        held.error = Some(format!(
            "the {sockets} viewers did not connect within {CONNECT_S_MAX} s"
        ));
    }
    recorder.set_phase(&format!("{sockets} leaving"));
    match generator.finish() {
        Ok(report) => {
            held.connected = report.get("viewers_connected").and_then(Value::as_u64);
        }
        Err(error) => {
            held.error.get_or_insert(error);
        }
    }
    recorder.set_phase(&format!("after {sockets} held"));
    std::thread::sleep(Duration::from_secs(RELEASE_WAIT_S));
    held.after = recorder.point();
    eprintln!(
        "soak: {target}: {sockets} held{again_label}: workerd {} → {} → {} MiB; {} bytes per \
         socket; {} % returned to the system",
        mib(held.before.workerd),
        mib(held.held.workerd),
        mib(held.after.workerd),
        format_number(held.bytes_per_socket(), 0),
        format_number(held.returned_to_os_percent(), 0),
    );
    held
}

/// Minutes of steady mixed traffic, with polls (ours) and short-lived rooms beside it.
fn soak(
    target: &str,
    params: &Params,
    bench: &Bench,
    spec: &ServerSpec,
    port: u16,
    out: &Path,
    recorder: &Recorder,
) -> Soak {
    step(&format!(
        "soak: {target}: {} minutes of mixed traffic ({} viewers in {} rooms)",
        params.minutes, params.viewers, params.rooms
    ));
    let mut soak = Soak::default();
    recorder.set_phase("before soak");
    soak.before = recorder.point();
    let steady = Load {
        label: "steady".into(),
        rooms: params.rooms,
        viewers: params.viewers,
        comments_per_s: params.comments_per_s,
        likes_per_s: params.likes_per_s,
        churn_per_s: params.churn_per_s,
        duration_s: params.minutes * 60,
    };
    let mut generator = match Generator::start(bench, spec, &steady, out, params.seed) {
        Ok(generator) => generator,
        Err(error) => {
            soak.error = Some(error);
            return soak;
        }
    };
    recorder.set_phase("soak joining");
    if !generator.wait_running() {
        soak.error = Some(format!(
            "the soak's viewers did not connect within {CONNECT_S_MAX} s"
        ));
        return soak;
    }
    recorder.set_phase("soak");
    soak.start_s = recorder.elapsed_s();
    soak.warmup_end_s = soak.start_s + params.warmup_s() as f64;
    let token = crate::dev_token("admin", "soak-admin");
    let soak_start = Instant::now();
    let soak_end = soak_start + Duration::from_secs(params.minutes * 60);
    let mut next_poll = soak_start + Duration::from_secs(params.poll_every_s);
    let mut next_cycle = soak_start + Duration::from_secs(params.cycle_every_s.min(30));
    let mut cycle: Option<Generator> = None;
    let finish_cycle = |soak: &mut Soak, cycle: Generator| match cycle.finish() {
        Ok(_) => soak.cycles += 1,
        Err(error) => {
            soak.cycle_failures += 1;
            soak.cycle_failure_last = Some(error);
        }
    };
    while !generator.is_done() {
        let now = Instant::now();
        if target == OURS && now >= next_poll {
            let room = &generator.room_ids
                [(soak.polls_opened + soak.poll_failures) as usize % generator.room_ids.len()];
            match open_poll(port, &token, room) {
                Ok(()) => soak.polls_opened += 1,
                Err(error) => {
                    soak.poll_failures += 1;
                    soak.poll_failure_last = Some(error);
                }
            }
            next_poll += Duration::from_secs(params.poll_every_s);
        }
        if cycle.as_mut().is_some_and(Generator::is_done) {
            finish_cycle(&mut soak, cycle.take().expect("a cycle"));
        }
        // A short-lived room set starts only if it can end before the soak does.
        let cycle_fits = now + Duration::from_secs(CYCLE_CHAT_S + 30) < soak_end;
        if cycle.is_none() && now >= next_cycle && cycle_fits {
            let load = Load {
                label: format!("cycle{}", soak.cycles + soak.cycle_failures),
                rooms: CYCLE_ROOMS,
                viewers: CYCLE_VIEWERS,
                comments_per_s: 1.0,
                likes_per_s: 1.0,
                churn_per_s: 0.0,
                duration_s: CYCLE_CHAT_S,
            };
            match Generator::start(bench, spec, &load, out, params.seed + soak.cycles + 100) {
                Ok(started) => cycle = Some(started),
                Err(error) => {
                    soak.cycle_failures += 1;
                    soak.cycle_failure_last = Some(error);
                }
            }
            next_cycle += Duration::from_secs(params.cycle_every_s);
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    soak.end_s = recorder.elapsed_s();
    recorder.set_phase("soak ending");
    if let Some(cycle) = cycle.take() {
        finish_cycle(&mut soak, cycle);
    }
    match generator.finish() {
        Ok(report) => soak.steady = report,
        Err(error) => soak.error = Some(error),
    }
    recorder.set_phase("after soak");
    std::thread::sleep(Duration::from_secs(RELEASE_WAIT_S));
    soak.after = recorder.point();
    soak
}
