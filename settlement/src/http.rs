//! The HTTP API (a contract): JSON in and out, errors `{code, message}` with a stable code
//! on every route and every failure (a handler's panic included), a bearer secret shared
//! with the edge worker, checked before a body is read.

use crate::store::{SqlLedger, StoreError};
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::FutureExt;
use ovation_ledger::{Deposit, Gift, LedgerError, RoomSummary};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};

/// Largest request body accepted.
pub use ovation_proto::limits::SETTLEMENT_BODY_BYTES_MAX as BODY_BYTES_MAX;

pub const OPENAPI: &str = include_str!("../openapi.json");

#[derive(Clone)]
pub struct AppState {
    pub ledger: SqlLedger,
    pub secret: Arc<String>,
    pub metrics: Arc<Metrics>,
    /// `GET /metrics` without the bearer (`--metrics-public`); off by default.
    pub metrics_public: bool,
}

/// Prometheus counters: requests by route and status.
#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(&'static str, u16), u64>>,
}

impl Metrics {
    fn count(&self, route: &'static str, status: u16) {
        let mut requests = self.requests.lock().expect("metrics lock");
        *requests.entry((route, status)).or_default() += 1;
    }

    pub fn render(&self) -> String {
        let requests = self.requests.lock().expect("metrics lock");
        let mut text = String::from(
            "# HELP ovation_settlement_requests_total HTTP requests by route and status.\n\
             # TYPE ovation_settlement_requests_total counter\n",
        );
        for ((route, status), count) in requests.iter() {
            text.push_str(&format!(
                "ovation_settlement_requests_total{{route=\"{route}\",status=\"{status}\"}} {count}\n"
            ));
        }
        text
    }
}

/// An API error: status, stable code, human message.
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    fn new(status: u16, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::from_u16(status).expect("valid status"),
            code,
            message: message.into(),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match e {
            StoreError::Ledger(e) => ApiError::from(e),
            other => {
                tracing::error!(error = %other, "storage failure");
                ApiError::new(500, "internal", "internal error")
            }
        }
    }
}

impl From<LedgerError> for ApiError {
    fn from(e: LedgerError) -> ApiError {
        ApiError::new(e.status(), e.code(), e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_client_error() {
            tracing::info!(code = self.code, message = %self.message, "refused");
        }
        (
            self.status,
            Json(json!({ "code": self.code, "message": self.message })),
        )
            .into_response()
    }
}

type ApiResult = Result<Json<Value>, ApiError>;

fn authorize(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    // (Called by `require_bearer` for every route but the public ones.)
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    // Constant-time comparison: the secret must not leak through timing.
    let expected = state.secret.as_bytes();
    let same = given.len() == expected.len()
        && given
            .bytes()
            .zip(expected.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    if same {
        Ok(())
    } else {
        Err(ApiError::new(
            401,
            "unauthorized",
            "a valid `Authorization: Bearer <secret>` is required",
        ))
    }
}

fn body_too_large() -> ApiError {
    ApiError::new(
        413,
        "body_too_large",
        format!("request body exceeds {BODY_BYTES_MAX} bytes"),
    )
}

/// Reads at most `BODY_BYTES_MAX` bytes of the body (refusing a larger declared length
/// before reading any) and parses them as JSON.
async fn parse<T: DeserializeOwned>(headers: &HeaderMap, body: Body) -> Result<T, ApiError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > BODY_BYTES_MAX as u64) {
        return Err(body_too_large());
    }
    let bytes = axum::body::to_bytes(body, BODY_BYTES_MAX)
        .await
        .map_err(|_| body_too_large())?;
    serde_json::from_slice(&bytes).map_err(|e| ApiError::new(400, "invalid_json", e.to_string()))
}

fn account_json(state: &AppState, user: &str, balance: u64) -> Value {
    json!({ "user": user, "shard": state.ledger.map().shard_of(user), "balance": balance })
}

fn room_json(summary: &RoomSummary) -> Value {
    json!({ "room": summary.room, "host": summary.host, "status": summary.status.as_str(),
            "gifted": summary.gifted, "settled": summary.settled })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DepositBody {
    amount: u64,
    id: String,
}

async fn deposit(
    State(state): State<AppState>,
    Param(user): Param,
    headers: HeaderMap,
    body: Body,
) -> ApiResult {
    let body: DepositBody = parse(&headers, body).await?;
    let balance = state
        .ledger
        .deposit(&Deposit {
            id: body.id,
            user: user.clone(),
            amount: body.amount,
        })
        .await?;
    Ok(Json(account_json(&state, &user, balance)))
}

async fn account(State(state): State<AppState>, Param(user): Param) -> ApiResult {
    let balance = state.ledger.balance(&user).await?;
    Ok(Json(account_json(&state, &user, balance)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OpenBody {
    host: String,
}

async fn open_room(
    State(state): State<AppState>,
    Param(room): Param,
    headers: HeaderMap,
    body: Body,
) -> ApiResult {
    let body: OpenBody = parse(&headers, body).await?;
    state.ledger.open_room(&room, &body.host).await?;
    Ok(Json(room_json(&state.ledger.room(&room).await?)))
}

async fn room(State(state): State<AppState>, Param(room): Param) -> ApiResult {
    Ok(Json(room_json(&state.ledger.room(&room).await?)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GiftBody {
    id: String,
    room: String,
    from: String,
    amount: u64,
    sku: String,
    qty: u32,
}

async fn gift(State(state): State<AppState>, headers: HeaderMap, body: Body) -> ApiResult {
    let body: GiftBody = parse(&headers, body).await?;
    let gift = Gift {
        id: body.id,
        room: body.room,
        from: body.from,
        amount: body.amount,
        sku: body.sku,
        qty: body.qty,
    };
    let receipt = state.ledger.gift(&gift).await?;
    Ok(Json(
        json!({ "id": gift.id, "from": gift.from, "balance": receipt.balance,
                    "replayed": receipt.replayed }),
    ))
}

async fn settle(State(state): State<AppState>, Param(room): Param) -> ApiResult {
    Ok(Json(room_json(&state.ledger.settle(&room).await?)))
}

async fn audit(State(state): State<AppState>) -> ApiResult {
    let audit = state.ledger.audit().await?;
    Ok(Json(json!({
        "ok": audit.ok(),
        "balances_sum_zero": { "ok": audit.balances_sum == 0, "sum": audit.balances_sum.to_string() },
        "no_negative_users": { "ok": audit.negative_users == 0, "negative_users": audit.negative_users },
        "settled_rooms_zero": { "ok": audit.settled_rooms_nonzero == 0, "nonzero": audit.settled_rooms_nonzero },
        "hosts_paid_exactly": { "ok": audit.host_mismatches == 0, "mismatches": audit.host_mismatches },
        "transfer_ids_once": { "ok": true, "why": "primary key (owner, id) in every shard" },
    })))
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    // Public only with `--metrics-public` (see `require_bearer`).
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}

async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI)
}

/// A route's one path parameter; one that does not decode (not UTF-8) is a JSON 400
/// with a code, like every other refusal, not the framework's plain text.
struct Param(String);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Param {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Param, ApiError> {
        Path::<String>::from_request_parts(parts, state)
            .await
            .map(|Path(value)| Param(value))
            .map_err(|e| ApiError::new(400, "invalid_path", e.body_text()))
    }
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        405,
        "method_not_allowed",
        "this route does not take that method",
    )
}

async fn not_found() -> ApiError {
    ApiError::new(404, "route_not_found", "no such route")
}

/// The bearer, checked before any handler runs (so before any body is read), on every
/// route but the OpenAPI document and, with `--metrics-public`, `/metrics`.
async fn require_bearer(
    State(state): State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let path = request.uri().path();
    let public = path == OPENAPI_ROUTE || (state.metrics_public && path == METRICS_ROUTE);
    if !public {
        if let Err(refusal) = authorize(&state, request.headers()) {
            return refusal.into_response();
        }
    }
    next.run(request).await
}

/// A handler that panics (a broken invariant, never input) still answers JSON with a
/// stable code instead of closing the connection.
async fn answer_panics(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    match AssertUnwindSafe(next.run(request)).catch_unwind().await {
        Ok(response) => response,
        Err(_) => {
            tracing::error!("a handler panicked");
            ApiError::new(500, "internal", "internal error").into_response()
        }
    }
}

/// Counts every response by its route template and status.
async fn count(
    State(state): State<AppState>,
    matched: Option<axum::extract::MatchedPath>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let route = match matched.as_ref().map(|m| m.as_str()) {
        Some(path) => ROUTES
            .iter()
            .find(|r| **r == path)
            .copied()
            .unwrap_or("other"),
        None => "unmatched",
    };
    let response = next.run(request).await;
    state.metrics.count(route, response.status().as_u16());
    response
}

/// Route templates, as registered (also what the OpenAPI document must list).
pub const ROUTES: [&str; 9] = [
    "/v1/accounts/{user}/deposit",
    "/v1/accounts/{user}",
    "/v1/rooms/{room}/open",
    "/v1/rooms/{room}",
    "/v1/gifts",
    "/v1/rooms/{room}/settle",
    "/v1/audit",
    OPENAPI_ROUTE,
    METRICS_ROUTE,
];

/// The routes without the bearer: always, and with `--metrics-public`.
const OPENAPI_ROUTE: &str = "/v1/openapi.json";
const METRICS_ROUTE: &str = "/metrics";

pub fn app(state: AppState) -> Router {
    Router::new()
        .route(ROUTES[0], post(deposit))
        .route(ROUTES[1], get(account))
        .route(ROUTES[2], post(open_room))
        .route(ROUTES[3], get(room))
        .route(ROUTES[4], post(gift))
        .route(ROUTES[5], post(settle))
        .route(ROUTES[6], get(audit))
        .route(OPENAPI_ROUTE, get(openapi))
        .route(METRICS_ROUTE, get(metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn(answer_panics))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            require_bearer,
        ))
        .layer(axum::middleware::from_fn_with_state(state.clone(), count))
        .with_state(state)
}
