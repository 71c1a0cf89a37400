//! What follows a room's end, however it ended (the admin API's `/end`, a host's
//! `end_room` over its socket or through `/commands`): its gifts settled by the
//! settlement service and its directory entry archived with its replay window.
//!
//! Both steps are idempotent, so an end whose settlement or archive failed is completed
//! by the next attempt: `POST /end` again (answered 200 on an ended room), or, until
//! both succeed for this opening, the room's own retry on its next request or socket
//! event (at most once per `ROOM_END_RETRY_INTERVAL_MS`). The room is not opened again
//! before its last opening is settled.

use super::*;
use ovation_proto::limits::ROOM_END_RETRY_INTERVAL_MS;

/// Storage key of the epoch whose end was completed (settled and archived). Under
/// `ovation_room::HOST_KEY_PREFIX`: not one of the room core's records.
pub(super) const END_FINISHED_KEY: &str = "object/end_finished";

/// Storage key of whether the opening's account was opened at the settlement service
/// (`LedgerAccount`), written at create: an ended room knows whether it has gifts to
/// settle without asking, and never takes a missing configuration or a 404 for "settled"
/// when it did open one.
pub(super) const LEDGER_KEY: &str = "object/ledger";

/// An opening's account at the settlement service.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LedgerAccount {
    pub epoch: u64,
    /// Opened (gifts were configured when the room opened).
    pub opened: bool,
}

impl LedgerAccount {
    pub(super) fn to_record(self) -> String {
        format!(
            "{} {}",
            self.epoch,
            if self.opened { "opened" } else { "off" }
        )
    }

    pub(super) fn from_record(bytes: &[u8]) -> Option<LedgerAccount> {
        let (epoch, state) = std::str::from_utf8(bytes).ok()?.split_once(' ')?;
        Some(LedgerAccount {
            epoch: epoch.parse().ok()?,
            opened: match state {
                "opened" => true,
                "off" => false,
                _ => return None,
            },
        })
    }
}

/// What completing an end did, for the answer to `/end`.
pub(crate) struct EndCompleted {
    /// The settlement service's summary of the room (`{"status":"pending"}` when it did
    /// not answer; null without gifts configured).
    pub settlement: serde_json::Value,
    /// Whether the tenant's directory lists the room as archived.
    pub archived: bool,
}

impl RoomObject {
    /// Whether the current opening ended and its end was completed.
    pub(super) fn end_finished(&self) -> bool {
        let memory = self.memory.borrow();
        let epoch = memory.room.as_ref().map(Room::epoch);
        epoch.is_some() && memory.end_finished == epoch
    }

    /// The current opening's epoch, if it ended.
    fn ended_epoch(&self) -> Option<u64> {
        let memory = self.memory.borrow();
        let room = memory.room.as_ref()?;
        (room.status() == ovation_room::RoomStatus::Ended).then(|| room.epoch())
    }

    /// Settles the ended opening's gifts to its host: the summary, and whether it is
    /// settled. An opening whose account was never opened (gifts were off when it
    /// opened) holds nothing to settle; one that was opened is settled only on the
    /// service's word, never for want of a configuration or on a 404.
    pub(super) async fn settle_ended(&self) -> (serde_json::Value, bool) {
        let pending = |detail: String| {
            log_json(json!({"level":"error","event":"settle_failed","detail": detail}));
            (json!({ "status": "pending" }), false)
        };
        let Some(ledger_room) = self.ledger_room() else {
            return (serde_json::Value::Null, true);
        };
        // `None`: a room created before the account's state was stored.
        let opened = {
            let memory = self.memory.borrow();
            let epoch = memory.room.as_ref().map(Room::epoch);
            memory
                .ledger
                .filter(|ledger| Some(ledger.epoch) == epoch)
                .map(|ledger| ledger.opened)
        };
        if opened == Some(false) {
            return (serde_json::Value::Null, true);
        }
        if self.settlement().is_none() {
            return match opened {
                Some(true) => {
                    pending("the room's gifts wait: no settlement service is configured".into())
                }
                _ => (serde_json::Value::Null, true),
            };
        }
        let path = format!("/v1/rooms/{ledger_room}/settle");
        match self.settlement_call(&path, "{}".into()).await {
            Ok((200, summary)) => (
                serde_json::from_slice(&summary).unwrap_or(serde_json::Value::Null),
                true,
            ),
            Ok((404, body)) if opened.is_none() && is_room_not_found(&body) => {
                (json!({ "status": "never_opened" }), true)
            }
            other => pending(format!("{other:?}")),
        }
    }

    /// Settles and archives the ended room (nothing for a live one).
    pub(crate) async fn finish_end(&self) -> EndCompleted {
        let mut completed = EndCompleted {
            settlement: serde_json::Value::Null,
            archived: false,
        };
        let Some(epoch) = self.ended_epoch() else {
            return completed;
        };
        let (settlement, settled) = self.settle_ended().await;
        completed.settlement = settlement;
        // Opened again meanwhile: the directory's entry is the new opening's now.
        if self.ended_epoch() != Some(epoch) {
            return completed;
        }
        let (room_id, replay, tenant, ended_ms) = {
            let memory = self.memory.borrow();
            let Some(room) = memory.room.as_ref() else {
                return completed;
            };
            // When the opening ended; else when it began (never later than the end: a
            // live entry listed after it is a newer opening's, kept).
            let ended_ms = memory.recorder.as_ref().and_then(|r| r.ended_ms());
            (
                room.info().room_id.clone(),
                Self::replay_window_json(&memory),
                memory.tenant.clone(),
                ended_ms.unwrap_or_else(|| room.created_ms()),
            )
        };
        match self.archive(&tenant, &room_id, replay, ended_ms).await {
            Ok(()) => completed.archived = true,
            Err(cause) => {
                log_json(json!({"level":"error","event":"archive_failed","detail": cause}))
            }
        }
        if settled && completed.archived && self.ended_epoch() == Some(epoch) {
            let stored = self
                .state
                .storage()
                .put_raw(
                    END_FINISHED_KEY,
                    Uint8Array::from(epoch.to_string().as_bytes()),
                )
                .await;
            if stored.is_ok() && self.ended_epoch() == Some(epoch) {
                self.memory.borrow_mut().end_finished = Some(epoch);
            }
        }
        completed
    }

    /// `finish_end` if the room ended, its end is not complete, and its last try is
    /// `ROOM_END_RETRY_INTERVAL_MS` old (a settlement service that is down is not
    /// called once per request).
    pub(crate) async fn finish_end_if_due(&self) {
        if self.ended_epoch().is_none() || self.end_finished() {
            return;
        }
        let now = now_ms();
        {
            let mut memory = self.memory.borrow_mut();
            if now < memory.end_retry_at_ms {
                return;
            }
            memory.end_retry_at_ms = now.saturating_add(ROOM_END_RETRY_INTERVAL_MS);
        }
        self.finish_end().await;
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
        ended_ms: u64,
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
                json!({ "room": room_id, "replay": replay, "ended_ms": ended_ms })
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

/// Whether a settlement service's answer is its own `room_not_found` (not any 404 on the
/// way, such as a wrong URL prefix).
fn is_room_not_found(body: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(body)
        .is_ok_and(|answer| answer["code"] == "room_not_found")
}
