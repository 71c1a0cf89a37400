//! The room's recording: fed after every pump, sealed chunks written to R2 (or this
//! object's storage without the binding), replay windows read back.

use super::*;

pub(crate) const REPLAY_RECORDER_KEY: &str = "replay/recorder";

/// The R2 bucket of sealed chunks; without it (workerd alone) they go to this object's
/// storage under `replay/chunk/<index>`.
pub(crate) const REPLAY_BUCKET: &str = "REPLAY";

/// Hands the recorder the actions after its cursor, every part version newer than it
/// has (and the parts gone), the like total, and the time (or the end).
pub(crate) fn feed_recorder(room: &mut Room, recorder: &mut ovation_replay::Recorder, now: u64) {
    // Until the end: a truncated recording still takes removals.
    while recorder.ended_ms().is_none() {
        let (actions, _gap) = room.actions_since(recorder.last_seq(), now);
        if actions.is_empty() {
            break;
        }
        for action in &actions {
            recorder.record_action(action);
        }
    }
    let versions: Vec<(String, u64)> = room
        .part_versions()
        .map(|(name, version)| (name.to_owned(), version))
        .collect();
    for (name, version) in &versions {
        if recorder.part_version(name).is_none_or(|v| v < *version) {
            if let Some(value) = room.part_at(name, *version) {
                recorder.record_part(name, *version, value, now);
            }
        }
    }
    let gone: Vec<String> = recorder
        .part_names()
        .filter(|name| !versions.iter().any(|(n, _)| n == name))
        .map(str::to_owned)
        .collect();
    for name in gone {
        recorder.record_part(&name, room.total_version(), "null", now);
    }
    recorder.record_likes(room.likes_total(), now);
    if room.status() == ovation_room::RoomStatus::Ended {
        recorder.end(now);
    } else {
        recorder.advance(now);
    }
}

impl RoomObject {
    /// Feeds the recorder what the room did since it was last fed, writes the chunks it
    /// sealed (and those whose write failed before), then saves it if it changed. A failed
    /// write is logged and kept for the next pump; past `REPLAY_UNWRITTEN_CHUNKS_MAX` the
    /// oldest is given up. Windows name a chunk the store lacks in `missing_chunks`.
    pub(crate) async fn record(&self) {
        let now = now_ms();
        let (sealed, recording) = {
            let mut memory = self.memory.borrow_mut();
            let Memory {
                room,
                recorder,
                tenant,
                ..
            } = &mut *memory;
            let (Some(room), Some(recorder)) = (room.as_mut(), recorder.as_mut()) else {
                return;
            };
            feed_recorder(room, recorder, now);
            let sealed: Vec<_> = std::iter::from_fn(|| recorder.poll_sealed()).collect();
            let started_ms = recorder.started_ms();
            (
                sealed,
                (tenant.clone(), room.info().room_id.clone(), started_ms),
            )
        };
        let mut pending: Vec<ovation_replay::Sealed> = self
            .memory
            .borrow_mut()
            .replay_unwritten
            .drain(..)
            .collect();
        pending.extend(sealed);
        // Chunks whose write failed before the room was created again are the ended
        // opening's: written under this recording's keys they would stand for its
        // chunks of the same numbers (and be kept, a chunk being written once).
        let (pending, stale): (Vec<_>, Vec<_>) = pending
            .into_iter()
            .partition(|chunk| chunk.is_of_recording_started_at(recording.2));
        for chunk in stale {
            log_json(json!({"level":"error","event":"replay_chunk_given_up",
                            "chunk": chunk.index, "detail": "its recording ended"}));
        }
        for chunk in pending {
            match self.write_chunk(&recording, &chunk).await {
                Ok(ChunkWrite::Stored) => {}
                // This object was killed after writing it and before saving the recorder
                // that sealed it: the version readers may have been served stays.
                Ok(ChunkWrite::KeptFirst) => log_json(json!({"level":"warn",
                    "event":"replay_chunk_kept","chunk": chunk.index})),
                Err(e) => {
                    log_json(json!({"level":"error","event":"replay_chunk_write_failed",
                                    "chunk": chunk.index, "detail": e.to_string()}));
                    self.memory.borrow_mut().replay_unwritten.push_back(chunk);
                }
            }
        }
        let given_up: Vec<u64> = {
            let mut memory = self.memory.borrow_mut();
            let unwritten = &mut memory.replay_unwritten;
            let excess = unwritten
                .len()
                .saturating_sub(ovation_proto::limits::REPLAY_UNWRITTEN_CHUNKS_MAX);
            unwritten.drain(..excess).map(|chunk| chunk.index).collect()
        };
        for index in given_up {
            log_json(json!({"level":"error","event":"replay_chunk_given_up","chunk": index}));
        }
        // Taken after the chunk writes (other events ran meanwhile), so a slower save
        // never overwrites a newer one. Saved only when changed: most pumps (a like, a
        // join) change no recording.
        let save = {
            let mut memory = self.memory.borrow_mut();
            let Memory {
                recorder,
                recorder_saved,
                ..
            } = &mut *memory;
            recorder.as_ref().and_then(|recorder| {
                (*recorder_saved != Some(recorder.revision())).then(|| {
                    *recorder_saved = Some(recorder.revision());
                    serde_json::to_string(recorder).unwrap_or_default()
                })
            })
        };
        if let Some(text) = save {
            let bytes = Uint8Array::from(text.as_bytes());
            let saved = if self.replay_save_fault() {
                Err(Error::RustError(
                    "injected by OVATION_FAULT_REPLAY_SAVES_FAILING_AFTER".into(),
                ))
            } else {
                self.state
                    .storage()
                    .put_raw(REPLAY_RECORDER_KEY, bytes)
                    .await
            };
            if let Err(e) = saved {
                log_json(json!({"level":"error","event":"replay_save_failed",
                                "detail": e.to_string()}));
            }
        }
    }

    pub(crate) fn chunk_key(
        (tenant, room, started_ms): &(String, String, u64),
        index: u64,
    ) -> String {
        format!("{tenant}/{room}/{started_ms}/{index:08}")
    }

    /// A chunk's key in this object's own storage (no R2 binding).
    fn object_chunk_key(index: u64) -> String {
        format!("{REPLAY_KEY_PREFIX}chunk/{index:08}")
    }

    /// Writes a sealed chunk once: one already at its key, of this recording, is kept. In
    /// R2 the key names the recording's start (and chunks of an ended recording are given
    /// up, never written under a new one's keys), so one there is this recording's; in
    /// this object's storage it does not (one restarted after its recorder could not be
    /// read numbers its chunks from 0 again): what is there is read and checked
    /// (`Sealed::writes_over`). A key is looked at only when a chunk is sealed, every
    /// `REPLAY_CHUNK_MS`.
    pub(crate) async fn write_chunk(
        &self,
        recording: &(String, String, u64),
        chunk: &ovation_replay::Sealed,
    ) -> Result<ChunkWrite> {
        if self.replay_write_fault() {
            return Err(Error::RustError(
                "injected by OVATION_FAULT_REPLAY_WRITES_FAILING".into(),
            ));
        }
        match self.env.bucket(REPLAY_BUCKET) {
            Ok(bucket) => {
                let key = Self::chunk_key(recording, chunk.index);
                // The key names the recording's start: what is there is its chunk.
                if bucket.head(key.clone()).await?.is_some() {
                    return Ok(ChunkWrite::KeptFirst);
                }
                bucket.put(key, chunk.bytes.clone()).execute().await?;
            }
            Err(_) => {
                let key = Self::object_chunk_key(chunk.index);
                if let Some(stored) = self.object_stored(&key).await? {
                    if !chunk.writes_over(&stored.to_vec()) {
                        return Ok(ChunkWrite::KeptFirst);
                    }
                }
                let bytes = Uint8Array::from(chunk.bytes.as_slice());
                self.state.storage().put_raw(&key, bytes).await?;
            }
        }
        Ok(ChunkWrite::Stored)
    }

    /// The value at `key` in this object's storage, if any.
    async fn object_stored(&self, key: &str) -> Result<Option<Uint8Array>> {
        let map = self.state.storage().get_multiple(vec![key]).await?;
        let value = map.get(&key.into());
        Ok((!value.is_undefined()).then(|| Uint8Array::new(&value)))
    }

    /// Whether this recorder save is one the test hook
    /// `OVATION_FAULT_REPLAY_SAVES_FAILING_AFTER` (a count of saves that succeed first)
    /// makes fail: the state of an object killed between a chunk's write and the save
    /// after it. Unset in every deployment.
    fn replay_save_fault(&self) -> bool {
        let mut memory = self.memory.borrow_mut();
        let slot = &mut memory.replay_saves_before_fault;
        !count_down(
            slot,
            &self.env,
            "OVATION_FAULT_REPLAY_SAVES_FAILING_AFTER",
            u64::MAX,
        )
    }

    /// Whether this chunk write is one the test hook `OVATION_FAULT_REPLAY_WRITES_FAILING`
    /// (a count of writes that fail) makes fail. Unset in every deployment.
    fn replay_write_fault(&self) -> bool {
        let mut memory = self.memory.borrow_mut();
        let slot = &mut memory.replay_write_faults_left;
        count_down(slot, &self.env, "OVATION_FAULT_REPLAY_WRITES_FAILING", 0)
    }

    /// A stored chunk, if the window's read bound takes it (`Ok(None)` when absent): from
    /// R2 its size is checked before its body is read.
    pub(crate) async fn read_chunk(
        &self,
        recording: &(String, String, u64),
        index: u64,
        budget: &mut ovation_replay::WindowRead,
    ) -> Result<ChunkRead> {
        match self.env.bucket(REPLAY_BUCKET) {
            Ok(bucket) => match bucket
                .get(Self::chunk_key(recording, index))
                .execute()
                .await?
            {
                Some(object) => {
                    let size = usize::try_from(object.size()).unwrap_or(usize::MAX);
                    if !budget.take(size) {
                        return Ok(ChunkRead::PastBound);
                    }
                    match object.body() {
                        Some(body) => Ok(ChunkRead::Read(body.bytes().await?)),
                        None => Ok(ChunkRead::Absent),
                    }
                }
                None => Ok(ChunkRead::Absent),
            },
            Err(_) => {
                let key = Self::object_chunk_key(index);
                let Some(bytes) = self.object_stored(&key).await? else {
                    return Ok(ChunkRead::Absent);
                };
                if !budget.take(bytes.length() as usize) {
                    return Ok(ChunkRead::PastBound);
                }
                Ok(ChunkRead::Read(bytes.to_vec()))
            }
        }
    }

    /// `GET /replay?from&to[&snapshot=false]` (the query the router checked and passed on
    /// as `ReplayQuery::to_query`): the window from the stored chunks and the open one. An
    /// ended room's answer says `x-ovation-replay-final` (the router caches it).
    pub(crate) async fn replay_window(
        &self,
        query: ovation_proto::ReplayQuery,
        user: &str,
    ) -> std::result::Result<Response, ApiError> {
        let ovation_proto::ReplayQuery {
            from_ms: from,
            to_ms: to,
            snapshot,
        } = query;
        let _reading = match WindowReading::start(&self.memory, user) {
            Ok(reading) => reading,
            Err(busy) => {
                let message = match busy {
                    ovation_replay::WindowReadsBusy::Room => {
                        "this room is reading other replay windows: retry"
                    }
                    ovation_replay::WindowReadsBusy::User => {
                        "your last replay window is still being read: retry"
                    }
                };
                let busy = ApiError::new(503, "replay_busy", message);
                return crate::http::error_retry_after(busy, 1_000)
                    .map_err(|e| ApiError::internal(&e.to_string()));
            }
        };
        self.record().await;
        let (info, open, recording) = {
            let memory = self.memory.borrow();
            let recorder = memory
                .recorder
                .as_ref()
                .ok_or_else(|| ApiError::new(404, "room_not_found", "no such room"))?;
            let room = memory.room.as_ref().map(|r| r.info().room_id.clone());
            (
                recorder.info(),
                recorder.open_chunk_now().cloned(),
                (
                    memory.tenant.clone(),
                    room.unwrap_or_default(),
                    recorder.started_ms(),
                ),
            )
        };
        let mut chunks = Vec::new();
        let mut missing_chunks = Vec::new();
        // At most `REPLAY_WINDOW_READ_BYTES_MAX` of stored chunks: past it the answer ends
        // at the start of the first chunk not read.
        // `OVATION_REPLAY_WINDOW_READ_BYTES` (tests): a smaller bound, so that a recording
        // of seconds reaches it.
        let mut budget =
            crate::number_binding::<usize>(&self.env, "OVATION_REPLAY_WINDOW_READ_BYTES")
                .filter(|&bytes| bytes < ovation_proto::limits::REPLAY_WINDOW_READ_BYTES_MAX)
                .map_or_else(
                    ovation_replay::WindowRead::default,
                    ovation_replay::WindowRead::within,
                );
        let mut to = to;
        for index in info.chunks_for(from, to) {
            if Some(index) == info.open_index {
                chunks.extend(open.clone());
                continue;
            }
            let read = self
                .read_chunk(&recording, index, &mut budget)
                .await
                .map_err(|e| ApiError::internal(&e.to_string()))?;
            match read {
                ChunkRead::Read(bytes) => {
                    let chunk = ovation_replay::Chunk::decode(&bytes)
                        .map_err(|e| ApiError::new(e.http_status(), e.code(), &e.message()))?;
                    if info.owns(index, &chunk) {
                        chunks.push(chunk);
                    } else if info.must_be_stored(index) {
                        // Another recording's, left at this key: not this one's chunk.
                        missing_chunks.push(index);
                    }
                }
                ChunkRead::Absent if info.must_be_stored(index) => missing_chunks.push(index),
                ChunkRead::Absent => {}
                ChunkRead::PastBound => {
                    to = info.chunk_start_ms(index).clamp(from, to);
                    break;
                }
            }
        }
        let mut window = info.window(&chunks, from, to, snapshot);
        window.missing_chunks = missing_chunks;
        let internal = |e: Error| ApiError::internal(&e.to_string());
        let mut resp = Response::from_json(&window).map_err(internal)?;
        // Where this room's chunks live: `r2`, or `object` (its own storage, no binding).
        let store = if self.env.bucket(REPLAY_BUCKET).is_ok() {
            "r2"
        } else {
            "object"
        };
        resp.headers_mut()
            .set(crate::REPLAY_STORE_HEADER, store)
            .map_err(internal)?;
        // Final (cached) only when complete (a missing chunk may still be written) and
        // past for good (`RecordingInfo::is_final`).
        if info.is_final(from, to, now_ms()) && window.missing_chunks.is_empty() {
            resp.headers_mut()
                .set(crate::contract::REPLAY_FINAL_HEADER, "1")
                .map_err(internal)?;
        }
        Ok(resp)
    }
}

/// A test hook's count, read from `binding` once per object (`default` when unset): true,
/// taking one, while some are left.
fn count_down(slot: &mut Option<u64>, env: &Env, binding: &str, default: u64) -> bool {
    let left = slot.get_or_insert_with(|| crate::number_binding(env, binding).unwrap_or(default));
    let counting = *left > 0;
    *left = left.saturating_sub(1);
    counting
}

/// What writing one sealed chunk did.
pub(crate) enum ChunkWrite {
    Stored,
    /// The chunk was already stored (`Sealed::writes_over`): the first version stays.
    KeptFirst,
}

/// What reading one stored chunk for a window found.
pub(crate) enum ChunkRead {
    Read(Vec<u8>),
    /// Not in the store (not written yet, or never: see `RecordingInfo::must_be_stored`).
    Absent,
    /// Past the window's read bound (`REPLAY_WINDOW_READ_BYTES_MAX`): the answer stops.
    PastBound,
}

/// A window answer reading chunks (`ovation_replay::WindowReads`: so many at once, and
/// of one user); its place is given back when the answer is done or dropped.
struct WindowReading<'a> {
    memory: &'a RefCell<Memory>,
    user: String,
}

impl<'a> WindowReading<'a> {
    fn start(
        memory: &'a RefCell<Memory>,
        user: &str,
    ) -> Result<WindowReading<'a>, ovation_replay::WindowReadsBusy> {
        memory.borrow_mut().replay_reads.start(user)?;
        Ok(WindowReading {
            memory,
            user: user.to_owned(),
        })
    }
}

impl Drop for WindowReading<'_> {
    fn drop(&mut self) {
        self.memory.borrow_mut().replay_reads.end(&self.user);
    }
}
