//! Gifts end to end: a viewer's Gift goes from the room (real worker under wrangler dev)
//! to the real settlement service; the room announces it once and ranks the gifter;
//! failures reach only the sender; ending the room settles it to the host.

use ovation_cli::{Api, Socket};
use ovation_proto::{ActionBody, ClientFrame, ErrorCode, Event};
use ovation_tests::{create_room, root, scratch_dir, token, Server};
use serde_json::json;
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
        let binary = root().join("target/debug/ovation-settlement");
        assert!(
            binary.exists(),
            "build it first: cargo build -p ovation-settlement (cargo xtask test does)"
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(binary)
            .args(["--listen", &format!("127.0.0.1:{port}"), "--secret", SECRET])
            .arg("--data-dir")
            .arg(scratch_dir("settlement"))
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
