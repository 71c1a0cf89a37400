// Types for the `ovation` package. The API is a contract: additive changes only.

export type Transport = "auto" | "ws" | "pull";

export interface ConnectOptions {
  /** Service URL, e.g. "https://live.example.com" or "http://127.0.0.1:8787". */
  url: string;
  /** Room id with its region prefix, e.g. "weur-show". */
  room: string;
  /** A viewer/host/moderator token (JWT) from your backend. */
  token: string;
  /** "auto" (default): WebSocket; the pull transport (receive only) when sockets fail
   * before any opened, or the room is full. */
  transport?: Transport;
  /** A WebSocket constructor where there is no global one (Node: the `ws` package). */
  WebSocket?: unknown;
  /** Reject `connect` when the room has not answered within this time (default 15000). */
  timeoutMs?: number;
  /** Aborting it while connecting closes the room and rejects with code `aborted`. */
  signal?: AbortSignal;
}

export interface RoomState {
  epoch: number;
  version: number;
  /** Parts by name, values parsed from JSON. */
  parts: Record<string, unknown>;
}

export interface StatusEvent {
  status: "connecting" | "open" | "reconnecting" | "closed";
  transport: "ws" | "pull";
  reason?: string | null;
}

export interface ActionBase {
  seq: number;
  ts_ms: number;
  user: string;
  name: string;
}

export interface CommentEvent extends ActionBase {
  text: string;
  /** A broadcast from the admin API. */
  system: boolean;
}

export interface ReactionEvent extends ActionBase {
  kind: string;
}

export interface GiftEvent extends ActionBase {
  sku: string;
  qty: number;
  amount: number;
}

export interface LikeEvent {
  total: number;
}
export interface OnlineEvent {
  count: number;
}
export interface DirectEvent {
  from: string;
  payload: unknown;
  ts_ms: number;
}
export interface BalanceEvent {
  balance: number;
}
export interface GapEvent {
  missed_after: number;
  resumed_from: number;
}
/**
 * Likes this client made that the room will not count, with why: "too_many" (more
 * than 1,000 waiting to be sent), "closed" / "room_ended" (the session ended first; or
 * the server's code when it ended the session: "banned", "room_full", "bad_frame", ...),
 * "unsupported_transport" (pull only receives), "not_sent" (no connection to send them
 * on within the action timeout: not counted), "timeout" (sent, never answered) or
 * "unconfirmed" (sent, and the session ended or moved to pull before the answer): those
 * may or may not have been counted; or the room's refusal code. Likes refused for the
 * room's rate are sent again and never reported here.
 */
export interface LikesDroppedEvent {
  count: number;
  code: string;
  message: string;
}

export declare class OvationError extends Error {
  /** Stable machine-readable code: "rate_limited", "forbidden", "too_long", "invalid",
   * "timeout" (sent, no answer within 20 s: it may have been applied), "not_sent" (no
   * connection to send it on within 20 s: never applied, safe to send again), "closed",
   * "room_ended", "unsupported_transport", "invalid_options", "bad_response" (an answer
   * that is not the API's, such as a proxy's page), ...
   * `connect` rejects with the server's code at once when it refuses (on every
   * transport): "token_expired", "token_invalid_signature", "token_wrong_room", "room_not_found",
   * "room_ended", "too_many_sockets" (the user's other tabs hold the room's limit), ...;
   * when the session did not open in time, the code of the last `error` event the attempt
   * was told (a 5xx or 429 a retry could change, such as 503 "auth_not_configured"; or
   * "room_full" when `auto` could not open the pull transport either), or
   * "connect_timeout" when there was none; "sdk_load_failed" when the SDK's wasm
   * (or, for `replay`, its code) did not load: the next call loads again. */
  code: string;
  /** When a retry may succeed: for "rate_limited", and for a gift refused
   * "unavailable" (its charge still under way, or a gift no longer sold). */
  retryAfterMs?: number;
  /** For a refused `gift`: its id, to retry the same gift with (charged once). */
  giftId?: string;
}

export interface EventMap {
  status: StatusEvent;
  comment: CommentEvent;
  reaction: ReactionEvent;
  like: LikeEvent;
  gift: GiftEvent;
  online: OnlineEvent;
  state: RoomState;
  direct: DirectEvent;
  balance: BalanceEvent;
  gap: GapEvent;
  ended: Record<string, never>;
  poll: unknown;
  quiz: unknown;
  qa: unknown;
  product: unknown;
  announcement: unknown;
  /** A moderator removed comment `seq`. */
  removed: { seq: number; by: string; ts_ms: number };
  /** An in-band cue played (attachPlayer): its id, what it refers to, the media time (s). */
  cue: { cue: string; ref: { kind: string; id: string } | null; media_time: number };
  /**
   * Also `handler_error` when an event handler threw (the message names the event type,
   * `cause` is what it threw); it is logged with console.error and never rethrown; and
   * `bad_server_frame` when a frame from the server could not be decoded (the session
   * reconnects), unlike `bad_frame`, the server's refusal of a frame, which ends it; and
   * a server error a retry may change (a 5xx or 429, with the server's code) while the
   * session retries.
   */
  error: OvationError & { cause?: unknown };
  likes_dropped: LikesDroppedEvent;
}

export interface Room {
  readonly state: RoomState;
  readonly status: StatusEvent["status"];
  readonly transport: "ws" | "pull";
  /** Connections online in the room (last count heard). */
  readonly online: number;
  /** The room's like total (last total heard). */
  readonly likes: number;
  /** Subscribes; returns a function that unsubscribes. */
  on<K extends keyof EventMap>(type: K, handler: (event: EventMap[K]) => void): () => void;
  /** Resolves with the comment's sequence number once the room accepted it. */
  comment(text: string): Promise<{ seq: number | null }>;
  react(kind: string): Promise<{ seq: number | null }>;
  /**
   * Coalesced: one frame per ~250 ms carrying a count, under the room's per-user rate
   * (20/s, bursts of 20); a frame the room refuses for the rate is sent again. Returns
   * how many likes were queued; the rest, and any queued like the room will not count,
   * arrive as a `likes_dropped` event.
   */
  like(count?: number): number;
  /** Hosts and moderators: a peer message to every connection of one user. The
   * payload is sent as JSON; a string is taken as JSON text already (`"hi"` is refused
   * `invalid`: send `JSON.stringify("hi")` or an object). */
  direct(userId: string, payload: unknown): Promise<{ seq: number | null }>;
  /** Hosts and moderators: set an app-defined state part. */
  setPart(name: string, value: unknown): Promise<{ seq: number | null }>;
  /** A gift from the room's catalog; `id` makes retries safe. A rejection carries the
   * `giftId` to retry with (after "unavailable", "timeout" or "closed" the charge may
   * have been made: retry with that id, never a new one). */
  gift(
    sku: string,
    qty?: number,
    options?: { id?: string },
  ): Promise<{ seq: number | null; giftId: string }>;
  /** A vote in the open poll (options from 0); only a user's first vote counts. */
  vote(pollId: string, option: number): Promise<{ seq: number | null }>;
  /** An answer to the open quiz question (question index and option from 0). */
  answer(quizId: string, questionIndex: number, option: number): Promise<{ seq: number | null }>;
  /** A question for the host's Q&A. */
  ask(text: string): Promise<{ seq: number | null }>;
  /** Upvotes a Q&A question, once per user. */
  upvote(questionId: string): Promise<{ seq: number | null }>;
  /** Counts a click on a product card pinned in this room, once per user and product (later clicks are acknowledged and not counted). */
  productClick(productId: string): Promise<{ seq: number | null }>;
  /** Hosts and moderators: a staff command (`{command: "mute", user: "u1"}`, …). */
  command(command: { command: string; [field: string]: unknown }): Promise<{ seq: number | null }>;
  /**
   * Reads ID3 cues (HLS TS or fMP4 emsg) from a video as its frames play, opens cued
   * interactions at their cue (at once when the cue lies behind the playhead: joined or
   * seeked past it), and with `sync: "video"` holds comments, reactions, gifts
   * and removals until the video reaches their server time. Loads its code on first use;
   * resolves with a detach function (it shows what waits, each part once). Rejects with
   * `player_load_failed` when that code cannot load (what waited shows at once).
   */
  attachPlayer(
    video: HTMLVideoElement,
    options?: { hls?: unknown; sync?: "video" | "none" },
  ): Promise<() => void>;
  /** The server's clock (ms since the Unix epoch). */
  serverNow(): number;
  /** Server clock minus local clock (ms), or null before the first clock sample. */
  clockOffset(): number | null;
  /** Closes the session for good and detaches the player (what it held is dropped). */
  close(): void;
}

export declare function connect(options: ConnectOptions): Promise<Room>;

export interface ReplayOptions {
  /** Service URL, as for `connect`. */
  url: string;
  /** Room id with its region prefix (a live or an ended room). */
  room: string;
  /** A viewer token for the room (sent as `Authorization: Bearer`). */
  token: string;
  /** A `fetch` to use instead of the global one. */
  fetch?: typeof fetch;
}

/** The recording's bounds (server time, ms since the Unix epoch), from its last answer. */
export interface Recording {
  started_ms: number;
  ended_ms: number | null;
  /** "live": the room is still on and its recording grows; "ended": final. */
  status: "live" | "ended";
  /** The recording hit its size limit here; nothing after it was recorded. */
  truncated_at_ms: number | null;
}

/**
 * A room's recording played against a video: the same events, with the same payloads, as
 * a live room (`comment`, `reaction`, `gift`, `removed`, `like`, `state`, `poll`, `quiz`,
 * `qa`, `product`, `announcement`, `cue`, `error`), read-only.
 */
export interface Replay {
  readonly state: RoomState;
  /**
   * "refused": the server refused a window for good (HTTP 400, 401, 403, 404, 410, told
   * once as an `error` event): what arrived still plays, nothing more is fetched.
   */
  readonly status: "open" | "refused" | "closed";
  readonly transport: "replay";
  /** Always 0: a recording has no audience count. */
  readonly online: number;
  /** The like total at the playhead. */
  readonly likes: number;
  readonly recording: Recording;
  /** The server time the video shows (ms since the Unix epoch): for countdowns. */
  serverNow(): number;
  /** Subscribes; returns a function that unsubscribes. */
  on<K extends keyof EventMap>(type: K, handler: (event: EventMap[K]) => void): () => void;
  /**
   * Plays the recording against `video` (native HLS, or hls.js passed as `hls`): each event
   * shows when the video reaches the moment it happened live (EXT-X-PROGRAM-DATE-TIME;
   * without it the room's start is media time 0), a cued interaction when its cue plays;
   * a seek jumps the state to that moment without a burst of older comments; pausing
   * pauses; the playback rate is followed. Windows are fetched ahead of the playhead.
   * Resolves with a function that detaches the video.
   */
  attachPlayer(video: HTMLVideoElement, options?: { hls?: unknown }): Promise<() => void>;
  /** Detaches the video and lets go of the recording: no event or fetch follows. */
  close(): void;
}

/**
 * Opens a room's recording: resolves once its bounds are known; rejects with an
 * `OvationError` (`invalid_options`, or the server's code: `token_wrong_room`,
 * `room_not_found`, …). Its code (a separate wasm module) loads on first use. While it
 * plays, `error` events tell a failed window fetch (retried) and `replay_incomplete` (part
 * of a window is not stored yet: the rest plays).
 */
export declare function replay(options: ReplayOptions): Promise<Replay>;

/**
 * The cue id an interaction part waits for before it shows (`cue` of an open poll, an open
 * quiz question, a pinned product), or null when it shows at once.
 */
/** Every event type `room.on` takes. */
export declare const EVENT_TYPES: ReadonlySet<string>;

export declare function cueOf(part: string, value: unknown): string | null;
