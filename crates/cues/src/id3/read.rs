//! Reading an ID3 tag body: the extended header, each frame's header and format flags
//! (v2.3 and v2.4), frame-level unsynchronisation, and decoding frame content into
//! [`Frame`] values.

use super::sync::{read_syncsafe, remove_unsynchronisation, stored_offset};
use super::{
    Frame, FrameId, Id3Version, ID3_HEADER_BYTES, V2_3_FRAME_COMPRESSION, V2_3_FRAME_ENCRYPTION,
    V2_3_FRAME_GROUPING, V2_4_FRAME_COMPRESSION, V2_4_FRAME_DATA_LENGTH, V2_4_FRAME_ENCRYPTION,
    V2_4_FRAME_GROUPING, V2_4_FRAME_UNSYNCHRONISATION,
};
use crate::limits::ID3_FRAMES_MAX;
use crate::text::{self, TextEncoding};
use crate::Error;

/// Reads the frames of a tag body (after tag-level unsynchronisation was undone).
/// Offsets in errors are relative to `body`.
pub(super) fn parse_body(
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
