//! The one error type of the crate: every variant names what is wrong, and where the input
//! has a position for it, the byte offset.

use std::fmt;

/// Why bytes could not be parsed, or a value could not be written.
///
/// Offsets count bytes from the start of the slice handed to the parse function (for
/// [`scan_emsg`](crate::scan_emsg), from the start of the scanned buffer; for
/// [`Emsg::parse`](crate::Emsg::parse), from the start of the box). Inside an
/// unsynchronised ID3 tag or frame they still point into the bytes as given, not into the
/// bytes after unsynchronisation was undone.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The input ended before `what` was complete; `offset` is where `what` starts.
    Truncated { what: &'static str, offset: usize },
    /// The bytes at `offset` are not the identifier `what` needs (`ID3`, `3DI`, `emsg`).
    BadMagic { what: &'static str, offset: usize },
    /// A version this crate does not read (ID3v2 major versions other than 3 and 4,
    /// `emsg` versions other than 0 and 1, cue payload versions other than 1).
    UnsupportedVersion { what: &'static str, version: u8 },
    /// Flags that the version of `what` leaves undefined are set, so its layout is unknown.
    UnsupportedFlags {
        what: &'static str,
        offset: usize,
        flags: u8,
    },
    /// A syncsafe integer at `offset` has a byte with its top bit set.
    BadSyncsafe { offset: usize },
    /// `what` declares or needs `bytes` bytes, more than `max_bytes`.
    TooLarge {
        what: &'static str,
        bytes: u64,
        max_bytes: usize,
    },
    /// More than `max` of `what`.
    TooMany { what: &'static str, max: usize },
    /// The ID3 frame id at `offset` is not four characters of `[A-Z0-9]`.
    BadFrameId { offset: usize },
    /// The size `size` of `what` at `offset` is impossible (smaller than its own header,
    /// or larger than what contains it).
    BadSize {
        what: &'static str,
        offset: usize,
        size: u64,
    },
    /// An ID3 text encoding byte other than 0..=3 at `offset`.
    BadTextEncoding { offset: usize, encoding: u8 },
    /// Text at `offset` does not decode in its encoding.
    BadText { offset: usize, reason: &'static str },
    /// The string `what` starting at `offset` has no terminating NUL.
    MissingTerminator { what: &'static str, offset: usize },
    /// The ID3v2.4 footer at `offset` does not repeat the header's version, flags and size.
    FooterMismatch { offset: usize },
    /// An ID3v2.4 frame's data length indicator (frame header at `offset`) does not match
    /// the length of its data after unsynchronisation was undone.
    DataLengthMismatch {
        offset: usize,
        declared: u32,
        actual: usize,
    },
    /// Bytes follow the end of the tag or box at `offset` where none may.
    TrailingBytes { offset: usize },
    /// A value cannot be written: `what` is the part, `reason` the rule it breaks.
    Unwritable {
        what: &'static str,
        reason: &'static str,
    },
    /// The `emsg` box's `scheme_id_uri` is not [`EMSG_SCHEME_ID3`](crate::EMSG_SCHEME_ID3).
    WrongScheme,
    /// The ID3 tag has no `ovation` TXXX or PRIV frame.
    NoCue,
    /// A cue, its id, its reference or its payload breaks a rule of the cue format.
    InvalidCue { reason: &'static str },
}

impl Error {
    /// The byte offset the error points at, for errors about a place in the input.
    pub fn offset(&self) -> Option<usize> {
        use Error::*;
        match *self {
            Truncated { offset, .. }
            | BadMagic { offset, .. }
            | UnsupportedFlags { offset, .. }
            | BadSyncsafe { offset }
            | BadFrameId { offset }
            | BadSize { offset, .. }
            | BadTextEncoding { offset, .. }
            | BadText { offset, .. }
            | MissingTerminator { offset, .. }
            | FooterMismatch { offset }
            | DataLengthMismatch { offset, .. }
            | TrailingBytes { offset } => Some(offset),
            UnsupportedVersion { .. }
            | TooLarge { .. }
            | TooMany { .. }
            | Unwritable { .. }
            | WrongScheme
            | NoCue
            | InvalidCue { .. } => None,
        }
    }

    /// The same error with every offset passed through `map`; used to turn offsets into
    /// de-unsynchronised bytes (or into a sub-slice) back into offsets into the input.
    pub(crate) fn map_offset(self, map: impl Fn(usize) -> usize) -> Error {
        use Error::*;
        match self {
            Truncated { what, offset } => Truncated {
                what,
                offset: map(offset),
            },
            BadMagic { what, offset } => BadMagic {
                what,
                offset: map(offset),
            },
            UnsupportedFlags {
                what,
                offset,
                flags,
            } => UnsupportedFlags {
                what,
                offset: map(offset),
                flags,
            },
            BadSyncsafe { offset } => BadSyncsafe {
                offset: map(offset),
            },
            BadFrameId { offset } => BadFrameId {
                offset: map(offset),
            },
            BadSize { what, offset, size } => BadSize {
                what,
                offset: map(offset),
                size,
            },
            BadTextEncoding { offset, encoding } => BadTextEncoding {
                offset: map(offset),
                encoding,
            },
            BadText { offset, reason } => BadText {
                offset: map(offset),
                reason,
            },
            MissingTerminator { what, offset } => MissingTerminator {
                what,
                offset: map(offset),
            },
            FooterMismatch { offset } => FooterMismatch {
                offset: map(offset),
            },
            DataLengthMismatch {
                offset,
                declared,
                actual,
            } => DataLengthMismatch {
                offset: map(offset),
                declared,
                actual,
            },
            TrailingBytes { offset } => TrailingBytes {
                offset: map(offset),
            },
            other @ (UnsupportedVersion { .. }
            | TooLarge { .. }
            | TooMany { .. }
            | Unwritable { .. }
            | WrongScheme
            | NoCue
            | InvalidCue { .. }) => other,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Truncated { what, offset } => {
                write!(f, "input ends inside the {what} at byte {offset}")
            }
            Error::BadMagic { what, offset } => write!(f, "no {what} at byte {offset}"),
            Error::UnsupportedVersion { what, version } => {
                write!(f, "unsupported {what} version {version}")
            }
            Error::UnsupportedFlags {
                what,
                offset,
                flags,
            } => {
                write!(f, "undefined {what} flags {flags:#04x} at byte {offset}")
            }
            Error::BadSyncsafe { offset } => {
                write!(
                    f,
                    "syncsafe integer at byte {offset} has a byte with its top bit set"
                )
            }
            Error::TooLarge {
                what,
                bytes,
                max_bytes,
            } => {
                write!(
                    f,
                    "{what} of {bytes} bytes is over the limit of {max_bytes} bytes"
                )
            }
            Error::TooMany { what, max } => write!(f, "more than {max} {what}"),
            Error::BadFrameId { offset } => write!(f, "invalid ID3 frame id at byte {offset}"),
            Error::BadSize { what, offset, size } => {
                write!(f, "impossible {what} size {size} at byte {offset}")
            }
            Error::BadTextEncoding { offset, encoding } => {
                write!(f, "unknown ID3 text encoding {encoding} at byte {offset}")
            }
            Error::BadText { offset, reason } => write!(f, "bad text at byte {offset}: {reason}"),
            Error::MissingTerminator { what, offset } => {
                write!(f, "{what} starting at byte {offset} has no terminating NUL")
            }
            Error::FooterMismatch { offset } => {
                write!(f, "ID3 footer at byte {offset} does not match the header")
            }
            Error::DataLengthMismatch {
                offset,
                declared,
                actual,
            } => write!(
                f,
                "ID3 frame at byte {offset} declares {declared} data bytes but has {actual}"
            ),
            Error::TrailingBytes { offset } => {
                write!(f, "unexpected bytes after the end at byte {offset}")
            }
            Error::Unwritable { what, reason } => write!(f, "cannot write {what}: {reason}"),
            Error::WrongScheme => write!(
                f,
                "emsg scheme_id_uri is not {}",
                crate::emsg::EMSG_SCHEME_ID3
            ),
            Error::NoCue => write!(f, "the ID3 tag has no ovation frame"),
            Error::InvalidCue { reason } => write!(f, "invalid cue: {reason}"),
        }
    }
}

impl std::error::Error for Error {}
