//! The client core's public types: its configuration, what it asks the host to do
//! (`Transmit`), what it hands the application (`ClientEvent`, `RoomState`), and the pull
//! answers.

use super::*;

/// Which transport the application asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransportMode {
    /// WebSocket; pull after `CLIENT_WS_FAILURES_BEFORE_PULL` failures in a row while no
    /// socket of the session has said Welcome (or when the room is full).
    Auto,
    Ws,
    Pull,
}

impl TransportMode {
    pub fn parse(text: &str) -> Option<TransportMode> {
        match text {
            "auto" => Some(TransportMode::Auto),
            "ws" => Some(TransportMode::Ws),
            "pull" => Some(TransportMode::Pull),
            _ => None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    Ws,
    Pull,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Connecting,
    Open,
    Reconnecting,
    Closed,
}

#[derive(Clone, Debug)]
pub struct Config {
    /// Room id (with its region prefix).
    pub room: String,
    pub transport: TransportMode,
    /// Seeds backoff jitter and client ids. Give each client a random one.
    pub seed: u64,
}

/// What the host must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Transmit {
    /// Open a WebSocket to `path` (relative to the service URL; the host adds the token).
    /// Later calls about it carry `socket`.
    OpenSocket { socket: u64, path: String },
    /// Send a binary frame on the socket.
    Send { socket: u64, frame: Vec<u8> },
    /// Send a text frame (the heartbeat, answered by the server without waking the room).
    SendText { socket: u64, text: &'static str },
    /// Close the socket. The client has already forgotten it: events still arriving from
    /// it are ignored, and no `handle_socket_closed` is needed.
    CloseSocket {
        socket: u64,
        code: u16,
        reason: String,
    },
    /// GET `path` (relative to the service URL) and answer with `handle_fetch`.
    Fetch {
        request: u64,
        path: String,
        kind: FetchKind,
    },
}

/// How the host parses a pull answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FetchKind {
    /// JSON into [`PullState`].
    State,
    /// The body as text (a part's JSON value).
    Part,
    /// JSON into [`PullEvents`].
    Events,
}

/// The room's refusal codes, which [`FailureCode::Refused`] carries.
pub use ovation_proto::ErrorCode;

/// The pull answers are the edge's own types (`ovation_proto::pull`).
pub use ovation_proto::{PullAction, PullEvents, PullState};

/// The host's answer to a [`Transmit::Fetch`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FetchReply {
    State(PullState),
    /// A part's value: at the version asked for, or at `newer` when the part had moved on
    /// (the answer's `x-ovation-part-version`, [`ovation_proto::PART_VERSION_HEADER`]).
    Part {
        value: String,
        newer: Option<u64>,
    },
    Events(PullEvents),
    /// HTTP error (with the API's error code), a network failure (`status` 0), or a 2xx
    /// answer whose body is not the API's (`bad_response`, with its 2xx `status`).
    Failed {
        status: u16,
        code: FailureCode,
        message: String,
    },
}

/// A failure's stable code, as the application reads it (`error.code`, the snake_case
/// name): the room's refusals, the client's own, or a code of the HTTP API the client
/// passes on. One type from the frame to the application; text only at the JavaScript edge.
#[derive(Debug, PartialEq, Eq)]
pub enum FailureCode {
    /// A rule the room keeps: the room's refusal, or the client checking the same rule
    /// before sending (`invalid`, `too_long`, `too_many`, `room_ended`, ...).
    Refused(ErrorCode),
    /// No answer within `CLIENT_ACTION_TIMEOUT_MS`: it may or may not have been applied.
    Timeout,
    /// The session closed before the action was answered (or started).
    Closed,
    /// No socket to send the action on within `CLIENT_ACTION_TIMEOUT_MS` (reconnecting
    /// all along): never sent, so never applied; safe to send again.
    NotSent,
    /// Like frames sent without an answer before the session ended or switched to pull:
    /// they may or may not have been counted.
    Unconfirmed,
    /// The pull transport only receives.
    UnsupportedTransport,
    /// The server does not speak this SDK's protocol.
    UnsupportedProtocol,
    /// This user holds the most sockets a room allows.
    TooManySockets,
    /// A moderator banned this user from the room.
    Banned,
    /// The server sent a frame this client cannot decode: the client reconnects. Not
    /// `bad_frame`, the server's close for a frame it could not read, which ends a
    /// session.
    BadServerFrame,
    /// A request failed on the network (or its body could not be read).
    Network,
    /// A pull answer that does not have the API's shape.
    BadResponse,
    /// Another code of the HTTP API (`token_expired`, `room_not_found`, `http_<status>`
    /// for an answer without one, ...), as the server named it: the client acts on the
    /// HTTP status, not on these.
    Api(String),
}

impl FailureCode {
    /// An HTTP answer's code: a room refusal's name is that refusal; another code the
    /// server named is kept as it is; none is `http_<status>`. Out of line (see `limit`):
    /// it runs only for a failed request.
    #[inline(never)]
    pub fn from_api(status: u16, code: Option<&str>) -> FailureCode {
        let Some(code) = code else {
            return FailureCode::Api(json::with_number("http_", u64::from(status), ""));
        };
        for refusal in ErrorCode::ALL {
            if is_named(refusal, code) {
                return FailureCode::Refused(refusal);
            }
        }
        FailureCode::Api(code.to_owned())
    }

    /// Out of line: inlined, its table was copied into every caller.
    #[inline(never)]
    pub fn as_str(&self) -> &str {
        match self {
            FailureCode::Refused(code) => code.as_str(),
            FailureCode::Timeout => "timeout",
            FailureCode::Closed => "closed",
            FailureCode::NotSent => "not_sent",
            FailureCode::Unconfirmed => "unconfirmed",
            FailureCode::UnsupportedTransport => "unsupported_transport",
            FailureCode::UnsupportedProtocol => "unsupported_protocol",
            FailureCode::TooManySockets => "too_many_sockets",
            FailureCode::Banned => "banned",
            FailureCode::BadServerFrame => "bad_server_frame",
            FailureCode::Network => "network",
            FailureCode::BadResponse => "bad_response",
            FailureCode::Api(code) => code,
        }
    }
}

/// Out of line: inlined into `from_api`'s unrolled search it cost 0.3 KB of wasm.
#[inline(never)]
fn is_named(code: ErrorCode, text: &str) -> bool {
    code.as_str() == text
}

/// Out of line, like `as_str`: inlined, each clone copied the `Api` text path.
impl Clone for FailureCode {
    #[inline(never)]
    fn clone(&self) -> Self {
        match self {
            FailureCode::Api(code) => FailureCode::Api(code.clone()),
            FailureCode::Refused(code) => FailureCode::Refused(*code),
            FailureCode::Timeout => FailureCode::Timeout,
            FailureCode::Closed => FailureCode::Closed,
            FailureCode::NotSent => FailureCode::NotSent,
            FailureCode::Unconfirmed => FailureCode::Unconfirmed,
            FailureCode::UnsupportedTransport => FailureCode::UnsupportedTransport,
            FailureCode::UnsupportedProtocol => FailureCode::UnsupportedProtocol,
            FailureCode::TooManySockets => FailureCode::TooManySockets,
            FailureCode::Banned => FailureCode::Banned,
            FailureCode::BadServerFrame => FailureCode::BadServerFrame,
            FailureCode::Network => FailureCode::Network,
            FailureCode::BadResponse => FailureCode::BadResponse,
        }
    }
}

impl Serialize for FailureCode {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// Why an action failed, with a stable code.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ActionError {
    pub code: FailureCode,
    pub message: String,
    pub retry_after_ms: u32,
}

/// An HTTP answer no retry changes: a bad or expired token, a room the token does not
/// name, an unknown room (also another tenant's), an ended room.
pub(crate) fn is_refusal(status: u16) -> bool {
    matches!(status, 400 | 401 | 403 | 404 | 410)
}

/// The message of an error about a limit (see `json::with_number`).
///
/// Out of line, like the other cold helpers marked `#[inline(never)]` (errors, status
/// changes, closes): this crate is built at opt-level 3 for the hot decode path, which
/// copied each of them into every caller (1.9 KB gzipped of the SDK's wasm in all).
#[inline(never)]
pub(crate) fn limit(prefix: &str, value: usize, suffix: &str) -> String {
    json::with_number(prefix, value as u64, suffix)
}

#[inline(never)]
pub(crate) fn check_id(id: &str, bytes_max: usize, what: &str) -> Result<(), ActionError> {
    if id.is_empty() || id.len() > bytes_max {
        return Err(ActionError::new(
            FailureCode::Refused(ErrorCode::Invalid),
            &limit(what, bytes_max, " bytes"),
        ));
    }
    Ok(())
}

impl ActionError {
    #[inline(never)]
    pub(crate) fn new(code: FailureCode, message: &str) -> ActionError {
        ActionError {
            code,
            message: message.to_owned(),
            retry_after_ms: 0,
        }
    }
}

/// What the application hears. Serialized to JavaScript as `{ type: "...", ... }`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientEvent {
    Status {
        status: Status,
        transport: Transport,
        /// Why the connection changed (close code name, failure), when known.
        reason: Option<String>,
    },
    /// A comment, or a system broadcast (`system: true`).
    Comment {
        seq: u64,
        ts_ms: u64,
        user: String,
        name: String,
        text: String,
        system: bool,
    },
    Reaction {
        seq: u64,
        ts_ms: u64,
        user: String,
        name: String,
        kind: String,
    },
    Gift {
        seq: u64,
        ts_ms: u64,
        user: String,
        name: String,
        sku: String,
        qty: u32,
        amount: u64,
    },
    /// A moderator removed the comment `removed`: drop it from view.
    Removed {
        seq: u64,
        ts_ms: u64,
        removed: u64,
        user: String,
    },
    Like {
        total: u64,
    },
    Online {
        count: u32,
    },
    /// A state part changed (value is JSON text).
    Part {
        name: String,
        version: u64,
        value: String,
    },
    /// A new epoch: every part the client held is gone.
    Reset {
        epoch: u64,
    },
    Version {
        epoch: u64,
        version: u64,
    },
    Direct {
        from: String,
        payload: String,
        ts_ms: u64,
    },
    Balance {
        balance: u64,
    },
    /// Actions in `missed_after+1 .. resumed_from` were not delivered (too long away).
    Gap {
        missed_after: u64,
        resumed_from: u64,
    },
    /// The end of an action the application started (`comment`, `direct`, `gift`, ...).
    Done {
        id: u64,
        seq: Option<u64>,
        error: Option<ActionError>,
    },
    Error {
        code: FailureCode,
        message: String,
        retry_after_ms: u32,
    },
    /// Likes the application made that the room will not count: more than
    /// `CLIENT_LIKES_PENDING_MAX` waiting (`too_many`), the session closed or the room
    /// ended before they were sent (`closed`, `room_ended`, or the server's code when it
    /// ended the session: `banned`, `room_full`, `bad_frame`, ...), the pull transport
    /// (`unsupported_transport`), a refusal other than the rate (the room's code), or no
    /// answer to a sent frame (`timeout` after `CLIENT_ACTION_TIMEOUT_MS`, `unconfirmed`
    /// when the session ended or switched to pull first: they may or may not have been
    /// counted). Likes refused for the rate are sent again, never reported here.
    LikesDropped {
        count: u32,
        code: FailureCode,
        message: String,
    },
    Ended,
}

/// Where the client's copy of the room stands: the epoch, the total version and each
/// part's version. The values themselves went to the application as `Part` events (the
/// SDK keeps them in JavaScript); holding them twice would cost every viewer the memory.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RoomState {
    /// 0 until the first Welcome or state answer.
    pub epoch: u64,
    pub version: u64,
    /// Part name → the version the application was given.
    pub parts: BTreeMap<String, u64>,
}
