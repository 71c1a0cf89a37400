//! Builders of small, valid transport streams for the tests of this crate.

use super::packet::{packetize, PACKET_BYTES};
use super::pes::{encode_pts, PTS_MODULUS};
use super::psi::{ElementaryStream, Pmt};
use crate::crc::crc32_mpeg2;
use ovation_cues::{Cue, InteractionKind};

/// A poll cue with this id (reference `p1`).
pub fn cue(id: &str) -> Cue {
    Cue::new(id, InteractionKind::Poll, "p1").unwrap()
}

pub const PMT_PID: u16 = 0x1000;
pub const VIDEO_PID: u16 = 0x0100;
pub const AUDIO_PID: u16 = 0x0101;
/// One video frame at 25 frames per second, 90 kHz ticks.
pub const FRAME_TICKS: u64 = 3600;

/// A TS packet on `pid` with `payload_unit_start_indicator`, pointer field 0 and
/// `section`, stuffed with 0xFF.
pub fn section_packet(pid: u16, section: &[u8]) -> [u8; PACKET_BYTES] {
    let mut packet = [0xFF_u8; PACKET_BYTES];
    packet[..5].copy_from_slice(&[0x47, 0x40 | (pid >> 8) as u8, pid as u8, 0x10, 0x00]);
    packet[5..5 + section.len()].copy_from_slice(section);
    packet
}

/// A PAT section (transport_stream_id 1) for one program, CRC computed.
pub fn pat_section(program_number: u16, pmt_pid: u16) -> Vec<u8> {
    let mut s = vec![0x00, 0xB0, 0x0D, 0x00, 0x01, 0xC1, 0x00, 0x00];
    s.extend_from_slice(&program_number.to_be_bytes());
    s.extend_from_slice(&(0xE000 | pmt_pid).to_be_bytes());
    let crc = crc32_mpeg2(&s);
    s.extend_from_slice(&crc.to_be_bytes());
    s
}

/// The PMT of an H.264 + AAC program, as ffmpeg writes it.
pub fn av_pmt() -> Pmt {
    Pmt {
        program_number: 1,
        version: 0,
        current_next: true,
        pcr_pid: VIDEO_PID,
        program_info: Vec::new(),
        streams: vec![
            ElementaryStream {
                stream_type: 0x1B,
                pid: VIDEO_PID,
                descriptors: Vec::new(),
            },
            ElementaryStream {
                stream_type: 0x0F,
                pid: AUDIO_PID,
                descriptors: Vec::new(),
            },
        ],
    }
}

/// A media PES packet (PTS only, `PES_packet_length` 0) of `len` payload bytes.
pub fn media_pes(stream_id: u8, pts: u64, len: usize) -> Vec<u8> {
    let mut pes = vec![0x00, 0x00, 0x01, stream_id, 0x00, 0x00, 0x80, 0x80, 0x05];
    pes.extend_from_slice(&encode_pts(pts));
    pes.extend((0..len).map(|i| (i % 200) as u8));
    pes
}

/// A segment: PAT, PMT, then `frames` video frames from `first_pts` (400 bytes each,
/// so three TS packets) with an audio PES before each, starting 1000 ticks earlier
/// than the video; the PAT and PMT again after half the frames.
pub fn av_segment(first_pts: u64, frames: u64) -> Vec<u8> {
    let mut out = Vec::new();
    let pat = section_packet(0, &pat_section(1, PMT_PID));
    let pmt = section_packet(PMT_PID, &av_pmt().to_section().unwrap());
    let (mut video_cc, mut audio_cc, mut psi_cc) = (0_u8, 0_u8, 0_u8);
    let psi = |out: &mut Vec<u8>, cc: &mut u8| {
        for mut packet in [pat, pmt] {
            packet[3] = 0x10 | *cc;
            out.extend_from_slice(&packet);
        }
        *cc = (*cc + 1) & 0x0F;
    };
    psi(&mut out, &mut psi_cc);
    for frame in 0..frames {
        if frame == frames / 2 {
            psi(&mut out, &mut psi_cc);
        }
        let pts = first_pts + frame * FRAME_TICKS;
        let audio_pts = (pts + PTS_MODULUS - 1000) % PTS_MODULUS;
        for packet in packetize(AUDIO_PID, &media_pes(0xC0, audio_pts, 100), audio_cc) {
            out.extend_from_slice(&packet);
            audio_cc = (audio_cc + 1) & 0x0F;
        }
        for packet in packetize(VIDEO_PID, &media_pes(0xE0, pts, 400), video_cc) {
            out.extend_from_slice(&packet);
            video_cc = (video_cc + 1) & 0x0F;
        }
    }
    out
}
