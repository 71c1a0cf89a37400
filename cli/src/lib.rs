//! A small blocking client for the Ovation edge: the HTTP admin API and the `ovation.v1`
//! WebSocket. Used by the `ovation` CLI and by the integration tests.

#![forbid(unsafe_code)]

use ovation_proto::{
    ClientFrame, Event, Hello, Resume, ServerFrame, PROTOCOL_VERSION, SUBPROTOCOL,
};
use serde_json::Value;
use std::collections::VecDeque;
use std::io;
use std::net::TcpStream;
use std::time::{Duration, Instant};
use tungstenite::client::IntoClientRequest;
use tungstenite::protocol::frame::coding::CloseCode as WsCloseCode;
use tungstenite::{Message, WebSocket};

pub type Error = String;

/// HTTP admin API client.
#[derive(Clone, Debug)]
pub struct Api {
    pub base: String,
    pub token: String,
}

/// An HTTP reply: status and JSON body (or `{"raw": text}` when it is not JSON).
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
    pub cache_control: Option<String>,
    pub cache: Option<String>,
    /// The `retry-after` header of a refusal that names its wait (seconds).
    pub retry_after: Option<String>,
    /// The version a part read answered when the part had moved on from the one asked
    /// for (`x-ovation-part-version`).
    pub part_version: Option<String>,
}

impl Api {
    pub fn new(base: &str, token: &str) -> Api {
        Api {
            base: base.trim_end_matches('/').to_owned(),
            token: token.to_owned(),
        }
    }

    fn finish(result: Result<ureq::Response, ureq::Error>) -> Result<Reply, Error> {
        let response = match result {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => return Err(format!("request failed: {e}")),
        };
        let status = response.status();
        let cache_control = response.header("cache-control").map(str::to_owned);
        let cache = response.header("x-ovation-cache").map(str::to_owned);
        let retry_after = response.header("retry-after").map(str::to_owned);
        let part_version = response
            .header(ovation_proto::PART_VERSION_HEADER)
            .map(str::to_owned);
        let text = response
            .into_string()
            .map_err(|e| format!("reading body: {e}"))?;
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Ok(Reply {
            status,
            body,
            cache_control,
            cache,
            retry_after,
            part_version,
        })
    }

    fn request(&self, method: &str, path: &str) -> ureq::Request {
        let agent = ureq::AgentBuilder::new()
            .timeout(Duration::from_secs(30))
            .build();
        let request = agent.request(method, &format!("{}{path}", self.base));
        if self.token.is_empty() {
            request
        } else {
            request.set("Authorization", &format!("Bearer {}", self.token))
        }
    }

    pub fn get(&self, path: &str) -> Result<Reply, Error> {
        Api::finish(self.request("GET", path).call())
    }

    pub fn get_with_headers(&self, path: &str, headers: &[(&str, &str)]) -> Result<Reply, Error> {
        let mut request = self.request("GET", path);
        for (name, value) in headers {
            request = request.set(name, value);
        }
        Api::finish(request.call())
    }

    pub fn post(&self, path: &str, body: &Value) -> Result<Reply, Error> {
        Api::finish(self.request("POST", path).send_json(body.clone()))
    }

    pub fn put(&self, path: &str, body: &Value) -> Result<Reply, Error> {
        Api::finish(self.request("PUT", path).send_json(body.clone()))
    }

    /// Every room of one directory list (`live` or `archived`), `GET /v1/rooms` a page of
    /// `page_rooms` at a time, followed by `next` to the last page. A refused page ends it
    /// with that reply.
    pub fn all_rooms(&self, status: &str, page_rooms: usize) -> Result<Vec<Value>, Box<Reply>> {
        let mut rooms = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let mut path = format!("/v1/rooms?status={status}&limit={page_rooms}");
            if let Some(after) = &after {
                path.push_str("&after=");
                path.push_str(after);
            }
            let reply = self.get(&path).map_err(|e| {
                Box::new(Reply {
                    status: 0,
                    body: serde_json::json!({ "error": e }),
                    cache_control: None,
                    cache: None,
                    retry_after: None,
                    part_version: None,
                })
            })?;
            if reply.status != 200 {
                return Err(Box::new(reply));
            }
            let page = reply.body["rooms"].as_array().cloned().unwrap_or_default();
            rooms.extend(page);
            match reply.body["next"].as_str() {
                // A next that does not move on (a server ignoring `after`) ends the walk.
                Some(next) if after.as_deref() != Some(next) => after = Some(next.to_owned()),
                _ => return Ok(rooms),
            }
        }
    }

    /// Sends raw bytes as the body (for malformed-input tests).
    pub fn post_raw(&self, path: &str, body: &[u8]) -> Result<Reply, Error> {
        self.send_raw("POST", path, body)
    }

    /// `post_raw` for `PUT` (a part's value exactly as written).
    pub fn put_raw(&self, path: &str, body: &[u8]) -> Result<Reply, Error> {
        self.send_raw("PUT", path, body)
    }

    fn send_raw(&self, method: &str, path: &str, body: &[u8]) -> Result<Reply, Error> {
        Api::finish(
            self.request(method, path)
                .set("content-type", "application/json")
                .send_bytes(body),
        )
    }
}

/// Why a socket stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SocketEnd {
    /// Closed by the server with this code and reason.
    Closed(u16, String),
    /// The HTTP upgrade was refused: status and body.
    Refused(u16, String),
    Io(String),
}

/// An `ovation.v1` WebSocket connection (blocking).
pub struct Socket {
    ws: WebSocket<TcpStream>,
    pending: VecDeque<Event>,
    texts: VecDeque<String>,
    pub frames_received: u64,
    pub last_server_time_ms: u64,
}

impl Socket {
    /// Connects and sends `Hello` (with `resume` when given).
    pub fn connect(
        base: &str,
        room: &str,
        token: &str,
        resume: Option<Resume>,
    ) -> Result<Socket, SocketEnd> {
        let mut socket = Socket::open(base, room, token)?;
        socket
            .send(&ClientFrame::Hello(Hello {
                protocol_version: PROTOCOL_VERSION,
                resume,
            }))
            .map_err(SocketEnd::Io)?;
        Ok(socket)
    }

    /// Opens the socket without sending anything (token in `?token=`).
    pub fn open(base: &str, room: &str, token: &str) -> Result<Socket, SocketEnd> {
        Socket::open_with(
            base,
            &format!("/v1/rooms/{room}/ws?token={token}"),
            SUBPROTOCOL,
        )
    }

    /// Opens the socket with more in its query (`hello=1`: the upgrade says the Hello, as
    /// a first join of the SDK does; the room answers Welcome without a frame).
    pub fn open_with_query(
        base: &str,
        room: &str,
        token: &str,
        query: &str,
    ) -> Result<Socket, SocketEnd> {
        Socket::open_with(
            base,
            &format!("/v1/rooms/{room}/ws?token={token}&{query}"),
            SUBPROTOCOL,
        )
    }

    /// Opens the socket with headers of the caller's own beside the token (what a
    /// non-browser client can send and a browser cannot: the router must not trust them).
    pub fn open_with_headers(
        base: &str,
        room: &str,
        token: &str,
        headers: &[(&str, &str)],
    ) -> Result<Socket, SocketEnd> {
        Socket::open_with_extra(
            base,
            &format!("/v1/rooms/{room}/ws?token={token}"),
            SUBPROTOCOL,
            headers,
        )
    }

    /// Opens the socket with the token in the subprotocol list (`token.<jwt>`), the way
    /// browsers pass it (they cannot set headers).
    pub fn open_with_protocol_token(
        base: &str,
        room: &str,
        token: &str,
    ) -> Result<Socket, SocketEnd> {
        let protocols = format!("{SUBPROTOCOL}, token.{token}");
        Socket::open_with(base, &format!("/v1/rooms/{room}/ws"), &protocols)
    }

    fn open_with(base: &str, path: &str, protocols: &str) -> Result<Socket, SocketEnd> {
        Socket::open_with_extra(base, path, protocols, &[])
    }

    fn open_with_extra(
        base: &str,
        path: &str,
        protocols: &str,
        headers: &[(&str, &str)],
    ) -> Result<Socket, SocketEnd> {
        let ws_base = base.replacen("http://", "ws://", 1);
        let url = format!("{ws_base}{path}");
        let mut request = url
            .into_client_request()
            .map_err(|e| SocketEnd::Io(e.to_string()))?;
        request.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            protocols
                .parse()
                .map_err(|_| SocketEnd::Io("bad protocol header".into()))?,
        );
        for &(name, value) in headers {
            let name = tungstenite::http::HeaderName::from_bytes(name.as_bytes())
                .map_err(|e| SocketEnd::Io(e.to_string()))?;
            let value = value
                .parse()
                .map_err(|_| SocketEnd::Io("bad header".into()))?;
            request.headers_mut().insert(name, value);
        }
        let host = base
            .trim_start_matches("http://")
            .split('/')
            .next()
            .unwrap_or_default()
            .to_owned();
        let stream = TcpStream::connect(&host).map_err(|e| SocketEnd::Io(e.to_string()))?;
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .map_err(|e| SocketEnd::Io(e.to_string()))?;
        let (ws, _) = tungstenite::client(request, stream).map_err(|e| match e {
            tungstenite::HandshakeError::Failure(tungstenite::Error::Http(resp)) => {
                let status = resp.status().as_u16();
                let body = resp
                    .body()
                    .as_ref()
                    .map(|b| String::from_utf8_lossy(b).into_owned())
                    .unwrap_or_default();
                SocketEnd::Refused(status, body)
            }
            other => SocketEnd::Io(other.to_string()),
        })?;
        Ok(Socket {
            ws,
            pending: VecDeque::new(),
            texts: VecDeque::new(),
            frames_received: 0,
            last_server_time_ms: 0,
        })
    }

    pub fn send(&mut self, frame: &ClientFrame) -> Result<(), Error> {
        self.send_raw(frame.encode())
    }

    pub fn send_raw(&mut self, bytes: Vec<u8>) -> Result<(), Error> {
        self.ws
            .send(Message::Binary(bytes.into()))
            .map_err(|e| e.to_string())
    }

    pub fn send_text(&mut self, text: &str) -> Result<(), Error> {
        self.ws
            .send(Message::Text(text.into()))
            .map_err(|e| e.to_string())
    }

    /// Reads at most one message within `left`, stashing events and text frames.
    fn read_one(&mut self, left: Duration) -> Result<(), SocketEnd> {
        self.ws
            .get_mut()
            .set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .map_err(|e| SocketEnd::Io(e.to_string()))?;
        match self.ws.read() {
            Ok(Message::Binary(bytes)) => {
                let ServerFrame::Batch {
                    server_time_ms,
                    events,
                } = ServerFrame::decode(&bytes)
                    .map_err(|e| SocketEnd::Io(format!("bad server frame: {e}")))?;
                self.frames_received += 1;
                self.last_server_time_ms = server_time_ms;
                self.pending.extend(events);
                Ok(())
            }
            Ok(Message::Text(text)) => {
                self.texts.push_back(text.to_string());
                Ok(())
            }
            Ok(Message::Close(frame)) => {
                let (code, reason) = frame
                    .map(|f| (u16::from(f.code), f.reason.to_string()))
                    .unwrap_or((u16::from(WsCloseCode::Status), String::new()));
                Err(SocketEnd::Closed(code, reason))
            }
            Ok(_) => Ok(()),
            // A read with a timeout (SO_RCVTIMEO) is never restarted after a signal
            // handler runs: any handler in the process (tokio's SIGCHLD, say) can make
            // it fail with EINTR. Nothing was read; the caller's deadline loop retries.
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) =>
            {
                Ok(())
            }
            Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => {
                Err(SocketEnd::Closed(1006, String::new()))
            }
            Err(e) => Err(SocketEnd::Io(e.to_string())),
        }
    }

    /// The next event, waiting at most `timeout`; `Ok(None)` on timeout.
    pub fn next_event(&mut self, timeout: Duration) -> Result<Option<Event>, SocketEnd> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Ok(Some(event));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            self.read_one(left)?;
        }
    }

    /// Sends the heartbeat text frame and returns the text answer (the platform's
    /// auto-response: `pong`).
    pub fn ping_text(&mut self) -> Result<String, SocketEnd> {
        self.send_text("ping").map_err(SocketEnd::Io)?;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(text) = self.texts.pop_front() {
                return Ok(text);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(SocketEnd::Io("no heartbeat answer".into()));
            }
            self.read_one(left)?;
        }
    }

    /// Reads events until `matches` accepts one (returned) or `timeout` passes.
    pub fn wait_for(
        &mut self,
        timeout: Duration,
        mut matches: impl FnMut(&Event) -> bool,
    ) -> Result<Event, SocketEnd> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next_event(left)? {
                Some(event) if matches(&event) => return Ok(event),
                Some(_) => {}
                None => {
                    return Err(SocketEnd::Io(format!(
                        "no matching event within {timeout:?}"
                    )))
                }
            }
        }
    }

    /// Collects every event up to and including the first that `last` matches, waiting
    /// at most `timeout` for it (past it, the error names what came).
    pub fn collect_until(
        &mut self,
        timeout: Duration,
        mut last: impl FnMut(&Event) -> bool,
    ) -> Result<Vec<Event>, SocketEnd> {
        let mut events = Vec::new();
        let waited = self.wait_for(timeout, |event| {
            events.push(event.clone());
            last(event)
        });
        match waited {
            Ok(_) => Ok(events),
            Err(SocketEnd::Io(why)) => Err(SocketEnd::Io(format!("{why}; came: {events:?}"))),
            Err(end) => Err(end),
        }
    }

    /// The room's snapshot of a join: its `Welcome`, the parts, the version and the likes
    /// total, and on a resume from `resumed_after` (the action cursor the Hello gave)
    /// every action up to the Welcome's cursor (a tick's own actions go out after the
    /// connection's other events, among the broadcasts by number), or a `Gap` past it
    /// (the room no longer holds them). Not for a big room's resume whose last number is
    /// a comment shown to its sender only (never kept, never sent).
    pub fn snapshot(
        &mut self,
        timeout: Duration,
        resumed_after: u64,
    ) -> Result<Vec<Event>, SocketEnd> {
        let mut last_action_due = None;
        let mut likes_seen = false;
        let mut last_action_seen = resumed_after;
        self.collect_until(timeout, |event| {
            match event {
                Event::Welcome(welcome) => {
                    last_action_due = Some(if welcome.resumed {
                        welcome.action_cursor
                    } else {
                        0
                    });
                }
                Event::Likes { .. } => likes_seen = true,
                Event::Action(action) => last_action_seen = last_action_seen.max(action.seq),
                Event::Gap { resumed_from, .. } => {
                    last_action_seen = last_action_seen.max(resumed_from.saturating_sub(1));
                }
                _ => {}
            }
            likes_seen && last_action_due.is_some_and(|due| last_action_seen >= due)
        })
    }

    /// Collects every event that arrives within `window`.
    pub fn drain(&mut self, window: Duration) -> Result<Vec<Event>, SocketEnd> {
        let deadline = Instant::now() + window;
        let mut events = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(events);
            }
            if let Some(event) = self.next_event(left)? {
                events.push(event);
            }
        }
    }

    pub fn close(mut self) {
        let _ = self.ws.close(None);
        let _ = self.ws.flush();
    }
}

/// Renders an event as one human line (for `ovation watch`).
pub fn describe(event: &Event) -> String {
    use ovation_proto::ActionBody;
    match event {
        Event::Welcome(w) => format!(
            "* joined as {} ({}) epoch {} version {}{}",
            w.user,
            w.role.as_str(),
            w.epoch,
            w.total_version,
            if w.resumed { ", resumed" } else { "" }
        ),
        Event::Part {
            name,
            version,
            value,
        } => format!("* part {name} v{version}: {value}"),
        Event::Version { total_version, .. } => format!("* version {total_version}"),
        Event::Action(a) => match &a.body {
            ActionBody::Comment { text } => format!("[{}] {}: {}", a.seq, a.name, text),
            ActionBody::Reaction { kind } => format!("[{}] {} reacted {}", a.seq, a.name, kind),
            ActionBody::System { text } => format!("[{}] ** {} **", a.seq, text),
            ActionBody::Gift { sku, qty, amount } => {
                format!("[{}] {} sent {qty} × {sku} ({amount})", a.seq, a.name)
            }
            ActionBody::Removed { seq } => format!("[{}] {} removed #{seq}", a.seq, a.name),
        },
        Event::Gap {
            missed_after,
            resumed_from,
        } => format!("* missed actions {}..{}", missed_after + 1, resumed_from),
        Event::Likes { total } => format!("* likes {total}"),
        Event::Online { count } => format!("* online {count}"),
        Event::Direct { from, payload, .. } => format!("* direct from {from}: {payload}"),
        Event::Ack { client_id, seq } => match seq {
            Some(seq) => format!("* ok #{client_id} (seq {seq})"),
            None => format!("* ok #{client_id}"),
        },
        Event::Error {
            code,
            message,
            retry_after_ms,
            ..
        } => format!(
            "! {}: {message}{}",
            code.as_str(),
            if *retry_after_ms > 0 {
                format!(" (retry in {retry_after_ms} ms)")
            } else {
                String::new()
            }
        ),
        Event::Pong {
            client_time_ms,
            server_time_ms,
        } => format!("* pong {client_time_ms} {server_time_ms}"),
        Event::GoAway { .. } => "* server asks to reconnect".into(),
        Event::RoomEnded => "* the room has ended".into(),
        Event::Balance { balance } => format!("* balance {balance}"),
    }
}
