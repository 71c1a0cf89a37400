//! Exactly-once delivery of the shard's batches up: one batch in flight at a time,
//! numbered within the shard's instance; a batch whose request failed is sent again as it
//! was (the room applies each number once); and the shard's record (the batch in flight
//! and the likes acknowledged since) is stored before any acknowledgement leaves, so a
//! shard that crashes and restarts sends what it acknowledged.
//!
//! The record is written only when likes moved (acknowledged, or put in a batch) and once
//! per `SHARD_UP_SEQS_RESERVED` batches: it reserves the numbers up to a bound, and a
//! restored shard numbers its new batches above it, so a number is never used twice
//! without a write per batch. A batch without likes that was in flight at a crash is
//! lost with it: its frames were not acknowledged (their senders' SDKs time out).

use super::*;
use serde::{Deserialize, Serialize};

/// What became of a batch up (the host maps its request's outcome).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpAnswer {
    /// The room applied it (or had: a repeat is answered the same way).
    Applied,
    /// No answer, or the room could not take it now (reset, overloaded, a network
    /// error): sent again, unchanged, after a backoff.
    Failed,
    /// The room refused it (it does not decode, or the room is gone): sent again like a
    /// failed one `SHARD_UP_REFUSED_RETRIES` times (a room still on the previous build
    /// during a deploy refuses the new batch), then dropped and logged with the likes it
    /// carried; its frames' senders get no answer (their SDK times out).
    Refused,
}

/// A batch sent and not answered yet.
#[derive(Clone, Debug)]
pub(crate) struct InFlight {
    pub seq: u64,
    pub batch: Vec<u8>,
    pub likes: u64,
    /// The batch's epoch and online count (kept in the record with its likes).
    pub epoch: u64,
    pub online: u32,
    /// Answers `Failed` and `Refused` so far (each bounded on its own).
    pub failures: u32,
    pub refusals: u32,
    /// When to send it again (after a failure, or at once after a restart).
    pub retry_at_ms: Option<u64>,
}

/// The record's copy of a batch with likes: what a restarted shard sends again under
/// the same number. Its frames are left out (they keep the record small, and were not
/// acknowledged): if the first copy was applied this one is a repeat, else the frames'
/// senders time out.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct LikesInFlight {
    seq: u64,
    likes: u64,
    epoch: u64,
    online: u32,
}

/// What a shard stores so its acknowledged likes survive its crash.
#[derive(Serialize, Deserialize)]
struct ShardRecord {
    format: u16,
    instance: u64,
    /// Batch numbers up to this may have been used: a restored shard starts above.
    up_seq_reserved: u64,
    /// The last batch with likes (maybe answered since: sent again, it is a repeat).
    in_flight: Option<LikesInFlight>,
    likes_pending: u64,
    epoch_known: u64,
    likes_unstamped: u64,
    likes_last: Vec<(String, u64)>,
}

/// 2: with `likes_unstamped` (1 was never released).
const SHARD_RECORD_FORMAT: u16 = 2;

impl Shard {
    /// A shard restarted from its record (`ShardOutput::Persist`): the same instance and
    /// numbering, its batch in flight sent again at once, and the likes it acknowledged
    /// and had not sent yet. Like a new shard, it asks the room for its state.
    pub fn restore(index: u16, record: &[u8], now_ms: u64) -> Result<Shard, DecodeError> {
        let (record, rest) =
            postcard::take_from_bytes::<ShardRecord>(record).map_err(|_| DecodeError::Malformed)?;
        if !rest.is_empty() || record.format != SHARD_RECORD_FORMAT {
            return Err(DecodeError::Malformed);
        }
        if record.likes_last.len() > LIKE_FRAMES_STORED_PER_TICK_MAX {
            return Err(DecodeError::Malformed);
        }
        let mut shard = Shard::new(index, record.instance, now_ms);
        shard.up_seq = record.up_seq_reserved;
        shard.up_seq_reserved = record.up_seq_reserved;
        shard.likes_pending = record.likes_pending;
        shard.epoch_known = record.epoch_known;
        shard.likes_unstamped = record.likes_unstamped;
        for (user, client_id) in &record.likes_last {
            shard.user_buckets(user, now_ms).remember(*client_id, None);
        }
        shard.likes_last = record.likes_last;
        shard.up_in_flight = record.in_flight.map(|flight| {
            let up = ShardUp {
                shard: index,
                needs_snapshot: false,
                online: flight.online,
                likes: flight.likes,
                frames: Vec::new(),
                instance: record.instance,
                seq: flight.seq,
                epoch: flight.epoch,
            };
            InFlight {
                seq: flight.seq,
                batch: up.encode(),
                likes: flight.likes,
                epoch: flight.epoch,
                online: flight.online,
                failures: 0,
                refusals: 0,
                retry_at_ms: Some(now_ms),
            }
        });
        Ok(shard)
    }

    /// The room's answer to the batch numbered `seq` (an answer for another batch, left
    /// from before a restart, is ignored).
    pub fn up_answered(&mut self, seq: u64, answer: UpAnswer, now_ms: u64) {
        let interval_ms = self.up_interval_ms();
        let Some(flight) = self.up_in_flight.as_mut().filter(|f| f.seq == seq) else {
            return;
        };
        let retried = match answer {
            UpAnswer::Applied => false,
            UpAnswer::Failed => {
                flight.failures += 1;
                flight.failures < SHARD_UP_FAILURES_MAX
            }
            UpAnswer::Refused => {
                flight.refusals += 1;
                flight.refusals <= SHARD_UP_REFUSED_RETRIES
            }
        };
        if retried {
            self.stats.batches_up_failed += 1;
            let attempts = flight.failures + flight.refusals;
            let backoff_ms = interval_ms << attempts.min(8);
            flight.retry_at_ms = Some(now_ms + backoff_ms.min(SHARD_UP_RETRY_MS_MAX));
            return;
        }
        let flight = self.up_in_flight.take().expect("matched above");
        if flight.likes > 0 {
            // The record must not send again, after a restart, what was applied or
            // logged dropped.
            self.record_dirty = true;
        }
        if answer != UpAnswer::Applied {
            // Given up: a room that refuses it (or fails on it) this long would block
            // every later batch, and the snapshot a woken shard needs. Told, not silent,
            // and only once the record without it is stored (a flush now: the acks
            // queued since the last one go with it), so a crash cannot send again a
            // batch the log said was dropped.
            self.stats.batches_up_dropped += 1;
            self.flush_sockets(now_ms);
            self.outputs.push_back(ShardOutput::Log(LogRecord {
                event: "shard_up_dropped",
                connection: None,
                user: None,
                code: "likes_dropped",
                detail: format!(
                    "shard {} batch {seq} ({answer:?} {} times): {} likes not counted",
                    self.index,
                    flight.failures + flight.refusals,
                    flight.likes
                ),
            }));
        }
        if self.up_pending() {
            let allowed_at_ms = self
                .up_sent_at_ms
                .map_or(0, |at| at + self.up_interval_ms());
            self.up_at_ms = Some(allowed_at_ms.max(now_ms));
        }
    }

    /// When the batch in flight is due to be sent again (`None`: waiting for its answer,
    /// or nothing in flight).
    pub(crate) fn up_retry_at(&self) -> Option<u64> {
        self.up_in_flight.as_ref().and_then(|f| f.retry_at_ms)
    }

    /// Sends the batch in flight again, unchanged.
    pub(crate) fn resend_up(&mut self, now_ms: u64) {
        let flight = self.up_in_flight.as_mut().expect("a batch to send again");
        flight.retry_at_ms = None;
        self.up_sent_at_ms = Some(now_ms);
        self.stats.batches_up_resent += 1;
        self.outputs.push_back(ShardOutput::Up {
            seq: flight.seq,
            batch: flight.batch.clone(),
        });
    }

    /// Numbers a new batch and sends it. The record is stored first (the host starts that
    /// write before it sends anything after it) when the batch carries likes or its
    /// number passes the reserved ones.
    pub(crate) fn send_numbered(&mut self, mut up: ShardUp) {
        self.up_seq += 1;
        if self.up_seq > self.up_seq_reserved {
            self.up_seq_reserved = self.up_seq + SHARD_UP_SEQS_RESERVED;
            self.record_dirty = true;
        }
        up.instance = self.instance;
        up.seq = self.up_seq;
        let batch = up.encode();
        assert!(
            batch.len() <= RELAY_MESSAGE_BYTES_MAX,
            "up_frames_for_one_batch keeps a batch under the relay limit"
        );
        self.up_in_flight = Some(InFlight {
            seq: self.up_seq,
            batch: batch.clone(),
            likes: up.likes,
            epoch: up.epoch,
            online: up.online,
            failures: 0,
            refusals: 0,
            retry_at_ms: None,
        });
        if up.likes > 0 {
            self.record_dirty = true;
        }
        self.persist_record();
        self.outputs.push_back(ShardOutput::Up {
            seq: self.up_seq,
            batch,
        });
    }

    /// The snapshot (or a like) names the room's opening: likes taken without a copy of
    /// the room are its; likes pending for another opening (one that ended: the room
    /// counts no likes after its end) are dropped.
    pub(crate) fn stamp_likes(&mut self, epoch: u64) {
        if self.likes_pending > 0 && self.epoch_known != epoch {
            let likes = std::mem::take(&mut self.likes_pending);
            self.record_dirty = true;
            self.outputs.push_back(ShardOutput::Log(LogRecord {
                event: "likes_of_an_ended_opening",
                connection: None,
                user: None,
                code: "likes_dropped",
                detail: format!(
                    "shard {}: {likes} likes of opening {} (the room is at {epoch})",
                    self.index, self.epoch_known
                ),
            }));
        }
        if self.epoch_known != epoch {
            // Also the last opening this shard knew of, kept in its record: sockets
            // reattached after a restart were welcomed into it (`welcomed_in`), and a
            // batch sent before the room's state comes again is stamped with it.
            self.epoch_known = epoch;
            self.record_dirty = true;
        }
        if self.likes_unstamped > 0 {
            self.likes_pending += std::mem::take(&mut self.likes_unstamped);
            self.record_dirty = true;
        }
    }

    /// Emits the shard's record when it changed: before any acknowledgement of a like
    /// leaves (`flush_sockets`) and before a new batch is sent.
    pub(crate) fn persist_record(&mut self) {
        if !self.record_dirty {
            return;
        }
        self.record_dirty = false;
        if !self.likes_acked.is_empty() {
            self.likes_last = std::mem::take(&mut self.likes_acked);
        }
        let record =
            ShardRecord {
                format: SHARD_RECORD_FORMAT,
                instance: self.instance,
                up_seq_reserved: self.up_seq_reserved,
                in_flight: self.up_in_flight.as_ref().filter(|f| f.likes > 0).map(|f| {
                    LikesInFlight {
                        seq: f.seq,
                        likes: f.likes,
                        epoch: f.epoch,
                        online: f.online,
                    }
                }),
                likes_pending: self.likes_pending,
                epoch_known: self.epoch_known,
                likes_unstamped: self.likes_unstamped,
                likes_last: self.likes_last.clone(),
            };
        let bytes = postcard::to_allocvec(&record).expect("encoding into a Vec cannot fail");
        self.outputs.push_back(ShardOutput::Persist(bytes));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ovation_proto::Role;

    /// The room's first batch: a snapshot of opening 5.
    fn liked_down() -> ShardDown {
        let mut down = crate::tests::first_down(0, Vec::new(), 0);
        if let Some(snapshot) = down.snapshot.as_mut() {
            snapshot.epoch = 5;
        }
        down
    }

    fn liked_shard() -> Shard {
        let mut shard = Shard::new(0, 77, 0);
        let down = liked_down();
        let identity = crate::tests::identity("ana", Role::Viewer);
        shard.connect(1, identity, 3_600_000, 0).unwrap();
        let hello = ClientFrame::Hello(Hello {
            protocol_version: PROTOCOL_VERSION,
            resume: None,
        });
        shard.handle_frame(1, &hello.encode(), 0);
        shard.handle_down(&down.encode(), 0).unwrap();
        drain(&mut shard);
        shard
    }

    fn drain(shard: &mut Shard) -> Vec<ShardOutput> {
        std::iter::from_fn(|| shard.poll_output()).collect()
    }

    fn like(shard: &mut Shard, client_id: u64, now_ms: u64) {
        let frame = ClientFrame::Like {
            client_id,
            count: 3,
        };
        shard.handle_frame(1, &frame.encode(), now_ms);
    }

    fn run_until(shard: &mut Shard, now_ms: u64) -> Vec<ShardOutput> {
        let mut out = Vec::new();
        while let Some(at) = shard.poll_timeout().filter(|&at| at <= now_ms) {
            shard.handle_timeout(at);
            out.extend(drain(shard));
        }
        out
    }

    /// Likes once, then answers the batch `answer` `resends` times, each followed by the
    /// batch sent again unchanged, and once more: the batch is dropped and logged with
    /// its 3 likes. Returns the time then.
    fn answer_until_dropped(shard: &mut Shard, answer: UpAnswer, resends: u32) -> u64 {
        like(shard, 1, 10);
        let first = ups(&run_until(shard, 100));
        let mut now_ms = 100;
        for _ in 0..resends {
            shard.up_answered(1, answer, now_ms);
            now_ms += SHARD_UP_RETRY_MS_MAX;
            shard.touch(1, now_ms); // ana's socket stays alive meanwhile
            assert_eq!(ups(&run_until(shard, now_ms)), first, "sent again");
        }
        shard.up_answered(1, answer, now_ms);
        let out = drain(shard);
        let logged_at = out
            .iter()
            .position(|o| {
                matches!(o, ShardOutput::Log(r)
                if r.event == "shard_up_dropped" && r.detail.contains("3 likes"))
            })
            .unwrap_or_else(|| panic!("logged: {out:?}"));
        // The record without the batch is stored before the log says it was dropped: a
        // shard restored from it does not send the batch again.
        let stored = out[..logged_at]
            .iter()
            .rev()
            .find_map(|o| match o {
                ShardOutput::Persist(record) => Some(record.clone()),
                _ => None,
            })
            .unwrap_or_else(|| panic!("the record is stored before the log: {out:?}"));
        let mut restored = Shard::restore(0, &stored, now_ms).unwrap();
        assert!(
            ups(&drain(&mut restored)).is_empty() && restored.up_retry_at().is_none(),
            "a batch logged dropped is not sent again after a restart"
        );
        now_ms
    }

    fn ups(outputs: &[ShardOutput]) -> Vec<ShardUp> {
        outputs
            .iter()
            .filter_map(|o| match o {
                ShardOutput::Up { batch, .. } => Some(ShardUp::decode(batch).unwrap()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_like_is_stored_before_its_ack_leaves_and_a_failed_batch_is_sent_again_unchanged() {
        let mut shard = liked_shard();
        like(&mut shard, 1, 10);
        let out = run_until(&mut shard, 100);
        let persist_at = out
            .iter()
            .position(|o| matches!(o, ShardOutput::Persist(_)))
            .expect("the record is stored");
        let ack_at = out
            .iter()
            .position(|o| matches!(o, ShardOutput::Send { .. }))
            .expect("the like is acknowledged");
        assert!(persist_at < ack_at, "stored before the ack leaves: {out:?}");
        let first = ups(&out);
        assert_eq!(first.len(), 1);
        assert_eq!(
            (first[0].likes, first[0].seq, first[0].instance),
            (3, 1, 77)
        );
        assert_eq!(first[0].epoch, 5);

        // More likes while the batch is in flight wait for its answer.
        like(&mut shard, 2, 120);
        assert!(
            ups(&run_until(&mut shard, 400)).is_empty(),
            "one batch at a time"
        );
        shard.up_answered(1, UpAnswer::Failed, 400);
        assert!(ups(&run_until(&mut shard, 450)).is_empty(), "backoff first");
        let again = ups(&run_until(&mut shard, 600));
        assert_eq!(again, first, "sent again as it was");
        assert_eq!(shard.stats().batches_up_resent, 1);

        // A stale answer changes nothing; the right one lets the next batch go.
        shard.up_answered(7, UpAnswer::Applied, 600);
        assert!(ups(&run_until(&mut shard, 700)).is_empty());
        shard.up_answered(1, UpAnswer::Applied, 700);
        let next = ups(&run_until(&mut shard, 800));
        assert_eq!(next.len(), 1);
        assert_eq!((next[0].likes, next[0].seq), (3, 2));
    }

    #[test]
    fn a_restarted_shard_sends_its_batch_in_flight_and_its_acknowledged_likes() {
        let mut shard = liked_shard();
        like(&mut shard, 1, 10);
        let out = run_until(&mut shard, 100);
        like(&mut shard, 2, 120);
        let out2 = run_until(&mut shard, 200); // acks the second like, in flight: the first
        let record = out
            .iter()
            .chain(&out2)
            .rev()
            .filter_map(|o| match o {
                ShardOutput::Persist(bytes) => Some(bytes.clone()),
                _ => None,
            })
            .next()
            .expect("stored");
        let mut restarted = Shard::restore(0, &record, 1_000).unwrap();
        let resent = ups(&run_until(&mut restarted, 1_000));
        assert_eq!(resent, ups(&out), "the batch in flight, as it was");
        restarted.up_answered(1, UpAnswer::Applied, 1_010);
        let next = ups(&run_until(&mut restarted, 2_000));
        assert_eq!(next.len(), 1);
        assert_eq!((next[0].likes, next[0].instance), (3, 77));
        assert!(
            next[0].seq > SHARD_UP_SEQS_RESERVED,
            "numbered above every number the crashed run may have used: {}",
            next[0].seq
        );
        // Its last acknowledged like frame, sent again (the ack lost with the socket), is
        // acknowledged and not counted again.
        let identity = crate::tests::identity("ana", Role::Viewer);
        restarted.reattach(1, identity, 3_600_000, true, 2_000);
        like(&mut restarted, 2, 2_000);
        assert_eq!(restarted.likes_pending, 0, "a repeat is not counted");
        assert!(
            Shard::restore(0, b"\x07", 0).is_err(),
            "a record that does not read"
        );
        let mut longer = record.clone();
        longer.push(0);
        assert!(Shard::restore(0, &longer, 0).is_err(), "read exactly");
    }

    /// A shard woken from hibernation has no copy of the room yet, but its sockets
    /// survived: their likes are acknowledged (and stored) at once and go up once the
    /// snapshot names their opening (a batch up naming none would not be counted).
    #[test]
    fn likes_taken_before_the_snapshot_go_up_with_its_opening() {
        let mut shard = Shard::new(0, 77, 0);
        let identity = crate::tests::identity("ana", Role::Viewer);
        shard.reattach(1, identity, 3_600_000, true, 0);
        like(&mut shard, 1, 10);
        let out = run_until(&mut shard, 300);
        assert!(out.iter().any(|o| matches!(o, ShardOutput::Persist(_))));
        let before = ups(&out);
        assert!(before.iter().all(|up| up.likes == 0), "{before:?}");
        for up in &before {
            shard.up_answered(up.seq, UpAnswer::Applied, 300);
        }
        let mut down = liked_down();
        down.seq = 9;
        shard.handle_down(&down.encode(), 400).unwrap();
        let after = ups(&run_until(&mut shard, 1_000));
        assert_eq!(after.len(), 1);
        assert_eq!((after[0].likes, after[0].epoch), (3, 5));
    }

    /// A shard restored from its record (the way a hibernated shard comes back) after its
    /// room ended and opened again: likes its surviving sockets take before the snapshot
    /// go up under the snapshot's opening, not the record's.
    #[test]
    fn a_restored_shard_s_new_likes_go_up_under_the_opening_its_snapshot_names() {
        let mut shard = liked_shard(); // opening 5
        like(&mut shard, 1, 10);
        let out = run_until(&mut shard, 100);
        shard.up_answered(1, UpAnswer::Applied, 100);
        let record = out
            .iter()
            .rev()
            .find_map(|o| match o {
                ShardOutput::Persist(bytes) => Some(bytes.clone()),
                _ => None,
            })
            .expect("stored");
        let mut woken = Shard::restore(0, &record, 10_000).unwrap();
        let identity = crate::tests::identity("ana", Role::Viewer);
        woken.reattach(1, identity, 3_600_000, true, 10_000);
        like(&mut woken, 2, 10_000);
        let mut now_ms = 10_000;
        // The batch from the record goes again first (a repeat to the room).
        for up in ups(&run_until(&mut woken, now_ms + 300)) {
            assert_eq!(
                (up.likes, up.epoch),
                (3, 5),
                "the record's batch, as it was"
            );
            woken.up_answered(up.seq, UpAnswer::Applied, now_ms + 300);
        }
        now_ms += 400;
        let mut down = liked_down();
        down.seq = 1;
        if let Some(snapshot) = down.snapshot.as_mut() {
            snapshot.epoch = 6; // the room opened again while the shard slept
        }
        woken.handle_down(&down.encode(), now_ms).unwrap();
        let after: Vec<ShardUp> = ups(&run_until(&mut woken, now_ms + 1_000))
            .into_iter()
            .filter(|up| up.likes > 0)
            .collect();
        assert_eq!(after.len(), 1, "{after:?}");
        assert_eq!((after[0].likes, after[0].epoch), (3, 6));
    }

    #[test]
    fn own_actions_merge_in_order_and_never_after_a_gap_they_precede() {
        let action = |seq: u64| {
            Event::Action(ovation_proto::Action {
                seq,
                ts_ms: 0,
                user: "u".into(),
                name: "U".into(),
                body: ovation_proto::ActionBody::Comment { text: "t".into() },
            })
        };
        let gap = Event::Gap {
            missed_after: 10,
            resumed_from: 15,
        };
        let shared = vec![
            gap.clone(),
            action(15),
            action(16),
            Event::Likes { total: 1 },
        ];
        let merged = crate::flush::merge_actions(&shared, vec![action(20), action(12)]);
        let expected = vec![
            action(12),
            gap,
            action(15),
            action(16),
            Event::Likes { total: 1 },
            action(20),
        ];
        assert_eq!(merged, expected);
    }

    /// One past each bound: a batch that fails `SHARD_UP_FAILURES_MAX` − 1 times is
    /// still sent again; the next failure drops it, logged with its likes.
    #[test]
    fn a_failing_batch_is_sent_again_until_its_bound_then_dropped() {
        let mut shard = liked_shard();
        answer_until_dropped(&mut shard, UpAnswer::Failed, SHARD_UP_FAILURES_MAX - 1);
        assert_eq!(shard.stats().batches_up_dropped, 1);
        assert_eq!(
            shard.stats().batches_up_resent,
            u64::from(SHARD_UP_FAILURES_MAX) - 1
        );
    }

    /// The record reserves `SHARD_UP_SEQS_RESERVED` numbers at once: batches without
    /// likes within the reserve write nothing, the one past it writes the next reserve.
    #[test]
    fn the_record_is_written_once_per_reserve_of_batch_numbers() {
        let mut shard = liked_shard();
        let mut now_ms = 0;
        // The batches written before: the number of the batch each write came with.
        let mut written_with = Vec::new();
        let mut last_seq = 0;
        let mut step = |shard: &mut Shard, at_ms: u64, last_seq: &mut u64| {
            let out = run_until(shard, at_ms);
            let mut write_pending = false;
            for output in &out {
                match output {
                    ShardOutput::Persist(_) => write_pending = true,
                    ShardOutput::Up { seq, batch } => {
                        assert_eq!(ShardUp::decode(batch).unwrap().likes, 0);
                        if std::mem::take(&mut write_pending) {
                            written_with.push(*seq);
                        }
                        *last_seq = *seq;
                        shard.up_answered(*seq, UpAnswer::Applied, at_ms);
                    }
                    _ => {}
                }
            }
            assert!(!write_pending, "a write comes with a batch here");
        };
        // Online changes alone make batches without likes: a socket joins and leaves.
        while last_seq <= SHARD_UP_SEQS_RESERVED + 2 {
            now_ms += 1_000;
            let identity = crate::tests::identity("bob", Role::Viewer);
            shard.reattach(2, identity, now_ms + 3_600_000, true, now_ms);
            shard.touch(1, now_ms);
            step(&mut shard, now_ms + 500, &mut last_seq);
            shard.disconnect(2, now_ms + 500);
            step(&mut shard, now_ms + 999, &mut last_seq);
        }
        // The first batch reserves its number and the next 1,000; the one past them
        // writes again.
        assert_eq!(written_with, vec![1, SHARD_UP_SEQS_RESERVED + 2]);
    }

    #[test]
    fn a_refused_batch_is_dropped_and_logged_with_its_likes() {
        let mut shard = liked_shard();
        // Refused: sent again a few times (a room on the previous build during a deploy).
        let now_ms = answer_until_dropped(&mut shard, UpAnswer::Refused, SHARD_UP_REFUSED_RETRIES);
        like(&mut shard, 2, now_ms);
        let next = ups(&run_until(&mut shard, now_ms + 300));
        assert_eq!((next[0].likes, next[0].seq), (3, 2));
    }
}
