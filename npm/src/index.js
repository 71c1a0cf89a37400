// The `ovation` package: a thin JavaScript face on the Rust/wasm client core.
// Everything that decides (reconnects, resume, retries, likes, clock) is in the core;
// this file loads the wasm, turns core events into `room.on(...)` callbacks, keeps
// `room.state`, and turns acknowledgements into settled promises.

import init, { Session } from "../wasm/ovation_sdk.js";

let loading = null;

function isNode() {
  return typeof process !== "undefined" && !!(process.versions && process.versions.node);
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
    })();
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

function wrapError(e) {
  if (e instanceof OvationError) return e;
  const code = e && typeof e.code === "string" ? e.code : "internal";
  return new OvationError(code, (e && e.message) || String(e));
}

const EVENT_TYPES = new Set([
  "status", "comment", "reaction", "like", "gift", "online", "state", "direct", "balance",
  "gap", "ended", "poll", "quiz", "qa", "product", "announcement", "removed", "error",
]);

// State parts that interactions own: a change is also told as an event of that name.
const INTERACTION_PARTS = new Set(["poll", "quiz", "qa", "product", "announcement"]);

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
    this._session = null;
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
        // A throwing handler must not stop the others or the connection.
        setTimeout(() => { throw e; });
      }
    }
  }

  _act(start) {
    let id;
    try {
      id = start(this._session);
    } catch (e) {
      return Promise.reject(wrapError(e));
    }
    return new Promise((resolve, reject) => this._pending.set(id, { resolve, reject }));
  }

  /** Posts a comment; resolves with `{ seq }` once the room accepted it. */
  comment(text) {
    return this._act((s) => s.comment(String(text)));
  }

  /** Sends a reaction (an emoji or short name). */
  react(kind) {
    return this._act((s) => s.reaction(String(kind)));
  }

  /** Likes `count` times (coalesced: one frame per ~250 ms). */
  like(count = 1) {
    if (!Number.isInteger(count) || count < 1) {
      throw new OvationError("invalid", "like count is a positive integer");
    }
    this._session.like(count);
  }

  /** A peer message to every connection of `userId` (hosts and moderators). */
  direct(userId, payload) {
    const text = typeof payload === "string" ? payload : JSON.stringify(payload);
    return this._act((s) => s.direct(String(userId), text));
  }

  /** Sets an app-defined state part to a JSON value (hosts and moderators). */
  setPart(name, value) {
    return this._act((s) => s.setPart(String(name), JSON.stringify(value)));
  }

  /** Sends a gift from the room's catalog; `id` makes a retry safe (charged once). */
  gift(sku, qty = 1, { id } = {}) {
    const giftId = id || `g-${randomSeed().toString(36)}`;
    return this._act((s) => s.gift(giftId, String(sku), qty));
  }

  /**
   * Votes in the room's open poll (`room.state.parts.poll.id`; options count from 0).
   * Resolves once the room has it; voting again resolves too but counts only the first.
   * Rejects with `poll_closed` after the window, `not_found` for another poll.
   */
  vote(pollId, option) {
    return this._act((s) => s.vote(String(pollId), option));
  }

  /**
   * Answers the open question of a quiz (`room.state.parts.quiz`: its `id` and
   * `question.index`; options count from 0). The first answer counts; your points, score
   * and rank arrive as a `direct` event of type `quiz_score` when the question closes.
   */
  answer(quizId, questionIndex, option) {
    return this._act((s) => s.answer(String(quizId), questionIndex, option));
  }

  /** Asks the host a question (Q&A); it shows in the `qa` part once visible. */
  ask(text) {
    return this._act((s) => s.ask(String(text)));
  }

  /** Upvotes a Q&A question (once per user; repeats resolve without counting). */
  upvote(questionId) {
    return this._act((s) => s.upvote(String(questionId)));
  }

  /** Counts a click on the pinned product card (then open its `link` yourself). */
  productClick(productId) {
    return this._act((s) => s.productClick(String(productId)));
  }

  /**
   * Hosts and moderators: a staff command, e.g. `{command: "mute", user: "u1"}` or
   * `{command: "create_poll", spec: {...}}` (the admin API's JSON). The room's reply
   * comes as a `direct` event of type `command_reply`. Viewers are refused `forbidden`.
   */
  command(command) {
    return this._act((s) => s.command(JSON.stringify(command)));
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

  /** Closes the connection for good. */
  close() {
    if (this._session) this._session.close();
  }

  _onEvents(events) {
    for (const event of events) {
      switch (event.type) {
        case "status":
          this.status = event.status;
          this.transport = event.transport;
          this._emit("status", { status: event.status, transport: event.transport, reason: event.reason });
          break;
        case "comment":
          this._emit("comment", event);
          break;
        case "reaction":
          this._emit("reaction", event);
          break;
        case "gift":
          this._emit("gift", event);
          break;
        case "removed":
          this._emit("removed", { seq: event.removed, by: event.user });
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
          if (INTERACTION_PARTS.has(event.name)) this._emit(event.name, value);
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
          this._emit("direct", { from: event.from, payload: parseJson(event.payload), ts_ms: event.ts_ms });
          break;
        case "balance":
          this._emit("balance", { balance: event.balance });
          break;
        case "gap":
          this._emit("gap", event);
          break;
        case "ended":
          this._emit("ended", {});
          break;
        case "done": {
          const pending = this._pending.get(event.id);
          if (!pending) break;
          this._pending.delete(event.id);
          if (event.error) {
            const e = new OvationError(event.error.code, event.error.message);
            e.retryAfterMs = event.error.retry_after_ms;
            pending.reject(e);
          } else {
            pending.resolve({ seq: event.seq ?? null });
          }
          break;
        }
        case "error":
          this._emit("error", new OvationError(event.code, event.message));
          break;
      }
    }
  }
}

/**
 * Connects to a room. Resolves once the room answered (WebSocket welcome or first pull);
 * rejects with an `OvationError` on bad options, a refused token, or `timeoutMs`.
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
  await load();
  const WebSocketImpl = options.WebSocket || globalThis.WebSocket;
  const room = new Room({ transport });
  const timeoutMs = options.timeoutMs ?? 15000;
  return new Promise((resolve, reject) => {
    let settled = false;
    const timer = setTimeout(() => {
      if (settled) return;
      settled = true;
      room.close();
      reject(new OvationError("connect_timeout", `no answer from the room within ${timeoutMs} ms`));
    }, timeoutMs);
    let lastError = null;
    room.on("error", (e) => { lastError = e; });
    room.on("status", ({ status, reason }) => {
      if (settled) return;
      if (status === "open") {
        settled = true;
        clearTimeout(timer);
        resolve(room);
      } else if (status === "closed") {
        settled = true;
        clearTimeout(timer);
        reject(lastError || new OvationError(reason || "closed", "the room closed the connection"));
      }
    });
    try {
      room._session = new Session(
        { url: options.url, room: options.room, token: options.token, transport, seed: randomSeed() },
        transport === "pull" ? undefined : WebSocketImpl,
                (json) => room._onEvents(JSON.parse(json)),
      );
    } catch (e) {
      settled = true;
      clearTimeout(timer);
      reject(wrapError(e));
    }
  });
}
