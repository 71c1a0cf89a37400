// The overlay's shadow DOM: its stylesheet and markup (the theming properties are listed
// at the top of overlay.js).

import { DANMAKU_LANES } from "./overlay-limits.js";

const ICON = {
  eye: '<svg class="icon" viewBox="0 0 24 24" aria-hidden="true"><path d="M12 5C6.5 5 2.5 9.5 1 12c1.5 2.5 5.5 7 11 7s9.5-4.5 11-7c-1.5-2.5-5.5-7-11-7zm0 11a4 4 0 1 1 0-8 4 4 0 0 1 0 8z"/></svg>',
  gift: '<svg class="icon" viewBox="0 0 24 24" aria-hidden="true"><path d="M3 8h8v4H3zm10 0h8v4h-8zM4 13h7v8H4zm9 0h7v8h-7zM12 7.5C10 3.5 5.5 3.5 6.5 6.5 7 8 10 7.8 12 7.5zm0 0c2-4 6.5-4 5.5-1-.5 1.5-3.5 1.3-5.5 1z"/></svg>',
  send: '<svg class="icon" viewBox="0 0 24 24" aria-hidden="true"><path d="M2 21 23 12 2 3v7l15 2-15 2z"/></svg>',
  close:
    '<svg class="icon" viewBox="0 0 24 24" aria-hidden="true"><path d="M6.4 5 12 10.6 17.6 5 19 6.4 13.4 12l5.6 5.6-1.4 1.4-5.6-5.6L6.4 19 5 17.6 10.6 12 5 6.4z"/></svg>',
};

export const STYLE = `
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

export const TEMPLATE = `
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
