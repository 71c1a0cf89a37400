use super::*;
use alloc::format;
use alloc::vec;
use ovation_proto::{Action, Role};

const ROOM: &str = "weur-t";

fn client(mode: TransportMode, now_ms: u64) -> Client {
    Client::new(
        Config {
            room: ROOM.into(),
            transport: mode,
            seed: 7,
        },
        now_ms,
    )
}

fn transmits(c: &mut Client) -> Vec<Transmit> {
    core::iter::from_fn(|| c.poll_transmit()).collect()
}

fn events(c: &mut Client) -> Vec<ClientEvent> {
    core::iter::from_fn(|| c.poll_event()).collect()
}

fn opened_socket(t: &[Transmit]) -> u64 {
    t.iter()
        .find_map(|t| match t {
            Transmit::OpenSocket { socket, path } => {
                assert_eq!(path, "/v1/rooms/weur-t/ws");
                Some(*socket)
            }
            _ => None,
        })
        .expect("an OpenSocket")
}

fn sent_frames(t: &[Transmit]) -> Vec<ClientFrame> {
    t.iter()
        .filter_map(|t| match t {
            Transmit::Send { frame, .. } => Some(ClientFrame::decode(frame).unwrap()),
            _ => None,
        })
        .collect()
}

fn batch(events: Vec<Event>, server_time_ms: u64) -> Vec<u8> {
    ServerFrame::Batch {
        server_time_ms,
        events,
    }
    .encode()
}

fn welcome(epoch: u64, cursor: u64, resumed: bool) -> Event {
    Event::Welcome(Welcome {
        protocol_version: PROTOCOL_VERSION,
        connection_id: 1,
        user: "ana".into(),
        role: Role::Viewer,
        epoch,
        total_version: 1,
        action_cursor: cursor,
        resumed,
        tick_ms: 50,
    })
}

fn comment_action(seq: u64, text: &str) -> Event {
    Event::Action(Action {
        seq,
        ts_ms: 0,
        user: "bob".into(),
        name: "Bob".into(),
        body: ActionBody::Comment { text: text.into() },
    })
}

/// A client with an open socket in epoch 5 at cursor 10.
fn open_client(now_ms: u64) -> (Client, u64) {
    let mut c = client(TransportMode::Ws, now_ms);
    let socket = opened_socket(&transmits(&mut c));
    c.handle_socket_open(socket, now_ms);
    c.handle_socket_message(socket, &batch(vec![welcome(5, 10, false)], now_ms), now_ms);
    transmits(&mut c);
    events(&mut c);
    (c, socket)
}

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

#[test]
fn actions_are_acknowledged_retried_under_the_same_id_and_end_exactly_once() {
    let (mut c, socket) = open_client(0);
    let id = c.comment("hello", 0).unwrap();
    let first = sent_frames(&transmits(&mut c));
    assert_eq!(first.len(), 1);
    // The socket dies before the Ack; on the next socket the same frame goes again.
    c.handle_socket_closed(socket, 1006, "", 10);
    let at = c.poll_timeout().unwrap();
    c.handle_timeout(at);
    let socket = opened_socket(&transmits(&mut c));
    c.handle_socket_open(socket, at);
    c.handle_socket_message(socket, &batch(vec![welcome(5, 10, true)], at), at);
    let again = sent_frames(&transmits(&mut c));
    assert!(again.contains(&first[0]), "retried with the same client id");
    let ack = Event::Ack {
        client_id: id,
        seq: Some(11),
    };
    c.handle_socket_message(socket, &batch(vec![ack.clone(), ack], at), at);
    let done: Vec<ClientEvent> = events(&mut c)
        .into_iter()
        .filter(|e| matches!(e, ClientEvent::Done { .. }))
        .collect();
    assert_eq!(
        done,
        vec![ClientEvent::Done {
            id,
            seq: Some(11),
            error: None
        }]
    );
    assert_eq!(c.actions_pending(), 0);
    // An action without an answer times out, once.
    let id = c.comment("lost", at).unwrap();
    c.handle_timeout(at + CLIENT_ACTION_TIMEOUT_MS);
    let ends: Vec<ClientEvent> = events(&mut c);
    assert!(matches!(
        &ends[..],
        [ClientEvent::Done { id: i, error: Some(e), .. }] if *i == id && e.code == "timeout"
    ));
}

#[test]
fn bad_input_is_refused_with_stable_codes() {
    let (mut c, _) = open_client(0);
    let long = "x".repeat(COMMENT_BYTES_MAX + 1);
    assert_eq!(c.comment(&long, 0).unwrap_err().code, "too_long");
    assert_eq!(c.comment("  ", 0).unwrap_err().code, "invalid");
    assert_eq!(c.direct("", "{}", 0).unwrap_err().code, "invalid");
    assert_eq!(c.gift("g1", "rose", 0, 0).unwrap_err().code, "invalid");
    for i in 0..CLIENT_ACTIONS_PENDING_MAX {
        c.comment(&format!("c{i}"), 0).unwrap();
    }
    assert_eq!(c.comment("one more", 0).unwrap_err().code, "too_many");
    c.close();
    assert_eq!(c.comment("after", 0).unwrap_err().code, "closed");
    let closed: usize = events(&mut c)
        .iter()
        .filter(|e| matches!(e, ClientEvent::Done { error: Some(e), .. } if e.code == "closed"))
        .count();
    assert_eq!(closed, CLIENT_ACTIONS_PENDING_MAX);
    assert_eq!(c.status(), Status::Closed);
    assert_eq!(c.poll_timeout(), None);
}

#[test]
fn likes_are_coalesced_into_one_frame_per_period_within_the_room_rate() {
    let (mut c, _) = open_client(0);
    let likes = |c: &mut Client| -> Vec<u32> {
        sent_frames(&transmits(c))
            .into_iter()
            .filter_map(|f| match f {
                ClientFrame::Like { count, .. } => Some(count),
                _ => None,
            })
            .collect()
    };
    // The first tap goes at once; taps within the next period ride together.
    c.like(1, 0);
    c.handle_timeout(0);
    assert_eq!(likes(&mut c), vec![1]);
    for t in 1..10 {
        c.like(1, t * 10);
        c.handle_timeout(t * 10);
    }
    assert_eq!(likes(&mut c), Vec::<u32>::new());
    c.handle_timeout(CLIENT_LIKE_FLUSH_MS);
    assert_eq!(likes(&mut c), vec![9]);
    // A flood: never more than the room's bucket allows.
    let mut now = 1_000;
    let mut sent = 0;
    c.like(5_000, now);
    while now < 3_000 {
        c.handle_timeout(now);
        for f in sent_frames(&transmits(&mut c)) {
            if let ClientFrame::Like { count, .. } = f {
                sent += count;
            }
        }
        now += 50;
    }
    let allowed = LIKES_BURST + 2 * LIKES_RATE_PER_S;
    assert!(
        sent <= allowed,
        "{sent} likes sent, the room allows {allowed}"
    );
    assert!(sent >= allowed - LIKES_RATE_PER_S);
}

#[test]
fn a_room_end_closes_for_good_and_fails_what_was_waiting() {
    let (mut c, socket) = open_client(0);
    let id = c.comment("late", 0).unwrap();
    c.handle_socket_message(socket, &batch(vec![Event::RoomEnded], 0), 0);
    c.handle_socket_closed(socket, CloseCode::RoomEnded.code(), "", 0);
    let got = events(&mut c);
    assert!(got.contains(&ClientEvent::Ended));
    assert!(got.iter().any(
        |e| matches!(e, ClientEvent::Done { id: i, error: Some(e), .. } if *i == id && e.code == "room_ended")
    ));
    assert_eq!(c.status(), Status::Closed);
    assert_eq!(c.poll_timeout(), None);
}

#[test]
fn a_ban_closes_for_good_with_an_error_and_no_reconnect() {
    let (mut c, socket) = open_client(0);
    c.handle_socket_closed(socket, CloseCode::Banned.code(), "banned", 0);
    let got = events(&mut c);
    assert!(got
        .iter()
        .any(|e| matches!(e, ClientEvent::Error { code, .. } if code == "banned")));
    assert_eq!(c.status(), Status::Closed);
    assert_eq!(c.poll_timeout(), None, "no reconnect is scheduled");
    assert!(transmits(&mut c).is_empty());
}

#[test]
fn removed_comments_are_told_as_their_own_event() {
    let (mut c, socket) = open_client(0);
    let removal = Event::Action(Action {
        seq: 11,
        ts_ms: 1,
        user: "mo".into(),
        name: "MO".into(),
        body: ActionBody::Removed { seq: 4 },
    });
    c.handle_socket_message(socket, &batch(vec![removal], 0), 0);
    let mut json = String::new();
    c.drain_events_json(&mut json);
    assert!(
        json.contains(r#""type":"removed","seq":11,"ts_ms":1,"removed":4,"user":"mo""#),
        "{json}"
    );
}

#[test]
fn clock_samples_come_from_pongs_in_batches() {
    let (mut c, socket) = open_client(1_000);
    // Welcome asked for a ping at once.
    c.handle_timeout(1_000);
    let ping = sent_frames(&transmits(&mut c));
    let Some(ClientFrame::Ping { client_time_ms }) = ping.last().cloned() else {
        panic!("no ping: {ping:?}");
    };
    // Server clock = client + 5000; 20 ms each way; held 30 ms for the tick.
    let pong = Event::Pong {
        client_time_ms,
        server_time_ms: client_time_ms + 5_020,
    };
    c.handle_socket_message(socket, &batch(vec![pong], client_time_ms + 5_050), 1_070);
    assert_eq!(c.clock().offset_ms(), Some(5_000));
    assert_eq!(c.server_now(2_000), 7_000);
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
            "/v1/rooms/weur-t/parts/poll?v=7",
            "/v1/rooms/weur-t/parts/room?v=1"
        ]
    );
    c.handle_fetch(parts[0].0, FetchReply::Part("[1]".into()), 6);
    c.handle_fetch(parts[1].0, FetchReply::Part("{}".into()), 6);
    let t = transmits(&mut c);
    let Some(Transmit::Fetch { request, path, .. }) = t.first().cloned() else {
        panic!("{t:?}");
    };
    assert_eq!(path, "/v1/rooms/weur-t/events?since=40");
    assert_eq!(c.status(), Status::Open);
    let reply = PullEvents {
        events: vec![PullAction {
            seq: 41,
            ts_ms: 1,
            user: "bob".into(),
            name: "Bob".into(),
            kind: "comment".into(),
            text: "hi".into(),
            sku: String::new(),
            qty: 0,
            amount: 0,
            removed: 0,
        }],
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
        "unsupported_transport"
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
            code: "token_expired".into(),
            message: "expired".into(),
        },
        1_010,
    );
    assert_eq!(c.status(), Status::Closed);
}

fn like_frames(t: &[Transmit]) -> Vec<(u64, u32)> {
    sent_frames(t)
        .into_iter()
        .filter_map(|f| match f {
            ClientFrame::Like { client_id, count } => Some((client_id, count)),
            _ => None,
        })
        .collect()
}

fn likes_dropped(got: &[ClientEvent]) -> Vec<(u32, String)> {
    got.iter()
        .filter_map(|e| match e {
            ClientEvent::LikesDropped { count, code, .. } => Some((*count, code.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn a_like_frame_refused_for_the_rate_is_sent_again_not_dropped() {
    let (mut c, socket) = open_client(0);
    assert_eq!(c.like(5, 0), 5);
    c.handle_timeout(0);
    let frames = like_frames(&transmits(&mut c));
    assert_eq!(frames.len(), 1);
    let (client_id, count) = frames[0];
    assert_eq!(count, 5);
    // Jitter brought the frame to the room early: refused, the room counted none of it.
    let refusal = Event::Error {
        client_id: Some(client_id),
        code: ErrorCode::RateLimited,
        message: "at most 20 likes per second".into(),
        retry_after_ms: 120,
    };
    c.handle_socket_message(socket, &batch(vec![refusal], 10), 10);
    assert_eq!(likes_dropped(&events(&mut c)), vec![]);
    // Not before the room's bucket has them again; then all five, in a new frame.
    let mut resent = Vec::new();
    let mut now = 10;
    while now < 3_000 {
        if c.poll_timeout().is_some_and(|t| t <= now) {
            c.handle_timeout(now);
        }
        for (id, count) in like_frames(&transmits(&mut c)) {
            assert!(
                now >= 10 + 120,
                "resent at {now} ms, before the room's wait"
            );
            resent.push((id, count));
        }
        now += 5;
    }
    assert_eq!(resent.iter().map(|(_, n)| n).sum::<u32>(), 5, "{resent:?}");
    assert!(resent.iter().all(|(id, _)| *id != client_id), "a new frame");
    assert_eq!(likes_dropped(&events(&mut c)), vec![]);
}

#[test]
fn likes_spaced_under_the_room_rate_leave_room_for_jitter() {
    // A flood: 10 s of frames, each counted against the room's own bucket on arrival,
    // with the link's delay alternating 40 ms and 0 ms: every other frame arrives 40 ms
    // closer to the one before than it left. None is refused.
    let (mut c, _) = open_client(0);
    let mut room = TokenBucket::new_full(LIKES_RATE_PER_S, LIKES_BURST, 0);
    c.like(CLIENT_LIKES_PENDING_MAX, 0);
    let mut now = 0;
    let mut sent = 0;
    let mut delay_ms = 0;
    while now < 10_000 {
        if c.poll_timeout().is_some_and(|t| t <= now) {
            c.handle_timeout(now);
        }
        for (_, count) in like_frames(&transmits(&mut c)) {
            delay_ms = 40 - delay_ms;
            assert_eq!(
                room.take(count, now + delay_ms),
                Ok(()),
                "refused at {now} ms after {sent}"
            );
            sent += count;
        }
        now += 1;
    }
    assert!(
        sent >= LIKES_BURST + 9 * CLIENT_LIKES_RATE_PER_S,
        "only {sent} sent in 10 s"
    );
}

#[test]
fn likes_that_cannot_be_sent_are_reported_with_a_code() {
    // Over the queue.
    let (mut c, socket) = open_client(0);
    assert_eq!(
        c.like(CLIENT_LIKES_PENDING_MAX + 7, 0),
        CLIENT_LIKES_PENDING_MAX
    );
    assert_eq!(likes_dropped(&events(&mut c)), vec![(7, "too_many".into())]);
    assert_eq!(c.like(1, 0), 0);
    assert_eq!(likes_dropped(&events(&mut c)), vec![(1, "too_many".into())]);
    // A refusal other than the rate.
    c.handle_timeout(0);
    let (client_id, count) = like_frames(&transmits(&mut c))[0];
    let refusal = Event::Error {
        client_id: Some(client_id),
        code: ErrorCode::Muted,
        message: "muted".into(),
        retry_after_ms: 0,
    };
    c.handle_socket_message(socket, &batch(vec![refusal], 0), 0);
    assert_eq!(
        likes_dropped(&events(&mut c)),
        vec![(count, "muted".into())]
    );
    // Closed: the queue (never sent) and the frame in flight (sent, unanswered: it may
    // have counted) are told apart; later likes are reported too.
    c.handle_timeout(CLIENT_LIKE_FLUSH_MS);
    let in_flight: u32 = like_frames(&transmits(&mut c)).iter().map(|f| f.1).sum();
    assert!(in_flight > 0);
    c.close();
    assert_eq!(
        likes_dropped(&events(&mut c)),
        vec![
            (
                CLIENT_LIKES_PENDING_MAX - count - in_flight,
                "closed".into()
            ),
            (in_flight, "unconfirmed".into())
        ]
    );
    assert_eq!(c.like(3, 1_000), 0);
    assert_eq!(likes_dropped(&events(&mut c)), vec![(3, "closed".into())]);
    // The pull transport only receives.
    let mut p = client(TransportMode::Pull, 0);
    events(&mut p);
    assert_eq!(p.like(2, 0), 0);
    assert_eq!(
        likes_dropped(&events(&mut p)),
        vec![(2, "unsupported_transport".into())]
    );
}

#[test]
fn a_like_frame_without_an_answer_is_reported_as_a_timeout() {
    let (mut c, _) = open_client(0);
    c.like(4, 0);
    c.handle_timeout(0);
    assert_eq!(like_frames(&transmits(&mut c)).len(), 1);
    c.handle_timeout(CLIENT_ACTION_TIMEOUT_MS);
    assert_eq!(likes_dropped(&events(&mut c)), vec![(4, "timeout".into())]);
}

fn state_reply(status: &str) -> FetchReply {
    FetchReply::State(PullState {
        room: "r".into(),
        epoch: 5,
        version: 1,
        parts: BTreeMap::new(),
        action_cursor: 0,
        likes: 0,
        online: 0,
        status: status.into(),
    })
}

fn admission_check(t: &[Transmit]) -> u64 {
    t.iter()
        .find_map(|t| match t {
            Transmit::Fetch {
                request,
                path,
                kind: FetchKind::State,
            } => {
                assert_eq!(path, "/v1/rooms/weur-t/state");
                Some(*request)
            }
            _ => None,
        })
        .expect("a state request after the failed upgrade")
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
            c.handle_socket_closed(socket, 1006, "", 20);
            let request = admission_check(&transmits(&mut c));
            let reply = FetchReply::Failed {
                status,
                code: code.into(),
                message: "refused".into(),
            };
            c.handle_fetch(request, reply, 40);
            let got = events(&mut c);
            assert!(
                got.iter()
                    .any(|e| matches!(e, ClientEvent::Error { code: c, .. } if c == code)),
                "{got:?}"
            );
            assert_eq!(c.status(), Status::Closed, "{mode:?} {code}");
            assert_eq!(c.poll_timeout(), None, "no reconnect");
        }
    }
}

#[test]
fn an_upgrade_refused_because_the_room_ended_closes_with_room_ended() {
    let mut c = client(TransportMode::Auto, 0);
    let socket = opened_socket(&transmits(&mut c));
    c.handle_socket_closed(socket, 1006, "", 20);
    let request = admission_check(&transmits(&mut c));
    c.handle_fetch(request, state_reply("ended"), 40);
    let got = events(&mut c);
    assert!(got.contains(&ClientEvent::Ended));
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
    assert!(got
        .iter()
        .any(|e| matches!(e, ClientEvent::Error { code, .. } if code == "too_many_sockets")));
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
                |e| matches!(e, ClientEvent::Error { code, .. } if code == "too_many_sockets")
            ));
            assert_eq!(c.status(), Status::Closed, "after {retry} retries it ends");
        }
    }
}

/// Upgrades refused for a moment (the Worker's per-user connect rate: a bare 1006 to a
/// browser) while the room is live and takes the token: `auto` keeps trying WebSockets,
/// spaced by the connect rate, rather than settling on receive-only pull.
#[test]
fn upgrades_failing_for_a_moment_in_a_live_room_do_not_switch_auto_to_pull() {
    let mut c = client(TransportMode::Auto, 0);
    let mut now = 0;
    for failure in 0..CLIENT_WS_FAILURES_BEFORE_PULL * 3 {
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
}

/// The application's queue holds `CLIENT_EVENTS_QUEUED_MAX` events: an application that
/// stops draining gets every event up to the limit, and past it the newer ones are left
/// out and counted (`events_dropped`), so the core's memory stays bounded.
#[test]
fn events_past_client_events_queued_max_are_dropped_and_counted() {
    let (mut c, socket) = open_client(0);
    let mut seq = 10;
    let mut send = |c: &mut Client, count: usize| {
        let actions = (0..count)
            .map(|_| {
                seq += 1;
                comment_action(seq, "hi")
            })
            .collect();
        c.handle_socket_message(socket, &batch(actions, 0), 0);
    };
    while c.events.len() < CLIENT_EVENTS_QUEUED_MAX {
        let room = CLIENT_EVENTS_QUEUED_MAX - c.events.len();
        send(&mut c, room.min(1_000));
    }
    assert_eq!(c.events.len(), CLIENT_EVENTS_QUEUED_MAX);
    assert_eq!(c.events_dropped(), 0);
    send(&mut c, 1);
    assert_eq!(c.events.len(), CLIENT_EVENTS_QUEUED_MAX);
    assert_eq!(c.events_dropped(), 1);
    // Drained, the queue takes events again.
    events(&mut c);
    send(&mut c, 1);
    assert_eq!(events(&mut c).len(), 1);
}

fn closes(t: &[Transmit]) -> Vec<String> {
    t.iter()
        .filter_map(|t| match t {
            Transmit::CloseSocket { reason, .. } => Some(reason.clone()),
            _ => None,
        })
        .collect()
}

/// A socket that has not said Welcome is given up at `CLIENT_CONNECT_TIMEOUT_MS`, not a
/// millisecond before.
#[test]
fn a_socket_without_welcome_is_given_up_at_client_connect_timeout_ms() {
    let mut c = client(TransportMode::Ws, 0);
    opened_socket(&transmits(&mut c));
    c.handle_timeout(CLIENT_CONNECT_TIMEOUT_MS - 1);
    assert_eq!(closes(&transmits(&mut c)), Vec::<String>::new());
    c.handle_timeout(CLIENT_CONNECT_TIMEOUT_MS);
    assert_eq!(closes(&transmits(&mut c)), ["connect timeout"]);
}

/// An open socket silent for `CLIENT_SILENCE_MS_MAX` is replaced, not a millisecond
/// before.
#[test]
fn an_open_socket_silent_for_client_silence_ms_max_is_replaced() {
    let (mut c, _) = open_client(0);
    c.handle_timeout(CLIENT_SILENCE_MS_MAX - 1);
    assert_eq!(closes(&transmits(&mut c)), Vec::<String>::new());
    assert_eq!(c.status(), Status::Open);
    c.handle_timeout(CLIENT_SILENCE_MS_MAX);
    assert_eq!(closes(&transmits(&mut c)), ["silent too long"]);
    assert_ne!(c.status(), Status::Open);
}

/// When a like frame refused for the rate is sent again: after the room's wait, but
/// never later than `CLIENT_LIKE_RETRY_MS_MAX` (the room's bucket refills within it), so
/// an odd wait one past the limit or far past it does not hold the taps back.
#[test]
fn a_refused_like_frame_waits_at_most_client_like_retry_ms_max() {
    let resent_at = |retry_after_ms: u32| -> u64 {
        let (mut c, socket) = open_client(0);
        c.like(5, 0);
        c.handle_timeout(0);
        let (client_id, _) = like_frames(&transmits(&mut c))[0];
        let refusal = Event::Error {
            client_id: Some(client_id),
            code: ErrorCode::RateLimited,
            message: "slow down".into(),
            retry_after_ms,
        };
        c.handle_socket_message(socket, &batch(vec![refusal], 10), 10);
        let mut now = 10;
        loop {
            now += 1;
            // Heard from the room, so the socket is not given up for silence.
            c.handle_socket_text(socket, now);
            if c.poll_timeout().is_some_and(|t| t <= now) {
                c.handle_timeout(now);
            }
            if !like_frames(&transmits(&mut c)).is_empty() {
                return now;
            }
            assert!(now < 100_000, "never resent");
        }
    };
    let limit = u32::try_from(CLIENT_LIKE_RETRY_MS_MAX).unwrap();
    assert_eq!(resent_at(limit - 100), 10 + CLIENT_LIKE_RETRY_MS_MAX - 100);
    assert_eq!(resent_at(limit), 10 + CLIENT_LIKE_RETRY_MS_MAX);
    assert_eq!(resent_at(limit + 1), 10 + CLIENT_LIKE_RETRY_MS_MAX);
    assert_eq!(resent_at(60_000), 10 + CLIENT_LIKE_RETRY_MS_MAX);
}

fn pings(t: &[Transmit]) -> Vec<u64> {
    sent_frames(t)
        .into_iter()
        .filter_map(|f| match f {
            ClientFrame::Ping { client_time_ms } => Some(client_time_ms),
            _ => None,
        })
        .collect()
}

/// A connection takes `CLIENT_CLOCK_BURST` clock samples one after another, then one per
/// `CLIENT_CLOCK_REFRESH_MS`; a ping without its pong is given up after
/// `CLIENT_PING_TIMEOUT_MS` (the next goes then), each not a millisecond before.
#[test]
fn clock_pings_come_in_a_burst_then_per_refresh_and_a_lost_one_times_out() {
    let (mut c, socket) = open_client(0);
    let mut burst = 0;
    loop {
        c.handle_timeout(0);
        let sent = pings(&transmits(&mut c));
        if sent.is_empty() {
            break;
        }
        assert_eq!(sent.len(), 1, "one ping in flight");
        burst += 1;
        let pong = Event::Pong {
            client_time_ms: sent[0],
            server_time_ms: 5,
        };
        c.handle_socket_message(socket, &batch(vec![pong], 5), 0);
    }
    assert_eq!(burst, CLIENT_CLOCK_BURST);
    c.handle_timeout(CLIENT_CLOCK_REFRESH_MS - 1);
    assert!(pings(&transmits(&mut c)).is_empty());
    c.handle_timeout(CLIENT_CLOCK_REFRESH_MS);
    assert_eq!(pings(&transmits(&mut c)), [CLIENT_CLOCK_REFRESH_MS]);
    // No pong: the ping is given up at CLIENT_PING_TIMEOUT_MS and the next one goes.
    let lost_at = CLIENT_CLOCK_REFRESH_MS + CLIENT_PING_TIMEOUT_MS;
    c.handle_socket_text(socket, lost_at - 1); // the socket itself is alive
    c.handle_timeout(lost_at - 1);
    assert!(pings(&transmits(&mut c)).is_empty());
    c.handle_timeout(lost_at);
    assert_eq!(pings(&transmits(&mut c)), [lost_at]);
}

fn fetches(t: &[Transmit]) -> Vec<u64> {
    t.iter()
        .filter_map(|t| match t {
            Transmit::Fetch { request, .. } => Some(*request),
            _ => None,
        })
        .collect()
}

/// A pull request without an answer for `CLIENT_FETCH_TIMEOUT_MS` counts as failed (and
/// is asked again), not a millisecond before.
#[test]
fn a_pull_request_without_an_answer_fails_at_client_fetch_timeout_ms() {
    let mut c = client(TransportMode::Pull, 0);
    assert_eq!(fetches(&transmits(&mut c)), [1]);
    c.handle_timeout(CLIENT_FETCH_TIMEOUT_MS - 1);
    assert!(fetches(&transmits(&mut c)).is_empty());
    assert_eq!(
        c.poll_timeout(),
        Some(CLIENT_FETCH_TIMEOUT_MS),
        "still waiting"
    );
    c.handle_timeout(CLIENT_FETCH_TIMEOUT_MS);
    let retry_at = c.poll_timeout().expect("asks again");
    assert!(retry_at > CLIENT_FETCH_TIMEOUT_MS, "given up: {retry_at}");
    c.handle_timeout(retry_at);
    assert_eq!(fetches(&transmits(&mut c)), [2]);
}

/// One admission check at a time: a check without an answer for
/// `CLIENT_ADMISSION_CHECK_TIMEOUT_MS` is replaced by the next failed upgrade's, one
/// failing a millisecond before is not.
#[test]
fn an_unanswered_admission_check_is_replaced_after_client_admission_check_timeout_ms() {
    for (failed_at, asks_again) in [
        (CLIENT_ADMISSION_CHECK_TIMEOUT_MS - 1, false),
        (CLIENT_ADMISSION_CHECK_TIMEOUT_MS, true),
    ] {
        let mut c = client(TransportMode::Ws, 0);
        let socket = opened_socket(&transmits(&mut c));
        c.handle_socket_closed(socket, 1006, "", 0);
        admission_check(&transmits(&mut c));
        let reopen_at = c.poll_timeout().unwrap();
        assert!(reopen_at < failed_at);
        c.handle_timeout(reopen_at);
        let again = opened_socket(&transmits(&mut c));
        c.handle_socket_closed(again, 1006, "", failed_at);
        let checks = transmits(&mut c)
            .iter()
            .filter(|t| matches!(t, Transmit::Fetch { .. }))
            .count();
        assert_eq!(checks, usize::from(asks_again), "failed at {failed_at}");
    }
}

/// An action without an answer fails with `timeout` at `CLIENT_ACTION_TIMEOUT_MS`, not a
/// millisecond before.
#[test]
fn an_unanswered_action_times_out_at_client_action_timeout_ms() {
    let (mut c, _) = open_client(0);
    let id = c.comment("lost", 0).unwrap();
    events(&mut c);
    c.handle_timeout(CLIENT_ACTION_TIMEOUT_MS - 1);
    assert!(events(&mut c).is_empty());
    assert_eq!(c.actions_pending(), 1);
    c.handle_timeout(CLIENT_ACTION_TIMEOUT_MS);
    let ends = events(&mut c);
    assert!(
        matches!(&ends[..], [ClientEvent::Done { id: i, error: Some(e), .. }]
            if *i == id && e.code == "timeout"),
        "{ends:?}"
    );
}
