// A queue of sends flushed on connect passes the worker's frame rate (protocol §1.1: 50 frames a second, burst 100, by
// default) once it holds more than about a hundred sends, far below `maxQueue` (1000). The worker announces its rate
// in `welcome` (`framesPerSecond`, `frameBurst`) and the client paces its sends to it, so a full queue is stored whole
// and in call order; a send the worker still refuses `rate_limited` ("the frame was not acted on; retry it later with
// the same id") is sent again before any later send, and the refusal is not one of its `maxPublishAttempts`.
// Against a real worker with its default limits, and a scripted worker for the refusals a real one cannot be made to
// give on demand.
import assert from 'node:assert/strict';
import { after, afterEach, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import WebSocket from 'ws';
import { BridgeClient } from '../dist/index.js';
import { scriptedServer, stopScriptedServers } from './helpers/scripted.mjs';
import { startNats, startWorker, uniqueRoom, waitFor } from './helpers/servers.mjs';

let nats;
let worker;
const clients = [];

before(async () => {
  nats = await startNats();
  worker = await startWorker(nats.url); // the default frame rate limit
});

afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await stopScriptedServers();
});

after(async () => {
  await worker?.stop('SIGKILL');
  await nats?.stop();
});

function newClient(options) {
  const c = new BridgeClient({ WebSocket, reconnect: { minDelayMs: 20, maxDelayMs: 100 }, ...options });
  clients.push(c);
  return c;
}

test('welcome announces the frame rate limit on a WebSocket and none on SSE', async () => {
  const ws = newClient({ url: worker.url, transports: ['websocket'] });
  await ws.connect();
  assert.equal(ws.welcome.framesPerSecond, 50);
  assert.equal(ws.welcome.frameBurst, 100);
  // SSE publishes over HTTP, which the frame limit does not count.
  const sse = newClient({ url: worker.url, transports: ['sse'] });
  sse.join(uniqueRoom('rl-sse')).catch(() => {}); // SSE needs a room; closed by afterEach
  await sse.connect();
  assert.equal(typeof sse.welcome.maxFrameBytes, 'number', 'a current welcome');
  assert.equal('framesPerSecond' in sse.welcome, false);
  assert.equal('frameBurst' in sse.welcome, false);
});

test('a full queue of 1000 sends made before connecting is stored whole, each once, in call order, none refused', async () => {
  const room = uniqueRoom('rl');
  const client = newClient({ url: worker.url, transports: ['websocket'] });
  const refused = [];
  client.on('error', (env) => refused.push(env.payload?.code));
  const sends = [];
  for (let i = 0; i < 1000; i++) sends.push(client.send('chat.x', room, { i }));
  await client.connect();
  const results = await Promise.allSettled(sends);
  const rejected = results.filter((r) => r.status === 'rejected').map((r) => r.reason.code);
  assert.deepEqual(rejected, [], 'no send rejected');
  assert.deepEqual(refused, [], 'paced within the announced rate: the worker refused none');
  const seqs = results.map((r) => r.value.seq);
  assert.deepEqual(seqs, [...seqs].sort((a, b) => a - b), 'stored in call order');
  assert.equal(new Set(seqs).size, 1000, 'each stored once');

  // Read the room back from its start: every send once, in call order, at the seq its ack said.
  const reader = newClient({ url: worker.url, transports: ['websocket'] });
  const stored = [];
  reader.on('chat.x', (env) => stored.push(env));
  await reader.connect();
  await reader.join(room, { since: 0 });
  await waitFor(() => stored.length >= 1000, { timeoutMs: 30_000, message: '1000 messages read back' });
  await sleep(200);
  assert.deepEqual(stored.map((m) => m.payload.i), [...Array(1000).keys()]);
  assert.deepEqual(stored.map((m) => m.seq), seqs);
}, { timeout: 120_000 });

test('a send refused rate_limited is sent again before any later send, once those are answered, and is not an attempt', async () => {
  // A worker that announces no rate (the client cannot pace) refuses the second send and, while the client still has
  // the later ones in flight, those too: as a worker whose bucket ran empty does.
  const received = [];
  let seq = 0;
  let refusedAll = false;
  const { url } = await scriptedServer((ws) => {
    const firstRound = [];
    const reply = (frame) => ws.send(JSON.stringify(frame));
    const ack = (f) => reply({ type: 'ack', room: f.room, id: f.id, seq: ++seq, payload: { duplicate: false } });
    const refuse = (f) => reply({ type: 'error', payload: { code: 'rate_limited', message: 'too many frames', ref: f.id } });
    ws.on('message', async (data) => {
      const frame = JSON.parse(String(data));
      received.push(frame.id);
      if (received.length > 5) {
        ack(frame);
        return;
      }
      firstRound.push(frame);
      if (frame.id === 'p2') refuse(frame);
      if (firstRound.length < 5) return;
      // p2 refused long before the others are answered: the client must wait for their answers.
      await sleep(300);
      ack(firstRound[0]);
      for (const later of firstRound.slice(2)) refuse(later);
      refusedAll = true;
    });
  });
  const client = newClient({ url, transports: ['websocket'], maxPublishAttempts: 1 });
  const sends = [1, 2, 3, 4, 5].map((i) => client.send('chat.x', 'r', { i }, { id: `p${i}` }));
  await client.connect();
  const acks = await Promise.all(sends);
  assert.ok(refusedAll);
  assert.deepEqual(received, ['p1', 'p2', 'p3', 'p4', 'p5', 'p2', 'p3', 'p4', 'p5']);
  assert.deepEqual(acks.map((a) => a.seq), [1, 2, 3, 4, 5]);
});

test("a send refused rate_limited goes again after the worker's refill interval, not sooner", async () => {
  // The worker refills its bucket ten times a second (⌈50/10⌉ = 5 tokens every 100 ms at 50 frames a second), so a
  // send retried sooner than 100 ms after the refusal finds it as empty and is refused again, spending one of its 20.
  const arrivals = [];
  let refusedAt;
  let seq = 0;
  const { url } = await scriptedServer(
    (ws) => {
      ws.on('message', (data) => {
        const frame = JSON.parse(String(data));
        arrivals.push({ id: frame.id, at: performance.now() });
        if (refusedAt === undefined) {
          refusedAt = performance.now();
          ws.send(JSON.stringify({ type: 'error', payload: { code: 'rate_limited', message: 'too many frames', ref: frame.id } }));
          return;
        }
        ws.send(JSON.stringify({ type: 'ack', room: frame.room, id: frame.id, seq: ++seq, payload: { duplicate: false } }));
      });
    },
    { welcome: { serverId: 'scripted', heartbeatMs: 30000, protocol: 1, user: 'u', framesPerSecond: 50, frameBurst: 100 } },
  );
  const client = newClient({ url, transports: ['websocket'] });
  await client.connect();
  const ack = await client.send('chat.x', 'r', { i: 1 }, { id: 'p1' });
  assert.equal(ack.seq, 1);
  assert.deepEqual(arrivals.map((a) => a.id), ['p1', 'p1']);
  const waited = arrivals[1].at - refusedAt;
  assert.ok(waited >= 95, `sent again ${waited.toFixed(1)} ms after the refusal: before the worker's 100 ms refill`);
});
