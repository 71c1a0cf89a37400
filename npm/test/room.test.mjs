// Unit tests of the `ovation` Room's JavaScript glue (video sync, close, handler errors)
// with no server: a module hook replaces the wasm core's `Session` by a script that speaks
// its event stream (the JSON `_onEvents` reads), so each test decides what the service
// says; `Playback` (the video-sync core) is the real wasm. The video is a scripted
// element (the player module reads only its events, playhead and metadata tracks).
// The same SDK against the real worker: sdk.test.mjs; in Chromium: npm/test/player.
// Runs from the sources (`node --test npm/test/room.test.mjs`) and from the packed tarball.

import { test } from "node:test";
import assert from "node:assert/strict";
import { register } from "node:module";

// The hooks: the SDK's `../wasm/ovation_sdk.js` becomes the real module with a scripted
// Session (the room answers at once, unless the token is "silent"); an SDK loaded with
// `?offline` in its URL cannot load `./player.js`.
const HOOKS = `
export async function resolve(specifier, context, next) {
  const parent = context.parentURL || "";
  if (specifier === "./player.js" && parent.includes("offline")) {
    throw new Error("Failed to fetch dynamically imported module: player.js");
  }
  if (specifier === "../wasm/ovation_sdk.js" && parent.includes("/src/index.js")) {
    const real = await next(specifier, context);
    const variant = parent.includes("failing-load")
      ? "?scripted-failing-once"
      : parent.includes("hanging-load")
        ? "?scripted-hanging"
        : "?scripted";
    return { url: real.url + variant, shortCircuit: true };
  }
  return next(specifier, context);
}
export async function load(url, context, next) {
  if (url.includes("?scripted")) {
    const failing = url.endsWith("?scripted-failing-once");
    const hanging = url.endsWith("?scripted-hanging");
    const real = JSON.stringify(url.slice(0, url.lastIndexOf("?")));
    // A first load that fails (a network blip while the wasm downloads), then works.
    // Or one that never ends (a download that stalls).
    const init = failing
      ? "import realInit from " + real + "; let failed = false;" +
        "export default async function (o) { if (!failed) { failed = true;" +
        " throw new TypeError('Failed to fetch'); } return realInit(o); }"
      : hanging
        ? "export default function () { return new Promise(() => {}); }"
        : "export { default } from " + real + ";";
    const source = "export * from " + real + "; " + init +
      "export class Session {" +
      "  constructor(options, ws, onEvents) { this.onEvents = onEvents; this.closed = 0;" +
      "    globalThis.scriptedSessions.push(this);" +
      "    if (options.token !== 'silent')" +
      "      queueMicrotask(() => this.say({ type: 'status', status: 'open', transport: 'ws' })); }" +
      "  say(...events) { this.onEvents(JSON.stringify(events)); }" +
      "  close() { this.closed += 1; this.say({ type: 'status', status: 'closed', transport: 'ws', reason: null }); }" +
      "  serverNow() { return Date.now(); } clockOffset() { return undefined; }" +
      "}";
    return { format: "module", source, shortCircuit: true };
  }
  return next(url, context);
}`;
register(`data:text/javascript,${encodeURIComponent(HOOKS)}`);
globalThis.scriptedSessions = [];

const indexUrl = import.meta.resolve("ovation");
const sdk = await import(indexUrl);
const offlineSdk = await import(`${indexUrl}?offline`);
const failingLoadSdk = await import(`${indexUrl}?failing-load`);
const hangingLoadSdk = await import(`${indexUrl}?hanging-load`);

async function join(from = sdk) {
  const room = await from.connect({ url: "http://127.0.0.1:1", room: "r", token: "t" });
  const session = globalThis.scriptedSessions.at(-1);
  return { room, session };
}

/** Collects every event of `types` in order, as [type, payload]. */
function record(room, ...types) {
  const seen = [];
  for (const type of types) room.on(type, (payload) => seen.push([type, payload]));
  return seen;
}

/** A `<video>` whose playhead and metadata track (cues `[{startTime, text}]`) the test sets. */
class ScriptedVideo extends EventTarget {
  constructor(cues = []) {
    super();
    this.currentTime = 0;
    this.paused = true;
    this.readyState = 4;
    this.seeking = false;
    const track = new EventTarget();
    track.kind = "metadata";
    track.mode = "hidden";
    track.cues = cues;
    track.activeCues = [];
    const tracks = [track];
    tracks.addEventListener = () => {};
    tracks.removeEventListener = () => {};
    this.textTracks = tracks;
  }

  playTo(seconds) {
    this.paused = false;
    this.currentTime = seconds;
    this.dispatchEvent(new Event("timeupdate"));
  }
}

const CUED_POLL = { id: "p1", phase: "open", cue: "c1", question: "?", options: ["a", "b"] };

function partEvent(name, value) {
  return { type: "part", name, value: JSON.stringify(value) };
}

test("the player code failing to load rejects player_load_failed and shows what waited", async () => {
  const { room, session } = await join(offlineSdk);
  const seen = record(room, "poll");
  const attached = room.attachPlayer(new ScriptedVideo());
  session.say(partEvent("poll", CUED_POLL)); // waits for cue c1 while the code loads
  await assert.rejects(
    attached,
    (e) => e instanceof offlineSdk.OvationError && e.code === "player_load_failed",
  );
  assert.deepEqual(seen, [["poll", CUED_POLL]]);
  // No player: a later cued part shows at once.
  session.say(partEvent("poll", { ...CUED_POLL, cue: "c2" }));
  assert.equal(seen.length, 2);
  room.close();
});

test("close() detaches the player: no cue, no cued interaction afterwards", async () => {
  const { room, session } = await join();
  const seen = record(room, "poll", "cue");
  const video = new ScriptedVideo([{ startTime: 5, text: "v=1;cue=c1" }]);
  await room.attachPlayer(video);
  session.say(partEvent("poll", CUED_POLL));
  room.close();
  assert.equal(session.closed, 1);
  video.playTo(6);
  assert.deepEqual(seen, []);
});

test("a handler that detaches the player stops its loops: nothing throws, later events still arrive", async () => {
  const { room, session } = await join();
  const uncaught = [];
  const onUncaught = (e) => uncaught.push(e);
  process.on("uncaughtException", onUncaught);
  try {
    const video = new ScriptedVideo([
      { startTime: 5, text: "v=1;cue=c1" },
      { startTime: 5.5, text: "v=1;cue=c2" },
    ]);
    const detach = await room.attachPlayer(video);
    const cues = [];
    room.on("cue", (cue) => {
      cues.push(cue.cue);
      detach(); // in the middle of the player's loop over the core
    });
    video.playTo(6); // both cues are due in one turn
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(cues.length, 1, "the loop stopped at the detach");
    // The session goes on: a later event reaches its handler.
    const comments = record(room, "comment");
    session.say({
      type: "comment",
      seq: 1,
      ts_ms: 1,
      user: "u",
      name: "U",
      text: "after",
      system: false,
    });
    assert.equal(comments.length, 1);
  } finally {
    process.off("uncaughtException", onUncaught);
  }
  assert.deepEqual(uncaught, [], "nothing thrown into the app");
});

test("close() drops the comments held for the video (sync: video)", async () => {
  const { room, session } = await join();
  const seen = record(room, "comment");
  const video = new ScriptedVideo();
  const startMs = 1_790_000_000_000;
  video.getStartDate = () => new Date(startMs); // EXT-X-PROGRAM-DATE-TIME
  await room.attachPlayer(video, { sync: "video" });
  video.playTo(1);
  const comment = (seq, atS) => ({
    type: "comment",
    seq,
    ts_ms: startMs + atS * 1000,
    user: "u",
    name: "U",
    text: "hi",
    system: false,
  });
  session.say(comment(1, 30)); // 29 s ahead of the video: held
  assert.deepEqual(seen, []);
  video.playTo(31);
  assert.deepEqual(
    seen.map(([, c]) => c.seq),
    [1],
    "shown when the video reaches it",
  );
  session.say(comment(2, 60));
  room.close();
  video.playTo(61);
  assert.deepEqual(
    seen.map(([, c]) => c.seq),
    [1],
    "held at close: never shown",
  );
});

test("a part shown by a detach shows once, not again after a new attachPlayer", async () => {
  const { room, session } = await join();
  const seen = record(room, "poll");
  const video = new ScriptedVideo([{ startTime: 5, text: "v=1;cue=c1" }]);
  const detach = await room.attachPlayer(video);
  session.say(partEvent("poll", CUED_POLL));
  assert.deepEqual(seen, []); // waits for c1
  detach();
  assert.deepEqual(seen, [["poll", CUED_POLL]]);
  await room.attachPlayer(video);
  video.playTo(6);
  assert.deepEqual(seen, [["poll", CUED_POLL]]);
  room.close();
});

test("a throwing handler is logged and told as handler_error; the others still run", async () => {
  const { room, session } = await join();
  const logged = [];
  const consoleError = console.error;
  console.error = (...args) => logged.push(args);
  try {
    const errors = record(room, "error");
    const online = [];
    room.on("online", () => {
      throw new Error("app bug");
    });
    room.on("online", ({ count }) => online.push(count));
    room.on("error", () => {
      throw new Error("error handler bug");
    }); // logged only
    session.say({ type: "online", count: 3 });
    assert.deepEqual(online, [3]);
    assert.equal(errors.length, 1);
    assert.equal(errors[0][1].code, "handler_error");
    assert.equal(errors[0][1].cause.message, "app bug");
    assert.equal(logged.length, 2);
    // Nothing is rethrown later (a rethrow in a timer would end this process).
    await new Promise((resolve) => setTimeout(resolve, 5));
  } finally {
    console.error = consoleError;
    room.close();
  }
});

test("a connect that ends rejects with the refusal that ended it, not an older error", async () => {
  const connectSilent = async () => {
    const connecting = sdk.connect({ url: "http://127.0.0.1:1", room: "r", token: "silent" });
    await new Promise((resolve) => setImmediate(resolve));
    return { connecting, session: globalThis.scriptedSessions.at(-1) };
  };
  const closed = (reason) => ({ type: "status", status: "closed", transport: "pull", reason });
  // `auto` met a full room, read the room over pull and found it ended.
  const ended = await connectSilent();
  ended.session.say(
    { type: "error", code: "room_full", message: "the room is full" },
    { type: "ended" },
    closed("room_ended"),
  );
  await assert.rejects(ended.connecting, (e) => e.code === "room_ended");
  // The refusal that closed it comes with the server's message.
  const banned = await connectSilent();
  banned.session.say(
    { type: "error", code: "banned", message: "a moderator banned you" },
    closed("banned"),
  );
  await assert.rejects(
    banned.connecting,
    (e) => e.code === "banned" && e.message === "a moderator banned you",
  );
});

test("an error event keeps the server's wait (retryAfterMs), as an action's refusal does", async () => {
  const { room, session } = await join();
  const told = [];
  room.on("error", (e) => told.push([e.code, e.retryAfterMs]));
  session.say(
    { type: "error", code: "rate_limited", message: "too many frames", retry_after_ms: 500 },
    { type: "error", code: "network", message: "down", retry_after_ms: 0 },
  );
  assert.deepEqual(told, [
    ["rate_limited", 500],
    ["network", undefined],
  ]);
  room.close();
});

test("a wasm that fails to load is told as sdk_load_failed, and the next connect loads again", async () => {
  await assert.rejects(
    failingLoadSdk.connect({ url: "http://127.0.0.1:1", room: "r", token: "t" }),
    (e) => e instanceof failingLoadSdk.OvationError && e.code === "sdk_load_failed",
  );
  // Not kept: the network is back, and the next connect loads and joins.
  const room = await failingLoadSdk.connect({ url: "http://127.0.0.1:1", room: "r", token: "t" });
  assert.equal(room.status, "open");
  room.close();
});

test("a room closed by a handler amid a batch stays closed, and a like after it is told dropped", async () => {
  const { room, session } = await join();
  room.on("error", () => room.close());
  const seen = record(room, "status", "likes_dropped");
  session.say(
    { type: "error", code: "bad_server_frame", message: "undecodable" },
    { type: "status", status: "reconnecting", transport: "ws", reason: "bad_server_frame" },
  );
  assert.equal(room.status, "closed", "a status after the close does not reopen it");
  assert.equal(room.like(2), 0);
  assert.deepEqual(seen, [
    ["status", { status: "closed", transport: "ws", reason: null }],
    ["likes_dropped", { count: 2, code: "closed", message: "the room connection is closed" }],
  ]);
});

test("a wasm download that stalls is under connect's timeout and signal", async () => {
  const options = { url: "http://127.0.0.1:1", room: "r", token: "t" };
  await assert.rejects(
    hangingLoadSdk.connect({ ...options, timeoutMs: 50 }),
    (e) => e.code === "connect_timeout",
  );
  const controller = new AbortController();
  const connecting = hangingLoadSdk.connect({ ...options, signal: controller.signal });
  setTimeout(() => controller.abort(), 20);
  await assert.rejects(connecting, (e) => e.code === "aborted");
});

test("arguments of the wrong type are refused invalid, never sent as text", async () => {
  const { room } = await join();
  for (const [what, call] of [
    ["comment(undefined)", () => room.comment(undefined)],
    ["comment({})", () => room.comment({})],
    ["react(1)", () => room.react(1)],
    ["ask(null)", () => room.ask(null)],
    ["vote(5, 0)", () => room.vote(5, 0)],
    ["gift(undefined)", () => room.gift(undefined)],
    ["gift('rose', 1, { id: 7 })", () => room.gift("rose", 1, { id: 7 })],
    ["setPart('x', undefined)", () => room.setPart("x", undefined)],
    ["direct('u', undefined)", () => room.direct("u", undefined)],
    ["command(undefined)", () => room.command(undefined)],
  ]) {
    await assert.rejects(call(), (e) => e.code === "invalid", what);
  }
  room.close();
  await assert.rejects(room.attachPlayer(new ScriptedVideo()), (e) => e.code === "closed");
});

test("connect with an aborted signal closes the room at once and rejects aborted", async () => {
  const controller = new AbortController();
  const before = globalThis.scriptedSessions.length;
  const connecting = sdk.connect({
    url: "http://127.0.0.1:1",
    room: "r",
    token: "silent",
    signal: controller.signal,
  });
  // The session exists once the wasm is loaded; abort before the room answers.
  await new Promise((resolve) => setImmediate(resolve));
  controller.abort();
  await assert.rejects(connecting, (e) => e instanceof sdk.OvationError && e.code === "aborted");
  const session = globalThis.scriptedSessions.at(-1);
  assert.equal(globalThis.scriptedSessions.length, before + 1);
  assert.equal(session.closed, 1);
  // Aborted before it started: no session at all.
  await assert.rejects(
    sdk.connect({ url: "http://127.0.0.1:1", room: "r", token: "t", signal: AbortSignal.abort() }),
    (e) => e.code === "aborted",
  );
  assert.equal(globalThis.scriptedSessions.length, before + 1);
});
