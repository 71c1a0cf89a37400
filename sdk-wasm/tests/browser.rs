//! The glue in a real browser (headless Chromium through wasm-bindgen-test-runner and
//! chromedriver; `cargo xtask test` runs it). The server side is played by a scripted
//! WebSocket class and a stubbed `fetch`, so each test controls exactly what arrives and
//! checks what the glue did with the browser: the socket URL and subprotocols, binary
//! frames out, events in as JSON, timers firing, handlers detached on close, pull answers
//! read into the core. End-to-end runs against the real worker are `tests/sdk_node.rs`
//! (Node) and `tests/sdk_vite.rs` (a Vite app in Chromium).

#![cfg(target_arch = "wasm32")]

use ovation_proto::{
    Action, ActionBody, ClientFrame, Event, Role, ServerFrame, Welcome, PROTOCOL_VERSION,
    SUBPROTOCOL, UPGRADE_HELLO_QUERY,
};
use ovation_sdk_wasm::Session;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

#[wasm_bindgen(inline_js = r#"
export class FakeSocket {
  constructor(url, protocols) {
    this.url = url;
    this.protocols = protocols;
    this.sent = [];
    this.closed = null;
    this.binaryType = "blob";
    this.onopen = this.onmessage = this.onclose = this.onerror = null;
    FakeSocket.all.push(this);
  }
  send(data) {
    if (this.closed) throw new Error("send after close");
    this.sent.push(typeof data === "string" ? data : new Uint8Array(data));
  }
  close(code, reason) { this.closed = { code, reason }; }
  serverOpen() { if (this.onopen) this.onopen({ type: "open" }); }
  serverSend(bytes) { if (this.onmessage) this.onmessage({ data: bytes.slice().buffer }); }
  serverClose(code) { if (this.onclose) this.onclose({ code, reason: "" }); }
  lastSent() { return this.sent[this.sent.length - 1]; }
}
FakeSocket.all = [];

export function resetSockets() { FakeSocket.all = []; return FakeSocket; }
export function socketCount() { return FakeSocket.all.length; }
export function socketAt(i) { return FakeSocket.all[i]; }
export function sleep(ms) { return new Promise((resolve) => setTimeout(resolve, ms)); }

// The events a session hands out, parsed, in order.
export function collector() {
  const events = [];
  const take = (text) => { for (const e of JSON.parse(text)) events.push(e); };
  take.events = events;
  return take;
}
export function eventsOf(collector) { return collector.events; }

// fetch answering from a route table: { pathPrefix: [status, body] }; records requests.
export function stubFetch(routes) {
  const requests = [];
  globalThis.fetch = async (url, init) => {
    const path = new URL(url).pathname + new URL(url).search;
    requests.push({ path, authorization: init.headers.authorization });
    const prefix = Object.keys(routes).find((p) => path.startsWith(p));
    if (!prefix) return new Response(JSON.stringify({ code: "not_found", message: path }), { status: 404 });
    const [status, body] = routes[prefix];
    return new Response(typeof body === "string" ? body : JSON.stringify(body), { status });
  };
  return requests;
}
"#)]
extern "C" {
    type FakeSocket;
    #[wasm_bindgen(method, getter)]
    fn url(this: &FakeSocket) -> String;
    #[wasm_bindgen(method, getter)]
    fn protocols(this: &FakeSocket) -> js_sys::Array;
    #[wasm_bindgen(method, getter)]
    fn sent(this: &FakeSocket) -> js_sys::Array;
    #[wasm_bindgen(method, getter, js_name = binaryType)]
    fn binary_type(this: &FakeSocket) -> String;
    #[wasm_bindgen(method, getter)]
    fn closed(this: &FakeSocket) -> JsValue;
    #[wasm_bindgen(method, getter)]
    fn onmessage(this: &FakeSocket) -> JsValue;
    #[wasm_bindgen(method, getter)]
    fn onerror(this: &FakeSocket) -> JsValue;
    #[wasm_bindgen(method, js_name = serverOpen)]
    fn server_open(this: &FakeSocket);
    #[wasm_bindgen(method, js_name = serverSend)]
    fn server_send(this: &FakeSocket, bytes: &[u8]);
    #[wasm_bindgen(method, js_name = serverClose)]
    fn server_close(this: &FakeSocket, code: u16);
    #[wasm_bindgen(method, js_name = lastSent)]
    fn last_sent(this: &FakeSocket) -> JsValue;

    #[wasm_bindgen(js_name = resetSockets)]
    fn reset_sockets() -> JsValue;
    #[wasm_bindgen(js_name = socketCount)]
    fn socket_count() -> u32;
    #[wasm_bindgen(js_name = socketAt)]
    fn socket_at(index: u32) -> FakeSocket;
    fn sleep(ms: u32) -> js_sys::Promise;
    fn collector() -> js_sys::Function;
    #[wasm_bindgen(js_name = eventsOf)]
    fn events_of(collector: &js_sys::Function) -> js_sys::Array;
    #[wasm_bindgen(js_name = stubFetch)]
    fn stub_fetch(routes: &JsValue) -> js_sys::Array;
}

const ROOM: &str = "weur-glue";

fn options(transport: &str) -> JsValue {
    json(&format!(
        r#"{{"url":"http://127.0.0.1:9/","room":"{ROOM}","token":"tok","transport":"{transport}","seed":7}}"#
    ))
}

fn json(text: &str) -> JsValue {
    js_sys::JSON::parse(text).expect("test JSON")
}

fn get(value: &JsValue, key: &str) -> JsValue {
    js_sys::Reflect::get(value, &key.into()).unwrap()
}

fn error_code(result: Result<Session, JsValue>) -> String {
    let error = result.err().expect("the session is refused");
    assert!(
        error.is_instance_of::<js_sys::Error>(),
        "a JavaScript Error"
    );
    get(&error, "code").as_string().expect("a string code")
}

fn decode_sent(value: JsValue) -> ClientFrame {
    let bytes: js_sys::Uint8Array = value.dyn_into().expect("a binary frame");
    ClientFrame::decode(&bytes.to_vec()).expect("a valid client frame")
}

fn batch(events: Vec<Event>) -> Vec<u8> {
    ServerFrame::Batch {
        server_time_ms: js_sys::Date::now() as u64,
        events,
    }
    .encode()
}

fn welcome() -> Event {
    Event::Welcome(Welcome {
        protocol_version: PROTOCOL_VERSION,
        connection_id: 1,
        user: "ana".into(),
        role: Role::Viewer,
        epoch: 3,
        total_version: 1,
        action_cursor: 0,
        resumed: false,
        tick_ms: 50,
    })
}

/// Events of one type, as JavaScript objects.
fn of_type(collected: &js_sys::Function, kind: &str) -> Vec<JsValue> {
    events_of(collected)
        .iter()
        .filter(|e| get(e, "type").as_string().as_deref() == Some(kind))
        .collect()
}

async fn wait_ms(ms: u32) {
    JsFuture::from(sleep(ms)).await.unwrap();
}

/// A session over the scripted socket, opened and welcomed.
fn open_session() -> (Session, FakeSocket, js_sys::Function) {
    let ctor = reset_sockets();
    let collected = collector();
    let session = Session::new(options("ws"), ctor, collected.clone()).expect("a session");
    assert_eq!(socket_count(), 1, "the constructor opens one socket");
    let socket = socket_at(0);
    socket.server_open();
    socket.server_send(&batch(vec![welcome()]));
    (session, socket, collected)
}

#[wasm_bindgen_test]
fn bad_options_are_refused_with_stable_codes() {
    let ctor = reset_sockets();
    let no_events = collector();
    let with = |text: &str, ctor: JsValue| Session::new(json(text), ctor, no_events.clone());
    let code = error_code(with(
        r#"{"url":"http://h","room":"not a room!","token":"t"}"#,
        ctor.clone(),
    ));
    assert_eq!(code, "invalid_room");
    let code = error_code(with(
        r#"{"url":"ftp://h","room":"weur-a","token":"t"}"#,
        ctor.clone(),
    ));
    assert_eq!(code, "invalid_options");
    let code = error_code(with(r#"{"url":"http://h","room":"weur-a"}"#, ctor.clone()));
    assert_eq!(code, "invalid_options", "a missing token");
    let code = error_code(with(
        r#"{"url":"http://h","room":"weur-a","token":"t","transport":"carrier-pigeon"}"#,
        ctor,
    ));
    assert_eq!(code, "invalid_options");
    let code = error_code(with(
        r#"{"url":"http://h","room":"weur-a","token":"t"}"#,
        JsValue::UNDEFINED,
    ));
    assert_eq!(code, "no_websocket");
    assert_eq!(socket_count(), 0, "a refused session opens nothing");
}

#[wasm_bindgen_test]
fn the_socket_carries_url_subprotocol_and_binary_frames_both_ways() {
    let (session, socket, collected) = open_session();
    // A first join says its Hello in the upgrade (`?hello=1`): no Hello frame follows.
    assert_eq!(
        socket.url(),
        format!("ws://127.0.0.1:9/v1/rooms/{ROOM}/ws?{UPGRADE_HELLO_QUERY}")
    );
    let protocols: Vec<String> = socket
        .protocols()
        .iter()
        .map(|p| p.as_string().unwrap())
        .collect();
    assert_eq!(protocols, [SUBPROTOCOL.to_owned(), "token.tok".to_owned()]);
    assert_eq!(socket.binary_type(), "arraybuffer");
    assert_eq!(
        socket.sent().length(),
        0,
        "no Hello frame after the upgrade's"
    );
    let statuses = of_type(&collected, "status");
    let last = statuses.last().expect("a status event");
    assert_eq!(get(last, "status").as_string().as_deref(), Some("open"));

    socket.server_send(&batch(vec![Event::Action(Action {
        seq: 1,
        ts_ms: 5,
        user: "bob".into(),
        name: "Bob \"the builder\"".into(),
        body: ActionBody::Comment {
            text: "héllo\n✓".into(),
        },
    })]));
    let comments = of_type(&collected, "comment");
    assert_eq!(comments.len(), 1);
    assert_eq!(
        get(&comments[0], "text").as_string().as_deref(),
        Some("héllo\n✓")
    );
    assert_eq!(
        get(&comments[0], "name").as_string().as_deref(),
        Some("Bob \"the builder\"")
    );
    assert_eq!(get(&comments[0], "seq").as_f64(), Some(1.0));

    let id = session.comment("mine").expect("accepted for sending");
    let ClientFrame::Comment { client_id, text } = decode_sent(socket.last_sent()) else {
        panic!("a Comment frame");
    };
    assert_eq!((client_id as f64, text.as_str()), (id, "mine"));
    socket.server_send(&batch(vec![Event::Ack {
        client_id,
        seq: Some(2),
    }]));
    let done = of_type(&collected, "done");
    assert_eq!(done.len(), 1);
    assert_eq!(get(&done[0], "id").as_f64(), Some(id));
    assert_eq!(get(&done[0], "seq").as_f64(), Some(2.0));

    let error = session.comment(&"x".repeat(10_000)).expect_err("too long");
    assert_eq!(get(&error, "code").as_string().as_deref(), Some("too_long"));
}

#[wasm_bindgen_test]
async fn the_timer_flushes_coalesced_likes() {
    let (session, socket, _collected) = open_session();
    let sent_before = socket.sent().length();
    session.like(2);
    session.like(3);
    wait_ms(600).await;
    let likes: Vec<u32> = socket
        .sent()
        .iter()
        .skip(sent_before as usize)
        .filter(|f| !f.is_string())
        .filter_map(|f| match decode_sent(f) {
            ClientFrame::Like { count, .. } => Some(count),
            _ => None,
        })
        .collect();
    assert_eq!(
        likes,
        [5],
        "one frame carrying both likes, sent by the timer"
    );
}

#[wasm_bindgen_test]
async fn a_dropped_socket_is_replaced_and_close_detaches_everything() {
    let (session, socket, collected) = open_session();
    socket.server_close(1006);
    let statuses = of_type(&collected, "status");
    assert_eq!(
        get(statuses.last().unwrap(), "status")
            .as_string()
            .as_deref(),
        Some("reconnecting")
    );
    // Full-jitter backoff: the first retry waits at most the 500 ms base.
    wait_ms(800).await;
    assert_eq!(socket_count(), 2, "a new socket after the backoff");
    let second = socket_at(1);
    second.server_open();
    assert!(
        matches!(decode_sent(second.sent().get(0)), ClientFrame::Hello(h) if h.resume.is_some()),
        "the reconnect resumes"
    );
    session.close();
    let closed = second.closed();
    assert_eq!(get(&closed, "code").as_f64(), Some(1000.0));
    assert!(
        !second.onmessage().is_function(),
        "handlers detached on close"
    );
    let statuses = of_type(&collected, "status");
    assert_eq!(
        get(statuses.last().unwrap(), "status")
            .as_string()
            .as_deref(),
        Some("closed")
    );
    wait_ms(300).await;
    assert_eq!(socket_count(), 2, "nothing reopens after close");
}

#[wasm_bindgen_test]
async fn pull_answers_are_fetched_with_the_token_and_read_into_events() {
    let now = js_sys::Date::now();
    let routes = json(&format!(
        r#"{{
        "/v1/rooms/{ROOM}/state": [200, {{"epoch":4,"version":2,"parts":{{"poll":2}},
            "action_cursor":0,"likes":7,"online":3,"status":"live"}}],
        "/v1/rooms/{ROOM}/parts/poll?v=2": [200, "{{\"question\":\"tea?\"}}"],
        "/v1/rooms/{ROOM}/events": [200, {{"events":[{{"seq":1,"ts_ms":10,"user":"u1",
            "name":"Una","kind":"comment","text":"pulled"}},{{"seq":2,"ts_ms":11,"user":"u2",
            "name":"Gil","kind":"gift","sku":"rose","qty":2,"amount":20}}],
            "gap":false,"cursor":2,"epoch":4,"version":2,"likes":7,"online":3,
            "poll_interval_ms":60000,"server_time_ms":{now}}}]
        }}"#
    ));
    let requests = stub_fetch(&routes);
    let collected = collector();
    let session = Session::new(options("pull"), JsValue::UNDEFINED, collected.clone())
        .expect("a pull session");
    wait_ms(300).await;
    let paths: Vec<String> = requests
        .iter()
        .map(|r| get(&r, "path").as_string().unwrap())
        .collect();
    assert!(paths[0].ends_with("/state"), "state first: {paths:?}");
    assert!(paths.iter().any(|p| p.contains("/parts/poll?v=2")));
    assert!(paths.iter().any(|p| p.contains("/events?since=")));
    for request in requests.iter() {
        assert_eq!(
            get(&request, "authorization").as_string().as_deref(),
            Some("Bearer tok")
        );
    }
    let parts = of_type(&collected, "part");
    assert_eq!(
        get(&parts[0], "value").as_string().as_deref(),
        Some("{\"question\":\"tea?\"}")
    );
    let comments = of_type(&collected, "comment");
    assert_eq!(
        get(&comments[0], "text").as_string().as_deref(),
        Some("pulled")
    );
    let gifts = of_type(&collected, "gift");
    assert_eq!(get(&gifts[0], "amount").as_f64(), Some(20.0));
    assert_eq!(get(&gifts[0], "qty").as_f64(), Some(2.0));
    let error = session.comment("hi").expect_err("pull is receive-only");
    assert_eq!(
        get(&error, "code").as_string().as_deref(),
        Some("unsupported_transport")
    );
    session.close();
}

#[wasm_bindgen_test]
async fn a_malformed_pull_answer_is_reported_not_applied() {
    let routes = json(&format!(
        r#"{{ "/v1/rooms/{ROOM}/state": [200, {{"epoch":"four","version":2,"parts":{{}},
            "action_cursor":0,"likes":0,"online":0,"status":"live"}}] }}"#
    ));
    let requests = stub_fetch(&routes);
    let collected = collector();
    let session =
        Session::new(options("pull"), JsValue::UNDEFINED, collected.clone()).expect("a session");
    wait_ms(300).await;
    assert!(requests.length() >= 1);
    assert!(
        of_type(&collected, "part").is_empty() && of_type(&collected, "version").is_empty(),
        "nothing from a malformed answer is applied"
    );
    let opened = of_type(&collected, "status")
        .iter()
        .any(|s| get(s, "status").as_string().as_deref() == Some("open"));
    assert!(!opened, "a malformed state does not open the session");
    session.close();
}

#[wasm_bindgen_test]
async fn a_refused_upgrade_is_explained_by_one_state_request_and_ends_with_its_code() {
    // A browser tells the page nothing about a refused upgrade: a close 1006 before open.
    let requests = stub_fetch(&json(&format!(
        r#"{{"/v1/rooms/{ROOM}/state": [401, {{"code":"token_expired","message":"the token expired"}}]}}"#
    )));
    let ctor = reset_sockets();
    let collected = collector();
    let _session = Session::new(options("ws"), ctor, collected.clone()).expect("a session");
    let socket = socket_at(0);
    socket.server_close(1006);
    wait_ms(100).await;
    let paths: Vec<(String, String)> = requests
        .iter()
        .map(|r| {
            let path = get(&r, "path").as_string().unwrap();
            (path, get(&r, "authorization").as_string().unwrap())
        })
        .collect();
    assert_eq!(
        paths,
        [(format!("/v1/rooms/{ROOM}/state"), "Bearer tok".to_owned())]
    );
    let errors = of_type(&collected, "error");
    assert_eq!(
        errors
            .iter()
            .map(|e| get(e, "code").as_string().unwrap())
            .collect::<Vec<_>>(),
        ["token_expired"]
    );
    let statuses = of_type(&collected, "status");
    let last = statuses.last().unwrap();
    assert_eq!(get(last, "status").as_string().as_deref(), Some("closed"));
    assert_eq!(
        get(last, "reason").as_string().as_deref(),
        Some("token_expired")
    );
    wait_ms(800).await;
    assert_eq!(socket_count(), 1, "no reconnect after a refusal");
}

#[wasm_bindgen_test]
fn a_socket_let_go_of_keeps_an_error_listener() {
    // `ws` in Node emits `error` when a socket still connecting is closed; with no
    // listener that is an uncaught exception.
    let ctor = reset_sockets();
    let session = Session::new(options("ws"), ctor, collector()).expect("a session");
    let socket = socket_at(0);
    session.close();
    assert_eq!(get(&socket.closed(), "code").as_f64(), Some(1000.0));
    assert!(!socket.onmessage().is_function(), "handlers detached");
    assert!(socket.onerror().is_function(), "an error listener stays");
}
