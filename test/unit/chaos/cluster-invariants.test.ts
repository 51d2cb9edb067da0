// The cluster chaos's instant invariants (test/chaos/cluster-invariants.ts) and its violation
// reports (cluster-report.ts): what a migration in flight may and may not excuse, and that a
// report file holds each violation's full text, rewritten whole.
import { afterEach, describe, expect, it } from 'vitest';
import { readFileSync, readdirSync } from 'node:fs';
import { instantProblems, type InFlight } from '../../chaos/cluster-invariants.js';
import { SeedReport, reportDir, type ViolationRecord } from '../../chaos/cluster-report.js';
import type { QemuOnHost } from '../../chaos/cluster-world.js';
import type { HolderRecord } from '../../../drivers/lock/lockspace.js';
import { tmpRoot, type TmpRoot } from '../../helpers/tmp-root.js';

const q = (name: string, host: string, pid: number, rwDisks: string[] = ['/d/d0.img']): QemuOnHost => ({ name, host, pid, uuid: `u-${name}`, rwDisks });
const lease = (vm: string, host: string, holderPid: number): HolderRecord => ({
  format: 1, resource: '/d/d0.img', mode: 'exclusive', host, vm, uuid: `u-${vm}`, shimPid: 1, holderPid, holderStart: 1, since: 0,
});
const labels = (ps: Array<{ invariant: string }>): string[] => ps.map((p) => p.invariant).sort();

describe('cluster chaos: S1–S3 at one instant', () => {
  const mig: InFlight[] = [{ name: 'a', from: 'host0', to: 'host1' }];

  it('finds a name running twice and a disk open read-write twice', () => {
    expect(labels(instantProblems([q('a', 'host0', 10), q('a', 'host1', 11)], [], []))).toEqual(['S1', 'S2']);
    expect(labels(instantProblems([q('a', 'host0', 10), q('b', 'host1', 11)], [], []))).toEqual(['S2']);
    expect(instantProblems([q('a', 'host0', 10), q('b', 'host1', 11, [])], [], [])).toEqual([]);
  });

  it('lets the two ends of a migration in flight each have a QEMU with the disk open, nothing more', () => {
    expect(instantProblems([q('a', 'host0', 10), q('a', 'host1', 11)], [], mig)).toEqual([]);
    // A third QEMU, a QEMU on a host that is not an end, or two on one end: still violations.
    expect(labels(instantProblems([q('a', 'host0', 10), q('a', 'host1', 11), q('a', 'host2', 12)], [], mig))).toEqual(['S1', 'S2']);
    expect(labels(instantProblems([q('a', 'host0', 10), q('a', 'host2', 12)], [], mig))).toEqual(['S1', 'S2']);
    expect(labels(instantProblems([q('a', 'host0', 10), q('a', 'host0', 12)], [], mig))).toEqual(['S1', 'S2']);
    // Another VM on the same disk is not excused by a's migration.
    expect(labels(instantProblems([q('a', 'host0', 10), q('b', 'host1', 11)], [], mig))).toEqual(['S2']);
  });

  it('never excuses two exclusive lease holders, migration or not', () => {
    expect(labels(instantProblems([], [lease('a', 'host0', 20), lease('a', 'host1', 21)], mig))).toEqual(['S3']);
    expect(instantProblems([], [lease('a', 'host0', 20), { ...lease('b', 'host1', 21), mode: 'shared' }], mig)).toEqual([]);
  });
});

describe('cluster chaos: the report file', () => {
  let root: TmpRoot | undefined;
  afterEach(() => root?.remove());

  it('holds every violation in full, then the logs kept and the trace', () => {
    root = tmpRoot('vqccr-');
    const r = new SeedReport(root.path('reports'), 212011, new Date('2026-12-04T14:00:00Z'));
    const v: ViolationRecord = {
      seed: 212011, step: 7, operation: 'migrate cc-2 host2→host1 (under way)', fault: 'kill -9 virtqemud of host2 100 ms into the op',
      invariant: 'C3', seen: 'after step 7: not converged within 20000 ms: etcd says host2 holds cc-2, listed by no host', at: '2026-12-04T14:01:00.000Z',
      world: 'host0 lists: nothing\netcd names/: cc-2→host2 (u)',
    };
    r.add(v);
    r.add({ ...v, invariant: 'XX', seen: 'second' });
    const text = readFileSync(r.file, 'utf8');
    expect(text).toContain('cluster chaos seed 212011: 2 violation(s)');
    expect(text).toContain('=== violation 1: C3 at step 7');
    expect(text).toContain(`operation: ${v.operation}`);
    expect(text).toContain(`fault:     ${v.fault}`);
    expect(text).toMatch(/expected: {2}within the converge bound: etcd's names\/ and uuids\/ claims/);
    expect(text).toContain(`seen:      ${v.seen}`);
    expect(text).toContain('etcd names/: cc-2→host2 (u)');
    expect(text).toContain('=== violation 2: XX at step 7');
    r.finish(['step 0: define cc-0 on host0 → ok'], [{ host: 'host0', dir: root.path('no-such-log-dir') }]);
    const done = readFileSync(r.file, 'utf8');
    expect(done).toContain('--- trace ---\nstep 0: define cc-0 on host0 → ok');
    expect(done).toContain('=== violation 2');
    // Written by rename: no temporary file is left beside it.
    expect(readdirSync(root.path('reports'))).toEqual([r.file.slice(r.file.lastIndexOf('/') + 1)]);
  });

  it('writes nothing for a clean seed, and goes where VIRTQ_CHAOS_REPORT_DIR says', () => {
    root = tmpRoot('vqccr-');
    const r = new SeedReport(root.path('reports'), 1, new Date());
    r.finish(['trace'], []);
    expect(() => readdirSync(root?.path('reports') ?? '')).toThrow();
    expect(reportDir({ VIRTQ_CHAOS_REPORT_DIR: '/x/y' })).toBe('/x/y');
    expect(reportDir({})).toMatch(/virtq-cluster-chaos$/);
  });
});
