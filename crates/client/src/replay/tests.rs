use super::*;
use crate::rng::Rng;
use alloc::collections::{BTreeMap, BTreeSet};
use alloc::format;
use alloc::vec;

/// The room's start (server time): media time 0 of an undated stream.
const S: u64 = 1_700_000_000_000;

#[derive(Clone, Debug)]
struct Recorded {
    ts_ms: u64,
    key: Option<String>,
    cue: Option<String>,
}

fn comment(ts_ms: u64) -> Recorded {
    Recorded {
        ts_ms,
        key: None,
        cue: None,
    }
}

fn part(ts_ms: u64, key: &str, cue: Option<&str>) -> Recorded {
    Recorded {
        ts_ms,
        key: Some(key.into()),
        cue: cue.map(String::from),
    }
}

/// The worker's answers, from a whole recording (what `GET …/replay` does).
struct Server {
    events: Vec<Recorded>,
    /// Ended here (else live, recorded up to `recorded_to_ms`).
    end_ms: Option<u64>,
    recorded_to_ms: u64,
    fetches: Vec<Fetch>,
    fail_next: bool,
}

impl Server {
    fn ended(events: Vec<Recorded>, end_ms: u64) -> Server {
        Server {
            events,
            end_ms: Some(end_ms),
            recorded_to_ms: end_ms,
            fetches: Vec::new(),
            fail_next: false,
        }
    }
}

/// A viewer: the core, and what the host keeps (labels: id → index in the recording).
struct Viewer {
    r: Replay,
    labels: BTreeMap<u64, usize>,
    forgotten: BTreeSet<u64>,
    /// Recording indices shown with `Fire`, in order, with the playhead then.
    fired: Vec<(usize, u64)>,
    applied: Vec<usize>,
    cleared: Vec<String>,
    now_ms: u64,
}

impl Viewer {
    fn new() -> Viewer {
        Viewer {
            r: Replay::new(),
            labels: BTreeMap::new(),
            forgotten: BTreeSet::new(),
            fired: Vec::new(),
            applied: Vec::new(),
            cleared: Vec::new(),
            now_ms: 0,
        }
    }

    fn label(&self, id: u64) -> usize {
        assert!(!self.forgotten.contains(&id), "id {id} shown after Forget");
        self.labels[&id]
    }

    fn drain(&mut self) {
        while let Some(output) = self.r.poll_output() {
            match output {
                Output::Fire(id) => {
                    let at = self.r.position_ms().unwrap_or(0);
                    self.fired.push((self.label(id), at));
                }
                Output::Apply(id) => self.applied.push(self.label(id)),
                Output::Clear(key) => self.cleared.push(key),
                Output::Forget(id) => {
                    self.forgotten.insert(id);
                }
            }
        }
    }

    /// Answers every fetch the core asks for now, then takes its outputs.
    fn pump(&mut self, server: &mut Server) {
        self.drain();
        while let Some(fetch) = self.r.next_fetch(self.now_ms) {
            server.fetches.push(fetch);
            if core::mem::take(&mut server.fail_next) {
                self.r.window_failed(self.now_ms);
                continue;
            }
            let live = server.end_ms.is_none();
            self.r.window_begin(
                WindowInfo {
                    from_ms: fetch.from_ms,
                    to_ms: fetch.to_ms,
                    started_ms: S,
                    recorded_to_ms: server.recorded_to_ms,
                    end_ms: server.end_ms,
                    live,
                },
                fetch.snapshot,
            );
            if fetch.snapshot {
                // The state at `from`: each key's last event before it (by server time).
                let mut last: BTreeMap<&str, usize> = BTreeMap::new();
                for (i, e) in server.events.iter().enumerate() {
                    if let (Some(key), true) = (&e.key, e.ts_ms < fetch.from_ms) {
                        last.insert(key, i);
                    }
                }
                for (key, i) in last {
                    let id = self.r.window_snapshot_entry(key).expect("room for it");
                    self.labels.insert(id, i);
                }
            }
            let to_ms = fetch.to_ms.min(server.recorded_to_ms);
            for (i, e) in server.events.iter().enumerate() {
                if e.ts_ms >= fetch.from_ms && e.ts_ms < to_ms {
                    let id = self
                        .r
                        .window_event(e.ts_ms, e.key.as_deref(), e.cue.as_deref())
                        .expect("room for it");
                    self.labels.insert(id, i);
                }
            }
            self.r.window_end(self.now_ms);
            self.drain();
        }
    }

    fn play(&mut self, server: &mut Server, media_ms: u64) {
        self.r.playhead(media_ms, None);
        self.pump(server);
    }

    fn seek(&mut self, server: &mut Server, media_ms: u64) {
        self.r.seek(media_ms, None);
        self.pump(server);
    }

    /// Plays from `from_ms` to `to_ms` (media) in steps of `step_ms`.
    fn play_range(&mut self, server: &mut Server, from_ms: u64, to_ms: u64, step_ms: u64) {
        let mut at = from_ms;
        while at <= to_ms {
            self.play(server, at);
            at += step_ms;
        }
    }

    fn fired_labels(&self) -> Vec<usize> {
        self.fired.iter().map(|(i, _)| *i).collect()
    }

    fn state(&self) -> BTreeMap<String, usize> {
        self.r
            .state()
            .map(|(key, id)| (key.into(), self.labels[&id]))
            .collect()
    }
}

/// Comments at 1 s, 2.5 s, 2.6 s, a poll at 3 s, the like total at 3.5 s, a comment at 70 s
/// (the second window), the poll's tallies at 71 s; ended at 2 min.
fn small_show() -> Server {
    Server::ended(
        vec![
            comment(S + 1_000),
            comment(S + 2_500),
            comment(S + 2_600),
            part(S + 3_000, "poll", None),
            part(S + 3_500, "likes", None),
            comment(S + 70_000),
            part(S + 71_000, "poll", None),
        ],
        S + 120_000,
    )
}

#[test]
fn playing_through_shows_each_event_once_in_order_at_its_moment() {
    let mut server = small_show();
    let mut v = Viewer::new();
    v.r.window_begin(
        WindowInfo {
            from_ms: 0,
            to_ms: 1,
            started_ms: S,
            recorded_to_ms: S + 120_000,
            end_ms: Some(S + 120_000),
            live: false,
        },
        false,
    ); // the SDK's first answer: the recording's bounds
    v.r.window_end(0);
    v.play_range(&mut server, 0, 120_000, 250);
    assert_eq!(v.fired_labels(), [0, 1, 2, 3, 4, 5, 6]);
    for (i, at) in &v.fired {
        let ts = server.events[*i].ts_ms;
        assert!(
            *at >= ts && *at < ts + 250,
            "event {i} at {at}, recorded {ts}"
        );
    }
    assert_eq!(
        v.state(),
        BTreeMap::from([("likes".into(), 4), ("poll".into(), 6)])
    );
    // Two windows, the second asked 20 s before the first ended, without a snapshot.
    assert_eq!(
        server.fetches,
        [
            Fetch {
                from_ms: S,
                to_ms: S + 60_000,
                snapshot: true
            },
            Fetch {
                from_ms: S + 60_000,
                to_ms: S + 120_000,
                snapshot: false
            }
        ]
    );
    // Nothing is fetched past the end, however long the video goes on.
    v.play_range(&mut server, 120_250, 130_000, 250);
    assert_eq!(server.fetches.len(), 2);
}

#[test]
fn pausing_shows_nothing_and_the_rate_is_the_playhead_speed() {
    let mut server = small_show();
    let mut v = Viewer::new();
    v.r.window_begin(
        WindowInfo {
            from_ms: 0,
            to_ms: 1,
            started_ms: S,
            recorded_to_ms: S + 120_000,
            end_ms: Some(S + 120_000),
            live: false,
        },
        false,
    );
    v.r.window_end(0);
    v.play_range(&mut server, 0, 2_000, 250);
    assert_eq!(v.fired_labels(), [0]);
    // Paused at 2 s: the same report, again and again.
    for _ in 0..20 {
        v.play(&mut server, 2_000);
    }
    assert_eq!(v.fired_labels(), [0]);
    // Rate 4: timeupdates 250 ms apart of wall time move the playhead 1 s each.
    v.play_range(&mut server, 3_000, 72_000, 1_000);
    assert_eq!(v.fired_labels(), [0, 1, 2, 3, 4, 5, 6]);
    for (i, at) in &v.fired {
        let ts = server.events[*i].ts_ms;
        assert!(*at >= ts && *at < ts + 1_000, "event {i} at {at}");
    }
}

fn opened(v: &mut Viewer) {
    v.r.window_begin(
        WindowInfo {
            from_ms: 0,
            to_ms: 1,
            started_ms: S,
            recorded_to_ms: S,
            end_ms: None,
            live: true,
        },
        false,
    );
    v.r.window_end(0);
}

/// A comment every second for 3 minutes, a poll opened at 10 s with tallies every 10 s,
/// closed (removed) at 100 s, the like total every 5 s.
fn busy_show() -> Server {
    let mut events = Vec::new();
    for s in 0..180u64 {
        let at = S + s * 1_000;
        if s % 5 == 0 && s > 0 {
            events.push(part(at, "likes", None));
        }
        if (10..100).contains(&s) && s % 10 == 0 {
            events.push(part(at, "poll", None));
        }
        if s == 100 {
            events.push(part(at, "poll", None)); // its `null`
        }
        events.push(comment(at + 500));
    }
    Server::ended(events, S + 180_000)
}

fn index_of(server: &Server, ts_ms: u64, key: Option<&str>) -> usize {
    server
        .events
        .iter()
        .position(|e| e.ts_ms == ts_ms && e.key.as_deref() == key)
        .expect("recorded")
}

#[test]
fn a_seek_to_the_middle_shows_that_moment_state_and_no_burst_of_older_comments() {
    let mut server = busy_show();
    let mut v = Viewer::new();
    opened(&mut v);
    v.play_range(&mut server, 0, 2_000, 250);
    v.fired.clear();
    v.seek(&mut server, 125_200);
    assert!(v.fired.is_empty(), "no burst: {:?}", v.fired);
    let poll_at_90 = index_of(&server, S + 90_000, Some("poll"));
    let poll_closed = index_of(&server, S + 100_000, Some("poll"));
    let likes_at_125 = index_of(&server, S + 125_000, Some("likes"));
    assert_eq!(
        v.state(),
        BTreeMap::from([("likes".into(), likes_at_125), ("poll".into(), poll_closed)])
    );
    // The window holding 125 s came with its snapshot (at 120 s).
    assert_eq!(
        server.fetches.last(),
        Some(&Fetch {
            from_ms: S + 120_000,
            to_ms: S + 180_000,
            snapshot: true
        })
    );
    // Playing on, the next comment shows at its moment.
    v.play_range(&mut server, 125_250, 126_000, 250);
    assert_eq!(v.fired_labels(), [index_of(&server, S + 125_500, None)]);
    // Seek back to 95 s: the poll at its tallies of 90 s, no comment.
    v.fired.clear();
    v.applied.clear();
    v.seek(&mut server, 95_000);
    assert!(v.fired.is_empty());
    let likes_at_95 = index_of(&server, S + 95_000, Some("likes"));
    assert_eq!(
        v.state(),
        BTreeMap::from([("likes".into(), likes_at_95), ("poll".into(), poll_at_90)])
    );
    assert_eq!(v.applied, [likes_at_95, poll_at_90]);
    // Seek to 5 s: no poll yet (cleared), the like total of 5 s.
    v.applied.clear();
    v.seek(&mut server, 5_000);
    assert_eq!(v.cleared, ["poll"]);
    assert_eq!(
        v.state(),
        BTreeMap::from([("likes".into(), index_of(&server, S + 5_000, Some("likes")))])
    );
}

#[test]
fn a_cued_event_shows_when_its_cue_plays_as_live_viewers_saw_it() {
    const CUE: &str = "v=1;cue=poll-1;ref=poll:p1";
    let events = vec![
        comment(S + 9_000),
        part(S + 10_000, "poll", Some("poll-1")),
        comment(S + 11_000),
        part(S + 20_000, "product", Some("far-1")),
        part(S + 30_000, "quiz", Some("early-1")),
        part(S + 40_000, "announcement", Some("unknown-1")),
    ];
    let mut server = Server::ended(events, S + 60_000);
    let mut v = Viewer::new();
    opened(&mut v);
    v.r.add_cue(CUE, 12_000); // the poll's cue plays 2 s after it opened
    v.r.add_cue("v=1;cue=far-1;ref=product:x", 20_000 + CUE_WAIT_MS_MAX + 1);
    v.r.add_cue("v=1;cue=early-1;ref=quiz:q", 29_000);
    v.play_range(&mut server, 0, 45_000, 250);
    let at_of = |i: usize| v.fired.iter().find(|(j, _)| *j == i).expect("fired").1;
    assert_eq!(at_of(1), S + 12_000, "at its cue");
    assert_eq!(
        v.fired_labels()[..3],
        [0, 2, 1],
        "the comment at 11 s first"
    );
    assert_eq!(
        at_of(3),
        S + 20_000,
        "a cue past the wait is another moment"
    );
    assert_eq!(at_of(4), S + 30_000, "a cue before it: when it opened");
    assert_eq!(at_of(5), S + 40_000, "no cue found: at its time");
    // A dated stream: live viewers got it once the video passed its opening by the slack
    // (`CLIENT_CUE_BEHIND_SLACK_MS`), cue or not; the recording shows it then too.
    let mut dated = Viewer::new();
    opened(&mut dated);
    dated.r.add_cue(CUE, 15_000);
    for at in (0..=20_000).step_by(250) {
        dated.r.playhead(at, Some(S + at));
        dated.pump(&mut server);
    }
    let poll_at = dated.fired.iter().find(|(i, _)| *i == 1).expect("fired").1;
    assert_eq!(poll_at, S + 10_000 + CUE_BEHIND_SLACK_MS);
    // The player's `cue` events come through as live.
    let mut cues = Vec::new();
    while let Some(cue) = v.r.poll_cue() {
        cues.push(cue);
    }
    let told = crate::json::cue_event_json(&crate::playback::cue_fields(CUE).unwrap());
    assert!(cues.contains(&told), "{cues:?}");
}

#[test]
fn a_dated_stream_places_events_by_its_wall_clock() {
    // The stream's media time 0 is 5 s after the room started.
    let wall_at_zero = S + 5_000;
    let mut server = Server::ended(vec![comment(S + 7_000), comment(S + 9_000)], S + 60_000);
    let mut v = Viewer::new();
    opened(&mut v);
    for at in (0..=3_000).step_by(250) {
        v.r.playhead(at, Some(wall_at_zero + at));
        v.pump(&mut server);
    }
    assert_eq!(v.fired, [(0, S + 7_000)]);
    // A report without the date (hls.js between fragments) keeps the offset.
    v.r.playhead(4_000, None);
    v.pump(&mut server);
    assert_eq!(v.fired, [(0, S + 7_000), (1, S + 9_000)]);
}

#[test]
fn fetches_retry_after_a_failure_follow_a_live_recording_and_stop_at_the_end() {
    let mut server = Server {
        events: vec![comment(S + 30_000), comment(S + 50_000)],
        end_ms: None,
        recorded_to_ms: S + 40_000,
        fetches: Vec::new(),
        fail_next: true,
    };
    let mut v = Viewer::new();
    opened(&mut v);
    v.play(&mut server, 0);
    assert_eq!(server.fetches.len(), 1, "failed");
    v.now_ms = RETRY_MS - 1;
    v.play(&mut server, 250);
    assert_eq!(server.fetches.len(), 1, "not before the retry time");
    v.now_ms = RETRY_MS;
    v.play(&mut server, 500);
    assert_eq!(server.fetches.len(), 2, "asked again");
    // Recorded to 40 s only: the rest is asked again after the retry time.
    v.play_range(&mut server, 750, 31_000, 250);
    assert_eq!(v.fired_labels(), [0]);
    assert_eq!(server.fetches.len(), 2);
    server.recorded_to_ms = S + 60_000;
    v.now_ms += RETRY_MS;
    v.play(&mut server, 31_250);
    assert_eq!(
        server.fetches.last(),
        Some(&Fetch {
            from_ms: S + 40_000,
            to_ms: S + 60_000,
            snapshot: false
        })
    );
    v.play_range(&mut server, 31_500, 51_000, 250);
    assert_eq!(v.fired_labels(), [0, 1]);
    // The room ended at 70 s: nothing past it is asked for.
    server.end_ms = Some(S + 70_000);
    server.recorded_to_ms = S + 70_000;
    v.now_ms += RETRY_MS;
    v.play_range(&mut server, 51_250, 90_000, 250);
    // (The answer that told the end was asked for before it was known.)
    assert!(server.fetches.iter().all(|f| f.from_ms < S + 70_000));
    let fetches = server.fetches.len();
    v.now_ms += RETRY_MS;
    v.play_range(&mut server, 90_250, 200_000, 250);
    assert_eq!(server.fetches.len(), fetches);
}

#[test]
fn windows_past_the_limit_are_let_go_and_fetched_again_with_a_snapshot() {
    let mut server = busy_show();
    server.end_ms = Some(S + 600_000);
    server.recorded_to_ms = S + 600_000;
    let mut v = Viewer::new();
    opened(&mut v);
    v.play_range(&mut server, 0, 480_000, 1_000);
    assert!(v.r.windows.len() <= WINDOWS_MAX);
    assert!(!v.forgotten.is_empty(), "the first windows were let go");
    // Back to 30 s: its window is fetched again, with its snapshot.
    server.fetches.clear();
    v.seek(&mut server, 30_000);
    assert_eq!(
        server.fetches[0],
        Fetch {
            from_ms: S,
            to_ms: S + 60_000,
            snapshot: true
        }
    );
    assert_eq!(
        v.state()["poll"],
        index_of(&server, S + 30_000, Some("poll"))
    );
}

#[test]
fn comments_of_a_window_that_came_late_are_dropped_but_its_state_applies() {
    let mut server = Server::ended(
        vec![
            comment(S + 1_000),
            part(S + 2_000, "poll", None),
            comment(S + 5_000),
        ],
        S + 60_000,
    );
    let mut v = Viewer::new();
    opened(&mut v);
    server.fail_next = true;
    v.play(&mut server, 0); // the first fetch fails; the video plays on
    v.r.playhead(250, None);
    for at in (500..=5_500).step_by(250) {
        v.r.playhead(at, None);
    }
    v.now_ms = RETRY_MS;
    v.pump(&mut server);
    // At 5.5 s: the comment of 1 s is 4.5 s late (dropped), the one of 5 s shows.
    assert_eq!(v.fired_labels(), [1, 2]);
    assert_eq!(v.state()["poll"], 1);
}

#[test]
fn window_entries_past_the_limit_are_dropped() {
    let mut r = Replay::new();
    r.window_begin(
        WindowInfo {
            from_ms: S,
            to_ms: S + 60_000,
            started_ms: S,
            recorded_to_ms: S + 60_000,
            end_ms: Some(S + 60_000),
            live: false,
        },
        true,
    );
    assert!(r.window_snapshot_entry("poll").is_some());
    for _ in 1..WINDOW_EVENTS_MAX {
        assert!(r.window_event(S + 1, None, None).is_some());
    }
    assert_eq!(r.window_event(S + 2, None, None), None);
    r.window_end(0);
    assert_eq!(r.windows[0].items.len(), WINDOW_EVENTS_MAX - 1);
}

/// Seeded: random recordings (comments, parts, cued parts), dated or not, played with
/// random steps (rates), pauses, jitter and seeks while windows are fetched and let go.
/// After every report: the comments shown in this pass are exactly those due in
/// (pass start, playhead], once each, in order (so nothing skipped by a seek shows, and a
/// play-through shows everything once); and the state equals the state of a viewer who
/// played from the start to the playhead.
#[test]
fn random_seeks_pauses_and_rates_show_each_event_once_and_the_state_of_the_moment() {
    for seed in 0..30u64 {
        let mut rng = Rng::new(seed);
        let length_ms = 300_000 + rng.up_to(300_000);
        let dated = rng.up_to(1) == 1;
        let wall_at_zero = if dated { S + rng.up_to(10_000) } else { S };
        let keys = ["poll", "likes", "product"];
        let mut events = Vec::new();
        let mut cues: Vec<(String, u64)> = Vec::new();
        let mut at = S;
        while at < S + length_ms {
            at += rng.up_to(1_500);
            let mut e = comment(at);
            if rng.up_to(4) == 0 {
                e.key = Some(keys[rng.up_to(2) as usize].into());
                // A cued one, its cue from 1 s before to 3 s after it, never across a
                // window start (see the module documentation).
                let into_window = (at - S) % WINDOW_MS;
                let cueable =
                    (5_000..WINDOW_MS - 5_000).contains(&into_window) && at > wall_at_zero + 2_000;
                if rng.up_to(2) == 0 && cueable {
                    let cue = format!("cue-{}", events.len());
                    if rng.up_to(3) > 0 {
                        let cue_wall = at + rng.up_to(4_000) - 1_000;
                        cues.push((cue.clone(), cue_wall - wall_at_zero));
                    }
                    e.cue = Some(cue);
                }
            }
            events.push(e);
        }
        let end_ms = at + 1;
        let mut server = Server::ended(events, end_ms);
        let mut v = Viewer::new();
        opened(&mut v);
        for (cue, media_ms) in &cues {
            v.r.add_cue(&format!("v=1;cue={cue};ref=poll:p"), *media_ms);
        }
        // Each event's moment, as the model sees it: max(ts, its cue) when known.
        // A dated stream shows it no later than the live slack after it opened.
        let slack_ms = if dated {
            CUE_BEHIND_SLACK_MS
        } else {
            u64::MAX / 2
        };
        let due: Vec<u64> = server
            .events
            .iter()
            .map(|e| {
                let cue_ms = e.cue.as_ref().and_then(|c| {
                    cues.iter()
                        .find(|(id, _)| id == c)
                        .map(|(_, m)| wall_at_zero + m)
                });
                cue_ms
                    .filter(|c| *c <= e.ts_ms + CUE_WAIT_MS_MAX)
                    .map_or(e.ts_ms, |c| c.min(e.ts_ms + slack_ms).max(e.ts_ms))
            })
            .collect();
        let recording = server.events.clone();
        let model_state = |at_ms: u64| -> BTreeMap<String, usize> {
            let mut state = BTreeMap::new();
            for (i, e) in recording.iter().enumerate() {
                if let (Some(key), true) = (&e.key, due[i] <= at_ms) {
                    state.insert(key.clone(), i);
                }
            }
            state
        };
        let media_end = end_ms - wall_at_zero + 2_000;
        let mut media_ms = rng.up_to(5_000);
        let mut pass_from: Option<u64> = None;
        let mut position = 0;
        let mut fired_in_pass = 0;
        for step in 0..2_500 {
            let mut seek = false;
            match rng.up_to(19) {
                0 => {
                    media_ms = rng.up_to(media_end);
                    seek = true;
                }
                1..=3 => {} // paused
                4 => media_ms = media_ms.saturating_sub(rng.up_to(PLAYHEAD_JITTER_MS_MAX)),
                _ => media_ms += rng.up_to(PLAYHEAD_JUMP_MS_MAX), // rates up to 8x
            }
            media_ms = media_ms.min(media_end);
            let wall = dated.then_some(wall_at_zero + media_ms);
            let fired_before = v.fired.len();
            if seek {
                v.r.seek(media_ms, wall);
            } else {
                v.r.playhead(media_ms, wall);
            }
            v.pump(&mut server);
            let now = wall_at_zero + media_ms;
            let new_pass = match (seek, pass_from) {
                (_, None) => Some(now.saturating_sub(PLAYHEAD_FIRST_SLACK_MS)),
                (true, _) => Some(now),
                _ if now < position && position - now <= PLAYHEAD_JITTER_MS_MAX => None,
                _ if now >= position && now - position <= PLAYHEAD_JUMP_MS_MAX => None,
                _ => Some(now),
            };
            if let Some(from) = new_pass {
                pass_from = Some(from);
                fired_in_pass = fired_before;
                position = now;
            }
            position = position.max(now);
            let from = pass_from.expect("set");
            let mut expected: Vec<usize> = (0..recording.len())
                .filter(|&i| recording[i].key.is_none() && due[i] > from && due[i] <= position)
                .collect();
            expected.sort_by_key(|&i| (due[i], i));
            let shown: Vec<usize> = v.fired[fired_in_pass..]
                .iter()
                .map(|(i, _)| *i)
                .filter(|&i| recording[i].key.is_none())
                .collect();
            assert_eq!(
                shown, expected,
                "seed {seed} step {step}: comments of this pass from {from} to {position} (media {media_ms}, seek {seek}), fetches {:?}",
                server.fetches
            );
            assert_eq!(
                v.state(),
                model_state(position),
                "seed {seed} step {step}: state at {position}"
            );
            assert!(v.r.windows.len() <= WINDOWS_MAX);
        }
    }
}

#[test]
fn a_viewer_hour_played_through_is_sixty_window_fetches() {
    let mut server = Server::ended(vec![comment(S + 1_000)], S + 3_600_000);
    let mut v = Viewer::new();
    opened(&mut v); // the SDK's one request for the recording's bounds
    v.play_range(&mut server, 0, 3_600_000, 250);
    assert_eq!(server.fetches.len(), 60);
    assert!(server.fetches.iter().skip(1).all(|f| !f.snapshot));
    assert_eq!(v.fired_labels(), [0]);
}

/// Each replay bound at the limit and one past it.
#[test]
fn replay_bounds_hold_at_the_limit_and_change_one_past() {
    // The next window is asked once the playhead is within CLIENT_REPLAY_PREFETCH_MS of
    // it, not a millisecond before.
    let mut server = Server::ended(vec![], S + 120_000);
    let mut v = Viewer::new();
    opened(&mut v);
    v.play_range(&mut server, 0, WINDOW_MS - PREFETCH_MS, 250);
    assert_eq!(server.fetches.len(), 1);
    v.play(&mut server, WINDOW_MS - PREFETCH_MS + 1);
    assert_eq!(server.fetches.len(), 2);

    // A comment CLIENT_REPLAY_LATE_MS_MAX behind the playhead when its window came shows;
    // one a millisecond older does not.
    let mut server = Server::ended(vec![comment(S + 999), comment(S + 1_000)], S + 60_000);
    server.fail_next = true;
    let mut v = Viewer::new();
    opened(&mut v);
    v.play(&mut server, 0);
    v.play_range(&mut server, 250, 1_000 + LATE_MS_MAX, 250);
    assert!(v.fired.is_empty());
    v.now_ms = RETRY_MS;
    v.pump(&mut server);
    assert_eq!(v.fired_labels(), [1]);

    // A cue CLIENT_REPLAY_CUE_WAIT_MS_MAX after the event holds it; one more does not.
    for (cue_after_ms, due_ms) in [
        (CUE_WAIT_MS_MAX, 5_000 + CUE_WAIT_MS_MAX),
        (CUE_WAIT_MS_MAX + 1, 5_000),
    ] {
        let mut server = Server::ended(vec![part(S + 5_000, "poll", Some("c"))], S + 120_000);
        let mut v = Viewer::new();
        opened(&mut v);
        v.r.add_cue("v=1;cue=c;ref=poll:p", 5_000 + cue_after_ms);
        v.play_range(&mut server, 0, 70_000, 250);
        assert_eq!(v.fired, [(0, S + due_ms)], "cue {cue_after_ms} ms after");
    }
}
