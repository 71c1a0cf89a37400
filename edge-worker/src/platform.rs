//! Platform bindings the objects share: the clock, randomness, logging, and the part of
//! the Durable Object state workers-rs does not bind. A leaf module.

use ovation_proto::limits::{
    CONNECTION_LIFETIME_MS_MAX, CONNECTION_LIFETIME_MS_MIN, CONNECTION_LIFETIME_OVERRIDE_MS_MIN,
};
use wasm_bindgen::prelude::*;
use worker::*;

#[wasm_bindgen]
extern "C" {
    /// The part of DurableObjectState that workers-rs does not bind.
    pub(crate) type StateWithAutoResponse;
    #[wasm_bindgen(method, catch, js_name = getWebSocketAutoResponseTimestamp)]
    pub(crate) fn auto_response_timestamp(
        this: &StateWithAutoResponse,
        ws: &web_sys::WebSocket,
    ) -> std::result::Result<Option<js_sys::Date>, JsValue>;
}

pub(crate) fn now_ms() -> u64 {
    Date::now().as_millis()
}

pub(crate) fn random_u53() -> u64 {
    (js_sys::Math::random() * 9_007_199_254_740_991.0) as u64
}

pub(crate) fn log_json(value: serde_json::Value) {
    console_log!("{}", value);
}

/// The lifetime of a new connection: random in the configured range (jitter spreads
/// reconnects), or the `OVATION_CONNECTION_LIFETIME_MS` override for tests and staging,
/// clamped.
pub(crate) fn connection_lifetime_ms(env: &Env) -> u64 {
    let configured = crate::number_binding::<u64>(env, "OVATION_CONNECTION_LIFETIME_MS");
    match configured {
        Some(ms) => ms.clamp(
            CONNECTION_LIFETIME_OVERRIDE_MS_MIN,
            CONNECTION_LIFETIME_MS_MAX,
        ),
        None => {
            let span_ms = CONNECTION_LIFETIME_MS_MAX - CONNECTION_LIFETIME_MS_MIN;
            CONNECTION_LIFETIME_MS_MIN + (js_sys::Math::random() * span_ms as f64) as u64
        }
    }
}
