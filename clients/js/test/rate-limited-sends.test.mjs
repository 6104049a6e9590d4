// A queue of sends flushed on connect passes the worker's frame rate (protocol §1.1: 50 frames a second, burst 100, by
// default) once it holds more than about a hundred sends, far below `maxQueue` (1000). The worker answers the rest
// `rate_limited` ("the frame was not acted on; retry it later with the same id"). Those sends once rejected at once;
// they are retried after a backoff like `publish_failed`, as the .NET client does. Against a real worker with its
// default limits.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import WebSocket from 'ws';
import { BridgeClient } from '../dist/index.js';
import { startNats, startWorker, uniqueRoom } from './helpers/servers.mjs';

let nats;
let worker;
let client;

before(async () => {
  nats = await startNats();
  worker = await startWorker(nats.url); // the default frame rate limit
});

after(async () => {
  client?.close();
  await worker?.stop('SIGKILL');
  await nats?.stop();
});

test('150 sends queued before connecting are all stored, each once, though the worker refuses some rate_limited', async () => {
  const room = uniqueRoom('rl');
  client = new BridgeClient({ url: worker.url, WebSocket, transports: ['websocket'] });
  const refused = [];
  client.on('error', (env) => refused.push(env.payload?.code));
  const sends = [];
  for (let i = 0; i < 150; i++) sends.push(client.send('chat.x', room, { i }));
  await client.connect();
  const results = await Promise.allSettled(sends);
  const rejected = results.filter((r) => r.status === 'rejected').map((r) => r.reason.code);
  assert.deepEqual(rejected, [], 'no send rejected');
  assert.ok(refused.includes('rate_limited'), 'the worker did refuse some (else this test proves nothing)');
  const seqs = results.map((r) => r.value.seq);
  assert.equal(new Set(seqs).size, 150, 'each stored once');
});
