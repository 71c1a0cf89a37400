//! The pull transport (`pull.rs`).

use super::*;

/// A live room's state in epoch 2 at `version`, holding `parts` (name, version).
fn live_state(version: u64, parts: &[(&str, u64)]) -> PullState {
    PullState {
        room: "r".into(),
        epoch: 2,
        version,
        parts: parts.iter().map(|(n, v)| ((*n).to_owned(), *v)).collect(),
        action_cursor: 0,
        likes: 0,
        online: 1,
        status: "live".into(),
    }
}

/// No new events in epoch 2, the room at `version`, read again in 1 s.
/// The one request transmitted: its number and path.
fn only_fetch(t: Vec<Transmit>) -> (u64, String) {
    match t.as_slice() {
        [Transmit::Fetch { request, path, .. }] => (*request, path.clone()),
        other => panic!("{other:?}"),
    }
}

fn no_events(version: u64, server_time_ms: u64) -> PullEvents {
    PullEvents {
        events: Vec::new(),
        gap: false,
        cursor: 0,
        epoch: 2,
        version,
        likes: 0,
        online: 1,
        poll_interval_ms: 1_000,
        server_time_ms: Some(server_time_ms),
        status: None,
    }
}

#[test]
fn pull_fetches_the_state_then_only_outdated_parts_then_events() {
    let mut c = client(TransportMode::Pull, 0);
    let t = transmits(&mut c);
    let Some(Transmit::Fetch { request, .. }) = t.first().cloned() else {
        panic!("{t:?}");
    };
    let state = PullState {
        room: "r".into(),
        epoch: 2,
        version: 7,
        parts: [("poll".to_owned(), 7), ("room".to_owned(), 1)]
            .into_iter()
            .collect(),
        action_cursor: 40,
        likes: 3,
        online: 9,
        status: "live".into(),
    };
    c.handle_fetch(request, FetchReply::State(state), 5);
    let t = transmits(&mut c);
    let parts: Vec<(u64, String)> = t
        .iter()
        .filter_map(|t| match t {
            Transmit::Fetch {
                request,
                path,
                kind: FetchKind::Part,
            } => Some((*request, path.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        parts.iter().map(|p| p.1.as_str()).collect::<Vec<_>>(),
        vec![
            "/v1/rooms/weur-t/parts/poll?v=7&e=2",
            "/v1/rooms/weur-t/parts/room?v=1&e=2"
        ]
    );
    c.handle_fetch(
        parts[0].0,
        FetchReply::Part {
            value: "[1]".into(),
            newer: None,
        },
        6,
    );
    c.handle_fetch(
        parts[1].0,
        FetchReply::Part {
            value: "{}".into(),
            newer: None,
        },
        6,
    );
    let t = transmits(&mut c);
    let Some(Transmit::Fetch { request, path, .. }) = t.first().cloned() else {
        panic!("{t:?}");
    };
    assert_eq!(path, "/v1/rooms/weur-t/events?since=40");
    assert_eq!(c.status(), Status::Open);
    let reply = PullEvents {
        events: vec![pulled_comment(41)],
        gap: false,
        cursor: 41,
        epoch: 2,
        version: 7,
        likes: 4,
        online: 9,
        poll_interval_ms: 1_000,
        server_time_ms: Some(10),
        status: None,
    };
    c.handle_fetch(request, FetchReply::Events(reply), 8);
    let got = events(&mut c);
    assert!(got
        .iter()
        .any(|e| matches!(e, ClientEvent::Comment { seq: 41, .. })));
    assert!(got.contains(&ClientEvent::Like { total: 4 }));
    assert_eq!(c.poll_timeout(), Some(1_008));
    assert_eq!(
        c.comment("hi", 8).unwrap_err().code,
        FailureCode::UnsupportedTransport
    );
    // A bad token is not retried.
    c.handle_timeout(1_008);
    let Some(Transmit::Fetch { request, .. }) = transmits(&mut c).first().cloned() else {
        panic!();
    };
    c.handle_fetch(
        request,
        FetchReply::Failed {
            status: 401,
            code: FailureCode::from_api(401, Some("token_expired")),
            message: "expired".into(),
        },
        1_010,
    );
    assert_eq!(c.status(), Status::Closed);
}

#[test]
fn on_pull_an_ended_room_closes_the_session() {
    let mut c = client(TransportMode::Pull, 0);
    events(&mut c);
    let request = match transmits(&mut c).as_slice() {
        [Transmit::Fetch { request, .. }] => *request,
        other => panic!("{other:?}"),
    };
    c.handle_fetch(request, state_reply("ended"), 10);
    let got = events(&mut c);
    assert!(got.contains(&ClientEvent::Ended));
    assert_eq!(c.status(), Status::Closed);
    assert!(!got.iter().any(|e| matches!(
        e,
        ClientEvent::Status {
            status: Status::Open,
            ..
        }
    )));
    assert_eq!(c.poll_timeout(), None);
}

/// A read refused for the user's read rate (`429 rate_limited`) is read again after the
/// poll interval: the session stays open, many refused at once do not add up to a long
/// backoff, and the application is told once a streak (the room's news stops while
/// refused; it was told only before the session opened).
#[test]
fn a_read_refused_for_the_read_rate_is_read_again_after_an_interval_and_stays_open() {
    let mut c = client(TransportMode::Pull, 0);
    let Some(Transmit::Fetch { request, .. }) = transmits(&mut c).first().cloned() else {
        panic!();
    };
    // The first read refused before the session opened: told with the server's code (a
    // connect that gives up rejects with it, not `connect_timeout`), and read again.
    let refused = || FetchReply::Failed {
        status: 429,
        code: FailureCode::from_api(429, Some("rate_limited")),
        message: "too many reads".into(),
    };
    c.handle_fetch(request, refused(), 1);
    assert!(events(&mut c)
        .iter()
        .any(|e| matches!(e, ClientEvent::Error { code, .. } if code.as_str() == "rate_limited")));
    c.handle_timeout(c.poll_timeout().expect("read again"));
    let Some(Transmit::Fetch { request, .. }) = transmits(&mut c).first().cloned() else {
        panic!();
    };
    c.handle_fetch(request, FetchReply::State(live_state(0, &[])), 5);
    let Some(Transmit::Fetch { request, .. }) = transmits(&mut c).first().cloned() else {
        panic!();
    };
    c.handle_fetch(request, FetchReply::Events(no_events(0, 10)), 8);
    assert_eq!(c.status(), Status::Open);
    events(&mut c);
    let mut now = 1_008;
    let mut told = 0;
    for _ in 0..40 {
        c.handle_timeout(now);
        let Some(Transmit::Fetch { request, .. }) = transmits(&mut c).first().cloned() else {
            panic!("read again");
        };
        c.handle_fetch(
            request,
            FetchReply::Failed {
                status: 429,
                code: FailureCode::from_api(429, Some("rate_limited")),
                message: "too many reads".into(),
            },
            now,
        );
        assert_eq!(c.status(), Status::Open, "not reconnecting for a read rate");
        assert_eq!(
            c.poll_timeout(),
            Some(now + 1_000),
            "an interval, no backoff"
        );
        told += events(&mut c)
            .iter()
            .filter(
                |e| matches!(e, ClientEvent::Error { code, .. } if code.as_str() == "rate_limited"),
            )
            .count();
        now += 1_000;
    }
    assert_eq!(told, 1, "told once for the streak");
}

/// A part refused for the read rate while the session's first state is read: the session
/// opens only once that part is read too (it opened with the part missing, and
/// `connect()` resolved with a state that lacked it).
#[test]
fn a_session_does_not_open_without_a_part_refused_for_the_read_rate() {
    let mut c = client(TransportMode::Pull, 0);
    let (request, _) = only_fetch(transmits(&mut c));
    let parts = [("board", 3), ("poll", 4)];
    c.handle_fetch(request, FetchReply::State(live_state(7, &parts)), 1);
    let reads = transmits(&mut c);
    let read = |name: &str| {
        reads
            .iter()
            .find_map(|t| match t {
                Transmit::Fetch { request, path, .. } if path.contains(name) => Some(*request),
                _ => None,
            })
            .expect("the part is read")
    };
    let (board, poll) = (read("/parts/board"), read("/parts/poll"));
    let refused = FetchReply::Failed {
        status: 429,
        code: FailureCode::from_api(429, Some("rate_limited")),
        message: "too many reads".into(),
    };
    c.handle_fetch(board, refused, 2);
    let poll_value = FetchReply::Part {
        value: "{}".into(),
        newer: None,
    };
    c.handle_fetch(poll, poll_value, 3);
    assert_ne!(c.status(), Status::Open, "the board is missing");
    // Read again after the interval: the state, then the board.
    c.handle_timeout(c.poll_timeout().expect("read again"));
    let (request, path) = only_fetch(transmits(&mut c));
    assert!(path.ends_with("/state"), "{path}");
    c.handle_fetch(request, FetchReply::State(live_state(7, &parts)), 1_010);
    let (request, path) = only_fetch(transmits(&mut c));
    assert!(
        path.contains("/parts/board"),
        "only the part missing: {path}"
    );
    let board_value = FetchReply::Part {
        value: "[1]".into(),
        newer: None,
    };
    c.handle_fetch(request, board_value, 1_011);
    assert_eq!(c.status(), Status::Open);
    assert_eq!(c.state().parts.get("board"), Some(&3));
}

/// A part refused for the read rate read after read, the state answering between (many
/// clients reading with one token): told once for the run, not once a read.
#[test]
fn a_part_refused_for_the_read_rate_read_after_read_is_told_once() {
    let mut c = client(TransportMode::Pull, 0);
    let parts = [("board", 3)];
    let mut now = 1;
    let mut told = 0;
    for _ in 0..5 {
        let (request, path) = only_fetch(transmits(&mut c));
        assert!(path.ends_with("/state"), "{path}");
        c.handle_fetch(request, FetchReply::State(live_state(7, &parts)), now);
        let (request, path) = only_fetch(transmits(&mut c));
        assert!(path.contains("/parts/board"), "{path}");
        let refused = FetchReply::Failed {
            status: 429,
            code: FailureCode::from_api(429, Some("rate_limited")),
            message: "too many reads".into(),
        };
        c.handle_fetch(request, refused, now + 1);
        told += events(&mut c)
            .iter()
            .filter(
                |e| matches!(e, ClientEvent::Error { code, .. } if code.as_str() == "rate_limited"),
            )
            .count();
        now = c.poll_timeout().expect("read again");
        c.handle_timeout(now);
    }
    assert_eq!(told, 1);
    assert_ne!(c.status(), Status::Open, "the board never came");
}

/// A 2xx answer whose body is not the API's (a proxy's page, `bad_response` with its
/// status) is told with that code, to the pull transport and to the socket's admission
/// check alike: it was a network failure nobody heard of, and `connect()` rejected
/// `connect_timeout` though the server answered.
#[test]
fn a_2xx_answer_that_is_not_the_apis_is_told_as_bad_response() {
    let bad = || FetchReply::Failed {
        status: 200,
        code: FailureCode::BadResponse,
        message: "Unexpected token '<'".into(),
    };
    let mut c = client(TransportMode::Pull, 0);
    let (request, _) = only_fetch(transmits(&mut c));
    c.handle_fetch(request, bad(), 1);
    assert!(events(&mut c)
        .iter()
        .any(|e| matches!(e, ClientEvent::Error { code, .. } if code.as_str() == "bad_response")));
    // A socket whose upgrade failed: the check of the room's state is answered so.
    let mut c = client(TransportMode::Ws, 0);
    let socket = opened_socket(&transmits(&mut c));
    c.handle_socket_closed(socket, 1006, "", 5);
    let check = transmits(&mut c)
        .into_iter()
        .find_map(|t| match t {
            Transmit::Fetch { request, .. } => Some(request),
            _ => None,
        })
        .expect("the admission check");
    c.handle_fetch(check, bad(), 6);
    assert!(events(&mut c)
        .iter()
        .any(|e| matches!(e, ClientEvent::Error { code, .. } if code.as_str() == "bad_response")));
}

/// A part that changes on every read (a leaderboard at a busy moment): the state and the
/// part are read at once when the events show a change, but the events are still read
/// once an interval, never in a loop as fast as the round trip. The part's read is
/// answered at the version asked for (it was still current), at its newest version (it
/// moved on: what the room answers now), or `404` (an edge before that): in the first
/// two the application is told each newer value.
#[test]
fn a_part_changing_on_every_read_keeps_the_pull_interval() {
    #[derive(Debug, Clone, Copy, PartialEq)]
    enum PartAnswer {
        AtVersion,
        Newer,
        NotFound,
    }
    for answer in [
        PartAnswer::AtVersion,
        PartAnswer::Newer,
        PartAnswer::NotFound,
    ] {
        let mut c = client(TransportMode::Pull, 0);
        let mut version = 1;
        let (mut now, mut reads) = (0, alloc::collections::BTreeMap::<&str, u32>::new());
        let mut delivered = Vec::new();
        // Bounded by reads too: without the interval, simulated time never moves on.
        while now <= 10_000 && reads.values().sum::<u32>() < 1_000 {
            let t = transmits(&mut c);
            if t.is_empty() {
                now = c.poll_timeout().expect("the pull goes on");
                c.handle_timeout(now);
                continue;
            }
            for transmit in t {
                let Transmit::Fetch {
                    request,
                    kind,
                    path,
                } = transmit
                else {
                    continue;
                };
                // Every answer says the part moved on since the last one.
                version += 1;
                let asked = path
                    .split_once("?v=")
                    .and_then(|(_, v)| v.split_once('&'))
                    .and_then(|(v, _)| v.parse::<u64>().ok());
                let reply = match (kind, answer) {
                    (FetchKind::State, _) => {
                        FetchReply::State(live_state(version, &[("board", version)]))
                    }
                    (FetchKind::Part, PartAnswer::NotFound) => FetchReply::Failed {
                        status: 404,
                        code: FailureCode::from_api(404, Some("part_version_not_found")),
                        message: "moved on".into(),
                    },
                    (FetchKind::Part, PartAnswer::Newer) => FetchReply::Part {
                        value: alloc::format!("[{version}]"),
                        newer: Some(version),
                    },
                    (FetchKind::Part, PartAnswer::AtVersion) => FetchReply::Part {
                        value: alloc::format!("[{}]", asked.expect("?v=N&e=E")),
                        newer: None,
                    },
                    (FetchKind::Events, _) => FetchReply::Events(no_events(version, now)),
                };
                let name = match kind {
                    FetchKind::State => "state",
                    FetchKind::Part => "part",
                    FetchKind::Events => "events",
                };
                *reads.entry(name).or_default() += 1;
                c.handle_fetch(request, reply, now);
            }
            for event in events(&mut c) {
                if let ClientEvent::Part { version, value, .. } = event {
                    delivered.push((version, value));
                }
            }
        }
        // 10 s at a 1 s interval: about ten of each, where the loop read without pause
        // (and with the part's 404, never read the events at all).
        for name in ["state", "part", "events"] {
            let count = reads.get(name).copied().unwrap_or(0);
            assert!(
                (9..=12).contains(&count),
                "{answer:?}: {name}: {count} reads: {reads:?}"
            );
        }
        assert_eq!(c.status(), Status::Open);
        if answer == PartAnswer::NotFound {
            assert!(delivered.is_empty(), "{delivered:?}");
            continue;
        }
        // Every read of the part told the application a newer value, named by the
        // version it is (with `Newer`, the answer's, not the one asked for).
        assert!(delivered.len() >= 9, "{answer:?}: {delivered:?}");
        for (version, value) in &delivered {
            assert_eq!(value, &alloc::format!("[{version}]"), "{answer:?}");
        }
        assert!(
            delivered.windows(2).all(|w| w[0].0 < w[1].0),
            "{delivered:?}"
        );
    }
}

/// A part that changed once while it was read (answered 404: the room keeps only its
/// newest version) is fetched at its new version after the next events read names the
/// change; nothing is lost and nothing is read in a loop meanwhile.
#[test]
fn a_part_that_moved_on_while_read_is_fetched_at_its_next_version() {
    let mut c = client(TransportMode::Pull, 0);
    let state = |version: u64| live_state(version, &[("board", version)]);
    let (request, _) = only_fetch(transmits(&mut c));
    c.handle_fetch(request, FetchReply::State(state(10)), 5);
    let (request, path) = only_fetch(transmits(&mut c));
    assert_eq!(path, "/v1/rooms/weur-t/parts/board?v=10&e=2");
    let moved_on = FetchReply::Failed {
        status: 404,
        code: FailureCode::from_api(404, Some("part_version_not_found")),
        message: "moved on".into(),
    };
    c.handle_fetch(request, moved_on, 6);
    assert!(transmits(&mut c).is_empty(), "no read before the timer");
    let at = c.poll_timeout().expect("the events' turn");
    c.handle_timeout(at);
    let (request, path) = only_fetch(transmits(&mut c));
    assert!(path.starts_with("/v1/rooms/weur-t/events"), "{path}");
    c.handle_fetch(request, FetchReply::Events(no_events(11, at)), at + 1);
    let at = at + 1;
    assert_eq!(c.poll_timeout(), Some(at), "the state at once");
    c.handle_timeout(at);
    let (request, path) = only_fetch(transmits(&mut c));
    assert!(path.ends_with("/state"), "{path}");
    c.handle_fetch(request, FetchReply::State(state(11)), at + 2);
    let (request, path) = only_fetch(transmits(&mut c));
    assert_eq!(path, "/v1/rooms/weur-t/parts/board?v=11&e=2");
    let _ = events(&mut c);
    c.handle_fetch(
        request,
        FetchReply::Part {
            value: "[1]".into(),
            newer: None,
        },
        at + 3,
    );
    assert!(
        events(&mut c)
            .iter()
            .any(|e| matches!(e, ClientEvent::Part { name, version: 11, .. } if name == "board")),
        "the part arrives at its new version"
    );
}

/// The next read falls due while another is still in flight (one part failed and set its
/// backoff, another is slow): the client does not spin on a due timer, and the slow
/// part's answer starts the next read.
#[test]
fn a_read_due_while_another_is_in_flight_waits_for_it_without_spinning() {
    let mut c = client(TransportMode::Pull, 0);
    let Some(Transmit::Fetch { request, .. }) = transmits(&mut c).first().cloned() else {
        panic!();
    };
    let state = live_state(2, &[("a", 1), ("b", 2)]);
    c.handle_fetch(request, FetchReply::State(state), 5);
    let parts: Vec<u64> = transmits(&mut c)
        .iter()
        .filter_map(|t| match t {
            Transmit::Fetch { request, .. } => Some(*request),
            _ => None,
        })
        .collect();
    let [a, b] = parts[..] else {
        panic!("{parts:?}")
    };
    let failed = FetchReply::Failed {
        status: 500,
        code: FailureCode::from_api(500, None),
        message: "down".into(),
    };
    c.handle_fetch(a, failed, 6);
    let due = c.poll_timeout().expect("a next read");
    c.handle_timeout(due);
    assert!(
        transmits(&mut c).is_empty(),
        "nothing read while b is in flight"
    );
    let next = c.poll_timeout().expect("b's deadline");
    assert!(next > due, "no timer left due at {due}: {next}");
    c.handle_fetch(
        b,
        FetchReply::Part {
            value: "{}".into(),
            newer: None,
        },
        due + 1,
    );
    assert!(
        matches!(transmits(&mut c).as_slice(), [Transmit::Fetch { path, .. }] if path.ends_with("/state")),
        "b's answer starts the next read (the state, for a)"
    );
}

/// A pull read answered with a server error (503 `auth_not_configured`) is read again
/// after a backoff, and the application hears the server's code each time, so
/// `connect()` can reject with it rather than `connect_timeout`.
#[test]
fn a_pull_read_failed_by_the_server_tells_its_code_and_is_read_again() {
    let mut c = client(TransportMode::Pull, 0);
    let mut now = 0;
    for _ in 0..3 {
        let (request, path) = only_fetch(transmits(&mut c));
        assert_eq!(path, "/v1/rooms/weur-t/state");
        let reply = FetchReply::Failed {
            status: 503,
            code: FailureCode::from_api(503, Some("auth_not_configured")),
            message: "no keys".into(),
        };
        c.handle_fetch(request, reply, now);
        let got = events(&mut c);
        assert!(
            got.iter()
                .any(|e| matches!(e, ClientEvent::Error { code, .. }
                if code.as_str() == "auth_not_configured")),
            "{got:?}"
        );
        assert_ne!(c.status(), Status::Closed);
        now = c.poll_timeout().expect("read again");
        c.handle_timeout(now);
    }
}

/// A comment of epoch 2 numbered `seq`, as a pull read returns it.
fn pulled_comment(seq: u64) -> PullAction {
    PullAction {
        seq,
        ts_ms: 1,
        user: "bob".into(),
        name: "Bob".into(),
        kind: "comment".into(),
        text: "hi".into(),
        sku: String::new(),
        qty: 0,
        amount: 0,
        removed: 0,
    }
}

/// Reads the state (no parts) and answers the first events read with `reply`; the
/// client, and when it reads next.
fn open_pull_and_answer(reply: PullEvents) -> (Client, Option<u64>) {
    let mut c = client(TransportMode::Pull, 0);
    let (request, _) = only_fetch(transmits(&mut c));
    c.handle_fetch(request, FetchReply::State(live_state(7, &[])), 5);
    let (request, path) = only_fetch(transmits(&mut c));
    assert_eq!(path, "/v1/rooms/weur-t/events?since=0");
    c.handle_fetch(request, FetchReply::Events(reply), 8);
    let next = c.poll_timeout();
    (c, next)
}

/// A gap with nothing after it (an older server kept the cursor where it was) is not
/// told: the reader was told the same empty gap every poll.
#[test]
fn an_empty_gap_is_not_told() {
    let reply = PullEvents {
        gap: true,
        ..no_events(7, 10)
    };
    let (mut c, _) = open_pull_and_answer(reply);
    let got = events(&mut c);
    assert!(
        !got.iter().any(|e| matches!(e, ClientEvent::Gap { .. })),
        "{got:?}"
    );
    // A gap with something after it is told.
    let reply = PullEvents {
        gap: true,
        cursor: 30,
        ..no_events(7, 10)
    };
    let (mut c, _) = open_pull_and_answer(reply);
    let got = events(&mut c);
    assert!(
        got.contains(&ClientEvent::Gap {
            missed_after: 0,
            resumed_from: 30
        }),
        "{got:?}"
    );
}

/// A full page of events is followed by another read at once; a page with room to spare
/// by one an interval later.
#[test]
fn a_full_page_of_events_is_read_on_at_once() {
    let page = |n: u64| PullEvents {
        events: (1..=n).map(pulled_comment).collect(),
        cursor: n,
        ..no_events(7, 10)
    };
    let (_, next) = open_pull_and_answer(page(PULL_EVENTS_MAX as u64));
    assert_eq!(next, Some(8));
    let (_, next) = open_pull_and_answer(page(PULL_EVENTS_MAX as u64 - 1));
    assert_eq!(next, Some(1_008));
}
