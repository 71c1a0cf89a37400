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
use crate::limits::REPLAY_WINDOW_MS_MAX;
use alloc::format;
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

/// The query of `GET /v1/rooms/{room}/replay?from=MS&to=MS[&snapshot=false]`, checked:
/// `from_ms < to_ms`, at most `REPLAY_WINDOW_MS_MAX` apart. The Worker's router parses it
/// (and answers a bad one 400 with the error's code) and passes it on to the room object
/// as [`ReplayQuery::to_query`], which the object parses again with the same parser.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplayQuery {
    pub from_ms: u64,
    pub to_ms: u64,
    /// Whether the answer carries the state at `from_ms` (`snapshot=false` leaves it out;
    /// any other value, or none, keeps it).
    pub snapshot: bool,
}

/// Why a replay query was refused; every one is answered 400 with [`code`](Self::code).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplayQueryError {
    /// `from` or `to` missing, or not a whole number of ms.
    WindowRequired,
    /// `to` is not after `from`.
    EmptyWindow,
    /// `to - from` passes `REPLAY_WINDOW_MS_MAX`.
    WindowTooLong { window_ms: u64 },
}

impl ReplayQueryError {
    pub fn code(&self) -> &'static str {
        match self {
            ReplayQueryError::WindowRequired => "replay_window_required",
            ReplayQueryError::EmptyWindow => "replay_window_empty",
            ReplayQueryError::WindowTooLong { .. } => "replay_window_too_long",
        }
    }

    pub fn message(&self) -> String {
        match self {
            ReplayQueryError::WindowRequired => {
                "give the window as ?from=MS&to=MS (server time, ms)".into()
            }
            ReplayQueryError::EmptyWindow => "`to` must be after `from` (ms)".into(),
            ReplayQueryError::WindowTooLong { window_ms } => format!(
                "a replay window is at most {REPLAY_WINDOW_MS_MAX} ms (asked {window_ms} ms): \
                 fetch it in several windows"
            ),
        }
    }

    pub fn http_status(&self) -> u16 {
        400
    }
}

impl ReplayQuery {
    /// Parses the query's decoded `(name, value)` pairs (as `url::Url::query_pairs` gives
    /// them; the first of a repeated name counts) and checks the window.
    pub fn from_pairs<K, V>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Result<ReplayQuery, ReplayQueryError>
    where
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let (mut from, mut to, mut snapshot) = (None, None, None);
        for (name, value) in pairs {
            let slot = match name.as_ref() {
                "from" => &mut from,
                "to" => &mut to,
                "snapshot" => &mut snapshot,
                _ => continue,
            };
            if slot.is_none() {
                *slot = Some(String::from(value.as_ref()));
            }
        }
        let ms = |v: Option<String>| v.and_then(|v| v.parse::<u64>().ok());
        let (Some(from_ms), Some(to_ms)) = (ms(from), ms(to)) else {
            return Err(ReplayQueryError::WindowRequired);
        };
        if to_ms <= from_ms {
            return Err(ReplayQueryError::EmptyWindow);
        }
        let window_ms = to_ms - from_ms;
        if window_ms > REPLAY_WINDOW_MS_MAX {
            return Err(ReplayQueryError::WindowTooLong { window_ms });
        }
        Ok(ReplayQuery {
            from_ms,
            to_ms,
            snapshot: snapshot.as_deref() != Some("false"),
        })
    }

    /// The query string (no `?`) that [`from_pairs`](Self::from_pairs) parses back to it.
    pub fn to_query(&self) -> String {
        format!(
            "from={}&to={}&snapshot={}",
            self.from_ms, self.to_ms, self.snapshot
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_764_806_400_000;

    /// Splits a query string as the Worker's URL parser does for these plain values.
    fn parse(query: &str) -> Result<ReplayQuery, ReplayQueryError> {
        ReplayQuery::from_pairs(query.split('&').filter(|p| !p.is_empty()).map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (k, v)
        }))
    }

    #[test]
    fn a_window_of_the_limit_is_taken_and_one_ms_more_refused() {
        let q = parse(&format!("from={T0}&to={}", T0 + REPLAY_WINDOW_MS_MAX)).unwrap();
        assert_eq!(
            q,
            ReplayQuery {
                from_ms: T0,
                to_ms: T0 + REPLAY_WINDOW_MS_MAX,
                snapshot: true
            }
        );
        let err = parse(&format!("from={T0}&to={}", T0 + REPLAY_WINDOW_MS_MAX + 1)).unwrap_err();
        assert_eq!(
            err,
            ReplayQueryError::WindowTooLong {
                window_ms: REPLAY_WINDOW_MS_MAX + 1
            }
        );
        assert_eq!(err.code(), "replay_window_too_long");
        assert_eq!(err.http_status(), 400);
        assert!(err.message().contains("300000 ms (asked 300001 ms)"));
    }

    #[test]
    fn a_window_of_one_ms_is_taken_and_an_empty_or_reversed_one_refused() {
        assert_eq!(parse("from=5&to=6").unwrap().to_ms, 6);
        for query in ["from=5&to=5", "from=6&to=5", "from=0&to=0"] {
            let err = parse(query).unwrap_err();
            assert_eq!(err, ReplayQueryError::EmptyWindow, "{query}");
            assert_eq!(err.code(), "replay_window_empty");
        }
        // The largest bounds are numbers too.
        let max = u64::MAX;
        assert_eq!(
            parse(&format!("from={}&to={max}", max - 1))
                .unwrap()
                .from_ms,
            max - 1
        );
    }

    #[test]
    fn a_missing_or_garbage_bound_is_window_required() {
        for query in [
            "",
            "from=abc",
            "from=1",
            "to=2",
            "from=&to=2",
            "from=1&to=two",
            "from=-1&to=2",
            "from=1.5&to=2",
            "from= 1&to=2",
            "from=1&to=18446744073709551616", // u64::MAX + 1
            "From=1&To=2",
            "snapshot=false",
        ] {
            let err = parse(query).unwrap_err();
            assert_eq!(err, ReplayQueryError::WindowRequired, "{query}");
            assert_eq!(err.code(), "replay_window_required");
            assert_eq!(err.http_status(), 400);
        }
    }

    #[test]
    fn snapshot_is_left_out_only_for_false_and_the_first_of_a_name_counts() {
        let snapshot = |query: &str| parse(query).unwrap().snapshot;
        assert!(snapshot("from=1&to=2"));
        assert!(!snapshot("from=1&to=2&snapshot=false"));
        assert!(snapshot("from=1&to=2&snapshot=true"));
        assert!(snapshot("from=1&to=2&snapshot=0"));
        assert!(snapshot("from=1&to=2&snapshot=FALSE"));
        assert!(snapshot("from=1&to=2&snapshot=true&snapshot=false"));
        assert!(!snapshot("snapshot=false&from=1&to=2&snapshot=true"));
        let q = parse("to=9&from=1&from=5&to=20&other=x").unwrap();
        assert_eq!((q.from_ms, q.to_ms), (1, 9));
    }

    #[test]
    fn to_query_parses_back_to_the_same_query() {
        for snapshot in [true, false] {
            let q = ReplayQuery {
                from_ms: T0,
                to_ms: T0 + 60_000,
                snapshot,
            };
            assert_eq!(parse(&q.to_query()), Ok(q));
        }
    }
}
