// What a connected client sends stays within the worker's limits, against real workers and nats-server (the frames
// each connection sends are recorded on its WebSocket): a publish over the worker's smaller maxFrameBytes (welcome)
// fails frame_too_big and is never sent (the worker would close with 1009, and the resend loop with it), and joins
// made in the same tick go out in batch room.join frames (protocol §4, §12), each join answered for its own room.
import assert from 'node:assert/strict';
import { after, afterEach, before, test } from 'node:test';
import { recordingClient, recordingSocket } from './helpers/recorder.mjs';
import { startNats, startWorker, uniqueRoom, waitFor } from './helpers/servers.mjs';
import { hs256Token } from './helpers/tokens.mjs';

const SMALL_FRAME_BYTES = 16_384; // the worker's MaxFrameBytes, below the client's default 65,536
const BIG_PAYLOAD = { text: 'x'.repeat(32 * 1024) }; // over the worker's limit, within the client's
const WAIT = { timeoutMs: 60_000, intervalMs: 50 };
const SECRET = 'connected-limits-test-secret-of-at-least-32-bytes';

let nats;
let small;
const clients = [];
const workers = [];

before(async () => {
  nats = await startNats();
  small = await startWorker(nats.url, { settings: { 'Bridge:Connections:MaxFrameBytes': SMALL_FRAME_BYTES } });
});

afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await Promise.all(workers.splice(0).map((w) => w.stop('SIGKILL')));
});

after(async () => {
  await small?.stop('SIGKILL');
  await nats?.stop();
});

function client(url, format = 'json', options = {}) {
  const ws = recordingSocket(format);
  const r = recordingClient(url, { format, WebSocket: ws.WebSocket, transports: ['websocket'], ...options });
  clients.push(r.client);
  return { ...r, sockets: ws.sockets };
}

/** `promise`'s outcome, or a rejection naming `what` after 20 s (a publish resent in a loop never settles). */
function within(promise, what) {
  let timer;
  const late = new Promise((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: not settled in 20 s`)), 20_000)));
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

/** The frames of `type` every connection of `c` sent. */
function sent(c, type) {
  return c.sockets.flatMap((s) => s.sent.filter(({ frame }) => frame.type === type));
}

test('a publish over the worker\'s smaller maxFrameBytes rejects with frame_too_big unsent, the connection stays, and the next publish is delivered', async () => {
  const c = client(small.url);
  await c.client.connect();
  const room = uniqueRoom('big');
  await c.client.join(room);
  assert.equal(c.client.welcome.maxFrameBytes, SMALL_FRAME_BYTES);

  await assert.rejects(within(c.client.send('t.big', room, BIG_PAYLOAD), 'the big publish'), (e) => {
    assert.equal(e.code, 'frame_too_big');
    assert.match(e.message, new RegExp(String(SMALL_FRAME_BYTES)));
    return true;
  });
  const ack = await within(c.client.send('t.small', room, { n: 1 }), 'the small publish');

  await waitFor(() => c.messages.some((m) => m.room === room && m.seq === ack.seq), { ...WAIT, message: 'the small message' });
  assert.deepEqual(sent(c, 't.big'), [], 'the big publish was never sent');
  assert.equal(c.sockets.length, 1, 'one connection: no 1009 close, no reconnect');
  assert.ok(!c.states.some((s) => s.state === 'reconnecting'), JSON.stringify(c.states));
});

test('a publish queued before the welcome and over the worker\'s maxFrameBytes rejects with frame_too_big when due, and the publish behind it is delivered', async () => {
  const c = client(small.url, 'msgpack');
  const room = uniqueRoom('queued');
  // Made before the connection: the client's own 64 KiB is all it knows, so both are queued.
  const joined = c.client.join(room);
  const big = within(c.client.send('t.big', room, BIG_PAYLOAD), 'the big publish');
  const next = within(c.client.send('t.small', room, { n: 1 }), 'the small publish');
  big.catch(() => undefined);
  await c.client.connect();
  await joined;

  await assert.rejects(big, (e) => e.code === 'frame_too_big');
  const ack = await next;

  await waitFor(() => c.messages.some((m) => m.room === room && m.seq === ack.seq), { ...WAIT, message: 'the small message' });
  assert.deepEqual(sent(c, 't.big'), []);
  assert.equal(c.sockets.length, 1);
  assert.ok(!c.states.some((s) => s.state === 'reconnecting'), JSON.stringify(c.states));
  assert.equal(c.client.pending, 0);
});

test('300 joins made in one tick while connected go out in batch frames, and each resolves with its own room.joined', async () => {
  const w = await startWorker(nats.url);
  workers.push(w);
  const c = client(w.url);
  await c.client.connect();
  const prefix = uniqueRoom('tick');
  const rooms = Array.from({ length: 300 }, (_, i) => `${prefix}.r${i}`);

  const results = await within(Promise.all(rooms.map((room) => c.client.join(room))), 'the 300 joins');

  assert.deepEqual(results.map((r) => r.room), rooms);
  const joins = sent(c, 'room.join');
  assert.ok(joins.length < rooms.length / 10, `${joins.length} join frames for ${rooms.length} rooms`);
  const entries = joins.flatMap(({ frame }) => (frame.room === undefined ? frame.payload.rooms.map((e) => e.room) : [frame.room]));
  assert.deepEqual(entries.sort(), [...rooms].sort(), 'each room in one frame, once');

  // A join on its own stays a single join frame.
  const one = `${prefix}.one`;
  assert.equal((await c.client.join(one)).room, one);
  assert.deepEqual(sent(c, 'room.join').at(-1).frame.room, one);
});

test('a room the token does not grant among joins made in one tick rejects just that join with forbidden; the others resolve', async () => {
  const w = await startWorker(nats.url, { settings: { 'Bridge:Auth:HmacSecret': SECRET } });
  workers.push(w);
  const prefix = uniqueRoom('grant');
  const c = client(w.url, 'json', { token: hs256Token(SECRET, { sub: 'ann', sub_rooms: [`${prefix}.ok.>`] }) });
  await c.client.connect();
  const rooms = Array.from({ length: 20 }, (_, i) => `${prefix}.ok.r${i}`);
  const refused = `${prefix}.no`;
  rooms.splice(10, 0, refused);

  const outcomes = await within(Promise.allSettled(rooms.map((room) => c.client.join(room))), 'the joins');

  for (const [i, room] of rooms.entries()) {
    if (room === refused) {
      assert.equal(outcomes[i].status, 'rejected');
      assert.equal(outcomes[i].reason.code, 'forbidden');
    } else {
      assert.equal(outcomes[i].status, 'fulfilled', `${room}: ${outcomes[i].reason}`);
      assert.equal(outcomes[i].value.room, room);
    }
  }
  assert.equal(sent(c, 'room.join').length, 1, 'one batch frame, no single join after it');
  assert.ok(!c.client.positions.has(refused), 'the refused room ended');
  assert.equal(c.client.positions.size, 20);
});

test('a join and then a publish to that room made in one tick go out in that order, and the sender gets its own message', async () => {
  const c = client(small.url);
  await c.client.connect();
  const room = uniqueRoom('order');

  const joined = c.client.join(room);
  const ack = await within(c.client.send('t.mine', room, { n: 1 }), 'the publish');
  await within(joined, 'the join');

  const order = c.sockets[0].sent.map(({ frame }) => frame.type).filter((type) => type === 'room.join' || type === 't.mine');
  assert.deepEqual(order, ['room.join', 't.mine']);
  // The worker holds the publish until the join has taken its seam, so it comes live (docs/protocol.md §4, room.join).
  await waitFor(() => c.messages.some((m) => m.room === room && m.seq === ack.seq), { ...WAIT, message: 'the own message' });
});

test('a join and then a leave of that room made in one tick send neither frame: the join rejects with left, the leave resolves, and no error comes', async () => {
  const c = client(small.url);
  const errors = [];
  c.client.on('error', (e) => errors.push(e));
  await c.client.connect();
  const room = uniqueRoom('gone');
  const other = uniqueRoom('kept');

  const joined = c.client.join(room).then(() => 'joined', (e) => e.code);
  const left = c.client.leave(room);
  const kept = c.client.join(other); // a join of the same tick that stays goes out as usual

  assert.equal(await joined, 'left');
  await left;
  assert.equal((await within(kept, 'the other join')).room, other);
  // A sync answered after both shows that the worker has read every frame sent before it.
  await within(c.client.sync(other), 'the sync');
  assert.deepEqual(c.sockets[0].sent.filter(({ frame }) => frame.room === room || frame.payload?.rooms?.some((e) => e.room === room)), []);
  assert.deepEqual(errors, []);
  assert.ok(!c.client.positions.has(room));
});

test('a publish over the last worker\'s maxFrameBytes made while reconnecting is queued, and goes out to a next worker with a larger limit', async () => {
  const first = await startWorker(nats.url, { settings: { 'Bridge:Connections:MaxFrameBytes': SMALL_FRAME_BYTES } });
  workers.push(first);
  const c = client(first.url);
  await c.client.connect();
  const room = uniqueRoom('between');
  await c.client.join(room);
  assert.equal(c.client.welcome.maxFrameBytes, SMALL_FRAME_BYTES);
  await first.stop('SIGKILL');
  await waitFor(() => c.client.state === 'reconnecting', { ...WAIT, message: 'reconnecting' });

  // Over the old worker's 16 KiB, within the client's 64 KiB: the next worker decides.
  const big = within(c.client.send('t.big', room, BIG_PAYLOAD), 'the big publish');
  const settled = await Promise.race([big.then(() => 'settled', (e) => e.code), new Promise((r) => setTimeout(() => r('queued'), 200))]);
  assert.equal(settled, 'queued');
  assert.equal(c.client.pending, 1);
  const next = await startWorker(nats.url, { port: first.port }); // the default 64 KiB
  workers.push(next);

  const ack = await big;
  await waitFor(() => c.messages.some((m) => m.room === room && m.seq === ack.seq), { ...WAIT, message: 'the big message' });
});

test('a publish is sent as it was when made: a payload object grown past the worker\'s limit while queued is delivered at its size then', async () => {
  const c = client(small.url);
  const room = uniqueRoom('mutated');
  const state = { text: 'small' };
  const joined = c.client.join(room);
  const sent1 = within(c.client.send('t.state', room, state), 'the publish');
  state.text = 'x'.repeat(32 * 1024); // the application keeps changing its object while the send waits
  await c.client.connect();
  await joined;

  const ack = await sent1;
  await waitFor(() => c.messages.some((m) => m.room === room && m.seq === ack.seq), { ...WAIT, message: 'the message' });
  assert.deepEqual(c.messages.find((m) => m.room === room && m.seq === ack.seq).payload, { text: 'small' });
  assert.equal(c.sockets.length, 1, 'one connection: no 1009 close, no reconnect');
});

test('a MessagePack binary publish is held to its MessagePack size: one whose JSON (base64) would be over the worker\'s limit is delivered', async () => {
  const c = client(small.url, 'msgpack');
  await c.client.connect();
  const room = uniqueRoom('binary');
  await c.client.join(room);
  const payload = new Uint8Array(13 * 1024).map((_, i) => i % 251); // ~13 KiB as bin, ~17.4 KiB as base64 JSON

  const ack = await within(c.client.send('t.bin', room, payload), 'the binary publish');

  await waitFor(() => c.messages.some((m) => m.room === room && m.seq === ack.seq), { ...WAIT, message: 'the binary message' });
  assert.deepEqual(c.messages.find((m) => m.room === room && m.seq === ack.seq).payload, payload);
  assert.ok(sent(c, 't.bin')[0].bytes <= SMALL_FRAME_BYTES);
});
