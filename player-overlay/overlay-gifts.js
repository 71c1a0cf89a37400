// The overlay's gifts: the catalog the room charges from, the gift picker and the gift
// animations.

import { el } from "./overlay-dom.js";
import { COMMENTS_MAX, GIFT_POPS_MAX } from "./overlay-limits.js";

// How the default catalog's gifts look. Prices are never written here: they come from the
// room (`gifts` in its `room` part), the one place that sets what a gift costs.
const GIFT_LOOKS = {
  rose: { label: "Rose", icon: "🌹" },
  heart: { label: "Heart", icon: "💖" },
  rocket: { label: "Rocket", icon: "🚀" },
};

/** The gifts the room charges for (sku → price in its `room` part), cheapest first. */
export function roomGifts(room) {
  const catalog = room?.state?.parts?.room?.gifts;
  if (!catalog || typeof catalog !== "object") return [];
  return Object.entries(catalog)
    .filter(([, price]) => Number.isSafeInteger(price) && price > 0)
    .map(([sku, price]) => ({ sku, price, ...(GIFT_LOOKS[sku] || {}) }))
    .sort((a, b) => a.price - b.price || (a.sku < b.sku ? -1 : 1));
}

/** The gift picker and gift animations: methods of `<ovation-overlay>`. */
export function withGifts(Base) {
  return class OverlayGifts extends Base {
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
      // No gifts sold here (gifts are off, or the catalog was refused): no gift button.
      const none = this.gifts.length === 0;
      this._$(".gift-toggle").hidden = none;
      if (none) this._togglePanel(".gift-toggle", ".gift-picker", false);
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
  };
}
