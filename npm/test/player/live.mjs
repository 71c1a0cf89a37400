// Latecomers see what is open: a cued poll on a LIVE (sliding-window) HLS stream, in
// headless Chromium with hls.js (run by tests/tests/video_sync.rs).
// Env: OVATION_URL, OVATION_ROOM, OVATION_TOKENS (JSON), OVATION_REPO, OVATION_SDK,
// OVATION_ARTIFACTS, OVATION_STREAM (an HLS VOD of 2 s segments with the poll's cue
// injected at OVATION_CUE_S seconds), OVATION_CUE_ID.
//
// This driver serves that VOD as a live event, the way an encoder would publish it: a
// segment appears when the real clock passes its end, the playlist lists the newest
// WINDOW_SEGMENTS (EXT-X-MEDIA-SEQUENCE rising, no ENDLIST), and EXT-X-PROGRAM-DATE-TIME
// dates the cue at the moment the host opened the poll. Checks:
// 1. A viewer playing before the cue sees the poll only when the cue plays (not early,
//    though the poll is already open on the server).
// 2. A viewer who seeks past the cue (its fragment loaded) sees the poll at once after
//    the seek.
// 3. A viewer who joins after the cue's segment left the window (the cue is never loaded)
//    sees the open poll within ~1 s of playing.

import fs from "node:fs";
import path from "node:path";
import { inside, serve } from "./browser.mjs";
import { launchPlayerBrowser, playerFile } from "./harness.mjs";

const env = process.env;
const TOKENS = JSON.parse(env.OVATION_TOKENS);
const CUE_S = Number(env.OVATION_CUE_S);
const CUE_ID = env.OVATION_CUE_ID;
const WINDOW_SEGMENTS = 3;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));
const fail = (message) => {
  throw new Error(message);
};

// ---- The VOD playlist, as segments on the media timeline. ----
const vod = fs.readFileSync(path.join(env.OVATION_STREAM, "index.m3u8"), "utf8").split("\n");
const header = vod.filter(
  (l) => l.startsWith("#EXT-X-VERSION") || l.startsWith("#EXT-X-TARGETDURATION"),
);
const segments = [];
{
  let start = 0;
  let duration = null;
  for (const line of vod) {
    if (line.startsWith("#EXTINF:")) duration = parseFloat(line.slice(8));
    else if (line && !line.startsWith("#") && duration !== null) {
      segments.push({ uri: line.trim(), start, duration });
      start += duration;
      duration = null;
    }
  }
}
const cueSegment = segments.findIndex((s) => s.start <= CUE_S && CUE_S < s.start + s.duration);
if (cueSegment < WINDOW_SEGMENTS)
  fail(`the cue at ${CUE_S} s must come after the first live window`);

// The wall-clock moment the cue is dated at (ms since the epoch): planned so that the
// first window is live when the test starts, then set to the poll's `opened_ms`.
let cueWallMs = null;
const wallOf = (mediaS) => cueWallMs + Math.round((mediaS - CUE_S) * 1000);

function livePlaylist() {
  const now = Date.now();
  const published = segments.filter((s) => wallOf(s.start + s.duration) <= now).length;
  const first = Math.max(0, published - WINDOW_SEGMENTS);
  const lines = ["#EXTM3U", ...header, `#EXT-X-MEDIA-SEQUENCE:${first}`];
  for (let i = first; i < published; i++) {
    const s = segments[i];
    lines.push(`#EXT-X-PROGRAM-DATE-TIME:${new Date(wallOf(s.start)).toISOString()}`);
    lines.push(`#EXTINF:${s.duration.toFixed(6)},`, s.uri);
  }
  return `${lines.join("\n")}\n`;
}

const { server, base } = await serve((url) => {
  if (url.pathname === "/live/index.m3u8") {
    return { type: "application/vnd.apple.mpegurl", body: livePlaylist() };
  }
  if (url.pathname.startsWith("/live/")) return inside(env.OVATION_STREAM, url.pathname.slice(6));
  return playerFile(url);
});
const browser = await launchPlayerBrowser();

async function openPage(who) {
  const page = await browser.newPage();
  const logs = [];
  page.on("console", (m) => logs.push(`${m.type()}: ${m.text()}`));
  page.on("pageerror", (e) => logs.push(`pageerror: ${e.message}`));
  const q = new URLSearchParams({
    url: env.OVATION_URL,
    room: env.OVATION_ROOM,
    token: TOKENS[who],
    sync: "none",
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
  page.who = who;
  return page;
}

const log = (page) => page.evaluate(() => window.log);
const entriesOf = async (page, kind) => (await log(page)).filter((e) => e.kind === kind);
async function debug(page) {
  const room = await page.evaluate(() =>
    JSON.stringify({
      poll: window.room.state.parts.poll,
      waiting: [...window.room._waiting],
      played: [...window.room._played],
    }),
  );
  const entries = (await log(page)).filter((e) => e.kind !== "fragment-buffered");
  return `${page.who}: ${room}\nlog: ${JSON.stringify(entries)}\n${page.logs.join("\n")}`;
}
async function waitForPoll(page, timeoutMs) {
  const ok = await page
    .waitForFunction(() => window.log.some((e) => e.kind === "poll"), null, { timeout: timeoutMs })
    .then(
      () => true,
      () => false,
    );
  if (!ok) fail(`${page.who} never saw the open poll\n${await debug(page)}`);
  return (await entriesOf(page, "poll"))[0];
}

let failed = false;
try {
  const early = await openPage("ana"); // plays from before the cue
  const seeker = await openPage("cy"); // seeks past the cue
  // The first live window (WINDOW_SEGMENTS segments) is published when the viewers start.
  cueWallMs =
    Date.now() +
    Math.round(
      (CUE_S - segments[WINDOW_SEGMENTS - 1].start - segments[WINDOW_SEGMENTS - 1].duration) * 1000,
    );
  await Promise.all(
    [early, seeker].map((p) => p.evaluate((u) => window.go(u), `${base}/live/index.m3u8`)),
  );

  // ---- The host opens the poll when the encoder reaches the cue. ----
  await sleep(cueWallMs - Date.now());
  const opening = await fetch(`${env.OVATION_URL}/v1/rooms/${env.OVATION_ROOM}/polls`, {
    method: "POST",
    headers: { authorization: `Bearer ${TOKENS.admin}`, "content-type": "application/json" },
    body: JSON.stringify({
      question: "Which colour?",
      options: ["red", "blue"],
      window_ms: 60000,
      cue: CUE_ID,
    }),
  });
  if (opening.status !== 200) fail(`opening the poll: ${opening.status} ${await opening.text()}`);
  await early.waitForFunction(
    () => window.room.state.parts.poll && window.room.state.parts.poll.phase === "open",
    null,
    { timeout: 5000 },
  );
  const openedMs = await early.evaluate(() => window.room.state.parts.poll.opened_ms);
  console.log(
    `poll opened at ${new Date(openedMs).toISOString()} (${openedMs - cueWallMs} ms after the planned cue moment); the cue is dated at it`,
  );
  cueWallMs = openedMs;

  // ---- 2. Seeking past the cue. ----
  const cueSn = cueSegment;
  const buffered = await seeker
    .waitForFunction(
      (sn) => window.log.some((e) => e.kind === "fragment-buffered" && e.sn === sn),
      cueSn,
      { timeout: 15000 },
    )
    .then(
      () => true,
      () => false,
    );
  if (!buffered) fail(`the seeker never buffered the cue's fragment\n${await debug(seeker)}`);
  const fragment = (await entriesOf(seeker, "fragment-buffered")).find((e) => e.sn === cueSn);
  const cueAt = fragment.start + (CUE_S - segments[cueSn].start); // on the player's timeline
  const before = await seeker.evaluate(() => ({
    t: document.getElementById("video").currentTime,
    polls: window.log.filter((e) => e.kind === "poll").length,
  }));
  if (before.polls > 0)
    fail(
      `the seeker saw the poll before the cue or the seek, at ${before.t}\n${await debug(seeker)}`,
    );
  if (!(before.t < cueAt - 0.5))
    fail(`the seeker is already at ${before.t}, too close to the cue at ${cueAt}`);
  const target = cueAt + 0.5; // the cue's wall-clock moment + 0.5 s: inside the slack
  const seekAt = await seeker.evaluate((t) => {
    const at = Date.now();
    document.getElementById("video").currentTime = t;
    return at;
  }, target);
  const seekPoll = await waitForPoll(seeker, 5000);
  const seeked = (await entriesOf(seeker, "seeked")).find((e) => e.currentTime >= target - 0.1);
  if (!seeked) fail(`no seeked event at ${target}\n${await debug(seeker)}`);
  // A frame callback at the new position may come just before the `seeked` event.
  const afterSeekMs = seekPoll.at - seeked.at;
  console.log(
    `seeker: seeked to ${target.toFixed(3)} s (cue at ${cueAt.toFixed(3)} s) ${seeked.at - seekAt} ms after asking, poll shown ${afterSeekMs} ms after the seeked event`,
  );
  if (seekPoll.at < seekAt || afterSeekMs > 500)
    fail(`the seeker saw the poll ${afterSeekMs} ms after the seek`);
  if ((await entriesOf(seeker, "cue")).some((e) => e.cue === CUE_ID))
    fail("a cue jumped over fired");

  // ---- 1. Playing over the cue: shown when it plays, not before. ----
  const earlyPoll = await waitForPoll(early, 20000);
  const cue = (await entriesOf(early, "cue")).find((e) => e.cue === CUE_ID);
  if (!cue)
    fail(`the poll opened without its cue for the viewer playing over it\n${await debug(early)}`);
  const apartS = Math.abs(earlyPoll.currentTime - cue.currentTime);
  const wallAwayMs = earlyPoll.videoWall - openedMs;
  console.log(
    `playing over the cue: poll shown at currentTime ${earlyPoll.currentTime.toFixed(3)} s with its cue (${(apartS * 1000).toFixed(0)} ms apart), video wall clock ${wallAwayMs} ms from the opening, ${earlyPoll.at - openedMs} ms after it in real time`,
  );
  if (apartS > 0.05) fail(`the poll opened ${apartS} s away from its cue`);
  if (Math.abs(wallAwayMs) > 150)
    fail(`the poll opened when the video showed ${wallAwayMs} ms from the cue's moment`);
  if ((await entriesOf(early, "poll")).length !== 1) fail("the poll opened more than once");

  // ---- 3. A latecomer, after the cue's segment left the live window. ----
  // hls.js starts WINDOW_SEGMENTS segments behind the live edge: joining 3 s after the
  // cue's segment left the window, the video starts more than the slack (2 s) past the
  // cue's moment, so the poll is behind the playhead from the first frame.
  const leftMs = wallOf(
    segments[cueSegment + WINDOW_SEGMENTS].start + segments[cueSegment + WINDOW_SEGMENTS].duration,
  );
  await sleep(leftMs + 3000 - Date.now());
  const late = await openPage("bob");
  const joined = await late.evaluate(() => window.room.state.parts.poll?.phase);
  if (joined !== "open") fail(`the latecomer's state has the poll ${joined}`);
  await late.evaluate((u) => window.go(u), `${base}/live/index.m3u8`);
  const latePoll = await waitForPoll(late, 15000);
  const playing = (await entriesOf(late, "playing"))[0];
  if (!playing) fail(`the latecomer shows a poll but never played\n${await debug(late)}`);
  const afterPlayingMs = latePoll.at - playing.at;
  console.log(
    `latecomer: playing at currentTime ${playing.currentTime.toFixed(3)} s (video wall clock ${playing.videoWall - openedMs} ms past the opening), poll shown ${afterPlayingMs} ms after playing began`,
  );
  if (afterPlayingMs > 1000)
    fail(`the latecomer saw the poll ${afterPlayingMs} ms after playing began`);
  const loaded = await entriesOf(late, "fragment-loaded");
  if (loaded.some((e) => e.sn <= cueSegment))
    fail(
      `the latecomer loaded fragment(s) ${loaded.map((e) => e.sn)}: the cue's was still in the window`,
    );
  if ((await entriesOf(late, "cue")).length > 0) fail("the latecomer played a cue?");
  await late.screenshot({ path: path.join(env.OVATION_ARTIFACTS, "video-live-latecomer.png") });
} catch (e) {
  failed = true;
  console.error(e.stack || String(e));
} finally {
  await browser.close();
  server.close();
}
process.exit(failed ? 1 : 0);
