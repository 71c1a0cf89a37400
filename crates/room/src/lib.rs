//! Sans-IO live room.
//!
//! A [`Room`] holds one live room's state and its connections. It does no I/O and reads
//! no clock: the host feeds inputs (`connect`, `handle_frame`, `disconnect`, `admin`,
//! `handle_timeout`) with `now_ms`, drains [`Output`]s with [`Room::poll_output`], and arms
//! a timer for [`Room::poll_timeout`]. Everything a connection receives in one tick goes
//! out as one [`ServerFrame::Batch`].
//!
//! Durability: every change the room must survive is emitted as a [`StorageOp`]; feeding
//! the stored records back to [`Room::restore`] rebuilds the room (after Durable Object
//! eviction or a process restart). Connections are not stored: hibernated sockets are
//! re-registered by the host with [`Room::reattach`].

#![forbid(unsafe_code)]

mod admission;
mod liveness;
mod moderation;
mod polls;
mod products;
mod qa;
mod quiz;
mod settlement;
mod shard;
mod sharding;
mod staff;
mod store;

use ovation_proto::limits::*;
use ovation_proto::{
    is_valid_part_name, Action, ActionBody, ClientFrame, CloseCode, DecodeError, ErrorCode, Event,
    Hello, Role, ServerFrame, Welcome, PROTOCOL_VERSION,
};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

pub use admission::{ConnectKey, ConnectLimiter, ConnectRefused};
pub use moderation::AuditEntry;
pub use ovation_proto::TokenBucket;
pub use polls::{PollPhase, PollSpec};
pub use products::ProductCard;
pub use qa::QaStatus;
pub use quiz::{QuizPhase, QuizQuestionSpec, QuizSpec};
pub use settlement::{
    charge_outcome, gift_request_body, ledger_room_account, ledger_user_account,
    SETTLEMENT_UNAVAILABLE_MESSAGE,
};
pub use shard::{Shard, ShardOutput};
pub use staff::{StaffCommand, SYSTEM_SENDER};
pub use store::{RestoreError, StorageOp, META_KEY};

pub type ConnectionId = u64;

/// Parts the room itself owns; the admin API and hosts cannot overwrite them.
pub const RESERVED_PARTS: [&str; 7] = [
    "room",
    "leaderboard",
    "poll",
    "quiz",
    "qa",
    "product",
    "announcement",
];

/// Distinct batches a flush compares a connection's batch with (the most recent ones).
const SHARED_BATCH_GROUPS_COMPARED: usize = 4;

/// Who is on a connection (from the verified token).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub user: String,
    pub name: String,
    pub role: Role,
}

/// Fixed facts about a room, given when it is created.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RoomInfo {
    pub room_id: String,
    pub host_user: String,
    pub title: String,
    pub expected_audience: u64,
}

/// Whether a tenant whose directory lists `live_rooms` rooms may open one more: at most
/// `DIRECTORY_ROOMS_MAX` are live at once (the directory admits a room before it is
/// created, so a room is never live unlisted).
pub fn admit_live_room(live_rooms: usize) -> Result<(), AdminError> {
    if live_rooms >= DIRECTORY_ROOMS_MAX {
        return Err(AdminError::TooManyRooms);
    }
    Ok(())
}

impl RoomInfo {
    /// The limits a new room's facts must keep (`POST /v1/rooms` answers 400 with the
    /// error's code). The room id's own rule is `ovation_proto::RoomId::parse`.
    pub fn validate(&self) -> Result<(), AdminError> {
        if self.host_user.is_empty() {
            return Err(AdminError::Empty { field: "host" });
        }
        if self.host_user.len() > USER_ID_BYTES_MAX {
            return Err(AdminError::TooLong {
                field: "host",
                bytes_max: USER_ID_BYTES_MAX,
            });
        }
        if self.title.len() > ROOM_TITLE_BYTES_MAX {
            return Err(AdminError::TooLong {
                field: "title",
                bytes_max: ROOM_TITLE_BYTES_MAX,
            });
        }
        if self.expected_audience > EXPECTED_AUDIENCE_MAX {
            return Err(AdminError::Invalid(format!(
                "`expected_audience` is at most {EXPECTED_AUDIENCE_MAX}"
            )));
        }
        Ok(())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum RoomStatus {
    Live,
    Ended,
}

impl RoomStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RoomStatus::Live => "live",
            RoomStatus::Ended => "ended",
        }
    }
}

/// What the host must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Send this binary frame (an encoded `ServerFrame`) to each of these connections
    /// (encoded once: most ticks most connections get the same batch).
    Send {
        connections: Vec<ConnectionId>,
        frame: Vec<u8>,
    },
    /// Close the socket with this code; the room has already forgotten the connection.
    Close {
        connection: ConnectionId,
        code: CloseCode,
    },
    /// Persist (apply in order).
    Store(StorageOp),
    /// A refusal or abnormal close, for one structured log line.
    Log(LogRecord),
    /// Charge a gift at the settlement service, then call [`Room::charge_result`].
    Charge(ChargeRequest),
    /// Deliver this batch (an encoded `ShardDown`) to the room's shard; batches to one
    /// shard must arrive in order (each is numbered; a shard asks for a snapshot after a
    /// gap).
    ToShard { shard: u16, frame: Vec<u8> },
}

/// A gift to charge: the sender pays `amount` for `qty` of `sku`; `gift_id` is the
/// client's idempotency key.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ChargeRequest {
    pub request: u64,
    pub gift_id: String,
    pub user: String,
    pub sku: String,
    pub qty: u32,
    pub amount: u64,
}

/// Why a viewer's frame was refused: what the sender gets back as `Event::Error`, with a
/// retry hint for rate limits (0 when retrying the same frame will not help).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub code: ErrorCode,
    pub message: String,
    pub retry_after_ms: u32,
}

impl Refusal {
    pub(crate) fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::retry_after(code, message, 0)
    }

    pub(crate) fn retry_after(
        code: ErrorCode,
        message: impl Into<String>,
        retry_after_ms: u32,
    ) -> Self {
        Self {
            code,
            message: message.into(),
            retry_after_ms,
        }
    }
}

impl From<AdminError> for Refusal {
    /// A staff command sent over the socket is refused like the HTTP admin API would.
    fn from(error: AdminError) -> Self {
        Self::new(admin_error_code(&error), error.message())
    }
}

/// What the settlement service answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChargeOutcome {
    /// `replayed`: this gift id was charged before; it is not announced again.
    Charged {
        balance: u64,
        replayed: bool,
    },
    Refused {
        code: ErrorCode,
        message: String,
    },
}

/// What the room knows of one gifter: the leaderboard total, and the gift ids announced
/// last (so a retried or recovered gift is never announced twice).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Gifter {
    pub name: String,
    pub total: u64,
    pub recent_gift_ids: VecDeque<String>,
}

/// A gift waiting for its charge. Stored (`pending/<request>`) before the charge is
/// asked for, so a room restarted from storage asks again and still announces a gift
/// the settlement service charged before the crash.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct PendingGift {
    pub connection: ConnectionId,
    pub client_id: u64,
    pub name: String,
    pub charge: ChargeRequest,
    /// Restored from storage: a `replayed` answer means charged before the crash, and it
    /// was never announced.
    #[serde(skip)]
    pub recovered: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogRecord {
    pub event: &'static str,
    pub connection: Option<ConnectionId>,
    pub user: Option<String>,
    pub code: &'static str,
    pub detail: String,
}

/// Admin API commands (already authorized by the host).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AdminCommand {
    SetPart {
        name: String,
        value: String,
    },
    Broadcast {
        from_user: String,
        from_name: String,
        text: String,
    },
    Direct {
        from_user: String,
        to_user: String,
        payload: String,
    },
    End,
    /// Grow the room to this many shards (a room becomes sharded this way too).
    SetShards {
        shards: u16,
    },
    /// Polls, quizzes, Q&A, products, moderation: what hosts and moderators run, here
    /// from the admin API on behalf of `by`.
    Staff {
        by: Identity,
        command: StaffCommand,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AdminReply {
    PartSet {
        version: u64,
    },
    Broadcast {
        seq: u64,
    },
    /// How many connections of the target user the message went to.
    Direct {
        connections: u32,
    },
    Ended,
    Poll {
        id: String,
        phase: PollPhase,
        tallies: Vec<u64>,
    },
    /// A staff command's result, as the JSON the admin API answers.
    Done(serde_json::Value),
}

impl AdminReply {
    /// The admin API's JSON answer (also sent to a staff socket after its command).
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            AdminReply::PartSet { version } => serde_json::json!({ "version": version }),
            AdminReply::Broadcast { seq } => serde_json::json!({ "seq": seq }),
            AdminReply::Direct { connections } => serde_json::json!({ "connections": connections }),
            AdminReply::Ended => serde_json::json!({ "status": "ended" }),
            AdminReply::Poll { id, phase, tallies } => {
                serde_json::json!({ "id": id, "phase": phase.as_str(), "tallies": tallies })
            }
            AdminReply::Done(value) => value.clone(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AdminError {
    RoomEnded,
    InvalidPartName,
    ReservedPart,
    TooManyParts,
    TooLong {
        field: &'static str,
        bytes_max: usize,
    },
    InvalidJson,
    Empty {
        field: &'static str,
    },
    /// A poll spec breaks a limit (the message says which).
    InvalidPoll(String),
    PollNotFound,
    /// A poll is open already: close it first.
    PollOpen,
    /// A staff command's input breaks a limit (the message says which).
    Invalid(String),
    /// The command does not fit the room's state now (a question is open, …).
    Refused(String),
    NotFound(&'static str),
    /// Viewers run no staff command; only hosts end the room.
    Forbidden,
    /// The tenant has `DIRECTORY_ROOMS_MAX` live rooms (see [`admit_live_room`]).
    TooManyRooms,
}

impl AdminError {
    /// Stable machine-readable code for the HTTP API.
    pub fn code(&self) -> &'static str {
        match self {
            AdminError::RoomEnded => "room_ended",
            AdminError::InvalidPartName => "invalid_part_name",
            AdminError::ReservedPart => "reserved_part",
            AdminError::TooManyParts => "too_many_parts",
            AdminError::TooLong { .. } => "too_long",
            AdminError::InvalidJson => "invalid_json",
            AdminError::Empty { .. } => "empty",
            AdminError::InvalidPoll(_) => "invalid_poll",
            AdminError::PollNotFound => "not_found",
            AdminError::PollOpen => "poll_open",
            AdminError::Invalid(_) => "invalid",
            AdminError::Refused(_) => "conflict",
            AdminError::NotFound(_) => "not_found",
            AdminError::Forbidden => "forbidden",
            AdminError::TooManyRooms => "too_many_rooms",
        }
    }

    pub fn message(&self) -> String {
        match self {
            AdminError::RoomEnded => "the room has ended".into(),
            AdminError::InvalidPartName => {
                format!("part names are 1..={PART_NAME_BYTES_MAX} bytes of a-z, 0-9, '_', '-'")
            }
            AdminError::ReservedPart => "this part is owned by the room".into(),
            AdminError::TooManyParts => format!("a room holds at most {PARTS_COUNT_MAX} parts"),
            AdminError::TooLong { field, bytes_max } => {
                format!("`{field}` is longer than {bytes_max} bytes")
            }
            AdminError::InvalidJson => "value is not valid JSON".into(),
            AdminError::Empty { field } => format!("`{field}` must not be empty"),
            AdminError::InvalidPoll(message) => message.clone(),
            AdminError::PollNotFound => "no such poll (only the room's latest poll)".into(),
            AdminError::PollOpen => "a poll is open: close it first".into(),
            AdminError::Invalid(message) | AdminError::Refused(message) => message.clone(),
            AdminError::NotFound(message) => (*message).into(),
            AdminError::Forbidden => "not allowed for this role".into(),
            AdminError::TooManyRooms => {
                format!("a tenant has at most {DIRECTORY_ROOMS_MAX} live rooms: end one first")
            }
        }
    }

    /// The HTTP status the admin API answers with.
    pub fn http_status(&self) -> u16 {
        match self {
            AdminError::RoomEnded | AdminError::PollOpen | AdminError::Refused(_) => 409,
            AdminError::PollNotFound | AdminError::NotFound(_) => 404,
            AdminError::Forbidden => 403,
            AdminError::TooManyRooms => 429,
            _ => 400,
        }
    }
}

/// Counters for observability, since the room object last woke.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct RoomStats {
    pub connections: u32,
    pub connections_total: u64,
    pub frames_in: u64,
    pub bytes_in: u64,
    pub frames_out: u64,
    pub bytes_out: u64,
    pub rate_limited: u64,
    /// Frames retried by a client after a reconnect and acknowledged without re-applying.
    pub retries_acknowledged: u64,
    /// Upgrades refused for the user's connect rate (`ConnectRateLimited`).
    pub connects_rate_limited: u64,
    /// Poll votes counted, and repeats acknowledged without counting.
    pub votes_counted: u64,
    pub votes_repeated: u64,
    /// Comments and questions refused because the sender is muted or the word filter.
    pub muted_refused: u64,
    pub filtered_refused: u64,
    pub dropped: u64,
    /// Big rooms: batches from and to shards, and comments shown to their senders only.
    pub shard_batches_in: u64,
    pub shard_batches_out: u64,
    pub comments_sampled_out: u64,
    pub closed_by_reason: BTreeMap<String, u64>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PartState {
    pub version: u64,
    pub value: String,
}

/// What a Welcome is built from: the room's own state, or a shard's copy of it.
pub(crate) struct RoomView<'a> {
    pub epoch: u64,
    pub total_version: u64,
    pub last_seq: u64,
    pub likes_total: u64,
    /// The tick the serving object batches at now (`limits::room_tick_ms_for`).
    pub tick_ms: u64,
    pub parts: &'a BTreeMap<String, PartState>,
    /// Already trimmed to the ring's age limit.
    pub ring: &'a VecDeque<Action>,
}

impl RoomView<'_> {
    /// The events that answer a Hello: Welcome, the parts the client lacks, the version,
    /// on a resume the missed actions (after a `Gap` if some are gone), the like total.
    pub(crate) fn welcome(
        &self,
        connection: ConnectionId,
        identity: &Identity,
        resume: Option<&ovation_proto::Resume>,
    ) -> Vec<Event> {
        let resume = resume.filter(|r| r.epoch == self.epoch);
        let mut events = vec![Event::Welcome(Welcome {
            protocol_version: PROTOCOL_VERSION,
            connection_id: connection,
            user: identity.user.clone(),
            role: identity.role,
            epoch: self.epoch,
            total_version: self.total_version,
            action_cursor: self.last_seq,
            resumed: resume.is_some(),
            tick_ms: u32::try_from(self.tick_ms).expect("ticks are short"),
        })];
        let known: HashMap<&str, u64> = resume
            .iter()
            .flat_map(|r| r.part_versions.iter().map(|p| (p.name.as_str(), p.version)))
            .collect();
        for (name, part) in self.parts {
            if known.get(name.as_str()).is_none_or(|&v| v < part.version) {
                events.push(Event::Part {
                    name: name.clone(),
                    version: part.version,
                    value: part.value.clone(),
                });
            }
        }
        events.push(Event::Version {
            epoch: self.epoch,
            total_version: self.total_version,
        });
        if let Some(resume) = resume {
            let cursor = resume.action_cursor.min(self.last_seq);
            let first = self.ring.front().map_or(self.last_seq + 1, |a| a.seq);
            if cursor + 1 < first {
                events.push(Event::Gap {
                    missed_after: cursor,
                    resumed_from: first,
                });
            }
            events.extend(
                self.ring
                    .iter()
                    .filter(|a| a.seq > cursor)
                    .cloned()
                    .map(Event::Action),
            );
        }
        events.push(Event::Likes {
            total: self.likes_total,
        });
        events
    }
}

#[derive(Debug)]
struct Connection {
    identity: Identity,
    /// Hello received (or the socket was reattached after hibernation).
    ready: bool,
    hello_seen: bool,
    /// Joined since the last online publication: gets the count at the next flush.
    needs_online: bool,
    outbox: Vec<Event>,
    /// Actions left out of a full outbox this tick, first and last seq: the flush tells
    /// the connection of them with a `Gap` after the rest of its batch.
    outbox_dropped: Option<(u64, u64)>,
    liveness: liveness::Liveness,
    frames: TokenBucket,
    /// Set for a frame forwarded by a shard: (shard, the shard's connection id).
    remote: Option<(u16, u64)>,
}

#[derive(Debug)]
pub(crate) struct UserBuckets {
    comments: TokenBucket,
    likes: TokenBucket,
    reactions: TokenBucket,
    directs: TokenBucket,
    gifts: TokenBucket,
    /// Upgrades (`USER_CONNECTS_PER_S`, `USER_CONNECTS_BURST`): the room's own bound,
    /// whichever Worker isolate the upgrade came through.
    pub(crate) connects: TokenBucket,
    used_ms: u64,
    /// Client ids of this user's recently accepted frames with their sequence numbers,
    /// newest last: a frame retried after a reconnect is acknowledged again, not applied
    /// twice. Survives restarts for sequenced actions (rebuilt from the stored ring).
    recent: VecDeque<(u64, Option<u64>)>,
}

impl UserBuckets {
    pub(crate) fn new(now_ms: u64) -> UserBuckets {
        UserBuckets {
            comments: TokenBucket::new_full(COMMENT_RATE_PER_S, COMMENT_BURST, now_ms),
            likes: TokenBucket::new_full(LIKES_RATE_PER_S, LIKES_BURST, now_ms),
            reactions: TokenBucket::new_full(REACTION_RATE_PER_S, REACTION_BURST, now_ms),
            directs: TokenBucket::new_full(DIRECT_RATE_PER_S, DIRECT_BURST, now_ms),
            gifts: TokenBucket::new_full(GIFT_RATE_PER_S, GIFT_BURST, now_ms),
            connects: admission::connect_bucket(now_ms),
            used_ms: now_ms,
            recent: VecDeque::new(),
        }
    }

    fn accepted(&self, client_id: u64) -> Option<Option<u64>> {
        self.recent
            .iter()
            .rev()
            .find(|(id, _)| *id == client_id)
            .map(|(_, seq)| *seq)
    }

    fn remember(&mut self, client_id: u64, seq: Option<u64>) {
        if self.recent.len() >= RECENT_CLIENT_IDS_PER_USER_MAX {
            self.recent.pop_front();
        }
        self.recent.push_back((client_id, seq));
    }
}

pub struct Room {
    info: RoomInfo,
    status: RoomStatus,
    epoch: u64,
    total_version: u64,
    parts: BTreeMap<String, PartState>,
    last_seq: u64,
    ring: VecDeque<Action>,
    likes_total: u64,
    created_ms: u64,

    connections: BTreeMap<ConnectionId, Connection>,
    /// Connections of `connections` that are ready (`Hello` done) and not remote.
    ready_local: usize,
    users: BTreeMap<String, BTreeSet<ConnectionId>>,
    buckets: HashMap<String, UserBuckets>,

    likes_dirty: bool,
    meta_dirty: bool,
    /// Like frames (user, client id) acknowledged this tick, stored with the total.
    likes_acked: Vec<(String, u64)>,
    online_published: Option<u32>,
    online_refresh_at_ms: u64,
    /// A changed count is not published before this (`ONLINE_PUBLISH_INTERVAL_MS`).
    online_publish_earliest_ms: u64,
    /// Set while some output waits for the next tick.
    tick_at_ms: Option<u64>,
    /// When output last went out (`flush`): the next flush is a tick after it at the
    /// earliest.
    last_flush_ms: Option<u64>,
    actions_this_tick: usize,
    outputs: VecDeque<Output>,
    stats: RoomStats,

    /// sku → price in minor units (given by the host; not stored).
    gift_catalog: BTreeMap<String, u64>,
    pub(crate) gifts_pending: BTreeMap<u64, PendingGift>,
    pub(crate) next_charge_request: u64,
    /// user → totals and recently announced gift ids, stored as `gifter/<user>`.
    pub(crate) gifters: BTreeMap<String, Gifter>,
    /// The latest poll (open, closed or revealed), stored as `poll` + `vote/<id>/<user>`.
    pub(crate) poll: Option<polls::Poll>,
    /// The latest quiz, stored as `quiz` + `answer/<id>/<question>/<user>`.
    pub(crate) quiz: Option<quiz::Quiz>,
    /// Answers came in since staff were last told the count.
    pub(crate) quiz_answers_dirty: bool,
    pub(crate) qa: qa::Qa,
    pub(crate) products: products::Products,
    pub(crate) moderation: moderation::Moderation,
    pub(crate) shards: sharding::Shards,
}

impl Room {
    /// A new live room. `epoch` must be random (the host's randomness): a client holding
    /// another epoch's versions drops them.
    pub fn create(info: RoomInfo, epoch: u64, now_ms: u64) -> Room {
        let shards = shards_for_audience(info.expected_audience);
        let mut room = Room::empty(info, epoch, now_ms);
        if shards > 0 {
            room.set_shards(shards, now_ms)
                .expect("a live room within the limits");
        }
        room.meta_dirty = true;
        room.update_room_part();
        room.flush_meta();
        room
    }

    fn empty(info: RoomInfo, epoch: u64, now_ms: u64) -> Room {
        Room {
            info,
            status: RoomStatus::Live,
            epoch,
            total_version: 0,
            parts: BTreeMap::new(),
            last_seq: 0,
            ring: VecDeque::new(),
            likes_total: 0,
            created_ms: now_ms,
            connections: BTreeMap::new(),
            ready_local: 0,
            users: BTreeMap::new(),
            buckets: HashMap::new(),
            likes_dirty: false,
            meta_dirty: false,
            likes_acked: Vec::new(),
            online_published: None,
            online_refresh_at_ms: now_ms,
            online_publish_earliest_ms: now_ms,
            tick_at_ms: None,
            last_flush_ms: None,
            actions_this_tick: 0,
            outputs: VecDeque::new(),
            stats: RoomStats::default(),
            gift_catalog: BTreeMap::new(),
            gifts_pending: BTreeMap::new(),
            next_charge_request: 1,
            gifters: BTreeMap::new(),
            poll: None,
            quiz: None,
            quiz_answers_dirty: false,
            qa: qa::Qa::default(),
            products: products::Products::default(),
            moderation: moderation::Moderation::default(),
            shards: sharding::Shards::default(),
        }
    }

    pub fn info(&self) -> &RoomInfo {
        &self.info
    }
    pub fn status(&self) -> RoomStatus {
        self.status
    }
    pub fn epoch(&self) -> u64 {
        self.epoch
    }
    pub fn total_version(&self) -> u64 {
        self.total_version
    }
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }
    pub fn likes_total(&self) -> u64 {
        self.likes_total
    }
    pub fn created_ms(&self) -> u64 {
        self.created_ms
    }
    /// Sockets that completed their `Hello` on the room itself plus every shard's count
    /// (a shard counts the same way): a socket that never says `Hello` is not a viewer.
    pub fn online(&self) -> u32 {
        let local = u32::try_from(self.ready_local).expect("bounded");
        local + self.shards.online.values().sum::<u32>()
    }

    /// Sockets on the room itself (not the short-lived entries of forwarded frames).
    fn local_connections(&self) -> usize {
        self.connections.len() - self.shards.remote.len()
    }
    pub fn stats(&self) -> RoomStats {
        let mut stats = self.stats.clone();
        stats.connections = self.online();
        stats
    }
    pub fn connection_ids(&self) -> impl Iterator<Item = ConnectionId> + '_ {
        self.connections
            .iter()
            .filter(|(_, c)| c.remote.is_none())
            .map(|(id, _)| *id)
    }
    pub fn connections_of(&self, user: &str) -> impl Iterator<Item = ConnectionId> + '_ {
        self.users.get(user).into_iter().flatten().copied()
    }
    /// Part versions (name → version), for `GET …/state`.
    pub fn part_versions(&self) -> impl Iterator<Item = (&str, u64)> {
        self.parts.iter().map(|(n, p)| (n.as_str(), p.version))
    }
    /// A part's value if it is still at `version` (parts are immutable per version).
    pub fn part_at(&self, name: &str, version: u64) -> Option<&str> {
        self.parts
            .get(name)
            .filter(|p| p.version == version)
            .map(|p| p.value.as_str())
    }
    pub fn part(&self, name: &str) -> Option<(u64, &str)> {
        self.parts.get(name).map(|p| (p.version, p.value.as_str()))
    }
    /// Actions after `since` still in the buffer (at most `PULL_EVENTS_MAX`), and whether
    /// some between `since` and the first returned were lost.
    pub fn actions_since(&mut self, since: u64, now_ms: u64) -> (Vec<Action>, bool) {
        self.evict_old_actions(now_ms);
        let gap = self
            .first_buffered_seq()
            .is_some_and(|first| since + 1 < first)
            || (self.ring.is_empty() && since < self.last_seq);
        let actions = self
            .ring
            .iter()
            .filter(|a| a.seq > since)
            .take(PULL_EVENTS_MAX)
            .cloned()
            .collect();
        (actions, gap)
    }

    /// Registers a new socket. The client must send `Hello` first.
    pub fn connect(
        &mut self,
        connection: ConnectionId,
        identity: Identity,
        lifetime_ms: u64,
        now_ms: u64,
    ) -> Result<(), CloseCode> {
        assert!(
            !self.connections.contains_key(&connection),
            "host reused connection id {connection}"
        );
        assert!(connection < sharding::REMOTE_CONNECTION_ID_MIN);
        if self.status == RoomStatus::Ended {
            self.log_refusal(Some(connection), Some(&identity.user), "room_ended", "");
            return Err(CloseCode::RoomEnded);
        }
        if self.moderation.is_banned(&identity.user) {
            self.log_refusal(Some(connection), Some(&identity.user), "banned", "");
            return Err(CloseCode::Banned);
        }
        // The room's own bound on a user's upgrades (the Worker's limiter is per isolate:
        // a flood spread over many can still reach here). Not logged: a flood of
        // refusals would be a flood of log lines.
        if self
            .buckets(&identity.user, now_ms)
            .connects
            .take(1, now_ms)
            .is_err()
        {
            self.stats.connects_rate_limited += 1;
            return Err(CloseCode::ConnectRateLimited);
        }
        if self.local_connections() >= CONNECTIONS_PER_ROOM_MAX {
            self.log_refusal(Some(connection), Some(&identity.user), "room_full", "");
            return Err(CloseCode::RoomFull);
        }
        // Before the room cap can be reached by one token: the excess is refused, the
        // user's open sockets keep working; only one of theirs long silent (gone without
        // a close) gives its place to the new one.
        let held: Vec<ConnectionId> = self
            .connections_of(&identity.user)
            .filter(|id| self.connections[id].remote.is_none())
            .collect();
        if held.len() >= USER_SOCKETS_PER_ROOM_MAX {
            let silent = held.iter().map(|id| (*id, &self.connections[id].liveness));
            match liveness::replaceable(silent, now_ms) {
                Some(gone) => {
                    let detail = "silent; replaced by a new socket of its user".to_owned();
                    self.close(gone, CloseCode::Stale, detail, now_ms);
                }
                None => {
                    let detail = format!("{} sockets open", held.len());
                    self.log_refusal(
                        Some(connection),
                        Some(&identity.user),
                        CloseCode::TooManySockets.reason(),
                        &detail,
                    );
                    return Err(CloseCode::TooManySockets);
                }
            }
        }
        let expires_at_ms = now_ms + lifetime_ms;
        self.insert_connection(connection, identity, expires_at_ms, false, None, now_ms);
        self.stats.connections_total += 1;
        Ok(())
    }

    /// Re-registers a socket that survived hibernation (no `Hello` expected, but allowed).
    pub fn reattach(
        &mut self,
        connection: ConnectionId,
        identity: Identity,
        expires_at_ms: u64,
        now_ms: u64,
    ) {
        assert!(!self.connections.contains_key(&connection));
        self.insert_connection(connection, identity, expires_at_ms, true, None, now_ms);
    }

    /// `ready`: the socket needs no `Hello` (reattached after hibernation, or a shard's
    /// forwarded frames, `remote`); a new socket owes one within `HELLO_DEADLINE_MS`.
    fn insert_connection(
        &mut self,
        connection: ConnectionId,
        identity: Identity,
        expires_at_ms: u64,
        ready: bool,
        remote: Option<(u16, u64)>,
        now_ms: u64,
    ) {
        if ready && remote.is_none() {
            self.ready_local += 1;
        }
        let liveness = if ready {
            liveness::Liveness::reattached(expires_at_ms, now_ms)
        } else {
            liveness::Liveness::opened(expires_at_ms, now_ms)
        };
        self.users
            .entry(identity.user.clone())
            .or_default()
            .insert(connection);
        self.connections.insert(
            connection,
            Connection {
                identity,
                ready,
                hello_seen: false,
                needs_online: false,
                outbox: Vec::new(),
                outbox_dropped: None,
                liveness,
                frames: TokenBucket::new_full(FRAMES_RATE_PER_S, FRAMES_BURST, now_ms),
                remote,
            },
        );
        self.schedule_tick(now_ms);
    }

    /// The socket closed (by the client or the network).
    pub fn disconnect(&mut self, connection: ConnectionId, now_ms: u64) {
        if self.remove_connection(connection).is_some() {
            self.schedule_tick(now_ms);
        }
    }

    fn remove_connection(&mut self, connection: ConnectionId) -> Option<Connection> {
        let conn = self.connections.remove(&connection)?;
        match conn.remote {
            Some(remote) => {
                self.shards.remote.remove(&remote);
            }
            None if conn.ready => self.ready_local -= 1,
            None => {}
        }
        let set = self
            .users
            .get_mut(&conn.identity.user)
            .expect("every connection is indexed by user");
        assert!(set.remove(&connection));
        if set.is_empty() {
            self.users.remove(&conn.identity.user);
        }
        Some(conn)
    }

    fn close(&mut self, connection: ConnectionId, code: CloseCode, detail: String, now_ms: u64) {
        if let Some(conn) = self.remove_connection(connection) {
            if conn.remote.is_some() {
                return; // the shard closes its own sockets (see `close_user`)
            }
            *self
                .stats
                .closed_by_reason
                .entry(code.reason().to_owned())
                .or_default() += 1;
            if code != CloseCode::GoingAway {
                self.outputs.push_back(Output::Log(LogRecord {
                    event: "close",
                    connection: Some(connection),
                    user: Some(conn.identity.user),
                    code: code.reason(),
                    detail,
                }));
            }
            self.outputs.push_back(Output::Close { connection, code });
            self.schedule_tick(now_ms);
        }
    }

    /// Notes a sign of life (e.g. the platform's heartbeat auto-response timestamp).
    pub fn touch(&mut self, connection: ConnectionId, at_ms: u64) {
        if let Some(conn) = self.connections.get_mut(&connection) {
            conn.liveness.seen(at_ms);
        }
    }

    /// A binary frame from a connection.
    pub fn handle_frame(&mut self, connection: ConnectionId, bytes: &[u8], now_ms: u64) {
        let Some(conn) = self.connections.get_mut(&connection) else {
            return; // Closed in the same instant; the host's event raced our close.
        };
        conn.liveness.seen(now_ms);
        self.stats.frames_in += 1;
        self.stats.bytes_in += bytes.len() as u64;
        let frame = match ClientFrame::decode(bytes) {
            Ok(frame) => frame,
            Err(error) => {
                let code = match error {
                    DecodeError::TooLarge { .. } => CloseCode::FrameTooLarge,
                    DecodeError::Malformed | DecodeError::FieldLimit { .. } => CloseCode::BadFrame,
                };
                self.close(connection, code, error.to_string(), now_ms);
                return;
            }
        };
        // A repeat of something already applied is answered before any rate: a resumed
        // client resends everything unacknowledged at once, and refusing a repeat for
        // the frame rate would make it send, and the room apply, the same thing twice.
        if self.connections[&connection].ready && self.answer_repeat(connection, &frame, now_ms) {
            return;
        }
        let conn = self
            .connections
            .get_mut(&connection)
            .expect("looked up above");
        if let Err(retry_after_ms) = conn.frames.take(1, now_ms) {
            let client_id = frame.client_id();
            self.refuse(
                connection,
                client_id,
                Refusal::retry_after(ErrorCode::RateLimited, "too many frames", retry_after_ms),
                now_ms,
            );
            return;
        }
        match frame {
            ClientFrame::Hello(hello) => self.on_hello(connection, hello, now_ms),
            other => {
                if !self.connections[&connection].ready {
                    self.close(
                        connection,
                        CloseCode::ProtocolViolation,
                        "first frame must be Hello".into(),
                        now_ms,
                    );
                    return;
                }
                self.on_frame(connection, other, now_ms);
            }
        }
    }

    /// A text frame that is not the heartbeat (the platform answers that one itself).
    pub fn handle_text(&mut self, connection: ConnectionId, now_ms: u64) {
        self.close(
            connection,
            CloseCode::TextNotSupported,
            "text frames are not part of ovation.v1".into(),
            now_ms,
        );
    }

    fn on_hello(&mut self, connection: ConnectionId, hello: Hello, now_ms: u64) {
        let conn = self.connections.get_mut(&connection).expect("checked");
        if conn.hello_seen {
            self.close(
                connection,
                CloseCode::ProtocolViolation,
                "Hello sent twice".into(),
                now_ms,
            );
            return;
        }
        if hello.protocol_version != PROTOCOL_VERSION {
            let detail = format!("protocol {} not supported", hello.protocol_version);
            self.close(connection, CloseCode::UnsupportedProtocol, detail, now_ms);
            return;
        }
        conn.hello_seen = true;
        conn.liveness.hello();
        if !conn.ready {
            conn.ready = true;
            self.ready_local += 1;
        }
        let identity = conn.identity.clone();
        self.evict_old_actions(now_ms);
        let view = RoomView {
            epoch: self.epoch,
            total_version: self.total_version,
            last_seq: self.last_seq,
            likes_total: self.likes_total,
            tick_ms: self.tick_ms(),
            parts: &self.parts,
            ring: &self.ring,
        };
        let mut events = view.welcome(connection, &identity, hello.resume.as_ref());
        conn_needs_online(self, connection);
        if self.status == RoomStatus::Ended {
            events.push(Event::RoomEnded);
        }
        let staff = self.connections[&connection].identity.role.is_staff();
        for event in events {
            self.enqueue(connection, event, now_ms);
        }
        if staff {
            self.staff_welcome(connection, now_ms);
        }
    }

    /// Acknowledges again a frame whose client id this user's frame already used (a
    /// retry); true when it was one.
    fn answer_repeat(
        &mut self,
        connection: ConnectionId,
        frame: &ClientFrame,
        now_ms: u64,
    ) -> bool {
        // Gifts have their own idempotency key (the gift id, kept with the gifter).
        let Some(client_id) = frame
            .client_id()
            .filter(|_| !matches!(frame, ClientFrame::Gift { .. }))
        else {
            return false;
        };
        let user = self.connections[&connection].identity.user.clone();
        let Some(seq) = self.buckets(&user, now_ms).accepted(client_id) else {
            return false;
        };
        self.stats.retries_acknowledged += 1;
        self.enqueue(connection, Event::Ack { client_id, seq }, now_ms);
        true
    }

    fn on_frame(&mut self, connection: ConnectionId, frame: ClientFrame, now_ms: u64) {
        let identity = self.connections[&connection].identity.clone();
        let client_id = frame.client_id();
        let is_like = matches!(frame, ClientFrame::Like { .. });
        // (Repeats were answered by the caller: `handle_frame`, or the shard relay.)
        let result: Result<Option<u64>, Refusal> = match frame {
            ClientFrame::Hello(_) => unreachable!("handled by on_hello"),
            ClientFrame::Ping { client_time_ms } => {
                self.enqueue(
                    connection,
                    Event::Pong {
                        client_time_ms,
                        server_time_ms: now_ms,
                    },
                    now_ms,
                );
                return;
            }
            ClientFrame::Comment { client_id, text } => self.user_action(
                connection,
                &identity,
                client_id,
                ActionBody::Comment { text },
                now_ms,
            ),
            ClientFrame::Reaction { client_id, kind } => self.user_action(
                connection,
                &identity,
                client_id,
                ActionBody::Reaction { kind },
                now_ms,
            ),
            ClientFrame::Like { count, .. } => self.on_like(&identity, count, now_ms),
            ClientFrame::Gift {
                client_id,
                gift_id,
                sku,
                qty,
            } => match self.on_gift(connection, &identity, client_id, gift_id, sku, qty, now_ms) {
                // Answered when the charge comes back.
                Ok(()) => return,
                Err(refusal) => Err(refusal),
            },
            ClientFrame::Direct {
                to_user, payload, ..
            } => self.on_direct(&identity, to_user, payload, now_ms),
            ClientFrame::Vote {
                poll_id, option, ..
            } => self.on_vote(&identity, &poll_id, option, now_ms),
            ClientFrame::Answer {
                quiz_id,
                question,
                option,
                ..
            } => self.on_answer(&identity, &quiz_id, question, option, now_ms),
            ClientFrame::Ask { text, .. } => self.on_ask(&identity, text, now_ms),
            ClientFrame::Upvote { question_id, .. } => {
                self.on_upvote(&identity, &question_id, now_ms)
            }
            ClientFrame::ProductClick { product_id, .. } => {
                self.on_product_click(&identity, &product_id, now_ms)
            }
            ClientFrame::Command { client_id, command } => {
                self.on_command(connection, &identity, client_id, &command, now_ms)
            }
            ClientFrame::SetPart { name, value, .. } => {
                if !identity.role.is_staff() {
                    Err(Refusal::new(
                        ErrorCode::Forbidden,
                        "hosts and moderators only",
                    ))
                } else {
                    self.set_part(name, value, now_ms)
                        .map(|_| None)
                        .map_err(Refusal::from)
                }
            }
        };
        let client_id = client_id.expect("every frame but Hello and Ping has a client id");
        match result {
            Ok(seq) => {
                self.buckets(&identity.user, now_ms)
                    .remember(client_id, seq);
                if is_like && self.likes_acked.len() < LIKE_FRAMES_STORED_PER_TICK_MAX {
                    self.likes_acked.push((identity.user.clone(), client_id));
                }
                self.enqueue(connection, Event::Ack { client_id, seq }, now_ms)
            }
            Err(refusal) => self.refuse(connection, Some(client_id), refusal, now_ms),
        }
    }

    fn refuse(
        &mut self,
        connection: ConnectionId,
        client_id: Option<u64>,
        refusal: Refusal,
        now_ms: u64,
    ) {
        let Refusal {
            code,
            message,
            retry_after_ms,
        } = refusal;
        if code == ErrorCode::RateLimited {
            self.stats.rate_limited += 1;
        }
        let user = self
            .connections
            .get(&connection)
            .map(|c| c.identity.user.clone());
        self.log_refusal(Some(connection), user.as_deref(), code.as_str(), &message);
        self.enqueue(
            connection,
            Event::Error {
                client_id,
                code,
                message,
                retry_after_ms,
            },
            now_ms,
        );
    }

    fn log_refusal(
        &mut self,
        connection: Option<ConnectionId>,
        user: Option<&str>,
        code: &'static str,
        detail: &str,
    ) {
        self.outputs.push_back(Output::Log(LogRecord {
            event: "refusal",
            connection,
            user: user.map(str::to_owned),
            code,
            detail: detail.to_owned(),
        }));
    }

    fn buckets(&mut self, user: &str, now_ms: u64) -> &mut UserBuckets {
        bucket_entry(&mut self.buckets, user, now_ms)
    }

    fn user_action(
        &mut self,
        connection: ConnectionId,
        identity: &Identity,
        client_id: u64,
        body: ActionBody,
        now_ms: u64,
    ) -> Result<Option<u64>, Refusal> {
        let text = match &body {
            ActionBody::Comment { text } | ActionBody::System { text } => text,
            ActionBody::Reaction { kind } => kind,
            ActionBody::Gift { .. } | ActionBody::Removed { .. } => {
                unreachable!("gifts are charged and removals made by staff, not posted")
            }
        };
        if text.trim().is_empty() {
            return Err(Refusal::new(ErrorCode::Invalid, "empty"));
        }
        if let ActionBody::Comment { text } = &body {
            if let Err(refusal) = self.check_speech(identity, text, now_ms) {
                match refusal.code {
                    ErrorCode::Muted => self.stats.muted_refused += 1,
                    _ => self.stats.filtered_refused += 1,
                }
                return Err(refusal);
            }
        }
        // A sharded room samples comments instead of refusing them (after the checks).
        let sampling = is_comment_body(&body) && self.shards.is_sharded();
        let tick_ms = self.tick_ms();
        if !sampling && self.actions_this_tick >= per_tick(ROOM_ACTIONS_PER_S_MAX, tick_ms) {
            let retry_after_ms = u32::try_from(tick_ms).expect("ticks are short");
            return Err(Refusal::retry_after(
                ErrorCode::RateLimited,
                "room busy",
                retry_after_ms,
            ));
        }
        let buckets = self.buckets(&identity.user, now_ms);
        let is_comment = matches!(body, ActionBody::Comment { .. });
        let bucket = match body {
            ActionBody::Reaction { .. } => &mut buckets.reactions,
            _ => &mut buckets.comments,
        };
        bucket
            .take(1, now_ms)
            .map_err(|wait| Refusal::retry_after(ErrorCode::RateLimited, "slow down", wait))?;
        if is_comment && !identity.role.is_staff() {
            self.moderation
                .slow_mode_take(&identity.user, now_ms)
                .map_err(|wait_ms| {
                    let wait_ms = u32::try_from(wait_ms).expect("bounded by SLOW_MODE_MS_MAX");
                    Refusal::retry_after(ErrorCode::RateLimited, "slow mode", wait_ms)
                })?;
        }
        if sampling && self.sample_out(identity) {
            let seq = self.sampled_comment(connection, identity, body, now_ms);
            return Ok(Some(seq));
        }
        let seq = self.push_action(
            &identity.user,
            &identity.name,
            body,
            Some(client_id),
            now_ms,
        );
        Ok(Some(seq))
    }

    /// Appends an action to the ring and broadcasts it. `client_id` is the sender's id for
    /// it (stored beside the action so retries stay deduplicated across restarts).
    fn push_action(
        &mut self,
        user: &str,
        name: &str,
        body: ActionBody,
        client_id: Option<u64>,
        now_ms: u64,
    ) -> u64 {
        self.last_seq += 1;
        self.actions_this_tick += 1;
        let action = Action {
            seq: self.last_seq,
            ts_ms: now_ms,
            user: user.to_owned(),
            name: name.to_owned(),
            body,
        };
        self.outputs
            .push_back(Output::Store(StorageOp::put_action(&action, client_id)));
        self.ring.push_back(action.clone());
        while self.ring.len() > RING_EVENTS_MAX {
            let old = self.ring.pop_front().expect("non-empty");
            self.outputs
                .push_back(Output::Store(StorageOp::delete_action(old.seq)));
        }
        self.evict_old_actions(now_ms);
        self.meta_dirty = true;
        self.broadcast(Event::Action(action), now_ms);
        self.last_seq
    }

    fn first_buffered_seq(&self) -> Option<u64> {
        self.ring.front().map(|a| a.seq)
    }

    fn evict_old_actions(&mut self, now_ms: u64) {
        while let Some(front) = self.ring.front() {
            if front.ts_ms + RING_AGE_MS_MAX >= now_ms {
                break;
            }
            let seq = front.seq;
            self.ring.pop_front();
            self.outputs
                .push_back(Output::Store(StorageOp::delete_action(seq)));
        }
    }

    fn on_like(
        &mut self,
        identity: &Identity,
        count: u32,
        now_ms: u64,
    ) -> Result<Option<u64>, Refusal> {
        if count == 0 || count > LIKE_COUNT_PER_FRAME_MAX {
            return Err(Refusal::new(
                ErrorCode::Invalid,
                format!("like count must be 1..={LIKE_COUNT_PER_FRAME_MAX}"),
            ));
        }
        self.buckets(&identity.user, now_ms)
            .likes
            .take(count, now_ms)
            .map_err(|wait| {
                Refusal::retry_after(
                    ErrorCode::RateLimited,
                    format!("at most {LIKES_RATE_PER_S} likes per second"),
                    wait,
                )
            })?;
        self.likes_total += u64::from(count);
        self.likes_dirty = true;
        self.meta_dirty = true;
        self.schedule_tick(now_ms);
        Ok(None)
    }

    fn on_direct(
        &mut self,
        identity: &Identity,
        to_user: String,
        payload: String,
        now_ms: u64,
    ) -> Result<Option<u64>, Refusal> {
        if !identity.role.is_staff() {
            return Err(Refusal::new(
                ErrorCode::Forbidden,
                "hosts and moderators only",
            ));
        }
        self.buckets(&identity.user, now_ms)
            .directs
            .take(1, now_ms)
            .map_err(|wait| Refusal::retry_after(ErrorCode::RateLimited, "slow down", wait))?;
        self.send_direct(&identity.user, &to_user, payload, now_ms)
            .map_err(Refusal::from)?;
        Ok(None)
    }

    /// Sets the gift catalog (sku → price). The host gives it on every wake.
    pub fn set_gift_catalog(&mut self, catalog: BTreeMap<String, u64>) -> Result<(), String> {
        if catalog.len() > GIFT_CATALOG_ENTRIES_MAX {
            return Err(format!(
                "a catalog has at most {GIFT_CATALOG_ENTRIES_MAX} entries"
            ));
        }
        if let Some((sku, _)) = catalog
            .iter()
            .find(|(sku, price)| sku.is_empty() || sku.len() > GIFT_SKU_BYTES_MAX || **price == 0)
        {
            return Err(format!(
                "catalog entry `{sku}` needs a name of 1..=32 bytes and a price"
            ));
        }
        self.gift_catalog = catalog;
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn on_gift(
        &mut self,
        connection: ConnectionId,
        identity: &Identity,
        client_id: u64,
        gift_id: String,
        sku: String,
        qty: u32,
        now_ms: u64,
    ) -> Result<(), Refusal> {
        if self.status == RoomStatus::Ended {
            return Err(Refusal::new(ErrorCode::RoomEnded, "the room has ended"));
        }
        if gift_id.is_empty() || qty == 0 || qty > GIFT_QTY_MAX {
            return Err(Refusal::new(
                ErrorCode::Invalid,
                format!("a gift needs an id and a quantity of 1..={GIFT_QTY_MAX}"),
            ));
        }
        let price = *self.gift_catalog.get(&sku).ok_or_else(|| {
            Refusal::new(
                ErrorCode::NotFound,
                format!("no gift `{sku}` in the catalog"),
            )
        })?;
        if self.gifts_pending.len() >= GIFTS_PENDING_MAX {
            return Err(Refusal::retry_after(
                ErrorCode::RateLimited,
                "too many gifts in flight",
                1000,
            ));
        }
        self.buckets(&identity.user, now_ms)
            .gifts
            .take(1, now_ms)
            .map_err(|wait| Refusal::retry_after(ErrorCode::RateLimited, "slow down", wait))?;
        let request = self.next_charge_request;
        self.next_charge_request += 1;
        let pending = PendingGift {
            connection,
            client_id,
            name: identity.name.clone(),
            charge: ChargeRequest {
                request,
                gift_id,
                user: identity.user.clone(),
                sku,
                qty,
                amount: price * u64::from(qty),
            },
            recovered: false,
        };
        self.outputs
            .push_back(Output::Store(StorageOp::put_pending_gift(&pending)));
        self.outputs
            .push_back(Output::Charge(pending.charge.clone()));
        self.gifts_pending.insert(request, pending);
        Ok(())
    }

    /// The settlement service's answer to [`Output::Charge`].
    pub fn charge_result(&mut self, request: u64, outcome: ChargeOutcome, now_ms: u64) {
        let pending = self
            .gifts_pending
            .remove(&request)
            .expect("every charge result answers a pending request");
        self.outputs
            .push_back(Output::Store(StorageOp::delete_pending_gift(request)));
        let connected = self.connections.contains_key(&pending.connection);
        match outcome {
            ChargeOutcome::Charged { balance, replayed } => {
                let mut seq = None;
                // A replayed answer to a recovered request is a charge made before the
                // crash; it is announced unless this gift id already was.
                let fresh = !replayed || pending.recovered;
                if fresh
                    && !self.announced(&pending.charge.user, &pending.charge.gift_id)
                    && self.status == RoomStatus::Live
                {
                    let body = ActionBody::Gift {
                        sku: pending.charge.sku.clone(),
                        qty: pending.charge.qty,
                        amount: pending.charge.amount,
                    };
                    seq = Some(self.push_action(
                        &pending.charge.user,
                        &pending.name,
                        body,
                        None,
                        now_ms,
                    ));
                    self.add_to_leaderboard(
                        &pending.charge.user,
                        &pending.name,
                        &pending.charge.gift_id,
                        pending.charge.amount,
                        now_ms,
                    );
                }
                if connected {
                    let ack = Event::Ack {
                        client_id: pending.client_id,
                        seq,
                    };
                    self.enqueue(pending.connection, ack, now_ms);
                    self.enqueue(pending.connection, Event::Balance { balance }, now_ms);
                }
            }
            ChargeOutcome::Refused { code, message } => {
                if connected {
                    self.refuse(
                        pending.connection,
                        Some(pending.client_id),
                        Refusal::new(code, message),
                        now_ms,
                    );
                }
            }
        }
    }

    fn announced(&self, user: &str, gift_id: &str) -> bool {
        self.gifters
            .get(user)
            .is_some_and(|g| g.recent_gift_ids.iter().any(|id| id == gift_id))
    }

    /// Total gifted per user (what the `leaderboard` part ranks).
    pub fn gift_totals(&self) -> impl Iterator<Item = (&str, u64)> {
        self.gifters
            .iter()
            .map(|(user, g)| (user.as_str(), g.total))
    }

    /// Gifts waiting for their charge.
    pub fn gifts_pending(&self) -> usize {
        self.gifts_pending.len()
    }

    fn add_to_leaderboard(
        &mut self,
        user: &str,
        name: &str,
        gift_id: &str,
        amount: u64,
        now_ms: u64,
    ) {
        if !self.gifters.contains_key(user) && self.gifters.len() >= GIFTERS_MAX {
            return; // bounded: later gifters are announced but not ranked
        }
        let gifter = self
            .gifters
            .entry(user.to_owned())
            .or_insert_with(|| Gifter {
                name: name.to_owned(),
                total: 0,
                recent_gift_ids: VecDeque::new(),
            });
        gifter.total += amount;
        gifter.recent_gift_ids.push_back(gift_id.to_owned());
        while gifter.recent_gift_ids.len() > GIFT_IDS_REMEMBERED_PER_USER_MAX {
            gifter.recent_gift_ids.pop_front();
        }
        let record = StorageOp::put_gifter(user, gifter);
        self.outputs.push_back(Output::Store(record));
        let mut ranked: Vec<(&String, &Gifter)> = self.gifters.iter().collect();
        ranked.sort_by(|a, b| b.1.total.cmp(&a.1.total).then_with(|| a.0.cmp(b.0)));
        let top: Vec<serde_json::Value> = ranked
            .into_iter()
            .take(LEADERBOARD_ENTRIES_MAX)
            .map(|(user, g)| serde_json::json!({ "user": user, "name": g.name, "total": g.total }))
            .collect();
        let value = serde_json::Value::Array(top).to_string();
        self.put_part("leaderboard".into(), value, now_ms);
    }

    fn send_direct(
        &mut self,
        from_user: &str,
        to_user: &str,
        payload: String,
        now_ms: u64,
    ) -> Result<u32, AdminError> {
        if to_user.is_empty() {
            return Err(AdminError::Empty { field: "to_user" });
        }
        check_json(&payload, "payload", DIRECT_PAYLOAD_BYTES_MAX)?;
        let event = Event::Direct {
            from: from_user.to_owned(),
            payload,
            ts_ms: now_ms,
        };
        Ok(self.send_to_user(to_user, event, now_ms))
    }

    fn set_part(&mut self, name: String, value: String, now_ms: u64) -> Result<u64, AdminError> {
        if self.status == RoomStatus::Ended {
            return Err(AdminError::RoomEnded);
        }
        if !is_valid_part_name(&name) {
            return Err(AdminError::InvalidPartName);
        }
        if RESERVED_PARTS.contains(&name.as_str()) {
            return Err(AdminError::ReservedPart);
        }
        check_json(&value, "value", PART_VALUE_BYTES_MAX)?;
        if !self.parts.contains_key(&name) && self.parts.len() >= PARTS_COUNT_MAX {
            return Err(AdminError::TooManyParts);
        }
        Ok(self.put_part(name, value, now_ms))
    }

    fn put_part(&mut self, name: String, value: String, now_ms: u64) -> u64 {
        self.total_version += 1;
        let version = self.total_version;
        self.outputs
            .push_back(Output::Store(StorageOp::put_part(&name, version, &value)));
        self.parts.insert(
            name.clone(),
            PartState {
                version,
                value: value.clone(),
            },
        );
        // The part record replaces the previous version in storage, so the meta that
        // counts it is written with it: a crash never leaves a part newer than the room.
        self.meta_dirty = true;
        self.flush_meta();
        self.broadcast(
            Event::Part {
                name,
                version,
                value,
            },
            now_ms,
        );
        self.broadcast(
            Event::Version {
                epoch: self.epoch,
                total_version: self.total_version,
            },
            now_ms,
        );
        version
    }

    fn update_room_part(&mut self) {
        let value = serde_json::json!({
            "id": self.info.room_id,
            "title": self.info.title,
            "host": self.info.host_user,
            "status": self.status.as_str(),
            "expected_audience": self.info.expected_audience,
        })
        .to_string();
        let now_ms = self.created_ms;
        self.put_part("room".into(), value, now_ms);
    }

    /// An admin API command, already authorized.
    pub fn admin(&mut self, command: AdminCommand, now_ms: u64) -> Result<AdminReply, AdminError> {
        if self.status == RoomStatus::Ended {
            return Err(AdminError::RoomEnded);
        }
        match command {
            AdminCommand::SetPart { name, value } => {
                let version = self.set_part(name, value, now_ms)?;
                Ok(AdminReply::PartSet { version })
            }
            AdminCommand::Broadcast {
                from_user,
                from_name,
                text,
            } => {
                if text.trim().is_empty() {
                    return Err(AdminError::Empty { field: "text" });
                }
                if text.len() > SYSTEM_MESSAGE_BYTES_MAX {
                    return Err(AdminError::TooLong {
                        field: "text",
                        bytes_max: SYSTEM_MESSAGE_BYTES_MAX,
                    });
                }
                let seq = self.push_action(
                    &from_user,
                    &from_name,
                    ActionBody::System { text },
                    None,
                    now_ms,
                );
                Ok(AdminReply::Broadcast { seq })
            }
            AdminCommand::Staff { by, command } => self.staff(&by, command, now_ms),
            AdminCommand::Direct {
                from_user,
                to_user,
                payload,
            } => {
                let connections = self.send_direct(&from_user, &to_user, payload, now_ms)?;
                Ok(AdminReply::Direct { connections })
            }
            AdminCommand::SetShards { shards } => {
                let shards = self.set_shards(shards, now_ms)?;
                Ok(AdminReply::Done(serde_json::json!({ "shards": shards })))
            }
            AdminCommand::End => {
                self.status = RoomStatus::Ended;
                self.meta_dirty = true;
                self.update_room_part();
                self.broadcast(Event::RoomEnded, now_ms);
                self.flush(now_ms);
                let ids: Vec<ConnectionId> = self.connections.keys().copied().collect();
                for id in ids {
                    self.close(id, CloseCode::RoomEnded, String::new(), now_ms);
                }
                self.flush_meta();
                Ok(AdminReply::Ended)
            }
        }
    }

    fn broadcast(&mut self, event: Event, now_ms: u64) {
        let ids: Vec<ConnectionId> = self
            .connections
            .iter()
            .filter(|(_, c)| c.ready && c.remote.is_none())
            .map(|(id, _)| *id)
            .collect();
        if self.shards.is_sharded() {
            self.shards.broadcast.push(event.clone());
        }
        for id in ids {
            self.enqueue(id, event.clone(), now_ms);
        }
        self.schedule_tick(now_ms);
    }

    fn enqueue(&mut self, connection: ConnectionId, event: Event, now_ms: u64) {
        let conn = self
            .connections
            .get_mut(&connection)
            .expect("live connection");
        if conn.outbox.len() >= OUTBOX_EVENTS_MAX {
            // Output waits at most a tick, so a full outbox means more events in one tick
            // than a viewer could read: the newer ones are left out, and dropped actions
            // are told as a `Gap` rather than left a silent hole.
            if let Event::Action(action) = &event {
                let first = conn.outbox_dropped.map_or(action.seq, |(first, _)| first);
                conn.outbox_dropped = Some((first, action.seq));
            }
            self.stats.dropped += 1;
            return;
        }
        conn.outbox.push(event);
        self.schedule_tick(now_ms);
    }

    /// Leading edge in a quiet room: output after `FLUSH_QUIET_TICKS` ticks without a
    /// flush goes out at once (one comment a second need not wait for a tick). In a busy
    /// room output waits a tick for more to join it, as batching pays there (at 1,000
    /// viewers and 20 comments a second, flushing each comment at once cost 1.7x the
    /// CPU). Either way a connection gets at most one frame per tick.
    fn schedule_tick(&mut self, now_ms: u64) {
        if self.tick_at_ms.is_none() {
            let tick_ms = self.tick_ms();
            let quiet = self
                .last_flush_ms
                .is_none_or(|last| now_ms >= last + FLUSH_QUIET_TICKS * tick_ms);
            self.tick_at_ms = Some(if quiet { now_ms } else { now_ms + tick_ms });
        }
    }

    /// How long output waits to be batched now: stretched with the sockets one object's
    /// fan-out reaches each tick, the room's own or the widest shard's (a shard sends the
    /// room's batch to its viewers as it arrives), so no object's thread is flooded with
    /// one frame per socket every 50 ms; and, with many shards, no shorter than keeps
    /// the room's batches to them under `ROOM_SHARD_BATCHES_PER_S_TARGET` (see
    /// `limits::room_tick_ms_for`).
    pub fn tick_ms(&self) -> u64 {
        let widest_shard = self.shard_online().map(|(_, n)| n).max().unwrap_or(0);
        let reached = self.local_connections().max(widest_shard as usize);
        let reached = u64::try_from(reached).expect("usize fits u64");
        room_tick_ms_for(reached, self.shards.current())
    }

    /// When the host must call [`Room::handle_timeout`] next.
    pub fn poll_timeout(&self) -> Option<u64> {
        let sockets = self
            .connections
            .values()
            .filter(|c| c.remote.is_none())
            .map(|c| c.liveness.deadline());
        let refresh = (self.local_connections() > 0 || self.shards.is_sharded())
            .then_some(self.online_refresh_at_ms);
        self.tick_at_ms
            .into_iter()
            .chain(self.interaction_deadline())
            .chain(sockets)
            .chain(refresh)
            .min()
    }

    /// Whether output is waiting for a tick (the host flushes soon, not via an alarm).
    pub fn tick_pending(&self) -> Option<u64> {
        self.tick_at_ms
    }

    pub fn handle_timeout(&mut self, now_ms: u64) {
        let sockets = self
            .connections
            .iter_mut()
            .filter(|(_, c)| c.remote.is_none())
            .map(|(&id, c)| (id, &mut c.liveness));
        let due = liveness::sweep(sockets, now_ms);
        for id in due.expired {
            self.enqueue(
                id,
                Event::GoAway {
                    reconnect_delay_ms: 0,
                },
                now_ms,
            );
        }
        for id in due.overdue {
            self.close(id, CloseCode::GoingAway, String::new(), now_ms);
        }
        for id in due.stale {
            self.close(id, CloseCode::Stale, "no heartbeat".into(), now_ms);
        }
        for id in due.no_hello {
            let detail = format!("no Hello within {HELLO_DEADLINE_MS} ms");
            self.close(id, CloseCode::HelloTimeout, detail, now_ms);
        }
        if (self.local_connections() > 0 || self.shards.is_sharded())
            && self.online_refresh_at_ms <= now_ms
        {
            self.online_published = None; // forces a republish
            self.online_refresh_at_ms = now_ms + ONLINE_REFRESH_MS;
            self.schedule_tick(now_ms);
        }
        self.close_due_interactions(now_ms);
        if self.tick_at_ms.is_some_and(|at| at <= now_ms) {
            // The tick may have grown since the flush was scheduled (more sockets or
            // shards): a tick after the last flush, by today's tick, at the earliest.
            let earliest = self
                .last_flush_ms
                .map_or(now_ms, |last| last + self.tick_ms());
            if now_ms >= earliest {
                self.flush(now_ms);
            } else {
                self.tick_at_ms = Some(earliest);
            }
        }
    }

    /// Sends every connection its batch for this tick.
    fn flush(&mut self, now_ms: u64) {
        self.publish_tallies(now_ms);
        self.publish_interactions(now_ms);
        self.tick_at_ms = None;
        self.last_flush_ms = Some(now_ms);
        self.actions_this_tick = 0;
        self.evict_old_actions(now_ms);
        if self.likes_dirty {
            self.likes_dirty = false;
            self.broadcast_now(Event::Likes {
                total: self.likes_total,
            });
        }
        // A changed count goes out at most once per interval: in a big room someone
        // joins or leaves nearly every tick, and each publication is a frame to every
        // viewer. A deferred change is published by the refresh, moved forward for it.
        let online = self.online();
        let differs = self.online_published != Some(online);
        let changed = differs
            && (self.online_published.is_none() || self.online_publish_earliest_ms <= now_ms);
        if changed {
            self.online_published = Some(online);
            self.online_refresh_at_ms = now_ms + ONLINE_REFRESH_MS;
            self.online_publish_earliest_ms = now_ms + ONLINE_PUBLISH_INTERVAL_MS;
        } else if differs {
            self.online_refresh_at_ms = self
                .online_refresh_at_ms
                .min(self.online_publish_earliest_ms);
        }
        for conn in self
            .connections
            .values_mut()
            .filter(|c| c.ready && c.remote.is_none())
        {
            if (changed || conn.needs_online) && conn.outbox.len() < OUTBOX_EVENTS_MAX {
                conn.outbox.push(Event::Online { count: online });
            }
            conn.needs_online = false;
        }
        // Persist before sending: nothing acknowledged may be lost by a crash.
        self.flush_meta();
        if !self.likes_acked.is_empty() {
            let frames = std::mem::take(&mut self.likes_acked);
            self.outputs
                .push_back(Output::Store(StorageOp::put_likes_last(&frames)));
        }
        // Connections with the same batch (most of them, most ticks: only broadcasts) share
        // one encoding. Only the last few groups are compared, so a tick where every
        // connection has something of its own stays linear.
        let mut groups: Vec<(Vec<Event>, Vec<ConnectionId>)> = Vec::new();
        for (&connection, conn) in self.connections.iter_mut() {
            if conn.outbox.is_empty() || conn.remote.is_some() {
                continue;
            }
            let mut events = std::mem::take(&mut conn.outbox);
            if let Some((first, last)) = conn.outbox_dropped.take() {
                events.push(Event::Gap {
                    missed_after: first - 1,
                    resumed_from: last + 1,
                });
            }
            let recent = groups.iter_mut().rev().take(SHARED_BATCH_GROUPS_COMPARED);
            match recent.into_iter().find(|(e, _)| *e == events) {
                Some((_, connections)) => connections.push(connection),
                None => groups.push((events, vec![connection])),
            }
        }
        for (events, connections) in groups {
            // One frame, unless that would pass SERVER_FRAME_BYTES_MAX (clients refuse it).
            for frame in ServerFrame::batches(now_ms, events) {
                self.stats.frames_out += connections.len() as u64;
                self.stats.bytes_out += (frame.len() * connections.len()) as u64;
                let connections = connections.clone();
                self.outputs.push_back(Output::Send { connections, frame });
            }
        }
        self.flush_shards(now_ms, changed);
    }

    /// Adds to every ready outbox without scheduling (we are flushing now).
    fn broadcast_now(&mut self, event: Event) {
        if self.shards.is_sharded() {
            self.shards.broadcast.push(event.clone());
        }
        for conn in self
            .connections
            .values_mut()
            .filter(|c| c.ready && c.remote.is_none())
        {
            if conn.outbox.len() < OUTBOX_EVENTS_MAX {
                conn.outbox.push(event.clone());
            } else {
                self.stats.dropped += 1;
            }
        }
    }

    fn flush_meta(&mut self) {
        if self.meta_dirty {
            self.meta_dirty = false;
            self.outputs
                .push_back(Output::Store(StorageOp::put_meta(self)));
        }
    }

    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    // ---- Polls ----

    /// The room's latest poll: id, phase, tallies.
    pub fn poll(&self) -> Option<(String, PollPhase, &[u64])> {
        self.poll
            .as_ref()
            .map(|p| (p.id(), p.record.phase, p.tallies()))
    }

    fn create_poll(&mut self, spec: PollSpec, now_ms: u64) -> Result<AdminReply, AdminError> {
        spec.validate().map_err(AdminError::InvalidPoll)?;
        if self
            .poll
            .as_ref()
            .is_some_and(|p| p.record.phase == PollPhase::Open)
        {
            return Err(AdminError::PollOpen);
        }
        let number = self.poll.as_ref().map_or(1, |p| p.record.number + 1);
        // The previous poll's votes are no longer needed (its result is in the log).
        if let Some(previous) = &self.poll {
            let id = previous.id();
            for user in previous.voters() {
                self.outputs
                    .push_back(Output::Store(StorageOp::delete_vote(&id, user)));
            }
        }
        self.poll = Some(polls::Poll::open(number, spec, now_ms));
        self.poll_changed(|_| true, now_ms);
        Ok(self.poll_reply())
    }

    fn find_poll(&self, id: &str) -> Result<(), AdminError> {
        match &self.poll {
            Some(poll) if poll.id() == id => Ok(()),
            _ => Err(AdminError::PollNotFound),
        }
    }

    fn poll_reply(&self) -> AdminReply {
        let poll = self.poll.as_ref().expect("a poll exists");
        AdminReply::Poll {
            id: poll.id(),
            phase: poll.record.phase,
            tallies: poll.tallies().to_vec(),
        }
    }

    /// Applies a phase change; when it changed anything, stores the record and publishes
    /// the `poll` part (and the tallies to hosts) in the next tick.
    fn poll_changed(&mut self, change: impl FnOnce(&mut polls::Poll) -> bool, now_ms: u64) {
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

    fn on_vote(
        &mut self,
        identity: &Identity,
        poll_id: &str,
        option: u8,
        now_ms: u64,
    ) -> Result<Option<u64>, Refusal> {
        let Some(poll) = self.poll.as_mut().filter(|p| p.id() == poll_id) else {
            return Err(Refusal::new(ErrorCode::NotFound, "no such poll"));
        };
        match poll.vote(&identity.user, option) {
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
    fn publish_tallies(&mut self, now_ms: u64) {
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

/// A user's rate-limit buckets, created full; above `RATE_BUCKETS_MAX` users the least
/// recently used is forgotten (a forgotten user starts with a full bucket, which is what a
/// long-idle user would have anyway).
pub(crate) fn bucket_entry<'a>(
    buckets: &'a mut HashMap<String, UserBuckets>,
    user: &str,
    now_ms: u64,
) -> &'a mut UserBuckets {
    if !buckets.contains_key(user) && buckets.len() >= RATE_BUCKETS_MAX {
        let oldest = buckets
            .iter()
            .min_by_key(|(_, b)| b.used_ms)
            .map(|(u, _)| u.clone())
            .expect("non-empty");
        buckets.remove(&oldest);
    }
    let entry = buckets
        .entry(user.to_owned())
        .or_insert_with(|| UserBuckets::new(now_ms));
    entry.used_ms = now_ms;
    entry
}

fn is_comment_body(body: &ActionBody) -> bool {
    matches!(body, ActionBody::Comment { .. })
}

fn conn_needs_online(room: &mut Room, connection: ConnectionId) {
    room.connections
        .get_mut(&connection)
        .expect("live connection")
        .needs_online = true;
}

fn admin_error_code(error: &AdminError) -> ErrorCode {
    match error {
        AdminError::RoomEnded => ErrorCode::RoomEnded,
        AdminError::TooLong { .. } => ErrorCode::TooLong,
        AdminError::TooManyParts | AdminError::TooManyRooms => ErrorCode::TooMany,
        AdminError::ReservedPart | AdminError::Forbidden => ErrorCode::Forbidden,
        AdminError::InvalidPartName
        | AdminError::InvalidJson
        | AdminError::Empty { .. }
        | AdminError::InvalidPoll(_)
        | AdminError::PollOpen
        | AdminError::Invalid(_)
        | AdminError::Refused(_) => ErrorCode::Invalid,
        AdminError::PollNotFound | AdminError::NotFound(_) => ErrorCode::NotFound,
    }
}

fn check_json(text: &str, field: &'static str, bytes_max: usize) -> Result<(), AdminError> {
    if text.len() > bytes_max {
        return Err(AdminError::TooLong { field, bytes_max });
    }
    serde_json::from_str::<serde::de::IgnoredAny>(text)
        .map(|_| ())
        .map_err(|_| AdminError::InvalidJson)
}

#[cfg(test)]
mod tests;
