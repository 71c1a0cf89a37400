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

use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::vec::Vec;

use ovation_proto::limits::{
    CLIENT_CUES_DUE_MAX as CUES_DUE_MAX, CLIENT_CUES_KNOWN_MAX as CUES_KNOWN_MAX,
    CLIENT_CUE_LATE_MS_MAX as CUE_LATE_MS_MAX, CLIENT_CUE_SAME_MS_MAX as CUE_SAME_MS_MAX,
    CLIENT_PLAYHEAD_FIRST_SLACK_MS as PLAYHEAD_FIRST_SLACK_MS,
    CLIENT_PLAYHEAD_JITTER_MS_MAX as PLAYHEAD_JITTER_MS_MAX,
    CLIENT_PLAYHEAD_JUMP_MS_MAX as PLAYHEAD_JUMP_MS_MAX,
};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cue {
    pub id: String,
    pub media_ms: u64,
}

#[derive(Debug)]
struct Known {
    cue: Cue,
    /// Fired in the current pass.
    fired: bool,
}

#[derive(Debug, Default)]
pub struct Playback {
    known: Vec<Known>,
    due: VecDeque<Cue>,
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
    pub fn add_cue(&mut self, id: &str, media_ms: u64) {
        if self
            .known
            .iter()
            .any(|k| k.cue.id == id && k.cue.media_ms.abs_diff(media_ms) <= CUE_SAME_MS_MAX)
        {
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
            id: id.into(),
            media_ms,
        };
        let late = self
            .playhead_ms
            .is_some_and(|at| media_ms <= at && at - media_ms <= CUE_LATE_MS_MAX);
        if late {
            self.fire(cue.clone());
        }
        self.known.push(Known { cue, fired: late });
    }

    /// The playhead moved (timeupdate, requestVideoFrameCallback, or a poll). A step back
    /// or a jump is a seek: cues after the new position may fire again in the new pass.
    pub fn playhead(&mut self, media_ms: u64, wall_ms: Option<u64>) {
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
                self.playhead(media_ms, wall_ms);
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
    /// a cue exactly at the target fires.
    pub fn seek(&mut self, media_ms: u64, wall_ms: Option<u64>) {
        self.seeked(media_ms.saturating_sub(1));
        self.playhead(media_ms, wall_ms);
    }

    fn fire(&mut self, cue: Cue) {
        if self.due.len() >= CUES_DUE_MAX {
            self.due.pop_front(); // the host stopped taking them; keep the newest
        }
        self.due.push_back(cue);
    }

    pub fn poll_cue(&mut self) -> Option<Cue> {
        self.due.pop_front()
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
            .map(|c| (c.id, c.media_ms))
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

    #[test]
    fn held_events_are_released_by_the_playhead_wall_clock() {
        let mut p = Playback::new();
        assert_eq!(p.release_before_ms(), None);
        p.playhead(1_000, Some(1_700_000_001_000));
        assert_eq!(p.release_before_ms(), Some(1_700_000_001_000));
    }
}
