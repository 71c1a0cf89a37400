// Types for `ovation/react`. The API is a contract: additive changes only.

import type { ReactElement, ReactNode } from "react";
import type {
  CommentEvent,
  ConnectOptions,
  EventMap,
  OvationError,
  Room,
  RoomState,
  StatusEvent,
  Transport,
  connect,
} from "./index.js";

/** The most recent comments a connection keeps for `useComments` (500). */
export declare const COMMENTS_KEPT_MAX: number;
/** `useComments()` without `max` (50). */
export declare const COMMENTS_DEFAULT_MAX: number;

export interface OvationProviderProps {
  /** Service URL, e.g. "https://live.example.com". Without it the provider waits. */
  url?: string | null;
  /** Room id with its region prefix, e.g. "weur-show". Without it the provider waits. */
  room?: string | null;
  /** The viewer's token (JWT). Without it (still loading) the provider waits. */
  token?: string | null;
  /** "auto" (default), "ws" or "pull". */
  transport?: Transport;
  /** More `connect()` options (`timeoutMs`, `WebSocket`), read when a connection opens. */
  options?: Omit<ConnectOptions, "url" | "room" | "token" | "transport" | "signal">;
  /**
   * Used instead of the SDK's `connect` (tests, or wrapping it). It gets a `signal`,
   * aborted when the last provider unmounts before the room answered.
   */
  connect?: typeof connect;
  children?: ReactNode;
}

/**
 * Connects its children to a room. One connection per (url, room, token, transport) is
 * shared by every provider naming it; it opens in an effect (never on the server) and
 * closes when its last provider unmounts (StrictMode's double mount keeps one socket).
 */
export declare function OvationProvider(props: OvationProviderProps): ReactElement;

export interface ConnectionStatus {
  /** "idle": not connecting (server rendering, before the first effect, no token yet). */
  status: "idle" | StatusEvent["status"];
  transport: "ws" | "pull" | null;
  /** Why it is closed: connecting failed (`token_expired`, …) or the room ended the session. */
  error: OvationError | null;
}

export interface Poll {
  id: string;
  question: string;
  options: string[];
  phase: "open" | "closed" | "result";
  opened_ms: number;
  closes_at_ms: number | null;
  closed_ms: number | null;
  cue: string | null;
  tallies_public: boolean;
  /** Votes per option, when public or revealed. */
  tallies?: number[];
  votes?: number;
}

export interface QuizQuestion {
  index: number;
  text: string;
  options: string[];
  cue: string | null;
  opened_ms: number;
  closes_at_ms: number | null;
  closed_ms: number | null;
  /** Once the question is scored. */
  correct?: number;
  tallies?: number[];
}

export interface Quiz {
  id: string;
  title: string;
  phase: "new" | "open" | "result" | "ended";
  question_count: number;
  participants: number;
  question?: QuizQuestion;
  leaderboard: { user: string; name: string; score: number }[];
}

export interface ProductCard {
  id: string;
  title: string;
  /** The price as the viewer reads it ("€19.99"). */
  price: string;
  image_url: string;
  /** Where a click leads (checked by the room: safe to render). */
  link: string;
  cue?: string | null;
}

type Acknowledged = Promise<{ seq: number | null }>;

/** The connected Room, or null until connected (and on the server). */
export declare function useRoom(): Room | null;
/**
 * Calls the latest `handler` with each event of `type` while mounted. `likes_dropped`
 * also comes from this provider's previous connection, closed after a new token.
 */
export declare function useRoomEvent<K extends keyof EventMap>(
  type: K,
  handler: (event: EventMap[K]) => void,
): void;
/** The room's state (a new object on each change). */
export declare function useRoomState(): RoomState;
/** One part's value, or null while the room has none. */
export declare function useRoomState<T = unknown>(part: string): T | null;
/** The last `max` comments, oldest first (max 1..=COMMENTS_KEPT_MAX, default 50). */
export declare function useComments(options?: { max?: number }): readonly CommentEvent[];
/** Connections online in the room. */
export declare function useOnline(): number;
/** The like total, and `like(count?)` (how many were queued; 0 when not connected). */
export declare function useLikes(): { total: number; like(count?: number): number };
/** The room's poll (null when none) and a vote in it (options from 0). */
export declare function usePoll(): { poll: Poll | null; vote(option: number): Acknowledged };
/** The room's quiz (null when none) and an answer to its current question. */
export declare function useQuiz(): { quiz: Quiz | null; answer(option: number): Acknowledged };
/** The pinned product card (null when none) and a click on it (counted once per user). */
export declare function useProduct(): { product: ProductCard | null; click(): Acknowledged };
/** The connection's status, transport and error. */
export declare function useConnectionStatus(): ConnectionStatus;
