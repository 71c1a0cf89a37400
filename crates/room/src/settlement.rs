//! The room's side of the settlement service's HTTP contract: the names of its accounts,
//! the gift request it sends, and what each answer means to the gifter. Pure, so native
//! tests reach it; the room object only does the fetch and logs what is unexpected.

use crate::{ChargeOutcome, ChargeRequest};
use ovation_proto::ErrorCode;
use serde::{Deserialize, Serialize};

/// The room's account at the settlement service: tenant, room and epoch, so a room that
/// is reopened (a new epoch) is a new account and never mixes two shows' takings.
pub fn ledger_room_account(tenant: &str, room_id: &str, epoch: u64) -> String {
    format!("{tenant}:{room_id}:{epoch}")
}

/// A viewer's account: user ids are only unique within a tenant.
pub fn ledger_user_account(tenant: &str, user: &str) -> String {
    format!("{tenant}:{user}")
}

/// The body of `POST /v1/gifts`.
#[derive(Debug, Serialize)]
struct GiftRequestBody<'a> {
    id: &'a str,
    room: &'a str,
    from: String,
    amount: u64,
    sku: &'a str,
    qty: u32,
}

/// The JSON body of the gift request `charge` stands for, to the room account
/// `ledger_room` (from [`ledger_room_account`]).
pub fn gift_request_body(tenant: &str, ledger_room: &str, charge: &ChargeRequest) -> String {
    let body = GiftRequestBody {
        id: &charge.gift_id,
        room: ledger_room,
        from: ledger_user_account(tenant, &charge.user),
        amount: charge.amount,
        sku: &charge.sku,
        qty: charge.qty,
    };
    serde_json::to_string(&body).expect("a struct of strings and integers serializes")
}

/// A successful gift answer. Parsed in Rust: a balance above 2^53 must not be rounded.
#[derive(Debug, Deserialize)]
struct GiftAnswer {
    balance: u64,
    #[serde(default)]
    replayed: bool,
}

/// The settlement service's error body (`{"code":…,"message":…}`).
#[derive(Debug, Default, Deserialize)]
struct ErrorAnswer {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

/// The message a gifter gets when the service cannot be used right now; a retry with the
/// same gift id is safe (the ledger answers a repeated id with the original answer).
pub const SETTLEMENT_UNAVAILABLE_MESSAGE: &str = "gifts are unavailable; retry";

/// What an answer of the settlement service to `POST /v1/gifts` means for the gifter.
/// Anything the contract does not name is `unavailable` (retry), never success: a 200
/// whose body cannot be read is also `unavailable`, and the retry with the same gift id
/// gets the original answer. The caller logs every `unavailable` outcome.
pub fn charge_outcome(status: u16, body: &[u8]) -> ChargeOutcome {
    let refused = |code, message: String| ChargeOutcome::Refused { code, message };
    if status == 200 {
        return match serde_json::from_slice::<GiftAnswer>(body) {
            Ok(answer) => ChargeOutcome::Charged {
                balance: answer.balance,
                replayed: answer.replayed,
            },
            Err(_) => refused(
                ErrorCode::Unavailable,
                SETTLEMENT_UNAVAILABLE_MESSAGE.into(),
            ),
        };
    }
    let error: ErrorAnswer = serde_json::from_slice(body).unwrap_or_default();
    match (status, error.code.as_str()) {
        (402, _) => refused(ErrorCode::InsufficientFunds, error.message),
        // Not a 404: `POST /v1/gifts` never answers one, so a 404 means a wrong URL or
        // a proxy on the way, which a gift refused `room_ended` hid for good (nothing
        // prompted a retry). It is `unavailable`, like every answer the contract does
        // not name.
        (409, "room_not_open") => refused(ErrorCode::RoomEnded, error.message),
        (409, "id_conflict") | (400, _) => refused(ErrorCode::Invalid, error.message),
        _ => refused(
            ErrorCode::Unavailable,
            SETTLEMENT_UNAVAILABLE_MESSAGE.into(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused_code(outcome: ChargeOutcome) -> ErrorCode {
        match outcome {
            ChargeOutcome::Refused { code, .. } => code,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn accounts_are_tenant_scoped_and_a_reopened_room_is_a_new_account() {
        assert_eq!(ledger_user_account("t1", "ann"), "t1:ann");
        assert_ne!(
            ledger_user_account("t1", "ann"),
            ledger_user_account("t2", "ann")
        );
        assert_eq!(ledger_room_account("t1", "show", 3), "t1:show:3");
        assert_ne!(
            ledger_room_account("t1", "show", 3),
            ledger_room_account("t1", "show", 4)
        );
    }

    #[test]
    fn the_gift_body_names_the_sender_account_and_keeps_large_amounts_exact() {
        let charge = ChargeRequest {
            request: 1,
            gift_id: "g-1".into(),
            user: "ann".into(),
            sku: "rose".into(),
            qty: 2,
            amount: (1 << 53) + 1,
        };
        let body: serde_json::Value =
            serde_json::from_str(&gift_request_body("t1", "t1:show:3", &charge)).unwrap();
        assert_eq!(body["id"], "g-1");
        assert_eq!(body["room"], "t1:show:3");
        assert_eq!(body["from"], "t1:ann");
        assert_eq!(body["amount"].as_u64(), Some((1 << 53) + 1));
        assert_eq!(body["sku"], "rose");
        assert_eq!(body["qty"], 2);
    }

    #[test]
    fn a_charge_reports_the_exact_balance_and_whether_it_was_a_replay() {
        let outcome = charge_outcome(200, br#"{"balance":9007199254740993,"replayed":true}"#);
        assert_eq!(
            outcome,
            ChargeOutcome::Charged {
                balance: 9_007_199_254_740_993,
                replayed: true
            }
        );
        let outcome = charge_outcome(200, br#"{"balance":0}"#);
        assert_eq!(
            outcome,
            ChargeOutcome::Charged {
                balance: 0,
                replayed: false
            }
        );
    }

    #[test]
    fn every_refusal_of_the_contract_maps_to_its_code_with_the_service_message() {
        let cases: [(u16, &str, ErrorCode); 7] = [
            (402, "insufficient_funds", ErrorCode::InsufficientFunds),
            (409, "room_not_open", ErrorCode::RoomEnded),
            (404, "not_found", ErrorCode::Unavailable),
            (404, "route_not_found", ErrorCode::Unavailable),
            (409, "id_conflict", ErrorCode::Invalid),
            (400, "invalid", ErrorCode::Invalid),
            (409, "something_new", ErrorCode::Unavailable),
        ];
        for (status, code, expected) in cases {
            let body = format!(r#"{{"code":"{code}","message":"why {code}"}}"#);
            let outcome = charge_outcome(status, body.as_bytes());
            match outcome {
                ChargeOutcome::Refused { code: got, message } => {
                    assert_eq!(got, expected, "{status} {code}");
                    if expected != ErrorCode::Unavailable {
                        assert_eq!(message, format!("why {code}"));
                    }
                }
                other => panic!("{status} {code}: {other:?}"),
            }
        }
    }

    #[test]
    fn nothing_unreadable_or_unknown_resolves_as_success() {
        for (status, body) in [
            (200, &b""[..]),
            (200, b"not json"),
            (200, br#"{"balance":-1}"#),
            (200, br#"{"balance":18446744073709551616}"#),
            (200, br#"{"replayed":true}"#),
            (500, br#"{"code":"internal"}"#),
            (503, b""),
            (0, b""),
            (u16::MAX, b"{}"),
        ] {
            assert_eq!(
                refused_code(charge_outcome(status, body)),
                ErrorCode::Unavailable,
                "{status} {:?}",
                String::from_utf8_lossy(body)
            );
        }
    }
}
