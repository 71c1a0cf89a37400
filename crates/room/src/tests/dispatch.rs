//! Frames: direct messages, rate limits, bad frames, repeats acknowledged once, likes
//! (`dispatch.rs`).

use super::*;

#[test]
fn direct_messages_reach_every_connection_of_the_target_only() {
    let mut now = 0;
    let mut room = Room::create(info(), 1, now);
    join(&mut room, 1, "host", Role::Host, now);
    join(&mut room, 2, "t", Role::Viewer, now);
    join(&mut room, 3, "t", Role::Viewer, now);
    join(&mut room, 4, "other", Role::Viewer, now);
    tick(&mut room, &mut now);
    let direct = ClientFrame::Direct {
        client_id: 1,
        to_user: "t".into(),
        payload: r#"{"prize":1}"#.into(),
    };
    room.handle_frame(1, &direct.encode(), now);
    let out = tick(&mut room, &mut now);
    let got = |c| {
        out.events
            .get(&c)
            .into_iter()
            .flatten()
            .any(|e| matches!(e, Event::Direct { .. }))
    };
    assert!(got(2) && got(3));
    assert!(!got(1) && !got(4));
    // A viewer may not send one.
    room.handle_frame(4, &direct.encode(), now);
    let out = tick(&mut room, &mut now);
    assert!(out.events[&4].iter().any(|e| matches!(
        e,
        Event::Error {
            code: ErrorCode::Forbidden,
            ..
        }
    )));
    assert!(!out.events.contains_key(&2));
    // To a user with no connection here: refused, not acknowledged as delivered.
    let nobody = ClientFrame::Direct {
        client_id: 2,
        to_user: "gone".into(),
        payload: r#"{"prize":2}"#.into(),
    };
    room.handle_frame(1, &nobody.encode(), now);
    let out = tick(&mut room, &mut now);
    assert_eq!(error_codes(&out.events[&1]), [ErrorCode::NotFound]);
    assert!(!out.events[&1]
        .iter()
        .any(|e| matches!(e, Event::Ack { client_id: 2, .. })));
}

#[test]
fn comment_rate_limit_answers_with_an_error_and_retry_hint() {
    let mut now = 0;
    let mut room = Room::create(info(), 1, now);
    join(&mut room, 1, "a", Role::Viewer, now);
    for i in 0..4 {
        room.handle_frame(1, &comment("spam", i), now);
    }
    let out = tick(&mut room, &mut now);
    let errors: Vec<_> = out.events[&1]
        .iter()
        .filter_map(|e| match e {
            Event::Error {
                client_id,
                code,
                retry_after_ms,
                ..
            } => Some((*client_id, *code, *retry_after_ms)),
            _ => None,
        })
        .collect();
    assert_eq!(errors, vec![(Some(3), ErrorCode::RateLimited, 1000)]);
    assert_eq!(actions(&out.events[&1]), vec![1, 2, 3]);
}

#[test]
fn garbage_and_oversized_frames_close_with_documented_codes() {
    let mut now = 0;
    let mut room = Room::create(info(), 1, now);
    join(&mut room, 1, "a", Role::Viewer, now);
    join(&mut room, 2, "b", Role::Viewer, now);
    join(&mut room, 3, "c", Role::Viewer, now);
    room.handle_frame(1, &[0xff, 0xff, 0xff], now);
    room.handle_frame(2, &vec![0; CLIENT_FRAME_BYTES_MAX + 1], now);
    let out = tick(&mut room, &mut now);
    assert_eq!(
        out.closes,
        vec![(1, CloseCode::BadFrame), (2, CloseCode::FrameTooLarge)]
    );
    room.handle_frame(3, &comment("still here", 1), now);
    let out = tick(&mut room, &mut now);
    assert_eq!(actions(&out.events[&3]), vec![1]);
}

#[test]
fn frames_retried_after_a_reconnect_are_acknowledged_not_applied_twice() {
    let mut now = 0;
    let mut room = Room::create(info(), 1, now);
    let mut store: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    apply(&drain(&mut room).stores, &mut store);
    join(&mut room, 1, "ana", Role::Viewer, now);
    room.handle_frame(1, &comment("once", 77), now);
    let like = ClientFrame::Like {
        client_id: 78,
        count: 3,
    }
    .encode();
    room.handle_frame(1, &like, now);
    apply(&tick(&mut room, &mut now).stores, &mut store);
    // The acks were lost with the socket; the client retries on a new connection.
    room.disconnect(1, now);
    join(&mut room, 2, "ana", Role::Viewer, now);
    room.handle_frame(2, &comment("once", 77), now);
    room.handle_frame(2, &like, now);
    let out = tick(&mut room, &mut now);
    apply(&out.stores, &mut store);
    let events = &out.events[&2];
    assert!(events.contains(&Event::Ack {
        client_id: 77,
        seq: Some(1)
    }));
    assert!(events.contains(&Event::Ack {
        client_id: 78,
        seq: None
    }));
    assert_eq!(room.last_seq(), 1, "the retried comment was not appended");
    assert_eq!(room.likes_total(), 3, "the retried likes were not counted");
    assert_eq!(room.stats().retries_acknowledged, 2);
    // Another user's identical client id is a different action.
    join(&mut room, 3, "bob", Role::Viewer, now);
    room.handle_frame(3, &comment("mine", 77), now);
    apply(&tick(&mut room, &mut now).stores, &mut store);
    assert_eq!(room.last_seq(), 2);
    // After a restart, the stored ring still knows ana's comment, and the stored like
    // frames of the last tick with likes her like.
    let mut restored = Room::restore(store.clone(), now).unwrap().unwrap();
    join(&mut restored, 4, "ana", Role::Viewer, now);
    restored.handle_frame(4, &comment("once", 77), now);
    restored.handle_frame(4, &like, now);
    let out = tick(&mut restored, &mut now);
    assert!(out.events[&4].contains(&Event::Ack {
        client_id: 77,
        seq: Some(1)
    }));
    assert!(out.events[&4].contains(&Event::Ack {
        client_id: 78,
        seq: None
    }));
    assert_eq!(restored.last_seq(), 2);
    assert_eq!(
        restored.likes_total(),
        3,
        "a like retried across a restart is not counted twice"
    );
}

/// A resumed client resends everything unacknowledged at once: repeats are answered
/// before the per-connection frame rate, so one already applied is acknowledged, never
/// refused for the rate (which would make the client count it again).
#[test]
fn a_burst_of_repeats_is_acknowledged_not_refused_for_the_frame_rate() {
    let mut now = 0;
    let mut room = Room::create(info(), 1, now);
    drain(&mut room);
    join(&mut room, 1, "ana", Role::Viewer, now);
    let like = |client_id| like_frame(client_id, 1);
    // Within the user's recent ids and under the like rate, spread out in time.
    let sent: Vec<u64> = (1..RECENT_UNSEQUENCED_IDS_PER_USER_MAX as u64).collect();
    for &id in &sent {
        now += 1_000 / u64::from(FRAMES_RATE_PER_S) + 1;
        room.handle_frame(1, &like(id), now);
        tick(&mut room, &mut now);
    }
    let total = room.likes_total();
    // The acks were lost; a new socket resends them all at once, more than the burst.
    room.disconnect(1, now);
    join(&mut room, 2, "ana", Role::Viewer, now);
    assert!(
        sent.len() > FRAMES_BURST as usize,
        "more repeats than the frame burst"
    );
    for &id in &sent {
        room.handle_frame(2, &like(id), now);
    }
    let out = tick(&mut room, &mut now);
    let events = &out.events[&2];
    for &id in &sent {
        assert!(
            events.contains(&Event::Ack {
                client_id: id,
                seq: None
            }),
            "repeat {id} acknowledged: {events:?}"
        );
    }
    assert!(error_codes(events).is_empty(), "{events:?}");
    assert_eq!(room.likes_total(), total, "nothing counted twice");
}

#[test]
fn every_per_user_bucket_refuses_one_past_its_burst() {
    // `burst + 1` frames in one instant from one user, spread over as many of the user's
    // sockets as keep each within FRAMES_BURST (DIRECT_BURST is larger than it).
    let burst_of = |frame: &dyn Fn(u64) -> ClientFrame, burst: u32, role: Role| {
        let mut room = Room::create(info(), 1, 0);
        // Each socket's Hello took one of its frames.
        let per_socket = u64::from(FRAMES_BURST - 1);
        let sockets = u64::from(burst + 1).div_ceil(per_socket).max(1);
        assert!(sockets <= USER_SOCKETS_PER_ROOM_MAX as u64);
        for id in 1..=sockets {
            join(&mut room, id, "ana", role, 0);
        }
        join(&mut room, 99, "bob", Role::Viewer, 0);
        room.set_gift_catalog([("rose".to_owned(), 1)].into())
            .unwrap();
        drain(&mut room);
        for client_id in 1..=u64::from(burst) + 1 {
            let socket = 1 + (client_id - 1) / per_socket;
            room.handle_frame(socket, &frame(client_id).encode(), 0);
        }
        let out = tick(&mut room, &mut 0);
        let refusals: Vec<ErrorCode> = (1..=sockets)
            .filter_map(|id| out.events.get(&id))
            .flat_map(|e| error_codes(e))
            .collect();
        (refusals, out.charges.len())
    };
    type FrameOf = Box<dyn Fn(u64) -> ClientFrame>;
    let cases: [(&str, FrameOf, u32, Role); 4] = [
        (
            "COMMENT_BURST",
            Box::new(|c| ClientFrame::Comment {
                client_id: c,
                text: "hi".into(),
            }),
            COMMENT_BURST,
            Role::Viewer,
        ),
        (
            "REACTION_BURST",
            Box::new(|c| ClientFrame::Reaction {
                client_id: c,
                kind: "🔥".into(),
            }),
            REACTION_BURST,
            Role::Viewer,
        ),
        (
            "DIRECT_BURST",
            Box::new(|c| ClientFrame::Direct {
                client_id: c,
                to_user: "bob".into(),
                payload: "{}".into(),
            }),
            DIRECT_BURST,
            Role::Host,
        ),
        (
            "GIFT_BURST",
            Box::new(|c| ClientFrame::Gift {
                client_id: c,
                gift_id: format!("g{c}"),
                sku: "rose".into(),
                qty: 1,
            }),
            GIFT_BURST,
            Role::Viewer,
        ),
    ];
    for (limit, frame, burst, role) in cases {
        let (refusals, _) = burst_of(&*frame, burst, role);
        assert_eq!(refusals, [ErrorCode::RateLimited], "{limit}");
    }
    // LIKES_BURST counts likes, not frames: the burst's worth is taken, one more is not.
    let like = |count: u32| {
        move |c: u64| ClientFrame::Like {
            client_id: c,
            count,
        }
    };
    let (refusals, _) = burst_of(&like(LIKES_BURST), 0, Role::Viewer);
    assert!(refusals.is_empty(), "{refusals:?}");
    // One like past the burst (a frame carries at most LIKE_COUNT_PER_FRAME_MAX, the
    // burst: the one more comes in a second frame).
    let one_more = |c: u64| ClientFrame::Like {
        client_id: c,
        count: if c == 1 { LIKES_BURST } else { 1 },
    };
    let (refusals, _) = burst_of(&one_more, 1, Role::Viewer);
    assert_eq!(refusals, [ErrorCode::RateLimited], "LIKES_BURST");
    // FRAMES_BURST: any frame, per connection.
    let ping = |_: u64| ClientFrame::Ping { client_time_ms: 0 };
    let mut room = Room::create(info(), 1, 0);
    join(&mut room, 1, "ana", Role::Viewer, 0);
    drain(&mut room);
    // The Hello took one frame of the burst.
    for _ in 0..FRAMES_BURST {
        room.handle_frame(1, &ping(0).encode(), 0);
    }
    let out = tick(&mut room, &mut 0);
    assert_eq!(
        error_codes(&out.events[&1]),
        [ErrorCode::RateLimited],
        "FRAMES_BURST"
    );
}

/// A user's last `RECENT_UNSEQUENCED_IDS_PER_USER_MAX` accepted like frames are remembered: a
/// retry of the oldest of them is acknowledged, not applied again; once one more newer
/// frame is accepted, the oldest is forgotten (a retry of it counts as new).
#[test]
fn a_users_recent_client_ids_keep_the_last_max_and_forget_the_oldest() {
    let mut now = 0;
    let mut room = Room::create(info(), 1, now);
    drain(&mut room);
    join(&mut room, 1, "ana", Role::Viewer, now);
    let like = |client_id| like_frame(client_id, 1);
    let send = |room: &mut Room, now: &mut u64, id: u64| {
        *now += 1_000 / u64::from(FRAMES_RATE_PER_S) + 1;
        room.handle_frame(1, &like(id), *now);
        tick(room, now)
    };
    for id in 1..=RECENT_UNSEQUENCED_IDS_PER_USER_MAX as u64 {
        send(&mut room, &mut now, id);
    }
    let total = room.likes_total();
    assert_eq!(total, RECENT_UNSEQUENCED_IDS_PER_USER_MAX as u64);
    // At the limit, the oldest is still known.
    let out = send(&mut room, &mut now, 1);
    assert!(out.events[&1].contains(&Event::Ack {
        client_id: 1,
        seq: None
    }));
    assert_eq!(room.likes_total(), total, "the repeat is not counted");
    // One past: id 1, the oldest, goes; id 2 is still known.
    send(
        &mut room,
        &mut now,
        RECENT_UNSEQUENCED_IDS_PER_USER_MAX as u64 + 1,
    );
    assert_eq!(room.likes_total(), total + 1);
    send(&mut room, &mut now, 2);
    assert_eq!(room.likes_total(), total + 1, "id 2 is still known");
    send(&mut room, &mut now, 1);
    assert_eq!(
        room.likes_total(),
        total + 2,
        "the forgotten id counts as new"
    );
}

/// A comment whose ack was lost is recognised on its retry even after its user's rate
/// buckets, and the recent client ids in them, were evicted (past `RATE_BUCKETS_MAX`
/// users touching the room; a connect refused for a full room makes buckets too): the
/// ring knows the client id of each action it keeps. Before, the retry was posted again,
/// a duplicate every viewer saw. Once the ring no longer keeps it, the id is forgotten.
#[test]
fn a_comment_retried_after_its_users_buckets_were_evicted_is_not_posted_twice() {
    let mut now = 0;
    let mut room = Room::create(info(), 1, now);
    drain(&mut room);
    join(&mut room, 1, "ana", Role::Viewer, now);
    room.handle_frame(1, &comment("once", 7), now);
    tick(&mut room, &mut now);
    let seq = room.last_seq();
    room.disconnect(1, now);
    // Other users touch the room, one a millisecond (the least recently used go first).
    let crowd = |room: &mut Room, now: &mut u64, from: u64| {
        for i in from..from + RATE_BUCKETS_MAX as u64 {
            *now += 1;
            let id = 10 + i;
            let user = identity(&format!("u{i}"), Role::Viewer);
            if room.connect(id, user, LIFETIME_MS, *now).is_ok() {
                room.disconnect(id, *now);
            }
        }
    };
    crowd(&mut room, &mut now, 0);
    assert!(now < RING_AGE_MS_MAX, "the ring still keeps the comment");
    assert!(!room.connections.has_buckets("ana"), "evicted");
    join(&mut room, 2, "ana", Role::Viewer, now);
    room.handle_frame(2, &comment("once", 7), now);
    let out = tick(&mut room, &mut now);
    assert!(
        out.events[&2].contains(&Event::Ack {
            client_id: 7,
            seq: Some(seq)
        }),
        "{:?}",
        out.events[&2]
    );
    assert_eq!(room.last_seq(), seq, "not posted twice");

    // Past the ring's age, and evicted again: a new comment under the same id.
    room.disconnect(2, now);
    now += RING_AGE_MS_MAX + 1_000;
    crowd(&mut room, &mut now, RATE_BUCKETS_MAX as u64);
    let (kept, _) = room.actions_since(0, now);
    assert!(kept.is_empty(), "the ring let go of it");
    join(&mut room, 3, "ana", Role::Viewer, now);
    room.handle_frame(3, &comment("again", 7), now);
    tick(&mut room, &mut now);
    assert_eq!(room.last_seq(), seq + 1);
}

/// A comment whose ack was lost is recognised when it is sent again, however many likes
/// the same user's other device sent meanwhile: likes are forgotten before sequenced
/// actions. Then one past the bound of sequenced ids: a viewer's
/// `RECENT_SEQUENCED_IDS_PER_USER_MAX` newer comments and reactions forget the oldest.
#[test]
fn a_users_likes_on_another_device_never_push_out_a_comment_awaiting_its_retry() {
    let mut now = 0;
    let mut room = Room::create(info(), 1, now);
    drain(&mut room);
    join(&mut room, 1, "ana", Role::Viewer, now);
    join(&mut room, 2, "ana", Role::Viewer, now);
    room.handle_frame(1, &comment("once", 7), now);
    tick(&mut room, &mut now);
    let seq = room.last_seq();
    // Ana's phone likes at the SDK's pace while her laptop reconnects.
    for id in 1..=4 * RECENT_UNSEQUENCED_IDS_PER_USER_MAX as u64 {
        now += 1_000 / u64::from(FRAMES_RATE_PER_S) + 1;
        room.handle_frame(2, &like_frame(1_000 + id, 1), now);
        tick(&mut room, &mut now);
    }
    room.disconnect(1, now);
    join(&mut room, 3, "ana", Role::Viewer, now);
    room.handle_frame(3, &comment("once", 7), now);
    let out = tick(&mut room, &mut now);
    assert!(
        out.events[&3].contains(&Event::Ack {
            client_id: 7,
            seq: Some(seq)
        }),
        "{:?}",
        out.events[&3]
    );
    assert_eq!(room.last_seq(), seq, "not applied twice");

    // Sequenced frames: the limit of them is remembered, and one more forgets the oldest
    // (comment 7). Comments at their rate, one a second.
    for id in 1..RECENT_SEQUENCED_IDS_PER_USER_MAX as u64 {
        now += 1_000;
        room.handle_frame(3, &comment("more", 100 + id), now);
        tick(&mut room, &mut now);
    }
    let last = room.last_seq();
    assert_eq!(last, seq + RECENT_SEQUENCED_IDS_PER_USER_MAX as u64 - 1);
    now += 1_000;
    room.handle_frame(3, &comment("once", 7), now);
    tick(&mut room, &mut now);
    assert_eq!(
        room.last_seq(),
        last,
        "at the limit, comment 7 is still known"
    );
    now += 1_000;
    room.handle_frame(3, &comment("more", 99), now);
    tick(&mut room, &mut now);
    now += 1_000;
    room.handle_frame(3, &comment("once", 7), now);
    tick(&mut room, &mut now);
    assert_eq!(
        room.last_seq(),
        last + 2,
        "one past: the oldest is forgotten"
    );
}

/// `LIKE_COUNT_PER_FRAME_MAX` likes in one frame are taken; one more is refused
/// `invalid` and nothing of it is counted.
#[test]
fn a_like_frame_takes_like_count_per_frame_max_and_refuses_one_past() {
    let mut now = 0;
    let mut room = Room::create(info(), 1, now);
    join(&mut room, 1, "ana", Role::Viewer, now);
    join(&mut room, 2, "bob", Role::Viewer, now);
    let like = like_frame;
    room.handle_frame(1, &like(1, LIKE_COUNT_PER_FRAME_MAX), now);
    room.handle_frame(2, &like(1, LIKE_COUNT_PER_FRAME_MAX + 1), now);
    let out = tick(&mut room, &mut now);
    assert_eq!(room.likes_total(), u64::from(LIKE_COUNT_PER_FRAME_MAX));
    assert!(error_codes(&out.events[&1]).is_empty());
    assert_eq!(error_codes(&out.events[&2]), [ErrorCode::Invalid]);
}

/// The like frames stored with one tick's total stop at
/// `LIKE_FRAMES_STORED_PER_TICK_MAX`: the record stays bounded (the frames past it are
/// counted, only not remembered across a restart).
#[test]
fn like_frames_stored_per_tick_stop_at_their_limit() {
    let mut now = 0;
    let mut room = Room::create(info(), 1, now);
    drain(&mut room);
    let users = LIKE_FRAMES_STORED_PER_TICK_MAX + 1;
    for u in 0..users as u64 {
        join(&mut room, 100 + u, &format!("u{u}"), Role::Viewer, now);
    }
    tick(&mut room, &mut now);
    now += 10_000; // a quiet room: the likes all go in the next flush
    for u in 0..users as u64 {
        let like = ClientFrame::Like {
            client_id: 1,
            count: 1,
        }
        .encode();
        room.handle_frame(100 + u, &like, now);
    }
    room.handle_timeout(now);
    let out = drain(&mut room);
    assert_eq!(room.likes_total(), users as u64, "every like counted");
    let stored: Vec<(String, u64)> = out
        .stores
        .iter()
        .find_map(|op| match op {
            StorageOp::Put { key, value } if key == "likes_last" => {
                Some(postcard::from_bytes(value).unwrap())
            }
            _ => None,
        })
        .expect("the like frames are stored with the total");
    assert_eq!(stored.len(), LIKE_FRAMES_STORED_PER_TICK_MAX);
}

/// A tick whose broadcasts fill a viewer's outbox (`OUTBOX_EVENTS_MAX`) still carries the
/// answers to the viewer's own frames, up to `OUTBOX_ANSWERS_PAST_MAX`: a comment the
/// room took is acknowledged, not left to time out. One answer past that bound is
/// dropped (a client resending without end only loses its own answers).
#[test]
fn a_full_outbox_still_carries_the_answers_to_the_viewers_own_frames() {
    let mut now = 0;
    let mut room = Room::create(info(), 1, now);
    drain(&mut room);
    join(&mut room, 1, "ana", Role::Viewer, now);
    tick(&mut room, &mut now);
    for _ in 0..OUTBOX_EVENTS_MAX {
        room.enqueue(1, Event::Online { count: 1 }, now);
    }
    room.handle_frame(1, &comment("still heard", 7), now);
    let out = tick(&mut room, &mut now);
    assert!(
        out.events[&1]
            .iter()
            .any(|e| matches!(e, Event::Ack { client_id: 7, .. })),
        "the comment is acknowledged"
    );
    for _ in 0..OUTBOX_EVENTS_MAX {
        room.enqueue(1, Event::Online { count: 1 }, now);
    }
    let answers = (0..=OUTBOX_ANSWERS_PAST_MAX as u64)
        .map(|client_id| Event::Ack {
            client_id,
            seq: None,
        })
        .collect::<Vec<_>>();
    for answer in answers {
        room.enqueue(1, answer, now);
    }
    let out = tick(&mut room, &mut now);
    let acks = out.events[&1]
        .iter()
        .filter(|e| matches!(e, Event::Ack { .. }))
        .count();
    assert_eq!(
        acks, OUTBOX_ANSWERS_PAST_MAX,
        "one past the bound is dropped"
    );
}

/// The heartbeat reaching the room (the runtime's auto-response did not answer it) is a
/// sign of life answered with its reply, never a close: the SDK ends its session at
/// `4415`. Any other text is closed `4415`.
#[test]
fn a_heartbeat_reaching_the_room_is_answered_and_other_text_closes() {
    let mut now = 0;
    let mut room = Room::create(info(), 1, now);
    join(&mut room, 1, "ana", Role::Viewer, now);
    join(&mut room, 2, "bo", Role::Viewer, now);
    let _ = tick(&mut room, &mut now);
    assert_eq!(
        room.handle_text(1, HEARTBEAT_TEXT, now),
        Some(HEARTBEAT_REPLY_TEXT)
    );
    assert_eq!(room.handle_text(2, "hello", now), None);
    let out = tick(&mut room, &mut now);
    assert_eq!(out.closes, vec![(2, CloseCode::TextNotSupported)]);
    assert_eq!(room.handle_text(2, HEARTBEAT_TEXT, now), None, "closed");
}

/// One frame sent again without end (each a repeat, answered with its first answer) no
/// longer gets past the frame rate: after `FRAMES_REPEATED_BURST` repeats they cost
/// frames, then refusals, and past those the socket is closed `4005` (a resumed client's
/// burst of repeats stays answered:
/// `a_burst_of_repeats_is_acknowledged_not_refused_for_the_frame_rate`). The same on a
/// big room's shard.
#[test]
fn a_socket_repeating_one_frame_without_end_is_closed() {
    // All of the repeats' bucket, the frame burst and the refusals, give or take the
    // frames the set-up took and refilled.
    let most = (FRAMES_REPEATED_BURST + FRAMES_BURST + FRAMES_REFUSED_BURST) as usize;
    let least = (FRAMES_REPEATED_BURST + FRAMES_REFUSED_BURST) as usize;
    let mut now = 0;
    let mut room = Room::create(info(), 1, now);
    join(&mut room, 1, "ana", Role::Viewer, now);
    room.handle_frame(1, &like_frame(1, 1), now);
    tick(&mut room, &mut now);
    let mut repeats = 0;
    let closes = loop {
        room.handle_frame(1, &like_frame(1, 1), now);
        repeats += 1;
        let closes = drain(&mut room).closes;
        if !closes.is_empty() || repeats > 2 * most {
            break closes;
        }
    };
    assert_eq!(closes, [(1, CloseCode::TooManyFrames)]);
    assert!(
        (least..=most).contains(&repeats),
        "closed at repeat {repeats}"
    );
    assert_eq!(room.likes_total(), 1, "counted once");
    // Sustained: repeats take about as much as other frames (`FRAMES_REPEATED_PER_S`
    // and the frame and refusal rates): 55 a second is closed within 30 s, 35 never.
    let repeating_at = |per_s: u64| {
        let mut room = Room::create(info(), 1, 0);
        join(&mut room, 1, "ana", Role::Viewer, 0);
        room.handle_frame(1, &like_frame(1, 1), 0);
        let mut now = 0;
        tick(&mut room, &mut now);
        for n in 0..30 * per_s {
            let at = now + n * 1_000 / per_s;
            room.handle_frame(1, &like_frame(1, 1), at);
            if !drain(&mut room).closes.is_empty() {
                return true;
            }
        }
        false
    };
    assert!(repeating_at(55), "55 repeats a second are closed");
    assert!(!repeating_at(35), "35 repeats a second are not");

    let mut shard = shard_with_state(now);
    join_shard(&mut shard, 4, now);
    shard.handle_frame(4, &like_frame(1, 1), now);
    now += TICK_MS;
    shard.handle_timeout(now);
    while shard.poll_output().is_some() {}
    let mut repeats = 0;
    let closes = loop {
        shard.handle_frame(4, &like_frame(1, 1), now);
        repeats += 1;
        let closes = shard_closes(&mut shard);
        if !closes.is_empty() || repeats > 2 * most {
            break closes;
        }
    };
    assert_eq!(closes, [(4, CloseCode::TooManyFrames)]);
    assert!(
        (least..=most).contains(&repeats),
        "shard: closed at repeat {repeats}"
    );
}

/// A socket that goes on sending past its frame rate, ignoring the refusals, is closed
/// `4005` past `FRAMES_REFUSED_BURST` of them, refilled at the frame rate (each one was
/// decoded and answered by the room: a client ignoring them made it work without end);
/// an SDK sending all it holds at once is never closed. The same on a big room's shard.
#[test]
fn a_socket_that_keeps_sending_past_its_frame_rate_is_closed() {
    let now = 0;
    let ping = ClientFrame::Ping { client_time_ms: 1 }.encode();
    let mut room = Room::create(info(), 1, now);
    join(&mut room, 1, "ana", Role::Viewer, now);
    join(&mut room, 2, "bob", Role::Viewer, now);
    drain(&mut room);
    // The Hello took one frame of the burst.
    let past_rate = FRAMES_BURST - 1 + FRAMES_REFUSED_BURST;
    for _ in 0..past_rate {
        room.handle_frame(1, &ping, now);
    }
    // An SDK's worst: everything it may hold, and a few more, at once.
    for _ in 0..CLIENT_ACTIONS_PENDING_MAX + 8 {
        room.handle_frame(2, &ping, now);
    }
    let closes = drain(&mut room).closes;
    assert!(closes.is_empty(), "refused, not closed: {closes:?}");
    room.handle_frame(1, &ping, now);
    assert_eq!(drain(&mut room).closes, [(1, CloseCode::TooManyFrames)]);
    // The refusals refill at the frame rate: a client sending at twice it is refused
    // half the time, never closed.
    let mut at = now + 10_000;
    for _ in 0..1_000 {
        at += 1_000 / u64::from(2 * FRAMES_RATE_PER_S);
        room.handle_frame(2, &ping, at);
    }
    assert!(drain(&mut room).closes.is_empty());

    let mut shard = shard_with_state(now);
    join_shard(&mut shard, 4, now);
    while shard.poll_output().is_some() {}
    for _ in 0..=past_rate {
        shard.handle_frame(4, &ping, now);
    }
    let closes = shard_closes(&mut shard);
    assert_eq!(closes, [(4, CloseCode::TooManyFrames)]);
}
