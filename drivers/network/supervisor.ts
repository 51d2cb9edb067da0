// Keeps one long-lived process running: when it exits it is started again after a backoff that
// doubles with each quick death (capped) and resets once a run lasted long enough. Counts
// restarts for metrics. Timers come from the injected clock; stop() never kills the process.
import type { Clock, Disposable } from '../../protocol/clock.js';
import type { ProcessExit } from './runner.js';

/** A process being watched: its pid and a promise that settles when it is gone. */
export interface WatchedProcess {
  pid: number;
  exited: Promise<ProcessExit>;
  /** Stops whatever watches for the exit (a poll timer); the process itself is left alone. */
  dispose?(): void;
}

/** Backoff of restarts, milliseconds. */
export interface BackoffPolicy {
  initialMs: number;
  maxMs: number;
  /** A run at least this long resets the backoff to `initialMs`. */
  stableMs: number;
}

/** The default: 0.5 s, doubling, at most 30 s; reset after a minute up. */
export const DEFAULT_BACKOFF: BackoffPolicy = { initialMs: 500, maxMs: 30_000, stableMs: 60_000 };

/** What the supervisor calls out to. */
export interface SupervisorHooks {
  clock: Clock;
  /** Starts the process again. */
  launch(): Promise<WatchedProcess>;
  onExit?(pid: number, exit: ProcessExit): void;
  onRestart?(pid: number, restarts: number): void;
  onRestartFailed?(err: unknown, retryInMs: number): void;
  backoff?: BackoffPolicy;
}

/** Supervises one process from `first` on. */
export class Supervisor {
  private current: WatchedProcess | undefined;
  private startedAt: number;
  private streak = 0;
  private timer: Disposable | undefined;
  private inflight: Promise<void> | undefined;
  private stopped = false;
  private restartCount = 0;
  private readonly backoff: BackoffPolicy;

  constructor(private readonly hooks: SupervisorHooks, first: WatchedProcess) {
    this.backoff = hooks.backoff ?? DEFAULT_BACKOFF;
    this.startedAt = hooks.clock.monotonic();
    this.watch(first);
  }

  /** The pid of the running process; undefined while a restart is pending. */
  get pid(): number | undefined {
    return this.current?.pid;
  }

  /** Restarts done since the supervisor was created. */
  get restarts(): number {
    return this.restartCount;
  }

  /**
   * Stops supervising: no more restarts, no timers; the process (if any) keeps running. Settles
   * once a restart already under way has finished, so `pid` then names whatever runs.
   */
  async stop(): Promise<void> {
    this.stopped = true;
    this.timer?.dispose();
    this.timer = undefined;
    this.current?.dispose?.();
    await this.inflight;
  }

  private watch(proc: WatchedProcess): void {
    this.current = proc;
    void proc.exited.then((exit) => {
      if (this.stopped || this.current !== proc) return;
      this.current = undefined;
      this.hooks.onExit?.(proc.pid, exit);
      if (this.hooks.clock.monotonic() - this.startedAt >= this.backoff.stableMs) this.streak = 0;
      this.schedule();
    });
  }

  /** Arms the next restart; returns its delay. */
  private schedule(): number {
    const delay = Math.min(this.backoff.initialMs * 2 ** this.streak, this.backoff.maxMs);
    this.streak += 1;
    this.timer = this.hooks.clock.setTimeout(() => {
      this.timer = undefined;
      this.inflight = this.relaunch().finally(() => { this.inflight = undefined; });
    }, delay);
    return delay;
  }

  private async relaunch(): Promise<void> {
    if (this.stopped) return;
    let proc: WatchedProcess;
    try {
      proc = await this.hooks.launch();
    } catch (err) {
      if (this.stopped) return;
      const next = this.schedule();
      this.hooks.onRestartFailed?.(err, next);
      return;
    }
    if (this.stopped) {
      // Started while being stopped: report it as current so the caller can stop it.
      this.current = proc;
      proc.dispose?.();
      return;
    }
    this.restartCount += 1;
    this.startedAt = this.hooks.clock.monotonic();
    this.hooks.onRestart?.(proc.pid, this.restartCount);
    this.watch(proc);
  }
}

/**
 * Watches a process that is not our child (adopted after a daemon restart): polls `alive` every
 * `intervalMs` on the clock; `exited` settles once it is gone.
 */
export function pollExit(pid: number, alive: (pid: number) => boolean, clock: Clock, intervalMs: number): WatchedProcess {
  let timer: Disposable | undefined;
  let disposed = false;
  const exited = new Promise<ProcessExit>((resolve) => {
    const tick = (): void => {
      if (disposed) return;
      if (!alive(pid)) resolve({ code: null, signal: null });
      else timer = clock.setTimeout(tick, intervalMs);
    };
    tick();
  });
  return {
    pid,
    exited,
    dispose: () => {
      disposed = true;
      timer?.dispose();
    },
  };
}
