//! What a Welcome is built from (`RoomView`): the room's own state or a shard's copy of it.

use super::*;

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PartState {
    pub version: u64,
    pub value: String,
}

/// What a Welcome is built from: the room's own state, or a shard's copy of it.
pub(crate) struct RoomView<'a> {
    pub epoch: u64,
    pub likes_total: u64,
    /// The tick the serving object batches at now (`limits::room_tick_ms_for`).
    pub tick_ms: u64,
    pub parts: &'a PartSet,
    /// Already trimmed to the ring's age limit.
    pub ring: &'a ring::ActionRing,
}

impl RoomView<'_> {
    /// The events that answer a Hello: Welcome, the parts the client lacks, the version,
    /// on a resume the missed actions (after a `Gap` if some are gone), the like total.
    pub(crate) fn welcome(
        &self,
        connection: ConnectionId,
        identity: &Identity,
        resume: Option<&ovation_proto::Resume>,
    ) -> Vec<Event> {
        let resume = resume.filter(|r| r.epoch == self.epoch);
        let mut events = vec![Event::Welcome(Welcome {
            protocol_version: PROTOCOL_VERSION,
            connection_id: connection,
            user: identity.user.clone(),
            role: identity.role,
            epoch: self.epoch,
            total_version: self.parts.total_version(),
            action_cursor: self.ring.last_seq(),
            resumed: resume.is_some(),
            tick_ms: u32::try_from(self.tick_ms).expect("ticks are short"),
        })];
        let known: HashMap<&str, u64> = resume
            .iter()
            .flat_map(|r| r.part_versions.iter().map(|p| (p.name.as_str(), p.version)))
            .collect();
        events.extend(self.parts.newer_than(|name| known.get(name).copied()));
        events.push(Event::Version {
            epoch: self.epoch,
            total_version: self.parts.total_version(),
        });
        if let Some(resume) = resume {
            let cursor = resume.action_cursor.min(self.ring.last_seq());
            events.extend(self.ring.gap_after(cursor));
            events.extend(self.ring.after(cursor).cloned().map(Event::Action));
        }
        events.push(Event::Likes {
            total: self.likes_total,
        });
        events
    }
}
