//! The action ring on its own: bounds, gaps, restores and a shard's copy, against a model
//! that keeps every action.

use super::*;
use crate::ring::{ActionRing, CommentRemoved};
use proptest::prelude::*;

fn comment(seq: u64, ts_ms: u64) -> Action {
    Action {
        seq,
        ts_ms,
        user: "u".into(),
        name: "U".into(),
        body: ActionBody::Comment { text: "hi".into() },
    }
}

fn kept(ring: &ActionRing) -> Vec<u64> {
    ring.iter().map(|a| a.seq).collect()
}

#[test]
fn the_count_bound_pushes_the_oldest_out_one_past_it_and_readers_before_it_get_a_gap() {
    let mut ring = ActionRing::default();
    for _ in 0..RING_EVENTS_MAX {
        let seq = ring.take_seq();
        assert_eq!(ring.keep(comment(seq, 0)), None);
    }
    let seq = ring.take_seq();
    let out = ring.keep(comment(seq, 0)).expect("one past the bound");
    assert_eq!(out.seq, 1);
    assert_eq!(ring.iter().count(), RING_EVENTS_MAX);
    assert_eq!(ring.gap_after(1), None, "seq 2 is still kept");
    assert_eq!(
        ring.gap_after(0),
        Some(Event::Gap {
            missed_after: 0,
            resumed_from: 2
        })
    );
    assert_eq!(
        ring.after(seq - 1).map(|a| a.seq).collect::<Vec<_>>(),
        [seq]
    );
    // A cursor from the future (another epoch, a forged resume) is read as the newest.
    assert_eq!(ring.gap_after(u64::MAX), None);
    assert_eq!(ring.after(u64::MAX).count(), 0);
}

#[test]
fn age_eviction_names_each_evicted_action_and_an_emptied_ring_still_reports_the_gap() {
    let mut ring = ActionRing::default();
    for ts_ms in [0, 10, 20] {
        let seq = ring.take_seq();
        ring.keep(comment(seq, ts_ms));
    }
    let mut evicted = Vec::new();
    ring.evict_old(10 + RING_AGE_MS_MAX, |seq| evicted.push(seq));
    assert_eq!(
        evicted,
        [1],
        "an action exactly RING_AGE_MS_MAX old is kept"
    );
    ring.evict_old(u64::MAX, |seq| evicted.push(seq));
    assert_eq!(evicted, [1, 2, 3]);
    assert_eq!(
        ring.gap_after(1),
        Some(Event::Gap {
            missed_after: 1,
            resumed_from: 4
        })
    );
    assert_eq!(ring.gap_after(3), None);
}

#[test]
fn a_restored_ring_keeps_only_what_meta_counted_in_order_and_the_newest_within_the_bound() {
    let stored = (1..=RING_EVENTS_MAX as u64 + 5)
        .rev()
        .map(|s| comment(s, 0));
    let ring = ActionRing::restored(RING_EVENTS_MAX as u64 + 3, stored, Default::default());
    let seqs = kept(&ring);
    assert_eq!(seqs.len(), RING_EVENTS_MAX);
    assert_eq!(seqs.first(), Some(&4));
    assert_eq!(seqs.last(), Some(&(RING_EVENTS_MAX as u64 + 3)));
    assert!(seqs.windows(2).all(|w| w[0] < w[1]));
}

#[test]
fn a_removed_comment_leaves_the_ring_and_the_shards_copy_alike() {
    let mut room = ActionRing::default();
    let mut copy = ActionRing::default();
    for _ in 0..3 {
        let seq = room.take_seq();
        room.keep(comment(seq, 0));
        copy.apply(&comment(seq, 0));
    }
    assert_eq!(room.remove_comment(2), Ok(CommentRemoved::Kept));
    assert!(room.remove_comment(2).is_err(), "once");
    let seq = room.take_seq();
    let removal = Action {
        body: ActionBody::Removed { seq: 2 },
        ..comment(seq, 0)
    };
    room.keep(removal.clone());
    copy.apply(&removal);
    copy.apply(&comment(1, 0)); // an old action again changes nothing
    assert_eq!(kept(&room), [1, 3, 4]);
    assert_eq!(kept(&copy), kept(&room));
    assert_eq!(copy.last_seq(), room.last_seq());
}

proptest! {
    /// Any mix of kept, sampled (numbered, not kept) and evicted actions: a reader at any
    /// cursor gets exactly the model's actions after it, with a gap whenever one it
    /// should have had is gone, and never without something missing.
    #[test]
    fn readers_get_what_the_model_says(ops in prop::collection::vec(0u8..6, 0..3000), cursor_pick in any::<u64>()) {
        let mut ring = ActionRing::default();
        let mut all: Vec<(u64, bool)> = Vec::new(); // (seq, kept) for every number given
        let mut gone: BTreeSet<u64> = BTreeSet::new();
        let mut now_ms = 0;
        for op in ops {
            now_ms += 7;
            match op {
                0 => {
                    let seq = ring.take_seq();
                    all.push((seq, false));
                }
                5 => ring.evict_old(now_ms + RING_AGE_MS_MAX / 2, |seq| {
                    gone.insert(seq);
                }),
                _ => {
                    let seq = ring.take_seq();
                    all.push((seq, true));
                    if let Some(out) = ring.keep(comment(seq, now_ms)) {
                        gone.insert(out.seq);
                    }
                }
            }
        }
        let cursor = if all.is_empty() { 0 } else { cursor_pick % (all.len() as u64 + 2) };
        let expected: Vec<u64> = all
            .iter()
            .filter(|(seq, kept)| *kept && *seq > cursor && !gone.contains(seq))
            .map(|(seq, _)| *seq)
            .collect();
        prop_assert_eq!(ring.after(cursor).map(|a| a.seq).collect::<Vec<_>>(), expected.clone());
        let first_kept = ring.iter().next().map(|a| a.seq);
        let missed = gone.iter().any(|seq| *seq > cursor);
        let undelivered = all.iter().any(|(seq, _)| *seq > cursor && !expected.contains(seq));
        match ring.gap_after(cursor) {
            Some(Event::Gap { missed_after, resumed_from }) => {
                // Never spurious: something numbered after the cursor does not come.
                prop_assert!(undelivered);
                prop_assert_eq!(missed_after, cursor.min(ring.last_seq()));
                prop_assert_eq!(resumed_from, first_kept.unwrap_or(ring.last_seq() + 1));
            }
            Some(other) => prop_assert!(false, "{other:?}"),
            // Nothing lost silently: an evicted action after the cursor is a gap.
            None => prop_assert!(!missed),
        }
    }
}

/// The ring knows the client id of each action it keeps, and only of those: one pushed
/// out by the count bound, aged out or removed by a moderator is forgotten (its retry is
/// then a new action), and another user's action under the same id is not theirs.
#[test]
fn the_ring_knows_the_client_ids_of_the_actions_it_keeps_and_no_others() {
    let mut ring = ActionRing::default();
    for client_id in 1..=RING_EVENTS_MAX as u64 + 2 {
        let seq = ring.take_seq();
        ring.keep(comment(seq, client_id));
        ring.remember_client_id(seq, 1_000 + client_id);
    }
    assert_eq!(ring.seq_of("u", 1_001), None, "pushed out by the count");
    assert_eq!(ring.seq_of("u", 1_002), None);
    assert_eq!(ring.seq_of("u", 1_003), Some(3));
    assert_eq!(ring.seq_of("other", 1_003), None, "not the other user's");
    ring.remove_comment(3).unwrap();
    assert_eq!(ring.seq_of("u", 1_003), None, "removed");
    let last = RING_EVENTS_MAX as u64 + 2;
    assert_eq!(ring.seq_of("u", 1_000 + last), Some(last));
    ring.evict_old(last + RING_AGE_MS_MAX, |_| {});
    assert_eq!(ring.seq_of("u", 1_000 + last - 1), None, "aged out");
    assert_eq!(
        ring.seq_of("u", 1_000 + last),
        Some(last),
        "the newest stays"
    );
}
