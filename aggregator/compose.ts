// Builds virtqemud's object graph from its options: the one place real implementations (clock,
// logs, the process spawner for shims) are chosen.
import { join } from 'node:path';
import { rootLayout, sessionLayout, systemClock, systemLayout, type Layout } from '../protocol/index.js';
import { LogHub } from '../daemon/logging.js';
import { Virtqemud } from './daemon.js';
import { processShimSpawner } from './spawner.js';

/** Parsed command-line options of virtqemud. */
export interface DaemonOptions {
  root: string | undefined;
  mode: 'system' | 'session';
  shimBinary: string;
  logFilters: string | undefined;
  logStderr: boolean;
  reconcileMs: number;
  httpAddress: string | undefined;
  metricsRefreshMs: number;
  partialFrameTimeoutMs: number;
}

/** The layout of this instance. */
export function daemonLayout(opts: DaemonOptions, env: NodeJS.ProcessEnv): Layout {
  if (opts.root !== undefined) return rootLayout(opts.root);
  return opts.mode === 'system' ? systemLayout() : sessionLayout(env);
}

/** Builds and starts a virtqemud with real dependencies. */
export async function composeDaemon(opts: DaemonOptions, env: NodeJS.ProcessEnv, version: string): Promise<{ daemon: Virtqemud; logs: LogHub; layout: Layout }> {
  const layout = daemonLayout(opts, env);
  const logs = new LogHub({ name: 'virtqemud', bindings: {}, filters: opts.logFilters ?? env['LOG_FILTERS'], file: join(layout.log, 'virtqemud.log'), stderr: opts.logStderr });
  // Shims run under the same root or mode as their virtqemud.
  const placement = opts.root !== undefined ? ['--root', opts.root] : ['--mode', opts.mode];
  const clock = systemClock();
  const spawner = processShimSpawner(opts.shimBinary, placement, layout, env, clock);
  const daemon = new Virtqemud({ layout, clock, logs, spawner, version, reconcileMs: opts.reconcileMs, metricsRefreshMs: opts.metricsRefreshMs,
    partialFrameTimeoutMs: opts.partialFrameTimeoutMs, ...(opts.httpAddress === undefined ? {} : { httpAddress: opts.httpAddress }) });
  await daemon.start();
  return { daemon, logs, layout };
}
