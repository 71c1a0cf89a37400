//! State parts: named JSON values with versions (the room part, app parts set by staff),
//! validated and stored.

use super::*;

/// Named JSON values, each at the room's total version when it was last set: the room's
/// own parts and a shard's copy of them are both one of these.
///
/// Invariants: every part's version is at most `total_version`, and no two parts share
/// one (each set takes the next total version); versions only grow.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct PartSet {
    total_version: u64,
    parts: BTreeMap<String, PartState>,
}

impl PartSet {
    /// Parts read back from storage (or a snapshot): none may be newer than the total.
    pub(crate) fn restored(
        total_version: u64,
        parts: impl IntoIterator<Item = (String, u64, String)>,
    ) -> PartSet {
        let parts: BTreeMap<String, PartState> = parts
            .into_iter()
            .map(|(name, version, value)| (name, PartState { version, value }))
            .collect();
        assert!(
            parts.values().all(|p| p.version <= total_version),
            "part newer than the room"
        );
        PartSet {
            total_version,
            parts,
        }
    }

    /// A shard's copy from the room's snapshot (input from the network: a part newer than
    /// the snapshot's total raises the total, as `apply_part` does, rather than panic).
    pub(crate) fn from_snapshot(
        total_version: u64,
        parts: impl IntoIterator<Item = (String, u64, String)>,
    ) -> PartSet {
        let mut set = PartSet {
            total_version,
            parts: BTreeMap::new(),
        };
        for (name, version, value) in parts {
            set.apply_part(&name, version, &value);
        }
        set
    }

    pub(crate) fn total_version(&self) -> u64 {
        self.total_version
    }

    pub(crate) fn get(&self, name: &str) -> Option<&PartState> {
        self.parts.get(name)
    }

    pub(crate) fn len(&self) -> usize {
        self.parts.len()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&String, &PartState)> + '_ {
        self.parts.iter()
    }

    /// Sets a part at the next total version, which it returns.
    pub(crate) fn put(&mut self, name: String, value: String) -> u64 {
        self.total_version += 1;
        let version = self.total_version;
        self.parts.insert(name, PartState { version, value });
        version
    }

    /// A shard's copy: a part event of the room's batch (an older version changes nothing).
    pub(crate) fn apply_part(&mut self, name: &str, version: u64, value: &str) {
        if self.parts.get(name).is_none_or(|p| p.version < version) {
            let value = value.to_owned();
            self.parts
                .insert(name.to_owned(), PartState { version, value });
            self.total_version = self.total_version.max(version);
        }
    }

    /// A shard's copy: the room's total version (never back).
    pub(crate) fn apply_total_version(&mut self, total_version: u64) {
        self.total_version = self.total_version.max(total_version);
    }

    /// The parts newer than a reader holds (`known`: the version it has of a name), as
    /// the `Part` events that bring it up to date, in name order.
    pub(crate) fn newer_than<'a>(
        &'a self,
        known: impl Fn(&str) -> Option<u64> + 'a,
    ) -> impl Iterator<Item = Event> + 'a {
        self.parts
            .iter()
            .filter(move |(name, part)| known(name).is_none_or(|v| v < part.version))
            .map(|(name, part)| Event::Part {
                name: name.clone(),
                version: part.version,
                value: part.value.clone(),
            })
    }
}

/// A part name no part may have: `__…`, which the SDK's parts object (a JavaScript object)
/// would take for its internals (`__proto__` replaced its prototype, so a moderator's part
/// named so stood in for every reserved part the room did not hold yet, unchecked).
/// `set_part` refuses such a name, and a room restored with one stored by an older build
/// deletes it.
pub(crate) fn is_javascript_internal_name(name: &str) -> bool {
    name.starts_with("__")
}

pub(crate) fn check_json(
    text: &str,
    field: &'static str,
    bytes_max: usize,
) -> Result<(), AdminError> {
    if text.len() > bytes_max {
        return Err(AdminError::TooLong { field, bytes_max });
    }
    serde_json::from_str::<serde::de::IgnoredAny>(text)
        .map(|_| ())
        .map_err(|_| AdminError::InvalidJson)
}

/// The answer to a viewer's read of a part at one version ([`Room::part_read`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PartRead<'a> {
    /// The version asked for: immutable, cacheable under its URL.
    AtVersion(&'a str),
    /// The part moved on: its newest value, named by its version (never cached under the
    /// URL of the version asked for).
    Newer { version: u64, value: &'a str },
    /// No such part, or a version the room never had (made up, or of a later opening).
    Missing,
}

impl Room {
    /// Part versions (name → version), for `GET …/state`.
    pub fn part_versions(&self) -> impl Iterator<Item = (&str, u64)> {
        self.parts.iter().map(|(n, p)| (n.as_str(), p.version))
    }

    /// A part's value if it is still at `version` (parts are immutable per version).
    pub fn part_at(&self, name: &str, version: u64) -> Option<&str> {
        self.parts
            .get(name)
            .filter(|p| p.version == version)
            .map(|p| p.value.as_str())
    }

    /// A viewer's read of a part at `version` (`GET …/parts/{part}?v=`): that version, or
    /// the newest when the part moved on since (the room keeps only its newest value, and
    /// a part changing faster than a round trip would otherwise never be delivered over
    /// pull), or nothing for a part the room does not hold or a version it never had.
    pub fn part_read(&self, name: &str, version: u64) -> PartRead<'_> {
        match self.parts.get(name) {
            Some(p) if p.version == version => PartRead::AtVersion(&p.value),
            Some(p) if p.version > version => PartRead::Newer {
                version: p.version,
                value: &p.value,
            },
            _ => PartRead::Missing,
        }
    }

    pub fn part(&self, name: &str) -> Option<(u64, &str)> {
        self.parts.get(name).map(|p| (p.version, p.value.as_str()))
    }

    pub(crate) fn set_part(
        &mut self,
        name: String,
        value: String,
        now_ms: u64,
    ) -> Result<u64, AdminError> {
        if self.status == RoomStatus::Ended {
            return Err(AdminError::RoomEnded);
        }
        if !is_valid_part_name(&name) || is_javascript_internal_name(&name) {
            return Err(AdminError::InvalidPartName);
        }
        if RESERVED_PARTS.contains(&name.as_str()) {
            return Err(AdminError::ReservedPart);
        }
        check_json(&value, "value", PART_VALUE_BYTES_MAX)?;
        if self.parts.get(&name).is_none() && self.parts.len() >= PARTS_COUNT_MAX {
            return Err(AdminError::TooManyParts);
        }
        Ok(self.put_part(name, value, now_ms))
    }

    pub(crate) fn put_part(&mut self, name: String, value: String, now_ms: u64) -> u64 {
        let version = self.parts.put(name.clone(), value.clone());
        self.outputs
            .push_back(Output::Store(StorageOp::put_part(&name, version, &value)));
        // The part record replaces the previous version in storage, so the meta that
        // counts it is written with it: a crash never leaves a part newer than the room.
        self.meta_dirty = true;
        self.flush_meta();
        self.broadcast(
            Event::Part {
                name,
                version,
                value,
            },
            now_ms,
        );
        self.broadcast(
            Event::Version {
                epoch: self.epoch,
                total_version: version,
            },
            now_ms,
        );
        version
    }

    pub(crate) fn update_room_part(&mut self) {
        let value = serde_json::json!({
            "id": self.info.room_id,
            "title": self.info.title,
            "host": self.info.host_user,
            "status": self.status.as_str(),
            "expected_audience": self.info.expected_audience,
            // The gift catalog (sku → price in minor units): clients show the prices the
            // room charges, from the one place they are set.
            "gifts": self.gifts.catalog(),
        })
        .to_string();
        if self
            .parts
            .get("room")
            .is_some_and(|part| part.value == value)
        {
            return; // unchanged (a woken room sets its catalog again)
        }
        let now_ms = self.created_ms;
        self.put_part("room".into(), value, now_ms);
    }
}
