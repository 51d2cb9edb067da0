// The lean entry for vol-upload and vol-download (cli/transfer-main.ts, decision 0012) against a
// real virtstoraged: every command line runs through the launcher twice, on the lean entry and
// with VIRTQ_NO_FAST=1 (the full CLI), and stdout, stderr, the exit status and the bytes moved
// must be the same. A run of virtq-transfer.cjs with VIRTQ_FAST_PROBE=1 (exit 75 instead of
// loading the full CLI) tells whether the lean entry took the command line or handed it over,
// so a lean entry that silently hands everything over fails, and so does one that takes what it
// should leave. Ctrl-C cancels an upload on the lean entry as on the full CLI.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ServiceHarness } from '../helpers/service-harness.js';
import { tmpRoot } from '../helpers/tmp-root.js';
import { runOutcome, type Outcome } from '../helpers/run-outcome.js';

const CLI = new URL('../../dist/bin/virtq.js', import.meta.url).pathname;
const LEAN = join(dirname(CLI), 'virtq-transfer.cjs');
const MiB = 1024 * 1024;

describe('the lean entry of virtq vol-upload and vol-download', () => {
  let h: ServiceHarness;
  let uri: string;
  const env = (extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv => {
    const e: NodeJS.ProcessEnv = { ...process.env, PATH: `${dirname(process.execPath)}:${process.env['PATH'] ?? ''}`, XDG_CONFIG_HOME: h.root.path('no-config'), ...extra };
    if (extra['VIRTQ_DEFAULT_URI'] === undefined) delete e['VIRTQ_DEFAULT_URI'];
    return e;
  };
  const payload = randomBytes(3 * MiB + 123);

  /** Runs `args` (with `{out}` for a fresh output path) lean and full, one after the other; expects the same outcome and files; says whether the lean entry took it. */
  async function both(args: readonly string[], extra: NodeJS.ProcessEnv = {}): Promise<{ outcome: Outcome; lean: boolean }> {
    const outs: Array<Buffer | undefined> = [];
    const results: Outcome[] = [];
    for (const [k, more] of [['lean', {}], ['full', { VIRTQ_NO_FAST: '1' }]] as const) {
      const out = h.root.path(`out-${k}.bin`);
      rmSync(out, { force: true });
      const r = await runOutcome(CLI, args.map((a) => (a === '{out}' ? out : a)), env({ ...extra, ...more }));
      results.push({ ...r, stdout: r.stdout.replaceAll(out, '{out}'), stderr: r.stderr.replaceAll(out, '{out}') });
      outs.push(existsSync(out) ? readFileSync(out) : undefined);
    }
    expect(results[0], `virtq ${args.join(' ')}`).toEqual(results[1]);
    expect(outs[0]?.equals(outs[1] ?? Buffer.alloc(0)) ?? outs[1] === undefined).toBe(true);
    const probe = await runOutcome(process.execPath, [LEAN, ...args.map((a) => (a === '{out}' ? h.root.path('out-probe.bin') : a))], env({ ...extra, VIRTQ_FAST_PROBE: '1' }));
    rmSync(h.root.path('out-probe.bin'), { force: true });
    const lean = probe.code !== 75;
    if (!lean) expect(probe).toEqual({ code: 75, stdout: '', stderr: '' });
    return { outcome: results[0] as Outcome, lean };
  }

  beforeAll(async () => {
    h = new ServiceHarness(tmpRoot('vqlean-'));
    expect((await h.start('virtstoraged')).reply.ok).toBe(true);
    uri = h.uri('storage');
    writeFileSync(h.root.path('in.bin'), payload);
    const made = await runOutcome(CLI, ['-c', uri, 'vol-create-as', 'default', 'v.raw', '4M'], env());
    expect(made.code).toBe(0);
  });
  afterAll(async () => { await h.cleanup(); });

  it('uploads and downloads as the full CLI does, in every spelling it takes', async () => {
    const up = await both(['-c', uri, 'vol-upload', 'default', 'v.raw', h.root.path('in.bin')]);
    expect(up).toEqual({ lean: true, outcome: { code: 0, stdout: `Vol v.raw uploaded from ${h.root.path('in.bin')} (3.00 MiB)\n`, stderr: '' } });
    const down = await both(['vol-download', 'default', 'v.raw', '{out}', `--connect=${h.uri('qemu')}`]);
    expect(down).toEqual({ lean: true, outcome: { code: 0, stdout: 'Vol v.raw downloaded to {out} (3.00 MiB)\n', stderr: '' } });
    expect(readFileSync(h.root.path('out-lean.bin')).equals(payload)).toBe(true);
    // The launcher itself execs the lean entry (sh's trace), and not without the word.
    const traced = await runOutcome('sh', ['-x', CLI, '-c', uri, 'vol-upload', 'default', 'v.raw', h.root.path('in.bin')], env());
    expect(traced.stderr).toContain(`+ exec node ${LEAN} -c ${uri} vol-upload default v.raw`);
    expect((await runOutcome('sh', ['-x', CLI, '-c', uri, 'vol-list', 'default'], env())).stderr).not.toContain('virtq-transfer.cjs');
    const json = await both(['--json', 'vol-download', 'default', 'v.raw', '{out}'], { VIRTQ_DEFAULT_URI: h.uri('qemu') });
    expect(json.lean).toBe(true);
    const lines = json.outcome.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.at(-1)).toEqual({ pool: 'default', name: 'v.raw', bytes: payload.length });
    expect(lines.at(-2)).toEqual({ event: 'progress', doneBytes: payload.length, totalBytes: payload.length });
  }, 120_000);

  it('fails with the full CLI\'s error lines and statuses', async () => {
    expect(await both(['-c', uri, 'vol-upload', 'default', 'nope.raw', h.root.path('in.bin')])).toEqual({ lean: true, outcome: { code: 1, stdout: '', stderr: 'virtq: NO_STORAGE_VOL: volume "nope.raw" in pool "default" does not exist\n' } });
    expect(await both(['-c', uri, 'vol-upload', 'default', 'v.raw', h.root.path('missing.bin')])).toMatchObject({ lean: true, outcome: { code: 1, stderr: `virtq: INVALID_ARG: ${h.root.path('missing.bin')}: no such file\n` } });
    expect(await both(['-c', uri, 'vol-download', 'default', 'nope.raw', '{out}'])).toMatchObject({ lean: true, outcome: { code: 1 } });
    const other = `storage:///system?root=${h.root.path('elsewhere')}`;
    expect(await both(['-c', other, 'vol-upload', 'default', 'v.raw', h.root.path('in.bin')])).toMatchObject({ lean: true, outcome: { code: 1, stderr: expect.stringMatching(/^virtq: NO_CONNECT: cannot connect to .* \(is virtstoraged running for storage:\/\/\/system\?root=.*elsewhere\?\)\n$/) } });
  }, 120_000);

  it('hands what it does not take to the full CLI, having printed nothing', async () => {
    for (const args of [
      ['-c', uri, 'vol-upload', 'default', 'v.raw'], ['-c', uri, 'vol-upload', 'default', 'v.raw', 'a', 'b'], ['vol-upload', '--help'],
      [`-c${uri}`, 'vol-upload', 'default', 'v.raw', h.root.path('in.bin')], ['-c', 'bogus:///x', 'vol-upload', 'default', 'v.raw', h.root.path('in.bin')],
      ['-c', uri, '--json', '--json', 'vol-download', 'default', 'v.raw', '{out}'], ['-c', 'cluster:///?etcd=127.0.0.1:1', 'vol-upload', 'default', 'v.raw', h.root.path('in.bin')],
    ]) {
      const r = await both(args);
      expect(r.lean, args.join(' ')).toBe(false);
      expect(r.outcome.stdout + r.outcome.stderr, args.join(' ')).not.toBe('');
    }
    // A client.json the full CLI refuses: the full CLI says so.
    mkdirSync(h.root.path('no-config', 'virtq'), { recursive: true });
    writeFileSync(h.root.path('no-config', 'virtq', 'client.json'), '{');
    const bad = await both(['vol-upload', 'default', 'v.raw', h.root.path('in.bin')], { XDG_CONFIG_HOME: h.root.path('no-config') });
    expect(bad).toMatchObject({ lean: false, outcome: { code: 1 } });
    rmSync(h.root.path('no-config', 'virtq', 'client.json'));
  }, 240_000);

  it('cancels an upload on Ctrl-C: OPERATION_ABORTED, the volume as it was', async () => {
    const big = h.root.path('big.bin');
    writeFileSync(big, '');
    truncateSync(big, 768 * MiB);
    expect((await runOutcome(CLI, ['-c', uri, 'vol-create-as', 'default', 'big.raw', '768M'], env())).code).toBe(0);
    for (const more of [{}, { VIRTQ_NO_FAST: '1' }]) {
      const child = spawn(CLI, ['-c', uri, '--json', 'vol-upload', 'default', 'big.raw', big], { env: env(more), stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
      const code = await new Promise<number | null>((resolve) => {
        child.stdout.on('data', (d: Buffer) => {
          // The first progress event: the stream is open and bytes are moving.
          if (stdout === '') child.kill('SIGINT');
          stdout += d.toString();
        });
        child.once('exit', (c) => resolve(c));
      });
      expect({ code, stderr }, JSON.stringify(more)).toEqual({ code: 1, stderr: expect.stringMatching(/^virtq: OPERATION_ABORTED: upload of default\/big\.raw cancelled after \d+ of \d+ bytes\n$/) });
    }
    // Nothing half-made: the volume is the one made above, still 768 MiB and not filled.
    const info = await both(['-c', uri, '--json', 'vol-info', 'default', 'big.raw']);
    expect(JSON.parse(info.outcome.stdout)).toMatchObject({ name: 'big.raw', capacity: 768 * MiB, allocation: 0 });
  }, 180_000);
});
