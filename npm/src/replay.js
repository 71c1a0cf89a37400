// Replay of a recorded room (loaded by `replay()` on first use, not part of the SDK's
// initial download). The Rust core (`ReplayCore`, crates/client/src/replay.rs) decides
// which recorded events show as the video plays and which windows to fetch; this module
// fetches them, keeps their payloads, reads the player, and emits the same events with
// the same shapes as a live room, so one UI serves both.

import init, { ReplayCore } from "../wasm/ovation_replay.js";
import { listenHlsCues, payloadOfTrackCue, wallClockOf } from "./player.js";

// The like total's state key in the core: never a part name (those are [a-z0-9_-]).
const LIKES = " likes";
// After a failed fetch, ask the core again this long after (ms): its retry time
// (CLIENT_REPLAY_RETRY_MS), so a paused video still gets the window.
const RETRY_TICK_MS = 2000;
// A window's fetch that has not answered this long fails as `timeout` and is asked again
// (CLIENT_FETCH_TIMEOUT_MS).
const FETCH_TIMEOUT_MS = 10000;
// Answers no retry changes (a bad or expired token, a room gone, a ban): told once, and
// the replay stops fetching.
const FINAL_STATUSES = new Set([400, 401, 403, 404, 410]);

/** A recorded action as the live event it was: [type, payload]. */
function actionEvent(action) {
  const base = { seq: action.seq, ts_ms: action.ts_ms, user: action.user, name: action.name };
  const body = action.body || {};
  if (body.Comment) return ["comment", { ...base, text: body.Comment.text, system: false }];
  if (body.System) return ["comment", { ...base, text: body.System.text, system: true }];
  if (body.Reaction) return ["reaction", { ...base, kind: body.Reaction.kind }];
  if (body.Gift)
    return ["gift", { ...base, sku: body.Gift.sku, qty: body.Gift.qty, amount: body.Gift.amount }];
  if (body.Removed)
    return ["removed", { seq: body.Removed.seq, by: action.user, ts_ms: action.ts_ms }];
  return null;
}

function parseJson(text) {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

class Replay {
  constructor(options, sdk, first) {
    this.state = { epoch: 0, version: 0, parts: {} };
    this.status = "open";
    this.transport = "replay";
    this.online = 0;
    this.likes = 0;
    this._sdk = sdk;
    this._options = options;
    this._fetch = options.fetch || globalThis.fetch.bind(globalThis);
    this._handlers = new Map();
    this._payloads = new Map();
    this._core = new sdk.ReplayCore();
    this._fetching = false;
    this._closed = false;
    // Aborts the window fetch in flight at close().
    this._stop = new AbortController();
    this._detach = null;
    this._retry = null;
    this._load(first, false);
    this._core.windowEnd(Date.now());
  }

  /** The recording: its start and end (server time, ms) and whether it still grows. */
  get recording() {
    const w = this._last;
    return {
      started_ms: w.started_ms,
      ended_ms: w.ended_ms ?? null,
      status: w.status,
      truncated_at_ms: w.truncated_at_ms ?? null,
    };
  }

  /**
   * The server time the video shows (ms since the epoch; the recording's start before
   * the first playhead report): what a live room's `serverNow()` is to its countdowns.
   */
  serverNow() {
    return (this._closed ? undefined : this._core.position) ?? this._last.started_ms;
  }

  on(type, handler) {
    const { EVENT_TYPES, OvationError } = this._sdk;
    if (!EVENT_TYPES.has(type)) throw new OvationError("invalid_event", `unknown event "${type}"`);
    if (typeof handler !== "function")
      throw new OvationError("invalid_handler", "handler must be a function");
    let set = this._handlers.get(type);
    if (!set) this._handlers.set(type, (set = new Set()));
    set.add(handler);
    return () => set.delete(handler);
  }

  _emit(type, payload) {
    const set = this._handlers.get(type);
    if (!set) return;
    for (const handler of set) {
      try {
        handler(payload);
      } catch (e) {
        console.error(e); // as live: logged, told as `error`, never rethrown
        if (type !== "error") {
          const error = new this._sdk.OvationError("handler_error", `${type} handler: ${e}`);
          error.cause = e;
          this._emit("error", error);
        }
      }
    }
  }

  /** Hands one window answer to the core, keeping each entry's payload under its id. */
  _load(w, snapshotAsked) {
    const core = this._core;
    const ends = [w.ended_ms, w.truncated_at_ms].filter((x) => Number.isFinite(x));
    const end = ends.length ? Math.min(...ends) : undefined;
    core.windowBegin(
      w.from_ms,
      w.to_ms,
      w.started_ms,
      w.recorded_to_ms,
      end,
      w.status === "live",
      snapshotAsked && !!w.snapshot,
    );
    // What a window that fails halfway kept is let go (it is asked again whole).
    const kept = [];
    const keep = (id, body) => {
      if (id === undefined) return;
      this._payloads.set(id, body);
      kept.push(id);
    };
    try {
      if (snapshotAsked && w.snapshot) {
        for (const part of w.snapshot.parts || []) keep(core.entry(part.name), { part });
        keep(core.entry(LIKES), { likes: { total: w.snapshot.likes } });
      }
      for (const e of w.events || []) {
        const body = e.body || {};
        const key = body.part ? body.part.name : body.likes ? LIKES : undefined;
        keep(core.event(e.ts_ms, key, e.cue ?? undefined), body);
      }
    } catch (e) {
      for (const id of kept) this._payloads.delete(id);
      throw e;
    }
    this._last = w;
  }

  /** Fetches the window the core asks for, if any (one at a time). */
  _pump() {
    if (this._closed || this._fetching || this._refused) return;
    const next = this._core.nextFetch(Date.now());
    if (!next) return;
    const [from, to, snapshot] = next;
    this._fetching = true;
    const { OvationError } = this._sdk;
    getWindow(
      this._fetch,
      this._options,
      from,
      to,
      !!snapshot,
      OvationError,
      this._stop.signal,
    ).then(
      (w) => {
        if (this._closed) return;
        this._fetching = false;
        try {
          this._load(w, !!snapshot);
        } catch {
          // Entries that do not have the API's shape: told, and asked again.
          const message = "a replay window's entries are malformed";
          this._windowFailed(new this._sdk.OvationError("bad_response", message));
          return;
        }
        if (Array.isArray(w.missing_chunks) && w.missing_chunks.length > 0) {
          // Played as far as it goes, and told: the store lacks part of this window.
          this._emit(
            "error",
            new this._sdk.OvationError(
              "replay_incomplete",
              `chunks ${w.missing_chunks.join(", ")} of the recording are not stored yet`,
            ),
          );
        }
        if (this._closed) return; // an `error` handler closed it
        this._core.windowEnd(Date.now());
        this._drain();
        this._pump();
      },
      (e) => {
        if (this._closed) return;
        this._fetching = false;
        this._windowFailed(e);
      },
    );
  }

  /**
   * A window that did not arrive whole: told, and asked again after the core's retry
   * time; an answer no retry changes (`FINAL_STATUSES`) stops the fetching instead.
   */
  _windowFailed(error) {
    this._core.windowFailed(Date.now());
    this._emit("error", error);
    if (this._closed) return; // an `error` handler closed it
    if (FINAL_STATUSES.has(error.status)) {
      // What has arrived still plays; nothing more is fetched, and `status` says so.
      this._refused = error;
      this.status = "refused";
      return;
    }
    clearTimeout(this._retry);
    this._retry = setTimeout(() => this._pump(), RETRY_TICK_MS + 10); // timers may fire a little early
  }

  /** Shows what the core says, in order (until a handler closes the replay: `close()`
   * frees the core, which then throws). */
  _drain() {
    const core = this._core;
    for (let out; !this._closed && (out = core.poll()) !== undefined; ) {
      const kind = out % 4;
      const id = (out - kind) / 4;
      if (kind === 3) this._clear(core.cleared);
      else if (kind === 2) this._payloads.delete(id);
      else {
        const body = this._payloads.get(id);
        if (body) this._show(body);
      }
    }
  }

  _show(body) {
    if (body.action) {
      const event = actionEvent(body.action);
      if (event) this._emit(event[0], event[1]);
    } else if (body.part) {
      this._setPart(body.part.name, parseJson(body.part.value));
    } else if (body.likes) {
      this.likes = body.likes.total;
      this._emit("like", { total: this.likes });
    }
  }

  _clear(key) {
    if (key === LIKES) {
      this.likes = 0;
      this._emit("like", { total: 0 });
    } else {
      this._setPart(key, null);
    }
  }

  _setPart(name, value) {
    // A recording from before the room refused `__` names may hold `__proto__`: as a key
    // it would replace the parts object's prototype.
    if (name.startsWith("__")) return;
    this.state.parts[name] = value;
    this._emit("state", this.state);
    if (this._sdk.INTERACTION_PARTS.has(name)) this._emit(name, value);
  }

  /**
   * Plays the recording against `video` (native HLS or hls.js as `hls`). Resolves with a
   * function that detaches it.
   */
  attachPlayer(video, { hls } = {}) {
    const { OvationError } = this._sdk;
    if (!video || typeof video.addEventListener !== "function") {
      return Promise.reject(
        new OvationError("invalid_options", "attachPlayer needs a video element"),
      );
    }
    if (this._closed) return Promise.reject(new OvationError("closed", "the replay is closed"));
    this._detach?.();
    const core = this._core;
    const cleanups = [];
    let detached = false;
    const listen = (target, type, fn) => {
      target.addEventListener(type, fn);
      cleanups.push(() => target.removeEventListener(type, fn));
    };
    const addCue = (payload, seconds) => {
      if (payload && Number.isFinite(seconds)) core.addCue(payload, seconds * 1000);
    };
    const scanTracks = () => {
      for (const track of Array.from(video.textTracks || [])) {
        if (track.kind !== "metadata") continue;
        if (track.mode === "disabled") track.mode = "hidden";
        for (const cue of Array.from(track.cues || []))
          addCue(payloadOfTrackCue(cue), cue.startTime);
      }
    };
    cleanups.push(listenHlsCues(hls, addCue));
    // Undefined without EXT-X-PROGRAM-DATE-TIME: the core then takes the recording's
    // start as media time 0.
    const wallOf = (seconds) => wallClockOf(video, hls, seconds);
    const turn = (seeked) => {
      const seconds = video.currentTime;
      if (detached || !Number.isFinite(seconds)) return;
      if (video.seeking && !seeked) return; // only `seeked` says where play goes on
      scanTracks();
      if (seeked) core.seek(seconds * 1000, wallOf(seconds));
      else core.playhead(seconds * 1000, wallOf(seconds));
      this._drain();
      for (let json; !this._closed && (json = core.pollCue()) !== undefined; )
        this._emit("cue", { ...JSON.parse(json), media_time: seconds });
      this._pump();
    };
    for (const type of ["playing", "timeupdate", "pause", "ratechange"])
      listen(video, type, () => turn(false));
    listen(video, "seeked", () => turn(true));
    // Every animation frame while playing: events show within a frame of their moment,
    // not at the next timeupdate (250 ms later).
    const raf = globalThis.requestAnimationFrame;
    if (typeof raf === "function") {
      let handle;
      const frame = () => {
        if (detached) return;
        if (!video.paused) turn(false);
        handle = raf(frame);
      };
      handle = raf(frame);
      cleanups.push(() => globalThis.cancelAnimationFrame(handle));
    }
    const detach = () => {
      if (detached) return;
      detached = true;
      for (const undo of cleanups.splice(0)) undo();
      if (this._detach === detach) this._detach = null;
    };
    this._detach = detach;
    if (video.readyState >= 1) turn(false); // already has a position
    return Promise.resolve(detach);
  }

  /** Detaches the player and lets go of the recording: no event or fetch follows. */
  close() {
    if (this._closed) return;
    this._detach?.();
    this._closed = true;
    this.status = "closed";
    this._stop.abort();
    clearTimeout(this._retry);
    this._payloads.clear();
    this._core.free();
  }
}

/** One `GET /v1/rooms/{room}/replay` answer, or an `OvationError` with the server's code. */
async function getWindow(fetchImpl, { url, room, token }, from, to, snapshot, OvationError, stop) {
  const base = url.replace(/\/+$/, "");
  const query = `from=${from}&to=${to}${snapshot ? "" : "&snapshot=false"}`;
  // A fetch that never answers (and a body that never ends) fails as `timeout`, whether
  // or not the `fetch` given honours the abort.
  const abort = new AbortController();
  let timer;
  let onStop;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => {
      abort.abort();
      reject(new OvationError("timeout", `no replay answer within ${FETCH_TIMEOUT_MS} ms`));
    }, FETCH_TIMEOUT_MS);
    // `stop`: the replay closed; its fetch and timer go at once. Removed when this
    // fetch ends (a replay retrying every 2 s kept one listener per fetch).
    onStop = () => {
      abort.abort();
      reject(new OvationError("closed", "the replay is closed"));
    };
    stop?.addEventListener("abort", onStop, { once: true });
  });
  const answer = (async () => {
    let response;
    try {
      response = await fetchImpl(`${base}/v1/rooms/${encodeURIComponent(room)}/replay?${query}`, {
        headers: { authorization: `Bearer ${token}` },
        signal: abort.signal,
      });
    } catch (e) {
      throw new OvationError("network", String(e?.message || e));
    }
    if (!response.ok) {
      let body = {};
      try {
        body = await response.json();
      } catch {}
      const error = new OvationError(
        body.code || `http_${response.status}`,
        body.message || `replay answered ${response.status}`,
      );
      error.status = response.status;
      throw error;
    }
    let w;
    try {
      w = await response.json();
    } catch {
      w = null;
    }
    if (!w || !Number.isFinite(w.started_ms) || !Array.isArray(w.events)) {
      throw new OvationError("bad_response", "the replay answer is malformed");
    }
    return w;
  })();
  try {
    return await Promise.race([answer, timeout]);
  } finally {
    clearTimeout(timer);
    stop?.removeEventListener("abort", onStop);
    answer.catch(() => {}); // a late failure after the timeout is not unhandled
  }
}

let loading = null;

/** Loads the replay core's wasm once (Node reads the file; browsers fetch it). */
function load() {
  if (!loading) {
    loading = (async () => {
      const url = new URL("../wasm/ovation_replay_bg.wasm", import.meta.url);
      if (url.protocol === "file:" && globalThis.process?.versions?.node) {
        const fs = await import(/* @vite-ignore */ ["node", "fs/promises"].join(":"));
        await init({ module_or_path: await fs.readFile(url) });
      } else {
        await init({ module_or_path: url });
      }
    })().catch((e) => {
      loading = null; // not kept: the next replay() loads again
      throw e;
    });
  }
  return loading;
}

/** `replay()`: asks for the recording's bounds, then returns the replay object. */
export async function open(options, OvationError, EVENT_TYPES, INTERACTION_PARTS, deadline) {
  for (const key of ["url", "room", "token"]) {
    if (typeof options?.[key] !== "string" || options[key] === "") {
      throw new OvationError("invalid_options", `options.${key} must be a non-empty string`);
    }
  }
  const fetchImpl = options.fetch || globalThis.fetch.bind(globalThis);
  const loaded = load().catch((e) => {
    throw new OvationError("sdk_load_failed", `the replay code did not load: ${e?.message}`);
  });
  const [first] = await Promise.all([
    getWindow(fetchImpl, options, 0, 1, false, OvationError),
    // The caller's deadline: a stalled download rejects, never hangs. (It is not started
    // again by a later call: wasm-bindgen's init keeps its first load, as the module map
    // keeps a stalled import; a failed one is, `load`.)
    Promise.race([loaded, deadline ?? loaded]),
  ]);
  return new Replay(options, { ReplayCore, OvationError, EVENT_TYPES, INTERACTION_PARTS }, first);
}
