import { backoffDelay, jwtExpiryMs, randomId, reconnectAfterMs } from './backoff.js';
import { encodeFrame, encodedSize, toJsonFrame, type EncodedFrame } from './codec.js';
import { SendPacer } from './pacer.js';
import { PollTransport } from './transports/poll.js';
import { SseTransport } from './transports/sse.js';
import { authHeaders, OpenError, type EndInfo, type RoomPosition, type Transport, type TransportHost } from './transports/transport.js';
import { WebSocketTransport } from './transports/websocket.js';
import {
  BridgeError,
  type Ack,
  type BridgeClientOptions,
  type ConnectionState,
  type Envelope,
  type FetchLike,
  type Format,
  type JoinOptions,
  type JoinResult,
  type SkippedFrame,
  type StateChange,
  type TransportKind,
  type WebSocketConstructor,
} from './types.js';

/** Close codes the client acts on (docs/protocol.md §8). */
export const CloseCodes = {
  Normal: 1000,
  ServiceRestart: 1012,
  TokenExpired: 4001,
  Forbidden: 4003,
  SlowConsumer: 4008,
  TooManyConnections: 4029,
  /** Sent by this client when an ack is overdue: it treats the connection as dead. */
  AckTimeout: 4000,
} as const;

const NAME_TOKEN = /^[A-Za-z0-9_-]+$/;
const RESERVED_PREFIXES = ['room.', 'auth.', 'presence.', 'server.', 'bridge.'];
const RESERVED_NAMES = ['welcome', 'ack', 'error'];

/**
 * Entries per batch `room.join` at most: the worker's default `MaxRoomsPerConnection`, beyond which it refuses a batch
 * whole with `too_many_rooms` (protocol §4). A worker that says its `maxRoomsPerConnection` in `welcome` bounds it
 * further, as its `maxFrameBytes` bounds a batch's size (larger: close 1009).
 */
const MAX_BATCH_ENTRIES = 1000;
/** The room-less part of a batch frame besides its entries: `{"type":"room.join","id":"…","payload":{"rooms":[…]}}`. */
const BATCH_FRAME_OVERHEAD = 96;
/** Join errors a later try can mend: the join is sent again after a backoff. */
const RETRYABLE_JOIN_ERRORS = ['unavailable', 'rate_limited'];
/**
 * Tries of a first join (its `join()` still pending) refused with `unavailable` or `rate_limited` before it fails. A
 * held room (joined once) is tried again for as long as it is held: those refusals say nothing about the room.
 */
const MAX_JOIN_ATTEMPTS = 5;
/**
 * Single joins a batch's fallback sends at once, and then per {@link FALLBACK_INTERVAL_MS}: well within the worker's
 * frame rate limit (default 50 frames/s, burst 100, protocol §1.1), so the joins are not refused and publishes still
 * get through.
 */
const FALLBACK_JOINS_PER_INTERVAL = 20;
const FALLBACK_INTERVAL_MS = 1000;
/**
 * `rate_limited` refusals of one send before it rejects with that code. They do not count towards `maxPublishAttempts`
 * (the frame was not acted on), and sends are paced to the worker's announced rate, so a send is refused this often
 * only when the worker refuses nearly everything.
 */
const MAX_RATE_LIMITED_REFUSALS = 20;

function isDotted(name: string, maxLength: number, maxTokens: number): boolean {
  if (name.length < 1 || name.length > maxLength) return false;
  const tokens = name.split('.');
  return tokens.length <= maxTokens && tokens.every((t) => NAME_TOKEN.test(t));
}

/** Room name rules (protocol §2): 1-128 chars, 1-16 dot-separated tokens of [A-Za-z0-9_-]. */
export function isValidRoom(room: string): boolean {
  return typeof room === 'string' && isDotted(room, 128, 16);
}

/**
 * Room pattern rules (protocol §4): dot-separated tokens as in a room name, `*` for exactly one token and a final `>`
 * for one or more, with at least one wildcard.
 */
export function isValidPattern(pattern: string): boolean {
  if (typeof pattern !== 'string' || pattern.length < 1 || pattern.length > 128 || !/[*>]/.test(pattern)) return false;
  const tokens = pattern.split('.');
  return tokens.length <= 16 &&
    tokens.every((t, i) => t === '*' || (t === '>' && i === tokens.length - 1) || NAME_TOKEN.test(t));
}

/** True when the room (or every room of the pattern) `name` names can also be one `other` names. */
export function overlaps(name: string, other: string): boolean {
  const a = name.split('.');
  const b = other.split('.');
  for (let i = 0; ; i++) {
    if (i === a.length || i === b.length) return a.length === b.length;
    const x = a[i]!;
    const y = b[i]!;
    if (x === '>' || y === '>') return true;
    if (x !== '*' && y !== '*' && x !== y) return false;
  }
}

/**
 * A seq the client can compare and send back exactly: an integer from 0 to 2⁵³ − 1 (`Number.MAX_SAFE_INTEGER`).
 * The wire carries unsigned 64-bit seqs, but a JavaScript number (what `JSON.parse` and the MessagePack decoder
 * give) rounds above 2⁵³, so two seqs there can compare equal. The client keeps only exact seqs as a room's
 * position: a message whose seq is beyond them is delivered without de-duplication and does not move the
 * position, so a resume repeats it rather than skips anything (README, "Limits worth knowing").
 */
export function isExactSeq(seq: unknown): seq is number {
  return typeof seq === 'number' && Number.isSafeInteger(seq) && seq >= 0;
}

/**
 * An application type the server accepts for publishing: well-formed and not reserved (reserved names and prefixes
 * are matched ignoring case, as the server does: `ROOM.JOIN` is reserved).
 */
export function isPublishableType(type: string): boolean {
  return typeof type === 'string' && isDotted(type, 64, 8) && !isReservedType(type);
}

// A well-formed type reserved for the gateway (matched ignoring case, as the server does).
function isReservedType(type: string): boolean {
  const lower = type.toLowerCase(); // ASCII only: isDotted allows nothing else
  return RESERVED_NAMES.includes(lower) || RESERVED_PREFIXES.some((p) => lower.startsWith(p));
}

// The refusal of a type `send` cannot publish, with the server's code and words: `invalid_type` for a malformed one,
// `unknown_type` for a reserved one (docs/protocol.md §2, §8).
function typeRefusal(type: string): BridgeError | undefined {
  if (typeof type !== 'string' || !isDotted(type, 64, 8)) {
    return new BridgeError('invalid_type', 'type must be 1-64 characters of dot-separated [A-Za-z0-9_-] tokens');
  }
  if (!isReservedType(type)) return undefined;
  const dot = type.indexOf('.');
  const hint = /[A-Z]/.test(dot < 0 ? type : type.slice(0, dot)) ? ' (reserved types are matched ignoring case; gateway types are lowercase)' : '';
  return new BridgeError('unknown_type', `'${type}' is reserved for the gateway and not a client message type${hint}`);
}

interface RoomEntry {
  /** The room or pattern joined. */
  name: string;
  /** True for a pattern: its messages are of the rooms it matches. */
  pattern: boolean;
  latest: boolean;
  maxRate: number | undefined;
  /** Last seq received, or the `room.joined` position: what a resume asks for with `since`. */
  position: number | undefined;
  /**
   * A conflated join's position (it has no {@link position}: its messages are neither de-duplicated nor in seq order
   * across rooms): the last `room.joined` seq, below which every message was sent or replaced by a newer one that was
   * sent (protocol §4, conflation), and for a room (not a pattern) the seq of each later message, its rooms' values
   * coming in seq order. A rejoin sends it as `since`, so only newer values come. Undefined until the first
   * `room.joined`.
   */
  conflatedSince: number | undefined;
  /** `room.joined` seen on the current connection. */
  joined: boolean;
  /** Id of the join frame in flight on the current connection (a single join's, or its batch's): an error's `ref`. */
  joinId: string | undefined;
  /** Id of the batch join the room was sent in on the current connection, until it is joined. */
  batchId: string | undefined;
  /** Refusals with `unavailable` or `rate_limited` on the current connection: the backoff's exponent. */
  joinAttempts: number;
  /** Its `join()` resolved once: a retryable refusal of a rejoin never ends it. */
  held: boolean;
  /** Ids of its join frames (single or batch) sent on the current connection and not answered for it. */
  unanswered: Set<string>;
  /** A refused join's retry, waiting for its backoff. */
  retryTimer: ReturnType<typeof setTimeout> | undefined;
  waiters: Array<{ resolve: (r: JoinResult) => void; reject: (e: Error) => void }>;
}

/** A batch `room.join` frame sent on the current connection: its rooms, and what its room-less errors did. */
interface BatchJoin {
  id: string;
  /** The rooms it listed; those whose `batchId` is still this batch's id are not joined yet. */
  entries: RoomEntry[];
  /** A room-less error was answered (resent, split or fallen back to single joins); later ones change nothing. */
  handled: boolean;
  /** Its rooms refused with `unavailable` or `rate_limited`, to be sent again together in batch frames. */
  again: RoomEntry[];
  /** The send of {@link again}, waiting for the backoff of the first of them refused. */
  againTimer: ReturnType<typeof setTimeout> | undefined;
}

/**
 * A publish, encoded once when it was made (the application may change its payload object afterwards: what is sent,
 * and what was checked against the frame limit, is the payload as it was at `send()`).
 */
interface PendingSend {
  frame: { type: string; id: string; room: string };
  /** The `publish` frame in the connection's format, as a WebSocket sends it. */
  wire: EncodedFrame;
  /** The JSON body of `POST /api/rooms/{room}/messages`, as SSE and long-poll publish it. */
  body: string;
  /** Bytes of {@link wire} and {@link body}: the one a transport sends is checked against {@link frameLimit}. */
  wireBytes: number;
  bodyBytes: number;
  resolve: (ack: Ack) => void;
  reject: (e: Error) => void;
  /** Connection epoch it was last sent on; -1 when it still has to be (re)sent. */
  sentEpoch: number;
  /** `publish_failed` answers so far: attempts, up to `maxPublishAttempts`. */
  failures: number;
  /** `rate_limited` answers so far, up to {@link MAX_RATE_LIMITED_REFUSALS}. */
  rateLimitedRefusals: number;
  /** Refused `rate_limited` and not sent since: sent again once every send sent after it is answered. */
  rateLimited: boolean;
  retryTimer: ReturnType<typeof setTimeout> | undefined;
  ackTimer: ReturnType<typeof setTimeout> | undefined;
}

type Handler = (env: Envelope) => void;
type StateHandler = (change: StateChange) => void;
type SkippedHandler = (skipped: SkippedFrame) => void;

/**
 * A Bridge connection that survives drops: it reconnects with backoff (at once after a 1012), resumes every
 * joined room from its last seq, drops duplicates by seq, and resends unacknowledged publishes in order with
 * their original ids (so the server stores each once).
 */
export class BridgeClient {
  private readonly baseUrl: string;
  private readonly format: Format;
  private readonly batch: boolean;
  private readonly transports: TransportKind[];
  private readonly WebSocketCtor: WebSocketConstructor | undefined;
  private readonly fetchFn: FetchLike;
  private readonly getToken: BridgeClientOptions['getToken'];
  private readonly minDelayMs: number;
  private readonly maxDelayMs: number;
  private readonly maxQueue: number;
  private readonly ackTimeoutMs: number;
  private readonly openTimeoutMs: number;
  private readonly maxPublishAttempts: number;
  private readonly maxFrameBytes: number;
  private readonly syncLimit: number;
  private readonly pollRequestTimeoutMs: number;
  private readonly refreshBeforeExpiryMs: number;
  private readonly random: () => number;
  private readonly newId: () => string;

  private currentToken: string | undefined;
  private stateValue: ConnectionState = 'closed';
  private transport: Transport | undefined;
  private epoch = 0;
  private attempt = 0;
  private ready = false;
  private userClosed = false;
  private running = false;
  private pumping = false;
  private reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  private readyTimer: ReturnType<typeof setTimeout> | undefined;
  private refreshTimer: ReturnType<typeof setTimeout> | undefined;
  private welcomePayload: Record<string, unknown> | undefined;
  /** The current connection's `welcome` payload: undefined while disconnected and on long-poll (no `welcome`). */
  private connectionWelcome: Record<string, unknown> | undefined;
  /** Paces sends within the current connection's worker's frame rate (its `welcome`); undefined without one. */
  private pacer: SendPacer | undefined;
  /** Flushes again when the pacer has a token. */
  private paceTimer: ReturnType<typeof setTimeout> | undefined;
  /** The last flush stopped at a send refused `rate_limited` while sends after it were unanswered: each answer flushes. */
  private waitingForAnswers = false;
  private firstOpen: { promise: Promise<void>; resolve: () => void; reject: (e: Error) => void } | undefined;

  private readonly rooms = new Map<string, RoomEntry>();
  /** Batch joins sent on the current connection, by frame id (an error's `ref`). */
  private readonly batches = new Map<string, BatchJoin>();
  /** Sends not yet acknowledged, in the order they were made. */
  private readonly outbox = new Map<string, PendingSend>();
  /** Rooms whose `join()` on the open connection waits for the end of the tick, to go out in batch frames together. */
  private readonly tickJoins = new Set<RoomEntry>();
  private readonly leaves = new Map<string, { room: string; resolve: () => void }>();
  private readonly syncs = new Map<string, { room: string; resolve: (e: Envelope) => void; reject: (e: Error) => void }>();
  private readonly handlers = new Map<string, Set<Handler>>();
  private readonly stateHandlers = new Set<StateHandler>();
  private readonly skippedHandlers = new Set<SkippedHandler>();

  constructor(options: BridgeClientOptions) {
    if (!options || typeof options.url !== 'string') throw new TypeError('options.url is required');
    this.baseUrl = options.url.replace(/\/+$/, '');
    this.format = options.format ?? 'json';
    this.batch = options.batch ?? true;
    this.transports = options.transports ?? ['websocket', 'sse', 'poll'];
    this.WebSocketCtor = options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    const f = options.fetch ?? (globalThis.fetch ? globalThis.fetch.bind(globalThis) : undefined);
    this.fetchFn = f ?? (() => Promise.reject(new Error('no fetch available')));
    this.getToken = options.getToken;
    this.currentToken = options.token;
    this.minDelayMs = options.reconnect?.minDelayMs ?? 500;
    this.maxDelayMs = options.reconnect?.maxDelayMs ?? 20_000;
    this.maxQueue = options.maxQueue ?? 1000;
    this.ackTimeoutMs = options.ackTimeoutMs ?? 20_000;
    this.openTimeoutMs = options.openTimeoutMs ?? 10_000;
    this.maxPublishAttempts = options.maxPublishAttempts ?? 5;
    this.maxFrameBytes = options.maxFrameBytes ?? 65_536;
    this.syncLimit = options.syncLimit ?? 100;
    this.pollRequestTimeoutMs = options.pollRequestTimeoutMs ?? 35_000;
    this.refreshBeforeExpiryMs = options.refreshBeforeExpiryMs ?? 30_000;
    this.random = options.random ?? Math.random;
    this.newId = options.newId ?? randomId;
    if (this.format !== 'json' && this.format !== 'msgpack') throw new TypeError(`unknown format ${String(this.format)}`);
    if (!(this.minDelayMs > 0) || !(this.maxDelayMs >= this.minDelayMs)) {
      throw new RangeError('reconnect: need 0 < minDelayMs <= maxDelayMs');
    }
    if (!(this.maxQueue >= 1)) throw new RangeError('maxQueue must be at least 1');
    if (!(this.syncLimit >= 1 && this.syncLimit <= 100)) throw new RangeError('syncLimit must be 1-100');
    for (const t of this.transports) {
      if (t !== 'websocket' && t !== 'sse' && t !== 'poll') throw new TypeError(`unknown transport ${String(t)}`);
    }
  }

  /** The current connection state. */
  get state(): ConnectionState {
    return this.stateValue;
  }

  /** The transport of the open connection, if any. */
  get transportKind(): TransportKind | undefined {
    return this.stateValue === 'open' ? this.transport?.kind : undefined;
  }

  /**
   * The last `welcome` payload (connectionId, serverId, heartbeatMs, protocol, user, and from workers that say them
   * maxFrameBytes and maxRoomsPerConnection, and on a WebSocket framesPerSecond and frameBurst, which sends are paced to).
   */
  get welcome(): Record<string, unknown> | undefined {
    return this.welcomePayload;
  }

  /** Sends waiting for an ack (queued or in flight). */
  get pending(): number {
    return this.outbox.size;
  }

  /** Rooms wanted, with the position each resumes from. */
  get positions(): Map<string, number | undefined> {
    return new Map([...this.rooms.values()].map((r) => [r.name, r.position]));
  }

  /**
   * Handlers by frame type: a room message type (`chat.message`), a control type (`welcome`, `room.joined`,
   * `room.state`, `ack`, `error`, `presence.update`...), a prefix (`presence.*`, `sensor.*`), or `*` for every room
   * message (after de-duplication). Returns a function that removes the handler.
   */
  on(type: string, handler: Handler): () => void {
    let set = this.handlers.get(type);
    if (!set) this.handlers.set(type, (set = new Set()));
    set.add(handler);
    return () => set!.delete(handler);
  }

  /** Connection state changes. Returns a function that removes the handler. */
  onState(handler: StateHandler): () => void {
    this.stateHandlers.add(handler);
    return () => this.stateHandlers.delete(handler);
  }

  /**
   * Messages from the server the client could not read and left out ({@link SkippedFrame}: the transport, the size of
   * the message that held it, its place in a batch array, the reason). The connection stays and the other envelopes
   * of the message are delivered; a worker never sends such a message, so this tells of a proxy or server bug, or of a
   * server newer than the client. Returns a function that removes the handler.
   */
  onSkipped(handler: SkippedHandler): () => void {
    this.skippedHandlers.add(handler);
    return () => this.skippedHandlers.delete(handler);
  }

  /** Starts connecting; resolves on the first open connection, rejects if the client is closed first. */
  connect(): Promise<void> {
    if (this.userClosed) return Promise.reject(new BridgeError('closed', 'the client was closed'));
    if (!this.firstOpen) {
      let resolve!: () => void;
      let reject!: (e: Error) => void;
      const promise = new Promise<void>((res, rej) => ((resolve = res), (reject = rej)));
      promise.catch(() => undefined);
      this.firstOpen = { promise, resolve, reject };
    }
    if (!this.running) {
      this.running = true;
      this.attempt = 0;
      this.setState('connecting', {});
      void this.connectOnce();
    }
    return this.firstOpen.promise;
  }

  /** Closes the connection for good: pending sends and joins reject with `closed`. */
  close(): void {
    if (this.userClosed) return;
    this.userClosed = true;
    this.shutdown({ code: CloseCodes.Normal, reason: 'closed by the client' }, new BridgeError('closed', 'the client was closed'));
  }

  /**
   * Joins a room or a room pattern (now, or when connected) and keeps it joined across reconnects, resuming from its
   * last seq (a pattern's position is a stream seq too). `since` resumes from a position the application kept (e.g. in
   * storage); `latest` sends each room's current value first; `maxRate` conflates ({@link JoinOptions}). Resolves
   * with `room.joined`. The joins of one tick on an open connection go out together in batch `room.join` frames
   * (protocol §4), each promise settled by its own room's answer; a join alone in its tick is a single join. A join
   * that shares rooms with one held (a room and a pattern matching it) rejects with
   * `overlapping_join`. Refused `unavailable` or `rate_limited`, it is tried again with backoff: 5 tries before it
   * rejects with that code; once resolved, the room is held and its rejoins are tried for as long as it is (each
   * refusal an `error` event naming it). Any other refusal rejects it, or ends a held room with that `error` event.
   */
  join(room: string, options: JoinOptions = {}): Promise<JoinResult> {
    const pattern = isValidPattern(room);
    if (!pattern && !isValidRoom(room)) return Promise.reject(new BridgeError('invalid_room', `bad room name or pattern '${room}'`));
    if (options.since !== undefined && !isExactSeq(options.since)) {
      return Promise.reject(new BridgeError('invalid_argument', 'since must be an integer from 0 to 2^53 - 1 (Number.MAX_SAFE_INTEGER)'));
    }
    if (options.latest !== undefined && typeof options.latest !== 'boolean') {
      return Promise.reject(new BridgeError('invalid_argument', 'latest must be true or false'));
    }
    const rate = options.maxRate;
    if (rate !== undefined && !(typeof rate === 'number' && Number.isFinite(rate) && rate > 0 && rate <= 1000)) {
      return Promise.reject(new BridgeError('invalid_argument', 'maxRate must be a number of messages per second above 0 and at most 1000'));
    }
    if (this.userClosed) return Promise.reject(new BridgeError('closed', 'the client was closed'));
    let entry = this.rooms.get(room);
    const isNew = !entry;
    if (!entry) {
      // The worker sends each message once per connection however many joins cover it, so a message of two joins
      // could not say whose position it moves: a join that shares rooms with one held is refused here.
      const other = [...this.rooms.keys()].find((r) => overlaps(r, room));
      if (other !== undefined) {
        return Promise.reject(new BridgeError('overlapping_join', `'${room}' shares rooms with '${other}', joined already; join one of them`));
      }
      entry = {
        name: room, pattern, latest: options.latest === true, maxRate: rate,
        position: rate === undefined ? options.since : undefined, conflatedSince: undefined,
        joined: false, joinId: undefined, batchId: undefined, joinAttempts: 0, held: false, unanswered: new Set(), retryTimer: undefined, waiters: [],
      };
      this.rooms.set(room, entry);
    }
    if (entry.joined) {
      return Promise.resolve({ room, seq: entry.position ?? 0, replayed: 0, truncated: false });
    }
    const result = new Promise<JoinResult>((resolve, reject) => entry!.waiters.push({ resolve, reject }));
    if (this.transport && this.stateValue === 'open') {
      if (this.transport.twoWay) {
        if (!entry.joinId) this.joinThisTick(entry);
      } else if (isNew) {
        this.transport.roomsChanged();
      }
    }
    return result;
  }

  /** Leaves a room: no more of its messages are delivered, and it is not resumed on reconnect. */
  leave(room: string): Promise<void> {
    const entry = this.rooms.get(room);
    if (!entry) return Promise.resolve();
    this.rooms.delete(room);
    // A join still waiting for the end of its tick was never sent, and nothing of it is in flight: the worker does not
    // hold the room, so there is nothing to leave (a room.leave would be answered not_joined).
    const unsent = this.tickJoins.delete(entry) && entry.unanswered.size === 0;
    BridgeClient.resetJoin(entry);
    for (const w of entry.waiters) w.reject(new BridgeError('left', `left room '${room}' before it was joined`));
    this.checkReady(); // it may have been the last room that publishing waited for
    const t = this.transport;
    if (!t || this.stateValue !== 'open') return Promise.resolve();
    if (!t.twoWay) {
      t.roomsChanged();
      return Promise.resolve();
    }
    if (unsent) return Promise.resolve();
    this.sendTickJoins();
    const id = this.newId();
    return new Promise<void>((resolve) => {
      this.leaves.set(id, { room, resolve });
      if (!this.sendUnpaced(t, { type: 'room.leave', room, id })) {
        this.leaves.delete(id);
        resolve();
      }
    });
  }

  /**
   * Publishes `payload` (any JSON value, or a Uint8Array for binary) to `room` as `type`. Resolves with the `ack`
   * once the message is stored. Offline, the send waits in a bounded queue; it is (re)sent in order after each
   * reconnect with the same id, so the server stores it once (protocol §9). The payload is encoded now: changing the
   * object afterwards changes nothing sent. A frame over `maxFrameBytes`, or over the current connection's worker's
   * smaller `maxFrameBytes` from `welcome`, rejects with `frame_too_big` and is never sent (the worker would close the
   * connection with 1009). The size checked is that of the encoding the transport sends (the publish frame in
   * `format` on a WebSocket, the JSON HTTP body on SSE and long-poll): at once when the transport and limit are
   * known, else (queued while disconnected or before the welcome) when it is due, the sends behind it going out as
   * usual.
   */
  send(type: string, room: string, payload?: unknown, options: { id?: string } = {}): Promise<Ack> {
    const refused = typeRefusal(type);
    if (refused) return Promise.reject(refused);
    if (!isValidRoom(room)) return Promise.reject(new BridgeError('invalid_room', `bad room name '${room}'`));
    if (this.userClosed) return Promise.reject(new BridgeError('closed', 'the client was closed'));
    const id = options.id ?? this.newId();
    const existing = this.outbox.get(id);
    if (existing) {
      return Promise.reject(new BridgeError('duplicate_id', `a send with id '${id}' is already pending`));
    }
    if (this.outbox.size >= this.maxQueue) {
      return Promise.reject(new BridgeError('queue_full', `${this.maxQueue} sends are already waiting for their ack`));
    }
    const wire = encodeFrame({ type, room, id, payload }, this.format);
    const body = JSON.stringify(toJsonFrame({ type, id, payload }));
    const sizes = { wireBytes: encodedSize(wire), bodyBytes: encodedSize(body) };
    const tooBig = this.tooBig(sizes, id);
    if (tooBig) return Promise.reject(tooBig);
    return new Promise<Ack>((resolve, reject) => {
      const p: PendingSend = {
        frame: { type, room, id }, wire, body, ...sizes,
        resolve, reject, sentEpoch: -1, failures: 0, rateLimitedRefusals: 0, rateLimited: false, retryTimer: undefined, ackTimer: undefined,
      };
      this.outbox.set(id, p);
      if (this.ready) this.flush();
    });
  }

  /** `room.sync` (WebSocket only): the room's last `limit` messages and position, as the `room.state` frame. */
  sync(room: string, limit = 1): Promise<Envelope> {
    if (!isValidRoom(room)) return Promise.reject(new BridgeError('invalid_room', `bad room name '${room}'`));
    const t = this.transport;
    if (!t || !t.twoWay || this.stateValue !== 'open') {
      return Promise.reject(new BridgeError('not_connected', 'room.sync needs an open WebSocket'));
    }
    this.sendTickJoins();
    const id = this.newId();
    return new Promise<Envelope>((resolve, reject) => {
      this.syncs.set(id, { room, resolve, reject });
      this.sendUnpaced(t, { type: 'room.sync', room, id, payload: { limit } });
    });
  }

  /**
   * Sends a raw frame on an open WebSocket (for frames without an ack, such as `presence.query`). Answers come to
   * `on(type)` handlers; refusals to `on('error')` with `ref` = the frame's id. False when not possible now.
   */
  sendFrame(frame: { type: string; room?: string; id?: string; payload?: unknown }): boolean {
    const t = this.transport;
    if (!t || !t.twoWay || this.stateValue !== 'open') return false;
    this.sendTickJoins();
    return this.sendUnpaced(t, frame);
  }

  // ---- connection life cycle -------------------------------------------------------------------------------

  private async connectOnce(): Promise<void> {
    const epoch = ++this.epoch;
    let last: EndInfo = {};
    for (const kind of this.transports) {
      if (this.userClosed || epoch !== this.epoch) return;
      const transport = this.createTransport(kind, epoch);
      if (!transport) continue;
      try {
        await transport.open();
      } catch (e) {
        transport.close();
        last = e instanceof OpenError ? e.info : { reason: String(e) };
        if (last.httpStatus === 401 || last.httpStatus === 403) {
          if (epoch === this.epoch) await this.onAuthRefused(last);
          return;
        }
        continue;
      }
      if (this.userClosed || epoch !== this.epoch) {
        transport.close();
        return;
      }
      this.transport = transport;
      this.onOpen(transport, epoch);
      return;
    }
    if (epoch === this.epoch) this.scheduleReconnect(last);
  }

  private createTransport(kind: TransportKind, epoch: number): Transport | undefined {
    const host: TransportHost = {
      frame: (env) => {
        if (epoch === this.epoch) this.onFrame(env);
      },
      skipped: (info) => {
        if (epoch !== this.epoch) return;
        const skipped: SkippedFrame = { transport: info.transport, bytes: info.bytes, reason: info.reason };
        if (info.index !== undefined) skipped.index = info.index;
        this.notify(this.skippedHandlers, skipped);
      },
      lost: (info) => {
        if (epoch === this.epoch) this.onLost(info);
      },
      rooms: (): RoomPosition[] => [...this.rooms.values()].map((r) => ({
        room: r.name,
        position: r.position,
        latest: r.maxRate !== undefined || (r.latest && r.position === undefined),
        maxRate: r.maxRate,
      })),
      advance: (room, seq) => {
        const entry = this.rooms.get(room);
        if (epoch === this.epoch && entry) BridgeClient.advance(entry, seq);
      },
      token: () => this.currentToken,
      fetch: this.fetchFn,
      baseUrl: this.baseUrl,
      openTimeoutMs: this.openTimeoutMs,
    };
    switch (kind) {
      case 'websocket':
        return this.WebSocketCtor ? new WebSocketTransport(host, this.WebSocketCtor, this.format, this.batch) : undefined;
      case 'sse':
        return new SseTransport(host);
      case 'poll':
        return new PollTransport(host, this.pollRequestTimeoutMs);
    }
  }

  private onOpen(transport: Transport, epoch: number): void {
    this.ready = false;
    for (const r of this.rooms.values()) {
      r.joined = false;
      r.joinAttempts = 0;
      BridgeClient.resetJoin(r);
    }
    this.setState('open', { transport: transport.kind });
    this.firstOpen?.resolve();
    this.scheduleRefresh();
    if (transport.twoWay && this.rooms.size > 0) this.sendBatchJoins([...this.rooms.values()]);
    // Publish once the rooms that join live (no position yet) are in, so the sender gets its own messages;
    // rooms resuming from a position lose nothing whatever the order. Bounded by openTimeoutMs.
    this.readyTimer = setTimeout(() => {
      if (epoch === this.epoch) this.markReady();
    }, this.openTimeoutMs);
    this.checkReady();
  }

  private checkReady(): void {
    if (this.ready || this.stateValue !== 'open') return;
    for (const r of this.rooms.values()) {
      if (!r.joined && r.position === undefined) return;
    }
    this.markReady();
  }

  private markReady(): void {
    if (this.ready) return;
    clearTimeout(this.readyTimer);
    this.ready = true;
    this.attempt = 0;
    this.flush();
  }

  private onLost(info: EndInfo): void {
    this.dropTransport(info.code === CloseCodes.AckTimeout ? CloseCodes.AckTimeout : CloseCodes.Normal);
    if (this.userClosed) return;
    const code = info.code;
    if (code === CloseCodes.TokenExpired || code === CloseCodes.Forbidden || info.httpStatus === 401 || info.httpStatus === 403) {
      void this.onAuthRefused(info);
      return;
    }
    if (code === CloseCodes.ServiceRestart) {
      // The worker is going away on purpose: come back at once (to any worker), after the server's spread delay.
      this.attempt = 0;
      this.scheduleReconnect(info, reconnectAfterMs(info.reason) ?? backoffDelay(0, this.minDelayMs, this.maxDelayMs, this.random));
      return;
    }
    this.scheduleReconnect(info);
  }

  /** Forgets the current transport; unacknowledged sends will be sent again on the next one. */
  private dropTransport(code: number = CloseCodes.Normal): void {
    this.epoch++;
    this.transport?.close(code);
    this.transport = undefined;
    this.ready = false;
    // The next worker's limits come with its welcome; until then only the client's own (long-poll has no welcome).
    this.connectionWelcome = undefined;
    this.pacer = undefined;
    this.waitingForAnswers = false;
    clearTimeout(this.paceTimer);
    this.paceTimer = undefined;
    // Joins not sent yet: their rooms stay wanted, and the next connection joins them with the others.
    this.tickJoins.clear();
    clearTimeout(this.readyTimer);
    clearTimeout(this.refreshTimer);
    for (const r of this.rooms.values()) {
      r.joined = false;
      BridgeClient.resetJoin(r);
    }
    for (const b of this.batches.values()) clearTimeout(b.againTimer);
    this.batches.clear();
    for (const l of this.leaves.values()) l.resolve();
    this.leaves.clear();
    for (const s of this.syncs.values()) s.reject(new BridgeError('disconnected', 'the connection ended before room.state'));
    this.syncs.clear();
    for (const p of this.outbox.values()) {
      p.sentEpoch = -1;
      clearTimeout(p.ackTimer);
      p.ackTimer = undefined;
    }
  }

  private scheduleReconnect(info: EndInfo, delayMs?: number): void {
    if (this.userClosed) return;
    const delay = delayMs ?? backoffDelay(this.attempt, this.minDelayMs, this.maxDelayMs, this.random);
    this.setState('reconnecting', { attempt: this.attempt, delayMs: delay, closeCode: info.code ?? info.httpStatus, reason: info.reason });
    this.attempt++;
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      void this.connectOnce();
    }, delay);
  }

  /** 4001/4003 or HTTP 401/403: only a new token from getToken justifies another attempt. */
  private async onAuthRefused(info: EndInfo): Promise<void> {
    this.dropTransport();
    const epoch = this.epoch;
    let token: string | undefined | null;
    try {
      token = this.getToken ? await this.getToken() : undefined;
    } catch {
      token = undefined;
    }
    if (this.userClosed || epoch !== this.epoch) return;
    if (token && token !== this.currentToken) {
      this.currentToken = token;
      this.attempt = 0;
      this.scheduleReconnect(info, 0);
      return;
    }
    this.shutdown(info, new BridgeError('unauthorized', `the server refused the token (${info.code ?? info.httpStatus}) and no new one was given`));
  }

  private shutdown(info: EndInfo, error: BridgeError): void {
    this.running = false;
    clearTimeout(this.reconnectTimer);
    this.dropTransport();
    for (const p of this.outbox.values()) {
      clearTimeout(p.retryTimer);
      p.reject(error);
    }
    this.outbox.clear();
    for (const r of this.rooms.values()) {
      for (const w of r.waiters) w.reject(error);
      r.waiters = [];
    }
    if (this.userClosed) this.rooms.clear();
    this.firstOpen?.reject(error);
    this.firstOpen = undefined;
    this.setState('closed', { closeCode: info.code ?? info.httpStatus, reason: info.reason });
  }

  private scheduleRefresh(): void {
    clearTimeout(this.refreshTimer);
    const exp = jwtExpiryMs(this.currentToken);
    if (exp === undefined || !this.getToken) return;
    const epoch = this.epoch;
    const due = exp - this.refreshBeforeExpiryMs;
    // setTimeout holds at most ~24.8 days; a later expiry is reached in steps.
    const delay = Math.min(Math.max(0, due - Date.now()), 0x7fffffff);
    this.refreshTimer = setTimeout(() => {
      if (epoch !== this.epoch) return;
      if (Date.now() < due) {
        this.scheduleRefresh();
        return;
      }
      void this.refreshToken(epoch);
    }, delay);
  }

  private async refreshToken(epoch: number): Promise<void> {
    let token: string | undefined | null;
    try {
      token = await this.getToken!();
    } catch {
      return;
    }
    if (epoch !== this.epoch || !token || token === this.currentToken) return;
    this.currentToken = token;
    // One-way transports send the token with every request; a WebSocket is told with auth.refresh.
    this.sendFrame({ type: 'auth.refresh', payload: { token } });
    this.scheduleRefresh();
  }

  // ---- frames ------------------------------------------------------------------------------------------

  private onFrame(env: Envelope): void {
    switch (env.type) {
      case 'welcome':
        this.welcomePayload = (env.payload ?? {}) as Record<string, unknown>;
        this.connectionWelcome = this.welcomePayload;
        // Before the transport is the current one (a welcome opens it). SSE's welcome says no rate: HTTP publishes.
        this.pacer = SendPacer.fromWelcome(this.welcomePayload);
        this.emit(env.type, env);
        return;
      case 'room.joined':
        this.onJoined(env);
        return;
      case 'room.left': {
        // room.left does not echo the leave's id (protocol §4): it answers the leaves of its room.
        let asked = false;
        for (const [id, l] of this.leaves) {
          if (l.room === env.room) {
            this.leaves.delete(id);
            l.resolve();
            asked = true;
          }
        }
        // With a reason, the worker removed the room itself (a leave's answer has none: one the client sent without
        // tracking it, failJoin's, must not end a join of the same room made since).
        const reason = (env.payload as { reason?: unknown } | undefined)?.reason;
        if (!asked && env.room !== undefined && typeof reason === 'string') this.removedByServer(env.room, reason);
        this.emit(env.type, env);
        return;
      }
      case 'room.state':
        this.onRoomState(env);
        return;
      case 'ack':
        this.onAck(env);
        return;
      case 'error':
        this.onError(env);
        return;
    }
    if (env.room !== undefined && typeof env.seq === 'number') {
      const entry = this.entryOf(env.room);
      if (!entry) return; // left, or never asked for
      // A conflated join's messages go out of seq order across rooms (each room at its own rate), and a join with
      // latest gets each room's last message before room.joined: neither moves the position nor is de-duplicated.
      const positionless = entry.maxRate !== undefined || (!entry.joined && entry.latest && entry.position === undefined);
      if (!positionless && !BridgeClient.advance(entry, env.seq)) return; // a duplicate (or already covered)
      if (entry.maxRate !== undefined && entry.joined && !entry.pattern && isExactSeq(env.seq) && env.seq > (entry.conflatedSince ?? -1)) {
        // A conflated room's values come in seq order: every earlier message of it was sent or replaced by this one.
        // Not so a pattern's (each room at its own pace: another room's older value may still be owed to it).
        entry.conflatedSince = env.seq;
      }
      this.emit(env.type, env);
      this.emit('*', env);
      return;
    }
    this.emit(env.type, env); // presence.*, server.*, auth.*: whatever the server adds
  }

  /** The join a message of `room` belongs to: the room itself, or the (one) pattern held that matches it. */
  private entryOf(room: string): RoomEntry | undefined {
    const exact = this.rooms.get(room);
    if (exact) return exact;
    for (const entry of this.rooms.values()) {
      if (entry.pattern && overlaps(entry.name, room)) return entry;
    }
    return undefined;
  }

  private onJoined(env: Envelope): void {
    const entry = env.room ? this.rooms.get(env.room) : undefined;
    if (!entry || typeof env.seq !== 'number') return;
    const p = (env.payload ?? {}) as { replayed?: number; truncated?: boolean; latest?: number };
    if (p.truncated === true && isExactSeq(env.seq)) {
      // The since was not this room's (retention dropped it, or it came from elsewhere, e.g. beyond the room's last
      // seq): the server's position replaces it, even when lower, or the messages up to the old since are dropped.
      entry.position = env.seq;
    } else {
      BridgeClient.advance(entry, env.seq);
    }
    entry.joined = true;
    entry.held = true;
    BridgeClient.resetJoin(entry);
    if (entry.maxRate !== undefined) {
      // A conflated join has no position to de-duplicate by; its room.joined seq is where its rejoin resumes from.
      entry.position = undefined;
      if (isExactSeq(env.seq)) entry.conflatedSince = Math.max(entry.conflatedSince ?? 0, env.seq);
    }
    const result: JoinResult = { room: entry.name, seq: env.seq, replayed: p.replayed ?? 0, truncated: p.truncated === true };
    if (typeof p.latest === 'number') result.latest = p.latest;
    for (const w of entry.waiters) w.resolve(result);
    entry.waiters = [];
    this.emit('room.joined', env);
    if (result.truncated && this.transport?.twoWay && !entry.pattern && entry.maxRate === undefined) {
      // The resume point is gone (retention): fetch the room's latest state so the application can rebuild. Not for a
      // pattern: room.sync reads one room (protocol §4), so the worker would refuse it; the application rebuilds a
      // pattern's rooms itself (room.sync of each, §5), told by this room.joined and the join's result. Not for a
      // conflated join either: its resume already sends each room's newest value.
      this.sync(entry.name, this.syncLimit).catch(() => undefined);
    }
    this.checkReady();
  }

  /** Moves a room's position forward to `seq` when it is exact and newer; false when it is not newer. */
  private static advance(entry: RoomEntry, seq: number): boolean {
    if (!isExactSeq(seq)) return true; // not comparable: never a position, never taken for a duplicate
    if (entry.position !== undefined && seq <= entry.position) return false;
    entry.position = seq;
    return true;
  }

  private onRoomState(env: Envelope): void {
    for (const [id, s] of this.syncs) {
      if (s.room === env.room) {
        this.syncs.delete(id);
        s.resolve(env);
        break;
      }
    }
    this.emit('room.state', env);
  }

  private onAck(env: Envelope): void {
    const p = env.id ? this.outbox.get(env.id) : undefined;
    if (!p || typeof env.seq !== 'number') return;
    this.outbox.delete(p.frame.id);
    clearTimeout(p.ackTimer);
    clearTimeout(p.retryTimer);
    const duplicate = ((env.payload ?? {}) as { duplicate?: boolean }).duplicate === true;
    p.resolve({ room: p.frame.room, id: p.frame.id, seq: env.seq, duplicate });
    if (this.waitingForAnswers) this.flush();
    this.emit('ack', env);
  }

  private onError(env: Envelope): void {
    const e = (env.payload ?? {}) as { code?: string; message?: string; ref?: string | null };
    const code = e.code ?? 'error';
    const message = e.message ?? '';
    const ref = e.ref ?? null;
    // The room (or pattern, as sent) an error concerns; workers before it was added name none.
    const room = typeof env.room === 'string' ? env.room : undefined;
    if (ref !== null) {
      const p = this.outbox.get(ref);
      const batch = this.batches.get(ref);
      if (p) {
        this.onSendRefused(p, code, message);
      } else if (batch) {
        this.onBatchJoinError(batch, room, code, message);
      } else if (this.leaves.has(ref)) {
        this.leaves.get(ref)!.resolve();
        this.leaves.delete(ref);
      } else if (this.syncs.has(ref)) {
        this.syncs.get(ref)!.reject(new BridgeError(code, message, ref));
        this.syncs.delete(ref);
      } else {
        const named = room !== undefined ? this.rooms.get(room) : undefined;
        const entry = named?.joinId === ref ? named : [...this.rooms.values()].find((r) => r.joinId === ref);
        if (entry) this.onJoinRefused(entry, ref, code, message);
      }
    }
    this.emit('error', env);
  }

  private onSendRefused(p: PendingSend, code: string, message: string): void {
    clearTimeout(p.ackTimer);
    p.ackTimer = undefined;
    if (code === 'rate_limited' && ++p.rateLimitedRefusals < MAX_RATE_LIMITED_REFUSALS) {
      // Not acted on (protocol §1.1: "retry it later with the same id"), so not an attempt: sent again before any later
      // send, once those sent after it are answered (flush), within the pacer's rate, which starts again from the
      // worker's empty bucket; from a worker that announces no rate, after a backoff.
      p.sentEpoch = -1;
      p.rateLimited = true;
      if (this.pacer) {
        this.pacer.drain();
      } else {
        clearTimeout(p.retryTimer);
        p.retryTimer = setTimeout(() => {
          p.retryTimer = undefined;
          this.flush();
        }, backoffDelay(p.rateLimitedRefusals, this.minDelayMs, this.maxDelayMs, this.random));
      }
      this.flush();
      return;
    }
    if (code === 'publish_failed' && ++p.failures < this.maxPublishAttempts) {
      // May or may not be stored: retry with the same id (the server answers the original seq if it was stored).
      p.sentEpoch = -1;
      clearTimeout(p.retryTimer);
      p.retryTimer = setTimeout(() => {
        p.retryTimer = undefined;
        this.flush();
      }, backoffDelay(p.failures, this.minDelayMs, this.maxDelayMs, this.random));
      if (this.waitingForAnswers) this.flush();
      return;
    }
    this.outbox.delete(p.frame.id);
    clearTimeout(p.retryTimer);
    p.reject(new BridgeError(code, message, p.frame.id));
    if (this.waitingForAnswers) this.flush();
  }

  /**
   * An error whose `ref` is a batch join of this connection (protocol §4, §12). One that names a room of the batch is
   * that room's join error: the room ends, or for `unavailable` and `rate_limited` is tried again after a backoff (as
   * a single join's: {@link mayRetryJoin}) in one batch frame with the batch's other rooms refused so (not one frame each: a
   * NATS outage refuses them all); the batch's other rooms wait for their own answers. One that names no room (a
   * whole-frame error, or any error from a worker that names none) is answered once per batch: `rate_limited` tries
   * the batch's rooms not joined yet again the same way; `too_many_rooms` sends them in two halves (down to single
   * joins); anything else joins them one by one, paced within the worker's frame rate limit, so each later error
   * names its room through its own `ref`. Later room-less errors on the batch change nothing (an older worker's entry
   * that was still joining when its single join came, and then failed, is joined again on the next connection).
   */
  private onBatchJoinError(batch: BatchJoin, room: string | undefined, code: string, message: string): void {
    if (room !== undefined) {
      const entry = this.rooms.get(room);
      if (entry?.batchId === batch.id && !batch.again.includes(entry)) {
        entry.unanswered.delete(batch.id);
        this.onBatchEntryRefused(batch, entry, code, message);
      }
      return;
    }
    if (batch.handled) return;
    batch.handled = true;
    const waiting = batch.entries.filter((r) => r.batchId === batch.id && this.rooms.get(r.name) === r);
    if (code === 'rate_limited') {
      for (const entry of waiting) this.onBatchEntryRefused(batch, entry, code, message);
    } else if (code === 'too_many_rooms') {
      const half = Math.ceil(waiting.length / 2);
      this.sendBatch(waiting.slice(0, half));
      this.sendBatch(waiting.slice(half));
    } else {
      this.paceJoins(waiting);
    }
  }

  /** A batch entry's refusal: `unavailable` and `rate_limited` join it again with the batch's others after a backoff. */
  private onBatchEntryRefused(batch: BatchJoin, entry: RoomEntry, code: string, message: string): void {
    if (!this.mayRetryJoin(entry, code)) {
      this.failJoin(entry, code, message);
      return;
    }
    batch.again.push(entry);
    if (batch.againTimer !== undefined) return;
    const epoch = this.epoch;
    batch.againTimer = setTimeout(() => {
      batch.againTimer = undefined;
      const again = batch.again.splice(0);
      if (epoch !== this.epoch) return;
      this.sendBatchJoins(again.filter((r) => r.batchId === batch.id && this.rooms.get(r.name) === r && !r.joined));
    }, backoffDelay(entry.joinAttempts, this.minDelayMs, this.maxDelayMs, this.random));
  }

  /**
   * Single joins of `entries`: {@link FALLBACK_JOINS_PER_INTERVAL} now and as many more every
   * {@link FALLBACK_INTERVAL_MS}, each sent if its room is still wanted and not joined on this connection.
   */
  private paceJoins(entries: RoomEntry[]): void {
    entries.forEach((entry, i) => {
      const wait = Math.floor(i / FALLBACK_JOINS_PER_INTERVAL) * FALLBACK_INTERVAL_MS;
      if (wait === 0) this.sendJoin(entry);
      else this.joinLater(entry, wait);
    });
  }

  private onJoinRefused(entry: RoomEntry, ref: string, code: string, message: string): void {
    entry.joinId = undefined;
    entry.unanswered.delete(ref);
    if (this.mayRetryJoin(entry, code)) {
      this.joinLater(entry, backoffDelay(entry.joinAttempts, this.minDelayMs, this.maxDelayMs, this.random));
      return;
    }
    this.failJoin(entry, code, message);
  }

  /**
   * Counts a refusal of `entry`'s join and says whether it is tried again: `unavailable` and `rate_limited` (the
   * frame was not acted on) always for a held room, on every connection; for a first join up to
   * {@link MAX_JOIN_ATTEMPTS} tries. The count is the exponent of the retry's backoff (capped at `maxDelayMs`).
   */
  private mayRetryJoin(entry: RoomEntry, code: string): boolean {
    if (!RETRYABLE_JOIN_ERRORS.includes(code)) return false;
    return ++entry.joinAttempts < MAX_JOIN_ATTEMPTS || entry.held;
  }

  /**
   * Ends a room whose join was refused: it is no longer wanted, and its `join` promises reject with the error. When
   * another join of it on this connection is still unanswered (the worker may hold it), it is left.
   */
  private failJoin(entry: RoomEntry, code: string, message: string): void {
    this.rooms.delete(entry.name);
    const mayBeHeld = entry.unanswered.size > 0;
    BridgeClient.resetJoin(entry);
    for (const w of entry.waiters) w.reject(new BridgeError(code, message));
    entry.waiters = [];
    this.checkReady();
    if (mayBeHeld && this.transport?.twoWay && this.stateValue === 'open') {
      this.sendUnpaced(this.transport, { type: 'room.leave', room: entry.name, id: this.newId() });
    }
  }

  /** Sends `entry`'s single join after `delayMs`, if it is still wanted and not joined on this connection. */
  private joinLater(entry: RoomEntry, delayMs: number): void {
    const epoch = this.epoch;
    clearTimeout(entry.retryTimer);
    entry.retryTimer = setTimeout(() => {
      entry.retryTimer = undefined;
      if (epoch === this.epoch && this.rooms.get(entry.name) === entry && !entry.joined) this.sendJoin(entry);
    }, delayMs);
  }

  /** Forgets the room's join in flight on the current connection and any retry waiting. */
  /**
   * A `room.left` nobody asked for: the worker removed the room (protocol §1.1: a refreshed token no longer grants it,
   * reason `forbidden`). It is no longer held: not joined again on a reconnect (the worker would refuse it), and a
   * join still waiting for its `room.joined` rejects with the reason.
   */
  private removedByServer(room: string, reason: string): void {
    const entry = this.rooms.get(room);
    if (!entry) return;
    const code = reason !== '' ? reason : 'left';
    this.rooms.delete(room);
    this.tickJoins.delete(entry);
    BridgeClient.resetJoin(entry);
    for (const w of entry.waiters) w.reject(new BridgeError(code, `the server removed room '${room}' (${code})`));
    entry.waiters = [];
    this.checkReady();
  }

  private static resetJoin(entry: RoomEntry): void {
    entry.joinId = undefined;
    entry.unanswered.clear();
    entry.batchId = undefined;
    clearTimeout(entry.retryTimer);
    entry.retryTimer = undefined;
  }

  private sendJoin(entry: RoomEntry): void {
    const id = this.newId();
    entry.joinId = id;
    entry.unanswered.add(id);
    clearTimeout(entry.retryTimer);
    entry.retryTimer = undefined;
    if (this.transport) this.sendUnpaced(this.transport, { type: 'room.join', room: entry.name, id, payload: BridgeClient.joinArgs(entry) });
  }

  /**
   * A join's arguments: a resume from the position; a join without one with `latest` if asked; a conflated join with
   * its rate, resuming from its last `room.joined` (or value, for a room) with `since` (protocol §4: each room's newest
   * message after it, so the values the application has do not come again), and before its first `room.joined` with
   * `latest` (its screen wants each room's current value, not a replay). Never both: `latest` would send every room's
   * value.
   */
  private static joinArgs(entry: RoomEntry): { since?: number; latest?: boolean; maxRate?: number } | undefined {
    if (entry.maxRate !== undefined) {
      return entry.conflatedSince !== undefined
        ? { since: entry.conflatedSince, maxRate: entry.maxRate }
        : { latest: true, maxRate: entry.maxRate };
    }
    if (entry.position !== undefined) return { since: entry.position };
    return entry.latest ? { latest: true } : undefined;
  }

  /**
   * A limit the current connection's `welcome` says (a positive integer), or infinity when it says none (older workers
   * do not) or there is none (disconnected, long-poll).
   */
  private welcomeLimit(name: string): number {
    const v = this.connectionWelcome?.[name];
    return typeof v === 'number' && Number.isSafeInteger(v) && v > 0 ? v : Number.POSITIVE_INFINITY;
  }

  /**
   * The largest frame the client sends: `maxFrameBytes`, or the worker's `maxFrameBytes` from the current connection's
   * `welcome` when smaller (a larger frame: the worker closes with 1009).
   */
  private frameLimit(): number {
    return Math.min(this.maxFrameBytes, this.welcomeLimit('maxFrameBytes'));
  }

  /**
   * The `frame_too_big` error of a publish with `id` and these sizes, or undefined when it is within
   * {@link frameLimit}. The size is that of what the current transport sends (a WebSocket the frame, SSE and
   * long-poll the HTTP body); with no transport, the smaller: it is checked again when due.
   */
  private tooBig(sizes: { wireBytes: number; bodyBytes: number }, id: string): BridgeError | undefined {
    const t = this.transport;
    const bytes = t ? (t.twoWay ? sizes.wireBytes : sizes.bodyBytes) : Math.min(sizes.wireBytes, sizes.bodyBytes);
    const limit = this.frameLimit();
    if (bytes <= limit) return undefined;
    const whose = limit < this.maxFrameBytes ? "the worker's maxFrameBytes" : 'maxFrameBytes';
    return new BridgeError('frame_too_big', `frame of ${bytes} bytes is over ${whose} (${limit})`, id);
  }

  /**
   * The bounds of one batch frame on this connection: entries at most {@link MAX_BATCH_ENTRIES} and the worker's
   * `maxRoomsPerConnection` (from `welcome`), bytes at most {@link frameLimit}.
   */
  private batchLimits(): { entries: number; bytes: number } {
    return {
      entries: Math.min(MAX_BATCH_ENTRIES, this.welcomeLimit('maxRoomsPerConnection')),
      bytes: this.frameLimit(),
    };
  }

  /**
   * Joins `entry` on the open connection. With a worker whose `welcome` says `maxFrameBytes` (one that names the room
   * on every batch join error, protocol §12): at the end of the tick (a microtask), in batch frames with the other
   * rooms whose `join()` came in the same tick (an application opening hundreds of rooms at once), as the rejoin of a
   * new connection: one frame per room would run into the worker's frame rate limit. A room alone goes in a single
   * join. With an older worker, a single join at once: its errors on a batch name no room, so a batch's joins could
   * not each be answered (a room retried singly and refused again would never settle its `join()`).
   */
  private joinThisTick(entry: RoomEntry): void {
    if (this.welcomeLimit('maxFrameBytes') === Number.POSITIVE_INFINITY) {
      this.sendJoin(entry);
      return;
    }
    if (this.tickJoins.size === 0) queueMicrotask(() => this.sendTickJoins());
    this.tickJoins.add(entry);
  }

  /**
   * Sends the joins waiting for the end of their tick, now: at the end of the tick, and before any other frame, so
   * that frames go out in the order of the calls that made them (a `join()` then a `send()` to that room: the join
   * goes first). A room left, joined or joining meanwhile needs no join.
   */
  private sendTickJoins(): void {
    if (this.tickJoins.size === 0) return;
    const entries = [...this.tickJoins].filter((r) => this.rooms.get(r.name) === r && !r.joined && !r.joinId);
    this.tickJoins.clear();
    this.sendBatchJoins(entries);
  }

  /** A batch entry: the room and the arguments its single join would send. */
  private static batchEntry(entry: RoomEntry): Record<string, unknown> {
    return { room: entry.name, ...BridgeClient.joinArgs(entry) };
  }

  /**
   * Joins `entries` in batch `room.join` frames (protocol §4, batch form: `payload.rooms: [{room, since | latest,
   * maxRate}]`): as many entries per frame as fit in {@link batchLimits}; a frame of one room is a single join.
   */
  private sendBatchJoins(entries: RoomEntry[]): void {
    const limits = this.batchLimits();
    const budget = limits.bytes - BATCH_FRAME_OVERHEAD;
    let chunk: RoomEntry[] = [];
    let size = 0;
    for (const entry of entries) {
      const bytes = encodedSize(JSON.stringify(BridgeClient.batchEntry(entry))) + 1;
      if (chunk.length > 0 && (chunk.length >= limits.entries || size + bytes > budget)) {
        this.sendBatch(chunk);
        chunk = [];
        size = 0;
      }
      chunk.push(entry);
      size += bytes;
    }
    if (chunk.length > 0) this.sendBatch(chunk);
  }

  /**
   * One batch frame for `entries`, split in halves while its encoding (MessagePack numbers can take more bytes than
   * their JSON digits) is larger than the frame limit; recorded, so its errors find its rooms.
   */
  private sendBatch(entries: RoomEntry[]): void {
    const t = this.transport;
    if (!t || entries.length === 0) return;
    if (entries.length === 1) {
      entries[0]!.batchId = undefined;
      this.sendJoin(entries[0]!);
      return;
    }
    const id = this.newId();
    const frame = { type: 'room.join', id, payload: { rooms: entries.map((r) => BridgeClient.batchEntry(r)) } };
    if (encodedSize(encodeFrame(frame, this.format)) > this.batchLimits().bytes) {
      const half = Math.floor(entries.length / 2);
      this.sendBatch(entries.slice(0, half));
      this.sendBatch(entries.slice(half));
      return;
    }
    for (const entry of entries) {
      clearTimeout(entry.retryTimer);
      entry.retryTimer = undefined;
      entry.joinId = id;
      entry.batchId = id;
      entry.unanswered.add(id);
    }
    this.batches.set(id, { id, entries, handled: false, again: [], againTimer: undefined });
    this.sendUnpaced(t, frame);
  }

  // ---- publishing --------------------------------------------------------------------------------------

  /**
   * Sends the unsent publishes, oldest first, over the open transport; first rejects those over {@link frameLimit}
   * (queued while disconnected or before this connection's `welcome` said the worker's limit) with `frame_too_big`.
   * Strictly in call order: the first send that cannot go now holds back every send after it, whether it waits for
   * its retry's backoff, for a token of the {@link pacer} (a timer flushes again then) or, refused `rate_limited`, for
   * the answers to the sends that went after it (the worker's empty bucket usually refuses those too: they go again
   * after it, in order; each answer flushes again).
   */
  private flush(): void {
    this.waitingForAnswers = false;
    const t = this.transport;
    if (!t || !this.ready) return;
    for (const p of this.outbox.values()) {
      const tooBig = this.tooBig(p, p.frame.id);
      if (!tooBig) continue;
      this.outbox.delete(p.frame.id);
      clearTimeout(p.retryTimer);
      clearTimeout(p.ackTimer);
      p.reject(tooBig);
    }
    if (!t.twoWay) {
      void this.pumpHttp(t, this.epoch);
      return;
    }
    this.sendTickJoins();
    const epoch = this.epoch;
    const sends = [...this.outbox.values()];
    for (let i = 0; i < sends.length; i++) {
      const p = sends[i];
      if (p.sentEpoch === epoch) continue;
      if (p.retryTimer !== undefined) return;
      if (p.rateLimited && sends.some((q, j) => j > i && q.sentEpoch === epoch)) {
        this.waitingForAnswers = true;
        return;
      }
      if (this.pacer && !this.pacer.tryTake()) {
        this.paceLater(epoch);
        return;
      }
      if (!t.send(p.wire)) return;
      p.sentEpoch = epoch;
      p.rateLimited = false;
      p.ackTimer = setTimeout(() => {
        if (epoch !== this.epoch || !this.outbox.has(p.frame.id)) return;
        // No ack in time: the connection is probably dead without having said so. Start over; the resend
        // carries the same id, so a message that was in fact stored is not stored again.
        this.onLost({ code: CloseCodes.AckTimeout, reason: 'ack timeout' });
      }, this.ackTimeoutMs);
    }
  }

  /**
   * Sends a frame that is not a paced send (joins, leaves, requests, raw frames): it goes now, and takes a token of the
   * {@link pacer} if there is one, so the paced sends after it leave it room. False when the transport refused it.
   */
  private sendUnpaced(t: Transport, frame: Parameters<Transport['send']>[0]): boolean {
    this.pacer?.debit();
    return t.send(frame);
  }

  /** Flushes again once the pacer has a token (one timer at a time). */
  private paceLater(epoch: number): void {
    if (this.paceTimer !== undefined || !this.pacer) return;
    this.paceTimer = setTimeout(() => {
      this.paceTimer = undefined;
      if (epoch === this.epoch) this.flush();
    }, Math.max(1, this.pacer.msUntilNext()));
  }

  /**
   * One-way transports: `POST /api/rooms/{room}/messages`, one at a time so they are stored in order; one waiting for
   * its retry holds back the sends after it (its timer flushes, which starts the pump again).
   */
  private async pumpHttp(t: Transport, epoch: number): Promise<void> {
    if (this.pumping) return;
    this.pumping = true;
    try {
      while (epoch === this.epoch && this.ready) {
        const p = this.outbox.values().next().value;
        if (!p || p.retryTimer !== undefined) return;
        let res: Response;
        const abort = new AbortController();
        const timer = setTimeout(() => abort.abort(), this.ackTimeoutMs);
        try {
          res = await this.fetchFn(`${this.baseUrl}/api/rooms/${encodeURIComponent(p.frame.room)}/messages`, {
            method: 'POST',
            headers: { 'Content-Type': 'application/json', ...authHeaders(this.currentToken) },
            body: p.body,
            signal: abort.signal,
          });
        } catch (e) {
          clearTimeout(timer);
          if (epoch === this.epoch && this.transport === t) this.onLost({ reason: `publish failed: ${(e as Error).message}` });
          return;
        }
        clearTimeout(timer);
        let body: { seq?: number; duplicate?: boolean; code?: string; message?: string } = {};
        try {
          body = (await res.json()) as typeof body;
        } catch {
          // an empty or non-JSON answer: the status decides
        }
        if (!this.outbox.has(p.frame.id)) continue;
        if (res.ok && typeof body.seq === 'number') {
          this.outbox.delete(p.frame.id);
          p.resolve({ room: p.frame.room, id: p.frame.id, seq: body.seq, duplicate: body.duplicate === true });
        } else if (res.status === 401 || res.status === 403) {
          if (epoch === this.epoch) this.onLost({ httpStatus: res.status, reason: body.message });
          return;
        } else if (res.status === 503 || res.status >= 500) {
          this.onSendRefused(p, 'publish_failed', body.message ?? `HTTP ${res.status}`);
        } else {
          this.onSendRefused(p, body.code ?? `http_${res.status}`, body.message ?? `HTTP ${res.status}`);
        }
      }
    } finally {
      this.pumping = false;
    }
  }

  // ---- events ------------------------------------------------------------------------------------------

  private emit(type: string, env: Envelope): void {
    this.emitTo(type, env);
    // `presence.*` handlers get presence.update, presence.state...; `a.*` gets a.b and a.b.c.
    for (let dot = type.indexOf('.'); dot > 0 && type !== '*'; dot = type.indexOf('.', dot + 1)) {
      this.emitTo(`${type.slice(0, dot)}.*`, env);
    }
  }

  private emitTo(type: string, env: Envelope): void {
    const set = this.handlers.get(type);
    if (!set) return;
    for (const h of [...set]) {
      try {
        h(env);
      } catch (e) {
        // A handler's bug must not break the connection; report it where it can be seen.
        setTimeout(() => {
          throw e;
        });
      }
    }
  }

  private setState(state: ConnectionState, extra: Omit<StateChange, 'state' | 'previous'>): void {
    const previous = this.stateValue;
    this.stateValue = state;
    this.notify(this.stateHandlers, { state, previous, ...extra });
  }

  /** Calls each handler with `value`; one that throws does not stop the others (its error is reported on its own). */
  private notify<T>(handlers: Set<(value: T) => void>, value: T): void {
    for (const h of [...handlers]) {
      try {
        h(value);
      } catch (e) {
        setTimeout(() => {
          throw e;
        });
      }
    }
  }
}
