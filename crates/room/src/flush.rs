//! Output and time: events are queued per connection and flushed once per tick (leading
//! edge in quiet rooms), the timer the host arms (`poll_timeout`), and `poll_output`.

use super::*;

/// Distinct batches a flush compares a connection's batch with (the most recent ones).
const SHARED_BATCH_GROUPS_COMPARED: usize = 4;

impl Room {
    pub(crate) fn broadcast(&mut self, event: Event, now_ms: u64) {
        let ids: Vec<ConnectionId> = self
            .connections
            .iter()
            .filter(|(_, c)| c.ready && c.remote.is_none())
            .map(|(id, _)| *id)
            .collect();
        if self.shards.is_sharded() {
            self.shards.broadcast.push(event.clone());
        }
        for id in ids {
            self.enqueue(id, event.clone(), now_ms);
        }
        self.schedule_tick(now_ms);
    }

    pub(crate) fn enqueue(&mut self, connection: ConnectionId, event: Event, now_ms: u64) {
        let conn = self
            .connections
            .get_mut(&connection)
            .expect("live connection");
        if conn.outbox.len() >= OUTBOX_EVENTS_MAX {
            // Output waits at most a tick, so a full outbox means more events in one tick
            // than a viewer could read: the newer ones are left out, and dropped actions
            // are told as a `Gap` rather than left a silent hole.
            if let Event::Action(action) = &event {
                let first = conn.outbox_dropped.map_or(action.seq, |(first, _)| first);
                conn.outbox_dropped = Some((first, action.seq));
            }
            self.stats.dropped += 1;
            return;
        }
        conn.outbox.push(event);
        self.schedule_tick(now_ms);
    }

    /// Leading edge in a quiet room: output after `FLUSH_QUIET_TICKS` ticks without a
    /// flush goes out at once (one comment a second need not wait for a tick). In a busy
    /// room output waits a tick for more to join it, as batching pays there (at 1,000
    /// viewers and 20 comments a second, flushing each comment at once cost 1.7x the
    /// CPU). Either way a connection gets at most one frame per tick.
    pub(crate) fn schedule_tick(&mut self, now_ms: u64) {
        if self.tick_at_ms.is_none() {
            let tick_ms = self.tick_ms();
            let quiet = self
                .last_flush_ms
                .is_none_or(|last| now_ms >= last + FLUSH_QUIET_TICKS * tick_ms);
            self.tick_at_ms = Some(if quiet { now_ms } else { now_ms + tick_ms });
        }
    }

    /// How long output waits to be batched now: stretched with the sockets one object's
    /// fan-out reaches each tick, the room's own or the widest shard's (a shard sends the
    /// room's batch to its viewers as it arrives), so no object's thread is flooded with
    /// one frame per socket every 50 ms; and, with many shards, no shorter than keeps
    /// the room's batches to them under `ROOM_SHARD_BATCHES_PER_S_TARGET` (see
    /// `limits::room_tick_ms_for`).
    pub fn tick_ms(&self) -> u64 {
        let widest_shard = self.shard_online().map(|(_, n)| n).max().unwrap_or(0);
        let reached = self.local_connections().max(widest_shard as usize);
        let reached = u64::try_from(reached).expect("usize fits u64");
        room_tick_ms_for(reached, self.shards.current())
    }

    /// When the host must call [`Room::handle_timeout`] next.
    pub fn poll_timeout(&self) -> Option<u64> {
        let sockets = self
            .connections
            .values()
            .filter(|c| c.remote.is_none())
            .map(|c| c.liveness.deadline());
        let refresh = (self.local_connections() > 0 || self.shards.is_sharded())
            .then_some(self.online_refresh_at_ms);
        self.tick_at_ms
            .into_iter()
            .chain(self.interaction_deadline())
            .chain(sockets)
            .chain(refresh)
            .min()
    }

    /// Whether output is waiting for a tick (the host flushes soon, not via an alarm).
    pub fn tick_pending(&self) -> Option<u64> {
        self.tick_at_ms
    }

    pub fn handle_timeout(&mut self, now_ms: u64) {
        let sockets = self
            .connections
            .iter_mut()
            .filter(|(_, c)| c.remote.is_none())
            .map(|(&id, c)| (id, &mut c.liveness));
        let due = liveness::sweep(sockets, now_ms);
        for id in due.expired {
            self.enqueue(
                id,
                Event::GoAway {
                    reconnect_delay_ms: 0,
                },
                now_ms,
            );
        }
        for id in due.overdue {
            self.close(id, CloseCode::GoingAway, String::new(), now_ms);
        }
        for id in due.stale {
            self.close(id, CloseCode::Stale, "no heartbeat".into(), now_ms);
        }
        for id in due.no_hello {
            let detail = format!("no Hello within {HELLO_DEADLINE_MS} ms");
            self.close(id, CloseCode::HelloTimeout, detail, now_ms);
        }
        if (self.local_connections() > 0 || self.shards.is_sharded())
            && self.online_refresh_at_ms <= now_ms
        {
            self.online_published = None; // forces a republish
            self.online_refresh_at_ms = now_ms + ONLINE_REFRESH_MS;
            self.schedule_tick(now_ms);
        }
        self.close_due_interactions(now_ms);
        if self.tick_at_ms.is_some_and(|at| at <= now_ms) {
            // The tick may have grown since the flush was scheduled (more sockets or
            // shards): a tick after the last flush, by today's tick, at the earliest.
            let earliest = self
                .last_flush_ms
                .map_or(now_ms, |last| last + self.tick_ms());
            if now_ms >= earliest {
                self.flush(now_ms);
            } else {
                self.tick_at_ms = Some(earliest);
            }
        }
    }

    /// Sends every connection its batch for this tick.
    pub(crate) fn flush(&mut self, now_ms: u64) {
        self.publish_tallies(now_ms);
        self.publish_interactions(now_ms);
        self.tick_at_ms = None;
        self.last_flush_ms = Some(now_ms);
        self.actions_this_tick = 0;
        self.evict_old_actions(now_ms);
        if self.likes_dirty {
            self.likes_dirty = false;
            self.broadcast_now(Event::Likes {
                total: self.likes_total,
            });
        }
        // A changed count goes out at most once per interval: in a big room someone
        // joins or leaves nearly every tick, and each publication is a frame to every
        // viewer. A deferred change is published by the refresh, moved forward for it.
        let online = self.online();
        let differs = self.online_published != Some(online);
        let changed = differs
            && (self.online_published.is_none() || self.online_publish_earliest_ms <= now_ms);
        if changed {
            self.online_published = Some(online);
            self.online_refresh_at_ms = now_ms + ONLINE_REFRESH_MS;
            self.online_publish_earliest_ms = now_ms + ONLINE_PUBLISH_INTERVAL_MS;
        } else if differs {
            self.online_refresh_at_ms = self
                .online_refresh_at_ms
                .min(self.online_publish_earliest_ms);
        }
        for conn in self
            .connections
            .values_mut()
            .filter(|c| c.ready && c.remote.is_none())
        {
            if (changed || conn.needs_online) && conn.outbox.len() < OUTBOX_EVENTS_MAX {
                conn.outbox.push(Event::Online { count: online });
            }
            conn.needs_online = false;
        }
        // Persist before sending: nothing acknowledged may be lost by a crash.
        self.flush_meta();
        if !self.likes_acked.is_empty() {
            let frames = std::mem::take(&mut self.likes_acked);
            self.outputs
                .push_back(Output::Store(StorageOp::put_likes_last(&frames)));
        }
        // Connections with the same batch (most of them, most ticks: only broadcasts) share
        // one encoding. Only the last few groups are compared, so a tick where every
        // connection has something of its own stays linear.
        let mut groups: Vec<(Vec<Event>, Vec<ConnectionId>)> = Vec::new();
        for (&connection, conn) in self.connections.iter_mut() {
            if conn.outbox.is_empty() || conn.remote.is_some() {
                continue;
            }
            let mut events = std::mem::take(&mut conn.outbox);
            if let Some((first, last)) = conn.outbox_dropped.take() {
                events.push(Event::Gap {
                    missed_after: first - 1,
                    resumed_from: last + 1,
                });
            }
            let recent = groups.iter_mut().rev().take(SHARED_BATCH_GROUPS_COMPARED);
            match recent.into_iter().find(|(e, _)| *e == events) {
                Some((_, connections)) => connections.push(connection),
                None => groups.push((events, vec![connection])),
            }
        }
        for (events, connections) in groups {
            // One frame, unless that would pass SERVER_FRAME_BYTES_MAX (clients refuse it).
            for frame in ServerFrame::batches(now_ms, events) {
                self.stats.frames_out += connections.len() as u64;
                self.stats.bytes_out += (frame.len() * connections.len()) as u64;
                let connections = connections.clone();
                self.outputs.push_back(Output::Send { connections, frame });
            }
        }
        self.flush_shards(now_ms, changed);
    }

    /// Adds to every ready outbox without scheduling (we are flushing now).
    pub(crate) fn broadcast_now(&mut self, event: Event) {
        if self.shards.is_sharded() {
            self.shards.broadcast.push(event.clone());
        }
        for conn in self
            .connections
            .values_mut()
            .filter(|c| c.ready && c.remote.is_none())
        {
            if conn.outbox.len() < OUTBOX_EVENTS_MAX {
                conn.outbox.push(event.clone());
            } else {
                self.stats.dropped += 1;
            }
        }
    }

    pub(crate) fn flush_meta(&mut self) {
        if self.meta_dirty {
            self.meta_dirty = false;
            self.outputs
                .push_back(Output::Store(StorageOp::put_meta(self)));
        }
    }

    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }
}
