//! A shard of a big room: holds a share of the viewers' sockets (placed by
//! `ovation_proto::shard_of`), answers what needs no single place (Hello, Ping, likes,
//! repeated votes and answers), rate-limits its clients, and forwards the rest to the
//! room once per tick. It keeps a copy of the room's state (parts, recent actions,
//! counters) from the room's batches, so joins and resumes never reach the room.
//!
//! Sans-IO like [`crate::Room`]: `now_ms` is a parameter; outputs are drained with
//! [`Shard::poll_output`]; the host arms a timer for [`Shard::poll_timeout`].

use crate::liveness::{self, Liveness};
use crate::Refusal;
use crate::{ConnectionId, Identity, LogRecord, PartState, RoomView, UserBuckets};
use ovation_proto::limits::*;
use ovation_proto::{
    Action, ActionBody, ClientFrame, CloseCode, DecodeError, ErrorCode, Event, Hello, RelayedFrame,
    ServerFrame, ShardDown, ShardUp, Snapshot, TokenBucket, PROTOCOL_VERSION,
};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};

/// A `ShardUp`'s fields other than its frames (shard, flag, counts, the frames' length
/// prefix) take at most this many bytes in postcard (varints of at most 10 bytes each).
const SHARD_UP_FIELDS_BYTES_MAX: usize = 32;

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
    /// An encoded [`ShardUp`] for the room (in order, like the room's batches).
    Up(Vec<u8>),
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
    pub batches_down: u64,
    pub snapshots: u64,
    /// Batches from the room that did not follow the previous one (a snapshot follows).
    pub gaps: u64,
    pub rate_limited: u64,
}

/// The shard's copy of the room's state.
#[derive(Debug)]
struct Mirror {
    epoch: u64,
    total_version: u64,
    last_seq: u64,
    likes_total: u64,
    online: u32,
    ended: bool,
    parts: BTreeMap<String, PartState>,
    ring: VecDeque<Action>,
}

impl Mirror {
    fn from_snapshot(snapshot: Snapshot) -> Mirror {
        Mirror {
            epoch: snapshot.epoch,
            total_version: snapshot.total_version,
            last_seq: snapshot.last_seq,
            likes_total: snapshot.likes_total,
            online: snapshot.online,
            ended: snapshot.ended,
            parts: snapshot
                .parts
                .into_iter()
                .map(|(name, version, value)| (name, PartState { version, value }))
                .collect(),
            ring: snapshot.ring.into(),
        }
    }

    /// Applies one broadcast event (events older than the copy change nothing).
    fn apply(&mut self, event: &Event) {
        match event {
            Event::Part {
                name,
                version,
                value,
            } if self.parts.get(name).is_none_or(|p| p.version < *version) => {
                self.parts.insert(
                    name.clone(),
                    PartState {
                        version: *version,
                        value: value.clone(),
                    },
                );
            }
            Event::Version {
                epoch,
                total_version,
            } if *epoch == self.epoch => {
                self.total_version = self.total_version.max(*total_version);
            }
            Event::Action(action) if action.seq > self.last_seq => {
                self.last_seq = action.seq;
                if let ActionBody::Removed { seq } = action.body {
                    self.ring.retain(|a| a.seq != seq);
                }
                self.ring.push_back(action.clone());
                while self.ring.len() > RING_EVENTS_MAX {
                    self.ring.pop_front();
                }
            }
            Event::Likes { total } => self.likes_total = self.likes_total.max(*total),
            Event::Online { count } => self.online = *count,
            Event::RoomEnded => self.ended = true,
            _ => {}
        }
    }

    /// The events that turn a viewer served from `self` into one served from `newer`.
    fn missed(&self, newer: &Mirror) -> Vec<Event> {
        let mut events: Vec<Event> = newer
            .parts
            .iter()
            .filter(|(name, part)| {
                self.parts
                    .get(*name)
                    .is_none_or(|p| p.version < part.version)
            })
            .map(|(name, part)| Event::Part {
                name: name.clone(),
                version: part.version,
                value: part.value.clone(),
            })
            .collect();
        events.push(Event::Version {
            epoch: newer.epoch,
            total_version: newer.total_version,
        });
        let first = newer.ring.front().map_or(newer.last_seq + 1, |a| a.seq);
        if self.last_seq + 1 < first {
            events.push(Event::Gap {
                missed_after: self.last_seq,
                resumed_from: first,
            });
        }
        events.extend(
            newer
                .ring
                .iter()
                .filter(|a| a.seq > self.last_seq)
                .cloned()
                .map(Event::Action),
        );
        events.push(Event::Likes {
            total: newer.likes_total,
        });
        events
    }

    /// `tick_ms`: the tick the viewers here get the room's batches at, about (the room
    /// paces it by its widest shard).
    fn view(&mut self, now_ms: u64, tick_ms: u64) -> RoomView<'_> {
        while self
            .ring
            .front()
            .is_some_and(|a| a.ts_ms + RING_AGE_MS_MAX < now_ms)
        {
            self.ring.pop_front();
        }
        RoomView {
            epoch: self.epoch,
            total_version: self.total_version,
            last_seq: self.last_seq,
            likes_total: self.likes_total,
            tick_ms,
            parts: &self.parts,
            ring: &self.ring,
        }
    }
}

#[derive(Debug)]
struct ShardConnection {
    identity: Identity,
    ready: bool,
    hello_seen: bool,
    /// A Hello that came before the shard had the room's state.
    waiting: Option<Hello>,
    outbox: Vec<Event>,
    /// Broadcast events of this flush from this index on are new to the connection.
    shared_from: usize,
    frames: TokenBucket,
    liveness: Liveness,
}

/// A vote or an answer forwarded to the room and not answered yet.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Choice {
    Vote { poll_id: String },
    Answer { quiz_id: String, question: u16 },
}

impl Choice {
    /// The client id and the choice a vote or an answer makes (`None` for other frames).
    fn of(frame: &ClientFrame) -> Option<(u64, Choice)> {
        match frame {
            ClientFrame::Vote {
                client_id, poll_id, ..
            } => Some((
                *client_id,
                Choice::Vote {
                    poll_id: poll_id.clone(),
                },
            )),
            ClientFrame::Answer {
                client_id,
                quiz_id,
                question,
                ..
            } => Some((
                *client_id,
                Choice::Answer {
                    quiz_id: quiz_id.clone(),
                    question: *question,
                },
            )),
            _ => None,
        }
    }
}

pub struct Shard {
    index: u16,
    mirror: Option<Mirror>,
    /// The number of the room's last batch applied.
    down_seq: u64,
    needs_snapshot: bool,
    snapshot_asked_at_ms: Option<u64>,
    connections: BTreeMap<ConnectionId, ShardConnection>,
    users: BTreeMap<String, BTreeSet<ConnectionId>>,
    buckets: HashMap<String, UserBuckets>,
    banned: BTreeSet<String>,
    /// Users whose choice the room accepted, for the latest poll / quiz question.
    chosen: HashMap<Choice, HashSet<String>>,
    pending_choices: HashMap<(ConnectionId, u64), (Choice, String)>,
    likes_pending: u64,
    up_frames: VecDeque<RelayedFrame>,
    online_reported: Option<u32>,
    /// This flush's broadcast events (from the room's batch).
    shared: Vec<Event>,
    tick_at_ms: Option<u64>,
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
    /// A shard that just started: it asks the room for its state at once.
    pub fn new(index: u16, now_ms: u64) -> Shard {
        assert!(index < SHARDS_PER_ROOM_MAX);
        Shard {
            index,
            mirror: None,
            down_seq: 0,
            needs_snapshot: true,
            snapshot_asked_at_ms: None,
            connections: BTreeMap::new(),
            users: BTreeMap::new(),
            buckets: HashMap::new(),
            banned: BTreeSet::new(),
            chosen: HashMap::new(),
            pending_choices: HashMap::new(),
            likes_pending: 0,
            up_frames: VecDeque::new(),
            online_reported: None,
            shared: Vec::new(),
            tick_at_ms: Some(now_ms),
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

    pub fn connection_ids(&self) -> impl Iterator<Item = ConnectionId> + '_ {
        self.connections.keys().copied()
    }

    /// Registers a new socket (the client sends `Hello` first).
    pub fn connect(
        &mut self,
        connection: ConnectionId,
        identity: Identity,
        lifetime_ms: u64,
        now_ms: u64,
    ) -> Result<(), CloseCode> {
        assert!(!self.connections.contains_key(&connection));
        let refusal = if self.banned.contains(&identity.user) {
            Some(CloseCode::Banned)
        } else if self
            .user_buckets(&identity.user, now_ms)
            .connects
            .take(1, now_ms)
            .is_err()
        {
            // The room's rule, on the user's shard; not logged (a flood of refusals).
            return Err(CloseCode::ConnectRateLimited);
        } else if self.mirror.as_ref().is_some_and(|m| m.ended) {
            Some(CloseCode::RoomEnded)
        } else if self.connections.len() >= CONNECTIONS_PER_ROOM_MAX {
            Some(CloseCode::RoomFull)
        } else if self.users.get(&identity.user).map_or(0, BTreeSet::len)
            >= USER_SOCKETS_PER_ROOM_MAX
        {
            // The room's rule (a user's new sockets all land on this shard, `shard_of`):
            // one of theirs long silent gives its place, else the new one is refused.
            let held = &self.users[&identity.user];
            let silent = held.iter().map(|id| (*id, &self.connections[id].liveness));
            match liveness::replaceable(silent, now_ms) {
                Some(gone) => {
                    self.close(gone, CloseCode::Stale, now_ms);
                    None
                }
                None => Some(CloseCode::TooManySockets),
            }
        } else {
            None
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
        self.insert(connection, identity, now_ms + lifetime_ms, false, now_ms);
        Ok(())
    }

    /// Re-registers a socket that survived hibernation.
    pub fn reattach(
        &mut self,
        connection: ConnectionId,
        identity: Identity,
        expires_at_ms: u64,
        now_ms: u64,
    ) {
        assert!(!self.connections.contains_key(&connection));
        self.insert(connection, identity, expires_at_ms, true, now_ms);
    }

    fn insert(
        &mut self,
        connection: ConnectionId,
        identity: Identity,
        expires_at_ms: u64,
        ready: bool,
        now_ms: u64,
    ) {
        self.users
            .entry(identity.user.clone())
            .or_default()
            .insert(connection);
        let liveness = if ready {
            Liveness::reattached(expires_at_ms, now_ms)
        } else {
            Liveness::opened(expires_at_ms, now_ms)
        };
        self.connections.insert(
            connection,
            ShardConnection {
                identity,
                ready,
                hello_seen: false,
                waiting: None,
                outbox: Vec::new(),
                shared_from: 0,
                frames: TokenBucket::new_full(FRAMES_RATE_PER_S, FRAMES_BURST, now_ms),
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
        let conn = self.connections.remove(&connection)?;
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

    pub fn handle_text(&mut self, connection: ConnectionId, now_ms: u64) {
        self.close(connection, CloseCode::TextNotSupported, now_ms);
    }

    /// A binary frame from a viewer's socket.
    pub fn handle_frame(&mut self, connection: ConnectionId, bytes: &[u8], now_ms: u64) {
        let Some(conn) = self.connections.get_mut(&connection) else {
            return;
        };
        conn.liveness.seen(now_ms);
        self.stats.frames_in += 1;
        let frame = match ClientFrame::decode(bytes) {
            Ok(frame) => frame,
            Err(DecodeError::TooLarge { .. }) => {
                return self.close(connection, CloseCode::FrameTooLarge, now_ms);
            }
            Err(_) => return self.close(connection, CloseCode::BadFrame, now_ms),
        };
        // A like frame retried after a reconnect (its ack lost) is acknowledged again, not
        // counted again, and before the frame rate: a resumed client resends at once.
        if let ClientFrame::Like { client_id, .. } = frame {
            let user = conn.identity.user.clone();
            if conn.ready && self.like_repeated(&user, client_id, now_ms) {
                self.stats.answered_here += 1;
                let ack = Event::Ack {
                    client_id,
                    seq: None,
                };
                return self.push(connection, ack, now_ms);
            }
        }
        let conn = self
            .connections
            .get_mut(&connection)
            .expect("looked up above");
        if let Err(retry_after_ms) = conn.frames.take(1, now_ms) {
            let client_id = frame.client_id();
            let message = "too many frames";
            return self.refuse(
                connection,
                client_id,
                Refusal::retry_after(ErrorCode::RateLimited, message, retry_after_ms),
                now_ms,
            );
        }
        match frame {
            ClientFrame::Hello(hello) => self.on_hello(connection, hello, now_ms),
            other if self.connections[&connection].ready => {
                self.on_frame(connection, other, now_ms)
            }
            _ => self.close(connection, CloseCode::ProtocolViolation, now_ms),
        }
    }

    fn on_hello(&mut self, connection: ConnectionId, hello: Hello, now_ms: u64) {
        let conn = self.connections.get_mut(&connection).expect("checked");
        if conn.hello_seen {
            return self.close(connection, CloseCode::ProtocolViolation, now_ms);
        }
        if hello.protocol_version != PROTOCOL_VERSION {
            return self.close(connection, CloseCode::UnsupportedProtocol, now_ms);
        }
        conn.hello_seen = true;
        conn.liveness.hello();
        if self.mirror.is_some() {
            self.welcome(connection, hello, now_ms);
        } else {
            conn.waiting = Some(hello); // answered when the room's state arrives
        }
    }

    fn welcome(&mut self, connection: ConnectionId, hello: Hello, now_ms: u64) {
        let tick_ms = room_tick_ms_for(self.connections.len() as u64, self.shards);
        let mirror = self
            .mirror
            .as_mut()
            .expect("welcomed only with the room's state");
        let conn = self.connections.get_mut(&connection).expect("live");
        let mut events =
            mirror
                .view(now_ms, tick_ms)
                .welcome(connection, &conn.identity, hello.resume.as_ref());
        if mirror.ended {
            events.push(Event::RoomEnded);
        }
        events.push(Event::Online {
            count: mirror.online,
        });
        conn.ready = true;
        conn.outbox.extend(events);
        // The broadcast events already in this flush are in the Welcome's state.
        conn.shared_from = self.shared.len();
        self.stats.answered_here += 1;
        self.schedule_tick(now_ms);
    }

    fn on_frame(&mut self, connection: ConnectionId, frame: ClientFrame, now_ms: u64) {
        let identity = self.connections[&connection].identity.clone();
        let answered: Result<Option<Event>, Refusal> = match &frame {
            ClientFrame::Hello(_) => unreachable!("handled by on_hello"),
            ClientFrame::Ping { client_time_ms } => Ok(Some(Event::Pong {
                client_time_ms: *client_time_ms,
                server_time_ms: now_ms,
            })),
            ClientFrame::Like { client_id, count } => {
                let ack = Event::Ack {
                    client_id: *client_id,
                    seq: None,
                };
                if self.like_repeated(&identity.user, *client_id, now_ms) {
                    Ok(Some(ack))
                } else {
                    self.take_likes(&identity.user, *count, now_ms).map(|()| {
                        self.user_buckets(&identity.user, now_ms)
                            .remember(*client_id, None);
                        Some(ack)
                    })
                }
            }
            ClientFrame::Comment { text, .. } | ClientFrame::Reaction { kind: text, .. }
                if text.trim().is_empty() =>
            {
                Err(Refusal::new(ErrorCode::Invalid, "empty"))
            }
            ClientFrame::Comment { .. } => self
                .take_speech(&identity.user, false, now_ms)
                .map(|()| None),
            ClientFrame::Reaction { .. } => self
                .take_speech(&identity.user, true, now_ms)
                .map(|()| None),
            ClientFrame::Vote { .. } | ClientFrame::Answer { .. } => {
                Ok(self.repeated_choice(&identity.user, &frame))
            }
            _ => Ok(None),
        };
        match answered {
            Ok(Some(event)) => {
                self.stats.answered_here += 1;
                self.push(connection, event, now_ms);
            }
            Ok(None) => self.forward(connection, identity, frame, now_ms),
            Err(refusal) => self.refuse(connection, frame.client_id(), refusal, now_ms),
        }
    }

    /// Whether this user's like frame with this client id was already counted here.
    fn like_repeated(&mut self, user: &str, client_id: u64, now_ms: u64) -> bool {
        self.user_buckets(user, now_ms)
            .accepted(client_id)
            .is_some()
    }

    fn user_buckets(&mut self, user: &str, now_ms: u64) -> &mut UserBuckets {
        crate::bucket_entry(&mut self.buckets, user, now_ms)
    }

    fn take_likes(&mut self, user: &str, count: u32, now_ms: u64) -> Result<(), Refusal> {
        if count == 0 || count > LIKE_COUNT_PER_FRAME_MAX {
            return Err(Refusal::new(ErrorCode::Invalid, "like count out of range"));
        }
        self.user_buckets(user, now_ms)
            .likes
            .take(count, now_ms)
            .map_err(|wait| Refusal::retry_after(ErrorCode::RateLimited, "too many likes", wait))?;
        self.likes_pending += u64::from(count);
        self.schedule_tick(now_ms);
        Ok(())
    }

    /// The sender's comment or reaction bucket (the room checks moderation and slow mode).
    fn take_speech(&mut self, user: &str, reaction: bool, now_ms: u64) -> Result<(), Refusal> {
        let buckets = self.user_buckets(user, now_ms);
        let bucket = if reaction {
            &mut buckets.reactions
        } else {
            &mut buckets.comments
        };
        bucket
            .take(1, now_ms)
            .map_err(|wait| Refusal::retry_after(ErrorCode::RateLimited, "slow down", wait))
    }

    /// An Ack when the room already accepted this user's vote or answer (the frame then
    /// never reaches the room).
    fn repeated_choice(&self, user: &str, frame: &ClientFrame) -> Option<Event> {
        let (client_id, choice) = Choice::of(frame)?;
        let users = self.chosen.get(&choice)?;
        users.contains(user).then_some(Event::Ack {
            client_id,
            seq: None,
        })
    }

    fn forward(
        &mut self,
        connection: ConnectionId,
        identity: Identity,
        frame: ClientFrame,
        now_ms: u64,
    ) {
        if self.up_frames.len() >= SHARD_FORWARD_QUEUE_MAX {
            let retry_after_ms = TICK_MS as u32;
            return self.refuse(
                connection,
                frame.client_id(),
                Refusal::retry_after(ErrorCode::RateLimited, "room busy", retry_after_ms),
                now_ms,
            );
        }
        // Remembered until the room answers, so an accepted one is answered here next time.
        if let Some((client_id, choice)) = Choice::of(&frame) {
            if self.pending_choices.len() < SHARD_CHOICES_PENDING_MAX {
                self.pending_choices
                    .insert((connection, client_id), (choice, identity.user.clone()));
            }
        }
        self.stats.forwarded += 1;
        self.up_frames.push_back(RelayedFrame {
            connection,
            user: identity.user,
            name: identity.name,
            role: identity.role,
            frame,
        });
        self.schedule_tick(now_ms);
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
        self.log("refusal", Some(connection), user.as_deref(), code.as_str());
        let event = Event::Error {
            client_id,
            code,
            message,
            retry_after_ms,
        };
        self.push(connection, event, now_ms);
    }

    fn push(&mut self, connection: ConnectionId, event: Event, now_ms: u64) {
        if let Some(conn) = self.connections.get_mut(&connection) {
            if conn.outbox.len() < OUTBOX_EVENTS_MAX {
                conn.outbox.push(event);
            }
            self.schedule_tick(now_ms);
        }
    }

    /// The sockets this shard holds for a user (a user may be connected more than once).
    pub fn connections_of(&self, user: &str) -> Vec<ConnectionId> {
        self.users
            .get(user)
            .into_iter()
            .flatten()
            .copied()
            .collect()
    }

    /// The room's batch for this shard (the bytes of a [`ShardDown`]). Its events go out
    /// at once: the room already batched them for this tick.
    pub fn handle_down(&mut self, bytes: &[u8], now_ms: u64) -> Result<(), DecodeError> {
        let down = ShardDown::decode(bytes)?;
        if down.shards <= self.index {
            return Err(DecodeError::FieldLimit {
                field: "shards",
                bytes_max: usize::from(self.index),
            });
        }
        self.stats.batches_down += 1;
        self.shards = down.shards;
        if let Some(snapshot) = down.snapshot {
            self.stats.snapshots += 1;
            self.banned = snapshot.banned.iter().cloned().collect();
            let fresh = Mirror::from_snapshot(snapshot);
            if let Some(old) = self.mirror.as_ref().filter(|m| m.epoch == fresh.epoch) {
                // Batches were lost (the room restarted, or one went missing): the viewers
                // here get what changed since the copy they were served from.
                self.shared.extend(old.missed(&fresh));
            }
            self.mirror = Some(fresh);
            self.needs_snapshot = false;
            self.snapshot_asked_at_ms = None;
            self.online_reported = None; // the room instance may be new: tell it again
            self.schedule_tick(now_ms);
        } else if self.mirror.is_some() && down.seq != self.down_seq + 1 {
            // A batch went missing (or the room restarted): ask for the room's state now;
            // until it comes, broadcasts are held back (the snapshot brings them, after
            // what was missed, so no viewer sees a hole).
            self.stats.gaps += 1;
            self.needs_snapshot = true;
            self.snapshot_asked_at_ms = None;
        }
        self.down_seq = down.seq;
        let broadcast = if self.needs_snapshot {
            Vec::new()
        } else {
            down.broadcast
        };
        for event in broadcast {
            if let Some(mirror) = self.mirror.as_mut() {
                mirror.apply(&event);
            }
            self.shared.push(event);
        }
        if self.mirror.is_some() {
            let waiting: Vec<(ConnectionId, Hello)> = self
                .connections
                .iter_mut()
                .filter_map(|(&id, c)| c.waiting.take().map(|h| (id, h)))
                .collect();
            for (id, hello) in waiting {
                self.welcome(id, hello, now_ms);
            }
        }
        for (connection, event) in down.to_connection {
            self.resolve_choice(connection, &event);
            self.push(connection, event, now_ms);
        }
        for (user, event) in down.to_user {
            let targets = self.connections_of(&user);
            for target in targets {
                self.push(target, event.clone(), now_ms);
            }
        }
        for (user, code) in down.close_users {
            let code = CloseCode::from_code(code).unwrap_or(CloseCode::Restarting);
            if code == CloseCode::Banned && self.banned.len() < BANNED_USERS_MAX {
                self.banned.insert(user.clone());
            }
            let targets = self.connections_of(&user);
            for target in targets {
                self.close(target, code, now_ms);
            }
        }
        self.flush_sockets(now_ms);
        if self.mirror.as_ref().is_some_and(|m| m.ended) {
            let everyone: Vec<ConnectionId> = self.connections.keys().copied().collect();
            for id in everyone {
                self.close(id, CloseCode::RoomEnded, now_ms);
            }
        }
        Ok(())
    }

    /// The room's answer to a forwarded vote or answer: remembered when accepted, so a
    /// repeat is answered here.
    fn resolve_choice(&mut self, connection: ConnectionId, event: &Event) {
        let client_id = match event {
            Event::Ack { client_id, .. } => *client_id,
            Event::Error {
                client_id: Some(client_id),
                ..
            } => *client_id,
            _ => return,
        };
        let Some((choice, user)) = self.pending_choices.remove(&(connection, client_id)) else {
            return;
        };
        if matches!(event, Event::Ack { .. }) {
            if !self.chosen.contains_key(&choice) {
                // Only the latest poll and quiz question matter: forget older ones.
                self.chosen
                    .retain(|c, _| std::mem::discriminant(c) != std::mem::discriminant(&choice));
            }
            let users = self.chosen.entry(choice).or_default();
            if users.len() < POLL_VOTERS_MAX {
                users.insert(user);
            }
        }
    }

    fn schedule_tick(&mut self, now_ms: u64) {
        if self.tick_at_ms.is_none() {
            self.tick_at_ms = Some(now_ms + TICK_MS);
        }
    }

    /// When the host must call [`Shard::handle_timeout`] next.
    pub fn poll_timeout(&self) -> Option<u64> {
        let sockets = self.connections.values().map(|c| c.liveness.deadline());
        self.tick_pending().into_iter().chain(sockets).min()
    }

    /// Whether output waits for a tick (the host flushes with a short timer).
    pub fn tick_pending(&self) -> Option<u64> {
        self.tick_at_ms
            .into_iter()
            .chain(self.up_at_ms)
            .chain(self.snapshot_ask_at())
            .min()
    }

    /// How far apart this shard's batches to the room go (the room's shard count sets
    /// it, so that all of them together stay under `ROOM_SHARD_BATCHES_PER_S_TARGET`).
    pub fn up_interval_ms(&self) -> u64 {
        shard_batch_interval_ms_for(self.shards)
    }

    /// When to ask the room for its state (again): at once, then every retry interval.
    fn snapshot_ask_at(&self) -> Option<u64> {
        self.needs_snapshot.then(|| {
            self.snapshot_asked_at_ms
                .map_or(0, |at| at + SHARD_SNAPSHOT_RETRY_MS)
        })
    }

    pub fn handle_timeout(&mut self, now_ms: u64) {
        let sockets = self
            .connections
            .iter_mut()
            .map(|(&id, c)| (id, &mut c.liveness));
        let due = liveness::sweep(sockets, now_ms);
        for id in due.expired {
            self.push(
                id,
                Event::GoAway {
                    reconnect_delay_ms: 0,
                },
                now_ms,
            );
        }
        for id in due.overdue {
            self.close(id, CloseCode::GoingAway, now_ms);
        }
        for id in due.stale {
            self.close(id, CloseCode::Stale, now_ms);
        }
        for id in due.no_hello {
            self.close(id, CloseCode::HelloTimeout, now_ms);
        }
        let snapshot_due = self.snapshot_ask_at().is_some_and(|at| at <= now_ms);
        let tick_due = self.tick_at_ms.is_some_and(|at| at <= now_ms);
        let up_due = self.up_at_ms.is_some_and(|at| at <= now_ms);
        if snapshot_due || tick_due || up_due {
            self.tick_at_ms = None;
            self.up_at_ms = None;
            // Sockets get their answers every tick; the room gets a batch at most once
            // per interval (asking for a snapshot does not wait).
            let up_allowed_at_ms = self
                .up_sent_at_ms
                .map_or(0, |at| at + self.up_interval_ms());
            if snapshot_due || now_ms >= up_allowed_at_ms {
                self.send_up(now_ms, snapshot_due);
            } else if self.up_pending() {
                self.up_at_ms = Some(up_allowed_at_ms);
            }
            self.flush_sockets(now_ms);
        }
    }

    /// Whether the room has something to hear from this shard.
    fn up_pending(&self) -> bool {
        !self.up_frames.is_empty()
            || self.likes_pending > 0
            || self.online_reported != Some(self.online())
    }

    /// How many of the waiting frames the next batch up carries: the oldest, at most
    /// `RELAY_FRAMES_PER_BATCH_MAX`, and no more than fit in `RELAY_MESSAGE_BYTES_MAX`
    /// (the room refuses a larger batch whole; viewers' staff commands and part frames,
    /// forwarded for the room to refuse, reach 16 KiB each). The rest wait for the next.
    fn up_frames_for_one_batch(&self) -> usize {
        let mut bytes = SHARD_UP_FIELDS_BYTES_MAX;
        let mut take = 0;
        for relayed in self.up_frames.iter().take(RELAY_FRAMES_PER_BATCH_MAX) {
            bytes += postcard::to_allocvec(relayed)
                .expect("encoding into a Vec cannot fail")
                .len();
            if bytes > RELAY_MESSAGE_BYTES_MAX {
                break;
            }
            take += 1;
        }
        take
    }

    /// The shard's batch for the room, when it has something to say.
    fn send_up(&mut self, now_ms: u64, ask_snapshot: bool) {
        if !ask_snapshot && !self.up_pending() {
            return;
        }
        let online = self.online();
        let take = self.up_frames_for_one_batch();
        self.up_sent_at_ms = Some(now_ms);
        if ask_snapshot {
            self.snapshot_asked_at_ms = Some(now_ms);
        }
        let up = ShardUp {
            shard: self.index,
            needs_snapshot: ask_snapshot,
            online,
            likes: std::mem::take(&mut self.likes_pending),
            frames: self.up_frames.drain(..take).collect(),
        };
        self.online_reported = Some(online);
        self.stats.batches_up += 1;
        let bytes = up.encode();
        assert!(
            bytes.len() <= RELAY_MESSAGE_BYTES_MAX,
            "up_frames_for_one_batch keeps a batch under the relay limit"
        );
        self.outputs.push_back(ShardOutput::Up(bytes));
        if !self.up_frames.is_empty() {
            self.up_at_ms = Some(now_ms + self.up_interval_ms()); // the rest next time
        }
    }

    /// Sends every connection its events: one encoding of the broadcast for everyone
    /// with nothing of their own.
    fn flush_sockets(&mut self, now_ms: u64) {
        let shared = std::mem::take(&mut self.shared);
        let mut everyone = Vec::new();
        for (&id, conn) in self.connections.iter_mut() {
            let from = if conn.ready {
                conn.shared_from
            } else {
                shared.len()
            };
            conn.shared_from = 0;
            if conn.outbox.is_empty() && from == 0 && !shared.is_empty() {
                everyone.push(id);
                continue;
            }
            let mut events = std::mem::take(&mut conn.outbox);
            events.extend(shared[from..].iter().cloned());
            if events.is_empty() {
                continue;
            }
            // One frame, unless that would pass SERVER_FRAME_BYTES_MAX (clients refuse it).
            for frame in ServerFrame::batches(now_ms, events) {
                self.stats.frames_out += 1;
                self.stats.bytes_out += frame.len() as u64;
                self.outputs.push_back(ShardOutput::Send {
                    connections: vec![id],
                    frame,
                });
            }
        }
        if !everyone.is_empty() {
            for frame in ServerFrame::batches(now_ms, shared) {
                self.stats.frames_out += everyone.len() as u64;
                self.stats.bytes_out += (frame.len() * everyone.len()) as u64;
                self.outputs.push_back(ShardOutput::Send {
                    connections: everyone.clone(),
                    frame,
                });
            }
        }
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
