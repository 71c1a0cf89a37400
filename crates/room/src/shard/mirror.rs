//! The shard's copy of the room's state (parts, recent actions, counters), kept from the
//! room's batches so joins and resumes never reach the room.

use super::*;

/// The shard's copy of the room's state.
#[derive(Debug)]
pub(crate) struct Mirror {
    pub(crate) epoch: u64,
    pub(crate) total_version: u64,
    pub(crate) likes_total: u64,
    pub(crate) online: u32,
    pub(crate) ended: bool,
    pub(crate) parts: BTreeMap<String, PartState>,
    pub(crate) ring: ActionRing,
}

impl Mirror {
    pub(crate) fn from_snapshot(snapshot: Snapshot) -> Mirror {
        Mirror {
            epoch: snapshot.epoch,
            total_version: snapshot.total_version,
            likes_total: snapshot.likes_total,
            online: snapshot.online,
            ended: snapshot.ended,
            parts: snapshot
                .parts
                .into_iter()
                .map(|(name, version, value)| (name, PartState { version, value }))
                .collect(),
            ring: ActionRing::restored(snapshot.last_seq, snapshot.ring),
        }
    }

    /// Applies one broadcast event (events older than the copy change nothing).
    pub(crate) fn apply(&mut self, event: &Event) {
        match event {
            Event::Part {
                name,
                version,
                value,
            } if self.parts.get(name).is_none_or(|p| p.version < *version) => {
                self.parts.insert(
                    name.clone(),
                    PartState {
                        version: *version,
                        value: value.clone(),
                    },
                );
            }
            Event::Version {
                epoch,
                total_version,
            } if *epoch == self.epoch => {
                self.total_version = self.total_version.max(*total_version);
            }
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
            .iter()
            .filter(|(name, part)| {
                self.parts
                    .get(*name)
                    .is_none_or(|p| p.version < part.version)
            })
            .map(|(name, part)| Event::Part {
                name: name.clone(),
                version: part.version,
                value: part.value.clone(),
            })
            .collect();
        events.push(Event::Version {
            epoch: newer.epoch,
            total_version: newer.total_version,
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
            total_version: self.total_version,
            likes_total: self.likes_total,
            tick_ms,
            parts: &self.parts,
            ring: &self.ring,
        }
    }
}
