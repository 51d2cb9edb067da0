// The CLI's fast path for hot read commands (cli/fast-main.ts, decision 0028) against a real
// virtqemud under a temporary root: every command line runs through the launcher twice, with
// the fast path and with VIRTQ_NO_FAST=1 (the full CLI), and stdout, stderr and the exit status
// must be the same byte for byte. A shell trace of a third run shows the launcher exec'd the fast
// path, and a fourth run of virtq-fast.cjs with VIRTQ_FAST_PROBE=1 (exit 75 instead of loading the
// full CLI in-process) tells whether it took the command line or handed it over, so a fast path
// that silently hands everything over fails; `--version` or `-V` alone the launcher answers itself
// (sh's `echo`, no node at all).
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DaemonHarness } from '../helpers/daemon-harness.js';
import { idleGuest } from '../helpers/test-guest.js';
import { tmpRoot } from '../helpers/tmp-root.js';
import { runOutcome, type Outcome } from '../helpers/run-outcome.js';
import { VIRTQ_BIN } from './virtq-cli.js';

const FAST_BIN = join(dirname(VIRTQ_BIN), 'virtq-fast.cjs');
const idleDef = (name: string) => ({ name, memoryMiB: 32, vcpus: 1, accel: 'tcg' as const, kernel: { path: idleGuest().kernel } });

describe('the fast path of virtq list, dominfo and --version', () => {
  let h: DaemonHarness;
  let uri: string;
  const baseEnv = (extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv => {
    // The node running the tests first on PATH (the snapshot is keyed to it); no default URI from outside.
    const env: NodeJS.ProcessEnv = { ...process.env, PATH: `${dirname(process.execPath)}:${process.env['PATH'] ?? ''}`, ...extra };
    if (extra['VIRTQ_DEFAULT_URI'] === undefined) delete env['VIRTQ_DEFAULT_URI'];
    if (extra['XDG_CONFIG_HOME'] === undefined) env['XDG_CONFIG_HOME'] = h.root.path('no-config');
    return env;
  };

  /** Runs `args` both ways and through a trace; expects equal outcomes and says whether the fast path took it. */
  async function both(args: readonly string[], extra: NodeJS.ProcessEnv = {}): Promise<{ outcome: Outcome; fast: boolean; bySh: boolean }> {
    // At once: the machine is shared and loaded, and the three runs are independent.
    const [fast, full, traced, probe] = await Promise.all([
      runOutcome(VIRTQ_BIN, args, baseEnv(extra)), runOutcome(VIRTQ_BIN, args, baseEnv({ ...extra, VIRTQ_NO_FAST: '1' })), runOutcome('sh', ['-x', VIRTQ_BIN, ...args], baseEnv(extra)),
      runOutcome(process.execPath, [FAST_BIN, ...args], baseEnv({ ...extra, VIRTQ_FAST_PROBE: '1' })),
    ]);
    expect(fast, `virtq ${args.join(' ')}`).toEqual(full);
    const trace = traced.stderr.split('\n').filter((l) => l.startsWith('+ '));
    // The launcher runs the fast path only when a word of the command line could make it a hot command.
    const eligible = args.some((a) => ['list', 'dominfo', '--version', '-V'].includes(a));
    const bySh = trace.some((l) => l.startsWith('+ echo '));
    expect(trace.some((l) => l.includes('virtq-fast.cjs')), 'the launcher ran the fast path').toBe(eligible && !bySh);
    // exec'd, not waited for: sh is gone once node runs, whatever node then does.
    if (eligible && !bySh) expect(trace.some((l) => l.startsWith(`+ exec node ${FAST_BIN} `) || l === `+ exec node ${FAST_BIN}`)).toBe(true);
    const tookIt = probe.code !== 75;
    // A probe that took it printed what the launcher's run printed; one that handed over printed nothing.
    expect(probe, `virtq-fast.cjs ${args.join(' ')}`).toEqual(tookIt ? fast : { code: 75, stdout: '', stderr: '' });
    return { outcome: fast, fast: bySh || (eligible && tookIt), bySh };
  }

  beforeAll(async () => {
    h = new DaemonHarness(tmpRoot('vqfast-'));
    expect((await h.startDaemon()).reply.ok).toBe(true);
    uri = `qemu:///system?root=${h.root.dir}`;
    const { api } = await h.client();
    for (const name of ['alpha', 'beta', 'gamma']) await api.define({ definition: idleDef(name) });
    await api.setAutostart({ name: 'beta', autostart: true });
    await api.start({ name: 'gamma' });
  });
  afterAll(async () => { await h.cleanup(); });

  it('runs --version and -V itself', async () => {
    for (const flag of ['--version', '-V']) {
      const r = await both([flag]);
      expect(r).toEqual({ outcome: { code: 0, stdout: '0.1.0\n', stderr: '' }, fast: true, bySh: true });
    }
    // The launcher's answer is the full CLI's version, not a copy that could drift from it.
    const full = await runOutcome(process.execPath, [VIRTQ_BIN, '--version'], baseEnv());
    expect(full).toEqual({ code: 0, stdout: '0.1.0\n', stderr: '' });
    // Anything beside the flag is not the launcher's: `-V list` goes on (to the full CLI).
    expect((await both(['-V', 'list'])).bySh).toBe(false);
  });

  it('exits 0 from --version when stdout is closed, as the full CLI does', async () => {
    for (const extra of [{}, { VIRTQ_NO_FAST: '1' }]) {
      const r = await runOutcome('sh', ['-c', `"$0" --version >&-; echo "status $?"`, VIRTQ_BIN], baseEnv(extra));
      expect(r.stdout, JSON.stringify(extra)).toBe('status 0\n');
    }
  });

  it('lists as the full CLI does: active, --all, --json, --state, options before and after the command', async () => {
    const active = await both(['-c', uri, 'list']);
    expect(active.fast).toBe(true);
    expect(active.outcome.stdout).toMatch(/^ gamma\s+running\s/m);
    expect(active.outcome.stdout).not.toContain('alpha');
    const all = await both(['-c', uri, 'list', '--all']);
    expect(all.fast).toBe(true);
    expect(all.outcome.stdout.split('\n').filter((l) => /^ (alpha|beta|gamma) /.test(l))).toHaveLength(3);
    for (const args of [
      ['-c', uri, 'list', '--all', '--json'], ['--json', 'list', '--all', '--connect', uri], ['list', `--connect=${uri}`, '--inactive'],
      ['-c', uri, 'list', '--state', 'shutoff'], ['-c', uri, 'list', '--state=running', '--json'], ['-c', uri, 'list', '--persistent', '--transient'],
      ['-c', `${uri}&mode=ro`, 'list', '--all'],
    ]) {
      const r = await both(args);
      expect(r.fast, args.join(' ')).toBe(true);
      expect(r.outcome.code).toBe(0);
    }
    const json = JSON.parse((await both(['-c', uri, 'list', '--all', '--json'])).outcome.stdout) as Array<{ name: string; autostart: boolean }>;
    expect(json.map((r) => [r.name, r.autostart]).sort()).toEqual([['alpha', false], ['beta', true], ['gamma', false]]);
  }, 180_000);

  it('takes the default URI from VIRTQ_DEFAULT_URI and from client.json, as the full CLI does', async () => {
    expect((await both(['list', '--all'], { VIRTQ_DEFAULT_URI: uri })).fast).toBe(true);
    mkdirSync(h.root.path('config', 'virtq'), { recursive: true });
    writeFileSync(h.root.path('config', 'virtq', 'client.json'), JSON.stringify({ uri_default: uri }));
    const r = await both(['list', '--all'], { XDG_CONFIG_HOME: h.root.path('config') });
    expect(r.fast).toBe(true);
    expect(r.outcome.stdout).toContain(' beta ');
    // A broken client.json is the full CLI's error to print.
    writeFileSync(h.root.path('config', 'virtq', 'client.json'), '{ nope');
    const bad = await both(['list'], { XDG_CONFIG_HOME: h.root.path('config') });
    expect(bad).toMatchObject({ fast: false, outcome: { code: 1 } });
  });

  it('shows dominfo, as a block and as JSON', async () => {
    const block = await both(['-c', uri, 'dominfo', 'beta']);
    expect(block.fast).toBe(true);
    expect(block.outcome.stdout).toMatch(/^Name: +beta$/m);
    const json = await both(['-c', uri, 'dominfo', 'alpha', '--json']);
    expect(json.fast).toBe(true);
    expect(JSON.parse(json.outcome.stdout)).toMatchObject({ name: 'alpha', state: 'shutoff' });
  });

  it('prints the daemon\'s errors and NO_CONNECT as the full CLI does', async () => {
    const missing = await both(['-c', uri, 'dominfo', 'missing']);
    expect(missing).toMatchObject({ fast: true, outcome: { code: 1, stdout: '', stderr: 'virtq: NO_DOMAIN: no VM named "missing"\n' } });
    const gone = await both(['-c', `qemu:///system?root=${join(h.root.dir, 'nothing-here')}`, 'list']);
    expect(gone).toMatchObject({ fast: true, outcome: { code: 1, stdout: '' } });
    expect(gone.outcome.stderr).toMatch(/^virtq: NO_CONNECT: cannot connect to .*nothing-here\/run\/virtqemud\.sock: no such socket \(is virtqemud running for /);
  });

  it('hands everything else to the full CLI unchanged', async () => {
    for (const args of [
      ['-c', 'bogus:///x', 'list'], ['-c', uri, 'list', '--bogus'], ['-c', uri, 'list', '--state', 'bogus'], ['-c', uri, 'list', '--all', '--all'],
      ['-c', uri, 'dominfo'], ['-c', uri, 'dominfo', 'a', 'b'], ['help', 'list'], ['list', '--help'], ['--version', 'list'],
      ['-c', `shim:///gamma?root=${h.root.dir}`, 'list'], ['-c', uri, 'domstate', 'alpha'], ['-c', uri, 'list', 'extra'],
    ]) {
      const r = await both(args);
      expect(r.fast, args.join(' ')).toBe(false);
    }
    expect((await both(['-c', uri, 'list', '--bogus'])).outcome).toMatchObject({ code: 2, stdout: '' });
    expect((await both(['-c', 'bogus:///x', 'list'])).outcome.code).toBe(2);
  }, 240_000);
});
