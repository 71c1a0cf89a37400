//! ID3 tags: bad tags and the exact error each gives, the frame limit, and frames kept
//! opaque (compressed, encrypted, unknown format flags).

use crate::common::hex;
use ovation_cues::limits::{ID3_FRAMES_MAX, ID3_TAG_BYTES_MAX};
use ovation_cues::{Cue, Error, Frame, FrameId, Tag, TextEncoding};

/// (what the case is, bytes, the error `Tag::parse` gives).
const ID3_ERRORS: &[(&str, &str, Error)] = &[
    (
        "header cut short",
        r#""ID3" 04 00"#,
        Error::Truncated {
            what: "ID3 header",
            offset: 0,
        },
    ),
    (
        "not ID3",
        r#""ID2" 04 00 00 00 00 00 00"#,
        Error::BadMagic {
            what: "ID3 header",
            offset: 0,
        },
    ),
    (
        "ID3v2.2",
        r#""ID3" 02 00 00 00 00 00 00"#,
        Error::UnsupportedVersion {
            what: "ID3v2",
            version: 2,
        },
    ),
    (
        "ID3v2.5",
        r#""ID3" 05 00 00 00 00 00 00"#,
        Error::UnsupportedVersion {
            what: "ID3v2",
            version: 5,
        },
    ),
    (
        "v2.3 has no footer flag",
        r#""ID3" 03 00 10 00 00 00 00"#,
        Error::UnsupportedFlags {
            what: "ID3 header",
            offset: 5,
            flags: 0x10,
        },
    ),
    (
        "v2.4 undefined low flag",
        r#""ID3" 04 00 01 00 00 00 00"#,
        Error::UnsupportedFlags {
            what: "ID3 header",
            offset: 5,
            flags: 0x01,
        },
    ),
    (
        "tag size not syncsafe",
        r#""ID3" 04 00 00 00 00 00 80"#,
        Error::BadSyncsafe { offset: 6 },
    ),
    (
        "largest syncsafe size",
        r#""ID3" 04 00 00 7F 7F 7F 7F"#,
        Error::TooLarge {
            what: "ID3 tag",
            bytes: 10 + 0x0FFF_FFFF,
            max_bytes: ID3_TAG_BYTES_MAX,
        },
    ),
    (
        "one byte over the tag limit: 10 + 65527 (00 03 7F 77)",
        r#""ID3" 04 00 00 00 03 7F 77"#,
        Error::TooLarge {
            what: "ID3 tag",
            bytes: 65537,
            max_bytes: ID3_TAG_BYTES_MAX,
        },
    ),
    (
        "at the tag limit (65526) is only truncated",
        r#""ID3" 04 00 00 00 03 7F 76"#,
        Error::Truncated {
            what: "ID3 tag",
            offset: 0,
        },
    ),
    (
        "tag declares 20 bytes, has 10",
        r#""ID3" 04 00 00 00 00 00 14  "TXXX" 00 00 00 00 00 00"#,
        Error::Truncated {
            what: "ID3 tag",
            offset: 0,
        },
    ),
    (
        "frame declares 2 bytes, tag has 1 after its header",
        r#""ID3" 04 00 00 00 00 00 0B  "TXXX" 00 00 00 02 00 00  00"#,
        Error::BadSize {
            what: "ID3 frame",
            offset: 10,
            size: 2,
        },
    ),
    (
        "v2.3 plain frame size 2^31",
        r#""ID3" 03 00 00 00 00 00 0B  "TXXX" 80 00 00 00 00 00  00"#,
        Error::BadSize {
            what: "ID3 frame",
            offset: 10,
            size: 0x8000_0000,
        },
    ),
    (
        "v2.4 frame size not syncsafe",
        r#""ID3" 04 00 00 00 00 00 0B  "TXXX" 00 00 00 80 00 00  00"#,
        Error::BadSyncsafe { offset: 14 },
    ),
    (
        "lower-case frame id",
        r#""ID3" 04 00 00 00 00 00 0B  "Txx1" 00 00 00 01 00 00  00"#,
        Error::BadFrameId { offset: 10 },
    ),
    (
        "frame header cut by the end of the tag",
        r#""ID3" 04 00 00 00 00 00 05  "TXXX" 00"#,
        Error::Truncated {
            what: "ID3 frame header",
            offset: 10,
        },
    ),
    (
        "text encoding 4",
        r#""ID3" 04 00 00 00 00 00 0D  "TXXX" 00 00 00 03 00 00  04 "a" 00"#,
        Error::BadTextEncoding {
            offset: 20,
            encoding: 4,
        },
    ),
    (
        "invalid UTF-8 in the value (C3 28) at 23",
        r#""ID3" 04 00 00 00 00 00 0F  "TXXX" 00 00 00 05 00 00  03 "a" 00 C3 28"#,
        Error::BadText {
            offset: 23,
            reason: "invalid UTF-8",
        },
    ),
    (
        "TXXX description without NUL",
        r#""ID3" 04 00 00 00 00 00 0E  "TXXX" 00 00 00 04 00 00  00 "abc""#,
        Error::MissingTerminator {
            what: "TXXX description",
            offset: 21,
        },
    ),
    (
        "UTF-16 value without BOM: encoding 1, empty description, 61 00",
        r#""ID3" 03 00 00 00 00 00 0F  "TXXX" 00 00 00 05 00 00  01 00 00 61 00"#,
        Error::BadText {
            offset: 23,
            reason: "UTF-16 string without a byte order mark",
        },
    ),
    (
        "UTF-16 value of odd length: BOM then one byte at 29",
        r#""ID3" 03 00 00 00 00 00 14  "TXXX" 00 00 00 0A 00 00  01 FF FE 61 00 00 00 FF FE 62"#,
        Error::BadText {
            offset: 29,
            reason: "UTF-16 string of odd length",
        },
    ),
    (
        "text frame without an encoding byte",
        r#""ID3" 04 00 00 00 00 00 0A  "TIT2" 00 00 00 00 00 00"#,
        Error::Truncated {
            what: "ID3 text frame",
            offset: 20,
        },
    ),
    (
        "PRIV owner without NUL",
        r#""ID3" 04 00 00 00 00 00 0D  "PRIV" 00 00 00 03 00 00  "abc""#,
        Error::MissingTerminator {
            what: "PRIV owner identifier",
            offset: 20,
        },
    ),
    (
        "footer flag, no footer",
        r#""ID3" 04 00 10 00 00 00 00"#,
        Error::Truncated {
            what: "ID3 footer",
            offset: 10,
        },
    ),
    (
        "footer that is another header",
        r#""ID3" 04 00 10 00 00 00 00  "ID3" 04 00 10 00 00 00 00"#,
        Error::BadMagic {
            what: "ID3 footer",
            offset: 10,
        },
    ),
    (
        "footer size differs from the header's",
        r#""ID3" 04 00 10 00 00 00 00  "3DI" 04 00 10 00 00 00 01"#,
        Error::FooterMismatch { offset: 10 },
    ),
    (
        "data length indicator says 5, data has 4",
        r#""ID3" 04 00 00 00 00 00 12  "PRIV" 00 00 00 08 00 01  00 00 00 05  78 00 41 42"#,
        Error::DataLengthMismatch {
            offset: 10,
            declared: 5,
            actual: 4,
        },
    ),
    (
        "data length indicator not syncsafe",
        r#""ID3" 04 00 00 00 00 00 12  "PRIV" 00 00 00 08 00 01  00 00 00 85  78 00 41 42"#,
        Error::BadSyncsafe { offset: 20 },
    ),
    (
        "data length indicator cut by the frame's end",
        r#""ID3" 04 00 00 00 00 00 0C  "PRIV" 00 00 00 02 00 01  00 00"#,
        Error::Truncated {
            what: "ID3 data length indicator",
            offset: 20,
        },
    ),
    (
        "group id flag on an empty frame",
        r#""ID3" 04 00 00 00 00 00 0A  "ZZZZ" 00 00 00 00 00 40"#,
        Error::Truncated {
            what: "ID3 frame group id",
            offset: 20,
        },
    ),
    (
        "v2.4 extended header of 5 bytes (at least 6)",
        r#""ID3" 04 00 40 00 00 00 06  00 00 00 05 01 00"#,
        Error::BadSize {
            what: "ID3 extended header",
            offset: 10,
            size: 5,
        },
    ),
    (
        "v2.3 extended header larger than the tag",
        r#""ID3" 03 00 40 00 00 00 0A  00 00 00 0A 00 00 00 00 00 00"#,
        Error::BadSize {
            what: "ID3 extended header",
            offset: 10,
            size: 10,
        },
    ),
    (
        "extended header size cut short",
        r#""ID3" 04 00 40 00 00 00 02  00 00"#,
        Error::Truncated {
            what: "ID3 extended header",
            offset: 10,
        },
    ),
    (
        // Stored body: ZZZZ frame with data FF 00, unsynchronised to FF 00 00 (13 bytes),
        // then TXXX with encoding 9. Plain offset 22 of the encoding byte is stored 23.
        "v2.3 tag unsync: the offset counts the stored bytes",
        r#""ID3" 03 00 80 00 00 00 1A
           "ZZZZ" 00 00 00 02 00 00  FF 00 00
           "TXXX" 00 00 00 03 00 00  09 "a" 00"#,
        Error::BadTextEncoding {
            offset: 33,
            encoding: 9,
        },
    ),
    (
        // Plain content: 01 | FF FE FF 00 (BOM, "ÿ") | 00 00 | 61 00 (no BOM).
        // Stored: 01 FF 00 FE FF 00 00 00 00 61 00; 61 is plain byte 7, stored byte 9.
        "v2.4 frame unsync: the offset counts the stored bytes",
        r#""ID3" 04 00 00 00 00 00 15
           "TXXX" 00 00 00 0B 00 02  01 FF 00 FE FF 00 00 00 00 61 00"#,
        Error::BadText {
            offset: 29,
            reason: "UTF-16 string without a byte order mark",
        },
    ),
];

#[test]
fn bad_id3_tags_give_the_named_error() {
    for (case, bytes, expected) in ID3_ERRORS {
        let bytes = hex(bytes);
        let err = Tag::parse(&bytes).unwrap_err();
        assert_eq!(&err, expected, "{case}");
        assert!(
            err.offset().is_none_or(|offset| offset <= bytes.len()),
            "{case}"
        );
        assert!(!err.to_string().is_empty());
        // The cue reader passes the same error on.
        assert_eq!(
            &Cue::from_id3_bytes(&bytes).unwrap_err(),
            expected,
            "{case}"
        );
    }
}

#[test]
fn too_many_frames() {
    // ID3_FRAMES_MAX + 1 empty "ZZZZ" frames of 10 bytes.
    let frames = ID3_FRAMES_MAX + 1;
    let body = frames * 10;
    let mut bytes = hex(r#""ID3" 04 00 00"#);
    bytes.extend_from_slice(&[
        (body >> 21) as u8 & 0x7F,
        (body >> 14) as u8 & 0x7F,
        (body >> 7) as u8 & 0x7F,
        body as u8 & 0x7F,
    ]);
    for _ in 0..frames {
        bytes.extend_from_slice(&hex(r#""ZZZZ" 00 00 00 00 00 00"#));
    }
    assert_eq!(
        Tag::parse(&bytes),
        Err(Error::TooMany {
            what: "ID3 frames",
            max: ID3_FRAMES_MAX
        })
    );
    // One fewer is fine.
    let fewer = &bytes[..bytes.len() - 10];
    let mut fewer = fewer.to_vec();
    let body = body - 10;
    fewer[6..10].copy_from_slice(&[
        (body >> 21) as u8 & 0x7F,
        (body >> 14) as u8 & 0x7F,
        (body >> 7) as u8 & 0x7F,
        body as u8 & 0x7F,
    ]);
    assert_eq!(Tag::parse(&fewer).unwrap().frames.len(), ID3_FRAMES_MAX);
}

#[test]
fn compressed_encrypted_and_unknown_format_frames_are_kept_opaque() {
    let zzzz = FrameId::new(*b"ZZZZ").unwrap();
    let txxx = FrameId::TXXX;
    let cases: &[(&str, &str, Frame)] = &[
        (
            "v2.4 compressed (08) with data length (01): not inflated",
            r#""ID3" 04 00 00 00 00 00 10  "TXXX" 00 00 00 06 00 09  00 00 00 09 78 9C"#,
            Frame::Opaque {
                id: txxx,
                data: vec![0, 0, 0, 9, 0x78, 0x9C],
            },
        ),
        (
            "v2.4 encrypted (04): method byte and data kept",
            r#""ID3" 04 00 00 00 00 00 0C  "ZZZZ" 00 00 00 02 00 04  80 AA"#,
            Frame::Opaque {
                id: zzzz,
                data: vec![0x80, 0xAA],
            },
        ),
        (
            "v2.4 undefined format flag 80",
            r#""ID3" 04 00 00 00 00 00 0B  "ZZZZ" 00 00 00 01 00 80  AA"#,
            Frame::Opaque {
                id: zzzz,
                data: vec![0xAA],
            },
        ),
        (
            "v2.3 encrypted (40)",
            r#""ID3" 03 00 00 00 00 00 0B  "ZZZZ" 00 00 00 01 00 40  AA"#,
            Frame::Opaque {
                id: zzzz,
                data: vec![0xAA],
            },
        ),
        (
            "v2.3 grouping (20): the group byte is dropped, the frame decoded",
            r#""ID3" 03 00 00 00 00 00 0C  "ZZZZ" 00 00 00 02 00 20  07 AA"#,
            Frame::Other {
                id: zzzz,
                data: vec![0xAA],
            },
        ),
        (
            "v2.3 with UTF-8, which only v2.4 defines, is read anyway",
            r#""ID3" 03 00 00 00 00 00 0E  "TIT2" 00 00 00 04 00 00  03 C3 A9 00"#,
            Frame::Text {
                id: FrameId::new(*b"TIT2").unwrap(),
                encoding: TextEncoding::Utf8,
                value: "é".into(),
            },
        ),
    ];
    for (case, bytes, expected) in cases {
        let tag = Tag::parse(&hex(bytes)).unwrap_or_else(|e| panic!("{case}: {e}"));
        assert_eq!(tag.frames, std::slice::from_ref(expected), "{case}");
    }
}
