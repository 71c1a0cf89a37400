//! Delivery: snapshots, one frame per connection per tick, the leading edge, resumes and
//! gaps, batch splitting (`flush.rs`, `ring.rs`, `welcome.rs`).

use super::*;

#[test]
fn joiner_gets_snapshot_and_no_older_actions() {
    let mut now = 1_000;
    let mut room = Room::create(info(), 7, now);
    join(&mut room, 1, "a", Role::Viewer, now);
    room.handle_frame(1, &comment("before", 1), now);
    tick(&mut room, &mut now);
    join(&mut room, 2, "b", Role::Viewer, now);
    let out = tick(&mut room, &mut now);
    let b = &out.events[&2];
    assert!(matches!(&b[0], Event::Welcome(w) if w.epoch == 7 && w.action_cursor == 1));
    assert!(b
        .iter()
        .any(|e| matches!(e, Event::Part { name, .. } if name == "room")));
    assert!(actions(b).is_empty(), "joiner saw an older action");
}

/// Leading edge: a comment goes out at once while the fan-out budget lasts, later
/// output at most one frame per `FLUSH_SPACING_MS_MIN` (a room that spends its budget:
/// `a_room_with_many_sockets_batches_at_a_longer_tick`).
#[test]
fn output_goes_out_at_once_within_the_budget_one_spacing_apart() {
    let mut room = Room::create(info(), 1, 0);
    join(&mut room, 1, "ana", Role::Viewer, 0);
    room.handle_timeout(0);
    drain(&mut room);
    let quiet = 10_000;
    room.handle_frame(1, &comment("first", 1), quiet);
    assert_eq!(
        room.tick_pending(),
        Some(quiet),
        "a quiet room flushes at once"
    );
    room.handle_timeout(quiet);
    let out = drain(&mut room);
    assert!(actions(&out.events[&1]).len() == 1);
    room.handle_frame(1, &comment("second", 2), quiet + 5);
    let spaced = quiet + FLUSH_SPACING_MS_MIN;
    assert_eq!(
        room.tick_pending(),
        Some(spaced),
        "soon after a flush: one spacing after it, not a tick"
    );
    room.handle_frame(1, &comment("third", 3), quiet + 8);
    room.handle_timeout(spaced - 1);
    assert!(
        drain(&mut room).events.is_empty(),
        "nothing before the spacing"
    );
    room.handle_timeout(spaced);
    assert_eq!(
        actions(&drain(&mut room).events[&1]).len(),
        2,
        "both in one frame"
    );
}

#[test]
fn output_is_one_frame_per_connection_per_tick() {
    let mut now = 0;
    let mut room = Room::create(info(), 1, now);
    join(&mut room, 1, "a", Role::Viewer, now);
    join(&mut room, 2, "b", Role::Viewer, now);
    tick(&mut room, &mut now);
    room.handle_frame(1, &comment("x", 1), now);
    room.handle_frame(1, &comment("y", 2), now);
    room.handle_frame(
        1,
        &ClientFrame::Like {
            client_id: 3,
            count: 4,
        }
        .encode(),
        now,
    );
    let out = tick(&mut room, &mut now);
    assert_eq!(out.frames[&1], 1);
    assert_eq!(out.frames[&2], 1);
    assert_eq!(actions(&out.events[&2]), vec![1, 2]);
    assert!(out.events[&2].contains(&Event::Likes { total: 4 }));
}

#[test]
fn resume_within_buffer_misses_nothing_and_past_it_reports_a_gap() {
    let mut now = 0;
    let mut room = Room::create(info(), 9, now);
    join(&mut room, 1, "a", Role::Viewer, now);
    tick(&mut room, &mut now);
    for i in 0..5 {
        now += 1_000;
        room.handle_frame(1, &comment("c", i), now);
    }
    tick(&mut room, &mut now);
    let resume = |cursor| {
        Some(Resume {
            epoch: 9,
            action_cursor: cursor,
            part_versions: vec![PartVersion {
                name: "room".into(),
                version: room_version(),
            }],
        })
    };
    room.connect(2, identity("b", Role::Viewer), LIFETIME_MS, now)
        .unwrap();
    room.handle_frame(2, &hello(resume(2)), now);
    let out = tick(&mut room, &mut now);
    assert_eq!(actions(&out.events[&2]), vec![3, 4, 5]);
    assert!(
        !out.events[&2]
            .iter()
            .any(|e| matches!(e, Event::Part { .. })),
        "resumer got a part it already had"
    );
    // Age everything out of the buffer; resuming now reports the gap.
    now += RING_AGE_MS_MAX + 1;
    room.connect(3, identity("c", Role::Viewer), LIFETIME_MS, now)
        .unwrap();
    room.handle_frame(3, &hello(resume(2)), now);
    let out = tick(&mut room, &mut now);
    assert!(out.events[&3].contains(&Event::Gap {
        missed_after: 2,
        resumed_from: 6
    }));
}

fn room_version() -> u64 {
    1 // the `room` part is the first version of a new room
}

#[test]
fn new_epoch_gets_a_full_snapshot() {
    let mut now = 0;
    let mut room = Room::create(info(), 5, now);
    room.connect(1, identity("a", Role::Viewer), LIFETIME_MS, now)
        .unwrap();
    room.handle_frame(
        1,
        &hello(Some(Resume {
            epoch: 4,
            action_cursor: 100,
            part_versions: vec![PartVersion {
                name: "room".into(),
                version: 99,
            }],
        })),
        now,
    );
    let out = tick(&mut room, &mut now);
    let events = &out.events[&1];
    assert!(matches!(&events[0], Event::Welcome(w) if !w.resumed && w.epoch == 5));
    assert!(events
        .iter()
        .any(|e| matches!(e, Event::Part { name, .. } if name == "room")));
}

#[test]
fn a_room_with_many_sockets_batches_at_a_longer_tick() {
    let mut now = 0;
    let mut room = Room::create(info(), 1, now);
    join(&mut room, 1, "a", Role::Viewer, now);
    let out = tick(&mut room, &mut now);
    assert!(
        matches!(&out.events[&1][0], Event::Welcome(w) if u64::from(w.tick_ms) == TICK_MS),
        "a small room batches at the short tick: {:?}",
        out.events[&1][0]
    );
    let sockets: u64 = 5_000;
    for id in 2..=sockets {
        join(&mut room, id, &format!("v{id}"), Role::Viewer, now);
    }
    let long_tick_ms = tick_ms_for(sockets);
    assert!(long_tick_ms > TICK_MS);
    assert_eq!(room.tick_ms(), long_tick_ms);
    now += 1_000;
    room.handle_timeout(now);
    let out = drain(&mut room);
    assert!(
        matches!(&out.events[&sockets][0], Event::Welcome(w) if u64::from(w.tick_ms) == long_tick_ms),
        "a newcomer is told the tick"
    );

    // The first comment goes out at once (the fan-out budget holds a flush to every
    // socket); the next, soon after, waits until the budget has refilled enough, never
    // longer than the tick after that flush, then reaches every socket in one frame.
    now += 10_000;
    room.handle_timeout(now);
    drain(&mut room);
    room.handle_frame(1, &comment("first", 1), now);
    assert_eq!(room.tick_pending(), Some(now), "within the budget: at once");
    room.handle_timeout(now);
    assert_eq!(drain(&mut room).frames.len() as u64, sockets);
    let flushed = now;
    room.handle_frame(1, &comment("hi", 2), now + 1);
    let refilled_ms =
        (sockets - (FANOUT_FRAMES_BURST - sockets)) * 1_000 / FANOUT_FRAMES_PER_S_TARGET;
    let due = flushed + refilled_ms.min(long_tick_ms);
    assert_eq!(room.tick_pending(), Some(due));
    assert!(due > flushed + TICK_MS && due <= flushed + long_tick_ms);
    room.handle_timeout(due - 1);
    let early = drain(&mut room);
    assert!(
        early.events.is_empty(),
        "nothing is sent before the budget allows"
    );
    room.handle_timeout(due);
    let out = drain(&mut room);
    assert_eq!(
        out.frames.len() as u64,
        sockets,
        "every socket gets the batch"
    );
    assert!(out.frames.values().all(|&frames| frames == 1));
    assert_eq!(actions(&out.events[&sockets]).len(), 1);

    // The room's per-second allowance holds whatever the tick: a longer tick takes more
    // actions than the short tick's share (which would refuse these as "room busy").
    now += 10_000;
    room.handle_timeout(now);
    drain(&mut room);
    let senders = per_tick(ROOM_ACTIONS_PER_S_MAX, TICK_MS) as u64 + 100;
    for id in 1..=senders {
        room.handle_frame(id, &comment("many", 3), now);
    }
    room.handle_timeout(now + long_tick_ms);
    let out = drain(&mut room);
    assert_eq!(actions(&out.events[&sockets]).len() as u64, senders);
}

#[test]
fn a_pull_returns_at_most_pull_events_max_actions() {
    let mut now = 0;
    let mut room = Room::create(info(), 1, now);
    let total = PULL_EVENTS_MAX as u64 + 1;
    for i in 0..total {
        let text = format!("notice {i}");
        room.admin(
            AdminCommand::Broadcast {
                from_user: "admin".into(),
                from_name: "Admin".into(),
                text,
            },
            now,
        )
        .unwrap();
        tick(&mut room, &mut now);
    }
    let (actions, gap) = room.actions_since(0, now);
    assert!(!gap);
    assert_eq!(actions.len(), PULL_EVENTS_MAX);
    let (rest, _) = room.actions_since(actions.last().unwrap().seq, now);
    assert_eq!(
        rest.len(),
        1,
        "the one past the limit comes with the next pull"
    );
}

/// A pull reader away longer than the ring keeps actions, back in a quiet room: its read
/// finds the gap, returns nothing, and moves the cursor to the room's last number, so
/// the next read from there finds no gap (before, the cursor stayed and every poll told
/// the same empty gap).
#[test]
fn a_pull_past_a_gap_with_nothing_left_moves_on_to_the_last_number() {
    let mut now = 0;
    let mut room = Room::create(info(), 1, now);
    for i in 0..3 {
        let text = format!("notice {i}");
        let notice = AdminCommand::Broadcast {
            from_user: "admin".into(),
            from_name: "Admin".into(),
            text,
        };
        room.admin(notice, now).unwrap();
        tick(&mut room, &mut now);
    }
    let since = 1;
    now += RING_AGE_MS_MAX + 1_000;
    let (actions, gap) = room.actions_since(since, now);
    assert!(gap && actions.is_empty(), "the case under test");
    let cursor = room.pull_cursor(since, &actions, gap);
    assert_eq!(cursor, room.last_seq());
    let (actions, gap) = room.actions_since(cursor, now);
    assert!(!gap && actions.is_empty());
    assert_eq!(room.pull_cursor(cursor, &actions, gap), cursor);
    assert_eq!(
        room.pull_cursor(room.last_seq() + 5, &[], false),
        room.last_seq(),
        "never past the last number"
    );
}

/// A connection's batch holds `OUTBOX_EVENTS_MAX` events: at the limit every action of
/// the tick arrives; past it the later actions are left out and told as one `Gap` (the
/// viewer knows what it missed), and the next tick's actions arrive again.
#[test]
fn actions_past_outbox_events_max_in_one_tick_are_told_as_a_gap() {
    let mut now = 0;
    let mut room = Room::create(info(), 1, now);
    join(&mut room, 1, "ana", Role::Viewer, now);
    tick(&mut room, &mut now);
    let broadcast = |room: &mut Room, now: u64| {
        let command = AdminCommand::Broadcast {
            from_user: "host".into(),
            from_name: "Host".into(),
            text: "hello".into(),
        };
        match room.admin(command, now).unwrap() {
            AdminReply::Broadcast { seq } => seq,
            other => panic!("{other:?}"),
        }
    };
    let gaps = |events: &[Event]| -> Vec<(u64, u64)> {
        events
            .iter()
            .filter_map(|e| match e {
                Event::Gap {
                    missed_after,
                    resumed_from,
                } => Some((*missed_after, *resumed_from)),
                _ => None,
            })
            .collect()
    };
    for _ in 0..OUTBOX_EVENTS_MAX {
        broadcast(&mut room, now);
    }
    let out = tick(&mut room, &mut now);
    assert_eq!(actions(&out.events[&1]).len(), OUTBOX_EVENTS_MAX);
    assert_eq!(gaps(&out.events[&1]), []);
    // Two past: both are told as one gap, after the actions that fit.
    let first_past = room.last_seq() + 1 + OUTBOX_EVENTS_MAX as u64;
    for _ in 0..OUTBOX_EVENTS_MAX + 2 {
        broadcast(&mut room, now);
    }
    let out = tick(&mut room, &mut now);
    let got = actions(&out.events[&1]);
    assert_eq!(got.len(), OUTBOX_EVENTS_MAX);
    assert_eq!(got.last(), Some(&(first_past - 1)));
    assert_eq!(gaps(&out.events[&1]), [(first_past - 1, first_past + 2)]);
    assert!(matches!(out.events[&1].last(), Some(Event::Gap { .. })));
    assert_eq!(room.stats().dropped, 2);
    // The next tick delivers again, with no gap.
    let next = broadcast(&mut room, now);
    let out = tick(&mut room, &mut now);
    assert_eq!(actions(&out.events[&1]), [next]);
    assert_eq!(gaps(&out.events[&1]), []);
}

/// A tick whose batch for a connection would pass `SERVER_FRAME_BYTES_MAX` (clients
/// refuse such a frame) goes out as several frames, each within it, every event once.
#[test]
fn a_batch_past_server_frame_bytes_max_goes_out_as_frames_clients_take() {
    let mut now = 0;
    let mut room = Room::create(info(), 1, now);
    join(&mut room, 1, "ana", Role::Viewer, now);
    tick(&mut room, &mut now);
    let messages = SERVER_FRAME_BYTES_MAX / SYSTEM_MESSAGE_BYTES_MAX + 1;
    assert!(messages < OUTBOX_EVENTS_MAX, "not cut by the outbox");
    for _ in 0..messages {
        let command = AdminCommand::Broadcast {
            from_user: "host".into(),
            from_name: "Host".into(),
            text: "x".repeat(SYSTEM_MESSAGE_BYTES_MAX),
        };
        room.admin(command, now).unwrap();
    }
    // `drain` decodes each frame as a client does (refusing one past the limit).
    let out = tick(&mut room, &mut now);
    assert_eq!(out.frames[&1], 2);
    assert_eq!(actions(&out.events[&1]).len(), messages);
}

/// The room's own bound on actions holds however often it flushes (flushes can be
/// `FLUSH_SPACING_MS_MIN` apart): `ROOM_ACTIONS_BURST` at once, then the rate; one past
/// it is refused "room busy" with the wait for the next.
#[test]
fn the_rooms_action_bound_takes_its_burst_and_refuses_one_past_it() {
    let now = 0;
    let mut room = Room::create(info(), 1, now);
    let users = ROOM_ACTIONS_BURST.div_ceil(u64::from(COMMENT_BURST)) + 1;
    for id in 1..=users {
        join(&mut room, id, &format!("u{id}"), Role::Viewer, now);
    }
    room.handle_timeout(now);
    drain(&mut room);
    let mut sent = 0;
    'users: for id in 1..users {
        for client_id in 1..=u64::from(COMMENT_BURST) {
            if sent == ROOM_ACTIONS_BURST {
                break 'users;
            }
            room.handle_frame(id, &comment("hi", client_id), now);
            sent += 1;
        }
    }
    room.handle_frame(users, &comment("one past", 1), now);
    room.handle_timeout(now + TICK_MS);
    let out = drain(&mut room);
    assert_eq!(
        actions(&out.events[&users]).len() as u64,
        ROOM_ACTIONS_BURST
    );
    let refused: Vec<_> = out.events[&users]
        .iter()
        .filter_map(|e| match e {
            Event::Error {
                code,
                message,
                retry_after_ms,
                ..
            } => Some((*code, message.clone(), *retry_after_ms)),
            _ => None,
        })
        .collect();
    assert_eq!(
        refused,
        [(ErrorCode::RateLimited, "room busy".to_owned(), 1)],
        "one past the burst waits a token (1/{ROOM_ACTIONS_PER_S_MAX} s)"
    );
    // The rate refills it: a flush does not.
    room.handle_frame(users, &comment("later", 2), now + TICK_MS + 1);
    room.handle_timeout(now + 2 * TICK_MS);
    let out = drain(&mut room);
    assert!(error_codes(&out.events[&users]).is_empty());
}

/// A room of `sockets` viewers (`v1`, …), its first output drained, 10 s after they joined.
fn quiet_room_of(sockets: u64) -> (Room, u64) {
    let mut now = 0;
    let mut room = Room::create(info(), 1, now);
    for id in 1..=sockets {
        join(&mut room, id, &format!("v{id}"), Role::Viewer, now);
    }
    now += 10_000;
    room.handle_timeout(now);
    drain(&mut room);
    (room, now)
}

/// Many users liking at their full rate cannot make the room send more than its fan-out
/// budget allows (what a flood costs the others is bounded), and another viewer's
/// comment still reaches everyone within a tick of being sent.
#[test]
fn a_like_flood_stays_within_the_fanout_budget_and_a_comment_still_goes_out_within_a_tick() {
    let sockets: u64 = 1_000;
    let likers: u64 = 40;
    let (mut room, now) = quiet_room_of(sockets);
    let start = now;
    let period_ms = 1_000 / u64::from(LIKES_RATE_PER_S);
    let mut frames: u64 = 0;
    let mut flushes: Vec<u64> = Vec::new();
    let (commenter, watcher) = (sockets, sockets / 2);
    let comment_at = start + 1_000;
    let mut comment_seen_at = None;
    for t in start..start + 2_000 {
        for liker in 1..=likers {
            // Each liker's frames 50 ms apart, the likers spread over the period.
            if (t - start + liker * period_ms / likers).is_multiple_of(period_ms) {
                room.handle_frame(liker, &like_frame(t, 1), t);
            }
        }
        if t == comment_at {
            room.handle_frame(commenter, &comment("still here", 1), t);
        }
        if room.tick_pending().is_some_and(|at| at <= t) {
            room.handle_timeout(t);
            let out = drain(&mut room);
            let sent: u64 = out.frames.values().map(|&n| n as u64).sum();
            if sent > 0 {
                frames += sent;
                flushes.push(t);
            }
            let seen = out
                .events
                .get(&watcher)
                .is_some_and(|events| !actions(events).is_empty());
            if seen && comment_seen_at.is_none() {
                comment_seen_at = Some(t);
            }
        }
    }
    let budget = 2 * FANOUT_FRAMES_PER_S_TARGET + FANOUT_FRAMES_BURST;
    assert!(
        frames <= budget + sockets,
        "{frames} frames in 2 s against a budget of {budget}"
    );
    // The total is published at most every `LIKES_PUBLISH_INTERVAL_MS` (and once more
    // with the comment's flush), and it is published: the flood was real.
    let publications = 2_000 / LIKES_PUBLISH_INTERVAL_MS;
    assert!(
        frames <= (publications + 2) * sockets,
        "{frames} frames: likes published more often than their interval"
    );
    assert!(
        frames >= (publications - 1) * sockets,
        "the likes were flushed ({frames} frames): the flood was real"
    );
    assert!(
        flushes
            .windows(2)
            .all(|w| w[1] - w[0] >= FLUSH_SPACING_MS_MIN),
        "flushes closer than the spacing"
    );
    let seen_at = comment_seen_at.expect("the comment reached the watcher");
    assert!(
        seen_at - comment_at <= room.tick_ms(),
        "the comment waited {} ms",
        seen_at - comment_at
    );
}

/// One viewer liking within their rate (a frame every 50 ms) in a quiet room of 1,000: the
/// total goes out at most every `LIKES_PUBLISH_INTERVAL_MS`, not at every tick (that was
/// a frame to every socket 20 times a second, the room at its fan-out ceiling for one
/// user's taps), and the last total reaches everyone within the interval of the last
/// like.
#[test]
fn one_viewers_likes_publish_the_total_at_most_every_likes_publish_interval() {
    let sockets: u64 = 1_000;
    let (mut room, now) = quiet_room_of(sockets);
    let (liker, watcher) = (1, sockets);
    let start = now;
    let mut frames = 0;
    let mut last_total_seen = (0, 0);
    let mut client_id = 0;
    for t in start..start + 10_000 + LIKES_PUBLISH_INTERVAL_MS {
        if t < start + 10_000 && (t - start).is_multiple_of(50) {
            client_id += 1;
            room.handle_frame(liker, &like_frame(client_id, 1), t);
        }
        if room.poll_timeout().is_some_and(|at| at <= t) {
            room.handle_timeout(t);
            let out = drain(&mut room);
            // The others' frames (the liker also gets an ack for each frame).
            let others = out.frames.iter().filter(|(id, _)| **id != liker);
            frames += others.map(|(_, &n)| n as u64).sum::<u64>();
            let events = out
                .events
                .get(&watcher)
                .map(Vec::as_slice)
                .unwrap_or_default();
            for event in events {
                if let Event::Likes { total } = event {
                    last_total_seen = (*total, t);
                }
            }
        }
    }
    let publications = 10_000 / LIKES_PUBLISH_INTERVAL_MS + 1;
    assert!(
        frames <= publications * (sockets - 1),
        "{frames} frames in 10 s: more than {publications} publications"
    );
    assert_eq!(
        last_total_seen.0, 200,
        "every like counted, the last total shown"
    );
    assert!(last_total_seen.1 - (start + 9_950) <= LIKES_PUBLISH_INTERVAL_MS);
}

/// A count change in a tick whose broadcasts reached their cap still reaches every
/// viewer in that tick's batch (an unsharded room does not resend an unchanged count, so
/// left out it would never come), after the broadcasts it found.
#[test]
fn a_count_change_in_a_tick_of_broadcasts_at_their_cap_still_goes_out() {
    let mut now = 0;
    let mut room = Room::create(info(), 1, now);
    join(&mut room, 1, "ana", Role::Viewer, now);
    let out = tick(&mut room, &mut now);
    assert!(out.events[&1].contains(&Event::Online { count: 1 }));
    now += 2 * ONLINE_PUBLISH_INTERVAL_MS;
    room.handle_timeout(now);
    drain(&mut room);
    let broadcast = |room: &mut Room, now: u64| {
        let command = AdminCommand::Broadcast {
            from_user: "host".into(),
            from_name: "Host".into(),
            text: "hello".into(),
        };
        room.admin(command, now).unwrap();
    };
    for _ in 0..OUTBOX_EVENTS_MAX {
        broadcast(&mut room, now);
    }
    broadcast(&mut room, now); // one past the cap: left out, told as a gap
    join(&mut room, 2, "bob", Role::Viewer, now);
    let out = tick(&mut room, &mut now);
    assert!(out.events[&2].contains(&Event::Online { count: 2 }));
    let ana = &out.events[&1];
    assert_eq!(
        ana.last(),
        Some(&Event::Online { count: 2 }),
        "{:?}",
        &ana[ana.len() - 3..]
    );
    assert_eq!(
        ana.iter().filter(|e| matches!(e, Event::Action(_))).count(),
        OUTBOX_EVENTS_MAX
    );
    assert!(matches!(ana[ana.len() - 2], Event::Gap { .. }));
    assert!(
        !out.events[&2]
            .iter()
            .any(|e| matches!(e, Event::Action(_) | Event::Gap { .. })),
        "bob's Welcome holds them: no false Gap either"
    );
}

/// The pacing rule on its own, with the room's inputs given: the leading edge while the
/// budget lasts, one spacing apart; spent, a tick after the last flush; a sharded room's
/// trailing tick unless it was quiet.
#[test]
fn pacing_follows_the_flush_rule_at_each_of_its_bounds() {
    use crate::flush::{Pacing, PacingInput};
    let tick_ms = 50;
    let small = PacingInput {
        tick_ms,
        sharded: false,
        frames_per_flush: 1_000,
    };
    let mut pacing = Pacing::new(0);
    // Idle: the first output goes out at once.
    pacing.schedule(0, small);
    assert_eq!(pacing.flush_at_ms(), Some(0));
    assert!(pacing.due(0, small));
    pacing.flushing();
    pacing.flushed(0, 1_000, false);
    // More output 1 ms later waits one spacing, not a tick; a second schedule keeps it.
    pacing.schedule(1, small);
    pacing.schedule(2, small);
    assert_eq!(pacing.flush_at_ms(), Some(FLUSH_SPACING_MS_MIN));
    assert!(!pacing.due(FLUSH_SPACING_MS_MIN - 1, small));
    assert!(pacing.due(FLUSH_SPACING_MS_MIN, small));
    pacing.flushing();
    assert_eq!(pacing.flush_at_ms(), None);
    // Spend the burst: the next flush waits for the tick after the last one.
    let burst = FANOUT_FRAMES_BURST;
    pacing.flushed(FLUSH_SPACING_MS_MIN, burst, false);
    pacing.schedule(FLUSH_SPACING_MS_MIN + 1, small);
    let at = pacing.flush_at_ms().unwrap();
    assert!(
        at > FLUSH_SPACING_MS_MIN + 1 && at <= FLUSH_SPACING_MS_MIN + tick_ms,
        "{at}"
    );
    // A flush that sent nothing does not hold the next one back.
    let mut pacing = Pacing::new(0);
    pacing.flushed(0, 0, false);
    pacing.schedule(1, small);
    assert_eq!(pacing.flush_at_ms(), Some(1));
    // More sockets than the burst: every flush waits its tick.
    let huge = PacingInput {
        frames_per_flush: u32::try_from(FANOUT_FRAMES_BURST).unwrap() + 1,
        ..small
    };
    let mut pacing = Pacing::new(0);
    pacing.flushed(100, 1, false);
    pacing.schedule(101, huge);
    assert_eq!(pacing.flush_at_ms(), Some(100 + tick_ms));
    // The rule read again at the timeout: sockets joined meanwhile move the flush later.
    let mut pacing = Pacing::new(0);
    pacing.flushed(100, 1, false);
    pacing.schedule(101, small);
    assert_eq!(pacing.flush_at_ms(), Some(100 + FLUSH_SPACING_MS_MIN));
    assert!(!pacing.due(100 + FLUSH_SPACING_MS_MIN, huge));
    assert_eq!(pacing.flush_at_ms(), Some(100 + tick_ms));
    // Sharded: a trailing tick, unless quiet for FLUSH_QUIET_TICKS.
    let sharded = PacingInput {
        sharded: true,
        ..small
    };
    let mut pacing = Pacing::new(0);
    pacing.flushed(1_000, 0, true);
    pacing.schedule(1_001, sharded);
    assert_eq!(pacing.flush_at_ms(), Some(1_001 + tick_ms));
    let mut pacing = Pacing::new(0);
    pacing.flushed(1_000, 0, true);
    let quiet_ms = 1_000 + FLUSH_QUIET_TICKS * tick_ms;
    pacing.schedule(quiet_ms, sharded);
    assert_eq!(pacing.flush_at_ms(), Some(quiet_ms));
}

/// A socket told `GoAway` (its lifetime is over) stops reading after it: the tick's
/// broadcasts come before it in its batch, not after.
#[test]
fn goaway_comes_after_the_ticks_broadcasts() {
    let mut now = 0;
    let mut room = Room::create(info(), 1, now);
    room.connect(1, identity("a", Role::Viewer), 10_000, now)
        .unwrap();
    room.handle_frame(1, &hello(None), now);
    join(&mut room, 2, "b", Role::Viewer, now);
    tick(&mut room, &mut now);
    now = 10_000;
    room.handle_frame(2, &comment("just before the end", 1), now);
    room.handle_timeout(now);
    let mut out = drain(&mut room);
    let told = |out: &Drained| {
        out.events
            .get(&1)
            .is_some_and(|e| e.iter().any(|e| matches!(e, Event::GoAway { .. })))
    };
    if !told(&out) {
        out = tick(&mut room, &mut now);
    }
    let a = &out.events[&1];
    let goaway = a
        .iter()
        .position(|e| matches!(e, Event::GoAway { .. }))
        .expect("GoAway sent");
    let comment_at = a
        .iter()
        .position(|e| matches!(e, Event::Action(_)))
        .expect("the comment broadcast");
    assert!(comment_at < goaway, "{a:?}");
    assert_eq!(goaway, a.len() - 1, "{a:?}");
}
