// A conflated join (maxRate) rejoins after a reconnect with `since`, not `latest` (protocol §4, conflation: "a since
// from it sends each room's newest message after it"), so the values the application already has do not come again:
// a room from its last value, a pattern from its last room.joined (its rooms go at their own pace, so only that
// position holds for all of them). Against a real worker, restarted under the client.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { BridgeClient } from '../dist/index.js';
import { recordingSocket } from './helpers/recorder.mjs';
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

for (const format of ['json', 'msgpack']) {
  test(`${format}: a conflated room and pattern rejoin with since after a reconnect and deliver no value twice`, async () => {
    const room = uniqueRoom('cf');
    const site = uniqueRoom('cfp');
    const first = await httpPublish(worker.url, room, { type: 'price', payload: { v: 1 } });
    const a1 = await httpPublish(worker.url, `${site}.a`, { type: 'price', payload: { v: 'a1' } });
    const b1 = await httpPublish(worker.url, `${site}.b`, { type: 'price', payload: { v: 'b1' } });
    const { WebSocket, sockets } = recordingSocket(format);
    const client = new BridgeClient({ url: worker.url, WebSocket, format, transports: ['websocket'], reconnect: { minDelayMs: 50, maxDelayMs: 200 } });
    clients.push(client);
    const got = [];
    const joins = [];
    client.on('price', (env) => got.push(env.seq));
    client.on('room.joined', (env) => joins.push(env));
    await client.connect();
    await client.join(room, { maxRate: 20 });
    const pattern = await client.join(`${site}.*`, { maxRate: 20 });
    await waitFor(() => got.length === 3, { message: 'the latest values' });
    const second = await httpPublish(worker.url, room, { type: 'price', payload: { v: 2 } });
    await waitFor(() => got.includes(second.seq), { message: 'the second value' });

    await worker.stop('SIGTERM');
    await waitFor(() => client.state === 'reconnecting', { message: 'the drop' });
    await worker.start();
    await waitFor(() => joins.length === 4, { timeoutMs: 20_000, message: 'both rejoined' });
    await sleep(300); // a value sent again would be here by now (20 a second)

    // The rejoin asked for values after what was delivered: the room from its last value, the pattern from its
    // room.joined; neither with latest (the worker would send every room's value).
    const rejoin = sockets.at(-1).sent.map((s) => s.frame).filter((f) => f.type === 'room.join');
    const entries = rejoin.flatMap((f) => (f.payload.rooms ? f.payload.rooms : [{ room: f.room, ...f.payload }]));
    assert.deepEqual(entries.find((e) => e.room === room), { room, since: second.seq, maxRate: 20 });
    assert.deepEqual(entries.find((e) => e.room === `${site}.*`), { room: `${site}.*`, since: pattern.seq, maxRate: 20 });

    const third = await httpPublish(worker.url, room, { type: 'price', payload: { v: 3 } });
    const b2 = await httpPublish(worker.url, `${site}.b`, { type: 'price', payload: { v: 'b2' } });
    await waitFor(() => got.includes(third.seq) && got.includes(b2.seq), { message: 'the values after the rejoin' });
    await sleep(100);
    assert.deepEqual(got.slice(0, 3).sort((x, y) => x - y), [first.seq, a1.seq, b1.seq]);
    assert.deepEqual(got.slice(3, 4), [second.seq]);
    assert.deepEqual(got.slice(4).sort((x, y) => x - y), [third.seq, b2.seq], `nothing delivered twice: ${JSON.stringify(got)}`);
  });
}
