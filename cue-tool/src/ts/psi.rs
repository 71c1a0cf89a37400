//! PSI sections (ISO/IEC 13818-1 2.4.4): the PAT and the PMT, read and written, with
//! their CRC-32/MPEG-2; and the two descriptors of the Apple "Timed Metadata for HTTP
//! Live Streaming" specification that announce an ID3 metadata stream.

use crate::crc::crc32_mpeg2;
use crate::ts::packet::{Packet, PACKET_BYTES};
use crate::Error;

/// `table_id` of a PAT section.
pub const TABLE_ID_PAT: u8 = 0x00;
/// `table_id` of a PMT section.
pub const TABLE_ID_PMT: u8 = 0x02;
/// `stream_type` of metadata carried in PES packets (ISO/IEC 13818-1 Table 2-34), the
/// type of an HLS timed ID3 stream.
pub const STREAM_TYPE_METADATA_PES: u8 = 0x15;
/// `descriptor_tag` of the metadata_pointer_descriptor (in the program_info loop).
pub const TAG_METADATA_POINTER: u8 = 0x25;
/// `descriptor_tag` of the metadata_descriptor (in the stream's ES_info loop).
pub const TAG_METADATA: u8 = 0x26;
/// The registered format identifier of ID3 metadata: `ID3 `.
pub const FORMAT_ID3: [u8; 4] = *b"ID3 ";
/// `metadata_service_id` this tool gives the ID3 stream (one metadata service).
pub const METADATA_SERVICE_ID: u8 = 0x00;
/// The largest section_length of a PAT or PMT.
const SECTION_LENGTH_MAX: usize = 1021;
/// program_info_length and ES_info_length use 10 of their 12 bits.
const DESCRIPTORS_LENGTH_MAX: usize = 0x3FF;

/// Where a section lies inside one TS packet.
#[derive(Debug, Clone, Copy)]
pub struct SectionPlace {
    /// First byte of the section in the packet (after the pointer field and any tail of a
    /// previous section).
    pub start: usize,
    /// One past the CRC.
    pub end: usize,
}

/// Finds the section that starts in `packet` (which must have
/// `payload_unit_start_indicator`) and checks that it ends inside the packet, that its
/// `table_id` is `table_id`, that it has the long syntax, and its CRC.
pub fn locate_section(
    packet: &Packet<'_>,
    table_id: u8,
    what: &'static str,
) -> Result<SectionPlace, Error> {
    let bad = |reason| Error::BadSection {
        what,
        offset: packet.offset,
        reason,
    };
    let payload = packet.payload();
    let Some((&pointer, _)) = payload.split_first() else {
        return Err(bad("the packet has no payload"));
    };
    let start = packet.payload_start + 1 + usize::from(pointer);
    if start + 3 > PACKET_BYTES {
        return Err(bad("the pointer field points past the packet"));
    }
    let bytes = packet.bytes;
    if bytes[start] != table_id {
        return Err(bad("unexpected table_id"));
    }
    if bytes[start + 1] & 0x80 == 0 {
        return Err(bad("section_syntax_indicator is 0"));
    }
    let section_length =
        (usize::from(bytes[start + 1] & 0x0F) << 8) | usize::from(bytes[start + 2]);
    if section_length > SECTION_LENGTH_MAX {
        return Err(bad("section_length is over 1021"));
    }
    // 5 bytes of header after section_length, 4 of CRC.
    if section_length < 9 {
        return Err(bad("section_length is too short for the header and CRC"));
    }
    let end = start + 3 + section_length;
    if end > PACKET_BYTES {
        return Err(Error::SectionSpansPackets {
            what,
            offset: packet.offset,
        });
    }
    let stored = u32::from_be_bytes([
        bytes[end - 4],
        bytes[end - 3],
        bytes[end - 2],
        bytes[end - 1],
    ]);
    let computed = crc32_mpeg2(&bytes[start..end - 4]);
    if stored != computed {
        return Err(Error::BadCrc {
            what,
            offset: packet.offset,
            stored,
            computed,
        });
    }
    Ok(SectionPlace { start, end })
}

/// A Program Association Table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pat {
    pub transport_stream_id: u16,
    /// `(program_number, PMT PID)`, without the network PID (program 0).
    pub programs: Vec<(u16, u16)>,
}

/// Reads the PAT section that starts in `packet`.
pub fn parse_pat(packet: &Packet<'_>) -> Result<Pat, Error> {
    let place = locate_section(packet, TABLE_ID_PAT, "PAT")?;
    let section = &packet.bytes[place.start..place.end];
    let entries = &section[8..section.len() - 4];
    if entries.len() % 4 != 0 {
        return Err(Error::BadSection {
            what: "PAT",
            offset: packet.offset,
            reason: "the program loop is not a whole number of 4-byte entries",
        });
    }
    let programs = entries
        .chunks_exact(4)
        .map(|e| {
            (
                u16::from_be_bytes([e[0], e[1]]),
                (u16::from(e[2] & 0x1F) << 8) | u16::from(e[3]),
            )
        })
        .filter(|&(number, _)| number != 0)
        .collect();
    Ok(Pat {
        transport_stream_id: u16::from_be_bytes([section[3], section[4]]),
        programs,
    })
}

/// An elementary stream of a PMT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElementaryStream {
    pub stream_type: u8,
    pub pid: u16,
    /// The ES_info descriptors, as stored.
    pub descriptors: Vec<u8>,
}

/// A Program Map Table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pmt {
    pub program_number: u16,
    pub version: u8,
    pub current_next: bool,
    pub pcr_pid: u16,
    /// The program_info descriptors, as stored.
    pub program_info: Vec<u8>,
    pub streams: Vec<ElementaryStream>,
}

/// Whether `descriptors` (a descriptor loop) holds a descriptor with `tag`; a loop that
/// does not parse holds none.
pub fn has_descriptor(descriptors: &[u8], tag: u8) -> bool {
    let mut rest = descriptors;
    while let [descriptor_tag, length, tail @ ..] = rest {
        if *descriptor_tag == tag {
            return true;
        }
        let Some(next) = tail.get(usize::from(*length)..) else {
            return false;
        };
        rest = next;
    }
    false
}

impl Pmt {
    /// Reads the PMT section that starts in `packet`.
    pub fn parse(packet: &Packet<'_>) -> Result<Pmt, Error> {
        let place = locate_section(packet, TABLE_ID_PMT, "PMT")?;
        let bad = |reason| Error::BadSection {
            what: "PMT",
            offset: packet.offset,
            reason,
        };
        let s = &packet.bytes[place.start..place.end];
        let body_end = s.len() - 4;
        if body_end < 12 {
            return Err(bad("section too short for the PMT header"));
        }
        if s[6] != 0 || s[7] != 0 {
            return Err(bad("a PMT has one section (section_number 0)"));
        }
        let program_info_length = (usize::from(s[10] & 0x0F) << 8) | usize::from(s[11]);
        let info_end = 12 + program_info_length;
        if info_end > body_end {
            return Err(bad("program_info runs past the section"));
        }
        let mut streams = Vec::new();
        let mut pos = info_end;
        while pos < body_end {
            if pos + 5 > body_end {
                return Err(bad("an elementary stream entry runs past the section"));
            }
            let es_info_length = (usize::from(s[pos + 3] & 0x0F) << 8) | usize::from(s[pos + 4]);
            let es_end = pos + 5 + es_info_length;
            if es_end > body_end {
                return Err(bad("ES_info runs past the section"));
            }
            streams.push(ElementaryStream {
                stream_type: s[pos],
                pid: (u16::from(s[pos + 1] & 0x1F) << 8) | u16::from(s[pos + 2]),
                descriptors: s[pos + 5..es_end].to_vec(),
            });
            pos = es_end;
        }
        Ok(Pmt {
            program_number: u16::from_be_bytes([s[3], s[4]]),
            version: (s[5] >> 1) & 0x1F,
            current_next: s[5] & 0x01 != 0,
            pcr_pid: (u16::from(s[8] & 0x1F) << 8) | u16::from(s[9]),
            program_info: s[12..info_end].to_vec(),
            streams,
        })
    }

    /// The section bytes, CRC included, reserved bits set to 1; `None` when a descriptor
    /// loop or the whole section is longer than the syntax allows.
    pub fn to_section(&self) -> Option<Vec<u8>> {
        if self.program_info.len() > DESCRIPTORS_LENGTH_MAX
            || self
                .streams
                .iter()
                .any(|s| s.descriptors.len() > DESCRIPTORS_LENGTH_MAX)
        {
            return None;
        }
        let mut s = vec![TABLE_ID_PMT, 0, 0];
        s.extend_from_slice(&self.program_number.to_be_bytes());
        s.push(0xC0 | ((self.version & 0x1F) << 1) | u8::from(self.current_next));
        s.extend_from_slice(&[0, 0]);
        s.extend_from_slice(&(0xE000 | (self.pcr_pid & 0x1FFF)).to_be_bytes());
        s.extend_from_slice(&(0xF000 | self.program_info.len() as u16).to_be_bytes());
        s.extend_from_slice(&self.program_info);
        for stream in &self.streams {
            s.push(stream.stream_type);
            s.extend_from_slice(&(0xE000 | (stream.pid & 0x1FFF)).to_be_bytes());
            s.extend_from_slice(&(0xF000 | stream.descriptors.len() as u16).to_be_bytes());
            s.extend_from_slice(&stream.descriptors);
        }
        let section_length = s.len() - 3 + 4;
        if section_length > SECTION_LENGTH_MAX {
            return None;
        }
        s[1] = 0xB0 | (section_length >> 8) as u8;
        s[2] = section_length as u8;
        let crc = crc32_mpeg2(&s);
        s.extend_from_slice(&crc.to_be_bytes());
        Some(s)
    }

    /// The PIDs of the timed-metadata (stream type 0x15) streams.
    pub fn metadata_pids(&self) -> impl Iterator<Item = u16> + '_ {
        self.streams
            .iter()
            .filter(|s| s.stream_type == STREAM_TYPE_METADATA_PES)
            .map(|s| s.pid)
    }

    /// The PMT with an ID3 timed-metadata stream on `pid` added as Apple's specification
    /// lays it out: a metadata_pointer_descriptor in program_info (unless one is there),
    /// a stream of type 0x15 with a metadata_descriptor, and the version number moved on
    /// (the table changed).
    pub fn with_id3_stream(&self, pid: u16) -> Pmt {
        let mut pmt = self.clone();
        if !has_descriptor(&pmt.program_info, TAG_METADATA_POINTER) {
            pmt.program_info
                .extend_from_slice(&metadata_pointer_descriptor(self.program_number));
        }
        pmt.streams.push(ElementaryStream {
            stream_type: STREAM_TYPE_METADATA_PES,
            pid,
            descriptors: metadata_descriptor().to_vec(),
        });
        pmt.version = (self.version + 1) & 0x1F;
        pmt
    }
}

/// The metadata_pointer_descriptor (ISO/IEC 13818-1 2.6.58) of an ID3 stream carried in
/// this transport stream, as the HLS timed metadata specification fills it in.
pub fn metadata_pointer_descriptor(program_number: u16) -> [u8; 17] {
    let [program_hi, program_lo] = program_number.to_be_bytes();
    let [i, d, three, space] = FORMAT_ID3;
    [
        TAG_METADATA_POINTER,
        15,
        // metadata_application_format: 0xFFFF, "see the identifier that follows".
        0xFF,
        0xFF,
        i,
        d,
        three,
        space,
        // metadata_format: 0xFF, identified by metadata_format_identifier.
        0xFF,
        i,
        d,
        three,
        space,
        METADATA_SERVICE_ID,
        // metadata_locator_record_flag 0, MPEG_carriage_flags 0 (same transport
        // stream), reserved 11111.
        0x1F,
        program_hi,
        program_lo,
    ]
}

/// The metadata_descriptor (ISO/IEC 13818-1 2.6.60) of an ID3 stream, as the HLS timed
/// metadata specification fills it in.
pub fn metadata_descriptor() -> [u8; 15] {
    let [i, d, three, space] = FORMAT_ID3;
    [
        TAG_METADATA,
        13,
        0xFF,
        0xFF,
        i,
        d,
        three,
        space,
        0xFF,
        i,
        d,
        three,
        space,
        METADATA_SERVICE_ID,
        // decoder_config_flags 000 (no decoder configuration: ID3 needs none),
        // DSM-CC_flag 0, reserved 1111.
        0x0F,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ts::packet::parse_packet;
    use crate::ts::test_support::section_packet;

    /// A PAT written out by hand, for transport_stream_id 1, program 1 on PID 0x1000,
    /// with the CRC that independent tools compute for it (ffmpeg writes these bytes).
    const PAT: [u8; 16] = [
        0x00, 0xB0, 0x0D, 0x00, 0x01, 0xC1, 0x00, 0x00, 0x00, 0x01, 0xF0, 0x00, 0x2A, 0xB1, 0x04,
        0xB2,
    ];

    #[test]
    fn reads_a_pat_with_a_known_crc() {
        let bytes = section_packet(0, &PAT);
        let packet = parse_packet(&bytes, 0).unwrap();
        let pat = parse_pat(&packet).unwrap();
        assert_eq!(pat.transport_stream_id, 1);
        assert_eq!(pat.programs, [(1, 0x1000)]);
        assert_eq!(crc32_mpeg2(&PAT[..12]), 0x2AB1_04B2);
    }

    #[test]
    fn a_wrong_crc_is_refused_with_both_values() {
        let mut pat = PAT;
        pat[9] = 0x02;
        let bytes = section_packet(0, &pat);
        let packet = parse_packet(&bytes, 188).unwrap();
        assert_eq!(
            parse_pat(&packet).unwrap_err(),
            Error::BadCrc {
                what: "PAT",
                offset: 188,
                stored: 0x2AB1_04B2,
                computed: crc32_mpeg2(&pat[..12]),
            }
        );
    }

    #[test]
    fn pmt_round_trips_and_gains_the_id3_stream() {
        let pmt = Pmt {
            program_number: 1,
            version: 0,
            current_next: true,
            pcr_pid: 0x100,
            program_info: Vec::new(),
            streams: vec![
                ElementaryStream {
                    stream_type: 0x1B,
                    pid: 0x100,
                    descriptors: Vec::new(),
                },
                ElementaryStream {
                    stream_type: 0x0F,
                    pid: 0x101,
                    descriptors: vec![0x0A, 0x04, b'e', b'n', b'g', 0x00],
                },
            ],
        };
        let section = pmt.to_section().unwrap();
        // The section as ffmpeg writes it for H.264 + AAC, reserved bits and all.
        assert_eq!(
            &section[..section.len() - 4],
            &[
                0x02, 0xB0, 0x1D, 0x00, 0x01, 0xC1, 0x00, 0x00, 0xE1, 0x00, 0xF0, 0x00, 0x1B, 0xE1,
                0x00, 0xF0, 0x00, 0x0F, 0xE1, 0x01, 0xF0, 0x06, 0x0A, 0x04, b'e', b'n', b'g', 0x00
            ]
        );
        assert_eq!(crc32_mpeg2(&section), 0, "the CRC closes the section");
        let bytes = section_packet(0x1000, &section);
        let packet = parse_packet(&bytes, 0).unwrap();
        assert_eq!(Pmt::parse(&packet).unwrap(), pmt);

        let with = pmt.with_id3_stream(0x102);
        assert_eq!(with.version, 1);
        let section = with.to_section().unwrap();
        let bytes = section_packet(0x1000, &section);
        let packet = parse_packet(&bytes, 0).unwrap();
        let parsed = Pmt::parse(&packet).unwrap();
        assert_eq!(parsed, with);
        assert_eq!(parsed.metadata_pids().collect::<Vec<_>>(), [0x102]);
        assert_eq!(
            parsed.program_info,
            [
                0x25, 0x0F, 0xFF, 0xFF, b'I', b'D', b'3', b' ', 0xFF, b'I', b'D', b'3', b' ', 0x00,
                0x1F, 0x00, 0x01
            ]
        );
        assert_eq!(
            parsed.streams[2].descriptors,
            [
                0x26, 0x0D, 0xFF, 0xFF, b'I', b'D', b'3', b' ', 0xFF, b'I', b'D', b'3', b' ', 0x00,
                0x0F
            ]
        );
        // The entry itself: stream_type 0x15, PID 0x0102, ES_info_length 15.
        let entry = &section[section.len() - 4 - 20..section.len() - 4 - 15];
        assert_eq!(entry, &[0x15, 0xE1, 0x02, 0xF0, 0x0F]);
        // A second addition keeps the one pointer descriptor.
        let twice = with.with_id3_stream(0x103);
        assert_eq!(twice.program_info, with.program_info);
    }

    #[test]
    fn malformed_pmts_are_errors_not_panics() {
        let pmt = Pmt {
            program_number: 1,
            version: 3,
            current_next: true,
            pcr_pid: 0x100,
            program_info: vec![0x05, 0x04, b'C', b'U', b'E', b'I'],
            streams: vec![ElementaryStream {
                stream_type: 0x1B,
                pid: 0x100,
                descriptors: Vec::new(),
            }],
        };
        let mut section = pmt.to_section().unwrap();
        // program_info_length larger than the section, CRC recomputed.
        section[11] = 0x40;
        let body = section.len() - 4;
        let crc = crc32_mpeg2(&section[..body]);
        section[body..].copy_from_slice(&crc.to_be_bytes());
        let bytes = section_packet(0x1000, &section);
        let packet = parse_packet(&bytes, 0).unwrap();
        assert_eq!(
            Pmt::parse(&packet).unwrap_err(),
            Error::BadSection {
                what: "PMT",
                offset: 0,
                reason: "program_info runs past the section"
            }
        );
        // A section longer than the packet.
        let mut long = section_packet(0x1000, &pmt.to_section().unwrap());
        long[6] = 0xB0;
        long[7] = 0xFF;
        let packet = parse_packet(&long, 0).unwrap();
        assert_eq!(
            Pmt::parse(&packet).unwrap_err(),
            Error::SectionSpansPackets {
                what: "PMT",
                offset: 0
            }
        );
    }

    #[test]
    fn descriptor_loops() {
        let descriptors = [0x0A, 0x01, 0x00, 0x25, 0x00];
        assert!(has_descriptor(&descriptors, 0x25));
        assert!(has_descriptor(&descriptors, 0x0A));
        assert!(!has_descriptor(&descriptors, 0x26));
        assert!(!has_descriptor(&[0x0A, 0x09, 0x00], 0x25));
        assert!(!has_descriptor(&[], 0x25));
    }
}
