//! Polls: first votes count, reveal, limits, and seeded vote storms through lost acks,
//! duplicates and restarts (`polls.rs`).

use super::*;

#[test]
fn a_poll_counts_first_votes_shows_hosts_tallies_and_reveals_at_close() {
    let mut now = 0;
    let mut room = Room::create(info(), 1, now);
    join(&mut room, 1, "host", Role::Host, now);
    join(&mut room, 2, "ana", Role::Viewer, now);
    join(&mut room, 3, "bob", Role::Viewer, now);
    tick(&mut room, &mut now);
    let opened_ms = now;
    let AdminReply::Poll { id, phase, .. } = room
        .admin(
            as_host(StaffCommand::CreatePoll {
                spec: poll_spec(3, 20_000),
            }),
            now,
        )
        .unwrap()
    else {
        panic!("a poll reply");
    };
    assert_eq!((id.as_str(), phase), ("p1", PollPhase::Open));
    assert_eq!(
        room.admin(
            as_host(StaffCommand::CreatePoll {
                spec: poll_spec(3, 20_000)
            }),
            now
        ),
        Err(AdminError::PollOpen)
    );
    let out = tick(&mut room, &mut now);
    let seen = poll_part(&out.events[&2]).expect("viewers get the poll part");
    assert_eq!(seen["phase"], "open");
    assert_eq!(seen["cue"], "cue-7");
    assert_eq!(seen["closes_at_ms"], opened_ms + 20_000);
    assert!(
        seen.get("tallies").is_none(),
        "tallies are private to hosts"
    );

    room.handle_frame(2, &vote("p1", 1, 10), now);
    room.handle_frame(2, &vote("p1", 2, 11), now); // a second vote: acknowledged, not counted
    room.handle_frame(3, &vote("p1", 1, 12), now);
    room.handle_frame(3, &vote("p1", 9, 13), now); // no such option
    room.handle_frame(3, &vote("p0", 0, 14), now); // no such poll
    let out = tick(&mut room, &mut now);
    assert_eq!(room.poll().unwrap().2, &[0, 2, 0]);
    assert_eq!(
        error_codes(&out.events[&3]),
        [ErrorCode::Invalid, ErrorCode::NotFound]
    );
    assert!(error_codes(&out.events[&2]).is_empty());
    let host_tallies = out.events[&1].iter().find_map(|e| match e {
        Event::Direct { from, payload, .. } if from == "ovation" => {
            Some(serde_json::from_str::<serde_json::Value>(payload).unwrap())
        }
        _ => None,
    });
    let host_tallies = host_tallies.expect("the host gets live tallies");
    assert_eq!(host_tallies["tallies"], serde_json::json!([0, 2, 0]));
    assert!(
        !out.events[&2]
            .iter()
            .any(|e| matches!(e, Event::Direct { .. })),
        "viewers do not"
    );

    // A late joiner sees the open poll and when it closes.
    join(&mut room, 4, "cy", Role::Viewer, now);
    let out = tick(&mut room, &mut now);
    assert_eq!(poll_part(&out.events[&4]).unwrap()["phase"], "open");

    // The window closes on the room's own timer; the result goes out in that tick.
    let closes_at_ms = opened_ms + 20_000;
    assert!(
        room.poll_timeout().unwrap() <= closes_at_ms,
        "the room wakes for it"
    );
    now = closes_at_ms;
    room.handle_timeout(now);
    let out = tick(&mut room, &mut now);
    assert!(
        now - closes_at_ms <= 1_000,
        "published within a second of closing"
    );
    let result = poll_part(&out.events[&2]).expect("the result");
    assert_eq!(result["phase"], "result");
    assert_eq!(result["tallies"], serde_json::json!([0, 2, 0]));
    room.handle_frame(4, &vote("p1", 0, 20), now);
    let out = tick(&mut room, &mut now);
    assert_eq!(error_codes(&out.events[&4]), [ErrorCode::PollClosed]);
    assert_eq!(room.poll().unwrap().2, &[0, 2, 0]);
}

#[test]
fn a_poll_revealed_by_the_host_and_checked_limits() {
    let mut now = 0;
    let mut room = Room::create(info(), 1, now);
    join(&mut room, 1, "ana", Role::Viewer, now);
    let mut spec = poll_spec(2, 5_000);
    spec.reveal_on_close = false;
    spec.tallies_public = true;
    room.admin(as_host(StaffCommand::CreatePoll { spec }), now)
        .unwrap();
    room.handle_frame(1, &vote("p1", 0, 1), now);
    let out = tick(&mut room, &mut now);
    assert_eq!(
        poll_part(&out.events[&1]).unwrap()["tallies"],
        serde_json::json!([1, 0]),
        "public tallies reach viewers every tick"
    );
    room.admin(as_host(StaffCommand::ClosePoll { id: "p1".into() }), now)
        .unwrap();
    let out = tick(&mut room, &mut now);
    let closed = poll_part(&out.events[&1]).unwrap();
    assert_eq!(closed["phase"], "closed");
    room.admin(as_host(StaffCommand::RevealPoll { id: "p1".into() }), now)
        .unwrap();
    let out = tick(&mut room, &mut now);
    assert_eq!(poll_part(&out.events[&1]).unwrap()["phase"], "result");
    assert_eq!(
        room.admin(as_host(StaffCommand::ClosePoll { id: "p9".into() }), now),
        Err(AdminError::PollNotFound)
    );
    for bad in [poll_spec(1, 5_000), poll_spec(11, 5_000), poll_spec(2, 10)] {
        let refused = room.admin(as_host(StaffCommand::CreatePoll { spec: bad }), now);
        assert!(
            matches!(refused, Err(AdminError::InvalidPoll(_))),
            "{refused:?}"
        );
    }
    let mut long = poll_spec(2, 5_000);
    long.options[0] = "x".repeat(POLL_OPTION_BYTES_MAX + 1);
    assert!(room
        .admin(as_host(StaffCommand::CreatePoll { spec: long }), now)
        .is_err());
    // A second poll gets the next id; votes for the first are refused as not found.
    room.admin(
        as_host(StaffCommand::CreatePoll {
            spec: poll_spec(2, 5_000),
        }),
        now,
    )
    .unwrap();
    assert_eq!(room.poll().unwrap().0, "p2");
    let deleted = tick(&mut room, &mut now)
        .stores
        .contains(&StorageOp::Delete {
            key: "vote/p1/ana".into(),
        });
    assert!(
        deleted,
        "the older poll's stored votes are deleted at the next tick"
    );
}

/// A small deterministic generator for the seeded simulations below.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// N viewers; 70 % vote within one second of the poll opening, the rest spread over
/// the window. Acks are lost at random (the client retries under the same client id,
/// sometimes on a new connection), some voters vote twice, and the room restarts from
/// its stored records at random moments, losing every output after the crash. At the
/// close, the tallies must equal the distinct voters per option, and the result must be
/// published within one second.
///
/// The same storm runs against a quiz question (`Storm::Quiz`): answers are counted the
/// same way, and every answerer's score is the points of a correct answer or zero.
fn vote_storm(seed: u64, viewers: u64, storm: Storm) {
    let mut rng = Lcg(seed);
    let mut now = 0;
    let mut store: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut room = Room::create(info(), 9, now);
    let command = match storm {
        Storm::Poll => StaffCommand::CreatePoll {
            spec: poll_spec(4, 10_000),
        },
        Storm::Quiz => StaffCommand::CreateQuiz {
            spec: quiz_spec(&[(4, 2)], 10_000),
        },
    };
    room.admin(as_host(command), now).unwrap();
    if storm == Storm::Quiz {
        let next = StaffCommand::NextQuestion { id: "z1".into() };
        room.admin(as_host(next), now).unwrap();
    }
    let frame = |option: u8, client_id: u64| match storm {
        Storm::Poll => vote("p1", option, client_id),
        Storm::Quiz => answer("z1", 0, option, client_id),
    };
    apply(&drain(&mut room).stores, &mut store);
    // Each viewer: chosen option, the time it votes, whether its vote was acknowledged.
    let mut plan: Vec<(u8, u64, bool)> = (0..viewers)
        .map(|_| {
            let option = rng.below(4) as u8;
            // (Late votes leave a few ticks for retries of lost acks before the close.)
            let at = if rng.below(10) < 7 {
                rng.below(1_000)
            } else {
                rng.below(9_500)
            };
            (option, at, false)
        })
        .collect();
    let mut connection_of: Vec<Option<ConnectionId>> = vec![None; viewers as usize];
    let mut next_connection: ConnectionId = 1;
    let mut restarts = 0;
    while now + TICK_MS < 10_000 {
        now += TICK_MS;
        for (v, (option, at, acked)) in plan.iter_mut().enumerate() {
            if *acked || *at > now {
                continue;
            }
            let connection = match connection_of[v] {
                Some(c) if rng.below(20) != 0 => c,
                _ => {
                    // (Re)connect: a fresh connection resumes nothing but the vote.
                    let c = next_connection;
                    next_connection += 1;
                    join(&mut room, c, &format!("v{v}"), Role::Viewer, now);
                    connection_of[v] = Some(c);
                    c
                }
            };
            room.handle_frame(connection, &frame(*option, v as u64 + 1), now);
            if rng.below(25) == 0 {
                // A confused client votes again with another option and a new id.
                let other = (*option + 1) % 4;
                room.handle_frame(connection, &frame(other, v as u64 + 1_000_000), now);
            }
        }
        room.handle_timeout(now);
        let out = drain(&mut room);
        if rng.below(60) == 0 {
            // Crash: this tick's outputs are lost midway (stores before the cut applied).
            let cut = rng.below(out.stores.len() as u64 + 1) as usize;
            apply(&out.stores[..cut], &mut store);
            room = Room::restore(store.clone(), now).unwrap().unwrap();
            connection_of.iter_mut().for_each(|c| *c = None);
            restarts += 1;
            continue;
        }
        apply(&out.stores, &mut store);
        for (connection, events) in &out.events {
            for event in events {
                if let Event::Ack { client_id, .. } = event {
                    let v = (*client_id - 1) as usize;
                    if v < plan.len() && connection_of[v] == Some(*connection) && rng.below(8) != 0
                    {
                        plan[v].2 = true; // else the ack is lost and the client retries
                    }
                }
            }
        }
    }
    // Every viewer eventually got its ack before the close.
    assert!(
        plan.iter().all(|p| p.2),
        "seed {seed}: some vote never acknowledged"
    );
    let mut expected = [0u64; 4];
    for (option, _, _) in &plan {
        expected[usize::from(*option)] += 1;
    }
    if storm == Storm::Poll {
        let (_, phase, tallies) = room.poll().unwrap();
        assert_eq!(phase, PollPhase::Open, "seed {seed}: closes at 10 s");
        assert_eq!(tallies, expected, "seed {seed} ({restarts} restarts)");
    }
    let closes_at = 10_000; // opened at 0 with a 10 s window
    assert!(room.poll_timeout().unwrap() <= closes_at);
    join(&mut room, next_connection, "watcher", Role::Viewer, now);
    room.handle_timeout(closes_at);
    let mut at = closes_at;
    let out = tick(&mut room, &mut at);
    assert!(at - closes_at <= 1_000);
    let watcher = &out.events[&next_connection];
    match storm {
        Storm::Poll => {
            let result = poll_part(watcher).expect("the result part");
            assert_eq!(result["phase"], "result");
            assert_eq!(result["tallies"], serde_json::json!(expected));
            assert_eq!(result["votes"], viewers);
        }
        Storm::Quiz => {
            let result = part_value(watcher, "quiz").expect("the result part");
            assert_eq!(result["phase"], "result");
            assert_eq!(result["question"]["tallies"], serde_json::json!(expected));
            assert_eq!(result["participants"], viewers);
            for (v, (option, _, _)) in plan.iter().enumerate() {
                let score = room.quiz_score(&format!("v{v}")).expect("a participant");
                if *option == 2 {
                    assert!((QUIZ_POINTS_CORRECT..=1_000).contains(&score), "{score}");
                } else {
                    assert_eq!(score, 0, "seed {seed}: a wrong answer scores nothing");
                }
            }
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Storm {
    Poll,
    Quiz,
}

#[test]
fn vote_storms_count_exactly_through_lost_acks_duplicates_and_restarts() {
    let seeds: u64 = std::env::var("OVATION_SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(12);
    for seed in 0..seeds {
        vote_storm(seed, 300, Storm::Poll);
        vote_storm(seed + 1_000, 300, Storm::Quiz);
    }
}

#[test]
fn a_two_thousand_viewer_burst_is_counted_exactly() {
    vote_storm(2_000, 2_000, Storm::Poll);
    vote_storm(2_001, 2_000, Storm::Quiz);
}

#[test]
fn a_cue_id_takes_its_limit_and_is_refused_one_past_it() {
    let cue = |bytes: usize| {
        let mut spec = poll_spec(2, 5_000);
        spec.cue = Some("c".repeat(bytes));
        on_fresh_room(StaffCommand::CreatePoll { spec })
    };
    assert!(cue(CUE_ID_BYTES_MAX).is_ok());
    assert_eq!(cue(CUE_ID_BYTES_MAX + 1).unwrap_err().http_status(), 400);
}

/// A vote or quiz answer that arrives at or after its window's end, before the room's
/// timer has closed the window (the frame is handled first, or the room woke for it), is
/// refused `poll_closed` and counts nothing; one a millisecond before the end counts.
/// Before, only the phase was checked, and a late correct answer still scored.
#[test]
fn a_vote_or_answer_after_the_window_before_the_timer_runs_is_refused() {
    let mut now = 0;
    let mut room = Room::create(info(), 1, now);
    join(&mut room, 1, "host", Role::Host, now);
    for (id, user) in [(2, "ana"), (3, "bob"), (4, "cy"), (5, "dee")] {
        join(&mut room, id, user, Role::Viewer, now);
    }
    tick(&mut room, &mut now);
    let opened = now;
    room.admin(
        as_host(StaffCommand::CreatePoll {
            spec: poll_spec(2, 5_000),
        }),
        now,
    )
    .unwrap();
    tick(&mut room, &mut now);
    let closes_at_ms = opened + 5_000;
    room.handle_frame(2, &vote("p1", 0, 1), closes_at_ms - 1);
    room.handle_frame(3, &vote("p1", 1, 1), closes_at_ms);
    room.handle_frame(4, &vote("p1", 1, 1), closes_at_ms + 3_000);
    now = closes_at_ms + 3_000;
    let out = tick(&mut room, &mut now);
    assert!(error_codes(&out.events[&2]).is_empty());
    assert_eq!(error_codes(&out.events[&3]), [ErrorCode::PollClosed]);
    assert_eq!(error_codes(&out.events[&4]), [ErrorCode::PollClosed]);
    assert_eq!(room.poll().unwrap().2, &[1, 0], "only the vote in time");
    // The vote in time, sent again after the window (its acknowledgement was lost, and
    // the retry is not recognised by its frame id): acknowledged, counted once.
    room.handle_frame(2, &vote("p1", 0, 7), now);
    let out = tick(&mut room, &mut now);
    assert!(error_codes(&out.events[&2]).is_empty(), "the retry refused");
    assert_eq!(room.poll().unwrap().2, &[1, 0]);

    let create = serde_json::json!({"command": "create_quiz",
        "spec": {"title": "Trivia", "questions": [
            {"question": "2+2?", "options": ["3", "4"], "correct": 1, "window_ms": 10_000}]}});
    send_command(&mut room, 1, create, 1, now);
    tick(&mut room, &mut now);
    let next = serde_json::json!({"command": "next_question", "id": "z1"});
    send_command(&mut room, 1, next, 2, now);
    let opened = now;
    tick(&mut room, &mut now);
    let closes_at_ms = opened + 10_000;
    room.handle_frame(2, &answer("z1", 0, 1, 2), closes_at_ms - 1);
    room.handle_frame(5, &answer("z1", 0, 1, 2), closes_at_ms);
    now = closes_at_ms;
    let out = tick(&mut room, &mut now);
    assert!(error_codes(&out.events[&2]).is_empty());
    assert_eq!(error_codes(&out.events[&5]), [ErrorCode::PollClosed]);
    room.handle_timeout(now);
    tick(&mut room, &mut now);
    room.handle_frame(2, &answer("z1", 0, 1, 7), now);
    let out = tick(&mut room, &mut now);
    assert!(error_codes(&out.events[&2]).is_empty(), "the retry refused");
    assert_eq!(
        room.quiz_score("dee").unwrap_or(0),
        0,
        "the late answer scored"
    );
    assert!(room.quiz_score("ana").is_some_and(|score| score > 0));
}

/// A vote is stored when it arrives; the `poll` part with public tallies is published at
/// the tick after. A room restarted between the two publishes the tallies its stored votes
/// make at its next tick (it kept showing the old ones until another vote or the close).
#[test]
fn public_tallies_left_behind_by_a_crash_are_published_after_the_restore() {
    let mut now = 0;
    let mut store = BTreeMap::new();
    let mut room = Room::create(info(), 3, now);
    let spec = PollSpec {
        tallies_public: true,
        ..poll_spec(2, 60_000)
    };
    room.admin(as_host(StaffCommand::CreatePoll { spec }), now)
        .unwrap();
    join(&mut room, 2, "ana", Role::Viewer, now);
    tick_into(&mut room, &mut now, &mut store);
    let shown = |room: &Room| {
        let (_, value) = room.part("poll").expect("the poll part");
        serde_json::from_str::<serde_json::Value>(value).unwrap()["tallies"].clone()
    };
    assert_eq!(shown(&room), serde_json::json!([0, 0]));

    room.handle_frame(2, &vote("p1", 1, 1), now);
    // Killed before the tick: only what the vote wrote at once is stored.
    let before_tick = drain(&mut room);
    apply(&before_tick.stores, &mut store);
    let mut room = Room::restore(store.clone(), now).unwrap().unwrap();
    assert_eq!(room.poll().unwrap().2, &[0, 1], "the vote was stored");
    assert_eq!(shown(&room), serde_json::json!([0, 0]), "the part was not");
    apply(&drain(&mut room).stores, &mut store);
    let at = room.poll_timeout().expect("a tick is due");
    assert!(
        at <= now + TICK_MS,
        "a tick is due at once, not at the close ({at})"
    );
    now = at;
    room.handle_timeout(now);
    apply(&drain(&mut room).stores, &mut store);
    assert_eq!(room.poll().unwrap().1, PollPhase::Open);
    assert_eq!(shown(&room), serde_json::json!([0, 1]));

    // Restored again with nothing left behind: the part is not published again.
    let version = room.part("poll").unwrap().0;
    let mut room = Room::restore(store.clone(), now).unwrap().unwrap();
    assert_eq!(room.part("poll").unwrap().0, version, "stored at that tick");
    now += 10 * TICK_MS;
    room.handle_timeout(now);
    drain(&mut room);
    assert_eq!(room.part("poll").unwrap().0, version);
}
