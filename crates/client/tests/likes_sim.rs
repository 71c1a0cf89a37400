//! Seeded simulation of likes: sans-IO clients against the real sans-IO room over links
//! whose delay jitters (in order, as a TCP stream is: a late frame holds back the next,
//! so two frames can arrive closer together than they left), on a fake clock.
//!
//! What a user relies on: every like the app made is counted by the room exactly once,
//! or reported to the app in a `LikesDropped` event; never dropped quietly. Ten viewers
//! tapping fifty times quickly make exactly 500, also when two of them are one user in
//! two tabs (they share the room's per-user rate, so the room refuses frames and the
//! clients must send the refused counts again).
//!
//! `OVATION_LIKES_SIM_SEEDS=N` runs more seeds.

use ovation_client::{Client, ClientEvent, Config, Status, Transmit, TransportMode};
use ovation_proto::limits::CONNECTION_LIFETIME_MS_MAX;
use ovation_proto::Role;
use ovation_room::{Identity, Output, Room, RoomInfo};
use std::collections::VecDeque;

mod common;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

enum Down {
    Frame(Vec<u8>),
    Text,
}

struct Viewer {
    user: String,
    client: Client,
    connection: u64,
    socket: u64,
    latency_ms: u64,
    up: VecDeque<(u64, Vec<u8>)>,
    down: VecDeque<(u64, Down)>,
    /// Taps still to make, and when the next one is.
    taps_left: u32,
    next_tap_ms: u64,
    queued: u64,
    dropped: u64,
}

impl Viewer {
    /// In order: never before what is already on the link.
    fn send_up(&mut self, at_ms: u64, frame: Vec<u8>) {
        let at_ms = self.up.back().map_or(at_ms, |(last, _)| at_ms.max(*last));
        self.up.push_back((at_ms, frame));
    }
    fn send_down(&mut self, at_ms: u64, message: Down) {
        let at_ms = self.down.back().map_or(at_ms, |(last, _)| at_ms.max(*last));
        self.down.push_back((at_ms, message));
    }
}

struct Outcome {
    counted: u64,
    queued: u64,
    dropped: u64,
}

fn run(seed: u64, viewers: usize, taps: u32, users: usize, tap_gap_ms_max: u64) -> Outcome {
    let mut rng = Rng(seed);
    let mut now = 10_000_000;
    let mut room = Room::create(
        RoomInfo {
            room_id: "weur-likes".into(),
            host_user: "host".into(),
            title: "likes".into(),
            expected_audience: 10,
        },
        1,
        now,
    );
    let jitter_ms = [5, 40, 120][rng.below(3) as usize];
    let mut list: Vec<Viewer> = (0..viewers)
        .map(|i| Viewer {
            user: format!("u{}", i % users),
            client: Client::new(
                Config {
                    room: "weur-likes".into(),
                    transport: TransportMode::Ws,
                    seed: rng.next(),
                },
                now,
            ),
            connection: 0,
            socket: 0,
            latency_ms: 5 + rng.below(100),
            up: VecDeque::new(),
            down: VecDeque::new(),
            taps_left: taps,
            next_tap_ms: now + 500 + rng.below(200),
            queued: 0,
            dropped: 0,
        })
        .collect();
    let mut next_connection = 1;
    let give_up = now + 300_000;
    let mut quiet_since = None;
    loop {
        now += 1;
        assert!(
            now < give_up,
            "seed {seed}: likes still waiting after 300 s"
        );
        let idle = list.iter().all(|v| {
            v.taps_left == 0
                && v.client.likes_waiting() == 0
                && v.client.actions_pending() == 0
                && v.up.is_empty()
        });
        match (idle, quiet_since) {
            (false, _) => quiet_since = None,
            (true, None) => quiet_since = Some(now),
            (true, Some(t)) if now > t + 1_000 => break, // the room's last tick is out
            _ => {}
        }
        // The app taps: quick taps.
        for v in list.iter_mut() {
            if v.taps_left > 0 && now >= v.next_tap_ms {
                v.taps_left -= 1;
                v.queued += u64::from(v.client.like(1, now));
                v.next_tap_ms = now + rng.below(tap_gap_ms_max);
            }
        }
        // Links.
        for v in list.iter_mut() {
            while v.up.front().is_some_and(|(at, _)| *at <= now) {
                let (_, frame) = v.up.pop_front().unwrap();
                room.handle_frame(v.connection, &frame, now);
            }
            while v.down.front().is_some_and(|(at, _)| *at <= now) {
                match v.down.pop_front().unwrap().1 {
                    Down::Frame(frame) => v.client.handle_socket_message(v.socket, &frame, now),
                    Down::Text => v.client.handle_socket_text(v.socket, now),
                }
            }
        }
        if room.poll_timeout().is_some_and(|t| t <= now) {
            room.handle_timeout(now);
        }
        while let Some(output) = room.poll_output() {
            match output {
                Output::Send { connections, frame } => {
                    for connection in connections {
                        let v = list.iter_mut().find(|v| v.connection == connection);
                        let v = v.expect("a viewer's connection");
                        let at = now + v.latency_ms + rng.below(jitter_ms);
                        v.send_down(at, Down::Frame(frame.clone()));
                    }
                }
                Output::Close { connection, code } => {
                    panic!("seed {seed}: connection {connection} closed {code:?}")
                }
                _ => {}
            }
        }
        // Clients.
        for v in list.iter_mut() {
            if v.client.poll_timeout().is_some_and(|t| t <= now) {
                v.client.handle_timeout(now);
            }
            while let Some(transmit) = v.client.poll_transmit() {
                let at = now + v.latency_ms + rng.below(jitter_ms);
                match transmit {
                    Transmit::OpenSocket { socket, path } => {
                        assert_eq!(v.socket, 0, "seed {seed}: one socket each");
                        v.socket = socket;
                        v.connection = next_connection;
                        next_connection += 1;
                        let identity = Identity {
                            user: v.user.clone(),
                            name: v.user.to_uppercase(),
                            role: Role::Viewer,
                        };
                        room.connect(v.connection, identity, CONNECTION_LIFETIME_MS_MAX, now)
                            .expect("room has space");
                        common::upgrade_hello(&mut room, v.connection, &path, now);
                        v.client.handle_socket_open(socket, now);
                    }
                    Transmit::Send { frame, .. } => v.send_up(at, frame),
                    Transmit::SendText { .. } => v.send_down(at + v.latency_ms, Down::Text),
                    other => panic!("seed {seed}: unexpected {other:?}"),
                }
            }
            while let Some(event) = v.client.poll_event() {
                match event {
                    ClientEvent::LikesDropped { count, .. } => v.dropped += u64::from(count),
                    ClientEvent::Status { status, .. } => {
                        assert_ne!(
                            status,
                            Status::Reconnecting,
                            "seed {seed}: no failures here"
                        )
                    }
                    _ => {}
                }
            }
        }
    }
    for v in &list {
        assert_eq!(v.taps_left, 0);
        assert_eq!(
            v.client.actions_pending(),
            0,
            "seed {seed}: {} waits",
            v.user
        );
    }
    Outcome {
        counted: room.likes_total(),
        queued: list.iter().map(|v| v.queued).sum(),
        dropped: list.iter().map(|v| v.dropped).sum(),
    }
}

fn seeds() -> u64 {
    std::env::var("OVATION_LIKES_SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(12)
}

#[test]
fn ten_viewers_times_fifty_quick_likes_count_exactly_five_hundred() {
    for seed in 0..seeds() {
        let outcome = run(seed, 10, 50, 10, 40);
        assert_eq!(outcome.queued, 500, "seed {seed}: every tap is queued");
        assert_eq!(outcome.dropped, 0, "seed {seed}: nothing to report");
        assert_eq!(outcome.counted, 500, "seed {seed}: the room's like count");
    }
}

#[test]
fn one_user_in_two_tabs_shares_the_rate_and_still_loses_nothing() {
    for seed in 0..seeds() {
        // Ten clients, five users: each user's two tabs share one bucket in the room,
        // so half their frames are refused and must be sent again.
        let outcome = run(1_000 + seed, 10, 50, 5, 40);
        assert_eq!(outcome.dropped, 0, "seed {seed}");
        assert_eq!(outcome.counted, 500, "seed {seed}");
    }
}

#[test]
fn a_flood_above_the_rate_is_counted_or_reported_never_lost_quietly() {
    for seed in 0..seeds() {
        // 1,500 taps from one client in about 3 s: more than the client queues
        // (CLIENT_LIKES_PENDING_MAX) plus what the room's rate lets out meanwhile.
        let outcome = run(2_000 + seed, 1, 1_500, 1, 4);
        assert!(outcome.dropped > 0, "seed {seed}: the excess is reported");
        assert_eq!(
            outcome.counted + outcome.dropped,
            1_500,
            "seed {seed}: counted {} + reported {}",
            outcome.counted,
            outcome.dropped
        );
    }
}
