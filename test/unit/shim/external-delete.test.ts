// Deleting external snapshots without QEMU: which snapshot may be merged (the top of its chains,
// no child) and what the refusal names; the persistent definition moved back onto the images; and
// the block-commit jobs against a scripted monitor: READY before any pivot, progress for
// domjobinfo, and an abort or a job error before the pivot cancels every job and pivots none.
import { describe, expect, it } from 'vitest';
import { normalizeDefinition, VirtqError } from '../../../protocol/index.js';
import type { HypervisorMonitor } from '../../../drivers/hypervisor/types.js';
import { commitPlan } from '../../../drivers/hypervisor/qemu/commit-plan.js';
import type { SnapshotMeta } from '../../../drivers/hypervisor/qemu/snapshot-store.js';
import { definitionOnBase } from '../../../aggregator/handlers/snapshot-handlers.js';
import { ActiveCommit } from '../../../shim/vm/block-commit.js';
import { FakeClock } from '../../helpers/fake-clock.js';

const snap = (name: string, parent: string | undefined, disks: SnapshotMeta['disks']): SnapshotMeta =>
  ({ name, vm: 'vm', ...(parent === undefined ? {} : { parent }), createdAt: 1, state: 'disk-snapshot', memory: false, kind: 'external', disks });

describe('commitPlan', () => {
  const s1 = snap('s1', undefined, [{ target: 'vda', path: '/i/a.raw', overlay: '/i/a.s1', format: 'raw' }]);
  const s2 = snap('s2', 's1', [{ target: 'vda', path: '/i/a.s1', overlay: '/i/a.s2', format: 'qcow2' }]);

  it('merges the top snapshot\'s overlays', () => {
    expect(commitPlan('vm', s2, [s1, s2], [{ target: 'vda', path: '/i/a.s2' }])).toEqual([s2.disks[0]]);
    expect(commitPlan('vm', s1, [s1], [{ target: 'vda', path: '/i/a.s1' }, { target: 'vdb', path: '/i/b.raw' }])).toEqual([s1.disks[0]]);
  });

  it('refuses a snapshot with a child, naming the one to delete first', () => {
    expect(() => commitPlan('vm', s1, [s1, s2], [{ target: 'vda', path: '/i/a.s2' }])).toThrow(expect.objectContaining({ code: 'OPERATION_INVALID', message: expect.stringContaining('delete "s2" first') }) as Error);
  });

  it('refuses when a disk is not on the overlay any more, naming the snapshot whose overlay it is on', () => {
    const orphan = snap('s3', undefined, [{ target: 'vda', path: '/i/a.s1', overlay: '/i/a.s3' }]);
    const err = (() => { try { commitPlan('vm', s1, [s1, orphan], [{ target: 'vda', path: '/i/a.s3' }]); } catch (e) { return e as VirtqError; } return undefined; })();
    expect(err).toMatchObject({ code: 'OPERATION_INVALID', message: expect.stringContaining('delete snapshot "s3" first') });
    expect(() => commitPlan('vm', s1, [s1], [])).toThrow(/no longer attached/);
    expect(() => commitPlan('vm', s1, [s1], [{ target: 'vda', path: '/elsewhere' }])).toThrow(/uses \/elsewhere, not the snapshot's overlay/);
  });

  it('matches a volume overlay by its volume, not its path', () => {
    const v = snap('v1', undefined, [{ target: 'vda', path: '/p/v.raw', overlay: '/p/v.v1', overlaySource: { pool: 'p', volume: 'v.v1' }, source: { pool: 'p', volume: 'v.raw' } }]);
    expect(commitPlan('vm', v, [v], [{ target: 'vda', source: { pool: 'p', volume: 'v.v1' } }])).toHaveLength(1);
    expect(() => commitPlan('vm', v, [v], [{ target: 'vda', path: '/p/v.v1' }])).toThrow(/not the snapshot's overlay/);
  });
});

describe('definitionOnBase', () => {
  it('moves the disks on the overlays back onto their images, a volume disk onto its volume', () => {
    const def = normalizeDefinition({
      name: 'vm', memoryMiB: 64, kernel: { path: '/k' },
      disks: [{ path: '/i/a.s1', format: 'qcow2', target: 'vda' }, { source: { pool: 'p', volume: 'v.s1' }, format: 'qcow2', target: 'vdb' }, { path: '/i/cd.iso', target: 'hdc', readonly: true }],
    }, () => '11111111-2222-4333-8444-555555555555');
    const back = definitionOnBase(def, [
      { target: 'vda', path: '/i/a.raw', overlay: '/i/a.s1', format: 'raw' },
      { target: 'vdb', path: '/p/v.qcow2', overlay: '/p/v.s1', overlaySource: { pool: 'p', volume: 'v.s1' }, source: { pool: 'p', volume: 'v.qcow2' } },
    ], new Map([['vdb', 'qcow2']]));
    expect(back.disks[0]).toMatchObject({ path: '/i/a.raw', format: 'raw', target: 'vda' });
    expect(back.disks[1]).toMatchObject({ source: { pool: 'p', volume: 'v.qcow2' }, format: 'qcow2' });
    expect(back.disks[1]).not.toHaveProperty('path');
    expect(back.disks[2]).toEqual(def.disks[2]);
  });
});

/** A monitor whose block jobs advance one step per query-jobs, as `script` says. */
function jobMonitor(script: { failAt?: number; orphan?: string }) {
  const sent: Array<{ execute: string; arguments?: Record<string, unknown> }> = [];
  const jobs = new Map<string, { status: string; polls: number; error?: string; done: number }>();
  if (script.orphan !== undefined) jobs.set(script.orphan, { status: 'ready', polls: 2, done: 100 });
  const raw = async (c: { execute: string; arguments?: Record<string, unknown> }): Promise<unknown> => {
    sent.push(c);
    const id = String(c.arguments?.['job-id'] ?? c.arguments?.['id'] ?? '');
    if (c.execute === 'block-commit') jobs.set(id, { status: 'running', polls: 0, done: 0 });
    if (c.execute === 'job-complete') Object.assign(jobs.get(id) ?? {}, { status: 'concluded' });
    if (c.execute === 'job-cancel') Object.assign(jobs.get(id) ?? {}, { status: 'concluded', error: 'Operation canceled' });
    if (c.execute === 'job-dismiss') jobs.delete(id);
    if (c.execute !== 'query-jobs') return {};
    return [...jobs].map(([jid, j]) => {
      if (j.status === 'running') {
        j.polls++;
        j.done = Math.min(100, j.polls * 50);
        if (script.failAt === j.polls) Object.assign(j, { status: 'concluded', error: 'Input/output error' });
        else if (j.polls >= 2) j.status = 'ready';
      }
      return { id: jid, type: 'commit', status: j.status, 'current-progress': j.done, 'total-progress': 100, ...(j.error === undefined ? {} : { error: j.error }) };
    });
  };
  return { mon: { raw } as unknown as HypervisorMonitor, sent };
}

const until = async (clock: FakeClock, p: Promise<unknown>): Promise<void> => {
  let settled = false;
  p.then(() => { settled = true; }, () => { settled = true; });
  for (let i = 0; i < 100 && !settled; i++) await clock.advance(50);
};

describe('ActiveCommit', () => {
  const disks = [{ target: 'vda', top: 'ov-vda-1', base: 'fmt-vda' }, { target: 'vdb', top: 'ov-vdb-1', base: '#block123' }];

  it('brings every job to READY before pivoting any, and reports the bytes merged', async () => {
    const clock = new FakeClock();
    const { mon, sent } = jobMonitor({});
    const commit = new ActiveCommit(mon, clock, 7, disks);
    expect(commit.info()).toMatchObject({ type: 'block-commit', status: 'created', totalBytes: 0 });
    const run = commit.run();
    await clock.advance(0);
    // One poll: each job has merged half of its 100 bytes.
    expect(commit.info()).toMatchObject({ type: 'block-commit', status: 'running', totalBytes: 200, transferredBytes: 100, remainingBytes: 100 });
    await until(clock, run);
    await expect(run).resolves.toEqual(['vda', 'vdb']);
    const cmds = sent.filter((c) => c.execute !== 'query-jobs');
    expect(cmds.map((c) => c.execute)).toEqual(['block-commit', 'block-commit', 'job-complete', 'job-dismiss', 'job-complete', 'job-dismiss']);
    expect(cmds[0]).toEqual({ execute: 'block-commit', arguments: { 'job-id': 'virtq-commit-vda-7', device: 'ov-vda-1', 'base-node': 'fmt-vda', 'auto-dismiss': false } });
    expect(cmds[1]?.arguments).toMatchObject({ device: 'ov-vdb-1', 'base-node': '#block123' });
    expect(commit.info()).toMatchObject({ type: 'block-commit' });
  });

  it('passes a bandwidth cap to every job as block-commit\'s speed', async () => {
    const clock = new FakeClock();
    const { mon, sent } = jobMonitor({});
    const run = new ActiveCommit(mon, clock, 3, disks, 2 * 1024 * 1024).run();
    await until(clock, run);
    await expect(run).resolves.toEqual(['vda', 'vdb']);
    expect(sent.filter((c) => c.execute === 'block-commit').map((c) => c.arguments?.['speed'])).toEqual([2 * 1024 * 1024, 2 * 1024 * 1024]);
  });

  it('cancels a commit job a dead predecessor left in QEMU before starting its own', async () => {
    const clock = new FakeClock();
    const { mon, sent } = jobMonitor({ orphan: 'virtq-commit-vda-1' });
    const run = new ActiveCommit(mon, clock, 1, disks.slice(0, 1)).run();
    await until(clock, run);
    await expect(run).resolves.toEqual(['vda']);
    const cmds = sent.filter((c) => c.execute !== 'query-jobs').map((c) => `${c.execute} ${String(c.arguments?.['id'] ?? c.arguments?.['job-id'])}`);
    expect(cmds.slice(0, 3)).toEqual(['job-cancel virtq-commit-vda-1', 'job-dismiss virtq-commit-vda-1', 'block-commit virtq-commit-vda-1']);
  });

  it('cancels every job and pivots none when aborted before READY', async () => {
    const clock = new FakeClock();
    const { mon, sent } = jobMonitor({});
    const commit = new ActiveCommit(mon, clock, 1, disks);
    const run = commit.run();
    await clock.advance(0);
    await commit.abort();
    await until(clock, run);
    await expect(run).rejects.toMatchObject({ code: 'OPERATION_ABORTED', details: { stage: 'before-pivot' } });
    expect(sent.filter((c) => c.execute === 'job-cancel').map((c) => c.arguments?.['id'])).toEqual(['virtq-commit-vda-1', 'virtq-commit-vdb-1']);
    expect(sent.some((c) => c.execute === 'job-complete')).toBe(false);
  });

  it('fails before the pivot with QEMU\'s error when a job fails, cancelling the others', async () => {
    const clock = new FakeClock();
    const { mon, sent } = jobMonitor({ failAt: 1 });
    const run = new ActiveCommit(mon, clock, 2, disks).run();
    await until(clock, run);
    await expect(run).rejects.toMatchObject({ code: 'OPERATION_FAILED', message: expect.stringContaining('Input/output error'), details: { stage: 'before-pivot' } });
    expect(sent.some((c) => c.execute === 'job-complete')).toBe(false);
  });
});
