// README.md's plain-WebSocket examples ("Try it"), run as written in one session (the README pastes both into one console):
// here one script run by Node 20 with --experimental-websocket, against a real worker and nats-server. Only the worker's
// address is replaced. Between the two blocks the test publishes over HTTP while the first socket is closed, so the
// second block's `since` is a real resume on a new socket.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { httpPublish, repoRoot, startNats, startWorker, waitFor } from './helpers/servers.mjs';

let nats;
let worker;
const dir = mkdtempSync(join(tmpdir(), 'bridge-readme-'));

before(async () => {
  nats = await startNats();
  worker = await startWorker(nats.url);
});

after(async () => {
  await worker?.stop('SIGKILL');
  await nats?.stop();
  rmSync(dir, { recursive: true, force: true });
});

function example(readme, name) {
  const block = new RegExp(`<!-- example: ${name} [^>]*-->\\s*\`\`\`js\\n([\\s\\S]*?)\`\`\``).exec(readme)?.[1];
  assert.ok(block, `README has the ${name} example`);
  return block;
}

test("README's WebSocket example publishes after room.joined, sees its own message, and resumes on a new socket", async () => {
  const readme = readFileSync(join(repoRoot, 'README.md'), 'utf8');
  const first = example(readme, 'websocket-js');
  const resume = example(readme, 'websocket-js-resume');
  const wsUrl = worker.url.replace('http://', 'ws://');
  // Glue between the blocks (not README text): say when the first socket has closed, wait for the test's go.
  const script = [
    first,
    `ws.addEventListener('close', () => console.log('glue: closed'));`,
    `await new Promise((r) => process.stdin.once('data', r));`,
    resume,
  ]
    .join('\n')
    .replaceAll('ws://127.0.0.1:8080', wsUrl);
  const file = join(dir, 'try.mjs');
  writeFileSync(file, script);

  const child = spawn(process.execPath, ['--experimental-websocket', file], { stdio: ['pipe', 'pipe', 'pipe'] });
  const lines = [];
  let rest = '';
  child.stdout.on('data', (d) => {
    rest += d;
    const parts = rest.split('\n');
    rest = parts.pop();
    lines.push(...parts);
  });
  child.stderr.on('data', (d) => lines.push(`stderr: ${d}`));
  try {
    const frames = () => lines.filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));
    await waitFor(() => lines.includes('glue: closed'), { timeoutMs: 20_000, message: `the first block to close\n${lines.join('\n')}` });
    const joinedAt = frames().findIndex((f) => f.type === 'room.joined');
    const own = frames().find((f) => f.type === 'chat.message');
    assert.ok(joinedAt >= 0, lines.join('\n'));
    assert.equal(own.payload.text, 'hi', 'the sender saw its own message');
    assert.ok(frames().findIndex((f) => f.type === 'chat.message') > joinedAt, 'delivered after room.joined');

    // Published while the example's socket is closed: the resume must bring it.
    const missed = await httpPublish(worker.url, 'demo', { type: 'chat.message', payload: { text: 'missed' } });
    child.stdin.write('go\n');
    await waitFor(() => lines.some((l) => l.startsWith('resumed:') && l.includes('"room.joined"')), {
      timeoutMs: 20_000,
      message: `the resume\n${lines.join('\n')}`,
    });
    const resumed = lines.filter((l) => l.startsWith('resumed: ')).map((l) => JSON.parse(l.slice('resumed: '.length)));
    const replayed = resumed.filter((f) => f.type === 'chat.message');
    assert.deepEqual(
      replayed.map((f) => [f.seq, f.payload.text]),
      [[missed.seq, 'missed']],
      'exactly the missed message, not the one seen before',
    );
    const joined = resumed.find((f) => f.type === 'room.joined');
    // Replayed: every room message stored after `since` ("demo" also carries presence.update in development).
    const before = resumed.slice(0, resumed.indexOf(joined)).filter((f) => typeof f.seq === 'number');
    assert.ok(before.includes(replayed[0]), 'replay comes before room.joined');
    assert.equal(joined.payload.replayed, before.length);
    assert.ok(before.every((f) => f.seq > own.seq), 'nothing at or before since is replayed');
  } finally {
    child.kill('SIGKILL');
  }
});
