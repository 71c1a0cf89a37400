//! What follows a room's end, however it ended (the admin API's `/end`, a host's
//! `end_room` over its socket or through `/commands`): its gifts settled by the
//! settlement service and its directory entry archived with its replay window.
//!
//! Both steps are idempotent, so an end whose settlement or archive failed is completed
//! by the next attempt: `POST /end` again (answered 200 on an ended room), or, until
//! both succeed for this opening, the room's own retry on its next request, socket event
//! or alarm (`ROOM_END_RETRY_INTERVAL_MS` after a try, doubling after each failed one up
//! to `ROOM_END_RETRY_INTERVAL_MS_MAX`; the alarm is kept armed for it from the pump that
//! stored the end, so a process killed mid-end completes it after its restart with
//! nothing else to wake the room). The room is not opened again before its last opening
//! is settled.

use super::*;
use ovation_proto::limits::{room_end_retry_after_ms, ROOM_END_RETRY_INTERVAL_MS};

/// Storage key of the opening's own record (`OpeningRecord`). Under
/// `ovation_room::HOST_KEY_PREFIX`: not one of the room core's records.
pub(super) const OPENING_KEY: &str = "object/opening";

/// What the room object keeps of an opening beside the room core's records: written at
/// create and when its end is complete.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct OpeningRecord {
    pub epoch: u64,
    /// Whether its account was opened at the settlement service (gifts were configured
    /// when it opened): an ended room knows whether it has gifts to settle, and never
    /// takes a missing configuration or a 404 for "settled" when it did open one.
    /// `None` for a room created before this was stored.
    pub ledger_opened: Option<bool>,
    /// Its end is complete: gifts settled, room archived.
    pub end_finished: bool,
    /// Tries of its end that failed in a row, and when the next is due: kept across the
    /// object's evictions, so a lasting failure is tried less and less often
    /// (`room_end_retry_after_ms`), not from 10 s again at each wake.
    #[serde(default)]
    pub end_tries_failed: u32,
    #[serde(default)]
    pub end_retry_at_ms: u64,
}

impl OpeningRecord {
    pub(super) fn from_bytes(bytes: &[u8]) -> Option<OpeningRecord> {
        serde_json::from_slice(bytes).ok()
    }
}

/// The settlement of an ended opening.
pub(crate) struct Settled {
    /// The settlement service's summary of the room (`{"status":"pending"}` when it did
    /// not answer; null without gifts).
    pub summary: serde_json::Value,
    /// Whether its gifts are settled (or it had none to settle).
    pub done: bool,
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
    /// The record of the current opening, if one was stored for it.
    fn opening_record(&self) -> Option<OpeningRecord> {
        let memory = self.memory.borrow();
        let epoch = memory.room.as_ref().map(Room::epoch);
        memory.opening.filter(|record| Some(record.epoch) == epoch)
    }

    /// Stores the current opening's record (and keeps it in memory once stored).
    pub(super) async fn store_opening(&self, record: OpeningRecord) -> Result<()> {
        let bytes = serde_json::to_vec(&record).map_err(|e| Error::RustError(e.to_string()))?;
        self.state
            .storage()
            .put_raw(OPENING_KEY, Uint8Array::from(&bytes[..]))
            .await?;
        self.memory.borrow_mut().opening = Some(record);
        Ok(())
    }

    /// Whether the current opening ended and its end was completed.
    pub(super) fn end_finished(&self) -> bool {
        self.opening_record()
            .is_some_and(|record| record.end_finished)
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
    pub(super) async fn settle_ended(&self) -> Settled {
        // Gifts sent before the end are charged, and their answers in, before the room is
        // settled: a charge reaching a settled ledger room is refused. Those a woken room
        // restored wait in its output, those of a shard's batch in `charges_due`, and
        // some may be in flight from another event (each bounded by its deadline).
        if let Err(e) = self.pump_and_charge().await {
            log_json(json!({"level":"error","event":"settle_failed","detail": e.to_string()}));
        }
        let limit_ms = u64::from(ovation_proto::limits::SETTLEMENT_CALL_TIMEOUT_MS) + 1_000;
        let started_ms = now_ms();
        while self.charges_pending() && now_ms().saturating_sub(started_ms) < limit_ms {
            Delay::from(CHARGES_POLL).await;
        }
        let pending = |detail: String| {
            log_json(json!({"level":"error","event":"settle_failed","detail": detail}));
            Settled {
                summary: json!({ "status": "pending" }),
                done: false,
            }
        };
        // Charges still due (not started: the room ran out of time for them) stay due;
        // settled now, their gifts would be refused by the settled ledger room.
        if !self.memory.borrow().charges_due.is_empty() {
            return pending("charges still due before the settlement".into());
        }
        let nothing = || Settled {
            summary: serde_json::Value::Null,
            done: true,
        };
        let Some(ledger_room) = self.ledger_room() else {
            return nothing();
        };
        // `None`: a room created before this was stored.
        let opened = self
            .opening_record()
            .and_then(|record| record.ledger_opened);
        if opened == Some(false) {
            // Opened while gifts were off: nothing to settle, and the answer says why.
            return Settled {
                summary: json!({ "status": "never_opened" }),
                done: true,
            };
        }
        if self.settlement().is_none() {
            return match opened {
                Some(true) => {
                    pending("the room's gifts wait: no settlement service is configured".into())
                }
                _ => nothing(),
            };
        }
        let path = format!("/v1/rooms/{ledger_room}/settle");
        match self.settlement_call(&path, "{}".into()).await {
            Ok((200, summary)) => Settled {
                summary: serde_json::from_slice(&summary).unwrap_or(serde_json::Value::Null),
                done: true,
            },
            Ok((404, body)) if opened.is_none() && is_room_not_found(&body) => Settled {
                summary: json!({ "status": "never_opened" }),
                done: true,
            },
            other => pending(format!("{other:?}")),
        }
    }

    /// Settles and archives the ended room (nothing for a live one). The room's own
    /// retries (`finish_end_if_due`) wait for a try under way, and come
    /// `room_end_retry_after_ms` after their last one.
    pub(crate) async fn finish_end(&self) -> EndCompleted {
        let _trying = EndTry::start(&self.memory);
        self.finish_end_once().await
    }

    async fn finish_end_once(&self) -> EndCompleted {
        let mut completed = EndCompleted {
            settlement: serde_json::Value::Null,
            archived: false,
        };
        let Some(epoch) = self.ended_epoch() else {
            return completed;
        };
        let settled = self.settle_ended().await;
        completed.settlement = settled.summary;
        // Opened again meanwhile, or being opened: the directory's entry is (or is about
        // to be) the new opening's, which settles the last opening itself.
        if self.ended_epoch() != Some(epoch) || self.memory.borrow().creating {
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
        let creating = self.memory.borrow().creating;
        if settled.done && completed.archived && self.ended_epoch() == Some(epoch) && !creating {
            let record = OpeningRecord {
                epoch,
                ledger_opened: self.opening_record().and_then(|r| r.ledger_opened),
                end_finished: true,
                end_tries_failed: 0,
                end_retry_at_ms: 0,
            };
            if let Err(e) = self.store_opening(record).await {
                log_json(json!({"level":"error","event":"end_finished_unstored",
                                "detail": e.to_string()}));
            }
        }
        completed
    }

    /// `finish_end` if the room ended, its end is not complete, and its last try is
    /// `ROOM_END_RETRY_INTERVAL_MS` old (a settlement service that is down is not
    /// called once per request).
    pub(crate) async fn finish_end_if_due(&self) {
        // Not while a create opens the room again: it settles the last opening itself,
        // and archiving that opening's entry now would archive the one the new opening
        // reuses.
        if self.ended_epoch().is_none() || self.end_finished() || self.memory.borrow().creating {
            return;
        }
        let now = now_ms();
        {
            let mut memory = self.memory.borrow_mut();
            if now < memory.end_retry_at_ms || memory.end_try_running > 0 {
                return;
            }
            memory.end_retry_at_ms = now.saturating_add(ROOM_END_RETRY_INTERVAL_MS);
        }
        let epoch = self.ended_epoch();
        self.finish_end().await;
        // Only the room's own tries count toward its backoff (an operator's `POST /end`
        // meanwhile does not push it further), and only for the opening that is still
        // the room's and ended: a create during the try opened a new one, whose retries
        // start from none, or is under way (the try did nothing).
        let same = self.ended_epoch() == epoch && !self.memory.borrow().creating;
        if same {
            self.count_own_try().await;
        }
    }

    /// After one of the room's own tries: a try that failed waits longer than the last
    /// (`room_end_retry_after_ms`), and the count is stored with the opening.
    async fn count_own_try(&self) {
        let finished = self.end_finished();
        let (tries_failed, retry_at_ms) = {
            let mut memory = self.memory.borrow_mut();
            memory.end_tries_failed = if finished {
                0
            } else {
                memory.end_tries_failed.saturating_add(1)
            };
            let wait_ms = room_end_retry_after_ms(memory.end_tries_failed);
            memory.end_retry_at_ms = now_ms().saturating_add(wait_ms);
            (memory.end_tries_failed, memory.end_retry_at_ms)
        };
        if let Some(record) = self.opening_record().filter(|_| !finished) {
            let record = OpeningRecord {
                end_tries_failed: tries_failed,
                end_retry_at_ms: retry_at_ms,
                ..record
            };
            if let Err(e) = self.store_opening(record).await {
                log_json(json!({"level":"error","event":"end_retry_unstored",
                                "detail": e.to_string()}));
            }
        }
    }

    /// Keeps an alarm for the next try of an end not complete: armed for when it is due
    /// (`ROOM_END_RETRY_INTERVAL_MS` after the first try, longer after each that failed),
    /// after the end's records are stored and before any frame tells of it, so an end
    /// whose first try was cut short (the process killed after the host's `end_room`, the
    /// settlement service or the directory down) is completed with no request or socket
    /// event to wake the room: none comes to a room that ended and closed its sockets.
    pub(crate) async fn arm_end_retry(&self) -> Result<()> {
        match self.end_retry_at_ms(now_ms()) {
            Some(at) => driver::arm_alarm_by(self, Some(at)).await,
            None => Ok(()),
        }
    }

    /// When the room retries its end by itself, if it ended and its end is not complete
    /// (none while a create is under way: the create settles the last opening itself).
    pub(crate) fn end_retry_at_ms(&self, now: u64) -> Option<u64> {
        if self.ended_epoch().is_none() || self.end_finished() || self.memory.borrow().creating {
            return None;
        }
        // When the try under way (or the last) allows the next; a try starting now (the
        // end just stored) is retried an interval later.
        let retry_at_ms = self.memory.borrow().end_retry_at_ms;
        Some(if retry_at_ms > now {
            retry_at_ms
        } else {
            now.saturating_add(ROOM_END_RETRY_INTERVAL_MS)
        })
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
        let stub = crate::directory_stub(&self.env, tenant).map_err(|e| e.message)?;
        let body = json!({ "room": room_id, "replay": replay, "ended_ms": ended_ms });
        let response =
            crate::call_with(&stub, Method::Post, "/archive", Headers::new(), Some(body))
                .await
                .map_err(|e| e.message)?;
        match response.status_code() {
            200 => Ok(()),
            status => Err(format!("the directory answered {status}")),
        }
    }
}

/// A try of an end under way (`Memory::end_try_running`), counted down however it stops
/// (a future dropped midway included).
struct EndTry<'a>(&'a RefCell<Memory>);

impl<'a> EndTry<'a> {
    fn start(memory: &'a RefCell<Memory>) -> EndTry<'a> {
        memory.borrow_mut().end_try_running += 1;
        EndTry(memory)
    }
}

impl Drop for EndTry<'_> {
    fn drop(&mut self) {
        let mut memory = self.0.borrow_mut();
        memory.end_try_running = memory.end_try_running.saturating_sub(1);
    }
}

/// Whether a settlement service's answer is its own `room_not_found` (not any 404 on the
/// way, such as a wrong URL prefix).
fn is_room_not_found(body: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(body)
        .is_ok_and(|answer| answer["code"] == "room_not_found")
}
