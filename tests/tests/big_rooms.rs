//! Big rooms against the real worker under `wrangler dev`: a room created with a large
//! expected audience puts its viewers on Shard Durable Objects (placed by hash of user
//! id), and everything still works across shards over real WebSockets: comments, likes,
//! the online sum, votes counted once, peer messages to one user, growing the shard
//! count while live, and bans.

use ovation_cli::{Socket, SocketEnd};
use ovation_proto::limits::ROUTER_SHARD_ROUTE_TTL_MS;
use ovation_proto::{shard_of, ActionBody, ClientFrame, Event, Resume};
use ovation_tests::{create_big_room, shared, token, Server};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(15);

fn connect(server: &Server, room: &str, user: &str) -> Socket {
    let mut socket = Socket::connect(&server.base, room, &token("viewer", user, room), None)
        .unwrap_or_else(|e| panic!("connect {user}: {e:?}"));
    socket
        .wait_for(WAIT, |e| matches!(e, Event::Welcome(_)))
        .unwrap_or_else(|e| panic!("{user} welcome: {e:?}"));
    socket
}

/// `GET /v1/rooms/{room}/{what}` as an admin: the body of a 200.
fn admin_get(server: &Server, room: &str, what: &str) -> Value {
    let reply = server
        .admin()
        .get(&format!("/v1/rooms/{room}/{what}"))
        .unwrap_or_else(|e| panic!("{what}: {e:?}"));
    assert_eq!(reply.status, 200, "{what}: {:?}", reply.body);
    reply.body
}

fn state(server: &Server, room: &str) -> Value {
    admin_get(server, room, "state")
}

fn room_stats(server: &Server, room: &str) -> Value {
    admin_get(server, room, "stats")
}

/// Users named so that each of `shards` shards gets `per_shard` of them.
fn users_over_shards(prefix: &str, shards: u16, per_shard: usize) -> Vec<String> {
    let mut counts = vec![0; usize::from(shards)];
    let mut users = Vec::new();
    for i in 0.. {
        let user = format!("{prefix}-{i}");
        let shard = usize::from(shard_of(&user, shards));
        if counts[shard] < per_shard {
            counts[shard] += 1;
            users.push(user);
        }
        if counts.iter().all(|&c| c == per_shard) {
            return users;
        }
    }
    unreachable!()
}

fn wait_online(server: &Server, room: &str, expected: u64) {
    let started = Instant::now();
    loop {
        let online = state(server, room)["online"].as_u64().unwrap_or(0);
        if online == expected {
            return;
        }
        assert!(
            started.elapsed() < WAIT,
            "online stayed {online}, expected {expected}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn comment_text(event: &Event) -> Option<&str> {
    match event {
        Event::Action(action) => match &action.body {
            ActionBody::Comment { text } => Some(text),
            _ => None,
        },
        _ => None,
    }
}

/// `sockets[from]` comments `text`, and every socket (on every shard, the sender's too)
/// gets it.
fn comment_reaches_all(sockets: &mut [Socket], from: usize, client_id: u64, text: &str) {
    sockets[from]
        .send(&ClientFrame::Comment {
            client_id,
            text: text.into(),
        })
        .unwrap();
    for (i, socket) in sockets.iter_mut().enumerate() {
        socket
            .wait_for(WAIT, |e| comment_text(e) == Some(text))
            .unwrap_or_else(|e| panic!("viewer {i} did not get {text:?}: {e:?}"));
    }
}

#[test]
fn a_sharded_room_works_across_shards() {
    let server = shared();
    // 12,000 expected viewers → 3 shards (one per 5,000).
    let room = create_big_room(server, 12_000);
    let users = users_over_shards(&room, 3, 2);
    let mut sockets: Vec<Socket> = users.iter().map(|u| connect(server, &room, u)).collect();
    wait_online(server, &room, users.len() as u64);

    // The viewers' sockets are on their shards (the Worker connects them there): the room
    // object holds none of them.
    let stats = room_stats(server, &room);
    assert_eq!(stats["sockets_held"], 0, "{stats}");

    // A comment from a viewer on one shard reaches viewers on every shard, once.
    sockets[0]
        .send(&ClientFrame::Comment {
            client_id: 1,
            text: "hello from shard".into(),
        })
        .unwrap();
    sockets[0]
        .wait_for(WAIT, |e| {
            matches!(
                e,
                Event::Ack {
                    client_id: 1,
                    seq: Some(_)
                }
            )
        })
        .expect("the room acknowledges a comment that came through a shard");
    for (user, socket) in users.iter().zip(sockets.iter_mut()) {
        socket
            .wait_for(WAIT, |e| comment_text(e) == Some("hello from shard"))
            .unwrap_or_else(|e| panic!("{user} did not get the comment: {e:?}"));
    }

    // Likes are counted on the shards and summed by the room.
    sockets[3]
        .send(&ClientFrame::Like {
            client_id: 2,
            count: 5,
        })
        .unwrap();
    sockets[5]
        .wait_for(WAIT, |e| matches!(e, Event::Likes { total: 5 }))
        .expect("the like total reaches another shard");

    // A poll: every viewer votes, some twice; each user is counted once.
    let poll_id = open_poll(server, &room);
    for (i, socket) in sockets.iter_mut().enumerate() {
        vote_acked(socket, &poll_id, 10, (i % 2) as u8);
        if i % 2 == 0 {
            // Again under a new client id (a double tap): acknowledged, not counted.
            let again = ClientFrame::Vote {
                client_id: 11,
                poll_id: poll_id.clone(),
                option: 1,
            };
            socket.send(&again).unwrap();
            socket
                .wait_for(WAIT, |e| matches!(e, Event::Ack { client_id: 11, .. }))
                .expect("repeat ack");
        }
    }
    let tallies = close_poll(server, &room, &poll_id);
    assert_eq!(tallies, json!([3, 3]), "each user counted once");

    // A peer message reaches the one user it is for, on their shard.
    let target = users[4].clone();
    let reply = server
        .admin()
        .post(
            &format!("/v1/rooms/{room}/direct"),
            &json!({ "user": target, "payload": { "secret": 1 } }),
        )
        .expect("direct");
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    sockets[4]
        .wait_for(
            WAIT,
            |e| matches!(e, Event::Direct { payload, .. } if payload.contains("secret")),
        )
        .expect("the target gets its peer message");
    for (i, socket) in sockets.iter_mut().enumerate() {
        if i == 4 {
            continue;
        }
        let events = socket.drain(Duration::from_millis(300)).unwrap();
        assert!(
            !events
                .iter()
                .any(|e| matches!(e, Event::Direct { payload, .. } if payload.contains("secret"))),
            "{} got someone else's peer message",
            users[i]
        );
    }

    // Growing to 5 shards while live: old sockets stay, new viewers land on new shards
    // (the router that grew the room forgets the count it remembered), and everyone still
    // gets everything.
    let reply = server
        .admin()
        .post(&format!("/v1/rooms/{room}/shards"), &json!({ "shards": 5 }))
        .expect("grow");
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(reply.body["shards"], 5);
    let newcomers: Vec<String> = (0..)
        .map(|i| format!("{room}-new-{i}"))
        .filter(|u| shard_of(u, 5) >= 3)
        .take(2)
        .collect();
    let routed_before = routed(server, &room);
    for user in &newcomers {
        sockets.push(connect(server, &room, user));
    }
    assert!(
        routed(server, &room) > routed_before,
        "the router that grew the room asked it where a newcomer goes"
    );
    wait_online(server, &room, (users.len() + newcomers.len()) as u64);
    let last = sockets.len() - 1;
    comment_reaches_all(&mut sockets, last, 3, "from a new shard");

    // A ban closes the user's socket on its shard with 4403 and refuses them after.
    let banned = users[2].clone();
    let reply = server
        .admin()
        .post(
            &format!("/v1/rooms/{room}/moderation"),
            &json!({ "command": "ban", "user": banned }),
        )
        .expect("ban");
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    match sockets[2].wait_for(WAIT, |_| false) {
        Err(SocketEnd::Closed(code, _)) => assert_eq!(code, 4403),
        other => panic!("the banned viewer's socket stayed open: {other:?}"),
    }
    let mut again = Socket::connect(&server.base, &room, &token("viewer", &banned, &room), None)
        .expect("the upgrade is answered");
    match again.wait_for(WAIT, |_| false) {
        Err(SocketEnd::Closed(code, _)) => assert_eq!(code, 4403),
        other => panic!("a banned viewer got back in: {other:?}"),
    }

    let stats = room_stats(server, &room);
    assert!(
        stats["shard_batches_in"].as_u64().unwrap() > 0
            && stats["shard_batches_out"].as_u64().unwrap() > 0,
        "the viewers' traffic went through shards: {stats}"
    );
}

/// A first join that says its Hello in the upgrade (the SDK's way) is answered by its
/// shard as by the room: Welcome with no frame sent, then comments across shards.
#[test]
fn a_hello_said_in_the_upgrade_is_answered_by_the_shard() {
    let server = shared();
    // 12,000 expected viewers → 3 shards; two users on different ones.
    let room = create_big_room(server, 12_000);
    let users: Vec<String> = users_over_shards(&room, 3, 1).into_iter().take(2).collect();
    let mut sockets: Vec<Socket> = users
        .iter()
        .map(|user| {
            let mut socket = Socket::open_with_query(
                &server.base,
                &room,
                &token("viewer", user, &room),
                ovation_proto::UPGRADE_HELLO_QUERY,
            )
            .unwrap_or_else(|e| panic!("open {user}: {e:?}"));
            socket
                .wait_for(WAIT, |e| matches!(e, Event::Welcome(_)))
                .unwrap_or_else(|e| panic!("{user} welcome: {e:?}"));
            socket
        })
        .collect();
    sockets[0]
        .send(&ClientFrame::Comment {
            client_id: 1,
            text: "across".into(),
        })
        .unwrap();
    sockets[1]
        .wait_for(WAIT, |e| {
            matches!(e, Event::Action(a) if a.body == ActionBody::Comment { text: "across".into() })
        })
        .expect("the comment reaches the other shard's viewer");
}

/// What the room object has answered in this room's viewers' upgrades: a shard for each
/// (`RoomStats::sockets_routed_to_shards`).
/// Ends `room` (each of `sockets` is told) and opens it again for `expected_audience`
/// viewers: the new opening's epoch.
fn end_and_open_again(
    server: &Server,
    room: &str,
    sockets: &mut [Socket],
    expected_audience: u64,
) -> u64 {
    let reply = server
        .admin()
        .post(&format!("/v1/rooms/{room}/end"), &json!({}))
        .expect("end");
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    for socket in sockets.iter_mut() {
        match socket.wait_for(WAIT, |e| matches!(e, Event::RoomEnded)) {
            Ok(_) | Err(SocketEnd::Closed(4410, _)) => {}
            other => panic!("a viewer was not told the room ended: {other:?}"),
        }
    }
    let reply = server
        .admin()
        .post(
            "/v1/rooms",
            &json!({ "room": room, "host": "host-1", "title": "again",
                     "expected_audience": expected_audience }),
        )
        .expect("open again");
    assert_eq!(reply.status, 201, "{:?}", reply.body);
    reply.body["epoch"].as_u64().expect("epoch")
}

/// Opens a two-option poll in `room` (admin API): its id.
fn open_poll(server: &Server, room: &str) -> String {
    let reply = server
        .admin()
        .post(
            &format!("/v1/rooms/{room}/polls"),
            &json!({ "question": "Which?", "options": ["a", "b"], "window_ms": 60_000 }),
        )
        .expect("poll");
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    reply.body["id"].as_str().unwrap().to_owned()
}

/// Once `socket` has the poll part, votes `option` under `client_id` and waits for the ack.
fn vote_acked(socket: &mut Socket, poll_id: &str, client_id: u64, option: u8) {
    socket
        .wait_for(
            WAIT,
            |e| matches!(e, Event::Part { name, .. } if name == "poll"),
        )
        .expect("poll part");
    let vote = ClientFrame::Vote {
        client_id,
        poll_id: poll_id.to_owned(),
        option,
    };
    socket.send(&vote).unwrap();
    socket
        .wait_for(
            WAIT,
            |e| matches!(e, Event::Ack { client_id: c, .. } if *c == client_id),
        )
        .expect("vote ack");
}

/// Closes the poll: its final tallies.
fn close_poll(server: &Server, room: &str, poll_id: &str) -> Value {
    let reply = server
        .admin()
        .post(
            &format!("/v1/rooms/{room}/polls/{poll_id}/close"),
            &json!({}),
        )
        .expect("close");
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    reply.body["tallies"].clone()
}

fn routed(server: &Server, room: &str) -> u64 {
    room_stats(server, room)["sockets_routed_to_shards"]
        .as_u64()
        .expect("counted")
}

/// Once a big room's object has named its shard count, the router remembers it
/// (`ovation_room::ShardRoutes`): later viewers' upgrades go straight to their shards and
/// the room object answers none of them. The memory is of one opening of the room: after
/// the room ended and opened again with more shards, a shard sends an upgrade remembered
/// from the old opening back (421: it holds the new epoch) and the router asks the room
/// object, so a viewer lands where the new room looks for them.
#[test]
fn the_router_remembers_a_big_rooms_shard_count_for_one_opening_of_the_room() {
    let server = shared();
    // 6,000 expected viewers → 2 shards.
    let room = create_big_room(server, 6_000);
    let started = Instant::now();
    // One viewer per shard first (a Welcome needs the room's state, so each shard then
    // has it and vouches for the room), then two more per shard.
    let firsts = users_over_shards(&format!("{room}-a"), 2, 1);
    let mut sockets: Vec<Socket> = firsts.iter().map(|u| connect(server, &room, u)).collect();
    let routed_first = routed(server, &room);
    assert!(
        (1..=2).contains(&routed_first),
        "the first join asks the room object (and one per shard still without state): \
         {routed_first}"
    );
    let rest = users_over_shards(&format!("{room}-b"), 2, 3);
    sockets.extend(rest.iter().map(|u| connect(server, &room, u)));
    wait_online(server, &room, (firsts.len() + rest.len()) as u64);
    assert!(
        started.elapsed() < Duration::from_millis(ROUTER_SHARD_ROUTE_TTL_MS),
        "too slow: the router's memory expired, so the test proved nothing"
    );
    assert_eq!(
        routed(server, &room),
        routed_first,
        "the later joins went straight to their shards"
    );
    comment_reaches_all(&mut sockets, 0, 1, "remembered");

    // The router's memory made fresh (growing to the same count forgets it; the next
    // join asks the room object), so what follows runs within its TTL.
    let reply = server
        .admin()
        .post(&format!("/v1/rooms/{room}/shards"), &json!({ "shards": 2 }))
        .expect("same count");
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let remembered_at = Instant::now();
    let routed_before = routed(server, &room);
    sockets.push(connect(server, &room, &format!("{room}-c")));
    assert_eq!(routed(server, &room), routed_before + 1);

    // The room ends (its shards learn it: their viewers are told) and opens again with
    // 3 shards: a new epoch, another count.
    let epoch = end_and_open_again(server, &room, &mut sockets, 12_000);
    // Its first batches (the new epoch's state) reach its shards.
    let waited = Instant::now();
    while room_stats(server, &room)["shard_batches_out"]
        .as_u64()
        .unwrap_or(0)
        < 3
    {
        assert!(
            waited.elapsed() < WAIT,
            "the new room sent its shards nothing"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // The router still remembers 2 shards of the old epoch: it sends the first of these
    // viewers to shard 0, now the new room's (another epoch), where the new room looks
    // for them on shard 2 (jump hashing moves only keys to the new shard). The shard
    // sends it back; the router asks the room object and learns the new opening, by
    // which it places the second (from shard 1 under the old count) itself.
    let moved: Vec<String> = [0, 1]
        .map(|from| {
            (0..)
                .map(|i| format!("{room}-moved-{from}-{i}"))
                .find(|u| shard_of(u, 2) == from && shard_of(u, 3) == 2)
                .expect("a user")
        })
        .into();
    for user in &moved {
        let mut socket = Socket::connect(&server.base, &room, &token("viewer", user, &room), None)
            .expect("the upgrade is answered");
        match socket.wait_for(WAIT, |e| matches!(e, Event::Welcome(_))) {
            Ok(Event::Welcome(welcome)) => assert_eq!(welcome.epoch, epoch, "{user}"),
            other => panic!("{user} was not welcomed by the room opened again: {other:?}"),
        }
        assert!(
            *user != moved[0]
                || remembered_at.elapsed() < Duration::from_millis(ROUTER_SHARD_ROUTE_TTL_MS),
            "too slow: the router's memory expired before the room opened again, so the \
             test proved nothing"
        );
        // Their shard is the one the room sends their peer messages to.
        let reply = server
            .admin()
            .post(
                &format!("/v1/rooms/{room}/direct"),
                &json!({ "user": user, "payload": { "for": user } }),
            )
            .expect("direct");
        assert_eq!(reply.status, 200, "{:?}", reply.body);
        socket
            .wait_for(WAIT, |e| matches!(e, Event::Direct { .. }))
            .unwrap_or_else(|e| panic!("{user} is not where the room looks for them: {e:?}"));
    }
}

/// A big room ended and opened again, its viewers coming back to the same shard objects
/// with the ended opening in their Hello: each is welcomed into the new opening (never
/// from a shard's copy of the old one), and their votes in the new opening's poll, whose
/// id the old poll had too, are all counted (a shard used to answer them as repeats of
/// the old poll's votes, and the room never counted them).
#[test]
fn a_big_room_opened_again_welcomes_its_returning_viewers_into_the_new_opening() {
    let server = shared();
    let room = create_big_room(server, 6_000); // 2 shards
    let users = users_over_shards(&format!("{room}-r"), 2, 2);
    let welcome_of = |socket: &mut Socket, user: &str| match socket
        .wait_for(WAIT, |e| matches!(e, Event::Welcome(_)))
    {
        Ok(Event::Welcome(welcome)) => welcome,
        other => panic!("{user} welcome: {other:?}"),
    };
    let vote_in_a_new_poll = |sockets: &mut [Socket]| {
        let poll_id = open_poll(server, &room);
        for socket in sockets.iter_mut() {
            vote_acked(socket, &poll_id, 50, 0);
        }
        let tallies = close_poll(server, &room, &poll_id);
        (poll_id, tallies)
    };
    let mut sockets = Vec::new();
    let mut first_epoch = 0;
    for user in &users {
        let mut socket = Socket::connect(&server.base, &room, &token("viewer", user, &room), None)
            .unwrap_or_else(|e| panic!("connect {user}: {e:?}"));
        first_epoch = welcome_of(&mut socket, user).epoch;
        sockets.push(socket);
    }
    let (first_poll, tallies) = vote_in_a_new_poll(&mut sockets);
    assert_eq!(tallies, json!([users.len(), 0]));

    let epoch = end_and_open_again(server, &room, &mut sockets, 6_000);
    assert_ne!(epoch, first_epoch);

    // Back with the ended opening in their Hello (a client that was away).
    let mut sockets = Vec::new();
    for user in &users {
        let resume = Resume {
            epoch: first_epoch,
            action_cursor: 0,
            part_versions: Vec::new(),
        };
        let mut socket = Socket::connect(
            &server.base,
            &room,
            &token("viewer", user, &room),
            Some(resume),
        )
        .unwrap_or_else(|e| panic!("connect {user} again: {e:?}"));
        let welcome = welcome_of(&mut socket, user);
        assert_eq!(welcome.epoch, epoch, "{user} welcomed into the new opening");
        assert!(
            !welcome.resumed,
            "{user}: nothing of the ended opening is resumed"
        );
        sockets.push(socket);
    }
    let (poll, tallies) = vote_in_a_new_poll(&mut sockets);
    assert_eq!(
        poll, first_poll,
        "the new opening numbers its polls from 1 again"
    );
    assert_eq!(
        tallies,
        json!([users.len(), 0]),
        "every vote of the new poll counted"
    );
}
