// What the browser test drivers and the demo server share: a small static file server
// and Debian's Chromium launched the way this machine allows (playwright-core).
// Drivers run from a scratch project next to the installed SDK; the test harness copies
// this file beside them (`ovation_tests::run_driver`).

import http from "node:http";
import fs from "node:fs/promises";
import path from "node:path";
import { createRequire } from "node:module";

const TYPES = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript",
  ".mjs": "text/javascript",
  ".css": "text/css",
  ".wasm": "application/wasm",
  ".svg": "image/svg+xml",
  ".json": "application/json",
  ".m3u8": "application/vnd.apple.mpegurl",
  ".ts": "video/mp2t",
  ".m4s": "video/iso.segment",
  ".mp4": "video/mp4",
};

/** `rest` (a URL path below a prefix) inside `dir`, or null when it would leave it. */
export function inside(dir, rest) {
  const root = path.resolve(dir);
  const file = path.resolve(root, `.${path.posix.normalize(`/${decodeURIComponent(rest)}`)}`);
  return file === root || file.startsWith(root + path.sep) ? file : null;
}

/**
 * Serves files on 127.0.0.1 (`port` 0: any free one). `route(url)` answers a file path,
 * `{type, body}`, `{redirect: location}` (302), or null (404); `transform(file, body)` may
 * rewrite a file's bytes.
 * Resolves with the server and its base URL.
 */
export async function serve(route, { port = 0, transform = (_file, body) => body } = {}) {
  const server = http.createServer(async (req, res) => {
    try {
      const answer = route(new URL(req.url, "http://x"));
      if (!answer) throw new Error("no route");
      if (typeof answer === "object" && answer.redirect) {
        res.writeHead(302, { location: answer.redirect, "cache-control": "no-store" }).end();
        return;
      }
      const { type, body } =
        typeof answer === "string"
          ? {
              type: TYPES[path.extname(answer)],
              body: transform(answer, await fs.readFile(answer)),
            }
          : answer;
      res.writeHead(200, {
        "content-type": type || "application/octet-stream",
        "cache-control": "no-store",
      });
      res.end(body);
    } catch {
      res.writeHead(404, { "content-type": "text/plain" }).end("not found\n");
    }
  });
  await new Promise((resolve) => server.listen(port, "127.0.0.1", resolve));
  return { server, base: `http://127.0.0.1:${server.address().port}` };
}

/** Debian's Chromium, headless, through the repository's playwright-core. */
export function launchChromium(repo, extraArgs = []) {
  const { chromium } = createRequire(path.join(repo, "package.json"))("playwright-core");
  return chromium.launch({
    executablePath: "/usr/bin/chromium",
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      ...extraArgs,
    ],
  });
}
