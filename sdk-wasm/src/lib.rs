//! wasm-bindgen glue around [`ovation_client::Client`]: nothing but I/O.
//!
//! The core decides; this crate opens and closes WebSockets (any object with the browser
//! WebSocket API: the page's own, a webview's, or the `ws` package in Node), performs
//! `fetch` for the pull transport, arms one `setTimeout` for the core's next deadline,
//! and hands events to JavaScript as one JSON text per turn (see `Client::drain_events_json`).
//! The JavaScript wrapper in `npm/` turns them into `room.on(...)` callbacks.
//!
//! Re-entrancy: JavaScript handlers may call back into the session (a `comment` from a
//! `comment` handler). The core is never borrowed while JavaScript runs: each turn
//! collects its transmits and events under the borrow, releases it, then calls out.
//!
//! The bindings are declared here rather than taken from web-sys because they must also
//! bind Node's `ws` objects and Node's `setTimeout` (which returns an object, not a
//! number), and because every kilobyte of the SDK is downloaded by every viewer.

#![forbid(unsafe_code)]

use ovation_client::{
    ActionError, Client, Config, FailureCode, FetchKind, FetchReply, Status, Transmit,
    TransportMode,
};

mod pull;

use std::cell::RefCell;
use std::rc::Rc;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

#[wasm_bindgen]
extern "C" {
    /// Anything with the WebSocket API.
    type Socket;
    #[wasm_bindgen(method, setter = binaryType)]
    fn set_binary_type(this: &Socket, value: &str);
    #[wasm_bindgen(method, catch, js_name = send)]
    fn send_bytes(this: &Socket, data: &js_sys::Uint8Array) -> Result<(), JsValue>;
    #[wasm_bindgen(method, catch, js_name = send)]
    fn send_text(this: &Socket, data: &str) -> Result<(), JsValue>;
    #[wasm_bindgen(method, catch)]
    fn close(this: &Socket, code: u16, reason: &str) -> Result<(), JsValue>;
    #[wasm_bindgen(method, setter)]
    fn set_onopen(this: &Socket, handler: Option<&js_sys::Function>);
    #[wasm_bindgen(method, setter)]
    fn set_onmessage(this: &Socket, handler: Option<&js_sys::Function>);
    #[wasm_bindgen(method, setter)]
    fn set_onclose(this: &Socket, handler: Option<&js_sys::Function>);
    #[wasm_bindgen(method, setter)]
    fn set_onerror(this: &Socket, handler: Option<&js_sys::Function>);

    #[wasm_bindgen(js_name = setTimeout)]
    fn set_timeout(handler: &js_sys::Function, delay_ms: f64) -> JsValue;
    #[wasm_bindgen(js_name = clearTimeout)]
    fn clear_timeout(handle: &JsValue);
    #[wasm_bindgen(js_name = fetch)]
    fn fetch(url: &str, init: &JsValue) -> js_sys::Promise;
    /// A response's `headers` (the `Headers` API).
    type Headers;
    #[wasm_bindgen(method, catch, js_name = get)]
    fn header(this: &Headers, name: &str) -> Result<JsValue, JsValue>;
    /// `Number(value)`: a header's digits as a number (`null` is 0), without Rust's
    /// integer parsing in every viewer's download.
    #[wasm_bindgen(js_name = Number)]
    fn to_number(value: &JsValue) -> f64;
    /// What `Promise.allSettled` returns: a promise that fulfils once every promise given
    /// settled, and never rejects.
    type AllSettled;
    #[wasm_bindgen(js_namespace = Promise, js_name = allSettled)]
    fn all_settled(promises: &js_sys::Array) -> AllSettled;
    #[wasm_bindgen(method, js_name = then)]
    fn then_call(this: &AllSettled, on_fulfilled: &JsValue);
}

/// What to do with a promise's outcome: its value, or its rejection reason.
type Settled = Box<dyn FnOnce(Result<JsValue, JsValue>)>;

/// Calls `done` once when `promise` settles. A fetch is two promises (the response, then
/// its body); awaiting them through wasm-bindgen-futures cost its executor and an async
/// state machine in every viewer's download. `allSettled` never rejects, so one
/// self-freeing callback per promise sees both outcomes and nothing is left behind.
fn on_settled(promise: &js_sys::Promise, done: Settled) {
    let callback = Closure::once_into_js(move |results: JsValue| {
        let outcome = js_sys::Reflect::get_u32(&results, 0).unwrap_or_default();
        let field = |name: &str| js_sys::Reflect::get(&outcome, &name.into()).unwrap_or_default();
        if field("status").as_string().as_deref() == Some("fulfilled") {
            done(Ok(field("value")));
        } else {
            done(Err(field("reason")));
        }
    });
    all_settled(&js_sys::Array::of1(promise)).then_call(&callback);
}

fn now_ms() -> u64 {
    js_sys::Date::now() as u64
}

/// A JavaScript `Error` with a stable `code` property.
#[inline(never)]
fn js_error(code: &str, message: &str) -> JsValue {
    let error = js_sys::Error::new(message);
    let _ = js_sys::Reflect::set(&error, &"code".into(), &code.into());
    error.into()
}

#[inline(never)]
fn action_error(e: ActionError) -> JsValue {
    js_error(e.code.as_str(), &e.message)
}

type Handler = Closure<dyn FnMut(JsValue)>;

struct OpenSocket {
    socket: Socket,
    _handlers: [Handler; 4],
}

struct Inner {
    client: Client,
    base_url: String,
    token: String,
    websocket: Option<js_sys::Function>,
    /// By id; one or two at a time (a closing one and its replacement).
    sockets: Vec<(u64, OpenSocket)>,
    timer: Option<(JsValue, Closure<dyn FnMut()>)>,
    timer_at_ms: Option<u64>,
    /// Let go once the session closed: it reaches the application's room, which holds
    /// this session, a cycle through a wasm root the garbage collector never frees.
    on_events: Option<js_sys::Function>,
}

/// One connection to one room.
#[wasm_bindgen]
pub struct Session {
    inner: Rc<RefCell<Inner>>,
}

#[wasm_bindgen]
impl Session {
    /// `options`: `{ url, room, token, transport?, seed }`; `websocket`: a WebSocket
    /// constructor (or undefined for pull); `on_events`: called with the JSON text of an
    /// array of events (one `JSON.parse` per turn is the fast way into JavaScript).
    #[wasm_bindgen(constructor)]
    pub fn new(
        options: JsValue,
        websocket: JsValue,
        on_events: js_sys::Function,
    ) -> Result<Session, JsValue> {
        let field = |name: &str| js_sys::Reflect::get(&options, &name.into()).ok();
        let text = |name: &str| {
            field(name).and_then(|v| v.as_string()).ok_or_else(|| {
                js_error(
                    "invalid_options",
                    &["options.", name, " must be a string"].concat(),
                )
            })
        };
        let transport = match field("transport").and_then(|v| v.as_string()).as_deref() {
            None => TransportMode::Auto,
            Some(t) => TransportMode::parse(t).ok_or_else(|| {
                js_error(
                    "invalid_options",
                    "transport is \"auto\", \"ws\" or \"pull\"",
                )
            })?,
        };
        let room = ovation_proto::RoomId::parse(&text("room")?)
            .map_err(|e| js_error("invalid_room", e.message()))?;
        let base_url = text("url")?.trim_end_matches('/').to_owned();
        if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
            return Err(js_error(
                "invalid_options",
                "url must be http:// or https://",
            ));
        }
        let token = text("token")?;
        let websocket = websocket.dyn_into::<js_sys::Function>().ok();
        if websocket.is_none() && transport != TransportMode::Pull {
            return Err(js_error(
                "no_websocket",
                "no WebSocket here: pass one (`ws`) or use transport \"pull\"",
            ));
        }
        let client = Client::new(
            Config {
                room: room.as_str().to_owned(),
                transport,
                seed: field("seed").and_then(|v| v.as_f64()).unwrap_or(0.0) as u64,
            },
            now_ms(),
        );
        let inner = Rc::new(RefCell::new(Inner {
            client,
            base_url,
            token,
            websocket,
            sockets: Vec::new(),
            timer: None,
            timer_at_ms: None,
            on_events: Some(on_events),
        }));
        turn(&inner);
        Ok(Session { inner })
    }

    pub fn comment(&self, text: &str) -> Result<f64, JsValue> {
        self.act(|c, now| c.comment(text, now))
    }

    pub fn reaction(&self, kind: &str) -> Result<f64, JsValue> {
        self.act(|c, now| c.reaction(kind, now))
    }

    pub fn direct(&self, to_user: &str, payload: &str) -> Result<f64, JsValue> {
        self.act(|c, now| c.direct(to_user, payload, now))
    }

    #[wasm_bindgen(js_name = setPart)]
    pub fn set_part(&self, name: &str, value: &str) -> Result<f64, JsValue> {
        self.act(|c, now| c.set_part(name, value, now))
    }

    pub fn gift(&self, gift_id: &str, sku: &str, qty: u32) -> Result<f64, JsValue> {
        self.act(|c, now| c.gift(gift_id, sku, qty, now))
    }

    pub fn vote(&self, poll_id: &str, option: u32) -> Result<f64, JsValue> {
        self.act(|c, now| c.vote(poll_id, option, now))
    }

    pub fn answer(&self, quiz_id: &str, question: u32, option: u32) -> Result<f64, JsValue> {
        self.act(|c, now| c.answer(quiz_id, question, option, now))
    }

    pub fn ask(&self, text: &str) -> Result<f64, JsValue> {
        self.act(|c, now| c.ask(text, now))
    }

    pub fn upvote(&self, question_id: &str) -> Result<f64, JsValue> {
        self.act(|c, now| c.upvote(question_id, now))
    }

    #[wasm_bindgen(js_name = productClick)]
    pub fn product_click(&self, product_id: &str) -> Result<f64, JsValue> {
        self.act(|c, now| c.product_click(product_id, now))
    }

    pub fn command(&self, json: &str) -> Result<f64, JsValue> {
        self.act(|c, now| c.command(json, now))
    }

    /// How many likes were queued; the rest are told in a `likes_dropped` event.
    pub fn like(&self, count: u32) -> u32 {
        let queued = self.inner.borrow_mut().client.like(count, now_ms());
        turn(&self.inner);
        queued
    }

    #[wasm_bindgen(js_name = serverNow)]
    pub fn server_now(&self) -> f64 {
        self.inner.borrow().client.server_now(now_ms()) as f64
    }

    /// The clock offset estimate (server minus local, ms), or undefined before a sample.
    #[wasm_bindgen(js_name = clockOffset)]
    pub fn clock_offset(&self) -> Option<f64> {
        self.inner
            .borrow()
            .client
            .clock()
            .offset_ms()
            .map(|o| o as f64)
    }

    pub fn close(&self) {
        self.inner.borrow_mut().client.close();
        turn(&self.inner);
    }

    fn act(
        &self,
        action: impl FnOnce(&mut Client, u64) -> Result<u64, ActionError>,
    ) -> Result<f64, JsValue> {
        let result = action(&mut self.inner.borrow_mut().client, now_ms());
        self.acted(result)
    }

    /// The part of every action after the core's call, kept out of line: one copy instead
    /// of one per action method (0.24 KB gzipped of wasm).
    #[inline(never)]
    fn acted(&self, result: Result<u64, ActionError>) -> Result<f64, JsValue> {
        turn(&self.inner);
        result.map(|id| id as f64).map_err(action_error)
    }
}

/// One turn: perform what the core asks, hand its events out, re-arm the timer.
fn turn(inner: &Rc<RefCell<Inner>>) {
    let (transmits, events_json, on_events, closed) = {
        let mut guard = inner.borrow_mut();
        let state = &mut *guard;
        let transmits: Vec<Transmit> =
            std::iter::from_fn(|| state.client.poll_transmit()).collect();
        let mut events_json = String::new();
        let count = state.client.drain_events_json(&mut events_json);
        (
            transmits,
            (count > 0).then_some(events_json),
            state.on_events.clone(),
            state.client.status() == Status::Closed,
        )
    };
    for transmit in transmits {
        perform(inner, transmit);
    }
    arm_timer(inner);
    if let (Some(json), Some(on_events)) = (events_json, on_events) {
        let _ = on_events.call1(&JsValue::NULL, &JsValue::from_str(&json));
    }
    if closed {
        // Its last events were told: what a closed session is asked later (a like) the
        // JavaScript answers itself.
        inner.borrow_mut().on_events = None;
    }
}

fn arm_timer(inner: &Rc<RefCell<Inner>>) {
    let mut state = inner.borrow_mut();
    let at = state.client.poll_timeout();
    if at == state.timer_at_ms && state.timer.is_some() {
        return;
    }
    if let Some((handle, _)) = state.timer.take() {
        clear_timeout(&handle);
    }
    state.timer_at_ms = at;
    let Some(at) = at else { return };
    let weak = Rc::downgrade(inner);
    let callback = Closure::<dyn FnMut()>::new(move || {
        if let Some(inner) = weak.upgrade() {
            {
                let mut state = inner.borrow_mut();
                state.timer = None;
                state.timer_at_ms = None;
                state.client.handle_timeout(now_ms());
            }
            turn(&inner);
        }
    });
    // Within `setTimeout`'s range (2^31 - 1 ms): past it a timer fires at once, and a
    // deadline the server set weeks away (a `GoAway`'s wait) woke this loop every few
    // milliseconds. One capped fires early, finds nothing due and sets the next.
    let delay_ms = at.saturating_sub(now_ms()).min(i32::MAX as u64) as f64;
    let handle = set_timeout(callback.as_ref().unchecked_ref(), delay_ms);
    state.timer = Some((handle, callback));
}

fn perform(inner: &Rc<RefCell<Inner>>, transmit: Transmit) {
    match transmit {
        Transmit::OpenSocket { socket, path } => open_socket(inner, socket, &path),
        // Sent with no borrow held: a socket that calls its handlers inside `send` (a
        // webview's bridge may) finds the state free, not a borrow that panics.
        Transmit::Send { socket, frame } => {
            let socket = socket_by_id(&inner.borrow(), socket);
            if let Some(socket) = socket {
                // An owned copy: `ws` in Node may queue the buffer past this call.
                let _ = socket.send_bytes(&js_sys::Uint8Array::from(&frame[..]));
            }
        }
        Transmit::SendText { socket, text } => {
            let socket = socket_by_id(&inner.borrow(), socket);
            if let Some(socket) = socket {
                let _ = socket.send_text(text);
            }
        }
        Transmit::CloseSocket {
            socket,
            code,
            reason,
        } => {
            if let Some(open) = let_go(inner, socket) {
                let _ = open.socket.close(code, &reason);
            }
        }
        Transmit::Fetch {
            request,
            path,
            kind,
        } => start_fetch(inner, request, &path, kind),
    }
}

/// Takes a socket out of the session, its handlers detached: the session holds only the
/// sockets it may still hear from, however often it reconnects.
fn let_go(inner: &Rc<RefCell<Inner>>, id: u64) -> Option<OpenSocket> {
    let open = {
        let mut state = inner.borrow_mut();
        let index = state
            .sockets
            .iter()
            .position(|(open_id, _)| *open_id == id)?;
        state.sockets.remove(index).1
    };
    detach(&open.socket);
    Some(open)
}

fn socket_by_id(state: &Inner, id: u64) -> Option<Socket> {
    state
        .sockets
        .iter()
        .find(|(open_id, _)| *open_id == id)
        .map(|(_, open)| JsValue::from(&open.socket).unchecked_into())
}

thread_local! {
    /// The `onerror` of every socket a session let go of, for good: `ws` in Node emits
    /// `error` when a socket still connecting is closed (a connect timeout), and an
    /// `error` event nobody listens to is an uncaught exception that crashes the app.
    static IGNORE_ERRORS: JsValue = Closure::<dyn FnMut(JsValue)>::new(|_: JsValue| {}).into_js_value();
}

fn detach(socket: &Socket) {
    socket.set_onopen(None);
    socket.set_onmessage(None);
    socket.set_onclose(None);
    IGNORE_ERRORS.with(|ignore| socket.set_onerror(Some(ignore.unchecked_ref())));
}

fn open_socket(inner: &Rc<RefCell<Inner>>, id: u64, path: &str) {
    let (ctor, url, protocols) = {
        let state = inner.borrow();
        // http:// → ws://, https:// → wss:// (the constructor checked the scheme).
        let ws_base = [
            "ws",
            state.base_url.strip_prefix("http").unwrap_or_default(),
        ]
        .concat();
        let protocols = js_sys::Array::of2(
            &ovation_proto::SUBPROTOCOL.into(),
            &["token.", &state.token].concat().into(),
        );
        (
            state.websocket.clone(),
            [&ws_base, path].concat(),
            protocols,
        )
    };
    let Some(ctor) = ctor else { return };
    let args = js_sys::Array::of2(&url.into(), &protocols);
    let socket: Socket = match js_sys::Reflect::construct(&ctor, &args) {
        Ok(s) => s.unchecked_into(),
        Err(_) => {
            inner.borrow_mut().client.handle_socket_closed(
                id,
                1006,
                "WebSocket constructor threw",
                now_ms(),
            );
            turn(inner);
            return;
        }
    };
    socket.set_binary_type("arraybuffer");
    // `f` answers whether the socket is done: a socket the server (or the network) closed
    // is let go with its handlers, this one among them (wasm-bindgen frees a closure
    // dropped while it runs once it returns), so a session holds only live sockets.
    let handler = |f: fn(&mut Client, u64, JsValue) -> bool| {
        let weak = Rc::downgrade(inner);
        Closure::<dyn FnMut(JsValue)>::new(move |event: JsValue| {
            if let Some(inner) = weak.upgrade() {
                let done = f(&mut inner.borrow_mut().client, id, event);
                if done {
                    drop(let_go(&inner, id));
                }
                turn(&inner);
            }
        })
    };
    let on_open = handler(|c, id, _| {
        c.handle_socket_open(id, now_ms());
        false
    });
    let on_message = handler(|c, id, event| {
        let data = js_sys::Reflect::get(&event, &"data".into()).unwrap_or(JsValue::UNDEFINED);
        if data.is_string() {
            c.handle_socket_text(id, now_ms());
        } else {
            let bytes = js_sys::Uint8Array::new(&data).to_vec();
            c.handle_socket_message(id, &bytes, now_ms());
        }
        false
    });
    let on_close = handler(|c, id, event| {
        let code = js_sys::Reflect::get(&event, &"code".into())
            .ok()
            .and_then(|c| c.as_f64())
            .unwrap_or(1006.0) as u16;
        let reason = js_sys::Reflect::get(&event, &"reason".into())
            .ok()
            .and_then(|r| r.as_string())
            .unwrap_or_default();
        c.handle_socket_closed(id, code, &reason, now_ms());
        // Heard from no more: let it go.
        true
    });
    // An error is always followed by a close event; the close carries the code.
    let on_error = handler(|_, _, _| false);
    socket.set_onopen(Some(on_open.as_ref().unchecked_ref()));
    socket.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    socket.set_onclose(Some(on_close.as_ref().unchecked_ref()));
    socket.set_onerror(Some(on_error.as_ref().unchecked_ref()));
    inner.borrow_mut().sockets.push((
        id,
        OpenSocket {
            socket,
            _handlers: [on_open, on_message, on_close, on_error],
        },
    ));
}

fn start_fetch(inner: &Rc<RefCell<Inner>>, request: u64, path: &str, kind: FetchKind) {
    let (url, init) = {
        let state = inner.borrow();
        let headers = js_sys::Object::new();
        let _ = js_sys::Reflect::set(
            &headers,
            &"authorization".into(),
            &["Bearer ", &state.token].concat().into(),
        );
        let init = js_sys::Object::new();
        let _ = js_sys::Reflect::set(&init, &"headers".into(), &headers);
        ([&state.base_url, path].concat(), init)
    };
    let weak = Rc::downgrade(inner);
    fetch_reply(
        &url,
        &init,
        kind,
        Box::new(move |reply| {
            if let Some(inner) = weak.upgrade() {
                inner
                    .borrow_mut()
                    .client
                    .handle_fetch(request, reply, now_ms());
                turn(&inner);
            }
        }),
    );
}

/// A failed promise's reason as text (an `Error`'s message, else the value as a string).
fn describe(reason: &JsValue) -> String {
    match reason.dyn_ref::<js_sys::Error>() {
        Some(error) => error.message().into(),
        None => reason
            .as_string()
            .unwrap_or_else(|| "fetch failed".to_owned()),
    }
}

fn failed(status: u16, code: FailureCode, message: String) -> FetchReply {
    FetchReply::Failed {
        status,
        code,
        message,
    }
}

/// Fetches `url` and calls `done` once with the reply: the body read as `kind` asks, or why
/// not (`network` for a failed request or body, `http_<status>` or the server's `code` for
/// an answer outside 2xx, `bad_response` for a malformed pull answer).
fn fetch_reply(url: &str, init: &JsValue, kind: FetchKind, done: Box<dyn FnOnce(FetchReply)>) {
    on_settled(
        &fetch(url, init),
        Box::new(move |response| {
            let response = match response {
                Ok(r) => r,
                Err(e) => return done(failed(0, FailureCode::Network, describe(&e))),
            };
            let get =
                |name: &str| js_sys::Reflect::get(&response, &name.into()).unwrap_or_default();
            let status = get("status").as_f64().unwrap_or(0.0) as u16;
            let success = (200..300).contains(&status);
            let part = success && kind == FetchKind::Part;
            let reader = if part { "text" } else { "json" };
            // A part that moved on is answered at its newest version, named in a header
            // (versions stay below 2^53, exact as a number).
            let newer = if part {
                let headers: Headers = get("headers").unchecked_into();
                let version = headers.header(ovation_proto::PART_VERSION_HEADER);
                let version = to_number(&version.unwrap_or_default());
                // `Number` of no header is 0, of anything but digits NaN (0 as u64).
                Some(version as u64).filter(|v| (1..1 << 53).contains(v))
            } else {
                None
            };
            let body: Result<js_sys::Promise, JsValue> = get(reader)
                .dyn_into::<js_sys::Function>()
                .and_then(|method| method.call0(&response))
                .and_then(|promise| promise.dyn_into());
            let body = match body {
                Ok(body) => body,
                Err(_) if !success => return done(refused(status, &JsValue::UNDEFINED)),
                Err(e) => return done(failed(0, FailureCode::Network, describe(&e))),
            };
            on_settled(
                &body,
                Box::new(move |body| {
                    done(match body {
                        Err(_) if !success => refused(status, &JsValue::UNDEFINED),
                        Ok(body) if !success => refused(status, &body),
                        // A 2xx body that is not JSON (a proxy's HTML page): told as
                        // `bad_response` with its status, not as a network failure.
                        Err(e) if e.is_instance_of::<js_sys::SyntaxError>() => {
                            failed(status, FailureCode::BadResponse, describe(&e))
                        }
                        Err(e) => failed(0, FailureCode::Network, describe(&e)),
                        // A part's value is JSON: a 2xx that is not (a proxy's page, an
                        // empty 204) is no value, or the page would stand as the part until
                        // the part changed.
                        Ok(text) if part => {
                            let value = text.as_string().unwrap_or_default();
                            match js_sys::JSON::parse(&value) {
                                Ok(_) => FetchReply::Part { value, newer },
                                Err(e) => failed(status, FailureCode::BadResponse, describe(&e)),
                            }
                        }
                        Ok(json) => {
                            let parsed = if kind == FetchKind::State {
                                pull::state(&json).map(FetchReply::State)
                            } else {
                                pull::events(&json).map(FetchReply::Events)
                            };
                            parsed.unwrap_or_else(|pull::BadField(field)| {
                                let message =
                                    ["the answer's `", field, "` is missing or malformed"].concat();
                                failed(status, FailureCode::BadResponse, message)
                            })
                        }
                    })
                }),
            );
        }),
    );
}

/// An answer outside 2xx: the server's `code` and `message` when its JSON body has them.
fn refused(status: u16, body: &JsValue) -> FetchReply {
    let field = |name: &str| {
        js_sys::Reflect::get(body, &name.into())
            .ok()
            .and_then(|v| v.as_string())
    };
    let code = FailureCode::from_api(status, field("code").as_deref());
    failed(status, code, field("message").unwrap_or_default())
}

/// Decodes one server batch into the JSON text a session hands to JavaScript: what the
/// SDK benchmark measures in the browser (followed there by `JSON.parse` and dispatch).
#[wasm_bindgen(js_name = benchDecode)]
pub fn bench_decode(frame: &[u8]) -> String {
    let mut client = Client::new(
        Config {
            room: "weur-bench".into(),
            transport: TransportMode::Ws,
            seed: 1,
        },
        0,
    );
    client.handle_socket_open(1, 0);
    while client.poll_transmit().is_some() {}
    while client.poll_event().is_some() {} // the initial status, not part of the batch
    client.handle_socket_message(1, frame, 0);
    let mut json = String::new();
    client.drain_events_json(&mut json);
    json
}

/// Video sync for one player (see `ovation_client::playback`): the JavaScript glue feeds
/// cues and the playhead, and takes the cues due.
#[wasm_bindgen]
pub struct Playback {
    core: ovation_client::playback::Playback,
}

#[wasm_bindgen]
impl Playback {
    #[wasm_bindgen(constructor)]
    pub fn new() -> Playback {
        Playback {
            core: ovation_client::playback::Playback::new(),
        }
    }

    /// A cue the player found (metadata track or hls.js sample) at `media_ms`.
    #[wasm_bindgen(js_name = addCue)]
    pub fn add_cue(&mut self, id: &str, media_ms: f64) {
        self.core.add_cue(id, media_ms.max(0.0) as u64);
    }

    /// The playhead (`currentTime` in ms) and its wall-clock time from
    /// EXT-X-PROGRAM-DATE-TIME (ms since the epoch), when known.
    pub fn playhead(&mut self, media_ms: f64, wall_ms: Option<f64>) {
        self.core
            .playhead(media_ms.max(0.0) as u64, wall_ms.map(|w| w.max(0.0) as u64));
    }

    pub fn seek(&mut self, media_ms: f64, wall_ms: Option<f64>) {
        self.core
            .seek(media_ms.max(0.0) as u64, wall_ms.map(|w| w.max(0.0) as u64));
    }

    /// The next cue due, as its `cue` event's JSON (`ovation_client::cue_event_json`; the
    /// player adds the media time, which is its to know).
    #[wasm_bindgen(js_name = pollCue)]
    pub fn poll_cue(&mut self) -> Option<String> {
        self.core.poll_told()
    }

    /// An open interaction waits for the cue `cue_id`: it opens when that cue plays or at
    /// once when the cue lies behind the playhead (see `ovation_client::playback`).
    /// `opened_ms`: when it opened on the server; `open_at_attach`: it came with the state
    /// the player was attached to.
    #[wasm_bindgen(js_name = awaitCue)]
    pub fn await_cue(&mut self, cue_id: &str, opened_ms: Option<f64>, open_at_attach: bool) {
        let opened_ms = opened_ms
            .filter(|ms| ms.is_finite())
            .map(|ms| ms.max(0.0) as u64);
        self.core.await_cue(cue_id, opened_ms, open_at_attach);
    }

    /// The next cue id whose waiting interactions open now (each once).
    #[wasm_bindgen(js_name = pollOpen)]
    pub fn poll_open(&mut self) -> Option<String> {
        self.core.poll_open()
    }

    /// Server events up to this time (ms since the epoch) may show; undefined while the
    /// playhead's wall-clock time is unknown.
    #[wasm_bindgen(js_name = releaseBeforeMs)]
    pub fn release_before_ms(&self) -> Option<f64> {
        self.core.release_before_ms().map(|ms| ms as f64)
    }
}

impl Default for Playback {
    fn default() -> Playback {
        Playback::new()
    }
}
