// Compiled by `tsc -p tsconfig.check.json` only: the public types accept both the DOM's WebSocket and the ws
// package's, and the API reads as documented. A type error here fails `npm run typecheck`.
import WebSocketNode from 'ws';
import { BridgeClient, BridgeError, type Ack, type Envelope, type JoinResult, type SkippedFrame, type StateChange } from '../src/index.js';

const browser = new BridgeClient({ url: 'http://127.0.0.1:8080', WebSocket: WebSocket, format: 'msgpack' });
const node = new BridgeClient({
  url: 'http://127.0.0.1:8080',
  WebSocket: WebSocketNode,
  transports: ['websocket', 'sse', 'poll'],
  reconnect: { minDelayMs: 500, maxDelayMs: 20_000 },
  getToken: async () => 'token',
});
const off: () => void = node.on('chat.message', (m: Envelope) => void m.seq);
off();
node.onState((c: StateChange) => void c.state);
node.onSkipped((s: SkippedFrame) => void `${s.transport} ${s.bytes} ${s.index ?? ''} ${s.reason}`);
const joined: Promise<JoinResult> = node.join('demo', { since: 42 });
const acked: Promise<Ack> = node.send('chat.message', 'demo', { text: 'hi' });
void joined;
void acked.catch((e: unknown) => e instanceof BridgeError && e.code === 'queue_full');
void browser.connect();
