//! Seeded simulation of a big room: one `Room` and S `Shard`s joined by in-order links
//! with random delays, viewers placed by `shard_of`, comments, likes, votes (with
//! duplicates and retries across shards), gifts (double taps, resends, retries; charged
//! at a settlement service whose requests and answers get lost), direct messages, bans
//! and unbans, joins and leaves, the shard count growing while live, shard crashes (a
//! shard loses its memory and its sockets; its viewers come back and resume) and room
//! restarts (rebuilt from what it stored, charges in flight lost, some made).
//!
//! Invariants, checked as it runs and at the end:
//! - a connection sees each action once, in order, with no hole it was not told of (a
//!   `Gap`), across shard and room restarts;
//! - every comment the room acknowledged reaches every viewer connected from its Welcome
//!   until after the comment was flushed;
//! - poll tallies equal the distinct users whose vote was acknowledged, whichever shard
//!   they voted through and however often;
//! - a peer message reaches the target user's connections only;
//! - a gift acknowledged was charged, one refused for funds was not; after every gifter
//!   retried what stayed open, the room's gift totals are what the service charged (each
//!   charge announced and ranked once, across lost answers and restarts);
//! - after the links drain, the room's online count is the sum of ready connections;
//! - after the links drain, each user's shard refuses exactly the users the room bans
//!   (through lost batches, crashes and growth), and no banned user holds a session; a
//!   shard closes or refuses with 4403 only a user the room banned at some point;
//! - a shard's batches to the room, and the room's to a shard, are at least
//!   `shard_batch_interval_ms_for(S)` apart (200 ms at 200 shards), so a room sharded
//!   for a million (200 shards; the simulation puts 120 viewers on them) takes at most
//!   `ROOM_SHARD_BATCHES_PER_S_TARGET` batches per second.
//!
//! Two shapes: 3 shards growing to 6 (40 viewers), and 200 growing to 250 (120 viewers).
//!
//! `OVATION_SHARD_SIM_SEEDS=N` sets how many seeds run (default 200);
//! `OVATION_SHARD_SIM_SEED=S` replays one.
//!
//! Layout: `sim.rs` and `sim/steps.rs` are the harness, this file runs the seeded
//! simulations, `scenarios.rs` holds the single scenarios.

#[path = "../common/mod.rs"]
mod common;
mod scenarios;
mod sim;

use sim::{run_seeds, FEW_SHARDS, MANY_SHARDS};

#[test]
fn seeded_big_room_simulation_keeps_its_invariants() {
    run_seeds(
        FEW_SHARDS,
        200,
        "seeded_big_room_simulation_keeps_its_invariants",
    );
}

#[test]
fn seeded_room_sharded_for_a_million_with_120_viewers_spaces_its_shard_batches() {
    run_seeds(
        MANY_SHARDS,
        20,
        "seeded_room_sharded_for_a_million_with_120_viewers_spaces_its_shard_batches",
    );
}
