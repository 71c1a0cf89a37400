//! The room's side of a big room: its viewers' sockets live on S shards (see
//! `shard.rs`); the room keeps deciding everything that needs one place (sequence
//! numbers, votes, gifts, moderation) and sends each shard one [`ShardDown`] per tick.
//!
//! A frame a shard forwards is handled exactly like a socket's frame: it gets a
//! short-lived *remote* connection entry (identity from the shard, `ready`, never part of
//! broadcasts or the online count) whose outbox goes back to that shard addressed to the
//! shard's connection. The entry is dropped at the flush that empties it, unless a gift
//! charge still has to answer it.

use super::*;
use ovation_proto::{shard_of, RelayedFrame, ShardDown, ShardUp, Snapshot};

/// Room-side ids of remote connections start here; hosts' socket ids stay below (they are
/// below 2^53 so they survive JavaScript numbers).
pub(crate) const REMOTE_CONNECTION_ID_MIN: ConnectionId = 1 << 62;

/// The last batch the room applied from one shard.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct UpApplied {
    pub instance: u64,
    pub seq: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Shards {
    /// Every shard count the room has had, oldest first (the last is current). Empty: the
    /// room holds every socket itself.
    pub counts: Vec<u16>,
    /// Ready connections per shard, from the shards' batches.
    pub online: BTreeMap<u16, u32>,
    /// The last batch number sent to each shard by this room instance.
    pub sent_seq: BTreeMap<u16, u64>,
    /// The last batch applied from each shard (stored: a batch sent again is applied once,
    /// across restarts of the room too).
    pub up_applied: BTreeMap<u16, UpApplied>,
    /// `up_applied` changed since it was stored: stored with the tick's writes, so the
    /// effects of a batch's frames are never durable without its number.
    pub up_applied_dirty: bool,
    pub snapshot_wanted: BTreeSet<u16>,
    /// Where the next flush starts serving `snapshot_wanted` (round robin: shards that
    /// keep asking never starve the others of the `SHARD_SNAPSHOTS_PER_FLUSH_MAX`).
    pub snapshot_cursor: u16,
    /// This tick's events for every viewer.
    pub broadcast: Vec<Event>,
    pub to_connection: BTreeMap<u16, Vec<(u64, Event)>>,
    pub to_user: BTreeMap<u16, Vec<(String, Event)>>,
    pub close_users: BTreeMap<u16, Vec<(String, u16)>>,
    /// Users unbanned this tick, for the shards they may be placed on.
    pub unbanned: BTreeMap<u16, BTreeSet<String>>,
    /// (shard, the shard's connection id) → the remote entry's id in `connections`.
    pub remote: HashMap<(u16, u64), ConnectionId>,
    pub next_remote: ConnectionId,
    /// Comments shown to everyone this tick (sampling starts above the cap).
    pub comments_shown_this_tick: usize,
    /// Batches handed to the host for each shard and not yet delivered or failed
    /// (`Room::shard_batch_done`).
    pub in_flight: BTreeMap<u16, u32>,
    /// Since when each shard has been at `SHARD_DOWN_BATCHES_IN_FLIGHT_MAX` (past
    /// `SHARD_HELD_MS_MAX` its batches are taken as lost: a host that never reports).
    pub blocked_since_ms: BTreeMap<u16, u64>,
    /// Batches taken as lost that the host may still report (its queue is in order: the
    /// first reports are theirs, not the batches sent since).
    pub forgiven: BTreeMap<u16, u32>,
    /// Broadcast events of the ticks a shard behind missed, for its next batch, and
    /// their encoded size (bounded room-wide by `ROOM_SHARD_HELD_BYTES_MAX`).
    pub held_broadcast: BTreeMap<u16, (Vec<Event>, usize)>,
    /// Shards whose broadcasts the room gave up holding: nothing goes to them but with
    /// the room's state (a batch without it would skip those events with no `Gap`).
    pub state_owed: BTreeSet<u16>,
}

impl Shards {
    pub fn is_sharded(&self) -> bool {
        !self.counts.is_empty()
    }

    pub fn current(&self) -> u16 {
        self.counts.last().copied().unwrap_or(0)
    }

    /// Whether a shard is behind (its output held) or owed the room's state.
    pub fn any_behind(&self) -> bool {
        !self.state_owed.is_empty()
            || self
                .in_flight
                .values()
                .any(|&n| n >= SHARD_DOWN_BATCHES_IN_FLIGHT_MAX)
    }

    /// Every shard that may hold sockets (counts only grow).
    pub fn all(&self) -> std::ops::Range<u16> {
        0..self.current()
    }

    /// The shards a user may be connected to: their placement under each count the room
    /// has had (a viewer keeps their socket when the count grows).
    pub fn of_user(&self, user: &str) -> BTreeSet<u16> {
        self.counts
            .iter()
            .map(|&count| shard_of(user, count))
            .collect()
    }
}

impl Room {
    /// The room's current shard count (0: not sharded).
    pub fn shards(&self) -> u16 {
        self.shards.current()
    }

    /// Where the upgrade of a socket of `role` and `user` goes: `Some(shard)` for a viewer
    /// of a sharded room (the router's rule too, `crate::shard_for`), counted in
    /// `RoomStats::sockets_routed_to_shards`; `None`: the room object takes it.
    pub fn route_to_shard(&mut self, role: Role, user: &str) -> Option<u16> {
        // A banned user is refused here (`connect` closes it 4403), not sent to a shard
        // that may not know the ban yet (restarted, awaiting its snapshot).
        if self.moderation.is_banned(user) {
            return None;
        }
        let shard = crate::shard_for(role, user, self.shards.current())?;
        self.stats.sockets_routed_to_shards += 1;
        Some(shard)
    }

    /// Ready connections on each shard (what their last batches said).
    pub fn shard_online(&self) -> impl Iterator<Item = (u16, u32)> + '_ {
        self.shards.online.iter().map(|(&s, &n)| (s, n))
    }

    /// Shards the room (re)sends its state to at the next tick.
    pub fn shards_waiting_for_snapshot(&self) -> usize {
        self.shards.snapshot_wanted.len()
    }

    /// The host delivered one of `shard`'s batches, or gave it up (a failed request, a
    /// batch its queue dropped): a shard whose output was held gets it at the next tick.
    pub fn shard_batch_done(&mut self, shard: u16, now_ms: u64) {
        if let Some(forgiven) = self.shards.forgiven.get_mut(&shard) {
            *forgiven -= 1;
            if *forgiven == 0 {
                self.shards.forgiven.remove(&shard);
            }
            return;
        }
        let Some(in_flight) = self.shards.in_flight.get_mut(&shard) else {
            return;
        };
        *in_flight = in_flight.saturating_sub(1);
        if *in_flight == 0 {
            self.shards.in_flight.remove(&shard);
        }
        let held = self.shards.held_broadcast.contains_key(&shard)
            || self.shards.to_connection.contains_key(&shard)
            || self.shards.to_user.contains_key(&shard)
            || self.shards.close_users.contains_key(&shard)
            || self.shards.unbanned.contains_key(&shard)
            || self.shards.snapshot_wanted.contains(&shard);
        if held {
            self.schedule_tick(now_ms);
        }
    }

    /// Closes `user`'s sockets on `shard` with its next batch: once per user and code
    /// while it waits (a shard behind keeps relaying a banned user's frames).
    fn queue_close(&mut self, shard: u16, user: String, code: CloseCode) {
        let closes = self.shards.close_users.entry(shard).or_default();
        let close = (user, code.code());
        if !closes.contains(&close) {
            closes.push(close);
        }
    }

    /// The room gives up holding `shard`'s broadcasts: it gets the room's state, and
    /// nothing before it.
    fn owe_state(&mut self, shard: u16, why: &str) {
        self.log_shard(shard, "shard_state_owed", why);
        self.shards.held_broadcast.remove(&shard);
        self.shards.state_owed.insert(shard);
        self.shards.snapshot_wanted.insert(shard);
    }

    /// Grows the room to `count` shards (never shrinks: viewers keep their sockets, new
    /// sockets are placed over the new count). Also how a room becomes sharded.
    pub(crate) fn set_shards(&mut self, count: u16, now_ms: u64) -> Result<u16, AdminError> {
        if self.status == RoomStatus::Ended {
            return Err(AdminError::RoomEnded);
        }
        // Out of range is bad input (400); fewer than the room has is a conflict with
        // its state (409).
        if count == 0 || count > SHARDS_PER_ROOM_MAX {
            return Err(AdminError::Invalid(format!(
                "shards must be 1..={SHARDS_PER_ROOM_MAX}"
            )));
        }
        if count < self.shards.current() {
            return Err(AdminError::Refused(format!(
                "shards must be {}..={SHARDS_PER_ROOM_MAX} (a room's shard count only grows)",
                self.shards.current().max(1)
            )));
        }
        if count == self.shards.current() {
            return Ok(count);
        }
        if self.shards.counts.len() >= SHARD_COUNTS_MAX {
            return Err(AdminError::Refused(format!(
                "a room's shard count takes at most {SHARD_COUNTS_MAX} values in its life \
                 (the count a big room was created with is the first)"
            )));
        }
        let old = self.shards.current();
        self.shards.counts.push(count);
        self.shards.snapshot_wanted.extend(old..count);
        self.outputs
            .push_back(Output::Store(StorageOp::put_shards(&self.shards.counts)));
        self.schedule_tick(now_ms);
        Ok(count)
    }

    /// A shard's batch (the bytes of a [`ShardUp`]). Refused as a whole when it does not
    /// decode or names a shard the room does not have.
    pub fn shard_up(&mut self, bytes: &[u8], now_ms: u64) -> Result<(), DecodeError> {
        let up = ShardUp::decode(bytes)?;
        if up.shard >= self.shards.current() {
            return Err(DecodeError::FieldLimit {
                field: "shard",
                bytes_max: usize::from(self.shards.current()),
            });
        }
        let applied = UpApplied {
            instance: up.instance,
            seq: up.seq,
        };
        let last = self.shards.up_applied.get(&up.shard);
        if last.is_some_and(|last| last.instance == up.instance && last.seq >= up.seq) {
            // Sent again after its answer was lost: applied already (answered the same).
            self.stats.shard_batches_repeated += 1;
            return Ok(());
        }
        self.shards.up_applied.insert(up.shard, applied);
        self.shards.up_applied_dirty = true;
        self.stats.shard_batches_in += 1;
        // A shard without the room's state says epoch 0 and is taken as this opening's.
        let of_an_ended_opening = up.epoch != 0 && up.epoch != self.epoch;
        // A shard stamping an opening that ended missed this one's start (or has not
        // heard it yet): it gets the state without waiting to find a gap.
        if (up.needs_snapshot || of_an_ended_opening)
            && self.shards.snapshot_wanted.insert(up.shard)
        {
            // Its viewers' Hellos may be waiting for it: sent at the next tick, not
            // the next refresh of the online count.
            self.schedule_tick(now_ms);
        }
        if self.shards.online.insert(up.shard, up.online) != Some(up.online) {
            self.schedule_tick(now_ms);
        }
        if up.likes > 0 && self.status == RoomStatus::Live && up.epoch == self.epoch {
            // Each like was rate-limited by the shard that took it, which acknowledged it
            // and keeps it until this batch is answered: the count and the batch's number
            // (below) are stored now, so they are durable before the answer leaves.
            self.likes_total += up.likes;
            self.meta_dirty = true;
            self.flush_meta();
            self.likes_changed(now_ms);
        } else if up.likes > 0 {
            // Taken in an opening that ended (the room counts no likes after its end):
            // answered applied, so the shard forgets them, and told here, not silent.
            self.stats.shard_likes_of_another_opening += up.likes;
            self.outputs.push_back(Output::Log(LogRecord {
                event: "likes_of_an_ended_opening",
                connection: None,
                user: None,
                code: "likes_dropped",
                detail: format!(
                    "shard {} batch {}: {} likes of opening {} (the room is {} at {})",
                    up.shard,
                    up.seq,
                    up.likes,
                    up.epoch,
                    self.status.as_str(),
                    self.epoch
                ),
            }));
        }
        let changes_state = up.likes > 0 || !up.frames.is_empty();
        // A batch taken in an opening that ended (sent again across the end and a new
        // opening): its frames are not this opening's (its poll `p1` is another poll).
        for relayed in up.frames {
            self.on_relayed(up.shard, relayed, of_an_ended_opening, now_ms);
        }
        if changes_state {
            // In the same write as what the batch changed (likes, votes, gifts, …): a
            // batch sent again after a restart is a repeat if and only if that is stored.
            self.flush_shard_ups();
        }
        Ok(())
    }

    /// Stores the last batch applied from each shard, when that changed.
    pub(crate) fn flush_shard_ups(&mut self) {
        if std::mem::take(&mut self.shards.up_applied_dirty) {
            let op = StorageOp::put_shard_ups(&self.shards.up_applied);
            self.outputs.push_back(Output::Store(op));
        }
    }

    fn on_relayed(
        &mut self,
        shard: u16,
        relayed: RelayedFrame,
        of_an_ended_opening: bool,
        now_ms: u64,
    ) {
        let RelayedFrame {
            connection: remote,
            user,
            name,
            role,
            frame,
        } = relayed;
        self.stats.frames_in += 1;
        if matches!(frame, ClientFrame::Hello(_) | ClientFrame::Ping { .. }) {
            return; // a shard answers these itself
        }
        if self.moderation.is_banned(&user) {
            self.queue_close(shard, user, CloseCode::Banned);
            self.schedule_tick(now_ms);
            return;
        }
        let id = match self.shards.remote.get(&(shard, remote)) {
            Some(&id) => id,
            None => {
                let id = REMOTE_CONNECTION_ID_MIN + self.shards.next_remote;
                self.shards.next_remote += 1;
                self.shards.remote.insert((shard, remote), id);
                let identity = Identity { user, name, role };
                let relayed = Some((shard, remote));
                self.insert_connection(id, identity, u64::MAX, true, relayed, now_ms);
                id
            }
        };
        if of_an_ended_opening {
            // Refused as after the end (the opening its sender saw has ended).
            self.stats.shard_frames_of_another_opening += 1;
            if let Some(client_id) = frame.client_id() {
                let refusal = Refusal::new(ErrorCode::RoomEnded, "the room has ended");
                self.refuse(id, Some(client_id), refusal, now_ms);
            }
            return;
        }
        // A relayed repeat is acknowledged like a local one (before anything else).
        if !self.answer_repeat(id, &frame, now_ms) {
            self.on_frame(id, frame, now_ms);
        }
    }

    /// A peer message for every connection of `user`: local sockets, and the shards the
    /// user may be placed on.
    pub(crate) fn send_to_user(&mut self, user: &str, event: Event, now_ms: u64) -> u32 {
        let local: Vec<ConnectionId> = self
            .connections_of(user)
            .filter(|id| self.connections[id].remote.is_none())
            .collect();
        for &id in &local {
            self.enqueue(id, event.clone(), now_ms);
        }
        for shard in self.shards.of_user(user) {
            self.shards
                .to_user
                .entry(shard)
                .or_default()
                .push((user.to_owned(), event.clone()));
            self.schedule_tick(now_ms);
        }
        u32::try_from(local.len()).expect("bounded")
    }

    /// Closes every connection of `user`, here and on the shards.
    pub(crate) fn close_user(&mut self, user: &str, code: CloseCode, detail: &str, now_ms: u64) {
        let targets: Vec<ConnectionId> = self.connections_of(user).collect();
        for connection in targets {
            self.close(connection, code, detail.to_owned(), now_ms);
        }
        for shard in self.shards.of_user(user) {
            self.queue_close(shard, user.to_owned(), code);
            self.schedule_tick(now_ms);
        }
    }

    /// Whether this comment is shown to its sender only (above the per-tick cap of a
    /// sharded room). Staff are always shown.
    pub(crate) fn sample_out(&mut self, identity: &Identity) -> bool {
        if !self.shards.is_sharded() || identity.role.is_staff() {
            return false;
        }
        let shown_max = per_tick(SHARDED_COMMENTS_PER_S_MAX, self.tick_ms());
        if self.shards.comments_shown_this_tick >= shown_max {
            self.stats.comments_sampled_out += 1;
            return true;
        }
        self.shards.comments_shown_this_tick += 1;
        false
    }

    /// A sampled-out comment: it takes a sequence number (so its sender's SDK treats it
    /// like any other) but reaches only the sender's connection, and is not kept.
    pub(crate) fn sampled_comment(
        &mut self,
        connection: ConnectionId,
        identity: &Identity,
        body: ActionBody,
        now_ms: u64,
    ) -> u64 {
        let seq = self.ring.take_seq();
        self.meta_dirty = true;
        let action = Action {
            seq,
            ts_ms: now_ms,
            user: identity.user.clone(),
            name: identity.name.clone(),
            body,
        };
        self.enqueue(connection, Event::Action(action), now_ms);
        seq
    }

    /// The tick's batches for the shards (called by `flush` after the local sockets').
    pub(crate) fn flush_shards(&mut self, now_ms: u64, online_changed: bool) {
        if !self.shards.is_sharded() {
            return;
        }
        self.shards.comments_shown_this_tick = 0;
        if online_changed {
            let count = self.online();
            self.shards.broadcast.push(Event::Online { count });
        }
        // Remote outboxes go back to their shards; idle entries go away, but for those a
        // pending gift will answer: the first sender's, and a resend's joined to the
        // charge (its answer was lost with the entry). Gathered once, not per entry.
        let awaited: BTreeSet<ConnectionId> = self
            .gifts
            .pending()
            .flat_map(|g| {
                std::iter::once(g.connection).chain(g.joined.iter().map(|w| w.connection))
            })
            .collect();
        let mut idle = Vec::new();
        for (&id, conn) in self.connections.iter_mut() {
            let Some((shard, remote)) = conn.remote else {
                continue;
            };
            let events = std::mem::take(&mut conn.outbox);
            // Its own actions left out of a full outbox go to the shard as a `Gap`,
            // which tells the viewer after the rest of its batch.
            let own_gap = conn.outbox_dropped.take().map(crate::flush::LeftOut::gap);
            let replies = self.shards.to_connection.entry(shard).or_default();
            replies.extend(
                events
                    .into_iter()
                    .chain(own_gap)
                    .map(|event| (remote, event)),
            );
            if !awaited.contains(&id) {
                idle.push(id);
            }
        }
        for id in idle {
            self.remove_connection(id);
        }
        // Shards behind: at `SHARD_DOWN_BATCHES_IN_FLIGHT_MAX` batches on their way. One
        // the host has not reported for `SHARD_HELD_MS_MAX` (a request that never ends, a
        // batch lost with a failed write) is let go and owed the state.
        let mut blocked: BTreeSet<u16> = self
            .shards
            .in_flight
            .iter()
            .filter(|(_, &n)| n >= SHARD_DOWN_BATCHES_IN_FLIGHT_MAX)
            .map(|(&shard, _)| shard)
            .collect();
        self.shards
            .blocked_since_ms
            .retain(|shard, _| blocked.contains(shard));
        for shard in blocked.clone() {
            let since = *self.shards.blocked_since_ms.entry(shard).or_insert(now_ms);
            if now_ms.saturating_sub(since) >= SHARD_HELD_MS_MAX {
                blocked.remove(&shard);
                self.shards.blocked_since_ms.remove(&shard);
                if let Some(lost) = self.shards.in_flight.remove(&shard) {
                    *self.shards.forgiven.entry(shard).or_default() += lost;
                }
                self.owe_state(shard, "its batches were never reported");
            }
        }
        let broadcast = std::mem::take(&mut self.shards.broadcast);
        // At most `SHARD_SNAPSHOTS_PER_FLUSH_MAX` states a flush: a restarted room (or
        // one grown to 250 shards) wants one for every shard, and all at once held 250
        // copies of a state that reaches megabytes. The rest go with the next flushes; a
        // shard waiting for its state holds its viewers' broadcasts meanwhile. A shard
        // behind is served when it catches up.
        let wanted = &self.shards.snapshot_wanted;
        let cursor = self.shards.snapshot_cursor;
        let served: Vec<u16> = (wanted.range(cursor..).chain(wanted.range(..cursor)))
            .filter(|shard| !blocked.contains(shard))
            .take(SHARD_SNAPSHOTS_PER_FLUSH_MAX)
            .copied()
            .collect();
        if let Some(&last) = served.last() {
            self.shards.snapshot_cursor = last.saturating_add(1);
        }
        for shard in &served {
            self.shards.snapshot_wanted.remove(shard);
        }
        let snapshot = (!served.is_empty()).then(|| self.snapshot());
        // What this tick's broadcast adds to a held shard's memory (encoded once).
        let holding = !blocked.is_empty() || !self.shards.state_owed.is_empty();
        let tick_bytes = if holding && !broadcast.is_empty() {
            postcard::to_allocvec(&broadcast).map_or(0, |bytes| bytes.len())
        } else {
            0
        };
        for shard in self.shards.all() {
            let wants_snapshot = served.contains(&shard);
            let owed = self.shards.state_owed.contains(&shard);
            if blocked.contains(&shard) || (owed && !wants_snapshot) {
                self.hold_for(shard, &broadcast, tick_bytes);
                continue;
            }
            let broadcast = match self.shards.held_broadcast.remove(&shard) {
                // The state brings what they would.
                Some(_) if wants_snapshot => broadcast.clone(),
                Some((mut held, _)) => {
                    held.extend(broadcast.iter().cloned());
                    held
                }
                None => broadcast.clone(),
            };
            if wants_snapshot {
                self.shards.state_owed.remove(&shard);
            }
            let to_connection = self.shards.to_connection.remove(&shard).unwrap_or_default();
            let to_user = self.shards.to_user.remove(&shard).unwrap_or_default();
            let close_users = self.shards.close_users.remove(&shard).unwrap_or_default();
            let unbanned_users: Vec<String> = self
                .shards
                .unbanned
                .remove(&shard)
                .map(|users| users.into_iter().collect())
                .unwrap_or_default();
            let first_seq = self.shards.sent_seq.get(&shard).copied().unwrap_or(0) + 1;
            let down = ShardDown {
                seq: first_seq,
                server_time_ms: now_ms,
                snapshot: wants_snapshot.then(|| snapshot.clone().expect("built above")),
                broadcast,
                to_connection,
                to_user,
                close_users,
                unbanned_users,
                shards: self.shards.current(),
            };
            if down.is_empty() {
                continue;
            }
            let frame = down.encode();
            let frames = if frame.len() <= RELAY_MESSAGE_BYTES_MAX {
                vec![frame]
            } else {
                // Past the bound a shard refuses the batch whole, acknowledgements and
                // all (a staff burst of large parts, a quiz's notices to thousands): it
                // goes as pieces, numbered in turn and delivered in order.
                let pieces = down.split_within(RELAY_MESSAGE_BYTES_MAX);
                (first_seq..)
                    .zip(pieces)
                    .map(|(seq, piece)| ShardDown { seq, ..piece }.encode())
                    .collect()
            };
            *self.shards.sent_seq.entry(shard).or_default() += frames.len() as u64;
            *self.shards.in_flight.entry(shard).or_default() += frames.len() as u32;
            for frame in frames {
                self.stats.shard_batches_out += 1;
                self.stats.bytes_out += frame.len() as u64;
                self.outputs.push_back(Output::ToShard { shard, frame });
            }
        }
        // Room-wide, held broadcasts stay within `ROOM_SHARD_HELD_BYTES_MAX`: past it the
        // shard holding the most gets the state instead.
        let mut held_bytes: usize = self.shards.held_broadcast.values().map(|(_, b)| b).sum();
        while held_bytes > ROOM_SHARD_HELD_BYTES_MAX {
            let (&most, &(_, bytes)) = self
                .shards
                .held_broadcast
                .iter()
                .max_by_key(|(_, (_, bytes))| *bytes)
                .expect("bytes are held");
            held_bytes -= bytes;
            self.owe_state(most, "the room's held broadcasts past their bytes");
        }
        let waiting =
            |shard: &u16| blocked.contains(shard) || self.shards.state_owed.contains(shard);
        assert!(
            self.shards.to_connection.keys().all(waiting)
                && self.shards.to_user.keys().all(waiting),
            "only the output of shards behind or owed the state waits"
        );
        let snapshots_due = self
            .shards
            .snapshot_wanted
            .iter()
            .any(|s| !blocked.contains(s));
        if snapshots_due {
            self.schedule_tick(now_ms);
        }
    }

    fn log_shard(&mut self, shard: u16, event: &'static str, detail: &str) {
        self.outputs.push_back(Output::Log(LogRecord {
            event,
            connection: None,
            user: None,
            code: "",
            detail: format!("shard {shard}: {detail}"),
        }));
    }

    /// Holds this tick's output for a shard behind (or owed the state): its broadcast
    /// events merged into its next batch (past `SHARD_HELD_EVENTS_MAX`, or the room's
    /// bytes, the state instead), its answers waiting where they are (past
    /// `SHARD_HELD_ANSWERS_MAX`, the oldest dropped: counted and logged).
    fn hold_for(&mut self, shard: u16, broadcast: &[Event], tick_bytes: usize) {
        self.stats.shard_flushes_held += 1;
        if !self.shards.state_owed.contains(&shard) && !broadcast.is_empty() {
            let (held, bytes) = self.shards.held_broadcast.entry(shard).or_default();
            held.extend(broadcast.iter().cloned());
            *bytes += tick_bytes;
            if held.len() > SHARD_HELD_EVENTS_MAX {
                self.owe_state(shard, "its held broadcasts past their count");
            }
        }
        /// Drops the oldest past the bound: how many.
        fn drop_oldest<T>(answers: Option<&mut Vec<T>>) -> usize {
            let Some(answers) = answers else { return 0 };
            let excess = answers.len().saturating_sub(SHARD_HELD_ANSWERS_MAX);
            answers.drain(..excess);
            excess
        }
        let dropped = drop_oldest(self.shards.to_connection.get_mut(&shard))
            + drop_oldest(self.shards.to_user.get_mut(&shard));
        if dropped > 0 {
            self.stats.shard_answers_dropped += dropped as u64;
            let detail = format!("{dropped} answers held past the bound");
            self.log_shard(shard, "shard_answers_dropped", &detail);
        }
    }

    fn snapshot(&self) -> Snapshot {
        Snapshot {
            epoch: self.epoch,
            total_version: self.parts.total_version(),
            last_seq: self.ring.last_seq(),
            likes_total: self.likes_total,
            online: self.online(),
            ended: self.status == RoomStatus::Ended,
            parts: self
                .parts
                .iter()
                .map(|(name, part)| (name.clone(), part.version, part.value.clone()))
                .collect(),
            ring: self.ring.iter().cloned().collect(),
            banned: self.moderation.banned.keys().cloned().collect(),
        }
    }
}
