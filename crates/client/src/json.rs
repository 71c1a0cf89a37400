//! Events as one JSON array, for the JavaScript side to `JSON.parse` in a single call.
//!
//! Measured in Chromium (`cargo xtask bench sdk`): building objects field by field
//! across the wasm boundary (serde-wasm-bindgen) dispatched ~0.6 M events/s; one string
//! and one `JSON.parse` is several times faster, and the SDK is smaller without the
//! generic serializer. The output equals `serde_json::to_value` of the same events (a
//! test checks every variant), so the `Serialize` derive stays the documented shape.

use crate::{ActionError, ClientEvent, Status, Transport};
use alloc::string::String;
use core::fmt::Write;

fn string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

struct Obj<'a> {
    out: &'a mut String,
}

impl<'a> Obj<'a> {
    fn new(out: &'a mut String, kind: &str) -> Obj<'a> {
        out.push_str("{\"type\":");
        string(out, kind);
        Obj { out }
    }
    fn key(&mut self, key: &str) -> &mut String {
        self.out.push(',');
        string(self.out, key);
        self.out.push(':');
        self.out
    }
    fn str(mut self, key: &str, value: &str) -> Self {
        string(self.key(key), value);
        self
    }
    fn num(mut self, key: &str, value: u64) -> Self {
        let _ = write!(self.key(key), "{value}");
        self
    }
    fn opt_num(mut self, key: &str, value: Option<u64>) -> Self {
        match value {
            Some(v) => self.num(key, v),
            None => {
                self.key(key).push_str("null");
                self
            }
        }
    }
    fn bool(mut self, key: &str, value: bool) -> Self {
        self.key(key).push_str(if value { "true" } else { "false" });
        self
    }
    fn opt_str(mut self, key: &str, value: Option<&str>) -> Self {
        match value {
            Some(v) => self.str(key, v),
            None => {
                self.key(key).push_str("null");
                self
            }
        }
    }
    fn error(mut self, key: &str, error: Option<&ActionError>) -> Self {
        match error {
            None => self.key(key).push_str("null"),
            Some(e) => {
                let out = self.key(key);
                out.push_str("{\"code\":");
                string(out, &e.code);
                out.push_str(",\"message\":");
                string(out, &e.message);
                let _ = write!(out, ",\"retry_after_ms\":{}}}", e.retry_after_ms);
            }
        }
        self
    }
    fn end(self) {
        self.out.push('}');
    }
}

fn action<'a>(o: Obj<'a>, seq: u64, ts_ms: u64, user: &str, name: &str) -> Obj<'a> {
    o.num("seq", seq)
        .num("ts_ms", ts_ms)
        .str("user", user)
        .str("name", name)
}

/// Appends `[event, ...]` as JSON to `out`.
pub fn write_events_json(events: &[ClientEvent], out: &mut String) {
    out.push('[');
    for (i, event) in events.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_event(event, out);
    }
    out.push(']');
}

fn write_event(event: &ClientEvent, out: &mut String) {
    match event {
        ClientEvent::Status {
            status,
            transport,
            reason,
        } => {
            let status = match status {
                Status::Connecting => "connecting",
                Status::Open => "open",
                Status::Reconnecting => "reconnecting",
                Status::Closed => "closed",
            };
            let transport = match transport {
                Transport::Ws => "ws",
                Transport::Pull => "pull",
            };
            Obj::new(out, "status")
                .str("status", status)
                .str("transport", transport)
                .opt_str("reason", reason.as_deref())
                .end()
        }
        ClientEvent::Comment {
            seq,
            ts_ms,
            user,
            name,
            text,
            system,
        } => action(Obj::new(out, "comment"), *seq, *ts_ms, user, name)
            .str("text", text)
            .bool("system", *system)
            .end(),
        ClientEvent::Reaction {
            seq,
            ts_ms,
            user,
            name,
            kind,
        } => action(Obj::new(out, "reaction"), *seq, *ts_ms, user, name)
            .str("kind", kind)
            .end(),
        ClientEvent::Gift {
            seq,
            ts_ms,
            user,
            name,
            sku,
            qty,
            amount,
        } => action(Obj::new(out, "gift"), *seq, *ts_ms, user, name)
            .str("sku", sku)
            .num("qty", u64::from(*qty))
            .num("amount", *amount)
            .end(),
        ClientEvent::Like { total } => Obj::new(out, "like").num("total", *total).end(),
        ClientEvent::Online { count } => Obj::new(out, "online")
            .num("count", u64::from(*count))
            .end(),
        ClientEvent::Part {
            name,
            version,
            value,
        } => Obj::new(out, "part")
            .str("name", name)
            .num("version", *version)
            .str("value", value)
            .end(),
        ClientEvent::Reset { epoch } => Obj::new(out, "reset").num("epoch", *epoch).end(),
        ClientEvent::Version { epoch, version } => Obj::new(out, "version")
            .num("epoch", *epoch)
            .num("version", *version)
            .end(),
        ClientEvent::Direct {
            from,
            payload,
            ts_ms,
        } => Obj::new(out, "direct")
            .str("from", from)
            .str("payload", payload)
            .num("ts_ms", *ts_ms)
            .end(),
        ClientEvent::Balance { balance } => Obj::new(out, "balance").num("balance", *balance).end(),
        ClientEvent::Gap {
            missed_after,
            resumed_from,
        } => Obj::new(out, "gap")
            .num("missed_after", *missed_after)
            .num("resumed_from", *resumed_from)
            .end(),
        ClientEvent::Done { id, seq, error } => Obj::new(out, "done")
            .num("id", *id)
            .opt_num("seq", *seq)
            .error("error", error.as_ref())
            .end(),
        ClientEvent::Error {
            code,
            message,
            retry_after_ms,
        } => Obj::new(out, "error")
            .str("code", code)
            .str("message", message)
            .num("retry_after_ms", u64::from(*retry_after_ms))
            .end(),
        ClientEvent::Ended => Obj::new(out, "ended").end(),
    }
}
