// Shared by the four benchmark processes (two servers, two clients): argument parsing, the
// control channel a server answers on stdin/stdout, the load loops and the statistics. No virtq
// code here, so the bare echo pair stays free of it.
import { createInterface } from 'node:readline';

/** `--key value` pairs from argv. */
export function args(): Map<string, string> {
  const out = new Map<string, string>();
  const a = process.argv.slice(2);
  for (let i = 0; i + 1 < a.length; i += 2) out.set((a[i] as string).replace(/^--/, ''), a[i + 1] as string);
  return out;
}

export function need(m: Map<string, string>, key: string): string {
  const v = m.get(key);
  if (v === undefined) throw new Error(`missing --${key}`);
  return v;
}

/**
 * A server's control channel: prints `ready` once listening, answers `cpu` with its CPU time in
 * microseconds, and exits when stdin closes (so a dead runner never leaves a server behind).
 */
export function serveControl(): void {
  const rl = createInterface({ input: process.stdin });
  rl.on('line', (line) => {
    if (line === 'cpu') {
      const u = process.cpuUsage();
      process.stdout.write(`${JSON.stringify({ cpuUs: u.user + u.system })}\n`);
    }
  });
  rl.on('close', () => process.exit(0));
  process.stdout.write('ready\n');
}

export type Call = () => Promise<unknown>;

/** Sequential calls: `warm` unmeasured, then `n` timed one by one; returns microseconds. */
export async function sequential(call: Call, warm: number, n: number): Promise<Float64Array> {
  for (let i = 0; i < warm; i++) await call();
  const lat = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await call();
    lat[i] = (performance.now() - t0) * 1000;
  }
  return lat;
}

/** Keeps `depth` calls in flight for `ms` milliseconds; returns calls completed and elapsed ms. */
export function pipelined(call: Call, depth: number, ms: number): Promise<{ calls: number; elapsedMs: number }> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const deadline = t0 + ms;
    let active = 0;
    let done = 0;
    const onDone = (): void => {
      active--;
      done++;
      if (performance.now() < deadline) issue();
      else if (active === 0) resolve({ calls: done, elapsedMs: performance.now() - t0 });
    };
    const issue = (): void => {
      active++;
      call().then(onDone, reject);
    };
    for (let i = 0; i < depth; i++) issue();
  });
}

/** Percentiles (nearest rank) and mean of latencies in microseconds. */
export function summarize(lat: Float64Array): Record<string, number> {
  const s = Float64Array.from(lat).sort();
  const at = (p: number): number => s[Math.min(s.length - 1, Math.max(0, Math.ceil(p * s.length) - 1))] as number;
  let sum = 0;
  for (const v of s) sum += v;
  return { n: s.length, mean: sum / s.length, p50: at(0.5), p90: at(0.9), p99: at(0.99), p999: at(0.999), max: s[s.length - 1] as number };
}

/** Runs the client side of one phase and prints one JSON line. */
export async function runClient(call: Call, opts: Map<string, string>, extra: Record<string, unknown>): Promise<void> {
  const mode = need(opts, 'mode');
  const warm = Number(opts.get('warm') ?? 5000);
  if (mode === 'seq') {
    const lat = await sequential(call, warm, Number(opts.get('calls') ?? 20_000));
    process.stdout.write(`${JSON.stringify({ ...extra, mode, ...summarize(lat) })}\n`);
  } else {
    await pipelined(call, Number(opts.get('depth') ?? 64), Number(opts.get('warm-ms') ?? 300));
    const c0 = process.cpuUsage();
    const { calls, elapsedMs } = await pipelined(call, Number(opts.get('depth') ?? 64), Number(opts.get('ms') ?? 1500));
    const c1 = process.cpuUsage(c0);
    process.stdout.write(`${JSON.stringify({ ...extra, mode, calls, elapsedMs, perSec: calls / (elapsedMs / 1000), clientCpuUsPerCall: (c1.user + c1.system) / calls })}\n`);
  }
}
