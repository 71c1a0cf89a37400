// Drives <ovation-overlay>, the host console and the webview bridge in headless Chromium
// against the real worker (run by tests/tests/overlay.rs, copied next to the installed
// SDK so `import "ovation"` resolves). Env: OVATION_URL, OVATION_ROOM, OVATION_TOKENS
// (JSON), OVATION_REPO (playwright-core, hls.js), OVATION_SDK (the installed package),
// OVATION_OVERLAY (the player-overlay directory), OVATION_ARTIFACTS, OVATION_SCENARIO:
//
// "viewers": two viewer pages (a phone in portrait, a desktop) and the host console.
//   The host starts a poll from the console form; both viewers see the card and vote
//   (a tap, the keyboard) with a third viewer from Node; the console shows the live
//   tallies; the host closes it; both viewers show result bars with the right counts.
//   A comment typed into one overlay shows on the other and on the console, and the
//   console's Delete removes it everywhere; a like raises the count the others see; a
//   pinned product shows its deep link and counts a click; a quiz question is answered
//   and scored. Screenshots of the three pages go to OVATION_ARTIFACTS.
// "bridge": stubbed iOS and Android handlers receive the status and the room's events;
//   window.ovation.dispatch() from "native" posts a comment another client receives and
//   posts back its result.
// "a11y": with a poll, a product with a long unbroken title, the Q&A list and the gift
//   picker open, on a phone (touch: coarse pointer) and on a desktop: axe-core finds no
//   serious or critical violation (label-in-name included); on the phone every visible
//   control and link is at least 44×44 px; every control's name contains its visible
//   text; the title stays inside its card. The host console passes axe as well.

import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";
import WebSocket from "ws";
import { connect } from "ovation";
import { inside, launchChromium, serve } from "./browser.mjs";

const env = process.env;
const TOKENS = JSON.parse(env.OVATION_TOKENS);
const PRODUCT_SVG = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 80 80"><rect width="80" height="80" fill="#223"/>
<path d="M10 52 q12-2 22-14 l8 6 q10 6 30 8 v10 H10z" fill="#e33"/><rect x="10" y="60" width="60" height="6" fill="#fff"/></svg>`;

// The overlay's files under /overlay/ (relative paths must work from a subdirectory),
// the installed SDK under /ovation/, hls.js at /hls.js, a product image.
const { server, base } = await serve((url) => {
  if (url.pathname === "/product.svg") return { type: "image/svg+xml", body: PRODUCT_SVG };
  if (url.pathname === "/hls.js")
    return path.join(env.OVATION_REPO, "node_modules/hls.js/dist/hls.min.js");
  if (url.pathname.startsWith("/overlay/"))
    return inside(env.OVATION_OVERLAY, url.pathname.slice(9));
  if (url.pathname.startsWith("/ovation/")) return inside(env.OVATION_SDK, url.pathname.slice(9));
  return null;
});
const browser = await launchChromium(env.OVATION_REPO, [
  "--autoplay-policy=no-user-gesture-required",
]);

const PHONE = {
  viewport: { width: 390, height: 844 },
  deviceScaleFactor: 2,
  isMobile: true,
  hasTouch: true,
};
const DESKTOP = { viewport: { width: 1280, height: 720 } };
const pages = [];

/** A page of `file` in its own browser context (its own storage), logging its console. */
async function open(file, token, { context = DESKTOP, init = null, extra = {} } = {}) {
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
async function until(page, what, fn, arg, timeout = 20000) {
  try {
    await page.waitForFunction(fn, arg, { timeout, polling: 100 });
  } catch (e) {
    throw new Error(`${what}: ${e.message.split("\n")[0]}`);
  }
}

const SR = () => {
  window.sr = () => document.querySelector("ovation-overlay").shadowRoot;
};
const fail = (message) => {
  throw new Error(message);
};
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function viewersScenario() {
  const host = await open("console.html", TOKENS.host, {
    context: { viewport: { width: 1280, height: 1000 } },
  });
  await until(
    host,
    "console connects",
    () => document.getElementById("status").dataset.status === "open",
  );
  const ana = await open("demo.html", TOKENS.ana, {
    context: PHONE,
    init: SR,
    extra: { mode: "danmaku" },
  });
  const bob = await open("demo.html", TOKENS.bob, {
    context: DESKTOP,
    init: SR,
    extra: { mode: "list" },
  });
  const viewers = [ana, bob];
  for (const page of viewers) {
    await until(
      page,
      "overlay connects",
      () => window.sr().querySelector(".status").dataset.status === "open",
    );
    const text = await page.evaluate(() => window.sr().querySelector(".status").textContent);
    if (text !== "Live") fail(`status reads ${JSON.stringify(text)}, not "Live"`);
  }
  const cy = await connect({
    url: env.OVATION_URL,
    room: env.OVATION_ROOM,
    token: TOKENS.cy,
    WebSocket,
  });

  // Accessibility basics: real buttons with names, a polite live region, labelled inputs.
  for (const page of viewers) {
    if ((await page.getByRole("button", { name: /^Like/ }).count()) !== 1)
      fail("no button named Like");
    if ((await page.getByRole("textbox", { name: "Write a comment" }).count()) !== 1)
      fail("no labelled comment box");
    const live = await page.evaluate(() =>
      window.sr().querySelector(".comments").getAttribute("aria-live"),
    );
    if (live !== "polite") fail(`comments aria-live=${live}`);
    // The demo keeps the bottom 48 px for the video's controls (dead-zones="bottom:48px").
    const clear = await page.evaluate(
      () =>
        document.querySelector("ovation-overlay").getBoundingClientRect().bottom -
        window.sr().querySelector(".bar").getBoundingClientRect().bottom,
    );
    if (!(clear >= 48)) fail(`the bar is ${clear} px from the bottom, inside the dead zone`);
  }

  // ---- The host starts a poll from the console. ----
  const question = "Which colour wins?";
  await host.fill("#poll-question", question);
  await host.fill("#poll-options", "Red\nBlue\nGreen");
  await host.fill("#poll-window", "120");
  await host.click("#poll-start");
  for (const page of viewers) {
    await until(
      page,
      "the poll card shows",
      (q) => {
        const card = window.sr().querySelector(".poll");
        return (
          !card.hidden &&
          card.dataset.phase === "open" &&
          card.querySelector(".question").textContent === q &&
          card.querySelectorAll("button.option").length === 3 &&
          /^\d+ s left$/.test(card.querySelector(".countdown").textContent)
        );
      },
      question,
    );
  }
  console.log("both viewers show the poll card with a countdown");
  const pollId = await host.getAttribute("#poll-current", "data-id");
  // Ana taps (phone), Bob uses the keyboard, Cy votes from Node.
  await ana.locator("ovation-overlay .poll button.option[data-index='0']").tap();
  await bob.getByRole("button", { name: "Blue" }).focus();
  await bob.keyboard.press("Enter");
  await cy.vote(pollId, 1);
  for (const [page, mine] of [
    [ana, 0],
    [bob, 1],
  ]) {
    await until(
      page,
      "the vote is marked",
      (i) => {
        const buttons = [...window.sr().querySelectorAll(".poll button.option")];
        return buttons.every(
          (b, j) =>
            b.getAttribute("aria-pressed") === String(i === j) &&
            b.getAttribute("aria-disabled") === "true",
        );
      },
      mine,
    );
  }
  await until(host, "the console shows live tallies 1/2/0", () => {
    const counts = [...document.querySelectorAll("#poll-tallies tr td.count")].map(
      (td) => td.textContent,
    );
    return (
      counts.join(",") === "1,2,0" && document.getElementById("poll-votes").textContent === "3"
    );
  });
  console.log("the console shows the live tallies: Red 1, Blue 2, Green 0");
  // Tallies are not public: viewers see no counts while voting is open.
  const early = await bob.evaluate(() =>
    [...window.sr().querySelectorAll(".poll .option")].map((b) => b.dataset.votes ?? null),
  );
  if (early.some((v) => v !== null)) fail(`viewers saw tallies before the result: ${early}`);

  await host.click("#poll-close");
  for (const page of viewers) {
    await until(page, "result bars show", () => {
      const card = window.sr().querySelector(".poll");
      const options = [...card.querySelectorAll(".option")];
      return (
        card.dataset.phase === "result" && options.map((b) => b.dataset.votes).join(",") === "1,2,0"
      );
    });
    const bars = await page.evaluate(() =>
      [...window.sr().querySelectorAll(".poll .option")].map((b) => ({
        share: b.style.getPropertyValue("--share"),
        width: b.querySelector(".fill").getBoundingClientRect().width,
        text: `${b.querySelector(".votes").textContent} ${b.querySelector(".share").textContent}`,
        phase: window.sr().querySelector(".poll .phase").textContent,
        countdown: window.sr().querySelector(".poll .countdown").textContent,
      })),
    );
    if (bars.map((b) => b.share).join(",") !== "33%,67%,0%")
      fail(`bar shares ${JSON.stringify(bars)}`);
    if (!(bars[1].width > bars[0].width && bars[0].width > 0 && bars[2].width === 0))
      fail(`bar widths ${JSON.stringify(bars)}`);
    if (bars[1].text !== "2 67%" || bars[0].phase !== "Results" || bars[0].countdown !== "") {
      fail(`result text ${JSON.stringify(bars)}`);
    }
  }
  console.log("both viewers show result bars 1 (33%), 2 (67%), 0 (0%)");

  // ---- Comments flow, and the console removes one. ----
  await ana.getByRole("textbox", { name: "Write a comment" }).fill("Hello from Ana");
  await ana.keyboard.press("Enter");
  await bob.getByRole("textbox", { name: "Write a comment" }).fill("Hi Ana!");
  await bob.getByRole("button", { name: "Send" }).click();
  const shows = (page, text, inConsole = false) =>
    until(
      page,
      `"${text}" shows`,
      ([t, c]) => {
        const items = c
          ? document.querySelectorAll("#comments li")
          : window.sr().querySelectorAll(".comments li");
        return [...items].some((li) => li.textContent.includes(t));
      },
      [text, inConsole],
    );
  for (const text of ["Hello from Ana", "Hi Ana!"]) {
    await shows(ana, text);
    await shows(bob, text);
    await shows(host, text, true);
  }
  const named = await bob.evaluate(() =>
    [...window.sr().querySelectorAll(".comments li")].map(
      (li) => li.querySelector(".name").textContent,
    ),
  );
  if (!named.includes("ANA")) fail(`comment names: ${named}`);
  if ((await ana.evaluate(() => window.sr().querySelector("#say-input").value)) !== "")
    fail("the comment box was not cleared");
  // Ana's overlay is in danmaku mode: the comment flies over the video, and the list
  // stays for screen readers only.
  await until(ana, "the comment flies", () =>
    [...window.sr().querySelectorAll(".danmaku .fly")].some((f) =>
      f.textContent.includes("Hi Ana!"),
    ),
  );
  const listWidth = await ana.evaluate(
    () => window.sr().querySelector(".comments").getBoundingClientRect().width,
  );
  if (listWidth > 1) fail(`the danmaku overlay shows its list (${listWidth} px wide)`);
  console.log(
    "comments typed into one overlay show on the other (list and danmaku) and on the console",
  );
  await ana.getByRole("textbox", { name: "Write a comment" }).fill("this one goes away");
  await ana.keyboard.press("Enter");
  await shows(host, "this one goes away", true);
  await shows(bob, "this one goes away");
  await host
    .locator("#comments li", { hasText: "this one goes away" })
    .getByRole("button", { name: /^Delete/ })
    .click();
  for (const page of viewers) {
    await until(
      page,
      "the removed comment disappears",
      () =>
        ![...window.sr().querySelectorAll(".comments li")].some((li) =>
          li.textContent.includes("goes away"),
        ),
    );
  }
  await until(
    host,
    "the console drops it too",
    () =>
      ![...document.querySelectorAll("#comments li")].some((li) =>
        li.textContent.includes("goes away"),
      ),
  );
  console.log("the console's Delete removed a comment from both viewers");

  // ---- Likes. ----
  const likesOf = (page) =>
    page.evaluate(() => Number(window.sr().querySelector(".like-count").textContent));
  const before = await likesOf(bob);
  await ana.getByRole("button", { name: /^Like/ }).tap();
  const hearts = await ana.evaluate(() => window.sr().querySelectorAll(".hearts .heart").length);
  if (hearts < 1) fail("no heart floated on the liker's screen");
  await until(
    bob,
    "the other viewer's like count rises",
    (n) => Number(window.sr().querySelector(".like-count").textContent) === n,
    before + 1,
  );
  await until(
    host,
    "the console's like count rises",
    (n) => Number(document.getElementById("likes").textContent) === n,
    before + 1,
  );
  console.log(
    `a like raised the count from ${before} to ${before + 1} on the other viewer and the console`,
  );
  await ana.emulateMedia({ reducedMotion: "reduce" });
  await ana.getByRole("button", { name: /^Like/ }).tap();
  const still = await ana.evaluate(() =>
    [...window.sr().querySelectorAll(".hearts .heart")].map(
      (h) => getComputedStyle(h).animationName,
    ),
  );
  if (!still.includes("ovation-fade")) fail(`with reduced motion the hearts run ${still}`);
  await ana.emulateMedia({ reducedMotion: "no-preference" });
  await until(
    bob,
    "viewer count",
    () => Number(window.sr().querySelector(".viewer-count").textContent) >= 3,
  );

  // ---- A product card with a deep link; the click is counted. ----
  await host.fill("#product-id", "red-1");
  await host.fill("#product-title", "Red sneakers");
  await host.fill("#product-price", "€89");
  await host.fill("#product-image", `${base}/product.svg`);
  await host.fill("#product-link", "shop://item/red");
  await host.click("#product-pin");
  for (const page of viewers) {
    await until(page, "the product card shows", () => {
      const card = window.sr().querySelector(".product");
      return (
        !card.hidden &&
        card.querySelector(".product-title").textContent === "Red sneakers" &&
        card.querySelector("a.buy").getAttribute("href") === "shop://item/red"
      );
    });
  }
  // The deep link has no handler here: keep the click, drop the navigation.
  await bob.evaluate(() =>
    window.sr().addEventListener(
      "click",
      (e) => {
        if (e.target.closest("a")) e.preventDefault();
      },
      true,
    ),
  );
  await bob.getByRole("link", { name: /^Shop now: Red sneakers, €89$/ }).click();
  await until(
    host,
    "the console counts the click",
    () => document.getElementById("product-clicks").textContent === "1",
  );
  console.log("the product card shows its deep link; a click reached the console");

  // ---- Q&A: a viewer asks, another upvotes, the host marks it answered. ----
  await bob.getByRole("button", { name: /^Q&A/ }).click();
  if ((await bob.getByRole("button", { name: /^Q&A/ }).getAttribute("aria-expanded")) !== "true")
    fail("Q&A did not expand");
  const asked = bob.getByRole("textbox", { name: "Ask the host a question" });
  if (!(await asked.evaluate((input) => input.getRootNode().activeElement === input)))
    fail("the Q&A box did not take focus");
  await asked.fill("Which sizes?");
  await bob.keyboard.press("Enter");
  await until(host, "the console lists the question", () =>
    document.getElementById("qa-visible").textContent.includes("Which sizes?"),
  );
  await ana.getByRole("button", { name: /^Q&A/ }).tap();
  await ana.getByRole("button", { name: /^Upvote “Which sizes\?”/ }).tap();
  await until(
    bob,
    "the upvote counts",
    () => window.sr().querySelector(".qa-list .upvote").textContent === "▲ 1",
  );
  await host
    .locator("#qa-visible li", { hasText: "Which sizes?" })
    .getByRole("button", { name: "Answered" })
    .click();
  await until(
    bob,
    "the question shows answered",
    () =>
      window.sr().querySelector(".qa-list li.answered .qa-meta")?.textContent === "BOB · answered",
  );
  await bob.keyboard.press("Escape");
  const closed = await bob.evaluate(
    () =>
      window.sr().querySelector(".qa").hidden &&
      window.sr().activeElement?.classList.contains("qa-toggle"),
  );
  if (!closed) fail("Escape did not close the Q&A panel and focus its button");
  await ana.getByRole("button", { name: /^Q&A/ }).tap();
  console.log("Q&A: asked from one overlay, upvoted from the other, answered from the console");

  // ---- The gift picker opens from the keyboard, lists the catalog, closes on Escape. ----
  await bob.getByRole("button", { name: "Gifts" }).focus();
  await bob.keyboard.press("Enter");
  const gifts = await bob.evaluate(() => ({
    open: !window.sr().querySelector(".gift-picker").hidden,
    expanded: window.sr().querySelector(".gift-toggle").getAttribute("aria-expanded"),
    focused: window.sr().activeElement?.dataset.sku,
    labels: [...window.sr().querySelectorAll(".gift-list button")].map((b) =>
      b.getAttribute("aria-label"),
    ),
  }));
  if (
    !gifts.open ||
    gifts.expanded !== "true" ||
    gifts.focused !== "rose" ||
    gifts.labels.join("|") !== "Send Rose, 1|Send Heart, 5|Send Rocket, 100"
  ) {
    fail(`gift picker: ${JSON.stringify(gifts)}`);
  }
  await bob.keyboard.press("Escape");
  if (
    !(await bob.evaluate(
      () =>
        window.sr().querySelector(".gift-picker").hidden &&
        window.sr().activeElement?.classList.contains("gift-toggle"),
    ))
  )
    fail("Escape did not close the gift picker");

  // ---- An announcement. ----
  await host.fill("#announce-text", "Giveaway at 9 pm!");
  await host.click("#announce-set");
  for (const page of viewers) {
    await until(page, "the banner shows", () => {
      const banner = window.sr().querySelector(".banner");
      return !banner.hidden && banner.textContent === "Giveaway at 9 pm!";
    });
  }

  // ---- A quiz question, answered and scored. ----
  await host.fill("#quiz-title", "Trivia");
  await host.fill("#quiz-questions", "2 + 2? | 3 | *4 | 5");
  await host.fill("#quiz-window", "120");
  await host.click("#quiz-create");
  await until(host, "the quiz exists", () =>
    /\(z\d+, new\)/.test(document.getElementById("quiz-phase").textContent),
  );
  await host.click("#quiz-next");
  await until(ana, "the quiz question shows", () => {
    const card = window.sr().querySelector(".quiz");
    return (
      !card.hidden &&
      card.dataset.phase === "open" &&
      card.querySelector(".question").textContent === "2 + 2?"
    );
  });
  await ana.locator("ovation-overlay .quiz button.option[data-index='1']").tap();
  await until(
    host,
    "the console counts the answer",
    () => document.getElementById("quiz-answers").textContent === "1",
  );
  await host.click("#quiz-close");
  await until(ana, "the quiz result and score show", () => {
    const card = window.sr().querySelector(".quiz");
    return (
      card.dataset.phase === "result" &&
      card.querySelector(".option.correct")?.dataset.index === "1" &&
      /^Correct! \+\d+ · score \d+ · rank 1 of 1$/.test(card.querySelector(".score").textContent)
    );
  });
  await until(
    bob,
    "the other viewer sees the correct answer",
    () => window.sr().querySelector(".quiz .option.correct")?.dataset.index === "1",
  );
  console.log(
    `quiz: ${await ana.evaluate(() => window.sr().querySelector(".quiz .score").textContent)}`,
  );
  // A viewer may hide a card (until it changes).
  await ana.getByRole("button", { name: "Hide the quiz" }).tap();
  if (!(await ana.evaluate(() => window.sr().querySelector(".quiz").hidden)))
    fail("the quiz card did not hide");

  await sleep(300); // let bars finish their transition
  await ana.screenshot({ path: path.join(env.OVATION_ARTIFACTS, "overlay-viewer-a.png") });
  await bob.screenshot({ path: path.join(env.OVATION_ARTIFACTS, "overlay-viewer-b.png") });
  await host.screenshot({
    path: path.join(env.OVATION_ARTIFACTS, "overlay-console.png"),
    fullPage: true,
  });
  console.log(`screenshots in ${env.OVATION_ARTIFACTS}`);
  cy.close();
}

async function bridgeScenario() {
  // What a WKWebView and an Android WebView put into the page, recording each message.
  const stubs = () => {
    window.native = [];
    window.webkit = {
      messageHandlers: { ovation: { postMessage: (m) => window.native.push(["ios", m]) } },
    };
    window.OvationAndroid = { postMessage: (m) => window.native.push(["android", m]) };
    window.domEvents = [];
    document.addEventListener("ovation:comment", (e) => window.domEvents.push(e.detail.text));
  };
  const page = await open("demo.html", TOKENS.dan, { init: stubs });
  // Messages a platform got, parsed (both get JSON text).
  const got = (platform, predicate) =>
    until(
      page,
      `${platform}: ${predicate}`,
      ([p, body]) => {
        const test = new Function("m", `return ${body};`);
        return window.native.some(
          ([to, m]) => to === p && typeof m === "string" && test(JSON.parse(m)),
        );
      },
      [platform, predicate],
    );
  for (const platform of ["ios", "android"]) {
    await got(platform, `m.type === "status" && m.payload.status === "open"`);
  }
  console.log("both native handlers got {type: status, payload: {status: open}}");

  const cy = await connect({
    url: env.OVATION_URL,
    room: env.OVATION_ROOM,
    token: TOKENS.cy,
    WebSocket,
  });
  const heard = [];
  cy.on("comment", (c) => heard.push(c));
  await cy.comment("from node");
  for (const platform of ["ios", "android"]) {
    await got(
      platform,
      `m.type === "comment" && m.payload.text === "from node" && m.payload.name === "CY"`,
    );
  }
  await until(page, "the DOM event fires", () => window.domEvents.includes("from node"));
  console.log("both native handlers and the DOM got the comment");

  const result = await page.evaluate(() =>
    window.ovation.dispatch('{"action":"comment","text":"from native","id":"n1"}'),
  );
  if (typeof result?.seq !== "number") fail(`dispatch resolved ${JSON.stringify(result)}`);
  for (let i = 0; i < 100 && !heard.some((c) => c.text === "from native"); i++) await sleep(100);
  const fromNative = heard.find((c) => c.text === "from native");
  if (fromNative?.user !== "dan") fail(`the other client heard ${JSON.stringify(heard)}`);
  for (const platform of ["ios", "android"]) {
    await got(
      platform,
      `m.type === "result" && m.id === "n1" && m.ok === true && typeof m.result.seq === "number"`,
    );
  }
  console.log(
    `dispatch posted a comment (seq ${fromNative.seq}) another client received; result n1 ok`,
  );

  const refused = await page.evaluate(() =>
    window.ovation.dispatch({ action: "launch", id: "n2" }).then(
      () => null,
      (e) => e.code,
    ),
  );
  if (refused !== "invalid_action") fail(`an unknown action was ${refused}`);
  await got(
    "android",
    `m.type === "result" && m.id === "n2" && m.ok === false && m.error.code === "invalid_action"`,
  );
  const empty = await page.evaluate(() =>
    window.ovation.dispatch('{"action":"comment","id":"n3"}').then(
      () => null,
      (e) => e.code,
    ),
  );
  if (empty !== "invalid") fail(`a comment without text was ${empty}`);
  console.log("unknown actions and missing fields are refused with a code, posted back as results");
  cy.close();
}

/** The admin API of the room (Node's fetch), with the admin token. */
async function admin(method, route, body) {
  const resp = await fetch(`${env.OVATION_URL}/v1/rooms/${env.OVATION_ROOM}${route}`, {
    method,
    headers: { authorization: `Bearer ${TOKENS.admin}`, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await resp.text();
  if (!resp.ok) fail(`${method} ${route}: ${resp.status} ${text}`);
  return JSON.parse(text);
}

/** The interactive elements a viewer can see in the overlay: boxes, names, visible text. */
const CONTROLS = () =>
  [...window.sr().querySelectorAll("button, a[href], input, select, textarea")]
    .filter((e) => e.getClientRects().length > 0 && getComputedStyle(e).visibility !== "hidden")
    .map((e) => {
      const r = e.getBoundingClientRect();
      // The text a sighted user sees: screen-reader-only parts (clipped to 1 px) left out.
      let visible = "";
      const walker = document.createTreeWalker(e, NodeFilter.SHOW_TEXT);
      for (let node = walker.nextNode(); node; node = walker.nextNode()) {
        const box = node.parentElement.getBoundingClientRect();
        if (box.width > 1 && box.height > 1) visible += node.textContent;
      }
      return {
        what: `${e.tagName.toLowerCase()}.${[...e.classList].join(".")}`,
        width: r.width,
        height: r.height,
        label: e.getAttribute("aria-label"),
        visible,
      };
    });

/** Letters and digits only, lower case: how label-in-name compares texts. */
const words = (text) =>
  (text || "")
    .toLowerCase()
    .replace(/[^\p{L}\p{N}]+/gu, " ")
    .trim();

async function a11yScenario() {
  const axeSource = fs.readFileSync(
    createRequire(path.join(env.OVATION_REPO, "package.json")).resolve("axe-core/axe.min.js"),
    "utf8",
  );
  const title = `Limited${"X".repeat(90)}edition sneakers`; // 113 bytes: the limit is 120
  await admin("POST", "/products", {
    id: "long-1",
    title,
    price: "€189",
    image_url: `${base}/product.svg`,
    link: "https://shop.example/item/long-1",
  });
  const poll = await admin("POST", "/polls", {
    question: "Which colour wins?",
    options: ["Red", "Blue"],
    window_ms: 120000,
  });
  const cy = await connect({
    url: env.OVATION_URL,
    room: env.OVATION_ROOM,
    token: TOKENS.cy,
    WebSocket,
  });
  await cy.ask("Which sizes?");

  for (const [device, context] of [
    ["phone", PHONE],
    ["desktop", DESKTOP],
  ]) {
    const page = await open("demo.html", TOKENS.ana, { context, init: SR });
    await until(
      page,
      `${device}: the overlay connects`,
      () => window.sr().querySelector(".status").dataset.status === "open",
    );
    await cy.comment(`Looks great on the ${device}`);
    await until(
      page,
      `${device}: the poll and product cards, the comment show`,
      (t) => {
        const sr = window.sr();
        return (
          !sr.querySelector(".poll").hidden &&
          sr.querySelectorAll(".poll button.option").length === 2 &&
          !sr.querySelector(".product").hidden &&
          sr.querySelector(".product-title").textContent === t &&
          sr.querySelector(".comments li") !== null
        );
      },
      title,
    );
    // Open the Q&A list (with its upvote button) and the gift picker, so all are checked.
    await page.getByRole("button", { name: /^Q&A/ }).click();
    await until(
      page,
      `${device}: the question lists`,
      () => window.sr().querySelector(".qa-list .upvote") !== null,
    );
    await page.getByRole("button", { name: "Gifts" }).click();
    await until(
      page,
      `${device}: the gift picker opens`,
      () => !window.sr().querySelector(".gift-picker").hidden,
    );
    await sleep(300); // transitions settle before boxes and colours are measured
    await page.screenshot({ path: path.join(env.OVATION_ARTIFACTS, `overlay-a11y-${device}.png`) });

    const controls = await page.evaluate(CONTROLS);
    if (controls.length < 12)
      fail(`${device}: only ${controls.length} visible controls: ${JSON.stringify(controls)}`);
    if (!controls.some((c) => c.what.startsWith("a.buy")))
      fail(`${device}: the product link is not among the controls`);
    if (device === "phone") {
      // The phone context emulates touch: the overlay sees a coarse pointer.
      if (!(await page.evaluate(() => matchMedia("(pointer: coarse)").matches)))
        fail("the phone has no coarse pointer");
      const small = controls.filter((c) => c.width < 44 - 0.01 || c.height < 44 - 0.01);
      if (small.length)
        fail(`targets under 44×44 px on a coarse pointer: ${JSON.stringify(small)}`);
      console.log(`phone: all ${controls.length} visible controls are at least 44×44 px`);
    }
    // Label in name: a control named by aria-label says its visible text too.
    const mismatched = controls.filter(
      (c) => c.label !== null && words(c.visible) && !words(c.label).includes(words(c.visible)),
    );
    if (mismatched.length)
      fail(`${device}: names without their visible text: ${JSON.stringify(mismatched)}`);

    // The long unbroken title wraps or is cut inside its card, never past its edge.
    const fit = await page.evaluate(() => {
      const card = window.sr().querySelector(".product");
      const titleNode = card.querySelector(".product-title");
      const c = card.getBoundingClientRect();
      const t = titleNode.getBoundingClientRect();
      const x = card.querySelector(".dismiss").getBoundingClientRect();
      const underDismiss =
        t.right > x.left && t.left < x.right && t.bottom > x.top && t.top < x.bottom;
      return {
        card: [c.left, c.right],
        title: [t.left, t.right],
        cardScroll: card.scrollWidth - card.clientWidth,
        titleScroll: titleNode.scrollWidth - titleNode.clientWidth,
        underDismiss,
      };
    });
    if (
      !(
        fit.title[0] >= fit.card[0] &&
        fit.title[1] <= fit.card[1] + 0.5 &&
        fit.cardScroll <= 0 &&
        fit.titleScroll <= 0
      ) ||
      fit.underDismiss
    ) {
      fail(`${device}: the long product title leaves its card: ${JSON.stringify(fit)}`);
    }

    // axe-core over the whole page (it enters the overlay's shadow root), with the
    // label-in-name rule on; serious and critical violations fail.
    await page.addScriptTag({ content: axeSource });
    const result = await page.evaluate(() =>
      window.axe.run(document, {
        rules: { "label-content-name-mismatch": { enabled: true } },
        resultTypes: ["violations"],
      }),
    );
    const bad = result.violations.filter((v) => v.impact === "serious" || v.impact === "critical");
    for (const v of result.violations) {
      console.log(
        `${device}: axe ${v.impact} ${v.id}: ${v.nodes.length} node(s) ${JSON.stringify(v.nodes.map((n) => n.target))}`,
      );
    }
    if (bad.length) {
      fail(
        `${device}: axe found ${bad.length} serious or critical violation(s):\n${bad
          .map(
            (v) =>
              `${v.id} (${v.impact}): ${v.help}\n${v.nodes
                .map((n) => `  ${JSON.stringify(n.target)} ${n.failureSummary}`)
                .join("\n")}`,
          )
          .join("\n")}`,
      );
    }
    console.log(
      `${device}: axe-core finds no serious or critical violation; the long title stays in its card`,
    );
  }
  // The host console, with the poll open, passes axe too.
  const host = await open("console.html", TOKENS.host, {
    context: { viewport: { width: 1280, height: 1000 } },
  });
  await until(
    host,
    "console connects",
    () => document.getElementById("status").dataset.status === "open",
  );
  await host.addScriptTag({ content: axeSource });
  const consoleResult = await host.evaluate(() =>
    window.axe.run(document, {
      rules: { "label-content-name-mismatch": { enabled: true } },
      resultTypes: ["violations"],
    }),
  );
  const consoleBad = consoleResult.violations.filter(
    (v) => v.impact === "serious" || v.impact === "critical",
  );
  if (consoleBad.length) {
    fail(
      `console: axe found ${consoleBad.length} serious or critical violation(s): ${JSON.stringify(
        consoleBad.map((v) => [v.id, v.nodes.map((n) => n.target)]),
      )}`,
    );
  }
  console.log("console: axe-core finds no serious or critical violation");
  await admin("POST", `/polls/${poll.id}/close`, {});
  cy.close();
}

let failed = false;
try {
  if (env.OVATION_SCENARIO === "bridge") await bridgeScenario();
  else if (env.OVATION_SCENARIO === "a11y") await a11yScenario();
  else await viewersScenario();
} catch (e) {
  failed = true;
  console.error(e.stack || String(e));
  for (const [i, [file, page]] of pages.entries()) {
    console.error(`--- page ${i} (${file}) console:\n${page.logs.join("\n")}`);
    await page
      .screenshot({ path: path.join(env.OVATION_ARTIFACTS, `overlay-failed-${i}.png`) })
      .catch(() => {});
  }
} finally {
  await browser.close();
  server.close();
}
process.exit(failed ? 1 : 0);
