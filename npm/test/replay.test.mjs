// Unit tests of `replay()` (npm/src/replay.js with the real replay core in wasm) with no
// server: a scripted `fetch` answers `GET /v1/rooms/{room}/replay` from a recording the
// test writes (as the worker does: events in [from, to), the state before `from` as the
// snapshot), and a scripted `<video>` whose playhead the test moves. No sleeps: each step
// waits only for the promises under way to settle.
// The same in Chromium with hls.js against the real worker: tests/tests/replay_video.rs.
// Runs from the sources (`node --test npm/test/replay.test.mjs`) and from the packed tarball.

import { test } from "node:test";
import assert from "node:assert/strict";
import { replay, OvationError } from "ovation";

/** The room's start (server time): media time 0 of a stream without a date. */
const S = 1_790_000_000_000;

const action = (seq, atMs, body, user = "u1") => ({
  ts_ms: S + atMs,
  cue: null,
  body: { action: { seq, ts_ms: S + atMs, user, name: user.toUpperCase(), body } },
});
const part = (atMs, name, version, value, cue = null) => ({
  ts_ms: S + atMs,
  cue,
  body: { part: { name, version, value: JSON.stringify(value) } },
});
const likes = (atMs, total) => ({ ts_ms: S + atMs, cue: null, body: { likes: { total } } });
const poll = (tallies, phase = "open") => ({
  id: "p1",
  phase,
  question: "?",
  options: ["a", "b"],
  tallies,
});

/** 2 minutes: comments, a reaction, a gift, a system message, a poll with tallies. */
function show() {
  return [
    action(1, 1_000, { Comment: { text: "first" } }),
    action(2, 2_000, { Reaction: { kind: "🔥" } }),
    part(3_000, "poll", 1, poll([0, 0])),
    likes(3_500, 12),
    action(3, 4_000, { Gift: { sku: "rose", qty: 2, amount: 20 } }),
    action(4, 5_000, { System: { text: "welcome" } }, "admin"),
    part(30_000, "poll", 2, poll([3, 1])),
    action(5, 31_000, { Comment: { text: "thirty-one" } }),
    part(60_000, "poll", 3, poll([7, 2])),
    action(6, 61_000, { Comment: { text: "sixty-one" } }),
    part(65_000, "poll", 4, poll([8, 2])),
    action(7, 70_000, { Comment: { text: "seventy" } }),
    part(90_000, "poll", 5, poll([9, 3], "closed")),
  ];
}

/** The worker's answers from `events`; records every request. */
function server(events, { endMs = S + 120_000, refuse = null, missing = [] } = {}) {
  const requests = [];
  const fetch = async (url, init) => {
    const u = new URL(url);
    requests.push({
      path: u.pathname,
      from: +u.searchParams.get("from"),
      to: +u.searchParams.get("to"),
      snapshot: u.searchParams.get("snapshot") !== "false",
      auth: init.headers.authorization,
    });
    if (refuse) {
      return {
        ok: false,
        status: refuse.status,
        json: async () => ({ code: refuse.code, message: "no" }),
      };
    }
    const from = +u.searchParams.get("from");
    const to = +u.searchParams.get("to");
    const parts = new Map();
    let likesTotal = 0;
    for (const e of events) {
      if (e.ts_ms >= from) break;
      if (e.body.part) parts.set(e.body.part.name, e.body.part);
      if (e.body.likes) likesTotal = e.body.likes.total;
    }
    const body = {
      room: "weur-show",
      status: "ended",
      from_ms: from,
      to_ms: to,
      started_ms: S,
      ended_ms: endMs,
      recorded_to_ms: endMs,
      truncated_at_ms: null,
      chunk_ms: 10_000,
      sampled_out: 0,
      snapshot:
        u.searchParams.get("snapshot") === "false"
          ? null
          : { at_ms: from, parts: [...parts.values()], likes: likesTotal },
      events: events.filter((e) => e.ts_ms >= from && e.ts_ms < to),
      ...(missing.length > 0 ? { missing_chunks: missing } : {}),
    };
    return { ok: true, status: 200, json: async () => structuredClone(body) };
  };
  return { fetch, requests };
}

/** Lets every promise under way settle (fetches answered, their windows handed in). */
async function settle() {
  for (let i = 0; i < 20; i++) await new Promise((resolve) => setImmediate(resolve));
}

/** A `<video>` the test moves. */
class ScriptedVideo extends EventTarget {
  constructor() {
    super();
    this.currentTime = 0;
    this.paused = true;
    this.seeking = false;
    this.readyState = 0;
    this.playbackRate = 1;
    this.textTracks = [];
  }
  async playTo(seconds) {
    this.paused = false;
    this.currentTime = seconds;
    this.dispatchEvent(new Event("timeupdate"));
    await settle();
  }
  /** Plays from the current time to `seconds` in timeupdate steps of `stepS` (rate × 0.25 s). */
  async playUntil(seconds, stepS = 0.25) {
    for (let t = this.currentTime + stepS; t <= seconds + 1e-9; t += stepS) await this.playTo(t);
  }
  async seekTo(seconds) {
    this.seeking = true;
    this.currentTime = seconds;
    this.dispatchEvent(new Event("seeking"));
    this.dispatchEvent(new Event("timeupdate")); // ignored while seeking
    this.seeking = false;
    this.dispatchEvent(new Event("seeked"));
    await settle();
  }
}

/** Every event of `types` in order as [type, payload, video seconds then]. */
function record(r, video, ...types) {
  const seen = [];
  for (const type of types)
    r.on(type, (payload) => seen.push([type, structuredClone(payload), video.currentTime]));
  return seen;
}

const ALL = ["comment", "reaction", "gift", "removed", "like", "poll", "state"];

async function open(events = show(), options = {}) {
  const srv = server(events, options);
  const r = await replay({
    url: "http://127.0.0.1:1/",
    room: "weur-show",
    token: "viewer-token",
    fetch: srv.fetch,
  });
  const video = new ScriptedVideo();
  await r.attachPlayer(video);
  return { r, video, srv };
}

test("played through, every event shows once at its moment, with the shapes of a live room", async () => {
  const { r, video, srv } = await open();
  const seen = record(r, video, ...ALL);
  await video.playUntil(100);
  const comments = seen.filter(([t]) => t === "comment");
  assert.deepEqual(
    comments.map(([, c]) => c.seq),
    [1, 4, 5, 6, 7],
  );
  for (const [, c, at] of comments) {
    assert.ok(
      at * 1000 >= c.ts_ms - S && at * 1000 < c.ts_ms - S + 250,
      `comment ${c.seq} at ${at}`,
    );
  }
  assert.deepEqual(comments[0][1], {
    seq: 1,
    ts_ms: S + 1_000,
    user: "u1",
    name: "U1",
    text: "first",
    system: false,
  });
  assert.deepEqual(comments[1][1].system, true);
  assert.deepEqual(seen.find(([t]) => t === "reaction")[1], {
    seq: 2,
    ts_ms: S + 2_000,
    user: "u1",
    name: "U1",
    kind: "🔥",
  });
  assert.deepEqual(seen.find(([t]) => t === "gift")[1], {
    seq: 3,
    ts_ms: S + 4_000,
    user: "u1",
    name: "U1",
    sku: "rose",
    qty: 2,
    amount: 20,
  });
  // The state at the start (no like yet), then the total as it was recorded.
  assert.deepEqual(
    seen.filter(([t]) => t === "like").map(([, l]) => l),
    [{ total: 0 }, { total: 12 }],
  );
  assert.deepEqual(
    seen.filter(([t]) => t === "poll").map(([, p]) => p.tallies),
    [
      [0, 0],
      [3, 1],
      [7, 2],
      [8, 2],
      [9, 3],
    ],
  );
  assert.deepEqual(r.state.parts.poll, poll([9, 3], "closed"));
  assert.equal(r.likes, 12);
  // The bounds first, then aligned minute windows with the viewer token, the second
  // ahead of the playhead and without a snapshot.
  assert.deepEqual(
    srv.requests.map(({ from, to, snapshot }) => [from, to, snapshot]),
    [
      [0, 1, false],
      [S, S + 60_000, true],
      [S + 60_000, S + 120_000, false],
    ],
  );
  assert.ok(
    srv.requests.every(
      (q) => q.path === "/v1/rooms/weur-show/replay" && q.auth === "Bearer viewer-token",
    ),
  );
  r.close();
});

test("a seek to the middle shows the poll with its tallies of that moment, and no burst of older comments", async () => {
  const { r, video } = await open();
  await video.playUntil(1.5);
  const seen = record(r, video, ...ALL);
  await video.seekTo(66);
  assert.deepEqual(
    seen.filter(([t]) => t === "comment" || t === "gift" || t === "reaction"),
    [],
  );
  assert.deepEqual(
    seen.filter(([t]) => t === "poll").map(([, p]) => p.tallies),
    [[8, 2]],
  );
  assert.deepEqual(r.state.parts.poll.tallies, [8, 2]);
  assert.equal(r.serverNow(), S + 66_000, "the moment the video shows");
  assert.equal(r.likes, 12);
  await video.playUntil(71);
  assert.deepEqual(
    seen.filter(([t]) => t === "comment").map(([, c]) => c.seq),
    [7],
  );
  // Back to before the poll: it is gone (null, as a removed part live).
  await video.seekTo(2.5);
  assert.equal(r.state.parts.poll, null);
  assert.deepEqual(seen.at(-1).slice(0, 2), ["poll", null]);
  r.close();
});

test("pausing pauses, and the playback rate is followed", async () => {
  const { r, video } = await open();
  const seen = record(r, video, "comment");
  await video.playUntil(2);
  video.paused = true;
  for (let i = 0; i < 10; i++) {
    video.dispatchEvent(new Event("timeupdate"));
    video.dispatchEvent(new Event("pause"));
  }
  await settle();
  assert.deepEqual(
    seen.map(([, c]) => c.seq),
    [1],
  );
  // Rate 4: each 250 ms timeupdate moves the playhead a second.
  video.playbackRate = 4;
  video.dispatchEvent(new Event("ratechange"));
  await video.playUntil(32, 1);
  assert.deepEqual(
    seen.map(([, c, at]) => [c.seq, at]),
    [
      [1, 1],
      [4, 5],
      [5, 31],
    ],
  );
  r.close();
});

test("a dated stream (EXT-X-PROGRAM-DATE-TIME) places events by its wall clock", async () => {
  const srv = server(show());
  const r = await replay({
    url: "http://127.0.0.1:1",
    room: "weur-show",
    token: "t",
    fetch: srv.fetch,
  });
  const video = new ScriptedVideo();
  video.getStartDate = () => new Date(S + 25_000); // the video starts 25 s into the room
  await r.attachPlayer(video);
  const seen = record(r, video, "comment");
  await video.playUntil(7);
  assert.deepEqual(
    seen.map(([, c, at]) => [c.seq, at]),
    [[5, 6]],
  );
  r.close();
});

test("close() ends it: no event, no fetch afterwards", async () => {
  const { r, video, srv } = await open();
  const seen = record(r, video, ...ALL);
  await video.playUntil(0.5);
  const fetches = srv.requests.length;
  r.close();
  await video.playUntil(80, 1);
  await video.seekTo(30);
  assert.deepEqual(
    seen.filter(([t]) => t === "comment"),
    [],
  );
  assert.equal(srv.requests.length, fetches);
  assert.equal(r.status, "closed");
});

test("a handler that closes the replay stops its loops: nothing throws, nothing more shows", async () => {
  const uncaught = [];
  const onUncaught = (e) => uncaught.push(e);
  process.on("uncaughtException", onUncaught);
  process.on("unhandledRejection", onUncaught);
  try {
    const { r, video } = await open();
    const seen = record(r, video, ...ALL);
    let closedAt = null;
    r.on("comment", () => {
      if (closedAt === null) {
        closedAt = seen.length;
        r.close(); // in the middle of the replay's loop over its core
      }
    });
    await video.playUntil(80, 1);
    await settle();
    assert.ok(closedAt !== null, "a comment showed");
    assert.equal(seen.length, closedAt, "nothing showed after the close");
    assert.equal(r.status, "closed");
  } finally {
    process.off("uncaughtException", onUncaught);
    process.off("unhandledRejection", onUncaught);
  }
  assert.deepEqual(uncaught, [], "nothing thrown into the app");
});

test("close() aborts the window fetch in flight", async () => {
  const srv = server(show());
  let hanging = null;
  const fetch = (url, init) => {
    if (new URL(url).searchParams.get("from") === "0") return srv.fetch(url, init);
    hanging = init.signal;
    return new Promise(() => {}); // never answers
  };
  const r = await replay({ url: "http://127.0.0.1:1", room: "weur-show", token: "t", fetch });
  const video = new ScriptedVideo();
  await r.attachPlayer(video);
  await video.playTo(0.25);
  assert.ok(hanging, "a window fetch is in flight");
  assert.equal(hanging.aborted, false);
  r.close();
  assert.equal(hanging.aborted, true, "close() aborted it");
});

/**
 * A fetch of `srv` whose next `garbled.count` windows (not the bounds' read) have their
 * events replaced by `garble(events)`.
 */
function garbling(srv, garble) {
  const garbled = { count: 0 };
  const fetch = async (url, init) => {
    const answer = await srv.fetch(url, init);
    if (garbled.count > 0 && new URL(url).searchParams.get("from") !== "0") {
      garbled.count -= 1;
      const body = await answer.json();
      return {
        ok: true,
        status: 200,
        json: async () => ({ ...body, events: garble(body.events) }),
      };
    }
    return answer;
  };
  return { fetch, garbled };
}

test("a window that fails halfway keeps none of its entries", async (t) => {
  t.mock.timers.enable({ apis: ["setTimeout", "Date"], now: 1_000_000 });
  // Good entries, then one that does not read.
  const { fetch, garbled } = garbling(server(show()), (events) => [...events, null]);
  const { r, video } = await playWithFirstWindowFailing(fetch, () => (garbled.count = 3));
  for (let i = 0; i < 3; i++) {
    t.mock.timers.tick(2_100);
    await settle();
  }
  await video.playTo(1.5);
  const clean = await open(show());
  await clean.video.playTo(1.5);
  assert.equal(r._payloads.size, clean.r._payloads.size, "no payload of a failed window left");
  r.close();
  clean.r.close();
});

test("a failed fetch is told as an error and asked again after the core's retry time, paused or not", async (t) => {
  t.mock.timers.enable({ apis: ["setTimeout", "Date"], now: 1_000_000 });
  const srv = server(show());
  let failNext = 0;
  const fetch = (url, init) => {
    if (failNext > 0 && new URL(url).searchParams.get("from") !== "0") {
      failNext -= 1;
      return Promise.reject(new Error("offline"));
    }
    return srv.fetch(url, init);
  };
  const r = await replay({ url: "http://127.0.0.1:1", room: "weur-show", token: "t", fetch });
  const video = new ScriptedVideo();
  const errors = [];
  r.on("error", (e) => errors.push(e.code));
  failNext = 1;
  await r.attachPlayer(video);
  await video.playTo(0.25); // its first window's fetch fails
  await video.playTo(1.5);
  video.paused = true;
  assert.deepEqual(errors, ["network"]);
  const seen = record(r, video, "comment", "like");
  t.mock.timers.tick(1_000);
  await settle();
  assert.equal(srv.requests.length, 1, "not before the retry time");
  t.mock.timers.tick(1_100);
  await settle();
  assert.deepEqual(srv.requests.at(-1).from, S);
  // The comment of 1 s, passed 0.5 s before its window came, shows (within
  // CLIENT_REPLAY_LATE_MS_MAX), though the video is paused.
  assert.deepEqual(
    seen.map(([type]) => type),
    ["like", "comment"],
  );
  r.close();
});

test("each window fetch lets go of its listener on the replay's stop signal", async (t) => {
  t.mock.timers.enable({ apis: ["setTimeout", "Date"], now: 1_000_000 });
  // Listeners for `abort` left on signals: a replay retrying in an outage kept one per
  // fetch on its stop signal, for as long as it lived.
  const { addEventListener: add, removeEventListener: remove } = AbortSignal.prototype;
  let live = 0;
  AbortSignal.prototype.addEventListener = function (type, ...rest) {
    if (type === "abort") live += 1;
    return add.call(this, type, ...rest);
  };
  AbortSignal.prototype.removeEventListener = function (type, ...rest) {
    if (type === "abort") live -= 1;
    return remove.call(this, type, ...rest);
  };
  t.after(() => {
    AbortSignal.prototype.addEventListener = add;
    AbortSignal.prototype.removeEventListener = remove;
  });
  const srv = server(show());
  let failed = 0;
  const fetch = (url, init) => {
    if (new URL(url).searchParams.get("from") !== "0") {
      failed += 1;
      return Promise.reject(new Error("offline"));
    }
    return srv.fetch(url, init);
  };
  const r = await replay({ url: "http://127.0.0.1:1", room: "weur-show", token: "t", fetch });
  r.on("error", () => {});
  const video = new ScriptedVideo();
  await r.attachPlayer(video);
  await video.playTo(0.25);
  for (let i = 0; i < 20; i += 1) {
    t.mock.timers.tick(2_100);
    await settle();
  }
  assert.ok(failed >= 10, `${failed} fetches failed`);
  assert.ok(live <= 1, `${live} abort listeners left after ${failed} fetches`);
  r.close();
});

test("a window fetch that never answers fails as timeout and is asked again", async (t) => {
  t.mock.timers.enable({ apis: ["setTimeout", "Date"], now: 1_000_000 });
  const srv = server(show());
  let hang = 0;
  let aborted = 0;
  const fetch = (url, init) => {
    if (hang > 0 && new URL(url).searchParams.get("from") !== "0") {
      hang -= 1;
      init.signal?.addEventListener("abort", () => (aborted += 1));
      return new Promise(() => {}); // never answers
    }
    return srv.fetch(url, init);
  };
  const { r, video, errors } = await playWithFirstWindowFailing(fetch, () => (hang = 1));
  assert.deepEqual(errors, []);
  t.mock.timers.tick(9_999);
  await settle();
  assert.deepEqual(errors, [], "not before the fetch timeout");
  t.mock.timers.tick(1);
  await settle();
  assert.deepEqual(errors, ["timeout"]);
  assert.equal(aborted, 1, "the hung request is aborted");
  await assertAskedAgainAndPlayed(t, r, video);
});

/** Opens a replay on `fetch`, arms its failure (`fail`), and plays into the first window. */
async function playWithFirstWindowFailing(fetch, fail) {
  const r = await replay({ url: "http://127.0.0.1:1", room: "weur-show", token: "t", fetch });
  const video = new ScriptedVideo();
  const errors = [];
  r.on("error", (e) => errors.push(e.code));
  fail();
  await r.attachPlayer(video);
  await video.playTo(0.25);
  return { r, video, errors };
}

/** After the core's retry time the window is asked again, and its comment plays. */
async function assertAskedAgainAndPlayed(t, r, video) {
  const seen = record(r, video, "comment");
  t.mock.timers.tick(2_100);
  await settle();
  await video.playTo(1.5);
  assert.deepEqual(
    seen.map(([type]) => type),
    ["comment"],
    "asked again, and played",
  );
  r.close();
}

test("a window whose entries do not read is told as bad_response and asked again", async (t) => {
  t.mock.timers.enable({ apis: ["setTimeout", "Date"], now: 1_000_000 });
  const { fetch, garbled } = garbling(server(show()), () => [null]);
  const { r, video, errors } = await playWithFirstWindowFailing(fetch, () => (garbled.count = 1));
  assert.deepEqual(errors, ["bad_response"]);
  await assertAskedAgainAndPlayed(t, r, video);
});

test("a refusal no retry changes is told once and stops the fetches", async (t) => {
  t.mock.timers.enable({ apis: ["setTimeout", "Date"], now: 1_000_000 });
  const srv = server(show());
  const expired = server([], { refuse: { status: 401, code: "token_expired" } });
  let refuse = false;
  const fetch = (url, init) => (refuse ? expired.fetch(url, init) : srv.fetch(url, init));
  const { r, video, errors } = await playWithFirstWindowFailing(fetch, () => (refuse = true));
  for (let i = 0; i < 10; i++) {
    t.mock.timers.tick(2_100);
    await settle();
    await video.playTo(0.5 + i);
  }
  assert.deepEqual(errors, ["token_expired"]);
  assert.equal(expired.requests.length, 1, "not asked again");
  assert.equal(r.status, "refused", "the replay says it fetches no more");
  r.close();
  assert.equal(r.status, "closed");
  // An `error` handler that closes the replay at the refusal leaves it closed.
  refuse = false;
  const closing = await replay({ url: "http://127.0.0.1:1", room: "weur-show", token: "t", fetch });
  closing.on("error", () => closing.close());
  refuse = true;
  const player = new ScriptedVideo();
  await closing.attachPlayer(player);
  await player.playTo(0.25);
  await settle();
  assert.equal(expired.requests.length, 2, "the closing replay was refused");
  assert.equal(closing.status, "closed");
});

test("a window the store could not complete is played as far as it goes and told as replay_incomplete", async () => {
  const { r, video } = await open(show(), { missing: [0] });
  const errors = [];
  r.on("error", (e) => errors.push(e.code));
  const seen = record(r, video, "comment");
  await video.playUntil(5);
  assert.ok(errors.includes("replay_incomplete"), `errors: ${errors}`);
  assert.ok(seen.length > 0, "what the window holds still plays");
  r.close();
});

test("refusals: bad options, the server's code, unknown event types", async () => {
  await assert.rejects(
    replay({ url: "http://x", room: "", token: "t" }),
    (e) => e instanceof OvationError && e.code === "invalid_options",
  );
  const refusing = server([], { refuse: { status: 403, code: "token_wrong_room" } });
  await assert.rejects(
    replay({ url: "http://x", room: "weur-a", token: "t", fetch: refusing.fetch }),
    (e) => e instanceof OvationError && e.code === "token_wrong_room",
  );
  const { r } = await open();
  assert.throws(
    () => r.on("nope", () => {}),
    (e) => e.code === "invalid_event",
  );
  await assert.rejects(r.attachPlayer(null), (e) => e.code === "invalid_options");
  r.close();
});
