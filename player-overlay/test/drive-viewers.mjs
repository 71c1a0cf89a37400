// The "viewers" scenario of the overlay driver (see drive.mjs).

import path from "node:path";
import WebSocket from "ws";
import { connect } from "ovation";
import { env, TOKENS, base, PHONE, DESKTOP, open, until, SR, fail, sleep } from "./drive-page.mjs";

export async function viewersScenario() {
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
    // The bars grow with a CSS transition from 0: wait for them to be drawn (a loaded
    // machine measured every width at 0 right after the result arrived).
    await until(page, "result bars drawn", () => {
      const widths = [...window.sr().querySelectorAll(".poll .option .fill")].map(
        (fill) => fill.getBoundingClientRect().width,
      );
      return widths[1] > widths[0] && widths[0] > 0 && widths[2] === 0;
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
  // A staff member's direct message shaped like the room's own score is not a score: the
  // overlay takes scores and mute notices from the room (`ovation`) only.
  const staff = await connect({
    url: env.OVATION_URL,
    room: env.OVATION_ROOM,
    token: TOKENS.host,
    WebSocket,
  });
  const realScore = await ana.evaluate(() => window.sr().querySelector(".quiz .score").textContent);
  const quizId = await ana.evaluate(() => window.sr().querySelector(".quiz").dataset.id);
  await staff.direct("ana", {
    type: "quiz_score",
    quiz: quizId,
    question: 0,
    answered: true,
    correct: true,
    points: 500,
    score: 9999,
    rank: 1,
    participants: 1,
  });
  await staff.direct("ana", { type: "muted" });
  await sleep(1_000); // delivered (acknowledged) above; give the page time to act on it
  const shown = await ana.evaluate(() => ({
    score: window.sr().querySelector(".quiz .score").textContent,
    toast: window.sr().querySelector(".toast")?.textContent ?? "",
  }));
  if (shown.score !== realScore || shown.score.includes("9999"))
    fail(`a staff direct message forged the quiz score: ${JSON.stringify(shown)}`);
  if (shown.toast.includes("muted"))
    fail(`a staff direct message forged a mute notice: ${JSON.stringify(shown)}`);
  staff.close();
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
