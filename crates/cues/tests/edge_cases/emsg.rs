//! `emsg` boxes: bad boxes and the exact error each gives, string and box limits, and
//! where `scan_emsg` stops.

use crate::common::{fixture, hex};
use ovation_cues::limits::{EMSG_BOX_BYTES_MAX, EMSG_STRING_BYTES_MAX};
use ovation_cues::{scan_emsg, Cue, Emsg, Error, InteractionKind};

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
