//! What a host's burst of the largest parts costs a big room's shard, whose viewers each
//! have an answer of their own that tick (a clock sample's `Pong`): the room's batch to
//! the shard holds the burst once, and the shard must not copy it per viewer. Its own
//! test binary, so the process's peak resident memory (`VmHWM`, Linux) is this test's.

use ovation_proto::limits::{FRAMES_BURST, PART_VALUE_BYTES_MAX};
use ovation_proto::{ClientFrame, Event, Hello, Role, ShardDown, Snapshot, PROTOCOL_VERSION};
use ovation_room::{Identity, Shard, ShardOutput};

mod resident;
use resident::peak_resident_bytes;

const VIEWERS: u64 = 2_000;

fn down(seq: u64, snapshot: Option<Snapshot>, broadcast: Vec<Event>) -> Vec<u8> {
    ShardDown {
        snapshot,
        broadcast,
        ..ShardDown::new(seq, 0, 1)
    }
    .encode()
}

/// Drains the outputs; returns the frame bytes (each once) and the sockets reached.
fn drain(shard: &mut Shard) -> (usize, usize) {
    let (mut bytes, mut sockets) = (0, 0);
    while let Some(output) = shard.poll_output() {
        if let ShardOutput::Send { connections, frame } = output {
            bytes += frame.len();
            sockets += connections.len();
        }
    }
    (bytes, sockets)
}

#[test]
fn a_shard_sends_a_burst_of_the_largest_parts_without_a_copy_per_viewer() {
    let now = 0;
    let mut shard = Shard::new(0, 1, now);
    let hello = ClientFrame::Hello(Hello {
        protocol_version: PROTOCOL_VERSION,
        resume: None,
    })
    .encode();
    for viewer in 0..VIEWERS {
        let identity = Identity {
            user: format!("v{viewer}"),
            name: format!("V{viewer}"),
            role: Role::Viewer,
        };
        shard.connect(viewer + 1, identity, 3_600_000, now).unwrap();
        shard.handle_frame(viewer + 1, &hello, now);
    }
    let state = Snapshot {
        epoch: 1,
        total_version: 0,
        last_seq: 0,
        likes_total: 0,
        online: 0,
        ended: false,
        parts: Vec::new(),
        ring: Vec::new(),
        banned: Vec::new(),
    };
    shard
        .handle_down(&down(1, Some(state), Vec::new()), now)
        .unwrap();
    drain(&mut shard);
    assert_eq!(shard.online(), VIEWERS as u32);

    let before = peak_resident_bytes();
    for viewer in 0..VIEWERS {
        let ping = ClientFrame::Ping {
            client_time_ms: viewer,
        };
        shard.handle_frame(viewer + 1, &ping.encode(), now);
    }
    let value = format!("\"{}\"", "x".repeat(PART_VALUE_BYTES_MAX - 2));
    let burst: Vec<Event> = (0..u64::from(FRAMES_BURST))
        .map(|n| Event::Part {
            name: format!("board{n}"),
            version: n + 1,
            value: value.clone(),
        })
        .collect();
    shard.handle_down(&down(2, None, burst), now).unwrap();
    let (sent_bytes, reached) = drain(&mut shard);
    let grown = peak_resident_bytes().saturating_sub(before);
    eprintln!("peak resident memory grew {grown} B on the shard");

    let burst_bytes = u64::from(FRAMES_BURST) * PART_VALUE_BYTES_MAX as u64;
    assert!(
        sent_bytes as u64 >= burst_bytes,
        "{sent_bytes} bytes of frames"
    );
    assert!(
        reached as u64 >= 2 * VIEWERS,
        "a Pong and the burst to each: {reached}"
    );
    let bound = 64 * 1024 * 1024;
    assert!(
        grown < bound,
        "peak resident memory grew {grown} bytes for a burst of {burst_bytes} bytes to \
         {VIEWERS} viewers (bound {bound})"
    );
}
