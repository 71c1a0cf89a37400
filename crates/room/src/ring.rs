//! The action ring: sequenced actions (comments, reactions, gifts, system messages) kept
//! for resumes and pull clients, bounded by count and age, and known by their sender's
//! client id for retries (`seq_of`).

use super::*;

/// Sequenced actions kept for resumes and pull clients: the newest `RING_EVENTS_MAX`, none
/// older than `RING_AGE_MS_MAX`, and the last sequence number given. The room's own ring
/// and a shard's copy of it are both one of these.
///
/// Invariants: kept actions are in ascending `seq` order, every one at or below
/// `last_seq`; a number once given is never given again (a sharded room's sampled
/// comments take one and are not kept).
#[derive(Clone, Debug, Default)]
pub(crate) struct ActionRing {
    last_seq: u64,
    actions: VecDeque<Action>,
    /// The kept action each sender's client id names (`remember_client_id`), keyed by the
    /// client id and a hash of the sender (two users' ids alike are two actions): a retry is
    /// answered with its action's number while the ring keeps the action, even after its
    /// user's rate buckets, and the recent ids in them, were evicted (`seq_of`). Entries of
    /// actions no longer kept are found stale by `seq_of` and pruned once the map holds
    /// twice the ring (`RING_EVENTS_MAX`).
    seq_of_client_id: HashMap<(u64, u64), u64>,
    /// Which kept actions were not comments, remembered after they leave the ring
    /// (`check_comment` refuses them).
    not_comments: NotComments,
}

/// One bit per number, set for an action that is not a comment, over the newest
/// `NUMBER_KINDS_REMEMBERED_MAX` numbers: a reaction flood among comments costs a bit
/// each, not a number each. Stored a record per `NUMBERS_PER_KINDS_RECORD` numbers, so a
/// room object that hibernated or restarted still knows a gift from a comment.
#[derive(Clone, Debug, Default)]
pub(crate) struct NotComments {
    /// The number of the first word's lowest bit (a multiple of 64).
    first: u64,
    words: VecDeque<u64>,
    /// Records (`number / NUMBERS_PER_KINDS_RECORD`) changed since they were last
    /// stored: written once per pump, beside the meta that counts their actions.
    unstored: BTreeSet<u64>,
}

/// The numbers one stored record of kinds covers: 64 words, 512 bytes at most, so a
/// room remembering `NUMBER_KINDS_REMEMBERED_MAX` numbers reads 256 records at wake-up
/// and writes one (rarely two) a pump.
pub(crate) const NUMBERS_PER_KINDS_RECORD: u64 = 64 * 64;

impl NotComments {
    pub(crate) fn mark(&mut self, seq: u64) {
        if self.words.is_empty() {
            self.first = seq - seq % 64;
        }
        if seq < self.first || self.contains(seq) {
            return; // older than what is remembered, or known
        }
        let word = usize::try_from((seq - self.first) / 64).expect("bounded below");
        while self.words.len() <= word {
            self.words.push_back(0);
        }
        self.words[word] |= 1 << (seq % 64);
        self.unstored.insert(seq / NUMBERS_PER_KINDS_RECORD);
        while self.words.len() as u64 * 64 > NUMBER_KINDS_REMEMBERED_MAX {
            self.words.pop_front();
            // The record the forgotten word was in is stored again (or deleted).
            self.unstored.insert(self.first / NUMBERS_PER_KINDS_RECORD);
            self.first += 64;
        }
    }

    /// Rebuilt from stored records (`take_unstored`), each record's 64 words by its index.
    pub(crate) fn restored(records: BTreeMap<u64, Vec<u64>>) -> NotComments {
        let mut kinds = NotComments::default();
        let Some(&first_record) = records.keys().next() else {
            return kinds;
        };
        kinds.first = first_record * NUMBERS_PER_KINDS_RECORD;
        for (record, words) in records {
            let at = usize::try_from((record - first_record) * 64).expect("bounded below");
            kinds.words.resize(at, 0);
            kinds.words.extend(words);
        }
        // The last record's words past the newest mark are its padding: trimmed by the
        // window with them, real words at the front went (the window is the newest
        // `NUMBER_KINDS_REMEMBERED_MAX` numbers up to the newest mark, as in memory).
        while kinds.words.back() == Some(&0) {
            kinds.words.pop_back();
        }
        while kinds.words.len() as u64 * 64 > NUMBER_KINDS_REMEMBERED_MAX {
            kinds.words.pop_front();
            kinds
                .unstored
                .insert(kinds.first / NUMBERS_PER_KINDS_RECORD);
            kinds.first += 64;
        }
        kinds
    }

    /// The storage writes for the records changed since the last call: each one's words
    /// (those forgotten read 0), or its deletion once it holds only forgotten numbers.
    pub(crate) fn take_unstored(&mut self) -> Vec<StorageOp> {
        std::mem::take(&mut self.unstored)
            .into_iter()
            .map(|record| {
                let start = record * NUMBERS_PER_KINDS_RECORD;
                if start + NUMBERS_PER_KINDS_RECORD <= self.first {
                    return StorageOp::delete_kinds(record);
                }
                let words: Vec<u64> = (0..64).map(|w| self.word_at(start + w * 64)).collect();
                StorageOp::put_kinds(record, &words)
            })
            .collect()
    }

    /// The word whose lowest bit is `number` (a multiple of 64); 0 where none is kept.
    fn word_at(&self, number: u64) -> u64 {
        number
            .checked_sub(self.first)
            .and_then(|offset| usize::try_from(offset / 64).ok())
            .and_then(|word| self.words.get(word))
            .copied()
            .unwrap_or(0)
    }

    /// Whether `seq` is remembered as not a comment's.
    pub(crate) fn contains(&self, seq: u64) -> bool {
        let Some(offset) = seq.checked_sub(self.first) else {
            return false;
        };
        usize::try_from(offset / 64)
            .ok()
            .and_then(|word| self.words.get(word))
            .is_some_and(|bits| bits & (1 << (seq % 64)) != 0)
    }
}

/// What a moderator's removal found (`ActionRing::remove_comment`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CommentRemoved {
    /// The comment was kept: taken out, and its stored record is deleted.
    Kept,
    /// Older than what the ring keeps: the removal goes to viewers and the recording.
    Older,
}

impl ActionRing {
    /// A ring read back from storage: the actions numbered up to `last_seq` (newer ones
    /// were never acknowledged), the newest `RING_EVENTS_MAX` of them.
    pub(crate) fn restored(
        last_seq: u64,
        actions: impl IntoIterator<Item = Action>,
        mut not_comments: NotComments,
    ) -> Self {
        let mut actions: VecDeque<Action> =
            actions.into_iter().filter(|a| a.seq <= last_seq).collect();
        actions.make_contiguous().sort_by_key(|a| a.seq);
        while actions.len() > RING_EVENTS_MAX {
            actions.pop_front();
        }
        // Rooms stored before the kinds were: their kept actions say it.
        for action in actions.iter().filter(|a| !a.body.is_comment()) {
            not_comments.mark(action.seq);
        }
        ActionRing {
            last_seq,
            actions,
            seq_of_client_id: HashMap::new(),
            not_comments,
        }
    }

    /// The sender's client id of the kept action `seq` (see `seq_of`).
    pub(crate) fn remember_client_id(&mut self, seq: u64, client_id: u64) {
        let Some(user) = self
            .actions
            .binary_search_by_key(&seq, |a| a.seq)
            .ok()
            .map(|at| user_hash(&self.actions[at].user))
        else {
            return; // not kept
        };
        if self.seq_of_client_id.len() >= 2 * RING_EVENTS_MAX {
            let first = self.actions.front().map_or(0, |a| a.seq);
            self.seq_of_client_id.retain(|_, seq| *seq >= first);
        }
        self.seq_of_client_id.insert((client_id, user), seq);
    }

    /// The number of the kept action `user` sent under `client_id`, if the ring holds it.
    pub(crate) fn seq_of(&self, user: &str, client_id: u64) -> Option<u64> {
        let seq = *self.seq_of_client_id.get(&(client_id, user_hash(user)))?;
        let at = self.actions.binary_search_by_key(&seq, |a| a.seq).ok()?;
        (self.actions[at].user == user).then_some(seq)
    }

    pub(crate) fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// The storage writes of the kinds remembered since the last call (`NotComments`).
    pub(crate) fn take_unstored_kinds(&mut self) -> Vec<StorageOp> {
        self.not_comments.take_unstored()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &Action> + '_ {
        self.actions.iter()
    }

    /// The next sequence number, taken.
    pub(crate) fn take_seq(&mut self) -> u64 {
        self.last_seq += 1;
        self.last_seq
    }

    /// Keeps an action numbered by `take_seq`; returns the oldest one the count bound
    /// pushes out.
    pub(crate) fn keep(&mut self, action: Action) -> Option<Action> {
        assert!(action.seq <= self.last_seq, "numbered by take_seq");
        assert!(self.actions.back().is_none_or(|last| last.seq < action.seq));
        if !action.body.is_comment() {
            self.not_comments.mark(action.seq);
        }
        self.actions.push_back(action);
        (self.actions.len() > RING_EVENTS_MAX).then(|| self.actions.pop_front().expect("full"))
    }

    /// A shard's copy: an action of the room's batch, in order; older ones change nothing.
    /// A removal takes the removed action out of the copy too.
    pub(crate) fn apply(&mut self, action: &Action) {
        if action.seq <= self.last_seq {
            return;
        }
        self.last_seq = action.seq;
        if let ActionBody::Removed { seq } = action.body {
            self.actions.retain(|a| a.seq != seq);
        }
        self.actions.push_back(action.clone());
        while self.actions.len() > RING_EVENTS_MAX {
            self.actions.pop_front();
        }
    }

    /// Lets go of actions older than `RING_AGE_MS_MAX`, telling `evicted` each one's seq.
    pub(crate) fn evict_old(&mut self, now_ms: u64, mut evicted: impl FnMut(u64)) {
        while let Some(front) = self.actions.front() {
            if front.ts_ms + RING_AGE_MS_MAX >= now_ms {
                break;
            }
            evicted(front.seq);
            self.actions.pop_front();
        }
    }

    /// Who wrote the kept action `seq`.
    pub(crate) fn author_of(&self, seq: u64) -> Option<&str> {
        self.actions
            .iter()
            .find(|a| a.seq == seq)
            .map(|a| a.user.as_str())
    }

    /// Whether a moderator may remove `seq`: a kept comment (`Kept`), or a number the
    /// ring no longer holds (`Older`: the room cannot tell what it was), or not at all.
    pub(crate) fn check_comment(&self, seq: u64) -> Result<CommentRemoved, &'static str> {
        if seq == 0 || seq > self.last_seq {
            return Err("no action has this number");
        }
        match self.actions.iter().find(|a| a.seq == seq) {
            Some(action) if action.body.is_comment() => Ok(CommentRemoved::Kept),
            Some(_) => Err("this action is not a comment"),
            None if self.actions.front().is_some_and(|a| a.seq < seq) => {
                // Between kept actions: removed already, or a comment shown to its sender
                // only (a big room's sampling), or a number never kept.
                Err("no such comment in the room's recent actions")
            }
            // A gift, reaction or system message that left the ring: never a removal's
            // (the viewers and the recording would drop it, a paid gift among them).
            None if self.not_comments.contains(seq) => Err("this action is not a comment"),
            None => Ok(CommentRemoved::Older),
        }
    }

    /// A moderator's removal of `seq` (see `check_comment`): a kept comment is taken out.
    pub(crate) fn remove_comment(&mut self, seq: u64) -> Result<CommentRemoved, &'static str> {
        let removed = self.check_comment(seq)?;
        if removed == CommentRemoved::Kept {
            self.actions.retain(|a| a.seq != seq);
        }
        Ok(removed)
    }

    /// What a reader who has every action up to `cursor` missed that the ring no longer
    /// holds: `Gap` from the cursor to the first kept action (or to the next number).
    pub(crate) fn gap_after(&self, cursor: u64) -> Option<Event> {
        let cursor = cursor.min(self.last_seq);
        let first = self.actions.front().map_or(self.last_seq + 1, |a| a.seq);
        (cursor + 1 < first).then_some(Event::Gap {
            missed_after: cursor,
            resumed_from: first,
        })
    }

    /// The kept actions after `cursor`, oldest first.
    pub(crate) fn after(&self, cursor: u64) -> impl Iterator<Item = &Action> + '_ {
        self.actions.iter().filter(move |a| a.seq > cursor)
    }
}

/// FNV-1a of a user id: the client-id map's key part, checked against the kept action's
/// user on every lookup, so a collision only costs a retry's recognition.
fn user_hash(user: &str) -> u64 {
    user.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

impl Room {
    /// Actions after `since` still in the buffer (at most `PULL_EVENTS_MAX`), and whether
    /// some between `since` and the first returned were lost.
    pub fn actions_since(&mut self, since: u64, now_ms: u64) -> (Vec<Action>, bool) {
        self.evict_old_actions(now_ms);
        let gap = self.ring.gap_after(since).is_some();
        let actions = self
            .ring
            .after(since)
            .take(PULL_EVENTS_MAX)
            .cloned()
            .collect();
        (actions, gap)
    }

    /// Where a pull read goes on from after `actions_since(since)` answered `actions` and
    /// `gap`: the last action it returned; past a gap that left nothing to return, the
    /// room's last number, so that what was missed is told once (the next read from
    /// `since` found the same gap again, and its reader was told an empty gap every
    /// poll); else `since`, never past the last number.
    pub fn pull_cursor(&self, since: u64, actions: &[Action], gap: bool) -> u64 {
        match actions.last() {
            Some(action) => action.seq,
            None if gap => self.last_seq(),
            None => since.min(self.last_seq()),
        }
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
        // A reaction's kind is free text shown to everyone (the overlay floats it): a
        // mute and the word filter hold for it as for a comment.
        if let ActionBody::Comment { text: speech } | ActionBody::Reaction { kind: speech } = &body
        {
            if let Err(refusal) = self.check_speech(identity, speech, now_ms) {
                match refusal.code {
                    ErrorCode::Muted => self.stats.muted_refused += 1,
                    _ => self.stats.filtered_refused += 1,
                }
                return Err(refusal);
            }
        }
        // A sharded room samples comments instead of refusing them (after the checks).
        let sampling = body.is_comment() && self.shards.is_sharded();
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
        let is_comment = body.is_comment();
        let bucket = match body {
            ActionBody::Reaction { .. } => &mut buckets.reactions,
            _ => &mut buckets.comments,
        };
        bucket.take(1, now_ms).map_err(Refusal::slow_down)?;
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
        if is_comment && (identity.role.is_staff() || identity.user == self.info.host_user) {
            let forgotten =
                self.moderation
                    .remember_staff_comment(seq, &identity.user, identity.role);
            let record = StorageOp::put_staff_comment(seq, &identity.user, identity.role);
            self.outputs.push_back(Output::Store(record));
            if let Some(forgotten) = forgotten {
                let delete = StorageOp::delete_staff_comment(forgotten);
                self.outputs.push_back(Output::Store(delete));
            }
        }
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
        let seq = self.ring.take_seq();
        self.actions_allowance.spend(1, now_ms);
        let action = Action {
            seq,
            ts_ms: now_ms,
            user: user.to_owned(),
            name: name.to_owned(),
            body,
        };
        self.outputs
            .push_back(Output::Store(StorageOp::put_action(&action, client_id)));
        if let Some(old) = self.ring.keep(action.clone()) {
            self.outputs
                .push_back(Output::Store(StorageOp::delete_action(old.seq)));
        }
        if let Some(client_id) = client_id {
            self.ring.remember_client_id(seq, client_id);
        }
        self.evict_old_actions(now_ms);
        self.meta_dirty = true;
        self.broadcast(Event::Action(action), now_ms);
        seq
    }

    pub(crate) fn evict_old_actions(&mut self, now_ms: u64) {
        let outputs = &mut self.outputs;
        self.ring.evict_old(now_ms, |seq| {
            outputs.push_back(Output::Store(StorageOp::delete_action(seq)));
        });
    }
}
