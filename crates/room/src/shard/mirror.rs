//! The shard's copy of the room's state (parts, recent actions, counters), kept from the
//! room's batches so joins and resumes never reach the room.

use super::*;

/// The shard's copy of the room's state.
#[derive(Debug)]
pub(crate) struct Mirror {
    pub(crate) epoch: u64,
    pub(crate) total_version: u64,
    pub(crate) last_seq: u64,
    pub(crate) likes_total: u64,
    pub(crate) online: u32,
    pub(crate) ended: bool,
    pub(crate) parts: BTreeMap<String, PartState>,
    pub(crate) ring: VecDeque<Action>,
}

impl Mirror {
    pub(crate) fn from_snapshot(snapshot: Snapshot) -> Mirror {
        Mirror {
            epoch: snapshot.epoch,
            total_version: snapshot.total_version,
            last_seq: snapshot.last_seq,
            likes_total: snapshot.likes_total,
            online: snapshot.online,
            ended: snapshot.ended,
            parts: snapshot
                .parts
                .into_iter()
                .map(|(name, version, value)| (name, PartState { version, value }))
                .collect(),
            ring: snapshot.ring.into(),
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
            Event::Action(action) if action.seq > self.last_seq => {
                self.last_seq = action.seq;
                if let ActionBody::Removed { seq } = action.body {
                    self.ring.retain(|a| a.seq != seq);
                }
                self.ring.push_back(action.clone());
                while self.ring.len() > RING_EVENTS_MAX {
                    self.ring.pop_front();
                }
            }
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
        let first = newer.ring.front().map_or(newer.last_seq + 1, |a| a.seq);
        if self.last_seq + 1 < first {
            events.push(Event::Gap {
                missed_after: self.last_seq,
                resumed_from: first,
            });
        }
        events.extend(
            newer
                .ring
                .iter()
                .filter(|a| a.seq > self.last_seq)
                .cloned()
                .map(Event::Action),
        );
        events.push(Event::Likes {
            total: newer.likes_total,
        });
        events
    }

    /// `tick_ms`: the tick the viewers here get the room's batches at, about (the room
    /// paces it by its widest shard).
    pub(crate) fn view(&mut self, now_ms: u64, tick_ms: u64) -> RoomView<'_> {
        while self
            .ring
            .front()
            .is_some_and(|a| a.ts_ms + RING_AGE_MS_MAX < now_ms)
        {
            self.ring.pop_front();
        }
        RoomView {
            epoch: self.epoch,
            total_version: self.total_version,
            last_seq: self.last_seq,
            likes_total: self.likes_total,
            tick_ms,
            parts: &self.parts,
            ring: &self.ring,
        }
    }
}
