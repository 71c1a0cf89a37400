// Unit tests of `ovation/react` with a scripted room: React 19 (react-test-renderer in
// StrictMode, react-dom/server) drives the real provider and hooks; the room is a script
// that speaks the SDK's Room interface (`on`, `state`, events, actions), so each test
// decides exactly what the service says. The same bindings against the real worker, in
// Chromium, are tested by npm/test/vite-react-app (tests/tests/sdk_vite.rs).
// Runs from the sources (`node --test npm/test/react.test.mjs`) and from the packed
// tarball (tests/tests/sdk_node.rs copies it next to the installed package).

import { test } from "node:test";
import assert from "node:assert/strict";
import { act, createElement as h, StrictMode } from "react";
import { renderToString } from "react-dom/server";
import TestRenderer from "react-test-renderer";
import { OvationError } from "ovation";
import {
  COMMENTS_KEPT_MAX,
  OvationProvider,
  useComments,
  useConnectionStatus,
  useLikes,
  useOnline,
  usePoll,
  useProduct,
  useQuiz,
  useRoom,
  useRoomEvent,
  useRoomState,
} from "ovation/react";

globalThis.IS_REACT_ACT_ENVIRONMENT = true;
// React 19 says once that react-test-renderer is deprecated; nothing else may be logged.
const consoleError = console.error;
console.error = (...args) => {
  if (String(args[0]).includes("react-test-renderer is deprecated")) return;
  consoleError(...args);
};

/** A room whose server side is this test: it emits what the SDK's Room would. */
class ScriptedRoom {
  constructor(options) {
    this.options = options;
    this.state = { epoch: 1, version: 0, parts: {} };
    this.status = "open";
    this.transport = "ws";
    this.online = 0;
    this.likes = 0;
    this.handlers = new Map();
    this.closes = 0;
    this.actions = [];
  }

  on(type, handler) {
    let set = this.handlers.get(type);
    if (!set) this.handlers.set(type, (set = new Set()));
    set.add(handler);
    return () => set.delete(handler);
  }

  listenerCount() {
    let count = 0;
    for (const set of this.handlers.values()) count += set.size;
    return count;
  }

  /** The event types something listens to. */
  listenedTypes() {
    return [...this.handlers].filter(([, set]) => set.size > 0).map(([type]) => type);
  }

  emit(type, payload) {
    for (const handler of this.handlers.get(type) || []) handler(payload);
  }

  // What the service says, as the SDK turns it into Room fields and events.
  part(name, value) {
    this.state.parts[name] = value;
    this.state.version += 1;
    this.emit("state", this.state);
    if (["poll", "quiz", "product"].includes(name)) this.emit(name, value);
  }

  countOnline(count) {
    this.online = count;
    this.emit("online", { count });
  }

  countLikes(total) {
    this.likes = total;
    this.emit("like", { total });
  }

  comment(seq, text) {
    this.emit("comment", {
      seq,
      ts_ms: 1000 + seq,
      user: `u${seq}`,
      name: `U${seq}`,
      text,
      system: false,
    });
  }

  close() {
    this.closes += 1;
  }

  like(count) {
    this.actions.push(["like", count]);
    return count;
  }

  vote(pollId, option) {
    this.actions.push(["vote", pollId, option]);
    return Promise.resolve({ seq: null });
  }

  answer(quizId, questionIndex, option) {
    this.actions.push(["answer", quizId, questionIndex, option]);
    return Promise.resolve({ seq: null });
  }

  productClick(productId) {
    this.actions.push(["productClick", productId]);
    return Promise.resolve({ seq: null });
  }
}

/** A `connect` that opens scripted rooms (or, with `gate`, waits for the test to let it). */
function scriptedService({ refuse, gate } = {}) {
  const rooms = [];
  const signals = [];
  const connect = async (options) => {
    signals.push(options.signal);
    if (gate) await gate;
    if (refuse) throw new OvationError(refuse, `refused: ${refuse}`);
    const room = new ScriptedRoom(options);
    rooms.push(room);
    return room;
  };
  return { connect, rooms, signals };
}

const URL = "http://127.0.0.1:1";
const TOKEN = "token-ana";

/** Lets pending promises and timers (the provider's release) run, inside act. */
function settle() {
  return act(() => new Promise((resolve) => setTimeout(resolve, 1)));
}

async function render(element) {
  let renderer;
  await act(async () => {
    renderer = TestRenderer.create(element);
  });
  await settle();
  return renderer;
}

function provider(props, ...children) {
  return h(
    StrictMode,
    null,
    h(OvationProvider, { url: URL, room: "weur-show", token: TOKEN, ...props }, ...children),
  );
}

/** Renders every hook and keeps their last values in `seen`. */
function Everything({ seen, max = 2 }) {
  seen.room = useRoom();
  seen.connection = useConnectionStatus();
  seen.state = useRoomState();
  seen.custom = useRoomState("custom");
  seen.comments = useComments({ max });
  seen.online = useOnline();
  seen.likes = useLikes();
  seen.poll = usePoll();
  seen.quiz = useQuiz();
  seen.product = useProduct();
  return null;
}

test("StrictMode: the double mount connects once, unmount closes the room and leaves no listener", async () => {
  const service = scriptedService();
  const seen = {};
  const renderer = await render(provider({ connect: service.connect }, h(Everything, { seen })));
  assert.equal(service.rooms.length, 1, "one connection for StrictMode's mount, unmount, mount");
  const [room] = service.rooms;
  assert.deepEqual(
    {
      url: room.options.url,
      room: room.options.room,
      token: room.options.token,
      transport: room.options.transport,
    },
    { url: URL, room: "weur-show", token: TOKEN, transport: "auto" },
  );
  assert.equal(room.closes, 0);
  assert.equal(seen.room, room);
  assert.equal(seen.connection.status, "open");
  assert.ok(room.listenerCount() > 0);

  await act(async () => renderer.unmount());
  await settle();
  assert.equal(room.closes, 1, "the last consumer's unmount closes the room");
  assert.equal(room.listenerCount(), 0, "no listener is left on the room");
  assert.equal(service.rooms.length, 1);
});

test("hooks show what the room says and act on it", async () => {
  const service = scriptedService();
  const seen = {};
  const renderer = await render(provider({ connect: service.connect }, h(Everything, { seen })));
  const [room] = service.rooms;
  assert.equal(seen.online, 0);
  assert.equal(seen.poll.poll, null);
  assert.equal(seen.custom, null);

  const before = seen.state;
  await act(async () => {
    room.countOnline(3);
    room.countLikes(7);
    room.comment(1, "one");
    room.comment(2, "two");
    room.comment(3, "three");
    room.part("custom", { theme: "dark" });
  });
  assert.equal(seen.online, 3);
  assert.equal(seen.likes.total, 7);
  assert.deepEqual(
    seen.comments.map((c) => c.text),
    ["two", "three"],
    "the last `max`, oldest first",
  );
  assert.deepEqual(seen.custom, { theme: "dark" });
  assert.notEqual(
    seen.state,
    before,
    "a changed state is a new object (the SDK's is updated in place)",
  );
  assert.equal(seen.state.version, 1);

  await act(async () => room.emit("removed", { seq: 3, by: "mo", ts_ms: 2000 }));
  assert.deepEqual(
    seen.comments.map((c) => c.text),
    ["one", "two"],
    "a removed comment leaves",
  );

  await act(async () => {
    room.part("poll", { id: "p1", question: "Who?", options: ["red", "blue"], phase: "open" });
    room.part("quiz", {
      id: "z1",
      phase: "open",
      question: { index: 2, text: "2+2?", options: ["3", "4"] },
    });
    room.part("product", {
      pinned: { id: "red-1", title: "Red", price: "€1", image_url: "", link: "" },
      pinned_ms: 5,
    });
  });
  assert.equal(seen.poll.poll.question, "Who?");
  await seen.poll.vote(1);
  await seen.quiz.answer(1);
  await seen.product.click();
  assert.equal(seen.likes.like(3), 3);
  assert.deepEqual(room.actions, [
    ["vote", "p1", 1],
    ["answer", "z1", 2, 1],
    ["productClick", "red-1"],
    ["like", 3],
  ]);

  await act(async () =>
    room.emit("status", { status: "closed", transport: "ws", reason: "room_ended" }),
  );
  assert.equal(seen.connection.status, "closed");
  assert.equal(seen.connection.error.code, "room_ended");
  await act(async () => renderer.unmount());
  await settle();
});

test("useRoomEvent calls the latest handler and lets go on unmount", async () => {
  const service = scriptedService();
  const calls = [];
  function Listener({ label }) {
    useRoomEvent("reaction", (e) => calls.push(`${label}:${e.kind}`));
    return null;
  }
  const renderer = await render(
    provider({ connect: service.connect }, h(Listener, { label: "a" })),
  );
  const [room] = service.rooms;
  await act(async () => room.emit("reaction", { kind: "clap" }));
  await act(async () =>
    renderer.update(provider({ connect: service.connect }, h(Listener, { label: "b" }))),
  );
  await act(async () => room.emit("reaction", { kind: "fire" }));
  assert.deepEqual(calls, ["a:clap", "b:fire"], "each event once, to the latest handler");
  assert.equal(room.handlers.get("reaction").size, 1, "a new handler does not subscribe again");
  await act(async () => renderer.update(provider({ connect: service.connect })));
  assert.equal(room.handlers.get("reaction").size, 0, "an unmounted listener is unsubscribed");
  await act(async () => renderer.unmount());
  await settle();
});

test("providers naming one room share a connection; a new token opens another and closes the old", async () => {
  const service = scriptedService();
  const seenA = {};
  const seenB = {};
  const two = (token) =>
    h(
      StrictMode,
      null,
      h(
        OvationProvider,
        { url: URL, room: "weur-show", token, connect: service.connect },
        h(Everything, { seen: seenA }),
      ),
      h(
        OvationProvider,
        { url: URL, room: "weur-show", token, connect: service.connect },
        h(Everything, { seen: seenB }),
      ),
    );
  const renderer = await render(two(TOKEN));
  assert.equal(service.rooms.length, 1);
  assert.equal(seenA.room, seenB.room);

  await act(async () => renderer.update(two("token-refreshed")));
  await settle();
  assert.equal(service.rooms.length, 2, "the new token connects once");
  assert.equal(service.rooms[0].closes, 1, "the old connection is closed");
  // Only the forwarder of the likes the old connection drops (told after its close).
  assert.deepEqual(service.rooms[0].listenedTypes(), ["likes_dropped"]);
  assert.equal(service.rooms[1].options.token, "token-refreshed");
  assert.equal(seenA.room, service.rooms[1]);
  await act(async () => renderer.unmount());
  await settle();
  assert.equal(service.rooms[1].closes, 1);
});

test('likes the old connection drops after a token refresh reach useRoomEvent("likes_dropped")', async () => {
  const service = scriptedService();
  const dropped = [];
  function Listener() {
    useRoomEvent("likes_dropped", (event) => dropped.push(event));
    return null;
  }
  const app = (token) => provider({ token, connect: service.connect }, h(Listener));
  const renderer = await render(app(TOKEN));
  await act(async () => renderer.update(app("token-refreshed")));
  await settle();
  assert.equal(service.rooms[0].closes, 1);
  // The old room tells, as it closes, the likes it never had confirmed.
  const closedLikes = { count: 3, code: "closed", message: "the connection closed" };
  service.rooms[0].emit("likes_dropped", closedLikes);
  assert.deepEqual(dropped, [closedLikes]);
  // The current room's are heard once.
  service.rooms[1].emit("likes_dropped", { ...closedLikes, count: 1 });
  assert.deepEqual(
    dropped.map((e) => e.count),
    [3, 1],
  );
  await act(async () => renderer.unmount());
  await settle();
  assert.equal(service.rooms[1].listenerCount(), 0, "unmounted: no forwarder is left");
});

test("a refused connection shows closed with the service's code", async () => {
  const service = scriptedService({ refuse: "token_expired" });
  const seen = {};
  const renderer = await render(provider({ connect: service.connect }, h(Everything, { seen })));
  assert.equal(seen.connection.status, "closed");
  assert.ok(seen.connection.error instanceof OvationError);
  assert.equal(seen.connection.error.code, "token_expired");
  assert.equal(seen.room, null);
  await assert.rejects(seen.poll.vote(0), (e) => e.code === "not_connected");
  assert.equal(seen.likes.like(), 0, "nothing is queued without a room");
  await act(async () => renderer.unmount());
  await settle();
});

test("unmounted before the room answered: the late room is closed at once, nothing subscribed", async () => {
  let open;
  const service = scriptedService({ gate: new Promise((resolve) => (open = resolve)) });
  const seen = {};
  const renderer = await render(provider({ connect: service.connect }, h(Everything, { seen })));
  assert.equal(seen.connection.status, "connecting");
  await act(async () => renderer.unmount());
  await settle();
  assert.equal(service.signals.length, 1);
  assert.ok(
    service.signals[0].aborted,
    "the connect under way is aborted (the SDK closes its socket)",
  );
  open();
  await settle();
  assert.equal(service.rooms.length, 1);
  assert.equal(service.rooms[0].closes, 1);
  assert.equal(service.rooms[0].listenerCount(), 0);
});

test("without a token the provider waits, then connects once when it arrives", async () => {
  const service = scriptedService();
  const seen = {};
  const renderer = await render(
    provider({ connect: service.connect, token: undefined }, h(Everything, { seen })),
  );
  assert.equal(service.rooms.length, 0);
  assert.equal(seen.connection.status, "idle");
  await act(async () =>
    renderer.update(provider({ connect: service.connect }, h(Everything, { seen }))),
  );
  await settle();
  assert.equal(service.rooms.length, 1);
  assert.equal(seen.connection.status, "open");
  await act(async () => renderer.unmount());
  await settle();
});

test(`useComments keeps the last ${COMMENTS_KEPT_MAX}; a max one past that is refused`, async () => {
  const service = scriptedService();
  const seen = {};
  const renderer = await render(
    provider({ connect: service.connect }, h(Everything, { seen, max: COMMENTS_KEPT_MAX })),
  );
  const [room] = service.rooms;
  await act(async () => {
    for (let seq = 1; seq <= COMMENTS_KEPT_MAX + 1; seq++) room.comment(seq, `c${seq}`);
  });
  assert.equal(seen.comments.length, COMMENTS_KEPT_MAX);
  assert.equal(seen.comments[0].seq, 2, "the oldest one went");
  await act(async () => renderer.unmount());
  await settle();

  function TooMany() {
    useComments({ max: COMMENTS_KEPT_MAX + 1 });
    return null;
  }
  assert.throws(
    () => renderToString(provider({}, h(TooMany))),
    (e) => e instanceof OvationError && e.code === "invalid_options",
  );
  function Zero() {
    useComments({ max: 0 });
    return null;
  }
  assert.throws(
    () => renderToString(provider({}, h(Zero))),
    (e) => e.code === "invalid_options",
  );
});

test("server rendering connects nothing and renders the initial values", async () => {
  const service = scriptedService();
  // The SDK's own connect too: no WebSocket may be constructed on the server.
  const NativeWebSocket = globalThis.WebSocket;
  let sockets = 0;
  globalThis.WebSocket = class {
    constructor() {
      sockets += 1;
    }
  };
  function View() {
    const { status } = useConnectionStatus();
    const comments = useComments();
    const { poll } = usePoll();
    const { total } = useLikes();
    return h(
      "p",
      null,
      `${status} online=${useOnline()} likes=${total} comments=${comments.length} ` +
        `poll=${poll === null} room=${useRoom() === null} parts=${Object.keys(useRoomState().parts).length}`,
    );
  }
  try {
    const scripted = renderToString(provider({ connect: service.connect }, h(View)));
    const real = renderToString(provider({}, h(View)));
    const expected = "<p>idle online=0 likes=0 comments=0 poll=true room=true parts=0</p>";
    assert.equal(scripted, expected);
    assert.equal(real, expected);
    await new Promise((resolve) => setTimeout(resolve, 10));
    assert.equal(service.rooms.length, 0);
    assert.equal(sockets, 0);
  } finally {
    globalThis.WebSocket = NativeWebSocket;
  }
});

test("a hook outside <OvationProvider> says so", () => {
  function Orphan() {
    useOnline();
    return null;
  }
  assert.throws(
    () => renderToString(h(Orphan)),
    (e) => e instanceof OvationError && e.code === "no_provider",
  );
});
