//! A socket's lifetime and signs of life, shared by the room's and the shards' sockets:
//! a new socket must send `Hello` within `HELLO_DEADLINE_MS`; at the end of its lifetime
//! a socket gets a `GoAway`, and is closed `GOAWAY_GRACE_MS` later; a socket silent for
//! `STALE_SOCKET_MS` is closed as stale.

use crate::ConnectionId;
use ovation_proto::limits::{
    GOAWAY_GRACE_MS, HELLO_DEADLINE_MS, STALE_SOCKET_MS, USER_SOCKET_REPLACEABLE_SILENCE_MS,
};

#[derive(Debug)]
pub(crate) struct Liveness {
    expires_at_ms: u64,
    goaway_sent_at_ms: Option<u64>,
    last_seen_ms: u64,
    /// Set until the socket's `Hello` arrives: past it the socket is closed.
    hello_by_ms: Option<u64>,
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
    pub(crate) fn opened(expires_at_ms: u64, now_ms: u64) -> Liveness {
        Liveness {
            hello_by_ms: Some(now_ms + HELLO_DEADLINE_MS),
            ..Liveness::reattached(expires_at_ms, now_ms)
        }
    }

    /// A socket re-registered after hibernation: it said `Hello` long ago.
    pub(crate) fn reattached(expires_at_ms: u64, now_ms: u64) -> Liveness {
        Liveness {
            expires_at_ms,
            goaway_sent_at_ms: None,
            last_seen_ms: now_ms,
            hello_by_ms: None,
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
        let deadline = lifetime.min(self.last_seen_ms + STALE_SOCKET_MS);
        self.hello_by_ms.map_or(deadline, |at| deadline.min(at))
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

/// Sorts the due sockets; expired ones are marked as told (`GoAway` goes out now). A
/// socket is in at most one list that closes it (`no_hello` first).
pub(crate) fn sweep<'a>(
    sockets: impl Iterator<Item = (ConnectionId, &'a mut Liveness)>,
    now_ms: u64,
) -> Due {
    let mut due = Due::default();
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
        if liveness.last_seen_ms + STALE_SOCKET_MS <= now_ms {
            due.stale.push(id);
        }
    }
    due
}
