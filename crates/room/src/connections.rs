//! The room's connections: connect and reattach, the per-user socket cap, disconnect and
//! close, liveness touches and the online count (the sockets themselves and the users'
//! rate buckets are the `Audience` sub-state).

use super::*;

#[derive(Debug)]
pub(crate) struct Connection {
    pub(crate) identity: Identity,
    /// Hello received (or the socket was reattached after hibernation).
    pub(crate) ready: bool,
    pub(crate) hello_seen: bool,
    /// Joined since the last online publication: gets the count at the next flush.
    pub(crate) needs_online: bool,
    /// Events for this connection alone (its Welcome, the answers to its frames, peer
    /// messages, ...); what every ready connection gets is in the room's `shared`.
    pub(crate) outbox: Vec<Event>,
    /// Actions left out of a full outbox this tick, first and last seq: the flush tells
    /// the connection of them with a `Gap` after the rest of its batch.
    pub(crate) outbox_dropped: Option<crate::flush::LeftOut>,
    /// Where this connection's part of the tick's broadcasts (`Room::shared`) starts: the
    /// ones before its `Hello` are in its Welcome.
    pub(crate) shared_from: usize,
    /// The last action number when its `Hello` was answered (what its Welcome holds): a
    /// `Gap` of the broadcasts for actions up to it is not told to it.
    pub(crate) hello_seq: u64,
    pub(crate) liveness: liveness::Liveness,
    pub(crate) frames: crate::audience::FrameRate,
    /// Set for a frame forwarded by a shard: (shard, the shard's connection id).
    pub(crate) remote: Option<(u16, u64)>,
}

impl Member for Connection {
    fn identity(&self) -> &Identity {
        &self.identity
    }
}

pub(crate) fn conn_needs_online(room: &mut Room, connection: ConnectionId) {
    room.connections
        .get_mut(&connection)
        .expect("live connection")
        .needs_online = true;
}

impl Room {
    /// Sockets that completed their `Hello` on the room itself plus every shard's count
    /// (a shard counts the same way): a socket that never says `Hello` is not a viewer.
    pub fn online(&self) -> u32 {
        let local = u32::try_from(self.ready_local).expect("bounded");
        local + self.shards.online.values().sum::<u32>()
    }

    /// Sockets on the room itself (not the short-lived entries of forwarded frames).
    pub(crate) fn local_connections(&self) -> usize {
        self.connections.len() - self.shards.remote.len()
    }

    pub fn connection_ids(&self) -> impl Iterator<Item = ConnectionId> + '_ {
        self.connections
            .iter()
            .filter(|(_, c)| c.remote.is_none())
            .map(|(id, _)| *id)
    }

    pub fn connections_of(&self, user: &str) -> impl Iterator<Item = ConnectionId> + '_ {
        self.connections.of_user(user)
    }

    /// Sets the silence after which the room's sockets registered from now on are stale
    /// (the `OVATION_STALE_SOCKET_MS` override of tests and staging), within
    /// `STALE_SOCKET_OVERRIDE_MS_MIN..=STALE_SOCKET_MS`.
    pub fn set_stale_socket_ms(&mut self, stale_ms: u64) {
        self.stale_socket_ms = stale_ms.clamp(STALE_SOCKET_OVERRIDE_MS_MIN, STALE_SOCKET_MS);
    }

    /// Registers a new socket. The client must send `Hello` first.
    pub fn connect(
        &mut self,
        connection: ConnectionId,
        identity: Identity,
        lifetime_ms: u64,
        now_ms: u64,
    ) -> Result<(), CloseCode> {
        assert!(
            !self.connections.contains_key(&connection),
            "host reused connection id {connection}"
        );
        assert!(connection < sharding::REMOTE_CONNECTION_ID_MIN);
        if self.status == RoomStatus::Ended {
            self.log_refusal(Some(connection), Some(&identity.user), "room_ended", "");
            return Err(CloseCode::RoomEnded);
        }
        if self.moderation.is_banned(&identity.user) {
            self.log_refusal(Some(connection), Some(&identity.user), "banned", "");
            return Err(CloseCode::Banned);
        }
        // The room's own bound on a user's upgrades (the Worker's limiter is per isolate:
        // a flood spread over many can still reach here). Not logged: a flood of
        // refusals would be a flood of log lines.
        if self
            .buckets(&identity.user, now_ms)
            .connects
            .take(1, now_ms)
            .is_err()
        {
            self.stats.connects_rate_limited += 1;
            return Err(CloseCode::ConnectRateLimited);
        }
        // Before the room cap can be reached by one token: the excess is refused, the
        // user's open sockets keep working; only one of theirs long silent (gone without
        // a close) gives its place to the new one. So does a full room: a viewer whose
        // network dropped gets back in by its own dead socket's place.
        let full = self.local_connections() >= CONNECTIONS_PER_ROOM_MAX;
        let (placed, held) = {
            let held: Vec<(ConnectionId, &liveness::Liveness)> = self
                .connections_of(&identity.user)
                .map(|id| (id, &self.connections[&id]))
                .filter(|(_, conn)| conn.remote.is_none())
                .map(|(id, conn)| (id, &conn.liveness))
                .collect();
            (liveness::place_at_caps(full, &held, now_ms), held.len())
        };
        match placed {
            Ok(None) => {}
            Ok(Some(gone)) => {
                let detail = "silent; replaced by a new socket of its user".to_owned();
                self.close(gone, CloseCode::Stale, detail, now_ms);
            }
            Err(code) => {
                let detail = format!("{held} sockets open");
                self.log_refusal(
                    Some(connection),
                    Some(&identity.user),
                    code.reason(),
                    &detail,
                );
                return Err(code);
            }
        }
        let expires_at_ms = now_ms + lifetime_ms;
        self.insert_connection(connection, identity, expires_at_ms, false, None, now_ms);
        self.stats.connections_total += 1;
        Ok(())
    }

    /// Re-registers a socket that survived hibernation. `hello_heard`: the host recorded
    /// its `Hello` (`hello_heard` after the frame); one that had not said it owes it
    /// within `HELLO_DEADLINE_MS` from now, as a new socket does, so a socket left
    /// half-open across a hibernation cannot hold its place for its whole lifetime. A
    /// socket of a user banned meanwhile, or of a room that ended, is closed with that
    /// code: the close the ban or the end queued may never have left (the object
    /// stopped after storing it), and a restored room must not serve such a socket.
    pub fn reattach(
        &mut self,
        connection: ConnectionId,
        identity: Identity,
        expires_at_ms: u64,
        hello_heard: bool,
        now_ms: u64,
    ) {
        assert!(!self.connections.contains_key(&connection));
        let refusal = if self.status == RoomStatus::Ended {
            Some(CloseCode::RoomEnded)
        } else if self.moderation.is_banned(&identity.user) {
            Some(CloseCode::Banned)
        } else {
            None
        };
        self.insert_connection(
            connection,
            identity,
            expires_at_ms,
            hello_heard,
            None,
            now_ms,
        );
        if let Some(code) = refusal {
            let detail = "found on a socket kept across a restart".to_owned();
            self.close(connection, code, detail, now_ms);
        }
    }

    /// Whether this socket's `Hello` was heard: the host records it with the socket, so
    /// that `reattach` after hibernation knows whether one is still owed.
    pub fn hello_heard(&self, connection: ConnectionId) -> bool {
        self.connections
            .get(&connection)
            .is_some_and(|c| c.ready && c.remote.is_none())
    }

    /// `ready`: the socket needs no `Hello` (reattached after hibernation, or a shard's
    /// forwarded frames, `remote`); a new socket owes one within `HELLO_DEADLINE_MS`.
    pub(crate) fn insert_connection(
        &mut self,
        connection: ConnectionId,
        identity: Identity,
        expires_at_ms: u64,
        ready: bool,
        remote: Option<(u16, u64)>,
        now_ms: u64,
    ) {
        if ready && remote.is_none() {
            self.ready_local += 1;
        }
        let liveness = if ready {
            liveness::Liveness::reattached(expires_at_ms, now_ms, self.stale_socket_ms)
        } else {
            liveness::Liveness::opened(expires_at_ms, now_ms, self.stale_socket_ms)
        };
        if remote.is_none() {
            self.sweep_clock.add(&liveness);
        }
        self.connections.insert(
            connection,
            Connection {
                identity,
                ready,
                hello_seen: false,
                needs_online: false,
                outbox: Vec::new(),
                outbox_dropped: None,
                shared_from: self.shared.len(),
                hello_seq: 0,
                liveness,
                frames: crate::audience::FrameRate::new(now_ms),
                remote,
            },
        );
        self.schedule_tick(now_ms);
    }

    /// The socket closed (by the client or the network).
    pub fn disconnect(&mut self, connection: ConnectionId, now_ms: u64) {
        if self.remove_connection(connection).is_some() {
            self.schedule_tick(now_ms);
        }
    }

    pub(crate) fn remove_connection(&mut self, connection: ConnectionId) -> Option<Connection> {
        let conn = self.connections.remove(connection)?;
        match conn.remote {
            Some(remote) => {
                self.shards.remote.remove(&remote);
            }
            None if conn.ready => self.ready_local -= 1,
            None => {}
        }
        Some(conn)
    }

    pub(crate) fn close(
        &mut self,
        connection: ConnectionId,
        code: CloseCode,
        detail: String,
        now_ms: u64,
    ) {
        if let Some(conn) = self.remove_connection(connection) {
            if conn.remote.is_some() {
                return; // the shard closes its own sockets (see `close_user`)
            }
            *self
                .stats
                .closed_by_reason
                .entry(code.reason().to_owned())
                .or_default() += 1;
            if code != CloseCode::GoingAway {
                self.outputs.push_back(Output::Log(LogRecord {
                    event: "close",
                    connection: Some(connection),
                    user: Some(conn.identity.user),
                    code: code.reason(),
                    detail,
                }));
            }
            self.outputs.push_back(Output::Close { connection, code });
            self.schedule_tick(now_ms);
        }
    }

    /// Whether this user may read the room over HTTP now (`…/state`, `…/events`, parts
    /// and replay windows the room object answers: the pull transport): a banned user
    /// never (its sockets are refused too); a viewer within `USER_READS_PER_S` and
    /// `USER_READS_BURST`, so one token's many clients cannot keep the room busy
    /// answering; staff always. A banned user's reads take from the same rate: past it
    /// they are refused `rate_limited`, the cheaper answer, so a banned token's flood
    /// is held to the rate as anyone's.
    pub fn admit_read(&mut self, user: &str, role: Role, now_ms: u64) -> Result<(), ReadRefused> {
        let banned = self.moderation.is_banned(user);
        if role.is_staff() && !banned {
            return Ok(());
        }
        // Apart from the users' rate buckets: thousands of pull readers must not push out
        // the socket users' buckets (and their memory of client ids).
        let key = UserRoomKey {
            tenant: String::new(),
            room: String::new(),
            user: user.to_owned(),
        };
        let admitted = self.read_limiter.admit(&key, now_ms);
        if admitted.is_err() {
            self.stats.reads_rate_limited += 1;
        }
        // One room: no new rooms to give back (`answered` is the Worker's).
        admitted.map_err(|refused| ReadRefused::RateLimited {
            retry_after_ms: refused.retry_after_ms,
        })?;
        if banned {
            return Err(ReadRefused::Banned);
        }
        Ok(())
    }

    /// Notes a sign of life (e.g. the platform's heartbeat auto-response timestamp).
    pub fn touch(&mut self, connection: ConnectionId, at_ms: u64) {
        if let Some(conn) = self.connections.get_mut(&connection) {
            conn.liveness.seen(at_ms);
        }
    }
}
