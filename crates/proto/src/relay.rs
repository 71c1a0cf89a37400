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
}
