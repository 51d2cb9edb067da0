// The admin API's `workerConcurrency` limit, applied: how many long operations a daemon runs at
// once — shim starts on virtqemud, volume jobs (clone, upload, download) on virtstoraged. More
// wait their turn in arrival order. Reads and short calls never wait here, so a host listing or
// a state query answers while starts queue (libvirt's priority workers, made structural). A
// shim's VM runs one job at a time whatever the limit (its job lock).

/** Bounded slots for long operations; the limit is read at each admission, so setLimits takes effect at once. */
export class WorkerSlots {
  private running = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(private readonly limit: () => number) {}

  /** Runs `fn` once a slot is free. */
  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.running < this.limit()) this.running++;
    // A waiter is handed its slot by the one that frees it: `running` already counts it.
    else await new Promise<void>((resolve) => this.waiting.push(resolve));
    try {
      return await fn();
    } finally {
      this.release();
    }
  }

  /** For server info: operations running and waiting. */
  get counts(): { running: number; waiting: number } {
    return { running: this.running, waiting: this.waiting.length };
  }

  private release(): void {
    this.running--;
    // Hand freed slots (more than one when the limit was raised meanwhile) to waiters in order.
    while (this.waiting.length > 0 && this.running < this.limit()) {
      this.running++;
      (this.waiting.shift() as () => void)();
    }
  }
}
