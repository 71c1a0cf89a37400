use super::*;
use ovation_proto::{PartVersion, Resume, ShardDown, ShardUp, Snapshot};

pub(crate) fn info() -> RoomInfo {
    RoomInfo {
        room_id: "weur-test".into(),
        host_user: "host".into(),
        title: "Test".into(),
        expected_audience: 100,
    }
}

fn identity(user: &str, role: Role) -> Identity {
    Identity {
        user: user.into(),
        name: user.to_uppercase(),
        role,
    }
}

const LIFETIME_MS: u64 = CONNECTION_LIFETIME_MS_MIN;

/// A staff command from the admin API on the host's behalf.
pub(crate) fn as_host(command: StaffCommand) -> AdminCommand {
    AdminCommand::Staff {
        by: identity("host", Role::Host),
        command,
    }
}

/// Drains outputs into per-connection decoded events, closes, and storage ops.
#[derive(Default)]
struct Drained {
    events: BTreeMap<ConnectionId, Vec<Event>>,
    frames: BTreeMap<ConnectionId, usize>,
    closes: Vec<(ConnectionId, CloseCode)>,
    stores: Vec<StorageOp>,
    charges: Vec<ChargeRequest>,
}

fn drain(room: &mut Room) -> Drained {
    let mut out = Drained::default();
    while let Some(output) = room.poll_output() {
        match output {
            Output::Send { connections, frame } => {
                let ServerFrame::Batch { events, .. } = ServerFrame::decode(&frame).unwrap();
                for connection in connections {
                    out.events
                        .entry(connection)
                        .or_default()
                        .extend(events.iter().cloned());
                    *out.frames.entry(connection).or_default() += 1;
                }
            }
            Output::Close { connection, code } => out.closes.push((connection, code)),
            Output::Store(op) => out.stores.push(op),
            Output::Log(_) => {}
            Output::Charge(charge) => out.charges.push(charge),
            Output::ToShard { .. } => panic!("an unsharded room sends no shard batches"),
        }
    }
    out
}

/// What a host does with storage ops: the store a restarted room is rebuilt from.
fn apply(ops: &[StorageOp], store: &mut BTreeMap<String, Vec<u8>>) {
    for op in ops {
        match op {
            StorageOp::Put { key, value } => {
                store.insert(key.clone(), value.clone());
            }
            StorageOp::Delete { key } => {
                store.remove(key);
            }
        }
    }
}

fn tick(room: &mut Room, now_ms: &mut u64) -> Drained {
    *now_ms += TICK_MS;
    room.handle_timeout(*now_ms);
    drain(room)
}

fn hello(resume: Option<Resume>) -> Vec<u8> {
    ClientFrame::Hello(Hello {
        protocol_version: PROTOCOL_VERSION,
        resume,
    })
    .encode()
}

fn join(room: &mut Room, id: ConnectionId, user: &str, role: Role, now_ms: u64) {
    room.connect(id, identity(user, role), LIFETIME_MS, now_ms)
        .unwrap();
    room.handle_frame(id, &hello(None), now_ms);
}

fn comment(text: &str, client_id: u64) -> Vec<u8> {
    ClientFrame::Comment {
        client_id,
        text: text.into(),
    }
    .encode()
}

fn like_frame(client_id: u64, count: u32) -> Vec<u8> {
    ClientFrame::Like { client_id, count }.encode()
}

fn actions(events: &[Event]) -> Vec<u64> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Action(a) => Some(a.seq),
            _ => None,
        })
        .collect()
}

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

/// Leading edge: a comment in a quiet room goes out at once; output soon after a flush
/// waits a tick for more to join it, so a connection still gets at most one frame per
/// tick.
#[test]
fn output_after_a_quiet_spell_goes_out_at_once_and_then_a_tick_apart() {
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
    let busy_at = quiet + 5 + room.tick_ms();
    assert_eq!(
        room.tick_pending(),
        Some(busy_at),
        "soon after a flush: a tick later, for more output to join it"
    );
    room.handle_frame(1, &comment("third", 3), quiet + 20);
    room.handle_timeout(busy_at - 1);
    assert!(
        drain(&mut room).events.is_empty(),
        "nothing before the tick"
    );
    room.handle_timeout(busy_at);
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
    store.insert("weird".into(), vec![]);
    assert!(Room::restore(store, now).is_err());
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
    // Nothing changes: nothing is sent until the refresh is due.
    let out = tick(&mut room, &mut now);
    assert!(out.events.is_empty());
    now += ONLINE_REFRESH_MS;
    room.handle_timeout(now);
    let out = tick(&mut room, &mut now);
    assert!(out.events[&1].contains(&Event::Online { count: 2 }));
}

#[test]
fn gifts_are_charged_then_announced_once_and_ranked() {
    let mut now = 0;
    let mut room = Room::create(info(), 1, now);
    room.set_gift_catalog([("rose".to_owned(), 5)].into())
        .unwrap();
    join(&mut room, 1, "ana", Role::Viewer, now);
    join(&mut room, 2, "bob", Role::Viewer, now);
    tick(&mut room, &mut now);
    let gift = |client_id, sku: &str| {
        ClientFrame::Gift {
            client_id,
            gift_id: "g-1".into(),
            sku: sku.into(),
            qty: 2,
        }
        .encode()
    };
    room.handle_frame(1, &gift(7, "rose"), now);
    let out = tick(&mut room, &mut now);
    assert_eq!(out.charges.len(), 1);
    assert_eq!(
        (out.charges[0].amount, out.charges[0].user.as_str()),
        (10, "ana")
    );
    assert!(
        !out.events.contains_key(&2),
        "nothing is announced before the charge"
    );
    room.charge_result(
        out.charges[0].request,
        ChargeOutcome::Charged {
            balance: 90,
            replayed: false,
        },
        now,
    );
    let out = tick(&mut room, &mut now);
    assert!(out.events[&1].contains(&Event::Balance { balance: 90 }));
    assert!(out.events[&2].iter().any(|e| matches!(e, Event::Action(a)
        if a.body == ActionBody::Gift { sku: "rose".into(), qty: 2, amount: 10 })));
    assert!(out.events[&2]
        .iter()
        .any(|e| matches!(e, Event::Part { name, value, .. }
        if name == "leaderboard" && value.contains(r#""total":10"#))));
    // A retry of the same gift id: charged before, so acknowledged but not announced.
    room.handle_frame(1, &gift(8, "rose"), now);
    let out = tick(&mut room, &mut now);
    room.charge_result(
        out.charges[0].request,
        ChargeOutcome::Charged {
            balance: 90,
            replayed: true,
        },
        now,
    );
    let out = tick(&mut room, &mut now);
    assert!(out.events[&1].contains(&Event::Ack {
        client_id: 8,
        seq: None
    }));
    assert!(!out.events.contains_key(&2));
    assert_eq!(room.gift_totals().collect::<Vec<_>>(), vec![("ana", 10)]);
    // Refused: only the sender hears of it. Unknown gifts never reach the service.
    room.handle_frame(1, &gift(9, "rose"), now);
    room.handle_frame(1, &gift(10, "diamond"), now);
    let out = tick(&mut room, &mut now);
    assert_eq!(out.charges.len(), 1);
    assert!(out.events[&1].iter().any(|e| matches!(
        e,
        Event::Error {
            client_id: Some(10),
            code: ErrorCode::NotFound,
            ..
        }
    )));
    room.charge_result(
        out.charges[0].request,
        ChargeOutcome::Refused {
            code: ErrorCode::InsufficientFunds,
            message: "balance 0".into(),
        },
        now,
    );
    let out = tick(&mut room, &mut now);
    assert!(out.events[&1].iter().any(|e| matches!(
        e,
        Event::Error {
            client_id: Some(9),
            code: ErrorCode::InsufficientFunds,
            ..
        }
    )));
    assert!(!out.events.contains_key(&2));
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
    let sent: Vec<u64> = (1..RECENT_CLIENT_IDS_PER_USER_MAX as u64).collect();
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

// ---- Polls ----

fn poll_spec(options: usize, window_ms: u64) -> PollSpec {
    PollSpec {
        question: "Best goal?".into(),
        options: (0..options).map(|i| format!("option {i}")).collect(),
        window_ms: Some(window_ms),
        tallies_public: false,
        reveal_on_close: true,
        cue: Some("cue-7".into()),
    }
}

fn vote(poll_id: &str, option: u8, client_id: u64) -> Vec<u8> {
    ClientFrame::Vote {
        client_id,
        poll_id: poll_id.into(),
        option,
    }
    .encode()
}

fn error_codes(events: &[Event]) -> Vec<ErrorCode> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Error { code, .. } => Some(*code),
            _ => None,
        })
        .collect()
}

fn poll_part(events: &[Event]) -> Option<serde_json::Value> {
    part_value(events, "poll")
}

/// The last value of a state part among these events.
fn part_value(events: &[Event], part: &str) -> Option<serde_json::Value> {
    events.iter().rev().find_map(|e| match e {
        Event::Part { name, value, .. } if name == part => {
            Some(serde_json::from_str(value).unwrap())
        }
        _ => None,
    })
}

/// Payloads of the system's direct messages of one type among these events.
fn notices(events: &[Event], kind: &str) -> Vec<serde_json::Value> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Direct { from, payload, .. } if from == SYSTEM_SENDER => {
                let value: serde_json::Value = serde_json::from_str(payload).unwrap();
                (value["type"] == kind).then_some(value)
            }
            _ => None,
        })
        .collect()
}

/// A quiz whose questions have (options, correct option).
fn quiz_spec(questions: &[(usize, u8)], window_ms: u64) -> QuizSpec {
    QuizSpec {
        title: "Trivia".into(),
        questions: questions
            .iter()
            .enumerate()
            .map(|(i, &(options, correct))| QuizQuestionSpec {
                question: format!("question {i}"),
                options: (0..options).map(|o| format!("answer {o}")).collect(),
                correct,
                window_ms: Some(window_ms),
                cue: None,
            })
            .collect(),
    }
}

fn answer(quiz_id: &str, question: u16, option: u8, client_id: u64) -> Vec<u8> {
    ClientFrame::Answer {
        client_id,
        quiz_id: quiz_id.into(),
        question,
        option,
    }
    .encode()
}

fn frame_of(frame: ClientFrame) -> Vec<u8> {
    frame.encode()
}

#[test]
fn a_poll_counts_first_votes_shows_hosts_tallies_and_reveals_at_close() {
    let mut now = 0;
    let mut room = Room::create(info(), 1, now);
    join(&mut room, 1, "host", Role::Host, now);
    join(&mut room, 2, "ana", Role::Viewer, now);
    join(&mut room, 3, "bob", Role::Viewer, now);
    tick(&mut room, &mut now);
    let opened_ms = now;
    let AdminReply::Poll { id, phase, .. } = room
        .admin(
            as_host(StaffCommand::CreatePoll {
                spec: poll_spec(3, 20_000),
            }),
            now,
        )
        .unwrap()
    else {
        panic!("a poll reply");
    };
    assert_eq!((id.as_str(), phase), ("p1", PollPhase::Open));
    assert_eq!(
        room.admin(
            as_host(StaffCommand::CreatePoll {
                spec: poll_spec(3, 20_000)
            }),
            now
        ),
        Err(AdminError::PollOpen)
    );
    let out = tick(&mut room, &mut now);
    let seen = poll_part(&out.events[&2]).expect("viewers get the poll part");
    assert_eq!(seen["phase"], "open");
    assert_eq!(seen["cue"], "cue-7");
    assert_eq!(seen["closes_at_ms"], opened_ms + 20_000);
    assert!(
        seen.get("tallies").is_none(),
        "tallies are private to hosts"
    );

    room.handle_frame(2, &vote("p1", 1, 10), now);
    room.handle_frame(2, &vote("p1", 2, 11), now); // a second vote: acknowledged, not counted
    room.handle_frame(3, &vote("p1", 1, 12), now);
    room.handle_frame(3, &vote("p1", 9, 13), now); // no such option
    room.handle_frame(3, &vote("p0", 0, 14), now); // no such poll
    let out = tick(&mut room, &mut now);
    assert_eq!(room.poll().unwrap().2, &[0, 2, 0]);
    assert_eq!(
        error_codes(&out.events[&3]),
        [ErrorCode::Invalid, ErrorCode::NotFound]
    );
    assert!(error_codes(&out.events[&2]).is_empty());
    let host_tallies = out.events[&1].iter().find_map(|e| match e {
        Event::Direct { from, payload, .. } if from == "ovation" => {
            Some(serde_json::from_str::<serde_json::Value>(payload).unwrap())
        }
        _ => None,
    });
    let host_tallies = host_tallies.expect("the host gets live tallies");
    assert_eq!(host_tallies["tallies"], serde_json::json!([0, 2, 0]));
    assert!(
        !out.events[&2]
            .iter()
            .any(|e| matches!(e, Event::Direct { .. })),
        "viewers do not"
    );

    // A late joiner sees the open poll and when it closes.
    join(&mut room, 4, "cy", Role::Viewer, now);
    let out = tick(&mut room, &mut now);
    assert_eq!(poll_part(&out.events[&4]).unwrap()["phase"], "open");

    // The window closes on the room's own timer; the result goes out in that tick.
    let closes_at_ms = opened_ms + 20_000;
    assert!(
        room.poll_timeout().unwrap() <= closes_at_ms,
        "the room wakes for it"
    );
    now = closes_at_ms;
    room.handle_timeout(now);
    let out = tick(&mut room, &mut now);
    assert!(
        now - closes_at_ms <= 1_000,
        "published within a second of closing"
    );
    let result = poll_part(&out.events[&2]).expect("the result");
    assert_eq!(result["phase"], "result");
    assert_eq!(result["tallies"], serde_json::json!([0, 2, 0]));
    room.handle_frame(4, &vote("p1", 0, 20), now);
    let out = tick(&mut room, &mut now);
    assert_eq!(error_codes(&out.events[&4]), [ErrorCode::PollClosed]);
    assert_eq!(room.poll().unwrap().2, &[0, 2, 0]);
}

#[test]
fn a_poll_revealed_by_the_host_and_checked_limits() {
    let mut now = 0;
    let mut room = Room::create(info(), 1, now);
    join(&mut room, 1, "ana", Role::Viewer, now);
    let mut spec = poll_spec(2, 5_000);
    spec.reveal_on_close = false;
    spec.tallies_public = true;
    room.admin(as_host(StaffCommand::CreatePoll { spec }), now)
        .unwrap();
    room.handle_frame(1, &vote("p1", 0, 1), now);
    let out = tick(&mut room, &mut now);
    assert_eq!(
        poll_part(&out.events[&1]).unwrap()["tallies"],
        serde_json::json!([1, 0]),
        "public tallies reach viewers every tick"
    );
    room.admin(as_host(StaffCommand::ClosePoll { id: "p1".into() }), now)
        .unwrap();
    let out = tick(&mut room, &mut now);
    let closed = poll_part(&out.events[&1]).unwrap();
    assert_eq!(closed["phase"], "closed");
    room.admin(as_host(StaffCommand::RevealPoll { id: "p1".into() }), now)
        .unwrap();
    let out = tick(&mut room, &mut now);
    assert_eq!(poll_part(&out.events[&1]).unwrap()["phase"], "result");
    assert_eq!(
        room.admin(as_host(StaffCommand::ClosePoll { id: "p9".into() }), now),
        Err(AdminError::PollNotFound)
    );
    for bad in [poll_spec(1, 5_000), poll_spec(11, 5_000), poll_spec(2, 10)] {
        let refused = room.admin(as_host(StaffCommand::CreatePoll { spec: bad }), now);
        assert!(
            matches!(refused, Err(AdminError::InvalidPoll(_))),
            "{refused:?}"
        );
    }
    let mut long = poll_spec(2, 5_000);
    long.options[0] = "x".repeat(POLL_OPTION_BYTES_MAX + 1);
    assert!(room
        .admin(as_host(StaffCommand::CreatePoll { spec: long }), now)
        .is_err());
    // A second poll gets the next id; votes for the first are refused as not found.
    room.admin(
        as_host(StaffCommand::CreatePoll {
            spec: poll_spec(2, 5_000),
        }),
        now,
    )
    .unwrap();
    assert_eq!(room.poll().unwrap().0, "p2");
    let deleted = drain(&mut room).stores.contains(&StorageOp::Delete {
        key: "vote/p1/ana".into(),
    });
    assert!(deleted, "the older poll's stored votes are deleted");
}

/// A small deterministic generator for the seeded simulations below.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// N viewers; 70 % vote within one second of the poll opening, the rest spread over
/// the window. Acks are lost at random (the client retries under the same client id,
/// sometimes on a new connection), some voters vote twice, and the room restarts from
/// its stored records at random moments, losing every output after the crash. At the
/// close, the tallies must equal the distinct voters per option, and the result must be
/// published within one second.
///
/// The same storm runs against a quiz question (`Storm::Quiz`): answers are counted the
/// same way, and every answerer's score is the points of a correct answer or zero.
fn vote_storm(seed: u64, viewers: u64, storm: Storm) {
    let mut rng = Lcg(seed);
    let mut now = 0;
    let mut store: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut room = Room::create(info(), 9, now);
    let command = match storm {
        Storm::Poll => StaffCommand::CreatePoll {
            spec: poll_spec(4, 10_000),
        },
        Storm::Quiz => StaffCommand::CreateQuiz {
            spec: quiz_spec(&[(4, 2)], 10_000),
        },
    };
    room.admin(as_host(command), now).unwrap();
    if storm == Storm::Quiz {
        let next = StaffCommand::NextQuestion { id: "z1".into() };
        room.admin(as_host(next), now).unwrap();
    }
    let frame = |option: u8, client_id: u64| match storm {
        Storm::Poll => vote("p1", option, client_id),
        Storm::Quiz => answer("z1", 0, option, client_id),
    };
    apply(&drain(&mut room).stores, &mut store);
    // Each viewer: chosen option, the time it votes, whether its vote was acknowledged.
    let mut plan: Vec<(u8, u64, bool)> = (0..viewers)
        .map(|_| {
            let option = rng.below(4) as u8;
            // (Late votes leave a few ticks for retries of lost acks before the close.)
            let at = if rng.below(10) < 7 {
                rng.below(1_000)
            } else {
                rng.below(9_500)
            };
            (option, at, false)
        })
        .collect();
    let mut connection_of: Vec<Option<ConnectionId>> = vec![None; viewers as usize];
    let mut next_connection: ConnectionId = 1;
    let mut restarts = 0;
    while now + TICK_MS < 10_000 {
        now += TICK_MS;
        for (v, (option, at, acked)) in plan.iter_mut().enumerate() {
            if *acked || *at > now {
                continue;
            }
            let connection = match connection_of[v] {
                Some(c) if rng.below(20) != 0 => c,
                _ => {
                    // (Re)connect: a fresh connection resumes nothing but the vote.
                    let c = next_connection;
                    next_connection += 1;
                    join(&mut room, c, &format!("v{v}"), Role::Viewer, now);
                    connection_of[v] = Some(c);
                    c
                }
            };
            room.handle_frame(connection, &frame(*option, v as u64 + 1), now);
            if rng.below(25) == 0 {
                // A confused client votes again with another option and a new id.
                let other = (*option + 1) % 4;
                room.handle_frame(connection, &frame(other, v as u64 + 1_000_000), now);
            }
        }
        room.handle_timeout(now);
        let out = drain(&mut room);
        if rng.below(60) == 0 {
            // Crash: this tick's outputs are lost midway (stores before the cut applied).
            let cut = rng.below(out.stores.len() as u64 + 1) as usize;
            apply(&out.stores[..cut], &mut store);
            room = Room::restore(store.clone(), now).unwrap().unwrap();
            connection_of.iter_mut().for_each(|c| *c = None);
            restarts += 1;
            continue;
        }
        apply(&out.stores, &mut store);
        for (connection, events) in &out.events {
            for event in events {
                if let Event::Ack { client_id, .. } = event {
                    let v = (*client_id - 1) as usize;
                    if v < plan.len() && connection_of[v] == Some(*connection) && rng.below(8) != 0
                    {
                        plan[v].2 = true; // else the ack is lost and the client retries
                    }
                }
            }
        }
    }
    // Every viewer eventually got its ack before the close.
    assert!(
        plan.iter().all(|p| p.2),
        "seed {seed}: some vote never acknowledged"
    );
    let mut expected = [0u64; 4];
    for (option, _, _) in &plan {
        expected[usize::from(*option)] += 1;
    }
    if storm == Storm::Poll {
        let (_, phase, tallies) = room.poll().unwrap();
        assert_eq!(phase, PollPhase::Open, "seed {seed}: closes at 10 s");
        assert_eq!(tallies, expected, "seed {seed} ({restarts} restarts)");
    }
    let closes_at = 10_000; // opened at 0 with a 10 s window
    assert!(room.poll_timeout().unwrap() <= closes_at);
    join(&mut room, next_connection, "watcher", Role::Viewer, now);
    room.handle_timeout(closes_at);
    let mut at = closes_at;
    let out = tick(&mut room, &mut at);
    assert!(at - closes_at <= 1_000);
    let watcher = &out.events[&next_connection];
    match storm {
        Storm::Poll => {
            let result = poll_part(watcher).expect("the result part");
            assert_eq!(result["phase"], "result");
            assert_eq!(result["tallies"], serde_json::json!(expected));
            assert_eq!(result["votes"], viewers);
        }
        Storm::Quiz => {
            let result = part_value(watcher, "quiz").expect("the result part");
            assert_eq!(result["phase"], "result");
            assert_eq!(result["question"]["tallies"], serde_json::json!(expected));
            assert_eq!(result["participants"], viewers);
            for (v, (option, _, _)) in plan.iter().enumerate() {
                let score = room.quiz_score(&format!("v{v}")).expect("a participant");
                if *option == 2 {
                    assert!((QUIZ_POINTS_CORRECT..=1_000).contains(&score), "{score}");
                } else {
                    assert_eq!(score, 0, "seed {seed}: a wrong answer scores nothing");
                }
            }
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Storm {
    Poll,
    Quiz,
}

#[test]
fn vote_storms_count_exactly_through_lost_acks_duplicates_and_restarts() {
    let seeds: u64 = std::env::var("OVATION_SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(12);
    for seed in 0..seeds {
        vote_storm(seed, 300, Storm::Poll);
        vote_storm(seed + 1_000, 300, Storm::Quiz);
    }
}

#[test]
fn a_two_thousand_viewer_burst_is_counted_exactly() {
    vote_storm(2_000, 2_000, Storm::Poll);
    vote_storm(2_001, 2_000, Storm::Quiz);
}

// ---- Quizzes, Q&A, products, moderation ----

/// A tick whose storage ops are applied to `store` (so the room can be restored).
fn tick_into(room: &mut Room, now_ms: &mut u64, store: &mut BTreeMap<String, Vec<u8>>) -> Drained {
    let out = tick(room, now_ms);
    apply(&out.stores, store);
    out
}

/// A staff command sent over a connection's socket.
fn send_command(
    room: &mut Room,
    connection: ConnectionId,
    command: serde_json::Value,
    client_id: u64,
    now_ms: u64,
) {
    room.handle_frame(connection, &command_frame(command, client_id), now_ms);
}

fn command_frame(command: serde_json::Value, client_id: u64) -> Vec<u8> {
    frame_of(ClientFrame::Command {
        client_id,
        command: command.to_string(),
    })
}

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

fn product(id: &str) -> ProductCard {
    ProductCard {
        id: id.into(),
        title: "Red sneakers".into(),
        price: "€89.00".into(),
        image_url: "https://cdn.example.com/red.jpg".into(),
        link: "shop://item/red".into(),
        cue: None,
    }
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

    // A comment waits for the longer tick, then reaches every socket in one frame.
    now += 10_000;
    room.handle_timeout(now);
    drain(&mut room);
    room.handle_frame(1, &comment("hi", 1), now);
    room.handle_timeout(now + TICK_MS);
    let early = drain(&mut room);
    assert!(early.events.is_empty(), "nothing is sent before the tick");
    assert_eq!(room.poll_timeout(), Some(now + long_tick_ms));
    room.handle_timeout(now + long_tick_ms);
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
        room.handle_frame(id, &comment("many", 2), now);
    }
    room.handle_timeout(now + long_tick_ms);
    let out = drain(&mut room);
    assert_eq!(actions(&out.events[&sockets]).len() as u64, senders);
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
    room.reattach(4, identity("d", Role::Viewer), now + LIFETIME_MS, now);
    assert_eq!(room.online(), 3);
    room.handle_timeout(now + 2 * HELLO_DEADLINE_MS);
    assert!(drain(&mut room).closes.is_empty());
    room.disconnect(4, now + 2 * HELLO_DEADLINE_MS);
    room.disconnect(3, now + 2 * HELLO_DEADLINE_MS);
    assert_eq!(room.online(), 1);
}

#[test]
fn a_shard_keeps_the_per_user_socket_cap_and_the_hello_deadline() {
    let now = 0;
    let mut shard = Shard::new(0, now);
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
}

/// Runs one staff command from the admin API on a fresh room.
fn on_fresh_room(command: StaffCommand) -> Result<AdminReply, AdminError> {
    Room::create(info(), 1, 0).admin(as_host(command), 0)
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
fn interaction_counts_are_bounded_one_past_their_limits() {
    let users = |n: usize| (0..n).map(|i| format!("u{i}"));
    let mut poll = polls::Poll::open(1, poll_spec(2, 5_000), 0);
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
fn gifts_take_the_quantity_and_pending_limits_and_refuse_one_past() {
    let mut room = Room::create(info(), 1, 0);
    room.set_gift_catalog([("rose".to_owned(), 1)].into())
        .unwrap();
    let gift = |client_id: u64, qty: u32| {
        ClientFrame::Gift {
            client_id,
            gift_id: format!("g{client_id}"),
            sku: "rose".into(),
            qty,
        }
        .encode()
    };
    let mut now = 0;
    join(&mut room, 1, "ana", Role::Viewer, now);
    room.handle_frame(1, &gift(1, GIFT_QTY_MAX), now);
    room.handle_frame(1, &gift(2, GIFT_QTY_MAX + 1), now);
    let out = tick(&mut room, &mut now);
    assert_eq!(out.charges.len(), 1, "GIFT_QTY_MAX is taken");
    assert_eq!(error_codes(&out.events[&1]), [ErrorCode::Invalid]);
    // GIFTS_PENDING_MAX charges wait at once (the first is pending still); one more is
    // refused "room busy".
    let senders = (GIFTS_PENDING_MAX as u64).div_ceil(u64::from(GIFT_BURST)) + 1;
    let mut client_id = 10;
    for sender in 0..senders {
        let connection = 100 + sender;
        join(
            &mut room,
            connection,
            &format!("g{sender}"),
            Role::Viewer,
            now,
        );
        for _ in 0..GIFT_BURST {
            client_id += 1;
            room.handle_frame(connection, &gift(client_id, 1), now);
        }
    }
    let out = tick(&mut room, &mut now);
    assert_eq!(room.gifts_pending(), GIFTS_PENDING_MAX);
    assert_eq!(out.charges.len(), GIFTS_PENDING_MAX - 1);
    let busy: usize = out
        .events
        .values()
        .map(|e| {
            error_codes(e)
                .into_iter()
                .filter(|c| *c == ErrorCode::RateLimited)
                .count()
        })
        .sum();
    let sent = (senders * u64::from(GIFT_BURST)) as usize;
    assert_eq!(busy, sent - (GIFTS_PENDING_MAX - 1));
}

#[test]
fn room_and_shard_sockets_stop_at_connections_per_room_max() {
    let mut room = Room::create(info(), 1, 0);
    let mut shard = Shard::new(0, 0);
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
        shard.connect(1 << 40, one_more, LIFETIME_MS, 0),
        Err(CloseCode::RoomFull)
    );
}

#[test]
fn rate_buckets_are_bounded_at_rate_buckets_max_users() {
    let mut buckets = HashMap::new();
    for i in 0..RATE_BUCKETS_MAX as u64 {
        bucket_entry(&mut buckets, &format!("u{i}"), i);
    }
    assert_eq!(buckets.len(), RATE_BUCKETS_MAX);
    bucket_entry(&mut buckets, "one-more", RATE_BUCKETS_MAX as u64);
    assert_eq!(
        buckets.len(),
        RATE_BUCKETS_MAX,
        "the least recently used goes"
    );
    assert!(!buckets.contains_key("u0") && buckets.contains_key("one-more"));
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
    assert!(set(&mut room, SHARDS_PER_ROOM_MAX + 1).is_err());
    for change in 1..=SHARD_COUNTS_MAX as u16 {
        set(&mut room, change).unwrap_or_else(|e| panic!("change {change}: {e:?}"));
    }
    let refused = set(&mut room, SHARD_COUNTS_MAX as u16 + 1).unwrap_err();
    assert_eq!(refused.http_status(), 409, "{refused:?}");
    assert!(set(&mut room, SHARDS_PER_ROOM_MAX).is_err());
}

#[test]
fn a_cue_id_takes_its_limit_and_is_refused_one_past_it() {
    let cue = |bytes: usize| {
        let mut spec = poll_spec(2, 5_000);
        spec.cue = Some("c".repeat(bytes));
        on_fresh_room(StaffCommand::CreatePoll { spec })
    };
    assert!(cue(CUE_ID_BYTES_MAX).is_ok());
    assert_eq!(cue(CUE_ID_BYTES_MAX + 1).unwrap_err().http_status(), 400);
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

#[test]
fn a_shard_gives_a_long_silent_socket_s_place_to_its_user_s_new_socket() {
    let mut shard = Shard::new(0, 0);
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

/// Sends a gift of `qty` roses (1 each) from `connection`, has it charged, and returns
/// what the tick after the charge sent.
fn charged_gift(
    room: &mut Room,
    now: &mut u64,
    connection: ConnectionId,
    client_id: u64,
    qty: u32,
) -> Drained {
    let frame = ClientFrame::Gift {
        client_id,
        gift_id: format!("g{connection}-{client_id}"),
        sku: "rose".into(),
        qty,
    }
    .encode();
    room.handle_frame(connection, &frame, *now);
    let out = tick(room, now);
    assert_eq!(out.charges.len(), 1, "the gift is charged");
    room.charge_result(
        out.charges[0].request,
        ChargeOutcome::Charged {
            balance: 1_000,
            replayed: false,
        },
        *now,
    );
    tick(room, now)
}

fn gifters_stored(out: &Drained) -> Vec<&str> {
    out.stores
        .iter()
        .filter_map(|op| match op {
            StorageOp::Put { key, .. } => key.strip_prefix("gifter/"),
            StorageOp::Delete { .. } => None,
        })
        .collect()
}

/// The room ranks at most `GIFTERS_MAX` gifters: the one that reaches the limit is
/// ranked and stored; a new gifter one past it is still charged and announced to everyone
/// but neither ranked nor stored, while gifters already ranked keep adding to their total.
#[test]
fn gifters_past_gifters_max_are_announced_but_not_ranked() {
    let mut now = 0;
    let mut room = Room::create(info(), 1, now);
    room.set_gift_catalog([("rose".to_owned(), 1)].into())
        .unwrap();
    for i in 0..GIFTERS_MAX - 1 {
        room.gifters.insert(
            format!("u{i}"),
            Gifter {
                name: format!("U{i}"),
                total: 1,
                recent_gift_ids: VecDeque::new(),
            },
        );
    }
    join(&mut room, 1, "ana", Role::Viewer, now);
    join(&mut room, 2, "bob", Role::Viewer, now);
    join(&mut room, 3, "eve", Role::Viewer, now);
    tick(&mut room, &mut now);
    // Ana's gift brings the gifters to the limit: ranked, stored, on the leaderboard.
    let out = charged_gift(&mut room, &mut now, 1, 1, 2);
    assert_eq!(room.gifters.len(), GIFTERS_MAX);
    assert_eq!(gifters_stored(&out), ["ana"]);
    assert!(room.gift_totals().any(|g| g == ("ana", 2)));
    let leaderboard = part_value(&out.events[&3], "leaderboard").expect("leaderboard sent");
    assert_eq!(leaderboard[0]["user"], "ana");
    // Bob is one past: announced, not ranked, not stored, the leaderboard unchanged.
    let out = charged_gift(&mut room, &mut now, 2, 1, 3);
    assert!(out.events[&3].iter().any(|e| matches!(e, Event::Action(a)
        if a.body == ActionBody::Gift { sku: "rose".into(), qty: 3, amount: 3 })));
    assert_eq!(room.gifters.len(), GIFTERS_MAX);
    assert!(room.gift_totals().all(|(user, _)| user != "bob"));
    assert!(gifters_stored(&out).is_empty());
    assert_eq!(part_value(&out.events[&3], "leaderboard"), None);
    // Ana, already ranked, still adds to her total.
    let out = charged_gift(&mut room, &mut now, 1, 2, 1);
    assert_eq!(gifters_stored(&out), ["ana"]);
    assert!(room.gift_totals().any(|g| g == ("ana", 3)));
}

/// The `leaderboard` part lists the top `LEADERBOARD_ENTRIES_MAX` gifters: filled up to
/// the limit everyone is listed; one more gifter below them is left out, and one above
/// them pushes the lowest out.
#[test]
fn the_leaderboard_lists_the_top_leaderboard_entries_max_gifters() {
    let mut now = 0;
    let mut room = Room::create(info(), 1, now);
    room.set_gift_catalog([("rose".to_owned(), 1)].into())
        .unwrap();
    for i in 0..LEADERBOARD_ENTRIES_MAX as u64 - 1 {
        room.gifters.insert(
            format!("u{i}"),
            Gifter {
                name: format!("U{i}"),
                total: 20 + i,
                recent_gift_ids: VecDeque::new(),
            },
        );
    }
    join(&mut room, 1, "ana", Role::Viewer, now);
    join(&mut room, 2, "bob", Role::Viewer, now);
    join(&mut room, 3, "eve", Role::Viewer, now);
    tick(&mut room, &mut now);
    let users = |out: &Drained| -> Vec<String> {
        let board = part_value(&out.events[&3], "leaderboard").expect("leaderboard sent");
        board
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["user"].as_str().unwrap().to_owned())
            .collect()
    };
    let out = charged_gift(&mut room, &mut now, 1, 1, 10);
    let board = users(&out);
    assert_eq!(board.len(), LEADERBOARD_ENTRIES_MAX);
    assert_eq!(
        board.last().map(String::as_str),
        Some("ana"),
        "the limit is listed"
    );
    let out = charged_gift(&mut room, &mut now, 2, 1, 5);
    let board = users(&out);
    assert_eq!(board.len(), LEADERBOARD_ENTRIES_MAX);
    assert!(
        !board.contains(&"bob".to_owned()),
        "one past, lowest: left out"
    );
    let out = charged_gift(&mut room, &mut now, 3, 1, 99);
    let board = users(&out);
    assert_eq!(board.len(), LEADERBOARD_ENTRIES_MAX);
    assert_eq!(board[0], "eve");
    assert!(
        !board.contains(&"ana".to_owned()),
        "the lowest is pushed out"
    );
}

/// A user's last `RECENT_CLIENT_IDS_PER_USER_MAX` accepted client ids are remembered: a
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
    for id in 1..=RECENT_CLIENT_IDS_PER_USER_MAX as u64 {
        send(&mut room, &mut now, id);
    }
    let total = room.likes_total();
    assert_eq!(total, RECENT_CLIENT_IDS_PER_USER_MAX as u64);
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
        RECENT_CLIENT_IDS_PER_USER_MAX as u64 + 1,
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

/// A shard with the room's state (an empty live room) and one batch down applied.
fn shard_with_state(now_ms: u64) -> Shard {
    let mut shard = Shard::new(0, now_ms);
    let down = ShardDown {
        seq: 1,
        server_time_ms: now_ms,
        snapshot: Some(Snapshot {
            epoch: 1,
            total_version: 0,
            last_seq: 0,
            likes_total: 0,
            online: 0,
            ended: false,
            parts: Vec::new(),
            ring: Vec::new(),
            banned: Vec::new(),
        }),
        broadcast: Vec::new(),
        to_connection: Vec::new(),
        to_user: Vec::new(),
        close_users: Vec::new(),
        shards: 1,
    };
    shard.handle_down(&down.encode(), now_ms).unwrap();
    shard
}

/// Ticks the shard until `batches` batches up went out, and decodes them as the room
/// does.
fn batches_up(shard: &mut Shard, now_ms: &mut u64, batches: usize) -> Vec<ShardUp> {
    let mut ups = Vec::new();
    while ups.len() < batches {
        *now_ms += TICK_MS;
        shard.handle_timeout(*now_ms);
        while let Some(output) = shard.poll_output() {
            if let ShardOutput::Up(bytes) = output {
                assert!(
                    bytes.len() <= RELAY_MESSAGE_BYTES_MAX,
                    "{} bytes",
                    bytes.len()
                );
                ups.push(ShardUp::decode(&bytes).expect("the room takes the batch"));
            }
        }
    }
    ups
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

fn join_shard(shard: &mut Shard, connection: ConnectionId, now_ms: u64) {
    shard
        .connect(
            connection,
            identity(&format!("v{connection}"), Role::Viewer),
            LIFETIME_MS,
            now_ms,
        )
        .unwrap();
    shard.handle_frame(connection, &hello(None), now_ms);
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
