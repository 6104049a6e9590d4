// A room.left the client did not ask for: the worker removed the room (protocol §1.1: an auth.refresh whose token no
// longer grants it; reason `forbidden`). The room is no longer held: a join still waiting for its room.joined rejects
// with the reason, a held room ends, and neither is joined again on the next connection (the worker would refuse it).
// A real worker answers a narrowing refresh this way (Bridge.Tests ProbeRefresh, breaker s15); a scripted worker sends
// it on demand, over a real socket.
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

test('a room.left the client did not ask for ends the room: a pending join rejects, and neither room is joined again after a reconnect', async () => {
  const frames = [];
  const sockets = [];
  const { url, connections } = await scriptedServer((ws, index) => {
    sockets[index] = ws;
    ws.on('message', (data) => {
      const frame = JSON.parse(String(data));
      frames.push({ frame, index });
      // held.* is joined; pending.* is never answered (a join still in progress on the worker).
      const rooms = frame.type === 'room.join' ? (frame.room ? [frame.room] : frame.payload.rooms.map((r) => r.room)) : [];
      for (const room of rooms.filter((r) => r.startsWith('held.'))) {
        ws.send(JSON.stringify({ type: 'room.joined', room, seq: 3, payload: { replayed: 0, truncated: false } }));
      }
    });
  });
  client = new BridgeClient({ url, WebSocket, transports: ['websocket'], reconnect: { minDelayMs: 20, maxDelayMs: 80 } });
  const left = [];
  client.on('room.left', (env) => left.push(env.room));
  await client.connect();
  await client.join('held.keep');
  await client.join('held.gone');
  const pending = client.join('pending.gone');
  await waitFor(() => frames.some(({ frame }) => JSON.stringify(frame).includes('pending.gone')), { message: 'the pending join sent' });

  for (const room of ['held.gone', 'pending.gone']) {
    sockets[0].send(JSON.stringify({ type: 'room.left', room, payload: { reason: 'forbidden' } }));
  }

  await assert.rejects(
    Promise.race([pending, sleep(2000).then(() => { throw new Error('the pending join never settled'); })]),
    (e) => e.code === 'forbidden',
  );
  assert.deepEqual(left, ['held.gone', 'pending.gone'], 'the application is told');

  sockets[0].terminate();
  await waitFor(() => connections.length === 2 && frames.some(({ frame, index }) => index === 1 && JSON.stringify(frame).includes('held.keep')),
    { timeoutMs: 10_000, message: 'the held room rejoined' });
  await sleep(200);
  const rejoined = frames.filter(({ index, frame }) => index === 1 && frame.type === 'room.join').map(({ frame }) => JSON.stringify(frame));
  assert.ok(rejoined.every((f) => !f.includes('.gone')), `rooms the worker removed are not joined again: ${rejoined}`);
});
