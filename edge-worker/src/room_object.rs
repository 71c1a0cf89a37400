//! The Room Durable Object: a thin host around `ovation_room::Room`.
//!
//! Host loop: feed an input with `now_ms`, drain outputs (storage first, then frames),
//! flush ticks with a timer while output is pending, and arm an alarm for the room's
//! slower deadlines (lifetimes, stale sweep, online refresh). Sockets are hibernatable:
//! each carries an attachment naming its connection, so a woken object rebuilds the room
//! from storage and re-registers its sockets.

use crate::contract::{Attachment, IdentityHeader};
use crate::driver::{self, Driven, Timers};
use crate::http::{error, json, ApiError};
use crate::platform::{log_json, now_ms, random_u53};
use ovation_proto::limits::{
    CONNECTION_LIFETIME_MS_MAX, CONNECTION_LIFETIME_MS_MIN, CONNECTION_LIFETIME_OVERRIDE_MS_MIN,
    PULL_INTERVAL_MS,
};
use ovation_proto::{CloseCode, ErrorCode, PullAction, PullEvents, PullState, Role, SUBPROTOCOL};
use ovation_room::{
    charge_outcome, gift_request_body, ledger_room_account, ledger_user_account, AdminCommand,
    AdminError, AdminReply, ChargeOutcome, ChargeRequest, ConnectionId, Identity, Output, Room,
    RoomInfo, StaffCommand, StorageOp, SETTLEMENT_UNAVAILABLE_MESSAGE,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use wasm_bindgen::prelude::*;
use worker::js_sys::{Object, Reflect, Uint8Array};
use worker::*;

/// Admin commands from the router to the room object (internal, JSON).
#[derive(Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum AdminRequest {
    Broadcast {
        text: String,
    },
    Direct {
        user: String,
        payload: String,
    },
    SetPart {
        name: String,
        value: String,
    },
    /// Grow a big room to this many shards.
    SetShards {
        shards: u16,
    },
    /// Polls, quizzes, Q&A, products, moderation (checked by the router).
    Staff {
        action: StaffCommand,
    },
}

#[derive(Default)]
struct Memory {
    loaded: bool,
    /// The tenant owning this room (from the router's identity header).
    tenant: String,
    room: Option<Room>,
    sockets: HashMap<ConnectionId, WebSocket>,
    timers: Timers,
    /// Big rooms: batches for each shard, in order; one request in flight per shard.
    shard_queues: BTreeMap<u16, VecDeque<Vec<u8>>>,
    shards_sending: BTreeSet<u16>,
    /// The room's recording (replay), saved under `REPLAY_RECORDER_KEY` when it changes.
    recorder: Option<ovation_replay::Recorder>,
    /// The recorder's revision last saved (`None`: never saved by this instance).
    recorder_saved: Option<u64>,
}

/// Keys of the recording in the room's storage: never handed to `Room::restore`.
const REPLAY_KEY_PREFIX: &str = "replay/";
const REPLAY_RECORDER_KEY: &str = "replay/recorder";
/// The R2 bucket of sealed chunks; without it (workerd alone) they go to this object's
/// storage under `replay/chunk/<index>`.
const REPLAY_BUCKET: &str = "REPLAY";

#[durable_object]
pub struct RoomObject {
    state: State,
    env: Env,
    memory: RefCell<Memory>,
}

/// Keys one Durable Object storage `put`/`delete` call accepts.
const STORAGE_KEYS_PER_CALL_MAX: usize = 128;

impl RoomObject {
    /// Rebuilds the room from storage once per wake-up, and re-registers sockets.
    async fn ensure_loaded(&self) -> Result<()> {
        if self.memory.borrow().loaded {
            return Ok(());
        }
        let map = self.state.storage().list().await?;
        if self.memory.borrow().loaded {
            return Ok(()); // another event loaded it while we waited
        }
        let mut records = Vec::new();
        let mut recorder = None;
        map.for_each(&mut |value, key| {
            if let Some(key) = key.as_string() {
                if key == REPLAY_RECORDER_KEY {
                    recorder = Some(Uint8Array::new(&value).to_vec());
                } else if !key.starts_with(REPLAY_KEY_PREFIX) {
                    records.push((key, Uint8Array::new(&value).to_vec()));
                }
            }
        });
        let now = now_ms();
        let room = Room::restore(records, now).map_err(|e| {
            log_json(json!({"level":"error","event":"restore_failed","detail": e.to_string()}));
            Error::RustError(e.to_string())
        })?;
        let mut memory = self.memory.borrow_mut();
        memory.loaded = true;
        if let Some(room) = room.as_ref() {
            match recorder.map(|bytes| serde_json::from_slice::<ovation_replay::Recorder>(&bytes)) {
                Some(Ok(recorder)) => {
                    memory.recorder_saved = Some(recorder.revision());
                    memory.recorder = Some(recorder);
                }
                Some(Err(e)) => log_json(
                    json!({"level":"error","event":"replay_restore_failed","detail": e.to_string()}),
                ),
                None => {} // a room from before recordings: it starts recording now
            }
            if memory.recorder.is_none() {
                // A recording that cannot be read restarts now rather than never.
                let info = room.info();
                memory.recorder = Some(ovation_replay::Recorder::new(
                    &info.room_id,
                    &info.host_user,
                    now,
                ));
            }
        }
        if let Some(mut room) = room {
            for ws in self.state.get_websockets() {
                let Ok(Some(att)) = ws.deserialize_attachment::<Attachment>() else {
                    continue;
                };
                let role = att.role;
                memory.tenant = att.tenant;
                let identity = Identity {
                    user: att.user,
                    name: att.name,
                    role,
                };
                room.reattach(att.id, identity, att.expires_at_ms, now);
                memory.sockets.insert(att.id, ws);
            }
            if let Err(e) = room.set_gift_catalog(self.gift_catalog()) {
                log_json(json!({"level":"error","event":"bad_gift_catalog","detail": e}));
            }
            memory.room = Some(room);
        }
        Ok(())
    }

    /// `OVATION_GIFT_CATALOG` (JSON sku → price), or a small default.
    fn gift_catalog(&self) -> std::collections::BTreeMap<String, u64> {
        crate::text_binding(&self.env, "OVATION_GIFT_CATALOG")
            .and_then(|v| serde_json::from_str(&v).ok())
            .unwrap_or_else(ovation_room::default_gift_catalog)
    }

    /// Drains the room's outputs: storage writes first (so frames leave only after the
    /// writes they depend on), then frames and closes, then log lines.
    async fn pump(&self) -> Result<()> {
        // The last op per key wins (a put then a delete of one key is a delete).
        let mut writes: BTreeMap<String, Option<Vec<u8>>> = BTreeMap::new();
        let mut wire = Vec::new();
        let mut charges = Vec::new();
        {
            let mut memory = self.memory.borrow_mut();
            let Some(room) = memory.room.as_mut() else {
                return Ok(());
            };
            while let Some(output) = room.poll_output() {
                match output {
                    Output::Store(StorageOp::Put { key, value }) => {
                        writes.insert(key, Some(value));
                    }
                    Output::Store(StorageOp::Delete { key }) => {
                        writes.insert(key, None);
                    }
                    Output::Log(record) => log_json(json!({
                        "level": "warn", "event": record.event, "code": record.code,
                        "connection": record.connection, "user": record.user,
                        "detail": record.detail,
                    })),
                    Output::Charge(charge) => charges.push(charge),
                    other => wire.push(other),
                }
            }
        }
        let storage = self.state.storage();
        let (puts, deletes): (Vec<_>, Vec<_>) = writes.into_iter().partition(|(_, v)| v.is_some());
        // The platform takes at most 128 keys per put or delete call.
        for chunk in puts.chunks(STORAGE_KEYS_PER_CALL_MAX) {
            let object = Object::new();
            for (key, value) in chunk {
                let value = value.as_deref().expect("partitioned");
                Reflect::set(&object, &key.into(), &Uint8Array::from(value))?;
            }
            storage.put_multiple_raw(object).await?;
        }
        for chunk in deletes.chunks(STORAGE_KEYS_PER_CALL_MAX) {
            let keys: Vec<String> = chunk.iter().map(|(k, _)| k.clone()).collect();
            storage.delete_multiple(keys).await?;
        }
        {
            let mut memory = self.memory.borrow_mut();
            for output in wire {
                match output {
                    Output::Send { connections, frame } => {
                        crate::sockets::send_to(&memory.sockets, connections, &frame);
                    }
                    Output::Close { connection, code } => {
                        if let Some(ws) = memory.sockets.remove(&connection) {
                            let _ = ws.close(Some(code.code()), Some(code.reason()));
                        }
                    }
                    Output::ToShard { shard, frame } => {
                        memory
                            .shard_queues
                            .entry(shard)
                            .or_default()
                            .push_back(frame);
                    }
                    Output::Store(_) | Output::Log(_) | Output::Charge(_) => {
                        unreachable!("handled above")
                    }
                }
            }
        }
        self.send_to_shards().await;
        self.record().await;
        // Each charge is a fetch to the settlement service; other events interleave
        // meanwhile. The answers produce more output, drained by the next pump.
        for charge in charges {
            let outcome = self.charge(&charge).await;
            if let Some(room) = self.memory.borrow_mut().room.as_mut() {
                room.charge_result(charge.request, outcome, now_ms());
            }
        }
        Ok(())
    }

    /// The settlement service's URL and bearer secret (a `wrangler secret`, never in
    /// wrangler.toml). A URL without a secret is a misconfiguration: logged, and gifts
    /// stay off rather than calling the service with an empty bearer.
    fn settlement(&self) -> Option<(String, String)> {
        let url = crate::text_binding(&self.env, "OVATION_SETTLEMENT_URL")?;
        let secret =
            crate::text_binding(&self.env, "OVATION_SETTLEMENT_SECRET").unwrap_or_default();
        if url.is_empty() {
            return None;
        }
        if secret.is_empty() {
            crate::http::log_error_once(
                "settlement_not_configured",
                "OVATION_SETTLEMENT_URL is set but OVATION_SETTLEMENT_SECRET is not; \
                 set it with `wrangler secret put OVATION_SETTLEMENT_SECRET`",
            );
            return None;
        }
        Some((url, secret))
    }

    /// The room's account at the settlement service: tenant, room and epoch (a reopened
    /// room is a new account).
    fn ledger_room(&self) -> Option<String> {
        let memory = self.memory.borrow();
        let room = memory.room.as_ref()?;
        Some(ledger_room_account(
            &memory.tenant,
            &room.info().room_id,
            room.epoch(),
        ))
    }

    async fn settlement_call(
        &self,
        path: &str,
        body: String,
    ) -> std::result::Result<(u16, Vec<u8>), String> {
        let (url, secret) = self
            .settlement()
            .ok_or_else(|| "gifts are not configured".to_owned())?;
        let headers = Headers::new();
        let _ = headers.set("content-type", "application/json");
        let _ = headers.set("authorization", &format!("Bearer {secret}"));
        let mut init = RequestInit::new();
        init.with_method(Method::Post)
            .with_headers(headers)
            .with_body(Some(body.into()));
        let request =
            Request::new_with_init(&format!("{url}{path}"), &init).map_err(|e| e.to_string())?;
        let mut response = Fetch::Request(request)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status_code();
        // Parsed in Rust (`ovation_room::charge_outcome`): a balance above 2^53 must not
        // be rounded by JavaScript.
        let body = response.bytes().await.unwrap_or_default();
        Ok((status, body))
    }

    async fn charge(&self, charge: &ChargeRequest) -> ChargeOutcome {
        let Some(room) = self.ledger_room() else {
            return ChargeOutcome::Refused {
                code: ErrorCode::RoomEnded,
                message: "no room".into(),
            };
        };
        let tenant = self.memory.borrow().tenant.clone();
        let body = gift_request_body(&tenant, &room, charge);
        let refused = |code, message: String| ChargeOutcome::Refused { code, message };
        if self.settlement().is_none() {
            // Told plainly, not "retry", and not logged per gift (the misconfiguration
            // is logged once by `settlement`).
            return refused(
                ErrorCode::Unavailable,
                "gifts are off here: no settlement service is configured".into(),
            );
        }
        match self.settlement_call("/v1/gifts", body).await {
            Ok((status, body)) => {
                let outcome = charge_outcome(status, &body);
                if matches!(
                    &outcome,
                    ChargeOutcome::Refused {
                        code: ErrorCode::Unavailable,
                        ..
                    }
                ) {
                    log_json(
                        json!({"level":"error","event":"settlement_error","status":status,
                                    "body":String::from_utf8_lossy(&body)}),
                    );
                }
                outcome
            }
            Err(cause) => {
                log_json(json!({"level":"error","event":"settlement_unreachable","cause":cause}));
                refused(
                    ErrorCode::Unavailable,
                    SETTLEMENT_UNAVAILABLE_MESSAGE.into(),
                )
            }
        }
    }

    /// The room object's name (`tenant/room`), which its shards are named after.
    fn object_name(&self) -> Option<(String, String)> {
        let memory = self.memory.borrow();
        let room = memory.room.as_ref()?;
        let room_id = room.info().room_id.clone();
        let region = ovation_proto::RoomId::parse(&room_id)
            .map(|id| id.region().as_str().to_owned())
            .unwrap_or_default();
        Some((format!("{}/{room_id}", memory.tenant), region))
    }

    fn shard_stub(&self, index: u16) -> Result<Stub> {
        let (name, region) = self
            .object_name()
            .ok_or_else(|| Error::RustError("no room".into()))?;
        crate::contract::shard_stub(&self.env, &name, index, &region)
    }

    /// Delivers queued batches to the shards: per shard one request at a time, in order;
    /// the shards in parallel.
    async fn send_to_shards(&self) {
        let idle: Vec<u16> = {
            let memory = self.memory.borrow();
            memory
                .shard_queues
                .iter()
                .filter(|(shard, queue)| {
                    !queue.is_empty() && !memory.shards_sending.contains(shard)
                })
                .map(|(shard, _)| *shard)
                .collect()
        };
        let drains = idle.into_iter().map(|shard| self.drain_shard_queue(shard));
        futures_util::future::join_all(drains).await;
    }

    async fn drain_shard_queue(&self, shard: u16) {
        self.memory.borrow_mut().shards_sending.insert(shard);
        loop {
            let Some(frame) = self
                .memory
                .borrow_mut()
                .shard_queues
                .get_mut(&shard)
                .and_then(VecDeque::pop_front)
            else {
                break;
            };
            let sent = async {
                let stub = self.shard_stub(shard)?;
                let mut init = RequestInit::new();
                init.with_method(Method::Post)
                    .with_body(Some(Uint8Array::from(&frame[..]).into()));
                let headers = Headers::new();
                let (name, _) = self
                    .object_name()
                    .ok_or_else(|| Error::RustError("no room".into()))?;
                headers.set(crate::contract::ROOM_OBJECT_HEADER, &name)?;
                headers.set(crate::contract::SHARD_INDEX_HEADER, &shard.to_string())?;
                init.with_headers(headers);
                let req = Request::new_with_init("https://do/down", &init)?;
                stub.fetch_with_request(req).await
            }
            .await;
            match sent {
                Ok(resp) if resp.status_code() == 204 => {}
                // The shard notices the missing batch by its number and asks for a
                // snapshot, so a failed delivery is not retried.
                other => log_json(json!({"level":"error","event":"shard_down_failed",
                    "shard": shard, "detail": format!("{:?}", other.map(|r| r.status_code()))})),
            }
        }
        self.memory.borrow_mut().shards_sending.remove(&shard);
    }

    /// Random in the configured range (jitter spreads reconnects), or the
    /// `OVATION_CONNECTION_LIFETIME_MS` override for tests and staging.
    fn connection_lifetime_ms(&self) -> u64 {
        let configured = crate::text_binding(&self.env, "OVATION_CONNECTION_LIFETIME_MS")
            .and_then(|v| v.parse::<u64>().ok());
        match configured {
            Some(ms) => ms.clamp(
                CONNECTION_LIFETIME_OVERRIDE_MS_MIN,
                CONNECTION_LIFETIME_MS_MAX,
            ),
            None => {
                let span_ms = CONNECTION_LIFETIME_MS_MAX - CONNECTION_LIFETIME_MS_MIN;
                CONNECTION_LIFETIME_MS_MIN + (js_sys::Math::random() * span_ms as f64) as u64
            }
        }
    }

    async fn accept(&self, identity: IdentityHeader) -> Result<Response> {
        let now = now_ms();
        let role = identity.role;
        let lifetime_ms = self.connection_lifetime_ms();
        let id = {
            let memory = self.memory.borrow();
            let mut id = random_u53();
            while memory.sockets.contains_key(&id) {
                id = random_u53();
            }
            id
        };
        let result = {
            let mut memory = self.memory.borrow_mut();
            let memory = &mut *memory;
            let Some(room) = memory.room.as_mut() else {
                return error(ApiError::new(404, "room_not_found", "no such room"));
            };
            // The user's heartbeats first: at the per-user cap only a silent socket of
            // theirs gives its place.
            let held: Vec<ConnectionId> = room.connections_of(&identity.user).collect();
            for (held, at_ms) in crate::sockets::heartbeats_of(&self.state, &memory.sockets, held) {
                room.touch(held, at_ms);
            }
            room.connect(
                id,
                Identity {
                    user: identity.user.clone(),
                    name: identity.name.clone(),
                    role,
                },
                lifetime_ms,
                now,
            )
        };
        if let Err(code @ (CloseCode::Banned | CloseCode::TooManySockets)) = result {
            // Told over the socket, so the client learns why (a refused upgrade looks
            // like a network failure to a browser): banned, or this user's sockets are
            // at the cap. The socket never reaches the room.
            self.pump().await?;
            let pair = WebSocketPair::new()?;
            pair.server.accept()?;
            pair.server.close(Some(code.code()), Some(code.reason()))?;
            return Response::from_websocket(pair.client);
        }
        if let Err(code) = result {
            self.pump().await?;
            return error(crate::http::upgrade_refused(code));
        }
        let pair = WebSocketPair::new()?;
        self.state.accept_web_socket(&pair.server);
        pair.server.serialize_attachment(Attachment {
            id,
            tenant: identity.tenant.clone(),
            user: identity.user,
            name: identity.name,
            role: identity.role,
            expires_at_ms: now + lifetime_ms,
        })?;
        self.memory.borrow_mut().sockets.insert(id, pair.server);
        self.pump().await?;
        driver::arm_alarm(self).await?;
        Response::from_websocket(pair.client)
    }

    async fn create(&self, info: RoomInfo) -> Result<Response> {
        let live = self
            .memory
            .borrow()
            .room
            .as_ref()
            .map(|r| r.status() == ovation_room::RoomStatus::Live);
        if live == Some(true) {
            return error(ApiError::new(
                409,
                "room_exists",
                "the room is already live",
            ));
        }
        // An ended room may be opened again: a new epoch tells clients to drop old state.
        let epoch = random_u53();
        if self.settlement().is_some() {
            let tenant = self.memory.borrow().tenant.clone();
            let ledger_room = ledger_room_account(&tenant, &info.room_id, epoch);
            let host = json!({ "host": ledger_user_account(&tenant, &info.host_user) }).to_string();
            match self
                .settlement_call(&format!("/v1/rooms/{ledger_room}/open"), host)
                .await
            {
                Ok((200, _)) => {}
                other => {
                    log_json(json!({"level":"error","event":"settlement_open_failed",
                                    "detail": format!("{other:?}")}));
                    return error(ApiError::new(
                        502,
                        "settlement_unavailable",
                        "the settlement service did not open the room's accounts",
                    ));
                }
            }
        }
        self.state.storage().delete_all().await?;
        let mut room = Room::create(info, epoch, now_ms());
        if let Err(e) = room.set_gift_catalog(self.gift_catalog()) {
            log_json(json!({"level":"error","event":"bad_gift_catalog","detail": e}));
        }
        let room_id = room.info().room_id.clone();
        let recorder =
            ovation_replay::Recorder::new(&room_id, &room.info().host_user, room.created_ms());
        {
            let mut memory = self.memory.borrow_mut();
            memory.room = Some(room);
            memory.recorder = Some(recorder);
            memory.recorder_saved = None;
        }
        driver::alarm_cleared(self); // the old room's alarm went with its storage
        self.pump().await?;
        json(
            json!({ "room": room_id, "epoch": epoch, "status": "live" }),
            201,
        )
    }

    fn admin(&self, command: AdminCommand) -> std::result::Result<AdminReply, ApiError> {
        let mut memory = self.memory.borrow_mut();
        let room = memory
            .room
            .as_mut()
            .ok_or_else(|| ApiError::new(404, "room_not_found", "no such room"))?;
        room.admin(command, now_ms())
            .map_err(|e: AdminError| ApiError::new(e.http_status(), e.code(), &e.message()))
    }

    /// The shard a viewer's socket goes to, in a sharded room (staff stay on the room:
    /// they get the staff-only notices).
    fn shard_for(&self, identity: &IdentityHeader) -> Option<u16> {
        if identity.role != Role::Viewer {
            return None;
        }
        let memory = self.memory.borrow();
        memory.room.as_ref()?.shard_for(&identity.user)
    }

    fn state_json(&self) -> std::result::Result<PullState, ApiError> {
        let memory = self.memory.borrow();
        let room = memory
            .room
            .as_ref()
            .ok_or_else(|| ApiError::new(404, "room_not_found", "no such room"))?;
        Ok(PullState {
            room: room.info().room_id.clone(),
            status: room.status().as_str().into(),
            epoch: room.epoch(),
            version: room.total_version(),
            parts: room
                .part_versions()
                .map(|(name, version)| (name.to_owned(), version))
                .collect(),
            action_cursor: room.last_seq(),
            likes: room.likes_total(),
            online: room.online(),
        })
    }

    async fn route(&self, mut req: Request) -> std::result::Result<Response, ApiError> {
        let internal = |e: Error| ApiError::internal(&e.to_string());
        self.ensure_loaded().await.map_err(internal)?;
        if req.method() == Method::Post && req.path() == "/shard-up" {
            // From the room's own shards (objects of this worker; not routable from outside).
            let bytes = req.bytes().await.map_err(internal)?;
            let result = {
                let mut memory = self.memory.borrow_mut();
                let room = memory
                    .room
                    .as_mut()
                    .ok_or_else(|| ApiError::new(404, "room_not_found", "no such room"))?;
                room.shard_up(&bytes, now_ms())
            };
            if let Err(e) = result {
                log_json(
                    json!({"level":"error","event":"shard_up_refused","detail": e.to_string()}),
                );
                return Err(ApiError::new(400, "bad_shard_batch", &e.to_string()));
            }
            return Ok(Response::empty().map_err(internal)?.with_status(204));
        }
        let identity: IdentityHeader = req
            .headers()
            .get(crate::contract::IDENTITY_HEADER)
            .ok()
            .flatten()
            .and_then(|h| serde_json::from_str(&h).ok())
            .ok_or_else(|| ApiError::internal("room object called without identity"))?;
        if !identity.tenant.is_empty() {
            self.memory.borrow_mut().tenant = identity.tenant.clone();
        }
        let url = req.url().map_err(internal)?;
        let query = |name: &str| {
            url.query_pairs()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.into_owned())
        };
        let path = url.path().to_owned();
        // A viewer of a big room goes to its shard.
        let shard = self.shard_for(&identity);
        let resp = match (req.method(), path.as_str()) {
            (Method::Get, "/ws") if shard.is_some() => {
                // The Worker connects the viewer to the shard itself: a socket handed
                // through this object would carry every frame through the room, the
                // one object sharding is there to unload.
                let index = shard.expect("checked");
                let (name, region) = self.object_name().expect("a sharded room exists");
                let mut resp = Response::empty().map_err(internal)?;
                let route = [
                    (crate::contract::ROOM_OBJECT_HEADER, name),
                    (crate::contract::SHARD_INDEX_HEADER, index.to_string()),
                    (crate::contract::REGION_HEADER, region),
                    (
                        crate::contract::LIFETIME_HEADER,
                        self.connection_lifetime_ms().to_string(),
                    ),
                ];
                for (header, value) in route {
                    resp.headers_mut().set(header, &value).map_err(internal)?;
                }
                resp
            }
            (Method::Get, "/ws") => {
                let echo = crate::http::offered_protocols(&req).contains(&SUBPROTOCOL.to_owned());
                let mut resp = self.accept(identity).await.map_err(internal)?;
                if echo && resp.status_code() == 101 {
                    resp.headers_mut()
                        .set("sec-websocket-protocol", SUBPROTOCOL)
                        .map_err(internal)?;
                }
                resp
            }
            (Method::Post, "/create") => {
                // Bodies are read as bytes by serde_json: JavaScript's JSON.parse would
                // round whole numbers above 2^53 (then refused as a 500).
                let info: RoomInfo = crate::http::json_body(&mut req).await?;
                info.validate()
                    .map_err(|e| ApiError::new(e.http_status(), e.code(), &e.message()))?;
                self.create(info).await.map_err(internal)?
            }
            (Method::Post, "/end") => {
                let ledger_room = self.ledger_room();
                let r = self.admin(AdminCommand::End)?;
                let mut body = r.to_json();
                self.pump().await.map_err(internal)?; // the last changes, then the recording ends
                if let Some(recorder) = self.memory.borrow().recorder.as_ref() {
                    body["replay"] = json!({
                        "from_ms": recorder.started_ms(), "to_ms": recorder.ended_ms(),
                        "truncated_at_ms": recorder.truncated_at_ms(),
                    });
                }
                // Ending a room settles its gifts (idempotent; re-run by ending again).
                if let (Some(ledger_room), Some(_)) = (ledger_room, self.settlement()) {
                    let path = format!("/v1/rooms/{ledger_room}/settle");
                    body["settlement"] = match self.settlement_call(&path, "{}".into()).await {
                        Ok((200, summary)) => {
                            serde_json::from_slice(&summary).unwrap_or(serde_json::Value::Null)
                        }
                        other => {
                            log_json(json!({"level":"error","event":"settle_failed",
                                            "detail": format!("{other:?}")}));
                            json!({ "status": "pending" })
                        }
                    };
                }
                json(body, 200).map_err(internal)?
            }
            (Method::Get, "/state") => json(self.state_json()?, 200).map_err(internal)?,
            (Method::Get, "/replay") => {
                let ms = |name: &str| query(name).and_then(|v| v.parse::<u64>().ok());
                let (Some(from), Some(to)) = (ms("from"), ms("to")) else {
                    return Err(ApiError::new(
                        400,
                        "replay_window_required",
                        "give the window as ?from=MS&to=MS (server time, ms)",
                    ));
                };
                ovation_replay::check_window(from, to)
                    .map_err(|e| ApiError::new(e.http_status(), e.code(), &e.message()))?;
                self.replay_window(from, to, query("snapshot").as_deref() != Some("false"))
                    .await?
            }
            (Method::Get, "/part") => {
                let name = query("name").unwrap_or_default();
                let version: u64 = query("v").and_then(|v| v.parse().ok()).unwrap_or(0);
                let memory = self.memory.borrow();
                let room = memory
                    .room
                    .as_ref()
                    .ok_or_else(|| ApiError::new(404, "room_not_found", "no such room"))?;
                match room.part_at(&name, version) {
                    Some(value) => {
                        let mut resp = Response::ok(value).map_err(internal)?;
                        let _ = resp.headers_mut().set("content-type", "application/json");
                        resp
                    }
                    None => {
                        return Err(ApiError::new(
                            404,
                            "part_version_not_found",
                            "no such part at that version (GET …/state for current versions)",
                        ))
                    }
                }
            }
            (Method::Get, "/events") => {
                let mut memory = self.memory.borrow_mut();
                let room = memory
                    .room
                    .as_mut()
                    .ok_or_else(|| ApiError::new(404, "room_not_found", "no such room"))?;
                let since = match query("since") {
                    Some(s) => s.parse::<u64>().map_err(|_| {
                        ApiError::new(400, "invalid_since", "since must be a sequence number")
                    })?,
                    None => room.last_seq(),
                };
                let (actions, gap) = room.actions_since(since, now_ms());
                let cursor = actions
                    .last()
                    .map(|a| a.seq)
                    .unwrap_or(since.min(room.last_seq()));
                let events = PullEvents {
                    events: actions.iter().map(PullAction::from).collect(),
                    gap,
                    cursor,
                    epoch: room.epoch(),
                    version: room.total_version(),
                    likes: room.likes_total(),
                    online: room.online(),
                    status: Some(room.status().as_str().into()),
                    server_time_ms: Some(now_ms()),
                    poll_interval_ms: PULL_INTERVAL_MS,
                };
                json(events, 200).map_err(internal)?
            }
            (Method::Get, "/audit") => {
                let memory = self.memory.borrow();
                let room = memory
                    .room
                    .as_ref()
                    .ok_or_else(|| ApiError::new(404, "room_not_found", "no such room"))?;
                let entries: Vec<&ovation_room::AuditEntry> = room.audit_trail().collect();
                json(json!({ "entries": entries }), 200).map_err(internal)?
            }
            (Method::Get, "/stats") => {
                let memory = self.memory.borrow();
                let room = memory
                    .room
                    .as_ref()
                    .ok_or_else(|| ApiError::new(404, "room_not_found", "no such room"))?;
                let mut stats = serde_json::to_value(room.stats()).unwrap_or_default();
                // The runtime's own count of the sockets this object holds: a big room's
                // viewers are on their shards, never here.
                stats["sockets_held"] = json!(self.state.get_websockets().len());
                // The isolate's wasm linear memory (every room object of the isolate
                // shares it; it never shrinks): `bench soak` tells it from the rest of
                // workerd's resident memory.
                #[cfg(target_arch = "wasm32")]
                {
                    stats["wasm_memory_bytes"] =
                        json!(core::arch::wasm32::memory_size::<0>() as u64 * 65_536);
                }
                json(stats, 200).map_err(internal)?
            }
            (Method::Post, "/admin") => {
                let request: AdminRequest = crate::http::json_body(&mut req).await?;
                let command = match request {
                    AdminRequest::Broadcast { text } => AdminCommand::Broadcast {
                        from_user: identity.user,
                        from_name: identity.name,
                        text,
                    },
                    AdminRequest::Direct { user, payload } => AdminCommand::Direct {
                        from_user: identity.user,
                        to_user: user,
                        payload,
                    },
                    AdminRequest::SetPart { name, value } => AdminCommand::SetPart { name, value },
                    AdminRequest::SetShards { shards } => AdminCommand::SetShards { shards },
                    AdminRequest::Staff { action } => AdminCommand::Staff {
                        by: Identity {
                            user: identity.user,
                            name: identity.name,
                            role: identity.role,
                        },
                        command: action,
                    },
                };
                json(self.admin(command)?.to_json(), 200).map_err(internal)?
            }
            _ => return Err(ApiError::new(404, "route_not_found", "no such route")),
        };
        Ok(resp)
    }
}

impl RoomObject {
    /// Feeds the recorder what the room did since it was last fed, writes the chunks it
    /// sealed, then saves it if it changed (a chunk is stored before the recorder that
    /// counts it). A failed write is logged: the recording has a hole, the room goes on.
    async fn record(&self) {
        let now = now_ms();
        let (sealed, recording) = {
            let mut memory = self.memory.borrow_mut();
            let Memory {
                room,
                recorder,
                tenant,
                ..
            } = &mut *memory;
            let (Some(room), Some(recorder)) = (room.as_mut(), recorder.as_mut()) else {
                return;
            };
            feed_recorder(room, recorder, now);
            let sealed: Vec<_> = std::iter::from_fn(|| recorder.poll_sealed()).collect();
            let started_ms = recorder.started_ms();
            (
                sealed,
                (tenant.clone(), room.info().room_id.clone(), started_ms),
            )
        };
        for chunk in sealed {
            if let Err(e) = self.write_chunk(&recording, chunk).await {
                log_json(json!({"level":"error","event":"replay_chunk_write_failed",
                                "detail": e.to_string()}));
            }
        }
        // Taken after the chunk writes (other events ran meanwhile), so a slower save
        // never overwrites a newer one. Saved only when changed: most pumps (a like, a
        // join) change no recording.
        let save = {
            let mut memory = self.memory.borrow_mut();
            let Memory {
                recorder,
                recorder_saved,
                ..
            } = &mut *memory;
            recorder.as_ref().and_then(|recorder| {
                (*recorder_saved != Some(recorder.revision())).then(|| {
                    *recorder_saved = Some(recorder.revision());
                    serde_json::to_string(recorder).unwrap_or_default()
                })
            })
        };
        if let Some(text) = save {
            let bytes = Uint8Array::from(text.as_bytes());
            if let Err(e) = self
                .state
                .storage()
                .put_raw(REPLAY_RECORDER_KEY, bytes)
                .await
            {
                log_json(json!({"level":"error","event":"replay_save_failed",
                                "detail": e.to_string()}));
            }
        }
    }

    fn chunk_key((tenant, room, started_ms): &(String, String, u64), index: u64) -> String {
        format!("{tenant}/{room}/{started_ms}/{index:08}")
    }

    async fn write_chunk(
        &self,
        recording: &(String, String, u64),
        chunk: ovation_replay::Sealed,
    ) -> Result<()> {
        match self.env.bucket(REPLAY_BUCKET) {
            Ok(bucket) => {
                let key = Self::chunk_key(recording, chunk.index);
                bucket.put(key, chunk.bytes).execute().await?;
            }
            Err(_) => {
                let key = format!("{REPLAY_KEY_PREFIX}chunk/{:08}", chunk.index);
                let bytes = Uint8Array::from(chunk.bytes.as_slice());
                self.state.storage().put_raw(&key, bytes).await?;
            }
        }
        Ok(())
    }

    async fn read_chunk(
        &self,
        recording: &(String, String, u64),
        index: u64,
    ) -> Result<Option<Vec<u8>>> {
        match self.env.bucket(REPLAY_BUCKET) {
            Ok(bucket) => match bucket
                .get(Self::chunk_key(recording, index))
                .execute()
                .await?
            {
                Some(object) => match object.body() {
                    Some(body) => Ok(Some(body.bytes().await?)),
                    None => Ok(None),
                },
                None => Ok(None),
            },
            Err(_) => {
                let key = format!("{REPLAY_KEY_PREFIX}chunk/{index:08}");
                let map = self
                    .state
                    .storage()
                    .get_multiple(vec![key.as_str()])
                    .await?;
                let value = map.get(&key.as_str().into());
                Ok((!value.is_undefined()).then(|| Uint8Array::new(&value).to_vec()))
            }
        }
    }

    /// `GET /replay?from&to[&snapshot=false]`: the window from the stored chunks and the
    /// open one. An ended room's answer says `x-ovation-replay-final` (the router caches it).
    async fn replay_window(
        &self,
        from: u64,
        to: u64,
        snapshot: bool,
    ) -> std::result::Result<Response, ApiError> {
        self.record().await;
        let (info, open, recording) = {
            let memory = self.memory.borrow();
            let recorder = memory
                .recorder
                .as_ref()
                .ok_or_else(|| ApiError::new(404, "room_not_found", "no such room"))?;
            let room = memory.room.as_ref().map(|r| r.info().room_id.clone());
            (
                recorder.info(),
                recorder.open_chunk_now().cloned(),
                (
                    memory.tenant.clone(),
                    room.unwrap_or_default(),
                    recorder.started_ms(),
                ),
            )
        };
        let mut chunks = Vec::new();
        for index in info.chunks_for(from, to) {
            if Some(index) == info.open_index {
                chunks.extend(open.clone());
                continue;
            }
            let bytes = self
                .read_chunk(&recording, index)
                .await
                .map_err(|e| ApiError::internal(&e.to_string()))?;
            if let Some(bytes) = bytes {
                let chunk = ovation_replay::Chunk::decode(&bytes)
                    .map_err(|e| ApiError::new(e.http_status(), e.code(), &e.message()))?;
                chunks.push(chunk);
            }
        }
        let window = info.window(&chunks, from, to, snapshot);
        let internal = |e: Error| ApiError::internal(&e.to_string());
        let mut resp = Response::from_json(&window).map_err(internal)?;
        // Where this room's chunks live: `r2`, or `object` (its own storage, no binding).
        let store = if self.env.bucket(REPLAY_BUCKET).is_ok() {
            "r2"
        } else {
            "object"
        };
        resp.headers_mut()
            .set(crate::REPLAY_STORE_HEADER, store)
            .map_err(internal)?;
        if info.ended_ms.is_some() {
            resp.headers_mut()
                .set(crate::contract::REPLAY_FINAL_HEADER, "1")
                .map_err(internal)?;
        }
        Ok(resp)
    }
}

/// Hands the recorder the actions after its cursor, every part version newer than it
/// has (and the parts gone), the like total, and the time (or the end).
fn feed_recorder(room: &mut Room, recorder: &mut ovation_replay::Recorder, now: u64) {
    // Until the end: a truncated recording still takes removals.
    while recorder.ended_ms().is_none() {
        let (actions, _gap) = room.actions_since(recorder.last_seq(), now);
        if actions.is_empty() {
            break;
        }
        for action in &actions {
            recorder.record_action(action);
        }
    }
    let versions: Vec<(String, u64)> = room
        .part_versions()
        .map(|(name, version)| (name.to_owned(), version))
        .collect();
    for (name, version) in &versions {
        if recorder.part_version(name).is_none_or(|v| v < *version) {
            if let Some(value) = room.part_at(name, *version) {
                recorder.record_part(name, *version, value, now);
            }
        }
    }
    let gone: Vec<String> = recorder
        .part_names()
        .filter(|name| !versions.iter().any(|(n, _)| n == name))
        .map(str::to_owned)
        .collect();
    for name in gone {
        recorder.record_part(&name, room.total_version(), "null", now);
    }
    recorder.record_likes(room.likes_total(), now);
    if room.status() == ovation_room::RoomStatus::Ended {
        recorder.end(now);
    } else {
        recorder.advance(now);
    }
}

impl driver::Host for RoomObject {
    type Core = Room;

    fn state(&self) -> &State {
        &self.state
    }

    fn with_driven<R>(&self, f: impl FnOnce(Driven<'_, Room>) -> R) -> R {
        let mut memory = self.memory.borrow_mut();
        let memory = &mut *memory;
        f(Driven {
            core: memory.room.as_mut(),
            sockets: &mut memory.sockets,
            timers: &mut memory.timers,
        })
    }

    async fn pump(&self) -> Result<()> {
        RoomObject::pump(self).await
    }
}

impl DurableObject for RoomObject {
    fn new(state: State, env: Env) -> Self {
        // Heartbeats are answered by the runtime without waking the object.
        if let Ok(pair) = WebSocketRequestResponsePair::new(
            ovation_proto::limits::HEARTBEAT_TEXT,
            ovation_proto::limits::HEARTBEAT_REPLY_TEXT,
        ) {
            state.set_websocket_auto_response(&pair);
        }
        RoomObject {
            state,
            env,
            memory: RefCell::new(Memory::default()),
        }
    }

    async fn fetch(&self, req: Request) -> Result<Response> {
        // A shard's batch is answered at once: its shard sends the next one only after
        // this answer, so holding it through our tick loop would stall the shard. The
        // tick then runs from the alarm (or from whichever event is already flushing).
        let from_shard = req.path() == "/shard-up";
        let resp = match self.route(req).await {
            Ok(resp) => resp,
            Err(e) => return error(e),
        };
        // Output from admin commands leaves with the next tick.
        self.pump().await?;
        if resp.status_code() != 101 && !from_shard {
            driver::run_ticks(self).await?;
        } else {
            driver::arm_alarm(self).await?;
        }
        Ok(resp)
    }

    async fn websocket_message(
        &self,
        ws: WebSocket,
        message: WebSocketIncomingMessage,
    ) -> Result<()> {
        self.ensure_loaded().await?;
        let Some(id) = crate::sockets::connection_of(&ws) else {
            return Ok(());
        };
        {
            let mut memory = self.memory.borrow_mut();
            let Some(room) = memory.room.as_mut() else {
                return Ok(());
            };
            match message {
                WebSocketIncomingMessage::Binary(bytes) => room.handle_frame(id, &bytes, now_ms()),
                WebSocketIncomingMessage::String(_) => room.handle_text(id, now_ms()),
            }
        }
        self.pump().await?;
        driver::run_ticks(self).await
    }

    async fn websocket_close(
        &self,
        ws: WebSocket,
        code: usize,
        reason: String,
        _was_clean: bool,
    ) -> Result<()> {
        self.ensure_loaded().await?;
        driver::forget_socket(self, &ws);
        // Hibernation API: complete the close handshake ourselves.
        let code = crate::sockets::close_reply_code(code);
        let _ = ws.close(Some(code), Some(reason));
        self.pump().await?;
        driver::run_ticks(self).await
    }

    async fn websocket_error(&self, ws: WebSocket, _error: Error) -> Result<()> {
        self.ensure_loaded().await?;
        driver::forget_socket(self, &ws);
        self.pump().await?;
        driver::run_ticks(self).await
    }

    async fn alarm(&self) -> Result<Response> {
        self.ensure_loaded().await?;
        driver::alarm_fired(self).await?;
        Response::empty()
    }
}
