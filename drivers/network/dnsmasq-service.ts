// A network's supervised dnsmasq: adopted when one already runs with the same configuration (after
// a daemon restart), replaced when its configuration changed, started otherwise; then restarted
// with backoff whenever it dies, each restart reported for the metrics.
import { readFile } from 'node:fs/promises';
import { writeFileAtomic } from '../fs/atomic-file.js';
import type { DriverContext } from './context.js';
import { dnsmasqCmdlineMarker, dnsmasqConf } from './dnsmasq-conf.js';
import { hasLetGo } from '../host/proc.js';
import { findDnsmasq, startDnsmasq, stopDnsmasq } from './dnsmasq.js';
import { pollExit, Supervisor, type BackoffPolicy, type WatchedProcess } from './supervisor.js';
import type { NetworkConfig } from './types.js';

/** Tuning of the supervision. */
export interface DnsmasqSupervision {
  backoff?: BackoffPolicy;
  /** How often an adopted dnsmasq (not our child, so no exit event) is checked, ms. */
  adoptedPollMs: number;
}

async function readText(file: string): Promise<string | undefined> {
  try {
    return await readFile(file, 'utf8');
  } catch {
    return undefined;
  }
}

/** Starts (or adopts) the dnsmasq of `cfg` and returns its supervisor. */
export async function ensureDnsmasq(ctx: DriverContext, cfg: NetworkConfig, tuning: DnsmasqSupervision): Promise<Supervisor> {
  const paths = ctx.store.dnsmasqPaths(cfg.name);
  const conf = dnsmasqConf(cfg, paths);
  const marker = dnsmasqCmdlineMarker(paths);
  const launch = async (): Promise<WatchedProcess> => {
    await writeFileAtomic(paths.conf, conf);
    return startDnsmasq(ctx.runner, ctx.clock, paths, cfg.name);
  };
  const running = await findDnsmasq(paths);
  let first: WatchedProcess;
  if (running !== undefined && (await readText(paths.conf)) === conf) {
    // Exited once its sockets are free, so the restart that follows can bind them.
    first = pollExit(running, (pid) => !hasLetGo(pid, marker), ctx.clock, tuning.adoptedPollMs);
    ctx.emit({ kind: 'dnsmasq-adopted', network: cfg.name, pid: running });
  } else {
    if (running !== undefined) await stopDnsmasq(running, paths, ctx.clock);
    first = await launch();
  }
  const hooks = {
    clock: ctx.clock,
    launch,
    onExit: (pid: number, exit: { code: number | null; signal: string | null }) =>
      ctx.emit({ kind: 'dnsmasq-exited', network: cfg.name, pid, code: exit.code, signal: exit.signal }),
    onRestart: (pid: number, restarts: number) => ctx.emit({ kind: 'dnsmasq-restarted', network: cfg.name, pid, restarts }),
    onRestartFailed: (err: unknown, retryInMs: number) =>
      ctx.emit({ kind: 'dnsmasq-restart-failed', network: cfg.name, message: err instanceof Error ? err.message : String(err), retryInMs }),
  };
  return new Supervisor(tuning.backoff === undefined ? hooks : { ...hooks, backoff: tuning.backoff }, first);
}

/** Stops the supervision and the dnsmasq of `cfg`, if one runs. */
export async function stopDnsmasqService(ctx: DriverContext, cfg: NetworkConfig, supervisor: Supervisor | undefined): Promise<void> {
  await supervisor?.stop();
  const paths = ctx.store.dnsmasqPaths(cfg.name);
  const pid = supervisor?.pid ?? (await findDnsmasq(paths));
  if (pid !== undefined) await stopDnsmasq(pid, paths, ctx.clock);
}
