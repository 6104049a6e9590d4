import { BatchSubprotocols, decodeFrames, encodeFrame, encodedSize, Subprotocols, type EncodedFrame, type OutboundFrame } from '../codec.js';
import type { Format, WebSocketConstructor, WebSocketLike } from '../types.js';
import { OpenError, type Transport, type TransportHost } from './transport.js';

const OPEN = 1;

/**
 * `GET /ws` with subprotocol bridge.v1.json or bridge.v1.msgpack, offering their batch forms first (several envelopes
 * per message) unless `batch` is false. Open means the `welcome` frame arrived.
 */
export class WebSocketTransport implements Transport {
  readonly kind = 'websocket' as const;
  readonly twoWay = true;
  private socket: WebSocketLike | undefined;
  private closedByUs = false;

  constructor(
    private readonly host: TransportHost,
    private readonly ctor: WebSocketConstructor,
    private readonly format: Format,
    private readonly batch: boolean = true,
  ) {}

  open(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const url = new URL('/ws', this.host.baseUrl.replace(/^http/, 'ws') + '/');
      const token = this.host.token();
      // Browsers cannot set headers on a WebSocket: the token travels as a query parameter (protocol: auth).
      if (token) url.searchParams.set('access_token', token);
      let ws: WebSocketLike;
      try {
        // The batch subprotocol first; an older worker picks the plain one (docs/protocol.md §1).
        const protocols = this.batch ? [BatchSubprotocols[this.format], Subprotocols[this.format]] : [Subprotocols[this.format]];
        ws = new this.ctor(url.toString(), protocols);
      } catch (e) {
        reject(new OpenError(`WebSocket refused: ${(e as Error).message}`));
        return;
      }
      this.socket = ws;
      ws.binaryType = 'arraybuffer';
      let opened = false;
      const timer = setTimeout(() => {
        if (opened) return;
        this.closedByUs = true;
        ws.close();
        reject(new OpenError('WebSocket did not open in time'));
      }, this.host.openTimeoutMs);

      ws.onmessage = (ev: { data: unknown }) => {
        // What cannot be read is left out alone and reported with the message's size; the connection goes on.
        const envelopes = decodeFrames(ev.data, this.format, (index, reason) =>
          this.host.skipped({ transport: 'websocket', bytes: messageBytes(ev.data), index, reason }));
        // A batch message's envelopes one by one, in order, as if each had come alone.
        for (const env of envelopes) {
          if (!opened && env.type === 'welcome') {
            opened = true;
            clearTimeout(timer);
            resolve();
          }
          this.host.frame(env);
        }
      };
      ws.onerror = () => {
        // A close event always follows; it carries the code.
      };
      ws.onclose = (ev: { code: number; reason: string }) => {
        clearTimeout(timer);
        if (!opened) {
          reject(new OpenError(`WebSocket closed before welcome (${ev.code})`, { code: ev.code, reason: ev.reason }));
        } else if (!this.closedByUs) {
          this.host.lost({ code: ev.code, reason: ev.reason });
        }
      };
    });
  }

  send(frame: OutboundFrame | EncodedFrame): boolean {
    const ws = this.socket;
    if (!ws || ws.readyState !== OPEN) return false;
    ws.send(typeof frame === 'string' || frame instanceof Uint8Array ? frame : encodeFrame(frame, this.format));
    return true;
  }

  roomsChanged(): void {
    // Joins and leaves are frames on this transport.
  }

  close(code = 1000, reason = 'client closed'): void {
    this.closedByUs = true;
    try {
      this.socket?.close(code, reason);
    } catch {
      this.socket?.close();
    }
  }
}

/** The size of a WebSocket message as received: its UTF-8 bytes (text) or its bytes (binary). */
function messageBytes(data: unknown): number {
  if (typeof data === 'string') return encodedSize(data);
  if (data instanceof ArrayBuffer) return data.byteLength;
  if (ArrayBuffer.isView(data)) return data.byteLength;
  return 0;
}
