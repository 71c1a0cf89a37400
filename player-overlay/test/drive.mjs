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
//
// The scenarios: drive-viewers.mjs, bridgeScenario below, drive-a11y.mjs; what they share:
// drive-page.mjs.

import path from "node:path";
import WebSocket from "ws";
import { connect } from "ovation";
import { env, TOKENS, server, browser, pages, open, until, fail, sleep } from "./drive-page.mjs";
import { a11yScenario } from "./drive-a11y.mjs";
import { viewersScenario } from "./drive-viewers.mjs";

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
  // No settlement service on this server: gifts are off, the room shows no prices, and
  // the overlay shows no gift button (its picker would be empty).
  await until(
    page,
    "no gift button while gifts are off",
    () => {
      const overlay = document.querySelector("ovation-overlay");
      const parts = overlay.room?.state?.parts;
      return parts?.room && overlay.shadowRoot.querySelector(".gift-toggle").hidden;
    },
    undefined,
  );

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
