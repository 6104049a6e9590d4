import type { EncodedFrame, OutboundFrame } from '../codec.js';
import type { Envelope, FetchLike, SkippedFrame, TransportKind } from '../types.js';

/** How a connection ended, or why it could not open. */
export interface EndInfo {
  /** WebSocket close code. */
  code?: number;
  reason?: string;
  /** HTTP status of a refused SSE / poll / probe request. */
  httpStatus?: number;
}

export class OpenError extends Error {
  readonly info: EndInfo;
  constructor(message: string, info: EndInfo = {}) {
    super(message);
    this.name = 'OpenError';
    this.info = { reason: message, ...info };
  }
}

/** A room or pattern a one-way transport must carry in its URL, with the position to resume it from (if any). */
export interface RoomPosition {
  room: string;
  position: number | undefined;
  /** Wants each room's latest message first (a join without a position that asked for it, or a conflated one). */
  latest?: boolean;
  /** Conflated: messages per second per room. */
  maxRate?: number | undefined;
}

/**
 * The join options of a one-way transport's query, which apply to all its rooms (protocol §6): `latest=true` when
 * a room wants it (the worker applies it only to rooms without a position), `maxRate` only when every room is
 * conflated (the smallest rate).
 */
export function setJoinOptions(url: URL, rooms: RoomPosition[]): void {
  if (rooms.some((r) => r.latest)) url.searchParams.set('latest', 'true');
  if (rooms.length > 0 && rooms.every((r) => r.maxRate !== undefined)) {
    url.searchParams.set('maxRate', String(Math.min(...rooms.map((r) => r.maxRate!))));
  }
}

/** What a transport needs from the client. Every callback is ignored once the transport is stale. */
export interface TransportHost {
  /** A decoded server frame. */
  frame(env: Envelope): void;
  /** A server message, or one element of its array, the transport could not read and left out. */
  skipped(info: SkippedFrame): void;
  /** The transport ended after it had opened (not after the client closed it). */
  lost(info: EndInfo): void;
  /** The rooms the client wants, in join order, with their positions. */
  rooms(): RoomPosition[];
  /** The server said a room's position moved (long-poll cursor). */
  advance(room: string, seq: number): void;
  token(): string | undefined;
  readonly fetch: FetchLike;
  readonly baseUrl: string;
  readonly openTimeoutMs: number;
}

export interface Transport {
  readonly kind: TransportKind;
  /** WebSocket: frames both ways. SSE and poll: receive only; publishes go over HTTP. */
  readonly twoWay: boolean;
  /** Resolves once usable (after `welcome` where there is one); rejects with {@link OpenError}. */
  open(): Promise<void>;
  /**
   * Sends a frame (two-way transports only), or a frame already encoded in the connection's format (a publish, encoded
   * once when it was made). False when the socket is not open.
   */
  send(frame: OutboundFrame | EncodedFrame): boolean;
  /** One-way transports: the set of rooms changed; reopen the stream / restart the poll with it. */
  roomsChanged(): void;
  /** Ends the transport; `lost` is not called for it. */
  close(code?: number, reason?: string): void;
}

/** `a=42,b.c=7`: the SSE `lastEventId` / poll `cursor` of the rooms that have a position (protocol §6). */
export function formatCursor(rooms: RoomPosition[]): string {
  return rooms.filter((r) => r.position !== undefined).map((r) => `${r.room}=${r.position}`).join(',');
}

/** Parses a cursor the server sent: a bare seq (one room) or `room=seq` pairs. */
export function parseCursor(text: string, rooms: string[]): Map<string, number> {
  const out = new Map<string, number>();
  if (!text) return out;
  if (!text.includes('=')) {
    if (rooms.length === 1) out.set(rooms[0]!, Number(text));
    return out;
  }
  for (const pair of text.split(',')) {
    const eq = pair.indexOf('=');
    if (eq > 0) out.set(pair.slice(0, eq), Number(pair.slice(eq + 1)));
  }
  return out;
}

export function authHeaders(token: string | undefined): Record<string, string> {
  return token ? { Authorization: `Bearer ${token}` } : {};
}

/** GET /healthz: is the worker reachable over plain HTTP? Used by one-way transports with no room to carry. */
export async function probe(host: TransportHost): Promise<void> {
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), host.openTimeoutMs);
  try {
    const res = await host.fetch(`${host.baseUrl}/healthz`, { signal: abort.signal, cache: 'no-store' });
    if (!res.ok) throw new OpenError(`healthz answered ${res.status}`, { httpStatus: res.status });
    await res.arrayBuffer();
  } catch (e) {
    if (e instanceof OpenError) throw e;
    throw new OpenError(`worker unreachable: ${(e as Error).message}`);
  } finally {
    clearTimeout(timer);
  }
}

/** Reads `{code, message}` from a refused HTTP request, for the error text. */
export async function problemText(res: Response): Promise<string> {
  try {
    const body = (await res.json()) as { code?: string; message?: string };
    return `${res.status} ${body.code ?? ''} ${body.message ?? ''}`.trim();
  } catch {
    return `${res.status}`;
  }
}
