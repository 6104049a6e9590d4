// Batch subprotocols (docs/protocol.md §1) against a real worker: the client offers bridge.v1.<format>-batch first and
// the plain one second, reads every envelope of each array in order, and with `batch: false` offers the plain one only.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import WebSocket from 'ws';
import { BatchSubprotocols, Subprotocols } from '../dist/index.js';
import { recordingClient } from './helpers/recorder.mjs';
import { httpPublish, twoWorkerBed, uniqueRoom } from './helpers/servers.mjs';

const bed = twoWorkerBed();
const { track } = bed;

/** The `ws` WebSocket, recording what each connection offered and chose, and how many messages it received. */
function countingSocket() {
  const sockets = [];
  class CountingWebSocket extends WebSocket {
    constructor(url, protocols) {
      super(url, protocols);
      this.offered = protocols;
      this.received = 0;
      this.on('message', () => {
        this.received += 1;
      });
      sockets.push(this);
    }
  }
  return { WebSocket: CountingWebSocket, sockets };
}

describe('batch subprotocols', () => {
  for (const format of ['json', 'msgpack']) {
    test(`${format}: a replay comes in a few arrays and reaches the application once each, in order`, async () => {
      const room = uniqueRoom();
      const stored = [];
      for (let n = 0; n < 300; n++) stored.push((await httpPublish(bed.worker2.url, room, { type: 'chat.message', payload: { n } })).seq);

      const socket = countingSocket();
      const c = track(recordingClient(bed.worker2.url, { format, WebSocket: socket.WebSocket }));
      await c.client.connect();
      const joined = await c.client.join(room, { since: 0 });
      assert.equal(joined.replayed, 300);

      const ws = socket.sockets[0];
      assert.deepEqual(ws.offered, [BatchSubprotocols[format], Subprotocols[format]]);
      assert.equal(ws.protocol, BatchSubprotocols[format]);
      assert.deepEqual(c.messages.map((m) => m.seq), stored);
      assert.deepEqual(c.messages.map((m) => m.payload.n), [...Array(300).keys()]);
      // welcome, 300 messages and room.joined in fewer WebSocket messages: at least one array held several (how
      // many depends on how far the replay outran the worker's send loop, not asserted).
      assert.ok(ws.received < 302, `${ws.received} WebSocket messages for 302 envelopes`);

      // Then live, and the client's own frames are still understood (a publish is acked).
      const ack = await c.client.send('chat.message', room, { n: 300 });
      assert.ok(ack.seq > stored.at(-1));
    });
  }

  test('batch: false offers the plain subprotocol only, and every envelope is its own message', async () => {
    const room = uniqueRoom();
    for (let n = 0; n < 20; n++) await httpPublish(bed.worker2.url, room, { type: 'chat.message', payload: { n } });
    const socket = countingSocket();
    const c = track(recordingClient(bed.worker2.url, { batch: false, WebSocket: socket.WebSocket }));
    await c.client.connect();
    await c.client.join(room, { since: 0 });
    const ws = socket.sockets[0];
    assert.deepEqual(ws.offered, [Subprotocols.json]);
    assert.equal(ws.protocol, Subprotocols.json);
    assert.equal(c.messages.length, 20);
    assert.ok(ws.received >= 22, `${ws.received} WebSocket messages for 22 envelopes`);
  });
});
