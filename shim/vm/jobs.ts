// One job at a time per VM, as libvirt's begin/end job: mutating operations queue here, so two
// of them never talk to QEMU at once. Reads never take the lock; they answer from cached state.
// A running job may report progress (domjobinfo) and offer an abort (domjobabort) until it ends.
import { VirtqError, type JobInfo } from '../../protocol/index.js';

/** What domjobinfo and domjobabort see of a running job that reports its progress. */
export interface JobProgress {
  /** Its figures as last read (no QEMU call: a read answers while the job talks to QEMU). */
  info(): JobInfo;
  /** Asks it to stop; the job's own call then rolls back and fails. */
  abort(): Promise<void>;
}

/** A FIFO job lock. */
export class JobLock {
  private tail: Promise<void> = Promise.resolve();
  private current: string | undefined;
  private reporter: JobProgress | undefined;
  private queued = 0;

  /** The running job's name, if any. */
  get active(): string | undefined {
    return this.current;
  }

  /** The running job's progress, when it reports one. */
  get progress(): JobProgress | undefined {
    return this.reporter;
  }

  /** Called by the running job: `p` is shown until the job ends. */
  report(p: JobProgress): void {
    this.reporter = p;
  }

  /** Runs `fn` once every job queued before it has finished. */
  run<T>(name: string, fn: () => Promise<T>, maxQueued = 64): Promise<T> {
    if (this.queued >= maxQueued) {
      return Promise.reject(new VirtqError('TOO_MANY_CALLS', `${this.queued} jobs are already queued for this VM`));
    }
    this.queued++;
    const result = this.tail.then(async () => {
      this.current = name;
      try {
        return await fn();
      } finally {
        this.current = undefined;
        this.reporter = undefined;
        this.queued--;
      }
    });
    this.tail = result.then(() => undefined, () => undefined);
    return result;
  }
}
