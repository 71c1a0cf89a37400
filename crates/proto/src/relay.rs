//! Room ↔ shard messages of a big room (postcard, like the client protocol, and built
//! from the same `ClientFrame`/`Event` types: a shard forwards its viewers' frames as
//! they came and fans the room's events out unchanged). Append-only, like every enum in
//! this crate.
//!
//! Flow per tick: each shard sends the room one [`ShardUp`] (its online count, likes
//! counted since the last one, the frames only the room can decide); the room sends each
//! shard one [`ShardDown`] (the events for everyone, the answers for single connections,
//! peer messages for the users placed there). With many shards both sides space their
//! batches by `limits::shard_batch_interval_ms_for` of the count each `ShardDown` names.

use crate::frames::{decode_exact, Action, ClientFrame, DecodeError, Event, Role};
use crate::limits::{RELAY_FRAMES_PER_BATCH_MAX, RELAY_MESSAGE_BYTES_MAX, SHARDS_PER_ROOM_MAX};
use alloc::string::String;
use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

/// A viewer's frame that only the room can decide (comments, votes, gifts, …), with who
/// sent it on which of the shard's connections.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelayedFrame {
    /// The shard's own connection id (answers come back addressed to it).
    pub connection: u64,
    pub user: String,
    pub name: String,
    pub role: Role,
    pub frame: ClientFrame,
}

/// One shard's batch for the room (at most one per tick, one at a time: the next is sent
/// after the room answered this one). A batch whose request failed is sent again as it
/// was; the room applies each (`instance`, `seq`) at most once, so the likes a shard
/// acknowledged count exactly once.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardUp {
    pub shard: u16,
    /// The shard holds no copy of the room's state (it just started): the room answers
    /// with a [`Snapshot`].
    pub needs_snapshot: bool,
    /// Connections on the shard that finished their Hello.
    pub online: u32,
    /// Likes accepted since the previous batch.
    pub likes: u64,
    pub frames: Vec<RelayedFrame>,
    /// Names this shard's run of batch numbers: random when a shard starts with no
    /// record, kept with its record across restarts (a shard that lost its record must
    /// not have its new batches taken for repeats of the old ones).
    pub instance: u64,
    /// Numbers the instance's batches from 1 (a batch sent again keeps its number).
    pub seq: u64,
    /// The room's opening the likes were taken in (a shard without a copy of the room
    /// keeps its likes until a snapshot names the opening; a batch without likes names
    /// the shard's copy's, or 0). Likes of another opening are not counted.
    pub epoch: u64,
}

/// What a shard needs to welcome viewers on its own.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    pub epoch: u64,
    pub total_version: u64,
    pub last_seq: u64,
    pub likes_total: u64,
    pub online: u32,
    pub ended: bool,
    /// name, version, value
    pub parts: Vec<(String, u64, String)>,
    /// The room's action ring (what a resuming viewer may still get).
    pub ring: Vec<Action>,
    /// Users refused at connect.
    pub banned: Vec<String>,
}

/// The room's batch for one shard (at most one per tick).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardDown {
    /// Numbers this room instance's batches to the shard from 1 without gaps, so a shard
    /// notices a lost batch (and asks for a snapshot) instead of showing a hole.
    pub seq: u64,
    pub server_time_ms: u64,
    /// Present when the shard asked for it (or the room restarted); applied first.
    pub snapshot: Option<Snapshot>,
    /// Events for every viewer of the shard (actions, parts, likes, online, …).
    pub broadcast: Vec<Event>,
    /// Events for one connection of the shard (acks, refusals, a sampled comment's
    /// own copy).
    pub to_connection: Vec<(u64, Event)>,
    /// Events for every connection of one user on the shard (peer messages).
    pub to_user: Vec<(String, Event)>,
    /// Users whose connections close with this code (`CloseCode::code`), and who are
    /// refused from now on when it is `Banned`.
    pub close_users: Vec<(String, u16)>,
    /// Users no longer banned (`close_users` comes after: a ban of the same tick after
    /// the unban stays). Without it a shard learnt an unban only from a whole snapshot,
    /// and a moderator's ban/unban churn kept the room sending states.
    pub unbanned_users: Vec<String>,
    /// The room's shard count now (1..=`SHARDS_PER_ROOM_MAX`): the shard spaces its
    /// batches up by `limits::shard_batch_interval_ms_for` of it.
    pub shards: u16,
}

impl ShardUp {
    pub fn encode(&self) -> Vec<u8> {
        crate::frames::encode(self)
    }

    /// Decodes and checks the frame count (`RELAY_FRAMES_PER_BATCH_MAX`) and each
    /// forwarded frame's limits (a shard is our code, but the bytes crossed a network).
    pub fn decode(bytes: &[u8]) -> Result<ShardUp, DecodeError> {
        check_size(bytes)?;
        let up: ShardUp = decode_exact(bytes)?;
        if up.frames.len() > RELAY_FRAMES_PER_BATCH_MAX {
            return Err(DecodeError::FieldLimit {
                field: "frames",
                bytes_max: RELAY_FRAMES_PER_BATCH_MAX,
            });
        }
        for relayed in &up.frames {
            relayed.frame.check_limits()?;
        }
        if up.shard >= SHARDS_PER_ROOM_MAX {
            return Err(DecodeError::Malformed);
        }
        Ok(up)
    }
}

impl ShardDown {
    pub fn encode(&self) -> Vec<u8> {
        crate::frames::encode(self)
    }

    pub fn decode(bytes: &[u8]) -> Result<ShardDown, DecodeError> {
        check_size(bytes)?;
        let down: ShardDown = decode_exact(bytes)?;
        if !(1..=SHARDS_PER_ROOM_MAX).contains(&down.shards) {
            return Err(DecodeError::Malformed);
        }
        Ok(down)
    }

    /// Batch `seq` for a room of `shards` shards, with nothing in it yet.
    pub fn new(seq: u64, server_time_ms: u64, shards: u16) -> ShardDown {
        ShardDown {
            seq,
            server_time_ms,
            snapshot: None,
            broadcast: Vec::new(),
            to_connection: Vec::new(),
            to_user: Vec::new(),
            close_users: Vec::new(),
            unbanned_users: Vec::new(),
            shards,
        }
    }

    /// This batch as batches that each encode within `bytes_max` (the room passes
    /// `RELAY_MESSAGE_BYTES_MAX`, past which a shard refuses a batch whole, and with it
    /// the acknowledgements in it). A shard sends each piece to its sockets as it applies
    /// it, each connection's own events before the broadcast, so the pieces go in the
    /// order a socket gets one batch: the snapshot first, with the connections' own
    /// actions (numbered among the actions it brings); the answers to connections and the
    /// peer messages; the broadcast, with each connection's own actions (numbered among
    /// its: a sampled comment) before the first broadcast action numbered after it and
    /// before a `RoomEnded`, so no client sees a number below its cursor; the closes last.
    /// A `RoomEnded`, a ban, or a snapshot of an ended room (which goes after the answers)
    /// in an early piece would close the sockets the later pieces' answers are for. Each
    /// piece keeps `seq` (the room numbers them). An entry is far smaller than a batch's
    /// bound (the largest is a part, `PART_VALUE_BYTES_MAX` and its name), and so is a
    /// snapshot; one that is not goes alone in its piece.
    pub fn split_within(self, bytes_max: usize) -> Vec<ShardDown> {
        let ShardDown {
            seq,
            server_time_ms,
            snapshot,
            broadcast,
            to_connection,
            to_user,
            close_users,
            unbanned_users,
            shards,
        } = self;
        let empty = ShardDown::new(seq, server_time_ms, shards);
        // An empty piece's bytes, and room for the lists' length prefixes to grow
        // (varints of at most 5 bytes each for five lists).
        let empty_bytes = empty.encode().len() + 20;
        let mut split = Splitter {
            pieces: Vec::new(),
            bytes: empty_bytes,
            current: empty.clone(),
            empty,
            empty_bytes,
            bytes_max,
        };
        let (mut own_actions, answers): (Vec<_>, Vec<_>) =
            to_connection
                .into_iter()
                .partition(|(_, event): &(u64, Event)| {
                    // A connection's `Gap` for its own actions left out goes with them, after
                    // the last it follows.
                    matches!(event, Event::Action(_) | Event::Gap { .. })
                });
        own_actions.sort_by_key(|(_, event)| event.action_order());
        let mut own_actions = own_actions.into_iter().peekable();
        // A batch that ends the room (its `RoomEnded`, a snapshot of the ended room) makes
        // the shard close its sockets once that piece is sent: the end goes in the last
        // piece, after everything else. Otherwise a snapshot goes first: it brings the
        // actions a shard missed, up to this tick's last, and the connections' own actions
        // go in its piece, where the shard puts them among those by number.
        let ends = snapshot.as_ref().is_some_and(|s| s.ended)
            || broadcast.iter().any(|e| matches!(e, Event::RoomEnded));
        let mut snapshot = snapshot;
        if !ends && snapshot.is_some() {
            split.add_snapshot(snapshot.take());
            for entry in own_actions.by_ref() {
                split.add(entry, |down| &mut down.to_connection);
            }
        }
        for entry in answers {
            split.add(entry, |down| &mut down.to_connection);
        }
        for entry in to_user {
            split.add(entry, |down| &mut down.to_user);
        }
        let mut ended = Vec::new();
        for event in broadcast {
            if matches!(event, Event::RoomEnded) {
                ended.push(event);
                continue;
            }
            let next_seq = event.action_order();
            while let Some(entry) =
                own_actions.next_if(|(_, e)| next_seq.is_some_and(|n| e.action_order() < Some(n)))
            {
                split.add(entry, |down| &mut down.to_connection);
            }
            split.add(event, |down| &mut down.broadcast);
        }
        for entry in own_actions {
            split.add(entry, |down| &mut down.to_connection);
        }
        split.add_snapshot(snapshot.take());
        for event in ended {
            split.add(event, |down| &mut down.broadcast);
        }
        for user in unbanned_users {
            split.add(user, |down| &mut down.unbanned_users);
        }
        for entry in close_users {
            split.add(entry, |down| &mut down.close_users);
        }
        split.pieces.push(split.current);
        split.pieces
    }

    /// Nothing for the shard: not sent.
    pub fn is_empty(&self) -> bool {
        self.snapshot.is_none()
            && self.broadcast.is_empty()
            && self.to_connection.is_empty()
            && self.to_user.is_empty()
            && self.close_users.is_empty()
            && self.unbanned_users.is_empty()
    }
}

/// `ShardDown::split_within`'s pieces as they fill.
struct Splitter {
    pieces: Vec<ShardDown>,
    current: ShardDown,
    /// What `current` encodes to, at most.
    bytes: usize,
    empty: ShardDown,
    empty_bytes: usize,
    bytes_max: usize,
}

impl Splitter {
    /// The snapshot, in the current piece unless it would pass the bound there.
    fn add_snapshot(&mut self, snapshot: Option<Snapshot>) {
        let Some(snapshot) = snapshot else {
            return;
        };
        self.make_room(crate::frames::encode(&snapshot).len());
        self.current.snapshot = Some(snapshot);
    }

    fn add<T: Serialize>(&mut self, entry: T, list: fn(&mut ShardDown) -> &mut Vec<T>) {
        self.make_room(crate::frames::encode(&entry).len());
        list(&mut self.current).push(entry);
    }

    /// Room for `bytes` more: a new piece when the current one would pass the bound (an
    /// entry alone past it still goes, alone).
    fn make_room(&mut self, bytes: usize) {
        if self.bytes + bytes > self.bytes_max && !self.current.is_empty() {
            let full = core::mem::replace(&mut self.current, self.empty.clone());
            self.pieces.push(full);
            self.bytes = self.empty_bytes;
        }
        self.bytes += bytes;
    }
}

fn check_size(bytes: &[u8]) -> Result<(), DecodeError> {
    if bytes.len() > RELAY_MESSAGE_BYTES_MAX {
        return Err(DecodeError::TooLarge {
            bytes: bytes.len(),
            bytes_max: RELAY_MESSAGE_BYTES_MAX,
        });
    }
    Ok(())
}

/// The shard (`0..shards`) a user is placed on: jump consistent hash (Lamping & Veach)
/// of the user id's FNV-1a, so growing from S to S' shards moves only (S' − S)/S' of the
/// users, and never between two old shards.
pub fn shard_of(user: &str, shards: u16) -> u16 {
    assert!(shards > 0, "a sharded room has at least one shard");
    let mut key = fnv1a(user.as_bytes());
    let (mut bucket, mut jump) = (-1_i64, 0_i64);
    while jump < i64::from(shards) {
        bucket = jump;
        key = key.wrapping_mul(2_862_933_555_777_941_757).wrapping_add(1);
        jump = ((bucket + 1) as f64 * ((1_u64 << 31) as f64 / ((key >> 33) + 1) as f64)) as i64;
    }
    u16::try_from(bucket).expect("below shards")
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;

    #[test]
    fn placement_is_stable_spread_and_moves_few_users_when_growing() {
        let users: Vec<String> = (0..20_000).map(|i| format!("user-{i}")).collect();
        let mut counts = [0_u32; 8];
        for user in &users {
            let shard = shard_of(user, 8);
            assert_eq!(shard, shard_of(user, 8), "stable");
            counts[usize::from(shard)] += 1;
        }
        for count in counts {
            assert!((2_000..3_000).contains(&count), "spread: {counts:?}");
        }
        let moved = users
            .iter()
            .filter(|u| shard_of(u, 8) != shard_of(u, 10))
            .count();
        // Ideal: 2/10 of the users move, each to one of the new shards.
        assert!((3_400..4_600).contains(&moved), "moved {moved}");
        for user in &users {
            let (old, new) = (shard_of(user, 8), shard_of(user, 10));
            assert!(old == new || new >= 8, "{user} moved between old shards");
        }
        assert!(users.iter().all(|u| shard_of(u, 1) == 0));
    }

    #[test]
    fn relay_messages_round_trip_and_check_limits() {
        let up = ShardUp {
            shard: 3,
            needs_snapshot: true,
            online: 7,
            likes: 12,
            instance: u64::MAX,
            seq: u64::MAX,
            epoch: u64::MAX,
            frames: alloc::vec![RelayedFrame {
                connection: 9,
                user: "u".into(),
                name: "U".into(),
                role: Role::Viewer,
                frame: ClientFrame::Comment {
                    client_id: 1,
                    text: "hi".into(),
                },
            }],
        };
        assert_eq!(ShardUp::decode(&up.encode()), Ok(up.clone()));
        let mut long = up.clone();
        long.frames[0].frame = ClientFrame::Comment {
            client_id: 1,
            text: "x".repeat(crate::limits::COMMENT_BYTES_MAX + 1),
        };
        assert!(matches!(
            ShardUp::decode(&long.encode()),
            Err(DecodeError::FieldLimit { field: "text", .. })
        ));
        let mut bad = up.encode();
        bad.push(0);
        assert_eq!(ShardUp::decode(&bad), Err(DecodeError::Malformed));
        let down = ShardDown {
            seq: 1,
            server_time_ms: 5,
            snapshot: None,
            broadcast: alloc::vec![Event::Likes { total: 3 }],
            to_connection: alloc::vec![(
                9,
                Event::Ack {
                    client_id: 1,
                    seq: Some(4)
                }
            )],
            to_user: alloc::vec![],
            close_users: alloc::vec![("u".into(), 4403)],
            unbanned_users: alloc::vec!["v".into()],
            shards: 4,
        };
        assert_eq!(ShardDown::decode(&down.encode()), Ok(down.clone()));
        for shards in [0, SHARDS_PER_ROOM_MAX + 1] {
            let odd = ShardDown {
                shards,
                ..down.clone()
            };
            assert_eq!(
                ShardDown::decode(&odd.encode()),
                Err(DecodeError::Malformed),
                "{shards} shards"
            );
        }
    }

    fn comments(count: usize) -> ShardUp {
        let relayed = RelayedFrame {
            connection: 1,
            user: "u".into(),
            name: "U".into(),
            role: Role::Viewer,
            frame: ClientFrame::Comment {
                client_id: 1,
                text: "hi".into(),
            },
        };
        ShardUp {
            shard: 0,
            needs_snapshot: false,
            online: 1,
            likes: 0,
            frames: alloc::vec![relayed; count],
            instance: 1,
            seq: 1,
            epoch: 1,
        }
    }

    #[test]
    fn a_batch_up_takes_relay_frames_per_batch_max_frames_and_is_refused_one_past() {
        let full = comments(RELAY_FRAMES_PER_BATCH_MAX);
        assert_eq!(ShardUp::decode(&full.encode()), Ok(full));
        assert_eq!(
            ShardUp::decode(&comments(RELAY_FRAMES_PER_BATCH_MAX + 1).encode()),
            Err(DecodeError::FieldLimit {
                field: "frames",
                bytes_max: RELAY_FRAMES_PER_BATCH_MAX,
            })
        );
    }

    /// A batch down of exactly `RELAY_MESSAGE_BYTES_MAX` bytes (a snapshot's parts can be
    /// large) decodes; one byte more is refused before decoding, either way.
    #[test]
    fn relay_messages_take_relay_message_bytes_max_and_are_refused_one_past() {
        let down_with = |value_bytes: usize| ShardDown {
            seq: 1,
            server_time_ms: 0,
            snapshot: None,
            broadcast: alloc::vec![Event::Part {
                name: "big".into(),
                version: 1,
                value: "x".repeat(value_bytes),
            }],
            to_connection: alloc::vec![],
            to_user: alloc::vec![],
            close_users: alloc::vec![],
            unbanned_users: alloc::vec![],
            shards: 1,
        };
        let guess = RELAY_MESSAGE_BYTES_MAX - 1_000;
        let overhead = down_with(guess).encode().len() - guess;
        let at_limit = down_with(RELAY_MESSAGE_BYTES_MAX - overhead);
        assert_eq!(at_limit.encode().len(), RELAY_MESSAGE_BYTES_MAX);
        assert_eq!(ShardDown::decode(&at_limit.encode()), Ok(at_limit));
        let one_past = down_with(RELAY_MESSAGE_BYTES_MAX - overhead + 1).encode();
        assert_eq!(one_past.len(), RELAY_MESSAGE_BYTES_MAX + 1);
        let too_large = DecodeError::TooLarge {
            bytes: RELAY_MESSAGE_BYTES_MAX + 1,
            bytes_max: RELAY_MESSAGE_BYTES_MAX,
        };
        assert_eq!(ShardDown::decode(&one_past), Err(too_large.clone()));
        assert_eq!(ShardUp::decode(&one_past), Err(too_large));
    }

    /// A tick's batch past the bound (a staff burst of the largest parts, a quiz's
    /// notices to thousands of users) goes as pieces a shard takes, which hold every
    /// entry once, in the order one batch would apply them, the snapshot first. At the
    /// real bound and at a small one, and at the edges: a batch that fits is one piece,
    /// an entry that alone passes the bound goes alone.
    #[test]
    fn a_batch_down_past_the_bound_splits_into_pieces_a_shard_takes_in_order() {
        let part = |n: usize| Event::Part {
            name: alloc::format!("board{n}"),
            version: n as u64,
            value: "x".repeat(crate::limits::PART_VALUE_BYTES_MAX),
        };
        let notice = |n: usize| {
            (
                alloc::format!("user{n}"),
                Event::Direct {
                    from: "quiz".into(),
                    payload: alloc::format!("{{\"score\":{n}}}"),
                    ts_ms: 1,
                },
            )
        };
        let snapshot = Snapshot {
            epoch: 7,
            total_version: 1,
            last_seq: 0,
            likes_total: 0,
            online: 0,
            ended: false,
            parts: alloc::vec![("room".into(), 1, "{}".into())],
            ring: Vec::new(),
            banned: alloc::vec!["mallory".into()],
        };
        let big = ShardDown {
            seq: 0,
            server_time_ms: 5,
            snapshot: Some(snapshot),
            broadcast: (0..1_500)
                .map(part)
                .chain(core::iter::once(Event::RoomEnded))
                .collect(),
            to_connection: (0..3_000)
                .map(|n| {
                    (
                        n as u64,
                        Event::Ack {
                            client_id: n as u64,
                            seq: None,
                        },
                    )
                })
                .collect(),
            to_user: (0..40_000).map(notice).collect(),
            close_users: alloc::vec![("mallory".into(), 4403)],
            unbanned_users: alloc::vec!["eve".into()],
            shards: 4,
        };
        assert!(big.encode().len() > RELAY_MESSAGE_BYTES_MAX);
        for bytes_max in [RELAY_MESSAGE_BYTES_MAX, 100_000] {
            let pieces = big.clone().split_within(bytes_max);
            assert!(pieces.len() >= 2, "{bytes_max}");
            let mut whole = ShardDown::new(big.seq, big.server_time_ms, big.shards);
            // The answers and peer messages come before the end, the closes after it.
            let ended_in = pieces
                .iter()
                .position(|p| p.broadcast.contains(&Event::RoomEnded))
                .expect("the end is sent");
            assert!(pieces[ended_in + 1..]
                .iter()
                .all(|p| p.to_connection.is_empty() && p.to_user.is_empty()));
            assert!(pieces[..ended_in].iter().all(|p| p.close_users.is_empty()));
            let count = pieces.len();
            for (i, piece) in pieces.into_iter().enumerate() {
                let bytes = piece.encode();
                assert!(bytes.len() <= bytes_max, "piece {i}: {} bytes", bytes.len());
                assert!(!piece.is_empty(), "piece {i} is empty");
                assert_eq!(ShardDown::decode(&bytes).as_ref(), Ok(&piece));
                // The batch ends the room: its snapshot goes with the end, last.
                assert_eq!(piece.snapshot.is_some(), i == count - 1, "piece {i}");
                assert_eq!((piece.shards, piece.server_time_ms), (4, 5));
                whole.snapshot = whole.snapshot.or(piece.snapshot);
                whole.broadcast.extend(piece.broadcast);
                whole.to_connection.extend(piece.to_connection);
                whole.to_user.extend(piece.to_user);
                whole.close_users.extend(piece.close_users);
                whole.unbanned_users.extend(piece.unbanned_users);
            }
            assert_eq!(whole, big, "{bytes_max}: every entry once, in order");
        }
        // One that fits is itself; an entry past a tiny bound goes alone.
        let small = ShardDown {
            broadcast: alloc::vec![part(1)],
            ..ShardDown::new(big.seq, big.server_time_ms, big.shards)
        };
        let pieces = small.clone().split_within(RELAY_MESSAGE_BYTES_MAX);
        assert_eq!(pieces.len(), 1);
        assert_eq!(pieces[0], small);
        let alone = ShardDown {
            broadcast: alloc::vec![part(1), part(2)],
            ..small
        };
        let pieces = alone.split_within(1_000);
        assert_eq!(pieces.len(), 2);
        assert!(pieces.iter().all(|p| p.broadcast.len() == 1));
    }

    /// A comment shown to its sender only travels in `to_connection`, numbered among the
    /// broadcast's actions: split, it still reaches its shard before any broadcast action
    /// numbered after it (a client drops an action numbered below its cursor as seen).
    #[test]
    fn split_pieces_keep_a_connections_own_action_before_later_broadcast_actions() {
        use crate::frames::{Action, ActionBody};
        let action = |seq: u64| Action {
            seq,
            ts_ms: seq,
            user: "u".into(),
            name: "U".into(),
            body: ActionBody::Comment {
                text: "x".repeat(300),
            },
        };
        let down = ShardDown {
            broadcast: (1..=20)
                .filter(|&s| s != 7)
                .map(|s| Event::Action(action(s)))
                .collect(),
            to_connection: alloc::vec![(4, Event::Action(action(7)))],
            ..ShardDown::new(0, 0, 1)
        };
        let ended = ShardDown {
            snapshot: Some(Snapshot {
                epoch: 1,
                total_version: 1,
                last_seq: 19,
                likes_total: 0,
                online: 0,
                ended: true,
                parts: Vec::new(),
                ring: Vec::new(),
                banned: Vec::new(),
            }),
            broadcast: alloc::vec![Event::Action(action(20)), Event::RoomEnded],
            to_connection: (0..40)
                .map(|n| {
                    (
                        n,
                        Event::Ack {
                            client_id: n,
                            seq: None,
                        },
                    )
                })
                .chain(core::iter::once((4, Event::Action(action(21)))))
                .collect(),
            ..down.clone()
        };
        // A snapshot of a live room goes first, and the connections' own actions with it
        // (the shard puts them among the actions it brings by number).
        let live_snapshot = ShardDown {
            snapshot: Some(Snapshot {
                ended: false,
                ..ended.snapshot.clone().unwrap()
            }),
            ..down.clone()
        };
        let pieces = live_snapshot.split_within(1_500);
        assert!(pieces.len() > 2 && pieces[0].snapshot.is_some());
        assert!(pieces[0]
            .to_connection
            .iter()
            .any(|(_, e)| matches!(e, Event::Action(a) if a.seq == 7)));
        let pieces = ended.split_within(400);
        let ends_at = pieces
            .iter()
            .position(|p| p.snapshot.is_some() || p.broadcast.contains(&Event::RoomEnded))
            .unwrap();
        assert_eq!(
            ends_at,
            pieces.len() - 1,
            "the end is the last piece: {pieces:?}"
        );
        let answered: usize = pieces.iter().map(|p| p.to_connection.len()).sum();
        assert_eq!(answered, 41);
        let pieces = down.clone().split_within(1_500);
        assert!(pieces.len() > 3);
        // Within a piece the shard puts a connection's own actions among the broadcast's
        // by number (`merge_actions`); across pieces, they come in piece order.
        let mut seqs = Vec::new();
        for piece in &pieces {
            let events = piece
                .to_connection
                .iter()
                .map(|(_, e)| e)
                .chain(&piece.broadcast);
            let mut in_piece: Vec<u64> = events
                .map(|e| match e {
                    Event::Action(a) => a.seq,
                    other => panic!("{other:?}"),
                })
                .collect();
            in_piece.sort_unstable();
            seqs.extend(in_piece);
        }
        assert_eq!(seqs, (1..=20).collect::<Vec<_>>());

        // A connection's `Gap` for its own actions left out (given before them) goes
        // with them, after the last it follows: never in an earlier piece.
        let gapped = ShardDown {
            to_connection: alloc::vec![
                (
                    4,
                    Event::Gap {
                        missed_after: 7,
                        resumed_from: 9,
                    },
                ),
                (4, Event::Action(action(7))),
            ],
            ..down.clone()
        };
        let pieces = gapped.split_within(1_500);
        let own: Vec<(usize, &Event)> = pieces
            .iter()
            .enumerate()
            .flat_map(|(i, p)| p.to_connection.iter().map(move |(_, e)| (i, e)))
            .collect();
        assert!(
            matches!(own[0].1, Event::Action(a) if a.seq == 7),
            "{own:?}"
        );
        assert!(matches!(own[1].1, Event::Gap { .. }), "{own:?}");
        assert!(own[0].0 <= own[1].0);
    }
}
