//! Pinned products (`products.rs`): click counts for the host, unsafe links refused, and
//! the limit on products whose clicks a room counts.

use super::*;

#[test]
fn a_pinned_product_counts_clicks_for_the_host_and_refuses_unsafe_links() {
    let mut now = 0;
    let mut store = BTreeMap::new();
    let mut room = Room::create(info(), 4, now);
    join(&mut room, 1, "host", Role::Host, now);
    join(&mut room, 2, "ana", Role::Viewer, now);
    pin(&mut room, "red-1", now);
    let out = tick_into(&mut room, &mut now, &mut store);
    let part = part_value(&out.events[&2], "product").unwrap();
    assert_eq!(part["pinned"]["link"], "shop://item/red");
    let click = |id: &str, client_id| {
        frame_of(ClientFrame::ProductClick {
            client_id,
            product_id: id.into(),
        })
    };
    join(&mut room, 3, "bo", Role::Viewer, now);
    room.handle_frame(2, &click("red-1", 1), now);
    room.handle_frame(2, &click("red-1", 2), now);
    room.handle_frame(3, &click("red-1", 1), now);
    room.handle_frame(2, &click("blue-9", 3), now);
    let out = tick_into(&mut room, &mut now, &mut store);
    assert_eq!(error_codes(&out.events[&2]), [ErrorCode::NotFound]);
    let clicks = notices(&out.events[&1], "product_clicks");
    assert_eq!(
        clicks.last().unwrap()["clicks"]["red-1"],
        2,
        "ana and bo clicked; ana's second click is not counted"
    );
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

/// A room stopped right after a card was pinned (the card stored, its first click count
/// not yet: that is stored at the next tick) counts the card's clicks once restored.
/// Before, every click on it was refused `not_found` until it was pinned again.
#[test]
fn a_card_pinned_just_before_a_restart_counts_its_clicks() {
    let mut now = 0;
    let mut store = BTreeMap::new();
    let mut room = Room::create(info(), 3, now);
    tick_into(&mut room, &mut now, &mut store);
    pin(&mut room, "red-1", now);
    // What the pin wrote before the next tick; then the object stops.
    apply(&drain(&mut room).stores, &mut store);
    assert!(
        !store.keys().any(|key| key.starts_with("clicks/")),
        "the case under test: the count is not stored yet"
    );
    let mut room = Room::restore(store.clone(), now).unwrap().unwrap();
    join(&mut room, 2, "ana", Role::Viewer, now);
    room.handle_frame(
        2,
        &frame_of(ClientFrame::ProductClick {
            client_id: 1,
            product_id: "red-1".into(),
        }),
        now,
    );
    let out = tick_into(&mut room, &mut now, &mut store);
    assert!(
        error_codes(&out.events[&2]).is_empty(),
        "{:?}",
        out.events[&2]
    );
    let room = Room::restore(store, now).unwrap().unwrap();
    assert_eq!(room.products.clicks["red-1"], 1);
}

fn click_frame(product_id: &str, client_id: u64) -> Vec<u8> {
    frame_of(ClientFrame::ProductClick {
        client_id,
        product_id: product_id.into(),
    })
}

/// One viewer cannot raise the host's click figures: every socket one user may hold
/// clicking the pinned card and an unpinned one, 200 times each, counts once per
/// product and stores one record each; the repeats are acknowledged, never refused
/// (they take no reaction); another viewer's first click still counts at once. Across a restart the clickers are remembered, so ana's next click is still a
/// repeat.
#[test]
fn one_viewer_clicking_from_many_sockets_counts_once_per_product() {
    let mut now = 0;
    let mut store = BTreeMap::new();
    let mut room = Room::create(info(), 300, now);
    join(&mut room, 1, "host", Role::Host, now);
    for product_id in ["old-1", "red-1"] {
        pin(&mut room, product_id, now);
    }
    tick_into(&mut room, &mut now, &mut store);
    let sockets: Vec<u64> = (10..10 + USER_SOCKETS_PER_ROOM_MAX as u64).collect();
    for &socket in &sockets {
        join(&mut room, socket, "ana", Role::Viewer, now);
    }
    join(&mut room, 2, "bo", Role::Viewer, now);
    for round in 0..200u64 {
        for &socket in &sockets {
            for (i, product_id) in ["red-1", "old-1"].into_iter().enumerate() {
                let client_id = socket * 1_000 + round * 2 + i as u64 + 1;
                room.handle_frame(socket, &click_frame(product_id, client_id), now);
            }
        }
        room.handle_frame(2, &click_frame("red-1", round + 1), now);
        let out = tick_into(&mut room, &mut now, &mut store);
        for &socket in &sockets {
            assert_eq!(
                acks(&out.events[&socket]),
                2,
                "a repeat click is acknowledged, never refused: {:?}",
                out.events[&socket]
            );
        }
        now += 200;
    }
    assert_eq!(room.products.clicks["red-1"], 2);
    assert_eq!(room.products.clicks["old-1"], 1);
    assert_eq!(
        store.keys().filter(|k| k.starts_with("clicker/")).count(),
        3,
        "{:?}",
        store
            .keys()
            .filter(|k| k.starts_with("clicker/"))
            .collect::<Vec<_>>()
    );
    let mut room = Room::restore(store.clone(), now).unwrap().unwrap();
    assert_eq!(room.products.clicks["red-1"], 2);
    join(&mut room, 10, "ana", Role::Viewer, now);
    join(&mut room, 3, "cy", Role::Viewer, now);
    room.handle_frame(10, &click_frame("red-1", 99), now);
    room.handle_frame(3, &click_frame("red-1", 1), now);
    tick_into(&mut room, &mut now, &mut store);
    assert_eq!(
        room.products.clicks["red-1"], 3,
        "cy counts; ana was counted before the restart"
    );
}

/// A count stored by a build that counted every click is kept and grows by one per new
/// clicker; a count stored behind its clickers (the object stopped between the clicker's
/// record and the count's) is raised to them.
#[test]
fn a_stored_count_is_never_below_its_clickers_nor_lowered_by_them() {
    let mut now = 0;
    let mut store = BTreeMap::new();
    let mut room = Room::create(info(), 3, now);
    pin(&mut room, "red-1", now);
    tick_into(&mut room, &mut now, &mut store);
    let counted = |store: &BTreeMap<String, Vec<u8>>| {
        Room::restore(store.clone(), 0)
            .unwrap()
            .unwrap()
            .products
            .clicks["red-1"]
    };
    let mut legacy = store.clone();
    legacy.insert(
        "clicks/red-1".into(),
        postcard::to_allocvec(&50u64).unwrap(),
    );
    let mut room = Room::restore(legacy.clone(), now).unwrap().unwrap();
    join(&mut room, 2, "ana", Role::Viewer, now);
    room.handle_frame(2, &click_frame("red-1", 1), now);
    tick_into(&mut room, &mut now, &mut legacy);
    assert_eq!(counted(&legacy), 51);
    let mut behind = store.clone();
    for user in ["ana", "bo", "cy"] {
        behind.insert(format!("clicker/red-1/{user}"), Vec::new());
    }
    assert_eq!(counted(&behind), 3);
}

/// Repeat clicks take no rate, so their acks are not among the ids a tick stores: three
/// users' sockets repeating clicks in one tick (600 frames, more than
/// `LIKE_FRAMES_STORED_PER_TICK_MAX`) leave room for another user's like, whose retry
/// after a restart is acknowledged, not counted again.
#[test]
fn repeat_clicks_do_not_push_other_users_stored_ids_out() {
    let mut now = 0;
    let mut store = BTreeMap::new();
    let mut room = Room::create(info(), 40, now);
    pin(&mut room, "red-1", now);
    let clickers = ["ana", "cy", "di"];
    let mut socket = 100;
    let mut sockets = Vec::new();
    for user in clickers {
        for _ in 0..USER_SOCKETS_PER_ROOM_MAX {
            join(&mut room, socket, user, Role::Viewer, now);
            sockets.push(socket);
            socket += 1;
        }
    }
    join(&mut room, 2, "bo", Role::Viewer, now);
    for &socket in &sockets {
        room.handle_frame(socket, &click_frame("red-1", socket * 1_000), now);
    }
    tick_into(&mut room, &mut now, &mut store);
    now += 5_000;
    let mut repeats = 0;
    for &socket in &sockets {
        for i in 1..FRAMES_BURST as u64 {
            room.handle_frame(socket, &click_frame("red-1", socket * 1_000 + i), now);
            repeats += 1;
        }
    }
    assert!(
        repeats > LIKE_FRAMES_STORED_PER_TICK_MAX,
        "the case under test"
    );
    room.handle_frame(2, &like_frame(7, 1), now);
    tick_into(&mut room, &mut now, &mut store);
    assert_eq!(room.likes_total(), 1);
    let mut restored = Room::restore(store, now).unwrap().unwrap();
    join(&mut restored, 3, "bo", Role::Viewer, now);
    restored.handle_frame(3, &like_frame(7, 1), now);
    let out = tick(&mut restored, &mut now);
    assert_eq!(acks(&out.events[&3]), 1, "{:?}", out.events[&3]);
    assert_eq!(restored.likes_total(), 1, "bo's retried like counts once");
    assert_eq!(restored.products.clicks["red-1"], 3);
}

fn acks(events: &[Event]) -> usize {
    events
        .iter()
        .filter(|e| matches!(e, Event::Ack { .. }))
        .count()
}
