// The dashboard the worker serves at /, in Debian's headless Chromium driven by playwright-core (no browser
// download): two pages talk through a real worker; the worker is restarted (close 1012) and both pages reconnect
// and catch up on what was published meanwhile, once each. Screenshots go to TestResults/browser/.
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

async function openDashboard(room, name, { query = '', waitJoined = true } = {}) {
  const page = await browser.newPage({ viewport: { width: 1200, height: 700 } });
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('console', (m) => {
    if (m.type() === 'error' && !/WebSocket connection|ERR_CONNECTION_REFUSED|Failed to load resource/.test(m.text())) errors.push(m.text());
  });
  await page.goto(`${worker.url}/?rooms=${room}&simulate=0&minDelayMs=100&maxDelayMs=1000${query}`);
  await page.locator('[data-testid=state][data-state=open]').waitFor({ timeout: 15_000 });
  // Joined: the room shows its position.
  if (waitJoined) await page.locator(`li[data-room="${room}"] .seq`).filter({ hasText: /\d+/ }).waitFor();
  page.errors = errors;
  page.label = name;
  return page;
}

/** The message ids in the page's table, oldest first, and their seqs. */
async function rows(page, room) {
  const all = await page.locator(`#messages tr[data-room="${room}"]`).evaluateAll((trs) =>
    trs.map((tr) => ({ id: tr.dataset.id, seq: Number(tr.dataset.seq), text: tr.lastElementChild.textContent })));
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
    assert.deepEqual(page.errors, [], `${page.label}: no script errors`);
  }
  await b.screenshot({ path: join(shots, 'dashboard-caught-up.png') });
});

test('the simulate switch publishes device readings that the page shows live', async () => {
  const room = uniqueRoom('web');
  const page = await openDashboard(room, 'sim');
  await page.getByTestId('simulate').check();
  await page.locator('#messages tr[data-room="devices.demo"]', { hasText: 'thermo-3' }).waitFor({ timeout: 10_000 });
  await page.getByTestId('simulate').uncheck();
  const latency = await page.locator('#messages tr[data-room="devices.demo"] td:nth-child(5)').first().textContent();
  assert.match(latency, /^\d+ ms$/);
  await page.screenshot({ path: join(shots, 'dashboard-simulate.png') });
  assert.deepEqual(page.errors, []);
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
