// Makes the V8 code cache of the CLI's fast path (dist/bin/virtq-fast.cache; cli/fast-entry.ts
// reads it): compiles dist/bin/virtq-fast-body.js as the entry does, runs the body's command
// lines (list, list --json, dominfo, dominfo --json, an error reply, --version) against a
// stand-in virtqemud on a temporary socket, so V8 has compiled the functions a real run calls,
// then writes the cache, which then holds them. Made from the body before any run, a cache holds
// the top-level code alone and saved nothing (decision 0028). Run by scripts/build.mjs in a node
// with no V8 flags: V8 takes a cache only under the flags it was made with.
//
//   node scripts/fast-cache.mjs
import { createServer } from 'node:net';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Script } from 'node:vm';
import { createCodec } from '../dist/lib/protocol/codec.js';
import { encodeFrame } from '../dist/lib/protocol/framing.js';

const BIN = 'dist/bin';
const filename = join(process.cwd(), BIN, 'virtq-fast-body.js');
const script = new Script(readFileSync(filename, 'utf8'), { filename });
const mod = { exports: {} };
script.runInThisContext()(mod.exports, createRequire(filename), mod, filename, join(process.cwd(), BIN));
const { runFast } = mod.exports;

// Replies shaped as virtqemud's (listDomains' rows, getInfo's block, an error).
const row = (i) => ({ name: `vm${i}`, uuid: '69840ab8-de81-4b9e-b85a-0bc6f8056a14', state: i === 0 ? 'running' : 'shutoff', reason: 'defined', persistent: true, autostart: false, shimUp: i === 0 });
const info = { name: 'vm0', uuid: '69840ab8-de81-4b9e-b85a-0bc6f8056a14', state: 'shutoff', reason: 'defined', vcpus: 1, memoryMiB: 32, cpuTimeSec: 0.25, shimPid: 0, uptimeSec: 0, tainted: false, accel: '' };
const codec = createCodec();
function reply(call) {
  const head = { prog: call.prog, proc: call.proc, type: 'reply', serial: call.serial };
  if (call.proc === 'listDomains') return { ...head, status: 'ok', body: { domains: [0, 1, 2].map(row) } };
  if (call.body?.name === 'vm0') return { ...head, status: 'ok', body: info };
  return { ...head, status: 'error', body: { code: 'NO_DOMAIN', message: `no VM named "${call.body?.name}"` } };
}

const dir = mkdtempSync(join(tmpdir(), 'virtq-fast-cache-'));
const socket = join(dir, 'virtqemud.sock');
const server = createServer((conn) => {
  let got = Buffer.alloc(0);
  conn.on('data', (chunk) => {
    got = Buffer.concat([got, chunk]);
    if (got.length < 4 || got.length < 4 + got.readUInt32BE(0)) return;
    conn.end(encodeFrame(codec.encode(reply(codec.decode(got.subarray(4, 4 + got.readUInt32BE(0)))))));
  });
});
await new Promise((resolve) => server.listen(socket, resolve));
try {
  const uri = `qemu:///system?socket=${socket}`;
  const lines = [['--version'], ['-c', uri, 'list', '--all'], ['-c', uri, 'list', '--json'], ['-c', uri, 'list', '--state', 'running'],
    ['-c', uri, 'dominfo', 'vm0'], ['-c', uri, 'dominfo', 'vm0', '--json'], ['-c', uri, 'dominfo', 'nosuch']];
  for (const argv of lines) {
    let out = '';
    const status = await runFast(argv, { env: {}, uid: 0, write: (o, e) => { out = o + e; } });
    if (status === undefined || out === '') throw new Error(`fast-cache: ${argv.join(' ')} did not run on the fast path`);
  }
} finally {
  server.close();
  rmSync(dir, { recursive: true, force: true });
}
writeFileSync(join(BIN, 'virtq-fast.cache'), script.createCachedData());
