//! What the soak measured for one target: its held-socket rooms (`Held`), its soak
//! (`Soak`) and its samples (`Outcome`), with the figures derived from them (bytes per
//! socket, memory returned or reused, growth after warm-up).

use super::memory::{Resident, Sample};
use serde_json::{json, Value};

/// Held sockets: what N silent viewers in one room cost, and what came back after.
pub(super) struct Held {
    pub(super) sockets: u64,
    /// The same count held a second time, right after the first (the reuse check).
    pub(super) again: bool,
    pub(super) connected: Option<u64>,
    pub(super) before: Resident,
    pub(super) held: Resident,
    pub(super) after: Resident,
    pub(super) error: Option<String>,
}

impl Held {
    /// Resident memory while held above the idle server's (read before the first held
    /// room), per socket: what holding them costs a server, whatever earlier rooms left
    /// for reuse. The goal's figure.
    pub(super) fn bytes_per_socket_above_idle(&self, idle: &Resident) -> Option<f64> {
        let sockets = self.connected.filter(|c| *c > 0)? as f64;
        Some((self.held.workerd as f64 - idle.workerd as f64) / sockets)
    }

    /// Growth while this room's sockets joined, per socket (rooms before it may have
    /// left memory to reuse).
    pub(super) fn bytes_per_socket(&self) -> Option<f64> {
        let sockets = self.connected.filter(|c| *c > 0)? as f64;
        Some((self.held.workerd as f64 - self.before.workerd as f64) / sockets)
    }

    /// Ours: how much of `bytes_per_socket` is the isolate's wasm memory (the Rust heap).
    pub(super) fn wasm_bytes_per_socket(&self) -> Option<f64> {
        let sockets = self.connected.filter(|c| *c > 0)? as f64;
        Some((self.held.wasm? as f64 - self.before.wasm? as f64) / sockets)
    }

    pub(super) fn growth(&self) -> f64 {
        self.held.workerd as f64 - self.before.workerd as f64
    }

    /// The share of what the held sockets took that went back to the system after they
    /// left.
    pub(super) fn returned_to_os_percent(&self) -> Option<f64> {
        let taken = self.held.workerd as f64 - self.before.workerd as f64;
        (taken > 0.0)
            .then(|| 100.0 * (self.held.workerd as f64 - self.after.workerd as f64) / taken)
    }

    pub(super) fn to_json(&self, idle: &Resident) -> Value {
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
pub(super) struct Soak {
    /// Seconds since the server started: when the steady load ran, and when warm-up ended.
    pub(super) start_s: f64,
    pub(super) warmup_end_s: f64,
    pub(super) end_s: f64,
    pub(super) before: Resident,
    pub(super) after: Resident,
    pub(super) polls_opened: u64,
    pub(super) poll_failures: u64,
    pub(super) poll_failure_last: Option<String>,
    pub(super) cycles: u64,
    pub(super) cycle_failures: u64,
    pub(super) cycle_failure_last: Option<String>,
    pub(super) steady: Value,
    pub(super) error: Option<String>,
}

impl Soak {
    /// The first sample at or after warm-up, and the last of the soak.
    pub(super) fn growth(&self, samples: &[Sample]) -> Option<(Sample, Sample, f64)> {
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

pub(super) struct Outcome {
    pub(super) target: &'static str,
    pub(super) held: Vec<Held>,
    pub(super) soak: Option<Soak>,
    pub(super) samples: Vec<Sample>,
    pub(super) error: Option<String>,
}

impl Outcome {
    /// The idle server's resident memory: before the first held room.
    pub(super) fn idle(&self) -> Resident {
        self.held.first().map(|h| h.before).unwrap_or_default()
    }

    /// The reuse check: (sockets, growth the first time, growth again, reused percent).
    pub(super) fn reuse(&self) -> Option<(u64, f64, f64, f64)> {
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
