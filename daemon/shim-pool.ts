// A warm shim pool (docs/decisions/0026-warm-shim-pool.md): N shims started ahead, each with its
// code loaded and blocked reading its definition on stdin, so a start skips Node's bootstrap and
// the bundle's evaluation. A pooled shim runs exactly the command line and environment of a cold
// one; its only difference before the hand-off is where its stderr goes (see `take`).
import { appendFileSync, closeSync, existsSync, openSync, readFileSync, renameSync, statSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Clock } from '../protocol/index.js';
import { ticksSinceBoot } from '../drivers/host/proc.js';
import { startWaitingShim, type ShimProcess, type WaitingShim } from './shim-bootstrap.js';

/** How a pool starts its shims. */
export interface ShimPoolOptions {
  /** How many idle shims to keep (0: no pool). */
  size: number;
  command: string;
  /** The arguments of a plain start (`--definition -` and the placement). */
  args: readonly string[];
  env?: NodeJS.ProcessEnv;
  /** Where shims' stderr files live (the layout's log dir); undefined: their stderr is ignored, as embed mode's cold shims' is. */
  logDir?: string;
  clock: Clock;
  /** Starts a shim process; injected so tests can count them. */
  start?: (p: ShimProcess) => WaitingShim;
  /**
   * True while starts are in flight: a refill then spawns nothing, and whoever ends the last start
   * calls fill() again. A burst of starts is CPU-bound, and a pool shim loading then competes with
   * them and is only taken by the next start as a cold one would be (bench/RESULTS.md, session 11).
   */
  busy?: () => boolean;
}

interface Pooled {
  shim: WaitingShim;
  stderrFile: string | undefined;
  /** Clock ticks since boot just before it was spawned: no process it starts is older. */
  since: number | undefined;
}

/** A pool shim as a start takes it. */
export interface TakenShim {
  shim: WaitingShim;
  /**
   * Clock ticks since boot just before it was spawned (undefined: unknown). A process it starts
   * may be older than the start itself (its QEMU launcher, shim/vm/qemu-launcher.ts), never older than this.
   */
  since: number | undefined;
}

/** The pool. Bounded by `size`; refilled in the background after each take; emptied by close(). */
export class ShimPool {
  private readonly idle: Pooled[] = [];
  private closed = false;
  private refillTimer: { dispose(): void } | undefined;

  constructor(private readonly o: ShimPoolOptions) {}

  /** Fills the pool up to its size (in the background: one shim per timer tick). */
  fill(): void {
    if (this.closed || this.refillTimer !== undefined) return;
    const next = (): void => {
      this.refillTimer = undefined;
      this.prune();
      if (this.closed || this.idle.length >= this.o.size || this.o.busy?.() === true) return;
      try {
        this.idle.push(this.spawnOne());
      } catch {
        // No stderr file or no process (a full disk, no descriptors left): starts are cold until
        // the next fill, after the next take; never a retry loop.
        return;
      }
      this.refillTimer = this.o.clock.setTimeout(next, 0);
    };
    this.refillTimer = this.o.clock.setTimeout(next, 0);
  }

  /** Idle shims now (for the memory figures and tests). */
  pids(): number[] {
    this.prune();
    return this.idle.flatMap((p) => (p.shim.pid === undefined ? [] : [p.shim.pid]));
  }

  /**
   * An idle shim for VM `name`, or undefined when none is ready. Its stderr file becomes the VM's
   * `NAME.shim-stderr.log` (renamed over it after the earlier content is appended), as a cold
   * shim's would be.
   */
  take(name: string): TakenShim | undefined {
    this.prune();
    const p = this.idle.shift();
    if (p === undefined) return undefined;
    const taken = { shim: p.shim, since: p.since };
    if (p.stderrFile === undefined || this.o.logDir === undefined) return taken;
    const target = join(this.o.logDir, `${name}.shim-stderr.log`);
    try {
      if (existsSync(target)) appendFileSync(p.stderrFile, readFileSync(target));
      renameSync(p.stderrFile, target);
    } catch {
      // The VM's stderr then stays in the pool's file; the start itself does not depend on it.
    }
    return taken;
  }

  /** Kills every idle shim and starts no more (virtqemud's stop: the pool leaves nothing behind). */
  close(): void {
    this.closed = true;
    this.refillTimer?.dispose();
    this.refillTimer = undefined;
    for (const p of this.idle.splice(0)) this.drop(p);
  }

  private spawnOne(): Pooled {
    const start = this.o.start ?? startWaitingShim;
    const env = this.o.env === undefined ? {} : { env: this.o.env };
    let since: number | undefined;
    try { since = ticksSinceBoot(); } catch { since = undefined; }
    if (this.o.logDir === undefined) return { shim: start({ command: this.o.command, args: this.o.args, stderr: 'ignore', ...env }), stderrFile: undefined, since };
    const stderrFile = join(this.o.logDir, `shim-pool-${randomBytes(4).toString('hex')}.stderr.log`);
    const fd = openSync(stderrFile, 'a', 0o600);
    try {
      return { shim: start({ command: this.o.command, args: this.o.args, stderr: fd, ...env }), stderrFile, since };
    } finally {
      closeSync(fd);
    }
  }

  /** Forgets shims that exited on their own (each is replaced by the next fill). */
  private prune(): void {
    for (let i = this.idle.length - 1; i >= 0; i--) {
      const p = this.idle[i];
      if (p !== undefined && !p.shim.idle) this.drop(this.idle.splice(i, 1)[0] as Pooled);
    }
  }

  private drop(p: Pooled): void {
    p.shim.discard();
    if (p.stderrFile === undefined) return;
    try {
      if (statSync(p.stderrFile).size === 0) unlinkSync(p.stderrFile);
    } catch {
      // Already gone.
    }
  }
}
