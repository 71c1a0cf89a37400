//! Real WebSockets and HTTP against the real worker under `wrangler dev`.

use ovation_auth::{dev, SigningKey};
use ovation_cli::{Api, Socket, SocketEnd};
use ovation_proto::limits::{
    ADMIN_BODY_BYTES_MAX, CLIENT_FRAME_BYTES_MAX, EXPECTED_AUDIENCE_MAX, HELLO_DEADLINE_MS,
    TOKEN_IAT_LEEWAY_MS, USER_CONNECTS_BURST, USER_CONNECTS_PER_S, USER_SOCKETS_PER_ROOM_MAX,
};
use ovation_proto::{
    ActionBody, ClientFrame, CloseCode, ErrorCode, Event, PartVersion, Resume, Welcome,
};
use ovation_tests::{create_room, shared, token, token_with, Server};
use serde_json::json;
use std::collections::BTreeMap;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(10);

fn connect(server: &Server, room: &str, user: &str) -> (Socket, Welcome) {
    connect_as(server, room, user, "viewer")
}

fn connect_as(server: &Server, room: &str, user: &str, role: &str) -> (Socket, Welcome) {
    let mut socket = Socket::connect(&server.base, room, &token(role, user, room), None)
        .unwrap_or_else(|e| panic!("connect {user}: {e:?}"));
    let welcome = match socket.wait_for(WAIT, |e| matches!(e, Event::Welcome(_))) {
        Ok(Event::Welcome(w)) => w,
        other => panic!("no welcome: {other:?}"),
    };
    (socket, welcome)
}

fn comment(client_id: u64, text: &str) -> ClientFrame {
    ClientFrame::Comment {
        client_id,
        text: text.into(),
    }
}

fn comment_text(event: &Event) -> Option<String> {
    match event {
        Event::Action(a) => match &a.body {
            ActionBody::Comment { text } => Some(text.clone()),
            _ => None,
        },
        _ => None,
    }
}

fn wait_ack(socket: &mut Socket, client_id: u64) -> Event {
    socket
        .wait_for(WAIT, |e| match e {
            Event::Ack { client_id: c, .. } => *c == client_id,
            Event::Error { client_id: c, .. } => *c == Some(client_id),
            _ => false,
        })
        .expect("answer to a frame")
}

#[test]
fn joiner_gets_a_snapshot_of_the_room() {
    let server = shared();
    let room = create_room(server, "weur");
    let mut socket = Socket::connect(&server.base, &room, &token("viewer", "ana", &room), None)
        .expect("connect");
    // Everything up to the online count that includes ana (however long a loaded machine
    // takes to send it; the order is what is checked).
    let mut events = Vec::new();
    socket
        .wait_for(WAIT, |e| {
            events.push(e.clone());
            *e == Event::Online { count: 1 }
        })
        .expect("the welcome, the room's state and the online count");
    let Event::Welcome(welcome) = &events[0] else {
        panic!("first event must be Welcome: {events:?}")
    };
    assert_eq!(welcome.user, "ana");
    assert!(!welcome.resumed);
    assert!(events
        .iter()
        .any(|e| matches!(e, Event::Part { name, value, .. }
        if name == "room" && value.contains(&room))));
    assert!(events.contains(&Event::Version {
        epoch: welcome.epoch,
        total_version: welcome.total_version
    }));
    assert!(events.contains(&Event::Online { count: 1 }));
}

#[test]
fn a_comment_reaches_200_others_exactly_once_in_order() {
    let server = shared();
    let room = create_room(server, "enam");
    let mut receivers: Vec<Socket> = (0..200)
        .map(|i| connect(server, &room, &format!("viewer-{i}")).0)
        .collect();
    let (mut sender, _) = connect(server, &room, "speaker");
    let texts = ["first", "second", "third"];
    for (i, text) in texts.iter().enumerate() {
        sender.send(&comment(i as u64 + 1, text)).unwrap();
    }
    for client_id in 1..=3 {
        assert!(matches!(
            wait_ack(&mut sender, client_id),
            Event::Ack { seq: Some(_), .. }
        ));
    }
    for (i, socket) in receivers.iter_mut().enumerate() {
        let mut got = Vec::new();
        while got.len() < texts.len() {
            let event = socket
                .wait_for(WAIT, |e| comment_text(e).is_some())
                .unwrap_or_else(|e| panic!("receiver {i} got {got:?}, then {e:?}"));
            got.push(comment_text(&event).unwrap());
        }
        assert_eq!(got, texts, "receiver {i}: order");
    }
    // Nothing is delivered twice.
    for (i, socket) in receivers.iter_mut().enumerate().take(20) {
        let extra = socket.drain(Duration::from_millis(50)).unwrap();
        assert!(
            extra.iter().all(|e| comment_text(e).is_none()),
            "receiver {i} got a duplicate: {extra:?}"
        );
    }
}

#[test]
fn joiners_see_no_older_actions() {
    let server = shared();
    let room = create_room(server, "weur");
    let (mut early, _) = connect(server, &room, "early");
    early.send(&comment(1, "before you came")).unwrap();
    wait_ack(&mut early, 1);
    let (mut late, welcome) = connect(server, &room, "late");
    assert!(welcome.action_cursor >= 1);
    let events = late.drain(Duration::from_millis(500)).unwrap();
    assert!(
        events.iter().all(|e| comment_text(e).is_none()),
        "{events:?}"
    );
}

#[test]
fn like_totals_are_summed_across_users() {
    let server = shared();
    let room = create_room(server, "apac");
    let mut sockets: Vec<Socket> = ["a", "b", "c"]
        .iter()
        .map(|u| connect(server, &room, u).0)
        .collect();
    for (socket, count) in sockets.iter_mut().zip([5, 7, 8]) {
        socket
            .send(&ClientFrame::Like {
                client_id: 9,
                count,
            })
            .unwrap();
        assert!(matches!(wait_ack(socket, 9), Event::Ack { .. }));
    }
    for socket in &mut sockets {
        socket
            .wait_for(WAIT, |e| *e == Event::Likes { total: 20 })
            .expect("like total 20");
    }
    let state = server
        .admin()
        .get(&format!("/v1/rooms/{room}/state"))
        .unwrap();
    assert_eq!(state.body["likes"], 20);
}

#[test]
fn online_count_follows_joins_and_leaves() {
    let server = shared();
    let room = create_room(server, "weur");
    let (mut a, _) = connect(server, &room, "a");
    let (b, _) = connect(server, &room, "b");
    let (c, _) = connect(server, &room, "c");
    a.wait_for(WAIT, |e| *e == Event::Online { count: 3 })
        .expect("3 online");
    b.close();
    c.close();
    a.wait_for(WAIT, |e| *e == Event::Online { count: 1 })
        .expect("1 online after two leave");
}

#[test]
fn peer_messages_reach_only_their_target() {
    let server = shared();
    let room = create_room(server, "weur");
    let (mut host, _) = connect_as(server, &room, "host-1", "host");
    let (mut target_a, _) = connect(server, &room, "target");
    let (mut target_b, _) = connect(server, &room, "target");
    let (mut bystander, _) = connect(server, &room, "bystander");
    host.send(&ClientFrame::Direct {
        client_id: 1,
        to_user: "target".into(),
        payload: r#"{"won":true}"#.into(),
    })
    .unwrap();
    assert!(matches!(wait_ack(&mut host, 1), Event::Ack { .. }));
    for socket in [&mut target_a, &mut target_b] {
        let event = socket
            .wait_for(WAIT, |e| matches!(e, Event::Direct { .. }))
            .unwrap();
        assert!(
            matches!(&event, Event::Direct { from, payload, .. }
                if from == "host-1" && payload == r#"{"won":true}"#),
            "{event:?}"
        );
    }
    // Through the admin API too.
    let reply = server
        .admin()
        .post(
            &format!("/v1/rooms/{room}/direct"),
            &json!({ "user": "target", "payload": { "n": 2 } }),
        )
        .unwrap();
    assert_eq!(
        (reply.status, reply.body["connections"].clone()),
        (200, json!(2))
    );
    target_a
        .wait_for(
            WAIT,
            |e| matches!(e, Event::Direct { payload, .. } if payload == r#"{"n":2}"#),
        )
        .unwrap();
    let seen = bystander.drain(Duration::from_millis(500)).unwrap();
    assert!(
        !seen.iter().any(|e| matches!(e, Event::Direct { .. })),
        "{seen:?}"
    );
    let seen = host.drain(Duration::from_millis(100)).unwrap();
    assert!(!seen.iter().any(|e| matches!(e, Event::Direct { .. })));
    // A viewer may not send one.
    bystander
        .send(&ClientFrame::Direct {
            client_id: 2,
            to_user: "target".into(),
            payload: "{}".into(),
        })
        .unwrap();
    assert!(matches!(
        wait_ack(&mut bystander, 2),
        Event::Error {
            code: ErrorCode::Forbidden,
            ..
        }
    ));
}

/// Follows a socket's view: epoch, cursor and part versions, as a client keeps them.
#[derive(Default)]
struct View {
    epoch: u64,
    cursor: u64,
    parts: BTreeMap<String, u64>,
}

impl View {
    fn apply(&mut self, event: &Event) {
        match event {
            Event::Welcome(w) => self.epoch = w.epoch,
            Event::Part { name, version, .. } => {
                self.parts.insert(name.clone(), *version);
            }
            Event::Action(a) => self.cursor = self.cursor.max(a.seq),
            _ => {}
        }
    }

    fn resume(&self) -> Resume {
        Resume {
            epoch: self.epoch,
            action_cursor: self.cursor,
            part_versions: self
                .parts
                .iter()
                .map(|(name, version)| PartVersion {
                    name: name.clone(),
                    version: *version,
                })
                .collect(),
        }
    }
}

#[test]
fn resume_after_a_dropped_socket_misses_nothing() {
    let server = shared();
    let room = create_room(server, "weur");
    let mut view = View::default();
    let mut dropped = Socket::connect(
        &server.base,
        &room,
        &token("viewer", "blinker", &room),
        None,
    )
    .unwrap();
    for event in dropped.drain(Duration::from_millis(400)).unwrap() {
        view.apply(&event);
    }
    let (mut speaker, _) = connect(server, &room, "speaker");
    speaker.send(&comment(1, "seen")).unwrap();
    let seen = dropped
        .wait_for(WAIT, |e| comment_text(e).is_some())
        .unwrap();
    view.apply(&seen);
    drop(dropped); // the TCP connection goes away without a close handshake
    for (i, text) in ["missed-1", "missed-2"].iter().enumerate() {
        speaker.send(&comment(i as u64 + 2, text)).unwrap();
    }
    wait_ack(&mut speaker, 3);
    let mut back = Socket::connect(
        &server.base,
        &room,
        &token("viewer", "blinker", &room),
        Some(view.resume()),
    )
    .unwrap();
    let events = back.drain(Duration::from_millis(600)).unwrap();
    assert!(matches!(&events[0], Event::Welcome(w) if w.resumed));
    let texts: Vec<String> = events.iter().filter_map(comment_text).collect();
    assert_eq!(texts, ["missed-1", "missed-2"]);
    assert!(
        !events.iter().any(|e| matches!(e, Event::Part { .. })),
        "parts already held were sent again: {events:?}"
    );
    assert!(!events.iter().any(|e| matches!(e, Event::Gap { .. })));
}

#[test]
fn state_survives_a_restart_of_wrangler_dev_on_the_same_data_directory() {
    let data = ovation_tests::scratch_dir("restart");
    let mut server = Server::start(&data);
    let room = create_room(&server, "eeur");
    let admin = server.admin();
    let put = admin
        .put(
            &format!("/v1/rooms/{room}/parts/banner"),
            &json!({"q": "tea?"}),
        )
        .unwrap();
    assert_eq!(put.status, 200, "{:?}", put.body);
    let mut view = View::default();
    let (mut socket, welcome) = connect(&server, &room, "keeper");
    view.apply(&Event::Welcome(welcome));
    socket.send(&comment(1, "remember me")).unwrap();
    socket
        .send(&ClientFrame::Like {
            client_id: 2,
            count: 4,
        })
        .unwrap();
    wait_ack(&mut socket, 2);
    for event in socket.drain(Duration::from_millis(300)).unwrap() {
        view.apply(&event);
    }
    let before = admin.get(&format!("/v1/rooms/{room}/state")).unwrap().body;
    socket.close();
    server.stop();

    let server = Server::start(&data);
    let admin = server.admin();
    let after = admin.get(&format!("/v1/rooms/{room}/state")).unwrap().body;
    for key in [
        "epoch",
        "version",
        "parts",
        "likes",
        "action_cursor",
        "status",
    ] {
        assert_eq!(before[key], after[key], "{key} changed across the restart");
    }
    assert_eq!(after["likes"], 4);
    // A client that saw nothing since joining resumes and gets the comment from storage.
    let mut stale = View {
        epoch: view.epoch,
        cursor: 0,
        parts: view.parts.clone(),
    };
    stale.parts.clear();
    let mut back = Socket::connect(
        &server.base,
        &room,
        &token("viewer", "keeper", &room),
        Some(stale.resume()),
    )
    .unwrap();
    let events = back.drain(Duration::from_millis(800)).unwrap();
    assert!(matches!(&events[0], Event::Welcome(w) if w.resumed));
    assert!(events
        .iter()
        .filter_map(comment_text)
        .any(|t| t == "remember me"));
    assert!(events.iter().any(
        |e| matches!(e, Event::Part { name, value, .. } if name == "banner" && value.contains("tea"))
    ));
    let rooms = admin.get("/v1/rooms?status=live").unwrap().body;
    assert!(rooms["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["room"] == room.as_str()));
}

/// The status of a refused WebSocket handshake, and the error code of the same request's
/// JSON body (read in full over plain HTTP: a handshake client may not read the body).
fn refused_code(server: &Server, room: &str, token: &str) -> (u16, String) {
    let status = match Socket::open(&server.base, room, token) {
        Err(SocketEnd::Refused(status, _)) => status,
        Err(other) => panic!("expected an HTTP refusal, got {other:?}"),
        Ok(_) => panic!("token was accepted"),
    };
    let reply = Api::new(&server.base, "")
        .get_with_headers(
            &format!("/v1/rooms/{room}/ws?token={token}"),
            &[
                ("upgrade", "websocket"),
                ("sec-websocket-protocol", "ovation.v1"),
            ],
        )
        .unwrap();
    assert_eq!(reply.status, status, "{:?}", reply.body);
    (
        status,
        reply.body["code"].as_str().unwrap_or_default().to_owned(),
    )
}

#[test]
fn every_bad_token_kind_is_refused_with_its_own_code() {
    let server = shared();
    let room = create_room(server, "weur");
    let dev_key = SigningKey::hs256(dev::HS256_SECRET.as_bytes());
    let expired = ovation_auth::mint(
        &dev_key,
        ovation_auth::TokenClaims {
            sub: "u".into(),
            name: "u".into(),
            room: room.clone(),
            role: "viewer".into(),
            tenant: dev::TENANT.into(),
        },
        ovation_tests::now_ms() - 3_600_000,
        60_000,
    );
    let forged = token_with(
        &SigningKey::hs256(b"an-attacker-guessed-this"),
        dev::TENANT,
        "viewer",
        "u",
        &room,
    );
    let wrong_room = token("viewer", "u", "weur-somewhere-else");
    let wrong_tenant = token_with(
        &SigningKey::hs256(dev::OTHER_HS256_SECRET.as_bytes()),
        dev::TENANT,
        "viewer",
        "u",
        &room,
    );
    let unknown_tenant = token_with(&dev_key, "nobody", "viewer", "u", &room);
    let cases = [
        ("", 401, "token_missing"),
        ("not-a-jwt", 401, "token_malformed"),
        (expired.as_str(), 401, "token_expired"),
        (forged.as_str(), 401, "token_invalid_signature"),
        (wrong_room.as_str(), 403, "token_wrong_room"),
        (wrong_tenant.as_str(), 401, "token_wrong_tenant"),
        (unknown_tenant.as_str(), 401, "token_unknown_tenant"),
    ];
    for (token, status, code) in cases {
        assert_eq!(
            refused_code(server, &room, token),
            (status, code.to_owned()),
            "token case {code}"
        );
    }
    // A viewer token cannot use the admin API.
    let viewer = Api::new(&server.base, &token("viewer", "u", "*"));
    let reply = viewer
        .post("/v1/rooms", &json!({"room": "weur-x", "host": "h"}))
        .unwrap();
    assert_eq!(
        (reply.status, reply.body["code"].as_str()),
        (403, Some("token_not_admin"))
    );
}

#[test]
fn tenants_cannot_see_each_others_rooms() {
    let server = shared();
    let room = create_room(server, "weur");
    let other_key = SigningKey::hs256(dev::OTHER_HS256_SECRET.as_bytes());
    let other_admin = Api::new(
        &server.base,
        &token_with(&other_key, dev::OTHER_TENANT, "admin", "x", "*"),
    );
    let reply = other_admin.get(&format!("/v1/rooms/{room}/state")).unwrap();
    assert_eq!(
        (reply.status, reply.body["code"].as_str()),
        (404, Some("room_not_found"))
    );
    let listed = other_admin.get("/v1/rooms?status=live").unwrap().body;
    assert!(!listed["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["room"] == room.as_str()));
    let viewer = token_with(&other_key, dev::OTHER_TENANT, "viewer", "x", &room);
    assert_eq!(
        refused_code(server, &room, &viewer),
        (404, "room_not_found".into())
    );
}

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
fn admin_api_errors_carry_stable_codes() {
    let server = shared();
    let admin = server.admin();
    let room = create_room(server, "weur");
    let cases: Vec<(ovation_cli::Reply, u16, &str)> = vec![
        (
            admin
                .post("/v1/rooms", &json!({"room": "nowhere-1", "host": "h"}))
                .unwrap(),
            400,
            "invalid_room_id",
        ),
        (
            admin
                .post("/v1/rooms", &json!({"room": room, "host": "h"}))
                .unwrap(),
            409,
            "room_exists",
        ),
        (
            admin.post_raw("/v1/rooms", b"{not json").unwrap(),
            400,
            "invalid_json",
        ),
        (
            admin
                .post("/v1/rooms/weur-never-made/end", &json!({}))
                .unwrap(),
            404,
            "room_not_found",
        ),
        (
            admin
                .put(&format!("/v1/rooms/{room}/parts/room"), &json!({}))
                .unwrap(),
            400,
            "reserved_part",
        ),
        (
            admin
                .put(&format!("/v1/rooms/{room}/parts/Bad.Name"), &json!({}))
                .unwrap(),
            400,
            "invalid_part_name",
        ),
        (
            admin
                .put(
                    &format!("/v1/rooms/{room}/parts/big"),
                    &json!({"x": "y".repeat(9000)}),
                )
                .unwrap(),
            400,
            "too_long",
        ),
        (
            admin
                .post_raw(
                    &format!("/v1/rooms/{room}/messages"),
                    "x".repeat(20_000).as_bytes(),
                )
                .unwrap(),
            413,
            "body_too_large",
        ),
        (
            admin.get(&format!("/v1/rooms/{room}/parts/room")).unwrap(),
            400,
            "version_required",
        ),
        (
            admin
                .get(&format!("/v1/rooms/{room}/parts/room?v=999"))
                .unwrap(),
            404,
            "part_version_not_found",
        ),
        (
            admin.get("/v1/nothing-here").unwrap(),
            404,
            "route_not_found",
        ),
        (
            admin.get("/v1/rooms?status=ended").unwrap(),
            400,
            "unsupported_status",
        ),
    ];
    for (reply, status, code) in cases {
        assert_eq!(
            (reply.status, reply.body["code"].as_str()),
            (status, Some(code)),
            "{:?}",
            reply.body
        );
        assert!(reply.body["message"].is_string());
    }
    // Ending twice: the second is refused.
    assert_eq!(
        admin
            .post(&format!("/v1/rooms/{room}/end"), &json!({}))
            .unwrap()
            .status,
        200
    );
    let again = admin
        .post(&format!("/v1/rooms/{room}/end"), &json!({}))
        .unwrap();
    assert_eq!(
        (again.status, again.body["code"].as_str()),
        (409, Some("room_ended"))
    );
}

#[test]
fn parts_are_versioned_immutable_and_cached() {
    let server = shared();
    let admin = server.admin();
    let room = create_room(server, "weur");
    let put = admin
        .put(
            &format!("/v1/rooms/{room}/parts/pinned"),
            &json!({"text": "hello"}),
        )
        .unwrap();
    let version = put.body["version"].as_u64().unwrap();
    let state = admin.get(&format!("/v1/rooms/{room}/state")).unwrap();
    assert_eq!(state.body["parts"]["pinned"], version);
    assert_eq!(state.cache_control.as_deref(), Some("max-age=1"));
    let path = format!("/v1/rooms/{room}/parts/pinned?v={version}");
    let first = admin.get(&path).unwrap();
    assert_eq!(first.body, json!({"text": "hello"}));
    assert!(first.cache_control.unwrap().contains("immutable"));
    let second = admin.get(&path).unwrap();
    assert_eq!(second.body, json!({"text": "hello"}));
    assert_eq!(second.cache.as_deref(), Some("hit"));
}

#[test]
fn pull_transport_returns_actions_since_a_cursor() {
    let server = shared();
    let room = create_room(server, "weur");
    let (mut socket, _) = connect(server, &room, "talker");
    socket.send(&comment(1, "one")).unwrap();
    socket.send(&comment(2, "two")).unwrap();
    wait_ack(&mut socket, 2);
    let viewer = Api::new(&server.base, &token("viewer", "puller", &room));
    let reply = viewer
        .get(&format!("/v1/rooms/{room}/events?since=0"))
        .unwrap();
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let texts: Vec<&str> = reply.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["one", "two"]);
    let cursor = reply.body["cursor"].as_u64().unwrap();
    let reply = viewer
        .get(&format!("/v1/rooms/{room}/events?since={cursor}"))
        .unwrap();
    assert_eq!(reply.body["events"], json!([]));
    assert!(reply.body["poll_interval_ms"].as_u64().unwrap() > 0);
}

#[test]
fn openapi_document_is_served_and_matches_the_routes() {
    let server = shared();
    let served = Api::new(&server.base, "")
        .get("/v1/openapi.json")
        .unwrap()
        .body;
    let root = ovation_tests::root();
    let file: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("edge-worker/openapi.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(served, file);
}

/// The router dispatches on `ovation_proto::routes::ROUTES`: every route in it is
/// documented, and nothing else is.
#[test]
fn openapi_document_lists_exactly_the_routes_the_router_dispatches() {
    let root = ovation_tests::root();
    let file: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("edge-worker/openapi.json")).unwrap(),
    )
    .unwrap();
    let routes: std::collections::BTreeSet<String> = ovation_proto::routes::ROUTES
        .iter()
        .map(|spec| format!("{} {}", spec.method.as_str(), spec.path))
        .collect();
    let mut documented = std::collections::BTreeSet::new();
    for (path, item) in file["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            documented.insert(format!("{method} {path}"));
        }
    }
    assert_eq!(routes, documented);
}

#[test]
fn connections_get_goaway_at_the_end_of_their_lifetime_then_close() {
    let data = ovation_tests::scratch_dir("lifetime");
    let server = Server::start_with_vars(&data, &[("OVATION_CONNECTION_LIFETIME_MS", "1500")]);
    let room = create_room(&server, "weur");
    let (mut socket, _) = connect(&server, &room, "mayfly");
    let started = std::time::Instant::now();
    socket
        .wait_for(WAIT, |e| matches!(e, Event::GoAway { .. }))
        .expect("GoAway at the end of the lifetime");
    assert!(started.elapsed() >= Duration::from_millis(1000));
    // A client that ignores GoAway is closed after the grace period, with the code that
    // tells it to reconnect (`should_reconnect` itself is a unit test of ovation-proto).
    assert_eq!(expect_close(&mut socket), CloseCode::GoingAway.code());
}

#[test]
fn the_token_may_come_in_the_subprotocol_list() {
    let server = shared();
    let room = create_room(server, "weur");
    let token = token("viewer", "browser", &room);
    let mut socket = Socket::open_with_protocol_token(&server.base, &room, &token)
        .expect("accepted with the token in Sec-WebSocket-Protocol");
    socket
        .send(&ClientFrame::Hello(ovation_proto::Hello {
            protocol_version: ovation_proto::PROTOCOL_VERSION,
            resume: None,
        }))
        .unwrap();
    let welcome = socket
        .wait_for(WAIT, |e| matches!(e, Event::Welcome(_)))
        .unwrap();
    assert!(matches!(welcome, Event::Welcome(w) if w.user == "browser"));
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
    let server = shared();
    let room = ovation_tests::room_id("weur");
    let reply = server
        .admin()
        .post(
            "/v1/rooms",
            &json!({ "room": room, "host": "host-1", "expected_audience": 10_000 }),
        )
        .unwrap();
    assert_eq!(reply.status, 201, "{:?}", reply.body);
    let greedy = token("viewer", "greedy", &room);
    let opening = std::time::Instant::now();
    let (welcomed, closed) = open_many(server, &room, &greedy, 24);
    let opening = opening.elapsed();
    assert!(
        !welcomed.is_empty() && welcomed.len() <= USER_SOCKETS_PER_ROOM_MAX,
        "{} sockets of one token welcomed by its shard",
        welcomed.len()
    );
    assert_eq!(welcomed.len() + closed.len(), 24);
    assert_refused_over_the_cap(&welcomed, &closed, opening);
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

#[test]
fn a_token_issued_in_the_future_is_refused_with_its_own_code() {
    let server = shared();
    let room = create_room(server, "weur");
    let from_the_future = ovation_auth::mint(
        &SigningKey::hs256(dev::HS256_SECRET.as_bytes()),
        ovation_auth::TokenClaims {
            sub: "marty".into(),
            name: "Marty".into(),
            room: room.clone(),
            role: "viewer".into(),
            tenant: dev::TENANT.into(),
        },
        ovation_tests::now_ms() + TOKEN_IAT_LEEWAY_MS + 60_000,
        60_000,
    );
    assert_eq!(
        refused_code(server, &room, &from_the_future),
        (401, "token_issued_in_future".to_owned())
    );
}

/// A small seeded generator (xorshift64*), so a failing body can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

/// JSON texts that break numbers and types: whole numbers around 2^53 and 2^64,
/// negatives, fractions, exponents, strings, nulls, booleans, containers, deep nesting.
const ODD_VALUES: [&str; 22] = [
    "0",
    "-1",
    "1",
    "9007199254740992",
    "9007199254740993",
    "18446744073709551615",
    "18446744073709551616",
    "-9223372036854775809",
    "1e400",
    "-0.0",
    "1.5",
    "1e3",
    "\"\"",
    "\"12\"",
    "\"\\u0000\\ud800\"",
    "null",
    "true",
    "[]",
    "{}",
    "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]",
    "{\"a\":{\"b\":{\"c\":[null,{}]}}}",
    "\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"",
];

/// A body for an admin route from its valid shape (`fields`, each with a sensible
/// value): mostly one field made odd and the rest sensible (so the odd value gets past
/// the router's other checks to the room), sometimes many fields odd, dropped, or joined
/// by an unknown one, sometimes an odd value alone.
fn odd_body(rng: &mut Rng, fields: &[(&str, &str)]) -> String {
    let mode = rng.below(10);
    if fields.is_empty() || mode == 0 {
        return rng.pick(&ODD_VALUES).to_owned();
    }
    let odd_one = rng.below(fields.len());
    let mut members = Vec::new();
    for (i, (name, sensible)) in fields.iter().enumerate() {
        let value = match (mode, rng.below(4)) {
            (1..=6, _) if i == odd_one => rng.pick(&ODD_VALUES),
            (1..=6, _) | (7.., 3) => sensible,
            (7.., 0) => continue,
            (7.., _) => rng.pick(&ODD_VALUES),
            (0, _) => unreachable!("returned above"),
        };
        members.push(format!("\"{name}\":{value}"));
    }
    if mode == 9 {
        members.push(format!("\"unknown\":{}", rng.pick(&ODD_VALUES)));
    }
    format!("{{{}}}", members.join(","))
}

#[test]
fn admin_routes_answer_no_5xx_to_odd_json() {
    let server = shared();
    let admin = server.admin();
    let seed = std::env::var("OVATION_ODD_JSON_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x0dd1_50b5_e55e_d000_u64);
    let mut rng = Rng(seed | 1);
    let room = create_room(server, "weur");
    let poll = json!({"question": "Which?", "options": ["a", "b"]});
    let reply = admin
        .post(&format!("/v1/rooms/{room}/polls"), &poll)
        .unwrap();
    let poll_id = reply.body["id"].as_str().unwrap_or("p1").to_owned();
    let quiz = json!({"title": "Q", "questions": [{"question": "1+1?", "options": ["1", "2"], "correct": 1}]});
    let reply = admin
        .post(&format!("/v1/rooms/{room}/quizzes"), &quiz)
        .unwrap();
    let quiz_id = reply.body["id"].as_str().unwrap_or("z1").to_owned();
    let r = format!("/v1/rooms/{room}");
    let new_room = format!("\"{}\"", ovation_tests::room_id("weur"));
    // Every admin route that takes a body, with the fields of its valid shape.
    let routes: Vec<(String, Vec<(&str, &str)>)> = vec![
        (
            "/v1/rooms".into(),
            vec![
                ("room", new_room.as_str()),
                ("host", "\"h\""),
                ("title", "\"t\""),
                ("expected_audience", "10"),
            ],
        ),
        (format!("{r}/messages"), vec![("text", "\"hi\"")]),
        (
            format!("{r}/direct"),
            vec![("user", "\"u\""), ("payload", "{}")],
        ),
        (
            format!("{r}/polls"),
            vec![
                ("question", "\"q\""),
                ("options", "[\"a\",\"b\"]"),
                ("window_ms", "2000"),
                ("cue", "\"c1\""),
            ],
        ),
        (format!("{r}/polls/{poll_id}/close"), vec![]),
        (format!("{r}/polls/{poll_id}/reveal"), vec![]),
        (
            format!("{r}/quizzes"),
            vec![
                ("title", "\"t\""),
                (
                    "questions",
                    "[{\"question\":\"q\",\"options\":[\"a\",\"b\"],\"correct\":0,\"window_ms\":2000}]",
                ),
            ],
        ),
        (format!("{r}/quizzes/{quiz_id}/next"), vec![]),
        (format!("{r}/quizzes/{quiz_id}/close"), vec![]),
        (format!("{r}/quizzes/{quiz_id}/end"), vec![]),
        (
            format!("{r}/products"),
            vec![
                ("id", "\"p\""),
                ("title", "\"t\""),
                ("price", "\"1\""),
                ("image_url", "\"https://x.example/i.png\""),
                ("link", "\"https://x.example/\""),
            ],
        ),
        (format!("{r}/products/unpin"), vec![]),
        (format!("{r}/qa/settings"), vec![("approval", "true")]),
        (format!("{r}/qa/a1/approve"), vec![]),
        (format!("{r}/qa/a1/answer"), vec![]),
        (format!("{r}/qa/a1/hide"), vec![]),
        (
            format!("{r}/moderation"),
            vec![
                ("command", "\"mute\""),
                ("user", "\"u\""),
                ("duration_ms", "1000"),
            ],
        ),
        (
            format!("{r}/moderation"),
            vec![("command", "\"delete_comment\""), ("seq", "1")],
        ),
        (
            format!("{r}/moderation"),
            vec![("command", "\"slow_mode\""), ("interval_ms", "1000")],
        ),
        (
            format!("{r}/moderation"),
            vec![("command", "\"word_filter\""), ("words", "[\"w\"]")],
        ),
        (
            format!("{r}/commands"),
            vec![("command", "\"announce\""), ("text", "\"t\"")],
        ),
        (
            format!("{r}/commands"),
            vec![("command", "\"mute\""), ("user", "\"u\""), ("duration_ms", "5")],
        ),
        (format!("{r}/shards"), vec![("shards", "1")]),
    ];
    let mut failures = Vec::new();
    for round in 0..12 {
        for (path, fields) in &routes {
            let body = odd_body(&mut rng, fields);
            let reply = admin.post_raw(path, body.as_bytes()).unwrap();
            if reply.status >= 500 {
                failures.push(format!(
                    "round {round}: POST {path} {body} -> {} {}",
                    reply.status, reply.body
                ));
            }
        }
        // A part's value is any JSON.
        let value: serde_json::Value =
            serde_json::from_str(rng.pick(&ODD_VALUES)).unwrap_or(json!(null));
        let reply = admin.put(&format!("{r}/parts/odd"), &value).unwrap();
        if reply.status >= 500 {
            failures.push(format!("PUT part {value} -> {}", reply.status));
        }
        let since = rng.pick(&ODD_VALUES).replace('"', "");
        for get in [
            format!("{r}/events?since={since}"),
            format!("{r}/parts/odd?v={since}"),
            format!("{r}/state"),
            format!("{r}/stats"),
            format!("{r}/audit"),
        ] {
            let reply = admin.get(&get).unwrap();
            if reply.status >= 500 {
                failures.push(format!("GET {get} -> {}", reply.status));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "seed {seed:#x}: {} answers were 5xx:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // Whole numbers past 2^53 reach the room exactly: out of a limit is a 400 with a
    // code, in range (a mute for u64::MAX ms: until unmuted) is taken.
    let cases = [
        (
            "/v1/rooms".to_owned(),
            json!({"room": ovation_tests::room_id("weur"), "host": "h",
                   "expected_audience": EXPECTED_AUDIENCE_MAX + 1}),
            (400, Some("invalid")),
        ),
        (
            format!("{r}/commands"),
            json!({"command": "slow_mode", "interval_ms": 9_007_199_254_740_993_u64}),
            (400, Some("invalid")),
        ),
        (
            format!("{r}/moderation"),
            json!({"command": "delete_comment", "seq": u64::MAX}),
            (404, Some("not_found")),
        ),
        (
            format!("{r}/commands"),
            json!({"command": "mute", "user": "u", "duration_ms": u64::MAX}),
            (200, None),
        ),
    ];
    for (path, body, expected) in cases {
        let reply = admin.post(&path, &body).unwrap();
        assert_eq!(
            (reply.status, reply.body["code"].as_str()),
            expected,
            "{path} {body}: {}",
            reply.body
        );
    }
    // ADMIN_BODY_BYTES_MAX: a body of exactly the limit is read (and its text refused
    // as too long), one byte more is refused before parsing.
    let body = |bytes: usize| format!("{{\"text\":\"{}\"}}", "x".repeat(bytes - 11));
    let at_limit = admin
        .post_raw(
            &format!("{r}/messages"),
            body(ADMIN_BODY_BYTES_MAX).as_bytes(),
        )
        .unwrap();
    assert_eq!(
        (at_limit.status, at_limit.body["code"].as_str()),
        (400, Some("too_long"))
    );
    let one_past = admin
        .post_raw(
            &format!("{r}/messages"),
            body(ADMIN_BODY_BYTES_MAX + 1).as_bytes(),
        )
        .unwrap();
    assert_eq!(
        (one_past.status, one_past.body["code"].as_str()),
        (413, Some("body_too_large"))
    );
}

#[test]
fn the_directory_admits_a_room_before_it_opens_and_keeps_a_live_rooms_entry() {
    let server = shared();
    let admin = server.admin();
    let room = create_room(server, "weur");
    let listed = |admin: &Api| {
        admin.get("/v1/rooms?status=live").unwrap().body["rooms"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["room"] == room.as_str())
            .map(|r| r["title"].as_str().unwrap_or_default().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(listed(&admin), ["test"]);
    // Opening it again is refused, and its entry stays as it was.
    let again = admin
        .post(
            "/v1/rooms",
            &json!({"room": room, "host": "h", "title": "impostor"}),
        )
        .unwrap();
    assert_eq!(again.status, 409);
    assert_eq!(listed(&admin), ["test"]);
    admin
        .post(&format!("/v1/rooms/{room}/end"), &json!({}))
        .unwrap();
    assert!(listed(&admin).is_empty());
}

/// Pages on any origin use the API (the SDK's pull transport and replay send the token as
/// a bearer header): a preflight is answered for every route, and every answer, including
/// one a room object gave, carries the CORS headers.
#[test]
fn the_api_answers_cors_preflights_and_every_answer_allows_any_origin() {
    let server = shared();
    let room = create_room(server, "weur");
    let cors = |response: &ureq::Response| {
        (
            response
                .header("access-control-allow-origin")
                .map(str::to_owned),
            response
                .header("access-control-allow-headers")
                .map(str::to_owned),
        )
    };
    let preflight = ureq::request("OPTIONS", &format!("{}/v1/rooms/{room}/state", server.base))
        .set("origin", "https://shop.example")
        .set("access-control-request-method", "GET")
        .set("access-control-request-headers", "authorization")
        .call()
        .expect("a preflight is answered");
    assert_eq!(preflight.status(), 204);
    let (origin, headers) = cors(&preflight);
    assert_eq!(origin.as_deref(), Some("*"));
    assert!(headers.unwrap_or_default().contains("authorization"));
    // An answer forwarded from the room object (its headers are immutable there).
    let state = ureq::get(&format!("{}/v1/rooms/{room}/state", server.base))
        .set("origin", "https://shop.example")
        .set(
            "authorization",
            &format!("Bearer {}", token("viewer", "cors", &room)),
        )
        .call()
        .expect("the state");
    assert_eq!(state.status(), 200);
    assert_eq!(cors(&state).0.as_deref(), Some("*"));
    // Refusals carry them too, or the page could not read the error code.
    let refused = ureq::get(&format!("{}/v1/rooms/{room}/state", server.base))
        .set("origin", "https://shop.example")
        .call();
    match refused {
        Err(ureq::Error::Status(401, response)) => {
            assert_eq!(cors(&response).0.as_deref(), Some("*"))
        }
        other => panic!("expected 401: {other:?}"),
    }
    // A preflight for no route is a 404.
    match ureq::request("OPTIONS", &format!("{}/v1/nope", server.base)).call() {
        Err(ureq::Error::Status(404, _)) => {}
        other => panic!("expected 404: {other:?}"),
    }
}
