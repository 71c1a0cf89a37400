//! Every limit of this crate, in one place. Units go last in the name.
//!
//! Limits that input can exceed are enforced with an [`Error`](crate::Error) before any
//! memory is allocated for the data they bound; limits that only this crate's own code
//! could exceed are asserted.

/// A cue payload (the text carried in the `ovation` frame), bytes. The design keeps
/// in-band payloads small: the interaction's content comes over the socket.
pub const CUE_PAYLOAD_BYTES_MAX: usize = 1024;
/// A cue id, bytes (`[A-Za-z0-9_.-]`, at least one).
pub const CUE_ID_BYTES_MAX: usize = 64;
/// The id part of an interaction reference, bytes (`[A-Za-z0-9_.-]`, at least one).
pub const CUE_REFERENCE_ID_BYTES_MAX: usize = 64;

/// A whole ID3v2 tag as stored: header, extended header, frames, padding and footer.
/// Timed metadata tags are small; this bounds what one tag may make us copy.
pub const ID3_TAG_BYTES_MAX: usize = 64 * 1024;
/// Frames in one ID3v2 tag.
pub const ID3_FRAMES_MAX: usize = 256;

/// `scheme_id_uri` and `value` of an `emsg` box, each, bytes without the terminating NUL.
pub const EMSG_STRING_BYTES_MAX: usize = 1024;
/// A whole `emsg` box: the largest box header (16 bytes with `largesize`), the full-box
/// version and flags (4), the version 1 numbers (20), both strings with their NULs, and a
/// message of up to [`ID3_TAG_BYTES_MAX`].
pub const EMSG_BOX_BYTES_MAX: usize =
    16 + 4 + 20 + 2 * (EMSG_STRING_BYTES_MAX + 1) + ID3_TAG_BYTES_MAX;
/// `emsg` boxes one [`scan_emsg`](crate::scan_emsg) call reports; it stops after that many.
pub const EMSG_BOXES_PER_SCAN_MAX: usize = 1024;
