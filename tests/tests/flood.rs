//! Floods from one token against the real worker under wrangler dev.
//!
//! Connections: one viewer token opening and closing sockets from 200 clients as fast as
//! they can must cost the room little; a legit viewer's comments are acknowledged within
//! a second throughout (judged as below), and none is refused. The Worker refuses the flood (`429
//! rate_limited`, `ovation_room::UserRateLimiter`) before it wakes the room object. Half
//! the flood says its Hello in the upgrade (`?hello=1`, as the SDK's first join does), so
//! each socket that gets through costs the room a Welcome at once; those sockets read
//! their Welcome before they close. The same flood against a big room reaches the flooder's
//! shard straight from the router's memory of the room's shard count; the legit viewer's
//! acks come back through the room.
//!
//! Reads: one token's 200 clients read the room over HTTP (the pull transport's
//! `…/events`) as fast as they can; the room object answers that user its read rate and
//! refuses the rest `429 rate_limited` with `retry-after`, and a legit viewer's comments
//! are acknowledged within a second throughout.
//!
//! Likes: one token's 200 clients like as fast as their sockets let them, while viewers
//! with their own tokens like at a human pace. Every frame is answered; the flooder gets
//! no more than its like rate and is told `rate_limited` for the rest; the others' likes
//! are acknowledged within a second; and the room counts exactly the likes acknowledged.
//!
//! "Within a second" is the median of the others' acks; none may take three seconds
//! (`ovation_tests::assert_acked_in_time`): the flood's client threads share this
//! machine's two cores with the server, so one ack now and then waits on them.

use ovation_cli::{Socket, SocketEnd};
use ovation_proto::limits::{
    LIKES_BURST, LIKES_RATE_PER_S, LIKE_COUNT_PER_FRAME_MAX, USER_CONNECTS_BURST,
    USER_CONNECTS_PER_S, USER_READS_BURST, USER_READS_PER_S,
};
use ovation_proto::{ClientFrame, CloseCode, ErrorCode, Event};
use ovation_tests::{assert_acked_in_time, create_room, one_flood_at_a_time, shared, token};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const FLOOD_CLIENTS: usize = 200;
const FLOOD_S: u64 = 20;
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

/// Takes this binary's one flood and connects the legit viewer, welcomed.
fn alone_with_a_legit_viewer(
    server: &ovation_tests::Server,
    room: &str,
) -> (std::sync::MutexGuard<'static, ()>, Socket) {
    let alone = one_flood_at_a_time();
    let mut legit = Socket::connect(&server.base, room, &token("viewer", "legit", room), None)
        .expect("legit viewer connects");
    legit
        .wait_for(Duration::from_secs(10), |e| matches!(e, Event::Welcome(_)))
        .expect("welcome");
    (alone, legit)
}

fn flood_while_a_viewer_comments(server: &ovation_tests::Server, room: &str) {
    let (_alone, mut legit) = alone_with_a_legit_viewer(server, room);
    let room = room.to_owned();

    let stop = Arc::new(AtomicBool::new(false));
    let opened = Arc::new(AtomicU64::new(0));
    let welcomed = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let attacker = token("viewer", "flooder", &room);
    let flood_started = Instant::now();
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

    let latencies_ms = comment_while(&mut legit, Duration::from_secs(FLOOD_S));
    stop.store(true, Ordering::Relaxed);
    for client in flood {
        client.join().unwrap();
    }
    // The upgrade bucket refilled for as long as the flood ran (its ramp, the last ack and
    // the clients' last attempts included), rounded up.
    let flood_ran_s = flood_started.elapsed().as_secs() + 1;
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
        u64::from(USER_CONNECTS_BURST) + u64::from(USER_CONNECTS_PER_S) * flood_ran_s;
    assert!(
        opened.load(Ordering::Relaxed) <= admitted_max,
        "{} upgrades of one user reached the room",
        opened.load(Ordering::Relaxed)
    );
    assert!(
        welcomed.load(Ordering::Relaxed) > 0,
        "no socket of the flood was welcomed from its upgrade's Hello: the path went untested"
    );
    assert_acked_in_time("a legit viewer's comment", "the flood", &latencies_ms);
}

#[test]
fn a_like_flood_from_one_token_is_rate_limited_told_and_counted_exactly() {
    let server = shared();
    let room = create_room(server, "weur");
    like_flood_while_others_like(server, &room, 1);
}

/// The same on a big room's shards (the new likes path: a shard acknowledges likes and
/// sends their count up in numbered batches): one legit liker shares the flooder's shard,
/// another is on the other one.
#[test]
fn a_like_flood_from_one_token_on_a_big_rooms_shard_is_counted_exactly() {
    let server = shared();
    let room = ovation_tests::create_big_room(server, 10_000);
    like_flood_while_others_like(server, &room, 2);
}

const LIKE_FLOOD_S: u64 = 10;
const LIKE_FLOODER: &str = "like-flooder";
/// Like frames a flood socket sends before it reads their answers.
const LIKE_FRAMES_AT_ONCE: u64 = 10;

/// What one side of the like flood saw: like frames acknowledged (in likes) and refused.
#[derive(Default)]
struct LikesSeen {
    acked: u64,
    refused: u64,
    refused_not_rate_limited: Vec<String>,
    latencies_ms: Vec<u128>,
    /// Sockets the room closed `4005` for sending on past the frame rate, and the likes
    /// of their frames left unanswered then (counted or not: an ack may have been on its
    /// way when the socket closed).
    closed_too_many_frames: u64,
    unanswered_at_close: u64,
}

impl LikesSeen {
    fn add(&mut self, other: LikesSeen) {
        self.acked += other.acked;
        self.refused += other.refused;
        self.refused_not_rate_limited
            .extend(other.refused_not_rate_limited);
        self.latencies_ms.extend(other.latencies_ms);
        self.closed_too_many_frames += other.closed_too_many_frames;
        self.unanswered_at_close += other.unanswered_at_close;
    }
}

fn like_flood_while_others_like(server: &ovation_tests::Server, room: &str, shards: u16) {
    let _alone = one_flood_at_a_time();
    let flooder_shard = ovation_proto::shard_of(LIKE_FLOODER, shards);
    // Legit likers: one on the flooder's shard, one on another (when there is one).
    let legit_users: Vec<String> = [true, false]
        .into_iter()
        .filter_map(|same| {
            (0..1_000)
                .map(|i| format!("legit-liker-{i}"))
                .find(|u| (ovation_proto::shard_of(u, shards) == flooder_shard) == same)
        })
        .collect();
    assert_eq!(legit_users.len(), usize::from(shards), "{legit_users:?}");

    let stop = Arc::new(AtomicBool::new(false));
    let welcomed = Arc::new(AtomicU64::new(0));
    let attacker = token("viewer", LIKE_FLOODER, room);
    let started = Instant::now();
    let flood: Vec<_> = (0..FLOOD_CLIENTS as u64)
        .map(|client| {
            let (stop, welcomed) = (stop.clone(), welcomed.clone());
            let (base, room, attacker) = (server.base.clone(), room.to_owned(), attacker.clone());
            std::thread::spawn(move || {
                let mut seen = LikesSeen::default();
                let mut next = 0_u64;
                while !stop.load(Ordering::Relaxed) {
                    // Most upgrades are refused (429 at the Worker, 4409 at the user's
                    // socket cap): that is the flood's cost to the room.
                    let Ok(mut socket) = Socket::connect(&base, &room, &attacker, None) else {
                        std::thread::sleep(Duration::from_millis(50));
                        continue;
                    };
                    if socket
                        .wait_for(Duration::from_secs(10), |e| matches!(e, Event::Welcome(_)))
                        .is_err()
                    {
                        continue;
                    }
                    welcomed.fetch_add(1, Ordering::Relaxed);
                    while !stop.load(Ordering::Relaxed) {
                        let ids: Vec<u64> = (0..LIKE_FRAMES_AT_ONCE)
                            .map(|_| {
                                next += 1;
                                (client << 32) | next
                            })
                            .collect();
                        for &client_id in &ids {
                            let like = ClientFrame::Like {
                                client_id,
                                count: LIKE_COUNT_PER_FRAME_MAX,
                            };
                            // Closed for its frame rate: the next loop connects again.
                            let _ = socket.send(&like);
                        }
                        let answers = answers_to(&mut socket, &ids, LIKE_COUNT_PER_FRAME_MAX);
                        let closed = answers.closed_too_many_frames > 0;
                        seen.add(answers);
                        if closed {
                            break;
                        }
                    }
                    socket.close();
                }
                seen
            })
        })
        .collect();

    let legit: Vec<_> = legit_users
        .iter()
        .map(|user| {
            let (base, room, user) = (server.base.clone(), room.to_owned(), user.clone());
            std::thread::spawn(move || {
                let mut socket =
                    Socket::connect(&base, &room, &token("viewer", &user, &room), None)
                        .expect("a legit liker connects");
                socket
                    .wait_for(Duration::from_secs(10), |e| matches!(e, Event::Welcome(_)))
                    .expect("welcome");
                let mut seen = LikesSeen::default();
                let mut client_id = 0;
                // 10 frames of one like a second: half the like rate.
                while started.elapsed() < Duration::from_secs(LIKE_FLOOD_S) {
                    client_id += 1;
                    let sent = Instant::now();
                    socket
                        .send(&ClientFrame::Like {
                            client_id,
                            count: 1,
                        })
                        .expect("send");
                    seen.add(answers_to(&mut socket, &[client_id], 1));
                    seen.latencies_ms.push(sent.elapsed().as_millis());
                    std::thread::sleep(Duration::from_millis(100).saturating_sub(sent.elapsed()));
                }
                (user, seen)
            })
        })
        .collect();

    let legit: Vec<(String, LikesSeen)> = legit.into_iter().map(|t| t.join().unwrap()).collect();
    stop.store(true, Ordering::Relaxed);
    let mut flooder = LikesSeen::default();
    for client in flood {
        flooder.add(client.join().unwrap());
    }
    let flood_s = started.elapsed().as_secs() + 1;
    let acked = flooder.acked + legit.iter().map(|(_, s)| s.acked).sum::<u64>();
    let counted = ovation_tests::likes_counted_settled(server, room, acked);
    eprintln!(
        "like flood ({shards} object(s)): {} flood sockets welcomed; flooder {} likes \
         acknowledged, {} frames refused, {} sockets closed 4005; legit {:?}; {counted} \
         counted",
        welcomed.load(Ordering::Relaxed),
        flooder.acked,
        flooder.refused,
        flooder.closed_too_many_frames,
        legit
            .iter()
            .map(|(u, s)| (u, s.acked, s.refused, s.latencies_ms.iter().max()))
            .collect::<Vec<_>>()
    );
    assert!(
        welcomed.load(Ordering::Relaxed) > 0 && flooder.refused > 0,
        "the flood ran into the like rate"
    );
    assert!(
        flooder.refused_not_rate_limited.is_empty(),
        "flood frames refused otherwise: {:?}",
        flooder.refused_not_rate_limited
    );
    let flooder_max = u64::from(LIKES_BURST) + u64::from(LIKES_RATE_PER_S) * flood_s;
    assert!(
        flooder.acked <= flooder_max,
        "one token got {} likes in {flood_s} s through {FLOOD_CLIENTS} clients (at most \
         {flooder_max})",
        flooder.acked
    );
    for (user, seen) in &legit {
        assert_eq!(
            seen.refused, 0,
            "{user}'s likes were refused during the flood"
        );
        assert_eq!(seen.closed_too_many_frames, 0, "{user} was closed");
        assert_acked_in_time(&format!("{user}'s like"), "the flood", &seen.latencies_ms);
        assert!(seen.acked >= 10, "{user} liked: {}", seen.acked);
    }
    // Every acknowledged like counted once; of a flood socket closed `4005`, the likes of
    // frames left unanswered may be counted too (their acks went with the socket), never
    // more.
    let unconfirmed = flooder.unanswered_at_close;
    assert!(
        acked <= counted && counted <= acked + unconfirmed,
        "{counted} counted, {acked} acknowledged, {unconfirmed} unanswered at a close"
    );
}

/// Reads the answer to each of these like frames (of `count` likes each); every frame is
/// answered within 10 s, with an ack or a refusal, unless the room closed the socket
/// `4005` for sending on past its frame rate (the frames not answered were not counted).
fn answers_to(socket: &mut Socket, ids: &[u64], count: u32) -> LikesSeen {
    let mut waiting: std::collections::BTreeSet<u64> = ids.iter().copied().collect();
    let mut seen = LikesSeen::default();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !waiting.is_empty() {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "like frames unanswered for 10 s: {waiting:?}"
        );
        match socket.next_event(left) {
            Ok(Some(Event::Ack { client_id, .. })) if waiting.remove(&client_id) => {
                seen.acked += u64::from(count);
            }
            Ok(Some(Event::Error {
                client_id: Some(client_id),
                code,
                message,
                ..
            })) if waiting.remove(&client_id) => {
                seen.refused += 1;
                if code != ErrorCode::RateLimited {
                    seen.refused_not_rate_limited
                        .push(format!("{code:?}: {message}"));
                }
            }
            Ok(_) => {}
            Err(SocketEnd::Closed(code, _)) if code == CloseCode::TooManyFrames.code() => {
                seen.closed_too_many_frames += 1;
                seen.unanswered_at_close += waiting.len() as u64 * u64::from(count);
                return seen;
            }
            Err(end) => panic!("a liker's socket ended with {waiting:?} unanswered: {end:?}"),
        }
    }
    seen
}

/// One token's 200 clients read the room's events as fast as they can, while a legit
/// viewer comments: the room object answers that user no more than its read rate, tells
/// the rest `429 rate_limited` with a `retry-after`, and the legit viewer's comments are
/// acknowledged within a second throughout. (Without the read rate every read reached
/// the room object: thousands a second from one token.)
#[test]
fn a_read_flood_from_one_token_is_refused_and_does_not_stall_the_room() {
    let server = shared();
    let room = create_room(server, "weur");
    let (_alone, mut legit) = alone_with_a_legit_viewer(server, &room);
    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let reader = token("viewer", "reader", &room);
    let started = Instant::now();
    let flood: Vec<_> = (0..FLOOD_CLIENTS)
        .map(|_| {
            let (stop, answered, refused) = (stop.clone(), answered.clone(), refused.clone());
            let api = ovation_cli::Api::new(&server.base, &reader);
            let path = format!("/v1/rooms/{room}/events?since=0");
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let reply = api.get(&path).expect("an answer");
                    match reply.status {
                        200 => answered.fetch_add(1, Ordering::Relaxed),
                        429 => {
                            assert_eq!(reply.body["code"], "rate_limited", "{:?}", reply.body);
                            let wait: u64 = reply
                                .retry_after
                                .as_deref()
                                .and_then(|s| s.parse().ok())
                                .expect("a retry-after");
                            assert!(wait >= 1, "retry-after {wait}");
                            refused.fetch_add(1, Ordering::Relaxed)
                        }
                        other => panic!("a read answered {other}: {:?}", reply.body),
                    };
                }
            })
        })
        .collect();
    let latencies_ms = comment_while(&mut legit, Duration::from_secs(LIKE_FLOOD_S));
    stop.store(true, Ordering::Relaxed);
    for client in flood {
        client.join().unwrap();
    }
    let flood_s = started.elapsed().as_secs() + 1;
    let (answered, refused) = (
        answered.load(Ordering::Relaxed),
        refused.load(Ordering::Relaxed),
    );
    eprintln!(
        "read flood: {answered} reads answered, {refused} refused in {flood_s} s; legit acks \
         (ms): {latencies_ms:?}"
    );
    let answered_max = u64::from(USER_READS_BURST) + u64::from(USER_READS_PER_S) * flood_s;
    assert!(
        answered <= answered_max,
        "one token got {answered} reads answered in {flood_s} s (at most {answered_max})"
    );
    assert!(
        refused > answered,
        "the flood ran into the read rate: {refused} refused"
    );
    assert_acked_in_time("a legit viewer's comment", "the read flood", &latencies_ms);
}

/// The flood's clients start for this long before the legit viewer measures: on this
/// 2-core machine, 200 client threads starting at once delay everything on it, the
/// server included, which is the load generator's cost, not the room's.
const FLOOD_RAMP: Duration = Duration::from_millis(500);

/// Comments once a second for `how_long` (after `FLOOD_RAMP`) and returns each ack's
/// wait (ms); every comment must be acknowledged, none refused.
fn comment_while(socket: &mut Socket, how_long: Duration) -> Vec<u128> {
    std::thread::sleep(FLOOD_RAMP);
    let started = Instant::now();
    let mut latencies_ms = Vec::new();
    let mut client_id = 0;
    while started.elapsed() < how_long {
        client_id += 1;
        let sent = Instant::now();
        socket
            .send(&ClientFrame::Comment {
                client_id,
                text: format!("still here {client_id}"),
            })
            .expect("send");
        let answer = socket
            .wait_for(Duration::from_secs(30), |e| match e {
                Event::Ack { client_id: c, .. } => *c == client_id,
                Event::Error { client_id: c, .. } => *c == Some(client_id),
                _ => false,
            })
            .expect("an answer to every comment");
        assert!(
            matches!(answer, Event::Ack { .. }),
            "comment {client_id} refused during the flood: {answer:?}"
        );
        latencies_ms.push(sent.elapsed().as_millis());
        std::thread::sleep(COMMENT_EVERY.saturating_sub(sent.elapsed()));
    }
    latencies_ms
}
