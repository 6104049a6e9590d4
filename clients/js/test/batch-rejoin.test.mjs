// A reconnecting client rejoins its rooms in batch room.join frames of at most 1,000 entries (the worker's default
// MaxRoomsPerConnection, past which a batch is refused whole) and within maxFrameBytes (past which the worker closes
// with 1009), against a real worker and nats-server. The frames the client sends are recorded on its WebSocket.
import assert from 'node:assert/strict';
import { after, afterEach, before, test } from 'node:test';
import { recordingClient, recordingSocket } from './helpers/recorder.mjs';
import { httpPublish, startNats, startWorker, uniqueRoom, waitFor } from './helpers/servers.mjs';

const MAX_FRAME_BYTES = 65_536; // the worker's and the client's default
const SMALL_FRAME_BYTES = 16_384; // a worker's MaxFrameBytes below the client's default
const WAIT = { timeoutMs: 90_000, intervalMs: 50 };

let nats;
let worker;
const clients = [];

before(async () => {
  nats = await startNats();
  // Room for a client holding more rooms than one batch may list (protocol §4: a batch's entries are bounded by it).
  worker = await startWorker(nats.url, { settings: { 'Bridge:Connections:MaxRoomsPerConnection': 2000 } });
});

afterEach(() => {
  for (const c of clients.splice(0)) c.close();
});

after(async () => {
  await worker?.stop('SIGKILL');
  await nats?.stop();
});

/**
 * Joins `rooms` (asked before connecting: the first connection joins them in batch frames too; one by one they would
 * run into the worker's frame rate limit), drops the connection (the socket dies without a close frame: 1006), and waits until the
 * next connection has joined every room again, on the file's worker or `on`. Returns that connection's join frames and
 * the errors seen meanwhile.
 */
async function rejoinAfterDrop(format, rooms, on = worker) {
  const ws = recordingSocket(format);
  const r = recordingClient(on.url, { format, WebSocket: ws.WebSocket, transports: ['websocket'] });
  clients.push(r.client);
  const joined = Promise.all(rooms.map((room) => r.client.join(room)));
  await r.client.connect();
  let joinedAll = false;
  joined.then(() => (joinedAll = true), () => undefined);
  await waitFor(() => joinedAll, { ...WAIT, message: 'the rooms joined on the first connection' });

  const rejoined = new Set();
  const errors = [];
  r.client.on('room.joined', (env) => rejoined.add(env.room));
  r.client.on('error', (env) => errors.push(env.payload));
  const first = ws.sockets.at(-1);
  first.terminate();
  await waitFor(() => ws.sockets.length > 1 && r.client.state === 'open', { ...WAIT, message: 'the reconnect' });
  await waitFor(() => rejoined.size === rooms.length, { ...WAIT, message: `every room joined again (${rejoined.size} of ${rooms.length})` });
  assert.equal(ws.sockets.length, 2, 'one reconnect, not a close (1009) and another');

  const joins = ws.sockets[1].sent.filter((s) => s.frame.type === 'room.join');
  return { client: r, joins, errors };
}

/** Each room of `rooms` once across the batch frames `joins`, none of which is a single join. */
function assertBatchesCoverEachRoomOnce(joins, rooms) {
  for (const { frame } of joins) assert.equal(frame.room, undefined, 'a batch frame has no room');
  const entries = joins.flatMap(({ frame }) => frame.payload.rooms.map((e) => e.room));
  assert.equal(entries.length, rooms.length);
  assert.deepEqual(new Set(entries), new Set(rooms));
}

/** The first and last rooms take a message published after the rejoin: both batches' rooms are live again. */
async function assertLive(r, rooms, on = worker) {
  for (const room of [rooms[0], rooms.at(-1)]) {
    const { seq } = await httpPublish(on.url, room, { type: 'chat.message', payload: { room } });
    await waitFor(() => r.messages.some((m) => m.room === room && m.seq === seq), { ...WAIT, message: `the message of ${room}` });
  }
}

test('a client holding 1,200 rooms rejoins them all after a reconnect in batch frames of at most 1,000 entries, without too_many_rooms', async () => {
  const prefix = uniqueRoom('many');
  const rooms = Array.from({ length: 1200 }, (_, i) => `${prefix}.r${i}`);

  const { client, joins, errors } = await rejoinAfterDrop('json', rooms);

  assert.ok(joins.length >= 2, `${joins.length} join frame(s) for ${rooms.length} rooms`);
  for (const { frame } of joins) {
    assert.ok(frame.payload.rooms.length <= 1000, `a batch of ${frame.payload.rooms.length} entries`);
  }
  assertBatchesCoverEachRoomOnce(joins, rooms);
  assert.deepEqual(errors, [], 'no error (too_many_rooms) on the rejoin');
  await assertLive(client, rooms);
});

for (const format of ['json', 'msgpack']) {
  test(`rooms with long names that do not fit in one frame rejoin in several batch frames within maxFrameBytes (${format})`, async () => {
    // 128-character names (the longest allowed): 700 entries are ~90 KB, over the worker's 64 KiB frame limit.
    const prefix = uniqueRoom(`long${format}`);
    const rooms = Array.from({ length: 700 }, (_, i) => `${prefix}.${String(i).padStart(4, '0')}`.padEnd(128, 'x'));
    assert.ok(rooms.reduce((n, room) => n + room.length + 12, 0) > MAX_FRAME_BYTES, 'the rooms do not fit in one frame');

    const { client, joins, errors } = await rejoinAfterDrop(format, rooms);

    assert.ok(joins.length >= 2, `${joins.length} join frame(s): the rooms do not fit in one of ${MAX_FRAME_BYTES} bytes`);
    for (const { bytes } of joins) assert.ok(bytes <= MAX_FRAME_BYTES, `a join frame of ${bytes} bytes`);
    assertBatchesCoverEachRoomOnce(joins, rooms);
    assert.deepEqual(errors, []);
    await assertLive(client, rooms);
  });
}

test('a worker whose MaxFrameBytes is below the client\'s maxFrameBytes gets rejoin frames within its own limit (welcome.maxFrameBytes), not a 1009 close', async () => {
  const small = await startWorker(nats.url, { settings: { 'Bridge:Connections:MaxFrameBytes': SMALL_FRAME_BYTES } });
  try {
    // 400 rooms of 64-character names: ~29 KB of entries, over the worker's 16 KiB and within the client's 64 KiB.
    const prefix = uniqueRoom('small');
    const rooms = Array.from({ length: 400 }, (_, i) => `${prefix}.${String(i).padStart(4, '0')}`.padEnd(64, 'x'));
    assert.ok(rooms.reduce((n, room) => n + room.length + 12, 0) > SMALL_FRAME_BYTES, 'the rooms do not fit in one frame');

    const { client, joins, errors } = await rejoinAfterDrop('json', rooms, small);

    assert.equal(client.client.welcome.maxFrameBytes, SMALL_FRAME_BYTES);
    assert.ok(joins.length >= 2, `${joins.length} join frame(s): the rooms do not fit in one of ${SMALL_FRAME_BYTES} bytes`);
    for (const { bytes } of joins) assert.ok(bytes <= SMALL_FRAME_BYTES, `a join frame of ${bytes} bytes`);
    assertBatchesCoverEachRoomOnce(joins, rooms);
    assert.deepEqual(errors, []);
    await assertLive(client, rooms, small);
  } finally {
    await small.stop('SIGKILL');
  }
});
