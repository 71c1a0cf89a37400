// A recording's player page: hls.js plays the recorded stream as VOD and `replay()` shows
// the room's recording against it. What the test checks is recorded in `window.log`
// (player.js, as the live page does).
import { replay } from "ovation";
import { note, params, playWhenTold, video } from "./player.js";

const r = await replay({
  url: params.get("url"),
  room: params.get("room"),
  token: params.get("token"),
});
window.replayed = r;
r.on("comment", (c) => note("comment", { text: c.text, ts_ms: c.ts_ms, seq: c.seq }));
r.on("poll", (p) => note("poll", { id: p?.id, phase: p?.phase, tallies: p?.tallies }));
r.on("product", (p) => {
  if (p?.pinned) note("product", { id: p.pinned.id });
});
r.on("cue", (c) => note("cue", { cue: c.cue }));
r.on("error", (e) => note("error", { code: e.code, message: e.message }));

playWhenTold((hls) => r.attachPlayer(video, { hls }));
