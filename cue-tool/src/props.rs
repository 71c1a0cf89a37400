//! Property tests: no input makes a parser, injector or lister panic, and what the
//! injectors write the listers read back.

use crate::mp4::test_support as mp4_build;
use crate::ts::packet::{PACKET_BYTES, SYNC_BYTE};
use crate::ts::pes::PTS_MODULUS;
use crate::ts::test_support::av_segment;
use crate::{list_segment, mp4, ts, CueTime, Playlist};
use ovation_cues::{Cue, InteractionKind};
use proptest::prelude::*;

fn cue(n: u32) -> Cue {
    Cue::new(&format!("cue-{n}"), InteractionKind::Quiz, "q1").unwrap()
}

/// Runs every entry point on `bytes`; only panics matter, results are dropped.
fn exercise(bytes: &[u8]) {
    let _ = ts::packet::packets(bytes);
    let _ = ts::segment_start(bytes);
    let _ = ts::list(bytes);
    let _ = ts::inject(bytes, &[(90_000, cue(1)), (0, cue(2))]);
    let _ = mp4::init_track(bytes);
    let _ = mp4::segment_start(bytes, 1);
    let _ = mp4::list(bytes);
    let _ = mp4::inject(bytes, &[mp4::cue_emsg(&cue(3), 12_800, 5)]);
    let _ = list_segment(bytes);
    let _ = Playlist::parse(bytes);
}

/// Up to `max` (position, byte) changes, positions taken modulo the length.
fn mutations(max: usize) -> impl Strategy<Value = Vec<(usize, u8)>> {
    proptest::collection::vec((any::<usize>(), any::<u8>()), 1..max)
}

fn mutate(bytes: &mut [u8], changes: &[(usize, u8)]) {
    if bytes.is_empty() {
        return;
    }
    let len = bytes.len();
    for &(at, value) in changes {
        bytes[at % len] = value;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        exercise(&bytes);
    }

    #[test]
    fn arbitrary_packets_never_panic(
        packets in proptest::collection::vec(proptest::collection::vec(any::<u8>(), PACKET_BYTES), 1..12),
        pat_first in any::<bool>(),
    ) {
        // Whole packets with the sync byte, so the parsers get past the framing; some
        // start as a PAT would.
        let mut bytes = Vec::new();
        for (i, mut packet) in packets.into_iter().enumerate() {
            packet[0] = SYNC_BYTE;
            if pat_first && i == 0 {
                packet[1] = 0x40;
                packet[2] = 0x00;
                packet[3] = 0x10;
                packet[4] = 0x00;
                packet[5] = 0x00;
            }
            bytes.extend_from_slice(&packet);
        }
        exercise(&bytes);
    }

    #[test]
    fn mutated_ts_segments_never_panic(
        changes in mutations(24),
        cut in any::<usize>(),
    ) {
        let base = ts::inject(&av_segment(126_000, 6), &[(130_000, cue(7))]).unwrap().segment;
        let mut bytes = base.clone();
        mutate(&mut bytes, &changes);
        exercise(&bytes);
        // Also cut at a packet boundary.
        let packets = base.len() / PACKET_BYTES;
        exercise(&bytes[..(cut % packets) * PACKET_BYTES]);
    }

    #[test]
    fn mutated_mp4_segments_never_panic(changes in mutations(16), cut in any::<usize>()) {
        let base = mp4::inject(
            &mp4_build::segment(25_600, 88_200),
            &[mp4::cue_emsg(&cue(8), 12_800, 30_000)],
        )
        .unwrap()
        .segment;
        let mut bytes = base.clone();
        mutate(&mut bytes, &changes);
        exercise(&bytes);
        exercise(&bytes[..cut % bytes.len()]);
        let mut init = mp4_build::init(1, 12_800);
        mutate(&mut init, &changes);
        exercise(&init);
    }

    #[test]
    fn ts_cues_come_back_at_their_pts(
        first in 0..PTS_MODULUS,
        offsets in proptest::collection::vec(0_u64..40 * 3600, 1..8),
    ) {
        let segment = av_segment(first, 10);
        let cues: Vec<(u64, Cue)> = offsets
            .iter()
            .enumerate()
            .map(|(i, offset)| ((first + offset) % PTS_MODULUS, cue(i as u32)))
            .collect();
        let done = ts::inject(&segment, &cues).unwrap();
        let listing = ts::list(&done.segment).unwrap();
        prop_assert_eq!(listing.cues.len(), cues.len());
        let mut found: Vec<(CueTime, Cue)> = listing
            .cues
            .into_iter()
            .map(|c| (c.time, c.cue.unwrap()))
            .collect();
        let mut expected: Vec<(CueTime, Cue)> =
            cues.into_iter().map(|(pts, c)| (CueTime::Pts(pts), c)).collect();
        let key = |item: &(CueTime, Cue)| item.1.id.as_str().to_owned();
        found.sort_by_key(key);
        expected.sort_by_key(key);
        prop_assert_eq!(found, expected);
        // Continuity counters of the metadata PID count up without a gap.
        let counters: Vec<u8> = ts::packet::packets(&done.segment)
            .unwrap()
            .iter()
            .filter(|p| p.pid == done.pid)
            .map(|p| p.continuity_counter)
            .collect();
        for (i, counter) in counters.iter().enumerate() {
            prop_assert_eq!(usize::from(*counter), i % 16);
        }
    }

    #[test]
    fn arbitrary_playlist_text_never_panics(text in "#EXTM3U\n(#EXT[-A-Z]{0,12}:?[0-9.,=\"A-Z]{0,12}\n|[a-z0-9]{1,6}\\.ts\n){0,12}") {
        if let Ok(playlist) = Playlist::parse(text.as_bytes()) {
            for at in [0.0, 1.0, playlist.duration_s / 2.0] {
                let _ = playlist.locate(at);
            }
        }
    }
}
