//! Cues in MPEG-TS segments: a timed ID3 metadata stream as Apple's "Timed Metadata for
//! HTTP Live Streaming" specifies it, added to the program (PMT) and filled with one PES
//! packet per cue.

pub mod packet;
pub mod pes;
pub mod psi;

use crate::limits::{CUES_LISTED_PER_SEGMENT_MAX, CUES_PER_RUN_MAX, METADATA_PES_BYTES_MAX};
use crate::{CueTime, Error, ListedCue, Listing};
use ovation_cues::Cue;
use packet::{packetize, packets, renumber_continuity, Packet, PACKET_BYTES, PAT_PID, SYNC_BYTE};
use pes::{metadata_pes, parse_pes_header, pts_diff};
use psi::{locate_section, parse_pat, Pat, Pmt, TABLE_ID_PMT};

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

/// What [`inject`] did.
#[derive(Debug, Clone)]
pub struct TsInjection {
    /// The rewritten segment.
    pub segment: Vec<u8>,
    /// The PID of the timed-metadata stream.
    pub pid: u16,
    /// Whether the stream was added to the PMT (false: it was there already).
    pub stream_added: bool,
    /// PMT sections rewritten (every PMT of the segment is).
    pub pmts_rewritten: usize,
    /// `(packet index in the new segment, TS packets)` of each cue, in the order given.
    pub inserted: Vec<(usize, usize)>,
}

/// The PID for a new metadata stream: [`METADATA_PID_PREFERRED`] unless a packet, the
/// PAT or the PMT uses it, else the next free one.
fn choose_pid(packets: &[Packet<'_>], program: &Program) -> Result<u16, Error> {
    let mut used = vec![false; 0x2000];
    for packet in packets {
        used[usize::from(packet.pid)] = true;
    }
    for &(_, pid) in &program.pat.programs {
        used[usize::from(pid)] = true;
    }
    used[usize::from(program.pmt.pcr_pid)] = true;
    for stream in &program.pmt.streams {
        used[usize::from(stream.pid)] = true;
    }
    (METADATA_PID_PREFERRED..=PID_LAST_USABLE)
        .chain(PID_FIRST_USABLE..METADATA_PID_PREFERRED)
        .find(|&pid| !used[usize::from(pid)])
        .ok_or(Error::NoFreePid)
}

/// The PMT packet with the ID3 stream on `pid` added; `None` when this PMT is another
/// program's or already lists `pid` as a metadata stream.
fn rewrite_pmt_packet(
    packet: &Packet<'_>,
    program_number: u16,
    pid: u16,
) -> Result<Option<[u8; PACKET_BYTES]>, Error> {
    let place = locate_section(packet, TABLE_ID_PMT, "PMT")?;
    let pmt = Pmt::parse(packet)?;
    if pmt.program_number != program_number || pmt.metadata_pids().any(|p| p == pid) {
        return Ok(None);
    }
    if packet.bytes[place.end..].iter().any(|&b| b != 0xFF) {
        return Err(Error::BadSection {
            what: "PMT",
            offset: packet.offset,
            reason: "another section follows the PMT in its packet (unsupported)",
        });
    }
    // What the section grows by: the pointer descriptor, the stream entry and its
    // descriptor.
    let growth = psi::metadata_pointer_descriptor(0).len() + 5 + psi::metadata_descriptor().len();
    let Some(section) = pmt.with_id3_stream(pid).to_section() else {
        return Err(Error::PmtFull {
            offset: packet.offset,
            bytes: place.end + growth,
        });
    };
    let end = place.start + section.len();
    if end > PACKET_BYTES {
        return Err(Error::PmtFull {
            offset: packet.offset,
            bytes: end,
        });
    }
    let mut out = [0xFF_u8; PACKET_BYTES];
    out[..place.start].copy_from_slice(&packet.bytes[..place.start]);
    out[place.start..end].copy_from_slice(&section);
    Ok(Some(out))
}

/// Adds `cues` (each at a PTS, 90 kHz) to an MPEG-TS segment:
/// - the PMT (every copy in the segment) gains a timed ID3 stream (stream type 0x15, PID
///   [`METADATA_PID_PREFERRED`] or the next free one, metadata_descriptor, and a
///   metadata_pointer_descriptor in program_info), its version number moved on and its
///   CRC recomputed; a PMT that already has a type 0x15 stream keeps it and its PID;
/// - each cue becomes one PES packet (private_stream_1, PTS, the ID3 tag of
///   [`Cue::to_id3_bytes`]) split into TS packets, inserted after the first PMT, just
///   before the first audio or video PES packet whose PTS is at or after the cue's (at
///   the end of the segment when there is none);
/// - the continuity counters of the metadata PID are renumbered over the segment.
///
/// Packets of other PIDs are copied unchanged, in their order.
pub fn inject(segment: &[u8], cues: &[(u64, Cue)]) -> Result<TsInjection, Error> {
    if cues.len() > CUES_PER_RUN_MAX {
        return Err(Error::TooMany {
            what: "cues in one run",
            max: CUES_PER_RUN_MAX,
        });
    }
    let packets = packets(segment)?;
    let program = find_program(&packets)?;
    let existing = program.pmt.metadata_pids().next();
    let pid = match existing {
        Some(pid) => pid,
        None => choose_pid(&packets, &program)?,
    };
    let starts = media_pes_starts(&packets, &program.pmt)?;

    // Each cue's TS packets and the index of the packet they go before.
    let mut inserts: Vec<(usize, usize, Vec<[u8; PACKET_BYTES]>)> = Vec::with_capacity(cues.len());
    for (order, (pts, cue)) in cues.iter().enumerate() {
        let before = starts
            .iter()
            .find(|start| start.index > program.pmt_packet && pts_diff(start.pts, *pts) >= 0)
            .map_or(packets.len(), |start| start.index);
        let pes = metadata_pes(*pts, &cue.to_id3_bytes()).ok_or(Error::TooLarge {
            what: "cue ID3 tag",
            bytes: cue.to_id3_bytes().len() as u64,
            max_bytes: usize::from(u16::MAX) - 8,
        })?;
        inserts.push((before, order, packetize(pid, &pes, 0)));
    }
    // By position, then by PTS, then as given.
    inserts.sort_by(|a, b| {
        a.0.cmp(&b.0)
            .then(pts_diff(cues[a.1].0, cues[b.1].0).cmp(&0))
            .then(a.1.cmp(&b.1))
    });

    let added: usize = inserts.iter().map(|(_, _, p)| p.len()).sum();
    let mut out = Vec::with_capacity(segment.len() + added * PACKET_BYTES);
    let mut inserted = vec![(0, 0); cues.len()];
    let mut pending = inserts.into_iter().peekable();
    let mut pmts_rewritten = 0;
    for (index, packet) in packets.iter().enumerate() {
        while let Some((_, order, ts_packets)) = pending.next_if(|(before, _, _)| *before == index)
        {
            inserted[order] = (out.len() / PACKET_BYTES, ts_packets.len());
            for ts_packet in ts_packets {
                out.extend_from_slice(&ts_packet);
            }
        }
        let rewritten = if packet.pid == program.pmt_pid && packet.unit_start {
            rewrite_pmt_packet(packet, program.pmt.program_number, pid)?
        } else {
            None
        };
        match rewritten {
            Some(bytes) => {
                pmts_rewritten += 1;
                out.extend_from_slice(&bytes);
            }
            None => out.extend_from_slice(packet.bytes),
        }
    }
    for (_, order, ts_packets) in pending {
        inserted[order] = (out.len() / PACKET_BYTES, ts_packets.len());
        for ts_packet in ts_packets {
            out.extend_from_slice(&ts_packet);
        }
    }
    let first_counter = packets
        .iter()
        .find(|p| p.pid == pid && p.has_payload())
        .map_or(0, |p| p.continuity_counter);
    renumber_continuity(&mut out, pid, first_counter);
    Ok(TsInjection {
        segment: out,
        pid,
        stream_added: existing.is_none(),
        pmts_rewritten,
        inserted,
    })
}

/// A timed-metadata PES packet being put together from its TS packets.
struct Assembly {
    /// Where its first TS packet starts.
    offset: usize,
    bytes: Vec<u8>,
    last_counter: u8,
    broken: Option<&'static str>,
}

impl Assembly {
    fn start(packet: &Packet<'_>) -> Assembly {
        let mut assembly = Assembly {
            offset: packet.offset,
            bytes: Vec::new(),
            last_counter: packet.continuity_counter,
            broken: None,
        };
        assembly.append(packet.payload());
        assembly
    }

    fn append(&mut self, payload: &[u8]) {
        if self.broken.is_some() {
            return;
        }
        if self.bytes.len() + payload.len() > METADATA_PES_BYTES_MAX {
            self.broken = Some("the PES packet is over METADATA_PES_BYTES_MAX");
            return;
        }
        self.bytes.extend_from_slice(payload);
    }

    fn push(&mut self, packet: &Packet<'_>) {
        let counter = packet.continuity_counter;
        if counter == self.last_counter {
            // A duplicate packet, which the standard allows once: same bytes again.
            return;
        }
        if counter != (self.last_counter + 1) & 0x0F {
            self.broken = Some("a continuity counter jump: a TS packet of it is missing");
        }
        self.last_counter = counter;
        self.append(packet.payload());
    }

    fn finish(self) -> ListedCue {
        let offset = self.offset;
        let header = parse_pes_header(&self.bytes, offset);
        let time = match &header {
            Ok(header) => header.pts.map_or(CueTime::Unknown, CueTime::Pts),
            Err(_) => CueTime::Unknown,
        };
        let cue = match (self.broken, header) {
            (Some(reason), _) => Err(Error::BadPes { offset, reason }),
            (None, Err(error)) => Err(error),
            (None, Ok(header)) => {
                let end = match header.packet_length {
                    0 => self.bytes.len(),
                    length => 6 + usize::from(length),
                };
                if end > self.bytes.len() || header.payload_start > end {
                    Err(Error::BadPes {
                        offset,
                        reason: "the PES packet is cut short",
                    })
                } else {
                    Cue::from_id3_bytes(&self.bytes[header.payload_start..end]).map_err(Error::Cue)
                }
            }
        };
        ListedCue { offset, time, cue }
    }
}

/// Every PES packet of the segment's timed-metadata streams (stream type 0x15 in any of
/// its PMTs), in stream order, with its PTS and the cue its ID3 tag carries (or why it
/// carries none). Stops after [`CUES_LISTED_PER_SEGMENT_MAX`] and says so.
pub fn list(segment: &[u8]) -> Result<Listing, Error> {
    let packets = packets(segment)?;
    let program = find_program(&packets)?;
    let mut metadata: Vec<u16> = program.pmt.metadata_pids().collect();
    for packet in &packets {
        if packet.pid == program.pmt_pid && packet.unit_start {
            if let Ok(pmt) = Pmt::parse(packet) {
                for pid in pmt.metadata_pids() {
                    if !metadata.contains(&pid) {
                        metadata.push(pid);
                    }
                }
            }
        }
    }
    let mut open: Vec<Option<Assembly>> = metadata.iter().map(|_| None).collect();
    let mut cues = Vec::new();
    let mut stopped = None;
    for packet in &packets {
        let Some(slot) = metadata.iter().position(|&pid| pid == packet.pid) else {
            continue;
        };
        if !packet.has_payload() {
            continue;
        }
        if packet.unit_start {
            if let Some(done) = open[slot].take() {
                cues.push(done.finish());
            }
            open[slot] = Some(Assembly::start(packet));
        } else if let Some(assembly) = &mut open[slot] {
            assembly.push(packet);
        }
        if cues.len() >= CUES_LISTED_PER_SEGMENT_MAX {
            stopped = Some(Error::TooMany {
                what: "cues in one segment",
                max: CUES_LISTED_PER_SEGMENT_MAX,
            });
            break;
        }
    }
    if stopped.is_none() {
        cues.extend(open.into_iter().flatten().map(Assembly::finish));
    }
    cues.sort_by_key(|c| c.offset);
    cues.truncate(CUES_LISTED_PER_SEGMENT_MAX);
    Ok(Listing { cues, stopped })
}

/// Builders of small, valid transport streams for the tests of this crate.
#[cfg(test)]
pub(crate) mod test_support {
    use super::packet::{packetize, PACKET_BYTES};
    use super::pes::{encode_pts, PTS_MODULUS};
    use super::psi::{ElementaryStream, Pmt};
    use crate::crc::crc32_mpeg2;

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
}

#[cfg(test)]
mod tests {
    use super::packet::{packets, PACKET_BYTES};
    use super::pes::{encode_pts, metadata_pes, PTS_MODULUS};
    use super::psi::{Pmt, STREAM_TYPE_METADATA_PES};
    use super::test_support::*;
    use super::*;
    use ovation_cues::{Frame, Id3Version, InteractionKind, Tag, TextEncoding, WriteOptions};

    fn cue(id: &str) -> Cue {
        Cue::new(id, InteractionKind::Poll, "p1").unwrap()
    }

    fn pmts(segment: &[u8]) -> Vec<Pmt> {
        packets(segment)
            .unwrap()
            .iter()
            .filter(|p| p.pid == PMT_PID)
            .map(|p| Pmt::parse(p).unwrap())
            .collect()
    }

    fn counters(segment: &[u8], pid: u16) -> Vec<u8> {
        packets(segment)
            .unwrap()
            .iter()
            .filter(|p| p.pid == pid)
            .map(|p| p.continuity_counter)
            .collect()
    }

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
    fn injects_a_metadata_stream_and_a_cue_at_its_pts() {
        let segment = av_segment(126_000, 10);
        let at = 126_000 + 4 * FRAME_TICKS + 100;
        let done = inject(&segment, &[(at, cue("q1"))]).unwrap();
        assert_eq!(done.pid, METADATA_PID_PREFERRED);
        assert!(done.stream_added);
        assert_eq!(done.pmts_rewritten, 2);
        assert_eq!(done.inserted.len(), 1);
        let (index, count) = done.inserted[0];
        assert_eq!(count, 1);
        assert_eq!(done.segment.len(), segment.len() + count * PACKET_BYTES);

        // Every PMT lists the stream, with the Apple descriptors and a new version.
        for pmt in pmts(&done.segment) {
            assert_eq!(pmt.version, 1);
            let stream = pmt.streams.last().unwrap();
            assert_eq!(stream.stream_type, STREAM_TYPE_METADATA_PES);
            assert_eq!(stream.pid, 0x0102);
            assert_eq!(&stream.descriptors[..2], &[0x26, 13]);
            assert_eq!(&pmt.program_info[..2], &[0x25, 15]);
        }

        // The cue's packet sits right before the first video or audio PES at or after
        // its PTS: frame 5's audio (PTS of frame 5 - 1000 is after `at`).
        let all = packets(&done.segment).unwrap();
        let next = &all[index + 1];
        assert!(next.unit_start);
        let header = parse_pes_header(next.payload(), 0).unwrap();
        assert!(header.pts.unwrap() >= at);
        let previous_media_starts: Vec<u64> = all[..index]
            .iter()
            .filter(|p| p.unit_start && (p.pid == VIDEO_PID || p.pid == AUDIO_PID))
            .map(|p| parse_pes_header(p.payload(), 0).unwrap().pts.unwrap())
            .collect();
        assert!(previous_media_starts.iter().all(|&pts| pts < at));

        // Other PIDs' packets are unchanged and in order.
        let others = |s: &[u8]| -> Vec<Vec<u8>> {
            packets(s)
                .unwrap()
                .iter()
                .filter(|p| p.pid != PMT_PID && p.pid != 0x0102)
                .map(|p| p.bytes.to_vec())
                .collect()
        };
        assert_eq!(others(&done.segment), others(&segment));

        // The lister reads it back.
        let listing = list(&done.segment).unwrap();
        assert_eq!(listing.stopped, None);
        assert_eq!(listing.cues.len(), 1);
        assert_eq!(listing.cues[0].time, CueTime::Pts(at));
        assert_eq!(listing.cues[0].cue, Ok(cue("q1")));
        assert_eq!(listing.cues[0].offset, index * PACKET_BYTES);
    }

    #[test]
    fn a_second_run_reuses_the_stream_and_continues_the_counters() {
        let segment = av_segment(126_000, 10);
        let first = inject(&segment, &[(130_000, cue("a")), (150_000, cue("b"))]).unwrap();
        let second = inject(&first.segment, &[(140_000, cue("c"))]).unwrap();
        assert_eq!(second.pid, first.pid);
        assert!(!second.stream_added);
        assert_eq!(second.pmts_rewritten, 0);
        // The PMTs are those of the first run, byte for byte.
        assert_eq!(pmts(&second.segment), pmts(&first.segment));
        assert_eq!(counters(&second.segment, first.pid), [0, 1, 2]);
        let listed: Vec<(CueTime, String)> = list(&second.segment)
            .unwrap()
            .cues
            .into_iter()
            .map(|c| (c.time, c.cue.unwrap().id.as_str().to_owned()))
            .collect();
        assert_eq!(
            listed,
            [
                (CueTime::Pts(130_000), "a".to_owned()),
                (CueTime::Pts(140_000), "c".to_owned()),
                (CueTime::Pts(150_000), "b".to_owned())
            ]
        );
    }

    #[test]
    fn cues_past_the_last_frame_go_at_the_end_and_cues_at_one_place_by_pts() {
        let segment = av_segment(126_000, 4);
        let late = 126_000 + 100 * FRAME_TICKS;
        let done = inject(&segment, &[(late + 5, cue("y")), (late, cue("x"))]).unwrap();
        let count = done.segment.len() / PACKET_BYTES;
        assert_eq!(done.inserted, [(count - 1, 1), (count - 2, 1)]);
        let ids: Vec<String> = list(&done.segment)
            .unwrap()
            .cues
            .into_iter()
            .map(|c| c.cue.unwrap().id.as_str().to_owned())
            .collect();
        assert_eq!(ids, ["x", "y"]);
    }

    #[test]
    fn a_taken_pid_is_skipped() {
        let mut segment = av_segment(126_000, 2);
        // A packet on 0x0102 that the PMT does not list (e.g. an SCTE-35 leftover).
        let mut stray = [0xFF_u8; PACKET_BYTES];
        stray[..4].copy_from_slice(&[0x47, 0x01, 0x02, 0x10]);
        segment.extend_from_slice(&stray);
        let done = inject(&segment, &[(126_000, cue("q"))]).unwrap();
        assert_eq!(done.pid, 0x0103);
        assert_eq!(list(&done.segment).unwrap().cues.len(), 1);
    }

    /// An ID3 PES of several TS packets: the cue payload padded with an unknown field.
    fn long_cue_packets(pts: u64) -> Vec<[u8; PACKET_BYTES]> {
        let payload = format!("v=1;cue=long;ref=quiz:q9;pad={}", "x".repeat(900));
        let tag = Tag {
            version: Id3Version::V2_4,
            frames: vec![Frame::UserText {
                encoding: TextEncoding::Latin1,
                description: "ovation".to_owned(),
                value: payload,
            }],
        };
        let id3 = tag.to_bytes(&WriteOptions::default()).unwrap();
        packetize(0x0102, &metadata_pes(pts, &id3).unwrap(), 3)
    }

    #[test]
    fn the_lister_reassembles_multi_packet_pes_and_reports_gaps() {
        let base = inject(&av_segment(126_000, 6), &[(127_000, cue("short"))]).unwrap();
        let long = long_cue_packets(200_000);
        assert!(long.len() >= 6);
        let mut whole = base.segment.clone();
        for packet in &long {
            whole.extend_from_slice(packet);
        }
        let listing = list(&whole).unwrap();
        assert_eq!(listing.cues.len(), 2);
        assert_eq!(listing.cues[1].time, CueTime::Pts(200_000));
        let long_cue = listing.cues[1].cue.as_ref().unwrap();
        assert_eq!(long_cue.id.as_str(), "long");
        assert_eq!(long_cue.reference.id(), "q9");

        // Drop a middle packet: the PES is reported broken, the other cue still read.
        let mut gap = base.segment.clone();
        for (i, packet) in long.iter().enumerate() {
            if i != 2 {
                gap.extend_from_slice(packet);
            }
        }
        let listing = list(&gap).unwrap();
        assert_eq!(listing.cues[0].cue, Ok(cue("short")));
        assert_eq!(
            listing.cues[1].cue,
            Err(Error::BadPes {
                offset: base.segment.len(),
                reason: "a continuity counter jump: a TS packet of it is missing"
            })
        );

        // A duplicated packet (same counter) is read once.
        let mut duplicate = base.segment.clone();
        for (i, packet) in long.iter().enumerate() {
            duplicate.extend_from_slice(packet);
            if i == 1 {
                duplicate.extend_from_slice(packet);
            }
        }
        assert!(list(&duplicate).unwrap().cues[1].cue.is_ok());

        // Cut the last packet: the PES is shorter than its length says.
        let mut cut = base.segment.clone();
        for packet in &long[..long.len() - 1] {
            cut.extend_from_slice(packet);
        }
        assert_eq!(
            list(&cut).unwrap().cues[1].cue,
            Err(Error::BadPes {
                offset: base.segment.len(),
                reason: "the PES packet is cut short"
            })
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
