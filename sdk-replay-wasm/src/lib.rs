//! Replay playback for the SDK's `replay().attachPlayer` (see `ovation_client::replay`):
//! `npm/src/replay.js` hands in fetched windows entry by entry (it keeps the payloads
//! under the ids given back), reports the player, and takes what to show.
//!
//! A module of its own (`npm/wasm/ovation_replay*`), loaded by `replay()` only: viewers
//! of live rooms do not download it (the SDK's size budget, `cargo xtask bench sdk`).

#![forbid(unsafe_code)]

use ovation_client::replay::{Output, Replay, WindowInfo};
use wasm_bindgen::prelude::*;

fn ms(value: f64) -> u64 {
    if value.is_finite() {
        value.max(0.0) as u64
    } else {
        0
    }
}

#[wasm_bindgen]
pub struct ReplayCore {
    core: Replay,
    /// The key of the last `Clear` taken with `poll`.
    cleared: String,
}

#[wasm_bindgen]
impl ReplayCore {
    #[wasm_bindgen(constructor)]
    pub fn new() -> ReplayCore {
        ReplayCore {
            core: Replay::new(),
            cleared: String::new(),
        }
    }

    /// A window answer begins (`end`: `ended_ms`, or `truncated_at_ms` if earlier).
    #[wasm_bindgen(js_name = windowBegin)]
    #[allow(clippy::too_many_arguments)] // one call per answer, fields as numbers
    pub fn window_begin(
        &mut self,
        from: f64,
        to: f64,
        started: f64,
        recorded_to: f64,
        end: Option<f64>,
        live: bool,
        snapshot: bool,
    ) {
        let info = WindowInfo {
            from_ms: ms(from),
            to_ms: ms(to),
            started_ms: ms(started),
            recorded_to_ms: ms(recorded_to),
            end_ms: end.map(ms),
            live,
        };
        self.core.window_begin(info, snapshot);
    }

    /// A snapshot entry (a part, or the like total): its id, undefined when dropped.
    pub fn entry(&mut self, key: &str) -> Option<f64> {
        self.core.window_snapshot_entry(key).map(|id| id as f64)
    }

    /// An event, in recording order: its id, undefined when dropped.
    pub fn event(&mut self, ts: f64, key: Option<String>, cue: Option<String>) -> Option<f64> {
        self.core
            .window_event(ms(ts), key.as_deref(), cue.as_deref())
            .map(|id| id as f64)
    }

    #[wasm_bindgen(js_name = windowEnd)]
    pub fn window_end(&mut self, now: f64) {
        self.core.window_end(ms(now));
    }

    #[wasm_bindgen(js_name = windowFailed)]
    pub fn window_failed(&mut self, now: f64) {
        self.core.window_failed(ms(now));
    }

    /// The window to fetch now: `[from, to, snapshot (1 or 0)]`, or undefined.
    #[wasm_bindgen(js_name = nextFetch)]
    pub fn next_fetch(&mut self, now: f64) -> Option<Vec<f64>> {
        let fetch = self.core.next_fetch(ms(now))?;
        Some(vec![
            fetch.from_ms as f64,
            fetch.to_ms as f64,
            f64::from(u8::from(fetch.snapshot)),
        ])
    }

    pub fn playhead(&mut self, media_ms: f64, wall_ms: Option<f64>) {
        self.core.playhead(ms(media_ms), wall_ms.map(ms));
    }

    pub fn seek(&mut self, media_ms: f64, wall_ms: Option<f64>) {
        self.core.seek(ms(media_ms), wall_ms.map(ms));
    }

    #[wasm_bindgen(js_name = addCue)]
    pub fn add_cue(&mut self, payload: &str, media_ms: f64) {
        self.core.add_cue(payload, ms(media_ms));
    }

    /// The next cue that played, as its `cue` event's JSON (as live).
    #[wasm_bindgen(js_name = pollCue)]
    pub fn poll_cue(&mut self) -> Option<String> {
        self.core.poll_cue()
    }

    /// The next output as `id * 4 + kind`: 0 show, 1 state after a seek, 2 forget the
    /// payload; 3 is a key cleared by a seek (its name in `cleared`). One number per
    /// output keeps the glue small.
    pub fn poll(&mut self) -> Option<f64> {
        Some(match self.core.poll_output()? {
            Output::Fire(id) => (id * 4) as f64,
            Output::Apply(id) => (id * 4 + 1) as f64,
            Output::Forget(id) => (id * 4 + 2) as f64,
            Output::Clear(key) => {
                self.cleared = key;
                3.0
            }
        })
    }

    /// The playhead's server time (ms since the epoch), once reported.
    #[wasm_bindgen(getter)]
    pub fn position(&self) -> Option<f64> {
        self.core.position_ms().map(|ms| ms as f64)
    }

    #[wasm_bindgen(getter)]
    pub fn cleared(&self) -> String {
        self.cleared.clone()
    }
}

impl Default for ReplayCore {
    fn default() -> ReplayCore {
        ReplayCore::new()
    }
}
