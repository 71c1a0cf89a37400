//! Self-hosting: the same Worker bundle on the open-source workerd runtime alone (no
//! wrangler, no Miniflare), configured by `ovation-selfhost` as `cargo xtask serve` does,
//! with real WebSockets. The core edge tests also run on it: `OVATION_RUNTIME=workerd
//! cargo test -p ovation-tests --test edge` (a stage of `cargo xtask test`).

use ovation_cli::{Api, Socket};
use ovation_proto::{ActionBody, ClientFrame, Event, Resume};
use ovation_tests::{create_room, token, Runtime, Server};
use serde_json::json;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(10);

fn comment_text(event: &Event) -> Option<&str> {
    match event {
        Event::Action(action) => match &action.body {
            ActionBody::Comment { text } => Some(text),
            _ => None,
        },
        _ => None,
    }
}

fn welcome(socket: &mut Socket) -> ovation_proto::Welcome {
    match socket.wait_for(WAIT, |e| matches!(e, Event::Welcome(_))) {
        Ok(Event::Welcome(w)) => w,
        other => panic!("no welcome: {other:?}"),
    }
}

#[test]
fn a_room_survives_kill_9_of_workerd_and_a_restart_on_the_same_data_directory() {
    let data = ovation_tests::scratch_dir("selfhost");
    let mut server = Server::start_on(Runtime::Workerd, &data);
    let room = create_room(&server, "weur");
    let admin = server.admin();
    let put = admin
        .put(
            &format!("/v1/rooms/{room}/parts/banner"),
            &json!({"q": "tea?"}),
        )
        .unwrap();
    assert_eq!(put.status, 200, "{:?}", put.body);

    // Two viewers over real WebSockets: one comments and likes, the other sees it.
    let mut watcher = Socket::connect(
        &server.base,
        &room,
        &token("viewer", "watcher", &room),
        None,
    )
    .unwrap();
    welcome(&mut watcher);
    let mut keeper =
        Socket::connect(&server.base, &room, &token("viewer", "keeper", &room), None).unwrap();
    let epoch = welcome(&mut keeper).epoch;
    keeper
        .send(&ClientFrame::Comment {
            client_id: 1,
            text: "survives kill -9".into(),
        })
        .unwrap();
    keeper
        .send(&ClientFrame::Like {
            client_id: 2,
            count: 4,
        })
        .unwrap();
    keeper
        .wait_for(WAIT, |e| matches!(e, Event::Ack { client_id: 2, .. }))
        .expect("the like is acknowledged");
    let seen = watcher
        .wait_for(WAIT, |e| comment_text(e).is_some())
        .expect("the comment reaches the other viewer");
    assert_eq!(comment_text(&seen), Some("survives kill -9"));
    let before = admin.get(&format!("/v1/rooms/{room}/state")).unwrap().body;
    assert_eq!(before["likes"], 4, "{before}");

    // Every Durable Object class keeps its objects on disk under the data directory.
    let room_objects = data.join("storage/ovation-edge-RoomObject");
    let stored = std::fs::read_dir(&room_objects)
        .unwrap_or_else(|e| panic!("{}: {e}", room_objects.display()))
        .filter_map(|e| e.ok())
        .any(|e| e.file_name().to_string_lossy().ends_with(".sqlite"));
    assert!(
        stored,
        "no room object stored in {}",
        room_objects.display()
    );

    // No close, no flush: the whole process group dies at once.
    server.kill_hard();
    drop((watcher, keeper));

    let server = Server::start_on(Runtime::Workerd, &data);
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
        assert_eq!(before[key], after[key], "{key} changed across kill -9");
    }
    // The action ring survived: a socket resuming from before the comment gets it again,
    // with the room's parts, and the pull transport lists it.
    let mut back = Socket::connect(
        &server.base,
        &room,
        &token("viewer", "keeper", &room),
        Some(Resume {
            epoch,
            action_cursor: 0,
            part_versions: Vec::new(),
        }),
    )
    .unwrap();
    let events = back.drain(Duration::from_millis(800)).unwrap();
    assert!(
        matches!(&events[0], Event::Welcome(w) if w.resumed),
        "{events:?}"
    );
    assert!(
        events
            .iter()
            .filter_map(comment_text)
            .any(|t| t == "survives kill -9"),
        "{events:?}"
    );
    assert!(events.iter().any(
        |e| matches!(e, Event::Part { name, value, .. } if name == "banner" && value.contains("tea"))
    ));
    let viewer = Api::new(&server.base, &token("viewer", "puller", &room));
    let pulled = viewer
        .get(&format!("/v1/rooms/{room}/events?since=0"))
        .unwrap();
    assert_eq!(pulled.status, 200, "{:?}", pulled.body);
    assert!(
        pulled.body["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["text"] == "survives kill -9"),
        "{}",
        pulled.body
    );
    // The tenant's directory (its own Durable Object) still lists the room as live.
    let rooms = admin.get("/v1/rooms?status=live").unwrap().body;
    assert!(
        rooms["rooms"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["room"] == room.as_str()),
        "{rooms}"
    );
}

#[test]
fn without_tenant_keys_workerd_refuses_every_token_with_its_own_code() {
    let data = ovation_tests::scratch_dir("selfhost-nokeys");
    let server = Server::start_on_without_tenant_keys(Runtime::Workerd, &data);
    let reply = server
        .admin()
        .post(
            "/v1/rooms",
            &json!({ "room": "weur-nokeys", "host": "h", "title": "t" }),
        )
        .unwrap();
    assert_eq!(reply.status, 503, "{:?}", reply.body);
    assert_eq!(
        reply.body["code"], "auth_not_configured",
        "{:?}",
        reply.body
    );
}
