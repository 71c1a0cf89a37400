//! What a socket may do: the comment rate limit, oversized and garbage frames, heartbeats,
//! the end of a connection's lifetime, the per-user socket cap and the Hello deadline.

use super::{comment, comment_text, connect, wait_ack, WAIT};
use ovation_cli::{Socket, SocketEnd};
use ovation_proto::limits::{
    CLIENT_FRAME_BYTES_MAX, FRAMES_BURST, FRAMES_REFUSED_BURST, FRAMES_REPEATED_BURST,
    HELLO_DEADLINE_MS, USER_CONNECTS_BURST, USER_CONNECTS_PER_S, USER_SOCKETS_PER_ROOM_MAX,
};
use ovation_proto::{ClientFrame, CloseCode, ErrorCode, Event};
use ovation_tests::{
    assert_acked_in_time, create_room, one_flood_at_a_time, shared, token, Server,
};
use std::time::Duration;

#[test]
fn comment_rate_limit_answers_with_an_error() {
    let server = shared();
    let room = create_room(server, "weur");
    let (mut socket, _) = connect(server, &room, "chatty");
    for id in 1..=4 {
        socket.send(&comment(id, "spam")).unwrap();
    }
    let answer = wait_ack(&mut socket, 4);
    assert!(
        matches!(
            answer,
            Event::Error {
                code: ErrorCode::RateLimited,
                retry_after_ms: 1..,
                ..
            }
        ),
        "{answer:?}"
    );
}

fn expect_close(socket: &mut Socket) -> u16 {
    loop {
        match socket.next_event(WAIT) {
            Ok(Some(_)) => {}
            Ok(None) => panic!("socket was not closed"),
            Err(SocketEnd::Closed(code, _)) => return code,
            Err(other) => panic!("unexpected end {other:?}"),
        }
    }
}

#[test]
fn oversized_and_garbage_frames_close_the_socket_and_the_room_keeps_serving() {
    let server = shared();
    let room = create_room(server, "weur");
    let (mut garbage, _) = connect(server, &room, "g");
    let (mut huge, _) = connect(server, &room, "h");
    let (mut texter, _) = connect(server, &room, "t");
    let (mut fine, _) = connect(server, &room, "f");
    garbage.send_raw(vec![0xff, 0x00, 0x13, 0x37]).unwrap();
    assert_eq!(expect_close(&mut garbage), CloseCode::BadFrame.code());
    huge.send_raw(vec![1; CLIENT_FRAME_BYTES_MAX + 1]).unwrap();
    assert_eq!(expect_close(&mut huge), CloseCode::FrameTooLarge.code());
    texter.send_text("hello?").unwrap();
    assert_eq!(
        expect_close(&mut texter),
        CloseCode::TextNotSupported.code()
    );
    fine.send(&comment(1, "still open")).unwrap();
    fine.wait_for(WAIT, |e| comment_text(e).as_deref() == Some("still open"))
        .expect("room keeps serving");
    let stats = server
        .admin()
        .get(&format!("/v1/rooms/{room}/stats"))
        .unwrap()
        .body;
    assert_eq!(stats["closed_by_reason"]["bad_frame"], 1);
    assert_eq!(stats["closed_by_reason"]["frame_too_large"], 1);
}

#[test]
fn heartbeat_pings_are_answered_without_reaching_the_room() {
    let server = shared();
    let room = create_room(server, "weur");
    let (mut socket, _) = connect(server, &room, "pinger");
    socket.drain(Duration::from_millis(200)).unwrap();
    let stats = |server: &Server| {
        server
            .admin()
            .get(&format!("/v1/rooms/{room}/stats"))
            .unwrap()
            .body["frames_in"]
            .as_u64()
            .unwrap()
    };
    let before = stats(server);
    for _ in 0..3 {
        assert_eq!(socket.ping_text().unwrap(), "pong");
    }
    assert_eq!(stats(server), before, "heartbeats reached the room object");
}

#[test]
fn connections_get_goaway_at_the_end_of_their_lifetime_then_close() {
    let data = ovation_tests::scratch_dir("lifetime");
    let server = Server::start_with_vars(&data, &[("OVATION_CONNECTION_LIFETIME_MS", "1500")]);
    let room = create_room(&server, "weur");
    // The lifetime runs from the upgrade, so the clock starts before the connect (a slow
    // Welcome must not count against the wait).
    let started = std::time::Instant::now();
    let (mut socket, _) = connect(&server, &room, "mayfly");
    socket
        .wait_for(WAIT, |e| matches!(e, Event::GoAway { .. }))
        .expect("GoAway at the end of the lifetime");
    assert!(started.elapsed() >= Duration::from_millis(1000));
    // A client that ignores GoAway is closed after the grace period, with the code that
    // tells it to reconnect (`should_reconnect` itself is a unit test of ovation-proto).
    assert_eq!(expect_close(&mut socket), CloseCode::GoingAway.code());
}

/// What a refused upgrade is recorded as among close codes: HTTP 429 `rate_limited`,
/// the Worker's per-user connect rate (`USER_CONNECTS_BURST`), before the room wakes.
const UPGRADE_RATE_LIMITED: u16 = 429;

/// Opens `count` sockets with one token, eight at a time (each sends `Hello`), and sorts
/// them by what the server did: welcomed (kept open) or closed with a code (or its
/// upgrade refused for the user's connect rate: `UPGRADE_RATE_LIMITED`).
fn open_many(server: &Server, room: &str, token: &str, count: usize) -> (Vec<Socket>, Vec<u16>) {
    let outcomes: Vec<Result<Socket, u16>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..8)
            .map(|worker| {
                scope.spawn(move || {
                    (worker..count)
                        .step_by(8)
                        .map(|_| {
                            let mut socket = match Socket::connect(&server.base, room, token, None)
                            {
                                Ok(socket) => socket,
                                Err(SocketEnd::Refused(429, _)) => {
                                    return Err(UPGRADE_RATE_LIMITED);
                                }
                                Err(e) => panic!("upgrade: {e:?}"),
                            };
                            match socket.wait_for(WAIT, |e| matches!(e, Event::Welcome(_))) {
                                Ok(_) => Ok(socket),
                                Err(SocketEnd::Closed(code, _)) => Err(code),
                                Err(other) => panic!("neither Welcome nor a close: {other:?}"),
                            }
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("worker"))
            .collect()
    });
    let mut welcomed = Vec::new();
    let mut closed = Vec::new();
    for outcome in outcomes {
        match outcome {
            Ok(socket) => welcomed.push(socket),
            Err(code) => closed.push(code),
        }
    }
    (welcomed, closed)
}

/// Every online count `socket` is told within `window`.
fn online_counts(socket: &mut Socket, window: Duration) -> Vec<u32> {
    socket
        .drain(window)
        .unwrap()
        .into_iter()
        .filter_map(|e| match e {
            Event::Online { count } => Some(count),
            _ => None,
        })
        .collect()
}

#[test]
fn one_viewer_token_holds_at_most_the_socket_cap_and_cannot_inflate_online() {
    let _alone = one_flood_at_a_time();
    let server = shared();
    let room = create_room(server, "weur");
    let (mut bystander, _) = connect(server, &room, "bystander");
    bystander
        .wait_for(WAIT, |e| *e == Event::Online { count: 1 })
        .expect("1 online");
    let greedy = token("viewer", "greedy", &room);
    let opening = std::time::Instant::now();
    let (welcomed, closed) = open_many(server, &room, &greedy, 200);
    let opening = opening.elapsed();
    assert!(
        !welcomed.is_empty() && welcomed.len() <= USER_SOCKETS_PER_ROOM_MAX,
        "{} sockets of one token welcomed",
        welcomed.len()
    );
    assert_eq!(welcomed.len() + closed.len(), 200);
    assert_refused_over_the_cap(&welcomed, &closed, opening);
    // The others see the greedy user's sockets at most, never 200 (a changed count goes
    // out within ONLINE_PUBLISH_INTERVAL_MS).
    let cap = 1 + welcomed.len() as u32;
    let seen = online_counts(&mut bystander, Duration::from_millis(2_500));
    assert!(
        seen.iter().all(|&n| n <= cap),
        "online counts seen: {seen:?}"
    );
    let state = server
        .admin()
        .get(&format!("/v1/rooms/{room}/state"))
        .unwrap();
    assert_eq!(state.body["online"], cap, "{:?}", state.body);
    // Another viewer still gets in, and a closed tab frees a place for the greedy user.
    let (_next, _) = connect(server, &room, "next");
    let mut welcomed = welcomed;
    welcomed.pop().expect("one").close();
    let reopened = (0..20).find_map(|_| {
        std::thread::sleep(Duration::from_millis(100));
        let mut socket = Socket::connect(&server.base, &room, &greedy, None).ok()?;
        socket
            .wait_for(WAIT, |e| matches!(e, Event::Welcome(_)))
            .ok()
            .map(|_| socket)
    });
    assert!(reopened.is_some(), "a closed tab frees its place");
}

#[test]
fn a_socket_without_hello_is_not_online_and_is_closed_at_the_deadline() {
    let server = shared();
    let room = create_room(server, "weur");
    let (mut bystander, _) = connect(server, &room, "bystander");
    bystander
        .wait_for(WAIT, |e| *e == Event::Online { count: 1 })
        .expect("1 online");
    let started = std::time::Instant::now();
    let mut silent =
        Socket::open(&server.base, &room, &token("viewer", "silent", &room)).expect("upgrade");
    let state = server
        .admin()
        .get(&format!("/v1/rooms/{room}/state"))
        .unwrap();
    assert_eq!(
        state.body["online"], 1,
        "a socket without Hello is not online"
    );
    let closed = silent.next_event(Duration::from_millis(HELLO_DEADLINE_MS + 5_000));
    assert!(
        matches!(closed, Err(SocketEnd::Closed(code, _)) if code == CloseCode::HelloTimeout.code()),
        "{closed:?}"
    );
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(HELLO_DEADLINE_MS - 500)
            && waited < Duration::from_millis(HELLO_DEADLINE_MS + 5_000),
        "closed after {waited:?}"
    );
    let seen = online_counts(&mut bystander, Duration::from_millis(500));
    assert!(seen.iter().all(|&n| n == 1), "online counts seen: {seen:?}");
}

#[test]
fn a_sharded_room_keeps_the_per_user_socket_cap() {
    let _alone = one_flood_at_a_time();
    let server = shared();
    let room = ovation_tests::create_big_room(server, 10_000);
    // A bystander on the room comments throughout; the greedy token's upgrades after the
    // first go straight to its shard (the router remembers the room's shard count).
    let (mut bystander, _) = connect(server, &room, "bystander");
    let greedy = token("viewer", "greedy", &room);
    let opening = std::time::Instant::now();
    let mut seen = Vec::new();
    let (welcomed, closed, acks_ms) = std::thread::scope(|scope| {
        let flood = scope.spawn(|| open_many(server, &room, &greedy, 200));
        let mut acks_ms = Vec::new();
        let mut client_id = 0;
        while !flood.is_finished() {
            client_id += 1;
            let sent = std::time::Instant::now();
            bystander.send(&comment(client_id, "still here")).unwrap();
            let answer = bystander
                .wait_for(WAIT, |e| {
                    if let Event::Online { count } = e {
                        seen.push(*count);
                    }
                    matches!(e, Event::Ack { client_id: c, .. } | Event::Error { client_id: Some(c), .. } if *c == client_id)
                })
                .unwrap();
            assert!(matches!(answer, Event::Ack { .. }), "{answer:?}");
            acks_ms.push(sent.elapsed().as_millis());
            // A human pace, under the comment rate (`COMMENT_RATE_PER_S`).
            while sent.elapsed() < Duration::from_secs(1) && !flood.is_finished() {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let (welcomed, closed) = flood.join().expect("flood");
        (welcomed, closed, acks_ms)
    });
    let opening = opening.elapsed();
    assert!(
        !welcomed.is_empty() && welcomed.len() <= USER_SOCKETS_PER_ROOM_MAX,
        "{} sockets of one token welcomed by its shard",
        welcomed.len()
    );
    assert_eq!(welcomed.len() + closed.len(), 200);
    assert_refused_over_the_cap(&welcomed, &closed, opening);
    assert_acked_in_time("the bystander's comment", "the socket flood", &acks_ms);
    // The others count the greedy user's sockets at most, never 200.
    let cap = 1 + welcomed.len() as u32;
    seen.extend(online_counts(&mut bystander, Duration::from_millis(2_500)));
    eprintln!("sharded flood: acks (ms) {acks_ms:?}; online counts seen {seen:?}");
    assert!(
        seen.iter().all(|&n| n <= cap),
        "online counts seen: {seen:?}"
    );
}

/// The excess of one token's sockets is refused with a code: 4409 over the socket past
/// the cap, or the upgrade refused 429 past the user's connect burst (the Worker's, so
/// at most `USER_CONNECTS_BURST` upgrades reach the room, plus `USER_CONNECTS_PER_S` for
/// each second the attempts took: the bucket refills while they run).
fn assert_refused_over_the_cap(welcomed: &[Socket], closed: &[u16], took: Duration) {
    assert!(
        closed
            .iter()
            .all(|&c| c == CloseCode::TooManySockets.code() || c == UPGRADE_RATE_LIMITED),
        "the excess is refused with 4409 or 429: {closed:?}"
    );
    let upgraded = welcomed.len()
        + closed
            .iter()
            .filter(|&&c| c != UPGRADE_RATE_LIMITED)
            .count();
    let refilled = (took.as_secs_f64() * USER_CONNECTS_PER_S as f64).ceil() as usize;
    assert!(
        upgraded <= USER_CONNECTS_BURST as usize + refilled,
        "{upgraded} upgrades of one user reached the room in {took:?}"
    );
}

/// Heartbeats the platform answers alone keep a silent viewer alive while others keep the
/// room busy: the room reads them whenever its sockets' liveness is due, whichever event
/// runs its deadlines (a frame as well as the alarm; when only the alarm did, a frame that
/// came first closed such viewers as stale). The silence is shortened to 1.5 s
/// (`OVATION_STALE_SOCKET_MS`), so 8 s hold several sweeps.
#[test]
fn a_viewer_that_only_sends_heartbeats_outlives_sweeps_while_others_chat() {
    let data = ovation_tests::scratch_dir("stale");
    let server = Server::start_with_vars(&data, &[("OVATION_STALE_SOCKET_MS", "1500")]);
    let room = create_room(&server, "weur");
    let (mut quiet, _) = connect(&server, &room, "quiet");
    let mut chatty: Vec<Socket> = (0..4)
        .map(|i| connect(&server, &room, &format!("chatty{i}")).0)
        .collect();
    let started = std::time::Instant::now();
    let mut next_ping = started;
    let mut client_id = 1;
    while started.elapsed() < Duration::from_secs(8) {
        for socket in &mut chatty {
            socket
                .send(&ovation_proto::ClientFrame::Like {
                    client_id,
                    count: 1,
                })
                .expect("a like frame");
        }
        client_id += 1;
        if std::time::Instant::now() >= next_ping {
            let answer = quiet.ping_text();
            assert!(
                matches!(answer.as_deref(), Ok("pong")),
                "the quiet viewer after {:?}: {answer:?}",
                started.elapsed()
            );
            next_ping += Duration::from_millis(300);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The router passes an upgrade's Hello to the object in a header of its own
/// (`contract::HELLO_HEADER`). A client that sends that header itself is not believed: its
/// socket waits for a Hello frame like any other. Were the header believed, the room would
/// answer Welcome at once and the client's Hello frame would be a second Hello (closed as
/// a protocol violation).
#[test]
fn a_hello_header_sent_by_the_client_is_not_believed() {
    let server = shared();
    let room = create_room(server, "weur");
    let version = ovation_proto::PROTOCOL_VERSION.to_string();
    let mut forged = Socket::open_with_headers(
        &server.base,
        &room,
        &token("viewer", "forger", &room),
        &[("x-ovation-hello", &version)],
    )
    .unwrap_or_else(|e| panic!("open: {e:?}"));
    forged
        .send(&ovation_proto::ClientFrame::Hello(ovation_proto::Hello {
            protocol_version: ovation_proto::PROTOCOL_VERSION,
            resume: None,
        }))
        .unwrap();
    let welcome = forged
        .wait_for(WAIT, |e| matches!(e, Event::Welcome(_)))
        .expect("a Welcome to the Hello frame, the socket's first");
    assert!(matches!(welcome, Event::Welcome(w) if w.user == "forger"));
    forged.send(&comment(1, "still open")).unwrap();
    assert!(matches!(
        wait_ack(&mut forged, 1),
        Event::Ack { seq: Some(_), .. }
    ));
}

/// A first join may say its Hello in the upgrade (`?hello=1`, what the SDK does): the
/// Welcome comes with no frame sent, and the socket works; a Hello frame after it is a
/// second Hello; a version the server does not speak is refused as a Hello frame's is.
#[test]
fn a_hello_said_in_the_upgrade_is_answered_with_welcome_and_counts_as_the_first_frame() {
    let server = shared();
    let room = create_room(server, "weur");
    let open = |user: &str, query: &str| {
        Socket::open_with_query(&server.base, &room, &token("viewer", user, &room), query)
            .unwrap_or_else(|e| panic!("open {user}: {e:?}"))
    };
    let mut fresh = open("fresh", ovation_proto::UPGRADE_HELLO_QUERY);
    let welcome = fresh
        .wait_for(WAIT, |e| matches!(e, Event::Welcome(_)))
        .expect("a Welcome with no frame sent");
    assert!(matches!(welcome, Event::Welcome(w) if w.user == "fresh" && !w.resumed));
    fresh.send(&comment(1, "first")).unwrap();
    assert!(matches!(
        wait_ack(&mut fresh, 1),
        Event::Ack { seq: Some(_), .. }
    ));
    // An old client on the same room (Hello frame) sees the fresh one's comment.
    let (mut old, _) = connect(server, &room, "old");
    fresh.send(&comment(2, "second")).unwrap();
    old.wait_for(WAIT, |e| comment_text(e).as_deref() == Some("second"))
        .expect("the comment reaches a viewer that sent its Hello frame");
    // A Hello frame after the upgrade's is a second Hello.
    let mut twice = open("twice", ovation_proto::UPGRADE_HELLO_QUERY);
    twice
        .wait_for(WAIT, |e| matches!(e, Event::Welcome(_)))
        .unwrap();
    twice
        .send(&ovation_proto::ClientFrame::Hello(ovation_proto::Hello {
            protocol_version: ovation_proto::PROTOCOL_VERSION,
            resume: None,
        }))
        .unwrap();
    assert_eq!(
        expect_close(&mut twice),
        CloseCode::ProtocolViolation.code()
    );
    // Another protocol version, or none that parses: refused as a Hello frame would be.
    for query in ["hello=99", "hello=x"] {
        let mut other = open("other", query);
        assert_eq!(
            expect_close(&mut other),
            CloseCode::UnsupportedProtocol.code(),
            "{query}"
        );
    }
}

/// A socket that sends on past its frame rate without reading the refusals is closed
/// `4005` `too_many_frames` by workerd's room (transient: a client reconnects with
/// backoff), and another viewer's comment is still acknowledged.
#[test]
fn a_socket_sending_on_past_its_frame_rate_is_closed_4005() {
    let frames = (0..FRAMES_BURST + 3 * FRAMES_REFUSED_BURST).map(|i| ClientFrame::Ping {
        client_time_ms: u64::from(i),
    });
    flooder_is_closed_4005_and_ana_is_answered(frames.collect());
}

/// The same with one frame repeated (a like whose client id was answered): each repeat
/// used to be answered before the frame rate, so the socket was never closed.
#[test]
fn a_socket_repeating_one_frame_without_end_is_closed_4005() {
    let like = ClientFrame::Like {
        client_id: 1,
        count: 1,
    };
    let repeats = FRAMES_REPEATED_BURST + FRAMES_BURST + 3 * FRAMES_REFUSED_BURST;
    flooder_is_closed_4005_and_ana_is_answered(vec![like; 1 + repeats as usize]);
}

/// A flooder sends `frames` at once: it is closed `4005` (told why), and another viewer
/// of the room is still answered.
fn flooder_is_closed_4005_and_ana_is_answered(frames: Vec<ClientFrame>) {
    let server = shared();
    let room = create_room(server, "weur");
    let (mut flooder, _) = connect(server, &room, "frame-flooder");
    let (mut ana, _) = connect(server, &room, "ana");
    for frame in &frames {
        if flooder.send(frame).is_err() {
            break; // closed already
        }
    }
    let end = loop {
        match flooder.next_event(WAIT) {
            Ok(Some(_)) => {}
            Ok(None) => panic!("the flooder was never closed"),
            Err(end) => break end,
        }
    };
    match end {
        SocketEnd::Closed(code, reason) => {
            assert_eq!(code, CloseCode::TooManyFrames.code(), "{reason}");
            assert!(CloseCode::TooManyFrames.should_reconnect());
        }
        other => panic!("ended {other:?}"),
    }
    ana.send(&comment(1, "still here")).unwrap();
    wait_ack(&mut ana, 1);
}
