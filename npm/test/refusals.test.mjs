// What a user relies on when the server says no, and for likes: against the real worker
// under wrangler dev (run by tests/tests/sdk_node.rs, see sdk.test.mjs for the
// environment it passes).
//
// * A refused connect rejects at once (well within 2 s) with the server's code, on every
//   transport, and never as `connect_timeout`: expired token, a token for another room,
//   a token signed with the wrong key, a viewer of another tenant, an ended room, a
//   banned user.
// * The SDK never raises an uncaught exception (a connect that times out while its
//   socket is still connecting made `ws` emit an `error` nobody listened to).
// * An ended room ends a pull session as it ends a WebSocket one.
// * A user over the per-user socket cap is told (`too_many_sockets`), not timed out.
// * Ten viewers times fifty quick likes: the room counts exactly 500.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import WebSocket from "ws";
import { connect, OvationError } from "ovation";

const URL_MAIN = process.env.OVATION_URL;
const TOKENS = JSON.parse(process.env.OVATION_TOKENS || "{}");
assert.ok(URL_MAIN && TOKENS.admin && TOKENS.refused, "run through `cargo xtask test`");

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Every uncaught exception while these tests run fails them.
const uncaught = [];
const onUncaught = (e) => uncaught.push(e);
before(() => process.on("uncaughtException", onUncaught));
after(() => process.off("uncaughtException", onUncaught));

let counter = 0;
async function createRoom() {
  const room = `weur-ref${Date.now() % 1e9}${counter++}`;
  const resp = await fetch(`${URL_MAIN}/v1/rooms`, {
    method: "POST",
    headers: { authorization: `Bearer ${TOKENS.admin}`, "content-type": "application/json" },
    body: JSON.stringify({ room, host: "host", title: "refusals" }),
  });
  assert.equal(resp.status, 201, await resp.text());
  return room;
}

async function endRoom(room) {
  const resp = await fetch(`${URL_MAIN}/v1/rooms/${room}/end`, {
    method: "POST",
    headers: { authorization: `Bearer ${TOKENS.admin}`, "content-type": "application/json" },
    body: "{}",
  });
  assert.equal(resp.status, 200, await resp.text());
}

async function roomLikes(room) {
  const resp = await fetch(`${URL_MAIN}/v1/rooms/${room}/state`, {
    headers: { authorization: `Bearer ${TOKENS.admin}` },
  });
  assert.equal(resp.status, 200);
  return (await resp.json()).likes;
}

/** Connects and expects a refusal with `code` within 2 s. */
async function expectRefused(room, token, transport, code) {
  const started = Date.now();
  let error = null;
  try {
    const joined = await connect({
      url: URL_MAIN,
      room,
      token,
      transport,
      WebSocket,
      timeoutMs: 15000,
    });
    joined.close();
  } catch (e) {
    error = e;
  }
  const tookMs = Date.now() - started;
  const what = `${transport} ${code}`;
  assert.ok(error, `${what}: connect resolved`);
  assert.ok(error instanceof OvationError, `${what}: ${error}`);
  assert.equal(error.code, code, `${what}: ${error.message}`);
  assert.ok(tookMs < 2000, `${what}: rejected after ${tookMs} ms`);
}

test("a refused connect rejects within 2 s with the server's code, on every transport", async () => {
  const live = await createRoom();
  const ended = await createRoom();
  await endRoom(ended);
  // A room that banned ana: no transport lets her in (pull too, which once did).
  const banning = await createRoom();
  const ban = await fetch(`${URL_MAIN}/v1/rooms/${banning}/moderation`, {
    method: "POST",
    headers: { authorization: `Bearer ${TOKENS.admin}`, "content-type": "application/json" },
    body: JSON.stringify({ command: "ban", user: "ana" }),
  });
  assert.equal(ban.status, 200, await ban.text());
  const cases = [
    [banning, TOKENS.ana, "banned"],
    [live, TOKENS.refused.expired, "token_expired"],
    [live, TOKENS.refused.wrong_room, "token_wrong_room"],
    [live, TOKENS.refused.wrong_key, "token_invalid_signature"],
    // Another tenant's viewer: the dev tenant's room does not exist for that tenant.
    [live, TOKENS.refused.other_tenant, "room_not_found"],
    [ended, TOKENS.ana, "room_ended"],
  ];
  for (const transport of ["ws", "auto", "pull"]) {
    for (const [room, token, code] of cases) {
      await expectRefused(room, token, transport, code);
    }
  }
  await sleep(300); // late socket events of the refused connects
  assert.deepEqual(uncaught, []);
});

test("a user over the socket cap is told at once, and the sockets already open keep working", async () => {
  const room = await createRoom();
  const tabs = [];
  try {
    // USER_SOCKETS_PER_ROOM_MAX (5) tabs of one user, then one more.
    for (let i = 0; i < 5; i++) {
      tabs.push(await connect({ url: URL_MAIN, room, token: TOKENS.bob, WebSocket }));
    }
    const started = Date.now();
    await assert.rejects(
      connect({ url: URL_MAIN, room, token: TOKENS.bob, WebSocket, timeoutMs: 15000 }),
      (e) => e instanceof OvationError && e.code === "too_many_sockets",
    );
    assert.ok(Date.now() - started < 2000, `rejected after ${Date.now() - started} ms`);
    const { seq } = await tabs[0].comment("still here");
    assert.ok(seq >= 1);
  } finally {
    for (const tab of tabs) tab.close();
  }
});

test("a connect that times out while its socket is connecting raises nothing uncaught", async () => {
  const room = await createRoom();
  for (let i = 0; i < 5; i++) {
    await assert.rejects(
      connect({ url: URL_MAIN, room, token: TOKENS.ana, WebSocket, transport: "ws", timeoutMs: 1 }),
      (e) => e instanceof OvationError && e.code === "connect_timeout",
    );
  }
  await sleep(500);
  assert.deepEqual(uncaught.map(String), []);
});

test("a server answering 503 with its code: connect() rejects with that code on every transport", async () => {
  // A worker without tenant keys answers every request 503 `auth_not_configured`; a
  // retry may change that (the keys may come), so the SDK keeps trying until its
  // timeout, and then says what the server said, not `connect_timeout`.
  let answered = 0;
  const server = http.createServer((req, res) => {
    answered++;
    res.writeHead(503, { "content-type": "application/json" });
    res.end(JSON.stringify({ code: "auth_not_configured", message: "no keys for tenant" }));
  });
  server.on("upgrade", (req, socket) => {
    answered++;
    const body = JSON.stringify({ code: "auth_not_configured", message: "no keys" });
    socket.end(
      `HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n` +
        `content-length: ${body.length}\r\n\r\n${body}`,
    );
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  const url = `http://127.0.0.1:${server.address().port}`;
  try {
    for (const transport of ["ws", "auto", "pull"]) {
      const started = Date.now();
      await assert.rejects(
        connect({
          url,
          room: "weur-down",
          token: TOKENS.ana,
          WebSocket,
          transport,
          timeoutMs: 1500,
        }),
        (e) =>
          e instanceof OvationError &&
          e.code === "auth_not_configured" &&
          e.message.includes("no keys"),
        transport,
      );
      const took = Date.now() - started;
      assert.ok(took >= 1400 && took < 3000, `${transport}: rejected after ${took} ms`);
    }
    assert.ok(answered >= 3);
  } finally {
    server.close();
  }
  await sleep(100);
  assert.deepEqual(uncaught.map(String), []);
});

test("a server answering 200 with a page that is not the API's: connect() rejects bad_response on every transport", async () => {
  // A proxy in front of the service whose fallback answers every path with the app's
  // HTML page: the SDK was told nothing (the body read as a network failure) and
  // rejected `connect_timeout`, though the server answered.
  const server = http.createServer((_req, res) => {
    res.writeHead(200, { "content-type": "text/html" });
    res.end("<!doctype html><title>app</title>");
  });
  server.on("upgrade", (_req, socket) => {
    const page = "<!doctype html>";
    socket.end(
      `HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: ${page.length}\r\n\r\n${page}`,
    );
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  const url = `http://127.0.0.1:${server.address().port}`;
  try {
    for (const transport of ["ws", "auto", "pull"]) {
      await assert.rejects(
        connect({
          url,
          room: "weur-page",
          token: TOKENS.ana,
          WebSocket,
          transport,
          timeoutMs: 1500,
        }),
        (e) => e instanceof OvationError && e.code === "bad_response",
        transport,
      );
    }
  } finally {
    server.close();
  }
  await sleep(100);
  assert.deepEqual(uncaught.map(String), []);
});

test("a part answered 200 with a page that is not JSON is read again, never shown as the part", async () => {
  // A proxy that answers the first part reads with its HTML page and forwards the rest:
  // the page stood as the part's value (at the version read) until the part changed.
  const room = await createRoom();
  const put = await fetch(`${URL_MAIN}/v1/rooms/${room}/parts/pinned`, {
    method: "PUT",
    headers: { authorization: `Bearer ${TOKENS.admin}`, "content-type": "application/json" },
    body: JSON.stringify({ text: "the real one" }),
  });
  assert.equal(put.status, 200, await put.text());
  let pagesLeft = 2;
  const server = http.createServer(async (req, res) => {
    if (req.url.includes("/parts/pinned") && pagesLeft > 0) {
      pagesLeft -= 1;
      res.writeHead(200, { "content-type": "text/html" });
      res.end("<!doctype html><title>app</title>");
      return;
    }
    const upstream = await fetch(`${URL_MAIN}${req.url}`, {
      headers: { authorization: req.headers.authorization ?? "" },
    });
    const headers = {};
    upstream.headers.forEach((value, name) => {
      if (!["content-encoding", "content-length", "transfer-encoding"].includes(name)) {
        headers[name] = value;
      }
    });
    res.writeHead(upstream.status, headers);
    res.end(Buffer.from(await upstream.arrayBuffer()));
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  const url = `http://127.0.0.1:${server.address().port}`;
  try {
    const viewer = await connect({
      url,
      room,
      token: TOKENS.cy,
      transport: "pull",
      timeoutMs: 15_000,
    });
    try {
      assert.equal(pagesLeft, 0, "the proxy answered the part reads with its page");
      assert.deepEqual(viewer.state.parts.pinned, { text: "the real one" });
    } finally {
      viewer.close();
    }
  } finally {
    server.close();
    await endRoom(room);
  }
  await sleep(100);
  assert.deepEqual(uncaught.map(String), []);
});

test("an ended room ends a pull session: ended, then closed", async () => {
  const room = await createRoom();
  const viewer = await connect({ url: URL_MAIN, room, token: TOKENS.cy, transport: "pull" });
  try {
    assert.equal(viewer.transport, "pull");
    const statuses = [];
    viewer.on("status", (s) => statuses.push(s));
    let endedSeen = false;
    viewer.on("ended", () => {
      endedSeen = true;
    });
    await endRoom(room);
    const deadline = Date.now() + 10000;
    while (viewer.status !== "closed" && Date.now() < deadline) await sleep(50);
    assert.ok(endedSeen, "the ended event");
    assert.equal(viewer.status, "closed");
    assert.equal(statuses.at(-1).reason, "room_ended");
    await assert.rejects(viewer.comment("late"), (e) => e.code === "room_ended");
  } finally {
    viewer.close();
  }
});

test("ten viewers times fifty quick likes: the room counts exactly 500", async () => {
  const room = await createRoom();
  const viewers = await Promise.all(
    TOKENS.viewers.map((token) => connect({ url: URL_MAIN, room, token, WebSocket })),
  );
  try {
    const dropped = [];
    for (const v of viewers) v.on("likes_dropped", (e) => dropped.push(e));
    let queued = 0;
    await Promise.all(
      viewers.map(async (v) => {
        for (let i = 0; i < 50; i++) {
          queued += v.like();
          await sleep(Math.random() * 20); // quick taps
        }
      }),
    );
    assert.equal(queued, 500, "every tap queued");
    const reported = () => dropped.reduce((sum, e) => sum + e.count, 0);
    // 50 likes per viewer at the room's rate take a few seconds to go out.
    const deadline = Date.now() + 20000;
    let likes = await roomLikes(room);
    while (likes + reported() < 500 && Date.now() < deadline) {
      await sleep(250);
      likes = await roomLikes(room);
    }
    assert.deepEqual(dropped, [], "nothing had to be dropped");
    assert.equal(likes, 500);
    await sleep(1000);
    assert.equal(await roomLikes(room), 500, "and never more");
  } finally {
    for (const v of viewers) v.close();
  }
});

test("one user liking from two tabs: the tabs share the room's rate and nothing is lost", async () => {
  const room = await createRoom();
  const tabs = [];
  try {
    for (let i = 0; i < 2; i++)
      tabs.push(await connect({ url: URL_MAIN, room, token: TOKENS.cy, WebSocket }));
    const dropped = [];
    for (const tab of tabs) tab.on("likes_dropped", (e) => dropped.push(e));
    // Each tab alone stays under the rate; together they are refused, and must resend.
    await Promise.all(
      tabs.map(async (tab) => {
        for (let i = 0; i < 50; i++) {
          tab.like();
          await sleep(Math.random() * 20);
        }
      }),
    );
    const deadline = Date.now() + 20000;
    while ((await roomLikes(room)) < 100 && dropped.length === 0 && Date.now() < deadline)
      await sleep(250);
    assert.deepEqual(dropped, []);
    assert.equal(await roomLikes(room), 100);
  } finally {
    for (const tab of tabs) tab.close();
  }
});
