// When a shim that lost virtqemud tries to register again (issue 15 target 4, session 15).
// virtqemud answers its first listing after a restart from recovery's facts (state files, /proc),
// not from the shims: their registrations are not needed for it, only for updates and calls. The
// shims used to try at once, then after 100, 200, 400 ms, all in step: with 50 VMs on a 2-vCPU host
// they spent 140 ms of CPU (load 6) between the kill and the restarted daemon's first listing, and a
// refused try or a registration costs a shim more than noticing the loss does (bench/RESULTS.md,
// session 15). So the first try comes after a restarted virtqemud has, on a quiet host, served that
// listing (~200 ms with 50 VMs, ~430 with 200 in session 14), and every wait is spread at random so
// the shims reach it a few at a time rather than together.

/** The pacing's constants; tests and benches may pass others. */
export interface RejoinPace {
  /** The least wait before the first try. */
  firstMs: number;
  /** The first try lands anywhere in [firstMs, firstMs + spreadMs). */
  spreadMs: number;
  /** Later waits double from firstMs up to this, each ±25 % at random. */
  maxMs: number;
  /** A number in [0, 1); Math.random in the shim. */
  random: () => number;
}

export const DEFAULT_REJOIN_PACE: Readonly<RejoinPace> = Object.freeze({ firstMs: 400, spreadMs: 600, maxMs: 2000, random: Math.random });

/** The waits before each try, in order: call it once per try. */
export function rejoinWaits(pace: RejoinPace): () => number {
  let tries = 0;
  return () => {
    const k = tries++;
    if (k === 0) return pace.firstMs + pace.random() * pace.spreadMs;
    const base = Math.min(pace.firstMs * 2 ** (k - 1), pace.maxMs);
    return base * (0.75 + 0.5 * pace.random());
  };
}
