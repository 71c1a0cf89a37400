//! What the room sends: removals, clock samples, the bounded event queue (`state.rs`,
//! `clock.rs`).

use super::*;

#[test]
fn removed_comments_are_told_as_their_own_event() {
    let (mut c, socket) = open_client(0);
    let removal = Event::Action(Action {
        seq: 11,
        ts_ms: 1,
        user: "mo".into(),
        name: "MO".into(),
        body: ActionBody::Removed { seq: 4 },
    });
    c.handle_socket_message(socket, &batch(vec![removal], 0), 0);
    let mut json = String::new();
    c.drain_events_json(&mut json);
    assert!(
        json.contains(r#""type":"removed","seq":11,"ts_ms":1,"removed":4,"user":"mo""#),
        "{json}"
    );
}

#[test]
fn clock_samples_come_from_pongs_in_batches() {
    let (mut c, socket) = open_client(1_000);
    // Welcome asked for a ping at once.
    c.handle_timeout(1_000);
    let ping = sent_frames(&transmits(&mut c));
    let Some(ClientFrame::Ping { client_time_ms }) = ping.last().cloned() else {
        panic!("no ping: {ping:?}");
    };
    // Server clock = client + 5000; 20 ms each way; held 30 ms for the tick.
    let pong = Event::Pong {
        client_time_ms,
        server_time_ms: client_time_ms + 5_020,
    };
    c.handle_socket_message(socket, &batch(vec![pong], client_time_ms + 5_050), 1_070);
    assert_eq!(c.clock().offset_ms(), Some(5_000));
    assert_eq!(c.server_now(2_000), 7_000);
}

/// The application's queue holds `CLIENT_EVENTS_QUEUED_MAX` events: an application that
/// stops draining gets every event up to the limit, and past it the newer ones are left
/// out and counted (`events_dropped`), so the core's memory stays bounded.
#[test]
fn events_past_client_events_queued_max_are_dropped_and_counted() {
    let (mut c, socket) = open_client(0);
    let mut seq = 10;
    let mut send = |c: &mut Client, count: usize| {
        let actions = (0..count)
            .map(|_| {
                seq += 1;
                comment_action(seq, "hi")
            })
            .collect();
        c.handle_socket_message(socket, &batch(actions, 0), 0);
    };
    while c.events.len() < CLIENT_EVENTS_QUEUED_MAX {
        let room = CLIENT_EVENTS_QUEUED_MAX - c.events.len();
        send(&mut c, room.min(1_000));
    }
    assert_eq!(c.events.len(), CLIENT_EVENTS_QUEUED_MAX);
    assert_eq!(c.events_dropped(), 0);
    send(&mut c, 1);
    assert_eq!(c.events.len(), CLIENT_EVENTS_QUEUED_MAX);
    assert_eq!(c.events_dropped(), 1);
    // An action's answer past the bound (a server flooding events before it) still
    // settles the action: a dropped `Done` left its promise waiting for ever.
    let id = c.comment("mine", 0).unwrap();
    let ack = Event::Ack {
        client_id: id,
        seq: Some(1_000_000),
    };
    c.handle_socket_message(socket, &batch(vec![ack], 0), 0);
    assert!(
        c.events
            .iter()
            .any(|e| matches!(e, ClientEvent::Done { id: i, .. } if *i == id)),
        "the action's answer is queued"
    );
    // Drained, the queue takes events again.
    events(&mut c);
    send(&mut c, 1);
    assert_eq!(events(&mut c).len(), 1);
}
