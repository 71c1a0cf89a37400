// What both player test pages share (page.js: a live room, replay-page.js: its recording):
// the page's query and video, `window.log` with `note`, and `window.go`, which plays the
// stream with hls.js under the SDK's player attachment. Every entry of `window.log` has the
// video's currentTime, its wall-clock time (hls.playingDate) at that moment, and the
// page's clock (`at`, ms since the epoch).

export const params = new URLSearchParams(location.search);
export const video = document.getElementById("video");
window.log = [];
export const note = (kind, extra = {}) => {
  window.log.push({
    kind,
    currentTime: video.currentTime,
    videoWall: window.hls?.playingDate ? window.hls.playingDate.getTime() : null,
    at: Date.now(),
    ...extra,
  });
};

// Sets `window.go(streamUrl)`, which the test calls once every page is ready (so the pages
// start together): a new hls.js (`window.hls`), `listen(hls)` for the page's own events,
// `attach(hls)` (the SDK's attachPlayer), then the stream loaded and played. Then tells the
// test the page is ready.
export function playWhenTold(attach, listen = () => {}) {
  window.go = (streamUrl) => {
    const hls = new window.Hls({ enableWorker: false });
    window.hls = hls;
    listen(hls);
    for (const type of ["playing", "seeked"]) video.addEventListener(type, () => note(type));
    return attach(hls).then(() => {
      hls.loadSource(streamUrl);
      hls.attachMedia(video);
      video.play().catch((e) => note("play-failed", { message: String(e) }));
    });
  };
  document.getElementById("status").textContent = "ready";
}
