//! The shard's viewers: Hello and Welcome from the mirror, what is answered here (Ping,
//! likes, repeated votes and answers), rate limits, and what is forwarded to the room.

use super::*;
use crate::audience::FrameRefused;
use crate::flush::LeftOut;

/// A vote or an answer forwarded to the room and not answered yet.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Choice {
    Vote { poll_id: String },
    Answer { quiz_id: String, question: u16 },
}

impl Choice {
    /// The client id and the choice a vote or an answer makes (`None` for other frames).
    pub(crate) fn of(frame: &ClientFrame) -> Option<(u64, Choice)> {
        match frame {
            ClientFrame::Vote {
                client_id, poll_id, ..
            } => Some((
                *client_id,
                Choice::Vote {
                    poll_id: poll_id.clone(),
                },
            )),
            ClientFrame::Answer {
                client_id,
                quiz_id,
                question,
                ..
            } => Some((
                *client_id,
                Choice::Answer {
                    quiz_id: quiz_id.clone(),
                    question: *question,
                },
            )),
            _ => None,
        }
    }

    /// An answer to an earlier question of the same quiz than `held`: acknowledged by the
    /// room as a repeat of a scored answer, and not worth the current question's memory.
    pub(crate) fn is_earlier_than(&self, held: &Choice) -> bool {
        match (self, held) {
            (
                Choice::Answer { quiz_id, question },
                Choice::Answer {
                    quiz_id: held_quiz,
                    question: held_question,
                },
            ) => quiz_id == held_quiz && question < held_question,
            _ => false,
        }
    }
}

impl Shard {
    /// A text frame, as `Room::handle_text`: the heartbeat is answered, other text closed.
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
        self.close(connection, CloseCode::TextNotSupported, now_ms);
        None
    }

    /// A binary frame from a viewer's socket.
    pub fn handle_frame(&mut self, connection: ConnectionId, bytes: &[u8], now_ms: u64) {
        let Some(conn) = self.connections.get_mut(&connection) else {
            return;
        };
        conn.liveness.seen(now_ms);
        self.stats.frames_in += 1;
        let frame = match ClientFrame::decode(bytes) {
            Ok(frame) => frame,
            Err(DecodeError::TooLarge { .. }) => {
                return self.close(connection, CloseCode::FrameTooLarge, now_ms);
            }
            Err(_) => return self.close(connection, CloseCode::BadFrame, now_ms),
        };
        // A frame retried after a reconnect (its ack lost) that this shard saw accepted
        // (a like it took, anything the room acknowledged) is acknowledged again as at
        // first, not applied again, and before the frame rate and the user's buckets: a
        // resumed client resends everything at once, and a refusal would read as "not
        // applied" to a client whose action was.
        // Not a gift: its own idempotency key (the gift id) is the room's to check, as
        // the room does (`answer_repeat`); a gift reusing another action's client id was
        // acknowledged here and never charged.
        let gift = matches!(frame, ClientFrame::Gift { .. });
        if let Some(client_id) = frame.client_id().filter(|_| conn.ready && !gift) {
            let user = conn.identity.user.clone();
            if let Some(seq) = self.user_buckets(&user, now_ms).accepted(client_id) {
                self.stats.answered_here += 1;
                let ack = Event::Ack { client_id, seq };
                self.push(connection, ack, now_ms);
                // Repeats without end close the socket, like any frames past the rate.
                let conn = self
                    .connections
                    .get_mut(&connection)
                    .expect("looked up above");
                if conn.frames.take_repeat(now_ms).is_err() {
                    self.close(connection, CloseCode::TooManyFrames, now_ms);
                }
                return;
            }
        }
        let conn = self
            .connections
            .get_mut(&connection)
            .expect("looked up above");
        match conn.frames.take(now_ms) {
            Ok(()) => {}
            Err(FrameRefused::Wait(retry_after_ms)) => {
                let client_id = frame.client_id();
                let message = "too many frames";
                return self.refuse(
                    connection,
                    client_id,
                    Refusal::retry_after(ErrorCode::RateLimited, message, retry_after_ms),
                    now_ms,
                );
            }
            Err(FrameRefused::Close) => {
                return self.close(connection, CloseCode::TooManyFrames, now_ms);
            }
        }
        match frame {
            ClientFrame::Hello(hello) => self.on_hello(connection, hello, now_ms),
            other if self.connections[&connection].ready => {
                self.on_frame(connection, other, now_ms)
            }
            _ => self.close(connection, CloseCode::ProtocolViolation, now_ms),
        }
    }

    pub(crate) fn on_hello(&mut self, connection: ConnectionId, hello: Hello, now_ms: u64) {
        let conn = self.connections.get_mut(&connection).expect("checked");
        if conn.hello_seen {
            return self.close(connection, CloseCode::ProtocolViolation, now_ms);
        }
        if hello.protocol_version != PROTOCOL_VERSION {
            return self.close(connection, CloseCode::UnsupportedProtocol, now_ms);
        }
        conn.hello_seen = true;
        conn.liveness.hello();
        let copy_epoch = self.mirror.as_ref().map(|m| m.epoch);
        let names_another_opening =
            of_another_opening(copy_epoch, opening_named(conn.placed_in, &hello));
        if copy_epoch.is_none() {
            conn.waiting = Some(hello); // answered when the room's state arrives
        } else if names_another_opening {
            // Either the client is of an opening that ended or this copy is (the shard
            // missed the end and the next start, or has not heard of the start yet): a
            // Welcome from it would end the client's pending actions of a live opening,
            // or tell it the room ended. The room's state tells which.
            conn.waiting = Some(hello);
            self.opening_check_wanted = true;
            self.schedule_tick(now_ms);
        } else {
            self.welcome(connection, hello, now_ms);
        }
    }

    pub(crate) fn welcome(&mut self, connection: ConnectionId, hello: Hello, now_ms: u64) {
        let tick_ms = room_tick_ms_for(self.connections.len() as u64, self.shards);
        let mirror = self
            .mirror
            .as_mut()
            .expect("welcomed only with the room's state");
        let conn = self.connections.get_mut(&connection).expect("live");
        let mut events =
            mirror
                .view(now_ms, tick_ms)
                .welcome(connection, &conn.identity, hello.resume.as_ref());
        if mirror.ended {
            events.push(Event::RoomEnded);
        }
        // The room's last count may predate this viewer (the first viewers of a big
        // room are welcomed before the room has counted anyone): never below them.
        events.push(Event::Online {
            count: mirror.online.max(1),
        });
        conn.ready = true;
        conn.welcomed_in = mirror.epoch;
        conn.outbox.extend(events);
        // The broadcast events already in this flush are in the Welcome's state.
        conn.shared_from = self.shared.len();
        self.stats.answered_here += 1;
        self.schedule_tick(now_ms);
    }

    pub(crate) fn on_frame(&mut self, connection: ConnectionId, frame: ClientFrame, now_ms: u64) {
        let identity = self.connections[&connection].identity.clone();
        let answered: Result<Option<Event>, Refusal> = match &frame {
            ClientFrame::Hello(_) => unreachable!("handled by on_hello"),
            ClientFrame::Ping { client_time_ms } => Ok(Some(Event::Pong {
                client_time_ms: *client_time_ms,
                server_time_ms: now_ms,
            })),
            ClientFrame::Like { client_id, count } => {
                let ack = Event::Ack {
                    client_id: *client_id,
                    seq: None,
                };
                // (A repeat was answered before the frame rate, in `handle_frame`.)
                self.take_likes(&identity.user, *count, now_ms).map(|()| {
                    self.user_buckets(&identity.user, now_ms)
                        .remember(*client_id, None);
                    if self.likes_acked.len() < LIKE_FRAMES_STORED_PER_TICK_MAX {
                        self.likes_acked.push((identity.user.clone(), *client_id));
                    }
                    Some(ack)
                })
            }
            ClientFrame::Comment { text, .. } | ClientFrame::Reaction { kind: text, .. }
                if text.trim().is_empty() =>
            {
                Err(Refusal::new(ErrorCode::Invalid, "empty"))
            }
            ClientFrame::Comment { .. } => self
                .take_speech(&identity.user, false, now_ms)
                .map(|()| None),
            ClientFrame::Reaction { .. } => self
                .take_speech(&identity.user, true, now_ms)
                .map(|()| None),
            ClientFrame::Vote { .. } | ClientFrame::Answer { .. } => {
                Ok(self.repeated_choice(&identity.user, &frame))
            }
            _ => Ok(None),
        };
        match answered {
            Ok(Some(event)) => {
                self.stats.answered_here += 1;
                self.push(connection, event, now_ms);
            }
            Ok(None) => self.forward(connection, identity, frame, now_ms),
            Err(refusal) => self.refuse(connection, frame.client_id(), refusal, now_ms),
        }
    }

    /// This user's rate buckets and the client ids of theirs seen accepted.
    pub(crate) fn user_buckets(&mut self, user: &str, now_ms: u64) -> &mut UserBuckets {
        self.connections.buckets(user, now_ms)
    }

    pub(crate) fn take_likes(
        &mut self,
        user: &str,
        count: u32,
        now_ms: u64,
    ) -> Result<(), Refusal> {
        if count == 0 || count > LIKE_COUNT_PER_FRAME_MAX {
            return Err(Refusal::new(ErrorCode::Invalid, "like count out of range"));
        }
        self.user_buckets(user, now_ms)
            .likes
            .take(count, now_ms)
            .map_err(|wait| Refusal::retry_after(ErrorCode::RateLimited, "too many likes", wait))?;
        // The opening the like is for: the shard's copy's. A shard woken from hibernation
        // has no copy yet (its sockets survived, so they are in the opening the snapshot
        // will name): those wait apart (`stamp_likes`).
        match self.mirror.as_ref().map(|m| m.epoch) {
            Some(epoch) => {
                self.stamp_likes(epoch);
                self.likes_pending += u64::from(count);
            }
            None => self.likes_unstamped += u64::from(count),
        }
        self.record_dirty = true;
        self.schedule_tick(now_ms);
        Ok(())
    }

    /// The sender's comment or reaction bucket (the room checks moderation and slow mode).
    pub(crate) fn take_speech(
        &mut self,
        user: &str,
        reaction: bool,
        now_ms: u64,
    ) -> Result<(), Refusal> {
        let buckets = self.user_buckets(user, now_ms);
        let bucket = if reaction {
            &mut buckets.reactions
        } else {
            &mut buckets.comments
        };
        bucket.take(1, now_ms).map_err(Refusal::slow_down)
    }

    /// An Ack when the room already accepted this user's vote or answer (the frame then
    /// never reaches the room).
    pub(crate) fn repeated_choice(&self, user: &str, frame: &ClientFrame) -> Option<Event> {
        let (client_id, choice) = Choice::of(frame)?;
        let users = self.chosen.get(&choice)?;
        users.contains(user).then_some(Event::Ack {
            client_id,
            seq: None,
        })
    }

    pub(crate) fn forward(
        &mut self,
        connection: ConnectionId,
        identity: Identity,
        frame: ClientFrame,
        now_ms: u64,
    ) {
        if self.up_frames.len() >= SHARD_FORWARD_QUEUE_MAX {
            let retry_after_ms = TICK_MS as u32;
            return self.refuse(
                connection,
                frame.client_id(),
                Refusal::retry_after(ErrorCode::RateLimited, "room busy", retry_after_ms),
                now_ms,
            );
        }
        // Remembered until the room answers, so an accepted one is answered here next time.
        // Only a shortcut (a repeat not answered here goes to the room, which answers
        // it): full, it is forgotten whole, since choices whose frames never got an answer
        // (a batch dropped, another opening's) would otherwise fill it for good.
        if let Some((client_id, choice)) = Choice::of(&frame) {
            if self.pending_choices.len() >= SHARD_CHOICES_PENDING_MAX {
                self.pending_choices.clear();
            }
            self.pending_choices
                .insert((connection, client_id), (choice, identity.user.clone()));
        }
        self.stats.forwarded += 1;
        self.up_frames.push_back(RelayedFrame {
            connection,
            user: identity.user,
            name: identity.name,
            role: identity.role,
            frame,
        });
        self.schedule_tick(now_ms);
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
        self.log(
            "refusal",
            Some(connection),
            user.as_deref(),
            refusal.code.as_str(),
        );
        self.push(connection, refusal.into_event(client_id), now_ms);
    }

    pub(crate) fn push(&mut self, connection: ConnectionId, event: Event, now_ms: u64) {
        if let Some(conn) = self.connections.get_mut(&connection) {
            if conn.outbox.len() < crate::flush::outbox_cap(&event) {
                conn.outbox.push(event);
            } else {
                conn.record_left_out(&event);
            }
            self.schedule_tick(now_ms);
        }
    }

    /// An event for `connection` that will not reach it (a bound was passed): an action
    /// (or the room's `Gap` for the connection's own) is told to it as a `Gap` at the
    /// first flush after the held actions go.
    pub(crate) fn record_left_out(&mut self, connection: ConnectionId, event: &Event, now_ms: u64) {
        if let Some(conn) = self.connections.get_mut(&connection) {
            conn.record_left_out(event);
            self.schedule_tick(now_ms);
        }
    }
}

impl ShardConnection {
    /// Records the actions `event` leaves out (an action, or the room's `Gap` for this
    /// connection's own): joined to the last run when they touch it (or past
    /// `OWN_GAPS_PER_FLUSH_MAX` runs), else a run of their own.
    fn record_left_out(&mut self, event: &Event) {
        let run = match event {
            Event::Action(action) => LeftOut::add(None, action.seq),
            gap => match LeftOut::of_gap(gap) {
                Some(run) => run,
                None => return,
            },
        };
        let full = self.outbox_dropped.len() >= OWN_GAPS_PER_FLUSH_MAX;
        match self.outbox_dropped.last_mut() {
            Some(last) if full || last.touches(run) => *last = last.cover(run),
            _ => self.outbox_dropped.push(run),
        }
    }
}

/// Whether an opening named for a socket (`opening_named`, or where it was placed) is
/// another than the copy's: both known and different.
pub(crate) fn of_another_opening(copy: Option<u64>, named: Option<u64>) -> bool {
    matches!((copy, named), (Some(copy), Some(named)) if copy != named)
}

/// The opening a socket's Hello is for: the one it was placed in, else the one its client
/// resumes (none: a new client on a socket reattached after a restart).
pub(crate) fn opening_named(placed_in: Option<u64>, hello: &Hello) -> Option<u64> {
    placed_in.or(hello.resume.as_ref().map(|resume| resume.epoch))
}
