//! Cues in MPEG-TS segments: a timed ID3 metadata stream as Apple's "Timed Metadata for
//! HTTP Live Streaming" specifies it, added to the program (PMT) and filled with one PES
//! packet per cue.

//!
//! This file finds the program (PAT, PMT) and the media streams' start times; adding cues
//! is in `ts/injection.rs`, listing them in `ts/listing.rs`, and the test builders in
//! `ts/test_support.rs`.

mod injection;
mod listing;
pub mod packet;
pub mod pes;
pub mod psi;
#[cfg(test)]
pub(crate) mod test_support;

pub use injection::{inject, TsInjection};
pub use listing::list;

use crate::Error;
use packet::{packets, Packet, PAT_PID, SYNC_BYTE};
use pes::{parse_pes_header, pts_diff};
use psi::{parse_pat, Pat, Pmt};

/// The PID this tool gives a new timed-metadata stream when no packet of the segment
/// uses it (ffmpeg puts video and audio on 0x0100 and 0x0101).
pub const METADATA_PID_PREFERRED: u16 = 0x0102;
/// The lowest PID a stream may use (0x0000–0x001F are reserved).
const PID_FIRST_USABLE: u16 = 0x0020;
/// The highest PID a stream may use (0x1FFF is for null packets).
const PID_LAST_USABLE: u16 = 0x1FFE;

/// Whether `stream_type` is a video stream (MPEG-1/2, MPEG-4 part 2, H.264 and its
/// SAMPLE-AES form, H.265, AVS, VC-1, ...).
pub fn is_video(stream_type: u8) -> bool {
    matches!(
        stream_type,
        0x01 | 0x02 | 0x10 | 0x1B | 0x20 | 0x24 | 0x42 | 0xD1 | 0xDB | 0xEA
    )
}

/// Whether `stream_type` is an audio stream (MPEG-1/2 audio, AAC ADTS/LATM, AC-3, E-AC-3
/// and their SAMPLE-AES forms).
pub fn is_audio(stream_type: u8) -> bool {
    matches!(
        stream_type,
        0x03 | 0x04 | 0x0F | 0x11 | 0x1C | 0x81 | 0x87 | 0xC1 | 0xC2 | 0xCF
    )
}

/// Whether `bytes` look like an MPEG-TS segment (they start with the sync byte).
pub fn looks_like_ts(bytes: &[u8]) -> bool {
    bytes.first() == Some(&SYNC_BYTE)
}

/// The program this tool works on: the first one the PAT lists.
#[derive(Debug, Clone)]
pub struct Program {
    pub pat: Pat,
    pub pmt_pid: u16,
    /// The first PMT of the segment.
    pub pmt: Pmt,
    /// Index of the packet that carries the first PMT.
    pub pmt_packet: usize,
}

/// Finds the PAT, the first program's PMT PID, and the first PMT in `packets`.
pub fn find_program(packets: &[Packet<'_>]) -> Result<Program, Error> {
    let pat_packet = packets
        .iter()
        .find(|p| p.pid == PAT_PID && p.unit_start)
        .ok_or(Error::NoPat)?;
    let pat = parse_pat(pat_packet)?;
    let &(_, pmt_pid) = pat.programs.first().ok_or(Error::NoProgram)?;
    let (pmt_packet, packet) = packets
        .iter()
        .enumerate()
        .find(|(_, p)| p.pid == pmt_pid && p.unit_start)
        .ok_or(Error::NoPmt { pid: pmt_pid })?;
    let pmt = Pmt::parse(packet)?;
    Ok(Program {
        pat,
        pmt_pid,
        pmt,
        pmt_packet,
    })
}

/// An audio or video PES packet that starts in the segment with a PTS.
#[derive(Debug, Clone, Copy)]
struct MediaStart {
    /// Index of its first TS packet.
    index: usize,
    pts: u64,
    /// Its DTS, or its PTS when it has none.
    dts: u64,
}

/// Every audio or video PES packet that starts in `packets` and carries a PTS, in
/// stream order. Headers that do not parse are skipped: they are the media's business,
/// not the cue's.
fn media_pes_starts(packets: &[Packet<'_>], pmt: &Pmt) -> Result<Vec<MediaStart>, Error> {
    let media: Vec<u16> = pmt
        .streams
        .iter()
        .filter(|s| is_video(s.stream_type) || is_audio(s.stream_type))
        .map(|s| s.pid)
        .collect();
    if media.is_empty() {
        return Err(Error::NoMediaStream);
    }
    Ok(packets
        .iter()
        .enumerate()
        .filter(|(_, p)| p.unit_start && media.contains(&p.pid))
        .filter_map(|(index, p)| {
            let header = parse_pes_header(p.payload(), p.offset + p.payload_start).ok()?;
            let pts = header.pts?;
            Some(MediaStart {
                index,
                pts,
                dts: header.dts.unwrap_or(pts),
            })
        })
        .collect())
}

/// The earliest decoding time in `starts`, on the wrapping 33-bit clock.
fn earliest_dts(starts: &[MediaStart]) -> Option<u64> {
    let (first, rest) = starts.split_first()?;
    Some(rest.iter().fold(first.dts, |earliest, start| {
        if pts_diff(start.dts, earliest) < 0 {
            start.dts
        } else {
            earliest
        }
    }))
}

/// Where the segment starts on the 90 kHz clock: the earliest decoding time of its audio
/// and video PES packets (the DTS, or the PTS of a packet without DTS). That is the
/// origin hls.js gives `currentTime` (its `initPTS`: the lower of the first audio PTS and
/// the first video DTS), and a decoding time like the `tfdt` that places fMP4 segments.
pub fn segment_start(segment: &[u8]) -> Result<u64, Error> {
    let packets = packets(segment)?;
    let program = find_program(&packets)?;
    earliest_dts(&media_pes_starts(&packets, &program.pmt)?).ok_or(Error::NoPts)
}

#[cfg(test)]
mod tests {
    use super::packet::{packetize, PACKET_BYTES};
    use super::pes::{encode_pts, PTS_MODULUS};
    use super::test_support::*;
    use super::*;
    use crate::limits::CUES_PER_RUN_MAX;
    use ovation_cues::Cue;

    #[test]
    fn start_is_the_earliest_audio_or_video_decoding_time() {
        // Without DTS: the earliest PTS (here the audio's, 1000 ticks before the video).
        let segment = av_segment(126_000, 10);
        assert_eq!(segment_start(&segment).unwrap(), 125_000);
        // As ffmpeg muxes H.264 with B-frames: the first video frame has PTS 1.48 s and
        // DTS 1.40 s, the first audio PTS 1.456778 s: the start is the video's DTS.
        let video = |pts: u64, dts: u64| {
            let mut pes = vec![0x00, 0x00, 0x01, 0xE0, 0x00, 0x00, 0x80, 0xC0, 0x0A];
            let (mut p, mut d) = (encode_pts(pts), encode_pts(dts));
            p[0] = (p[0] & 0x0F) | 0x30;
            d[0] = (d[0] & 0x0F) | 0x10;
            pes.extend_from_slice(&p);
            pes.extend_from_slice(&d);
            pes.extend_from_slice(&[0; 50]);
            packetize(VIDEO_PID, &pes, 0)
        };
        let mut segment = av_segment(200_000, 0);
        for packet in packetize(AUDIO_PID, &media_pes(0xC0, 131_110, 50), 0)
            .into_iter()
            .chain(video(133_200, 126_000))
            .chain(packetize(AUDIO_PID, &media_pes(0xC0, 133_200, 50), 1))
        {
            segment.extend_from_slice(&packet);
        }
        assert_eq!(segment_start(&segment).unwrap(), 126_000);
        // Across the 33-bit wrap, "earliest" is on the clock, not the number.
        let segment = av_segment(PTS_MODULUS - 2 * FRAME_TICKS, 10);
        assert_eq!(
            segment_start(&segment).unwrap(),
            PTS_MODULUS - 2 * FRAME_TICKS - 1000
        );
    }

    #[test]
    fn segment_errors_name_the_problem() {
        let segment = av_segment(126_000, 2);
        // No PAT: drop the PAT packets.
        let no_pat: Vec<u8> = segment
            .chunks_exact(PACKET_BYTES)
            .filter(|p| p[1] & 0x1F != 0 || p[2] != 0)
            .flatten()
            .copied()
            .collect();
        assert_eq!(segment_start(&no_pat).unwrap_err(), Error::NoPat);
        assert_eq!(list(&no_pat).unwrap_err(), Error::NoPat);
        // A broken PMT CRC.
        let mut bad_crc = segment.clone();
        bad_crc[PACKET_BYTES + 12] ^= 0x01;
        assert!(matches!(
            inject(&bad_crc, &[(0, cue("q"))]).unwrap_err(),
            Error::BadCrc {
                what: "PMT",
                offset: 188,
                ..
            }
        ));
        // No PMT on the PID the PAT names.
        let no_pmt: Vec<u8> = segment
            .chunks_exact(PACKET_BYTES)
            .filter(|p| p[1] & 0x1F != 0x10)
            .flatten()
            .copied()
            .collect();
        assert_eq!(
            inject(&no_pmt, &[(0, cue("q"))]).unwrap_err(),
            Error::NoPmt { pid: PMT_PID }
        );
        // Too many cues.
        let many: Vec<(u64, Cue)> = (0..=CUES_PER_RUN_MAX)
            .map(|i| (i as u64, cue("q")))
            .collect();
        assert_eq!(
            inject(&segment, &many).unwrap_err(),
            Error::TooMany {
                what: "cues in one run",
                max: CUES_PER_RUN_MAX
            }
        );
    }
}
