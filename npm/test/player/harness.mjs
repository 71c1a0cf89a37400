// What the player drivers share (drive.mjs, live.mjs, replay.mjs; each run by a test in
// tests/tests/video_sync.rs or tests/tests/replay_video.rs, whose tests/tests/player/mod.rs
// copies these files next to it): the files of the live page (index.html, page.js, and
// player.js, which the replay page imports too), hls.js and the SDK for tools/browser.mjs's
// `serve`, the playlist's EXT-X-PROGRAM-DATE-TIME moved to a chosen start, and headless
// Chromium that plays video without a gesture.

import path from "node:path";
import { inside, launchChromium } from "./browser.mjs";

const env = process.env;
const here = path.dirname(new URL(import.meta.url).pathname);

// The file `serve` answers for the live page, its scripts, hls.js and the SDK (OVATION_REPO,
// OVATION_SDK), or undefined for another path (the driver's own).
export function playerFile(url) {
  if (url.pathname === "/") return path.join(here, "index.html");
  if (url.pathname === "/page.js") return path.join(here, "page.js");
  if (url.pathname === "/player.js") return path.join(here, "player.js");
  if (url.pathname === "/hls.js")
    return path.join(env.OVATION_REPO, "node_modules/hls.js/dist/hls.min.js");
  if (url.pathname.startsWith("/ovation/")) return inside(env.OVATION_SDK, url.pathname.slice(9));
  return undefined;
}

// The playlist `text` with its EXT-X-PROGRAM-DATE-TIME moved to start at `baseMs` (ms
// since the epoch; null leaves it as it is): the video then shows that wall-clock time at
// currentTime 0.
export function redate(text, baseMs) {
  if (baseMs === null) return text;
  let at = baseMs;
  const out = [];
  for (const line of text.split("\n")) {
    if (line.startsWith("#EXT-X-PROGRAM-DATE-TIME:")) {
      out.push(`#EXT-X-PROGRAM-DATE-TIME:${new Date(at).toISOString()}`);
      continue;
    }
    if (line.startsWith("#EXTINF:")) at += Math.round(parseFloat(line.slice(8)) * 1000);
    out.push(line);
  }
  return out.join("\n");
}

// Headless Chromium (tools/browser.mjs) whose pages play video without a user gesture.
export const launchPlayerBrowser = () =>
  launchChromium(env.OVATION_REPO, ["--autoplay-policy=no-user-gesture-required"]);
