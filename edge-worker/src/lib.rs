//! The edge worker: authenticates, validates room ids, and routes to Durable Objects.
//!
//! Thin host: room behaviour lives in `ovation-room`, token rules in `ovation-auth`.
//! Only this crate knows about Workers and Durable Objects.

#![forbid(unsafe_code)]

mod admin;
mod contract;
mod directory;
mod driver;
mod http;
mod join;
mod openapi;
mod platform;
mod room_object;
mod shard_object;
mod sockets;

use admin::*;
use http::{error, json_body, ApiError};
use ovation_auth::{AuthError, Keyring, Verified};
use ovation_proto::limits::{SYSTEM_MESSAGE_BYTES_MAX, USER_ID_BYTES_MAX};
use ovation_proto::routes::{self, HttpMethod, Route, RouteMatch};
use ovation_proto::{ReplayQuery, RoomId};
use ovation_room::StaffCommand;
use platform::{log_json, now_ms};
use serde::Deserialize;
use serde_json::json;
use worker::*;

pub use directory::DirectoryObject;
pub use room_object::RoomObject;
pub use shard_object::ShardObject;

/// Where a room's replay chunks are kept: `r2` (the `REPLAY` binding) or `object` (the
/// room object's own storage, where the runtime has no R2).
pub(crate) const REPLAY_STORE_HEADER: &str = "x-ovation-replay-store";
/// Prefix of a token passed in the `Sec-WebSocket-Protocol` list.
const PROTOCOL_TOKEN_PREFIX: &str = "token.";

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> Result<Response> {
    let response = route(req, env).await?;
    if response.status_code() == 101 {
        // A WebSocket upgrade: CORS does not apply, and the copy below was a tenth of a
        // join's glue (every header read out and set again).
        return Ok(response);
    }
    // Pages on any origin call the API (the SDK's pull transport and replay send the token
    // as a bearer header, never a cookie, so any origin may read the answer). A response
    // forwarded from a Durable Object has immutable headers: the answer gets a copy.
    let headers = Headers::new();
    for (name, value) in response.headers().entries() {
        if name != contract::ROOM_MISSING_HEADER {
            headers.set(&name, &value)?;
        }
    }
    for (name, value) in CORS_HEADERS {
        headers.set(name, value)?;
    }
    Ok(response.with_headers(headers))
}

/// Sent with every answer, and alone on a preflight (`OPTIONS`).
const CORS_HEADERS: [(&str, &str); 5] = [
    ("access-control-allow-origin", "*"),
    ("access-control-allow-methods", "GET, POST, PUT, OPTIONS"),
    (
        "access-control-allow-headers",
        "authorization, content-type",
    ),
    ("access-control-max-age", "86400"),
    // A page on another origin reads how long a `429` asks it to wait, and which version
    // a part read answered (`ovation_proto::PART_VERSION_HEADER`).
    (
        "access-control-expose-headers",
        "retry-after, x-ovation-part-version",
    ),
];

async fn route(req: Request, env: Env) -> Result<Response> {
    if req.method() == Method::Options {
        // A preflight for a route: no body, the CORS headers are added by `fetch`.
        return match routes::match_route(Some(HttpMethod::Get), &req.path()) {
            RouteMatch::NotFound => error(ApiError::new(404, "route_not_found", "no such route")),
            _ => Ok(Response::empty()?.with_status(204)),
        };
    }
    let method = match req.method() {
        Method::Get => Some(HttpMethod::Get),
        Method::Post => Some(HttpMethod::Post),
        Method::Put => Some(HttpMethod::Put),
        _ => None,
    };
    let response = match routes::match_route(method, &req.path()) {
        RouteMatch::NotFound => error(ApiError::new(404, "route_not_found", "no such route")),
        RouteMatch::MethodNotAllowed => error(ApiError::new(
            405,
            "method_not_allowed",
            "method not allowed on this route",
        )),
        RouteMatch::Found(route) => match refused_before_body(method, &req, &env) {
            Some(refusal) => error(refusal),
            None => handled(match route {
                Route::OpenApi => openapi_document(),
                Route::Socket => join::socket(req, &env).await,
                Route::State => viewer_get(req, &env, "state").await,
                Route::Events => viewer_get(req, &env, "events").await,
                Route::Part => part(req, &env).await,
                Route::Replay => replay(req, &env).await,
                Route::Stats => admin_forward(req, &env, "stats", None).await,
                Route::CreateRoom => create_room(req, &env).await,
                Route::ListRooms => list_rooms(req, &env).await,
                Route::EndRoom => end_room(req, &env).await,
                Route::Messages => broadcast(req, &env).await,
                Route::Direct => direct(req, &env).await,
                Route::PutPart => put_part(req, &env).await,
                Route::CreatePoll => create_poll(req, &env).await,
                Route::ClosePoll => {
                    id_command(req, &env, |id| StaffCommand::ClosePoll { id }).await
                }
                Route::RevealPoll => {
                    id_command(req, &env, |id| StaffCommand::RevealPoll { id }).await
                }
                Route::CreateQuiz => create_quiz(req, &env).await,
                Route::NextQuestion => {
                    id_command(req, &env, |id| StaffCommand::NextQuestion { id }).await
                }
                Route::CloseQuestion => {
                    id_command(req, &env, |id| StaffCommand::CloseQuestion { id }).await
                }
                Route::EndQuiz => id_command(req, &env, |id| StaffCommand::EndQuiz { id }).await,
                Route::PinProduct => pin_product(req, &env).await,
                Route::UnpinProduct => staff_forward(req, &env, StaffCommand::UnpinProduct).await,
                Route::QaSettings => qa_settings(req, &env).await,
                Route::QaApprove => {
                    id_command(req, &env, |id| StaffCommand::QaApprove { id }).await
                }
                Route::QaAnswer => id_command(req, &env, |id| StaffCommand::QaAnswer { id }).await,
                Route::QaHide => id_command(req, &env, |id| StaffCommand::QaHide { id }).await,
                Route::Moderation => moderation(req, &env).await,
                Route::Commands => command(req, &env).await,
                Route::Shards => set_shards(req, &env).await,
                Route::Audit => admin_forward(req, &env, "audit", None).await,
            }),
        },
    };
    match response {
        Ok(resp)
            if resp.status_code() == 404
                && resp.headers().get("content-type")?.as_deref() != Some("application/json") =>
        {
            error(ApiError::new(404, "route_not_found", "no such route"))
        }
        Ok(resp) if resp.status_code() == 405 => error(ApiError::new(
            405,
            "method_not_allowed",
            "method not allowed on this route",
        )),
        other => other,
    }
}

/// Every route with a body needs a token: a caller without a valid one is refused before
/// a byte of its body is read (`json_body` bounds what a token holder may send).
fn refused_before_body(method: Option<HttpMethod>, req: &Request, env: &Env) -> Option<ApiError> {
    if matches!(method, Some(HttpMethod::Post | HttpMethod::Put)) {
        authenticate(req, env).err()
    } else {
        None
    }
}

fn openapi_document() -> std::result::Result<Response, ApiError> {
    let internal = |e: Error| ApiError::internal(&e.to_string());
    let mut resp = Response::ok(openapi::DOCUMENT).map_err(internal)?;
    resp.headers_mut()
        .set("content-type", "application/json")
        .map_err(internal)?;
    Ok(resp)
}

fn handled(result: std::result::Result<Response, ApiError>) -> Result<Response> {
    match result {
        Ok(resp) => Ok(resp),
        Err(e) => error(e),
    }
}

/// A variable or secret's text, or `None` when it is absent or not text. workerd gives a
/// `fromEnvironment` binding whose variable is unset as `null`, which `Env::secret` and
/// `Env::var` cannot take (they ask a null for its constructor: an uncaught JavaScript
/// error, and the request hangs); a self-hosted edge without keys must answer 503 too.
pub(crate) fn text_binding(env: &Env, name: &str) -> Option<String> {
    binding(env, name).as_string()
}

/// A binding as JavaScript holds it (`undefined` when absent), not copied into wasm.
fn binding(env: &Env, name: &str) -> wasm_bindgen::JsValue {
    js_sys::Reflect::get(env.as_ref(), &wasm_bindgen::JsValue::from_str(name))
        .unwrap_or(wasm_bindgen::JsValue::UNDEFINED)
}

/// A variable read as a number (the overrides and test knobs): `None` when it is absent
/// or not one; each caller clamps it to its own bounds.
pub(crate) fn number_binding<T: std::str::FromStr>(env: &Env, name: &str) -> Option<T> {
    text_binding(env, name)?.parse().ok()
}

/// The log line of a deployment without tenant keys.
const TENANT_KEYS_MISSING: &str =
    "OVATION_TENANT_KEYS is not set; set it with `wrangler secret put OVATION_TENANT_KEYS`";

/// The tenants' keys from the `OVATION_TENANT_KEYS` secret. A deployment without it (or
/// with an unreadable one) has no key at all: every token is refused with 503
/// `auth_not_configured` and an error log line that names the fix; the deployed
/// configuration never carries a fallback (development keys live only in the env file
/// `cargo xtask dev` and the tests give `wrangler dev`).
fn keyring(env: &Env) -> std::result::Result<std::rc::Rc<Keyring>, ApiError> {
    let refuse = |cause: &str| {
        http::log_error_once("auth_not_configured", cause);
        ApiError::new(
            503,
            "auth_not_configured",
            "this deployment has no tenant keys: every token is refused",
        )
    };
    let secret = binding(env, "OVATION_TENANT_KEYS");
    // Parsed once per isolate and secret: a request compares the secret with the one
    // parsed inside JavaScript (`===`, no copy of its text into wasm). Every upgrade and
    // API call needs the keys, and a flood of them must stay cheap.
    KEYRING.with(|cached| {
        if let Some((parsed, keyring)) = cached.borrow().as_ref() {
            if *parsed == secret {
                return Ok(keyring.clone());
            }
        }
        let json = secret
            .as_string()
            .ok_or_else(|| refuse(TENANT_KEYS_MISSING))?;
        let keyring = std::rc::Rc::new(
            Keyring::from_json(&json)
                .map_err(|e| refuse(&format!("OVATION_TENANT_KEYS is unreadable: {e}")))?,
        );
        // One tenant's bad entry refuses that tenant's tokens only; each is logged.
        for (tenant, why) in keyring.unusable() {
            log_json(json!({
                "level": "error", "event": "auth_not_configured", "tenant": tenant,
                "detail": format!("OVATION_TENANT_KEYS: {why}"),
            }));
        }
        *cached.borrow_mut() = Some((secret, keyring.clone()));
        Ok(keyring)
    })
}

thread_local! {
    /// The keyring parsed from the secret's text, per isolate.
    static KEYRING: std::cell::RefCell<Option<(wasm_bindgen::JsValue, std::rc::Rc<Keyring>)>> =
        const { std::cell::RefCell::new(None) };
    /// This isolate's read buckets (one per user and room): a flood of pull reads from
    /// one token is refused before it wakes the room object.
    static READS: std::cell::RefCell<ovation_room::UserRateLimiter> =
        std::cell::RefCell::new(ovation_room::UserRateLimiter::for_reads().across_rooms());
}

/// A viewer's read of the room within its rate in this isolate, or refused before the
/// room object wakes (which keeps the same bound across isolates: `Room::admit_read`).
/// Staff are not limited.
fn admit_read(
    identity: &Verified,
    room: &RoomId,
) -> std::result::Result<Admission, ovation_room::ReadRefused> {
    if identity.role.is_staff() {
        return Ok(Admission::unlimited());
    }
    Admission::admit(&READS, identity, room).map_err(|refused| {
        ovation_room::ReadRefused::RateLimited {
            retry_after_ms: refused.retry_after_ms,
        }
    })
}

/// An upgrade or a read one of this isolate's limiters (`join::CONNECTS`, `READS`) let
/// through, to tell it what the object answered.
pub(crate) struct Admission(
    Option<(
        &'static std::thread::LocalKey<std::cell::RefCell<ovation_room::UserRateLimiter>>,
        ovation_room::UserRoomKey,
        ovation_room::Admitted,
    )>,
);

impl Admission {
    /// Nothing to tell (staff are not limited).
    fn unlimited() -> Admission {
        Admission(None)
    }

    /// One of `identity`'s requests to `room` through `limiter`, or its refusal.
    pub(crate) fn admit(
        limiter: &'static std::thread::LocalKey<std::cell::RefCell<ovation_room::UserRateLimiter>>,
        identity: &Verified,
        room: &RoomId,
    ) -> std::result::Result<Admission, ovation_room::RateRefused> {
        let key = ovation_room::UserRoomKey {
            tenant: identity.tenant.clone(),
            room: room.as_str().to_owned(),
            user: identity.user.clone(),
        };
        let admitted = limiter.with(|limiter| limiter.borrow_mut().admit(&key, now_ms()))?;
        Ok(Admission(Some((limiter, key, admitted))))
    }

    /// What the object's answer says of the room (`contract::room_answer`): only rooms
    /// that do not exist spend the user's new rooms (a server error keeps the one taken).
    pub(crate) fn answered(&self, resp: &Response) {
        if let Some((limiter, key, admitted)) = &self.0 {
            let answer = contract::room_answer(resp);
            limiter.with(|limiter| {
                limiter
                    .borrow_mut()
                    .answered(key, *admitted, answer, now_ms())
            });
        }
    }
}

/// The token from `Authorization: Bearer`, or, on a WebSocket upgrade only (a browser
/// cannot set headers on one), `?token=` or a `token.<jwt>` subprotocol: elsewhere a
/// token in the URL would land in logs and histories, and is refused `token_missing`.
/// `url`: the request's URL when the caller parsed it already (a join storm's hot path).
fn token_of(req: &Request, url: Option<&Url>) -> std::result::Result<String, ApiError> {
    let parsed;
    let url = match url {
        Some(url) => url,
        None => {
            parsed = req.url().map_err(|_| ApiError::bad_request("bad url"))?;
            &parsed
        }
    };
    let upgrade = http::is_websocket_upgrade(req);
    let in_url = url.query_pairs().find(|(k, _)| k == "token");
    // Refused even beside a header: the URL with the token in it is logged all the same,
    // and the client is told so before it ships.
    if in_url.is_some() && !upgrade {
        let message = "a token in the URL is taken only on a WebSocket upgrade: send it \
                       as `Authorization: Bearer <token>`";
        http::log_refusal("token_missing", message);
        return Err(ApiError::new(401, "token_missing", message));
    }
    if let Ok(Some(auth)) = req.headers().get("authorization") {
        // The scheme's name is case-insensitive (RFC 9110): `bearer` is `Bearer`.
        let scheme = auth.get(..7);
        if scheme.is_some_and(|s| s.eq_ignore_ascii_case("bearer ")) {
            return Ok(auth[7..].trim().to_owned());
        }
    }
    if let Some((_, token)) = in_url {
        return Ok(token.into_owned());
    }
    if !upgrade {
        return Ok(String::new());
    }
    if let Ok(Some(protocols)) = req.headers().get("sec-websocket-protocol") {
        for protocol in protocols.split(',').map(str::trim) {
            if let Some(token) = protocol.strip_prefix(PROTOCOL_TOKEN_PREFIX) {
                return Ok(token.to_owned());
            }
        }
    }
    Ok(String::new())
}

fn auth_error(e: AuthError) -> ApiError {
    let api = ApiError::new(e.status(), e.code(), &e.to_string());
    http::log_refusal(e.code(), &e.to_string());
    api
}

fn authenticate(req: &Request, env: &Env) -> std::result::Result<Verified, ApiError> {
    authenticate_at(req, None, env)
}

/// `authenticate` with the request's URL already parsed.
fn authenticate_at(
    req: &Request,
    url: Option<&Url>,
    env: &Env,
) -> std::result::Result<Verified, ApiError> {
    let token = token_of(req, url)?;
    keyring(env)?.verify(&token, now_ms()).map_err(auth_error)
}

fn room_param(req: &Request) -> std::result::Result<RoomId, ApiError> {
    room_in(&req.url().map_err(|_| ApiError::bad_request("bad url"))?)
}

/// The room id of a `/v1/rooms/{room}/…` URL (for a caller that reads the URL's query too:
/// one parse).
fn room_in(url: &Url) -> std::result::Result<RoomId, ApiError> {
    let raw = url
        .path_segments()
        .and_then(|mut segments| segments.nth(2))
        .ok_or_else(|| ApiError::bad_request("missing room id"))?;
    RoomId::parse(raw).map_err(|e| {
        http::log_refusal("invalid_room_id", &e.to_string());
        ApiError::new(400, "invalid_room_id", &e.to_string())
    })
}

/// The room's Durable Object: named by tenant and room (tenants never share rooms),
/// placed by the room id's region prefix.
pub(crate) fn room_stub(
    env: &Env,
    tenant: &str,
    room: &RoomId,
) -> std::result::Result<Stub, ApiError> {
    env.durable_object("ROOMS")
        .and_then(|ns| {
            ns.get_by_name_with_location_hint(
                &format!("{tenant}/{}", room.as_str()),
                room.region().as_str(),
            )
        })
        .map_err(|e| ApiError::internal(&e.to_string()))
}

pub(crate) fn directory_stub(env: &Env, tenant: &str) -> std::result::Result<Stub, ApiError> {
    env.durable_object("DIRECTORY")
        .and_then(|ns| ns.get_by_name(tenant))
        .map_err(|e| ApiError::internal(&e.to_string()))
}

/// Calls a Durable Object's internal route with a JSON body and the identity header.
async fn call(
    stub: &Stub,
    method: Method,
    path: &str,
    identity: &Verified,
    body: Option<serde_json::Value>,
) -> std::result::Result<Response, ApiError> {
    let headers = Headers::new();
    let _ = headers.set(
        contract::IDENTITY_HEADER,
        &contract::identity_header(identity),
    );
    call_with(stub, method, path, headers, body).await
}

/// Calls a Durable Object's internal route with a JSON body and these headers (an
/// object calling another names no caller).
pub(crate) async fn call_with(
    stub: &Stub,
    method: Method,
    path: &str,
    headers: Headers,
    body: Option<serde_json::Value>,
) -> std::result::Result<Response, ApiError> {
    let _ = headers.set("content-type", "application/json");
    let mut init = RequestInit::new();
    init.with_method(method).with_headers(headers);
    if let Some(body) = body {
        init.with_body(Some(body.to_string().into()));
    }
    let req = Request::new_with_init(&format!("https://do{path}"), &init)
        .map_err(|e| ApiError::internal(&e.to_string()))?;
    stub.fetch_with_request(req)
        .await
        .map_err(|e| ApiError::internal(&e.to_string()))
}

async fn viewer_get(
    req: Request,
    env: &Env,
    what: &str,
) -> std::result::Result<Response, ApiError> {
    let room = room_param(&req)?;
    let identity = authenticate(&req, env)?;
    identity.authorize_room(room.as_str()).map_err(auth_error)?;
    let admitted = match admit_read(&identity, &room) {
        Ok(admitted) => admitted,
        Err(refused) => return http::read_refusal(refused),
    };
    let url = req.url().map_err(|_| ApiError::bad_request("bad url"))?;
    let query = url.query().map(|q| format!("?{q}")).unwrap_or_default();
    let stub = room_stub(env, &identity.tenant, &room)?;
    let resp = call(
        &stub,
        Method::Get,
        &format!("/{what}{query}"),
        &identity,
        None,
    )
    .await?;
    admitted.answered(&resp);
    if what == "state" && resp.status_code() == 200 {
        return with_headers(resp, &[("cache-control", "max-age=1")]).await;
    }
    Ok(resp)
}

/// One part at one version: immutable, so it is served from the Workers cache when there.
async fn part(req: Request, env: &Env) -> std::result::Result<Response, ApiError> {
    let room = room_param(&req)?;
    let identity = authenticate(&req, env)?;
    identity.authorize_room(room.as_str()).map_err(auth_error)?;
    let url = req.url().map_err(|_| ApiError::bad_request("bad url"))?;
    let name = url
        .path_segments()
        .and_then(|mut s| s.nth(4))
        .unwrap_or_default()
        .to_owned();
    // Checked here: the name goes into the cache key and the room object's query as it
    // is (a `&v=` in it would read another version than the key names), and a name no
    // part can have need not wake the room.
    if !ovation_proto::is_valid_part_name(&name) {
        let why = format!(
            "a part name is 1..={} of [a-z0-9_-]",
            ovation_proto::limits::PART_NAME_BYTES_MAX
        );
        return Err(ApiError::new(400, "invalid_part_name", &why));
    }
    let version: u64 = url
        .query_pairs()
        .find(|(k, _)| k == "v")
        .and_then(|(_, v)| v.parse().ok())
        .ok_or_else(|| ApiError::new(400, "version_required", "give the part version as ?v=N"))?;
    // A room opened again numbers its parts from the start: only the opening's epoch
    // (`&e=`) makes a version immutable. Without it (clients before it) the part is
    // served, never cached.
    let epoch = match url.query_pairs().find(|(k, _)| k == "e") {
        None => None,
        Some((_, e)) => Some(e.parse::<u64>().map_err(|_| {
            ApiError::new(400, "invalid_epoch", "the epoch (&e=) is a whole number")
        })?),
    };
    let stub = room_stub(env, &identity.tenant, &room)?;
    let Some(epoch) = epoch else {
        let admitted = match admit_read(&identity, &room) {
            Ok(admitted) => admitted,
            Err(refused) => return http::read_refusal(refused),
        };
        let path = format!("/part?name={name}&v={version}");
        let resp = call(&stub, Method::Get, &path, &identity, None).await?;
        admitted.answered(&resp);
        return with_headers(resp, &[("cache-control", "no-store")]).await;
    };
    // The cache key names the tenant: the public URL alone does not.
    let key = format!(
        "https://parts.ovation.internal/{}/{}/{}/{}/{}",
        identity.tenant,
        room.as_str(),
        epoch,
        name,
        version
    );
    let cache = Cache::default();
    if let Ok(Some(hit)) = cache.get(key.as_str(), false).await {
        return to_the_reader(hit).await; // stored with `x-ovation-cache: hit`
    }
    // A miss wakes the room object: within the read rate, as the pull reads (a flood of
    // made-up versions, never cached, would keep the room busy answering 404s).
    let admitted = match admit_read(&identity, &room) {
        Ok(admitted) => admitted,
        Err(refused) => return http::read_refusal(refused),
    };
    let path = format!("/part?name={name}&v={version}&e={epoch}");
    let resp = call(&stub, Method::Get, &path, &identity, None).await?;
    admitted.answered(&resp);
    // A part that moved on is answered at its newest version (`no-store` from the room):
    // cached, it would stand for a version it is not.
    let newer = matches!(
        resp.headers().has(ovation_proto::PART_VERSION_HEADER),
        Ok(true)
    );
    if resp.status_code() != 200 || newer {
        return Ok(resp);
    }
    let immutable = ("cache-control", "public, max-age=31536000, immutable");
    let mut resp = with_headers(resp, &[immutable, ("x-ovation-cache", "hit")]).await?;
    if let Ok(copy) = resp.cloned() {
        let _ = cache.put(key.as_str(), copy).await;
    }
    let _ = resp.headers_mut().set("x-ovation-cache", "miss");
    let _ = resp.headers_mut().set("cache-control", PRIVATE_IMMUTABLE);
    Ok(resp)
}

/// A window of a room's recording (viewer token). Answers for an ended room are final:
/// served from the Workers cache when there (a runtime without one just asks the room).
async fn replay(req: Request, env: &Env) -> std::result::Result<Response, ApiError> {
    let room = room_param(&req)?;
    let identity = authenticate(&req, env)?;
    identity.authorize_room(room.as_str()).map_err(auth_error)?;
    let url = req.url().map_err(|_| ApiError::bad_request("bad url"))?;
    let query = ReplayQuery::from_pairs(url.query_pairs())?;
    let ReplayQuery {
        from_ms: from,
        to_ms: to,
        snapshot,
    } = query;
    // The cache key names the tenant: the public URL alone does not.
    let key = format!(
        "https://replay.ovation.internal/{}/{}/{from}/{to}/{snapshot}",
        identity.tenant,
        room.as_str()
    );
    let cache = Cache::default();
    if let Ok(Some(hit)) = cache.get(key.as_str(), false).await {
        return to_the_reader(hit).await; // stored with `x-ovation-cache: hit`
    }
    // A miss wakes the room object: within the read rate, as the pull reads.
    let admitted = match admit_read(&identity, &room) {
        Ok(admitted) => admitted,
        Err(refused) => return http::read_refusal(refused),
    };
    let stub = room_stub(env, &identity.tenant, &room)?;
    let path = format!("/replay?{}", query.to_query());
    let resp = call(&stub, Method::Get, &path, &identity, None).await?;
    admitted.answered(&resp);
    let is_final = resp
        .headers()
        .get(contract::REPLAY_FINAL_HEADER)
        .ok()
        .flatten()
        .is_some();
    // Where the room keeps its chunks (`r2`, or `object` without the binding).
    let store = resp.headers().get(REPLAY_STORE_HEADER).ok().flatten();
    let store = (REPLAY_STORE_HEADER, store.as_deref().unwrap_or("none"));
    if resp.status_code() != 200 || !is_final {
        return with_headers(resp, &[("cache-control", "no-store"), store]).await;
    }
    let immutable = ("cache-control", "public, max-age=31536000, immutable");
    let mut resp = with_headers(resp, &[immutable, ("x-ovation-cache", "hit"), store]).await?;
    if let Ok(copy) = resp.cloned() {
        let _ = cache.put(key.as_str(), copy).await;
    }
    let _ = resp.headers_mut().set("x-ovation-cache", "miss");
    let _ = resp.headers_mut().set("cache-control", PRIVATE_IMMUTABLE);
    Ok(resp)
}

/// How a cached part or final replay window goes to its reader: `public` is for the copy
/// the Worker keeps in its cache (the Cache API stores nothing `private`); the reader's
/// answer was read with a token, so a shared cache between it and the Worker (a proxy, a
/// CDN in front) must not keep it and serve it to a request without one, or to a banned
/// user.
const PRIVATE_IMMUTABLE: &str = "private, max-age=31536000, immutable";

/// A cache hit as its reader gets it: `private` (see `PRIVATE_IMMUTABLE`).
async fn to_the_reader(mut hit: Response) -> std::result::Result<Response, ApiError> {
    if hit
        .headers_mut()
        .set("cache-control", PRIVATE_IMMUTABLE)
        .is_ok()
    {
        return Ok(hit);
    }
    // A response from the cache may have immutable headers: a copy then.
    with_headers(
        hit,
        &[
            ("cache-control", PRIVATE_IMMUTABLE),
            ("x-ovation-cache", "hit"),
        ],
    )
    .await
}

/// A copy of `resp` with extra headers (responses from a stub have immutable headers).
async fn with_headers(
    mut resp: Response,
    headers: &[(&str, &str)],
) -> std::result::Result<Response, ApiError> {
    let status = resp.status_code();
    let content_type = resp.headers().get("content-type").ok().flatten();
    // A refusal's wait (a room object's `429`) reaches the client too, and so does the
    // version a part read answered when the part had moved on.
    let retry_after = resp.headers().get("retry-after").ok().flatten();
    let part_version = resp
        .headers()
        .get(ovation_proto::PART_VERSION_HEADER)
        .ok()
        .flatten();
    let body = resp
        .bytes()
        .await
        .map_err(|e| ApiError::internal(&e.to_string()))?;
    let mut copy = Response::from_bytes(body)
        .map_err(|e| ApiError::internal(&e.to_string()))?
        .with_status(status);
    let copy_headers = copy.headers_mut();
    if let Some(content_type) = content_type {
        let _ = copy_headers.set("content-type", &content_type);
    }
    if let Some(retry_after) = retry_after {
        let _ = copy_headers.set("retry-after", &retry_after);
    }
    if let Some(version) = part_version {
        let _ = copy_headers.set(ovation_proto::PART_VERSION_HEADER, &version);
    }
    for (name, value) in headers {
        let _ = copy_headers.set(name, value);
    }
    Ok(copy)
}
