//! Listing the cues of an MPEG-TS segment: reassembling each timed-metadata PES packet
//! from its TS packets (noting gaps and cuts) and reading the cue from its ID3 tag.

use super::find_program;
use super::packet::{packets, Packet};
use super::pes::parse_pes_header;
use super::psi::Pmt;
use crate::limits::{CUES_LISTED_PER_SEGMENT_MAX, METADATA_PES_BYTES_MAX};
use crate::{CueTime, Error, ListedCue, Listing};
use ovation_cues::Cue;

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

#[cfg(test)]
mod tests {
    use super::super::inject;
    use super::super::packet::{packetize, PACKET_BYTES};
    use super::super::pes::metadata_pes;
    use super::super::test_support::*;
    use super::*;
    use ovation_cues::{Frame, Id3Version, Tag, TextEncoding, WriteOptions};

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
}
