use crate::limits::ROOM_ID_BYTES_MAX;
use core::fmt;

/// Regions a room can live in. The room id's prefix names one; the edge uses it as the
/// Durable Object location hint so the room lives near its host.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Region {
    Wnam,
    Enam,
    Sam,
    Weur,
    Eeur,
    Apac,
    Oc,
    Afr,
    Me,
}

impl Region {
    pub const ALL: [Region; 9] = [
        Region::Wnam,
        Region::Enam,
        Region::Sam,
        Region::Weur,
        Region::Eeur,
        Region::Apac,
        Region::Oc,
        Region::Afr,
        Region::Me,
    ];

    /// The platform's location hint string (identical to the prefix).
    pub const fn as_str(self) -> &'static str {
        match self {
            Region::Wnam => "wnam",
            Region::Enam => "enam",
            Region::Sam => "sam",
            Region::Weur => "weur",
            Region::Eeur => "eeur",
            Region::Apac => "apac",
            Region::Oc => "oc",
            Region::Afr => "afr",
            Region::Me => "me",
        }
    }
}

/// A validated room id: `<region>-<name>`, name of `[a-z0-9-]`, 1..=ROOM_ID_BYTES_MAX bytes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RoomId {
    id: String,
    region: Region,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RoomIdError {
    TooLong,
    MissingRegion,
    UnknownRegion,
    BadCharacter,
    EmptyName,
}

impl RoomIdError {
    /// The message, without `core::fmt` (the wasm SDK avoids it for size).
    pub fn message(&self) -> &'static str {
        match self {
            RoomIdError::TooLong => "room id is longer than 64 bytes",
            RoomIdError::MissingRegion => "room id must start with a region prefix like `weur-`",
            RoomIdError::UnknownRegion => {
                "room id region prefix is not one of wnam, enam, sam, weur, eeur, apac, oc, afr, me"
            }
            RoomIdError::BadCharacter => "room id may contain only a-z, 0-9 and '-'",
            RoomIdError::EmptyName => "room id has nothing after its region prefix",
        }
    }
}

impl fmt::Display for RoomIdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

impl RoomId {
    pub fn parse(id: &str) -> Result<RoomId, RoomIdError> {
        if id.len() > ROOM_ID_BYTES_MAX {
            return Err(RoomIdError::TooLong);
        }
        let (prefix, name) = id.split_once('-').ok_or(RoomIdError::MissingRegion)?;
        let region = Region::ALL
            .into_iter()
            .find(|r| r.as_str() == prefix)
            .ok_or(RoomIdError::UnknownRegion)?;
        if name.is_empty() {
            return Err(RoomIdError::EmptyName);
        }
        if !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(RoomIdError::BadCharacter);
        }
        Ok(RoomId {
            id: id.to_owned(),
            region,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.id
    }

    pub fn region(&self) -> Region {
        self.region
    }
}

impl fmt::Display for RoomId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.id)
    }
}
