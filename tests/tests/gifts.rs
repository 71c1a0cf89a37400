//! Gifts end to end: a viewer's Gift goes from the room (real worker under wrangler dev)
//! to the real settlement service; the room announces it once and ranks the gifter;
//! failures reach only the sender; ending the room settles it to the host.

use ovation_cli::{Api, Socket, SocketEnd};
use ovation_proto::{ActionBody, ClientFrame, ErrorCode, Event};
use ovation_tests::{create_room, root, scratch_dir, token, Server};
use serde_json::json;
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(10);
const SECRET: &str = "gifts-test-settlement-secret";

struct Settlement {
    child: Child,
    api: Api,
}

impl Settlement {
    fn start() -> Settlement {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        Settlement::start_at(port, &scratch_dir("settlement"))
    }

    /// The service on `port` over the ledger in `data_dir` (again, after a stop).
    fn start_at(port: u16, data_dir: &Path) -> Settlement {
        let binary = root().join("target/debug/ovation-settlement");
        assert!(
            binary.exists(),
            "build it first: cargo build -p ovation-settlement (cargo xtask test does)"
        );
        let child = Command::new(binary)
            .args(["--listen", &format!("127.0.0.1:{port}"), "--secret", SECRET])
            .arg("--data-dir")
            .arg(data_dir)
            .env("RUST_LOG", "warn")
            .spawn()
            .expect("start ovation-settlement");
        let api = Api::new(&format!("http://127.0.0.1:{port}"), SECRET);
        let started = Instant::now();
        while api.get("/v1/openapi.json").map(|r| r.status) != Ok(200) {
            assert!(started.elapsed() < WAIT, "settlement service did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Settlement { child, api }
    }
}

impl Drop for Settlement {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn gift(client_id: u64, gift_id: &str, sku: &str, qty: u32) -> ClientFrame {
    ClientFrame::Gift {
        client_id,
        gift_id: gift_id.into(),
        sku: sku.into(),
        qty,
    }
}

#[test]
fn gifts_are_charged_announced_once_ranked_and_settled_to_the_host() {
    let settlement = Settlement::start();
    let server = Server::start_with_vars(
        &scratch_dir("gifts"),
        &[
            ("OVATION_SETTLEMENT_URL", settlement.api.base.as_str()),
            ("OVATION_SETTLEMENT_SECRET", SECRET),
        ],
    );
    let deposit = json!({ "amount": 100, "id": "seed" });
    let reply = settlement
        .api
        .post("/v1/accounts/dev:ana/deposit", &deposit)
        .unwrap();
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let room = create_room(&server, "weur");

    let connect = |user: &str| {
        let mut socket =
            Socket::connect(&server.base, &room, &token("viewer", user, &room), None).unwrap();
        socket
            .wait_for(WAIT, |e| matches!(e, Event::Welcome(_)))
            .unwrap();
        socket
    };
    let mut ana = connect("ana");
    let mut bob = connect("bob");

    // A heart costs 5 in the default catalog: 2 hearts = 10.
    ana.send(&gift(1, "gift-1", "heart", 2)).unwrap();
    let ack = ana
        .wait_for(WAIT, |e| {
            matches!(e, Event::Ack { client_id: 1, .. } | Event::Error { .. })
        })
        .unwrap();
    assert!(matches!(ack, Event::Ack { seq: Some(_), .. }), "{ack:?}");
    ana.wait_for(WAIT, |e| *e == Event::Balance { balance: 90 })
        .unwrap();
    let announced = bob
        .wait_for(
            WAIT,
            |e| matches!(e, Event::Action(a) if matches!(a.body, ActionBody::Gift { .. })),
        )
        .unwrap();
    let Event::Action(action) = announced else {
        unreachable!()
    };
    assert_eq!(
        (action.user.as_str(), action.body),
        (
            "ana",
            ActionBody::Gift {
                sku: "heart".into(),
                qty: 2,
                amount: 10
            }
        )
    );
    bob.wait_for(WAIT, |e| {
        matches!(e, Event::Part { name, value, .. }
        if name == "leaderboard" && value.contains(r#""total":10"#) && value.contains("ana"))
    })
    .unwrap();

    // A retry with the same id is charged once and not announced again.
    ana.send(&gift(2, "gift-1", "heart", 2)).unwrap();
    let ack = ana
        .wait_for(WAIT, |e| {
            matches!(e, Event::Ack { client_id: 2, .. } | Event::Error { .. })
        })
        .unwrap();
    assert_eq!(
        ack,
        Event::Ack {
            client_id: 2,
            seq: None
        }
    );
    ana.wait_for(WAIT, |e| *e == Event::Balance { balance: 90 })
        .unwrap();

    // Not enough money: only the sender hears of it.
    ana.send(&gift(3, "gift-2", "rocket", 1)).unwrap();
    let refusal = ana
        .wait_for(WAIT, |e| {
            matches!(
                e,
                Event::Error {
                    client_id: Some(3),
                    ..
                }
            )
        })
        .unwrap();
    assert!(
        matches!(
            refusal,
            Event::Error {
                code: ErrorCode::InsufficientFunds,
                ..
            }
        ),
        "{refusal:?}"
    );
    let seen_by_bob = bob.drain(Duration::from_millis(500)).unwrap();
    assert!(
        !seen_by_bob.iter().any(
            |e| matches!(e, Event::Action(a) if matches!(a.body, ActionBody::Gift { .. }))
                || matches!(e, Event::Error { .. })
        ),
        "{seen_by_bob:?}"
    );

    // Ending the room settles it: the host receives exactly what was gifted.
    let ended = server
        .admin()
        .post(&format!("/v1/rooms/{room}/end"), &json!({}))
        .unwrap();
    assert_eq!(ended.status, 200, "{:?}", ended.body);
    assert_eq!(
        ended.body["settlement"]["status"], "settled",
        "{:?}",
        ended.body
    );
    assert_eq!(ended.body["settlement"]["settled"], 10);
    let host = settlement.api.get("/v1/accounts/dev:host-1").unwrap();
    assert_eq!(host.body["balance"], 10);
    let audit = settlement.api.get("/v1/audit").unwrap();
    assert_eq!(audit.body["ok"], true, "{:?}", audit.body);
}

/// Whether the directory lists `room` among the tenant's archived rooms.
fn archived(server: &Server, room: &str) -> bool {
    let list = server.admin().get("/v1/rooms?status=archived").unwrap();
    list.body.to_string().contains(&format!("\"{room}\""))
}

/// The host's balance at the settlement service, once it reaches `expected` (within WAIT).
fn host_balance_reaches(settlement: &Settlement, expected: u64) -> u64 {
    let started = Instant::now();
    loop {
        let host = settlement.api.get("/v1/accounts/dev:host-1").unwrap();
        let balance = host.body["balance"].as_u64().unwrap_or(0);
        if balance == expected || started.elapsed() > WAIT {
            return balance;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// However a room ends, its gifts reach the host exactly once, and an end whose
/// settlement failed is completed by ending again. A host's `end_room` over its own
/// socket is answered before the room ends (it once panicked the room object), and
/// settles the room as `POST /end` does; with the settlement service down, ending again
/// answers 200 with the settlement `pending`, the room cannot be opened again (its
/// last opening's account would be forgotten), and once the service is back, ending
/// again settles it.
#[test]
fn a_room_is_settled_however_it_ends_and_an_end_that_failed_is_completed_by_ending_again() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let ledger = scratch_dir("settlement");
    let settlement = Settlement::start_at(port, &ledger);
    let server = Server::start_with_vars(
        &scratch_dir("gifts-end"),
        &[
            ("OVATION_SETTLEMENT_URL", settlement.api.base.as_str()),
            ("OVATION_SETTLEMENT_SECRET", SECRET),
        ],
    );
    let deposit = json!({ "amount": 100, "id": "seed" });
    let reply = settlement
        .api
        .post("/v1/accounts/dev:ana/deposit", &deposit)
        .unwrap();
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let connect = |room: &str, role: &str, user: &str| {
        let mut socket =
            Socket::connect(&server.base, room, &token(role, user, room), None).unwrap();
        socket
            .wait_for(WAIT, |e| matches!(e, Event::Welcome(_)))
            .unwrap();
        socket
    };
    let give = |socket: &mut Socket, client_id: u64, gift_id: &str| {
        socket.send(&gift(client_id, gift_id, "heart", 2)).unwrap();
        let answer = socket
            .wait_for(WAIT, |e| {
                matches!(e, Event::Ack { client_id: c, .. } | Event::Error { client_id: Some(c), .. } if *c == client_id)
            })
            .unwrap();
        assert!(
            matches!(answer, Event::Ack { seq: Some(_), .. }),
            "{answer:?}"
        );
    };

    // The host ends the room over its socket: answered, then told the room ended.
    let room = create_room(&server, "weur");
    let mut host = connect(&room, "host", "host-1");
    let mut ana = connect(&room, "viewer", "ana");
    give(&mut ana, 1, "end-1");
    host.send(&ClientFrame::Command {
        client_id: 9,
        command: json!({ "command": "end_room" }).to_string(),
    })
    .unwrap();
    let mut seen = Vec::new();
    let close = loop {
        match host.next_event(WAIT) {
            Ok(Some(event)) => seen.push(event),
            Ok(None) => panic!("the room did not close the host's socket: {seen:?}"),
            Err(end) => break end,
        }
    };
    assert!(
        matches!(close, SocketEnd::Closed(4410, _)),
        "{close:?} after {seen:?}"
    );
    let acked = seen
        .iter()
        .position(|e| matches!(e, Event::Ack { client_id: 9, .. }));
    let ended = seen.iter().position(|e| *e == Event::RoomEnded);
    assert!(
        matches!((acked, ended), (Some(a), Some(e)) if a < e),
        "the host's end_room is acknowledged, then the room ends: {seen:?}"
    );
    assert_eq!(host_balance_reaches(&settlement, 10), 10);
    assert!(archived(&server, &room), "the ended room is archived");
    // Ending again settles nothing twice.
    let again = server
        .admin()
        .post(&format!("/v1/rooms/{room}/end"), &json!({}))
        .unwrap();
    assert_eq!(again.status, 200, "{:?}", again.body);
    assert_eq!(
        again.body["settlement"]["status"], "settled",
        "{:?}",
        again.body
    );
    assert_eq!(host_balance_reaches(&settlement, 10), 10);

    // The settlement service is down when a second room ends through the API's command.
    let second = create_room(&server, "weur");
    let mut ana = connect(&second, "viewer", "ana");
    give(&mut ana, 1, "end-2");
    drop(settlement);
    let command = server
        .admin()
        .post(
            &format!("/v1/rooms/{second}/commands"),
            &json!({ "command": "end_room" }),
        )
        .unwrap();
    assert_eq!(command.status, 200, "{:?}", command.body);
    let pending = server
        .admin()
        .post(&format!("/v1/rooms/{second}/end"), &json!({}))
        .unwrap();
    assert_eq!(pending.status, 200, "{:?}", pending.body);
    assert_eq!(
        pending.body["settlement"]["status"], "pending",
        "{:?}",
        pending.body
    );
    let reopen = json!({ "room": second, "host": "host-1", "title": "again" });
    let refused = server.admin().post("/v1/rooms", &reopen).unwrap();
    assert_eq!(refused.status, 503, "{:?}", refused.body);
    assert_eq!(refused.body["code"], "previous_end_unfinished");

    // Back up: ending again settles the room, once.
    let settlement = Settlement::start_at(port, &ledger);
    let settled = server
        .admin()
        .post(&format!("/v1/rooms/{second}/end"), &json!({}))
        .unwrap();
    assert_eq!(settled.status, 200, "{:?}", settled.body);
    assert_eq!(
        settled.body["settlement"]["status"], "settled",
        "{:?}",
        settled.body
    );
    assert_eq!(host_balance_reaches(&settlement, 20), 20);
    assert!(archived(&server, &second));
    let reopened = server.admin().post("/v1/rooms", &reopen).unwrap();
    assert_eq!(reopened.status, 201, "{:?}", reopened.body);
    let audit = settlement.api.get("/v1/audit").unwrap();
    assert_eq!(audit.body["ok"], true, "{:?}", audit.body);
    let ana_account = settlement.api.get("/v1/accounts/dev:ana").unwrap();
    assert_eq!(ana_account.body["balance"], 80);
}

/// A gift catalog that does not read (here a negative price) sells nothing, not the
/// default catalog at prices nobody set.
#[test]
fn a_catalog_that_does_not_read_sells_nothing() {
    let server = Server::start_with_vars(
        &scratch_dir("gifts-bad-catalog"),
        &[("OVATION_GIFT_CATALOG", r#"{"rose":-1}"#)],
    );
    let room = create_room(&server, "weur");
    let mut ana =
        Socket::connect(&server.base, &room, &token("viewer", "ana", &room), None).unwrap();
    ana.wait_for(WAIT, |e| matches!(e, Event::Welcome(_)))
        .unwrap();
    for (client_id, sku) in [(1, "rose"), (2, "heart")] {
        ana.send(&gift(client_id, &format!("bad-{client_id}"), sku, 1))
            .unwrap();
        let answer = ana
            .wait_for(WAIT, |e| {
                matches!(e, Event::Ack { client_id: c, .. } | Event::Error { client_id: Some(c), .. } if *c == client_id)
            })
            .unwrap();
        assert!(
            matches!(
                answer,
                Event::Error {
                    code: ErrorCode::NotFound,
                    ..
                }
            ),
            "{sku}: {answer:?}"
        );
    }
}
