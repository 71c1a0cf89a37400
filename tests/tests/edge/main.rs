//! Real WebSockets and HTTP against the real worker under `wrangler dev` (or workerd alone:
//! `OVATION_RUNTIME=workerd`), one module per concern; the helpers they share are here.

mod admin;
mod admin_fuzz;
mod auth;
mod rooms;
mod sockets;

use ovation_cli::Socket;
use ovation_proto::{ActionBody, ClientFrame, Event, Welcome};
use ovation_tests::{token, Server};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(10);

fn connect(server: &Server, room: &str, user: &str) -> (Socket, Welcome) {
    connect_as(server, room, user, "viewer")
}

fn connect_as(server: &Server, room: &str, user: &str, role: &str) -> (Socket, Welcome) {
    let mut socket = Socket::connect(&server.base, room, &token(role, user, room), None)
        .unwrap_or_else(|e| panic!("connect {user}: {e:?}"));
    let welcome = match socket.wait_for(WAIT, |e| matches!(e, Event::Welcome(_))) {
        Ok(Event::Welcome(w)) => w,
        other => panic!("no welcome: {other:?}"),
    };
    (socket, welcome)
}

fn comment(client_id: u64, text: &str) -> ClientFrame {
    ClientFrame::Comment {
        client_id,
        text: text.into(),
    }
}

fn comment_text(event: &Event) -> Option<String> {
    match event {
        Event::Action(a) => match &a.body {
            ActionBody::Comment { text } => Some(text.clone()),
            _ => None,
        },
        _ => None,
    }
}

fn wait_ack(socket: &mut Socket, client_id: u64) -> Event {
    socket
        .wait_for(WAIT, |e| match e {
            Event::Ack { client_id: c, .. } => *c == client_id,
            Event::Error { client_id: c, .. } => *c == Some(client_id),
            _ => false,
        })
        .expect("answer to a frame")
}
