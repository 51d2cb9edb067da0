// Long operations of virtstoraged (clone, upload, download): each is a job with an id, listed
// with its progress, cancellable by id from any read-write client, and cancelled when the client
// that started it goes away. Progress goes to that client as `progress` events, at most every
// 100 ms and always at the end.
import { VirtqError, type Clock, type JobProgress, type ServerClient } from '../protocol/index.js';
import type { WorkerSlots } from '../daemon/worker-slots.js';

/** One job under way. */
interface Job {
  readonly progress: JobProgress;
  readonly startedAt: number;
  readonly controller: AbortController;
  lastReport: number;
}

const REPORT_MS = 100;

/** The jobs of one daemon. */
export class Jobs {
  private readonly jobs = new Map<string, Job>();
  private anon = 0;

  /** `workers` bounds how many jobs run at once (the admin limit workerConcurrency); the rest wait in order. */
  constructor(private readonly clock: Clock, private readonly workers: Pick<WorkerSlots, 'run'>) {}

  /**
   * Runs `work` as a job of `client` (id `job`, or a private one): its signal aborts on cancel or
   * when the client disconnects; `report` sends progress. ALREADY_EXISTS when the id is taken.
   */
  async run<T>(client: ServerClient, job: string | undefined, what: Omit<JobProgress, 'job' | 'doneBytes' | 'totalBytes'>, work: (ctl: { signal: AbortSignal; report(done: number, total: number): void }) => Promise<T>): Promise<T> {
    const id = job ?? `anon-${++this.anon}`;
    if (this.jobs.has(id)) throw new VirtqError('ALREADY_EXISTS', `a job "${id}" is already under way`);
    const entry: Job = { progress: { job: id, ...what, doneBytes: 0, totalBytes: 0 }, startedAt: this.clock.now(), controller: new AbortController(), lastReport: -Infinity };
    this.jobs.set(id, entry);
    const onGone = (): void => entry.controller.abort();
    client.onClose(onGone);
    const report = (done: number, total: number, last = false): void => {
      entry.progress.doneBytes = done;
      entry.progress.totalBytes = total;
      const now = this.clock.monotonic();
      if (job === undefined || (!last && now - entry.lastReport < REPORT_MS)) return;
      entry.lastReport = now;
      client.pushEvent('storage', 'progress', { ...entry.progress });
    };
    try {
      const result = await this.workers.run(() => {
        if (entry.controller.signal.aborted) throw new VirtqError('OPERATION_ABORTED', `job "${id}" was cancelled before it started`);
        return work({ signal: entry.controller.signal, report });
      });
      report(entry.progress.totalBytes, entry.progress.totalBytes, true);
      return result;
    } finally {
      this.jobs.delete(id);
    }
  }

  /** Cancels job `id`; OPERATION_INVALID when there is no such job. */
  cancel(id: string): void {
    const j = this.jobs.get(id);
    if (j === undefined) throw new VirtqError('OPERATION_INVALID', `no job "${id}" is under way`);
    j.controller.abort();
  }

  /** Every job under way. */
  list(): Array<JobProgress & { startedAt: number }> {
    return [...this.jobs.values()].map((j) => ({ ...j.progress, startedAt: j.startedAt }));
  }
}
