// Frames a worker never sends, from a scripted server on loopback (a real socket): an envelope this client cannot read
// costs only itself, never the envelopes that came with it (a batch array, a poll answer), and an envelope field of
// the wrong kind is taken as absent rather than thrown on (a throw in the socket's message handler is an uncaught
// exception: it ended the Node process, or in a browser the rest of the array).
import assert from 'node:assert/strict';
import http from 'node:http';
import { afterEach, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { decode as mpDecode, encode as mpEncode } from '@msgpack/msgpack';
import WebSocket from 'ws';
import { BridgeClient } from '../dist/index.js';
import { scriptedServer, stopScriptedServers } from './helpers/scripted.mjs';
import { waitFor } from './helpers/servers.mjs';

let client;
let httpServer;
const uncaught = [];
const onUncaught = (e) => uncaught.push(String(e));

afterEach(async () => {
  process.off('uncaughtException', onUncaught);
  client?.close();
  client = undefined;
  await stopScriptedServers();
  await new Promise((r) => (httpServer ? httpServer.close(r) : r()));
  httpServer = undefined;
});

const message = (room, seq, extra = {}) => ({ type: 'chat', room, seq, ts: 1, payload: { n: seq }, ...extra });

test('a batch array with one unreadable element (a payload marked base64 that is not) delivers its other envelopes', async () => {
  const { url } = await scriptedServer((ws) => {
    ws.on('message', (data) => {
      const frame = JSON.parse(String(data));
      if (frame.type !== 'room.join') return;
      ws.send(JSON.stringify([{ type: 'room.joined', room: 'r', seq: 0, payload: { replayed: 0, truncated: false } }]));
      ws.send(JSON.stringify([message('r', 1), message('r', 2, { enc: 'base64', payload: '!!not base64' }), message('r', 3)]));
      ws.send(JSON.stringify([message('r', 4)]));
    });
  });
  client = new BridgeClient({ url, WebSocket, transports: ['websocket'] });
  const got = [];
  client.on('chat', (env) => got.push(env.seq));
  await client.connect();
  await client.join('r');
  await waitFor(() => got.includes(4), { message: 'message 4' });
  assert.deepEqual(got, [1, 3, 4]);
});

test('an envelope whose room is not a string, with a pattern held, is not thrown on; the messages after it arrive', async () => {
  process.on('uncaughtException', onUncaught);
  const { url } = await scriptedServer((ws) => {
    ws.on('message', (data) => {
      const frame = JSON.parse(String(data));
      if (frame.type !== 'room.join') return;
      ws.send(JSON.stringify([{ type: 'room.joined', room: frame.room, seq: 0, payload: { replayed: 0, truncated: false } }]));
      ws.send(JSON.stringify([message('p.a', 1), message(5, 2), message(['p.a'], 3), message('p.b', 4)]));
      ws.send(JSON.stringify([message('p.a', 5)]));
    });
  });
  client = new BridgeClient({ url, WebSocket, transports: ['websocket'] });
  const got = [];
  client.on('*', (env) => got.push(`${env.room}:${env.seq}`));
  await client.connect();
  await client.join('p.*');
  await waitFor(() => got.includes('p.a:5') || uncaught.length > 0, { message: 'message 5' });
  assert.deepEqual(uncaught, []);
  assert.deepEqual(got, ['p.a:1', 'p.b:4', 'p.a:5']);
});

test('a poll answer with one unreadable message, and answers of the wrong shape, deliver what they can and keep polling', async () => {
  process.on('uncaughtException', onUncaught);
  const unhandled = [];
  const onUnhandled = (e) => unhandled.push(String(e));
  process.on('unhandledRejection', onUnhandled);
  const answers = [
    { cursor: '3', messages: [message('r', 1), message('r', 2, { enc: 'base64', payload: '!!' }), message('r', 3)], errors: [], truncated: [] },
    { cursor: 4, messages: { not: 'an array' }, errors: 'no', truncated: 7 },
    null,
    { cursor: '5', messages: [message('r', 4), message('r', 5)], errors: [], truncated: [] },
  ];
  let polls = 0;
  httpServer = http.createServer((req, res) => {
    if (req.url.startsWith('/healthz')) return res.end('ok');
    const answer = polls < answers.length ? answers[polls] : { cursor: '5', messages: [], errors: [], truncated: [] };
    polls++;
    const send = () => {
      res.setHeader('Content-Type', 'application/json');
      res.end(JSON.stringify(answer));
    };
    if (polls > answers.length) setTimeout(send, 200);
    else send();
  });
  await new Promise((r) => httpServer.listen(0, '127.0.0.1', r));
  client = new BridgeClient({ url: `http://127.0.0.1:${httpServer.address().port}`, transports: ['poll'] });
  const got = [];
  client.on('chat', (env) => got.push(env.seq));
  try {
    await client.connect();
    await client.join('r');
    await waitFor(() => got.includes(5) || unhandled.length > 0 || uncaught.length > 0, { message: 'message 5' });
    await sleep(100);
  } finally {
    process.off('unhandledRejection', onUnhandled);
  }
  assert.deepEqual([...uncaught, ...unhandled], []);
  assert.deepEqual(got, [1, 3, 4, 5]);
});

test('each message the client cannot read is told to onSkipped with its size and place; the others arrive, the connection stays', async () => {
  const notJson = '{"type":"chat",';
  const batch = JSON.stringify([message('r', 1), { no: 'type' }, message('r', 2)]);
  const { url } = await scriptedServer((ws) => {
    ws.on('message', (data) => {
      const frame = JSON.parse(String(data));
      if (frame.type !== 'room.join') return;
      ws.send(JSON.stringify([{ type: 'room.joined', room: 'r', seq: 0, payload: { replayed: 0, truncated: false } }]));
      ws.send(notJson);
      ws.send(batch);
      ws.send(JSON.stringify([message('r', 3)]));
    });
  });
  client = new BridgeClient({ url, WebSocket, transports: ['websocket'] });
  const got = [];
  const skipped = [];
  const states = [];
  client.on('chat', (env) => got.push(env.seq));
  client.onSkipped((s) => skipped.push(s));
  client.onState((s) => states.push(s.state));
  await client.connect();
  await client.join('r');
  await waitFor(() => got.includes(3), { message: 'message 3' });
  assert.deepEqual(got, [1, 2, 3]);
  assert.equal(skipped.length, 2, JSON.stringify(skipped));
  assert.equal(skipped[0].transport, 'websocket');
  assert.equal(skipped[0].bytes, Buffer.byteLength(notJson));
  assert.equal('index' in skipped[0], false, 'the whole message was left out');
  assert.match(skipped[0].reason, /malformed JSON/);
  assert.deepEqual({ ...skipped[1], reason: undefined }, { transport: 'websocket', bytes: Buffer.byteLength(batch), index: 1, reason: undefined });
  assert.match(skipped[1].reason, /not an envelope/);
  assert.deepEqual(states, ['connecting', 'open'], 'the connection stayed');
});

test('MessagePack: bytes that are not MessagePack are told to onSkipped whole; the connection goes on', async () => {
  const junk = Uint8Array.from([0xc1, 0x01, 0x02]); // 0xc1 starts no MessagePack value
  const { url } = await scriptedServer((ws) => {
    ws.on('message', (data) => {
      const frame = mpDecode(data);
      if (frame.type !== 'room.join') return;
      ws.send(mpEncode([{ type: 'room.joined', room: 'r', seq: 0, payload: { replayed: 0, truncated: false } }]));
      ws.send(junk);
      ws.send(mpEncode([message('r', 1)]));
    });
  });
  client = new BridgeClient({ url, WebSocket, format: 'msgpack', transports: ['websocket'] });
  const got = [];
  const skipped = [];
  client.on('chat', (env) => got.push(env.seq));
  client.onSkipped((s) => skipped.push(s));
  await client.connect();
  await client.join('r');
  await waitFor(() => got.includes(1), { message: 'message 1' });
  assert.equal(skipped.length, 1, JSON.stringify(skipped));
  assert.equal(skipped[0].bytes, 3);
  assert.equal('index' in skipped[0], false);
  assert.match(skipped[0].reason, /MessagePack/);
});

test('MessagePack: an envelope field the decoder refuses is left out, not the message: it arrives with its type, room, seq and payload', async () => {
  // `from` a map with a key __proto__ (the decoder refuses it), an unknown key whose value has a nil key, and a key
  // that is not a string: a worker writes none of these, so only the readable fields matter.
  const proto = JSON.parse('{"__proto__":1}');
  const nilKeyMap = Uint8Array.from([0x81, 0xc0, 0x01]);
  const odd = (seq) => Buffer.concat([
    Buffer.from([0x88]), // a map of 8
    mpEncode('type'), mpEncode('chat'),
    mpEncode('room'), mpEncode('r'),
    mpEncode('seq'), mpEncode(seq),
    mpEncode('ts'), mpEncode(5),
    mpEncode('from'), mpEncode(proto),
    mpEncode('meta'), nilKeyMap,
    mpEncode(7), mpEncode('a key that is not a string'),
    mpEncode('payload'), mpEncode({ n: seq }),
  ]);
  assert.throws(() => mpDecode(odd(2)), 'the decoder does refuse it (else this test proves nothing)');
  const { url } = await scriptedServer((ws) => {
    ws.on('message', (data) => {
      const frame = mpDecode(data);
      if (frame.type !== 'room.join') return;
      ws.send(mpEncode({ type: 'room.joined', room: 'r', seq: 0, payload: { replayed: 0, truncated: false } }));
      ws.send(mpEncode(message('r', 1)));
      ws.send(odd(2)); // a plain message...
      ws.send(Buffer.concat([Buffer.from([0x92]), mpEncode(message('r', 3)), odd(4)])); // ...and in a batch array
      ws.send(mpEncode(message('r', 5)));
    });
  });
  client = new BridgeClient({ url, WebSocket, format: 'msgpack', transports: ['websocket'] });
  const got = [];
  const skipped = [];
  client.on('*', (env) => got.push(env));
  client.onSkipped((s) => skipped.push(s));
  await client.connect();
  await client.join('r');
  await waitFor(() => got.some((m) => m.seq === 5), { message: 'message 5' });
  assert.deepEqual(got.map((m) => m.seq), [1, 2, 3, 4, 5]);
  for (const seq of [2, 4]) {
    assert.deepEqual({ ...got[seq - 1] }, { type: 'chat', room: 'r', seq, ts: 5, payload: { n: seq } });
  }
  assert.deepEqual(skipped, []);
});

test('a truncated resume of a room sends room.sync; of a pattern it sends none (room.sync reads one room) and tells the application', async () => {
  const frames = [];
  const { url } = await scriptedServer((ws) => {
    ws.on('message', (data) => {
      const frame = JSON.parse(String(data));
      frames.push(frame);
      if (frame.type === 'room.join') {
        ws.send(JSON.stringify({ type: 'room.joined', room: frame.room, seq: 9, payload: { replayed: 0, truncated: true } }));
      } else if (frame.type === 'room.sync') {
        ws.send(JSON.stringify({ type: 'room.state', room: frame.room, seq: 9, payload: { messages: [] } }));
      }
    });
  });
  client = new BridgeClient({ url, WebSocket, transports: ['websocket'] });
  const syncs = [];
  const sync = client.sync.bind(client);
  client.sync = (room, limit) => {
    syncs.push(room);
    return sync(room, limit);
  };
  const joinedEvents = [];
  client.on('room.joined', (env) => joinedEvents.push(`${env.room}:${env.payload.truncated}`));
  await client.connect();
  const pattern = await client.join('p.*', { since: 3 });
  const room = await client.join('r', { since: 3 });
  assert.equal(pattern.truncated, true);
  assert.equal(room.truncated, true);
  await waitFor(() => frames.some((f) => f.type === 'room.sync'), { message: "the room's room.sync" });
  await sleep(100);
  assert.deepEqual(frames.filter((f) => f.type === 'room.sync').map((f) => f.room), ['r']);
  assert.deepEqual(syncs, ['r'], 'no sync of the pattern was attempted (the client would refuse it: invalid_room)');
  assert.deepEqual(joinedEvents, ['p.*:true', 'r:true'], 'the application is told through room.joined');
});
