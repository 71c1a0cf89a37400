//! The socket's life: Hello and resume, epochs, backoff, GoAway, the end of the room,
//! refused upgrades and the socket cap (`connection.rs`).

use super::*;

#[test]
fn hello_then_welcome_opens_and_a_reconnect_resumes_from_cursor_and_versions() {
    let (mut c, socket) = open_client(0);
    assert_eq!(c.status(), Status::Open);
    let part = Event::Part {
        name: "poll".into(),
        version: 3,
        value: "{}".into(),
    };
    c.handle_socket_message(socket, &batch(vec![part, comment_action(11, "hi")], 10), 10);
    let got = events(&mut c);
    assert!(got
        .iter()
        .any(|e| matches!(e, ClientEvent::Part { version: 3, .. })));
    assert!(got
        .iter()
        .any(|e| matches!(e, ClientEvent::Comment { seq: 11, .. })));
    c.handle_socket_closed(socket, 1006, "", 20);
    assert_eq!(c.status(), Status::Reconnecting);
    let at = c.poll_timeout().unwrap();
    c.handle_timeout(at);
    let socket = opened_socket(&transmits(&mut c));
    c.handle_socket_open(socket, at);
    let hello = sent_frames(&transmits(&mut c)).remove(0);
    let ClientFrame::Hello(Hello {
        resume: Some(resume),
        ..
    }) = hello
    else {
        panic!("expected Hello with resume, got {hello:?}");
    };
    assert_eq!(resume.epoch, 5);
    assert_eq!(resume.action_cursor, 11);
    assert_eq!(
        resume.part_versions,
        vec![PartVersion {
            name: "poll".into(),
            version: 3
        }]
    );
    // The resumed stream overlaps: seq 11 again is not dispatched twice.
    c.handle_socket_message(
        socket,
        &batch(
            vec![
                welcome(5, 12, true),
                comment_action(11, "hi"),
                comment_action(12, "new"),
            ],
            at,
        ),
        at,
    );
    let seqs: Vec<u64> = events(&mut c)
        .iter()
        .filter_map(|e| match e {
            ClientEvent::Comment { seq, .. } => Some(*seq),
            _ => None,
        })
        .collect();
    assert_eq!(seqs, vec![12]);
}

#[test]
fn a_new_epoch_drops_every_part() {
    let (mut c, socket) = open_client(0);
    let part = Event::Part {
        name: "poll".into(),
        version: 3,
        value: "{}".into(),
    };
    c.handle_socket_message(socket, &batch(vec![part], 0), 0);
    c.handle_socket_closed(socket, 1006, "", 0);
    let at = c.poll_timeout().unwrap();
    c.handle_timeout(at);
    let socket = opened_socket(&transmits(&mut c));
    c.handle_socket_open(socket, at);
    c.handle_socket_message(socket, &batch(vec![welcome(6, 0, false)], at), at);
    assert!(events(&mut c).contains(&ClientEvent::Reset { epoch: 6 }));
    assert!(c.state().parts.is_empty());
    assert_eq!(c.state().epoch, 6);
    assert_eq!(c.cursor(), Some(0));
}

#[test]
fn backoff_grows_with_full_jitter_within_its_cap_then_auto_switches_to_pull() {
    let mut delays = Vec::new();
    for seed in 0..50 {
        let mut c = Client::new(
            Config {
                room: ROOM.into(),
                transport: TransportMode::Ws,
                seed,
            },
            0,
        );
        let mut now = 0;
        for attempt in 0..12u32 {
            let socket = opened_socket(&transmits(&mut c));
            c.handle_socket_closed(socket, 1006, "", now);
            assert_eq!(c.status(), Status::Reconnecting);
            let at = c.poll_timeout().unwrap();
            let cap = (CLIENT_BACKOFF_MS_BASE << attempt).min(CLIENT_BACKOFF_MS_MAX);
            assert!(at - now <= cap, "attempt {attempt}: {} > {cap}", at - now);
            delays.push((attempt, at - now));
            now = at;
            c.handle_timeout(now);
        }
    }
    // Jitter: late attempts spread over their whole range, not bunched at the cap.
    let late: Vec<u64> = delays
        .iter()
        .filter(|(a, _)| *a >= 8)
        .map(|(_, d)| *d)
        .collect();
    assert!(late.iter().any(|d| *d < CLIENT_BACKOFF_MS_MAX / 3));
    assert!(late.iter().any(|d| *d > 2 * CLIENT_BACKOFF_MS_MAX / 3));

    let mut c = client(TransportMode::Auto, 0);
    let mut now = 0;
    for _ in 0..CLIENT_WS_FAILURES_BEFORE_PULL {
        let socket = opened_socket(&transmits(&mut c));
        c.handle_socket_closed(socket, 1006, "", now);
        if let Some(at) = c.poll_timeout() {
            now = at;
            c.handle_timeout(now);
        }
    }
    assert_eq!(c.transport(), Transport::Pull);
    let t = transmits(&mut c);
    assert!(t.iter().any(|t| matches!(
        t,
        Transmit::Fetch { kind: FetchKind::State, path, .. } if path == "/v1/rooms/weur-t/state"
    )));
}

#[test]
fn goaway_is_a_planned_reconnect_without_backoff_growth() {
    let (mut c, socket) = open_client(0);
    c.handle_socket_message(
        socket,
        &batch(
            vec![Event::GoAway {
                reconnect_delay_ms: 400,
            }],
            0,
        ),
        0,
    );
    let t = transmits(&mut c);
    assert!(t.contains(&Transmit::CloseSocket {
        socket,
        code: 1000,
        reason: "going away".into()
    }));
    let at = c.poll_timeout().unwrap();
    assert!(
        (400..=500).contains(&at),
        "reconnects after the delay: {at}"
    );
    c.handle_timeout(at);
    let socket2 = opened_socket(&transmits(&mut c));
    assert_ne!(socket, socket2);
    // Late messages from the old socket are ignored.
    c.handle_socket_message(socket, &batch(vec![comment_action(99, "old")], at), at);
    assert!(events(&mut c)
        .iter()
        .all(|e| !matches!(e, ClientEvent::Comment { .. })));
}

/// The room ends with actions waiting: one sent ends `closed` (it may have been applied:
/// a gift charged while the end waited for its charge), never `room_ended`, which reads
/// as "not applied"; one never sent ends `room_ended`.
#[test]
fn a_room_end_closes_for_good_and_fails_what_was_waiting() {
    let (mut c, socket) = open_client(0);
    let sent = c.comment("late", 0).unwrap();
    c.handle_socket_message(socket, &batch(vec![Event::RoomEnded], 0), 0);
    c.handle_socket_closed(socket, CloseCode::RoomEnded.code(), "", 0);
    let got = events(&mut c);
    assert!(got.contains(&ClientEvent::Ended));
    let ended_with = |id: u64| {
        got.iter().find_map(|e| match e {
            ClientEvent::Done {
                id: i,
                error: Some(e),
                ..
            } if *i == id => Some(e.code.as_str().to_owned()),
            _ => None,
        })
    };
    assert_eq!(ended_with(sent).as_deref(), Some("closed"));
    assert_eq!(c.status(), Status::Closed);
    assert_eq!(c.poll_timeout(), None);
    assert_eq!(
        got.iter().filter(|e| **e == ClientEvent::Ended).count(),
        1,
        "told once"
    );
}

/// A close `4410` without `RoomEnded` before it (a shard closing a woken socket of an
/// ended room) still tells the application the room ended.
#[test]
fn a_room_ended_close_alone_is_told_as_ended() {
    let (mut c, socket) = open_client(0);
    let _ = events(&mut c);
    c.handle_socket_closed(socket, CloseCode::RoomEnded.code(), "", 0);
    let got = events(&mut c);
    assert!(got.contains(&ClientEvent::Ended), "{got:?}");
    assert_eq!(c.status(), Status::Closed);
}

#[test]
fn a_ban_closes_for_good_with_an_error_and_no_reconnect() {
    let (mut c, socket) = open_client(0);
    // An action sent, and likes waiting: the likes, never sent, end with the server's
    // code; the comment was sent and may have been applied first, so it ends `closed`,
    // never a refusal that would read "not applied".
    let id = c.comment("x", 0).unwrap();
    c.like(5, 0);
    let _ = transmits(&mut c);
    c.like(3, 0);
    c.handle_socket_closed(socket, CloseCode::Banned.code(), "banned", 0);
    let got = events(&mut c);
    assert!(got
        .iter()
        .any(|e| matches!(e, ClientEvent::Error { code, .. } if code.as_str() == "banned")));
    assert!(
        got.iter().any(
            |e| matches!(e, ClientEvent::Done { id: i, error: Some(e), .. }
            if *i == id && e.code.as_str() == "closed")
        ),
        "{got:?}"
    );
    assert!(
        got.iter()
            .any(|e| matches!(e, ClientEvent::LikesDropped { code, .. }
            if code.as_str() == "banned")),
        "the waiting likes are told dropped for the ban: {got:?}"
    );
    assert_eq!(c.status(), Status::Closed);
    assert_eq!(c.poll_timeout(), None, "no reconnect is scheduled");
    assert!(transmits(&mut c).is_empty());
}

/// A close saying the server could not read what this SDK sent (4400, 4413, 4402, 4415)
/// ends the session at once with the server's code: reconnecting would send the same
/// frames, be closed again, and tell the actions `timeout` only after their deadline.
#[test]
fn a_frame_the_server_cannot_read_ends_the_session_with_its_code() {
    for refused in [
        CloseCode::BadFrame,
        CloseCode::FrameTooLarge,
        CloseCode::ProtocolViolation,
        CloseCode::TextNotSupported,
    ] {
        // One action sent on a socket that was lost, one made while reconnecting; the
        // next socket is closed for a frame the server could not read.
        let (mut c, socket) = open_client(0);
        let sent = c.comment("x", 0).unwrap();
        c.handle_socket_closed(socket, 1006, "", 10);
        let unsent = c.comment("y", 10).unwrap();
        let _ = transmits(&mut c);
        let at = c.poll_timeout().expect("a reconnect");
        c.handle_timeout(at);
        let socket = opened_socket(&transmits(&mut c));
        let _ = events(&mut c);
        c.handle_socket_closed(socket, refused.code(), refused.reason(), at);
        let got = events(&mut c);
        let code = refused.reason();
        assert!(
            got.iter()
                .any(|e| matches!(e, ClientEvent::Error { code: c, .. } if c.as_str() == code)),
            "{code}: {got:?}"
        );
        // The frame it could not read may be this one, or one after an action it
        // applied: a sent action may have been applied, so it is `closed`; one never
        // sent gets the server's code.
        let ended = |id: u64, want: &str| {
            got.iter().any(|e| {
                matches!(e, ClientEvent::Done { id: i, error: Some(e), .. }
                    if *i == id && e.code.as_str() == want)
            })
        };
        assert!(ended(sent, "closed"), "{code}: {got:?}");
        assert!(ended(unsent, code), "{code}: {got:?}");
        assert_eq!(c.status(), Status::Closed, "{code}");
        assert_eq!(c.poll_timeout(), None, "{code}: no reconnect is scheduled");
        assert!(transmits(&mut c).is_empty(), "{code}");

        // `auto` reads the room over the pull transport instead, which sends no frames.
        let mut c = client(TransportMode::Auto, 0);
        let socket = opened_socket(&transmits(&mut c));
        c.handle_socket_closed(socket, refused.code(), refused.reason(), 10);
        let got = events(&mut c);
        assert!(
            got.iter()
                .any(|e| matches!(e, ClientEvent::Error { code: c, .. } if c.as_str() == code)),
            "{code}: {got:?}"
        );
        assert_eq!(c.transport(), Transport::Pull, "{code}");
        assert!(
            transmits(&mut c)
                .iter()
                .any(|t| matches!(t, Transmit::Fetch { .. })),
            "{code}: reads the state"
        );
    }
}

/// A full room (4429, from the room object or a shard) is told at once to a session that
/// never opened: `ws` ends with `room_full` and no reconnect; `auto` reads the room over
/// the pull transport instead, which needs no socket. Neither waits for `connect`'s
/// timeout. A session that was open waits for its own dead socket's place instead.
#[test]
fn a_full_room_is_told_at_once_and_auto_reads_it_over_pull() {
    for mode in [TransportMode::Ws, TransportMode::Auto] {
        // A session that was open waits for its own dead socket's place, as at the
        // user's cap: it reconnects, and neither ends nor moves to pull.
        let (mut c, socket) = open_client(0);
        c.handle_socket_closed(socket, 1006, "", 10);
        let _ = transmits(&mut c);
        let reconnect_at = c.poll_timeout().expect("a reconnect");
        c.handle_timeout(reconnect_at);
        let socket = opened_socket(&transmits(&mut c));
        c.handle_socket_closed(
            socket,
            CloseCode::RoomFull.code(),
            "room_full",
            reconnect_at,
        );
        assert_eq!(c.status(), Status::Reconnecting, "{mode:?}");
        assert_eq!(c.transport(), Transport::Ws, "{mode:?}");
        assert!(
            c.poll_timeout()
                .is_some_and(|at| at >= reconnect_at + USER_SOCKET_REPLACEABLE_SILENCE_MS),
            "after its silent socket is replaceable"
        );

        let mut c = client(mode, 0);
        let socket = opened_socket(&transmits(&mut c));
        let id = c.comment("x", 0).unwrap();
        c.handle_socket_closed(socket, CloseCode::RoomFull.code(), "room_full", 20);
        let got = events(&mut c);
        assert!(
            got.iter().any(
                |e| matches!(e, ClientEvent::Error { code, .. } if code.as_str() == "room_full")
            ),
            "{mode:?}: {got:?}"
        );
        if mode == TransportMode::Ws {
            assert_eq!(c.status(), Status::Closed);
            assert_eq!(c.poll_timeout(), None, "no reconnect");
            assert!(
                got.iter().any(
                    |e| matches!(e, ClientEvent::Done { id: i, error: Some(e), .. }
                    if *i == id && e.code.as_str() == "room_full")
                ),
                "{got:?}"
            );
        } else {
            assert_eq!(
                c.transport(),
                Transport::Pull,
                "auto switches to pull at once"
            );
            assert!(
                transmits(&mut c)
                    .iter()
                    .any(|t| matches!(t, Transmit::Fetch { .. })),
                "the pull transport asks for the state"
            );
        }
    }
}

#[test]
fn a_refused_upgrade_is_explained_by_one_request_and_ends_the_session_with_its_code() {
    for mode in [TransportMode::Ws, TransportMode::Auto] {
        for (status, code) in [
            (401, "token_expired"),
            (403, "token_wrong_room"),
            (404, "room_not_found"),
        ] {
            let mut c = client(mode, 0);
            let socket = opened_socket(&transmits(&mut c));
            // Queued before the session opened: it ends with the refusal's code.
            let id = c.comment("x", 0).unwrap();
            c.handle_socket_closed(socket, 1006, "", 20);
            let request = admission_check(&transmits(&mut c));
            let reply = FetchReply::Failed {
                status,
                code: FailureCode::from_api(status, Some(code)),
                message: "refused".into(),
            };
            c.handle_fetch(request, reply, 40);
            let got = events(&mut c);
            assert!(
                got.iter()
                    .any(|e| matches!(e, ClientEvent::Error { code: c, .. } if c.as_str() == code)),
                "{got:?}"
            );
            assert!(
                got.iter().any(
                    |e| matches!(e, ClientEvent::Done { id: i, error: Some(e), .. }
                    if *i == id && e.code.as_str() == code)
                ),
                "{mode:?} {code}: {got:?}"
            );
            assert_eq!(c.status(), Status::Closed, "{mode:?} {code}");
            assert_eq!(c.poll_timeout(), None, "no reconnect");
        }
    }
}

/// An answer a retry may change (a server error, a rate limit) keeps the reconnects
/// going, and the application hears the server's code, which `connect()` rejects with
/// when no session opened in time (not `connect_timeout`, which would hide it). A network
/// failure of the check itself says nothing: the socket's failure already is that.
#[test]
fn a_failed_upgrade_explained_by_a_server_error_tells_its_code_and_keeps_trying() {
    for (status, code) in [
        (503, "auth_not_configured"),
        (429, "rate_limited"),
        (500, ""),
    ] {
        let mut c = client(TransportMode::Ws, 0);
        let socket = opened_socket(&transmits(&mut c));
        c.handle_socket_closed(socket, 1006, "", 20);
        let request = admission_check(&transmits(&mut c));
        let reply = FetchReply::Failed {
            status,
            code: FailureCode::from_api(status, Some(code).filter(|c| !c.is_empty())),
            message: "try later".into(),
        };
        let told = FailureCode::from_api(status, Some(code).filter(|c| !c.is_empty()));
        events(&mut c); // connecting, reconnecting
        c.handle_fetch(request, reply, 40);
        let got = events(&mut c);
        assert_eq!(
            got,
            vec![ClientEvent::Error {
                code: told,
                message: "try later".into(),
                retry_after_ms: 0,
            }],
            "{status}"
        );
        assert_eq!(c.status(), Status::Reconnecting, "{status}");
        assert!(c.poll_timeout().is_some(), "the reconnects go on");
    }
    let mut c = client(TransportMode::Ws, 0);
    let socket = opened_socket(&transmits(&mut c));
    c.handle_socket_closed(socket, 1006, "", 20);
    let request = admission_check(&transmits(&mut c));
    let network = FetchReply::Failed {
        status: 0,
        code: FailureCode::Network,
        message: "offline".into(),
    };
    events(&mut c);
    c.handle_fetch(request, network, 40);
    assert_eq!(events(&mut c), vec![]);
}

#[test]
fn an_upgrade_refused_because_the_room_ended_closes_with_room_ended() {
    let mut c = client(TransportMode::Auto, 0);
    let socket = opened_socket(&transmits(&mut c));
    c.handle_socket_closed(socket, 1006, "", 20);
    let never_sent = c.comment("queued", 20).unwrap();
    let request = admission_check(&transmits(&mut c));
    c.handle_fetch(request, state_reply("ended"), 40);
    let got = events(&mut c);
    assert!(got.contains(&ClientEvent::Ended));
    assert!(
        got.iter()
            .any(|e| matches!(e, ClientEvent::Done { id, error: Some(e), .. }
            if *id == never_sent && e.code.as_str() == "room_ended")),
        "{got:?}"
    );
    assert!(got.contains(&ClientEvent::Status {
        status: Status::Closed,
        transport: Transport::Ws,
        reason: Some("room_ended".into()),
    }));
    assert_eq!(c.poll_timeout(), None);
}

#[test]
fn an_upgrade_that_failed_in_a_live_room_keeps_reconnecting_with_one_check_in_flight() {
    let mut c = client(TransportMode::Ws, 0);
    let socket = opened_socket(&transmits(&mut c));
    c.handle_socket_closed(socket, 1006, "", 0);
    let request = admission_check(&transmits(&mut c));
    // A second failure before the answer asks nothing more.
    let at = c.poll_timeout().unwrap();
    c.handle_timeout(at);
    let again = opened_socket(&transmits(&mut c));
    c.handle_socket_closed(again, 1006, "", at);
    assert!(!transmits(&mut c)
        .iter()
        .any(|t| matches!(t, Transmit::Fetch { .. })));
    // The room is live (a network failure, a full room): nothing ends.
    c.handle_fetch(request, state_reply("live"), at + 5);
    assert_eq!(c.status(), Status::Reconnecting);
    // ... and the next try waits for the user's connect rate to refill.
    let next = c.poll_timeout().expect("a retry");
    assert!(
        next >= at + 5 + 1_000 / u64::from(USER_CONNECTS_PER_S),
        "{next}"
    );
}

#[test]
fn a_socket_refused_for_the_users_socket_cap_ends_the_session_with_its_code() {
    let mut c = client(TransportMode::Auto, 0);
    let socket = opened_socket(&transmits(&mut c));
    c.handle_socket_open(socket, 10);
    c.handle_socket_closed(
        socket,
        CloseCode::TooManySockets.code(),
        "too_many_sockets",
        20,
    );
    let got = events(&mut c);
    assert!(got.iter().any(
        |e| matches!(e, ClientEvent::Error { code, .. } if code.as_str() == "too_many_sockets")
    ));
    assert_eq!(c.status(), Status::Closed);
    assert_eq!(c.poll_timeout(), None, "no reconnect");
}

/// A session that was open and, reconnecting after drops without a close, finds its
/// places taken (by its own dead sockets, as far as it can tell) waits for the room to
/// give them back, a bounded number of times, then ends with the code.
#[test]
fn a_reconnect_refused_for_the_socket_cap_waits_for_dead_sockets_to_be_replaceable() {
    let (mut c, socket) = open_client(0);
    c.handle_socket_closed(socket, 1006, "", 1_000);
    for retry in 0..=CLIENT_SOCKET_CAP_RETRIES_MAX {
        // The next socket opens when it is due.
        let now = c.poll_timeout().expect("a reconnect is due");
        c.handle_timeout(now);
        let next = opened_socket(&transmits(&mut c));
        c.handle_socket_open(next, now);
        c.handle_socket_closed(
            next,
            CloseCode::TooManySockets.code(),
            "too_many_sockets",
            now,
        );
        let got = events(&mut c);
        if retry < CLIENT_SOCKET_CAP_RETRIES_MAX {
            assert_eq!(c.status(), Status::Reconnecting, "retry {retry}: {got:?}");
            let at = c.poll_timeout().expect("a retry");
            assert!(
                at >= now + USER_SOCKET_REPLACEABLE_SILENCE_MS,
                "retry {retry} waits for dead sockets to be replaceable: {at} from {now}"
            );
        } else {
            assert!(got.iter().any(
                |e| matches!(e, ClientEvent::Error { code, .. } if code.as_str() == "too_many_sockets")
            ));
            assert_eq!(c.status(), Status::Closed, "after {retry} retries it ends");
        }
    }
}

/// Upgrades refused for a moment (the Worker's per-user connect rate: a bare 1006 to a
/// browser) while the room is live and takes the token: `auto` keeps trying WebSockets,
/// spaced by the connect rate, rather than settling on receive-only pull; but
/// `CLIENT_WS_FAILURES_IN_LIVE_ROOM_BEFORE_PULL` of them in a row, more than the connect
/// rate refuses, are a network that strips upgrades and lets HTTPS through: then it
/// reads over pull. Before, such a network never got pull (each live check forgave the
/// failures) and `connect()` timed out.
#[test]
fn upgrades_failing_for_a_moment_in_a_live_room_do_not_switch_auto_to_pull() {
    let mut c = client(TransportMode::Auto, 0);
    let mut now = 0;
    for failure in 1..CLIENT_WS_FAILURES_IN_LIVE_ROOM_BEFORE_PULL {
        let sent = transmits(&mut c);
        let socket = opened_socket(&sent);
        c.handle_socket_closed(socket, 1006, "", now + 5);
        let check = transmits(&mut c).into_iter().find_map(|t| match t {
            Transmit::Fetch {
                request,
                kind: FetchKind::State,
                ..
            } => Some(request),
            _ => None,
        });
        let request = check.expect("each failed upgrade is explained by one state request");
        c.handle_fetch(request, state_reply("live"), now + 10);
        assert_eq!(
            c.transport(),
            Transport::Ws,
            "failure {failure}: still on WebSockets"
        );
        let at = c.poll_timeout().expect("a retry");
        assert!(
            at >= now + 10 + 1_000 / u64::from(USER_CONNECTS_PER_S),
            "spaced by the connect rate"
        );
        now = at;
        c.handle_timeout(now);
    }
    let socket = opened_socket(&transmits(&mut c));
    c.handle_socket_closed(socket, 1006, "", now + 5);
    assert_eq!(
        c.transport(),
        Transport::Pull,
        "one more: a network without upgrades"
    );
}

/// Sockets that open and get no Welcome within `CLIENT_CONNECT_TIMEOUT_MS` (a slow live
/// room) are a network that carries WebSockets: however many in a row, `auto` keeps to
/// them rather than settle on receive-only pull (only upgrades that fail are counted).
#[test]
fn sockets_that_open_without_a_welcome_in_a_live_room_keep_auto_on_websockets() {
    let mut c = client(TransportMode::Auto, 0);
    let mut now = 0;
    for failure in 0..2 * CLIENT_WS_FAILURES_IN_LIVE_ROOM_BEFORE_PULL {
        let socket = opened_socket(&transmits(&mut c));
        c.handle_socket_open(socket, now + 5);
        now += CLIENT_CONNECT_TIMEOUT_MS + 5;
        c.handle_timeout(now);
        let request = admission_check(&transmits(&mut c));
        c.handle_fetch(request, state_reply("live"), now + 10);
        assert_eq!(c.transport(), Transport::Ws, "failure {failure}");
        now = c.poll_timeout().expect("a retry");
        c.handle_timeout(now);
    }
}

/// A first join says its Hello in the upgrade (Welcome one round trip sooner) and sends
/// no Hello frame; a reconnect that resumes sends its Hello as the first frame.
#[test]
fn a_first_join_says_hello_in_the_upgrade_and_a_resume_sends_it() {
    let mut c = client(TransportMode::Ws, 0);
    let t = transmits(&mut c);
    let path = t
        .iter()
        .find_map(|t| match t {
            Transmit::OpenSocket { path, .. } => Some(path.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(path, ["/v1/rooms/weur-t/ws?", UPGRADE_HELLO_QUERY].concat());
    let socket = opened_socket(&t);
    c.handle_socket_open(socket, 0);
    assert_eq!(sent_frames(&transmits(&mut c)), vec![], "no Hello frame");
    c.handle_socket_message(socket, &batch(vec![welcome(5, 10, false)], 0), 0);
    assert_eq!(c.status(), Status::Open);
    c.handle_socket_closed(socket, 1006, "", 10);
    let at = c.poll_timeout().unwrap();
    c.handle_timeout(at);
    let t = transmits(&mut c);
    assert!(t
        .iter()
        .any(|t| matches!(t, Transmit::OpenSocket { path, .. } if path == "/v1/rooms/weur-t/ws")));
    let socket = opened_socket(&t);
    c.handle_socket_open(socket, at);
    match sent_frames(&transmits(&mut c)).as_slice() {
        [ClientFrame::Hello(hello)] => {
            assert_eq!(
                hello.resume.as_ref().map(|r| (r.epoch, r.action_cursor)),
                Some((5, 10))
            );
        }
        other => panic!("{other:?}"),
    }
}

/// An edge that does not know the upgrade's Hello never answers it: after the connect
/// timeout of a socket that opened, the next try sends a Hello frame, and joins.
#[test]
fn an_unanswered_upgrade_hello_falls_back_to_a_hello_frame() {
    let mut c = client(TransportMode::Ws, 0);
    let socket = opened_socket(&transmits(&mut c));
    c.handle_socket_open(socket, 0);
    assert_eq!(sent_frames(&transmits(&mut c)), vec![]);
    // No Welcome: the connect timer fires (and a failed socket is retried).
    let (next, path, now) = next_socket(&mut c);
    assert_eq!(
        path, "/v1/rooms/weur-t/ws",
        "no query after an unanswered one"
    );
    c.handle_socket_open(next, now);
    assert!(matches!(
        sent_frames(&transmits(&mut c)).as_slice(),
        [ClientFrame::Hello(h)] if h.resume.is_none()
    ));
    c.handle_socket_message(next, &batch(vec![welcome(5, 0, false)], now), now);
    assert_eq!(c.status(), Status::Open);
}

/// A room that closes `4003` (no Hello heard) though the upgrade said one: the next try
/// sends a Hello frame, and joins. Before, every retry said it in the upgrade again, for
/// good, on `ws` and on `auto` alike (the admission check finds the room live and resets
/// the count towards pull).
#[test]
fn a_hello_timeout_after_the_upgrade_hello_falls_back_to_a_hello_frame() {
    for mode in [TransportMode::Ws, TransportMode::Auto] {
        let mut c = client(mode, 0);
        let socket = opened_socket(&transmits(&mut c));
        c.handle_socket_open(socket, 0);
        let timeout = CloseCode::HelloTimeout;
        c.handle_socket_closed(socket, timeout.code(), timeout.reason(), 50);
        let (next, path, now) = next_socket(&mut c);
        assert_eq!(
            path, "/v1/rooms/weur-t/ws",
            "{mode:?}: no query after a 4003"
        );
        c.handle_socket_open(next, now);
        assert!(
            matches!(
                sent_frames(&transmits(&mut c)).as_slice(),
                [ClientFrame::Hello(h)] if h.resume.is_none()
            ),
            "{mode:?}"
        );
        c.handle_socket_message(next, &batch(vec![welcome(5, 0, false)], now), now);
        assert_eq!(c.status(), Status::Open, "{mode:?}");
    }
}

/// A first socket that never opened (the network) says nothing about the edge: the retry
/// still says its Hello in the upgrade.
#[test]
fn a_first_socket_that_never_opened_retries_with_the_upgrade_hello() {
    let mut c = client(TransportMode::Ws, 0);
    let socket = opened_socket(&transmits(&mut c));
    c.handle_socket_closed(socket, 1006, "", 5);
    let (_, path, _) = next_socket(&mut c);
    assert_eq!(path, ["/v1/rooms/weur-t/ws?", UPGRADE_HELLO_QUERY].concat());
}

/// Fires the client's timers until it opens a socket: that socket, its path, and when.
fn next_socket(c: &mut Client) -> (u64, String, u64) {
    loop {
        let now = c.poll_timeout().expect("a timer");
        assert!(now < 120_000, "a retry within the backoff");
        c.handle_timeout(now);
        let t = transmits(c);
        let path = t.iter().find_map(|t| match t {
            Transmit::OpenSocket { path, .. } => Some(path.clone()),
            _ => None,
        });
        if let Some(path) = path {
            return (opened_socket(&t), path, now);
        }
    }
}

/// `auto` with a socket open (Welcome said) that the server closes for a frame it could
/// not read reads the room over the pull transport: the open socket's timers (silence,
/// heartbeat, clock ping) stop with it. Left armed, each came due in the pull phase,
/// which has no arm for it, and stayed due: the host's 0 ms timer looped for the rest of
/// the session. The action already sent ends `closed` (it may have been applied), the one
/// never sent `unsupported_transport`.
#[test]
fn an_open_auto_session_moved_to_pull_keeps_no_socket_timer() {
    let mut c = client(TransportMode::Auto, 0);
    let socket = opened_socket(&transmits(&mut c));
    c.handle_socket_open(socket, 0);
    c.handle_socket_message(socket, &batch(vec![welcome(5, 10, false)], 0), 0);
    let sent = c.gift("g-1", "rose", 1, 0).unwrap();
    let _ = transmits(&mut c);
    let _ = events(&mut c);
    let refused = CloseCode::BadFrame;
    c.handle_socket_closed(socket, refused.code(), refused.reason(), 10);
    assert_eq!(c.transport(), Transport::Pull);
    let got = events(&mut c);
    assert!(
        got.iter()
            .any(|e| matches!(e, ClientEvent::Done { id, error: Some(e), .. }
            if *id == sent && e.code.as_str() == "closed")),
        "{got:?}"
    );
    // Two minutes of the pull transport's own timers, every read answered: time moves
    // on at each timer (a socket timer due in the pull phase fails a debug assertion,
    // and stayed due in a release build).
    let mut now = 10;
    for _ in 0..200 {
        for request in fetches(&transmits(&mut c)) {
            c.handle_fetch(request, state_reply("live"), now);
        }
        let Some(at) = c.poll_timeout() else { break };
        assert!(at >= now);
        now = at.max(now + 1);
        if now > 120_000 {
            break;
        }
        c.handle_timeout(now);
    }
    assert!(now > 120_000, "the session's timers stopped at {now}");
    assert_eq!(c.transport(), Transport::Pull);
}

/// A session that had a socket open is on a network that carries WebSockets: lost for a
/// moment (more failed reconnects than `CLIENT_WS_FAILURES_BEFORE_PULL`, each with a
/// failed admission check), `auto` keeps reconnecting sockets rather than move to the
/// pull transport, which only receives (its actions rejected `unsupported_transport`
/// for the rest of the session).
#[test]
fn an_auto_session_that_was_open_keeps_to_websockets_through_a_blip() {
    let mut c = client(TransportMode::Auto, 0);
    let socket = opened_socket(&transmits(&mut c));
    c.handle_socket_open(socket, 0);
    c.handle_socket_message(socket, &batch(vec![welcome(5, 10, false)], 0), 0);
    let _ = transmits(&mut c);
    c.handle_socket_closed(socket, 1006, "", 10);
    let mut now = 10;
    // The next socket the session opens (its timers run, every read fails offline).
    let next_socket = |c: &mut Client, now: &mut u64| loop {
        assert!(*now < 600_000, "no socket in ten minutes");
        let t = transmits(c);
        for request in fetches(&t) {
            let offline = FetchReply::Failed {
                status: 0,
                code: FailureCode::Timeout,
                message: "offline".into(),
            };
            c.handle_fetch(request, offline, *now);
        }
        if let Some(socket) = t.iter().find_map(|t| match t {
            Transmit::OpenSocket { socket, .. } => Some(*socket),
            _ => None,
        }) {
            return socket;
        }
        let at = c.poll_timeout().expect("a timer while reconnecting");
        *now = at.max(*now);
        c.handle_timeout(*now);
    };
    for _ in 0..CLIENT_WS_FAILURES_BEFORE_PULL + 3 {
        let socket = next_socket(&mut c, &mut now);
        c.handle_socket_closed(socket, 1006, "", now);
    }
    assert_eq!(c.transport(), Transport::Ws);
    // The network is back: the next socket opens, and an action goes over it.
    let socket = next_socket(&mut c, &mut now);
    c.handle_socket_open(socket, now);
    c.handle_socket_message(socket, &batch(vec![welcome(5, 10, true)], now), now);
    let _ = transmits(&mut c);
    c.comment("back", now).unwrap();
    let frames = sent_frames(&transmits(&mut c));
    assert!(
        frames
            .iter()
            .any(|f| matches!(f, ClientFrame::Comment { text, .. } if text == "back")),
        "{frames:?}"
    );
    assert!(!events(&mut c).iter().any(|e| matches!(e,
        ClientEvent::Done { error: Some(e), .. } if e.code.as_str() == "unsupported_transport")));
}

/// Two sessions of one user that drew the same 21-bit prefix (a page and its reload:
/// one in 2^21) no longer number their actions alike from 1: the room, which remembers
/// each user's last client ids, answered the second's first actions as repeats of the
/// first's and never applied them.
#[test]
fn sessions_start_their_client_ids_apart() {
    let first_id = |seed: u64| {
        let config = Config {
            room: ROOM.into(),
            transport: TransportMode::Ws,
            seed,
        };
        let mut c = Client::new(config, 0);
        c.comment("hi", 0).unwrap()
    };
    let counters: alloc::collections::BTreeSet<u64> =
        (1..=32).map(|seed| first_id(seed) & 0xffff_ffff).collect();
    assert!(counters.len() > 30, "{counters:?}");
    assert!(counters.iter().all(|&n| n != 0));
}

/// A socket closed `4005` (the application sends faster than the room takes) reconnects
/// after 1 s, then 2 s, 4 s, then 8 s, though each new socket said Welcome: the same pace would be closed again, every few seconds, for good.
/// Never as long as an action's timeout.
#[test]
fn each_close_for_the_frame_rate_waits_twice_as_long() {
    let (mut c, mut socket) = open_client(0);
    let mut now = 0;
    let mut delays = Vec::new();
    for _ in 0..8 {
        let code = CloseCode::TooManyFrames.code();
        c.handle_socket_closed(socket, code, "too_many_frames", now);
        let at = c.poll_timeout().expect("a reconnect");
        delays.push(at - now);
        now = at;
        c.handle_timeout(now);
        socket = opened_socket(&transmits(&mut c));
        c.handle_socket_open(socket, now);
        c.handle_socket_message(socket, &batch(vec![welcome(5, 10, true)], now), now);
        transmits(&mut c);
        events(&mut c);
    }
    assert_eq!(
        delays,
        [1_000, 2_000, 4_000, 8_000, 8_000, 8_000, 8_000, 8_000]
    );
    assert_eq!(CLIENT_FRAME_RATE_CLOSE_WAIT_MS_MAX, 8_000);
}
