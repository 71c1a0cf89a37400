//! The shard's copy of the room's state (parts, recent actions, counters), kept from the
//! room's batches so joins and resumes never reach the room.

use super::*;

/// The shard's copy of the room's state.
#[derive(Debug)]
pub(crate) struct Mirror {
    pub(crate) epoch: u64,
    pub(crate) likes_total: u64,
    pub(crate) online: u32,
    pub(crate) ended: bool,
    pub(crate) parts: PartSet,
    pub(crate) ring: ActionRing,
}

impl Mirror {
    pub(crate) fn from_snapshot(snapshot: Snapshot) -> Mirror {
        Mirror {
            epoch: snapshot.epoch,
            likes_total: snapshot.likes_total,
            online: snapshot.online,
            ended: snapshot.ended,
            parts: PartSet::from_snapshot(snapshot.total_version, snapshot.parts),
            ring: ActionRing::restored(snapshot.last_seq, snapshot.ring, Default::default()),
        }
    }

    /// Applies one broadcast event (events older than the copy change nothing).
    pub(crate) fn apply(&mut self, event: &Event) {
        match event {
            Event::Part {
                name,
                version,
                value,
            } => self.parts.apply_part(name, *version, value),
            Event::Version {
                epoch,
                total_version,
            } if *epoch == self.epoch => self.parts.apply_total_version(*total_version),
            Event::Action(action) => self.ring.apply(action),
            Event::Likes { total } => self.likes_total = self.likes_total.max(*total),
            Event::Online { count } => self.online = *count,
            Event::RoomEnded => self.ended = true,
            _ => {}
        }
    }

    /// The events that turn a viewer served from `self` into one served from `newer`.
    pub(crate) fn missed(&self, newer: &Mirror) -> Vec<Event> {
        let mut events: Vec<Event> = newer
            .parts
            .newer_than(|name| self.parts.get(name).map(|p| p.version))
            .collect();
        events.push(Event::Version {
            epoch: newer.epoch,
            total_version: newer.parts.total_version(),
        });
        let cursor = self.ring.last_seq();
        events.extend(newer.ring.gap_after(cursor));
        events.extend(newer.ring.after(cursor).cloned().map(Event::Action));
        events.push(Event::Likes {
            total: newer.likes_total,
        });
        events
    }

    /// `tick_ms`: the tick the viewers here get the room's batches at, about (the room
    /// paces it by its widest shard).
    pub(crate) fn view(&mut self, now_ms: u64, tick_ms: u64) -> RoomView<'_> {
        self.ring.evict_old(now_ms, |_| {});
        RoomView {
            epoch: self.epoch,
            likes_total: self.likes_total,
            tick_ms,
            parts: &self.parts,
            ring: &self.ring,
        }
    }
}
