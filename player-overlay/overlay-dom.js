// Small DOM helpers of the overlay: elements built without parsing HTML, safe links, the
// option buttons and result bars of the poll and quiz cards.

/** An element with attributes and children (strings become text: never parsed as HTML). */
export function el(tag, attrs = {}, ...children) {
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
export function safeLink(link) {
  try {
    const url = new URL(String(link), location.href);
    if (url.username || url.password) return null;
    return /^(javascript|data|vbscript|file|blob):$/i.test(url.protocol) ? null : url.href;
  } catch {
    return null;
  }
}

/** Option buttons (poll or quiz), built once per `key` so focus survives updates. */
export function optionButtons(container, key, options, pick) {
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
export function showTallies(buttons, tallies) {
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
