// Time on the injected clock: waiting, repeating, and a process's figures since its start.
import type { Clock } from '../../protocol/index.js';
import type { ProcessStatsCache } from '../../drivers/host/proc.js';

/** CPU seconds and RSS of process `pid` (zeros when there is none), and seconds since `startedAt`. */
export function processFigures(stats: ProcessStatsCache, pid: number | undefined, startedAt: number | undefined, clock: Clock): { cpuTimeSec: number; rssBytes: number; uptimeSec: number } {
  if (pid === undefined) return { cpuTimeSec: 0, rssBytes: 0, uptimeSec: 0 };
  const s = stats.get(pid);
  return { cpuTimeSec: s.cpuTimeSec, rssBytes: s.rssBytes, uptimeSec: startedAt === undefined ? 0 : (clock.now() - startedAt) / 1000 };
}

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
