//! The one error type of the library: every variant names what is wrong and, where the
//! input has a position for it, where (byte offset into the segment as given, or TS packet
//! index).

use std::fmt;

/// Why a segment, init segment or playlist could not be read or rewritten.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Error {
    /// `what` is `bytes` bytes long, over the limit of `max_bytes`.
    TooLarge {
        what: &'static str,
        bytes: u64,
        max_bytes: usize,
    },
    /// More than `max` of `what`.
    TooMany { what: &'static str, max: usize },
    /// The bytes are neither an MPEG-TS segment nor an ISO BMFF (fMP4) segment.
    UnknownFormat,
    /// An MPEG-TS segment is not a whole number of 188-byte packets.
    NotWholePackets { bytes: usize },
    /// The TS packet at `offset` does not start with the sync byte 0x47.
    BadSyncByte { offset: usize },
    /// A TS packet's adaptation field runs past the packet.
    BadAdaptationField { offset: usize },
    /// The segment has no PAT (PID 0) section.
    NoPat,
    /// The PAT lists no program (other than the network PID).
    NoProgram,
    /// No PMT section on the PID the PAT names.
    NoPmt { pid: u16 },
    /// A PSI section (`what`: PAT or PMT) in the TS packet at `offset` is malformed.
    BadSection {
        what: &'static str,
        offset: usize,
        reason: &'static str,
    },
    /// A PSI section's CRC-32/MPEG-2 is wrong.
    BadCrc {
        what: &'static str,
        offset: usize,
        stored: u32,
        computed: u32,
    },
    /// A PSI section does not fit in one TS packet (this tool rewrites single-packet
    /// sections only, which is what HLS packagers write).
    SectionSpansPackets { what: &'static str, offset: usize },
    /// The PMT with the timed-metadata stream added no longer fits in its TS packet.
    PmtFull { offset: usize, bytes: usize },
    /// Every PID that could carry the metadata stream is taken.
    NoFreePid,
    /// The program has no audio or video elementary stream to take times from.
    NoMediaStream,
    /// No PES packet of an audio or video stream carries a PTS.
    NoPts,
    /// A PES packet at `offset` is malformed.
    BadPes { offset: usize, reason: &'static str },
    /// An ISO BMFF box at `offset` is malformed.
    BadBox { offset: usize, reason: &'static str },
    /// A box the tool needs is missing (`what`: e.g. "moov", "moof", "mdhd").
    MissingBox { what: &'static str },
    /// The first `moof` of a segment has no `traf` for the track the times come from.
    NoTrackFragment { track_id: u32 },
    /// A media playlist the tool cannot use.
    BadPlaylist { reason: String },
    /// A media time outside the stream: before 0 or at or after its end.
    TimeOutsideStream { at_s: f64, duration_s: f64 },
    /// A media time that is not a number of seconds in 0..=limit.
    BadTime { at_s: f64 },
    /// A cue that could not be made or read.
    Cue(ovation_cues::Error),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::TooLarge {
                what,
                bytes,
                max_bytes,
            } => write!(
                f,
                "{what} of {bytes} bytes is over the limit of {max_bytes} bytes"
            ),
            Error::TooMany { what, max } => write!(f, "more than {max} {what}"),
            Error::UnknownFormat => write!(
                f,
                "neither an MPEG-TS segment (188-byte packets starting with 0x47) nor an \
                 fMP4 segment (ISO BMFF boxes)"
            ),
            Error::NotWholePackets { bytes } => write!(
                f,
                "MPEG-TS segment of {bytes} bytes is not a whole number of 188-byte packets"
            ),
            Error::BadSyncByte { offset } => {
                write!(f, "TS packet at byte {offset} has no sync byte 0x47")
            }
            Error::BadAdaptationField { offset } => write!(
                f,
                "TS packet at byte {offset} has an adaptation field longer than the packet"
            ),
            Error::NoPat => write!(f, "the segment has no PAT (PID 0)"),
            Error::NoProgram => write!(f, "the PAT lists no program"),
            Error::NoPmt { pid } => write!(f, "no PMT on PID {pid:#06x}, which the PAT names"),
            Error::BadSection {
                what,
                offset,
                reason,
            } => write!(f, "bad {what} in the TS packet at byte {offset}: {reason}"),
            Error::BadCrc {
                what,
                offset,
                stored,
                computed,
            } => write!(
                f,
                "{what} in the TS packet at byte {offset} has CRC {stored:#010x}, \
                 but its bytes give {computed:#010x}"
            ),
            Error::SectionSpansPackets { what, offset } => write!(
                f,
                "{what} in the TS packet at byte {offset} continues into the next packet \
                 (only single-packet sections are supported)"
            ),
            Error::PmtFull { offset, bytes } => write!(
                f,
                "the PMT at byte {offset} would need {bytes} bytes with the metadata \
                 stream, more than one TS packet holds"
            ),
            Error::NoFreePid => write!(f, "no free PID for the timed-metadata stream"),
            Error::NoMediaStream => {
                write!(f, "the program has no audio or video elementary stream")
            }
            Error::NoPts => write!(f, "no audio or video PES packet with a PTS"),
            Error::BadPes { offset, reason } => {
                write!(f, "bad PES packet at byte {offset}: {reason}")
            }
            Error::BadBox { offset, reason } => write!(f, "bad box at byte {offset}: {reason}"),
            Error::MissingBox { what } => write!(f, "no `{what}` box"),
            Error::NoTrackFragment { track_id } => write!(
                f,
                "the first moof has no traf (with tfdt) for track {track_id}"
            ),
            Error::BadPlaylist { reason } => write!(f, "bad media playlist: {reason}"),
            Error::TimeOutsideStream { at_s, duration_s } => write!(
                f,
                "media time {at_s} s is outside the stream (0 s to {duration_s} s)"
            ),
            Error::BadTime { at_s } => write!(
                f,
                "media time {at_s} s is not a number of seconds in 0..={}",
                crate::limits::MEDIA_TIME_S_MAX
            ),
            Error::Cue(error) => write!(f, "{error}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Cue(error) => Some(error),
            _ => None,
        }
    }
}

impl From<ovation_cues::Error> for Error {
    fn from(error: ovation_cues::Error) -> Error {
        Error::Cue(error)
    }
}
