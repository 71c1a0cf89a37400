//! Actions the application starts (comments, likes, gifts, votes, …): checked against the
//! limits before they are sent, re-sent under the same client id after a reconnect, and
//! each ended by exactly one `Done` (or `LikesDropped`).

use super::*;

/// The actions this client started and has not seen end, and the likes waiting to be
/// sent. Invariant: every pending action ends with exactly one `Done` (or is a like
/// frame whose likes end in the room's count or a `LikesDropped`).
#[derive(Debug)]
pub(crate) struct Actions {
    /// 21 random bits above the counter: ids below 2^53 (JavaScript numbers carry them
    /// exactly) that tell this client's from the same user's other sessions.
    client_id_prefix: u64,
    next_client_counter: u32,
    /// Sent or waiting to be sent, oldest first (at most `CLIENT_ACTIONS_PENDING_MAX`).
    pub(crate) pending: VecDeque<PendingAction>,
    /// Likes queued and not yet in a frame (at most `CLIENT_LIKES_PENDING_MAX`).
    pub(crate) likes_waiting: u32,
    pub(crate) likes_bucket: TokenBucket,
    pub(crate) last_like_frame_ms: Option<u64>,
}

impl Actions {
    pub(crate) fn new(client_id_prefix: u64, client_counter_first: u32, now_ms: u64) -> Actions {
        Actions {
            client_id_prefix,
            next_client_counter: client_counter_first.max(1),
            pending: VecDeque::new(),
            likes_waiting: 0,
            likes_bucket: TokenBucket::new_full(CLIENT_LIKES_RATE_PER_S, LIKES_BURST, now_ms),
            last_like_frame_ms: None,
        }
    }

    /// The next client id (the counter skips 0 when it wraps).
    pub(crate) fn next_client_id(&mut self) -> u64 {
        let client_id = self.client_id_prefix | u64::from(self.next_client_counter);
        self.next_client_counter = self.next_client_counter.wrapping_add(1).max(1);
        client_id
    }
}

impl Client {
    /// Posts a comment. Returns the action id its `Done` will carry.
    pub fn comment(&mut self, text: &str, now_ms: u64) -> Result<u64, ActionError> {
        if text.trim().is_empty() {
            return Err(ActionError::new(
                FailureCode::Refused(ErrorCode::Invalid),
                "a comment needs some text",
            ));
        }
        if text.len() > COMMENT_BYTES_MAX {
            return Err(ActionError::new(
                FailureCode::Refused(ErrorCode::TooLong),
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
                FailureCode::Refused(ErrorCode::Invalid),
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
                FailureCode::Refused(ErrorCode::Invalid),
                &limit("a user id is 1..=", USER_ID_BYTES_MAX, " bytes"),
            ));
        }
        if payload.len() > DIRECT_PAYLOAD_BYTES_MAX {
            return Err(ActionError::new(
                FailureCode::Refused(ErrorCode::TooLong),
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
                FailureCode::Refused(ErrorCode::Invalid),
                "a part name is 1..=64 of [a-z0-9_-]",
            ));
        }
        if value.len() > PART_VALUE_BYTES_MAX {
            return Err(ActionError::new(
                FailureCode::Refused(ErrorCode::TooLong),
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
                FailureCode::Refused(ErrorCode::Invalid),
                &limit("a gift id is 1..=", GIFT_ID_BYTES_MAX, " bytes"),
            ));
        }
        if sku.is_empty() || sku.len() > GIFT_SKU_BYTES_MAX || qty == 0 || qty > GIFT_QTY_MAX {
            return Err(ActionError::new(
                FailureCode::Refused(ErrorCode::Invalid),
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
                FailureCode::Refused(ErrorCode::Invalid),
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
                FailureCode::Refused(ErrorCode::Invalid),
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
        // The room's codes, as for a comment: empty is `invalid`, long `too_long`.
        if text.trim().is_empty() {
            return Err(ActionError::new(
                FailureCode::Refused(ErrorCode::Invalid),
                "a question needs text",
            ));
        }
        if text.len() > QA_QUESTION_BYTES_MAX {
            return Err(ActionError::new(
                FailureCode::Refused(ErrorCode::TooLong),
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
                FailureCode::Refused(ErrorCode::TooLong),
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
                FailureCode::UnsupportedTransport,
                "the pull transport only receives",
            );
            return 0;
        }
        let queued = count.min(CLIENT_LIKES_PENDING_MAX.saturating_sub(self.actions.likes_waiting));
        self.actions.likes_waiting += queued;
        if queued < count {
            let message = limit(
                "at most ",
                CLIENT_LIKES_PENDING_MAX as usize,
                " likes wait to be sent",
            );
            self.likes_dropped(
                count - queued,
                FailureCode::Refused(ErrorCode::TooMany),
                &message,
            );
        }
        // The flush timer runs while a socket is open; a Welcome arms it for likes
        // queued before.
        let open = matches!(self.phase, Phase::Open { .. });
        if open && self.actions.likes_waiting > 0 && self.timers.get(Timer::LikeFlush).is_none() {
            let at = self
                .actions
                .last_like_frame_ms
                .map_or(now_ms, |t| now_ms.max(t + CLIENT_LIKE_FLUSH_MS));
            self.timers.set(Timer::LikeFlush, at);
        }
        queued
    }

    /// Checks that an action can start and allocates its client id; `send_action` sends
    /// it. Two halves rather than one generic function: each action would otherwise get
    /// its own copy of this code in the wasm.
    pub(crate) fn start_action(&mut self) -> Result<u64, ActionError> {
        if self.phase == Phase::Closed {
            return Err(ActionError::new(
                self.closed_code(),
                "the room connection is closed",
            ));
        }
        if self.transport == Transport::Pull {
            return Err(ActionError::new(
                FailureCode::UnsupportedTransport,
                "the pull transport only receives",
            ));
        }
        if self.actions.pending.len() >= CLIENT_ACTIONS_PENDING_MAX {
            return Err(ActionError::new(
                FailureCode::Refused(ErrorCode::TooMany),
                &limit(
                    "at most ",
                    CLIENT_ACTIONS_PENDING_MAX,
                    " actions wait for the room",
                ),
            ));
        }
        Ok(self.actions.next_client_id())
    }

    pub(crate) fn send_action(
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
        let sent = if let Phase::Open { socket } = self.phase {
            self.transmits.push_back(Transmit::Send {
                socket,
                frame: frame.clone(),
            });
            true
        } else {
            false
        };
        self.actions.pending.push_back(PendingAction {
            client_id,
            frame,
            created_ms: now_ms,
            reported,
            sent,
            likes,
            resent: false,
            resend_at_ms: None,
        });
        self.arm_action_timer();
        Ok(client_id)
    }

    pub(crate) fn take_pending(&mut self, client_id: u64) -> Option<PendingAction> {
        // A duplicate answer to a retry, or timed out already, finds nothing.
        let index = self
            .actions
            .pending
            .iter()
            .position(|p| p.client_id == client_id)?;
        let action = self.actions.pending.remove(index);
        self.arm_action_timer();
        action
    }

    /// `Timer::Action` at the oldest unacknowledged action's timeout, if any.
    #[inline(never)]
    pub(crate) fn arm_action_timer(&mut self) {
        let at = self
            .actions
            .pending
            .front()
            .map(|p| p.created_ms + CLIENT_ACTION_TIMEOUT_MS);
        self.timers.set_or_stop(Timer::Action, at);
    }

    pub(crate) fn action_done(
        &mut self,
        client_id: u64,
        seq: Option<u64>,
        error: Option<ActionError>,
    ) {
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
    /// an action resent after a reconnect and refused for the rate goes again after the
    /// wait (`PendingAction::resent`); one refused for anything else is reported.
    pub(crate) fn action_refused(&mut self, client_id: u64, error: ActionError, now_ms: u64) {
        if let FailureCode::Refused(ErrorCode::RateLimited) = error.code {
            if self.resend_after_refusal(client_id, error.retry_after_ms, now_ms) {
                return;
            }
        }
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
        let retryable = matches!(error.code, FailureCode::Refused(ErrorCode::RateLimited))
            && error.retry_after_ms != u32::MAX;
        if !retryable {
            self.likes_dropped(action.likes, error.code, &error.message);
            return;
        }
        self.actions.likes_waiting = self.actions.likes_waiting.saturating_add(action.likes);
        // The room's bucket is emptier than ours: start ours empty too, and wait.
        self.actions.likes_bucket =
            TokenBucket::new_full(CLIENT_LIKES_RATE_PER_S, LIKES_BURST, now_ms);
        let _ = self.actions.likes_bucket.take(LIKES_BURST, now_ms);
        let wait_ms =
            u64::from(error.retry_after_ms).clamp(CLIENT_LIKE_FLUSH_MS, CLIENT_LIKE_RETRY_MS_MAX);
        self.actions.last_like_frame_ms = Some(now_ms);
        // Outside an open socket (a refusal before Welcome) the Welcome arms the flush.
        if matches!(self.phase, Phase::Open { .. }) {
            let at = now_ms + wait_ms;
            let at = self.timers.get(Timer::LikeFlush).map_or(at, |t| t.max(at));
            self.timers.set(Timer::LikeFlush, at);
        }
    }

    /// An action resent after a reconnect and refused for the rate (`PendingAction::
    /// resent`: maybe applied already) stays pending, to go again under its id after the
    /// wait, which the room answers without applying twice; true when it does. Only when
    /// the wait ends within the action's timeout (a longer one, a slow mode's, is told at
    /// once, as before: a room without shards answers a resend it applied before any
    /// rate). Spaced a wait apart from the last one due: frames refused together go one at
    /// a time (all again together, refused again and again, the room would close the
    /// socket for too many frames).
    fn resend_after_refusal(&mut self, client_id: u64, retry_after_ms: u32, now_ms: u64) -> bool {
        if retry_after_ms == u32::MAX || !matches!(self.phase, Phase::Open { .. }) {
            return false;
        }
        let wait_ms = u64::from(retry_after_ms.max(1));
        let last_ms = self
            .actions
            .pending
            .iter()
            .filter_map(|p| p.resend_at_ms)
            .max()
            .unwrap_or(0);
        let Some(action) = self.actions.pending.iter_mut().find(|p| {
            p.client_id == client_id
                && p.reported
                && p.resent
                && now_ms + wait_ms < p.created_ms + CLIENT_ACTION_TIMEOUT_MS
        }) else {
            return false;
        };
        let at_ms = (now_ms + wait_ms).max(last_ms + wait_ms);
        action.resend_at_ms = Some(at_ms);
        let at = self
            .timers
            .get(Timer::Resend)
            .map_or(at_ms, |t| t.min(at_ms));
        self.timers.set(Timer::Resend, at);
        true
    }

    /// Sends again the resent actions whose wait after a refusal for the rate is over.
    pub(crate) fn resend_due(&mut self, socket: u64, now_ms: u64) {
        let mut next: Option<u64> = None;
        for pending in &mut self.actions.pending {
            match pending.resend_at_ms {
                Some(at) if at <= now_ms => {
                    pending.resend_at_ms = None;
                    self.transmits.push_back(Transmit::Send {
                        socket,
                        frame: pending.frame.clone(),
                    });
                }
                Some(at) => next = Some(next.map_or(at, |n| n.min(at))),
                None => {}
            }
        }
        self.timers.set_or_stop(Timer::Resend, next);
    }

    #[inline(never)]
    pub(crate) fn likes_dropped(&mut self, count: u32, code: FailureCode, message: &str) {
        if count > 0 {
            self.push_event(ClientEvent::LikesDropped {
                count,
                code,
                message: message.to_owned(),
            });
        }
    }

    /// The session ends or stops sending: every unacknowledged action ends with `code`;
    /// likes still waiting will not be counted (`code`), and like frames sent without an
    /// answer may or may not have been (`unconfirmed`). `refused` (the server's refusal
    /// that ended the session, or the switch to pull: its code and message): actions
    /// never sent end with it; one already sent may have been applied first, so it ends
    /// with `code` (`closed`: no answer came), never a code that would read as "not
    /// applied".
    #[inline(never)]
    pub(crate) fn end_pending(
        &mut self,
        code: FailureCode,
        message: &str,
        refused: Option<(FailureCode, &str)>,
    ) {
        let (unsent_code, unsent_message) = match refused {
            Some((refusal, why)) => (refusal, why),
            None => (code.clone(), message),
        };
        let mut in_flight: u32 = 0;
        let mut unsent_likes = core::mem::take(&mut self.actions.likes_waiting);
        while let Some(action) = self.actions.pending.pop_front() {
            if action.reported {
                let (code, message) = if action.sent {
                    (code.clone(), message)
                } else {
                    (unsent_code.clone(), unsent_message)
                };
                self.push_event(ClientEvent::Done {
                    id: action.client_id,
                    seq: None,
                    error: Some(ActionError::new(code, message)),
                });
            }
            if action.sent {
                in_flight = in_flight.saturating_add(action.likes);
            } else {
                unsent_likes = unsent_likes.saturating_add(action.likes);
            }
        }
        self.timers.stop(Timer::Action);
        self.likes_dropped(unsent_likes, unsent_code, unsent_message);
        self.likes_dropped(
            in_flight,
            FailureCode::Unconfirmed,
            "no answer before the connection ended: may have counted",
        );
    }

    pub(crate) fn expire_actions(&mut self, now_ms: u64) {
        while let Some(front) = self.actions.pending.front() {
            if front.created_ms + CLIENT_ACTION_TIMEOUT_MS > now_ms {
                break;
            }
            let action = self.actions.pending.pop_front().expect("non-empty");
            // One never sent (no socket opened all the while) is told so: `timeout`
            // says it may have been applied, and an app would not send it again.
            let (code, message) = if action.sent {
                (FailureCode::Timeout, "no answer: it may have been applied")
            } else {
                (
                    FailureCode::NotSent,
                    "not sent: no connection to the room in time",
                )
            };
            if action.reported {
                self.push_event(ClientEvent::Done {
                    id: action.client_id,
                    seq: None,
                    error: Some(ActionError::new(code, message)),
                });
            } else {
                self.likes_dropped(action.likes, code, message);
            }
        }
        self.arm_action_timer();
    }

    pub(crate) fn flush_likes(&mut self, now_ms: u64) {
        let count = self
            .actions
            .likes_waiting
            .min(self.actions.likes_bucket.available(now_ms))
            .min(LIKE_COUNT_PER_FRAME_MAX);
        self.timers.stop(Timer::LikeFlush);
        if count > 0 && self.actions.pending.len() < CLIENT_ACTIONS_PENDING_MAX {
            self.actions
                .likes_bucket
                .take(count, now_ms)
                .expect("no more than available");
            self.actions.likes_waiting -= count;
            self.actions.last_like_frame_ms = Some(now_ms);
            let result = self.start_action().and_then(|client_id| {
                self.send_action(ClientFrame::Like { client_id, count }, now_ms, false)
            });
            debug_assert!(result.is_ok(), "checked: open, room in the queue");
        }
        if self.actions.likes_waiting > 0 {
            self.timers
                .set(Timer::LikeFlush, now_ms + CLIENT_LIKE_FLUSH_MS);
        }
    }
}
