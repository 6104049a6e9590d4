// The dashboard the worker serves at /, in Debian's headless Chromium driven by playwright-core (no browser
// download): two pages talk through a real worker; the worker is restarted (close 1012) and both pages reconnect
// and catch up on what was published meanwhile, once each (replayed messages show their age, and count as a
// reconnect); the room filter, per-room rates and latency percentiles, the device simulation switch (off by
// default: checked on the stream), a phone-width layout and the favicon. A screenshot of each state goes to
// TestResults/browser/.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { chromium } from 'playwright-core';
import { httpPublish, repoRoot, startNats, startWorker, uniqueRoom } from '../test/helpers/servers.mjs';

const shots = join(repoRoot, 'TestResults', 'browser');
let nats;
let worker; // serves the page; restarted during the test
let other; // a second worker: publishes while the first is down
let browser;

function chromiumPath() {
  return process.env.CHROMIUM_BIN || execFileSync(join(repoRoot, 'scripts/ensure-chromium.sh'), { encoding: 'utf8' }).trim();
}

before(async () => {
  mkdirSync(shots, { recursive: true });
  nats = await startNats();
  [worker, other] = await Promise.all([startWorker(nats.url), startWorker(nats.url)]);
  browser = await chromium.launch({
    executablePath: chromiumPath(),
    headless: true,
    // This machine's network is closed: no background connections to Google's services, no QUIC.
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
});

after(async () => {
  await browser?.close();
  await Promise.all([worker?.stop('SIGKILL'), other?.stop('SIGKILL')]);
  await nats?.stop();
});

// The Development worker's backend API key (appsettings.Development.json; docs/protocol.md §13).
const DEV_API_KEY = 'bridge-dev-api-key-not-for-production';

/** The room's latest stored seq, read from the stream through the worker's backend API. */
async function lastStoredSeq(room) {
  const response = await fetch(`${worker.url}/api/backend/history`, {
    method: 'POST',
    headers: { 'X-Api-Key': DEV_API_KEY, 'Content-Type': 'application/json' },
    body: JSON.stringify({ room, latest: 1 }),
  });
  assert.equal(response.status, 200, await response.clone().text());
  return (await response.json()).last_seq;
}

async function openDashboard(room, name, { query = '', waitJoined = true, viewport = { width: 1200, height: 700 }, rooms = room } = {}) {
  const page = await browser.newPage({ viewport });
  // Every connection state change of the page's client from its first, with close code, reason and transport: a
  // reconnect count the test did not expect then says which connections ended and why.
  await page.addInitScript(() => {
    let client;
    window.connectionHistory = [];
    Object.defineProperty(window, 'bridge', {
      configurable: true,
      get: () => client,
      set: (c) => {
        client = c;
        c.onState((s) => window.connectionHistory.push({ ms: Math.round(performance.now()), ...s }));
      },
    });
  });
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('console', (m) => {
    if (m.type() === 'error' && !/WebSocket connection|ERR_CONNECTION_REFUSED|Failed to load resource/.test(m.text())) errors.push(m.text());
  });
  await page.goto(`${worker.url}/?rooms=${rooms}&minDelayMs=100&maxDelayMs=1000${query}`);
  await page.locator('[data-testid=state][data-state=open]').waitFor({ timeout: 15_000 });
  // Joined: the room shows its position.
  if (waitJoined) await page.locator(`li[data-room="${room}"] .seq`).filter({ hasText: /\d+/ }).waitFor();
  page.errors = errors;
  page.label = name;
  return page;
}

/** The rows of the page's table for a room, oldest first: id, seq, payload text, latency cell, replayed. */
async function rows(page, room) {
  const all = await page.locator(`#messages tr[data-room="${room}"]`).evaluateAll((trs) =>
    trs.map((tr) => ({
      id: tr.dataset.id,
      seq: Number(tr.dataset.seq),
      text: tr.lastElementChild.textContent,
      latency: tr.children[4].textContent,
      replayed: tr.dataset.replayed === '1',
      hidden: tr.hidden,
    })));
  return all.reverse();
}

async function publishFromPage(page, text) {
  await page.getByTestId('publish-text').fill(text);
  await page.getByTestId('publish').click();
}

test('two pages: a message from one appears in the other; after a worker restart both catch up, once each', async () => {
  const room = uniqueRoom('web');
  const a = await openDashboard(room, 'a');
  const b = await openDashboard(room, 'b');
  assert.match(await a.getByTestId('transport').textContent(), /websocket/);

  await publishFromPage(a, 'hello from page A');
  await b.locator('#messages tr', { hasText: 'hello from page A' }).waitFor({ timeout: 10_000 });
  await a.locator('#messages tr', { hasText: 'hello from page A' }).waitFor({ timeout: 10_000 });
  await a.getByTestId('pending').filter({ hasText: /stored as seq \d+/ }).waitFor();

  // Presence: the worker answers presence.query once presence exists; until then the page says it is not enabled.
  await a.getByTestId('presence').filter({ hasText: /presence not enabled|\S/ }).waitFor();
  assert.doesNotMatch(await a.getByTestId('presence').textContent(), /^(…|asking…)$/);

  // The worker goes away (SIGTERM: close 1012 to every page). While it is down, a backend publishes through the
  // other worker and page A sends a message, which waits in its offline queue.
  await worker.stop('SIGTERM');
  for (const page of [a, b]) {
    await page.locator('[data-testid=state][data-state=reconnecting]').waitFor({ timeout: 10_000 });
  }
  const missed = [];
  for (let i = 0; i < 5; i++) {
    missed.push((await httpPublish(other.url, room, { type: 'chat.message', id: `missed-${i}`, payload: { text: `missed ${i}` } })).id);
  }
  await publishFromPage(a, 'sent while offline');
  await a.getByTestId('pending').filter({ hasText: 'queued offline' }).waitFor();
  await a.screenshot({ path: join(shots, 'dashboard-offline.png') });

  await worker.start();
  for (const page of [a, b]) {
    await page.locator('[data-testid=state][data-state=open]').waitFor({ timeout: 20_000 });
    await page.locator('#messages tr', { hasText: 'sent while offline' }).waitFor({ timeout: 10_000 });
    await page.locator('#messages tr', { hasText: 'missed 4' }).waitFor({ timeout: 10_000 });
  }
  await new Promise((r) => setTimeout(r, 300)); // a duplicate would show up now

  for (const page of [a, b]) {
    const got = await rows(page, room);
    const ids = got.map((r) => r.id);
    assert.equal(new Set(ids).size, ids.length, `${page.label}: no message twice: ${ids.join(' ')}`);
    for (const id of missed) assert.ok(ids.includes(id), `${page.label}: got ${id}`);
    assert.equal(got.length, 7, `${page.label}: hello, five missed, one queued`);
    const seqs = got.map((r) => r.seq);
    assert.deepEqual(seqs, [...seqs].sort((x, y) => x - y), `${page.label}: in seq order`);
    assert.ok(got.findIndex((r) => r.text.includes('missed 0')) > 0);

    // The five missed messages were replayed on the resume: shown with their age, not as latency samples; hello
    // came live. The queued send goes out as soon as the connection is open (a resuming room does not hold the
    // outbox), so it is stored before or after the resume's seam: replayed or live, either is right, but it is
    // shown the way it was counted.
    const offline = got.find((r) => r.text.includes('sent while offline'));
    for (const r of got) {
      if (r !== offline) assert.equal(r.replayed, r.id?.startsWith('missed-') ?? false, `${page.label}: ${r.id} replayed?`);
      assert.match(r.latency, r.replayed ? /^age \d+(\.\d)? (ms|s)$/ : /^\d+ ms$/, `${page.label}: ${r.id} ${r.latency}`);
    }
    const replayedCount = 5 + (offline.replayed ? 1 : 0);
    const stats = page.locator(`li[data-room="${room}"] [data-testid=room-stats]`);
    await stats.and(page.locator(`[data-replayed="${replayedCount}"]`)).waitFor({ timeout: 5_000 });
    assert.equal(await stats.getAttribute('data-samples'), String(7 - replayedCount), `${page.label}: live samples only`);
    const history = await page.evaluate(() => window.connectionHistory.map((s) => JSON.stringify(s)).join('\n'));
    assert.equal(await page.getByTestId('reconnects').textContent(), '1', `${page.label}: one reconnect; its connection states:\n${history}`);
    assert.deepEqual(page.errors, [], `${page.label}: no script errors`);
  }
  await b.screenshot({ path: join(shots, 'dashboard-caught-up.png') });
  await Promise.all([a.close(), b.close()]);
});

test('device simulation is off by default, behind a visible switch, and publishes only while on', async () => {
  const room = uniqueRoom('web');
  const before = await lastStoredSeq('devices.demo');
  const page = await openDashboard(room, 'sim');
  const toggle = page.getByTestId('simulate');
  assert.equal(await toggle.isVisible(), true);
  assert.equal(await toggle.isChecked(), false);
  assert.match(await page.locator('label.switch').textContent(), /simulate devices/);
  // Off: the page stores nothing in the devices room (three readings a second would be there by now).
  await new Promise((r) => setTimeout(r, 3_500));
  assert.equal(await lastStoredSeq('devices.demo'), before, 'nothing published while the switch is off');
  await page.screenshot({ path: join(shots, 'dashboard-simulate-off.png') });

  await toggle.check();
  await page.locator('#messages tr[data-room="devices.demo"]', { hasText: 'thermo-3' }).waitFor({ timeout: 10_000 });
  assert.ok((await lastStoredSeq('devices.demo')) > before, 'readings stored while on');
  const latency = await page.locator('#messages tr[data-room="devices.demo"] td:nth-child(5)').first().textContent();
  assert.match(latency, /^\d+ ms$/);
  await page.screenshot({ path: join(shots, 'dashboard-simulate-on.png') });

  await toggle.uncheck();
  await new Promise((r) => setTimeout(r, 1_200)); // a send already on its way is stored
  const off = await lastStoredSeq('devices.demo');
  await new Promise((r) => setTimeout(r, 2_500));
  assert.equal(await lastStoredSeq('devices.demo'), off, 'nothing more once switched off');
  assert.deepEqual(page.errors, []);
  await page.close();
});

test('the room filter hides the other rooms and each room shows its own rate and latency percentiles', async () => {
  const busy = uniqueRoom('busy');
  const quiet = uniqueRoom('quiet');
  const page = await openDashboard(busy, 'filter', { rooms: `${busy},${quiet}` });
  await page.locator(`li[data-room="${quiet}"] .seq`).filter({ hasText: /\d+/ }).waitFor();
  await httpPublish(worker.url, quiet, { type: 'chat.message', id: 'q-1', payload: { text: 'quiet one' } });
  for (let i = 0; i < 20; i++) {
    await httpPublish(worker.url, busy, { type: 'chat.message', id: `b-${i}`, payload: { text: `busy ${i}` } });
    await new Promise((r) => setTimeout(r, 50));
  }
  await page.locator('#messages tr', { hasText: 'busy 19' }).waitFor({ timeout: 10_000 });
  await page.locator('#messages tr', { hasText: 'quiet one' }).waitFor({ timeout: 10_000 });
  await page.screenshot({ path: join(shots, 'dashboard-filter-all.png') });

  // Per room: the busy room's numbers moved, the quiet room has its one sample.
  const busyStats = page.locator(`li[data-room="${busy}"] [data-testid=room-stats]`);
  await busyStats.and(page.locator('[data-samples="20"]')).waitFor({ timeout: 5_000 });
  assert.ok(Number(await busyStats.getAttribute('data-rate')) > 0.5, 'busy: msgs/s');
  const p50 = Number(await busyStats.getAttribute('data-p50'));
  const p99 = Number(await busyStats.getAttribute('data-p99'));
  assert.ok(p50 >= 0 && p99 >= p50, `busy: p50 ${p50} <= p99 ${p99}`);
  assert.match(await busyStats.textContent(), /msg\/s · p50 \d+ ms · p99 \d+ ms/);
  const quietStats = page.locator(`li[data-room="${quiet}"] [data-testid=room-stats]`);
  assert.equal(await quietStats.getAttribute('data-samples'), '1');

  await page.getByTestId('filter').selectOption(quiet);
  const filtered = [...(await rows(page, busy)), ...(await rows(page, quiet))];
  assert.ok(filtered.filter((r) => r.text.includes('busy')).every((r) => r.hidden), 'busy rows hidden');
  assert.deepEqual(filtered.filter((r) => !r.hidden).map((r) => r.id), ['q-1']);
  assert.equal(await page.locator('#messages tr:visible').count(), 1);
  assert.match(await page.getByTestId('shown').textContent(), /^1 of 21 messages$/);
  // A message that arrives while filtered follows the filter too.
  await httpPublish(worker.url, busy, { type: 'chat.message', id: 'b-late', payload: { text: 'busy late' } });
  await page.locator('#messages tr[data-id="b-late"]').waitFor({ state: 'attached', timeout: 10_000 });
  assert.equal(await page.locator('#messages tr[data-id="b-late"]').isVisible(), false);
  await page.screenshot({ path: join(shots, 'dashboard-filter-one-room.png') });

  await page.getByTestId('filter').selectOption('');
  assert.equal(await page.locator('#messages tr:visible').count(), 22);
  assert.deepEqual(page.errors, []);
  await page.close();
});

test('at a phone width (375 px) nothing scrolls sideways and the controls stay on screen', async () => {
  const room = `${uniqueRoom('phone')}.with.a.rather.long.name`;
  const page = await openDashboard(room, 'phone', { viewport: { width: 375, height: 740 } });
  await httpPublish(worker.url, room, {
    type: 'chat.message', id: 'long', payload: { text: 'x'.repeat(300), nested: { list: [1, 2, 3], words: 'a rather long payload '.repeat(5) } },
  });
  await page.locator('#messages tr[data-id="long"]').waitFor({ timeout: 10_000 });
  const size = await page.evaluate(() => ({ scroll: document.documentElement.scrollWidth, view: window.innerWidth }));
  assert.ok(size.scroll <= size.view, `no horizontal scroll: content ${size.scroll} px, viewport ${size.view} px`);
  for (const id of ['simulate', 'publish-text', 'publish', 'filter', 'join-room']) {
    const box = await page.getByTestId(id).boundingBox();
    assert.ok(box && box.x >= 0 && box.x + box.width <= size.view, `${id} within the viewport: ${JSON.stringify(box)}`);
  }
  await page.screenshot({ path: join(shots, 'dashboard-phone.png'), fullPage: true });
  assert.deepEqual(page.errors, []);
  await page.close();
});

test("the device view joins a pattern with latest: each room's current value at once, then live, with a sparkline", async () => {
  const site = uniqueRoom('dev');
  const devices = ['d1', 'd2', 'd3', 'd4', 'd5'].map((d) => `${site}.${d}`);
  // Two readings per device before the page opens (the second is the current one), and a room beside the pattern.
  for (const [i, room] of devices.entries()) {
    await httpPublish(worker.url, room, { type: 'sensor.reading', payload: { celsius: 10 + i } });
    await httpPublish(worker.url, room, { type: 'sensor.reading', payload: { celsius: 20 + i } });
  }
  await httpPublish(worker.url, `${site}x.d1`, { type: 'sensor.reading', payload: { celsius: 99 } });

  const room = uniqueRoom('web');
  const page = await openDashboard(room, 'devices', { query: `&devices=${encodeURIComponent(`${site}.*`)}` });
  const tiles = page.locator('[data-testid=device-grid] .device');
  await page.getByTestId('devices-status').filter({ hasText: /5 latest values at join/ }).waitFor({ timeout: 10_000 });
  await tiles.nth(4).waitFor();
  const shown = async () => tiles.evaluateAll((els) => els.map((el) => ({
    room: el.dataset.room,
    value: el.querySelector('[data-testid=device-value]').textContent,
    points: Number(el.dataset.points),
    line: el.querySelector('polyline').getAttribute('points') ?? '',
  })));
  assert.deepEqual((await shown()).map((t) => [t.room, t.value, t.points]), devices.map((d, i) => [d, String(20 + i), 1]));

  // Live readings move the value and grow the sparkline; the other room never shows up.
  await httpPublish(worker.url, devices[2], { type: 'sensor.reading', payload: { celsius: 31.5 } });
  await httpPublish(worker.url, devices[2], { type: 'sensor.reading', payload: { celsius: 27 } });
  await page.locator(`.device[data-room="${devices[2]}"][data-points="3"]`).waitFor({ timeout: 10_000 });
  const d3 = (await shown())[2];
  assert.equal(d3.value, '27');
  assert.equal(d3.line.split(' ').length, 3, 'three points drawn');
  assert.equal(await tiles.count(), 5);
  // The device readings stay out of the message table.
  assert.equal(await page.locator(`#messages tr[data-room^="${site}"]`).count(), 0);
  await page.screenshot({ path: join(shots, 'dashboard-devices.png') });
  assert.deepEqual(page.errors, []);
  await page.close();
});

test('the favicon is linked and served', async () => {
  const page = await openDashboard(uniqueRoom('icon'), 'icon');
  const icons = await page.locator('link[rel~="icon"]').evaluateAll((links) => links.map((l) => l.href));
  assert.ok(icons.length >= 1);
  for (const href of icons) {
    const response = await fetch(href);
    assert.equal(response.status, 200, href);
    assert.match(response.headers.get('content-type'), /^image\/(svg\+xml|x-icon|vnd\.microsoft\.icon)/, href);
    assert.ok((await response.arrayBuffer()).byteLength > 100, href);
  }
  // Browsers that ignore the link still ask for /favicon.ico.
  const ico = await fetch(`${worker.url}/favicon.ico`);
  assert.equal(ico.status, 200);
  await page.close();
});

test('SSE and long-poll pages (WebSocket switched off) exchange messages through the worker', async () => {
  const room = uniqueRoom('web');
  const sse = await openDashboard(room, 'sse', { query: '&transport=sse,poll' });
  const poll = await openDashboard(room, 'poll', { query: '&transport=poll', waitJoined: false });
  assert.match(await sse.getByTestId('transport').textContent(), /via sse/);
  assert.match(await poll.getByTestId('transport').textContent(), /via poll/);
  await new Promise((r) => setTimeout(r, 300)); // the first poll is on its way: it joins the room live

  await publishFromPage(sse, 'from the SSE page');
  await poll.locator('#messages tr', { hasText: 'from the SSE page' }).waitFor({ timeout: 10_000 });
  await publishFromPage(poll, 'from the poll page');
  await sse.locator('#messages tr', { hasText: 'from the poll page' }).waitFor({ timeout: 10_000 });
  for (const page of [sse, poll]) {
    await page.locator('#messages tr', { hasText: 'from the poll page' }).waitFor({ timeout: 10_000 });
    assert.deepEqual((await rows(page, room)).map((r) => r.text), ['{"text":"from the SSE page"}', '{"text":"from the poll page"}']);
    assert.match(await page.getByTestId('presence').textContent(), /presence needs a WebSocket/);
    assert.deepEqual(page.errors, []);
  }
});

test("README's browser example runs as written", async () => {
  const readme = readFileSync(join(repoRoot, 'README.md'), 'utf8');
  const html = /<!-- example: browser-client [^>]*-->\s*```html\n([\s\S]*?)```/.exec(readme)?.[1];
  assert.ok(html, 'README has the browser example');
  const page = await browser.newPage();
  const logs = [];
  page.on('console', (m) => logs.push(m.text()));
  page.on('pageerror', (e) => logs.push(`pageerror: ${e.message}`));
  // In a document of the worker's origin, as the README says, so '/js/bridge-client.js' resolves there.
  await page.goto(`${worker.url}/healthz`);
  await page.setContent(`<!doctype html><html><body>${html}</body></html>`);
  const deadline = Date.now() + 10_000;
  const done = () => logs.some((l) => /^#\d+ from anonymous: hi$/.test(l)) && logs.some((l) => l.startsWith('stored as'));
  while (!done() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  assert.ok(logs.includes('state: open websocket'), logs.join('\n'));
  assert.ok(logs.some((l) => /^stored as seq \d+$/.test(l)), logs.join('\n'));
  assert.ok(logs.some((l) => /^#\d+ from anonymous: hi$/.test(l)), logs.join('\n'));
  assert.ok(!logs.some((l) => l.startsWith('pageerror')), logs.join('\n'));
});
