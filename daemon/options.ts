// The command-line options every daemon takes (`--root`, `--system`/`--session`, logging,
// `--http`, frame timeouts) and the layout they choose. A daemon adds its own options beside
// these; the usage lines shared by all of them are written once here.
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { VirtqError, rootLayout, sessionLayout, systemLayout, type Layout } from '../protocol/index.js';
import { REMOTE_OPTIONS, REMOTE_USAGE, parseRemoteOptions, type RemoteOptions } from './tls-options.js';

/** parseArgs's option table. */
export type OptionsConfig = NonNullable<ParseArgsConfig['options']>;
/** Parsed option values by long name (strings, booleans; absent when not given). */
export type OptionValues = Readonly<Record<string, string | boolean | undefined>>;

/** A string option's value, or undefined. */
export function stringOption(values: OptionValues, name: string): string | undefined {
  const v = values[name];
  return typeof v === 'string' ? v : undefined;
}

/** What every daemon's command line says. */
export interface CommonOptions {
  root: string | undefined;
  mode: 'system' | 'session';
  logFilters: string | undefined;
  logStderr: boolean;
  /** HOST:PORT for GET /metrics; undefined for none. */
  httpAddress: string | undefined;
  partialFrameTimeoutMs: number;
  /** TLS listener and access rules (daemon/tls-options.ts). */
  remote?: RemoteOptions;
}

const COMMON = {
  root: { type: 'string' }, system: { type: 'boolean' }, session: { type: 'boolean' },
  'log-filters': { type: 'string' }, 'log-stderr': { type: 'boolean' }, http: { type: 'string' },
  'partial-frame-timeout-ms': { type: 'string' }, help: { type: 'boolean', short: 'h' },
  ...REMOTE_OPTIONS,
} as const satisfies OptionsConfig;

/** The usage lines of the common options. */
export const COMMON_USAGE = `  --root DIR          keep config, state, sockets and logs under DIR (clients: SCHEME:///system?root=DIR)
  --system            the FHS layout (/etc/virtq, /var/lib/virtq, /run/virtq); default for root
  --session           the per-user layout (XDG dirs); default for other users
  --log-filters F     e.g. "debug:rpc warn:registry" (default: $LOG_FILTERS or info)
  --log-stderr        also log to stderr
  --http HOST:PORT    serve GET /metrics for Prometheus
  --partial-frame-timeout-ms N  drop a client that leaves a frame unfinished this long (default 30000)
${REMOTE_USAGE}`;

/** A whole number option, at least `min`; INVALID_ARG naming the flag otherwise. */
export function wholeNumber(value: string | undefined, flag: string, fallback: number, min = 0): number {
  const n = Number(value ?? String(fallback));
  if (!Number.isInteger(n) || n < min) throw new VirtqError('INVALID_ARG', `--${flag} must be a whole number${min > 0 ? ` ≥ ${min}` : ''}`);
  return n;
}

/**
 * Parses a daemon's command line: the common options and `extra`, strictly (an unknown flag is
 * INVALID_ARG). `help` is true for -h/--help.
 */
export function parseDaemonArgs(argv: readonly string[], extra: OptionsConfig, uid: number): { common: CommonOptions; values: OptionValues; help: boolean } {
  let parsed;
  try {
    parsed = parseArgs({ args: [...argv], options: { ...extra, ...COMMON }, strict: true });
  } catch (err) {
    throw new VirtqError('INVALID_ARG', (err as Error).message);
  }
  const v = parsed.values as OptionValues;
  const str = (k: string): string | undefined => stringOption(v, k);
  if (v['system'] === true && v['session'] === true) throw new VirtqError('INVALID_ARG', 'give at most one of --system and --session');
  const common: CommonOptions = {
    root: str('root'),
    mode: v['system'] === true ? 'system' : v['session'] === true ? 'session' : uid === 0 ? 'system' : 'session',
    logFilters: str('log-filters'), logStderr: v['log-stderr'] === true, httpAddress: str('http'),
    partialFrameTimeoutMs: wholeNumber(str('partial-frame-timeout-ms'), 'partial-frame-timeout-ms', 30_000, 1),
    remote: parseRemoteOptions(v),
  };
  return { common, values: v, help: v['help'] === true };
}

/** The layout the options choose: under `--root`, else the system or session one. */
export function layoutOf(common: Pick<CommonOptions, 'root' | 'mode'>, env: NodeJS.ProcessEnv): Layout {
  if (common.root !== undefined) return rootLayout(common.root);
  return common.mode === 'system' ? systemLayout() : sessionLayout(env);
}
