// Node tests of the packed `ovation` tarball against the real worker under wrangler dev.
// Run by tests/tests/sdk_node.rs, which starts the servers, installs the tarball next to
// a copy of this file and passes: OVATION_URL, OVATION_URL_SHORT_LIFETIME (connections
// get GoAway and are closed after ~2 s), OVATION_TOKENS (JSON: role/user → JWT).

import { test, afterEach } from "node:test";
import assert from "node:assert/strict";
import WebSocket from "ws";
import { connect, OvationError } from "ovation";

const URL_MAIN = process.env.OVATION_URL;
const URL_SHORT = process.env.OVATION_URL_SHORT_LIFETIME;
const TOKENS = JSON.parse(process.env.OVATION_TOKENS || "{}");
assert.ok(URL_MAIN && URL_SHORT && TOKENS.admin, "run through `cargo xtask test`");

let counter = 0;
async function createRoom(url) {
  const room = `weur-sdk${Date.now() % 1e9}${counter++}`;
  const resp = await fetch(`${url}/v1/rooms`, {
    method: "POST",
    headers: { authorization: `Bearer ${TOKENS.admin}`, "content-type": "application/json" },
    body: JSON.stringify({ room, host: "host", title: "sdk test" }),
  });
  assert.equal(resp.status, 201, await resp.text());
  return room;
}

async function setPart(url, room, name, value) {
  const resp = await fetch(`${url}/v1/rooms/${room}/parts/${name}`, {
    method: "PUT",
    headers: { authorization: `Bearer ${TOKENS.admin}`, "content-type": "application/json" },
    body: JSON.stringify(value),
  });
  assert.equal(resp.status, 200, await resp.text());
}

// Every room a test joined is closed after it, even when an assertion failed midway
// (an open socket would keep node running).
const joined = [];
afterEach(() => {
  for (const room of joined.splice(0)) room.close();
});

async function join(url, room, who, extra = {}) {
  const joinedRoom = await connect({ url, room, token: TOKENS[who], WebSocket, ...extra });
  joined.push(joinedRoom);
  return joinedRoom;
}

/** Resolves with the first event of `type` that satisfies `pred`. */
function next(room, type, pred = () => true, timeoutMs = 10000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error(`no ${type} event within ${timeoutMs} ms`));
    }, timeoutMs);
    const off = room.on(type, (e) => {
      if (pred(e)) {
        clearTimeout(timer);
        off();
        resolve(e);
      }
    });
  });
}

function collect(room, type) {
  const seen = [];
  room.on(type, (e) => seen.push(e));
  return seen;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Waits until `pred()` holds (events may arrive before a promise is awaited). */
async function until(pred, what, timeoutMs = 10000) {
  const deadline = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

test("comments reach their own room only, once, with the sender's seq", async () => {
  const [a, b] = [await createRoom(URL_MAIN), await createRoom(URL_MAIN)];
  const ana = await join(URL_MAIN, a, "ana");
  const bob = await join(URL_MAIN, a, "bob");
  const cy = await join(URL_MAIN, b, "cy");
  assert.equal(ana.status, "open");
  assert.equal(ana.transport, "ws");
  const bobSees = collect(bob, "comment");
  const cySees = collect(cy, "comment");
  const { seq } = await ana.comment("hello from ana");
  assert.ok(seq >= 1);
  await until(() => bobSees.some((c) => c.seq === seq), "bob to hear the comment");
  // A second comment is the sentinel: frames reach a socket in order, so a duplicate of
  // the first would have come before it (no waiting on the clock for an absence).
  const { seq: after } = await ana.comment("sentinel");
  await until(() => bobSees.some((c) => c.seq === after), "bob to hear the sentinel");
  assert.deepEqual(
    bobSees.map((c) => [c.seq, c.user, c.text, c.system]),
    [
      [seq, "ana", "hello from ana", false],
      [after, "ana", "sentinel", false],
    ],
  );
  assert.deepEqual(cySees, [], "room b heard nothing from room a");
  await assert.rejects(
    ana.comment("x".repeat(501)),
    (e) => e instanceof OvationError && e.code === "too_long",
  );
  for (const r of [ana, bob, cy]) r.close();
});

test("a refused gift names its id, so a retry is the same gift", async () => {
  // No settlement service here: gifts are off, so the room shows no prices and refuses
  // every gift for good (`not_found`), never `unavailable`, which asks for a retry.
  const room = await createRoom(URL_MAIN);
  const ana = await join(URL_MAIN, room, "ana");
  assert.deepEqual(ana.state.parts.room?.gifts, {}, "no prices shown");
  const first = await ana.gift("rose").then(
    () => assert.fail("refused without a settlement service"),
    (e) => e,
  );
  assert.ok(first instanceof OvationError && first.code === "not_found", String(first));
  assert.match(first.message, /no gifts are sold/);
  assert.match(first.giftId, /^g-/);
  await assert.rejects(
    ana.gift("rose", 1, { id: first.giftId }),
    (e) => e.code === "not_found" && e.giftId === first.giftId,
  );
  // A quantity the wasm's 32-bit argument would wrap (2^32 + 5 into 5) or truncate (1.9
  // into 1) is refused before anything is sent: never a charge of another quantity.
  for (const qty of [2 ** 32 + 5, 1.9, 0, -4294967295, "3"]) {
    await assert.rejects(ana.gift("rose", qty), (e) => e.code === "invalid", String(qty));
  }
  assert.throws(
    () => ana.like(2 ** 32 + 1),
    (e) => e.code === "invalid",
  );
  ana.close();
});

test("likes are coalesced and counted; online counts people", async () => {
  const room = await createRoom(URL_MAIN);
  const ana = await join(URL_MAIN, room, "ana");
  const bob = await join(URL_MAIN, room, "bob");
  if (ana.online !== 2) await next(ana, "online", (o) => o.count === 2);
  for (let i = 0; i < 7; i++) bob.like();
  await next(ana, "like", (l) => l.total === 7);
  ana.close();
  bob.close();
});

test("direct messages reach only their target", async () => {
  const room = await createRoom(URL_MAIN);
  const host = await join(URL_MAIN, room, "host");
  const ana = await join(URL_MAIN, room, "ana");
  const bob = await join(URL_MAIN, room, "bob");
  const bobDirects = collect(bob, "direct");
  const got = next(ana, "direct");
  await host.direct("ana", { prize: "you won" });
  const direct = await got;
  assert.equal(direct.from, "host");
  assert.deepEqual(direct.payload, { prize: "you won" });
  // Bob's own direct is the sentinel: had ana's reached him, it would have come first.
  await host.direct("bob", { sentinel: true });
  await until(() => bobDirects.length > 0, "bob's own direct");
  assert.deepEqual(
    bobDirects.map((d) => d.payload),
    [{ sentinel: true }],
  );
  // Viewers may not send peer messages.
  await assert.rejects(bob.direct("ana", {}), (e) => e.code === "forbidden");
  for (const r of [host, ana, bob]) r.close();
});

test("state parts arrive as room.state and interaction events", async () => {
  const room = await createRoom(URL_MAIN);
  await setPart(URL_MAIN, room, "pinned", { text: "before join" });
  const ana = await join(URL_MAIN, room, "ana");
  assert.deepEqual(ana.state.parts.pinned, { text: "before join" });
  const state = next(ana, "state", (s) => s.parts.pinned && s.parts.pinned.text === "after join");
  await setPart(URL_MAIN, room, "pinned", { text: "after join" });
  await state;
  assert.ok(ana.state.version >= 2);
  // Interaction parts belong to the room (quiz events come from real quizzes, below).
  const resp = await fetch(`${URL_MAIN}/v1/rooms/${room}/parts/quiz`, {
    method: "PUT",
    headers: { authorization: `Bearer ${TOKENS.admin}`, "content-type": "application/json" },
    body: JSON.stringify({ question: "red or blue?" }),
  });
  assert.equal(resp.status, 400);
  assert.equal((await resp.json()).code, "reserved_part");
  ana.close();
});

async function admin(url, path, body) {
  const resp = await fetch(`${url}${path}`, {
    method: "POST",
    headers: { authorization: `Bearer ${TOKENS.admin}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  return { status: resp.status, body: await resp.json() };
}

test("a poll: opened by the admin API, voted once per user, revealed with exact tallies", async () => {
  const room = await createRoom(URL_MAIN);
  const ana = await join(URL_MAIN, room, "ana");
  const bob = await join(URL_MAIN, room, "bob");
  const opened = next(ana, "poll", (p) => p.phase === "open");
  const created = await admin(URL_MAIN, `/v1/rooms/${room}/polls`, {
    question: "Who wins?",
    options: ["red", "blue", "green"],
    window_ms: 60000,
  });
  assert.equal(created.status, 200, JSON.stringify(created.body));
  const poll = await opened;
  assert.equal(poll.id, created.body.id);
  assert.deepEqual(poll.options, ["red", "blue", "green"]);
  assert.equal(poll.tallies, undefined, "tallies are for hosts until revealed");
  const again = await admin(URL_MAIN, `/v1/rooms/${room}/polls`, {
    question: "Another?",
    options: ["a", "b"],
  });
  assert.equal(again.status, 409);
  assert.equal(again.body.code, "poll_open");
  const bad = await admin(URL_MAIN, `/v1/rooms/${room}/polls`, { question: "?", options: ["one"] });
  assert.equal(bad.status, 400);
  assert.equal(bad.body.code, "invalid_poll");

  await ana.vote(poll.id, 1);
  await ana.vote(poll.id, 2); // acknowledged, not counted
  await bob.vote(poll.id, 1);
  await assert.rejects(bob.vote(poll.id, 7), (e) => e.code === "invalid");
  // Numbers the wasm's 32-bit argument would wrap or truncate into another option (2^32 + 2
  // into 2, 2.5 into 2, a missing option into 0) are refused before anything is sent.
  for (const option of [2 ** 32 + 2, 2.5, -1, undefined, "2", NaN]) {
    await assert.rejects(bob.vote(poll.id, option), (e) => e.code === "invalid", String(option));
  }
  await assert.rejects(bob.vote("p999", 0), (e) => e.code === "not_found");

  const result = next(bob, "poll", (p) => p.phase === "result");
  const closed = await admin(URL_MAIN, `/v1/rooms/${room}/polls/${poll.id}/close`, {});
  assert.equal(closed.status, 200, JSON.stringify(closed.body));
  assert.deepEqual(closed.body.tallies, [0, 2, 0]);
  const revealed = await result;
  assert.deepEqual(revealed.tallies, [0, 2, 0]);
  assert.equal(revealed.votes, 2);
  // A first vote after the close is refused; a repeat of a counted one is acknowledged
  // (it is usually a retry whose acknowledgement was lost), and still not counted.
  const cy = await join(URL_MAIN, room, "cy");
  await assert.rejects(cy.vote(poll.id, 0), (e) => e.code === "poll_closed");
  await ana.vote(poll.id, 0);
  cy.close();
  const missing = await admin(URL_MAIN, `/v1/rooms/${room}/polls/p999/close`, {});
  assert.equal(missing.status, 404);
  ana.close();
  bob.close();
});

test("a quiz, Q&A and a product card: staff commands over the socket, viewers answer, ask, upvote, click", async () => {
  const room = await createRoom(URL_MAIN);
  const host = await join(URL_MAIN, room, "host");
  const ana = await join(URL_MAIN, room, "ana");
  const bob = await join(URL_MAIN, room, "bob");
  const hostNotices = collect(host, "direct");
  const anaNotices = collect(ana, "direct");

  // The host runs a quiz from its socket; ana answers right, bob wrong.
  const asked = next(ana, "quiz", (q) => q.phase === "open");
  await host.command({
    command: "create_quiz",
    spec: {
      title: "Trivia",
      questions: [{ question: "2+2?", options: ["3", "4"], correct: 1, window_ms: 60000 }],
    },
  });
  await host.command({ command: "next_question", id: "z1" });
  const quiz = await asked;
  assert.equal(quiz.question.text, "2+2?");
  assert.equal(quiz.question.correct, undefined, "secret while open");
  await ana.answer(quiz.id, quiz.question.index, 1);
  await ana.answer(quiz.id, quiz.question.index, 0); // a repeat: resolves, not counted
  await bob.answer(quiz.id, quiz.question.index, 0);
  await assert.rejects(ana.answer(quiz.id, 5, 0), (e) => e.code === "poll_closed");
  const scored = next(ana, "quiz", (q) => q.phase === "result");
  await host.command({ command: "close_question", id: quiz.id });
  const result = await scored;
  assert.equal(result.question.correct, 1);
  assert.deepEqual(result.question.tallies, [1, 1]);
  assert.deepEqual(
    result.leaderboard.map((e) => e.user),
    ["ana", "bob"],
  );
  await until(() => anaNotices.some((d) => d.payload.type === "quiz_score"), "ana's score");
  const score = anaNotices.find((d) => d.payload.type === "quiz_score").payload;
  assert.equal(score.rank, 1);
  assert.equal(score.correct, true);

  // Q&A: ask, upvote once.
  const listed = next(bob, "qa", (qa) => qa.count === 1);
  await ana.ask("Which sizes?");
  const qa = await listed;
  const id = qa.questions[0].id;
  assert.equal(qa.questions[0].text, "Which sizes?");
  const upvoted = next(ana, "qa", (q) => q.questions[0].upvotes === 1);
  await bob.upvote(id);
  await bob.upvote(id); // once per user
  await upvoted;
  await assert.rejects(bob.upvote("a999"), (e) => e.code === "not_found");

  // A product card: pinned by the host, clicked by ana, totals to the host only.
  const pinned = next(ana, "product", (p) => p.pinned && p.pinned.id === "red-1");
  await host.command({
    command: "pin_product",
    product: {
      id: "red-1",
      title: "Red sneakers",
      price: "€89",
      image_url: "https://example.com/red.jpg",
      link: "shop://item/red",
    },
  });
  const card = (await pinned).pinned;
  assert.equal(card.link, "shop://item/red");
  await ana.productClick(card.id);
  await until(
    () =>
      hostNotices.some(
        (d) => d.payload.type === "product_clicks" && d.payload.clicks["red-1"] === 1,
      ),
    "the host's click totals",
  );
  assert.ok(!anaNotices.some((d) => d.payload.type === "product_clicks"));

  // Viewers cannot command.
  await assert.rejects(ana.command({ command: "unpin_product" }), (e) => e.code === "forbidden");
  for (const r of [host, ana, bob]) r.close();
});

test("moderation: a muted viewer is told and refused, removals are told, a ban closes for good", async () => {
  const room = await createRoom(URL_MAIN);
  const mo = await join(URL_MAIN, room, "mo");
  const ana = await join(URL_MAIN, room, "ana");
  const bob = await join(URL_MAIN, room, "bob");
  const told = next(bob, "direct", (d) => d.payload.type === "muted");
  await mo.command({ command: "mute", user: "bob" });
  await told;
  await assert.rejects(bob.comment("hello?"), (e) => e.code === "muted");
  const { seq } = await ana.comment("oops");
  const removed = next(bob, "removed", (r) => r.seq === seq);
  await mo.command({ command: "delete_comment", seq });
  assert.equal((await removed).by, "mo");
  const banned = next(bob, "error", (e) => e.code === "banned");
  await mo.command({ command: "ban", user: "bob" });
  await banned;
  await until(() => bob.status === "closed", "bob closed for good");
  await sleep(1500);
  assert.equal(bob.status, "closed", "no reconnect");
  await assert.rejects(mo.command({ command: "ban", user: "host" }), (e) => e.code === "invalid");
  for (const r of [mo, ana]) r.close();
});

test("after the server drops sockets the SDK reconnects, resumes and misses nothing", async () => {
  const room = await createRoom(URL_SHORT);
  const ana = await join(URL_SHORT, room, "ana");
  const bob = await join(URL_SHORT, room, "bob");
  const statuses = collect(ana, "status");
  const seen = collect(ana, "comment");
  const sent = [];
  // Comments across several connection lifetimes (each ~2 s, then GoAway and close).
  const commentingUntil = Date.now() + 7000;
  let n = 0;
  while (Date.now() < commentingUntil) {
    try {
      const { seq } = await bob.comment(`c${n++}`);
      sent.push(seq);
    } catch (e) {
      if (e.code !== "rate_limited") throw e;
    }
    await sleep(1100);
  }
  // Ana is between two of her ~2 s connections now and then: wait until she is open
  // with every comment seen (a comment missed for good never arrives).
  await until(
    () => ana.status === "open" && sent.every((seq) => seen.some((c) => c.seq === seq)),
    "ana open with every comment",
  );
  // A comment delivered twice would come with or right after the missed ones.
  await sleep(500);
  assert.ok(
    statuses.some((s) => s.status === "reconnecting"),
    "the server ended connections",
  );
  const seqs = seen.map((c) => c.seq);
  assert.equal(new Set(seqs).size, seqs.length, "no comment twice");
  for (const seq of sent) assert.ok(seqs.includes(seq), `comment ${seq} missed`);
  ana.close();
  bob.close();
});

test("a closed room is let go: nothing of the SDK keeps it alive", async () => {
  // The session's wasm state held the room's event handler, which holds the room, which
  // holds the session: a cycle through a wasm root, never collected, so every room a
  // page ever joined stayed in memory with its handlers and state.
  const { setFlagsFromString } = await import("node:v8");
  const { runInNewContext } = await import("node:vm");
  setFlagsFromString("--expose-gc");
  const gc = runInNewContext("gc");
  const name = await createRoom(URL_MAIN);
  let collected = false;
  const registry = new FinalizationRegistry(() => {
    collected = true;
  });
  await (async () => {
    const room = await connect({ url: URL_MAIN, room: name, token: TOKENS.ana, WebSocket });
    registry.register(room, "room");
    const closed = next(room, "status", (s) => s.status === "closed");
    room.close();
    await closed;
    // Likes after the close are still told as dropped, by the JavaScript now.
    const dropped = next(room, "likes_dropped");
    assert.equal(room.like(3), 0);
    assert.deepEqual(await dropped, {
      count: 3,
      code: "closed",
      message: "the room connection is closed",
    });
  })();
  for (let i = 0; i < 100 && !collected; i++) {
    gc();
    await sleep(20);
  }
  assert.ok(collected, "the closed room was never collected");
});

test("an action whose send closes the session at once still settles its promise", async () => {
  // A webview's bridge may call a socket's handlers inside `send`: here the send of a
  // comment is answered, before it returns, by the server's close for a ban. The
  // comment's end was told before the JavaScript knew its id, found no promise, and was
  // lost: the promise never settled.
  const room = await createRoom(URL_MAIN);
  class Bridged extends WebSocket {
    static closeInsideNextSend = false;
    send(data) {
      if (Bridged.closeInsideNextSend) {
        Bridged.closeInsideNextSend = false;
        this.onclose?.({ code: 4403, reason: "banned" });
        this.terminate(); // the connection under it goes too, as after a real close
        return;
      }
      super.send(data);
    }
  }
  const viewer = await join(URL_MAIN, room, "cy", { WebSocket: Bridged });
  // An app whose error handler acts in turn (told during the comment's start, before
  // the comment's end): the nested start must not lose the outer one's end.
  let nested = null;
  viewer.on("error", () => {
    nested ??= viewer.comment("said from the error handler").then(
      () => "resolved",
      (e) => e.code,
    );
  });
  Bridged.closeInsideNextSend = true;
  const settled = await Promise.race([
    viewer.comment("said as the ban lands").then(
      () => "resolved",
      (e) => e.code,
    ),
    sleep(5000).then(() => "never settled"),
  ]);
  // Rejected: sent, then the session closed (`closed`: it may have been applied).
  assert.ok(!["never settled", "resolved"].includes(settled), settled);
  assert.ok(nested, "the error handler ran");
  assert.notEqual(await nested, "resolved");
});

test("the pull transport follows the room end to end", async () => {
  const room = await createRoom(URL_MAIN);
  await setPart(URL_MAIN, room, "pinned", { text: "hi pull" });
  const viewer = await join(URL_MAIN, room, "cy", { transport: "pull" });
  assert.equal(viewer.transport, "pull");
  assert.deepEqual(viewer.state.parts.pinned, { text: "hi pull" });
  const bob = await join(URL_MAIN, room, "bob");
  const heard = next(viewer, "comment", (c) => c.text === "over the socket");
  const { seq } = await bob.comment("over the socket");
  assert.equal((await heard).seq, seq);
  const part = next(viewer, "state", (s) => s.parts.pinned && s.parts.pinned.text === "changed");
  await setPart(URL_MAIN, room, "pinned", { text: "changed" });
  await part;
  await assert.rejects(viewer.comment("no"), (e) => e.code === "unsupported_transport");
  // The events answers carry the server time: pull samples the clock too.
  await until(() => viewer.clockOffset() !== null, "a pull clock sample");
  assert.ok(Math.abs(viewer.clockOffset()) < 1000, `offset ${viewer.clockOffset()}`);
  viewer.close();
  bob.close();
});

test("on a network that strips WebSocket upgrades, auto reads over pull", async () => {
  // Every upgrade fails with a bare 1006 while HTTPS gets through, so each failure's state
  // request finds the room live: the SDK forgave each as the Worker's connect rate and
  // never tried pull; connect() timed out. Now so many in a row switch it to pull.
  const room = await createRoom(URL_MAIN);
  class Stripped extends WebSocket {
    constructor(url, protocols) {
      super(url.replace(/^ws:\/\/[^/]+/, "ws://127.0.0.1:1"), protocols);
    }
  }
  const viewer = await join(URL_MAIN, room, "cy", { WebSocket: Stripped, timeoutMs: 40000 });
  assert.equal(viewer.transport, "pull");
  const bob = await join(URL_MAIN, room, "bob");
  const heard = next(viewer, "comment", (c) => c.text === "through the proxy");
  const { seq } = await bob.comment("through the proxy");
  assert.equal((await heard).seq, seq);
});

test("over pull, a part that moved on while it was read arrives at its newest version", async () => {
  // The room keeps only a part's newest value: a read of the version the state named,
  // after the part moved on, is answered with the newest value and its version in
  // `x-ovation-part-version`. Before, it was 404, and a part changing faster than a round
  // trip (a poll's live tallies) never reached pull viewers. Here the part moves on as
  // its first read leaves; the viewer gets the newest value, labelled with its version:
  // it does not read the part again.
  const room = await createRoom(URL_MAIN);
  await setPart(URL_MAIN, room, "board", { n: 1 });
  const realFetch = globalThis.fetch;
  const reads = { board: 0, events: 0 };
  globalThis.fetch = async (url, init) => {
    const path = String(url);
    if (path.includes("/parts/board?")) {
      reads.board += 1;
      if (reads.board === 1) await setPart(URL_MAIN, room, "board", { n: 2 });
    }
    if (path.includes("/events?")) reads.events += 1;
    return realFetch(url, init);
  };
  try {
    const viewer = await join(URL_MAIN, room, "cy", { transport: "pull" });
    assert.deepEqual(viewer.state.parts.board, { n: 2 }, "the newest value");
    // Two reads of the events later (each names the room's version), no second read of
    // the part: the client holds the version the answer named.
    const after = reads.events;
    await until(() => reads.events >= after + 2, "two events reads");
    assert.equal(reads.board, 1, "the part read again: its version was not taken");
    assert.deepEqual(viewer.state.parts.board, { n: 2 });
    viewer.close();
  } finally {
    globalThis.fetch = realFetch;
  }
});

test("a refused token rejects connect with a stable code", async () => {
  const room = await createRoom(URL_MAIN);
  await assert.rejects(
    connect({ url: URL_MAIN, room, token: "not-a-jwt", WebSocket, timeoutMs: 20000 }),
    (e) => e instanceof OvationError && typeof e.code === "string" && e.code !== "connect_timeout",
  );
  await assert.rejects(
    connect({ url: URL_MAIN, room: "", token: "x" }),
    (e) => e.code === "invalid_options",
  );
  // A timeout a timer cannot hold would fire at once (a connect_timeout that lies).
  for (const timeoutMs of [2 ** 31, Infinity, 0, -1, 1.5, "30s"]) {
    await assert.rejects(
      connect({ url: URL_MAIN, room, token: TOKENS.ana, WebSocket, timeoutMs }),
      (e) => e.code === "invalid_options",
      String(timeoutMs),
    );
  }
  await assert.rejects(
    connect({ url: URL_MAIN, room: "nowhere", token: TOKENS.ana, WebSocket }),
    (e) => e.code === "invalid_room",
  );
});

test("serverNow follows the server clock", async () => {
  const room = await createRoom(URL_MAIN);
  const ana = await join(URL_MAIN, room, "ana");
  // Measured, not defaulted: serverNow falls back to the local clock without samples.
  await until(() => typeof ana.clockOffset() === "number", "a ping sample");
  const offset = ana.clockOffset();
  assert.equal(typeof offset, "number", "pings were answered and sampled");
  // Same machine: the offset is near zero, within the sampling noise (up to half a
  // ping's round trip, which a loaded machine stretches).
  assert.ok(Math.abs(offset) < 200, `offset ${offset}`);
  assert.ok(Math.abs(ana.serverNow() - (Date.now() + offset)) < 20);
  ana.close();
});
