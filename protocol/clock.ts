// Time as an injected dependency: real code gets systemClock() from compose.ts, tests a fake
// they advance by hand, so no timeout or retry test ever sleeps.

/** Something that can be cancelled. */
export interface Disposable {
  dispose(): void;
}

/** The clock every component takes instead of touching timers directly. */
export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
  /** A monotonic reading in milliseconds, for measuring durations. */
  monotonic(): number;
  /** Runs `fn` after `ms`; the timer never keeps the process alive. */
  setTimeout(fn: () => void, ms: number): Disposable;
}

/** The real clock. */
export function systemClock(): Clock {
  return {
    now: () => Date.now(),
    monotonic: () => performance.now(),
    setTimeout(fn, ms) {
      const t = setTimeout(fn, ms);
      t.unref();
      return { dispose: () => clearTimeout(t) };
    },
  };
}

/** Resolves after `ms` on `clock`. */
export function delay(clock: Clock, ms: number): Promise<void> {
  return new Promise((resolve) => clock.setTimeout(resolve, ms));
}
