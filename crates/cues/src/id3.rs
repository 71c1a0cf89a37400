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

use crate::limits::{ID3_FRAMES_MAX, ID3_TAG_BYTES_MAX};
use crate::text::{self, TextEncoding};
use crate::Error;
use std::fmt;

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

/// Reads a 4-byte syncsafe integer (7 bits per byte, top bit clear).
fn read_syncsafe(bytes: &[u8], offset: usize) -> Result<u32, Error> {
    debug_assert_eq!(bytes.len(), 4);
    bytes.iter().try_fold(0u32, |value, &b| {
        if b & 0x80 != 0 {
            Err(Error::BadSyncsafe { offset })
        } else {
            Ok((value << 7) | u32::from(b))
        }
    })
}

fn write_syncsafe(value: u32) -> [u8; 4] {
    assert!(
        value <= SYNCSAFE_MAX,
        "syncsafe values are 28 bits; limits keep sizes far below"
    );
    [
        (value >> 21) as u8 & 0x7F,
        (value >> 14) as u8 & 0x7F,
        (value >> 7) as u8 & 0x7F,
        value as u8 & 0x7F,
    ]
}

/// Undoes unsynchronisation: drops each `0x00` that follows a `0xFF`.
fn remove_unsynchronisation(stored: &[u8]) -> Vec<u8> {
    let mut plain = Vec::with_capacity(stored.len());
    let mut after_ff = false;
    for &b in stored {
        if after_ff && b == 0 {
            after_ff = false;
            continue;
        }
        plain.push(b);
        after_ff = b == 0xFF;
    }
    plain
}

/// The offset in `stored` of byte `plain_offset` of `remove_unsynchronisation(stored)`
/// (its length maps to `stored.len()`), so errors point into the input.
fn stored_offset(stored: &[u8], plain_offset: usize) -> usize {
    let mut produced = 0;
    let mut after_ff = false;
    for (index, &b) in stored.iter().enumerate() {
        if after_ff && b == 0 {
            after_ff = false;
            continue;
        }
        if produced == plain_offset {
            return index;
        }
        produced += 1;
        after_ff = b == 0xFF;
    }
    stored.len()
}

/// Applies unsynchronisation: a `0x00` after every `0xFF` followed by `0x00` or a byte
/// `>= 0xE0`, and after a final `0xFF` (what follows the data is unknown here).
fn add_unsynchronisation(plain: &[u8]) -> Vec<u8> {
    let mut stored = Vec::with_capacity(plain.len() + plain.len() / 16);
    for (index, &b) in plain.iter().enumerate() {
        stored.push(b);
        if b == 0xFF {
            match plain.get(index + 1) {
                Some(&next) if next != 0 && next < 0xE0 => {}
                _ => stored.push(0),
            }
        }
    }
    stored
}

/// Reads the frames of a tag body (after tag-level unsynchronisation was undone).
/// Offsets in errors are relative to `body`.
fn parse_body(
    body: &[u8],
    version: Id3Version,
    has_extended_header: bool,
    tag_unsynchronised: bool,
) -> Result<Vec<Frame>, Error> {
    let mut pos = if has_extended_header {
        extended_header_len(body, version)?
    } else {
        0
    };
    let mut frames = Vec::new();
    while pos < body.len() {
        // Frame ids never start with 0x00, so a zero byte here starts the padding.
        if body[pos] == 0 {
            break;
        }
        let header = body
            .get(pos..pos + ID3_HEADER_BYTES)
            .ok_or(Error::Truncated {
                what: "ID3 frame header",
                offset: pos,
            })?;
        let id = FrameId::new([header[0], header[1], header[2], header[3]])
            .ok_or(Error::BadFrameId { offset: pos })?;
        let size_bytes = &header[4..8];
        let size = match version {
            Id3Version::V2_3 => {
                u32::from_be_bytes([size_bytes[0], size_bytes[1], size_bytes[2], size_bytes[3]])
            }
            Id3Version::V2_4 => read_syncsafe(size_bytes, pos + 4)?,
        };
        let data_start = pos + ID3_HEADER_BYTES;
        if size as usize > body.len() - data_start {
            return Err(Error::BadSize {
                what: "ID3 frame",
                offset: pos,
                size: u64::from(size),
            });
        }
        if frames.len() == ID3_FRAMES_MAX {
            return Err(Error::TooMany {
                what: "ID3 frames",
                max: ID3_FRAMES_MAX,
            });
        }
        let data_end = data_start + size as usize;
        frames.push(parse_frame(
            id,
            header[9],
            &body[data_start..data_end],
            version,
            tag_unsynchronised,
            pos,
        )?);
        pos = data_end;
    }
    Ok(frames)
}

/// The length of the extended header at the start of `body`, checked to fit.
fn extended_header_len(body: &[u8], version: Id3Version) -> Result<usize, Error> {
    const WHAT: &str = "ID3 extended header";
    let size = body.get(..4).ok_or(Error::Truncated {
        what: WHAT,
        offset: 0,
    })?;
    let (declared, len) = match version {
        // v2.3: the size excludes its own 4 bytes; the rest is at least flags (2) and
        // padding size (4).
        Id3Version::V2_3 => {
            let declared = u32::from_be_bytes([size[0], size[1], size[2], size[3]]);
            (declared, u64::from(declared) + 4)
        }
        // v2.4: a syncsafe size of the whole extended header: size (4), number of flag
        // bytes (1), at least one flag byte.
        Id3Version::V2_4 => {
            let declared = read_syncsafe(size, 0)?;
            (declared, u64::from(declared))
        }
    };
    let len_min = match version {
        Id3Version::V2_3 => 10,
        Id3Version::V2_4 => 6,
    };
    if len < len_min || len > body.len() as u64 {
        return Err(Error::BadSize {
            what: WHAT,
            offset: 0,
            size: u64::from(declared),
        });
    }
    Ok(len as usize)
}

/// Decodes one frame. `data` is the frame's bytes after its 10-byte header, which starts
/// at `header_offset` of the body; offsets in errors are relative to the body.
fn parse_frame(
    id: FrameId,
    format_flags: u8,
    data: &[u8],
    version: Id3Version,
    tag_unsynchronised: bool,
    header_offset: usize,
) -> Result<Frame, Error> {
    let data_offset = header_offset + ID3_HEADER_BYTES;
    let opaque = || {
        Ok(Frame::Opaque {
            id,
            data: data.to_vec(),
        })
    };
    match version {
        Id3Version::V2_3 => {
            let known = V2_3_FRAME_COMPRESSION | V2_3_FRAME_ENCRYPTION | V2_3_FRAME_GROUPING;
            if format_flags & (V2_3_FRAME_COMPRESSION | V2_3_FRAME_ENCRYPTION) != 0
                || format_flags & !known != 0
            {
                return opaque();
            }
            let skip = usize::from(format_flags & V2_3_FRAME_GROUPING != 0);
            let content = data.get(skip..).ok_or(Error::Truncated {
                what: "ID3 frame group id",
                offset: data_offset,
            })?;
            decode_frame(id, content, data_offset + skip)
        }
        Id3Version::V2_4 => {
            let known = V2_4_FRAME_GROUPING
                | V2_4_FRAME_COMPRESSION
                | V2_4_FRAME_ENCRYPTION
                | V2_4_FRAME_UNSYNCHRONISATION
                | V2_4_FRAME_DATA_LENGTH;
            if format_flags & (V2_4_FRAME_COMPRESSION | V2_4_FRAME_ENCRYPTION) != 0
                || format_flags & !known != 0
            {
                return opaque();
            }
            // Additions follow the header in flag order: group id, data length indicator.
            let mut pos = 0;
            if format_flags & V2_4_FRAME_GROUPING != 0 {
                if data.is_empty() {
                    return Err(Error::Truncated {
                        what: "ID3 frame group id",
                        offset: data_offset,
                    });
                }
                pos += 1;
            }
            let declared_len = if format_flags & V2_4_FRAME_DATA_LENGTH != 0 {
                let bytes = data.get(pos..pos + 4).ok_or(Error::Truncated {
                    what: "ID3 data length indicator",
                    offset: data_offset + pos,
                })?;
                let declared = read_syncsafe(bytes, data_offset + pos)?;
                pos += 4;
                Some(declared)
            } else {
                None
            };
            let stored = &data[pos..];
            let content_offset = data_offset + pos;
            let unsynchronised =
                tag_unsynchronised || format_flags & V2_4_FRAME_UNSYNCHRONISATION != 0;
            let plain;
            let content = if unsynchronised {
                plain = remove_unsynchronisation(stored);
                plain.as_slice()
            } else {
                stored
            };
            if let Some(declared) = declared_len {
                if declared as usize != content.len() {
                    return Err(Error::DataLengthMismatch {
                        offset: header_offset,
                        declared,
                        actual: content.len(),
                    });
                }
            }
            if unsynchronised {
                decode_frame(id, content, 0)
                    .map_err(|e| e.map_offset(|o| content_offset + stored_offset(stored, o)))
            } else {
                decode_frame(id, content, content_offset)
            }
        }
    }
}

/// Decodes a frame's content (no header, no additions, no unsynchronisation). `offset`
/// is where `content` starts, for errors.
fn decode_frame(id: FrameId, content: &[u8], offset: usize) -> Result<Frame, Error> {
    if id == FrameId::PRIV {
        let (owner, data) = text::split_terminated(content, TextEncoding::Latin1).ok_or(
            Error::MissingTerminator {
                what: "PRIV owner identifier",
                offset,
            },
        )?;
        return Ok(Frame::Private {
            owner: text::decode(owner, TextEncoding::Latin1, offset)?,
            data: data.to_vec(),
        });
    }
    if id != FrameId::TXXX && !id.is_text() {
        return Ok(Frame::Other {
            id,
            data: content.to_vec(),
        });
    }
    let (&encoding_byte, rest) = content.split_first().ok_or(Error::Truncated {
        what: "ID3 text frame",
        offset,
    })?;
    let encoding = TextEncoding::from_byte(encoding_byte).ok_or(Error::BadTextEncoding {
        offset,
        encoding: encoding_byte,
    })?;
    let text_offset = offset + 1;
    if id.is_text() {
        return Ok(Frame::Text {
            id,
            encoding,
            value: text::decode_values(rest, encoding, text_offset)?,
        });
    }
    let (description, value) =
        text::split_terminated(rest, encoding).ok_or(Error::MissingTerminator {
            what: "TXXX description",
            offset: text_offset,
        })?;
    let value_offset = text_offset + (rest.len() - value.len());
    Ok(Frame::UserText {
        encoding,
        description: text::decode(description, encoding, text_offset)?,
        value: text::decode_values(value, encoding, value_offset)?,
    })
}

fn check_encoding(encoding: TextEncoding, version: Id3Version) -> Result<(), Error> {
    if version == Id3Version::V2_3 && !encoding.in_v2_3() {
        return Err(Error::Unwritable {
            what: "ID3v2.3 text",
            reason: "ID3v2.3 has only ISO-8859-1 and UTF-16 with BOM",
        });
    }
    Ok(())
}

/// Appends one frame: header, additions, content.
fn write_frame(
    frame: &Frame,
    version: Id3Version,
    unsynchronise: bool,
    out: &mut Vec<u8>,
) -> Result<(), Error> {
    let mut content = Vec::new();
    match frame {
        Frame::UserText {
            encoding,
            description,
            value,
        } => {
            check_encoding(*encoding, version)?;
            if description.contains('\0') {
                return Err(Error::Unwritable {
                    what: "TXXX description",
                    reason: "it contains U+0000",
                });
            }
            content.push(encoding.to_byte());
            text::encode(description, *encoding, "TXXX description", &mut content)?;
            text::encode_terminator(*encoding, &mut content);
            text::encode_values(value, *encoding, "TXXX value", &mut content)?;
        }
        Frame::Text {
            id,
            encoding,
            value,
        } => {
            if !id.is_text() {
                return Err(Error::Unwritable {
                    what: "text frame",
                    reason: "its id must start with T and not be TXXX",
                });
            }
            check_encoding(*encoding, version)?;
            content.push(encoding.to_byte());
            text::encode_values(value, *encoding, "text frame value", &mut content)?;
        }
        Frame::Private { owner, data } => {
            if owner.contains('\0') {
                return Err(Error::Unwritable {
                    what: "PRIV owner identifier",
                    reason: "it contains U+0000",
                });
            }
            text::encode(
                owner,
                TextEncoding::Latin1,
                "PRIV owner identifier",
                &mut content,
            )?;
            content.push(0);
            content.extend_from_slice(data);
        }
        Frame::Other { id, data } => {
            if *id == FrameId::TXXX || *id == FrameId::PRIV || id.is_text() {
                return Err(Error::Unwritable {
                    what: "other frame",
                    reason: "TXXX, PRIV and text frames have variants of their own",
                });
            }
            content.extend_from_slice(data);
        }
        Frame::Opaque { .. } => {
            return Err(Error::Unwritable {
                what: "opaque frame",
                reason: "compressed or encrypted frames are not written",
            });
        }
    }
    if content.len() > ID3_TAG_BYTES_MAX {
        return Err(Error::TooLarge {
            what: "ID3 frame",
            bytes: content.len() as u64,
            max_bytes: ID3_TAG_BYTES_MAX,
        });
    }
    let (format_flags, stored) = match version {
        Id3Version::V2_4 if unsynchronise => {
            let unsynchronised = add_unsynchronisation(&content);
            if unsynchronised == content {
                (0, content)
            } else {
                // The data length indicator lets readers size the frame without undoing
                // unsynchronisation first; the spec recommends it with this flag.
                let mut stored = write_syncsafe(content.len() as u32).to_vec();
                stored.extend_from_slice(&unsynchronised);
                (
                    V2_4_FRAME_UNSYNCHRONISATION | V2_4_FRAME_DATA_LENGTH,
                    stored,
                )
            }
        }
        _ => (0, content),
    };
    out.extend_from_slice(&frame.id().as_bytes());
    let size = stored.len() as u32;
    match version {
        Id3Version::V2_3 => out.extend_from_slice(&size.to_be_bytes()),
        Id3Version::V2_4 => out.extend_from_slice(&write_syncsafe(size)),
    }
    out.extend_from_slice(&[0, format_flags]);
    out.extend_from_slice(&stored);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syncsafe_round_trips_and_refuses_top_bits() {
        assert_eq!(write_syncsafe(0x0FFF_FFFF), [0x7F; 4]);
        assert_eq!(write_syncsafe(257), [0, 0, 0x02, 0x01]);
        assert_eq!(read_syncsafe(&[0, 0, 0x02, 0x01], 0), Ok(257));
        assert_eq!(
            read_syncsafe(&[0, 0x80, 0, 0], 9),
            Err(Error::BadSyncsafe { offset: 9 })
        );
    }

    #[test]
    fn unsynchronisation_inserts_only_where_needed() {
        let plain = [0xFF, 0x00, 0xFF, 0xE0, 0xFF, 0x12, 0xFF];
        let stored = add_unsynchronisation(&plain);
        assert_eq!(
            stored,
            [0xFF, 0x00, 0x00, 0xFF, 0x00, 0xE0, 0xFF, 0x12, 0xFF, 0x00]
        );
        assert_eq!(remove_unsynchronisation(&stored), plain);
    }

    #[test]
    fn stored_offsets_skip_inserted_zeros() {
        let stored = [0x41, 0xFF, 0x00, 0x42, 0x43];
        // plain: 41 FF 42 43
        assert_eq!(stored_offset(&stored, 0), 0);
        assert_eq!(stored_offset(&stored, 1), 1);
        assert_eq!(stored_offset(&stored, 2), 3);
        assert_eq!(stored_offset(&stored, 4), 5);
    }

    #[test]
    fn frame_ids_are_upper_case_and_digits() {
        assert!(FrameId::new(*b"TIT2").is_some());
        assert!(FrameId::new(*b"tit2").is_none());
        assert!(FrameId::new(*b"TI \0").is_none());
        assert!(FrameId::new(*b"TIT2").unwrap().is_text());
        assert!(!FrameId::TXXX.is_text());
    }
}
