/**
 * Checks, over and over while hostile input is thrown at a daemon, that the daemon still serves
 * an ordinary client correctly. Fuzz suites start it once the world is set up and assert on its
 * `failures` (none) and `rounds` (enough to mean something) at the end.
 */
export class LivenessProbe {
  rounds = 0;
  readonly failures: string[] = [];
  private stopped = false;
  private loop: Promise<void> = Promise.resolve();

  /** Runs `check` every `paceMs` until `stop()`; a thrown error is recorded, never rethrown. */
  start(check: () => Promise<void>, paceMs = 5): void {
    this.loop = (async () => {
      while (!this.stopped) {
        try {
          await check();
          this.rounds++;
        } catch (err) {
          this.failures.push(String(err));
        }
        await new Promise((r) => setTimeout(r, paceMs));
      }
    })();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop;
  }
}
