// A recording's player page: hls.js plays the recorded stream as VOD and `replay()` shows
// the room's recording against it. What the test checks is recorded in `window.log` as
// page.js does (the video's currentTime and its wall-clock time from hls.playingDate).
import { replay } from "ovation";

const params = new URLSearchParams(location.search);
const video = document.getElementById("video");
const status = document.getElementById("status");
window.log = [];
const note = (kind, extra = {}) => {
  window.log.push({
    kind,
    currentTime: video.currentTime,
    videoWall: window.hls?.playingDate ? window.hls.playingDate.getTime() : null,
    at: Date.now(),
    ...extra,
  });
};

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

window.go = (streamUrl) => {
  const hls = new window.Hls({ enableWorker: false });
  window.hls = hls;
  for (const type of ["playing", "seeked"]) video.addEventListener(type, () => note(type));
  return r.attachPlayer(video, { hls }).then(() => {
    hls.loadSource(streamUrl);
    hls.attachMedia(video);
    video.play().catch((e) => note("play-failed", { message: String(e) }));
  });
};
status.textContent = "ready";
