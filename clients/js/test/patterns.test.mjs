// Room patterns, latest values and conflation (protocol §4) through the client, against a real worker and nats-server:
// a pattern resumed across a worker restart over WebSocket (both formats) and SSE, latest before room.joined,
// a conflated join ending on the last value, and the refusals the client makes itself.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { BridgeError, isValidPattern } from '../dist/index.js';
import { recordingClient } from './helpers/recorder.mjs';
import { httpPublish, twoWorkerBed, uniqueRoom, waitFor } from './helpers/servers.mjs';

const bed = twoWorkerBed();
const { track } = bed;

describe('room patterns', () => {
  for (const [format, transports] of [['json', ['websocket']], ['msgpack', ['websocket']], ['json', ['sse']]]) {
    test(`a pattern is resumed across a worker restart: every message of its rooms once, in order (${transports[0]}, ${format})`, async () => {
      const site = uniqueRoom('site');
      const rooms = [`${site}.a`, `${site}.b.c`, `${site}.d`];
      const r = track(recordingClient(bed.worker1.url, { format, transports }));
      await r.client.connect();
      const joined = await r.client.join(`${site}.>`);
      assert.equal(joined.room, `${site}.>`);

      // A publisher on the other worker keeps going through the restart, over three rooms and one beside the pattern.
      const acks = [];
      let stop = false;
      const publishing = (async () => {
        for (let i = 0; !stop && i < 400; i++) {
          const room = i % 4 === 3 ? `${site}x.a` : rooms[i % 4];
          const ack = await httpPublish(bed.worker2.url, room, { type: 'feed.item', payload: { i } });
          if (room !== `${site}x.a`) acks.push(ack.seq);
          await sleep(5);
        }
      })();
      await waitFor(() => r.messages.length >= 10, { message: 'messages before the restart' });
      await bed.worker1.restart();
      await waitFor(() => r.client.state === 'open' && r.messages.length > acks.length / 2, { timeoutMs: 60_000, message: 'resumed' });
      await sleep(300);
      stop = true;
      await publishing;
      await waitFor(() => r.messages.length >= acks.length, { timeoutMs: 30_000, message: 'every message' });
      await sleep(300);
      assert.deepEqual(r.messages.map((m) => m.seq), acks);
      assert.ok(r.messages.every((m) => m.room.startsWith(`${site}.`)));
    });
  }

  test('latest sends each room\'s current value before room.joined, then live', async () => {
    const site = uniqueRoom('dash');
    const rooms = [`${site}.t1`, `${site}.t2`, `${site}.t3`];
    for (const room of rooms) {
      await httpPublish(bed.worker2.url, room, { type: 'sensor.reading', payload: { v: 'old' } });
      await httpPublish(bed.worker2.url, room, { type: 'sensor.reading', payload: { v: room } });
    }
    const r = track(recordingClient(bed.worker1.url, { format: 'msgpack' }));
    await r.client.connect();
    const joined = await r.client.join(`${site}.*`, { latest: true });
    assert.equal(joined.latest, 3);
    assert.deepEqual(r.messages.map((m) => m.payload.v).sort(), [...rooms].sort());
    const live = await httpPublish(bed.worker2.url, rooms[1], { type: 'sensor.reading', payload: { v: 'live' } });
    await waitFor(() => r.messages.length === 4, { message: 'the live message' });
    assert.equal(r.messages[3].seq, live.seq);
  });

  test('a conflated join gets a few messages of a burst and ends on the last value', async () => {
    const room = uniqueRoom('ticker');
    const r = track(recordingClient(bed.worker1.url));
    await r.client.connect();
    await r.client.join(room, { maxRate: 5 });
    let last;
    for (let i = 0; i < 150; i++) last = await httpPublish(bed.worker2.url, room, { type: 'price.tick', payload: { i } });
    await waitFor(() => r.messages.at(-1)?.seq === last.seq, { timeoutMs: 15_000, message: 'the last value' });
    assert.ok(r.messages.length < 75, `${r.messages.length} of 150 delivered: not conflated`);
    assert.equal(r.messages.at(-1).payload.i, 149);
  });

  test('bad patterns, bad options and a join overlapping one held are refused by the client', async () => {
    assert.equal(isValidPattern('devices.site-3.*'), true);
    assert.equal(isValidPattern('devices.>.x'), false);
    const r = track(recordingClient(bed.worker1.url));
    await r.client.connect();
    const site = uniqueRoom('site');
    await r.client.join(`${site}.>`);
    const refused = async (promise, code) => {
      await assert.rejects(promise, (e) => e instanceof BridgeError && e.code === code);
    };
    await refused(r.client.join(`${site}.a`), 'overlapping_join');
    await refused(r.client.join(`${site}.*.x`), 'overlapping_join');
    await refused(r.client.join('a.>.b'), 'invalid_room');
    await refused(r.client.join(`${site}x.a`, { maxRate: 0 }), 'invalid_argument');
    await refused(r.client.join(`${site}x.a`, { maxRate: 5000 }), 'invalid_argument');
    await refused(r.client.join(`${site}x.a`, { latest: 'yes' }), 'invalid_argument');
    // The worker refuses what only it can judge: a pattern broader than it allows.
    const other = track(recordingClient(bed.worker1.url));
    await other.client.connect();
    await refused(other.client.join('>'), 'pattern_too_broad');
  });
});
