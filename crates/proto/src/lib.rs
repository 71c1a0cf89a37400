//! Ovation wire protocol.
//!
//! Client and server frames are postcard-encoded Rust types carried in binary WebSocket
//! frames (subprotocol [`SUBPROTOCOL`]). postcard is not self-describing: variants are
//! encoded by index, so **every enum here is append-only** — add variants at the end,
//! never reorder or remove. Golden fixtures in `tests/golden/` fail on any change.
//!
//! This crate does no I/O and reads no clock.

#![forbid(unsafe_code)]

extern crate alloc;

mod bucket;
mod close;
mod frames;
pub mod limits;
mod pull;
mod relay;
mod replay;
mod room_id;
pub mod routes;

pub use bucket::TokenBucket;
pub use close::CloseCode;
pub use frames::*;
pub use limits::{PROTOCOL_VERSION, SUBPROTOCOL};
pub use pull::{PullAction, PullEvents, PullState, PART_VERSION_HEADER};
pub use relay::{shard_of, RelayedFrame, ShardDown, ShardUp, Snapshot};
pub use replay::{
    ReplayEvent, ReplayEventBody, ReplayPart, ReplayQuery, ReplayQueryError, ReplaySnapshot,
    ReplayStatus, ReplayWindow,
};
pub use room_id::{Region, RoomId, RoomIdError};

/// The longest start of `text` within `bytes_max` bytes that ends on a character: how a
/// text past its bound is cut where the rule is to cut, not refuse (audit details, the
/// display name a nameless token shows).
pub fn cut_at_char(text: &str, bytes_max: usize) -> &str {
    let mut end = text.len().min(bytes_max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests;
