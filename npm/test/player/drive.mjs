// Drives the video-sync page in headless Chromium (run by tests/tests/video_sync.rs).
// Env: OVATION_URL, OVATION_ROOM, OVATION_TOKENS (JSON), OVATION_REPO (playwright-core,
// hls.js), OVATION_STREAM (an HLS dir with index.m3u8 and a cue injected at OVATION_CUE_S
// seconds), OVATION_SDK (the installed package dir), OVATION_ARTIFACTS.
//
// 1. A cue at t opens its product card when the video plays t (|currentTime - t| ≤ 0.1 s),
//    not when the segment holding it loads.
// 2. Two viewers whose clocks are skewed by +2 s and -2 s, with sync "video", each show a
//    comment within 100 ms of their video reaching the comment's server time.

import path from "node:path";
import WebSocket from "ws";
import { connect } from "ovation";
import { inside, serve } from "./browser.mjs";
import { launchPlayerBrowser, playerFile, redate } from "./harness.mjs";

const env = process.env;
const TOKENS = JSON.parse(env.OVATION_TOKENS);
const CUE_S = Number(env.OVATION_CUE_S);

// The playlist's EXT-X-PROGRAM-DATE-TIME can be moved to a chosen start (ms since the
// epoch, `redate`): the video then shows that wall-clock time at currentTime 0.
let pdtBaseMs = null;

const { server, base } = await serve(
  (url) => {
    if (url.pathname.startsWith("/stream/"))
      return inside(env.OVATION_STREAM, url.pathname.slice(8));
    return playerFile(url);
  },
  {
    transform: (file, body) => (file.endsWith(".m3u8") ? redate(body.toString(), pdtBaseMs) : body),
  },
);
const browser = await launchPlayerBrowser();

async function openPage(who, { sync = "none", skewMs = 0 } = {}) {
  const page = await browser.newPage();
  const logs = [];
  page.on("console", (m) => logs.push(`${m.type()}: ${m.text()}`));
  page.on("pageerror", (e) => logs.push(`pageerror: ${e.message}`));
  if (skewMs) {
    // The viewer's clock is wrong by skewMs: Date.now and new Date() both lie.
    await page.addInitScript((skew) => {
      const RealDate = Date;
      const now = () => RealDate.now() + skew;
      class SkewedDate extends RealDate {
        constructor(...args) {
          super(...(args.length ? args : [now()]));
        }
        static now() {
          return now();
        }
      }
      globalThis.Date = SkewedDate;
    }, skewMs);
  }
  const q = new URLSearchParams({
    url: env.OVATION_URL,
    room: env.OVATION_ROOM,
    token: TOKENS[who],
    sync,
  });
  await page.goto(`${base}/?${q}`);
  try {
    await page.waitForFunction(
      () => document.getElementById("status").textContent === "ready",
      null,
      { timeout: 15000 },
    );
  } catch (e) {
    throw new Error(`page for ${who} not ready: ${e.message}\n${logs.join("\n")}`);
  }
  page.logs = logs;
  return page;
}

const log = (page) => page.evaluate(() => window.log);
const fail = (message) => {
  throw new Error(message);
};
let failed = false;
try {
  // ---- 1. The cue opens the product card at its frame. ----
  // A recording made an hour ago: its wall clock is long before the pin, so only the cue
  // can place the card (a stream dated after the pin would show it once the video's wall
  // clock passed the pin, as a live latecomer's does: see live.mjs).
  pdtBaseMs = Date.now() - 3_600_000;
  const viewer = await openPage("ana");
  await viewer.evaluate((u) => window.go(u), `${base}/stream/index.m3u8`);
  // The host pins the card ahead of its moment; it carries the cue id in the stream.
  const pinned = await fetch(`${env.OVATION_URL}/v1/rooms/${env.OVATION_ROOM}/products`, {
    method: "POST",
    headers: { authorization: `Bearer ${TOKENS.admin}`, "content-type": "application/json" },
    body: JSON.stringify({
      id: "red-1",
      title: "Red sneakers",
      price: "€89",
      image_url: "https://example.com/red.jpg",
      link: "shop://item/red",
      cue: env.OVATION_CUE_ID,
    }),
  });
  if (pinned.status !== 200) fail(`pinning: ${pinned.status} ${await pinned.text()}`);
  await viewer
    .waitForFunction(() => window.log.some((e) => e.kind === "product"), null, { timeout: 20000 })
    .catch(() => null);
  const entries = await log(viewer);
  const opened = entries.find((e) => e.kind === "product");
  if (!opened) {
    const debug = await viewer.evaluate(() =>
      JSON.stringify({
        parts: window.room.state.parts,
        waiting: [...window.room._waiting],
        played: [...window.room._played],
        player: !!window.room._player,
      }),
    );
    fail(
      `no product card opened; log: ${JSON.stringify(entries)}\nroom: ${debug}\n${viewer.logs.join("\n")}`,
    );
  }
  const delta = Math.abs(opened.currentTime - CUE_S);
  console.log(
    `product card opened at currentTime ${opened.currentTime.toFixed(3)} s (cue at ${CUE_S} s, |Δ| ${(delta * 1000).toFixed(0)} ms)`,
  );
  if (delta > 0.1) fail(`the card opened ${delta.toFixed(3)} s away from its cue`);
  const segment = entries.find(
    (e) => e.kind === "fragment-loaded" && e.start <= CUE_S && CUE_S < e.start + e.duration,
  );
  if (!segment) fail("the fragment holding the cue was never loaded?");
  if (!(segment.currentTime < CUE_S - 0.5))
    fail(
      `the fragment loaded at ${segment.currentTime}: too late to tell load time from play time`,
    );
  console.log(
    `its fragment loaded at currentTime ${segment.currentTime.toFixed(3)} s: opened at play time, not load time`,
  );
  // Every cue fires once per pass: the one in the first second too; a seek back before a
  // cue starts a new pass in which it fires once more.
  const EARLY_S = Number(env.OVATION_EARLY_CUE_S);
  const played = (id) =>
    viewer.evaluate((c) => window.log.filter((e) => e.kind === "cue" && e.cue === c), id);
  await viewer.waitForFunction((t) => document.getElementById("video").currentTime > t, CUE_S + 1, {
    timeout: 15000,
  });
  const early = await played("early-1");
  if (early.length !== 1) fail(`the first-second cue fired ${early.length} times`);
  // The event carries what the stream's payload names (read by the SDK's wasm core).
  const ref = early[0].ref;
  if (ref?.kind !== "custom" || ref?.id !== "intro" || !Number.isFinite(early[0].media_time))
    fail(`the first-second cue's event: ${JSON.stringify(early[0])}`);
  if (Math.abs(early[0].currentTime - EARLY_S) > 0.1)
    fail(`the first-second cue fired at ${early[0].currentTime}`);
  if ((await played(env.OVATION_CUE_ID)).length !== 1) fail("the cue did not fire exactly once");
  await viewer.evaluate((t) => {
    document.getElementById("video").currentTime = t;
  }, CUE_S - 0.5);
  await viewer.waitForFunction(
    (t) => document.getElementById("video").currentTime > t,
    CUE_S + 0.5,
    { timeout: 15000 },
  );
  const again = await played(env.OVATION_CUE_ID);
  if (again.length !== 2)
    fail(
      `after a seek back the cue fired ${again.length} times in all (expected 2): ${JSON.stringify(again)}`,
    );
  if (Math.abs(again[1].currentTime - CUE_S) > 0.1)
    fail(`after the seek it fired at ${again[1].currentTime}`);
  if ((await played("early-1")).length !== 1)
    fail("the first-second cue fired again without a pass over it");
  console.log(
    `first-second cue at ${early[0].currentTime.toFixed(3)} s; after a seek back the cue fired again at ${again[1].currentTime.toFixed(3)} s`,
  );
  await viewer.screenshot({ path: path.join(env.OVATION_ARTIFACTS, "video-cue.png") });
  await viewer.close();

  // ---- 2. Skewed clocks, same video moment. ----
  const pages = [
    await openPage("ana", { sync: "video", skewMs: 2000 }),
    await openPage("cy", { sync: "video", skewMs: -2000 }),
  ];
  // The video runs 2 s behind real time, as a live stream would.
  pdtBaseMs = Date.now() - 2000;
  await Promise.all(pages.map((p) => p.evaluate((u) => window.go(u), `${base}/stream/index.m3u8`)));
  await Promise.all(
    pages.map((p) =>
      p.waitForFunction(() => window.log.some((e) => e.kind === "cue"), null, { timeout: 20000 }),
    ),
  );
  const text = `timed ${Date.now()}`;
  const bob = await connect({
    url: env.OVATION_URL,
    room: env.OVATION_ROOM,
    token: TOKENS.bob,
    WebSocket,
  });
  const { seq } = await bob.comment(text);
  bob.close();
  const moments = [];
  for (const page of pages) {
    await page.waitForFunction(
      (t) => window.log.some((e) => e.kind === "comment" && e.text === t),
      text,
      { timeout: 15000 },
    );
    const shown = (await log(page)).find((e) => e.kind === "comment" && e.text === text);
    const lateMs = shown.videoWall - shown.ts_ms;
    console.log(
      `comment ${seq} shown when the video was at ${new Date(shown.videoWall).toISOString()}: ${lateMs} ms after its server time`,
    );
    if (!(lateMs >= -50 && lateMs <= 100)) fail(`shown ${lateMs} ms away from its video moment`);
    moments.push(shown.videoWall);
  }
  const apart = Math.abs(moments[0] - moments[1]);
  console.log(`the two skewed viewers showed it ${apart} ms apart in video time`);
  if (apart > 100) fail(`viewers ${apart} ms apart`);
  await pages[0].screenshot({ path: path.join(env.OVATION_ARTIFACTS, "video-sync.png") });
} catch (e) {
  failed = true;
  console.error(e.stack || String(e));
} finally {
  await browser.close();
  server.close();
}
process.exit(failed ? 1 : 0);
