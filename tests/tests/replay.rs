//! Replay against the real worker under `wrangler dev` (R2 emulated locally), or with
//! `OVATION_RUNTIME=workerd` on workerd alone (no R2: chunks in the room's storage): a live room
//! with comments, a deleted comment, a poll and a product card, then the room ends; the
//! recording's windows hold exactly what a live viewer saw (no deleted comment), a
//! snapshot in the middle shows the open poll with the tallies of that moment, an ended
//! room's windows come from the Workers cache, and a window past the limit is refused.

use ovation_cli::{Api, Socket};
use ovation_proto::limits::{
    REPLAY_CHUNK_MS, REPLAY_PART_INTERVAL_MS, REPLAY_SEAL_GRACE_MS, REPLAY_WINDOW_MS_MAX,
};
use ovation_proto::{
    Action, ActionBody, ClientFrame, Event, ReplayEventBody, ReplayStatus, ReplayWindow,
};
use ovation_tests::{create_room, now_ms, shared, token, Runtime, Server};
use serde_json::{json, Value};
use std::collections::BTreeMap;
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

/// A comment from `socket`, acknowledged; returns its sequence number.
fn comment(socket: &mut Socket, client_id: u64, text: &str) -> u64 {
    socket
        .send(&ClientFrame::Comment {
            client_id,
            text: text.into(),
        })
        .unwrap();
    let ack = socket
        .wait_for(WAIT, |e| {
            matches!(e, Event::Ack { client_id: c, .. } if *c == client_id)
                || matches!(e, Event::Error { client_id: Some(c), .. } if *c == client_id)
        })
        .unwrap();
    match ack {
        Event::Ack { seq: Some(seq), .. } => seq,
        other => panic!("comment {text:?} refused: {other:?}"),
    }
}

fn vote(socket: &mut Socket, client_id: u64, poll_id: &str, option: u8) {
    socket
        .send(&ClientFrame::Vote {
            client_id,
            poll_id: poll_id.into(),
            option,
        })
        .unwrap();
    let answer = socket
        .wait_for(WAIT, |e| {
            matches!(e, Event::Ack { client_id: c, .. } if *c == client_id)
                || matches!(e, Event::Error { client_id: Some(c), .. } if *c == client_id)
        })
        .unwrap();
    assert!(matches!(answer, Event::Ack { .. }), "vote: {answer:?}");
}

/// What a live viewer saw: every action and every part version, in order.
#[derive(Default)]
struct Seen {
    actions: Vec<Action>,
    parts: Vec<(String, u64, String)>,
}

impl Seen {
    fn take(&mut self, events: Vec<Event>) {
        for event in events {
            match event {
                Event::Action(action) => self.actions.push(action),
                Event::Part {
                    name,
                    version,
                    value,
                } => self.parts.push((name, version, value)),
                _ => {}
            }
        }
    }
}

fn window(api: &Api, room: &str, from: u64, to: u64) -> (ReplayWindow, Option<String>) {
    let reply = api
        .get(&format!("/v1/rooms/{room}/replay?from={from}&to={to}"))
        .unwrap();
    assert_eq!(reply.status, 200, "replay window: {:?}", reply.body);
    let window: ReplayWindow = serde_json::from_value(reply.body).expect("a replay window");
    (window, reply.cache)
}

/// One response header of a GET (the CLI's replies keep only the cache headers).
fn header_of(base: &str, path: &str, token: &str, name: &str) -> Option<String> {
    use std::io::{Read, Write};
    let host = base.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(host).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n\
         Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    let head = answer.split("\r\n\r\n").next().unwrap_or_default();
    head.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.eq_ignore_ascii_case(name)
            .then(|| value.trim().to_owned())
    })
}

fn part_value(window: &ReplayWindow, name: &str) -> Option<Value> {
    let snapshot = window.snapshot.as_ref().expect("a snapshot");
    snapshot
        .parts
        .iter()
        .find(|p| p.name == name)
        .map(|p| serde_json::from_str(&p.value).unwrap())
}

#[test]
fn a_recorded_room_replays_what_live_viewers_saw() {
    let server = shared();
    let admin = server.admin();
    let room = create_room(server, "weur");
    let viewer_api = Api::new(&server.base, &token("viewer", "vera", &room));
    let mut watcher = connect_as(server, &room, "vera", "viewer");
    let mut ana = connect_as(server, &room, "ana", "viewer");
    let mut bob = connect_as(server, &room, "bob", "viewer");
    let mut seen = Seen::default();

    // Comments (within the comment burst of each user).
    let mut comments = Vec::new();
    for i in 0..3 {
        comments.push(comment(&mut ana, 10 + i, &format!("ana says {i}")));
        comments.push(comment(&mut bob, 10 + i, &format!("bob says {i}")));
    }
    // A poll with live tallies and a cue; ana votes, and a moment later bob does.
    let poll = json!({"question": "Which?", "options": ["red", "blue"], "window_ms": 60_000,
                      "tallies_public": true, "cue": "poll-cue"});
    let reply = admin
        .post(&format!("/v1/rooms/{room}/polls"), &poll)
        .unwrap();
    assert_eq!(reply.status, 200, "{reply:?}");
    let poll_id = reply.body["id"].as_str().unwrap().to_owned();
    vote(&mut ana, 1, &poll_id, 0);
    // Past the part interval, so the one-vote tally is recorded on its own.
    std::thread::sleep(Duration::from_millis(REPLAY_PART_INTERVAL_MS + 300));
    let one_vote_ms = now_ms();
    std::thread::sleep(Duration::from_millis(300));
    vote(&mut bob, 1, &poll_id, 1);

    // A moderator deletes one of bob's comments.
    let deleted = comments[1];
    let reply = admin
        .post(
            &format!("/v1/rooms/{room}/moderation"),
            &json!({"command": "delete_comment", "seq": deleted}),
        )
        .unwrap();
    assert_eq!(reply.status, 200, "{reply:?}");

    // While live, the recording is readable: the comments so far, the deleted one gone.
    let (live, _) = window(&viewer_api, &room, now_ms() - 60_000, now_ms());
    assert_eq!(live.status, ReplayStatus::Live);
    let live_comments: Vec<u64> = live
        .events
        .iter()
        .filter_map(|e| match &e.body {
            ReplayEventBody::Action(a) => Some(a.seq),
            _ => None,
        })
        .collect();
    assert!(
        comments
            .iter()
            .filter(|s| **s != deleted)
            .all(|s| live_comments.contains(s)),
        "live recording {live_comments:?} misses some of {comments:?}"
    );
    assert!(!live_comments.contains(&deleted));

    // A product card with a cue, the poll closed, and a few more comments.
    let pin = json!({"id": "red-1", "title": "Red", "price": "€9", "cue": "buy-cue",
        "image_url": "https://example.com/r.jpg", "link": "https://example.com/r"});
    let reply = admin
        .post(&format!("/v1/rooms/{room}/products"), &pin)
        .unwrap();
    assert_eq!(reply.status, 200, "{reply:?}");
    let reply = admin
        .post(
            &format!("/v1/rooms/{room}/polls/{poll_id}/close"),
            &json!({}),
        )
        .unwrap();
    assert_eq!(reply.status, 200, "{reply:?}");
    std::thread::sleep(Duration::from_millis(1_100));
    comments.push(comment(&mut ana, 20, "after the poll"));

    seen.take(watcher.drain(Duration::from_millis(500)).unwrap());
    let reply = admin
        .post(&format!("/v1/rooms/{room}/end"), &json!({}))
        .unwrap();
    assert_eq!(reply.status, 200, "{reply:?}");
    let started_ms = reply.body["replay"]["from_ms"].as_u64().expect("from_ms");
    let ended_ms = reply.body["replay"]["to_ms"].as_u64().expect("to_ms");
    seen.take(
        watcher
            .drain(Duration::from_millis(300))
            .unwrap_or_default(),
    );

    // The whole recording, in chunk-aligned windows of two chunks.
    let mut recorded = Vec::new();
    let mut from = started_ms;
    while from <= ended_ms {
        let (w, _) = window(&viewer_api, &room, from, from + 2 * REPLAY_CHUNK_MS);
        assert_eq!(w.status, ReplayStatus::Ended);
        assert_eq!((w.started_ms, w.ended_ms), (started_ms, Some(ended_ms)));
        assert_eq!(w.truncated_at_ms, None);
        assert_eq!(w.sampled_out, 0);
        recorded.extend(w.events);
        from += 2 * REPLAY_CHUNK_MS;
    }

    // Actions: exactly the live viewer's, less the deleted comment and its removal.
    let live_actions: Vec<&Action> = seen
        .actions
        .iter()
        .filter(|a| a.seq != deleted && !matches!(a.body, ActionBody::Removed { .. }))
        .collect();
    let replay_actions: Vec<&Action> = recorded
        .iter()
        .filter_map(|e| match &e.body {
            ReplayEventBody::Action(a) => Some(a),
            _ => None,
        })
        .collect();
    assert_eq!(replay_actions, live_actions, "the recording's actions");
    assert!(
        seen.actions.iter().any(|a| a.seq == deleted),
        "live viewers saw it"
    );
    assert!(replay_actions.iter().all(|a| a.seq != deleted));
    for event in &recorded {
        if let ReplayEventBody::Action(a) = &event.body {
            assert_eq!(event.ts_ms, a.ts_ms, "recorded at its server time");
        }
    }

    // Parts: a recorded version the watcher got live has the value it got (versions
    // from before it joined, such as the room part's first, it never saw), and each
    // part's last live version is recorded.
    let live_parts: BTreeMap<(String, u64), String> = seen
        .parts
        .iter()
        .map(|(n, v, value)| ((n.clone(), *v), value.clone()))
        .collect();
    let mut last_recorded: BTreeMap<String, u64> = BTreeMap::new();
    for event in &recorded {
        if let ReplayEventBody::Part(p) = &event.body {
            if let Some(value) = live_parts.get(&(p.name.clone(), p.version)) {
                assert_eq!(value, &p.value, "part {} v{}", p.name, p.version);
            }
            last_recorded.insert(p.name.clone(), p.version);
            if p.name == "poll" {
                assert_eq!(event.cue.as_deref(), Some("poll-cue"));
            }
            if p.name == "product" && p.value != "null" {
                let v: Value = serde_json::from_str(&p.value).unwrap();
                if !v["pinned"].is_null() {
                    assert_eq!(event.cue.as_deref(), Some("buy-cue"));
                }
            }
        }
    }
    let mut last_live: BTreeMap<String, u64> = BTreeMap::new();
    for (name, version, _) in &seen.parts {
        last_live.insert(name.clone(), *version);
    }
    for name in ["poll", "product"] {
        assert_eq!(
            last_recorded.get(name),
            last_live.get(name),
            "{name}: the last version live viewers saw is recorded"
        );
    }

    // A viewer starting between the two votes sees the open poll with one vote.
    let (mid, _) = window(&viewer_api, &room, one_vote_ms, one_vote_ms + 1_000);
    let poll = part_value(&mid, "poll").expect("the poll in the snapshot");
    assert_eq!(poll["phase"], "open", "{poll}");
    assert_eq!(poll["tallies"], json!([1, 0]), "{poll}");
    // At the end: the poll's result with both votes, and the product card.
    let (last, _) = window(&viewer_api, &room, ended_ms, ended_ms + 1_000);
    let poll = part_value(&last, "poll").expect("the poll at the end");
    assert_eq!(poll["tallies"], json!([1, 1]), "{poll}");
    assert_ne!(poll["phase"], "open", "{poll}");
    let product = part_value(&last, "product").expect("the product at the end");
    assert_eq!(product["pinned"]["id"], "red-1");

    // An ended room's window that is wholly past is final: the second ask is served by
    // the Workers cache (workerd alone has no cache configured: there the room answers
    // both, the same).
    let (first_window, first) = window(&viewer_api, &room, started_ms, ended_ms);
    let (second_window, second) = window(&viewer_api, &room, started_ms, ended_ms);
    assert_eq!(first_window, second_window);
    assert_eq!(first.as_deref(), Some("miss"));
    if server.runtime == Runtime::WranglerDev {
        assert_eq!(second.as_deref(), Some("hit"));
    }
    // The chunks are in R2 under wrangler dev (its local emulation of the binding), in
    // the room object's own storage on workerd alone (no R2 there).
    let store = header_of(
        &server.base,
        &format!(
            "/v1/rooms/{room}/replay?from={started_ms}&to={}",
            started_ms + 1
        ),
        &viewer_api.token,
        "x-ovation-replay-store",
    );
    let expected = match server.runtime {
        Runtime::WranglerDev => "r2",
        Runtime::Workerd => "object",
    };
    assert_eq!(store.as_deref(), Some(expected));

    // A window past the limit is refused with its code; the limit itself is taken.
    let path = |len: u64| {
        format!(
            "/v1/rooms/{room}/replay?from={started_ms}&to={}",
            started_ms + len
        )
    };
    let reply = viewer_api.get(&path(REPLAY_WINDOW_MS_MAX + 1)).unwrap();
    assert_eq!(reply.status, 400, "{reply:?}");
    assert_eq!(reply.body["code"], "replay_window_too_long");
    assert_eq!(
        viewer_api.get(&path(REPLAY_WINDOW_MS_MAX)).unwrap().status,
        200
    );
    let reply = viewer_api
        .get(&format!("/v1/rooms/{room}/replay?from=abc"))
        .unwrap();
    assert_eq!(reply.body["code"], "replay_window_required", "{reply:?}");
    // A token for another room reads nothing of this one.
    let stranger = Api::new(&server.base, &token("viewer", "vera", "weur-elsewhere"));
    assert_eq!(stranger.get(&path(1_000)).unwrap().status, 403);

    // The tenant's room list shows it archived with its replay window.
    let reply = admin.get("/v1/rooms?status=archived").unwrap();
    assert_eq!(reply.status, 200, "{reply:?}");
    let entry = reply.body["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["room"] == room.as_str())
        .cloned()
        .expect("the ended room is listed as archived");
    assert_eq!(entry["status"], "archived");
    assert_eq!(entry["replay"]["from_ms"], started_ms);
    assert_eq!(entry["replay"]["to_ms"], ended_ms);
    let live_list = admin.get("/v1/rooms").unwrap();
    assert!(live_list.body["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["room"] != room.as_str()));
}

/// A window of an ended room that reaches past now is answered but not cached: the room
/// opened again records into it, and once it ended again the window shows what the new
/// opening recorded there. Before, the first answer was cached as final for a year, and
/// every later viewer saw the window empty.
#[test]
fn a_window_reaching_past_the_end_shows_the_room_opened_again() {
    let server = shared();
    let admin = server.admin();
    let (room, _, started_ms, ended_ms) = a_room_with_one_comment_ended(server);
    let viewer_api = Api::new(&server.base, &token("viewer", "vic", &room));
    assert!(started_ms <= ended_ms);
    // Long enough for the reads, the reopening, the comment and the end on a loaded
    // machine: the comment must fall inside the window.
    let (from, to) = (ended_ms + 1, now_ms() + 8_000);
    for _ in 0..2 {
        let (_, cache) = window(&viewer_api, &room, from, to);
        assert_ne!(
            cache.as_deref(),
            Some("hit"),
            "not final: it reaches past now"
        );
    }
    let reopened = admin
        .post("/v1/rooms", &json!({ "room": room, "host": "host-1" }))
        .unwrap();
    assert_eq!(reopened.status, 201, "{:?}", reopened.body);
    let mut ana = connect_as(server, &room, "ana", "viewer");
    let seq = comment(&mut ana, 1, "the second opening");
    let ended = admin
        .post(&format!("/v1/rooms/{room}/end"), &json!({}))
        .unwrap();
    assert_eq!(ended.status, 200, "{:?}", ended.body);
    assert!(
        now_ms() < to,
        "the set-up outlasted the window: the test proves nothing"
    );
    std::thread::sleep(Duration::from_millis(to.saturating_sub(now_ms()) + 100));
    let (late, _) = window(&viewer_api, &room, from, to);
    assert!(
        has_comment(&late, seq),
        "the new opening's comment is in the window: {late:?}"
    );
}

/// Ends a room with one acknowledged comment on `server`; returns the room, the
/// comment's sequence number and the recording's start and end.
fn a_room_with_one_comment_ended(server: &Server) -> (String, u64, u64, u64) {
    let room = create_room(server, "weur");
    let mut ana = connect_as(server, &room, "ana", "viewer");
    let seq = comment(&mut ana, 1, "kept for the recording");
    let (started_ms, ended_ms) = end_room(server, &room);
    (room, seq, started_ms, ended_ms)
}

/// Ends `room`; returns its recording's start and end (`replay.from_ms`, `to_ms`).
fn end_room(server: &Server, room: &str) -> (u64, u64) {
    let reply = server
        .admin()
        .post(&format!("/v1/rooms/{room}/end"), &json!({}))
        .unwrap();
    assert_eq!(reply.status, 200, "{reply:?}");
    let started_ms = reply.body["replay"]["from_ms"].as_u64().expect("from_ms");
    let ended_ms = reply.body["replay"]["to_ms"].as_u64().expect("to_ms");
    (started_ms, ended_ms)
}

fn has_comment(window: &ReplayWindow, seq: u64) -> bool {
    window
        .events
        .iter()
        .any(|e| matches!(&e.body, ReplayEventBody::Action(a) if a.seq == seq))
}

/// Nothing lost silently: while a sealed chunk cannot be written, every window that
/// needs it names it in `missing_chunks` and is not cached as final; a write that failed
/// once is retried and the window is then complete.
#[test]
fn a_chunk_the_store_refuses_is_retried_and_named_missing_until_it_is_stored() {
    // Every chunk write fails: the comment's chunk is named missing, and never cached.
    let data = ovation_tests::scratch_dir("replay-writes-failing");
    let server =
        Server::start_with_vars(&data, &[("OVATION_FAULT_REPLAY_WRITES_FAILING", "1000000")]);
    let (room, seq, started_ms, ended_ms) = a_room_with_one_comment_ended(&server);
    let viewer_api = Api::new(&server.base, &token("viewer", "vic", &room));
    for _ in 0..2 {
        let (w, cache) = window(&viewer_api, &room, started_ms, ended_ms + 1);
        assert_eq!(w.missing_chunks, vec![0], "{w:?}");
        assert!(!has_comment(&w, seq));
        assert_ne!(
            cache.as_deref(),
            Some("hit"),
            "an incomplete window is not cached"
        );
    }
    drop(server);

    // The first write fails, the retry after the next pump stores it: complete.
    let data = ovation_tests::scratch_dir("replay-write-fails-once");
    let server = Server::start_with_vars(&data, &[("OVATION_FAULT_REPLAY_WRITES_FAILING", "1")]);
    let (room, seq, started_ms, ended_ms) = a_room_with_one_comment_ended(&server);
    let viewer_api = Api::new(&server.base, &token("viewer", "vic", &room));
    let (w, _) = window(&viewer_api, &room, started_ms, ended_ms + 1);
    assert!(w.missing_chunks.is_empty(), "{w:?}");
    assert!(
        has_comment(&w, seq),
        "the retried chunk holds the comment: {w:?}"
    );
}

/// A chunk readers were served never changes, even when the room object is killed
/// between the chunk's write and its save of the recorder: the restarted object restores
/// the save before and seals the chunk again, with what the room did in between (here a
/// like total) stamped at the wake, past the chunk. The first version stays (a chunk is
/// written once), in R2 under wrangler dev and in the object's own storage on workerd.
/// Every recorder save after the first is made to fail (`OVATION_FAULT_REPLAY_SAVES_
/// FAILING_AFTER`), so the kill lands after the chunk's write and before any save of it.
fn a_chunk_written_before_a_kill_is_the_one_read_after(runtime: Runtime) {
    let data = ovation_tests::scratch_dir("replay-chunk-kill");
    let mut server = Server::start_on_with_vars(
        runtime,
        &data,
        &[("OVATION_FAULT_REPLAY_SAVES_FAILING_AFTER", "1")],
    );
    let room = create_room(&server, "weur");
    let viewer_api = Api::new(&server.base, &token("viewer", "vic", &room));
    let now = now_ms();
    let (live, _) = window(&viewer_api, &room, now, now + 1);
    let started_ms = live.started_ms;
    let mut ana = connect_as(&server, &room, "ana", "viewer");
    let seq = comment(&mut ana, 1, "before the kill");
    ana.send(&ClientFrame::Like {
        client_id: 2,
        count: 3,
    })
    .unwrap();
    ana.wait_for(WAIT, |e| matches!(e, Event::Likes { total: 3 }))
        .expect("the like total");
    let sealed_ms = started_ms + REPLAY_CHUNK_MS + REPLAY_SEAL_GRACE_MS + 200;
    std::thread::sleep(Duration::from_millis(sealed_ms.saturating_sub(now_ms())));
    let chunk_0 = (started_ms, started_ms + REPLAY_CHUNK_MS);
    // This read seals chunk 0 and writes it; the recorder's save after it fails.
    let (first, _) = window(&viewer_api, &room, chunk_0.0, chunk_0.1);
    assert!(first.missing_chunks.is_empty(), "{first:?}");
    assert!(has_comment(&first, seq), "{first:?}");
    let likes_in_chunk_0 = |w: &ReplayWindow| {
        w.events
            .iter()
            .any(|e| matches!(e.body, ReplayEventBody::Likes { total: 3 }))
    };
    assert!(
        likes_in_chunk_0(&first),
        "the like total in chunk 0: {first:?}"
    );
    drop(ana);
    server.kill_hard();

    let server = Server::start_on(runtime, &data);
    let viewer_api = Api::new(&server.base, &token("viewer", "vic", &room));
    let (after, _) = window(&viewer_api, &room, chunk_0.0, chunk_0.1);
    assert_eq!(
        (&after.snapshot, &after.events),
        (&first.snapshot, &first.events),
        "chunk 0 changed after the restart: {after:?}"
    );
    assert!(likes_in_chunk_0(&after));
    // Logged (the log may reach its file a little after the answer).
    let logged = (0..50).any(|_| {
        let log = std::fs::read_to_string(&server.log).unwrap_or_default();
        log.contains("replay_chunk_kept") || {
            std::thread::sleep(Duration::from_millis(100));
            false
        }
    });
    assert!(logged, "the object sealed chunk 0 again and kept the first");
}

#[test]
fn a_chunk_written_to_r2_before_a_kill_is_the_one_read_after() {
    a_chunk_written_before_a_kill_is_the_one_read_after(Runtime::WranglerDev);
}

#[test]
fn a_chunk_written_to_the_objects_storage_before_a_kill_is_the_one_read_after() {
    a_chunk_written_before_a_kill_is_the_one_read_after(Runtime::Workerd);
}

/// A window answer reads at most `REPLAY_WINDOW_READ_BYTES_MAX` of stored chunks (here
/// lowered to one byte, so the first chunk alone is read): it stops at the start of the
/// chunk it did not read and says so with its `to_ms`, and the window asked on from there
/// holds the rest. Nothing is lost between the two.
#[test]
fn a_window_past_its_read_bound_stops_at_a_chunk_and_the_next_holds_the_rest() {
    let data = ovation_tests::scratch_dir("replay-read-bound");
    let server = Server::start_with_vars(&data, &[("OVATION_REPLAY_WINDOW_READ_BYTES", "1")]);
    let room = create_room(&server, "weur");
    let mut ana = connect_as(&server, &room, "ana", "viewer");
    let first = comment(&mut ana, 1, "in the first chunk");
    std::thread::sleep(Duration::from_millis(REPLAY_CHUNK_MS + 500));
    let second = comment(&mut ana, 2, "in a later chunk");
    let (started_ms, ended_ms) = end_room(&server, &room);
    let viewer_api = Api::new(&server.base, &token("viewer", "vic", &room));
    let (cut, _) = window(&viewer_api, &room, started_ms, ended_ms + 1);
    assert_eq!(cut.to_ms, started_ms + REPLAY_CHUNK_MS, "{cut:?}");
    assert!(
        has_comment(&cut, first) && !has_comment(&cut, second),
        "{cut:?}"
    );
    let mut from = cut.to_ms;
    let mut rest = Vec::new();
    while from <= ended_ms {
        let (next, _) = window(&viewer_api, &room, from, ended_ms + 1);
        assert!(next.to_ms > from, "each answer moves on: {next:?}");
        rest.push(has_comment(&next, second));
        from = next.to_ms;
    }
    assert_eq!(rest.iter().filter(|&&has| has).count(), 1, "{rest:?}");
}

/// A big room's viewers sit on shard objects; their comments reach the room through the
/// relay and are recorded like any other (the recording is what everyone saw).
#[test]
fn a_sharded_rooms_comments_are_recorded() {
    let server = shared();
    let room = ovation_tests::create_big_room(server, 10_000);
    let mut seqs = Vec::new();
    let mut sockets = Vec::new();
    for (i, user) in ["ana", "bo", "cy", "di"].into_iter().enumerate() {
        let mut socket = connect_as(server, &room, user, "viewer");
        seqs.push(comment(&mut socket, i as u64 + 1, &format!("from {user}")));
        sockets.push(socket);
    }
    // The viewers' sockets are on the shards: the room object holds none of them.
    let stats = server
        .admin()
        .get(&format!("/v1/rooms/{room}/stats"))
        .unwrap();
    assert_eq!(stats.body["sockets_held"], 0, "{:?}", stats.body);
    let (started_ms, ended_ms) = end_room(server, &room);
    let viewer_api = Api::new(&server.base, &token("viewer", "vic", &room));
    let (w, _) = window(&viewer_api, &room, started_ms, ended_ms + 1);
    assert!(w.missing_chunks.is_empty(), "{w:?}");
    for seq in seqs {
        assert!(has_comment(&w, seq), "comment {seq} recorded: {w:?}");
    }
}
