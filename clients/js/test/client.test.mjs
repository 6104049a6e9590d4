// The client against a real worker and a real nats-server: publish/ack, resume after a worker restart (close 1012),
// the offline queue, truncated resumes, de-duplication by id.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { BridgeClient, BridgeError } from '../dist/index.js';
import { idsOf, recordingClient } from './helpers/recorder.mjs';
import { httpPublish, twoWorkerBed, uniqueRoom, waitFor } from './helpers/servers.mjs';

const bed = twoWorkerBed();
const { track } = bed;

describe('publish and receive', () => {
  for (const format of ['json', 'msgpack']) {
    test(`a send is acked with its seq and delivered to the room, sender included (${format})`, async () => {
      const room = uniqueRoom();
      const a = track(recordingClient(bed.worker1.url, { format }));
      const b = track(recordingClient(bed.worker2.url, { format }));
      await Promise.all([a.client.connect(), b.client.connect()]);
      assert.equal(a.client.transportKind, 'websocket');
      await Promise.all([a.client.join(room), b.client.join(room)]);

      const ack = await a.client.send('chat.message', room, { text: 'hi', n: 1 });
      assert.equal(ack.room, room);
      assert.equal(ack.duplicate, false);
      assert.ok(ack.seq > 0);

      for (const r of [a, b]) {
        await waitFor(() => r.messages.length === 1, { message: `${format} delivery` });
        const m = r.messages[0];
        assert.equal(m.type, 'chat.message');
        assert.equal(m.seq, ack.seq);
        assert.equal(m.id, ack.id);
        assert.equal(m.from, 'anonymous');
        assert.deepEqual(m.payload, { text: 'hi', n: 1 });
        assert.equal(typeof m.ts, 'number');
      }
    });
  }

  test('leave resolves on the worker\'s room.left, and the room\'s messages stop', async () => {
    const room = uniqueRoom();
    const a = track(recordingClient(bed.worker1.url));
    const b = track(recordingClient(bed.worker1.url));
    await Promise.all([a.client.connect(), b.client.connect()]);
    await Promise.all([a.client.join(room), b.client.join(room)]);
    let left = false;
    a.client.leave(room).then(() => (left = true));
    await waitFor(() => left, { message: 'leave() resolved while the connection stays open' });
    await b.client.send('chat.message', room, { n: 1 });
    await waitFor(() => b.messages.length === 1, { message: 'the other member still gets the room' });
    await sleep(200);
    assert.equal(a.messages.length, 0);
  });

  test('binary payloads arrive as bytes over JSON and MessagePack alike', async () => {
    const room = uniqueRoom();
    const json = track(recordingClient(bed.worker1.url, { format: 'json' }));
    const mp = track(recordingClient(bed.worker1.url, { format: 'msgpack' }));
    await Promise.all([json.client.connect(), mp.client.connect()]);
    await Promise.all([json.client.join(room), mp.client.join(room)]);
    const bytes = new Uint8Array([0, 1, 2, 250, 255]);
    await json.client.send('sensor.raw', room, bytes);
    await mp.client.send('sensor.raw', room, bytes);
    for (const r of [json, mp]) {
      await waitFor(() => r.messages.length === 2, { message: 'binary delivery' });
      for (const m of r.messages) {
        assert.ok(m.payload instanceof Uint8Array, 'payload is a Uint8Array');
        assert.deepEqual([...m.payload], [...bytes]);
        assert.equal(m.enc, undefined);
      }
    }
  });

  test('a MessagePack payload with a timestamp reaches MessagePack clients as a Date and JSON clients as its RFC 3339 rendering', async () => {
    const room = uniqueRoom();
    const json = track(recordingClient(bed.worker1.url, { format: 'json' }));
    const mp = track(recordingClient(bed.worker1.url, { format: 'msgpack' }));
    await Promise.all([json.client.connect(), mp.client.connect()]);
    await Promise.all([json.client.join(room), mp.client.join(room)]);
    // @msgpack/msgpack writes a Date as the timestamp extension; the worker stores it as sent (application/msgpack).
    const at = new Date(Date.UTC(2026, 0, 1, 0, 0, 1, 500));
    await mp.client.send('sensor.reading', room, { at, v: 21.5 });
    await waitFor(() => json.messages.length === 1 && mp.messages.length === 1, { message: 'delivery to both formats' });
    assert.ok(mp.messages[0].payload.at instanceof Date, 'a Date over MessagePack');
    assert.equal(mp.messages[0].payload.at.getTime(), at.getTime());
    assert.deepEqual(json.messages[0].payload, { at: '2026-01-01T00:00:01.5Z', v: 21.5 });
  });

  test('a publish retried with the same id is stored once and acked with the original seq', async () => {
    const room = uniqueRoom();
    const a = track(recordingClient(bed.worker1.url));
    const observer = track(recordingClient(bed.worker2.url));
    await Promise.all([a.client.connect(), observer.client.connect()]);
    await observer.client.join(room);
    const first = await a.client.send('chat.message', room, { text: 'once' }, { id: 'retry-1' });
    const retry = await a.client.send('chat.message', room, { text: 'once' }, { id: 'retry-1' });
    assert.equal(first.duplicate, false);
    assert.equal(retry.duplicate, true);
    assert.equal(retry.seq, first.seq);
    const later = await a.client.send('chat.message', room, { text: 'after' });
    await waitFor(() => observer.messages.some((m) => m.seq === later.seq), { message: 'the later message' });
    assert.deepEqual(idsOf(observer.messages, room), ['retry-1', later.id]);
  });

  test('invalid names are refused before anything is sent', async () => {
    const c = new BridgeClient({ url: bed.worker1.url });
    // A reserved type gets the server's code and words (unknown_type), a malformed one invalid_type.
    await assert.rejects(c.send('room.join', 'demo', {}), (e) => e instanceof BridgeError && e.code === 'unknown_type' &&
      e.message === "unknown_type: 'room.join' is reserved for the gateway and not a client message type");
    await assert.rejects(c.send('ROOM.JOIN', 'demo', {}), (e) => e instanceof BridgeError && e.code === 'unknown_type' &&
      e.message === "unknown_type: 'ROOM.JOIN' is reserved for the gateway and not a client message type (reserved types are matched ignoring case; gateway types are lowercase)");
    await assert.rejects(c.send('a..b', 'demo', {}), (e) => e instanceof BridgeError && e.code === 'invalid_type');
    await assert.rejects(c.send('chat.message', 'bad room', {}), (e) => e instanceof BridgeError && e.code === 'invalid_room');
    await assert.rejects(c.join('a..b'), (e) => e.code === 'invalid_room');
    c.close();
  });
});

describe('reconnect and resume', () => {
  test('after the worker restarts (1012) the client reconnects and resumes: every message once, in order', async () => {
    const room = uniqueRoom();
    const a = track(recordingClient(bed.worker1.url));
    await a.client.connect();
    await a.client.join(room);

    // A publisher on the other worker keeps going through the restart.
    const published = [];
    let publishing = true;
    const publisher = (async () => {
      for (let i = 0; publishing; i++) {
        const id = `p-${i}`;
        await httpPublish(bed.worker2.url, room, { type: 'chat.message', id, payload: { i } });
        published.push(id);
        await sleep(15);
      }
    })();

    await waitFor(() => a.messages.length >= 10, { message: 'messages before the restart' });
    const before = a.messages.length;
    await bed.worker1.restart();
    await waitFor(() => a.client.state === 'open', { timeoutMs: 20_000, message: 'reconnect' });
    const reconnected = published.length;
    await waitFor(() => published.length >= reconnected + 10, { message: 'messages after the reconnect' });
    publishing = false;
    await publisher;
    await waitFor(() => a.messages.length >= published.length, { timeoutMs: 10_000, message: 'every message' });
    await sleep(200); // anything extra (a duplicate) would arrive now

    assert.deepEqual(idsOf(a.messages, room), published, 'every message exactly once, in publish order');
    const seqs = a.messages.map((m) => m.seq);
    assert.deepEqual(seqs, [...seqs].sort((x, y) => x - y));
    const drop = a.states.find((s) => s.state === 'reconnecting');
    assert.equal(drop?.closeCode, 1012, 'the worker closed with 1012');
    assert.ok(before < published.length);
    assert.ok(a.states.filter((s) => s.state === 'open').length >= 2);
  });

  test('sends made while disconnected wait in the queue and are stored in order after the reconnect', async () => {
    const room = uniqueRoom();
    const a = track(recordingClient(bed.worker1.url));
    const observer = track(recordingClient(bed.worker2.url));
    await Promise.all([a.client.connect(), observer.client.connect()]);
    await Promise.all([a.client.join(room), observer.client.join(room)]);
    await a.client.send('chat.message', room, { n: -1 }, { id: 'q-start' });

    await bed.worker1.stop('SIGTERM');
    await waitFor(() => a.client.state === 'reconnecting', { message: 'the drop' });
    const sends = [];
    for (let n = 0; n < 20; n++) sends.push(a.client.send('chat.message', room, { n }, { id: `q-${n}` }));
    assert.equal(a.client.pending, 20);
    await sleep(300);
    assert.equal(observer.messages.length, 1, 'nothing is sent while offline');

    await bed.worker1.start();
    const acks = await Promise.all(sends);
    const seqs = acks.map((x) => x.seq);
    assert.deepEqual(seqs, [...seqs].sort((x, y) => x - y), 'stored in the order sent');
    assert.equal(new Set(seqs).size, 20);
    assert.equal(a.client.pending, 0);

    const expected = ['q-start', ...Array.from({ length: 20 }, (_, n) => `q-${n}`)];
    await waitFor(() => observer.messages.length >= 21 && a.messages.length >= 21, { message: 'the flushed messages' });
    await sleep(200);
    assert.deepEqual(idsOf(observer.messages, room), expected);
    assert.deepEqual(idsOf(a.messages, room), expected, 'the sender resumed and got its own queued messages once');
  });

  test('the offline queue is bounded', async () => {
    const c = new BridgeClient({ url: bed.worker1.url, maxQueue: 3 });
    const queued = [1, 2, 3].map((n) => c.send('chat.message', 'q.bound', { n }));
    await assert.rejects(c.send('chat.message', 'q.bound', { n: 4 }), (e) => e.code === 'queue_full');
    assert.equal(c.pending, 3);
    c.close();
    for (const p of queued) await assert.rejects(p, (e) => e.code === 'closed');
  });

  test('a resume from a position the stream no longer holds is truncated, and the client syncs the room', async () => {
    const room = uniqueRoom();
    const other = uniqueRoom();
    const a = track(recordingClient(bed.worker1.url));
    await a.client.connect();
    const foreign = await a.client.send('chat.message', other, { x: 1 }); // a seq of another room
    const kept = [];
    for (let i = 0; i < 3; i++) kept.push(await a.client.send('chat.message', room, { i }));
    const states = [];
    a.client.on('room.state', (s) => states.push(s));

    const joined = await a.client.join(room, { since: foreign.seq });
    assert.equal(joined.truncated, true);
    await waitFor(() => states.length === 1, { message: 'room.state after the truncated join' });
    assert.equal(states[0].room, room);
    assert.deepEqual(states[0].payload.messages.map((m) => m.seq), kept.map((k) => k.seq));
    // The replay held what the stream keeps after `since`: the three messages, once.
    assert.deepEqual(a.messages.filter((m) => m.room === room).map((m) => m.seq), kept.map((k) => k.seq));
  });

  test('a join with since replays what was missed, then goes live', async () => {
    const room = uniqueRoom();
    const a = track(recordingClient(bed.worker2.url));
    await a.client.connect();
    const first = await a.client.send('chat.message', room, { n: 0 });
    const missed = [];
    for (let n = 1; n <= 3; n++) missed.push((await a.client.send('chat.message', room, { n })).seq);
    const joined = await a.client.join(room, { since: first.seq });
    assert.equal(joined.replayed, 3);
    assert.equal(joined.truncated, false);
    assert.deepEqual(a.messages.map((m) => m.seq), missed);
  });
});
