//! Data-driven tests over the hand-written fixtures in `tests/fixtures`: each parses to
//! the value written out here, and where the writer can produce the same layout, the
//! writer produces the same bytes.

mod common;

use common::{fixture, fixtures_dir};
use ovation_cues::{
    scan_emsg, Cue, Emsg, Error, Frame, FrameId, Id3Version, InteractionKind, PresentationTime,
    Tag, TextEncoding, WriteOptions, EMSG_EVENT_DURATION_UNKNOWN, EMSG_SCHEME_ID3,
};

fn user_text(encoding: TextEncoding, description: &str, value: &str) -> Frame {
    Frame::UserText {
        encoding,
        description: description.into(),
        value: value.into(),
    }
}

fn cue_frame(payload: &str) -> Frame {
    user_text(TextEncoding::Latin1, "ovation", payload)
}

fn tag(version: Id3Version, frames: Vec<Frame>) -> Tag {
    Tag { version, frames }
}

fn cue(id: &str, kind: InteractionKind, reference: &str) -> Cue {
    Cue::new(id, kind, reference).unwrap()
}

/// Each ID3 fixture, the tag it holds, and the cue read from it.
fn id3_cases() -> Vec<(&'static str, Tag, Result<Cue, Error>)> {
    use Id3Version::{V2_3, V2_4};
    use TextEncoding::*;
    let c1 = || Ok(cue("c1", InteractionKind::Poll, "p1"));
    vec![
        (
            "id3v23_txxx_latin1",
            tag(V2_3, vec![cue_frame("v=1;cue=intro;ref=poll:p1")]),
            Ok(cue("intro", InteractionKind::Poll, "p1")),
        ),
        (
            "id3v24_txxx_utf8",
            tag(V2_4, vec![user_text(Utf8, "café", "日本")]),
            Err(Error::NoCue),
        ),
        (
            "id3v23_txxx_utf16_bom_le",
            tag(V2_3, vec![user_text(Utf16, "note", "é€")]),
            Err(Error::NoCue),
        ),
        (
            "id3v24_txxx_utf16_bom_be",
            tag(V2_4, vec![user_text(Utf16, "note", "\u{1F600}!")]),
            Err(Error::NoCue),
        ),
        (
            "id3v24_tit2_utf16be_values",
            tag(
                V2_4,
                vec![Frame::Text {
                    id: FrameId::new(*b"TIT2").unwrap(),
                    encoding: Utf16Be,
                    value: "a\0b".into(),
                }],
            ),
            Err(Error::NoCue),
        ),
        (
            "id3v23_latin1_non_ascii",
            tag(
                V2_3,
                vec![
                    Frame::Text {
                        id: FrameId::new(*b"TIT2").unwrap(),
                        encoding: Latin1,
                        value: "Café ü".into(),
                    },
                    user_text(Latin1, "name", "Zoë"),
                ],
            ),
            Err(Error::NoCue),
        ),
        (
            "id3v23_extended_header",
            tag(V2_3, vec![cue_frame("v=1;cue=ext.23;ref=poll:p2")]),
            Ok(cue("ext.23", InteractionKind::Poll, "p2")),
        ),
        (
            "id3v24_extended_header",
            tag(
                V2_4,
                vec![user_text(Utf8, "ovation", "v=1;cue=ext.24;ref=quiz:q-9")],
            ),
            Ok(cue("ext.24", InteractionKind::Quiz, "q-9")),
        ),
        (
            "id3v24_footer",
            tag(V2_4, vec![cue_frame("v=1;cue=foot;ref=qa:ask_1")]),
            Ok(cue("foot", InteractionKind::Qa, "ask_1")),
        ),
        (
            "id3v23_tag_unsync",
            tag(
                V2_3,
                vec![Frame::Private {
                    owner: "com.example".into(),
                    data: vec![0xFF, 0x00, 0xFF, 0xE1, 0xFF, 0x12, 0xFF],
                }],
            ),
            Err(Error::NoCue),
        ),
        (
            "id3v24_frame_unsync_dli",
            tag(
                V2_4,
                vec![
                    Frame::Private {
                        owner: "x".into(),
                        data: vec![0xFF, 0xFE, 0xFF, 0x00],
                    },
                    cue_frame("v=1;cue=c1;ref=poll:p1"),
                ],
            ),
            c1(),
        ),
        (
            "id3v24_tag_unsync",
            tag(
                V2_4,
                vec![Frame::Private {
                    owner: "x".into(),
                    data: vec![0xFF, 0xF0, 0x41],
                }],
            ),
            Err(Error::NoCue),
        ),
        (
            "id3v24_priv_cue",
            tag(
                V2_4,
                vec![Frame::Private {
                    owner: "ovation".into(),
                    data: b"v=1;cue=buy-1;ref=product:sku_42".to_vec(),
                }],
            ),
            Ok(cue("buy-1", InteractionKind::Product, "sku_42")),
        ),
        (
            "id3v24_padding",
            tag(V2_4, vec![cue_frame("v=1;cue=pad;ref=custom:x")]),
            Ok(cue("pad", InteractionKind::Custom, "x")),
        ),
    ]
}

/// The cue tag inside the `emsg` fixtures, as its own bytes.
fn c1_tag_bytes() -> Vec<u8> {
    let emsg = fixture("emsg_v1_id3");
    emsg[emsg.len() - 51..].to_vec()
}

fn emsg_cases() -> Vec<(&'static str, Emsg)> {
    let c1_tag = c1_tag_bytes();
    vec![
        (
            "emsg_v0_id3",
            Emsg {
                scheme_id_uri: EMSG_SCHEME_ID3.into(),
                value: "1".into(),
                timescale: 1000,
                time: PresentationTime::Delta(500),
                event_duration: EMSG_EVENT_DURATION_UNKNOWN,
                id: 7,
                message_data: c1_tag.clone(),
            },
        ),
        (
            "emsg_v1_id3",
            Emsg {
                scheme_id_uri: EMSG_SCHEME_ID3.into(),
                value: String::new(),
                timescale: 90_000,
                time: PresentationTime::Absolute(1 << 32),
                event_duration: EMSG_EVENT_DURATION_UNKNOWN,
                id: 42,
                message_data: c1_tag,
            },
        ),
        (
            "emsg_v1_largesize",
            Emsg {
                scheme_id_uri: "urn:x".into(),
                value: String::new(),
                timescale: 1,
                time: PresentationTime::Absolute(5),
                event_duration: 0,
                id: 1,
                message_data: b"hi".to_vec(),
            },
        ),
    ]
}

#[test]
fn id3_fixtures_parse_to_the_expected_tags_and_cues() {
    for (name, expected, expected_cue) in id3_cases() {
        let bytes = fixture(name);
        assert_eq!(Tag::parse(&bytes).as_ref(), Ok(&expected), "{name}");
        assert_eq!(
            Tag::parse_prefix(&bytes).map(|(_, len)| len),
            Ok(bytes.len()),
            "{name}"
        );
        assert_eq!(Cue::from_id3_bytes(&bytes), expected_cue, "{name}");
    }
}

#[test]
fn id3_fixtures_refuse_every_truncation_and_any_trailing_byte() {
    for (name, _, _) in id3_cases() {
        let bytes = fixture(name);
        for cut in 0..bytes.len() {
            let err = Tag::parse(&bytes[..cut]).unwrap_err();
            assert!(
                matches!(err, Error::Truncated { .. }),
                "{name} cut at {cut}: {err}"
            );
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(
            Tag::parse(&longer),
            Err(Error::TrailingBytes {
                offset: bytes.len()
            }),
            "{name}"
        );
        let (_, len) = Tag::parse_prefix(&longer).unwrap();
        assert_eq!(len, bytes.len(), "{name}");
    }
}

#[test]
fn writer_reproduces_hand_written_fixtures() {
    let plain = WriteOptions::default();
    let cases = [
        ("id3v23_txxx_latin1", plain),
        ("id3v24_txxx_utf16_bom_be", plain),
        ("id3v23_latin1_non_ascii", plain),
        // The writer applies unsynchronisation exactly where the hand-written bytes do.
        (
            "id3v23_tag_unsync",
            WriteOptions {
                unsynchronise: true,
                ..plain
            },
        ),
        (
            "id3v24_footer",
            WriteOptions {
                footer: true,
                ..plain
            },
        ),
        (
            "id3v24_padding",
            WriteOptions {
                padding_bytes: 16,
                ..plain
            },
        ),
        ("id3v24_priv_cue", plain),
    ];
    for (name, options) in cases {
        let bytes = fixture(name);
        let tag = id3_cases()
            .into_iter()
            .find(|case| case.0 == name)
            .unwrap()
            .1;
        if name == "id3v24_txxx_utf16_bom_be" {
            // The writer always uses little-endian UTF-16; same text, other bytes.
            let written = tag.to_bytes(&options).unwrap();
            assert_ne!(written, bytes);
            assert_eq!(Tag::parse(&written), Ok(tag));
            continue;
        }
        assert_eq!(tag.to_bytes(&options).unwrap(), bytes, "{name}");
    }
}

#[test]
fn parsed_fixtures_survive_a_rewrite_in_every_layout() {
    for (name, expected, _) in id3_cases() {
        for unsynchronise in [false, true] {
            let options = WriteOptions {
                unsynchronise,
                ..WriteOptions::default()
            };
            let written = expected.to_bytes(&options).unwrap();
            assert_eq!(
                Tag::parse(&written).as_ref(),
                Ok(&expected),
                "{name} unsync {unsynchronise}"
            );
        }
    }
}

#[test]
fn cue_writer_matches_the_hand_written_emsg_fixtures() {
    let c1 = cue("c1", InteractionKind::Poll, "p1");
    assert_eq!(c1.to_id3_bytes(), c1_tag_bytes());
    assert_eq!(c1.to_payload(), "v=1;cue=c1;ref=poll:p1");
    assert_eq!(
        c1.to_emsg(90_000, 1 << 32, 42).to_bytes().unwrap(),
        fixture("emsg_v1_id3")
    );
}

#[test]
fn emsg_fixtures_parse_and_write_back_to_the_same_bytes() {
    for (name, expected) in emsg_cases() {
        let bytes = fixture(name);
        assert_eq!(Emsg::parse(&bytes).as_ref(), Ok(&expected), "{name}");
        if name == "emsg_v1_largesize" {
            // The writer uses a 32-bit size: 8 bytes shorter, same box.
            let written = expected.to_bytes().unwrap();
            assert_eq!(written.len(), bytes.len() - 8);
            assert_eq!(written[8..], bytes[16..]);
            assert_eq!(Emsg::parse(&written), Ok(expected));
        } else {
            assert_eq!(expected.to_bytes().unwrap(), bytes, "{name}");
        }
        for cut in 0..bytes.len() {
            let err = Emsg::parse(&bytes[..cut]).unwrap_err();
            assert!(
                matches!(err, Error::Truncated { .. }),
                "{name} cut at {cut}: {err}"
            );
        }
    }
}

#[test]
fn cues_come_out_of_emsg_fixtures_of_both_versions() {
    let c1 = Ok(cue("c1", InteractionKind::Poll, "p1"));
    for name in ["emsg_v0_id3", "emsg_v1_id3"] {
        assert_eq!(
            Cue::from_emsg(&Emsg::parse(&fixture(name)).unwrap()),
            c1,
            "{name}"
        );
    }
    let other_scheme = Emsg::parse(&fixture("emsg_v1_largesize")).unwrap();
    assert_eq!(Cue::from_emsg(&other_scheme), Err(Error::WrongScheme));
}

#[test]
fn scan_finds_the_emsg_boxes_of_a_segment() {
    let segment = fixture("segment");
    let scan = scan_emsg(&segment);
    assert_eq!(scan.stopped, None);
    let offsets: Vec<usize> = scan.found.iter().map(|found| found.offset).collect();
    assert_eq!(offsets, [16, 65]);
    let first = scan.found[0].emsg.as_ref().unwrap();
    assert_eq!(
        (first.scheme_id_uri.as_str(), first.time, first.id),
        ("urn:x", PresentationTime::Absolute(9), 2)
    );
    assert_eq!(first.message_data, b"m1");
    let second = scan.found[1].emsg.as_ref().unwrap();
    assert_eq!(
        (
            second.scheme_id_uri.as_str(),
            second.value.as_str(),
            second.time,
            second.id
        ),
        ("urn:y", "v", PresentationTime::Delta(3), 5)
    );
    assert!(second.message_data.is_empty());
}

#[test]
fn scan_of_a_truncated_segment_keeps_what_came_before() {
    let segment = fixture("segment");
    // Cut inside the second emsg box (65..109): the first is still found.
    let scan = scan_emsg(&segment[..100]);
    assert_eq!(scan.found.len(), 1);
    assert_eq!(scan.found[0].offset, 16);
    assert_eq!(
        scan.stopped,
        Some(Error::Truncated {
            what: "emsg box",
            offset: 65
        })
    );
    // Cut inside the free box's header.
    let scan = scan_emsg(&segment[..60]);
    assert_eq!(scan.found.len(), 1);
    assert_eq!(
        scan.stopped,
        Some(Error::Truncated {
            what: "box header",
            offset: 57
        })
    );
    // Cut inside the styp box.
    let scan = scan_emsg(&segment[..10]);
    assert!(scan.found.is_empty());
    assert_eq!(
        scan.stopped,
        Some(Error::Truncated {
            what: "box",
            offset: 0
        })
    );
    // Every cut is handled, and never reports more than the whole segment has.
    for cut in 0..segment.len() {
        let scan = scan_emsg(&segment[..cut]);
        assert!(scan.found.len() <= 2);
        assert!(
            scan.found.iter().all(|found| found.emsg.is_ok()),
            "cut at {cut}"
        );
    }
}

#[test]
fn scan_reports_a_bad_emsg_box_in_place_and_goes_on() {
    let mut segment = fixture("segment");
    // Version byte of the first emsg (offset 16 + 8) set to 2.
    segment[24] = 2;
    let scan = scan_emsg(&segment);
    assert_eq!(scan.found.len(), 2);
    assert_eq!(
        scan.found[0].emsg,
        Err(Error::UnsupportedVersion {
            what: "emsg",
            version: 2
        })
    );
    assert!(scan.found[1].emsg.is_ok());
    assert_eq!(scan.stopped, None);
    // Drop the scheme's NUL terminators of the second box: the error points into the
    // segment, not into the box.
    let mut segment = fixture("segment");
    let scheme_start = 65 + 16 + 4;
    assert_eq!(&segment[scheme_start..scheme_start + 5], b"urn:y");
    segment.truncate(scheme_start + 5);
    segment[65 + 15] = (segment.len() - 65) as u8; // low byte of largesize: the box now ends here
    let scan = scan_emsg(&segment);
    assert_eq!(
        scan.found[1].emsg,
        Err(Error::MissingTerminator {
            what: "emsg scheme_id_uri",
            offset: scheme_start
        })
    );
}

#[test]
fn every_fixture_file_is_checked() {
    let mut checked: Vec<String> = id3_cases().iter().map(|case| case.0.to_owned()).collect();
    checked.extend(emsg_cases().iter().map(|case| case.0.to_owned()));
    checked.push("segment".to_owned());
    let mut on_disk: Vec<String> = std::fs::read_dir(fixtures_dir())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .filter_map(|name| name.strip_suffix(".hex").map(str::to_owned))
        .collect();
    checked.sort();
    on_disk.sort();
    assert_eq!(checked, on_disk);
}
