// QEMU's active block-commit of overlays into the images under them, one job per disk run together:
// every job reaches READY (its base has caught up and mirrors new writes) before any pivots, so an
// error or an abort before the pivot leaves every disk on its overlay. The figures polled on the
// way are what domjobinfo shows; domjobabort cancels the jobs.
import { VirtqError, type Clock, type JobInfo } from '../../protocol/index.js';
import type { HypervisorMonitor } from '../../drivers/hypervisor/types.js';
import type { JobProgress } from './jobs.js';

const POLL_MS = 50;

/** One disk's commit: the node its device reads (the overlay) into the node under it. */
export interface CommitNodes {
  target: string;
  top: string;
  base: string;
}

interface QemuJob { id: string; status: string; 'current-progress'?: number; 'total-progress'?: number; error?: string }

/** `details.stage` of run()'s errors: before the pivot every disk is still on its overlay. */
export type CommitStage = 'before-pivot' | 'pivot';

const stopped = (err: unknown): VirtqError => {
  const e = VirtqError.from(err);
  return new VirtqError(e.code, e.message, { cause: err, details: { ...e.details, stage: 'before-pivot' satisfies CommitStage } });
};

/** The commit jobs of one snapshot delete. */
export class ActiveCommit implements JobProgress {
  private readonly ids: string[];
  private readonly startedAt: number;
  private last: QemuJob[] = [];
  private aborted = false;
  private pivoting = false;

  /** `speed`: each job's copy capped at this many bytes/s (virsh blockcommit --bandwidth); undefined: unlimited. */
  constructor(private readonly mon: HypervisorMonitor, private readonly clock: Clock, seq: number, private readonly disks: readonly CommitNodes[], private readonly speed?: number) {
    this.ids = disks.map((d) => `virtq-commit-${d.target}-${seq}`);
    this.startedAt = clock.monotonic();
  }

  info(): JobInfo {
    const total = this.last.reduce((n, j) => n + (j['total-progress'] ?? 0), 0);
    const done = this.last.reduce((n, j) => n + (j['current-progress'] ?? 0), 0);
    const elapsedMs = this.clock.monotonic() - this.startedAt;
    const status = this.pivoting ? 'pending' : this.last.find((j) => j.status !== 'ready')?.status ?? (this.last.length > 0 ? 'ready' : 'created');
    return {
      type: 'block-commit', status, elapsedMs, totalBytes: total, transferredBytes: done, remainingBytes: Math.max(0, total - done),
      rateBytesPerSec: elapsedMs > 0 ? Math.round((done * 1000) / elapsedMs) : 0, dirtySyncCount: 0,
    };
  }

  async abort(): Promise<void> {
    if (this.pivoting) throw new VirtqError('OPERATION_INVALID', 'the merge is pivoting the disks onto their base images and can no longer be cancelled');
    this.aborted = true;
  }

  /**
   * Runs the jobs to READY, then pivots every disk; the targets pivoted. A failure or an abort
   * before the pivot throws with `details.stage` 'before-pivot' (nothing pivoted, the jobs are
   * cancelled); a failed pivot throws OPERATION_FAILED with stage 'pivot' and `details.pivoted`.
   */
  async run(): Promise<string[]> {
    try {
      await this.cancelOrphans();
      for (const [i, d] of this.disks.entries()) {
        await this.mon.raw({ execute: 'block-commit', arguments: { 'job-id': this.ids[i], device: d.top, 'base-node': d.base, 'auto-dismiss': false, ...(this.speed === undefined ? {} : { speed: this.speed }) } });
      }
      await this.untilReady();
    } catch (err) {
      await this.cancelAll();
      throw stopped(err);
    }
    this.pivoting = true;
    const failed: string[] = [];
    const pivoted: string[] = [];
    for (const [i, id] of this.ids.entries()) {
      const target = this.disks[i]?.target ?? id;
      const error = await this.mon.raw({ execute: 'job-complete', arguments: { id } }).then(() => this.concluded(id), (e: unknown) => VirtqError.from(e).message);
      if (error === undefined) pivoted.push(target);
      else failed.push(`${target}: ${error}`);
    }
    if (failed.length > 0) throw new VirtqError('OPERATION_FAILED', `QEMU could not pivot ${failed.join('; ')}`, { details: { stage: 'pivot' satisfies CommitStage, pivoted } });
    return pivoted;
  }

  // Polls until every job is READY; throws on a job's error, its disappearance or an abort.
  private async untilReady(): Promise<void> {
    for (;;) {
      const jobs = await this.poll();
      const gone = this.ids.find((id) => !jobs.some((j) => j.id === id));
      const bad = jobs.find((j) => j.status === 'concluded' || j.status === 'aborting' || j.error !== undefined);
      if (gone !== undefined || bad !== undefined) {
        const why = bad?.error ?? `job ${bad?.id ?? gone ?? ''} ended before it was ready`;
        throw new VirtqError('OPERATION_FAILED', `QEMU's block-commit failed: ${why}`);
      }
      if (this.aborted) throw new VirtqError('OPERATION_ABORTED', 'the merge was cancelled (domjobabort)');
      if (jobs.every((j) => j.status === 'ready')) return;
      await new Promise<void>((resolve) => this.clock.setTimeout(resolve, POLL_MS));
    }
  }

  private async poll(): Promise<QemuJob[]> {
    const all = (await this.mon.raw({ execute: 'query-jobs' })) as QemuJob[];
    this.last = all.filter((j) => this.ids.includes(j.id));
    return this.last;
  }

  // Waits for job `id` to conclude and dismisses it; its error, if any. `ours`: one of this
  // commit's jobs (their figures are kept for domjobinfo).
  private async concluded(id: string, ours = true): Promise<string | undefined> {
    for (;;) {
      const jobs = ours ? await this.poll() : (await this.mon.raw({ execute: 'query-jobs' })) as QemuJob[];
      const job = jobs.find((j) => j.id === id);
      if (job === undefined) return undefined;
      if (job.status === 'concluded' || job.status === 'null') {
        await this.mon.raw({ execute: 'job-dismiss', arguments: { id } }).catch(() => undefined);
        return job.error;
      }
      await new Promise<void>((resolve) => this.clock.setTimeout(resolve, POLL_MS));
    }
  }

  // A commit job of a shim that died mid-merge stays in QEMU (READY, never pivoted) and holds its
  // nodes: with one job per VM at a time, any such job now is an orphan, cancelled before this one.
  private async cancelOrphans(): Promise<void> {
    const all = (await this.mon.raw({ execute: 'query-jobs' })) as QemuJob[];
    for (const j of all.filter((x) => x.id.startsWith('virtq-commit-'))) {
      await this.mon.raw({ execute: 'job-cancel', arguments: { id: j.id } }).catch(() => undefined);
      await this.concluded(j.id, false).catch(() => undefined);
    }
  }

  // Cancels every job still there (a READY commit cancelled does not pivot) and dismisses it.
  private async cancelAll(): Promise<void> {
    for (const id of this.ids) {
      await this.mon.raw({ execute: 'job-cancel', arguments: { id } }).catch(() => undefined);
      await this.concluded(id).catch(() => undefined);
    }
  }
}
