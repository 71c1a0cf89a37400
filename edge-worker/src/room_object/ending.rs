//! What follows a room's end, however it ended (the admin API's `/end`, a host's
//! `end_room` over its socket or through `/commands`): its gifts settled by the
//! settlement service and its directory entry archived with its replay window.
//!
//! Both steps are idempotent, so an end whose settlement or archive failed is completed
//! by the next attempt: `POST /end` again (answered 200 on an ended room), or, until
//! both succeed for this opening, the room's next request or socket event.

use super::*;

/// Storage key of the epoch whose end was completed (settled and archived). Under
/// `ovation_room::HOST_KEY_PREFIX`: not one of the room core's records.
pub(super) const END_FINISHED_KEY: &str = "object/end_finished";

impl RoomObject {
    /// Settles and archives the ended room; the settlement service's summary for the
    /// answer to `/end` (`{"status":"pending"}` when it failed; null without gifts).
    pub(crate) async fn finish_end(&self) -> serde_json::Value {
        let (room_id, epoch, replay, tenant) = {
            let memory = self.memory.borrow();
            let Some(room) = memory.room.as_ref() else {
                return serde_json::Value::Null;
            };
            if room.status() != ovation_room::RoomStatus::Ended {
                return serde_json::Value::Null;
            }
            (
                room.info().room_id.clone(),
                room.epoch(),
                Self::replay_window_json(&memory),
                memory.tenant.clone(),
            )
        };
        let mut finished = true;
        let mut settlement = serde_json::Value::Null;
        if let (Some(ledger_room), Some(_)) = (self.ledger_room(), self.settlement()) {
            let path = format!("/v1/rooms/{ledger_room}/settle");
            settlement = match self.settlement_call(&path, "{}".into()).await {
                Ok((200, summary)) => {
                    serde_json::from_slice(&summary).unwrap_or(serde_json::Value::Null)
                }
                other => {
                    finished = false;
                    log_json(json!({"level":"error","event":"settle_failed",
                                    "detail": format!("{other:?}")}));
                    json!({ "status": "pending" })
                }
            };
        }
        if let Err(cause) = self.archive(&tenant, &room_id, replay).await {
            finished = false;
            log_json(json!({"level":"error","event":"archive_failed","detail": cause}));
        }
        if finished {
            let stored = self
                .state
                .storage()
                .put_raw(
                    END_FINISHED_KEY,
                    Uint8Array::from(epoch.to_string().as_bytes()),
                )
                .await;
            if stored.is_ok() {
                self.memory.borrow_mut().end_finished = true;
            }
        }
        settlement
    }

    /// `finish_end` if the room ended and this opening's end is not complete yet.
    pub(crate) async fn finish_end_if_due(&self) {
        let due = {
            let memory = self.memory.borrow();
            !memory.end_finished
                && memory
                    .room
                    .as_ref()
                    .is_some_and(|room| room.status() == ovation_room::RoomStatus::Ended)
        };
        if due {
            self.finish_end().await;
        }
    }

    /// The recording's window as the directory and `/end` name it, if the room records.
    pub(super) fn replay_window_json(memory: &Memory) -> serde_json::Value {
        memory
            .recorder
            .as_ref()
            .map_or(serde_json::Value::Null, |recorder| {
                json!({
                    "from_ms": recorder.started_ms(), "to_ms": recorder.ended_ms(),
                    "truncated_at_ms": recorder.truncated_at_ms(),
                })
            })
    }

    /// Moves the room's entry in its tenant's directory to the archived list.
    async fn archive(
        &self,
        tenant: &str,
        room_id: &str,
        replay: serde_json::Value,
    ) -> std::result::Result<(), String> {
        if tenant.is_empty() {
            return Err("the room does not know its tenant".into());
        }
        let stub = self
            .env
            .durable_object("DIRECTORY")
            .and_then(|ns| ns.get_by_name(tenant))
            .map_err(|e| e.to_string())?;
        let headers = Headers::new();
        let _ = headers.set("content-type", "application/json");
        let mut init = RequestInit::new();
        init.with_method(Method::Post)
            .with_headers(headers)
            .with_body(Some(
                json!({ "room": room_id, "replay": replay })
                    .to_string()
                    .into(),
            ));
        let request =
            Request::new_with_init("https://do/archive", &init).map_err(|e| e.to_string())?;
        let response = stub
            .fetch_with_request(request)
            .await
            .map_err(|e| e.to_string())?;
        match response.status_code() {
            200 => Ok(()),
            status => Err(format!("the directory answered {status}")),
        }
    }
}
