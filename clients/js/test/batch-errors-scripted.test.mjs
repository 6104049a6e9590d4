// Batch join errors a real worker gives only in failures or in older versions, from a scripted worker (a small real
// WebSocket server on loopback that speaks that much of the protocol, over a real socket): entries refused with
// `unavailable` (a NATS outage) are tried again together, not one frame each; and a worker older than the `room` on
// batch errors and the limits in welcome (docs/protocol.md §12) names no room in an error on a batch: the client
// answers it once per batch, without sending more frames at once than a worker's rate limit lets through.
import assert from 'node:assert/strict';
import { afterEach, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import WebSocket from 'ws';
import { BridgeClient } from '../dist/index.js';
import { scriptedServer, stopScriptedServers } from './helpers/scripted.mjs';
import { waitFor } from './helpers/servers.mjs';

let client;

afterEach(async () => {
  client?.close();
  client = undefined;
  await stopScriptedServers();
});

/** An older worker's side of the one connection (no limits in welcome): the frames it received (with the time each came) and a way to answer. */
async function olderWorker() {
  const received = [];
  let socket;
  const welcome = { serverId: 'older', heartbeatMs: 30000, protocol: 1, user: 'u' }; // no maxFrameBytes, no maxRoomsPerConnection
  const { url } = await scriptedServer((ws) => {
    socket = ws;
    ws.on('message', (data) => received.push({ frame: JSON.parse(String(data)), at: Date.now() }));
  }, { welcome });
  return {
    url,
    joined: (room) => socket.send(JSON.stringify({ type: 'room.joined', room, seq: 0, payload: { replayed: 0, truncated: false } })),
    error: (code, ref, room) => socket.send(JSON.stringify({ type: 'error', room, payload: { code, message: code, ref } })),
    joins: () => received.filter(({ frame }) => frame.type === 'room.join'),
  };
}

/** A client holding `count` rooms (asked before connecting, so they go in batch frames). */
async function clientWith(url, count) {
  client = new BridgeClient({ url, WebSocket, transports: ['websocket'], reconnect: { minDelayMs: 100, maxDelayMs: 400 } });
  const rooms = Array.from({ length: count }, (_, i) => `older.r${i}`);
  const results = rooms.map((room) => client.join(room).then(() => 'joined', (e) => e.code));
  await client.connect();
  return { rooms, results };
}

test('a room-less error on a batch joins its rooms not joined yet one by one, 20 at once and the rest paced, and a later room-less error on it sends nothing more', async () => {
  const w = await olderWorker();
  const { rooms } = await clientWith(w.url, 60);
  await waitFor(() => w.joins().length === 1, { message: 'the batch' });
  const batch = w.joins()[0].frame;
  assert.equal(batch.payload.rooms.length, 60, 'no limit in welcome: all 60 rooms in one frame');
  for (const room of rooms.slice(0, 10)) w.joined(room);
  const errorAt = Date.now();
  w.error('forbidden', batch.id); // one entry's, or the frame's: an older worker does not say which

  await waitFor(() => w.joins().length === 51, { timeoutMs: 30_000, message: `the single joins (${w.joins().length - 1})` });
  const singles = w.joins().slice(1);
  assert.deepEqual(singles.map(({ frame }) => frame.room).sort(), rooms.slice(10).sort(), 'each room not joined yet once');
  // Timers never fire early: a client that sent them all at once has more than 20 here, however loaded the machine.
  const early = singles.filter(({ at }) => at < errorAt + 950);
  assert.ok(early.length <= 20, `${early.length} single joins within the first second`);

  w.error('forbidden', batch.id);
  w.error('unavailable', batch.id);
  await sleep(1500); // longer than a pacing step and the backoff: nothing more may come
  assert.equal(w.joins().length, 51, 'later errors on the batch send nothing more');
});

test('a room-less rate_limited on a batch sends its rooms not joined yet again in one batch after a backoff', async () => {
  const w = await olderWorker();
  const { rooms, results } = await clientWith(w.url, 30);
  await waitFor(() => w.joins().length === 1, { message: 'the batch' });
  const first = w.joins()[0].frame;
  w.joined(rooms[0]);
  w.error('rate_limited', first.id);

  await waitFor(() => w.joins().length === 2, { timeoutMs: 30_000, message: 'the batch sent again' });
  const again = w.joins()[1].frame;
  assert.notEqual(again.id, first.id);
  assert.deepEqual(again.payload.rooms.map((e) => e.room), rooms.slice(1));
  for (const room of rooms.slice(1)) w.joined(room);
  assert.deepEqual(await Promise.all(results), rooms.map(() => 'joined'));
  assert.equal(w.joins().length, 2, 'no single join');
});

test('a room-less too_many_rooms on a batch sends its rooms in two halves, and a half refused whole is halved again', async () => {
  const w = await olderWorker();
  const { rooms, results } = await clientWith(w.url, 8);
  await waitFor(() => w.joins().length === 1, { message: 'the batch' });
  w.error('too_many_rooms', w.joins()[0].frame.id);

  await waitFor(() => w.joins().length === 3, { message: 'the halves' });
  const [a, b] = w.joins().slice(1).map(({ frame }) => frame);
  assert.deepEqual(a.payload.rooms.map((e) => e.room), rooms.slice(0, 4));
  assert.deepEqual(b.payload.rooms.map((e) => e.room), rooms.slice(4));
  for (const room of rooms.slice(0, 4)) w.joined(room);
  w.error('too_many_rooms', b.id);

  await waitFor(() => w.joins().length === 5, { message: 'the quarters' });
  assert.deepEqual(w.joins().slice(3).map(({ frame }) => frame.payload.rooms.map((e) => e.room)), [rooms.slice(4, 6), rooms.slice(6)]);
  for (const room of rooms.slice(4)) w.joined(room);
  assert.deepEqual(await Promise.all(results), rooms.map(() => 'joined'));
});

test('batch entries refused with unavailable, each error naming its room, are joined again together in one batch after a backoff; a forbidden one ends', async () => {
  const w = await olderWorker();
  const { rooms, results } = await clientWith(w.url, 30);
  await waitFor(() => w.joins().length === 1, { message: 'the batch' });
  const first = w.joins()[0].frame;
  for (const room of rooms.slice(0, 20)) w.joined(room);
  for (const room of rooms.slice(20, 29)) w.error('unavailable', first.id, room);
  w.error('forbidden', first.id, rooms[29]);

  await waitFor(() => w.joins().length === 2, { timeoutMs: 30_000, message: 'the refused rooms joined again' });
  const again = w.joins()[1].frame;
  assert.deepEqual(again.payload.rooms.map((e) => e.room), rooms.slice(20, 29), 'one batch of the unavailable rooms');
  for (const room of rooms.slice(20, 29)) w.joined(room);
  assert.deepEqual(await Promise.all(results), [...rooms.slice(0, 29).map(() => 'joined'), 'forbidden']);
  assert.deepEqual([...client.positions.keys()], rooms.slice(0, 29));
  assert.equal(w.joins().length, 2, 'no single join');
});

test('joins made in one tick on an open connection to an older worker go out as single joins, each settled by the answer to its own frame', async () => {
  const w = await olderWorker();
  client = new BridgeClient({ url: w.url, WebSocket, transports: ['websocket'], reconnect: { minDelayMs: 100, maxDelayMs: 400 } });
  await client.connect();
  const rooms = ['older.tick.a', 'older.tick.b', 'older.tick.c'];

  const results = rooms.map((room) => client.join(room).then(() => 'joined', (e) => e.code));

  await waitFor(() => w.joins().length === 3, { message: `the joins (${w.joins().length})` });
  const frames = w.joins().map(({ frame }) => frame);
  assert.deepEqual(frames.map((f) => f.room), rooms, 'one single join per room, none in a batch');
  // An older worker's error names no room: only its ref says whose join it refuses.
  w.joined(rooms[0]);
  w.error('forbidden', frames[1].id);
  w.joined(rooms[2]);
  assert.deepEqual(await Promise.all(results), ['joined', 'forbidden', 'joined']);
  assert.deepEqual([...client.positions.keys()], [rooms[0], rooms[2]]);
});
