//! The recording of a room (replay), sans-IO.
//!
//! The host feeds a [`Recorder`] what the room core did, in order: every sequenced
//! action (`record_action`), every part version (`record_part`), the like total
//! (`record_likes`), with the server time as a parameter, and `advance(now)` /
//! `end(now)`. The recorder keeps the recording bounded and cuts it in chunks of
//! `REPLAY_CHUNK_MS` of server time; a chunk is handed out once (`poll_sealed`), encoded,
//! and never changes: the host writes it to storage as it is, once (`Sealed::writes_over`:
//! a recorder restored from a save older than its last chunk write seals that chunk again,
//! and the store keeps the first).
//!
//! Rules (all limits in `ovation_proto::limits`):
//! - **Sampling.** In each second of server time the first
//!   `REPLAY_SAMPLED_EVENTS_PER_S_MAX` comments and reactions are kept and the rest of
//!   that second are left out (counted in the chunk's `sampled_out`). The host's comments,
//!   system messages, gifts and part changes are always kept. Deterministic: the same
//!   actions give the same recording.
//! - **Parts** are recorded at most once per `REPLAY_PART_INTERVAL_MS` each: the first
//!   change after a quiet interval at once, later ones held and recorded (latest value)
//!   when the interval ends; `end` records every held value. Likes likewise
//!   (`REPLAY_LIKES_INTERVAL_MS`).
//! - **Bytes.** Sealed chunks of a room add up to at most `REPLAY_ROOM_BYTES_MAX`: the
//!   event that would pass it stops the recording (`truncated_at_ms`, told in every
//!   window answer); the chunk holding what came before is still sealed.
//! - **Deletions.** A removed comment still in the open chunk is dropped from it; one
//!   already sealed goes into the deletion set, which the reader applies to every answer
//!   (chunks stay immutable). The `Removed` action itself is not recorded.
//! - **Time.** The recording is in time order: an event stamped before the last recorded
//!   one is recorded at that one's time. A chunk is sealed `REPLAY_SEAL_GRACE_MS` after
//!   its window ends (or by the first event past it, or by `end`).
//! - **Snapshots.** Each chunk starts with a keyframe (every part and the likes at its
//!   start), so the state at any time T is one chunk away: its keyframe plus its part and
//!   like events before T.
//!
//! No I/O, no clock.

#![forbid(unsafe_code)]

use ovation_proto::limits::{
    REPLAY_CHUNK_MS, REPLAY_LIKES_INTERVAL_MS, REPLAY_PART_INTERVAL_MS, REPLAY_ROOM_BYTES_MAX,
    REPLAY_SAMPLED_EVENTS_PER_S_MAX, REPLAY_SEAL_GRACE_MS,
};
use ovation_proto::{
    Action, ActionBody, ReplayEvent, ReplayEventBody, ReplayPart, ReplaySnapshot, ReplayStatus,
    ReplayWindow,
};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::ops::RangeInclusive;

/// One sealed window of the recording: [start_ms, end_ms) of server time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chunk {
    pub index: u64,
    pub start_ms: u64,
    pub end_ms: u64,
    /// The state at `start_ms`.
    pub keyframe: ReplaySnapshot,
    pub events: Vec<ReplayEvent>,
    /// Comments and reactions of this window left out by sampling.
    pub sampled_out: u64,
}

impl Chunk {
    /// The stored form (postcard).
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_allocvec(self).expect("encoding into a Vec cannot fail")
    }

    pub fn decode(bytes: &[u8]) -> Result<Chunk, ReplayError> {
        postcard::from_bytes(bytes).map_err(|_| ReplayError::CorruptChunk)
    }
}

/// A chunk to write: `bytes` is [`Chunk::encode`] of chunk `index`, whose window starts
/// at `start_ms`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sealed {
    pub index: u64,
    pub start_ms: u64,
    pub bytes: Vec<u8>,
}

impl Sealed {
    /// Whether this chunk belongs to the recording that started at `started_ms` (a
    /// chunk sealed before its room was created again does not).
    pub fn is_of_recording_started_at(&self, started_ms: u64) -> bool {
        self.start_ms == chunk_start_ms(started_ms, self.index)
    }

    /// Whether this chunk is written over `stored`, what the store already holds at its
    /// key: a chunk is written once. A host killed between a chunk's write and its save
    /// of the recorder restores the older save and seals that chunk again, with what the
    /// room did in between stamped at the wake instead of when it happened: a different
    /// chunk, while windows may already have served the first and caches hold them as
    /// final. The first is kept. Bytes that are not a chunk, or the chunk of another
    /// recording at the same key (one restarted because its recorder could not be read),
    /// are written over.
    pub fn writes_over(&self, stored: &[u8]) -> bool {
        match Chunk::decode(stored) {
            Ok(chunk) => chunk.index != self.index || chunk.start_ms != self.start_ms,
            Err(_) => true,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReplayError {
    /// Stored bytes that are not a chunk this crate wrote.
    CorruptChunk,
}

impl ReplayError {
    pub fn code(&self) -> &'static str {
        match self {
            ReplayError::CorruptChunk => "replay_chunk_corrupt",
        }
    }

    pub fn message(&self) -> String {
        match self {
            ReplayError::CorruptChunk => "a stored replay chunk could not be read".into(),
        }
    }

    pub fn http_status(&self) -> u16 {
        match self {
            ReplayError::CorruptChunk => 500,
        }
    }
}

/// What a reader needs besides the chunks: the recording's bounds and deletion set.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordingInfo {
    pub room: String,
    pub started_ms: u64,
    pub ended_ms: Option<u64>,
    pub truncated_at_ms: Option<u64>,
    /// Every event before this server time is recorded.
    pub recorded_to_ms: u64,
    /// Removed comments (sequence numbers) that may sit in sealed chunks.
    pub deleted: BTreeSet<u64>,
    /// The chunk still open (in the recorder, not in storage), if any.
    pub open_index: Option<u64>,
}

/// The window answers a room object is reading now: at most
/// `REPLAY_WINDOW_READS_IN_FLIGHT_MAX`, and `REPLAY_WINDOW_READS_IN_FLIGHT_PER_USER_MAX`
/// of one user's, so no viewer holds the places of the others.
///
/// Invariant: no count in `by_user` is 0.
#[derive(Debug, Default)]
pub struct WindowReads {
    by_user: BTreeMap<String, usize>,
}

/// Why a window read may not start now (each answered 503 `replay_busy`, to retry).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WindowReadsBusy {
    /// The room reads `REPLAY_WINDOW_READS_IN_FLIGHT_MAX` windows already.
    Room,
    /// This user's reads in flight are at their share.
    User,
}

impl WindowReads {
    /// Takes a place for one of `user`'s reads; `end` gives it back.
    pub fn start(&mut self, user: &str) -> Result<(), WindowReadsBusy> {
        let mine = self.by_user.get(user).copied().unwrap_or(0);
        if mine >= ovation_proto::limits::REPLAY_WINDOW_READS_IN_FLIGHT_PER_USER_MAX {
            return Err(WindowReadsBusy::User);
        }
        if self.in_flight() >= ovation_proto::limits::REPLAY_WINDOW_READS_IN_FLIGHT_MAX {
            return Err(WindowReadsBusy::Room);
        }
        self.by_user.insert(user.to_owned(), mine + 1);
        Ok(())
    }

    /// One of `user`'s reads is done (answered, failed or dropped).
    pub fn end(&mut self, user: &str) {
        let count = self
            .by_user
            .get_mut(user)
            .expect("a read ends only after it started");
        *count -= 1;
        if *count == 0 {
            self.by_user.remove(user);
        }
    }

    /// A sum of at most `REPLAY_WINDOW_READS_IN_FLIGHT_MAX` counts.
    pub fn in_flight(&self) -> usize {
        self.by_user.values().sum()
    }
}

/// What one window answer reads of the store (`REPLAY_WINDOW_READ_BYTES_MAX`): the
/// chunks of `RecordingInfo::chunks_for` in order, until the next would pass the bound;
/// the first is always read (a window starts within it), so an answer always moves on.
#[derive(Debug)]
pub struct WindowRead {
    bytes_left: usize,
    read_any: bool,
}

impl Default for WindowRead {
    fn default() -> Self {
        WindowRead::within(ovation_proto::limits::REPLAY_WINDOW_READ_BYTES_MAX)
    }
}

impl WindowRead {
    pub fn within(bytes_max: usize) -> WindowRead {
        WindowRead {
            bytes_left: bytes_max,
            read_any: false,
        }
    }

    /// Whether a stored chunk of `bytes` is read; `false`: the answer stops before it
    /// (its `to_ms` the chunk's start, `RecordingInfo::chunk_start_ms`).
    pub fn take(&mut self, bytes: usize) -> bool {
        if self.read_any && bytes > self.bytes_left {
            return false;
        }
        self.read_any = true;
        self.bytes_left = self.bytes_left.saturating_sub(bytes);
        true
    }
}

impl RecordingInfo {
    /// Whether chunk `index` of `chunks_for` was sealed and so must be in the store: not
    /// the open one, and not one past a truncation (a truncated recording opens none).
    /// A stored chunk the store cannot return is missing, and the answer says so.
    pub fn must_be_stored(&self, index: u64) -> bool {
        let start_ms = self.chunk_start_ms(index);
        Some(index) != self.open_index && self.truncated_at_ms.is_none_or(|t| start_ms < t)
    }

    /// Whether the answer for the window [from, to) given at `now_ms` is final, to be
    /// cached for good: the recording ended, the window starts within its opening, and
    /// it is wholly past. A later opening of the room starts after `now_ms`, so nothing
    /// can be recorded in the window any more; a window reaching past `now_ms` (or
    /// starting before this opening) could be another opening's, and is answered
    /// without being final (a window cached past the end showed a room opened again as
    /// empty there, for a year).
    pub fn is_final(&self, from_ms: u64, to_ms: u64, now_ms: u64) -> bool {
        self.ended_ms.is_some() && self.started_ms <= from_ms && to_ms <= now_ms
    }

    pub fn chunk_of(&self, ts_ms: u64) -> u64 {
        ts_ms.saturating_sub(self.started_ms) / REPLAY_CHUNK_MS
    }

    /// Whether `chunk`, read at its key for chunk `index`, is this recording's: one left
    /// there by another recording (an earlier opening's, or one restarted after its
    /// recorder could not be read, which numbers its chunks from 0 again) is not, and a
    /// reader takes it as absent.
    pub fn owns(&self, index: u64, chunk: &Chunk) -> bool {
        chunk.index == index && chunk.start_ms == self.chunk_start_ms(index)
    }

    /// Where chunk `index` starts (server time).
    pub fn chunk_start_ms(&self, index: u64) -> u64 {
        chunk_start_ms(self.started_ms, index)
    }

    /// The last server time anything is recorded at (so far): the live edge, or the
    /// open chunk, which holds events up to the last one fed.
    fn last_ms(&self) -> u64 {
        let open_start = self.open_index.map_or(0, |i| self.chunk_start_ms(i));
        let mut last = self.recorded_to_ms.max(open_start);
        if let Some(t) = self.truncated_at_ms {
            last = last.min(t);
        }
        last.max(self.started_ms)
    }

    /// The chunks a window [from, to) needs: those its events lie in, and the one its
    /// snapshot is taken from (the last recorded one when `from` lies past the recording).
    pub fn chunks_for(&self, from_ms: u64, to_ms: u64) -> RangeInclusive<u64> {
        let last = self.last_ms();
        let first = self.chunk_of(from_ms.clamp(self.started_ms, last));
        let end = self.chunk_of(to_ms.saturating_sub(1).clamp(self.started_ms, last));
        first..=end.max(first)
    }

    /// The window answer from the chunks `chunks_for(from, to)` named (any missing one is
    /// taken as empty), with the state at `from` when `snapshot`.
    pub fn window(
        &self,
        chunks: &[Chunk],
        from_ms: u64,
        to_ms: u64,
        snapshot: bool,
    ) -> ReplayWindow {
        let mut events = Vec::new();
        let mut sampled_out = 0;
        for chunk in chunks {
            if chunk.end_ms <= from_ms && chunk.start_ms < from_ms {
                // Only there for the snapshot (from lies past the recording).
                continue;
            }
            sampled_out += chunk.sampled_out;
            events.extend(
                chunk
                    .events
                    .iter()
                    .filter(|e| e.ts_ms >= from_ms && e.ts_ms < to_ms)
                    .filter(|e| !self.is_deleted(e))
                    .cloned(),
            );
        }
        let snapshot = snapshot.then(|| self.snapshot_at(chunks, from_ms));
        ReplayWindow {
            room: self.room.clone(),
            status: if self.ended_ms.is_some() {
                ReplayStatus::Ended
            } else {
                ReplayStatus::Live
            },
            from_ms,
            to_ms,
            started_ms: self.started_ms,
            ended_ms: self.ended_ms,
            recorded_to_ms: self.recorded_to_ms,
            truncated_at_ms: self.truncated_at_ms,
            chunk_ms: REPLAY_CHUNK_MS,
            snapshot,
            events,
            sampled_out,
            missing_chunks: Vec::new(),
        }
    }

    /// A comment a moderator removed. Only comments: a removal names a number, and one
    /// naming a gift, a reaction or a system message (a number the room could no longer
    /// tell apart) must not take it out of the recording.
    fn is_deleted(&self, event: &ReplayEvent) -> bool {
        matches!(&event.body, ReplayEventBody::Action(a)
            if a.body.is_comment() && self.deleted.contains(&a.seq))
    }

    /// The state at `at_ms`: the keyframe of the chunk that holds it, then that chunk's
    /// part and like events before `at_ms`. Before the recording starts, nothing.
    fn snapshot_at(&self, chunks: &[Chunk], at_ms: u64) -> ReplaySnapshot {
        let holder = chunks
            .iter()
            .filter(|c| c.start_ms <= at_ms)
            .max_by_key(|c| c.index);
        let Some(chunk) = holder else {
            return ReplaySnapshot {
                at_ms,
                ..ReplaySnapshot::default()
            };
        };
        let mut state = State::from_snapshot(&chunk.keyframe);
        for event in chunk.events.iter().filter(|e| e.ts_ms < at_ms) {
            state.apply(event);
        }
        state.snapshot(at_ms)
    }
}

/// Parts and likes as a recording has them at some moment.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct State {
    parts: BTreeMap<String, ReplayPart>,
    likes: u64,
}

impl State {
    fn from_snapshot(snapshot: &ReplaySnapshot) -> State {
        State {
            parts: snapshot
                .parts
                .iter()
                .map(|p| (p.name.clone(), p.clone()))
                .collect(),
            likes: snapshot.likes,
        }
    }

    fn apply(&mut self, event: &ReplayEvent) {
        match &event.body {
            ReplayEventBody::Part(part) if part.value == "null" => {
                self.parts.remove(&part.name);
            }
            ReplayEventBody::Part(part) => {
                self.parts.insert(part.name.clone(), part.clone());
            }
            ReplayEventBody::Likes { total } => self.likes = *total,
            ReplayEventBody::Action(_) => {}
        }
    }

    fn snapshot(&self, at_ms: u64) -> ReplaySnapshot {
        ReplaySnapshot {
            at_ms,
            parts: self.parts.values().cloned().collect(),
            likes: self.likes,
        }
    }
}

/// The cue of a cued interaction, from its part's JSON: a poll's `cue`, the open quiz
/// question's `question.cue`, the pinned product's `pinned.cue`.
pub fn cue_of(value: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(value).ok()?;
    let cue = [
        value.get("cue"),
        value.get("question").and_then(|q| q.get("cue")),
        value.get("pinned").and_then(|p| p.get("cue")),
    ]
    .into_iter()
    .flatten()
    .find_map(|c| c.as_str().map(str::to_owned));
    cue
}

fn encoded_len<T: Serialize>(value: &T) -> u64 {
    postcard::to_allocvec(value).map_or(0, |b| b.len() as u64)
}

/// A room's recording while it is made. Serializable (serde), so the host can keep it
/// across restarts; `poll_sealed`'s queue is not kept: write sealed chunks before saving.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Recorder {
    room: String,
    /// The host's comments are never sampled out.
    host_user: String,
    started_ms: u64,
    ended_ms: Option<u64>,
    truncated_at_ms: Option<u64>,
    /// The recording's byte bound (`REPLAY_ROOM_BYTES_MAX`, or less in simulations).
    bytes_max: u64,
    /// Encoded bytes of the sealed chunks and of the open one so far.
    bytes_sealed: u64,
    open_bytes: u64,
    open: Option<Chunk>,
    /// The state as recorded so far (the next chunk's keyframe).
    state: State,
    held_parts: BTreeMap<String, ReplayPart>,
    part_recorded_ms: BTreeMap<String, u64>,
    held_likes: Option<u64>,
    likes_recorded_ms: Option<u64>,
    /// Sampling: the second (server time / 1000) and the comments kept in it.
    sample_second: u64,
    kept_in_second: u32,
    last_seq: u64,
    last_ts_ms: u64,
    /// Every event before it is recorded (the last `advance`, less the grace). Not saved:
    /// time alone is no change worth a write (`revision`); a restored recorder starts it
    /// at its last event.
    #[serde(skip)]
    recorded_to_ms: u64,
    /// Counts the changes worth saving (everything but an `advance` with nothing due).
    revision: u64,
    deleted: BTreeSet<u64>,
    #[serde(skip)]
    sealed: VecDeque<Sealed>,
}

impl Recorder {
    /// A recording that starts at `started_ms` (the room's creation), before any action.
    pub fn new(room: &str, host_user: &str, started_ms: u64) -> Recorder {
        Recorder::with_bytes_max(room, host_user, started_ms, REPLAY_ROOM_BYTES_MAX)
    }

    /// `new` with a smaller byte bound (at most `REPLAY_ROOM_BYTES_MAX`): simulations reach
    /// the bound in a few thousand events.
    pub fn with_bytes_max(
        room: &str,
        host_user: &str,
        started_ms: u64,
        bytes_max: u64,
    ) -> Recorder {
        let mut recorder = Recorder {
            bytes_max: bytes_max.min(REPLAY_ROOM_BYTES_MAX),
            room: room.to_owned(),
            host_user: host_user.to_owned(),
            started_ms,
            ended_ms: None,
            truncated_at_ms: None,
            bytes_sealed: 0,
            open_bytes: 0,
            open: None,
            state: State::default(),
            held_parts: BTreeMap::new(),
            part_recorded_ms: BTreeMap::new(),
            held_likes: None,
            likes_recorded_ms: None,
            sample_second: 0,
            kept_in_second: 0,
            last_seq: 0,
            last_ts_ms: started_ms,
            recorded_to_ms: started_ms,
            revision: 0,
            deleted: BTreeSet::new(),
            sealed: VecDeque::new(),
        };
        recorder.open_chunk(0);
        recorder
    }

    pub fn started_ms(&self) -> u64 {
        self.started_ms
    }
    pub fn ended_ms(&self) -> Option<u64> {
        self.ended_ms
    }
    pub fn truncated_at_ms(&self) -> Option<u64> {
        self.truncated_at_ms
    }
    /// The last action sequence number fed: the host feeds the actions after it.
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }
    /// Encoded bytes recorded (sealed chunks, the open one, the deletion set).
    pub fn bytes_recorded(&self) -> u64 {
        self.bytes_sealed + self.open_bytes + 8 * self.deleted.len() as u64
    }
    /// The version of `name` the recorder has (recorded or held), so the host feeds
    /// only newer ones.
    pub fn part_version(&self, name: &str) -> Option<u64> {
        self.held_parts
            .get(name)
            .or_else(|| self.state.parts.get(name))
            .map(|p| p.version)
    }
    /// Names of the parts the recording holds now (a part the room no longer has is fed
    /// as removed: `record_part(name, version, "null", now)`).
    pub fn part_names(&self) -> impl Iterator<Item = &str> {
        self.state
            .parts
            .keys()
            .chain(self.held_parts.keys())
            .map(String::as_str)
    }
    pub fn likes(&self) -> u64 {
        self.held_likes.unwrap_or(self.state.likes)
    }

    /// Whether nothing more is recorded (the room ended or the bound was reached).
    pub fn stopped(&self) -> bool {
        self.ended_ms.is_some() || self.truncated_at_ms.is_some()
    }

    pub fn info(&self) -> RecordingInfo {
        RecordingInfo {
            room: self.room.clone(),
            started_ms: self.started_ms,
            ended_ms: self.ended_ms,
            truncated_at_ms: self.truncated_at_ms,
            recorded_to_ms: self
                .ended_ms
                .unwrap_or(self.recorded_to_ms.max(self.last_ts_ms)),
            deleted: self.deleted.clone(),
            open_index: self.open.as_ref().map(|c| c.index),
        }
    }

    /// The open chunk as it stands (for a live room's reader; removed comments are gone
    /// from it).
    pub fn open_chunk_now(&self) -> Option<&Chunk> {
        self.open.as_ref()
    }

    /// Grows with every change a host should save (an `advance` with nothing due changes
    /// nothing saved).
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// The next sealed chunk to write, oldest first.
    pub fn poll_sealed(&mut self) -> Option<Sealed> {
        self.sealed.pop_front()
    }

    /// A sequenced action, as the room sent it (at `action.ts_ms`). Actions are fed in
    /// sequence order, until the room ends (a truncated recording still takes removals);
    /// one fed again is ignored.
    pub fn record_action(&mut self, action: &Action) {
        if self.ended_ms.is_some() || action.seq <= self.last_seq {
            return;
        }
        self.last_seq = action.seq;
        self.revision += 1;
        if let ActionBody::Removed { seq } = &action.body {
            // Moderation applies to a truncated recording too.
            self.remove(*seq);
            return;
        }
        if self.truncated_at_ms.is_some() {
            return;
        }
        let ts_ms = self.in_order(action.ts_ms);
        self.catch_up(ts_ms);
        match &action.body {
            // The guard counts the comment against its second's allowance (the host's
            // are not counted).
            ActionBody::Comment { .. } | ActionBody::Reaction { .. }
                if action.user != self.host_user && !self.sample_keeps(ts_ms) =>
            {
                if let Some(open) = self.open.as_mut() {
                    open.sampled_out += 1;
                }
                return;
            }
            _ => {}
        }
        self.push(ReplayEvent {
            ts_ms,
            cue: None,
            body: ReplayEventBody::Action(action.clone()),
        });
    }

    /// Part `name` changed to `version` with `value` (JSON text; `"null"` for a part the
    /// room no longer has) at `now_ms`.
    pub fn record_part(&mut self, name: &str, version: u64, value: &str, now_ms: u64) {
        if self.stopped() || self.part_version(name).is_some_and(|v| v >= version) {
            return;
        }
        if value == "null" && self.part_version(name).is_none() {
            return;
        }
        let ts_ms = self.in_order(now_ms);
        self.catch_up(ts_ms);
        let part = ReplayPart {
            name: name.to_owned(),
            version,
            value: value.to_owned(),
        };
        let quiet = self
            .part_recorded_ms
            .get(name)
            .is_none_or(|&t| ts_ms >= t + REPLAY_PART_INTERVAL_MS);
        if quiet {
            self.push_part(part, ts_ms);
        } else {
            // Held, not a change worth a save (`revision`): the host saves the whole
            // recorder on each change, and a staff socket setting a part at its frame rate
            // made a save of it (its state up to 64 parts of 8 KiB) per frame. A recorder
            // restored from before it is fed the room's part again.
            self.held_parts.insert(name.to_owned(), part);
        }
    }

    /// The room's like total at `now_ms`.
    pub fn record_likes(&mut self, total: u64, now_ms: u64) {
        if self.stopped() || total == self.likes() {
            return;
        }
        let ts_ms = self.in_order(now_ms);
        self.catch_up(ts_ms);
        let quiet = self
            .likes_recorded_ms
            .is_none_or(|t| ts_ms >= t + REPLAY_LIKES_INTERVAL_MS);
        if quiet {
            self.push_likes(total, ts_ms);
        } else {
            // Held, not a change worth a save: any viewer's likes made one per pump, a
            // whole recorder a frame (see `record_part`). A recorder restored from before
            // it is fed the room's total again.
            self.held_likes = Some(total);
        }
    }

    /// Time passed: held parts and likes whose interval ended are recorded, and chunks
    /// whose window ended `REPLAY_SEAL_GRACE_MS` ago are sealed.
    pub fn advance(&mut self, now_ms: u64) {
        let settled = now_ms.saturating_sub(REPLAY_SEAL_GRACE_MS);
        if self.ended_ms.is_some() {
            return;
        }
        self.catch_up(settled);
        self.recorded_to_ms = self.recorded_to_ms.max(settled);
    }

    /// The room ended at `now_ms`: held values are recorded now, the open chunk sealed.
    pub fn end(&mut self, now_ms: u64) {
        if self.ended_ms.is_some() {
            return;
        }
        let ts_ms = self.in_order(now_ms);
        if self.truncated_at_ms.is_none() {
            self.catch_up(ts_ms);
            for part in std::mem::take(&mut self.held_parts).into_values() {
                self.push_part(part, ts_ms);
            }
            if let Some(total) = self.held_likes.take() {
                self.push_likes(total, ts_ms);
            }
        }
        self.seal_open();
        self.ended_ms = Some(ts_ms);
        self.revision += 1;
        self.recorded_to_ms = ts_ms;
    }

    /// Events are recorded in time order: one stamped before the last is recorded at
    /// the last's time.
    fn in_order(&mut self, ts_ms: u64) -> u64 {
        self.last_ts_ms = self.last_ts_ms.max(ts_ms);
        self.last_ts_ms
    }

    fn sample_keeps(&mut self, ts_ms: u64) -> bool {
        let second = ts_ms / 1_000;
        if second != self.sample_second {
            self.sample_second = second;
            self.kept_in_second = 0;
        }
        if self.kept_in_second >= REPLAY_SAMPLED_EVENTS_PER_S_MAX {
            return false;
        }
        self.kept_in_second += 1;
        true
    }

    /// Records what falls due up to `t`, in time order: held values whose interval ended,
    /// and the chunks whose window ended (sealed, the next opened). Every push catches up
    /// to its time first, so nothing held is ever due before the last recorded event.
    fn catch_up(&mut self, t: u64) {
        loop {
            let open_end = match &self.open {
                Some(open) => open.end_ms,
                None => return, // truncated: nothing more is recorded
            };
            let due = self.next_due();
            match due {
                Some((due_ms, which)) if due_ms <= t && due_ms < open_end => match which {
                    Due::Part(name) => {
                        let part = self.held_parts.remove(&name).expect("held");
                        self.push_part(part, due_ms);
                    }
                    Due::Likes => {
                        let total = self.held_likes.take().expect("held");
                        self.push_likes(total, due_ms);
                    }
                },
                _ if open_end <= t => {
                    let next = self.open.as_ref().expect("open").index + 1;
                    self.seal_open();
                    self.open_chunk(next);
                }
                _ => return,
            }
        }
    }

    fn next_due(&self) -> Option<(u64, Due)> {
        let parts = self.held_parts.keys().map(|name| {
            let t = self.part_recorded_ms.get(name).copied().unwrap_or(0);
            (t + REPLAY_PART_INTERVAL_MS, Due::Part(name.clone()))
        });
        let likes = self
            .held_likes
            .map(|_| {
                let t = self.likes_recorded_ms.unwrap_or(0);
                (t + REPLAY_LIKES_INTERVAL_MS, Due::Likes)
            })
            .into_iter();
        parts.chain(likes).min_by_key(|(t, _)| *t)
    }

    fn push_part(&mut self, part: ReplayPart, ts_ms: u64) {
        self.part_recorded_ms.insert(part.name.clone(), ts_ms);
        let cue = cue_of(&part.value);
        self.push(ReplayEvent {
            ts_ms,
            cue,
            body: ReplayEventBody::Part(part),
        });
    }

    fn push_likes(&mut self, total: u64, ts_ms: u64) {
        self.likes_recorded_ms = Some(ts_ms);
        self.push(ReplayEvent {
            ts_ms,
            cue: None,
            body: ReplayEventBody::Likes { total },
        });
    }

    /// Appends to the open chunk, or stops the recording if it would pass the bound.
    fn push(&mut self, event: ReplayEvent) {
        self.revision += 1;
        let bytes = encoded_len(&event);
        if self.bytes_recorded() + bytes > self.bytes_max {
            self.truncate(event.ts_ms);
            return;
        }
        let Some(open) = self.open.as_mut() else {
            return;
        };
        self.state.apply(&event);
        open.events.push(event);
        self.open_bytes += bytes;
    }

    fn truncate(&mut self, at_ms: u64) {
        self.revision += 1;
        self.truncated_at_ms = Some(at_ms);
        self.held_parts.clear();
        self.held_likes = None;
        // What came before is kept: the open chunk is sealed at its time as usual.
    }

    fn remove(&mut self, seq: u64) {
        self.revision += 1;
        if let Some(open) = self.open.as_mut() {
            // Comments only (see `is_deleted`): another action named so stays.
            let named = open.events.iter().position(|e| {
                matches!(&e.body, ReplayEventBody::Action(a) if a.seq == seq && a.body.is_comment())
            });
            if let Some(at) = named {
                let event = open.events.remove(at);
                self.open_bytes -= encoded_len(&event);
                return;
            }
        }
        // Sealed already (or sampled out): the reader drops it. Kept past the byte
        // bound too: moderation always applies.
        self.deleted.insert(seq);
    }

    fn open_chunk(&mut self, index: u64) {
        if self.truncated_at_ms.is_some() {
            return;
        }
        let start_ms = chunk_start_ms(self.started_ms, index);
        let chunk = Chunk {
            index,
            start_ms,
            end_ms: start_ms + REPLAY_CHUNK_MS,
            keyframe: self.state.snapshot(start_ms),
            events: Vec::new(),
            sampled_out: 0,
        };
        // An empty chunk's encoding (its keyframe and fixed fields), and room for its
        // varints to grow (the event count, `sampled_out`).
        let bytes = encoded_len(&chunk) + CHUNK_VARINT_SLACK_BYTES;
        if self.bytes_recorded() + bytes > self.bytes_max {
            self.truncate(start_ms);
            return;
        }
        self.open_bytes = bytes;
        self.open = Some(chunk);
    }

    fn seal_open(&mut self) {
        self.revision += 1;
        if let Some(chunk) = self.open.take() {
            let bytes = chunk.encode();
            debug_assert!(
                bytes.len() as u64 <= self.open_bytes,
                "a chunk's bytes are counted"
            );
            self.bytes_sealed += bytes.len() as u64;
            self.open_bytes = 0;
            self.sealed.push_back(Sealed {
                index: chunk.index,
                start_ms: chunk.start_ms,
                bytes,
            });
        }
    }
}

/// Where chunk `index` of the recording that started at `started_ms` starts.
fn chunk_start_ms(started_ms: u64, index: u64) -> u64 {
    started_ms.saturating_add(index.saturating_mul(REPLAY_CHUNK_MS))
}

/// What an empty chunk's varints (event count, `sampled_out`) may grow by once filled.
const CHUNK_VARINT_SLACK_BYTES: u64 = 20;

#[derive(Clone, Debug, PartialEq, Eq)]
enum Due {
    Part(String),
    Likes,
}

#[cfg(test)]
mod tests;
