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

use crate::chart_font::{font_available, FONT_FAMILY};
use crate::fanout::{
    format_number, options, prepare, print_table, Bench, ServerGroup, ServerSpec, OURS,
    SERVER_START_S_MAX,
};
use crate::{free_port, step, Result};
use plotters::prelude::*;
use serde_json::{json, Value};
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

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

const CHART_WIDTH_PX: u32 = 1_200;
const CHART_HEIGHT_PX: u32 = 700;

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

/// Resident memory of a server's process group, in bytes.
#[derive(Clone, Copy, Debug, Default)]
struct Resident {
    /// VmRSS summed over the workerd processes.
    workerd: u64,
    /// RssAnon of the same (heap and stacks, not the mapped binary).
    workerd_anon: u64,
    /// VmRSS of every process of the group (the node host included).
    all: u64,
    workerd_processes: usize,
    /// Ours: the isolate's wasm linear memory (part of `workerd`), when the probe answered.
    wasm: Option<u64>,
}

impl Resident {
    /// Reads /proc for every process whose process group is `group`.
    fn of_group(group: u32) -> Resident {
        let mut resident = Resident::default();
        for process in crate::fanout::group_processes(group) {
            let Ok(status) = fs::read_to_string(process.dir.join("status")) else {
                continue;
            };
            let kib = |field: &str| -> u64 {
                status
                    .lines()
                    .find_map(|line| line.strip_prefix(field))
                    .and_then(|rest| rest.split_whitespace().next())
                    .and_then(|n| n.parse::<u64>().ok())
                    .unwrap_or(0)
                    * 1024
            };
            let is_workerd = status
                .lines()
                .find_map(|line| line.strip_prefix("Name:"))
                .is_some_and(|name| name.trim() == "workerd");
            let rss = kib("VmRSS:");
            resident.all += rss;
            if is_workerd {
                resident.workerd += rss;
                resident.workerd_anon += kib("RssAnon:");
                resident.workerd_processes += 1;
            }
        }
        resident
    }

    fn to_json(self) -> Value {
        json!({
            "workerd_rss_bytes": self.workerd,
            "workerd_rss_anon_bytes": self.workerd_anon,
            "group_rss_bytes": self.all,
            "workerd_processes": self.workerd_processes,
            "wasm_memory_bytes": self.wasm,
        })
    }
}

#[derive(Clone, Debug)]
struct Sample {
    /// Seconds since the target's server was started.
    t_s: f64,
    phase: String,
    resident: Resident,
}

/// Samples one server's resident memory every `SAMPLE_EVERY_S` on its own thread, and on
/// demand; every reading is kept, labelled with the phase it was taken in.
struct Recorder {
    group: u32,
    probe: Mutex<Option<WasmProbe>>,
    started: Instant,
    phase: Mutex<String>,
    samples: Mutex<Vec<Sample>>,
    stop: AtomicBool,
}

impl Recorder {
    fn start(group: u32) -> (Arc<Recorder>, JoinHandle<()>) {
        let recorder = Arc::new(Recorder {
            group,
            probe: Mutex::new(None),
            started: Instant::now(),
            phase: Mutex::new("starting".into()),
            samples: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
        });
        let sampler = Arc::clone(&recorder);
        let thread = std::thread::spawn(move || {
            let mut next = Instant::now();
            while !sampler.stop.load(Ordering::Relaxed) {
                if Instant::now() >= next {
                    sampler.read();
                    next += Duration::from_secs(SAMPLE_EVERY_S);
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        });
        (recorder, thread)
    }

    fn elapsed_s(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    fn set_phase(&self, phase: &str) {
        *self.phase.lock().expect("phase lock") = phase.to_owned();
    }

    fn read(&self) -> Resident {
        let mut resident = Resident::of_group(self.group);
        resident.wasm = self
            .probe
            .lock()
            .expect("probe lock")
            .as_ref()
            .and_then(WasmProbe::wasm_memory);
        let phase = self.phase.lock().expect("phase lock").clone();
        self.samples.lock().expect("samples lock").push(Sample {
            t_s: self.elapsed_s(),
            phase,
            resident,
        });
        resident
    }

    /// The median (by workerd resident bytes) of a few readings a little apart.
    fn point(&self) -> Resident {
        let mut readings = Vec::with_capacity(POINT_READINGS);
        for reading in 0..POINT_READINGS {
            if reading > 0 {
                std::thread::sleep(Duration::from_secs(POINT_READING_GAP_S));
            }
            readings.push(self.read());
        }
        readings.sort_by_key(|r| r.workerd);
        readings[readings.len() / 2]
    }

    fn samples(&self) -> Vec<Sample> {
        let mut samples = self.samples.lock().expect("samples lock").clone();
        samples.sort_by(|a, b| a.t_s.total_cmp(&b.t_s));
        samples
    }
}

/// One `ovation-load fanout` run.
struct Load {
    label: String,
    rooms: u64,
    viewers: u64,
    comments_per_s: f64,
    likes_per_s: f64,
    churn_per_s: f64,
    duration_s: u64,
}

impl Load {
    /// Fresh room ids for every run (`weur-soak-<label>-<unix ms>-<index>`), so a room
    /// ended earlier is never reused.
    fn room_prefix(&self) -> String {
        let unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        format!("weur-soak-{}-{unix_ms}", self.label)
    }
}

/// A load generator running in the background; its stderr goes to a log file.
struct Generator {
    child: Child,
    running: mpsc::Receiver<()>,
    reader: Option<JoinHandle<()>>,
    report: PathBuf,
    log: PathBuf,
    room_ids: Vec<String>,
}

impl Generator {
    fn start(
        bench: &Bench,
        spec: &ServerSpec,
        load: &Load,
        out: &Path,
        seed: u64,
    ) -> Result<Generator> {
        let prefix = load.room_prefix();
        let report = out.join(format!("{}.json", load.label));
        let log = out.join(format!("{}.load.log", load.label));
        let _ = fs::remove_file(&report);
        let mut child = Command::new(&bench.generator)
            .arg("fanout")
            .args(&spec.generator_args)
            .args(["--rooms", &load.rooms.to_string()])
            .args(["--viewers", &load.viewers.to_string()])
            .args(["--comments-per-s", &load.comments_per_s.to_string()])
            .args(["--likes-per-s", &load.likes_per_s.to_string()])
            .args(["--churn-per-s", &load.churn_per_s.to_string()])
            .args(["--duration-s", &load.duration_s.to_string()])
            .args(["--warmup-s", "0"])
            .args(["--seed", &seed.to_string()])
            .args(["--room-prefix", &prefix])
            .arg("--json")
            .arg(&report)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run the load generator: {e}"))?;
        let stderr = child.stderr.take().ok_or("no stderr pipe")?;
        let mut log_file =
            fs::File::create(&log).map_err(|e| format!("cannot create {}: {e}", log.display()))?;
        let (running_in, running) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr)
                .lines()
                .map_while(std::result::Result::ok)
            {
                let _ = writeln!(log_file, "{line}");
                // The generator says so once every viewer has connected (or failed to).
                if line.contains("ovation-load: running ") {
                    let _ = running_in.send(());
                }
            }
        });
        Ok(Generator {
            child,
            running,
            reader: Some(reader),
            report,
            log,
            room_ids: (0..load.rooms)
                .map(|room| format!("{prefix}-{room}"))
                .collect(),
        })
    }

    /// Waits until every viewer connected; false when the generator ended first or took
    /// longer than `CONNECT_S_MAX`.
    fn wait_running(&self) -> bool {
        self.running
            .recv_timeout(Duration::from_secs(CONNECT_S_MAX))
            .is_ok()
    }

    fn is_done(&mut self) -> bool {
        !matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits for the generator to end; its report, or why there is none.
    fn finish(mut self) -> Result<Value> {
        let status = self
            .child
            .wait()
            .map_err(|e| format!("waiting for the load generator: {e}"))?;
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        let report = fs::read_to_string(&self.report)
            .ok()
            .and_then(|text| serde_json::from_str::<Value>(&text).ok());
        match report {
            Some(report) if status.success() => Ok(report),
            _ => Err(format!(
                "ovation-load exited with {status}; log {}:\n{}",
                self.log.display(),
                tail(&self.log, 10)
            )),
        }
    }
}

impl Drop for Generator {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn tail(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Held sockets: what N silent viewers in one room cost, and what came back after.
struct Held {
    sockets: u64,
    /// The same count held a second time, right after the first (the reuse check).
    again: bool,
    connected: Option<u64>,
    before: Resident,
    held: Resident,
    after: Resident,
    error: Option<String>,
}

impl Held {
    /// Resident memory while held above the idle server's (read before the first held
    /// room), per socket: what holding them costs a server, whatever earlier rooms left
    /// for reuse. The goal's figure.
    fn bytes_per_socket_above_idle(&self, idle: &Resident) -> Option<f64> {
        let sockets = self.connected.filter(|c| *c > 0)? as f64;
        Some((self.held.workerd as f64 - idle.workerd as f64) / sockets)
    }

    /// Growth while this room's sockets joined, per socket (rooms before it may have
    /// left memory to reuse).
    fn bytes_per_socket(&self) -> Option<f64> {
        let sockets = self.connected.filter(|c| *c > 0)? as f64;
        Some((self.held.workerd as f64 - self.before.workerd as f64) / sockets)
    }

    /// Ours: how much of `bytes_per_socket` is the isolate's wasm memory (the Rust heap).
    fn wasm_bytes_per_socket(&self) -> Option<f64> {
        let sockets = self.connected.filter(|c| *c > 0)? as f64;
        Some((self.held.wasm? as f64 - self.before.wasm? as f64) / sockets)
    }

    fn growth(&self) -> f64 {
        self.held.workerd as f64 - self.before.workerd as f64
    }

    /// The share of what the held sockets took that went back to the system after they
    /// left.
    fn returned_to_os_percent(&self) -> Option<f64> {
        let taken = self.held.workerd as f64 - self.before.workerd as f64;
        (taken > 0.0)
            .then(|| 100.0 * (self.held.workerd as f64 - self.after.workerd as f64) / taken)
    }

    fn to_json(&self, idle: &Resident) -> Value {
        json!({
            "sockets": self.sockets,
            "bytes_per_socket_above_idle": self.bytes_per_socket_above_idle(idle),
            "again": self.again,
            "sockets_connected": self.connected,
            "before": self.before.to_json(),
            "held": self.held.to_json(),
            "after": self.after.to_json(),
            "bytes_per_socket": self.bytes_per_socket(),
            "wasm_bytes_per_socket": self.wasm_bytes_per_socket(),
            "anon_bytes_per_socket": self.connected.filter(|c| *c > 0).map(|c|
                (self.held.workerd_anon as f64 - self.before.workerd_anon as f64) / c as f64),
            "returned_to_os_percent": self.returned_to_os_percent(),
            "error": self.error,
        })
    }
}

/// The soak of one target.
#[derive(Default)]
struct Soak {
    /// Seconds since the server started: when the steady load ran, and when warm-up ended.
    start_s: f64,
    warmup_end_s: f64,
    end_s: f64,
    before: Resident,
    after: Resident,
    polls_opened: u64,
    poll_failures: u64,
    poll_failure_last: Option<String>,
    cycles: u64,
    cycle_failures: u64,
    cycle_failure_last: Option<String>,
    steady: Value,
    error: Option<String>,
}

impl Soak {
    /// The first sample at or after warm-up, and the last of the soak.
    fn growth(&self, samples: &[Sample]) -> Option<(Sample, Sample, f64)> {
        let soak: Vec<&Sample> = samples
            .iter()
            .filter(|s| s.phase == "soak" && s.t_s >= self.warmup_end_s)
            .collect();
        let (first, last) = (*soak.first()?, *soak.last()?);
        if soak.len() < 2 || first.resident.workerd == 0 {
            return None;
        }
        let percent = 100.0 * (last.resident.workerd as f64 - first.resident.workerd as f64)
            / first.resident.workerd as f64;
        Some((first.clone(), last.clone(), percent))
    }
}

struct Outcome {
    target: &'static str,
    held: Vec<Held>,
    soak: Option<Soak>,
    samples: Vec<Sample>,
    error: Option<String>,
}

impl Outcome {
    /// The idle server's resident memory: before the first held room.
    fn idle(&self) -> Resident {
        self.held.first().map(|h| h.before).unwrap_or_default()
    }

    /// The reuse check: (sockets, growth the first time, growth again, reused percent).
    fn reuse(&self) -> Option<(u64, f64, f64, f64)> {
        let again = self.held.iter().find(|h| h.again && h.error.is_none())?;
        let first = self
            .held
            .iter()
            .find(|h| !h.again && h.sockets == again.sockets && h.error.is_none())?;
        let (first_growth, again_growth) = (first.growth(), again.growth());
        (first_growth > 0.0).then(|| {
            (
                again.sockets,
                first_growth,
                again_growth,
                100.0 * (1.0 - again_growth / first_growth),
            )
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

/// Opens a two-option poll in `room` through the admin API (it closes itself).
fn open_poll(port: u16, token: &str, room: &str) -> Result {
    let body = json!({
        "question": "Soak: which option?",
        "options": ["yes", "no"],
        "window_ms": POLL_WINDOW_MS,
    });
    match http(
        port,
        "POST",
        &format!("/v1/rooms/{room}/polls"),
        token,
        Some(&body),
    )? {
        (200 | 201, _) => Ok(()),
        (status, answer) => Err(format!("opening a poll in {room}: {status} {answer}")),
    }
}

/// Ours only: a quiet room whose stats carry the isolate's wasm memory (every room object
/// of the isolate shares one linear memory), so the Rust heap can be told from the rest
/// of workerd's resident memory.
struct WasmProbe {
    port: u16,
    token: String,
    room: String,
}

impl WasmProbe {
    fn create(port: u16) -> Result<WasmProbe> {
        let token = crate::dev_token("admin", "soak-admin");
        let unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        let room = format!("weur-soak-probe-{unix_ms}");
        let body = json!({"room": room, "host": "host-1", "title": "memory probe",
            "expected_audience": 1});
        match http(port, "POST", "/v1/rooms", &token, Some(&body))? {
            (200 | 201, _) => Ok(WasmProbe { port, token, room }),
            (status, answer) => Err(format!("creating the probe room: {status} {answer}")),
        }
    }

    /// The wasm linear memory in bytes, when the room answers with it.
    fn wasm_memory(&self) -> Option<u64> {
        let path = format!("/v1/rooms/{}/stats", self.room);
        let (status, answer) = http(self.port, "GET", &path, &self.token, None).ok()?;
        if status != 200 {
            return None;
        }
        serde_json::from_str::<Value>(&answer)
            .ok()?
            .get("wasm_memory_bytes")?
            .as_u64()
    }
}

/// One HTTP/1.1 request to the server on 127.0.0.1 with the admin's token: the status
/// and the body.
fn http(
    port: u16,
    method: &str,
    path: &str,
    token: &str,
    body: Option<&Value>,
) -> Result<(u16, String)> {
    let body = body.map(Value::to_string).unwrap_or_default();
    let authorization = format!("Bearer {token}");
    let headers = [
        ("Authorization", authorization.as_str()),
        ("Content-Type", "application/json"),
    ];
    let timeouts = crate::http::Timeouts {
        connect: Some(Duration::from_secs(2)),
        read: Duration::from_secs(10),
    };
    let host = format!("127.0.0.1:{port}");
    let response = crate::http::request(&host, method, path, &headers, &body, timeouts)?;
    Ok((response.status, response.body))
}

fn mib(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / (1 << 20) as f64)
}

/// The goals with their verdicts: (name, figure, pass) with `None` when not measured.
struct Goals {
    lines: Vec<(String, String, Option<bool>)>,
}

fn verdict(pass: Option<bool>) -> &'static str {
    match pass {
        Some(true) => "PASS",
        Some(false) => "FAIL",
        None => "not measured",
    }
}

fn print_results(params: &Params, outcomes: &[Outcome]) -> Goals {
    println!(
        "\nsoak: resident memory (VmRSS) summed over each server's workerd processes; held \
         sockets are silent viewers in one room, read {HELD_READ_AFTER_S} s after the last \
         joined, and again {RELEASE_WAIT_S} s after they left and the room ended (ours) or \
         emptied (peer); \"again\": the first count once more, in a new room"
    );
    let mut rows = Vec::new();
    for outcome in outcomes {
        for held in &outcome.held {
            rows.push(vec![
                outcome.target.to_string(),
                format!("{}{}", held.sockets, if held.again { " again" } else { "" }),
                format_number(held.connected.map(|c| c as f64), 0),
                mib(held.before.workerd),
                mib(held.held.workerd),
                mib(held.after.workerd),
                format_number(held.bytes_per_socket_above_idle(&outcome.idle()), 0),
                format_number(held.bytes_per_socket(), 0),
                format_number(held.wasm_bytes_per_socket(), 0),
                format_number(held.returned_to_os_percent(), 0),
                held.error.clone().unwrap_or_default(),
            ]);
        }
    }
    print_table(
        &[
            "target",
            "sockets",
            "connected",
            "before MiB",
            "held MiB",
            "after MiB",
            "B/socket above idle",
            "B/socket this room",
            "of it wasm",
            "to the OS %",
            "error",
        ],
        &rows,
    );

    let mut goals = Goals { lines: Vec::new() };
    let ours = outcomes.iter().find(|o| o.target == OURS);
    let naive = outcomes.iter().find(|o| o.target == "naive-do");
    for &sockets in &params.held {
        let per_socket = |o: Option<&Outcome>| {
            let o = o?;
            o.held
                .iter()
                .find(|h| h.sockets == sockets && !h.again && h.error.is_none())?
                .bytes_per_socket_above_idle(&o.idle())
        };
        let (ours, naive) = (per_socket(ours), per_socket(naive));
        let pass = match (ours, naive) {
            (Some(ours), Some(naive)) => Some(ours <= naive),
            _ => None,
        };
        goals.lines.push((
            format!(
                "bytes per held socket at {sockets} (resident above idle): ours ≤ the naive \
                 object's"
            ),
            format!(
                "{} against {} ({}x)",
                format_number(ours, 0),
                format_number(naive, 0),
                format_number(ours.zip(naive).map(|(o, n)| o / n), 2)
            ),
            pass,
        ));
    }
    for outcome in outcomes {
        let Some(soak) = &outcome.soak else { continue };
        let growth = soak.growth(&outcome.samples);
        println!(
            "\nsoak of {}: {} min of {} viewers in {} rooms ({} comments/s and {} likes/s per \
             room, churn {}/s), {} polls opened ({} failed), {} short-lived room sets of {} \
             rooms and {} viewers created and ended ({} failed){}",
            outcome.target,
            params.minutes,
            params.viewers,
            params.rooms,
            params.comments_per_s,
            params.likes_per_s,
            params.churn_per_s,
            soak.polls_opened,
            soak.poll_failures,
            soak.cycles,
            CYCLE_ROOMS,
            CYCLE_VIEWERS,
            soak.cycle_failures,
            soak.error
                .as_ref()
                .map(|e| format!("; error: {e}"))
                .unwrap_or_default()
        );
        if let Some(error) = &soak.poll_failure_last {
            println!("  last poll failure: {error}");
        }
        if let Some(error) = &soak.cycle_failure_last {
            println!("  last cycle failure: {error}");
        }
        let number = |field: &str| soak.steady.get(field).and_then(Value::as_f64);
        println!(
            "  steady load: {} viewers connected, {} comments sent, {} likes sent, {} leaves \
             and {} joins again, {} deliveries lost",
            format_number(number("viewers_connected"), 0),
            format_number(number("comments_sent"), 0),
            format_number(number("likes_sent"), 0),
            format_number(number("churn_leaves"), 0),
            format_number(number("churn_joins"), 0),
            format_number(number("losses"), 0),
        );
        println!(
            "  workerd before the soak {} MiB, after it (and {RELEASE_WAIT_S} s quiet) {} MiB",
            mib(soak.before.workerd),
            mib(soak.after.workerd)
        );
        let figure = match &growth {
            Some((first, last, percent)) => format!(
                "{} MiB at {:.0} s → {} MiB at {:.0} s: {percent:+.2} %",
                mib(first.resident.workerd),
                first.t_s,
                mib(last.resident.workerd),
                last.t_s
            ),
            None => "too few samples after warm-up".into(),
        };
        println!("  after {} s warm-up: {figure}", params.warmup_s());
        if let Some((first, last, _)) = &growth {
            if let (Some(first_wasm), Some(last_wasm)) = (first.resident.wasm, last.resident.wasm) {
                println!(
                    "  of which the isolate's wasm memory: {} MiB → {} MiB",
                    mib(first_wasm),
                    mib(last_wasm)
                );
            }
        }
        goals.lines.push((
            format!(
                "{}: growth after warm-up < {GROWTH_PERCENT_MAX} % ({} min soak)",
                outcome.target, params.minutes
            ),
            figure,
            growth.map(|(_, _, percent)| percent < GROWTH_PERCENT_MAX),
        ));
    }
    for outcome in outcomes {
        let Some((sockets, first, again, reused)) = outcome.reuse() else {
            continue;
        };
        goals.lines.push((
            format!(
                "{}: a room that ended or emptied gives back ≥ {REUSED_PERCENT_MIN} % of what \
                 its sockets took, for the next room",
                outcome.target
            ),
            format!(
                "{reused:.0} % ({sockets} sockets grew workerd by {} MiB in the first room, \
                 {} MiB in the next)",
                mib(first.max(0.0) as u64),
                mib(again.max(0.0) as u64)
            ),
            Some(reused >= REUSED_PERCENT_MIN),
        ));
    }
    println!("\ngoals:");
    for (goal, figure, pass) in &goals.lines {
        println!("  {:<12} {goal}: {figure}", verdict(*pass));
    }
    for failed in outcomes.iter().filter(|o| o.error.is_some()) {
        println!(
            "\n  {} FAILED: {}",
            failed.target,
            failed.error.as_deref().unwrap_or_default()
        );
    }
    goals
}

fn json_report(params: &Params, outcomes: &[Outcome], goals: &Goals) -> Value {
    let targets: Vec<Value> = outcomes
        .iter()
        .map(|o| {
            let soak = o.soak.as_ref().map(|soak| {
                let growth = soak.growth(&o.samples);
                json!({
                    "start_s": soak.start_s,
                    "warmup_end_s": soak.warmup_end_s,
                    "end_s": soak.end_s,
                    "before": soak.before.to_json(),
                    "after": soak.after.to_json(),
                    "growth_after_warmup_percent": growth.as_ref().map(|g| g.2),
                    "growth_first_sample": growth.as_ref().map(|g| json!({
                        "t_s": g.0.t_s, "workerd_rss_bytes": g.0.resident.workerd})),
                    "growth_last_sample": growth.as_ref().map(|g| json!({
                        "t_s": g.1.t_s, "workerd_rss_bytes": g.1.resident.workerd})),
                    "polls_opened": soak.polls_opened,
                    "poll_failures": soak.poll_failures,
                    "poll_failure_last": soak.poll_failure_last,
                    "room_sets_created_and_ended": soak.cycles,
                    "room_set_failures": soak.cycle_failures,
                    "room_set_failure_last": soak.cycle_failure_last,
                    "steady_load_report": soak.steady,
                    "error": soak.error,
                })
            });
            json!({
                "target": o.target,
                "ok": o.error.is_none(),
                "error": o.error,
                "held": o.held.iter().map(|h| h.to_json(&o.idle())).collect::<Vec<_>>(),
                "reuse": o.reuse().map(|(sockets, first, again, reused)| json!({
                    "sockets": sockets, "first_growth_bytes": first,
                    "again_growth_bytes": again, "reused_percent": reused})),
                "soak": soak,
                "samples": o.samples.iter().map(|s| json!({
                    "t_s": s.t_s, "phase": s.phase,
                    "workerd_rss_bytes": s.resident.workerd,
                    "workerd_rss_anon_bytes": s.resident.workerd_anon,
                    "group_rss_bytes": s.resident.all,
                    "wasm_memory_bytes": s.resident.wasm,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({
        "params": params.to_json(),
        "cpus": std::thread::available_parallelism().map(|n| n.get()).ok(),
        "memory": "VmRSS from /proc/<pid>/status summed over the workerd processes of the \
            server's process group (group_rss_bytes: every process of the group, the node \
            host included)",
        "goals": goals.lines.iter().map(|(goal, figure, pass)| json!({
            "goal": goal, "figure": figure, "pass": pass})).collect::<Vec<_>>(),
        "targets": targets,
    })
}

/// Resident memory over time, one line per target (minutes since its server started).
fn draw_chart(params: &Params, outcomes: &[Outcome], path: &Path) -> Result {
    let fail = |e: &dyn std::fmt::Display| format!("drawing {}: {e}", path.display());
    let text = font_available();
    let root = BitMapBackend::new(path, (CHART_WIDTH_PX, CHART_HEIGHT_PX)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| fail(&e))?;
    let minutes_top = outcomes
        .iter()
        .flat_map(|o| o.samples.iter().map(|s| s.t_s / 60.0))
        .fold(1.0_f64, f64::max);
    let mib_top = outcomes
        .iter()
        .flat_map(|o| {
            o.samples
                .iter()
                .map(|s| s.resident.workerd as f64 / (1 << 20) as f64)
        })
        .fold(1.0_f64, f64::max)
        * 1.1;
    let mut builder = ChartBuilder::on(&root);
    builder.margin(16);
    if text {
        builder
            .caption(
                format!(
                    "workerd resident memory: held sockets ({}), then a {}-minute soak ({})",
                    params
                        .held
                        .iter()
                        .map(u64::to_string)
                        .collect::<Vec<_>>()
                        .join(", "),
                    params.minutes,
                    params.soak_only.join(", ")
                ),
                (FONT_FAMILY, 18),
            )
            .x_label_area_size(36)
            .y_label_area_size(70);
    }
    let mut chart = builder
        .build_cartesian_2d(0.0..minutes_top, 0.0..mib_top)
        .map_err(|e| fail(&e))?;
    let mut mesh = chart.configure_mesh();
    if text {
        mesh.x_desc("minutes since the server started")
            .y_desc("resident MiB (workerd)")
            .x_label_formatter(&|m| format!("{m:.0}"))
            .y_label_formatter(&|m| format!("{m:.0}"))
            .label_style((FONT_FAMILY, 13));
    } else {
        mesh.x_labels(0).y_labels(0);
    }
    mesh.draw().map_err(|e| fail(&e))?;
    let colors = [RED, BLUE];
    for (outcome, color) in outcomes.iter().zip(colors) {
        let points: Vec<(f64, f64)> = outcome
            .samples
            .iter()
            .map(|s| (s.t_s / 60.0, s.resident.workerd as f64 / (1 << 20) as f64))
            .collect();
        let series = chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))
            .map_err(|e| fail(&e))?;
        if text {
            let name = outcome.target;
            series.label(name).legend(move |(x, y)| {
                PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2))
            });
        }
        // Ours: the part of it that is the isolate's wasm memory (the Rust heap).
        let wasm: Vec<(f64, f64)> = outcome
            .samples
            .iter()
            .filter_map(|s| Some((s.t_s / 60.0, s.resident.wasm? as f64 / (1 << 20) as f64)))
            .collect();
        if !wasm.is_empty() {
            let faint = color.mix(0.45);
            let series = chart
                .draw_series(LineSeries::new(wasm, faint.stroke_width(2)))
                .map_err(|e| fail(&e))?;
            if text {
                let name = format!("{} (wasm memory only)", outcome.target);
                series.label(name).legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 20, y)], faint.stroke_width(2))
                });
            }
        }
        // The soak's warm-up end, where the growth figure starts.
        if let Some(soak) = &outcome.soak {
            let x = soak.warmup_end_s / 60.0;
            chart
                .draw_series(LineSeries::new(
                    [(x, 0.0), (x, mib_top)],
                    color.mix(0.4).stroke_width(1),
                ))
                .map_err(|e| fail(&e))?;
        }
    }
    if text {
        chart
            .configure_series_labels()
            .border_style(BLACK)
            .background_style(WHITE.mix(0.8))
            .label_font((FONT_FAMILY, 13))
            .draw()
            .map_err(|e| fail(&e))?;
    }
    root.present().map_err(|e| fail(&e))?;
    Ok(())
}
