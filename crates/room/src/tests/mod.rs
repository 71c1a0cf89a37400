//! The room core's tests, one file per module it tests; shared helpers here.

use super::*;

mod audience;
mod connections;
mod dispatch;
mod flush;
mod gifts;
mod moderation;
mod parts_and_store;
mod polls;
mod products;
mod questions;
mod quizzes;
mod ring;
mod shard;
mod staff;

use ovation_proto::{PartVersion, Resume, ShardDown, ShardUp, Snapshot};

pub(crate) fn info() -> RoomInfo {
    RoomInfo {
        room_id: "weur-test".into(),
        host_user: "host".into(),
        title: "Test".into(),
        expected_audience: 100,
    }
}

pub(crate) fn identity(user: &str, role: Role) -> Identity {
    Identity {
        user: user.into(),
        name: user.to_uppercase(),
        role,
    }
}

const LIFETIME_MS: u64 = CONNECTION_LIFETIME_MS_MIN;

/// A staff command from the admin API on the host's behalf.
pub(crate) fn as_host(command: StaffCommand) -> AdminCommand {
    AdminCommand::Staff {
        by: identity("host", Role::Host),
        command,
    }
}

/// Drains outputs into per-connection decoded events, closes, and storage ops.
#[derive(Default)]
struct Drained {
    events: BTreeMap<ConnectionId, Vec<Event>>,
    frames: BTreeMap<ConnectionId, usize>,
    closes: Vec<(ConnectionId, CloseCode)>,
    stores: Vec<StorageOp>,
    charges: Vec<ChargeRequest>,
}

fn drain(room: &mut Room) -> Drained {
    let mut out = Drained::default();
    while let Some(output) = room.poll_output() {
        match output {
            Output::Send { connections, frame } => {
                let ServerFrame::Batch { events, .. } = ServerFrame::decode(&frame).unwrap();
                for connection in connections {
                    out.events
                        .entry(connection)
                        .or_default()
                        .extend(events.iter().cloned());
                    *out.frames.entry(connection).or_default() += 1;
                }
            }
            Output::Close { connection, code } => out.closes.push((connection, code)),
            Output::Store(op) => out.stores.push(op),
            Output::Log(_) => {}
            Output::Charge(charge) => out.charges.push(charge),
            Output::ToShard { .. } => panic!("an unsharded room sends no shard batches"),
        }
    }
    out
}

/// What a host does with storage ops: the store a restarted room is rebuilt from.
fn apply(ops: &[StorageOp], store: &mut BTreeMap<String, Vec<u8>>) {
    for op in ops {
        match op {
            StorageOp::Put { key, value } => {
                store.insert(key.clone(), value.clone());
            }
            StorageOp::Delete { key } => {
                store.remove(key);
            }
        }
    }
}

fn tick(room: &mut Room, now_ms: &mut u64) -> Drained {
    *now_ms += TICK_MS;
    room.handle_timeout(*now_ms);
    drain(room)
}

fn hello(resume: Option<Resume>) -> Vec<u8> {
    ClientFrame::Hello(Hello {
        protocol_version: PROTOCOL_VERSION,
        resume,
    })
    .encode()
}

fn join(room: &mut Room, id: ConnectionId, user: &str, role: Role, now_ms: u64) {
    room.connect(id, identity(user, role), LIFETIME_MS, now_ms)
        .unwrap();
    room.handle_frame(id, &hello(None), now_ms);
}

fn comment(text: &str, client_id: u64) -> Vec<u8> {
    ClientFrame::Comment {
        client_id,
        text: text.into(),
    }
    .encode()
}

fn like_frame(client_id: u64, count: u32) -> Vec<u8> {
    ClientFrame::Like { client_id, count }.encode()
}

fn actions(events: &[Event]) -> Vec<u64> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Action(a) => Some(a.seq),
            _ => None,
        })
        .collect()
}

fn poll_spec(options: usize, window_ms: u64) -> PollSpec {
    PollSpec {
        question: "Best goal?".into(),
        options: (0..options).map(|i| format!("option {i}")).collect(),
        window_ms: Some(window_ms),
        tallies_public: false,
        reveal_on_close: true,
        cue: Some("cue-7".into()),
    }
}

fn vote(poll_id: &str, option: u8, client_id: u64) -> Vec<u8> {
    ClientFrame::Vote {
        client_id,
        poll_id: poll_id.into(),
        option,
    }
    .encode()
}

fn error_codes(events: &[Event]) -> Vec<ErrorCode> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Error { code, .. } => Some(*code),
            _ => None,
        })
        .collect()
}

fn poll_part(events: &[Event]) -> Option<serde_json::Value> {
    part_value(events, "poll")
}

/// The last value of a state part among these events.
fn part_value(events: &[Event], part: &str) -> Option<serde_json::Value> {
    events.iter().rev().find_map(|e| match e {
        Event::Part { name, value, .. } if name == part => {
            Some(serde_json::from_str(value).unwrap())
        }
        _ => None,
    })
}

/// Payloads of the system's direct messages of one type among these events.
fn notices(events: &[Event], kind: &str) -> Vec<serde_json::Value> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Direct { from, payload, .. } if from == SYSTEM_SENDER => {
                let value: serde_json::Value = serde_json::from_str(payload).unwrap();
                (value["type"] == kind).then_some(value)
            }
            _ => None,
        })
        .collect()
}

/// A big room of `shards` shards, created at `now_ms`.
fn sharded_room(epoch: u64, shards: u16, now_ms: u64) -> Room {
    let mut room = Room::create(info(), epoch, now_ms);
    room.admin(AdminCommand::SetShards { shards }, now_ms)
        .unwrap();
    room
}

/// The host on `host` creates `spec` as quiz z1 and opens its first question, as its
/// client would (commands with client ids 1 and 2).
fn open_quiz(room: &mut Room, host: ConnectionId, spec: &QuizSpec, now_ms: u64) {
    let create = serde_json::json!({"command": "create_quiz", "spec": spec});
    send_command(room, host, create, 1, now_ms);
    let next = serde_json::json!({"command": "next_question", "id": "z1"});
    send_command(room, host, next, 2, now_ms);
}

/// A quiz whose questions have (options, correct option).
fn quiz_spec(questions: &[(usize, u8)], window_ms: u64) -> QuizSpec {
    QuizSpec {
        title: "Trivia".into(),
        questions: questions
            .iter()
            .enumerate()
            .map(|(i, &(options, correct))| QuizQuestionSpec {
                question: format!("question {i}"),
                options: (0..options).map(|o| format!("answer {o}")).collect(),
                correct,
                window_ms: Some(window_ms),
                cue: None,
            })
            .collect(),
    }
}

fn answer(quiz_id: &str, question: u16, option: u8, client_id: u64) -> Vec<u8> {
    ClientFrame::Answer {
        client_id,
        quiz_id: quiz_id.into(),
        question,
        option,
    }
    .encode()
}

fn frame_of(frame: ClientFrame) -> Vec<u8> {
    frame.encode()
}

/// A tick whose storage ops are applied to `store` (so the room can be restored).
fn tick_into(room: &mut Room, now_ms: &mut u64, store: &mut BTreeMap<String, Vec<u8>>) -> Drained {
    let out = tick(room, now_ms);
    apply(&out.stores, store);
    out
}

/// A staff command sent over a connection's socket.
fn send_command(
    room: &mut Room,
    connection: ConnectionId,
    command: serde_json::Value,
    client_id: u64,
    now_ms: u64,
) {
    room.handle_frame(connection, &command_frame(command, client_id), now_ms);
}

fn command_frame(command: serde_json::Value, client_id: u64) -> Vec<u8> {
    frame_of(ClientFrame::Command {
        client_id,
        command: command.to_string(),
    })
}

/// The host pins the card `id` (through the admin API).
fn pin(room: &mut Room, id: &str, now_ms: u64) {
    let pin = as_host(StaffCommand::PinProduct {
        product: product(id),
    });
    room.admin(pin, now_ms).unwrap();
}

fn product(id: &str) -> ProductCard {
    ProductCard {
        id: id.into(),
        title: "Red sneakers".into(),
        price: "€89.00".into(),
        image_url: "https://cdn.example.com/red.jpg".into(),
        link: "shop://item/red".into(),
        cue: None,
    }
}

/// Runs one staff command from the admin API on a fresh room.
fn on_fresh_room(command: StaffCommand) -> Result<AdminReply, AdminError> {
    Room::create(info(), 1, 0).admin(as_host(command), 0)
}

/// A shard with the room's state (an empty live room) and one batch down applied.
fn shard_with_state(now_ms: u64) -> Shard {
    let mut shard = Shard::new(0, 1, now_ms);
    let down = first_down(now_ms, Vec::new(), 0);
    shard.handle_down(&down.encode(), now_ms).unwrap();
    shard
}

/// The room's first batch to a shard: a snapshot of a live room with these parts.
pub(crate) fn first_down(
    now_ms: u64,
    parts: Vec<(String, u64, String)>,
    total_version: u64,
) -> ShardDown {
    ShardDown {
        snapshot: Some(Snapshot {
            epoch: 1,
            total_version,
            last_seq: 0,
            likes_total: 0,
            online: 0,
            ended: false,
            parts,
            ring: Vec::new(),
            banned: Vec::new(),
        }),
        ..ShardDown::new(1, now_ms, 1)
    }
}

/// A shard's batch up of opening 1 with `frames` from viewer ana (its connection 4).
fn ana_up(shard: u16, frames: Vec<ClientFrame>, instance: u64, seq: u64) -> ShardUp {
    ShardUp {
        shard,
        needs_snapshot: false,
        online: 1,
        likes: 0,
        frames: frames
            .into_iter()
            .map(|frame| ovation_proto::RelayedFrame {
                connection: 4,
                user: "ana".into(),
                name: "Ana".into(),
                role: Role::Viewer,
                frame,
            })
            .collect(),
        instance,
        seq,
        epoch: 1,
    }
}

/// Ticks the shard until `batches` batches up went out, and decodes them as the room
/// does.
fn batches_up(shard: &mut Shard, now_ms: &mut u64, batches: usize) -> Vec<ShardUp> {
    let mut ups = Vec::new();
    while ups.len() < batches {
        *now_ms += TICK_MS;
        shard.handle_timeout(*now_ms);
        while let Some(output) = shard.poll_output() {
            if let ShardOutput::Up { seq, batch } = output {
                assert!(
                    batch.len() <= RELAY_MESSAGE_BYTES_MAX,
                    "{} bytes",
                    batch.len()
                );
                ups.push(ShardUp::decode(&batch).expect("the room takes the batch"));
                shard.up_answered(seq, UpAnswer::Applied, *now_ms);
            }
        }
    }
    ups
}

/// The sockets a shard closed, and how, draining its output.
fn shard_closes(shard: &mut Shard) -> Vec<(ConnectionId, CloseCode)> {
    std::iter::from_fn(|| shard.poll_output())
        .filter_map(|o| match o {
            ShardOutput::Close { connection, code } => Some((connection, code)),
            _ => None,
        })
        .collect()
}

fn join_shard(shard: &mut Shard, connection: ConnectionId, now_ms: u64) {
    join_shard_resuming(shard, connection, None, now_ms);
}

/// Viewer `v{connection}` connects to the shard and says Hello resuming `resume`.
fn join_shard_resuming(
    shard: &mut Shard,
    connection: ConnectionId,
    resume: Option<Resume>,
    now_ms: u64,
) {
    shard
        .connect(
            connection,
            identity(&format!("v{connection}"), Role::Viewer),
            LIFETIME_MS,
            now_ms,
        )
        .unwrap();
    shard.handle_frame(connection, &hello(resume), now_ms);
}
