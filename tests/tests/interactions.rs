//! Interactions against the real worker under `wrangler dev`: quizzes, Q&A, products and
//! moderation through the admin API and staff sockets, and a 2,000-viewer vote burst.

use ovation_auth::{dev, SigningKey};
use ovation_cli::{Socket, SocketEnd};
use ovation_load::{vote_burst, BurstConfig, Minter};
use ovation_proto::{ClientFrame, ErrorCode, Event};
use ovation_tests::{create_room, scratch_dir, shared, token, Server};
use serde_json::{json, Value};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(10);

fn connect_as(server: &Server, room: &str, user: &str, role: &str) -> Socket {
    let mut socket = Socket::connect(&server.base, room, &token(role, user, room), None)
        .unwrap_or_else(|e| panic!("connect {user}: {e:?}"));
    socket
        .wait_for(WAIT, |e| matches!(e, Event::Welcome(_)))
        .expect("welcome");
    socket
}

/// Waits for the system's direct message of this type.
#[track_caller]
fn notice(socket: &mut Socket, kind: &str) -> Value {
    let event = socket.wait_for(WAIT, |e| match e {
        Event::Direct { from, payload, .. } if from == "ovation" => {
            serde_json::from_str::<Value>(payload).unwrap()["type"] == kind
        }
        _ => false,
    });
    let event = match event {
        Ok(event) => event,
        Err(e) => panic!("no {kind} notice: {e:?}"),
    };
    let Event::Direct { payload, .. } = event else {
        unreachable!()
    };
    serde_json::from_str(&payload).unwrap()
}

/// Waits for the part `name` whose value satisfies `accept`.
#[track_caller]
fn part(socket: &mut Socket, name: &str, accept: impl Fn(&Value) -> bool) -> Value {
    let event = socket.wait_for(WAIT, |e| match e {
        Event::Part { name: n, value, .. } if n == name => {
            accept(&serde_json::from_str(value).unwrap())
        }
        _ => false,
    });
    let event = match event {
        Ok(event) => event,
        Err(e) => panic!("no {name} part: {e:?}"),
    };
    let Event::Part { value, .. } = event else {
        unreachable!()
    };
    serde_json::from_str(&value).unwrap()
}

fn answer_of(socket: &mut Socket, client_id: u64) -> Result<(), ErrorCode> {
    let event = socket
        .wait_for(WAIT, |e| match e {
            Event::Ack { client_id: c, .. } => *c == client_id,
            Event::Error { client_id: c, .. } => *c == Some(client_id),
            _ => false,
        })
        .expect("an answer");
    match event {
        Event::Error { code, .. } => Err(code),
        _ => Ok(()),
    }
}

#[test]
fn quizzes_products_and_qa_run_through_the_admin_api_and_staff_sockets() {
    let server = shared();
    let admin = server.admin();
    let room = create_room(server, "weur");
    let mut host = connect_as(server, &room, "host-1", "host");
    let mut ana = connect_as(server, &room, "ana", "viewer");

    // A quiz: created and asked over the admin API, answered on a socket.
    let spec = json!({"title": "Trivia", "questions": [
        {"question": "2+2?", "options": ["3", "4"], "correct": 1, "window_ms": 60_000}]});
    let reply = admin
        .post(&format!("/v1/rooms/{room}/quizzes"), &spec)
        .unwrap();
    assert_eq!(
        (reply.status, reply.body["id"].as_str()),
        (200, Some("z1")),
        "{reply:?}"
    );
    let reply = admin
        .post(&format!("/v1/rooms/{room}/quizzes/z1/next"), &json!({}))
        .unwrap();
    assert_eq!(reply.body["phase"], "open", "{reply:?}");
    part(&mut ana, "quiz", |v| v["phase"] == "open");
    ana.send(&ClientFrame::Answer {
        client_id: 1,
        quiz_id: "z1".into(),
        question: 0,
        option: 1,
    })
    .unwrap();
    assert_eq!(answer_of(&mut ana, 1), Ok(()));
    let reply = admin
        .post(&format!("/v1/rooms/{room}/quizzes/z1/close"), &json!({}))
        .unwrap();
    assert_eq!(reply.status, 200, "{reply:?}");
    // The result part and the score notice come in one batch: take both from it.
    let seen = ana.drain(Duration::from_secs(1)).unwrap();
    let score = seen
        .iter()
        .find_map(|e| match e {
            Event::Direct { payload, .. } => Some(serde_json::from_str::<Value>(payload).unwrap())
                .filter(|v| v["type"] == "quiz_score"),
            _ => None,
        })
        .expect("a score notice");
    assert_eq!(
        (score["correct"].as_bool(), score["rank"].as_u64()),
        (Some(true), Some(1))
    );
    let result = seen
        .iter()
        .rev()
        .find_map(|e| match e {
            Event::Part { name, value, .. } if name == "quiz" => {
                Some(serde_json::from_str::<Value>(value).unwrap())
            }
            _ => None,
        })
        .expect("the result part");
    assert_eq!(result["phase"], "result");
    assert_eq!(result["leaderboard"][0]["user"], "ana");

    // A product pinned by the host's socket; ana's clicks reach the host's totals.
    let pin = json!({"command": "pin_product", "product": {"id": "red-1", "title": "Red",
        "price": "€9", "image_url": "https://example.com/r.jpg", "link": "https://example.com/r"}});
    host.send(&ClientFrame::Command {
        client_id: 1,
        command: pin.to_string(),
    })
    .unwrap();
    assert_eq!(answer_of(&mut host, 1), Ok(()));
    part(&mut ana, "product", |v| v["pinned"]["id"] == "red-1");
    ana.send(&ClientFrame::ProductClick {
        client_id: 2,
        product_id: "red-1".into(),
    })
    .unwrap();
    assert_eq!(answer_of(&mut ana, 2), Ok(()));
    let clicks = notice(&mut host, "product_clicks");
    let clicks = if clicks["clicks"]["red-1"] == 1 {
        clicks
    } else {
        notice(&mut host, "product_clicks")
    };
    assert_eq!(clicks["clicks"]["red-1"], 1);

    // Q&A with approval: the host sees the queue, approves, viewers see it and upvote.
    let reply = admin
        .post(
            &format!("/v1/rooms/{room}/qa/settings"),
            &json!({"approval": true}),
        )
        .unwrap();
    assert_eq!(reply.status, 200, "{reply:?}");
    ana.send(&ClientFrame::Ask {
        client_id: 3,
        text: "Sizes?".into(),
    })
    .unwrap();
    assert_eq!(answer_of(&mut ana, 3), Ok(()));
    let queue = notice(&mut host, "qa_queue");
    assert_eq!(queue["pending"][0]["text"], "Sizes?");
    let id = queue["pending"][0]["id"].as_str().unwrap().to_owned();
    let reply = admin
        .post(&format!("/v1/rooms/{room}/qa/{id}/approve"), &json!({}))
        .unwrap();
    assert_eq!(reply.status, 200, "{reply:?}");
    part(&mut ana, "qa", |v| v["count"] == 1);
    ana.send(&ClientFrame::Upvote {
        client_id: 4,
        question_id: id.clone(),
    })
    .unwrap();
    assert_eq!(answer_of(&mut ana, 4), Ok(()));
    part(&mut ana, "qa", |v| v["questions"][0]["upvotes"] == 1);

    // Viewers can run nothing; bad bodies are refused with stable codes.
    ana.send(&ClientFrame::Command {
        client_id: 5,
        command: pin.to_string(),
    })
    .unwrap();
    assert_eq!(answer_of(&mut ana, 5), Err(ErrorCode::Forbidden));
    let viewer_api = ovation_cli::Api::new(&server.base, &token("viewer", "ana", &room));
    let reply = viewer_api
        .post(&format!("/v1/rooms/{room}/quizzes/z1/end"), &json!({}))
        .unwrap();
    assert_eq!(reply.status, 403, "{reply:?}");
    let cases = [
        (
            "quizzes",
            json!({"title": "x", "questions": []}),
            400,
            "invalid",
        ),
        ("quizzes/z9/next", json!({}), 404, "not_found"),
        (
            "products",
            json!({"id": "x", "title": "t", "price": "1", "image_url": "https://a/b",
                            "link": "javascript:alert(1)"}),
            400,
            "invalid",
        ),
        (
            "moderation",
            json!({"command": "create_poll"}),
            400,
            "invalid_command",
        ),
        (
            "commands",
            json!({"command": "launch_rockets"}),
            400,
            "invalid_command",
        ),
    ];
    for (path, body, status, code) in cases {
        let reply = admin
            .post(&format!("/v1/rooms/{room}/{path}"), &body)
            .unwrap();
        assert_eq!(
            (reply.status, reply.body["code"].as_str()),
            (status, Some(code)),
            "{path}: {reply:?}"
        );
    }
}

#[test]
fn moderation_mutes_bans_and_deletes_and_the_audit_trail_records_it() {
    let server = shared();
    let admin = server.admin();
    let room = create_room(server, "weur");
    let mut moderator = connect_as(server, &room, "mo", "moderator");
    let mut ana = connect_as(server, &room, "ana", "viewer");
    let mut bob = connect_as(server, &room, "bob", "viewer");

    // Mute over the moderator's socket: bob is told, his comment reaches no one.
    let mute = json!({"command": "mute", "user": "bob"});
    moderator
        .send(&ClientFrame::Command {
            client_id: 1,
            command: mute.to_string(),
        })
        .unwrap();
    assert_eq!(answer_of(&mut moderator, 1), Ok(()));
    notice(&mut bob, "muted");
    bob.send(&ClientFrame::Comment {
        client_id: 1,
        text: "hello?".into(),
    })
    .unwrap();
    assert_eq!(answer_of(&mut bob, 1), Err(ErrorCode::Muted));
    let seen = ana.drain(Duration::from_millis(500)).unwrap();
    assert!(
        !seen.iter().any(|e| matches!(e, Event::Action(_))),
        "{seen:?}"
    );

    // Delete: everyone gets the removal.
    ana.send(&ClientFrame::Comment {
        client_id: 1,
        text: "oops".into(),
    })
    .unwrap();
    let seq = match ana.wait_for(WAIT, |e| matches!(e, Event::Ack { client_id: 1, .. })) {
        Ok(Event::Ack { seq: Some(seq), .. }) => seq,
        other => panic!("{other:?}"),
    };
    let reply = admin
        .post(
            &format!("/v1/rooms/{room}/moderation"),
            &json!({"command": "delete_comment", "seq": seq}),
        )
        .unwrap();
    assert_eq!(reply.status, 200, "{reply:?}");
    moderator
        .wait_for(WAIT, |e| {
            matches!(e, Event::Action(a)
            if a.body == ovation_proto::ActionBody::Removed { seq })
        })
        .expect("the removal");

    // Ban: bob's socket closes with `banned`, and a new socket is closed the same way.
    let reply = admin
        .post(
            &format!("/v1/rooms/{room}/moderation"),
            &json!({"command": "ban", "user": "bob"}),
        )
        .unwrap();
    assert_eq!(reply.status, 200, "{reply:?}");
    let code = |socket: &mut Socket| loop {
        match socket.next_event(WAIT) {
            Err(SocketEnd::Closed(code, _)) => break code,
            Err(other) => panic!("{other:?}"),
            Ok(Some(_)) => continue,
            Ok(None) => panic!("still open"),
        }
    };
    assert_eq!(code(&mut bob), 4403);
    let mut again = Socket::connect(&server.base, &room, &token("viewer", "bob", &room), None)
        .expect("the upgrade is answered, then closed");
    assert_eq!(code(&mut again), 4403);

    let reply = admin.get(&format!("/v1/rooms/{room}/audit")).unwrap();
    let commands: Vec<(&str, &str)> = reply.body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["by"].as_str().unwrap(), e["command"].as_str().unwrap()))
        .collect();
    assert_eq!(commands[0], ("mo", "mute"));
    assert_eq!(commands[1].1, "delete_comment");
    assert_eq!(commands[2].1, "ban");
}

/// 2,000 real WebSocket viewers; a poll opens; 70 % vote within one second. Every
/// acknowledged vote is in the result, and the result reaches every viewer within one
/// second of the window closing (server clock).
#[test]
fn a_two_thousand_viewer_vote_burst_is_counted_exactly_and_the_result_is_prompt() {
    // Its own server: the burst must not share the CPU with other tests' rooms.
    let server = Server::start(&scratch_dir("burst"));
    let room = create_room(&server, "weur");
    let config = BurstConfig {
        base: server.base.clone(),
        room,
        viewers: 2_000,
        voting_percent: 70,
        burst_ms: 1_000,
        window_ms: 5_000,
        options: 4,
        seed: 7,
        minter: Minter {
            key: SigningKey::hs256(dev::HS256_SECRET.as_bytes()),
            tenant: dev::TENANT.into(),
        },
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let report = runtime
        .block_on(vote_burst(config, |line| eprintln!("burst: {line}")))
        .unwrap();
    eprintln!("burst report: {}", serde_json::to_string(&report).unwrap());
    assert_eq!(report.connected, 2_000);
    // The burst's shape (the load generator's, not the room's): 70 % are planned within
    // the second; one generator thread sends 1,400 votes, so a few may leave late.
    assert!(report.voted_within_burst_percent >= 65.0, "{report:?}");
    assert_eq!(report.votes_refused, 0);
    assert_eq!(report.votes_acknowledged, report.voters);
    assert!(report.tallies_exact, "{report:?}");
    assert_eq!(report.result_received, 2_000);
    assert!(report.result_delay_ms_last <= 1_000, "{report:?}");
}
