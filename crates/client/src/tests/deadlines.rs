//! Every deadline of the core, each at its limit (connect, silence, like retry, clock
//! pings, fetches, admission checks, actions).

use super::*;

/// A socket that has not said Welcome is given up at `CLIENT_CONNECT_TIMEOUT_MS`, not a
/// millisecond before.
#[test]
fn a_socket_without_welcome_is_given_up_at_client_connect_timeout_ms() {
    let mut c = client(TransportMode::Ws, 0);
    opened_socket(&transmits(&mut c));
    c.handle_timeout(CLIENT_CONNECT_TIMEOUT_MS - 1);
    assert_eq!(closes(&transmits(&mut c)), Vec::<String>::new());
    c.handle_timeout(CLIENT_CONNECT_TIMEOUT_MS);
    assert_eq!(closes(&transmits(&mut c)), ["connect timeout"]);
}

/// An open socket silent for `CLIENT_SILENCE_MS_MAX` is replaced, not a millisecond
/// before.
#[test]
fn an_open_socket_silent_for_client_silence_ms_max_is_replaced() {
    let (mut c, _) = open_client(0);
    c.handle_timeout(CLIENT_SILENCE_MS_MAX - 1);
    assert_eq!(closes(&transmits(&mut c)), Vec::<String>::new());
    assert_eq!(c.status(), Status::Open);
    c.handle_timeout(CLIENT_SILENCE_MS_MAX);
    assert_eq!(closes(&transmits(&mut c)), ["silent too long"]);
    assert_ne!(c.status(), Status::Open);
}

/// When a like frame refused for the rate is sent again: after the room's wait, but
/// never later than `CLIENT_LIKE_RETRY_MS_MAX` (the room's bucket refills within it), so
/// an odd wait one past the limit or far past it does not hold the taps back.
#[test]
fn a_refused_like_frame_waits_at_most_client_like_retry_ms_max() {
    let resent_at = |retry_after_ms: u32| -> u64 {
        let (mut c, socket) = open_client(0);
        c.like(5, 0);
        c.handle_timeout(0);
        let (client_id, _) = like_frames(&transmits(&mut c))[0];
        let refusal = Event::Error {
            client_id: Some(client_id),
            code: ErrorCode::RateLimited,
            message: "slow down".into(),
            retry_after_ms,
        };
        c.handle_socket_message(socket, &batch(vec![refusal], 10), 10);
        let mut now = 10;
        loop {
            now += 1;
            // Heard from the room, so the socket is not given up for silence.
            c.handle_socket_text(socket, now);
            if c.poll_timeout().is_some_and(|t| t <= now) {
                c.handle_timeout(now);
            }
            if !like_frames(&transmits(&mut c)).is_empty() {
                return now;
            }
            assert!(now < 100_000, "never resent");
        }
    };
    let limit = u32::try_from(CLIENT_LIKE_RETRY_MS_MAX).unwrap();
    assert_eq!(resent_at(limit - 100), 10 + CLIENT_LIKE_RETRY_MS_MAX - 100);
    assert_eq!(resent_at(limit), 10 + CLIENT_LIKE_RETRY_MS_MAX);
    assert_eq!(resent_at(limit + 1), 10 + CLIENT_LIKE_RETRY_MS_MAX);
    assert_eq!(resent_at(60_000), 10 + CLIENT_LIKE_RETRY_MS_MAX);
}

/// A connection takes `CLIENT_CLOCK_BURST` clock samples one after another, then one per
/// `CLIENT_CLOCK_REFRESH_MS`; a ping without its pong is given up after
/// `CLIENT_PING_TIMEOUT_MS` (the next goes then), each not a millisecond before.
#[test]
fn clock_pings_come_in_a_burst_then_per_refresh_and_a_lost_one_times_out() {
    let (mut c, socket) = open_client(0);
    let mut burst = 0;
    loop {
        c.handle_timeout(0);
        let sent = pings(&transmits(&mut c));
        if sent.is_empty() {
            break;
        }
        assert_eq!(sent.len(), 1, "one ping in flight");
        burst += 1;
        let pong = Event::Pong {
            client_time_ms: sent[0],
            server_time_ms: 5,
        };
        c.handle_socket_message(socket, &batch(vec![pong], 5), 0);
    }
    assert_eq!(burst, CLIENT_CLOCK_BURST);
    c.handle_timeout(CLIENT_CLOCK_REFRESH_MS - 1);
    assert!(pings(&transmits(&mut c)).is_empty());
    c.handle_timeout(CLIENT_CLOCK_REFRESH_MS);
    assert_eq!(pings(&transmits(&mut c)), [CLIENT_CLOCK_REFRESH_MS]);
    // No pong: the ping is given up at CLIENT_PING_TIMEOUT_MS and the next one goes.
    let lost_at = CLIENT_CLOCK_REFRESH_MS + CLIENT_PING_TIMEOUT_MS;
    c.handle_socket_text(socket, lost_at - 1); // the socket itself is alive
    c.handle_timeout(lost_at - 1);
    assert!(pings(&transmits(&mut c)).is_empty());
    c.handle_timeout(lost_at);
    assert_eq!(pings(&transmits(&mut c)), [lost_at]);
}

/// A pull request without an answer for `CLIENT_FETCH_TIMEOUT_MS` counts as failed (and
/// is asked again), not a millisecond before.
#[test]
fn a_pull_request_without_an_answer_fails_at_client_fetch_timeout_ms() {
    let mut c = client(TransportMode::Pull, 0);
    assert_eq!(fetches(&transmits(&mut c)), [1]);
    c.handle_timeout(CLIENT_FETCH_TIMEOUT_MS - 1);
    assert!(fetches(&transmits(&mut c)).is_empty());
    assert_eq!(
        c.poll_timeout(),
        Some(CLIENT_FETCH_TIMEOUT_MS),
        "still waiting"
    );
    c.handle_timeout(CLIENT_FETCH_TIMEOUT_MS);
    let retry_at = c.poll_timeout().expect("asks again");
    assert!(retry_at > CLIENT_FETCH_TIMEOUT_MS, "given up: {retry_at}");
    c.handle_timeout(retry_at);
    assert_eq!(fetches(&transmits(&mut c)), [2]);
}

/// One admission check at a time: a check without an answer for
/// `CLIENT_ADMISSION_CHECK_TIMEOUT_MS` is replaced by the next failed upgrade's, one
/// failing a millisecond before is not.
#[test]
fn an_unanswered_admission_check_is_replaced_after_client_admission_check_timeout_ms() {
    for (failed_at, asks_again) in [
        (CLIENT_ADMISSION_CHECK_TIMEOUT_MS - 1, false),
        (CLIENT_ADMISSION_CHECK_TIMEOUT_MS, true),
    ] {
        let mut c = client(TransportMode::Ws, 0);
        let socket = opened_socket(&transmits(&mut c));
        c.handle_socket_closed(socket, 1006, "", 0);
        admission_check(&transmits(&mut c));
        let reopen_at = c.poll_timeout().unwrap();
        assert!(reopen_at < failed_at);
        c.handle_timeout(reopen_at);
        let again = opened_socket(&transmits(&mut c));
        c.handle_socket_closed(again, 1006, "", failed_at);
        let checks = transmits(&mut c)
            .iter()
            .filter(|t| matches!(t, Transmit::Fetch { .. }))
            .count();
        assert_eq!(checks, usize::from(asks_again), "failed at {failed_at}");
    }
}

/// An action without an answer fails with `timeout` at `CLIENT_ACTION_TIMEOUT_MS`, not a
/// millisecond before.
#[test]
fn an_unanswered_action_times_out_at_client_action_timeout_ms() {
    let (mut c, _) = open_client(0);
    let id = c.comment("lost", 0).unwrap();
    events(&mut c);
    c.handle_timeout(CLIENT_ACTION_TIMEOUT_MS - 1);
    assert!(events(&mut c).is_empty());
    assert_eq!(c.actions_pending(), 1);
    c.handle_timeout(CLIENT_ACTION_TIMEOUT_MS);
    let ends = events(&mut c);
    assert!(
        matches!(&ends[..], [ClientEvent::Done { id: i, error: Some(e), .. }]
            if *i == id && e.code.as_str() == "timeout"),
        "{ends:?}"
    );
}
