//! Staff features: quizzes, Q&A, products, moderation and the audit trail, and their input
//! limits (`staff.rs`, `quiz.rs`, `qa.rs`, `products.rs`, `moderation.rs`).

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
    room.handle_frame(4, &answer("z1", 0, 1, 2), now);
    let out = tick_into(&mut room, &mut now, &mut store);
    assert_eq!(error_codes(&out.events[&4]), [ErrorCode::PollClosed]);

    // Question 2 opens; only cy answers (right). Then the room restarts mid-question.
    send_command(&mut room, 1, next, 3, now);
    let second = now;
    tick_into(&mut room, &mut now, &mut store);
    room.handle_frame(4, &answer("z1", 1, 0, 3), second);
    tick_into(&mut room, &mut now, &mut store);
    let mut room = Room::restore(store.clone(), now).unwrap().unwrap();
    assert_eq!(room.quiz_score("ana"), Some(1_000), "scores are rebuilt");
    assert_eq!(room.quiz_score("bob"), Some(750));
    room.reattach(1, identity("host", Role::Host), LIFETIME_MS, now);
    room.reattach(4, identity("cy", Role::Viewer), LIFETIME_MS, now);
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

#[test]
fn questions_are_asked_upvoted_once_and_moderated_with_an_optional_approval_queue() {
    let mut now = 0;
    let mut store = BTreeMap::new();
    let mut room = Room::create(info(), 3, now);
    join(&mut room, 1, "host", Role::Host, now);
    join(&mut room, 2, "ana", Role::Viewer, now);
    join(&mut room, 3, "bob", Role::Viewer, now);
    join(&mut room, 5, "mo", Role::Moderator, now);
    tick_into(&mut room, &mut now, &mut store);
    let ask = |text: &str, client_id| {
        frame_of(ClientFrame::Ask {
            client_id,
            text: text.into(),
        })
    };
    let upvote = |id: &str, client_id| {
        frame_of(ClientFrame::Upvote {
            client_id,
            question_id: id.into(),
        })
    };
    room.handle_frame(2, &ask("When is the next show?", 1), now);
    room.handle_frame(3, &ask("   ", 1), now);
    let out = tick_into(&mut room, &mut now, &mut store);
    assert_eq!(error_codes(&out.events[&3]), [ErrorCode::Invalid]);
    let qa = part_value(&out.events[&3], "qa").unwrap();
    assert_eq!(qa["questions"][0]["id"], "a1");
    assert_eq!(qa["questions"][0]["upvotes"], 0);
    room.handle_frame(3, &upvote("a1", 2), now);
    room.handle_frame(3, &upvote("a1", 3), now); // once per user
    room.handle_frame(2, &upvote("a1", 2), now);
    room.handle_frame(2, &upvote("a9", 3), now);
    let out = tick_into(&mut room, &mut now, &mut store);
    assert_eq!(error_codes(&out.events[&2]), [ErrorCode::NotFound]);
    assert_eq!(
        part_value(&out.events[&2], "qa").unwrap()["questions"][0]["upvotes"],
        2
    );

    // With approval on, a question waits in the moderators' queue.
    let approval = serde_json::json!({"command": "qa_settings", "approval": true});
    send_command(&mut room, 5, approval, 1, now);
    room.handle_frame(3, &ask("Is this moderated?", 4), now);
    let out = tick_into(&mut room, &mut now, &mut store);
    let queue = notices(&out.events[&5], "qa_queue");
    assert_eq!(queue.last().unwrap()["pending"][0]["id"], "a2");
    assert!(
        notices(&out.events[&2], "qa_queue").is_empty(),
        "viewers never see it"
    );
    assert_eq!(part_value(&out.events[&2], "qa").unwrap()["count"], 1);
    room.handle_frame(2, &upvote("a2", 5), now);
    send_command(
        &mut room,
        5,
        serde_json::json!({"command": "qa_approve", "id": "a2"}),
        2,
        now,
    );
    send_command(
        &mut room,
        1,
        serde_json::json!({"command": "qa_answer", "id": "a1"}),
        3,
        now,
    );
    let out = tick_into(&mut room, &mut now, &mut store);
    assert_eq!(
        error_codes(&out.events[&2]),
        [ErrorCode::NotFound],
        "pending: no upvotes"
    );
    let qa = part_value(&out.events[&2], "qa").unwrap();
    assert_eq!(qa["count"], 2);
    assert_eq!(qa["questions"][0]["status"], "answered");
    send_command(
        &mut room,
        1,
        serde_json::json!({"command": "qa_hide", "id": "a1"}),
        4,
        now,
    );
    tick_into(&mut room, &mut now, &mut store);
    let room = Room::restore(store, now).unwrap().unwrap();
    let qa: serde_json::Value = serde_json::from_str(room.part("qa").unwrap().1).unwrap();
    assert_eq!(qa["count"], 1, "hidden questions are not listed");
    assert_eq!(room.qa.questions[&1].upvotes(), 2, "upvotes are rebuilt");
    assert_eq!(room.qa.questions[&1].record.status, QaStatus::Hidden);
}

#[test]
fn a_pinned_product_counts_clicks_for_the_host_and_refuses_unsafe_links() {
    let mut now = 0;
    let mut store = BTreeMap::new();
    let mut room = Room::create(info(), 3, now);
    join(&mut room, 1, "host", Role::Host, now);
    join(&mut room, 2, "ana", Role::Viewer, now);
    room.admin(
        as_host(StaffCommand::PinProduct {
            product: product("red-1"),
        }),
        now,
    )
    .unwrap();
    let out = tick_into(&mut room, &mut now, &mut store);
    let part = part_value(&out.events[&2], "product").unwrap();
    assert_eq!(part["pinned"]["link"], "shop://item/red");
    let click = |id: &str, client_id| {
        frame_of(ClientFrame::ProductClick {
            client_id,
            product_id: id.into(),
        })
    };
    room.handle_frame(2, &click("red-1", 1), now);
    room.handle_frame(2, &click("red-1", 2), now);
    room.handle_frame(2, &click("blue-9", 3), now);
    let out = tick_into(&mut room, &mut now, &mut store);
    assert_eq!(error_codes(&out.events[&2]), [ErrorCode::NotFound]);
    let clicks = notices(&out.events[&1], "product_clicks");
    assert_eq!(clicks.last().unwrap()["clicks"]["red-1"], 2);
    assert!(notices(&out.events[&2], "product_clicks").is_empty());
    room.admin(as_host(StaffCommand::UnpinProduct), now)
        .unwrap();
    let out = tick_into(&mut room, &mut now, &mut store);
    assert!(part_value(&out.events[&2], "product").unwrap()["pinned"].is_null());
    for (field, url) in [
        ("link", "javascript:alert(1)"),
        ("link", "JavaScript://x"),
        ("image_url", "ftp://x/y.png"),
        ("link", "https://a b"),
    ] {
        let mut card = product("x");
        if field == "link" {
            card.link = url.into()
        } else {
            card.image_url = url.into()
        }
        let refused = room.admin(as_host(StaffCommand::PinProduct { product: card }), now);
        assert!(
            matches!(refused, Err(AdminError::Invalid(_))),
            "{url}: {refused:?}"
        );
    }
    let room = Room::restore(store, now).unwrap().unwrap();
    assert_eq!(
        room.products.clicks["red-1"], 2,
        "click totals survive a restart"
    );
}

#[test]
fn moderators_mute_ban_delete_and_filter_and_every_action_is_audited() {
    let mut now = 0;
    let mut store = BTreeMap::new();
    let mut room = Room::create(info(), 3, now);
    join(&mut room, 1, "host", Role::Host, now);
    join(&mut room, 2, "ana", Role::Viewer, now);
    join(&mut room, 3, "bob", Role::Viewer, now);
    join(&mut room, 5, "mo", Role::Moderator, now);
    tick_into(&mut room, &mut now, &mut store);

    // Viewers can do nothing of the sort; moderators cannot end the room.
    send_command(
        &mut room,
        2,
        serde_json::json!({"command": "mute", "user": "bob"}),
        1,
        now,
    );
    send_command(
        &mut room,
        5,
        serde_json::json!({"command": "end_room"}),
        1,
        now,
    );
    send_command(
        &mut room,
        5,
        serde_json::json!({"command": "nonsense"}),
        2,
        now,
    );
    let out = tick_into(&mut room, &mut now, &mut store);
    assert_eq!(error_codes(&out.events[&2]), [ErrorCode::Forbidden]);
    assert_eq!(
        error_codes(&out.events[&5]),
        [ErrorCode::Forbidden, ErrorCode::Invalid]
    );

    // Mute: bob is told; his comments reach no one.
    send_command(
        &mut room,
        5,
        serde_json::json!({"command": "mute", "user": "bob"}),
        3,
        now,
    );
    let out = tick_into(&mut room, &mut now, &mut store);
    assert_eq!(notices(&out.events[&3], "muted").len(), 1);
    room.handle_frame(3, &comment("can you hear me", 10), now);
    let out = tick_into(&mut room, &mut now, &mut store);
    assert_eq!(error_codes(&out.events[&3]), [ErrorCode::Muted]);
    assert!(out.events.values().all(|events| actions(events).is_empty()));
    let ask = frame_of(ClientFrame::Ask {
        client_id: 11,
        text: "hello?".into(),
    });
    room.handle_frame(3, &ask, now);
    let out = tick_into(&mut room, &mut now, &mut store);
    assert_eq!(error_codes(&out.events[&3]), [ErrorCode::Muted]);

    // Delete: everyone gets the removal, and a late joiner resuming never sees it.
    room.handle_frame(2, &comment("rude words", 1), now);
    tick_into(&mut room, &mut now, &mut store);
    let seq = room.last_seq();
    let delete = serde_json::json!({"command": "delete_comment", "seq": seq});
    send_command(&mut room, 5, delete, 4, now);
    let out = tick_into(&mut room, &mut now, &mut store);
    let removal = out.events[&1].iter().find_map(|e| match e {
        Event::Action(Action {
            body: ActionBody::Removed { seq },
            ..
        }) => Some(*seq),
        _ => None,
    });
    assert_eq!(removal, Some(seq));
    assert!(!room.actions_since(0, now).0.iter().any(|a| a.seq == seq));

    // Word filter (case-insensitive) and slow mode (viewers only).
    let filter = serde_json::json!({"command": "word_filter", "words": ["Spoiler", " spoiler "]});
    send_command(&mut room, 5, filter, 5, now);
    let slow = serde_json::json!({"command": "slow_mode", "interval_ms": 10_000});
    send_command(&mut room, 5, slow, 6, now);
    now += 2_000;
    room.handle_frame(2, &comment("big SPOILERS ahead", 2), now);
    room.handle_frame(2, &comment("fine", 3), now);
    room.handle_frame(2, &comment("too soon", 4), now);
    room.handle_frame(1, &comment("hosts are exempt", 1), now);
    room.handle_frame(1, &comment("from slow mode", 2), now);
    let out = tick_into(&mut room, &mut now, &mut store);
    assert_eq!(
        error_codes(&out.events[&2]),
        [ErrorCode::Blocked, ErrorCode::RateLimited]
    );
    let slow_wait = out.events[&2].iter().find_map(|e| match e {
        Event::Error {
            retry_after_ms,
            code: ErrorCode::RateLimited,
            ..
        } => Some(*retry_after_ms),
        _ => None,
    });
    assert!(slow_wait.unwrap() > 9_000);
    assert!(error_codes(&out.events[&1]).is_empty());

    // Announcement, then a ban: bob's socket closes and he cannot come back.
    let announce = serde_json::json!({"command": "announce", "text": "Giveaway at 9pm"});
    send_command(&mut room, 1, announce, 3, now);
    send_command(
        &mut room,
        5,
        serde_json::json!({"command": "ban", "user": "bob"}),
        7,
        now,
    );
    send_command(
        &mut room,
        5,
        serde_json::json!({"command": "ban", "user": "host"}),
        8,
        now,
    );
    let out = tick_into(&mut room, &mut now, &mut store);
    assert_eq!(
        part_value(&out.events[&2], "announcement").unwrap()["text"],
        "Giveaway at 9pm"
    );
    assert!(out.closes.contains(&(3, CloseCode::Banned)));
    assert_eq!(
        error_codes(&out.events[&5]),
        [ErrorCode::Invalid],
        "the host cannot be banned"
    );
    assert_eq!(
        room.connect(9, identity("bob", Role::Viewer), LIFETIME_MS, now),
        Err(CloseCode::Banned)
    );

    // Everything survives a restart, and the audit trail says who did what, in order.
    let mut room = Room::restore(store.clone(), now).unwrap().unwrap();
    assert!(room.is_banned("bob"));
    room.reattach(2, identity("ana", Role::Viewer), LIFETIME_MS, now);
    room.handle_frame(2, &comment("no spoiler here", 5), now + 20_000);
    let mut t = now + 20_000;
    let out = tick_into(&mut room, &mut t, &mut store);
    assert_eq!(
        error_codes(&out.events[&2]),
        [ErrorCode::Blocked],
        "the filter is stored"
    );
    let audit: Vec<(String, String)> = room
        .audit_trail()
        .map(|e| (e.by.clone(), e.command.clone()))
        .collect();
    let expected = [
        ("mo", "mute"),
        ("mo", "delete_comment"),
        ("mo", "word_filter"),
        ("mo", "slow_mode"),
        ("host", "announce"),
        ("mo", "ban"),
    ];
    let expected: Vec<(String, String)> = expected
        .iter()
        .map(|(b, c)| (b.to_string(), c.to_string()))
        .collect();
    assert_eq!(audit, expected);
}

#[test]
fn the_audit_trail_is_bounded() {
    let mut room = Room::create(info(), 3, 0);
    for i in 0..AUDIT_ENTRIES_MAX + 5 {
        let slow = StaffCommand::SlowMode {
            interval_ms: i as u64,
        };
        room.admin(as_host(slow), i as u64).unwrap();
    }
    let trail: Vec<u64> = room.audit_trail().map(|e| e.n).collect();
    assert_eq!(trail.len(), AUDIT_ENTRIES_MAX);
    assert_eq!(trail[0], 5, "the oldest entries go first");
    let out = drain(&mut room);
    let deleted = out
        .stores
        .iter()
        .filter(|op| matches!(op, StorageOp::Delete { key } if key.starts_with("audit/")))
        .count();
    assert_eq!(deleted, 5);
}

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
    ];
    for (limit, at_limit, one_past) in cases {
        assert!(at_limit.is_ok(), "{limit}: at the limit: {at_limit:?}");
        let refused = one_past.expect_err(limit);
        assert_eq!(refused.http_status(), 400, "{limit}: {refused:?}");
    }
}

#[test]
fn moderation_sets_are_bounded_one_past_their_limits() {
    let mut room = Room::create(info(), 1, 0);
    for (limit, max, command) in [
        (
            "MUTED_USERS_MAX",
            MUTED_USERS_MAX,
            (|user: String| StaffCommand::Mute {
                user,
                duration_ms: None,
            }) as fn(String) -> StaffCommand,
        ),
        ("BANNED_USERS_MAX", BANNED_USERS_MAX, |user| {
            StaffCommand::Ban { user }
        }),
    ] {
        for i in 0..max {
            room.admin(as_host(command(format!("u{i}"))), 0)
                .unwrap_or_else(|e| panic!("{limit}: {i}: {e:?}"));
        }
        let refused = room
            .admin(as_host(command(format!("u{max}"))), 0)
            .expect_err(limit);
        assert_eq!(refused.http_status(), 409, "{limit}: {refused:?}");
        // Repeating a command for a user already in the set is no growth.
        assert!(room.admin(as_host(command("u0".into())), 0).is_ok());
        drain(&mut room);
    }
}

#[test]
fn interaction_counts_are_bounded_one_past_their_limits() {
    let users = |n: usize| (0..n).map(|i| format!("u{i}"));
    let mut poll = crate::polls::Poll::open(1, poll_spec(2, 5_000), 0);
    for user in users(POLL_VOTERS_MAX) {
        poll.vote(&user, 0).expect("within POLL_VOTERS_MAX");
    }
    let refused = poll.vote("one-more", 1).expect_err("POLL_VOTERS_MAX");
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

    let mut qa = qa::Qa::default();
    for i in 0..QA_QUESTIONS_MAX {
        qa.ask("u", "U", format!("q{i}"), false, 0)
            .expect("within QA_QUESTIONS_MAX");
    }
    let refused = qa
        .ask("u", "U", "one more".into(), false, 0)
        .expect_err("QA_QUESTIONS_MAX");
    assert_eq!(refused.code, ErrorCode::TooMany);
    let first = qa::question_id(1);
    for user in users(QA_UPVOTERS_MAX) {
        qa.upvote(&first, &user).expect("within QA_UPVOTERS_MAX");
    }
    let refused = qa
        .upvote(&first, "one-more")
        .err()
        .expect("QA_UPVOTERS_MAX");
    assert_eq!(refused.code, ErrorCode::TooMany);
}

#[test]
fn a_room_counts_clicks_for_at_most_products_counted_max_products() {
    let mut room = Room::create(info(), 1, 0);
    for i in 0..PRODUCTS_COUNTED_MAX {
        let pinned = room.admin(
            as_host(StaffCommand::PinProduct {
                product: product(&format!("p{i}")),
            }),
            0,
        );
        assert!(pinned.is_ok(), "product {i}: {pinned:?}");
    }
    let one_more = StaffCommand::PinProduct {
        product: product("one-more"),
    };
    assert!(room.admin(as_host(one_more), 0).is_err());
    // A product already counted may be pinned again.
    let again = StaffCommand::PinProduct {
        product: product("p0"),
    };
    assert!(room.admin(as_host(again), 0).is_ok());
}

/// An audit entry's detail keeps `AUDIT_DETAIL_BYTES_MAX` bytes; one more is cut, on a
/// character boundary.
#[test]
fn audit_details_keep_audit_detail_bytes_max_and_cut_one_past() {
    let exact = "d".repeat(AUDIT_DETAIL_BYTES_MAX);
    assert_eq!(
        crate::moderation::truncate(exact.clone(), AUDIT_DETAIL_BYTES_MAX),
        exact
    );
    let one_past = format!("{exact}x");
    assert_eq!(
        crate::moderation::truncate(one_past, AUDIT_DETAIL_BYTES_MAX),
        exact
    );
    // A two-byte character straddling the limit goes whole.
    let straddling = format!("{}é", "d".repeat(AUDIT_DETAIL_BYTES_MAX - 1));
    let cut = crate::moderation::truncate(straddling, AUDIT_DETAIL_BYTES_MAX);
    assert_eq!(cut.len(), AUDIT_DETAIL_BYTES_MAX - 1);
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

#[test]
fn the_moderation_route_takes_exactly_the_moderation_commands() {
    let samples = [
        r#"{"command":"mute","user":"u1"}"#,
        r#"{"command":"unmute","user":"u1"}"#,
        r#"{"command":"ban","user":"u1"}"#,
        r#"{"command":"unban","user":"u1"}"#,
        r#"{"command":"delete_comment","seq":1}"#,
        r#"{"command":"slow_mode","interval_ms":0}"#,
        r#"{"command":"word_filter","words":[]}"#,
        r#"{"command":"announce","text":null}"#,
        r#"{"command":"close_poll","id":"p1"}"#,
        r#"{"command":"unpin_product"}"#,
        r#"{"command":"qa_hide","id":"q1"}"#,
        r#"{"command":"end_room"}"#,
    ];
    let mut moderation = Vec::new();
    for text in samples {
        let command: StaffCommand = serde_json::from_str(text).unwrap();
        assert_eq!(
            command.is_moderation(),
            StaffCommand::MODERATION.contains(&command.name()),
            "{text}"
        );
        if command.is_moderation() {
            moderation.push(command.name());
        }
    }
    assert_eq!(moderation, StaffCommand::MODERATION);
}
