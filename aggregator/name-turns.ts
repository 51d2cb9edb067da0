// Work on one name that must not interleave at its awaits (a define and an undefine of one VM, a
// fleet claim and its release) runs one call at a time, in the order asked; other names go on.

/** Per-name queues of work. */
export class NameTurns {
  private readonly tails = new Map<string, Promise<unknown>>();

  /** Runs `fn` once every earlier call for `name` has settled; its result or failure is the caller's. */
  run<T>(name: string, fn: () => Promise<T>): Promise<T> {
    const run = (this.tails.get(name) ?? Promise.resolve()).then(fn, fn);
    const tail = run.catch(() => undefined);
    this.tails.set(name, tail);
    void tail.then(() => { if (this.tails.get(name) === tail) this.tails.delete(name); });
    return run;
  }
}
