//! The soak's load: one `ovation-load fanout` run in the background (`Generator`), its
//! shape (`Load`), its log and its report.

use super::CONNECT_S_MAX;
use crate::fanout::{Bench, ServerSpec};
use crate::Result;
use serde_json::Value;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// One `ovation-load fanout` run.
pub(super) struct Load {
    pub(super) label: String,
    pub(super) rooms: u64,
    pub(super) viewers: u64,
    pub(super) comments_per_s: f64,
    pub(super) likes_per_s: f64,
    pub(super) churn_per_s: f64,
    pub(super) duration_s: u64,
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
pub(super) struct Generator {
    pub(super) child: Child,
    pub(super) running: mpsc::Receiver<()>,
    pub(super) reader: Option<JoinHandle<()>>,
    pub(super) report: PathBuf,
    pub(super) log: PathBuf,
    pub(super) room_ids: Vec<String>,
}

impl Generator {
    pub(super) fn start(
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
    pub(super) fn wait_running(&self) -> bool {
        self.running
            .recv_timeout(Duration::from_secs(CONNECT_S_MAX))
            .is_ok()
    }

    pub(super) fn is_done(&mut self) -> bool {
        !matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits for the generator to end; its report, or why there is none.
    pub(super) fn finish(mut self) -> Result<Value> {
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
