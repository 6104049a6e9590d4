// A long catch-up against the real worker: a client that falls behind its room (here its socket stops being read
// for a while, as a busy tab or a slow handler would) is not closed; the worker reads the room from the stream for
// it, and the client sees every message once, in order, with no reconnect and no ack timeout while the backlog
// streams. Also a resume whose backlog is far larger than the worker's send queue.
import assert from 'node:assert/strict';
import { after, afterEach, before, test } from 'node:test';
import WebSocket from 'ws';
import { recordingClient } from './helpers/recorder.mjs';
import { httpPublish, startNats, startWorker, uniqueRoom, waitFor } from './helpers/servers.mjs';

const BURST = 3000;
const BODY = 'x'.repeat(4096);
let nats;
let worker;
const clients = [];

before(async () => {
  nats = await startNats();
  // A small send queue (64 frames, 256 KiB) so the burst (12 MB) is far larger than it.
  worker = await startWorker(nats.url, {
    settings: { 'Bridge:Connections:SendQueueCapacity': 64, 'Bridge:Connections:SendQueueMaxBytes': 262144 },
  });
});

afterEach(() => {
  for (const c of clients.splice(0)) c.close();
});

after(async () => {
  await worker?.stop('SIGKILL');
  await nats?.stop();
});

/** Publishes BURST messages over HTTP, 32 at a time; their seqs in stream order. */
async function publishBurst(room) {
  const seqs = [];
  for (let i = 0; i < BURST; i += 32) {
    const batch = [];
    for (let j = i; j < Math.min(BURST, i + 32); j++) batch.push(httpPublish(worker.url, room, { type: 'burst.item', payload: BODY }));
    for (const r of await Promise.all(batch)) seqs.push(r.seq);
  }
  return seqs.sort((a, b) => a - b);
}

async function metric(name) {
  const text = await (await fetch(`${worker.url}/metrics`)).text();
  let total = 0;
  for (const m of text.matchAll(new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.e+-]+)$`, 'gm'))) total += Number(m[1]);
  return total;
}

/** The `ws` WebSocket, remembering its instances so a test can stop reading one's socket for a while. */
function pausable() {
  const sockets = [];
  class PausableWebSocket extends WebSocket {
    constructor(...args) {
      super(...args);
      sockets.push(this);
    }
  }
  return { WebSocket: PausableWebSocket, sockets };
}

for (const format of ['json', 'msgpack']) {
  test(`a client that falls behind a burst larger than the send queue catches up: all once, in order, no reconnect, acks on time (${format})`, async () => {
    const room = uniqueRoom();
    const ws = pausable();
    const r = recordingClient(worker.url, { format, WebSocket: ws.WebSocket });
    clients.push(r.client);
    await r.client.connect();
    await r.client.join(room);
    const catchUpsBefore = await metric('bridge_catchups_total');

    // The client stops reading its socket: the worker's queue for it fills and it falls behind.
    ws.sockets.at(-1)._socket.pause();
    const publishing = publishBurst(room);
    await waitFor(async () => (await metric('bridge_members_lagging')) >= 1, { timeoutMs: 60_000, message: 'the client to fall behind' });
    const seqs = await publishing;

    // Reading again: the backlog streams from the stream; a publish made now is acked while it does.
    ws.sockets.at(-1)._socket.resume();
    const ack = await r.client.send('chat.message', room, { text: 'while catching up' });
    await waitFor(() => r.messages.filter((m) => m.type === 'burst.item').length >= BURST, { timeoutMs: 120_000, message: 'the whole burst' });
    const got = r.messages.filter((m) => m.type === 'burst.item').map((m) => m.seq);
    assert.deepEqual(got, seqs);
    assert.ok(r.messages.some((m) => m.seq === ack.seq), 'its own message arrived too');
    assert.ok((await metric('bridge_catchups_total')) > catchUpsBefore);
    await waitFor(async () => (await metric('bridge_members_lagging')) === 0, { timeoutMs: 60_000, message: 'the client to be live again' });
    assert.deepEqual(r.states.map((s) => s.state), ['connecting', 'open'], 'no reconnect (no ack timeout, no close)');
    assert.equal(ws.sockets.length, 1, 'one WebSocket: no reconnect');
  });
}

test('a resume whose backlog is far larger than the send queue yields it all once, in order, then goes live', async () => {
  const room = uniqueRoom();
  const seqs = await publishBurst(room);
  const ws = pausable();
  const r = recordingClient(worker.url, { WebSocket: ws.WebSocket });
  clients.push(r.client);
  await r.client.connect();
  const joined = await r.client.join(room, { since: 0 });
  assert.equal(joined.replayed, BURST);
  assert.equal(joined.truncated, false);
  assert.deepEqual(r.messages.map((m) => m.seq), seqs);
  const live = await httpPublish(worker.url, room, { type: 'burst.item', payload: 'live' });
  await waitFor(() => r.messages.at(-1)?.seq === live.seq, { message: 'the live message' });
  assert.equal(ws.sockets.length, 1, 'one WebSocket: no reconnect');
});
