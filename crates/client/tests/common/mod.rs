//! What the client simulations share.

use ovation_proto::{ClientFrame, Hello};
use ovation_room::Room;

/// What the edge does with an upgrade that says its Hello (`?hello=`): the room gets the
/// Hello as the socket's first frame, before anything the client sends.
pub fn upgrade_hello(room: &mut Room, connection: u64, path: &str, now_ms: u64) {
    let query = path.split_once('?').map_or("", |(_, query)| query);
    if let Some(hello) = Hello::from_upgrade_query(query) {
        room.handle_frame(connection, &ClientFrame::Hello(hello).encode(), now_ms);
    }
}
