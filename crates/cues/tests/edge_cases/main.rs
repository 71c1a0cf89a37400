//! Data-driven tables of bad input (each with the exact error it must give), values the
//! writers must refuse, and frames kept undecoded. Bytes are written inline in the
//! fixture notation of `tests/fixtures/README.md`, with the byte groups explained.
//!
//! One test target, one module per theme: `id3.rs`, `emsg.rs`, `cue.rs` (payloads, ids
//! and references) and `writers.rs` (what the writers refuse).

#[path = "../common/mod.rs"]
mod common;

mod cue;
mod emsg;
mod id3;
mod writers;
