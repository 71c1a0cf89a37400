// The page a player integration looks like: hls.js plays the stream, the SDK is attached
// to the video. Everything the test checks is recorded in `window.log` with the video's
// currentTime and its wall-clock time (hls.playingDate) at that moment, and the page's
// clock (`at`, ms since the epoch).
import { connect } from "ovation";

const params = new URLSearchParams(location.search);
const video = document.getElementById("video");
const status = document.getElementById("status");
const card = document.getElementById("card");
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

const room = await connect({
  url: params.get("url"),
  room: params.get("room"),
  token: params.get("token"),
});
window.room = room;
room.on("product", (p) => {
  if (!p.pinned) return;
  card.hidden = false;
  card.textContent = `${p.pinned.title} ${p.pinned.price}`;
  note("product", { id: p.pinned.id });
});
room.on("poll", (p) => note("poll", { id: p.id, phase: p.phase }));
room.on("cue", (c) => note("cue", { cue: c.cue }));
room.on("comment", (c) => note("comment", { text: c.text, ts_ms: c.ts_ms }));

// The test calls go() once every page is ready, so the pages start together.
window.go = (streamUrl) => {
  const hls = new window.Hls({ enableWorker: false });
  window.hls = hls;
  hls.on(window.Hls.Events.FRAG_LOADED, (_e, data) => {
    note("fragment-loaded", {
      sn: data.frag.sn,
      start: data.frag.start,
      duration: data.frag.duration,
    });
  });
  hls.on(window.Hls.Events.FRAG_BUFFERED, (_e, data) => {
    note("fragment-buffered", {
      sn: data.frag.sn,
      start: data.frag.start,
      duration: data.frag.duration,
    });
  });
  for (const type of ["playing", "seeked"]) video.addEventListener(type, () => note(type));
  return room.attachPlayer(video, { hls, sync: params.get("sync") || "none" }).then(() => {
    hls.loadSource(streamUrl);
    hls.attachMedia(video);
    video.play().catch((e) => note("play-failed", { message: String(e) }));
  });
};
status.textContent = "ready";
