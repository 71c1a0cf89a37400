//! The sockets of a room or a shard (`Audience`): indexed by id and by user, with each
//! user's rate buckets. One sub-state both the room and a shard own; what a socket entry
//! holds beyond its identity is theirs (`Connection`, `ShardConnection`).

use super::*;
use std::ops::Index;

/// One socket's frame rate (`FRAMES_RATE_PER_S`, burst `FRAMES_BURST`), the room's and a
/// shard's: a frame past it is refused with a wait, and a socket that goes on sending
/// past it (more than `FRAMES_REFUSED_BURST` refusals, refilled at the frame rate) is to
/// be closed `4005`.
#[derive(Debug)]
pub(crate) struct FrameRate {
    bucket: TokenBucket,
    refusals: TokenBucket,
    /// Repeats answered before they cost frames (`FRAMES_REPEATED_BURST`).
    repeats: TokenBucket,
}

/// What a frame past the rate gets.
pub(crate) enum FrameRefused {
    /// Refused `rate_limited`, to try again after this long.
    Wait(u32),
    /// Refused past the refusals' bucket: close the socket.
    Close,
}

impl FrameRate {
    pub fn new(now_ms: u64) -> FrameRate {
        FrameRate {
            bucket: TokenBucket::new_full(FRAMES_RATE_PER_S, FRAMES_BURST, now_ms),
            refusals: TokenBucket::new_full(FRAMES_RATE_PER_S, FRAMES_REFUSED_BURST, now_ms),
            repeats: TokenBucket::new_full(FRAMES_REPEATED_PER_S, FRAMES_REPEATED_BURST, now_ms),
        }
    }

    /// A repeat, answered whatever this says (its answer is its first one, never a
    /// refusal): free within the repeats' bucket, then a frame of the rate, then a
    /// refusal; `Err` when past the refusals' bucket too (close the socket `4005`).
    pub fn take_repeat(&mut self, now_ms: u64) -> Result<(), FrameRefused> {
        if self.repeats.take(1, now_ms).is_ok()
            || self.bucket.take(1, now_ms).is_ok()
            || self.refusals.take(1, now_ms).is_ok()
        {
            return Ok(());
        }
        Err(FrameRefused::Close)
    }

    pub fn take(&mut self, now_ms: u64) -> Result<(), FrameRefused> {
        let Err(wait_ms) = self.bucket.take(1, now_ms) else {
            return Ok(());
        };
        match self.refusals.take(1, now_ms) {
            Ok(()) => Err(FrameRefused::Wait(wait_ms)),
            Err(_) => Err(FrameRefused::Close),
        }
    }
}

/// A socket entry the audience can index by user.
pub(crate) trait Member {
    fn identity(&self) -> &Identity;
}

/// The sockets of a room or a shard and their users' rate buckets.
///
/// Invariants: `by_user[u]` holds exactly the ids of the sockets whose user is `u`, and no
/// set is empty; at most `RATE_BUCKETS_MAX` users have buckets (when full, the
/// `RATE_BUCKETS_EVICTED_AT_ONCE` least recently used are forgotten, and come back with
/// full buckets, which a long-idle user would have anyway).
#[derive(Debug)]
pub(crate) struct Audience<C> {
    sockets: BTreeMap<ConnectionId, C>,
    by_user: BTreeMap<String, BTreeSet<ConnectionId>>,
    buckets: HashMap<String, UserBuckets>,
}

impl<C> Default for Audience<C> {
    fn default() -> Self {
        Audience {
            sockets: BTreeMap::new(),
            by_user: BTreeMap::new(),
            buckets: HashMap::new(),
        }
    }
}

impl<C: Member> Audience<C> {
    /// Adds a socket; the host never reuses an id.
    pub(crate) fn insert(&mut self, connection: ConnectionId, socket: C) {
        let user = socket.identity().user.clone();
        let previous = self.sockets.insert(connection, socket);
        assert!(previous.is_none(), "host reused connection id {connection}");
        self.by_user.entry(user).or_default().insert(connection);
    }

    pub(crate) fn remove(&mut self, connection: ConnectionId) -> Option<C> {
        let socket = self.sockets.remove(&connection)?;
        let user = &socket.identity().user;
        let set = self
            .by_user
            .get_mut(user)
            .expect("every socket is indexed by user");
        assert!(set.remove(&connection));
        if set.is_empty() {
            self.by_user.remove(user);
        }
        Some(socket)
    }
}

impl<C> Audience<C> {
    pub(crate) fn get(&self, connection: &ConnectionId) -> Option<&C> {
        self.sockets.get(connection)
    }

    pub(crate) fn get_mut(&mut self, connection: &ConnectionId) -> Option<&mut C> {
        self.sockets.get_mut(connection)
    }

    pub(crate) fn contains_key(&self, connection: &ConnectionId) -> bool {
        self.sockets.contains_key(connection)
    }

    pub(crate) fn len(&self) -> usize {
        self.sockets.len()
    }

    pub(crate) fn keys(&self) -> impl Iterator<Item = &ConnectionId> + '_ {
        self.sockets.keys()
    }

    pub(crate) fn values(&self) -> impl Iterator<Item = &C> + '_ {
        self.sockets.values()
    }

    pub(crate) fn values_mut(&mut self) -> impl Iterator<Item = &mut C> + '_ {
        self.sockets.values_mut()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&ConnectionId, &C)> + '_ {
        self.sockets.iter()
    }

    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = (&ConnectionId, &mut C)> + '_ {
        self.sockets.iter_mut()
    }

    /// The sockets of `user`, in id order.
    pub(crate) fn of_user(&self, user: &str) -> impl Iterator<Item = ConnectionId> + '_ {
        self.by_user.get(user).into_iter().flatten().copied()
    }

    /// A user's rate buckets, created full (see the type's invariants for the bound).
    pub(crate) fn buckets(&mut self, user: &str, now_ms: u64) -> &mut UserBuckets {
        let buckets = &mut self.buckets;
        if !buckets.contains_key(user) && buckets.len() >= RATE_BUCKETS_MAX {
            // The least recently used go, a batch at a time (one pass per batch).
            let mut used: Vec<u64> = buckets.values().map(|b| b.used_ms).collect();
            let (_, &mut threshold_ms, _) =
                used.select_nth_unstable(RATE_BUCKETS_EVICTED_AT_ONCE - 1);
            let mut evicted = 0;
            buckets.retain(|_, b| {
                let evict = b.used_ms <= threshold_ms && evicted < RATE_BUCKETS_EVICTED_AT_ONCE;
                evicted += usize::from(evict);
                !evict
            });
        }
        let entry = buckets
            .entry(user.to_owned())
            .or_insert_with(|| UserBuckets::new(now_ms));
        entry.used_ms = now_ms;
        entry
    }

    /// Forgets every user's accepted client ids (a new opening), keeping their rates.
    pub(crate) fn forget_client_ids(&mut self) {
        for buckets in self.buckets.values_mut() {
            buckets.recent_sequenced.clear();
            buckets.recent_unsequenced.clear();
        }
    }

    /// Users with rate buckets (at most `RATE_BUCKETS_MAX`).
    #[cfg(test)]
    pub(crate) fn users_with_buckets(&self) -> usize {
        self.buckets.len()
    }

    #[cfg(test)]
    pub(crate) fn has_buckets(&self, user: &str) -> bool {
        self.buckets.contains_key(user)
    }
}

impl<C> Index<&ConnectionId> for Audience<C> {
    type Output = C;

    fn index(&self, connection: &ConnectionId) -> &C {
        &self.sockets[connection]
    }
}

#[derive(Debug)]
pub(crate) struct UserBuckets {
    pub(crate) comments: TokenBucket,
    pub(crate) likes: TokenBucket,
    pub(crate) reactions: TokenBucket,
    pub(crate) directs: TokenBucket,
    pub(crate) gifts: TokenBucket,
    /// Staff commands and part writes over a socket (`STAFF_WRITES_RATE_PER_S`).
    pub(crate) staff_writes: TokenBucket,
    /// Upgrades (`USER_CONNECTS_PER_S`, `USER_CONNECTS_BURST`): the room's own bound,
    /// whichever Worker isolate the upgrade came through.
    pub(crate) connects: TokenBucket,
    pub(crate) used_ms: u64,
    /// Client ids of this user's recently accepted frames, newest last: a frame retried
    /// after a reconnect is acknowledged again, not applied twice. Sequenced actions
    /// (with their numbers) and the rest (likes, votes, answers) are kept apart, each up
    /// to its bound, so a flood of likes never pushes out a comment awaiting its retry.
    /// Survives restarts for sequenced actions (rebuilt from the stored ring).
    pub(crate) recent_sequenced: VecDeque<(u64, u64)>,
    pub(crate) recent_unsequenced: VecDeque<u64>,
}

impl UserBuckets {
    pub(crate) fn new(now_ms: u64) -> UserBuckets {
        UserBuckets {
            comments: TokenBucket::new_full(COMMENT_RATE_PER_S, COMMENT_BURST, now_ms),
            likes: TokenBucket::new_full(LIKES_RATE_PER_S, LIKES_BURST, now_ms),
            reactions: TokenBucket::new_full(REACTION_RATE_PER_S, REACTION_BURST, now_ms),
            directs: TokenBucket::new_full(DIRECT_RATE_PER_S, DIRECT_BURST, now_ms),
            gifts: TokenBucket::new_full(GIFT_RATE_PER_S, GIFT_BURST, now_ms),
            staff_writes: TokenBucket::new_full(
                STAFF_WRITES_RATE_PER_S,
                STAFF_WRITES_BURST,
                now_ms,
            ),
            connects: admission::connect_bucket(now_ms),
            used_ms: now_ms,
            recent_sequenced: VecDeque::new(),
            recent_unsequenced: VecDeque::new(),
        }
    }

    pub(crate) fn accepted(&self, client_id: u64) -> Option<Option<u64>> {
        let sequenced = self.recent_sequenced.iter().rev();
        if let Some(&(_, seq)) = sequenced.clone().find(|(id, _)| *id == client_id) {
            return Some(Some(seq));
        }
        self.recent_unsequenced
            .iter()
            .rev()
            .any(|id| *id == client_id)
            .then_some(None)
    }

    /// Remembers an accepted frame's client id (and its sequence number, if it took one),
    /// forgetting the oldest of its kind past the bound.
    pub(crate) fn remember(&mut self, client_id: u64, seq: Option<u64>) {
        match seq {
            Some(seq) => {
                if self.recent_sequenced.len() >= RECENT_SEQUENCED_IDS_PER_USER_MAX {
                    self.recent_sequenced.pop_front();
                }
                self.recent_sequenced.push_back((client_id, seq));
            }
            None => {
                if self.recent_unsequenced.len() >= RECENT_UNSEQUENCED_IDS_PER_USER_MAX {
                    self.recent_unsequenced.pop_front();
                }
                self.recent_unsequenced.push_back(client_id);
            }
        }
    }
}
