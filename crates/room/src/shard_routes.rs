//! The router's memory of where a big room's viewers go, so that a join is one object
//! round trip, not two (issue 20, join storms).
//!
//! Without it every viewer's upgrade goes to the room object, which answers with the
//! viewer's shard, and only then to that shard: every join of a big room passes through
//! the one object sharding is there to unload. The router (one per isolate) remembers a
//! room's shard count for `ROUTER_SHARD_ROUTE_TTL_MS` after the room named it, and sends
//! the viewers that arrive meanwhile straight to `shard_for(role, user, count)`.
//!
//! Why a remembered count may be old and still right: within one opening of a room (one
//! epoch) its shard count only grows, and a viewer placed under any count the room has
//! had is one the room reaches (`Shards::of_user`). A room that ended and opened again
//! starts a new epoch with a count of its own, so the memory names the epoch too: a
//! shard that cannot vouch for it (no state yet, its room ended, or another epoch)
//! refuses a socket the router placed from memory with `421 shard_route_stale`, and the
//! router forgets the room and asks the room object (`Shard::refuses_remembered_route`).

use ovation_proto::limits::{ROUTER_SHARD_ROUTES_MAX, ROUTER_SHARD_ROUTE_TTL_MS};
use ovation_proto::{shard_of, Role};
use std::collections::BTreeMap;

/// Where a socket of `role` and `user` goes in a room with `shards` shards: a viewer to
/// their shard; staff stay on the room object (they get the staff-only notices). `None`:
/// the room object holds the socket (staff, or a room that is not sharded).
pub fn shard_for(role: Role, user: &str, shards: u16) -> Option<u16> {
    (role == Role::Viewer && shards > 0).then(|| shard_of(user, shards))
}

/// A room, as the router names it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct RoomKey {
    pub tenant: String,
    pub room: String,
}

/// What the room object told the router about its shards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardPlacement {
    /// The room object's name (`tenant/room`), which names its shards.
    pub room_object: String,
    /// The room's region: the shards' location hint.
    pub region: String,
    /// The room's shard count when it answered (> 0).
    pub shards: u16,
    /// The room's epoch when it answered: the opening of the room the count belongs to.
    pub epoch: u64,
}

/// A viewer's shard, from memory.
#[derive(Debug, PartialEq, Eq)]
pub struct RememberedRoute<'a> {
    pub placement: &'a ShardPlacement,
    pub index: u16,
}

#[derive(Debug)]
struct Remembered {
    placement: ShardPlacement,
    until_ms: u64,
}

/// The router's memory of big rooms' shard counts, bounded in rooms and in time.
#[derive(Debug, Default)]
pub struct ShardRoutes {
    rooms: BTreeMap<RoomKey, Remembered>,
}

impl ShardRoutes {
    pub fn new() -> ShardRoutes {
        ShardRoutes::default()
    }

    /// The room object named its shard count at `now_ms`. A room that is not sharded is
    /// not remembered (its sockets go to the room object anyway).
    pub fn remember(&mut self, key: RoomKey, placement: ShardPlacement, now_ms: u64) {
        if placement.shards == 0 {
            self.forget(&key);
            return;
        }
        if !self.rooms.contains_key(&key) && self.rooms.len() >= ROUTER_SHARD_ROUTES_MAX {
            self.make_room(now_ms);
        }
        let until_ms = now_ms.saturating_add(ROUTER_SHARD_ROUTE_TTL_MS);
        self.rooms.insert(
            key,
            Remembered {
                placement,
                until_ms,
            },
        );
    }

    /// Forgets a room: it grew through this router, or one of its shards said the memory
    /// is stale.
    pub fn forget(&mut self, key: &RoomKey) {
        self.rooms.remove(key);
    }

    /// The shard a socket of `role` and `user` goes to, if the room's count is remembered
    /// and fresh at `now_ms`. `None`: ask the room object.
    pub fn route(
        &self,
        key: &RoomKey,
        role: Role,
        user: &str,
        now_ms: u64,
    ) -> Option<RememberedRoute<'_>> {
        let remembered = self.rooms.get(key).filter(|r| now_ms < r.until_ms)?;
        let index = shard_for(role, user, remembered.placement.shards)?;
        Some(RememberedRoute {
            placement: &remembered.placement,
            index,
        })
    }

    /// Rooms remembered (expired ones included until they are dropped).
    pub fn rooms(&self) -> usize {
        self.rooms.len()
    }

    /// Expired rooms go first; if every room is fresh (that many big rooms within the
    /// TTL), half of them go: they are asked of their room objects again.
    fn make_room(&mut self, now_ms: u64) {
        self.rooms.retain(|_, r| now_ms < r.until_ms);
        if self.rooms.len() >= ROUTER_SHARD_ROUTES_MAX {
            let keep = self.rooms.len() / 2;
            let cut = self.rooms.keys().nth(keep).cloned().expect("non-empty");
            let _forgotten = self.rooms.split_off(&cut);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(room: &str) -> RoomKey {
        RoomKey {
            tenant: "t".into(),
            room: room.into(),
        }
    }

    fn placement(shards: u16) -> ShardPlacement {
        ShardPlacement {
            room_object: "t/weur-big".into(),
            region: "weur".into(),
            shards,
            epoch: 7,
        }
    }

    #[test]
    fn a_remembered_room_sends_viewers_to_their_shard_and_staff_to_the_room() {
        let mut routes = ShardRoutes::new();
        assert_eq!(routes.route(&key("big"), Role::Viewer, "ana", 0), None);
        routes.remember(key("big"), placement(4), 1_000);
        for user in ["ana", "bo", "cy", "dee", "eve"] {
            let route = routes
                .route(&key("big"), Role::Viewer, user, 1_000)
                .expect("remembered");
            assert_eq!(route.index, shard_of(user, 4));
            assert_eq!(route.placement, &placement(4));
        }
        for staff in [Role::Host, Role::Moderator, Role::Admin] {
            assert_eq!(routes.route(&key("big"), staff, "ana", 1_000), None);
        }
        assert_eq!(
            routes.route(&key("other"), Role::Viewer, "ana", 1_000),
            None
        );
    }

    #[test]
    fn a_count_is_trusted_until_the_ttl_and_not_one_ms_longer() {
        let mut routes = ShardRoutes::new();
        routes.remember(key("big"), placement(2), 1_000);
        let last_ms = 1_000 + ROUTER_SHARD_ROUTE_TTL_MS - 1;
        assert!(routes
            .route(&key("big"), Role::Viewer, "ana", last_ms)
            .is_some());
        assert_eq!(
            routes.route(&key("big"), Role::Viewer, "ana", last_ms + 1),
            None
        );
        // Asked again, the room names its count again.
        routes.remember(key("big"), placement(3), last_ms + 1);
        let route = routes.route(&key("big"), Role::Viewer, "ana", last_ms + 1);
        assert_eq!(route.map(|r| r.index), Some(shard_of("ana", 3)));
        // A clock at the end of u64 does not wrap the deadline.
        routes.remember(key("late"), placement(2), u64::MAX - 1);
        assert!(routes
            .route(&key("late"), Role::Viewer, "ana", u64::MAX - 1)
            .is_some());
    }

    #[test]
    fn an_unsharded_room_and_a_forgotten_room_go_to_the_room_object() {
        let mut routes = ShardRoutes::new();
        routes.remember(key("big"), placement(2), 0);
        routes.remember(key("big"), placement(0), 1);
        assert_eq!(routes.route(&key("big"), Role::Viewer, "ana", 1), None);
        assert_eq!(routes.rooms(), 0);
        routes.remember(key("big"), placement(2), 2);
        routes.forget(&key("big"));
        assert_eq!(routes.route(&key("big"), Role::Viewer, "ana", 2), None);
    }

    #[test]
    fn the_memory_holds_at_most_the_limit_and_one_past_it_makes_room() {
        let mut routes = ShardRoutes::new();
        for i in 0..ROUTER_SHARD_ROUTES_MAX {
            routes.remember(key(&format!("r{i}")), placement(2), 0);
        }
        assert_eq!(routes.rooms(), ROUTER_SHARD_ROUTES_MAX);
        // Every room is fresh: half are dropped, and the new one is remembered.
        routes.remember(key("one-past"), placement(2), 1);
        assert!(routes.rooms() <= ROUTER_SHARD_ROUTES_MAX / 2 + 1);
        assert!(routes
            .route(&key("one-past"), Role::Viewer, "ana", 1)
            .is_some());
        // Expired rooms are dropped first, and only they when that is enough.
        let later_ms = ROUTER_SHARD_ROUTE_TTL_MS + 1;
        let mut routes = ShardRoutes::new();
        for i in 0..ROUTER_SHARD_ROUTES_MAX - 1 {
            routes.remember(key(&format!("old{i}")), placement(2), 0);
        }
        routes.remember(key("fresh"), placement(2), later_ms);
        routes.remember(key("newest"), placement(2), later_ms);
        assert_eq!(routes.rooms(), 2);
        assert!(routes
            .route(&key("fresh"), Role::Viewer, "a", later_ms)
            .is_some());
    }
}
