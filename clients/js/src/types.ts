/** Wire format of a WebSocket connection (its subprotocol). SSE, long-poll and HTTP publish always use JSON. */
export type Format = 'json' | 'msgpack';

/** The ways the client can reach a worker, tried in the order given by {@link BridgeClientOptions.transports}. */
export type TransportKind = 'websocket' | 'sse' | 'poll';

/** Connection state. `reconnecting` covers both the wait before a new attempt and the attempt itself. */
export type ConnectionState = 'connecting' | 'open' | 'reconnecting' | 'closed';

/**
 * One frame as the server sends it (docs/protocol.md §2). Binary payloads (`enc: "base64"` in JSON, a top-level
 * `bin` in MessagePack) are handed to the application as `Uint8Array`, and `enc` is removed.
 */
export interface Envelope {
  type: string;
  room?: string;
  id?: string;
  /** Stream sequence (room messages, `ack`) or the connection's position in the room (`room.joined`, `room.state`). */
  seq?: number;
  /** Time the message was stored, ms since the Unix epoch (room messages only). */
  ts?: number;
  from?: string;
  enc?: string;
  payload?: unknown;
}

/**
 * A message from the server that the client could not read and left out ({@link BridgeClient.onSkipped}): not JSON or
 * MessagePack, not an envelope (an object with a string `type`), or an envelope it cannot read (a payload marked base64
 * that is not). The other envelopes of its array, and the connection, are not affected.
 */
export interface SkippedFrame {
  transport: TransportKind;
  /** Bytes of the message that held it: the WebSocket message, the SSE event's data, the long-poll answer's body. */
  bytes: number;
  /**
   * Its place in the array that held it (a batch WebSocket message's elements, a long-poll answer's `messages` or
   * `errors`); absent when the whole message was left out.
   */
  index?: number;
  /** Why, in the decoder's words. */
  reason: string;
}

/** A stored publish: the answer to {@link BridgeClient.send}. */
export interface Ack {
  room: string;
  id: string;
  seq: number;
  /** True when the server had already stored a message with this id (a retry): `seq` is the original's. */
  duplicate: boolean;
}

/** What `room.joined` said: the room's position and whether the resume was cut short by retention. */
export interface JoinResult {
  /** The room or pattern joined, as given to {@link BridgeClient.join}. */
  room: string;
  seq: number;
  replayed: number;
  truncated: boolean;
  /** For a join with `latest`: how many latest messages (one per room) came before it. */
  latest?: number;
}

/**
 * How to join a room or a room pattern (docs/protocol.md §4). A pattern (`devices.site-3.*`, `devices.site-3.>`)
 * delivers the messages of every room it matches, each with its own `room`; its position is a stream seq.
 */
export interface JoinOptions {
  /** Resume from this seq (0 to 2⁵³ − 1): every later message first. Default: live from now (or the kept position). */
  since?: number;
  /**
   * Before `room.joined`, the last stored message of the room, or of every room the pattern matches (at most the
   * worker's `MaxLatestRooms`, else the join fails with `too_many_rooms`). Only for a join without a position: a
   * resume replays every message after its position instead.
   */
  latest?: boolean;
  /**
   * Conflation: at most this many messages per second per room (above 0, at most 1,000), always the newest; the last
   * message of a burst always comes. Such a join is not de-duplicated by seq and has no position in `positions`; it
   * starts with `latest` (each room's current value), and on a WebSocket rejoins from its last `room.joined` with
   * `since` (for a room: from its last value), so a reconnect sends only values newer than those it delivered (a
   * pattern's rooms that changed since that `room.joined` send their newest value again). Over SSE and long-poll it
   * applies only when every joined room sets it (the smallest is used).
   */
  maxRate?: number;
}

export interface StateChange {
  state: ConnectionState;
  previous: ConnectionState;
  /** The transport in use once `open`. */
  transport?: TransportKind;
  /** `reconnecting`: the attempt number (0 for the first retry after a drop) and the delay before it, in ms. */
  attempt?: number;
  delayMs?: number;
  /** Why the last connection ended: its close code (WebSocket), HTTP status (SSE, poll), or an error text. */
  closeCode?: number;
  reason?: string;
}

/** The subset of the WebSocket constructor the client needs: the browser's, or the `ws` package's in Node. */
export interface WebSocketLike {
  binaryType: string;
  readonly readyState: number;
  // Event parameters are `any` so that both the DOM's and the `ws` package's sockets fit.
  /* eslint-disable @typescript-eslint/no-explicit-any */
  onopen: ((ev: any) => void) | null;
  onmessage: ((ev: any) => void) | null;
  onclose: ((ev: any) => void) | null;
  onerror: ((ev: any) => void) | null;
  /* eslint-enable @typescript-eslint/no-explicit-any */
  send(data: string | Uint8Array | ArrayBuffer): void;
  close(code?: number, reason?: string): void;
}

export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => WebSocketLike;

export type FetchLike = (input: string, init?: RequestInit) => Promise<Response>;

export interface ReconnectOptions {
  /** Ceiling of the first retry's random delay, in ms (default 500). Attempt n waits uniform(0, min(max, min·2ⁿ)). */
  minDelayMs?: number;
  /** Largest delay between attempts, in ms (default 20,000). */
  maxDelayMs?: number;
}

export interface BridgeClientOptions {
  /** Base URL of a worker, e.g. `http://127.0.0.1:8080` (or `location.origin`). `/ws`, `/sse`, `/poll` and `/api` are below it. */
  url: string;
  /** WebSocket subprotocol: `json` (bridge.v1.json, default) or `msgpack` (bridge.v1.msgpack). */
  format?: Format;
  /**
   * Offer the format's batch subprotocol first (`bridge.v1.json-batch`, `bridge.v1.msgpack-batch`; default true): a
   * worker that speaks it sends the envelopes queued for the client several per WebSocket message (one `message`
   * event for many during a replay or a burst); an older worker picks the plain one. Nothing changes for the
   * application: messages and events arrive one by one, in the same order. False: only the plain subprotocol.
   */
  batch?: boolean;
  /** Transports to try, in order, on every (re)connect. Default `['websocket', 'sse', 'poll']`. */
  transports?: TransportKind[];
  /** WebSocket constructor; default `globalThis.WebSocket`. In Node < 22 pass the `ws` package's `WebSocket`. */
  WebSocket?: WebSocketConstructor;
  /** fetch implementation; default `globalThis.fetch`. */
  fetch?: FetchLike;
  /** Access token (JWT), sent as `access_token` on the WebSocket URL and as `Authorization: Bearer` over HTTP. */
  token?: string;
  /**
   * Called for a new token after the server refused the current one (close 4001/4003, HTTP 401/403) and before a
   * JWT's `exp`. Without it, or when it returns nothing new, the client does not reconnect after 4001/4003.
   */
  getToken?: () => string | undefined | null | Promise<string | undefined | null>;
  /** Renew the token this many ms before its `exp` (default 30,000) and send `auth.refresh` on a WebSocket. */
  refreshBeforeExpiryMs?: number;
  reconnect?: ReconnectOptions;
  /** Most sends waiting for their ack (queued while offline, or in flight). A send beyond it rejects with `queue_full`. Default 1000. */
  maxQueue?: number;
  /** A send without an ack after this long (ms) is taken as a dead connection: reconnect and resend. Default 20,000. */
  ackTimeoutMs?: number;
  /** A transport that has not opened (welcome) after this long (ms) counts as unavailable. Default 10,000. */
  openTimeoutMs?: number;
  /**
   * Tries of a send refused with `publish_failed` (same id, after a backoff) before it rejects. Default 5. A
   * `rate_limited` refusal is not a try (the frame was not acted on): the send goes again, in order, up to 20 times.
   */
  maxPublishAttempts?: number;
  /**
   * Largest encoded frame the client will send, in bytes (the worker's `MaxFrameBytes`, default 65,536). The current
   * connection's `welcome` `maxFrameBytes`, when smaller, applies too (until that connection ends): a publish larger
   * than the limit rejects with `frame_too_big` unsent (measured as the transport sends it: the frame in `format` on a
   * WebSocket, the JSON HTTP body on SSE and long-poll; queued while disconnected, when it is due), and batch joins
   * are split to stay within it.
   */
  maxFrameBytes?: number;
  /** Messages asked for by `room.sync` after a truncated resume (1-100, default 100). */
  syncLimit?: number;
  /** Long-poll request timeout (ms); must exceed the worker's PollTimeout (25 s). Default 35,000. */
  pollRequestTimeoutMs?: number;
  /** Random source in [0, 1) for ids and jitter (default Math.random / crypto). Tests pass a seeded one. */
  random?: () => number;
  /** Id generator for sends and joins (default: 16 random bytes, base64url). */
  newId?: () => string;
}

/** An `error` frame from the server, or a client-side refusal. */
export class BridgeError extends Error {
  readonly code: string;
  readonly ref: string | null;
  constructor(code: string, message: string, ref: string | null = null) {
    super(`${code}: ${message}`);
    this.name = 'BridgeError';
    this.code = code;
    this.ref = ref;
  }
}
