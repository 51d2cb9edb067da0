// Waiting and repeating on the injected clock.
import type { Clock } from '../../protocol/index.js';

/** True when `p` settles within `ms`, false when the time runs out first. */
export function settlesWithin(clock: Clock, p: Promise<unknown>, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = clock.setTimeout(() => resolve(false), ms);
    void p.then(() => { timer.dispose(); resolve(true); }, () => { timer.dispose(); resolve(true); });
  });
}

/** Runs `fn` every `everyMs` for `forMs`, while `still()` holds. */
export function repeatWhile(clock: Clock, everyMs: number, forMs: number, still: () => boolean, fn: () => void): void {
  const until = clock.monotonic() + forMs;
  const again = (): void => {
    if (!still() || clock.monotonic() > until) return;
    fn();
    clock.setTimeout(again, everyMs);
  };
  clock.setTimeout(again, everyMs);
}
