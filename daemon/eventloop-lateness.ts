// The event-loop lag gauges of a daemon's Node process metrics (`…nodejs_eventloop_lag_{min,max,
// mean,stddev,p50,p90,p99}_seconds`), measured as lateness: how long a timer that was due waited for
// the loop. prom-client reads them from Node's monitorEventLoopDelay at 10 ms, which wakes an idle
// daemon ~100 times a second (issue 15, session 16); and Node 20's histogram records the whole
// interval between two ticks, not the lateness, so a coarser resolution alone would make every gauge
// read ~the resolution on an idle daemon. Here one histogram ticks every EVENT_LOOP_SAMPLE_MS and
// the resolution is taken off each statistic (docs/decisions/0033-eventloop-lag-sampling.md).
import type { IntervalHistogram } from 'node:perf_hooks';
import { Gauge, type Registry } from 'prom-client';

/**
 * How often the loop is sampled. A stall that spans a tick is measured exactly; a shorter one that
 * falls between two ticks is not seen, so stalls of 100 ms or more are always seen (at least their
 * length minus 100 ms), shorter ones with a chance in proportion to their length. Ten wake-ups a
 * second instead of a hundred; the RPC duration histograms still time every call.
 */
export const EVENT_LOOP_SAMPLE_MS = 100;

/**
 * The resolution given to prom-client's own event-loop histogram, whose gauges these replace: the
 * largest a libuv timer takes (~24.8 days), so its timer never wakes the daemon.
 */
export const PROM_CLIENT_IDLE_RESOLUTION_MS = 2 ** 31 - 1;

/** The loop's lateness since the last reading, in seconds. */
export interface LagStats {
  readonly min: number;
  readonly max: number;
  readonly mean: number;
  readonly stddev: number;
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
}

/** The part of Node's interval histogram (nanoseconds between two ticks) that latenessOf reads. */
export type IntervalStats = Pick<IntervalHistogram, 'count' | 'min' | 'max' | 'mean' | 'stddev' | 'percentile'>;

const NO_SAMPLES: LagStats = { min: 0, max: 0, mean: 0, stddev: 0, p50: 0, p90: 0, p99: 0 };

/**
 * Lateness statistics from interval statistics: each interval less the resolution, never below 0
 * (a tick can come a fraction of a millisecond early: libuv's clock counts whole milliseconds).
 * Shifting every sample shifts min, max, mean and every percentile alike and leaves the standard
 * deviation as it is. No samples read as 0, not as Node's empty-histogram min of 2^63 ns.
 */
export function latenessOf(h: IntervalStats, resolutionMs: number): LagStats {
  if (h.count === 0) return NO_SAMPLES;
  const resolutionNs = resolutionMs * 1e6;
  const late = (ns: number): number => Math.max(0, ns - resolutionNs) / 1e9;
  return {
    min: late(h.min), max: late(h.max), mean: late(h.mean), stddev: h.stddev / 1e9,
    p50: late(h.percentile(50)), p90: late(h.percentile(90)), p99: late(h.percentile(99)),
  };
}

/** Samples the event loop's lateness every `resolutionMs` from construction until dispose(). */
export class EventLoopLateness {
  private readonly histogram: IntervalHistogram;

  constructor(readonly resolutionMs: number = EVENT_LOOP_SAMPLE_MS) {
    // Loaded here, not imported: shims bundle this module (through service.ts) but never sample, and
    // perf_hooks at their start costs CPU and memory (decision 0002). Node's timer is unreferenced:
    // it never keeps a daemon (or a test) alive.
    this.histogram = process.getBuiltinModule('node:perf_hooks').monitorEventLoopDelay({ resolution: resolutionMs });
    this.histogram.enable();
  }

  /** Intervals recorded since the last take() (the first tick after a take() only starts one). */
  get samples(): number {
    return this.histogram.count;
  }

  /** The lateness since the last take(), then starts afresh: each scrape sees its own period. */
  take(): LagStats {
    const stats = latenessOf(this.histogram, this.resolutionMs);
    this.histogram.reset();
    return stats;
  }

  dispose(): void {
    this.histogram.disable();
  }
}

/** The gauges replaced, with prom-client's names, help texts and cluster aggregators (the contract). */
const LAG_GAUGES: readonly { stat: keyof LagStats; name: string; help: string; aggregator: 'min' | 'max' | 'average' }[] = [
  { stat: 'min', name: 'nodejs_eventloop_lag_min_seconds', help: 'The minimum recorded event loop delay.', aggregator: 'min' },
  { stat: 'max', name: 'nodejs_eventloop_lag_max_seconds', help: 'The maximum recorded event loop delay.', aggregator: 'max' },
  { stat: 'mean', name: 'nodejs_eventloop_lag_mean_seconds', help: 'The mean of the recorded event loop delays.', aggregator: 'average' },
  { stat: 'stddev', name: 'nodejs_eventloop_lag_stddev_seconds', help: 'The standard deviation of the recorded event loop delays.', aggregator: 'average' },
  { stat: 'p50', name: 'nodejs_eventloop_lag_p50_seconds', help: 'The 50th percentile of the recorded event loop delays.', aggregator: 'average' },
  { stat: 'p90', name: 'nodejs_eventloop_lag_p90_seconds', help: 'The 90th percentile of the recorded event loop delays.', aggregator: 'average' },
  { stat: 'p99', name: 'nodejs_eventloop_lag_p99_seconds', help: 'The 99th percentile of the recorded event loop delays.', aggregator: 'average' },
];

/**
 * Puts lateness gauges read from `sampler` in `registry` under prom-client's names, removing any of
 * that name already there. Reading the first one (a scrape reads them in order, as prom-client's
 * own do) takes the period's statistics and sets them all.
 */
export function registerLagGauges(registry: Registry, prefix: string, sampler: EventLoopLateness): void {
  const gauges = new Map<keyof LagStats, Gauge>();
  const labelNames: readonly string[] = [];
  const setAll = (): void => {
    const stats = sampler.take();
    for (const [stat, gauge] of gauges) gauge.set(stats[stat]);
  };
  for (const [i, g] of LAG_GAUGES.entries()) {
    const name = prefix + g.name;
    registry.removeSingleMetric(name);
    gauges.set(g.stat, new Gauge({ name, help: g.help, registers: [registry], labelNames, aggregator: g.aggregator, ...(i === 0 ? { collect: setAll } : {}) }));
  }
}
