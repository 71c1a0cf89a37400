//! The HTTP pull transport's answers (`GET /v1/rooms/{room}/state` and
//! `GET /v1/rooms/{room}/events?since=`), as JSON: the edge serializes these types and the
//! client core reads them, so the two cannot drift apart.

use crate::frames::{Action, ActionBody};
use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

/// The header of a part read (`GET …/parts/{part}?v=N`) answered with a newer version
/// than the one asked for: the room keeps only a part's newest version, and a part that
/// changes faster than a round trip (a poll's live tallies) would otherwise never be read.
/// Such an answer is never cached (`no-store`): its URL names another version.
pub const PART_VERSION_HEADER: &str = "x-ovation-part-version";

/// `GET /v1/rooms/{room}/state`: versions, not values (a client fetches the parts it
/// lacks with `GET …/parts/{part}?v=`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullState {
    #[serde(default)]
    pub room: String,
    /// `live` or `ended`.
    pub status: String,
    pub epoch: u64,
    pub version: u64,
    /// Part name → its current version.
    pub parts: BTreeMap<String, u64>,
    pub action_cursor: u64,
    pub likes: u64,
    pub online: u32,
}

/// One action in `GET /v1/rooms/{room}/events?since=`. Fields a kind does not use are
/// left out of the JSON (and read as empty or 0).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullAction {
    pub seq: u64,
    pub ts_ms: u64,
    pub user: String,
    pub name: String,
    /// `comment`, `reaction`, `system`, `gift` or `removed`.
    pub kind: String,
    /// A comment's or system message's text, a reaction's kind.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub text: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sku: String,
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub qty: u32,
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub amount: u64,
    /// For `removed`: the sequence number of the comment a moderator removed.
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub removed: u64,
}

fn is_zero_u32(value: &u32) -> bool {
    *value == 0
}

fn is_zero_u64(value: &u64) -> bool {
    *value == 0
}

impl From<&Action> for PullAction {
    fn from(action: &Action) -> PullAction {
        let mut pulled = PullAction {
            seq: action.seq,
            ts_ms: action.ts_ms,
            user: action.user.clone(),
            name: action.name.clone(),
            kind: String::new(),
            text: String::new(),
            sku: String::new(),
            qty: 0,
            amount: 0,
            removed: 0,
        };
        let kind = match &action.body {
            ActionBody::Comment { text } => {
                pulled.text = text.clone();
                "comment"
            }
            ActionBody::Reaction { kind } => {
                pulled.text = kind.clone();
                "reaction"
            }
            ActionBody::System { text } => {
                pulled.text = text.clone();
                "system"
            }
            ActionBody::Gift { sku, qty, amount } => {
                pulled.sku = sku.clone();
                pulled.qty = *qty;
                pulled.amount = *amount;
                "gift"
            }
            ActionBody::Removed { seq } => {
                pulled.removed = *seq;
                "removed"
            }
        };
        pulled.kind = kind.into();
        pulled
    }
}

/// `GET /v1/rooms/{room}/events?since=`: the actions after `since` (at most
/// `PULL_EVENTS_MAX`), whether some were already gone (`gap`), and the counters.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullEvents {
    pub events: Vec<PullAction>,
    pub gap: bool,
    pub cursor: u64,
    pub epoch: u64,
    pub version: u64,
    pub likes: u64,
    pub online: u32,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub server_time_ms: Option<u64>,
    pub poll_interval_ms: u32,
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    fn action(body: ActionBody) -> Action {
        Action {
            seq: 7,
            ts_ms: 1_700_000_000_123,
            user: "u1".into(),
            name: "Ann".into(),
            body,
        }
    }

    fn json(body: ActionBody) -> serde_json::Value {
        serde_json::to_value(PullAction::from(&action(body))).unwrap()
    }

    #[test]
    fn each_kind_carries_its_own_fields_only() {
        let head = r#""seq":7,"ts_ms":1700000000123,"user":"u1","name":"Ann""#;
        let expect = |rest: &str| -> serde_json::Value {
            serde_json::from_str(&alloc::format!("{{{head},{rest}}}")).unwrap()
        };
        assert_eq!(
            json(ActionBody::Comment { text: "hi".into() }),
            expect(r#""kind":"comment","text":"hi""#)
        );
        assert_eq!(
            json(ActionBody::Reaction {
                kind: "clap".into()
            }),
            expect(r#""kind":"reaction","text":"clap""#)
        );
        assert_eq!(
            json(ActionBody::System { text: "brb".into() }),
            expect(r#""kind":"system","text":"brb""#)
        );
        assert_eq!(
            json(ActionBody::Gift {
                sku: "rose".into(),
                qty: 2,
                amount: (1 << 53) + 1,
            }),
            expect(r#""kind":"gift","sku":"rose","qty":2,"amount":9007199254740993"#)
        );
        assert_eq!(
            json(ActionBody::Removed { seq: 3 }),
            expect(r#""kind":"removed","removed":3"#)
        );
    }

    #[test]
    fn what_the_edge_writes_the_client_reads_back() {
        let events = PullEvents {
            events: alloc::vec![PullAction::from(&action(ActionBody::Gift {
                sku: "rose".into(),
                qty: 1,
                amount: u64::MAX,
            }))],
            gap: true,
            cursor: 7,
            epoch: 9,
            version: 3,
            likes: 12,
            online: 2,
            status: Some("live".to_string()),
            server_time_ms: Some(1),
            poll_interval_ms: 2_000,
        };
        let text = serde_json::to_string(&events).unwrap();
        assert_eq!(serde_json::from_str::<PullEvents>(&text).unwrap(), events);
        let mut parts = BTreeMap::new();
        parts.insert("room".to_string(), 4);
        let state = PullState {
            room: "weur-x".into(),
            status: "ended".into(),
            epoch: 9,
            version: 4,
            parts,
            action_cursor: 7,
            likes: 12,
            online: 0,
        };
        let text = serde_json::to_string(&state).unwrap();
        assert_eq!(serde_json::from_str::<PullState>(&text).unwrap(), state);
    }
}
