// SDK throughput in Chromium: decode a 100-event server batch in wasm and dispatch the
// events to JavaScript handlers, against the same events as JSON through JSON.parse
// (the peer), in the same page and run. Run by `cargo xtask bench sdk`, which prepares
// the directory given as the first argument (built SDK, batch.bin, batch.json).

import http from "node:http";
import fs from "node:fs/promises";
import path from "node:path";
import { chromium } from "playwright-core";

const dir = process.argv[2];
const types = { ".html": "text/html", ".js": "text/javascript", ".wasm": "application/wasm" };
const server = http.createServer(async (req, res) => {
  try {
    const file = path.join(dir, decodeURIComponent(new URL(req.url, "http://x").pathname));
    const body = await fs.readFile(file);
    res.writeHead(200, { "content-type": types[path.extname(file)] || "application/octet-stream" });
    res.end(body);
  } catch {
    res.writeHead(404).end();
  }
});
await new Promise((r) => server.listen(0, "127.0.0.1", r));
const url = `http://127.0.0.1:${server.address().port}/index.html`;
const browser = await chromium.launch({
  executablePath: process.env.OVATION_CHROMIUM || "/usr/bin/chromium",
  args: [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});
try {
  const page = await browser.newPage();
  page.on("pageerror", (e) => console.error("page error:", e));
  await page.goto(url);
  const result = await page.waitForFunction(() => window.benchResult, null, { timeout: 120000 });
  console.log(JSON.stringify(await result.jsonValue()));
} finally {
  await browser.close();
  server.close();
}
