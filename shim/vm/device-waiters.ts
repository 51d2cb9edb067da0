// Waiters for DEVICE_DELETED: an unplug resolves once the guest has released the device, or
// fails with TIMEOUT.
import { VirtqError, type Clock } from '../../protocol/index.js';

/** Pending unplugs by device id. */
export class DeviceWaiters {
  private readonly waiters = new Map<string, () => void>();

  constructor(private readonly clock: Clock) {}

  /** Resolves when the device with `id` has been deleted, or rejects with TIMEOUT. */
  wait(id: string, timeoutMs: number): { promise: Promise<void>; cancel(): void } {
    let cancel = () => undefined as void;
    const promise = new Promise<void>((resolve, reject) => {
      const timer = this.clock.setTimeout(() => {
        this.waiters.delete(id);
        reject(new VirtqError('TIMEOUT', `the guest did not release device ${id} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiters.set(id, () => { timer.dispose(); resolve(); });
      cancel = () => { timer.dispose(); this.waiters.delete(id); };
    });
    return { promise, cancel };
  }

  /** The hypervisor reported `id` deleted. */
  deleted(id: string): void {
    this.waiters.get(id)?.();
    this.waiters.delete(id);
  }
}
