// Real processes for the client tests: nats-server with JetStream on random loopback ports and temp storage, and
// the worker (the Release build of Bridge.Worker) on a free loopback port. Nothing here is mocked.
import { spawn, execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { after, before } from 'node:test';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../../../..');
const started = new Set();
process.on('exit', () => {
  for (const p of started) {
    try {
      p.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
});

export function natsServerBinary() {
  if (process.env.NATS_SERVER_BIN && existsSync(process.env.NATS_SERVER_BIN)) return process.env.NATS_SERVER_BIN;
  return execFileSync(join(repoRoot, 'scripts/ensure-nats-server.sh'), { encoding: 'utf8' }).trim();
}

export function freePort() {
  return new Promise((resolvePort, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolvePort(port));
    });
  });
}

function track(child, name) {
  started.add(child);
  child.once('exit', () => started.delete(child));
  const lines = [];
  const keep = (chunk) => {
    for (const line of String(chunk).split('\n')) if (line) lines.push(line);
    while (lines.length > 200) lines.shift();
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  child.logTail = () => `${name} output (last lines):\n${lines.slice(-40).join('\n')}`;
  return child;
}

export async function waitFor(predicate, { timeoutMs = 10_000, intervalMs = 20, message = 'condition' } = {}) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await predicate();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${message}`);
    await sleep(intervalMs);
  }
}

export async function startNats() {
  const dir = mkdtempSync(join(tmpdir(), 'bridge-js-nats-'));
  const child = track(
    spawn(natsServerBinary(), ['-a', '127.0.0.1', '-p', '-1', '-m', '-1', '-js', '-sd', join(dir, 'js'), '--ports_file_dir', dir], {
      stdio: ['ignore', 'pipe', 'pipe'],
    }),
    'nats-server',
  );
  const ports = await waitFor(
    () => {
      if (child.exitCode !== null) throw new Error(`nats-server exited with ${child.exitCode}\n${child.logTail()}`);
      const file = readdirSync(dir).find((f) => f.endsWith('.ports'));
      if (!file) return undefined;
      try {
        return JSON.parse(readFileSync(join(dir, file), 'utf8'));
      } catch {
        return undefined; // written but not complete yet
      }
    },
    { timeoutMs: 15_000, message: 'the nats-server ports file' },
  );
  const monitor = ports.monitoring[0];
  await waitFor(async () => (await fetch(`${monitor}/healthz?js-enabled-only=true`).catch(() => undefined))?.ok, {
    timeoutMs: 15_000,
    message: 'nats-server health',
  });
  return {
    url: ports.nats[0],
    async stop() {
      if (child.exitCode === null) {
        child.kill('SIGKILL');
        await new Promise((r) => child.once('exit', r));
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

// The Makefile passes the build it made (its CONFIG); by default the Release build.
const workerDll = resolve(repoRoot, process.env.BRIDGE_WORKER_DLL ?? 'Bridge.Worker/bin/Release/net10.0/Bridge.Worker.dll');

/**
 * The worker on http://127.0.0.1:<port>. `restart()` stops it with SIGTERM (its clients get close 1012) and
 * starts it again on the same port, as a rolling restart would.
 */
export async function startWorker(natsUrl, { settings = {}, port } = {}) {
  if (!existsSync(workerDll)) {
    throw new Error(`${workerDll} not found: build it first (make build, or dotnet build Bridge.Worker -c Release)`);
  }
  port ??= await freePort();
  const url = `http://127.0.0.1:${port}`;
  let child;

  async function launch() {
    const env = {
      ...process.env,
      ASPNETCORE_ENVIRONMENT: 'Development', // anonymous clients allowed
      DOTNET_NOLOGO: '1',
      Bridge__Nats__Url: natsUrl,
      Logging__LogLevel__Default: 'Warning',
      Logging__LogLevel__Microsoft: 'Warning',
    };
    for (const [k, v] of Object.entries(settings)) env[k.replaceAll(':', '__')] = String(v);
    child = track(spawn('dotnet', [workerDll, '--urls', url], { env, stdio: ['ignore', 'pipe', 'pipe'] }), 'worker');
    await waitFor(
      async () => {
        if (child.exitCode !== null) throw new Error(`worker exited with ${child.exitCode}\n${child.logTail()}`);
        const res = await fetch(`${url}/readyz`).catch(() => undefined);
        return res?.ok;
      },
      { timeoutMs: 60_000, intervalMs: 50, message: 'worker readiness' },
    );
  }

  async function stop(signal = 'SIGTERM') {
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill(signal);
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    await exited;
    clearTimeout(timer);
  }

  await launch();
  return {
    url,
    port,
    get pid() {
      return child.pid;
    },
    stop,
    start: launch,
    async restart({ downtimeMs = 0 } = {}) {
      await stop('SIGTERM');
      if (downtimeMs) await sleep(downtimeMs);
      await launch();
    },
  };
}

/** Publishes over plain HTTP (protocol §7.1), the way a backend without a NATS client would. */
export async function httpPublish(baseUrl, room, body) {
  const res = await fetch(`${baseUrl}/api/rooms/${encodeURIComponent(room)}/messages`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  });
  const json = await res.json();
  if (!res.ok) throw new Error(`publish answered ${res.status}: ${JSON.stringify(json)}`);
  return json;
}

let counter = 0;
/** A room name of its own for each test, so tests sharing a stream do not see each other's messages. */
export function uniqueRoom(prefix = 'js') {
  counter += 1;
  return `${prefix}.${process.pid}-${Date.now().toString(36)}-${counter}`;
}

/**
 * The bed of the client suites that restart a worker: one nats-server and two workers on it, started before the
 * file's tests and killed after them, every client a test tracks closed then. `bed.worker1` is the one tests
 * restart; `bed.worker2` stays up (publishers and observers use it). Call once, at a test file's top level.
 */
export function twoWorkerBed() {
  const clients = [];
  const bed = {
    nats: undefined,
    worker1: undefined,
    worker2: undefined,
    /** Closes `c` (a recording client's `client`, or the client itself) after the file's tests; returns `c`. */
    track(c) {
      clients.push(c.client ?? c);
      return c;
    },
  };
  before(async () => {
    bed.nats = await startNats();
    [bed.worker1, bed.worker2] = await Promise.all([startWorker(bed.nats.url), startWorker(bed.nats.url)]);
  });
  after(async () => {
    for (const c of clients) c.close();
    await Promise.all([bed.worker1?.stop('SIGKILL'), bed.worker2?.stop('SIGKILL')]);
    await bed.nats?.stop();
  });
  return bed;
}
