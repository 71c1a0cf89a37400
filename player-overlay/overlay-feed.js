// The overlay's comment list, flying comments (danmaku), floating hearts and like count.

import { el } from "./overlay-dom.js";
import { COMMENTS_MAX, DANMAKU_ITEMS_MAX, DANMAKU_LANES, HEARTS_MAX } from "./overlay-limits.js";

/** Comments, danmaku, hearts and likes: methods of `<ovation-overlay>`. */
export function withFeed(Base) {
  return class OverlayFeed extends Base {
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
  };
}
