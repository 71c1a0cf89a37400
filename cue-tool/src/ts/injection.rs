//! Adding cues to an MPEG-TS segment: choosing the metadata PID, rewriting every PMT to
//! list the timed ID3 stream, and inserting each cue's PES packet before the first media
//! packet at or after its PTS.

use super::packet::{packetize, packets, renumber_continuity, Packet, PACKET_BYTES};
use super::pes::{metadata_pes, pts_diff};
use super::psi::{self, locate_section, Pmt, TABLE_ID_PMT};
use super::{
    find_program, media_pes_starts, Program, METADATA_PID_PREFERRED, PID_FIRST_USABLE,
    PID_LAST_USABLE,
};
use crate::limits::CUES_PER_RUN_MAX;
use crate::Error;
use ovation_cues::Cue;

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

#[cfg(test)]
mod tests {
    use super::super::list;
    use super::super::packet::{packets, PACKET_BYTES};
    use super::super::pes::parse_pes_header;
    use super::super::psi::{Pmt, STREAM_TYPE_METADATA_PES};
    use super::super::test_support::*;
    use super::*;
    use crate::CueTime;

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
}
