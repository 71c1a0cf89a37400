//! Admission of upgrades before a room object wakes: one token bucket of connects per
//! user and room (`USER_CONNECTS_BURST`, `USER_CONNECTS_PER_S`). The Worker keeps one
//! `UserRateLimiter` per isolate and asks it before forwarding an upgrade, so a flood of
//! sockets opened and closed with one token is refused with `429 rate_limited` at the
//! edge instead of queueing in front of everyone else's frames in the room object. Bounded
//! by `CONNECT_LIMITER_USERS_MAX`. The same limiter, with the read rate, bounds a user's
//! reads of a room over HTTP (the pull transport) in the Worker and the room object.
//! Pure: time is a parameter.

use std::collections::BTreeMap;

use ovation_proto::limits::{
    CONNECT_LIMITER_USERS_MAX, USER_CONNECTS_BURST, USER_CONNECTS_PER_S, USER_NEW_ROOMS_BURST,
    USER_NEW_ROOMS_PER_S, USER_READS_BURST, USER_READS_PER_S,
};
use ovation_proto::TokenBucket;

/// Who is connecting to (or reading) where: a user of a tenant, one room.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct UserRoomKey {
    pub tenant: String,
    pub room: String,
    pub user: String,
}

/// An upgrade or a read refused for its rate: retry after this long.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateRefused {
    pub retry_after_ms: u32,
}

/// A user's connect bucket, full: the Worker's (here) and the room's (`UserBuckets`).
pub(crate) fn connect_bucket(now_ms: u64) -> TokenBucket {
    TokenBucket::new_full(USER_CONNECTS_PER_S, USER_CONNECTS_BURST, now_ms)
}

/// Token buckets per (tenant, room, user), one per Worker isolate: for upgrades
/// (`for_connects`), or for reads of the room over HTTP (`for_reads`: `USER_READS_PER_S`, so one
/// token's flood of pull reads is refused before it wakes the room object). The Worker's
/// limiters also bound the rooms each user reaches that they hold no bucket for
/// (`across_rooms`: `USER_NEW_ROOMS_BURST`, `USER_NEW_ROOMS_PER_S`), since every room id
/// wakes a room object and a new room comes with a full bucket.
#[derive(Debug)]
pub struct UserRateLimiter {
    buckets: BTreeMap<UserRoomKey, TokenBucket>,
    per_s: u32,
    burst: u32,
    /// Per user of a tenant, the rooms new to `buckets` they may still reach; `None` where
    /// the limiter serves one room (a room object's).
    new_rooms: Option<BTreeMap<UserKey, TokenBucket>>,
}

/// A user of a tenant, whatever the room.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct UserKey {
    tenant: String,
    user: String,
}

impl Default for UserRateLimiter {
    fn default() -> UserRateLimiter {
        UserRateLimiter::for_connects()
    }
}

impl UserRateLimiter {
    pub fn for_connects() -> UserRateLimiter {
        UserRateLimiter {
            buckets: BTreeMap::new(),
            per_s: USER_CONNECTS_PER_S,
            burst: USER_CONNECTS_BURST,
            new_rooms: None,
        }
    }

    pub fn for_reads() -> UserRateLimiter {
        UserRateLimiter {
            buckets: BTreeMap::new(),
            per_s: USER_READS_PER_S,
            burst: USER_READS_BURST,
            new_rooms: None,
        }
    }

    /// This limiter also bounds the rooms a user reaches that it holds no bucket for (the
    /// Worker's, which serves every room).
    pub fn across_rooms(self) -> UserRateLimiter {
        UserRateLimiter {
            new_rooms: Some(BTreeMap::new()),
            ..self
        }
    }

    /// Admits one upgrade (or read) of `key` at `now_ms`, or refuses it with the wait until the
    /// next would be admitted. A room new to the limiter first takes one of its user's new
    /// rooms (`across_rooms`); refused there, nothing is remembered of the room.
    pub fn admit(&mut self, key: &UserRoomKey, now_ms: u64) -> Result<(), RateRefused> {
        let refused = |wait_ms| RateRefused {
            retry_after_ms: wait_ms,
        };
        if let Some(bucket) = self.buckets.get_mut(key) {
            return bucket.take(1, now_ms).map_err(refused);
        }
        if let Some(new_rooms) = self.new_rooms.as_mut() {
            let user = UserKey {
                tenant: key.tenant.clone(),
                user: key.user.clone(),
            };
            if !new_rooms.contains_key(&user) && new_rooms.len() >= CONNECT_LIMITER_USERS_MAX {
                forget(new_rooms, USER_NEW_ROOMS_BURST, now_ms);
            }
            new_rooms
                .entry(user)
                .or_insert_with(|| {
                    TokenBucket::new_full(USER_NEW_ROOMS_PER_S, USER_NEW_ROOMS_BURST, now_ms)
                })
                .take(1, now_ms)
                .map_err(refused)?;
        }
        if self.buckets.len() >= CONNECT_LIMITER_USERS_MAX {
            forget(&mut self.buckets, self.burst, now_ms);
        }
        self.buckets
            .entry(key.clone())
            .or_insert_with(|| TokenBucket::new_full(self.per_s, self.burst, now_ms))
            .take(1, now_ms)
            .map_err(refused)
    }

    pub fn users(&self) -> usize {
        self.buckets.len()
    }

    #[cfg(test)]
    fn users_across_rooms(&self) -> usize {
        self.new_rooms.as_ref().map_or(0, BTreeMap::len)
    }
}

/// Makes room in a full table of buckets: those full again remember nothing and go
/// first; if every bucket is in use (a flood from that many users), half of them go.
fn forget<K: Ord + Clone>(buckets: &mut BTreeMap<K, TokenBucket>, burst: u32, now_ms: u64) {
    buckets.retain(|_, bucket| bucket.available(now_ms) < burst);
    if buckets.len() >= CONNECT_LIMITER_USERS_MAX {
        let keep = buckets.len() / 2;
        let cut = buckets.keys().nth(keep).cloned().expect("non-empty");
        let _forgotten = buckets.split_off(&cut);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(user: &str) -> UserRoomKey {
        UserRoomKey {
            tenant: "t".into(),
            room: "weur-r".into(),
            user: user.into(),
        }
    }

    #[test]
    fn a_burst_then_the_rate_and_one_past_the_burst_is_refused() {
        let mut limiter = UserRateLimiter::for_connects();
        for _ in 0..USER_CONNECTS_BURST {
            assert_eq!(limiter.admit(&key("ana"), 1_000), Ok(()));
        }
        let refused = limiter.admit(&key("ana"), 1_000).unwrap_err();
        assert!(
            refused.retry_after_ms > 0 && refused.retry_after_ms <= 1_000 / USER_CONNECTS_PER_S
        );
        // Other users and other rooms are untouched.
        assert_eq!(limiter.admit(&key("bob"), 1_000), Ok(()));
        let elsewhere = UserRoomKey {
            room: "weur-other".into(),
            ..key("ana")
        };
        assert_eq!(limiter.admit(&elsewhere, 1_000), Ok(()));
        // The rate refills: one a second.
        let later = 1_000 + 1_000 / u64::from(USER_CONNECTS_PER_S);
        assert_eq!(limiter.admit(&key("ana"), later), Ok(()));
        assert!(limiter.admit(&key("ana"), later).is_err());
    }

    #[test]
    fn a_read_limiter_takes_the_read_burst_and_refuses_one_past_it() {
        let mut limiter = UserRateLimiter::for_reads();
        for _ in 0..USER_READS_BURST {
            assert_eq!(limiter.admit(&key("ana"), 0), Ok(()));
        }
        let refused = limiter.admit(&key("ana"), 0).unwrap_err();
        assert!(refused.retry_after_ms <= 1_000 / USER_READS_PER_S);
        assert_eq!(limiter.admit(&key("bob"), 0), Ok(()));
    }

    fn in_room(tenant: &str, user: &str, room: u32) -> UserRoomKey {
        UserRoomKey {
            tenant: tenant.into(),
            room: format!("weur-r{room}"),
            user: user.into(),
        }
    }

    #[test]
    fn one_user_reaches_rooms_new_to_the_worker_at_the_new_rooms_rate() {
        // One token valid for every room, trying made-up room ids: each would wake a
        // room object, each with a full bucket of its own.
        let mut limiter = UserRateLimiter::for_connects().across_rooms();
        for room in 0..USER_NEW_ROOMS_BURST {
            assert_eq!(limiter.admit(&in_room("t", "ana", room), 0), Ok(()));
        }
        let one_past = in_room("t", "ana", USER_NEW_ROOMS_BURST);
        let refused = limiter.admit(&one_past, 0).unwrap_err();
        assert!(
            refused.retry_after_ms > 0 && refused.retry_after_ms <= 1_000 / USER_NEW_ROOMS_PER_S
        );
        assert_eq!(
            limiter.users(),
            USER_NEW_ROOMS_BURST as usize,
            "a refused room is not remembered"
        );
        // Her rooms keep their own rate; other users, and her name in another tenant,
        // are untouched.
        assert_eq!(limiter.admit(&in_room("t", "ana", 0), 0), Ok(()));
        assert_eq!(limiter.admit(&in_room("t", "bob", 1_000), 0), Ok(()));
        assert_eq!(limiter.admit(&in_room("t2", "ana", 1_000), 0), Ok(()));
        // The rate refills.
        let later = 1_000 / u64::from(USER_NEW_ROOMS_PER_S);
        assert_eq!(limiter.admit(&one_past, later), Ok(()));
        let two_past = in_room("t", "ana", USER_NEW_ROOMS_BURST + 1);
        assert!(limiter.admit(&two_past, later).is_err());
        // A room object's limiter serves one room: no such bound.
        let mut one_room = UserRateLimiter::for_reads();
        for room in 0..=USER_NEW_ROOMS_BURST {
            assert_eq!(one_room.admit(&in_room("t", "ana", room), 0), Ok(()));
        }
    }

    #[test]
    fn the_users_new_rooms_are_bounded_too() {
        let mut limiter = UserRateLimiter::for_reads().across_rooms();
        for user in 0..CONNECT_LIMITER_USERS_MAX + 1 {
            limiter
                .admit(&in_room("t", &format!("u{user}"), 0), 0)
                .unwrap();
        }
        assert!(limiter.users_across_rooms() <= CONNECT_LIMITER_USERS_MAX);
        assert!(limiter.users() <= CONNECT_LIMITER_USERS_MAX);
    }

    #[test]
    fn memory_is_bounded_and_refilled_buckets_go_first() {
        let mut limiter = UserRateLimiter::for_connects();
        // A busy user, then the table filled with users who connected once.
        for _ in 0..USER_CONNECTS_BURST {
            limiter.admit(&key("busy"), 0).unwrap();
        }
        for i in 0..CONNECT_LIMITER_USERS_MAX - 1 {
            limiter.admit(&key(&format!("u{i}")), 0).unwrap();
        }
        assert_eq!(limiter.users(), CONNECT_LIMITER_USERS_MAX);
        // One past the bound: nothing has refilled yet, so half go, and the bound holds.
        limiter.admit(&key("one-more"), 0).unwrap();
        assert!(limiter.users() <= CONNECT_LIMITER_USERS_MAX / 2 + 1);
        // Later, when the one-time users have refilled, they are the ones forgotten.
        let mut limiter = UserRateLimiter::for_connects();
        for i in 0..CONNECT_LIMITER_USERS_MAX - 1 {
            limiter.admit(&key(&format!("u{i}")), 0).unwrap();
        }
        for _ in 0..USER_CONNECTS_BURST {
            limiter.admit(&key("busy"), 5_000).unwrap_or(());
        }
        limiter.admit(&key("one-more"), 5_000).unwrap();
        assert_eq!(limiter.users(), 2, "the busy user and the new one remain");
        assert!(limiter.admit(&key("busy"), 5_000).is_err(), "still limited");
    }
}
