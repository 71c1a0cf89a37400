//! What waking a room costs when a big quiz was replaced and the room stopped before it
//! deleted the old quiz's answers (it deletes `STORAGE_DELETES_PER_TICK_MAX` a tick: 4
//! million take minutes): the restore keeps each participant with the questions they
//! answered, as the live room queues them, not a delete per answer, and the purge then
//! deletes every one of them.
//!
//! Its own test binary, so the process's peak resident memory (`VmHWM`, Linux) is this
//! test's alone.

use ovation_room::{Output, StorageOp, ANSWER_KEYS_START};

mod big_quiz;
mod resident;
use big_quiz::{answer_key, loader_fed_in_order, played_quiz, PlayedQuiz, PARTICIPANTS, QUESTIONS};
use resident::peak_resident_bytes;

/// What restoring the replaced quiz's answers may add to the process's peak: each
/// participant with a bit per question, 2.4 MB here; a delete held per answer (a
/// `StorageOp` of about 90 bytes with its key) would be about 45 MB.
const RESTORE_GROWTH_BYTES_MAX: u64 = 16 * 1024 * 1024;

#[test]
fn waking_with_half_a_million_answers_of_a_replaced_quiz_holds_a_participant_each() {
    let PlayedQuiz {
        store,
        answer_bytes,
        score,
        mut now_ms,
    } = played_quiz(true);
    assert!(score > 0, "z1 was played");
    let stored_answers = store
        .keys()
        .filter(|key| key.starts_with(ANSWER_KEYS_START))
        .count() as u64;
    let before = peak_resident_bytes();
    let loader = loader_fed_in_order(store, &answer_bytes, false);
    let mut restored = loader.finish(now_ms).unwrap().expect("a room");
    assert_eq!(restored.quiz_score("v0"), None, "z2 has no participant yet");
    let grown = peak_resident_bytes().saturating_sub(before);
    let stale = stored_answers + u64::from(QUESTIONS) * u64::from(PARTICIPANTS - 1);
    eprintln!("peak resident memory grew {grown} B restoring {stale} stale answers");
    assert!(
        grown < RESTORE_GROWTH_BYTES_MAX,
        "restoring grew the peak by {grown} B (at most {RESTORE_GROWTH_BYTES_MAX})"
    );
    // Every stale answer is deleted, once, over the next ticks.
    let mut deleted = std::collections::BTreeSet::new();
    for _ in 0..10_000 {
        now_ms += 50;
        restored.handle_timeout(now_ms);
        while let Some(output) = restored.poll_output() {
            if let Output::Store(StorageOp::Delete { key }) = output {
                if key.starts_with(ANSWER_KEYS_START) {
                    assert!(deleted.insert(key.clone()), "{key} deleted twice");
                }
            }
        }
        if deleted.len() as u64 == stale {
            break;
        }
    }
    assert_eq!(deleted.len() as u64, stale);
    assert!(deleted.contains(&answer_key(QUESTIONS - 1, PARTICIPANTS - 1)));
}
