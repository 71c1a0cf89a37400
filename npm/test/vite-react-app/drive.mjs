// Drives the built React app (./dist, React's development build, so StrictMode mounts,
// unmounts and mounts again) in headless Chromium against the real worker: the page must
// show the online count, a comment posted from Node, a poll opened by the admin API, the
// viewer's vote and the revealed tallies, over exactly one WebSocket; leaving (unmounting
// the provider) closes it. Run by tests/tests/sdk_vite.rs with OVATION_URL, OVATION_ROOM,
// OVATION_TOKENS, OVATION_REPO (for playwright-core) and OVATION_ARTIFACTS.

import path from "node:path";
import WebSocket from "ws";
import { connect } from "ovation";
import { inside, launchChromium, serve } from "./browser.mjs";

const { OVATION_URL, OVATION_ROOM, OVATION_REPO, OVATION_ARTIFACTS } = process.env;
const TOKENS = JSON.parse(process.env.OVATION_TOKENS);

async function admin(pathname, body) {
  const resp = await fetch(`${OVATION_URL}${pathname}`, {
    method: "POST",
    headers: { authorization: `Bearer ${TOKENS.admin}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const reply = await resp.json();
  if (!resp.ok) throw new Error(`${pathname}: ${resp.status} ${JSON.stringify(reply)}`);
  return reply;
}

const dist = path.resolve("dist");
const { server, base } = await serve((url) =>
  inside(dist, url.pathname.replace(/\/$/, "/index.html")),
);
const pageUrl = new URL(`${base}/`);
pageUrl.search = new URLSearchParams({ url: OVATION_URL, room: OVATION_ROOM, token: TOKENS.ana });

const browser = await launchChromium(OVATION_REPO);
let bob = null;
let failed = false;
const logs = [];
try {
  const page = await browser.newPage();
  page.on("console", (m) => logs.push(`${m.type()}: ${m.text()}`));
  page.on("pageerror", (e) => logs.push(`pageerror: ${e.message}`));
  // Every WebSocket the page constructs, counted before the app's code runs.
  await page.addInitScript(() => {
    const Native = window.WebSocket;
    window.__sockets = [];
    window.WebSocket = class extends Native {
      constructor(...args) {
        super(...args);
        window.__sockets.push(this);
      }
    };
  });
  const text = (selector) =>
    page.evaluate((s) => document.querySelector(s)?.textContent ?? null, selector);
  const waitFor = async (what, predicate, arg, timeout = 10000) => {
    try {
      await page.waitForFunction(predicate, arg, { timeout });
    } catch {
      throw new Error(
        `the page did not show ${what} (status "${await text("#status")}", online ` +
          `"${await text("#online")}", comments "${await text("#comments")}")\n${logs.join("\n")}`,
      );
    }
  };

  await page.goto(pageUrl.href);
  await waitFor(
    "status open",
    () => document.getElementById("status")?.textContent === "open",
    null,
    15000,
  );

  bob = await connect({ url: OVATION_URL, room: OVATION_ROOM, token: TOKENS.bob, WebSocket });
  await waitFor("2 online", () => document.getElementById("online").textContent === "2");

  const comment = `hello from node ${Date.now()}`;
  await bob.comment(comment);
  await waitFor(
    "the comment",
    (t) =>
      [...document.querySelectorAll("#comments li")].some((li) => li.textContent === `BOB: ${t}`),
    comment,
  );

  const poll = await admin(`/v1/rooms/${OVATION_ROOM}/polls`, {
    question: "Which color?",
    options: ["red", "blue"],
    window_ms: 60000,
  });
  await waitFor(
    "the open poll",
    () =>
      document.querySelector("#poll h2")?.textContent === "Which color?" &&
      document.getElementById("poll").dataset.phase === "open",
  );
  await page.click("#poll button:nth-of-type(2)");
  await waitFor(
    "the vote acknowledged",
    () => document.getElementById("voted").textContent === "voted blue",
  );
  await admin(`/v1/rooms/${OVATION_ROOM}/polls/${poll.id}/close`, {});
  await waitFor("the tallies", () => document.getElementById("tallies")?.textContent === "0,1");
  await page.screenshot({ path: path.join(OVATION_ARTIFACTS, "vite-react-app.png") });

  const sockets = await page.evaluate(() => window.__sockets.length);
  if (sockets !== 1) throw new Error(`StrictMode opened ${sockets} WebSockets, not 1`);

  await page.click("#leave");
  await waitFor(
    "the socket closed after unmount",
    () => window.__sockets.every((s) => s.readyState === WebSocket.CLOSED),
    null,
    5000,
  );
  console.log(
    "the React app in Chromium showed the online count, a comment, a vote and its tallies " +
      "on one WebSocket, closed on unmount",
  );
} catch (e) {
  failed = true;
  console.error(e);
} finally {
  if (bob) bob.close();
  await browser.close();
  server.close();
}
process.exit(failed ? 1 : 0);
