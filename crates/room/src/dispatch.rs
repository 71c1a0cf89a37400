//! Frames from viewers: decoding, the Hello handshake, repeats answered from memory, each
//! frame routed to its feature, and refusals (`Refusal`) sent back as `Event::Error`.

use super::*;
use crate::audience::FrameRefused;

/// Why a viewer's frame was refused: what the sender gets back as `Event::Error`, with a
/// retry hint for rate limits (0 when retrying the same frame will not help).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub code: ErrorCode,
    pub message: String,
    pub retry_after_ms: u32,
}

impl Refusal {
    /// A user's or the room's rate refused it: `rate_limited`, with the wait.
    pub(crate) fn slow_down(wait_ms: u32) -> Self {
        Self::retry_after(ErrorCode::RateLimited, "slow down", wait_ms)
    }

    pub(crate) fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::retry_after(code, message, 0)
    }

    pub(crate) fn retry_after(
        code: ErrorCode,
        message: impl Into<String>,
        retry_after_ms: u32,
    ) -> Self {
        Self {
            code,
            message: message.into(),
            retry_after_ms,
        }
    }

    /// What the sender of the refused frame gets.
    pub(crate) fn into_event(self, client_id: Option<u64>) -> Event {
        Event::Error {
            client_id,
            code: self.code,
            message: self.message,
            retry_after_ms: self.retry_after_ms,
        }
    }
}

impl From<AdminError> for Refusal {
    /// A staff command sent over the socket is refused like the HTTP admin API would.
    fn from(error: AdminError) -> Self {
        Self::new(admin_error_code(&error), error.message())
    }
}

impl Room {
    /// A binary frame from a connection.
    pub fn handle_frame(&mut self, connection: ConnectionId, bytes: &[u8], now_ms: u64) {
        let Some(conn) = self.connections.get_mut(&connection) else {
            return; // Closed in the same instant; the host's event raced our close.
        };
        conn.liveness.seen(now_ms);
        self.stats.frames_in += 1;
        self.stats.bytes_in += bytes.len() as u64;
        let frame = match ClientFrame::decode(bytes) {
            Ok(frame) => frame,
            Err(error) => {
                let code = match error {
                    DecodeError::TooLarge { .. } => CloseCode::FrameTooLarge,
                    DecodeError::Malformed | DecodeError::FieldLimit { .. } => CloseCode::BadFrame,
                };
                self.close(connection, code, error.to_string(), now_ms);
                return;
            }
        };
        // A repeat of something already applied is answered before any rate: a resumed
        // client resends everything unacknowledged at once, and refusing a repeat for
        // the frame rate would make it send, and the room apply, the same thing twice.
        // Repeats without end close the socket, like any frames past the rate.
        if self.connections[&connection].ready && self.answer_repeat(connection, &frame, now_ms) {
            let conn = self
                .connections
                .get_mut(&connection)
                .expect("looked up above");
            if conn.frames.take_repeat(now_ms).is_err() {
                self.close_past_the_frame_rate(connection, now_ms);
            }
            return;
        }
        let conn = self
            .connections
            .get_mut(&connection)
            .expect("looked up above");
        match conn.frames.take(now_ms) {
            Ok(()) => {}
            Err(FrameRefused::Wait(retry_after_ms)) => {
                let client_id = frame.client_id();
                let refusal =
                    Refusal::retry_after(ErrorCode::RateLimited, "too many frames", retry_after_ms);
                self.refuse(connection, client_id, refusal, now_ms);
                return;
            }
            Err(FrameRefused::Close) => {
                self.close_past_the_frame_rate(connection, now_ms);
                return;
            }
        }
        match frame {
            ClientFrame::Hello(hello) => self.on_hello(connection, hello, now_ms),
            other => {
                if !self.connections[&connection].ready {
                    self.close(
                        connection,
                        CloseCode::ProtocolViolation,
                        "first frame must be Hello".into(),
                        now_ms,
                    );
                    return;
                }
                self.on_frame(connection, other, now_ms);
            }
        }
    }

    /// A text frame: the heartbeat is a sign of life, answered with the reply the host
    /// sends (the runtime's auto-response answers it without waking the object; this is
    /// when that did not happen, and closing would end a client that did nothing wrong);
    /// any other text closes `4415`.
    pub fn handle_text(
        &mut self,
        connection: ConnectionId,
        text: &str,
        now_ms: u64,
    ) -> Option<&'static str> {
        if text == HEARTBEAT_TEXT {
            self.connections.get(&connection)?;
            self.touch(connection, now_ms);
            return Some(HEARTBEAT_REPLY_TEXT);
        }
        self.close(
            connection,
            CloseCode::TextNotSupported,
            "text frames are not part of ovation.v1".into(),
            now_ms,
        );
        None
    }

    pub(crate) fn on_hello(&mut self, connection: ConnectionId, hello: Hello, now_ms: u64) {
        let shared_now = self.shared.len();
        let last_seq = self.ring.last_seq();
        let conn = self.connections.get_mut(&connection).expect("checked");
        if conn.hello_seen {
            self.close(
                connection,
                CloseCode::ProtocolViolation,
                "Hello sent twice".into(),
                now_ms,
            );
            return;
        }
        if hello.protocol_version != PROTOCOL_VERSION {
            let detail = format!("protocol {} not supported", hello.protocol_version);
            self.close(connection, CloseCode::UnsupportedProtocol, detail, now_ms);
            return;
        }
        conn.hello_seen = true;
        conn.liveness.hello();
        // The broadcasts from now on: the Welcome below holds the room as it is.
        conn.shared_from = shared_now;
        conn.hello_seq = last_seq;
        if !conn.ready {
            conn.ready = true;
            self.ready_local += 1;
        }
        let identity = conn.identity.clone();
        self.evict_old_actions(now_ms);
        let view = RoomView {
            epoch: self.epoch,
            likes_total: self.likes_total,
            tick_ms: self.tick_ms(),
            parts: &self.parts,
            ring: &self.ring,
        };
        let mut events = view.welcome(connection, &identity, hello.resume.as_ref());
        conn_needs_online(self, connection);
        if self.status == RoomStatus::Ended {
            events.push(Event::RoomEnded);
        }
        let staff = self.connections[&connection].identity.role.is_staff();
        for event in events {
            self.enqueue(connection, event, now_ms);
        }
        if staff {
            self.staff_welcome(connection, now_ms);
        }
    }

    fn close_past_the_frame_rate(&mut self, connection: ConnectionId, now_ms: u64) {
        let detail = format!("past the frame rate, more than {FRAMES_REFUSED_BURST} refused");
        self.close(connection, CloseCode::TooManyFrames, detail, now_ms);
    }

    /// Acknowledges again a frame whose client id this user's frame already used (a
    /// retry); true when it was one.
    pub(crate) fn answer_repeat(
        &mut self,
        connection: ConnectionId,
        frame: &ClientFrame,
        now_ms: u64,
    ) -> bool {
        // Gifts have their own idempotency key (the gift id, kept with the gifter).
        let Some(client_id) = frame
            .client_id()
            .filter(|_| !matches!(frame, ClientFrame::Gift { .. }))
        else {
            return false;
        };
        let user = self.connections[&connection].identity.user.clone();
        // A numbered action the ring still keeps is known there by its client id, also
        // after its user's rate buckets (and the recent ids in them) were evicted past
        // `RATE_BUCKETS_MAX` users, or the room restarted.
        let accepted = self.buckets(&user, now_ms).accepted(client_id);
        let Some(seq) = accepted.or_else(|| self.ring.seq_of(&user, client_id).map(Some)) else {
            return false;
        };
        self.stats.retries_acknowledged += 1;
        self.enqueue(connection, Event::Ack { client_id, seq }, now_ms);
        true
    }

    pub(crate) fn on_frame(&mut self, connection: ConnectionId, frame: ClientFrame, now_ms: u64) {
        let identity = self.connections[&connection].identity.clone();
        let client_id = frame.client_id();
        // Frames answered without a sequence number whose id is stored with the tick, so
        // that a restored room acknowledges their retries rather than applying them
        // again: those whose effect is stored by the end of the tick. Not a direct
        // message (its effect is the send, after the tick's storage: stored first, a
        // crash before the send would acknowledge a retry of a message never delivered)
        // nor votes, answers, upvotes and product clicks (once per user anyway: a
        // user's repeat clicks, free of any rate, would otherwise fill the tick's stored
        // ids and push out other users').
        let stored_across_restart = matches!(
            frame,
            ClientFrame::Like { .. }
                | ClientFrame::Command { .. }
                | ClientFrame::SetPart { .. }
                | ClientFrame::Ask { .. }
        );
        // (Repeats were answered by the caller: `handle_frame`, or the shard relay.)
        // An ended room changes no more: its own sockets are closed at the end, but
        // frames a shard queued before it learnt of the end still arrive relayed (they
        // took numbers and changed tallies after the end).
        if self.status == RoomStatus::Ended && !matches!(frame, ClientFrame::Ping { .. }) {
            let refusal = Refusal::new(ErrorCode::RoomEnded, "the room has ended");
            self.refuse(connection, client_id, refusal, now_ms);
            return;
        }
        let result: Result<Option<u64>, Refusal> = match frame {
            ClientFrame::Hello(_) => unreachable!("handled by on_hello"),
            ClientFrame::Ping { client_time_ms } => {
                self.enqueue(
                    connection,
                    Event::Pong {
                        client_time_ms,
                        server_time_ms: now_ms,
                    },
                    now_ms,
                );
                return;
            }
            ClientFrame::Comment { client_id, text } => self.user_action(
                connection,
                &identity,
                client_id,
                ActionBody::Comment { text },
                now_ms,
            ),
            ClientFrame::Reaction { client_id, kind } => self.user_action(
                connection,
                &identity,
                client_id,
                ActionBody::Reaction { kind },
                now_ms,
            ),
            ClientFrame::Like { count, .. } => self.on_like(&identity, count, now_ms),
            ClientFrame::Gift {
                client_id,
                gift_id,
                sku,
                qty,
            } => match self.on_gift(connection, &identity, client_id, gift_id, sku, qty, now_ms) {
                // Answered when the charge comes back.
                Ok(()) => return,
                Err(refusal) => Err(refusal),
            },
            ClientFrame::Direct {
                to_user, payload, ..
            } => self.on_direct(&identity, to_user, payload, now_ms),
            ClientFrame::Vote {
                poll_id, option, ..
            } => self.on_vote(&identity, &poll_id, option, now_ms),
            ClientFrame::Answer {
                quiz_id,
                question,
                option,
                ..
            } => self.on_answer(&identity, &quiz_id, question, option, now_ms),
            ClientFrame::Ask { text, .. } => self.on_ask(&identity, text, now_ms),
            ClientFrame::Upvote { question_id, .. } => {
                self.on_upvote(&identity, &question_id, now_ms)
            }
            ClientFrame::ProductClick { product_id, .. } => {
                self.on_product_click(&identity, &product_id, now_ms)
            }
            ClientFrame::Command { client_id, command } => {
                self.on_command(connection, &identity, client_id, &command, now_ms)
            }
            ClientFrame::SetPart { name, value, .. } => {
                if !identity.role.is_staff() {
                    Err(Refusal::new(
                        ErrorCode::Forbidden,
                        "hosts and moderators only",
                    ))
                } else {
                    self.take_staff_write(&identity, now_ms).and_then(|()| {
                        self.set_part(name, value, now_ms)
                            .map(|_| None)
                            .map_err(Refusal::from)
                    })
                }
            }
        };
        let client_id = client_id.expect("every frame but Hello and Ping has a client id");
        match result {
            Ok(seq) => {
                self.buckets(&identity.user, now_ms)
                    .remember(client_id, seq);
                if stored_across_restart
                    && self.unsequenced_acked.len() < LIKE_FRAMES_STORED_PER_TICK_MAX
                {
                    self.unsequenced_acked
                        .push((identity.user.clone(), client_id));
                }
                // A command that ended the room closed this socket, answered already.
                if self.connections.contains_key(&connection) {
                    self.enqueue(connection, Event::Ack { client_id, seq }, now_ms)
                }
            }
            Err(refusal) => self.refuse(connection, Some(client_id), refusal, now_ms),
        }
    }

    pub(crate) fn refuse(
        &mut self,
        connection: ConnectionId,
        client_id: Option<u64>,
        refusal: Refusal,
        now_ms: u64,
    ) {
        if refusal.code == ErrorCode::RateLimited {
            self.stats.rate_limited += 1;
        }
        let user = self
            .connections
            .get(&connection)
            .map(|c| c.identity.user.clone());
        let code = refusal.code.as_str();
        self.log_refusal(Some(connection), user.as_deref(), code, &refusal.message);
        self.enqueue(connection, refusal.into_event(client_id), now_ms);
    }

    pub(crate) fn log_refusal(
        &mut self,
        connection: Option<ConnectionId>,
        user: Option<&str>,
        code: &'static str,
        detail: &str,
    ) {
        self.outputs.push_back(Output::Log(LogRecord {
            event: "refusal",
            connection,
            user: user.map(str::to_owned),
            code,
            detail: detail.to_owned(),
        }));
    }

    pub(crate) fn buckets(&mut self, user: &str, now_ms: u64) -> &mut UserBuckets {
        self.connections.buckets(user, now_ms)
    }

    pub(crate) fn on_like(
        &mut self,
        identity: &Identity,
        count: u32,
        now_ms: u64,
    ) -> Result<Option<u64>, Refusal> {
        if count == 0 || count > LIKE_COUNT_PER_FRAME_MAX {
            return Err(Refusal::new(
                ErrorCode::Invalid,
                format!("like count must be 1..={LIKE_COUNT_PER_FRAME_MAX}"),
            ));
        }
        self.buckets(&identity.user, now_ms)
            .likes
            .take(count, now_ms)
            .map_err(|wait| {
                Refusal::retry_after(
                    ErrorCode::RateLimited,
                    format!("at most {LIKES_RATE_PER_S} likes per second"),
                    wait,
                )
            })?;
        self.likes_total += u64::from(count);
        self.meta_dirty = true;
        self.likes_changed(now_ms);
        Ok(None)
    }

    pub(crate) fn on_direct(
        &mut self,
        identity: &Identity,
        to_user: String,
        payload: String,
        now_ms: u64,
    ) -> Result<Option<u64>, Refusal> {
        if !identity.role.is_staff() {
            return Err(Refusal::new(
                ErrorCode::Forbidden,
                "hosts and moderators only",
            ));
        }
        self.buckets(&identity.user, now_ms)
            .directs
            .take(1, now_ms)
            .map_err(Refusal::slow_down)?;
        let reached = self
            .send_direct(&identity.user, &to_user, payload, now_ms)
            .map_err(Refusal::from)?;
        if reached == 0 && !self.shards.is_sharded() {
            // Not acknowledged as if delivered: nobody of that user is here. (A big room's
            // viewers are on its shards, which the room cannot ask in time: there the
            // message goes to the user's shards and is acknowledged.)
            return Err(Refusal::new(
                ErrorCode::NotFound,
                "that user has no connection to this room: not delivered",
            ));
        }
        Ok(None)
    }

    pub(crate) fn send_direct(
        &mut self,
        from_user: &str,
        to_user: &str,
        payload: String,
        now_ms: u64,
    ) -> Result<u32, AdminError> {
        if to_user.is_empty() {
            return Err(AdminError::Empty { field: "to_user" });
        }
        if to_user.len() > USER_ID_BYTES_MAX {
            // The socket's frame decoder bounds it; the admin route must too.
            return Err(AdminError::TooLong {
                field: "to_user",
                bytes_max: USER_ID_BYTES_MAX,
            });
        }
        check_json(&payload, "payload", DIRECT_PAYLOAD_BYTES_MAX)?;
        let event = Event::Direct {
            from: from_user.to_owned(),
            payload,
            ts_ms: now_ms,
        };
        Ok(self.send_to_user(to_user, event, now_ms))
    }
}
