//! What travels on the wire, as pure functions: the comment text that carries its own id
//! and send instant, and the light parsers for the JSON and Engine.IO peers. Nothing here
//! touches a socket or a clock, so every case is a unit test.

/// Every comment's text is padded to this length (bytes, ASCII), the same for every
/// target: about what a real chat line weighs.
pub const COMMENT_TEXT_BYTES: usize = 60;

/// Padding after the id, cut to fit `COMMENT_TEXT_BYTES`.
const FILLER: &str = " lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod";

/// `c<id>@<sent_us> lorem ipsum…`, exactly `COMMENT_TEXT_BYTES` long while the id and
/// the instant fit (they always do: 20 + 20 digits at most, plus 2 marker bytes).
pub fn comment_text(id: u64, sent_us: u64) -> String {
    let mut text = format!("c{id}@{sent_us}");
    let pad = COMMENT_TEXT_BYTES.saturating_sub(text.len());
    text.push_str(&FILLER[..pad.min(FILLER.len())]);
    debug_assert!(text.len() == COMMENT_TEXT_BYTES, "{text}");
    text
}

/// The id and send instant of a text made by `comment_text`, or `None` for any other text.
pub fn parse_comment_text(text: &str) -> Option<(u64, u64)> {
    let rest = text.strip_prefix('c')?;
    let (id, rest) = leading_u64(rest)?;
    let rest = rest.strip_prefix('@')?;
    let (sent_us, rest) = leading_u64(rest)?;
    // The id must end where the marker does: `c1@2x` is someone else's text.
    match rest.bytes().next() {
        None | Some(b' ') => Some((id, sent_us)),
        _ => None,
    }
}

/// The decimal number at the start of `text` and what follows it.
fn leading_u64(text: &str) -> Option<(u64, &str)> {
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return None;
    }
    let value = text[..digits].parse().ok()?;
    Some((value, &text[digits..]))
}

/// What a JSON (or Socket.IO event) message says, as far as the load generator cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerEvent {
    Comment { id: u64, sent_us: u64 },
    Likes { total: u64 },
    Other,
}

/// Reads `{"type":"comment","user":..,"text":"c<id>@<us>…","ts":..}` or
/// `{"type":"likes","total":N}` without building a JSON tree: this runs once per message
/// per viewer, on the cores the measured server also needs. The key order and the
/// spacing around `:` do not matter. Our comment texts never need JSON escapes, so the
/// marker is read straight from the raw text.
pub fn parse_peer_json(json: &str) -> PeerEvent {
    if let Some(value) = value_after_key(json, "\"text\"") {
        return value.strip_prefix('"').and_then(parse_comment_text).map_or(
            PeerEvent::Other,
            |(id, sent_us)| PeerEvent::Comment { id, sent_us },
        );
    }
    if let Some(value) = value_after_key(json, "\"total\"") {
        if let Some((total, _)) = leading_u64(value) {
            return PeerEvent::Likes { total };
        }
    }
    PeerEvent::Other
}

/// The text after `key`, its colon and any spaces.
fn value_after_key<'a>(json: &'a str, key: &str) -> Option<&'a str> {
    let after = &json[json.find(key)? + key.len()..];
    let after = after.trim_start().strip_prefix(':')?;
    Some(after.trim_start())
}

/// An Engine.IO v4 packet carrying (or not) a Socket.IO v4 packet, for the default
/// namespace only.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EngineIo<'a> {
    /// `0{"sid":..}`: the transport is open; the client must now connect to `/`.
    Open,
    /// `40{"sid":..}`: connected to the namespace.
    Connected,
    /// `44{"message":..}`: the namespace refused us.
    ConnectError(&'a str),
    /// `2`: the server's heartbeat; answer `3` or be dropped.
    Ping,
    /// `1`: the server closes the transport.
    Close,
    /// `42["name",payload]`: the event's name and its JSON payload (may be empty).
    Event {
        name: &'a str,
        payload: &'a str,
    },
    Other,
}

/// The client's answer to `EngineIo::Open`: connect to the default namespace.
pub const SOCKET_IO_CONNECT: &str = "40";
/// The client's answer to `EngineIo::Ping`.
pub const ENGINE_IO_PONG: &str = "3";

pub fn parse_engine_io(text: &str) -> EngineIo<'_> {
    let bytes = text.as_bytes();
    match bytes {
        [b'0', ..] => EngineIo::Open,
        [b'1'] => EngineIo::Close,
        [b'2'] => EngineIo::Ping,
        [b'4', b'0', ..] => EngineIo::Connected,
        [b'4', b'4', ..] => EngineIo::ConnectError(&text[2..]),
        [b'4', b'2', ..] => parse_socket_io_event(&text[2..]),
        _ => EngineIo::Other,
    }
}

/// `["name",payload]` after an optional ack id (digits); the payload is everything up to
/// the closing bracket.
fn parse_socket_io_event(text: &str) -> EngineIo<'_> {
    let text = text.trim_start_matches(|c: char| c.is_ascii_digit());
    let Some(inner) = text.strip_prefix("[\"").and_then(|t| t.strip_suffix(']')) else {
        return EngineIo::Other;
    };
    let Some(name_end) = inner.find('"') else {
        return EngineIo::Other;
    };
    let name = &inner[..name_end];
    let payload = inner[name_end + 1..]
        .trim_start()
        .strip_prefix(',')
        .unwrap_or("")
        .trim();
    EngineIo::Event { name, payload }
}

/// A comment as the JSON peers take it.
pub fn peer_json_comment(text: &str) -> String {
    format!("{{\"type\":\"comment\",\"text\":\"{text}\"}}")
}

pub const PEER_JSON_LIKE: &str = "{\"type\":\"like\"}";

/// A comment as a Socket.IO event.
pub fn socket_io_comment(text: &str) -> String {
    format!("42[\"comment\",{{\"text\":\"{text}\"}}]")
}

pub const SOCKET_IO_LIKE: &str = "42[\"like\"]";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comment_text_round_trips_id_and_send_instant_at_fixed_length() {
        for (id, sent_us) in [(0, 0), (7, 1_234_567), (u64::MAX, u64::MAX)] {
            let text = comment_text(id, sent_us);
            assert_eq!(text.len(), COMMENT_TEXT_BYTES, "{text}");
            assert!(text.is_ascii());
            assert_eq!(parse_comment_text(&text), Some((id, sent_us)));
        }
        assert!(comment_text(42, 9).starts_with("c42@9 lorem"));
    }

    #[test]
    fn foreign_texts_are_not_comments() {
        for text in [
            "", "hello", "c", "c12", "c12@", "c@5", "cx@5", "c1@2x", " c1@2", "d1@2",
        ] {
            assert_eq!(parse_comment_text(text), None, "{text:?}");
        }
        assert_eq!(parse_comment_text("c1@2"), Some((1, 2)));
        // Overflowing numbers are not ours either.
        assert_eq!(parse_comment_text("c99999999999999999999999@1"), None);
    }

    #[test]
    fn peer_json_comment_and_likes_are_read_whatever_the_key_order() {
        let text = comment_text(5, 1_000);
        let cases = [
            (
                format!(r#"{{"type":"comment","user":"u1","text":"{text}","ts":17}}"#),
                PeerEvent::Comment {
                    id: 5,
                    sent_us: 1_000,
                },
            ),
            (
                format!(r#"{{ "ts": 17, "text" : "{text}", "type": "comment" }}"#),
                PeerEvent::Comment {
                    id: 5,
                    sent_us: 1_000,
                },
            ),
            (r#"{"type":"comment","text":"hi"}"#.into(), PeerEvent::Other),
            (
                r#"{"type":"likes","total":12}"#.into(),
                PeerEvent::Likes { total: 12 },
            ),
            (
                r#"{"total" : 3 , "type":"likes"}"#.into(),
                PeerEvent::Likes { total: 3 },
            ),
            (r#"{"type":"online","count":3}"#.into(), PeerEvent::Other),
            ("not json".into(), PeerEvent::Other),
        ];
        for (json, expected) in cases {
            assert_eq!(parse_peer_json(&json), expected, "{json}");
        }
    }

    #[test]
    fn peer_json_frames_we_send_parse_as_what_we_meant() {
        let text = comment_text(3, 4);
        assert_eq!(
            parse_peer_json(&peer_json_comment(&text)),
            PeerEvent::Comment { id: 3, sent_us: 4 }
        );
        let value: serde_json::Value = serde_json::from_str(&peer_json_comment(&text)).unwrap();
        assert_eq!(value["type"], "comment");
        assert_eq!(value["text"], text.as_str());
        let value: serde_json::Value = serde_json::from_str(PEER_JSON_LIKE).unwrap();
        assert_eq!(value["type"], "like");
    }

    #[test]
    fn engine_io_packets_are_told_apart() {
        let text = comment_text(8, 9);
        let event = format!(r#"42["comment",{{"user":"u","text":"{text}","ts":1}}]"#);
        let cases = [
            (r#"0{"sid":"a","pingInterval":25000}"#, EngineIo::Open),
            ("1", EngineIo::Close),
            ("2", EngineIo::Ping),
            ("3", EngineIo::Other),
            (r#"40{"sid":"b"}"#, EngineIo::Connected),
            ("40", EngineIo::Connected),
            (
                r#"44{"message":"no"}"#,
                EngineIo::ConnectError(r#"{"message":"no"}"#),
            ),
            (
                r#"42["likes",{"total":4}]"#,
                EngineIo::Event {
                    name: "likes",
                    payload: r#"{"total":4}"#,
                },
            ),
            (
                r#"42["like"]"#,
                EngineIo::Event {
                    name: "like",
                    payload: "",
                },
            ),
            (
                r#"4217["likes", {"total":4}]"#,
                EngineIo::Event {
                    name: "likes",
                    payload: r#"{"total":4}"#,
                },
            ),
            ("42garbage", EngineIo::Other),
            ("", EngineIo::Other),
        ];
        for (packet, expected) in cases {
            assert_eq!(parse_engine_io(packet), expected, "{packet}");
        }
        let EngineIo::Event { name, payload } = parse_engine_io(&event) else {
            panic!("an event");
        };
        assert_eq!(name, "comment");
        assert_eq!(
            parse_peer_json(payload),
            PeerEvent::Comment { id: 8, sent_us: 9 }
        );
    }

    #[test]
    fn socket_io_frames_we_send_parse_as_what_we_meant() {
        let text = comment_text(1, 2);
        let frame = socket_io_comment(&text);
        let EngineIo::Event { name, payload } = parse_engine_io(&frame) else {
            panic!("an event");
        };
        assert_eq!(
            (name, parse_peer_json(payload)),
            ("comment", PeerEvent::Comment { id: 1, sent_us: 2 })
        );
        assert_eq!(
            parse_engine_io(SOCKET_IO_LIKE),
            EngineIo::Event {
                name: "like",
                payload: ""
            }
        );
    }
}
