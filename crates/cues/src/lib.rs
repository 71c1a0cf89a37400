//! In-band video cues for Ovation: ID3v2 tags, CMAF `emsg` boxes, and the cue payload.
//!
//! A producer puts a cue into the stream as ID3 timed metadata (HLS TS: a PES stream of
//! type 0x15; fMP4/CMAF: an `emsg` box of scheme [`EMSG_SCHEME_ID3`] whose message is an
//! ID3v2.4 tag). When the frame carrying it plays, the player reads the cue and opens the
//! interaction it names; the interaction's content comes over the socket.
//!
//! # What it reads and writes
//! - [`Tag`]: ID3v2.3 and v2.4 tags — header, syncsafe sizes, extended header (skipped),
//!   padding, v2.4 footer, unsynchronisation (tag-level in both, frame-level with the data
//!   length indicator in v2.4); frames `TXXX` ([`Frame::UserText`]), `PRIV`
//!   ([`Frame::Private`]), other `T***` ([`Frame::Text`]) in all four text encodings
//!   ([`TextEncoding`]), and anything else kept as bytes. Extended header CRCs are not
//!   checked; compressed or encrypted frames are kept undecoded ([`Frame::Opaque`]).
//! - [`Emsg`]: `emsg` boxes version 0 and 1 (32-bit size or `largesize`), and
//!   [`scan_emsg`] to find them among the top-level boxes of a segment.
//! - [`Cue`]: the cue payload and its carriage in ID3 and `emsg`.
//!
//! # Cue payload (version 1)
//! Carried as the value of a `TXXX` frame whose description is `ovation`
//! ([`CUE_FRAME_NAME`]); a `PRIV` frame whose owner identifier is `ovation` and whose data
//! is the same bytes is accepted too. The payload is printable ASCII (0x20..=0x7E), at
//! most [`CUE_PAYLOAD_BYTES_MAX`] (1024) bytes:
//!
//! ```text
//! v=1;cue=<cue id>;ref=<kind>:<interaction id>
//! e.g. v=1;cue=q3-open;ref=poll:p3
//! ```
//! - fields are `key=value` separated by `;`, keys `[a-z0-9_-]+`, no key twice;
//! - `v` comes first; readers refuse a version other than 1, so a later version may change
//!   everything after it;
//! - `cue` (1..=64 bytes of `[A-Za-z0-9_.-]`) and `ref` are required; `<kind>` is `poll`,
//!   `quiz`, `product`, `qa` or `custom`; `<interaction id>` is 1..=64 bytes of
//!   `[A-Za-z0-9_.-]`;
//! - readers skip other keys, so version 1 can gain optional fields; this crate writes
//!   exactly the three fields above, in that order.
//!
//! [`Cue::to_id3_bytes`] writes an ID3v2.4 tag with that one `TXXX` frame in ISO-8859-1;
//! [`Cue::to_emsg`] wraps it in a version 1 `emsg` box, as the AOM ID3-in-CMAF
//! specification asks.
//!
//! ```
//! use ovation_cues::{scan_emsg, Cue, InteractionKind};
//!
//! let cue = Cue::new("q3-open", InteractionKind::Poll, "p3")?;
//! assert_eq!(cue.to_payload(), "v=1;cue=q3-open;ref=poll:p3");
//! // Producer: an emsg box for a CMAF segment, at 12.5 s on a 90 kHz timeline.
//! let segment = cue.to_emsg(90_000, 1_125_000, 1).to_bytes()?;
//! // Player: find the emsg boxes of a segment and read their cues.
//! let scan = scan_emsg(&segment);
//! let found = scan.found[0].emsg.as_ref().map_err(Clone::clone)?;
//! assert_eq!(Cue::from_emsg(found)?, cue);
//! # Ok::<(), ovation_cues::Error>(())
//! ```
//!
//! # Invariants
//! - No I/O, no clock, no randomness, no `unsafe`, no dependencies.
//! - Parsing any bytes never panics: bad input is an [`Error`] that names what is wrong and,
//!   where the input has one, the byte offset in the input as given (also inside
//!   unsynchronised data). Every size read from the input is checked against the bytes
//!   present and against a limit in [`limits`] before anything is allocated for it.
//! - What the writers produce, the parsers read back to the same value
//!   ([`Tag::to_bytes`] → [`Tag::parse`], [`Emsg::to_bytes`] → [`Emsg::parse`],
//!   [`Cue::to_payload`] → [`Cue::from_payload`]); values that could not come back the
//!   same (a character outside ISO-8859-1 in a Latin-1 frame, UTF-8 in a v2.3 tag, a NUL
//!   inside a terminated string, a compressed frame) are refused with
//!   [`Error::Unwritable`].
//! - A [`Cue`] always holds a valid id and reference, so its payload always fits.

#![forbid(unsafe_code)]

mod cue;
mod emsg;
mod error;
mod id3;
pub mod limits;
mod text;

pub use cue::{Cue, CueId, InteractionKind, InteractionRef, CUE_FRAME_NAME, CUE_PAYLOAD_VERSION};
pub use emsg::{
    scan_emsg, Emsg, EmsgScan, FoundEmsg, PresentationTime, EMSG_EVENT_DURATION_UNKNOWN,
    EMSG_SCHEME_ID3,
};
pub use error::Error;
pub use id3::{Frame, FrameId, Id3Version, Tag, WriteOptions, ID3_HEADER_BYTES};
pub use limits::CUE_PAYLOAD_BYTES_MAX;
pub use text::TextEncoding;
