// One job at a time per VM, as libvirt's begin/end job: mutating operations queue here, so two
// of them never talk to QEMU at once. Reads never take the lock; they answer from cached state.
import { VirtqError } from '../../protocol/index.js';

/** A FIFO job lock. */
export class JobLock {
  private tail: Promise<void> = Promise.resolve();
  private current: string | undefined;
  private queued = 0;

  /** The running job's name, if any. */
  get active(): string | undefined {
    return this.current;
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
        this.queued--;
      }
    });
    this.tail = result.then(() => undefined, () => undefined);
    return result;
  }
}
