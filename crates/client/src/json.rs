//! Events as one JSON array, for the JavaScript side to `JSON.parse` in a single call.
//!
//! Measured in Chromium (`cargo xtask bench sdk`): building objects field by field
//! across the wasm boundary (serde-wasm-bindgen) dispatched ~0.6 M events/s; one string
//! and one `JSON.parse` is several times faster, and the SDK is smaller without the
//! generic serializer. The output equals `serde_json::to_value` of the same events (a
//! test checks every variant), so the `Serialize` derive stays the documented shape.

use crate::{ActionError, ClientEvent, Status, Transport};
use alloc::string::String;

/// Appends `n` in decimal. Hand-written rather than `core::fmt`: formatting machinery is
/// kilobytes of wasm every viewer downloads, and slower on the hot path (every number of
/// every event goes through here).
pub(crate) fn push_decimal(out: &mut String, mut n: u64) {
    let mut digits = [0u8; 20]; // u64::MAX has 20 digits
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    // ASCII digits: always UTF-8.
    out.push_str(core::str::from_utf8(&digits[start..]).unwrap_or_default());
}

/// `prefix`, `n` in decimal, `suffix`: messages that name a limit, without `format!`.
#[inline(never)]
pub(crate) fn with_number(prefix: &str, n: u64, suffix: &str) -> String {
    let mut out = String::with_capacity(prefix.len() + 20 + suffix.len());
    out.push_str(prefix);
    push_decimal(&mut out, n);
    out.push_str(suffix);
    out
}

/// Whether any of the 8 bytes in `word` must be escaped here: a control character, `"`,
/// `\\`, or any byte of a non-ASCII character (see `string`). SWAR bit tricks: eight
/// bytes per step, measurably faster in wasm than a byte loop.
fn word_needs_escape(word: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    // A byte below 0x20: (x - 0x20) borrows into its high bit while x's high bit is 0.
    let below_space = word.wrapping_sub(ONES * 0x20) & !word & HIGHS;
    let zero_byte = |x: u64| x.wrapping_sub(ONES) & !x & HIGHS;
    let quote = zero_byte(word ^ (ONES * u64::from(b'"')));
    let backslash = zero_byte(word ^ (ONES * u64::from(b'\\')));
    (below_space | quote | backslash | (word & HIGHS)) != 0
}

fn byte_needs_escape(byte: u8) -> bool {
    byte < 0x20 || byte == b'"' || byte == b'\\' || byte >= 0x80
}

fn push_u16_escape(out: &mut String, unit: u16) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push_str("\\u");
    for shift in [12, 8, 4, 0] {
        out.push(char::from(HEX[usize::from((unit >> shift) & 0xf)]));
    }
}

/// Appends `s` as a JSON string of ASCII only: runs of plain characters are copied whole,
/// non-ASCII characters become `\\uXXXX` (surrogate pairs above U+FFFF). Why ASCII: the
/// text crosses into JavaScript through `TextDecoder`, which V8 runs several times faster
/// on pure ASCII (`cargo xtask bench sdk` prints both for its batch of comments with one
/// `—` each: ~10 µs as UTF-8, ~3 µs as this ASCII); `JSON.parse` turns the escapes back.
fn string(out: &mut String, s: &str) {
    out.push('"');
    let bytes = s.as_bytes();
    let mut plain_from = 0;
    let mut i = 0;
    while i < bytes.len() {
        if let Some(chunk) = bytes.get(i..i + 8) {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            if !word_needs_escape(u64::from_le_bytes(word)) {
                i += 8;
                continue;
            }
        }
        let byte = bytes[i];
        if !byte_needs_escape(byte) {
            i += 1;
            continue;
        }
        // Both ends are character boundaries; `get` keeps str's panic formatting (and its
        // Unicode tables) out of the wasm.
        out.push_str(s.get(plain_from..i).unwrap_or_default());
        let mut width = 1;
        match byte {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            0..=0x7f => push_u16_escape(out, u16::from(byte)),
            _ => {
                // `i` is at the first byte of a character: the loop only ever stops at
                // character boundaries.
                let c = s.get(i..).and_then(|rest| rest.chars().next());
                let c = c.expect("a character starts here");
                width = c.len_utf8();
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    push_u16_escape(out, *unit);
                }
            }
        }
        i += width;
        plain_from = i;
    }
    out.push_str(s.get(plain_from..).unwrap_or_default());
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
    /// `key` is one of the fixed names below: nothing in it needs escaping.
    fn key(&mut self, key: &str) -> &mut String {
        debug_assert!(key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'));
        self.out.push_str(",\"");
        self.out.push_str(key);
        self.out.push_str("\":");
        self.out
    }
    fn str(mut self, key: &str, value: &str) -> Self {
        string(self.key(key), value);
        self
    }
    fn num(mut self, key: &str, value: u64) -> Self {
        push_decimal(self.key(key), value);
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
                string(out, e.code.as_str());
                out.push_str(",\"message\":");
                string(out, &e.message);
                out.push_str(",\"retry_after_ms\":");
                push_decimal(out, u64::from(e.retry_after_ms));
                out.push('}');
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

/// The `cue` event of a cue that played, as JSON:
/// `{"cue":"<id>","ref":{"kind":"<kind>","id":"<id>"}}` (`"ref":null` when the payload
/// names no interaction). The player adds the media time.
pub fn cue_event_json(fields: &crate::playback::CueFields<'_>) -> String {
    // Pieces joined once: a `push_str` each cost the SDK 0.3 KB of inlined growth code.
    let quoted = |text: &str| {
        let mut out = String::new();
        string(&mut out, text);
        out
    };
    let cue = quoted(fields.cue);
    match fields.reference {
        None => ["{\"cue\":", &cue, ",\"ref\":null}"].concat(),
        Some(reference) => {
            let kind = quoted(reference.kind);
            let id = quoted(reference.id);
            let parts = [
                "{\"cue\":",
                &cue,
                ",\"ref\":{\"kind\":",
                &kind,
                ",\"id\":",
                &id,
                "}}",
            ];
            parts.concat()
        }
    }
}

/// Appends `[event, ...]` as JSON to `out`.
pub fn write_events_json<'a>(
    events: impl ExactSizeIterator<Item = &'a ClientEvent>,
    out: &mut String,
) {
    // Most events are comments of ~140 bytes as JSON: one allocation for a typical batch.
    out.reserve(events.len() * 160);
    out.push('[');
    for (i, event) in events.enumerate() {
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
        ClientEvent::Removed {
            seq,
            ts_ms,
            removed,
            user,
        } => Obj::new(out, "removed")
            .num("seq", *seq)
            .num("ts_ms", *ts_ms)
            .num("removed", *removed)
            .str("user", user)
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
            .str("code", code.as_str())
            .str("message", message)
            .num("retry_after_ms", u64::from(*retry_after_ms))
            .end(),
        ClientEvent::LikesDropped {
            count,
            code,
            message,
        } => Obj::new(out, "likes_dropped")
            .num("count", u64::from(*count))
            .str("code", code.as_str())
            .str("message", message)
            .end(),
        ClientEvent::Ended => Obj::new(out, "ended").end(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    #[test]
    fn strings_round_trip_through_a_json_parser_at_every_offset() {
        // Each special byte at every position around the 8-byte steps, among ASCII and
        // multi-byte characters.
        let specials = [
            "\"", "\\", "\n", "\r", "\t", "\u{1}", "\u{1f}", "\u{7f}", "é", "—", "😀",
        ];
        for special in specials {
            for before in 0..18 {
                for filler in ["a", "ü"] {
                    let text: String =
                        [filler.repeat(before).as_str(), special, "tail xyz"].concat();
                    let mut out = String::new();
                    string(&mut out, &text);
                    let back: String = serde_json::from_str(&out).unwrap();
                    assert_eq!(back, text, "{out}");
                }
            }
        }
    }

    #[test]
    fn the_word_test_agrees_with_the_byte_test() {
        let bytes: Vec<u8> = (0..=255).collect();
        for window in bytes.windows(8) {
            let word = u64::from_le_bytes(window.try_into().unwrap());
            let expected = window.iter().any(|&b| byte_needs_escape(b));
            assert_eq!(word_needs_escape(word), expected, "{window:?}");
        }
        for byte in 0..=255u8 {
            let word = u64::from_le_bytes([b'a', b'b', byte, b'c', b'd', b'e', b'f', b'g']);
            assert_eq!(word_needs_escape(word), byte_needs_escape(byte), "{byte}");
        }
    }

    #[test]
    fn decimals_match_display() {
        for n in [0, 7, 10, 99, 100, 1_790_000_000_123, u64::MAX] {
            let mut out = String::new();
            push_decimal(&mut out, n);
            assert_eq!(out, alloc::format!("{n}"));
        }
    }
}
