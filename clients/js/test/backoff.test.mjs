// Backoff timing with fake timers (node:test mock.timers): the client dials a loopback port where nothing
// listens, so each attempt really fails; only the waits between attempts run on virtual time.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import WebSocket from 'ws';
import { backoffDelay, BridgeClient } from '../dist/index.js';
import { freePort } from './helpers/servers.mjs';

/** Waits on real I/O without timers (setTimeout is faked in these tests). */
async function until(predicate, message) {
  const deadline = performance.now() + 10_000;
  while (!predicate()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${message}`);
    await new Promise((r) => setImmediate(r));
  }
}

test('backoff is exponential with full jitter, capped', () => {
  const r = (x) => () => x;
  assert.equal(backoffDelay(0, 500, 20_000, r(0.999)), 499);
  assert.equal(backoffDelay(1, 500, 20_000, r(0.5)), 500);
  assert.equal(backoffDelay(3, 500, 20_000, r(0.5)), 2000);
  assert.equal(backoffDelay(10, 500, 20_000, r(0.5)), 10_000, 'capped at max');
  assert.equal(backoffDelay(100, 500, 20_000, r(0.5)), 10_000, 'no overflow for large attempts');
  assert.equal(backoffDelay(5, 500, 20_000, r(0)), 0, 'full jitter reaches zero');
});

test('reconnect attempts wait exactly the jittered exponential delays (defaults 0.5 s to 20 s)', async (t) => {
  const port = await freePort(); // nothing listens here: every attempt is refused by the kernel
  let dials = 0;
  class CountingWebSocket extends WebSocket {
    constructor(...args) {
      super(...args);
      dials += 1;
    }
  }
  const randoms = [0.5, 0.9, 0.25, 0.75, 0.5, 0.5, 0.99, 0.1];
  let i = 0;
  const states = [];
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const client = new BridgeClient({
    url: `http://127.0.0.1:${port}`,
    WebSocket: CountingWebSocket,
    transports: ['websocket'],
    random: () => randoms[i++ % randoms.length],
  });
  client.onState((s) => states.push(s));
  client.connect().catch(() => undefined);

  const expected = [];
  for (let attempt = 0; attempt < 8; attempt++) {
    // The refusal arrives over the real socket; then the client picks its delay and arms a (fake) timer.
    await until(() => states.filter((s) => s.state === 'reconnecting').length === attempt + 1, `reconnect ${attempt}`);
    const s = states.filter((x) => x.state === 'reconnecting')[attempt];
    const ceiling = Math.min(20_000, 500 * 2 ** attempt);
    const delay = Math.floor(randoms[attempt] * ceiling);
    expected.push(delay);
    assert.equal(s.attempt, attempt);
    assert.equal(s.delayMs, delay);
    assert.equal(dials, attempt + 1);
    if (delay > 0) {
      t.mock.timers.tick(delay - 1);
      assert.equal(dials, attempt + 1, `no attempt before ${delay} ms`);
    }
    t.mock.timers.tick(1);
    assert.equal(dials, attempt + 2, `attempt ${attempt + 1} dials at ${delay} ms`);
  }
  assert.deepEqual(expected, [250, 900, 500, 3000, 4000, 8000, 19_800, 2000]);
  client.close();
});
