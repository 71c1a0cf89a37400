use crate::limits::*;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use serde::{Deserialize, Serialize};

#[cfg(test)]
use proptest_derive::Arbitrary;

/// Who a connection is, from its token. Ordered by privilege.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(test, derive(Arbitrary))]
pub enum Role {
    Viewer,
    Moderator,
    Host,
    Admin,
}

impl Role {
    pub const fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Moderator => "moderator",
            Role::Host => "host",
            Role::Admin => "admin",
        }
    }

    pub fn parse(text: &str) -> Option<Role> {
        [Role::Viewer, Role::Moderator, Role::Host, Role::Admin]
            .into_iter()
            .find(|r| r.as_str() == text)
    }

    /// Host, moderator and admin may steer the room (direct messages, state parts).
    pub const fn is_staff(self) -> bool {
        !matches!(self, Role::Viewer)
    }
}

/// A state part's name and the version the client holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(Arbitrary))]
pub struct PartVersion {
    pub name: String,
    pub version: u64,
}

/// What a reconnecting client already has.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(Arbitrary))]
pub struct Resume {
    pub epoch: u64,
    /// Sequence number of the last action the client saw.
    pub action_cursor: u64,
    pub part_versions: Vec<PartVersion>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(Arbitrary))]
pub struct Hello {
    pub protocol_version: u16,
    pub resume: Option<Resume>,
}

/// The upgrade's query by which a client that resumes nothing says its Hello with the
/// upgrade (`?hello=<protocol version>`; this protocol's is `UPGRADE_HELLO_QUERY`): the room
/// answers Welcome as the socket opens, a round trip sooner, and the client sends no Hello
/// frame (a second Hello is a protocol violation). A client that resumes sends Hello.
pub const UPGRADE_HELLO_PARAM: &str = "hello";
/// `hello=` with this protocol's version, for a path's query.
pub const UPGRADE_HELLO_QUERY: &str = "hello=1";

impl Hello {
    /// The Hello an upgrade's query (the part after `?`) says, if it says one: a version
    /// that is not a number is version 0, which no server speaks (the socket is closed
    /// `unsupported_protocol`, as for a Hello frame of another version).
    pub fn from_upgrade_query(query: &str) -> Option<Hello> {
        let value = query.split('&').find_map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (key == UPGRADE_HELLO_PARAM).then_some(value)
        })?;
        Some(Hello {
            protocol_version: value.parse().unwrap_or(0),
            resume: None,
        })
    }
}

/// Frames a client sends. Append-only.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(Arbitrary))]
pub enum ClientFrame {
    /// Must be the first frame on a connection.
    Hello(Hello),
    Comment {
        client_id: u64,
        text: String,
    },
    Like {
        client_id: u64,
        count: u32,
    },
    Reaction {
        client_id: u64,
        kind: String,
    },
    /// Peer message to every connection of one user (host, moderator, admin only).
    Direct {
        client_id: u64,
        to_user: String,
        payload: String,
    },
    /// Set an app-defined state part to a JSON value (host, moderator, admin only).
    SetPart {
        client_id: u64,
        name: String,
        value: String,
    },
    /// Clock sync sample; answered by `Event::Pong` in the next batch.
    Ping {
        client_time_ms: u64,
    },
    /// Send a gift from the room's catalog. `gift_id` is the idempotency key: a retry
    /// with the same id is charged once.
    Gift {
        client_id: u64,
        gift_id: String,
        sku: String,
        qty: u32,
    },
    /// A vote in the room's open poll: the first vote of a user counts, a repeat is
    /// acknowledged without counting.
    Vote {
        client_id: u64,
        poll_id: String,
        option: u8,
    },
    /// An answer to the open question of a quiz (`question` counts from 0): the first
    /// answer of a user counts, a repeat is acknowledged without counting.
    Answer {
        client_id: u64,
        quiz_id: String,
        question: u16,
        option: u8,
    },
    /// A question for the host's Q&A.
    Ask {
        client_id: u64,
        text: String,
    },
    /// An upvote of a Q&A question; once per user.
    Upvote {
        client_id: u64,
        question_id: String,
    },
    /// A click on the pinned product card.
    ProductClick {
        client_id: u64,
        product_id: String,
    },
    /// A host or moderator command: the JSON of the room's staff command (the same body
    /// as the admin API's), refused `forbidden` for viewers.
    Command {
        client_id: u64,
        command: String,
    },
}

impl ClientFrame {
    pub fn client_id(&self) -> Option<u64> {
        match self {
            ClientFrame::Comment { client_id, .. }
            | ClientFrame::Like { client_id, .. }
            | ClientFrame::Reaction { client_id, .. }
            | ClientFrame::Direct { client_id, .. }
            | ClientFrame::SetPart { client_id, .. }
            | ClientFrame::Gift { client_id, .. }
            | ClientFrame::Vote { client_id, .. }
            | ClientFrame::Answer { client_id, .. }
            | ClientFrame::Ask { client_id, .. }
            | ClientFrame::Upvote { client_id, .. }
            | ClientFrame::ProductClick { client_id, .. }
            | ClientFrame::Command { client_id, .. } => Some(*client_id),
            ClientFrame::Hello(_) | ClientFrame::Ping { .. } => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(Arbitrary))]
pub struct Welcome {
    pub protocol_version: u16,
    pub connection_id: u64,
    pub user: String,
    pub role: Role,
    pub epoch: u64,
    pub total_version: u64,
    /// The room's last action sequence number: the client sees actions after it.
    pub action_cursor: u64,
    /// True when the client's resume state was accepted (same epoch).
    pub resumed: bool,
    pub tick_ms: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(Arbitrary))]
pub enum ActionBody {
    Comment {
        text: String,
    },
    Reaction {
        kind: String,
    },
    /// A broadcast from the admin API; `user` is the admin's id.
    System {
        text: String,
    },
    /// A gift, charged by the settlement service before it is announced.
    Gift {
        sku: String,
        qty: u32,
        amount: u64,
    },
    /// A moderator removed the comment with this sequence number: clients drop it.
    Removed {
        seq: u64,
    },
}

impl ActionBody {
    /// A viewer's or staff member's comment: the only action a moderator may remove (a
    /// `Removed` naming anything else changes nothing).
    pub fn is_comment(&self) -> bool {
        matches!(self, ActionBody::Comment { .. })
    }
}

/// An ephemeral action with its room sequence number.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(Arbitrary))]
pub struct Action {
    pub seq: u64,
    pub ts_ms: u64,
    pub user: String,
    pub name: String,
    pub body: ActionBody,
}

/// Stable, machine-readable error codes carried by `Event::Error`. Append-only.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(test, derive(Arbitrary))]
pub enum ErrorCode {
    RateLimited,
    Forbidden,
    TooLong,
    Invalid,
    NotFound,
    RoomEnded,
    TooMany,
    InsufficientFunds,
    /// A service the room depends on (settlement) failed; retry later with the same id.
    Unavailable,
    /// The poll (or question) no longer takes answers.
    PollClosed,
    /// A moderator muted this user: comments and questions reach no one.
    Muted,
    /// The text matches the room's word filter.
    Blocked,
}

impl ErrorCode {
    /// Every code, in declaration order.
    pub const ALL: [ErrorCode; 12] = [
        ErrorCode::RateLimited,
        ErrorCode::Forbidden,
        ErrorCode::TooLong,
        ErrorCode::Invalid,
        ErrorCode::NotFound,
        ErrorCode::RoomEnded,
        ErrorCode::TooMany,
        ErrorCode::InsufficientFunds,
        ErrorCode::Unavailable,
        ErrorCode::PollClosed,
        ErrorCode::Muted,
        ErrorCode::Blocked,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::TooLong => "too_long",
            ErrorCode::Invalid => "invalid",
            ErrorCode::NotFound => "not_found",
            ErrorCode::RoomEnded => "room_ended",
            ErrorCode::TooMany => "too_many",
            ErrorCode::InsufficientFunds => "insufficient_funds",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::PollClosed => "poll_closed",
            ErrorCode::Muted => "muted",
            ErrorCode::Blocked => "blocked",
        }
    }
}

/// Everything the server tells a connection. Append-only.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(Arbitrary))]
pub enum Event {
    Welcome(Welcome),
    /// A state part at a version (JSON text).
    Part {
        name: String,
        version: u64,
        value: String,
    },
    /// The room's total version after the parts in this batch.
    Version {
        epoch: u64,
        total_version: u64,
    },
    Action(Action),
    /// Actions after `missed_after` up to `resumed_from - 1` are gone from the buffer.
    Gap {
        missed_after: u64,
        resumed_from: u64,
    },
    /// Like total for the room, published at most once per tick.
    Likes {
        total: u64,
    },
    /// Connections online in the room.
    Online {
        count: u32,
    },
    /// A peer message addressed to this connection's user.
    Direct {
        from: String,
        payload: String,
        ts_ms: u64,
    },
    /// The action with this client id was accepted (`seq` for sequenced actions).
    Ack {
        client_id: u64,
        seq: Option<u64>,
    },
    Error {
        client_id: Option<u64>,
        code: ErrorCode,
        message: String,
        retry_after_ms: u32,
    },
    Pong {
        client_time_ms: u64,
        server_time_ms: u64,
    },
    /// Planned end of this connection: reconnect (after the delay) and resume.
    GoAway {
        reconnect_delay_ms: u32,
    },
    RoomEnded,
    /// The sender's balance after a gift (to the sender only).
    Balance {
        balance: u64,
    },
}

impl Event {
    /// Where this event stands among the room's numbered actions: an action's number,
    /// and a `Gap`'s first number after the hole (it goes before the actions from there
    /// on). None for the rest.
    pub fn action_order(&self) -> Option<u64> {
        match self {
            Event::Action(action) => Some(action.seq),
            Event::Gap { resumed_from, .. } => Some(*resumed_from),
            _ => None,
        }
    }
}

/// Frames a server sends. Append-only.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(Arbitrary))]
pub enum ServerFrame {
    /// Everything for one connection from one tick.
    Batch {
        server_time_ms: u64,
        events: Vec<Event>,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// Larger than the frame limit; nothing was decoded.
    TooLarge { bytes: usize, bytes_max: usize },
    /// Not a valid postcard encoding of the frame type, or trailing bytes.
    Malformed,
    /// Decoded, but a field breaks a limit.
    FieldLimit {
        field: &'static str,
        bytes_max: usize,
    },
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::TooLarge { bytes, bytes_max } => {
                write!(f, "frame of {bytes} bytes exceeds {bytes_max}")
            }
            DecodeError::Malformed => f.write_str("malformed frame"),
            DecodeError::FieldLimit { field, bytes_max } => {
                write!(f, "field `{field}` exceeds {bytes_max} bytes")
            }
        }
    }
}

/// Encodes into a `Vec`, which cannot fail: postcard fails only for a full fixed buffer or
/// a sequence of unknown length. Not `expect`: that kept the error's `Debug`, every
/// variant's name, in the SDK's wasm.
pub(crate) fn encode<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    match postcard::to_allocvec(value) {
        Ok(bytes) => bytes,
        Err(_) => unreachable!("encoding into a Vec cannot fail"),
    }
}

pub(crate) fn decode_exact<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, DecodeError> {
    let (value, rest) = postcard::take_from_bytes(bytes).map_err(|_| DecodeError::Malformed)?;
    if !rest.is_empty() {
        return Err(DecodeError::Malformed);
    }
    Ok(value)
}

fn check_len(field: &'static str, text: &str, bytes_max: usize) -> Result<(), DecodeError> {
    if text.len() > bytes_max {
        return Err(DecodeError::FieldLimit { field, bytes_max });
    }
    Ok(())
}

impl ClientFrame {
    /// Decodes a client frame: size checked before decoding, field lengths after.
    pub fn decode(bytes: &[u8]) -> Result<ClientFrame, DecodeError> {
        if bytes.len() > CLIENT_FRAME_BYTES_MAX {
            return Err(DecodeError::TooLarge {
                bytes: bytes.len(),
                bytes_max: CLIENT_FRAME_BYTES_MAX,
            });
        }
        let frame: ClientFrame = decode_exact(bytes)?;
        frame.check_limits()?;
        Ok(frame)
    }

    pub fn check_limits(&self) -> Result<(), DecodeError> {
        match self {
            ClientFrame::Hello(hello) => {
                if let Some(resume) = &hello.resume {
                    if resume.part_versions.len() > ROOM_PARTS_MAX {
                        return Err(DecodeError::FieldLimit {
                            field: "part_versions",
                            bytes_max: ROOM_PARTS_MAX,
                        });
                    }
                    for part in &resume.part_versions {
                        check_len("part_versions.name", &part.name, PART_NAME_BYTES_MAX)?;
                    }
                }
                Ok(())
            }
            ClientFrame::Comment { text, .. } => check_len("text", text, COMMENT_BYTES_MAX),
            ClientFrame::Like { .. } | ClientFrame::Ping { .. } => Ok(()),
            ClientFrame::Reaction { kind, .. } => check_len("kind", kind, REACTION_BYTES_MAX),
            ClientFrame::Direct {
                to_user, payload, ..
            } => {
                check_len("to_user", to_user, USER_ID_BYTES_MAX)?;
                check_len("payload", payload, DIRECT_PAYLOAD_BYTES_MAX)
            }
            ClientFrame::SetPart { name, value, .. } => {
                check_len("name", name, PART_NAME_BYTES_MAX)?;
                check_len("value", value, PART_VALUE_BYTES_MAX)
            }
            ClientFrame::Vote { poll_id, .. } => check_len("poll_id", poll_id, POLL_ID_BYTES_MAX),
            ClientFrame::Answer { quiz_id, .. } => check_len("quiz_id", quiz_id, QUIZ_ID_BYTES_MAX),
            ClientFrame::Ask { text, .. } => check_len("text", text, QA_QUESTION_BYTES_MAX),
            ClientFrame::Upvote { question_id, .. } => {
                check_len("question_id", question_id, QA_ID_BYTES_MAX)
            }
            ClientFrame::ProductClick { product_id, .. } => {
                check_len("product_id", product_id, PRODUCT_ID_BYTES_MAX)
            }
            ClientFrame::Command { command, .. } => {
                check_len("command", command, STAFF_COMMAND_BYTES_MAX)
            }
            ClientFrame::Gift { gift_id, sku, .. } => {
                check_len("gift_id", gift_id, GIFT_ID_BYTES_MAX)?;
                check_len("sku", sku, GIFT_SKU_BYTES_MAX)
            }
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        crate::frames::encode(self)
    }
}

impl ServerFrame {
    pub fn decode(bytes: &[u8]) -> Result<ServerFrame, DecodeError> {
        if bytes.len() > SERVER_FRAME_BYTES_MAX {
            return Err(DecodeError::TooLarge {
                bytes: bytes.len(),
                bytes_max: SERVER_FRAME_BYTES_MAX,
            });
        }
        decode_exact(bytes)
    }

    pub fn encode(&self) -> Vec<u8> {
        crate::frames::encode(self)
    }

    /// `events` encoded as `Batch` frames a client takes: one when it fits in
    /// `SERVER_FRAME_BYTES_MAX` (nearly always), else as few as keep each within it, in
    /// order (a welcome with every part at its limit and a full ring, or a tick's worth
    /// of long messages, is larger). An event is far smaller than the limit (the largest,
    /// a part, is `PART_VALUE_BYTES_MAX` and its name).
    pub fn batches(server_time_ms: u64, events: Vec<Event>) -> Vec<Vec<u8>> {
        let whole = ServerFrame::Batch {
            server_time_ms,
            events,
        };
        let bytes = whole.encode();
        if bytes.len() <= SERVER_FRAME_BYTES_MAX {
            return alloc::vec![bytes];
        }
        let ServerFrame::Batch { events, .. } = whole;
        let mut frames = Vec::new();
        let mut chunk = Vec::new();
        let mut chunk_bytes = BATCH_FIELDS_BYTES_MAX;
        for event in events {
            let event_bytes = encode(&event).len();
            if chunk_bytes + event_bytes > SERVER_FRAME_BYTES_MAX && !chunk.is_empty() {
                let events = core::mem::take(&mut chunk);
                frames.push(
                    ServerFrame::Batch {
                        server_time_ms,
                        events,
                    }
                    .encode(),
                );
                chunk_bytes = BATCH_FIELDS_BYTES_MAX;
            }
            chunk_bytes += event_bytes;
            chunk.push(event);
        }
        if !chunk.is_empty() {
            frames.push(
                ServerFrame::Batch {
                    server_time_ms,
                    events: chunk,
                }
                .encode(),
            );
        }
        frames
    }
}

/// A `Batch` frame's bytes besides its events: the variant, the time and the events'
/// length prefix (varints).
const BATCH_FIELDS_BYTES_MAX: usize = 16;

/// Whether a part name is well formed: 1..=PART_NAME_BYTES_MAX of `[a-z0-9_-]`. The room
/// also refuses names starting with `__` (`Room::set_part`; not checked here, so the
/// SDK's wasm does not carry it).
pub fn is_valid_part_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= PART_NAME_BYTES_MAX
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// The user system messages come from (tallies, queues, notices to one user): no token
/// may name a user so (`sub`), nor a room its host, or it could forge them.
pub const SYSTEM_SENDER: &str = "ovation";
