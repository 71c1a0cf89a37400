//! Data-driven tables of bad input (each with the exact error it must give), values the
//! writers must refuse, and frames kept undecoded. Bytes are written inline in the
//! fixture notation of `tests/fixtures/README.md`, with the byte groups explained.

mod common;

use common::{fixture, hex};
use ovation_cues::limits::{
    EMSG_BOX_BYTES_MAX, EMSG_STRING_BYTES_MAX, ID3_FRAMES_MAX, ID3_TAG_BYTES_MAX,
};
use ovation_cues::{
    scan_emsg, Cue, Emsg, Error, Frame, FrameId, Id3Version, InteractionKind, PresentationTime,
    Tag, TextEncoding, WriteOptions, CUE_PAYLOAD_BYTES_MAX,
};

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

/// (what the case is, bytes, the error `Emsg::parse` gives).
const EMSG_ERRORS: &[(&str, &str, Error)] = &[
    (
        "box header cut short",
        "00 00 00",
        Error::Truncated {
            what: "box header",
            offset: 0,
        },
    ),
    (
        "another box",
        r#"00 00 00 08 "free""#,
        Error::BadMagic {
            what: "emsg box type",
            offset: 4,
        },
    ),
    (
        "size below the header",
        r#"00 00 00 04 "emsg""#,
        Error::BadSize {
            what: "box",
            offset: 0,
            size: 4,
        },
    ),
    (
        "largesize below its header",
        r#"00 00 00 01 "emsg" 00 00 00 00 00 00 00 08"#,
        Error::BadSize {
            what: "box",
            offset: 0,
            size: 8,
        },
    ),
    (
        "largesize cut short",
        r#"00 00 00 01 "emsg" 00 00"#,
        Error::Truncated {
            what: "box largesize",
            offset: 8,
        },
    ),
    (
        "box over the limit",
        r#"00 02 00 00 "emsg" 00 00 00 00"#,
        Error::TooLarge {
            what: "emsg box",
            bytes: 0x20000,
            max_bytes: EMSG_BOX_BYTES_MAX,
        },
    ),
    (
        "largesize over the limit",
        r#"00 00 00 01 "emsg" FF FF FF FF FF FF FF FF"#,
        Error::TooLarge {
            what: "emsg box",
            bytes: u64::MAX,
            max_bytes: EMSG_BOX_BYTES_MAX,
        },
    ),
    (
        "box longer than the input",
        r#"00 00 00 20 "emsg" 00 00 00 00"#,
        Error::Truncated {
            what: "emsg box",
            offset: 0,
        },
    ),
    (
        "no version",
        r#"00 00 00 08 "emsg""#,
        Error::Truncated {
            what: "emsg version and flags",
            offset: 8,
        },
    ),
    (
        "version 2",
        r#"00 00 00 0C "emsg" 02 00 00 00"#,
        Error::UnsupportedVersion {
            what: "emsg",
            version: 2,
        },
    ),
    (
        "v0 scheme without NUL",
        r#"00 00 00 0F "emsg" 00 00 00 00 "abc""#,
        Error::MissingTerminator {
            what: "emsg scheme_id_uri",
            offset: 12,
        },
    ),
    (
        "v0 scheme of invalid UTF-8 (C3 then NUL)",
        r#"00 00 00 0F "emsg" 00 00 00 00 61 C3 00"#,
        Error::BadText {
            offset: 13,
            reason: "invalid UTF-8",
        },
    ),
    (
        "v0 numbers cut by the box end after the timescale",
        r#"00 00 00 12 "emsg" 00 00 00 00 00 00 00 00 03 E8"#,
        Error::Truncated {
            what: "emsg presentation_time_delta",
            offset: 18,
        },
    ),
    (
        "v1 presentation_time cut by the box end",
        r#"00 00 00 14 "emsg" 01 00 00 00 00 00 00 01 00 00 00 00"#,
        Error::Truncated {
            what: "emsg presentation_time",
            offset: 16,
        },
    ),
    (
        "v1 value without NUL",
        r#"00 00 00 22 "emsg" 01 00 00 00  00 00 00 01  00 00 00 00 00 00 00 00  00 00 00 00  00 00 00 00  "u" 00 "v""#,
        Error::MissingTerminator {
            what: "emsg value",
            offset: 34,
        },
    ),
];

#[test]
fn bad_emsg_boxes_give_the_named_error() {
    for (case, bytes, expected) in EMSG_ERRORS {
        let bytes = hex(bytes);
        let err = Emsg::parse(&bytes).unwrap_err();
        assert_eq!(&err, expected, "{case}");
        assert!(
            err.offset().is_none_or(|offset| offset <= bytes.len()),
            "{case}"
        );
    }
}

#[test]
fn emsg_strings_and_boxes_have_limits() {
    // A v0 box whose scheme runs 1100 bytes before its NUL.
    let mut bytes = hex(r#"00 00 00 00 "emsg" 00 00 00 00"#);
    bytes.extend(std::iter::repeat_n(b'a', 1100));
    bytes.extend_from_slice(&[0, 0]);
    bytes.extend_from_slice(&[0; 16]);
    let len = bytes.len() as u32;
    bytes[..4].copy_from_slice(&len.to_be_bytes());
    assert_eq!(
        Emsg::parse(&bytes),
        Err(Error::TooLarge {
            what: "emsg scheme_id_uri",
            bytes: 1100,
            max_bytes: EMSG_STRING_BYTES_MAX
        })
    );
    // The largesize fixture with one more byte.
    let mut longer = fixture("emsg_v1_largesize");
    longer.push(0);
    assert_eq!(
        Emsg::parse(&longer),
        Err(Error::TrailingBytes { offset: 49 })
    );
    assert_eq!(Emsg::parse_prefix(&longer).map(|(_, len)| len), Ok(49));
    // Size 0: the box runs to the end of the input.
    let mut to_end = fixture("emsg_v1_largesize");
    to_end.drain(..8);
    to_end[..8].copy_from_slice(&hex(r#"00 00 00 00 "emsg""#));
    assert_eq!(Emsg::parse(&to_end).unwrap().message_data, b"hi");
}

#[test]
fn scan_stops_at_impossible_boxes_and_reports_oversize_emsg_in_place() {
    let scan = scan_emsg(&hex(r#"00 00 00 04 "junk" 00 00 00 00"#));
    assert!(scan.found.is_empty());
    assert_eq!(
        scan.stopped,
        Some(Error::BadSize {
            what: "box",
            offset: 0,
            size: 4
        })
    );

    // An emsg box one byte over the limit, then a free box: reported, and the walk goes on.
    let big = EMSG_BOX_BYTES_MAX + 1;
    let mut bytes = (big as u32).to_be_bytes().to_vec();
    bytes.extend_from_slice(b"emsg");
    bytes.resize(big, 0);
    bytes.extend_from_slice(&hex(r#"00 00 00 08 "free""#));
    bytes.extend_from_slice(&fixture("emsg_v1_id3"));
    let scan = scan_emsg(&bytes);
    assert_eq!(scan.stopped, None);
    assert_eq!(scan.found.len(), 2);
    assert_eq!(
        scan.found[0].emsg,
        Err(Error::TooLarge {
            what: "emsg box",
            bytes: big as u64,
            max_bytes: EMSG_BOX_BYTES_MAX
        })
    );
    assert_eq!(scan.found[1].offset, big + 8);
    assert_eq!(
        Cue::from_emsg(scan.found[1].emsg.as_ref().unwrap()),
        Cue::new("c1", InteractionKind::Poll, "p1")
    );

    // No input, nothing found, nothing wrong.
    let scan = scan_emsg(&[]);
    assert!(scan.found.is_empty() && scan.stopped.is_none());
}

#[test]
fn scan_stops_after_the_emsg_limit() {
    let one = fixture("emsg_v1_largesize");
    let bytes: Vec<u8> = std::iter::repeat_n(
        one.as_slice(),
        ovation_cues::limits::EMSG_BOXES_PER_SCAN_MAX + 1,
    )
    .flatten()
    .copied()
    .collect();
    let scan = scan_emsg(&bytes);
    assert_eq!(
        scan.found.len(),
        ovation_cues::limits::EMSG_BOXES_PER_SCAN_MAX
    );
    assert!(scan.found.iter().all(|found| found.emsg.is_ok()));
    assert_eq!(
        scan.stopped,
        Some(Error::TooMany {
            what: "emsg boxes",
            max: ovation_cues::limits::EMSG_BOXES_PER_SCAN_MAX
        })
    );
}

#[test]
fn cue_payload_table() {
    let ok = |id: &str, kind, reference: &str| Ok(Cue::new(id, kind, reference).unwrap());
    let invalid = |reason| Err(Error::InvalidCue { reason });
    let long_id = "a".repeat(65);
    let max_id = "Z".repeat(64);
    let too_long = format!(
        "v=1;cue=a;ref=poll:b;x={}",
        "y".repeat(CUE_PAYLOAD_BYTES_MAX)
    );
    let longest_with_extra = format!(
        "v=1;cue=a;ref=poll:b;x={}",
        "y".repeat(CUE_PAYLOAD_BYTES_MAX - 23)
    );
    let cases: Vec<(&str, Result<Cue, Error>)> = vec![
        ("v=1;cue=a;ref=poll:b", ok("a", InteractionKind::Poll, "b")),
        (
            "v=1;ref=custom:z;cue=A-1.b_c",
            ok("A-1.b_c", InteractionKind::Custom, "z"),
        ),
        (
            "v=1;cue=q;ref=quiz:q1;t=5;note=later fields are skipped",
            ok("q", InteractionKind::Quiz, "q1"),
        ),
        ("v=1;cue=q;ref=qa:q1", ok("q", InteractionKind::Qa, "q1")),
        (
            "v=1;cue=q;ref=product:sku.9",
            ok("q", InteractionKind::Product, "sku.9"),
        ),
        (&longest_with_extra, ok("a", InteractionKind::Poll, "b")),
        ("", invalid("a payload field is key=value")),
        (
            "v=1;cue=a;ref=poll:b;",
            invalid("a payload field is key=value"),
        ),
        (
            "cue=a;v=1;ref=poll:b",
            invalid("a payload starts with v=<version>"),
        ),
        (
            "v=2;cue=a;ref=poll:b",
            Err(Error::UnsupportedVersion {
                what: "cue payload",
                version: 2,
            }),
        ),
        (
            "v=+1;cue=a;ref=poll:b",
            invalid("a payload version is a number 0..=255"),
        ),
        (
            "v=256;cue=a;ref=poll:b",
            invalid("a payload version is a number 0..=255"),
        ),
        (
            "v=;cue=a;ref=poll:b",
            invalid("a payload version is a number 0..=255"),
        ),
        (
            "v=1;Cue=a;ref=poll:b",
            invalid("a payload key is [a-z0-9_-]+"),
        ),
        ("v=1;cue=a", invalid("a payload has a ref field")),
        ("v=1;ref=poll:b", invalid("a payload has a cue field")),
        (
            "v=1;cue=a;cue=b;ref=poll:x",
            invalid("a payload key appears twice"),
        ),
        (
            "v=1;cue=a;ref=poll:x;t=1;t=2",
            invalid("a payload key appears twice"),
        ),
        (
            "v=1;cue=a b;ref=poll:x",
            invalid("a cue id is 1..=CUE_ID_BYTES_MAX bytes of [A-Za-z0-9_.-]"),
        ),
        (
            "v=1;cue=;ref=poll:x",
            invalid("a cue id is 1..=CUE_ID_BYTES_MAX bytes of [A-Za-z0-9_.-]"),
        ),
        ("v=1;cue=a;ref=poll", invalid("a reference is <kind>:<id>")),
        (
            "v=1;cue=a;ref=vote:x",
            invalid("a reference kind is poll, quiz, product, qa or custom"),
        ),
        (
            "v=1;cue=a;ref=poll:",
            invalid("an interaction id is 1..=CUE_REFERENCE_ID_BYTES_MAX bytes of [A-Za-z0-9_.-]"),
        ),
        (
            "v=1;cue=a;ref=poll:x:y",
            invalid("an interaction id is 1..=CUE_REFERENCE_ID_BYTES_MAX bytes of [A-Za-z0-9_.-]"),
        ),
        (
            "v=1;cue=café;ref=poll:x",
            invalid("a payload is printable ASCII"),
        ),
        (
            "v=1;cue=a\n;ref=poll:x",
            invalid("a payload is printable ASCII"),
        ),
        (
            &too_long,
            Err(Error::TooLarge {
                what: "cue payload",
                bytes: too_long.len() as u64,
                max_bytes: CUE_PAYLOAD_BYTES_MAX,
            }),
        ),
    ];
    for (payload, expected) in cases {
        assert_eq!(
            Cue::from_payload(payload.as_bytes()),
            expected,
            "{payload:?}"
        );
    }
    assert_eq!(longest_with_extra.len(), CUE_PAYLOAD_BYTES_MAX);
    let long_payload = format!("v=1;cue={long_id};ref=poll:x");
    assert!(Cue::from_payload(long_payload.as_bytes()).is_err());
    let max_payload = format!("v=1;cue={max_id};ref=poll:{max_id}");
    assert_eq!(
        Cue::from_payload(max_payload.as_bytes())
            .unwrap()
            .to_payload(),
        max_payload
    );
}

#[test]
fn cue_lookup_in_tags() {
    let payload = |id: &str| format!("v=1;cue={id};ref=poll:p");
    let other = Frame::UserText {
        encoding: TextEncoding::Latin1,
        description: "other".into(),
        value: payload("x"),
    };
    let txxx = |id: &str| Frame::UserText {
        encoding: TextEncoding::Utf8,
        description: "ovation".into(),
        value: payload(id),
    };
    let private = |id: &str| Frame::Private {
        owner: "ovation".into(),
        data: payload(id).into_bytes(),
    };
    let foreign_private = Frame::Private {
        owner: "com.apple.streaming.transportStreamTimestamp".into(),
        data: vec![0; 8],
    };
    let cases: Vec<(Vec<Frame>, Result<&str, Error>)> = vec![
        (vec![], Err(Error::NoCue)),
        (
            vec![other.clone(), foreign_private.clone()],
            Err(Error::NoCue),
        ),
        (vec![other.clone(), txxx("t")], Ok("t")),
        (
            vec![foreign_private.clone(), private("p"), txxx("t")],
            Ok("p"),
        ),
        (vec![txxx("t"), private("p")], Ok("t")),
        (
            vec![
                Frame::Private {
                    owner: "ovation".into(),
                    data: b"garbage".to_vec(),
                },
                txxx("t"),
            ],
            Err(Error::InvalidCue {
                reason: "a payload field is key=value",
            }),
        ),
    ];
    for (frames, expected) in cases {
        let tag = Tag {
            version: Id3Version::V2_4,
            frames,
        };
        let cue = Cue::from_id3_tag(&tag).map(|cue| cue.id.as_str().to_owned());
        assert_eq!(cue, expected.map(str::to_owned), "{tag:?}");
    }
}

/// (what the case is, the tag, how to write it, what the writer gives).
type WriterCase = (&'static str, Tag, WriteOptions, Result<Vec<u8>, Error>);

#[test]
fn writers_refuse_what_could_not_come_back() {
    let v23 = |frames| Tag {
        version: Id3Version::V2_3,
        frames,
    };
    let v24 = |frames| Tag {
        version: Id3Version::V2_4,
        frames,
    };
    let text = |encoding, description: &str, value: &str| Frame::UserText {
        encoding,
        description: description.into(),
        value: value.into(),
    };
    let plain = WriteOptions::default();
    let unwritable = |what, reason| Err(Error::Unwritable { what, reason });
    let cases: Vec<WriterCase> = vec![
        (
            "v2.3 footer",
            v23(vec![]),
            WriteOptions {
                footer: true,
                ..plain
            },
            unwritable("ID3v2.3 tag", "ID3v2.3 has no footer"),
        ),
        (
            "footer and padding",
            v24(vec![]),
            WriteOptions {
                footer: true,
                padding_bytes: 1,
                ..plain
            },
            unwritable("ID3 tag", "a tag with a footer has no padding"),
        ),
        (
            "UTF-8 in v2.3",
            v23(vec![text(TextEncoding::Utf8, "d", "v")]),
            plain,
            unwritable(
                "ID3v2.3 text",
                "ID3v2.3 has only ISO-8859-1 and UTF-16 with BOM",
            ),
        ),
        (
            "UTF-16BE in v2.3",
            v23(vec![text(TextEncoding::Utf16Be, "d", "v")]),
            plain,
            unwritable(
                "ID3v2.3 text",
                "ID3v2.3 has only ISO-8859-1 and UTF-16 with BOM",
            ),
        ),
        (
            "euro sign in ISO-8859-1",
            v24(vec![text(TextEncoding::Latin1, "d", "5 €")]),
            plain,
            unwritable("TXXX value", "a character is outside ISO-8859-1"),
        ),
        (
            "NUL in a description",
            v24(vec![text(TextEncoding::Utf8, "a\0b", "v")]),
            plain,
            unwritable("TXXX description", "it contains U+0000"),
        ),
        (
            "value ending in NUL",
            v24(vec![text(TextEncoding::Utf8, "d", "v\0")]),
            plain,
            unwritable("TXXX value", "a value ends with U+0000, which readers drop"),
        ),
        (
            "text frame with id TXXX",
            v24(vec![Frame::Text {
                id: FrameId::TXXX,
                encoding: TextEncoding::Utf8,
                value: "v".into(),
            }]),
            plain,
            unwritable("text frame", "its id must start with T and not be TXXX"),
        ),
        (
            "other frame with id PRIV",
            v24(vec![Frame::Other {
                id: FrameId::PRIV,
                data: vec![],
            }]),
            plain,
            unwritable(
                "other frame",
                "TXXX, PRIV and text frames have variants of their own",
            ),
        ),
        (
            "opaque frame",
            v24(vec![Frame::Opaque {
                id: FrameId::new(*b"ZZZZ").unwrap(),
                data: vec![],
            }]),
            plain,
            unwritable(
                "opaque frame",
                "compressed or encrypted frames are not written",
            ),
        ),
        (
            "PRIV owner outside ISO-8859-1",
            v24(vec![Frame::Private {
                owner: "ō".into(),
                data: vec![],
            }]),
            plain,
            unwritable("PRIV owner identifier", "a character is outside ISO-8859-1"),
        ),
        (
            "too many frames",
            v24(vec![
                Frame::Other {
                    id: FrameId::new(*b"ZZZZ").unwrap(),
                    data: vec![]
                };
                ID3_FRAMES_MAX + 1
            ]),
            plain,
            Err(Error::TooMany {
                what: "ID3 frames",
                max: ID3_FRAMES_MAX,
            }),
        ),
        (
            "frame over the tag limit",
            v24(vec![Frame::Other {
                id: FrameId::new(*b"ZZZZ").unwrap(),
                data: vec![1; ID3_TAG_BYTES_MAX + 1],
            }]),
            plain,
            Err(Error::TooLarge {
                what: "ID3 frame",
                bytes: ID3_TAG_BYTES_MAX as u64 + 1,
                max_bytes: ID3_TAG_BYTES_MAX,
            }),
        ),
        (
            // 10 (tag header) + 10 (frame header) + the data: 10 bytes over.
            "frame that fits alone, not with the headers",
            v24(vec![Frame::Other {
                id: FrameId::new(*b"ZZZZ").unwrap(),
                data: vec![1; ID3_TAG_BYTES_MAX - 10],
            }]),
            plain,
            Err(Error::TooLarge {
                what: "ID3 tag",
                bytes: ID3_TAG_BYTES_MAX as u64 + 10,
                max_bytes: ID3_TAG_BYTES_MAX,
            }),
        ),
        (
            "padding over the tag limit",
            v24(vec![]),
            WriteOptions {
                padding_bytes: usize::MAX,
                ..plain
            },
            Err(Error::TooLarge {
                what: "ID3 tag",
                bytes: usize::MAX as u64,
                max_bytes: ID3_TAG_BYTES_MAX,
            }),
        ),
        (
            "exactly at the tag limit",
            v24(vec![]),
            WriteOptions {
                padding_bytes: ID3_TAG_BYTES_MAX - 10,
                ..plain
            },
            Ok({
                let mut bytes = hex(r#""ID3" 04 00 00 00 03 7F 76"#);
                bytes.resize(ID3_TAG_BYTES_MAX, 0);
                bytes
            }),
        ),
    ];
    for (case, tag, options, expected) in cases {
        assert_eq!(tag.to_bytes(&options), expected, "{case}");
    }

    let emsg = Emsg {
        scheme_id_uri: "urn:x".into(),
        value: String::new(),
        timescale: 1,
        time: PresentationTime::Delta(0),
        event_duration: 0,
        id: 0,
        message_data: vec![],
    };
    let with = |change: &dyn Fn(&mut Emsg)| {
        let mut emsg = emsg.clone();
        change(&mut emsg);
        emsg.to_bytes()
    };
    assert_eq!(
        with(&|e| e.value = "a\0".into()),
        Err(Error::Unwritable {
            what: "emsg value",
            reason: "it contains U+0000"
        })
    );
    assert_eq!(
        with(&|e| e.scheme_id_uri = "u".repeat(EMSG_STRING_BYTES_MAX + 1)),
        Err(Error::TooLarge {
            what: "emsg scheme_id_uri",
            bytes: EMSG_STRING_BYTES_MAX as u64 + 1,
            max_bytes: EMSG_STRING_BYTES_MAX
        })
    );
    assert!(matches!(
        with(&|e| e.message_data = vec![0; EMSG_BOX_BYTES_MAX]),
        Err(Error::TooLarge {
            what: "emsg box",
            ..
        })
    ));
    // The largest box: both strings and the message at their limits, version 1.
    let largest = with(&|e| {
        e.scheme_id_uri = "u".repeat(EMSG_STRING_BYTES_MAX);
        e.value = "v".repeat(EMSG_STRING_BYTES_MAX);
        e.time = PresentationTime::Absolute(0);
        e.message_data = vec![0; ID3_TAG_BYTES_MAX];
    })
    .unwrap();
    assert_eq!(
        largest.len(),
        EMSG_BOX_BYTES_MAX - 8,
        "only largesize's 8 bytes are left over"
    );
    assert_eq!(
        Emsg::parse(&largest).unwrap().message_data.len(),
        ID3_TAG_BYTES_MAX
    );
}

#[test]
fn cue_ids_and_references_are_checked_on_construction() {
    assert!(Cue::new("ok", InteractionKind::Poll, "p").is_ok());
    for bad in ["", "a b", "a;b", "a=b", "a:b", "é", &"x".repeat(65)] {
        assert!(
            Cue::new(bad, InteractionKind::Poll, "p").is_err(),
            "{bad:?}"
        );
        assert!(
            Cue::new("ok", InteractionKind::Poll, bad).is_err(),
            "{bad:?}"
        );
    }
    for kind in InteractionKind::ALL {
        assert_eq!(InteractionKind::from_name(kind.as_str()), Some(kind));
    }
    assert_eq!(InteractionKind::from_name("Poll"), None);
}
