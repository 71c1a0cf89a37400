use super::*;
use ovation_proto::limits::{REPLAY_WINDOW_MS_MAX, REPLAY_WINDOW_READ_BYTES_MAX};

const T0: u64 = 1_764_806_400_000;

fn comment(seq: u64, ts_ms: u64, user: &str, text: &str) -> Action {
    Action {
        seq,
        ts_ms,
        user: user.into(),
        name: user.into(),
        body: ActionBody::Comment { text: text.into() },
    }
}

fn removed(seq: u64, ts_ms: u64, of: u64) -> Action {
    Action {
        seq,
        ts_ms,
        user: "mod".into(),
        name: "mod".into(),
        body: ActionBody::Removed { seq: of },
    }
}

fn chunks_of(recorder: &mut Recorder) -> Vec<Chunk> {
    let mut chunks = Vec::new();
    while let Some(sealed) = recorder.poll_sealed() {
        let chunk = Chunk::decode(&sealed.bytes).unwrap();
        assert_eq!(chunk.index, sealed.index);
        chunks.push(chunk);
    }
    chunks
}

fn seqs(window: &ReplayWindow) -> Vec<u64> {
    window
        .events
        .iter()
        .filter_map(|e| match &e.body {
            ReplayEventBody::Action(a) => Some(a.seq),
            _ => None,
        })
        .collect()
}

#[test]
fn chunks_are_cut_by_time_window_and_sealed_after_the_grace() {
    let mut r = Recorder::new("r", "host", T0);
    r.record_action(&comment(1, T0 + 100, "a", "one"));
    r.advance(T0 + REPLAY_CHUNK_MS + REPLAY_SEAL_GRACE_MS - 1);
    assert!(r.poll_sealed().is_none(), "sealed before the grace passed");
    r.advance(T0 + REPLAY_CHUNK_MS + REPLAY_SEAL_GRACE_MS);
    let chunks = chunks_of(&mut r);
    assert_eq!(chunks.len(), 1);
    assert_eq!(
        (chunks[0].start_ms, chunks[0].end_ms),
        (T0, T0 + REPLAY_CHUNK_MS)
    );
    assert_eq!(chunks[0].events.len(), 1);
}

#[test]
fn a_removed_comment_is_gone_whether_its_chunk_was_open_or_sealed() {
    let mut r = Recorder::new("r", "host", T0);
    r.record_action(&comment(1, T0 + 100, "a", "kept"));
    r.record_action(&comment(2, T0 + 200, "a", "removed while open"));
    r.record_action(&removed(3, T0 + 300, 2));
    r.record_action(&comment(4, T0 + 400, "a", "removed once sealed"));
    r.advance(T0 + REPLAY_CHUNK_MS + REPLAY_SEAL_GRACE_MS);
    r.record_action(&removed(5, T0 + REPLAY_CHUNK_MS + REPLAY_SEAL_GRACE_MS, 4));
    r.end(T0 + 3 * REPLAY_CHUNK_MS);
    let chunks = chunks_of(&mut r);
    let sealed_first = &chunks[0];
    assert!(
        sealed_first
            .events
            .iter()
            .all(|e| !matches!(&e.body, ReplayEventBody::Action(a) if a.seq == 2)),
        "removed from the open chunk before it was sealed"
    );
    let info = r.info();
    let window = info.window(&chunks, T0, T0 + 3 * REPLAY_CHUNK_MS, false);
    assert_eq!(
        seqs(&window),
        vec![1],
        "neither removed comment nor the removals"
    );
}

/// A removal names a number, and the room cannot tell a gift from a comment once the
/// number left its recent actions: a removal naming a gift or a system message (a
/// moderator's, past the ring) leaves it in the recording, open chunk or sealed.
#[test]
fn a_removal_naming_a_gift_or_a_system_message_leaves_it_recorded() {
    let mut r = Recorder::new("r", "host", T0);
    let gift = |seq, ts_ms| Action {
        seq,
        ts_ms,
        user: "ana".into(),
        name: "ana".into(),
        body: ActionBody::Gift {
            sku: "rose".into(),
            qty: 1,
            amount: 5,
        },
    };
    r.record_action(&gift(1, T0 + 100));
    r.record_action(&removed(2, T0 + 200, 1)); // while its chunk is open
    r.record_action(&Action {
        seq: 3,
        ts_ms: T0 + 300,
        user: "admin".into(),
        name: "admin".into(),
        body: ActionBody::System {
            text: "welcome".into(),
        },
    });
    r.record_action(&gift(4, T0 + 400));
    r.advance(T0 + REPLAY_CHUNK_MS + REPLAY_SEAL_GRACE_MS);
    let at = T0 + REPLAY_CHUNK_MS + REPLAY_SEAL_GRACE_MS;
    r.record_action(&removed(5, at, 3)); // once sealed
    r.record_action(&removed(6, at, 4));
    r.end(T0 + 3 * REPLAY_CHUNK_MS);
    let chunks = chunks_of(&mut r);
    let window = r
        .info()
        .window(&chunks, T0, T0 + 3 * REPLAY_CHUNK_MS, false);
    assert_eq!(
        seqs(&window),
        vec![1, 3, 4],
        "the gifts and the system message stay"
    );
}

#[test]
fn above_the_rate_comments_are_sampled_but_the_host_and_gifts_are_kept() {
    let mut r = Recorder::new("r", "host", T0);
    let per_s = u64::from(REPLAY_SAMPLED_EVENTS_PER_S_MAX);
    let mut seq = 0;
    for i in 0..per_s + 10 {
        seq += 1;
        r.record_action(&comment(seq, T0 + i, "viewer", "x"));
    }
    seq += 1;
    r.record_action(&comment(seq, T0 + 500, "host", "host speaks"));
    seq += 1;
    r.record_action(&Action {
        seq,
        ts_ms: T0 + 600,
        user: "viewer".into(),
        name: "viewer".into(),
        body: ActionBody::Gift {
            sku: "rose".into(),
            qty: 1,
            amount: 5,
        },
    });
    // The next second keeps comments again.
    seq += 1;
    r.record_action(&comment(seq, T0 + 1_000, "viewer", "next second"));
    r.end(T0 + 2_000);
    let chunks = chunks_of(&mut r);
    let window = r.info().window(&chunks, T0, T0 + 2_000, false);
    let kept = seqs(&window);
    assert_eq!(kept.len() as u64, per_s + 3);
    assert_eq!(
        &kept[..per_s as usize],
        &(1..=per_s).collect::<Vec<_>>()[..]
    );
    assert_eq!(window.sampled_out, 10);
}

#[test]
fn a_part_is_recorded_at_most_once_per_interval_with_its_latest_value() {
    let mut r = Recorder::new("r", "host", T0);
    r.record_part(
        "poll",
        1,
        r#"{"phase":"open","cue":"c1","tallies":[0,0]}"#,
        T0 + 100,
    );
    r.record_part(
        "poll",
        2,
        r#"{"phase":"open","cue":"c1","tallies":[1,0]}"#,
        T0 + 150,
    );
    r.record_part(
        "poll",
        3,
        r#"{"phase":"open","cue":"c1","tallies":[2,0]}"#,
        T0 + 200,
    );
    r.advance(T0 + 1_100 + REPLAY_SEAL_GRACE_MS);
    r.end(T0 + 5_000);
    let chunks = chunks_of(&mut r);
    let window = r.info().window(&chunks, T0, T0 + 5_000, true);
    let parts: Vec<(u64, u64, Option<&str>)> = window
        .events
        .iter()
        .filter_map(|e| match &e.body {
            ReplayEventBody::Part(p) => Some((e.ts_ms - T0, p.version, e.cue.as_deref())),
            _ => None,
        })
        .collect();
    assert_eq!(parts, vec![(100, 1, Some("c1")), (1_100, 3, Some("c1"))]);
    // Snapshot between the two: the first value.
    let mid = r.info().window(&chunks, T0 + 500, T0 + 600, true);
    let snapshot = mid.snapshot.unwrap();
    assert_eq!(snapshot.parts.len(), 1);
    assert_eq!(snapshot.parts[0].version, 1);
}

#[test]
fn the_snapshot_reaches_across_chunks_through_keyframes() {
    let mut r = Recorder::new("r", "host", T0);
    r.record_part(
        "product",
        4,
        r#"{"pinned":{"id":"p1","cue":"buy"}}"#,
        T0 + 10,
    );
    r.record_likes(7, T0 + 20);
    r.advance(T0 + 5 * REPLAY_CHUNK_MS);
    r.end(T0 + 5 * REPLAY_CHUNK_MS + 1);
    let chunks = chunks_of(&mut r);
    let info = r.info();
    let range = info.chunks_for(T0 + 3 * REPLAY_CHUNK_MS + 5, T0 + 4 * REPLAY_CHUNK_MS);
    assert_eq!(range, 3..=3);
    let needed: Vec<Chunk> = chunks
        .iter()
        .filter(|c| range.contains(&c.index))
        .cloned()
        .collect();
    let window = info.window(
        &needed,
        T0 + 3 * REPLAY_CHUNK_MS + 5,
        T0 + 4 * REPLAY_CHUNK_MS,
        true,
    );
    let snapshot = window.snapshot.unwrap();
    assert_eq!(snapshot.likes, 7);
    assert_eq!(snapshot.parts[0].name, "product");
    assert_eq!(cue_of(&snapshot.parts[0].value).as_deref(), Some("buy"));
    assert!(window.events.is_empty());
}

#[test]
fn at_the_byte_bound_the_recording_stops_and_says_so() {
    let bytes_max = 200_000;
    let mut r = Recorder::with_bytes_max("r", "host", T0, bytes_max);
    let text = "y".repeat(400);
    let mut seq = 0;
    let mut ts = T0;
    let mut sealed_bytes = 0;
    let mut chunks = Vec::new();
    // 30 comments a second of ~430 bytes, until the bound.
    while r.truncated_at_ms().is_none() {
        seq += 1;
        ts += 34;
        r.record_action(&comment(seq, ts, "v", &text));
        r.advance(ts);
        while let Some(sealed) = r.poll_sealed() {
            sealed_bytes += sealed.bytes.len() as u64;
            chunks.push(Chunk::decode(&sealed.bytes).unwrap());
        }
        assert!(r.bytes_recorded() <= bytes_max);
    }
    let truncated = r.truncated_at_ms().unwrap();
    assert_eq!(
        truncated, ts,
        "stopped at the event that would pass the bound"
    );
    r.record_action(&comment(seq + 1, ts + 1, "v", "after the bound"));
    r.record_action(&removed(seq + 2, ts + 2, 1));
    r.end(ts + 10);
    while let Some(sealed) = r.poll_sealed() {
        sealed_bytes += sealed.bytes.len() as u64;
        chunks.push(Chunk::decode(&sealed.bytes).unwrap());
    }
    assert!(sealed_bytes <= bytes_max, "{sealed_bytes}");
    let info = r.info();
    assert_eq!(info.truncated_at_ms, Some(truncated));
    let window = info.window(&chunks, T0, ts + 10, false);
    assert_eq!(window.truncated_at_ms, Some(truncated));
    let kept = seqs(&window);
    assert_eq!(
        kept,
        (2..seq).collect::<Vec<_>>(),
        "everything before the bound but the comment removed after it; nothing after"
    );
}

#[test]
fn the_recorder_survives_a_restart_through_serde() {
    let mut r = Recorder::new("r", "host", T0);
    r.record_action(&comment(1, T0 + 100, "a", "one"));
    r.record_part("poll", 1, r#"{"phase":"open"}"#, T0 + 200);
    let saved = serde_json::to_vec(&r).unwrap();
    let mut back: Recorder = serde_json::from_slice(&saved).unwrap();
    back.record_action(&comment(1, T0 + 100, "a", "one"));
    back.record_action(&comment(2, T0 + 300, "a", "two"));
    back.end(T0 + 400);
    let chunks = chunks_of(&mut back);
    let window = back.info().window(&chunks, T0, T0 + 400, false);
    assert_eq!(
        seqs(&window),
        vec![1, 2],
        "a repeat after restore is not recorded twice"
    );
}

/// A host killed between a chunk's write and its save of the recorder restores the save
/// before and seals that chunk again: what the room did in between (here a like total) is
/// stamped at the wake, past the chunk, so the second version differs from the first. The
/// store keeps the first (`writes_over` is false for it); another recording's chunk at the
/// same key, or bytes that are no chunk, are written over.
#[test]
fn a_chunk_sealed_again_after_a_restore_is_not_written_over_the_first() {
    let mut r = Recorder::new("r", "host", T0);
    r.record_action(&comment(1, T0 + 100, "a", "one"));
    let saved = serde_json::to_vec(&r).unwrap();
    r.record_likes(7, T0 + 2_000);
    r.advance(T0 + REPLAY_CHUNK_MS + REPLAY_SEAL_GRACE_MS);
    let first = r.poll_sealed().expect("chunk 0 sealed");

    let mut back: Recorder = serde_json::from_slice(&saved).unwrap();
    let wake_ms = T0 + 3 * REPLAY_CHUNK_MS;
    back.record_action(&comment(1, T0 + 100, "a", "one"));
    back.record_likes(7, wake_ms);
    back.advance(wake_ms);
    let again = back.poll_sealed().expect("chunk 0 sealed again");
    assert_eq!((again.index, again.start_ms), (first.index, first.start_ms));
    assert_ne!(
        again.bytes, first.bytes,
        "the like total moved past the chunk"
    );
    assert!(
        !again.writes_over(&first.bytes),
        "the first version is kept"
    );
    assert!(
        first.writes_over(&[]),
        "an empty value is not a chunk: written over"
    );

    // A recording restarted later (its recorder unreadable) numbers its chunks from 0
    // again: the old recording's chunk 0 is not its own.
    let mut restarted = Recorder::new("r", "host", T0 + 10 * REPLAY_CHUNK_MS + 5);
    restarted.end(T0 + 10 * REPLAY_CHUNK_MS + 50);
    let new_first = restarted.poll_sealed().expect("the restarted chunk 0");
    assert_eq!(new_first.index, 0);
    assert!(new_first.writes_over(&first.bytes));
    // A reader of the restarted recording takes the old chunk 0 as absent, a writer of
    // it does not write the old one's chunks.
    let chunk_0 = |sealed: &Sealed| Chunk::decode(&sealed.bytes).unwrap();
    assert!(!restarted.info().owns(0, &chunk_0(&first)));
    assert!(restarted.info().owns(0, &chunk_0(&new_first)));
    assert!(
        !restarted.info().owns(1, &chunk_0(&new_first)),
        "another index"
    );
    assert!(!first.is_of_recording_started_at(restarted.started_ms()));
    assert!(first.is_of_recording_started_at(T0));
}

/// Chat-like text of about `len` bytes: words drawn (by a hash of the sequence number)
/// from a vocabulary of 512 made-up lowercase words of 2 to 9 letters, so neither the
/// storage nor the compressed figure is flattered by repeated characters.
fn chat_text(seq: u64, len: usize) -> String {
    let mut text = String::new();
    let mut h = seq.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    while text.len() < len {
        h ^= h << 13;
        h ^= h >> 7;
        h ^= h << 17;
        let word = h % 512;
        let mut w = word.wrapping_mul(0x2545_f491_4f6c_dd1d);
        let letters = 2 + (word % 8);
        if !text.is_empty() {
            text.push(' ');
        }
        for _ in 0..letters {
            text.push(char::from(b'a' + (w % 26) as u8));
            w /= 26;
        }
    }
    text
}

/// Storage per recorded hour at 20 comments a second (docs/replay.md): typical comments
/// (20 to 80 bytes of text, user ids like the SDK's), likes every second, a poll
/// whose tallies change every second for 1 minute in 10.
#[test]
fn storage_per_recorded_hour_at_20_comments_per_second() {
    let mut r = Recorder::new("live-1", "host", T0);
    let mut seq = 0;
    let mut bytes_sealed = 0u64;
    let mut chunks = 0u64;
    let mut largest = 0usize;
    let mut stored = Vec::new();
    let hour_ms = 3_600_000;
    let mut likes = 0;
    for ms in (0..hour_ms).step_by(50) {
        let now = T0 + ms;
        {
            // 20 per second: one every 50 ms.
            seq += 1;
            let len = 20 + (seq * 7919 % 61) as usize;
            let text = chat_text(seq, len);
            r.record_action(&comment(
                seq,
                now,
                &format!("user-{:06}", seq % 5_000),
                &text,
            ));
        }
        if ms % 1_000 == 0 {
            likes += 13;
            r.record_likes(likes, now);
            if (ms / 60_000) % 10 == 0 {
                let value = format!(
                    r#"{{"id":"p{}","question":"Which one?","options":["a","b","c"],"phase":"open","cue":null,"tallies":[{},{},{}]}}"#,
                    ms / 600_000,
                    ms / 1_000,
                    ms / 2_000,
                    ms / 3_000
                );
                r.record_part("poll", ms / 1_000 + 1, &value, now);
            }
        }
        r.advance(now);
        while let Some(sealed) = r.poll_sealed() {
            bytes_sealed += sealed.bytes.len() as u64;
            largest = largest.max(sealed.bytes.len());
            chunks += 1;
            stored.push(Chunk::decode(&sealed.bytes).unwrap());
        }
    }
    r.end(T0 + hour_ms);
    while let Some(sealed) = r.poll_sealed() {
        bytes_sealed += sealed.bytes.len() as u64;
        chunks += 1;
        stored.push(Chunk::decode(&sealed.bytes).unwrap());
    }
    // A viewer-hour of replay fetched in aligned windows (the SDK's 60 s, and the longest
    // allowed), the first with the snapshot: requests and JSON bytes (before the HTTP
    // compression Cloudflare applies).
    let info = r.info();
    for window_ms in [60_000, REPLAY_WINDOW_MS_MAX] {
        let mut requests = 0;
        let mut json_bytes = 0;
        let mut chunk_reads = 0;
        let mut gzip_bytes = 0;
        let mut from = T0;
        while from < T0 + hour_ms {
            let range = info.chunks_for(from, from + window_ms);
            chunk_reads += range.clone().count();
            let needed: Vec<Chunk> = stored
                .iter()
                .filter(|c| range.contains(&c.index))
                .cloned()
                .collect();
            let window = info.window(&needed, from, from + window_ms, from == T0);
            let json = serde_json::to_vec(&window).unwrap();
            json_bytes += json.len();
            let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
            std::io::Write::write_all(&mut gzip, &json).unwrap();
            gzip_bytes += gzip.finish().unwrap().len();
            requests += 1;
            from += window_ms;
        }
        println!(
            "replay fetch per viewer-hour in {window_ms} ms windows: {requests} requests, \
             {json_bytes} JSON bytes ({:.1} MB; gzip -6: {gzip_bytes}, {:.1} MB), \
             {chunk_reads} chunk reads on cache misses",
            json_bytes as f64 / 1e6,
            gzip_bytes as f64 / 1e6
        );
    }
    println!(
        "replay storage: {bytes_sealed} bytes per recorded hour at 20 comments/s \
         ({:.2} MB/h), {chunks} chunks of {} ms, largest {largest} bytes, mean {} bytes",
        bytes_sealed as f64 / 1e6,
        REPLAY_CHUNK_MS,
        bytes_sealed / chunks
    );
    assert_eq!(seq, 72_000);
    assert!(r.truncated_at_ms().is_none());
    // ~100 bytes per comment: under 10 MB an hour, and a room of REPLAY_ROOM_BYTES_MAX
    // records over 24 hours at this rate.
    assert!(bytes_sealed < 10_000_000, "{bytes_sealed}");
    assert!(REPLAY_ROOM_BYTES_MAX / bytes_sealed >= 24);
}

#[test]
fn time_alone_is_no_change_to_save() {
    let mut r = Recorder::new("r", "host", T0);
    r.record_action(&comment(1, T0 + 100, "a", "one"));
    let revision = r.revision();
    r.advance(T0 + 200);
    r.advance(T0 + 5_000);
    r.record_likes(0, T0 + 5_000);
    assert_eq!(r.revision(), revision, "nothing fell due, nothing to save");
    r.advance(T0 + REPLAY_CHUNK_MS + REPLAY_SEAL_GRACE_MS);
    assert!(r.revision() > revision, "a chunk sealed");
}

/// A flood of likes or of one part's changes (any viewer's likes, a staff socket's
/// frames) is held to one record per interval, and is no save either until that record:
/// the host saves the whole recorder on each change. A recorder restored from the last
/// save and fed the room's values again records the same end state.
#[test]
fn held_likes_and_parts_are_no_change_to_save_and_come_back_after_a_restore() {
    let mut r = Recorder::new("r", "host", T0);
    r.record_likes(1, T0 + 100);
    r.record_part("board", 1, r#"{"n":1}"#, T0 + 100);
    let revision = r.revision();
    let saved = serde_json::to_vec(&r).unwrap();
    for n in 2..500u64 {
        r.record_likes(n, T0 + 100 + n);
        r.record_part("board", n, &format!("{{\"n\":{n}}}"), T0 + 100 + n);
    }
    assert_eq!(r.revision(), revision, "500 held changes, no save");
    // The object stops; the recorder restored from the last save is fed the room's values.
    let mut back: Recorder = serde_json::from_slice(&saved).unwrap();
    back.record_likes(499, T0 + 700);
    back.record_part("board", 499, r#"{"n":499}"#, T0 + 700);
    for rec in [&mut r, &mut back] {
        rec.advance(
            T0 + 700 + REPLAY_LIKES_INTERVAL_MS.max(REPLAY_PART_INTERVAL_MS) + REPLAY_SEAL_GRACE_MS,
        );
        rec.end(T0 + 20_000);
    }
    let end_state = |rec: &mut Recorder| {
        let chunks = chunks_of(rec);
        let window = rec.info().window(&chunks, T0 + 19_000, T0 + 20_000, true);
        let snapshot = window.snapshot.expect("a snapshot");
        (snapshot.likes, snapshot.parts[0].version)
    };
    assert_eq!(end_state(&mut r), (499, 499));
    assert_eq!(end_state(&mut back), (499, 499));
}

#[test]
fn sealed_chunks_must_be_stored_but_not_the_open_one_or_one_past_a_truncation() {
    let info = |open_index, truncated_at_ms| RecordingInfo {
        room: "r".into(),
        started_ms: 1_000,
        ended_ms: None,
        truncated_at_ms,
        recorded_to_ms: 0,
        deleted: Default::default(),
        open_index,
    };
    let live = info(Some(3), None);
    assert!(live.must_be_stored(0) && live.must_be_stored(2));
    assert!(!live.must_be_stored(3));
    // Truncated at the start of chunk 5: chunks 0..=4 were sealed, 5 never opened.
    let truncated = info(None, Some(1_000 + 5 * REPLAY_CHUNK_MS));
    assert!(truncated.must_be_stored(4));
    assert!(!truncated.must_be_stored(5));
    // Truncated inside chunk 5: it was sealed at the truncation.
    let inside = info(None, Some(1_000 + 5 * REPLAY_CHUNK_MS + 1));
    assert!(inside.must_be_stored(5));
}

/// A window is final (cached for good) only when the recording ended, the window starts
/// within its opening and lies wholly in the past: a window reaching past now could be
/// filled by the room opened again, one starting before the opening is another's.
#[test]
fn a_window_is_final_only_when_ended_within_the_opening_and_past() {
    let info = |ended_ms| RecordingInfo {
        room: "r".into(),
        started_ms: 1_000,
        ended_ms,
        truncated_at_ms: None,
        recorded_to_ms: 0,
        deleted: Default::default(),
        open_index: None,
    };
    let ended = info(Some(5_000));
    assert!(
        ended.is_final(1_000, 5_000, 5_000),
        "the whole opening, at its end"
    );
    assert!(
        ended.is_final(4_000, 9_000, 9_000),
        "past the end, once past"
    );
    assert!(!ended.is_final(4_000, 9_001, 9_000), "reaching past now");
    assert!(
        !ended.is_final(999, 2_000, 9_000),
        "starting before the opening"
    );
    assert!(
        !info(None).is_final(1_000, 2_000, 9_000),
        "a live recording"
    );
}

/// A window answer reads stored chunks up to `REPLAY_WINDOW_READ_BYTES_MAX`: the first
/// always (the window starts in it), then each that fits; the first that does not ends
/// the answer at its start, one past the bound included.
#[test]
fn a_window_read_stops_before_the_chunk_that_passes_its_bytes() {
    let mut read = WindowRead::within(100);
    assert!(read.take(60));
    assert!(read.take(40), "exactly at the bound");
    assert!(!read.take(1), "one past it");
    let mut huge = WindowRead::within(100);
    assert!(
        huge.take(1_000),
        "the first chunk is read whatever its size"
    );
    assert!(!huge.take(1));
    let mut real = WindowRead::default();
    assert!(real.take(REPLAY_WINDOW_READ_BYTES_MAX - 1));
    assert!(real.take(1));
    assert!(!real.take(1));
    let r = Recorder::new("r", "host", T0);
    let info = r.info();
    assert_eq!(info.chunk_start_ms(0), T0);
    assert_eq!(info.chunk_start_ms(3), T0 + 3 * REPLAY_CHUNK_MS);
    assert_eq!(info.chunk_start_ms(u64::MAX), u64::MAX);
}

/// One viewer's window reads take at most `REPLAY_WINDOW_READS_IN_FLIGHT_PER_USER_MAX`
/// of the room's places: the others still read while it keeps its reads in flight, up to
/// `REPLAY_WINDOW_READS_IN_FLIGHT_MAX` in all; an ended read gives its place back.
#[test]
fn one_viewers_window_reads_leave_the_others_their_places() {
    use ovation_proto::limits::{
        REPLAY_WINDOW_READS_IN_FLIGHT_MAX, REPLAY_WINDOW_READS_IN_FLIGHT_PER_USER_MAX,
    };
    let mut reads = WindowReads::default();
    for _ in 0..REPLAY_WINDOW_READS_IN_FLIGHT_PER_USER_MAX {
        reads.start("eve").unwrap();
    }
    for _ in 0..10 {
        assert_eq!(reads.start("eve"), Err(WindowReadsBusy::User));
    }
    let others: Vec<String> = (0..REPLAY_WINDOW_READS_IN_FLIGHT_MAX)
        .map(|n| format!("viewer-{n}"))
        .collect();
    let mut started = Vec::new();
    for user in &others {
        match reads.start(user) {
            Ok(()) => started.push(user),
            Err(busy) => {
                assert_eq!(busy, WindowReadsBusy::Room);
                break;
            }
        }
    }
    assert_eq!(
        started.len(),
        REPLAY_WINDOW_READS_IN_FLIGHT_MAX - REPLAY_WINDOW_READS_IN_FLIGHT_PER_USER_MAX
    );
    assert_eq!(reads.in_flight(), REPLAY_WINDOW_READS_IN_FLIGHT_MAX);
    reads.end("eve");
    reads.start(others.last().unwrap()).unwrap();
    for user in started {
        reads.end(user);
    }
    reads.end(others.last().unwrap());
    assert_eq!(
        reads.in_flight(),
        REPLAY_WINDOW_READS_IN_FLIGHT_PER_USER_MAX - 1
    );
}
