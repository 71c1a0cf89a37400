//! Quizzes (`quiz.rs`): scoring by correctness and speed, ranking, surviving a restart,
//! spec checks, and the leaderboard's entry limit.

use super::*;

#[test]
fn a_quiz_scores_by_correctness_and_speed_ranks_everyone_and_survives_a_restart() {
    let mut now = 0;
    let mut store = BTreeMap::new();
    let mut room = Room::create(info(), 3, now);
    join(&mut room, 1, "host", Role::Host, now);
    for (id, user) in [(2, "ana"), (3, "bob"), (4, "cy")] {
        join(&mut room, id, user, Role::Viewer, now);
    }
    // The host runs the quiz over its socket; a viewer cannot.
    let create = serde_json::json!({"command": "create_quiz",
        "spec": {"title": "Trivia", "questions": [
            {"question": "2+2?", "options": ["3", "4"], "correct": 1, "window_ms": 10_000},
            {"question": "Capital of France?", "options": ["Paris", "Rome", "Oslo"],
             "correct": 0, "window_ms": 10_000}]}});
    send_command(&mut room, 2, create.clone(), 1, now);
    send_command(&mut room, 1, create, 1, now);
    let out = tick_into(&mut room, &mut now, &mut store);
    assert_eq!(error_codes(&out.events[&2]), [ErrorCode::Forbidden]);
    let reply = notices(&out.events[&1], "command_reply");
    assert_eq!(reply[0]["reply"]["id"], "z1");
    assert_eq!(part_value(&out.events[&3], "quiz").unwrap()["phase"], "new");

    let next = serde_json::json!({"command": "next_question", "id": "z1"});
    send_command(&mut room, 1, next.clone(), 2, now);
    let opened = now;
    let out = tick_into(&mut room, &mut now, &mut store);
    let part = part_value(&out.events[&2], "quiz").unwrap();
    assert_eq!(part["phase"], "open");
    assert_eq!(part["question"]["text"], "2+2?");
    assert!(
        part["question"].get("correct").is_none(),
        "the answer is secret while open"
    );
    // ana answers right at once, bob right after 5 s, cy wrong; repeats do not count.
    room.handle_frame(2, &answer("z1", 0, 1, 1), opened);
    room.handle_frame(2, &answer("z1", 0, 0, 2), opened); // a repeat: acknowledged
    room.handle_frame(4, &answer("z1", 0, 0, 1), opened + 1_000);
    room.handle_frame(3, &answer("z1", 1, 0, 9), opened + 1_000); // not the open question
    room.handle_frame(3, &answer("z1", 0, 1, 1), opened + 5_000);
    now = opened + 5_000;
    let out = tick_into(&mut room, &mut now, &mut store);
    assert_eq!(error_codes(&out.events[&3]), [ErrorCode::PollClosed]);
    assert!(error_codes(&out.events[&2]).is_empty());
    assert_eq!(
        notices(&out.events[&1], "quiz_answers").last().unwrap()["answers"],
        3
    );
    // The window closes on the room's timer; everyone learns points, score and rank.
    now = opened + 10_000;
    room.handle_timeout(now);
    let out = tick_into(&mut room, &mut now, &mut store);
    let result = part_value(&out.events[&4], "quiz").unwrap();
    assert_eq!(result["phase"], "result");
    assert_eq!(result["question"]["correct"], 1);
    assert_eq!(result["question"]["tallies"], serde_json::json!([1, 2]));
    let board: Vec<&str> = result["leaderboard"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["user"].as_str().unwrap())
        .collect();
    assert_eq!(board, ["ana", "bob", "cy"]);
    let ana = &notices(&out.events[&2], "quiz_score")[0];
    assert_eq!(
        (ana["points"].as_u64(), ana["rank"].as_u64()),
        (Some(1_000), Some(1))
    );
    let bob = &notices(&out.events[&3], "quiz_score")[0];
    assert_eq!(
        (bob["points"].as_u64(), bob["rank"].as_u64()),
        (Some(750), Some(2))
    );
    let cy = &notices(&out.events[&4], "quiz_score")[0];
    assert_eq!(
        (cy["correct"].as_bool(), cy["rank"].as_u64()),
        (Some(false), Some(3))
    );
    assert_eq!(cy["participants"], 3);
    // After the close, cy's answer again (another option): a repeat, acknowledged and
    // not counted, as while open; someone who never answered is refused.
    room.handle_frame(4, &answer("z1", 0, 1, 2), now);
    join(&mut room, 5, "dee", Role::Viewer, now);
    room.handle_frame(5, &answer("z1", 0, 1, 1), now);
    let out = tick_into(&mut room, &mut now, &mut store);
    assert!(error_codes(&out.events[&4]).is_empty());
    assert_eq!(error_codes(&out.events[&5]), [ErrorCode::PollClosed]);
    assert_eq!(room.quiz_score("cy"), Some(0));

    // Question 2 opens; only cy answers (right). Then the room restarts mid-question.
    send_command(&mut room, 1, next, 3, now);
    let second = now;
    tick_into(&mut room, &mut now, &mut store);
    room.handle_frame(4, &answer("z1", 1, 0, 3), second);
    tick_into(&mut room, &mut now, &mut store);
    let mut room = Room::restore(store.clone(), now).unwrap().unwrap();
    assert_eq!(room.quiz_score("ana"), Some(1_000), "scores are rebuilt");
    assert_eq!(room.quiz_score("bob"), Some(750));
    room.reattach(1, identity("host", Role::Host), LIFETIME_MS, true, now);
    room.reattach(4, identity("cy", Role::Viewer), LIFETIME_MS, true, now);
    let end = serde_json::json!({"command": "end_quiz", "id": "z1"});
    send_command(&mut room, 1, end, 4, now);
    let out = tick_into(&mut room, &mut now, &mut store);
    let cy = &notices(&out.events[&4], "quiz_score")[0];
    assert_eq!(cy["correct"], true, "the answer before the restart counted");
    assert!(room.quiz_score("cy").unwrap() > 500);
    assert_eq!(
        part_value(&out.events[&4], "quiz").unwrap()["phase"],
        "ended"
    );
    let audit: Vec<&str> = room.audit_trail().map(|e| e.command.as_str()).collect();
    assert_eq!(
        audit,
        ["create_quiz", "next_question", "next_question", "end_quiz"]
    );
}

#[test]
fn quiz_specs_are_checked() {
    let mut room = Room::create(info(), 3, 0);
    let mut bad = quiz_spec(&[(2, 2)], 5_000);
    let refused = room.admin(as_host(StaffCommand::CreateQuiz { spec: bad.clone() }), 0);
    assert!(matches!(refused, Err(AdminError::Invalid(m)) if m.contains("correct")));
    bad = quiz_spec(&[(7, 0)], 5_000);
    assert!(room
        .admin(as_host(StaffCommand::CreateQuiz { spec: bad }), 0)
        .is_err());
    bad = quiz_spec(&[(2, 0); QUIZ_QUESTIONS_MAX + 1], 5_000);
    assert!(room
        .admin(as_host(StaffCommand::CreateQuiz { spec: bad }), 0)
        .is_err());
    let ok = quiz_spec(&[(2, 0)], 5_000);
    room.admin(as_host(StaffCommand::CreateQuiz { spec: ok.clone() }), 0)
        .unwrap();
    assert!(
        matches!(
            room.admin(as_host(StaffCommand::CreateQuiz { spec: ok }), 0),
            Err(AdminError::Refused(_))
        ),
        "one quiz at a time"
    );
    let close = StaffCommand::CloseQuestion { id: "z1".into() };
    assert!(matches!(
        room.admin(as_host(close), 0),
        Err(AdminError::Refused(_))
    ));
    let missing = StaffCommand::NextQuestion { id: "z7".into() };
    assert!(matches!(
        room.admin(as_host(missing), 0),
        Err(AdminError::NotFound(_))
    ));
}

/// The quiz part's leaderboard lists `QUIZ_LEADERBOARD_ENTRIES_MAX` players; one more
/// player who scored is not listed.
#[test]
fn the_quiz_leaderboard_lists_quiz_leaderboard_entries_max_and_not_one_more() {
    let mut now = 0;
    let mut room = Room::create(info(), 1, now);
    let quiz = StaffCommand::CreateQuiz {
        spec: quiz_spec(&[(2, 1)], 10_000),
    };
    room.admin(as_host(quiz), now).unwrap();
    room.admin(as_host(StaffCommand::NextQuestion { id: "z1".into() }), now)
        .unwrap();
    let players = QUIZ_LEADERBOARD_ENTRIES_MAX as u64 + 1;
    for p in 0..players {
        join(&mut room, 100 + p, &format!("p{p}"), Role::Viewer, now);
        room.handle_frame(100 + p, &answer("z1", 0, 1, 1), now);
    }
    tick(&mut room, &mut now);
    room.admin(
        as_host(StaffCommand::CloseQuestion { id: "z1".into() }),
        now,
    )
    .unwrap();
    let out = tick(&mut room, &mut now);
    let quiz = part_value(&out.events[&100], "quiz").expect("the quiz part after the close");
    let leaderboard = quiz["leaderboard"].as_array().unwrap();
    assert_eq!(leaderboard.len(), QUIZ_LEADERBOARD_ENTRIES_MAX, "{quiz}");
}

/// A moderator alternating `next_question` and `close_question` as fast as its frames
/// go scored a question per pair, each scoring a notice to every participant: a burst
/// of 38 commands was 19 scorings in one tick. A command closes a question only
/// `QUIZ_WINDOW_MS_MIN` after the previous one closed, refused `conflict` before with
/// the wait, so the scorings are at most one a second.
#[test]
fn a_burst_of_next_and_close_scores_at_most_one_question_a_second() {
    let mut now = 0;
    let mut room = Room::create(info(), 1, now);
    join(&mut room, 1, "host", Role::Host, now);
    let questions: Vec<(usize, u8)> = vec![(2, 1); QUIZ_QUESTIONS_MAX];
    room.admin(
        as_host(StaffCommand::CreateQuiz {
            spec: quiz_spec(&questions, 60_000),
        }),
        now,
    )
    .unwrap();
    for p in 0..50u64 {
        join(&mut room, 100 + p, &format!("p{p}"), Role::Viewer, now);
    }
    room.admin(as_host(StaffCommand::NextQuestion { id: "z1".into() }), now)
        .unwrap();
    for p in 0..50u64 {
        room.handle_frame(100 + p, &answer("z1", 0, 1, 1), now);
    }
    tick(&mut room, &mut now);
    let scorings_told = |out: &Drained| {
        out.events
            .get(&100)
            .map_or(0, |events| notices(events, "quiz_score").len())
    };
    // The host's socket sends its whole frame burst at once.
    let burst = |room: &mut Room, first_client_id: u64, now: u64| {
        for n in 0..u64::from(FRAMES_BURST) {
            let command = if n % 2 == 0 {
                "close_question"
            } else {
                "next_question"
            };
            let frame = command_frame(
                serde_json::json!({"command": command, "id": "z1"}),
                first_client_id + n,
            );
            room.handle_frame(1, &frame, now);
        }
    };
    burst(&mut room, 1_000, now);
    let out = tick(&mut room, &mut now);
    assert_eq!(
        scorings_told(&out),
        1,
        "the first close scores; the next ones wait"
    );
    assert!(
        error_codes(&out.events[&1]).len() >= FRAMES_BURST as usize - 2,
        "every refused command told why: {:?}",
        error_codes(&out.events[&1])
    );
    // A second on, the burst again (what the frame rate refilled of it): one scoring.
    now += QUIZ_WINDOW_MS_MIN;
    burst(&mut room, 2_000, now);
    let out = tick(&mut room, &mut now);
    assert_eq!(scorings_told(&out), 1, "one scoring a second");
}

/// A new quiz deletes the stored answers of the one before, as a new poll deletes the
/// votes of its previous one: they were left for good (read back, every one, by each
/// restore, which only then deleted them), one record per answer of every quiz.
#[test]
fn a_new_quiz_deletes_the_previous_quizs_answers() {
    let mut now = 0;
    let mut store = BTreeMap::new();
    let mut room = Room::create(info(), 3, now);
    join(&mut room, 2, "ana", Role::Viewer, now);
    join(&mut room, 3, "bob", Role::Viewer, now);
    let staff = |room: &mut Room, command: StaffCommand, now: u64| {
        room.admin(as_host(command), now)
            .expect("the host runs the quiz");
    };
    let spec = quiz_spec(&[(2, 0), (2, 1), (2, 0)], 10_000);
    staff(
        &mut room,
        StaffCommand::CreateQuiz { spec: spec.clone() },
        now,
    );
    let id = || "z1".to_owned();
    // ana answers the first two questions, bob only the second; the third is open when
    // the quiz ends, with ana's answer.
    for (question, users) in [(0, vec![2]), (1, vec![2, 3]), (2, vec![2])] {
        staff(&mut room, StaffCommand::NextQuestion { id: id() }, now);
        for connection in users {
            room.handle_frame(
                connection,
                &answer("z1", question, 0, 10 + u64::from(question)),
                now,
            );
        }
        tick_into(&mut room, &mut now, &mut store);
        now += 1_000; // questions close at most one a second
        if question < 2 {
            staff(&mut room, StaffCommand::CloseQuestion { id: id() }, now);
        }
    }
    staff(&mut room, StaffCommand::EndQuiz { id: id() }, now);
    tick_into(&mut room, &mut now, &mut store);
    let answers_stored = |store: &BTreeMap<String, Vec<u8>>| {
        store
            .keys()
            .filter(|k| k.starts_with("answer/"))
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(
        answers_stored(&store).len(),
        4,
        "{:?}",
        answers_stored(&store)
    );

    staff(&mut room, StaffCommand::CreateQuiz { spec }, now);
    tick_into(&mut room, &mut now, &mut store);
    assert_eq!(answers_stored(&store), Vec::<String>::new());
    assert!(Room::restore(store.clone(), now).unwrap().is_some());
}

/// A big quiz's answers go a bounded number a tick (`STORAGE_DELETES_PER_TICK_MAX`), not
/// in one write: 20 questions × 200,000 answers were queued in one output pump. A
/// restart midway leaves the rest to the restored room, which deletes them the same way.
#[test]
fn a_big_quizs_answers_are_deleted_a_bounded_number_a_tick_across_a_restart() {
    const VIEWERS: u64 = 400;
    const QUESTIONS: u16 = 4;
    let mut now = 0;
    let mut store = BTreeMap::new();
    let mut room = Room::create(info(), 3, now);
    for id in 1..=VIEWERS {
        join(&mut room, id, &format!("v{id}"), Role::Viewer, now);
    }
    tick_into(&mut room, &mut now, &mut store);
    let staff = |room: &mut Room, command: StaffCommand, now: u64| {
        room.admin(as_host(command), now)
            .expect("the host runs the quiz");
    };
    let spec = quiz_spec(&[(2, 0); QUESTIONS as usize], 10_000);
    staff(
        &mut room,
        StaffCommand::CreateQuiz { spec: spec.clone() },
        now,
    );
    for question in 0..QUESTIONS {
        staff(
            &mut room,
            StaffCommand::NextQuestion { id: "z1".into() },
            now,
        );
        for id in 1..=VIEWERS {
            let client_id = 100 + u64::from(question);
            room.handle_frame(id, &answer("z1", question, 0, client_id), now);
        }
        tick_into(&mut room, &mut now, &mut store);
        now += 1_000;
        staff(
            &mut room,
            StaffCommand::CloseQuestion { id: "z1".into() },
            now,
        );
        tick_into(&mut room, &mut now, &mut store);
    }
    staff(&mut room, StaffCommand::EndQuiz { id: "z1".into() }, now);
    tick_into(&mut room, &mut now, &mut store);
    let answers_left = |store: &BTreeMap<String, Vec<u8>>| {
        store.keys().filter(|k| k.starts_with("answer/z1/")).count()
    };
    let total = usize::try_from(VIEWERS).unwrap() * usize::from(QUESTIONS);
    assert_eq!(answers_left(&store), total);

    staff(&mut room, StaffCommand::CreateQuiz { spec }, now);
    let deletes = |out: &Drained| {
        out.stores
            .iter()
            .filter(|op| matches!(op, StorageOp::Delete { key } if key.starts_with("answer/")))
            .count()
    };
    let mut ticks = 0;
    let mut restarted = false;
    while answers_left(&store) > 0 {
        ticks += 1;
        assert!(
            ticks < 100,
            "{} answers never deleted",
            answers_left(&store)
        );
        let at = room.poll_timeout().expect("a purge tick is due");
        now = now.max(at);
        room.handle_timeout(now);
        let out = drain(&mut room);
        assert!(
            deletes(&out) <= STORAGE_DELETES_PER_TICK_MAX,
            "{} deletes in one tick",
            deletes(&out)
        );
        apply(&out.stores, &mut store);
        if ticks == 2 && !restarted {
            restarted = true;
            assert!(answers_left(&store) > 0, "the purge was still going");
            room = Room::restore(store.clone(), now).unwrap().unwrap();
        }
    }
    assert!(restarted);
    assert!(ticks >= total.div_ceil(STORAGE_DELETES_PER_TICK_MAX));
}

#[test]
fn a_purge_deletes_each_record_once_oldest_queued_first_a_bounded_number_at_a_time() {
    let mut purge = crate::purge::Purge::default();
    let votes: Vec<StorageOp> = (0..700)
        .map(|i| StorageOp::Delete {
            key: format!("vote/p1/u{i}"),
        })
        .collect();
    purge.ops(votes.clone());
    purge.answers("z1".into(), vec![("ana".into(), 0b101), ("bob".into(), 0)]);
    let mut deleted: Vec<String> = Vec::new();
    loop {
        let batch = purge.next_deletes();
        if batch.is_empty() {
            break;
        }
        assert!(batch.len() <= STORAGE_DELETES_PER_TICK_MAX);
        deleted.extend(batch.into_iter().map(|op| match op {
            StorageOp::Delete { key } => key,
            StorageOp::Put { key, .. } => panic!("a put: {key}"),
        }));
    }
    assert!(purge.is_empty());
    let (deleted_votes, deleted_answers) = deleted.split_at(votes.len());
    let mut deleted_votes = deleted_votes.to_vec();
    deleted_votes.sort();
    let mut expected: Vec<String> = votes
        .into_iter()
        .map(|op| match op {
            StorageOp::Delete { key } => key,
            StorageOp::Put { .. } => unreachable!(),
        })
        .collect();
    expected.sort();
    assert_eq!(deleted_votes, expected, "the votes first, each once");
    assert_eq!(
        deleted_answers,
        ["answer/z1/00000/ana", "answer/z1/00002/ana"]
    );
}

/// An answer to a question scored already, retried after the room forgot its client id
/// (a restart) while a later question is open, is acknowledged as the repeat it is and
/// not counted again; one from a user who never answered it is refused `poll_closed`, and
/// so is a question the quiz never asked. Before, the retry was refused `poll_closed`,
/// which told the client its scored answer was not taken.
#[test]
fn an_answer_retried_after_its_question_was_scored_and_a_restart_is_acknowledged() {
    let mut now = 0;
    let mut store = BTreeMap::new();
    let mut room = Room::create(info(), 3, now);
    join(&mut room, 1, "host", Role::Host, now);
    join(&mut room, 2, "ana", Role::Viewer, now);
    join(&mut room, 3, "dee", Role::Viewer, now);
    let create = serde_json::json!({"command": "create_quiz",
        "spec": {"title": "Trivia", "questions": [
            {"question": "2+2?", "options": ["3", "4"], "correct": 1, "window_ms": 10_000},
            {"question": "3+3?", "options": ["6", "7"], "correct": 0, "window_ms": 10_000}]}});
    send_command(&mut room, 1, create, 1, now);
    let next = serde_json::json!({"command": "next_question", "id": "z1"});
    send_command(&mut room, 1, next.clone(), 2, now);
    tick_into(&mut room, &mut now, &mut store);
    room.handle_frame(2, &answer("z1", 0, 1, 7), now);
    tick_into(&mut room, &mut now, &mut store);
    now += 10_000;
    room.handle_timeout(now);
    tick_into(&mut room, &mut now, &mut store);
    send_command(&mut room, 1, next, 3, now);
    tick_into(&mut room, &mut now, &mut store);
    let score = room.quiz_score("ana");
    assert!(
        score.is_some_and(|points| points > 500),
        "scored right: {score:?}"
    );

    let mut room = Room::restore(store.clone(), now).unwrap().unwrap();
    room.reattach(2, identity("ana", Role::Viewer), LIFETIME_MS, true, now);
    room.reattach(3, identity("dee", Role::Viewer), LIFETIME_MS, true, now);
    room.handle_frame(2, &answer("z1", 0, 0, 7), now);
    room.handle_frame(3, &answer("z1", 0, 1, 1), now);
    room.handle_frame(3, &answer("z1", u16::MAX, 0, 2), now);
    let out = tick_into(&mut room, &mut now, &mut store);
    assert!(
        out.events[&2].contains(&Event::Ack {
            client_id: 7,
            seq: None
        }),
        "{:?}",
        out.events[&2]
    );
    assert!(error_codes(&out.events[&2]).is_empty());
    assert_eq!(
        error_codes(&out.events[&3]),
        [ErrorCode::PollClosed, ErrorCode::PollClosed]
    );
    assert_eq!(room.quiz_score("ana"), score, "not counted again");
}

/// A quiz restored from its records in the room object's order (the `quiz` record, then
/// the answers, which `RoomLoader` scores as they come), in storage's key order (the
/// answers first, held until the record), or in any other, is the live quiz: the same
/// scores, ranks, last points and tallies, and the open question's answers held.
#[test]
fn a_quiz_restored_from_its_records_in_any_order_is_the_live_one() {
    let mut now = 0;
    let mut store = BTreeMap::new();
    let mut room = Room::create(info(), 3, now);
    join(&mut room, 1, "host", Role::Host, now);
    let viewers = ["ana", "bob", "cy", "dee", "eve"];
    for (i, user) in viewers.iter().enumerate() {
        join(&mut room, 2 + i as u64, user, Role::Viewer, now);
    }
    // Bob again, under another display name: the leaderboard shows the name of the
    // latest question he answered, whatever order the answers are restored in.
    let renamed = Identity {
        user: "bob".into(),
        name: "Bobby".into(),
        role: Role::Viewer,
    };
    room.connect(20, renamed, LIFETIME_MS, now).unwrap();
    room.handle_frame(20, &hello(None), now);
    let create = serde_json::json!({"command": "create_quiz",
        "spec": {"title": "Trivia", "questions": [
            {"question": "a?", "options": ["1", "2"], "correct": 1, "window_ms": 10_000},
            {"question": "b?", "options": ["1", "2", "3"], "correct": 0, "window_ms": 10_000},
            {"question": "c?", "options": ["1", "2"], "correct": 0, "window_ms": 10_000}]}});
    send_command(&mut room, 1, create, 1, now);
    let next = serde_json::json!({"command": "next_question", "id": "z1"});
    // Question 0: ana right at once, bob right later, cy wrong. Question 1: ana wrong,
    // bob and dee right. Question 2 stays open: eve (new) and ana answer.
    let rounds: [&[(u64, u8, u64)]; 3] = [
        &[(2, 1, 0), (3, 1, 4_000), (4, 0, 1_000)],
        &[(2, 1, 500), (20, 0, 2_000), (5, 0, 9_000)],
        &[(6, 0, 100), (2, 1, 200)],
    ];
    // What the live quiz was at each point a room may stop: question 1's result shown (its
    // tallies and last points), and question 2 open.
    let mut stopped = Vec::new();
    for (question, answers) in rounds.iter().enumerate() {
        send_command(&mut room, 1, next.clone(), 2 + question as u64, now);
        tick_into(&mut room, &mut now, &mut store);
        let opened = now;
        for &(connection, option, after_ms) in answers.iter() {
            let frame = answer("z1", question as u16, option, 10 + question as u64);
            room.handle_frame(connection, &frame, opened + after_ms);
        }
        now = opened + 9_500;
        tick_into(&mut room, &mut now, &mut store);
        if question < 2 {
            now = opened + 10_000;
            room.handle_timeout(now);
            tick_into(&mut room, &mut now, &mut store);
            now += 1_000;
        }
        if question >= 1 {
            let live = room.quiz.as_ref().unwrap();
            let scores: Vec<Option<u64>> = viewers.iter().map(|u| room.quiz_score(u)).collect();
            let seen = (
                live.score_notices(),
                live.answers(),
                live.part_json(),
                scores,
            );
            stopped.push((store.clone(), seen));
        }
    }
    assert_eq!(stopped[1].1 .0.len(), 4, "ana, bob, cy, dee scored");
    for (store, live) in stopped {
        restored_in_any_order_is(store, &live, &viewers, now);
    }
}

type Records = Vec<(String, Vec<u8>)>;

type QuizSeen = (
    Vec<crate::quiz::ScoreNotice>,
    usize,
    String,
    Vec<Option<u64>>,
);

fn restored_in_any_order_is(
    store: BTreeMap<String, Vec<u8>>,
    live: &QuizSeen,
    viewers: &[&str],
    now: u64,
) {
    let is_answer = |key: &str| (ANSWER_KEYS_START..ANSWER_KEYS_END).contains(&key);
    let (answers, others): (Vec<_>, Vec<_>) = store
        .clone()
        .into_iter()
        .partition(|(key, _)| is_answer(key));
    let mut reversed = answers.clone();
    reversed.reverse();
    let orders: [(&str, Records); 3] = [
        ("the key order", store.clone().into_iter().collect()),
        (
            "the room object's",
            others.iter().cloned().chain(answers).collect(),
        ),
        (
            "answers reversed",
            others.into_iter().chain(reversed).collect(),
        ),
    ];
    for (order, records) in orders {
        let mut loader = RoomLoader::new();
        for (key, value) in records {
            loader.feed(key, value).unwrap();
        }
        let restored = loader.finish(now).unwrap().unwrap();
        let quiz = restored.quiz.as_ref().unwrap();
        let scores: Vec<Option<u64>> = viewers.iter().map(|u| restored.quiz_score(u)).collect();
        let seen = (
            quiz.score_notices(),
            quiz.answers(),
            quiz.part_json(),
            scores,
        );
        assert_eq!(&seen, live, "restored in {order}");
    }
}

/// The `quiz_score` notices among a drain's events, as (connection, question).
fn score_notices_sent(out: &Drained) -> Vec<(ConnectionId, u64)> {
    out.events
        .iter()
        .flat_map(|(&connection, events)| {
            notices(events, "quiz_score")
                .into_iter()
                .map(move |notice| (connection, notice["question"].as_u64().unwrap()))
        })
        .collect()
}

/// A room (its host on connection 1) whose quiz `z1` of `questions` questions (a
/// minute each) has its first question open, answered right by `participants` viewers
/// (connections from 100, returned).
fn a_quiz_answered_by(
    participants: usize,
    questions: usize,
    now: &mut u64,
) -> (Room, Vec<ConnectionId>) {
    let mut room = Room::create(info(), 3, *now);
    join(&mut room, 1, "host", Role::Host, *now);
    let viewers: Vec<ConnectionId> = (100..100 + participants as u64).collect();
    for &viewer in &viewers {
        join(&mut room, viewer, &format!("v{viewer}"), Role::Viewer, *now);
    }
    let spec: Vec<serde_json::Value> = (0..questions)
        .map(|q| {
            serde_json::json!({"question": format!("q{q}?"), "options": ["1", "2"],
                "correct": 0, "window_ms": 60_000})
        })
        .collect();
    let create = serde_json::json!({"command": "create_quiz",
        "spec": {"title": "Trivia", "questions": spec}});
    send_command(&mut room, 1, create, 1, *now);
    let next = serde_json::json!({"command": "next_question", "id": "z1"});
    send_command(&mut room, 1, next, 2, *now);
    tick(&mut room, now);
    for &viewer in &viewers {
        room.handle_frame(viewer, &answer("z1", 0, 0, 1), *now);
    }
    tick(&mut room, now);
    (room, viewers)
}

/// A question scored for more participants than `QUIZ_SCORE_NOTICES_PER_TICK_MAX` sends
/// at most that many notices a tick, each participant's once; and a question scored
/// while some of the last one's are still due replaces them with its own. Before, all of
/// them were built in one flush: for a big room's 200,000 participants, 50 MB of
/// messages and a copy for each shard a user may be on.
#[test]
fn score_notices_go_out_a_bounded_number_a_tick_each_participants_once() {
    let participants = 2 * QUIZ_SCORE_NOTICES_PER_TICK_MAX + 7;
    let mut now = 0;
    let (mut room, viewers) = a_quiz_answered_by(participants, 3, &mut now);
    let next = serde_json::json!({"command": "next_question", "id": "z1"});
    let close = serde_json::json!({"command": "close_question", "id": "z1"});
    send_command(&mut room, 1, close, 3, now);

    let mut told: BTreeMap<ConnectionId, Vec<u64>> = BTreeMap::new();
    let mut ticks = 0;
    let until = now + 10_000;
    while let Some(at) = room.poll_timeout().filter(|&at| at <= until) {
        now = at.max(now);
        room.handle_timeout(now);
        let sent = score_notices_sent(&drain(&mut room));
        assert!(
            sent.len() <= QUIZ_SCORE_NOTICES_PER_TICK_MAX,
            "{} in a tick",
            sent.len()
        );
        for (connection, question) in sent {
            told.entry(connection).or_default().push(question);
        }
        ticks += 1;
        if told.len() == participants {
            break;
        }
        assert!(ticks < 1_000, "the notices do not advance");
    }
    assert_eq!(told.len(), participants);
    assert!(
        told.values().all(|questions| questions == &[0]),
        "each once"
    );

    // Question 1 scored, and its first notices sent; question 2 asked, answered and
    // scored (the quiz ends at once) while the rest of question 1's are due: each
    // participant is then told question 2's, once, and no more of question 1's.
    now += 1_000;
    send_command(&mut room, 1, next.clone(), 4, now);
    tick(&mut room, &mut now);
    for &viewer in &viewers {
        room.handle_frame(viewer, &answer("z1", 1, 0, 2), now);
    }
    now += 1_000;
    let close = serde_json::json!({"command": "close_question", "id": "z1"});
    send_command(&mut room, 1, close, 5, now);
    let first = score_notices_sent(&tick(&mut room, &mut now));
    assert_eq!(first.len(), QUIZ_SCORE_NOTICES_PER_TICK_MAX);
    assert!(first.iter().all(|&(_, question)| question == 1));
    let told_1: BTreeSet<ConnectionId> = first.iter().map(|&(connection, _)| connection).collect();
    send_command(&mut room, 1, next, 6, now);
    for &viewer in &viewers {
        room.handle_frame(viewer, &answer("z1", 2, 0, 3), now);
    }
    let end = serde_json::json!({"command": "end_quiz", "id": "z1"});
    send_command(&mut room, 1, end, 7, now);
    let mut told: BTreeMap<ConnectionId, Vec<u64>> = BTreeMap::new();
    let mut first_told_2 = None;
    let until = now + 10_000;
    for flushes in 0.. {
        assert!(flushes < 1_000, "the notices do not advance");
        let sent = score_notices_sent(&drain(&mut room));
        if first_told_2.is_none() && !sent.is_empty() {
            first_told_2 = Some(sent.iter().map(|&(connection, _)| connection).collect());
        }
        for (connection, question) in sent {
            told.entry(connection).or_default().push(question);
        }
        let Some(at) = room.poll_timeout().filter(|&at| at <= until) else {
            break;
        };
        now = at.max(now);
        room.handle_timeout(now);
    }
    assert_eq!(told.len(), participants);
    assert!(
        told.values().all(|questions| questions == &[2]),
        "each once"
    );
    // Question 2's went first to those question 1's had not reached.
    let first_told_2: BTreeSet<ConnectionId> = first_told_2.unwrap();
    assert_eq!(first_told_2.len(), QUIZ_SCORE_NOTICES_PER_TICK_MAX);
    assert!(first_told_2.is_disjoint(&told_1));
    assert_eq!(room.tick_pending(), None, "no tick due once all are told");
}

/// A room that ends with score notices still due drops them: no one is left to tell, and
/// a big room would go on sending its shards batches of them.
#[test]
fn a_room_that_ends_drops_its_score_notices_due() {
    // More than the end's own flush would send.
    let participants = 2 * QUIZ_SCORE_NOTICES_PER_TICK_MAX + 5;
    let mut now = 0;
    let (mut room, _) = a_quiz_answered_by(participants, 1, &mut now);
    let close = serde_json::json!({"command": "close_question", "id": "z1"});
    send_command(&mut room, 1, close, 3, now);
    let first = score_notices_sent(&tick(&mut room, &mut now));
    assert_eq!(first.len(), QUIZ_SCORE_NOTICES_PER_TICK_MAX);
    assert!(!room.score_notices.is_empty(), "2,005 still due");
    room.admin(AdminCommand::End, now).unwrap();
    assert!(room.score_notices.is_empty());
}

/// A question still open when a big room ends, closed by the room's timer after the end,
/// sends its shards no score notices: no one is left to tell.
#[test]
fn a_question_closed_after_the_room_ended_tells_no_one() {
    let mut now = 0;
    let mut room = sharded_room(3, 2, now);
    join(&mut room, 1, "host", Role::Host, now);
    join(&mut room, 2, "ana", Role::Viewer, now);
    open_quiz(&mut room, 1, &quiz_spec(&[(2, 0)], 5_000), now);
    room.handle_frame(2, &answer("z1", 0, 0, 1), now);
    room.admin(AdminCommand::End, now).unwrap();
    let mut told = 0;
    let until = now + 10_000;
    while let Some(at) = room.poll_timeout().filter(|&at| at <= until) {
        now = at.max(now);
        room.handle_timeout(now);
        while let Some(output) = room.poll_output() {
            if let Output::ToShard { shard, frame } = output {
                room.shard_batch_done(shard, now);
                let down = ShardDown::decode(&frame).unwrap();
                told += down
                    .to_user
                    .iter()
                    .filter(|(_, event)| {
                        matches!(event, Event::Direct { payload, .. } if payload.contains("quiz_score"))
                    })
                    .count();
            }
        }
    }
    assert_eq!(room.quiz.as_ref().unwrap().record.phase, QuizPhase::Result);
    assert_eq!(told, 0, "score notices sent after the end");
}
