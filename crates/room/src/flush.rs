//! Output and time: events are queued per connection and flushed once per tick (leading
//! edge in quiet rooms), the timer the host arms (`poll_timeout`), and `poll_output`.

use super::*;

/// Distinct batches a flush compares a connection's batch with (the most recent ones).
const SHARED_BATCH_GROUPS_COMPARED: usize = 4;

/// When the room's output goes out: the flush waiting, the last flush, and the fan-out
/// budget. The rule (`Pacing::earliest_ms`):
///
/// Leading edge: output goes out at once while the room's fan-out budget lasts
/// (`FANOUT_FRAMES_BURST`, refilled at `FANOUT_FRAMES_PER_S_TARGET`), at most one frame
/// per connection per `FLUSH_SPACING_MS_MIN`. A send costs about what the naive
/// object's costs, so holding output to batch it saves CPU only when the thread would
/// otherwise be flooded: a room of 1,000 viewers and 20 comments a second sends each
/// comment at once (at 50 ms ticks it waited 40–60 ms for company it rarely had). Spent,
/// output waits for the tick after the last flush (never a whole tick from its own
/// arrival), so a connection gets at most one frame per tick and a busy room of
/// thousands keeps its batching.
///
/// A sharded room keeps its trailing tick: output waits a whole tick from its arrival
/// unless the room was quiet for `FLUSH_QUIET_TICKS`. Its shards' fan-out is what the
/// tick paces, and flushing a tick after the last flush instead sent 46% more frames at
/// 10,000 viewers on one workerd thread (p99 914 ms became 4.2 s, `cargo xtask bench
/// fanout --viewers 10000`).
#[derive(Debug)]
pub(crate) struct Pacing {
    /// Set while some output waits for a flush.
    flush_at_ms: Option<u64>,
    /// When output last went out (a flush that sent nothing does not count).
    last_flush_ms: Option<u64>,
    fanout_budget: TokenBucket,
}

/// What the pacing rule reads of the room at the moment.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PacingInput {
    /// `Room::tick_ms`: how long output may wait to be batched.
    pub tick_ms: u64,
    pub sharded: bool,
    /// Frames one flush sends (a frame per ready local socket).
    pub frames_per_flush: u32,
}

impl Pacing {
    pub(crate) fn new(now_ms: u64) -> Pacing {
        Pacing {
            flush_at_ms: None,
            last_flush_ms: None,
            fanout_budget: TokenBucket::new_full(
                u32::try_from(FANOUT_FRAMES_PER_S_TARGET).expect("a small rate"),
                u32::try_from(FANOUT_FRAMES_BURST).expect("a small burst"),
                now_ms,
            ),
        }
    }

    /// When the waiting output goes out, if some waits.
    pub(crate) fn flush_at_ms(&self) -> Option<u64> {
        self.flush_at_ms
    }

    /// Output is waiting: a flush is set for the time the rule says, unless one is set.
    pub(crate) fn schedule(&mut self, now_ms: u64, room: PacingInput) {
        if self.flush_at_ms.is_some() {
            return;
        }
        let at = if room.sharded {
            let quiet = self
                .last_flush_ms
                .is_none_or(|last| now_ms >= last + FLUSH_QUIET_TICKS * room.tick_ms);
            if quiet {
                now_ms
            } else {
                now_ms + room.tick_ms
            }
        } else {
            self.earliest_ms(now_ms, room)
        };
        self.flush_at_ms = Some(at);
    }

    /// The earliest a flush may go out now: in a sharded room a tick after the last flush.
    fn earliest_ms(&mut self, now_ms: u64, room: PacingInput) -> u64 {
        let after_last = |spacing_ms: u64| {
            self.last_flush_ms
                .map_or(now_ms, |last| last + spacing_ms)
                .max(now_ms)
        };
        let by_tick = after_last(room.tick_ms);
        if room.sharded {
            return by_tick;
        }
        match self
            .fanout_budget
            .wait_ms(room.frames_per_flush.max(1), now_ms)
        {
            Some(wait_ms) => (now_ms + wait_ms)
                .max(after_last(FLUSH_SPACING_MS_MIN))
                .min(by_tick),
            None => by_tick, // more sockets than the burst: every flush waits its tick
        }
    }

    /// At a timeout: whether the flush is due now. The rule may say later now than when
    /// the flush was set (more sockets or shards, the budget spent meanwhile): then it is
    /// set again for then.
    pub(crate) fn due(&mut self, now_ms: u64, room: PacingInput) -> bool {
        if self.flush_at_ms.is_none_or(|at| at > now_ms) {
            return false;
        }
        let earliest = self.earliest_ms(now_ms, room);
        if now_ms >= earliest {
            return true;
        }
        self.flush_at_ms = Some(earliest);
        false
    }

    /// A flush is under way: output queued from now on waits for the next.
    pub(crate) fn flushing(&mut self) {
        self.flush_at_ms = None;
    }

    /// The flush sent `frames`. One that sent nothing does not hold the next one back,
    /// unless the room is sharded (its flush always feeds its shards).
    pub(crate) fn flushed(&mut self, now_ms: u64, frames: u64, sharded: bool) {
        self.fanout_budget
            .spend(u32::try_from(frames).unwrap_or(u32::MAX), now_ms);
        if frames > 0 || sharded {
            self.last_flush_ms = Some(now_ms);
        }
    }
}

impl Room {
    /// An event for every ready connection: the room's own (held once in `shared`) and
    /// the shards'.
    pub(crate) fn broadcast(&mut self, event: Event, now_ms: u64) {
        self.broadcast_now(event);
        self.schedule_tick(now_ms);
    }

    pub(crate) fn enqueue(&mut self, connection: ConnectionId, event: Event, now_ms: u64) {
        let conn = self
            .connections
            .get_mut(&connection)
            .expect("live connection");
        if conn.outbox.len() >= outbox_cap(&event) {
            // Output waits at most a tick, so a full outbox means more events in one tick
            // than a viewer could read: the newer ones are left out, and dropped actions
            // are told as a `Gap` rather than left a silent hole.
            if let Event::Action(action) = &event {
                conn.outbox_dropped = Some(LeftOut::add(conn.outbox_dropped, action.seq));
            }
            self.stats.dropped += 1;
            return;
        }
        conn.outbox.push(event);
        self.schedule_tick(now_ms);
    }

    /// The like total changed: published at the next flush once
    /// `LIKES_PUBLISH_INTERVAL_MS` has passed since the last publication (a flush for
    /// other output takes it along sooner); `poll_timeout` wakes for it otherwise.
    pub(crate) fn likes_changed(&mut self, now_ms: u64) {
        self.likes_dirty = true;
        if self.likes_publish_earliest_ms <= now_ms {
            self.schedule_tick(now_ms);
        }
    }

    /// When a changed like total must wake the room: at its interval's end, unless a
    /// flush already due by then will take it.
    fn likes_due_ms(&self) -> Option<u64> {
        let due_ms = self.likes_dirty.then_some(self.likes_publish_earliest_ms)?;
        let flush_ms = self.pacing.flush_at_ms();
        flush_ms
            .is_none_or(|flush_ms| flush_ms < due_ms)
            .then_some(due_ms)
    }

    /// Output is waiting: see `Pacing` for when it goes out.
    pub(crate) fn schedule_tick(&mut self, now_ms: u64) {
        if self.pacing.flush_at_ms().is_none() {
            let input = self.pacing_input();
            self.pacing.schedule(now_ms, input);
        }
    }

    fn pacing_input(&self) -> PacingInput {
        PacingInput {
            tick_ms: self.tick_ms(),
            sharded: self.shards.is_sharded(),
            frames_per_flush: u32::try_from(self.ready_local).unwrap_or(u32::MAX),
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
        // An unsharded room wakes for the count only to publish a deferred change.
        let refresh = (self.shards.is_sharded()
            || (self.local_connections() > 0 && self.online_published != Some(self.online())))
        .then_some(self.online_refresh_at_ms);
        self.pacing
            .flush_at_ms()
            .into_iter()
            .chain(self.interaction_deadline())
            .chain(self.sweep_clock.next_ms())
            .chain(refresh)
            .chain(self.purge.next_ms())
            .chain(self.gifts.next_retry_ms())
            .chain(self.likes_due_ms())
            .min()
    }

    /// Whether output is waiting for a tick (the host flushes soon, not via an alarm).
    pub fn tick_pending(&self) -> Option<u64> {
        self.pacing.flush_at_ms()
    }

    /// Whether a socket's liveness has something due at `now_ms` (a host reads the
    /// heartbeats it answered alone only then, see `touch`).
    pub fn sweep_due(&self, now_ms: u64) -> bool {
        self.sweep_clock.is_due(now_ms)
    }

    pub fn handle_timeout(&mut self, now_ms: u64) {
        let sockets = self
            .connections
            .iter_mut()
            .filter(|(_, c)| c.remote.is_none())
            .map(|(&id, c)| (id, &mut c.liveness));
        let due = self.sweep_clock.sweep_if_due(sockets, now_ms);
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
            self.online_refresh_at_ms = now_ms + ONLINE_REFRESH_MS;
            // A sharded room republishes the count even unchanged (its shards notice a
            // lost batch at the next); an unsharded one publishes only a change deferred
            // until now by `ONLINE_PUBLISH_INTERVAL_MS`: an unchanged count is not worth a
            // frame to every socket.
            if self.shards.is_sharded() {
                self.online_published = None; // forces a republish
                self.schedule_tick(now_ms);
            } else if self.online_published != Some(self.online()) {
                self.schedule_tick(now_ms);
            }
        }
        self.close_due_interactions(now_ms);
        self.retry_recovered_charges(Some(now_ms));
        if self.likes_dirty && self.likes_publish_earliest_ms <= now_ms {
            self.schedule_tick(now_ms);
        }
        let deletes = self.purge.take_due(now_ms);
        self.outputs.extend(deletes.into_iter().map(Output::Store));

        // The rule's inputs (the tick reads every shard's count) only when a flush is due:
        // most timeouts are sweeps and count refreshes.
        if self.pacing.flush_at_ms().is_some_and(|at| at <= now_ms) {
            let input = self.pacing_input();
            if self.pacing.due(now_ms, input) {
                self.flush(now_ms);
            }
        }
    }

    /// Sends every connection its batch for this tick.
    pub(crate) fn flush(&mut self, now_ms: u64) {
        self.publish_tallies(now_ms);
        self.publish_interactions(now_ms);
        self.send_score_notices(now_ms);
        self.pacing.flushing();
        self.evict_old_actions(now_ms);
        // Within the interval a changed total rides along only when this flush sends
        // the room's shared output anyway (no frame of its own to every socket).
        if self.likes_dirty
            && (self.likes_publish_earliest_ms <= now_ms
                || !self.shared.is_empty()
                || !self.shards.broadcast.is_empty())
        {
            self.likes_dirty = false;
            self.likes_publish_earliest_ms = now_ms + LIKES_PUBLISH_INTERVAL_MS;
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
        if let Some(dropped) = self.shared_dropped.take() {
            self.shared.push(dropped.gap());
        }
        if changed && self.ready_local > 0 {
            // Past the cap too: one event, which nothing else would send again.
            self.shared.push(Event::Online { count: online });
        }
        for conn in self
            .connections
            .values_mut()
            .filter(|c| c.ready && c.remote.is_none())
        {
            // A connection that joined since the last publication, when the count did
            // not change: its own. A full outbox keeps it for its next flush (nothing
            // else would resend an unchanged count to it).
            let wanted = !changed && conn.needs_online;
            conn.needs_online = wanted && conn.outbox.len() >= OUTBOX_EVENTS_MAX;
            if wanted && !conn.needs_online {
                conn.outbox.push(Event::Online { count: online });
            }
        }
        // Persist before sending: nothing acknowledged may be lost by a crash. The shards'
        // batch numbers go with the effects of their frames (a batch sent again after a
        // restart is then a repeat).
        self.flush_meta();
        self.flush_shard_ups();
        if !self.unsequenced_acked.is_empty() {
            let frames = std::mem::take(&mut self.unsequenced_acked);
            self.outputs
                .push_back(Output::Store(StorageOp::put_likes_last(&frames)));
        }
        // The broadcasts are encoded once, for every connection ready all tick with
        // nothing of its own. A connection with events of its own (an ack, a pong, its
        // Welcome) gets them and the broadcasts in one frame while the broadcasts are
        // small (`SHARED_BATCH_COPY_BYTES_MAX`); past that its own events go first in a
        // frame of their own: a viewer's ack beside a host's burst of large parts must
        // not copy the burst. A connection with its own actions (numbered among the
        // broadcast's: they go where their number puts them), with a `GoAway` (after
        // which its client stops reading, so it goes last), or that said Hello this tick
        // (its part of the broadcasts starts there) gets one batch of its own. Batches
        // alike share one encoding too (only the last few are compared, so a tick where
        // every connection has something of its own stays linear).
        let shared = std::mem::take(&mut self.shared);
        let (shared_frames, copied) = encode_shared(now_ms, &shared);
        let mut everyone: Vec<ConnectionId> = Vec::new();
        let mut groups: Vec<(Vec<Event>, Vec<ConnectionId>)> = Vec::new();
        for (&connection, conn) in self.connections.iter_mut() {
            if conn.remote.is_some() {
                continue;
            }
            let from = if conn.ready {
                std::mem::take(&mut conn.shared_from)
            } else {
                conn.shared_from = 0;
                shared.len()
            };
            let own = std::mem::take(&mut conn.outbox);
            let own_gaps = conn
                .outbox_dropped
                .take()
                .map(LeftOut::gap)
                .into_iter()
                .collect();
            match tick_share(&shared, copied, from, own, own_gaps, conn.hello_seq) {
                TickShare::Own { own, shared } => {
                    if !own.is_empty() {
                        push_alike(&mut groups, own, connection);
                    }
                    if shared {
                        everyone.push(connection);
                    }
                }
                TickShare::Apart(events) => push_alike(&mut groups, events, connection),
            }
        }
        let mut frames_sent: u64 = 0;
        let mut send = |frames: Vec<Vec<u8>>, connections: Vec<ConnectionId>| {
            for frame in frames {
                frames_sent += connections.len() as u64;
                self.stats.frames_out += connections.len() as u64;
                self.stats.bytes_out += (frame.len() * connections.len()) as u64;
                let connections = connections.clone();
                self.outputs.push_back(Output::Send { connections, frame });
            }
        };
        // Each connection's own batch before the broadcasts' shared encoding. One frame
        // per batch, unless that would pass SERVER_FRAME_BYTES_MAX (clients refuse it).
        for (events, connections) in groups {
            send(ServerFrame::batches(now_ms, events), connections);
        }
        if !everyone.is_empty() {
            send(shared_frames, everyone);
        }
        let sharded = self.shards.is_sharded();
        self.pacing.flushed(now_ms, frames_sent, sharded);
        self.flush_shards(now_ms, changed);
        if !self.score_notices.is_empty() {
            self.schedule_tick(now_ms); // the rest at the next flushes
        }
    }

    /// `broadcast` without scheduling (we are flushing now). Past `OUTBOX_EVENTS_MAX` in
    /// a tick an event is left out, as a full outbox left it out before broadcasts were
    /// shared: more than a viewer could read in a tick; an action left out is told as a
    /// `Gap` at the flush.
    pub(crate) fn broadcast_now(&mut self, event: Event) {
        if self.shards.is_sharded() {
            self.shards.broadcast.push(event.clone());
        }
        if self.ready_local == 0 {
            return; // nobody here to tell (a big room's viewers are on its shards)
        }
        if self.shared.len() >= OUTBOX_EVENTS_MAX {
            if let Event::Action(action) = &event {
                self.shared_dropped = Some(LeftOut::add(self.shared_dropped, action.seq));
            }
            self.stats.dropped += 1;
            return;
        }
        self.shared.push(event);
    }

    /// The meta record, and the kinds of the numbers it counts, when they changed.
    pub(crate) fn flush_meta(&mut self) {
        let kinds = self.ring.take_unstored_kinds();
        self.outputs.extend(kinds.into_iter().map(Output::Store));
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

/// The tick's broadcasts encoded once (no frame when there are none), and whether they are
/// small enough to copy into a batch with a connection's own events
/// (`SHARED_BATCH_COPY_BYTES_MAX`): the `copied` of `tick_share`.
pub(crate) fn encode_shared(now_ms: u64, shared: &[Event]) -> (Vec<Vec<u8>>, bool) {
    if shared.is_empty() {
        return (Vec::new(), false);
    }
    let frames = ServerFrame::batches(now_ms, shared.to_vec());
    let bytes: usize = frames.iter().map(Vec::len).sum();
    (frames, bytes <= SHARED_BATCH_COPY_BYTES_MAX)
}

/// One connection's part of a tick's output, by the rule `Room::flush` states (a shard's
/// `flush_sockets` keeps it too).
pub(crate) enum TickShare {
    /// Its own events (none, perhaps) in a batch of their own, then the tick's one shared
    /// encoding of the broadcasts when `shared`.
    Own { own: Vec<Event>, shared: bool },
    /// One batch of its own, the broadcasts from its start copied in.
    Apart(Vec<Event>),
}

/// What a connection gets of a tick: `shared` the tick's broadcasts, `copied` whether they
/// are small enough to copy into a batch with its own events
/// (`SHARED_BATCH_COPY_BYTES_MAX`), `from` where its part of them starts (its Hello),
/// `own` its own events, `own_gaps` the `Gap`s for its own actions left out, `hello_seq` the
/// last action number its Welcome holds.
pub(crate) fn tick_share(
    shared: &[Event],
    copied: bool,
    from: usize,
    own: Vec<Event>,
    own_gaps: Vec<Event>,
    hello_seq: u64,
) -> TickShare {
    let tail = &shared[from..];
    let apart = own
        .iter()
        .any(|e| matches!(e, Event::Action(_) | Event::GoAway { .. }))
        || !own_gaps.is_empty()
        || (from > 0 && !tail.is_empty())
        || (copied && from == 0 && !own.is_empty());
    if !apart {
        let shared = from == 0 && !shared.is_empty();
        return TickShare::Own { own, shared };
    }
    let (goaway, own): (Vec<Event>, Vec<Event>) = own
        .into_iter()
        .partition(|e| matches!(e, Event::GoAway { .. }));
    let (actions, mut events): (Vec<Event>, Vec<Event>) = own.into_iter().partition(is_action);
    // A Gap for actions left out before this connection's Hello is false: its Welcome
    // holds them.
    let tail: Vec<Event> = tail
        .iter()
        .filter_map(|event| match *event {
            Event::Gap {
                missed_after,
                resumed_from,
            } if from > 0 => (resumed_from > hello_seq.saturating_add(1)).then_some(Event::Gap {
                missed_after: missed_after.max(hello_seq),
                resumed_from,
            }),
            _ => Some(event.clone()),
        })
        .collect();
    events.extend(merge_actions(&tail, actions));
    events.extend(own_gaps);
    events.extend(goaway);
    TickShare::Apart(events)
}

/// Adds a connection's batch to the tick's: to the group of an alike batch among the
/// last few, or as a group of its own.
fn push_alike(
    groups: &mut Vec<(Vec<Event>, Vec<ConnectionId>)>,
    events: Vec<Event>,
    connection: ConnectionId,
) {
    let recent = groups.iter_mut().rev().take(SHARED_BATCH_GROUPS_COMPARED);
    match recent.into_iter().find(|(e, _)| *e == events) {
        Some((_, connections)) => connections.push(connection),
        None => groups.push((events, vec![connection])),
    }
}

/// How many events a connection's outbox may hold in one tick before `event` is left out:
/// `OUTBOX_EVENTS_MAX`, and for the answers to the viewer's own frames (`Ack`, `Error`)
/// `OUTBOX_ANSWERS_PAST_MAX` more, so a sender in a busy room gets its answer rather than
/// a `timeout`. The room's connections and a shard's keep the same rule.
pub(crate) fn outbox_cap(event: &Event) -> usize {
    match event {
        Event::Ack { .. } | Event::Error { .. } => OUTBOX_EVENTS_MAX + OUTBOX_ANSWERS_PAST_MAX,
        _ => OUTBOX_EVENTS_MAX,
    }
}

/// A run of actions left out of what a connection gets (past a bound), first and last
/// seq: told to it as a `Gap`. The room keeps one per connection and one for its
/// broadcasts; a shard a few per connection (`OWN_GAPS_PER_FLUSH_MAX`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LeftOut {
    pub first: u64,
    pub last: u64,
}

impl LeftOut {
    /// `run` with the action `seq` left out too (runs here only grow by later actions).
    pub(crate) fn add(run: Option<LeftOut>, seq: u64) -> LeftOut {
        let one = LeftOut {
            first: seq,
            last: seq,
        };
        run.map_or(one, |run| run.cover(one))
    }

    /// The run a `Gap` names, if it names any action.
    pub(crate) fn of_gap(event: &Event) -> Option<LeftOut> {
        match *event {
            Event::Gap {
                missed_after,
                resumed_from,
            } if resumed_from > missed_after.saturating_add(1) => Some(LeftOut {
                first: missed_after + 1,
                last: resumed_from - 1,
            }),
            _ => None,
        }
    }

    /// Whether `other` overlaps this run or follows it at once.
    pub(crate) fn touches(self, other: LeftOut) -> bool {
        other.first <= self.last.saturating_add(1) && other.last >= self.first
    }

    /// The smallest run over both.
    pub(crate) fn cover(self, other: LeftOut) -> LeftOut {
        LeftOut {
            first: self.first.min(other.first),
            last: self.last.max(other.last),
        }
    }

    /// The `Gap` that tells it.
    pub(crate) fn gap(self) -> Event {
        // Saturating: a shard's numbers come from a batch that crossed a network.
        Event::Gap {
            missed_after: self.first.saturating_sub(1),
            resumed_from: self.last.saturating_add(1),
        }
    }
}

pub(crate) fn is_action(event: &Event) -> bool {
    matches!(event, Event::Action(_))
}

/// The room's and a shard's rule for a connection with actions of its own: `shared` with
/// `own` (actions for one connection, numbered among the room's) each put
/// before the first shared action numbered after it, or the first `Gap` resuming after
/// it, so the connection gets every action in order and each `Gap` before what follows it.
pub(crate) fn merge_actions(shared: &[Event], mut own: Vec<Event>) -> Vec<Event> {
    debug_assert!(own.iter().all(|e| matches!(e, Event::Action(_))));
    own.sort_by_key(Event::action_order);
    let mut own = own.into_iter().peekable();
    let mut merged = Vec::with_capacity(shared.len() + own.len());
    for event in shared {
        if let Some(next_seq) = event.action_order() {
            while let Some(action) = own.next_if(|e| e.action_order() < Some(next_seq)) {
                merged.push(action);
            }
        }
        merged.push(event.clone());
    }
    merged.extend(own);
    merged
}
