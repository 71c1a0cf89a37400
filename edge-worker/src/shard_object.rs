//! The Shard Durable Object of a big room: a thin host around `ovation_room::Shard`.
//!
//! The router sends a viewer's WebSocket upgrade to the shard the viewer is placed on
//! (`/ws`, with the room object's name and the shard's index in headers), as the room
//! object named it or from the router's memory of the room's shard count (`join.rs`). The shard
//! sends the room one `ShardUp` per tick (`POST /shard-up` on the room object) and
//! applies the room's `ShardDown` batches (`POST /down`), each in order: one request in
//! flight per direction, the rest queued. A batch up whose request fails is sent again by
//! the core (`UpAnswer`), and the core's record (`ShardOutput::Persist`: the batch in
//! flight, the likes acknowledged since) is stored before anything after it is sent, so
//! acknowledged likes survive a crash of the shard. Sockets are hibernatable like the
//! room's; a woken shard has lost its copy of the room's state and asks for a snapshot.

use crate::contract::{
    Attachment, IdentityHeader, LIFETIME_HEADER, ROOM_OBJECT_HEADER, SHARD_INDEX_HEADER,
};
use crate::driver::{self, Driven, Timers};
use crate::http::{error, upgrade_refused, ApiError};
use crate::platform::{log_json, now_ms, random_u53};
use ovation_proto::{ClientFrame, CloseCode, SUBPROTOCOL};
use ovation_room::{ConnectionId, Identity, Shard, ShardOutput, UpAnswer};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use worker::js_sys::Uint8Array;
use worker::*;

/// Storage key of the shard's own record (which room, which index).
const PLACE_KEY: &str = "place";
/// Storage key of the core's record (`ShardOutput::Persist`).
const RECORD_KEY: &str = "record";

/// Where this shard belongs, stored so a woken shard knows its room.
#[derive(Clone, Serialize, Deserialize)]
struct Place {
    room_object: String,
    index: u16,
    region: String,
}

#[derive(Default)]
struct Memory {
    loaded: bool,
    place: Option<Place>,
    shard: Option<Shard>,
    sockets: HashMap<ConnectionId, WebSocket>,
    /// Batches for the room (number, bytes), in order; one request in flight.
    up_queue: VecDeque<(u64, Vec<u8>)>,
    /// The core's record read at load, for `start_shard`.
    record: Option<Vec<u8>>,
    up_sending: bool,
    timers: Timers,
}

#[durable_object]
pub struct ShardObject {
    state: State,
    env: Env,
    memory: RefCell<Memory>,
}

impl ShardObject {
    async fn ensure_loaded(&self) -> Result<()> {
        if self.memory.borrow().loaded {
            return Ok(());
        }
        let place: Option<Place> = self.state.storage().get(PLACE_KEY).await.ok().flatten();
        let records = self.state.storage().get_multiple(vec![RECORD_KEY]).await?;
        let record = Some(records.get(&RECORD_KEY.into()))
            .filter(|value| !value.is_undefined())
            .map(|value| Uint8Array::new(&value).to_vec());
        let mut memory = self.memory.borrow_mut();
        if memory.loaded {
            return Ok(());
        }
        memory.loaded = true;
        memory.record = record;
        if let Some(place) = place {
            memory.place = Some(place);
            self.start_shard(&mut memory);
        }
        Ok(())
    }

    /// A shard core (its copy of the room comes with the first snapshot), from its
    /// record when it has one, with the sockets that survived hibernation.
    fn start_shard(&self, memory: &mut Memory) {
        let index = memory.place.as_ref().expect("placed").index;
        let now = now_ms();
        let restored = memory
            .record
            .take()
            .map(|record| Shard::restore(index, &record, now));
        let mut shard = match restored {
            Some(Ok(shard)) => shard,
            Some(Err(e)) => {
                // Not ours to read (another build's): its likes cannot be recovered.
                log_json(json!({"level":"error","event":"shard_record_unreadable",
                                "detail": e.to_string()}));
                Shard::new(index, random_u53(), now)
            }
            None => Shard::new(index, random_u53(), now),
        };
        for ws in self.state.get_websockets() {
            let Ok(Some(att)) = ws.deserialize_attachment::<Attachment>() else {
                continue;
            };
            let identity = Identity {
                user: att.user,
                name: att.name,
                role: att.role,
            };
            shard.reattach(att.id, identity, att.expires_at_ms, att.hello_heard, now);
            memory.sockets.insert(att.id, ws);
        }
        memory.shard = Some(shard);
    }

    fn room_stub(&self) -> Result<Stub> {
        let place = self
            .memory
            .borrow()
            .place
            .clone()
            .ok_or_else(|| Error::RustError("shard without a room".into()))?;
        self.env
            .durable_object("ROOMS")?
            .get_by_name_with_location_hint(&place.room_object, &place.region)
    }

    /// Applies the shard's outputs: frames (one JavaScript buffer per distinct frame),
    /// closes, the record, and batches for the room (sent in order).
    async fn pump(&self) -> Result<()> {
        let writes = self.apply_outputs();
        Self::await_writes(writes).await;
        self.send_up().await
    }

    /// Awaits the record's writes. A failed one is logged, not returned: the outputs
    /// after it already went out, and the core must go on (its batch in flight waits for
    /// an answer only this object gives).
    async fn await_writes(writes: Vec<worker::js_sys::Promise>) {
        for write in writes {
            if let Err(e) = wasm_bindgen_futures::JsFuture::from(write).await {
                log_json(json!({"level":"error","event":"shard_record_not_stored",
                                "detail": format!("{e:?}")}));
            }
        }
    }

    /// Applies what the core put out, except the batches up (queued). A record's write is
    /// started where it comes, before the sends after it: the platform holds those sends
    /// until the write is durable. Returns the writes to await.
    fn apply_outputs(&self) -> Vec<worker::js_sys::Promise> {
        let mut writes = Vec::new();
        {
            let mut memory = self.memory.borrow_mut();
            let Memory {
                shard,
                sockets,
                up_queue,
                ..
            } = &mut *memory;
            let Some(shard) = shard.as_mut() else {
                return writes;
            };
            while let Some(output) = shard.poll_output() {
                match output {
                    ShardOutput::Send { connections, frame } => {
                        crate::sockets::send_to(sockets, connections, &frame);
                    }
                    ShardOutput::Close { connection, code } => {
                        if let Some(ws) = sockets.remove(&connection) {
                            let _ = ws.close(Some(code.code()), Some(code.reason()));
                        }
                    }
                    ShardOutput::Up { seq, batch } => up_queue.push_back((seq, batch)),
                    ShardOutput::Persist(record) => {
                        let value = Uint8Array::from(&record[..]);
                        let storage = self.state.storage();
                        match storage.as_raw().put(RECORD_KEY, value.into()) {
                            Ok(write) => writes.push(write),
                            Err(e) => log_json(json!({"level":"error",
                                "event":"shard_record_not_stored", "detail": format!("{e:?}")})),
                        }
                    }
                    ShardOutput::Log(record) => log_json(json!({
                        "level": "warn", "event": record.event, "code": record.code,
                        "connection": record.connection, "user": record.user,
                        "detail": record.detail,
                    })),
                }
            }
        }
        writes
    }

    /// Sends queued batches to the room, one request at a time (whoever finds the queue
    /// idle drains it; events that come meanwhile only add to it).
    async fn send_up(&self) -> Result<()> {
        if self.memory.borrow().up_sending {
            return Ok(());
        }
        self.memory.borrow_mut().up_sending = true;
        let result = async {
            loop {
                let Some((seq, bytes)) = self.memory.borrow_mut().up_queue.pop_front() else {
                    return Ok(());
                };
                // The core sends a failed batch again (the room applies each number once)
                // and drops one the room refused for good (logged with its likes). Every
                // request gets an answer, or the core would wait for it forever.
                let answer = match self.post_up(&bytes).await {
                    Ok(204) => UpAnswer::Applied,
                    Ok(status) if (400..500).contains(&status) => {
                        log_json(json!({"level":"error","event":"shard_up_refused",
                                        "status": status}));
                        UpAnswer::Refused
                    }
                    Ok(status) => {
                        log_json(json!({"level":"warn","event":"shard_up_failed",
                                        "status": status}));
                        UpAnswer::Failed
                    }
                    Err(e) => {
                        log_json(json!({"level":"warn","event":"shard_up_failed",
                                        "detail": e.to_string()}));
                        UpAnswer::Failed
                    }
                };
                if let Some(shard) = self.memory.borrow_mut().shard.as_mut() {
                    shard.up_answered(seq, answer, now_ms());
                }
                // The answer may let the next batch go (or log): queue it.
                let writes = self.apply_outputs();
                Self::await_writes(writes).await;
            }
        }
        .await;
        self.memory.borrow_mut().up_sending = false;
        result
    }

    /// One batch to the room (`POST /shard-up`); its status.
    async fn post_up(&self, bytes: &[u8]) -> Result<u16> {
        let stub = self.room_stub()?;
        let mut init = RequestInit::new();
        init.with_method(Method::Post)
            .with_body(Some(Uint8Array::from(bytes).into()));
        // The room's name (`tenant/room`): a room object woken by this batch with no other
        // source of its tenant learns it here.
        if let Some(place) = self.memory.borrow().place.as_ref() {
            let headers = Headers::new();
            headers.set(ROOM_OBJECT_HEADER, &place.room_object)?;
            init.with_headers(headers);
        }
        let req = Request::new_with_init("https://do/shard-up", &init)?;
        Ok(stub.fetch_with_request(req).await?.status_code())
    }

    /// The first request from the room (a viewer's upgrade or a batch) names the room
    /// and the shard's index; they are stored for later wake-ups.
    async fn place(&self, req: &Request) -> Result<()> {
        if self.memory.borrow().place.is_some() {
            return Ok(());
        }
        let header = |name: &str| req.headers().get(name).ok().flatten().unwrap_or_default();
        let index: u16 = header(SHARD_INDEX_HEADER)
            .parse()
            .map_err(|_| Error::RustError("shard called without its index".into()))?;
        let room_object = header(ROOM_OBJECT_HEADER);
        let region = room_object
            .split('/')
            .nth(1)
            .and_then(|room| room.split('-').next())
            .unwrap_or_default()
            .to_owned();
        let place = Place {
            room_object,
            index,
            region,
        };
        self.state.storage().put(PLACE_KEY, &place).await?;
        let mut memory = self.memory.borrow_mut();
        if memory.place.is_none() {
            memory.place = Some(place);
            self.start_shard(&mut memory);
        }
        Ok(())
    }

    /// A viewer's upgrade, sent by the router: on the room object's word, or from the
    /// router's memory of the room's shard count (`contract::ROUTE_REMEMBERED_HEADER`).
    async fn accept(&self, req: &Request) -> Result<Response> {
        let header = |name: &str| req.headers().get(name).ok().flatten().unwrap_or_default();
        let identity: IdentityHeader =
            serde_json::from_str(&header(crate::contract::IDENTITY_HEADER))
                .map_err(|_| Error::RustError("shard called without identity".into()))?;
        if let Some(epoch) = req
            .headers()
            .get(crate::contract::ROUTE_REMEMBERED_HEADER)
            .ok()
            .flatten()
        {
            // Placed from memory: taken only if this shard can vouch for that opening of
            // its room (checked before anything is stored or armed). Else the router asks
            // the room object, which may have opened again with other shards, or none.
            let vouched = epoch.parse::<u64>().is_ok_and(|epoch| {
                self.memory
                    .borrow()
                    .shard
                    .as_ref()
                    .is_some_and(|shard| !shard.refuses_remembered_route(epoch))
            });
            if !vouched {
                return error(ApiError::new(
                    crate::join::ROUTE_STALE_STATUS,
                    "shard_route_stale",
                    "this shard cannot vouch for the room's opening; ask the room object",
                ));
            }
        }
        // The opening the room object placed the socket in, when it did just now (a route
        // from the router's memory was vouched for above: its opening is the copy's, and
        // the client's Hello says the rest).
        let placed_in = header(crate::contract::EPOCH_HEADER).parse::<u64>().ok();
        // The router draws the lifetime; one that did not (an older build) gets one here.
        let lifetime_ms = header(LIFETIME_HEADER)
            .parse()
            .unwrap_or_else(|_| crate::platform::connection_lifetime_ms(&self.env));
        self.place(req).await?;
        let now = now_ms();
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
            let shard = memory.shard.as_mut().expect("started above");
            // The user's heartbeats first: at the per-user cap only a silent socket of
            // theirs gives its place.
            let held = shard.connections_of(&identity.user);
            for (held, at_ms) in crate::sockets::heartbeats_of(&self.state, &memory.sockets, held) {
                shard.touch(held, at_ms);
            }
            let person = Identity {
                user: identity.user.clone(),
                name: identity.name.clone(),
                role: identity.role,
            };
            shard.connect_placed(id, person, lifetime_ms, placed_in, now)
        };
        if result == Err(CloseCode::ConnectRateLimited) {
            // Refused before any socket exists, as the Worker refuses it.
            return error(upgrade_refused(CloseCode::ConnectRateLimited));
        }
        let pair = WebSocketPair::new()?;
        if let Err(code) = result {
            // Told over the socket, so a banned viewer stops reconnecting.
            pair.server.accept()?;
            pair.server.close(Some(code.code()), Some(code.reason()))?;
            self.pump().await?;
            return with_subprotocol(req, Response::from_websocket(pair.client)?);
        }
        self.state.accept_web_socket(&pair.server);
        let hello_heard = match self.memory.borrow_mut().shard.as_mut() {
            Some(shard) => {
                if let Some(hello) = crate::contract::upgrade_hello(req.headers()) {
                    // As the room object does: the upgrade's Hello is the socket's first
                    // frame.
                    shard.handle_frame(id, &ClientFrame::Hello(hello).encode(), now);
                }
                shard.hello_heard(id)
            }
            None => false,
        };
        pair.server.serialize_attachment(Attachment {
            id,
            tenant: identity.tenant,
            user: identity.user,
            name: identity.name,
            role: identity.role,
            expires_at_ms: now + lifetime_ms,
            hello_heard,
        })?;
        self.memory.borrow_mut().sockets.insert(id, pair.server);
        self.pump().await?;
        driver::arm_alarm(self).await?;
        with_subprotocol(req, Response::from_websocket(pair.client)?)
    }
}

/// Echoes `ovation.v1` when the client offered it (clients refuse a socket without it).
fn with_subprotocol(req: &Request, mut resp: Response) -> Result<Response> {
    if crate::http::offered_protocols(req)
        .iter()
        .any(|p| p == SUBPROTOCOL)
    {
        resp.headers_mut()
            .set("sec-websocket-protocol", SUBPROTOCOL)?;
    }
    Ok(resp)
}

impl driver::Host for ShardObject {
    type Core = Shard;

    fn state(&self) -> &State {
        &self.state
    }

    fn with_driven<R>(&self, f: impl FnOnce(Driven<'_, Shard>) -> R) -> R {
        let mut memory = self.memory.borrow_mut();
        let memory = &mut *memory;
        f(Driven {
            core: memory.shard.as_mut(),
            sockets: &mut memory.sockets,
            timers: &mut memory.timers,
        })
    }

    async fn pump(&self) -> Result<()> {
        ShardObject::pump(self).await
    }
}

impl DurableObject for ShardObject {
    fn new(state: State, env: Env) -> Self {
        if let Ok(pair) = WebSocketRequestResponsePair::new(
            ovation_proto::limits::HEARTBEAT_TEXT,
            ovation_proto::limits::HEARTBEAT_REPLY_TEXT,
        ) {
            state.set_websocket_auto_response(&pair);
        }
        ShardObject {
            state,
            env,
            memory: RefCell::new(Memory::default()),
        }
    }

    /// Requests from the room (an upgrade, a batch) are answered at once: the room sends
    /// its next batch only after this answer. Ticks run from the alarm or from the event
    /// that is already flushing.
    async fn fetch(&self, mut req: Request) -> Result<Response> {
        self.ensure_loaded().await?;
        let path = req.path();
        match (req.method(), path.as_str()) {
            (Method::Get, "/ws") => {
                let resp = self.accept(&req).await?;
                // A shard sent back unplaced stays as it was; a placed one (woken from
                // hibernation, waiting for its state) still runs its ticks.
                let placed = self.memory.borrow().place.is_some();
                if resp.status_code() != crate::join::ROUTE_STALE_STATUS || placed {
                    driver::arm_alarm(self).await?;
                }
                Ok(resp)
            }
            (Method::Post, "/down") => {
                self.place(&req).await?;
                let bytes = req.bytes().await?;
                let result = {
                    let mut memory = self.memory.borrow_mut();
                    match memory.shard.as_mut() {
                        Some(shard) => shard
                            .handle_down(&bytes, now_ms())
                            .map_err(|e| e.to_string()),
                        None => Err("shard not placed yet".to_owned()),
                    }
                };
                self.pump().await?;
                driver::arm_alarm(self).await?;
                match result {
                    Ok(()) => Response::empty().map(|r| r.with_status(204)),
                    Err(detail) => {
                        log_json(
                            json!({"level":"error","event":"shard_down_refused","detail": detail}),
                        );
                        Response::error(detail, 400)
                    }
                }
            }
            _ => Response::error("no such route", 404),
        }
    }

    async fn websocket_message(
        &self,
        ws: WebSocket,
        message: WebSocketIncomingMessage,
    ) -> Result<()> {
        self.ensure_loaded().await?;
        let Some(attachment) = crate::sockets::attachment_of(&ws) else {
            return Ok(());
        };
        let id = attachment.id;
        {
            let mut memory = self.memory.borrow_mut();
            let Some(shard) = memory.shard.as_mut() else {
                return Ok(());
            };
            match message {
                WebSocketIncomingMessage::Binary(bytes) => shard.handle_frame(id, &bytes, now_ms()),
                WebSocketIncomingMessage::String(text) => {
                    if let Some(reply) = shard.handle_text(id, &text, now_ms()) {
                        let _ = ws.send_with_str(reply);
                    }
                }
            }
            crate::sockets::record_hello(&ws, attachment, shard.hello_heard(id));
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
