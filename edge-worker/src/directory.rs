//! Per-tenant directory of live rooms (one object per tenant).

use crate::http::{error, json, ApiError};
use ovation_proto::limits::DIRECTORY_ROOMS_MAX;
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
            (Method::Post, "/add") => {
                let entry: Entry = req.json().await?;
                let count = storage.list().await?.size() as usize;
                if count >= DIRECTORY_ROOMS_MAX {
                    return error(ApiError::new(
                        429,
                        "too_many_rooms",
                        "the tenant has too many live rooms",
                    ));
                }
                storage.put(&format!("room/{}", entry.room), &entry).await?;
                json(serde_json::json!({ "ok": true }), 200)
            }
            (Method::Post, "/remove") => {
                #[derive(Deserialize)]
                struct Remove {
                    room: String,
                }
                let remove: Remove = req.json().await?;
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
