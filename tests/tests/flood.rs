//! A connection flood against the real worker under wrangler dev: one viewer token opening
//! and closing sockets from 200 clients as fast as they can must cost the room little; a
//! legit viewer's comments are acknowledged within a second throughout, and none is
//! refused. The Worker refuses the flood (`429 rate_limited`, `ovation_room::ConnectLimiter`)
//! before it wakes the room object. Half the flood says its Hello in the upgrade
//! (`?hello=1`, as the SDK's first join does), so each socket that gets through costs the
//! room a Welcome at once; those sockets read their Welcome before they close. The same
//! flood against a big room reaches the flooder's shard straight from the router's memory
//! of the room's shard count; the legit viewer's acks come back through the room.

use ovation_cli::{Socket, SocketEnd};
use ovation_proto::limits::{USER_CONNECTS_BURST, USER_CONNECTS_PER_S};
use ovation_proto::{ClientFrame, Event};
use ovation_tests::{create_room, shared, token};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const FLOOD_CLIENTS: usize = 200;
const FLOOD_S: u64 = 20;
/// What a legit viewer may wait for an acknowledgement while the flood runs.
const ACK_MS_MAX: u128 = 1_000;
/// A legit viewer comments at a human pace.
const COMMENT_EVERY: Duration = Duration::from_millis(1_000);

#[test]
fn a_connection_flood_does_not_stall_the_room() {
    let server = shared();
    let room = create_room(server, "weur");
    flood_while_a_viewer_comments(server, &room);
}

/// The same against a big room: the flood's upgrades after the first go straight to the
/// flooder's shard from the router's memory of the room's shard count (`join.rs`), and
/// the legit viewer (on its own shard or the same) comments through the room.
#[test]
fn a_connection_flood_does_not_stall_a_big_room() {
    let server = shared();
    let room = ovation_tests::create_big_room(server, 10_000);
    flood_while_a_viewer_comments(server, &room);
}

/// One flood at a time: two at once on this machine's two cores would measure each
/// other, not the room.
static ONE_FLOOD_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn flood_while_a_viewer_comments(server: &ovation_tests::Server, room: &str) {
    let _alone = ONE_FLOOD_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let room = room.to_owned();
    let mut legit = Socket::connect(&server.base, &room, &token("viewer", "legit", &room), None)
        .expect("legit viewer connects");
    legit
        .wait_for(Duration::from_secs(10), |e| matches!(e, Event::Welcome(_)))
        .expect("welcome");

    let stop = Arc::new(AtomicBool::new(false));
    let opened = Arc::new(AtomicU64::new(0));
    let welcomed = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let attacker = token("viewer", "flooder", &room);
    let flood: Vec<_> = (0..FLOOD_CLIENTS)
        .map(|client| {
            let (stop, opened, refused) = (stop.clone(), opened.clone(), refused.clone());
            let welcomed = welcomed.clone();
            let (base, room, attacker) = (server.base.clone(), room.clone(), attacker.clone());
            let hello_in_upgrade = client % 2 == 0;
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let socket = if hello_in_upgrade {
                        Socket::open_with_query(
                            &base,
                            &room,
                            &attacker,
                            ovation_proto::UPGRADE_HELLO_QUERY,
                        )
                    } else {
                        Socket::connect(&base, &room, &attacker, None)
                    };
                    match socket {
                        Ok(mut socket) => {
                            opened.fetch_add(1, Ordering::Relaxed);
                            if hello_in_upgrade {
                                // Closed at the per-user socket cap is also an answer.
                                if let Ok(Event::Welcome(_)) = socket
                                    .wait_for(Duration::from_secs(10), |e| {
                                        matches!(e, Event::Welcome(_))
                                    })
                                {
                                    welcomed.fetch_add(1, Ordering::Relaxed);
                                }
                            }
                            socket.close();
                        }
                        Err(SocketEnd::Refused(429, _)) => {
                            refused.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(other) => panic!("a flood upgrade failed otherwise: {other:?}"),
                    }
                }
            })
        })
        .collect();

    let started = Instant::now();
    let mut latencies_ms = Vec::new();
    let mut client_id = 0;
    while started.elapsed() < Duration::from_secs(FLOOD_S) {
        client_id += 1;
        let sent = Instant::now();
        legit
            .send(&ClientFrame::Comment {
                client_id,
                text: format!("still here {client_id}"),
            })
            .expect("send");
        let answer = legit
            .wait_for(Duration::from_secs(30), |e| match e {
                Event::Ack { client_id: c, .. } => *c == client_id,
                Event::Error { client_id: c, .. } => *c == Some(client_id),
                _ => false,
            })
            .expect("an answer to every comment");
        let latency_ms = sent.elapsed().as_millis();
        assert!(
            matches!(answer, Event::Ack { .. }),
            "comment {client_id} refused during the flood: {answer:?}"
        );
        latencies_ms.push(latency_ms);
        std::thread::sleep(COMMENT_EVERY.saturating_sub(sent.elapsed()));
    }
    stop.store(true, Ordering::Relaxed);
    for client in flood {
        client.join().unwrap();
    }
    let attempts = opened.load(Ordering::Relaxed) + refused.load(Ordering::Relaxed);
    eprintln!(
        "flood: {attempts} connection attempts in {FLOOD_S} s ({} upgraded, {} welcomed \
         from the upgrade's Hello, {} refused); legit acks (ms): {latencies_ms:?}",
        opened.load(Ordering::Relaxed),
        welcomed.load(Ordering::Relaxed),
        refused.load(Ordering::Relaxed)
    );
    assert!(
        attempts > FLOOD_CLIENTS as u64,
        "the flood did not run: {attempts} attempts"
    );
    // The Worker refused the flood before the room: one user's upgrades that got through
    // are the burst and the rate.
    let admitted_max =
        u64::from(USER_CONNECTS_BURST) + u64::from(USER_CONNECTS_PER_S) * (FLOOD_S + 2);
    assert!(
        opened.load(Ordering::Relaxed) <= admitted_max,
        "{} upgrades of one user reached the room",
        opened.load(Ordering::Relaxed)
    );
    assert!(
        welcomed.load(Ordering::Relaxed) > 0,
        "no socket of the flood was welcomed from its upgrade's Hello: the path went untested"
    );
    let worst_ms = latencies_ms.iter().copied().max().unwrap_or(0);
    assert!(
        worst_ms < ACK_MS_MAX,
        "a legit viewer waited {worst_ms} ms for an ack during the flood: {latencies_ms:?}"
    );
}
