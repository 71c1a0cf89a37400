// `ovation/react`: React bindings for the `ovation` SDK. A separate entry point: the core
// (`ovation`) does not import React, and React is an optional peer dependency.
//
// One connection per (url, room, token, transport) is shared by every <OvationProvider>
// that names it, counted by its consumers. It is opened in an effect (never while
// rendering, so never during server rendering) and closed RELEASE_DELAY_MS after its last
// consumer let go, so StrictMode's mount → unmount → mount, which happens within one
// commit, keeps the one connection it opened. Hooks read the connection's store through
// useSyncExternalStore; the store keeps immutable snapshots (a new object only when
// something changed), because the SDK's `room.state` is updated in place.
// No "use client" directive: bundlers warn about it in dependencies; under React Server
// Components, render the provider from your own client component.

import {
  createContext,
  createElement,
  useContext,
  useEffect,
  useMemo,
  useRef,
  useState,
  useSyncExternalStore,
} from "react";
import { connect as sdkConnect, OvationError } from "./index.js";

/** The most recent comments a connection keeps for `useComments` (its `max` is at most this). */
export const COMMENTS_KEPT_MAX = 500;
/** `useComments()` without `max`. */
export const COMMENTS_DEFAULT_MAX = 50;
// A macrotask: later than StrictMode's remount (same commit), so that remount keeps the socket.
const RELEASE_DELAY_MS = 0;

const IDLE = Object.freeze({ status: "idle", transport: null, error: null });
const CONNECTING = Object.freeze({ status: "connecting", transport: null, error: null });
const EMPTY_STATE = Object.freeze({ epoch: 0, version: 0, parts: Object.freeze({}) });
const NO_COMMENTS = Object.freeze([]);

function snapshotOf(state) {
  return Object.freeze({
    epoch: state.epoch,
    version: state.version,
    parts: Object.freeze({ ...state.parts }),
  });
}

/** A part's value, or null while the room has none. */
function partOf(state, name) {
  const value = state.parts[name];
  return value === undefined ? null : value;
}

/** One shared connection and what the hooks read of it. */
class RoomStore {
  constructor(key, options) {
    this.key = key;
    this.options = options;
    this.consumers = 0;
    this.releaseTimer = null;
    this.closed = false;
    this.room = null;
    this.connection = CONNECTING;
    this.state = EMPTY_STATE;
    this.online = 0;
    this.likes = 0;
    this.comments = NO_COMMENTS;
    this.poll = null;
    this.quiz = null;
    this.product = null;
    this.listeners = new Set();
    this.unsubscribes = [];
    // The providers that used this connection (see `Lineage`): they hear its late
    // `likes_dropped` after it closed.
    this.lineages = new Set();
    // Ends a connect still under way when the last consumer leaves (no socket or pull
    // retries until the timeout).
    this.abort = new AbortController();
    // Stable for useSyncExternalStore (a new function would resubscribe on every render).
    this.subscribe = (listener) => {
      this.listeners.add(listener);
      return () => this.listeners.delete(listener);
    };
  }

  start() {
    const { connect = sdkConnect, extra } = this.options;
    const { url, room, token, transport } = this.options;
    Promise.resolve()
      .then(() => connect({ ...extra, url, room, token, transport, signal: this.abort.signal }))
      .then(
        (connected) => this.attach(connected),
        (error) => {
          if (this.closed) return;
          this.update({ connection: { status: "closed", transport: null, error } });
        },
      );
  }

  attach(room) {
    if (this.closed) {
      room.close(); // every consumer left while it connected
      return;
    }
    this.room = room;
    this.state = snapshotOf(room.state);
    this.online = room.online;
    this.likes = room.likes;
    this.poll = partOf(room.state, "poll");
    this.quiz = partOf(room.state, "quiz");
    this.product = partOf(room.state, "product");
    this.connection = { status: room.status, transport: room.transport, error: null };
    const on = (type, handler) => this.unsubscribes.push(room.on(type, handler));
    on("status", ({ status, transport, reason }) => {
      const error =
        status === "closed" && reason
          ? new OvationError(reason, `the connection closed: ${reason}`)
          : null;
      this.update({ connection: { status, transport, error } });
    });
    on("state", (state) => this.update({ state: snapshotOf(state) }));
    on("online", ({ count }) => this.update({ online: count }));
    on("like", ({ total }) => this.update({ likes: total }));
    on("comment", (comment) => {
      const kept =
        this.comments.length < COMMENTS_KEPT_MAX
          ? this.comments
          : this.comments.slice(this.comments.length - COMMENTS_KEPT_MAX + 1);
      this.update({ comments: Object.freeze([...kept, comment]) });
    });
    on("removed", ({ seq }) => {
      if (this.comments.some((c) => c.seq === seq)) {
        this.update({ comments: Object.freeze(this.comments.filter((c) => c.seq !== seq)) });
      }
    });
    // The interaction events, not the state parts: with a player attached they open at
    // their cue (see attachPlayer).
    on("poll", (poll) => this.update({ poll }));
    on("quiz", (quiz) => this.update({ quiz }));
    on("product", (product) => this.update({ product }));
    this.notify();
  }

  update(changes) {
    Object.assign(this, changes);
    this.notify();
  }

  notify() {
    for (const listener of [...this.listeners]) listener();
  }

  close() {
    this.closed = true;
    this.abort.abort();
    for (const unsubscribe of this.unsubscribes) unsubscribe();
    this.unsubscribes = [];
    if (!this.room) return;
    // A token refresh closes this room after the provider moved on to the new one: likes
    // it never confirmed are told (`likes_dropped`, also after the close) to the
    // `useRoomEvent("likes_dropped")` handlers of the providers still mounted.
    const heirs = [...this.lineages].filter((lineage) => lineage.mounted);
    if (heirs.length > 0) {
      this.room.on("likes_dropped", (event) => {
        for (const lineage of heirs) {
          for (const handler of [...lineage.likesDropped]) handler(event);
        }
      });
    }
    this.room.close();
  }
}

const stores = new Map();

/**
 * One <OvationProvider> across its connections (a new token is a new connection): whether
 * it is mounted, and its `useRoomEvent("likes_dropped")` handlers, which also hear the
 * likes its closed connections dropped.
 */
class Lineage {
  constructor() {
    this.mounted = false;
    this.likesDropped = new Set();
  }
}

function acquire(options, lineage) {
  const key = JSON.stringify([options.url, options.room, options.token, options.transport]);
  let store = stores.get(key);
  if (!store) {
    store = new RoomStore(key, options);
    stores.set(key, store);
    store.start();
  }
  store.consumers += 1;
  store.lineages.add(lineage);
  clearTimeout(store.releaseTimer);
  store.releaseTimer = null;
  return store;
}

function release(store) {
  store.consumers -= 1;
  if (store.consumers > 0) return;
  clearTimeout(store.releaseTimer);
  store.releaseTimer = setTimeout(() => {
    if (store.consumers > 0) return;
    stores.delete(store.key);
    store.close();
  }, RELEASE_DELAY_MS);
}

// undefined: no provider above (a mistake); null: not connected (yet), e.g. server rendering.
const StoreContext = createContext(undefined);
const LineageContext = createContext(null);

function filled(value) {
  return typeof value === "string" && value !== "";
}

/**
 * Connects its children to a room: `url`, `room` and `token` as for `connect()`,
 * `transport` ("auto" by default), `options` (more `connect()` options, such as
 * `timeoutMs` or `WebSocket`; read when the connection opens), `connect` (a function used
 * instead of the SDK's `connect`, e.g. in tests). Without a url, room or token it waits
 * (hooks return their initial values), so a token that is still loading may be passed as
 * undefined.
 */
export function OvationProvider({
  url,
  room,
  token,
  transport = "auto",
  options,
  connect,
  children,
}) {
  const [store, setStore] = useState(null);
  const [lineage] = useState(() => new Lineage());
  const ready = filled(url) && filled(room) && filled(token);
  useEffect(() => {
    lineage.mounted = true;
    return () => {
      lineage.mounted = false;
    };
  }, [lineage]);
  // biome-ignore lint/correctness/useExhaustiveDependencies: `options` and `connect` are read when a connection opens; they do not reconnect.
  useEffect(() => {
    if (!ready) {
      setStore(null);
      return undefined;
    }
    const acquired = acquire({ url, room, token, transport, extra: options, connect }, lineage);
    setStore(acquired);
    return () => release(acquired);
  }, [ready, url, room, token, transport, lineage]);
  return createElement(
    LineageContext.Provider,
    { value: lineage },
    createElement(StoreContext.Provider, { value: store }, children),
  );
}

function useStore(hook) {
  const store = useContext(StoreContext);
  if (store === undefined) {
    throw new OvationError("no_provider", `${hook}() must be used inside <OvationProvider>`);
  }
  return store;
}

const subscribeNowhere = () => () => {};

/** The store's `field`, or `initial` while not connected (and on the server). */
function useField(hook, field, initial) {
  const store = useStore(hook);
  return useSyncExternalStore(
    store ? store.subscribe : subscribeNowhere,
    () => (store ? store[field] : initial),
    () => initial,
  );
}

function notConnected() {
  return Promise.reject(new OvationError("not_connected", "not connected to the room yet"));
}

/** The connected `Room` (the SDK's), or null until it is connected. */
export function useRoom() {
  return useField("useRoom", "room", null);
}

/**
 * Calls `handler` with each event of `type` (the SDK's event names) while mounted; the
 * latest handler is called, and changing it does not resubscribe. `likes_dropped` also
 * comes from this provider's previous connection (a new token closes it a moment later).
 */
export function useRoomEvent(type, handler) {
  const room = useRoom();
  const lineage = useContext(LineageContext);
  const latest = useRef(handler);
  useEffect(() => {
    latest.current = handler;
  });
  useEffect(() => {
    if (!room) return undefined;
    return room.on(type, (event) => latest.current(event));
  }, [room, type]);
  useEffect(() => {
    if (type !== "likes_dropped" || !lineage) return undefined;
    const forwarded = (event) => latest.current(event);
    lineage.likesDropped.add(forwarded);
    return () => lineage.likesDropped.delete(forwarded);
  }, [lineage, type]);
}

/**
 * The room's state `{epoch, version, parts}` (a new object on each change), or with a part
 * name that part's value (null while the room has none).
 */
export function useRoomState(part) {
  const state = useField("useRoomState", "state", EMPTY_STATE);
  return part === undefined ? state : partOf(state, part);
}

/**
 * The last `max` comments (oldest first; removed ones leave), from when the connection
 * opened. `max` is 1..=COMMENTS_KEPT_MAX (default COMMENTS_DEFAULT_MAX).
 */
export function useComments({ max = COMMENTS_DEFAULT_MAX } = {}) {
  if (!Number.isInteger(max) || max < 1 || max > COMMENTS_KEPT_MAX) {
    throw new OvationError(
      "invalid_options",
      `useComments: max is an integer in 1..=${COMMENTS_KEPT_MAX}`,
    );
  }
  const comments = useField("useComments", "comments", NO_COMMENTS);
  return useMemo(
    () =>
      comments.length <= max ? comments : Object.freeze(comments.slice(comments.length - max)),
    [comments, max],
  );
}

/** Connections online in the room (0 until the first count). */
export function useOnline() {
  return useField("useOnline", "online", 0);
}

/** `{total, like(count?)}`: the room's like total, and a like (how many were queued; 0 when not connected). */
export function useLikes() {
  const total = useField("useLikes", "likes", 0);
  const room = useRoom();
  return useMemo(
    () => ({ total, like: (count = 1) => (room ? room.like(count) : 0) }),
    [total, room],
  );
}

/** `{poll, vote(option)}`: the room's poll (null when none) and a vote in it (options from 0). */
export function usePoll() {
  const poll = useField("usePoll", "poll", null);
  const room = useRoom();
  return useMemo(
    () => ({
      poll,
      vote(option) {
        if (!room) return notConnected();
        if (!poll) return Promise.reject(new OvationError("not_found", "there is no poll"));
        return room.vote(poll.id, option);
      },
    }),
    [poll, room],
  );
}

/** `{quiz, answer(option)}`: the room's quiz (null when none) and an answer to its current question. */
export function useQuiz() {
  const quiz = useField("useQuiz", "quiz", null);
  const room = useRoom();
  return useMemo(
    () => ({
      quiz,
      answer(option) {
        if (!room) return notConnected();
        if (!quiz?.question)
          return Promise.reject(new OvationError("not_found", "there is no quiz question"));
        return room.answer(quiz.id, quiz.question.index, option);
      },
    }),
    [quiz, room],
  );
}

/** `{product, click()}`: the pinned product card (null when none) and a counted click on it. */
export function useProduct() {
  const part = useField("useProduct", "product", null);
  const room = useRoom();
  const product = part?.pinned ? part.pinned : null;
  return useMemo(
    () => ({
      product,
      click() {
        if (!room) return notConnected();
        if (!product) return Promise.reject(new OvationError("not_found", "no product is pinned"));
        return room.productClick(product.id);
      },
    }),
    [product, room],
  );
}

/**
 * `{status, transport, error}`: "idle" (not connecting: server rendering, before the first
 * effect, or no token yet), "connecting", "open", "reconnecting" or "closed" (with the
 * OvationError when connecting failed or the room closed the session for a reason).
 */
export function useConnectionStatus() {
  return useField("useConnectionStatus", "connection", IDLE);
}
