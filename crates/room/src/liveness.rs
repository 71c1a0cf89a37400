//! A socket's lifetime and signs of life, shared by the room's and the shards' sockets:
//! a new socket must send `Hello` within `HELLO_DEADLINE_MS`; at the end of its lifetime
//! a socket gets a `GoAway`, and is closed `GOAWAY_GRACE_MS` later; a socket silent for
//! `STALE_SOCKET_MS` (a room may set it shorter for tests) is closed as stale.

use crate::ConnectionId;
use ovation_proto::limits::{
    GOAWAY_GRACE_MS, HELLO_DEADLINE_MS, USER_SOCKETS_PER_ROOM_MAX,
    USER_SOCKET_REPLACEABLE_SILENCE_MS,
};
use ovation_proto::CloseCode;

#[derive(Debug)]
pub(crate) struct Liveness {
    expires_at_ms: u64,
    goaway_sent_at_ms: Option<u64>,
    last_seen_ms: u64,
    /// Set until the socket's `Hello` arrives: past it the socket is closed.
    hello_by_ms: Option<u64>,
    /// Silence after which the socket is stale (`STALE_SOCKET_MS` unless overridden).
    stale_ms: u64,
}

/// What a sweep found due, by connection.
#[derive(Debug, Default)]
pub(crate) struct Due {
    /// Lifetime over: send `GoAway` (already marked as sent).
    pub expired: Vec<ConnectionId>,
    /// `GoAway` sent a grace period ago: close as going away.
    pub overdue: Vec<ConnectionId>,
    /// No sign of life: close as stale.
    pub stale: Vec<ConnectionId>,
    /// No `Hello` within `HELLO_DEADLINE_MS` of opening: close.
    pub no_hello: Vec<ConnectionId>,
}

impl Liveness {
    /// A socket that just opened: it owes its `Hello` by `now_ms + HELLO_DEADLINE_MS`.
    pub(crate) fn opened(expires_at_ms: u64, now_ms: u64, stale_ms: u64) -> Liveness {
        Liveness {
            hello_by_ms: Some(now_ms + HELLO_DEADLINE_MS),
            ..Liveness::reattached(expires_at_ms, now_ms, stale_ms)
        }
    }

    /// A socket re-registered after hibernation: it said `Hello` long ago.
    pub(crate) fn reattached(expires_at_ms: u64, now_ms: u64, stale_ms: u64) -> Liveness {
        Liveness {
            expires_at_ms,
            goaway_sent_at_ms: None,
            last_seen_ms: now_ms,
            hello_by_ms: None,
            stale_ms,
        }
    }

    /// The socket's `Hello` arrived: no deadline for it any more.
    pub(crate) fn hello(&mut self) {
        self.hello_by_ms = None;
    }

    /// A sign of life at `at_ms` (never moves back).
    pub(crate) fn seen(&mut self, at_ms: u64) {
        self.last_seen_ms = self.last_seen_ms.max(at_ms);
    }

    /// The next moment a sweep has something to do for this socket.
    pub(crate) fn deadline(&self) -> u64 {
        let lifetime = match self.goaway_sent_at_ms {
            None => self.expires_at_ms,
            Some(at) => at + GOAWAY_GRACE_MS,
        };
        let deadline = lifetime.min(self.last_seen_ms + self.stale_ms);
        self.hello_by_ms.map_or(deadline, |at| deadline.min(at))
    }
}

/// The room's and a shard's rule for a user's new socket when the room (`full`) or the
/// user's own sockets (`held`) are at their cap: it takes the place of one of theirs long
/// silent (gone without a close: a reconnect after a network drop), which the caller
/// closes (`Ok(Some(gone))`); else it is refused with the cap's code. Under both caps:
/// `Ok(None)`.
pub(crate) fn place_at_caps(
    full: bool,
    held: &[(ConnectionId, &Liveness)],
    now_ms: u64,
) -> Result<Option<ConnectionId>, CloseCode> {
    if !full && held.len() < USER_SOCKETS_PER_ROOM_MAX {
        return Ok(None);
    }
    match replaceable(held.iter().copied(), now_ms) {
        Some(gone) => Ok(Some(gone)),
        None if full => Err(CloseCode::RoomFull),
        None => Err(CloseCode::TooManySockets),
    }
}

/// Of a user's sockets at the per-user cap, the one a new socket may replace at `now_ms`:
/// the longest silent, if silent at least `USER_SOCKET_REPLACEABLE_SILENCE_MS`.
pub(crate) fn replaceable<'a>(
    sockets: impl Iterator<Item = (ConnectionId, &'a Liveness)>,
    now_ms: u64,
) -> Option<ConnectionId> {
    sockets
        .filter(|(_, l)| l.last_seen_ms + USER_SOCKET_REPLACEABLE_SILENCE_MS <= now_ms)
        .min_by_key(|(_, l)| l.last_seen_ms)
        .map(|(id, _)| id)
}

/// When the next sweep has something to do: a lower bound on every socket's
/// `deadline`, kept without a pass over the sockets. A deadline only moves later between
/// sweeps (signs of life, a `Hello`), except a new socket's, which is added; so a sweep
/// is due at this moment or later, and the object's timer query stays O(1) however many
/// sockets it holds (it was a pass over every socket per event: a join storm of N sockets
/// cost N² steps).
#[derive(Debug, Default)]
pub(crate) struct SweepClock {
    at_ms: Option<u64>,
}

impl SweepClock {
    /// A socket's deadline that may be earlier than the others' (a new socket).
    pub(crate) fn add(&mut self, liveness: &Liveness) {
        let deadline = liveness.deadline();
        self.at_ms = Some(self.at_ms.map_or(deadline, |at| at.min(deadline)));
    }

    /// When the host must call the object's `handle_timeout` for its sockets, if ever.
    pub(crate) fn next_ms(&self) -> Option<u64> {
        self.at_ms
    }

    /// Whether a socket's liveness has something due at `now_ms`.
    pub(crate) fn is_due(&self, now_ms: u64) -> bool {
        self.at_ms.is_some_and(|at| at <= now_ms)
    }

    /// Sweeps when due (`sweep`), keeping the next sweep's moment; nothing when not.
    pub(crate) fn sweep_if_due<'a>(
        &mut self,
        sockets: impl Iterator<Item = (ConnectionId, &'a mut Liveness)>,
        now_ms: u64,
    ) -> Due {
        if !self.is_due(now_ms) {
            return Due::default();
        }
        let (due, next_ms) = sweep(sockets, now_ms);
        self.at_ms = next_ms;
        due
    }
}

/// Sorts the due sockets; expired ones are marked as told (`GoAway` goes out now). A
/// socket is in at most one list that closes it (`no_hello` first). Also returns the
/// earliest deadline after this sweep (of every socket passed, the closed ones included:
/// an early bound only costs a sweep).
fn sweep<'a>(
    sockets: impl Iterator<Item = (ConnectionId, &'a mut Liveness)>,
    now_ms: u64,
) -> (Due, Option<u64>) {
    let mut due = Due::default();
    let mut next_ms: Option<u64> = None;
    for (id, liveness) in sockets {
        if liveness.hello_by_ms.is_some_and(|at| at <= now_ms) {
            due.no_hello.push(id);
            continue;
        }
        match liveness.goaway_sent_at_ms {
            None if liveness.expires_at_ms <= now_ms => {
                liveness.goaway_sent_at_ms = Some(now_ms);
                due.expired.push(id);
            }
            Some(at) if at + GOAWAY_GRACE_MS <= now_ms => due.overdue.push(id),
            _ => {}
        }
        if liveness.last_seen_ms + liveness.stale_ms <= now_ms {
            due.stale.push(id);
        }
        let deadline = liveness.deadline();
        next_ms = Some(next_ms.map_or(deadline, |next| next.min(deadline)));
    }
    (due, next_ms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ovation_proto::limits::STALE_SOCKET_MS;

    /// The clock answers without a pass over the sockets, sweeps only when something is
    /// due, and after a sweep knows the next moment (a Hello deadline, then a lifetime).
    #[test]
    fn the_sweep_clock_sweeps_only_when_due_and_knows_the_next_deadline() {
        let mut clock = SweepClock::default();
        assert_eq!(clock.next_ms(), None, "no sockets: no sweep");
        let lifetime_ms = 10 * HELLO_DEADLINE_MS;
        let mut sockets: Vec<(ConnectionId, Liveness)> = (0..3)
            .map(|id| {
                (
                    id,
                    Liveness::opened(lifetime_ms, id * 1_000, STALE_SOCKET_MS),
                )
            })
            .collect();
        for (_, liveness) in &sockets {
            clock.add(liveness);
        }
        assert_eq!(clock.next_ms(), Some(HELLO_DEADLINE_MS));
        let untouched = std::iter::from_fn(|| -> Option<(ConnectionId, &mut Liveness)> {
            panic!("a sweep before anything is due walked the sockets")
        });
        let due = clock.sweep_if_due(untouched, HELLO_DEADLINE_MS - 1);
        assert!(due.no_hello.is_empty());
        // Sockets 1 and 2 said Hello; socket 0 did not and is due at its deadline.
        for (_, liveness) in &mut sockets[1..] {
            liveness.hello();
        }
        let due = clock.sweep_if_due(
            sockets.iter_mut().map(|(id, l)| (*id, l)),
            HELLO_DEADLINE_MS,
        );
        assert_eq!(due.no_hello, [0]);
        sockets.remove(0);
        // The next sweep is their lifetime (before being stale), not sooner.
        let next = clock.next_ms().expect("sockets remain");
        assert!(next > HELLO_DEADLINE_MS, "{next}");
        let due = clock.sweep_if_due(sockets.iter_mut().map(|(id, l)| (*id, l)), lifetime_ms);
        assert_eq!(due.expired, [1, 2]);
    }
}
