//! A shard of a big room: holds a share of the viewers' sockets (placed by
//! `ovation_proto::shard_of`), answers what needs no single place (Hello, Ping, likes,
//! repeated votes and answers), rate-limits its clients, and forwards the rest to the
//! room once per tick. It keeps a copy of the room's state (parts, recent actions,
//! counters) from the room's batches, so joins and resumes never reach the room.
//!
//! Sans-IO like [`crate::Room`]: `now_ms` is a parameter; outputs are drained with
//! [`Shard::poll_output`]; the host arms a timer for [`Shard::poll_timeout`].

use crate::audience::{Audience, Member};
use crate::liveness::{self, Liveness, SweepClock};
use crate::ring::ActionRing;
use crate::Refusal;
use crate::{ConnectionId, Identity, LogRecord, PartSet, RoomView, UserBuckets};
use ovation_proto::limits::*;
use ovation_proto::{
    ClientFrame, CloseCode, DecodeError, ErrorCode, Event, Hello, RelayedFrame, ServerFrame,
    ShardDown, ShardUp, Snapshot, PROTOCOL_VERSION,
};
use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};

mod delivery;
mod mirror;
mod relay;
mod viewers;

use delivery::InFlight;
pub use delivery::UpAnswer;
use mirror::*;
use viewers::*;

/// What the host must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ShardOutput {
    /// Send this encoded `ServerFrame` to each of these connections (encoded once: most
    /// ticks every viewer gets the same batch).
    Send {
        connections: Vec<ConnectionId>,
        frame: Vec<u8>,
    },
    /// Close the socket; the shard has already forgotten the connection.
    Close {
        connection: ConnectionId,
        code: CloseCode,
    },
    /// An encoded [`ShardUp`] for the room, numbered `seq`: one at a time, the next
    /// after the host reported this one's answer ([`Shard::up_answered`]).
    Up {
        seq: u64,
        batch: Vec<u8>,
    },
    /// The shard's record, to store under one key (replacing the last). The host starts
    /// this write before it sends anything that comes after it (the platform then holds
    /// those sends until the write is durable); a shard started from it is
    /// [`Shard::restore`]d.
    Persist(Vec<u8>),
    Log(LogRecord),
}

/// Counters since the shard object last woke.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ShardStats {
    pub frames_in: u64,
    pub frames_out: u64,
    pub bytes_out: u64,
    /// Frames forwarded to the room, and frames answered here.
    pub forwarded: u64,
    pub answered_here: u64,
    pub batches_up: u64,
    /// Batches up whose request failed, sent again, and refused for good.
    pub batches_up_failed: u64,
    pub batches_up_resent: u64,
    /// Batches up given up (refused or failed past their bounds), logged with their likes.
    pub batches_up_dropped: u64,
    pub batches_down: u64,
    pub snapshots: u64,
    /// Batches from the room that did not follow the previous one (a snapshot follows).
    pub gaps: u64,
    pub rate_limited: u64,
    /// Frames of sockets of an opening that ended, not sent up once the room's state
    /// named a new opening (their sockets closed `4002` to reconnect into it).
    pub frames_of_an_ended_opening: u64,
}

#[derive(Debug)]
struct ShardConnection {
    identity: Identity,
    ready: bool,
    /// The opening (epoch) this socket was welcomed into: the room's state's when the
    /// shard welcomed it, the last one the shard knew of for a socket reattached after a
    /// restart (0: none known). A state of another opening closes it (`relay.rs`).
    welcomed_in: u64,
    hello_seen: bool,
    /// A Hello that came before the shard had the room's state, or that names another
    /// opening than the copy's (answered when the room's state comes).
    waiting: Option<Hello>,
    /// The opening the room object placed this socket in just now: `None` for a route
    /// from the router's memory (vouched for: its opening is the copy's) and a socket
    /// reattached after a restart. Over the opening a client's Hello resumes, it says
    /// which opening the socket is for.
    placed_in: Option<u64>,
    outbox: Vec<Event>,
    /// Runs of its own actions left out and not told yet (a full outbox, the held
    /// actions' bound, or the room's outbox for it; at most `OWN_GAPS_PER_FLUSH_MAX`):
    /// each told as a `Gap` at the first flush after the held actions go, as the room
    /// tells its own connections (`Connection::outbox_dropped`).
    outbox_dropped: Vec<crate::flush::LeftOut>,
    /// Broadcast events of this flush from this index on are new to the connection.
    shared_from: usize,
    frames: crate::audience::FrameRate,
    liveness: Liveness,
}

impl Member for ShardConnection {
    fn identity(&self) -> &Identity {
        &self.identity
    }
}

pub struct Shard {
    index: u16,
    mirror: Option<Mirror>,
    /// The number of the room's last batch applied.
    down_seq: u64,
    needs_snapshot: bool,
    snapshot_asked_at_ms: Option<u64>,
    /// A returning client named an opening other than the copy's: its Hello waits for
    /// the room's state (the copy may be of an opening that ended, if this shard missed
    /// the end and the next start). Asked at most once per `SHARD_SNAPSHOT_RETRY_MS`
    /// (`opening_check_asked_at_ms` is not reset by the state's coming), so sockets
    /// that name made-up openings cost the room one state a second per shard at most.
    opening_check_wanted: bool,
    opening_check_asked_at_ms: Option<u64>,
    connections: Audience<ShardConnection>,
    banned: BTreeSet<String>,
    /// Users whose choice the room accepted, for the latest poll / quiz question.
    chosen: HashMap<Choice, HashSet<String>>,
    pending_choices: HashMap<(ConnectionId, u64), (Choice, String)>,
    /// The users of the sockets closed last (`SHARD_CLOSED_SOCKETS_REMEMBERED_MAX`).
    closed_recently: VecDeque<(ConnectionId, String)>,
    likes_pending: u64,
    /// The last opening (epoch) whose state this shard had, kept in its record (0: none
    /// yet): the one its pending likes were taken in, its copy's when it has one
    /// (`stamp_likes` runs at each state), and what a batch up is stamped with.
    epoch_known: u64,
    /// Likes taken while the shard had no copy of the room (woken from hibernation, its
    /// sockets survived): the snapshot names their opening (`stamp_likes`).
    likes_unstamped: u64,
    /// Like frames (user, client id) acknowledged in the coming flush, and those of the
    /// last flush that had any (in the record: a frame retried after a crash lost its
    /// ack is acknowledged, not counted again).
    likes_acked: Vec<(String, u64)>,
    likes_last: Vec<(String, u64)>,
    /// Actions for single connections (comments shown to their senders only) that came
    /// while the shard awaited a snapshot: they go out after what it brings.
    held_actions: Vec<(ConnectionId, Event)>,
    /// The opening the held actions belong to (the copy's when they came).
    held_epoch: u64,
    up_frames: VecDeque<RelayedFrame>,
    online_reported: Option<u32>,
    /// Names this shard's numbering of its batches up (see `ShardUp::instance`).
    instance: u64,
    /// The number of the last batch up, and the highest the stored record reserved.
    up_seq: u64,
    up_seq_reserved: u64,
    up_in_flight: Option<InFlight>,
    /// The record changed since it was last emitted.
    record_dirty: bool,
    /// This flush's broadcast events (from the room's batch).
    shared: Vec<Event>,
    tick_at_ms: Option<u64>,
    /// When the sockets' liveness next has something due.
    sweep_clock: SweepClock,
    /// The room's shard count, from its last batch (0: none yet): it spaces the batches
    /// up (`shard_batch_interval_ms_for`).
    shards: u16,
    up_sent_at_ms: Option<u64>,
    /// A batch up waits for its interval until then.
    up_at_ms: Option<u64>,
    outputs: VecDeque<ShardOutput>,
    stats: ShardStats,
}

impl Shard {
    /// A shard that just started with no record: it asks the room for its state at once.
    /// `instance` is random (the host's), so its batches are never taken for repeats of
    /// an earlier run's.
    pub fn new(index: u16, instance: u64, now_ms: u64) -> Shard {
        assert!(index < SHARDS_PER_ROOM_MAX);
        Shard {
            index,
            mirror: None,
            down_seq: 0,
            needs_snapshot: true,
            snapshot_asked_at_ms: None,
            opening_check_wanted: false,
            opening_check_asked_at_ms: None,
            connections: Audience::default(),
            banned: BTreeSet::new(),
            chosen: HashMap::new(),
            pending_choices: HashMap::new(),
            closed_recently: VecDeque::new(),
            likes_pending: 0,
            epoch_known: 0,
            likes_unstamped: 0,
            likes_acked: Vec::new(),
            likes_last: Vec::new(),
            held_actions: Vec::new(),
            held_epoch: 0,
            up_frames: VecDeque::new(),
            online_reported: None,
            instance,
            up_seq: 0,
            up_seq_reserved: 0,
            up_in_flight: None,
            record_dirty: false,
            shared: Vec::new(),
            tick_at_ms: Some(now_ms),
            sweep_clock: SweepClock::default(),
            shards: 0,
            up_sent_at_ms: None,
            up_at_ms: None,
            outputs: VecDeque::new(),
            stats: ShardStats::default(),
        }
    }

    pub fn index(&self) -> u16 {
        self.index
    }

    /// Connections that finished their Hello (what the room adds up).
    pub fn online(&self) -> u32 {
        let ready = self.connections.values().filter(|c| c.ready).count();
        u32::try_from(ready).expect("bounded by CONNECTIONS_PER_ROOM_MAX")
    }

    pub fn has_state(&self) -> bool {
        self.mirror.is_some()
    }

    pub fn stats(&self) -> &ShardStats {
        &self.stats
    }

    /// Whether a socket the router placed from its memory (`ShardRoutes`) of the room's
    /// opening `epoch` goes back to the router to ask the room object. Only a shard that
    /// knows that opening is live takes it: a shard with no state yet (new, or woken from
    /// hibernation) cannot tell; once the room ended, or opened again (another epoch,
    /// perhaps with fewer shards or none), the memory's placement may not be the room's.
    /// A socket the room object placed is taken as before (told `RoomEnded`, or waiting
    /// for the state).
    pub fn refuses_remembered_route(&self, epoch: u64) -> bool {
        self.mirror
            .as_ref()
            .is_none_or(|m| m.ended || m.epoch != epoch)
    }

    pub fn connection_ids(&self) -> impl Iterator<Item = ConnectionId> + '_ {
        self.connections.keys().copied()
    }

    /// Registers a new socket (the client sends `Hello` first), placed in no opening in
    /// particular (`connect_placed`).
    pub fn connect(
        &mut self,
        connection: ConnectionId,
        identity: Identity,
        lifetime_ms: u64,
        now_ms: u64,
    ) -> Result<(), CloseCode> {
        self.connect_placed(connection, identity, lifetime_ms, None, now_ms)
    }

    /// Registers a new socket the room object placed in opening `placed_in` just now. A copy of another opening (this
    /// shard has not heard of the new one yet) neither refuses it for that opening's end
    /// or bans, which would tell a viewer of a live room that it ended, nor answers its
    /// Hello: that waits for the room's state.
    pub fn connect_placed(
        &mut self,
        connection: ConnectionId,
        identity: Identity,
        lifetime_ms: u64,
        placed_in: Option<u64>,
        now_ms: u64,
    ) -> Result<(), CloseCode> {
        assert!(!self.connections.contains_key(&connection));
        let copy_epoch = self.mirror.as_ref().map(|m| m.epoch);
        let copy_of_another = viewers::of_another_opening(copy_epoch, placed_in);
        let refusal = if self.banned.contains(&identity.user) && !copy_of_another {
            Some(CloseCode::Banned)
        } else if self
            .user_buckets(&identity.user, now_ms)
            .connects
            .take(1, now_ms)
            .is_err()
        {
            // The room's rule, on the user's shard; not logged (a flood of refusals).
            return Err(CloseCode::ConnectRateLimited);
        } else if self.mirror.as_ref().is_some_and(|m| m.ended) && !copy_of_another {
            Some(CloseCode::RoomEnded)
        } else {
            // The room's rule at its caps (a user's new sockets all land on this shard,
            // `shard_of`).
            let full = self.connections.len() >= CONNECTIONS_PER_ROOM_MAX;
            let held: Vec<_> = self
                .connections
                .of_user(&identity.user)
                .map(|id| (id, &self.connections[&id].liveness))
                .collect();
            match liveness::place_at_caps(full, &held, now_ms) {
                Ok(gone) => {
                    if let Some(gone) = gone {
                        self.close(gone, CloseCode::Stale, now_ms);
                    }
                    None
                }
                Err(code) => Some(code),
            }
        };
        if let Some(code) = refusal {
            self.log(
                "refusal",
                Some(connection),
                Some(&identity.user),
                code.reason(),
            );
            return Err(code);
        }
        let expires_at_ms = now_ms + lifetime_ms;
        self.insert(
            connection,
            identity,
            expires_at_ms,
            false,
            placed_in,
            now_ms,
        );
        Ok(())
    }

    /// Re-registers a socket that survived hibernation; one whose `Hello` was not heard
    /// (`hello_heard`) owes it within `HELLO_DEADLINE_MS` from now, as `Room::reattach`.
    /// Bans and the end need no check here: a restarted shard knows neither until the
    /// room's state arrives, and its snapshot closes those sockets (`shard/relay.rs`).
    pub fn reattach(
        &mut self,
        connection: ConnectionId,
        identity: Identity,
        expires_at_ms: u64,
        hello_heard: bool,
        now_ms: u64,
    ) {
        assert!(!self.connections.contains_key(&connection));
        self.insert(
            connection,
            identity,
            expires_at_ms,
            hello_heard,
            None,
            now_ms,
        );
    }

    /// Whether this socket's `Hello` was heard (see `Room::hello_heard`), also one still
    /// waiting for the room's state to be answered.
    pub fn hello_heard(&self, connection: ConnectionId) -> bool {
        self.connections
            .get(&connection)
            .is_some_and(|c| c.ready || c.hello_seen)
    }

    fn insert(
        &mut self,
        connection: ConnectionId,
        identity: Identity,
        expires_at_ms: u64,
        ready: bool,
        placed_in: Option<u64>,
        now_ms: u64,
    ) {
        let liveness = if ready {
            Liveness::reattached(expires_at_ms, now_ms, STALE_SOCKET_MS)
        } else {
            Liveness::opened(expires_at_ms, now_ms, STALE_SOCKET_MS)
        };
        self.sweep_clock.add(&liveness);
        self.connections.insert(
            connection,
            ShardConnection {
                identity,
                ready,
                welcomed_in: if ready { self.epoch_known } else { 0 },
                hello_seen: false,
                waiting: None,
                placed_in,
                outbox: Vec::new(),
                outbox_dropped: Vec::new(),
                shared_from: 0,
                frames: crate::audience::FrameRate::new(now_ms),
                liveness,
            },
        );
        self.schedule_tick(now_ms);
    }

    pub fn disconnect(&mut self, connection: ConnectionId, now_ms: u64) {
        if self.remove(connection).is_some() {
            self.schedule_tick(now_ms);
        }
    }

    fn remove(&mut self, connection: ConnectionId) -> Option<ShardConnection> {
        let removed = self.connections.remove(connection)?;
        if self.closed_recently.len() >= SHARD_CLOSED_SOCKETS_REMEMBERED_MAX {
            self.closed_recently.pop_front();
        }
        let user = removed.identity.user.clone();
        self.closed_recently.push_back((connection, user));
        Some(removed)
    }

    /// The user of a socket open now or closed lately.
    pub(crate) fn user_of(&self, connection: ConnectionId) -> Option<String> {
        if let Some(conn) = self.connections.get(&connection) {
            return Some(conn.identity.user.clone());
        }
        self.closed_recently
            .iter()
            .rev()
            .find(|(id, _)| *id == connection)
            .map(|(_, user)| user.clone())
    }

    fn close(&mut self, connection: ConnectionId, code: CloseCode, now_ms: u64) {
        if let Some(conn) = self.remove(connection) {
            if code != CloseCode::GoingAway && code != CloseCode::RoomEnded {
                self.log(
                    "close",
                    Some(connection),
                    Some(&conn.identity.user),
                    code.reason(),
                );
            }
            self.outputs
                .push_back(ShardOutput::Close { connection, code });
            self.schedule_tick(now_ms);
        }
    }

    /// A sign of life (the platform's heartbeat auto-response timestamp).
    pub fn touch(&mut self, connection: ConnectionId, at_ms: u64) {
        if let Some(conn) = self.connections.get_mut(&connection) {
            conn.liveness.seen(at_ms);
        }
    }

    /// The sockets this shard holds for a user (a user may be connected more than once).
    pub fn connections_of(&self, user: &str) -> Vec<ConnectionId> {
        self.connections.of_user(user).collect()
    }

    pub fn poll_output(&mut self) -> Option<ShardOutput> {
        self.outputs.pop_front()
    }

    fn log(
        &mut self,
        event: &'static str,
        connection: Option<ConnectionId>,
        user: Option<&str>,
        code: &'static str,
    ) {
        self.outputs.push_back(ShardOutput::Log(LogRecord {
            event,
            connection,
            user: user.map(str::to_owned),
            code,
            detail: format!("shard {}", self.index),
        }));
    }
}
