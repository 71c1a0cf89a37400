// The webview bridge: an Ovation room talking to a native iOS or Android app.
//
//   import { installBridge } from "./bridge.js";
//   const uninstall = installBridge(roomOrConnectPromise);
//
// Web → native: every SDK event goes out as the JSON text `{"type": …, "payload": …}` to
// `window.webkit.messageHandlers.ovation.postMessage(text)` (iOS WKWebView) and
// `window.OvationAndroid.postMessage(text)` (Android WebView @JavascriptInterface), when
// they exist. On install the current status is sent (`{"type":"status", …}`), so a
// native app always learns that the room is open.
// Native → web: `window.ovation.dispatch(json)` (a JSON string or an object) runs one
// action and returns a Promise; when the message has an `id` the outcome is also posted
// back as `{"type":"result","id":…,"ok":true,"result":{"seq":…}}` or
// `{"type":"result","id":…,"ok":false,"error":{"code":…,"message":…}}`.
// The message formats are documented in README.md next to this file.

import { EVENT_TYPES as SDK_EVENT_TYPES } from "ovation";

/** The events forwarded to the native app: every event the SDK has. */
export const EVENT_TYPES = [...SDK_EVENT_TYPES];

class BridgeError extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

function errorJson(e) {
  const out = { code: e?.code || "internal", message: e?.message || String(e) };
  if (e && e.retryAfterMs !== undefined) out.retry_after_ms = e.retryAfterMs;
  return out;
}

// Error objects (the `error` event) do not survive JSON.stringify: send their fields.
const toJson = (message) =>
  JSON.stringify(message, (_key, value) => (value instanceof Error ? errorJson(value) : value));

function need(message, field, type) {
  const value = message[field];
  if (typeof value !== type || value === "") {
    throw new BridgeError("invalid", `"${message.action}" needs "${field}" (${type})`);
  }
  return value;
}

// Each action: (room, message) → a value or a promise. Fields named in README.md.
const ACTIONS = {
  comment: (room, m) => room.comment(need(m, "text", "string")),
  like: (room, m) => {
    room.like(m.count === undefined ? 1 : m.count);
    return {};
  },
  vote: (room, m) => {
    const poll = m.poll ?? room.state.parts.poll?.id;
    if (!poll) throw new BridgeError("not_found", "no poll in this room");
    return room.vote(poll, need(m, "option", "number"));
  },
  answer: (room, m) => {
    const quiz = room.state.parts.quiz;
    const id = m.quiz ?? quiz?.id;
    const question = m.question ?? quiz?.question?.index;
    if (!id || question === undefined)
      throw new BridgeError("not_found", "no quiz question in this room");
    return room.answer(id, question, need(m, "option", "number"));
  },
  ask: (room, m) => room.ask(need(m, "text", "string")),
  upvote: (room, m) => room.upvote(need(m, "question", "string")),
  productClick: (room, m) => {
    const product = m.product ?? room.state.parts.product?.pinned?.id;
    if (!product) throw new BridgeError("not_found", "no product is pinned");
    return room.productClick(product);
  },
  gift: (room, m) =>
    room.gift(need(m, "sku", "string"), m.qty ?? 1, m.gift_id ? { id: m.gift_id } : {}),
  command: (room, m) => room.command(need(m, "command", "object")),
};

/**
 * Connects a room (or a promise of one) to the native app, if any, and defines
 * `window.ovation` (`dispatch`, `room`). Returns a function that removes both.
 * Options: `target` (the global object; tests), `events` (the event types to forward).
 */
export function installBridge(roomOrPromise, { target = globalThis, events = EVENT_TYPES } = {}) {
  const post = (message) => {
    const text = toJson(message);
    try {
      target.webkit?.messageHandlers?.ovation?.postMessage(text);
    } catch (e) {
      console.warn("ovation bridge: iOS handler failed", e);
    }
    try {
      target.OvationAndroid?.postMessage(text);
    } catch (e) {
      console.warn("ovation bridge: Android handler failed", e);
    }
  };
  let room = null;
  let removed = false;
  const offs = [];
  const ready = Promise.resolve(roomOrPromise).then(
    (r) => {
      if (removed) return r;
      room = r;
      post({ type: "status", payload: { status: r.status, transport: r.transport, reason: null } });
      for (const type of events) offs.push(r.on(type, (payload) => post({ type, payload })));
      return r;
    },
    (e) => {
      if (!removed) {
        post({ type: "error", payload: errorJson(e) });
        post({
          type: "status",
          payload: { status: "closed", transport: "ws", reason: errorJson(e).code },
        });
      }
      throw e;
    },
  );
  ready.catch(() => {}); // reported above and to each dispatch

  async function run(message) {
    if (typeof message === "string") {
      try {
        message = JSON.parse(message);
      } catch {
        throw new BridgeError("invalid", "dispatch takes a JSON object");
      }
    }
    if (!message || typeof message !== "object")
      throw new BridgeError("invalid", "dispatch takes a JSON object");
    if (!Object.hasOwn(ACTIONS, String(message.action))) {
      throw new BridgeError("invalid_action", `unknown action "${message.action}"`);
    }
    return ACTIONS[message.action](await ready, message);
  }

  const api = {
    version: 1,
    get room() {
      return room;
    },
    /** Runs `{action, …}` from native code; resolves with the result (`{seq}`). */
    dispatch(json) {
      let id;
      try {
        id = (typeof json === "string" ? JSON.parse(json) : json)?.id;
      } catch {
        id = undefined;
      }
      const result = run(json);
      if (id !== undefined && id !== null) {
        result.then(
          (value) => post({ type: "result", id, ok: true, result: value ?? {} }),
          (e) => post({ type: "result", id, ok: false, error: errorJson(e) }),
        );
      }
      return result;
    },
  };
  const previous = target.ovation;
  target.ovation = api;
  return () => {
    removed = true;
    for (const off of offs) off();
    if (target.ovation === api) target.ovation = previous;
  };
}
