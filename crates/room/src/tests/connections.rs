//! Connections: lifetimes, ending, the online count, the per-user socket cap and connect
//! rate, the Hello deadline, stale sockets (`connections.rs`, `admission.rs`).

use super::*;

#[test]
fn goaway_at_end_of_lifetime_then_close() {
    let mut now = 0;
    let mut room = Room::create(info(), 1, now);
    room.connect(1, identity("a", Role::Viewer), 10_000, now)
        .unwrap();
    room.handle_frame(1, &hello(None), now);
    tick(&mut room, &mut now);
    now = 10_000;
    room.handle_timeout(now);
    let out = tick(&mut room, &mut now);
    assert!(out.events[&1].contains(&Event::GoAway {
        reconnect_delay_ms: 0
    }));
    now += GOAWAY_GRACE_MS;
    room.handle_timeout(now);
    let out = drain(&mut room);
    assert_eq!(out.closes, vec![(1, CloseCode::GoingAway)]);
}

#[test]
fn ending_closes_everyone_and_refuses_new_connections() {
    let mut now = 0;
    let mut room = Room::create(info(), 1, now);
    join(&mut room, 1, "a", Role::Viewer, now);
    tick(&mut room, &mut now);
    assert_eq!(room.admin(AdminCommand::End, now), Ok(AdminReply::Ended));
    let out = drain(&mut room);
    assert!(out.events[&1].contains(&Event::RoomEnded));
    assert_eq!(out.closes, vec![(1, CloseCode::RoomEnded)]);
    assert_eq!(
        room.connect(2, identity("b", Role::Viewer), LIFETIME_MS, now),
        Err(CloseCode::RoomEnded)
    );
    assert_eq!(
        room.admin(AdminCommand::End, now),
        Err(AdminError::RoomEnded)
    );
}

#[test]
fn online_count_is_published_on_change_and_refreshed() {
    let mut now = 0;
    let mut room = Room::create(info(), 1, now);
    join(&mut room, 1, "a", Role::Viewer, now);
    let out = tick(&mut room, &mut now);
    assert!(out.events[&1].contains(&Event::Online { count: 1 }));
    // A change within the publish interval: the newcomer gets the count at once, the
    // others when the interval is over (joins in a big room would otherwise cost every
    // viewer a frame every tick).
    join(&mut room, 2, "b", Role::Viewer, now);
    let out = tick(&mut room, &mut now);
    assert!(out.events[&2].contains(&Event::Online { count: 2 }));
    assert!(!out.events.contains_key(&1));
    let publish_at = now - TICK_MS + ONLINE_PUBLISH_INTERVAL_MS;
    assert_eq!(room.poll_timeout(), Some(publish_at));
    let out = tick(&mut room, &mut now);
    assert!(out.events.is_empty());
    now = publish_at;
    room.handle_timeout(now);
    let out = tick(&mut room, &mut now);
    assert!(out.events[&1].contains(&Event::Online { count: 2 }));
    // Nothing changes: nothing is sent, and an unsharded room does not wake for the count
    // (an unchanged count is not worth a frame to every socket).
    let out = tick(&mut room, &mut now);
    assert!(out.events.is_empty());
    assert!(room
        .poll_timeout()
        .is_none_or(|at| at > now + ONLINE_REFRESH_MS));
    now += ONLINE_REFRESH_MS;
    room.handle_timeout(now);
    let out = tick(&mut room, &mut now);
    assert!(
        out.events.is_empty(),
        "an unchanged count is not worth a frame"
    );
    // A leave is published again.
    room.disconnect(2, now);
    now += ONLINE_PUBLISH_INTERVAL_MS;
    room.handle_timeout(now);
    let out = tick(&mut room, &mut now);
    assert!(out.events[&1].contains(&Event::Online { count: 1 }));
}

/// The room bounds a user's upgrades itself (whichever Worker isolate they came through):
/// a burst, then the rate; refused before a socket exists, without a log line; other
/// users are untouched.
#[test]
fn a_users_upgrades_past_the_connect_rate_are_refused_by_the_room() {
    let now = 0;
    let mut room = Room::create(info(), 1, now);
    drain(&mut room);
    let mut id = 0;
    for _ in 0..USER_CONNECTS_BURST {
        id += 1;
        room.connect(id, identity("ana", Role::Viewer), LIFETIME_MS, now)
            .unwrap();
        room.disconnect(id, now);
    }
    drain(&mut room);
    id += 1;
    assert_eq!(
        room.connect(id, identity("ana", Role::Viewer), LIFETIME_MS, now),
        Err(CloseCode::ConnectRateLimited)
    );
    let out = drain(&mut room);
    assert!(out.closes.is_empty() && out.stores.is_empty());
    assert_eq!(room.stats().connects_rate_limited, 1);
    id += 1;
    assert_eq!(
        room.connect(id, identity("bob", Role::Viewer), LIFETIME_MS, now),
        Ok(())
    );
    id += 1;
    let refilled = now + 1_000 / u64::from(USER_CONNECTS_PER_S);
    assert_eq!(
        room.connect(id, identity("ana", Role::Viewer), LIFETIME_MS, refilled),
        Ok(())
    );
    assert!(CloseCode::ConnectRateLimited.should_reconnect());
}

#[test]
fn one_user_holds_at_most_the_socket_cap_and_the_rest_are_refused() {
    let mut now = 0;
    let mut room = Room::create(info(), 1, now);
    join(&mut room, 1, "other", Role::Viewer, now);
    let tabs = USER_SOCKETS_PER_ROOM_MAX as u64;
    for id in 10..10 + tabs {
        join(&mut room, id, "greedy", Role::Viewer, now);
    }
    // One past the cap, with or without a Hello to come: refused at connect (past the
    // user's connect burst, for the connect rate first).
    let refusals: Vec<_> = (10 + tabs..210)
        .map(|id| room.connect(id, identity("greedy", Role::Viewer), LIFETIME_MS, now))
        .collect();
    assert_eq!(refusals[0], Err(CloseCode::TooManySockets));
    assert!(
        refusals.iter().all(|r| matches!(
            r,
            Err(CloseCode::TooManySockets | CloseCode::ConnectRateLimited)
        )),
        "{refusals:?}"
    );
    assert_eq!(
        room.connections_of("greedy").count(),
        USER_SOCKETS_PER_ROOM_MAX
    );
    assert_eq!(room.online(), 1 + tabs as u32);
    // Another user is not affected, and a closed tab frees a place.
    join(&mut room, 2, "next", Role::Viewer, now);
    room.disconnect(10, now);
    now += 1_000 / u64::from(USER_CONNECTS_PER_S);
    join(&mut room, 300, "greedy", Role::Viewer, now);
    let out = tick(&mut room, &mut now);
    assert!(matches!(out.events[&300][0], Event::Welcome(_)));
    assert!(out.events[&2].contains(&Event::Online {
        count: 2 + tabs as u32
    }));
}

#[test]
fn only_sockets_that_said_hello_are_online_and_silent_ones_are_closed() {
    let mut now = 0;
    let mut room = Room::create(info(), 1, now);
    join(&mut room, 1, "a", Role::Viewer, now);
    room.connect(2, identity("b", Role::Viewer), LIFETIME_MS, now)
        .unwrap();
    let out = tick(&mut room, &mut now);
    assert!(out.events[&1].contains(&Event::Online { count: 1 }));
    assert_eq!(room.online(), 1, "a socket without Hello is not a viewer");
    // Driven by the core's own timer: following `poll_timeout` closes the silent socket
    // at the deadline, not before.
    let closed_at = loop {
        let at = room.poll_timeout().expect("a deadline is pending");
        assert!(at <= HELLO_DEADLINE_MS, "the Hello deadline is a timer");
        room.handle_timeout(at);
        let out = drain(&mut room);
        if !out.closes.is_empty() {
            assert_eq!(out.closes, vec![(2, CloseCode::HelloTimeout)]);
            break at;
        }
    };
    assert_eq!(closed_at, HELLO_DEADLINE_MS);
    assert_eq!(room.connections_of("b").count(), 0);
    // A socket that says Hello in time stays, and counts from its Hello on.
    now = HELLO_DEADLINE_MS;
    room.connect(3, identity("c", Role::Viewer), LIFETIME_MS, now)
        .unwrap();
    assert_eq!(room.online(), 1);
    room.handle_frame(3, &hello(None), now + HELLO_DEADLINE_MS - 1);
    assert_eq!(room.online(), 2);
    room.handle_timeout(now + HELLO_DEADLINE_MS);
    assert!(drain(&mut room).closes.is_empty());
    // A reattached socket (after hibernation) said Hello long ago.
    room.reattach(4, identity("d", Role::Viewer), now + LIFETIME_MS, true, now);
    assert_eq!(room.online(), 3);
    room.handle_timeout(now + 2 * HELLO_DEADLINE_MS);
    assert!(drain(&mut room).closes.is_empty());
    room.disconnect(4, now + 2 * HELLO_DEADLINE_MS);
    room.disconnect(3, now + 2 * HELLO_DEADLINE_MS);
    assert_eq!(room.online(), 1);
}

#[test]
fn a_new_rooms_facts_are_checked_one_past_each_limit() {
    let at = |f: fn(&mut RoomInfo)| {
        let mut info = info();
        f(&mut info);
        info.validate()
    };
    assert_eq!(at(|_| {}), Ok(()));
    assert_eq!(at(|i| i.expected_audience = EXPECTED_AUDIENCE_MAX), Ok(()));
    let over = at(|i| i.expected_audience = EXPECTED_AUDIENCE_MAX + 1).unwrap_err();
    assert_eq!((over.code(), over.http_status()), ("invalid", 400));
    assert_eq!(at(|i| i.expected_audience = u64::MAX), Err(over));
    assert_eq!(at(|i| i.title = "t".repeat(ROOM_TITLE_BYTES_MAX)), Ok(()));
    assert_eq!(
        at(|i| i.title = "t".repeat(ROOM_TITLE_BYTES_MAX + 1)),
        Err(AdminError::TooLong {
            field: "title",
            bytes_max: ROOM_TITLE_BYTES_MAX
        })
    );
    assert_eq!(at(|i| i.host_user = "h".repeat(USER_ID_BYTES_MAX)), Ok(()));
    assert_eq!(
        at(|i| i.host_user = "h".repeat(USER_ID_BYTES_MAX + 1)),
        Err(AdminError::TooLong {
            field: "host",
            bytes_max: USER_ID_BYTES_MAX
        })
    );
    assert_eq!(
        at(|i| i.host_user.clear()),
        Err(AdminError::Empty { field: "host" })
    );
    // A host the ledger would refuse (its account name): refused here, not 502 for ever.
    for refused in [
        at(|i| i.host_user = "bob\u{7}".into()),
        at(|i| i.host_user = "bob\n".into()),
        at(|i| i.host_user = "\u{0}".into()),
        at(|i| i.host_user = SYSTEM_SENDER.into()),
    ] {
        let refused = refused.unwrap_err();
        assert_eq!((refused.code(), refused.http_status()), ("invalid", 400));
    }
    assert_eq!(at(|i| i.host_user = "bøb 🎤".into()), Ok(()));
}

#[test]
fn a_tenant_opens_at_most_directory_rooms_max_live_rooms() {
    assert_eq!(admit_live_room(0), Ok(()));
    assert_eq!(admit_live_room(DIRECTORY_ROOMS_MAX - 1), Ok(()));
    let refused = admit_live_room(DIRECTORY_ROOMS_MAX).unwrap_err();
    assert_eq!(
        (refused.code(), refused.http_status()),
        ("too_many_rooms", 429)
    );
}

#[test]
fn room_and_shard_sockets_stop_at_connections_per_room_max() {
    let mut room = Room::create(info(), 1, 0);
    let mut shard = Shard::new(0, 1, 0);
    for id in 0..CONNECTIONS_PER_ROOM_MAX as u64 {
        let who = identity(&format!("v{id}"), Role::Viewer);
        room.connect(id, who.clone(), LIFETIME_MS, 0).unwrap();
        shard.connect(id, who, LIFETIME_MS, 0).unwrap();
    }
    let one_more = identity("late", Role::Viewer);
    assert_eq!(
        room.connect(1 << 40, one_more.clone(), LIFETIME_MS, 0),
        Err(CloseCode::RoomFull)
    );
    assert_eq!(
        shard.connect(1 << 40, one_more.clone(), LIFETIME_MS, 0),
        Err(CloseCode::RoomFull)
    );
    // A viewer whose network dropped gets back into the full room by its own silent
    // socket's place; a viewer without one is still refused.
    let now = USER_SOCKET_REPLACEABLE_SILENCE_MS;
    let back = identity("v0", Role::Viewer);
    assert_eq!(
        room.connect(1 << 41, back.clone(), LIFETIME_MS, now),
        Ok(())
    );
    assert_eq!(shard.connect(1 << 41, back, LIFETIME_MS, now), Ok(()));
    assert_eq!(
        room.local_connections(),
        CONNECTIONS_PER_ROOM_MAX,
        "a place swapped"
    );
    assert_eq!(
        room.connect(1 << 42, one_more.clone(), LIFETIME_MS, now),
        Err(CloseCode::RoomFull)
    );
    assert_eq!(
        shard.connect(1 << 42, one_more, LIFETIME_MS, now),
        Err(CloseCode::RoomFull)
    );
}

#[test]
fn rate_buckets_are_bounded_at_rate_buckets_max_users() {
    let mut audience = Audience::<Connection>::default();
    for i in 0..RATE_BUCKETS_MAX as u64 {
        audience.buckets(&format!("u{i}"), i);
    }
    assert_eq!(audience.users_with_buckets(), RATE_BUCKETS_MAX);
    // u1 is used again: no longer among the least recently used.
    audience.buckets("u1", RATE_BUCKETS_MAX as u64);
    audience.buckets("one-more", RATE_BUCKETS_MAX as u64 + 1);
    assert_eq!(
        audience.users_with_buckets(),
        RATE_BUCKETS_MAX - RATE_BUCKETS_EVICTED_AT_ONCE + 1,
        "the least recently used go, a batch at once"
    );
    let evicted = RATE_BUCKETS_EVICTED_AT_ONCE as u64; // the batch: u0 and u2..=u(batch)
    assert!(!audience.has_buckets("u0") && !audience.has_buckets(&format!("u{evicted}")));
    assert!(audience.has_buckets("u1") && audience.has_buckets("one-more"));
    assert!(audience.has_buckets(&format!("u{}", evicted + 1)));
    // Until the room is full again, new users evict nobody.
    for i in 0..RATE_BUCKETS_EVICTED_AT_ONCE as u64 - 1 {
        audience.buckets(&format!("new{i}"), RATE_BUCKETS_MAX as u64 + 2);
    }
    assert_eq!(audience.users_with_buckets(), RATE_BUCKETS_MAX);
    assert!(audience.has_buckets(&format!("u{}", evicted + 1)));
}

#[test]
fn at_the_socket_cap_a_long_silent_socket_of_the_user_gives_its_place() {
    let mut now = 0;
    let mut room = Room::create(info(), 1, now);
    let tabs = USER_SOCKETS_PER_ROOM_MAX as u64;
    for id in 1..=tabs {
        join(&mut room, id, "flaky", Role::Viewer, now);
    }
    // Every socket heartbeats but the first (its network went away without a close).
    now = USER_SOCKET_REPLACEABLE_SILENCE_MS - 1;
    for id in 2..=tabs {
        room.touch(id, now);
    }
    let flaky = identity("flaky", Role::Viewer);
    assert_eq!(
        room.connect(100, flaky.clone(), LIFETIME_MS, now),
        Err(CloseCode::TooManySockets),
        "silent, but not long enough"
    );
    now = USER_SOCKET_REPLACEABLE_SILENCE_MS;
    drain(&mut room);
    room.connect(101, flaky.clone(), LIFETIME_MS, now).unwrap();
    assert_eq!(drain(&mut room).closes, vec![(1, CloseCode::Stale)]);
    assert_eq!(
        room.connections_of("flaky").count(),
        USER_SOCKETS_PER_ROOM_MAX
    );
    // The others are alive: one more is refused.
    assert_eq!(
        room.connect(102, flaky, LIFETIME_MS, now),
        Err(CloseCode::TooManySockets)
    );
}

/// A socket with no sign of life for `STALE_SOCKET_MS` is closed stale: not a
/// millisecond before.
#[test]
fn a_silent_socket_is_closed_stale_at_stale_socket_ms_not_before() {
    let mut room = Room::create(info(), 1, 0);
    join(&mut room, 1, "ana", Role::Viewer, 0);
    drain(&mut room);
    room.handle_timeout(STALE_SOCKET_MS - 1);
    assert!(drain(&mut room).closes.is_empty(), "alive one ms before");
    room.handle_timeout(STALE_SOCKET_MS);
    assert_eq!(drain(&mut room).closes, vec![(1, CloseCode::Stale)]);
}

/// The stale override of tests and staging (`OVATION_STALE_SOCKET_MS`) is clamped: one
/// below its lowest gives the lowest, one above `STALE_SOCKET_MS` gives that.
#[test]
fn the_stale_override_is_clamped_to_its_bounds() {
    for (asked_ms, stale_ms) in [
        (
            STALE_SOCKET_OVERRIDE_MS_MIN - 1,
            STALE_SOCKET_OVERRIDE_MS_MIN,
        ),
        (STALE_SOCKET_OVERRIDE_MS_MIN, STALE_SOCKET_OVERRIDE_MS_MIN),
        (STALE_SOCKET_MS + 1, STALE_SOCKET_MS),
    ] {
        let mut room = Room::create(info(), 1, 0);
        room.set_stale_socket_ms(asked_ms);
        join(&mut room, 1, "ana", Role::Viewer, 0);
        drain(&mut room);
        room.handle_timeout(stale_ms - 1);
        assert!(
            drain(&mut room).closes.is_empty(),
            "{asked_ms}: alive before"
        );
        room.handle_timeout(stale_ms);
        assert_eq!(
            drain(&mut room).closes,
            vec![(1, CloseCode::Stale)],
            "{asked_ms}"
        );
    }
}

/// Reads over HTTP: a viewer gets `USER_READS_BURST` at once and `USER_READS_PER_S`
/// after, one more is refused with a wait; staff are not limited; a banned user reads
/// nothing, staff or not.
#[test]
fn a_viewers_reads_stop_one_past_their_burst_and_a_banned_user_reads_nothing() {
    let now = 0;
    let mut room = Room::create(info(), 1, now);
    for _ in 0..USER_READS_BURST {
        assert_eq!(room.admit_read("ana", Role::Viewer, now), Ok(()));
    }
    let Err(ReadRefused::RateLimited { retry_after_ms }) =
        room.admit_read("ana", Role::Viewer, now)
    else {
        panic!("one past the burst is refused");
    };
    assert!(retry_after_ms > 0 && u64::from(retry_after_ms) <= 1_000 / u64::from(USER_READS_PER_S));
    let later = now + 1_000 / u64::from(USER_READS_PER_S);
    assert_eq!(
        room.admit_read("ana", Role::Viewer, later),
        Ok(()),
        "refilled"
    );
    assert_eq!(
        room.admit_read("bob", Role::Viewer, now),
        Ok(()),
        "per user"
    );
    for _ in 0..=USER_READS_BURST {
        assert_eq!(room.admit_read("host-1", Role::Host, now), Ok(()));
    }
    room.admin(as_host(StaffCommand::Ban { user: "cy".into() }), now)
        .unwrap();
    for _ in 0..USER_READS_BURST {
        assert_eq!(
            room.admit_read("cy", Role::Viewer, now),
            Err(ReadRefused::Banned)
        );
    }
    assert!(
        matches!(
            room.admit_read("cy", Role::Viewer, now),
            Err(ReadRefused::RateLimited { .. })
        ),
        "a banned user's reads are held to the read rate too"
    );
    assert_eq!(ReadRefused::Banned.http_status(), 403);
}

/// The runtime keeps a room's hibernatable sockets while the object stops and is rebuilt
/// from storage. A ban or an end stored before the stop closes the socket it had not
/// reached yet, and a socket whose `Hello` was never heard owes it as a new one does: it
/// cannot hold its place for its lifetime by saying nothing.
#[test]
fn sockets_kept_across_a_restart_are_checked_again() {
    let mut now = 0;
    let mut store = BTreeMap::new();
    let mut room = Room::create(info(), 1, now);
    join(&mut room, 1, "host", Role::Host, now);
    join(&mut room, 2, "bob", Role::Viewer, now);
    tick_into(&mut room, &mut now, &mut store);
    send_command(
        &mut room,
        1,
        serde_json::json!({"command": "ban", "user": "bob"}),
        1,
        now,
    );
    // The ban's storage is applied; the object stops before its close reached the socket.
    let out = tick_into(&mut room, &mut now, &mut store);
    assert!(out.closes.contains(&(2, CloseCode::Banned)));

    let restore = |store: &BTreeMap<String, Vec<u8>>, now: u64| {
        Room::restore(store.clone(), now).unwrap().unwrap()
    };
    let mut room = restore(&store, now);
    room.reattach(1, identity("host", Role::Host), LIFETIME_MS, true, now);
    room.reattach(2, identity("bob", Role::Viewer), LIFETIME_MS, true, now);
    room.reattach(3, identity("cy", Role::Viewer), LIFETIME_MS, false, now);
    room.reattach(4, identity("dee", Role::Viewer), LIFETIME_MS, false, now);
    assert!(room.hello_heard(1) && !room.hello_heard(3));
    let out = drain(&mut room);
    assert_eq!(out.closes, vec![(2, CloseCode::Banned)]);
    assert_eq!(room.online(), 1, "only the host's socket had said Hello");
    // dee's Hello arrives (it was in flight across the stop); cy's never does.
    room.handle_frame(4, &hello(None), now + 1);
    assert!(room.hello_heard(4));
    let restored_at = now;
    let closed_at = loop {
        let at = room.poll_timeout().expect("the Hello deadline is pending");
        assert!(at <= restored_at + HELLO_DEADLINE_MS);
        room.handle_timeout(at);
        let out = drain(&mut room);
        if !out.closes.is_empty() {
            assert_eq!(out.closes, vec![(3, CloseCode::HelloTimeout)]);
            break at;
        }
    };
    assert_eq!(closed_at, restored_at + HELLO_DEADLINE_MS);
    assert_eq!(room.online(), 2);

    // An end stored before a stop closes every socket kept across it.
    now = closed_at;
    room.admin(AdminCommand::End, now).unwrap();
    apply(&drain(&mut room).stores, &mut store);
    let mut room = restore(&store, now);
    room.reattach(1, identity("host", Role::Host), LIFETIME_MS, true, now);
    room.reattach(4, identity("dee", Role::Viewer), LIFETIME_MS, true, now);
    let mut closes = drain(&mut room).closes;
    closes.sort_by_key(|(connection, _)| *connection);
    assert_eq!(
        closes,
        vec![(1, CloseCode::RoomEnded), (4, CloseCode::RoomEnded)]
    );
}
