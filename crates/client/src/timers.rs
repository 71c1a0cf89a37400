//! The client's deadlines, one slot per [`Timer`] (after quinn-proto's `TimerTable`):
//! `poll_timeout` is the earliest armed slot, `handle_timeout` fires the expired ones in
//! [`Timer::ALL`] order.
//!
//! Every timer but [`Timer::Action`] belongs to one phase of the connection and is armed
//! only in it: leaving the phase stops it, so the earliest slot is always a deadline the
//! current phase acts on.

/// One deadline of the client; the order is the order `handle_timeout` fires them in.
#[derive(Clone, Copy, PartialEq, Eq)]
#[cfg_attr(test, derive(Debug))]
pub(crate) enum Timer {
    /// Any phase but closed: the oldest unacknowledged action ends with `timeout`
    /// (`CLIENT_ACTION_TIMEOUT_MS` after it was sent).
    Action,
    /// Waiting: the next socket opens (backoff, a GoAway's delay, the socket-cap wait).
    Reconnect,
    /// Connecting: a socket without Welcome is given up (`CLIENT_CONNECT_TIMEOUT_MS`).
    Connect,
    /// Open: the socket has been silent for `CLIENT_SILENCE_MS_MAX` and is replaced.
    Silence,
    /// Open: the next heartbeat text (`HEARTBEAT_INTERVAL_MS`).
    Heartbeat,
    /// Open: the next clock ping (a burst, then `CLIENT_CLOCK_REFRESH_MS`), or a ping
    /// given up for lost (`CLIENT_PING_TIMEOUT_MS`).
    Ping,
    /// Open: the next like frame (`CLIENT_LIKE_FLUSH_MS`, or the room's wait after a
    /// frame refused for the rate).
    LikeFlush,
    /// Open: actions resent after a reconnect and refused for the rate go again
    /// (`PendingAction::resent`).
    Resend,
    /// Pull: the oldest request in flight fails (`CLIENT_FETCH_TIMEOUT_MS`).
    Fetch,
    /// Pull: the next request (the pull interval, or a backoff after a failure).
    Poll,
}

const COUNT: usize = 10;

impl Timer {
    /// The timers of a socket's phases (connecting, open): stopped when the session
    /// leaves them (for the next socket, or for the pull transport).
    pub(crate) const SOCKET_PHASES: [Timer; 6] = [
        Timer::Connect,
        Timer::Silence,
        Timer::Heartbeat,
        Timer::Ping,
        Timer::LikeFlush,
        Timer::Resend,
    ];

    pub(crate) const ALL: [Timer; COUNT] = [
        Timer::Action,
        Timer::Reconnect,
        Timer::Connect,
        Timer::Silence,
        Timer::Heartbeat,
        Timer::Ping,
        Timer::LikeFlush,
        Timer::Resend,
        Timer::Fetch,
        Timer::Poll,
    ];
}

/// A stopped timer's time. A plain `u64` per slot rather than an `Option` (the wasm SDK's
/// size budget): no deadline is that late.
const NEVER: u64 = u64::MAX;

/// When each [`Timer`] fires (ms, the host's clock), [`NEVER`] when it is stopped.
#[derive(Clone)]
pub(crate) struct TimerTable {
    at_ms: [u64; COUNT],
}

impl Default for TimerTable {
    fn default() -> TimerTable {
        TimerTable {
            at_ms: [NEVER; COUNT],
        }
    }
}

impl TimerTable {
    pub(crate) fn set(&mut self, timer: Timer, at_ms: u64) {
        debug_assert!(at_ms != NEVER, "a deadline that never comes");
        self.at_ms[timer as usize] = at_ms;
    }

    /// Arms `timer` at `at_ms`, or stops it for `None`.
    pub(crate) fn set_or_stop(&mut self, timer: Timer, at_ms: Option<u64>) {
        self.at_ms[timer as usize] = at_ms.unwrap_or(NEVER);
    }

    pub(crate) fn stop(&mut self, timer: Timer) {
        self.at_ms[timer as usize] = NEVER;
    }

    pub(crate) fn get(&self, timer: Timer) -> Option<u64> {
        let at_ms = self.at_ms[timer as usize];
        (at_ms != NEVER).then_some(at_ms)
    }

    /// Stops every timer.
    pub(crate) fn clear(&mut self) {
        self.at_ms = [NEVER; COUNT];
    }

    /// The earliest armed timer's time.
    pub(crate) fn next_timeout(&self) -> Option<u64> {
        let at_ms = self.at_ms.iter().fold(NEVER, |a, &b| a.min(b));
        (at_ms != NEVER).then_some(at_ms)
    }

    /// Armed, and due at `now_ms` (a timer is due at its time, not a millisecond after).
    pub(crate) fn is_expired(&self, timer: Timer, now_ms: u64) -> bool {
        let at_ms = self.at_ms[timer as usize];
        at_ms != NEVER && at_ms <= now_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_timer_has_its_own_slot_in_firing_order() {
        for (index, timer) in Timer::ALL.into_iter().enumerate() {
            assert_eq!(timer as usize, index, "{timer:?}");
        }
        let mut table = TimerTable::default();
        for (index, timer) in Timer::ALL.into_iter().enumerate() {
            table.set(timer, 100 + index as u64);
        }
        for (index, timer) in Timer::ALL.into_iter().enumerate() {
            assert_eq!(table.get(timer), Some(100 + index as u64), "{timer:?}");
        }
    }

    #[test]
    fn next_timeout_is_the_earliest_armed_timer() {
        let mut table = TimerTable::default();
        assert_eq!(table.next_timeout(), None);
        table.set(Timer::Poll, 30);
        assert_eq!(table.next_timeout(), Some(30));
        table.set(Timer::Heartbeat, 10);
        table.set(Timer::Action, 20);
        assert_eq!(table.next_timeout(), Some(10));
        table.stop(Timer::Heartbeat);
        assert_eq!(table.next_timeout(), Some(20));
        assert_eq!(table.get(Timer::Heartbeat), None);
        // Set again: the new time replaces the old, earlier or later.
        table.set(Timer::Poll, 5);
        assert_eq!(table.next_timeout(), Some(5));
        table.set(Timer::Poll, 50);
        assert_eq!(table.next_timeout(), Some(20));
        table.set_or_stop(Timer::Action, None);
        assert_eq!(table.next_timeout(), Some(50));
        table.set_or_stop(Timer::Action, Some(0));
        assert_eq!(table.next_timeout(), Some(0));
        table.clear();
        assert_eq!(table.next_timeout(), None);
        assert!(Timer::ALL.into_iter().all(|t| table.get(t).is_none()));
    }

    #[test]
    fn a_timer_expires_at_its_time_not_a_millisecond_before() {
        let mut table = TimerTable::default();
        assert!(!table.is_expired(Timer::Connect, u64::MAX), "stopped");
        table.set(Timer::Connect, 1_000);
        assert!(!table.is_expired(Timer::Connect, 999));
        assert!(table.is_expired(Timer::Connect, 1_000));
        assert!(table.is_expired(Timer::Connect, 5_000));
        assert!(!table.is_expired(Timer::Silence, 5_000), "another slot");
        table.stop(Timer::Connect);
        assert!(!table.is_expired(Timer::Connect, 5_000));
    }
}
