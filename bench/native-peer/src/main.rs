//! `ovation-native-peer --port P`: the physical-limit reference of `cargo xtask bench
//! fanout`, what broadcasting costs with no product logic at all: no auth, no storage, no
//! batching, no runtime between the socket and the code. Each comment is serialized once
//! and the same frame is queued to every socket of its room.
//!
//! The protocol is the one of the JavaScript peers in `bench/peers/`: a client connects to
//! `/parties/main/{room}?user=U` and sends `{"type":"comment","text":"..."}` or
//! `{"type":"like"}`; every socket of the room, the sender's included, receives
//! `{"type":"comment","user":"U","text":"...","ts":<ms since 1970>}` or
//! `{"type":"likes","total":N}` (one broadcast per like, like the naive peers).

use futures_util::{SinkExt, StreamExt};
use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

const USAGE: &str = "usage: ovation-native-peer --port PORT (0: any free port)";

/// The sockets of one room (each socket's writer task drains its outbox) and its likes.
#[derive(Default)]
struct Room {
    outboxes: HashMap<u64, mpsc::UnboundedSender<Message>>,
    likes_total: u64,
}

type Rooms = Arc<Mutex<HashMap<String, Room>>>;

/// Where a socket belongs, from `/parties/main/{room}?user=U`.
struct Address {
    room: String,
    user: String,
}

fn main() -> ExitCode {
    let Some(port) = port_from_args(std::env::args().skip(1)) else {
        eprintln!("{USAGE}");
        return ExitCode::FAILURE;
    };
    // Two workers because the benchmark machine has two cores: the reference should use
    // the machine the way any native server would. The benchmark compares deliveries per
    // CPU-second of the server, which a second thread cannot inflate (it only adds its
    // own CPU time), so the reference stays a fair bound for single-threaded peers.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_io()
        .enable_time()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("ovation-native-peer: cannot start tokio: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(port)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ovation-native-peer: {e}");
            ExitCode::FAILURE
        }
    }
}

fn port_from_args(mut args: impl Iterator<Item = String>) -> Option<u16> {
    let mut port = None;
    while let Some(arg) = args.next() {
        let value = match arg.strip_prefix("--port=") {
            Some(value) => value.to_owned(),
            None if arg == "--port" => args.next()?,
            None => return None,
        };
        port = Some(value.parse().ok()?);
    }
    port
}

async fn serve(port: u16) -> std::io::Result<()> {
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    println!("listening on {}", listener.local_addr()?);
    let rooms = Rooms::default();
    let mut next_socket_id = 0u64;
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                next_socket_id += 1;
                tokio::spawn(connection(stream, next_socket_id, rooms.clone()));
            }
            Err(e) => {
                // Out of file descriptors, usually: back off instead of spinning.
                eprintln!("ovation-native-peer: accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn connection(stream: TcpStream, socket_id: u64, rooms: Rooms) {
    // Every frame is small and latency is measured: do not let Nagle hold them back.
    let _ = stream.set_nodelay(true);
    let mut address = None;
    // The handshake callback's error type is tungstenite's, large or not.
    #[allow(clippy::result_large_err)]
    let route = |request: &Request, response: Response| match address_of(request) {
        Some(found) => {
            address = Some(found);
            Ok(response)
        }
        None => Err(refusal()),
    };
    let accepted = tokio_tungstenite::accept_hdr_async(stream, route).await;
    let (Ok(socket), Some(Address { room, user })) = (accepted, address) else {
        return;
    };
    let (mut sink, mut stream) = socket.split();
    let (outbox, mut inbox) = mpsc::unbounded_channel::<Message>();
    rooms
        .lock()
        .expect("no panics while the lock is held")
        .entry(room.clone())
        .or_default()
        .outboxes
        .insert(socket_id, outbox);
    let writer = tokio::spawn(async move {
        while let Some(message) = inbox.recv().await {
            // Whatever is queued already goes out with one flush: fewer writes under load.
            let mut next = Some(message);
            while let Some(message) = next {
                if sink.feed(message).await.is_err() {
                    return;
                }
                next = inbox.try_recv().ok();
            }
            if sink.flush().await.is_err() {
                return;
            }
        }
        let _ = sink.close().await;
    });
    while let Some(Ok(message)) = stream.next().await {
        match message {
            Message::Text(text) => handle_text(&rooms, &room, &user, &text),
            Message::Close(_) => break,
            _ => {}
        }
    }
    // The room and its likes stay (as a Durable Object's memory would); only the outbox
    // goes, which ends the writer.
    if let Some(room) = rooms
        .lock()
        .expect("no panics while the lock is held")
        .get_mut(&room)
    {
        room.outboxes.remove(&socket_id);
    }
    let _ = writer.await;
}

fn handle_text(rooms: &Rooms, room: &str, user: &str, text: &str) {
    let Ok(request) = serde_json::from_str::<serde_json::Value>(text) else {
        return;
    };
    match request["type"].as_str() {
        Some("comment") => {
            let Some(text) = request["text"].as_str() else {
                return;
            };
            let frame = serde_json::json!({
                "type": "comment", "user": user, "text": text, "ts": now_ms(),
            });
            let rooms = rooms.lock().expect("no panics while the lock is held");
            if let Some(room) = rooms.get(room) {
                broadcast(room, frame.to_string());
            }
        }
        Some("like") => {
            let mut rooms = rooms.lock().expect("no panics while the lock is held");
            if let Some(room) = rooms.get_mut(room) {
                room.likes_total += 1;
                let frame = serde_json::json!({"type": "likes", "total": room.likes_total});
                broadcast(room, frame.to_string());
            }
        }
        _ => {}
    }
}

/// Queues one frame to every socket of the room: the text is shared, not copied.
fn broadcast(room: &Room, frame: String) {
    let message = Message::Text(Utf8Bytes::from(frame));
    for outbox in room.outboxes.values() {
        // A closed outbox belongs to a socket that is going away.
        let _ = outbox.send(message.clone());
    }
}

fn address_of(request: &Request) -> Option<Address> {
    let room = request.uri().path().strip_prefix("/parties/main/")?;
    if room.is_empty() || room.contains('/') {
        return None;
    }
    let user = request
        .uri()
        .query()?
        .split('&')
        .find_map(|pair| pair.strip_prefix("user="))?;
    Some(Address {
        room: percent_decoded(room, false)?,
        user: percent_decoded(user, true).filter(|user| !user.is_empty())?,
    })
}

fn refusal() -> ErrorResponse {
    let mut response = ErrorResponse::new(Some(
        "expected a WebSocket to /parties/main/{room}?user=U\n".into(),
    ));
    *response.status_mut() = StatusCode::NOT_FOUND;
    response
}

/// `%XX` escapes (and `+` for a space in a query, as browsers' URLSearchParams reads it).
fn percent_decoded(text: &str, in_query: bool) -> Option<String> {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                decoded.push(u8::from_str_radix(text.get(i + 1..i + 3)?, 16).ok()?);
                i += 3;
            }
            b'+' if in_query => {
                decoded.push(b' ');
                i += 1;
            }
            byte => {
                decoded.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8(decoded).ok()
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|since| since.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_escapes_and_query_spaces() {
        assert_eq!(percent_decoded("a%20b+c", true).as_deref(), Some("a b c"));
        assert_eq!(percent_decoded("a+b", false).as_deref(), Some("a+b"));
        assert_eq!(percent_decoded("bad%2", true), None);
    }

    #[test]
    fn reads_port_flags() {
        let args = |list: &[&str]| list.iter().map(|a| a.to_string()).collect::<Vec<_>>();
        assert_eq!(
            port_from_args(args(&["--port", "8080"]).into_iter()),
            Some(8080)
        );
        assert_eq!(port_from_args(args(&["--port=0"]).into_iter()), Some(0));
        assert_eq!(port_from_args(args(&["--bogus"]).into_iter()), None);
    }
}
