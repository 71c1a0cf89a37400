//! The admin and viewer HTTP API: stable error codes, versioned parts, the pull
//! transport, the OpenAPI document, the directory, CORS.

use super::{comment, connect, wait_ack};
use ovation_cli::Api;
use ovation_tests::{create_room, shared, token};
use serde_json::json;
use std::time::Instant;

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
    // Ending twice answers the same (it completes an end whose settlement failed); a
    // command to the ended room is refused.
    let ended = admin
        .post(&format!("/v1/rooms/{room}/end"), &json!({}))
        .unwrap();
    assert_eq!(ended.status, 200, "{:?}", ended.body);
    // Gifts are off on this server: the room was opened without a ledger account, and
    // the answer says so (the field was left out).
    assert_eq!(
        ended.body["settlement"]["status"], "never_opened",
        "{:?}",
        ended.body
    );
    let again = admin
        .post(&format!("/v1/rooms/{room}/end"), &json!({}))
        .unwrap();
    assert_eq!(
        (again.status, again.body["status"].as_str()),
        (200, Some("ended")),
        "{:?}",
        again.body
    );
    let message = admin
        .post(
            &format!("/v1/rooms/{room}/messages"),
            &json!({ "text": "late" }),
        )
        .unwrap();
    assert_eq!(
        (message.status, message.body["code"].as_str()),
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
    let epoch = state.body["epoch"].as_u64().unwrap();
    let path = format!("/v1/rooms/{room}/parts/pinned?v={version}&e={epoch}");
    let first = admin.get(&path).unwrap();
    assert_eq!(first.body, json!({"text": "hello"}));
    // Read with a token: no shared cache in front may keep it, hit or miss.
    let private = Some("private, max-age=31536000, immutable");
    assert_eq!(first.cache_control.as_deref(), private);
    let second = admin.get(&path).unwrap();
    assert_eq!(second.body, json!({"text": "hello"}));
    assert_eq!(second.cache.as_deref(), Some("hit"));
    assert_eq!(second.cache_control.as_deref(), private);

    // The room ends and opens again: its parts are numbered from the start, so the same
    // version is another value. Named with the new epoch it is the new value (never the
    // old opening's from the cache); without an epoch (clients before it) it is the
    // current value, not cached.
    let ended = admin
        .post(&format!("/v1/rooms/{room}/end"), &json!({}))
        .unwrap();
    assert_eq!(ended.status, 200, "{:?}", ended.body);
    let reopened = admin
        .post("/v1/rooms", &json!({ "room": room, "host": "host-1" }))
        .unwrap();
    assert_eq!(reopened.status, 201, "{:?}", reopened.body);
    let put = admin
        .put(
            &format!("/v1/rooms/{room}/parts/pinned"),
            &json!({"text": "again"}),
        )
        .unwrap();
    assert_eq!(
        put.body["version"].as_u64(),
        Some(version),
        "{:?}",
        put.body
    );
    let state = admin.get(&format!("/v1/rooms/{room}/state")).unwrap();
    let new_epoch = state.body["epoch"].as_u64().unwrap();
    assert_ne!(new_epoch, epoch);
    let current = admin
        .get(&format!(
            "/v1/rooms/{room}/parts/pinned?v={version}&e={new_epoch}"
        ))
        .unwrap();
    assert_eq!(current.body, json!({"text": "again"}));
    assert_eq!(current.cache.as_deref(), Some("miss"));
    // The old opening's version stays what it was (cached); not cached, the room says
    // that opening is over.
    let old = admin.get(&path).unwrap();
    assert_eq!(old.body, json!({"text": "hello"}));
    let never_fetched = admin
        .get(&format!(
            "/v1/rooms/{room}/parts/pinned?v={}&e={epoch}",
            version + 1
        ))
        .unwrap();
    assert_eq!(
        (never_fetched.status, never_fetched.body["code"].as_str()),
        (404, Some("part_version_not_found")),
        "{:?}",
        never_fetched.body
    );
    let unnamed = admin
        .get(&format!("/v1/rooms/{room}/parts/pinned?v={version}"))
        .unwrap();
    assert_eq!(unnamed.body, json!({"text": "again"}));
    assert_eq!(unnamed.cache_control.as_deref(), Some("no-store"));
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

/// The directory a page at a time: pages chained by `next` list every room once, in
/// room order, each page within its `limit`; a limit past its bounds or an `after` that
/// is no room id is refused with its code, not answered with everything.
#[test]
fn the_directory_lists_its_rooms_a_page_at_a_time() {
    let server = shared();
    let admin = server.admin();
    let mut ours: Vec<String> = (0..5).map(|_| create_room(server, "weur")).collect();
    ours.sort();
    let walk = |status: &str, limit: usize| {
        let mut seen = Vec::new();
        let mut after: Option<String> = None;
        for _ in 0..100_000 {
            let mut path = format!("/v1/rooms?status={status}&limit={limit}");
            if let Some(after) = &after {
                path.push_str(&format!("&after={after}"));
            }
            let reply = admin.get(&path).unwrap();
            assert_eq!(reply.status, 200, "{:?}", reply.body);
            let rooms: Vec<String> = reply.body["rooms"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["room"].as_str().unwrap().to_owned())
                .collect();
            assert!(rooms.len() <= limit, "{} rooms", rooms.len());
            assert!(rooms.windows(2).all(|w| w[0] < w[1]), "{rooms:?}");
            if let Some(after) = &after {
                assert!(rooms.iter().all(|r| r > after), "{rooms:?} after {after}");
            }
            seen.extend(rooms.iter().cloned());
            match reply.body["next"].as_str() {
                Some(next) => {
                    assert_eq!(Some(next), rooms.last().map(String::as_str));
                    after = Some(next.to_owned());
                }
                None => return seen,
            }
        }
        panic!("pages never ended");
    };
    for limit in [1, 2, 1_000] {
        let seen = walk("live", limit);
        let listed: Vec<&String> = seen.iter().filter(|r| ours.contains(r)).collect();
        assert_eq!(listed, ours.iter().collect::<Vec<_>>(), "limit {limit}");
    }
    // The client's walk over every page (what `ovation room list` prints), two at a time.
    let listed = admin.all_rooms("live", 2).unwrap();
    let names: Vec<&str> = listed.iter().filter_map(|r| r["room"].as_str()).collect();
    for ours in &ours {
        assert_eq!(
            names.iter().filter(|n| **n == ours.as_str()).count(),
            1,
            "{ours}"
        );
    }
    assert_eq!(admin.all_rooms("ended", 2).unwrap_err().status, 400);
    // Without a limit, one page of at most 1,000: the rooms of this test are there.
    let whole = admin.get("/v1/rooms").unwrap().body;
    let rooms = whole["rooms"].as_array().unwrap();
    assert!(ours
        .iter()
        .all(|ours| rooms.iter().any(|r| r["room"] == ours.as_str())));
    // Ended, they move to the archived list, paged alike.
    admin
        .post(&format!("/v1/rooms/{}/end", ours[0]), &json!({}))
        .unwrap();
    assert!(walk("archived", 1).contains(&ours[0]));
    assert!(!walk("live", 3).contains(&ours[0]));
    for (query, code) in [
        ("limit=0", "invalid"),
        ("limit=1001", "invalid"),
        ("limit=-1", "invalid"),
        ("limit=18446744073709551616", "invalid"),
        ("after=not-a-region-room", "invalid"),
        ("after=", "invalid"),
        ("status=ended", "unsupported_status"),
    ] {
        let reply = admin.get(&format!("/v1/rooms?{query}")).unwrap();
        assert_eq!(
            (reply.status, reply.body["code"].as_str()),
            (400, Some(code)),
            "{query}: {:?}",
            reply.body
        );
    }
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
    // A page reads how long a 429 asks it to wait (the read rate, `USER_READS_PER_S`),
    // and which version a part read answered.
    let exposed: Vec<&str> = state
        .header("access-control-expose-headers")
        .unwrap_or_default()
        .split(", ")
        .collect();
    assert_eq!(
        exposed,
        ["retry-after", ovation_proto::PART_VERSION_HEADER],
        "{exposed:?}"
    );
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

/// A request head sent raw, with `body` after it and the connection left open (the rest
/// of the body never comes): the status and error code of the answer, or `None` when
/// none came within 5 s (the server waited for the body it should have refused).
fn answer_before_the_body(
    server: &ovation_tests::Server,
    head: &str,
    body: &[u8],
) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let address = server.base.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(address).expect("connect");
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    let request = format!("{head}Host: {address}\r\ncontent-type: application/json\r\n\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut answer = Vec::new();
    let mut buf = [0_u8; 4096];
    // Until the head and a JSON body are in (the connection stays open: keep-alive).
    while !String::from_utf8_lossy(&answer).contains("\"code\"") {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&answer);
    let status = text.split(' ').nth(1)?.parse().ok()?;
    let code = text
        .split("\"code\":\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_default()
        .to_owned();
    Some((status, code))
}

/// A body past `ADMIN_BODY_BYTES_MAX` never lands in the Worker's memory (wasm memory
/// never shrinks): a declared length past it is refused `413` before the body is sent;
/// a caller without a valid token is refused `401` before its body is read; and a
/// chunked body (no declared length) is refused once it passes the limit, without
/// waiting for its end. On workerd alone, which streams a request's body to the Worker
/// as Cloudflare does (`wrangler dev`'s proxy reads the whole body before it forwards).
#[test]
fn a_body_past_the_limit_or_without_a_token_is_refused_before_it_is_read() {
    use ovation_proto::limits::ADMIN_BODY_BYTES_MAX;
    let server = &ovation_tests::Server::start_on(
        ovation_tests::Runtime::Workerd,
        &ovation_tests::scratch_dir("edge-bodies"),
    );
    let room = create_room(server, "weur");
    let path = format!("/v1/rooms/{room}/messages");
    let bearer = format!(
        "authorization: Bearer {}\r\n",
        token("admin", "admin-1", "*")
    );
    let one_past = ADMIN_BODY_BYTES_MAX + 1;
    let cases = [
        (
            format!("POST {path} HTTP/1.1\r\n{bearer}content-length: {one_past}\r\n"),
            Vec::new(),
            (413, "body_too_large"),
        ),
        (
            format!("POST {path} HTTP/1.1\r\n{bearer}content-length: 18446744073709551616\r\n"),
            Vec::new(),
            (400, "bad_request"),
        ),
        (
            format!("POST {path} HTTP/1.1\r\ncontent-length: 100000000\r\n"),
            Vec::new(),
            (401, "token_missing"),
        ),
        (
            format!("PUT /v1/rooms/{room}/parts/big HTTP/1.1\r\nauthorization: Bearer x.y.z\r\ncontent-length: 100000000\r\n"),
            b"{\"x\":".to_vec(),
            (401, "token_malformed"),
        ),
        (
            format!("POST {path} HTTP/1.1\r\n{bearer}transfer-encoding: chunked\r\n"),
            format!("{one_past:x}\r\n{}\r\n", "x".repeat(one_past)).into_bytes(),
            (413, "body_too_large"),
        ),
    ];
    for (head, body, (status, code)) in cases {
        let answer = answer_before_the_body(server, &head, &body);
        assert_eq!(
            answer,
            Some((status, code.to_owned())),
            "{head}: refused before the body is read"
        );
    }
    // The limit itself is a body the API reads.
    let admin = server.admin();
    let text = "x".repeat(ADMIN_BODY_BYTES_MAX - r#"{"text":""}"#.len());
    let reply = admin.post(&path, &json!({ "text": text })).unwrap();
    assert_eq!(
        (reply.status, reply.body["code"].as_str()),
        (400, Some("too_long")),
        "a body of exactly the limit is read (its text is then too long for a message)"
    );
}

/// A part read at a version the part has moved on from is answered with the newest value
/// and its version in `x-ovation-part-version`, `no-store`, never cached under the URL of
/// the version asked for: over pull, a part changing faster than a round trip (a poll's
/// tallies) was answered 404 on every read and never delivered. A version the room never
/// had is still 404, and the current version is still cached.
#[test]
fn a_part_read_at_a_version_it_moved_on_from_is_answered_at_its_newest_uncached() {
    let server = shared();
    let admin = server.admin();
    let (room, first, epoch) = a_room_with_a_part(server);
    let viewer = Api::new(&server.base, &token("viewer", "puller", &room));
    let put = |n: u64| {
        let path = format!("/v1/rooms/{room}/parts/pinned");
        let put = admin.put(&path, &json!({ "n": n })).unwrap();
        assert_eq!(put.status, 200, "{:?}", put.body);
        put.body["version"].as_u64().unwrap()
    };
    put(2);
    let third = put(3);
    let old_path = format!("/v1/rooms/{room}/parts/pinned?v={first}&e={epoch}");
    for _ in 0..2 {
        let moved_on = viewer.get(&old_path).unwrap();
        assert_eq!(moved_on.status, 200, "{:?}", moved_on.body);
        assert_eq!(moved_on.body, json!({ "n": 3 }));
        let answered = moved_on.part_version.as_deref();
        assert_eq!(answered, Some(third.to_string().as_str()));
        assert_eq!(moved_on.cache_control.as_deref(), Some("no-store"));
        assert_eq!(moved_on.cache, None, "never from or into the cache");
    }
    // Without `&e=` (clients before it), the same answer and header.
    let unnamed = viewer
        .get(&format!("/v1/rooms/{room}/parts/pinned?v={first}"))
        .unwrap();
    assert_eq!(unnamed.body, json!({ "n": 3 }));
    let answered = unnamed.part_version.as_deref();
    assert_eq!(answered, Some(third.to_string().as_str()));
    // Not cached: the next read of the same URL is the part's newest value again.
    let fourth = put(4);
    let moved_on = viewer.get(&old_path).unwrap();
    assert_eq!(moved_on.body, json!({ "n": 4 }));
    let answered = moved_on.part_version.as_deref();
    assert_eq!(answered, Some(fourth.to_string().as_str()));
    // The current version is cached as before, with no version header (where the
    // runtime has a Workers cache: workerd alone has none, and asks the room each time).
    let current = format!("/v1/rooms/{room}/parts/pinned?v={fourth}&e={epoch}");
    let miss = viewer.get(&current).unwrap();
    assert_eq!((miss.part_version, miss.body), (None, json!({ "n": 4 })));
    assert!(miss.cache_control.unwrap_or_default().contains("immutable"));
    if ovation_tests::Runtime::from_env() == ovation_tests::Runtime::WranglerDev {
        assert_eq!(miss.cache.as_deref(), Some("miss"));
        let hit = viewer.get(&current).unwrap();
        assert_eq!(
            (hit.cache.as_deref(), hit.body),
            (Some("hit"), json!({ "n": 4 }))
        );
    }
    // A version the room never had, and one past every version a u64 holds.
    for version in [(fourth + 1).to_string(), u64::MAX.to_string()] {
        let path = format!("/v1/rooms/{room}/parts/pinned?v={version}&e={epoch}");
        let made_up = viewer.get(&path).unwrap();
        assert_eq!(
            (made_up.status, made_up.body["code"].as_str()),
            (404, Some("part_version_not_found")),
            "{version}: {:?}",
            made_up.body
        );
    }
    let past = format!("/v1/rooms/{room}/parts/pinned?v=18446744073709551616&e={epoch}");
    assert_eq!(viewer.get(&past).unwrap().status, 400, "2^64 is no version");
}

/// A viewer's reads past `USER_READS_BURST` at more than `USER_READS_PER_S` are refused
/// `429 rate_limited` with a `retry-after`, also on a part without `&e=` (never cached):
/// refused by the Worker, or by the room object for reads that came through other
/// isolates, and the wait reaches the client. Staff are not limited.
#[test]
fn a_viewers_reads_past_the_read_rate_are_refused_with_their_wait() {
    use ovation_proto::limits::USER_READS_BURST;
    let server = shared();
    let admin = server.admin();
    let (room, version, _) = a_room_with_a_part(server);
    let path = format!("/v1/rooms/{room}/parts/pinned?v={version}");
    // Ten clients of one viewer at once: far past the rate, however busy this machine.
    let viewer = token("viewer", "eager", &room);
    let readers: Vec<_> = (0..10)
        .map(|_| {
            let (eager, path) = (Api::new(&server.base, &viewer), path.clone());
            std::thread::spawn(move || {
                (0..USER_READS_BURST)
                    .map(|_| eager.get(&path).unwrap())
                    .find(|reply| reply.status != 200)
            })
        })
        .collect();
    let refused = readers
        .into_iter()
        .filter_map(|reader| reader.join().unwrap())
        .next()
        .expect("refused past the burst");
    assert_eq!(
        (refused.status, refused.body["code"].as_str()),
        (429, Some("rate_limited")),
        "{:?}",
        refused.body
    );
    let wait: u64 = refused
        .retry_after
        .as_deref()
        .and_then(|s| s.parse().ok())
        .expect("a retry-after");
    assert!(wait >= 1);
    for _ in 0..2 * USER_READS_BURST {
        assert_eq!(
            admin.get(&path).unwrap().status,
            200,
            "staff are not limited"
        );
    }
}

/// One token valid for every room (`room: "*"`) naming made-up rooms: each room id wakes a
/// room object (answered 404 only once it woke), and a room new to the Worker came with a
/// full bucket of its own, so the per-room rates never applied. Past
/// `USER_NEW_ROOMS_BURST` rooms that do not exist, its reads and its upgrades are refused
/// `429 rate_limited` with a `retry-after` before any object wakes; another viewer is
/// untouched, and a lobby reading more live rooms than that is never refused (a room
/// that exists gives its new room back).
#[test]
fn one_token_naming_made_up_rooms_is_refused_past_the_new_rooms_burst() {
    use ovation_cli::{Socket, SocketEnd};
    use ovation_proto::limits::{USER_NEW_ROOMS_BURST, USER_NEW_ROOMS_PER_S};
    use ovation_tests::room_id;
    let server = shared();
    let burst = USER_NEW_ROOMS_BURST as usize;
    let tries = burst + 40;
    // At most the burst, and what the rate refilled while the test asked.
    let admitted_max = |started: Instant| {
        burst + (started.elapsed().as_secs_f64() * f64::from(USER_NEW_ROOMS_PER_S)) as usize + 1
    };
    // Reads.
    let roamer = Api::new(&server.base, &token("viewer", "roamer", "*"));
    let made_up: Vec<String> = (0..tries).map(|_| room_id("weur")).collect();
    let started = Instant::now();
    let replies: Vec<(u16, Option<String>)> = made_up
        .iter()
        .map(|room| {
            let reply = roamer.get(&format!("/v1/rooms/{room}/state")).unwrap();
            (reply.status, reply.retry_after)
        })
        .collect();
    let admitted = replies.iter().filter(|(status, _)| *status == 404).count();
    assert!(
        replies[..burst].iter().all(|(status, _)| *status == 404)
            && admitted <= admitted_max(started)
            && admitted < tries,
        "{replies:?}"
    );
    for (status, retry_after) in replies.iter().filter(|(status, _)| *status != 404) {
        assert_eq!(*status, 429, "{replies:?}");
        let wait: u64 = retry_after
            .as_deref()
            .and_then(|s| s.parse().ok())
            .expect("a retry-after");
        assert!(wait >= 1);
    }
    // Still new when asked again: refused, or admitted only as one more the rate refilled
    // (a token every 500 ms: one can come due between the last try and this one).
    let again = roamer
        .get(&format!("/v1/rooms/{}/state", made_up[0]))
        .unwrap();
    let admitted_again = usize::from(again.status == 404);
    assert!(
        again.status == 429 || admitted + admitted_again <= admitted_max(started),
        "a made-up room asked again is still new: {} after {admitted} admitted",
        again.status
    );
    let lobby = Api::new(&server.base, &token("viewer", "lobby", "*"));
    let live: Vec<String> = (0..burst + 8)
        .map(|_| create_room(server, "weur"))
        .collect();
    for room in &live {
        let reply = lobby.get(&format!("/v1/rooms/{room}/state")).unwrap();
        assert_eq!(reply.status, 200, "{room}: {:?}", reply.body);
    }
    let other = Api::new(&server.base, &token("viewer", "homebody", "*"));
    let reply = other
        .get(&format!("/v1/rooms/{}/state", room_id("weur")))
        .unwrap();
    assert_eq!(reply.status, 404, "another viewer is untouched");
    // Upgrades (their own limiter).
    let wanderer = token("viewer", "wanderer", "*");
    let started = Instant::now();
    let outcomes: Vec<u16> = (0..tries)
        .map(
            |_| match Socket::connect(&server.base, &room_id("weur"), &wanderer, None) {
                Ok(_) => 101,
                Err(SocketEnd::Refused(status, _)) => status,
                Err(other) => panic!("an upgrade answered {other:?}"),
            },
        )
        .collect();
    let admitted = outcomes.iter().filter(|status| **status == 404).count();
    assert!(
        outcomes[..burst].iter().all(|status| *status == 404)
            && admitted <= admitted_max(started)
            && admitted < tries
            && outcomes
                .iter()
                .all(|status| *status == 404 || *status == 429),
        "{outcomes:?}"
    );
}

/// Reads that miss the Workers cache wake the room object, so the Worker holds them to the
/// viewer's read rate first, as it does the pull reads: ten clients of one token asking
/// for part versions that do not exist (answered 404, never cached) are refused `429`
/// past the burst, and the room object refuses next to none itself, because next to none
/// reach it past the rate. Before, the Worker passed every miss on and the room object
/// answered each one.
#[test]
fn reads_that_miss_the_cache_are_held_to_the_read_rate_before_the_room_object() {
    use ovation_proto::limits::USER_READS_BURST;
    let server = shared();
    let admin = server.admin();
    let (room, _, epoch) = a_room_with_a_part(server);
    let guesser = token("viewer", "guesser", &room);
    let readers: Vec<_> = (0..10u64)
        .map(|reader| {
            let (api, room) = (Api::new(&server.base, &guesser), room.clone());
            std::thread::spawn(move || {
                let mut statuses = Vec::new();
                for k in 0..u64::from(USER_READS_BURST) {
                    let version = 1_000_000 + reader * 1_000 + k;
                    let path = format!("/v1/rooms/{room}/parts/pinned?v={version}&e={epoch}");
                    statuses.push(api.get(&path).unwrap().status);
                }
                statuses
            })
        })
        .collect();
    let statuses: Vec<u16> = readers
        .into_iter()
        .flat_map(|reader| reader.join().unwrap())
        .collect();
    let refused = statuses.iter().filter(|s| **s == 429).count() as u64;
    assert!(
        statuses.iter().all(|s| *s == 404 || *s == 429),
        "{statuses:?}"
    );
    assert!(
        refused >= 5 * u64::from(USER_READS_BURST),
        "{refused} refused"
    );
    let stats = admin.get(&format!("/v1/rooms/{room}/stats")).unwrap().body;
    let refused_by_room = stats["reads_rate_limited"].as_u64().expect("the count");
    assert!(
        refused_by_room * 10 <= refused,
        "the room object refused {refused_by_room} of the {refused} refusals itself"
    );
}

/// A part name no part can have is refused `400 invalid_part_name` by the Worker: upper
/// case, percent-encoded, too long, or carrying a query of its own (`pinned&v=1`, which
/// the room object read as version 1 while the cache key named the one asked for).
#[test]
fn a_part_name_no_part_can_have_is_refused() {
    let server = shared();
    let admin = server.admin();
    let (room, version, epoch) = a_room_with_a_part(server);
    let long = "p".repeat(65);
    for name in [
        "PINNED",
        "%70inned",
        &format!("pinned&v={version}"),
        long.as_str(),
    ] {
        let path = format!("/v1/rooms/{room}/parts/{name}?v={}&e={epoch}", version + 1);
        let reply = admin.get(&path).unwrap();
        assert_eq!(
            (reply.status, reply.body["code"].as_str()),
            (400, Some("invalid_part_name")),
            "{name}: {:?}",
            reply.body
        );
    }
    let at_limit = "p".repeat(64);
    let reply = admin
        .get(&format!("/v1/rooms/{room}/parts/{at_limit}?v=1&e={epoch}"))
        .unwrap();
    assert_eq!(
        reply.status, 404,
        "a well-formed name the room does not hold"
    );
}

/// A new room with the part `pinned` set: the room, the part's version and the opening's
/// epoch.
fn a_room_with_a_part(server: &ovation_tests::Server) -> (String, u64, u64) {
    let admin = server.admin();
    let room = create_room(server, "weur");
    let put = admin
        .put(&format!("/v1/rooms/{room}/parts/pinned"), &json!({"n": 1}))
        .unwrap();
    let version = put.body["version"].as_u64().unwrap();
    let state = admin.get(&format!("/v1/rooms/{room}/state")).unwrap();
    (room, version, state.body["epoch"].as_u64().unwrap())
}

/// A body within its route's bound is taken whole, though the Worker forwards it to the
/// room object re-encoded: a part's value of exactly `PART_VALUE_BYTES_MAX` bytes, mostly
/// newlines, doubles as a JSON string (each newline `\n`), and the object read it with
/// the admin body's bound and answered 413 `body_too_large`.
#[test]
fn a_part_at_its_bound_that_grows_when_forwarded_is_taken() {
    use ovation_proto::limits::PART_VALUE_BYTES_MAX;
    let server = shared();
    let admin = server.admin();
    let room = create_room(server, "weur");
    let value = format!("[{}1]", "\n".repeat(PART_VALUE_BYTES_MAX - 3));
    assert_eq!(value.len(), PART_VALUE_BYTES_MAX);
    let path = format!("/v1/rooms/{room}/parts/lines");
    let put = admin.put_raw(&path, value.as_bytes()).unwrap();
    assert_eq!(put.status, 200, "{:?}", put.body);
    let one_past = format!("[{}1]", "\n".repeat(PART_VALUE_BYTES_MAX - 2));
    let put = admin.put_raw(&path, one_past.as_bytes()).unwrap();
    assert_eq!(
        (put.status, put.body["code"].as_str()),
        (400, Some("too_long")),
        "one byte past: {:?}",
        put.body
    );
}

/// An admin token scoped to one room is refused the tenant's room list (it named every
/// room's title, host and recording); a tenant-wide one reads it.
#[test]
fn a_room_scoped_admin_token_cannot_list_the_tenants_rooms() {
    let server = shared();
    let room = create_room(server, "weur");
    let scoped = Api::new(&server.base, &token("admin", "ops", &room));
    for status in ["live", "archived"] {
        let reply = scoped.get(&format!("/v1/rooms?status={status}")).unwrap();
        assert_eq!(
            (reply.status, reply.body["code"].as_str()),
            (403, Some("token_wrong_room")),
            "{status}: {:?}",
            reply.body
        );
    }
    let state = scoped.get(&format!("/v1/rooms/{room}/state")).unwrap();
    assert_eq!(state.status, 200, "its own room: {:?}", state.body);
    let all = server.admin().get("/v1/rooms?status=live").unwrap();
    assert_eq!(all.status, 200);
}
