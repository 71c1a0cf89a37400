//! Seeded simulation: two rooms, many clients, random disconnects and resumes, room
//! hibernation and crashes (restore from what was stored), recreation with a new epoch,
//! and random actions. Invariants are checked after every step.
//!
//! `OVATION_SIM_SEEDS=N` sets how many seeds run (default 2000);
//! `OVATION_SIM_SEED=S` replays one seed (a failure prints the command).

mod common;

use common::{gift_totals, Rng};
use ovation_proto::limits::{
    CONNECTION_LIFETIME_MS_MIN, LIKES_PUBLISH_INTERVAL_MS, RING_AGE_MS_MAX, RING_EVENTS_MAX,
    TICK_MS,
};
use ovation_proto::{
    ActionBody, ClientFrame, Event, Hello, PartVersion, Resume, Role, ServerFrame, PROTOCOL_VERSION,
};
use ovation_room::{
    AdminCommand, ChargeOutcome, ChargeRequest, ConnectionId, Identity, Output, Room, RoomInfo,
    StorageOp,
};
use std::collections::{BTreeMap, BTreeSet};

#[derive(Default, Clone)]
struct View {
    epoch: Option<u64>,
    total_version: u64,
    cursor: u64,
    parts: BTreeMap<String, (u64, String)>,
    welcomed: bool,
    last_likes: u64,
}

struct Client {
    user: String,
    role: Role,
    room: usize,
    connection: Option<ConnectionId>,
    view: View,
    next_client_id: u64,
    /// client id → like count, sent and not yet answered.
    likes_in_flight: BTreeMap<u64, u32>,
    sent_comments: u64,
}

struct SimRoom {
    room: Room,
    info: RoomInfo,
    store: BTreeMap<String, Vec<u8>>,
    connections: BTreeMap<ConnectionId, usize>,
    likes_acked: u64,
    /// Likes whose answer can no longer arrive (the connection went away first).
    likes_unknown: u64,
    part_counter: u64,
    /// When each delivered action happened (seq → ts), to judge reported gaps.
    action_ts_ms: BTreeMap<u64, u64>,
}

struct Sim {
    rng: Rng,
    now_ms: u64,
    rooms: Vec<SimRoom>,
    clients: Vec<Client>,
    next_connection: ConnectionId,
    next_epoch: u64,
    /// Charges asked for and not yet answered (the settlement service's queue).
    charges: Vec<(usize, ChargeRequest)>,
    /// The settlement service: balances and charged gift ids, across room restarts.
    oracle_balances: BTreeMap<String, u64>,
    oracle_charged: BTreeSet<(String, String)>,
    /// Per room (this epoch): what each user was charged.
    oracle_totals: Vec<BTreeMap<String, u64>>,
}

fn catalog() -> BTreeMap<String, u64> {
    [("rose".to_owned(), 3), ("rocket".to_owned(), 40)].into()
}

fn info(index: usize) -> RoomInfo {
    RoomInfo {
        room_id: format!("weur-sim-{index}"),
        host_user: format!("host-{index}"),
        title: "sim".into(),
        expected_audience: 10,
    }
}

impl Sim {
    fn new(seed: u64) -> Sim {
        let mut rng = Rng(seed);
        let now_ms = 1_000_000 + rng.below(1_000_000);
        let rooms = (0..2)
            .map(|i| {
                let info = info(i);
                let mut room = Room::create(info.clone(), 100 + i as u64, now_ms);
                room.set_gift_catalog(catalog()).unwrap();
                let mut sim_room = SimRoom {
                    room,
                    info,
                    store: BTreeMap::new(),
                    connections: BTreeMap::new(),
                    likes_acked: 0,
                    likes_unknown: 0,
                    part_counter: 0,
                    action_ts_ms: BTreeMap::new(),
                };
                drain_stores_only(&mut sim_room);
                sim_room
            })
            .collect();
        let mut clients = Vec::new();
        for room in 0..2 {
            let id_space = clients.len() as u64;
            clients.push(Client::new(
                format!("host-{room}"),
                Role::Host,
                room,
                id_space,
            ));
            for i in 0..6 {
                // Users 0 and 1 of each room hold two connections' worth of identity.
                let user = format!("r{room}-u{}", i % 5);
                let id_space = clients.len() as u64;
                clients.push(Client::new(user, Role::Viewer, room, id_space));
            }
        }
        Sim {
            rng,
            now_ms,
            rooms,
            clients,
            next_connection: 1,
            next_epoch: 1_000,
            charges: Vec::new(),
            oracle_balances: BTreeMap::new(),
            oracle_charged: BTreeSet::new(),
            oracle_totals: vec![BTreeMap::new(), BTreeMap::new()],
        }
    }

    fn step(&mut self) {
        match self.rng.below(100) {
            0..=14 => self.connect_someone(),
            15..=22 => self.disconnect_someone(),
            23..=44 => self.comment(),
            45..=54 => self.like(),
            55..=61 => self.direct(),
            62..=67 => self.set_part(),
            68..=69 => self.hibernate(),
            70..=71 => self.crash(),
            72 => self.recreate(),
            73..=75 => self.broadcast(),
            76..=81 => self.gift(),
            82..=86 => self.answer_charges(),
            _ => self.advance(),
        }
        for index in 0..self.rooms.len() {
            self.pump(index);
        }
        self.check_always();
    }

    fn connect_someone(&mut self) {
        let offline: Vec<usize> = (0..self.clients.len())
            .filter(|&c| self.clients[c].connection.is_none())
            .collect();
        if offline.is_empty() {
            return;
        }
        let c = offline[self.rng.below(offline.len() as u64) as usize];
        let id = self.next_connection;
        self.next_connection += 1;
        let client = &mut self.clients[c];
        let room = &mut self.rooms[client.room];
        let identity = Identity {
            user: client.user.clone(),
            name: client.user.clone(),
            role: client.role,
        };
        if room
            .room
            .connect(id, identity, CONNECTION_LIFETIME_MS_MIN, self.now_ms)
            .is_err()
        {
            return;
        }
        room.connections.insert(id, c);
        client.connection = Some(id);
        client.view.welcomed = false;
        let resume = client.view.epoch.map(|epoch| Resume {
            epoch,
            action_cursor: client.view.cursor,
            part_versions: client
                .view
                .parts
                .iter()
                .map(|(name, (version, _))| PartVersion {
                    name: name.clone(),
                    version: *version,
                })
                .collect(),
        });
        let hello = ClientFrame::Hello(Hello {
            protocol_version: PROTOCOL_VERSION,
            resume,
        });
        room.room.handle_frame(id, &hello.encode(), self.now_ms);
    }

    fn online_client(&mut self, filter: impl Fn(&Client) -> bool) -> Option<usize> {
        let online: Vec<usize> = (0..self.clients.len())
            .filter(|&c| {
                let client = &self.clients[c];
                client.connection.is_some() && client.view.welcomed && filter(client)
            })
            .collect();
        if online.is_empty() {
            return None;
        }
        Some(online[self.rng.below(online.len() as u64) as usize])
    }

    fn disconnect_someone(&mut self) {
        let Some(c) = self.online_client(|_| true) else {
            return;
        };
        let id = self.clients[c].connection.expect("online");
        let room_index = self.clients[c].room;
        self.rooms[room_index].room.disconnect(id, self.now_ms);
        self.forget_connection(room_index, id);
    }

    fn forget_connection(&mut self, room_index: usize, id: ConnectionId) {
        if let Some(c) = self.rooms[room_index].connections.remove(&id) {
            let client = &mut self.clients[c];
            client.connection = None;
            let unknown: u64 = client.likes_in_flight.values().map(|&n| u64::from(n)).sum();
            client.likes_in_flight.clear();
            self.rooms[room_index].likes_unknown += unknown;
        }
    }

    fn send(&mut self, c: usize, frame: ClientFrame) {
        let client = &self.clients[c];
        let id = client.connection.expect("online");
        self.rooms[client.room]
            .room
            .handle_frame(id, &frame.encode(), self.now_ms);
    }

    fn comment(&mut self) {
        let Some(c) = self.online_client(|_| true) else {
            return;
        };
        let client = &mut self.clients[c];
        client.sent_comments += 1;
        client.next_client_id += 1;
        let frame = ClientFrame::Comment {
            client_id: client.next_client_id,
            text: format!(
                "room{}:{}:{}",
                client.room, client.user, client.sent_comments
            ),
        };
        self.send(c, frame);
    }

    fn like(&mut self) {
        let Some(c) = self.online_client(|_| true) else {
            return;
        };
        let count = 1 + self.rng.below(8) as u32;
        let client = &mut self.clients[c];
        client.next_client_id += 1;
        let client_id = client.next_client_id;
        client.likes_in_flight.insert(client_id, count);
        self.send(c, ClientFrame::Like { client_id, count });
    }

    fn gift(&mut self) {
        let Some(c) = self.online_client(|_| true) else {
            return;
        };
        let k = self.rng.below(6);
        let client = &mut self.clients[c];
        client.next_client_id += 1;
        // Ids repeat (retries) within an epoch; the same id always carries the same body.
        // Like the SDK's random ids, they are never reused in another room instance.
        let epoch = client.view.epoch.unwrap_or(0);
        let frame = ClientFrame::Gift {
            client_id: client.next_client_id,
            gift_id: format!("{}-e{epoch}-{k}", client.user),
            sku: ["rose", "rocket"][(k % 2) as usize].into(),
            qty: 1 + (k % 3) as u32,
        };
        self.send(c, frame);
    }

    /// The settlement service answers some queued charges.
    fn answer_charges(&mut self) {
        let queued = std::mem::take(&mut self.charges);
        for (index, charge) in queued {
            if self.rng.chance(60) {
                let outcome = self.charge(index, &charge);
                self.rooms[index]
                    .room
                    .charge_result(charge.request, outcome, self.now_ms);
            } else {
                self.charges.push((index, charge));
            }
        }
    }

    fn answer_all_charges_of(&mut self, index: usize) {
        let queued = std::mem::take(&mut self.charges);
        for (room, charge) in queued {
            if room == index {
                let outcome = self.charge(room, &charge);
                self.rooms[room]
                    .room
                    .charge_result(charge.request, outcome, self.now_ms);
            } else {
                self.charges.push((room, charge));
            }
        }
    }

    /// The service's rules: a gift id is charged once per user; funds must suffice.
    fn charge(&mut self, index: usize, charge: &ChargeRequest) -> ChargeOutcome {
        let balance = self
            .oracle_balances
            .entry(charge.user.clone())
            .or_insert(500);
        let key = (charge.user.clone(), charge.gift_id.clone());
        if self.oracle_charged.contains(&key) {
            return ChargeOutcome::Charged {
                balance: *balance,
                replayed: true,
            };
        }
        if *balance < charge.amount {
            return ChargeOutcome::Refused {
                code: ovation_proto::ErrorCode::InsufficientFunds,
                message: "no funds".into(),
            };
        }
        *balance -= charge.amount;
        self.oracle_charged.insert(key);
        *self.oracle_totals[index]
            .entry(charge.user.clone())
            .or_default() += charge.amount;
        ChargeOutcome::Charged {
            balance: *balance,
            replayed: false,
        }
    }

    fn direct(&mut self) {
        let Some(c) = self.online_client(|c| c.role == Role::Host) else {
            return;
        };
        let room = self.clients[c].room;
        let targets: Vec<String> = self
            .clients
            .iter()
            .filter(|t| t.room == room)
            .map(|t| t.user.clone())
            .collect();
        let to_user = targets[self.rng.below(targets.len() as u64) as usize].clone();
        let client = &mut self.clients[c];
        client.next_client_id += 1;
        let frame = ClientFrame::Direct {
            client_id: client.next_client_id,
            payload: format!(r#"{{"to":"{to_user}","room":{room}}}"#),
            to_user,
        };
        self.send(c, frame);
    }

    fn set_part(&mut self) {
        let index = self.rng.below(self.rooms.len() as u64) as usize;
        let name = ["banner", "pinned", "quiz"][self.rng.below(3) as usize];
        let room = &mut self.rooms[index];
        room.part_counter += 1;
        let value = format!(r#"{{"room":{index},"n":{}}}"#, room.part_counter);
        let _ = room.room.admin(
            AdminCommand::SetPart {
                name: name.into(),
                value,
            },
            self.now_ms,
        );
    }

    fn broadcast(&mut self) {
        let index = self.rng.below(self.rooms.len() as u64) as usize;
        let _ = self.rooms[index].room.admin(
            AdminCommand::Broadcast {
                from_user: "admin".into(),
                from_name: "Admin".into(),
                text: format!("room{index}:admin:notice"),
            },
            self.now_ms,
        );
    }

    fn advance(&mut self) {
        let span_ms = if self.rng.chance(10) { 20_000 } else { 120 };
        self.now_ms += 1 + self.rng.below(span_ms);
        for room in &mut self.rooms {
            room.room.handle_timeout(self.now_ms);
        }
    }

    /// Hibernation: the object is evicted while idle; sockets survive and are reattached.
    fn hibernate(&mut self) {
        let index = self.rng.below(self.rooms.len() as u64) as usize;
        // An object waiting on a fetch is not evicted: answer its charges first.
        self.answer_all_charges_of(index);
        self.pump(index);
        self.settle_room(index);
        let room = &mut self.rooms[index];
        let mut restored = Room::restore(room.store.clone(), self.now_ms)
            .expect("stored records restore")
            .expect("room exists");
        for (&id, &c) in &room.connections {
            let client = &self.clients[c];
            // What the host records with the socket when it hears the Hello.
            let hello_heard = room.room.hello_heard(id);
            restored.reattach(
                id,
                Identity {
                    user: client.user.clone(),
                    name: client.user.clone(),
                    role: client.role,
                },
                self.now_ms + CONNECTION_LIFETIME_MS_MIN,
                hello_heard,
                self.now_ms,
            );
        }
        restored.set_gift_catalog(catalog()).unwrap();
        room.room = restored;
    }

    /// A crash at any moment: memory and sockets are gone; storage is what was written.
    fn crash(&mut self) {
        let index = self.rng.below(self.rooms.len() as u64) as usize;
        // Charges in flight die with the process; some reached the service first.
        let queued = std::mem::take(&mut self.charges);
        for (room, charge) in queued {
            if room != index {
                self.charges.push((room, charge));
            } else if self.rng.chance(50) {
                let _ = self.charge(room, &charge);
            }
        }
        let mut restored = Room::restore(self.rooms[index].store.clone(), self.now_ms)
            .expect("stored records restore")
            .expect("room exists");
        restored.set_gift_catalog(catalog()).unwrap();
        self.rooms[index].room = restored;
        let ids: Vec<ConnectionId> = self.rooms[index].connections.keys().copied().collect();
        for id in ids {
            self.forget_connection(index, id);
        }
        // Likes accepted but not yet persisted are lost with the crash, and were never
        // acknowledged: the acknowledged total must be what was restored.
        let room = &mut self.rooms[index];
        assert!(room.room.likes_total() >= room.likes_acked);
        assert!(room.room.likes_total() <= room.likes_acked + room.likes_unknown);
        room.likes_acked = room.room.likes_total();
        room.likes_unknown = 0;
    }

    /// The room is ended and opened again: a new epoch.
    fn recreate(&mut self) {
        let index = self.rng.below(self.rooms.len() as u64) as usize;
        let _ = self.rooms[index].room.admin(AdminCommand::End, self.now_ms);
        self.pump(index);
        // The end's settlement waits for the charges in flight, and the ledger pays the
        // host every one it made: the ended room records each of them too (its state and
        // leaderboard say what the host was paid), though no viewer sees it live.
        self.answer_all_charges_of(index);
        self.pump(index);
        assert_eq!(
            gift_totals(&self.rooms[index].room),
            self.oracle_totals[index],
            "room {index}: the ended room records every gift its host is paid for"
        );
        self.next_epoch += 1;
        self.oracle_totals[index].clear();
        let room = &mut self.rooms[index];
        room.store.clear();
        room.room = Room::create(room.info.clone(), self.next_epoch, self.now_ms);
        room.room.set_gift_catalog(catalog()).unwrap();
        room.likes_acked = 0;
        room.likes_unknown = 0;
        room.action_ts_ms.clear();
        drain_stores_only(room);
    }

    /// Runs ticks until nothing is pending for this room.
    fn settle_room(&mut self, index: usize) {
        while let Some(at) = self.rooms[index].room.tick_pending() {
            self.now_ms = self.now_ms.max(at);
            self.rooms[index].room.handle_timeout(self.now_ms);
            self.pump(index);
        }
    }

    fn settle(&mut self) {
        for index in 0..self.rooms.len() {
            self.pump(index);
            self.answer_all_charges_of(index);
        }
        // Past a like total's publication interval: a total held back by it goes out.
        self.now_ms += TICK_MS.max(LIKES_PUBLISH_INTERVAL_MS);
        for index in 0..self.rooms.len() {
            self.rooms[index].room.handle_timeout(self.now_ms);
            self.pump(index);
            self.settle_room(index);
        }
    }

    fn pump(&mut self, index: usize) {
        while let Some(output) = self.rooms[index].room.poll_output() {
            match output {
                Output::Store(StorageOp::Put { key, value }) => {
                    self.rooms[index].store.insert(key, value);
                }
                Output::Store(StorageOp::Delete { key }) => {
                    self.rooms[index].store.remove(&key);
                }
                Output::Log(_) => {}
                Output::Charge(charge) => self.charges.push((index, charge)),
                Output::ToShard { .. } => panic!("these rooms are not sharded"),
                Output::Close { connection, .. } => self.forget_connection(index, connection),
                Output::Send { connections, frame } => {
                    let ServerFrame::Batch { events, .. } =
                        ServerFrame::decode(&frame).expect("server frames decode");
                    for connection in connections {
                        let c = *self.rooms[index]
                            .connections
                            .get(&connection)
                            .expect("frames go only to connections the room accepted");
                        for event in events.iter().cloned() {
                            self.deliver(index, c, event);
                        }
                    }
                }
            }
        }
    }

    fn deliver(&mut self, room_index: usize, c: usize, event: Event) {
        let client = &mut self.clients[c];
        assert_eq!(client.room, room_index, "delivery across rooms");
        let view = &mut client.view;
        match event {
            Event::Welcome(welcome) => {
                assert!(!view.welcomed, "second Welcome on one connection");
                if view.epoch != Some(welcome.epoch) || !welcome.resumed {
                    assert!(!welcome.resumed || view.epoch == Some(welcome.epoch));
                    view.parts.clear();
                    view.cursor = welcome.action_cursor;
                }
                view.epoch = Some(welcome.epoch);
                view.welcomed = true;
            }
            Event::Part {
                name,
                version,
                value,
            } => {
                assert!(view.welcomed);
                if let Some((held, _)) = view.parts.get(&name) {
                    assert!(version > *held, "part {name} went back or repeated");
                }
                if name == "leaderboard" {
                    // Ranks only this room's gifters.
                    let ranked: Vec<serde_json::Value> = serde_json::from_str(&value).unwrap();
                    for entry in ranked {
                        let user = entry["user"].as_str().unwrap();
                        assert!(
                            user.starts_with(&format!("r{room_index}-"))
                                || user == format!("host-{room_index}"),
                            "leaderboard of room {room_index} ranks {user}"
                        );
                    }
                } else if name != "room" {
                    assert!(
                        value.contains(&format!(r#""room":{room_index}"#)),
                        "part from another room"
                    );
                }
                view.parts.insert(name, (version, value));
            }
            Event::Version {
                epoch,
                total_version,
            } => {
                assert_eq!(Some(epoch), view.epoch);
                view.total_version = total_version;
            }
            Event::Action(action) => {
                assert!(view.welcomed);
                assert_eq!(
                    action.seq,
                    view.cursor + 1,
                    "action skipped or repeated without a gap for {}",
                    client.user
                );
                view.cursor = action.seq;
                self.rooms[room_index]
                    .action_ts_ms
                    .insert(action.seq, action.ts_ms);
                let text = match &action.body {
                    ActionBody::Comment { text } | ActionBody::System { text } => text,
                    ActionBody::Reaction { kind } => kind,
                    ActionBody::Gift { .. } | ActionBody::Removed { .. } => {
                        &format!("room{room_index}:other")
                    }
                };
                assert!(
                    text.starts_with(&format!("room{room_index}:")),
                    "action from another room"
                );
            }
            Event::Gap {
                missed_after,
                resumed_from,
            } => {
                assert_eq!(missed_after, view.cursor);
                assert!(resumed_from > missed_after + 1);
                // A gap is only allowed for actions that left the buffer by its limits.
                let room = &self.rooms[room_index];
                if let Some(&ts_ms) = room.action_ts_ms.get(&(missed_after + 1)) {
                    let too_old = ts_ms + RING_AGE_MS_MAX < self.now_ms;
                    let too_many = room.room.last_seq() - missed_after > RING_EVENTS_MAX as u64;
                    assert!(
                        too_old || too_many,
                        "gap reported for actions still in the buffer"
                    );
                }
                view.cursor = resumed_from - 1;
            }
            Event::Likes { total } => view.last_likes = total,
            Event::Direct { payload, .. } => {
                assert_eq!(
                    payload,
                    format!(r#"{{"to":"{}","room":{room_index}}}"#, client.user),
                    "peer message reached someone else"
                );
            }
            Event::Ack { client_id, .. } => {
                if let Some(count) = client.likes_in_flight.remove(&client_id) {
                    self.rooms[room_index].likes_acked += u64::from(count);
                }
            }
            Event::Error { client_id, .. } => {
                if let Some(id) = client_id {
                    client.likes_in_flight.remove(&id);
                }
            }
            Event::Online { .. }
            | Event::Pong { .. }
            | Event::GoAway { .. }
            | Event::RoomEnded
            | Event::Balance { .. } => {}
        }
    }

    fn check_always(&self) {
        for room in &self.rooms {
            let total = room.room.likes_total();
            assert!(total >= room.likes_acked, "an acknowledged like was lost");
            let in_flight: u64 = self
                .clients
                .iter()
                .flat_map(|c| c.likes_in_flight.values())
                .map(|&n| u64::from(n))
                .sum();
            assert!(total <= room.likes_acked + room.likes_unknown + in_flight);
        }
    }

    /// At a quiet moment every connected client holds the room's state and like total,
    /// and every charged gift is counted once on the leaderboard.
    fn check_converged(&self) {
        for (index, room) in self.rooms.iter().enumerate() {
            assert_eq!(room.room.gifts_pending(), 0, "charges left unanswered");
            assert_eq!(
                gift_totals(&room.room),
                self.oracle_totals[index],
                "room {index} gift totals"
            );
            for &c in room.connections.values() {
                let client = &self.clients[c];
                if !client.view.welcomed {
                    continue;
                }
                let view = &client.view;
                assert_eq!(view.epoch, Some(room.room.epoch()), "{} epoch", client.user);
                assert_eq!(
                    view.total_version,
                    room.room.total_version(),
                    "{} version",
                    client.user
                );
                let parts: BTreeMap<String, (u64, String)> = room
                    .room
                    .part_versions()
                    .map(|(name, version)| {
                        let (_, value) = room.room.part(name).expect("listed");
                        (name.to_owned(), (version, value.to_owned()))
                    })
                    .collect();
                assert_eq!(
                    view.parts, parts,
                    "{} in room {index} holds stale parts",
                    client.user
                );
                assert_eq!(
                    view.last_likes,
                    room.room.likes_total(),
                    "{} like total",
                    client.user
                );
                assert_eq!(
                    view.cursor,
                    room.room.last_seq(),
                    "{} missed actions",
                    client.user
                );
            }
        }
    }
}

impl Client {
    /// Client ids are unique per session, not per user (the room deduplicates retries
    /// by user and client id), so each client counts in its own id space.
    fn new(user: String, role: Role, room: usize, id_space: u64) -> Client {
        Client {
            user,
            role,
            room,
            connection: None,
            view: View::default(),
            next_client_id: id_space << 32,
            likes_in_flight: BTreeMap::new(),
            sent_comments: 0,
        }
    }
}

fn drain_stores_only(room: &mut SimRoom) {
    while let Some(output) = room.room.poll_output() {
        match output {
            Output::Store(StorageOp::Put { key, value }) => {
                room.store.insert(key, value);
            }
            Output::Store(StorageOp::Delete { key }) => {
                room.store.remove(&key);
            }
            other => panic!("a new room has no connections: {other:?}"),
        }
    }
}

fn run_seed(seed: u64) {
    let mut sim = Sim::new(seed);
    for step in 0..300 {
        sim.step();
        if step % 50 == 49 {
            sim.settle();
            sim.check_converged();
        }
    }
    sim.settle();
    sim.check_converged();
}

#[test]
fn seeded_room_simulation_keeps_its_invariants() {
    if let Ok(seed) = std::env::var("OVATION_SIM_SEED") {
        run_seed(seed.parse().expect("OVATION_SIM_SEED is a number"));
        return;
    }
    let seeds: u64 = std::env::var("OVATION_SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2000);
    for seed in 0..seeds {
        if std::panic::catch_unwind(|| run_seed(seed)).is_err() {
            panic!(
                "simulation failed at seed {seed}; replay with \
                 OVATION_SIM_SEED={seed} cargo test -p ovation-room --test sim"
            );
        }
    }
}
