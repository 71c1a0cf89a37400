//! What the room sends: Welcome, parts (only newer versions), actions dispatched once per
//! sequence number, likes and online counts; and the events queued for the application.

use super::*;

impl Client {
    pub(crate) fn on_event(&mut self, socket: u64, event: Event, server_time_ms: u64, now_ms: u64) {
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
                    code: FailureCode::Refused(code),
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
                    let at = if self.clock_burst_left > 0 {
                        now_ms
                    } else {
                        now_ms + CLIENT_CLOCK_REFRESH_MS
                    };
                    self.timers.set(Timer::Ping, at);
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

    pub(crate) fn on_welcome(&mut self, socket: u64, welcome: Welcome, now_ms: u64) {
        if welcome.epoch != self.state.epoch {
            if self.state.epoch != 0 {
                // The room ended and opened anew while this session was away: what it
                // had not seen answered was for the opening that ended (a vote for its
                // `p1` is no vote for the new one's), so it ends here and is never sent
                // to the new opening. One sent may have been applied there: `closed`.
                let message = "the room opened anew";
                let unsent = FailureCode::Refused(ErrorCode::RoomEnded);
                self.end_pending(FailureCode::Closed, message, Some((unsent, message)));
            }
            self.reset_epoch(welcome.epoch, welcome.action_cursor);
        } else if !welcome.resumed || self.cursor.is_none() {
            self.cursor = Some(self.cursor.unwrap_or(welcome.action_cursor));
        }
        self.phase = Phase::Open { socket };
        self.ws_failures = 0;
        self.upgrades_failed = 0;
        self.socket_cap_retries = 0;
        self.attempt = 0;
        // The frame carrying Welcome was just heard: the silence counts from it.
        self.timers.stop(Timer::Connect);
        self.timers
            .set(Timer::Silence, now_ms + CLIENT_SILENCE_MS_MAX);
        self.timers
            .set(Timer::Heartbeat, now_ms + HEARTBEAT_INTERVAL_MS);
        self.clock_burst_left = CLIENT_CLOCK_BURST;
        self.timers.set(Timer::Ping, now_ms);
        self.set_status(Status::Open, None);
        // Everything unacknowledged goes again, in order, under the same client ids.
        for pending in &mut self.actions.pending {
            pending.resent = pending.sent;
            pending.resend_at_ms = None;
            pending.sent = true;
            self.transmits.push_back(Transmit::Send {
                socket,
                frame: pending.frame.clone(),
            });
        }
        if self.actions.likes_waiting > 0 {
            self.timers.set(Timer::LikeFlush, now_ms);
        }
    }

    pub(crate) fn reset_epoch(&mut self, epoch: u64, action_cursor: u64) {
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

    pub(crate) fn apply_part(&mut self, name: String, version: u64, value: String) {
        if self
            .state
            .parts
            .get(&name)
            .is_some_and(|held| *held >= version)
        {
            return;
        }
        self.state.parts.insert(name.clone(), version);
        self.push_event(ClientEvent::Part {
            name,
            version,
            value,
        });
    }

    pub(crate) fn dispatch_action(&mut self, action: ovation_proto::Action) {
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

    pub(crate) fn set_likes(&mut self, total: u64) {
        if self.likes_total != Some(total) {
            self.likes_total = Some(total);
            self.push_event(ClientEvent::Like { total });
        }
    }

    pub(crate) fn set_online(&mut self, count: u32) {
        if self.online != Some(count) {
            self.online = Some(count);
            self.push_event(ClientEvent::Online { count });
        }
    }

    #[inline(never)]
    pub(crate) fn set_status(&mut self, status: Status, reason: Option<String>) {
        if self.status == status && status != Status::Reconnecting {
            return;
        }
        self.status = status;
        self.emit_status(reason);
    }

    #[inline(never)]
    pub(crate) fn emit_status(&mut self, reason: Option<String>) {
        self.push_event(ClientEvent::Status {
            status: self.status,
            transport: self.transport,
            reason,
        });
    }

    /// An error no retry fixes ends the session: told as `Error`, then `Status` closed
    /// with the code as its reason.
    #[inline(never)]
    pub(crate) fn fail(&mut self, code: FailureCode, message: &str) {
        let reason = code.as_str().to_owned();
        self.fail_as(Some(reason), code, message);
    }

    /// Tells the refusal (`error`) and ends the session with it (status `reason`).
    #[inline(never)]
    pub(crate) fn fail_as(&mut self, reason: Option<String>, code: FailureCode, message: &str) {
        self.emit_error(code.clone(), message, 0);
        self.finish_with(reason, Some((code, message)));
    }

    #[inline(never)]
    pub(crate) fn emit_error(&mut self, code: FailureCode, message: &str, retry_after_ms: u32) {
        self.push_event(ClientEvent::Error {
            code,
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

    pub(crate) fn push_event(&mut self, event: ClientEvent) {
        // What settles something the application waits on (an action's promise, the
        // likes it counts, the session's status) is queued past the bound: each is
        // bounded by the actions, likes and transitions themselves, never by a server's
        // flood of events.
        let settles = matches!(
            event,
            ClientEvent::Done { .. }
                | ClientEvent::LikesDropped { .. }
                | ClientEvent::Status { .. }
                | ClientEvent::Ended
        );
        if self.events.len() >= CLIENT_EVENTS_QUEUED_MAX && !settles {
            self.events_dropped += 1;
            return;
        }
        self.events.push_back(event);
    }
}
