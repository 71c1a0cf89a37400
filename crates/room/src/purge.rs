//! Storage records nothing reads any more (a replaced poll's votes, a replaced quiz's
//! answers, and those a restore finds of an older poll or quiz), deleted at most
//! `STORAGE_DELETES_PER_TICK_MAX` a tick. A big quiz stores up to 20 × 200,000 answers:
//! deleted in one go, that was one write of millions of keys in one output pump, more
//! than a room object's memory. The records wait only for the purge, never for a read: a
//! restore before it ends deletes what is left (they belong to no current poll or quiz).
//!
//! Invariant: every record queued is deleted exactly once, oldest queued first, unless
//! the room restarts first (then the restore finds it stale and queues it again).

use crate::StorageOp;
use ovation_proto::limits::{QUIZ_QUESTIONS_MAX, STORAGE_DELETES_PER_TICK_MAX, TICK_MS};
use std::collections::VecDeque;

/// What is left to delete of one replaced poll or quiz.
enum Doomed {
    /// Records by their delete, taken from the back.
    Ops(Vec<StorageOp>),
    /// A quiz's answers: each user with the questions they answered (bit `q`), expanded
    /// a few at a time (all of them at once would be the problem this module solves).
    Answers {
        quiz_id: String,
        users: Vec<(String, u32)>,
    },
}

#[derive(Default)]
pub(crate) struct Purge {
    queue: VecDeque<Doomed>,
    /// When the next deletes are due (0: at once).
    at_ms: u64,
}

impl Purge {
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// When the host must call `Room::handle_timeout` for the next deletes.
    pub fn next_ms(&self) -> Option<u64> {
        (!self.is_empty()).then_some(self.at_ms)
    }

    /// The deletes due at `now_ms` (`next_deletes`), the next a tick later.
    pub fn take_due(&mut self, now_ms: u64) -> Vec<StorageOp> {
        if self.is_empty() || now_ms < self.at_ms {
            return Vec::new();
        }
        self.at_ms = now_ms + TICK_MS;
        self.next_deletes()
    }

    /// Queues these deletes.
    pub fn ops(&mut self, ops: Vec<StorageOp>) {
        if !ops.is_empty() {
            self.queue.push_back(Doomed::Ops(ops));
        }
    }

    /// Queues a quiz's answers: each user with the questions they answered (bit `q`).
    pub fn answers(&mut self, quiz_id: String, users: Vec<(String, u32)>) {
        if !users.is_empty() {
            self.queue.push_back(Doomed::Answers { quiz_id, users });
        }
    }

    /// The next deletes, at most `STORAGE_DELETES_PER_TICK_MAX`.
    pub fn next_deletes(&mut self) -> Vec<StorageOp> {
        let mut deletes = Vec::new();
        while deletes.len() < STORAGE_DELETES_PER_TICK_MAX {
            let Some(front) = self.queue.front_mut() else {
                break;
            };
            let room = STORAGE_DELETES_PER_TICK_MAX - deletes.len();
            match front {
                Doomed::Ops(ops) => {
                    let keep = ops.len().saturating_sub(room);
                    deletes.extend(ops.drain(keep..));
                    if ops.is_empty() {
                        self.queue.pop_front();
                    }
                }
                Doomed::Answers { quiz_id, users } => {
                    while deletes.len() < STORAGE_DELETES_PER_TICK_MAX {
                        let Some((user, answered)) = users.last_mut() else {
                            break;
                        };
                        if *answered == 0 {
                            users.pop();
                            continue;
                        }
                        let question = answered.trailing_zeros();
                        *answered &= !(1 << question);
                        let question = u16::try_from(question).expect("a bit of a u32");
                        debug_assert!(usize::from(question) < QUIZ_QUESTIONS_MAX);
                        deletes.push(StorageOp::delete_answer(quiz_id, question, user));
                    }
                    if users.is_empty() {
                        self.queue.pop_front();
                    }
                }
            }
        }
        deletes
    }
}
