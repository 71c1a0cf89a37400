//! ID3v2.3 and ID3v2.4 tags: parse and write.
//!
//! Layout (both versions): a 10-byte header (`ID3`, major version, revision, flags, a
//! syncsafe size), an optional extended header, frames, optional zero padding, and in
//! v2.4 an optional 10-byte footer (`3DI` and the header's other 7 bytes). The header size
//! counts everything after the header and before the footer, as stored.
//!
//! Unsynchronisation (a `0x00` inserted after every `0xFF` that is followed by `0x00` or a
//! byte `>= 0xE0`, so no MPEG sync pattern appears) is undone before frames are read:
//! in v2.3 over the whole tag after the header (the header flag), in v2.4 over each
//! frame's data (the frame's flag, or every frame when the header flag is set).

//!
//! This file holds the types ([`Tag`], [`Frame`], [`FrameId`], [`Id3Version`],
//! [`WriteOptions`]), the flag constants, and the tag header and footer; frames are read
//! in `id3/read.rs`, written in `id3/write.rs`, and syncsafe integers and
//! unsynchronisation are in `id3/sync.rs`.

mod read;
mod sync;
mod write;

use crate::limits::{ID3_FRAMES_MAX, ID3_TAG_BYTES_MAX};
use crate::text::TextEncoding;
use crate::Error;
use read::parse_body;
use std::fmt;
use sync::{
    add_unsynchronisation, read_syncsafe, remove_unsynchronisation, stored_offset, write_syncsafe,
};
use write::write_frame;

/// Bytes of the tag header, of the v2.4 footer, and of a frame header.
pub const ID3_HEADER_BYTES: usize = 10;

// Tag header flags.
const TAG_UNSYNCHRONISATION: u8 = 0x80;
const TAG_EXTENDED_HEADER: u8 = 0x40;
const TAG_EXPERIMENTAL: u8 = 0x20;
const TAG_FOOTER: u8 = 0x10;

// v2.3 frame format flags (`%ijk00000`).
const V2_3_FRAME_COMPRESSION: u8 = 0x80;
const V2_3_FRAME_ENCRYPTION: u8 = 0x40;
const V2_3_FRAME_GROUPING: u8 = 0x20;

// v2.4 frame format flags (`%0h00kmnp`).
const V2_4_FRAME_GROUPING: u8 = 0x40;
const V2_4_FRAME_COMPRESSION: u8 = 0x08;
const V2_4_FRAME_ENCRYPTION: u8 = 0x04;
const V2_4_FRAME_UNSYNCHRONISATION: u8 = 0x02;
const V2_4_FRAME_DATA_LENGTH: u8 = 0x01;

/// Largest value a 4-byte syncsafe integer holds (28 bits).
const SYNCSAFE_MAX: u32 = (1 << 28) - 1;

/// The ID3v2 major versions this crate reads and writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Id3Version {
    /// ID3v2.3.0: plain 32-bit frame sizes, tag-level unsynchronisation only, no footer,
    /// text in ISO-8859-1 or UTF-16 with BOM.
    V2_3,
    /// ID3v2.4.0: syncsafe frame sizes, frame-level unsynchronisation, optional footer,
    /// also UTF-16BE and UTF-8 text. What CMAF `emsg` carriage requires.
    V2_4,
}

impl Id3Version {
    /// The major version byte of the header (3 or 4).
    pub fn major(self) -> u8 {
        match self {
            Id3Version::V2_3 => 3,
            Id3Version::V2_4 => 4,
        }
    }
}

/// A four-character frame id of `[A-Z0-9]`, such as `TXXX`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FrameId([u8; 4]);

impl FrameId {
    /// User-defined text: a description and a value.
    pub const TXXX: FrameId = FrameId(*b"TXXX");
    /// Private data: an owner identifier and binary data.
    pub const PRIV: FrameId = FrameId(*b"PRIV");

    /// The id, or `None` unless all four bytes are `[A-Z0-9]`.
    pub fn new(id: [u8; 4]) -> Option<FrameId> {
        id.iter()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
            .then_some(FrameId(id))
    }

    /// The four bytes of the id.
    pub fn as_bytes(&self) -> [u8; 4] {
        self.0
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        // Invariant: `new` admits only ASCII.
        std::str::from_utf8(&self.0).expect("frame ids are ASCII")
    }

    /// Whether frames with this id are text information frames (`T***` except `TXXX`),
    /// which this crate decodes as [`Frame::Text`].
    pub fn is_text(&self) -> bool {
        self.0[0] == b'T' && *self != FrameId::TXXX
    }
}

impl fmt::Display for FrameId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One frame of a tag.
///
/// The parser accepts text encodings 2 and 3 in v2.3 tags too, since some writers emit
/// them; the writer refuses them there. Values may hold several strings separated by
/// U+0000 (ID3v2.4 multiple values); one trailing terminator is dropped when parsing, so
/// a value written must not end with U+0000. A v2.4 grouping identity byte is dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// `TXXX`: user-defined text.
    UserText {
        encoding: TextEncoding,
        description: String,
        value: String,
    },
    /// A text information frame: `T***` other than `TXXX`.
    Text {
        id: FrameId,
        encoding: TextEncoding,
        value: String,
    },
    /// `PRIV`: an owner identifier (ISO-8859-1, usually a URL or reverse domain name)
    /// and binary data.
    Private { owner: String, data: Vec<u8> },
    /// Any other frame, with its data after unsynchronisation was undone and the frame
    /// header's additions removed.
    Other { id: FrameId, data: Vec<u8> },
    /// A compressed or encrypted frame, or one with format flags its version does not
    /// define: kept as stored after the frame header, not decoded, and not writable.
    Opaque { id: FrameId, data: Vec<u8> },
}

impl Frame {
    /// The frame's id.
    pub fn id(&self) -> FrameId {
        match self {
            Frame::UserText { .. } => FrameId::TXXX,
            Frame::Private { .. } => FrameId::PRIV,
            Frame::Text { id, .. } | Frame::Other { id, .. } | Frame::Opaque { id, .. } => *id,
        }
    }
}

/// An ID3v2 tag: its version and frames in order. Extended header, padding, footer and
/// unsynchronisation are how a tag is stored, not what it says, so parsing drops them and
/// [`WriteOptions`] chooses them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tag {
    pub version: Id3Version,
    pub frames: Vec<Frame>,
}

/// How [`Tag::to_bytes`] stores a tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WriteOptions {
    /// Apply unsynchronisation where the bytes need it (a `0xFF` followed by `0x00` or
    /// `>= 0xE0`, or at the end): the whole tag in v2.3 (header flag), each such frame in
    /// v2.4 (frame flags unsynchronisation + data length indicator).
    pub unsynchronise: bool,
    /// Zero bytes after the last frame.
    pub padding_bytes: usize,
    /// Append a footer (v2.4 only; a tag with a footer has no padding).
    pub footer: bool,
}

impl Tag {
    /// An empty tag.
    pub fn new(version: Id3Version) -> Tag {
        Tag {
            version,
            frames: Vec::new(),
        }
    }

    /// The value of the first `TXXX` frame with this description.
    pub fn user_text(&self, description: &str) -> Option<&str> {
        self.frames.iter().find_map(|frame| match frame {
            Frame::UserText {
                description: d,
                value,
                ..
            } if d == description => Some(value.as_str()),
            _ => None,
        })
    }

    /// The data of the first `PRIV` frame with this owner identifier.
    pub fn private(&self, owner: &str) -> Option<&[u8]> {
        self.frames.iter().find_map(|frame| match frame {
            Frame::Private { owner: o, data } if o == owner => Some(data.as_slice()),
            _ => None,
        })
    }

    /// Parses a tag that fills `bytes` exactly.
    pub fn parse(bytes: &[u8]) -> Result<Tag, Error> {
        let (tag, len) = Tag::parse_prefix(bytes)?;
        if len != bytes.len() {
            return Err(Error::TrailingBytes { offset: len });
        }
        Ok(tag)
    }

    /// Parses the tag at the start of `bytes`; returns it and its length in bytes
    /// (header, body and footer). Bytes after it are not looked at.
    pub fn parse_prefix(bytes: &[u8]) -> Result<(Tag, usize), Error> {
        let header = bytes.get(..ID3_HEADER_BYTES).ok_or(Error::Truncated {
            what: "ID3 header",
            offset: 0,
        })?;
        if &header[..3] != b"ID3" {
            return Err(Error::BadMagic {
                what: "ID3 header",
                offset: 0,
            });
        }
        let version = match header[3] {
            3 => Id3Version::V2_3,
            4 => Id3Version::V2_4,
            major => {
                return Err(Error::UnsupportedVersion {
                    what: "ID3v2",
                    version: major,
                })
            }
        };
        let flags = header[5];
        let defined = match version {
            Id3Version::V2_3 => TAG_UNSYNCHRONISATION | TAG_EXTENDED_HEADER | TAG_EXPERIMENTAL,
            Id3Version::V2_4 => {
                TAG_UNSYNCHRONISATION | TAG_EXTENDED_HEADER | TAG_EXPERIMENTAL | TAG_FOOTER
            }
        };
        if flags & !defined != 0 {
            return Err(Error::UnsupportedFlags {
                what: "ID3 header",
                offset: 5,
                flags,
            });
        }
        let body_len = read_syncsafe(&header[6..10], 6)? as usize;
        let footer_len = if flags & TAG_FOOTER != 0 {
            ID3_HEADER_BYTES
        } else {
            0
        };
        let total = ID3_HEADER_BYTES + body_len + footer_len;
        if total > ID3_TAG_BYTES_MAX {
            return Err(Error::TooLarge {
                what: "ID3 tag",
                bytes: total as u64,
                max_bytes: ID3_TAG_BYTES_MAX,
            });
        }
        let body_end = ID3_HEADER_BYTES + body_len;
        let body = bytes
            .get(ID3_HEADER_BYTES..body_end)
            .ok_or(Error::Truncated {
                what: "ID3 tag",
                offset: 0,
            })?;
        if footer_len > 0 {
            let footer = bytes.get(body_end..total).ok_or(Error::Truncated {
                what: "ID3 footer",
                offset: body_end,
            })?;
            if &footer[..3] != b"3DI" {
                return Err(Error::BadMagic {
                    what: "ID3 footer",
                    offset: body_end,
                });
            }
            if footer[3..] != header[3..] {
                return Err(Error::FooterMismatch { offset: body_end });
            }
        }
        let tag_unsynchronised = flags & TAG_UNSYNCHRONISATION != 0;
        let has_extended_header = flags & TAG_EXTENDED_HEADER != 0;
        let frames = match version {
            // v2.3 unsynchronises everything after the header, frame headers included.
            Id3Version::V2_3 if tag_unsynchronised => {
                let plain = remove_unsynchronisation(body);
                parse_body(&plain, version, has_extended_header, false)
                    .map_err(|e| e.map_offset(|o| ID3_HEADER_BYTES + stored_offset(body, o)))?
            }
            _ => parse_body(body, version, has_extended_header, tag_unsynchronised)
                .map_err(|e| e.map_offset(|o| ID3_HEADER_BYTES + o))?,
        };
        Ok((Tag { version, frames }, total))
    }

    /// Stores the tag. Fails when a frame cannot be written in this version (see
    /// [`Frame`]), or the result would be over [`ID3_TAG_BYTES_MAX`] or
    /// [`ID3_FRAMES_MAX`].
    pub fn to_bytes(&self, options: &WriteOptions) -> Result<Vec<u8>, Error> {
        if options.footer && self.version == Id3Version::V2_3 {
            return Err(Error::Unwritable {
                what: "ID3v2.3 tag",
                reason: "ID3v2.3 has no footer",
            });
        }
        if options.footer && options.padding_bytes > 0 {
            return Err(Error::Unwritable {
                what: "ID3 tag",
                reason: "a tag with a footer has no padding",
            });
        }
        if self.frames.len() > ID3_FRAMES_MAX {
            return Err(Error::TooMany {
                what: "ID3 frames",
                max: ID3_FRAMES_MAX,
            });
        }
        let too_large = |bytes: usize| Error::TooLarge {
            what: "ID3 tag",
            bytes: bytes as u64,
            max_bytes: ID3_TAG_BYTES_MAX,
        };
        let mut body = Vec::new();
        for frame in &self.frames {
            write_frame(frame, self.version, options.unsynchronise, &mut body)?;
            // Checked per frame so a long list of large frames stops early.
            if ID3_HEADER_BYTES + body.len() > ID3_TAG_BYTES_MAX {
                return Err(too_large(ID3_HEADER_BYTES + body.len()));
            }
        }
        let mut flags = 0;
        if self.version == Id3Version::V2_3 && options.unsynchronise {
            let stored = add_unsynchronisation(&body);
            if stored != body {
                body = stored;
                flags |= TAG_UNSYNCHRONISATION;
            }
        }
        let footer_len = if options.footer { ID3_HEADER_BYTES } else { 0 };
        let total =
            (ID3_HEADER_BYTES + body.len() + footer_len).saturating_add(options.padding_bytes);
        if total > ID3_TAG_BYTES_MAX {
            return Err(too_large(total));
        }
        body.resize(body.len() + options.padding_bytes, 0);
        if options.footer {
            flags |= TAG_FOOTER;
        }
        // Version, revision, flags and size: the header and the footer both end with these.
        let size = write_syncsafe(body.len() as u32);
        let header_tail = [
            self.version.major(),
            0,
            flags,
            size[0],
            size[1],
            size[2],
            size[3],
        ];
        let mut out = Vec::with_capacity(total);
        out.extend_from_slice(b"ID3");
        out.extend_from_slice(&header_tail);
        out.extend_from_slice(&body);
        if options.footer {
            out.extend_from_slice(b"3DI");
            out.extend_from_slice(&header_tail);
        }
        assert_eq!(out.len(), total, "tag length as computed");
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_ids_are_upper_case_and_digits() {
        assert!(FrameId::new(*b"TIT2").is_some());
        assert!(FrameId::new(*b"tit2").is_none());
        assert!(FrameId::new(*b"TI \0").is_none());
        assert!(FrameId::new(*b"TIT2").unwrap().is_text());
        assert!(!FrameId::TXXX.is_text());
    }
}
