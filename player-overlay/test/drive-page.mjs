// What the overlay driver's scenarios share (see drive.mjs): the page server, Chromium,
// the tokens, pages and the helpers that wait on them, the admin API.

import path from "node:path";
import { inside, launchChromium, serve } from "./browser.mjs";

export const env = process.env;
export const TOKENS = JSON.parse(env.OVATION_TOKENS);
const PRODUCT_SVG = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 80 80"><rect width="80" height="80" fill="#223"/>
<path d="M10 52 q12-2 22-14 l8 6 q10 6 30 8 v10 H10z" fill="#e33"/><rect x="10" y="60" width="60" height="6" fill="#fff"/></svg>`;

// The overlay's files under /overlay/ (relative paths must work from a subdirectory),
// the installed SDK under /ovation/, hls.js at /hls.js, a product image.
export const { server, base } = await serve((url) => {
  if (url.pathname === "/product.svg") return { type: "image/svg+xml", body: PRODUCT_SVG };
  if (url.pathname === "/hls.js")
    return path.join(env.OVATION_REPO, "node_modules/hls.js/dist/hls.min.js");
  if (url.pathname.startsWith("/overlay/"))
    return inside(env.OVATION_OVERLAY, url.pathname.slice(9));
  if (url.pathname.startsWith("/ovation/")) return inside(env.OVATION_SDK, url.pathname.slice(9));
  return null;
});
export const browser = await launchChromium(env.OVATION_REPO, [
  "--autoplay-policy=no-user-gesture-required",
]);

export const PHONE = {
  viewport: { width: 390, height: 844 },
  deviceScaleFactor: 2,
  isMobile: true,
  hasTouch: true,
};
export const DESKTOP = { viewport: { width: 1280, height: 720 } };
export const pages = [];

/** A page of `file` in its own browser context (its own storage), logging its console. */
export async function open(file, token, { context = DESKTOP, init = null, extra = {} } = {}) {
  const ctx = await browser.newContext(context);
  const page = await ctx.newPage();
  page.logs = [];
  page.on("console", (m) => page.logs.push(`${m.type()}: ${m.text()}`));
  page.on("pageerror", (e) => page.logs.push(`pageerror: ${e.message}`));
  if (init) await page.addInitScript(init);
  const q = new URLSearchParams({ url: env.OVATION_URL, room: env.OVATION_ROOM, token, ...extra });
  await page.goto(`${base}/overlay/${file}?${q}`);
  pages.push([file, page]);
  return page;
}

/** Waits for `fn(arg)` in the page (the overlay's shadow root is `window.sr()`). */
export async function until(page, what, fn, arg, timeout = 20000) {
  try {
    await page.waitForFunction(fn, arg, { timeout, polling: 100 });
  } catch (e) {
    throw new Error(`${what}: ${e.message.split("\n")[0]}`);
  }
}

export const SR = () => {
  window.sr = () => document.querySelector("ovation-overlay").shadowRoot;
};
export const fail = (message) => {
  throw new Error(message);
};
export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** The admin API of the room (Node's fetch), with the admin token. */
export async function admin(method, route, body) {
  const resp = await fetch(`${env.OVATION_URL}/v1/rooms/${env.OVATION_ROOM}${route}`, {
    method,
    headers: { authorization: `Bearer ${TOKENS.admin}`, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await resp.text();
  if (!resp.ok) fail(`${method} ${route}: ${resp.status} ${text}`);
  return JSON.parse(text);
}
