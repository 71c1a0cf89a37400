//! The typed contract between the Worker's router and its Durable Objects: the headers
//! they pass, the attachment each hibernatable socket carries, and how objects are named.
//! A leaf module: it imports no object.

use ovation_auth::Verified;
use ovation_proto::Role;
use serde::{Deserialize, Serialize};
use worker::{Env, Result, Stub};

/// The verified caller, as JSON (`IdentityHeader`), from the router to an object.
pub const IDENTITY_HEADER: &str = "x-ovation-identity";
/// On a room object's `503 room_opening`: another create of the room is under way, and it
/// keeps or removes the room's directory entry (the router must not remove it).
pub const CREATE_UNDER_WAY_HEADER: &str = "x-ovation-create-under-way";
/// Set by the room object on a replay window of an ended room: final, so it is cached.
pub const REPLAY_FINAL_HEADER: &str = "x-ovation-replay-final";
/// Header naming the room object (`tenant/room`) a shard belongs to.
pub const ROOM_OBJECT_HEADER: &str = "x-ovation-room-object";
/// Header with the shard's index.
pub const SHARD_INDEX_HEADER: &str = "x-ovation-shard";
/// Header with the room's region (the shard's location hint).
pub const REGION_HEADER: &str = "x-ovation-region";
/// Header with the room's shard count, on the room object's answer naming a viewer's
/// shard: the router remembers it (`ovation_room::ShardRoutes`).
pub const SHARD_COUNT_HEADER: &str = "x-ovation-shards";
/// Header with the room's epoch (its current opening), beside `SHARD_COUNT_HEADER`.
pub const EPOCH_HEADER: &str = "x-ovation-epoch";
/// Header with the lifetime the router drew for a viewer's connection to a shard.
pub const LIFETIME_HEADER: &str = "x-ovation-lifetime-ms";
/// Set by the router, to the remembered epoch, on an upgrade it sent to a shard from its
/// memory of the room's shard count, not on the room object's word: a shard that cannot
/// vouch for that opening of the room sends it back (`join::ROUTE_STALE_STATUS`).
pub const ROUTE_REMEMBERED_HEADER: &str = "x-ovation-route-remembered";
/// Header with the protocol version of the Hello an upgrade said (`?hello=`,
/// `ovation_proto::UPGRADE_HELLO_PARAM`): the object feeds that Hello as the socket's
/// first frame. Set only by the router (no header of the client's reaches an object).
pub const HELLO_HEADER: &str = "x-ovation-hello";
/// On a room object's `404 room_not_found` when no room is there at all (not a part or a
/// version it lacks): the Worker's limiters then keep the new room its request took
/// (`ovation_room::UserRateLimiter::answered`).
pub const ROOM_MISSING_HEADER: &str = "x-ovation-room-missing";

/// What an object's answer says of its room (`ovation_room::RoomAnswer::of`: its status
/// and `ROOM_MISSING_HEADER`).
pub fn room_answer(resp: &worker::Response) -> ovation_room::RoomAnswer {
    let missing = matches!(resp.headers().has(ROOM_MISSING_HEADER), Ok(true));
    ovation_room::RoomAnswer::of(resp.status_code(), missing)
}

/// The Hello the router passed with an upgrade (`HELLO_HEADER`), if any. The router
/// wrote the version `Hello::from_upgrade_query` parsed, so the rule for what the query
/// means lives there alone.
pub fn upgrade_hello(headers: &worker::Headers) -> Option<ovation_proto::Hello> {
    let version = headers.get(HELLO_HEADER).ok().flatten()?;
    Some(ovation_proto::Hello {
        protocol_version: version.parse().ok()?,
        resume: None,
    })
}

/// What the router tells the object about the caller (already verified).
#[derive(Serialize, Deserialize)]
pub struct IdentityHeader {
    pub user: String,
    pub name: String,
    #[serde(with = "role_text")]
    pub role: Role,
    pub tenant: String,
}

pub fn identity_header(v: &Verified) -> String {
    serde_json::to_string(&IdentityHeader {
        user: v.user.clone(),
        name: v.name.clone(),
        role: v.role,
        tenant: v.tenant.clone(),
    })
    .expect("serializable")
}

/// Stored on each hibernatable socket (kept well under the 2 KiB attachment limit).
#[derive(Serialize, Deserialize)]
pub struct Attachment {
    /// Below 2^53 so it survives the trip through JavaScript numbers.
    pub id: u64,
    pub tenant: String,
    pub user: String,
    pub name: String,
    #[serde(with = "role_text")]
    pub role: Role,
    pub expires_at_ms: u64,
    /// The socket's `Hello` was heard (in the upgrade or as its first frame): one restored
    /// after hibernation without it owes it again (`Room::reattach`). Attachments written
    /// before this field read as heard, as every restored socket was taken then.
    #[serde(default = "heard_before_the_field")]
    pub hello_heard: bool,
}

fn heard_before_the_field() -> bool {
    true
}

/// The stub of a room's shard: named `tenant/room#index`, placed near the room.
pub fn shard_stub(env: &Env, room_object: &str, index: u16, region: &str) -> Result<Stub> {
    env.durable_object("SHARDS")?
        .get_by_name_with_location_hint(&format!("{room_object}#{index}"), region)
}

/// A role as its token name (`viewer`, `host`, …). A name this build does not know (a
/// damaged attachment) reads as the least privileged role, never as staff.
mod role_text {
    use ovation_proto::Role;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(role: &Role, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(role.as_str())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Role, D::Error> {
        let text = String::deserialize(deserializer)?;
        Ok(Role::parse(&text).unwrap_or(Role::Viewer))
    }
}
