//! The hand-written JSON of client events equals serde's rendering of the same events.

use ovation_client::{
    write_events_json, ActionError, ClientEvent, ErrorCode, FailureCode, Status, Transport,
};

#[test]
fn every_event_kind_renders_like_serde() {
    let tricky = "quote \" backslash \\ newline \n tab \t bell \u{7} emoji 🎉 ünï";
    let events = vec![
        ClientEvent::Status {
            status: Status::Reconnecting,
            transport: Transport::Pull,
            reason: Some(tricky.into()),
        },
        ClientEvent::Status {
            status: Status::Open,
            transport: Transport::Ws,
            reason: None,
        },
        ClientEvent::Comment {
            seq: 1,
            ts_ms: 1_790_000_000_000,
            user: "ana".into(),
            name: tricky.into(),
            text: tricky.into(),
            system: true,
        },
        ClientEvent::Reaction {
            seq: 2,
            ts_ms: 3,
            user: "u".into(),
            name: "n".into(),
            kind: "🔥".into(),
        },
        ClientEvent::Gift {
            seq: 4,
            ts_ms: 5,
            user: "u".into(),
            name: "n".into(),
            sku: "rose".into(),
            qty: 3,
            amount: 300,
        },
        ClientEvent::Like {
            total: u64::from(u32::MAX) + 1,
        },
        ClientEvent::Online { count: 7 },
        ClientEvent::Part {
            name: "poll".into(),
            version: 9,
            value: "{\"q\":\"a\\\"b\"}".into(),
        },
        ClientEvent::Reset { epoch: 2 },
        ClientEvent::Version {
            epoch: 2,
            version: 10,
        },
        ClientEvent::Direct {
            from: "host".into(),
            payload: "{}".into(),
            ts_ms: 11,
        },
        ClientEvent::Balance { balance: 12 },
        ClientEvent::Gap {
            missed_after: 13,
            resumed_from: 20,
        },
        ClientEvent::Done {
            id: (1 << 52) + 5,
            seq: Some(21),
            error: None,
        },
        ClientEvent::Done {
            id: 6,
            seq: None,
            error: Some(ActionError {
                code: FailureCode::Refused(ErrorCode::RateLimited),
                message: tricky.into(),
                retry_after_ms: 250,
            }),
        },
        ClientEvent::Error {
            code: FailureCode::BadServerFrame,
            message: "m".into(),
            retry_after_ms: 0,
        },
        ClientEvent::LikesDropped {
            count: 7,
            code: FailureCode::Refused(ErrorCode::TooMany),
            message: tricky.into(),
        },
        ClientEvent::Ended,
    ];
    let mut json = String::new();
    write_events_json(events.iter(), &mut json);
    let ours: serde_json::Value = serde_json::from_str(&json).expect("valid JSON");
    let serde = serde_json::to_value(&events).unwrap();
    assert_eq!(ours, serde);
    let mut empty = String::new();
    write_events_json([].iter(), &mut empty);
    assert_eq!(empty, "[]");
}
