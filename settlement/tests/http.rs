//! The HTTP contract, in process, on SQLite shards.

use axum::body::Body;
use axum::http::Request;
use ovation_settlement::http::{app, AppState, Metrics, ROUTES};
use ovation_settlement::SqlLedger;
use serde_json::{json, Value};
use std::sync::Arc;
use tower::ServiceExt;

const SECRET: &str = "settlement-test-secret";

async fn service() -> axum::Router {
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
    let urls: Vec<String> = (0..4)
        .map(|k| format!("sqlite://{}/shard-{k}.db?mode=rwc", dir.display()))
        .collect();
    app(AppState {
        ledger: SqlLedger::connect(&urls).await.unwrap(),
        secret: Arc::new(SECRET.into()),
        metrics: Arc::new(Metrics::default()),
        metrics_public: false,
    })
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
            // A gift to a room never opened: the README's table and the OpenAPI document.
            call(&app, "POST", "/v1/gifts", Some(gift("g", "ana", 5))).await,
            409,
            "room_not_open",
        ),
        (
            call(&app, "GET", "/v1/nowhere", None).await,
            404,
            "route_not_found",
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
}
