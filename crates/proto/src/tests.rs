use super::*;
use proptest::prelude::*;
use std::path::PathBuf;
use std::string::ToString;
use std::vec;

/// Names each variant, with no wildcard arm: adding a variant forces a fixture for it.
fn client_fixture_name(frame: &ClientFrame) -> &'static str {
    match frame {
        ClientFrame::Hello(_) => "client_hello",
        ClientFrame::Comment { .. } => "client_comment",
        ClientFrame::Like { .. } => "client_like",
        ClientFrame::Reaction { .. } => "client_reaction",
        ClientFrame::Direct { .. } => "client_direct",
        ClientFrame::SetPart { .. } => "client_set_part",
        ClientFrame::Ping { .. } => "client_ping",
        ClientFrame::Gift { .. } => "client_gift",
        ClientFrame::Vote { .. } => "client_vote",
        ClientFrame::Answer { .. } => "client_answer",
        ClientFrame::Ask { .. } => "client_ask",
        ClientFrame::Upvote { .. } => "client_upvote",
        ClientFrame::ProductClick { .. } => "client_product_click",
        ClientFrame::Command { .. } => "client_command",
    }
}

fn event_fixture_name(event: &Event) -> &'static str {
    match event {
        Event::Welcome(_) => "event_welcome",
        Event::Part { .. } => "event_part",
        Event::Version { .. } => "event_version",
        Event::Action(_) => "event_action",
        Event::Gap { .. } => "event_gap",
        Event::Likes { .. } => "event_likes",
        Event::Online { .. } => "event_online",
        Event::Direct { .. } => "event_direct",
        Event::Ack { .. } => "event_ack",
        Event::Error { .. } => "event_error",
        Event::Pong { .. } => "event_pong",
        Event::GoAway { .. } => "event_go_away",
        Event::RoomEnded => "event_room_ended",
        Event::Balance { .. } => "event_balance",
    }
}

fn sample_client_frames() -> Vec<ClientFrame> {
    vec![
        ClientFrame::Hello(Hello {
            protocol_version: PROTOCOL_VERSION,
            resume: Some(Resume {
                epoch: 0xfeed_beef,
                action_cursor: 42,
                part_versions: vec![PartVersion {
                    name: "poll".into(),
                    version: 7,
                }],
            }),
        }),
        ClientFrame::Comment {
            client_id: 1,
            text: "hello, room ✨".into(),
        },
        ClientFrame::Like {
            client_id: 2,
            count: 5,
        },
        ClientFrame::Reaction {
            client_id: 3,
            kind: "🔥".into(),
        },
        ClientFrame::Direct {
            client_id: 4,
            to_user: "u-42".into(),
            payload: r#"{"won":true}"#.into(),
        },
        ClientFrame::SetPart {
            client_id: 5,
            name: "pinned".into(),
            value: r#"{"text":"welcome"}"#.into(),
        },
        ClientFrame::Ping {
            client_time_ms: 1_700_000_000_123,
        },
        ClientFrame::Gift {
            client_id: 6,
            gift_id: "g-7f3a".into(),
            sku: "rose".into(),
            qty: 3,
        },
        ClientFrame::Vote {
            client_id: 11,
            poll_id: "p3".into(),
            option: 2,
        },
        ClientFrame::Answer {
            client_id: 12,
            quiz_id: "z1".into(),
            question: 3,
            option: 1,
        },
        ClientFrame::Ask {
            client_id: 13,
            text: "When?".into(),
        },
        ClientFrame::Upvote {
            client_id: 14,
            question_id: "a2".into(),
        },
        ClientFrame::ProductClick {
            client_id: 15,
            product_id: "red-1".into(),
        },
        ClientFrame::Command {
            client_id: 16,
            command: "{\"command\":\"unpin_product\"}".into(),
        },
    ]
}

fn sample_events() -> Vec<Event> {
    vec![
        Event::Welcome(Welcome {
            protocol_version: PROTOCOL_VERSION,
            connection_id: 9,
            user: "u-1".into(),
            role: Role::Host,
            epoch: 77,
            total_version: 12,
            action_cursor: 300,
            resumed: true,
            tick_ms: 50,
        }),
        Event::Part {
            name: "room".into(),
            version: 3,
            value: r#"{"title":"Live"}"#.into(),
        },
        Event::Version {
            epoch: 77,
            total_version: 12,
        },
        Event::Action(Action {
            seq: 301,
            ts_ms: 1_700_000_000_500,
            user: "u-2".into(),
            name: "Ana".into(),
            body: ActionBody::Comment { text: "hi".into() },
        }),
        Event::Gap {
            missed_after: 10,
            resumed_from: 200,
        },
        Event::Likes { total: 123_456 },
        Event::Online { count: 2_000 },
        Event::Direct {
            from: "host".into(),
            payload: "{}".into(),
            ts_ms: 5,
        },
        Event::Ack {
            client_id: 8,
            seq: Some(302),
        },
        Event::Error {
            client_id: Some(8),
            code: ErrorCode::RateLimited,
            message: "slow down".into(),
            retry_after_ms: 1000,
        },
        Event::Pong {
            client_time_ms: 1,
            server_time_ms: 2,
        },
        Event::GoAway {
            reconnect_delay_ms: 250,
        },
        Event::RoomEnded,
        Event::Balance { balance: 970 },
    ]
}

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| std::format!("{b:02x}")).collect()
}

/// Compares with `tests/golden/<name>.hex`; `OVATION_BLESS=1` rewrites the fixtures.
fn check_golden(name: &str, bytes: &[u8]) {
    let path = golden_dir().join(std::format!("{name}.hex"));
    let actual = hex(bytes);
    if std::env::var_os("OVATION_BLESS").is_some() {
        std::fs::create_dir_all(golden_dir()).unwrap();
        std::fs::write(&path, std::format!("{actual}\n")).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("missing fixture {path:?}; run with OVATION_BLESS=1"));
    assert_eq!(
        expected.trim(),
        actual,
        "wire format of `{name}` changed: enums are append-only (see crates/proto/src/lib.rs)"
    );
}

#[test]
fn golden_bytes_of_every_client_frame_kind() {
    for frame in sample_client_frames() {
        let bytes = frame.encode();
        check_golden(client_fixture_name(&frame), &bytes);
        assert_eq!(ClientFrame::decode(&bytes).unwrap(), frame);
    }
}

#[test]
fn golden_bytes_of_every_server_event_kind() {
    for event in sample_events() {
        let frame = ServerFrame::Batch {
            server_time_ms: 1_700_000_000_000,
            events: vec![event.clone()],
        };
        let bytes = frame.encode();
        check_golden(event_fixture_name(&event), &bytes);
        assert_eq!(ServerFrame::decode(&bytes).unwrap(), frame);
    }
}

#[test]
fn oversized_client_frame_is_refused_before_decoding() {
    let bytes = vec![0u8; limits::CLIENT_FRAME_BYTES_MAX + 1];
    assert!(matches!(
        ClientFrame::decode(&bytes),
        Err(DecodeError::TooLarge { .. })
    ));
}

#[test]
fn comment_over_limit_is_a_field_error() {
    let frame = ClientFrame::Comment {
        client_id: 1,
        text: "x".repeat(limits::COMMENT_BYTES_MAX + 1),
    };
    assert_eq!(
        ClientFrame::decode(&frame.encode()),
        Err(DecodeError::FieldLimit {
            field: "text",
            bytes_max: limits::COMMENT_BYTES_MAX
        })
    );
}

#[test]
fn trailing_bytes_are_malformed() {
    let mut bytes = ClientFrame::Ping { client_time_ms: 1 }.encode();
    bytes.push(0);
    assert_eq!(ClientFrame::decode(&bytes), Err(DecodeError::Malformed));
}

#[test]
fn close_codes_are_distinct_and_ranged() {
    let mut seen = std::collections::HashSet::new();
    for code in CloseCode::ALL {
        assert!(
            seen.insert(code.code()),
            "duplicate close code {}",
            code.code()
        );
        assert!((4000..5000).contains(&code.code()));
        assert_eq!(CloseCode::from_code(code.code()), Some(code));
    }
    assert!(CloseCode::GoingAway.should_reconnect());
    assert!(!CloseCode::BadFrame.should_reconnect());
    // A slow client may try again; a user over the socket cap must close one first.
    assert!(CloseCode::HelloTimeout.should_reconnect());
    assert!(!CloseCode::TooManySockets.should_reconnect());
}

#[test]
fn room_ids_need_a_known_region_prefix() {
    assert_eq!(RoomId::parse("weur-show-1").unwrap().region(), Region::Weur);
    assert_eq!(RoomId::parse("show-1"), Err(RoomIdError::UnknownRegion));
    assert_eq!(RoomId::parse("nowhere"), Err(RoomIdError::MissingRegion));
    assert_eq!(RoomId::parse("weur-"), Err(RoomIdError::EmptyName));
    assert_eq!(RoomId::parse("weur-Show"), Err(RoomIdError::BadCharacter));
    assert_eq!(
        RoomId::parse(&("weur-".to_string() + &"a".repeat(64))),
        Err(RoomIdError::TooLong)
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn client_frames_round_trip(frame in any::<ClientFrame>()) {
        let bytes = frame.encode();
        match ClientFrame::decode(&bytes) {
            Ok(decoded) => prop_assert_eq!(decoded, frame),
            // Random strings may break a field limit; that must be reported, not panic.
            Err(DecodeError::FieldLimit { .. }) => prop_assert!(frame.check_limits().is_err()),
            Err(DecodeError::TooLarge { .. }) => prop_assert!(bytes.len() > limits::CLIENT_FRAME_BYTES_MAX),
            Err(other) => prop_assert!(false, "unexpected {other:?}"),
        }
    }

    #[test]
    fn server_frames_round_trip(frame in any::<ServerFrame>()) {
        prop_assert_eq!(ServerFrame::decode(&frame.encode()).unwrap(), frame);
    }

    #[test]
    fn decoding_random_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let _ = ClientFrame::decode(&bytes);
        let _ = ServerFrame::decode(&bytes);
    }

    #[test]
    fn decoding_mutated_frames_never_panics(
        index in 0usize..8,
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
    ) {
        let mut bytes = sample_client_frames()[index].encode();
        for (at, value) in flips {
            let at = at.index(bytes.len());
            bytes[at] = value;
        }
        let _ = ClientFrame::decode(&bytes);
    }
}

#[test]
fn a_room_holds_its_own_sockets_or_a_full_set_per_shard() {
    use crate::limits::{room_sockets_max, shards_for_audience, CONNECTIONS_PER_ROOM_MAX};
    assert_eq!(
        room_sockets_max(0),
        CONNECTIONS_PER_ROOM_MAX,
        "the room object alone"
    );
    assert_eq!(room_sockets_max(1), CONNECTIONS_PER_ROOM_MAX);
    assert_eq!(room_sockets_max(4), 4 * CONNECTIONS_PER_ROOM_MAX);
    // What the audience gives always holds that audience.
    for audience in [1, 5_000, 5_001, 10_000, 250_000] {
        let shards = shards_for_audience(audience);
        assert!(
            room_sockets_max(shards) as u64 >= audience,
            "{audience} viewers, {shards} shards"
        );
    }
}

#[test]
fn a_tick_stretches_with_the_sockets_it_reaches_and_keeps_the_fanout_under_target() {
    use crate::limits::{tick_ms_for, FANOUT_FRAMES_PER_S_TARGET, TICK_MS, TICK_MS_MAX};
    // Small rooms keep the short tick.
    for sockets in [0, 1, 100, 1_000, 1_250] {
        assert_eq!(tick_ms_for(sockets), TICK_MS, "{sockets} sockets");
    }
    assert_eq!(tick_ms_for(2_500), 100);
    assert_eq!(tick_ms_for(5_000), 200);
    // The tick never goes past its bound, however many sockets.
    for sockets in [6_250, 10_000, 1_000_000, u64::from(u32::MAX)] {
        assert_eq!(tick_ms_for(sockets), TICK_MS_MAX, "{sockets} sockets");
    }
    let mut previous = 0;
    for sockets in (0..=7_000).step_by(50) {
        let tick_ms = tick_ms_for(sockets);
        assert!(tick_ms >= previous, "more sockets never shorten the tick");
        previous = tick_ms;
        // Below the bound, one frame per socket per tick stays under the target.
        if tick_ms < TICK_MS_MAX {
            assert!(
                sockets * 1_000 / tick_ms <= FANOUT_FRAMES_PER_S_TARGET,
                "{sockets} sockets at {tick_ms} ms"
            );
        }
    }
}

#[test]
fn many_shards_space_their_batches_so_the_room_takes_at_most_its_target() {
    use crate::limits::{
        room_sockets_max, room_tick_ms_for, shard_batch_interval_ms_for, shards_for_audience,
        ROOM_SHARD_BATCHES_PER_S_TARGET, SHARDS_PER_ROOM_MAX, TICK_MS, TICK_MS_MAX,
    };
    // Up to 50 shards keep the short tick.
    for shards in [0, 1, 10, 50] {
        assert_eq!(
            shard_batch_interval_ms_for(shards),
            TICK_MS,
            "{shards} shards"
        );
    }
    assert_eq!(shard_batch_interval_ms_for(200), 200);
    assert_eq!(
        shard_batch_interval_ms_for(SHARDS_PER_ROOM_MAX),
        TICK_MS_MAX
    );
    for shards in 1..=SHARDS_PER_ROOM_MAX {
        let interval_ms = shard_batch_interval_ms_for(shards);
        assert!(interval_ms <= TICK_MS_MAX);
        assert!(
            u64::from(shards) * 1_000 / interval_ms <= ROOM_SHARD_BATCHES_PER_S_TARGET,
            "{shards} shards every {interval_ms} ms"
        );
    }
    // A room's tick is its fan-out's, and no shorter than its shards' interval.
    assert_eq!(room_tick_ms_for(1_000, 0), TICK_MS);
    assert_eq!(room_tick_ms_for(5_000, 2), 200);
    assert_eq!(room_tick_ms_for(1_000, SHARDS_PER_ROOM_MAX), TICK_MS_MAX);
    // A million viewers fit one level of shards.
    let shards = shards_for_audience(1_000_000);
    assert_eq!(shards, 200);
    assert!(room_sockets_max(shards) >= 1_000_000);
}

#[test]
fn every_client_field_takes_its_limit_and_is_refused_one_past_it() {
    use limits::*;
    type Frame = fn(String) -> ClientFrame;
    let cases: [(&str, usize, Frame); 15] = [
        ("text", COMMENT_BYTES_MAX, |v| ClientFrame::Comment {
            client_id: 1,
            text: v,
        }),
        ("kind", REACTION_BYTES_MAX, |v| ClientFrame::Reaction {
            client_id: 1,
            kind: v,
        }),
        ("to_user", USER_ID_BYTES_MAX, |v| ClientFrame::Direct {
            client_id: 1,
            to_user: v,
            payload: String::new(),
        }),
        ("payload", DIRECT_PAYLOAD_BYTES_MAX, |v| {
            ClientFrame::Direct {
                client_id: 1,
                to_user: "u".into(),
                payload: v,
            }
        }),
        ("name", PART_NAME_BYTES_MAX, |v| ClientFrame::SetPart {
            client_id: 1,
            name: v,
            value: "1".into(),
        }),
        ("value", PART_VALUE_BYTES_MAX, |v| ClientFrame::SetPart {
            client_id: 1,
            name: "p".into(),
            value: v,
        }),
        ("gift_id", GIFT_ID_BYTES_MAX, |v| ClientFrame::Gift {
            client_id: 1,
            gift_id: v,
            sku: "rose".into(),
            qty: 1,
        }),
        ("sku", GIFT_SKU_BYTES_MAX, |v| ClientFrame::Gift {
            client_id: 1,
            gift_id: "g".into(),
            sku: v,
            qty: 1,
        }),
        ("poll_id", POLL_ID_BYTES_MAX, |v| ClientFrame::Vote {
            client_id: 1,
            poll_id: v,
            option: 0,
        }),
        ("quiz_id", QUIZ_ID_BYTES_MAX, |v| ClientFrame::Answer {
            client_id: 1,
            quiz_id: v,
            question: 0,
            option: 0,
        }),
        ("text", QA_QUESTION_BYTES_MAX, |v| ClientFrame::Ask {
            client_id: 1,
            text: v,
        }),
        ("question_id", QA_ID_BYTES_MAX, |v| ClientFrame::Upvote {
            client_id: 1,
            question_id: v,
        }),
        ("product_id", PRODUCT_ID_BYTES_MAX, |v| {
            ClientFrame::ProductClick {
                client_id: 1,
                product_id: v,
            }
        }),
        ("command", STAFF_COMMAND_BYTES_MAX, |v| {
            ClientFrame::Command {
                client_id: 1,
                command: v,
            }
        }),
        ("part_versions.name", PART_NAME_BYTES_MAX, |v| {
            ClientFrame::Hello(Hello {
                protocol_version: PROTOCOL_VERSION,
                resume: Some(Resume {
                    epoch: 1,
                    action_cursor: 0,
                    part_versions: vec![PartVersion {
                        name: v,
                        version: 1,
                    }],
                }),
            })
        }),
    ];
    for (field, max, frame) in cases {
        let at_limit = frame("x".repeat(max));
        assert_eq!(
            ClientFrame::decode(&at_limit.encode()).as_ref(),
            Ok(&at_limit),
            "{field} at {max}"
        );
        assert_eq!(
            ClientFrame::decode(&frame("x".repeat(max + 1)).encode()),
            Err(DecodeError::FieldLimit {
                field,
                bytes_max: max
            }),
            "{field} one past {max}"
        );
    }
    // ROOM_PARTS_MAX part versions in a resume (every part a room may hold, its own
    // included, each name as long as a name may be: it fits in a frame), then one more.
    let resume = |parts: usize| {
        ClientFrame::Hello(Hello {
            protocol_version: PROTOCOL_VERSION,
            resume: Some(Resume {
                epoch: 1,
                action_cursor: 0,
                part_versions: (0..parts)
                    .map(|i| PartVersion {
                        name: format!("{i:0>width$}", width = PART_NAME_BYTES_MAX),
                        version: 1,
                    })
                    .collect(),
            }),
        })
        .encode()
    };
    assert!(ClientFrame::decode(&resume(ROOM_PARTS_MAX)).is_ok());
    assert!(matches!(
        ClientFrame::decode(&resume(ROOM_PARTS_MAX + 1)),
        Err(DecodeError::FieldLimit {
            field: "part_versions",
            ..
        })
    ));
    // A client frame of exactly CLIENT_FRAME_BYTES_MAX is decoded (not refused for size);
    // a server frame one past SERVER_FRAME_BYTES_MAX is refused before decoding.
    let padded = ClientFrame::Command {
        client_id: 1,
        command: "x".repeat(STAFF_COMMAND_BYTES_MAX),
    }
    .encode();
    assert!(padded.len() <= CLIENT_FRAME_BYTES_MAX);
    assert!(matches!(
        ServerFrame::decode(&vec![0u8; SERVER_FRAME_BYTES_MAX + 1]),
        Err(DecodeError::TooLarge { .. })
    ));
}

/// The server never sends a frame a client refuses: events that encode to exactly
/// `SERVER_FRAME_BYTES_MAX` go as one batch; one byte more splits them into batches
/// each within the limit, which together carry every event in order.
#[test]
fn server_batches_stay_within_server_frame_bytes_max_and_split_one_past() {
    use crate::limits::*;
    // Parts of the largest value, and one sized to bring the batch to `total` bytes.
    let events_of = |total: usize| -> Vec<Event> {
        let part = |i: usize, value_bytes: usize| Event::Part {
            name: format!("p{i:02}"),
            version: 1,
            value: "x".repeat(value_bytes),
        };
        let mut events: Vec<Event> = (0..PARTS_COUNT_MAX)
            .map(|i| part(i, PART_VALUE_BYTES_MAX))
            .collect();
        let mut last = 1;
        events.push(part(PARTS_COUNT_MAX, last));
        loop {
            let bytes = ServerFrame::Batch {
                server_time_ms: 7,
                events: events.clone(),
            }
            .encode()
            .len();
            if bytes == total {
                return events;
            }
            // Every step is one byte; varint prefixes grow only at the start.
            last = last + total - bytes;
            events.pop();
            events.push(part(PARTS_COUNT_MAX, last));
        }
    };
    let decoded = |frames: &[Vec<u8>]| -> Vec<Event> {
        frames
            .iter()
            .flat_map(|frame| {
                assert!(
                    frame.len() <= SERVER_FRAME_BYTES_MAX,
                    "{} bytes",
                    frame.len()
                );
                let ServerFrame::Batch { events, .. } = ServerFrame::decode(frame).unwrap();
                events
            })
            .collect()
    };
    let at_limit = events_of(SERVER_FRAME_BYTES_MAX);
    let frames = ServerFrame::batches(7, at_limit.clone());
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0].len(), SERVER_FRAME_BYTES_MAX);
    assert_eq!(decoded(&frames), at_limit);
    let one_past = events_of(SERVER_FRAME_BYTES_MAX + 1);
    let frames = ServerFrame::batches(7, one_past.clone());
    assert_eq!(frames.len(), 2);
    assert_eq!(decoded(&frames), one_past);
}

#[test]
fn every_error_code_is_in_all_once_with_its_own_name() {
    // The match is exhaustive: a code added to the enum fails to compile here until it
    // has its place in `ErrorCode::ALL`.
    let index_of = |code: ErrorCode| match code {
        ErrorCode::RateLimited => 0,
        ErrorCode::Forbidden => 1,
        ErrorCode::TooLong => 2,
        ErrorCode::Invalid => 3,
        ErrorCode::NotFound => 4,
        ErrorCode::RoomEnded => 5,
        ErrorCode::TooMany => 6,
        ErrorCode::InsufficientFunds => 7,
        ErrorCode::Unavailable => 8,
        ErrorCode::PollClosed => 9,
        ErrorCode::Muted => 10,
        ErrorCode::Blocked => 11,
    };
    let mut names = std::collections::BTreeSet::new();
    for (i, code) in ErrorCode::ALL.iter().enumerate() {
        assert_eq!(index_of(*code), i);
        assert!(names.insert(code.as_str()), "{} twice", code.as_str());
    }
}

#[test]
fn an_upgrade_query_says_a_hello_without_resume_and_only_with_its_param() {
    let hello = |query: &str| Hello::from_upgrade_query(query);
    let fresh = |v: u16| {
        Some(Hello {
            protocol_version: v,
            resume: None,
        })
    };
    assert_eq!(hello(UPGRADE_HELLO_QUERY), fresh(PROTOCOL_VERSION));
    assert_eq!(hello("token=abc&hello=1"), fresh(1));
    assert_eq!(hello("hello=1&token=abc"), fresh(1));
    assert_eq!(hello("hello=2"), fresh(2));
    // Not a version: one no server speaks (refused like a Hello frame of another version).
    assert_eq!(hello("hello=65536"), fresh(0));
    assert_eq!(hello("hello=-1"), fresh(0));
    assert_eq!(hello("hello="), fresh(0));
    assert_eq!(hello("hello"), fresh(0));
    assert_eq!(hello(""), None);
    assert_eq!(hello("token=abc"), None);
    assert_eq!(hello("xhello=1&hellox=1"), None);
}
