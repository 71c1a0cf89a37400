//! Replay playback, sans-IO: which recorded events show as a recording's video plays, and
//! which windows of the recording to fetch.
//!
//! The host (the SDK's `replay().attachPlayer`) fetches windows of
//! `GET /v1/rooms/{room}/replay` as [`Replay::next_fetch`] asks, hands each answer in
//! ([`Replay::window_begin`], its snapshot entries, its events, [`Replay::window_end`]),
//! keeps each entry's payload under the id the core gives it, and reports the player: the
//! playhead (`currentTime`) with the wall-clock time of that moment when the stream
//! carries EXT-X-PROGRAM-DATE-TIME, seeks, and the cues it finds. It takes
//! [`Output`]s: the ids to show, in order. The core sees no payloads: an entry is its
//! server time, its state key (a part's name, the like total; none for a comment,
//! reaction, gift or removal) and its cue id.
//!
//! Rules:
//! - **Time.** The playhead's server time is its wall-clock time when the stream is dated
//!   (after a dated report, an undated one keeps the last offset), else the recording's
//!   start plus the media time (the stream's media time 0 is the room's start).
//! - **When an event shows.** At its server time; a cued event (a poll, quiz question or
//!   product card opened with a cue) not before its cue plays, as live viewers saw it
//!   (`playback.rs`): at `max(ts, cue)` when the cue is known and at most
//!   `CLIENT_REPLAY_CUE_WAIT_MS_MAX` after `ts`, and in a dated stream no later than
//!   `ts + CLIENT_CUE_BEHIND_SLACK_MS` (live viewers of a dated stream get it then, cue or
//!   not). Events show once each per pass, in that order (ties in recording order).
//! - **Playing** forward (steps of at most `CLIENT_PLAYHEAD_JUMP_MS_MAX`) shows every event
//!   the playhead passes; a step back within `CLIENT_PLAYHEAD_JITTER_MS_MAX` is ignored;
//!   pausing is a playhead that does not move, and the rate is how fast it moves.
//! - **A seek** (or a larger jump, or the first report) starts a new pass at the target:
//!   nothing behind it shows; the state jumps to the target's ([`Output::Apply`] for
//!   each key whose entry changed, [`Output::Clear`] for each key gone), computed from the
//!   snapshot at the start of the run of contiguous windows that holds the target plus the
//!   keyed events up to it: the state a viewer who played there has. (One exception: a
//!   cued part recorded before a window's start whose cue plays after it is in that
//!   window's snapshot already, up to the cue's delay early.)
//! - **Late windows.** Events of a window that arrived after the playhead passed them
//!   show at once, except comments, reactions, gifts and removals more than
//!   `CLIENT_REPLAY_LATE_MS_MAX` behind (no burst of old comments); keyed events apply.
//! - **Fetching.** Windows of `CLIENT_REPLAY_WINDOW_MS` aligned on the recording's start:
//!   the one holding the playhead, and the next once the playhead is within
//!   `CLIENT_REPLAY_PREFETCH_MS` of its start; one fetch at a time; the snapshot is asked
//!   for when the window does not continue a loaded one (or when a seek lands in a run
//!   whose first window, holding its snapshot, was let go); nothing past the
//!   end (ended or truncated). A failed fetch, or a live recording not yet recorded that
//!   far, is asked again after `CLIENT_REPLAY_RETRY_MS`. At most `CLIENT_REPLAY_WINDOWS_MAX`
//!   windows stay loaded (the farthest from the playhead goes: [`Output::Forget`]).

use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::vec::Vec;

use crate::playback::Playback;
use ovation_proto::limits::{
    CLIENT_CUE_BEHIND_SLACK_MS as CUE_BEHIND_SLACK_MS,
    CLIENT_PLAYHEAD_FIRST_SLACK_MS as PLAYHEAD_FIRST_SLACK_MS,
    CLIENT_PLAYHEAD_JITTER_MS_MAX as PLAYHEAD_JITTER_MS_MAX,
    CLIENT_PLAYHEAD_JUMP_MS_MAX as PLAYHEAD_JUMP_MS_MAX,
    CLIENT_REPLAY_CUE_WAIT_MS_MAX as CUE_WAIT_MS_MAX, CLIENT_REPLAY_LATE_MS_MAX as LATE_MS_MAX,
    CLIENT_REPLAY_PREFETCH_MS as PREFETCH_MS, CLIENT_REPLAY_RETRY_MS as RETRY_MS,
    CLIENT_REPLAY_WINDOWS_MAX as WINDOWS_MAX, CLIENT_REPLAY_WINDOW_EVENTS_MAX as WINDOW_EVENTS_MAX,
    CLIENT_REPLAY_WINDOW_MS as WINDOW_MS,
};

/// What the host does next, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Show this entry now: a comment, reaction, gift or removal as its live event; a part
    /// or the like total as the room's new state.
    Fire(u64),
    /// A seek: the state now holds this entry (shown as the state, without its history).
    Apply(u64),
    /// A seek: this key has no entry at the new moment (a part removed since): `null`.
    Clear(String),
    /// The payload of this id is no longer needed (its window was let go).
    Forget(u64),
}

/// A window to fetch: `GET …/replay?from=from_ms&to=to_ms` (`&snapshot=false` unless
/// `snapshot`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fetch {
    pub from_ms: u64,
    pub to_ms: u64,
    pub snapshot: bool,
}

/// The window answer's fields the core uses (`ReplayWindow` without its entries).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WindowInfo {
    pub from_ms: u64,
    pub to_ms: u64,
    pub started_ms: u64,
    pub recorded_to_ms: u64,
    /// `ended_ms`, or `truncated_at_ms` when that is earlier: nothing is recorded past it.
    pub end_ms: Option<u64>,
    pub live: bool,
}

#[derive(Debug)]
struct Item {
    id: u64,
    ts_ms: u64,
    key: Option<String>,
    cue: Option<String>,
    fired: bool,
}

#[derive(Debug)]
struct Window {
    from_ms: u64,
    /// Recorded up to here (less than asked for in a live recording).
    to_ms: u64,
    /// The state at `from_ms` (key, id), when it was asked for.
    snapshot: Option<Vec<(String, u64)>>,
    items: Vec<Item>,
    /// Items before it have all fired in this pass.
    cursor: usize,
}

impl Window {
    fn ids(&self) -> impl Iterator<Item = u64> + '_ {
        let snapshot = self.snapshot.iter().flatten().map(|(_, id)| *id);
        snapshot.chain(self.items.iter().map(|item| item.id))
    }
}

/// One key's entry in the shown state: (key, server time, id); later (ts, id) wins.
type Shown = (String, u64, u64);

#[derive(Debug, Default)]
pub struct Replay {
    started_ms: Option<u64>,
    end_ms: Option<u64>,
    windows: Vec<Window>,
    /// The answer being handed in, with what it asked for.
    loading: Option<(Window, u64)>,
    in_flight: bool,
    retry_at_ms: u64,
    /// A window to fetch again with its snapshot: the run it continued lost its own.
    snapshot_from_ms: Option<u64>,
    next_id: u64,
    /// The cues the player found (the live video-sync core, reused for their media times
    /// and `cue` events).
    cues: Playback,
    /// Server time minus media time of the last report.
    offset_ms: Option<i64>,
    dated: bool,
    /// The playhead's server time.
    position_ms: Option<u64>,
    /// Where this pass started (the last seek's target).
    pass_from_ms: u64,
    /// The state at `pass_from_ms` has been applied.
    synced: bool,
    shown: Vec<Shown>,
    out: VecDeque<Output>,
}

/// When `item` shows, given the cues known and the playhead's media-to-server offset
/// (`Some` once placed; `dated` when from EXT-X-PROGRAM-DATE-TIME).
fn due_ms(cues: &Playback, offset_ms: Option<i64>, dated: bool, item: &Item) -> u64 {
    let cue_ms = item
        .cue
        .as_deref()
        .and_then(|cue| cues.cue_media_ms(cue))
        .zip(offset_ms)
        .map(|(media_ms, offset_ms)| (media_ms as i64).saturating_add(offset_ms).max(0) as u64);
    match cue_ms {
        Some(at) if at > item.ts_ms && at - item.ts_ms <= CUE_WAIT_MS_MAX => match dated {
            true => at.min(item.ts_ms + CUE_BEHIND_SLACK_MS),
            false => at,
        },
        _ => item.ts_ms,
    }
}

impl Replay {
    pub fn new() -> Replay {
        Replay {
            next_id: 1,
            ..Replay::default()
        }
    }

    /// The server time the recording started (known from the first answer).
    pub fn started_ms(&self) -> Option<u64> {
        self.started_ms
    }

    /// The playhead's server time, once reported.
    pub fn position_ms(&self) -> Option<u64> {
        self.position_ms
    }

    /// The state shown now: (key, id) of each key.
    pub fn state(&self) -> impl Iterator<Item = (&str, u64)> {
        self.shown.iter().map(|(key, _, id)| (key.as_str(), *id))
    }

    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// A cue the player found (see `Playback::add_cue`).
    pub fn add_cue(&mut self, payload: &str, media_ms: u64) {
        self.cues.add_cue(payload, media_ms);
        self.fire_due();
    }

    /// The next cue that played, as its `cue` event's JSON, as live
    /// (`Playback::poll_told`).
    pub fn poll_cue(&mut self) -> Option<String> {
        self.cues.poll_told()
    }

    /// The playhead moved (`timeupdate`, a frame, a poll while playing).
    pub fn playhead(&mut self, media_ms: u64, wall_ms: Option<u64>) {
        self.cues.playhead(media_ms, wall_ms);
        self.report(media_ms, wall_ms, false);
    }

    /// The player seeked (`seeked`): a new pass starts at `media_ms`.
    pub fn seek(&mut self, media_ms: u64, wall_ms: Option<u64>) {
        self.cues.seek(media_ms, wall_ms);
        self.report(media_ms, wall_ms, true);
    }

    fn report(&mut self, media_ms: u64, wall_ms: Option<u64>, seek: bool) {
        let offset_ms = match (wall_ms, self.offset_ms, self.started_ms) {
            (Some(wall_ms), _, _) => {
                self.dated = true;
                wall_ms as i64 - media_ms as i64
            }
            (None, Some(offset_ms), _) if self.dated => offset_ms,
            (None, _, Some(started_ms)) => started_ms as i64,
            (None, _, None) => return, // no answer yet: the playhead cannot be placed
        };
        self.offset_ms = Some(offset_ms);
        let at_ms = (media_ms as i64).saturating_add(offset_ms).max(0) as u64;
        match self.position_ms {
            None => {
                // The first report comes a little after playback started: events just
                // before it belong to this first moment.
                self.seek_to(at_ms.saturating_sub(PLAYHEAD_FIRST_SLACK_MS));
                self.advance(at_ms);
            }
            Some(from) if !seek && at_ms >= from && at_ms - from <= PLAYHEAD_JUMP_MS_MAX => {
                self.advance(at_ms)
            }
            Some(from) if !seek && at_ms < from && from - at_ms <= PLAYHEAD_JITTER_MS_MAX => {}
            Some(_) => self.seek_to(at_ms),
        }
    }

    fn seek_to(&mut self, at_ms: u64) {
        self.position_ms = Some(at_ms);
        self.pass_from_ms = at_ms;
        self.synced = false;
        let (cues, offset_ms, dated) = (&self.cues, self.offset_ms, self.dated);
        for window in &mut self.windows {
            window.cursor = 0;
            for item in &mut window.items {
                item.fired = due_ms(cues, offset_ms, dated, item) <= at_ms;
            }
        }
        self.sync();
    }

    fn advance(&mut self, at_ms: u64) {
        self.position_ms = Some(at_ms);
        self.fire_due();
    }

    /// The index of the window holding `at_ms` (past the end: the last one).
    fn window_at(&self, at_ms: u64) -> Option<usize> {
        let at_ms = match self.end_ms {
            Some(end_ms) => at_ms.min(end_ms.saturating_sub(1)),
            None => at_ms,
        };
        let at_ms = at_ms.max(self.started_ms.unwrap_or(0));
        self.windows
            .iter()
            .position(|w| w.from_ms <= at_ms && at_ms < w.to_ms)
    }

    /// The window with a snapshot that starts the contiguous run ending at `index`.
    fn base_of(&self, mut index: usize) -> Option<usize> {
        loop {
            if self.windows[index].snapshot.is_some() {
                return Some(index);
            }
            if index == 0 || self.windows[index - 1].to_ms != self.windows[index].from_ms {
                return None;
            }
            index -= 1;
        }
    }

    /// Applies the state at the pass's start, once its window is loaded.
    fn sync(&mut self) {
        if self.synced {
            return;
        }
        let at_ms = self.pass_from_ms;
        let Some(index) = self.window_at(at_ms) else {
            return; // next_fetch asks for it
        };
        let Some(base) = self.base_of(index) else {
            // Its run lost the snapshot it started from (let go): fetch it again with one.
            self.snapshot_from_ms = Some(self.windows[index].from_ms);
            self.drop_window(index);
            return;
        };
        let mut state: Vec<Shown> = Vec::new();
        let first = &self.windows[base];
        for (key, id) in first.snapshot.iter().flatten() {
            upsert(&mut state, key, first.from_ms, *id);
        }
        for window in &self.windows[base..=index] {
            for item in &window.items {
                if let Some(key) = &item.key {
                    if due_ms(&self.cues, self.offset_ms, self.dated, item) <= at_ms {
                        upsert(&mut state, key, item.ts_ms, item.id);
                    }
                }
            }
        }
        for (key, _, id) in &state {
            if !self.shown.iter().any(|(k, _, i)| k == key && i == id) {
                self.out.push_back(Output::Apply(*id));
            }
        }
        for (key, _, _) in &self.shown {
            if !state.iter().any(|(k, _, _)| k == key) {
                self.out.push_back(Output::Clear(key.clone()));
            }
        }
        self.shown = state;
        self.synced = true;
    }

    /// Shows every event due by the playhead not shown in this pass, earliest first.
    fn fire_due(&mut self) {
        self.sync();
        let Some(at_ms) = self.position_ms.filter(|_| self.synced) else {
            return;
        };
        let late_before_ms = at_ms.saturating_sub(LATE_MS_MAX);
        loop {
            // The earliest due; a step holds few, so picking one at a time keeps a sort
            // out of the SDK (size).
            let mut best: Option<(u64, usize, usize)> = None;
            for (w, window) in self.windows.iter_mut().enumerate() {
                if window.from_ms > at_ms {
                    break;
                }
                while window.items.get(window.cursor).is_some_and(|i| i.fired) {
                    window.cursor += 1;
                }
                for (i, item) in window.items.iter().enumerate().skip(window.cursor) {
                    if item.ts_ms > at_ms {
                        break; // due no earlier than its server time
                    }
                    let due = due_ms(&self.cues, self.offset_ms, self.dated, item);
                    if !item.fired && due <= at_ms && best.is_none_or(|(b, _, _)| due < b) {
                        best = Some((due, w, i));
                    }
                }
            }
            let Some((due, w, i)) = best else { return };
            let item = &mut self.windows[w].items[i];
            item.fired = true;
            match &item.key {
                None if due < late_before_ms => {} // too late to show
                None => self.out.push_back(Output::Fire(item.id)),
                Some(key) => {
                    // A key shows its newest recorded entry: an older one due later (a
                    // cue out of order) does not replace it.
                    let newer = self
                        .shown
                        .iter()
                        .any(|(k, ts, id)| k == key && (*ts, *id) > (item.ts_ms, item.id));
                    if !newer {
                        upsert(&mut self.shown, key, item.ts_ms, item.id);
                        self.out.push_back(Output::Fire(item.id));
                    }
                }
            }
        }
    }

    fn drop_window(&mut self, index: usize) {
        let window = self.windows.remove(index);
        self.out.extend(window.ids().map(Output::Forget));
    }

    /// The window to fetch now, if any (one at a time: the next after `window_end` or
    /// `window_failed`).
    pub fn next_fetch(&mut self, now_ms: u64) -> Option<Fetch> {
        if self.in_flight || now_ms < self.retry_at_ms {
            return None;
        }
        let started_ms = self.started_ms?;
        let mut at_ms = self.position_ms.unwrap_or(started_ms).max(started_ms);
        if !self.synced {
            at_ms = self.pass_from_ms.max(started_ms);
        }
        if let Some(end_ms) = self.end_ms {
            at_ms = at_ms.min(end_ms.saturating_sub(1)).max(started_ms);
        }
        let mut cell_ms = started_ms + (at_ms - started_ms) / WINDOW_MS * WINDOW_MS;
        while cell_ms < at_ms + PREFETCH_MS {
            let mut cell_end_ms = cell_ms + WINDOW_MS;
            if let Some(end_ms) = self.end_ms {
                cell_end_ms = cell_end_ms.min(end_ms);
            }
            if cell_ms >= cell_end_ms {
                break; // past the end
            }
            let mut from_ms = cell_ms;
            while let Some(w) = self
                .windows
                .iter()
                .find(|w| w.from_ms <= from_ms && from_ms < w.to_ms)
            {
                from_ms = w.to_ms;
            }
            if from_ms < cell_end_ms {
                // Played into from the window before, it needs no snapshot; a seek into a
                // run without one asks again (`sync`).
                let continues = self.windows.iter().any(|w| w.to_ms == from_ms);
                let snapshot = !continues || self.snapshot_from_ms == Some(from_ms);
                self.in_flight = true;
                return Some(Fetch {
                    from_ms,
                    to_ms: cell_end_ms,
                    snapshot,
                });
            }
            cell_ms += WINDOW_MS;
        }
        None
    }

    /// A fetch failed: asked again after `CLIENT_REPLAY_RETRY_MS`.
    pub fn window_failed(&mut self, now_ms: u64) {
        self.in_flight = false;
        self.loading = None;
        self.retry_at_ms = now_ms.saturating_add(RETRY_MS);
    }

    /// A window answer arrives: its entries follow (`window_snapshot_entry` for each part
    /// of its snapshot and its like total, then `window_event` for each event in order),
    /// then `window_end`.
    pub fn window_begin(&mut self, info: WindowInfo, snapshot: bool) {
        self.started_ms = Some(info.started_ms);
        self.end_ms = info.end_ms;
        // Nothing is recorded before the start (the SDK's first answer, `from=0&to=1`,
        // is only the recording's bounds).
        let from_ms = info.from_ms.max(info.started_ms);
        let mut to_ms = info.to_ms.max(from_ms);
        if info.live {
            to_ms = to_ms.min(info.recorded_to_ms.max(from_ms));
        }
        if let Some(end_ms) = info.end_ms {
            to_ms = to_ms.min(end_ms.max(from_ms));
        }
        if snapshot && self.snapshot_from_ms == Some(from_ms) {
            self.snapshot_from_ms = None;
        }
        let window = Window {
            from_ms,
            to_ms,
            snapshot: snapshot.then(Vec::new),
            items: Vec::new(),
            cursor: 0,
        };
        self.loading = Some((window, info.to_ms));
    }

    fn take_id(&mut self) -> Option<u64> {
        let (window, _) = self.loading.as_ref()?;
        let entries = window.items.len() + window.snapshot.as_ref().map_or(0, Vec::len);
        if entries >= WINDOW_EVENTS_MAX {
            return None;
        }
        self.next_id += 1;
        Some(self.next_id - 1)
    }

    /// A snapshot entry (a part at its version, or the like total) of the window being
    /// handed in; its id, or `None` when dropped (see `CLIENT_REPLAY_WINDOW_EVENTS_MAX`).
    pub fn window_snapshot_entry(&mut self, key: &str) -> Option<u64> {
        let id = self.take_id()?;
        let (window, _) = self.loading.as_mut()?;
        window
            .snapshot
            .get_or_insert_with(Vec::new)
            .push((key.into(), id));
        Some(id)
    }

    /// An event of the window being handed in, in recording order; its id, or `None` when
    /// dropped. Out-of-order or out-of-window times are clamped (the recording is ordered;
    /// a bad answer must not break the order the core relies on).
    pub fn window_event(
        &mut self,
        ts_ms: u64,
        key: Option<&str>,
        cue: Option<&str>,
    ) -> Option<u64> {
        let id = self.take_id()?;
        let (window, _) = self.loading.as_mut()?;
        let last_ms = window.items.last().map_or(window.from_ms, |i| i.ts_ms);
        let ts_ms = ts_ms.clamp(last_ms, window.to_ms.saturating_sub(1).max(last_ms));
        window.items.push(Item {
            id,
            ts_ms,
            key: key.map(String::from),
            cue: cue.map(String::from),
            fired: false,
        });
        Some(id)
    }

    /// The window answer is complete: it joins the loaded ones, and what is due shows.
    pub fn window_end(&mut self, now_ms: u64) {
        self.in_flight = false;
        let Some((mut window, asked_to_ms)) = self.loading.take() else {
            return;
        };
        if window.to_ms < asked_to_ms {
            // A live recording not yet recorded that far: ask again later.
            self.retry_at_ms = now_ms.saturating_add(RETRY_MS);
        }
        if window.to_ms <= window.from_ms {
            self.out.extend(window.ids().map(Output::Forget));
            return;
        }
        // Behind the pass's start: part of the state, not shown.
        let (cues, offset_ms, dated) = (&self.cues, self.offset_ms, self.dated);
        for item in &mut window.items {
            item.fired = self.position_ms.is_some()
                && due_ms(cues, offset_ms, dated, item) <= self.pass_from_ms;
        }
        // A window overlapping loaded ones replaces them.
        while let Some(i) = self
            .windows
            .iter()
            .position(|w| w.from_ms < window.to_ms && window.from_ms < w.to_ms)
        {
            self.drop_window(i);
        }
        let at = self.windows.partition_point(|w| w.from_ms < window.from_ms);
        self.windows.insert(at, window);
        while self.windows.len() > WINDOWS_MAX {
            let at_ms = self.position_ms.unwrap_or(0);
            let distance = |w: &Window| {
                if w.to_ms <= at_ms {
                    at_ms - w.to_ms + 1
                } else {
                    w.from_ms.saturating_sub(at_ms)
                }
            };
            let farthest = (0..self.windows.len())
                .max_by_key(|&i| distance(&self.windows[i]))
                .expect("more than WINDOWS_MAX");
            self.drop_window(farthest);
        }
        self.fire_due();
    }
}

fn upsert(state: &mut Vec<Shown>, key: &str, ts_ms: u64, id: u64) {
    match state.iter_mut().find(|(k, _, _)| k == key) {
        Some(entry) => {
            entry.1 = ts_ms;
            entry.2 = id;
        }
        None => state.push((key.into(), ts_ms, id)),
    }
}

#[cfg(test)]
mod tests;
