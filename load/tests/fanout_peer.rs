//! The fan-out scenario end to end against tiny in-process broadcast servers: one speaking
//! the JSON peer protocol, one speaking Socket.IO v4 over raw WebSocket. These are test
//! fixtures (the real peer servers live elsewhere): each room is a list of sockets and
//! every message is sent to all of them, sender included.

use futures_util::{SinkExt, StreamExt};
use ovation_auth::{dev, SigningKey};
use ovation_load::{fanout, FanoutConfig, FanoutReport, Minter, Progress, Target};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::Message;

/// How often the Socket.IO fixture pings each client (real servers: 25 s); short so that
/// a run sees several pings and must answer them.
const SOCKET_IO_PING_MS: u64 = 300;

#[derive(Default)]
struct Room {
    sockets: Vec<(u64, mpsc::UnboundedSender<String>)>,
    likes_total: u64,
}

type Rooms = Arc<Mutex<HashMap<String, Room>>>;

/// Starts a broadcast server on its own thread and runtime (as a separate process would
/// be) and returns its port.
fn start_server(target: Target) -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            let rooms = Rooms::default();
            let mut next_id = 0;
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                next_id += 1;
                tokio::spawn(serve(stream, rooms.clone(), next_id, target));
            }
        });
    });
    port
}

fn query_value(uri: &str, key: &str) -> String {
    let query = uri.split_once('?').map_or("", |(_, q)| q);
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix(key)?.strip_prefix('='))
        .unwrap_or_default()
        .to_owned()
}

fn broadcast(rooms: &Rooms, room: &str, text: String) {
    let rooms = rooms.lock().unwrap();
    for (_, socket) in &rooms[room].sockets {
        let _ = socket.send(text.clone());
    }
}

// The handshake callback's error type is tungstenite's, large or not.
#[allow(clippy::result_large_err)]
async fn serve(stream: tokio::net::TcpStream, rooms: Rooms, id: u64, target: Target) {
    let mut uri = String::new();
    let callback = |request: &Request, response: Response| {
        uri = request.uri().to_string();
        Ok(response)
    };
    stream.set_nodelay(true).unwrap();
    let Ok(socket) = tokio_tungstenite::accept_hdr_async(stream, callback).await else {
        return;
    };
    let (room, user) = match target {
        // /parties/main/{room}?user={user}
        Target::Json => (
            uri.trim_start_matches("/parties/main/")
                .split('?')
                .next()
                .unwrap()
                .to_owned(),
            query_value(&uri, "user"),
        ),
        _ => (query_value(&uri, "room"), query_value(&uri, "user")),
    };
    let (mut sink, mut stream) = socket.split();
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    if target == Target::SocketIo {
        let open = r#"0{"sid":"s","upgrades":[],"pingInterval":300,"pingTimeout":20000}"#;
        sink.send(Message::text(open)).await.unwrap();
        match stream.next().await {
            Some(Ok(Message::Text(text))) if text.as_str() == "40" => {}
            _ => return,
        }
    }
    // In the room before the client hears it is connected: broadcasts queue behind the
    // connect answer below.
    rooms
        .lock()
        .unwrap()
        .entry(room.clone())
        .or_default()
        .sockets
        .push((id, tx.clone()));
    if target == Target::SocketIo {
        sink.send(Message::text(r#"40{"sid":"n"}"#)).await.unwrap();
        let pinger = tx;
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_millis(SOCKET_IO_PING_MS));
            every.tick().await;
            loop {
                every.tick().await;
                if pinger.send("2".into()).is_err() {
                    break;
                }
            }
        });
    }
    let writer = tokio::spawn(async move {
        while let Some(text) = rx.recv().await {
            if sink.send(Message::text(text)).await.is_err() {
                break;
            }
        }
    });
    while let Some(Ok(message)) = stream.next().await {
        let Message::Text(text) = message else {
            continue;
        };
        let (kind, body) = match target {
            Target::Json => {
                let value: serde_json::Value = serde_json::from_str(&text).unwrap();
                (value["type"].as_str().unwrap().to_owned(), value)
            }
            _ => {
                if text.as_str() == "3" {
                    continue;
                }
                let value: serde_json::Value =
                    serde_json::from_str(text.strip_prefix("42").unwrap()).unwrap();
                (value[0].as_str().unwrap().to_owned(), value[1].clone())
            }
        };
        let ts = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        let out = match kind.as_str() {
            "comment" => {
                serde_json::json!({"type": "comment", "user": user, "text": body["text"], "ts": ts})
            }
            "like" => {
                let total = {
                    let mut rooms = rooms.lock().unwrap();
                    let room = rooms.get_mut(&room).unwrap();
                    room.likes_total += 1;
                    room.likes_total
                };
                serde_json::json!({"type": "likes", "total": total})
            }
            other => panic!("unexpected message type {other}"),
        };
        let out = match target {
            Target::Json => out.to_string(),
            _ => {
                let name = if kind == "like" { "likes" } else { "comment" };
                let mut payload = out;
                payload.as_object_mut().unwrap().remove("type");
                format!("42{}", serde_json::json!([name, payload]))
            }
        };
        broadcast(&rooms, &room, out);
    }
    rooms
        .lock()
        .unwrap()
        .get_mut(&room)
        .unwrap()
        .sockets
        .retain(|(socket, _)| *socket != id);
    writer.abort();
}

fn config(target: Target, port: u16) -> FanoutConfig {
    let url_template = match target {
        Target::Json => format!("ws://127.0.0.1:{port}/parties/main/{{room}}?user={{user}}"),
        _ => format!(
            "ws://127.0.0.1:{port}/socket.io/?EIO=4&transport=websocket&room={{room}}&user={{user}}"
        ),
    };
    FanoutConfig {
        target,
        base: String::new(),
        url_template,
        rooms: 1,
        viewers: 50,
        comments_per_s: 20.0,
        likes_per_s: 5.0,
        churn_per_s: 0.0,
        duration_s: 3,
        warmup_s: 1,
        seed: 7,
        senders_per_room: None,
        room_prefix: "weur-fanout-test".into(),
        expected_audience: None,
        shards: None,
        minter: Minter {
            key: SigningKey::hs256(dev::HS256_SECRET.as_bytes()),
            tenant: dev::TENANT.into(),
        },
    }
}

fn run(config: FanoutConfig) -> FanoutReport {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut phases = Vec::new();
    let started = std::time::Instant::now();
    let report = runtime
        .block_on(fanout(config, |update| {
            if let Progress::Line(line) = update {
                eprintln!("{:.2} s: {line}", started.elapsed().as_secs_f64());
                phases.push(line);
            }
        }))
        .unwrap();
    assert!(phases.len() >= 3, "{phases:?}");
    eprintln!("{}", serde_json::to_string(&report).unwrap());
    report
}

/// What every clean run shows, whatever the peer.
fn assert_clean(report: &FanoutReport, viewers: u64) {
    assert_eq!(report.viewers_connected, report.viewers);
    assert_eq!((report.losses, report.duplicates), (0, 0));
    assert_eq!(report.deliveries_unknown, 0);
    assert_eq!(report.viewers_dropped, 0);
    // 20 comments/s for 3 s, give or take the one due exactly at a window edge.
    assert!(
        (59..=61).contains(&report.comments_sent),
        "{}",
        report.comments_sent
    );
    assert_eq!(report.comments_acknowledged, report.comments_sent);
    assert_eq!(report.comments_skipped, 0);
    assert_eq!(report.deliveries_expected, report.comments_sent * viewers);
    assert_eq!(
        report.deliveries_expected_received,
        report.deliveries_expected
    );
    assert_eq!(report.latency_samples, report.deliveries_expected);
    assert!(report.latency_ms_p50 > 0.0 && report.latency_ms_p50 <= report.latency_ms_p99);
    assert!(report.latency_ms_p99 <= report.latency_ms_max);
    assert!(report.deliveries_per_s > 0.0 && report.bytes_per_delivery > 0.0);
    assert!(report.messages_sent >= report.comments_sent + report.likes_sent);
    assert!(report.likes_sent > 0);
    // The total counts warm-up likes too.
    assert!(report.likes_total_last >= Some(report.likes_sent));
    assert_eq!(report.series.len(), 3);
    assert!(report
        .series
        .iter()
        .all(|s| s.deliveries > 0 && s.latency_ms_p99 > 0.0));
    assert!(report
        .series
        .iter()
        .all(|s| s.viewers_connected == report.viewers));
    assert!(report.generator_cpu_s.is_some());
}

#[test]
fn json_peer_delivers_every_comment_to_every_viewer_once() {
    let port = start_server(Target::Json);
    let report = run(config(Target::Json, port));
    assert_eq!(report.target, "json");
    assert_clean(&report, 50);
    // Every comment to 50 viewers, each a ~110-byte JSON message, plus like totals.
    assert!(report.payload_bytes_received >= report.deliveries * 100);
}

#[test]
fn socket_io_peer_is_spoken_raw_with_heartbeats_answered() {
    let port = start_server(Target::SocketIo);
    let report = run(config(Target::SocketIo, port));
    assert_eq!(report.target, "socketio");
    assert_clean(&report, 50);
    // Pings arrive every 300 ms and each is answered with a message of its own.
    assert!(report.messages_sent >= report.comments_sent + report.likes_sent + 50 * 9);
}

#[test]
fn churning_viewers_are_owed_only_what_was_sent_while_they_stayed() {
    let port = start_server(Target::Json);
    let report = run(FanoutConfig {
        rooms: 2,
        viewers: 40,
        churn_per_s: 10.0,
        likes_per_s: 0.0,
        // Churn takes non-senders only.
        senders_per_room: Some(5),
        ..config(Target::Json, port)
    });
    assert_eq!((report.losses, report.duplicates), (0, 0));
    assert!(
        report.churn_leaves >= 20 && report.churn_joins >= 20,
        "{report:?}"
    );
    assert_eq!(report.churn_join_failures, 0);
    // Churners owe less than everyone for everything (20 viewers per room).
    let everyone = report.comments_sent * 20;
    assert!(report.deliveries_expected < everyone);
    assert!(report.deliveries_expected > everyone / 2);
    assert_eq!(
        report.deliveries_expected_received,
        report.deliveries_expected
    );
}

#[test]
fn a_run_whose_viewers_cannot_connect_fails_with_the_reason() {
    // A port that was free a moment ago: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let error = runtime
        .block_on(fanout(
            FanoutConfig {
                viewers: 5,
                ..config(Target::Json, port)
            },
            |_| {},
        ))
        .unwrap_err();
    assert!(error.contains("only 0 of 5 viewers connected"), "{error}");
    assert!(error.to_lowercase().contains("refused"), "{error}");
}
