// Drives the built Vite app (./dist) in headless Chromium: serves it, opens it on a room,
// waits for the SDK to connect, posts a comment from Node through the same package, and
// waits for the page to show it. Run by tests/tests/sdk_vite.rs with OVATION_URL,
// OVATION_ROOM, OVATION_TOKENS, OVATION_REPO (for playwright-core) and OVATION_ARTIFACTS.

import path from "node:path";
import WebSocket from "ws";
import { connect } from "ovation";
import { inside, launchChromium, serve } from "./browser.mjs";

const { OVATION_URL, OVATION_ROOM, OVATION_REPO, OVATION_ARTIFACTS } = process.env;
const TOKENS = JSON.parse(process.env.OVATION_TOKENS);

const dist = path.resolve("dist");
const { server, base } = await serve((url) =>
  inside(dist, url.pathname.replace(/\/$/, "/index.html")),
);
const pageUrl = new URL(`${base}/`);
pageUrl.search = new URLSearchParams({ url: OVATION_URL, room: OVATION_ROOM, token: TOKENS.ana });

const browser = await launchChromium(OVATION_REPO);
let failed = false;
try {
  const page = await browser.newPage();
  const logs = [];
  page.on("console", (m) => logs.push(`${m.type()}: ${m.text()}`));
  page.on("pageerror", (e) => logs.push(`pageerror: ${e.message}`));
  await page.goto(pageUrl.href);
  try {
    await page.waitForFunction(
      () => document.getElementById("status").textContent === "open",
      null,
      { timeout: 15000 },
    );
  } catch {
    const status = await page.textContent("#status");
    throw new Error(`the page did not connect (status "${status}")\n${logs.join("\n")}`);
  }
  const text = `hello from node ${Date.now()}`;
  const bob = await connect({ url: OVATION_URL, room: OVATION_ROOM, token: TOKENS.bob, WebSocket });
  await bob.comment(text);
  bob.close();
  await page.waitForFunction(
    (t) => [...document.querySelectorAll("#comments li")].some((li) => li.textContent.endsWith(t)),
    text,
    { timeout: 10000 },
  );
  await page.screenshot({ path: path.join(OVATION_ARTIFACTS, "vite-app.png") });
  console.log(`the Vite app in Chromium received "${text}"`);
} catch (e) {
  failed = true;
  console.error(e);
} finally {
  await browser.close();
  server.close();
}
process.exit(failed ? 1 : 0);
