//! Pull answers (already parsed by the browser's `Response.json()`) read into the core's
//! types field by field.
//!
//! Why not serde-wasm-bindgen: it was ~15 KB of the wasm plus the float-formatting code
//! its error messages pull in, for two small fixed shapes. Every viewer downloads the SDK.

use ovation_client::{PullAction, PullEvents, PullState};
use std::collections::BTreeMap;
use wasm_bindgen::{JsCast, JsValue};

/// Which field was missing or malformed, for the `bad_response` error message.
pub struct BadField(pub &'static str);

/// The largest integer a JavaScript number holds exactly.
const SAFE_INTEGER_MAX: f64 = 9_007_199_254_740_991.0;

fn get(object: &JsValue, key: &str) -> JsValue {
    js_sys::Reflect::get(object, &JsValue::from_str(key)).unwrap_or(JsValue::UNDEFINED)
}

fn number(object: &JsValue, key: &'static str) -> Result<u64, BadField> {
    match get(object, key).as_f64() {
        Some(n) if (0.0..=SAFE_INTEGER_MAX).contains(&n) && n.fract() == 0.0 => Ok(n as u64),
        _ => Err(BadField(key)),
    }
}

fn number_or_zero(object: &JsValue, key: &'static str) -> Result<u64, BadField> {
    if get(object, key).is_undefined() {
        Ok(0)
    } else {
        number(object, key)
    }
}

fn small(object: &JsValue, key: &'static str) -> Result<u32, BadField> {
    u32::try_from(number(object, key)?).map_err(|_| BadField(key))
}

fn text(object: &JsValue, key: &'static str) -> Result<String, BadField> {
    get(object, key).as_string().ok_or(BadField(key))
}

fn text_or_empty(object: &JsValue, key: &'static str) -> Result<String, BadField> {
    let value = get(object, key);
    if value.is_undefined() {
        Ok(String::new())
    } else {
        value.as_string().ok_or(BadField(key))
    }
}

fn optional_number(object: &JsValue, key: &'static str) -> Result<Option<u64>, BadField> {
    let value = get(object, key);
    if value.is_undefined() || value.is_null() {
        Ok(None)
    } else {
        number(object, key).map(Some)
    }
}

/// `GET /v1/rooms/{room}/state`.
pub fn state(json: &JsValue) -> Result<PullState, BadField> {
    let parts_object = get(json, "parts");
    let parts_object: js_sys::Object = parts_object.dyn_into().map_err(|_| BadField("parts"))?;
    let mut parts = BTreeMap::new();
    for entry in js_sys::Object::entries(&parts_object).iter() {
        let entry: js_sys::Array = entry.unchecked_into();
        let name = entry.get(0).as_string().ok_or(BadField("parts"))?;
        let version = entry.get(1).as_f64().ok_or(BadField("parts"))?;
        if !(0.0..=SAFE_INTEGER_MAX).contains(&version) || version.fract() != 0.0 {
            return Err(BadField("parts"));
        }
        parts.insert(name, version as u64);
    }
    Ok(PullState {
        room: text_or_empty(json, "room")?,
        epoch: number(json, "epoch")?,
        version: number(json, "version")?,
        parts,
        action_cursor: number(json, "action_cursor")?,
        likes: number(json, "likes")?,
        online: small(json, "online")?,
        status: text(json, "status")?,
    })
}

/// `GET /v1/rooms/{room}/events?since=`.
pub fn events(json: &JsValue) -> Result<PullEvents, BadField> {
    let list: js_sys::Array = get(json, "events")
        .dyn_into()
        .map_err(|_| BadField("events"))?;
    let mut events = Vec::with_capacity(list.length() as usize);
    for event in list.iter() {
        events.push(PullAction {
            seq: number(&event, "seq")?,
            ts_ms: number(&event, "ts_ms")?,
            user: text(&event, "user")?,
            name: text(&event, "name")?,
            kind: text(&event, "kind")?,
            text: text_or_empty(&event, "text")?,
            sku: text_or_empty(&event, "sku")?,
            qty: u32::try_from(number_or_zero(&event, "qty")?).map_err(|_| BadField("qty"))?,
            amount: number_or_zero(&event, "amount")?,
            removed: number_or_zero(&event, "removed")?,
        });
    }
    let status = get(json, "status");
    Ok(PullEvents {
        events,
        gap: get(json, "gap").as_bool().ok_or(BadField("gap"))?,
        cursor: number(json, "cursor")?,
        epoch: number(json, "epoch")?,
        version: number(json, "version")?,
        likes: number(json, "likes")?,
        online: small(json, "online")?,
        poll_interval_ms: small(json, "poll_interval_ms")?,
        server_time_ms: optional_number(json, "server_time_ms")?,
        status: if status.is_undefined() || status.is_null() {
            None
        } else {
            Some(text(json, "status")?)
        },
    })
}
