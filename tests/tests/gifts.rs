//! Gifts end to end: a viewer's Gift goes from the room (real worker under wrangler dev)
//! to the real settlement service; the room announces it once and ranks the gifter;
//! failures reach only the sender; ending the room settles it to the host.

use ovation_cli::{Socket, SocketEnd};
use ovation_proto::limits::ROOM_END_RETRY_INTERVAL_MS;
use ovation_proto::{ActionBody, ClientFrame, ErrorCode, Event};
use ovation_tests::{create_room, free_port, scratch_dir, token, Server, Settlement};
use serde_json::json;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(10);
fn gift(client_id: u64, gift_id: &str, sku: &str, qty: u32) -> ClientFrame {
    ClientFrame::Gift {
        client_id,
        gift_id: gift_id.into(),
        sku: sku.into(),
        qty,
    }
}

/// The worker under wrangler dev, charging gifts at `settlement` reached through `base`
/// (the service itself, or a proxy in front of it).
fn server_charging_at(name: &str, base: &str, settlement: &Settlement) -> Server {
    settlement.server_through(base, &scratch_dir(name))
}

fn deposit(settlement: &Settlement, user: &str, amount: u64) {
    let deposit = json!({ "amount": amount, "id": format!("seed-{user}") });
    let path = format!("/v1/accounts/dev:{user}/deposit");
    let reply = settlement.api.post(&path, &deposit).unwrap();
    assert_eq!(reply.status, 200, "{:?}", reply.body);
}

/// `POST /end` (200), whose settlement has `status`: the answer's body.
fn end_with_settlement(server: &Server, room: &str, status: &str) -> serde_json::Value {
    let reply = server
        .admin()
        .post(&format!("/v1/rooms/{room}/end"), &json!({}))
        .unwrap();
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(
        reply.body["settlement"]["status"], status,
        "{:?}",
        reply.body
    );
    reply.body
}

/// A socket of `user` in `room`, welcomed.
fn connect(server: &Server, room: &str, role: &str, user: &str) -> Socket {
    let mut socket = Socket::connect(&server.base, room, &token(role, user, room), None).unwrap();
    socket
        .wait_for(WAIT, |e| matches!(e, Event::Welcome(_)))
        .unwrap();
    socket
}

/// The room's answer to the action `client_id`: its `Ack` or its `Error`.
fn answer_to(socket: &mut Socket, client_id: u64) -> Event {
    socket
        .wait_for(WAIT, |e| {
            matches!(e, Event::Ack { client_id: c, .. } | Event::Error { client_id: Some(c), .. } if *c == client_id)
        })
        .unwrap()
}

#[test]
fn gifts_are_charged_announced_once_ranked_and_settled_to_the_host() {
    let settlement = Settlement::start();
    let server = server_charging_at("gifts", &settlement.api.base, &settlement);
    deposit(&settlement, "ana", 100);
    let room = create_room(&server, "weur");
    let mut ana = connect(&server, &room, "viewer", "ana");
    let mut bob = connect(&server, &room, "viewer", "bob");

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

    // A retry with the same id (its ack lost, say): acknowledged as that gift at once,
    // neither charged again nor announced again (the room remembers it announced).
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
    let ended = end_with_settlement(&server, &room, "settled");
    assert_eq!(ended["settlement"]["settled"], 10);
    let host = settlement.api.get("/v1/accounts/dev:host-1").unwrap();
    assert_eq!(host.body["balance"], 10);
    settlement.assert_audit_holds();
}

/// Whether the directory lists `room` among the tenant's archived rooms, within WAIT
/// (a room archives itself after its settlement answers, which the test may see first).
fn archived(server: &Server, room: &str) -> bool {
    let started = Instant::now();
    loop {
        let list = server.admin().get("/v1/rooms?status=archived").unwrap();
        if list.body.to_string().contains(&format!("\"{room}\"")) {
            return true;
        }
        if started.elapsed() > WAIT {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The host's balance at the settlement service, once it reaches `expected` (within WAIT).
fn host_balance_reaches(settlement: &Settlement, expected: u64) -> u64 {
    balance_reaches(settlement, "host-1", expected)
}

/// A balance at the settlement service, once it reaches `expected` (within WAIT).
fn balance_reaches(settlement: &Settlement, user: &str, expected: u64) -> u64 {
    balance_reaches_within(settlement, user, expected, WAIT)
}

/// A balance at the settlement service, once it reaches `expected` (within `wait`).
fn balance_reaches_within(
    settlement: &Settlement,
    user: &str,
    expected: u64,
    wait: Duration,
) -> u64 {
    let started = Instant::now();
    loop {
        let account = settlement
            .api
            .get(&format!("/v1/accounts/dev:{user}"))
            .unwrap();
        let balance = account.body["balance"].as_u64().unwrap_or(0);
        if balance == expected || started.elapsed() > wait {
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
    let port = free_port();
    let ledger = scratch_dir("settlement");
    let settlement = Settlement::start_at(port, &ledger);
    let server = server_charging_at("gifts-end", &settlement.api.base, &settlement);
    deposit(&settlement, "ana", 100);
    let connect = |room: &str, role: &str, user: &str| connect(&server, room, role, user);
    let give = |socket: &mut Socket, client_id: u64, gift_id: &str| {
        socket.send(&gift(client_id, gift_id, "heart", 2)).unwrap();
        let answer = answer_to(socket, client_id);
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
    end_with_settlement(&server, &room, "settled");
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
    end_with_settlement(&server, &second, "pending");
    let reopen = json!({ "room": second, "host": "host-1", "title": "again" });
    let refused = server.admin().post("/v1/rooms", &reopen).unwrap();
    assert_eq!(refused.status, 503, "{:?}", refused.body);
    assert_eq!(refused.body["code"], "previous_end_unfinished");

    // Back up: ending again settles the room, once.
    let settlement = Settlement::start_at(port, &ledger);
    let settled = end_with_settlement(&server, &second, "settled");
    assert_eq!(settled["archived"], true, "{settled:?}");
    assert_eq!(host_balance_reaches(&settlement, 20), 20);
    assert!(archived(&server, &second));
    let reopened = server.admin().post("/v1/rooms", &reopen).unwrap();
    assert_eq!(reopened.status, 201, "{:?}", reopened.body);

    // A third room ends while the service is down, and is opened again once it is back
    // without ending it again: opening it settles the last opening first, and the new
    // opening stays listed live (the old one archived).
    let third = create_room(&server, "weur");
    let mut ana = connect(&third, "viewer", "ana");
    give(&mut ana, 1, "end-3");
    drop(settlement);
    let command = server
        .admin()
        .post(
            &format!("/v1/rooms/{third}/commands"),
            &json!({ "command": "end_room" }),
        )
        .unwrap();
    assert_eq!(command.status, 200, "{:?}", command.body);
    let reopen = json!({ "room": third, "host": "host-1", "title": "third again" });
    let refused = server.admin().post("/v1/rooms", &reopen).unwrap();
    assert_eq!(refused.status, 503, "{:?}", refused.body);
    let settlement = Settlement::start_at(port, &ledger);
    let reopened = server.admin().post("/v1/rooms", &reopen).unwrap();
    assert_eq!(reopened.status, 201, "{:?}", reopened.body);
    assert_eq!(host_balance_reaches(&settlement, 30), 30);
    let live = server.admin().get("/v1/rooms?status=live").unwrap();
    assert!(
        live.body.to_string().contains(&format!("\"{third}\"")),
        "the new opening is listed live: {:?}",
        live.body
    );
    assert!(archived(&server, &third), "the old opening is archived");

    settlement.assert_audit_holds();
    let ana_account = settlement.api.get("/v1/accounts/dev:ana").unwrap();
    assert_eq!(ana_account.body["balance"], 70);
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
    let mut ana = connect(&server, &room, "viewer", "ana");
    for (client_id, sku) in [(1, "rose"), (2, "heart")] {
        ana.send(&gift(client_id, &format!("bad-{client_id}"), sku, 1))
            .unwrap();
        let answer = answer_to(&mut ana, client_id);
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

/// An HTTP proxy in front of the settlement service that holds each request naming a
/// held id (a gift id in its JSON body, or a `/path` part in its request line) until it
/// is released (then forwarded) or dropped (its connection closed, never forwarded): a
/// charge kept in flight while the test ends and re-opens its room, or a settlement in
/// flight when workerd is killed. One request per connection (`connection: close`).
struct HoldingProxy {
    base: String,
    held: std::sync::Arc<(std::sync::Mutex<Vec<String>>, std::sync::Condvar)>,
    dropped: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    arrived: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    /// Requests forwarded whose upstream answer came back (whether or not their client
    /// was still there to take it).
    answered: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    /// The request line of each request held, in arrival order.
    lines: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl HoldingProxy {
    fn start(target_port: u16, held: &[&str]) -> HoldingProxy {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let held = std::sync::Arc::new((
            std::sync::Mutex::new(held.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>()),
            std::sync::Condvar::new(),
        ));
        let arrived = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let answered = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let dropped = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let (gate, count, drops) = (held.clone(), arrived.clone(), dropped.clone());
        let seen = lines.clone();
        let done = answered.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(mut client) = client else { continue };
                let (gate, count, drops) = (gate.clone(), count.clone(), drops.clone());
                let (seen, done) = (seen.clone(), done.clone());
                std::thread::spawn(move || {
                    // Headers, then the body by content-length.
                    let mut request = Vec::new();
                    let mut buf = [0u8; 4096];
                    let body_at = loop {
                        let n = client.read(&mut buf).unwrap_or(0);
                        if n == 0 {
                            return;
                        }
                        request.extend_from_slice(&buf[..n]);
                        if let Some(at) = request.windows(4).position(|w| w == b"\r\n\r\n") {
                            break at + 4;
                        }
                    };
                    let head = String::from_utf8_lossy(&request[..body_at]).to_lowercase();
                    let length: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    while request.len() < body_at + length {
                        let n = client.read(&mut buf).unwrap_or(0);
                        if n == 0 {
                            return;
                        }
                        request.extend_from_slice(&buf[..n]);
                    }
                    let body = String::from_utf8_lossy(&request[body_at..]).into_owned();
                    let line = head.lines().next().unwrap_or_default().to_owned();
                    let names = |id: &String| match id.strip_prefix('/') {
                        Some(_) => line.contains(id.as_str()),
                        None => body.contains(&format!("\"{id}\"")),
                    };
                    let (ids, released) = &*gate;
                    let mut ids = ids.lock().unwrap();
                    if ids.iter().any(names) {
                        seen.lock().unwrap().push(line.clone());
                        count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        while ids.iter().any(names) {
                            ids = released.wait(ids).unwrap();
                        }
                    }
                    drop(ids);
                    let mut drops = drops.lock().unwrap();
                    if let Some(at) = drops.iter().position(names) {
                        drops.remove(at); // one drop per request dropped
                        return; // never forwarded: the connection closes
                    }
                    drop(drops);
                    // Forwarded with `connection: close`, so the answer ends with EOF.
                    let text = String::from_utf8_lossy(&request[..body_at]).into_owned();
                    let mut forwarded: String = text
                        .split("\r\n")
                        .filter(|l| !l.to_lowercase().starts_with("connection:"))
                        .filter(|l| !l.is_empty())
                        .map(|l| format!("{l}\r\n"))
                        .collect();
                    forwarded.push_str("connection: close\r\n\r\n");
                    let Ok(mut upstream) = std::net::TcpStream::connect(("127.0.0.1", target_port))
                    else {
                        return;
                    };
                    let _ = upstream.write_all(forwarded.as_bytes());
                    let _ = upstream.write_all(&request[body_at..]);
                    let mut answer = Vec::new();
                    let _ = upstream.read_to_end(&mut answer);
                    done.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let _ = client.write_all(&answer);
                });
            }
        });
        HoldingProxy {
            base: format!("http://127.0.0.1:{port}"),
            held,
            dropped,
            arrived,
            answered,
            lines,
        }
    }

    /// The request line of the `n`th request held (from 1).
    fn held_line(&self, n: usize) -> String {
        self.lines.lock().unwrap()[n - 1].clone()
    }

    fn hold(&self, id: &str) {
        self.held.0.lock().unwrap().push(id.to_owned());
    }

    /// Lets the one held request naming `id` go without forwarding it.
    fn drop_held(&self, id: &str) {
        self.dropped.lock().unwrap().push(id.to_owned());
        self.release(id);
    }

    /// Waits until `n` held requests arrived.
    fn wait_held(&self, n: usize) {
        self.wait_held_within(n, WAIT);
    }

    /// Waits until `n` held requests arrived, within `wait`.
    fn wait_held_within(&self, n: usize, wait: Duration) {
        let started = Instant::now();
        while self.arrived.load(std::sync::atomic::Ordering::SeqCst) < n {
            assert!(started.elapsed() < wait, "the held requests never arrived");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until `n` forwarded requests were answered upstream.
    fn wait_answered(&self, n: usize) {
        let started = Instant::now();
        while self.answered.load(std::sync::atomic::Ordering::SeqCst) < n {
            assert!(
                started.elapsed() < WAIT,
                "the forwarded requests were never answered"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits until every request `drop_held` named has been dropped.
    fn wait_dropped(&self) {
        let started = Instant::now();
        while !self.dropped.lock().unwrap().is_empty() {
            assert!(started.elapsed() < WAIT, "a held request was never dropped");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn release(&self, id: &str) {
        let (ids, released) = &*self.held;
        ids.lock().unwrap().retain(|held| held != id);
        released.notify_all();
    }
}

/// A gift whose charge is in flight when the host ends the room: the end waits for the
/// charge's answer, the ledger makes it and pays it to the host with the rest, and the
/// ended room records it as live (its leaderboard shows the gifter). Before, a room
/// already ended dropped the answer: the gifter charged and the host paid, the room's
/// leaderboard and actions without the gift.
#[test]
fn a_gift_in_flight_at_the_end_is_paid_and_recorded_in_the_ended_room() {
    let settlement = Settlement::start();
    let proxy = HoldingProxy::start(settlement.port(), &["at-the-end"]);
    let server = server_charging_at("gift-at-the-end", &proxy.base, &settlement);
    deposit(&settlement, "ana", 5);
    let room = create_room(&server, "weur");
    let mut ana = connect(&server, &room, "viewer", "ana");
    ana.send(&gift(1, "at-the-end", "heart", 1)).unwrap();
    proxy.wait_held(1);
    let ending = end_in_background(&server, &room);
    ana.wait_for(WAIT, |e| matches!(e, Event::RoomEnded))
        .expect("the room ended with the charge in flight");
    proxy.release("at-the-end");
    let ended = ending.join().unwrap().expect("the end answered");
    assert_eq!(ended.status, 200, "{:?}", ended.body);
    assert_eq!(
        ended.body["settlement"]["status"], "settled",
        "{:?}",
        ended.body
    );
    assert_eq!(host_balance_reaches(&settlement, 5), 5, "the host is paid");
    assert_eq!(balance_reaches(&settlement, "ana", 0), 0, "ana is charged");
    let admin = server.admin();
    let state = admin.get(&format!("/v1/rooms/{room}/state")).unwrap();
    assert_eq!(state.status, 200, "{:?}", state.body);
    let version = state.body["parts"]["leaderboard"]
        .as_u64()
        .unwrap_or_else(|| panic!("the ended room has a leaderboard: {:?}", state.body));
    let epoch = state.body["epoch"].as_u64().expect("epoch");
    let leaderboard = admin
        .get(&format!(
            "/v1/rooms/{room}/parts/leaderboard?v={version}&e={epoch}"
        ))
        .unwrap();
    assert_eq!(leaderboard.body[0]["user"], "ana", "{:?}", leaderboard.body);
    assert_eq!(leaderboard.body[0]["total"], 5, "{:?}", leaderboard.body);
}

/// A charge still in flight when its room ends and opens again belongs to the old
/// opening: its answer is not applied to the new one, whose requests are numbered from 1
/// again (it once announced the new room's pending gift with the old gifter's balance,
/// then panicked the room object on that gift's own answer). The old charge reaches a
/// settled ledger room and is refused; the new gift is announced once, with its own
/// gifter's balance, and the room keeps serving.
#[test]
fn a_charge_answered_after_its_room_reopened_is_not_the_new_openings() {
    let settlement = Settlement::start();
    let proxy = HoldingProxy::start(settlement.port(), &["old-1", "new-1"]);
    let server = server_charging_at("gifts-reopen", &proxy.base, &settlement);
    deposit(&settlement, "ana", 100);
    deposit(&settlement, "bob", 50);
    let connect = |room: &str, user: &str| connect(&server, room, "viewer", user);
    let room = create_room(&server, "weur");
    let mut ana = connect(&room, "ana");
    ana.send(&gift(1, "old-1", "heart", 2)).unwrap();
    proxy.wait_held(1);
    end_with_settlement(&server, &room, "settled");
    let reopen = json!({ "room": room, "host": "host-1", "title": "again" });
    let reopened = server.admin().post("/v1/rooms", &reopen).unwrap();
    assert_eq!(reopened.status, 201, "{:?}", reopened.body);
    let mut bob = connect(&room, "bob");
    bob.send(&gift(1, "new-1", "rose", 1)).unwrap();
    proxy.wait_held(2);
    // The old opening's answer first, then the new one's.
    proxy.release("old-1");
    std::thread::sleep(Duration::from_millis(500));
    proxy.release("new-1");
    let mut seen = Vec::new();
    let answer = bob
        .wait_for(WAIT, |e| {
            seen.push(e.clone());
            matches!(
                e,
                Event::Ack { client_id: 1, .. }
                    | Event::Error {
                        client_id: Some(1),
                        ..
                    }
            )
        })
        .unwrap();
    assert!(
        matches!(answer, Event::Ack { seq: Some(_), .. }),
        "{answer:?}"
    );
    bob.wait_for(WAIT, |e| {
        seen.push(e.clone());
        matches!(e, Event::Balance { .. })
    })
    .unwrap();
    // A sentinel comment: frames reach a socket in order, so anything of the gift's
    // came before its ack.
    bob.send(&ClientFrame::Comment {
        client_id: 2,
        text: "still here".into(),
    })
    .unwrap();
    bob.wait_for(WAIT, |e| {
        seen.push(e.clone());
        matches!(e, Event::Ack { client_id: 2, .. })
    })
    .expect("the room keeps serving");
    let balances: Vec<u64> = seen
        .iter()
        .filter_map(|e| match e {
            Event::Balance { balance } => Some(*balance),
            _ => None,
        })
        .collect();
    assert_eq!(balances, [49], "bob hears his own balance only: {seen:?}");
    let gifts = seen
        .iter()
        .filter(|e| matches!(e, Event::Action(a) if matches!(a.body, ActionBody::Gift { .. })))
        .count();
    assert_eq!(gifts, 1, "bob's gift is announced once: {seen:?}");
    let ana_account = settlement.api.get("/v1/accounts/dev:ana").unwrap();
    assert_eq!(
        ana_account.body["balance"], 100,
        "the old opening's charge reached a settled room and was refused"
    );
    settlement.assert_audit_holds();
}

/// One token on every socket it may hold, sending the same gift at once with a balance
/// that covers it once, then ending the room from several admin calls at once: the gift
/// is charged once and announced once, every copy is answered, and the host is paid
/// exactly what was gifted, once.
#[test]
fn a_gift_raced_from_one_token_s_sockets_and_ended_at_once_moves_money_once() {
    let settlement = Settlement::start();
    let server = server_charging_at("gifts-race", &settlement.api.base, &settlement);
    deposit(&settlement, "ana", 5); // one heart
    let room = create_room(&server, "weur");
    let mut bob = connect(&server, &room, "viewer", "bob");
    let tabs = ovation_proto::limits::USER_SOCKETS_PER_ROOM_MAX;
    let mut sockets: Vec<Socket> = (0..tabs)
        .map(|_| connect(&server, &room, "viewer", "ana"))
        .collect();
    for socket in &mut sockets {
        socket.send(&gift(1, "race-1", "heart", 1)).unwrap();
    }
    let answers: Vec<Event> = sockets
        .iter_mut()
        .map(|socket| answer_to(socket, 1))
        .collect();
    assert!(
        answers.iter().all(|a| matches!(a, Event::Ack { .. })),
        "every copy is answered as the one charge: {answers:?}"
    );
    // One announcement: the copies that came while the first was being charged waited
    // for it and carry its number; a copy after it (a replay) carries none.
    let numbers: std::collections::BTreeSet<u64> = answers
        .iter()
        .filter_map(|a| match a {
            Event::Ack { seq, .. } => *seq,
            _ => None,
        })
        .collect();
    assert_eq!(numbers.len(), 1, "announced once: {answers:?}");
    // bob's sentinel: frames reach a socket in order.
    bob.send(&ClientFrame::Comment {
        client_id: 1,
        text: "sentinel".into(),
    })
    .unwrap();
    let mut gifts_seen = 0;
    bob.wait_for(WAIT, |e| {
        if matches!(e, Event::Action(a) if matches!(a.body, ActionBody::Gift { .. })) {
            gifts_seen += 1;
        }
        matches!(e, Event::Ack { client_id: 1, .. })
    })
    .unwrap();
    assert_eq!(gifts_seen, 1, "bob sees one gift");

    let ends: Vec<serde_json::Value> = std::thread::scope(|scope| {
        let calls: Vec<_> = (0..4)
            .map(|_| {
                scope.spawn(|| {
                    let reply = server
                        .admin()
                        .post(&format!("/v1/rooms/{room}/end"), &json!({}))
                        .unwrap();
                    assert_eq!(reply.status, 200, "{:?}", reply.body);
                    reply.body
                })
            })
            .collect();
        calls.into_iter().map(|c| c.join().unwrap()).collect()
    });
    // Settled by one of them at least; an end that raced another may say pending and is
    // completed by ending again.
    assert!(
        ends.iter().any(|e| e["settlement"]["status"] == "settled"),
        "{ends:?}"
    );
    end_with_settlement(&server, &room, "settled");
    assert_eq!(host_balance_reaches(&settlement, 5), 5);
    let ana = settlement.api.get("/v1/accounts/dev:ana").unwrap();
    assert_eq!(ana.body["balance"], 0);
    settlement.assert_audit_holds();
}

/// The gift actions a socket resuming `room` from the start gets (the room's ring).
fn gifts_in_ring(server: &Server, room: &str, epoch: u64) -> usize {
    let resume = ovation_proto::Resume {
        epoch,
        action_cursor: 0,
        part_versions: Vec::new(),
    };
    // A new user each time: one user's connects are rate-limited.
    let user = format!("auditor-{}", ovation_tests::unique());
    let mut socket = Socket::connect(
        &server.base,
        room,
        &token("viewer", &user, room),
        Some(resume),
    )
    .unwrap();
    socket
        .snapshot(Duration::from_secs(10), 0)
        .unwrap()
        .iter()
        .filter(|e| matches!(e, Event::Action(a) if matches!(a.body, ActionBody::Gift { .. })))
        .count()
}

/// Money moves exactly once when workerd is killed (-9, the whole process group) in the
/// middle of each money step and restarted on the same data directory:
/// 1. a gift's charge sent and not answered (the room stored it as pending first; the
///    service makes it after the kill) is asked again by the restarted room, answered
///    `replayed`, and announced once;
/// 2. a room's settlement sent and never arriving, and
/// 3. a settlement the service applied whose answer was lost,
///    are completed by ending again. The host is paid each room's gift once, the gifter
///    charged once per gift, and the ledger audit holds.
#[test]
fn money_moves_once_when_workerd_is_killed_mid_charge_and_mid_settlement() {
    let settlement = Settlement::start();
    let proxy = HoldingProxy::start(settlement.port(), &[]);
    let data = scratch_dir("gifts-kill");
    let start = || settlement.workerd_through(&proxy.base, &data);
    let mut server = start();
    deposit(&settlement, "ana", 15); // three hearts
    let rooms: Vec<String> = (0..3).map(|_| create_room(&server, "weur")).collect();
    let mut epochs = Vec::new();
    for room in &rooms {
        let state = server
            .admin()
            .get(&format!("/v1/rooms/{room}/state"))
            .unwrap();
        epochs.push(state.body["epoch"].as_u64().expect("epoch"));
    }

    // 1. Killed with a charge in flight; the service makes it afterwards.
    proxy.hold("kill-charge");
    let mut ana = connect(&server, &rooms[0], "viewer", "ana");
    ana.send(&gift(1, "kill-charge", "heart", 1)).unwrap();
    proxy.wait_held(1);
    server.kill_hard();
    drop(ana);
    proxy.release("kill-charge");
    assert_eq!(balance_reaches(&settlement, "ana", 10), 10, "charged");
    server = start();
    let started = Instant::now();
    while gifts_in_ring(&server, &rooms[0], epochs[0]) == 0 {
        assert!(
            started.elapsed() < WAIT,
            "the recovered gift is never announced"
        );
    }
    assert_eq!(
        gifts_in_ring(&server, &rooms[0], epochs[0]),
        1,
        "announced once"
    );

    // 2. Killed with the settlement on its way; it never arrives.
    let gift_then_kill_mid_end = |server: &mut Server, room: &str, gift_id: &str, n: usize| {
        let mut ana = connect(server, room, "viewer", "ana");
        ana.send(&gift(1, gift_id, "heart", 1)).unwrap();
        assert!(matches!(
            answer_to(&mut ana, 1),
            Event::Ack { seq: Some(_), .. }
        ));
        proxy.hold("/settle");
        let end = end_in_background(server, room);
        proxy.wait_held(n);
        assert!(proxy.held_line(n).contains(room), "{}", proxy.held_line(n));
        server.kill_hard();
        let _ = end.join();
    };
    gift_then_kill_mid_end(&mut server, &rooms[1], "kill-settle-1", 2);
    proxy.drop_held("/settle");
    server = start();
    let status = |server: &Server, room: &str| {
        let state = server
            .admin()
            .get(&format!("/v1/rooms/{room}/state"))
            .unwrap();
        state.body["status"].as_str().unwrap_or_default().to_owned()
    };
    assert_eq!(
        status(&server, &rooms[1]),
        "ended",
        "stored before the settlement went"
    );
    // The room completes its end by itself (woken here by the status read; with nothing
    // to wake it, by the retry alarm stored with the end: the test below).
    let retry_wait = Duration::from_millis(ROOM_END_RETRY_INTERVAL_MS) + 3 * WAIT;
    assert_eq!(
        balance_reaches_within(&settlement, "host-1", 5, retry_wait),
        5,
        "room 1 settled by its own retry"
    );

    // 3. Killed with the settlement applied and its answer on its way back.
    gift_then_kill_mid_end(&mut server, &rooms[2], "kill-settle-2", 3);
    proxy.release("/settle");
    assert_eq!(
        host_balance_reaches(&settlement, 10),
        10,
        "room 2 settled, unanswered"
    );
    server = start();
    assert_eq!(status(&server, &rooms[2]), "ended");
    assert_eq!(
        gifts_in_ring(&server, &rooms[0], epochs[0]),
        1,
        "the recovered gift is still announced once"
    );

    // Ending again completes every end: each room's heart reaches the host once.
    for room in &rooms {
        end_with_settlement(&server, room, "settled");
    }
    assert_eq!(host_balance_reaches(&settlement, 15), 15);
    assert_eq!(balance_reaches(&settlement, "ana", 0), 0);
    settlement.assert_audit_holds();
    for room in &rooms {
        assert!(archived(&server, room), "{room} is archived");
    }
}

/// A room whose gifter ana (10 in her account) sent a heart under `gift_id`, its charge
/// held at the proxy, and the process killed -9 then (`data` holds its storage).
struct GiftHeldAtAKill {
    settlement: Settlement,
    proxy: HoldingProxy,
    data: std::path::PathBuf,
    room: String,
    epoch: u64,
}

fn gift_held_at_a_kill(name: &str, gift_id: &str) -> GiftHeldAtAKill {
    let settlement = Settlement::start();
    let proxy = HoldingProxy::start(settlement.port(), &[]);
    let data = scratch_dir(name);
    let mut server = settlement.workerd_through(&proxy.base, &data);
    deposit(&settlement, "ana", 10);
    let room = create_room(&server, "weur");
    let state = server
        .admin()
        .get(&format!("/v1/rooms/{room}/state"))
        .unwrap();
    let epoch = state.body["epoch"].as_u64().expect("epoch");
    proxy.hold(gift_id);
    let mut ana = connect(&server, &room, "viewer", "ana");
    ana.send(&gift(1, gift_id, "heart", 1)).unwrap();
    proxy.wait_held(1);
    server.kill_hard();
    drop(ana);
    GiftHeldAtAKill {
        settlement,
        proxy,
        data,
        room,
        epoch,
    }
}

/// A gift's pending record stored and its charge never reaching the settlement service
/// (held at the proxy, the process killed -9, the held request dropped): restarted, with
/// no request or socket to the room, its alarm sends the charge again, which the service
/// makes for the first time (not `replayed`, as when the first one landed); the gifter is
/// charged once and the gift announced once.
#[test]
fn a_gift_stored_whose_charge_never_left_is_charged_once_after_a_kill() {
    let GiftHeldAtAKill {
        settlement,
        proxy,
        data,
        room,
        epoch,
    } = gift_held_at_a_kill("gifts-pending-kill", "never-left");
    proxy.drop_held("never-left");
    proxy.wait_dropped();
    assert_eq!(
        balance_reaches(&settlement, "ana", 10),
        10,
        "not charged yet"
    );
    let server = settlement.workerd_through(&proxy.base, &data);
    assert_eq!(
        balance_reaches(&settlement, "ana", 5),
        5,
        "charged by the room's own alarm"
    );
    assert_eq!(gifts_in_ring(&server, &room, epoch), 1, "announced once");
    end_with_settlement(&server, &room, "settled");
    assert_eq!(host_balance_reaches(&settlement, 5), 5, "paid once");
    assert_eq!(balance_reaches(&settlement, "ana", 5), 5, "charged once");
    settlement.assert_audit_holds();
}

/// A gift's charge made by the service after the room was killed (-9), and the restarted
/// room's first ask of it failing (the service unreachable: the proxy drops it): the room
/// asks again by itself a second later, the service answers `replayed`, and the gift is
/// announced once, with no resend from its gifter (whose socket went with the kill).
/// Before, that one failed ask left the gift paid and never shown: the room waited for a
/// retry only the gifter could send.
#[test]
fn a_recovered_gift_whose_first_ask_fails_is_asked_again_and_announced_once() {
    let GiftHeldAtAKill {
        settlement,
        proxy,
        data,
        room,
        epoch,
    } = gift_held_at_a_kill("gifts-recovered-retry", "recovered");
    proxy.release("recovered");
    assert_eq!(balance_reaches(&settlement, "ana", 5), 5, "charged");

    proxy.hold("recovered");
    let server = settlement.workerd_through(&proxy.base, &data);
    // Woken by a read; its first ask is held, then dropped unanswered.
    assert_eq!(gifts_in_ring(&server, &room, epoch), 0, "not yet known");
    proxy.wait_held(2);
    proxy.drop_held("recovered");
    proxy.wait_dropped();
    let started = Instant::now();
    while gifts_in_ring(&server, &room, epoch) == 0 {
        assert!(
            started.elapsed() < WAIT,
            "the recovered gift is never asked for again"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(gifts_in_ring(&server, &room, epoch), 1, "announced once");
    end_with_settlement(&server, &room, "settled");
    assert_eq!(host_balance_reaches(&settlement, 5), 5, "paid once");
    assert_eq!(balance_reaches(&settlement, "ana", 5), 5, "charged once");
    settlement.assert_audit_holds();
}

/// A room opened while gifts were off (no settlement service configured) has no ledger
/// account for that opening. After the operator configures the service, the woken room
/// still sells nothing in it: a gift is refused `not_found` ("no gifts are sold") and the
/// `room` part shows no prices. Before, the woken room showed prices and every gift was
/// refused `room_ended` by a ledger that never opened the room, in a live room. Its next
/// opening sells.
#[test]
fn a_room_opened_while_gifts_were_off_sells_nothing_in_that_opening_once_they_are_on() {
    let settlement = Settlement::start();
    let data = scratch_dir("gifts-off-then-on");
    let mut off = Server::start(&data);
    let room = create_room(&off, "weur");
    off.stop();
    let server = settlement.server(&data);
    deposit(&settlement, "ana", 10);
    let mut ana = connect(&server, &room, "viewer", "ana");
    ana.send(&gift(1, "off-then-on", "heart", 1)).unwrap();
    let refused = answer_to(&mut ana, 1);
    assert!(
        matches!(&refused, Event::Error { code: ErrorCode::NotFound, message, .. }
            if message.contains("no gifts")),
        "{refused:?}"
    );
    let part = server
        .admin()
        .get(&format!("/v1/rooms/{room}/parts/room?v=1"))
        .unwrap();
    assert_eq!(part.status, 200, "{:?}", part.body);
    assert_eq!(part.body["gifts"], json!({}), "no prices shown");
    assert_eq!(
        balance_reaches(&settlement, "ana", 10),
        10,
        "nothing charged"
    );
    end_with_settlement(&server, &room, "never_opened");

    // Opened again with the service on: sold.
    let reply = server
        .admin()
        .post("/v1/rooms", &json!({"room": room, "host": "host-1"}))
        .unwrap();
    assert!(reply.status < 300, "{:?}", reply.body);
    let mut ana = connect(&server, &room, "viewer", "ana");
    ana.send(&gift(2, "on-again", "heart", 1)).unwrap();
    assert!(matches!(
        answer_to(&mut ana, 2),
        Event::Ack { seq: Some(_), .. }
    ));
    assert_eq!(balance_reaches(&settlement, "ana", 5), 5, "charged once");
}

/// An end stored, and the process killed (-9) before anything else: settling, archiving,
/// telling (the test hook `OVATION_FAULT_PAUSE_AFTER_END_STORED` holds the room right
/// after the end's write). Restarted, with no request to the room, the host is paid once
/// and the room archived, woken by an alarm stored by then. The end's own retry alarm
/// commits with the end (armed after it, it relied on the room's other deadlines, its
/// sockets' sweep, stored as alarms before: those woke it in this test too).
#[test]
fn an_end_killed_right_after_it_was_stored_completes_by_its_own_alarm() {
    let pause = [("OVATION_FAULT_PAUSE_AFTER_END_STORED", "1")];
    let (settlement, proxy, data, room) = gift_then_end_killed_at(
        "gifts-end-stored-kill",
        &pause,
        "fault_paused_after_end_stored",
    );
    let server = settlement.workerd_through(&proxy.base, &data);
    let retry_wait = Duration::from_millis(ROOM_END_RETRY_INTERVAL_MS) + 3 * WAIT;
    assert_eq!(
        balance_reaches_within(&settlement, "host-1", 5, retry_wait),
        5,
        "paid by the room's own alarm"
    );
    assert_eq!(balance_reaches(&settlement, "ana", 0), 0, "charged once");
    let started = Instant::now();
    while !archived(&server, &room) {
        assert!(started.elapsed() < WAIT, "never archived");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(live_entries(&server, &room), 0);
    settlement.assert_audit_holds();
}

/// A workerd charging through a fresh proxy with `vars`; a room where ana's heart was
/// charged and acknowledged (her socket then closed); its end started by the admin API
/// and held at the test hook that logs `marker`, and the process killed there (-9, the
/// whole group). Returns what the test restarts with, and the room.
fn gift_then_end_killed_at(
    name: &str,
    vars: &[(&str, &str)],
    marker: &str,
) -> (Settlement, HoldingProxy, std::path::PathBuf, String) {
    let settlement = Settlement::start();
    let proxy = HoldingProxy::start(settlement.port(), &[]);
    let data = scratch_dir(name);
    let mut server = settlement.workerd_through_with(&proxy.base, &data, vars);
    deposit(&settlement, "ana", 5);
    let room = create_room(&server, "weur");
    let mut ana = connect(&server, &room, "viewer", "ana");
    ana.send(&gift(1, "before-the-end", "heart", 1)).unwrap();
    let answer = answer_to(&mut ana, 1);
    assert!(
        matches!(answer, Event::Ack { seq: Some(_), .. }),
        "{answer:?}"
    );
    drop(ana);
    let end = end_in_background(&server, &room);
    server.wait_for_log(marker, WAIT);
    server.kill_hard();
    let _ = end.join();
    (settlement, proxy, data, room)
}

/// A room's archive killed (-9) between the directory's two writes: the archived entry
/// written, the live one not yet removed (the test hook
/// `OVATION_TEST_DIRECTORY_ARCHIVE_DELAY_MS` holds the directory there). Restarted, with
/// no request to the room, its end's retry archives again: the live entry goes, the room
/// is listed archived once, and the host, paid before the archive, is paid once.
#[test]
fn an_archive_killed_between_its_two_writes_is_completed_by_the_rooms_retry() {
    let delay = [("OVATION_TEST_DIRECTORY_ARCHIVE_DELAY_MS", "10000")];
    let (settlement, proxy, data, room) = gift_then_end_killed_at(
        "gifts-archive-kill",
        &delay,
        "test_directory_archive_delayed",
    );
    assert_eq!(
        host_balance_reaches(&settlement, 5),
        5,
        "settled before the archive"
    );
    let server = settlement.workerd_through(&proxy.base, &data);
    assert!(archived(&server, &room), "the archived entry was written");
    assert_eq!(
        live_entries(&server, &room),
        1,
        "killed before the live one went"
    );
    let retry_wait = Duration::from_millis(ROOM_END_RETRY_INTERVAL_MS) + 3 * WAIT;
    let started = Instant::now();
    while live_entries(&server, &room) > 0 {
        assert!(
            started.elapsed() < retry_wait,
            "still listed live after the archive's retry"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(archived(&server, &room));
    let listed = server
        .admin()
        .get("/v1/rooms?status=archived")
        .unwrap()
        .body;
    let rooms = listed["rooms"].as_array().cloned().unwrap_or_default();
    assert_eq!(rooms.iter().filter(|r| r["room"] == room).count(), 1);
    assert_eq!(host_balance_reaches(&settlement, 5), 5, "paid once");
    assert_eq!(balance_reaches(&settlement, "ana", 0), 0, "charged once");
    settlement.assert_audit_holds();
}

/// A host's `end_room` over its socket stores the end and tells everyone, then settles
/// the gifts and archives the room. A process killed between the two left the host
/// unpaid and the room listed live for good: nothing wakes an ended room whose sockets it
/// closed (no log line either). The end's retry alarm is stored with the end, so after
/// the restart, with no request to the room, its retry settles, and an operator's
/// `POST /end` racing that retry (both settlements in flight at once) still pays the host
/// once; the room is archived.
#[test]
fn an_end_over_the_hosts_socket_cut_short_by_a_kill_completes_by_itself() {
    let settlement = Settlement::start();
    let proxy = HoldingProxy::start(settlement.port(), &[]);
    let data = scratch_dir("gifts-end-kill");
    let start = || settlement.workerd_through(&proxy.base, &data);
    let mut server = start();
    deposit(&settlement, "ana", 5); // one heart
    let room = create_room(&server, "weur");
    let mut host = connect(&server, &room, "host", "host-1");
    let mut ana = connect(&server, &room, "viewer", "ana");
    ana.send(&gift(1, "end-kill", "heart", 1)).unwrap();
    assert!(matches!(
        answer_to(&mut ana, 1),
        Event::Ack { seq: Some(_), .. }
    ));
    proxy.hold("/settle");
    host.send(&ClientFrame::Command {
        client_id: 9,
        command: json!({ "command": "end_room" }).to_string(),
    })
    .unwrap();
    proxy.wait_held(1);
    assert!(
        proxy.held_line(1).contains("/settle"),
        "{}",
        proxy.held_line(1)
    );
    server.kill_hard();
    proxy.drop_held("/settle"); // never arrives
    proxy.wait_dropped();
    drop((host, ana));
    // The room's own retry is held, and an operator's `POST /end` races it.
    proxy.hold("/settle");
    let server = start();
    // Nothing asks the room anything: only its alarm can wake it (the retry is
    // `ROOM_END_RETRY_INTERVAL_MS` after the first try).
    let retry_wait = Duration::from_millis(ROOM_END_RETRY_INTERVAL_MS) + 3 * WAIT;
    proxy.wait_held_within(2, retry_wait);
    assert!(
        proxy.held_line(2).contains("/settle"),
        "{}",
        proxy.held_line(2)
    );
    let operator = end_in_background(&server, &room);
    proxy.wait_held(3);
    proxy.release("/settle");
    let ended = operator.join().unwrap().expect("the end answered");
    assert_eq!(ended.status, 200, "{:?}", ended.body);
    assert_eq!(
        ended.body["settlement"]["status"], "settled",
        "{:?}",
        ended.body
    );
    assert_eq!(
        balance_reaches_within(&settlement, "host-1", 5, retry_wait),
        5,
        "the host is paid once after the restart, the retry and the operator's end raced"
    );
    assert!(archived(&server, &room), "the ended room is archived");
    assert_eq!(balance_reaches(&settlement, "ana", 0), 0);
    settlement.assert_audit_holds();
    let state = server
        .admin()
        .get(&format!("/v1/rooms/{room}/state"))
        .unwrap();
    assert_eq!(state.body["status"], "ended");
    // Ending again settles nothing twice.
    end_with_settlement(&server, &room, "settled");
    assert_eq!(balance_reaches(&settlement, "host-1", 5), 5);
}

/// `POST /v1/rooms` for `room` on a thread of its own (a create the test races).
/// `POST /end` of `room` on a thread of its own: its answer, or `None` when the request
/// failed (the worker killed under it).
fn end_in_background(
    server: &Server,
    room: &str,
) -> std::thread::JoinHandle<Option<ovation_cli::Reply>> {
    let (admin, path) = (server.admin(), format!("/v1/rooms/{room}/end"));
    std::thread::spawn(move || admin.post(&path, &json!({})).ok())
}

fn create_in_background(
    server: &Server,
    room: &str,
) -> std::thread::JoinHandle<ovation_cli::Reply> {
    let (admin, room) = (server.admin(), room.to_owned());
    std::thread::spawn(move || {
        let body = json!({ "room": room, "host": "host-1" });
        admin.post("/v1/rooms", &body).unwrap()
    })
}

/// How many live entries of the tenant's directory name `room`.
fn live_entries(server: &Server, room: &str) -> usize {
    let live = server.admin().get("/v1/rooms?status=live").unwrap().body;
    let rooms = live["rooms"].as_array().cloned().unwrap_or_default();
    assert!(
        rooms.iter().all(|r| r.get("admitted_by").is_none()),
        "which create admitted an entry is the directory's own: {rooms:?}"
    );
    rooms.iter().filter(|r| r["room"] == room).count()
}

/// A create killed (-9, the whole process group) while it opens the room's ledger
/// account, which the service opens after the kill: the operator's retry of the create on
/// the restarted worker opens the room, listed once; a gift to it is charged once and
/// paid to the host once at its end, the room archived, and the ledger audit holds (the
/// account the killed create opened stays empty).
#[test]
fn a_create_killed_while_opening_its_ledger_account_is_completed_by_its_retry() {
    let settlement = Settlement::start();
    let proxy = HoldingProxy::start(settlement.port(), &["/open"]);
    let data = scratch_dir("gifts-create-kill");
    let start = || settlement.workerd_through(&proxy.base, &data);
    let mut server = start();
    deposit(&settlement, "ana", 5);
    let room = ovation_tests::room_id("weur");
    let first = create_in_background(&server, &room);
    proxy.wait_held(1);
    server.kill_hard();
    let _ = first.join(); // its connection broke with the kill
    proxy.release("/open");
    proxy.wait_answered(1); // the service opened it after the kill
    server = start();
    let body = json!({ "room": room, "host": "host-1" });
    let retried = server.admin().post("/v1/rooms", &body).unwrap();
    assert!(
        retried.status == 201 || retried.body["code"] == "room_exists",
        "{retried:?}"
    );
    assert_eq!(live_entries(&server, &room), 1, "listed once");
    let mut ana = connect(&server, &room, "viewer", "ana");
    ana.send(&gift(1, "after-the-kill", "heart", 1)).unwrap();
    let answer = answer_to(&mut ana, 1);
    assert!(
        matches!(answer, Event::Ack { seq: Some(_), .. }),
        "{answer:?}"
    );
    end_with_settlement(&server, &room, "settled");
    assert_eq!(host_balance_reaches(&settlement, 5), 5, "paid once");
    assert_eq!(balance_reaches(&settlement, "ana", 0), 0, "charged once");
    assert!(archived(&server, &room));
    assert_eq!(live_entries(&server, &room), 0);
    settlement.assert_audit_holds();
}

/// A create killed (-9, the whole process group) after the directory listed its room and
/// before the room opened, and never retried (an operator's script that died with it, or
/// a request whose client went away), once left the room listed live for good, a room
/// nobody could join, holding one of the tenant's places. The directory now asks the room
/// about each entry a create admitted, once the create is surely over
/// (`DIRECTORY_ENTRY_CHECK_AFTER_MS`, shortened here), after the restart by its stored
/// alarm: an entry of a create that never opened goes, both for a room never opened and
/// for one whose earlier opening ended and was archived (both due at once after the
/// restart, with one room asked per run of the alarm here: the second in the next run);
/// rooms that opened stay listed, the archived one stays archived, and a room created
/// again afterwards is listed once.
#[test]
fn a_create_killed_and_never_retried_leaves_no_room_listed() {
    let settlement = Settlement::start();
    let proxy = HoldingProxy::start(settlement.port(), &[]);
    let data = scratch_dir("gifts-create-kill-orphan");
    // One room asked about per run of the directory's alarm: the rest due in the next runs.
    let check_after = [
        ("OVATION_TEST_DIRECTORY_CHECK_AFTER_MS", "2500"),
        ("OVATION_TEST_DIRECTORY_CHECKS_PER_ALARM", "1"),
    ];
    let start = || settlement.workerd_through_with(&proxy.base, &data, &check_after);
    let mut server = start();
    let opened = create_room(&server, "weur");
    let ended = create_room(&server, "weur");
    end_with_settlement(&server, &ended, "settled");
    assert!(archived(&server, &ended));
    let never_opened = ovation_tests::room_id("weur");
    for (held, room) in [&never_opened, &ended].into_iter().enumerate() {
        proxy.hold("/open");
        let create = create_in_background(&server, room);
        proxy.wait_held(held + 1);
        assert_eq!(live_entries(&server, room), 1, "listed before it opens");
        server.kill_hard();
        let _ = create.join(); // its connection broke with the kill
        proxy.drop_held("/open");
        proxy.wait_dropped();
        if held == 1 {
            // Down until both checks are due: the restarted directory's first run has two.
            std::thread::sleep(Duration::from_millis(3_000));
        }
        server = start();
    }
    let started = Instant::now();
    while live_entries(&server, &never_opened) + live_entries(&server, &ended) > 0 {
        assert!(
            started.elapsed() < 3 * WAIT,
            "a room whose create died is still listed live"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        live_entries(&server, &opened),
        1,
        "an open room stays listed"
    );
    assert!(archived(&server, &ended), "the ended room stays archived");
    let body = json!({ "room": never_opened, "host": "host-1" });
    let created = server.admin().post("/v1/rooms", &body).unwrap();
    assert_eq!(created.status, 201, "{created:?}");
    // Past its own check: the entry of a create that opened the room stays.
    std::thread::sleep(Duration::from_millis(2_500));
    assert_eq!(live_entries(&server, &never_opened), 1, "listed once");
    assert_eq!(live_entries(&server, &opened), 1);
}

/// A create that takes longer than the directory's check of its entry (its ledger account's
/// open held past several asks; the check shortened to 500 ms here) is asked about again
/// while the room says a create is under way, never taken for one that died: the room it
/// opens stays listed, and still is after the next asks.
#[test]
fn a_create_slower_than_the_directorys_check_keeps_its_entry() {
    let settlement = Settlement::start();
    let proxy = HoldingProxy::start(settlement.port(), &["/open"]);
    let check_after = [("OVATION_TEST_DIRECTORY_CHECK_AFTER_MS", "500")];
    let data = scratch_dir("gifts-create-slow-check");
    let server = settlement.workerd_through_with(&proxy.base, &data, &check_after);
    let room = ovation_tests::room_id("weur");
    let create = create_in_background(&server, &room);
    proxy.wait_held(1);
    // Past several asks: each finds the create under way.
    std::thread::sleep(Duration::from_millis(2_500));
    assert_eq!(
        live_entries(&server, &room),
        1,
        "listed while its create runs"
    );
    proxy.release("/open");
    let created = create.join().unwrap();
    assert_eq!(created.status, 201, "{created:?}");
    std::thread::sleep(Duration::from_millis(1_500));
    assert_eq!(
        live_entries(&server, &room),
        1,
        "the room opened stays listed"
    );
}

/// Creates of one room sent at once (a client retrying before its first create answered):
/// one opens the room and its ledger account; the others wait for it and answer as a
/// create sent after it would, `409 room_exists`, without a second account. Before, each
/// create opened its own account while the first waited for the settlement service, and
/// the last replaced the first opening: gifts charged to the first account were never
/// paid to the host.
#[test]
fn creates_of_one_room_at_once_open_one_ledger_account() {
    let settlement = Settlement::start();
    let proxy = HoldingProxy::start(settlement.port(), &["/open"]);
    let server = server_charging_at("gifts-create-race", &proxy.base, &settlement);
    let room = ovation_tests::room_id("weur");
    let create = || create_in_background(&server, &room);
    let first = create();
    proxy.wait_held(1);
    // The retries arrive while the first create's account is being opened.
    let retries: Vec<_> = (0..3).map(|_| create()).collect();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        proxy.arrived.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "a retry opens an account of its own"
    );
    proxy.release("/open");
    let created = first.join().unwrap();
    assert_eq!(created.status, 201, "{:?}", created.body);
    for retry in retries {
        let answered = retry.join().unwrap();
        assert_eq!(
            (answered.status, answered.body["code"].as_str()),
            (409, Some("room_exists")),
            "{:?}",
            answered.body
        );
    }
    assert_eq!(
        proxy.arrived.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "one ledger account opened"
    );
    let state = server
        .admin()
        .get(&format!("/v1/rooms/{room}/state"))
        .unwrap();
    assert_eq!(
        state.body["epoch"], created.body["epoch"],
        "the opening answered is the room's"
    );
    // The room is listed once (a retry did not take the entry the create made).
    let listed = live_entries(&server, &room);
    assert_eq!(listed, 1);
}

/// A charge the settlement service never answers is answered `unavailable` once
/// `SETTLEMENT_CALL_TIMEOUT_MS` passed, not never (the gifter's action hung, and so did
/// whatever waited for the room's pump); the charge the service makes afterwards is
/// announced once, on the gifter's retry of the same id.
#[test]
fn a_charge_never_answered_is_unavailable_after_the_timeout_and_announced_on_its_retry() {
    use ovation_proto::limits::SETTLEMENT_CALL_TIMEOUT_MS;
    let settlement = Settlement::start();
    let proxy = HoldingProxy::start(settlement.port(), &["slow-1"]);
    let server = server_charging_at("gifts-timeout", &proxy.base, &settlement);
    deposit(&settlement, "ana", 10);
    let room = create_room(&server, "weur");
    let mut ana = connect(&server, &room, "viewer", "ana");
    let sent = Instant::now();
    ana.send(&gift(1, "slow-1", "heart", 1)).unwrap();
    proxy.wait_held(1);
    let timeout = Duration::from_millis(u64::from(SETTLEMENT_CALL_TIMEOUT_MS));
    let answer = ana
        .wait_for(timeout + WAIT, |e| {
            matches!(
                e,
                Event::Ack { client_id: 1, .. }
                    | Event::Error {
                        client_id: Some(1),
                        ..
                    }
            )
        })
        .expect("an answer");
    assert!(
        matches!(
            answer,
            Event::Error {
                code: ErrorCode::Unavailable,
                ..
            }
        ),
        "{answer:?}"
    );
    assert!(sent.elapsed() >= timeout, "answered before the timeout");
    // The service makes the charge afterwards; the retry is answered with it.
    proxy.release("slow-1");
    assert_eq!(balance_reaches(&settlement, "ana", 5), 5, "charged once");
    ana.send(&gift(2, "slow-1", "heart", 1)).unwrap();
    assert!(
        matches!(answer_to(&mut ana, 2), Event::Ack { seq: Some(_), .. }),
        "announced on the retry"
    );
    assert_eq!(
        balance_reaches(&settlement, "ana", 5),
        5,
        "still charged once"
    );
}

/// In a big room, a gift whose charge the settlement service holds does not hold the
/// other viewers of the gifter's shard: the room answers the shard's batch once its
/// effects are stored, and charges from its alarm. Before, the answer waited for every
/// charge in the batch, and the shard sends nothing more until answered: a neighbour's
/// comment waited for the gift's settlement round trip (up to its timeout).
#[test]
fn a_charge_held_at_the_settlement_service_does_not_hold_the_gifters_shard() {
    let settlement = Settlement::start();
    let proxy = HoldingProxy::start(settlement.port(), &["held-1"]);
    let server = server_charging_at("gifts-shard-held", &proxy.base, &settlement);
    deposit(&settlement, "ana", 10);
    let room = create_room(&server, "weur");
    // One shard: every viewer is on it.
    let grown = server
        .admin()
        .post(&format!("/v1/rooms/{room}/shards"), &json!({ "shards": 1 }))
        .unwrap();
    assert_eq!(grown.status, 200, "{:?}", grown.body);
    let mut ana = connect(&server, &room, "viewer", "ana");
    let mut bob = connect(&server, &room, "viewer", "bob");
    ana.send(&gift(1, "held-1", "heart", 1)).unwrap();
    proxy.wait_held(1);
    let sent = Instant::now();
    bob.send(&ClientFrame::Comment {
        client_id: 1,
        text: "still moving".into(),
    })
    .unwrap();
    assert!(
        matches!(answer_to(&mut bob, 1), Event::Ack { seq: Some(_), .. }),
        "bob's comment is acknowledged"
    );
    let waited = sent.elapsed();
    // Well under the charge's timeout (`SETTLEMENT_CALL_TIMEOUT_MS`, 10 s), which a
    // comment waiting for the charge would wait out.
    assert!(
        waited < Duration::from_secs(6),
        "bob's comment waited {waited:?} for ana's charge"
    );
    proxy.release("held-1");
    assert!(
        matches!(answer_to(&mut ana, 1), Event::Ack { seq: Some(_), .. }),
        "ana's gift is announced once charged"
    );
    assert_eq!(balance_reaches(&settlement, "ana", 5), 5, "charged once");
}

/// A big room kept busy (a viewer commenting every 40 ms keeps a flush due at every
/// tick) still charges its gifts: the alarm charges beside its ticks, not once the room
/// goes quiet, which a busy room never does.
#[test]
fn a_busy_big_room_charges_its_gifts_at_once() {
    let settlement = Settlement::start();
    let server = server_charging_at("gifts-busy-shard", &settlement.api.base, &settlement);
    deposit(&settlement, "ana", 10);
    let room = create_room(&server, "weur");
    let grown = server
        .admin()
        .post(&format!("/v1/rooms/{room}/shards"), &json!({ "shards": 1 }))
        .unwrap();
    assert_eq!(grown.status, 200, "{:?}", grown.body);
    let mut ana = connect(&server, &room, "viewer", "ana");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let chatter = {
        let (server_base, room, stop) = (server.base.clone(), room.clone(), stop.clone());
        std::thread::spawn(move || {
            let token = token("viewer", "cy", &room);
            let mut cy = Socket::connect(&server_base, &room, &token, None).expect("cy");
            let mut client_id = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                client_id += 1;
                let text = format!("busy {client_id}");
                let comment = ClientFrame::Comment { client_id, text };
                if cy.send(&comment).is_err() {
                    break;
                }
                let _ = cy.drain(Duration::from_millis(40));
            }
        })
    };
    std::thread::sleep(Duration::from_secs(1));
    let sent = Instant::now();
    ana.send(&gift(1, "busy-1", "heart", 1)).unwrap();
    let answer = answer_to(&mut ana, 1);
    let waited = sent.elapsed();
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    chatter.join().unwrap();
    assert!(
        matches!(answer, Event::Ack { seq: Some(_), .. }),
        "{answer:?}"
    );
    assert!(waited < Duration::from_secs(6), "charged after {waited:?}");
    assert_eq!(balance_reaches(&settlement, "ana", 5), 5, "charged once");
}

/// An end that arrives while a gift's charge is in flight settles the room after the
/// charge's answer: the host is paid the gift. A room settled first refused the charge
/// (its ledger account closed), and the gift sent before the end was lost.
#[test]
fn an_end_waits_for_the_charges_in_flight_before_it_settles() {
    let settlement = Settlement::start();
    let proxy = HoldingProxy::start(settlement.port(), &["late-1"]);
    let server = server_charging_at("gifts-end-in-flight", &proxy.base, &settlement);
    deposit(&settlement, "ana", 10);
    let room = create_room(&server, "weur");
    let mut ana = connect(&server, &room, "viewer", "ana");
    ana.send(&gift(1, "late-1", "heart", 1)).unwrap();
    proxy.wait_held(1);
    let ending = end_in_background(&server, &room);
    std::thread::sleep(Duration::from_millis(500));
    proxy.release("late-1");
    let ended = ending.join().unwrap().expect("the end answered");
    assert_eq!(ended.status, 200, "{:?}", ended.body);
    assert_eq!(
        (
            ended.body["settlement"]["status"].as_str(),
            ended.body["settlement"]["settled"].as_u64()
        ),
        (Some("settled"), Some(5)),
        "{:?}",
        ended.body
    );
    assert_eq!(
        host_balance_reaches(&settlement, 5),
        5,
        "the host is paid the gift"
    );
    assert_eq!(
        balance_reaches(&settlement, "ana", 5),
        5,
        "ana charged once"
    );
    settlement.assert_audit_holds();
}

/// A create that waited for another create of the room, which then failed (the ledger
/// did not open the room's accounts), opens the room itself, and the room is listed
/// live: the failed create removed the directory entry it made, which the waiting one
/// had found there.
#[test]
fn a_create_waiting_for_one_that_fails_opens_the_room_and_lists_it() {
    create_after_a_failed_one_is_listed("gifts-create-fails", &[]);
}

/// The same when the failed create's removal of its entry lands after the waiting create
/// opened the room and claimed the entry: the removal names the entry it made, and the
/// live room stays listed (it once left the directory, listed nowhere while live).
#[test]
fn a_failed_creates_late_removal_leaves_the_entry_of_the_create_that_opened_the_room() {
    let late = [("OVATION_TEST_DIRECTORY_REMOVE_DELAY_MS", "3000")];
    create_after_a_failed_one_is_listed("gifts-create-fails-late", &late);
}

fn create_after_a_failed_one_is_listed(name: &str, vars: &[(&str, &str)]) {
    let settlement = Settlement::start();
    let proxy = HoldingProxy::start(settlement.port(), &["/open"]);
    let server = settlement.server_through_with(&proxy.base, &scratch_dir(name), vars);
    let room = ovation_tests::room_id("weur");
    let create = || create_in_background(&server, &room);
    let first = create();
    proxy.wait_held(1);
    let retry = create();
    std::thread::sleep(Duration::from_millis(500));
    proxy.drop_held("/open"); // the first create's open never reaches the ledger
    let opened = retry.join().unwrap();
    assert_eq!(opened.status, 201, "{:?}", opened.body);
    let failed = first.join().unwrap();
    assert_eq!(
        (failed.status, failed.body["code"].as_str()),
        (502, Some("settlement_unavailable")),
        "{:?}",
        failed.body
    );
    let listed = live_entries(&server, &room);
    assert_eq!(listed, 1, "the room opened is listed");
}
