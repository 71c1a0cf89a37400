// The demo for `cargo xtask dev`: serves the player overlay demo page and the host
// console next to the running worker, with a generated HLS test stream carrying cues.
// On start it makes sure the demo room exists and pins a product card that opens at the
// stream's cue. Env: OVATION_URL (the worker), OVATION_ADMIN_TOKEN, OVATION_ROOM,
// OVATION_PORT, OVATION_REPO (the repository root), OVATION_SDK (the staged package),
// OVATION_STREAM (the stream directory), OVATION_CUE_ID.

import http from "node:http";
import fs from "node:fs/promises";
import path from "node:path";

const env = process.env;
const repo = env.OVATION_REPO;
const TYPES = { ".html": "text/html; charset=utf-8", ".js": "text/javascript", ".mjs": "text/javascript",
  ".css": "text/css", ".wasm": "application/wasm", ".m3u8": "application/vnd.apple.mpegurl",
  ".ts": "video/mp2t", ".m4s": "video/iso.segment", ".mp4": "video/mp4", ".json": "application/json" };

/** URL path → file, only inside the directories the demo serves. */
function fileFor(pathname) {
  const roots = [
    ["/ovation/", env.OVATION_SDK],
    ["/stream/", env.OVATION_STREAM],
    ["/", path.join(repo, "player-overlay")],
  ];
  if (pathname === "/hls.js") return path.join(repo, "node_modules/hls.js/dist/hls.min.js");
  for (const [prefix, dir] of roots) {
    if (!pathname.startsWith(prefix)) continue;
    const file = path.resolve(dir, "." + pathname.slice(prefix.length - 1));
    if (file !== path.resolve(dir) && !file.startsWith(path.resolve(dir) + path.sep)) return null;
    return file;
  }
  return null;
}

async function admin(method, route, body) {
  const resp = await fetch(`${env.OVATION_URL}${route}`, {
    method,
    headers: { authorization: `Bearer ${env.OVATION_ADMIN_TOKEN}`, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: resp.status, body: await resp.text() };
}

// The demo room: created once (409 when it exists), with a product card for the cue.
const created = await admin("POST", "/v1/rooms", { room: env.OVATION_ROOM, host: "dev-host", title: "Ovation demo" });
if (created.status !== 201 && created.status !== 409) {
  console.error(`demo: creating ${env.OVATION_ROOM}: ${created.status} ${created.body}`);
}
const pinned = await admin("POST", `/v1/rooms/${env.OVATION_ROOM}/products`, {
  id: "demo-sneakers", title: "Red sneakers", price: "€89", image_url: "https://example.com/red.jpg",
  link: "https://example.com/shop/red", cue: env.OVATION_CUE_ID,
});
if (pinned.status !== 200) console.error(`demo: pinning the product: ${pinned.status} ${pinned.body}`);

const server = http.createServer(async (req, res) => {
  const file = fileFor(decodeURIComponent(new URL(req.url, "http://x").pathname));
  try {
    if (!file) throw new Error("outside");
    const body = await fs.readFile(file);
    res.writeHead(200, { "content-type": TYPES[path.extname(file)] || "application/octet-stream",
      "cache-control": "no-store" });
    res.end(body);
  } catch {
    res.writeHead(404, { "content-type": "text/plain" }).end("not found\n");
  }
});
server.listen(Number(env.OVATION_PORT), "127.0.0.1", () => {
  console.log(`demo: serving on http://127.0.0.1:${env.OVATION_PORT}`);
});
