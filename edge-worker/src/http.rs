//! HTTP errors: a stable machine-readable `code`, a human `message`, no internals.

use futures_util::StreamExt;
use ovation_proto::limits::ADMIN_BODY_BYTES_MAX;
use serde::de::DeserializeOwned;
use serde_json::json;
use worker::{console_log, Request, Response, Result};

#[derive(Debug)]
pub struct ApiError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: u16, code: &'static str, message: &str) -> ApiError {
        ApiError {
            status,
            code,
            message: message.to_owned(),
        }
    }

    pub fn bad_request(message: &str) -> ApiError {
        ApiError::new(400, "bad_request", message)
    }

    /// The cause goes to the log; the client sees only the code.
    pub fn internal(cause: &str) -> ApiError {
        console_log!(
            "{}",
            json!({ "level": "error", "event": "internal_error", "cause": cause })
        );
        ApiError::new(500, "internal", "internal error")
    }
}

/// A refused replay query (`GET /v1/rooms/{room}/replay`): its status and stable code,
/// the same from the router and the room object.
impl From<ovation_proto::ReplayQueryError> for ApiError {
    fn from(e: ovation_proto::ReplayQueryError) -> ApiError {
        ApiError::new(e.http_status(), e.code(), &e.message())
    }
}

/// An upgrade a room or shard object refused before any socket exists: 410 for an ended
/// room, 429 for the user's connect rate, else 503; the code is the close code's reason.
pub fn upgrade_refused(code: ovation_proto::CloseCode) -> ApiError {
    let status = match code {
        ovation_proto::CloseCode::RoomEnded => 410,
        ovation_proto::CloseCode::ConnectRateLimited => 429,
        _ => 503,
    };
    ApiError::new(status, code.reason(), code.reason())
}

pub fn error(e: ApiError) -> Result<Response> {
    let mut resp = Response::from_json(&json!({ "code": e.code, "message": e.message }))?
        .with_status(e.status);
    resp.headers_mut().set("cache-control", "no-store")?;
    Ok(resp)
}

/// `error`, with a `retry-after` header (whole seconds, at least 1) for a refusal that
/// names its wait.
pub fn error_retry_after(e: ApiError, retry_after_ms: u32) -> Result<Response> {
    let mut resp = error(e)?;
    let seconds = retry_after_ms.div_ceil(1_000).max(1);
    resp.headers_mut()
        .set("retry-after", &seconds.to_string())?;
    Ok(resp)
}

/// A refused read of the room (`Room::admit_read`, or the Worker's own read limiter),
/// answered alike wherever it is refused: its status, code and message, with
/// `retry-after` when it names a wait.
pub fn read_refusal(refused: ovation_room::ReadRefused) -> std::result::Result<Response, ApiError> {
    let error = ApiError::new(refused.http_status(), refused.code(), refused.message());
    match refused {
        ovation_room::ReadRefused::RateLimited { retry_after_ms } => {
            error_retry_after(error, retry_after_ms).map_err(|e| ApiError::internal(&e.to_string()))
        }
        ovation_room::ReadRefused::Banned => Err(error),
    }
}

/// One structured error log line for an operator's mistake (`event` names it).
pub fn log_error(event: &str, cause: &str) {
    console_log!(
        "{}",
        json!({ "level": "error", "event": event, "cause": cause })
    );
}

thread_local! {
    static LOGGED_ONCE: std::cell::RefCell<std::collections::BTreeSet<&'static str>> =
        const { std::cell::RefCell::new(std::collections::BTreeSet::new()) };
}

/// `log_error`, at most once per isolate for each event: a misconfiguration met on every
/// request (keys or a secret missing) says so once, not once per request (a flood of
/// requests would be a flood of log lines).
pub fn log_error_once(event: &'static str, cause: &str) {
    if LOGGED_ONCE.with(|logged| logged.borrow_mut().insert(event)) {
        log_error(event, cause);
    }
}

/// One structured log line per refusal.
pub fn log_refusal(code: &str, detail: &str) {
    console_log!(
        "{}",
        json!({ "level": "warn", "event": "refusal", "code": code, "detail": detail })
    );
}

/// Reads a JSON body no larger than `ADMIN_BODY_BYTES_MAX`, refused `413 body_too_large`
/// before it is read when its declared length is larger, and as soon as the bytes read
/// pass the limit when it declares none: a larger body never lands in the isolate's
/// memory (wasm memory never shrinks).
pub async fn json_body<T: DeserializeOwned>(req: &mut Request) -> std::result::Result<T, ApiError> {
    json_body_within(req, ADMIN_BODY_BYTES_MAX).await
}

/// A body the Worker forwarded to an object (`OBJECT_BODY_BYTES_MAX`).
pub async fn object_json_body<T: DeserializeOwned>(
    req: &mut Request,
) -> std::result::Result<T, ApiError> {
    json_body_within(req, ovation_proto::limits::OBJECT_BODY_BYTES_MAX).await
}

async fn json_body_within<T: DeserializeOwned>(
    req: &mut Request,
    bytes_max: usize,
) -> std::result::Result<T, ApiError> {
    let too_large = || {
        ApiError::new(
            413,
            "body_too_large",
            &format!("request body exceeds {bytes_max} bytes"),
        )
    };
    let unreadable = |_| ApiError::bad_request("unreadable body");
    if let Some(declared) = req.headers().get("content-length").ok().flatten() {
        let declared: u64 = declared
            .trim()
            .parse()
            .map_err(|_| ApiError::bad_request("content-length is not a number"))?;
        if declared > bytes_max as u64 {
            return Err(too_large());
        }
    }
    let mut bytes = Vec::new();
    if let Ok(mut stream) = req.stream() {
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(unreadable)?;
            if bytes.len() + chunk.len() > bytes_max {
                return Err(too_large());
            }
            bytes.extend_from_slice(&chunk);
        }
    } // no body at all: refused as invalid JSON below
    serde_json::from_slice(&bytes).map_err(|e| ApiError::new(400, "invalid_json", &e.to_string()))
}

pub fn json(value: impl serde::Serialize, status: u16) -> Result<Response> {
    Ok(Response::from_json(&value)?.with_status(status))
}

/// Whether the request asks for a WebSocket (`Upgrade: websocket`, in any case: RFC 6455
/// reads the token case-insensitively, and some clients send `WebSocket`).
pub fn is_websocket_upgrade(req: &Request) -> bool {
    let upgrade = req.headers().get("upgrade").ok().flatten();
    upgrade.is_some_and(|u| u.eq_ignore_ascii_case("websocket"))
}

/// The entries of the `Sec-WebSocket-Protocol` request header.
pub fn offered_protocols(req: &Request) -> Vec<String> {
    req.headers()
        .get("sec-websocket-protocol")
        .ok()
        .flatten()
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect()
}
