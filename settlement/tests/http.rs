//! The HTTP contract, in process, on SQLite shards.

use axum::body::Body;
use axum::http::Request;
use ovation_settlement::http::{app, AppState, Metrics, ROUTES};
use ovation_settlement::SqlLedger;
use serde_json::{json, Value};
use std::sync::Arc;
use tower::ServiceExt;

const SECRET: &str = "settlement-test-secret";

fn fresh_dir() -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../target/settlement-http-tests")
        .join(format!(
            "{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn shard_urls(dir: &std::path::Path) -> Vec<String> {
    (0..4)
        .map(|k| format!("sqlite://{}/shard-{k}.db?mode=rwc", dir.display()))
        .collect()
}

async fn service_in(dir: &std::path::Path, metrics_public: bool) -> axum::Router {
    app(AppState {
        ledger: SqlLedger::connect(&shard_urls(dir)).await.unwrap(),
        secret: Arc::new(SECRET.into()),
        metrics: Arc::new(Metrics::default()),
        metrics_public,
    })
}

async fn service() -> axum::Router {
    service_in(&fresh_dir(), false).await
}

async fn call(app: &axum::Router, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    call_as(app, method, path, body, Some(SECRET)).await
}

async fn call_as(
    app: &axum::Router,
    method: &str,
    path: &str,
    body: Option<Value>,
    secret: Option<&str>,
) -> (u16, Value) {
    let mut request = Request::builder().method(method).uri(path);
    if let Some(secret) = secret {
        request = request.header("authorization", format!("Bearer {secret}"));
    }
    let body = body
        .map(|b| Body::from(b.to_string()))
        .unwrap_or_else(Body::empty);
    let response = app
        .clone()
        .oneshot(request.body(body).unwrap())
        .await
        .unwrap();
    let status = response.status().as_u16();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    let value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (status, value)
}

fn gift(id: &str, from: &str, amount: u64) -> Value {
    json!({ "id": id, "room": "weur-show", "from": from, "amount": amount, "sku": "rose", "qty": 1 })
}

#[tokio::test]
async fn the_gift_lifecycle_through_the_api() {
    let app = service().await;
    let (status, body) = call(
        &app,
        "POST",
        "/v1/accounts/ana/deposit",
        Some(json!({"amount": 100, "id": "d1"})),
    )
    .await;
    assert_eq!((status, body["balance"].clone()), (200, json!(100)));
    let (_, account) = call(&app, "GET", "/v1/accounts/ana", None).await;
    assert_eq!(account["balance"], 100);
    assert!(account["shard"].as_u64().unwrap() < 4);

    assert_eq!(
        call(
            &app,
            "POST",
            "/v1/rooms/weur-show/open",
            Some(json!({"host": "star"}))
        )
        .await
        .0,
        200
    );
    let (status, body) = call(&app, "POST", "/v1/gifts", Some(gift("g1", "ana", 30))).await;
    assert_eq!((status, body["balance"].clone()), (200, json!(70)));
    // The same id and body: the original answer. A different body: id_conflict.
    let (status, body) = call(&app, "POST", "/v1/gifts", Some(gift("g1", "ana", 30))).await;
    assert_eq!((status, body["balance"].clone()), (200, json!(70)));
    let (status, body) = call(&app, "POST", "/v1/gifts", Some(gift("g1", "ana", 31))).await;
    assert_eq!((status, body["code"].clone()), (409, json!("id_conflict")));
    let (status, body) = call(&app, "POST", "/v1/gifts", Some(gift("g2", "ana", 500))).await;
    assert_eq!(
        (status, body["code"].clone()),
        (402, json!("insufficient_funds"))
    );

    let (_, room) = call(&app, "GET", "/v1/rooms/weur-show", None).await;
    assert_eq!(
        (room["status"].clone(), room["gifted"].clone()),
        (json!("open"), json!(30))
    );
    let (status, settled) = call(&app, "POST", "/v1/rooms/weur-show/settle", None).await;
    assert_eq!(status, 200);
    assert_eq!(
        (settled["status"].clone(), settled["settled"].clone()),
        (json!("settled"), json!(30))
    );
    let (_, again) = call(&app, "POST", "/v1/rooms/weur-show/settle", None).await;
    assert_eq!(again["settled"], 30);
    assert_eq!(
        call(&app, "GET", "/v1/accounts/star", None).await.1["balance"],
        30
    );
    let (status, body) = call(&app, "POST", "/v1/gifts", Some(gift("g3", "ana", 1))).await;
    assert_eq!(
        (status, body["code"].clone()),
        (409, json!("room_not_open"))
    );

    let (status, audit) = call(&app, "GET", "/v1/audit", None).await;
    assert_eq!((status, audit["ok"].clone()), (200, json!(true)), "{audit}");
    let (_, metrics) = call(&app, "GET", "/metrics", None).await;
    let metrics = metrics.as_str().unwrap().to_owned();
    assert!(
        metrics.contains(r#"route="/v1/gifts",status="402""#),
        "{metrics}"
    );
}

#[tokio::test]
async fn errors_carry_stable_codes() {
    let app = service().await;
    let cases = [
        (
            call_as(&app, "GET", "/v1/audit", None, None).await,
            401,
            "unauthorized",
        ),
        (
            call_as(&app, "GET", "/v1/audit", None, Some("wrong-secret-xxxxxx")).await,
            401,
            "unauthorized",
        ),
        (
            call(&app, "GET", "/v1/rooms/weur-none", None).await,
            404,
            "room_not_found",
        ),
        (
            call(&app, "POST", "/v1/gifts", Some(json!({"id": "x"}))).await,
            400,
            "invalid_json",
        ),
        (
            call(&app, "POST", "/v1/gifts", Some(gift("g", "ana", 0))).await,
            400,
            "invalid",
        ),
        (
            // A gift to a room never opened: docs/settlement.md and the OpenAPI document.
            call(&app, "POST", "/v1/gifts", Some(gift("g", "ana", 5))).await,
            409,
            "room_not_open",
        ),
        (
            call(&app, "GET", "/v1/nowhere", None).await,
            404,
            "route_not_found",
        ),
        (
            call(&app, "GET", "/v1/gifts", None).await,
            405,
            "method_not_allowed",
        ),
        (
            call(&app, "GET", "/v1/accounts/%FF", None).await,
            400,
            "invalid_path",
        ),
    ];
    for ((status, body), expected_status, code) in cases {
        assert_eq!(
            (status, body["code"].as_str()),
            (expected_status, Some(code)),
            "{body}"
        );
        assert!(body["message"].is_string());
    }
    assert_eq!(
        call(
            &app,
            "POST",
            "/v1/rooms/weur-a/open",
            Some(json!({"host": "h1"}))
        )
        .await
        .0,
        200
    );
    let (status, body) = call(
        &app,
        "POST",
        "/v1/rooms/weur-a/open",
        Some(json!({"host": "h2"})),
    )
    .await;
    assert_eq!(
        (status, body["code"].clone()),
        (409, json!("room_host_conflict"))
    );
}

/// Ids named in the path are checked as the bodies' are: a control character (a NUL,
/// which PostgreSQL refuses in text: a 500 before) or one byte past the limit is
/// `400 invalid`, on every route that names one; an id at the limit is read.
#[tokio::test]
async fn ids_in_the_path_are_checked_like_the_bodies() {
    use ovation_proto::limits::{LEDGER_ROOM_ID_BYTES_MAX, LEDGER_USER_ID_BYTES_MAX};
    let app = service().await;
    let user_at_limit = "u".repeat(LEDGER_USER_ID_BYTES_MAX);
    let user_past = "u".repeat(LEDGER_USER_ID_BYTES_MAX + 1);
    let room_past = "r".repeat(LEDGER_ROOM_ID_BYTES_MAX + 1);
    for (method, path) in [
        ("GET", "/v1/accounts/%00".to_owned()),
        ("GET", format!("/v1/accounts/{user_past}")),
        ("GET", "/v1/rooms/weur-a%01".to_owned()),
        ("GET", format!("/v1/rooms/{room_past}")),
        ("POST", "/v1/rooms/%00/settle".to_owned()),
        ("POST", format!("/v1/rooms/{room_past}/settle")),
    ] {
        let body = (method == "POST").then(|| json!({}));
        let (status, answer) = call(&app, method, &path, body).await;
        assert_eq!(
            (status, answer["code"].as_str()),
            (400, Some("invalid")),
            "{method} {}: {answer}",
            &path[..path.len().min(40)]
        );
    }
    let (status, answer) = call(&app, "GET", &format!("/v1/accounts/{user_at_limit}"), None).await;
    assert_eq!((status, &answer["balance"]), (200, &json!(0)), "{answer}");
}

#[tokio::test]
async fn openapi_document_lists_exactly_the_routes() {
    let app = service().await;
    let (status, document) = call_as(&app, "GET", "/v1/openapi.json", None, None).await;
    assert_eq!(status, 200);
    let documented: std::collections::BTreeSet<&str> = document["paths"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let routes: std::collections::BTreeSet<&str> = ROUTES.into_iter().collect();
    assert_eq!(documented, routes);
    // The refusals the code gives are the ones documented.
    let gifts = &document["paths"]["/v1/gifts"]["post"]["responses"];
    for status in ["402", "409", "413", "401", "500"] {
        assert!(gifts.get(status).is_some(), "gifts document {status}");
    }
    assert!(gifts.get("404").is_none(), "a gift is never 404");
    assert!(document["paths"]["/metrics"]["get"]["responses"]
        .get("401")
        .is_some());
    let statuses = &document["paths"]["/v1/rooms/{room}"]["get"]["responses"]["200"]["content"]
        ["application/json"]["schema"]["properties"]["status"]["enum"];
    assert_eq!(statuses, &json!(["opening", "open", "settling", "settled"]));
    // The bounds a client generated from the document checks are the ledger's.
    use ovation_proto::limits::{LEDGER_AMOUNT_MAX, LEDGER_QTY_MAX};
    let body = |path: &str| {
        &document["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]
            ["properties"]
    };
    let deposit = body("/v1/accounts/{user}/deposit");
    let gift = body("/v1/gifts");
    for (what, field, max) in [
        ("deposit", &deposit["amount"], LEDGER_AMOUNT_MAX),
        ("gift", &gift["amount"], LEDGER_AMOUNT_MAX),
        ("gift", &gift["qty"], u64::from(LEDGER_QTY_MAX)),
    ] {
        assert_eq!(
            (&field["minimum"], &field["maximum"]),
            (&json!(1), &json!(max)),
            "{what}"
        );
    }
}

/// A request with a raw body and headers of the test's choosing.
async fn send_raw(
    app: &axum::Router,
    path: &str,
    body: Vec<u8>,
    headers: &[(&str, String)],
) -> (u16, Value) {
    let mut request = Request::builder().method("POST").uri(path);
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let response = app
        .clone()
        .oneshot(request.body(Body::from(body)).unwrap())
        .await
        .unwrap();
    let status = response.status().as_u16();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    let value = serde_json::from_slice(&bytes).unwrap_or_else(|_| {
        panic!(
            "{path} answered {status} with non-JSON {:?}",
            String::from_utf8_lossy(&bytes)
        )
    });
    (status, value)
}

#[tokio::test]
async fn bodies_over_the_limit_get_json_and_the_bearer_comes_first() {
    let app = service().await;
    let bearer = ("authorization", format!("Bearer {SECRET}"));
    let limit = ovation_settlement::http::BODY_BYTES_MAX;
    // One byte past the limit (valid JSON, padded): 413 with a code, as JSON.
    let mut big = br#"{"amount":1,"id":"d1"}"#.to_vec();
    big.resize(limit + 1, b' ');
    let (status, body) = send_raw(
        &app,
        "/v1/accounts/ana/deposit",
        big.clone(),
        std::slice::from_ref(&bearer),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (413, Some("body_too_large")),
        "{body}"
    );
    // Exactly at the limit: read and applied.
    let mut fits = br#"{"amount":1,"id":"d1"}"#.to_vec();
    fits.resize(limit, b' ');
    let (status, body) = send_raw(
        &app,
        "/v1/accounts/ana/deposit",
        fits,
        std::slice::from_ref(&bearer),
    )
    .await;
    assert_eq!((status, body["balance"].as_u64()), (200, Some(1)), "{body}");
    // A declared length past the limit is refused before a byte is read (no body sent).
    let (status, body) = send_raw(
        &app,
        "/v1/gifts",
        Vec::new(),
        &[bearer.clone(), ("content-length", (u64::MAX).to_string())],
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (413, Some("body_too_large"))
    );
    // Without the bearer, the body is never looked at: 401, whatever its size.
    let (status, body) = send_raw(&app, "/v1/accounts/ana/deposit", big, &[]).await;
    assert_eq!((status, body["code"].as_str()), (401, Some("unauthorized")));
    for route in [
        "/v1/gifts",
        "/v1/rooms/weur-x/open",
        "/v1/rooms/weur-x/settle",
    ] {
        let (status, _) = send_raw(&app, route, b"not json".to_vec(), &[]).await;
        assert_eq!(status, 401, "{route}");
    }
}

#[tokio::test]
async fn metrics_need_the_bearer_unless_made_public() {
    let app = service().await;
    let (status, body) = call_as(&app, "GET", "/metrics", None, None).await;
    assert_eq!((status, body["code"].as_str()), (401, Some("unauthorized")));
    let (status, _) = call(&app, "GET", "/metrics", None).await;
    assert_eq!(status, 200);
    let public = service_in(&fresh_dir(), true).await;
    let (status, body) = call_as(&public, "GET", "/metrics", None, None).await;
    assert_eq!(status, 200);
    assert!(body
        .as_str()
        .unwrap()
        .contains("ovation_settlement_requests_total"));
    // Only /metrics: the rest still needs the bearer.
    let (status, _) = call_as(&public, "GET", "/v1/audit", None, None).await;
    assert_eq!(status, 401);
}

/// Reads on a database a crash or an operator damaged answer JSON with a code; none
/// panics (a panic would close the connection with no answer).
#[tokio::test]
async fn reads_answer_json_on_any_database_state() {
    let dir = fresh_dir();
    let app = service_in(&dir, false).await;
    for (path, body) in [
        ("/v1/rooms/weur-a/open", json!({"host": "star"})),
        ("/v1/rooms/weur-b/open", json!({"host": "star"})),
        ("/v1/accounts/ana/deposit", json!({"amount": 10, "id": "d"})),
    ] {
        assert_eq!(call(&app, "POST", path, Some(body)).await.0, 200);
    }
    // Damage: weur-a gone from shard 2 (an opening cut short), an unknown status, a
    // negative balance, a NULL where a number belongs.
    sqlx::any::install_default_drivers();
    let urls = shard_urls(&dir);
    let shard0 = sqlx::AnyPool::connect(&urls[0]).await.unwrap();
    let shard2 = sqlx::AnyPool::connect(&urls[2]).await.unwrap();
    sqlx::query("DELETE FROM room_stripes WHERE room = 'weur-a'")
        .execute(&shard2)
        .await
        .unwrap();
    let (status, room) = call(&app, "GET", "/v1/rooms/weur-a", None).await;
    assert_eq!(
        (status, room["status"].as_str()),
        (200, Some("opening")),
        "{room}"
    );
    sqlx::query("UPDATE room_stripes SET status = 'bogus' WHERE room = 'weur-b'")
        .execute(&shard0)
        .await
        .unwrap();
    sqlx::query("INSERT INTO accounts (account, balance) VALUES ('user:neg', -5)")
        .execute(&shard0)
        .await
        .unwrap();
    sqlx::query("UPDATE transfers SET balance_after = -1")
        .execute(&shard0)
        .await
        .unwrap();
    for path in [
        "/v1/rooms/weur-b",
        "/v1/rooms/weur-a",
        "/v1/audit",
        "/v1/accounts/neg",
        "/v1/accounts/ana",
    ] {
        let (status, body) = call(&app, "GET", path, None).await;
        assert!(
            status == 200 || (status == 500 && body["code"] == "internal"),
            "{path}: {status} {body}"
        );
    }
    let (status, body) = call(&app, "GET", "/v1/rooms/weur-b", None).await;
    assert_eq!((status, body["code"].as_str()), (500, Some("internal")));
}
