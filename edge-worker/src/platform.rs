//! Platform bindings the objects share: the clock, randomness, logging, and the part of
//! the Durable Object state workers-rs does not bind. A leaf module.

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
