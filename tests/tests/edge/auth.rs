//! Tokens: every bad token kind refused with its own code, tenants kept apart, a token
//! in the subprotocol list, a token issued in the future.

use super::WAIT;
use ovation_auth::{dev, SigningKey};
use ovation_cli::{Api, Socket, SocketEnd};
use ovation_proto::limits::TOKEN_IAT_LEEWAY_MS;
use ovation_proto::{ClientFrame, Event};
use ovation_tests::{create_room, shared, token, token_with, Server};
use serde_json::json;

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

/// The `Authorization` scheme's name is case-insensitive (RFC 9110): a client writing
/// `bearer` is read as `Bearer`, not answered `token_missing`.
#[test]
fn the_bearer_scheme_is_read_in_any_case() {
    let server = shared();
    let room = create_room(server, "weur");
    let admin = token("admin", "ops", "*");
    let anonymous = Api::new(&server.base, "");
    for scheme in ["bearer", "BEARER", "Bearer"] {
        let value = format!("{scheme} {admin}");
        let reply = anonymous
            .get_with_headers(
                &format!("/v1/rooms/{room}/state"),
                &[("authorization", &value)],
            )
            .unwrap();
        assert_eq!(reply.status, 200, "{scheme}: {:?}", reply.body);
    }
    let reply = anonymous
        .get_with_headers(
            &format!("/v1/rooms/{room}/state"),
            &[("authorization", "Basic abc")],
        )
        .unwrap();
    assert_eq!(
        (reply.status, reply.body["code"].as_str()),
        (401, Some("token_missing"))
    );
}

/// A token in the URL is taken on the WebSocket upgrade only (a browser cannot set headers
/// on one). Anywhere else it would land in access logs and histories: an admin's `POST`
/// or a viewer's read with `?token=` is refused 401 `token_missing`, saying to send the
/// header, and changes nothing.
#[test]
fn a_token_in_the_url_is_taken_only_on_the_websocket_upgrade() {
    let server = shared();
    let room = create_room(server, "weur");
    let admin = token("admin", "ops", "*");
    let viewer = token("viewer", "ana", &room);
    let anonymous = Api::new(&server.base, "");
    let other = format!("weur-url-token-{}", ovation_tests::unique());
    let created = anonymous
        .post(
            &format!("/v1/rooms?token={admin}"),
            &json!({"room": other, "host": "host-1"}),
        )
        .unwrap();
    assert_eq!(created.status, 401, "{:?}", created.body);
    assert_eq!(created.body["code"], "token_missing");
    assert!(
        created.body["message"]
            .as_str()
            .is_some_and(|m| m.contains("Authorization")),
        "{:?}",
        created.body
    );
    let state = server
        .admin()
        .get(&format!("/v1/rooms/{other}/state"))
        .unwrap();
    assert_eq!(state.status, 404, "nothing was opened: {:?}", state.body);

    let read = anonymous
        .get(&format!("/v1/rooms/{room}/state?token={viewer}"))
        .unwrap();
    assert_eq!(read.status, 401, "{:?}", read.body);
    assert_eq!(read.body["code"], "token_missing");
    let read = Api::new(&server.base, &viewer)
        .get(&format!("/v1/rooms/{room}/state"))
        .unwrap();
    assert_eq!(read.status, 200, "the header is taken: {:?}", read.body);
    // Beside the header too: the URL with the token in it is logged all the same.
    let read = Api::new(&server.base, &viewer)
        .get(&format!("/v1/rooms/{room}/state?token={viewer}"))
        .unwrap();
    assert_eq!(read.status, 401, "{:?}", read.body);
    assert_eq!(read.body["code"], "token_missing");

    // The upgrade still takes it (how `Socket::open` sends it), and an upgrade is one
    // in any case (RFC 6455: `WebSocket` is `websocket`). (workerd hands the Worker a
    // client's upgrade as `websocket` either way; the Worker's own check is without case
    // too, for a runtime that does not.)
    let socket = Socket::open(&server.base, &room, &viewer).expect("the upgrade");
    socket.close();
    let socket =
        Socket::open_with_headers(&server.base, &room, &viewer, &[("upgrade", "WebSocket")])
            .expect("an upgrade written `WebSocket`");
    socket.close();
}
