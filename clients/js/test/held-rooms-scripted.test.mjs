// A room the application holds (its join() resolved once) is never dropped because a rejoin is refused with a
// retryable code: a worker restarting during a JetStream leader election refuses every rejoin `unavailable` for as
// long as the election lasts, and `rate_limited` says the frame was not acted on. A real worker cannot be made to
// refuse on demand, so a scripted worker (a small real WebSocket server on loopback) does, over a real socket.
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

/**
 * A scripted worker whose connections answer frames through `answer(frame, reply, index)` (`reply` sends a frame on
 * that connection); `frames` holds every frame received with its connection's index, `drop()` ends the current one.
 */
async function scriptedWorker(answer) {
  const frames = [];
  const sockets = [];
  const { url, connections } = await scriptedServer((ws, index) => {
    sockets[index] = ws;
    const reply = (frame) => ws.send(JSON.stringify(frame));
    ws.on('message', (data) => {
      const frame = JSON.parse(String(data));
      frames.push({ frame, index });
      answer(frame, reply, index);
    });
  });
  return {
    url,
    connections,
    frames,
    joins: (index) => frames.filter((f) => f.frame.type === 'room.join' && (index === undefined || f.index === index)),
    leaves: () => frames.filter((f) => f.frame.type === 'room.leave'),
    drop: () => sockets.at(-1).terminate(),
    send: (frame) => sockets.at(-1).send(JSON.stringify(frame)),
  };
}

const joined = (room, seq = 0) => ({ type: 'room.joined', room, seq, payload: { replayed: 0, truncated: false } });
const refused = (code, frame, room) => ({ type: 'error', room, payload: { code, message: code, ref: frame.id } });

function newClient(url) {
  // Short backoffs so 8 refusals take well under a second; the cap is the client's maximum reconnect delay.
  client = new BridgeClient({ url, WebSocket, transports: ['websocket'], reconnect: { minDelayMs: 20, maxDelayMs: 80 } });
  return client;
}

for (const code of ['unavailable', 'rate_limited']) {
  test(`a held room whose rejoin is refused ${code} 8 times is joined again on the same connection and delivers its messages`, async () => {
    const room = `held.${code}`;
    let refusals = 0;
    const w = await scriptedWorker((frame, reply, index) => {
      if (frame.type !== 'room.join') return;
      if (index === 0 || refusals === 8) reply(joined(room, 5));
      else {
        refusals++;
        reply(refused(code, frame, room));
      }
    });
    const c = newClient(w.url);
    const errors = [];
    c.on('error', (env) => errors.push(env));
    const messages = [];
    c.on('*', (env) => messages.push(env));
    await c.connect();
    await c.join(room);

    w.drop();
    await waitFor(() => w.joins(1).length === 9, { timeoutMs: 30_000, message: `the rejoins (${w.joins(1).length})` });
    assert.equal(w.connections.length, 2, 'all on the second connection');
    assert.deepEqual(w.joins(1).map(({ frame }) => frame.payload), Array(9).fill({ since: 5 }), 'each a resume from its position');
    assert.equal(errors.length, 8, 'each refusal surfaced');
    assert.ok(errors.every((e) => e.room === room && e.payload.code === code), 'naming the room');
    assert.deepEqual([...c.positions.keys()], [room], 'still held');

    w.send({ type: 'chat.message', room, seq: 6, payload: { n: 1 } });
    await waitFor(() => messages.length === 1, { message: 'the message after the rejoin' });
    assert.equal(messages[0].seq, 6);
    assert.equal(c.positions.get(room), 6);
  });
}

test('a first join refused unavailable 5 times fails with unavailable, and the room is not held', { timeout: 30_000 }, async () => {
  const room = 'first.unavailable';
  const w = await scriptedWorker((frame, reply) => {
    if (frame.type === 'room.join') reply(refused('unavailable', frame, room));
  });
  const c = newClient(w.url);
  await c.connect();
  await assert.rejects(c.join(room), (e) => e.code === 'unavailable');
  assert.equal(w.joins().length, 5);
  assert.equal(c.positions.size, 0);
  await sleep(400); // several backoffs: no further try may come
  assert.equal(w.joins().length, 5);
});

test('a held room refused forbidden on its rejoin ends and is not joined on later connections', async () => {
  const room = 'held.forbidden';
  const w = await scriptedWorker((frame, reply, index) => {
    if (frame.type === 'room.join') reply(index === 0 ? joined(room) : refused('forbidden', frame, room));
  });
  const c = newClient(w.url);
  const errors = [];
  c.on('error', (env) => errors.push(env));
  await c.connect();
  await c.join(room);

  w.drop();
  await waitFor(() => errors.length === 1, { message: 'the refusal' });
  assert.equal(errors[0].room, room);
  assert.equal(c.positions.size, 0, 'ended');
  assert.equal(w.leaves().length, 0, 'the refusal answered its only join: nothing to leave');
  w.drop();
  await waitFor(() => w.connections.length === 3 && c.state === 'open', { message: 'the third connection' });
  await sleep(200);
  assert.equal(w.joins(2).length, 0, 'not joined again');
});

test('a held room ended while another join of it is unanswered is left, so the worker stops sending its messages', async () => {
  // An older worker names no room in an error on a batch: the client joins the batch's rooms one by one, while the
  // batch may still join them. A single join refused forbidden then ends a room the worker may hold.
  const rooms = ['older.a', 'older.b'];
  const w = await scriptedWorker((frame, reply, index) => {
    if (frame.type !== 'room.join') return;
    if (index === 0) for (const room of rooms) reply(joined(room));
    else if (frame.payload?.rooms) reply(refused('internal', frame));
    else if (frame.room === rooms[1]) reply(refused('forbidden', frame, rooms[1]));
    else reply(joined(frame.room));
  });
  const c = newClient(w.url);
  await c.connect();
  await Promise.all(rooms.map((room) => c.join(room)));

  w.drop();
  await waitFor(() => w.leaves().length === 1, { message: 'the leave' });
  assert.equal(w.leaves()[0].frame.room, rooms[1]);
  assert.equal(w.leaves()[0].index, 1);
  assert.deepEqual([...c.positions.keys()], [rooms[0]]);
});
