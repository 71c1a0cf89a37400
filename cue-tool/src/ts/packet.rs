//! MPEG-TS packets (ISO/IEC 13818-1 2.4.3): 188 bytes, sync byte 0x47, a 13-bit PID,
//! `payload_unit_start_indicator`, a 4-bit continuity counter, an optional adaptation
//! field, and a payload.

use crate::limits::SEGMENT_BYTES_MAX;
use crate::Error;

/// Bytes in one TS packet.
pub const PACKET_BYTES: usize = 188;
/// Payload bytes of a packet without adaptation field.
pub const PAYLOAD_BYTES_MAX: usize = PACKET_BYTES - 4;
/// The first byte of every packet.
pub const SYNC_BYTE: u8 = 0x47;
/// The PID of the PAT.
pub const PAT_PID: u16 = 0x0000;
/// The PID of null (stuffing) packets.
pub const NULL_PID: u16 = 0x1FFF;

/// One TS packet of a segment, its header decoded.
#[derive(Debug, Clone, Copy)]
pub struct Packet<'a> {
    /// Where the packet starts in the segment.
    pub offset: usize,
    /// The whole packet, [`PACKET_BYTES`] long.
    pub bytes: &'a [u8],
    pub pid: u16,
    /// `payload_unit_start_indicator`: a PES packet or a PSI section starts here.
    pub unit_start: bool,
    pub continuity_counter: u8,
    /// Where the payload starts in [`Packet::bytes`]; [`PACKET_BYTES`] when there is none.
    pub payload_start: usize,
}

impl<'a> Packet<'a> {
    /// The payload (empty when the packet has none).
    pub fn payload(&self) -> &'a [u8] {
        &self.bytes[self.payload_start..]
    }

    /// Whether the packet carries payload (and so counts for the continuity counter).
    pub fn has_payload(&self) -> bool {
        self.bytes[3] & 0x10 != 0
    }
}

/// Decodes the header of the packet `bytes` ([`PACKET_BYTES`] long) found at `offset`.
pub fn parse_packet(bytes: &[u8], offset: usize) -> Result<Packet<'_>, Error> {
    if bytes.len() != PACKET_BYTES {
        return Err(Error::NotWholePackets {
            bytes: offset + bytes.len(),
        });
    }
    if bytes[0] != SYNC_BYTE {
        return Err(Error::BadSyncByte { offset });
    }
    let pid = (u16::from(bytes[1] & 0x1F) << 8) | u16::from(bytes[2]);
    let unit_start = bytes[1] & 0x40 != 0;
    let adaptation_field_control = (bytes[3] >> 4) & 0x03;
    let continuity_counter = bytes[3] & 0x0F;
    let payload_start = match adaptation_field_control {
        // Payload only.
        0b01 => 4,
        // Adaptation field, then payload (or nothing for 0b10).
        0b10 | 0b11 => {
            let end = 5 + usize::from(bytes[4]);
            if end > PACKET_BYTES {
                return Err(Error::BadAdaptationField { offset });
            }
            if adaptation_field_control == 0b10 {
                PACKET_BYTES
            } else {
                end
            }
        }
        // Reserved: no payload to read.
        _ => PACKET_BYTES,
    };
    Ok(Packet {
        offset,
        bytes,
        pid,
        unit_start,
        continuity_counter,
        payload_start,
    })
}

/// Every packet of a segment, after checking that it is at most
/// [`SEGMENT_BYTES_MAX`], a whole number of packets, and that each starts with the sync
/// byte.
pub fn packets(segment: &[u8]) -> Result<Vec<Packet<'_>>, Error> {
    if segment.len() > SEGMENT_BYTES_MAX {
        return Err(Error::TooLarge {
            what: "segment",
            bytes: segment.len() as u64,
            max_bytes: SEGMENT_BYTES_MAX,
        });
    }
    if segment.is_empty() || segment.len() % PACKET_BYTES != 0 {
        return Err(Error::NotWholePackets {
            bytes: segment.len(),
        });
    }
    segment
        .chunks_exact(PACKET_BYTES)
        .enumerate()
        .map(|(index, bytes)| parse_packet(bytes, index * PACKET_BYTES))
        .collect()
}

/// Splits a PES packet into TS packets on `pid`: `payload_unit_start_indicator` on the
/// first, payload-only packets while 184 bytes remain, and the last one filled up with an
/// adaptation field of stuffing bytes (ISO/IEC 13818-1 2.4.3.5: stuffing in the
/// adaptation field, never after the PES packet). Continuity counters count up from
/// `first_counter`.
pub fn packetize(pid: u16, pes: &[u8], first_counter: u8) -> Vec<[u8; PACKET_BYTES]> {
    let mut out = Vec::with_capacity(pes.len().div_ceil(PAYLOAD_BYTES_MAX));
    let mut rest = pes;
    let mut counter = first_counter & 0x0F;
    while !rest.is_empty() {
        let mut packet = [0xFF_u8; PACKET_BYTES];
        packet[0] = SYNC_BYTE;
        let unit_start = if out.is_empty() { 0x40 } else { 0x00 };
        packet[1] = unit_start | ((pid >> 8) as u8 & 0x1F);
        packet[2] = pid as u8;
        let take = rest.len().min(PAYLOAD_BYTES_MAX);
        if take == PAYLOAD_BYTES_MAX {
            packet[3] = 0x10 | counter;
        } else {
            // Adaptation field bytes, its length byte included.
            let adaptation = PAYLOAD_BYTES_MAX - take;
            packet[3] = 0x30 | counter;
            packet[4] = (adaptation - 1) as u8;
            if adaptation >= 2 {
                // No flags (no PCR, no discontinuity); the rest stays 0xFF stuffing.
                packet[5] = 0x00;
            }
        }
        packet[PACKET_BYTES - take..].copy_from_slice(&rest[..take]);
        rest = &rest[take..];
        counter = (counter + 1) & 0x0F;
        out.push(packet);
    }
    out
}

/// Sets the continuity counters of the packets on `pid` in `stream` (whole packets) to
/// count up from `first`, as a demuxer expects after packets were inserted. Packets
/// without payload keep the counter of the packet before them, as the standard asks.
pub fn renumber_continuity(stream: &mut [u8], pid: u16, first: u8) {
    let mut next = first & 0x0F;
    for packet in stream.chunks_exact_mut(PACKET_BYTES) {
        let packet_pid = (u16::from(packet[1] & 0x1F) << 8) | u16::from(packet[2]);
        if packet_pid != pid {
            continue;
        }
        if packet[3] & 0x10 != 0 {
            packet[3] = (packet[3] & 0xF0) | next;
            next = (next + 1) & 0x0F;
        } else {
            packet[3] = (packet[3] & 0xF0) | (next.wrapping_sub(1) & 0x0F);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reassemble(packets: &[[u8; PACKET_BYTES]]) -> Vec<u8> {
        let mut out = Vec::new();
        for bytes in packets {
            let packet = parse_packet(bytes, 0).unwrap();
            out.extend_from_slice(packet.payload());
        }
        out
    }

    #[test]
    fn packetize_fills_with_adaptation_stuffing_and_counts_up() {
        for len in [1_usize, 2, 100, 182, 183, 184, 185, 367, 368, 369, 1000] {
            let pes: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let packets = packetize(0x0102, &pes, 14);
            assert_eq!(packets.len(), len.div_ceil(184), "len {len}");
            assert_eq!(reassemble(&packets), pes, "len {len}");
            for (i, bytes) in packets.iter().enumerate() {
                let packet = parse_packet(bytes, 0).unwrap();
                assert_eq!(packet.pid, 0x0102);
                assert_eq!(packet.unit_start, i == 0);
                assert_eq!(packet.continuity_counter, ((14 + i) % 16) as u8);
                assert!(packet.has_payload());
            }
        }
    }

    #[test]
    fn one_byte_and_two_byte_stuffing() {
        // 183 bytes of payload: the adaptation field is only its length byte (0).
        let packets = packetize(0x0102, &[0xAB; 183], 0);
        assert_eq!(packets[0][3], 0x30);
        assert_eq!(packets[0][4], 0);
        assert_eq!(packets[0][5], 0xAB);
        // 182 bytes: length 1 and a flags byte of 0.
        let packets = packetize(0x0102, &[0xAB; 182], 0);
        assert_eq!(&packets[0][3..7], &[0x30, 1, 0x00, 0xAB]);
        // 10 bytes: length 173, flags 0, 172 stuffing bytes 0xFF.
        let packets = packetize(0x1FFE, &[0xAB; 10], 5);
        assert_eq!(&packets[0][..6], &[0x47, 0x5F, 0xFE, 0x35, 173, 0x00]);
        assert!(packets[0][6..178].iter().all(|&b| b == 0xFF));
        assert!(packets[0][178..].iter().all(|&b| b == 0xAB));
    }

    #[test]
    fn renumbering_counts_only_the_pid_and_payload_packets() {
        let mut stream = Vec::new();
        for packet in packetize(0x0102, &[1; 400], 9) {
            stream.extend_from_slice(&packet);
        }
        stream.extend_from_slice(&packetize(0x0100, &[2; 10], 7)[0]);
        // An adaptation-field-only packet on the PID: keeps the previous counter.
        let mut no_payload = [0xFF_u8; PACKET_BYTES];
        no_payload[..5].copy_from_slice(&[0x47, 0x01, 0x02, 0x20, 183]);
        stream.extend_from_slice(&no_payload);
        stream.extend_from_slice(&packetize(0x0102, &[3; 10], 0)[0]);
        renumber_continuity(&mut stream, 0x0102, 15);
        let counters: Vec<(u16, u8)> = packets(&stream)
            .unwrap()
            .iter()
            .map(|p| (p.pid, p.continuity_counter))
            .collect();
        assert_eq!(
            counters,
            [
                (0x0102, 15),
                (0x0102, 0),
                (0x0102, 1),
                (0x0100, 7),
                (0x0102, 1),
                (0x0102, 2)
            ]
        );
    }

    #[test]
    fn bad_packets_are_errors() {
        assert_eq!(
            packets(&[0x47; 100]).unwrap_err(),
            Error::NotWholePackets { bytes: 100 }
        );
        assert_eq!(
            packets(&[]).unwrap_err(),
            Error::NotWholePackets { bytes: 0 }
        );
        let mut two = vec![0x47; 2 * PACKET_BYTES];
        two[PACKET_BYTES] = 0x48;
        assert_eq!(
            packets(&two).unwrap_err(),
            Error::BadSyncByte {
                offset: PACKET_BYTES
            }
        );
        let mut long_af = [0xFF_u8; PACKET_BYTES];
        long_af[..5].copy_from_slice(&[0x47, 0x00, 0x00, 0x30, 184]);
        assert_eq!(
            packets(&long_af).unwrap_err(),
            Error::BadAdaptationField { offset: 0 }
        );
    }
}
