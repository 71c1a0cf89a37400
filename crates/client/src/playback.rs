//! Video sync, sans-IO: which in-band cues fire now, and which server events may show.
//!
//! The host (the SDK's player glue) feeds what the player tells it: cues as they are
//! discovered (from a metadata text track or hls.js samples — both may report the same
//! cue, at different moments), the playhead (`currentTime`) with the wall-clock time of
//! that moment when the stream carries EXT-X-PROGRAM-DATE-TIME, and seeks. It asks
//! [`Playback::poll_cue`] for cues to fire and [`Playback::release_before_ms`] for the
//! server time up to which held events may be shown.
//!
//! Invariants: a cue fires when the playhead reaches its media time while playing
//! forward, at most once per pass over that time (a seek back before it starts a new
//! pass); a cue discovered late (the playhead already past it by less than
//! `CUE_LATE_MS_MAX`) fires at once, never twice; a cue known by several signals is one
//! cue (same id, media times within `CUE_SAME_MS_MAX`). Bounded by `CUES_KNOWN_MAX`.
//!
//! Interactions waiting for their cue (a poll, quiz question or product card whose value
//! names a cue id; the host registers them with [`Playback::await_cue`] and takes them
//! from [`Playback::poll_open`]) open once each: when their cue fires, or at once when the
//! cue lies behind the viewer's playhead, which is when
//! (a) a cue with that id (the `cue=` field of the payload) is known at a media time at or
//!     before the playhead (the viewer joined after it or seeked past it), or
//! (b) the playhead's wall-clock time has passed the moment the interaction opened on the
//!     server by `CUE_BEHIND_SLACK_MS` (the encoder puts the cue in at about that moment;
//!     the slack lets the cue itself fire first when the video holds it), or
//! (c) the stream carries no wall-clock time at all (no EXT-X-PROGRAM-DATE-TIME in any
//!     playhead report), the playhead is known and the interaction was already open when
//!     the player was attached: such a cue cannot be placed, and a latecomer must not miss
//!     it. One opened later waits for its cue.
//! Nothing opens before the first playhead report. Bounded by `CUES_AWAITED_MAX`: past
//! it the oldest opens at once rather than never.

use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::vec::Vec;

use ovation_proto::limits::{
    CLIENT_CUES_AWAITED_MAX as CUES_AWAITED_MAX, CLIENT_CUES_DUE_MAX as CUES_DUE_MAX,
    CLIENT_CUES_KNOWN_MAX as CUES_KNOWN_MAX, CLIENT_CUE_BEHIND_SLACK_MS as CUE_BEHIND_SLACK_MS,
    CLIENT_CUE_LATE_MS_MAX as CUE_LATE_MS_MAX, CLIENT_CUE_PAYLOAD_BYTES_MAX,
    CLIENT_CUE_SAME_MS_MAX as CUE_SAME_MS_MAX,
    CLIENT_PLAYHEAD_FIRST_SLACK_MS as PLAYHEAD_FIRST_SLACK_MS,
    CLIENT_PLAYHEAD_JITTER_MS_MAX as PLAYHEAD_JITTER_MS_MAX,
    CLIENT_PLAYHEAD_JUMP_MS_MAX as PLAYHEAD_JUMP_MS_MAX,
};

/// A cue the player found: its payload as the stream carries it, at a media time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cue {
    pub payload: String,
    pub media_ms: u64,
}

impl Cue {
    /// What the payload tells the application, if it is a cue payload.
    pub fn fields(&self) -> Option<CueFields<'_>> {
        cue_fields(&self.payload)
    }
}

/// What a cue payload (`v=1;cue=<id>;ref=<kind>:<id>`) tells the application.
/// `ovation-cues` owns the format (`Cue::from_payload` is its strict reader); this is the
/// player's small one, tested to agree with it on every payload it accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CueFields<'a> {
    /// The cue id interactions name (their `cue`).
    pub cue: &'a str,
    /// The interaction the cue opens, when the payload names one as `kind:id`.
    pub reference: Option<CueRef<'a>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CueRef<'a> {
    pub kind: &'a str,
    pub id: &'a str,
}

/// The fields of a version-1 payload: `None` for another version or without a `cue`.
/// Unknown fields are skipped; of a field given twice the first counts.
pub fn cue_fields(payload: &str) -> Option<CueFields<'_>> {
    if !payload.starts_with("v=1;") {
        return None;
    }
    let cue = field(payload, b"cue=").filter(|cue| !cue.is_empty())?;
    let reference = field(payload, b"ref=").and_then(|r| {
        let colon = r.bytes().position(|b| b == b':').filter(|at| *at > 0)?;
        // `get`, not indexing: a slice that could panic brings `core::fmt`'s character
        // tables into the SDK (4 KB gzipped).
        Some(CueRef {
            kind: r.get(..colon)?,
            id: r.get(colon + 1..)?,
        })
    });
    Some(CueFields { cue, reference })
}

#[derive(Debug)]
struct Known {
    cue: Cue,
    /// Fired in the current pass.
    fired: bool,
}

/// The cue id in a cue payload (`v=1;cue=<id>;ref=...`).
fn cue_id_of(payload: &str) -> Option<&str> {
    field(payload, b"cue=")
}

/// The value of the first `;`-separated field starting with `key` (`name=`). Bytes, not
/// `str` searching, which would cost the SDK's size budget.
fn field<'a>(payload: &'a str, key: &[u8]) -> Option<&'a str> {
    let bytes = payload.as_bytes();
    let mut start = 0;
    for end in 0..=bytes.len() {
        if end == bytes.len() || bytes[end] == b';' {
            if bytes[start..end].starts_with(key) {
                return payload.get(start + key.len()..end);
            }
            start = end + 1;
        }
    }
    None
}

/// An open interaction waiting for its cue.
#[derive(Debug)]
struct Awaited {
    cue_id: String,
    /// When it opened on the server (ms since the epoch), if told.
    opened_ms: Option<u64>,
    /// It was open when the player was attached (came with the state, not live).
    open_at_attach: bool,
}

#[derive(Debug, Default)]
pub struct Playback {
    known: Vec<Known>,
    due: VecDeque<Cue>,
    awaited: Vec<Awaited>,
    /// Cue ids whose interactions open now, not yet taken by the host.
    opening: Vec<String>,
    /// Some playhead report carried a wall-clock time: the stream is dated.
    dated: bool,
    /// The playhead last reported (media ms), if any.
    playhead_ms: Option<u64>,
    /// Wall-clock (server-comparable, ms since the epoch) of the playhead last reported.
    playhead_wall_ms: Option<u64>,
}

impl Playback {
    pub fn new() -> Playback {
        Playback::default()
    }

    /// A cue the player found (any signal). Fires at once when its moment has just played.
    pub fn add_cue(&mut self, payload: &str, media_ms: u64) {
        if payload.len() > CLIENT_CUE_PAYLOAD_BYTES_MAX {
            return; // not a cue (the format's bound): a hostile stream's text is not kept
        }
        if self.known.iter().any(|k| {
            k.cue.payload == payload && k.cue.media_ms.abs_diff(media_ms) <= CUE_SAME_MS_MAX
        }) {
            return;
        }
        if self.known.len() >= CUES_KNOWN_MAX {
            let oldest = self
                .known
                .iter()
                .enumerate()
                .min_by_key(|(_, k)| k.cue.media_ms)
                .map(|(i, _)| i)
                .expect("non-empty");
            self.known.swap_remove(oldest);
        }
        let cue = Cue {
            payload: payload.into(),
            media_ms,
        };
        let late = self
            .playhead_ms
            .is_some_and(|at| media_ms <= at && at - media_ms <= CUE_LATE_MS_MAX);
        if late {
            self.fire(cue.clone());
        }
        self.known.push(Known { cue, fired: late });
        self.open_behind();
    }

    /// The playhead moved (timeupdate, requestVideoFrameCallback, or a poll). A step back
    /// or a jump is a seek: cues after the new position may fire again in the new pass.
    pub fn playhead(&mut self, media_ms: u64, wall_ms: Option<u64>) {
        self.advance(media_ms, wall_ms);
        self.open_behind();
    }

    fn advance(&mut self, media_ms: u64, wall_ms: Option<u64>) {
        self.dated |= wall_ms.is_some();
        let previous = self.playhead_ms;
        self.playhead_ms = Some(media_ms);
        self.playhead_wall_ms = wall_ms;
        match previous {
            Some(from) if media_ms >= from && media_ms - from <= PLAYHEAD_JUMP_MS_MAX => {
                // Playing forward: every unfired cue in (from, media_ms] fires, earliest
                // first. A step holds few cues: picking the earliest each time keeps the
                // SDK free of a sort implementation (size).
                while let Some(i) = (0..self.known.len())
                    .filter(|&i| {
                        let k = &self.known[i];
                        !k.fired && k.cue.media_ms > from && k.cue.media_ms <= media_ms
                    })
                    .min_by_key(|&i| self.known[i].cue.media_ms)
                {
                    self.known[i].fired = true;
                    let cue = self.known[i].cue.clone();
                    self.fire(cue);
                }
            }
            // Signals disagree by a frame or so (a frame callback's media time trails
            // `currentTime`): a small step back is not a seek; the furthest position holds.
            Some(from) if media_ms < from && from - media_ms <= PLAYHEAD_JITTER_MS_MAX => {
                self.playhead_ms = Some(from);
            }
            Some(_) => self.seeked(media_ms),
            None => {
                // The first report comes a little after playback started: cues just
                // before it belong to this first moment.
                self.seeked(media_ms.saturating_sub(PLAYHEAD_FIRST_SLACK_MS + 1));
                self.advance(media_ms, wall_ms);
            }
        }
    }

    /// A new pass starts at `media_ms`: cues at or after it may fire again.
    fn seeked(&mut self, media_ms: u64) {
        self.playhead_ms = Some(media_ms);
        for k in &mut self.known {
            k.fired = k.cue.media_ms <= media_ms;
        }
    }

    /// The playhead jumped (the player's `seeking`/`seeked`): a new pass starts there, and
    /// a cue exactly at the target fires, and interactions whose cue lies behind the target
    /// open.
    pub fn seek(&mut self, media_ms: u64, wall_ms: Option<u64>) {
        self.seeked(media_ms.saturating_sub(1));
        self.playhead(media_ms, wall_ms);
    }

    fn fire(&mut self, cue: Cue) {
        if let Some(cue_id) = cue_id_of(&cue.payload) {
            while let Some(i) = self.awaited.iter().position(|a| a.cue_id == cue_id) {
                self.open(i);
            }
        }
        if self.due.len() >= CUES_DUE_MAX {
            self.due.pop_front(); // the host stopped taking them; keep the newest
        }
        self.due.push_back(cue);
    }

    /// An open interaction waits for the cue `cue_id`: it opens (see [`Playback::poll_open`])
    /// when that cue fires or at once when the cue lies behind the playhead (see the module
    /// documentation). `opened_ms` is when it opened on the server; `open_at_attach` says it
    /// was already open when the player was attached. Telling it again (an update of the
    /// same interaction) changes nothing; once it has opened, telling it again waits anew.
    pub fn await_cue(&mut self, cue_id: &str, opened_ms: Option<u64>, open_at_attach: bool) {
        if let Some(awaited) = self.awaited.iter_mut().find(|a| a.cue_id == cue_id) {
            awaited.opened_ms = awaited.opened_ms.or(opened_ms);
            awaited.open_at_attach |= open_at_attach;
        } else {
            if self.awaited.len() >= CUES_AWAITED_MAX {
                self.open(0); // the oldest shows now rather than never
            }
            self.awaited.push(Awaited {
                cue_id: cue_id.into(),
                opened_ms,
                open_at_attach,
            });
        }
        self.open_behind();
    }

    /// The next cue id whose interaction opens now, each once.
    pub fn poll_open(&mut self) -> Option<String> {
        // Rarely more than one: a Vec costs the SDK less code than a second VecDeque.
        (!self.opening.is_empty()).then(|| self.opening.remove(0))
    }

    fn open(&mut self, awaited_index: usize) {
        let awaited = self.awaited.remove(awaited_index);
        if self.opening.len() >= CUES_AWAITED_MAX {
            self.opening.remove(0); // the host stopped taking them; keep the newest
        }
        self.opening.push(awaited.cue_id);
    }

    /// Opens every awaited interaction whose cue lies behind the playhead.
    fn open_behind(&mut self) {
        let Some(playhead_ms) = self.playhead_ms else {
            return; // nothing has played: nothing is behind
        };
        let mut i = 0;
        while i < self.awaited.len() {
            let a = &self.awaited[i];
            let known_behind = self.known.iter().any(|k| {
                k.cue.media_ms <= playhead_ms
                    && cue_id_of(&k.cue.payload) == Some(a.cue_id.as_str())
            });
            let dated_behind = match (self.playhead_wall_ms, a.opened_ms) {
                (Some(wall_ms), Some(opened_ms)) => {
                    wall_ms >= opened_ms.saturating_add(CUE_BEHIND_SLACK_MS)
                }
                _ => false,
            };
            let undatable = !self.dated && a.open_at_attach;
            if known_behind || dated_behind || undatable {
                self.open(i);
            } else {
                i += 1;
            }
        }
    }

    /// The media time of a known cue with the id `cue_id` (the `cue=` field of its
    /// payload), for a replay that fires a cued event when its cue plays.
    pub fn cue_media_ms(&self, cue_id: &str) -> Option<u64> {
        self.known
            .iter()
            .find(|k| cue_id_of(&k.cue.payload) == Some(cue_id))
            .map(|k| k.cue.media_ms)
    }

    pub fn poll_cue(&mut self) -> Option<Cue> {
        self.due.pop_front()
    }

    /// The next cue due that the application is told of, as its `cue` event's JSON
    /// (`cue_event_json`): one whose payload has a cue id (`Cue::fields`); others fire
    /// for nothing and are let go.
    pub fn poll_told(&mut self) -> Option<String> {
        while let Some(cue) = self.due.pop_front() {
            if let Some(fields) = cue.fields() {
                return Some(crate::json::cue_event_json(&fields));
            }
        }
        None
    }

    /// Server events with a timestamp up to this (ms since the epoch) may show now;
    /// `None` while the playhead's wall-clock time is unknown (hold nothing then).
    pub fn release_before_ms(&self) -> Option<u64> {
        self.playhead_wall_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fired(p: &mut Playback) -> Vec<(String, u64)> {
        core::iter::from_fn(|| p.poll_cue())
            .map(|c| (c.payload, c.media_ms))
            .collect()
    }

    fn play(p: &mut Playback, from_ms: u64, to_ms: u64, step_ms: u64) -> Vec<(String, u64)> {
        let mut out = Vec::new();
        let mut at = from_ms;
        while at <= to_ms {
            p.playhead(at, None);
            out.extend(fired(p));
            at += step_ms;
        }
        out
    }

    #[test]
    fn cues_fire_when_their_moment_plays_once_each_and_in_order() {
        let mut p = Playback::new();
        p.add_cue("b", 3_200);
        p.add_cue("a", 500);
        p.add_cue("a", 510); // the same cue from another signal
        let got = play(&mut p, 0, 6_000, 250);
        assert_eq!(got, [("a".into(), 500), ("b".into(), 3_200)]);
    }

    #[test]
    fn a_cue_in_the_first_second_fires_even_if_the_first_report_is_after_it() {
        let mut p = Playback::new();
        p.add_cue("first", 100);
        let got = play(&mut p, 300, 1_000, 250);
        assert_eq!(got, [("first".into(), 100)]);
    }

    #[test]
    fn a_cue_found_late_fires_at_once_but_not_when_long_past() {
        let mut p = Playback::new();
        play(&mut p, 0, 5_000, 250);
        p.add_cue("late", 4_000);
        p.add_cue("ancient", 1_000);
        assert_eq!(fired(&mut p), [("late".into(), 4_000)]);
        p.add_cue("late", 4_000); // told again by the other signal
        assert!(play(&mut p, 5_250, 6_000, 250).is_empty());
    }

    #[test]
    fn signals_that_disagree_by_a_frame_do_not_start_a_new_pass() {
        let mut p = Playback::new();
        p.add_cue("x", 2_980);
        p.playhead(2_900, None);
        let mut got = Vec::new();
        for at in [2_992, 2_975, 3_000, 3_040, 3_020] {
            p.playhead(at, None);
            got.extend(fired(&mut p));
        }
        assert_eq!(got, [("x".into(), 2_980)]);
    }

    #[test]
    fn seeking_back_starts_a_new_pass_and_seeking_over_a_cue_skips_it() {
        let mut p = Playback::new();
        p.add_cue("x", 2_000);
        p.add_cue("y", 8_000);
        assert_eq!(play(&mut p, 0, 3_000, 250), [("x".into(), 2_000)]);
        p.seek(1_000, None);
        assert_eq!(play(&mut p, 1_000, 3_000, 250), [("x".into(), 2_000)]);
        p.seek(9_000, None); // over y: not played, not fired
        assert!(play(&mut p, 9_000, 10_000, 250).is_empty());
        p.seek(8_000, None); // exactly at y
        assert_eq!(fired(&mut p), [("y".into(), 8_000)]);
    }

    #[test]
    fn live_streams_with_large_media_times_and_a_bounded_memory() {
        let mut p = Playback::new();
        let base = 86_400_000 * 3;
        for i in 0..(CUES_KNOWN_MAX as u64 + 10) {
            p.add_cue("c", base + i * 1_000);
        }
        assert_eq!(p.known.len(), CUES_KNOWN_MAX);
        // The ten oldest were forgotten; playing from 12.1 s fires 12 s, 13 s and 14 s.
        let got = play(&mut p, base + 12_100, base + 14_000, 100);
        let times: Vec<u64> = got.iter().map(|(_, at)| at - base).collect();
        assert_eq!(times, [12_000, 13_000, 14_000]);
    }

    /// Plays forward with a dated stream: the wall clock at media time 0 is `wall_at_zero_ms`.
    /// Returns (media ms, cue id) of every interaction that opened.
    fn play_dated(
        p: &mut Playback,
        from_ms: u64,
        to_ms: u64,
        wall_at_zero_ms: u64,
    ) -> Vec<(u64, String)> {
        let mut out = Vec::new();
        let mut at = from_ms;
        while at <= to_ms {
            p.playhead(at, Some(wall_at_zero_ms + at));
            fired(p);
            out.extend(opened(p).into_iter().map(|id| (at, id)));
            at += 250;
        }
        out
    }

    fn opened(p: &mut Playback) -> Vec<String> {
        core::iter::from_fn(|| p.poll_open()).collect()
    }

    const POLL_CUE: &str = "v=1;cue=poll-1;ref=poll:p1";
    /// When the host opened the poll (server time); the encoder put its cue at 10 s.
    const OPENED_MS: u64 = 1_700_000_000_000;
    const WALL_AT_ZERO_MS: u64 = OPENED_MS - 10_000;

    #[test]
    fn an_interaction_opens_when_its_cue_plays_not_earlier() {
        let mut p = Playback::new();
        p.add_cue(POLL_CUE, 10_000);
        p.playhead(4_000, Some(WALL_AT_ZERO_MS + 4_000));
        p.await_cue("poll-1", Some(OPENED_MS), false);
        assert!(opened(&mut p).is_empty());
        let got = play_dated(&mut p, 4_000, 14_000, WALL_AT_ZERO_MS);
        assert_eq!(got, [(10_000, "poll-1".into())]);
    }

    #[test]
    fn a_known_cue_behind_the_playhead_opens_it_at_once() {
        // Seeked past: the cue was found ahead, then the viewer jumped over it. The stream
        // is dated earlier than the opening (a recording), so only the cue places it.
        let mut p = Playback::new();
        p.add_cue(POLL_CUE, 10_000);
        play_dated(&mut p, 0, 3_000, 0);
        p.await_cue("poll-1", Some(OPENED_MS), false);
        assert!(opened(&mut p).is_empty());
        p.seek(11_000, Some(11_000));
        assert!(fired(&mut p).is_empty(), "a cue jumped over does not fire");
        assert_eq!(opened(&mut p), ["poll-1"]);

        // Joined after it: the cue (long past when found) is known behind the playhead.
        let mut p = Playback::new();
        p.playhead(30_000, None);
        p.await_cue("poll-1", None, false);
        assert!(opened(&mut p).is_empty());
        p.add_cue(POLL_CUE, 10_000);
        assert!(fired(&mut p).is_empty(), "too late to fire as a cue");
        assert_eq!(opened(&mut p), ["poll-1"]);
        // Another cue id behind the playhead opens nothing else.
        p.await_cue("quiz-1", None, false);
        p.add_cue("v=1;cue=quiz-10;ref=quiz:q", 20_000);
        assert!(opened(&mut p).is_empty());
    }

    #[test]
    fn without_its_cue_a_dated_stream_opens_it_once_the_wall_clock_passes_the_slack() {
        let mut p = Playback::new();
        // Joined after the cue's segment left the live window: the cue is never found.
        p.await_cue("poll-1", Some(OPENED_MS), true);
        assert!(opened(&mut p).is_empty(), "nothing before the first report");
        let slack_at_ms = 10_000 + CUE_BEHIND_SLACK_MS;
        let got = play_dated(
            &mut p,
            slack_at_ms - 1_000,
            slack_at_ms + 1_000,
            WALL_AT_ZERO_MS,
        );
        assert_eq!(got, [(slack_at_ms, "poll-1".into())]);
        // A step short of the slack is not enough.
        let mut p = Playback::new();
        p.await_cue("poll-1", Some(OPENED_MS), true);
        p.playhead(20_000, Some(OPENED_MS + CUE_BEHIND_SLACK_MS - 1));
        assert!(opened(&mut p).is_empty());
        p.playhead(20_001, Some(OPENED_MS + CUE_BEHIND_SLACK_MS));
        assert_eq!(opened(&mut p), ["poll-1"]);
        // Well past it, it opens with the first report.
        let mut p = Playback::new();
        p.await_cue("poll-1", Some(OPENED_MS), true);
        p.playhead(50_000, Some(OPENED_MS + 40_000));
        assert_eq!(opened(&mut p), ["poll-1"]);
    }

    #[test]
    fn an_undated_stream_opens_what_was_open_at_attach_and_later_ones_at_their_cue() {
        let mut p = Playback::new();
        p.await_cue("product-1", Some(OPENED_MS), true);
        assert!(opened(&mut p).is_empty(), "nothing before the first report");
        p.playhead(1_000, None);
        assert_eq!(opened(&mut p), ["product-1"]);
        // Opened live, after attaching: it waits for its cue, however long.
        p.await_cue("poll-1", Some(OPENED_MS), false);
        assert!(play(&mut p, 1_250, 9_750, 250).is_empty());
        assert!(opened(&mut p).is_empty());
        p.add_cue(POLL_CUE, 10_000);
        assert_eq!(
            play(&mut p, 10_000, 10_000, 250),
            [(POLL_CUE.into(), 10_000)]
        );
        assert_eq!(opened(&mut p), ["poll-1"]);
        // A dated stream whose wall clock is missing from one report is not undated.
        let mut p = Playback::new();
        p.playhead(1_000, Some(WALL_AT_ZERO_MS + 1_000));
        p.await_cue("product-1", Some(OPENED_MS), true);
        p.playhead(1_250, None);
        assert!(opened(&mut p).is_empty());
    }

    #[test]
    fn an_interaction_opens_once_though_its_cue_then_plays_again_and_again() {
        let mut p = Playback::new();
        p.add_cue(POLL_CUE, 10_000);
        p.await_cue("poll-1", Some(OPENED_MS), false);
        p.await_cue("poll-1", Some(OPENED_MS), false); // an update of the same poll
        p.seek(12_000, Some(WALL_AT_ZERO_MS + 12_000));
        assert_eq!(opened(&mut p), ["poll-1"]);
        // The viewer seeks back and plays the cue: the cue fires, the poll stays opened.
        p.seek(9_000, Some(WALL_AT_ZERO_MS + 9_000));
        let got = play_dated(&mut p, 9_000, 11_000, WALL_AT_ZERO_MS);
        assert!(got.is_empty());
        p.seek(9_000, Some(WALL_AT_ZERO_MS + 9_000));
        let mut cues = Vec::new();
        for at in (9_000..=11_000).step_by(250) {
            p.playhead(at, Some(WALL_AT_ZERO_MS + at));
            cues.extend(fired(&mut p));
        }
        assert_eq!(cues, [(POLL_CUE.into(), 10_000)]);
        assert!(opened(&mut p).is_empty());
        // Opened by its cue, the wall clock passing later opens nothing more.
        let mut p = Playback::new();
        p.add_cue(POLL_CUE, 10_000);
        p.await_cue("poll-1", Some(OPENED_MS), true);
        let got = play_dated(&mut p, 9_000, 20_000, WALL_AT_ZERO_MS);
        assert_eq!(got, [(10_000, "poll-1".into())]);
    }

    #[test]
    fn one_past_the_awaited_limit_opens_the_oldest_at_once() {
        let mut p = Playback::new();
        for i in 0..CUES_AWAITED_MAX {
            p.await_cue(&alloc::format!("c{i}"), None, false);
        }
        assert!(opened(&mut p).is_empty());
        p.await_cue("one-more", None, false);
        assert_eq!(opened(&mut p), ["c0"]);
        assert_eq!(p.awaited.len(), CUES_AWAITED_MAX);
        // A host that stops taking them: what waits to be taken stays bounded too.
        for i in 0..3 * CUES_AWAITED_MAX {
            p.await_cue(&alloc::format!("d{i}"), None, false);
        }
        assert_eq!(p.opening.len(), CUES_AWAITED_MAX);
    }

    #[test]
    fn cues_fired_past_cues_due_max_keep_the_newest() {
        let mut p = Playback::new();
        p.playhead(10_000, None);
        for i in 0..CUES_DUE_MAX {
            p.add_cue(&alloc::format!("c{i}"), 10_000);
        }
        assert_eq!(p.due.len(), CUES_DUE_MAX);
        assert_eq!(p.due.front().map(|c| c.payload.as_str()), Some("c0"));
        // The host stopped taking them: one more forgets the oldest.
        p.add_cue("one-more", 10_000);
        assert_eq!(p.due.len(), CUES_DUE_MAX);
        assert_eq!(p.due.front().map(|c| c.payload.as_str()), Some("c1"));
        assert_eq!(p.due.back().map(|c| c.payload.as_str()), Some("one-more"));
    }

    /// Each timing bound of the playhead taken at the limit and one past it.
    #[test]
    fn playhead_bounds_hold_at_the_limit_and_change_one_past() {
        // Reports of one cue within CUE_SAME_MS_MAX are one cue.
        let mut p = Playback::new();
        p.add_cue("a", 1_000);
        p.add_cue("a", 1_000 + CUE_SAME_MS_MAX);
        assert_eq!(p.known.len(), 1);
        p.add_cue("a", 1_000 + CUE_SAME_MS_MAX + 1);
        assert_eq!(p.known.len(), 2);
        // A cue found CUE_LATE_MS_MAX after its moment fires; one more is too late.
        let mut p = Playback::new();
        play(&mut p, 0, 5_000, 250);
        p.add_cue("at-limit", 5_000 - CUE_LATE_MS_MAX);
        p.add_cue("past", 5_000 - CUE_LATE_MS_MAX - 1);
        assert_eq!(
            fired(&mut p),
            [("at-limit".into(), 5_000 - CUE_LATE_MS_MAX)]
        );
        // A step of PLAYHEAD_JUMP_MS_MAX is playback (cues on the way fire); one more is
        // a seek over them.
        for (step, fires) in [
            (PLAYHEAD_JUMP_MS_MAX, true),
            (PLAYHEAD_JUMP_MS_MAX + 1, false),
        ] {
            let mut p = Playback::new();
            p.add_cue("x", 3_000);
            p.playhead(3_000 - step, None);
            p.playhead(3_000, None);
            assert_eq!(!fired(&mut p).is_empty(), fires, "step {step}");
        }
        // A step back of PLAYHEAD_JITTER_MS_MAX is disagreement; one more is a seek back
        // (a new pass: the cue fires again).
        for (back, again) in [
            (PLAYHEAD_JITTER_MS_MAX, false),
            (PLAYHEAD_JITTER_MS_MAX + 1, true),
        ] {
            let mut p = Playback::new();
            p.add_cue("x", 2_000);
            assert_eq!(play(&mut p, 0, 2_100, 100).len(), 1);
            p.playhead(2_100 - back, None);
            p.playhead(2_100, None);
            assert_eq!(!fired(&mut p).is_empty(), again, "back {back}");
        }
        // A cue PLAYHEAD_FIRST_SLACK_MS before the first report belongs to the first
        // moment; one more before it does not.
        for (first, fires) in [
            (1_000 + PLAYHEAD_FIRST_SLACK_MS, true),
            (1_000 + PLAYHEAD_FIRST_SLACK_MS + 1, false),
        ] {
            let mut p = Playback::new();
            p.add_cue("x", 1_000);
            p.playhead(first, None);
            assert_eq!(!fired(&mut p).is_empty(), fires, "first report at {first}");
        }
    }

    #[test]
    fn only_cues_with_a_cue_id_are_told() {
        let mut p = Playback::new();
        for (payload, media_ms) in [
            ("v=1;cue=a;ref=poll:p", 1_000),
            ("junk", 1_010),
            ("v=1;cue=b", 1_020),
        ] {
            p.add_cue(payload, media_ms);
        }
        p.playhead(900, None);
        p.playhead(1_100, None);
        let told: Vec<String> = core::iter::from_fn(|| p.poll_told()).collect();
        assert_eq!(
            told,
            [
                r#"{"cue":"a","ref":{"kind":"poll","id":"p"}}"#,
                r#"{"cue":"b","ref":null}"#
            ]
        );
    }

    #[test]
    fn a_payloads_fields_are_read_as_the_application_gets_them() {
        let fields = cue_fields("v=1;cue=poll-1;ref=poll:p1").unwrap();
        assert_eq!(fields.cue, "poll-1");
        assert_eq!(
            fields.reference,
            Some(CueRef {
                kind: "poll",
                id: "p1"
            })
        );
        let custom = cue_fields("v=1;ref=custom:a:b;x=y;cue=c").unwrap();
        assert_eq!(
            custom.reference.map(|r| (r.kind, r.id)),
            Some(("custom", "a:b"))
        );
        assert_eq!(cue_fields("v=1;cue=c").unwrap().reference, None);
        assert_eq!(cue_fields("v=1;cue=c;ref=:p1").unwrap().reference, None);
        assert_eq!(cue_fields("v=1;cue=c;ref=poll").unwrap().reference, None);
        assert_eq!(cue_fields("v=1;cue=;ref=poll:p1"), None);
        assert_eq!(cue_fields("v=1;ref=poll:p1"), None);
        assert_eq!(cue_fields("v=2;cue=c"), None);
        assert_eq!(cue_fields("cue=c"), None);
        assert_eq!(cue_fields(""), None);
    }

    #[test]
    fn the_cue_id_is_the_cue_field_of_the_payload() {
        assert_eq!(cue_id_of("v=1;cue=poll-1;ref=poll:p1"), Some("poll-1"));
        assert_eq!(cue_id_of("v=1;ref=poll:p1;cue=poll-1"), Some("poll-1"));
        assert_eq!(cue_id_of("v=1;ref=poll:p1"), None);
        assert_eq!(cue_id_of("v=1;xcue=a;ref=poll:p1"), None);
    }

    #[test]
    fn held_events_are_released_by_the_playhead_wall_clock() {
        let mut p = Playback::new();
        assert_eq!(p.release_before_ms(), None);
        p.playhead(1_000, Some(1_700_000_001_000));
        assert_eq!(p.release_before_ms(), Some(1_700_000_001_000));
    }
}
