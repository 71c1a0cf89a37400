//! Moderation and the audit trail (`moderation.rs`): mute, ban, delete and filter, every
//! action audited, the trail and each entry's detail bounded, the moderation sets' limits,
//! and the moderation route's commands.

use super::*;

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
    // A reaction's kind is free text everyone is shown: muted too.
    let reaction = |client_id: u64, kind: &str| {
        frame_of(ClientFrame::Reaction {
            client_id,
            kind: kind.into(),
        })
    };
    room.handle_frame(3, &reaction(12, "can you see me"), now);
    let out = tick_into(&mut room, &mut now, &mut store);
    assert_eq!(error_codes(&out.events[&3]), [ErrorCode::Muted]);
    assert!(out.events.values().all(|events| actions(events).is_empty()));

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
    // A retry of the command (its answer lost) makes no second removal, also once the
    // comment would count as older than the ring.
    let again = serde_json::json!({"command": "delete_comment", "seq": seq});
    send_command(&mut room, 5, again, 40, now);
    let out = tick_into(&mut room, &mut now, &mut store);
    assert_eq!(error_codes(&out.events[&5]), [ErrorCode::NotFound]);
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
    room.handle_frame(2, &reaction(5, "spoiler!"), now);
    let out = tick_into(&mut room, &mut now, &mut store);
    assert_eq!(
        error_codes(&out.events[&2]),
        [
            ErrorCode::Blocked,
            ErrorCode::RateLimited,
            ErrorCode::Blocked
        ]
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
    room.reattach(2, identity("ana", Role::Viewer), LIFETIME_MS, true, now);
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

/// Timed mutes that ran out mute no one and hold no place: with `MUTED_USERS_MAX` users
/// muted for a minute, an hour later a new mute is taken (the expired ones are forgotten,
/// in storage too), where it was refused `409` "at most 10000 users are muted at once".
/// While they still run, one past the bound is refused.
/// A comment reported after it left the room's recent actions (30 s, 1,024 actions) is
/// still removed: everyone gets the `Removed` action, which takes it out of what viewers
/// show and out of the recording. Numbers no action has, and a kept action that is not a
/// comment, are refused `not_found`.
#[test]
fn a_comment_older_than_the_rooms_recent_actions_is_still_removed() {
    let mut now = 0;
    let mut store = BTreeMap::new();
    let mut room = Room::create(info(), 3, now);
    join(&mut room, 1, "host", Role::Host, now);
    join(&mut room, 2, "ana", Role::Viewer, now);
    tick_into(&mut room, &mut now, &mut store);
    room.handle_frame(2, &comment("rude words", 1), now);
    tick_into(&mut room, &mut now, &mut store);
    let rude = room.last_seq();
    let delete = |room: &mut Room, seq: u64, now: u64| {
        room.admin(as_host(StaffCommand::DeleteComment { seq }), now)
    };

    now += RING_AGE_MS_MAX + 1_000;
    let reaction = frame_of(ClientFrame::Reaction {
        client_id: 2,
        kind: "wow".into(),
    });
    room.handle_frame(2, &reaction, now);
    tick_into(&mut room, &mut now, &mut store);
    let kept: Vec<u64> = room.actions_since(0, now).0.iter().map(|a| a.seq).collect();
    assert_eq!(kept, [rude + 1], "the comment left the recent actions");

    for seq in [0, rude + 1, rude + 2, u64::MAX] {
        assert!(
            matches!(delete(&mut room, seq, now), Err(AdminError::NotFound(_))),
            "{seq}"
        );
    }
    assert!(delete(&mut room, rude, now).is_ok());
    assert!(
        matches!(delete(&mut room, rude, now), Err(AdminError::NotFound(_))),
        "a repeat (a retried command) makes no second removal"
    );
    let out = tick_into(&mut room, &mut now, &mut store);
    for viewer in [1, 2] {
        assert!(
            out.events[&viewer].iter().any(|e| matches!(
                e,
                Event::Action(Action { body: ActionBody::Removed { seq }, .. }) if *seq == rude
            )),
            "{viewer}: {:?}",
            out.events[&viewer]
        );
    }
}

/// A reaction and an admin's system message that left the recent actions are no
/// comments either: a moderator's removal of their number is refused `not_found`, as while
/// they are kept. Before, any number past the ring was taken for an old comment: the
/// `Removed` action took a paid gift or an admin's broadcast off viewers' screens and out
/// of the recording, past the rule that a moderator acts on lower ranks only.
///
/// The kinds are stored: after the room object restarts (a hibernated room wakes), the
/// refusal holds, and an old comment is still removed. Before, a restarted room knew
/// only its recent actions' kinds, so any older gift's number was taken for a comment's.
#[test]
fn an_action_that_is_not_a_comment_is_not_removed_after_it_left_the_recent_actions() {
    let mut now = 0;
    let mut store = BTreeMap::new();
    let mut room = Room::create(info(), 3, now);
    join(&mut room, 1, "mo", Role::Moderator, now);
    join(&mut room, 2, "ana", Role::Viewer, now);
    tick_into(&mut room, &mut now, &mut store);
    let reaction = frame_of(ClientFrame::Reaction {
        client_id: 1,
        kind: "wow".into(),
    });
    room.handle_frame(2, &reaction, now);
    tick_into(&mut room, &mut now, &mut store);
    let reacted = room.last_seq();
    let broadcast = AdminCommand::Broadcast {
        from_user: "admin".into(),
        from_name: "Admin".into(),
        text: "welcome".into(),
    };
    room.admin(broadcast, now).unwrap();
    tick_into(&mut room, &mut now, &mut store);
    let told = room.last_seq();
    room.handle_frame(2, &comment("later", 2), now);
    tick_into(&mut room, &mut now, &mut store);
    let said = room.last_seq();
    assert_eq!((reacted + 1, told + 1), (told, said));

    now += RING_AGE_MS_MAX + 1_000;
    room.handle_frame(2, &comment("now", 3), now);
    tick_into(&mut room, &mut now, &mut store);
    let kept: Vec<u64> = room.actions_since(0, now).0.iter().map(|a| a.seq).collect();
    assert_eq!(kept, [said + 1], "the three left the recent actions");
    tick_into(&mut room, &mut now, &mut store);
    let mut restarted = Room::restore(store.clone(), now).unwrap().unwrap();
    for room in [&mut room, &mut restarted] {
        for seq in [reacted, told] {
            let refused = delete_as(room, "mo", Role::Moderator, seq, now);
            assert!(
                matches!(refused, Err(AdminError::NotFound(why)) if why.contains("not a comment")),
                "{seq}: {refused:?}"
            );
        }
        assert!(delete_as(room, "mo", Role::Moderator, said, now).is_ok());
    }
}

/// The kinds of numbers are remembered a bit each over the newest
/// `NUMBER_KINDS_REMEMBERED_MAX` numbers (a room at its action rate for minutes; a list of
/// numbers ran out in seconds there): a gift among a million later numbers is still
/// known, and one past the bound is forgotten (its removal is then taken for an older
/// comment's, which the recording ignores for a gift).
#[test]
fn not_comments_are_remembered_for_the_newest_number_kinds_remembered_max_numbers() {
    let mut kinds = crate::ring::NotComments::default();
    kinds.mark(5);
    kinds.mark(70);
    assert!(kinds.contains(5) && kinds.contains(70));
    for other in [0, 4, 6, 69, 71, u64::MAX] {
        assert!(!kinds.contains(other), "{other}");
    }
    let last_within = NUMBER_KINDS_REMEMBERED_MAX - 1;
    kinds.mark(last_within);
    assert!(kinds.contains(5), "within the bound");
    kinds.mark(NUMBER_KINDS_REMEMBERED_MAX); // one word past: the first word goes
    assert!(!kinds.contains(5), "forgotten one past the bound");
    assert!(kinds.contains(70) && kinds.contains(last_within));
    assert!(kinds.contains(NUMBER_KINDS_REMEMBERED_MAX));
}

/// The stored records of kinds give back what was remembered, no more: a record whose
/// numbers are all forgotten is deleted, one partly forgotten reads 0 there, and each
/// changed record is written once however many marks it took.
#[test]
fn kinds_are_stored_a_record_per_numbers_per_kinds_record_and_read_back() {
    use crate::ring::{NotComments, NUMBERS_PER_KINDS_RECORD};
    let mut store = BTreeMap::new();
    let mut kinds = NotComments::default();
    for seq in [5, 70, 71, NUMBERS_PER_KINDS_RECORD + 1] {
        kinds.mark(seq);
    }
    let written = kinds.take_unstored();
    assert_eq!(written.len(), 2, "{written:?}");
    apply(&written, &mut store);
    assert!(kinds.take_unstored().is_empty(), "nothing changed since");
    kinds.mark(70);
    assert!(kinds.take_unstored().is_empty(), "known already");

    let back = kinds_read_back(&store);
    for seq in [5, 70, 71, NUMBERS_PER_KINDS_RECORD + 1] {
        assert!(back.contains(seq), "{seq}");
    }
    for seq in [0, 6, 69, 72, NUMBERS_PER_KINDS_RECORD] {
        assert!(!back.contains(seq), "{seq}");
    }

    // A mark a record past the bound: the first record is forgotten, and deleted.
    let last = NUMBER_KINDS_REMEMBERED_MAX + NUMBERS_PER_KINDS_RECORD - 1;
    kinds.mark(last);
    let written = kinds.take_unstored();
    apply(&written, &mut store);
    assert!(
        !store.contains_key("kinds/00000000000000000000"),
        "{written:?}"
    );
    let back = kinds_read_back(&store);
    assert!(!back.contains(5) && !back.contains(70));
    assert!(back.contains(NUMBERS_PER_KINDS_RECORD + 1) && back.contains(last));
    assert!(store.len() as u64 <= NUMBER_KINDS_REMEMBERED_MAX / NUMBERS_PER_KINDS_RECORD + 1);
}

/// The kinds as a restore reads them from `store`'s `kinds/` records.
fn kinds_read_back(store: &BTreeMap<String, Vec<u8>>) -> crate::ring::NotComments {
    let records = store
        .iter()
        .filter_map(|(key, value)| {
            let record = key.strip_prefix("kinds/")?.parse().unwrap();
            Some((record, postcard::from_bytes::<Vec<u64>>(value).unwrap()))
        })
        .collect();
    crate::ring::NotComments::restored(records)
}

/// A window whose start is not a record's: restored from its records, it starts where the
/// live one did (the last record's padding is not taken for numbers, which pushed the
/// start up to 4,032 numbers past the live one's at the bound).
#[test]
fn kinds_restored_at_the_bound_keep_the_same_window() {
    use crate::ring::NotComments;
    let mut kinds = NotComments::default();
    let mut store = BTreeMap::new();
    for seq in (0..=NUMBER_KINDS_REMEMBERED_MAX + 64).step_by(64) {
        kinds.mark(seq);
    }
    apply(&kinds.take_unstored(), &mut store);
    let restored = kinds_read_back(&store);
    for seq in [64, 128, 192, 4_096, NUMBER_KINDS_REMEMBERED_MAX + 64] {
        assert_eq!(restored.contains(seq), kinds.contains(seq), "{seq}");
    }
    assert!(restored.contains(128) && !restored.contains(64));
}

#[test]
fn expired_mutes_give_their_places_back() {
    let mut now = 0;
    let mut room = Room::create(info(), 1, now);
    let mute = |user: String| {
        as_host(StaffCommand::Mute {
            user,
            duration_ms: Some(60_000),
        })
    };
    for i in 0..MUTED_USERS_MAX {
        room.admin(mute(format!("u{i}")), now).unwrap();
    }
    let refused = room.admin(mute("late".into()), now).expect_err("full");
    assert_eq!(refused.http_status(), 409);
    drain(&mut room);
    now += 3_600_000;
    room.admin(mute("late".into()), now)
        .expect("the expired mutes gave their places back");
    let stores = drain(&mut room).stores;
    let deleted = stores
        .iter()
        .filter(|op| matches!(op, StorageOp::Delete { key } if key.starts_with("mute")))
        .count();
    assert_eq!(deleted, MUTED_USERS_MAX, "their records go too");
    assert_eq!(room.moderation.muted.len(), 1);
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

/// A host may end the room over its own socket, which the end closes with every other:
/// the host hears its command answered (reply, then `Ack`) before `RoomEnded`, and the
/// room ends for everyone with its storage written (it once panicked queueing the `Ack`
/// to the socket the end had just closed).
#[test]
fn a_host_ends_the_room_over_its_own_socket() {
    let mut now = 0;
    let mut store = BTreeMap::new();
    let mut room = Room::create(info(), 3, now);
    join(&mut room, 1, "host", Role::Host, now);
    join(&mut room, 2, "ana", Role::Viewer, now);
    tick_into(&mut room, &mut now, &mut store);

    send_command(
        &mut room,
        1,
        serde_json::json!({"command": "end_room"}),
        7,
        now,
    );
    let out = tick_into(&mut room, &mut now, &mut store);
    assert_eq!(room.status(), RoomStatus::Ended);
    let host = &out.events[&1];
    let acked = host
        .iter()
        .position(|e| matches!(e, Event::Ack { client_id: 7, .. }))
        .unwrap_or_else(|| panic!("the host's end_room is acknowledged: {host:?}"));
    let ended = host
        .iter()
        .position(|e| matches!(e, Event::RoomEnded))
        .expect("the host is told the room ended");
    assert!(acked < ended, "{host:?}");
    assert!(error_codes(host).is_empty(), "{host:?}");
    assert!(out.events[&2].contains(&Event::RoomEnded));
    let mut closed: Vec<_> = out.closes.clone();
    closed.sort_by_key(|(id, _)| *id);
    assert_eq!(
        closed,
        [(1, CloseCode::RoomEnded), (2, CloseCode::RoomEnded)]
    );
    // The end is stored: a restart finds the room ended.
    let restored = Room::restore(store.clone(), now).unwrap().unwrap();
    assert_eq!(restored.status(), RoomStatus::Ended);
    // A second end is refused, not run twice.
    assert!(matches!(
        room.admin(as_host(StaffCommand::EndRoom), now),
        Err(AdminError::RoomEnded)
    ));
}

/// Slow mode remembers at most `SLOW_MODE_USERS_MAX` viewers' last comments, forgetting
/// the earliest first, one at a time (it scanned every entry on each comment past 10,000
/// and then grew anyway); viewers whose interval passed are forgotten as comments come.
#[test]
fn slow_mode_remembers_a_bounded_number_of_commenters() {
    let mut moderation = crate::moderation::Moderation::default();
    moderation.settings.slow_mode_ms = SLOW_MODE_MS_MAX;
    let user = |i: usize| format!("u{i}");
    for i in 0..=SLOW_MODE_USERS_MAX {
        moderation
            .slow_mode_take(&user(i), 1_000 + i as u64)
            .expect("a first comment");
    }
    let now_ms = 1_000 + SLOW_MODE_USERS_MAX as u64;
    assert_eq!(moderation.last_comment_ms.len(), SLOW_MODE_USERS_MAX);
    assert!(
        moderation.slow_mode_take(&user(0), now_ms).is_ok(),
        "the earliest is forgotten"
    );
    let wait_ms = moderation
        .slow_mode_take(&user(SLOW_MODE_USERS_MAX), now_ms)
        .expect_err("the latest still waits");
    assert_eq!(wait_ms, SLOW_MODE_MS_MAX);
    assert!(moderation.last_comment_ms.len() <= SLOW_MODE_USERS_MAX);

    // Once the interval passed for all, the next comment forgets them.
    let later_ms = now_ms + SLOW_MODE_MS_MAX;
    moderation.slow_mode_take("late", later_ms).unwrap();
    assert_eq!(moderation.last_comment_ms.len(), 1);

    // The clock steps back: the entry at the front is not passed for a long while, and a
    // few users comment again and again behind it. The order stays bounded.
    let mut moderation = crate::moderation::Moderation::default();
    moderation.settings.slow_mode_ms = 1_000;
    moderation.slow_mode_take("early", 100_000_000).unwrap();
    for round in 0..(2 * SLOW_MODE_USERS_MAX as u64 / 10 + 10) {
        for user in 0..10 {
            moderation
                .slow_mode_take(&user.to_string(), 1_000 + 1_000 * round)
                .unwrap();
        }
    }
    assert!(moderation.comments_in_order_len() <= 2 * SLOW_MODE_USERS_MAX);
    assert!(moderation.last_comment_ms.len() <= 11);
}

/// Staff act only on those below them: a moderator cannot ban or mute a co-host, an
/// admin or another moderator connected to the room (it closed their sockets and
/// refused their reconnects), a host may act on a moderator, an admin on anyone but the
/// room's host.
#[test]
fn a_moderator_cannot_ban_or_mute_staff_of_their_rank_or_above() {
    let now = 0;
    let mut room = Room::create(info(), 3, now);
    join(&mut room, 1, "cohost", Role::Host, now);
    join(&mut room, 2, "mo", Role::Moderator, now);
    join(&mut room, 3, "mo2", Role::Moderator, now);
    join(&mut room, 4, "ana", Role::Viewer, now);
    let by = |user: &str, role: Role| Identity {
        user: user.into(),
        name: user.into(),
        role,
    };
    let staff = |room: &mut Room, who: Identity, command: StaffCommand| {
        room.admin(AdminCommand::Staff { by: who, command }, now)
    };
    let ban = |user: &str| StaffCommand::Ban { user: user.into() };
    let mute = |user: &str| StaffCommand::Mute {
        user: user.into(),
        duration_ms: None,
    };
    let moderator = by("mo", Role::Moderator);
    for target in ["cohost", "mo2"] {
        assert_eq!(
            staff(&mut room, moderator.clone(), ban(target)),
            Err(AdminError::Forbidden),
            "{target}"
        );
        assert_eq!(
            staff(&mut room, moderator.clone(), mute(target)),
            Err(AdminError::Forbidden),
            "{target}"
        );
    }
    assert!(staff(&mut room, moderator, mute("ana")).is_ok());
    assert!(
        staff(&mut room, by("cohost", Role::Host), ban("mo2")).is_ok(),
        "a host may ban a moderator"
    );
    assert!(
        staff(&mut room, by("ops", Role::Admin), ban("cohost")).is_ok(),
        "an admin may ban a co-host"
    );
}

/// A retried removal of a recent comment in a quiet room: the comment was the ring's
/// first action, so once it is gone its number reads as older than the ring. The retry
/// is `not_found`, not a second `Removed`.
#[test]
fn a_retried_removal_of_the_rings_first_comment_is_not_made_twice() {
    let mut now = 0;
    let mut store = BTreeMap::new();
    let mut room = Room::create(info(), 3, now);
    join(&mut room, 2, "ana", Role::Viewer, now);
    room.handle_frame(2, &comment("oops", 1), now);
    tick_into(&mut room, &mut now, &mut store);
    let seq = room.last_seq();
    let delete = |room: &mut Room| room.admin(as_host(StaffCommand::DeleteComment { seq }), now);
    assert!(delete(&mut room).is_ok());
    let after_first = room.last_seq();
    assert!(matches!(delete(&mut room), Err(AdminError::NotFound(_))));
    assert_eq!(room.last_seq(), after_first, "no second Removed");
}

/// A room with a host (connection 1), moderators `mo` (2) and `mo2` (3) and a viewer
/// `ana` (4), where each connection in `commenting` said a comment: its number by user.
fn staff_and_a_viewer_commenting(
    commenting: &[ConnectionId],
    now: &mut u64,
) -> (Room, BTreeMap<&'static str, u64>, BTreeMap<String, Vec<u8>>) {
    let mut store = BTreeMap::new();
    let users = [(1, "host", Role::Host), (2, "mo", Role::Moderator)];
    let users = users
        .into_iter()
        .chain([(3, "mo2", Role::Moderator), (4, "ana", Role::Viewer)]);
    let mut room = Room::create(info(), 3, *now);
    let mut names = BTreeMap::new();
    for (connection, user, role) in users {
        join(&mut room, connection, user, role, *now);
        names.insert(connection, user);
    }
    tick_into(&mut room, now, &mut store);
    let mut said = BTreeMap::new();
    for connection in commenting {
        let user = names[connection];
        room.handle_frame(*connection, &comment(&format!("{user} says"), 1), *now);
        tick_into(&mut room, now, &mut store);
        said.insert(user, room.last_seq());
    }
    (room, said, store)
}

/// `delete_comment` of `seq` by `by` as `role`.
fn delete_as(
    room: &mut Room,
    by: &str,
    role: Role,
    seq: u64,
    now_ms: u64,
) -> Result<AdminReply, AdminError> {
    let command = StaffCommand::DeleteComment { seq };
    let by = identity(by, role);
    room.admin(AdminCommand::Staff { by, command }, now_ms)
}

/// Staff remove their own comments and those of users below them, by the rule they mute
/// and ban by: a moderator neither the host's nor another moderator's (a connected
/// one), a host a moderator's, an admin anyone's. Before, any moderator removed anyone's.
#[test]
fn staff_remove_comments_of_those_below_them_only() {
    let mut now = 0;
    let (mut room, said, _) = staff_and_a_viewer_commenting(&[1, 2, 3, 4], &mut now);
    let delete =
        |room: &mut Room, by: &str, role: Role, seq: u64| delete_as(room, by, role, seq, now);
    for author in ["host", "mo2"] {
        assert_eq!(
            delete(&mut room, "mo", Role::Moderator, said[author]),
            Err(AdminError::Forbidden),
            "a moderator removing {author}'s comment"
        );
    }
    assert!(delete(&mut room, "mo", Role::Moderator, said["mo"]).is_ok());
    assert!(delete(&mut room, "mo", Role::Moderator, said["ana"]).is_ok());
    assert!(delete(&mut room, "host", Role::Host, said["mo2"]).is_ok());
    assert!(delete(&mut room, "ops", Role::Admin, said["host"]).is_ok());
}

/// A running mute or a ban is lifted or changed only by staff of the rank that imposed it
/// or above (an admin always), also after a restart: a moderator neither unmutes nor
/// unbans whom a host muted or banned, nor ends a host's mute early with a short one of
/// their own. Records of an older build (no rank) read as a moderator's. Before, any
/// moderator lifted a host's mute or ban.
#[test]
fn a_mute_or_ban_is_lifted_only_by_the_rank_that_imposed_it_or_above() {
    let mut now = 0;
    let mut store = BTreeMap::new();
    let mut room = Room::create(info(), 3, now);
    tick_into(&mut room, &mut now, &mut store);
    let staff = |room: &mut Room, by: &str, role: Role, command: StaffCommand, now: u64| {
        room.admin(
            AdminCommand::Staff {
                by: identity(by, role),
                command,
            },
            now,
        )
    };
    let mute = |user: &str, duration_ms: Option<u64>| StaffCommand::Mute {
        user: user.into(),
        duration_ms,
    };
    let unmute = |user: &str| StaffCommand::Unmute { user: user.into() };
    let ban = |user: &str| StaffCommand::Ban { user: user.into() };
    let unban = |user: &str| StaffCommand::Unban { user: user.into() };
    let host = ("host", Role::Host);
    let mo = ("mo", Role::Moderator);
    let mo2 = ("mo2", Role::Moderator);
    let admin = ("ops", Role::Admin);

    assert!(staff(&mut room, host.0, host.1, mute("ana", None), now).is_ok());
    assert!(staff(&mut room, host.0, host.1, ban("bob"), now).is_ok());
    assert!(staff(&mut room, mo.0, mo.1, mute("cy", None), now).is_ok());
    assert!(staff(
        &mut room,
        host.0,
        host.1,
        mute("dan", Some(MUTE_MS_MIN)),
        now
    )
    .is_ok());
    tick_into(&mut room, &mut now, &mut store);
    // Records an older build wrote: a mute's end alone, an empty ban.
    store.insert(
        "mute/eve".into(),
        postcard::to_allocvec(&None::<u64>).unwrap(),
    );
    store.insert("ban/fay".into(), Vec::new());

    for restarted in [false, true] {
        if restarted {
            room = Room::restore(store.clone(), now).unwrap().unwrap();
        }
        for command in [
            unmute("ana"),
            mute("ana", Some(MUTE_MS_MIN)),
            unban("bob"),
            ban("bob"),
        ] {
            assert_eq!(
                staff(&mut room, mo.0, mo.1, command.clone(), now),
                Err(AdminError::Forbidden),
                "a moderator's {command:?} of the host's (restarted: {restarted})"
            );
        }
        assert!(room.moderation.is_muted("ana", now));
        assert!(room.moderation.is_banned("bob"));
    }
    // The same rank or above, and a mute that ran out, are anyone's to change.
    assert!(staff(&mut room, mo2.0, mo2.1, unmute("cy"), now).is_ok());
    assert!(staff(&mut room, mo.0, mo.1, mute("dan", None), now).is_ok());
    assert!(staff(&mut room, mo.0, mo.1, unmute("eve"), now).is_ok());
    assert!(staff(&mut room, mo.0, mo.1, unban("fay"), now).is_ok());
    assert!(staff(&mut room, admin.0, admin.1, unmute("ana"), now).is_ok());
    assert!(staff(&mut room, host.0, host.1, unban("bob"), now).is_ok());
    // A record of neither format (an unknown rank, trailing bytes) is corrupt, never
    // read as an older build's record.
    for (key, value) in [
        ("mute/gus", vec![0, 9]),
        ("mute/gus", vec![0, 1, 7]),
        ("ban/hal", vec![9]),
        ("ban/hal", vec![1, 0]),
    ] {
        let mut bad = store.clone();
        bad.insert(key.into(), value.clone());
        assert!(Room::restore(bad, now).is_err(), "{key} {value:?}");
    }
}

/// The removal rule holds for staff comments older than the room's recent actions and for
/// authors not connected now: the room remembers who wrote its last
/// `STAFF_COMMENTS_REMEMBERED_MAX` staff comments, and as what. A viewer's old comment is
/// still anyone's on staff to remove; a number that is not a comment is `not_found` before
/// any rank is judged.
#[test]
fn staff_comments_keep_their_rank_past_the_recent_actions_and_their_authors_sockets() {
    let mut now = 0;
    let (mut room, said, mut store) = staff_and_a_viewer_commenting(&[1, 3, 4], &mut now);
    let reaction = frame_of(ClientFrame::Reaction {
        client_id: 2,
        kind: "wow".into(),
    });
    room.handle_frame(1, &reaction, now);
    tick(&mut room, &mut now);
    let hosts_reaction = room.last_seq();
    let delete =
        |room: &mut Room, seq: u64, now: u64| delete_as(room, "mo", Role::Moderator, seq, now);
    assert!(matches!(
        delete(&mut room, hosts_reaction, now),
        Err(AdminError::NotFound(_))
    ));
    // mo2 leaves; the host's and mo2's comments leave the recent actions.
    room.disconnect(3, now);
    now += RING_AGE_MS_MAX + 1_000;
    room.handle_frame(4, &reaction, now);
    tick_into(&mut room, &mut now, &mut store);
    assert!(room
        .actions_since(0, now)
        .0
        .iter()
        .all(|a| a.seq > said["ana"]));
    // Also after the room object restarted (hibernated, say), with no staff connected:
    // the authors are stored.
    let mut restarted = Room::restore(store.clone(), now).unwrap().unwrap();
    for room in [&mut room, &mut restarted] {
        for author in ["host", "mo2"] {
            assert_eq!(
                delete(room, said[author], now),
                Err(AdminError::Forbidden),
                "a moderator removing {author}'s comment of before"
            );
        }
        assert!(delete(room, said["ana"], now).is_ok());
    }
}

/// The staff comments remembered are bounded in storage as in memory: one past
/// `STAFF_COMMENTS_REMEMBERED_MAX`, the oldest's record is deleted, and a restored room
/// holds the newest ones.
#[test]
fn staff_comments_stored_are_the_newest_staff_comments_remembered_max() {
    let mut now = 0;
    let mut store = BTreeMap::new();
    let mut room = Room::create(info(), 3, now);
    join(&mut room, 1, "mo", Role::Moderator, now);
    tick_into(&mut room, &mut now, &mut store);
    let stored = |store: &BTreeMap<String, Vec<u8>>| {
        store
            .keys()
            .filter(|k| k.starts_with("staff_comment/"))
            .count()
    };
    let mut first = None;
    for n in 0..=STAFF_COMMENTS_REMEMBERED_MAX as u64 {
        room.handle_frame(1, &comment("staff says", n + 1), now);
        tick_into(&mut room, &mut now, &mut store);
        first.get_or_insert(room.last_seq());
        now += 1_000; // past the comment rate
    }
    assert_eq!(
        stored(&store),
        STAFF_COMMENTS_REMEMBERED_MAX,
        "one past: the oldest goes"
    );
    let restored = Room::restore(store.clone(), now).unwrap().unwrap();
    let first = first.unwrap();
    assert!(restored.moderation.staff_comment(first).is_none());
    assert_eq!(
        restored.moderation.staff_comment(room.last_seq()),
        Some(("mo", Role::Moderator))
    );
}

/// One moderator flooding the audit trail (twice its size of commands) pushes out only
/// their own entries: the host's and the other moderator's stay, the trail stays at its
/// bound, and what is stored reads back as the same trail.
#[test]
fn one_moderators_flood_pushes_out_only_their_own_audit_entries() {
    let mut now = 0;
    let mut store = BTreeMap::new();
    let mut room = Room::create(info(), 3, now);
    let run = |room: &mut Room, by: &str, role: Role, interval_ms: u64, now: u64| {
        let command = AdminCommand::Staff {
            by: identity(by, role),
            command: StaffCommand::SlowMode { interval_ms },
        };
        room.admin(command, now).unwrap();
    };
    for i in 0..3 {
        run(&mut room, "host", Role::Host, i, now);
    }
    run(&mut room, "mo2", Role::Moderator, 7, now);
    tick_into(&mut room, &mut now, &mut store);
    for i in 0..2 * AUDIT_ENTRIES_MAX as u64 {
        run(&mut room, "mo", Role::Moderator, i % 100, now);
        if i % 97 == 0 {
            tick_into(&mut room, &mut now, &mut store);
        }
    }
    run(&mut room, "mo2", Role::Moderator, 8, now);
    tick_into(&mut room, &mut now, &mut store);
    let by = |room: &Room, user: &str| room.audit_trail().filter(|e| e.by == user).count();
    assert_eq!(room.audit_trail().count(), AUDIT_ENTRIES_MAX);
    assert_eq!(by(&room, "host"), 3);
    assert_eq!(by(&room, "mo2"), 2);
    assert_eq!(by(&room, "mo"), AUDIT_ENTRIES_MAX - 5);
    let newest_of_mo: Vec<u64> = room
        .audit_trail()
        .filter(|e| e.by == "mo")
        .map(|e| e.n)
        .collect();
    assert_eq!(
        newest_of_mo.first(),
        Some(&(4 + 2 * AUDIT_ENTRIES_MAX as u64 - (AUDIT_ENTRIES_MAX as u64 - 5))),
        "mo keeps their newest entries"
    );
    let trail: Vec<AuditEntry> = room.audit_trail().cloned().collect();
    assert!(trail.windows(2).all(|w| w[0].n < w[1].n), "in order");
    let stored = store.keys().filter(|k| k.starts_with("audit/")).count();
    assert_eq!(
        stored, AUDIT_ENTRIES_MAX,
        "a dropped entry's record is deleted"
    );
    let restored = Room::restore(store, now).unwrap().unwrap();
    assert_eq!(restored.audit_trail().cloned().collect::<Vec<_>>(), trail);
}

/// Everything one staff member's sockets can write to the room (commands, part writes)
/// shares one allowance: five sockets sending 40 frames each at once get exactly
/// `STAFF_WRITES_BURST` through, the rest refused `rate_limited` with a wait; another
/// moderator's command and a viewer's comment still go through in the same tick, and
/// the allowance refills at `STAFF_WRITES_RATE_PER_S`.
#[test]
fn one_staff_members_sockets_share_one_allowance_of_commands_and_part_writes() {
    let mut now = 0;
    let mut store = BTreeMap::new();
    let mut room = Room::create(info(), 20, now);
    let sockets: Vec<ConnectionId> = (10..10 + USER_SOCKETS_PER_ROOM_MAX as u64).collect();
    for &socket in &sockets {
        join(&mut room, socket, "mo", Role::Moderator, now);
    }
    join(&mut room, 2, "mo2", Role::Moderator, now);
    join(&mut room, 3, "ana", Role::Viewer, now);
    tick_into(&mut room, &mut now, &mut store);
    let flood = |room: &mut Room, now: u64, round: u64| {
        for &socket in &sockets {
            for i in 0..FRAMES_BURST as u64 {
                let client_id = round * 100_000 + socket * 1_000 + i;
                let frame = if i % 2 == 0 {
                    command_frame(
                        serde_json::json!({"command": "slow_mode", "interval_ms": i}),
                        client_id,
                    )
                } else {
                    frame_of(ClientFrame::SetPart {
                        client_id,
                        name: format!("banner{}", i % 4),
                        value: format!("\"{i}\""),
                    })
                };
                room.handle_frame(socket, &frame, now);
            }
        }
    };
    flood(&mut room, now, 0);
    send_command(
        &mut room,
        2,
        serde_json::json!({"command": "slow_mode", "interval_ms": 0}),
        1,
        now,
    );
    room.handle_frame(3, &comment("still here", 1), now);
    let out = tick_into(&mut room, &mut now, &mut store);
    let count = |out: &Drained, pick: &dyn Fn(&Event) -> bool| -> usize {
        sockets
            .iter()
            .flat_map(|s| out.events.get(s).into_iter().flatten())
            .filter(|e| pick(e))
            .count()
    };
    let accepted = count(&out, &|e| matches!(e, Event::Ack { .. }));
    let limited = count(
        &out,
        &|e| matches!(e, Event::Error { code: ErrorCode::RateLimited, retry_after_ms, .. } if *retry_after_ms > 0),
    );
    assert_eq!(accepted, STAFF_WRITES_BURST as usize);
    assert_eq!(accepted + limited, sockets.len() * FRAMES_BURST as usize);
    assert!(out.events[&2]
        .iter()
        .any(|e| matches!(e, Event::Ack { client_id: 1, .. })));
    assert!(out.events[&3].iter().any(|e| matches!(
        e,
        Event::Ack {
            client_id: 1,
            seq: Some(_)
        }
    )));
    now += 1_000;
    flood(&mut room, now, 1);
    let out = tick_into(&mut room, &mut now, &mut store);
    assert_eq!(
        count(&out, &|e| matches!(e, Event::Ack { .. })),
        STAFF_WRITES_RATE_PER_S as usize,
        "a second later, a second's allowance"
    );
}
