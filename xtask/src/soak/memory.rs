//! The soak's memory readings: a server group's resident memory from /proc
//! (`Resident`), and the `Recorder` that samples it every few seconds on its own thread and
//! reads the before/held/after points.

use super::admin::WasmProbe;
use super::{POINT_READINGS, POINT_READING_GAP_S, SAMPLE_EVERY_S};
use serde_json::{json, Value};
use std::fs;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Resident memory of a server's process group, in bytes.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Resident {
    /// VmRSS summed over the workerd processes.
    pub(super) workerd: u64,
    /// RssAnon of the same (heap and stacks, not the mapped binary).
    pub(super) workerd_anon: u64,
    /// VmRSS of every process of the group (the node host included).
    pub(super) all: u64,
    pub(super) workerd_processes: usize,
    /// Ours: the isolate's wasm linear memory (part of `workerd`), when the probe answered.
    pub(super) wasm: Option<u64>,
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

    pub(super) fn to_json(self) -> Value {
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
pub(super) struct Sample {
    /// Seconds since the target's server was started.
    pub(super) t_s: f64,
    pub(super) phase: String,
    pub(super) resident: Resident,
}

/// Samples one server's resident memory every `SAMPLE_EVERY_S` on its own thread, and on
/// demand; every reading is kept, labelled with the phase it was taken in.
pub(super) struct Recorder {
    pub(super) group: u32,
    pub(super) probe: Mutex<Option<WasmProbe>>,
    pub(super) started: Instant,
    pub(super) phase: Mutex<String>,
    pub(super) samples: Mutex<Vec<Sample>>,
    pub(super) stop: AtomicBool,
}

impl Recorder {
    pub(super) fn start(group: u32) -> (Arc<Recorder>, JoinHandle<()>) {
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

    pub(super) fn elapsed_s(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    pub(super) fn set_phase(&self, phase: &str) {
        *self.phase.lock().expect("phase lock") = phase.to_owned();
    }

    pub(super) fn read(&self) -> Resident {
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
    pub(super) fn point(&self) -> Resident {
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

    pub(super) fn samples(&self) -> Vec<Sample> {
        let mut samples = self.samples.lock().expect("samples lock").clone();
        samples.sort_by(|a, b| a.t_s.total_cmp(&b.t_s));
        samples
    }
}

pub(super) fn mib(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / (1 << 20) as f64)
}
