//! Per-tenant directory of live rooms (one object per tenant).

use crate::http::{error, json, json_body, ApiError};
use serde::{Deserialize, Serialize};
use worker::*;

#[derive(Serialize, Deserialize, Clone)]
struct Entry {
    room: String,
    title: String,
    host: String,
    created_ms: u64,
}

#[durable_object]
pub struct DirectoryObject {
    state: State,
}

impl DurableObject for DirectoryObject {
    fn new(state: State, _env: Env) -> Self {
        DirectoryObject { state }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        let path = req.path();
        let storage = self.state.storage();
        match (req.method(), path.as_str()) {
            // Admits a room before it is created (`ovation_room::admit_live_room`): a
            // listed room answers `existed` and keeps its entry; past the limit, 429.
            (Method::Post, "/add") => {
                let entry: Entry = match json_body(&mut req).await {
                    Ok(entry) => entry,
                    Err(e) => return error(e),
                };
                let key = format!("room/{}", entry.room);
                if storage.get::<Entry>(&key).await?.is_some() {
                    return json(serde_json::json!({ "ok": true, "existed": true }), 200);
                }
                let count = storage.list().await?.size() as usize;
                if let Err(e) = ovation_room::admit_live_room(count) {
                    return error(ApiError::new(e.http_status(), e.code(), &e.message()));
                }
                storage.put(&key, &entry).await?;
                json(serde_json::json!({ "ok": true, "existed": false }), 200)
            }
            (Method::Post, "/remove") => {
                #[derive(Deserialize)]
                struct Remove {
                    room: String,
                }
                let remove: Remove = match json_body(&mut req).await {
                    Ok(remove) => remove,
                    Err(e) => return error(e),
                };
                storage.delete(&format!("room/{}", remove.room)).await?;
                json(serde_json::json!({ "ok": true }), 200)
            }
            (Method::Get, "/list") => {
                let map = storage.list().await?;
                let mut rooms = Vec::new();
                for value in map.values() {
                    let entry: Entry = serde_wasm_bindgen::from_value(value?)
                        .map_err(|e| Error::RustError(e.to_string()))?;
                    rooms.push(entry);
                }
                rooms.sort_by(|a, b| a.room.cmp(&b.room));
                json(serde_json::json!({ "rooms": rooms }), 200)
            }
            _ => error(ApiError::new(404, "route_not_found", "no such route")),
        }
    }
}
