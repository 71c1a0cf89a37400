//! The room core's public types: who is connected, what the host feeds in (`AdminCommand`,
//! `ChargeOutcome`) and drains out (`Output`, `AdminReply`, `AdminError`, `RoomStats`).

use super::*;

/// Who is on a connection (from the verified token).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub user: String,
    pub name: String,
    pub role: Role,
}

/// Fixed facts about a room, given when it is created.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RoomInfo {
    pub room_id: String,
    pub host_user: String,
    pub title: String,
    pub expected_audience: u64,
}

/// Whether a tenant whose directory lists `live_rooms` rooms may open one more: at most
/// `DIRECTORY_ROOMS_MAX` are live at once (the directory admits a room before it is
/// created, so a room is never live unlisted).
pub fn admit_live_room(live_rooms: usize) -> Result<(), AdminError> {
    if live_rooms >= DIRECTORY_ROOMS_MAX {
        return Err(AdminError::TooManyRooms);
    }
    Ok(())
}

impl RoomInfo {
    /// The limits a new room's facts must keep (`POST /v1/rooms` answers 400 with the
    /// error's code). The room id's own rule is `ovation_proto::RoomId::parse`.
    pub fn validate(&self) -> Result<(), AdminError> {
        if self.host_user.is_empty() {
            return Err(AdminError::Empty { field: "host" });
        }
        if self.host_user.len() > USER_ID_BYTES_MAX {
            return Err(AdminError::TooLong {
                field: "host",
                bytes_max: USER_ID_BYTES_MAX,
            });
        }
        // System messages come from this user: a host so named could forge them.
        if self.host_user == ovation_proto::SYSTEM_SENDER {
            return Err(AdminError::Invalid(format!(
                "`host` `{}` is the system's",
                ovation_proto::SYSTEM_SENDER
            )));
        }
        // The ledger refuses them in an account's name: the room's opening there failed
        // 502 `settlement_unavailable` ("retry") for ever.
        if self.host_user.chars().any(char::is_control) {
            return Err(AdminError::Invalid("`host` has control characters".into()));
        }
        if self.title.len() > ROOM_TITLE_BYTES_MAX {
            return Err(AdminError::TooLong {
                field: "title",
                bytes_max: ROOM_TITLE_BYTES_MAX,
            });
        }
        if self.expected_audience > EXPECTED_AUDIENCE_MAX {
            return Err(AdminError::Invalid(format!(
                "`expected_audience` is at most {EXPECTED_AUDIENCE_MAX}"
            )));
        }
        Ok(())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum RoomStatus {
    Live,
    Ended,
}

impl RoomStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RoomStatus::Live => "live",
            RoomStatus::Ended => "ended",
        }
    }
}

/// What the host must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Send this binary frame (an encoded `ServerFrame`) to each of these connections
    /// (encoded once: most ticks most connections get the same batch).
    Send {
        connections: Vec<ConnectionId>,
        frame: Vec<u8>,
    },
    /// Close the socket with this code; the room has already forgotten the connection.
    Close {
        connection: ConnectionId,
        code: CloseCode,
    },
    /// Persist (apply in order).
    Store(StorageOp),
    /// A refusal or abnormal close, for one structured log line.
    Log(LogRecord),
    /// Charge a gift at the settlement service, then call [`Room::charge_result`].
    Charge(ChargeRequest),
    /// Deliver this batch (an encoded `ShardDown`) to the room's shard; batches to one
    /// shard must arrive in order (each is numbered; a shard asks for a snapshot after a
    /// gap).
    ToShard { shard: u16, frame: Vec<u8> },
}

/// Why a read of the room over HTTP (`Room::admit_read`) is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadRefused {
    /// A moderator banned this user: 403 `banned`.
    Banned,
    /// Past the user's read rate (`USER_READS_PER_S`): 429 `rate_limited`, retry after.
    RateLimited { retry_after_ms: u32 },
}

impl ReadRefused {
    pub fn http_status(self) -> u16 {
        match self {
            ReadRefused::Banned => 403,
            ReadRefused::RateLimited { .. } => 429,
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            ReadRefused::Banned => "banned",
            ReadRefused::RateLimited { .. } => "rate_limited",
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            ReadRefused::Banned => "banned from this room",
            ReadRefused::RateLimited { .. } => "too many reads of this room",
        }
    }
}

/// A gift to charge: the sender pays `amount` for `qty` of `sku`; `gift_id` is the
/// client's idempotency key.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ChargeRequest {
    pub request: u64,
    pub gift_id: String,
    pub user: String,
    pub sku: String,
    pub qty: u32,
    pub amount: u64,
}

/// What the settlement service answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChargeOutcome {
    /// `replayed`: this gift id was charged before; it is not announced again.
    Charged {
        balance: u64,
        replayed: bool,
    },
    Refused {
        code: ErrorCode,
        message: String,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogRecord {
    pub event: &'static str,
    pub connection: Option<ConnectionId>,
    pub user: Option<String>,
    pub code: &'static str,
    pub detail: String,
}

/// Admin API commands (already authorized by the host).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AdminCommand {
    SetPart {
        name: String,
        value: String,
    },
    Broadcast {
        from_user: String,
        from_name: String,
        text: String,
    },
    Direct {
        from_user: String,
        to_user: String,
        payload: String,
    },
    End,
    /// Grow the room to this many shards (a room becomes sharded this way too).
    SetShards {
        shards: u16,
    },
    /// Polls, quizzes, Q&A, products, moderation: what hosts and moderators run, here
    /// from the admin API on behalf of `by`.
    Staff {
        by: Identity,
        command: StaffCommand,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AdminReply {
    PartSet {
        version: u64,
    },
    Broadcast {
        seq: u64,
    },
    /// How many connections of the target user the message went to.
    Direct {
        connections: u32,
    },
    Ended,
    Poll {
        id: String,
        phase: PollPhase,
        tallies: Vec<u64>,
    },
    /// A staff command's result, as the JSON the admin API answers.
    Done(serde_json::Value),
}

impl AdminReply {
    /// The admin API's JSON answer (also sent to a staff socket after its command).
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            AdminReply::PartSet { version } => serde_json::json!({ "version": version }),
            AdminReply::Broadcast { seq } => serde_json::json!({ "seq": seq }),
            AdminReply::Direct { connections } => serde_json::json!({ "connections": connections }),
            AdminReply::Ended => serde_json::json!({ "status": "ended" }),
            AdminReply::Poll { id, phase, tallies } => {
                serde_json::json!({ "id": id, "phase": phase.as_str(), "tallies": tallies })
            }
            AdminReply::Done(value) => value.clone(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AdminError {
    RoomEnded,
    InvalidPartName,
    ReservedPart,
    TooManyParts,
    TooLong {
        field: &'static str,
        bytes_max: usize,
    },
    InvalidJson,
    Empty {
        field: &'static str,
    },
    /// A poll spec breaks a limit (the message says which).
    InvalidPoll(String),
    PollNotFound,
    /// A poll is open already: close it first.
    PollOpen,
    /// A staff command's input breaks a limit (the message says which).
    Invalid(String),
    /// The command does not fit the room's state now (a question is open, …).
    Refused(String),
    NotFound(&'static str),
    /// Viewers run no staff command; only hosts end the room.
    Forbidden,
    /// The tenant has `DIRECTORY_ROOMS_MAX` live rooms (see [`admit_live_room`]).
    TooManyRooms,
    /// `GET /v1/rooms?status=` names no list the directory keeps.
    UnsupportedStatus,
}

impl AdminError {
    /// Stable machine-readable code for the HTTP API.
    pub fn code(&self) -> &'static str {
        match self {
            AdminError::RoomEnded => "room_ended",
            AdminError::InvalidPartName => "invalid_part_name",
            AdminError::ReservedPart => "reserved_part",
            AdminError::TooManyParts => "too_many_parts",
            AdminError::TooLong { .. } => "too_long",
            AdminError::InvalidJson => "invalid_json",
            AdminError::Empty { .. } => "empty",
            AdminError::InvalidPoll(_) => "invalid_poll",
            AdminError::PollNotFound => "not_found",
            AdminError::PollOpen => "poll_open",
            AdminError::Invalid(_) => "invalid",
            AdminError::Refused(_) => "conflict",
            AdminError::NotFound(_) => "not_found",
            AdminError::Forbidden => "forbidden",
            AdminError::TooManyRooms => "too_many_rooms",
            AdminError::UnsupportedStatus => "unsupported_status",
        }
    }

    pub fn message(&self) -> String {
        match self {
            AdminError::RoomEnded => "the room has ended".into(),
            AdminError::InvalidPartName => {
                format!(
                    "part names are 1..={PART_NAME_BYTES_MAX} bytes of a-z, 0-9, '_', '-', not \
                     starting with '__'"
                )
            }
            AdminError::ReservedPart => "this part is owned by the room".into(),
            AdminError::TooManyParts => format!("a room holds at most {PARTS_COUNT_MAX} parts"),
            AdminError::TooLong { field, bytes_max } => {
                format!("`{field}` is longer than {bytes_max} bytes")
            }
            AdminError::InvalidJson => "value is not valid JSON".into(),
            AdminError::Empty { field } => format!("`{field}` must not be empty"),
            AdminError::InvalidPoll(message) => message.clone(),
            AdminError::PollNotFound => "no such poll (only the room's latest poll)".into(),
            AdminError::PollOpen => "a poll is open: close it first".into(),
            AdminError::Invalid(message) | AdminError::Refused(message) => message.clone(),
            AdminError::NotFound(message) => (*message).into(),
            AdminError::Forbidden => "not allowed for this role".into(),
            AdminError::TooManyRooms => {
                format!("a tenant has at most {DIRECTORY_ROOMS_MAX} live rooms: end one first")
            }
            AdminError::UnsupportedStatus => "the directory lists live or archived rooms: use \
                                              ?status=live or ?status=archived"
                .into(),
        }
    }

    /// The HTTP status the admin API answers with.
    pub fn http_status(&self) -> u16 {
        match self {
            AdminError::RoomEnded | AdminError::PollOpen | AdminError::Refused(_) => 409,
            AdminError::PollNotFound | AdminError::NotFound(_) => 404,
            AdminError::Forbidden => 403,
            AdminError::TooManyRooms => 429,
            _ => 400,
        }
    }
}

/// Counters for observability, since the room object last woke.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct RoomStats {
    pub connections: u32,
    pub connections_total: u64,
    pub frames_in: u64,
    pub bytes_in: u64,
    pub frames_out: u64,
    pub bytes_out: u64,
    pub rate_limited: u64,
    /// Frames retried by a client after a reconnect and acknowledged without re-applying.
    pub retries_acknowledged: u64,
    /// Upgrades refused for the user's connect rate (`ConnectRateLimited`).
    pub connects_rate_limited: u64,
    /// HTTP reads the room object refused for the user's read rate (the Worker refuses
    /// most of a flood before it reaches the object: these got through another isolate).
    pub reads_rate_limited: u64,
    /// Poll votes counted, and repeats acknowledged without counting.
    pub votes_counted: u64,
    pub votes_repeated: u64,
    /// Comments and questions refused because the sender is muted or the word filter.
    pub muted_refused: u64,
    pub filtered_refused: u64,
    pub dropped: u64,
    /// Big rooms: batches from and to shards, and comments shown to their senders only.
    pub shard_batches_in: u64,
    /// Batches a shard sent again that the room had applied (their answer was lost).
    pub shard_batches_repeated: u64,
    /// Likes in shards' batches of an opening that ended (logged, not counted).
    pub shard_likes_of_another_opening: u64,
    /// Frames in shards' batches of an opening that ended (refused `room_ended`).
    pub shard_frames_of_another_opening: u64,
    pub shard_batches_out: u64,
    /// Flushes that held a shard's output because its batches in flight were at
    /// `SHARD_DOWN_BATCHES_IN_FLIGHT_MAX` (merged into its next batch).
    pub shard_flushes_held: u64,
    /// Answers for single connections held for a shard behind and dropped past
    /// `SHARD_HELD_ANSWERS_MAX` (their senders time out).
    pub shard_answers_dropped: u64,
    pub comments_sampled_out: u64,
    /// Big rooms: viewers' upgrades this room object named a shard for. The router then
    /// remembers the room's shard count (`ShardRoutes`), so later joins skip the room.
    pub sockets_routed_to_shards: u64,
    pub closed_by_reason: BTreeMap<String, u64>,
}

pub(crate) fn admin_error_code(error: &AdminError) -> ErrorCode {
    match error {
        AdminError::RoomEnded => ErrorCode::RoomEnded,
        AdminError::TooLong { .. } => ErrorCode::TooLong,
        AdminError::TooManyParts | AdminError::TooManyRooms => ErrorCode::TooMany,
        AdminError::ReservedPart | AdminError::Forbidden => ErrorCode::Forbidden,
        AdminError::InvalidPartName
        | AdminError::InvalidJson
        | AdminError::Empty { .. }
        | AdminError::InvalidPoll(_)
        | AdminError::PollOpen
        | AdminError::Invalid(_)
        | AdminError::Refused(_)
        | AdminError::UnsupportedStatus => ErrorCode::Invalid,
        AdminError::PollNotFound | AdminError::NotFound(_) => ErrorCode::NotFound,
    }
}
