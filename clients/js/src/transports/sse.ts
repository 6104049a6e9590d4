import { encodedSize, normalize, type EncodedFrame, type OutboundFrame } from '../codec.js';
import { authHeaders, formatCursor, setJoinOptions, OpenError, probe, problemText, type Transport, type TransportHost } from './transport.js';

/**
 * `GET /sse?rooms=a,b&lastEventId=a=42,b=7`, read with fetch (so it can send a bearer token, see HTTP statuses and
 * leave reconnecting to the client, which EventSource cannot). The rooms are part of the URL: a join or leave
 * reopens the stream with every room's position, which loses nothing (protocol §6).
 */
/** Silence allowed before the welcome says the heartbeat interval. */
const DEFAULT_IDLE_MS = 45_000;

export class SseTransport implements Transport {
  readonly kind = 'sse' as const;
  readonly twoWay = false;
  private abort: AbortController | undefined;
  private closed = false;
  private restartQueued = false;
  private generation = 0;

  constructor(private readonly host: TransportHost) {}

  async open(): Promise<void> {
    if (this.host.rooms().length === 0) {
      // No room to put in the URL yet: check the worker answers; the stream starts with the first join.
      await probe(this.host);
      return;
    }
    await this.start(true);
  }

  send(_frame: OutboundFrame | EncodedFrame): boolean {
    return false;
  }

  roomsChanged(): void {
    if (this.closed || this.restartQueued) return;
    // Joins made in one turn of the event loop share one reopen.
    this.restartQueued = true;
    queueMicrotask(() => {
      this.restartQueued = false;
      if (this.closed) return;
      this.abort?.abort();
      this.abort = undefined;
      if (this.host.rooms().length === 0) return;
      this.start(false).catch((e: unknown) => {
        if (!this.closed) this.host.lost((e as OpenError).info ?? { reason: String(e) });
      });
    });
  }

  close(): void {
    this.closed = true;
    this.abort?.abort();
  }

  /** Opens the stream; resolves on its `welcome`. Later events and the stream's end are reported to the host. */
  private start(first: boolean): Promise<void> {
    const generation = ++this.generation;
    const abort = new AbortController();
    this.abort = abort;
    const rooms = this.host.rooms();
    const url = new URL('/sse', this.host.baseUrl + '/');
    url.searchParams.set('rooms', rooms.map((r) => r.room).join(','));
    setJoinOptions(url, rooms);
    const cursor = formatCursor(rooms);
    if (cursor) url.searchParams.set('lastEventId', cursor);

    return new Promise<void>((resolve, reject) => {
      let opened = false;
      const timer = setTimeout(() => {
        if (!opened) {
          abort.abort();
          reject(new OpenError('SSE stream did not open in time'));
        }
      }, this.host.openTimeoutMs);
      const fail = (info: OpenError) => {
        clearTimeout(timer);
        if (!opened) reject(info);
        else if (!this.closed && generation === this.generation) this.host.lost(info.info);
      };

      (async () => {
        let res: Response;
        try {
          res = await this.host.fetch(url.toString(), {
            headers: { Accept: 'text/event-stream', ...authHeaders(this.host.token()) },
            signal: abort.signal,
            cache: 'no-store',
          });
        } catch (e) {
          fail(new OpenError(`SSE request failed: ${(e as Error).message}`));
          return;
        }
        if (!res.ok || !(res.headers.get('content-type') ?? '').startsWith('text/event-stream') || !res.body) {
          fail(new OpenError(`SSE refused: ${await problemText(res)}`, { httpStatus: res.status }));
          return;
        }
        const reader = res.body.getReader();
        const decoder = new TextDecoder();
        let buffer = '';
        // The worker writes a heartbeat comment every heartbeatMs (welcome): a stream silent for much longer is a
        // dead connection that TCP has not noticed yet.
        let idleMs = DEFAULT_IDLE_MS;
        let idle: ReturnType<typeof setTimeout> | undefined;
        let stalled = false;
        const watch = () => {
          clearTimeout(idle);
          idle = setTimeout(() => {
            stalled = true;
            abort.abort();
          }, idleMs);
        };
        watch();
        try {
          for (;;) {
            const { value, done } = await reader.read();
            if (done) break;
            watch();
            buffer += decoder.decode(value, { stream: true });
            let end: number;
            while ((end = buffer.indexOf('\n\n')) >= 0) {
              const block = buffer.slice(0, end);
              buffer = buffer.slice(end + 2);
              if (generation !== this.generation || this.closed) continue;
              const env = parseEvent(block, (bytes, reason) => this.host.skipped({ transport: 'sse', bytes, reason }));
              if (!env) continue;
              if (env.type === 'welcome') {
                const beat = (env.payload as { heartbeatMs?: unknown } | undefined)?.heartbeatMs;
                if (typeof beat === 'number' && beat > 0) idleMs = 2 * beat + 2_000;
              }
              if (!opened && env.type === 'welcome') {
                opened = true;
                clearTimeout(timer);
                if (first) resolve();
              }
              this.host.frame(env);
            }
          }
          fail(new OpenError('SSE stream ended'));
        } catch (e) {
          if (stalled) {
            fail(new OpenError(`SSE stream silent for ${idleMs} ms`));
            return;
          }
          if (abort.signal.aborted && (this.closed || generation !== this.generation)) return;
          fail(new OpenError(`SSE stream broke: ${(e as Error).message}`));
        } finally {
          clearTimeout(idle);
        }
      })();
      if (!first) {
        // A reopen counts as open at once: its failures are reported through lost().
        opened = true;
        clearTimeout(timer);
        resolve();
      }
    });
  }
}

/**
 * One SSE event block: `data:` lines joined; comments and `retry:` skipped. Data that is not an envelope the client
 * can read is told to `skipped`, with its size, and left out.
 */
function parseEvent(block: string, skipped: (bytes: number, reason: string) => void): ReturnType<typeof normalize> {
  const data: string[] = [];
  for (const line of block.split('\n')) {
    if (line.startsWith('data:')) data.push(line.slice(line.charAt(5) === ' ' ? 6 : 5));
  }
  if (data.length === 0) return undefined;
  const text = data.join('\n');
  let env: ReturnType<typeof normalize>;
  try {
    env = normalize(JSON.parse(text));
  } catch (e) {
    skipped(encodedSize(text), e instanceof Error ? e.message : String(e));
    return undefined;
  }
  if (!env) skipped(encodedSize(text), 'not an envelope (an object with a string type)');
  return env;
}
