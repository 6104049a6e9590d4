// Errors on a batch room.join name their room (docs/protocol.md §4), and welcome says the worker's
// MaxRoomsPerConnection: a reconnecting client ends just the refused rooms, keeps the others joining, and never sends
// more frames than the worker's rate limit lets through (50 frames/s, burst 100) nor more entries than its room limit.
// Against real workers and nats-server; the frames the client sends are recorded on its WebSocket.
import assert from 'node:assert/strict';
import { after, afterEach, before, test } from 'node:test';
import { recordingClient, recordingSocket } from './helpers/recorder.mjs';
import { startNats, startWorker, uniqueRoom, waitFor } from './helpers/servers.mjs';
import { hs256Token } from './helpers/tokens.mjs';

const WAIT = { timeoutMs: 90_000, intervalMs: 50 };
const SECRET = 'batch-errors-test-secret-of-at-least-32-bytes';

let nats;
const clients = [];
const workers = [];

before(async () => {
  nats = await startNats();
});

afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await Promise.all(workers.splice(0).map((w) => w.stop('SIGKILL')));
});

after(async () => {
  await nats?.stop();
});

async function worker(options) {
  const w = await startWorker(nats.url, options);
  workers.push(w);
  return w;
}

/** A client over a recording WebSocket that joins `rooms` (in batch frames, before connecting) and waits for them all. */
async function joinedClient(url, rooms, options = {}) {
  const ws = recordingSocket('json');
  const r = recordingClient(url, { WebSocket: ws.WebSocket, transports: ['websocket'], ...options });
  clients.push(r.client);
  let joinedAll = false;
  Promise.all(rooms.map((room) => r.client.join(room))).then(() => (joinedAll = true), () => undefined);
  await r.client.connect();
  await waitFor(() => joinedAll, { ...WAIT, message: 'the rooms joined on the first connection' });
  const rejoined = new Set();
  const errors = [];
  r.client.on('room.joined', (env) => rejoined.add(env.room));
  r.client.on('error', (env) => errors.push(env));
  return { client: r.client, sockets: ws.sockets, rejoined, errors };
}

/** The room.join frames sent on every connection after the first one, and the entries each lists. */
function rejoinFrames(sockets) {
  return sockets.slice(1).flatMap((s) => s.sent.filter(({ frame }) => frame.type === 'room.join'))
    .map(({ frame }) => ({ frame, entries: frame.room === undefined ? frame.payload.rooms.map((e) => e.room) : [frame.room] }));
}

test('a client holding 160 rooms that reconnects with a token no longer granting one ends just that room (forbidden, naming it) and rejoins the others without rate_limited', async () => {
  const w = await worker({ settings: { 'Bridge:Auth:HmacSecret': SECRET } });
  const prefix = uniqueRoom('grant');
  const user = `u-${prefix.replaceAll('.', '-')}`;
  const rooms = Array.from({ length: 159 }, (_, i) => `${prefix}.ok.r${i}`);
  const gone = `${prefix}.gone`;
  rooms.splice(80, 0, gone); // in the middle of the batch
  let bannedAt;
  const getToken = async () => {
    // Tokens issued in the ban's second are refused too (`iat` has one-second resolution, protocol §13).
    await waitFor(() => Math.floor(Date.now() / 1000) > Math.floor(bannedAt / 1000), { message: 'the second after the ban' });
    return hs256Token(SECRET, { sub: user, sub_rooms: [`${prefix}.ok.>`] });
  };
  const c = await joinedClient(w.url, rooms, { token: hs256Token(SECRET, { sub: user, sub_rooms: [`${prefix}.>`] }), getToken });

  // The ban closes the connection with 4003; the client takes a new token from getToken and rejoins every room.
  const res = await fetch(`${w.url}/api/backend/ban`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${hs256Token(SECRET, { sub: 'admin', bridge_admin: true })}` },
    body: JSON.stringify({ user, ttl_seconds: 60 }),
  });
  assert.equal(res.status, 200, await res.clone().text());
  bannedAt = (await res.json()).banned_at;

  await waitFor(() => c.rejoined.size === rooms.length - 1 && c.errors.length > 0, { ...WAIT, message: `the rooms joined again (${c.rejoined.size})` });
  assert.deepEqual(c.errors.map((e) => [e.payload.code, e.room]), [['forbidden', gone]]);
  assert.ok(!c.rejoined.has(gone));
  assert.deepEqual([...c.client.positions.keys()].sort(), rooms.filter((r) => r !== gone).sort(), 'the refused room ended, the others are held');
  assert.equal(rejoinFrames(c.sockets).length, 1, 'the rooms rejoined in one batch frame, no single join after it');
});

test('a worker allowing 100 rooms per connection: a client holding 120 rejoins 100 in frames of at most 100 entries and ends 20 with too_many_rooms naming each, without rate_limited', async () => {
  const first = await worker({ settings: { 'Bridge:Connections:MaxRoomsPerConnection': 1000 } });
  const prefix = uniqueRoom('limit');
  const rooms = Array.from({ length: 120 }, (_, i) => `${prefix}.r${i}`);
  const c = await joinedClient(first.url, rooms);

  // The worker restarts on the same port with a lower limit (a deploy); the client reconnects to it (1012).
  await first.stop('SIGTERM');
  await worker({ port: first.port, settings: { 'Bridge:Connections:MaxRoomsPerConnection': 100 } });
  await waitFor(() => c.rejoined.size + c.errors.length >= rooms.length, { ...WAIT, message: `the rejoin (${c.rejoined.size} joined, ${c.errors.length} errors)` });

  assert.equal(c.client.welcome.maxRoomsPerConnection, 100);
  const frames = rejoinFrames(c.sockets);
  for (const { entries } of frames) assert.ok(entries.length <= 100, `a join frame of ${entries.length} entries`);
  assert.equal(c.rejoined.size, 100);
  assert.ok(c.errors.every((e) => e.payload.code === 'too_many_rooms'), JSON.stringify(c.errors.map((e) => e.payload)));
  const refused = c.errors.map((e) => e.room);
  assert.equal(new Set(refused).size, 20, 'each of the 20 refused rooms named once');
  assert.ok(refused.every((room) => rooms.includes(room) && !c.rejoined.has(room)));
  assert.equal(c.client.positions.size, 100, 'the refused rooms ended, the others are held');
  assert.equal(frames.length, 2, 'two batch frames (100 and 20 entries), no single join after them');
});
