//! A viewer's upgrade: checked here (subprotocol, token, room, the user's connect rate),
//! then handed to the object that holds the socket: the room object, or for a viewer of a
//! big room the viewer's shard.
//!
//! A big room's shard count is remembered per isolate (`ovation_room::ShardRoutes`): a
//! join of a remembered room goes straight to its shard, one object round trip instead
//! of two, and the room object sees only the first join of a storm in each isolate. Of
//! the client's request an object gets only what it reads (the upgrade, `ovation.v1`):
//! never the token, nor a header of ours the client made up.

use crate::http::{self, ApiError};
use crate::{
    auth_error, authenticate_at, contract, room_in, room_stub, Admission, PROTOCOL_TOKEN_PREFIX,
};
use ovation_auth::Verified;
use ovation_proto::limits::SUBPROTOCOL;
use ovation_proto::RoomId;
use ovation_room::{RoomKey, ShardPlacement, ShardRoutes, UserRateLimiter};
use std::cell::RefCell;
use worker::{Env, Headers, Request, RequestInit, Response};

use crate::platform::{connection_lifetime_ms, now_ms};

/// A shard's answer to an upgrade the router placed from memory when the shard cannot
/// vouch for the remembered opening of its room (no state yet, the room ended, another
/// epoch): the router forgets the room and asks the room object
/// (`Shard::refuses_remembered_route`).
pub(crate) const ROUTE_STALE_STATUS: u16 = 421;

thread_local! {
    /// This isolate's connect buckets (one per user and room): checked before an upgrade
    /// wakes the room object, so a connection flood costs the room nothing.
    static CONNECTS: RefCell<UserRateLimiter> =
        RefCell::new(UserRateLimiter::for_connects().across_rooms());
    /// This isolate's memory of big rooms' shard counts.
    static SHARD_ROUTES: RefCell<ShardRoutes> = RefCell::new(ShardRoutes::new());
}

pub(crate) async fn socket(req: Request, env: &Env) -> std::result::Result<Response, ApiError> {
    // Parsed once for the room and the query (a join storm's hot path).
    let url = req.url().map_err(|_| ApiError::bad_request("bad url"))?;
    let room = room_in(&url)?;
    if !http::is_websocket_upgrade(&req) {
        return Err(ApiError::new(
            426,
            "upgrade_required",
            "this route upgrades to a WebSocket",
        ));
    }
    let offered = http::offered_protocols(&req);
    let offers_ovation = offered.iter().any(|p| p == SUBPROTOCOL);
    if !offers_ovation
        && offered
            .iter()
            .any(|p| !p.starts_with(PROTOCOL_TOKEN_PREFIX))
    {
        return Err(ApiError::new(
            400,
            "unsupported_subprotocol",
            &format!("offer the `{SUBPROTOCOL}` subprotocol"),
        ));
    }
    let identity = authenticate_at(&req, Some(&url), env)?;
    identity.authorize_room(room.as_str()).map_err(auth_error)?;
    let admitted = admit_connect(&identity, &room)?;
    // What an object reads of the client's request: that it upgrades, and whether it
    // offered `ovation.v1` (echoed on the 101). Nothing else of the client's reaches an
    // object: not its token (checked here), not a header of ours it made up.
    let headers = Headers::new();
    let _ = headers.set("upgrade", "websocket");
    if offers_ovation {
        let _ = headers.set("sec-websocket-protocol", SUBPROTOCOL);
    }
    let _ = headers.set(
        contract::IDENTITY_HEADER,
        &contract::identity_header(&identity),
    );
    // A first join's Hello, said in the upgrade: the object answers Welcome as the socket
    // opens (one round trip, not two).
    if let Some(hello) = url
        .query()
        .and_then(ovation_proto::Hello::from_upgrade_query)
    {
        let _ = headers.set(contract::HELLO_HEADER, &hello.protocol_version.to_string());
    }
    let key = room_key(&identity.tenant, &room);
    let remembered = SHARD_ROUTES.with(|routes| {
        routes
            .borrow()
            .route(&key, identity.role, &identity.user, now_ms())
            .map(|route| (route.placement.clone(), route.index))
    });
    if let Some((placement, index)) = remembered {
        let resp = to_shard(env, &headers, &placement, index, true).await?;
        if resp.status_code() != ROUTE_STALE_STATUS {
            admitted.answered(&resp);
            return Ok(resp);
        }
        SHARD_ROUTES.with(|routes| routes.borrow_mut().forget(&key));
    }
    // The room object echoes the subprotocol on its 101 (a forwarded response's headers
    // are immutable here).
    let resp = room_stub(env, &identity.tenant, &room)?
        // The request copies the headers (`new Request`): a second handle, not a copy.
        .fetch_with_request(upgrade_request(Headers(headers.0.clone()))?)
        .await
        .map_err(|e| ApiError::internal(&e.to_string()))?;
    admitted.answered(&resp);
    // A viewer of a big room: the room names the viewer's shard, and the socket goes
    // there directly (never through the room object).
    let Some((placement, index)) = shard_route(&resp) else {
        return Ok(resp);
    };
    SHARD_ROUTES.with(|routes| {
        routes
            .borrow_mut()
            .remember(key, placement.clone(), now_ms())
    });
    to_shard(env, &headers, &placement, index, false).await
}

/// Forgets a room's shard count in this isolate: the room grew through this router, so
/// its next viewers land on the new shards at once (other isolates within
/// `ROUTER_SHARD_ROUTE_TTL_MS`; their older count still places viewers the room serves).
pub(crate) fn forget_room(tenant: &str, room: &RoomId) {
    SHARD_ROUTES.with(|routes| routes.borrow_mut().forget(&room_key(tenant, room)));
}

fn room_key(tenant: &str, room: &RoomId) -> RoomKey {
    RoomKey {
        tenant: tenant.to_owned(),
        room: room.as_str().to_owned(),
    }
}

/// The viewer's upgrade, to shard `index` of the room `placement` names; `remembered`:
/// placed from this isolate's memory, not on the room object's word just now. Adds the
/// shard's headers to a copy of `headers` (the caller's stay the room object's).
async fn to_shard(
    env: &Env,
    headers: &Headers,
    placement: &ShardPlacement,
    index: u16,
    remembered: bool,
) -> std::result::Result<Response, ApiError> {
    // A copy: the caller's headers stay the room object's.
    let headers = headers.clone();
    if remembered {
        let _ = headers.set(
            contract::ROUTE_REMEMBERED_HEADER,
            &placement.epoch.to_string(),
        );
    } else if placement.epoch != 0 {
        // The opening the room object placed the viewer in: a shard whose copy is of
        // another (it has not heard of this one yet) holds the Hello for the state.
        let _ = headers.set(contract::EPOCH_HEADER, &placement.epoch.to_string());
    }
    let _ = headers.set(contract::ROOM_OBJECT_HEADER, &placement.room_object);
    let _ = headers.set(contract::SHARD_INDEX_HEADER, &index.to_string());
    let _ = headers.set(
        contract::LIFETIME_HEADER,
        &connection_lifetime_ms(env).to_string(),
    );
    contract::shard_stub(env, &placement.room_object, index, &placement.region)
        .map_err(|e| ApiError::internal(&e.to_string()))?
        .fetch_with_request(upgrade_request(headers)?)
        .await
        .map_err(|e| ApiError::internal(&e.to_string()))
}

/// Refuses an upgrade over its user's connect rate with `429 rate_limited` (not logged:
/// a flood would turn into a flood of log lines).
fn admit_connect(identity: &Verified, room: &RoomId) -> std::result::Result<Admission, ApiError> {
    Admission::admit(&CONNECTS, identity, room).map_err(|refused| {
        ApiError::new(
            429,
            "rate_limited",
            &format!(
                "this user opens connections to this room too fast; retry in {} ms",
                refused.retry_after_ms
            ),
        )
    })
}

/// A viewer's upgrade as an object's `/ws` gets it (the request copies the headers).
fn upgrade_request(headers: Headers) -> std::result::Result<Request, ApiError> {
    let mut init = RequestInit::new();
    init.with_headers(headers);
    Request::new_with_init("https://do/ws", &init).map_err(|e| ApiError::internal(&e.to_string()))
}

/// The shard named by the room object's answer to an upgrade, if it named one, and the
/// room's shard count and epoch (to remember; a room that ended names no count).
fn shard_route(resp: &Response) -> Option<(ShardPlacement, u16)> {
    if resp.status_code() == 101 {
        return None;
    }
    let header = |name: &str| resp.headers().get(name).ok().flatten();
    let index = header(contract::SHARD_INDEX_HEADER)?.parse().ok()?;
    let count = header(contract::SHARD_COUNT_HEADER).and_then(|count| count.parse().ok());
    let epoch = header(contract::EPOCH_HEADER).and_then(|epoch| epoch.parse().ok());
    let placement = ShardPlacement {
        room_object: header(contract::ROOM_OBJECT_HEADER)?,
        region: header(contract::REGION_HEADER).unwrap_or_default(),
        // No count (an ended room, or an object of an older build): nothing to remember.
        shards: count.filter(|_| epoch.is_some()).unwrap_or(0),
        epoch: epoch.unwrap_or(0),
    };
    Some((placement, index))
}
