//! A socket's lifetime and signs of life, shared by the room's and the shards' sockets:
//! at the end of its lifetime a socket gets a `GoAway`, and is closed `GOAWAY_GRACE_MS`
//! later; a socket silent for `STALE_SOCKET_MS` is closed as stale.

use crate::ConnectionId;
use ovation_proto::limits::{GOAWAY_GRACE_MS, STALE_SOCKET_MS};

#[derive(Debug)]
pub(crate) struct Liveness {
    expires_at_ms: u64,
    goaway_sent_at_ms: Option<u64>,
    last_seen_ms: u64,
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
}

impl Liveness {
    pub(crate) fn new(expires_at_ms: u64, now_ms: u64) -> Liveness {
        Liveness {
            expires_at_ms,
            goaway_sent_at_ms: None,
            last_seen_ms: now_ms,
        }
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
        lifetime.min(self.last_seen_ms + STALE_SOCKET_MS)
    }
}

/// Sorts the due sockets; expired ones are marked as told (`GoAway` goes out now).
pub(crate) fn sweep<'a>(
    sockets: impl Iterator<Item = (ConnectionId, &'a mut Liveness)>,
    now_ms: u64,
) -> Due {
    let mut due = Due::default();
    for (id, liveness) in sockets {
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
