//! ID3 byte-level encodings: 4-byte syncsafe integers (sizes in headers) and
//! unsynchronisation (adding, removing, and mapping offsets back to the stored bytes).

use super::SYNCSAFE_MAX;
use crate::Error;

/// Reads a 4-byte syncsafe integer (7 bits per byte, top bit clear).
pub(super) fn read_syncsafe(bytes: &[u8], offset: usize) -> Result<u32, Error> {
    debug_assert_eq!(bytes.len(), 4);
    bytes.iter().try_fold(0u32, |value, &b| {
        if b & 0x80 != 0 {
            Err(Error::BadSyncsafe { offset })
        } else {
            Ok((value << 7) | u32::from(b))
        }
    })
}

pub(super) fn write_syncsafe(value: u32) -> [u8; 4] {
    assert!(
        value <= SYNCSAFE_MAX,
        "syncsafe values are 28 bits; limits keep sizes far below"
    );
    [
        (value >> 21) as u8 & 0x7F,
        (value >> 14) as u8 & 0x7F,
        (value >> 7) as u8 & 0x7F,
        value as u8 & 0x7F,
    ]
}

/// Undoes unsynchronisation: drops each `0x00` that follows a `0xFF`.
pub(super) fn remove_unsynchronisation(stored: &[u8]) -> Vec<u8> {
    let mut plain = Vec::with_capacity(stored.len());
    let mut after_ff = false;
    for &b in stored {
        if after_ff && b == 0 {
            after_ff = false;
            continue;
        }
        plain.push(b);
        after_ff = b == 0xFF;
    }
    plain
}

/// The offset in `stored` of byte `plain_offset` of `remove_unsynchronisation(stored)`
/// (its length maps to `stored.len()`), so errors point into the input.
pub(super) fn stored_offset(stored: &[u8], plain_offset: usize) -> usize {
    let mut produced = 0;
    let mut after_ff = false;
    for (index, &b) in stored.iter().enumerate() {
        if after_ff && b == 0 {
            after_ff = false;
            continue;
        }
        if produced == plain_offset {
            return index;
        }
        produced += 1;
        after_ff = b == 0xFF;
    }
    stored.len()
}

/// Applies unsynchronisation: a `0x00` after every `0xFF` followed by `0x00` or a byte
/// `>= 0xE0`, and after a final `0xFF` (what follows the data is unknown here).
pub(super) fn add_unsynchronisation(plain: &[u8]) -> Vec<u8> {
    let mut stored = Vec::with_capacity(plain.len() + plain.len() / 16);
    for (index, &b) in plain.iter().enumerate() {
        stored.push(b);
        if b == 0xFF {
            match plain.get(index + 1) {
                Some(&next) if next != 0 && next < 0xE0 => {}
                _ => stored.push(0),
            }
        }
    }
    stored
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syncsafe_round_trips_and_refuses_top_bits() {
        assert_eq!(write_syncsafe(0x0FFF_FFFF), [0x7F; 4]);
        assert_eq!(write_syncsafe(257), [0, 0, 0x02, 0x01]);
        assert_eq!(read_syncsafe(&[0, 0, 0x02, 0x01], 0), Ok(257));
        assert_eq!(
            read_syncsafe(&[0, 0x80, 0, 0], 9),
            Err(Error::BadSyncsafe { offset: 9 })
        );
    }

    #[test]
    fn unsynchronisation_inserts_only_where_needed() {
        let plain = [0xFF, 0x00, 0xFF, 0xE0, 0xFF, 0x12, 0xFF];
        let stored = add_unsynchronisation(&plain);
        assert_eq!(
            stored,
            [0xFF, 0x00, 0x00, 0xFF, 0x00, 0xE0, 0xFF, 0x12, 0xFF, 0x00]
        );
        assert_eq!(remove_unsynchronisation(&stored), plain);
    }

    #[test]
    fn stored_offsets_skip_inserted_zeros() {
        let stored = [0x41, 0xFF, 0x00, 0x42, 0x43];
        // plain: 41 FF 42 43
        assert_eq!(stored_offset(&stored, 0), 0);
        assert_eq!(stored_offset(&stored, 1), 1);
        assert_eq!(stored_offset(&stored, 2), 3);
        assert_eq!(stored_offset(&stored, 4), 5);
    }
}
