//! What waking a room with a big quiz costs its object's memory: a quiz of 20 questions
//! answered by 25,000 viewers each leaves 500,000 stored answers (a big room's quiz may
//! leave `QUIZ_PARTICIPANTS_MAX` × `QUIZ_QUESTIONS_MAX`, 4 million). Every room object of
//! an isolate shares its 128 MB: restored from all its records at once, such a room could
//! not wake again after an eviction or a deploy, and all it had acknowledged was out of
//! reach. The room object feeds `RoomLoader` a page of records at a time, the `quiz`
//! record before the answers (`ANSWER_KEYS_START`..`ANSWER_KEYS_END` listed last); each
//! answer is scored as it comes, so what stays is a score per participant.
//!
//! Its own test binary, so the process's peak resident memory (`VmHWM`, Linux) is this
//! test's alone.

use ovation_proto::{ClientFrame, Hello, Role, PROTOCOL_VERSION};
use ovation_room::{
    AdminCommand, Identity, Output, QuizQuestionSpec, QuizSpec, Room, RoomInfo, RoomLoader,
    StaffCommand, StorageOp, ANSWER_KEYS_END, ANSWER_KEYS_START,
};
use std::collections::BTreeMap;

mod resident;
use resident::peak_resident_bytes;

const QUESTIONS: u16 = 20;
const PARTICIPANTS: u32 = 25_000;
/// What restoring the quiz's answers may add to the process's peak: a score per
/// participant and the current question's answers, a few MB. Held all at once the
/// answers took about 10 times this.
const RESTORE_GROWTH_BYTES_MAX: u64 = 32 * 1024 * 1024;
const LIFETIME_MS: u64 = 3_600_000;

fn identity(user: &str, role: Role) -> Identity {
    Identity {
        user: user.into(),
        name: user.into(),
        role,
    }
}

/// Applies the room's storage writes to `store`.
fn store_outputs(room: &mut Room, store: &mut BTreeMap<String, Vec<u8>>) {
    while let Some(output) = room.poll_output() {
        match output {
            Output::Store(StorageOp::Put { key, value }) => {
                store.insert(key, value);
            }
            Output::Store(StorageOp::Delete { key }) => {
                store.remove(&key);
            }
            _ => {}
        }
    }
}

#[test]
fn waking_a_room_with_half_a_million_quiz_answers_costs_a_score_per_participant() {
    let info = RoomInfo {
        room_id: "weur-quiz-memory".into(),
        host_user: "host".into(),
        title: "memory".into(),
        expected_audience: 50_000,
    };
    let mut now = 1_000;
    let mut store = BTreeMap::new();
    let mut room = Room::create(info, 1, now);
    let hello = ClientFrame::Hello(Hello {
        protocol_version: PROTOCOL_VERSION,
        resume: None,
    })
    .encode();
    room.connect(1, identity("v0", Role::Viewer), LIFETIME_MS, now)
        .unwrap();
    room.handle_frame(1, &hello, now);
    let staff = |command| AdminCommand::Staff {
        by: identity("host", Role::Host),
        command,
    };
    let spec = QuizSpec {
        title: "Trivia".into(),
        questions: (0..QUESTIONS)
            .map(|q| QuizQuestionSpec {
                question: format!("question {q}"),
                options: vec!["right".into(), "wrong".into()],
                correct: 0,
                window_ms: Some(1_000),
                cue: None,
            })
            .collect(),
    };
    room.admin(staff(StaffCommand::CreateQuiz { spec }), now)
        .unwrap();
    // v0 answers every question right at its opening; the room scores each at its close.
    for question in 0..QUESTIONS {
        now += 2_000;
        let next = StaffCommand::NextQuestion { id: "z1".into() };
        room.admin(staff(next), now).unwrap();
        let answer = ClientFrame::Answer {
            client_id: u64::from(question) + 1,
            quiz_id: "z1".into(),
            question,
            option: 0,
        };
        room.handle_frame(1, &answer.encode(), now);
        now += 1_000;
        room.handle_timeout(now);
        now += 100;
        room.handle_timeout(now);
        store_outputs(&mut room, &mut store);
    }
    let score = room.quiz_score("v0").expect("v0 scored");
    assert!(score > u64::from(QUESTIONS) * 500, "{score}");
    let answer_of = |question: u16| format!("{ANSWER_KEYS_START}z1/{question:05}/v0");
    let answer_bytes = store[&answer_of(0)].clone();

    // The room object's order: every record but the answers, then the answers, each of
    // the other participants' as v0's (made as they are fed, never held).
    let before = peak_resident_bytes();
    let mut loader = RoomLoader::new(now);
    let (answers, others): (Vec<_>, Vec<_>) = std::mem::take(&mut store)
        .into_iter()
        .partition(|(key, _)| (ANSWER_KEYS_START..ANSWER_KEYS_END).contains(&key.as_str()));
    for (key, value) in others.into_iter().chain(answers) {
        loader.feed(key, value).unwrap();
    }
    for question in 0..QUESTIONS {
        for participant in 1..PARTICIPANTS {
            let key = format!("{ANSWER_KEYS_START}z1/{question:05}/v{participant}");
            loader.feed(key, answer_bytes.clone()).unwrap();
        }
    }
    let restored = loader.finish().unwrap().expect("a room");
    let grown = peak_resident_bytes().saturating_sub(before);
    eprintln!(
        "peak resident memory grew {grown} B restoring {} answers",
        u64::from(QUESTIONS) * u64::from(PARTICIPANTS)
    );
    assert_eq!(restored.quiz_score("v0"), Some(score), "scored as before");
    assert_eq!(
        restored.quiz_score(&format!("v{}", PARTICIPANTS - 1)),
        Some(score),
        "every participant scored as the answers say"
    );
    assert!(
        grown < RESTORE_GROWTH_BYTES_MAX,
        "restoring grew the peak by {grown} B (at most {RESTORE_GROWTH_BYTES_MAX})"
    );
}
