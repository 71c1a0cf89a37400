//! CRC-32/MPEG-2, the checksum at the end of every PSI section (ISO/IEC 13818-1 Annex A):
//! polynomial 0x04C11DB7, initial value 0xFFFFFFFF, bits not reflected, no final XOR.
//! Running it over a whole section including its CRC gives 0.

/// Polynomial of CRC-32/MPEG-2.
const POLYNOMIAL: u32 = 0x04C1_1DB7;

/// The CRC-32/MPEG-2 of `bytes`.
pub fn crc32_mpeg2(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFF_u32;
    for &byte in bytes {
        crc ^= u32::from(byte) << 24;
        for _ in 0..8 {
            crc = if crc & 0x8000_0000 != 0 {
                (crc << 1) ^ POLYNOMIAL
            } else {
                crc << 1
            };
        }
    }
    crc
}

#[cfg(test)]
mod tests {
    use super::crc32_mpeg2;

    #[test]
    fn check_value_of_the_catalogue() {
        // The "check" value of CRC-32/MPEG-2 in the CRC catalogue.
        assert_eq!(crc32_mpeg2(b"123456789"), 0x0376_E6E7);
        assert_eq!(crc32_mpeg2(b""), 0xFFFF_FFFF);
    }

    #[test]
    fn a_section_with_its_crc_sums_to_zero() {
        let mut section = b"any section bytes".to_vec();
        let crc = crc32_mpeg2(&section);
        section.extend_from_slice(&crc.to_be_bytes());
        assert_eq!(crc32_mpeg2(&section), 0);
    }
}
