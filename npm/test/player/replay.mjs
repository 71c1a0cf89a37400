// Replay in headless Chromium with hls.js against the real worker (run by
// tests/tests/replay_video.rs). Env: OVATION_URL, OVATION_ROOM, OVATION_TOKENS (JSON),
// OVATION_REPO, OVATION_SDK, OVATION_ARTIFACTS, OVATION_STREAM (an HLS dir, index.m3u8,
// with EXT-X-PROGRAM-DATE-TIME and a product cue OVATION_CUE_ID at OVATION_CUE_S).
//
// 1. Live: a viewer plays the stream as a live stream (2 s behind real time, sync
//    "video") while comments come in, a product card is pinned with the stream's cue, a
//    poll opens and three viewers vote, a few seconds apart; then the room ends.
// 2. The recording played as VOD (the same stream, the same EXT-X-PROGRAM-DATE-TIME): every
//    comment shows within 100 ms of the video moment at which the live viewer saw it, and
//    the product card at its cue as live.
// 3. Another viewer of the recording seeks to the middle: the open poll shows with the
//    tallies of that moment, and no older comment shows.
// 4. `<ovation-overlay replay>` (OVATION_OVERLAY: the player-overlay directory) shows the
//    recording with the live UI, read-only: comments, the poll card with its tallies, no
//    composer, like or gift button, votes disabled.

import http from "node:http";
import path from "node:path";
import WebSocket from "ws";
import { connect } from "ovation";
import { inside, serve } from "./browser.mjs";
import { launchPlayerBrowser, playerFile, redate } from "./harness.mjs";

const env = process.env;
const TOKENS = JSON.parse(env.OVATION_TOKENS);
const CUE_S = Number(env.OVATION_CUE_S);
const ROOM = env.OVATION_ROOM;
const here = path.dirname(new URL(import.meta.url).pathname);
const TOLERANCE_MS = 100;

// The stream's EXT-X-PROGRAM-DATE-TIME moved to the live session's start, in every phase:
// the recording is played with the dates it had live.
let pdtBaseMs = null;

// The overlay's page: the component over the video, in replay mode.
const OVERLAY_PAGE = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>replay overlay</title>
<script type="importmap">{ "imports": { "ovation": "/ovation/src/index.js" } }</script>
<script src="/hls.js"></script></head><body>
<div style="position: relative; width: 640px; height: 360px; background: #000">
  <video id="video" muted playsinline style="width: 100%; height: 100%"></video>
  <ovation-overlay for="video" replay></ovation-overlay>
</div>
<script type="module">
  import "/overlay/overlay.js";
  const params = new URLSearchParams(location.search);
  const overlay = document.querySelector("ovation-overlay");
  window.sr = () => overlay.shadowRoot;
  window.go = (stream) => {
    const video = document.getElementById("video");
    const hls = new window.Hls({ enableWorker: false });
    window.hls = hls;
    overlay.hls = hls;
    hls.loadSource(stream);
    hls.attachMedia(video);
    return video.play();
  };
  for (const name of ["url", "room", "token"]) overlay.setAttribute(name, params.get(name));
</script></body></html>`;

const { server: files, base: filesBase } = await serve(
  (url) => {
    if (url.pathname === "/overlay-replay")
      return { type: "text/html; charset=utf-8", body: OVERLAY_PAGE };
    if (url.pathname.startsWith("/overlay/"))
      return inside(env.OVATION_OVERLAY, url.pathname.slice(9));
    if (url.pathname === "/replay") return path.join(here, "replay.html");
    if (url.pathname === "/replay-page.js") return path.join(here, "replay-page.js");
    if (url.pathname.startsWith("/stream/"))
      return inside(env.OVATION_STREAM, url.pathname.slice(8));
    return playerFile(url);
  },
  {
    transform: (file, body) => (file.endsWith(".m3u8") ? redate(body.toString(), pdtBaseMs) : body),
  },
);
// The pages and the service's HTTP API on one origin: the worker answers no CORS
// preflight, so a page of another origin cannot fetch replay windows with its token
// (docs/replay.md). WebSockets need no CORS: the live page talks to the worker directly.
const front = http.createServer(async (req, res) => {
  try {
    const target = req.url.startsWith("/v1/") ? env.OVATION_URL : filesBase;
    const headers = {};
    for (const name of ["authorization", "content-type"])
      if (req.headers[name]) headers[name] = req.headers[name];
    const answer = await fetch(target + req.url, { method: req.method, headers });
    res.writeHead(answer.status, {
      "content-type": answer.headers.get("content-type") || "application/octet-stream",
      "cache-control": "no-store",
    });
    res.end(Buffer.from(await answer.arrayBuffer()));
  } catch (e) {
    res.writeHead(502, { "content-type": "text/plain" }).end(String(e));
  }
});
await new Promise((resolve) => front.listen(0, "127.0.0.1", resolve));
const base = `http://127.0.0.1:${front.address().port}`;
const server = {
  close: () => {
    front.close();
    files.close();
  },
};
const browser = await launchPlayerBrowser();

async function openPage(pagePath, who, extra = {}) {
  const page = await browser.newPage();
  const logs = [];
  page.on("console", (m) => logs.push(`${m.type()}: ${m.text()}`));
  page.on("pageerror", (e) => logs.push(`pageerror: ${e.message}`));
  // Replay pages fetch windows through this origin; the live page uses a WebSocket.
  const url = pagePath === "/" ? env.OVATION_URL : base;
  const q = new URLSearchParams({ url, room: ROOM, token: TOKENS[who], ...extra });
  await page.goto(`${base}${pagePath}?${q}`);
  if (pagePath === "/overlay-replay") {
    page.logs = logs;
    return page;
  }
  try {
    await page.waitForFunction(
      () => document.getElementById("status").textContent === "ready",
      null,
      { timeout: 15000 },
    );
  } catch (e) {
    throw new Error(`page ${pagePath} for ${who} not ready: ${e.message}\n${logs.join("\n")}`);
  }
  page.logs = logs;
  return page;
}

const log = (page) => page.evaluate(() => window.log);
const fail = (message) => {
  throw new Error(message);
};
/** Resolves at wall-clock time `atMs` (the live session runs in real time). */
const until = (atMs) =>
  new Promise((resolve) => setTimeout(resolve, Math.max(0, atMs - Date.now())));
async function admin(method, pathname, body) {
  const resp = await fetch(`${env.OVATION_URL}/v1/rooms/${ROOM}${pathname}`, {
    method,
    headers: { authorization: `Bearer ${TOKENS.admin}`, "content-type": "application/json" },
    body: JSON.stringify(body ?? {}),
  });
  const text = await resp.text();
  if (!resp.ok) fail(`${method} ${pathname}: ${resp.status} ${text}`);
  return JSON.parse(text || "{}");
}

let failed = false;
const clients = [];
try {
  // ---- 1. The live session. ----
  const live = await openPage("/", "ana", { sync: "video" });
  const join = async (who) => {
    const room = await connect({ url: env.OVATION_URL, room: ROOM, token: TOKENS[who], WebSocket });
    clients.push(room);
    return room;
  };
  const [bob, cy, dan] = [await join("bob"), await join("cy"), await join("dan")];
  // The poll's tallies by server time, as a live viewer got them.
  const tallies = [];
  bob.on(
    "poll",
    (p) => p && tallies.push({ atMs: bob.serverNow(), tallies: p.tallies, phase: p.phase }),
  );
  // The video runs 2 s behind real time, as a live stream would.
  pdtBaseMs = Date.now() - 2000;
  const t0 = Date.now();
  await live.evaluate((u) => window.go(u), `${base}/stream/index.m3u8`);
  const texts = [];
  let pollId = null;
  const votes = [];
  const script = [];
  for (let i = 0; i < 13; i++) script.push([2_000 + i * 1_500, "comment", i]);
  script.push(
    [3_000, "pin"],
    [4_000, "poll"],
    [7_000, "vote", bob, 0],
    [13_000, "vote", cy, 1],
    [19_000, "vote", dan, 0],
  );
  script.sort((a, b) => a[0] - b[0]);
  for (const [atMs, what, who, option] of script) {
    await until(t0 + atMs);
    if (what === "comment") {
      const text = `live comment ${who} ${t0}`;
      await bob.comment(text);
      texts.push(text);
    } else if (what === "pin") {
      await admin("POST", "/products", {
        id: "red-1",
        title: "Red sneakers",
        price: "€89",
        image_url: "https://example.com/red.jpg",
        link: "shop://item/red",
        cue: env.OVATION_CUE_ID,
      });
    } else if (what === "poll") {
      pollId = (
        await admin("POST", "/polls", {
          question: "Which one?",
          options: ["red", "blue"],
          window_ms: 60_000,
          tallies_public: true,
        })
      ).id;
    } else {
      await who.vote(pollId, option);
      votes.push(Date.now());
    }
  }
  await live
    .waitForFunction(
      (n) => window.log.filter((e) => e.kind === "comment").length >= n,
      texts.length,
      { timeout: 20000 },
    )
    .catch(() => null);
  const liveLog = await log(live);
  const liveComments = new Map(liveLog.filter((e) => e.kind === "comment").map((e) => [e.text, e]));
  if (liveComments.size !== texts.length) {
    fail(
      `the live viewer saw ${liveComments.size} of ${texts.length} comments: ${JSON.stringify(liveLog)}\n${live.logs.join("\n")}`,
    );
  }
  const liveProduct = liveLog.find((e) => e.kind === "product");
  if (!liveProduct) fail(`the live viewer never saw the product card: ${JSON.stringify(liveLog)}`);
  console.log(
    `live: ${texts.length} comments, product card at currentTime ${liveProduct.currentTime.toFixed(3)} s (cue ${CUE_S} s), votes at +${votes.map((v) => ((v - t0) / 1000).toFixed(1)).join(", +")} s`,
  );
  await live.close();
  for (const c of clients.splice(0)) c.close();
  const ended = await admin("POST", "/end");
  console.log(`room ended; recording ${JSON.stringify(ended.replay)}`);

  // ---- 2. The recording, played through as VOD. ----
  const viewer = await openPage("/replay", "ana");
  await viewer.evaluate((u) => window.go(u), `${base}/stream/index.m3u8`);
  await viewer
    .waitForFunction(
      (n) => window.log.filter((e) => e.kind === "comment").length >= n,
      texts.length,
      { timeout: 45000 },
    )
    .catch(() => null);
  const replayLog = await log(viewer);
  const replayed = replayLog.filter((e) => e.kind === "comment");
  if (replayed.length !== texts.length) {
    fail(
      `the recording showed ${replayed.length} of ${texts.length} comments: ${JSON.stringify(replayLog)}\n${viewer.logs.join("\n")}`,
    );
  }
  let worstMs = 0;
  // How late after its server time each viewer showed a comment (video time): the
  // recording's and the live viewer's own lateness, to tell which one a gap comes from.
  let liveLateMs = 0;
  let replayLateMs = 0;
  for (const shown of replayed) {
    const seen = liveComments.get(shown.text);
    if (!seen) fail(`the recording showed a comment no live viewer saw: ${shown.text}`);
    const apartMs = shown.videoWall - seen.videoWall;
    worstMs = Math.max(worstMs, Math.abs(apartMs));
    liveLateMs = Math.max(liveLateMs, seen.videoWall - seen.ts_ms);
    replayLateMs = Math.max(replayLateMs, shown.videoWall - shown.ts_ms);
    if (Math.abs(apartMs) > TOLERANCE_MS) {
      fail(
        `"${shown.text}" showed at video ${new Date(shown.videoWall).toISOString()} in the recording (${shown.videoWall - shown.ts_ms} ms after its server time), ${apartMs} ms from live (${new Date(seen.videoWall).toISOString()}, ${seen.videoWall - seen.ts_ms} ms after it)`,
      );
    }
  }
  if (new Set(replayed.map((e) => e.text)).size !== replayed.length) fail("a comment showed twice");
  console.log(
    `recording: every comment within ${worstMs} ms of the video moment a live viewer saw it (limit ${TOLERANCE_MS} ms); at most ${replayLateMs} ms after its server time (live: ${liveLateMs} ms)`,
  );
  const product = replayLog.find((e) => e.kind === "product");
  if (!product) fail(`the recording never showed the product card: ${JSON.stringify(replayLog)}`);
  const productApartMs = Math.round((product.currentTime - liveProduct.currentTime) * 1000);
  console.log(
    `recording: product card at currentTime ${product.currentTime.toFixed(3)} s, ${productApartMs} ms from live`,
  );
  if (Math.abs(productApartMs) > TOLERANCE_MS)
    fail(`the product card showed ${productApartMs} ms from live`);
  await viewer.screenshot({ path: path.join(env.OVATION_ARTIFACTS, "replay.png") });
  await viewer.close();

  // ---- 3. A seek to the middle. ----
  // Between the second and third vote: the poll is open with one vote each.
  const seekWallMs = t0 + 16_000;
  // hls.js's playingDate for a currentTime (its media time starts at the first sample, not
  // at the playlist's first date), as the play-through saw it.
  const wallAtZeroMs = replayed[0].videoWall - replayed[0].currentTime * 1000;
  const seekS = (seekWallMs - wallAtZeroMs) / 1000;
  const expected = tallies.filter((t) => t.atMs <= seekWallMs).at(-1);
  if (expected?.phase !== "open")
    fail(`no open poll at the seek target: ${JSON.stringify(tallies)}`);
  const seeker = await openPage("/replay", "cy");
  await seeker.evaluate((u) => window.go(u), `${base}/stream/index.m3u8`);
  await seeker.waitForFunction(() => window.log.some((e) => e.kind === "playing"), null, {
    timeout: 15000,
  });
  const mark = await seeker.evaluate((s) => {
    const at = window.log.length;
    document.getElementById("video").currentTime = s;
    return at;
  }, seekS);
  await seeker.waitForFunction(
    (s) =>
      window.log.some((e) => e.kind === "seeked") &&
      document.getElementById("video").currentTime > s + 2,
    seekS,
    { timeout: 20000 },
  );
  const after = (await log(seeker)).slice(mark);
  const polls = after.filter((e) => e.kind === "poll");
  if (polls.length === 0)
    fail(`no poll after the seek: ${JSON.stringify(after)}\n${seeker.logs.join("\n")}`);
  if (
    JSON.stringify(polls[0].tallies) !== JSON.stringify(expected.tallies) ||
    polls[0].phase !== "open"
  ) {
    fail(
      `after the seek the poll showed ${JSON.stringify(polls[0])}, live it was ${JSON.stringify(expected)}`,
    );
  }
  const older = after.filter((e) => e.kind === "comment" && e.ts_ms < seekWallMs - TOLERANCE_MS);
  if (older.length > 0)
    fail(`a burst of ${older.length} older comments after the seek: ${JSON.stringify(older)}`);
  const next = after.filter((e) => e.kind === "comment");
  // Then play goes on: the first comment shown is the first recorded after the target.
  const firstAfter = replayed.find((e) => e.ts_ms > seekWallMs);
  if (!next.length || next[0].text !== firstAfter.text) {
    fail(
      `after the seek the first comment was ${JSON.stringify(next[0])}, expected ${JSON.stringify(firstAfter)}`,
    );
  }
  console.log(
    `seek to ${seekS.toFixed(1)} s: the open poll with tallies ${JSON.stringify(polls[0].tallies)} (live then: ${JSON.stringify(expected.tallies)}), no older comment; then ${next.length} comments as the video reached them`,
  );
  await seeker.screenshot({ path: path.join(env.OVATION_ARTIFACTS, "replay-seek.png") });
  await seeker.close();

  // ---- 4. <ovation-overlay replay>. ----
  const overlay = await openPage("/overlay-replay", "dan");
  await overlay
    .waitForFunction(
      () => window.sr && window.sr().querySelector(".status-text").textContent === "Replay",
      null,
      { timeout: 15000 },
    )
    .catch(() => fail(`the overlay never opened the recording\n${overlay.logs.join("\n")}`));
  await overlay.evaluate((u) => window.go(u), `${base}/stream/index.m3u8`);
  await overlay.waitForFunction(() => document.getElementById("video").currentTime > 1, null, {
    timeout: 15000,
  });
  await overlay.evaluate((s) => {
    document.getElementById("video").currentTime = s;
  }, seekS);
  await overlay
    .waitForFunction(
      (n) =>
        window.sr().querySelectorAll(".comments li").length >= n &&
        !window.sr().querySelector(".poll").hidden,
      2,
      { timeout: 20000 },
    )
    .catch(() => fail(`the overlay showed no comments or poll: ${overlay.logs.join("\n")}`));
  const ui = await overlay.evaluate(() => {
    const sr = window.sr();
    const shown = (selector) => getComputedStyle(sr.querySelector(selector)).display !== "none";
    const options = [...sr.querySelectorAll(".poll button.option")];
    return {
      comments: [...sr.querySelectorAll(".comments li .text")].map((n) => n.textContent),
      votes: options.map((b) => Number(b.dataset.votes)),
      votingDisabled: options.every((b) => b.getAttribute("aria-disabled") === "true"),
      composer: shown(".say"),
      like: shown(".like"),
      gifts: shown(".gift-toggle"),
    };
  });
  if (ui.composer || ui.like || ui.gifts)
    fail(`the replay overlay is not read-only: ${JSON.stringify(ui)}`);
  if (!ui.votingDisabled) fail("the replay overlay lets the viewer vote");
  if (JSON.stringify(ui.votes) !== JSON.stringify(expected.tallies))
    fail(`the overlay's poll shows ${JSON.stringify(ui.votes)}`);
  const olderInOverlay = ui.comments.filter(
    (t) => replayed.find((e) => e.text === t).ts_ms < seekWallMs,
  );
  if (olderInOverlay.length)
    fail(`the overlay showed older comments after the seek: ${olderInOverlay}`);
  console.log(
    `overlay (replay): ${ui.comments.length} comments, poll votes ${JSON.stringify(ui.votes)}, no composer, like or gift button, voting disabled`,
  );
  await overlay.screenshot({ path: path.join(env.OVATION_ARTIFACTS, "replay-overlay.png") });
  await overlay.close();
} catch (e) {
  failed = true;
  console.error(e.stack || String(e));
} finally {
  for (const c of clients) c.close();
  await browser.close();
  server.close();
}
process.exit(failed ? 1 : 0);
