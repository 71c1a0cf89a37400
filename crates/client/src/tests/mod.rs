//! The client core's tests, one file per concern; shared helpers here.

use super::*;

mod actions;
mod codes;
mod connection;
mod deadlines;
mod pull;
mod state;

use alloc::format;

use alloc::vec;

use ovation_proto::{Action, Role, UPGRADE_HELLO_QUERY};

const ROOM: &str = "weur-t";

fn client(mode: TransportMode, now_ms: u64) -> Client {
    Client::new(
        Config {
            room: ROOM.into(),
            transport: mode,
            seed: 7,
        },
        now_ms,
    )
}

fn transmits(c: &mut Client) -> Vec<Transmit> {
    core::iter::from_fn(|| c.poll_transmit()).collect()
}

fn events(c: &mut Client) -> Vec<ClientEvent> {
    core::iter::from_fn(|| c.poll_event()).collect()
}

fn opened_socket(t: &[Transmit]) -> u64 {
    t.iter()
        .find_map(|t| match t {
            Transmit::OpenSocket { socket, path } => {
                // A first join says its Hello in the upgrade; a resume sends it.
                let fresh = ["/v1/rooms/weur-t/ws?", UPGRADE_HELLO_QUERY].concat();
                assert!(path == "/v1/rooms/weur-t/ws" || *path == fresh, "{path}");
                Some(*socket)
            }
            _ => None,
        })
        .expect("an OpenSocket")
}

fn sent_frames(t: &[Transmit]) -> Vec<ClientFrame> {
    t.iter()
        .filter_map(|t| match t {
            Transmit::Send { frame, .. } => Some(ClientFrame::decode(frame).unwrap()),
            _ => None,
        })
        .collect()
}

fn batch(events: Vec<Event>, server_time_ms: u64) -> Vec<u8> {
    ServerFrame::Batch {
        server_time_ms,
        events,
    }
    .encode()
}

fn welcome(epoch: u64, cursor: u64, resumed: bool) -> Event {
    Event::Welcome(Welcome {
        protocol_version: PROTOCOL_VERSION,
        connection_id: 1,
        user: "ana".into(),
        role: Role::Viewer,
        epoch,
        total_version: 1,
        action_cursor: cursor,
        resumed,
        tick_ms: 50,
    })
}

fn comment_action(seq: u64, text: &str) -> Event {
    Event::Action(Action {
        seq,
        ts_ms: 0,
        user: "bob".into(),
        name: "Bob".into(),
        body: ActionBody::Comment { text: text.into() },
    })
}

/// A client with an open socket in epoch 5 at cursor 10.
fn open_client(now_ms: u64) -> (Client, u64) {
    let mut c = client(TransportMode::Ws, now_ms);
    let socket = opened_socket(&transmits(&mut c));
    c.handle_socket_open(socket, now_ms);
    c.handle_socket_message(socket, &batch(vec![welcome(5, 10, false)], now_ms), now_ms);
    transmits(&mut c);
    events(&mut c);
    (c, socket)
}

/// `socket` drops (1006) at `now_ms`; the next one opens when the backoff says and is
/// welcomed resuming epoch 5 at cursor 10. Returns it and when it opened; what the client
/// sent on it is left to read.
fn reconnect_resumed(c: &mut Client, socket: u64, now_ms: u64) -> (u64, u64) {
    c.handle_socket_closed(socket, 1006, "", now_ms);
    let at = c.poll_timeout().unwrap();
    c.handle_timeout(at);
    let socket = opened_socket(&transmits(c));
    c.handle_socket_open(socket, at);
    c.handle_socket_message(socket, &batch(vec![welcome(5, 10, true)], at), at);
    (socket, at)
}

fn like_frames(t: &[Transmit]) -> Vec<(u64, u32)> {
    sent_frames(t)
        .into_iter()
        .filter_map(|f| match f {
            ClientFrame::Like { client_id, count } => Some((client_id, count)),
            _ => None,
        })
        .collect()
}

fn likes_dropped(got: &[ClientEvent]) -> Vec<(u32, String)> {
    got.iter()
        .filter_map(|e| match e {
            ClientEvent::LikesDropped { count, code, .. } => {
                Some((*count, code.as_str().to_owned()))
            }
            _ => None,
        })
        .collect()
}

fn state_reply(status: &str) -> FetchReply {
    FetchReply::State(PullState {
        room: "r".into(),
        epoch: 5,
        version: 1,
        parts: BTreeMap::new(),
        action_cursor: 0,
        likes: 0,
        online: 0,
        status: status.into(),
    })
}

fn admission_check(t: &[Transmit]) -> u64 {
    t.iter()
        .find_map(|t| match t {
            Transmit::Fetch {
                request,
                path,
                kind: FetchKind::State,
            } => {
                assert_eq!(path, "/v1/rooms/weur-t/state");
                Some(*request)
            }
            _ => None,
        })
        .expect("a state request after the failed upgrade")
}

fn closes(t: &[Transmit]) -> Vec<String> {
    t.iter()
        .filter_map(|t| match t {
            Transmit::CloseSocket { reason, .. } => Some(reason.clone()),
            _ => None,
        })
        .collect()
}

fn pings(t: &[Transmit]) -> Vec<u64> {
    sent_frames(t)
        .into_iter()
        .filter_map(|f| match f {
            ClientFrame::Ping { client_time_ms } => Some(client_time_ms),
            _ => None,
        })
        .collect()
}

fn fetches(t: &[Transmit]) -> Vec<u64> {
    t.iter()
        .filter_map(|t| match t {
            Transmit::Fetch { request, .. } => Some(*request),
            _ => None,
        })
        .collect()
}
