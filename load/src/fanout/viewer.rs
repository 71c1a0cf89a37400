//! One viewer's socket: the handshake of each target, then a loop that records every
//! message it reads and sends what the driver asks. The per-message work (`on_message`)
//! is the generator's hot path: it decodes only what it needs.

use super::accounting::Received;
use super::shared::{Command, Shared, ViewerState, LIKE_CLIENT_ID_FIRST};
use super::wire::{self, EngineIo, PeerEvent};
use super::{Target, CONNECT_TIMEOUT_MS};
use crate::Minter;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use ovation_proto::limits::{HEARTBEAT_TEXT, SUBPROTOCOL};
use ovation_proto::{ActionBody, ClientFrame, Event, ServerFrame, UPGRADE_HELLO_QUERY};
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How viewers reach the server.
pub(super) struct Endpoints {
    pub(super) target: Target,
    pub(super) base: String,
    pub(super) url_template: String,
    pub(super) room_ids: Vec<String>,
    pub(super) minter: Minter,
    pub(super) seed: u64,
    pub(super) permits: Arc<Semaphore>,
}

impl Endpoints {
    fn url(&self, room: usize, viewer: usize) -> String {
        let room_id = &self.room_ids[room];
        let user = format!("load-{}-{viewer}", self.seed);
        match self.target {
            // A first join, as the SDK does it: the upgrade says the Hello.
            Target::Ovation => [
                crate::ws_url(
                    &self.base,
                    room_id,
                    &self.minter.token(&user, "viewer", room_id),
                ),
                UPGRADE_HELLO_QUERY.to_owned(),
            ]
            .join("&"),
            Target::Json | Target::SocketIo => self
                .url_template
                .replace("{room}", room_id)
                .replace("{user}", &user),
        }
    }
}

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;
type Sink = SplitSink<Socket, Message>;
type Stream = SplitStream<Socket>;

/// Adds a viewer to `room` and starts its task.
pub(super) fn spawn_viewer(
    shared: &Rc<RefCell<Shared>>,
    endpoints: &Rc<Endpoints>,
    room: usize,
    is_sender: bool,
    is_churn_join: bool,
    connected_tx: Option<mpsc::UnboundedSender<bool>>,
) -> JoinHandle<()> {
    let (commands_tx, commands_rx) = mpsc::unbounded_channel();
    let index = {
        let mut shared = shared.borrow_mut();
        let index = shared.viewers.len();
        shared.viewers.push(ViewerState {
            room,
            is_sender,
            is_churn_join,
            joined_us: None,
            left_us: None,
            dropped: false,
            received: Received::default(),
            commands: Some(commands_tx),
        });
        shared.members[room].push(index);
        index
    };
    let url = endpoints.url(room, index);
    tokio::task::spawn_local(viewer(
        shared.clone(),
        endpoints.clone(),
        index,
        url,
        commands_rx,
        connected_tx,
    ))
}

/// Sends one data message, counting it.
async fn send(
    shared: &RefCell<Shared>,
    sink: &mut Sink,
    message: Message,
) -> Result<(), tokio_tungstenite::tungstenite::Error> {
    {
        let mut shared = shared.borrow_mut();
        let now_us = shared.now_us();
        shared.on_sent(now_us, message.len());
    }
    sink.send(message).await
}

/// Opens the socket and does the target's handshake, up to the point where the server
/// counts the viewer in its room.
async fn connect(
    shared: &RefCell<Shared>,
    target: Target,
    url: String,
) -> Result<(Sink, Stream), String> {
    let subprotocol = (target == Target::Ovation).then_some(SUBPROTOCOL);
    let socket = crate::open_socket(url, subprotocol).await?;
    let (mut sink, mut stream) = socket.split();
    match target {
        Target::Json => {}
        Target::Ovation => {
            // The Hello went with the upgrade (`url`): the Welcome comes without a frame.
            loop {
                let message = next_message(shared, &mut stream).await?;
                let Message::Binary(bytes) = message else {
                    continue;
                };
                let Ok(ServerFrame::Batch { events, .. }) = ServerFrame::decode(&bytes) else {
                    return Err("an undecodable frame before Welcome".into());
                };
                if events.iter().any(|e| matches!(e, Event::Welcome(_))) {
                    break;
                }
            }
        }
        Target::SocketIo => loop {
            let message = next_message(shared, &mut stream).await?;
            let Message::Text(text) = message else {
                continue;
            };
            match wire::parse_engine_io(&text) {
                EngineIo::Open => send(shared, &mut sink, Message::text(wire::SOCKET_IO_CONNECT))
                    .await
                    .map_err(|e| e.to_string())?,
                EngineIo::Ping => send(shared, &mut sink, Message::text(wire::ENGINE_IO_PONG))
                    .await
                    .map_err(|e| e.to_string())?,
                EngineIo::Connected => break,
                EngineIo::ConnectError(why) => return Err(format!("refused by Socket.IO: {why}")),
                EngineIo::Close => return Err("closed by Engine.IO".into()),
                EngineIo::Event { .. } | EngineIo::Other => {}
            }
        },
    }
    Ok((sink, stream))
}

async fn next_message(shared: &RefCell<Shared>, stream: &mut Stream) -> Result<Message, String> {
    match stream.next().await {
        Some(Ok(message)) => {
            let mut shared = shared.borrow_mut();
            let now_us = shared.now_us();
            shared.on_received(now_us, &message);
            Ok(message)
        }
        Some(Err(e)) => Err(e.to_string()),
        None => Err("closed".into()),
    }
}

/// What a viewer must do after reading a message.
enum AfterMessage {
    Continue,
    Reply(&'static str),
    Closed,
}

/// Reads one message: counts it and records every comment and like total in it. This is
/// the hot path (once per message per viewer).
fn on_message(shared: &mut Shared, viewer: usize, message: &Message) -> AfterMessage {
    if shared.target == Target::Ovation && message.is_text() {
        return AfterMessage::Continue; // the heartbeat's answer, not traffic
    }
    let now_us = shared.now_us();
    shared.on_received(now_us, message);
    match (shared.target, message) {
        (_, Message::Close(_)) => return AfterMessage::Closed,
        (Target::Ovation, Message::Binary(bytes)) => {
            let Ok(ServerFrame::Batch { events, .. }) = ServerFrame::decode(bytes) else {
                return AfterMessage::Closed;
            };
            for event in events {
                match event {
                    Event::Action(action) => {
                        if let ActionBody::Comment { text } = action.body {
                            if let Some((id, sent_us)) = wire::parse_comment_text(&text) {
                                shared.on_comment(viewer, id, sent_us, now_us);
                            }
                        }
                    }
                    Event::Likes { total } => shared.on_likes_total(viewer, total),
                    Event::Ack { client_id, .. } => shared.on_answer(client_id, None),
                    Event::Error {
                        client_id: Some(client_id),
                        code,
                        ..
                    } => shared.on_answer(client_id, Some(code)),
                    Event::Gap { .. } => shared.gaps += 1,
                    _ => {}
                }
            }
        }
        (Target::Json, Message::Text(text)) => on_peer_event(shared, viewer, text, now_us),
        (Target::SocketIo, Message::Text(text)) => match wire::parse_engine_io(text) {
            EngineIo::Ping => return AfterMessage::Reply(wire::ENGINE_IO_PONG),
            EngineIo::Close => return AfterMessage::Closed,
            EngineIo::Event { name, payload } if name == "comment" || name == "likes" => {
                on_peer_event(shared, viewer, payload, now_us)
            }
            _ => {}
        },
        _ => {}
    }
    AfterMessage::Continue
}

fn on_peer_event(shared: &mut Shared, viewer: usize, json: &str, now_us: u64) {
    match wire::parse_peer_json(json) {
        PeerEvent::Comment { id, sent_us } => shared.on_comment(viewer, id, sent_us, now_us),
        PeerEvent::Likes { total } => shared.on_likes_total(viewer, total),
        PeerEvent::Other => {}
    }
}

/// The message a command sends, for this target.
fn command_message(shared: &mut Shared, command: &Command) -> Option<Message> {
    let target = shared.target;
    match command {
        Command::Comment { id } => {
            let now_us = shared.now_us();
            let text = shared.on_comment_sending(*id, now_us);
            Some(match target {
                Target::Ovation => Message::binary(
                    ClientFrame::Comment {
                        client_id: id + 1,
                        text,
                    }
                    .encode(),
                ),
                Target::Json => Message::text(wire::peer_json_comment(&text)),
                Target::SocketIo => Message::text(wire::socket_io_comment(&text)),
            })
        }
        Command::Like => {
            let now_us = shared.now_us();
            if shared.in_window(now_us) {
                shared.likes_sent += 1;
            }
            Some(match target {
                Target::Ovation => {
                    let client_id = LIKE_CLIENT_ID_FIRST + shared.next_like_client_id;
                    shared.next_like_client_id += 1;
                    Message::binary(
                        ClientFrame::Like {
                            client_id,
                            count: 1,
                        }
                        .encode(),
                    )
                }
                Target::Json => Message::text(wire::PEER_JSON_LIKE),
                Target::SocketIo => Message::text(wire::SOCKET_IO_LIKE),
            })
        }
        Command::Leave => None,
    }
}

/// One viewer: connect, then read everything and do what the driver asks, until asked to
/// leave, the run ends (its command channel closes) or the server drops it.
async fn viewer(
    shared: Rc<RefCell<Shared>>,
    endpoints: Rc<Endpoints>,
    index: usize,
    url: String,
    mut commands: mpsc::UnboundedReceiver<Command>,
    connected_tx: Option<mpsc::UnboundedSender<bool>>,
) {
    let connection = {
        let _permit = endpoints.permits.acquire().await.expect("never closed");
        tokio::time::timeout(
            Duration::from_millis(CONNECT_TIMEOUT_MS),
            connect(&shared, endpoints.target, url),
        )
        .await
    };
    let (mut sink, mut stream) = match connection {
        Ok(Ok(halves)) => halves,
        failure => {
            let why = match failure {
                Ok(Err(e)) => e,
                _ => format!("no connection within {CONNECT_TIMEOUT_MS} ms"),
            };
            let mut shared = shared.borrow_mut();
            shared.viewers[index].commands = None;
            shared.churn_join_failures += u64::from(shared.viewers[index].is_churn_join);
            shared.first_connect_error.get_or_insert(why);
            drop(shared);
            if let Some(tx) = connected_tx {
                let _ = tx.send(false);
            }
            return;
        }
    };
    {
        let mut shared = shared.borrow_mut();
        let now_us = shared.now_us();
        shared.on_joined(index, now_us);
    }
    if let Some(tx) = connected_tx {
        let _ = tx.send(true);
    }
    // Our viewers heartbeat as the SDK does, or the room's sweep closes them as stale
    // (a 10,000-viewer run can spend longer connecting than `STALE_SOCKET_MS`). The
    // runtime answers without waking the room; neither side is counted as traffic.
    let mut heartbeat = crate::heartbeat_interval();
    let heartbeats = endpoints.target == Target::Ovation;
    let churned = loop {
        tokio::select! {
            _ = heartbeat.tick(), if heartbeats => {
                if sink.send(Message::text(HEARTBEAT_TEXT)).await.is_err() {
                    break false;
                }
            }
            command = commands.recv() => {
                let Some(command) = command else {
                    // The run is over.
                    let _ = sink.send(Message::Close(None)).await;
                    return;
                };
                let comment_id = match command {
                    Command::Comment { id } => Some(id),
                    _ => None,
                };
                let message = command_message(&mut shared.borrow_mut(), &command);
                let Some(message) = message else {
                    let _ = sink.send(Message::Close(None)).await;
                    break true;
                };
                if send(&shared, &mut sink, message).await.is_err() {
                    if let Some(id) = comment_id {
                        shared.borrow_mut().on_comment_send_failed(id);
                    }
                    break false;
                }
            }
            message = stream.next() => {
                let Some(Ok(message)) = message else { break false };
                let after = on_message(&mut shared.borrow_mut(), index, &message);
                match after {
                    AfterMessage::Continue => {}
                    AfterMessage::Reply(text) => {
                        if send(&shared, &mut sink, Message::text(text)).await.is_err() {
                            break false;
                        }
                    }
                    AfterMessage::Closed => break false,
                }
            }
        }
    };
    let mut shared = shared.borrow_mut();
    let now_us = shared.now_us();
    shared.on_gone(index, now_us, churned);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fanout::accounting;
    use crate::fanout::shared::{CommentRecord, CommentState};
    use ovation_proto::ErrorCode;

    /// A shared state with one connected viewer in room 0 and `comments` sent at 1 ms.
    fn measuring(target: Target, comments: u64) -> Shared {
        let mut shared = Shared::new(target, 1, 60, accounting::Sampling::Never);
        (shared.window_start_us, shared.window_end_us) = (0, 60_000_000);
        let (commands, _) = mpsc::unbounded_channel();
        shared.viewers.push(ViewerState {
            room: 0,
            is_sender: true,
            is_churn_join: false,
            joined_us: None,
            left_us: None,
            dropped: false,
            received: Received::default(),
            commands: Some(commands),
        });
        shared.members[0].push(0);
        shared.on_joined(0, 0);
        for id in 0..comments {
            shared.comments.push(CommentRecord {
                sender: 0,
                due_us: 0,
                sent_us: u64::MAX,
                state: CommentState::Unsent,
            });
            shared.on_comment_sending(id, 1_000);
        }
        shared
    }

    fn comment_action(id: u64) -> Event {
        Event::Action(ovation_proto::Action {
            seq: id + 1,
            ts_ms: 0,
            user: "load-1-0".into(),
            name: "LOAD-1-0".into(),
            body: ActionBody::Comment {
                text: wire::comment_text(id, 1_000),
            },
        })
    }

    #[test]
    fn our_server_batches_are_read_for_comments_answers_likes_and_gaps() {
        let mut shared = measuring(Target::Ovation, 3);
        let batch = ServerFrame::Batch {
            server_time_ms: 5,
            events: vec![
                Event::Online { count: 1 },
                comment_action(0),
                Event::Ack {
                    client_id: 1,
                    seq: Some(1),
                },
                Event::Error {
                    client_id: Some(2),
                    code: ErrorCode::RateLimited,
                    message: "slow down".into(),
                    retry_after_ms: 900,
                },
                comment_action(0),
                Event::Likes { total: 9 },
                Event::Gap {
                    missed_after: 1,
                    resumed_from: 3,
                },
                // A like's answer is not a comment's.
                Event::Error {
                    client_id: Some(LIKE_CLIENT_ID_FIRST),
                    code: ErrorCode::RateLimited,
                    message: String::new(),
                    retry_after_ms: 0,
                },
            ],
        };
        let message = Message::binary(batch.encode());
        assert!(matches!(
            on_message(&mut shared, 0, &message),
            AfterMessage::Continue
        ));
        let states: Vec<CommentState> = shared.comments.iter().map(|c| c.state).collect();
        use CommentState::*;
        assert_eq!(states, [Acknowledged, Refused, Sent]);
        assert_eq!(shared.refused_by_code.get("rate_limited"), Some(&1));
        assert_eq!((shared.deliveries, shared.duplicates), (1, 1));
        assert_eq!(shared.latency_us.len(), 1);
        assert_eq!(shared.likes_total_by_room, [Some(9)]);
        assert_eq!((shared.likes_refused, shared.gaps), (1, 1));
        assert_eq!(shared.traffic.messages_received, 1);
        assert_eq!(shared.traffic.payload_bytes_received, message.len() as u64);
        // Only the acknowledged comment is owed; the unanswered one holds the grace open.
        assert_eq!(
            shared.tally(),
            accounting::Tally {
                expected: 1,
                received: 1,
                comments_sampled: 0,
            }
        );
        assert!(!shared.last_comments_arrived());
        let answer = ServerFrame::Batch {
            server_time_ms: 6,
            events: vec![Event::Ack {
                client_id: 3,
                seq: Some(2),
            }],
        };
        on_message(&mut shared, 0, &Message::binary(answer.encode()));
        assert!(
            !shared.last_comments_arrived(),
            "comment 2 is owed and missing"
        );
        on_message(
            &mut shared,
            0,
            &Message::binary(
                ServerFrame::Batch {
                    server_time_ms: 7,
                    events: vec![comment_action(2)],
                }
                .encode(),
            ),
        );
        assert!(shared.last_comments_arrived());
        assert_eq!(
            shared.tally(),
            accounting::Tally {
                expected: 2,
                received: 2,
                comments_sampled: 0,
            }
        );
    }

    #[test]
    fn texts_that_are_not_ours_never_count_as_deliveries() {
        let mut shared = measuring(Target::Json, 1);
        for json in [
            // Never sent, sent with another instant, not a comment at all.
            format!(
                r#"{{"type":"comment","text":"{}"}}"#,
                wire::comment_text(5, 1_000)
            ),
            format!(
                r#"{{"type":"comment","text":"{}"}}"#,
                wire::comment_text(0, 999)
            ),
            r#"{"type":"comment","text":"hello"}"#.to_owned(),
        ] {
            on_message(&mut shared, 0, &Message::text(json));
        }
        assert_eq!((shared.deliveries, shared.deliveries_unknown), (0, 2));
        assert_eq!(shared.traffic.messages_received, 3);
    }

    #[test]
    fn socket_io_pings_are_answered_and_closes_end_the_viewer() {
        let mut shared = measuring(Target::SocketIo, 1);
        assert!(matches!(
            on_message(&mut shared, 0, &Message::text("2")),
            AfterMessage::Reply(wire::ENGINE_IO_PONG)
        ));
        assert!(matches!(
            on_message(&mut shared, 0, &Message::text("1")),
            AfterMessage::Closed
        ));
        let event = wire::socket_io_comment(&wire::comment_text(0, 1_000));
        on_message(&mut shared, 0, &Message::text(event));
        assert_eq!(shared.deliveries, 1);
    }
}
