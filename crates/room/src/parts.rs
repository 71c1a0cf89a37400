//! State parts: named JSON values with versions (the room part, app parts set by staff),
//! validated and stored.

use super::*;

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
        if !is_valid_part_name(&name) {
            return Err(AdminError::InvalidPartName);
        }
        if RESERVED_PARTS.contains(&name.as_str()) {
            return Err(AdminError::ReservedPart);
        }
        check_json(&value, "value", PART_VALUE_BYTES_MAX)?;
        if !self.parts.contains_key(&name) && self.parts.len() >= PARTS_COUNT_MAX {
            return Err(AdminError::TooManyParts);
        }
        Ok(self.put_part(name, value, now_ms))
    }

    pub(crate) fn put_part(&mut self, name: String, value: String, now_ms: u64) -> u64 {
        self.total_version += 1;
        let version = self.total_version;
        self.outputs
            .push_back(Output::Store(StorageOp::put_part(&name, version, &value)));
        self.parts.insert(
            name.clone(),
            PartState {
                version,
                value: value.clone(),
            },
        );
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
                total_version: self.total_version,
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
