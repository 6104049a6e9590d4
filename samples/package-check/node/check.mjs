// Uses the npm tarball against a running worker: connect (Node 20: the `ws` package as WebSocket), join, send, read back.
import WebSocket from 'ws';
import { BridgeClient } from '@bridge/client';

const client = new BridgeClient({ url: process.argv[2], WebSocket, format: 'msgpack' });
const room = `packages.node-${process.pid}`;
const timer = setTimeout(() => {
  console.error('node sample: no round trip within 30 s');
  process.exit(1);
}, 30_000);
const seen = new Promise((resolve) => client.on('check.message', (m) => resolve(m)));
await client.connect();
await client.join(room);
const ack = await client.send('check.message', room, { from: 'the npm tarball' });
const message = await seen;
if (message.seq !== ack.seq) throw new Error(`got seq ${message.seq}, acked ${ack.seq}`);
console.log(`node sample: ${client.transportKind} round trip, seq ${message.seq}`);
clearTimeout(timer);
client.close();
