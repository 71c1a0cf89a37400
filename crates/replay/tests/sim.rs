//! Seeded simulation of a room's recording against a simple model.
//!
//! A random room (comments in calm and flood phases, the host, reactions, gifts, system
//! messages, removals of any earlier comment, part changes and removals, likes, restarts
//! of the recorder through serde, a byte bound small enough to be reached in some runs)
//! is fed to a `Recorder` the way the room object feeds it, and its chunks are stored as
//! they are sealed. Checked against the model:
//! - chunks: each index sealed once, in order, never rewritten; their bytes within the bound;
//! - actions in any window (live, mid-run, and after the end) are exactly the model's: kept
//!   by the sampling rule (the first `REPLAY_SAMPLED_EVENTS_PER_S_MAX` comments and
//!   reactions of each second, the host's and every gift or system message always), not
//!   removed, before the truncation if any;
//! - parts: each part recorded at most once per `REPLAY_PART_INTERVAL_MS`, every recorded
//!   value one that was fed, and the snapshot at a random T holds, for each part, a version
//!   fed before T and no older than the last one fed `REPLAY_PART_INTERVAL_MS` before T;
//!   the snapshot equals the state replayed from the recording's start.
//!
//! Replay one seed with `OVATION_REPLAY_SIM_SEED=<n>`.

use ovation_proto::limits::{
    REPLAY_CHUNK_MS, REPLAY_PART_INTERVAL_MS, REPLAY_SAMPLED_EVENTS_PER_S_MAX, REPLAY_WINDOW_MS_MAX,
};
use ovation_proto::{Action, ActionBody, ReplayEventBody, ReplayWindow};
use ovation_replay::{Chunk, Recorder};
use std::collections::{BTreeMap, BTreeSet};

const T0: u64 = 1_764_806_400_000;
const PARTS: [&str; 3] = ["poll", "product", "announcement"];

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// What the model knows of one action fed.
struct Fed {
    action: Action,
    /// Kept by the sampling rule (before removals and truncation).
    kept: bool,
}

#[derive(Default)]
struct Model {
    actions: Vec<Fed>,
    removed: BTreeSet<u64>,
    /// Per part: (fed at, version, value; `null` for a removal).
    parts: BTreeMap<String, Vec<(u64, u64, String)>>,
    per_second: BTreeMap<u64, u32>,
}

impl Model {
    fn expected_actions(&self, from: u64, to: u64, truncated: Option<u64>) -> Vec<u64> {
        self.actions
            .iter()
            .filter(|f| f.kept && !self.removed.contains(&f.action.seq))
            .filter(|f| f.action.ts_ms >= from && f.action.ts_ms < to)
            .filter(|f| truncated.is_none_or(|t| f.action.ts_ms < t))
            .map(|f| f.action.seq)
            .collect()
    }
}

fn action_seqs(window: &ReplayWindow) -> Vec<u64> {
    window
        .events
        .iter()
        .filter_map(|e| match &e.body {
            ReplayEventBody::Action(a) => Some(a.seq),
            _ => None,
        })
        .collect()
}

/// Reads [from, to) as the room object does: stored chunks, and the open one.
fn read(recorder: &Recorder, store: &BTreeMap<u64, Chunk>, from: u64, to: u64) -> ReplayWindow {
    let info = recorder.info();
    let chunks: Vec<Chunk> = info
        .chunks_for(from, to)
        .filter_map(|index| {
            if Some(index) == info.open_index {
                recorder.open_chunk_now().cloned()
            } else {
                store.get(&index).cloned()
            }
        })
        .collect();
    info.window(&chunks, from, to, true)
}

/// Actions of [from, to) compared with the model; events at the truncation's own
/// millisecond may or may not be in (the one that hit the bound is not).
fn check_actions(window: &ReplayWindow, model: &Model, seed: u64) {
    let truncated = window.truncated_at_ms;
    let got = action_seqs(window);
    let expected = model.expected_actions(window.from_ms, window.to_ms, truncated);
    let expected_set: BTreeSet<u64> = expected.iter().copied().collect();
    let at_bound: BTreeSet<u64> = got
        .iter()
        .copied()
        .filter(|s| !expected_set.contains(s))
        .collect();
    for seq in &at_bound {
        let fed = model
            .actions
            .binary_search_by_key(seq, |f| f.action.seq)
            .map(|at| &model.actions[at])
            .unwrap_or_else(|_| panic!("seed {seed}: recorded seq {seq} was never fed"));
        assert!(
            fed.kept && !model.removed.contains(seq) && Some(fed.action.ts_ms) == truncated,
            "seed {seed}: seq {seq} recorded but not expected (window {}..{})",
            window.from_ms,
            window.to_ms
        );
    }
    let got_before: Vec<u64> = got
        .iter()
        .copied()
        .filter(|s| !at_bound.contains(s))
        .collect();
    assert_eq!(
        got_before, expected,
        "seed {seed}: actions of window {}..{}",
        window.from_ms, window.to_ms
    );
}

fn run(seed: u64) {
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let bytes_max = if rng.chance(30) {
        20_000 + rng.below(60_000)
    } else {
        u64::MAX
    };
    let mut recorder = Recorder::with_bytes_max("sim", "host", T0, bytes_max);
    let mut model = Model::default();
    let mut store: BTreeMap<u64, Chunk> = BTreeMap::new();
    let mut sealed_bytes = 0u64;
    let mut t = T0;
    let mut seq = 0u64;
    let mut version = 0u64;
    let mut likes = 0u64;
    let mut flood = false;
    let steps = 1_500 + rng.below(1_500);

    let mut drain = |recorder: &mut Recorder, store: &mut BTreeMap<u64, Chunk>| {
        while let Some(sealed) = recorder.poll_sealed() {
            let chunk = Chunk::decode(&sealed.bytes).expect("a chunk");
            assert_eq!(chunk.index, sealed.index);
            assert_eq!(
                store.keys().next_back().map_or(0, |i| i + 1),
                chunk.index,
                "seed {seed}: chunks are sealed once each, in order"
            );
            assert!(chunk.events.windows(2).all(|w| w[0].ts_ms <= w[1].ts_ms));
            assert!(chunk
                .events
                .iter()
                .all(|e| e.ts_ms >= chunk.start_ms && e.ts_ms < chunk.end_ms));
            sealed_bytes += sealed.bytes.len() as u64;
            store.insert(chunk.index, chunk);
        }
    };

    for _ in 0..steps {
        if rng.chance(3) {
            flood = !flood;
        }
        t += if flood { rng.below(15) } else { rng.below(400) };
        let roll = rng.below(100);
        if roll < 55 {
            seq += 1;
            let host = rng.chance(5);
            let user = if host {
                "host".to_owned()
            } else {
                format!("u{}", rng.below(20))
            };
            let body = if rng.chance(85) {
                ActionBody::Comment {
                    text: "c".repeat(1 + rng.below(120) as usize),
                }
            } else {
                ActionBody::Reaction { kind: "❤".into() }
            };
            let kept = host || {
                let count = model.per_second.entry(t / 1_000).or_default();
                *count += 1;
                *count <= REPLAY_SAMPLED_EVENTS_PER_S_MAX
            };
            let action = Action {
                seq,
                ts_ms: t,
                user: user.clone(),
                name: user,
                body,
            };
            recorder.record_action(&action);
            model.actions.push(Fed { action, kept });
        } else if roll < 60 {
            seq += 1;
            let body = if rng.chance(50) {
                ActionBody::Gift {
                    sku: "rose".into(),
                    qty: 1,
                    amount: 1,
                }
            } else {
                ActionBody::System {
                    text: "system".into(),
                }
            };
            let action = Action {
                seq,
                ts_ms: t,
                user: "staff".into(),
                name: "staff".into(),
                body,
            };
            recorder.record_action(&action);
            model.actions.push(Fed { action, kept: true });
        } else if roll < 66 {
            // A moderator removes any earlier comment still standing.
            let comments: Vec<u64> = model
                .actions
                .iter()
                .filter(|f| matches!(f.action.body, ActionBody::Comment { .. }))
                .map(|f| f.action.seq)
                .filter(|s| !model.removed.contains(s))
                .collect();
            if !comments.is_empty() {
                let target = comments[rng.below(comments.len() as u64) as usize];
                seq += 1;
                recorder.record_action(&Action {
                    seq,
                    ts_ms: t,
                    user: "mod".into(),
                    name: "mod".into(),
                    body: ActionBody::Removed { seq: target },
                });
                model.removed.insert(target);
            }
        } else if roll < 80 {
            let name = PARTS[rng.below(PARTS.len() as u64) as usize];
            version += 1;
            let value = if rng.chance(10) {
                "null".to_owned()
            } else {
                format!(
                    r#"{{"v":{version},"cue":"c{}","tallies":[{},{}]}}"#,
                    rng.below(3),
                    rng.below(100),
                    rng.below(100)
                )
            };
            recorder.record_part(name, version, &value, t);
            model
                .parts
                .entry(name.to_owned())
                .or_default()
                .push((t, version, value));
        } else if roll < 88 {
            likes += 1 + rng.below(50);
            recorder.record_likes(likes, t);
        } else if roll < 90 {
            // The object is evicted: sealed chunks are written, the recorder saved and
            // read back.
            drain(&mut recorder, &mut store);
            let saved = serde_json::to_vec(&recorder).unwrap();
            recorder = serde_json::from_slice(&saved).unwrap();
        } else if roll < 92 {
            // A live viewer reads a window behind the live edge.
            let to = t + 1;
            let from = to.saturating_sub(rng.below(REPLAY_WINDOW_MS_MAX)).max(T0);
            let window = read(&recorder, &store, from, to);
            check_actions(&window, &model, seed);
        }
        if rng.chance(70) {
            recorder.advance(t);
        }
        drain(&mut recorder, &mut store);
    }
    t += 1 + rng.below(100);
    recorder.record_likes(likes, t);
    recorder.end(t);
    drain(&mut recorder, &mut store);
    let end = t;
    let info = recorder.info();
    assert_eq!(info.ended_ms, Some(end));
    assert!(
        sealed_bytes <= bytes_max,
        "seed {seed}: {sealed_bytes} > {bytes_max}"
    );
    if bytes_max == u64::MAX {
        assert_eq!(info.truncated_at_ms, None);
    }
    let last_chunk = store.keys().next_back().copied().unwrap_or(0);
    if info.truncated_at_ms.is_none() {
        assert_eq!(
            last_chunk,
            (end - T0) / REPLAY_CHUNK_MS,
            "seed {seed}: every chunk written"
        );
    }

    // The whole recording in windows of random lengths: actions exactly the model's.
    let mut from = T0;
    let mut all_events = Vec::new();
    while from <= end {
        let to = from + 1 + rng.below(REPLAY_WINDOW_MS_MAX);
        let window = read(&recorder, &store, from, to);
        check_actions(&window, &model, seed);
        all_events.extend(window.events);
        from = to;
    }

    // Parts: at most one recording per interval, each value one that was fed.
    let mut recorded_at: BTreeMap<String, u64> = BTreeMap::new();
    for event in &all_events {
        if let ReplayEventBody::Part(part) = &event.body {
            let fed = &model.parts[&part.name];
            let (fed_at, _, value) = fed
                .iter()
                .find(|(_, v, _)| *v == part.version)
                .unwrap_or_else(|| {
                    panic!("seed {seed}: {} v{} never fed", part.name, part.version)
                });
            assert_eq!(value, &part.value);
            assert!(*fed_at <= event.ts_ms);
            assert!(
                event.ts_ms <= fed_at + REPLAY_PART_INTERVAL_MS
                    || Some(event.ts_ms) == info.ended_ms,
                "seed {seed}: {} v{} fed at {fed_at} recorded at {}",
                part.name,
                part.version,
                event.ts_ms
            );
            if let Some(last) = recorded_at.insert(part.name.clone(), event.ts_ms) {
                assert!(
                    event.ts_ms >= last + REPLAY_PART_INTERVAL_MS
                        || Some(event.ts_ms) == info.ended_ms,
                    "seed {seed}: {} recorded at {last} and {}",
                    part.name,
                    event.ts_ms
                );
            }
        }
    }

    // Snapshots at random times.
    let bound = info.truncated_at_ms.unwrap_or(end);
    for _ in 0..40 {
        let at = T0 + rng.below(bound - T0 + 1);
        let window = read(&recorder, &store, at, at + 1);
        let snapshot = window.snapshot.expect("asked for");
        // The same state as replaying the whole recording up to `at`.
        let mut state: BTreeMap<&str, (u64, &str)> = BTreeMap::new();
        let mut likes_then = 0;
        for event in all_events.iter().filter(|e| e.ts_ms < at) {
            match &event.body {
                ReplayEventBody::Part(p) if p.value == "null" => {
                    state.remove(p.name.as_str());
                }
                ReplayEventBody::Part(p) => {
                    state.insert(&p.name, (p.version, &p.value));
                }
                ReplayEventBody::Likes { total } => likes_then = *total,
                ReplayEventBody::Action(_) => {}
            }
        }
        let from_snapshot: BTreeMap<&str, (u64, &str)> = snapshot
            .parts
            .iter()
            .map(|p| (p.name.as_str(), (p.version, p.value.as_str())))
            .collect();
        assert_eq!(from_snapshot, state, "seed {seed}: snapshot at {at}");
        assert_eq!(snapshot.likes, likes_then, "seed {seed}: likes at {at}");
        // Against what was fed: a version fed before `at`, none older than the last fed
        // an interval before it.
        for (name, fed) in &model.parts {
            let settled = fed
                .iter()
                .rfind(|(f, _, _)| f + REPLAY_PART_INTERVAL_MS < at);
            match from_snapshot.get(name.as_str()) {
                Some((version, _)) => {
                    let (fed_at, _, _) = fed.iter().find(|(_, v, _)| v == version).unwrap();
                    assert!(
                        *fed_at < at,
                        "seed {seed}: {name} v{version} from the future"
                    );
                    if let Some((_, settled_version, _)) = settled {
                        assert!(
                            version >= settled_version,
                            "seed {seed}: {name} at {at} is v{version}, v{settled_version} was due"
                        );
                    }
                }
                None => {
                    let removed = fed.iter().any(|(f, v, value)| {
                        value == "null" && *f < at && settled.is_none_or(|(_, s, _)| v >= s)
                    });
                    assert!(
                        settled.is_none() || removed,
                        "seed {seed}: {name} missing at {at}"
                    );
                }
            }
        }
    }
}

#[test]
fn recordings_match_the_model() {
    if let Some(seed) = std::env::var("OVATION_REPLAY_SIM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        run(seed);
        return;
    }
    for seed in 0..100 {
        run(seed);
    }
}
