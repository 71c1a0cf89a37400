//! A quiz of `QUESTIONS` questions played to its end by one viewer (`v0`), whose stored
//! answer stands for those of `PARTICIPANTS` participants in the memory tests: each its
//! own test binary, so the process's peak resident memory is that test's alone.

use ovation_proto::{ClientFrame, Hello, Role, PROTOCOL_VERSION};
use ovation_room::{
    AdminCommand, Identity, Output, QuizQuestionSpec, QuizSpec, Room, RoomInfo, RoomLoader,
    StaffCommand, StorageOp, ANSWER_KEYS_END, ANSWER_KEYS_START,
};
use std::collections::BTreeMap;

pub const QUESTIONS: u16 = 20;
pub const PARTICIPANTS: u32 = 25_000;
const LIFETIME_MS: u64 = 3_600_000;

pub struct PlayedQuiz {
    /// What the room stored.
    pub store: BTreeMap<String, Vec<u8>>,
    /// v0's stored answer to a question (right, at its opening).
    pub answer_bytes: Vec<u8>,
    /// v0's score.
    pub score: u64,
    pub now_ms: u64,
}

fn identity(user: &str, role: Role) -> Identity {
    Identity {
        user: user.into(),
        name: user.into(),
        role,
    }
}

fn staff(command: StaffCommand) -> AdminCommand {
    AdminCommand::Staff {
        by: identity("host", Role::Host),
        command,
    }
}

/// Applies the room's storage writes to `store`; its batches to shards are delivered at
/// once, as a host would report them.
fn store_outputs(room: &mut Room, store: &mut BTreeMap<String, Vec<u8>>) {
    while let Some(output) = room.poll_output() {
        match output {
            Output::Store(StorageOp::Put { key, value }) => {
                store.insert(key, value);
            }
            Output::Store(StorageOp::Delete { key }) => {
                store.remove(&key);
            }
            Output::ToShard { shard, .. } => room.shard_batch_done(shard, 0),
            _ => {}
        }
    }
}

fn quiz_spec(questions: u16) -> QuizSpec {
    QuizSpec {
        title: "Trivia".into(),
        questions: (0..questions)
            .map(|q| QuizQuestionSpec {
                question: format!("question {q}"),
                options: vec!["right".into(), "wrong".into()],
                correct: 0,
                window_ms: Some(1_000),
                cue: None,
            })
            .collect(),
    }
}

/// Quiz `z1` played to its end; with `then_another`, quiz `z2` created right after (the
/// room stopped before it deleted z1's answers).
pub fn played_quiz(then_another: bool) -> PlayedQuiz {
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
    let spec = quiz_spec(QUESTIONS);
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
    if then_another {
        now += 2_000;
        let end = StaffCommand::EndQuiz { id: "z1".into() };
        room.admin(staff(end), now).unwrap();
        let spec = quiz_spec(1);
        room.admin(staff(StaffCommand::CreateQuiz { spec }), now)
            .unwrap();
        store_outputs(&mut room, &mut store);
    }
    let answer_bytes = store[&format!("{ANSWER_KEYS_START}z1/00000/v0")].clone();
    PlayedQuiz {
        store,
        answer_bytes,
        score,
        now_ms: now,
    }
}

/// A loader fed `store` in the room object's order (every record but the answers, then
/// the answers), then the answers of participants 1 to `PARTICIPANTS` to every question
/// of quiz z1, each v0's under their name (made as they are fed, never held); with
/// `answers_first`, every answer before the other records instead (storage's key order,
/// which every restore used before the room object listed the answers last: they are
/// held until the quiz's record comes).
pub fn loader_fed_in_order(
    store: BTreeMap<String, Vec<u8>>,
    answer_bytes: &[u8],
    answers_first: bool,
) -> RoomLoader {
    let mut loader = RoomLoader::new();
    let (answers, others): (Vec<_>, Vec<_>) = store
        .into_iter()
        .partition(|(key, _)| (ANSWER_KEYS_START..ANSWER_KEYS_END).contains(&key.as_str()));
    let feed_answers = |loader: &mut RoomLoader, answers: Vec<(String, Vec<u8>)>| {
        for (key, value) in answers {
            loader.feed(key, value).unwrap();
        }
        for question in 0..QUESTIONS {
            for participant in 1..PARTICIPANTS {
                loader
                    .feed(answer_key(question, participant), answer_bytes.to_vec())
                    .unwrap();
            }
        }
    };
    let mut answers = Some(answers);
    if answers_first {
        feed_answers(&mut loader, answers.take().expect("not fed yet"));
    }
    for (key, value) in others {
        loader.feed(key, value).unwrap();
    }
    if let Some(answers) = answers {
        feed_answers(&mut loader, answers);
    }
    loader
}

/// The answer of participant `n` (v0's, under their name) to `question` of quiz z1.
pub fn answer_key(question: u16, participant: u32) -> String {
    format!("{ANSWER_KEYS_START}z1/{question:05}/v{participant}")
}
