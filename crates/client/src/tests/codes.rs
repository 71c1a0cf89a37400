//! Failure codes: one type inside, the documented snake_case names at the edge.

use super::*;

#[test]
fn an_api_code_that_names_a_room_refusal_is_that_refusal_and_others_keep_their_name() {
    for code in ErrorCode::ALL {
        assert_eq!(
            FailureCode::from_api(400, Some(code.as_str())),
            FailureCode::Refused(code)
        );
    }
    let expired = FailureCode::from_api(401, Some("token_expired"));
    assert_eq!(expired, FailureCode::Api("token_expired".into()));
    assert_eq!(expired.as_str(), "token_expired");
    // An answer without a code: the status names it.
    assert_eq!(FailureCode::from_api(503, None).as_str(), "http_503");
    assert_eq!(FailureCode::from_api(0, None).as_str(), "http_0");
    assert_eq!(FailureCode::from_api(u16::MAX, None).as_str(), "http_65535");
}

#[test]
fn the_clients_own_codes_have_names_no_room_refusal_has() {
    let own = [
        FailureCode::Timeout,
        FailureCode::Closed,
        FailureCode::Unconfirmed,
        FailureCode::UnsupportedTransport,
        FailureCode::UnsupportedProtocol,
        FailureCode::TooManySockets,
        FailureCode::Banned,
        FailureCode::BadServerFrame,
        FailureCode::Network,
        FailureCode::BadResponse,
    ];
    let mut names = alloc::collections::BTreeSet::new();
    for code in ErrorCode::ALL {
        assert!(names.insert(code.as_str()));
    }
    for code in &own {
        assert!(names.insert(code.as_str()), "{} twice", code.as_str());
        // Read back from the API, it keeps its name (the SDK's `error.code` is the same
        // text whichever way it arrived).
        let back = FailureCode::from_api(400, Some(code.as_str()));
        assert_eq!(back.as_str(), code.as_str());
    }
    // A frame the client could not decode (it reconnects) is not named like a close the
    // server gave (a refused frame, which ends the session).
    for close in CloseCode::ALL {
        assert_ne!(FailureCode::BadServerFrame.as_str(), close.reason());
    }
}
