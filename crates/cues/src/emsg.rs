//! ISO BMFF / CMAF event message boxes (`emsg`, ISO/IEC 23009-1 5.10.3.3): parse, write,
//! and find them among the top-level boxes of a segment.
//!
//! ```text
//! box header   size u32 | 'emsg' | [largesize u64 when size == 1]   (size 0: to the end)
//! full box     version u8 | flags u24
//! version 0    scheme_id_uri\0 | value\0 | timescale u32 | presentation_time_delta u32
//!              | event_duration u32 | id u32 | message_data
//! version 1    timescale u32 | presentation_time u64 | event_duration u32 | id u32
//!              | scheme_id_uri\0 | value\0 | message_data
//! ```
//! Numbers are big-endian; strings are UTF-8 ending in NUL.

use crate::limits::{EMSG_BOXES_PER_SCAN_MAX, EMSG_BOX_BYTES_MAX, EMSG_STRING_BYTES_MAX};
use crate::Error;

/// The `scheme_id_uri` of `emsg` boxes whose `message_data` is a complete ID3v2.4 tag
/// (AOM "Carriage of ID3 Timed Metadata in CMAF", which asks for version 1 boxes).
pub const EMSG_SCHEME_ID3: &str = "https://aomedia.org/emsg/ID3";
/// `event_duration` of an event without a known duration, as that specification asks.
pub const EMSG_EVENT_DURATION_UNKNOWN: u32 = u32::MAX;

/// When the event starts, in `timescale` units; the variant is the box version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PresentationTime {
    /// Version 0: `presentation_time_delta`, from the earliest presentation time of the
    /// segment that carries the box.
    Delta(u32),
    /// Version 1: `presentation_time`, on the track's media timeline.
    Absolute(u64),
}

/// An event message box.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Emsg {
    /// Identifies the message scheme, e.g. [`EMSG_SCHEME_ID3`].
    pub scheme_id_uri: String,
    /// Scheme-specific value (for the ID3 scheme: a URI for the semantics of `id`).
    pub value: String,
    /// Ticks per second of `time` and `event_duration`.
    pub timescale: u32,
    /// When the event starts; decides the version written.
    pub time: PresentationTime,
    /// In `timescale` ticks; [`EMSG_EVENT_DURATION_UNKNOWN`] when unknown.
    pub event_duration: u32,
    /// Identifies the instance of the message; repeats of the same event share it.
    pub id: u32,
    /// The payload; for [`EMSG_SCHEME_ID3`] an ID3 tag.
    pub message_data: Vec<u8>,
}

/// The parts of a box header that locate the box.
struct BoxHeader {
    box_type: [u8; 4],
    header_len: usize,
    /// Including the header; a size of 0 (to the end of the buffer) is resolved.
    box_len: u64,
}

/// Reads the header of the box at the start of `bytes`; `offset` is where `bytes` starts.
fn read_box_header(bytes: &[u8], offset: usize) -> Result<BoxHeader, Error> {
    let header = bytes.get(..8).ok_or(Error::Truncated {
        what: "box header",
        offset,
    })?;
    let size = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
    let box_type = [header[4], header[5], header[6], header[7]];
    let (header_len, box_len) = match size {
        0 => (8, bytes.len() as u64),
        1 => {
            let large = bytes.get(8..16).ok_or(Error::Truncated {
                what: "box largesize",
                offset: offset + 8,
            })?;
            let mut be = [0; 8];
            be.copy_from_slice(large);
            (16, u64::from_be_bytes(be))
        }
        size => (8, u64::from(size)),
    };
    if box_len < header_len as u64 {
        return Err(Error::BadSize {
            what: "box",
            offset,
            size: box_len,
        });
    }
    Ok(BoxHeader {
        box_type,
        header_len,
        box_len,
    })
}

/// A cursor over a box's bytes; errors name offsets from the start of the box.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, len: usize, what: &'static str) -> Result<&'a [u8], Error> {
        let bytes = self
            .bytes
            .get(self.pos..self.pos + len)
            .ok_or(Error::Truncated {
                what,
                offset: self.pos,
            })?;
        self.pos += len;
        Ok(bytes)
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, Error> {
        let b = self.take(4, what)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self, what: &'static str) -> Result<u64, Error> {
        let mut be = [0; 8];
        be.copy_from_slice(self.take(8, what)?);
        Ok(u64::from_be_bytes(be))
    }

    /// A NUL-terminated UTF-8 string of at most [`EMSG_STRING_BYTES_MAX`] bytes.
    fn string(&mut self, what: &'static str) -> Result<String, Error> {
        let start = self.pos;
        let rest = &self.bytes[start..];
        let window = &rest[..rest.len().min(EMSG_STRING_BYTES_MAX + 1)];
        let Some(len) = window.iter().position(|&b| b == 0) else {
            return Err(if rest.len() > EMSG_STRING_BYTES_MAX {
                let len = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
                Error::TooLarge {
                    what,
                    bytes: len as u64,
                    max_bytes: EMSG_STRING_BYTES_MAX,
                }
            } else {
                Error::MissingTerminator {
                    what,
                    offset: start,
                }
            });
        };
        let text = std::str::from_utf8(&rest[..len]).map_err(|e| Error::BadText {
            offset: start + e.valid_up_to(),
            reason: "invalid UTF-8",
        })?;
        self.pos += len + 1;
        Ok(text.to_owned())
    }
}

impl Emsg {
    /// The box version this event is written with: 0 for [`PresentationTime::Delta`],
    /// 1 for [`PresentationTime::Absolute`].
    pub fn version(&self) -> u8 {
        match self.time {
            PresentationTime::Delta(_) => 0,
            PresentationTime::Absolute(_) => 1,
        }
    }

    /// Parses an `emsg` box that fills `bytes` exactly.
    pub fn parse(bytes: &[u8]) -> Result<Emsg, Error> {
        let (emsg, len) = Emsg::parse_prefix(bytes)?;
        if len != bytes.len() {
            return Err(Error::TrailingBytes { offset: len });
        }
        Ok(emsg)
    }

    /// Parses the `emsg` box at the start of `bytes`; returns it and its length. A box
    /// size of 0 means the box runs to the end of `bytes`.
    pub fn parse_prefix(bytes: &[u8]) -> Result<(Emsg, usize), Error> {
        let header = read_box_header(bytes, 0)?;
        if header.box_type != *b"emsg" {
            return Err(Error::BadMagic {
                what: "emsg box type",
                offset: 4,
            });
        }
        if header.box_len > EMSG_BOX_BYTES_MAX as u64 {
            return Err(Error::TooLarge {
                what: "emsg box",
                bytes: header.box_len,
                max_bytes: EMSG_BOX_BYTES_MAX,
            });
        }
        let box_len = header.box_len as usize;
        let bytes = bytes.get(..box_len).ok_or(Error::Truncated {
            what: "emsg box",
            offset: 0,
        })?;
        Ok((parse_emsg_fields(bytes, header.header_len)?, box_len))
    }

    /// Writes the box, version 0 or 1 after [`Emsg::time`], with a 32-bit size (the box
    /// limit keeps `largesize` unnecessary; it is only read).
    pub fn to_bytes(&self) -> Result<Vec<u8>, Error> {
        for (text, what) in [
            (&self.scheme_id_uri, "emsg scheme_id_uri"),
            (&self.value, "emsg value"),
        ] {
            if text.contains('\0') {
                return Err(Error::Unwritable {
                    what,
                    reason: "it contains U+0000",
                });
            }
            if text.len() > EMSG_STRING_BYTES_MAX {
                return Err(Error::TooLarge {
                    what,
                    bytes: text.len() as u64,
                    max_bytes: EMSG_STRING_BYTES_MAX,
                });
            }
        }
        let numbers_len = match self.time {
            PresentationTime::Delta(_) => 16,
            PresentationTime::Absolute(_) => 20,
        };
        let box_len = (8 + 4 + numbers_len + self.scheme_id_uri.len() + 1 + self.value.len() + 1)
            .saturating_add(self.message_data.len());
        if box_len > EMSG_BOX_BYTES_MAX {
            return Err(Error::TooLarge {
                what: "emsg box",
                bytes: box_len as u64,
                max_bytes: EMSG_BOX_BYTES_MAX,
            });
        }
        let mut out = Vec::with_capacity(box_len);
        out.extend_from_slice(&(box_len as u32).to_be_bytes());
        out.extend_from_slice(b"emsg");
        out.extend_from_slice(&[self.version(), 0, 0, 0]);
        let strings = |out: &mut Vec<u8>| {
            out.extend_from_slice(self.scheme_id_uri.as_bytes());
            out.push(0);
            out.extend_from_slice(self.value.as_bytes());
            out.push(0);
        };
        match self.time {
            PresentationTime::Delta(delta) => {
                strings(&mut out);
                out.extend_from_slice(&self.timescale.to_be_bytes());
                out.extend_from_slice(&delta.to_be_bytes());
                out.extend_from_slice(&self.event_duration.to_be_bytes());
                out.extend_from_slice(&self.id.to_be_bytes());
            }
            PresentationTime::Absolute(time) => {
                out.extend_from_slice(&self.timescale.to_be_bytes());
                out.extend_from_slice(&time.to_be_bytes());
                out.extend_from_slice(&self.event_duration.to_be_bytes());
                out.extend_from_slice(&self.id.to_be_bytes());
                strings(&mut out);
            }
        }
        out.extend_from_slice(&self.message_data);
        assert_eq!(out.len(), box_len, "box length as computed");
        Ok(out)
    }
}

/// Reads the fields of a whole `emsg` box (`bytes` is the box, header included).
fn parse_emsg_fields(bytes: &[u8], header_len: usize) -> Result<Emsg, Error> {
    let mut reader = Reader {
        bytes,
        pos: header_len,
    };
    let version_and_flags = reader.take(4, "emsg version and flags")?;
    // Flags are 0 in every published version; they carry nothing to check.
    let version = version_and_flags[0];
    let (scheme_id_uri, value, timescale, time, event_duration, id) = match version {
        0 => {
            let scheme_id_uri = reader.string("emsg scheme_id_uri")?;
            let value = reader.string("emsg value")?;
            let timescale = reader.u32("emsg timescale")?;
            let delta = reader.u32("emsg presentation_time_delta")?;
            let event_duration = reader.u32("emsg event_duration")?;
            let id = reader.u32("emsg id")?;
            (
                scheme_id_uri,
                value,
                timescale,
                PresentationTime::Delta(delta),
                event_duration,
                id,
            )
        }
        1 => {
            let timescale = reader.u32("emsg timescale")?;
            let time = reader.u64("emsg presentation_time")?;
            let event_duration = reader.u32("emsg event_duration")?;
            let id = reader.u32("emsg id")?;
            let scheme_id_uri = reader.string("emsg scheme_id_uri")?;
            let value = reader.string("emsg value")?;
            (
                scheme_id_uri,
                value,
                timescale,
                PresentationTime::Absolute(time),
                event_duration,
                id,
            )
        }
        version => {
            return Err(Error::UnsupportedVersion {
                what: "emsg",
                version,
            })
        }
    };
    Ok(Emsg {
        scheme_id_uri,
        value,
        timescale,
        time,
        event_duration,
        id,
        message_data: bytes[reader.pos..].to_vec(),
    })
}

/// One `emsg` box found by [`scan_emsg`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundEmsg {
    /// Where the box starts in the scanned buffer.
    pub offset: usize,
    /// The box, or why it could not be read (offsets from the start of the buffer).
    pub emsg: Result<Emsg, Error>,
}

/// What [`scan_emsg`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmsgScan {
    /// Every complete `emsg` box, in order.
    pub found: Vec<FoundEmsg>,
    /// Why the scan stopped before the end of the buffer (a truncated or impossible box
    /// header, a box running past the end, or more than [`EMSG_BOXES_PER_SCAN_MAX`]
    /// `emsg` boxes); `None` when every box was walked.
    pub stopped: Option<Error>,
}

/// Walks the top-level boxes of `bytes` (such as a CMAF/fMP4 segment: `styp`, `prft`,
/// `emsg`, `moof`, `mdat`) and reads each `emsg` box. Other boxes are skipped by their
/// size without being read. A bad `emsg` box is reported in place and the walk goes on;
/// a box header that cannot be read, or a box that runs past the end, stops the walk.
pub fn scan_emsg(bytes: &[u8]) -> EmsgScan {
    let mut found = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() {
        let header = match read_box_header(&bytes[pos..], pos) {
            Ok(header) => header,
            Err(error) => {
                return EmsgScan {
                    found,
                    stopped: Some(error),
                }
            }
        };
        let is_emsg = header.box_type == *b"emsg";
        let remaining = bytes.len() - pos;
        if header.box_len > remaining as u64 {
            let what = if is_emsg { "emsg box" } else { "box" };
            return EmsgScan {
                found,
                stopped: Some(Error::Truncated { what, offset: pos }),
            };
        }
        let box_len = header.box_len as usize;
        if is_emsg {
            if found.len() == EMSG_BOXES_PER_SCAN_MAX {
                return EmsgScan {
                    found,
                    stopped: Some(Error::TooMany {
                        what: "emsg boxes",
                        max: EMSG_BOXES_PER_SCAN_MAX,
                    }),
                };
            }
            let emsg = if box_len > EMSG_BOX_BYTES_MAX {
                Err(Error::TooLarge {
                    what: "emsg box",
                    bytes: box_len as u64,
                    max_bytes: EMSG_BOX_BYTES_MAX,
                })
            } else {
                parse_emsg_fields(&bytes[pos..pos + box_len], header.header_len)
                    .map_err(|e| e.map_offset(|o| pos + o))
            };
            found.push(FoundEmsg { offset: pos, emsg });
        }
        pos += box_len;
    }
    EmsgScan {
        found,
        stopped: None,
    }
}
