// The demo for `cargo xtask dev`: serves the player overlay demo page and the host
// console next to the running worker, with a generated HLS test stream carrying cues.
// On start it makes sure the demo room exists and pins a product card that opens at the
// stream's cue. `/` leads to the demo page (a redirect carrying the worker's URL, the
// room, the stream and a viewer token). Env: OVATION_URL (the worker),
// OVATION_ADMIN_TOKEN, OVATION_VIEWER_TOKEN, OVATION_ROOM, OVATION_PORT, OVATION_REPO (the
// repository root), OVATION_SDK (the staged package), OVATION_STREAM (the stream
// directory), OVATION_CUE_ID.

import path from "node:path";
import { inside, serve } from "./browser.mjs";

const env = process.env;
const repo = env.OVATION_REPO;
/** The demo page with everything it needs in its query (see demo.html). */
function demoPage(env) {
  const query = new URLSearchParams({
    url: env.OVATION_URL,
    room: env.OVATION_ROOM,
    stream: "/stream/index.m3u8",
    token: env.OVATION_VIEWER_TOKEN || "",
  });
  return `/demo.html?${query}`;
}

/** URL path → file, only inside the directories the demo serves. */
function fileFor(url) {
  if (url.pathname === "/") return { redirect: demoPage(env) };
  if (url.pathname === "/hls.js") return path.join(repo, "node_modules/hls.js/dist/hls.min.js");
  if (url.pathname.startsWith("/ovation/")) return inside(env.OVATION_SDK, url.pathname.slice(9));
  if (url.pathname.startsWith("/stream/")) return inside(env.OVATION_STREAM, url.pathname.slice(8));
  return inside(path.join(repo, "player-overlay"), url.pathname);
}

async function admin(method, route, body) {
  const resp = await fetch(`${env.OVATION_URL}${route}`, {
    method,
    headers: {
      authorization: `Bearer ${env.OVATION_ADMIN_TOKEN}`,
      "content-type": "application/json",
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: resp.status, body: await resp.text() };
}

// The demo room: created once (409 when it exists), with a product card for the cue.
const created = await admin("POST", "/v1/rooms", {
  room: env.OVATION_ROOM,
  host: "dev-host",
  title: "Ovation demo",
});
if (created.status !== 201 && created.status !== 409) {
  console.error(`demo: creating ${env.OVATION_ROOM}: ${created.status} ${created.body}`);
}
const pinned = await admin("POST", `/v1/rooms/${env.OVATION_ROOM}/products`, {
  id: "demo-sneakers",
  title: "Red sneakers",
  price: "€89",
  image_url: "https://example.com/red.jpg",
  link: "https://example.com/shop/red",
  cue: env.OVATION_CUE_ID,
});
if (pinned.status !== 200)
  console.error(`demo: pinning the product: ${pinned.status} ${pinned.body}`);

await serve(fileFor, { port: Number(env.OVATION_PORT) });
console.log(`demo: serving on http://127.0.0.1:${env.OVATION_PORT}`);
