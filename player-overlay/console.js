// The host console: runs a live room over the host's own socket (`room.command({...})`,
// the admin API's JSON), and watches what hosts and moderators receive: live poll
// tallies, quiz answers, product clicks and the Q&A queue (direct messages from
// "ovation"), comments, likes and viewers. Open it with
// console.html?url=<service>&room=<room id>&token=<host or moderator token>.

import { connect } from "ovation";

const COMMENTS_MAX = 200;
const LOG_MAX = 100;
const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs))
    if (value != null) node.setAttribute(name, String(value));
  node.append(...children);
  return node;
}

function button(label, onClick, attrs = {}) {
  const b = el("button", { type: "button", ...attrs }, label);
  b.addEventListener("click", onClick);
  return b;
}

function log(text, kind = "") {
  const list = $("log");
  list.prepend(el("li", { class: kind }, `${new Date().toLocaleTimeString()} ${text}`));
  while (list.children.length > LOG_MAX) list.lastElementChild.remove();
}

let room = null;
const seen = { poll: null, tallies: null, quiz: null, answers: 0, qa: null, queue: [] };

/** Runs a staff command; the room's reply arrives as a `command_reply` direct message. */
async function run(command) {
  if (!room) return log(`✗ ${command.command}: not connected`, "error");
  log(`→ ${command.command}`);
  try {
    await room.command(command);
  } catch (e) {
    log(`✗ ${command.command}: ${e.code} ${e.message}`, "error");
  }
}

// ---- Rendering ----

function setStatus(status) {
  $("status").dataset.status = status;
  $("status").textContent = status;
}

function renderPoll() {
  const poll = seen.poll;
  if (!poll?.id) return;
  $("poll-current-question").textContent = poll.question;
  $("poll-phase").textContent = `(${poll.id}, ${poll.phase})`;
  $("poll-current").dataset.id = poll.id;
  $("poll-current").dataset.phase = poll.phase;
  // Live tallies (direct, every change) or the part's own, whichever is newer.
  const live = seen.tallies && seen.tallies.id === poll.id ? seen.tallies.tallies : null;
  const tallies = live || poll.tallies || poll.options.map(() => 0);
  const total = tallies.reduce((a, b) => a + b, 0);
  $("poll-votes").textContent = total;
  $("poll-tallies").replaceChildren(
    ...poll.options.map((option, i) => {
      const share = total ? Math.round((tallies[i] * 100) / total) : 0;
      return el(
        "tr",
        { "data-index": i },
        el("td", {}, option),
        el("td", { class: "count" }, tallies[i] ?? 0),
        el("td", { class: "bar-cell" }, el("div", { class: "bar", style: `width:${share}%` })),
        el("td", { class: "muted" }, `${share}%`),
      );
    }),
  );
}

function renderQuiz() {
  const quiz = seen.quiz;
  if (!quiz?.id) return;
  const q = quiz.question;
  $("quiz-current").textContent = q
    ? `${quiz.title}: ${q.index + 1}/${quiz.question_count} ${q.text}`
    : quiz.title;
  $("quiz-phase").textContent = `(${quiz.id}, ${quiz.phase})`;
  $("quiz-participants").textContent = quiz.participants;
  $("quiz-leaderboard").replaceChildren(
    ...(quiz.leaderboard || []).map((e) => el("li", {}, `${e.name} (${e.user}) · ${e.score}`)),
  );
}

function renderQa() {
  const act = (command, id) => () => run({ command, id });
  $("qa-approval").checked = !!seen.qa?.approval;
  $("qa-pending-count").textContent = seen.queue.length;
  $("qa-pending").replaceChildren(
    ...seen.queue.map((q) =>
      el(
        "li",
        { "data-id": q.id },
        el("span", { class: "who" }, q.name),
        el("span", { class: "what" }, q.text),
        button("Approve", act("qa_approve", q.id)),
        button("Hide", act("qa_hide", q.id)),
      ),
    ),
  );
  $("qa-visible").replaceChildren(
    ...(seen.qa?.questions || []).map((q) =>
      el(
        "li",
        { "data-id": q.id },
        el("span", { class: "who" }, q.name),
        el("span", { class: "what" }, `${q.text} (▲ ${q.upvotes})`),
        q.status === "answered"
          ? el("span", { class: "muted" }, "answered")
          : button("Answered", act("qa_answer", q.id)),
        button("Hide", act("qa_hide", q.id)),
      ),
    ),
  );
}

function addComment(c) {
  const list = $("comments");
  list.append(
    el(
      "li",
      { "data-seq": c.seq },
      el("span", { class: "who" }, c.system ? "📣" : `${c.name}`),
      el("span", { class: "what" }, c.text),
      button("Delete", () => run({ command: "delete_comment", seq: c.seq }), {
        "aria-label": `Delete comment ${c.seq}`,
      }),
      c.system
        ? ""
        : button("Mute", () => run({ command: "mute", user: c.user }), {
            "aria-label": `Mute ${c.name}`,
          }),
    ),
  );
  while (list.children.length > COMMENTS_MAX) list.firstElementChild.remove();
  list.scrollTop = list.scrollHeight;
}

function onDirect({ from, payload }) {
  if (from !== "ovation" || !payload || typeof payload !== "object")
    return log(`message from ${from}: ${JSON.stringify(payload)}`);
  switch (payload.type) {
    case "poll_tallies":
      seen.tallies = payload;
      return renderPoll();
    case "quiz_answers":
      $("quiz-answers").textContent = payload.answers;
      return;
    case "product_clicks": {
      const id = $("product-current").dataset.id;
      $("product-clicks").textContent = (id && payload.clicks[id]) || 0;
      return;
    }
    case "qa_queue":
      seen.queue = payload.pending || [];
      return renderQa();
    case "command_reply":
      return log(`✓ ${JSON.stringify(payload.reply)}`, "ok");
    default:
      return log(`ovation: ${JSON.stringify(payload)}`);
  }
}

function onPart(name, value) {
  if (name === "poll") {
    seen.poll = value;
    renderPoll();
  } else if (name === "quiz") {
    seen.quiz = value;
    renderQuiz();
  } else if (name === "qa") {
    seen.qa = value;
    renderQa();
  } else if (name === "product") {
    const pinned = value?.pinned;
    $("product-current").textContent = pinned
      ? `${pinned.title} (${pinned.id}, ${pinned.price})`
      : "Nothing pinned";
    if (pinned) $("product-current").dataset.id = pinned.id;
    else delete $("product-current").dataset.id;
  } else if (name === "announcement") {
    log(value?.text ? `announcement: ${value.text}` : "announcement unpinned");
  }
}

// ---- Forms and buttons ----

const lines = (text) =>
  text
    .split("\n")
    .map((s) => s.trim())
    .filter(Boolean);
const seconds = (id) => Math.round(Number($(id).value) * 1000);
const currentId = (name) => seen[name]?.id;

$("poll-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const spec = {
    question: $("poll-question").value.trim(),
    options: lines($("poll-options").value),
    window_ms: seconds("poll-window"),
    tallies_public: $("poll-public").checked,
    reveal_on_close: $("poll-reveal-on-close").checked,
  };
  if ($("poll-cue").value.trim()) spec.cue = $("poll-cue").value.trim();
  run({ command: "create_poll", spec });
});
$("poll-close").addEventListener("click", () =>
  run({ command: "close_poll", id: currentId("poll") }),
);
$("poll-reveal").addEventListener("click", () =>
  run({ command: "reveal_poll", id: currentId("poll") }),
);

$("quiz-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const window_ms = seconds("quiz-window");
  const questions = lines($("quiz-questions").value).map((line) => {
    const [question, ...rest] = line.split("|").map((s) => s.trim());
    const correct = Math.max(
      0,
      rest.findIndex((o) => o.startsWith("*")),
    );
    return { question, options: rest.map((o) => o.replace(/^\*/, "").trim()), correct, window_ms };
  });
  run({ command: "create_quiz", spec: { title: $("quiz-title").value.trim(), questions } });
});
$("quiz-next").addEventListener("click", () =>
  run({ command: "next_question", id: currentId("quiz") }),
);
$("quiz-close").addEventListener("click", () =>
  run({ command: "close_question", id: currentId("quiz") }),
);
$("quiz-end").addEventListener("click", () => run({ command: "end_quiz", id: currentId("quiz") }));

$("product-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const product = {};
  for (const field of ["id", "title", "price", "image", "link", "cue"])
    product[field] = $(`product-${field}`).value.trim();
  product.image_url = product.image;
  delete product.image;
  if (!product.cue) delete product.cue;
  run({ command: "pin_product", product });
});
$("product-unpin").addEventListener("click", () => run({ command: "unpin_product" }));

$("qa-approval").addEventListener("change", (e) =>
  run({ command: "qa_settings", approval: e.target.checked }),
);

const user = () => $("mod-user").value.trim();
$("mod-mute").addEventListener("click", () => {
  const command = { command: "mute", user: user() };
  if ($("mod-duration").value) command.duration_ms = seconds("mod-duration");
  run(command);
});
$("mod-unmute").addEventListener("click", () => run({ command: "unmute", user: user() }));
$("mod-ban").addEventListener("click", () => run({ command: "ban", user: user() }));
$("mod-unban").addEventListener("click", () => run({ command: "unban", user: user() }));
$("slow-set").addEventListener("click", () =>
  run({ command: "slow_mode", interval_ms: seconds("slow-interval") }),
);
$("words-set").addEventListener("click", () =>
  run({
    command: "word_filter",
    words: $("word-filter")
      .value.split(",")
      .map((w) => w.trim())
      .filter(Boolean),
  }),
);
$("announce-set").addEventListener("click", () =>
  run({ command: "announce", text: $("announce-text").value.trim() }),
);
$("announce-clear").addEventListener("click", () => run({ command: "announce", text: null }));

// Ending is for good: the button asks for a second click within five seconds.
let endArmed = null;
$("end-room").addEventListener("click", () => {
  const b = $("end-room");
  if (!endArmed) {
    b.textContent = "Click again to end the room";
    endArmed = setTimeout(() => {
      endArmed = null;
      b.textContent = "End the room";
    }, 5000);
    return;
  }
  clearTimeout(endArmed);
  endArmed = null;
  b.textContent = "End the room";
  run({ command: "end_room" });
});

// ---- Connect ----

$("room-id").textContent = params.get("room") || "";
try {
  room = await connect({
    url: params.get("url"),
    room: params.get("room"),
    token: params.get("token"),
  });
  window.room = room;
  setStatus(room.status);
  $("viewers").textContent = room.online;
  $("likes").textContent = room.likes;
  for (const [name, value] of Object.entries(room.state.parts)) onPart(name, value);
  room.on("status", (s) => {
    if ($("status").dataset.status !== "ended") setStatus(s.status);
  });
  room.on("online", ({ count }) => {
    $("viewers").textContent = count;
  });
  room.on("like", ({ total }) => {
    $("likes").textContent = total;
  });
  room.on("comment", addComment);
  room.on("removed", ({ seq }) =>
    $("comments")
      .querySelector(`[data-seq="${Number(seq)}"]`)
      ?.remove(),
  );
  room.on("gift", (g) => log(`🎁 ${g.name} sent ${g.qty} × ${g.sku} (${g.amount})`));
  room.on("direct", onDirect);
  for (const name of ["poll", "quiz", "qa", "product", "announcement"])
    room.on(name, (value) => onPart(name, value));
  room.on("ended", () => {
    setStatus("ended");
    log("the room has ended");
  });
  room.on("error", (e) => log(`✗ ${e.code}: ${e.message}`, "error"));
} catch (e) {
  setStatus("closed");
  log(`✗ could not connect: ${e.code} ${e.message}`, "error");
}
