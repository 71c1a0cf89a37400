//! Parts, admin input limits and restoring from storage (`parts.rs`, `store.rs`).

use super::*;

#[test]
fn viewers_cannot_set_parts_but_hosts_can() {
    let mut now = 0;
    let mut room = Room::create(info(), 1, now);
    join(&mut room, 1, "v", Role::Viewer, now);
    join(&mut room, 2, "host", Role::Host, now);
    let set = ClientFrame::SetPart {
        client_id: 1,
        name: "pinned".into(),
        value: r#"{"text":"hi"}"#.into(),
    }
    .encode();
    room.handle_frame(1, &set, now);
    room.handle_frame(2, &set, now);
    let out = tick(&mut room, &mut now);
    assert!(out.events[&1].iter().any(|e| matches!(
        e,
        Event::Error {
            code: ErrorCode::Forbidden,
            ..
        }
    )));
    assert_eq!(room.part("pinned").map(|p| p.0), Some(2));
    assert!(out.events[&1]
        .iter()
        .any(|e| matches!(e, Event::Part { name, version: 2, .. } if name == "pinned")));
}

/// A viewer reading a part at a version the part has moved on from gets the newest value
/// with its version (over pull, a part changing faster than a round trip was never
/// delivered: every read of it was 404); a version the room never had is still nothing.
#[test]
fn a_part_read_at_a_version_it_moved_on_from_answers_the_newest() {
    let mut now = 0;
    let mut room = Room::create(info(), 1, now);
    let set = |room: &mut Room, value: &str, now: &mut u64| {
        let put = AdminCommand::SetPart {
            name: "board".into(),
            value: value.into(),
        };
        room.admin(put, *now).expect("set");
        *now += 10;
    };
    set(&mut room, "[1]", &mut now);
    let (first, _) = room.part("board").expect("set");
    assert_eq!(room.part_read("board", first), PartRead::AtVersion("[1]"));
    set(&mut room, "[2]", &mut now);
    set(&mut room, "[3]", &mut now);
    let (newest, _) = room.part("board").expect("set");
    assert!(newest > first);
    assert_eq!(
        room.part_read("board", first),
        PartRead::Newer {
            version: newest,
            value: "[3]"
        }
    );
    assert_eq!(
        room.part_read("board", 0),
        PartRead::Newer {
            version: newest,
            value: "[3]"
        }
    );
    assert_eq!(room.part_read("board", newest), PartRead::AtVersion("[3]"));
    assert_eq!(room.part_read("board", newest + 1), PartRead::Missing);
    assert_eq!(room.part_read("board", u64::MAX), PartRead::Missing);
    assert_eq!(room.part_read("other", 1), PartRead::Missing);
}

#[test]
fn restore_from_storage_keeps_parts_actions_and_likes() {
    let mut now = 0;
    let mut room = Room::create(info(), 3, now);
    let mut store: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    apply(&drain(&mut room).stores, &mut store);
    join(&mut room, 1, "host", Role::Host, now);
    room.handle_frame(1, &comment("kept", 1), now);
    room.handle_frame(
        1,
        &ClientFrame::Like {
            client_id: 2,
            count: 7,
        }
        .encode(),
        now,
    );
    room.admin(
        AdminCommand::SetPart {
            name: "pinned".into(),
            value: "[1,2]".into(),
        },
        now,
    )
    .unwrap();
    apply(&tick(&mut room, &mut now).stores, &mut store);
    let restored = Room::restore(store.clone(), now).unwrap().unwrap();
    assert_eq!(restored.likes_total(), 7);
    assert_eq!(restored.last_seq(), 1);
    assert_eq!(restored.epoch(), 3);
    assert_eq!(restored.part("pinned"), room.part("pinned"));
    assert_eq!(restored.total_version(), room.total_version());
    assert!(Room::restore(Vec::new(), now).unwrap().is_none());
    // The host's own keys are passed over, whatever they hold.
    store.insert(format!("{HOST_KEY_PREFIX}tenant"), b"t".to_vec());
    store.insert(format!("{HOST_KEY_PREFIX}from-a-later-build"), vec![0xff]);
    let with_host_keys = Room::restore(store.clone(), now).unwrap().unwrap();
    assert_eq!(with_host_keys.last_seq(), 1);
    store.insert("weird".into(), vec![]);
    assert!(Room::restore(store, now).is_err());
}

/// A room restarted right after it acknowledged frames that take no sequence number (a
/// host's command, a viewer's product click and question) acknowledges their retries
/// again and applies none of them twice: the command does not run again, the click is not
/// counted again, the question not asked again. Before, only likes were remembered across
/// a restart. A direct message is delivered again (at least once: its id is stored only
/// with the tick, before the send, so a stored id could acknowledge an unsent message).
#[test]
fn a_restored_room_acknowledges_retried_commands_clicks_and_questions_without_applying_them() {
    let mut now = 0;
    let mut store = BTreeMap::new();
    let mut room = Room::create(info(), 3, now);
    apply(&drain(&mut room).stores, &mut store);
    join(&mut room, 1, "host", Role::Host, now);
    join(&mut room, 2, "ana", Role::Viewer, now);
    pin(&mut room, "red-1", now);
    tick_into(&mut room, &mut now, &mut store);
    let direct = frame_of(ClientFrame::Direct {
        client_id: 1,
        to_user: "ana".into(),
        payload: "\"hi\"".into(),
    });
    let announce = frame_of(ClientFrame::Command {
        client_id: 2,
        command: r#"{"command":"announce","text":"once"}"#.into(),
    });
    let click = frame_of(ClientFrame::ProductClick {
        client_id: 1,
        product_id: "red-1".into(),
    });
    let ask = frame_of(ClientFrame::Ask {
        client_id: 2,
        text: "once?".into(),
    });
    let send = |room: &mut Room, host, viewer, now| {
        room.handle_frame(host, &direct, now);
        room.handle_frame(host, &announce, now);
        room.handle_frame(viewer, &click, now);
        room.handle_frame(viewer, &ask, now);
    };
    let acks = |events: &[Event]| {
        let mut ids: Vec<u64> = events
            .iter()
            .filter_map(|e| match e {
                Event::Ack { client_id, .. } => Some(*client_id),
                _ => None,
            })
            .collect();
        ids.sort_unstable();
        ids
    };
    let directs = |events: &[Event]| {
        events
            .iter()
            .filter(|e| matches!(e, Event::Direct { .. }))
            .count()
    };
    send(&mut room, 1, 2, now);
    let out = tick_into(&mut room, &mut now, &mut store);
    assert_eq!(acks(&out.events[&1]), [1, 2], "{:?}", out.events[&1]);
    assert_eq!(acks(&out.events[&2]), [1, 2], "{:?}", out.events[&2]);
    assert_eq!(directs(&out.events[&2]), 1);
    let announcement = part_value(&out.events[&2], "announcement");
    assert!(announcement.is_some(), "{:?}", out.events[&2]);
    let version = room.total_version();
    let questions = room.qa.questions.len();
    assert_eq!(questions, 1);

    let mut restored = Room::restore(store, now).unwrap().unwrap();
    join(&mut restored, 11, "host", Role::Host, now);
    join(&mut restored, 12, "ana", Role::Viewer, now);
    tick(&mut restored, &mut now);
    send(&mut restored, 11, 12, now);
    let out = tick(&mut restored, &mut now);
    assert_eq!(acks(&out.events[&11]), [1, 2], "acknowledged again");
    assert_eq!(acks(&out.events[&12]), [1, 2], "acknowledged again");
    assert_eq!(
        restored.products.clicks["red-1"], 1,
        "the click counts once"
    );
    assert_eq!(restored.total_version(), version, "the command ran once");
    assert_eq!(
        restored.qa.questions.len(),
        questions,
        "the question is asked once"
    );
    assert_eq!(
        directs(&out.events[&12]),
        1,
        "a direct is delivered at least once"
    );
}

#[test]
fn every_admin_input_limit_takes_the_limit_and_refuses_one_past_it() {
    let admin = |command: AdminCommand| Room::create(info(), 1, 0).admin(command, 0);
    let broadcast = |bytes: usize| AdminCommand::Broadcast {
        from_user: "admin".into(),
        from_name: "Admin".into(),
        text: "b".repeat(bytes),
    };
    let direct = |bytes: usize| AdminCommand::Direct {
        from_user: "admin".into(),
        to_user: "ana".into(),
        payload: format!("\"{}\"", "d".repeat(bytes - 2)),
    };
    let part = |name: String, bytes: usize| AdminCommand::SetPart {
        name,
        value: format!("\"{}\"", "v".repeat(bytes - 2)),
    };
    for (limit, at_limit, one_past) in [
        (
            "SYSTEM_MESSAGE_BYTES_MAX",
            admin(broadcast(SYSTEM_MESSAGE_BYTES_MAX)),
            admin(broadcast(SYSTEM_MESSAGE_BYTES_MAX + 1)),
        ),
        (
            "DIRECT_PAYLOAD_BYTES_MAX",
            admin(direct(DIRECT_PAYLOAD_BYTES_MAX)),
            admin(direct(DIRECT_PAYLOAD_BYTES_MAX + 1)),
        ),
        (
            "PART_VALUE_BYTES_MAX",
            admin(part("p".into(), PART_VALUE_BYTES_MAX)),
            admin(part("p".into(), PART_VALUE_BYTES_MAX + 1)),
        ),
        (
            "PART_NAME_BYTES_MAX",
            admin(part("n".repeat(PART_NAME_BYTES_MAX), 2)),
            admin(part("n".repeat(PART_NAME_BYTES_MAX + 1), 2)),
        ),
    ] {
        assert!(at_limit.is_ok(), "{limit}: at the limit: {at_limit:?}");
        let refused = one_past.expect_err(limit);
        assert_eq!(refused.http_status(), 400, "{limit}: {refused:?}");
    }
    // PARTS_COUNT_MAX counts every part, the room's own included.
    let mut room = Room::create(info(), 1, 0);
    let mut added = 0;
    let refused = loop {
        match room.admin(part(format!("p{added}"), 2), 0) {
            Ok(_) => added += 1,
            Err(e) => break e,
        }
        assert!(added <= PARTS_COUNT_MAX, "parts past the limit");
    };
    assert_eq!(refused, AdminError::TooManyParts);
    assert_eq!(room.part_versions().count(), PARTS_COUNT_MAX);
    // A part already there may still change at the limit.
    assert!(room.admin(part("p0".into(), 3), 0).is_ok());
    // GIFT_CATALOG_ENTRIES_MAX: the host's catalog.
    let catalog = |entries: usize| (0..entries).map(|i| (format!("s{i}"), 1)).collect();
    assert!(room
        .set_gift_catalog(catalog(GIFT_CATALOG_ENTRIES_MAX))
        .is_ok());
    assert!(room
        .set_gift_catalog(catalog(GIFT_CATALOG_ENTRIES_MAX + 1))
        .is_err());
}

/// The part set on its own: versions from the total, readers brought up to date by name,
/// a shard's copy never going back.
#[test]
fn a_part_set_gives_each_set_the_next_total_version_and_tells_readers_what_is_newer() {
    let mut parts = PartSet::default();
    assert_eq!(parts.put("a".into(), "1".into()), 1);
    assert_eq!(parts.put("b".into(), "2".into()), 2);
    assert_eq!(parts.put("a".into(), "3".into()), 3);
    assert_eq!(parts.total_version(), 3);
    let names = |events: Vec<Event>| -> Vec<(String, u64)> {
        events
            .into_iter()
            .map(|e| match e {
                Event::Part { name, version, .. } => (name, version),
                other => panic!("{other:?}"),
            })
            .collect()
    };
    let none = |_: &str| None;
    assert_eq!(
        names(parts.newer_than(none).collect()),
        [("a".into(), 3), ("b".into(), 2)]
    );
    let holds_b = |name: &str| (name == "b").then_some(2);
    assert_eq!(
        names(parts.newer_than(holds_b).collect()),
        [("a".into(), 3)]
    );
    // A shard's copy: an older part or total changes nothing.
    let mut copy = PartSet::restored(
        2,
        [("a".into(), 1, "1".into()), ("b".into(), 2, "2".into())],
    );
    copy.apply_part("a", 3, "3");
    copy.apply_part("a", 1, "stale");
    copy.apply_total_version(1);
    assert_eq!(copy, parts);
}

#[test]
#[should_panic(expected = "part newer than the room")]
fn a_part_newer_than_its_total_is_a_broken_invariant() {
    let _ = PartSet::restored(1, [("a".into(), 2, "{}".into())]);
}

/// A room holds its own parts past `PARTS_COUNT_MAX` (a poll opened in a room full of app
/// parts): a viewer resuming with every part it was sent is welcomed, not closed `4400`
/// (its Hello was over the decode limit, and every reconnect of every viewer failed).
/// One part past `ROOM_PARTS_MAX` is refused.
#[test]
fn a_resume_listing_every_part_the_room_holds_is_welcomed() {
    let mut now = 0;
    let mut room = Room::create(info(), 9, now);
    let part = |name: String| AdminCommand::SetPart {
        name,
        value: "2".into(),
    };
    let mut added = 0;
    while room.admin(part(format!("p{added}")), now).is_ok() {
        added += 1;
    }
    room.admin(
        as_host(StaffCommand::CreatePoll {
            spec: poll_spec(2, 5_000),
        }),
        now,
    )
    .unwrap();
    let held: Vec<PartVersion> = room
        .part_versions()
        .map(|(name, version)| PartVersion {
            name: name.to_owned(),
            version,
        })
        .collect();
    assert!(
        held.len() > PARTS_COUNT_MAX,
        "the poll's part is past the app parts' cap"
    );
    let resume = |part_versions: Vec<PartVersion>| {
        Some(Resume {
            epoch: 9,
            action_cursor: 0,
            part_versions,
        })
    };
    room.connect(1, identity("a", Role::Viewer), LIFETIME_MS, now)
        .unwrap();
    room.handle_frame(1, &hello(resume(held)), now);
    let every: Vec<PartVersion> = (0..ROOM_PARTS_MAX)
        .map(|k| PartVersion {
            name: format!("q{k}"),
            version: 1,
        })
        .collect();
    room.connect(2, identity("b", Role::Viewer), LIFETIME_MS, now)
        .unwrap();
    room.handle_frame(2, &hello(resume(every.clone())), now);
    let mut one_past = every;
    one_past.push(PartVersion {
        name: "one-past".into(),
        version: 1,
    });
    room.connect(3, identity("c", Role::Viewer), LIFETIME_MS, now)
        .unwrap();
    room.handle_frame(3, &hello(resume(one_past)), now);
    let out = tick(&mut room, &mut now);
    for resumer in [1, 2] {
        assert!(
            matches!(out.events[&resumer].first(), Some(Event::Welcome(w)) if w.resumed),
            "{resumer}"
        );
    }
    assert_eq!(out.closes, vec![(3, CloseCode::BadFrame)]);
}

/// A part name starting with `__` is refused (`__proto__` replaced the prototype of the
/// SDK's parts object, standing in for every reserved part the room did not hold yet);
/// a name with `_` elsewhere is taken.
#[test]
fn a_part_named_like_a_javascript_internal_is_refused() {
    let mut room = Room::create(info(), 1, 0);
    for name in ["__proto__", "__x"] {
        let put = AdminCommand::SetPart {
            name: name.into(),
            value: r#"{"poll":{"id":"x","options":1}}"#.into(),
        };
        assert_eq!(
            room.admin(put, 0),
            Err(AdminError::InvalidPartName),
            "{name}"
        );
    }
    let put = AdminCommand::SetPart {
        name: "score_board".into(),
        value: "{}".into(),
    };
    assert!(room.admin(put, 0).is_ok());
}

/// A room stored before `__…` part names were refused wakes without them: no viewer's
/// Welcome, part read or state carries one (the SDK's parts object would take
/// `__proto__` for its prototype), while the room's other parts stay.
#[test]
fn a_stored_part_named_like_a_javascript_internal_is_not_served() {
    let mut now = 0;
    let mut room = Room::create(info(), 1, now);
    let mut store: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    room.admin(
        AdminCommand::SetPart {
            name: "score_board".into(),
            value: "{}".into(),
        },
        now,
    )
    .unwrap();
    apply(&tick(&mut room, &mut now).stores, &mut store);
    // What an older build stored for a moderator's `__proto__` part, and more such
    // parts than a room holds (the room took other parts in their places meanwhile).
    let at = room.total_version();
    apply(
        &[StorageOp::put_part("__proto__", at, r#"{"poll":{}}"#)],
        &mut store,
    );
    for n in 0..ROOM_PARTS_MAX {
        apply(
            &[StorageOp::put_part(&format!("__x{n}"), at, "{}")],
            &mut store,
        );
    }
    let mut restored = Room::restore(store.clone(), now).unwrap().unwrap();
    // The records go: the next restore reads none of them.
    apply(&drain(&mut restored).stores, &mut store);
    assert!(
        !store.keys().any(|key| key.starts_with("part/__")),
        "{:?}",
        store.keys().collect::<Vec<_>>()
    );
    assert!(restored.part("score_board").is_some());
    assert_eq!(restored.part("__proto__"), None);
    assert!(restored
        .part_versions()
        .all(|(name, _)| !name.starts_with("__")));
    join(&mut restored, 1, "viewer", Role::Viewer, now);
    let welcomed = tick(&mut restored, &mut now);
    let parts_sent: Vec<String> = welcomed.events[&1]
        .iter()
        .cloned()
        .filter_map(|event| match event {
            Event::Part { name, .. } => Some(name),
            _ => None,
        })
        .collect();
    assert!(
        parts_sent.contains(&"score_board".to_owned()),
        "{parts_sent:?}"
    );
    assert!(
        parts_sent.iter().all(|name| !name.starts_with("__")),
        "{parts_sent:?}"
    );
}
