// Fallback order against the real worker: a small HTTP proxy on loopback stands where a restrictive corporate
// proxy would, refusing WebSocket upgrades (and, in one test, event streams) and passing the rest through.
import assert from 'node:assert/strict';
import { request as httpRequest, createServer } from 'node:http';
import { after, afterEach, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { idsOf, recordingClient } from './helpers/recorder.mjs';
import { httpPublish, startNats, startWorker, uniqueRoom, waitFor } from './helpers/servers.mjs';

let nats;
let worker;
let proxy;
const clients = [];

before(async () => {
  nats = await startNats();
  // A short PollTimeout keeps quiet long-polls (and so the poll tests) short.
  // A short SSE heartbeat lets the stalled-stream test see the client's watchdog (2 heartbeats + 2 s) quickly.
  worker = await startWorker(nats.url, {
    settings: { 'Bridge:Connections:PollTimeout': '00:00:02', 'Bridge:Connections:SseHeartbeatInterval': '00:00:00.500' },
  });
});

afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await proxy?.close();
  proxy = undefined;
});

after(async () => {
  await worker?.stop('SIGKILL');
  await nats?.stop();
});

/** Refuses WebSocket upgrades (403) and, with blockSse, event streams (502); forwards everything else. */
async function startProxy(target, { blockSse = false } = {}) {
  const seen = [];
  const open = new Set();
  const upstreams = new Set();
  const upstream = new URL(target);
  const server = createServer((req, res) => {
    const path = new URL(req.url, 'http://x').pathname;
    seen.push(path);
    if (blockSse && path === '/sse') {
      res.writeHead(502, { 'Content-Type': 'text/plain' }).end('event streams are not allowed here');
      return;
    }
    const out = httpRequest(
      { host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: req.headers },
      (up) => {
        res.writeHead(up.statusCode, up.headers);
        up.pipe(res);
        upstreams.add({ up, res });
        res.on('close', () => {
          for (const u of upstreams) if (u.res === res) upstreams.delete(u);
          up.destroy();
        });
      },
    );
    out.on('error', () => res.destroy());
    req.pipe(out);
    open.add(res);
    res.on('close', () => open.delete(res));
  });
  server.on('upgrade', (req, socket) => {
    seen.push(`upgrade ${new URL(req.url, 'http://x').pathname}`);
    socket.end('HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    seen,
    /** Stops passing bytes on every response in flight without closing anything: a connection gone silent. */
    stallAll() {
      for (const { up, res } of upstreams) {
        up.unpipe(res);
        up.pause();
      }
    },
    /** Cuts every response in flight, as a dropped network would. */
    cutAll() {
      for (const res of open) res.destroy();
    },
    close() {
      server.closeAllConnections();
      return new Promise((r) => server.close(r));
    },
  };
}

function transportsTried(seen) {
  return seen.filter((p) => ['upgrade /ws', '/sse', '/poll'].includes(p)).filter((p, i, all) => all.indexOf(p) === i);
}

test('WebSocket refused: the client falls back to SSE, receives, and publishes over HTTP', async () => {
  proxy = await startProxy(worker.url);
  const room = uniqueRoom('fb');
  const a = recordingClient(proxy.url);
  clients.push(a.client);
  a.client.join(room);
  await a.client.connect();
  assert.equal(a.client.transportKind, 'sse');
  await waitFor(() => a.client.positions.get(room) !== undefined, { message: 'room.joined over SSE' });

  const ack = await a.client.send('chat.message', room, { via: 'http' });
  assert.equal(ack.duplicate, false);
  await waitFor(() => a.messages.length === 1, { message: 'own message over SSE' });
  assert.equal(a.messages[0].seq, ack.seq);
  assert.deepEqual(a.messages[0].payload, { via: 'http' });
  assert.deepEqual(transportsTried(proxy.seen), ['upgrade /ws', '/sse']);
  assert.ok(proxy.seen.includes(`/api/rooms/${room}/messages`));
});

test('WebSocket and SSE refused: the client falls back to long-polling', async () => {
  proxy = await startProxy(worker.url, { blockSse: true });
  const room = uniqueRoom('fb');
  const a = recordingClient(proxy.url);
  clients.push(a.client);
  const joined = a.client.join(room);
  joined.catch(() => undefined);
  await a.client.connect();
  assert.equal(a.client.transportKind, 'poll');
  await waitFor(() => proxy.seen.includes('/poll'), { message: 'the first poll' });
  assert.deepEqual(transportsTried(proxy.seen), ['upgrade /ws', '/sse', '/poll']);

  // The first poll joins live; it answers with the room's position once a message arrives.
  await sleep(200);
  const ack = await a.client.send('chat.message', room, { via: 'poll' });
  const result = await joined;
  assert.equal(result.room, room);
  await waitFor(() => a.messages.length === 1, { message: 'the message over long-poll' });
  assert.equal(a.messages[0].seq, ack.seq);
});

test('SSE: a stream cut by the network is resumed from the cursor, nothing lost, nothing twice', async () => {
  proxy = await startProxy(worker.url);
  const room = uniqueRoom('fb');
  const a = recordingClient(proxy.url);
  clients.push(a.client);
  await a.client.connect();
  await a.client.join(room);
  assert.equal(a.client.transportKind, 'sse');

  const published = [];
  for (let i = 0; i < 10; i++) published.push((await httpPublish(worker.url, room, { type: 'chat.message', id: `s-${i}` })).id);
  await waitFor(() => a.messages.length === 10, { message: 'first messages' });
  const mark = a.states.length;
  proxy.cutAll();
  // The reconnect can be quick: look for the drop in the state log rather than in the current state.
  await waitFor(() => a.states.slice(mark).some((s) => s.state === 'reconnecting'), { message: 'the drop' });
  for (let i = 10; i < 20; i++) published.push((await httpPublish(worker.url, room, { type: 'chat.message', id: `s-${i}` })).id);
  await waitFor(() => a.client.state === 'open', { message: 'the reconnect' });
  for (let i = 20; i < 25; i++) published.push((await httpPublish(worker.url, room, { type: 'chat.message', id: `s-${i}` })).id);
  await waitFor(() => a.messages.length >= 25, { message: 'every message' });
  await sleep(200);
  assert.deepEqual(idsOf(a.messages, room), published);
  assert.equal(a.client.transportKind, 'sse');
});

test('long-poll: a run of polls delivers a steady stream once each, in order, across two rooms', async () => {
  proxy = await startProxy(worker.url, { blockSse: true });
  const rooms = [uniqueRoom('fb'), uniqueRoom('fb')];
  const a = recordingClient(proxy.url);
  clients.push(a.client);
  const joins = rooms.map((r) => a.client.join(r));
  await a.client.connect();
  assert.equal(a.client.transportKind, 'poll');
  await sleep(200);
  const expected = { [rooms[0]]: [], [rooms[1]]: [] };
  for (let i = 0; i < 30; i++) {
    const room = rooms[i % 2];
    expected[room].push((await httpPublish(worker.url, room, { type: 'chat.message', id: `p-${i}` })).id);
    if (i === 0) await Promise.all(joins);
    if (i % 7 === 0) proxy.cutAll(); // some polls are cut on the way back: their messages come again by cursor
  }
  await waitFor(() => a.messages.length >= 30, { timeoutMs: 15_000, message: 'every message' });
  await sleep(300);
  for (const room of rooms) assert.deepEqual(idsOf(a.messages, room), expected[room]);
});

test('SSE: a stream that goes silent (no heartbeat) is dropped by the client and resumed', async () => {
  proxy = await startProxy(worker.url);
  const room = uniqueRoom('fb');
  const a = recordingClient(proxy.url);
  clients.push(a.client);
  await a.client.connect();
  await a.client.join(room);
  assert.equal(a.client.transportKind, 'sse');
  const first = await httpPublish(worker.url, room, { type: 'chat.message', id: 'before' });
  await waitFor(() => a.messages.length === 1, { message: 'the first message' });

  const stalledAt = Date.now();
  proxy.stallAll(); // the TCP connection stays up; nothing more arrives, heartbeats included
  const during = await httpPublish(worker.url, room, { type: 'chat.message', id: 'during' });
  await waitFor(() => a.states.some((s) => s.state === 'reconnecting'), { timeoutMs: 10_000, message: 'the watchdog' });
  const noticed = Date.now() - stalledAt;
  // heartbeatMs is 500: the watchdog allows 2 heartbeats + 2 s = 3 s of silence.
  assert.ok(noticed >= 2_500 && noticed < 8_000, `noticed after ${noticed} ms`);
  assert.match(a.states.find((s) => s.state === 'reconnecting').reason, /silent/);
  await waitFor(() => a.messages.length === 2, { timeoutMs: 10_000, message: 'the resumed message' });
  assert.deepEqual(a.messages.map((m) => m.seq), [first.seq, during.seq]);
});
