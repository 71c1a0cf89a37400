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
mod api;
mod audience;
mod connections;
mod directory;
mod dispatch;
mod flush;
mod gifts;
mod liveness;
mod moderation;
mod parts;
mod polls;
mod products;
mod purge;
mod qa;
mod quiz;
mod ring;
mod settlement;
mod shard;
mod shard_outbox;
mod shard_routes;
mod sharding;
mod staff;
mod store;
mod welcome;

use ovation_proto::limits::*;
use ovation_proto::{
    is_valid_part_name, Action, ActionBody, ClientFrame, CloseCode, DecodeError, ErrorCode, Event,
    Hello, Role, ServerFrame, Welcome, PROTOCOL_VERSION,
};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

pub use admission::{Admitted, RateRefused, RoomAnswer, UserRateLimiter, UserRoomKey};
pub use api::*;
use audience::*;
use connections::*;
pub use directory::{AdmittedEntry, DirectoryPage, DirectoryQuery, Listed, OpeningSeen};
use dispatch::*;
use flush::Pacing;
pub use gifts::default_gift_catalog;
use gifts::*;
pub use moderation::AuditEntry;
pub use ovation_proto::TokenBucket;
pub use parts::PartRead;
use parts::*;
pub use polls::{PollPhase, PollSpec};
pub use products::ProductCard;
pub use qa::QaStatus;
pub use quiz::{QuizPhase, QuizQuestionSpec, QuizSpec};
pub use settlement::{
    charge_outcome, gift_request_body, ledger_room_account, ledger_user_account,
    SETTLEMENT_UNAVAILABLE_MESSAGE,
};
pub use shard::{Shard, ShardOutput, UpAnswer};
pub use shard_outbox::ShardOutbox;
pub use shard_routes::{shard_for, RememberedRoute, RoomKey, ShardPlacement, ShardRoutes};
pub use staff::{StaffCommand, SYSTEM_SENDER};
pub use store::{
    RestoreError, RoomLoader, StorageOp, ANSWER_KEYS_END, ANSWER_KEYS_START, HOST_KEY_PREFIX,
    META_KEY,
};
use welcome::*;

pub type ConnectionId = u64;

/// Parts the room itself owns; the admin API and hosts cannot overwrite them.
pub const RESERVED_PARTS: [&str; ovation_proto::limits::PARTS_RESERVED_MAX] = [
    "room",
    "leaderboard",
    "poll",
    "quiz",
    "qa",
    "product",
    "announcement",
];

pub struct Room {
    info: RoomInfo,
    status: RoomStatus,
    epoch: u64,
    parts: PartSet,
    ring: ring::ActionRing,
    likes_total: u64,
    created_ms: u64,

    connections: Audience<Connection>,
    /// Viewers' reads over HTTP (`admit_read`), bounded like the Worker's limiter.
    read_limiter: UserRateLimiter,
    /// Connections of `connections` that are ready (`Hello` done) and not remote.
    ready_local: usize,
    /// The tick's broadcasts to the room's own ready connections, held once, not copied
    /// into every outbox: a host's 8 KiB part set 40 times in a tick was 320 KiB per
    /// socket, a gigabyte at a few thousand sockets. At most `OUTBOX_EVENTS_MAX`; the
    /// actions past it are told as one `Gap` (`shared_dropped`, first and last seq).
    shared: Vec<Event>,
    shared_dropped: Option<flush::LeftOut>,

    likes_dirty: bool,
    /// A changed total is not published before this (`LIKES_PUBLISH_INTERVAL_MS`), unless
    /// a flush goes out for other output.
    likes_publish_earliest_ms: u64,
    meta_dirty: bool,
    /// Frames (user, client id) acknowledged this tick without a sequence number whose
    /// effect is stored by the tick's end (likes, product clicks, commands, parts,
    /// questions: `on_frame`), stored with the like total (as `likes_last`, named when it
    /// held likes only): a room restored after a crash acknowledges their retries again
    /// rather than applying them twice.
    unsequenced_acked: Vec<(String, u64)>,
    online_published: Option<u32>,
    online_refresh_at_ms: u64,
    /// A changed count is not published before this (`ONLINE_PUBLISH_INTERVAL_MS`).
    online_publish_earliest_ms: u64,
    /// When the local sockets' liveness next has something due.
    sweep_clock: liveness::SweepClock,
    /// Silence after which a socket is stale (`set_stale_socket_ms`).
    stale_socket_ms: u64,
    /// When output goes out (the flush rule).
    pacing: Pacing,
    /// The room's own bound on actions, whatever its flushes (`ROOM_ACTIONS_PER_S_MAX`).
    actions_allowance: TokenBucket,
    outputs: VecDeque<Output>,
    stats: RoomStats,

    pub(crate) gifts: Gifts,
    /// The latest poll (open, closed or revealed), stored as `poll` + `vote/<id>/<user>`.
    pub(crate) poll: Option<polls::Poll>,
    /// The latest quiz, stored as `quiz` + `answer/<id>/<question>/<user>`.
    pub(crate) quiz: Option<quiz::Quiz>,
    /// Score notices not sent yet (a few each flush): the last scored question's, and
    /// the final ones of a quiz replaced before they all went (at most two quizzes').
    pub(crate) score_notices: VecDeque<quiz::ScoreNotices>,
    /// Answers came in since staff were last told the count.
    pub(crate) quiz_answers_dirty: bool,
    pub(crate) qa: qa::Qa,
    pub(crate) products: products::Products,
    pub(crate) moderation: moderation::Moderation,
    pub(crate) shards: sharding::Shards,
    /// Records of a replaced poll or quiz, deleted a bounded number a tick.
    pub(crate) purge: purge::Purge,
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
            parts: PartSet::default(),
            ring: ring::ActionRing::default(),
            likes_total: 0,
            created_ms: now_ms,
            connections: Audience::default(),
            ready_local: 0,
            shared: Vec::new(),
            shared_dropped: None,
            likes_dirty: false,
            likes_publish_earliest_ms: now_ms,
            meta_dirty: false,
            unsequenced_acked: Vec::new(),
            online_published: None,
            online_refresh_at_ms: now_ms,
            online_publish_earliest_ms: now_ms,
            sweep_clock: liveness::SweepClock::default(),
            stale_socket_ms: STALE_SOCKET_MS,
            pacing: Pacing::new(now_ms),
            actions_allowance: TokenBucket::new_full(
                u32::try_from(ROOM_ACTIONS_PER_S_MAX).expect("a small rate"),
                u32::try_from(ROOM_ACTIONS_BURST).expect("a small burst"),
                now_ms,
            ),
            outputs: VecDeque::new(),
            stats: RoomStats::default(),
            gifts: Gifts::default(),
            poll: None,
            quiz: None,
            score_notices: VecDeque::new(),
            quiz_answers_dirty: false,
            qa: qa::Qa::default(),
            products: products::Products::default(),
            moderation: moderation::Moderation::default(),
            shards: sharding::Shards::default(),
            read_limiter: UserRateLimiter::for_reads(),
            purge: purge::Purge::default(),
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
        self.parts.total_version()
    }

    pub fn last_seq(&self) -> u64 {
        self.ring.last_seq()
    }

    pub fn likes_total(&self) -> u64 {
        self.likes_total
    }

    pub fn created_ms(&self) -> u64 {
        self.created_ms
    }

    pub fn stats(&self) -> RoomStats {
        let mut stats = self.stats.clone();
        stats.connections = self.online();
        stats
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
                // Asked now, so the host settles the room after their answers.
                self.retry_recovered_charges(None);
                // No one is left to tell.
                self.score_notices.clear();
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

    // ---- Polls ----
}

#[cfg(test)]
mod tests;
