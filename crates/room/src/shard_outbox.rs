//! The batches a big room's object holds for its shards while each shard's previous batch
//! is on its way (the host sends one request per shard at a time, in order).
//!
//! A shard slower than the room's ticks (10,000 sockets at 20–35 µs a send outlast a
//! 250 ms tick; viewers keep every batch busy with reactions) made this queue grow for as
//! long as it lasted, each batch up to `RELAY_MESSAGE_BYTES_MAX`, in an isolate of
//! 128 MB. The room now holds a shard's output once `SHARD_DOWN_BATCHES_IN_FLIGHT_MAX` of
//! its batches are on their way (`Room::shard_batch_done`), so this queue stays short;
//! as a backstop (a request to a shard that hangs: the room lets the shard go every
//! `SHARD_HELD_MS_MAX` and sends it more) past `SHARD_DOWN_BATCHES_QUEUED_MAX`
//! batches for a shard, or `ROOM_SHARD_DOWN_QUEUED_BYTES_MAX` for all of them, the oldest
//! queued go (never a shard's newest), as a batch lost on the way would: the shard
//! notices the missing numbers and asks for the room's state (its viewers' broadcasts
//! come back from it; answers to single connections in those batches are lost, and their
//! senders' SDKs time out). Pure: the host feeds it.

use std::collections::{BTreeMap, VecDeque};

use ovation_proto::limits::{ROOM_SHARD_DOWN_QUEUED_BYTES_MAX, SHARD_DOWN_BATCHES_QUEUED_MAX};

/// Invariants: `bytes` is the sum of the queued batches' lengths; no queue is empty; each
/// holds at most `SHARD_DOWN_BATCHES_QUEUED_MAX`; `bytes` stays within
/// `ROOM_SHARD_DOWN_QUEUED_BYTES_MAX` unless every queue is down to its newest batch.
#[derive(Debug, Default)]
pub struct ShardOutbox {
    queues: BTreeMap<u16, VecDeque<Vec<u8>>>,
    bytes: usize,
}

impl ShardOutbox {
    /// Queues `batch` for `shard`, dropping the oldest queued batches past the bounds:
    /// the shard and size of each dropped (the host logs them, and tells the room each
    /// is done: `Room::shard_batch_done`).
    pub fn push(&mut self, shard: u16, batch: Vec<u8>) -> Vec<(u16, usize)> {
        let mut dropped = Vec::new();
        self.bytes += batch.len();
        let queue = self.queues.entry(shard).or_default();
        queue.push_back(batch);
        while queue.len() > SHARD_DOWN_BATCHES_QUEUED_MAX {
            let old = queue.pop_front().expect("longer than the bound");
            self.bytes -= old.len();
            dropped.push((shard, old.len()));
        }
        // Over the room's bytes: the longest queue gives its oldest first (the shard
        // furthest behind, whose batches would be the stalest when they arrived); of
        // queues as long, the one holding more bytes.
        while self.bytes > ROOM_SHARD_DOWN_QUEUED_BYTES_MAX {
            let Some((&longest, queue)) = self
                .queues
                .iter_mut()
                .filter(|(_, queue)| queue.len() > 1)
                .max_by_key(|(_, queue)| (queue.len(), queue.iter().map(Vec::len).sum::<usize>()))
            else {
                break;
            };
            let old = queue.pop_front().expect("longer than one");
            self.bytes -= old.len();
            dropped.push((longest, old.len()));
        }
        dropped
    }

    /// The next batch for `shard`, in the order pushed.
    pub fn pop(&mut self, shard: u16) -> Option<Vec<u8>> {
        let queue = self.queues.get_mut(&shard)?;
        let batch = queue.pop_front().expect("no queue is empty");
        if queue.is_empty() {
            self.queues.remove(&shard);
        }
        self.bytes -= batch.len();
        Some(batch)
    }

    /// The shards with batches waiting.
    pub fn waiting(&self) -> impl Iterator<Item = u16> + '_ {
        self.queues.keys().copied()
    }

    /// Bytes queued for every shard together.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A batch of `len` bytes whose first byte names it.
    fn batch(name: u8, len: usize) -> Vec<u8> {
        let mut bytes = vec![0; len.max(1)];
        bytes[0] = name;
        bytes
    }

    fn drain(outbox: &mut ShardOutbox, shard: u16) -> Vec<u8> {
        std::iter::from_fn(|| outbox.pop(shard))
            .map(|b| b[0])
            .collect()
    }

    #[test]
    fn batches_leave_in_order_per_shard_within_the_bounds() {
        let mut outbox = ShardOutbox::default();
        for name in 0..3 {
            assert_eq!(outbox.push(7, batch(name, 10)), Vec::new());
        }
        assert_eq!(outbox.push(8, batch(9, 10)), Vec::new());
        assert_eq!(outbox.waiting().collect::<Vec<_>>(), vec![7, 8]);
        assert_eq!(outbox.bytes(), 40);
        assert_eq!(drain(&mut outbox, 7), vec![0, 1, 2]);
        assert_eq!(drain(&mut outbox, 8), vec![9]);
        assert_eq!(outbox.bytes(), 0);
        assert_eq!(outbox.waiting().count(), 0);
        assert_eq!(outbox.pop(7), None);
    }

    #[test]
    fn one_past_a_shards_batches_drops_its_oldest() {
        let mut outbox = ShardOutbox::default();
        for name in 0..SHARD_DOWN_BATCHES_QUEUED_MAX {
            assert_eq!(outbox.push(1, batch(name as u8, 5)), Vec::new());
        }
        outbox.push(2, batch(200, 5));
        let one_past = outbox.push(1, batch(SHARD_DOWN_BATCHES_QUEUED_MAX as u8, 5));
        assert_eq!(one_past, vec![(1, 5)]);
        let left = drain(&mut outbox, 1);
        assert_eq!(left.len(), SHARD_DOWN_BATCHES_QUEUED_MAX);
        assert_eq!(left[0], 1, "the oldest went");
        assert_eq!(*left.last().unwrap(), SHARD_DOWN_BATCHES_QUEUED_MAX as u8);
        assert_eq!(
            drain(&mut outbox, 2),
            vec![200],
            "another shard's untouched"
        );
    }

    #[test]
    fn past_the_rooms_bytes_the_longest_queue_gives_first_and_every_newest_stays() {
        let big = ROOM_SHARD_DOWN_QUEUED_BYTES_MAX / 4;
        let mut outbox = ShardOutbox::default();
        outbox.push(1, batch(10, big));
        outbox.push(1, batch(11, big));
        outbox.push(2, batch(20, big));
        assert_eq!(outbox.push(3, batch(30, big)), Vec::new());
        // One byte past: shard 1 (two queued) gives its oldest.
        let dropped = outbox.push(3, batch(31, 1));
        assert_eq!(dropped, vec![(1, big)]);
        assert!(outbox.bytes() <= ROOM_SHARD_DOWN_QUEUED_BYTES_MAX);
        assert_eq!(drain(&mut outbox, 1), vec![11]);
        // Batches each past the bound alone: every shard keeps its newest.
        let mut outbox = ShardOutbox::default();
        for shard in 0..3u16 {
            outbox.push(shard, batch(shard as u8, ROOM_SHARD_DOWN_QUEUED_BYTES_MAX));
        }
        assert_eq!(outbox.waiting().count(), 3);
        let dropped = outbox.push(0, batch(100, 1));
        assert_eq!(dropped.len(), 1);
        assert_eq!(drain(&mut outbox, 0), vec![100]);
    }
}
