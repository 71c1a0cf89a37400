//! ID3v2 text encodings: finding terminators, decoding and encoding strings.
//!
//! Offsets passed in are where the bytes start in the caller's coordinates, so errors can
//! name the byte that is wrong.

use crate::Error;

/// The text encoding byte that starts an ID3v2 text frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TextEncoding {
    /// `0`: ISO-8859-1; every byte is the code point of the same value.
    Latin1,
    /// `1`: UTF-16 where every string starts with a byte order mark. Written little-endian.
    Utf16,
    /// `2`: UTF-16 big-endian without a byte order mark (ID3v2.4 only).
    Utf16Be,
    /// `3`: UTF-8 (ID3v2.4 only).
    Utf8,
}

impl TextEncoding {
    /// The encoding for an encoding byte, or `None` for bytes above 3.
    pub fn from_byte(byte: u8) -> Option<TextEncoding> {
        match byte {
            0 => Some(TextEncoding::Latin1),
            1 => Some(TextEncoding::Utf16),
            2 => Some(TextEncoding::Utf16Be),
            3 => Some(TextEncoding::Utf8),
            _ => None,
        }
    }

    /// The encoding byte written before the text.
    pub fn to_byte(self) -> u8 {
        match self {
            TextEncoding::Latin1 => 0,
            TextEncoding::Utf16 => 1,
            TextEncoding::Utf16Be => 2,
            TextEncoding::Utf8 => 3,
        }
    }

    /// Whether ID3v2.3 defines this encoding (it knows only ISO-8859-1 and UTF-16 with BOM).
    pub fn in_v2_3(self) -> bool {
        matches!(self, TextEncoding::Latin1 | TextEncoding::Utf16)
    }

    /// Bytes per code unit, which is also the length of the NUL terminator.
    fn unit_bytes(self) -> usize {
        match self {
            TextEncoding::Latin1 | TextEncoding::Utf8 => 1,
            TextEncoding::Utf16 | TextEncoding::Utf16Be => 2,
        }
    }
}

/// The position of the first terminator in `bytes` (a NUL code unit, aligned to the
/// code unit size from the start of `bytes`), or `None`.
fn find_terminator(bytes: &[u8], encoding: TextEncoding) -> Option<usize> {
    let unit = encoding.unit_bytes();
    bytes
        .chunks_exact(unit)
        .position(|chunk| chunk.iter().all(|&b| b == 0))
        .map(|index| index * unit)
}

/// Splits a terminated string off the front of `bytes`: (string bytes, bytes after the
/// terminator). `None` when there is no terminator.
pub(crate) fn split_terminated(bytes: &[u8], encoding: TextEncoding) -> Option<(&[u8], &[u8])> {
    let end = find_terminator(bytes, encoding)?;
    Some((&bytes[..end], &bytes[end + encoding.unit_bytes()..]))
}

/// Decodes one string that contains no terminator. `offset` is where `bytes` starts.
pub(crate) fn decode(bytes: &[u8], encoding: TextEncoding, offset: usize) -> Result<String, Error> {
    match encoding {
        TextEncoding::Latin1 => Ok(bytes.iter().map(|&b| char::from(b)).collect()),
        TextEncoding::Utf8 => match std::str::from_utf8(bytes) {
            Ok(text) => Ok(text.to_owned()),
            Err(e) => Err(Error::BadText {
                offset: offset + e.valid_up_to(),
                reason: "invalid UTF-8",
            }),
        },
        TextEncoding::Utf16Be => decode_utf16(bytes, true, offset),
        TextEncoding::Utf16 => {
            // An empty string may come without a byte order mark; anything else needs one.
            match bytes {
                [] => Ok(String::new()),
                [0xFE, 0xFF, rest @ ..] => decode_utf16(rest, true, offset + 2),
                [0xFF, 0xFE, rest @ ..] => decode_utf16(rest, false, offset + 2),
                _ => Err(Error::BadText {
                    offset,
                    reason: "UTF-16 string without a byte order mark",
                }),
            }
        }
    }
}

fn decode_utf16(bytes: &[u8], big_endian: bool, offset: usize) -> Result<String, Error> {
    if bytes.len() % 2 != 0 {
        return Err(Error::BadText {
            offset,
            reason: "UTF-16 string of odd length",
        });
    }
    let units = bytes.chunks_exact(2).map(|pair| {
        let pair = [pair[0], pair[1]];
        if big_endian {
            u16::from_be_bytes(pair)
        } else {
            u16::from_le_bytes(pair)
        }
    });
    let mut text = String::with_capacity(bytes.len() / 2);
    // Units consumed so far, to name the byte of an unpaired surrogate.
    let mut units_before = 0;
    for decoded in char::decode_utf16(units) {
        match decoded {
            Ok(c) => {
                text.push(c);
                units_before += c.len_utf16();
            }
            Err(_) => {
                return Err(Error::BadText {
                    offset: offset + 2 * units_before,
                    reason: "unpaired UTF-16 surrogate",
                });
            }
        }
    }
    Ok(text)
}

/// Decodes the value part of a text frame: everything after the frame's last terminated
/// field. One trailing terminator is dropped (many writers add one); terminators inside
/// separate the several values ID3v2.4 allows and come back as U+0000. With
/// [`TextEncoding::Utf16`] every value has its own byte order mark.
pub(crate) fn decode_values(
    bytes: &[u8],
    encoding: TextEncoding,
    offset: usize,
) -> Result<String, Error> {
    let unit = encoding.unit_bytes();
    let mut rest = bytes;
    if rest.len() >= unit
        && rest.len() % unit == 0
        && rest[rest.len() - unit..].iter().all(|&b| b == 0)
    {
        rest = &rest[..rest.len() - unit];
    }
    let mut text = String::new();
    let mut start = offset;
    loop {
        match split_terminated(rest, encoding) {
            Some((value, after)) => {
                text.push_str(&decode(value, encoding, start)?);
                text.push('\0');
                start += value.len() + unit;
                rest = after;
            }
            None => {
                text.push_str(&decode(rest, encoding, start)?);
                return Ok(text);
            }
        }
    }
}

/// Appends `text`, which must hold no U+0000, in `encoding`, without a terminator.
/// `what` names the text in the error when a character cannot be encoded.
pub(crate) fn encode(
    text: &str,
    encoding: TextEncoding,
    what: &'static str,
    out: &mut Vec<u8>,
) -> Result<(), Error> {
    debug_assert!(!text.contains('\0'), "callers split values on NUL first");
    match encoding {
        TextEncoding::Latin1 => {
            for c in text.chars() {
                let byte = u8::try_from(u32::from(c)).map_err(|_| Error::Unwritable {
                    what,
                    reason: "a character is outside ISO-8859-1",
                })?;
                out.push(byte);
            }
        }
        TextEncoding::Utf8 => out.extend_from_slice(text.as_bytes()),
        TextEncoding::Utf16 => {
            out.extend_from_slice(&[0xFF, 0xFE]);
            for unit in text.encode_utf16() {
                out.extend_from_slice(&unit.to_le_bytes());
            }
        }
        TextEncoding::Utf16Be => {
            for unit in text.encode_utf16() {
                out.extend_from_slice(&unit.to_be_bytes());
            }
        }
    }
    Ok(())
}

/// Appends the terminator of `encoding`.
pub(crate) fn encode_terminator(encoding: TextEncoding, out: &mut Vec<u8>) {
    out.extend(std::iter::repeat_n(0u8, encoding.unit_bytes()));
}

/// Appends a value that may hold several values separated by U+0000 (see
/// [`decode_values`]); it must not end with U+0000, which the reader would drop.
pub(crate) fn encode_values(
    text: &str,
    encoding: TextEncoding,
    what: &'static str,
    out: &mut Vec<u8>,
) -> Result<(), Error> {
    if text.ends_with('\0') {
        return Err(Error::Unwritable {
            what,
            reason: "a value ends with U+0000, which readers drop",
        });
    }
    for (index, value) in text.split('\0').enumerate() {
        if index > 0 {
            encode_terminator(encoding, out);
        }
        encode(value, encoding, what, out)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf16_terminator_is_aligned() {
        // "a" in UTF-16LE is 61 00; the 00 00 that straddles it and the next unit is not a
        // terminator, only the aligned pair at 4..6 is.
        let bytes = [0x61, 0x00, 0x00, 0x62, 0x00, 0x00, 0x7A];
        let (head, rest) = split_terminated(&bytes, TextEncoding::Utf16Be).unwrap();
        assert_eq!(head, &[0x61, 0x00, 0x00, 0x62]);
        assert_eq!(rest, &[0x7A]);
    }

    #[test]
    fn utf16_bom_picks_byte_order() {
        assert_eq!(
            decode(&[0xFE, 0xFF, 0x00, 0xE9], TextEncoding::Utf16, 0).unwrap(),
            "é"
        );
        assert_eq!(
            decode(&[0xFF, 0xFE, 0xE9, 0x00], TextEncoding::Utf16, 0).unwrap(),
            "é"
        );
        assert_eq!(
            decode(&[0x00, 0xE9], TextEncoding::Utf16, 7),
            Err(Error::BadText {
                offset: 7,
                reason: "UTF-16 string without a byte order mark"
            })
        );
    }

    #[test]
    fn unpaired_surrogate_is_an_error() {
        // "a", then a high surrogate followed by "b" instead of a low surrogate.
        let err = decode(
            &[0x00, 0x61, 0xD8, 0x00, 0x00, 0x62],
            TextEncoding::Utf16Be,
            3,
        )
        .unwrap_err();
        assert_eq!(
            err,
            Error::BadText {
                offset: 5,
                reason: "unpaired UTF-16 surrogate"
            }
        );
    }

    #[test]
    fn values_drop_one_trailing_terminator_and_keep_inner_ones() {
        assert_eq!(
            decode_values(b"a\0b\0", TextEncoding::Latin1, 0).unwrap(),
            "a\0b"
        );
        let mut out = Vec::new();
        encode_values("a\0b", TextEncoding::Utf16, "v", &mut out).unwrap();
        assert_eq!(
            out,
            [0xFF, 0xFE, 0x61, 0x00, 0x00, 0x00, 0xFF, 0xFE, 0x62, 0x00]
        );
        assert_eq!(decode_values(&out, TextEncoding::Utf16, 0).unwrap(), "a\0b");
    }

    #[test]
    fn latin1_refuses_wide_characters() {
        let mut out = Vec::new();
        assert!(encode("€", TextEncoding::Latin1, "v", &mut out).is_err());
        encode("é", TextEncoding::Latin1, "v", &mut out).unwrap();
        assert_eq!(out, [0xE9]);
    }
}
