//! What one staff socket's frames cost the room object's memory: a host setting app parts
//! of the largest size as fast as its frame burst allows, in a room of thousands of
//! viewers. Every room object of an isolate shares its 128 MB, so a copy of each part
//! per viewer (as the room queued broadcasts before it held them once a tick) let one
//! host's 40 frames reset every room in the isolate.
//!
//! Its own test binary, so the process's peak resident memory (`VmHWM`, Linux) is this
//! test's alone.

use ovation_proto::limits::{FRAMES_BURST, PART_VALUE_BYTES_MAX};
use ovation_proto::{ClientFrame, Hello, Role, PROTOCOL_VERSION};
use ovation_room::{Identity, Output, Room, RoomInfo};

mod resident;
use resident::peak_resident_bytes;

const VIEWERS: u64 = 2_000;
const LIFETIME_MS: u64 = 3_600_000;

fn identity(user: &str, role: Role) -> Identity {
    Identity {
        user: user.into(),
        name: user.into(),
        role,
    }
}

fn hello() -> Vec<u8> {
    ClientFrame::Hello(Hello {
        protocol_version: PROTOCOL_VERSION,
        resume: None,
    })
    .encode()
}

/// Drains the outputs; returns the bytes of frames to send (each counted once, however
/// many sockets it goes to) and how many sockets got a frame.
fn drain(room: &mut Room) -> (usize, usize) {
    let (mut bytes, mut sockets) = (0, 0);
    while let Some(output) = room.poll_output() {
        if let Output::Send { connections, frame } = output {
            bytes += frame.len();
            sockets += connections.len();
        }
    }
    (bytes, sockets)
}

#[test]
fn a_hosts_burst_of_the_largest_parts_costs_the_room_about_their_size_not_that_per_viewer() {
    let info = RoomInfo {
        room_id: "weur-memory".into(),
        host_user: "host".into(),
        title: "memory".into(),
        expected_audience: 2_000,
    };
    let mut now = 0;
    let mut room = Room::create(info, 1, now);
    room.connect(1, identity("host", Role::Host), LIFETIME_MS, now)
        .unwrap();
    room.handle_frame(1, &hello(), now);
    for viewer in 0..VIEWERS {
        let id = 100 + viewer;
        room.connect(
            id,
            identity(&format!("v{viewer}"), Role::Viewer),
            LIFETIME_MS,
            now,
        )
        .unwrap();
        room.handle_frame(id, &hello(), now);
    }
    now += 1_000;
    room.handle_timeout(now);
    drain(&mut room);

    let before = peak_resident_bytes();
    // Every viewer has an answer of its own in the same tick (a clock sample's `Pong`):
    // its own events must not take a copy of the burst with them.
    for viewer in 0..VIEWERS {
        let ping = ClientFrame::Ping {
            client_time_ms: viewer,
        };
        room.handle_frame(100 + viewer, &ping.encode(), now);
    }
    // The host's whole frame burst, each frame a part of the largest size (distinct
    // names: a room holds 64), all within one tick.
    let value = format!("\"{}\"", "x".repeat(PART_VALUE_BYTES_MAX - 2));
    let parts = u64::from(FRAMES_BURST);
    for n in 0..parts {
        let frame = ClientFrame::SetPart {
            client_id: n + 1,
            name: format!("board{n}"),
            value: value.clone(),
        };
        room.handle_frame(1, &frame.encode(), now);
    }
    let mut sent_bytes = 0;
    let mut reached = 0;
    for _ in 0..20 {
        now += 50;
        room.handle_timeout(now);
        let (bytes, sockets) = drain(&mut room);
        sent_bytes += bytes;
        reached = reached.max(sockets);
    }
    let grown = peak_resident_bytes().saturating_sub(before);
    eprintln!("peak resident memory grew {grown} B for {parts} parts to {VIEWERS} viewers");

    let burst_bytes = parts * PART_VALUE_BYTES_MAX as u64;
    assert!(
        sent_bytes as u64 >= burst_bytes,
        "every part went out: {sent_bytes} bytes of frames"
    );
    assert!(
        reached as u64 > VIEWERS,
        "to every viewer: {reached} sockets"
    );
    // A copy per viewer would be burst_bytes × 2,000 (655 MB); the room's own copy, the
    // events' encoding, the frames and the stored records are a few times burst_bytes.
    let bound = 64 * 1024 * 1024;
    assert!(
        grown < bound,
        "peak resident memory grew {grown} bytes for a burst of {burst_bytes} bytes to \
         {VIEWERS} viewers (bound {bound})"
    );
}
