// Hostile VM names: path separators, "..", NUL, 10 kB strings and Unicode look-alikes, in every
// procedure that takes a name (derived from the catalogue) on virtqemud and on a shim, in
// definitions, on the shim's command line and in state files read at recovery. Names are plain
// ASCII by contract, so all of these are refused with INVALID_ARG, and no file appears outside
// the root.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { randomBytes, randomUUID } from 'node:crypto';
import { RpcClient, parseUri, shimDir, virtqProgram, vmProcs, type ProcSpec } from '../../protocol/index.js';
import { DaemonHarness } from '../helpers/daemon-harness.js';
import { SHIM_BIN } from '../helpers/shim-harness.js';
import { idleGuest } from '../helpers/test-guest.js';
import { tmpRoot } from '../helpers/tmp-root.js';

// A token in every escaping name: any file named after one, anywhere, is an escape.
const TOKEN = `vq-escape-${randomBytes(4).toString('hex')}`;
const HOSTILE_NAMES = [
  `../${TOKEN}`, `../../${TOKEN}`, `../../../../../../../../tmp/${TOKEN}`, `/tmp/${TOKEN}`, `a/${TOKEN}`, `${TOKEN}/..`,
  '..', '.', '', '/', 'web1/', 'web1\\x', `${TOKEN}\0`, '\0', 'web\0../../x', 'x'.repeat(10 * 1024), 'x'.repeat(65),
  'w\u0435b1', // Cyrillic ie: "wеb1"
  'w\u0435b\u0430', // Cyrillic ie and a: "wеbа"
  '\uff57\uff45\uff42\uff11', // fullwidth "ｗｅｂ１"
  'web1\u200b', // zero-width space
  '\u202eweb1', // right-to-left override
  'e\u0301', // combining accent
  'web1\n', ' web1', 'web 1', '-web1', '.web1', 'web1%2f..', 'web1;rm', 'web1$(id)', 'ǅ',
];
const idleDef = (name: string) => ({ name, memoryMiB: 32, vcpus: 1, accel: 'tcg' as const, kernel: { path: idleGuest().kernel } });

/** The arguments a procedure needs besides `name`, so INVALID_ARG can only be about the name. */
const EXTRA: Record<string, Record<string, unknown>> = {
  attachDisk: { disk: { path: '/nonexistent.img', target: 'vdb' } },
  detachDisk: { target: 'vdb' },
  qemuMonitorCommand: { command: { execute: 'query-status' } },
  setAutostart: { autostart: true },
  attachInterface: { network: 'default' },
  detachInterface: { mac: '52:54:00:00:00:01' },
  save: { file: '/nonexistent/ghost.save' },
  snapshotCreate: { snapshot: 's1' },
  snapshotRevert: { snapshot: 's1' },
  snapshotDelete: { snapshot: 's1' },
  snapshotInfo: { snapshot: 's1' },
  migrate: { destUri: 'qemu:///system?root=/nonexistent/dest' },
};

/** Procedures of `program` whose arguments have a `name`. */
function namedProcs(procs: Record<string, ProcSpec>, role: 'shim' | 'aggregator'): string[] {
  return Object.entries(procs)
    .filter(([, spec]) => spec.servers.includes(role) && Object.hasOwn((spec.args as { properties?: object }).properties ?? {}, 'name'))
    .map(([proc]) => proc);
}

/** Every file and directory under `dir`, relative to it. */
function walk(dir: string, base = dir): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    return [relative(base, p), ...(e.isDirectory() ? walk(p, base) : [])];
  });
}

/** Files named after the token outside `root` (the temp dir, the root's parents) and inside it. */
function escapes(root: string): string[] {
  const outside = [tmpdir(), '/tmp', join(root, '..')].flatMap((d) => readdirSync(d).filter((f) => f.includes(TOKEN)).map((f) => join(d, f)));
  const inside = walk(root).filter((p) => p.includes(TOKEN) || /[^\x20-\x7e]/.test(p));
  return [...outside, ...inside];
}

describe('hostile names', () => {
  let h: DaemonHarness;
  let rw: RpcClient;
  let shim: { rw: RpcClient; ro: RpcClient };

  beforeAll(async () => {
    h = new DaemonHarness(tmpRoot());
    await h.startDaemon(['--reconcile-ms', '0']);
    rw = (await h.client()).rpc;
    await rw.call('virtq', 'define', { definition: idleDef('good1') });
    const row = await rw.call('virtq', 'create', { definition: idleDef('run1') }) as { shimSocket: string };
    shim = { rw: (await h.connect(row.shimSocket)).rpc, ro: (await h.connect(row.shimSocket.replace(/\.sock$/, '-ro.sock'))).rpc };
  });
  afterAll(async () => { await h.cleanup(); });

  it('refuses them with INVALID_ARG in every procedure of virtqemud that takes a name', async () => {
    const procs = namedProcs(virtqProgram.procs, 'aggregator');
    expect(procs).toEqual(expect.arrayContaining(['getState', 'lookupByName', 'undefine', 'start', 'setAutostart', 'qemuMonitorCommand', 'openConsole', 'subscribeEvents']));
    for (const proc of procs) {
      // The other arguments are right: an unknown but valid name is NO_DOMAIN, not INVALID_ARG.
      await expect(rw.call('virtq', proc, { name: 'ghost1', ...EXTRA[proc] }), proc).rejects.toMatchObject({ code: 'NO_DOMAIN' });
      for (const name of HOSTILE_NAMES) {
        await expect(rw.call('virtq', proc, { name, ...EXTRA[proc] }), `${proc} ${JSON.stringify(name).slice(0, 40)}`)
          .rejects.toMatchObject({ code: 'INVALID_ARG', details: { path: '/name' } });
      }
    }
  });

  it('refuses them with INVALID_ARG in every procedure of a shim that takes a name, on both sockets', async () => {
    const procs = namedProcs(vmProcs, 'shim');
    expect(procs.length).toBeGreaterThan(10);
    for (const proc of procs) {
      const readonly = (vmProcs as Record<string, ProcSpec>)[proc]?.readonly === true;
      for (const c of readonly ? [shim.rw, shim.ro] : [shim.rw]) {
        await expect(c.call('virtq', proc, { name: 'ghost1', ...EXTRA[proc] }), proc).rejects.toMatchObject({ code: 'NO_DOMAIN' });
        for (const name of HOSTILE_NAMES) {
          await expect(c.call('virtq', proc, { name, ...EXTRA[proc] }), `${proc} ${JSON.stringify(name).slice(0, 40)}`)
            .rejects.toMatchObject({ code: 'INVALID_ARG', details: { path: '/name' } });
        }
      }
    }
  });

  it('refuses them in definitions (define and create) and in registrations, leaving the listing as it was', async () => {
    for (const name of HOSTILE_NAMES) {
      for (const proc of ['define', 'create']) {
        await expect(rw.call('virtq', proc, { definition: idleDef(name) }), `${proc} ${JSON.stringify(name).slice(0, 40)}`)
          .rejects.toMatchObject({ code: 'INVALID_ARG', details: { path: '/definition/name' } });
      }
      await expect(rw.call('registry', 'register', {
        name, uuid: '00000000-0000-4000-8000-000000000001', shimPid: 1, socket: '/x', roSocket: '/x', adminSocket: '/x', stateFile: '/x', state: 'shutoff', reason: 'x', reattach: false,
      })).rejects.toMatchObject({ code: 'INVALID_ARG', details: { path: '/name' } });
    }
    const rows = (await rw.call('virtq', 'listDomains', {})) as { domains: Array<{ name: string }> };
    expect(rows.domains.map((r) => r.name).sort()).toEqual(['good1', 'run1']);
    expect(escapes(h.root.dir)).toEqual([]);
  });

  it('never turns a hostile name on the shim command line into a path', () => {
    // Before: the log file was opened as log/NAME.log before the definition was validated, so a
    // definition named "../../NAME" created a file outside the root.
    for (const name of [`../../${TOKEN}`, `../../../../../../../../tmp/${TOKEN}`, `/tmp/${TOKEN}`, `a/${TOKEN}`, '..', '', 'w\u0435b1', 'web1\n']) {
      const file = h.root.path('hostile.json');
      writeFileSync(file, JSON.stringify(idleDef(name)));
      const r = spawnSync(process.execPath, [SHIM_BIN, '--root', h.root.dir, '--no-register', '--definition', file], { encoding: 'utf8', timeout: 30_000 });
      expect(r.status, name).toBe(1);
      expect(JSON.parse(r.stdout.split('\n')[0] as string)).toMatchObject({ ok: false, error: { code: 'INVALID_ARG', message: expect.stringContaining('/name') } });
      const attach = spawnSync(process.execPath, [SHIM_BIN, '--root', h.root.dir, '--no-register', `--attach=${name}`], { encoding: 'utf8', timeout: 30_000 });
      expect(attach.status, name).not.toBe(0);
      expect(attach.stderr).toMatch(/INVALID_ARG|not a valid VM name|nothing to attach to/);
    }
    expect(escapes(h.root.dir)).toEqual([]);
  });

  it('refuses them in shim:///NAME URIs, whose name becomes a state file path', () => {
    // Before: shim:///%00 reached readFile and failed as INTERNAL with Node's message.
    for (const name of HOSTILE_NAMES.filter((n) => n !== '' && !n.includes('/') && !/^\.\.?$/.test(n))) {
      expect(() => parseUri(`shim:///${encodeURIComponent(name)}?root=/x`), JSON.stringify(name).slice(0, 40)).toThrowError(expect.objectContaining({ code: 'INVALID_ARG' }));
    }
    expect(parseUri('shim:///web1?root=/x')).toMatchObject({ kind: 'shim-name', name: 'web1' });
  });

  it('never follows a name from a state file out of the shims directory at recovery', async () => {
    // Before: recovery deleted (later: rewrote) run/shims/NAME.json of a VM found stopped, with
    // NAME read from inside the file, so "../../victim" reached files outside run/shims.
    const r = new DaemonHarness(tmpRoot());
    try {
      const victims = ['victim-stopped', 'victim-crashed', 'victim-deep'].map((v) => r.root.path(`${v}.json`));
      for (const v of victims) writeFileSync(v, 'precious\n');
      const dir = shimDir(r.layout);
      mkdirSync(dir, { recursive: true });
      const state = (name: string, s: string) => JSON.stringify({
        format: 1, name, uuid: randomUUID(), shimPid: 999_999, qemuPid: s === 'running' ? 999_998 : undefined, accel: 'tcg',
        sockets: { rw: `${dir}/x.sock`, ro: `${dir}/x-ro.sock`, admin: `${dir}/x-admin.sock`, monitor: `${dir}/x-qmp.sock`, console: `${dir}/x-console.sock` },
        definition: idleDef('x'), state: s, reason: 'x', tainted: false, private: false, updatedAt: 0,
      });
      writeFileSync(join(dir, 'evil1.json'), state('../../victim-stopped', 'shutoff'));
      writeFileSync(join(dir, 'evil2.json'), state('../../victim-crashed', 'running'));
      writeFileSync(join(dir, 'evil3.json'), state('a/../../../victim-deep', 'crashed'));
      await r.startDaemon(['--reconcile-ms', '0']);
      const { api } = await r.client();
      expect((await api.listDomains({})).domains).toEqual([]);
      for (const v of victims) expect(readFileSync(v, 'utf8'), v).toBe('precious\n');
    } finally {
      await r.cleanup();
    }
  });
});

