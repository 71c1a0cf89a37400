//! PES packets (ISO/IEC 13818-1 2.4.3.6): the header fields this tool reads (stream id,
//! length, PTS) and the timed-metadata PES it writes.

use crate::Error;

/// Ticks per second of PTS and DTS.
pub const PTS_HZ: u64 = 90_000;
/// PTS values are 33 bits and wrap around at this value.
pub const PTS_MODULUS: u64 = 1 << 33;
/// `stream_id` of private_stream_1, which carries HLS timed ID3 metadata.
pub const STREAM_ID_PRIVATE_1: u8 = 0xBD;
/// Bytes of the PES header this tool writes: start code, stream id, length, two flag
/// bytes, header length, PTS.
pub const METADATA_PES_HEADER_BYTES: usize = 14;

/// Encodes a PTS as the 5 bytes of a PES header with only a PTS: `0010`, PTS\[32..30\],
/// marker, PTS\[29..15\], marker, PTS\[14..0\], marker. Bits above 33 are dropped (the
/// clock wraps).
pub fn encode_pts(pts: u64) -> [u8; 5] {
    let pts = pts % PTS_MODULUS;
    [
        0x20 | (((pts >> 30) as u8 & 0x07) << 1) | 0x01,
        (pts >> 22) as u8,
        (((pts >> 15) as u8 & 0x7F) << 1) | 0x01,
        (pts >> 7) as u8,
        ((pts as u8 & 0x7F) << 1) | 0x01,
    ]
}

/// Decodes 5 PTS (or DTS) bytes; the prefix and marker bits are not checked, as players
/// do not check them either.
pub fn decode_pts(bytes: [u8; 5]) -> u64 {
    ((u64::from(bytes[0] >> 1) & 0x07) << 30)
        | (u64::from(bytes[1]) << 22)
        | (u64::from(bytes[2] >> 1) << 15)
        | (u64::from(bytes[3]) << 7)
        | u64::from(bytes[4] >> 1)
}

/// `a - b` on the 33-bit PTS clock, taking the shorter way around: positive when `a` is
/// later than `b` by less than half the clock's range.
pub fn pts_diff(a: u64, b: u64) -> i64 {
    let diff = (a.wrapping_sub(b)) % PTS_MODULUS;
    if diff >= PTS_MODULUS / 2 {
        diff as i64 - PTS_MODULUS as i64
    } else {
        diff as i64
    }
}

/// `pts + ticks` on the 33-bit PTS clock.
pub fn pts_add(pts: u64, ticks: i64) -> u64 {
    (pts as i64 + ticks).rem_euclid(PTS_MODULUS as i64) as u64
}

/// What a PES header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PesHeader {
    pub stream_id: u8,
    /// `PES_packet_length`: bytes after the length field, 0 for "unbounded" (video).
    pub packet_length: u16,
    pub pts: Option<u64>,
    /// The DTS, when the header has one (else decoding time is the PTS).
    pub dts: Option<u64>,
    /// Where the payload starts, from the start of the PES packet.
    pub payload_start: usize,
}

/// Whether a PES packet of `stream_id` has the optional header with flags and PTS
/// (Table 2-21: not for program_stream_map, padding, private_stream_2, ECM, EMM, DSM-CC,
/// H.222.1 type E, program_stream_directory).
fn has_optional_header(stream_id: u8) -> bool {
    !matches!(
        stream_id,
        0xBC | 0xBE | 0xBF | 0xF0 | 0xF1 | 0xF2 | 0xF8 | 0xFF
    )
}

/// Reads the header of the PES packet at the start of `bytes`; `offset` (where `bytes`
/// starts in the segment) goes into errors.
pub fn parse_pes_header(bytes: &[u8], offset: usize) -> Result<PesHeader, Error> {
    let bad = |reason| Error::BadPes { offset, reason };
    if bytes.len() < 6 {
        return Err(bad("shorter than the 6-byte PES prefix"));
    }
    if bytes[..3] != [0x00, 0x00, 0x01] {
        return Err(bad("no packet_start_code_prefix 00 00 01"));
    }
    let stream_id = bytes[3];
    let packet_length = u16::from_be_bytes([bytes[4], bytes[5]]);
    if !has_optional_header(stream_id) {
        return Ok(PesHeader {
            stream_id,
            packet_length,
            pts: None,
            dts: None,
            payload_start: 6,
        });
    }
    if bytes.len() < 9 {
        return Err(bad("ends inside the PES header flags"));
    }
    if bytes[6] & 0xC0 != 0x80 {
        return Err(bad("the PES header does not start with the bits 10"));
    }
    let payload_start = 9 + usize::from(bytes[8]);
    if payload_start > bytes.len() {
        return Err(bad("PES_header_data_length runs past the data"));
    }
    let timestamp = |at: usize| {
        decode_pts([
            bytes[at],
            bytes[at + 1],
            bytes[at + 2],
            bytes[at + 3],
            bytes[at + 4],
        ])
    };
    let (pts, dts) = match bytes[7] >> 6 {
        0b10 => {
            if payload_start < 14 {
                return Err(bad("PTS flag set but the header is too short for a PTS"));
            }
            (Some(timestamp(9)), None)
        }
        0b11 => {
            if payload_start < 19 {
                return Err(bad(
                    "PTS and DTS flags set but the header is too short for both",
                ));
            }
            (Some(timestamp(9)), Some(timestamp(14)))
        }
        0b00 => (None, None),
        _ => return Err(bad("PTS_DTS_flags 01 is forbidden")),
    };
    Ok(PesHeader {
        stream_id,
        packet_length,
        pts,
        dts,
        payload_start,
    })
}

/// A timed-metadata PES packet as the HLS specification asks: private_stream_1,
/// `data_alignment_indicator` set (the ID3 tag starts the payload), a PTS and no DTS,
/// then `payload` (an ID3 tag). `None` when `payload` is too long for
/// `PES_packet_length`.
pub fn metadata_pes(pts: u64, payload: &[u8]) -> Option<Vec<u8>> {
    let packet_length = u16::try_from(METADATA_PES_HEADER_BYTES - 6 + payload.len()).ok()?;
    let mut pes = Vec::with_capacity(METADATA_PES_HEADER_BYTES + payload.len());
    pes.extend_from_slice(&[0x00, 0x00, 0x01, STREAM_ID_PRIVATE_1]);
    pes.extend_from_slice(&packet_length.to_be_bytes());
    // '10', not scrambled, no priority, data_alignment_indicator 1, no copyright,
    // copy; then PTS only; then 5 header bytes (the PTS).
    pes.extend_from_slice(&[0x84, 0x80, 0x05]);
    pes.extend_from_slice(&encode_pts(pts));
    pes.extend_from_slice(payload);
    Some(pes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pts_bytes_match_the_standard_layout() {
        // PTS 0: only the prefix and the markers.
        assert_eq!(encode_pts(0), [0x21, 0x00, 0x01, 0x00, 0x01]);
        // The largest PTS: every bit set.
        assert_eq!(encode_pts(PTS_MODULUS - 1), [0x2F, 0xFF, 0xFF, 0xFF, 0xFF]);
        // 1 s after 1.4 s (ffmpeg's usual first video PTS): 216000 = 0x34BC0.
        // Bits 29..15 = 0b110 = 6 → (6 << 1) | 1 = 0x0D; bits 14..0 = 0x4BC0.
        assert_eq!(encode_pts(216_000), [0x21, 0x00, 0x0D, 0x97, 0x81]);
    }

    #[test]
    fn pts_round_trips_and_keeps_marker_bits() {
        for pts in [
            0,
            1,
            90_000,
            126_000,
            0x7FFF,
            0x8000,
            0x3FFF_FFFF,
            0x4000_0000,
            PTS_MODULUS / 2,
            PTS_MODULUS - 1,
        ] {
            let bytes = encode_pts(pts);
            assert_eq!(decode_pts(bytes), pts, "{pts}");
            assert_eq!(bytes[0] & 0xF1, 0x21, "prefix 0010 and marker, {pts}");
            assert_eq!(bytes[2] & 0x01, 1);
            assert_eq!(bytes[4] & 0x01, 1);
        }
        // Past 33 bits the clock wraps.
        assert_eq!(decode_pts(encode_pts(PTS_MODULUS + 5)), 5);
    }

    #[test]
    fn pts_arithmetic_wraps() {
        assert_eq!(pts_diff(100, 40), 60);
        assert_eq!(pts_diff(40, 100), -60);
        assert_eq!(pts_diff(5, PTS_MODULUS - 5), 10);
        assert_eq!(pts_diff(PTS_MODULUS - 5, 5), -10);
        assert_eq!(pts_add(PTS_MODULUS - 5, 10), 5);
        assert_eq!(pts_add(5, -10), PTS_MODULUS - 5);
    }

    #[test]
    fn metadata_pes_header() {
        let pes = metadata_pes(216_000, b"ID3tag").unwrap();
        assert_eq!(
            &pes[..14],
            &[0x00, 0x00, 0x01, 0xBD, 0x00, 14, 0x84, 0x80, 0x05, 0x21, 0x00, 0x0D, 0x97, 0x81]
        );
        assert_eq!(&pes[14..], b"ID3tag");
        let header = parse_pes_header(&pes, 0).unwrap();
        assert_eq!(
            header,
            PesHeader {
                stream_id: 0xBD,
                packet_length: 14,
                pts: Some(216_000),
                dts: None,
                payload_start: 14
            }
        );
        assert!(metadata_pes(0, &vec![0; 65_535 - 7]).is_none());
        assert!(metadata_pes(0, &vec![0; 65_535 - 8]).is_some());
    }

    #[test]
    fn pts_and_dts_are_read() {
        let mut pes = vec![0, 0, 1, 0xE0, 0, 0, 0x80, 0xC0, 10];
        let mut pts = encode_pts(133_200);
        pts[0] = (pts[0] & 0x0F) | 0x30;
        let mut dts = encode_pts(126_000);
        dts[0] = (dts[0] & 0x0F) | 0x10;
        pes.extend_from_slice(&pts);
        pes.extend_from_slice(&dts);
        let header = parse_pes_header(&pes, 0).unwrap();
        assert_eq!((header.pts, header.dts), (Some(133_200), Some(126_000)));
        assert_eq!(header.payload_start, 19);
        pes[8] = 5;
        assert_eq!(
            parse_pes_header(&pes[..14], 0),
            Err(Error::BadPes {
                offset: 0,
                reason: "PTS and DTS flags set but the header is too short for both"
            })
        );
    }

    #[test]
    fn bad_pes_headers() {
        let cases: [(&[u8], &str); 5] = [
            (&[0, 0, 1], "shorter than the 6-byte PES prefix"),
            (
                &[0, 0, 2, 0xE0, 0, 0],
                "no packet_start_code_prefix 00 00 01",
            ),
            (
                &[0, 0, 1, 0xE0, 0, 0, 0x40, 0x80, 0],
                "the PES header does not start with the bits 10",
            ),
            (
                &[0, 0, 1, 0xE0, 0, 0, 0x80, 0x80, 0],
                "PTS flag set but the header is too short for a PTS",
            ),
            (
                &[0, 0, 1, 0xE0, 0, 0, 0x80, 0x80, 5, 0x21],
                "PES_header_data_length runs past the data",
            ),
        ];
        for (bytes, reason) in cases {
            assert_eq!(
                parse_pes_header(bytes, 376),
                Err(Error::BadPes {
                    offset: 376,
                    reason
                })
            );
        }
        // Padding has no optional header.
        assert_eq!(
            parse_pes_header(&[0, 0, 1, 0xBE, 0, 2, 0xFF, 0xFF], 0)
                .unwrap()
                .payload_start,
            6
        );
    }
}
