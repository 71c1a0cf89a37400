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

mod actions;
mod api;
mod clock;
mod connection;
mod json;
pub mod playback;
mod pull;
pub mod replay;
mod rng;
mod state;
mod timers;

use alloc::borrow::ToOwned;
use alloc::collections::{BTreeMap, VecDeque};
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use ovation_proto::limits::*;
use ovation_proto::{
    ActionBody, ClientFrame, CloseCode, DecodeError, Event, Hello, PartVersion, Resume,
    ServerFrame, TokenBucket, Welcome, PROTOCOL_VERSION, UPGRADE_HELLO_QUERY,
};
use rng::Rng;
use serde::Serialize;
use timers::{Timer, TimerTable};

pub use api::*;
pub use clock::ClockSync;
pub use json::{cue_event_json, write_events_json};

/// RFC 6455 "normal closure": the client closes because it is done, not because of a fault.
const NORMAL_CLOSURE: u16 = 1000;

#[derive(Clone, Debug, PartialEq, Eq)]
enum Phase {
    /// The next socket opens at `Timer::Reconnect`.
    Waiting,
    /// A socket was asked for and has not said Welcome yet (given up at `Timer::Connect`).
    Connecting {
        socket: u64,
        /// The upgrade said the Hello (`UPGRADE_HELLO_QUERY`): no Hello frame follows.
        hello_in_upgrade: bool,
        /// The host reported the socket open.
        opened: bool,
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
    /// Sent on a socket at least once: the room may have applied it, so a refusal of
    /// the whole session is not this action's answer.
    sent: bool,
    /// The like count a like frame carries (0 for other actions): queued again when the
    /// room refuses it for the rate, reported as `LikesDropped` when it is lost.
    likes: u32,
    /// Sent again on a later socket (`on_welcome`): a refusal for the rate may be a big
    /// room's shard that had not yet seen the room acknowledge the first copy, so it is
    /// sent again after the wait (`Timer::Resend`, at `resend_at_ms`) rather than told
    /// as refused: the room may have applied it, and the app would post it again.
    resent: bool,
    resend_at_ms: Option<u64>,
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
    /// A socket that said its Hello in the upgrade opened and was never answered (an edge
    /// older than `UPGRADE_HELLO_QUERY`): this session sends Hello frames from then on.
    upgrade_hello_unanswered: bool,
    likes_total: Option<u64>,
    online: Option<u32>,
    ended: bool,
    // Sockets.
    next_socket: u64,
    ws_failures: u32,
    /// Upgrades that failed (sockets that never opened) since the last Welcome, whatever
    /// their admission checks found: `ws_failures` forgives those of a live room, up to
    /// `CLIENT_WS_FAILURES_IN_LIVE_ROOM_BEFORE_PULL` of these.
    upgrades_failed: u32,
    attempt: u32,
    /// Sockets closed `4005` for the application's pace (never reset: a Welcome does not
    /// make the application slower), each waiting longer before the next.
    frame_rate_closes: u32,
    /// Every deadline (see `Timer`): `poll_timeout` is the earliest.
    timers: TimerTable,
    // Clock.
    clock: ClockSync,
    ping_in_flight: Option<u64>,
    clock_burst_left: usize,
    /// What the application started and has not seen end, and the likes it queued.
    actions: actions::Actions,
    /// The state request asking why a socket never opened: (request, sent at).
    admission_check: Option<(u64, u64)>,
    /// The HTTP requests: the pull transport's and the admission check's.
    pull: pull::Pull,
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
        // The counter starts anywhere, too: two sessions of one user with the same prefix
        // (a page and its reload: one in 2^21) both counting from 1 gave the second's
        // first actions the ids of the first's, which the room answered as repeats and
        // never applied.
        let client_counter_first = rng.next_u64() as u32;
        let mut client = Client {
            room: config.room,
            mode: config.transport,
            transport: Transport::Ws,
            phase: Phase::Waiting,
            status: Status::Connecting,
            rng,
            state: RoomState::default(),
            cursor: None,
            socket_cap_retries: 0,
            upgrade_hello_unanswered: false,
            likes_total: None,
            online: None,
            ended: false,
            next_socket: 1,
            ws_failures: 0,
            upgrades_failed: 0,
            attempt: 0,
            frame_rate_closes: 0,
            timers: TimerTable::default(),
            clock: ClockSync::default(),
            ping_in_flight: None,
            clock_burst_left: 0,
            actions: actions::Actions::new(client_id_prefix, client_counter_first, now_ms),
            admission_check: None,
            pull: pull::Pull::default(),
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
        self.actions.pending.len()
    }

    /// Likes queued and not yet sent.
    pub fn likes_waiting(&self) -> u32 {
        self.actions.likes_waiting
    }

    /// Events dropped because the application did not drain them.
    pub fn events_dropped(&self) -> u64 {
        self.events_dropped
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }

    /// The earliest time `handle_timeout` must be called.
    pub fn poll_timeout(&self) -> Option<u64> {
        self.timers.next_timeout()
    }

    /// Fires every expired timer, in `Timer::ALL` order. Each is checked when its turn
    /// comes: one an earlier timer stopped (a silent socket stops the heartbeat) or moved
    /// does not fire.
    pub fn handle_timeout(&mut self, now_ms: u64) {
        for timer in Timer::ALL {
            if !self.timers.is_expired(timer, now_ms) {
                continue;
            }
            match (timer, self.phase.clone()) {
                (Timer::Action, _) => self.expire_actions(now_ms),
                (Timer::Reconnect, _) => self.open_socket(now_ms),
                (
                    Timer::Connect,
                    Phase::Connecting {
                        socket,
                        hello_in_upgrade,
                        opened,
                    },
                ) => {
                    // Opened, the upgrade's Hello said, and no Welcome: perhaps an edge
                    // that does not know the query. The next try sends a Hello frame.
                    if hello_in_upgrade && opened {
                        self.upgrade_hello_unanswered = true;
                    }
                    self.close_socket(socket, CloseCode::Stale.code(), "connect timeout");
                    self.socket_failed(now_ms, "connect_timeout".into());
                }
                (Timer::Silence, Phase::Open { socket }) => {
                    self.close_socket(socket, CloseCode::Stale.code(), "silent too long");
                    self.schedule_reconnect(now_ms, "silence".into());
                    return;
                }
                (Timer::Heartbeat, Phase::Open { socket }) => {
                    self.transmits.push_back(Transmit::SendText {
                        socket,
                        text: ovation_proto::limits::HEARTBEAT_TEXT,
                    });
                    self.timers
                        .set(Timer::Heartbeat, now_ms + HEARTBEAT_INTERVAL_MS);
                }
                (Timer::Ping, Phase::Open { socket }) => {
                    // A ping still in flight lost its pong: forget it, take the next sample.
                    self.send_ping(socket, now_ms);
                }
                (Timer::LikeFlush, _) => self.flush_likes(now_ms),
                (Timer::Resend, Phase::Open { socket }) => self.resend_due(socket, now_ms),
                (Timer::Fetch, _) => {
                    let expired: Vec<u64> = self
                        .pull
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
                                code: FailureCode::Timeout,
                                message: "no answer".into(),
                            },
                            now_ms,
                        );
                    }
                }
                // Stays due while requests are in flight: the next one waits for them.
                (Timer::Poll, _) => {
                    // Stopped either way: with requests in flight the last answer reads
                    // next (`handle_fetch`); left armed, a due timer fired again at once,
                    // a host's 0 ms timer in a loop until they answered.
                    self.timers.stop(Timer::Poll);
                    if self.pull.requests.is_empty() {
                        self.pull_next(now_ms);
                    }
                }
                // Connect, Silence, Heartbeat and Ping are armed only in their phase.
                // Stopped all the same: left due, it would fire again at once, forever.
                (other, _) => {
                    debug_assert!(false, "a timer armed outside its phase");
                    self.timers.stop(other);
                }
            }
        }
    }

    /// The socket asked for by `OpenSocket` is open. (Its silence counts from Welcome,
    /// hence no use for the time.)
    pub fn handle_socket_open(&mut self, socket: u64, _now_ms: u64) {
        let Phase::Connecting {
            socket: s,
            hello_in_upgrade,
            ..
        } = self.phase
        else {
            return;
        };
        if s != socket {
            return;
        }
        self.phase = Phase::Connecting {
            socket,
            hello_in_upgrade,
            opened: true,
        };
        if hello_in_upgrade {
            return; // the room answers the upgrade's Hello
        }
        // At most what a room may hold (a server sending more is not ours to trust): a
        // part left out is only sent again in full.
        let resume = (self.state.epoch != 0).then(|| Resume {
            epoch: self.state.epoch,
            action_cursor: self.cursor.unwrap_or(0),
            part_versions: self
                .state
                .parts
                .iter()
                .take(ROOM_PARTS_MAX)
                .map(|(name, version)| PartVersion {
                    name: name.clone(),
                    version: *version,
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
            self.heard_from_room(now_ms);
        }
    }

    pub fn handle_socket_message(&mut self, socket: u64, bytes: &[u8], now_ms: u64) {
        if !self.is_current(socket) {
            return;
        }
        self.heard_from_room(now_ms);
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
                let code = FailureCode::BadServerFrame;
                self.emit_error(code.clone(), why, 0);
                self.close_socket(socket, CloseCode::BadFrame.code(), "bad frame");
                self.schedule_reconnect(now_ms, code.as_str().into());
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
        if code == CloseCode::HelloTimeout.code()
            && matches!(
                self.phase,
                Phase::Connecting {
                    hello_in_upgrade: true,
                    ..
                }
            )
        {
            // The room heard no Hello, though the upgrade said one: something on the way
            // (a proxy that drops the query) lost it. Trying the same again would loop
            // for good, as the admission check finds the room live each time; the next
            // try sends a Hello frame.
            self.upgrade_hello_unanswered = true;
        }
        match CloseCode::from_code(code) {
            // Told `ended` once, whether or not `RoomEnded` came first (a shard closing
            // a woken socket of an ended room sends only the close).
            Some(CloseCode::RoomEnded) => self.room_over(),
            Some(CloseCode::Banned) => {
                let message = "a moderator banned you from this room";
                self.fail_as(Some(name), FailureCode::Banned, message);
            }
            Some(CloseCode::TooManySockets | CloseCode::RoomFull)
                if self.cursor.is_some()
                    && self.socket_cap_retries < CLIENT_SOCKET_CAP_RETRIES_MAX =>
            {
                // This session was open: the sockets holding the places (the user's, or
                // the last of a full room's) may be its own, dropped without a close on
                // a bad network. The room gives such a place to a new socket once it is
                // silent long enough; wait that long.
                self.socket_cap_retries += 1;
                let delay_ms =
                    USER_SOCKET_REPLACEABLE_SILENCE_MS + self.rng.up_to(CLIENT_BACKOFF_MS_BASE);
                self.reconnect_after(now_ms, delay_ms, name);
            }
            Some(CloseCode::TooManySockets) => {
                // Another tab must close first; retrying here would only be refused again.
                let message = "too many sockets: close a tab";
                self.fail_as(Some(name), FailureCode::TooManySockets, message);
            }
            Some(CloseCode::RoomFull) => {
                // The room (or the viewer's shard) holds all the sockets it may, none of
                // them this session's: the same socket again would be refused again.
                // `auto` reads the room over the pull transport, which needs none; `ws`
                // ends with the room's code.
                let code = FailureCode::Api("room_full".into());
                let message = "the room is full";
                self.socket_refused(now_ms, name, code, message);
            }
            Some(CloseCode::TooManyFrames) => {
                // The application made more than the room takes (each frame past the rate
                // was refused `rate_limited`): at the same pace a new socket is closed
                // again, so each such close waits twice as long (1 s, 2 s, 4 s, then 8 s),
                // whatever Welcomes came between; never as long as an action's timeout,
                // which would end the pending actions unanswered.
                self.frame_rate_closes = self.frame_rate_closes.saturating_add(1);
                let delay_ms = (CLIENT_BACKOFF_MS_BASE << self.frame_rate_closes.min(16))
                    .min(CLIENT_FRAME_RATE_CLOSE_WAIT_MS_MAX);
                self.reconnect_after(now_ms, delay_ms, name);
            }
            Some(CloseCode::UnsupportedProtocol) => {
                let message = "unsupported protocol";
                self.fail_as(Some(name), FailureCode::UnsupportedProtocol, message);
            }
            // The server refused a frame this SDK sent (another protocol version, or a
            // limit it keeps tighter). Reconnecting would send the same frames again and
            // be closed again until every action timed out: `ws` ends now, with its code;
            // `auto` reads the room over the pull transport, which sends no frames.
            Some(
                refused @ (CloseCode::BadFrame
                | CloseCode::FrameTooLarge
                | CloseCode::ProtocolViolation
                | CloseCode::TextNotSupported),
            ) => {
                let message = "the server refused a frame this SDK sent";
                let code = FailureCode::Api(refused.reason().into());
                self.socket_refused(now_ms, name, code, message);
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

    /// A socket the server refused for a reason another socket would meet again (a full
    /// room, a frame it could not take): `auto` tells it and reads the room over the pull
    /// transport, which needs no socket and sends no frames; `ws` ends with its code.
    #[inline(never)]
    fn socket_refused(&mut self, now_ms: u64, reason: String, code: FailureCode, message: &str) {
        if self.mode == TransportMode::Auto {
            self.emit_error(code, message, 0);
            self.start_pull(now_ms, Some(reason));
        } else {
            self.fail_as(Some(reason), code, message);
        }
    }

    pub fn handle_fetch(&mut self, request: u64, reply: FetchReply, now_ms: u64) {
        if self.admission_check.is_some_and(|(id, _)| id == request) {
            self.admission_check = None;
            self.on_admission_check(reply, now_ms);
            return;
        }
        let Some(index) = self.pull.requests.iter().position(|(id, _)| *id == request) else {
            return; // timed out or from before a reset
        };
        let (_, req) = self.pull.requests.remove(index);
        self.arm_fetch_timer();
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
                    // The part moved on since the state was read (the room keeps only
                    // its newest version). The events, read when due, name the newer
                    // room version, and the state is read again then. Reading the state
                    // at once looped state, part, 404 without pause while a part changed
                    // faster than a round trip, and the events were never read. A later
                    // read already set (another read's backoff) is kept.
                    let due_ms = now_ms.max(self.pull.events_due_ms);
                    let at_ms = self
                        .timers
                        .get(Timer::Poll)
                        .map_or(due_ms, |t| t.max(due_ms));
                    self.timers.set(Timer::Poll, at_ms);
                    return;
                }
                if is_refusal(status) {
                    // Not something a retry fixes: bad token, unknown or ended room.
                    self.fail(code, &message);
                    return;
                }
                if status == 429 {
                    // The user's read rate (`USER_READS_PER_S`), not a failing room or
                    // network: read again after an interval (no shorter than the wait the
                    // server names, a token's refill), without a backoff that several
                    // parts refused at once would add up, and still `open`. Told once a
                    // streak: while refused the room's news stops (many clients reading
                    // with one token), and a first read refused until the connect gives
                    // up rejects with the server's code, not a timeout.
                    if req.kind == FetchKind::Part {
                        self.pull.state_stale = true;
                    }
                    self.pull.rate_limited = true;
                    if !core::mem::replace(&mut self.pull.rate_limit_told, true) {
                        self.emit_error(code, &message, 0);
                    }
                    self.timers.set(Timer::Poll, now_ms + self.pull.interval_ms);
                    return;
                }
                // A 2xx whose body is not the API's (a proxy's page) is told too, as
                // `bad_response`: only a network failure (`status` 0) is not.
                if status != 0 {
                    // A server error a retry may change: read again after a backoff, and
                    // tell the server's code (as the socket's admission check does).
                    self.emit_error(code.clone(), &message, 0);
                }
                self.pull.failures = self.pull.failures.saturating_add(1);
                let delay = self.backoff_ms(self.pull.failures.saturating_sub(1));
                if req.kind == FetchKind::Part {
                    self.pull.state_stale = true; // refetch the state, and with it this part
                }
                let at = now_ms + delay.max(self.pull.interval_ms / 2);
                self.timers.set(Timer::Poll, at);
                if self.status == Status::Open {
                    self.set_status(Status::Reconnecting, Some(code.as_str().to_owned()));
                }
            }
            FetchReply::State(state) => {
                self.pull.failures = 0;
                self.pull.rate_limited = false;
                self.on_pull_state(state, now_ms);
            }
            FetchReply::Events(events) => {
                self.pull.failures = 0;
                self.pull.rate_limited = false;
                self.pull.rate_limit_told = false;
                self.on_pull_events(events, req.sent_ms, now_ms);
            }
            FetchReply::Part { value, newer } => {
                let (name, asked) = req.part.expect("part requests carry their part");
                // The newest value when the part moved on since the state named it
                // (`apply_part` keeps a version the client already holds).
                self.apply_part(name, newer.unwrap_or(asked), value);
            }
        }
        // Open once the state and every outdated part are in, as a socket is after Welcome
        // (but for a part that moved on while it was read: the newer version comes after
        // the next events read names it).
        let settled = self.phase == Phase::Pull && self.pull.requests.is_empty();
        let whole = self.pull.failures == 0 && !self.pull.rate_limited;
        if settled && whole && self.status != Status::Open {
            self.set_status(Status::Open, None);
        }
        if settled && self.timers.get(Timer::Poll).is_none() {
            if self.pull.state_stale || now_ms >= self.pull.events_due_ms {
                self.pull_next(now_ms);
            } else {
                self.timers.set(Timer::Poll, self.pull.events_due_ms);
            }
        }
    }

    /// Closes for good: the socket closes, unfinished actions end with `closed`.
    pub fn close(&mut self) {
        if self.phase == Phase::Closed {
            return;
        }
        self.close_current_socket();
        self.finish(Some("closed".into()));
    }
}

#[cfg(test)]
mod tests;
