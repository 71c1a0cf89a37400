//! The producer side of Ovation's in-band cues: put cues into HLS segments and list the
//! cues a stream carries. The `ovation-cue` binary does the file work; this library is
//! pure (bytes in, bytes out: no I/O, no clock), so every rewrite is unit-testable.
//!
//! ```text
//! ovation-cue inject --playlist live/index.m3u8 --at 12.5 --cue q3-open --ref poll:p3 \
//!                    [--at ... --cue ... --ref ...] [--cues-file cues.json] [--timescale N]
//! ovation-cue list --playlist live/index.m3u8 [--json]
//! ovation-cue list live/index3.ts live/index4.ts [--json]
//! ```
//! `inject` rewrites the segments that hold the cues in place (temporary file, then
//! rename), after checking every cue and segment first; a cue already in its segment at
//! the same time is skipped, so re-running a command is harmless. A cues file is a JSON
//! array of `{"at": seconds, "cue": id, "ref": "kind:id"}`.
//!
//! # Format choices
//! A cue ([`ovation_cues::Cue`]) travels as an ID3v2.4 tag with one `TXXX` frame named
//! `ovation` ([`Cue::to_id3_bytes`](ovation_cues::Cue::to_id3_bytes)), carried the way
//! players already read timed metadata:
//! - **MPEG-TS** ([`ts`]): Apple's "Timed Metadata for HTTP Live Streaming". The program's
//!   PMT gains an elementary stream of `stream_type` 0x15 (metadata in PES packets) on a
//!   free PID (0x0102 unless taken), with a `metadata_descriptor` (tag 0x26) in its
//!   ES_info and a `metadata_pointer_descriptor` (tag 0x25) in program_info, both naming
//!   the registered format `ID3 ` (application format 0xFFFF, format 0xFF, service 0);
//!   each cue is one PES packet of `stream_id` 0xBD (private_stream_1) whose PTS is the
//!   cue's media time and whose payload is the ID3 tag. hls.js takes stream type 0x15 as
//!   its ID3 track; ffmpeg shows it as a `timed_id3` data stream with tag `ID3 `.
//! - **fMP4/CMAF** ([`mp4`]): an `emsg` box version 1 of scheme
//!   `https://aomedia.org/emsg/ID3` (the AOM "Carriage of ID3 Timed Metadata in CMAF"),
//!   before the segment's first `moof`, in the timescale of the init segment's first
//!   track, its `presentation_time` the cue's media time on that track's timeline.
//!
//! Media time is the playlist's timeline (see [`playlist`]): 0 at the start of the first
//! segment, mapped onto the segments' clock from where the first segment of the time's
//! discontinuity run starts: its earliest decoding time (TS: the lowest audio or video
//! DTS, a packet without DTS counting its PTS; fMP4: the first track's `tfdt`). That is
//! the origin hls.js gives `currentTime`, so a cue at 3.2 s surfaces when the player
//! reaches 3.2 s.
//!
//! # Invariants
//! - Nothing here panics on any input bytes: every malformed structure is an [`Error`]
//!   naming what is wrong and, where there is one, its byte offset (property tests feed
//!   random and mutated segments to the TS parser, the injectors and the listers).
//! - Every read is bounded by a limit in [`limits`], checked before memory is taken.
//! - Injection changes only what it must: in TS, the PMT packets (with a valid CRC and a
//!   new version), the inserted packets and the continuity counters of the metadata PID;
//!   every other packet is copied unchanged and in order. In fMP4, the inserted `emsg`
//!   boxes and the offsets they move (`sidx` references, absolute `tfhd`
//!   base_data_offset).
//! - What the injectors write, the listers read back: same cue, same time.

#![forbid(unsafe_code)]

mod crc;
mod error;
pub mod limits;
pub mod mp4;
pub mod playlist;
#[cfg(test)]
mod props;
pub mod ts;

pub use crc::crc32_mpeg2;
pub use error::Error;
pub use playlist::{Location, Playlist, Segment};

use limits::MEDIA_TIME_S_MAX;
use ovation_cues::{Cue, PresentationTime};
use ts::pes::{pts_add, pts_diff, PTS_HZ};

/// The container of a media segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SegmentFormat {
    /// MPEG-2 transport stream (`.ts`).
    Ts,
    /// Fragmented MP4 / CMAF (`.m4s`, `.mp4`).
    Fmp4,
}

impl SegmentFormat {
    /// Tells the container from the first bytes: the TS sync byte, or a box header.
    pub fn detect(bytes: &[u8]) -> Result<SegmentFormat, Error> {
        if ts::looks_like_ts(bytes) {
            Ok(SegmentFormat::Ts)
        } else if mp4::looks_like_mp4(bytes) {
            Ok(SegmentFormat::Fmp4)
        } else {
            Err(Error::UnknownFormat)
        }
    }
}

/// When a listed cue is, as the segment says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CueTime {
    /// The PTS of its PES packet, 90 kHz.
    Pts(u64),
    /// The time of its `emsg` box.
    Emsg {
        time: PresentationTime,
        timescale: u32,
    },
    /// The packet or box carries no time (or it could not be read).
    Unknown,
}

/// One timed-metadata PES packet or `emsg` box of a segment.
#[derive(Debug, Clone, PartialEq)]
pub struct ListedCue {
    /// Where it starts in the segment (its first TS packet, or the box).
    pub offset: usize,
    pub time: CueTime,
    /// The cue, or why this metadata is not one.
    pub cue: Result<Cue, Error>,
}

/// What a lister found in one segment.
#[derive(Debug, Clone, PartialEq)]
pub struct Listing {
    pub cues: Vec<ListedCue>,
    /// Why the listing stopped before the end of the segment, if it did.
    pub stopped: Option<Error>,
}

/// Lists the cues of a segment of either container.
pub fn list_segment(bytes: &[u8]) -> Result<(SegmentFormat, Listing), Error> {
    let format = SegmentFormat::detect(bytes)?;
    let listing = match format {
        SegmentFormat::Ts => ts::list(bytes)?,
        SegmentFormat::Fmp4 => mp4::list(bytes)?,
    };
    Ok((format, listing))
}

/// Checks a media time given by a person: a finite number of seconds in
/// 0..=[`MEDIA_TIME_S_MAX`].
pub fn check_media_time(at_s: f64) -> Result<f64, Error> {
    if at_s.is_finite() && (0.0..=MEDIA_TIME_S_MAX).contains(&at_s) {
        Ok(at_s)
    } else {
        Err(Error::BadTime { at_s })
    }
}

/// Seconds as ticks of `timescale`, rounded to the nearest tick. `seconds` is at most
/// [`MEDIA_TIME_S_MAX`] in magnitude where this crate calls it, far inside `i64`.
fn seconds_to_ticks(seconds: f64, timescale: u32) -> i64 {
    (seconds * f64::from(timescale)).round() as i64
}

/// The PTS of a point `from_anchor_s` seconds after an anchor at `anchor_pts` (on the
/// 33-bit clock).
pub fn pts_at(anchor_pts: u64, from_anchor_s: f64) -> u64 {
    pts_add(anchor_pts, seconds_to_ticks(from_anchor_s, PTS_HZ as u32))
}

/// Seconds from an anchor at `anchor_pts` to `pts`, the shorter way around the clock.
pub fn seconds_from_pts(anchor_pts: u64, pts: u64) -> f64 {
    pts_diff(pts, anchor_pts) as f64 / PTS_HZ as f64
}

/// The time in `timescale` ticks of a point `from_anchor_s` seconds after an anchor at
/// `anchor_ticks` ticks of `anchor_timescale` (a `tfdt` in the track's timescale); 0 when
/// the point would be before the timeline's 0.
pub fn ticks_at(
    anchor_ticks: u64,
    anchor_timescale: u32,
    from_anchor_s: f64,
    timescale: u32,
) -> u64 {
    let anchor =
        u128::from(anchor_ticks) * u128::from(timescale) / u128::from(anchor_timescale.max(1));
    let at = anchor as i128 + i128::from(seconds_to_ticks(from_anchor_s, timescale));
    at.clamp(0, i128::from(u64::MAX)) as u64
}

/// The ffmpeg arguments of the HLS test stream Ovation's tests and demo use (what a
/// producer's encoder would send): a test picture of `size` (`WxH`) at 25 fps with a
/// keyframe every second, a 440 Hz tone in AAC, 2-second segments with
/// EXT-X-PROGRAM-DATE-TIME, as VOD, in MPEG-TS or (`fmp4`) CMAF. The caller appends the
/// playlist path.
pub fn test_stream_ffmpeg_args(seconds: u32, size: &str, fmp4: bool) -> Vec<String> {
    let mut args: Vec<String> = [
        "-v",
        "error",
        "-y",
        "-f",
        "lavfi",
        "-i",
        &format!("testsrc=size={size}:rate=25"),
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:sample_rate=48000",
        "-t",
        &seconds.to_string(),
        "-c:v",
        "libx264",
        "-g",
        "25",
        // Browsers decode 4:2:0 only (testsrc is RGB).
        "-pix_fmt",
        "yuv420p",
        "-c:a",
        "aac",
        "-f",
        "hls",
        "-hls_time",
        "2",
        "-hls_flags",
        "program_date_time",
        "-hls_playlist_type",
        "vod",
    ]
    .iter()
    .map(|a| a.to_string())
    .collect();
    if fmp4 {
        args.extend(["-hls_segment_type".to_owned(), "fmp4".to_owned()]);
    }
    args
}

#[cfg(test)]
mod tests {
    use super::*;
    use ts::pes::PTS_MODULUS;

    #[test]
    fn formats_are_told_apart() {
        assert_eq!(SegmentFormat::detect(&[0x47, 0, 0]), Ok(SegmentFormat::Ts));
        assert_eq!(
            SegmentFormat::detect(b"\0\0\0\x18stypmsdh"),
            Ok(SegmentFormat::Fmp4)
        );
        assert_eq!(SegmentFormat::detect(b""), Err(Error::UnknownFormat));
        assert_eq!(
            SegmentFormat::detect(b"\0\0\0\x18\x01\x02\x03\x04"),
            Err(Error::UnknownFormat)
        );
    }

    #[test]
    fn media_times_map_onto_clocks() {
        assert_eq!(pts_at(131_110, 0.5), 176_110);
        assert_eq!(pts_at(131_110, 3.2), 419_110);
        assert_eq!(pts_at(PTS_MODULUS - 45_000, 1.0), 45_000);
        assert_eq!(seconds_from_pts(PTS_MODULUS - 45_000, 45_000), 1.0);
        assert_eq!(seconds_from_pts(131_110, 176_110), 0.5);
        // A 12.8 kHz track whose fragment starts at 1 s, in its own and another scale.
        assert_eq!(ticks_at(12_800, 12_800, 0.5, 12_800), 19_200);
        assert_eq!(ticks_at(12_800, 12_800, 0.5, 90_000), 135_000);
        assert_eq!(ticks_at(0, 12_800, -1.0, 12_800), 0);
    }

    #[test]
    fn media_times_are_checked() {
        assert_eq!(check_media_time(0.0), Ok(0.0));
        assert_eq!(check_media_time(3.2), Ok(3.2));
        for bad in [-1.0, f64::NAN, f64::INFINITY, MEDIA_TIME_S_MAX + 1.0] {
            assert!(matches!(check_media_time(bad), Err(Error::BadTime { .. })));
        }
    }
}
