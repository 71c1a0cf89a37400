//! Gifts: charged then announced once, pending limits, gifters and the leaderboard
//! (`gifts.rs`).

use super::*;

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
    // A retry of the same gift id: announced, so acknowledged as that gift at once,
    // neither charged again nor announced.
    room.handle_frame(1, &gift(8, "rose"), now);
    let out = tick(&mut room, &mut now);
    assert!(out.charges.is_empty(), "{:?}", out.charges);
    assert!(out.events[&1].contains(&Event::Ack {
        client_id: 8,
        seq: None
    }));
    assert!(!out.events.contains_key(&2));
    assert_eq!(room.gift_totals().collect::<Vec<_>>(), vec![("ana", 10)]);
    // A charge whose answer was lost on the way (told `unavailable`): the gifter retries
    // the id, the service answers `replayed`, and the gift is announced then, once.
    let other = |client_id| {
        ClientFrame::Gift {
            client_id,
            gift_id: "g-2".into(),
            sku: "rose".into(),
            qty: 1,
        }
        .encode()
    };
    // Answered `unavailable` twice (the service is down); each retry is one more.
    for client_id in [11, 14] {
        room.handle_frame(1, &other(client_id), now);
        let out = tick(&mut room, &mut now);
        room.charge_result(
            out.charges[0].request,
            ChargeOutcome::Refused {
                code: ErrorCode::Unavailable,
                message: "retry".into(),
            },
            now,
        );
        tick(&mut room, &mut now);
    }
    let mut seen_by_bob = Vec::new();
    // The first retry is charged (`replayed`) and announced; the second, once it is
    // announced, is acknowledged as that gift without a charge.
    for client_id in [12, 13] {
        room.handle_frame(1, &other(client_id), now);
        let out = tick(&mut room, &mut now);
        seen_by_bob.extend(out.events.get(&2).cloned().unwrap_or_default());
        let Some(charge) = out.charges.first() else {
            assert_eq!(client_id, 13, "the first retry is charged");
            assert!(out.events[&1].contains(&Event::Ack {
                client_id,
                seq: None
            }));
            continue;
        };
        room.charge_result(
            charge.request,
            ChargeOutcome::Charged {
                balance: 85,
                replayed: true,
            },
            now,
        );
    }
    let out = tick(&mut room, &mut now);
    seen_by_bob.extend(out.events.get(&2).cloned().unwrap_or_default());
    let announced = seen_by_bob
        .iter()
        .filter(|e| matches!(e, Event::Action(a) if matches!(a.body, ActionBody::Gift { .. })))
        .count();
    assert_eq!(announced, 1, "paid, so announced, once: {seen_by_bob:?}");
    assert_eq!(room.gift_totals().collect::<Vec<_>>(), vec![("ana", 15)]);
    // Refused: only the sender hears of it. Unknown gifts never reach the service.
    let fresh = |client_id: u64, sku: &str| {
        ClientFrame::Gift {
            client_id,
            gift_id: format!("g-{client_id}"),
            sku: sku.into(),
            qty: 2,
        }
        .encode()
    };
    room.handle_frame(1, &fresh(9, "rose"), now);
    room.handle_frame(1, &fresh(10, "diamond"), now);
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

/// One gifter's gifts waiting for their charges take at most `GIFTS_PENDING_PER_USER_MAX`
/// of the room's places: past it theirs are refused `rate_limited` (a viewer without
/// funds, gifting at the gift rate to a slow settlement service, filled the room's queue
/// and every other gifter was refused), and another gifter's gift is still charged.
#[test]
fn one_gifters_pending_gifts_leave_the_others_room() {
    let mut room = Room::create(info(), 1, 0);
    room.set_gift_catalog([("rose".to_owned(), 1)].into())
        .unwrap();
    let gift = |client_id: u64| {
        ClientFrame::Gift {
            client_id,
            gift_id: format!("g{client_id}"),
            sku: "rose".into(),
            qty: 1,
        }
        .encode()
    };
    let mut now = 0;
    join(&mut room, 1, "eve", Role::Viewer, now);
    join(&mut room, 2, "bob", Role::Viewer, now);
    let mut refused = Vec::new();
    // At the gift rate, never answered.
    for client_id in 1..=GIFTS_PENDING_PER_USER_MAX as u64 + 5 {
        now += 1_000 / u64::from(GIFT_RATE_PER_S);
        room.handle_frame(1, &gift(client_id), now);
        refused.extend(error_codes(
            tick(&mut room, &mut now)
                .events
                .get(&1)
                .unwrap_or(&Vec::new()),
        ));
    }
    assert_eq!(room.gifts_pending(), GIFTS_PENDING_PER_USER_MAX);
    assert_eq!(refused, [ErrorCode::RateLimited; 5]);
    room.handle_frame(2, &gift(1_000), now);
    let out = tick(&mut room, &mut now);
    assert_eq!(out.charges.len(), 1, "bob's gift is charged");
    assert_eq!(room.gifts_pending(), GIFTS_PENDING_PER_USER_MAX + 1);
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

/// A gifter's client resends, on a new socket, every gift whose ack its old socket lost:
/// more than the gift burst and the per-user share. Each announced gift is acknowledged
/// at once as that gift (a shard sends every gift resend to the room), never charged
/// again nor refused for the rate, which would read as "not applied".
#[test]
fn resends_of_announced_gifts_are_answered_before_the_rates() {
    let mut room = Room::create(info(), 1, 0);
    room.set_gift_catalog([("rose".to_owned(), 1)].into())
        .unwrap();
    let mut now = 0;
    join(&mut room, 1, "ana", Role::Viewer, now);
    let sent = GIFTS_PENDING_PER_USER_MAX as u64 + 5;
    for client_id in 1..=sent {
        now += 1_000 / u64::from(GIFT_RATE_PER_S);
        charged_gift(&mut room, &mut now, 1, client_id, 1);
    }
    room.disconnect(1, now);
    join(&mut room, 2, "ana", Role::Viewer, now);
    tick(&mut room, &mut now);
    for client_id in 1..=sent {
        let resend = ClientFrame::Gift {
            client_id: 100 + client_id,
            gift_id: format!("g1-{client_id}"),
            sku: "rose".into(),
            qty: 1,
        };
        room.handle_frame(2, &resend.encode(), now);
    }
    let out = tick(&mut room, &mut now);
    assert!(out.charges.is_empty(), "{:?}", out.charges);
    assert_eq!(error_codes(&out.events[&2]), []);
    for client_id in 1..=sent {
        assert!(out.events[&2].contains(&Event::Ack {
            client_id: 100 + client_id,
            seq: None
        }));
    }
    // Another gift under an announced id is not that gift: refused `invalid` (what the
    // ledger answers, `id_conflict`), never acknowledged.
    let another = ClientFrame::Gift {
        client_id: 500,
        gift_id: "g1-1".into(),
        sku: "rose".into(),
        qty: 2,
    };
    room.handle_frame(2, &another.encode(), now);
    let out = tick(&mut room, &mut now);
    assert!(out.charges.is_empty());
    assert_eq!(error_codes(&out.events[&2]), [ErrorCode::Invalid]);
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
        room.gifts.insert_gifter(
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
    assert_eq!(room.gifts.gifters_count(), GIFTERS_MAX);
    assert_eq!(gifters_stored(&out), ["ana"]);
    assert!(room.gift_totals().any(|g| g == ("ana", 2)));
    let leaderboard = part_value(&out.events[&3], "leaderboard").expect("leaderboard sent");
    assert_eq!(leaderboard[0]["user"], "ana");
    // Bob is one past: announced, not ranked, not stored, the leaderboard unchanged.
    let out = charged_gift(&mut room, &mut now, 2, 1, 3);
    assert!(out.events[&3].iter().any(|e| matches!(e, Event::Action(a)
        if a.body == ActionBody::Gift { sku: "rose".into(), qty: 3, amount: 3 })));
    assert_eq!(room.gifts.gifters_count(), GIFTERS_MAX);
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
        room.gifts.insert_gifter(
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
    let shown_before = room.part("leaderboard").map(|(v, _)| v);
    let out = charged_gift(&mut room, &mut now, 2, 1, 5);
    assert!(
        part_value(&out.events[&3], "leaderboard").is_none(),
        "one past, lowest: left out, and the board unchanged is not sent again"
    );
    assert_eq!(room.part("leaderboard").map(|(v, _)| v), shown_before);
    let out = charged_gift(&mut room, &mut now, 3, 1, 99);
    let board = users(&out);
    assert_eq!(board.len(), LEADERBOARD_ENTRIES_MAX);
    assert_eq!(board[0], "eve");
    assert!(
        !board.contains(&"ana".to_owned()),
        "the lowest is pushed out"
    );
}

/// The leaderboard is kept as gifts come, not sorted from every gifter for each gift
/// (`GIFTERS_MAX` of them: a funded viewer's cheapest gifts at the gift rate made that
/// sort the room's work): after each of many gifts among many gifters it equals the full
/// sort, also after a restart; and a gift from outside the top ten that stays outside
/// sends no new `leaderboard` version to the viewers.
#[test]
fn the_leaderboard_kept_gift_by_gift_equals_the_full_ranking() {
    let mut now = 0;
    let mut store = BTreeMap::new();
    let mut room = Room::create(info(), 1, now);
    room.set_gift_catalog([("rose".to_owned(), 1)].into())
        .unwrap();
    let users: Vec<String> = (0..30).map(|i| format!("u{i:02}")).collect();
    for (i, user) in users.iter().enumerate() {
        join(&mut room, i as ConnectionId + 1, user, Role::Viewer, now);
    }
    tick_into(&mut room, &mut now, &mut store);
    let full_ranking = |room: &Room| -> Vec<(String, u64)> {
        let mut all: Vec<(String, u64)> =
            room.gift_totals().map(|(u, t)| (u.to_owned(), t)).collect();
        all.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        all.truncate(LEADERBOARD_ENTRIES_MAX);
        all
    };
    let shown = |room: &Room| -> Vec<(String, u64)> {
        let (_, board) = room.part("leaderboard").expect("a leaderboard");
        let board: serde_json::Value = serde_json::from_str(board).unwrap();
        let entries = board.as_array().unwrap().iter();
        entries
            .map(|e| {
                (
                    e["user"].as_str().unwrap().to_owned(),
                    e["total"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    // A fixed walk: each gifter's quantity follows a simple generator, so the top ten
    // changes often, with ties among equal totals.
    let mut x: u64 = 7;
    for n in 0..150u64 {
        x = x
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let connection = (x >> 33) % users.len() as u64 + 1;
        let qty = (x >> 40) % 5 + 1;
        let frame = ClientFrame::Gift {
            client_id: n,
            gift_id: format!("g{n}"),
            sku: "rose".into(),
            qty: qty as u32,
        }
        .encode();
        now += 200; // within the sockets' silence bound, past one gifter's burst
        room.handle_frame(connection, &frame, now);
        let out = tick_into(&mut room, &mut now, &mut store);
        let Some(charge) = out.charges.first() else {
            panic!("{n}: {:?}", out.events.get(&connection));
        };
        let before = room.part("leaderboard").map(|(v, s)| (v, s.to_owned()));
        let charged = ChargeOutcome::Charged {
            balance: 1_000,
            replayed: false,
        };
        room.charge_result(charge.request, charged, now);
        tick_into(&mut room, &mut now, &mut store);
        assert_eq!(shown(&room), full_ranking(&room), "after gift {n}");
        let after = room.part("leaderboard").map(|(v, s)| (v, s.to_owned()));
        if let (Some(before), Some(after)) = (before, after) {
            assert_eq!(
                before.1 == after.1,
                before.0 == after.0,
                "{n}: a new version exactly when the board changed"
            );
        }
    }
    let restored = Room::restore(store.clone(), now).unwrap().unwrap();
    assert_eq!(shown(&restored), full_ranking(&restored), "restored");
    assert_eq!(shown(&restored), shown(&room));
}

#[test]
fn the_catalog_is_published_in_the_room_part_and_setting_it_again_changes_nothing() {
    let mut room = Room::create(info(), 1, 0);
    room.set_gift_catalog(default_gift_catalog()).unwrap();
    let (version, value) = room.part("room").map(|(v, s)| (v, s.to_owned())).unwrap();
    let value: serde_json::Value = serde_json::from_str(&value).unwrap();
    assert_eq!(
        value["gifts"],
        serde_json::json!({"heart": 5, "rocket": 100, "rose": 1})
    );
    // A woken room is given the same catalog: no new version, nothing sent.
    drain(&mut room);
    room.set_gift_catalog(default_gift_catalog()).unwrap();
    assert_eq!(room.part("room").unwrap().0, version);
    assert!(room.poll_output().is_none());
    // A new price is a new version clients get.
    let mut catalog = default_gift_catalog();
    catalog.insert("rose".into(), 2);
    room.set_gift_catalog(catalog).unwrap();
    let (newer, value) = room.part("room").unwrap();
    assert!(newer > version);
    assert!(value.contains(r#""rose":2"#), "{value}");
}

/// A woken room given a catalog it refuses (one bad entry) or none (gifts are off) sells
/// nothing, and its `room` part says so: it kept showing the prices of the catalog it
/// was last given, stored with the part, while refusing every gift.
#[test]
fn a_refused_or_empty_catalog_shows_no_prices_and_sells_nothing() {
    let mut now = 0;
    let mut store = BTreeMap::new();
    let room = room_selling_roses(&mut now, &mut store);
    let gifts_shown = |room: &Room| {
        let (_, value) = room.part("room").expect("the room part");
        serde_json::from_str::<serde_json::Value>(value).unwrap()["gifts"].clone()
    };
    assert_eq!(gifts_shown(&room), serde_json::json!({"rose": 1}));
    drop(room);
    let bad: BTreeMap<String, u64> = [("rose".to_owned(), 1), ("free".to_owned(), 0)].into();
    for catalog in [bad, BTreeMap::new()] {
        let mut room = Room::restore(store.clone(), now).unwrap().unwrap();
        let refused = catalog.len() > 1;
        assert_eq!(room.set_gift_catalog(catalog).is_err(), refused);
        assert_eq!(
            gifts_shown(&room),
            serde_json::json!({}),
            "refused: {refused}"
        );
        join(&mut room, 2, "ana", Role::Viewer, now);
        room.handle_frame(2, &rose(1, "g-1"), now);
        let out = tick(&mut room, &mut now);
        assert!(out.charges.is_empty(), "nothing charged");
        assert_eq!(error_codes(&out.events[&2]), [ErrorCode::NotFound]);
        let shown = part_value(&out.events[&2], "room").expect("the room part");
        assert_eq!(shown["gifts"], serde_json::json!({}));
    }
}

/// A gift whose charge may have been made (answered `unavailable`), retried while the
/// room sells nothing (gifts switched off meanwhile), is told to retry later, never
/// refused for good: once gifts are on again its retry is charged, answered `replayed`,
/// and announced.
#[test]
fn a_gift_that_may_be_charged_is_retried_not_refused_while_gifts_are_off() {
    let mut now = 0;
    let mut store = BTreeMap::new();
    let mut room = room_selling_roses(&mut now, &mut store);
    rose_answered(&mut room, &mut now, &mut store, 1, "g-1", unavailable());
    drop(room);

    let mut off = Room::restore(store.clone(), now).unwrap().unwrap();
    off.set_gift_catalog(BTreeMap::new()).unwrap();
    join(&mut off, 2, "ana", Role::Viewer, now);
    off.handle_frame(2, &rose(7, "g-1"), now);
    let out = tick(&mut off, &mut now);
    assert!(out.charges.is_empty());
    let refusal = out.events[&2].iter().find_map(|e| match e {
        Event::Error {
            code,
            retry_after_ms,
            ..
        } => Some((*code, *retry_after_ms)),
        _ => None,
    });
    assert_eq!(
        refusal,
        Some((ErrorCode::Unavailable, GIFT_UNKNOWN_UNSOLD_RETRY_AFTER_MS)),
        "retry later, not not_found"
    );
    // Another gift, never charged, is refused for good.
    off.handle_frame(2, &rose(8, "g-2"), now);
    let out = tick(&mut off, &mut now);
    assert_eq!(error_codes(&out.events[&2]), [ErrorCode::NotFound]);
    drop(off);

    let mut on = Room::restore(store.clone(), now).unwrap().unwrap();
    on.set_gift_catalog(roses()).unwrap();
    join(&mut on, 3, "ana", Role::Viewer, now);
    let (announced, _) = rose_answered(&mut on, &mut now, &mut store, 3, "g-1", replayed());
    assert_eq!(announced, 1, "charged before, announced now");
}

/// A gift answered `unavailable` (charged, its answer lost) whose price changed before
/// its retry (a deploy with a new catalog) is charged again at the amount first asked:
/// priced anew, the ledger refused it as another gift under the same id (`id_conflict`),
/// and the gift its gifter paid for was never announced. A record stored by the build
/// before (no amount) is still read, and priced from the catalog.
#[test]
fn a_gift_that_may_be_charged_is_retried_at_its_first_price_after_the_catalog_changed() {
    let mut now = 0;
    let mut store = BTreeMap::new();
    let mut room = room_selling_roses(&mut now, &mut store);
    rose_answered(&mut room, &mut now, &mut store, 1, "g-1", unavailable());
    drop(room);

    let mut dearer = Room::restore(store.clone(), now).unwrap().unwrap();
    dearer
        .set_gift_catalog([("rose".to_owned(), 6)].into())
        .unwrap();
    join(&mut dearer, 2, "ana", Role::Viewer, now);
    dearer.handle_frame(2, &rose(7, "g-1"), now);
    let out = tick(&mut dearer, &mut now);
    let amounts: Vec<u64> = out.charges.iter().map(|c| c.amount).collect();
    assert_eq!(amounts, vec![1], "the first charge's amount, not 6");
    // Another gift is priced from the catalog as it is now.
    now += 1_000;
    dearer.handle_frame(2, &rose(8, "g-2"), now);
    let out = tick(&mut dearer, &mut now);
    let amounts: Vec<u64> = out.charges.iter().map(|c| c.amount).collect();
    assert_eq!(amounts, vec![6]);

    // The record as the build before stored it: user and gift id only.
    #[derive(serde::Serialize)]
    struct Before<'a> {
        user: &'a str,
        gift_id: &'a str,
    }
    let key = store
        .keys()
        .find(|k| k.starts_with("unknown/"))
        .cloned()
        .unwrap();
    let before = postcard::to_allocvec(&Before {
        user: "ana",
        gift_id: "g-1",
    })
    .unwrap();
    store.insert(key, before);
    let mut older = Room::restore(store.clone(), now).unwrap().unwrap();
    older
        .set_gift_catalog([("rose".to_owned(), 6)].into())
        .unwrap();
    assert!(older.gifts.outcome_is_unknown("ana", "g-1"), "read");
    join(&mut older, 3, "ana", Role::Viewer, now);
    older.handle_frame(3, &rose(9, "g-1"), now);
    let out = tick(&mut older, &mut now);
    let amounts: Vec<u64> = out.charges.iter().map(|c| c.amount).collect();
    assert_eq!(amounts, vec![6], "no amount kept: priced from the catalog");
}

/// A charge the host gave up without its answer (it asks again) may have been made: the
/// second attempt's `replayed` answer announces the gift, where a replay of a charge the
/// room knew the outcome of is not announced again.
#[test]
fn a_charge_given_up_unanswered_is_announced_on_its_replayed_answer() {
    let mut now = 0;
    let mut store = BTreeMap::new();
    let mut room = room_selling_roses(&mut now, &mut store);
    let request = rose_asked(&mut room, &mut now, &mut store, "g-1");
    room.charge_unanswered(request);
    let before = room.last_seq();
    room.charge_result(request, replayed(), now);
    tick_into(&mut room, &mut now, &mut store);
    assert_eq!(room.last_seq() - before, 1, "announced once");
}

/// A gift whose charge is answered after the room ended (in flight at the end, or
/// started by the end's own settlement wait) is paid to the host: the ledger's room is
/// open until the settlement, which counts it. The room records it as it would live (an
/// action, the gifter ranked, stored), so the ended room's state and leaderboard agree
/// with what the host was paid; it recorded nothing once ended. Also when the answer is
/// the replay of a charge given up unanswered, and when the room restarted after its end
/// with the charge still pending (the restored room asks again).
#[test]
fn a_gift_charged_after_the_end_is_recorded_as_the_ledger_paid_it() {
    for case in ["answered", "replayed after unanswered", "restored"] {
        let mut now = 0;
        let mut store = BTreeMap::new();
        let mut room = room_selling_roses(&mut now, &mut store);
        let mut request = rose_asked(&mut room, &mut now, &mut store, "g-1");
        room.admin(AdminCommand::End, now).unwrap();
        tick_into(&mut room, &mut now, &mut store);
        let before = room.last_seq();
        let outcome = match case {
            "answered" => ChargeOutcome::Charged {
                balance: 9,
                replayed: false,
            },
            "replayed after unanswered" => {
                room.charge_unanswered(request);
                replayed()
            }
            _ => {
                room = Room::restore(store.clone(), now).unwrap().unwrap();
                let out = tick_into(&mut room, &mut now, &mut store);
                assert_eq!(out.charges.len(), 1, "asked again");
                request = out.charges[0].request;
                replayed()
            }
        };
        room.charge_result(request, outcome, now);
        tick_into(&mut room, &mut now, &mut store);
        assert_eq!(
            room.last_seq() - before,
            1,
            "{case}: the gift took a number"
        );
        let gifted = vec![("ana", 1)];
        assert_eq!(room.gift_totals().collect::<Vec<_>>(), gifted, "{case}");
        let again = Room::restore(store.clone(), now).unwrap().unwrap();
        let stored: Vec<_> = again.gift_totals().collect();
        assert_eq!(stored, gifted, "{case}: stored");
        assert_eq!(again.gifts_pending(), 0, "{case}");
        let (_, leaderboard) = again.part("leaderboard").expect("the leaderboard");
        assert!(leaderboard.contains("ana"), "{case}: {leaderboard}");
    }
}

#[test]
fn a_catalog_price_is_bounded_so_the_largest_gift_is_one_the_ledger_takes() {
    let mut room = Room::create(info(), 1, 0);
    let priced = |price: u64| [("rose".to_owned(), price)].into();
    assert!(room.set_gift_catalog(priced(0)).is_err());
    // A sku the ledger would refuse (every gift of it refused `invalid`).
    assert!(room
        .set_gift_catalog([("ro\u{7}se".to_owned(), 1)].into())
        .is_err());
    assert!(room.set_gift_catalog(priced(GIFT_PRICE_MAX + 1)).is_err());
    assert!(room.set_gift_catalog(priced(u64::MAX)).is_err());
    room.set_gift_catalog(priced(GIFT_PRICE_MAX)).unwrap();
    let amount = room.gifts.price("ana", "g1", "rose", GIFT_QTY_MAX).unwrap();
    assert!(amount <= LEDGER_AMOUNT_MAX, "{amount}");
}

#[test]
fn a_gift_is_refused_before_any_charge_at_one_past_each_bound() {
    let mut gifts = Gifts::default();
    gifts.set_catalog([("rose".to_owned(), 2)].into()).unwrap();
    let code = |r: Result<u64, Refusal>| r.map_err(|refusal| refusal.code);
    assert_eq!(
        code(gifts.price("ana", "g", "rose", GIFT_QTY_MAX)),
        Ok(2 * u64::from(GIFT_QTY_MAX))
    );
    assert_eq!(
        code(gifts.price("ana", "g", "rose", 0)),
        Err(ErrorCode::Invalid)
    );
    assert_eq!(
        code(gifts.price("ana", "g", "rose", GIFT_QTY_MAX + 1)),
        Err(ErrorCode::Invalid)
    );
    assert_eq!(
        code(gifts.price("ana", "g", "rose", u32::MAX)),
        Err(ErrorCode::Invalid)
    );
    assert_eq!(
        code(gifts.price("ana", "", "rose", 1)),
        Err(ErrorCode::Invalid)
    );
    assert_eq!(
        code(gifts.price("ana", "g", "tulip", 1)),
        Err(ErrorCode::NotFound)
    );
    let viewer = identity("ana", Role::Viewer);
    for _ in 0..GIFTS_PENDING_PER_USER_MAX {
        gifts.price("ana", "g", "rose", 1).unwrap();
        gifts.open(1, 1, &viewer, charge);
    }
    // Ana's share is full; the room is not.
    assert_eq!(
        code(gifts.price("ana", "g", "rose", 1)),
        Err(ErrorCode::RateLimited)
    );
    assert_eq!(code(gifts.price("bob", "g", "rose", 1)), Ok(2));
    for _ in GIFTS_PENDING_PER_USER_MAX..GIFTS_PENDING_MAX {
        gifts.open(1, 1, &viewer, charge);
    }
    assert_eq!(
        code(gifts.price("bob", "g", "rose", 1)),
        Err(ErrorCode::RateLimited)
    );
}

#[test]
fn a_restored_room_numbers_its_requests_above_every_pending_one() {
    let mut gifts = Gifts::default();
    gifts.set_catalog([("rose".to_owned(), 1)].into()).unwrap();
    let viewer = identity("ana", Role::Viewer);
    let first = gifts.open(1, 1, &viewer, charge).charge.request;
    let second = gifts.open(1, 2, &viewer, charge).charge.request;
    assert!(second > first);
    gifts.settle(first);
    let pending: BTreeMap<u64, PendingGift> = gifts
        .pending()
        .map(|g| (g.charge.request, g.clone()))
        .collect();
    let mut restored = Gifts::restored(BTreeMap::new(), pending, BTreeMap::new());
    let next = restored.open(1, 3, &viewer, charge).charge.request;
    assert!(
        next > second,
        "a restored room never reuses a request number"
    );
}

fn charge(request: u64) -> ChargeRequest {
    ChargeRequest {
        request,
        gift_id: format!("g{request}"),
        user: "ana".into(),
        sku: "rose".into(),
        qty: 1,
        amount: 1,
    }
}

/// A gifter resends the id of a gift announced long ago (past the ids the room
/// remembers for them): the ledger answers `replayed` without charging, and the room
/// neither announces it again nor ranks it again, however often it comes back. The
/// gift's first answers were lost twice (`unavailable`), so its first `replayed` answer
/// was announced, once.
#[test]
fn a_resent_old_gift_id_is_never_announced_or_ranked_again() {
    let mut now = 0;
    let mut room = Room::create(info(), 1, now);
    room.set_gift_catalog([("rose".to_owned(), 1)].into())
        .unwrap();
    join(&mut room, 1, "ana", Role::Viewer, now);
    join(&mut room, 2, "bob", Role::Viewer, now);
    tick(&mut room, &mut now);
    let mut client_id = 0;
    let mut send = |room: &mut Room, now: &mut u64, gift_id: &str, outcome: ChargeOutcome| {
        client_id += 1;
        let frame = ClientFrame::Gift {
            client_id,
            gift_id: gift_id.into(),
            sku: "rose".into(),
            qty: 1,
        };
        room.handle_frame(1, &frame.encode(), *now);
        let out = tick(room, now);
        room.charge_result(out.charges[0].request, outcome, *now);
        let out = tick(room, now);
        // Past the gift rate: a second apart.
        *now += 1_000;
        out.events.get(&2).map_or(0, |events| {
            events
                .iter()
                .filter(
                    |e| matches!(e, Event::Action(a) if matches!(a.body, ActionBody::Gift { .. })),
                )
                .count()
        })
    };
    let charged = |replayed| ChargeOutcome::Charged {
        balance: 1_000,
        replayed,
    };
    assert_eq!(send(&mut room, &mut now, "g-0", unavailable()), 0);
    assert_eq!(send(&mut room, &mut now, "g-0", unavailable()), 0);
    assert_eq!(send(&mut room, &mut now, "g-0", charged(true)), 1);
    for i in 1..=GIFT_IDS_REMEMBERED_PER_USER_MAX {
        assert_eq!(
            send(&mut room, &mut now, &format!("g-{i}"), charged(false)),
            1
        );
    }
    let total = GIFT_IDS_REMEMBERED_PER_USER_MAX as u64 + 1;
    assert_eq!(room.gift_totals().collect::<Vec<_>>(), vec![("ana", total)]);
    for _ in 0..3 {
        assert_eq!(
            send(&mut room, &mut now, "g-0", charged(true)),
            0,
            "not announced again"
        );
    }
    assert_eq!(room.gift_totals().collect::<Vec<_>>(), vec![("ana", total)]);
}

/// A gift whose charge was answered `unavailable` (perhaps made, its answer lost) is
/// announced when its gifter retries it and the ledger answers `replayed`, also when the
/// room object restarted in between: the ids are stored, and forgotten once announced.
/// A room selling roses at 1, with ana on connection 1, ticked once into `store`.
fn room_selling_roses(now: &mut u64, store: &mut BTreeMap<String, Vec<u8>>) -> Room {
    let mut room = Room::create(info(), 1, *now);
    room.set_gift_catalog(roses()).unwrap();
    join(&mut room, 1, "ana", Role::Viewer, *now);
    tick_into(&mut room, now, store);
    room
}

fn roses() -> BTreeMap<String, u64> {
    [("rose".to_owned(), 1)].into()
}

/// One rose under `gift_id`, as a client sends it.
fn rose(client_id: u64, gift_id: &str) -> Vec<u8> {
    ClientFrame::Gift {
        client_id,
        gift_id: gift_id.into(),
        sku: "rose".into(),
        qty: 1,
    }
    .encode()
}

/// ana (connection 1) sends one rose under `gift_id`; the tick asks for its charge: the
/// request's number.
fn rose_asked(
    room: &mut Room,
    now: &mut u64,
    store: &mut BTreeMap<String, Vec<u8>>,
    gift_id: &str,
) -> u64 {
    room.handle_frame(1, &rose(1, gift_id), *now);
    let out = tick_into(room, now, store);
    out.charges[0].request
}

/// The ledger did not answer (the charge may have been made).
fn unavailable() -> ChargeOutcome {
    ChargeOutcome::Refused {
        code: ErrorCode::Unavailable,
        message: "retry".into(),
    }
}

#[test]
fn a_gift_answered_unavailable_is_announced_on_its_retry_after_the_room_restarted() {
    let mut now = 0;
    let mut store = BTreeMap::new();
    let mut room = room_selling_roses(&mut now, &mut store);
    let request = rose_asked(&mut room, &mut now, &mut store, "g-1");
    room.charge_result(request, unavailable(), now);
    tick_into(&mut room, &mut now, &mut store);
    let unknown = |store: &BTreeMap<String, Vec<u8>>| {
        store.keys().filter(|k| k.starts_with("unknown/")).count()
    };
    assert_eq!(unknown(&store), 1, "stored");

    let mut room = Room::restore(store.clone(), now).unwrap().unwrap();
    room.set_gift_catalog(roses()).unwrap();
    join(&mut room, 2, "ana", Role::Viewer, now);
    join(&mut room, 3, "bob", Role::Viewer, now);
    tick_into(&mut room, &mut now, &mut store);
    now += 1_000;
    room.handle_frame(2, &rose(2, "g-1"), now);
    let out = tick_into(&mut room, &mut now, &mut store);
    let replayed = ChargeOutcome::Charged {
        balance: 0,
        replayed: true,
    };
    room.charge_result(out.charges[0].request, replayed, now);
    let out = tick_into(&mut room, &mut now, &mut store);
    let announced = out.events.get(&3).map_or(0, |events| {
        let gift =
            |e: &&Event| matches!(e, Event::Action(a) if matches!(a.body, ActionBody::Gift { .. }));
        events.iter().filter(gift).count()
    });
    assert_eq!(announced, 1, "bob sees the gift once");
    assert_eq!(unknown(&store), 0, "forgotten once announced");
}

/// A retry the ledger answers from its first charge (`replayed`) carries the balance after
/// that first charge, which later gifts may have lowered: the gifter gets the `Ack`, and
/// no `Balance` showing coins they no longer have. A fresh charge's balance is sent.
#[test]
fn a_replayed_answer_sends_no_balance_older_than_the_gifters_later_gifts() {
    let mut now = 0;
    let mut store = BTreeMap::new();
    let mut room = room_selling_roses(&mut now, &mut store);
    let balances = |out: &Drained| -> Vec<u64> {
        let events = out.events.get(&1).map(Vec::as_slice).unwrap_or_default();
        let balance = |e: &Event| match e {
            Event::Balance { balance } => Some(*balance),
            _ => None,
        };
        events.iter().filter_map(balance).collect()
    };
    for (gift_id, outcome, told) in [
        (
            "g-1",
            ChargeOutcome::Charged {
                balance: 3,
                replayed: false,
            },
            vec![3],
        ),
        (
            "g-old",
            ChargeOutcome::Charged {
                balance: 9,
                replayed: true,
            },
            vec![],
        ),
    ] {
        now += 1_000;
        room.handle_frame(1, &rose(now, gift_id), now);
        let out = tick_into(&mut room, &mut now, &mut store);
        room.charge_result(out.charges[0].request, outcome, now);
        let out = tick_into(&mut room, &mut now, &mut store);
        let acked = out.events[&1]
            .iter()
            .any(|e| matches!(e, Event::Ack { .. }));
        assert!(acked, "{gift_id}: {:?}", out.events[&1]);
        assert_eq!(balances(&out), told, "{gift_id}");
    }
}

/// A gift recovered after a crash whose charge is answered `unavailable` (the service
/// still down when the room woke) is asked for again by the room itself, after waits that
/// double from `GIFT_RECOVERED_RETRY_MS_MIN` to `GIFT_RECOVERED_RETRY_MS_MAX`, until the
/// ledger answers; then it is announced once. Its gifter's socket went with the crash, so
/// no one else would ask: before, one `unavailable` left a charge made before the crash
/// paid to the host and never shown. A room restarted again asks at once, and an end asks
/// at once (the host settles the room after the answers).
#[test]
fn a_recovered_gift_answered_unavailable_is_asked_for_again_until_the_ledger_answers() {
    let mut now = 0;
    let mut store = BTreeMap::new();
    let mut room = room_selling_roses(&mut now, &mut store);
    room.handle_frame(1, &rose(1, "g-1"), now);
    let out = tick_into(&mut room, &mut now, &mut store);
    assert_eq!(out.charges.len(), 1);

    // Killed before the answer; woken while the service is down.
    let mut room = Room::restore(store.clone(), now).unwrap().unwrap();
    room.set_gift_catalog(roses()).unwrap();
    join(&mut room, 3, "bob", Role::Viewer, now);
    let out = tick_into(&mut room, &mut now, &mut store);
    let mut asked_ms = vec![now];
    let mut request = out.charges[0].request;
    room.charge_result(request, unavailable(), now);
    while asked_ms.len() < 9 {
        let out = tick_into(&mut room, &mut now, &mut store);
        assert!(out.charges.len() <= 1, "{:?}", out.charges);
        if let Some(charge) = out.charges.first() {
            assert_eq!(charge.gift_id, "g-1");
            asked_ms.push(now);
            request = charge.request;
            room.charge_result(request, unavailable(), now);
        }
        assert!(now < 10 * 60_000, "asked {} times", asked_ms.len());
    }
    let waits: Vec<u64> = asked_ms.windows(2).map(|w| w[1] - w[0]).collect();
    let expected = [1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 60_000, 60_000];
    for (wait, expected) in waits.iter().zip(expected) {
        // Within a tick: the answer and the timer's check land on tick boundaries.
        assert!(wait.abs_diff(expected) <= TICK_MS, "{waits:?}");
    }
    assert!(
        store.keys().any(|k| k.starts_with("pending/")),
        "still pending, stored"
    );
    let unknown = store.keys().filter(|k| k.starts_with("unknown/")).count();
    assert_eq!(unknown, 0, "not left to a retry no one sends");

    // Restarted again: asked at once; an end asks at once too.
    for restart_or_end in ["restart", "end"] {
        let mut again = Room::restore(store.clone(), now).unwrap().unwrap();
        if restart_or_end == "end" {
            let out = tick_into(&mut again, &mut now, &mut store);
            again.charge_result(out.charges[0].request, unavailable(), now);
            again.admin(AdminCommand::End, now).unwrap();
        }
        let out = drain(&mut again);
        assert_eq!(out.charges.len(), 1, "{restart_or_end}: asked at once");
        if restart_or_end == "end" {
            request = out.charges[0].request;
            room = again;
        }
    }

    let before = room.last_seq();
    room.charge_result(request, replayed(), now);
    tick_into(&mut room, &mut now, &mut store);
    assert_eq!(room.last_seq() - before, 1, "announced once");
    assert_eq!(room.gift_totals().collect::<Vec<_>>(), [("ana", 1)]);
    assert_eq!(room.gifts_pending(), 0);
    assert!(!store.keys().any(|k| k.starts_with("pending/")));
    for _ in 0..(GIFT_RECOVERED_RETRY_MS_MAX / TICK_MS + 1) {
        let out = tick_into(&mut room, &mut now, &mut store);
        assert!(out.charges.is_empty(), "answered: never asked again");
    }
}

/// A gift announced in a pump that is not a flush (a charge answered just before a socket
/// frame: the host writes each pump's output at once) stores the meta that counts its
/// number with its action: a crash right after loses neither. Before, the meta waited for
/// the next flush whenever the leaderboard's top did not change (the part's write carried
/// it), and a restore dropped the action numbered past the stored last, its charge made
/// and its pending record gone.
#[test]
fn a_gift_announced_outside_a_flush_is_stored_with_the_meta_that_counts_it() {
    let mut now = 0;
    let mut store = BTreeMap::new();
    let mut room = room_selling_roses(&mut now, &mut store);
    for i in 0..LEADERBOARD_ENTRIES_MAX {
        let gifter = Gifter {
            name: format!("Big {i}"),
            total: 1_000,
            recent_gift_ids: VecDeque::new(),
        };
        room.gifts.insert_gifter(format!("big-{i}"), gifter);
    }
    // The board is published once; ana's next gift leaves it as it is.
    let charged = ChargeOutcome::Charged {
        balance: 5,
        replayed: false,
    };
    let (announced, _) = rose_answered(&mut room, &mut now, &mut store, 1, "g-1", charged);
    assert_eq!(announced, 1);
    assert!(room.part("leaderboard").is_some());
    room.handle_frame(1, &rose(1, "g-small"), now);
    let out = tick_into(&mut room, &mut now, &mut store);
    let charged = ChargeOutcome::Charged {
        balance: 5,
        replayed: false,
    };
    room.charge_result(out.charges[0].request, charged, now);
    let seq = room.last_seq();
    // The pump's writes only, then the crash.
    apply(&drain(&mut room).stores, &mut store);
    let mut restored = Room::restore(store.clone(), now).unwrap().unwrap();
    assert_eq!(restored.last_seq(), seq, "the gift's number is counted");
    let (kept, _) = restored.actions_since(0, now);
    let gifts = kept
        .iter()
        .filter(|a| a.seq == seq && matches!(a.body, ActionBody::Gift { .. }));
    assert_eq!(gifts.count(), 1, "the gift is kept");
    assert_eq!(restored.gifts_pending(), 0);
}

/// A live gift whose charge the host gave up unanswered (`charge_unanswered`) and that is
/// then answered `unavailable` is asked for again by the room, and its sender, still
/// connected, is told `unavailable` once (not at every ask; before, never: the SDK timed
/// out while the gift could still be announced). A recovered gift is asked for at most
/// `GIFT_RECOVERED_RETRIES_MAX` times, then left to its gifter's retry.
#[test]
fn a_gift_given_up_unanswered_tells_its_sender_once_and_is_asked_a_bounded_number_of_times() {
    let mut now = 0;
    let mut store = BTreeMap::new();
    let mut room = room_selling_roses(&mut now, &mut store);
    let request = rose_asked(&mut room, &mut now, &mut store, "g-1");
    room.charge_unanswered(request);
    let mut asks = 1;
    let mut told = 0;
    let mut iterations = 0;
    let mut asked = Some(request);
    loop {
        if let Some(request) = asked.take() {
            room.charge_result(request, unavailable(), now);
        }
        let next = room.poll_timeout().unwrap_or(now).max(now);
        iterations += 1;
        assert!(
            iterations < 1_000_000,
            "stuck at {now}: next {next}, asks {asks}"
        );
        now = next;
        // The sender stays connected (heard from, not stale) through the hours.
        room.handle_frame(1, &ClientFrame::Ping { client_time_ms: 0 }.encode(), now);
        room.handle_timeout(now);
        let out = drain(&mut room);
        if let Some(events) = out.events.get(&1) {
            told += error_codes(events)
                .iter()
                .filter(|c| **c == ErrorCode::Unavailable)
                .count();
        }
        match out.charges.first() {
            Some(charge) => {
                asks += 1;
                asked = Some(charge.request);
            }
            None if room.gifts_pending() == 0 => break,
            None => {}
        }
        assert!(asks <= GIFT_RECOVERED_RETRIES_MAX + 1, "asked without end");
    }
    assert_eq!(
        asks,
        GIFT_RECOVERED_RETRIES_MAX + 1,
        "the first ask and the retries"
    );
    // (Its socket's lifetime ends long before the room gives the gift up.)
    assert_eq!(
        told, 1,
        "told once when the room took the asking over, not at each ask"
    );
    assert_eq!(room.gifts_pending(), 0, "given up to the gifter's retry");
}

/// A gift its gifter is still there to retry (not recovered) answered `unavailable` is
/// told to them and left to their retry, as before: the room does not charge later a gift
/// its gifter was told failed.
#[test]
fn a_live_gift_answered_unavailable_is_left_to_its_gifters_retry() {
    let mut now = 0;
    let mut store = BTreeMap::new();
    let mut room = room_selling_roses(&mut now, &mut store);
    let request = rose_asked(&mut room, &mut now, &mut store, "g-1");
    room.charge_result(request, unavailable(), now);
    let out = tick_into(&mut room, &mut now, &mut store);
    assert_eq!(error_codes(&out.events[&1]), [ErrorCode::Unavailable]);
    assert_eq!(room.gifts_pending(), 0);
    for _ in 0..(2 * GIFT_RECOVERED_RETRY_MS_MIN / TICK_MS) {
        assert!(tick_into(&mut room, &mut now, &mut store)
            .charges
            .is_empty());
    }
}

/// Sends a rose from `connection` under `gift_id` and answers its charge with `outcome`:
/// whether it was announced (took a number), and how many unknown outcomes are stored.
fn rose_answered(
    room: &mut Room,
    now: &mut u64,
    store: &mut BTreeMap<String, Vec<u8>>,
    connection: ConnectionId,
    gift_id: &str,
    outcome: ChargeOutcome,
) -> (u64, usize) {
    room.handle_frame(connection, &rose(*now, gift_id), *now);
    let out = tick_into(room, now, store);
    let before = room.last_seq();
    let Some(charge) = out.charges.first() else {
        panic!("{gift_id} not charged: {:?}", out.events.get(&connection));
    };
    room.charge_result(charge.request, outcome, *now);
    tick_into(room, now, store);
    *now += 1_000; // past the gift rate
    let announced = room.last_seq() - before; // the gift took a number (the ring's)
    let unknown = store.keys().filter(|k| k.starts_with("unknown/")).count();
    (announced, unknown)
}

fn replayed() -> ChargeOutcome {
    ChargeOutcome::Charged {
        balance: 0,
        replayed: true,
    }
}

/// One past `GIFT_OUTCOMES_UNKNOWN_MAX` (gifters each within their share): the oldest gift
/// id answered `unavailable` is forgotten (its record deleted); the newest is still
/// announced on its retry. (The oldest is too: the room remembers every gift ana had
/// announced, and this is not one, see `a_gift_replayed_at_its_first_answer_...`.)
#[test]
fn the_oldest_unknown_outcome_is_forgotten_one_past_the_bound() {
    let mut now = 0;
    let mut store = BTreeMap::new();
    let mut room = room_selling_roses(&mut now, &mut store);
    let share = GIFT_OUTCOMES_UNKNOWN_PER_USER_MAX;
    let gifters = GIFT_OUTCOMES_UNKNOWN_MAX / share + 1;
    for g in 1..gifters {
        join(
            &mut room,
            10 + g as u64,
            &format!("u{g}"),
            Role::Viewer,
            now,
        );
    }
    // Connection 1 is ana's; u1.. follow. Round-robin, so the first gift is the oldest.
    let connection = |i: usize| match i % gifters {
        0 => 1,
        g => 10 + g as u64,
    };
    for i in 0..=GIFT_OUTCOMES_UNKNOWN_MAX {
        let gift = format!("g-{i}");
        let args = (connection(i), gift.as_str(), unavailable());
        let (_, unknown) = rose_answered(&mut room, &mut now, &mut store, args.0, args.1, args.2);
        assert_eq!(
            unknown,
            (i + 1).min(GIFT_OUTCOMES_UNKNOWN_MAX),
            "stored, at most the bound"
        );
    }
    let i = GIFT_OUTCOMES_UNKNOWN_MAX;
    let newest = format!("g-{i}");
    let gifter = |i: usize| match i % gifters {
        0 => "ana".to_owned(),
        g => format!("u{g}"),
    };
    assert!(
        !room.gifts.outcome_is_unknown("ana", "g-0"),
        "the oldest went"
    );
    assert!(room.gifts.outcome_is_unknown(&gifter(1), "g-1"));
    assert!(room.gifts.outcome_is_unknown(&gifter(i), &newest));
    let (announced, _) = rose_answered(&mut room, &mut now, &mut store, 1, "g-0", replayed());
    assert_eq!(announced, 1, "forgotten, and surely never announced");
    let (announced, unknown) = rose_answered(
        &mut room,
        &mut now,
        &mut store,
        connection(i),
        &newest,
        replayed(),
    );
    assert_eq!(announced, 1, "remembered: announced once");
    assert_eq!(unknown, GIFT_OUTCOMES_UNKNOWN_MAX - 1);
}

/// A gift whose first answer is `replayed` (the service's batch commit failed after it
/// landed, and its retry alone found the gift made: the room never saw an answer lost)
/// is announced when the room surely never announced it: it remembers every gift the
/// gifter had announced (`GIFT_IDS_REMEMBERED_PER_USER_MAX`) and this is not one. A
/// resend of an announced gift is not announced again; past the window the room cannot
/// tell the two apart, and announces neither.
#[test]
fn a_gift_replayed_at_its_first_answer_is_announced_when_surely_never_shown() {
    let mut now = 0;
    let mut store = BTreeMap::new();
    let mut room = room_selling_roses(&mut now, &mut store);
    let (announced, _) = rose_answered(&mut room, &mut now, &mut store, 1, "g-1", replayed());
    assert_eq!(announced, 1, "paid for, shown");
    // A resend of it: acknowledged as that gift, neither charged nor shown again.
    let before = room.last_seq();
    room.handle_frame(1, &rose(now, "g-1"), now);
    let out = tick_into(&mut room, &mut now, &mut store);
    assert!(out.charges.is_empty(), "{:?}", out.charges);
    assert!(out.events[&1]
        .iter()
        .any(|e| matches!(e, Event::Ack { seq: None, .. })));
    assert_eq!(room.last_seq(), before, "a resend: not shown again");
    now += 1_000;
    for i in 0..GIFT_IDS_REMEMBERED_PER_USER_MAX {
        let gift = format!("more-{i}");
        let fresh = ChargeOutcome::Charged {
            balance: 0,
            replayed: false,
        };
        rose_answered(&mut room, &mut now, &mut store, 1, &gift, fresh);
    }
    let (announced, _) = rose_answered(&mut room, &mut now, &mut store, 1, "g-1", replayed());
    assert_eq!(
        announced, 0,
        "forgotten as announced, maybe a resend: not shown"
    );
}

/// One gifter's gifts answered `unavailable` (an outage) past their share forget their
/// own oldest, never another gifter's: bob's charged retry is still announced after ana
/// sent as many as the whole room keeps.
#[test]
fn one_gifter_cannot_push_out_anothers_unknown_outcomes() {
    let mut now = 0;
    let mut store = BTreeMap::new();
    let mut room = room_selling_roses(&mut now, &mut store);
    join(&mut room, 2, "bob", Role::Viewer, now);
    rose_answered(&mut room, &mut now, &mut store, 2, "bob-1", unavailable());
    for i in 0..GIFT_OUTCOMES_UNKNOWN_MAX {
        let gift = format!("ana-{i}");
        let (_, unknown) = rose_answered(&mut room, &mut now, &mut store, 1, &gift, unavailable());
        assert!(
            unknown <= 1 + GIFT_OUTCOMES_UNKNOWN_PER_USER_MAX,
            "{unknown}"
        );
    }
    assert!(
        room.gifts.outcome_is_unknown("bob", "bob-1"),
        "bob's is kept through ana's outage"
    );
    // Bob's socket went stale meanwhile; he retries from a new one.
    join(&mut room, 3, "bob", Role::Viewer, now);
    let (announced, _) = rose_answered(&mut room, &mut now, &mut store, 3, "bob-1", replayed());
    assert_eq!(
        announced, 1,
        "bob's gift, charged before the answer was lost, is announced"
    );
    assert!(
        !room.gifts.outcome_is_unknown("ana", "ana-0"),
        "ana's own oldest went first"
    );
    let newest = format!("ana-{}", GIFT_OUTCOMES_UNKNOWN_MAX - 1);
    let (announced, _) = rose_answered(&mut room, &mut now, &mut store, 1, &newest, replayed());
    assert_eq!(announced, 1, "ana's newest is remembered");
}

/// The same gift sent again while its charge is in flight (the SDK resends on a new
/// socket; an app retries; another tab) waits for that charge: no second charge races it.
/// Both senders get its answer; a charge answered `unavailable` is then retried, and its
/// `replayed` answer is announced once.
#[test]
fn a_gift_sent_again_while_its_charge_is_in_flight_waits_for_that_charge() {
    let mut now = 0;
    let mut store = BTreeMap::new();
    let mut room = room_selling_roses(&mut now, &mut store);
    join(&mut room, 2, "ana", Role::Viewer, now);
    tick_into(&mut room, &mut now, &mut store);
    let gift = |client_id| rose(client_id, "g-1");
    room.handle_frame(1, &gift(7), now);
    let first = tick_into(&mut room, &mut now, &mut store);
    assert_eq!(first.charges.len(), 1);
    room.handle_frame(2, &gift(8), now);
    let resent = tick_into(&mut room, &mut now, &mut store);
    assert!(
        resent.charges.is_empty(),
        "no second charge: {:?}",
        resent.charges
    );

    room.charge_result(first.charges[0].request, unavailable(), now);
    let out = tick_into(&mut room, &mut now, &mut store);
    let refused = |events: &Vec<Event>, id: u64| {
        events.iter().any(|e| {
            matches!(e, Event::Error { client_id: Some(c), code: ErrorCode::Unavailable, .. } if *c == id)
        })
    };
    assert!(
        refused(&out.events[&1], 7) && refused(&out.events[&2], 8),
        "{:?}",
        out.events
    );

    // The retry, once the first charge is answered: a charge, answered `replayed`.
    now += 1_000;
    room.handle_frame(2, &gift(9), now);
    let retry = tick_into(&mut room, &mut now, &mut store);
    assert_eq!(retry.charges.len(), 1);
    let before = room.last_seq();
    let replayed = ChargeOutcome::Charged {
        balance: 0,
        replayed: true,
    };
    room.charge_result(retry.charges[0].request, replayed, now);
    tick_into(&mut room, &mut now, &mut store);
    assert_eq!(room.last_seq() - before, 1, "announced once");
}
