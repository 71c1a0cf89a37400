//! The soak's calls to our admin API: opening polls, and the probe room whose stats
//! report the isolate's wasm memory.

use super::POLL_WINDOW_MS;
use crate::Result;
use serde_json::{json, Value};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Opens a two-option poll in `room` through the admin API (it closes itself).
pub(super) fn open_poll(port: u16, token: &str, room: &str) -> Result {
    let body = json!({
        "question": "Soak: which option?",
        "options": ["yes", "no"],
        "window_ms": POLL_WINDOW_MS,
    });
    match http(
        port,
        "POST",
        &format!("/v1/rooms/{room}/polls"),
        token,
        Some(&body),
    )? {
        (200 | 201, _) => Ok(()),
        (status, answer) => Err(format!("opening a poll in {room}: {status} {answer}")),
    }
}

/// Ours only: a quiet room whose stats carry the isolate's wasm memory (every room object
/// of the isolate shares one linear memory), so the Rust heap can be told from the rest
/// of workerd's resident memory.
pub(super) struct WasmProbe {
    pub(super) port: u16,
    pub(super) token: String,
    pub(super) room: String,
}

impl WasmProbe {
    pub(super) fn create(port: u16) -> Result<WasmProbe> {
        let token = crate::dev_token("admin", "soak-admin");
        let unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        let room = format!("weur-soak-probe-{unix_ms}");
        let body = json!({"room": room, "host": "host-1", "title": "memory probe",
            "expected_audience": 1});
        match http(port, "POST", "/v1/rooms", &token, Some(&body))? {
            (200 | 201, _) => Ok(WasmProbe { port, token, room }),
            (status, answer) => Err(format!("creating the probe room: {status} {answer}")),
        }
    }

    /// The wasm linear memory in bytes, when the room answers with it.
    pub(super) fn wasm_memory(&self) -> Option<u64> {
        let path = format!("/v1/rooms/{}/stats", self.room);
        let (status, answer) = http(self.port, "GET", &path, &self.token, None).ok()?;
        if status != 200 {
            return None;
        }
        serde_json::from_str::<Value>(&answer)
            .ok()?
            .get("wasm_memory_bytes")?
            .as_u64()
    }
}

/// One HTTP/1.1 request to the server on 127.0.0.1 with the admin's token: the status
/// and the body.
fn http(
    port: u16,
    method: &str,
    path: &str,
    token: &str,
    body: Option<&Value>,
) -> Result<(u16, String)> {
    let body = body.map(Value::to_string).unwrap_or_default();
    let authorization = format!("Bearer {token}");
    let headers = [
        ("Authorization", authorization.as_str()),
        ("Content-Type", "application/json"),
    ];
    let timeouts = crate::http::Timeouts {
        connect: Some(Duration::from_secs(2)),
        read: Duration::from_secs(10),
    };
    let host = format!("127.0.0.1:{port}");
    let response = crate::http::request(&host, method, path, &headers, &body, timeouts)?;
    Ok((response.status, response.body))
}
