// The recent CPU and memory of each running VM, for the web view's sparklines: one point per
// background refresh of the shims' metrics (DaemonMetrics), the last `keep` points per VM. CPU is
// the share of one host CPU the VM's QEMU used since the previous point; memory its resident size.
// A VM missing from a refresh (stopped) loses its history.
import type { Static } from '@sinclair/typebox';
import type { MetricFamily } from '../../protocol/index.js';
import { metricCatalogue as m } from '../../daemon/metrics-catalogue.js';

type Family = Static<typeof MetricFamily>;

/** One point of a VM's sparklines; null where its shim did not answer. */
export interface SamplePoint {
  /** Milliseconds since the epoch. */
  t: number;
  /** Share of one host CPU (1 = one CPU busy) since the previous point. */
  cpu: number | null;
  /** Resident bytes of the VM's QEMU. */
  mem: number | null;
}

/** What a refresh fetched of one VM. */
export interface VmSample {
  name: string;
  families: readonly Family[] | undefined;
}

interface Track {
  points: SamplePoint[];
  cpuSeconds: { t: number; value: number } | undefined;
}

function valueOf(families: readonly Family[] | undefined, name: string): number | undefined {
  const v = families?.find((f) => f.name === name)?.values[0]?.value;
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
}

/** Sparkline points by VM name. */
export class SampleHistory {
  private readonly tracks = new Map<string, Track>();

  constructor(private readonly keep = 60) {}

  /** Adds a refresh taken at `t`; returns the point each VM got. */
  add(t: number, samples: readonly VmSample[]): Record<string, SamplePoint> {
    const added: Record<string, SamplePoint> = {};
    const seen = new Set<string>();
    for (const s of samples) {
      seen.add(s.name);
      let track = this.tracks.get(s.name);
      if (track === undefined) {
        track = { points: [], cpuSeconds: undefined };
        this.tracks.set(s.name, track);
      }
      const seconds = valueOf(s.families, m.domainCpu.name);
      const prev = track.cpuSeconds;
      const cpu = seconds !== undefined && prev !== undefined && t > prev.t && seconds >= prev.value ? (seconds - prev.value) / ((t - prev.t) / 1000) : null;
      if (seconds !== undefined) track.cpuSeconds = { t, value: seconds };
      const point: SamplePoint = { t, cpu, mem: valueOf(s.families, m.domainRss.name) ?? null };
      track.points.push(point);
      if (track.points.length > this.keep) track.points.shift();
      added[s.name] = point;
    }
    for (const name of [...this.tracks.keys()]) if (!seen.has(name)) this.tracks.delete(name);
    return added;
  }

  /** Every VM's points, oldest first. */
  snapshot(): Record<string, SamplePoint[]> {
    return Object.fromEntries([...this.tracks].map(([name, track]) => [name, [...track.points]]));
  }
}
