// The `ovation` package: a thin JavaScript face on the Rust/wasm client core.
// Everything that decides (reconnects, resume, retries, likes, clock) is in the core;
// this file loads the wasm, turns core events into `room.on(...)` callbacks, keeps
// `room.state`, and turns acknowledgements into settled promises.

import init, { Session, Playback } from "../wasm/ovation_sdk.js";

let loading = null;

function isNode() {
  return !!globalThis.process?.versions?.node;
}

function load() {
  if (!loading) {
    loading = (async () => {
      const url = new URL("../wasm/ovation_sdk_bg.wasm", import.meta.url);
      if (url.protocol === "file:" && isNode()) {
        // Node cannot fetch file: URLs; read the bytes instead. The specifier is built
        // at run time so bundlers leave it alone.
        const fs = await import(/* @vite-ignore */ ["node", "fs/promises"].join(":"));
        await init({ module_or_path: await fs.readFile(url) });
      } else {
        await init({ module_or_path: url });
      }
    })().catch((e) => {
      // Not kept: the next connect() loads again (the network may be back).
      loading = null;
      throw new OvationError("sdk_load_failed", `the SDK did not load: ${e?.message}`);
    });
  }
  return loading;
}

/** An error with a stable machine-readable `code`. */
export class OvationError extends Error {
  constructor(code, message) {
    super(message);
    this.name = "OvationError";
    this.code = code;
  }
}

/** Settles an action's promise with its `done` event. */
function settle(pending, event) {
  if (event.error) {
    const e = new OvationError(event.error.code, event.error.message);
    e.retryAfterMs = event.error.retry_after_ms;
    pending.reject(e);
  } else {
    pending.resolve({ seq: event.seq ?? null });
  }
}

function wrapError(e) {
  if (e instanceof OvationError) return e;
  const code = e && typeof e.code === "string" ? e.code : "internal";
  return new OvationError(code, e?.message || String(e));
}

/**
 * `value` when it is a whole number from `min` to `max`, else an `invalid` error naming
 * `what`: the wasm takes 32-bit integers, and would read 2^32 + 5 as 5, 1.9 as 1 and a
 * missing option as 0 (a gift of another quantity, a vote for another option).
 */
function whole(value, min, max, what) {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new OvationError("invalid", `${what} is a whole number from ${min} to ${max}`);
  }
  return value;
}

const U32_MAX = 0xffffffff;

/** A string argument as it is, or `invalid`: never "undefined" or "[object Object]" sent. */
function str(value) {
  if (typeof value !== "string") throw new OvationError("invalid", `a string, not ${typeof value}`);
  return value;
}

/** A value's JSON text, or `invalid` for one JSON has no text for (undefined, a function). */
function jsonOf(value) {
  return str(JSON.stringify(value));
}

/** Every event type `room.on` takes (the bridge forwards the same list). */
export const EVENT_TYPES = new Set([
  "status",
  "comment",
  "reaction",
  "like",
  "gift",
  "online",
  "state",
  "direct",
  "balance",
  "gap",
  "ended",
  "poll",
  "quiz",
  "qa",
  "product",
  "announcement",
  "removed",
  "cue",
  "error",
  "likes_dropped",
]);

// State parts that interactions own: a change is also told as an event of that name.
const INTERACTION_PARTS = new Set(["poll", "quiz", "qa", "product", "announcement"]);

/**
 * The cue id an interaction part waits for (`cue` of an open poll, an open quiz question,
 * a pinned product), or null. Exported so the overlay applies the same rule.
 */
export function cueOf(name, value) {
  if (!value || typeof value !== "object") return null;
  if (name === "poll") return value.phase === "open" ? value.cue || null : null;
  if (name === "quiz")
    return value.phase === "open" && value.question ? value.question.cue || null : null;
  if (name === "product") return value.pinned ? value.pinned.cue || null : null;
  return null;
}

function parseJson(text) {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

function randomSeed() {
  const words = new Uint32Array(2);
  globalThis.crypto.getRandomValues(words);
  // 53 bits: exact as a JavaScript number.
  return (words[0] & 0x1fffff) * 2 ** 32 + words[1];
}

class Room {
  constructor(options) {
    this.state = { epoch: 0, version: 0, parts: {} };
    this.status = "connecting";
    this.online = 0;
    this.likes = 0;
    this.transport = options.transport === "pull" ? "pull" : "ws";
    this._handlers = new Map();
    this._pending = new Map();
    /** Actions starting now (nested), and the ends told meanwhile, made when one is (see
     * `_act`). */
    this._starting = 0;
    this._early = null;
    this._session = null;
    // Video sync (attachPlayer; the player keeps what it holds): interaction parts waiting
    // for their cue (name → {name, cue, value, atAttach}), cues already played or opened.
    this._player = null;
    this._waiting = new Map();
    this._played = new Set();
  }

  /**
   * Attaches a `<video>` (played natively or by hls.js, passed as `hls`): cues in the
   * stream (ID3 timed metadata, HLS TS or fMP4 emsg) fire as `cue` events when their frame
   * plays, and a poll, quiz question or product card carrying a cue id opens when that cue
   * plays, or at once when the cue lies behind the playhead (joined or seeked past it; see
   * docs/sdk.md, "Video sync"). With `sync: "video"`, comments, reactions, gifts and
   * removals wait until the video reaches their server timestamp (needs
   * EXT-X-PROGRAM-DATE-TIME). The player code
   * loads on first use (it is not part of the SDK's initial download); resolves with a
   * function that detaches the player. Holding starts at once.
   */
  attachPlayer(video, { hls, sync = "none" } = {}) {
    if (this.status === "closed") {
      return Promise.reject(new OvationError("closed", "the room is closed"));
    }
    if (!video || typeof video.addEventListener !== "function") {
      return Promise.reject(
        new OvationError("invalid_options", "attachPlayer needs a video element"),
      );
    }
    if (sync !== "video" && sync !== "none") {
      return Promise.reject(new OvationError("invalid_options", 'sync is "video" or "none"'));
    }
    if (this._player) this._player.detach();
    // Until its code loaded, a detach does nothing: close() lets go of it, and another
    // attachPlayer takes over what waits.
    const player = { sync, detach: () => {} };
    this._player = player;
    // Interactions already in the room's state whose cue has not played yet (a product
    // pinned before this viewer joined) open at their cue too, or at once when it is behind.
    for (const name of INTERACTION_PARTS) {
      const value = this.state.parts[name];
      const cue = cueOf(name, value);
      if (cue && !this._played.has(cue)) this._await(name, cue, value, true);
    }
    return import("./player.js").then(
      ({ attach }) => {
        if (this._player !== player) return () => {}; // detached or replaced meanwhile
        return attach(this, player, video, hls, Playback);
      },
      (e) => {
        // The player code did not load (offline, or a stale chunk after a deploy): nothing
        // would ever open what waits for a cue, so it shows now, as after a detach.
        if (this._player === player) {
          this._player = null;
          this._showWaiting(); // nothing is held for a player that never ran
        }
        throw new OvationError("player_load_failed", String(e));
      },
    );
  }

  /**
   * Shows the interactions waiting for their cue (the player is gone), each once: its cue
   * counts as played, so a later attachPlayer does not hold it again.
   */
  _showWaiting() {
    for (const [name, { cue, value }] of this._waiting) {
      this._markPlayed(cue);
      this._emit(name, value);
    }
    this._waiting.clear();
  }

  _markPlayed(cueId) {
    this._played.add(cueId);
    if (this._played.size > 1024) this._played.delete(this._played.values().next().value);
  }

  /** A cued part waits for the video; the player core decides when it opens. */
  _await(name, cue, value, atAttach) {
    const entry = { name, cue, value, atAttach };
    this._waiting.set(name, entry);
    this._player?.awaitCue?.(entry);
  }

  /** An interaction part: held until its cue plays (or is behind) when a player is attached. */
  _emitInteraction(name, value) {
    const cue = cueOf(name, value);
    if (this._player && cue && !this._played.has(cue)) {
      this._await(name, cue, value, false);
      return;
    }
    this._waiting.delete(name);
    this._emit(name, value);
  }

  /** A comment, reaction, gift or removal: held for the video with `sync: "video"`. */
  _emitTimed(type, event) {
    if (!this._player?.hold?.(type, event)) this._emit(type, event);
  }

  /** Subscribes to an event; returns a function that unsubscribes. */
  on(type, handler) {
    if (!EVENT_TYPES.has(type)) {
      throw new OvationError("invalid_event", `unknown event "${type}"`);
    }
    if (typeof handler !== "function") {
      throw new OvationError("invalid_handler", "handler must be a function");
    }
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
        // A throwing handler must not stop the others or the connection, nor crash the
        // process (a rethrow in a timer would end Node): it is logged and told as an
        // `error` event with code `handler_error` (not for a throwing `error` handler).
        console.error(e);
        if (type !== "error") {
          const error = new OvationError("handler_error", `${type} handler: ${e}`);
          error.cause = e;
          this._emit("error", error);
        }
      }
    }
  }

  _act(start) {
    let id;
    // Ends told while the action starts, before its id is known here: a socket that calls
    // its handlers inside `send` (a webview's bridge may) can close the session then, and
    // the action's end would find no promise and be lost, the promise never settled.
    // Nested starts (a handler told during a start acting in turn) share the ends kept:
    // ids are unique, and an outer start's end may be told during an inner one.
    this._starting += 1;
    try {
      id = start(this._session);
    } catch (e) {
      return Promise.reject(wrapError(e));
    } finally {
      this._starting -= 1;
    }
    const told = this._early?.get(id);
    if (this._starting === 0) this._early = null;
    return new Promise((resolve, reject) => {
      if (told) settle({ resolve, reject }, told);
      else this._pending.set(id, { resolve, reject });
    });
  }

  /** Posts a comment; resolves with `{ seq }` once the room accepted it. */
  comment(text) {
    return this._act((s) => s.comment(str(text)));
  }

  /** Sends a reaction (an emoji or short name). */
  react(kind) {
    return this._act((s) => s.reaction(str(kind)));
  }

  /**
   * Likes `count` times (coalesced: one frame per ~250 ms, under the room's rate; a
   * frame the room refuses for the rate is sent again). Returns how many were queued.
   * Every like the room will not count is told in a `likes_dropped` event.
   */
  like(count = 1) {
    const likes = whole(count, 1, U32_MAX, "a like count");
    if (this.status === "closed") {
      // The closed session tells nothing more (it let go of this room, so both can be
      // collected): the likes are dropped here, with the code and message the core's
      // `Client::like` gives a closed session (a copy: asking the wasm cost 240 B).
      this._onEvent({
        type: "likes_dropped",
        count: likes,
        code: this._ended ? "room_ended" : "closed",
        message: "the room connection is closed",
      });
      return 0;
    }
    return this._session.like(likes);
  }

  /** A peer message to every connection of `userId` (hosts and moderators). */
  direct(userId, payload) {
    return this._act((s) =>
      s.direct(str(userId), typeof payload === "string" ? payload : jsonOf(payload)),
    );
  }

  /** Sets an app-defined state part to a JSON value (hosts and moderators). */
  setPart(name, value) {
    return this._act((s) => s.setPart(str(name), jsonOf(value)));
  }

  /**
   * Sends a gift from the room's catalog; `id` makes a retry safe (charged once).
   * Resolves with `{ seq, giftId }`; a rejection carries `giftId` too: after
   * `unavailable`, `timeout` or `closed` the charge may have been made, so retry with
   * `gift(sku, qty, { id: err.giftId })`, never a new id.
   */
  gift(sku, qty = 1, { id } = {}) {
    const giftId = id || `g-${randomSeed().toString(36)}`;
    return this._act((s) =>
      s.gift(str(giftId), str(sku), whole(qty, 1, U32_MAX, "a gift quantity")),
    ).then(
      (answer) => ({ ...answer, giftId }),
      (error) => {
        if (error && typeof error === "object") error.giftId = giftId;
        throw error;
      },
    );
  }

  /**
   * Votes in the room's open poll (`room.state.parts.poll.id`; options count from 0).
   * Resolves once the room has it; voting again resolves too but counts only the first.
   * Rejects with `poll_closed` after the window, `not_found` for another poll.
   */
  vote(pollId, option) {
    return this._act((s) => s.vote(str(pollId), whole(option, 0, U32_MAX, "an option")));
  }

  /**
   * Answers the open question of a quiz (`room.state.parts.quiz`: its `id` and
   * `question.index`; options count from 0). The first answer counts; your points, score
   * and rank arrive as a `direct` event of type `quiz_score` when the question closes.
   */
  answer(quizId, questionIndex, option) {
    return this._act((s) =>
      s.answer(
        str(quizId),
        whole(questionIndex, 0, U32_MAX, "a question index"),
        whole(option, 0, U32_MAX, "an option"),
      ),
    );
  }

  /** Asks the host a question (Q&A); it shows in the `qa` part once visible. */
  ask(text) {
    return this._act((s) => s.ask(str(text)));
  }

  /** Upvotes a Q&A question (once per user; repeats resolve without counting). */
  upvote(questionId) {
    return this._act((s) => s.upvote(str(questionId)));
  }

  /** Counts a click on the pinned product card (then open its `link` yourself). */
  productClick(productId) {
    return this._act((s) => s.productClick(str(productId)));
  }

  /**
   * Hosts and moderators: a staff command, e.g. `{command: "mute", user: "u1"}` or
   * `{command: "create_poll", spec: {...}}` (the admin API's JSON). The room's reply
   * comes as a `direct` event of type `command_reply`. Viewers are refused `forbidden`.
   */
  command(command) {
    return this._act((s) => s.command(jsonOf(command)));
  }

  /** The server's clock now (ms since the epoch), from the estimated offset. */
  serverNow() {
    return this._session ? this._session.serverNow() : Date.now();
  }

  /** Server clock minus local clock (ms) as estimated, or null before the first sample. */
  clockOffset() {
    const offset = this._session ? this._session.clockOffset() : undefined;
    return offset === undefined ? null : offset;
  }

  /**
   * Closes the connection for good and detaches the player: events held for the video and
   * interactions waiting for their cue are dropped, and no `cue` event follows.
   */
  close() {
    this._waiting.clear();
    this._player?.close?.();
    this._player = null;
    this._session?.close();
  }

  _onEvents(events) {
    for (const event of events) {
      // One event the SDK fails on (a bug of ours) must not cost the rest of the batch:
      // action results and state after it would be lost without a word.
      try {
        this._onEvent(event);
      } catch (e) {
        console.error(e, event);
      }
    }
  }

  _onEvent(event) {
    switch (event.type) {
      case "status":
        // Closed is final: a handler that closed the room amid a batch may leave a
        // status of the batch behind it (`like()` reads it).
        if (this.status === "closed") break;
        this.status = event.status;
        this.transport = event.transport;
        this._emit("status", {
          status: event.status,
          transport: event.transport,
          reason: event.reason,
        });
        break;
      case "comment":
      case "reaction":
      case "gift":
        this._emitTimed(event.type, event);
        break;
      case "removed":
        this._emitTimed("removed", { seq: event.removed, by: event.user, ts_ms: event.ts_ms });
        break;
      case "like":
        this.likes = event.total;
        this._emit("like", { total: event.total });
        break;
      case "online":
        this.online = event.count;
        this._emit("online", { count: event.count });
        break;
      case "part": {
        const value = parseJson(event.value);
        this.state.parts[event.name] = value;
        this._emit("state", this.state);
        if (INTERACTION_PARTS.has(event.name)) this._emitInteraction(event.name, value);
        break;
      }
      case "reset":
        this.state = { epoch: event.epoch, version: 0, parts: {} };
        this._emit("state", this.state);
        break;
      case "version":
        this.state.epoch = event.epoch;
        this.state.version = event.version;
        this._emit("state", this.state);
        break;
      case "direct":
        this._emit("direct", {
          from: event.from,
          payload: parseJson(event.payload),
          ts_ms: event.ts_ms,
        });
        break;
      case "balance":
        this._emit("balance", { balance: event.balance });
        break;
      case "gap":
        this._emit("gap", event);
        break;
      case "ended":
        this._ended = true;
        this._emit("ended", {});
        break;
      case "done": {
        const pending = this._pending.get(event.id);
        if (!pending) {
          if (this._starting > 0) (this._early ??= new Map()).set(event.id, event);
          break;
        }
        this._pending.delete(event.id);
        settle(pending, event);
        break;
      }
      case "error": {
        const e = new OvationError(event.code, event.message);
        if (event.retry_after_ms) e.retryAfterMs = event.retry_after_ms; // the server's wait
        this._emit("error", e);
        break;
      }
      case "likes_dropped":
        this._emit("likes_dropped", {
          count: event.count,
          code: event.code,
          message: event.message,
        });
        break;
    }
  }
}

/**
 * Connects to a room. Resolves once the room answered (WebSocket welcome or first pull);
 * rejects with an `OvationError` on bad options, `timeoutMs`, or at once with the
 * server's code when it refuses: `token_expired`, `token_invalid_signature`, `token_wrong_room`,
 * `room_not_found` (also a room of another tenant), `room_ended`, ... On any transport:
 * after an upgrade that failed, the core asks the room's state once with the token.
 * `options.signal` (an AbortSignal) ends a connect under way: the room is closed and the
 * promise rejects with `aborted`.
 */
export async function connect(options) {
  if (!options || typeof options !== "object") {
    throw new OvationError("invalid_options", "connect({ url, room, token }) needs options");
  }
  for (const key of ["url", "room", "token"]) {
    if (typeof options[key] !== "string" || options[key] === "") {
      throw new OvationError("invalid_options", `options.${key} must be a non-empty string`);
    }
  }
  const transport = options.transport || "auto";
  if (!["auto", "ws", "pull"].includes(transport)) {
    throw new OvationError("invalid_options", 'transport is "auto", "ws" or "pull"');
  }
  const timeoutMs = options.timeoutMs ?? 15000;
  // Timers take 1 to 2^31 - 1 ms: `Infinity`, 2^31 or a string would fire at once.
  if (!Number.isInteger(timeoutMs) || timeoutMs < 1 || timeoutMs > 0x7fffffff) {
    throw new OvationError("invalid_options", "timeoutMs is a whole number from 1 to 2^31 - 1");
  }
  const signal = options.signal;
  const WebSocketImpl = options.WebSocket || globalThis.WebSocket;
  const room = new Room({ transport });
  return new Promise((resolve, reject) => {
    let settled = false;
    // Settles once; a status, timeout or abort after that is ignored.
    const finish = (settle, value, closeRoom) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal?.removeEventListener("abort", abort);
      if (closeRoom) room.close();
      settle(value);
    };
    // Out of time: the last error the attempt was told (a 503 or 429 the session kept
    // retrying through, even if a later check found the room live), so an app can tell
    // "the service is down" from "no network"; else `connect_timeout`.
    const timer = setTimeout(() => {
      const why = lastError || {
        code: "connect_timeout",
        message: `no answer within ${timeoutMs} ms`,
      };
      finish(reject, new OvationError(why.code, why.message), true);
    }, timeoutMs);
    // An abort (the caller went away) closes the room at once: no socket or pull retry
    // goes on until the timeout.
    const abort = () => finish(reject, new OvationError("aborted", "connect aborted"), true);
    signal?.addEventListener("abort", abort); // once: an AbortSignal aborts once
    let lastError = null;
    room.on("error", (e) => {
      lastError = e;
    });
    room.on("status", ({ status, reason }) => {
      if (status === "open") finish(resolve, room);
      else if (status === "closed") {
        const message =
          reason === "room_ended" ? "the room has ended" : "the room closed the connection";
        // The refusal that ended the session is the last error with its code; an
        // earlier error (a full room before the pull transport found the room ended)
        // is not why it closed.
        const why = lastError?.code === reason ? lastError : null;
        finish(reject, why || new OvationError(reason || "closed", message));
      }
    });
    if (signal?.aborted) return abort(); // before any session is made
    // The SDK's wasm loads under the same timeout and signal as the join.
    load().then(
      () => {
        if (settled) return; // timed out or aborted while it loaded
        try {
          room._session = new Session(
            {
              url: options.url,
              room: options.room,
              token: options.token,
              transport,
              seed: randomSeed(),
            },
            transport === "pull" ? undefined : WebSocketImpl,
            (json) => room._onEvents(JSON.parse(json)),
          );
        } catch (e) {
          finish(reject, wrapError(e));
        }
      },
      (e) => finish(reject, e),
    );
  });
}

// How long `replay()` waits for its code and wasm (CLIENT_FETCH_TIMEOUT_MS, as a window).
const REPLAY_LOAD_TIMEOUT_MS = 10000;

/**
 * Plays a room's recording (a live room's so far, or an ended one's): resolves with an
 * object with the same `on(type, handler)` events and `state` as a live room, and
 * `attachPlayer(video, { hls })` that shows each event when the video reaches the moment
 * it happened live (see the README, "Replay"). Its code loads on first use, within
 * `REPLAY_LOAD_TIMEOUT_MS`: a download that stalls rejects `sdk_load_failed`, as
 * connect()'s does under its timeout (a download that failed is tried again by the next
 * call; one that stalls is not started again in this page).
 */
export const replay = (options) => {
  let timer;
  const deadline = new Promise((_, reject) => {
    timer = setTimeout(() => {
      const message = `the replay code did not load within ${REPLAY_LOAD_TIMEOUT_MS} ms`;
      reject(new OvationError("sdk_load_failed", message));
    }, REPLAY_LOAD_TIMEOUT_MS);
  });
  deadline.catch(() => {}); // told through the race, or not at all
  return Promise.race([import("./replay.js"), deadline])
    .then((m) => m.open(options, OvationError, EVENT_TYPES, INTERACTION_PARTS, deadline))
    .finally(() => clearTimeout(timer));
};
