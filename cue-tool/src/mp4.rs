//! Cues in fMP4 (CMAF) segments: `emsg` boxes of scheme `https://aomedia.org/emsg/ID3`
//! put before the segment's first `moof`, with the few boxes read to place them in time
//! (`tkhd`, `mdhd` in the init segment; `tfhd`, `tfdt` in the media segment) and the
//! offsets that inserting bytes before a `moof` moves (`sidx` references, `tfhd`
//! base_data_offset) kept right.

use crate::limits::{
    CUES_LISTED_PER_SEGMENT_MAX, CUES_PER_RUN_MAX, MP4_BOXES_PER_LEVEL_MAX, SEGMENT_BYTES_MAX,
};
use crate::{CueTime, Error, ListedCue, Listing};
use ovation_cues::{scan_emsg, Cue, Emsg, PresentationTime};

/// One box: where it is and what it is. Offsets are into the whole buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BoxRef {
    pub kind: [u8; 4],
    pub start: usize,
    /// Where the content starts (after size, type, largesize, uuid).
    pub content: usize,
    pub end: usize,
}

/// The boxes in `bytes[start..end]`, in order, each checked to lie inside that range.
pub fn children(bytes: &[u8], start: usize, end: usize) -> Result<Vec<BoxRef>, Error> {
    let mut out = Vec::new();
    let mut pos = start;
    while pos < end {
        if out.len() == MP4_BOXES_PER_LEVEL_MAX {
            return Err(Error::TooMany {
                what: "boxes at one level",
                max: MP4_BOXES_PER_LEVEL_MAX,
            });
        }
        let bad = |reason| Error::BadBox {
            offset: pos,
            reason,
        };
        if end - pos < 8 {
            return Err(bad("fewer than 8 bytes left for a box header"));
        }
        let size32 =
            u32::from_be_bytes([bytes[pos], bytes[pos + 1], bytes[pos + 2], bytes[pos + 3]]);
        let kind = [
            bytes[pos + 4],
            bytes[pos + 5],
            bytes[pos + 6],
            bytes[pos + 7],
        ];
        let (size, mut header) = match size32 {
            0 => ((end - pos) as u64, 8),
            1 => {
                if end - pos < 16 {
                    return Err(bad("the box ends inside its largesize"));
                }
                let mut large = [0_u8; 8];
                large.copy_from_slice(&bytes[pos + 8..pos + 16]);
                (u64::from_be_bytes(large), 16)
            }
            size => (u64::from(size), 8),
        };
        if &kind == b"uuid" {
            header += 16;
        }
        if size < header as u64 {
            return Err(bad("the box size is smaller than its header"));
        }
        if size > (end - pos) as u64 {
            return Err(bad("the box runs past its parent or the end of the data"));
        }
        let box_end = pos + size as usize;
        out.push(BoxRef {
            kind,
            start: pos,
            content: pos + header,
            end: box_end,
        });
        pos = box_end;
    }
    Ok(out)
}

/// The first child of `parent` of type `kind`.
fn child(bytes: &[u8], parent: &BoxRef, kind: &[u8; 4]) -> Result<Option<BoxRef>, Error> {
    Ok(children(bytes, parent.content, parent.end)?
        .into_iter()
        .find(|b| &b.kind == kind))
}

fn require(found: Option<BoxRef>, what: &'static str) -> Result<BoxRef, Error> {
    found.ok_or(Error::MissingBox { what })
}

/// Reads a big-endian number of `N` bytes at `at`, inside `within`.
fn read_be<const N: usize>(bytes: &[u8], within: &BoxRef, at: usize) -> Result<u64, Error> {
    if at + N > within.end {
        return Err(Error::BadBox {
            offset: within.start,
            reason: "the box is too short for its fields",
        });
    }
    Ok(bytes[at..at + N]
        .iter()
        .fold(0_u64, |n, &b| (n << 8) | u64::from(b)))
}

/// The full-box version at the start of `b`'s content.
fn version(bytes: &[u8], b: &BoxRef) -> Result<u8, Error> {
    Ok(read_be::<1>(bytes, b, b.content)? as u8)
}

fn check_size(bytes: &[u8], what: &'static str) -> Result<(), Error> {
    if bytes.len() > SEGMENT_BYTES_MAX {
        return Err(Error::TooLarge {
            what,
            bytes: bytes.len() as u64,
            max_bytes: SEGMENT_BYTES_MAX,
        });
    }
    Ok(())
}

/// The track whose timeline places cues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrackTiming {
    pub track_id: u32,
    /// Ticks per second of the track's media timeline (`mdhd`).
    pub timescale: u32,
}

/// The first track of an init segment (`moov`/`trak`): its id (`tkhd`) and timescale
/// (`mdia`/`mdhd`).
pub fn init_track(init: &[u8]) -> Result<TrackTiming, Error> {
    check_size(init, "init segment")?;
    let top = children(init, 0, init.len())?;
    let moov = require(top.into_iter().find(|b| &b.kind == b"moov"), "moov")?;
    let trak = require(child(init, &moov, b"trak")?, "trak")?;
    let tkhd = require(child(init, &trak, b"tkhd")?, "tkhd")?;
    // version, flags; creation and modification times (4 or 8 bytes each); track_ID.
    let track_id_at = tkhd.content + if version(init, &tkhd)? == 1 { 20 } else { 12 };
    let track_id = read_be::<4>(init, &tkhd, track_id_at)? as u32;
    let mdia = require(child(init, &trak, b"mdia")?, "mdia")?;
    let mdhd = require(child(init, &mdia, b"mdhd")?, "mdhd")?;
    let timescale_at = mdhd.content + if version(init, &mdhd)? == 1 { 20 } else { 12 };
    let timescale = read_be::<4>(init, &mdhd, timescale_at)? as u32;
    if timescale == 0 {
        return Err(Error::BadBox {
            offset: mdhd.start,
            reason: "mdhd timescale is 0",
        });
    }
    Ok(TrackTiming {
        track_id,
        timescale,
    })
}

/// The `baseMediaDecodeTime` (`tfdt`) of track `track_id` in the segment's first `moof`,
/// in the track's timescale: where the segment starts on the track's timeline.
pub fn segment_start(segment: &[u8], track_id: u32) -> Result<u64, Error> {
    check_size(segment, "segment")?;
    let top = children(segment, 0, segment.len())?;
    let moof = require(top.into_iter().find(|b| &b.kind == b"moof"), "moof")?;
    for traf in children(segment, moof.content, moof.end)?
        .into_iter()
        .filter(|b| &b.kind == b"traf")
    {
        let boxes = children(segment, traf.content, traf.end)?;
        let Some(tfhd) = boxes.iter().find(|b| &b.kind == b"tfhd") else {
            continue;
        };
        if read_be::<4>(segment, tfhd, tfhd.content + 4)? as u32 != track_id {
            continue;
        }
        let Some(tfdt) = boxes.iter().find(|b| &b.kind == b"tfdt") else {
            break;
        };
        return if version(segment, tfdt)? == 1 {
            read_be::<8>(segment, tfdt, tfdt.content + 4)
        } else {
            read_be::<4>(segment, tfdt, tfdt.content + 4)
        };
    }
    Err(Error::NoTrackFragment { track_id })
}

/// Whether `bytes` look like ISO BMFF boxes (a box type of four printable characters).
pub fn looks_like_mp4(bytes: &[u8]) -> bool {
    bytes.len() >= 8
        && bytes[4..8]
            .iter()
            .all(|b| b.is_ascii_graphic() || *b == b' ')
}

/// Moves the offsets in a `sidx` at `sidx` that point past `at` by `len` bytes: the
/// reference that `at` falls in (or starts) grows, or `first_offset` grows when `at` is
/// before the referenced range. Writes into `out`, where the box sits at the same offset.
fn shift_sidx(out: &mut [u8], sidx: &BoxRef, at: usize, len: u64) -> Result<(), Error> {
    let bad = |reason| Error::BadBox {
        offset: sidx.start,
        reason,
    };
    let v1 = version(out, sidx)? == 1;
    // version/flags 4, reference_ID 4, timescale 4, then earliest_presentation_time and
    // first_offset (4 or 8 bytes each).
    let width = if v1 { 8 } else { 4 };
    let first_offset_at = sidx.content + 12 + width;
    let first_offset = if v1 {
        read_be::<8>(out, sidx, first_offset_at)?
    } else {
        read_be::<4>(out, sidx, first_offset_at)?
    };
    let count_at = first_offset_at + width + 2;
    let count = read_be::<2>(out, sidx, count_at)? as usize;
    let mut reference_start = (sidx.end as u64).saturating_add(first_offset);
    if (at as u64) < reference_start {
        // A producer's `first_offset` near 2^64 wrapped here (a panic in a debug build,
        // a wrong offset written silently in a release one).
        let moved = first_offset
            .checked_add(len)
            .ok_or_else(|| bad("first_offset overflows"))?;
        if v1 {
            out[first_offset_at..first_offset_at + 8].copy_from_slice(&moved.to_be_bytes());
        } else {
            let moved = u32::try_from(moved).map_err(|_| bad("first_offset overflows"))?;
            out[first_offset_at..first_offset_at + 4].copy_from_slice(&moved.to_be_bytes());
        }
        return Ok(());
    }
    for i in 0..count {
        let at_ref = count_at + 2 + 12 * i;
        let word = read_be::<4>(out, sidx, at_ref)? as u32;
        let size = u64::from(word & 0x7FFF_FFFF);
        if (at as u64) < reference_start + size {
            let grown = size + len;
            if grown > 0x7FFF_FFFF {
                return Err(bad("referenced_size overflows"));
            }
            let word = (word & 0x8000_0000) | grown as u32;
            out[at_ref..at_ref + 4].copy_from_slice(&word.to_be_bytes());
            return Ok(());
        }
        reference_start += size;
    }
    Ok(())
}

/// Moves every `tfhd` base_data_offset (an absolute file offset, when present) in the
/// `moof` boxes of `out` that start at or after `from` by `len` bytes.
fn shift_base_data_offsets(out: &mut [u8], from: usize, len: u64) -> Result<(), Error> {
    let top = children(out, 0, out.len())?;
    for moof in top.iter().filter(|b| &b.kind == b"moof" && b.start >= from) {
        for traf in children(out, moof.content, moof.end)?
            .into_iter()
            .filter(|b| &b.kind == b"traf")
        {
            let Some(tfhd) = children(out, traf.content, traf.end)?
                .into_iter()
                .find(|b| &b.kind == b"tfhd")
            else {
                continue;
            };
            let flags = read_be::<4>(out, &tfhd, tfhd.content)? & 0x00FF_FFFF;
            if flags & 0x01 != 0 {
                let at = tfhd.content + 8;
                let base = read_be::<8>(out, &tfhd, at)?;
                out[at..at + 8].copy_from_slice(&base.saturating_add(len).to_be_bytes());
            }
        }
    }
    Ok(())
}

/// What [`inject`] did.
#[derive(Debug, Clone)]
pub struct Mp4Injection {
    /// The rewritten segment.
    pub segment: Vec<u8>,
    /// Where the first `emsg` box now starts.
    pub offset: usize,
    /// Bytes inserted.
    pub bytes: usize,
}

/// Puts `emsgs` (in order) right before the first `moof` of a media segment, as CMAF
/// asks of `emsg` boxes, and keeps the offsets that this moves right: the `sidx`
/// references before it that cover the `moof` grow by the inserted bytes, and absolute
/// `tfhd` base_data_offsets move. Offsets relative to a `moof` (`trun` data_offset with
/// default-base-is-moof, as CMAF and ffmpeg write) do not change.
pub fn inject(segment: &[u8], emsgs: &[Emsg]) -> Result<Mp4Injection, Error> {
    check_size(segment, "segment")?;
    if emsgs.len() > CUES_PER_RUN_MAX {
        return Err(Error::TooMany {
            what: "cues in one run",
            max: CUES_PER_RUN_MAX,
        });
    }
    let top = children(segment, 0, segment.len())?;
    let moof = require(top.iter().copied().find(|b| &b.kind == b"moof"), "moof")?;
    let mut boxes = Vec::new();
    for emsg in emsgs {
        boxes.extend_from_slice(&emsg.to_bytes()?);
    }
    let at = moof.start;
    let mut out = Vec::with_capacity(segment.len() + boxes.len());
    out.extend_from_slice(&segment[..at]);
    out.extend_from_slice(&boxes);
    out.extend_from_slice(&segment[at..]);
    let len = boxes.len() as u64;
    for sidx in top.iter().filter(|b| &b.kind == b"sidx" && b.end <= at) {
        shift_sidx(&mut out, sidx, at, len)?;
    }
    shift_base_data_offsets(&mut out, at + boxes.len(), len)?;
    Ok(Mp4Injection {
        segment: out,
        offset: at,
        bytes: boxes.len(),
    })
}

/// Every `emsg` box among the top-level boxes of the segment, with its time and the cue
/// it carries (or why it carries none: another scheme, no `ovation` frame, a bad box).
pub fn list(segment: &[u8]) -> Result<Listing, Error> {
    check_size(segment, "segment")?;
    let scan = scan_emsg(segment);
    let mut cues: Vec<ListedCue> = scan
        .found
        .into_iter()
        .map(|found| match found.emsg {
            Ok(emsg) => ListedCue {
                offset: found.offset,
                time: CueTime::Emsg {
                    time: emsg.time,
                    timescale: emsg.timescale,
                },
                cue: Cue::from_emsg(&emsg).map_err(Error::Cue),
            },
            Err(error) => ListedCue {
                offset: found.offset,
                time: CueTime::Unknown,
                cue: Err(Error::Cue(error)),
            },
        })
        .collect();
    let mut stopped = scan.stopped.map(Error::Cue);
    if cues.len() > CUES_LISTED_PER_SEGMENT_MAX {
        cues.truncate(CUES_LISTED_PER_SEGMENT_MAX);
        stopped = Some(Error::TooMany {
            what: "cues in one segment",
            max: CUES_LISTED_PER_SEGMENT_MAX,
        });
    }
    Ok(Listing { cues, stopped })
}

/// An `emsg` event id for a cue at a time: FNV-1a over the payload and the time, so the
/// same cue at the same time gets the same id in every run (players drop repeats of an
/// id) and different cues get different ids.
pub fn event_id(cue: &Cue, presentation_time: u64) -> u32 {
    let mut hash = 0x811C_9DC5_u32;
    for byte in cue
        .to_payload()
        .bytes()
        .chain(presentation_time.to_be_bytes())
    {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash
}

/// The emsg box for `cue` at `presentation_time` (in `timescale` ticks on the track's
/// timeline).
pub fn cue_emsg(cue: &Cue, timescale: u32, presentation_time: u64) -> Emsg {
    cue.to_emsg(
        timescale,
        presentation_time,
        event_id(cue, presentation_time),
    )
}

/// The time of a listed `emsg` in seconds on the track's timeline, when it has one
/// (version 1); version 0 gives a delta from the segment start instead.
pub fn emsg_seconds(time: PresentationTime, timescale: u32) -> Option<(f64, bool)> {
    if timescale == 0 {
        return None;
    }
    Some(match time {
        PresentationTime::Absolute(t) => (t as f64 / f64::from(timescale), false),
        PresentationTime::Delta(d) => (f64::from(d) / f64::from(timescale), true),
    })
}

/// Builders of small fMP4 files for the tests of this crate.
#[cfg(test)]
pub(crate) mod test_support {
    /// A box of `kind` around `content`.
    pub fn mp4_box(kind: &[u8; 4], content: &[u8]) -> Vec<u8> {
        let mut b = ((content.len() + 8) as u32).to_be_bytes().to_vec();
        b.extend_from_slice(kind);
        b.extend_from_slice(content);
        b
    }

    /// A full box: version, flags, then `content`.
    pub fn full_box(kind: &[u8; 4], version: u8, flags: u32, content: &[u8]) -> Vec<u8> {
        let mut c = vec![version];
        c.extend_from_slice(&flags.to_be_bytes()[1..]);
        c.extend_from_slice(content);
        mp4_box(kind, &c)
    }

    /// An init segment with one track: `track_id`, `timescale` (version 0 boxes).
    pub fn init(track_id: u32, timescale: u32) -> Vec<u8> {
        let mut tkhd = vec![0; 8];
        tkhd.extend_from_slice(&track_id.to_be_bytes());
        tkhd.extend_from_slice(&[0; 68]);
        let mut mdhd = vec![0; 8];
        mdhd.extend_from_slice(&timescale.to_be_bytes());
        mdhd.extend_from_slice(&[0; 8]);
        let mdia = mp4_box(b"mdia", &full_box(b"mdhd", 0, 0, &mdhd));
        let mut trak = full_box(b"tkhd", 0, 3, &tkhd);
        trak.extend_from_slice(&mdia);
        let mut out = mp4_box(b"ftyp", b"iso6\0\0\0\0iso6cmfc");
        out.extend_from_slice(&mp4_box(b"moov", &mp4_box(b"trak", &trak)));
        out
    }

    /// A traf for `track_id` starting at `base_media_decode_time` (tfdt version 1);
    /// with `base_data_offset` when given (tfhd flag 0x01).
    pub fn traf(
        track_id: u32,
        base_media_decode_time: u64,
        base_data_offset: Option<u64>,
    ) -> Vec<u8> {
        let mut tfhd = track_id.to_be_bytes().to_vec();
        let flags = match base_data_offset {
            Some(offset) => {
                tfhd.extend_from_slice(&offset.to_be_bytes());
                0x01
            }
            None => 0x02_0000,
        };
        let mut traf = full_box(b"tfhd", 0, flags, &tfhd);
        traf.extend_from_slice(&full_box(
            b"tfdt",
            1,
            0,
            &base_media_decode_time.to_be_bytes(),
        ));
        // A trun with one sample and a data_offset (relative to its base).
        traf.extend_from_slice(&full_box(b"trun", 0, 0x01, &[0, 0, 0, 1, 0, 0, 0, 8]));
        mp4_box(b"traf", &traf)
    }

    /// A version 0 `sidx` with one reference of `size` bytes, `first_offset` after it.
    pub fn sidx(first_offset: u32, size: u32) -> Vec<u8> {
        let mut c = Vec::new();
        c.extend_from_slice(&1_u32.to_be_bytes());
        c.extend_from_slice(&12_800_u32.to_be_bytes());
        c.extend_from_slice(&0_u32.to_be_bytes());
        c.extend_from_slice(&first_offset.to_be_bytes());
        c.extend_from_slice(&[0, 0, 0, 1]);
        c.extend_from_slice(&size.to_be_bytes());
        c.extend_from_slice(&25_600_u32.to_be_bytes());
        c.extend_from_slice(&0x9000_0000_u32.to_be_bytes());
        full_box(b"sidx", 0, 0, &c)
    }

    /// A media segment as ffmpeg's HLS muxer writes it: styp, two sidx (the first
    /// skipping the second), moof (two trafs), mdat.
    pub fn segment(video_time: u64, audio_time: u64) -> Vec<u8> {
        let mut moof_content = full_box(b"mfhd", 0, 0, &1_u32.to_be_bytes());
        moof_content.extend_from_slice(&traf(1, video_time, None));
        moof_content.extend_from_slice(&traf(2, audio_time, None));
        let moof = mp4_box(b"moof", &moof_content);
        let mdat = mp4_box(b"mdat", &[0xAB; 100]);
        let referenced = (moof.len() + mdat.len()) as u32;
        let second = sidx(0, referenced);
        let mut out = mp4_box(b"styp", b"msdh\0\0\0\0msdhmsix");
        out.extend_from_slice(&sidx(second.len() as u32, referenced));
        out.extend_from_slice(&second);
        out.extend_from_slice(&moof);
        out.extend_from_slice(&mdat);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::*;
    use super::*;
    use ovation_cues::InteractionKind;

    fn cue(id: &str) -> Cue {
        Cue::new(id, InteractionKind::Product, "sku-1").unwrap()
    }

    fn sidx_fields(bytes: &[u8], b: &BoxRef) -> (u64, u32) {
        let first_offset = read_be::<4>(bytes, b, b.content + 16).unwrap();
        let size = read_be::<4>(bytes, b, b.content + 24).unwrap() as u32 & 0x7FFF_FFFF;
        (first_offset, size)
    }

    #[test]
    fn reads_the_first_track_and_its_fragment_time() {
        assert_eq!(
            init_track(&init(7, 12_800)).unwrap(),
            TrackTiming {
                track_id: 7,
                timescale: 12_800
            }
        );
        let segment = segment(25_600, 88_200);
        assert_eq!(segment_start(&segment, 1).unwrap(), 25_600);
        assert_eq!(segment_start(&segment, 2).unwrap(), 88_200);
        assert_eq!(
            segment_start(&segment, 3).unwrap_err(),
            Error::NoTrackFragment { track_id: 3 }
        );
        assert_eq!(
            init_track(&segment).unwrap_err(),
            Error::MissingBox { what: "moov" }
        );
        assert_eq!(
            init_track(&init(1, 0)).unwrap_err(),
            Error::BadBox {
                offset: 24 + 8 + 8 + 92 + 8,
                reason: "mdhd timescale is 0"
            }
        );
    }

    #[test]
    fn emsg_goes_before_the_moof_and_sidx_references_grow() {
        let segment = segment(25_600, 88_200);
        let before = children(&segment, 0, segment.len()).unwrap();
        let emsgs = [
            cue_emsg(&cue("a"), 12_800, 30_000),
            cue_emsg(&cue("b"), 12_800, 40_000),
        ];
        let done = inject(&segment, &emsgs).unwrap();
        let after = children(&done.segment, 0, done.segment.len()).unwrap();
        let kinds: Vec<&[u8; 4]> = after.iter().map(|b| &b.kind).collect();
        assert_eq!(
            kinds,
            [b"styp", b"sidx", b"sidx", b"emsg", b"emsg", b"moof", b"mdat"]
        );
        assert_eq!(done.offset, before[3].start);
        assert_eq!(done.segment.len(), segment.len() + done.bytes);
        // Both sidx now cover emsg + moof + mdat, and still point at the same start.
        let (first_offset, size) = sidx_fields(&done.segment, &after[1]);
        let (old_offset, old_size) = sidx_fields(&segment, &before[1]);
        assert_eq!(first_offset, old_offset);
        assert_eq!(size as usize, old_size as usize + done.bytes);
        assert_eq!(after[1].end as u64 + first_offset, after[3].start as u64);
        assert_eq!(
            sidx_fields(&done.segment, &after[2]).1 as usize,
            after[6].end - after[3].start
        );
        // The rest of the segment is unchanged; the moof still gives its times.
        assert_eq!(&done.segment[after[5].start..], &segment[before[3].start..]);
        assert_eq!(segment_start(&done.segment, 1).unwrap(), 25_600);

        let listing = list(&done.segment).unwrap();
        assert_eq!(listing.stopped, None);
        let listed: Vec<(CueTime, Cue)> = listing
            .cues
            .into_iter()
            .map(|c| (c.time, c.cue.unwrap()))
            .collect();
        assert_eq!(
            listed,
            [
                (
                    CueTime::Emsg {
                        time: PresentationTime::Absolute(30_000),
                        timescale: 12_800
                    },
                    cue("a")
                ),
                (
                    CueTime::Emsg {
                        time: PresentationTime::Absolute(40_000),
                        timescale: 12_800
                    },
                    cue("b")
                )
            ]
        );
    }

    /// A version 1 `sidx` whose `first_offset` is near 2^64 (a producer's, before the
    /// `moof`): the injection is refused with the box's offset, never wrapped or a panic.
    #[test]
    fn a_sidx_offset_that_would_overflow_is_refused() {
        let mut c = Vec::new();
        c.extend_from_slice(&1_u32.to_be_bytes());
        c.extend_from_slice(&12_800_u32.to_be_bytes());
        c.extend_from_slice(&0_u64.to_be_bytes());
        c.extend_from_slice(&(u64::MAX - 10).to_be_bytes());
        c.extend_from_slice(&[0, 0, 0, 1]);
        c.extend_from_slice(&100_u32.to_be_bytes());
        c.extend_from_slice(&25_600_u32.to_be_bytes());
        c.extend_from_slice(&0x9000_0000_u32.to_be_bytes());
        let sidx = full_box(b"sidx", 1, 0, &c);
        let mut moof_content = full_box(b"mfhd", 0, 0, &1_u32.to_be_bytes());
        moof_content.extend_from_slice(&traf(1, 0, None));
        let mut segment = mp4_box(b"styp", b"msdh\0\0\0\0msdhmsix");
        let sidx_at = segment.len();
        segment.extend_from_slice(&sidx);
        segment.extend_from_slice(&mp4_box(b"moof", &moof_content));
        segment.extend_from_slice(&mp4_box(b"mdat", &[0; 10]));
        assert_eq!(
            inject(&segment, &[cue_emsg(&cue("c"), 12_800, 1)]).unwrap_err(),
            Error::BadBox {
                offset: sidx_at,
                reason: "first_offset overflows"
            }
        );
    }

    #[test]
    fn absolute_base_data_offsets_move() {
        let mut moof_content = full_box(b"mfhd", 0, 0, &1_u32.to_be_bytes());
        moof_content.extend_from_slice(&traf(1, 0, Some(5000)));
        let mut segment = mp4_box(b"moof", &moof_content);
        segment.extend_from_slice(&mp4_box(b"mdat", &[0; 10]));
        let done = inject(&segment, &[cue_emsg(&cue("c"), 90_000, 1)]).unwrap();
        let top = children(&done.segment, 0, done.segment.len()).unwrap();
        let traf = children(&done.segment, top[1].content, top[1].end).unwrap()[1];
        let tfhd = children(&done.segment, traf.content, traf.end).unwrap()[0];
        assert_eq!(
            read_be::<8>(&done.segment, &tfhd, tfhd.content + 8).unwrap(),
            5000 + done.bytes as u64
        );
    }

    #[test]
    fn a_sidx_before_its_reference_moves_first_offset() {
        // Bytes inserted between a sidx and the range it references (which starts 10
        // bytes after it) push the range back.
        let mut out = sidx(10, 100);
        let b = children(&out, 0, out.len()).unwrap()[0];
        shift_sidx(&mut out, &b, b.end + 5, 16).unwrap();
        assert_eq!(sidx_fields(&out, &b), (26, 100));
        // Bytes inserted after the end of the referenced range change nothing.
        let mut after = sidx(0, 100);
        let b = children(&after, 0, after.len()).unwrap()[0];
        shift_sidx(&mut after, &b, b.end + 100, 16).unwrap();
        assert_eq!(
            sidx_fields(&after, &b),
            (0, 100),
            "only one reference: past its end"
        );
    }

    #[test]
    fn event_ids_are_stable_and_differ() {
        assert_eq!(event_id(&cue("a"), 5), event_id(&cue("a"), 5));
        assert_ne!(event_id(&cue("a"), 5), event_id(&cue("a"), 6));
        assert_ne!(event_id(&cue("a"), 5), event_id(&cue("b"), 5));
    }

    #[test]
    fn malformed_boxes_are_errors() {
        assert_eq!(
            children(&[0, 0, 0, 4, b'f', b'r', b'e', b'e'], 0, 8).unwrap_err(),
            Error::BadBox {
                offset: 0,
                reason: "the box size is smaller than its header"
            }
        );
        assert_eq!(
            children(&[0, 0, 0, 9, b'f', b'r', b'e', b'e'], 0, 8).unwrap_err(),
            Error::BadBox {
                offset: 0,
                reason: "the box runs past its parent or the end of the data"
            }
        );
        assert_eq!(
            children(&[0, 0, 0, 8], 0, 4).unwrap_err(),
            Error::BadBox {
                offset: 0,
                reason: "fewer than 8 bytes left for a box header"
            }
        );
        let no_moof = mp4_box(b"mdat", &[0; 4]);
        assert_eq!(
            inject(&no_moof, &[]).unwrap_err(),
            Error::MissingBox { what: "moof" }
        );
    }
}
