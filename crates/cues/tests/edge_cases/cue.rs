//! Cue payloads: the table of payloads and what each parses to, cue lookup in tags,
//! and the checks on cue ids and references at construction.

use ovation_cues::{
    Cue, Error, Frame, Id3Version, InteractionKind, Tag, TextEncoding, CUE_PAYLOAD_BYTES_MAX,
};

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
