// What every log hub shares, with no logging library behind it: the filter and output syntax of
// the admin API ("debug:qemu.qmp warn:rpc", "stderr file:/path"), the longest-prefix level rule,
// and the surface the admin handlers and the shim program against. daemon/line-log.ts (every
// daemon and the shim) and daemon/logging.ts (pino, the reference its lines are tested against)
// implement it; no daemon's bundle holds pino.
import { isAbsolute } from 'node:path';
import { VirtqError, type Logger } from '../protocol/index.js';

/** A level name as the filters give it. */
export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'silent';

const LEVELS: ReadonlySet<string> = new Set(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']);

/** One parsed filter: modules starting with `prefix` log at `level` and above. */
export interface LogFilter {
  level: LogLevel;
  prefix: string;
}

/** Parses "debug:qemu.qmp warn:rpc"; a bare level sets the default. Throws INVALID_ARG. */
export function parseLogFilters(text: string): LogFilter[] {
  return text.split(/[\s,]+/).filter((t) => t !== '').map((token) => {
    const [level, prefix = ''] = token.split(':', 2) as [string, string | undefined];
    if (!LEVELS.has(level)) throw new VirtqError('INVALID_ARG', `unknown log level "${level}" in "${token}" (use trace, debug, info, warn, error, fatal or silent)`);
    return { level: level as LogLevel, prefix };
  });
}

/** One log output: `stderr` or `file:/absolute/path`. */
export type LogOutput = { kind: 'stderr' } | { kind: 'file'; path: string };

/** Parses "stderr file:/var/log/virtq/x.log"; throws INVALID_ARG. */
export function parseLogOutputs(text: string): LogOutput[] {
  const outputs = text.split(/\s+/).filter((t) => t !== '').map((token): LogOutput => {
    if (token === 'stderr') return { kind: 'stderr' };
    if (token.startsWith('file:') && isAbsolute(token.slice(5))) return { kind: 'file', path: token.slice(5) };
    throw new VirtqError('INVALID_ARG', `unknown log output "${token}" (use stderr or file:/absolute/path)`);
  });
  if (outputs.length === 0) throw new VirtqError('INVALID_ARG', 'give at least one log output');
  return outputs;
}

/** The outputs a hub starts with: the file when given, and stderr when asked or when there is no file. */
export function initialOutputs(file: string | undefined, stderr: boolean | undefined): LogOutput[] {
  const outputs: LogOutput[] = [];
  if (file !== undefined) outputs.push({ kind: 'file', path: file });
  if (stderr === true || file === undefined) outputs.push({ kind: 'stderr' });
  return outputs;
}

/** How outputs are shown back (getLogOutputs). */
export function outputsText(outputs: readonly LogOutput[]): string {
  return outputs.map((o) => (o.kind === 'stderr' ? 'stderr' : `file:${o.path}`)).join(' ');
}

/** The level of `module`: the filter with the longest matching prefix, else info. */
export function levelFor(filters: readonly LogFilter[], module: string): LogLevel {
  let best: LogFilter | undefined;
  for (const f of filters) {
    if ((f.prefix === '' || module === f.prefix || module.startsWith(`${f.prefix}.`) || module.startsWith(f.prefix)) && (best === undefined || f.prefix.length >= best.prefix.length)) best = f;
  }
  return best?.level ?? 'info';
}

/**
 * What is never logged: secret values travel only in fields named `value` (drivers/secret/types.ts),
 * and credentials under these names. pino's redact paths, censored as `CENSOR`; both hubs use them.
 */
export const REDACT_PATHS: readonly string[] = ['*.password', '*.secret', '*.token', 'secret', 'password', 'value', '*.value', '*.*.value', '*.*.*.value', 'passphrase', '*.passphrase'];
export const CENSOR = '[redacted]';

/** A daemon's log hub as the admin API and the shim use it. */
export interface Logs {
  /** The protocol-facing logger for a module (dotted name). */
  module(name: string): Logger;
  readonly filtersText: string;
  readonly outputsText: string;
  /** Replaces the filters; every existing module logger takes its new level at once. Throws INVALID_ARG. */
  setFilters(text: string): void;
  /** Replaces where logs go ("stderr file:/path"), at once. Throws INVALID_ARG. */
  setOutputs(text: string): void;
  /** Flushes buffered log lines (before exit). */
  flush(): void;
}
