//! The simulation harness: links with random delays, viewers and their sessions, the
//! room's and shards' wiring and what each connection must see (`Sim`), the two room
//! shapes, and running seeds. The random steps, crashes, restarts and the end-of-run
//! checks are in `sim/steps.rs`.

mod gifts;
mod steps;

use crate::common::Rng;
use ovation_proto::limits::{
    shard_batch_interval_ms_for, shards_for_audience, CONNECTION_LIFETIME_MS_MIN,
    ONLINE_REFRESH_MS, SHARDS_PER_ROOM_MAX, TICK_MS,
};
use ovation_proto::{
    shard_of, ClientFrame, Event, Hello, Resume, Role, ServerFrame, PROTOCOL_VERSION,
};
use ovation_room::{
    AdminCommand, Identity, Output, PollSpec, Room, RoomInfo, Shard, ShardOutput, StaffCommand,
    StorageOp, UpAnswer,
};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// Messages in flight, each delivered at its `at_ms` (links keep their order).
struct Link<T = Vec<u8>> {
    queue: VecDeque<(u64, T)>,
}

impl<T> Link<T> {
    fn new() -> Link<T> {
        Link {
            queue: VecDeque::new(),
        }
    }
    fn send(&mut self, at_ms: u64, message: T) {
        let at_ms = self
            .queue
            .back()
            .map_or(at_ms, |(last, _)| at_ms.max(*last));
        self.queue.push_back((at_ms, message));
    }
    fn due(&mut self, now_ms: u64) -> Option<T> {
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
    /// Like frames sent and not answered: client id → count.
    likes_pending: BTreeMap<u64, u64>,
    /// Gifts started and not yet answered for good (an `Ack`, or a refusal no retry
    /// changes): gift id → its frame as last sent. Kept across sessions: the SDK resends
    /// its pending actions after the next Welcome, and an application retries a gift
    /// answered `unavailable` under the same gift id.
    gifts_open: BTreeMap<String, ClientFrame>,
    /// The gift frame each unanswered client id carried.
    gift_client_ids: BTreeMap<u64, String>,
    /// A Welcome came: the open gifts go again.
    resend_gifts: bool,
}

/// The shape of one simulated room.
#[derive(Clone, Copy)]
pub(crate) struct Shape {
    pub(crate) expected_audience: u64,
    /// The shard count grows up to this while live.
    shards_max: u16,
    viewers: usize,
}

/// Few shards, busy ones: every shard batches up at the short tick.
pub(crate) const FEW_SHARDS: Shape = Shape {
    expected_audience: 12_000, // 3 shards
    shards_max: 6,
    viewers: 40,
};

/// A room shaped for a million viewers (200 shards, growing to the most a room may have)
/// with 120 simulated viewers spread over them: the batch pacing depends on the shard
/// count, not on the viewers, so each shard spaces its batches up to 200–250 ms and the
/// room takes at most its target.
pub(crate) const MANY_SHARDS: Shape = Shape {
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
    /// A shard's batch up (its number and bytes) on its way to the room, and the room's
    /// answer on its way back.
    up: Vec<Link<(u64, Vec<u8>)>>,
    answers: Vec<Link<(u64, UpAnswer)>>,
    /// What each shard last stored (`ShardOutput::Persist`): a crashed shard restarts
    /// from it.
    records: Vec<Option<Vec<u8>>>,
    /// Likes sent in frames, and likes whose `Ack` reached their viewer.
    pub(crate) likes_sent: u64,
    pub(crate) likes_acked: u64,
    /// Likes refused (their frame answered with an `Error`): never counted.
    pub(crate) likes_refused: u64,
    viewers: Vec<Viewer>,
    next_connection: u64,
    /// Acknowledged comments: seq → flushed at (room time) .
    acked_comments: BTreeMap<u64, u64>,
    /// Actions the room kept (stored as `action/<seq>`). A comment above a big room's cap
    /// takes a number but is not kept: only its sender sees it, so the others see a hole
    /// made only of numbers never kept.
    kept: BTreeSet<u64>,
    /// Every comment delivered (its sender and text, unique in a run) → its number: a
    /// batch applied twice would show one comment under two numbers.
    comment_seqs: BTreeMap<(String, String), u64>,
    /// Users whose vote in the current poll was acknowledged.
    voters: BTreeSet<String>,
    poll: Option<String>,
    polls_opened: u64,
    directs_to: BTreeMap<String, u64>,
    /// Users the room bans now, and every user it ever banned (a shard may close or
    /// refuse one for a ban undone since, until it learns the unban).
    banned: BTreeSet<String>,
    ever_banned: BTreeSet<String>,
    bans_and_unbans: u64,
    crashes: u64,
    losses: u64,
    /// Flushes that held a shard's output (summed over the room's restarts).
    flushes_held: u64,
    /// The end's settling: links stall no more.
    settling: bool,
    /// Batches on each down link sent by a room instance that crashed since: their
    /// delivery is not reported to the restored room (a real host's queue dies with it).
    down_of_a_dead_room: Vec<usize>,
    /// When each shard (as it is now, since its last crash) last sent the room a batch,
    /// and when the room last sent each shard one.
    up_sent_at_ms: Vec<Option<u64>>,
    down_sent_at_ms: Vec<Option<u64>>,
    /// The settlement service and the link to it (`sim/gifts.rs`).
    settlement: gifts::Settlement,
}

pub(crate) fn info_for(expected_audience: u64) -> RoomInfo {
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
            answers: Vec::new(),
            records: Vec::new(),
            likes_sent: 0,
            likes_acked: 0,
            likes_refused: 0,
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
                    likes_pending: BTreeMap::new(),
                    gifts_open: BTreeMap::new(),
                    gift_client_ids: BTreeMap::new(),
                    resend_gifts: false,
                })
                .collect(),
            next_connection: 1,
            acked_comments: BTreeMap::new(),
            kept: BTreeSet::new(),
            comment_seqs: BTreeMap::new(),
            voters: BTreeSet::new(),
            poll: None,
            polls_opened: 0,
            directs_to: BTreeMap::new(),
            banned: BTreeSet::new(),
            ever_banned: BTreeSet::new(),
            bans_and_unbans: 0,
            crashes: 0,
            losses: 0,
            flushes_held: 0,
            settling: false,
            down_of_a_dead_room: Vec::new(),
            up_sent_at_ms: Vec::new(),
            down_sent_at_ms: Vec::new(),
            settlement: gifts::Settlement::default(),
        };
        sim.room
            .set_gift_catalog(ovation_room::default_gift_catalog())
            .expect("the catalog");
        sim.grow_links();
        sim.pump_room();
        sim
    }

    fn grow_links(&mut self) {
        let wanted = usize::from(self.room.shards());
        while self.shards.len() < wanted {
            let index = u16::try_from(self.shards.len()).unwrap();
            let instance = self.rng.next();
            self.shards
                .push(Some(Shard::new(index, instance, self.now_ms)));
            self.down.push(Link::new());
            self.down_of_a_dead_room.push(0);
            self.up.push(Link::new());
            self.answers.push(Link::new());
            self.records.push(None);
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
                Output::Store(op) => {
                    if let StorageOp::Put { key, .. } = &op {
                        if let Some(seq) = key.strip_prefix("action/") {
                            self.kept.insert(seq.parse().expect("a number"));
                        }
                    }
                    store_op(&mut self.store, op)
                }
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
                    // Now and then a shard answers slowly (seconds): the batches after
                    // queue behind it until the room holds that shard's output.
                    let at = self.now_ms
                        + if !self.settling && self.rng.chance(1) {
                            1_000 + self.rng.below(2_000)
                        } else {
                            self.delay()
                        };
                    self.down[usize::from(shard)].send(at, frame);
                }
                Output::Send { .. } | Output::Close { .. } => {
                    panic!("viewers of a sharded room are on shards")
                }
                Output::Charge(charge) => {
                    let at = self.now_ms + self.delay();
                    self.settlement.asked(at, charge);
                }
                Output::Log(_) => {}
            }
        }
    }

    fn pump_shard(&mut self, index: usize) {
        loop {
            let Some(output) = self.shards[index].as_mut().and_then(Shard::poll_output) else {
                return;
            };
            match output {
                ShardOutput::Persist(record) => self.records[index] = Some(record),
                ShardOutput::Up { seq, batch: bytes } => {
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
                    self.up[index].send(at, (seq, bytes));
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
                    let user = self.viewers[viewer].user.clone();
                    self.end_session(viewer);
                    if code.code() == 4403 {
                        assert!(self.ever_banned.contains(&user), "{user} closed banned");
                    }
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
        v.likes_pending.clear();
        // A gift's answer may never come; the gift stays open and goes again.
        v.gift_client_ids.clear();
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
                v.resend_gifts = !v.gifts_open.is_empty();
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
                let sampled_out = (session.cursor + 1..action.seq).all(|s| !self.kept.contains(&s));
                assert!(
                    action.seq == session.cursor + 1 || sampled_out,
                    "{user}: action {} after {} with no Gap (shard {})",
                    action.seq,
                    session.cursor,
                    session.shard
                );
                session.cursor = action.seq;
                assert!(v.seen.insert(action.seq) || action.seq <= v.cursor);
                if let ovation_proto::ActionBody::Comment { text } = &action.body {
                    let key = (action.user.clone(), text.clone());
                    let first = *self.comment_seqs.entry(key).or_insert(action.seq);
                    assert_eq!(
                        first, action.seq,
                        "{} by {} shown twice: applied twice",
                        text, action.user
                    );
                }
            }
            Event::Ack { client_id, seq } => {
                if let Some(poll) = v.votes_pending.remove(&client_id) {
                    if Some(&poll) == self.poll.as_ref() {
                        self.voters.insert(user.clone());
                    }
                }
                if let Some(count) = v.likes_pending.remove(&client_id) {
                    self.likes_acked += count;
                }
                if let Some(gift_id) = v.gift_client_ids.remove(&client_id) {
                    assert!(
                        self.settlement.charged(&user, &gift_id),
                        "{user}'s gift {gift_id} acknowledged, never charged"
                    );
                    v.gifts_open.remove(&gift_id);
                }
                if v.comments_pending.remove(&client_id).is_some() {
                    let seq = seq.expect("comments get a sequence number");
                    if self.kept.contains(&seq) {
                        self.acked_comments.insert(seq, self.now_ms);
                    }
                }
            }
            Event::Error {
                client_id: Some(id),
                code,
                ..
            } => {
                if let Some(gift_id) = v.gift_client_ids.remove(&id) {
                    // Refused for want of funds: never charged, and no retry changes
                    // that. Any other refusal (unavailable, the rate, in flight) is
                    // retried under the same gift id.
                    if code == ovation_proto::ErrorCode::InsufficientFunds {
                        assert!(
                            !self.settlement.charged(&user, &gift_id),
                            "{user}'s charged gift {gift_id} refused for funds"
                        );
                        v.gifts_open.remove(&gift_id);
                    }
                }
                v.votes_pending.remove(&id);
                v.comments_pending.remove(&id);
                if let Some(count) = v.likes_pending.remove(&id) {
                    self.likes_refused += count;
                }
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
        match s.connect(
            connection,
            identity,
            CONNECTION_LIFETIME_MS_MIN,
            self.now_ms,
        ) {
            Ok(()) => {}
            // Banned, or unbanned and the shard has not heard yet.
            Err(ovation_proto::CloseCode::Banned) if self.ever_banned.contains(&v.user) => {
                return;
            }
            Err(code) => panic!("{} refused {code:?}: a live room takes viewers", v.user),
        }
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
}

/// What one seed made happen, summed over seeds to show the faults were reached.
#[derive(Default)]
struct SeedCounts {
    bans_and_unbans: u64,
    /// Flushes that held a shard behind (`RoomStats::shard_flushes_held`).
    shard_flushes_held: u64,
    /// Charges the service made whose answer was lost, and charges in flight that reached
    /// it as the room died.
    charge_answers_lost: u64,
    charges_lost_in_crashes: u64,
}

/// Runs one seed.
fn run_seed(seed: u64, shape: Shape) -> SeedCounts {
    let mut sim = Sim::new(seed, shape);
    let steps = 600 + sim.rng.below(600);
    for _ in 0..steps {
        sim.step();
    }
    sim.check_end(seed);
    // Tallies equal the distinct acknowledged voters when nothing was lost in flight.
    if let Some((_, _, tallies)) = sim.room.poll() {
        let counted: u64 = tallies.iter().sum();
        if sim.crashes == 0 && sim.losses == 0 {
            assert_eq!(
                counted,
                sim.voters.len() as u64,
                "seed {seed}: tallies are the distinct acknowledged voters"
            );
        }
    }
    sim.check_gifts(seed);
    SeedCounts {
        bans_and_unbans: sim.bans_and_unbans,
        shard_flushes_held: sim.flushes_held + sim.room.stats().shard_flushes_held,
        charge_answers_lost: sim.settlement.answers_lost,
        charges_lost_in_crashes: sim.settlement.lost_in_crashes,
    }
}

/// Runs `seeds_default` seeds of `shape` (`OVATION_SHARD_SIM_SEEDS` overrides), or the
/// one seed `OVATION_SHARD_SIM_SEED` names.
pub(crate) fn run_seeds(shape: Shape, seeds_default: u64, test: &str) {
    if let Ok(seed) = std::env::var("OVATION_SHARD_SIM_SEED") {
        run_seed(seed.parse().expect("a number"), shape);
        return;
    }
    let mut made = SeedCounts::default();
    let seeds: u64 = std::env::var("OVATION_SHARD_SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(seeds_default);
    for seed in 0..seeds {
        let result = std::panic::catch_unwind(|| run_seed(seed, shape));
        match result {
            Ok(counts) => {
                made.bans_and_unbans += counts.bans_and_unbans;
                made.shard_flushes_held += counts.shard_flushes_held;
                made.charge_answers_lost += counts.charge_answers_lost;
                made.charges_lost_in_crashes += counts.charges_lost_in_crashes;
            }
            Err(_) => panic!("seed {seed} failed; replay: OVATION_SHARD_SIM_SEED={seed} cargo test -p ovation-room --test shard_sim {test}"),
        }
    }
    if seeds >= 20 {
        assert!(
            made.bans_and_unbans > 0,
            "the seeds banned and unbanned nobody"
        );
        assert!(made.shard_flushes_held > 0, "no seed held a shard behind");
        assert!(
            made.charge_answers_lost > 0 && made.charges_lost_in_crashes > 0,
            "the seeds lost no charge's answer ({}) or no charge in a crash ({})",
            made.charge_answers_lost,
            made.charges_lost_in_crashes
        );
    }
}
