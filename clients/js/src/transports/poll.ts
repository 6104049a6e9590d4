import { encodedSize, readEach, type EncodedFrame, type OutboundFrame } from '../codec.js';
import type { Envelope } from '../types.js';
import { authHeaders, formatCursor, setJoinOptions, OpenError, parseCursor, probe, problemText, type Transport, type TransportHost } from './transport.js';

interface PollAnswer {
  cursor?: string;
  messages?: unknown[];
  errors?: unknown[];
  truncated?: string[];
}

/**
 * `GET /poll?rooms=a,b&cursor=a=42,b=7` in a loop (protocol §7.2). The answer's cursor moves each room's position;
 * the first answer that gives a room a position (and any answer that lists it as truncated) is reported as that
 * room's `room.joined`, so joins resolve the same way on every transport.
 */
export class PollTransport implements Transport {
  readonly kind = 'poll' as const;
  readonly twoWay = false;
  private closed = false;
  private abort: AbortController | undefined;
  private readonly announced = new Set<string>();
  private wake: (() => void) | undefined;
  private restart = false;

  constructor(
    private readonly host: TransportHost,
    private readonly requestTimeoutMs: number,
  ) {}

  async open(): Promise<void> {
    // A poll can wait PollTimeout (25 s) in a quiet room: reachability is checked with a quick probe instead.
    await probe(this.host);
    void this.loop();
  }

  send(_frame: OutboundFrame | EncodedFrame): boolean {
    return false;
  }

  roomsChanged(): void {
    // Restart the wait with the new set of rooms; positions are kept by the client, so nothing is lost.
    this.restart = true;
    this.abort?.abort();
    this.wake?.();
  }

  close(): void {
    this.closed = true;
    this.abort?.abort();
    this.wake?.();
  }

  private async loop(): Promise<void> {
    while (!this.closed) {
      const rooms = this.host.rooms();
      if (rooms.length === 0) {
        await new Promise<void>((resolve) => (this.wake = resolve));
        this.wake = undefined;
        continue;
      }
      for (const known of [...this.announced]) {
        if (!rooms.some((r) => r.room === known)) this.announced.delete(known);
      }
      const names = rooms.map((r) => r.room);
      const url = new URL('/poll', this.host.baseUrl + '/');
      url.searchParams.set('rooms', names.join(','));
      setJoinOptions(url, rooms);
      const cursor = formatCursor(rooms);
      if (cursor) url.searchParams.set('cursor', cursor);
      const abort = new AbortController();
      this.abort = abort;
      this.restart = false;
      const timer = setTimeout(() => abort.abort(), this.requestTimeoutMs);
      let answer: PollAnswer;
      let bytes = 0;
      try {
        const res = await this.host.fetch(url.toString(), {
          headers: authHeaders(this.host.token()),
          signal: abort.signal,
          cache: 'no-store',
        });
        if (!res.ok) {
          const text = await problemText(res);
          if (!this.closed) this.host.lost(new OpenError(`poll refused: ${text}`, { httpStatus: res.status }).info);
          return;
        }
        const text = await res.text();
        bytes = encodedSize(text);
        const body: unknown = JSON.parse(text);
        answer = body !== null && typeof body === 'object' ? (body as PollAnswer) : {};
      } catch (e) {
        if (this.closed) return;
        if (this.restart) continue; // aborted because the rooms changed
        this.host.lost({ reason: `poll failed: ${(e as Error).message}` });
        return;
      } finally {
        clearTimeout(timer);
      }
      if (this.closed) return;
      this.deliver(answer, names, bytes);
      if (this.restart) continue;
    }
  }

  private deliver(answer: PollAnswer, names: string[], bytes: number): void {
    const replayed = new Map<string, number>();
    // An element that cannot be read is left out alone (readEach), never the answer's other messages.
    const skipped = (list: string) => (index: number | undefined, reason: string) =>
      this.host.skipped({ transport: 'poll', bytes, index, reason: `${list}[${index}]: ${reason}` });
    for (const env of readEach(Array.isArray(answer.messages) ? answer.messages : [], skipped('messages'))) {
      if (env.room) replayed.set(env.room, (replayed.get(env.room) ?? 0) + 1);
      this.host.frame(env);
    }
    for (const env of readEach(Array.isArray(answer.errors) ? answer.errors : [], skipped('errors'))) {
      this.host.frame(env);
    }
    const truncated = new Set(Array.isArray(answer.truncated) ? answer.truncated : []);
    for (const [room, seq] of parseCursor(typeof answer.cursor === 'string' ? answer.cursor : '', names)) {
      if (!Number.isFinite(seq)) continue;
      this.host.advance(room, seq);
      if (!this.announced.has(room) || truncated.has(room)) {
        this.announced.add(room);
        const joined: Envelope = {
          type: 'room.joined',
          room,
          seq,
          payload: { replayed: replayed.get(room) ?? 0, truncated: truncated.has(room) },
        };
        this.host.frame(joined);
      }
    }
  }
}
