// <ovation-overlay>: Ovation's interactive layer over any <video>, a web component with no
// framework and no build step. It imports the `ovation` npm package (map "ovation" to its
// src/index.js with an import map, or let a bundler resolve it).
//
//   <div style="position: relative">                      <!-- the overlay fills this -->
//     <video id="v" playsinline></video>
//     <ovation-overlay for="v" url="https://live.example.com" room="weur-show" token="…"
//                      mode="list" dead-zones="bottom:56px"></ovation-overlay>
//   </div>
//
// Attributes (url, token, mode, sync and gifts are also properties):
//   url, room, token  where to connect; all three are needed, changing one reconnects
//   mode              "list" (default: a comment list) | "danmaku" (comments fly across
//                     the video; the list stays for screen readers)
//   dead-zones        areas kept clear for the player's own controls, e.g.
//                     "bottom:56px,top:0" (sides top/right/bottom/left; px, %, em, rem)
//   for               id of the <video> to attach (or set the `.video` property; set `.hls`
//                     to an hls.js instance to read its cues): cued polls, quizzes and
//                     products open when their frame plays
//   sync              "none" (default) | "video": comments and gifts wait for the video
//   gifts             JSON [{sku, label, price, icon?}] (or the `.gifts` property); the
//                     default is the service's default catalog (rose 1, heart 5, rocket 100)
//   bridge            "off" keeps the webview bridge (window.ovation, see bridge.js) out
//   replay            (boolean) plays the room's recording against the video instead of
//                     joining live (the SDK's `replay()`): the same UI, read-only (no
//                     composer, like button, gifts, questions, votes or answers)
// Properties: `.room` is the SDK's Room once connected (null before; the attribute keeps
// the room id, also readable as `.roomId`).
// DOM events (bubbling, composed): "ovation:<type>" for every SDK event (detail: its
// payload), "ovation:connected" (detail: {room}) once connected and attached.
//
// Theming: CSS custom properties, set on the element or any ancestor.
//   --ovation-font         font family                 system-ui, sans-serif
//   --ovation-font-size    base size                   15px (14px under 560px wide)
//   --ovation-text         text colour                 #fff
//   --ovation-muted        secondary text              rgba(255,255,255,.75)
//   --ovation-bg           panels and cards            rgba(12,12,16,.72)
//   --ovation-border       button and input borders    rgba(255,255,255,.28)
//   --ovation-accent       buttons, bars, hearts       #d81b4f (5.0:1 under white text)
//   --ovation-accent-text  text on the accent colour   #fff
//   --ovation-good         the correct quiz answer     #2ecc71
//   --ovation-focus        keyboard focus ring         #ffd60a
//   --ovation-radius       corner radius               12px
//   --ovation-gap          spacing                     8px
//   --ovation-danmaku-duration  time a comment flies   8s
// Animations respect prefers-reduced-motion (flying comments and hearts fade in place).
// Accessibility (checked with axe-core in Chromium by tests/tests/overlay.rs): text
// contrast at least 4.5:1 (WCAG AA; keep it when theming: accent-text on accent), every
// control and the product link at least 44×44 px on coarse pointers, accessible names
// that contain the visible text, long unbroken words wrap inside their card (a product
// title shows at most three lines, the rest ellipsized; its full text stays in the link's
// name).

import { connect, cueOf, replay } from "ovation";
import { installBridge, EVENT_TYPES } from "./bridge.js";

const COMMENTS_MAX = 100;
const DANMAKU_LANES = 6;
const DANMAKU_ITEMS_MAX = 40;
const HEARTS_MAX = 24;
const GIFT_POPS_MAX = 3;
const TOAST_MS = 4000;
// How the default catalog's gifts look. Prices are never written here: they come from the
// room (`gifts` in its `room` part), the one place that sets what a gift costs.
const GIFT_LOOKS = {
  rose: { label: "Rose", icon: "🌹" },
  heart: { label: "Heart", icon: "💖" },
  rocket: { label: "Rocket", icon: "🚀" },
};
const STATUS_TEXT = {
  connecting: "Connecting…",
  open: "Live",
  replay: "Replay",
  reconnecting: "Reconnecting…",
  closed: "Offline",
  ended: "Ended",
};
const ERROR_TEXT = {
  rate_limited: "Slow down a little.",
  muted: "You are muted.",
  blocked: "That message was blocked.",
  too_long: "That is too long.",
  poll_closed: "Voting has closed.",
  insufficient_funds: "Not enough balance.",
  forbidden: "Not allowed.",
  room_ended: "The live has ended.",
  unsupported_transport: "Sending is unavailable right now.",
};

const ICON = {
  eye: '<svg class="icon" viewBox="0 0 24 24" aria-hidden="true"><path d="M12 5C6.5 5 2.5 9.5 1 12c1.5 2.5 5.5 7 11 7s9.5-4.5 11-7c-1.5-2.5-5.5-7-11-7zm0 11a4 4 0 1 1 0-8 4 4 0 0 1 0 8z"/></svg>',
  gift: '<svg class="icon" viewBox="0 0 24 24" aria-hidden="true"><path d="M3 8h8v4H3zm10 0h8v4h-8zM4 13h7v8H4zm9 0h7v8h-7zM12 7.5C10 3.5 5.5 3.5 6.5 6.5 7 8 10 7.8 12 7.5zm0 0c2-4 6.5-4 5.5-1-.5 1.5-3.5 1.3-5.5 1z"/></svg>',
  send: '<svg class="icon" viewBox="0 0 24 24" aria-hidden="true"><path d="M2 21 23 12 2 3v7l15 2-15 2z"/></svg>',
  close:
    '<svg class="icon" viewBox="0 0 24 24" aria-hidden="true"><path d="M6.4 5 12 10.6 17.6 5 19 6.4 13.4 12l5.6 5.6-1.4 1.4-5.6-5.6L6.4 19 5 17.6 10.6 12 5 6.4z"/></svg>',
};

const STYLE = `
:host { position: absolute; inset: 0; display: block; pointer-events: none; z-index: 1;
  container-type: inline-size; line-height: 1.35; color: var(--ovation-text, #fff);
  font-family: var(--ovation-font, system-ui, -apple-system, "Segoe UI", Roboto, sans-serif);
  font-size: var(--ovation-font-size, 15px); }
:host([hidden]), [hidden] { display: none !important; }
* { box-sizing: border-box; }
.sr, .frame[data-mode="danmaku"] .comments { position: absolute !important; width: 1px; height: 1px;
  overflow: hidden; clip-path: inset(50%); white-space: nowrap; }
.frame { position: absolute; inset: var(--dz-top, 0px) var(--dz-right, 0px) var(--dz-bottom, 0px) var(--dz-left, 0px);
  display: grid; gap: var(--ovation-gap, 8px); padding: var(--ovation-gap, 8px);
  grid-template-columns: minmax(0, 1fr) minmax(0, 20rem); grid-template-rows: auto auto minmax(0, 1fr) auto;
  grid-template-areas: "top top" "banner banner" "comments side" "bar bar"; }
.top { grid-area: top; display: flex; gap: var(--ovation-gap, 8px); align-items: center; }
.pill { display: inline-flex; align-items: center; gap: .4em; margin: 0; padding: .2em .7em; border-radius: 999px;
  background: var(--ovation-bg, rgba(12,12,16,.72)); font-size: .85em; font-weight: 600; }
.dot { width: .6em; height: .6em; border-radius: 50%; background: #999; }
.status[data-status="open"] .dot { background: #ff3b30; }
.status[data-status="connecting"] .dot, .status[data-status="reconnecting"] .dot { background: #f5a623; animation: ovation-blink 1s infinite; }
.banner { grid-area: banner; margin: 0; padding: .45em .9em; border-radius: var(--ovation-radius, 12px); font-weight: 600;
  background: var(--ovation-accent, #d81b4f); color: var(--ovation-accent-text, #fff); pointer-events: auto; }
.side { grid-area: side; display: flex; flex-direction: column; gap: var(--ovation-gap, 8px); overflow: auto;
  min-height: 0; max-height: 100%; align-self: start; pointer-events: auto; }
.card { background: var(--ovation-bg, rgba(12,12,16,.72)); border-radius: var(--ovation-radius, 12px); padding: .75em;
  pointer-events: auto; backdrop-filter: blur(6px); -webkit-backdrop-filter: blur(6px); overflow-wrap: anywhere; }
.card h2 { font-size: 1.05em; margin: .25em 0 .5em; }
.icon { width: 1.15em; height: 1.15em; fill: currentColor; vertical-align: -.2em; flex: none; }
.kicker { display: flex; align-items: center; gap: .6em; margin: 0; font-size: .78em; text-transform: uppercase;
  letter-spacing: .04em; color: var(--ovation-muted, rgba(255,255,255,.75)); }
.kicker .phase { flex: 1; }
.dismiss { min-height: 2em; min-width: 2em; margin: -.4em -.4em -.4em 0; padding: .15em; border: none; background: none;
  line-height: 0; color: var(--ovation-muted, rgba(255,255,255,.75)); }
.kicker .dismiss { font-size: 1.25em; }
/* Room for the dismiss button (more specific than the compact layout's .card padding). */
.card.product { position: relative; padding-inline-end: 2.6em; }
.product .dismiss { position: absolute; top: .4em; right: .4em; }
.timeline { height: 3px; margin-top: .3em; border-radius: 2px; background: var(--ovation-accent, #d81b4f);
  width: calc(var(--remaining, 0) * 100%); transition: width .25s linear; }
.options { display: grid; gap: .4em; }
button, input { font: inherit; color: inherit; }
button { cursor: pointer; min-height: 2.3em; padding: .4em .85em; border-radius: 999px;
  border: 1px solid var(--ovation-border, rgba(255,255,255,.28)); background: var(--ovation-bg, rgba(12,12,16,.72)); }
button[aria-disabled="true"], button:disabled { cursor: default; }
:host([replay]) .say, :host([replay]) .like, :host([replay]) .gift-toggle, :host([replay]) .gift-picker,
:host([replay]) .ask, :host([replay]) .viewers { display: none !important; }
button:disabled { opacity: .55; }
:focus-visible { outline: 3px solid var(--ovation-focus, #ffd60a); outline-offset: 2px; }
.option { position: relative; overflow: hidden; display: flex; justify-content: space-between; align-items: center; gap: .6em;
  text-align: start; border-radius: calc(var(--ovation-radius, 12px) * .75); }
.option > * { position: relative; }
.option > .fill { position: absolute; inset: 0 auto 0 0; width: var(--share, 0%); opacity: .45;
  background: var(--ovation-accent, #d81b4f); transition: width .4s ease-out; }
.option[aria-pressed="true"] { border: 2px solid var(--ovation-accent, #d81b4f); font-weight: 700; }
.option.correct { border: 2px solid var(--ovation-good, #2ecc71); }
.option.correct > .fill { background: var(--ovation-good, #2ecc71); }
.count { font-variant-numeric: tabular-nums; white-space: nowrap; }
.score { margin: .5em 0 0; font-weight: 600; }
.leaderboard { margin: .4em 0 0; padding-inline-start: 1.4em; }
.product { display: flex; gap: .7em; align-items: center; }
.product img { width: 4.5em; height: 4.5em; object-fit: cover; border-radius: 8px; background: #333; flex: none; }
.product > div { flex: 1; min-width: 0; }
.product p { margin: 0; }
.product-title { font-weight: 700; display: -webkit-box; -webkit-box-orient: vertical; -webkit-line-clamp: 3;
  line-clamp: 3; overflow: hidden; }
.say button { display: inline-flex; align-items: center; gap: .35em; }
.buy, .primary, .say button, .like { background: var(--ovation-accent, #d81b4f); color: var(--ovation-accent-text, #fff);
  border-color: transparent; font-weight: 600; }
.buy { display: inline-flex; align-items: center; margin-top: .35em; padding: .35em .9em; border-radius: 999px;
  text-decoration: none; }
.comments { grid-area: comments; align-self: end; max-height: 100%; overflow-y: auto; margin: 0; padding: 0;
  list-style: none; display: flex; flex-direction: column; gap: .3em; align-items: flex-start; pointer-events: auto; }
.comments.overflowing { -webkit-mask-image: linear-gradient(transparent, #000 2.5em); mask-image: linear-gradient(transparent, #000 2.5em); }
.comments li { max-width: 100%; padding: .25em .65em; border-radius: 1em; background: rgba(0,0,0,.4);
  text-shadow: 0 1px 2px #000; overflow-wrap: anywhere; }
.comments .name { font-weight: 700; margin-inline-end: .35em; color: var(--ovation-muted, rgba(255,255,255,.75)); }
.comments .system, .comments .gift-line { background: var(--ovation-bg, rgba(12,12,16,.72)); font-style: italic; }
.bar { grid-area: bar; position: relative; display: flex; gap: var(--ovation-gap, 8px); align-items: center; pointer-events: auto; }
form { display: flex; gap: .4em; margin: 0; min-width: 0; }
.say { flex: 1; }
input { flex: 1; min-width: 0; min-height: 2.3em; padding: .4em .9em; border-radius: 999px;
  border: 1px solid var(--ovation-border, rgba(255,255,255,.28)); background: rgba(0,0,0,.45); }
input::placeholder { color: var(--ovation-muted, rgba(255,255,255,.75)); }
.gift-picker { position: absolute; right: 0; bottom: calc(100% + var(--ovation-gap, 8px)); width: min(18em, 100%); }
.gift-list { display: grid; grid-template-columns: repeat(auto-fill, minmax(5.5em, 1fr)); gap: .4em; }
.gift { border-radius: calc(var(--ovation-radius, 12px) * .75); display: flex; flex-direction: column; align-items: center; }
.gift .icon { font-size: 1.5em; }
.balance { margin: 0 0 .5em; font-size: .9em; }
.qa-list { list-style: none; margin: .6em 0 0; padding: 0; display: grid; gap: .45em; max-height: 16em; overflow: auto; }
.qa-list li { display: flex; gap: .6em; justify-content: space-between; align-items: flex-start; }
.qa-list p { margin: 0; }
.qa-meta { font-size: .8em; color: var(--ovation-muted, rgba(255,255,255,.75)); }
.qa-note { margin: .4em 0 0; font-size: .85em; }
.danmaku { position: absolute; z-index: -1; inset: 2.6em 0 auto 0; height: calc(${DANMAKU_LANES} * 1.9em); overflow: hidden; pointer-events: none; }
.fly { position: absolute; left: 100%; top: calc(var(--lane) * 1.9em); white-space: nowrap; font-weight: 600;
  text-shadow: 0 1px 3px #000, 0 0 1px #000; animation: ovation-fly var(--ovation-danmaku-duration, 8s) linear forwards; }
.fly b { color: var(--ovation-muted, rgba(255,255,255,.75)); margin-inline-end: .3em; }
.hearts { position: absolute; right: var(--ovation-gap, 8px); bottom: 3.5em; width: 3em; height: 10em; pointer-events: none; }
.heart { position: absolute; left: 50%; bottom: 0; font-size: 1.6em; color: var(--ovation-accent, #d81b4f);
  animation: ovation-rise var(--d, 1.6s) ease-out forwards; }
.gift-fx { position: absolute; left: 0; right: 0; top: 30%; display: flex; flex-direction: column; align-items: center;
  gap: .4em; pointer-events: none; }
.gift-pop { margin: 0; padding: .45em 1.1em; border-radius: 999px; font-weight: 700;
  background: var(--ovation-accent, #d81b4f); color: var(--ovation-accent-text, #fff); animation: ovation-pop 2.6s ease-out forwards; }
.gift-pop .icon { display: inline-block; font-size: 1.7em; vertical-align: middle; animation: ovation-bounce .5s ease-in-out 4 alternate; }
.toast { position: absolute; left: 50%; bottom: 4em; transform: translateX(-50%); max-width: 90%; margin: 0;
  padding: .5em 1em; border-radius: 8px; background: rgba(0,0,0,.88); pointer-events: auto; }
@keyframes ovation-fly { to { transform: translateX(calc(-100cqw - 100%)); } }
@keyframes ovation-rise { from { transform: translate(-50%, 0) scale(.6); opacity: 1; }
  to { transform: translate(calc(-50% + var(--x, 0px)), -9em) scale(1.2); opacity: 0; } }
@keyframes ovation-pop { 0% { transform: scale(.3); opacity: 0; } 15% { transform: scale(1.1); opacity: 1; }
  25% { transform: scale(1); } 80% { opacity: 1; } 100% { transform: translateY(-2em); opacity: 0; } }
@keyframes ovation-bounce { to { transform: translateY(-.25em) rotate(-8deg); } }
@keyframes ovation-blink { 50% { opacity: .3; } }
@keyframes ovation-fade { 0%, 80% { opacity: 1; } 100% { opacity: 0; } }
@media (prefers-reduced-motion: reduce) {
  .fly { left: var(--ovation-gap, 8px); animation-name: ovation-fade; }
  .heart, .gift-pop { animation-name: ovation-fade; transform: translateX(-50%); }
  .gift-pop { transform: none; }
  .gift-pop .icon, .dot { animation: none !important; }
  .option > .fill, .timeline { transition: none; }
}
/* Touch targets: every control, the product link included, at least 44×44 px. */
@media (pointer: coarse) { button, input, a[href], .dismiss { min-height: 44px; min-width: 44px; }
  .card.product { padding-inline-end: calc(44px + .6em); } }
@container (max-width: 560px) {
  .frame { font-size: var(--ovation-font-size, 14px); grid-template-columns: minmax(0, 1fr);
    grid-template-rows: auto auto auto minmax(0, 1fr) auto; grid-template-areas: "top" "banner" "side" "comments" "bar"; }
  .side { max-height: 45vh; }
  .comments { max-height: 35vh; }
  .card { padding: .6em; }
  .send-text { position: absolute; width: 1px; height: 1px; overflow: hidden; clip-path: inset(50%); }
}`;

const TEMPLATE = `
<div class="frame" part="frame" data-mode="list">
  <div class="top">
    <p class="pill status" role="status" data-status="connecting"><span class="dot" aria-hidden="true"></span><span class="status-text">Connecting…</span></p>
    <p class="pill viewers">${ICON.eye}<span class="viewer-count">0</span><span class="sr"> watching</span></p>
  </div>
  <p class="banner" role="status" hidden></p>
  <div class="danmaku" aria-hidden="true"></div>
  <div class="side">
    <section class="card poll" aria-labelledby="poll-q" hidden>
      <p class="kicker"><span class="phase">Poll</span><span class="countdown" role="timer"></span><button type="button" class="dismiss" aria-label="Hide the poll">${ICON.close}</button></p>
      <div class="timeline" aria-hidden="true"></div>
      <h2 class="question" id="poll-q"></h2>
      <div class="options" role="group" aria-labelledby="poll-q"></div>
    </section>
    <section class="card quiz" aria-labelledby="quiz-q" hidden>
      <p class="kicker"><span class="phase">Quiz</span><span class="countdown" role="timer"></span><button type="button" class="dismiss" aria-label="Hide the quiz">${ICON.close}</button></p>
      <div class="timeline" aria-hidden="true"></div>
      <h2 class="question" id="quiz-q"></h2>
      <div class="options" role="group" aria-labelledby="quiz-q"></div>
      <p class="score" aria-live="polite"></p>
      <ol class="leaderboard" aria-label="Leaderboard" hidden></ol>
    </section>
    <section class="card product" aria-label="Featured product" hidden>
      <button type="button" class="dismiss" aria-label="Hide the product">${ICON.close}</button>
      <img alt="" loading="lazy">
      <div>
        <p class="product-title"></p>
        <p class="product-price"></p>
        <a class="buy" target="_blank" rel="noopener noreferrer">Shop now</a>
      </div>
    </section>
    <section class="card qa" id="qa-panel" aria-label="Questions for the host" hidden>
      <form class="ask"><label class="sr" for="ask-input">Ask the host a question</label>
        <input id="ask-input" maxlength="300" autocomplete="off" placeholder="Ask the host…">
        <button type="submit" class="primary">Ask</button></form>
      <p class="qa-note" role="status"></p>
      <ol class="qa-list" aria-label="Questions"></ol>
    </section>
  </div>
  <ol class="comments" aria-label="Comments" aria-live="polite" aria-relevant="additions" tabindex="0"></ol>
  <div class="hearts" aria-hidden="true"></div>
  <div class="gift-fx" aria-hidden="true"></div>
  <div class="bar">
    <form class="say"><label class="sr" for="say-input">Write a comment</label>
      <input id="say-input" maxlength="500" autocomplete="off" enterkeyhint="send" placeholder="Say something…">
      <button type="submit" class="send">${ICON.send}<span class="send-text">Send</span></button></form>
    <button type="button" class="like"><span aria-hidden="true">♥</span><span class="sr">Like</span> <span class="like-count">0</span></button>
    <button type="button" class="qa-toggle" aria-expanded="false" aria-controls="qa-panel">Q&amp;A <span class="qa-count"></span></button>
    <button type="button" class="gift-toggle" aria-expanded="false" aria-controls="gift-picker">${ICON.gift}<span class="sr">Gifts</span></button>
    <div class="card gift-picker" id="gift-picker" role="group" aria-label="Send a gift" hidden>
      <p class="balance">Balance: <span class="balance-value">–</span></p>
      <div class="gift-list"></div>
    </div>
  </div>
  <p class="toast" role="alert" hidden></p>
</div>`;

/** An element with attributes and children (strings become text: never parsed as HTML). */
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value !== undefined && value !== null && value !== false)
      node.setAttribute(name, value === true ? "" : String(value));
  }
  node.append(...children);
  return node;
}

/** Only links a viewer may safely follow: no javascript:, data:, …, and no credentials
 * (`https://shop.example@evil.example/` leads to evil.example); the room refuses both. */
function safeLink(link) {
  try {
    const url = new URL(String(link), location.href);
    if (url.username || url.password) return null;
    return /^(javascript|data|vbscript|file|blob):$/i.test(url.protocol) ? null : url.href;
  } catch {
    return null;
  }
}

/** Option buttons (poll or quiz), built once per `key` so focus survives updates. */
function optionButtons(container, key, options, pick) {
  if (container.dataset.key !== key) {
    container.dataset.key = key;
    container.replaceChildren(
      ...options.map((text, i) => {
        const button = el(
          "button",
          { type: "button", class: "option", "data-index": i, "aria-pressed": "false" },
          el("span", { class: "fill", "aria-hidden": "true" }),
          el("span", { class: "label" }, text),
          el("span", { class: "count" }),
        );
        button.addEventListener("click", () => pick(i));
        return button;
      }),
    );
  }
  return [...container.children];
}

/** Result bars: each option's votes and share, or nothing while tallies are hidden. */
function showTallies(buttons, tallies) {
  const total = Array.isArray(tallies) ? tallies.reduce((a, b) => a + b, 0) : 0;
  buttons.forEach((button, i) => {
    const count = button.querySelector(".count");
    if (!Array.isArray(tallies)) {
      delete button.dataset.votes;
      button.style.removeProperty("--share");
      count.replaceChildren();
      return;
    }
    const votes = tallies[i] ?? 0;
    const share = total ? Math.round((votes * 100) / total) : 0;
    button.dataset.votes = votes;
    button.style.setProperty("--share", `${share}%`);
    count.replaceChildren(
      el("span", { class: "votes" }, votes),
      el("span", { class: "sr" }, votes === 1 ? " vote," : " votes,"),
      el("span", { "aria-hidden": "true" }, " · "),
      el("span", { class: "share" }, `${share}%`),
    );
  });
}

/** The gifts the room charges for (sku → price in its `room` part), cheapest first. */
function roomGifts(room) {
  const catalog = room?.state?.parts?.room?.gifts;
  if (!catalog || typeof catalog !== "object") return [];
  return Object.entries(catalog)
    .filter(([, price]) => Number.isSafeInteger(price) && price > 0)
    .map(([sku, price]) => ({ sku, price, ...(GIFT_LOOKS[sku] || {}) }))
    .sort((a, b) => a.price - b.price || (a.sku < b.sku ? -1 : 1));
}

export class OvationOverlay extends HTMLElement {
  static observedAttributes = [
    "url",
    "room",
    "token",
    "mode",
    "dead-zones",
    "for",
    "sync",
    "gifts",
    "bridge",
    "replay",
  ];

  constructor() {
    super();
    this._room = null;
    this._generation = 0;
    this._offs = [];
    this._votes = new Map(); // poll id → option
    this._answers = new Map(); // "quiz:question" → option
    this._upvoted = new Set();
    this._likes = 0;
    this._myLikes = 0;
    this._lane = 0;
    this._dismissed = { poll: null, quiz: null, product: null }; // what the viewer hid
    const shadow = this.attachShadow({ mode: "open" });
    shadow.innerHTML = `<style>${STYLE}</style>${TEMPLATE}`;
    this._$ = (selector) => shadow.querySelector(selector);
    this._wire();
  }

  // ---- Attributes and properties ----

  get room() {
    return this._room;
  }
  set room(value) {
    if (typeof value === "string") this.setAttribute("room", value);
  }
  get roomId() {
    return this.getAttribute("room");
  }
  get url() {
    return this.getAttribute("url");
  }
  set url(value) {
    this.setAttribute("url", value);
  }
  get token() {
    return this.getAttribute("token");
  }
  set token(value) {
    this.setAttribute("token", value);
  }
  get mode() {
    return this.getAttribute("mode") === "danmaku" ? "danmaku" : "list";
  }
  set mode(value) {
    this.setAttribute("mode", value);
  }
  get sync() {
    return this.getAttribute("sync") === "video" ? "video" : "none";
  }
  set sync(value) {
    this.setAttribute("sync", value);
  }
  /** Plays the recording, read-only (the `replay` attribute). */
  get replay() {
    return this.hasAttribute("replay");
  }
  set replay(value) {
    this.toggleAttribute("replay", !!value);
  }
  get gifts() {
    if (this._gifts) return this._gifts;
    try {
      const parsed = JSON.parse(this.getAttribute("gifts"));
      if (Array.isArray(parsed)) return parsed;
    } catch {
      // absent or not JSON: the room's catalog
    }
    return roomGifts(this._room);
  }
  set gifts(value) {
    this._gifts = Array.isArray(value) ? value : null;
    this._renderGifts();
  }
  get video() {
    if (this._video) return this._video;
    const id = this.getAttribute("for");
    if (!id) return null;
    const root = this.getRootNode();
    return (root.getElementById ? root.getElementById(id) : null) || document.getElementById(id);
  }
  set video(value) {
    this._video = value || null;
    this._attach();
  }
  get hls() {
    return this._hls || null;
  }
  set hls(value) {
    this._hls = value || null;
    this._attach();
  }

  connectedCallback() {
    // Properties set before the element was defined shadow the accessors: move them over.
    for (const name of [
      "url",
      "token",
      "mode",
      "sync",
      "gifts",
      "video",
      "hls",
      "room",
      "replay",
    ]) {
      if (Object.hasOwn(this, name)) {
        const value = this[name];
        delete this[name];
        this[name] = value;
      }
    }
    this._applyMode();
    this._applyDeadZones();
    this._renderGifts();
    this._scheduleConnect();
  }

  disconnectedCallback() {
    this._teardown();
  }

  attributeChangedCallback(name) {
    if (name === "mode") this._applyMode();
    else if (name === "dead-zones") this._applyDeadZones();
    else if (name === "gifts") this._renderGifts();
    else if (name === "for" || name === "sync") this._attach();
    else if (this.isConnected) this._scheduleConnect();
  }

  _applyMode() {
    this._$(".frame").dataset.mode = this.mode;
    // The scrolling comment list takes keyboard focus so it can be scrolled without a
    // pointer; in danmaku mode it is for screen readers only and takes none.
    const list = this._$(".comments");
    if (this.mode === "danmaku") list.removeAttribute("tabindex");
    else list.tabIndex = 0;
  }

  _applyDeadZones() {
    const frame = this._$(".frame");
    for (const side of ["top", "right", "bottom", "left"])
      frame.style.removeProperty(`--dz-${side}`);
    for (const item of (this.getAttribute("dead-zones") || "").split(",")) {
      const [side, raw] = item.split(":").map((s) => s.trim());
      if (!["top", "right", "bottom", "left"].includes(side)) continue;
      const value = /^\d+(\.\d+)?$/.test(raw) ? `${raw}px` : raw;
      if (/^\d+(\.\d+)?(px|%|em|rem|vh|vw)$/.test(value))
        frame.style.setProperty(`--dz-${side}`, value);
    }
  }

  // ---- Connection ----

  _scheduleConnect() {
    if (this._connectQueued) return;
    this._connectQueued = true;
    queueMicrotask(() => {
      this._connectQueued = false;
      if (this.isConnected) this._connect();
    });
  }

  async _connect() {
    this._teardown();
    const [url, room, token] = ["url", "room", "token"].map((name) => this.getAttribute(name));
    if (!url || !room || !token) return;
    const generation = this._generation;
    this._setStatus("connecting");
    const recorded = this.replay;
    const connecting = recorded ? replay({ url, room, token }) : connect({ url, room, token });
    if (!recorded && this.getAttribute("bridge") !== "off")
      this._unbridge = installBridge(connecting);
    let joined;
    try {
      joined = await connecting;
    } catch (e) {
      if (generation !== this._generation) return;
      this._setStatus("closed");
      this._toast(e);
      this._emit("error", e);
      return;
    }
    if (generation !== this._generation) {
      joined.close();
      return;
    }
    this._room = joined;
    this._handle("state", joined.state);
    for (const type of EVENT_TYPES) {
      this._offs.push(
        joined.on(type, (payload) => {
          try {
            this._handle(type, payload);
          } finally {
            this._emit(type, payload);
          }
        }),
      );
    }
    // What arrived with the welcome, before these handlers were on.
    const status = {
      status: recorded ? "replay" : joined.status,
      transport: joined.transport,
      reason: null,
    };
    this._handle("status", status);
    this._emit("status", status);
    this._handle("online", { count: joined.online });
    this._likes = joined.likes;
    this._$(".like-count").textContent = joined.likes;
    const hasVideo = !!this.video;
    for (const name of ["poll", "quiz", "qa", "product", "announcement"]) {
      const value = joined.state.parts[name];
      if (value !== undefined && !(hasVideo && cueOf(name, value) !== null))
        this._handle(name, value);
    }
    await this._attach();
    if (generation === this._generation) this._emit("connected", { room: joined });
  }

  _teardown() {
    this._generation += 1;
    for (const off of this._offs.splice(0)) off();
    if (this._detach) this._detach();
    this._detach = null;
    if (this._unbridge) this._unbridge();
    this._unbridge = null;
    if (this._room) this._room.close();
    this._room = null;
    clearInterval(this._timer);
    this._timer = null;
  }

  async _attach() {
    if (this._detach) this._detach();
    this._detach = null;
    const room = this._room;
    const video = this.video;
    if (!room || !video) return;
    try {
      const detach = await room.attachPlayer(video, {
        hls: this.hls || undefined,
        sync: this.sync,
      });
      if (room === this._room && !this._detach) this._detach = detach;
      else detach();
    } catch (e) {
      this._toast(e);
    }
  }

  _emit(type, detail) {
    this.dispatchEvent(
      new CustomEvent(`ovation:${type}`, { detail, bubbles: true, composed: true }),
    );
  }

  // ---- SDK events ----

  _handle(type, payload) {
    switch (type) {
      case "state": {
        // Re-rendered only when the room's catalog changed (a poll's tallies change the
        // state every tick; the gift buttons must keep their focus).
        const key = JSON.stringify(payload?.parts?.room?.gifts ?? null);
        if (key !== this._catalogKey) {
          this._catalogKey = key;
          this._renderGifts();
        }
        return;
      }
      case "status":
        return this._setStatus(payload.status);
      case "online":
        this._$(".viewer-count").textContent = payload.count;
        return;
      case "like":
        return this._onLike(payload.total);
      case "comment":
        return this._addComment(payload);
      case "reaction":
        return this._float(payload.kind);
      case "gift":
        return this._onGift(payload);
      case "removed":
        for (const node of this.shadowRoot.querySelectorAll(`[data-seq="${Number(payload.seq)}"]`))
          node.remove();
        return;
      case "balance":
        this._$(".balance-value").textContent = payload.balance;
        return;
      case "poll":
        return this._renderPoll(payload);
      case "quiz":
        return this._renderQuiz(payload);
      case "product":
        return this._renderProduct(payload);
      case "qa":
        return this._renderQa(payload);
      case "announcement": {
        const banner = this._$(".banner");
        banner.textContent = payload?.text || "";
        banner.hidden = !payload?.text;
        return;
      }
      case "direct":
        return this._onDirect(payload.payload);
      case "ended":
        this._ended = true;
        this._setStatus("ended");
        for (const control of this.shadowRoot.querySelectorAll("input, button"))
          control.disabled = true;
        return this._toast("The live has ended.");
      case "error":
        return this._toast(payload);
    }
  }

  _setStatus(status) {
    const shown = this._ended ? "ended" : status;
    const node = this._$(".status");
    node.dataset.status = shown;
    this._$(".status-text").textContent = STATUS_TEXT[shown] || shown;
  }

  _toast(what) {
    const toast = this._$(".toast");
    if (typeof what !== "string") console.warn("ovation-overlay:", what?.code, what?.message);
    toast.textContent =
      typeof what === "string" ? what : ERROR_TEXT[what?.code] || what?.message || String(what);
    toast.hidden = false;
    clearTimeout(this._toastTimer);
    this._toastTimer = setTimeout(() => {
      toast.hidden = true;
    }, TOAST_MS);
  }

  _addComment(c) {
    const list = this._$(".comments");
    const atEnd = list.scrollTop + list.clientHeight >= list.scrollHeight - 8;
    list.append(
      el(
        "li",
        { "data-seq": c.seq, class: c.system ? "system" : null },
        el("span", { class: "name" }, c.system ? "📣" : c.name),
        el("span", { class: "sr" }, ": "),
        el("span", { class: "text" }, c.text),
      ),
    );
    while (list.children.length > COMMENTS_MAX) list.firstElementChild.remove();
    list.classList.toggle("overflowing", list.scrollHeight > list.clientHeight);
    if (atEnd) list.scrollTop = list.scrollHeight;
    if (this.mode === "danmaku") {
      const layer = this._$(".danmaku");
      const item = el(
        "span",
        { class: "fly", "data-seq": c.seq, style: `--lane:${this._lane++ % DANMAKU_LANES}` },
        el("b", {}, c.name),
        c.text,
      );
      item.addEventListener("animationend", () => item.remove());
      layer.append(item);
      while (layer.children.length > DANMAKU_ITEMS_MAX) layer.firstElementChild.remove();
    }
  }

  _float(symbol, mine = false) {
    const layer = this._$(".hearts");
    if (layer.children.length >= HEARTS_MAX) return;
    const drift = Math.round(Math.random() * 40 - 20);
    const seconds = (1.3 + Math.random() * 0.7).toFixed(2);
    const item = el(
      "span",
      { class: mine ? "heart mine" : "heart", style: `--x:${drift}px;--d:${seconds}s` },
      String(symbol).slice(0, 8),
    );
    item.addEventListener("animationend", () => item.remove());
    layer.append(item);
  }

  _onLike(total) {
    const added = total - this._likes;
    this._likes = total;
    this._$(".like-count").textContent = total;
    // Our own clicks floated already; float the others' (a few at most).
    const others = Math.max(0, added - this._myLikes);
    this._myLikes = Math.max(0, this._myLikes - added);
    for (let i = 0; i < Math.min(others, 5); i++) this._float("♥");
  }

  _onGift(g) {
    const gift = this.gifts.find((x) => x.sku === g.sku);
    const label = `${g.name} sent ${g.qty > 1 ? `${g.qty} × ` : ""}${gift?.label || g.sku}`;
    const list = this._$(".comments");
    list.append(el("li", { class: "gift-line" }, label));
    while (list.children.length > COMMENTS_MAX) list.firstElementChild.remove();
    const layer = this._$(".gift-fx");
    const pop = el(
      "p",
      { class: "gift-pop" },
      el("span", { class: "icon" }, gift?.icon || "🎁"),
      ` ${label}`,
    );
    pop.addEventListener("animationend", (e) => {
      if (e.target === pop) pop.remove();
    });
    layer.append(pop);
    while (layer.children.length > GIFT_POPS_MAX) layer.firstElementChild.remove();
  }

  _onDirect(payload) {
    if (!payload || typeof payload !== "object") return;
    if (payload.type === "quiz_score") {
      this._score = payload;
      this._renderQuiz(this._quiz);
    } else if (payload.type === "muted") {
      this._toast("A moderator muted you.");
    } else if (payload.type === "unmuted") {
      this._toast("You can comment again.");
    }
  }

  // ---- Cards ----

  _renderPoll(p) {
    const card = this._$(".poll");
    this._poll = p?.id ? p : null;
    card.dataset.key = this._poll ? `${p.id}:${p.phase}` : "";
    card.hidden = !this._poll || this._dismissed.poll === card.dataset.key;
    if (!this._poll) return this._tick();
    card.dataset.id = p.id;
    card.dataset.phase = p.phase;
    card.querySelector(".phase").textContent =
      { open: "Poll", closed: "Voting closed", result: "Results" }[p.phase] || "Poll";
    card.querySelector(".question").textContent = p.question;
    const buttons = optionButtons(card.querySelector(".options"), p.id, p.options, (i) =>
      this._vote(p.id, i),
    );
    const mine = this._votes.get(p.id);
    buttons.forEach((button, i) => {
      button.setAttribute("aria-pressed", String(mine === i));
      button.setAttribute(
        "aria-disabled",
        String(p.phase !== "open" || mine !== undefined || this.replay),
      );
    });
    showTallies(buttons, p.tallies);
    this._tick();
  }

  async _vote(id, option) {
    const poll = this._poll;
    if (
      !this._room ||
      this.replay ||
      !poll ||
      poll.id !== id ||
      poll.phase !== "open" ||
      this._votes.has(id)
    )
      return;
    this._votes.set(id, option);
    this._renderPoll(poll);
    try {
      await this._room.vote(id, option);
    } catch (e) {
      this._votes.delete(id);
      this._renderPoll(this._poll);
      this._toast(e);
    }
  }

  _renderQuiz(z) {
    const card = this._$(".quiz");
    this._quiz = z?.id ? z : null;
    card.dataset.key = this._quiz ? `${z.id}:${z.phase}:${z.question?.index}` : "";
    card.hidden = !this._quiz || this._dismissed.quiz === card.dataset.key;
    if (!this._quiz) return this._tick();
    const q = z.question;
    const count = z.question_count;
    card.dataset.id = z.id;
    card.dataset.phase = z.phase;
    const phase = {
      new: `Quiz · ${count} questions`,
      open: q ? `Question ${q.index + 1} of ${count}` : "Quiz",
      result: q ? `Answer · ${q.index + 1} of ${count}` : "Quiz",
      ended: "Quiz over",
    }[z.phase];
    card.querySelector(".phase").textContent = phase || "Quiz";
    card.querySelector(".question").textContent =
      z.phase === "new" || z.phase === "ended" || !q ? z.title : q.text;
    const options = card.querySelector(".options");
    options.hidden = !q || z.phase === "new" || z.phase === "ended";
    const key = q ? `${z.id}:${q.index}` : "";
    if (!options.hidden) {
      const buttons = optionButtons(options, key, q.options, (i) => this._answer(z.id, q.index, i));
      const mine = this._answers.get(key);
      buttons.forEach((button, i) => {
        button.setAttribute("aria-pressed", String(mine === i));
        button.setAttribute(
          "aria-disabled",
          String(z.phase !== "open" || mine !== undefined || this.replay),
        );
        button.classList.toggle("correct", q.correct === i);
        const label = button.querySelector(".label");
        label.textContent = q.options[i] + (q.correct === i ? " ✓" : "");
      });
      showTallies(buttons, q.tallies);
    }
    const score = this._score && this._score.quiz === z.id ? this._score : null;
    let line = "";
    if (score && z.phase === "result" && q && score.question === q.index) {
      line = score.answered
        ? score.correct
          ? `Correct! +${score.points}`
          : "Not this time"
        : "No answer";
      line += ` · score ${score.score} · rank ${score.rank} of ${score.participants}`;
    } else if (score && z.phase === "ended") {
      line = `Your score ${score.score} · rank ${score.rank} of ${score.participants}`;
    } else if (z.phase === "new") {
      line = "Starting soon";
    }
    card.querySelector(".score").textContent = line;
    const board = card.querySelector(".leaderboard");
    board.hidden = z.phase !== "ended" || !z.leaderboard?.length;
    board.replaceChildren(
      ...(z.leaderboard || []).slice(0, 5).map((e) => el("li", {}, `${e.name} · ${e.score}`)),
    );
    this._tick();
  }

  async _answer(quiz, index, option) {
    const key = `${quiz}:${index}`;
    const z = this._quiz;
    if (
      !this._room ||
      this.replay ||
      !z ||
      z.id !== quiz ||
      z.phase !== "open" ||
      z.question?.index !== index ||
      this._answers.has(key)
    )
      return;
    this._answers.set(key, option);
    this._renderQuiz(z);
    try {
      await this._room.answer(quiz, index, option);
    } catch (e) {
      this._answers.delete(key);
      this._renderQuiz(this._quiz);
      this._toast(e);
    }
  }

  /** Countdowns of the open poll and quiz question, from the server's clock. */
  _tick() {
    const now = this._room ? this._room.serverNow() : Date.now();
    let running = false;
    const windows = [
      [
        ".poll",
        this._poll?.phase === "open" ? [this._poll.opened_ms, this._poll.closes_at_ms] : null,
      ],
      [
        ".quiz",
        this._quiz?.phase === "open" && this._quiz.question
          ? [this._quiz.question.opened_ms, this._quiz.question.closes_at_ms]
          : null,
      ],
    ];
    for (const [selector, window] of windows) {
      const card = this._$(selector);
      const left = window ? Math.max(0, window[1] - now) : 0;
      card.querySelector(".countdown").textContent = window
        ? `${Math.ceil(left / 1000)} s left`
        : "";
      card.style.setProperty(
        "--remaining",
        window ? String(left / Math.max(1, window[1] - window[0])) : "0",
      );
      running ||= left > 0;
    }
    if (running && !this._timer) this._timer = setInterval(() => this._tick(), 250);
    if (!running && this._timer) {
      clearInterval(this._timer);
      this._timer = null;
    }
  }

  _renderProduct(p) {
    const card = this._$(".product");
    const pinned = p?.pinned;
    card.dataset.key = pinned ? pinned.id : "";
    card.hidden = !pinned || this._dismissed.product === card.dataset.key;
    if (!pinned) return;
    card.dataset.id = pinned.id;
    const image = card.querySelector("img");
    const src = safeLink(pinned.image_url);
    image.hidden = !src;
    if (src) image.src = src;
    card.querySelector(".product-title").textContent = pinned.title;
    card.querySelector(".product-price").textContent = pinned.price;
    const link = card.querySelector(".buy");
    const href = safeLink(pinned.link);
    link.hidden = !href;
    if (href) link.href = href;
    // The name starts with the visible text ("Shop now"), then says what is for sale.
    link.setAttribute("aria-label", `Shop now: ${pinned.title}, ${pinned.price}`);
  }

  _renderQa(qa) {
    this._qa = qa;
    const list = this._$(".qa-list");
    this._$(".qa-count").textContent = qa?.count ? `(${qa.count})` : "";
    // Rebuilt on each change; the focused upvote button is focused again.
    const focused = this.shadowRoot.activeElement?.dataset?.question;
    list.replaceChildren(
      ...(qa?.questions || []).map((q) => {
        const mine = this._upvoted.has(q.id);
        const upvote = el(
          "button",
          {
            type: "button",
            class: "upvote",
            "data-question": q.id,
            "aria-pressed": String(mine),
            "aria-label": `Upvote “${q.text}”, ${q.upvotes} ${q.upvotes === 1 ? "vote" : "votes"}`,
          },
          `▲ ${q.upvotes}`,
        );
        if (this.replay) upvote.setAttribute("aria-disabled", "true");
        upvote.addEventListener("click", () => this._upvote(q.id));
        return el(
          "li",
          { "data-id": q.id, class: q.status },
          el(
            "div",
            {},
            el("p", { class: "q-text" }, q.text),
            el("p", { class: "qa-meta" }, q.name + (q.status === "answered" ? " · answered" : "")),
          ),
          upvote,
        );
      }),
    );
    if (focused) list.querySelector(`[data-question="${CSS.escape(focused)}"]`)?.focus();
  }

  async _upvote(id) {
    if (!this._room || this.replay || this._upvoted.has(id)) return;
    this._upvoted.add(id);
    this._renderQa(this._qa);
    try {
      await this._room.upvote(id);
    } catch (e) {
      this._upvoted.delete(id);
      this._renderQa(this._qa);
      this._toast(e);
    }
  }

  _renderGifts() {
    this._$(".gift-list").replaceChildren(
      ...this.gifts.map((g) => {
        // The name holds the visible "label price" as it reads (WCAG label in name).
        const button = el(
          "button",
          {
            type: "button",
            class: "gift",
            "data-sku": g.sku,
            "aria-label": `Send ${g.label || g.sku}, ${g.price}`,
          },
          el("span", { class: "icon", "aria-hidden": "true" }, g.icon || "🎁"),
          el("span", {}, g.label || g.sku),
          " ",
          el("span", { class: "price" }, g.price),
        );
        button.addEventListener("click", () => this._sendGift(g, button));
        return button;
      }),
    );
  }

  async _sendGift(g, button) {
    if (!this._room) return;
    button.disabled = true;
    try {
      await this._room.gift(g.sku, 1);
      this._togglePanel(".gift-toggle", ".gift-picker", false);
    } catch (e) {
      this._toast(e);
    } finally {
      button.disabled = !!this._ended;
    }
  }

  // ---- Controls ----

  _togglePanel(toggleSelector, panelSelector, open) {
    const toggle = this._$(toggleSelector);
    const panel = this._$(panelSelector);
    const show = open ?? panel.hidden;
    panel.hidden = !show;
    toggle.setAttribute("aria-expanded", String(show));
    if (show) panel.querySelector("input, button")?.focus();
  }

  _wire() {
    const say = this._$(".say");
    say.addEventListener("submit", async (e) => {
      e.preventDefault();
      const input = say.querySelector("input");
      const text = input.value.trim();
      if (!text || !this._room) return;
      const button = say.querySelector("button");
      button.disabled = true;
      try {
        await this._room.comment(text);
        input.value = "";
      } catch (err) {
        this._toast(err);
      } finally {
        button.disabled = !!this._ended;
      }
    });
    this._$(".like").addEventListener("click", () => {
      if (!this._room) return;
      try {
        this._room.like();
        this._myLikes += 1;
        this._float("♥", true);
      } catch (e) {
        this._toast(e);
      }
    });
    this._$(".buy").addEventListener("click", () => {
      const id = this._$(".product").dataset.id;
      if (this._room && id && !this.replay) this._room.productClick(id).catch(() => {});
    });
    const ask = this._$(".ask");
    ask.addEventListener("submit", async (e) => {
      e.preventDefault();
      const input = ask.querySelector("input");
      const text = input.value.trim();
      if (!text || !this._room) return;
      try {
        await this._room.ask(text);
        input.value = "";
        this._$(".qa-note").textContent = this._qa?.approval
          ? "Sent: it shows once the host approves it."
          : "Question sent.";
      } catch (err) {
        this._toast(err);
      }
    });
    this._$(".qa-toggle").addEventListener("click", () =>
      this._togglePanel(".qa-toggle", ".qa", undefined),
    );
    this._$(".gift-toggle").addEventListener("click", () =>
      this._togglePanel(".gift-toggle", ".gift-picker", undefined),
    );
    // A card the viewer hides stays hidden until it changes (a new phase, question, product).
    for (const kind of ["poll", "quiz", "product"]) {
      this._$(`.${kind} .dismiss`).addEventListener("click", () => {
        const card = this._$(`.${kind}`);
        this._dismissed[kind] = card.dataset.key;
        card.hidden = true;
        this._$("#say-input").focus();
      });
    }
    // Escape closes an open panel and gives focus back to its button.
    for (const [toggle, panel] of [
      [".qa-toggle", ".qa"],
      [".gift-toggle", ".gift-picker"],
    ]) {
      this._$(panel).addEventListener("keydown", (e) => {
        if (e.key !== "Escape") return;
        this._togglePanel(toggle, panel, false);
        this._$(toggle).focus();
      });
    }
  }
}

if (!customElements.get("ovation-overlay"))
  customElements.define("ovation-overlay", OvationOverlay);
