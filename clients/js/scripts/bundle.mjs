// Bundles the client (and @msgpack/msgpack) into one ES module for the demo page the worker serves:
// Bridge.Worker/wwwroot/js/bridge-client.js. The bundle is committed so that `make run` serves the dashboard with
// only the .NET SDK; `--check` (run by `make test-js`) fails when the committed file is not what the sources build.
import { build } from 'esbuild';
import { readFile, writeFile, mkdir } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const target = resolve(here, '../../../Bridge.Worker/wwwroot/js/bridge-client.js');
const check = process.argv.includes('--check');

const result = await build({
  entryPoints: [resolve(here, '../src/index.ts')],
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: 'es2020',
  minify: false,
  legalComments: 'inline',
  write: false,
  banner: { js: '// Generated from clients/js by `npm run build` (esbuild). Do not edit.' },
});
const text = result.outputFiles[0].text;

if (check) {
  const committed = await readFile(target, 'utf8').catch(() => '');
  if (committed !== text) {
    console.error(`${target} is not what clients/js builds: run 'make js-bundle' (or npm run build in clients/js) and commit it.`);
    process.exit(1);
  }
  console.log('bridge-client.js is up to date');
} else {
  await mkdir(dirname(target), { recursive: true });
  await writeFile(target, text);
  console.log(`wrote ${target} (${text.length} bytes)`);
}
