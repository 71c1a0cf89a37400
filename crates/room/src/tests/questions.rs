//! Q&A (`qa.rs`): asking, upvoting once, moderating questions, and the optional
//! approval queue.

use super::*;

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

fn upvote_frame(question_id: &str, client_id: u64) -> Vec<u8> {
    frame_of(ClientFrame::Upvote {
        client_id,
        question_id: question_id.into(),
    })
}

/// Runs the room's timer as a host does for `for_ms`: `handle_timeout` at each deadline
/// it asks for; returns every output drained on the way.
fn run_timers_for(room: &mut Room, now_ms: &mut u64, for_ms: u64) -> Vec<Drained> {
    let until_ms = *now_ms + for_ms;
    let mut out = Vec::new();
    while let Some(at) = room.poll_timeout().filter(|&at| at <= until_ms) {
        *now_ms = at.max(*now_ms);
        room.handle_timeout(*now_ms);
        out.push(drain(room));
        // A deadline that handling does not move on is a timer loop (the host would spin).
        assert!(
            out.len() < 10_000,
            "the room's timer does not advance at {at}"
        );
    }
    *now_ms = until_ms;
    out
}

/// The `qa` parts a connection was sent, in order.
fn qa_parts(outputs: &[Drained], connection: ConnectionId) -> Vec<serde_json::Value> {
    outputs
        .iter()
        .filter_map(|out| out.events.get(&connection))
        .flatten()
        .filter_map(|event| match event {
            Event::Part { name, value, .. } if name == "qa" => {
                Some(serde_json::from_str(value).unwrap())
            }
            _ => None,
        })
        .collect()
}

/// An upvote is a reaction: one viewer upvoting every question at once has its reaction
/// burst counted and the rest refused `rate_limited` with a wait, while another
/// viewer's upvote counts. Before, one user's sockets upvoted as fast as their frames,
/// each counted upvote republishing the whole `qa` part to everyone.
#[test]
fn one_viewers_upvotes_take_its_reaction_allowance() {
    let mut now = 0;
    let mut room = Room::create(info(), 3, now);
    join(&mut room, 1, "host", Role::Host, now);
    join(&mut room, 2, "ana", Role::Viewer, now);
    join(&mut room, 3, "bob", Role::Viewer, now);
    for i in 0..30 {
        let asker = format!("asker-{}", i / QA_QUESTIONS_PER_USER_MAX);
        room.qa
            .ask(&asker, "A", format!("question {i}"), false, now)
            .unwrap();
    }
    tick(&mut room, &mut now);
    for n in 1..=30 {
        room.handle_frame(2, &upvote_frame(&format!("a{n}"), n), now);
    }
    room.handle_frame(3, &upvote_frame("a1", 1), now);
    let out = tick(&mut room, &mut now);
    let refused: Vec<&Event> = out.events[&2]
        .iter()
        .filter(|e| matches!(e, Event::Error { .. }))
        .collect();
    assert_eq!(refused.len(), 30 - REACTION_BURST as usize, "{refused:?}");
    assert!(refused.iter().all(|e| matches!(
        e,
        Event::Error {
            code: ErrorCode::RateLimited,
            retry_after_ms: 1..,
            ..
        }
    )));
    assert!(error_codes(&out.events[&3]).is_empty());
    let counted: u64 = room.qa.questions.values().map(|q| q.upvotes()).sum();
    assert_eq!(counted, u64::from(REACTION_BURST) + 1);
    // With the allowance spent, an upvote counted already is answered as the repeat it
    // is (under a new client id), and one of no question is refused `not_found`: neither
    // takes from the allowance, so neither is refused `rate_limited`.
    room.handle_frame(2, &upvote_frame("a1", 31), now);
    room.handle_frame(2, &upvote_frame("a999", 32), now);
    let out = tick(&mut room, &mut now);
    assert_eq!(error_codes(&out.events[&2]), [ErrorCode::NotFound]);
    assert!(out.events[&2].contains(&Event::Ack {
        client_id: 31,
        seq: None
    }));
}

/// Upvotes republish the `qa` part (up to 50 questions of text, to every viewer) at most
/// once per `QA_UPVOTES_PUBLISH_INTERVAL_MS`, the last of them included (a lone upvote
/// held back wakes the room when its interval ends); a question asked goes out at the
/// next tick. Before, every tick with an upvote republished the part: 20 a second.
#[test]
fn upvotes_republish_the_qa_part_at_most_once_an_interval_and_none_is_lost() {
    let mut now = 0;
    let mut room = Room::create(info(), 3, now);
    join(&mut room, 1, "host", Role::Host, now);
    let viewers: Vec<ConnectionId> = (10..80).collect();
    for &viewer in &viewers {
        join(
            &mut room,
            viewer,
            &format!("viewer-{viewer}"),
            Role::Viewer,
            now,
        );
    }
    room.qa
        .ask("asker", "A", "first question".into(), false, now)
        .unwrap();
    room.qa.part_dirty = true;
    tick(&mut room, &mut now);

    // A viewer upvotes every tick for three seconds.
    let started_ms = now;
    let run_ms = 3 * QA_UPVOTES_PUBLISH_INTERVAL_MS;
    let mut outputs = Vec::new();
    let mut upvoted = 0;
    for &viewer in &viewers {
        if now >= started_ms + run_ms {
            break;
        }
        room.handle_frame(viewer, &upvote_frame("a1", 1), now);
        upvoted += 1;
        outputs.extend(run_timers_for(&mut room, &mut now, TICK_MS));
    }
    let during = qa_parts(&outputs, 1);
    let publishes_max = run_ms / QA_UPVOTES_PUBLISH_INTERVAL_MS + 1;
    assert!(
        !during.is_empty() && during.len() as u64 <= publishes_max,
        "{} qa parts in {run_ms} ms of upvotes",
        during.len()
    );
    // The last upvotes go out once their interval ends, with no event to wake the room.
    let after = run_timers_for(
        &mut room,
        &mut now,
        QA_UPVOTES_PUBLISH_INTERVAL_MS + TICK_MS,
    );
    let last = qa_parts(&after, 1)
        .pop()
        .or_else(|| during.last().cloned())
        .unwrap();
    assert_eq!(last["questions"][0]["upvotes"], upvoted);
    assert_eq!(room.poll_timeout().filter(|&at| at <= now), None);

    // Right after a republish of upvotes, one more is held back; a question asked then
    // goes out at the next tick, carrying the counts.
    room.handle_frame(viewers[upvoted as usize], &upvote_frame("a1", 1), now);
    let published = run_timers_for(&mut room, &mut now, TICK_MS);
    assert_eq!(qa_parts(&published, 1).len(), 1);
    room.handle_frame(viewers[upvoted as usize + 1], &upvote_frame("a1", 1), now);
    let held = run_timers_for(&mut room, &mut now, 2 * TICK_MS);
    assert!(qa_parts(&held, 1).is_empty(), "held back by the interval");
    room.handle_frame(
        viewers[upvoted as usize + 2],
        &frame_of(ClientFrame::Ask {
            client_id: 2,
            text: "second question".into(),
        }),
        now,
    );
    let asked = run_timers_for(&mut room, &mut now, TICK_MS);
    let part = qa_parts(&asked, 1)
        .pop()
        .expect("the question goes out at once");
    assert_eq!(part["count"], 2);
    assert_eq!(part["questions"][0]["upvotes"], upvoted + 2);
}

/// Upvotes held back by their interval when the room stops are published once it is
/// restored, at its first tick, with no other change to the questions.
#[test]
fn upvotes_held_back_at_a_restart_are_published_after_it() {
    let mut now = 0;
    let mut store = BTreeMap::new();
    let mut room = Room::create(info(), 3, now);
    join(&mut room, 2, "ana", Role::Viewer, now);
    join(&mut room, 3, "bob", Role::Viewer, now);
    let ask = ClientFrame::Ask {
        client_id: 1,
        text: "first question".into(),
    };
    room.handle_frame(2, &frame_of(ask), now);
    tick_into(&mut room, &mut now, &mut store);
    room.handle_frame(2, &upvote_frame("a1", 2), now);
    tick_into(&mut room, &mut now, &mut store);
    room.handle_frame(3, &upvote_frame("a1", 1), now);
    tick_into(&mut room, &mut now, &mut store);
    let upvotes_of = |room: &Room| {
        let qa: serde_json::Value = serde_json::from_str(room.part("qa").unwrap().1).unwrap();
        qa["questions"][0]["upvotes"].clone()
    };
    assert_eq!(upvotes_of(&room), 1, "the second is held back");

    let mut restored = Room::restore(store.clone(), now).unwrap().unwrap();
    assert_eq!(restored.qa.questions[&1].upvotes(), 2, "both stored");
    for out in run_timers_for(&mut restored, &mut now, TICK_MS) {
        apply(&out.stores, &mut store);
    }
    assert_eq!(upvotes_of(&restored), 2);
    // Woken again with its part up to date, the room does not publish it again.
    let mut again = Room::restore(store, now).unwrap().unwrap();
    let version = again.part("qa").unwrap().0;
    run_timers_for(&mut again, &mut now, 2 * QA_UPVOTES_PUBLISH_INTERVAL_MS);
    assert_eq!(again.part("qa").unwrap().0, version, "not published again");
}
