// Issue 15 target 2: what a shim no longer loads or keeps at start still works on first use.
// node:http (the --metrics endpoint) and node:tls (remote daemons, TLS listeners) are loaded when
// first used, and the shebang's MALLOC_ARENA_MAX tunes the shim's own heap, not QEMU's. A running
// shim has not loaded node:crypto (its SHA-256 and UUIDs need no OpenSSL) nor worker_threads, nor
// cbor-x's native addon; its log lines, written without pino, are still pino's.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { get } from 'node:http';
import { createServer } from 'node:net';
import { guestDefinition, SHIM_BIN, ShimHarness } from '../helpers/shim-harness.js';
import { tmpRoot } from '../helpers/tmp-root.js';

const DIST_LIB = new URL('../../dist/lib/', import.meta.url).pathname;

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

function scrape(url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    get(url, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => { body += d; }).on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    }).once('error', reject);
  });
}

function environ(pid: number): Map<string, string> {
  return new Map(readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').filter((l) => l !== '').map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
}

describe('virtq-shim lazy loading', () => {
  let h: ShimHarness;
  beforeEach(() => { h = new ShimHarness(tmpRoot(), ['env', 'MALLOC_ARENA_MAX=2']); });
  afterEach(async () => { await h.cleanup(); });

  it('loads node:http and node:tls only on first use, and both work then', () => {
    // A fresh process (the test runner has both loaded): importing the modules loads neither;
    // serving HTTP loads node:http and answers; a TLS context loads node:tls.
    const script = `
      const has = (m) => process.moduleLoadList.includes('NativeModule ' + m);
      const { serveHttp, metricsRoute } = await import(${JSON.stringify(`${DIST_LIB}daemon/http-server.js`)});
      const { nodeTls, silentLogger } = await import(${JSON.stringify(`${DIST_LIB}protocol/index.js`)});
      const before = { http: has('http'), tls: has('tls') };
      const registry = { metrics: async () => 'virtq_lazy 1\\n' };
      const { server, port } = await serveHttp('127.0.0.1:0', metricsRoute(registry), silentLogger());
      const res = await fetch('http://127.0.0.1:' + port + '/metrics');
      const body = await res.text();
      server.close();
      const tlsOk = typeof nodeTls().createSecureContext({}) === 'object';
      console.log(JSON.stringify({ before, status: res.status, body, after: { http: has('http'), tls: has('tls') }, tlsOk }));
    `;
    const out = JSON.parse(execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', cwd: new URL('../..', import.meta.url).pathname, timeout: 60_000 })) as unknown;
    expect(out).toEqual({ before: { http: false, tls: false }, status: 200, body: 'virtq_lazy 1\n', after: { http: true, tls: true }, tlsOk: true });
  }, 90_000);

  it('serves --metrics on its first scrape, and QEMU runs without the shim-only MALLOC_ARENA_MAX', async () => {
    expect(readFileSync(SHIM_BIN, 'utf8').split('\n')[0]).toContain('MALLOC_ARENA_MAX=2');
    const port = await freePort();
    const vm = await h.start(guestDefinition('lazy1'), ['--no-register', '--metrics', `127.0.0.1:${port}`]);
    expect(vm.reply).toMatchObject({ ok: true, state: 'running' });
    const first = await scrape(`http://127.0.0.1:${port}/metrics`);
    expect(first.status).toBe(200);
    expect(first.body).toMatch(/^virtq_/m);
    // The admin and console paths still answer beside it.
    await expect(vm.api.getState({ name: 'lazy1' })).resolves.toMatchObject({ state: 'running' });
    const con = await h.console(vm.rpc, 'lazy1');
    await con.reader.waitFor('GUEST-READY', 60_000);
    con.close();

    const shimPid = vm.proc.pid as number;
    const qemuPid = vm.reply.qemuPid as number;
    expect(environ(shimPid).get('MALLOC_ARENA_MAX')).toBe('2');
    expect(environ(qemuPid).has('MALLOC_ARENA_MAX')).toBe(false);
    await expect(vm.api.destroy({ name: 'lazy1' })).resolves.toMatchObject({ state: 'shutoff' });
  }, 180_000);

  it('runs a VM, serves its API and console, and leaves node:crypto and worker_threads unloaded', async () => {
    // A preload (through NODE_OPTIONS) writes the built-ins the shim has loaded, on request.
    const root = tmpRoot();
    const preload = join(root.dir, 'builtins.mjs');
    const out = join(root.dir, 'builtins.json');
    // It also lists the CommonJS files loaded: TypeBox's compiler (dist/bin/virtq-shim-typebox.cjs) only once a check fails.
    // It writes a temp file and renames it, so the poll below never reads a half-written file.
    writeFileSync(preload, `import { renameSync, writeFileSync } from 'node:fs';\nimport { createRequire } from 'node:module';\nconst cache = createRequire(import.meta.url).cache;\nprocess.on('SIGWINCH', () => { writeFileSync(${JSON.stringify(out + '.tmp')}, JSON.stringify({ builtins: process.moduleLoadList.filter((m) => m.startsWith('NativeModule ')).map((m) => m.slice(13)), cjs: Object.keys(cache) })); renameSync(${JSON.stringify(out + '.tmp')}, ${JSON.stringify(out)}); });\n`);
    const dump = async (pid: number): Promise<{ builtins: string[]; cjs: string[] }> => {
      rmSync(out, { force: true });
      process.kill(pid, 'SIGWINCH');
      for (let i = 0; i < 100 && !existsSync(out); i++) await sleep(100);
      return JSON.parse(readFileSync(out, 'utf8')) as { builtins: string[]; cjs: string[] };
    };
    const hh = new ShimHarness(root, ['env', `NODE_OPTIONS=--import=${preload}`]);
    try {
      // The definition has no UUID: the shim makes one (randomUuid, not node:crypto's).
      const vm = await hh.start(guestDefinition('lazy2'), ['--no-register']);
      expect(vm.reply).toMatchObject({ ok: true, state: 'running' });
      expect(vm.reply.uuid).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      await expect(vm.api.getState({ name: 'lazy2' })).resolves.toMatchObject({ state: 'running' });
      const con = await hh.console(vm.rpc, 'lazy2');
      await con.reader.waitFor('GUEST-READY', 60_000);
      con.close();
      const { builtins: loaded, cjs } = await dump(vm.proc.pid as number);
      expect(loaded).toContain('net');
      expect(loaded.filter((m) => ['crypto', 'worker_threads', 'tls', 'http', 'v8'].includes(m))).toEqual([]);
      // Its checks were generated at build time: TypeBox's compiler is loaded for a failed one, to word its error.
      expect(cjs.filter((f) => f.endsWith('virtq-shim-typebox.cjs'))).toEqual([]);
      await expect(vm.rpc.call('virtq', 'getState', { name: 7 })).rejects.toMatchObject({ code: 'INVALID_ARG', message: 'invalid arguments of getState: /name: Expected string' });
      expect((await dump(vm.proc.pid as number)).cjs.filter((f) => f.endsWith('virtq-shim-typebox.cjs'))).toHaveLength(1);
      // No native addon either (cbor-x decodes in JS in the shim), and its log lines (written
      // without pino) are pino's JSON lines with the VM and module bound.
      expect(readFileSync(`/proc/${vm.proc.pid as number}/maps`, 'latin1')).not.toContain('cbor-extract');
      const lines = readFileSync(join(root.dir, 'log', 'lazy2.log'), 'utf8').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Record<string, unknown>);
      expect(lines.length).toBeGreaterThan(0);
      expect(lines[0]).toMatchObject({ level: expect.any(Number), time: expect.any(Number), pid: vm.proc.pid, vm: 'lazy2', name: 'virtq-shim', module: expect.any(String) });
      await expect(vm.api.destroy({ name: 'lazy2' })).resolves.toMatchObject({ state: 'shutoff' });
    } finally {
      await hh.cleanup();
    }
  }, 180_000);
});
