// dist/bin/virtq.js run as a program: its shell head execs node on the CLI's startup snapshot
// when one built by this node binary sits beside it, else node on the file itself
// (docs/decisions/0028-cli-startup-snapshot.md). For a command line with a hot word in it (list,
// dominfo, --version, -V) it execs node on the fast path instead (virtq-fast.cjs;
// test/e2e/cli-fast.test.ts compares it with the full CLI), which runs what it does not take —
// `help list` — on the full CLI's bundle in its own process. All paths must behave the same,
// through a symlink (how npm installs the bin) and with the snapshot or the fast path missing or
// turned off.
import { execFile } from 'node:child_process';
import { copyFileSync, readdirSync, symlinkSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { tmpRoot, type TmpRoot } from '../helpers/tmp-root.js';

const BIN = new URL('../../dist/bin/virtq.js', import.meta.url).pathname;
const exec = promisify(execFile);
// The node running the tests first on PATH: the snapshot is keyed to that binary.
const env: NodeJS.ProcessEnv = { ...process.env, PATH: `${dirname(process.execPath)}:${process.env['PATH'] ?? ''}` };
delete env['VIRTQ_DEFAULT_URI'];

async function run(cmd: string, args: string[], extra: NodeJS.ProcessEnv = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await exec(cmd, args, { env: { ...env, ...extra } });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

describe('the virtq launcher', () => {
  let tmp: TmpRoot | undefined;
  afterEach(() => { tmp?.remove(); tmp = undefined; });

  it('has a snapshot beside it after the build, and runs on it', async () => {
    expect(readdirSync(dirname(BIN)).filter((f) => /^virtq-.*\.blob$/.test(f))).toHaveLength(1);
    const traced = await run('sh', ['-x', BIN, 'help', 'start']);
    expect(traced.code).toBe(0);
    expect(traced.stdout).toContain('Usage: virtq start');
    expect(traced.stderr).toMatch(/exec \S+ --snapshot-blob \S+\.blob -- /);
    expect(traced.stderr).not.toContain('virtq-fast.cjs');
  });

  it('gives the command line to the CLI verbatim (options, spaces), the same with and without the snapshot', async () => {
    const args = ['-c', 'qemu:///system?root=/tmp/no such root', '--json', 'list', '--all'];
    const snap = await run(BIN, args);
    const plain = await run(BIN, args, { VIRTQ_NO_SNAPSHOT: '1' });
    const bare = await run(process.execPath, [BIN, ...args]);
    expect(snap.code).toBe(1);
    expect(snap.stderr).toContain('/tmp/no such root/run/virtqemud.sock');
    expect(plain).toEqual(snap);
    expect(bare).toEqual(snap);
    const usage = await run(BIN, ['list', '--bogus']);
    expect(usage.code).toBe(2);
    expect(usage).toEqual(await run(BIN, ['list', '--bogus'], { VIRTQ_NO_SNAPSHOT: '1' }));
  });

  it('runs through a symlink (as npm installs it) on the snapshot', async () => {
    tmp = tmpRoot('vq-launch-');
    symlinkSync(BIN, tmp.path('virtq'));
    const traced = await run('sh', ['-x', tmp.path('virtq'), 'help', 'start']);
    expect(traced.stdout).toContain('Usage: virtq start');
    expect(traced.stderr).toContain(`--snapshot-blob ${dirname(BIN)}/`);
  });

  it('execs the fast path for a hot word, which runs what it does not take on the full CLI in the same process', async () => {
    tmp = tmpRoot('vq-launch-');
    symlinkSync(BIN, tmp.path('virtq'));
    const traced = await run('sh', ['-x', tmp.path('virtq'), 'help', 'list']);
    expect(traced.stdout).toContain('Usage: virtq list');
    // exec'd: no status of the fast path comes back to sh, and sh starts nothing after it.
    expect(traced.stderr).toContain(`+ exec node ${dirname(BIN)}/virtq-fast.cjs help list`);
    expect(traced.stderr).not.toContain('--snapshot-blob');
    for (const args of [['help', 'list'], ['list', '--bogus'], ['-V', 'list']]) {
      const full = await run(BIN, args, { VIRTQ_NO_FAST: '1' });
      expect(await run(tmp.path('virtq'), args), args.join(' ')).toEqual(full);
    }
    // The probe the e2e test uses: exit 75, nothing printed, for a command line it does not take.
    expect(await run(process.execPath, [join(dirname(BIN), 'virtq-fast.cjs'), 'help', 'list'], { VIRTQ_FAST_PROBE: '1' })).toEqual({ code: 75, stdout: '', stderr: '' });
  });

  it('answers --version alone itself (no node), through a symlink too, and skips that with VIRTQ_NO_FAST=1', async () => {
    tmp = tmpRoot('vq-launch-');
    symlinkSync(BIN, tmp.path('virtq'));
    const own = await run('sh', ['-x', tmp.path('virtq'), '--version']);
    expect(own.stdout).toBe('0.1.0\n');
    expect(own.stderr).toContain('echo 0.1.0');
    expect(own.stderr).not.toContain('node ');
    // -V with a command after it is not "alone": the fast path (node) sees it.
    const fast = await run('sh', ['-x', tmp.path('virtq'), '-V', 'list']);
    expect(fast.stdout).toBe('0.1.0\n');
    expect(fast.stderr).toContain(`exec node ${dirname(BIN)}/virtq-fast.cjs -V list`);
    const full = await run('sh', ['-x', tmp.path('virtq'), '--version'], { VIRTQ_NO_FAST: '1' });
    expect(full.stdout).toBe('0.1.0\n');
    expect(full.stderr).not.toContain('echo 0.1.0');
    expect(full.stderr).not.toContain('virtq-fast.cjs');
    expect(full.stderr).toContain('--snapshot-blob');
  });

  it('falls back to the bundle when no snapshot is beside it', async () => {
    tmp = tmpRoot('vq-launch-');
    copyFileSync(BIN, tmp.path('virtq.js'));
    const traced = await run('sh', ['-x', tmp.path('virtq.js'), 'help', 'list']);
    expect(traced.code).toBe(0);
    expect(traced.stdout).toContain('Usage: virtq list');
    expect(traced.stderr).not.toContain('--snapshot-blob');
    expect(traced.stderr).not.toContain('virtq-fast.cjs help');
    expect(traced.stderr).toContain(`exec node ${join(tmp.dir, 'virtq.js')} help list`);
  });
});
