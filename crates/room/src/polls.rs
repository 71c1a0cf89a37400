//! Polls: one at a time per room, Open → Closed → Result, one counted vote per user.
//!
//! Invariants: `tallies[i]` is exactly the number of users in `voters` whose vote is
//! option `i` (asserted after every change), a user's first vote is the one that counts,
//! and nothing is counted outside the Open phase. Votes are stored one record per voter
//! (`vote/<poll>/<user>`), so a restarted room rebuilds the same voters and tallies.

use crate::Refusal;
use ovation_proto::limits::{
    CUE_ID_BYTES_MAX, POLL_OPTIONS_MAX, POLL_OPTIONS_MIN, POLL_OPTION_BYTES_MAX,
    POLL_QUESTION_BYTES_MAX, POLL_VOTERS_MAX, POLL_WINDOW_MS_DEFAULT, POLL_WINDOW_MS_MAX,
    POLL_WINDOW_MS_MIN,
};
use ovation_proto::ErrorCode;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// What the host asks for when creating a poll; also the JSON body of
/// `POST /v1/rooms/{room}/polls` (unknown fields refused, optional ones defaulted).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PollSpec {
    pub question: String,
    pub options: Vec<String>,
    /// The answer window; `POLL_WINDOW_MS_DEFAULT` when absent.
    #[serde(default)]
    pub window_ms: Option<u64>,
    /// Viewers see live tallies (hosts and moderators always do).
    #[serde(default)]
    pub tallies_public: bool,
    /// Results are revealed when the window closes (the default); otherwise the host
    /// reveals them.
    #[serde(default = "reveal_on_close_default")]
    pub reveal_on_close: bool,
    /// A cue id in the video (see the video-sync design): players open the poll when
    /// the cue plays.
    #[serde(default)]
    pub cue: Option<String>,
}

fn reveal_on_close_default() -> bool {
    true
}

impl PollSpec {
    /// Checks every limit; the message names the one broken.
    pub fn validate(&self) -> Result<(), String> {
        if self.question.trim().is_empty() || self.question.len() > POLL_QUESTION_BYTES_MAX {
            return Err(format!("a question is 1..={POLL_QUESTION_BYTES_MAX} bytes"));
        }
        if !(POLL_OPTIONS_MIN..=POLL_OPTIONS_MAX).contains(&self.options.len()) {
            return Err(format!(
                "a poll has {POLL_OPTIONS_MIN}..={POLL_OPTIONS_MAX} options"
            ));
        }
        if self
            .options
            .iter()
            .any(|o| o.trim().is_empty() || o.len() > POLL_OPTION_BYTES_MAX)
        {
            return Err(format!("an option is 1..={POLL_OPTION_BYTES_MAX} bytes"));
        }
        if let Some(window_ms) = self.window_ms {
            if !(POLL_WINDOW_MS_MIN..=POLL_WINDOW_MS_MAX).contains(&window_ms) {
                return Err(format!(
                    "window_ms is {POLL_WINDOW_MS_MIN}..={POLL_WINDOW_MS_MAX}"
                ));
            }
        }
        check_cue(self.cue.as_deref())
    }
}

/// A cue id names a moment in the video: 1..=`CUE_ID_BYTES_MAX` bytes.
pub(crate) fn check_cue(cue: Option<&str>) -> Result<(), String> {
    match cue {
        // The same rule as `ovation-cues` (ids travel in-band in ID3 and emsg).
        Some(cue)
            if cue.is_empty()
                || cue.len() > CUE_ID_BYTES_MAX
                || !cue
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b)) =>
        {
            Err(format!(
                "a cue id is 1..={CUE_ID_BYTES_MAX} bytes of A-Z, a-z, 0-9, '_', '.', '-'"
            ))
        }
        _ => Ok(()),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PollPhase {
    Open,
    Closed,
    Result,
}

impl PollPhase {
    pub fn as_str(self) -> &'static str {
        match self {
            PollPhase::Open => "open",
            PollPhase::Closed => "closed",
            PollPhase::Result => "result",
        }
    }
}

/// The stored definition and phase of the room's current poll (`poll`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PollRecord {
    pub number: u64,
    pub question: String,
    pub options: Vec<String>,
    pub tallies_public: bool,
    pub reveal_on_close: bool,
    pub cue: Option<String>,
    pub phase: PollPhase,
    pub opened_ms: u64,
    pub closes_at_ms: u64,
    pub closed_ms: Option<u64>,
}

impl PollRecord {
    pub fn id(&self) -> String {
        format!("p{}", self.number)
    }
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum VoteOutcome {
    Counted,
    /// The user had voted already; nothing changes.
    Repeat,
}

pub(crate) struct Poll {
    pub record: PollRecord,
    tallies: Vec<u64>,
    voters: HashMap<String, u8>,
    /// Tallies changed since they were last published.
    pub tallies_dirty: bool,
}

impl Poll {
    pub fn open(number: u64, spec: PollSpec, now_ms: u64) -> Poll {
        debug_assert!(spec.validate().is_ok());
        let window_ms = spec.window_ms.unwrap_or(POLL_WINDOW_MS_DEFAULT);
        let tallies = vec![0; spec.options.len()];
        Poll {
            record: PollRecord {
                number,
                question: spec.question,
                options: spec.options,
                tallies_public: spec.tallies_public,
                reveal_on_close: spec.reveal_on_close,
                cue: spec.cue,
                phase: PollPhase::Open,
                opened_ms: now_ms,
                closes_at_ms: now_ms + window_ms,
                closed_ms: None,
            },
            tallies,
            voters: HashMap::new(),
            tallies_dirty: false,
        }
    }

    /// A poll rebuilt from storage: its record and the stored votes for it.
    pub fn restore(record: PollRecord, votes: impl IntoIterator<Item = (String, u8)>) -> Poll {
        let mut poll = Poll {
            tallies: vec![0; record.options.len()],
            record,
            voters: HashMap::new(),
            tallies_dirty: false,
        };
        for (user, option) in votes {
            if usize::from(option) < poll.tallies.len() && !poll.voters.contains_key(&user) {
                poll.tallies[usize::from(option)] += 1;
                poll.voters.insert(user, option);
            }
        }
        poll.check();
        poll
    }

    pub fn id(&self) -> String {
        self.record.id()
    }

    pub fn tallies(&self) -> &[u64] {
        &self.tallies
    }

    /// Who voted (for deleting the stored votes once a newer poll replaces this one).
    pub fn voters(&self) -> impl Iterator<Item = &str> {
        self.voters.keys().map(String::as_str)
    }

    pub fn votes(&self) -> u64 {
        self.voters.len() as u64
    }

    /// A user's vote at `now_ms`. The window is the rule, not the phase alone: the phase
    /// changes when the room's timer runs, and a vote between the deadline and that run
    /// was counted.
    /// A vote already counted is a repeat (acknowledged) even after the close: it is
    /// usually the retry of a vote whose acknowledgement was lost.
    pub fn vote(&mut self, user: &str, option: u8, now_ms: u64) -> Result<VoteOutcome, Refusal> {
        if usize::from(option) >= self.tallies.len() {
            return Err(Refusal::new(
                ErrorCode::Invalid,
                format!("option is 0..{}", self.tallies.len()),
            ));
        }
        if self.voters.contains_key(user) {
            return Ok(VoteOutcome::Repeat);
        }
        if self.record.phase != PollPhase::Open || now_ms >= self.record.closes_at_ms {
            return Err(Refusal::new(ErrorCode::PollClosed, "this poll is closed"));
        }
        if self.voters.len() >= POLL_VOTERS_MAX {
            return Err(Refusal::new(
                ErrorCode::TooMany,
                format!("a poll counts at most {POLL_VOTERS_MAX} voters"),
            ));
        }
        self.voters.insert(user.to_owned(), option);
        self.tallies[usize::from(option)] += 1;
        self.tallies_dirty = true;
        self.check();
        Ok(VoteOutcome::Counted)
    }

    /// Open → Closed (→ Result when revealed on close). False when not open.
    pub fn close(&mut self, now_ms: u64) -> bool {
        if self.record.phase != PollPhase::Open {
            return false;
        }
        self.record.phase = if self.record.reveal_on_close {
            PollPhase::Result
        } else {
            PollPhase::Closed
        };
        self.record.closed_ms = Some(now_ms);
        true
    }

    /// Closed → Result (closing first when still open). False when already revealed.
    pub fn reveal(&mut self, now_ms: u64) -> bool {
        if self.record.phase == PollPhase::Result {
            return false;
        }
        if self.record.phase == PollPhase::Open {
            self.record.closed_ms = Some(now_ms);
        }
        self.record.phase = PollPhase::Result;
        true
    }

    /// The `poll` state part: what every viewer (and a late joiner) sees. Tallies are in
    /// it when public or revealed.
    pub fn part_json(&self) -> String {
        let show = self.record.tallies_public || self.record.phase == PollPhase::Result;
        let mut value = serde_json::json!({
            "id": self.id(),
            "question": self.record.question,
            "options": self.record.options,
            "phase": self.record.phase.as_str(),
            "opened_ms": self.record.opened_ms,
            "closes_at_ms": self.record.closes_at_ms,
            "closed_ms": self.record.closed_ms,
            "cue": self.record.cue,
            "tallies_public": self.record.tallies_public,
        });
        if show {
            value["tallies"] = serde_json::json!(self.tallies);
            value["votes"] = serde_json::json!(self.votes());
        }
        value.to_string()
    }

    /// The live tallies hosts and moderators get every tick (as a direct message).
    pub fn tallies_json(&self) -> String {
        serde_json::json!({
            "type": "poll_tallies",
            "id": self.id(),
            "phase": self.record.phase.as_str(),
            "tallies": self.tallies,
            "votes": self.votes(),
        })
        .to_string()
    }

    fn check(&self) {
        let counted: u64 = self.tallies.iter().sum();
        assert_eq!(counted, self.voters.len() as u64, "tallies equal voters");
        // The full recount is quadratic: only for small polls (every test poll).
        debug_assert!(
            self.voters.len() > 1_000
                || self.tallies.iter().enumerate().all(|(i, &t)| t
                    == self
                        .voters
                        .values()
                        .filter(|&&o| usize::from(o) == i)
                        .count() as u64)
        );
    }
}

// ---- The room's polls: staff commands, votes and the tallies published each tick ----

use crate::*;

impl Room {
    /// The room's latest poll: id, phase, tallies.
    pub fn poll(&self) -> Option<(String, PollPhase, &[u64])> {
        self.poll
            .as_ref()
            .map(|p| (p.id(), p.record.phase, p.tallies()))
    }

    pub(crate) fn create_poll(
        &mut self,
        spec: PollSpec,
        now_ms: u64,
    ) -> Result<AdminReply, AdminError> {
        spec.validate().map_err(AdminError::InvalidPoll)?;
        if self
            .poll
            .as_ref()
            .is_some_and(|p| p.record.phase == PollPhase::Open)
        {
            return Err(AdminError::PollOpen);
        }
        let number = self.poll.as_ref().map_or(1, |p| p.record.number + 1);
        // The previous poll's votes are no longer needed (its result is in the log):
        // deleted over the next ticks (`purge`).
        if let Some(previous) = &self.poll {
            let id = previous.id();
            let deletes = previous
                .voters()
                .map(|user| StorageOp::delete_vote(&id, user))
                .collect();
            self.purge.ops(deletes);
        }
        self.poll = Some(polls::Poll::open(number, spec, now_ms));
        self.poll_changed(|_| true, now_ms);
        Ok(self.poll_reply())
    }

    pub(crate) fn find_poll(&self, id: &str) -> Result<(), AdminError> {
        match &self.poll {
            Some(poll) if poll.id() == id => Ok(()),
            _ => Err(AdminError::PollNotFound),
        }
    }

    pub(crate) fn poll_reply(&self) -> AdminReply {
        let poll = self.poll.as_ref().expect("a poll exists");
        AdminReply::Poll {
            id: poll.id(),
            phase: poll.record.phase,
            tallies: poll.tallies().to_vec(),
        }
    }

    /// Applies a phase change; when it changed anything, stores the record and publishes
    /// the `poll` part (and the tallies to hosts) in the next tick.
    pub(crate) fn poll_changed(
        &mut self,
        change: impl FnOnce(&mut polls::Poll) -> bool,
        now_ms: u64,
    ) {
        let poll = self.poll.as_mut().expect("a poll exists");
        if !change(poll) {
            return;
        }
        poll.tallies_dirty = true;
        let record = StorageOp::put_poll(&poll.record);
        let value = poll.part_json();
        self.outputs.push_back(Output::Store(record));
        self.put_part("poll".into(), value, now_ms);
    }

    pub(crate) fn on_vote(
        &mut self,
        identity: &Identity,
        poll_id: &str,
        option: u8,
        now_ms: u64,
    ) -> Result<Option<u64>, Refusal> {
        let Some(poll) = self.poll.as_mut().filter(|p| p.id() == poll_id) else {
            return Err(Refusal::new(ErrorCode::NotFound, "no such poll"));
        };
        match poll.vote(&identity.user, option, now_ms) {
            Ok(polls::VoteOutcome::Counted) => {
                self.stats.votes_counted += 1;
                let record = StorageOp::put_vote(poll_id, &identity.user, option);
                self.outputs.push_back(Output::Store(record));
                self.schedule_tick(now_ms);
                Ok(None)
            }
            Ok(polls::VoteOutcome::Repeat) => {
                self.stats.votes_repeated += 1;
                Ok(None)
            }
            Err(refusal) => Err(refusal),
        }
    }

    /// Once per tick with changed tallies: to every host and moderator connection as a
    /// direct message, and into the `poll` part when the poll shows tallies to viewers.
    pub(crate) fn publish_tallies(&mut self, now_ms: u64) {
        let Some(poll) = self.poll.as_mut().filter(|p| p.tallies_dirty) else {
            return;
        };
        poll.tallies_dirty = false;
        let payload = poll.tallies_json();
        let part = (poll.record.tallies_public && poll.record.phase == PollPhase::Open)
            .then(|| poll.part_json());
        self.notify_staff(&payload, now_ms);
        if let Some(value) = part {
            self.put_part("poll".into(), value, now_ms);
        }
    }
}
