//! The HTTP pull transport, when WebSockets are not available: the state, then events since
//! the cursor, at the pull interval.

use super::*;

/// The HTTP requests in flight (the pull transport's and the admission check's share the
/// numbering) and the pull transport's pace.
#[derive(Debug)]
pub(crate) struct Pull {
    pub(crate) next_request: u64,
    /// In flight, oldest first (a handful at most: the state, then outdated parts).
    pub(crate) requests: Vec<(u64, PullRequest)>,
    /// Failed pulls in a row (backoff).
    pub(crate) failures: u32,
    /// A read was refused for the user's read rate since the state or the events last
    /// answered: the session does not open on a state whose refused part is missing.
    pub(crate) rate_limited: bool,
    /// A refusal for the read rate was told since the events last answered: told once a
    /// run (a state read that answers between two refused part reads does not end it).
    pub(crate) rate_limit_told: bool,
    pub(crate) interval_ms: u64,
    /// When the next read of the events is due: an interval after the last one, even
    /// when the state and parts were read in between (a part that changes faster than a
    /// round trip would otherwise make the pull loop read without pause).
    pub(crate) events_due_ms: u64,
    /// The next pull request reads the state (first, after a new epoch or version, or a
    /// part that could not be read).
    pub(crate) state_stale: bool,
}

impl Default for Pull {
    fn default() -> Pull {
        Pull {
            next_request: 1,
            requests: Vec::new(),
            failures: 0,
            rate_limited: false,
            rate_limit_told: false,
            interval_ms: u64::from(PULL_INTERVAL_MS),
            events_due_ms: 0,
            state_stale: true,
        }
    }
}

impl Client {
    #[inline(never)]
    pub(crate) fn start_pull(&mut self, now_ms: u64, reason: Option<String>) {
        self.phase = Phase::Pull;
        // Every timer of the socket phases: one left armed from an open socket (its
        // silence, heartbeat, ping) came due in the pull phase, which has no arm for
        // it, and stayed due: a host's 0 ms timer in a loop for the rest of the session.
        self.timers.stop(Timer::Reconnect);
        for timer in Timer::SOCKET_PHASES {
            self.timers.stop(timer);
        }
        self.transport = Transport::Pull;
        // An action already sent may have been applied (its answer lost with the
        // socket): it ends `closed`, as on a refusal, never with a code that reads as
        // "not sent" (an app sending a gift again under a new id would charge twice).
        let switched = "switched to pull";
        self.end_pending(
            FailureCode::Closed,
            "closed before its answer: it may have been applied",
            Some((FailureCode::UnsupportedTransport, switched)),
        );
        self.set_status(Status::Connecting, reason);
        self.pull.state_stale = true; // ask for the state first
        self.pull_next(now_ms);
    }

    #[inline(never)]
    pub(crate) fn fetch(
        &mut self,
        kind: FetchKind,
        path: String,
        part: Option<(String, u64)>,
        now_ms: u64,
    ) {
        let request = self.send_fetch(kind, path);
        self.pull.requests.push((
            request,
            PullRequest {
                kind,
                sent_ms: now_ms,
                part,
            },
        ));
        self.arm_fetch_timer();
    }

    /// `Timer::Fetch` at the first request in flight to time out, if any.
    #[inline(never)]
    pub(crate) fn arm_fetch_timer(&mut self) {
        let sent_ms = self.pull.requests.iter().map(|(_, r)| r.sent_ms).min();
        let at = sent_ms.map(|t| t + CLIENT_FETCH_TIMEOUT_MS);
        self.timers.set_or_stop(Timer::Fetch, at);
    }

    /// The next pull request: the state when it is unknown or stale, else the events.
    pub(crate) fn pull_next(&mut self, now_ms: u64) {
        if self.pull.state_stale || self.cursor.is_none() {
            let path = self.state_path();
            self.fetch(FetchKind::State, path, None, now_ms);
        } else {
            let prefix = ["/v1/rooms/", &self.room, "/events?since="].concat();
            let path = json::with_number(&prefix, self.cursor.unwrap_or(0), "");
            self.fetch(FetchKind::Events, path, None, now_ms);
        }
    }

    pub(crate) fn on_pull_state(&mut self, state: PullState, now_ms: u64) {
        if state.status == "ended" {
            // As on a socket: the session ends (connect() rejects with `room_ended`).
            self.room_over();
            return;
        }
        self.pull.state_stale = false;
        if state.epoch != self.state.epoch {
            self.reset_epoch(state.epoch, state.action_cursor);
        }
        if self.cursor.is_none() {
            self.cursor = Some(state.action_cursor);
        }

        for (name, version) in &state.parts {
            let held = self.state.parts.get(name).copied().unwrap_or(0);
            if *version > held {
                // The opening's epoch names the part too: a room opened again numbers
                // its parts from the start, and a version alone is cached for a year.
                let prefix = ["/v1/rooms/", &self.room, "/parts/", name, "?v="].concat();
                let path = json::with_number(&prefix, *version, "&e=");
                let path = json::with_number(&path, self.state.epoch, "");
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

    pub(crate) fn on_pull_events(&mut self, reply: PullEvents, sent_ms: u64, now_ms: u64) {
        if let Some(server_time_ms) = reply.server_time_ms {
            self.clock
                .add_sample(sent_ms, server_time_ms, server_time_ms, now_ms);
        }
        self.pull.interval_ms = u64::from(reply.poll_interval_ms.max(100));
        // A full page (`PULL_EVENTS_MAX`) may have left more behind it: read again at
        // once, not an interval later (a room busier than a page a second left its pull
        // readers behind for good).
        let full_page = reply.events.len() >= PULL_EVENTS_MAX;
        self.pull.events_due_ms = now_ms + if full_page { 0 } else { self.pull.interval_ms };
        self.timers.set(Timer::Poll, self.pull.events_due_ms);
        if reply.epoch != self.state.epoch {
            self.pull.state_stale = true; // new epoch: the state answer resets
            return;
        }
        let missed_after = self.cursor.unwrap_or(0);
        let resumed_from = reply.events.first().map_or(reply.cursor, |a| a.seq);
        // An empty gap is none (a server that kept the cursor where it was past a gap
        // with nothing left to return said the same gap every poll).
        if reply.gap && resumed_from > missed_after {
            self.push_event(ClientEvent::Gap {
                missed_after,
                resumed_from,
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
            self.pull.state_stale = true; // parts changed: the next request is the state
            self.timers.set(Timer::Poll, now_ms);
        }
        if reply.status.as_deref() == Some("ended") {
            self.room_over();
        }
    }
}
