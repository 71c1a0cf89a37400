//! Replay: what `GET /v1/rooms/{room}/replay?from=MS&to=MS` answers (JSON, serde as
//! derived), and what a recorded chunk holds.
//!
//! A room records its timeline while live (`crates/replay`): sequenced actions (comments,
//! reactions, gifts, system messages; a removed comment is dropped from the recording,
//! and so is its `Removed` action), every change of its parts (polls with their tallies,
//! quizzes, the product card, Q&A, the announcement, app parts), and the like total. Each
//! event carries the server time it happened at (`ts_ms`, the clock the live batches
//! carry) and, for a cued interaction, its cue id, so a player can fire it when the video
//! reaches that cue. The same types are the recording's storage format (postcard), so
//! these enums are append-only too.
//!
//! JSON shape of one event (serde's default external tagging, variant names in
//! snake_case; an `Action` is the live protocol's own type):
//! `{"ts_ms":1733356800123,"cue":null,"body":{"action":{"seq":7,"ts_ms":1733356800123,
//! "user":"u1","name":"Ann","body":{"Comment":{"text":"hi"}}}}}`,
//! `{"ts_ms":…,"cue":"poll-1","body":{"part":{"name":"poll","version":12,"value":"{…}"}}}`,
//! `{"ts_ms":…,"cue":null,"body":{"likes":{"total":420}}}`.

use crate::frames::Action;
use alloc::string::String;
use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

/// A state part at one version, as live clients get it in `Event::Part` (`value` is the
/// part's JSON text).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplayPart {
    pub name: String,
    pub version: u64,
    pub value: String,
}

/// What one recorded event is. Append-only.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplayEventBody {
    /// A sequenced action exactly as live viewers got it (`Event::Action`).
    Action(Action),
    /// A part changed to this version and value (`Event::Part`). A part whose value is
    /// `null` was removed.
    Part(ReplayPart),
    /// The room's like total (recorded at most once per `REPLAY_LIKES_INTERVAL_MS`).
    Likes { total: u64 },
}

/// One recorded event at server time `ts_ms`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplayEvent {
    /// Server time (ms since the Unix epoch) at which live viewers were sent it.
    pub ts_ms: u64,
    /// The cue id of a cued interaction (a poll, quiz question or product card opened
    /// with a cue): a player shows it when the video plays that cue, not at `ts_ms`.
    pub cue: Option<String>,
    pub body: ReplayEventBody,
}

/// The room's state at `at_ms`: every part at its last version at or before `at_ms`
/// (removed parts left out), in name order, and the like total then. A viewer who starts
/// at `at_ms` shows this first, then plays the window's events.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ReplaySnapshot {
    pub at_ms: u64,
    pub parts: Vec<ReplayPart>,
    pub likes: u64,
}

/// Whether the room is still live (its recording grows) or ended (its recording is
/// final: every window answer is immutable and cached).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplayStatus {
    Live,
    Ended,
}

/// The answer of `GET /v1/rooms/{room}/replay?from=MS&to=MS`: the recorded events with
/// `from_ms <= ts_ms < to_ms`, in recording order (server time, then sequence).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplayWindow {
    pub room: String,
    pub status: ReplayStatus,
    pub from_ms: u64,
    pub to_ms: u64,
    /// Server time the recording started (the room's creation): media time 0 for a
    /// stream without EXT-X-PROGRAM-DATE-TIME.
    pub started_ms: u64,
    /// Server time the room ended (set once `status` is `ended`).
    pub ended_ms: Option<u64>,
    /// Events before this server time are all recorded; a live room's window reaching
    /// past it will get more events later (ask again).
    pub recorded_to_ms: u64,
    /// The recording reached `REPLAY_ROOM_BYTES_MAX` at this server time and stopped:
    /// nothing after it was recorded (the live room went on).
    pub truncated_at_ms: Option<u64>,
    /// The recording's chunk length (`REPLAY_CHUNK_MS`): windows aligned on it are the
    /// cheapest to serve.
    pub chunk_ms: u64,
    /// The state at `from_ms` (left out with `snapshot=false`).
    pub snapshot: Option<ReplaySnapshot>,
    pub events: Vec<ReplayEvent>,
    /// Comments and reactions left out of the recording by sampling (above
    /// `REPLAY_SAMPLED_EVENTS_PER_S_MAX`), counted over the chunks this window touches.
    pub sampled_out: u64,
    /// Sealed chunks of this window the store could not return (their write failed and
    /// is being retried, or was given up after `REPLAY_UNWRITTEN_CHUNKS_MAX`): their
    /// events are missing from `events` (and from `snapshot` for the first one). Empty
    /// for a complete window; a window that names some is never cached as final.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing_chunks: Vec<u64>,
}
