//! Property tests: no bytes make a parser panic or name an offset outside the input, and
//! whatever the writers accept comes back from the parsers unchanged.

use ovation_cues::{
    scan_emsg, Cue, Emsg, Error, Frame, FrameId, Id3Version, InteractionKind, PresentationTime,
    Tag, TextEncoding, WriteOptions, EMSG_SCHEME_ID3,
};
use proptest::collection::vec;
use proptest::prelude::*;

/// Every parser over `bytes`; each error must point inside the input.
fn parse_everything(bytes: &[u8]) {
    let check = |result: Result<(), Error>| {
        if let Err(error) = result {
            assert!(
                error.offset().is_none_or(|offset| offset <= bytes.len()),
                "{error:?} for {} bytes",
                bytes.len()
            );
            assert!(!error.to_string().is_empty());
        }
    };
    check(Tag::parse(bytes).map(drop));
    check(Tag::parse_prefix(bytes).map(|(_, len)| assert!(len <= bytes.len())));
    check(Emsg::parse(bytes).map(drop));
    check(Emsg::parse_prefix(bytes).map(|(_, len)| assert!(len <= bytes.len())));
    check(Cue::from_payload(bytes).map(drop));
    check(Cue::from_id3_bytes(bytes).map(drop));
    let scan = scan_emsg(bytes);
    for found in scan.found {
        assert!(found.offset < bytes.len());
        check(found.emsg.map(drop));
    }
    check(scan.stopped.map_or(Ok(()), Err));
}

/// Bytes that favour what unsynchronisation and terminators care about.
fn interesting_byte() -> impl Strategy<Value = u8> {
    prop_oneof![Just(0xFF), Just(0x00), 0xE0..=0xFFu8, any::<u8>()]
}

fn syncsafe(value: usize) -> [u8; 4] {
    [
        (value >> 21) as u8 & 0x7F,
        (value >> 14) as u8 & 0x7F,
        (value >> 7) as u8 & 0x7F,
        value as u8 & 0x7F,
    ]
}

/// A tag header and plausible frames with random flags and contents, sizes right more
/// often than not: garbage that gets past the header into the frame decoders.
fn id3_shaped_garbage() -> impl Strategy<Value = Vec<u8>> {
    let frame = (
        prop_oneof![
            Just(*b"TXXX"),
            Just(*b"PRIV"),
            Just(*b"TIT2"),
            Just(*b"ZZZZ"),
            any::<[u8; 4]>()
        ],
        any::<u8>(),
        vec(interesting_byte(), 0..40),
        any::<bool>(),
    );
    (
        3u8..=4,
        any::<u8>(),
        vec(frame, 0..5),
        vec(interesting_byte(), 0..8),
    )
        .prop_map(|(major, flags, frames, tail)| {
            let mut body = Vec::new();
            for (id, format_flags, mut data, size_right) in frames {
                if let (Some(first), false) = (data.first_mut(), id == *b"PRIV" || id == *b"ZZZZ") {
                    *first %= 5; // mostly valid text encodings
                }
                body.extend_from_slice(&id);
                let size = if size_right {
                    data.len()
                } else {
                    data.len() + 3
                };
                match major {
                    3 => body.extend_from_slice(&(size as u32).to_be_bytes()),
                    _ => body.extend_from_slice(&syncsafe(size)),
                }
                body.extend_from_slice(&[0, format_flags]);
                body.extend_from_slice(&data);
            }
            body.extend_from_slice(&tail);
            let mut bytes = b"ID3".to_vec();
            bytes.extend_from_slice(&[major, 0, flags]);
            bytes.extend_from_slice(&syncsafe(body.len()));
            bytes.extend_from_slice(&body);
            bytes
        })
}

fn emsg_shaped_garbage() -> impl Strategy<Value = Vec<u8>> {
    (0u8..=2, vec(interesting_byte(), 0..80), any::<bool>()).prop_map(
        |(version, body, largesize)| {
            let mut bytes = Vec::new();
            if largesize {
                bytes.extend_from_slice(&1u32.to_be_bytes());
                bytes.extend_from_slice(b"emsg");
                bytes.extend_from_slice(&(16 + 4 + body.len() as u64).to_be_bytes());
            } else {
                bytes.extend_from_slice(&(8 + 4 + body.len() as u32).to_be_bytes());
                bytes.extend_from_slice(b"emsg");
            }
            bytes.extend_from_slice(&[version, 0, 0, 0]);
            bytes.extend_from_slice(&body);
            bytes
        },
    )
}

fn latin1_text() -> impl Strategy<Value = String> {
    vec(1u8..=255, 0..12).prop_map(|bytes| bytes.into_iter().map(char::from).collect())
}

fn unicode_text() -> impl Strategy<Value = String> {
    vec(any::<char>().prop_filter("no NUL", |c| *c != '\0'), 0..12)
        .prop_map(|chars| chars.into_iter().collect())
}

fn text_in(encoding: TextEncoding) -> BoxedStrategy<String> {
    match encoding {
        TextEncoding::Latin1 => latin1_text().boxed(),
        _ => unicode_text().boxed(),
    }
}

/// One or more values joined by U+0000, never ending in it.
fn values_in(encoding: TextEncoding) -> BoxedStrategy<String> {
    vec(text_in(encoding), 1..4)
        .prop_map(|values| values.join("\0"))
        .prop_filter("no trailing NUL", |value| !value.ends_with('\0'))
        .boxed()
}

fn encoding_in(version: Id3Version) -> BoxedStrategy<TextEncoding> {
    use TextEncoding::*;
    match version {
        Id3Version::V2_3 => prop_oneof![Just(Latin1), Just(Utf16)].boxed(),
        Id3Version::V2_4 => {
            prop_oneof![Just(Latin1), Just(Utf16), Just(Utf16Be), Just(Utf8)].boxed()
        }
    }
}

fn id_byte() -> impl Strategy<Value = u8> {
    prop_oneof![b'A'..=b'Z', b'0'..=b'9']
}

fn frame_in(version: Id3Version) -> BoxedStrategy<Frame> {
    let user_text = encoding_in(version)
        .prop_flat_map(|encoding| (Just(encoding), text_in(encoding), values_in(encoding)))
        .prop_map(|(encoding, description, value)| Frame::UserText {
            encoding,
            description,
            value,
        });
    let text_id = [id_byte(), id_byte(), id_byte()].prop_filter_map("not TXXX", |[a, b, c]| {
        FrameId::new([b'T', a, b, c]).filter(FrameId::is_text)
    });
    let text = (text_id, encoding_in(version))
        .prop_flat_map(|(id, encoding)| (Just(id), Just(encoding), values_in(encoding)))
        .prop_map(|(id, encoding, value)| Frame::Text {
            id,
            encoding,
            value,
        });
    let private = (latin1_text(), vec(interesting_byte(), 0..32))
        .prop_map(|(owner, data)| Frame::Private { owner, data });
    let other_id = [id_byte(), id_byte(), id_byte(), id_byte()]
        .prop_filter_map("not T*** or PRIV", |id| {
            FrameId::new(id).filter(|id| id.as_bytes()[0] != b'T' && *id != FrameId::PRIV)
        });
    let other =
        (other_id, vec(interesting_byte(), 0..32)).prop_map(|(id, data)| Frame::Other { id, data });
    prop_oneof![user_text, text, private, other].boxed()
}

fn tag_and_options() -> impl Strategy<Value = (Tag, WriteOptions)> {
    prop_oneof![Just(Id3Version::V2_3), Just(Id3Version::V2_4)].prop_flat_map(|version| {
        let footer = if version == Id3Version::V2_4 {
            any::<bool>().boxed()
        } else {
            Just(false).boxed()
        };
        (
            vec(frame_in(version), 0..6),
            any::<bool>(),
            prop_oneof![Just(0usize), 0usize..24],
            footer,
        )
            .prop_map(move |(frames, unsynchronise, padding_bytes, footer)| {
                let padding_bytes = if footer { 0 } else { padding_bytes };
                (
                    Tag { version, frames },
                    WriteOptions {
                        unsynchronise,
                        padding_bytes,
                        footer,
                    },
                )
            })
    })
}

fn emsg() -> impl Strategy<Value = Emsg> {
    let time = prop_oneof![
        any::<u32>().prop_map(PresentationTime::Delta),
        any::<u64>().prop_map(PresentationTime::Absolute)
    ];
    (
        unicode_text(),
        unicode_text(),
        any::<u32>(),
        time,
        any::<u32>(),
        any::<u32>(),
        vec(any::<u8>(), 0..64),
    )
        .prop_map(
            |(scheme_id_uri, value, timescale, time, event_duration, id, message_data)| Emsg {
                scheme_id_uri,
                value,
                timescale,
                time,
                event_duration,
                id,
                message_data,
            },
        )
}

fn cue() -> impl Strategy<Value = Cue> {
    let kind = proptest::sample::select(InteractionKind::ALL.to_vec());
    ("[A-Za-z0-9_.-]{1,64}", kind, "[A-Za-z0-9_.-]{1,64}")
        .prop_map(|(id, kind, reference)| Cue::new(&id, kind, &reference).unwrap())
}

/// Up to four edits (overwrite, insert, remove, truncate) at random places.
fn mutate(mut bytes: Vec<u8>, edits: &[(u8, usize, u8)]) -> Vec<u8> {
    for &(kind, at, value) in edits {
        if bytes.is_empty() {
            bytes.push(value);
            continue;
        }
        let at = at % bytes.len();
        match kind % 4 {
            0 => bytes[at] = value,
            1 => bytes.insert(at, value),
            2 => {
                bytes.remove(at);
            }
            _ => bytes.truncate(at),
        }
    }
    bytes
}

fn edits() -> impl Strategy<Value = Vec<(u8, usize, u8)>> {
    vec((any::<u8>(), any::<usize>(), interesting_byte()), 1..4)
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in vec(any::<u8>(), 0..512)) {
        parse_everything(&bytes);
    }

    #[test]
    fn id3_shaped_garbage_never_panics(bytes in id3_shaped_garbage()) {
        parse_everything(&bytes);
    }

    #[test]
    fn emsg_shaped_garbage_never_panics(bytes in emsg_shaped_garbage()) {
        parse_everything(&bytes);
    }

    #[test]
    fn mutated_tags_boxes_and_payloads_never_panic(
        (tag, options) in tag_and_options(),
        emsg in emsg(),
        cue in cue(),
        edits in edits(),
    ) {
        parse_everything(&mutate(tag.to_bytes(&options).unwrap(), &edits));
        parse_everything(&mutate(emsg.to_bytes().unwrap(), &edits));
        parse_everything(&mutate(cue.to_payload().into_bytes(), &edits));
        parse_everything(&mutate(cue.to_emsg(1000, 5, 1).to_bytes().unwrap(), &edits));
    }

    #[test]
    fn tags_round_trip((tag, options) in tag_and_options()) {
        let bytes = tag.to_bytes(&options).unwrap();
        prop_assert_eq!(Tag::parse(&bytes), Ok(tag));
        prop_assert_eq!(Tag::parse_prefix(&bytes).map(|(_, len)| len), Ok(bytes.len()));
        if options.unsynchronise {
            // No false MPEG sync anywhere in the stored tag, nor an 0xFF at its end.
            prop_assert!(!bytes.windows(2).any(|pair| pair[0] == 0xFF && pair[1] >= 0xE0));
            prop_assert_ne!(bytes.last(), Some(&0xFF));
        }
    }

    #[test]
    fn unsynchronised_data_ending_in_ff_gets_a_zero_after_it(
        version in prop_oneof![Just(Id3Version::V2_3), Just(Id3Version::V2_4)],
        mut data in vec(interesting_byte(), 0..16),
    ) {
        // Whatever follows a tag (audio, the next frame) could complete a false sync
        // with a final 0xFF, so the writer ends unsynchronised data with a zero.
        data.push(0xFF);
        let tag = Tag { version, frames: vec![Frame::Other { id: FrameId::new(*b"ZZZZ").unwrap(), data }] };
        let bytes = tag.to_bytes(&WriteOptions { unsynchronise: true, ..WriteOptions::default() }).unwrap();
        prop_assert_eq!(&bytes[bytes.len() - 2..], &[0xFF, 0x00]);
        prop_assert_eq!(Tag::parse(&bytes), Ok(tag));
    }

    #[test]
    fn emsg_boxes_round_trip(emsg in emsg()) {
        let bytes = emsg.to_bytes().unwrap();
        prop_assert_eq!(bytes[8], emsg.version());
        prop_assert_eq!(Emsg::parse(&bytes), Ok(emsg));
    }

    #[test]
    fn scan_finds_every_emsg_among_other_boxes(
        boxes in vec(prop_oneof![emsg().prop_map(Ok), (any::<[u8; 4]>(), vec(any::<u8>(), 0..32)).prop_map(Err)], 0..8),
    ) {
        let mut segment = Vec::new();
        let mut expected = Vec::new();
        for item in boxes {
            match item {
                Ok(emsg) => {
                    expected.push((segment.len(), emsg.clone()));
                    segment.extend_from_slice(&emsg.to_bytes().unwrap());
                }
                Err((mut box_type, payload)) => {
                    if box_type == *b"emsg" {
                        box_type = *b"free";
                    }
                    segment.extend_from_slice(&(8 + payload.len() as u32).to_be_bytes());
                    segment.extend_from_slice(&box_type);
                    segment.extend_from_slice(&payload);
                }
            }
        }
        let scan = scan_emsg(&segment);
        prop_assert_eq!(scan.stopped, None);
        let found: Vec<(usize, Emsg)> = scan.found.into_iter().map(|found| (found.offset, found.emsg.unwrap())).collect();
        prop_assert_eq!(found, expected);
    }

    #[test]
    fn cues_round_trip_through_every_carrier(cue in cue(), delta in any::<u32>(), time in any::<u64>(), id in any::<u32>()) {
        prop_assert_eq!(Cue::from_payload(cue.to_payload().as_bytes()), Ok(cue.clone()));
        prop_assert_eq!(Cue::from_id3_bytes(&cue.to_id3_bytes()), Ok(cue.clone()));
        let emsg = cue.to_emsg(90_000, time, id);
        prop_assert_eq!(&emsg.scheme_id_uri, EMSG_SCHEME_ID3);
        prop_assert_eq!(Cue::from_emsg(&Emsg::parse(&emsg.to_bytes().unwrap()).unwrap()), Ok(cue.clone()));
        let v0 = Emsg { time: PresentationTime::Delta(delta), ..emsg };
        prop_assert_eq!(Cue::from_emsg(&Emsg::parse(&v0.to_bytes().unwrap()).unwrap()), Ok(cue));
    }

    #[test]
    fn cues_are_found_among_other_frames_in_either_frame_kind(
        cue in cue(),
        (tag, options) in tag_and_options(),
        at in any::<usize>(),
        as_private in any::<bool>(),
    ) {
        let mut tag = tag;
        tag.frames.retain(|frame| !matches!(frame,
            Frame::UserText { description, .. } if description == "ovation"));
        tag.frames.retain(|frame| !matches!(frame, Frame::Private { owner, .. } if owner == "ovation"));
        let frame = if as_private {
            Frame::Private { owner: "ovation".into(), data: cue.to_payload().into_bytes() }
        } else {
            Frame::UserText { encoding: TextEncoding::Latin1, description: "ovation".into(), value: cue.to_payload() }
        };
        let at = at % (tag.frames.len() + 1);
        tag.frames.insert(at, frame);
        let bytes = tag.to_bytes(&options).unwrap();
        prop_assert_eq!(Cue::from_id3_bytes(&bytes), Ok(cue));
    }

    #[test]
    fn payload_readers_skip_fields_they_do_not_know(
        cue in cue(),
        extra in vec(("[a-z0-9_-]{1,8}", "[ -:<-~]{0,16}"), 0..4),
    ) {
        let mut payload = cue.to_payload();
        let mut keys = vec!["v".to_owned(), "cue".to_owned(), "ref".to_owned()];
        for (key, value) in extra {
            if keys.contains(&key) {
                continue;
            }
            payload.push_str(&format!(";{key}={value}"));
            keys.push(key);
        }
        prop_assert_eq!(Cue::from_payload(payload.as_bytes()), Ok(cue));
    }
}
