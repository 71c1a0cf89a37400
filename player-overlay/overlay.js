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
//
// The element is split by concern: overlay.js (attributes, connection, SDK events, status,
// controls), overlay-feed.js (comments, danmaku, hearts, likes), overlay-gifts.js (gift
// picker and animations), overlay-cards.js (poll, quiz, product, Q&A), overlay-style.js
// (shadow DOM stylesheet and markup), overlay-dom.js (DOM helpers), overlay-limits.js.

import { connect, cueOf, replay } from "ovation";
import { installBridge, EVENT_TYPES } from "./bridge.js";
import { withCards } from "./overlay-cards.js";
import { STYLE, TEMPLATE } from "./overlay-style.js";
import { withFeed } from "./overlay-feed.js";
import { roomGifts, withGifts } from "./overlay-gifts.js";
import { TOAST_MS } from "./overlay-limits.js";

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

export class OvationOverlay extends withCards(withGifts(withFeed(HTMLElement))) {
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
        // Scores and mute notices are the room's own (`ovation`), never a moderator's.
        return payload.from === "ovation" ? this._onDirect(payload.payload) : undefined;
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
