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
