//! The link to the room: its batches applied (`handle_down`), one batch up per tick within
//! the relay limits, the tick and timer, and the fan-out to sockets.

use super::*;
use crate::flush::{encode_shared, tick_share, LeftOut, TickShare};

/// A `ShardUp`'s fields other than its frames (shard, flag, counts, the frames' length
/// prefix, instance, number, epoch) take at most this many bytes in postcard (varints of at most 10 bytes each).
pub(crate) const SHARD_UP_FIELDS_BYTES_MAX: usize = 64;

impl Shard {
    /// The room's batch for this shard (the bytes of a [`ShardDown`]). Its events go out
    /// at once: the room already batched them for this tick.
    pub fn handle_down(&mut self, bytes: &[u8], now_ms: u64) -> Result<(), DecodeError> {
        let down = ShardDown::decode(bytes)?;
        if down.shards <= self.index {
            return Err(DecodeError::FieldLimit {
                field: "shards",
                bytes_max: usize::from(self.index),
            });
        }
        self.stats.batches_down += 1;
        self.shards = down.shards;
        if let Some(snapshot) = down.snapshot {
            self.stats.snapshots += 1;
            self.banned = snapshot.banned.iter().cloned().collect();
            // Sockets taken while the shard did not know a ban (it restarted and had no
            // snapshot yet, or the batch that closed the user was lost) close now.
            let banned_here: Vec<ConnectionId> = self
                .connections
                .iter()
                .filter(|(_, c)| self.banned.contains(&c.identity.user))
                .map(|(&id, _)| id)
                .collect();
            for id in banned_here {
                self.close(id, CloseCode::Banned, now_ms);
            }
            let fresh = Mirror::from_snapshot(snapshot);
            if self.epoch_known != 0 && self.epoch_known != fresh.epoch {
                // A new opening numbers its polls and quizzes from 1 again: who chose in
                // the old one's `p1` has not chosen in the new one's. And the client ids
                // it acknowledged are not the new one's: a client numbering its frames
                // anew would have them answered as repeats, never applied.
                self.chosen.clear();
                self.pending_choices.clear();
                self.connections.forget_client_ids();
            }
            // Sockets welcomed into another opening (this shard missed its end, or
            // welcomed them from a copy of it it held) reconnect: their client meets the
            // new opening in its Welcome and sends it nothing of the old one. Their
            // frames not yet sent would go up stamped with the new opening and count
            // there (a vote in the old `p1` counted in the new one's): they go too.
            let other_opening: BTreeSet<ConnectionId> = self
                .connections
                .iter()
                .filter(|(_, c)| c.ready && c.welcomed_in != 0 && c.welcomed_in != fresh.epoch)
                .map(|(&id, _)| id)
                .collect();
            if !other_opening.is_empty() {
                for &id in &other_opening {
                    self.close(id, CloseCode::Restarting, now_ms);
                }
                let queued = self.up_frames.len();
                self.up_frames
                    .retain(|f| !other_opening.contains(&f.connection));
                self.stats.frames_of_an_ended_opening += (queued - self.up_frames.len()) as u64;
            }
            if let Some(old) = self.mirror.as_ref().filter(|m| m.epoch == fresh.epoch) {
                // Batches were lost (the room restarted, or one went missing): the viewers
                // here get what changed since the copy they were served from.
                self.shared.extend(old.missed(&fresh));
            }
            self.stamp_likes(fresh.epoch);
            if self.held_epoch != 0 && self.held_epoch != fresh.epoch {
                // Another opening's, and so are the runs of own actions left out.
                self.held_actions.clear();
                for (_, conn) in self.connections.iter_mut() {
                    conn.outbox_dropped.clear();
                }
            }
            self.mirror = Some(fresh);
            self.needs_snapshot = false;
            self.snapshot_asked_at_ms = None;
            self.opening_check_wanted = false;
            self.online_reported = None; // the room instance may be new: tell it again
            self.schedule_tick(now_ms);
        } else if self.mirror.is_some() && down.seq != self.down_seq + 1 {
            // A batch went missing (or the room restarted): ask for the room's state now;
            // until it comes, broadcasts are held back (the snapshot brings them, after
            // what was missed, so no viewer sees a hole).
            self.stats.gaps += 1;
            self.needs_snapshot = true;
            self.snapshot_asked_at_ms = None;
        }
        self.down_seq = down.seq;
        let broadcast = if self.needs_snapshot {
            Vec::new()
        } else {
            down.broadcast
        };
        for event in broadcast {
            if let Some(mirror) = self.mirror.as_mut() {
                mirror.apply(&event);
            }
            self.shared.push(event);
        }
        if let Some(copy_epoch) = self.mirror.as_ref().map(|m| m.epoch) {
            // Every waiting Hello once no check of the opening is wanted (the room's
            // state came); while one is, only those for the copy's opening.
            let check_wanted = self.opening_check_wanted;
            let waiting: Vec<(ConnectionId, Hello)> = self
                .connections
                .iter_mut()
                .filter(|(_, c)| {
                    c.waiting.as_ref().is_some_and(|hello| {
                        !check_wanted
                            || !super::viewers::of_another_opening(
                                Some(copy_epoch),
                                super::viewers::opening_named(c.placed_in, hello),
                            )
                    })
                })
                .filter_map(|(&id, c)| c.waiting.take().map(|h| (id, h)))
                .collect();
            for (id, hello) in waiting {
                self.welcome(id, hello, now_ms);
            }
        }
        if !self.needs_snapshot {
            // The actions held while the snapshot was awaited go out after what it
            // brought (the flush puts each connection's actions in order).
            for (connection, event) in std::mem::take(&mut self.held_actions) {
                self.push(connection, event, now_ms);
            }
        }
        for (connection, event) in down.to_connection {
            self.resolve_choice(connection, &event);
            if let Event::Ack { client_id, seq } = event {
                // An acknowledged action is remembered as the room remembers it: a resend
                // of it (its ack lost on the way, or its socket closed first) is answered
                // here before any rate, as the room would. Unnumbered ones too (a
                // question, a click, a command): the room's memory of them goes with the
                // user's rate buckets once more users act than it keeps buckets for (a
                // big room's poll), and a resend would be applied again. They share the
                // user's last 64 unnumbered ids with the likes this shard took, as they
                // do in the room.
                if let Some(user) = self.user_of(connection) {
                    self.user_buckets(&user, now_ms).remember(client_id, seq);
                }
            }
            if matches!(event, Event::Gap { .. }) {
                // The room left some of this connection's own actions out: told after
                // the rest of its batch, like the ones this shard leaves out.
                self.record_left_out(connection, &event, now_ms);
                continue;
            }
            if self.needs_snapshot && matches!(event, Event::Action(_)) {
                // A comment shown to its sender only, while this shard holds back the
                // broadcast: sent before the missed actions, it would make the client
                // drop them as seen. It waits for the snapshot (bounded; past that it
                // is left out and told as a `Gap`, like any outbox past its bound).
                if self.held_actions.len() < OUTBOX_EVENTS_MAX {
                    self.held_epoch = self.mirror.as_ref().map_or(0, |m| m.epoch);
                    self.held_actions.push((connection, event));
                } else {
                    self.record_left_out(connection, &event, now_ms);
                }
                continue;
            }
            self.push(connection, event, now_ms);
        }
        for (user, event) in down.to_user {
            let targets = self.connections_of(&user);
            for target in targets {
                self.push(target, event.clone(), now_ms);
            }
        }
        // Before the closes: a ban after the unban in the same tick stays.
        for user in &down.unbanned_users {
            self.banned.remove(user);
        }
        for (user, code) in down.close_users {
            let code = CloseCode::from_code(code).unwrap_or(CloseCode::Restarting);
            if code == CloseCode::Banned && !self.banned.contains(&user) {
                if self.banned.len() >= BANNED_USERS_MAX {
                    // An unban reaches only the user's own shards, so this list (the
                    // room's at its last state, and bans since) may hold users the room
                    // unbanned: its state brings its list, within the bound and with
                    // this ban. Until then the ban takes the place of another.
                    self.banned.pop_first();
                    self.needs_snapshot = true;
                    self.snapshot_asked_at_ms = None;
                }
                self.banned.insert(user.clone());
            }
            let targets = self.connections_of(&user);
            for target in targets {
                self.close(target, code, now_ms);
            }
        }
        self.flush_sockets(now_ms);
        if let Some(ended) = self.mirror.as_ref().filter(|m| m.ended).map(|m| m.epoch) {
            // Not the sockets placed in another opening (the room opened again and this
            // shard has not had its state yet): that one is live.
            let of_the_ended: Vec<ConnectionId> = self
                .connections
                .iter()
                .filter(|(_, c)| c.placed_in.is_none_or(|epoch| epoch == ended))
                .map(|(&id, _)| id)
                .collect();
            for id in of_the_ended {
                self.close(id, CloseCode::RoomEnded, now_ms);
            }
        }
        Ok(())
    }

    /// The room's answer to a forwarded vote or answer: remembered when accepted, so a
    /// repeat is answered here.
    pub(crate) fn resolve_choice(&mut self, connection: ConnectionId, event: &Event) {
        let client_id = match event {
            Event::Ack { client_id, .. } => *client_id,
            Event::Error {
                client_id: Some(client_id),
                ..
            } => *client_id,
            _ => return,
        };
        let Some((choice, user)) = self.pending_choices.remove(&(connection, client_id)) else {
            return;
        };
        if matches!(event, Event::Ack { .. }) {
            if !self.chosen.contains_key(&choice) {
                // An earlier question's answer, acknowledged as a repeat: the current
                // question's memory stays (one viewer alternating such repeats emptied it
                // for everyone at each frame).
                if self.chosen.keys().any(|held| choice.is_earlier_than(held)) {
                    return;
                }
                // Only the latest poll and quiz question matter: forget older ones.
                self.chosen
                    .retain(|c, _| std::mem::discriminant(c) != std::mem::discriminant(&choice));
            }
            let users = self.chosen.entry(choice).or_default();
            if users.len() < POLL_VOTERS_MAX {
                users.insert(user);
            }
        }
    }

    pub(crate) fn schedule_tick(&mut self, now_ms: u64) {
        if self.tick_at_ms.is_none() {
            self.tick_at_ms = Some(now_ms + TICK_MS);
        }
    }

    /// When the host must call [`Shard::handle_timeout`] next.
    pub fn poll_timeout(&self) -> Option<u64> {
        self.tick_pending()
            .into_iter()
            .chain(self.sweep_clock.next_ms())
            .min()
    }

    /// Whether a socket's liveness has something due at `now_ms` (a host reads the
    /// heartbeats it answered alone only then, see `touch`).
    pub fn sweep_due(&self, now_ms: u64) -> bool {
        self.sweep_clock.is_due(now_ms)
    }

    /// Whether output waits for a tick (the host flushes with a short timer).
    pub fn tick_pending(&self) -> Option<u64> {
        // While a batch is in flight the next one (and a snapshot request) waits for its
        // answer; only its retry is timed.
        let up_at = match self.up_in_flight {
            Some(_) => self.up_retry_at(),
            None => self
                .up_at_ms
                .into_iter()
                .chain(self.snapshot_ask_at())
                .min(),
        };
        self.tick_at_ms.into_iter().chain(up_at).min()
    }

    /// How far apart this shard's batches to the room go (the room's shard count sets
    /// it, so that all of them together stay under `ROOM_SHARD_BATCHES_PER_S_TARGET`).
    pub fn up_interval_ms(&self) -> u64 {
        shard_batch_interval_ms_for(self.shards)
    }

    /// When to ask the room for its state (again): at once, then every retry interval.
    pub(crate) fn snapshot_ask_at(&self) -> Option<u64> {
        let for_a_gap = self.needs_snapshot.then(|| {
            self.snapshot_asked_at_ms
                .map_or(0, |at| at + SHARD_SNAPSHOT_RETRY_MS)
        });
        let for_hellos = self.opening_check_wanted.then(|| {
            self.opening_check_asked_at_ms
                .map_or(0, |at| at + SHARD_SNAPSHOT_RETRY_MS)
        });
        for_a_gap.into_iter().chain(for_hellos).min()
    }

    pub fn handle_timeout(&mut self, now_ms: u64) {
        let sockets = self
            .connections
            .iter_mut()
            .map(|(&id, c)| (id, &mut c.liveness));
        let due = self.sweep_clock.sweep_if_due(sockets, now_ms);
        for id in due.expired {
            self.push(
                id,
                Event::GoAway {
                    reconnect_delay_ms: 0,
                },
                now_ms,
            );
        }
        for id in due.overdue {
            self.close(id, CloseCode::GoingAway, now_ms);
        }
        for id in due.stale {
            self.close(id, CloseCode::Stale, now_ms);
        }
        for id in due.no_hello {
            self.close(id, CloseCode::HelloTimeout, now_ms);
        }
        let snapshot_due = self.snapshot_ask_at().is_some_and(|at| at <= now_ms);
        let tick_due = self.tick_at_ms.is_some_and(|at| at <= now_ms);
        let up_due = self.up_at_ms.is_some_and(|at| at <= now_ms);
        let retry_due = self.up_retry_at().is_some_and(|at| at <= now_ms);
        if snapshot_due || tick_due || up_due || retry_due {
            self.tick_at_ms = None;
            // Sockets get their answers every tick; the room gets a batch at most once
            // per interval (asking for a snapshot does not wait), one at a time.
            if retry_due {
                self.resend_up(now_ms);
            } else if self.up_in_flight.is_none() {
                self.up_at_ms = None;
                let up_allowed_at_ms = self
                    .up_sent_at_ms
                    .map_or(0, |at| at + self.up_interval_ms());
                if snapshot_due || now_ms >= up_allowed_at_ms {
                    self.send_up(now_ms, snapshot_due);
                } else if self.up_pending() {
                    self.up_at_ms = Some(up_allowed_at_ms);
                }
            }
            self.flush_sockets(now_ms);
        }
    }

    /// Whether the room has something to hear from this shard.
    pub(crate) fn up_pending(&self) -> bool {
        !self.up_frames.is_empty()
            || self.likes_pending > 0
            || self.online_reported != Some(self.online())
    }

    /// How many of the waiting frames the next batch up carries: the oldest, at most
    /// `RELAY_FRAMES_PER_BATCH_MAX`, and no more than fit in `RELAY_MESSAGE_BYTES_MAX`
    /// (the room refuses a larger batch whole; viewers' staff commands and part frames,
    /// forwarded for the room to refuse, reach 16 KiB each). The rest wait for the next.
    pub(crate) fn up_frames_for_one_batch(&self) -> usize {
        let mut bytes = SHARD_UP_FIELDS_BYTES_MAX;
        let mut take = 0;
        for relayed in self.up_frames.iter().take(RELAY_FRAMES_PER_BATCH_MAX) {
            bytes += postcard::to_allocvec(relayed)
                .expect("encoding into a Vec cannot fail")
                .len();
            if bytes > RELAY_MESSAGE_BYTES_MAX {
                break;
            }
            take += 1;
        }
        take
    }

    /// The shard's batch for the room, when it has something to say.
    pub(crate) fn send_up(&mut self, now_ms: u64, ask_snapshot: bool) {
        if !ask_snapshot && !self.up_pending() {
            return;
        }
        let online = self.online();
        let take = self.up_frames_for_one_batch();
        self.up_sent_at_ms = Some(now_ms);
        if ask_snapshot {
            self.snapshot_asked_at_ms = Some(now_ms);
            if self.opening_check_wanted {
                self.opening_check_asked_at_ms = Some(now_ms);
            }
        }
        let likes = std::mem::take(&mut self.likes_pending);
        // Its copy's opening, or without one (restarted, it asked for the room's state)
        // the last it knew of, which the room refuses if it ended, never 0 (taken as the
        // room's own).
        let epoch = self.epoch_known;
        let up = ShardUp {
            shard: self.index,
            needs_snapshot: ask_snapshot,
            online,
            likes,
            frames: self.up_frames.drain(..take).collect(),
            instance: 0, // set by send_numbered
            seq: 0,
            epoch,
        };
        self.online_reported = Some(online);
        self.stats.batches_up += 1;
        self.send_numbered(up);
        if !self.up_frames.is_empty() {
            self.up_at_ms = Some(now_ms + self.up_interval_ms()); // the rest next time
        }
    }

    /// Sends every connection its events by the room's rule (`crate::flush::tick_share`):
    /// the broadcast encoded once for everyone; a connection's own events with a copy of
    /// it only while it is small, else in a frame of their own before the shared one.
    pub(crate) fn flush_sockets(&mut self, now_ms: u64) {
        // Likes acknowledged in this flush are in the record before their acks leave.
        self.persist_record();
        let shared = std::mem::take(&mut self.shared);
        let (shared_frames, copied) = encode_shared(now_ms, &shared);
        let mut everyone = Vec::new();
        // Own actions left out while actions are held for the snapshot are told after
        // those (a `Gap` before them would make the client drop them as seen).
        let holding = self.needs_snapshot;
        for (&id, conn) in self.connections.iter_mut() {
            let from = if conn.ready {
                conn.shared_from
            } else {
                shared.len()
            };
            conn.shared_from = 0;
            let own = std::mem::take(&mut conn.outbox);
            let own_gaps = if holding {
                Vec::new()
            } else {
                conn.outbox_dropped.drain(..).map(LeftOut::gap).collect()
            };
            let events = match tick_share(&shared, copied, from, own, own_gaps, 0) {
                TickShare::Own { own, shared } => {
                    if shared {
                        everyone.push(id);
                    }
                    own
                }
                TickShare::Apart(events) => events,
            };
            if events.is_empty() {
                continue;
            }
            // One frame, unless that would pass SERVER_FRAME_BYTES_MAX (clients refuse it).
            for frame in ServerFrame::batches(now_ms, events) {
                self.stats.frames_out += 1;
                self.stats.bytes_out += frame.len() as u64;
                self.outputs.push_back(ShardOutput::Send {
                    connections: vec![id],
                    frame,
                });
            }
        }
        if !everyone.is_empty() {
            for frame in shared_frames {
                self.stats.frames_out += everyone.len() as u64;
                self.stats.bytes_out += (frame.len() * everyone.len()) as u64;
                self.outputs.push_back(ShardOutput::Send {
                    connections: everyone.clone(),
                    frame,
                });
            }
        }
    }
}
