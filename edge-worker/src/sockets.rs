//! What the room and shard objects do alike with their hibernatable sockets.

use crate::contract::Attachment;
use crate::platform::StateWithAutoResponse;
use ovation_room::ConnectionId;
use std::collections::HashMap;
use wasm_bindgen::JsCast;
use worker::js_sys::Uint8Array;
use worker::{State, WebSocket};

/// The connection a socket carries in its attachment.
pub fn connection_of(ws: &WebSocket) -> Option<ConnectionId> {
    attachment_of(ws).map(|a| a.id)
}

/// What a socket carries in its attachment.
pub fn attachment_of(ws: &WebSocket) -> Option<Attachment> {
    ws.deserialize_attachment::<Attachment>().ok().flatten()
}

/// After a socket's frame: the first time its `Hello` is heard (`heard`, asked of the core
/// after the frame), the attachment records it, so the socket restored after hibernation
/// is not asked for it again. Once per socket at most, and never for the sockets that
/// said it in the upgrade (their attachment is written with it).
pub fn record_hello(ws: &WebSocket, attachment: Attachment, heard: bool) {
    if heard && !attachment.hello_heard {
        let _ = ws.serialize_attachment(Attachment {
            hello_heard: true,
            ..attachment
        });
    }
}

/// Sends one frame to each of these sockets, copied into JavaScript once.
pub fn send_to(
    sockets: &HashMap<ConnectionId, WebSocket>,
    connections: Vec<ConnectionId>,
    frame: &[u8],
) {
    let buffer = Uint8Array::from(frame).buffer();
    for connection in connections {
        if let Some(ws) = sockets.get(&connection) {
            let raw: &web_sys::WebSocket = ws.as_ref();
            let _ = raw.send_with_array_buffer(&buffer);
        }
    }
}

/// The code to complete a client's close handshake with (the hibernation API leaves it
/// to us): the client's own, or 1000 where it sent none a peer may send back.
pub fn close_reply_code(code: usize) -> u16 {
    match code {
        1005 | 1006 | 1015 => 1000,
        c => u16::try_from(c).unwrap_or(1000),
    }
}

/// The last heartbeat the runtime answered for each socket (it does not wake the object).
pub fn heartbeats(
    state: &State,
    sockets: &HashMap<ConnectionId, WebSocket>,
) -> Vec<(ConnectionId, u64)> {
    heartbeats_of(state, sockets, sockets.keys().copied())
}

/// `heartbeats` for some of the sockets only (a user's, before the per-user cap is
/// checked: the core replaces only a socket that is silent by its heartbeats too).
pub fn heartbeats_of(
    state: &State,
    sockets: &HashMap<ConnectionId, WebSocket>,
    ids: impl IntoIterator<Item = ConnectionId>,
) -> Vec<(ConnectionId, u64)> {
    let state: &StateWithAutoResponse = state.as_raw().unchecked_ref();
    ids.into_iter()
        .filter_map(|id| {
            let raw: &web_sys::WebSocket = sockets.get(&id)?.as_ref();
            let at = state.auto_response_timestamp(raw).ok().flatten()?;
            Some((id, at.get_time() as u64))
        })
        .collect()
}
