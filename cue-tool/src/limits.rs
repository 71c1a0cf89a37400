//! Every limit of this crate, in one place. Units go last in the name.
//!
//! Each one bounds what input can make the tool read, copy or hold, and is enforced with
//! an [`Error`](crate::Error) (or, for the lister, an entry that says what was skipped)
//! before memory is allocated for the data it bounds.

/// One media segment (MPEG-TS or fMP4), or one init segment, bytes. A 2–10 s HLS segment
/// is a few MiB even at high bitrates; the tool holds a segment in memory while it
/// rewrites it.
pub const SEGMENT_BYTES_MAX: usize = 64 * 1024 * 1024;

/// A media playlist, bytes.
pub const PLAYLIST_BYTES_MAX: usize = 4 * 1024 * 1024;

/// Segments in one media playlist.
pub const PLAYLIST_SEGMENTS_MAX: usize = 100_000;

/// Cues one `inject` run writes (from `--cue` arguments or a cues file).
pub const CUES_PER_RUN_MAX: usize = 1024;

/// A cues file (`--cues-file`), bytes.
pub const CUES_FILE_BYTES_MAX: usize = 1024 * 1024;

/// Cues the lister reports for one segment; it stops there and says so.
pub const CUES_LISTED_PER_SEGMENT_MAX: usize = 4096;

/// A timed-metadata PES packet the lister reassembles: the largest PES header (9 bytes
/// plus 255 bytes of optional fields) and an ID3 tag of up to
/// [`ovation_cues::limits::ID3_TAG_BYTES_MAX`]. Longer ones are reported, not copied.
pub const METADATA_PES_BYTES_MAX: usize = 9 + 255 + ovation_cues::limits::ID3_TAG_BYTES_MAX;

/// Boxes walked at one level of an ISO BMFF file (top level, inside `moov`, `trak`,
/// `mdia`, `moof`, `traf`); more is taken as a broken file.
pub const MP4_BOXES_PER_LEVEL_MAX: usize = 100_000;

/// Media times given on the command line or in a cues file, seconds: about 1.2 days, so
/// that the time in 90 kHz ticks stays far inside the 33-bit PTS range and `f64` keeps
/// microseconds.
pub const MEDIA_TIME_S_MAX: f64 = 100_000.0;
