//! Sans-IO Ovation client.
//!
//! A [`Client`] is everything a viewer's SDK does, without sockets, timers or clocks: the
//! host (the wasm SDK, the simulator, a test) feeds it what happened (`handle_*`, with
//! `now_ms`), performs what it asks for ([`Client::poll_transmit`]: open or close a
//! socket, send a frame, fetch a pull URL), hands its [`ClientEvent`]s to the application
//! ([`Client::poll_event`]) and arms one timer for [`Client::poll_timeout`]. Randomness
//! (backoff jitter, client ids) comes from the seed in [`Config`].
//!
//! What it keeps, across reconnects and transports:
//! * the room state (`epoch`, `total_version`, parts at versions) and the action cursor,
//!   sent as `Resume` on every new socket so only what is newer comes back;
//! * actions it sent and the room has not acknowledged, re-sent after a reconnect under
//!   the same client id (the room acknowledges a retry without applying it again);
//! * the clock offset to the server (NTP-style, [`ClockSync`]).
//!
//! Invariants: an action sequence number is dispatched at most once per epoch (the
//! cursor only moves forward); a part is only replaced by a newer version; every action
//! the application started ends in exactly one [`ClientEvent::Done`].

#![forbid(unsafe_code)]
#![no_std]

extern crate alloc;

mod clock;
mod json;
pub mod playback;
pub mod replay;
mod rng;

use alloc::borrow::ToOwned;
use alloc::collections::{BTreeMap, VecDeque};
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use ovation_proto::limits::*;
use ovation_proto::{
    ActionBody, ClientFrame, CloseCode, DecodeError, ErrorCode, Event, Hello, PartVersion, Resume,
    ServerFrame, TokenBucket, Welcome, PROTOCOL_VERSION,
};
use rng::Rng;
use serde::{Deserialize, Serialize};

pub use clock::ClockSync;
pub use json::write_events_json;

/// RFC 6455 "normal closure": the client closes because it is done, not because of a fault.
const NORMAL_CLOSURE: u16 = 1000;

/// Which transport the application asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransportMode {
    /// WebSocket; pull after `CLIENT_WS_FAILURES_BEFORE_PULL` failures in a row.
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

/// `GET /v1/rooms/{room}/state`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct PullState {
    pub epoch: u64,
    pub version: u64,
    pub parts: BTreeMap<String, u64>,
    pub action_cursor: u64,
    pub likes: u64,
    pub online: u32,
    pub status: String,
}

/// One action in `GET /v1/rooms/{room}/events?since=`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct PullAction {
    pub seq: u64,
    pub ts_ms: u64,
    pub user: String,
    pub name: String,
    pub kind: String,
    #[serde(default)]
    pub text: String,
    #[serde(default)]
    pub sku: String,
    #[serde(default)]
    pub qty: u32,
    #[serde(default)]
    pub amount: u64,
    /// For `removed`: the sequence number of the comment a moderator removed.
    #[serde(default)]
    pub removed: u64,
}

/// `GET /v1/rooms/{room}/events?since=`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct PullEvents {
    pub events: Vec<PullAction>,
    pub gap: bool,
    pub cursor: u64,
    pub epoch: u64,
    pub version: u64,
    pub likes: u64,
    pub online: u32,
    pub poll_interval_ms: u32,
    #[serde(default)]
    pub server_time_ms: Option<u64>,
    #[serde(default)]
    pub status: Option<String>,
}

/// The host's answer to a [`Transmit::Fetch`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FetchReply {
    State(PullState),
    Part(String),
    Events(PullEvents),
    /// HTTP error (with the API's error code) or a network failure (`status` 0).
    Failed {
        status: u16,
        code: String,
        message: String,
    },
}

/// Why an action failed, with a stable code (the room's `ErrorCode` strings, plus
/// `timeout`, `closed`, `unsupported_transport`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ActionError {
    pub code: String,
    pub message: String,
    pub retry_after_ms: u32,
}

/// An HTTP answer no retry changes: a bad or expired token, a room the token does not
/// name, an unknown room (also another tenant's), an ended room.
fn is_refusal(status: u16) -> bool {
    matches!(status, 400 | 401 | 403 | 404 | 410)
}

/// The message of an error about a limit (see `json::with_number`).
///
/// Out of line, like the other cold helpers marked `#[inline(never)]` (errors, status
/// changes, closes): this crate is built at opt-level 3 for the hot decode path, which
/// copied each of them into every caller (1.9 KB gzipped of the SDK's wasm in all).
#[inline(never)]
fn limit(prefix: &str, value: usize, suffix: &str) -> String {
    json::with_number(prefix, value as u64, suffix)
}

#[inline(never)]
fn check_id(id: &str, bytes_max: usize, what: &str) -> Result<(), ActionError> {
    if id.is_empty() || id.len() > bytes_max {
        return Err(ActionError::new(
            "invalid",
            &limit(what, bytes_max, " bytes"),
        ));
    }
    Ok(())
}

impl ActionError {
    #[inline(never)]
    fn new(code: &str, message: &str) -> ActionError {
        ActionError {
            code: code.to_owned(),
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
        code: String,
        message: String,
        retry_after_ms: u32,
    },
    /// Likes the application made that the room will not count: more than
    /// `CLIENT_LIKES_PENDING_MAX` waiting (`too_many`), the session closed or the room
    /// ended before they were sent (`closed`, `room_ended`), the pull transport
    /// (`unsupported_transport`), a refusal other than the rate (the room's code), or no
    /// answer to a sent frame (`timeout` after `CLIENT_ACTION_TIMEOUT_MS`, `unconfirmed`
    /// when the session ended or switched to pull first: they may or may not have been
    /// counted). Likes refused for the rate are sent again, never reported here.
    LikesDropped {
        count: u32,
        code: String,
        message: String,
    },
    Ended,
}

/// A part the client holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartValue {
    pub version: u64,
    pub value: String,
}

/// The room state the client holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RoomState {
    /// 0 until the first Welcome or state answer.
    pub epoch: u64,
    pub version: u64,
    pub parts: BTreeMap<String, PartValue>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Phase {
    /// The next socket opens at `at_ms`.
    Waiting {
        at_ms: u64,
    },
    /// A socket was asked for and has not said Welcome yet.
    Connecting {
        socket: u64,
        since_ms: u64,
    },
    Open {
        socket: u64,
    },
    Pull,
    Closed,
}

#[derive(Clone, Debug)]
struct PendingAction {
    client_id: u64,
    frame: Vec<u8>,
    created_ms: u64,
    /// Likes are internal: their end is not reported as `Done`.
    reported: bool,
    /// The like count a like frame carries (0 for other actions): queued again when the
    /// room refuses it for the rate, reported as `LikesDropped` when it is lost.
    likes: u32,
}

#[derive(Clone, Debug)]
struct PullRequest {
    kind: FetchKind,
    sent_ms: u64,
    part: Option<(String, u64)>,
}

pub struct Client {
    room: String,
    mode: TransportMode,
    transport: Transport,
    phase: Phase,
    status: Status,
    rng: Rng,
    // Room state and cursor (kept across sockets and transports).
    state: RoomState,
    cursor: Option<u64>,
    /// Reconnects refused 4409 since the last Welcome (`CLIENT_SOCKET_CAP_RETRIES_MAX`).
    socket_cap_retries: u32,
    likes_total: Option<u64>,
    online: Option<u32>,
    ended: bool,
    // Sockets.
    next_socket: u64,
    ws_failures: u32,
    attempt: u32,
    last_received_ms: u64,
    next_heartbeat_ms: u64,
    // Clock.
    clock: ClockSync,
    ping_in_flight: Option<u64>,
    next_ping_ms: Option<u64>,
    clock_burst_left: usize,
    // Actions.
    client_id_prefix: u64,
    next_client_counter: u32,
    pending: VecDeque<PendingAction>,
    likes_waiting: u32,
    likes_bucket: TokenBucket,
    next_like_flush_ms: Option<u64>,
    last_like_frame_ms: Option<u64>,
    /// The state request asking why a socket never opened: (request, sent at).
    admission_check: Option<(u64, u64)>,
    // Pull.
    next_request: u64,
    /// In flight, oldest first (a handful at most: the state, then outdated parts).
    requests: Vec<(u64, PullRequest)>,
    next_poll_ms: Option<u64>,
    pull_failures: u32,
    pull_interval_ms: u64,
    /// The next pull request reads the state (first, after a new epoch or version, or a
    /// part that could not be read).
    pull_state_stale: bool,
    // Queues.
    transmits: VecDeque<Transmit>,
    events: VecDeque<ClientEvent>,
    events_dropped: u64,
}

impl Client {
    pub fn new(config: Config, now_ms: u64) -> Client {
        let mut rng = Rng::new(config.seed);
        // Client ids stay below 2^53 so JavaScript numbers carry them exactly: 21 random
        // bits tell this client's ids from the same user's other sessions.
        let client_id_prefix = (rng.next_u64() & ((1 << 21) - 1)) << 32;
        let mut client = Client {
            room: config.room,
            mode: config.transport,
            transport: Transport::Ws,
            phase: Phase::Waiting { at_ms: now_ms },
            status: Status::Connecting,
            rng,
            state: RoomState::default(),
            cursor: None,
            socket_cap_retries: 0,
            likes_total: None,
            online: None,
            ended: false,
            next_socket: 1,
            ws_failures: 0,
            attempt: 0,
            last_received_ms: now_ms,
            next_heartbeat_ms: now_ms,
            clock: ClockSync::default(),
            ping_in_flight: None,
            next_ping_ms: None,
            clock_burst_left: 0,
            client_id_prefix,
            next_client_counter: 1,
            pending: VecDeque::new(),
            likes_waiting: 0,
            likes_bucket: TokenBucket::new_full(CLIENT_LIKES_RATE_PER_S, LIKES_BURST, now_ms),
            next_like_flush_ms: None,
            last_like_frame_ms: None,
            admission_check: None,
            next_request: 1,
            requests: Vec::new(),
            next_poll_ms: None,
            pull_failures: 0,
            pull_interval_ms: u64::from(PULL_INTERVAL_MS),
            pull_state_stale: true,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            events_dropped: 0,
        };
        client.emit_status(None);
        if client.mode == TransportMode::Pull {
            client.start_pull(now_ms, None);
        } else {
            client.open_socket(now_ms);
        }
        client
    }

    // ---- Queries ----

    pub fn status(&self) -> Status {
        self.status
    }

    pub fn transport(&self) -> Transport {
        self.transport
    }

    pub fn state(&self) -> &RoomState {
        &self.state
    }

    /// The last action sequence number dispatched (or skipped as older than the join).
    pub fn cursor(&self) -> Option<u64> {
        self.cursor
    }

    pub fn likes_total(&self) -> Option<u64> {
        self.likes_total
    }

    pub fn online(&self) -> Option<u32> {
        self.online
    }

    pub fn clock(&self) -> &ClockSync {
        &self.clock
    }

    /// The server's clock now, from the local clock and the estimated offset.
    pub fn server_now(&self, now_ms: u64) -> u64 {
        self.clock.server_now(now_ms)
    }

    /// Actions sent and not yet acknowledged.
    pub fn actions_pending(&self) -> usize {
        self.pending.len()
    }

    /// Likes queued and not yet sent.
    pub fn likes_waiting(&self) -> u32 {
        self.likes_waiting
    }

    /// Events dropped because the application did not drain them.
    pub fn events_dropped(&self) -> u64 {
        self.events_dropped
    }

    // ---- Host interface ----

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }

    /// The earliest time `handle_timeout` must be called.
    pub fn poll_timeout(&self) -> Option<u64> {
        let mut at: Option<u64> = None;
        let mut consider = |t: Option<u64>| {
            if let Some(t) = t {
                at = Some(at.map_or(t, |a| a.min(t)));
            }
        };
        match self.phase {
            Phase::Closed => return None,
            Phase::Waiting { at_ms } => consider(Some(at_ms)),
            Phase::Connecting { since_ms, .. } => {
                consider(Some(since_ms + CLIENT_CONNECT_TIMEOUT_MS))
            }
            Phase::Open { .. } => {
                consider(Some(self.last_received_ms + CLIENT_SILENCE_MS_MAX));
                consider(Some(self.next_heartbeat_ms));
                consider(self.next_ping_ms);
                consider(self.next_like_flush_ms);
            }
            Phase::Pull => {
                consider(self.next_poll_ms);
                consider(
                    self.requests
                        .iter()
                        .map(|(_, r)| r.sent_ms + CLIENT_FETCH_TIMEOUT_MS)
                        .min(),
                );
            }
        }
        consider(
            self.pending
                .front()
                .map(|p| p.created_ms + CLIENT_ACTION_TIMEOUT_MS),
        );
        at
    }

    pub fn handle_timeout(&mut self, now_ms: u64) {
        self.expire_actions(now_ms);
        match self.phase.clone() {
            Phase::Closed => {}
            Phase::Waiting { at_ms } => {
                if now_ms >= at_ms {
                    self.open_socket(now_ms);
                }
            }
            Phase::Connecting { socket, since_ms } => {
                if now_ms >= since_ms + CLIENT_CONNECT_TIMEOUT_MS {
                    self.close_socket(socket, CloseCode::Stale.code(), "connect timeout");
                    self.socket_failed(now_ms, "connect_timeout".into());
                }
            }
            Phase::Open { socket } => {
                if now_ms >= self.last_received_ms + CLIENT_SILENCE_MS_MAX {
                    self.close_socket(socket, CloseCode::Stale.code(), "silent too long");
                    self.schedule_reconnect(now_ms, "silence".into());
                    return;
                }
                if now_ms >= self.next_heartbeat_ms {
                    self.transmits.push_back(Transmit::SendText {
                        socket,
                        text: ovation_proto::limits::HEARTBEAT_TEXT,
                    });
                    self.next_heartbeat_ms = now_ms + HEARTBEAT_INTERVAL_MS;
                }
                if self.next_ping_ms.is_some_and(|t| now_ms >= t) {
                    if self.ping_in_flight.is_some() {
                        // Lost pong: forget it and take the next sample.
                        self.ping_in_flight = None;
                    }
                    self.send_ping(socket, now_ms);
                }
                if self.next_like_flush_ms.is_some_and(|t| now_ms >= t) {
                    self.flush_likes(now_ms);
                }
            }
            Phase::Pull => {
                let expired: Vec<u64> = self
                    .requests
                    .iter()
                    .filter(|(_, r)| now_ms >= r.sent_ms + CLIENT_FETCH_TIMEOUT_MS)
                    .map(|(id, _)| *id)
                    .collect();
                for request in expired {
                    self.handle_fetch(
                        request,
                        FetchReply::Failed {
                            status: 0,
                            code: "timeout".into(),
                            message: "no answer".into(),
                        },
                        now_ms,
                    );
                }
                if self.phase == Phase::Pull
                    && self.requests.is_empty()
                    && self.next_poll_ms.is_some_and(|t| now_ms >= t)
                {
                    self.next_poll_ms = None;
                    self.pull_next(now_ms);
                }
            }
        }
    }

    /// The socket asked for by `OpenSocket` is open.
    pub fn handle_socket_open(&mut self, socket: u64, now_ms: u64) {
        if !matches!(self.phase, Phase::Connecting { socket: s, .. } if s == socket) {
            return;
        }
        self.last_received_ms = now_ms;
        let resume = (self.state.epoch != 0).then(|| Resume {
            epoch: self.state.epoch,
            action_cursor: self.cursor.unwrap_or(0),
            part_versions: self
                .state
                .parts
                .iter()
                .map(|(name, part)| PartVersion {
                    name: name.clone(),
                    version: part.version,
                })
                .collect(),
        });
        let hello = ClientFrame::Hello(Hello {
            protocol_version: PROTOCOL_VERSION,
            resume,
        });
        self.transmits.push_back(Transmit::Send {
            socket,
            frame: hello.encode(),
        });
    }

    /// A text frame arrived (the heartbeat answer): proof of life, nothing else.
    pub fn handle_socket_text(&mut self, socket: u64, now_ms: u64) {
        if self.is_current(socket) {
            self.last_received_ms = now_ms;
        }
    }

    pub fn handle_socket_message(&mut self, socket: u64, bytes: &[u8], now_ms: u64) {
        if !self.is_current(socket) {
            return;
        }
        self.last_received_ms = now_ms;
        let (server_time_ms, events) = match ServerFrame::decode(bytes) {
            Ok(ServerFrame::Batch {
                server_time_ms,
                events,
            }) => (server_time_ms, events),
            Err(e) => {
                let why = match e {
                    DecodeError::TooLarge { .. } => "undecodable server frame: too large",
                    DecodeError::Malformed => "undecodable server frame: malformed",
                    DecodeError::FieldLimit { .. } => {
                        "undecodable server frame: a field over its limit"
                    }
                };
                self.emit_error("bad_frame", why, 0);
                self.close_socket(socket, CloseCode::BadFrame.code(), "bad frame");
                self.schedule_reconnect(now_ms, "bad_frame".into());
                return;
            }
        };
        for event in events {
            if !self.is_current(socket) {
                break; // the batch closed the socket (GoAway, room ended)
            }
            self.on_event(socket, event, server_time_ms, now_ms);
        }
    }

    /// The socket closed (or failed to open) with this close code.
    pub fn handle_socket_closed(&mut self, socket: u64, code: u16, reason: &str, now_ms: u64) {
        if !self.is_current(socket) {
            return;
        }
        let name = CloseCode::from_code(code).map_or_else(
            || {
                let separator = if reason.is_empty() { "" } else { ": " };
                let mut name = json::with_number("close ", u64::from(code), separator);
                name.push_str(reason);
                name
            },
            |c| c.reason().to_owned(),
        );
        match CloseCode::from_code(code) {
            Some(CloseCode::RoomEnded) => {
                self.ended = true;
                self.finish(Some("room_ended".into()));
            }
            Some(CloseCode::Banned) => {
                self.emit_error("banned", "a moderator banned you from this room", 0);
                self.finish(Some(name));
            }
            Some(CloseCode::TooManySockets)
                if self.cursor.is_some()
                    && self.socket_cap_retries < CLIENT_SOCKET_CAP_RETRIES_MAX =>
            {
                // This session was open: the sockets holding the places may be its own,
                // dropped without a close on a bad network. The room gives such a place
                // to a new socket once it is silent long enough; wait that long.
                self.socket_cap_retries += 1;
                let delay_ms =
                    USER_SOCKET_REPLACEABLE_SILENCE_MS + self.rng.up_to(CLIENT_BACKOFF_MS_BASE);
                self.reconnect_after(now_ms, delay_ms, name);
            }
            Some(CloseCode::TooManySockets) => {
                // Another tab must close first; retrying here would only be refused again.
                let message = "this user holds the most sockets a room allows: close a tab";
                self.emit_error("too_many_sockets", message, 0);
                self.finish(Some(name));
            }
            Some(CloseCode::UnsupportedProtocol) => {
                self.emit_error(
                    "unsupported_protocol",
                    "the server does not speak this SDK's protocol",
                    0,
                );
                self.finish(Some(name));
            }
            // Anything else: a welcomed socket was lost (reconnect with backoff); one that
            // never said Welcome failed (counts towards the switch to pull).
            _ => {
                if matches!(self.phase, Phase::Open { .. }) {
                    self.schedule_reconnect(now_ms, name);
                } else {
                    self.socket_failed(now_ms, name);
                }
            }
        }
    }

    pub fn handle_fetch(&mut self, request: u64, reply: FetchReply, now_ms: u64) {
        if self.admission_check.is_some_and(|(id, _)| id == request) {
            self.admission_check = None;
            self.on_admission_check(reply, now_ms);
            return;
        }
        let Some(index) = self.requests.iter().position(|(id, _)| *id == request) else {
            return; // timed out or from before a reset
        };
        let (_, req) = self.requests.remove(index);
        if self.phase != Phase::Pull {
            return;
        }
        match reply {
            FetchReply::Failed {
                status,
                code,
                message,
            } => {
                if req.kind == FetchKind::Part && status == 404 {
                    // The part moved on since the state was read: read the state again.
                    self.pull_state_stale = true;
                    self.next_poll_ms = Some(now_ms);
                    return;
                }
                if is_refusal(status) {
                    // Not something a retry fixes: bad token, unknown or ended room.
                    self.emit_error(&code, &message, 0);
                    self.finish(Some(code));
                    return;
                }
                self.pull_failures = self.pull_failures.saturating_add(1);
                let delay = self.backoff_ms(self.pull_failures.saturating_sub(1));
                if req.kind == FetchKind::Part {
                    self.pull_state_stale = true; // refetch the state, and with it this part
                }
                self.next_poll_ms = Some(now_ms + delay.max(self.pull_interval_ms / 2));
                if self.status == Status::Open {
                    self.set_status(Status::Reconnecting, Some(code));
                }
            }
            FetchReply::State(state) => {
                self.pull_failures = 0;
                self.on_pull_state(state, now_ms);
            }
            FetchReply::Events(events) => {
                self.pull_failures = 0;
                self.on_pull_events(events, req.sent_ms, now_ms);
            }
            FetchReply::Part(value) => {
                let (name, version) = req.part.expect("part requests carry their part");
                self.apply_part(name, version, value);
            }
        }
        // Open once the state and every outdated part are in, as a socket is after Welcome.
        let settled = self.phase == Phase::Pull && self.requests.is_empty();
        if settled && self.pull_failures == 0 && self.status != Status::Open {
            self.set_status(Status::Open, None);
        }
        if settled && self.next_poll_ms.is_none() {
            self.pull_next(now_ms);
        }
    }

    // ---- Application interface ----

    /// Posts a comment. Returns the action id its `Done` will carry.
    pub fn comment(&mut self, text: &str, now_ms: u64) -> Result<u64, ActionError> {
        if text.trim().is_empty() {
            return Err(ActionError::new("invalid", "a comment needs some text"));
        }
        if text.len() > COMMENT_BYTES_MAX {
            return Err(ActionError::new(
                "too_long",
                &limit("a comment has at most ", COMMENT_BYTES_MAX, " bytes"),
            ));
        }
        let text = text.to_owned();
        let client_id = self.start_action()?;
        self.send_action(ClientFrame::Comment { client_id, text }, now_ms, true)
    }

    pub fn reaction(&mut self, kind: &str, now_ms: u64) -> Result<u64, ActionError> {
        if kind.is_empty() || kind.len() > REACTION_BYTES_MAX {
            return Err(ActionError::new(
                "invalid",
                &limit("a reaction is 1..=", REACTION_BYTES_MAX, " bytes"),
            ));
        }
        let kind = kind.to_owned();
        let client_id = self.start_action()?;
        self.send_action(ClientFrame::Reaction { client_id, kind }, now_ms, true)
    }

    /// A peer message to every connection of `to_user` (hosts and moderators).
    pub fn direct(
        &mut self,
        to_user: &str,
        payload: &str,
        now_ms: u64,
    ) -> Result<u64, ActionError> {
        if to_user.is_empty() || to_user.len() > USER_ID_BYTES_MAX {
            return Err(ActionError::new(
                "invalid",
                &limit("a user id is 1..=", USER_ID_BYTES_MAX, " bytes"),
            ));
        }
        if payload.len() > DIRECT_PAYLOAD_BYTES_MAX {
            return Err(ActionError::new(
                "too_long",
                &limit(
                    "a direct payload has at most ",
                    DIRECT_PAYLOAD_BYTES_MAX,
                    " bytes",
                ),
            ));
        }
        let (to_user, payload) = (to_user.to_owned(), payload.to_owned());
        let client_id = self.start_action()?;
        self.send_action(
            ClientFrame::Direct {
                client_id,
                to_user,
                payload,
            },
            now_ms,
            true,
        )
    }

    /// Sets an app-defined state part (hosts and moderators); `value` is JSON text.
    pub fn set_part(&mut self, name: &str, value: &str, now_ms: u64) -> Result<u64, ActionError> {
        if !ovation_proto::is_valid_part_name(name) {
            return Err(ActionError::new(
                "invalid",
                "a part name is 1..=64 of [a-z0-9_-]",
            ));
        }
        if value.len() > PART_VALUE_BYTES_MAX {
            return Err(ActionError::new(
                "too_long",
                &limit("a part value has at most ", PART_VALUE_BYTES_MAX, " bytes"),
            ));
        }
        let (name, value) = (name.to_owned(), value.to_owned());
        let client_id = self.start_action()?;
        self.send_action(
            ClientFrame::SetPart {
                client_id,
                name,
                value,
            },
            now_ms,
            true,
        )
    }

    /// Sends a gift from the room's catalog. `gift_id` is its idempotency key.
    pub fn gift(
        &mut self,
        gift_id: &str,
        sku: &str,
        qty: u32,
        now_ms: u64,
    ) -> Result<u64, ActionError> {
        if gift_id.is_empty() || gift_id.len() > GIFT_ID_BYTES_MAX {
            return Err(ActionError::new(
                "invalid",
                &limit("a gift id is 1..=", GIFT_ID_BYTES_MAX, " bytes"),
            ));
        }
        if sku.is_empty() || sku.len() > GIFT_SKU_BYTES_MAX || qty == 0 || qty > GIFT_QTY_MAX {
            return Err(ActionError::new(
                "invalid",
                &limit(
                    "a gift is a catalog sku and a quantity of 1..=",
                    GIFT_QTY_MAX as usize,
                    "",
                ),
            ));
        }
        let (gift_id, sku) = (gift_id.to_owned(), sku.to_owned());
        let client_id = self.start_action()?;
        self.send_action(
            ClientFrame::Gift {
                client_id,
                gift_id,
                sku,
                qty,
            },
            now_ms,
            true,
        )
    }

    /// A vote in the room's open poll. The room counts a user's first vote only and
    /// acknowledges repeats; after the window it refuses with `poll_closed`.
    pub fn vote(&mut self, poll_id: &str, option: u32, now_ms: u64) -> Result<u64, ActionError> {
        check_id(poll_id, POLL_ID_BYTES_MAX, "a poll id is 1..=")?;
        let Ok(option) = u8::try_from(option) else {
            return Err(ActionError::new(
                "invalid",
                &limit("an option is 0..", POLL_OPTIONS_MAX, ""),
            ));
        };
        let poll_id = poll_id.to_owned();
        let client_id = self.start_action()?;
        self.send_action(
            ClientFrame::Vote {
                client_id,
                poll_id,
                option,
            },
            now_ms,
            true,
        )
    }

    /// An answer to the open question of a quiz (`question` and `option` count from 0).
    /// The first answer counts; after the window the room refuses with `poll_closed`.
    pub fn answer(
        &mut self,
        quiz_id: &str,
        question: u32,
        option: u32,
        now_ms: u64,
    ) -> Result<u64, ActionError> {
        check_id(quiz_id, QUIZ_ID_BYTES_MAX, "a quiz id is 1..=")?;
        let (Ok(question), Ok(option)) = (u16::try_from(question), u8::try_from(option)) else {
            return Err(ActionError::new(
                "invalid",
                &limit("an option is 0..", QUIZ_OPTIONS_MAX, ""),
            ));
        };
        let quiz_id = quiz_id.to_owned();
        let client_id = self.start_action()?;
        let frame = ClientFrame::Answer {
            client_id,
            quiz_id,
            question,
            option,
        };
        self.send_action(frame, now_ms, true)
    }

    /// Asks the host a question (Q&A).
    pub fn ask(&mut self, text: &str, now_ms: u64) -> Result<u64, ActionError> {
        if text.trim().is_empty() || text.len() > QA_QUESTION_BYTES_MAX {
            return Err(ActionError::new(
                "too_long",
                &limit("a question is 1..=", QA_QUESTION_BYTES_MAX, " bytes"),
            ));
        }
        let text = text.to_owned();
        let client_id = self.start_action()?;
        self.send_action(ClientFrame::Ask { client_id, text }, now_ms, true)
    }

    /// Upvotes a Q&A question (once per user; repeats are acknowledged).
    pub fn upvote(&mut self, question_id: &str, now_ms: u64) -> Result<u64, ActionError> {
        check_id(question_id, QA_ID_BYTES_MAX, "a question id is 1..=")?;
        let question_id = question_id.to_owned();
        let client_id = self.start_action()?;
        let frame = ClientFrame::Upvote {
            client_id,
            question_id,
        };
        self.send_action(frame, now_ms, true)
    }

    /// Counts a click on a pinned product card.
    pub fn product_click(&mut self, product_id: &str, now_ms: u64) -> Result<u64, ActionError> {
        check_id(product_id, PRODUCT_ID_BYTES_MAX, "a product id is 1..=")?;
        let product_id = product_id.to_owned();
        let client_id = self.start_action()?;
        let frame = ClientFrame::ProductClick {
            client_id,
            product_id,
        };
        self.send_action(frame, now_ms, true)
    }

    /// A host or moderator command (the room's staff command JSON); viewers are refused
    /// `forbidden`. The room's reply arrives as a direct message (`command_reply`).
    pub fn command(&mut self, json: &str, now_ms: u64) -> Result<u64, ActionError> {
        if json.is_empty() || json.len() > STAFF_COMMAND_BYTES_MAX {
            return Err(ActionError::new(
                "too_long",
                &limit("a command is 1..=", STAFF_COMMAND_BYTES_MAX, " bytes"),
            ));
        }
        let command = json.to_owned();
        let client_id = self.start_action()?;
        self.send_action(ClientFrame::Command { client_id, command }, now_ms, true)
    }

    /// Likes `count` times; returns how many were queued. Coalesced: one frame per
    /// `CLIENT_LIKE_FLUSH_MS`, at `CLIENT_LIKES_RATE_PER_S` (under the room's rate); a
    /// frame the room refuses for the rate is sent again. Every queued like is counted by
    /// the room once or reported in a `LikesDropped` event; so is every like not queued
    /// (more than `CLIENT_LIKES_PENDING_MAX` waiting, a closed session, pull).
    pub fn like(&mut self, count: u32, now_ms: u64) -> u32 {
        if count == 0 {
            return 0;
        }
        if self.phase == Phase::Closed {
            let code = self.closed_code();
            self.likes_dropped(count, code, "the room connection is closed");
            return 0;
        }
        if self.transport == Transport::Pull {
            self.likes_dropped(
                count,
                "unsupported_transport",
                "the pull transport only receives; sending needs the WebSocket",
            );
            return 0;
        }
        let queued = count.min(CLIENT_LIKES_PENDING_MAX.saturating_sub(self.likes_waiting));
        self.likes_waiting += queued;
        if queued < count {
            let message = limit(
                "at most ",
                CLIENT_LIKES_PENDING_MAX as usize,
                " likes wait to be sent",
            );
            self.likes_dropped(count - queued, "too_many", &message);
        }
        if self.likes_waiting > 0 && self.next_like_flush_ms.is_none() {
            let at = self
                .last_like_frame_ms
                .map_or(now_ms, |t| now_ms.max(t + CLIENT_LIKE_FLUSH_MS));
            self.next_like_flush_ms = Some(at);
        }
        queued
    }

    /// Closes for good: the socket closes, unfinished actions end with `closed`.
    pub fn close(&mut self) {
        if self.phase == Phase::Closed {
            return;
        }
        self.close_current_socket();
        self.finish(Some("closed".into()));
    }

    // ---- Internals: sockets ----

    fn is_current(&self, socket: u64) -> bool {
        match self.phase {
            Phase::Connecting { socket: s, .. } | Phase::Open { socket: s } => s == socket,
            _ => false,
        }
    }

    fn open_socket(&mut self, now_ms: u64) {
        let socket = self.next_socket;
        self.next_socket += 1;
        self.phase = Phase::Connecting {
            socket,
            since_ms: now_ms,
        };
        self.transport = Transport::Ws;
        self.transmits.push_back(Transmit::OpenSocket {
            socket,
            path: ["/v1/rooms/", &self.room, "/ws"].concat(),
        });
    }

    /// `code`: a `CloseCode` of the protocol, or `NORMAL_CLOSURE` when the client is done.
    #[inline(never)]
    fn close_socket(&mut self, socket: u64, code: u16, reason: &str) {
        self.transmits.push_back(Transmit::CloseSocket {
            socket,
            code,
            reason: reason.to_owned(),
        });
    }

    /// A socket never opened: asks the room's state with the token, which answers the
    /// refusal the upgrade got (401/403/404/410 with a code, or `ended`) where a browser
    /// cannot read the upgrade's own answer. At most one in flight.
    fn check_admission(&mut self, now_ms: u64) {
        if self
            .admission_check
            .is_some_and(|(_, sent_ms)| now_ms < sent_ms + CLIENT_ADMISSION_CHECK_TIMEOUT_MS)
        {
            return;
        }
        let request = self.send_fetch(FetchKind::State, self.state_path());
        self.admission_check = Some((request, now_ms));
    }

    fn state_path(&self) -> String {
        ["/v1/rooms/", &self.room, "/state"].concat()
    }

    /// Asks the host for one fetch; returns its request id.
    fn send_fetch(&mut self, kind: FetchKind, path: String) -> u64 {
        let request = self.next_request;
        self.next_request += 1;
        self.transmits.push_back(Transmit::Fetch {
            request,
            path,
            kind,
        });
        request
    }

    /// A refusal ends the session with the server's code; anything else (a live room, a
    /// network failure, a server error) leaves the reconnects to go on.
    fn on_admission_check(&mut self, reply: FetchReply, now_ms: u64) {
        if self.phase == Phase::Closed {
            return;
        }
        match reply {
            FetchReply::Failed {
                status,
                code,
                message,
            } if is_refusal(status) => {
                self.close_current_socket();
                if code == ErrorCode::RoomEnded.as_str() {
                    self.room_over();
                    return;
                }
                self.emit_error(&code, &message, 0);
                self.finish(Some(code));
            }
            FetchReply::State(state) if state.status == "ended" => {
                self.close_current_socket();
                self.room_over();
            }
            FetchReply::State(_) => {
                // The room is live and takes this token: the upgrade failed for a moment
                // (the Worker's per-user connect rate, a network blip), not for good. It
                // does not count towards giving WebSockets up for pull, and the next
                // try waits for the connect rate to refill.
                self.ws_failures = 0;
                if let Phase::Waiting { at_ms } = self.phase {
                    let refilled_ms = now_ms + 1_000 / u64::from(USER_CONNECTS_PER_S);
                    self.phase = Phase::Waiting {
                        at_ms: at_ms.max(refilled_ms),
                    };
                }
            }
            _ => {}
        }
    }

    fn close_current_socket(&mut self) {
        if let Phase::Open { socket } | Phase::Connecting { socket, .. } = self.phase {
            self.close_socket(socket, NORMAL_CLOSURE, "closed by the client");
        }
    }

    /// The room ended: told once, then the session closes for good (`room_ended`).
    fn room_over(&mut self) {
        if !self.ended {
            self.ended = true;
            self.push_event(ClientEvent::Ended);
        }
        self.finish(Some("room_ended".into()));
    }

    /// A socket that never said Welcome is gone.
    fn socket_failed(&mut self, now_ms: u64, reason: String) {
        self.check_admission(now_ms);
        self.ws_failures = self.ws_failures.saturating_add(1);
        if self.mode == TransportMode::Auto && self.ws_failures >= CLIENT_WS_FAILURES_BEFORE_PULL {
            self.start_pull(now_ms, Some(reason));
            return;
        }
        self.schedule_reconnect(now_ms, reason);
    }

    fn schedule_reconnect(&mut self, now_ms: u64, reason: String) {
        let delay = self.backoff_ms(self.attempt);
        self.attempt = self.attempt.saturating_add(1);
        self.reconnect_after(now_ms, delay, reason);
    }

    #[inline(never)]
    fn reconnect_after(&mut self, now_ms: u64, delay_ms: u64, reason: String) {
        self.phase = Phase::Waiting {
            at_ms: now_ms + delay_ms,
        };
        self.ping_in_flight = None;
        self.next_ping_ms = None;
        self.next_like_flush_ms = None;
        self.set_status(Status::Reconnecting, Some(reason));
    }

    /// Full jitter: uniform in `0..=min(max, base * 2^attempt)`.
    fn backoff_ms(&mut self, attempt: u32) -> u64 {
        let cap = CLIENT_BACKOFF_MS_BASE
            .saturating_mul(1u64 << attempt.min(20))
            .min(CLIENT_BACKOFF_MS_MAX);
        let delay = self.rng.up_to(cap);
        assert!(delay <= CLIENT_BACKOFF_MS_MAX);
        delay
    }

    /// The code an action gets when the connection is over.
    fn closed_code(&self) -> &'static str {
        if self.ended {
            "room_ended"
        } else {
            "closed"
        }
    }

    #[inline(never)]
    fn finish(&mut self, reason: Option<String>) {
        self.phase = Phase::Closed;
        self.requests.clear();
        self.next_poll_ms = None;
        self.next_like_flush_ms = None;
        self.admission_check = None;
        self.end_pending(self.closed_code(), "the connection closed first");
        self.set_status(Status::Closed, reason);
    }

    fn on_event(&mut self, socket: u64, event: Event, server_time_ms: u64, now_ms: u64) {
        match event {
            Event::Welcome(welcome) => self.on_welcome(socket, welcome, now_ms),
            Event::Part {
                name,
                version,
                value,
            } => self.apply_part(name, version, value),
            Event::Version {
                epoch,
                total_version,
            } => {
                if epoch == self.state.epoch && total_version > self.state.version {
                    self.state.version = total_version;
                    self.push_event(ClientEvent::Version {
                        epoch,
                        version: total_version,
                    });
                }
            }
            Event::Action(action) => self.dispatch_action(action),
            Event::Gap {
                missed_after,
                resumed_from,
            } => self.push_event(ClientEvent::Gap {
                missed_after,
                resumed_from,
            }),
            Event::Likes { total } => self.set_likes(total),
            Event::Online { count } => self.set_online(count),
            Event::Direct {
                from,
                payload,
                ts_ms,
            } => self.push_event(ClientEvent::Direct {
                from,
                payload,
                ts_ms,
            }),
            Event::Ack { client_id, seq } => self.action_done(client_id, seq, None),
            Event::Error {
                client_id,
                code,
                message,
                retry_after_ms,
            } => {
                let error = ActionError {
                    code: code.as_str().to_owned(),
                    message,
                    retry_after_ms,
                };
                match client_id {
                    Some(id) => self.action_refused(id, error, now_ms),
                    None => self.push_event(ClientEvent::Error {
                        code: error.code,
                        message: error.message,
                        retry_after_ms,
                    }),
                }
            }
            Event::Pong {
                client_time_ms,
                server_time_ms: server_received_ms,
            } => {
                if self.ping_in_flight == Some(client_time_ms) {
                    self.ping_in_flight = None;
                    self.clock.add_sample(
                        client_time_ms,
                        server_received_ms,
                        server_time_ms,
                        now_ms,
                    );
                    self.next_ping_ms = Some(if self.clock_burst_left > 0 {
                        now_ms
                    } else {
                        now_ms + CLIENT_CLOCK_REFRESH_MS
                    });
                }
            }
            Event::GoAway { reconnect_delay_ms } => {
                // Planned: not a failure, no backoff growth.
                self.close_socket(socket, NORMAL_CLOSURE, "going away");
                let jitter = self.rng.up_to(u64::from(reconnect_delay_ms / 4));
                self.reconnect_after(
                    now_ms,
                    u64::from(reconnect_delay_ms) + jitter,
                    "going_away".into(),
                );
            }
            Event::RoomEnded => {
                if !self.ended {
                    self.ended = true;
                    self.push_event(ClientEvent::Ended);
                }
            }
            Event::Balance { balance } => self.push_event(ClientEvent::Balance { balance }),
        }
    }

    fn on_welcome(&mut self, socket: u64, welcome: Welcome, now_ms: u64) {
        if welcome.epoch != self.state.epoch {
            self.reset_epoch(welcome.epoch, welcome.action_cursor);
        } else if !welcome.resumed || self.cursor.is_none() {
            self.cursor = Some(self.cursor.unwrap_or(welcome.action_cursor));
        }
        self.phase = Phase::Open { socket };
        self.ws_failures = 0;
        self.socket_cap_retries = 0;
        self.attempt = 0;
        self.next_heartbeat_ms = now_ms + HEARTBEAT_INTERVAL_MS;
        self.clock_burst_left = CLIENT_CLOCK_BURST;
        self.next_ping_ms = Some(now_ms);
        self.set_status(Status::Open, None);
        // Everything unacknowledged goes again, in order, under the same client ids.
        for pending in &self.pending {
            self.transmits.push_back(Transmit::Send {
                socket,
                frame: pending.frame.clone(),
            });
        }
        if self.likes_waiting > 0 {
            self.next_like_flush_ms = Some(now_ms);
        }
    }

    fn reset_epoch(&mut self, epoch: u64, action_cursor: u64) {
        let had_state = self.state.epoch != 0;
        self.state = RoomState {
            epoch,
            version: 0,
            parts: BTreeMap::new(),
        };
        self.cursor = Some(action_cursor);
        if had_state {
            self.push_event(ClientEvent::Reset { epoch });
        }
    }

    fn apply_part(&mut self, name: String, version: u64, value: String) {
        if self
            .state
            .parts
            .get(&name)
            .is_some_and(|p| p.version >= version)
        {
            return;
        }
        self.state.parts.insert(
            name.clone(),
            PartValue {
                version,
                value: value.clone(),
            },
        );
        self.push_event(ClientEvent::Part {
            name,
            version,
            value,
        });
    }

    fn dispatch_action(&mut self, action: ovation_proto::Action) {
        let cursor = self.cursor.unwrap_or(0);
        if action.seq <= cursor {
            return; // seen already (a resume overlaps what was delivered)
        }
        self.cursor = Some(action.seq);
        let ovation_proto::Action {
            seq,
            ts_ms,
            user,
            name,
            body,
        } = action;
        let event = match body {
            ActionBody::Comment { text } => ClientEvent::Comment {
                seq,
                ts_ms,
                user,
                name,
                text,
                system: false,
            },
            ActionBody::System { text } => ClientEvent::Comment {
                seq,
                ts_ms,
                user,
                name,
                text,
                system: true,
            },
            ActionBody::Reaction { kind } => ClientEvent::Reaction {
                seq,
                ts_ms,
                user,
                name,
                kind,
            },
            ActionBody::Gift { sku, qty, amount } => ClientEvent::Gift {
                seq,
                ts_ms,
                user,
                name,
                sku,
                qty,
                amount,
            },
            ActionBody::Removed { seq: removed } => ClientEvent::Removed {
                seq,
                ts_ms,
                removed,
                user,
            },
        };
        self.push_event(event);
    }

    fn set_likes(&mut self, total: u64) {
        if self.likes_total != Some(total) {
            self.likes_total = Some(total);
            self.push_event(ClientEvent::Like { total });
        }
    }

    fn set_online(&mut self, count: u32) {
        if self.online != Some(count) {
            self.online = Some(count);
            self.push_event(ClientEvent::Online { count });
        }
    }

    fn send_ping(&mut self, socket: u64, now_ms: u64) {
        self.clock_burst_left = self.clock_burst_left.saturating_sub(1);
        self.ping_in_flight = Some(now_ms);
        self.next_ping_ms = Some(now_ms + CLIENT_PING_TIMEOUT_MS);
        let frame = ClientFrame::Ping {
            client_time_ms: now_ms,
        }
        .encode();
        self.transmits.push_back(Transmit::Send { socket, frame });
    }

    // ---- Internals: actions ----

    /// Checks that an action can start and allocates its client id; `send_action` sends
    /// it. Two halves rather than one generic function: each action would otherwise get
    /// its own copy of this code in the wasm.
    fn start_action(&mut self) -> Result<u64, ActionError> {
        if self.phase == Phase::Closed {
            return Err(ActionError::new(
                self.closed_code(),
                "the room connection is closed",
            ));
        }
        if self.transport == Transport::Pull {
            return Err(ActionError::new(
                "unsupported_transport",
                "the pull transport only receives; sending needs the WebSocket",
            ));
        }
        if self.pending.len() >= CLIENT_ACTIONS_PENDING_MAX {
            return Err(ActionError::new(
                "too_many",
                &limit(
                    "at most ",
                    CLIENT_ACTIONS_PENDING_MAX,
                    " actions wait for the room",
                ),
            ));
        }
        let client_id = self.client_id_prefix | u64::from(self.next_client_counter);
        self.next_client_counter = self.next_client_counter.wrapping_add(1).max(1);
        Ok(client_id)
    }

    fn send_action(
        &mut self,
        frame: ClientFrame,
        now_ms: u64,
        reported: bool,
    ) -> Result<u64, ActionError> {
        let likes = match frame {
            ClientFrame::Like { count, .. } => count,
            _ => 0,
        };
        let client_id = frame.client_id().expect("actions carry a client id");
        debug_assert!(frame.check_limits().is_ok(), "validated above");
        let frame = frame.encode();
        if let Phase::Open { socket } = self.phase {
            self.transmits.push_back(Transmit::Send {
                socket,
                frame: frame.clone(),
            });
        }
        self.pending.push_back(PendingAction {
            client_id,
            frame,
            created_ms: now_ms,
            reported,
            likes,
        });
        Ok(client_id)
    }

    fn take_pending(&mut self, client_id: u64) -> Option<PendingAction> {
        // A duplicate answer to a retry, or timed out already, finds nothing.
        let index = self.pending.iter().position(|p| p.client_id == client_id)?;
        self.pending.remove(index)
    }

    fn action_done(&mut self, client_id: u64, seq: Option<u64>, error: Option<ActionError>) {
        let Some(action) = self.take_pending(client_id) else {
            return;
        };
        if action.reported {
            self.push_event(ClientEvent::Done {
                id: client_id,
                seq,
                error,
            });
        }
    }

    /// The room refused an action. A like frame refused for the rate goes back to the
    /// queue (the room counted none of it) and the queue waits as long as the room says;
    /// one refused for anything else is reported.
    fn action_refused(&mut self, client_id: u64, error: ActionError, now_ms: u64) {
        let Some(action) = self.take_pending(client_id) else {
            return;
        };
        if action.reported {
            self.push_event(ClientEvent::Done {
                id: client_id,
                seq: None,
                error: Some(error),
            });
            return;
        }
        // `u32::MAX`: a count over the room's burst, which no wait makes acceptable.
        let retryable =
            error.code == ErrorCode::RateLimited.as_str() && error.retry_after_ms != u32::MAX;
        if !retryable {
            self.likes_dropped(action.likes, &error.code, &error.message);
            return;
        }
        self.likes_waiting = self.likes_waiting.saturating_add(action.likes);
        // The room's bucket is emptier than ours: start ours empty too, and wait.
        self.likes_bucket = TokenBucket::new_full(CLIENT_LIKES_RATE_PER_S, LIKES_BURST, now_ms);
        let _ = self.likes_bucket.take(LIKES_BURST, now_ms);
        let wait_ms =
            u64::from(error.retry_after_ms).clamp(CLIENT_LIKE_FLUSH_MS, CLIENT_LIKE_RETRY_MS_MAX);
        self.last_like_frame_ms = Some(now_ms);
        let at = now_ms + wait_ms;
        self.next_like_flush_ms = Some(self.next_like_flush_ms.map_or(at, |t| t.max(at)));
    }

    #[inline(never)]
    fn likes_dropped(&mut self, count: u32, code: &str, message: &str) {
        if count > 0 {
            self.push_event(ClientEvent::LikesDropped {
                count,
                code: code.to_owned(),
                message: message.to_owned(),
            });
        }
    }

    /// The session ends or stops sending: every unacknowledged action ends with `code`;
    /// likes still waiting will not be counted (`code`), and like frames sent without an
    /// answer may or may not have been (`unconfirmed`).
    fn end_pending(&mut self, code: &str, message: &str) {
        let mut in_flight: u32 = 0;
        while let Some(action) = self.pending.pop_front() {
            if action.reported {
                self.push_event(ClientEvent::Done {
                    id: action.client_id,
                    seq: None,
                    error: Some(ActionError::new(code, message)),
                });
            }
            in_flight = in_flight.saturating_add(action.likes);
        }
        let waiting = core::mem::take(&mut self.likes_waiting);
        self.likes_dropped(waiting, code, message);
        self.likes_dropped(
            in_flight,
            "unconfirmed",
            "no answer before the connection ended: may have counted",
        );
    }

    fn expire_actions(&mut self, now_ms: u64) {
        while let Some(front) = self.pending.front() {
            if front.created_ms + CLIENT_ACTION_TIMEOUT_MS > now_ms {
                break;
            }
            let action = self.pending.pop_front().expect("non-empty");
            let message = "no answer from the room; it may or may not have been applied";
            if action.reported {
                self.push_event(ClientEvent::Done {
                    id: action.client_id,
                    seq: None,
                    error: Some(ActionError::new("timeout", message)),
                });
            } else {
                self.likes_dropped(action.likes, "timeout", message);
            }
        }
    }

    fn flush_likes(&mut self, now_ms: u64) {
        let count = self
            .likes_waiting
            .min(self.likes_bucket.available(now_ms))
            .min(LIKE_COUNT_PER_FRAME_MAX);
        self.next_like_flush_ms = None;
        if count > 0 && self.pending.len() < CLIENT_ACTIONS_PENDING_MAX {
            self.likes_bucket
                .take(count, now_ms)
                .expect("no more than available");
            self.likes_waiting -= count;
            self.last_like_frame_ms = Some(now_ms);
            let result = self.start_action().and_then(|client_id| {
                self.send_action(ClientFrame::Like { client_id, count }, now_ms, false)
            });
            debug_assert!(result.is_ok(), "checked: open, room in the queue");
        }
        if self.likes_waiting > 0 {
            self.next_like_flush_ms = Some(now_ms + CLIENT_LIKE_FLUSH_MS);
        }
    }

    // ---- Internals: pull ----

    fn start_pull(&mut self, now_ms: u64, reason: Option<String>) {
        self.phase = Phase::Pull;
        self.transport = Transport::Pull;
        self.end_pending(
            "unsupported_transport",
            "switched to the pull transport, which only receives",
        );
        self.set_status(Status::Connecting, reason);
        self.pull_state_stale = true; // ask for the state first
        self.pull_next(now_ms);
    }

    #[inline(never)]
    fn fetch(&mut self, kind: FetchKind, path: String, part: Option<(String, u64)>, now_ms: u64) {
        let request = self.send_fetch(kind, path);
        self.requests.push((
            request,
            PullRequest {
                kind,
                sent_ms: now_ms,
                part,
            },
        ));
    }

    /// The next pull request: the state when it is unknown or stale, else the events.
    fn pull_next(&mut self, now_ms: u64) {
        if self.pull_state_stale || self.cursor.is_none() {
            let path = self.state_path();
            self.fetch(FetchKind::State, path, None, now_ms);
        } else {
            let prefix = ["/v1/rooms/", &self.room, "/events?since="].concat();
            let path = json::with_number(&prefix, self.cursor.unwrap_or(0), "");
            self.fetch(FetchKind::Events, path, None, now_ms);
        }
    }

    fn on_pull_state(&mut self, state: PullState, now_ms: u64) {
        if state.status == "ended" {
            // As on a socket: the session ends (connect() rejects with `room_ended`).
            self.room_over();
            return;
        }
        self.pull_state_stale = false;
        if state.epoch != self.state.epoch {
            self.reset_epoch(state.epoch, state.action_cursor);
        }
        if self.cursor.is_none() {
            self.cursor = Some(state.action_cursor);
        }

        for (name, version) in &state.parts {
            let held = self.state.parts.get(name).map_or(0, |p| p.version);
            if *version > held {
                let prefix = ["/v1/rooms/", &self.room, "/parts/", name, "?v="].concat();
                let path = json::with_number(&prefix, *version, "");
                self.fetch(
                    FetchKind::Part,
                    path,
                    Some((name.clone(), *version)),
                    now_ms,
                );
            }
        }

        if state.version > self.state.version {
            self.state.version = state.version;
            self.push_event(ClientEvent::Version {
                epoch: state.epoch,
                version: state.version,
            });
        }
        self.set_likes(state.likes);
        self.set_online(state.online);
    }

    fn on_pull_events(&mut self, reply: PullEvents, sent_ms: u64, now_ms: u64) {
        if let Some(server_time_ms) = reply.server_time_ms {
            self.clock
                .add_sample(sent_ms, server_time_ms, server_time_ms, now_ms);
        }
        self.pull_interval_ms = u64::from(reply.poll_interval_ms.max(100));
        self.next_poll_ms = Some(now_ms + self.pull_interval_ms);
        if reply.epoch != self.state.epoch {
            self.pull_state_stale = true; // new epoch: the state answer resets
            return;
        }
        if reply.gap {
            self.push_event(ClientEvent::Gap {
                missed_after: self.cursor.unwrap_or(0),
                resumed_from: reply.events.first().map_or(reply.cursor, |a| a.seq),
            });
        }
        for action in reply.events {
            let body = match action.kind.as_str() {
                "comment" => ActionBody::Comment { text: action.text },
                "system" => ActionBody::System { text: action.text },
                "reaction" => ActionBody::Reaction { kind: action.text },
                "gift" => ActionBody::Gift {
                    sku: action.sku,
                    qty: action.qty,
                    amount: action.amount,
                },
                "removed" => ActionBody::Removed {
                    seq: action.removed,
                },
                _ => continue, // a newer server's kind: skip, do not fail
            };
            self.dispatch_action(ovation_proto::Action {
                seq: action.seq,
                ts_ms: action.ts_ms,
                user: action.user,
                name: action.name,
                body,
            });
        }
        if reply.cursor > self.cursor.unwrap_or(0) {
            self.cursor = Some(reply.cursor);
        }
        self.set_likes(reply.likes);
        self.set_online(reply.online);
        if reply.version > self.state.version {
            self.pull_state_stale = true; // parts changed: the next request is the state
            self.next_poll_ms = Some(now_ms);
        }
        if reply.status.as_deref() == Some("ended") {
            self.room_over();
        }
    }

    // ---- Internals: events ----

    #[inline(never)]
    fn set_status(&mut self, status: Status, reason: Option<String>) {
        if self.status == status && status != Status::Reconnecting {
            return;
        }
        self.status = status;
        self.emit_status(reason);
    }

    #[inline(never)]
    fn emit_status(&mut self, reason: Option<String>) {
        self.push_event(ClientEvent::Status {
            status: self.status,
            transport: self.transport,
            reason,
        });
    }

    #[inline(never)]
    fn emit_error(&mut self, code: &str, message: &str, retry_after_ms: u32) {
        self.push_event(ClientEvent::Error {
            code: code.to_string(),
            message: message.to_string(),
            retry_after_ms,
        });
    }

    /// Appends every queued event to `out` as one JSON array (see `write_events_json`)
    /// and empties the queue; returns how many. What a host does each turn instead of
    /// `poll_event` when its application takes JSON: no per-event move out of the queue.
    pub fn drain_events_json(&mut self, out: &mut String) -> usize {
        let count = self.events.len();
        write_events_json(self.events.iter(), out);
        self.events.clear();
        count
    }

    fn push_event(&mut self, event: ClientEvent) {
        if self.events.len() >= CLIENT_EVENTS_QUEUED_MAX {
            self.events_dropped += 1;
            return;
        }
        self.events.push_back(event);
    }
}

#[cfg(test)]
mod tests;
