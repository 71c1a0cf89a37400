//! A room's basics over real sockets: the snapshot on join, comments fanned out in order,
//! likes, online counts, peer messages, resuming after a drop and surviving a restart.

use super::{comment, comment_text, connect, connect_as, wait_ack, WAIT};
use ovation_cli::Socket;
use ovation_proto::{ClientFrame, ErrorCode, Event, PartVersion, Resume};
use ovation_tests::{create_room, shared, token, Server};
use serde_json::json;
use std::collections::BTreeMap;
use std::time::Duration;

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
    for event in dropped.snapshot(WAIT, 0).unwrap() {
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
    let events = back.snapshot(WAIT, view.cursor).unwrap();
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
    // A quiz with a question scored: its answer is read back at the wake-up after the
    // quiz's record, and scored again.
    let quizzes = format!("/v1/rooms/{room}/quizzes");
    let spec = json!({"title": "T", "questions": [
        {"question": "2+2?", "options": ["3", "4"], "correct": 1, "window_ms": 60_000},
        {"question": "3+3?", "options": ["6", "7"], "correct": 0, "window_ms": 60_000}]});
    assert_eq!(admin.post(&quizzes, &spec).unwrap().status, 200);
    let next = format!("{quizzes}/z1/next");
    assert_eq!(admin.post(&next, &json!({})).unwrap().status, 200);
    let answer = ClientFrame::Answer {
        client_id: 3,
        quiz_id: "z1".into(),
        question: 0,
        option: 1,
    };
    socket.send(&answer).unwrap();
    wait_ack(&mut socket, 3);
    let closed = admin
        .post(&format!("{quizzes}/z1/close"), &json!({}))
        .unwrap();
    assert_eq!(closed.body["participants"], 1, "{closed:?}");
    for event in socket.drain(Duration::from_millis(300)).unwrap() {
        view.apply(&event);
    }
    let before = admin.get(&format!("/v1/rooms/{room}/state")).unwrap().body;
    socket.close();
    server.stop();

    // The restarted room object reads its records one a page: every page boundary of
    // its wake-up is crossed (`RESTORE_PAGE_KEYS_MAX` a page in production).
    let server = Server::start_with_vars(&data, &[("OVATION_RESTORE_PAGE_KEYS", "1")]);
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
    let events = back.snapshot(WAIT, stale.cursor).unwrap();
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
    // The quiz's participant was scored again from her stored answer.
    let next = admin.post(&next, &json!({})).unwrap();
    assert_eq!(
        (
            next.body["question"].as_u64(),
            next.body["participants"].as_u64()
        ),
        (Some(1), Some(1)),
        "{next:?}"
    );
}
