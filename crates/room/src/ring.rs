//! The action ring: sequenced actions (comments, reactions, gifts, system messages) kept
//! for resumes and pull clients, bounded by count and age.

use super::*;

pub(crate) fn is_comment_body(body: &ActionBody) -> bool {
    matches!(body, ActionBody::Comment { .. })
}

impl Room {
    /// Actions after `since` still in the buffer (at most `PULL_EVENTS_MAX`), and whether
    /// some between `since` and the first returned were lost.
    pub fn actions_since(&mut self, since: u64, now_ms: u64) -> (Vec<Action>, bool) {
        self.evict_old_actions(now_ms);
        let gap = self
            .first_buffered_seq()
            .is_some_and(|first| since + 1 < first)
            || (self.ring.is_empty() && since < self.last_seq);
        let actions = self
            .ring
            .iter()
            .filter(|a| a.seq > since)
            .take(PULL_EVENTS_MAX)
            .cloned()
            .collect();
        (actions, gap)
    }

    pub(crate) fn user_action(
        &mut self,
        connection: ConnectionId,
        identity: &Identity,
        client_id: u64,
        body: ActionBody,
        now_ms: u64,
    ) -> Result<Option<u64>, Refusal> {
        let text = match &body {
            ActionBody::Comment { text } | ActionBody::System { text } => text,
            ActionBody::Reaction { kind } => kind,
            ActionBody::Gift { .. } | ActionBody::Removed { .. } => {
                unreachable!("gifts are charged and removals made by staff, not posted")
            }
        };
        if text.trim().is_empty() {
            return Err(Refusal::new(ErrorCode::Invalid, "empty"));
        }
        if let ActionBody::Comment { text } = &body {
            if let Err(refusal) = self.check_speech(identity, text, now_ms) {
                match refusal.code {
                    ErrorCode::Muted => self.stats.muted_refused += 1,
                    _ => self.stats.filtered_refused += 1,
                }
                return Err(refusal);
            }
        }
        // A sharded room samples comments instead of refusing them (after the checks).
        let sampling = is_comment_body(&body) && self.shards.is_sharded();
        if !sampling {
            let wait_ms = self
                .actions_allowance
                .wait_ms(1, now_ms)
                .expect("one action is within the burst");
            if wait_ms > 0 {
                let retry_after_ms = u32::try_from(wait_ms).expect("a token's wait is short");
                return Err(Refusal::retry_after(
                    ErrorCode::RateLimited,
                    "room busy",
                    retry_after_ms,
                ));
            }
        }
        let buckets = self.buckets(&identity.user, now_ms);
        let is_comment = matches!(body, ActionBody::Comment { .. });
        let bucket = match body {
            ActionBody::Reaction { .. } => &mut buckets.reactions,
            _ => &mut buckets.comments,
        };
        bucket
            .take(1, now_ms)
            .map_err(|wait| Refusal::retry_after(ErrorCode::RateLimited, "slow down", wait))?;
        if is_comment && !identity.role.is_staff() {
            self.moderation
                .slow_mode_take(&identity.user, now_ms)
                .map_err(|wait_ms| {
                    let wait_ms = u32::try_from(wait_ms).expect("bounded by SLOW_MODE_MS_MAX");
                    Refusal::retry_after(ErrorCode::RateLimited, "slow mode", wait_ms)
                })?;
        }
        if sampling && self.sample_out(identity) {
            let seq = self.sampled_comment(connection, identity, body, now_ms);
            return Ok(Some(seq));
        }
        let seq = self.push_action(
            &identity.user,
            &identity.name,
            body,
            Some(client_id),
            now_ms,
        );
        Ok(Some(seq))
    }

    /// Appends an action to the ring and broadcasts it. `client_id` is the sender's id for
    /// it (stored beside the action so retries stay deduplicated across restarts).
    pub(crate) fn push_action(
        &mut self,
        user: &str,
        name: &str,
        body: ActionBody,
        client_id: Option<u64>,
        now_ms: u64,
    ) -> u64 {
        self.last_seq += 1;
        self.actions_allowance.spend(1, now_ms);
        let action = Action {
            seq: self.last_seq,
            ts_ms: now_ms,
            user: user.to_owned(),
            name: name.to_owned(),
            body,
        };
        self.outputs
            .push_back(Output::Store(StorageOp::put_action(&action, client_id)));
        self.ring.push_back(action.clone());
        while self.ring.len() > RING_EVENTS_MAX {
            let old = self.ring.pop_front().expect("non-empty");
            self.outputs
                .push_back(Output::Store(StorageOp::delete_action(old.seq)));
        }
        self.evict_old_actions(now_ms);
        self.meta_dirty = true;
        self.broadcast(Event::Action(action), now_ms);
        self.last_seq
    }

    pub(crate) fn first_buffered_seq(&self) -> Option<u64> {
        self.ring.front().map(|a| a.seq)
    }

    pub(crate) fn evict_old_actions(&mut self, now_ms: u64) {
        while let Some(front) = self.ring.front() {
            if front.ts_ms + RING_AGE_MS_MAX >= now_ms {
                break;
            }
            let seq = front.seq;
            self.ring.pop_front();
            self.outputs
                .push_back(Output::Store(StorageOp::delete_action(seq)));
        }
    }
}
