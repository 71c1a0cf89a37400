//! Shards: the socket cap and Hello deadline on a shard, shard counts, relay batch limits
//! (`shard.rs`, `sharding.rs`).

use super::*;

#[test]
fn a_shard_keeps_the_per_user_socket_cap_and_the_hello_deadline() {
    let now = 0;
    let mut shard = Shard::new(0, 1, now);
    for id in 1..=USER_SOCKETS_PER_ROOM_MAX as u64 {
        shard
            .connect(id, identity("greedy", Role::Viewer), LIFETIME_MS, now)
            .unwrap();
    }
    assert_eq!(
        shard.connect(99, identity("greedy", Role::Viewer), LIFETIME_MS, now),
        Err(CloseCode::TooManySockets)
    );
    shard
        .connect(100, identity("other", Role::Viewer), LIFETIME_MS, now)
        .unwrap();
    assert_eq!(shard.online(), 0, "no socket said Hello");
    // Hello arrives for one (it waits for the room's state); the others stay silent.
    shard.handle_frame(100, &hello(None), now + 10);
    shard.handle_timeout(now + HELLO_DEADLINE_MS);
    let mut closed = Vec::new();
    while let Some(output) = shard.poll_output() {
        if let ShardOutput::Close { connection, code } = output {
            closed.push((connection, code));
        }
    }
    let silent: Vec<_> = (1..=USER_SOCKETS_PER_ROOM_MAX as u64)
        .map(|id| (id, CloseCode::HelloTimeout))
        .collect();
    assert_eq!(closed, silent);
    assert_eq!(shard.connection_ids().collect::<Vec<_>>(), vec![100]);
    // The silent sockets are gone: the user may open new ones.
    shard
        .connect(101, identity("greedy", Role::Viewer), LIFETIME_MS, now)
        .unwrap();
}

#[test]
fn shard_counts_stop_at_shards_per_room_max_and_shard_counts_max() {
    let mut room = Room::create(info(), 1, 0);
    let set = |room: &mut Room, shards: u16| {
        let result = room.admin(AdminCommand::SetShards { shards }, 0);
        while room.poll_output().is_some() {}
        result
    };
    let mut widest = Room::create(info(), 1, 0);
    set(&mut widest, SHARDS_PER_ROOM_MAX).expect("SHARDS_PER_ROOM_MAX is taken");
    // Out of range is bad input, 400; fewer than the room has, a conflict, 409.
    for out_of_range in [0, SHARDS_PER_ROOM_MAX + 1, u16::MAX] {
        let refused = set(&mut room, out_of_range).unwrap_err();
        assert_eq!(refused.http_status(), 400, "{out_of_range}: {refused:?}");
    }
    assert_eq!(set(&mut widest, 2).unwrap_err().http_status(), 409);
    for change in 1..=SHARD_COUNTS_MAX as u16 {
        set(&mut room, change).unwrap_or_else(|e| panic!("change {change}: {e:?}"));
    }
    let refused = set(&mut room, SHARD_COUNTS_MAX as u16 + 1).unwrap_err();
    assert_eq!(refused.http_status(), 409, "{refused:?}");
    assert!(set(&mut room, SHARDS_PER_ROOM_MAX).is_err());
}

#[test]
fn a_shard_gives_a_long_silent_socket_s_place_to_its_user_s_new_socket() {
    let mut shard = Shard::new(0, 1, 0);
    let tabs = USER_SOCKETS_PER_ROOM_MAX as u64;
    for id in 1..=tabs {
        shard
            .connect(id, identity("flaky", Role::Viewer), LIFETIME_MS, 0)
            .unwrap();
        shard.handle_frame(id, &hello(None), 0);
    }
    let now = USER_SOCKET_REPLACEABLE_SILENCE_MS;
    for id in 2..=tabs {
        shard.touch(id, now);
    }
    while shard.poll_output().is_some() {}
    shard
        .connect(100, identity("flaky", Role::Viewer), LIFETIME_MS, now)
        .unwrap();
    let mut closed = Vec::new();
    while let Some(output) = shard.poll_output() {
        if let ShardOutput::Close { connection, code } = output {
            closed.push((connection, code));
        }
    }
    assert_eq!(closed, vec![(1, CloseCode::Stale)]);
    assert_eq!(
        shard.connect(101, identity("flaky", Role::Viewer), LIFETIME_MS, now),
        Err(CloseCode::TooManySockets)
    );
}

/// A shard forwards at most `RELAY_FRAMES_PER_BATCH_MAX` frames in one batch up: with
/// exactly that many waiting they go together; one more waits for the next batch.
#[test]
fn a_shard_forwards_at_most_relay_frames_per_batch_max_frames_a_batch() {
    for waiting in [RELAY_FRAMES_PER_BATCH_MAX, RELAY_FRAMES_PER_BATCH_MAX + 1] {
        let mut now = 0;
        let mut shard = shard_with_state(now);
        let per_user = COMMENT_BURST as usize;
        let mut sent = 0;
        let mut client_id = 0;
        for user in 0..waiting.div_ceil(per_user) as u64 {
            join_shard(&mut shard, user, now);
            while sent < waiting && client_id < (user + 1) * per_user as u64 {
                client_id += 1;
                shard.handle_frame(user, &comment("hi", client_id), now);
                sent += 1;
            }
            client_id = (user + 1) * per_user as u64;
        }
        assert_eq!(shard.stats().forwarded, waiting as u64);
        let ups = batches_up(&mut shard, &mut now, 1);
        assert_eq!(ups[0].frames.len(), RELAY_FRAMES_PER_BATCH_MAX);
        if waiting > RELAY_FRAMES_PER_BATCH_MAX {
            let ups = batches_up(&mut shard, &mut now, 1);
            assert_eq!(
                ups[0].frames.len(),
                1,
                "the one past waits for the next batch"
            );
        }
    }
}

/// Viewers' frames the room will refuse (staff commands, part values) are forwarded at
/// up to 16 KiB each: a batch up holds only as many as fit in `RELAY_MESSAGE_BYTES_MAX`
/// (the room refuses a larger batch whole), and the rest go in the next.
#[test]
fn a_shard_batch_up_stays_within_relay_message_bytes_max() {
    let mut now = 0;
    let mut shard = shard_with_state(now);
    let command = "x".repeat(STAFF_COMMAND_BYTES_MAX);
    let frames_fitting = RELAY_MESSAGE_BYTES_MAX / STAFF_COMMAND_BYTES_MAX;
    let waiting = frames_fitting + 10;
    let per_connection = FRAMES_BURST as usize;
    for connection in 0..waiting.div_ceil(per_connection) as u64 {
        // One user per connection keeps clear of the per-user socket cap.
        join_shard(&mut shard, connection, now);
        for i in 0..per_connection as u64 {
            let frame = ClientFrame::Command {
                client_id: i + 1,
                command: command.clone(),
            };
            shard.handle_frame(connection, &frame.encode(), now);
        }
    }
    assert!(shard.stats().forwarded as usize >= waiting);
    let ups = batches_up(&mut shard, &mut now, 2);
    let first = ups[0].frames.len();
    assert!(
        first < frames_fitting && first > frames_fitting * 9 / 10,
        "{first} of {frames_fitting} (with their user, name and ids)"
    );
    assert!(!ups[1].frames.is_empty(), "the rest go in the next batch");
}

/// A snapshot comes over the network: one whose part is newer than its total (corrupt or
/// forged) must not panic the shard; the copy raises its total, as a later part would.
#[test]
fn a_snapshot_with_a_part_newer_than_its_total_does_not_panic_the_shard() {
    let now = 0;
    let mut shard = Shard::new(0, 1, now);
    let down = first_down(now, vec![("p".into(), 9, "{}".into())], 1);
    shard.handle_down(&down.encode(), now).unwrap();
    join_shard(&mut shard, 1, now);
    shard.handle_timeout(now + TICK_MS);
    let welcome = sent_events(&mut shard)
        .into_iter()
        .find_map(|e| match e {
            Event::Welcome(w) => Some(w),
            _ => None,
        })
        .expect("a Welcome");
    assert_eq!(welcome.total_version, 9);
}

/// A socket the router placed from its memory of the room's shard count
/// (`ShardRoutes`) is taken only by a shard that knows the remembered opening of its room
/// is live: one with no state yet, one holding another epoch, or one whose room ended
/// sends it back to the router, which asks the room object (the room may have opened
/// again with other shards, or none).
#[test]
fn a_shard_sends_back_a_remembered_route_once_its_room_ended() {
    let mut now_ms = 0;
    let epoch = 1;
    let mut room = sharded_room(epoch, 1, now_ms);
    let mut shard = Shard::new(0, 1, now_ms);
    let relay = |room: &mut Room, shard: &mut Shard, now_ms: &mut u64| {
        for _ in 0..4 {
            room_tick_to_shard(room, shard, now_ms);
        }
    };
    assert!(shard.refuses_remembered_route(epoch), "no state yet");
    relay(&mut room, &mut shard, &mut now_ms);
    assert!(shard.has_state());
    assert!(
        !shard.refuses_remembered_route(epoch),
        "a live room's shard"
    );
    for other in [0, epoch + 1, u64::MAX] {
        assert!(shard.refuses_remembered_route(other), "epoch {other}");
    }
    room.admin(AdminCommand::End, now_ms).unwrap();
    relay(&mut room, &mut shard, &mut now_ms);
    assert!(
        shard.refuses_remembered_route(epoch),
        "an ended room's shard"
    );
}

/// The first viewers of a big room are welcomed by their shard before the room has
/// counted anyone: the online count they are told counts at least themselves (it read 0,
/// "nobody watching", until the room's next batch).
#[test]
fn a_viewer_welcomed_by_a_shard_is_never_told_nobody_is_online() {
    let now = 0;
    let mut shard = shard_with_state(now);
    join_shard(&mut shard, 1, now);
    shard.handle_timeout(now + TICK_MS);
    let counts: Vec<u32> = sent_events(&mut shard)
        .into_iter()
        .filter_map(|e| match e {
            Event::Online { count } => Some(count),
            _ => None,
        })
        .collect();
    assert!(
        !counts.is_empty() && counts.iter().all(|&n| n >= 1),
        "{counts:?}"
    );
}

/// Every event the shard's pending output sends its viewers, in order.
fn sent_events(shard: &mut Shard) -> Vec<Event> {
    std::iter::from_fn(|| shard.poll_output())
        .filter_map(|o| match o {
            ShardOutput::Send { frame, .. } => Some(frame),
            _ => None,
        })
        .flat_map(|frame| {
            let ServerFrame::Batch { events, .. } = ServerFrame::decode(&frame).unwrap();
            events
        })
        .collect()
}

/// A comment above a big room's cap is shown to its sender only, numbered after the
/// broadcast of its room tick: the sender gets the broadcast's actions first, or its client
/// would drop them as seen (an action numbered below its cursor).
#[test]
fn a_comment_shown_to_its_sender_only_comes_after_the_broadcast_of_its_tick() {
    let now_ms = 1_000;
    let mut shard = ana_on_a_shard(now_ms);
    let action = |seq: u64, user: &str| comment_action(seq, user, now_ms);
    let down = ShardDown {
        broadcast: (1..=3)
            .map(|seq| Event::Action(action(seq, "bob")))
            .collect(),
        to_connection: vec![(1, Event::Action(action(5, "ana")))],
        ..ShardDown::new(2, now_ms, 1)
    };
    shard.handle_down(&down.encode(), now_ms + 10).unwrap();
    let mut seqs = Vec::new();
    while let Some(output) = shard.poll_output() {
        if let ShardOutput::Send { connections, frame } = output {
            assert_eq!(connections, vec![1]);
            let ServerFrame::Batch { events, .. } = ServerFrame::decode(&frame).unwrap();
            seqs.extend(events.into_iter().filter_map(|e| match e {
                Event::Action(a) => Some(a.seq),
                _ => None,
            }));
        }
    }
    assert_eq!(seqs, vec![1, 2, 3, 5]);
}

/// A shard's batch whose effects the room stored is a repeat after the room restarts:
/// the batch numbers applied are stored with the tick's writes, so a batch sent again
/// (its answer lost in the restart) is not applied twice.
#[test]
fn a_batch_the_room_stored_is_a_repeat_after_the_room_restarts() {
    let mut now = 0;
    let mut store = BTreeMap::new();
    let mut room = sharded_room(1, 2, now);
    let comment = ClientFrame::Comment {
        client_id: 1,
        text: "once".into(),
    };
    let batch = ana_up(1, vec![comment], 9, 1).encode();
    let run = |room: &mut Room, now: &mut u64, store: &mut BTreeMap<String, Vec<u8>>| {
        *now += TICK_MS;
        room.handle_timeout(*now);
        while let Some(output) = room.poll_output() {
            if let Output::Store(op) = output {
                apply(&[op], store);
            }
        }
    };
    run(&mut room, &mut now, &mut store);
    room.shard_up(&batch, now).unwrap();
    run(&mut room, &mut now, &mut store);
    let last_seq = room.last_seq();
    assert_eq!(last_seq, 1, "the comment took a number");

    let mut room = Room::restore(store.clone(), now).unwrap().unwrap();
    room.shard_up(&batch, now).unwrap();
    run(&mut room, &mut now, &mut store);
    assert_eq!(room.stats().shard_batches_repeated, 1);
    assert_eq!(room.last_seq(), last_seq, "not applied again");
}

/// Likes a shard took in an opening that ended are not counted in the next, nor after
/// the end; the room logs them (`likes_of_an_ended_opening`), never drops them silently.
#[test]
fn likes_of_another_opening_or_after_the_end_are_logged_not_counted() {
    let now = 0;
    let mut room = sharded_room(1, 2, now);
    let likes = |seq: u64, likes: u64, epoch: u64| {
        ShardUp {
            shard: 1,
            needs_snapshot: false,
            online: 1,
            likes,
            frames: Vec::new(),
            instance: 9,
            seq,
            epoch,
        }
        .encode()
    };
    let dropped_logs = |room: &mut Room| {
        std::iter::from_fn(|| room.poll_output())
            .filter_map(|o| match o {
                Output::Log(r) if r.event == "likes_of_an_ended_opening" => Some(r.detail),
                _ => None,
            })
            .collect::<Vec<_>>()
    };
    room.shard_up(&likes(1, 3, 1), now).unwrap();
    assert_eq!(room.likes_total(), 3, "this opening's likes count");
    assert!(dropped_logs(&mut room).is_empty());

    room.shard_up(&likes(2, 4, 0), now).unwrap();
    assert_eq!(room.likes_total(), 3, "another opening's likes do not");
    let logs = dropped_logs(&mut room);
    assert_eq!(logs.len(), 1, "{logs:?}");
    assert!(logs[0].contains("4 likes of opening 0"), "{logs:?}");

    assert_eq!(room.admin(AdminCommand::End, now), Ok(AdminReply::Ended));
    room.shard_up(&likes(3, 2, 1), now).unwrap();
    assert_eq!(room.likes_total(), 3, "none after the end");
    let logs = dropped_logs(&mut room);
    assert!(
        logs.len() == 1 && logs[0].contains("2 likes of opening 1 (the room is ended"),
        "{logs:?}"
    );
    assert_eq!(room.stats().shard_likes_of_another_opening, 6);
}

/// While a shard awaits the room's state (a lost batch down), a comment shown to its
/// sender only waits too: it goes out after the actions the snapshot brings, in order.
#[test]
fn a_sender_only_comment_waits_for_the_snapshot_a_shard_awaits() {
    let now_ms = 1_000;
    let mut shard = ana_on_a_shard(now_ms);
    let action = |seq: u64, user: &str| comment_action(seq, user, now_ms);
    let down = |seq, snapshot, own| own_down(seq, now_ms, snapshot, own);
    let sent_seqs = |shard: &mut Shard| {
        let mut seqs = Vec::new();
        while let Some(output) = shard.poll_output() {
            if let ShardOutput::Send { frame, .. } = output {
                let ServerFrame::Batch { events, .. } = ServerFrame::decode(&frame).unwrap();
                seqs.extend(events.into_iter().filter_map(|e| match e {
                    Event::Action(a) => Some(a.seq),
                    _ => None,
                }));
            }
        }
        seqs
    };
    // Batch 2 was lost: batch 3 shows the hole, and carries ana's own comment 3.
    let own = vec![(1, Event::Action(action(3, "ana")))];
    shard
        .handle_down(&down(3, None, own).encode(), now_ms)
        .unwrap();
    assert_eq!(sent_seqs(&mut shard), Vec::<u64>::new(), "held");
    let mut snapshot = first_down(now_ms, Vec::new(), 0).snapshot.unwrap();
    snapshot.last_seq = 3;
    snapshot.ring = vec![action(1, "bob"), action(2, "bob")];
    shard
        .handle_down(&down(4, Some(snapshot), Vec::new()).encode(), now_ms)
        .unwrap();
    assert_eq!(sent_seqs(&mut shard), vec![1, 2, 3]);
}

/// The room's batch `seq` brings the state of a new opening (2) to a one-shard room: the
/// sockets the shard closed then.
fn opening_2_reaches(shard: &mut Shard, seq: u64, now_ms: u64) -> Vec<(ConnectionId, CloseCode)> {
    let mut snapshot = first_down(now_ms, Vec::new(), 0).snapshot.unwrap();
    snapshot.epoch = 2;
    let down = own_down(seq, now_ms, Some(snapshot), Vec::new());
    shard.handle_down(&down.encode(), now_ms).unwrap();
    shard_closes(shard)
}

/// The room's batch `seq` to a one-shard room: a state when given, and events for single
/// connections (their own actions, answers).
fn own_down(
    seq: u64,
    now_ms: u64,
    snapshot: Option<Snapshot>,
    own: Vec<(u64, Event)>,
) -> ShardDown {
    ShardDown {
        snapshot,
        to_connection: own,
        ..ShardDown::new(seq, now_ms, 1)
    }
}

/// A shard with the room's state and ana welcomed on connection 1, its output drained.
fn ana_on_a_shard(now_ms: u64) -> Shard {
    let mut shard = shard_with_state(now_ms);
    shard
        .connect(1, identity("ana", Role::Viewer), LIFETIME_MS, now_ms)
        .unwrap();
    shard.handle_frame(1, &hello(None), now_ms);
    while shard.poll_output().is_some() {}
    shard
}

fn comment_action(seq: u64, user: &str, ts_ms: u64) -> Action {
    Action {
        seq,
        ts_ms,
        user: user.into(),
        name: user.into(),
        body: ActionBody::Comment { text: "hi".into() },
    }
}

/// A shard, like the room, keeps `OUTBOX_ANSWERS_PAST_MAX` places past a full outbox for
/// the answers to a viewer's own frames; one more answer is dropped.
#[test]
fn a_shards_full_outbox_still_carries_the_viewers_answers_up_to_their_bound() {
    let now = 0;
    let mut shard = ana_on_a_shard(now);
    for _ in 0..OUTBOX_EVENTS_MAX {
        shard.push(1, Event::Online { count: 1 }, now);
    }
    for client_id in 0..=OUTBOX_ANSWERS_PAST_MAX as u64 {
        shard.push(
            1,
            Event::Ack {
                client_id,
                seq: None,
            },
            now,
        );
    }
    shard.handle_timeout(now + TICK_MS);
    let acks = sent_events(&mut shard)
        .into_iter()
        .filter(|e| matches!(e, Event::Ack { .. }))
        .count();
    assert_eq!(
        acks, OUTBOX_ANSWERS_PAST_MAX,
        "one past the bound is dropped"
    );
}

/// A shard answers the heartbeat that reached it, like the room (see
/// `a_heartbeat_reaching_the_room_is_answered_and_other_text_closes`).
#[test]
fn a_heartbeat_reaching_a_shard_is_answered_and_other_text_closes() {
    let mut now = 0;
    let mut shard = shard_with_state(now);
    join_shard(&mut shard, 1, now);
    join_shard(&mut shard, 2, now);
    now += 10;
    assert_eq!(
        shard.handle_text(1, HEARTBEAT_TEXT, now),
        Some(HEARTBEAT_REPLY_TEXT)
    );
    assert_eq!(shard.handle_text(2, "hello", now), None);
    let mut closed = Vec::new();
    while let Some(output) = shard.poll_output() {
        if let ShardOutput::Close { connection, code } = output {
            closed.push((connection, code));
        }
    }
    assert_eq!(closed, vec![(2, CloseCode::TextNotSupported)]);
}

/// A gift resent from another of the gifter's shard connections (a reconnect) while its
/// charge is in flight joins the charge, and its answer reaches that connection. Before,
/// the room let go of the resend's connection entry at the next flush (only the first
/// sender's was kept for the charge), and the resend timed out although its gift was
/// charged and announced.
#[test]
fn a_gift_resent_from_another_shard_connection_is_answered_there() {
    let mut now = 0;
    let mut room = Room::create(info(), 1, now);
    room.set_gift_catalog([("rose".to_owned(), 1)].into())
        .unwrap();
    room.admin(AdminCommand::SetShards { shards: 2 }, now)
        .unwrap();
    let gift_from = |connection: u64, client_id: u64, seq: u64| {
        ShardUp {
            shard: 1,
            needs_snapshot: false,
            online: 1,
            likes: 0,
            frames: vec![ovation_proto::RelayedFrame {
                connection,
                user: "ana".into(),
                name: "Ana".into(),
                role: Role::Viewer,
                frame: ClientFrame::Gift {
                    client_id,
                    gift_id: "g-1".into(),
                    sku: "rose".into(),
                    qty: 1,
                },
            }],
            instance: 9,
            seq,
            epoch: 1,
        }
        .encode()
    };
    // What the room sends shard 1 for each of its connections, and the charges it asks.
    let run = |room: &mut Room, now: &mut u64| {
        *now += TICK_MS;
        room.handle_timeout(*now);
        let (mut answers, mut charges) = (Vec::new(), Vec::new());
        while let Some(output) = room.poll_output() {
            match output {
                Output::ToShard { shard, frame } => {
                    room.shard_batch_done(shard, *now);
                    if shard == 1 {
                        let down = ShardDown::decode(&frame).unwrap();
                        answers.extend(down.to_connection);
                    }
                }
                Output::Charge(charge) => charges.push(charge),
                _ => {}
            }
        }
        (answers, charges)
    };
    run(&mut room, &mut now);
    room.shard_up(&gift_from(4, 1, 1), now).unwrap();
    let (_, charges) = run(&mut room, &mut now);
    let [charge] = &charges[..] else {
        panic!("one charge: {charges:?}")
    };
    // The socket dropped; the SDK resends the gift from its new connection.
    room.shard_up(&gift_from(5, 2, 2), now).unwrap();
    let (_, again) = run(&mut room, &mut now);
    assert!(again.is_empty(), "joined, not charged again: {again:?}");
    run(&mut room, &mut now); // a flush with nothing new lets idle entries go
    let charged = ChargeOutcome::Charged {
        balance: 9,
        replayed: false,
    };
    room.charge_result(charge.request, charged, now);
    let (answers, _) = run(&mut room, &mut now);
    let acked = |connection: u64, id: u64| {
        answers.iter().any(|(c, e)| {
            *c == connection && matches!(e, Event::Ack { client_id, .. } if *client_id == id)
        })
    };
    assert!(acked(4, 1), "the first sender: {answers:?}");
    assert!(acked(5, 2), "the resend: {answers:?}");
}

/// A gift whose client id another of the gifter's actions used (acknowledged with a
/// number the shard remembers) goes to the room, which checks gifts by their gift id: the
/// shard used to acknowledge it as a repeat, and the gift was never charged.
#[test]
fn a_gift_reusing_an_acknowledged_client_id_goes_to_the_room() {
    let mut now_ms = 1_000;
    let mut shard = ana_on_a_shard(now_ms);
    let ack = Event::Ack {
        client_id: 7,
        seq: Some(1),
    };
    let down = own_down(2, now_ms, None, vec![(1, ack)]);
    shard.handle_down(&down.encode(), now_ms).unwrap();
    while shard.poll_output().is_some() {}
    let gift = ClientFrame::Gift {
        client_id: 7,
        gift_id: "g-new".into(),
        sku: "rose".into(),
        qty: 1,
    };
    shard.handle_frame(1, &gift.encode(), now_ms);
    let ups = batches_up(&mut shard, &mut now_ms, 1);
    assert!(
        ups[0]
            .frames
            .iter()
            .any(|f| matches!(f.frame, ClientFrame::Gift { client_id: 7, .. })),
        "{:?}",
        ups[0].frames
    );
    // A comment resent with that id is still answered here.
    let comment = ClientFrame::Comment {
        client_id: 7,
        text: "again".into(),
    };
    shard.handle_frame(1, &comment.encode(), now_ms);
    now_ms += TICK_MS;
    shard.handle_timeout(now_ms);
    assert!(sent_events(&mut shard).contains(&Event::Ack {
        client_id: 7,
        seq: Some(1)
    }));
}

/// Frames a shard queued before it learnt the room ended arrive relayed after the end:
/// each is refused `room_ended`, and nothing changes (no number taken, no vote counted).
#[test]
fn frames_relayed_after_the_end_are_refused_and_change_nothing() {
    let mut room = sharded_room_with_a_poll(1);
    assert_eq!(room.admin(AdminCommand::End, 0), Ok(AdminReply::Ended));
    let frames = vec![
        ClientFrame::Comment {
            client_id: 1,
            text: "late".into(),
        },
        ClientFrame::Vote {
            client_id: 2,
            poll_id: "p1".into(),
            option: 0,
        },
        ClientFrame::Ask {
            client_id: 3,
            text: "still there?".into(),
        },
    ];
    opening_1s_frames_are_refused_and_change_nothing(&mut room, frames);
}

/// A shard's batch taken in an opening that ended, sent again after the room opened
/// anew: its vote is not counted in the new opening's poll of the same id, and each frame
/// is refused `room_ended`, as after the end.
#[test]
fn frames_of_an_ended_opening_are_refused_by_the_next_one() {
    let mut room = sharded_room_with_a_poll(2);
    let frames = vec![
        ClientFrame::Vote {
            client_id: 1,
            poll_id: "p1".into(),
            option: 0,
        },
        ClientFrame::Comment {
            client_id: 2,
            text: "from the last show".into(),
        },
    ];
    opening_1s_frames_are_refused_and_change_nothing(&mut room, frames);
    assert_eq!(room.stats().shard_frames_of_another_opening, 2);
}

/// A room of this opening with two shards and poll `p1` open.
fn sharded_room_with_a_poll(epoch: u64) -> Room {
    let mut room = sharded_room(epoch, 2, 0);
    let spec = poll_spec(2, 60_000);
    room.admin(as_host(StaffCommand::CreatePoll { spec }), 0)
        .unwrap();
    room
}

/// Relays ana's `frames` in a batch of opening 1 (client ids from 1): each is refused
/// `room_ended`, no number is taken and no vote counted.
fn opening_1s_frames_are_refused_and_change_nothing(room: &mut Room, frames: Vec<ClientFrame>) {
    let last_seq = room.last_seq();
    let count = frames.len() as u64;
    room.shard_up(&ana_up(1, frames, 9, 1).encode(), 0).unwrap();
    let mut now = 0;
    let answers: Vec<(u64, Event)> = batches_to_shards(room, &mut now)
        .iter()
        .flat_map(|(_, frame)| ShardDown::decode(frame).unwrap().to_connection)
        .collect();
    for id in 1..=count {
        assert!(
            answers.iter().any(|(_, e)| matches!(
                e,
                Event::Error { client_id: Some(c), code: ErrorCode::RoomEnded, .. } if *c == id
            )),
            "frame {id}: {answers:?}"
        );
    }
    assert_eq!(room.last_seq(), last_seq, "no number taken");
    assert_eq!(room.poll().unwrap().2, &[0, 0], "no vote counted");
}

/// The room acknowledges an answer to an earlier, scored question as a repeat. A shard
/// took that acknowledgement for a new question and forgot who had answered the current
/// one: one viewer alternating such repeats emptied that memory for everyone at each
/// frame, and every viewer's repeat went up to the room. The current question's memory
/// stays; the earlier question's repeat is not remembered.
#[test]
fn an_earlier_questions_repeat_leaves_the_current_questions_answers_remembered() {
    let mut now_ms = 1_000;
    let mut shard = ana_on_a_shard(now_ms);
    let answer = |client_id, question| {
        ClientFrame::Answer {
            client_id,
            quiz_id: "z1".into(),
            question,
            option: 0,
        }
        .encode()
    };
    let ack = |client_id| {
        (
            1,
            Event::Ack {
                client_id,
                seq: None,
            },
        )
    };
    // Ana answers question 1 (current), then repeats her answer to question 0 (scored).
    shard.handle_frame(1, &answer(1, 1), now_ms);
    shard.handle_frame(1, &answer(2, 0), now_ms);
    let ups = batches_up(&mut shard, &mut now_ms, 1);
    assert_eq!(ups[0].frames.len(), 2);
    let acks = own_down(2, now_ms, None, vec![ack(1), ack(2)]);
    shard.handle_down(&acks.encode(), now_ms).unwrap();
    while shard.poll_output().is_some() {}
    // Another tab of hers answers question 1 again: answered here, nothing goes up.
    shard.handle_frame(1, &answer(3, 1), now_ms);
    now_ms += TICK_MS;
    shard.handle_timeout(now_ms);
    let (mut acked, mut up) = (false, 0);
    while let Some(output) = shard.poll_output() {
        match output {
            ShardOutput::Send { frame, .. } => {
                let ServerFrame::Batch { events, .. } = ServerFrame::decode(&frame).unwrap();
                acked |= events
                    .iter()
                    .any(|e| matches!(e, Event::Ack { client_id: 3, .. }));
            }
            ShardOutput::Up { batch, .. } => up += ShardUp::decode(&batch).unwrap().frames.len(),
            _ => {}
        }
    }
    assert!(acked && up == 0, "acked here: {acked}, sent up: {up}");
}

/// A shard that saw ana's vote in poll `p1` accepted, then the room's state of a new
/// opening: ana's vote in the new opening's `p1` goes to the room (it used to be
/// acknowledged by the shard as a repeat and never counted), and a frame of the old
/// opening queued at the shard never goes up stamped as the new one's.
#[test]
fn a_shard_forgets_who_chose_when_the_room_opens_anew() {
    let mut now_ms = 1_000;
    let mut shard = ana_on_a_shard(now_ms);
    let vote = |client_id| {
        ClientFrame::Vote {
            client_id,
            poll_id: "p1".into(),
            option: 0,
        }
        .encode()
    };
    shard.handle_frame(1, &vote(1), now_ms);
    let ups = batches_up(&mut shard, &mut now_ms, 1);
    assert_eq!(ups[0].frames.len(), 1, "the first vote goes up");
    let acked = own_down(
        2,
        now_ms,
        None,
        vec![
            (
                1,
                Event::Ack {
                    client_id: 1,
                    seq: None,
                },
            ),
            (
                1,
                Event::Ack {
                    client_id: 9,
                    seq: Some(5),
                },
            ),
        ],
    );
    shard.handle_down(&acked.encode(), now_ms).unwrap();
    // One tick: what the shard sent its viewers, and the frames it sent up.
    let tick = |shard: &mut Shard, now_ms: &mut u64| {
        *now_ms += TICK_MS;
        shard.handle_timeout(*now_ms);
        let (mut events, mut up) = (Vec::new(), Vec::new());
        while let Some(output) = shard.poll_output() {
            match output {
                ShardOutput::Send { frame, .. } => {
                    let ServerFrame::Batch { events: e, .. } = ServerFrame::decode(&frame).unwrap();
                    events.extend(e);
                }
                ShardOutput::Up { batch, .. } => {
                    up.extend(ShardUp::decode(&batch).unwrap().frames);
                }
                _ => {}
            }
        }
        (events, up)
    };
    shard.handle_frame(1, &vote(2), now_ms);
    let (events, up) = tick(&mut shard, &mut now_ms);
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::Ack { client_id: 2, .. }))
            && up.is_empty(),
        "within one opening the shard answers a repeat itself: {events:?} {up:?}"
    );
    // A comment goes up and stays unanswered; another waits behind it.
    let comment = |client_id, text: &str| {
        ClientFrame::Comment {
            client_id,
            text: text.into(),
        }
        .encode()
    };
    shard.handle_frame(1, &comment(10, "in flight"), now_ms);
    now_ms += TICK_MS;
    shard.handle_timeout(now_ms);
    let in_flight: Vec<u64> = std::iter::from_fn(|| shard.poll_output())
        .filter_map(|o| match o {
            ShardOutput::Up { seq, .. } => Some(seq),
            _ => None,
        })
        .collect();
    assert_eq!(in_flight.len(), 1, "{in_flight:?}");
    shard.handle_frame(1, &comment(11, "queued"), now_ms);
    // The room ends and opens again (opening 2), and this shard missed the end: the
    // state of the new opening comes first. Ana's socket of the old opening reconnects
    // (her client meets the new opening in its Welcome), and her queued frame never goes
    // up as the new opening's.
    let closes = opening_2_reaches(&mut shard, 1, now_ms);
    assert_eq!(closes, [(1, CloseCode::Restarting)]);
    assert_eq!(shard.stats().frames_of_an_ended_opening, 1);
    // The batch in flight fails (the room's answer to it is lost) and goes again, as do
    // the batches after it.
    shard.up_answered(in_flight[0], UpAnswer::Failed, now_ms);
    let mut sent_up = Vec::new();
    for _ in 0..3 {
        while let Some(output) = shard.poll_output() {
            if let ShardOutput::Up { seq, batch } = output {
                sent_up.extend(ShardUp::decode(&batch).unwrap().frames);
                shard.up_answered(seq, UpAnswer::Failed, now_ms);
            }
        }
        now_ms += 2_000;
        shard.handle_timeout(now_ms);
    }
    let comments_up: Vec<u64> = sent_up
        .iter()
        .filter_map(|f| match f.frame {
            ClientFrame::Comment { client_id, .. } => Some(client_id),
            _ => None,
        })
        .collect();
    assert!(
        comments_up.contains(&10) && !comments_up.contains(&11),
        "the batch in flight goes again (the room refuses it: another opening's), the \
         queued frame never: {comments_up:?}"
    );
    // Ana comes back (a new socket) and votes in the new opening's `p1`, and comments,
    // with client ids the old opening acknowledged (a client numbering them anew: they
    // are the new opening's actions, not repeats).
    shard
        .connect(2, identity("ana", Role::Viewer), LIFETIME_MS, now_ms)
        .unwrap();
    shard.handle_frame(2, &hello(None), now_ms);
    while let Some(output) = shard.poll_output() {
        if let ShardOutput::Up { seq, .. } = output {
            shard.up_answered(seq, UpAnswer::Applied, now_ms);
        }
    }
    shard.handle_frame(2, &vote(1), now_ms);
    shard.handle_frame(2, &comment(9, "new opening"), now_ms);
    let (mut events, mut up) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        let (e, u) = tick(&mut shard, &mut now_ms);
        events.extend(e);
        up.extend(u);
    }
    assert!(
        !events.iter().any(|e| matches!(
            e,
            Event::Ack {
                client_id: 1 | 9,
                ..
            }
        )),
        "not answered as a repeat: {events:?}"
    );
    assert!(
        up.iter()
            .any(|f| matches!(f.frame, ClientFrame::Vote { client_id: 1, .. })),
        "the new opening's vote goes to the room: {up:?}"
    );
    assert!(
        up.iter()
            .any(|f| matches!(f.frame, ClientFrame::Comment { client_id: 9, .. })),
        "the new opening's comment goes to the room: {up:?}"
    );
    assert!(
        !up.iter()
            .any(|f| matches!(f.frame, ClientFrame::Comment { client_id: 11, .. })),
        "the old opening's queued frame never goes up: {up:?}"
    );
}

/// A shard restarted (or woken) with sockets of an opening that ended, before the
/// room's state comes: their frames go up stamped with the last opening it knew of (its
/// record's), which the room refuses, never with 0, which the room took as its own;
/// and the state of the new opening closes those sockets to reconnect (`4002`).
#[test]
fn a_restarted_shard_stamps_its_last_opening_and_closes_its_sockets_at_a_new_one() {
    let mut now_ms = 1_000;
    let mut shard = ana_on_a_shard(now_ms);
    // The record after the room's state of opening 1 (a like makes sure it is written).
    shard.handle_frame(
        1,
        &ClientFrame::Like {
            client_id: 1,
            count: 1,
        }
        .encode(),
        now_ms,
    );
    let mut record = None;
    for _ in 0..3 {
        now_ms += TICK_MS;
        shard.handle_timeout(now_ms);
        while let Some(output) = shard.poll_output() {
            match output {
                ShardOutput::Persist(bytes) => record = Some(bytes),
                ShardOutput::Up { seq, .. } => shard.up_answered(seq, UpAnswer::Applied, now_ms),
                _ => {}
            }
        }
    }
    let record = record.expect("the shard stored its record");
    // Restarted: ana's socket survives (hibernation) and is reattached, Hello heard.
    let mut shard = Shard::restore(0, &record, now_ms).unwrap();
    shard.reattach(
        1,
        identity("ana", Role::Viewer),
        now_ms + LIFETIME_MS,
        true,
        now_ms,
    );
    let vote = ClientFrame::Vote {
        client_id: 2,
        poll_id: "p1".into(),
        option: 0,
    };
    shard.handle_frame(1, &vote.encode(), now_ms);
    let mut ups = Vec::new();
    for _ in 0..3 {
        now_ms += TICK_MS;
        shard.handle_timeout(now_ms);
        while let Some(output) = shard.poll_output() {
            if let ShardOutput::Up { seq, batch } = output {
                ups.push(ShardUp::decode(&batch).unwrap());
                shard.up_answered(seq, UpAnswer::Applied, now_ms);
            }
        }
    }
    let with_vote = ups
        .iter()
        .find(|u| {
            u.frames
                .iter()
                .any(|f| matches!(f.frame, ClientFrame::Vote { .. }))
        })
        .unwrap_or_else(|| panic!("the vote goes up: {ups:?} {:?}", shard.stats()));
    assert_eq!(with_vote.epoch, 1, "stamped with the last opening known");

    // The room's state names opening 2: ana's socket reconnects.
    let closes = opening_2_reaches(&mut shard, 7, now_ms);
    assert_eq!(closes, [(1, CloseCode::Restarting)]);
}

/// A viewer's comments the room acknowledged, resent at once on a new socket (the acks
/// lost with the old one): the shard answers them as the room did, before the frame rate
/// and the user's comment bucket, and sends nothing up. They were refused `rate_limited`
/// past the comment burst, which told the client "not applied" about applied comments.
#[test]
fn a_shard_answers_resent_actions_the_room_acknowledged_before_any_rate() {
    let comment = |client_id| {
        ClientFrame::Comment {
            client_id,
            text: format!("c{client_id}"),
        }
        .encode()
    };
    resent_actions_are_answered_by_the_shard(comment, |client_id| Some(10 + client_id));
}

/// The same for actions the room acknowledges without a number (a question, a product
/// click): the shard remembers those acks too. They were left to the room's memory of
/// the user's client ids, which goes with the user's rate buckets when more than
/// `RATE_BUCKETS_MAX` users act (a big room's poll), so such a resend was applied again:
/// a question asked twice, a click counted twice.
#[test]
fn a_shard_answers_resent_unnumbered_actions_the_room_acknowledged() {
    let question = |client_id| {
        ClientFrame::Ask {
            client_id,
            text: format!("q{client_id}"),
        }
        .encode()
    };
    resent_actions_are_answered_by_the_shard(question, |_| None);
    let click = |client_id| {
        ClientFrame::ProductClick {
            client_id,
            product_id: "red-1".into(),
        }
        .encode()
    };
    resent_actions_are_answered_by_the_shard(click, |_| None);
}

/// Ana sends three actions (`frame(client_id)`), the room acknowledges them (`seq` of
/// each) after her socket dropped, and her new socket resends them many times over: the
/// shard answers each as the room did and sends nothing up, refusing none.
fn resent_actions_are_answered_by_the_shard(
    frame: impl Fn(u64) -> Vec<u8>,
    seq: impl Fn(u64) -> Option<u64>,
) {
    let mut now_ms = 1_000;
    let mut shard = ana_on_a_shard(now_ms);
    for client_id in 1..=3 {
        shard.handle_frame(1, &frame(client_id), now_ms);
    }
    let ups = batches_up(&mut shard, &mut now_ms, 1);
    assert_eq!(ups[0].frames.len(), 3);
    let acks = (1..=3)
        .map(|client_id| {
            let seq = seq(client_id);
            (1, Event::Ack { client_id, seq })
        })
        .collect();
    // Ana's socket drops before the room's acks reach the shard; her new socket resends
    // all three, many times over (past the frame burst too).
    shard.disconnect(1, now_ms);
    shard
        .handle_down(&own_down(2, now_ms, None, acks).encode(), now_ms)
        .unwrap();
    while shard.poll_output().is_some() {}
    shard
        .connect(2, identity("ana", Role::Viewer), LIFETIME_MS, now_ms)
        .unwrap();
    shard.handle_frame(2, &hello(None), now_ms);
    for _ in 0..FRAMES_BURST {
        for client_id in 1..=3 {
            shard.handle_frame(2, &frame(client_id), now_ms);
        }
    }
    now_ms += TICK_MS;
    shard.handle_timeout(now_ms);
    let (mut acked, mut refused, mut up) = (BTreeSet::new(), 0, 0);
    while let Some(output) = shard.poll_output() {
        match output {
            ShardOutput::Send { frame, .. } => {
                let ServerFrame::Batch { events, .. } = ServerFrame::decode(&frame).unwrap();
                for event in events {
                    match event {
                        Event::Ack {
                            client_id,
                            seq: answered,
                        } => {
                            assert_eq!(answered, seq(client_id), "answered as at first");
                            acked.insert(client_id);
                        }
                        Event::Error { .. } => refused += 1,
                        _ => {}
                    }
                }
            }
            ShardOutput::Up { batch, .. } => {
                up += ShardUp::decode(&batch).unwrap().frames.len();
            }
            _ => {}
        }
    }
    assert_eq!(acked, BTreeSet::from([1, 2, 3]));
    assert_eq!(refused, 0, "no resend refused");
    assert_eq!(up, 0, "nothing sent up again");
}

/// A shard's ban list at its bound (the room's list at its last state, and users the room
/// may have unbanned since: an unban reaches only the user's own shards) still takes a
/// new ban, and asks for the room's state, whose list replaces it. The ban was dropped.
#[test]
fn a_shard_whose_ban_list_is_full_still_refuses_a_newly_banned_user() {
    let mut now_ms = 1_000;
    let mut shard = Shard::new(0, 1, now_ms);
    let mut first = first_down(now_ms, Vec::new(), 0);
    first.snapshot.as_mut().unwrap().banned =
        (0..BANNED_USERS_MAX).map(|i| format!("x{i}")).collect();
    shard.handle_down(&first.encode(), now_ms).unwrap();
    let ban = ShardDown {
        close_users: vec![("bob".into(), CloseCode::Banned.code())],
        ..ShardDown::new(first.seq + 1, now_ms, 1)
    };
    shard.handle_down(&ban.encode(), now_ms).unwrap();
    assert_eq!(
        shard.connect(5, identity("bob", Role::Viewer), LIFETIME_MS, now_ms),
        Err(CloseCode::Banned)
    );
    let ups = batches_up(&mut shard, &mut now_ms, 1);
    assert!(ups[0].needs_snapshot, "the shard asks for the room's list");
}

/// Bans and unbans reach a big room's viewers whatever the shards knew:
/// - the room object sends no banned user to a shard (`route_to_shard` is `None`, and the
///   room itself refuses the socket), since a shard may not know the ban yet;
/// - a shard that took a banned user's socket before it had the room's state (restarted)
///   closes it `4403` when the state arrives;
/// - an unbanned user may join their shard again. Shards learnt unbans from nothing (only
///   a restart or a lost batch brought the room's state), so an unbanned viewer stayed
///   refused for the rest of the show.
#[test]
fn bans_and_unbans_reach_a_big_rooms_shards() {
    let mut now_ms = 0;
    let mut room = sharded_room(1, 1, now_ms);
    let ban = StaffCommand::Ban { user: "ana".into() };
    room.admin(as_host(ban), now_ms).unwrap();
    assert_eq!(room.route_to_shard(Role::Viewer, "ana"), None);
    assert_eq!(room.route_to_shard(Role::Viewer, "bob"), Some(0));

    // The ban's close went to the shard's earlier instance (dropped here); the shard
    // restarted, and takes ana's socket before the room's state arrives.
    let mut lost = Shard::new(0, 1, now_ms);
    for _ in 0..4 {
        room_tick_to_shard(&mut room, &mut lost, &mut now_ms);
    }
    let mut shard = Shard::new(0, 2, now_ms);
    shard
        .connect(1, identity("ana", Role::Viewer), LIFETIME_MS, now_ms)
        .unwrap();
    shard.handle_frame(1, &hello(None), now_ms);
    let relay = |room: &mut Room, shard: &mut Shard, now_ms: &mut u64| {
        let mut closes = Vec::new();
        for _ in 0..4 {
            room_tick_to_shard(room, shard, now_ms);
            shard.handle_timeout(*now_ms);
            while let Some(output) = shard.poll_output() {
                match output {
                    ShardOutput::Close { connection, code } => closes.push((connection, code)),
                    // Its batches up (asking for the state) are answered.
                    ShardOutput::Up { seq, batch } => {
                        room.shard_up(&batch, *now_ms).expect("the shard's batch");
                        shard.up_answered(seq, UpAnswer::Applied, *now_ms);
                    }
                    _ => {}
                }
            }
        }
        closes
    };
    let closes = relay(&mut room, &mut shard, &mut now_ms);
    assert_eq!(
        closes,
        [(1, CloseCode::Banned)],
        "closed once the ban is known"
    );
    assert_eq!(
        shard.connect(2, identity("ana", Role::Viewer), LIFETIME_MS, now_ms),
        Err(CloseCode::Banned)
    );

    let unban = StaffCommand::Unban { user: "ana".into() };
    room.admin(as_host(unban), now_ms).unwrap();
    assert_eq!(room.route_to_shard(Role::Viewer, "ana"), Some(0));
    relay(&mut room, &mut shard, &mut now_ms);
    now_ms += 1_000; // past the connect rate
    assert_eq!(
        shard.connect(3, identity("ana", Role::Viewer), LIFETIME_MS, now_ms),
        Ok(()),
        "the shard knows the unban"
    );
}

/// An unban is told only to the shards the user may be placed on, in their next batch
/// and not as a state (a moderator's ban/unban churn kept the room sending states to
/// them), and a ban undone within the same tick does not reach the shard and ban the user
/// there again.
#[test]
fn an_unban_reaches_only_the_users_shards_and_undoes_a_ban_of_the_same_tick() {
    let mut now_ms = 0;
    let mut room = sharded_room(1, 8, now_ms);
    // What each shard is sent in the next ticks: how many states, and the batches.
    let ticks = |room: &mut Room, now_ms: &mut u64| {
        (0..4)
            .flat_map(|_| batches_to_shards(room, now_ms))
            .collect::<Vec<_>>()
    };
    let states = |downs: &[(u16, Vec<u8>)]| shards_sent_state(downs).len();
    let unbans = |downs: &[(u16, Vec<u8>)]| {
        downs
            .iter()
            .map(|(to, frame)| (*to, ShardDown::decode(frame).unwrap().unbanned_users))
            .filter(|(_, users)| !users.is_empty())
            .collect::<Vec<_>>()
    };
    let first = ticks(&mut room, &mut now_ms);
    assert_eq!(states(&first), 8, "every shard's first state");
    let theirs = ovation_proto::shard_of("ana", 8);
    let ban = || as_host(StaffCommand::Ban { user: "ana".into() });
    let unban = || as_host(StaffCommand::Unban { user: "ana".into() });
    let mut shard = Shard::new(theirs, 1, now_ms);
    for (to, frame) in &first {
        if *to == theirs {
            shard.handle_down(frame, now_ms).unwrap();
        }
    }
    assert!(shard.has_state());
    let mut downs = Vec::new();
    for _ in 0..50 {
        room.admin(ban(), now_ms).unwrap();
        downs.extend(ticks(&mut room, &mut now_ms));
        room.admin(unban(), now_ms).unwrap();
        downs.extend(ticks(&mut room, &mut now_ms));
    }
    assert_eq!(states(&downs), 0, "fifty bans and unbans, no state sent");
    assert_eq!(
        unbans(&downs),
        vec![(theirs, vec!["ana".to_owned()]); 50],
        "each unban to ana's shard alone"
    );
    for (to, frame) in &downs {
        if *to == theirs {
            shard.handle_down(frame, now_ms).unwrap();
        }
    }
    assert_eq!(
        shard.connect(1, identity("ana", Role::Viewer), LIFETIME_MS, now_ms),
        Ok(()),
        "the shard knows the last unban"
    );
    shard.disconnect(1, now_ms);

    // Banned and unbanned before a tick: ana's shard takes her.
    room.admin(ban(), now_ms).unwrap();
    room.admin(unban(), now_ms).unwrap();
    for (to, frame) in ticks(&mut room, &mut now_ms) {
        if to == theirs {
            shard.handle_down(&frame, now_ms).unwrap();
        }
    }
    assert_eq!(
        shard.connect(1, identity("ana", Role::Viewer), LIFETIME_MS, now_ms),
        Ok(()),
        "the ban undone in its tick does not reach the shard"
    );
    shard.disconnect(1, now_ms);

    // Unbanned, then banned again before a tick: the ban stays.
    room.admin(unban(), now_ms).unwrap_err(); // not banned
    room.admin(ban(), now_ms).unwrap();
    ticks(&mut room, &mut now_ms);
    room.admin(unban(), now_ms).unwrap();
    room.admin(ban(), now_ms).unwrap();
    for (to, frame) in ticks(&mut room, &mut now_ms) {
        if to == theirs {
            shard.handle_down(&frame, now_ms).unwrap();
        }
    }
    assert!(
        shard
            .connect(1, identity("ana", Role::Viewer), LIFETIME_MS, now_ms)
            .is_err(),
        "the ban after the unban in its tick stays"
    );
}

/// A room restarted with `SHARDS_PER_ROOM_MAX` shards wants its state sent to each: at
/// most `SHARD_SNAPSHOTS_PER_FLUSH_MAX` go in one flush (all at once held 250 copies of
/// a state that reaches megabytes), and every shard has its state within the flushes
/// that follow.
#[test]
fn a_restarted_room_sends_its_shards_their_state_a_few_at_a_time() {
    let mut now = 0;
    let mut store = BTreeMap::new();
    let mut room = Room::create(info(), 1, now);
    room.admin(
        AdminCommand::SetShards {
            shards: SHARDS_PER_ROOM_MAX,
        },
        now,
    )
    .unwrap();
    let value = serde_json::json!({ "text": "x".repeat(4_000) }).to_string();
    for n in 0..8 {
        let name = format!("board-{n}");
        let value = value.clone();
        room.admin(AdminCommand::SetPart { name, value }, now)
            .unwrap();
    }
    tick_into_sharded(&mut room, &mut now, &mut store);

    let mut room = Room::restore(store.clone(), now).unwrap().unwrap();
    let mut served = BTreeSet::new();
    let mut flushes = 0;
    while served.len() < usize::from(SHARDS_PER_ROOM_MAX) {
        flushes += 1;
        assert!(flushes <= 40, "{} of the shards served", served.len());
        let states = shards_sent_state(&batches_to_shards(&mut room, &mut now));
        for &shard in &states {
            assert!(served.insert(shard), "shard {shard} served twice");
        }
        let states = states.len();
        assert!(
            states <= SHARD_SNAPSHOTS_PER_FLUSH_MAX,
            "{states} states in a flush"
        );
    }
    let needed = usize::from(SHARDS_PER_ROOM_MAX).div_ceil(SHARD_SNAPSHOTS_PER_FLUSH_MAX);
    assert!(flushes <= needed + 1, "{flushes} flushes for {needed}");
}

/// A tick whose shard batches are dropped and whose storage ops are applied to `store`.
fn tick_into_sharded(room: &mut Room, now_ms: &mut u64, store: &mut BTreeMap<String, Vec<u8>>) {
    *now_ms += TICK_MS_MAX;
    room.handle_timeout(*now_ms);
    while let Some(output) = room.poll_output() {
        if let Output::Store(op) = output {
            apply(&[op], store);
        }
    }
}

/// A shard that missed an opening's end and the next one's start still holds a copy of
/// the ended opening. A client returning from the new opening (its Hello resumes it) is
/// not welcomed from that copy (a Welcome of the ended opening would end its pending
/// actions of a live one): its Hello waits for the room's state, which the shard asks
/// for at once, and at most once a `SHARD_SNAPSHOT_RETRY_MS` however many such Hellos
/// come. A client resuming the copy's opening, or nothing, is welcomed at once.
#[test]
fn a_hello_resuming_another_opening_waits_for_the_rooms_state() {
    let mut now_ms = 1_000;
    let mut shard = shard_with_state(now_ms); // the copy is of opening 1
    let resume = |epoch| Resume {
        epoch,
        action_cursor: 0,
        part_versions: Vec::new(),
    };
    let welcomes = |shard: &mut Shard| -> Vec<(ConnectionId, u64)> {
        std::iter::from_fn(|| shard.poll_output())
            .filter_map(|o| match o {
                ShardOutput::Send { connections, frame } => Some((connections, frame)),
                _ => None,
            })
            .flat_map(|(connections, frame)| {
                let ServerFrame::Batch { events, .. } = ServerFrame::decode(&frame).unwrap();
                let epochs: Vec<u64> = events
                    .into_iter()
                    .filter_map(|e| match e {
                        Event::Welcome(w) => Some(w.epoch),
                        _ => None,
                    })
                    .collect();
                connections
                    .into_iter()
                    .flat_map(move |c| epochs.clone().into_iter().map(move |e| (c, e)))
            })
            .collect()
    };
    for (connection, user) in [(1, "ana"), (2, "bob"), (3, "cy")] {
        shard
            .connect(
                connection,
                identity(user, Role::Viewer),
                LIFETIME_MS,
                now_ms,
            )
            .unwrap();
    }
    shard.handle_frame(1, &hello(Some(resume(2))), now_ms); // back from opening 2
    shard.handle_frame(2, &hello(Some(resume(1))), now_ms);
    shard.handle_frame(3, &hello(None), now_ms);
    let ShardTick {
        state_asks: asks,
        sent_to: sent,
        ..
    } = shard_tick(&mut shard, &mut now_ms);
    assert_eq!(asks, 1, "the shard asks the room for its state at once");
    assert!(
        sent.contains(&2) && sent.contains(&3) && !sent.contains(&1),
        "ana waits, bob and cy are welcomed from the copy: {sent:?}"
    );
    // More Hellos naming made-up openings within the retry interval: no second ask.
    for connection in 10..20 {
        join_shard_resuming(
            &mut shard,
            connection,
            Some(resume(connection + 100)),
            now_ms,
        );
    }
    let mut asked_again = false;
    while now_ms < 1_000 + SHARD_SNAPSHOT_RETRY_MS {
        asked_again |= shard_tick(&mut shard, &mut now_ms).state_asks > 0;
    }
    assert!(!asked_again, "one ask a retry interval");
    // A batch without the state welcomes nobody who waits for it.
    let down = own_down(2, now_ms, None, Vec::new());
    shard.handle_down(&down.encode(), now_ms).unwrap();
    assert_eq!(welcomes(&mut shard), []);
    // The room's state names opening 2: ana is welcomed into it, and so is everyone who
    // waited (the made-up openings were stale, the room's state says which is live).
    let mut snapshot = first_down(now_ms, Vec::new(), 0).snapshot.unwrap();
    snapshot.epoch = 2;
    let down = own_down(3, now_ms, Some(snapshot), Vec::new());
    shard.handle_down(&down.encode(), now_ms).unwrap();
    let mut welcomed = welcomes(&mut shard);
    welcomed.sort();
    let expected: Vec<(ConnectionId, u64)> = std::iter::once((1, 2))
        .chain((10..20).map(|c| (c, 2)))
        .collect();
    assert_eq!(welcomed, expected);
}

/// The room ended and opened again, and this shard has heard of the end (its copy says
/// so) but not yet of the new opening: a viewer the room object placed here in the new
/// opening is not told the room ended (its client would stop for good); its Hello waits
/// for the room's state, asked at once, and is welcomed into the new opening. A viewer
/// placed in the copy's opening is welcomed from the copy at once.
#[test]
fn a_viewer_placed_in_an_opening_the_shard_has_not_heard_of_waits_for_it() {
    let mut now_ms = 1_000;
    let mut shard = shard_with_state(now_ms); // the copy is of opening 1
    let ended = own_down(2, now_ms, None, Vec::new());
    let ended = ShardDown {
        broadcast: vec![Event::RoomEnded],
        ..ended
    };
    shard.handle_down(&ended.encode(), now_ms).unwrap();
    while shard.poll_output().is_some() {}
    // Refused for the copy's end before (`4410`): its client stopped for good.
    shard
        .connect_placed(
            1,
            identity("ana", Role::Viewer),
            LIFETIME_MS,
            Some(2),
            now_ms,
        )
        .unwrap();
    shard.handle_frame(1, &hello(None), now_ms);
    let ShardTick {
        state_asks,
        events: told,
        closes,
        ..
    } = shard_tick(&mut shard, &mut now_ms);
    assert_eq!(closes, [], "not closed for the copy's end");
    assert!(state_asks > 0, "the shard asks for the room's state");
    assert!(told.is_empty(), "nothing from the ended copy: {told:?}");
    // A batch without the state (the room serves 16 states a flush): the copy still says
    // ended, and ana, placed in the live opening, is not closed for it.
    let no_state = own_down(3, now_ms, None, Vec::new());
    shard.handle_down(&no_state.encode(), now_ms).unwrap();
    assert_eq!(shard_closes(&mut shard), []);
    let mut snapshot = first_down(now_ms, Vec::new(), 0).snapshot.unwrap();
    snapshot.epoch = 2;
    let down = own_down(4, now_ms, Some(snapshot), Vec::new());
    shard.handle_down(&down.encode(), now_ms).unwrap();
    let told = sent_events(&mut shard);
    assert!(
        told.iter()
            .any(|e| matches!(e, Event::Welcome(w) if w.epoch == 2)),
        "{told:?}"
    );
    assert!(!told.contains(&Event::RoomEnded), "{told:?}");
    // Placed in the copy's opening: welcomed at once.
    shard
        .connect_placed(
            2,
            identity("bob", Role::Viewer),
            LIFETIME_MS,
            Some(2),
            now_ms,
        )
        .unwrap();
    shard.handle_frame(2, &hello(None), now_ms);
    now_ms += TICK_MS;
    shard.handle_timeout(now_ms);
    assert!(sent_events(&mut shard)
        .iter()
        .any(|e| matches!(e, Event::Welcome(w) if w.epoch == 2)));
}

/// What one tick of a shard sent (its batches up answered `Applied`).
#[derive(Default)]
struct ShardTick {
    /// Batches up that asked for the room's state.
    state_asks: usize,
    sent_to: Vec<ConnectionId>,
    events: Vec<Event>,
    closes: Vec<(ConnectionId, CloseCode)>,
}

fn shard_tick(shard: &mut Shard, now_ms: &mut u64) -> ShardTick {
    *now_ms += TICK_MS;
    shard.handle_timeout(*now_ms);
    let mut tick = ShardTick::default();
    while let Some(output) = shard.poll_output() {
        match output {
            ShardOutput::Up { seq, batch } => {
                tick.state_asks += usize::from(ShardUp::decode(&batch).unwrap().needs_snapshot);
                shard.up_answered(seq, UpAnswer::Applied, *now_ms);
            }
            ShardOutput::Send { connections, frame } => {
                let ServerFrame::Batch { events, .. } = ServerFrame::decode(&frame).unwrap();
                tick.sent_to.extend(connections);
                tick.events.extend(events);
            }
            ShardOutput::Close { connection, code } => tick.closes.push((connection, code)),
            _ => {}
        }
    }
    tick
}

/// A shard whose batch names an opening that ended (it missed this one's start) gets the
/// room's state in the room's next batch to it, without waiting to find a gap.
#[test]
fn a_shard_batch_of_an_ended_opening_brings_it_the_rooms_state() {
    let mut room = sharded_room_with_a_poll(2);
    let mut now = 0;
    batches_to_shards(&mut room, &mut now); // the first states, asked or not
    room.shard_up(&ana_up(1, Vec::new(), 9, 1).encode(), now)
        .unwrap();
    assert_eq!(
        shards_sent_state(&batches_to_shards(&mut room, &mut now)),
        [1]
    );
    let this_opening = ShardUp {
        epoch: 2,
        seq: 2,
        ..ana_up(1, Vec::new(), 9, 1)
    };
    room.shard_up(&this_opening.encode(), now).unwrap();
    assert_eq!(
        shards_sent_state(&batches_to_shards(&mut room, &mut now)),
        Vec::<u16>::new()
    );
}

/// Shards that ask for the room's state at every batch do not starve another of the
/// `SHARD_SNAPSHOTS_PER_FLUSH_MAX` states a flush: they are served round robin.
#[test]
fn shards_asking_at_every_batch_do_not_starve_another_of_the_state() {
    let mut now = 0;
    let mut room = Room::create(info(), 1, now);
    room.admin(
        AdminCommand::SetShards {
            shards: SHARDS_PER_ROOM_MAX,
        },
        now,
    )
    .unwrap();
    let ask = |shard: u16, seq: u64| {
        ShardUp {
            shard,
            needs_snapshot: true,
            online: 0,
            likes: 0,
            frames: Vec::new(),
            instance: 7,
            seq,
            epoch: 1,
        }
        .encode()
    };
    let served_in_flush =
        |room: &mut Room, now: &mut u64| shards_sent_state(&batches_to_shards(room, now));
    let last = SHARDS_PER_ROOM_MAX - 1;
    let mut last_served = false;
    for seq in 1..=40 {
        // The first shards ask again before every flush; the last one asked once.
        for shard in 0..SHARD_SNAPSHOTS_PER_FLUSH_MAX as u16 {
            room.shard_up(&ask(shard, seq), now).unwrap();
        }
        last_served |= served_in_flush(&mut room, &mut now).contains(&last);
    }
    assert!(last_served, "shard {last} never got the room's state");
}

/// One longest tick of a sharded room: the batches it sends its shards (other output
/// dropped).
fn batches_to_shards(room: &mut Room, now_ms: &mut u64) -> Vec<(u16, Vec<u8>)> {
    batches_to_shards_stalling(room, now_ms, &[])
}

/// `batches_to_shards`, each reported delivered (`Room::shard_batch_done`), as a host
/// would, unless it is a `stalled` shard's.
fn batches_to_shards_stalling(
    room: &mut Room,
    now_ms: &mut u64,
    stalled: &[u16],
) -> Vec<(u16, Vec<u8>)> {
    *now_ms += TICK_MS_MAX;
    room.handle_timeout(*now_ms);
    let batches: Vec<(u16, Vec<u8>)> = std::iter::from_fn(|| room.poll_output())
        .filter_map(|output| match output {
            Output::ToShard { shard, frame } => Some((shard, frame)),
            _ => None,
        })
        .collect();
    for (shard, _) in &batches {
        if !stalled.contains(shard) {
            room.shard_batch_done(*shard, *now_ms);
        }
    }
    batches
}

/// The shards among these batches that were sent the room's state.
fn shards_sent_state(batches: &[(u16, Vec<u8>)]) -> Vec<u16> {
    batches
        .iter()
        .filter(|(_, frame)| ShardDown::decode(frame).unwrap().snapshot.is_some())
        .map(|(shard, _)| *shard)
        .collect()
}

/// A shard's sockets kept across hibernation: one whose `Hello` was heard (answered, or
/// waiting for the room's state) is served as before; one that never said it owes it
/// within `HELLO_DEADLINE_MS` of the restart.
#[test]
fn a_shard_socket_kept_across_hibernation_still_owes_its_hello() {
    let mut now = 0;
    let mut shard = shard_with_state(now);
    join_shard(&mut shard, 1, now);
    shard
        .connect(2, identity("v2", Role::Viewer), LIFETIME_MS, now)
        .unwrap();
    assert!(shard.hello_heard(1) && !shard.hello_heard(2));
    let mut waiting = Shard::new(0, 1, now);
    waiting
        .connect(5, identity("v5", Role::Viewer), LIFETIME_MS, now)
        .unwrap();
    waiting.handle_frame(5, &hello(None), now);
    assert!(
        waiting.hello_heard(5),
        "heard, answered once the state arrives"
    );

    now += 60_000;
    let mut woken = shard_with_state(now);
    woken.reattach(
        1,
        identity("v1", Role::Viewer),
        now + LIFETIME_MS,
        true,
        now,
    );
    woken.reattach(
        2,
        identity("v2", Role::Viewer),
        now + LIFETIME_MS,
        false,
        now,
    );
    assert_eq!(woken.online(), 1);
    let deadline = now + HELLO_DEADLINE_MS;
    let mut closes_at = |at_ms: u64| {
        woken.handle_timeout(at_ms);
        let mut closed = Vec::new();
        while let Some(output) = woken.poll_output() {
            if let ShardOutput::Close { connection, code } = output {
                closed.push((connection, code));
            }
        }
        closed
    };
    assert_eq!(closes_at(deadline - 1), vec![]);
    assert_eq!(closes_at(deadline), vec![(2, CloseCode::HelloTimeout)]);
    assert_eq!(woken.connection_ids().collect::<Vec<_>>(), vec![1]);
}

/// A tick whose batch for a shard passes `RELAY_MESSAGE_BYTES_MAX` (here the admin API
/// setting a large part a thousand times, beside a viewer's comment): a shard refused
/// such a batch whole, and the comment's acknowledgement in it with it. It now goes as
/// pieces within the bound, numbered in turn, which a shard takes with no gap, and the
/// acknowledgement arrives.
#[test]
fn a_tick_past_the_relay_bound_reaches_a_shard_in_pieces_with_its_acks() {
    let mut now = 0;
    let mut room = sharded_room(1, 1, now);
    let mut shard = Shard::new(0, 77, now);
    // The shard's first batch up asks for the state; the room answers with it.
    let ask = batches_up(&mut shard, &mut now, 1).remove(0);
    room.shard_up(&ask.encode(), now).unwrap();
    for (_, frame) in batches_to_shards(&mut room, &mut now) {
        shard.handle_down(&frame, now).unwrap();
    }
    assert!(shard.has_state());

    let value = format!("\"{}\"", "x".repeat(PART_VALUE_BYTES_MAX - 2));
    let sets = RELAY_MESSAGE_BYTES_MAX / PART_VALUE_BYTES_MAX + 50;
    for _ in 0..sets {
        room.admin(
            AdminCommand::SetPart {
                name: "board".into(),
                value: value.clone(),
            },
            now,
        )
        .unwrap();
    }
    let frame = ClientFrame::Comment {
        client_id: 1,
        text: "still here".into(),
    };
    let comment = ana_up(0, vec![frame], 77, 1_000);
    room.shard_up(&comment.encode(), now).unwrap();
    let batches = batches_to_shards(&mut room, &mut now);
    assert!(batches.len() >= 2, "{} batches", batches.len());
    let mut acked = false;
    let mut parts = 0;
    for (_, frame) in &batches {
        assert!(
            frame.len() <= RELAY_MESSAGE_BYTES_MAX,
            "{} bytes",
            frame.len()
        );
        let down = ShardDown::decode(frame).unwrap();
        parts += down
            .broadcast
            .iter()
            .filter(|e| matches!(e, Event::Part { .. }))
            .count();
        acked |= down
            .to_connection
            .iter()
            .any(|(c, e)| *c == 4 && matches!(e, Event::Ack { client_id: 1, .. }));
        shard.handle_down(frame, now).unwrap();
    }
    assert!(acked, "the comment's acknowledgement reached the shard");
    assert!(parts >= sets, "{parts} of {sets} part changes");
    assert_eq!(shard.stats().gaps, 0, "the pieces are numbered in turn");
}

/// A shard's viewer is told of its own actions left out, as the room's viewers are
/// (`Gap` after the rest of its batch): those past the bound of actions held while the
/// shard awaits the room's state, and those the room's outbox for it left out.
#[test]
fn own_actions_a_shard_leaves_out_are_told_as_a_gap() {
    let now_ms = 1_000;
    let mut shard = ana_on_a_shard(now_ms);
    let own = |seqs: std::ops::RangeInclusive<u64>| -> Vec<(u64, Event)> {
        seqs.map(|seq| (1, Event::Action(comment_action(seq, "ana", now_ms))))
            .collect()
    };
    let down = |seq, snapshot, own| own_down(seq, now_ms, snapshot, own);
    let held = OUTBOX_EVENTS_MAX as u64;
    // Batch 2 was lost: the shard holds ana's own comments for the snapshot, one past
    // its bound.
    shard
        .handle_down(&down(3, None, own(1..=held + 1)).encode(), now_ms)
        .unwrap();
    shard.handle_timeout(now_ms + TICK_MS / 2);
    assert!(
        !sent_events(&mut shard)
            .iter()
            .any(|e| matches!(e, Event::Action(_) | Event::Gap { .. })),
        "held, and the Gap with them"
    );
    let mut snapshot = first_down(now_ms, Vec::new(), 0).snapshot.unwrap();
    snapshot.last_seq = held + 1;
    shard
        .handle_down(&down(4, Some(snapshot), Vec::new()).encode(), now_ms)
        .unwrap();
    shard.handle_timeout(now_ms + TICK_MS);
    let events = sent_events(&mut shard);
    let actions = events
        .iter()
        .filter(|e| matches!(e, Event::Action(_)))
        .count();
    assert_eq!(actions, OUTBOX_EVENTS_MAX);
    assert_eq!(
        events.last(),
        Some(&Event::Gap {
            missed_after: held,
            resumed_from: held + 2,
        }),
        "the one past the bound is told, after the rest"
    );

    // The room's Gap for ana's actions its outbox left out comes after her actions.
    let mut gapped = own(held + 2..=held + 2);
    gapped.push((
        1,
        Event::Gap {
            missed_after: held + 2,
            resumed_from: held + 5,
        },
    ));
    shard
        .handle_down(&down(5, None, gapped).encode(), now_ms + TICK_MS)
        .unwrap();
    shard.handle_timeout(now_ms + 2 * TICK_MS);
    let events = sent_events(&mut shard);
    assert_eq!(
        events,
        vec![
            Event::Action(comment_action(held + 2, "ana", now_ms)),
            Event::Gap {
                missed_after: held + 2,
                resumed_from: held + 5,
            },
        ]
    );
}

/// The room's outbox for a viewer on a shard has the room's bound: the own actions
/// past it go to the shard as a `Gap`, not nowhere.
#[test]
fn a_shard_viewers_own_actions_the_room_leaves_out_go_to_its_shard_as_a_gap() {
    let mut now = 0;
    let mut room = sharded_room(1, 2, now);
    let comment = ClientFrame::Comment {
        client_id: 1,
        text: "hi".into(),
    };
    now += TICK_MS;
    room.handle_timeout(now);
    while room.poll_output().is_some() {}
    room.shard_up(&ana_up(1, vec![comment], 9, 1).encode(), now)
        .unwrap();
    let remote = room
        .connections
        .iter()
        .find(|(_, c)| c.remote == Some((1, 4)))
        .map(|(&id, _)| id)
        .expect("ana's frame has an entry in the room");
    let first = room.last_seq() + 1;
    let room_left = (OUTBOX_EVENTS_MAX - room.connections[&remote].outbox.len()) as u64;
    for seq in first..first + room_left + 3 {
        let action = comment_action(seq, "ana", now);
        room.enqueue(remote, Event::Action(action), now);
    }
    now += TICK_MS;
    room.handle_timeout(now);
    let mut to_ana = Vec::new();
    while let Some(output) = room.poll_output() {
        if let Output::ToShard { shard: 1, frame } = output {
            room.shard_batch_done(1, now);
            let down = ShardDown::decode(&frame).unwrap();
            to_ana.extend(
                down.to_connection
                    .into_iter()
                    .filter(|(c, _)| *c == 4)
                    .map(|(_, e)| e),
            );
        }
    }
    assert_eq!(
        to_ana.last(),
        Some(&Event::Gap {
            missed_after: first + room_left - 1,
            resumed_from: first + room_left + 3,
        }),
        "the three past the outbox's bound"
    );
}

/// A shard tells apart runs of a viewer's own actions left out with one kept between
/// them (one `Gap` over both would name the kept one missed), and a full outbox leaves
/// own actions out told, not silently.
#[test]
fn a_shard_tells_each_run_of_own_actions_left_out() {
    let now_ms = 1_000;
    let mut shard = ana_on_a_shard(now_ms);
    let action = |seq: u64| Event::Action(comment_action(seq, "ana", now_ms));
    shard.record_left_out(1, &action(10), now_ms);
    shard.record_left_out(1, &action(11), now_ms);
    shard.push(1, action(15), now_ms);
    shard.record_left_out(1, &action(20), now_ms);
    shard.handle_timeout(now_ms + TICK_MS);
    let gap = |missed_after, resumed_from| Event::Gap {
        missed_after,
        resumed_from,
    };
    let own: Vec<Event> = sent_events(&mut shard)
        .into_iter()
        .filter(|e| matches!(e, Event::Action(_) | Event::Gap { .. }))
        .collect();
    assert_eq!(own, vec![action(15), gap(9, 12), gap(19, 21)]);

    // Past `OWN_GAPS_PER_FLUSH_MAX` runs, the last grows to cover the new ones.
    let runs = OWN_GAPS_PER_FLUSH_MAX as u64;
    for run in 0..runs + 2 {
        shard.record_left_out(1, &action(100 + 2 * run), now_ms);
    }
    shard.handle_timeout(now_ms + 2 * TICK_MS);
    let gaps: Vec<Event> = sent_events(&mut shard)
        .into_iter()
        .filter(|e| matches!(e, Event::Gap { .. }))
        .collect();
    assert_eq!(gaps.len(), OWN_GAPS_PER_FLUSH_MAX);
    let last = 100 + 2 * (runs - 1);
    assert_eq!(gaps.last(), Some(&gap(last - 1, last + 5)), "{gaps:?}");

    for _ in 0..OUTBOX_EVENTS_MAX {
        shard.push(1, Event::Online { count: 1 }, now_ms);
    }
    shard.push(1, action(30), now_ms);
    shard.handle_timeout(now_ms + 3 * TICK_MS);
    let events = sent_events(&mut shard);
    assert_eq!(events.last(), Some(&gap(29, 31)), "past the full outbox");
    assert!(!events.contains(&action(30)));
}

/// A shard slower than the room's ticks: once `SHARD_DOWN_BATCHES_IN_FLIGHT_MAX` of its
/// batches are on their way, the room holds its output instead of queueing batch after
/// batch in the host (which grew without bound, then dropped whole batches with their
/// acknowledgements and direct messages). When the host reports them done, the ticks it
/// missed come in one batch: every broadcast event in order, every answer, every direct
/// message. Past `SHARD_HELD_EVENTS_MAX` held events it gets the room's state instead,
/// and the answers still come. The other shard is never held up.
#[test]
fn a_shard_behind_gets_the_ticks_it_missed_in_one_batch_with_every_answer() {
    let mut now_ms = 0;
    let mut room = sharded_room(1, 2, now_ms);
    let slow = ovation_proto::shard_of("ana", 2);
    let tick = |room: &mut Room, now_ms: &mut u64, stalled: bool| {
        tick_stalling(room, now_ms, stalled.then_some(slow))
    };
    for _ in 0..4 {
        tick(&mut room, &mut now_ms, false); // the first states
    }
    // The slow shard stops answering; every tick has something for both shards.
    let mut to_slow = 0;
    let mut to_fast = 0;
    let mut last_to_slow = 0;
    for round in 0..10u64 {
        host_says(&mut room, &format!("m{round}"), now_ms);
        if round == 6 {
            let comment = ClientFrame::Comment {
                client_id: 77,
                text: "held?".into(),
            };
            room.shard_up(&ana_up(slow, vec![comment], 9, 1).encode(), now_ms)
                .unwrap();
            let direct = AdminCommand::Direct {
                from_user: "host".into(),
                to_user: "ana".into(),
                payload: "\"for ana\"".into(),
            };
            room.admin(direct, now_ms).unwrap();
        }
        for (shard, down) in tick(&mut room, &mut now_ms, true) {
            if shard == slow {
                to_slow += 1;
                last_to_slow = down.seq;
            } else {
                to_fast += 1;
            }
        }
    }
    assert_eq!(to_slow, SHARD_DOWN_BATCHES_IN_FLIGHT_MAX, "then held");
    assert_eq!(to_fast, 10, "the other shard is not held up");
    assert!(room.stats().shard_flushes_held >= 6);
    // Its batches arrive: the rest comes in one batch.
    for _ in 0..SHARD_DOWN_BATCHES_IN_FLIGHT_MAX {
        room.shard_batch_done(slow, now_ms);
    }
    assert!(room
        .poll_timeout()
        .is_some_and(|at| at <= now_ms + TICK_MS_MAX));
    let caught_up: Vec<ShardDown> = tick(&mut room, &mut now_ms, false)
        .into_iter()
        .filter(|(shard, _)| *shard == slow)
        .map(|(_, down)| down)
        .collect();
    assert_eq!(caught_up.len(), 1, "one batch for the ticks missed");
    let down = &caught_up[0];
    assert_eq!(down.seq, last_to_slow + 1, "no hole: nothing was dropped");
    let said: Vec<String> = down
        .broadcast
        .iter()
        .filter_map(|e| match e {
            Event::Action(Action {
                body: ActionBody::System { text },
                ..
            }) => Some(text.clone()),
            _ => None,
        })
        .collect();
    let expected: Vec<String> = (SHARD_DOWN_BATCHES_IN_FLIGHT_MAX as u64..10)
        .map(|round| format!("m{round}"))
        .collect();
    assert_eq!(said, expected, "every event held, in order");
    assert!(
        down.to_connection
            .iter()
            .any(|(c, e)| *c == 4 && matches!(e, Event::Ack { client_id: 77, .. })),
        "{:?}",
        down.to_connection
    );
    assert!(
        down.to_user
            .iter()
            .any(|(user, e)| user == "ana" && matches!(e, Event::Direct { .. })),
        "{:?}",
        down.to_user
    );
    assert!(down.snapshot.is_none());

    // Held past `SHARD_HELD_EVENTS_MAX` events: the room's state instead, answers kept.
    for _ in 0..SHARD_DOWN_BATCHES_IN_FLIGHT_MAX {
        host_says(&mut room, "fill", now_ms);
        tick(&mut room, &mut now_ms, true);
    }
    for i in 0..=SHARD_HELD_EVENTS_MAX {
        host_says(&mut room, &format!("flood {i}"), now_ms);
    }
    let comment = ClientFrame::Comment {
        client_id: 78,
        text: "still held?".into(),
    };
    room.shard_up(&ana_up(slow, vec![comment], 9, 2).encode(), now_ms)
        .unwrap();
    assert!(tick(&mut room, &mut now_ms, true)
        .iter()
        .all(|(shard, _)| *shard != slow));
    for _ in 0..SHARD_DOWN_BATCHES_IN_FLIGHT_MAX {
        room.shard_batch_done(slow, now_ms);
    }
    let caught_up: Vec<ShardDown> = tick(&mut room, &mut now_ms, false)
        .into_iter()
        .filter(|(shard, _)| *shard == slow)
        .map(|(_, down)| down)
        .collect();
    assert_eq!(caught_up.len(), 1);
    assert!(caught_up[0].snapshot.is_some(), "the state instead");
    assert!(
        !caught_up[0].broadcast.iter().any(|e| matches!(e,
            Event::Action(Action { body: ActionBody::System { text }, .. }) if text.starts_with("flood"))),
        "the state brings them, not the batch"
    );
    assert!(caught_up[0]
        .to_connection
        .iter()
        .any(|(_, e)| matches!(e, Event::Ack { client_id: 78, .. })));
}

/// Room-wide, the broadcasts held for shards behind stay within
/// `ROOM_SHARD_HELD_BYTES_MAX` (each shard's own count bound is far from reached by large
/// parts): past it the shard holding the most is owed the room's state instead, and only
/// it; the other shard behind keeps its held events and gets each of them, in order; the
/// shard keeping up gets every part as it was set.
#[test]
fn held_broadcasts_past_the_rooms_bytes_give_up_the_shard_holding_the_most() {
    let mut now_ms = 0;
    let mut room = sharded_room(1, 3, now_ms);
    let stalled = [0u16, 1];
    let tick = |room: &mut Room, now_ms: &mut u64, stalling: bool| {
        tick_stalling_shards(room, now_ms, if stalling { &stalled } else { &[] })
    };
    for _ in 0..4 {
        tick(&mut room, &mut now_ms, false); // the first states
    }
    for _ in 0..SHARD_DOWN_BATCHES_IN_FLIGHT_MAX {
        host_says(&mut room, "fill", now_ms);
        tick(&mut room, &mut now_ms, true);
    }
    let value = format!("\"{}\"", "x".repeat(PART_VALUE_BYTES_MAX - 2));
    let set = |room: &mut Room, name: String, now_ms: u64| {
        let command = AdminCommand::SetPart {
            name,
            value: value.clone(),
        };
        room.admin(command, now_ms).unwrap();
    };
    // Shard 0 reports one batch: it is sent the first tick of parts, then held again, so
    // shard 1 holds one tick more than shard 0 from then on.
    room.shard_batch_done(0, now_ms);
    let sets_per_tick = 32;
    let mut to_fast = Vec::new();
    let mut to_0 = 0;
    let mut sets = 0u64;
    while room.shards.state_owed.is_empty() {
        assert!(
            (sets as usize) < 2 * ROOM_SHARD_HELD_BYTES_MAX / PART_VALUE_BYTES_MAX,
            "no shard was owed the state"
        );
        for i in 0..sets_per_tick {
            set(&mut room, format!("p{i}"), now_ms);
            sets += 1;
        }
        for (shard, down) in tick(&mut room, &mut now_ms, true) {
            match shard {
                2 => to_fast.push(down),
                0 => to_0 += 1,
                _ => panic!("shard 1 is held"),
            }
        }
    }
    assert_eq!(to_0, 1, "shard 0 is held after its one batch");
    assert_eq!(
        room.shards.state_owed.iter().copied().collect::<Vec<_>>(),
        vec![1],
        "the shard holding the most, only"
    );
    let held_bytes: usize = room.shards.held_broadcast.values().map(|(_, b)| b).sum();
    assert!(held_bytes <= ROOM_SHARD_HELD_BYTES_MAX, "{held_bytes}");
    let (held_by_0, _) = &room.shards.held_broadcast[&0];
    assert!(!held_by_0.is_empty() && held_by_0.len() < SHARD_HELD_EVENTS_MAX);
    let parts_set_to_fast = to_fast
        .iter()
        .flat_map(|down| &down.broadcast)
        .filter(|e| matches!(e, Event::Part { .. }))
        .count() as u64;
    assert_eq!(
        parts_set_to_fast, sets,
        "the shard keeping up gets every part"
    );

    // Both catch up: shard 1 with the state, shard 0 with every part it held, in order.
    for shard in stalled {
        for _ in 0..SHARD_DOWN_BATCHES_IN_FLIGHT_MAX {
            room.shard_batch_done(shard, now_ms);
        }
    }
    let caught_up = tick(&mut room, &mut now_ms, false);
    let first_to = |to: u16| {
        caught_up
            .iter()
            .find(|(shard, _)| *shard == to)
            .map(|(_, down)| down)
            .unwrap_or_else(|| panic!("a batch to shard {to}"))
    };
    assert!(first_to(1).snapshot.is_some(), "shard 1 is sent the state");
    let zero = first_to(0);
    assert!(zero.snapshot.is_none(), "shard 0 is not");
    let versions: Vec<u64> = caught_up
        .iter()
        .filter(|(shard, _)| *shard == 0)
        .flat_map(|(_, down)| &down.broadcast)
        .filter_map(|e| match e {
            Event::Part { version, .. } => Some(*version),
            _ => None,
        })
        .collect();
    assert!(!versions.is_empty());
    assert!(
        versions.windows(2).all(|w| w[1] == w[0] + 1),
        "every part held, in order"
    );
    assert_eq!(versions.last(), Some(&room.parts.total_version()));
}

/// A shard whose held broadcasts the room gave up (past `SHARD_HELD_EVENTS_MAX`) gets
/// nothing but with the room's state, even when more shards want a state than a flush
/// serves (`SHARD_SNAPSHOTS_PER_FLUSH_MAX`): a batch without it would skip the dropped
/// events with no hole in the numbers, so no `Gap`. And a shard whose host never reports
/// its batches is let go after `SHARD_HELD_MS_MAX`, with the state.
#[test]
fn a_shard_whose_held_events_were_given_up_gets_nothing_before_the_state() {
    let mut now_ms = 0;
    let shards = 2 * SHARD_SNAPSHOTS_PER_FLUSH_MAX as u16 + 2;
    let mut room = sharded_room(1, shards, now_ms);
    let slow = 0u16;
    let tick = |room: &mut Room, now_ms: &mut u64, report: bool| {
        tick_stalling(room, now_ms, (!report).then_some(slow))
    };
    for _ in 0..8 {
        tick(&mut room, &mut now_ms, true); // every shard's first state
    }
    assert_eq!(room.shards_waiting_for_snapshot(), 0);
    for _ in 0..SHARD_DOWN_BATCHES_IN_FLIGHT_MAX {
        host_says(&mut room, "fill", now_ms);
        tick(&mut room, &mut now_ms, false);
    }
    for _ in 0..=SHARD_HELD_EVENTS_MAX {
        host_says(&mut room, "flood", now_ms);
    }
    tick(&mut room, &mut now_ms, false);
    // Every other shard wants a state too (the room restarted its memory of them).
    for shard in 1..shards {
        room.shards.snapshot_wanted.insert(shard);
    }
    // Served last: the flushes before serve the others.
    room.shards.snapshot_cursor = 1;
    for _ in 0..SHARD_DOWN_BATCHES_IN_FLIGHT_MAX {
        room.shard_batch_done(slow, now_ms);
    }
    let mut got_state = false;
    for _ in 0..8 {
        host_says(&mut room, "after", now_ms);
        for (shard, down) in tick(&mut room, &mut now_ms, true) {
            if shard == slow && !got_state {
                assert!(down.snapshot.is_some(), "its first batch carries the state");
                got_state = true;
            }
        }
    }
    assert!(got_state);

    // A host that never reports: let go after `SHARD_HELD_MS_MAX`, with the state.
    for _ in 0..SHARD_DOWN_BATCHES_IN_FLIGHT_MAX {
        host_says(&mut room, "again", now_ms);
        tick(&mut room, &mut now_ms, false);
    }
    let ticks_max = SHARD_HELD_MS_MAX / TICK_MS_MAX + 2;
    let mut released = None;
    for _ in 0..ticks_max {
        host_says(&mut room, "waiting", now_ms);
        if let Some((_, down)) = tick(&mut room, &mut now_ms, false)
            .into_iter()
            .find(|(shard, _)| *shard == slow)
        {
            released = Some(down);
            break;
        }
    }
    let released = released.expect("let go within SHARD_HELD_MS_MAX");
    assert!(released.snapshot.is_some(), "with the state");
    // The lost batches' reports come late after all: they are not taken for the
    // batches sent since, which still count against the bound.
    for _ in 0..SHARD_DOWN_BATCHES_IN_FLIGHT_MAX {
        room.shard_batch_done(slow, now_ms);
    }
    let mut sent_since = 1;
    for _ in 0..2 * SHARD_DOWN_BATCHES_IN_FLIGHT_MAX {
        host_says(&mut room, "more", now_ms);
        sent_since += tick(&mut room, &mut now_ms, false)
            .iter()
            .filter(|(shard, _)| *shard == slow)
            .count() as u32;
    }
    assert_eq!(sent_since, SHARD_DOWN_BATCHES_IN_FLIGHT_MAX);
}

/// One longest tick of a sharded room: its batches to shards, decoded, each reported
/// delivered (`Room::shard_batch_done`) unless it is `stalled`'s.
fn tick_stalling(room: &mut Room, now_ms: &mut u64, stalled: Option<u16>) -> Vec<(u16, ShardDown)> {
    tick_stalling_shards(room, now_ms, stalled.as_slice())
}

/// `tick_stalling` with any number of shards stalled.
fn tick_stalling_shards(
    room: &mut Room,
    now_ms: &mut u64,
    stalled: &[u16],
) -> Vec<(u16, ShardDown)> {
    batches_to_shards_stalling(room, now_ms, stalled)
        .into_iter()
        .map(|(shard, frame)| (shard, ShardDown::decode(&frame).unwrap()))
        .collect()
}

/// The host says `text` to everyone (a system message: one broadcast event).
fn host_says(room: &mut Room, text: &str, now_ms: u64) {
    let command = AdminCommand::Broadcast {
        from_user: "host".into(),
        from_name: "Host".into(),
        text: text.into(),
    };
    room.admin(command, now_ms).unwrap();
}

/// One longest tick of a room of one shard: its batches handed to `shard`, each
/// reported delivered (`Room::shard_batch_done`); the room's other output dropped.
fn room_tick_to_shard(room: &mut Room, shard: &mut Shard, now_ms: &mut u64) {
    *now_ms += TICK_MS_MAX;
    room.handle_timeout(*now_ms);
    while let Some(output) = room.poll_output() {
        if let Output::ToShard { shard: to, frame } = output {
            room.shard_batch_done(to, *now_ms);
            assert_eq!(to, shard.index(), "a room of one shard");
            shard
                .handle_down(&frame, *now_ms)
                .expect("the room's batch");
        }
    }
}

/// A quiz's score notices for a big room wait in the room while a shard is behind, not in
/// that shard's held answers, where past `SHARD_HELD_ANSWERS_MAX` they were dropped: every
/// participant is told once, none dropped.
#[test]
fn score_notices_wait_for_a_shard_behind_and_reach_everyone_once() {
    let mut now_ms = 0;
    let mut room = sharded_room(1, 2, now_ms);
    join(&mut room, 1, "host", Role::Host, now_ms);
    open_quiz(&mut room, 1, &quiz_spec(&[(2, 0)], 60_000), now_ms);
    tick_stalling(&mut room, &mut now_ms, None);
    let participants = 3 * SHARD_HELD_ANSWERS_MAX;
    for (seq, users) in (0..participants)
        .collect::<Vec<_>>()
        .chunks(RELAY_FRAMES_PER_BATCH_MAX)
        .enumerate()
    {
        for shard in 0..2u16 {
            let frames = users
                .iter()
                .filter(|&&i| ovation_proto::shard_of(&format!("u{i}"), 2) == shard)
                .map(|&i| ovation_proto::RelayedFrame {
                    connection: i as u64,
                    user: format!("u{i}"),
                    name: format!("u{i}"),
                    role: Role::Viewer,
                    frame: ClientFrame::Answer {
                        client_id: 1,
                        quiz_id: "z1".into(),
                        question: 0,
                        option: 0,
                    },
                })
                .collect();
            let up = ShardUp {
                frames,
                ..ana_up(shard, Vec::new(), 9 + u64::from(shard), seq as u64 + 1)
            };
            room.shard_up(&up.encode(), now_ms).unwrap();
        }
        tick_stalling(&mut room, &mut now_ms, None);
    }
    // Shard 0 falls behind before the question closes.
    let slow = 0u16;
    for _ in 0..SHARD_DOWN_BATCHES_IN_FLIGHT_MAX {
        host_says(&mut room, "hold on", now_ms);
        tick_stalling(&mut room, &mut now_ms, Some(slow));
    }
    let close = serde_json::json!({"command": "close_question", "id": "z1"});
    send_command(&mut room, 1, close, 3, now_ms);
    let mut told: BTreeMap<String, u32> = BTreeMap::new();
    let mut count = |batches: Vec<(u16, ShardDown)>| {
        for (_, down) in batches {
            for (user, event) in down.to_user {
                if matches!(&event, Event::Direct { payload, .. } if payload.contains("quiz_score"))
                {
                    *told.entry(user).or_default() += 1;
                }
            }
        }
    };
    for _ in 0..8 {
        count(tick_stalling(&mut room, &mut now_ms, Some(slow)));
    }
    for _ in 0..SHARD_DOWN_BATCHES_IN_FLIGHT_MAX {
        room.shard_batch_done(slow, now_ms);
    }
    for _ in 0..20 {
        count(tick_stalling(&mut room, &mut now_ms, None));
    }
    assert_eq!(room.stats().shard_answers_dropped, 0);
    assert_eq!(told.len(), participants, "every participant told");
    assert!(told.values().all(|&n| n == 1), "each once");
}
