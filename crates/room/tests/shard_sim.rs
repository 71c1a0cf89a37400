//! Seeded simulation of a big room: one `Room` and S `Shard`s joined by in-order links
//! with random delays, viewers placed by `shard_of`, comments, likes, votes (with
//! duplicates and retries across shards), direct messages, joins and leaves, the shard
//! count growing while live, shard crashes (a shard loses its memory and its sockets; its
//! viewers come back and resume) and room restarts (rebuilt from what it stored).
//!
//! Invariants, checked as it runs and at the end:
//! - a connection sees each action once, in order, with no hole it was not told of (a
//!   `Gap`), across shard and room restarts;
//! - every comment the room acknowledged reaches every viewer connected from its Welcome
//!   until after the comment was flushed;
//! - poll tallies equal the distinct users whose vote was acknowledged, whichever shard
//!   they voted through and however often;
//! - a peer message reaches the target user's connections only;
//! - after the links drain, the room's online count is the sum of ready connections;
//! - a shard's batches to the room, and the room's to a shard, are at least
//!   `shard_batch_interval_ms_for(S)` apart (200 ms at 200 shards), so a room sharded
//!   for a million (200 shards; the simulation puts 120 viewers on them) takes at most
//!   `ROOM_SHARD_BATCHES_PER_S_TARGET` batches per second.
//!
//! Two shapes: 3 shards growing to 6 (40 viewers), and 200 growing to 250 (120 viewers).
//!
//! `OVATION_SHARD_SIM_SEEDS=N` sets how many seeds run (default 200);
//! `OVATION_SHARD_SIM_SEED=S` replays one.

mod common;

use common::Rng;
use ovation_proto::limits::{
    shard_batch_interval_ms_for, shards_for_audience, CONNECTION_LIFETIME_MS_MIN,
    ONLINE_REFRESH_MS, SHARDED_COMMENTS_PER_S_MAX, SHARDS_PER_ROOM_MAX, TICK_MS,
};
use ovation_proto::{
    shard_of, ActionBody, ClientFrame, Event, Hello, Resume, Role, ServerFrame, PROTOCOL_VERSION,
};
use ovation_room::{
    AdminCommand, Identity, Output, PollSpec, Room, RoomInfo, Shard, ShardOutput, StaffCommand,
    StorageOp,
};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// A message in flight, delivered at `at_ms` (links keep their order).
struct Link {
    queue: VecDeque<(u64, Vec<u8>)>,
}

impl Link {
    fn new() -> Link {
        Link {
            queue: VecDeque::new(),
        }
    }
    fn send(&mut self, at_ms: u64, bytes: Vec<u8>) {
        let at_ms = self
            .queue
            .back()
            .map_or(at_ms, |(last, _)| at_ms.max(*last));
        self.queue.push_back((at_ms, bytes));
    }
    fn due(&mut self, now_ms: u64) -> Option<Vec<u8>> {
        if self.queue.front().is_some_and(|(at, _)| *at <= now_ms) {
            return self.queue.pop_front().map(|(_, b)| b);
        }
        None
    }
}

/// One viewer's session on one shard connection.
struct Session {
    shard: u16,
    connection: u64,
    welcomed: bool,
    /// Last action seq seen on this connection (from the Welcome on).
    cursor: u64,
    /// First seq this session must see (Welcome cursor + 1), and when it was welcomed.
    welcomed_from: u64,
}

struct Viewer {
    user: String,
    session: Option<Session>,
    /// Carried across sessions, for resumes.
    epoch: u64,
    cursor: u64,
    seen: BTreeSet<u64>,
    next_client_id: u64,
    /// Votes sent and not answered: client id → poll id.
    votes_pending: BTreeMap<u64, String>,
    comments_pending: BTreeMap<u64, ()>,
}

/// The shape of one simulated room.
#[derive(Clone, Copy)]
struct Shape {
    expected_audience: u64,
    /// The shard count grows up to this while live.
    shards_max: u16,
    viewers: usize,
}

/// Few shards, busy ones: every shard batches up at the short tick.
const FEW_SHARDS: Shape = Shape {
    expected_audience: 12_000, // 3 shards
    shards_max: 6,
    viewers: 40,
};

/// A room shaped for a million viewers (200 shards, growing to the most a room may have)
/// with 120 simulated viewers spread over them: the batch pacing depends on the shard
/// count, not on the viewers, so each shard spaces its batches up to 200–250 ms and the
/// room takes at most its target.
const MANY_SHARDS: Shape = Shape {
    expected_audience: 1_000_000,
    shards_max: SHARDS_PER_ROOM_MAX,
    viewers: 120,
};

struct Sim {
    rng: Rng,
    now_ms: u64,
    shape: Shape,
    room: Room,
    store: BTreeMap<String, Vec<u8>>,
    shards: Vec<Option<Shard>>,
    down: Vec<Link>,
    up: Vec<Link>,
    viewers: Vec<Viewer>,
    next_connection: u64,
    /// Acknowledged comments: seq → flushed at (room time) .
    acked_comments: BTreeMap<u64, u64>,
    /// Users whose vote in the current poll was acknowledged.
    voters: BTreeSet<String>,
    poll: Option<String>,
    polls_opened: u64,
    directs_to: BTreeMap<String, u64>,
    crashes: u64,
    losses: u64,
    /// When each shard (as it is now, since its last crash) last sent the room a batch,
    /// and when the room last sent each shard one.
    up_sent_at_ms: Vec<Option<u64>>,
    down_sent_at_ms: Vec<Option<u64>>,
}

fn info_for(expected_audience: u64) -> RoomInfo {
    RoomInfo {
        room_id: "eu-big".into(),
        host_user: "host".into(),
        title: "big".into(),
        expected_audience,
    }
}

fn store_op(store: &mut BTreeMap<String, Vec<u8>>, op: StorageOp) {
    match op {
        StorageOp::Put { key, value } => {
            store.insert(key, value);
        }
        StorageOp::Delete { key } => {
            store.remove(&key);
        }
    }
}

impl Sim {
    fn new(seed: u64, shape: Shape) -> Sim {
        let now_ms = 1_000_000;
        let room = Room::create(info_for(shape.expected_audience), 7, now_ms);
        assert_eq!(
            room.shards(),
            shards_for_audience(shape.expected_audience).max(1)
        );
        let mut sim = Sim {
            rng: Rng(seed),
            now_ms,
            shape,
            room,
            store: BTreeMap::new(),
            shards: Vec::new(),
            down: Vec::new(),
            up: Vec::new(),
            viewers: (0..shape.viewers)
                .map(|i| Viewer {
                    user: format!("viewer-{i}"),
                    session: None,
                    epoch: 0,
                    cursor: 0,
                    seen: BTreeSet::new(),
                    next_client_id: 1,
                    votes_pending: BTreeMap::new(),
                    comments_pending: BTreeMap::new(),
                })
                .collect(),
            next_connection: 1,
            acked_comments: BTreeMap::new(),
            voters: BTreeSet::new(),
            poll: None,
            polls_opened: 0,
            directs_to: BTreeMap::new(),
            crashes: 0,
            losses: 0,
            up_sent_at_ms: Vec::new(),
            down_sent_at_ms: Vec::new(),
        };
        sim.grow_links();
        sim.pump_room();
        sim
    }

    fn grow_links(&mut self) {
        let wanted = usize::from(self.room.shards());
        while self.shards.len() < wanted {
            let index = u16::try_from(self.shards.len()).unwrap();
            self.shards.push(Some(Shard::new(index, self.now_ms)));
            self.down.push(Link::new());
            self.up.push(Link::new());
            self.up_sent_at_ms.push(None);
            self.down_sent_at_ms.push(None);
        }
    }

    fn delay(&mut self) -> u64 {
        self.rng.below(40)
    }

    fn pump_room(&mut self) {
        while let Some(output) = self.room.poll_output() {
            match output {
                Output::Store(op) => store_op(&mut self.store, op),
                Output::ToShard { shard, frame } => {
                    // The room's batches to a shard are spaced too (its tick is at least
                    // the shards' interval), except a room that just restarted.
                    let interval_ms = shard_batch_interval_ms_for(self.room.shards());
                    if let Some(at) = self.down_sent_at_ms[usize::from(shard)] {
                        assert!(
                            self.now_ms >= at + interval_ms,
                            "room to shard {shard}: batches {} ms apart, {interval_ms} ms wanted",
                            self.now_ms - at
                        );
                    }
                    self.down_sent_at_ms[usize::from(shard)] = Some(self.now_ms);
                    let at = self.now_ms + self.delay();
                    self.down[usize::from(shard)].send(at, frame);
                }
                Output::Send { .. } | Output::Close { .. } => {
                    panic!("viewers of a sharded room are on shards")
                }
                Output::Log(_) | Output::Charge(_) => {}
            }
        }
    }

    fn pump_shard(&mut self, index: usize) {
        loop {
            let Some(output) = self.shards[index].as_mut().and_then(Shard::poll_output) else {
                return;
            };
            match output {
                ShardOutput::Up(bytes) => {
                    let shard = self.shards[index].as_ref().expect("it sent");
                    let interval_ms = shard.up_interval_ms();
                    let asks_snapshot = ovation_proto::ShardUp::decode(&bytes)
                        .expect("a shard's batch decodes")
                        .needs_snapshot;
                    if let Some(at) = self.up_sent_at_ms[index].filter(|_| !asks_snapshot) {
                        assert!(
                            self.now_ms >= at + interval_ms,
                            "shard {index} to the room: batches {} ms apart, {interval_ms} ms wanted",
                            self.now_ms - at
                        );
                    }
                    self.up_sent_at_ms[index] = Some(self.now_ms);
                    let at = self.now_ms + self.delay();
                    self.up[index].send(at, bytes);
                }
                ShardOutput::Send { connections, frame } => {
                    let ServerFrame::Batch { events, .. } = ServerFrame::decode(&frame).unwrap();
                    for connection in connections {
                        let viewer = self.viewer_on(index, connection);
                        for event in &events {
                            self.deliver(viewer, event.clone());
                        }
                    }
                }
                ShardOutput::Close { connection, code } => {
                    let viewer = self.viewer_on(index, connection);
                    self.end_session(viewer);
                    assert_ne!(code.code(), 4403, "nobody is banned here");
                }
                ShardOutput::Log(_) => {}
            }
        }
    }

    fn viewer_on(&self, shard: usize, connection: u64) -> usize {
        self.viewers
            .iter()
            .position(|v| {
                v.session
                    .as_ref()
                    .is_some_and(|s| usize::from(s.shard) == shard && s.connection == connection)
            })
            .expect("shards send only to their live connections")
    }

    fn end_session(&mut self, viewer: usize) {
        let v = &mut self.viewers[viewer];
        if let Some(session) = v.session.take() {
            if session.welcomed {
                v.cursor = session.cursor;
            }
        }
        // Unanswered frames of a closed session are never answered: the SDK times out.
        v.votes_pending.clear();
        v.comments_pending.clear();
    }

    fn deliver(&mut self, viewer: usize, event: Event) {
        let v = &mut self.viewers[viewer];
        let user = v.user.clone();
        let session = v.session.as_mut().expect("delivered to a live session");
        match event {
            Event::Welcome(welcome) => {
                assert!(!session.welcomed, "one Welcome per connection");
                session.welcomed = true;
                if welcome.resumed {
                    session.cursor = v.cursor;
                } else {
                    session.cursor = welcome.action_cursor;
                }
                session.welcomed_from = session.cursor + 1;
                v.epoch = welcome.epoch;
            }
            Event::Gap { resumed_from, .. } => {
                assert!(session.welcomed);
                session.cursor = session.cursor.max(resumed_from - 1);
            }
            Event::Action(action) => {
                assert!(session.welcomed, "actions come after the Welcome");
                if action.seq <= session.cursor {
                    // A resume or catch-up may repeat what this connection saw; the SDK
                    // drops it by its cursor. It must not be new to the viewer.
                    return;
                }
                assert_eq!(
                    action.seq,
                    session.cursor + 1,
                    "{user}: action {} after {} with no Gap (shard {})",
                    action.seq,
                    session.cursor,
                    session.shard
                );
                session.cursor = action.seq;
                assert!(v.seen.insert(action.seq) || action.seq <= v.cursor);
            }
            Event::Ack { client_id, seq } => {
                if let Some(poll) = v.votes_pending.remove(&client_id) {
                    if Some(&poll) == self.poll.as_ref() {
                        self.voters.insert(user);
                    }
                }
                if v.comments_pending.remove(&client_id).is_some() {
                    let seq = seq.expect("comments get a sequence number");
                    self.acked_comments.insert(seq, self.now_ms);
                }
            }
            Event::Error {
                client_id: Some(id),
                ..
            } => {
                v.votes_pending.remove(&id);
                v.comments_pending.remove(&id);
            }
            Event::Direct { payload, .. } => {
                assert!(
                    payload.contains(&format!("\"to\":\"{user}\"")),
                    "{user} got someone else's peer message: {payload}"
                );
            }
            _ => {}
        }
    }

    fn send_frame(&mut self, viewer: usize, frame: ClientFrame) {
        let Some(session) = self.viewers[viewer].session.as_ref() else {
            return;
        };
        let (shard, connection) = (usize::from(session.shard), session.connection);
        if let Some(s) = self.shards[shard].as_mut() {
            s.handle_frame(connection, &frame.encode(), self.now_ms);
        }
        self.pump_shard(shard);
    }

    fn connect(&mut self, viewer: usize) {
        let count = self.room.shards();
        let v = &self.viewers[viewer];
        let shard = shard_of(&v.user, count);
        let Some(s) = self.shards[usize::from(shard)].as_mut() else {
            return;
        };
        let connection = self.next_connection;
        self.next_connection += 1;
        let identity = Identity {
            user: v.user.clone(),
            name: v.user.to_uppercase(),
            role: Role::Viewer,
        };
        s.connect(
            connection,
            identity,
            CONNECTION_LIFETIME_MS_MIN,
            self.now_ms,
        )
        .expect("a live room takes viewers");
        let resume = (v.epoch != 0).then(|| Resume {
            epoch: v.epoch,
            action_cursor: v.cursor,
            part_versions: Vec::new(),
        });
        self.viewers[viewer].session = Some(Session {
            shard,
            connection,
            welcomed: false,
            cursor: 0,
            welcomed_from: 0,
        });
        let hello = ClientFrame::Hello(Hello {
            protocol_version: PROTOCOL_VERSION,
            resume,
        });
        self.send_frame(viewer, hello);
    }

    fn client_id(&mut self, viewer: usize) -> u64 {
        let v = &mut self.viewers[viewer];
        v.next_client_id += 1;
        v.next_client_id
    }

    fn step(&mut self) {
        self.now_ms += 1 + self.rng.below(20);
        let viewer = self.rng.below(self.viewers.len() as u64) as usize;
        let live = self.viewers[viewer]
            .session
            .as_ref()
            .is_some_and(|s| s.welcomed);
        match self.rng.below(100) {
            0..=14 if self.viewers[viewer].session.is_none() => self.connect(viewer),
            15..=17 if self.viewers[viewer].session.is_some() => {
                let session = self.viewers[viewer].session.as_ref().unwrap();
                let (shard, connection) = (usize::from(session.shard), session.connection);
                if let Some(s) = self.shards[shard].as_mut() {
                    s.disconnect(connection, self.now_ms);
                }
                self.end_session(viewer);
                self.pump_shard(shard);
            }
            18..=39 if live => {
                let client_id = self.client_id(viewer);
                self.viewers[viewer].comments_pending.insert(client_id, ());
                let text = format!("c{client_id}");
                self.send_frame(viewer, ClientFrame::Comment { client_id, text });
            }
            40..=49 if live => {
                let client_id = self.client_id(viewer);
                self.send_frame(
                    viewer,
                    ClientFrame::Like {
                        client_id,
                        count: 2,
                    },
                );
            }
            50..=64 if live && self.poll.is_some() => {
                let client_id = self.client_id(viewer);
                let poll_id = self.poll.clone().unwrap();
                self.viewers[viewer]
                    .votes_pending
                    .insert(client_id, poll_id.clone());
                let option = self.rng.below(3) as u8;
                let vote = ClientFrame::Vote {
                    client_id,
                    poll_id,
                    option,
                };
                // Sometimes twice at once (a double tap): counted once.
                if self.rng.chance(20) {
                    self.send_frame(viewer, vote.clone());
                }
                self.send_frame(viewer, vote);
            }
            65..=66 if self.poll.is_none() => {
                self.polls_opened += 1;
                let spec = PollSpec {
                    question: "which?".into(),
                    options: vec!["a".into(), "b".into(), "c".into()],
                    window_ms: Some(600_000),
                    tallies_public: false,
                    reveal_on_close: true,
                    cue: None,
                };
                let command = AdminCommand::Staff {
                    by: Identity {
                        user: "host".into(),
                        name: "Host".into(),
                        role: Role::Host,
                    },
                    command: StaffCommand::CreatePoll { spec },
                };
                let reply = self.room.admin(command, self.now_ms).expect("poll opens");
                let ovation_room::AdminReply::Poll { id, .. } = reply else {
                    panic!("a poll reply: {reply:?}");
                };
                self.poll = Some(id);
                self.voters.clear();
                self.pump_room();
            }
            67..=69 => {
                let to = self.viewers[viewer].user.clone();
                *self.directs_to.entry(to.clone()).or_default() += 1;
                let payload = format!("{{\"to\":\"{to}\"}}");
                let command = AdminCommand::Direct {
                    from_user: "host".into(),
                    to_user: to,
                    payload,
                };
                self.room.admin(command, self.now_ms).expect("direct");
                self.pump_room();
            }
            70 => self.crash_shard(),
            73..=74 => {
                // A delivery to a shard fails (the room does not retry; the shard sees the
                // hole in the numbering and asks for a snapshot).
                let index = self.rng.below(self.down.len() as u64) as usize;
                if self.down[index].queue.pop_back().is_some() {
                    self.losses += 1;
                }
            }
            71 if self.rng.chance(30) => self.restart_room(),
            72 if self.rng.chance(10) && self.room.shards() < self.shape.shards_max => {
                let shards = self.room.shards() + 1;
                let command = AdminCommand::SetShards { shards };
                self.room.admin(command, self.now_ms).expect("grows");
                self.grow_links();
                self.pump_room();
            }
            _ => {}
        }
        self.run_due();
    }

    /// A shard loses its memory and its sockets; its queued batches are lost too.
    fn crash_shard(&mut self) {
        self.crashes += 1;
        let index = self.rng.below(self.shards.len() as u64) as usize;
        let on_it: Vec<usize> = (0..self.viewers.len())
            .filter(|&v| {
                self.viewers[v]
                    .session
                    .as_ref()
                    .is_some_and(|s| usize::from(s.shard) == index)
            })
            .collect();
        for viewer in on_it {
            self.end_session(viewer);
        }
        self.shards[index] = Some(Shard::new(index as u16, self.now_ms));
        self.down[index] = Link::new();
        self.up[index] = Link::new();
        self.up_sent_at_ms[index] = None;
    }

    /// The room object restarts from its storage (batches in flight to it are lost; its
    /// batches already sent still arrive).
    fn restart_room(&mut self) {
        self.crashes += 1;
        let records = self.store.clone().into_iter();
        self.room = Room::restore(records, self.now_ms)
            .expect("restores")
            .expect("exists");
        self.down_sent_at_ms.fill(None);
        for link in &mut self.up {
            *link = Link::new();
        }
        // Votes in flight are lost with it: their senders never hear back.
        self.pump_room();
    }

    fn run_due(&mut self) {
        for round in 0.. {
            assert!(
                round < 10_000,
                "no progress at {}: room {:?} shards {:?}",
                self.now_ms,
                self.room.poll_timeout(),
                self.shards
                    .iter()
                    .map(|s| s.as_ref().and_then(Shard::poll_timeout))
                    .collect::<Vec<_>>()
            );
            let mut progressed = false;
            for index in 0..self.shards.len() {
                while let Some(bytes) = self.up[index].due(self.now_ms) {
                    self.room
                        .shard_up(&bytes, self.now_ms)
                        .expect("valid batch");
                    self.pump_room();
                    progressed = true;
                }
                while let Some(bytes) = self.down[index].due(self.now_ms) {
                    if let Some(s) = self.shards[index].as_mut() {
                        s.handle_down(&bytes, self.now_ms).expect("valid batch");
                    }
                    self.pump_shard(index);
                    progressed = true;
                }
            }
            if self.room.poll_timeout().is_some_and(|t| t <= self.now_ms) {
                self.room.handle_timeout(self.now_ms);
                self.pump_room();
                progressed = true;
            }
            for index in 0..self.shards.len() {
                let due = self.shards[index]
                    .as_ref()
                    .and_then(Shard::poll_timeout)
                    .is_some_and(|t| t <= self.now_ms);
                if due {
                    self.shards[index]
                        .as_mut()
                        .unwrap()
                        .handle_timeout(self.now_ms);
                    self.pump_shard(index);
                    progressed = true;
                }
            }
            if !progressed {
                return;
            }
        }
    }

    /// Lets every link and tick drain; a batch lost at the very end is noticed at the
    /// room's next online refresh (every `ONLINE_REFRESH_MS` it sends every shard one).
    fn settle(&mut self) {
        for _ in 0..2 * ONLINE_REFRESH_MS / TICK_MS + 20 {
            self.now_ms += TICK_MS;
            self.run_due();
        }
    }

    fn check_end(&mut self, seed: u64) {
        self.settle();
        let ready: u32 = self
            .viewers
            .iter()
            .filter(|v| v.session.as_ref().is_some_and(|s| s.welcomed))
            .count() as u32;
        assert_eq!(self.room.online(), ready, "seed {seed}: online is the sum");
        if let Some((id, _, tallies)) = self.room.poll() {
            assert_eq!(Some(&id), self.poll.as_ref());
            let counted: u64 = tallies.iter().sum();
            assert!(
                counted >= self.voters.len() as u64,
                "seed {seed}: {counted} counted, {} acknowledged",
                self.voters.len()
            );
        }
        // Every acknowledged comment reached every session that was welcomed before it
        // and is still connected now.
        for v in &self.viewers {
            let Some(session) = v.session.as_ref().filter(|s| s.welcomed) else {
                continue;
            };
            for &seq in self.acked_comments.keys() {
                if seq >= session.welcomed_from {
                    assert!(
                        session.cursor >= seq,
                        "seed {seed}: {} missed comment {seq} (cursor {})",
                        v.user,
                        session.cursor
                    );
                }
            }
        }
    }
}

fn run_seed(seed: u64, shape: Shape) {
    let mut sim = Sim::new(seed, shape);
    let steps = 600 + sim.rng.below(600);
    for _ in 0..steps {
        sim.step();
    }
    // Tallies equal the distinct acknowledged voters when nothing was lost in flight.
    sim.check_end(seed);
    let (_, _, tallies) = match sim.room.poll() {
        Some(p) => p,
        None => return,
    };
    let counted: u64 = tallies.iter().sum();
    if sim.crashes == 0 && sim.losses == 0 {
        assert_eq!(
            counted,
            sim.voters.len() as u64,
            "seed {seed}: tallies are the distinct acknowledged voters"
        );
    }
}

/// Runs `seeds_default` seeds of `shape` (`OVATION_SHARD_SIM_SEEDS` overrides), or the
/// one seed `OVATION_SHARD_SIM_SEED` names.
fn run_seeds(shape: Shape, seeds_default: u64, test: &str) {
    if let Ok(seed) = std::env::var("OVATION_SHARD_SIM_SEED") {
        run_seed(seed.parse().expect("a number"), shape);
        return;
    }
    let seeds: u64 = std::env::var("OVATION_SHARD_SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(seeds_default);
    for seed in 0..seeds {
        let result = std::panic::catch_unwind(|| run_seed(seed, shape));
        if result.is_err() {
            panic!("seed {seed} failed; replay: OVATION_SHARD_SIM_SEED={seed} cargo test -p ovation-room --test shard_sim {test}");
        }
    }
}

#[test]
fn seeded_big_room_simulation_keeps_its_invariants() {
    run_seeds(
        FEW_SHARDS,
        200,
        "seeded_big_room_simulation_keeps_its_invariants",
    );
}

#[test]
fn seeded_room_sharded_for_a_million_with_120_viewers_spaces_its_shard_batches() {
    run_seeds(
        MANY_SHARDS,
        20,
        "seeded_room_sharded_for_a_million_with_120_viewers_spaces_its_shard_batches",
    );
}

#[test]
fn a_comment_above_the_cap_reaches_only_its_sender() {
    let now_ms = 1_000;
    let mut room = Room::create(info_for(FEW_SHARDS.expected_audience), 7, now_ms);
    let up = |user: &str, connection: u64, client_id: u64| ovation_proto::ShardUp {
        shard: 0,
        needs_snapshot: false,
        online: 1,
        likes: 0,
        frames: vec![ovation_proto::RelayedFrame {
            connection,
            user: user.into(),
            name: user.into(),
            role: Role::Viewer,
            frame: ClientFrame::Comment {
                client_id,
                text: format!("from {user}"),
            },
        }],
    };
    // One viewer on one shard: the short tick's share of the per-second cap.
    let cap = ovation_proto::limits::per_tick(SHARDED_COMMENTS_PER_S_MAX, TICK_MS) as u64;
    for i in 0..cap + 3 {
        let batch = up(&format!("u{i}"), i, 1).encode();
        room.shard_up(&batch, now_ms).unwrap();
    }
    room.handle_timeout(now_ms + TICK_MS);
    let mut downs = Vec::new();
    while let Some(output) = room.poll_output() {
        if let Output::ToShard { shard: 0, frame } = output {
            downs.push(ovation_proto::ShardDown::decode(&frame).unwrap());
        }
    }
    assert_eq!(downs.len(), 1, "one batch per shard per tick");
    let down = &downs[0];
    let shown: Vec<u64> = down
        .broadcast
        .iter()
        .filter_map(|e| match e {
            Event::Action(a) if matches!(a.body, ActionBody::Comment { .. }) => Some(a.seq),
            _ => None,
        })
        .collect();
    assert_eq!(shown.len() as u64, cap, "the cap is shown to everyone");
    let own: Vec<(u64, u64)> = down
        .to_connection
        .iter()
        .filter_map(|(c, e)| match e {
            Event::Action(a) => Some((*c, a.seq)),
            _ => None,
        })
        .collect();
    assert_eq!(
        own,
        vec![(cap, cap + 1), (cap + 1, cap + 2), (cap + 2, cap + 3)],
        "each sampled comment goes back to its sender's connection only"
    );
    let acks = down
        .to_connection
        .iter()
        .filter(|(_, e)| matches!(e, Event::Ack { seq: Some(_), .. }))
        .count() as u64;
    assert_eq!(acks, cap + 3, "every comment is acknowledged");
    assert_eq!(room.stats().comments_sampled_out, 3);
}

#[test]
fn a_shard_refuses_a_batch_naming_fewer_shards_than_its_own_place() {
    let mut shard = Shard::new(5, 1_000);
    let down = |shards: u16| ovation_proto::ShardDown {
        seq: 1,
        server_time_ms: 1_000,
        snapshot: None,
        broadcast: Vec::new(),
        to_connection: Vec::new(),
        to_user: Vec::new(),
        close_users: Vec::new(),
        shards,
    };
    for shards in [3, 5] {
        assert!(
            shard.handle_down(&down(shards).encode(), 1_000).is_err(),
            "shard 5 of {shards}"
        );
        assert_eq!(shard.stats().batches_down, 0, "nothing applied");
    }
    shard.handle_down(&down(6).encode(), 1_000).unwrap();
    assert_eq!(shard.stats().batches_down, 1);
    assert_eq!(shard.up_interval_ms(), TICK_MS);
}

/// A like frame retried on a shard after a reconnect (its ack lost with the socket), in
/// the burst a resumed client sends, is acknowledged again and not counted again.
#[test]
fn a_like_retried_on_a_shard_is_acknowledged_not_counted_twice() {
    let mut now_ms = 1_000;
    let mut room = Room::create(info_for(FEW_SHARDS.expected_audience), 7, now_ms);
    let mut shard = Shard::new(0, now_ms);
    let hello = ClientFrame::Hello(Hello {
        protocol_version: PROTOCOL_VERSION,
        resume: None,
    })
    .encode();
    let identity = |user: &str| Identity {
        user: user.into(),
        name: user.into(),
        role: Role::Viewer,
    };
    // Ticks the pair, carrying batches both ways; returns the acks each connection got.
    let exchange = |room: &mut Room, shard: &mut Shard, now_ms: &mut u64| {
        let mut acks: Vec<(u64, u64)> = Vec::new();
        for _ in 0..4 {
            *now_ms += 250;
            shard.handle_timeout(*now_ms);
            room.handle_timeout(*now_ms);
            while let Some(output) = shard.poll_output() {
                match output {
                    ShardOutput::Up(bytes) => room.shard_up(&bytes, *now_ms).unwrap(),
                    ShardOutput::Send { connections, frame } => {
                        let ServerFrame::Batch { events, .. } =
                            ServerFrame::decode(&frame).unwrap();
                        for event in events {
                            if let Event::Ack { client_id, .. } = event {
                                acks.extend(connections.iter().map(|c| (*c, client_id)));
                            }
                        }
                    }
                    _ => {}
                }
            }
            while let Some(output) = room.poll_output() {
                if let Output::ToShard { shard: 0, frame } = output {
                    shard.handle_down(&frame, *now_ms).unwrap();
                }
            }
        }
        acks
    };
    shard
        .connect(1, identity("ana"), CONNECTION_LIFETIME_MS_MIN, now_ms)
        .unwrap();
    shard.handle_frame(1, &hello, now_ms);
    exchange(&mut room, &mut shard, &mut now_ms);
    let like = |client_id| {
        ClientFrame::Like {
            client_id,
            count: 1,
        }
        .encode()
    };
    for id in 1..=10 {
        shard.handle_frame(1, &like(id), now_ms);
        now_ms += 100;
    }
    exchange(&mut room, &mut shard, &mut now_ms);
    let counted = room.likes_total();
    assert_eq!(counted, 10);
    // The socket drops; the client resends everything unacknowledged at once.
    shard.disconnect(1, now_ms);
    shard
        .connect(2, identity("ana"), CONNECTION_LIFETIME_MS_MIN, now_ms)
        .unwrap();
    shard.handle_frame(2, &hello, now_ms);
    exchange(&mut room, &mut shard, &mut now_ms);
    for id in 1..=10 {
        shard.handle_frame(2, &like(id), now_ms);
    }
    let acks = exchange(&mut room, &mut shard, &mut now_ms);
    for id in 1..=10 {
        assert!(
            acks.contains(&(2, id)),
            "retried like {id} acknowledged: {acks:?}"
        );
    }
    assert_eq!(room.likes_total(), counted, "no like counted twice");
}
