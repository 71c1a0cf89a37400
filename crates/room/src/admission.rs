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
/// wakes a room object and a new room comes with a full bucket: such a room takes one of
/// the user's new rooms, given back when the object answers that the room exists
/// (`answered`), so only rooms that do not exist spend them (and a user whose bucket the
/// limiter forgot for want of room pays nothing for it).
#[derive(Debug)]
pub struct UserRateLimiter {
    buckets: BTreeMap<UserRoomKey, TokenBucket>,
    per_s: u32,
    burst: u32,
    /// Per user of a tenant, the rooms new to `buckets` they may still reach; `None` where
    /// the limiter serves one room (a room object's).
    new_rooms: Option<BTreeMap<UserKey, TokenBucket>>,
}

/// An upgrade or a read let through: whether it took one of its user's new rooms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Admitted {
    pub new_room: bool,
}

/// What a room object's answer to an admitted request says of its room
/// (`UserRateLimiter::answered`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RoomAnswer {
    Exists,
    /// Its `404` for no room at all (said by the room-missing header: a part or a version
    /// the room lacks is a `404` too).
    Missing,
    /// A `5xx`: nothing is known of the room.
    ServerError,
}

impl RoomAnswer {
    /// From the answer's status and whether it carried the room-missing header.
    pub fn of(status: u16, room_missing_header: bool) -> RoomAnswer {
        match status {
            500.. => RoomAnswer::ServerError,
            404 if room_missing_header => RoomAnswer::Missing,
            _ => RoomAnswer::Exists,
        }
    }
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
    /// rooms (`across_rooms`; `Admitted::new_room`, for `answered`); refused there, nothing
    /// is remembered of the room.
    pub fn admit(&mut self, key: &UserRoomKey, now_ms: u64) -> Result<Admitted, RateRefused> {
        let refused = |wait_ms| RateRefused {
            retry_after_ms: wait_ms,
        };
        if let Some(bucket) = self.buckets.get_mut(key) {
            bucket.take(1, now_ms).map_err(refused)?;
            return Ok(Admitted { new_room: false });
        }
        let new_room = self.new_rooms.is_some();
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
            .map_err(refused)?;
        Ok(Admitted { new_room })
    }

    /// The object answered a request `admit` let through. A room that does not exist is
    /// forgotten (asking again takes another of the user's new rooms); one that does
    /// gives back the new room its admission took; after a server error (a made-up room
    /// can answer 503 before it says it has no room) the new room stays taken and the
    /// room's bucket kept.
    pub fn answered(
        &mut self,
        key: &UserRoomKey,
        admitted: Admitted,
        answer: RoomAnswer,
        now_ms: u64,
    ) {
        match answer {
            RoomAnswer::ServerError => return,
            RoomAnswer::Missing => {
                self.buckets.remove(key);
                return;
            }
            RoomAnswer::Exists => {}
        }
        if !admitted.new_room {
            return;
        }
        let user = UserKey {
            tenant: key.tenant.clone(),
            user: key.user.clone(),
        };
        if let Some(bucket) = self
            .new_rooms
            .as_mut()
            .and_then(|rooms| rooms.get_mut(&user))
        {
            bucket.give_back(1, now_ms);
        }
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
            assert!(limiter.admit(&key("ana"), 1_000).is_ok());
        }
        let refused = limiter.admit(&key("ana"), 1_000).unwrap_err();
        assert!(
            refused.retry_after_ms > 0 && refused.retry_after_ms <= 1_000 / USER_CONNECTS_PER_S
        );
        // Other users and other rooms are untouched.
        assert!(limiter.admit(&key("bob"), 1_000).is_ok());
        let elsewhere = UserRoomKey {
            room: "weur-other".into(),
            ..key("ana")
        };
        assert!(limiter.admit(&elsewhere, 1_000).is_ok());
        // The rate refills: one a second.
        let later = 1_000 + 1_000 / u64::from(USER_CONNECTS_PER_S);
        assert!(limiter.admit(&key("ana"), later).is_ok());
        assert!(limiter.admit(&key("ana"), later).is_err());
    }

    #[test]
    fn a_read_limiter_takes_the_read_burst_and_refuses_one_past_it() {
        let mut limiter = UserRateLimiter::for_reads();
        for _ in 0..USER_READS_BURST {
            assert!(limiter.admit(&key("ana"), 0).is_ok());
        }
        let refused = limiter.admit(&key("ana"), 0).unwrap_err();
        assert!(refused.retry_after_ms <= 1_000 / USER_READS_PER_S);
        assert!(limiter.admit(&key("bob"), 0).is_ok());
    }

    fn in_room(tenant: &str, user: &str, room: u32) -> UserRoomKey {
        UserRoomKey {
            tenant: tenant.into(),
            room: format!("weur-r{room}"),
            user: user.into(),
        }
    }

    #[test]
    fn one_user_reaches_rooms_that_do_not_exist_at_the_new_rooms_rate() {
        // One token valid for every room, trying made-up room ids: each would wake a
        // room object, each with a full bucket of its own.
        let mut limiter = UserRateLimiter::for_connects().across_rooms();
        let missing = |limiter: &mut UserRateLimiter, key: &UserRoomKey, now_ms| {
            let admitted = limiter.admit(key, now_ms)?;
            assert!(admitted.new_room);
            limiter.answered(key, admitted, RoomAnswer::Missing, now_ms);
            Ok::<(), RateRefused>(())
        };
        for room in 0..USER_NEW_ROOMS_BURST {
            assert!(missing(&mut limiter, &in_room("t", "ana", room), 0).is_ok());
        }
        let one_past = in_room("t", "ana", USER_NEW_ROOMS_BURST);
        let refused = missing(&mut limiter, &one_past, 0).unwrap_err();
        assert!(
            refused.retry_after_ms > 0 && refused.retry_after_ms <= 1_000 / USER_NEW_ROOMS_PER_S
        );
        assert_eq!(
            limiter.users(),
            0,
            "rooms that do not exist are not remembered"
        );
        // The same made-up room again takes another: refused too.
        assert!(missing(&mut limiter, &in_room("t", "ana", 0), 0).is_err());
        // Other users, and her name in another tenant, are untouched.
        assert!(missing(&mut limiter, &in_room("t", "bob", 1_000), 0).is_ok());
        assert!(missing(&mut limiter, &in_room("t2", "ana", 1_000), 0).is_ok());
        // The rate refills.
        let later = 1_000 / u64::from(USER_NEW_ROOMS_PER_S);
        assert!(missing(&mut limiter, &one_past, later).is_ok());
        let two_past = in_room("t", "ana", USER_NEW_ROOMS_BURST + 1);
        assert!(missing(&mut limiter, &two_past, later).is_err());
        // A room object's limiter serves one room: no such bound.
        let mut one_room = UserRateLimiter::for_reads();
        for room in 0..=USER_NEW_ROOMS_BURST {
            let admitted = one_room.admit(&in_room("t", "ana", room), 0).unwrap();
            assert!(!admitted.new_room);
        }
    }

    /// A server error says nothing of the room: its new room stays taken (a made-up room
    /// answering 503 spends the user's new rooms as a 404 would) and its bucket is kept
    /// (asking it again takes none).
    #[test]
    fn a_server_error_keeps_the_new_room_taken_and_the_rooms_bucket() {
        assert_eq!(RoomAnswer::of(503, false), RoomAnswer::ServerError);
        assert_eq!(RoomAnswer::of(500, true), RoomAnswer::ServerError);
        assert_eq!(RoomAnswer::of(404, true), RoomAnswer::Missing);
        assert_eq!(
            RoomAnswer::of(404, false),
            RoomAnswer::Exists,
            "a part it lacks"
        );
        assert_eq!(RoomAnswer::of(200, false), RoomAnswer::Exists);
        assert_eq!(RoomAnswer::of(429, true), RoomAnswer::Exists);
        let mut limiter = UserRateLimiter::for_connects().across_rooms();
        for room in 0..USER_NEW_ROOMS_BURST {
            let key = in_room("t", "ana", room);
            let admitted = limiter.admit(&key, 0).unwrap();
            limiter.answered(&key, admitted, RoomAnswer::ServerError, 0);
        }
        let one_past = in_room("t", "ana", USER_NEW_ROOMS_BURST);
        assert!(limiter.admit(&one_past, 0).is_err(), "none given back");
        assert_eq!(limiter.users(), USER_NEW_ROOMS_BURST as usize);
        let again = limiter.admit(&in_room("t", "ana", 0), 0).unwrap();
        assert!(!again.new_room, "the room's bucket was kept");
    }

    #[test]
    fn rooms_that_exist_cost_no_new_rooms_however_many_and_however_often_forgotten() {
        // A lobby reading three times as many live rooms as the burst, at once, then
        // again after the limiter forgot its buckets (a busy isolate).
        let mut limiter = UserRateLimiter::for_reads().across_rooms();
        for round in 0..3 {
            let rooms = 0..3 * USER_NEW_ROOMS_BURST;
            for room in rooms.clone() {
                let key = in_room("t", "lobby", room);
                let admitted = limiter.admit(&key, round).expect("an existing room");
                limiter.answered(&key, admitted, RoomAnswer::Exists, round);
            }
            // What a full table's `forget` does to buckets full again.
            limiter.buckets.clear();
        }
        // Admitted all at once, before any answer: the burst bounds how many.
        let held: Vec<_> = (0..USER_NEW_ROOMS_BURST + 1)
            .map(|room| limiter.admit(&in_room("t", "lobby", 10_000 + room), 10))
            .collect();
        assert!(held[..USER_NEW_ROOMS_BURST as usize]
            .iter()
            .all(Result::is_ok));
        assert!(held.last().unwrap().is_err());
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
            let _ = limiter.admit(&key("busy"), 5_000);
        }
        limiter.admit(&key("one-more"), 5_000).unwrap();
        assert_eq!(limiter.users(), 2, "the busy user and the new one remain");
        assert!(limiter.admit(&key("busy"), 5_000).is_err(), "still limited");
    }
}
