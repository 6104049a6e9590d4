// Close codes the worker cannot be made to send on demand today (4001/4003 come with authentication, the
// reconnect_after_ms spread with the drain work): a small real WebSocket server on loopback speaks just enough of
// the protocol (welcome, then a close) to drive the client's decisions over a real socket.
import assert from 'node:assert/strict';
import { afterEach, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import WebSocket from 'ws';
import { BridgeClient, reconnectAfterMs } from '../dist/index.js';
import { scriptedServer, stopScriptedServers } from './helpers/scripted.mjs';
import { waitFor } from './helpers/servers.mjs';

let client;

afterEach(async () => {
  client?.close();
  client = undefined;
  await stopScriptedServers();
});

function newClient(url, options = {}) {
  client = new BridgeClient({ url, WebSocket, transports: ['websocket'], reconnect: { minDelayMs: 50, maxDelayMs: 200 }, ...options });
  return client;
}

test('4003 without a token callback closes the client for good', async () => {
  const s = await scriptedServer((ws) => setTimeout(() => ws.close(4003, 'forbidden'), 20));
  const c = newClient(s.url, { token: 'old' });
  const states = [];
  c.onState((x) => states.push(x));
  await c.connect();
  const rejected = assert.rejects(c.send('chat.message', 'demo', { n: 1 }), (e) => e.code === 'unauthorized');
  await waitFor(() => c.state === 'closed', { message: 'closed after 4003' });
  await rejected;
  await sleep(400); // several backoff periods: no new attempt may come
  assert.equal(s.connections.length, 1);
  assert.equal(s.connections[0].url.searchParams.get('access_token'), 'old');
  assert.equal(states.at(-1).closeCode, 4003);
});

test('4001 with a token callback reconnects at once with the new token', async () => {
  const s = await scriptedServer((ws, i) => {
    if (i === 0) setTimeout(() => ws.close(4001, 'token expired'), 20);
  });
  let calls = 0;
  const c = newClient(s.url, { token: 't1', getToken: async () => `t${++calls + 1}` });
  await c.connect();
  await waitFor(() => s.connections.length === 2, { message: 'the reconnect' });
  assert.equal(s.connections[1].url.searchParams.get('access_token'), 't2');
  assert.equal(calls, 1);
  await waitFor(() => c.state === 'open');
});

test('4003 with a token callback that returns the same token does not reconnect', async () => {
  const s = await scriptedServer((ws) => setTimeout(() => ws.close(4003, 'forbidden'), 20));
  const c = newClient(s.url, { token: 'same', getToken: () => 'same' });
  await c.connect();
  await waitFor(() => c.state === 'closed');
  await sleep(300);
  assert.equal(s.connections.length, 1);
});

test('1012 reconnects after the reconnect_after_ms delay the server gave', async () => {
  const s = await scriptedServer((ws, i) => {
    if (i === 0) setTimeout(() => ws.close(1012, 'service restart; reconnect_after_ms=350'), 20);
  });
  const c = newClient(s.url, { reconnect: { minDelayMs: 5000, maxDelayMs: 20000 } });
  const states = [];
  c.onState((x) => states.push({ ...x, at: Date.now() }));
  await c.connect();
  await waitFor(() => s.connections.length === 2, { message: 'the reconnect' });
  const drop = states.find((x) => x.state === 'reconnecting');
  assert.equal(drop.closeCode, 1012);
  assert.equal(drop.delayMs, 350);
  const waited = s.connections[1].at - drop.at;
  assert.ok(waited >= 340 && waited < 2000, `reconnected after ${waited} ms`);
});

test('4008 (slow consumer) reconnects and resumes the room from its last seq', async () => {
  const s = await scriptedServer((ws, i) => {
    ws.on('message', (data) => {
      const f = JSON.parse(String(data));
      if (f.type !== 'room.join') return;
      const since = f.payload?.since;
      if (i === 0) {
        ws.send(JSON.stringify({ type: 'room.joined', room: f.room, seq: 10, payload: { replayed: 0, truncated: false } }));
        ws.send(JSON.stringify({ type: 'm', room: f.room, seq: 11, payload: 1 }));
        ws.send(JSON.stringify({ type: 'm', room: f.room, seq: 12, payload: 2 }));
        setTimeout(() => ws.close(4008, 'slow consumer: send queue full'), 20);
      } else {
        // The resume asks from 12: replay 13, and a duplicate 12 that the client must drop.
        assert.equal(since, 12);
        ws.send(JSON.stringify({ type: 'm', room: f.room, seq: 12, payload: 2 }));
        ws.send(JSON.stringify({ type: 'm', room: f.room, seq: 13, payload: 3 }));
        ws.send(JSON.stringify({ type: 'room.joined', room: f.room, seq: 13, payload: { replayed: 2, truncated: false } }));
      }
    });
  });
  const c = newClient(s.url);
  const got = [];
  c.on('m', (m) => got.push(m.seq));
  await c.connect();
  await c.join('room1');
  await waitFor(() => got.length >= 3, { message: 'the resumed message' });
  await sleep(50);
  assert.deepEqual(got, [11, 12, 13]);
  assert.equal(s.connections.length, 2);
});

test('reconnect_after_ms is read from a close reason', () => {
  assert.equal(reconnectAfterMs('service restart; reconnect_after_ms=1234'), 1234);
  assert.equal(reconnectAfterMs('reconnect_after_ms=0'), 0);
  assert.equal(reconnectAfterMs('service restart'), undefined);
  assert.equal(reconnectAfterMs(''), undefined);
});

test('a JWT is renewed before its exp and announced with auth.refresh', async () => {
  const frames = [];
  const s = await scriptedServer((ws) => ws.on('message', (d) => frames.push(JSON.parse(String(d)))));
  const jwt = (exp) => `${btoa('{"alg":"none"}')}.${btoa(JSON.stringify({ sub: 'u', exp }))}.sig`;
  const first = jwt(Math.floor(Date.now() / 1000) + 2); // expires in ~2 s
  const second = jwt(Math.floor(Date.now() / 1000) + 3600);
  let calls = 0;
  const c = newClient(s.url, { token: first, refreshBeforeExpiryMs: 1500, getToken: () => (++calls, second) });
  await c.connect();
  await waitFor(() => frames.some((f) => f.type === 'auth.refresh'), { timeoutMs: 5000, message: 'auth.refresh' });
  const refresh = frames.find((f) => f.type === 'auth.refresh');
  assert.equal(refresh.payload.token, second);
  assert.equal(calls, 1);
  assert.equal(s.connections.length, 1, 'renewed on the open connection, no reconnect');
});
