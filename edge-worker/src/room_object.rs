//! The Room Durable Object: a thin host around `ovation_room::Room`.
//!
//! Host loop: feed an input with `now_ms`, drain outputs (storage first, then frames),
//! flush ticks with a timer while output is pending, and arm an alarm for the room's
//! slower deadlines (lifetimes, stale sweep, online refresh). Sockets are hibernatable:
//! each carries an attachment naming its connection, so a woken object rebuilds the room
//! from storage and re-registers its sockets.

use crate::contract::{Attachment, IdentityHeader};
use crate::driver::{self, Driven, Timers};
use crate::http::{error, json, ApiError};
use crate::platform::{log_json, now_ms, random_u53};
use ovation_proto::limits::{PULL_INTERVAL_MS, RESTORE_PAGE_KEYS_MAX};
use ovation_proto::{
    ClientFrame, CloseCode, ErrorCode, Hello, PullAction, PullEvents, PullState,
    PART_VERSION_HEADER, SUBPROTOCOL,
};
use ovation_room::{
    charge_outcome, gift_request_body, ledger_room_account, ledger_user_account, AdminCommand,
    AdminError, AdminReply, ChargeOutcome, ChargeRequest, ConnectionId, Identity, Output, PartRead,
    Room, RoomInfo, RoomLoader, StaffCommand, StorageOp, ANSWER_KEYS_END, ANSWER_KEYS_START,
    SETTLEMENT_UNAVAILABLE_MESSAGE,
};
use replay::*;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use wasm_bindgen::prelude::*;
use worker::js_sys::{Object, Reflect, Uint8Array};
use worker::*;

mod ending;
mod replay;
mod routes;
mod settlement;
mod shards;

/// Admin commands from the router to the room object (internal, JSON).
#[derive(Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum AdminRequest {
    Broadcast {
        text: String,
    },
    Direct {
        user: String,
        payload: String,
    },
    SetPart {
        name: String,
        value: String,
    },
    /// Grow a big room to this many shards.
    SetShards {
        shards: u16,
    },
    /// Polls, quizzes, Q&A, products, moderation (checked by the router).
    Staff {
        action: StaffCommand,
    },
}

#[derive(Default)]
struct Memory {
    loaded: bool,
    /// The tenant owning this room: stored at create (`TENANT_KEY`), else learnt from the
    /// router's identity header, a socket's attachment or a shard's batch. Empty until
    /// then: no gift is charged and no shard is named meanwhile.
    tenant: String,
    /// Whether `TENANT_KEY` holds the tenant (a room created before it was stored gets it
    /// the first time the tenant is learnt).
    tenant_stored: bool,
    room: Option<Room>,
    sockets: HashMap<ConnectionId, WebSocket>,
    timers: Timers,
    /// Big rooms: batches for each shard, in order, bounded; one request in flight per
    /// shard.
    shard_queues: ovation_room::ShardOutbox,
    shards_sending: BTreeSet<u16>,
    /// The room's recording (replay), saved under `REPLAY_RECORDER_KEY` when it changes.
    recorder: Option<ovation_replay::Recorder>,
    /// The recorder's revision last saved (`None`: never saved by this instance).
    recorder_saved: Option<u64>,
    /// Sealed chunks whose write failed, oldest first: retried after every pump, at most
    /// `REPLAY_UNWRITTEN_CHUNKS_MAX` (then the oldest is given up, and reported missing).
    replay_unwritten: VecDeque<ovation_replay::Sealed>,
    /// Window answers reading chunks now, and whose (`ovation_replay::WindowReads`).
    replay_reads: ovation_replay::WindowReads,
    /// Test hook (`OVATION_FAULT_REPLAY_WRITES_FAILING`): chunk writes still to fail.
    replay_write_faults_left: Option<u64>,
    /// Test hook (`OVATION_FAULT_REPLAY_SAVES_FAILING_AFTER`): recorder saves still to
    /// succeed before every later one fails.
    replay_saves_before_fault: Option<u64>,
    /// The room object's own record of the opening (`ending::OPENING_KEY`): whether its
    /// ledger account was opened, whether its end is complete.
    opening: Option<ending::OpeningRecord>,
    /// When the room may next try to complete an unfinished end on its own (not asked by
    /// `POST /end`): `room_end_retry_after_ms` after its last try (stored with the
    /// opening).
    end_retry_at_ms: u64,
    /// Tries of the end under way (`finish_end`): the room's own retry waits for them.
    end_try_running: u32,
    /// Tries of the end that failed in a row (stored with the opening): each waits longer.
    end_tries_failed: u32,
    /// A create is under way (between its check that the room is not live and the new
    /// room in memory, across the settlement call that opens its ledger account).
    creating: bool,
    /// Charges the room asked for that no event has started yet (a shard's batch is
    /// answered without waiting for its gifts' charges; the alarm starts them), oldest
    /// first. Added only once the pump's writes (the pending gifts) are durable.
    charges_due: VecDeque<DueCharge>,
    /// Charges started and not yet answered (an end waits for them before it settles:
    /// a charge reaching a settled ledger room is refused).
    charges_in_flight: usize,
}

/// How often a loop waiting on charges looks again (for charges fallen due, a free
/// share of connections, or a tick): the room's tick.
const CHARGES_POLL: std::time::Duration =
    std::time::Duration::from_millis(ovation_proto::limits::TICK_MS);

/// Charges started by one event, answered in any order.
type ChargesInFlight<'a> = futures_util::stream::FuturesUnordered<
    std::pin::Pin<Box<dyn std::future::Future<Output = ()> + 'a>>,
>;

/// A charge taken from `charges_due` and counted in flight: however its future ends
/// (answered, or dropped unanswered with the event that ran it), it leaves the count, and
/// a charge never answered goes back to be run again (its pending gift is stored, and the
/// ledger answers a repeated gift id with the first attempt's outcome).
struct ChargeStarted<'a> {
    memory: &'a RefCell<Memory>,
    due: Option<DueCharge>,
}

impl Drop for ChargeStarted<'_> {
    fn drop(&mut self) {
        let mut memory = self.memory.borrow_mut();
        memory.charges_in_flight -= 1;
        if let Some(due) = self.due.take() {
            // It may have reached the ledger: its run again is answered `replayed`,
            // which must announce it, as for a charge recovered after a crash.
            if let Some(room) = memory.room.as_mut().filter(|r| r.epoch() == due.epoch) {
                room.charge_unanswered(due.charge.request);
            }
            memory.charges_due.push_front(due);
        }
    }
}

/// A charge and the opening it belongs to (read when the room asked for it: the room may
/// end and open again, a new epoch and ledger account, while it waits or is in flight).
struct DueCharge {
    charge: ChargeRequest,
    epoch: u64,
    ledger_room: String,
    tenant: String,
}

impl Memory {
    /// Shard batches delivered or given up (a failed send, a failed storage write, the
    /// queue's bound): the room hears each, or would count them on their way for good.
    pub(crate) fn shard_batches_done(&mut self, shards: impl IntoIterator<Item = u16>) {
        let now = now_ms();
        if let Some(room) = self.room.as_mut() {
            for shard in shards {
                room.shard_batch_done(shard, now);
            }
        }
    }
}

/// Clears `Memory::creating` however a create ends (answered, refused or failed).
struct Creating<'a>(&'a RefCell<Memory>);

impl Drop for Creating<'_> {
    fn drop(&mut self) {
        self.0.borrow_mut().creating = false;
    }
}

/// Keys of the recording in the room's storage: never handed to `Room::restore`.
const REPLAY_KEY_PREFIX: &str = "replay/";
/// The first key after every `replay/…` key ('0' follows '/').
const REPLAY_KEYS_END: &str = "replay0";

#[durable_object]
pub struct RoomObject {
    state: State,
    env: Env,
    memory: RefCell<Memory>,
}

/// Storage key of the tenant owning the room, written when the room is created: a room
/// object woken by a shard's batch or its alarm, with no socket of its own to read it
/// from, still names its shards and charges gifts under the right tenant. Under
/// `ovation_room::HOST_KEY_PREFIX`: not one of the room core's records, which it passes
/// over.
const TENANT_KEY: &str = "object/tenant";

/// Keys one Durable Object storage `put`/`delete` call accepts.
const STORAGE_KEYS_PER_CALL_MAX: usize = 128;

impl RoomObject {
    /// Rebuilds the room from storage once per wake-up, and re-registers sockets.
    async fn ensure_loaded(&self) -> Result<()> {
        if self.memory.borrow().loaded {
            return Ok(());
        }
        // The room's records are every key but the recording's (`replay/…`, which on
        // workerd alone holds the sealed chunks too: never read at wake-up), so they are
        // listed around that range, a page at a time into the room's loader (a big
        // quiz's answers never all in memory at once), the answers last, after the
        // `quiz` record that scores them as they come; the recorder is one read of its
        // own.
        let storage = self.state.storage();
        let page_keys = crate::number_binding::<usize>(&self.env, "OVATION_RESTORE_PAGE_KEYS")
            .map_or(RESTORE_PAGE_KEYS_MAX, |keys| {
                keys.clamp(1, RESTORE_PAGE_KEYS_MAX)
            });
        let ranges = [
            (None, Some(ANSWER_KEYS_START)),
            (Some(ANSWER_KEYS_END), Some(REPLAY_KEY_PREFIX)),
            (Some(REPLAY_KEYS_END), None),
            (Some(ANSWER_KEYS_START), Some(ANSWER_KEYS_END)),
        ];
        let mut loader = RoomLoader::new();
        let mut fed = Ok(());
        let mut tenant = None;
        let mut opening = None;
        'ranges: for (start, end) in ranges {
            let mut from = start.map(str::to_owned);
            loop {
                let mut options = ListOptions::new().limit(page_keys);
                if let Some(from) = &from {
                    options = options.start(from);
                }
                if let Some(end) = end {
                    options = options.end(end);
                }
                let page = storage.list_with_options(options).await?;
                let mut listed = 0;
                let mut last = None;
                page.for_each(&mut |value, key| {
                    listed += 1;
                    let Some(key) = key.as_string() else { return };
                    last = Some(key.clone());
                    if fed.is_err() {
                        return;
                    }
                    let bytes = Uint8Array::new(&value).to_vec();
                    // Host keys, read here; the loader passes over them.
                    if key == TENANT_KEY {
                        tenant = String::from_utf8(bytes.clone()).ok();
                    } else if key == ending::OPENING_KEY {
                        opening = ending::OpeningRecord::from_bytes(&bytes);
                    }
                    fed = loader.feed(key, bytes);
                });
                if fed.is_err() {
                    break 'ranges; // the room cannot be made: no more pages read
                }
                match last {
                    // The next page starts right after this one's last key.
                    Some(last) if listed >= page_keys => from = Some(format!("{last}\u{0}")),
                    _ => break,
                }
            }
        }
        let recorder_map = storage.get_multiple(vec![REPLAY_RECORDER_KEY]).await?;
        if self.memory.borrow().loaded {
            return Ok(()); // another event loaded it while we waited
        }
        let recorder = Some(recorder_map.get(&REPLAY_RECORDER_KEY.into()))
            .filter(|value| !value.is_undefined())
            .map(|value| Uint8Array::new(&value).to_vec());
        let now = now_ms();
        let room = fed.and_then(|()| loader.finish(now)).map_err(|e| {
            log_json(json!({"level":"error","event":"restore_failed","detail": e.to_string()}));
            Error::RustError(e.to_string())
        })?;
        let mut memory = self.memory.borrow_mut();
        memory.loaded = true;
        if let Some(tenant) = tenant.filter(|tenant| !tenant.is_empty()) {
            memory.tenant = tenant;
            memory.tenant_stored = true;
        }
        memory.opening = opening;
        if let Some(opening) = opening {
            memory.end_tries_failed = opening.end_tries_failed;
            memory.end_retry_at_ms = opening.end_retry_at_ms;
        }
        if let Some(room) = room.as_ref() {
            match recorder.map(|bytes| serde_json::from_slice::<ovation_replay::Recorder>(&bytes)) {
                Some(Ok(recorder)) => {
                    memory.recorder_saved = Some(recorder.revision());
                    memory.recorder = Some(recorder);
                }
                Some(Err(e)) => log_json(
                    json!({"level":"error","event":"replay_restore_failed","detail": e.to_string()}),
                ),
                None => {} // a room from before recordings: it starts recording now
            }
            if memory.recorder.is_none() {
                // A recording that cannot be read restarts now rather than never.
                let info = room.info();
                memory.recorder = Some(ovation_replay::Recorder::new(
                    &info.room_id,
                    &info.host_user,
                    now,
                ));
            }
        }
        if let Some(mut room) = room {
            self.apply_stale_override(&mut room);
            for ws in self.state.get_websockets() {
                let Ok(Some(att)) = ws.deserialize_attachment::<Attachment>() else {
                    continue;
                };
                let role = att.role;
                if memory.tenant.is_empty() {
                    memory.tenant = att.tenant;
                }
                let identity = Identity {
                    user: att.user,
                    name: att.name,
                    role,
                };
                room.reattach(att.id, identity, att.expires_at_ms, att.hello_heard, now);
                memory.sockets.insert(att.id, ws);
            }
            let ledger_opened = memory
                .opening
                .filter(|record| record.epoch == room.epoch())
                .and_then(|record| record.ledger_opened);
            if let Err(e) = room.set_gift_catalog(self.gift_catalog(ledger_opened)) {
                log_json(json!({"level":"error","event":"bad_gift_catalog","detail": e}));
            }
            memory.room = Some(room);
        }
        Ok(())
    }

    /// `OVATION_STALE_SOCKET_MS` (tests, staging): a shorter silence before a socket is
    /// stale, so a test can watch heartbeats keep sockets alive (the room clamps it).
    fn apply_stale_override(&self, room: &mut Room) {
        let configured = crate::number_binding::<u64>(&self.env, "OVATION_STALE_SOCKET_MS");
        if let Some(ms) = configured {
            room.set_stale_socket_ms(ms);
        }
    }

    /// `OVATION_GIFT_CATALOG` (JSON sku → price), or a small default when it is unset.
    /// A catalog that does not read (a float, a negative price, not an object) is an
    /// empty one: nothing is sold at prices nobody set. None either when gifts are off
    /// (no settlement service), so the `room` part shows no prices and a gift is refused
    /// for good (`not_found`), not `unavailable` with its advice to retry; and none in an
    /// opening made while gifts were off (`ledger_opened: Some(false)`), even after a
    /// service is configured: its ledger account was never opened, and each gift was
    /// refused `room_ended` by the ledger in a live room.
    fn gift_catalog(&self, ledger_opened: Option<bool>) -> std::collections::BTreeMap<String, u64> {
        if self.settlement().is_none() || ledger_opened == Some(false) {
            return std::collections::BTreeMap::new();
        }
        let Some(configured) = crate::text_binding(&self.env, "OVATION_GIFT_CATALOG") else {
            return ovation_room::default_gift_catalog();
        };
        serde_json::from_str(&configured).unwrap_or_else(|e| {
            log_json(json!({"level":"error","event":"bad_gift_catalog",
                            "detail": format!("OVATION_GIFT_CATALOG is not a JSON object of \
                                               whole prices: {e}")}));
            std::collections::BTreeMap::new()
        })
    }

    /// `pump_leaving_charges`, then every charge due until none is due or in flight: for
    /// an end, which settles the room after its gifts' charges are answered.
    pub(crate) async fn pump_and_charge(&self) -> Result<()> {
        self.pump_leaving_charges().await?;
        self.run_due_charges().await;
        Ok(())
    }

    /// Drains the room's outputs: storage writes first (so frames leave only after the
    /// writes they depend on), then frames and closes, then log lines. The charges wait
    /// in `charges_due` for the alarm (the caller arms it): no event waits for a
    /// settlement round trip (a shard's batch, answered before its shard sends the next,
    /// held every viewer on it behind the slowest gift).
    async fn pump_leaving_charges(&self) -> Result<()> {
        // The last op per key wins (a put then a delete of one key is a delete).
        let mut writes: BTreeMap<String, Option<Vec<u8>>> = BTreeMap::new();
        let mut wire = Vec::new();
        let mut charges = Vec::new();
        {
            let mut memory = self.memory.borrow_mut();
            let Some(room) = memory.room.as_mut() else {
                return Ok(());
            };
            while let Some(output) = room.poll_output() {
                match output {
                    Output::Store(StorageOp::Put { key, value }) => {
                        writes.insert(key, Some(value));
                    }
                    Output::Store(StorageOp::Delete { key }) => {
                        writes.insert(key, None);
                    }
                    Output::Log(record) => log_json(json!({
                        "level": "warn", "event": record.event, "code": record.code,
                        "connection": record.connection, "user": record.user,
                        "detail": record.detail,
                    })),
                    Output::Charge(charge) => charges.push(charge),
                    other => wire.push(other),
                }
            }
        }
        // The opening these charges belong to, read before any await: the room may end
        // and open again (a new epoch, a new ledger account) while a charge is in flight.
        // Without a ledger account (a room from before gifts were on) nothing is charged.
        let mut due = Vec::new();
        if !charges.is_empty() {
            if let Some(ledger_room) = self.ledger_room() {
                let (epoch, tenant) = (self.epoch(), self.memory.borrow().tenant.clone());
                due.extend(charges.into_iter().map(|charge| DueCharge {
                    charge,
                    epoch,
                    ledger_room: ledger_room.clone(),
                    tenant: tenant.clone(),
                }));
            }
        }
        // An end this pump stores gets its retry alarm in the same write: armed after it,
        // a process killed in between left an ended room that nothing wakes when no
        // request or socket comes (its host unpaid, the room listed live for good).
        // (Asked only of a pump that writes: the clock is not read for the others.)
        let end_retry_ms = (!writes.is_empty())
            .then(|| self.end_retry_at_ms(now_ms()))
            .flatten();
        let end_alarm_ms = end_retry_ms.filter(|at_ms| driver::alarm_wanted(self, *at_ms));
        let storage = self.state.storage();
        let raw = storage.as_raw();
        let (puts, deletes): (Vec<_>, Vec<_>) = writes.into_iter().partition(|(_, v)| v.is_some());
        // The platform takes at most 128 keys per put or delete call. Every call is made
        // before any is awaited: writes issued with no await between them commit as one
        // (the platform's write coalescing), so a crash never keeps a pump's first
        // records without its last (a gift's announcement without its gifter's record,
        // which would announce it again after a restart).
        let stored = async {
            let calls = worker::js_sys::Array::new();
            for chunk in puts.chunks(STORAGE_KEYS_PER_CALL_MAX) {
                let object = Object::new();
                for (key, value) in chunk {
                    let value = value.as_deref().expect("partitioned");
                    Reflect::set(&object, &key.into(), &Uint8Array::from(value))?;
                }
                let call: worker::js_sys::Promise = raw.put_multiple(object.into())?;
                calls.push(&call);
            }
            for chunk in deletes.chunks(STORAGE_KEYS_PER_CALL_MAX) {
                let keys: Vec<JsValue> = chunk.iter().map(|(k, _)| k.into()).collect();
                let call: worker::js_sys::Promise = raw.delete_multiple(keys)?;
                calls.push(&call);
            }
            if let Some(at_ms) = end_alarm_ms {
                let at = worker::js_sys::Date::new(&JsValue::from_f64(at_ms as f64));
                let call: worker::js_sys::Promise = raw.set_alarm(at, Object::new())?;
                calls.push(&call);
            }
            if calls.length() > 0 {
                wasm_bindgen_futures::JsFuture::from(worker::js_sys::Promise::all(&calls)).await?;
            }
            Ok::<(), Error>(())
        }
        .await;
        if let Err(e) = stored {
            // Nothing of this pump goes out. Its shard batches are reported as given up,
            // or the room would count them on their way for good (and hold their shards).
            self.memory
                .borrow_mut()
                .shard_batches_done(wire.iter().filter_map(|output| match output {
                    Output::ToShard { shard, .. } => Some(*shard),
                    _ => None,
                }));
            return Err(e);
        }
        if let Some(at_ms) = end_alarm_ms {
            driver::alarm_set_with_writes(self, at_ms);
        }
        // Test hook: the process is killed here, the end stored and nothing after it.
        if end_retry_ms.is_some()
            && crate::text_binding(&self.env, "OVATION_FAULT_PAUSE_AFTER_END_STORED").is_some()
        {
            log_json(json!({"level":"warn","event":"fault_paused_after_end_stored"}));
            std::future::pending::<()>().await;
        }
        // Due once their pending gifts are stored: a charge asked before its record is
        // durable could be made and never recovered after a crash.
        self.memory.borrow_mut().charges_due.extend(due);
        // An end just stored keeps its retry alarm before any frame tells of it (a
        // failure to arm it loses no frame: the next pump or request arms it).
        if let Err(e) = self.arm_end_retry().await {
            log_json(json!({"level":"error","event":"end_retry_unarmed","detail": e.to_string()}));
        }
        {
            let mut memory = self.memory.borrow_mut();
            for output in wire {
                match output {
                    Output::Send { connections, frame } => {
                        crate::sockets::send_to(&memory.sockets, connections, &frame);
                    }
                    Output::Close { connection, code } => {
                        if let Some(ws) = memory.sockets.remove(&connection) {
                            let _ = ws.close(Some(code.code()), Some(code.reason()));
                        }
                    }
                    Output::ToShard { shard, frame } => {
                        let dropped = memory.shard_queues.push(shard, frame);
                        if !dropped.is_empty() {
                            // Each shard asks for the room's state at its next batch.
                            log_json(json!({"level":"warn","event":"shard_down_dropped",
                                "batches": dropped,
                                "queued_bytes": memory.shard_queues.bytes()}));
                            memory.shard_batches_done(dropped.iter().map(|(s, _)| *s));
                        }
                    }
                    Output::Store(_) | Output::Log(_) | Output::Charge(_) => {
                        unreachable!("handled above")
                    }
                }
            }
        }
        self.send_to_shards().await;
        self.record().await;
        Ok(())
    }

    /// Whether a charge is due or in flight (an end waits for none; the alarm keeps
    /// ticking while one is).
    pub(crate) fn charges_pending(&self) -> bool {
        let memory = self.memory.borrow();
        !memory.charges_due.is_empty() || memory.charges_in_flight > 0
    }

    /// Runs every charge due until none is due or in flight here (each a fetch to the
    /// settlement service, bounded by `SETTLEMENT_CALL_TIMEOUT_MS`; other events
    /// interleave meanwhile): for an end, before it settles. The answers produce more
    /// output, drained by the next pump.
    pub(crate) async fn run_due_charges(&self) {
        // Bounded: a settlement service that hangs must not hold an end (and a create
        // that settles the last opening) for a deadline per gift. What is left stays
        // due; the settlement then waits (the end is pending) and is asked again.
        let limit_ms = 2 * u64::from(ovation_proto::limits::SETTLEMENT_CALL_TIMEOUT_MS);
        let started_ms = now_ms();
        let mut in_flight = ChargesInFlight::new();
        loop {
            if now_ms().saturating_sub(started_ms) < limit_ms {
                self.start_due_charges(&mut in_flight);
            }
            if in_flight.is_empty() {
                let due = !self.memory.borrow().charges_due.is_empty();
                if !due || now_ms().saturating_sub(started_ms) >= limit_ms {
                    return;
                }
                // The object's share of connections is taken by another event's charges.
                Delay::from(CHARGES_POLL).await;
                continue;
            }
            let _ = futures_util::StreamExt::next(&mut in_flight).await;
        }
    }

    /// Starts charges due while fewer than `SETTLEMENT_CHARGES_IN_FLIGHT_MAX` are in
    /// flight in the whole object (the platform queues an object's connections past a
    /// few, and a queued call would spend its deadline waiting).
    fn start_due_charges<'a>(&'a self, in_flight: &mut ChargesInFlight<'a>) {
        let max = ovation_proto::limits::SETTLEMENT_CHARGES_IN_FLIGHT_MAX;
        loop {
            let due = {
                let mut memory = self.memory.borrow_mut();
                if memory.charges_in_flight >= max {
                    return;
                }
                let Some(due) = memory.charges_due.pop_front() else {
                    return;
                };
                memory.charges_in_flight += 1;
                due
            };
            let started = ChargeStarted {
                memory: &self.memory,
                due: Some(due),
            };
            in_flight.push(Box::pin(self.charge_one(started)));
        }
    }

    /// One charge, its answer handed to the room of the opening that asked for it.
    async fn charge_one(&self, mut started: ChargeStarted<'_>) {
        let due = started.due.as_ref().expect("started with its charge");
        let outcome = self
            .charge(&due.charge, &due.tenant, &due.ledger_room)
            .await;
        let due = started.due.take().expect("answered once");
        drop(started); // out of flight
                       // An answer for an opening that is gone is not the new one's (its requests are
                       // numbered from 1 again). The old opening was settled before the new one opened
                       // (once its charges in flight were answered, or after their deadline and a
                       // second), so its charge was refused there or made before the settlement
                       // counted it; its gifter's socket closed with the room.
        if let Some(room) = self.memory.borrow_mut().room.as_mut() {
            if room.epoch() == due.epoch {
                room.charge_result(due.charge.request, outcome, now_ms());
            }
        }
    }

    /// The alarm's charges, and those that fall due while it runs, beside its ticks: both
    /// go on until no charge is due or in flight, and neither awaits the other (both
    /// branches of one `join`). No other alarm fires while this one runs, and in a big
    /// room the ticks come from the alarm (a shard's batch is answered without running
    /// them): ticks that waited on a settlement round trip held every viewer's output
    /// behind one gift, and charges that waited for a busy room to go quiet were not
    /// made while it stayed busy.
    async fn alarm_ticks_and_charges(&self) -> Result<()> {
        let ticks_done = Flag::default();
        let ticking = async {
            let mut ticked = driver::alarm_fired(self).await;
            while ticked.is_ok() && self.charges_pending() {
                Delay::from(CHARGES_POLL).await;
                ticked = driver::catch_up(self).await;
            }
            ticks_done.set();
            ticked
        };
        let charging = async {
            let mut in_flight = ChargesInFlight::new();
            loop {
                // None started once the ticks are done (they ended as nothing was due or
                // in flight: a charge started now would run without ticks beside it);
                // those falling due then are the next alarm's.
                if !ticks_done.get() {
                    self.start_due_charges(&mut in_flight);
                }
                if in_flight.is_empty() {
                    if ticks_done.get() {
                        return;
                    }
                    // Until a tick's time to start charges that fell due, or the ticks'
                    // end: the alarm ends with them, not up to a poll later (no other
                    // alarm fires while this one runs, so a join's or a command's flush
                    // armed meanwhile would wait for it).
                    let delay = std::pin::pin!(Delay::from(CHARGES_POLL));
                    futures_util::future::select(delay, ticks_done.wait()).await;
                    continue;
                }
                // An answer, or a tick's time to start charges that fell due.
                let answer = futures_util::StreamExt::next(&mut in_flight);
                let _ = futures_util::future::select(answer, Delay::from(CHARGES_POLL)).await;
            }
        };
        let (ticked, ()) = futures_util::future::join(ticking, charging).await;
        ticked?;
        // The next alarm: the room's next deadline, or at once for charges that fell due
        // as this one ended.
        let due = !self.memory.borrow().charges_due.is_empty();
        driver::arm_alarm_by(self, due.then(now_ms)).await
    }

    /// `hello`: the upgrade said the socket's Hello (`contract::HELLO_HEADER`).
    async fn accept(&self, identity: IdentityHeader, hello: Option<Hello>) -> Result<Response> {
        let now = now_ms();
        let role = identity.role;
        let lifetime_ms = crate::platform::connection_lifetime_ms(&self.env);
        let id = {
            let memory = self.memory.borrow();
            let mut id = random_u53();
            while memory.sockets.contains_key(&id) {
                id = random_u53();
            }
            id
        };
        let result = {
            let mut memory = self.memory.borrow_mut();
            let memory = &mut *memory;
            let Some(room) = memory.room.as_mut() else {
                return error(ApiError::new(404, "room_not_found", "no such room"));
            };
            // The user's heartbeats first: at the per-user cap only a silent socket of
            // theirs gives its place.
            let held: Vec<ConnectionId> = room.connections_of(&identity.user).collect();
            for (held, at_ms) in crate::sockets::heartbeats_of(&self.state, &memory.sockets, held) {
                room.touch(held, at_ms);
            }
            room.connect(
                id,
                Identity {
                    user: identity.user.clone(),
                    name: identity.name.clone(),
                    role,
                },
                lifetime_ms,
                now,
            )
        };
        if let Err(code @ (CloseCode::Banned | CloseCode::TooManySockets | CloseCode::RoomFull)) =
            result
        {
            // Told over the socket, so the client learns why (a refused upgrade looks
            // like a network failure to a browser): banned, this user's sockets are at
            // the cap, or the room's are (as a shard tells it). The socket never reaches
            // the room.
            self.pump_leaving_charges().await?;
            let pair = WebSocketPair::new()?;
            pair.server.accept()?;
            pair.server.close(Some(code.code()), Some(code.reason()))?;
            return Response::from_websocket(pair.client);
        }
        if let Err(code) = result {
            self.pump_leaving_charges().await?;
            return error(crate::http::upgrade_refused(code));
        }
        let pair = WebSocketPair::new()?;
        self.state.accept_web_socket(&pair.server);
        let hello_heard = match self.memory.borrow_mut().room.as_mut() {
            Some(room) => {
                if let Some(hello) = hello {
                    // As if it were the socket's first frame: the Welcome is queued, and
                    // goes out at the room's next flush, like any output (the alarm armed
                    // below: a flush here would hold the 101 for its storage, its
                    // recording and, in a big room, its batches to the shards).
                    room.handle_frame(id, &ClientFrame::Hello(hello).encode(), now);
                }
                room.hello_heard(id)
            }
            None => false,
        };
        pair.server.serialize_attachment(Attachment {
            id,
            tenant: identity.tenant.clone(),
            user: identity.user,
            name: identity.name,
            role: identity.role,
            expires_at_ms: now + lifetime_ms,
            hello_heard,
        })?;
        self.memory.borrow_mut().sockets.insert(id, pair.server);
        // The pump and the alarm are `fetch`'s, after every route (one each per join).
        Response::from_websocket(pair.client)
    }

    async fn create(&self, info: RoomInfo) -> Result<Response> {
        let live = self
            .memory
            .borrow()
            .room
            .as_ref()
            .map(|r| r.status() == ovation_room::RoomStatus::Live);
        if live == Some(true) {
            return error(ApiError::new(
                409,
                "room_exists",
                "the room is already live",
            ));
        }
        // One create at a time: the settlement call below lets other requests in, and a
        // second create (a client retrying at once) opened a second ledger account, then
        // replaced the first opening, whose gifts were charged and never paid to the host.
        if std::mem::replace(&mut self.memory.borrow_mut().creating, true) {
            // 503 with a wait, not 409: an app taking 409 for "it exists" would report a
            // room the first create may still fail to open. The retry gets 409
            // `room_exists` (opened) or opens it itself.
            let opening = ApiError::new(
                503,
                "room_opening",
                "the room is being opened by another request: retry",
            );
            let mut resp = crate::http::error_retry_after(opening, 1_000)?;
            resp.headers_mut()
                .set(crate::contract::CREATE_UNDER_WAY_HEADER, "1")?;
            return Ok(resp);
        }
        let _creating = Creating(&self.memory);
        // An ended room may be opened again: a new epoch tells clients to drop old state.
        // Not before the last opening's end is complete: its gifts are settled under its
        // epoch, which the new opening's storage no longer names.
        // (Its directory entry is already the new opening's: the router listed it before
        // asking us, so the old opening is settled here, not archived.)
        if live == Some(false) && !self.end_finished() && !self.settle_ended().await.done {
            return error(ApiError::new(
                503,
                "previous_end_unfinished",
                "the room's last opening is not settled yet (the settlement service did not \
                 answer); retry",
            ));
        }
        let epoch = random_u53();
        let ledger_opened = self.settlement().is_some();
        if ledger_opened {
            let tenant = self.memory.borrow().tenant.clone();
            let ledger_room = ledger_room_account(&tenant, &info.room_id, epoch);
            let host = json!({ "host": ledger_user_account(&tenant, &info.host_user) }).to_string();
            match self
                .settlement_call(&format!("/v1/rooms/{ledger_room}/open"), host)
                .await
            {
                Ok((200, _)) => {}
                other => {
                    log_json(json!({"level":"error","event":"settlement_open_failed",
                                    "detail": format!("{other:?}")}));
                    return error(ApiError::new(
                        502,
                        "settlement_unavailable",
                        "the settlement service did not open the room's accounts",
                    ));
                }
            }
        }
        // The last opening's output first: the sockets kept across a restart of the
        // ended room were closed by `Room::reattach`, and replacing the room would drop
        // those closes (the sockets would then be taken into the new opening).
        self.pump_leaving_charges().await?;
        self.state.storage().delete_all().await?;
        self.memory.borrow_mut().tenant_stored = false;
        self.store_opening(ending::OpeningRecord {
            epoch,
            ledger_opened: Some(ledger_opened),
            end_finished: false,
            end_tries_failed: 0,
            end_retry_at_ms: 0,
        })
        .await?;
        let mut room = Room::create(info, epoch, now_ms());
        self.apply_stale_override(&mut room);
        if let Err(e) = room.set_gift_catalog(self.gift_catalog(Some(ledger_opened))) {
            log_json(json!({"level":"error","event":"bad_gift_catalog","detail": e}));
        }
        let room_id = room.info().room_id.clone();
        let recorder =
            ovation_replay::Recorder::new(&room_id, &room.info().host_user, room.created_ms());
        {
            let mut memory = self.memory.borrow_mut();
            memory.room = Some(room);
            memory.recorder = Some(recorder);
            memory.recorder_saved = None;
            // The last opening's retries of its end are not this one's.
            memory.end_tries_failed = 0;
            memory.end_retry_at_ms = 0;
        }
        let tenant = self.memory.borrow().tenant.clone();
        self.learn_tenant(&tenant).await?;
        driver::alarm_cleared(self); // the old room's alarm went with its storage
        self.pump_leaving_charges().await?;
        json(
            json!({ "room": room_id, "epoch": epoch, "status": "live" }),
            201,
        )
    }

    /// The room's tenant, as a request names it: kept, and stored once (`TENANT_KEY`).
    /// Every source names the same tenant (the one in this object's name), so the first
    /// one known is kept.
    async fn learn_tenant(&self, tenant: &str) -> Result<()> {
        if tenant.is_empty() {
            return Ok(());
        }
        let store = {
            let mut memory = self.memory.borrow_mut();
            if memory.tenant.is_empty() {
                memory.tenant = tenant.to_owned();
            }
            let store = !memory.tenant_stored && memory.room.is_some();
            memory.tenant_stored |= store;
            store.then(|| memory.tenant.clone())
        };
        if let Some(tenant) = store {
            let bytes = Uint8Array::from(tenant.as_bytes());
            self.state.storage().put_raw(TENANT_KEY, bytes).await?;
        }
        Ok(())
    }

    fn admin(&self, command: AdminCommand) -> std::result::Result<AdminReply, ApiError> {
        let mut memory = self.memory.borrow_mut();
        let room = memory
            .room
            .as_mut()
            .ok_or_else(|| ApiError::new(404, "room_not_found", "no such room"))?;
        room.admin(command, now_ms())
            .map_err(|e: AdminError| ApiError::new(e.http_status(), e.code(), &e.message()))
    }
}

impl RoomObject {}

impl driver::Host for RoomObject {
    type Core = Room;

    fn state(&self) -> &State {
        &self.state
    }

    fn with_driven<R>(&self, f: impl FnOnce(Driven<'_, Room>) -> R) -> R {
        let mut memory = self.memory.borrow_mut();
        let memory = &mut *memory;
        f(Driven {
            core: memory.room.as_mut(),
            sockets: &mut memory.sockets,
            timers: &mut memory.timers,
        })
    }

    /// The pump of the ticks and socket events: the charges are left to the alarm, which
    /// runs them beside its ticks (`alarm_ticks_and_charges`), and it is armed for them.
    async fn pump(&self) -> Result<()> {
        self.pump_leaving_charges().await?;
        let charges_due = !self.memory.borrow().charges_due.is_empty();
        if charges_due {
            driver::arm_alarm_by(self, Some(now_ms())).await?;
        }
        Ok(())
    }
}

impl DurableObject for RoomObject {
    fn new(state: State, env: Env) -> Self {
        // Heartbeats are answered by the runtime without waking the object.
        if let Ok(pair) = WebSocketRequestResponsePair::new(
            ovation_proto::limits::HEARTBEAT_TEXT,
            ovation_proto::limits::HEARTBEAT_REPLY_TEXT,
        ) {
            state.set_websocket_auto_response(&pair);
        }
        RoomObject {
            state,
            env,
            memory: RefCell::new(Memory::default()),
        }
    }

    async fn fetch(&self, req: Request) -> Result<Response> {
        let path = req.path();
        // A refusal too: the request may have woken the room, whose restored charges
        // wait in its output for a pump and an alarm.
        let mut resp = match self.route(req).await {
            Ok(resp) => resp,
            Err(e) => error(e)?,
        };
        if resp.status_code() == 404 && self.memory.borrow().room.is_none() {
            // No room here at all: the Worker's limiters keep the new room it took.
            let _ = resp
                .headers_mut()
                .set(crate::contract::ROOM_MISSING_HEADER, "1");
        }
        if resp.status_code() == 429 {
            // Refused for a rate (a read flood, an upgrade flood): nothing changed, so
            // the refusal leaves at once and costs no tick.
            return Ok(resp);
        }
        // What the request changed is stored before it is answered; output from admin
        // commands leaves with the next tick, run by the alarm (or by whichever event is
        // already flushing): an answer held through the tick loop waited for the room to
        // go quiet, seconds in a busy room (a pull read, an admin call, a viewer's shard,
        // and a shard's batch, after whose answer alone its shard sends the next).
        // Charges left for the alarm: no answer here waits for the settlement service (a
        // shard's batch, a join); only `/end` runs them first, before it settles.
        self.pump_leaving_charges().await?;
        if path != "/end" && path != "/create" {
            // A staff command (the API's, or a host's relayed by a shard) may have ended
            // the room; `/end` completes its end itself, and a create settles the last
            // opening itself (or is under way: see `finish_end_if_due`).
            self.finish_end_if_due().await;
        }
        let charges_due = !self.memory.borrow().charges_due.is_empty();
        driver::arm_alarm_by(self, charges_due.then(now_ms)).await?;
        Ok(resp)
    }

    async fn websocket_message(
        &self,
        ws: WebSocket,
        message: WebSocketIncomingMessage,
    ) -> Result<()> {
        self.ensure_loaded().await?;
        let Some(attachment) = crate::sockets::attachment_of(&ws) else {
            return Ok(());
        };
        let id = attachment.id;
        {
            let mut memory = self.memory.borrow_mut();
            let Some(room) = memory.room.as_mut() else {
                return Ok(());
            };
            match message {
                WebSocketIncomingMessage::Binary(bytes) => room.handle_frame(id, &bytes, now_ms()),
                WebSocketIncomingMessage::String(text) => {
                    if let Some(reply) = room.handle_text(id, &text, now_ms()) {
                        let _ = ws.send_with_str(reply);
                    }
                }
            }
            crate::sockets::record_hello(&ws, attachment, room.hello_heard(id));
        }
        driver::Host::pump(self).await?;
        // A host's `end_room` over its socket.
        self.finish_end_if_due().await;
        driver::run_ticks(self).await
    }

    async fn websocket_close(
        &self,
        ws: WebSocket,
        code: usize,
        reason: String,
        _was_clean: bool,
    ) -> Result<()> {
        self.ensure_loaded().await?;
        driver::forget_socket(self, &ws);
        // Hibernation API: complete the close handshake ourselves.
        let code = crate::sockets::close_reply_code(code);
        let _ = ws.close(Some(code), Some(reason));
        driver::Host::pump(self).await?;
        driver::run_ticks(self).await
    }

    async fn websocket_error(&self, ws: WebSocket, _error: Error) -> Result<()> {
        self.ensure_loaded().await?;
        driver::forget_socket(self, &ws);
        driver::Host::pump(self).await?;
        driver::run_ticks(self).await
    }

    async fn alarm(&self) -> Result<Response> {
        self.ensure_loaded().await?;
        self.alarm_ticks_and_charges().await?;
        // The retry of an end not complete (see `arm_end_retry`), and the next one's alarm.
        self.finish_end_if_due().await;
        self.arm_end_retry().await?;
        Response::empty()
    }
}

/// A flag one branch of a `join` sets and the other may wait for (one task: no locks).
#[derive(Default)]
struct Flag {
    set: std::cell::Cell<bool>,
    waker: std::cell::Cell<Option<std::task::Waker>>,
}

impl Flag {
    fn set(&self) {
        self.set.set(true);
        if let Some(waker) = self.waker.take() {
            waker.wake();
        }
    }

    fn get(&self) -> bool {
        self.set.get()
    }

    /// Ready once the flag is set.
    fn wait(&self) -> impl std::future::Future<Output = ()> + Unpin + '_ {
        std::future::poll_fn(move |cx| {
            if self.set.get() {
                std::task::Poll::Ready(())
            } else {
                self.waker.set(Some(cx.waker().clone()));
                std::task::Poll::Pending
            }
        })
    }
}
