// Payloads the MessagePack decoder refuses, which the worker stores and sends as they are (protocol §3, §10): a map key
// `__proto__` (any JSON client may publish one; @msgpack/msgpack refuses it against prototype pollution) and a map key
// that is neither a string nor a number (a backend's MessagePack on NATS). Such a payload once made the whole WebSocket
// message unreadable: a batch array (a replay page, or live messages sent together) lost every envelope in it, and the
// room's position then moved past them on the next message, so they were never asked for again. Against a real worker:
// every message arrives once, in order, on replay and live; the refused payloads as their MessagePack bytes.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import net from 'node:net';
import { decode as mpDecode } from '@msgpack/msgpack';
import WebSocket from 'ws';
import { BridgeClient } from '../dist/index.js';
import { httpPublish, startNats, startWorker, uniqueRoom, waitFor } from './helpers/servers.mjs';

let nats;
let worker;
const clients = [];

before(async () => {
  nats = await startNats();
  worker = await startWorker(nats.url);
});

after(async () => {
  for (const c of clients) c.close();
  await worker?.stop('SIGKILL');
  await nats?.stop();
});

/** A backend's publish straight to NATS (raw protocol: HPUB), with the headers given. */
async function natsPublish(subject, headers, body) {
  const url = new URL(nats.url);
  const socket = net.connect(Number(url.port), url.hostname);
  await new Promise((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  const head = Buffer.from(`NATS/1.0\r\n${Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n`);
  const pong = new Promise((resolve) => {
    let seen = '';
    socket.on('data', (d) => {
      seen += d;
      if (seen.includes('PONG')) resolve();
    });
  });
  socket.write('CONNECT {"verbose":false,"headers":true,"protocol":1}\r\n');
  socket.write(`HPUB ${subject} ${head.length} ${head.length + body.length}\r\n`);
  socket.write(Buffer.concat([head, Buffer.from(body), Buffer.from('\r\nPING\r\n')]));
  await pong;
  socket.end();
}

// {nil: 1}: a map whose key is nil.
const NIL_KEY = Uint8Array.from([0x81, 0xc0, 0x01]);

/** Publishes n.1, a {"__proto__": …} payload, n.3, a backend's {nil: 1}, n.5; returns the expected payloads by offset. */
async function publishFive(room) {
  await httpPublish(worker.url, room, { type: 'chat', payload: { n: 1 } });
  await httpPublish(worker.url, room, { type: 'chat', payload: JSON.parse('{"__proto__":{"x":1},"y":2}') });
  await httpPublish(worker.url, room, { type: 'chat', payload: { n: 3 } });
  await natsPublish(`rooms.${room}`, { 'Content-Type': 'application/msgpack', 'Bridge-Type': 'chat' }, NIL_KEY);
  await httpPublish(worker.url, room, { type: 'chat', payload: { n: 5 } });
}

function checkFive(got, first) {
  const five = got.filter((m) => m.seq >= first && m.seq < first + 5);
  assert.deepEqual(five.map((m) => m.seq), [0, 1, 2, 3, 4].map((i) => first + i), `each message once, in order: ${JSON.stringify(got.map((m) => m.seq))}`);
  assert.deepEqual(five[0].payload, { n: 1 });
  assert.ok(five[1].payload instanceof Uint8Array, 'a __proto__ key: the payload arrives as its MessagePack bytes');
  // The bytes are the MessagePack the worker sent: a map of __proto__ and y (a decoder that allows the key reads them).
  assert.equal(five[1].payload[0], 0x82);
  assert.ok(Buffer.from(five[1].payload).includes(Buffer.from('__proto__')));
  assert.deepEqual(five[2].payload, { n: 3 });
  assert.deepEqual([...five[3].payload], [...NIL_KEY], 'a nil key: the bytes as the backend stored them');
  assert.deepEqual(five[4].payload, { n: 5 });
  assert.throws(() => mpDecode(five[3].payload), 'the decoder does refuse it (else this test proves nothing)');
}

for (const batch of [true, false]) {
  test(`MessagePack${batch ? ' batch' : ''}: payloads the decoder refuses cost only themselves, replayed and live, and arrive as bytes`, async () => {
    const room = uniqueRoom('undecodable');
    await publishFive(room); // seqs s..s+4, replayed below
    const client = new BridgeClient({ url: worker.url, WebSocket, format: 'msgpack', transports: ['websocket'], batch });
    clients.push(client);
    const got = [];
    client.on('chat', (env) => got.push({ seq: env.seq, payload: env.payload }));
    await client.connect();
    const joined = await client.join(room, { since: 0 });
    assert.equal(joined.replayed, 5);
    const first = joined.seq - 4;
    checkFive(got, first);

    await publishFive(room); // live, some of them sent together
    await waitFor(() => got.length >= 10, { message: 'the five live messages' }).catch(() => undefined);
    checkFive(got, first + 5);
    assert.equal(got.length, 10, 'nothing else, nothing twice');
  });
}

for (const batch of [true, false]) {
  test(`MessagePack${batch ? ' batch' : ''}: a room.state holding payloads the decoder refuses hands over its messages, only those payloads as bytes`, async () => {
    const room = uniqueRoom('undecodable-state');
    await publishFive(room);
    const client = new BridgeClient({ url: worker.url, WebSocket, format: 'msgpack', transports: ['websocket'], batch });
    clients.push(client);
    const skipped = [];
    client.onSkipped((s) => skipped.push(s));
    await client.connect();
    const state = await client.sync(room, 5);
    assert.equal(state.type, 'room.state');
    assert.ok(!(state.payload instanceof Uint8Array), 'the payload is read, not handed over whole as bytes');
    const messages = state.payload.messages;
    assert.equal(messages.length, 5);
    const first = state.seq - 4;
    assert.deepEqual(messages.map((m) => m.seq), [0, 1, 2, 3, 4].map((i) => first + i));
    assert.ok(messages.every((m) => m.type === 'chat' && m.room === room));
    checkFive(messages, first);
    assert.deepEqual(skipped, []);
  });
}
