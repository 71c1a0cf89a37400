//! The socket's life: open, admission check after a failed upgrade, backoff and reconnect,
//! the end of the room, pings for the clock.

use super::*;

impl Client {
    pub(crate) fn is_current(&self, socket: u64) -> bool {
        match self.phase {
            Phase::Connecting { socket: s, .. } | Phase::Open { socket: s } => s == socket,
            _ => false,
        }
    }

    pub(crate) fn open_socket(&mut self, now_ms: u64) {
        let socket = self.next_socket;
        self.next_socket += 1;
        // Nothing to resume: the upgrade says the Hello, and Welcome comes a round trip
        // sooner (a join storm's joins are each one round trip).
        let hello_in_upgrade = self.state.epoch == 0 && !self.upgrade_hello_unanswered;
        self.phase = Phase::Connecting {
            socket,
            hello_in_upgrade,
            opened: false,
        };
        self.timers.stop(Timer::Reconnect);
        self.timers
            .set(Timer::Connect, now_ms + CLIENT_CONNECT_TIMEOUT_MS);
        self.transport = Transport::Ws;
        let query = if hello_in_upgrade {
            ["?", UPGRADE_HELLO_QUERY].concat()
        } else {
            String::new()
        };
        self.transmits.push_back(Transmit::OpenSocket {
            socket,
            path: ["/v1/rooms/", &self.room, "/ws", &query].concat(),
        });
    }

    /// `code`: a `CloseCode` of the protocol, or `NORMAL_CLOSURE` when the client is done.
    #[inline(never)]
    pub(crate) fn close_socket(&mut self, socket: u64, code: u16, reason: &str) {
        self.transmits.push_back(Transmit::CloseSocket {
            socket,
            code,
            reason: reason.to_owned(),
        });
    }

    /// A socket never opened: asks the room's state with the token, which answers the
    /// refusal the upgrade got (401/403/404/410 with a code, or `ended`) where a browser
    /// cannot read the upgrade's own answer. At most one in flight.
    pub(crate) fn check_admission(&mut self, now_ms: u64) {
        if self
            .admission_check
            .is_some_and(|(_, sent_ms)| now_ms < sent_ms + CLIENT_ADMISSION_CHECK_TIMEOUT_MS)
        {
            return;
        }
        let request = self.send_fetch(FetchKind::State, self.state_path());
        self.admission_check = Some((request, now_ms));
    }

    pub(crate) fn state_path(&self) -> String {
        ["/v1/rooms/", &self.room, "/state"].concat()
    }

    /// Asks the host for one fetch; returns its request id.
    pub(crate) fn send_fetch(&mut self, kind: FetchKind, path: String) -> u64 {
        let request = self.pull.next_request;
        self.pull.next_request += 1;
        self.transmits.push_back(Transmit::Fetch {
            request,
            path,
            kind,
        });
        request
    }

    /// A refusal ends the session with the server's code; anything else (a live room, a
    /// network failure, a server error) leaves the reconnects to go on.
    pub(crate) fn on_admission_check(&mut self, reply: FetchReply, now_ms: u64) {
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
                if matches!(code, FailureCode::Refused(ErrorCode::RoomEnded)) {
                    self.room_over();
                    return;
                }
                self.fail(code, &message);
            }
            FetchReply::State(state) if state.status == "ended" => {
                self.close_current_socket();
                self.room_over();
            }
            FetchReply::State(_) => {
                // The room is live and takes this token: the upgrade failed for a moment
                // (the Worker's per-user connect rate, a network blip), not for good. It
                // does not count towards giving WebSockets up for pull, and the next
                // try waits for the connect rate to refill; but so many upgrades failed
                // are a network that strips them (`socket_failed`).
                self.ws_failures = 0;
                if let (Phase::Waiting, Some(at_ms)) =
                    (&self.phase, self.timers.get(Timer::Reconnect))
                {
                    let refilled_ms = now_ms + 1_000 / u64::from(USER_CONNECTS_PER_S);
                    self.timers.set(Timer::Reconnect, at_ms.max(refilled_ms));
                }
            }
            FetchReply::Failed {
                status,
                code,
                message,
            } if status != 0 => {
                // A server error or a rate limit (503 `auth_not_configured`, 429): the
                // reconnects go on, as a retry may change it, and the application hears
                // the server's code (`connect()` rejects with it, not `connect_timeout`,
                // when no session opened in time).
                self.emit_error(code, &message, 0);
            }
            _ => {}
        }
    }

    pub(crate) fn close_current_socket(&mut self) {
        if let Phase::Open { socket } | Phase::Connecting { socket, .. } = self.phase {
            self.close_socket(socket, NORMAL_CLOSURE, "closed by the client");
        }
    }

    /// The room ended: told once, then the session closes for good (`room_ended`).
    #[inline(never)]
    pub(crate) fn room_over(&mut self) {
        if !self.ended {
            self.ended = true;
            self.push_event(ClientEvent::Ended);
        }
        self.finish(Some("room_ended".into()));
    }

    /// A socket that never said Welcome is gone.
    pub(crate) fn socket_failed(&mut self, now_ms: u64, reason: String) {
        self.check_admission(now_ms);
        self.ws_failures = self.ws_failures.saturating_add(1);
        // A socket that opened and got no Welcome in time (a slow live room) is on a
        // network that carries WebSockets: not an upgrade that failed.
        if matches!(self.phase, Phase::Connecting { opened: false, .. }) {
            self.upgrades_failed = self.upgrades_failed.saturating_add(1);
        }
        // Only a session whose WebSockets never worked reads over the pull transport: one
        // that had a socket welcomed (it has a cursor) is on a network that carries them,
        // lost for a moment (a switch from wifi to cellular fails a few reconnects and
        // their admission checks), and keeps reconnecting rather than receive only for good.
        // Failures whose admission check found the room live are forgiven, up to a bound
        // on the upgrades that failed.
        if self.mode == TransportMode::Auto
            && self.cursor.is_none()
            && (self.ws_failures >= CLIENT_WS_FAILURES_BEFORE_PULL
                || self.upgrades_failed >= CLIENT_WS_FAILURES_IN_LIVE_ROOM_BEFORE_PULL)
        {
            self.start_pull(now_ms, Some(reason));
            return;
        }
        self.schedule_reconnect(now_ms, reason);
    }

    pub(crate) fn schedule_reconnect(&mut self, now_ms: u64, reason: String) {
        let delay = self.backoff_ms(self.attempt);
        self.attempt = self.attempt.saturating_add(1);
        self.reconnect_after(now_ms, delay, reason);
    }

    #[inline(never)]
    pub(crate) fn reconnect_after(&mut self, now_ms: u64, delay_ms: u64, reason: String) {
        self.phase = Phase::Waiting;
        for timer in Timer::SOCKET_PHASES {
            self.timers.stop(timer);
        }
        self.timers.set(Timer::Reconnect, now_ms + delay_ms);
        self.ping_in_flight = None;
        self.set_status(Status::Reconnecting, Some(reason));
    }

    /// Full jitter: uniform in `0..=min(max, base * 2^attempt)`.
    pub(crate) fn backoff_ms(&mut self, attempt: u32) -> u64 {
        let cap = CLIENT_BACKOFF_MS_BASE
            .saturating_mul(1u64 << attempt.min(20))
            .min(CLIENT_BACKOFF_MS_MAX);
        let delay = self.rng.up_to(cap);
        assert!(delay <= CLIENT_BACKOFF_MS_MAX);
        delay
    }

    /// The code an action gets when the connection is over.
    pub(crate) fn closed_code(&self) -> FailureCode {
        if self.ended {
            FailureCode::Refused(ErrorCode::RoomEnded)
        } else {
            FailureCode::Closed
        }
    }

    pub(crate) fn finish(&mut self, reason: Option<String>) {
        self.finish_with(reason, None);
    }

    /// Ends the session. `refused`: the server's refusal that ended it (`banned`,
    /// `token_expired`, …; code and message), which what was never sent ends with; what
    /// was sent ends `closed` (it may have been applied first).
    #[inline(never)]
    pub(crate) fn finish_with(
        &mut self,
        reason: Option<String>,
        refused: Option<(FailureCode, &str)>,
    ) {
        self.phase = Phase::Closed;
        self.pull.requests.clear();
        self.admission_check = None;
        // An action sent before the room ended may have been applied (a gift charged
        // while the end waited for it): `closed`, never `room_ended`, which reads as
        // "not applied". What was never sent ends `room_ended`.
        let ended = self
            .ended
            .then_some((self.closed_code(), "the room has ended"));
        let refused = refused.or(ended);
        self.end_pending(FailureCode::Closed, "the connection closed first", refused);
        self.timers.clear();
        self.set_status(Status::Closed, reason);
    }

    pub(crate) fn send_ping(&mut self, socket: u64, now_ms: u64) {
        self.clock_burst_left = self.clock_burst_left.saturating_sub(1);
        self.ping_in_flight = Some(now_ms);
        self.timers
            .set(Timer::Ping, now_ms + CLIENT_PING_TIMEOUT_MS);
        let frame = ClientFrame::Ping {
            client_time_ms: now_ms,
        }
        .encode();
        self.transmits.push_back(Transmit::Send { socket, frame });
    }

    /// A frame or a heartbeat answer arrived: an open socket is not silent. (Connecting
    /// has its own deadline; Welcome arms the silence timer.)
    pub(crate) fn heard_from_room(&mut self, now_ms: u64) {
        if matches!(self.phase, Phase::Open { .. }) {
            self.timers
                .set(Timer::Silence, now_ms + CLIENT_SILENCE_MS_MAX);
        }
    }
}
