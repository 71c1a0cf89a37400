// The page a player integration looks like: hls.js plays the stream, the SDK is attached
// to the video. Everything the test checks is recorded in `window.log` (player.js).
import { connect } from "ovation";
import { note, params, playWhenTold, video } from "./player.js";

const card = document.getElementById("card");

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
room.on("cue", (c) => note("cue", { cue: c.cue, ref: c.ref, media_time: c.media_time }));
room.on("comment", (c) => note("comment", { text: c.text, ts_ms: c.ts_ms }));

playWhenTold(
  (hls) => room.attachPlayer(video, { hls, sync: params.get("sync") || "none" }),
  (hls) => {
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
  },
);
