//! Writing one ID3 frame: checking it can be stored in the tag's version, encoding its
//! content, and its header (with v2.4 frame-level unsynchronisation when asked).

use super::sync::{add_unsynchronisation, write_syncsafe};
use super::{Frame, FrameId, Id3Version, V2_4_FRAME_DATA_LENGTH, V2_4_FRAME_UNSYNCHRONISATION};
use crate::limits::ID3_TAG_BYTES_MAX;
use crate::text::{self, TextEncoding};
use crate::Error;

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
pub(super) fn write_frame(
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
