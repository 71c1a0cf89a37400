//! Single scenarios on a room and its shards without the random simulation: the comment
//! cap, a batch naming too few shards, and a like retried after a reconnect.

use super::sim::{info_for, FEW_SHARDS};
use ovation_proto::limits::{CONNECTION_LIFETIME_MS_MIN, SHARDED_COMMENTS_PER_S_MAX, TICK_MS};
use ovation_proto::{ActionBody, ClientFrame, Event, Hello, Role, ServerFrame, PROTOCOL_VERSION};
use ovation_room::{Identity, Output, Room, Shard, ShardOutput, UpAnswer};

/// Shard 0's next batch up carrying one viewer's frame (numbered after every earlier one).
fn relayed(user: &str, connection: u64, frame: ClientFrame) -> ovation_proto::ShardUp {
    static LAST_SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    ovation_proto::ShardUp {
        instance: 1,
        seq: LAST_SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1,
        epoch: 7,
        shard: 0,
        needs_snapshot: false,
        online: 1,
        likes: 0,
        frames: vec![ovation_proto::RelayedFrame {
            connection,
            user: user.into(),
            name: user.into(),
            role: Role::Viewer,
            frame,
        }],
    }
}

#[test]
fn a_comment_above_the_cap_reaches_only_its_sender() {
    let now_ms = 1_000;
    let mut room = Room::create(info_for(FEW_SHARDS.expected_audience), 7, now_ms);
    let up = |user: &str, connection: u64, client_id: u64| {
        let text = format!("from {user}");
        relayed(user, connection, ClientFrame::Comment { client_id, text })
    };
    // One viewer on one shard: the short tick's share of the per-second cap.
    let cap = ovation_proto::limits::per_tick(SHARDED_COMMENTS_PER_S_MAX, TICK_MS) as u64;
    for i in 0..cap + 3 {
        let batch = up(&format!("u{i}"), i, 1).encode();
        room.shard_up(&batch, now_ms).unwrap();
    }
    room.handle_timeout(now_ms + TICK_MS);
    let mut downs = Vec::new();
    while let Some(output) = room.poll_output() {
        if let Output::ToShard { shard: 0, frame } = output {
            downs.push(ovation_proto::ShardDown::decode(&frame).unwrap());
        }
    }
    assert_eq!(downs.len(), 1, "one batch per shard per tick");
    let down = &downs[0];
    let shown: Vec<u64> = down
        .broadcast
        .iter()
        .filter_map(|e| match e {
            Event::Action(a) if matches!(a.body, ActionBody::Comment { .. }) => Some(a.seq),
            _ => None,
        })
        .collect();
    assert_eq!(shown.len() as u64, cap, "the cap is shown to everyone");
    let own: Vec<(u64, u64)> = down
        .to_connection
        .iter()
        .filter_map(|(c, e)| match e {
            Event::Action(a) => Some((*c, a.seq)),
            _ => None,
        })
        .collect();
    assert_eq!(
        own,
        vec![(cap, cap + 1), (cap + 1, cap + 2), (cap + 2, cap + 3)],
        "each sampled comment goes back to its sender's connection only"
    );
    let acks = down
        .to_connection
        .iter()
        .filter(|(_, e)| matches!(e, Event::Ack { seq: Some(_), .. }))
        .count() as u64;
    assert_eq!(acks, cap + 3, "every comment is acknowledged");
    assert_eq!(room.stats().comments_sampled_out, 3);
}

#[test]
fn a_shard_refuses_a_batch_naming_fewer_shards_than_its_own_place() {
    let mut shard = Shard::new(5, 1, 1_000);
    let down = |shards: u16| ovation_proto::ShardDown::new(1, 1_000, shards);
    for shards in [3, 5] {
        assert!(
            shard.handle_down(&down(shards).encode(), 1_000).is_err(),
            "shard 5 of {shards}"
        );
        assert_eq!(shard.stats().batches_down, 0, "nothing applied");
    }
    shard.handle_down(&down(6).encode(), 1_000).unwrap();
    assert_eq!(shard.stats().batches_down, 1);
    assert_eq!(shard.up_interval_ms(), TICK_MS);
}

/// A like frame retried on a shard after a reconnect (its ack lost with the socket), in
/// the burst a resumed client sends, is acknowledged again and not counted again.
#[test]
fn a_like_retried_on_a_shard_is_acknowledged_not_counted_twice() {
    let mut now_ms = 1_000;
    let mut room = Room::create(info_for(FEW_SHARDS.expected_audience), 7, now_ms);
    let mut shard = Shard::new(0, 1, now_ms);
    let hello = ClientFrame::Hello(Hello {
        protocol_version: PROTOCOL_VERSION,
        resume: None,
    })
    .encode();
    let identity = |user: &str| Identity {
        user: user.into(),
        name: user.into(),
        role: Role::Viewer,
    };
    // Ticks the pair, carrying batches both ways; returns the acks each connection got.
    let exchange = |room: &mut Room, shard: &mut Shard, now_ms: &mut u64| {
        let mut acks: Vec<(u64, u64)> = Vec::new();
        for _ in 0..4 {
            *now_ms += 250;
            shard.handle_timeout(*now_ms);
            room.handle_timeout(*now_ms);
            while let Some(output) = shard.poll_output() {
                match output {
                    ShardOutput::Up { seq, batch } => {
                        room.shard_up(&batch, *now_ms).unwrap();
                        shard.up_answered(seq, UpAnswer::Applied, *now_ms);
                    }
                    ShardOutput::Send { connections, frame } => {
                        let ServerFrame::Batch { events, .. } =
                            ServerFrame::decode(&frame).unwrap();
                        for event in events {
                            if let Event::Ack { client_id, .. } = event {
                                acks.extend(connections.iter().map(|c| (*c, client_id)));
                            }
                        }
                    }
                    _ => {}
                }
            }
            while let Some(output) = room.poll_output() {
                if let Output::ToShard { shard: 0, frame } = output {
                    shard.handle_down(&frame, *now_ms).unwrap();
                    room.shard_batch_done(0, *now_ms);
                }
            }
        }
        acks
    };
    shard
        .connect(1, identity("ana"), CONNECTION_LIFETIME_MS_MIN, now_ms)
        .unwrap();
    shard.handle_frame(1, &hello, now_ms);
    exchange(&mut room, &mut shard, &mut now_ms);
    let like = |client_id| {
        ClientFrame::Like {
            client_id,
            count: 1,
        }
        .encode()
    };
    for id in 1..=10 {
        shard.handle_frame(1, &like(id), now_ms);
        now_ms += 100;
    }
    exchange(&mut room, &mut shard, &mut now_ms);
    let counted = room.likes_total();
    assert_eq!(counted, 10);
    // The socket drops; the client resends everything unacknowledged at once.
    shard.disconnect(1, now_ms);
    shard
        .connect(2, identity("ana"), CONNECTION_LIFETIME_MS_MIN, now_ms)
        .unwrap();
    shard.handle_frame(2, &hello, now_ms);
    exchange(&mut room, &mut shard, &mut now_ms);
    for id in 1..=10 {
        shard.handle_frame(2, &like(id), now_ms);
    }
    let acks = exchange(&mut room, &mut shard, &mut now_ms);
    for id in 1..=10 {
        assert!(
            acks.contains(&(2, id)),
            "retried like {id} acknowledged: {acks:?}"
        );
    }
    assert_eq!(room.likes_total(), counted, "no like counted twice");
}

/// A big room restarted while a relayed gift waits for its charge numbers relayed
/// connections from the start again, so the next viewer relayed may get the gifter's old
/// connection id: the recovered charge's answer (its `Ack` and the gifter's balance)
/// must not reach that viewer.
#[test]
fn a_recovered_gift_s_answer_never_reaches_another_viewer_of_a_restarted_big_room() {
    use ovation_room::{ChargeOutcome, StorageOp};
    use std::collections::BTreeMap;
    let now_ms = 1_000;
    let relayed =
        |user: &str, connection: u64, frame: ClientFrame| relayed(user, connection, frame).encode();
    let mut store: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let drain = |room: &mut Room, store: &mut BTreeMap<String, Vec<u8>>| {
        let mut charges = Vec::new();
        let mut to_connection = Vec::new();
        while let Some(output) = room.poll_output() {
            match output {
                Output::Store(StorageOp::Put { key, value }) => {
                    store.insert(key, value);
                }
                Output::Store(StorageOp::Delete { key }) => {
                    store.remove(&key);
                }
                Output::Charge(charge) => charges.push(charge),
                Output::ToShard { shard, frame } => {
                    let down = ovation_proto::ShardDown::decode(&frame).unwrap();
                    to_connection.extend(down.to_connection);
                    room.shard_batch_done(shard, now_ms);
                }
                _ => {}
            }
        }
        (charges, to_connection)
    };
    let mut room = Room::create(info_for(FEW_SHARDS.expected_audience), 7, now_ms);
    room.set_gift_catalog(ovation_room::default_gift_catalog())
        .unwrap();
    room.handle_timeout(now_ms + TICK_MS);
    drain(&mut room, &mut store);
    let gift = ClientFrame::Gift {
        client_id: 3,
        gift_id: "g-1".into(),
        sku: "heart".into(),
        qty: 1,
    };
    room.shard_up(&relayed("ana", 11, gift), now_ms).unwrap();
    let (charges, _) = drain(&mut room, &mut store);
    assert_eq!(charges.len(), 1, "the gift is charged");

    // The room object restarts before the answer; bob is the first viewer relayed after.
    let mut room = Room::restore(store.clone(), now_ms + 1).unwrap().unwrap();
    room.set_gift_catalog(ovation_room::default_gift_catalog())
        .unwrap();
    let (recharged, _) = drain(&mut room, &mut store);
    let comment = ClientFrame::Comment {
        client_id: 4,
        text: "hi".into(),
    };
    room.shard_up(&relayed("bob", 12, comment), now_ms + 2)
        .unwrap();
    room.handle_timeout(now_ms + 2 + TICK_MS);
    drain(&mut room, &mut store);
    let request = recharged
        .first()
        .or(charges.first())
        .map(|c| c.request)
        .unwrap();
    room.charge_result(
        request,
        ChargeOutcome::Charged {
            balance: 95,
            replayed: true,
        },
        now_ms + 3,
    );
    room.handle_timeout(now_ms + 3 + 2 * TICK_MS);
    let (_, to_connection) = drain(&mut room, &mut store);
    let to_bob: Vec<_> = to_connection
        .iter()
        .filter(|(connection, event)| {
            *connection == 12
                && matches!(
                    event,
                    Event::Ack { client_id: 3, .. } | Event::Balance { .. }
                )
        })
        .collect();
    assert!(to_bob.is_empty(), "bob got the gifter's answer: {to_bob:?}");
}
