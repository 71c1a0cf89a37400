//! Actions: acknowledged once, retried under the same id, refused with stable codes; likes
//! coalesced, re-sent, reported when lost (`actions.rs`).

use super::*;

#[test]
fn actions_are_acknowledged_retried_under_the_same_id_and_end_exactly_once() {
    let (mut c, socket) = open_client(0);
    let id = c.comment("hello", 0).unwrap();
    let first = sent_frames(&transmits(&mut c));
    assert_eq!(first.len(), 1);
    // The socket dies before the Ack; on the next socket the same frame goes again.
    let (socket, at) = reconnect_resumed(&mut c, socket, 10);
    let again = sent_frames(&transmits(&mut c));
    assert!(again.contains(&first[0]), "retried with the same client id");
    let ack = Event::Ack {
        client_id: id,
        seq: Some(11),
    };
    c.handle_socket_message(socket, &batch(vec![ack.clone(), ack], at), at);
    let done: Vec<ClientEvent> = events(&mut c)
        .into_iter()
        .filter(|e| matches!(e, ClientEvent::Done { .. }))
        .collect();
    assert_eq!(
        done,
        vec![ClientEvent::Done {
            id,
            seq: Some(11),
            error: None
        }]
    );
    assert_eq!(c.actions_pending(), 0);
    // An action without an answer times out, once.
    let id = c.comment("lost", at).unwrap();
    c.handle_timeout(at + CLIENT_ACTION_TIMEOUT_MS);
    let ends: Vec<ClientEvent> = events(&mut c);
    assert!(matches!(
        &ends[..],
        [ClientEvent::Done { id: i, error: Some(e), .. }] if *i == id && e.code.as_str() == "timeout"
    ));
}

/// An action made while the session reconnects and not sent before its timeout (no socket
/// opened all the while) ends `not_sent`: `timeout` says it may have been applied, and an
/// app would not send it again, so it was lost. One sent and unanswered still ends
/// `timeout`.
#[test]
fn an_action_never_sent_ends_not_sent_and_one_sent_ends_timeout() {
    let (mut c, socket) = open_client(0);
    let sent = c.comment("sent", 0).unwrap();
    c.handle_socket_closed(socket, 1006, "", 10);
    let unsent = c.comment("never sent", 10).unwrap();
    c.handle_timeout(10 + CLIENT_ACTION_TIMEOUT_MS);
    let ends: Vec<(u64, String)> = events(&mut c)
        .into_iter()
        .filter_map(|e| match e {
            ClientEvent::Done {
                id, error: Some(e), ..
            } => Some((id, e.code.as_str().to_owned())),
            _ => None,
        })
        .collect();
    assert_eq!(
        ends,
        vec![(sent, "timeout".into()), (unsent, "not_sent".into())]
    );
}

/// A question resent on the next socket (its ack lost with the first) and refused there
/// for the rate (a big room's shard that had not yet seen the room acknowledge the first
/// copy) may have been applied: it is sent again under its id after the wait, never told
/// as `rate_limited` (the app would ask again, and the question be asked twice). A first
/// send refused for the rate is told at once, as before.
#[test]
fn a_resent_action_refused_for_the_rate_is_sent_again_not_told_refused() {
    let (mut c, socket) = open_client(0);
    let refused = |client_id| Event::Error {
        client_id: Some(client_id),
        code: ErrorCode::RateLimited,
        message: "slow down".into(),
        retry_after_ms: 700,
    };
    // A first send refused: told at once.
    let fresh = c.ask("first?", 0).unwrap();
    transmits(&mut c);
    c.handle_socket_message(socket, &batch(vec![refused(fresh)], 5), 5);
    assert!(events(&mut c).iter().any(|e| matches!(e,
        ClientEvent::Done { id, error: Some(err), .. }
            if *id == fresh && err.code.as_str() == "rate_limited")));

    let id = c.ask("anyone?", 10).unwrap();
    let first = sent_frames(&transmits(&mut c));
    let (socket, at) = reconnect_resumed(&mut c, socket, 20);
    assert!(sent_frames(&transmits(&mut c)).contains(&first[0]));
    c.handle_socket_message(socket, &batch(vec![refused(id)], at), at);
    assert!(
        !events(&mut c)
            .iter()
            .any(|e| matches!(e, ClientEvent::Done { .. })),
        "not told refused"
    );
    assert_eq!(c.actions_pending(), 1);
    let resent = |c: &mut Client| {
        let frames = sent_frames(&transmits(c));
        frames.iter().filter(|f| **f == first[0]).count()
    };
    c.handle_timeout(at + 699);
    assert_eq!(resent(&mut c), 0, "waits as told");
    c.handle_timeout(at + 700);
    assert_eq!(resent(&mut c), 1, "again, under the same id");
    let ack = Event::Ack {
        client_id: id,
        seq: None,
    };
    c.handle_socket_message(socket, &batch(vec![ack], at + 710), at + 710);
    assert!(events(&mut c).contains(&ClientEvent::Done {
        id,
        seq: None,
        error: None
    }));
    assert_eq!(c.actions_pending(), 0);

    // Several resent and refused together go again one wait apart, not all at once (each
    // time refused together again, the room would close the socket for too many frames).
    let now = at + 1_000;
    let ids: Vec<u64> = (0..3)
        .map(|i| c.ask(&format!("q{i}"), now).unwrap())
        .collect();
    let frames = sent_frames(&transmits(&mut c));
    let (socket, at) = reconnect_resumed(&mut c, socket, now);
    transmits(&mut c);
    let refusals: Vec<Event> = ids.iter().map(|&id| refused(id)).collect();
    c.handle_socket_message(socket, &batch(refusals, at), at);
    let mut resent_at = Vec::new();
    for t in (at..at + 3_000).step_by(50) {
        c.handle_timeout(t);
        let sent = sent_frames(&transmits(&mut c));
        resent_at.extend(sent.iter().filter(|f| frames.contains(f)).map(|_| t - at));
    }
    assert_eq!(resent_at, vec![700, 1_400, 2_100], "one wait apart");

    // A wait past the action's timeout (a slow mode's): told at once, as before.
    let late = c.ask("much later?", at + 3_000).unwrap();
    transmits(&mut c);
    let (socket, at) = reconnect_resumed(&mut c, socket, at + 3_000);
    events(&mut c);
    let long = Event::Error {
        client_id: Some(late),
        code: ErrorCode::RateLimited,
        message: "slow mode".into(),
        retry_after_ms: CLIENT_ACTION_TIMEOUT_MS as u32,
    };
    c.handle_socket_message(socket, &batch(vec![long], at), at);
    assert!(events(&mut c).iter().any(|e| matches!(e,
        ClientEvent::Done { id, error: Some(err), .. }
            if *id == late && err.code.as_str() == "rate_limited")));
}

/// The room ended and opened anew while the session reconnected: what the session had
/// not seen answered was for the opening that ended, so it ends at the new Welcome and
/// is never sent to the new opening (a vote for the old `p1` counted in the new `p1`,
/// a comment shown in the next show). Sent ones end `closed` (they may have been
/// applied), ones never sent `room_ended`.
#[test]
fn actions_of_an_opening_that_ended_are_never_sent_to_the_next_one() {
    let (mut c, socket) = open_client(0);
    let voted = c.vote("p1", 1, 0).unwrap();
    assert_eq!(sent_frames(&transmits(&mut c)).len(), 1);
    c.handle_socket_closed(socket, 1006, "", 10);
    let commented = c.comment("still there?", 20).unwrap();
    let at = c.poll_timeout().unwrap();
    c.handle_timeout(at);
    let socket = opened_socket(&transmits(&mut c));
    c.handle_socket_open(socket, at);
    c.handle_socket_message(socket, &batch(vec![welcome(6, 0, false)], at), at);
    let sent = sent_frames(&transmits(&mut c));
    assert!(
        !sent
            .iter()
            .any(|f| matches!(f, ClientFrame::Vote { .. } | ClientFrame::Comment { .. })),
        "sent to the new opening: {sent:?}"
    );
    let ended: Vec<(u64, String)> = events(&mut c)
        .into_iter()
        .filter_map(|e| match e {
            ClientEvent::Done {
                id,
                error: Some(error),
                ..
            } => Some((id, error.code.as_str().to_owned())),
            _ => None,
        })
        .collect();
    assert_eq!(
        ended,
        [(voted, "closed".into()), (commented, "room_ended".into())]
    );
    assert_eq!(c.actions_pending(), 0);
    // The same opening (a resume) still sends what is pending again: see
    // `actions_are_acknowledged_retried_under_the_same_id_and_end_exactly_once`.
}

#[test]
fn bad_input_is_refused_with_stable_codes() {
    let (mut c, _) = open_client(0);
    let long = "x".repeat(COMMENT_BYTES_MAX + 1);
    assert_eq!(c.comment(&long, 0).unwrap_err().code.as_str(), "too_long");
    assert_eq!(c.comment("  ", 0).unwrap_err().code.as_str(), "invalid");
    // The room's codes for a question: empty is `invalid`, one byte past the bound
    // `too_long`.
    assert_eq!(c.ask("   ", 0).unwrap_err().code.as_str(), "invalid");
    let question = "q".repeat(QA_QUESTION_BYTES_MAX + 1);
    assert_eq!(c.ask(&question, 0).unwrap_err().code.as_str(), "too_long");
    assert_eq!(c.direct("", "{}", 0).unwrap_err().code.as_str(), "invalid");
    assert_eq!(
        c.gift("g1", "rose", 0, 0).unwrap_err().code.as_str(),
        "invalid"
    );
    for i in 0..CLIENT_ACTIONS_PENDING_MAX {
        c.comment(&format!("c{i}"), 0).unwrap();
    }
    assert_eq!(
        c.comment("one more", 0).unwrap_err().code.as_str(),
        "too_many"
    );
    c.close();
    assert_eq!(c.comment("after", 0).unwrap_err().code.as_str(), "closed");
    let closed: usize = events(&mut c)
        .iter()
        .filter(|e| matches!(e, ClientEvent::Done { error: Some(e), .. } if e.code.as_str() == "closed"))
        .count();
    assert_eq!(closed, CLIENT_ACTIONS_PENDING_MAX);
    assert_eq!(c.status(), Status::Closed);
    assert_eq!(c.poll_timeout(), None);
}

#[test]
fn likes_are_coalesced_into_one_frame_per_period_within_the_room_rate() {
    let (mut c, _) = open_client(0);
    let likes = |c: &mut Client| -> Vec<u32> {
        sent_frames(&transmits(c))
            .into_iter()
            .filter_map(|f| match f {
                ClientFrame::Like { count, .. } => Some(count),
                _ => None,
            })
            .collect()
    };
    // The first tap goes at once; taps within the next period ride together.
    c.like(1, 0);
    c.handle_timeout(0);
    assert_eq!(likes(&mut c), vec![1]);
    for t in 1..10 {
        c.like(1, t * 10);
        c.handle_timeout(t * 10);
    }
    assert_eq!(likes(&mut c), Vec::<u32>::new());
    c.handle_timeout(CLIENT_LIKE_FLUSH_MS);
    assert_eq!(likes(&mut c), vec![9]);
    // A flood: never more than the room's bucket allows.
    let mut now = 1_000;
    let mut sent = 0;
    c.like(5_000, now);
    while now < 3_000 {
        c.handle_timeout(now);
        for f in sent_frames(&transmits(&mut c)) {
            if let ClientFrame::Like { count, .. } = f {
                sent += count;
            }
        }
        now += 50;
    }
    let allowed = LIKES_BURST + 2 * LIKES_RATE_PER_S;
    assert!(
        sent <= allowed,
        "{sent} likes sent, the room allows {allowed}"
    );
    assert!(sent >= allowed - LIKES_RATE_PER_S);
}

#[test]
fn a_like_frame_refused_for_the_rate_is_sent_again_not_dropped() {
    let (mut c, socket) = open_client(0);
    assert_eq!(c.like(5, 0), 5);
    c.handle_timeout(0);
    let frames = like_frames(&transmits(&mut c));
    assert_eq!(frames.len(), 1);
    let (client_id, count) = frames[0];
    assert_eq!(count, 5);
    // Jitter brought the frame to the room early: refused, the room counted none of it.
    let refusal = Event::Error {
        client_id: Some(client_id),
        code: ErrorCode::RateLimited,
        message: "at most 20 likes per second".into(),
        retry_after_ms: 120,
    };
    c.handle_socket_message(socket, &batch(vec![refusal], 10), 10);
    assert_eq!(likes_dropped(&events(&mut c)), vec![]);
    // Not before the room's bucket has them again; then all five, in a new frame.
    let mut resent = Vec::new();
    let mut now = 10;
    while now < 3_000 {
        if c.poll_timeout().is_some_and(|t| t <= now) {
            c.handle_timeout(now);
        }
        for (id, count) in like_frames(&transmits(&mut c)) {
            assert!(
                now >= 10 + 120,
                "resent at {now} ms, before the room's wait"
            );
            resent.push((id, count));
        }
        now += 5;
    }
    assert_eq!(resent.iter().map(|(_, n)| n).sum::<u32>(), 5, "{resent:?}");
    assert!(resent.iter().all(|(id, _)| *id != client_id), "a new frame");
    assert_eq!(likes_dropped(&events(&mut c)), vec![]);
}

#[test]
fn likes_spaced_under_the_room_rate_leave_room_for_jitter() {
    // A flood: 10 s of frames, each counted against the room's own bucket on arrival,
    // with the link's delay alternating 40 ms and 0 ms: every other frame arrives 40 ms
    // closer to the one before than it left. None is refused.
    let (mut c, _) = open_client(0);
    let mut room = TokenBucket::new_full(LIKES_RATE_PER_S, LIKES_BURST, 0);
    c.like(CLIENT_LIKES_PENDING_MAX, 0);
    let mut now = 0;
    let mut sent = 0;
    let mut delay_ms = 0;
    while now < 10_000 {
        if c.poll_timeout().is_some_and(|t| t <= now) {
            c.handle_timeout(now);
        }
        for (_, count) in like_frames(&transmits(&mut c)) {
            delay_ms = 40 - delay_ms;
            assert_eq!(
                room.take(count, now + delay_ms),
                Ok(()),
                "refused at {now} ms after {sent}"
            );
            sent += count;
        }
        now += 1;
    }
    assert!(
        sent >= LIKES_BURST + 9 * CLIENT_LIKES_RATE_PER_S,
        "only {sent} sent in 10 s"
    );
}

#[test]
fn likes_that_cannot_be_sent_are_reported_with_a_code() {
    // Over the queue.
    let (mut c, socket) = open_client(0);
    assert_eq!(
        c.like(CLIENT_LIKES_PENDING_MAX + 7, 0),
        CLIENT_LIKES_PENDING_MAX
    );
    assert_eq!(likes_dropped(&events(&mut c)), vec![(7, "too_many".into())]);
    assert_eq!(c.like(1, 0), 0);
    assert_eq!(likes_dropped(&events(&mut c)), vec![(1, "too_many".into())]);
    // A refusal other than the rate.
    c.handle_timeout(0);
    let (client_id, count) = like_frames(&transmits(&mut c))[0];
    let refusal = Event::Error {
        client_id: Some(client_id),
        code: ErrorCode::Muted,
        message: "muted".into(),
        retry_after_ms: 0,
    };
    c.handle_socket_message(socket, &batch(vec![refusal], 0), 0);
    assert_eq!(
        likes_dropped(&events(&mut c)),
        vec![(count, "muted".into())]
    );
    // Closed: the queue (never sent) and the frame in flight (sent, unanswered: it may
    // have counted) are told apart; later likes are reported too.
    c.handle_timeout(CLIENT_LIKE_FLUSH_MS);
    let in_flight: u32 = like_frames(&transmits(&mut c)).iter().map(|f| f.1).sum();
    assert!(in_flight > 0);
    c.close();
    assert_eq!(
        likes_dropped(&events(&mut c)),
        vec![
            (
                CLIENT_LIKES_PENDING_MAX - count - in_flight,
                "closed".into()
            ),
            (in_flight, "unconfirmed".into())
        ]
    );
    assert_eq!(c.like(3, 1_000), 0);
    assert_eq!(likes_dropped(&events(&mut c)), vec![(3, "closed".into())]);
    // The pull transport only receives.
    let mut p = client(TransportMode::Pull, 0);
    events(&mut p);
    assert_eq!(p.like(2, 0), 0);
    assert_eq!(
        likes_dropped(&events(&mut p)),
        vec![(2, "unsupported_transport".into())]
    );
}

#[test]
fn a_like_frame_without_an_answer_is_reported_as_a_timeout() {
    let (mut c, _) = open_client(0);
    c.like(4, 0);
    c.handle_timeout(0);
    assert_eq!(like_frames(&transmits(&mut c)).len(), 1);
    c.handle_timeout(CLIENT_ACTION_TIMEOUT_MS);
    assert_eq!(likes_dropped(&events(&mut c)), vec![(4, "timeout".into())]);
}
