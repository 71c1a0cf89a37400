// The "a11y" scenario of the overlay driver (see drive.mjs).

import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";
import WebSocket from "ws";
import { connect } from "ovation";
import {
  env,
  TOKENS,
  base,
  PHONE,
  DESKTOP,
  open,
  until,
  SR,
  fail,
  sleep,
  admin,
} from "./drive-page.mjs";

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

export async function a11yScenario() {
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
