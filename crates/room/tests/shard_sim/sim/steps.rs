//! One random step of the simulation (viewers act, connect, leave; the shard count grows),
//! shard crashes and room restarts, running what is due, draining, and the checks at the
//! end of a run.

use super::*;
/// How often (percent) a batch up is lost on its way to the room, and how often the
/// room's answer to it is.
const UP_LOSS_PERCENT: u64 = 4;

impl Sim {
    pub(super) fn step(&mut self) {
        self.now_ms += 1 + self.rng.below(20);
        let viewer = self.rng.below(self.viewers.len() as u64) as usize;
        let live = self.viewers[viewer]
            .session
            .as_ref()
            .is_some_and(|s| s.welcomed);
        match self.rng.below(100) {
            0..=14 if self.viewers[viewer].session.is_none() => self.connect(viewer),
            15..=17 if self.viewers[viewer].session.is_some() => {
                let session = self.viewers[viewer].session.as_ref().unwrap();
                let (shard, connection) = (usize::from(session.shard), session.connection);
                if let Some(s) = self.shards[shard].as_mut() {
                    s.disconnect(connection, self.now_ms);
                }
                self.end_session(viewer);
                self.pump_shard(shard);
            }
            18..=39 if live => {
                let client_id = self.client_id(viewer);
                self.viewers[viewer].comments_pending.insert(client_id, ());
                let text = format!("c{client_id}");
                self.send_frame(viewer, ClientFrame::Comment { client_id, text });
            }
            40..=49 if live => {
                let client_id = self.client_id(viewer);
                self.likes_sent += 2;
                self.viewers[viewer].likes_pending.insert(client_id, 2);
                self.send_frame(
                    viewer,
                    ClientFrame::Like {
                        client_id,
                        count: 2,
                    },
                );
            }
            50..=64 if live && self.poll.is_some() => {
                let client_id = self.client_id(viewer);
                let poll_id = self.poll.clone().unwrap();
                self.viewers[viewer]
                    .votes_pending
                    .insert(client_id, poll_id.clone());
                let option = self.rng.below(3) as u8;
                let vote = ClientFrame::Vote {
                    client_id,
                    poll_id,
                    option,
                };
                // Sometimes twice at once (a double tap): counted once.
                if self.rng.chance(20) {
                    self.send_frame(viewer, vote.clone());
                }
                self.send_frame(viewer, vote);
            }
            65..=66 if self.poll.is_none() => {
                self.polls_opened += 1;
                let spec = PollSpec {
                    question: "which?".into(),
                    options: vec!["a".into(), "b".into(), "c".into()],
                    window_ms: Some(600_000),
                    tallies_public: false,
                    reveal_on_close: true,
                    cue: None,
                };
                let command = AdminCommand::Staff {
                    by: Identity {
                        user: "host".into(),
                        name: "Host".into(),
                        role: Role::Host,
                    },
                    command: StaffCommand::CreatePoll { spec },
                };
                let reply = self.room.admin(command, self.now_ms).expect("poll opens");
                let ovation_room::AdminReply::Poll { id, .. } = reply else {
                    panic!("a poll reply: {reply:?}");
                };
                self.poll = Some(id);
                self.voters.clear();
                self.pump_room();
            }
            67..=69 => {
                let to = self.viewers[viewer].user.clone();
                *self.directs_to.entry(to.clone()).or_default() += 1;
                let payload = format!("{{\"to\":\"{to}\"}}");
                let command = AdminCommand::Direct {
                    from_user: "host".into(),
                    to_user: to,
                    payload,
                };
                self.room.admin(command, self.now_ms).expect("direct");
                self.pump_room();
            }
            70 => self.crash_shard(),
            73..=74 => {
                // A delivery to a shard fails (the room does not retry; the shard sees the
                // hole in the numbering and asks for a snapshot).
                let index = self.rng.below(self.down.len() as u64) as usize;
                if self.down[index].queue.pop_back().is_some() {
                    self.losses += 1;
                    // The newest: the restored room's, unless all are the dead one's.
                    let left = self.down[index].queue.len();
                    if self.down_of_a_dead_room[index] > left {
                        self.down_of_a_dead_room[index] = left;
                    } else {
                        self.room.shard_batch_done(index as u16, self.now_ms);
                    }
                }
            }
            75..=76 => self.ban_or_unban(viewer),
            77..=81 if live => self.gift(viewer),
            71 if self.rng.chance(30) => self.restart_room(),
            72 if self.rng.chance(10) && self.room.shards() < self.shape.shards_max => {
                let shards = self.room.shards() + 1;
                let command = AdminCommand::SetShards { shards };
                self.room.admin(command, self.now_ms).expect("grows");
                self.grow_links();
                self.pump_room();
            }
            _ => {}
        }
        self.run_due();
        self.resend_gifts();
        self.run_due();
    }

    /// The host bans the viewer, or unbans them if banned: their sockets close with 4403
    /// and their shard refuses them until it learns the unban.
    pub(super) fn ban_or_unban(&mut self, viewer: usize) {
        self.bans_and_unbans += 1;
        let user = self.viewers[viewer].user.clone();
        let command = if self.banned.remove(&user) {
            StaffCommand::Unban { user }
        } else {
            self.banned.insert(user.clone());
            self.ever_banned.insert(user.clone());
            StaffCommand::Ban { user }
        };
        let by = Identity {
            user: "host".into(),
            name: "Host".into(),
            role: Role::Host,
        };
        let command = AdminCommand::Staff { by, command };
        self.room
            .admin(command, self.now_ms)
            .expect("the host bans and unbans");
        self.pump_room();
    }

    /// A shard loses its memory and its sockets, and restarts from what it stored. The
    /// room's batches to it are lost; its own batch already on its way still arrives,
    /// but the answer finds nobody (the restarted shard sends it again).
    fn crash_shard(&mut self) {
        self.crashes += 1;
        let index = self.rng.below(self.shards.len() as u64) as usize;
        let on_it: Vec<usize> = (0..self.viewers.len())
            .filter(|&v| {
                self.viewers[v]
                    .session
                    .as_ref()
                    .is_some_and(|s| usize::from(s.shard) == index)
            })
            .collect();
        for viewer in on_it {
            self.end_session(viewer);
        }
        let index_u16 = index as u16;
        let restarted = match &self.records[index] {
            Some(record) => Shard::restore(index_u16, record, self.now_ms).expect("its record"),
            None => Shard::new(index_u16, self.rng.next(), self.now_ms),
        };
        self.shards[index] = Some(restarted);
        // The batches on their way are lost: the room's host hears each failed (those of
        // the room that sent them, if it still runs).
        let dead = std::mem::take(&mut self.down_of_a_dead_room[index]);
        for _ in self.down[index].queue.drain(..).skip(dead) {
            self.room.shard_batch_done(index_u16, self.now_ms);
        }
        self.answers[index] = Link::new();
        self.up_sent_at_ms[index] = None;
    }

    /// The room object restarts from its storage (batches in flight to it are lost; its
    /// batches already sent still arrive).
    fn restart_room(&mut self) {
        self.crashes += 1;
        self.flushes_held += self.room.stats().shard_flushes_held;
        for (dead, link) in self.down_of_a_dead_room.iter_mut().zip(&self.down) {
            *dead = link.queue.len();
        }
        self.charges_lost_with_the_room();
        let records = self.store.clone().into_iter();
        self.room = Room::restore(records, self.now_ms)
            .expect("restores")
            .expect("exists");
        self.catalog_after_restore();
        self.down_sent_at_ms.fill(None);
        // Requests in flight to it fail: their shards hear so and send them again.
        for index in 0..self.up.len() {
            while let Some((_, (seq, _))) = self.up[index].queue.pop_front() {
                let at = self.now_ms + self.delay();
                self.answers[index].send(at, (seq, UpAnswer::Failed));
            }
        }
        // Votes in flight are lost with it: their senders never hear back.
        self.pump_room();
    }

    pub(super) fn run_due(&mut self) {
        for round in 0.. {
            assert!(
                round < 10_000,
                "no progress at {}: room {:?} shards {:?}",
                self.now_ms,
                self.room.poll_timeout(),
                self.shards
                    .iter()
                    .map(|s| s.as_ref().and_then(Shard::poll_timeout))
                    .collect::<Vec<_>>()
            );
            let mut progressed = false;
            for index in 0..self.shards.len() {
                while let Some((seq, bytes)) = self.up[index].due(self.now_ms) {
                    // Requests and answers get lost (the room object reset or
                    // overloaded): either way the shard hears `Failed`.
                    let answer = if self.rng.chance(UP_LOSS_PERCENT) {
                        self.losses += 1;
                        UpAnswer::Failed
                    } else {
                        self.room
                            .shard_up(&bytes, self.now_ms)
                            .expect("valid batch");
                        self.pump_room();
                        if self.rng.chance(UP_LOSS_PERCENT) {
                            self.losses += 1;
                            UpAnswer::Failed
                        } else {
                            UpAnswer::Applied
                        }
                    };
                    let at = self.now_ms + self.delay();
                    self.answers[index].send(at, (seq, answer));
                    progressed = true;
                }
                while let Some((seq, answer)) = self.answers[index].due(self.now_ms) {
                    if let Some(s) = self.shards[index].as_mut() {
                        s.up_answered(seq, answer, self.now_ms);
                    }
                    self.pump_shard(index);
                    progressed = true;
                }
                while let Some(bytes) = self.down[index].due(self.now_ms) {
                    if self.down_of_a_dead_room[index] > 0 {
                        self.down_of_a_dead_room[index] -= 1;
                    } else {
                        self.room.shard_batch_done(index as u16, self.now_ms);
                    }
                    if let Some(s) = self.shards[index].as_mut() {
                        s.handle_down(&bytes, self.now_ms).expect("valid batch");
                    }
                    self.pump_shard(index);
                    progressed = true;
                }
            }
            progressed |= self.answer_charges();
            if self.room.poll_timeout().is_some_and(|t| t <= self.now_ms) {
                self.room.handle_timeout(self.now_ms);
                self.pump_room();
                progressed = true;
            }
            for index in 0..self.shards.len() {
                let due = self.shards[index]
                    .as_ref()
                    .and_then(Shard::poll_timeout)
                    .is_some_and(|t| t <= self.now_ms);
                if due {
                    self.shards[index]
                        .as_mut()
                        .unwrap()
                        .handle_timeout(self.now_ms);
                    self.pump_shard(index);
                    progressed = true;
                }
            }
            if !progressed {
                return;
            }
        }
    }

    /// Lets every link and tick drain; a batch lost at the very end is noticed at the
    /// room's next online refresh (every `ONLINE_REFRESH_MS` it sends every shard one).
    fn settle(&mut self) {
        // Long enough for a stalled link (at most 3 s) and the batches held behind it.
        self.settling = true;
        for _ in 0..(2 * ONLINE_REFRESH_MS + 4_000) / TICK_MS + 20 {
            self.now_ms += TICK_MS;
            self.run_due();
        }
    }

    pub(super) fn check_end(&mut self, seed: u64) {
        self.settle();
        // Every like a viewer saw acknowledged is counted, and none twice, whatever was
        // lost or crashed on the way (the room never ends here).
        let counted = self.room.likes_total();
        let may_count = self.likes_sent - self.likes_refused;
        assert!(
            self.likes_acked <= counted && counted <= may_count,
            "seed {seed}: {counted} likes counted, {} acknowledged, {may_count} sent and not refused",
            self.likes_acked,
        );
        let ready: u32 = self
            .viewers
            .iter()
            .filter(|v| v.session.as_ref().is_some_and(|s| s.welcomed))
            .count() as u32;
        assert_eq!(self.room.online(), ready, "seed {seed}: online is the sum");
        if let Some((id, _, tallies)) = self.room.poll() {
            assert_eq!(Some(&id), self.poll.as_ref());
            let counted: u64 = tallies.iter().sum();
            assert!(
                counted >= self.voters.len() as u64,
                "seed {seed}: {counted} counted, {} acknowledged",
                self.voters.len()
            );
        }
        // Each user's shard refuses exactly the users the room bans now, and none of
        // them holds a session.
        let count = self.room.shards();
        for v in &self.viewers {
            let banned = self.banned.contains(&v.user);
            let shard = usize::from(shard_of(&v.user, count));
            let Some(s) = self.shards[shard].as_mut() else {
                continue;
            };
            let probe = u64::MAX - 1;
            let identity = Identity {
                user: v.user.clone(),
                name: v.user.clone(),
                role: Role::Viewer,
            };
            let refused = s.connect(probe, identity, CONNECTION_LIFETIME_MS_MIN, self.now_ms);
            if refused.is_ok() {
                s.disconnect(probe, self.now_ms);
            }
            assert_eq!(
                refused == Err(ovation_proto::CloseCode::Banned),
                banned,
                "seed {seed}: {} (banned: {banned}) on shard {shard}: {refused:?}",
                v.user
            );
            assert!(
                !banned || v.session.is_none(),
                "seed {seed}: banned {} still connected",
                v.user
            );
        }
        // Every acknowledged comment reached every session that was welcomed before it
        // and is still connected now.
        for v in &self.viewers {
            let Some(session) = v.session.as_ref().filter(|s| s.welcomed) else {
                continue;
            };
            for &seq in self.acked_comments.keys() {
                if seq >= session.welcomed_from {
                    assert!(
                        session.cursor >= seq,
                        "seed {seed}: {} missed comment {seq} (cursor {}) on shard {}",
                        v.user,
                        session.cursor,
                        session.shard
                    );
                }
            }
        }
    }
}
