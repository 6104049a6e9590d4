// Seq arithmetic at the bounds (issue 12): 0, 1, inside, the room's last seq, last + 1, 2^53 - 1 (the largest exact
// JavaScript integer), 2^53 + 1, 2^63 and 2^64 - 1, each as a `since` the application gives and as a seq the server
// sends. Against a real worker for the positions a stream can have, and a scripted WebSocket server on loopback for
// the ones no test stream reaches (a stream would need 2^53 messages).
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { decode as mpDecode, encode as mpEncode } from '@msgpack/msgpack';
import WebSocket, { WebSocketServer } from 'ws';
import { BridgeClient, isExactSeq, isPublishableType } from '../dist/index.js';
import { httpPublish, startNats, startWorker, waitFor } from './helpers/servers.mjs';

const MAX_EXACT = Number.MAX_SAFE_INTEGER; // 2^53 - 1

test('exact seqs are the integers from 0 to 2^53 - 1', () => {
  const table = [
    [0, true], [1, true], [MAX_EXACT, true], [MAX_EXACT + 1, false], [2 ** 63, false], [2 ** 64 - 1, false],
    [-1, false], [1.5, false], [Number.NaN, false], [Infinity, false], ['5', false], [5n, false], [undefined, false],
  ];
  for (const [value, exact] of table) assert.equal(isExactSeq(value), exact, `isExactSeq(${String(value)})`);
});

test('reserved types are matched ignoring case, as the server matches them (protocol §2)', () => {
  const table = [
    ['chat.message', true], ['Chat.Message', true], ['roomy.thing', true],
    ['room.join', false], ['ROOM.JOIN', false], ['Room.Joined', false], ['room.custom', false], ['ROOM.custom', false],
    ['welcome', false], ['WELCOME', false], ['Presence.Update', false], ['ack', false], ['Ack', false],
  ];
  for (const [type, ok] of table) assert.equal(isPublishableType(type), ok, `isPublishableType('${type}')`);
});

describe('since at the bounds, against a real worker', () => {
  let nats;
  let worker;
  const clients = [];
  // A fresh stream: the room's three messages are seqs 1, 2 and 3.
  const room = 'bounds.room';
  const last = 3;

  before(async () => {
    nats = await startNats();
    worker = await startWorker(nats.url, { settings: { 'Bridge:Connections:PollTimeout': '00:00:01' } });
    for (let i = 0; i < last; i++) await httpPublish(worker.url, room, { type: 'x.m', payload: i });
  });

  after(async () => {
    for (const c of clients) c.close();
    await worker?.stop('SIGKILL');
    await nats?.stop();
  });

  // since → replayed, truncated; every join ends at position `last`.
  const table = [
    [0, 3, false],
    [1, 2, false],
    [2, 1, false],
    [last, 0, false],
    [last + 1, 0, true],
    [MAX_EXACT, 0, true],
  ];
  const kinds = [
    ['websocket', 'json'],
    ['websocket', 'msgpack'],
    ['sse', 'json'],
    ['poll', 'json'],
  ];

  test('each transport replays what is after since, says truncated beyond the end, and is live from the real position', async () => {
    const joined = [];
    for (const [transport, format] of kinds) {
      for (const [since, replayed, truncated] of table) {
        const client = new BridgeClient({ url: worker.url, WebSocket, transports: [transport], format, reconnect: { minDelayMs: 100, maxDelayMs: 1000 } });
        clients.push(client);
        const seqs = [];
        client.on('x.m', (m) => seqs.push(m.seq));
        await client.connect();
        const result = await client.join(room, { since });
        const label = `${transport}/${format} since ${since}`;
        assert.deepEqual({ replayed: result.replayed, truncated: result.truncated, seq: result.seq }, { replayed, truncated, seq: last }, label);
        // Over poll, `replayed` counts the messages of the answer the join came with.
        assert.deepEqual(seqs, Array.from({ length: replayed }, (_, i) => last - replayed + 1 + i), label);
        joined.push({ label, seqs });
      }
    }

    const { seq: next } = await httpPublish(worker.url, room, { type: 'x.m', payload: 'next' });
    for (const { label, seqs } of joined) {
      await waitFor(() => seqs.includes(next), { timeoutMs: 15_000, message: `${label}: the next message` });
      assert.equal(seqs.filter((s) => s === next).length, 1, label);
    }
  });

  test('a since no JavaScript number holds exactly is refused before anything is sent', async () => {
    const client = new BridgeClient({ url: worker.url, WebSocket, transports: ['websocket'] });
    clients.push(client);
    await client.connect();
    for (const since of [MAX_EXACT + 1, 2 ** 63, 2 ** 64 - 1, -1, 1.5, Number.NaN]) {
      await assert.rejects(client.join(room, { since }), (e) => e.code === 'invalid_argument', `since ${since}`);
    }

    // The room was never asked for: a later join starts clean (live, with no since carried over).
    const result = await client.join(room);
    assert.deepEqual([result.replayed, result.truncated], [0, false]);
  });
});

describe('seqs beyond 2^53 from the server', () => {
  let server;
  let client;

  afterEach(async () => {
    client?.close();
    if (server) {
      for (const ws of server.clients) ws.terminate();
      await new Promise((r) => server.close(r));
    }
  });

  for (const format of ['json', 'msgpack']) {
    test(`are delivered, never taken for duplicates, and never become the resume position (${format})`, async () => {
      // JSON text carries the exact digits; MessagePack carries uint64.
      const seqText = ['9007199254740990', '9007199254740990', '9007199254740991', '9007199254740993', '9007199254740993', '9223372036854775808', '18446744073709551615'];
      const joins = [];
      server = new WebSocketServer({ host: '127.0.0.1', port: 0, handleProtocols: (p) => [...p][0] });
      server.on('connection', (ws) => {
        const send = (obj, seq) => {
          if (format === 'msgpack') ws.send(mpEncode({ ...obj, ...(seq ? { seq: BigInt(seq) } : {}) }, { useBigInt64: true }));
          else ws.send(JSON.stringify(obj).replace(/}$/, seq ? `,"seq":${seq}}` : '}'));
        };
        send({ type: 'welcome', payload: { connectionId: 'c', serverId: 'scripted', heartbeatMs: 30000, protocol: 1, user: 'u' } });
        ws.on('message', (data) => {
          const f = format === 'msgpack' ? mpDecode(data) : JSON.parse(String(data));
          if (f.type !== 'room.join') return;
          joins.push(f.payload?.since);
          if (joins.length > 1) return;
          send({ type: 'room.joined', room: f.room, payload: { replayed: 0, truncated: false } }, '9007199254740989');
          for (const seq of seqText) send({ type: 'm', room: f.room, payload: seq }, seq);
          setTimeout(() => ws.close(1012, 'service restart; reconnect_after_ms=0'), 50);
        });
      });
      await new Promise((r) => server.once('listening', r));
      client = new BridgeClient({ url: `http://127.0.0.1:${server.address().port}`, WebSocket, transports: ['websocket'], format, reconnect: { minDelayMs: 20, maxDelayMs: 50 } });
      const got = [];
      client.on('m', (m) => got.push(m.payload));
      await client.connect();
      await client.join('r');
      await waitFor(() => joins.length === 2, { message: 'the resume after 1012' });
      await sleep(50);
      // The exact duplicate is dropped; everything beyond 2^53 is delivered, repeats included (at least once).
      assert.deepEqual(got, ['9007199254740990', '9007199254740991', '9007199254740993', '9007199254740993', '9223372036854775808', '18446744073709551615']);
      // The resume asks from the last exact seq: nothing after it can be skipped.
      assert.deepEqual(joins, [undefined, MAX_EXACT]);
    });
  }
});
