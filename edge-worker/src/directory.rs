//! Per-tenant directory of rooms (one object per tenant): live rooms under `room/`, and
//! ended ones under `archived/`, with their replay window (at most `DIRECTORY_ROOMS_MAX`,
//! the oldest ended dropped first). A create lists its room before opening it; the
//! entry is checked with the room later (`check/`, the alarm), and goes if the room never
//! opened (`ovation_room::AdmittedEntry`).

use crate::http::{error, json, object_json_body, ApiError};
use crate::platform::{log_json, now_ms};
use ovation_proto::limits::{
    directory_entry_check_again_after_ms, DIRECTORY_ENTRY_CHECKS_PER_ALARM_MAX,
    DIRECTORY_ENTRY_CHECK_AFTER_MS,
};
use ovation_room::{AdmittedEntry, OpeningSeen};
use serde::{Deserialize, Serialize};
use worker::*;

#[derive(Serialize, Deserialize, Clone)]
struct Entry {
    room: String,
    title: String,
    host: String,
    created_ms: u64,
    /// `archived` once the room ended (absent while live).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    status: Option<String>,
    /// An archived room's recording: `{from_ms, to_ms, truncated_at_ms}` (server time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    replay: Option<serde_json::Value>,
    /// The create that admitted (or last claimed) a live entry: a failed create's
    /// `/remove` names it, and removes the entry only if it is still its own. Never
    /// listed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    admitted_by: Option<u64>,
}

/// A create's `/add`.
#[derive(Deserialize)]
struct Add {
    #[serde(flatten)]
    entry: Entry,
    /// Made this create's when it exists (a create that opened the room): a failed
    /// create's removal landing later leaves it, and so does a late archive of the
    /// room's last opening (the entry is as new as this opening).
    #[serde(default)]
    claim: bool,
}

/// A live entry a create admitted, to be checked with its room (`check/{room}`) once the
/// create is surely over: an entry whose create died with its request (a killed
/// process, a client gone) would stay listed for good otherwise.
#[derive(Serialize, Deserialize, Clone, PartialEq, Eq)]
struct Check {
    room: String,
    /// The room object's tenant (the directory's own).
    tenant: String,
    /// The entry's `admitted_by`: a later create's entry is not this check's.
    admitted_by: Option<u64>,
    at_ms: u64,
    /// Times the room did not say yet (`AdmittedEntry::AskAgain`).
    #[serde(default)]
    asks: u32,
}

const LIVE_PREFIX: &str = "room/";
const ARCHIVED_PREFIX: &str = "archived/";
const CHECK_PREFIX: &str = "check/";

#[durable_object]
pub struct DirectoryObject {
    state: State,
    env: Env,
}

impl DirectoryObject {
    /// `DIRECTORY_ENTRY_CHECK_AFTER_MS`, or shorter in tests
    /// (`OVATION_TEST_DIRECTORY_CHECK_AFTER_MS`, which also stands for the waits between
    /// asks).
    fn check_after_ms(&self, asks: u32) -> u64 {
        let test_ms =
            crate::number_binding::<u64>(&self.env, "OVATION_TEST_DIRECTORY_CHECK_AFTER_MS");
        match (test_ms, asks) {
            (Some(ms), _) => ms.min(DIRECTORY_ENTRY_CHECK_AFTER_MS),
            (None, 0) => DIRECTORY_ENTRY_CHECK_AFTER_MS,
            (None, asks) => directory_entry_check_again_after_ms(asks),
        }
    }

    /// Sets the alarm for `at_ms` unless one is set as early.
    async fn alarm_by(&self, at_ms: u64) -> Result<()> {
        let storage = self.state.storage();
        let set = storage.get_alarm().await?;
        if set.is_some_and(|set| set <= at_ms as i64) {
            return Ok(());
        }
        let offset_ms = at_ms.saturating_sub(now_ms()).max(1);
        storage
            .set_alarm(std::time::Duration::from_millis(offset_ms))
            .await
    }

    /// Stores a check of `entry` (`Check`), due once a create admitted now is surely over,
    /// and the alarm for it. `req`: the create's `/add`, whose identity names the tenant.
    async fn check_later(&self, req: &Request, check_key: &str, entry: &Entry) -> Result<()> {
        let tenant = req
            .headers()
            .get(crate::contract::IDENTITY_HEADER)
            .ok()
            .flatten()
            .and_then(|h| serde_json::from_str::<crate::contract::IdentityHeader>(&h).ok())
            .map(|identity| identity.tenant)
            .ok_or_else(|| Error::RustError("an add without its tenant".into()))?;
        let check = Check {
            room: entry.room.clone(),
            tenant,
            admitted_by: entry.admitted_by,
            at_ms: now_ms().saturating_add(self.check_after_ms(0)),
            asks: 0,
        };
        self.state.storage().put(check_key, &check).await?;
        self.alarm_by(check.at_ms).await
    }

    /// What the room object says of its opening; `None` when it does not answer.
    async fn opening_of(&self, check: &Check) -> Option<OpeningSeen> {
        let room = ovation_proto::RoomId::parse(&check.room).ok()?;
        let stub = crate::room_stub(&self.env, &check.tenant, &room).ok()?;
        let headers = Headers::new();
        let identity = crate::contract::IdentityHeader {
            user: "directory".into(),
            name: String::new(),
            role: ovation_proto::Role::Admin,
            tenant: check.tenant.clone(),
        };
        let identity = serde_json::to_string(&identity).ok()?;
        headers
            .set(crate::contract::IDENTITY_HEADER, &identity)
            .ok()?;
        let mut resp = crate::call_with(&stub, Method::Get, "/opening", headers, None)
            .await
            .ok()?;
        if resp.status_code() != 200 {
            return None;
        }
        resp.json::<OpeningSeen>().await.ok()
    }

    /// Checks every entry due (`Check`): each goes, stays, or is asked about later.
    async fn check_entries(&self) -> Result<()> {
        let storage = self.state.storage();
        let listed = storage
            .list_with_options(ListOptions::new().prefix(CHECK_PREFIX))
            .await?;
        let mut checks = Vec::new();
        for value in listed.values() {
            let check: Check = serde_wasm_bindgen::from_value(value?)
                .map_err(|e| Error::RustError(e.to_string()))?;
            checks.push(check);
        }
        let mut next_ms: Option<u64> = None;
        let mut asked = 0;
        // `OVATION_TEST_DIRECTORY_CHECKS_PER_ALARM` (tests): fewer, to run the next runs.
        let asks_max =
            crate::number_binding::<usize>(&self.env, "OVATION_TEST_DIRECTORY_CHECKS_PER_ALARM")
                .map_or(DIRECTORY_ENTRY_CHECKS_PER_ALARM_MAX, |n| {
                    n.clamp(1, DIRECTORY_ENTRY_CHECKS_PER_ALARM_MAX)
                });
        for check in checks {
            if check.at_ms > now_ms() {
                next_ms = Some(next_ms.map_or(check.at_ms, |n| n.min(check.at_ms)));
                continue;
            }
            if asked == asks_max {
                // The rest due: the next run, at once.
                next_ms = Some(now_ms());
                break;
            }
            asked += 1;
            let verdict = AdmittedEntry::of(self.opening_of(&check).await);
            // What the room said is about this check's entry only if nothing changed it
            // meanwhile (a claim, a removal, an archive, a new create's admission).
            let check_key = format!("{CHECK_PREFIX}{}", check.room);
            if storage.get::<Check>(&check_key).await?.as_ref() != Some(&check) {
                continue;
            }
            match verdict {
                AdmittedEntry::Confirmed => storage.delete(&check_key).await.map(|_| ())?,
                AdmittedEntry::Orphaned => {
                    let live_key = format!("{LIVE_PREFIX}{}", check.room);
                    let entry = storage.get::<Entry>(&live_key).await?;
                    if entry.is_some_and(|e| e.admitted_by == check.admitted_by) {
                        storage.delete(&live_key).await?;
                        log_json(serde_json::json!({"level":"warn",
                            "event":"directory_entry_orphaned","room": check.room,
                            "detail":"listed by a create that never opened the room"}));
                    }
                    storage.delete(&check_key).await?;
                }
                AdmittedEntry::AskAgain => {
                    let asks = check.asks.saturating_add(1);
                    let at_ms = now_ms().saturating_add(self.check_after_ms(asks));
                    storage
                        .put(
                            &check_key,
                            &Check {
                                asks,
                                at_ms,
                                ..check
                            },
                        )
                        .await?;
                    next_ms = Some(next_ms.map_or(at_ms, |n| n.min(at_ms)));
                }
            }
        }
        if let Some(next_ms) = next_ms {
            self.alarm_by(next_ms).await?;
        }
        Ok(())
    }
}

impl DurableObject for DirectoryObject {
    fn new(state: State, env: Env) -> Self {
        DirectoryObject { state, env }
    }

    async fn alarm(&self) -> Result<Response> {
        self.check_entries().await?;
        Response::empty()
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        let path = req.path();
        let storage = self.state.storage();
        match (req.method(), path.as_str()) {
            // Admits a room before it is created (`ovation_room::admit_live_room`): a
            // listed room answers `existed` and keeps its entry; past the limit, 429. A
            // claim (the create that opened the room) makes the entry its own, listed
            // whatever the count.
            (Method::Post, "/add") => {
                let Add { entry, claim } = match object_json_body(&mut req).await {
                    Ok(add) => add,
                    Err(e) => return error(e),
                };
                let key = format!("room/{}", entry.room);
                let check_key = format!("{CHECK_PREFIX}{}", entry.room);
                let found = storage.get::<Entry>(&key).await?;
                let existed = found.is_some();
                if let (Some(found), false) = (found, claim) {
                    // An entry no check covers (confirmed earlier, or written before
                    // entries were checked) is checked again: this create may die too,
                    // after the room object cleared its last opening.
                    if storage.get::<Check>(&check_key).await?.is_none() {
                        self.check_later(&req, &check_key, &found).await?;
                    }
                    return json(serde_json::json!({ "ok": true, "existed": true }), 200);
                }
                // A claim is listed whatever the count: its room is open already (a failed
                // create's removal may have freed the slot it held for another room).
                if !claim {
                    let live = ListOptions::new().prefix(LIVE_PREFIX);
                    let count = storage.list_with_options(live).await?.size() as usize;
                    if let Err(e) = ovation_room::admit_live_room(count) {
                        return error(ApiError::new(e.http_status(), e.code(), &e.message()));
                    }
                }
                if claim {
                    // Its room is open: nothing to check.
                    storage.delete(&check_key).await?;
                } else {
                    self.check_later(&req, &check_key, &entry).await?;
                }
                storage.put(&key, &entry).await?;
                json(serde_json::json!({ "ok": true, "existed": existed }), 200)
            }
            (Method::Post, "/remove") => {
                #[derive(Deserialize)]
                struct Remove {
                    room: String,
                    /// Absent from a Worker older than `admitted_by`: removed as it was.
                    #[serde(default)]
                    admitted_by: Option<u64>,
                }
                let remove: Remove = match object_json_body(&mut req).await {
                    Ok(remove) => remove,
                    Err(e) => return error(e),
                };
                let key = format!("room/{}", remove.room);
                let stored = storage.get::<Entry>(&key).await?;
                // An entry without `admitted_by` was written by the build before (maybe
                // for this very create, during a deploy): removed as it was then.
                let its_own = stored.is_some_and(|entry| {
                    remove.admitted_by.is_none()
                        || entry.admitted_by.is_none()
                        || entry.admitted_by == remove.admitted_by
                });
                if its_own {
                    storage.delete(&key).await?;
                    storage
                        .delete(&format!("{CHECK_PREFIX}{}", remove.room))
                        .await?;
                }
                json(serde_json::json!({ "ok": true }), 200)
            }
            // A room that ended: its live entry moves to `archived/` with its replay
            // window (an entry made before the directory kept titles is archived bare).
            (Method::Post, "/archive") => {
                #[derive(Deserialize)]
                struct Archive {
                    room: String,
                    replay: Option<serde_json::Value>,
                    /// When the opening ended (server time): a live entry made after it
                    /// is a newer opening's, left listed.
                    #[serde(default)]
                    ended_ms: Option<u64>,
                }
                let archive: Archive = match object_json_body(&mut req).await {
                    Ok(archive) => archive,
                    Err(e) => return error(e),
                };
                let live_key = format!("{LIVE_PREFIX}{}", archive.room);
                let archived_key = format!("{ARCHIVED_PREFIX}{}", archive.room);
                // Archiving again (an end retried) keeps the entry archived the first time.
                let earlier = storage.get::<Entry>(&archived_key).await?;
                let archived_before = earlier.is_some();
                let live = storage.get::<Entry>(&live_key).await?.filter(|live| {
                    archive
                        .ended_ms
                        .is_none_or(|ended_ms| live.created_ms <= ended_ms)
                });
                let live_is_this_opening = live.is_some();
                let mut entry = match live {
                    Some(entry) => entry,
                    None => earlier.unwrap_or(Entry {
                        room: archive.room.clone(),
                        title: String::new(),
                        host: String::new(),
                        created_ms: 0,
                        status: None,
                        replay: None,
                        admitted_by: None,
                    }),
                };
                entry.status = Some("archived".into());
                entry.admitted_by = None;
                entry.replay = archive.replay.filter(|r| !r.is_null());
                let archived = storage
                    .list_with_options(ListOptions::new().prefix(ARCHIVED_PREFIX))
                    .await?;
                if !archived_before
                    && archived.size() as usize >= ovation_proto::limits::DIRECTORY_ROOMS_MAX
                {
                    // The oldest ended room leaves the list (its recording stays readable).
                    let mut oldest: Option<(u64, String)> = None;
                    for value in archived.values() {
                        let old: Entry = serde_wasm_bindgen::from_value(value?)
                            .map_err(|e| Error::RustError(e.to_string()))?;
                        let ended = old.replay.as_ref().and_then(|r| r["to_ms"].as_u64());
                        let ended = ended.unwrap_or(0);
                        if oldest.as_ref().is_none_or(|(t, _)| ended < *t) {
                            oldest = Some((ended, old.room));
                        }
                    }
                    if let Some((_, room)) = oldest {
                        storage.delete(&format!("{ARCHIVED_PREFIX}{room}")).await?;
                    }
                }
                storage.put(&archived_key, &entry).await?;
                // `OVATION_TEST_DIRECTORY_ARCHIVE_DELAY_MS` (tests): the process is killed
                // here, the room listed both archived and live.
                let delay_ms = crate::number_binding::<u64>(
                    &self.env,
                    "OVATION_TEST_DIRECTORY_ARCHIVE_DELAY_MS",
                )
                .map(|ms| ms.min(ovation_proto::limits::TEST_DIRECTORY_ARCHIVE_DELAY_MS_MAX));
                if let Some(delay_ms) = delay_ms.filter(|_| live_is_this_opening) {
                    log_json(serde_json::json!({"level":"warn",
                        "event":"test_directory_archive_delayed","room": archive.room}));
                    worker::Delay::from(std::time::Duration::from_millis(delay_ms)).await;
                }
                if live_is_this_opening {
                    storage.delete(&live_key).await?;
                    storage
                        .delete(&format!("{CHECK_PREFIX}{}", archive.room))
                        .await?;
                }
                json(serde_json::json!({ "ok": true }), 200)
            }
            // One page of a list, in room order (`ovation_room::DirectoryQuery`, checked
            // by the Worker first).
            (Method::Get, "/list") => {
                let query = match ovation_room::DirectoryQuery::parse(req.url()?.query_pairs()) {
                    Ok(query) => query,
                    Err(e) => return error(ApiError::new(e.http_status(), e.code(), &e.message())),
                };
                let prefix = match query.listed {
                    ovation_room::Listed::Live => LIVE_PREFIX,
                    ovation_room::Listed::Archived => ARCHIVED_PREFIX,
                };
                let start = query
                    .after
                    .as_ref()
                    .map(|after| format!("{prefix}{}", after.as_str()));
                let mut options = ListOptions::new()
                    .prefix(prefix)
                    .limit(query.entries_to_read());
                if let Some(start) = start.as_deref() {
                    options = options.start(start);
                }
                let map = storage.list_with_options(options).await?;
                let mut entries = Vec::new();
                for value in map.values() {
                    let mut entry: Entry = serde_wasm_bindgen::from_value(value?)
                        .map_err(|e| Error::RustError(e.to_string()))?;
                    entry.admitted_by = None;
                    entries.push((entry.room.clone(), entry));
                }
                // Storage lists in key order, which is room order under one prefix: the
                // order `page` cuts in.
                let page = query.page(entries);
                json(
                    serde_json::json!({ "rooms": page.rooms, "next": page.next }),
                    200,
                )
            }
            _ => error(ApiError::new(404, "route_not_found", "no such route")),
        }
    }
}
