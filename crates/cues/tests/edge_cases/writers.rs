//! Values the ID3 and `emsg` writers must refuse because they could not be read back.

use crate::common::hex;
use ovation_cues::limits::{
    EMSG_BOX_BYTES_MAX, EMSG_STRING_BYTES_MAX, ID3_FRAMES_MAX, ID3_TAG_BYTES_MAX,
};
use ovation_cues::{
    Emsg, Error, Frame, FrameId, Id3Version, PresentationTime, Tag, TextEncoding, WriteOptions,
};

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
