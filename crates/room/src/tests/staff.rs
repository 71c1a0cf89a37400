//! Staff commands' input limits (`staff.rs`): every staff input at its limit and one past
//! it, and the interaction counts bounded. Each staff feature's own tests are in
//! `quizzes.rs`, `questions.rs`, `products.rs` and `moderation.rs`.

use super::*;

#[test]
fn every_staff_input_limit_takes_the_limit_and_refuses_one_past_it() {
    let poll = |f: &dyn Fn(&mut PollSpec)| {
        let mut spec = poll_spec(2, 5_000);
        f(&mut spec);
        on_fresh_room(StaffCommand::CreatePoll { spec })
    };
    let quiz = |f: &dyn Fn(&mut QuizSpec)| {
        let mut spec = quiz_spec(&[(2, 0)], 5_000);
        f(&mut spec);
        on_fresh_room(StaffCommand::CreateQuiz { spec })
    };
    let pin = |f: &dyn Fn(&mut ProductCard)| {
        let mut product = product("p1");
        f(&mut product);
        on_fresh_room(StaffCommand::PinProduct { product })
    };
    let url = |bytes: usize| format!("https://x.example/{}", "a".repeat(bytes - 18));
    let words = |count: usize, bytes: usize| StaffCommand::WordFilter {
        words: (0..count).map(|i| format!("{i:0>bytes$}")).collect(),
    };
    let announce = |bytes: usize| StaffCommand::Announce {
        text: Some("a".repeat(bytes)),
    };
    let mute = |duration_ms: u64| {
        on_fresh_room(StaffCommand::Mute {
            user: "bob".into(),
            duration_ms: Some(duration_ms),
        })
    };
    let direct = |to_user: String| {
        Room::create(info(), 1, 0).admin(
            AdminCommand::Direct {
                from_user: "host-1".into(),
                to_user,
                payload: "1".into(),
            },
            0,
        )
    };
    type Case = (
        &'static str,
        Result<AdminReply, AdminError>,
        Result<AdminReply, AdminError>,
    );
    let cases: Vec<Case> = vec![
        (
            "POLL_QUESTION_BYTES_MAX",
            poll(&|s| s.question = "q".repeat(POLL_QUESTION_BYTES_MAX)),
            poll(&|s| s.question = "q".repeat(POLL_QUESTION_BYTES_MAX + 1)),
        ),
        (
            "POLL_OPTIONS_MIN / MAX",
            poll(&|s| s.options.truncate(POLL_OPTIONS_MIN)),
            poll(&|s| s.options.truncate(POLL_OPTIONS_MIN - 1)),
        ),
        (
            "POLL_OPTIONS_MAX",
            poll(&|s| s.options = (0..POLL_OPTIONS_MAX).map(|i| i.to_string()).collect()),
            poll(&|s| s.options = (0..=POLL_OPTIONS_MAX).map(|i| i.to_string()).collect()),
        ),
        (
            "POLL_WINDOW_MS_MIN",
            poll(&|s| s.window_ms = Some(POLL_WINDOW_MS_MIN)),
            poll(&|s| s.window_ms = Some(POLL_WINDOW_MS_MIN - 1)),
        ),
        (
            "POLL_WINDOW_MS_MAX",
            poll(&|s| s.window_ms = Some(POLL_WINDOW_MS_MAX)),
            poll(&|s| s.window_ms = Some(POLL_WINDOW_MS_MAX + 1)),
        ),
        (
            "QUIZ_OPTIONS_MIN",
            quiz(&|s| s.questions[0].options.truncate(QUIZ_OPTIONS_MIN)),
            quiz(&|s| s.questions[0].options.truncate(QUIZ_OPTIONS_MIN - 1)),
        ),
        (
            "QUIZ_OPTIONS_MAX",
            quiz(&|s| {
                s.questions[0].options = (0..QUIZ_OPTIONS_MAX).map(|i| i.to_string()).collect()
            }),
            quiz(&|s| {
                s.questions[0].options = (0..=QUIZ_OPTIONS_MAX).map(|i| i.to_string()).collect()
            }),
        ),
        (
            "QUIZ_WINDOW_MS_MIN",
            quiz(&|s| s.questions[0].window_ms = Some(QUIZ_WINDOW_MS_MIN)),
            quiz(&|s| s.questions[0].window_ms = Some(QUIZ_WINDOW_MS_MIN - 1)),
        ),
        (
            "QUIZ_WINDOW_MS_MAX",
            quiz(&|s| s.questions[0].window_ms = Some(QUIZ_WINDOW_MS_MAX)),
            quiz(&|s| s.questions[0].window_ms = Some(QUIZ_WINDOW_MS_MAX + 1)),
        ),
        (
            "QUIZ_QUESTIONS_MAX",
            quiz(&|s| s.questions = quiz_spec(&[(2, 0); QUIZ_QUESTIONS_MAX], 5_000).questions),
            quiz(&|s| s.questions = quiz_spec(&[(2, 0); QUIZ_QUESTIONS_MAX + 1], 5_000).questions),
        ),
        (
            "PRODUCT_ID_BYTES_MAX",
            pin(&|p| p.id = "i".repeat(PRODUCT_ID_BYTES_MAX)),
            pin(&|p| p.id = "i".repeat(PRODUCT_ID_BYTES_MAX + 1)),
        ),
        (
            "PRODUCT_TITLE_BYTES_MAX",
            pin(&|p| p.title = "t".repeat(PRODUCT_TITLE_BYTES_MAX)),
            pin(&|p| p.title = "t".repeat(PRODUCT_TITLE_BYTES_MAX + 1)),
        ),
        (
            "PRODUCT_PRICE_BYTES_MAX",
            pin(&|p| p.price = "9".repeat(PRODUCT_PRICE_BYTES_MAX)),
            pin(&|p| p.price = "9".repeat(PRODUCT_PRICE_BYTES_MAX + 1)),
        ),
        (
            "PRODUCT_URL_BYTES_MAX (link)",
            pin(&|p| p.link = url(PRODUCT_URL_BYTES_MAX)),
            pin(&|p| p.link = url(PRODUCT_URL_BYTES_MAX + 1)),
        ),
        (
            "PRODUCT_URL_BYTES_MAX (image_url)",
            pin(&|p| p.image_url = url(PRODUCT_URL_BYTES_MAX)),
            pin(&|p| p.image_url = url(PRODUCT_URL_BYTES_MAX + 1)),
        ),
        (
            "WORD_FILTER_WORDS_MAX",
            on_fresh_room(words(WORD_FILTER_WORDS_MAX, 4)),
            on_fresh_room(words(WORD_FILTER_WORDS_MAX + 1, 4)),
        ),
        (
            "WORD_FILTER_WORD_BYTES_MAX",
            on_fresh_room(words(1, WORD_FILTER_WORD_BYTES_MAX)),
            on_fresh_room(words(1, WORD_FILTER_WORD_BYTES_MAX + 1)),
        ),
        (
            "SLOW_MODE_MS_MAX",
            on_fresh_room(StaffCommand::SlowMode {
                interval_ms: SLOW_MODE_MS_MAX,
            }),
            on_fresh_room(StaffCommand::SlowMode {
                interval_ms: SLOW_MODE_MS_MAX + 1,
            }),
        ),
        (
            "ANNOUNCEMENT_BYTES_MAX",
            on_fresh_room(announce(ANNOUNCEMENT_BYTES_MAX)),
            on_fresh_room(announce(ANNOUNCEMENT_BYTES_MAX + 1)),
        ),
        ("MUTE_MS_MAX", mute(MUTE_MS_MAX), mute(MUTE_MS_MAX + 1)),
        ("MUTE_MS_MIN", mute(MUTE_MS_MIN), mute(MUTE_MS_MIN - 1)),
        ("MUTE_MS_MAX (u64::MAX)", mute(MUTE_MS_MAX), mute(u64::MAX)),
        (
            "USER_ID_BYTES_MAX (admin direct)",
            direct("u".repeat(USER_ID_BYTES_MAX)),
            direct("u".repeat(USER_ID_BYTES_MAX + 1)),
        ),
    ];
    for (limit, at_limit, one_past) in cases {
        assert!(at_limit.is_ok(), "{limit}: at the limit: {at_limit:?}");
        let refused = one_past.expect_err(limit);
        assert_eq!(refused.http_status(), 400, "{limit}: {refused:?}");
    }
}

#[test]
fn interaction_counts_are_bounded_one_past_their_limits() {
    let users = |n: usize| (0..n).map(|i| format!("u{i}"));
    let mut poll = crate::polls::Poll::open(1, poll_spec(2, 5_000), 0);
    for user in users(POLL_VOTERS_MAX) {
        poll.vote(&user, 0, 0).expect("within POLL_VOTERS_MAX");
    }
    let refused = poll.vote("one-more", 1, 0).expect_err("POLL_VOTERS_MAX");
    assert_eq!(refused.code, ErrorCode::TooMany);
    assert_eq!(poll.votes(), POLL_VOTERS_MAX as u64);

    let mut quiz = quiz::Quiz::create(1, quiz_spec(&[(2, 0)], 5_000));
    quiz.next(0).unwrap();
    for user in users(QUIZ_PARTICIPANTS_MAX) {
        quiz.answer(&user, "U", 0, 0, 0)
            .expect("within QUIZ_PARTICIPANTS_MAX");
    }
    let refused = quiz
        .answer("one-more", "U", 0, 0, 0)
        .expect_err("QUIZ_PARTICIPANTS_MAX");
    assert_eq!(refused.code, ErrorCode::TooMany);

    // Participants are distinct users: half answer the first question and the second,
    // and newcomers still fill the other half (returning answers were counted twice,
    // refusing newcomers at a quarter of the limit), also after a restore mid-question.
    let half = QUIZ_PARTICIPANTS_MAX / 2;
    let mut quiz = quiz::Quiz::create(1, quiz_spec(&[(2, 0), (2, 0)], 5_000));
    quiz.next(0).unwrap();
    for user in users(half) {
        quiz.answer(&user, "U", 0, 0, 0).unwrap();
    }
    assert!(quiz.close(1));
    quiz.next(2).unwrap();
    let mut stored: Vec<(u16, String, quiz::AnswerRecord)> = Vec::new();
    for user in users(half) {
        let record = quiz.answer(&user, "U", 1, 0, 2).unwrap().unwrap();
        stored.push((1, user, record));
    }
    let newcomers = (half..QUIZ_PARTICIPANTS_MAX).map(|i| format!("u{i}"));
    for (n, user) in newcomers.enumerate() {
        if n == half / 2 {
            // Restored from its record and the answers stored so far.
            let first = users(half).map(|u| {
                let record = quiz::AnswerRecord {
                    option: 0,
                    at_ms: 0,
                    name: "U".into(),
                };
                (0, u, record)
            });
            quiz = quiz::Quiz::restore(quiz.record.clone(), first.chain(stored.clone()));
        }
        let record = quiz
            .answer(&user, "U", 1, 0, 2)
            .unwrap_or_else(|r| panic!("newcomer {n} of {half}: {r:?}"))
            .unwrap();
        stored.push((1, user, record));
    }
    let refused = quiz
        .answer("one-more", "U", 1, 0, 2)
        .expect_err("QUIZ_PARTICIPANTS_MAX distinct users");
    assert_eq!(refused.code, ErrorCode::TooMany);
    assert_eq!(quiz.answers(), QUIZ_PARTICIPANTS_MAX);

    let mut qa = qa::Qa::default();
    for i in 0..QA_QUESTIONS_MAX {
        let user = format!("u{}", i / QA_QUESTIONS_PER_USER_MAX);
        qa.ask(&user, "U", format!("q{i}"), false, 0)
            .expect("within QA_QUESTIONS_MAX");
    }
    let refused = qa
        .ask("one-more", "U", "one more".into(), false, 0)
        .expect_err("QA_QUESTIONS_MAX");
    assert_eq!(refused.code, ErrorCode::TooMany);
    // The room's upvotes, spread over its questions, every question's counted together.
    let question_of = |i: usize| qa::question_id((i % QA_QUESTIONS_MAX) as u64 + 1);
    for (i, user) in users(QA_UPVOTES_MAX).enumerate() {
        qa.upvote(&question_of(i), &user)
            .expect("within QA_UPVOTES_MAX");
    }
    let refused = qa
        .upvote(&question_of(0), "one-more")
        .err()
        .expect("QA_UPVOTES_MAX");
    assert_eq!(refused.code, ErrorCode::TooMany);
    let refused = qa
        .upvote(&question_of(1), "u0")
        .err()
        .expect("QA_UPVOTES_MAX: an upvoter's next question too");
    assert_eq!(refused.code, ErrorCode::TooMany);
    // An upvote already counted is still answered as counted.
    assert!(matches!(
        qa.upvote(&question_of(0), "u0"),
        Ok(qa::UpvoteOutcome::Repeat)
    ));
}
