//! Pinned products (`products.rs`): click counts for the host, unsafe links refused, and
//! the limit on products whose clicks a room counts.

use super::*;

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
    room.admin(
        as_host(StaffCommand::PinProduct {
            product: product("red-1"),
        }),
        now,
    )
    .unwrap();
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
