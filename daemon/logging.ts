// Logging for both daemons: pino JSON lines with dotted module names, per-module levels from
// filters like "debug:qemu.qmp warn:rpc" (longest matching prefix wins), changeable at run time
// through the admin API, and secrets redacted.
import { isAbsolute } from 'node:path';
import { pino, type DestinationStream, type Logger as PinoLogger, type Level } from 'pino';
import { VirtqError, type Logger } from '../protocol/index.js';

const LEVELS: ReadonlySet<string> = new Set(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']);

/** One parsed filter: modules starting with `prefix` log at `level` and above. */
export interface LogFilter {
  level: Level | 'silent';
  prefix: string;
}

/** Parses "debug:qemu.qmp warn:rpc"; a bare level sets the default. Throws INVALID_ARG. */
export function parseLogFilters(text: string): LogFilter[] {
  return text.split(/[\s,]+/).filter((t) => t !== '').map((token) => {
    const [level, prefix = ''] = token.split(':', 2) as [string, string | undefined];
    if (!LEVELS.has(level)) throw new VirtqError('INVALID_ARG', `unknown log level "${level}" in "${token}" (use trace, debug, info, warn, error, fatal or silent)`);
    return { level: level as Level, prefix };
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

// pino writes to this one stream; what it forwards to can be replaced while the daemon runs.
// Writes are synchronous: log lines are few, and the last ones before a crash are the ones wanted.
// A write that fails (a full disk) must never throw into the code that logged: sonic-boom emits
// the error synchronously, so each destination has a listener; it keeps what it could not write
// (up to MAX_UNWRITTEN bytes, then drops lines) and writes it with the next line once space is
// back. A failing destination is not flushed: sonic-boom's flushSync retries such an error forever.
const MAX_UNWRITTEN = 4 * 1024 * 1024;

interface Destination {
  out: LogOutput;
  stream: DestinationStream & { flushSync?(): void; end?(): void };
  failing: boolean;
}

class SwitchableOutput implements DestinationStream {
  private dests: Destination[] = [];

  set(outputs: readonly LogOutput[]): void {
    const old = this.dests;
    this.dests = outputs.map((out) => {
      const stream = pino.destination(out.kind === 'stderr' ? { dest: 2, sync: true, maxLength: MAX_UNWRITTEN } : { dest: out.path, mkdir: true, sync: true, maxLength: MAX_UNWRITTEN });
      const d: Destination = { out, stream, failing: false };
      stream.on('error', () => { d.failing = true; });
      stream.on('write', () => { d.failing = false; });
      return d;
    });
    for (const d of old) {
      flushQuietly(d);
      // Never close the process's stderr.
      if (d.out.kind === 'file') d.stream.end?.();
    }
  }

  write(line: string): void {
    for (const d of this.dests) d.stream.write(line);
  }

  flush(): void {
    for (const d of this.dests) flushQuietly(d);
  }
}

function flushQuietly(d: Destination): void {
  if (d.failing) return;
  try { d.stream.flushSync?.(); } catch { /* not open yet */ }
}

/** Owns a daemon's root logger and the levels of its module loggers. */
export class LogHub {
  readonly root: PinoLogger;
  private filters: LogFilter[];
  private filterText: string;
  private outputs: string;
  private readonly modules = new Map<string, Set<PinoLogger>>();
  private readonly sink = new SwitchableOutput();

  constructor(opts: { name: string; bindings: Record<string, unknown>; filters?: string; file?: string; stderr?: boolean }) {
    this.filterText = opts.filters ?? 'info';
    this.filters = parseLogFilters(this.filterText);
    const outputs: LogOutput[] = [];
    if (opts.file !== undefined) outputs.push({ kind: 'file', path: opts.file });
    if (opts.stderr === true || opts.file === undefined) outputs.push({ kind: 'stderr' });
    this.outputs = outputs.map((o) => (o.kind === 'stderr' ? 'stderr' : `file:${o.path}`)).join(' ');
    this.sink.set(outputs);
    this.root = pino({
      name: opts.name,
      base: { pid: process.pid, ...opts.bindings },
      level: 'trace',
      // Secret values travel only in fields named `value` (drivers/secret/types.ts): never logged.
      redact: { paths: ['*.password', '*.secret', '*.token', 'secret', 'password', 'value', '*.value', '*.*.value', '*.*.*.value', 'passphrase', '*.passphrase'], censor: '[redacted]' },
      onChild: (child) => this.track(child),
    }, this.sink);
    this.root.level = this.levelFor('');
  }

  /** The protocol-facing logger for a module. */
  module(name: string): Logger {
    return this.root.child({ module: name }) as unknown as Logger;
  }

  get filtersText(): string {
    return this.filterText;
  }

  get outputsText(): string {
    return this.outputs;
  }

  /** Replaces the filters; every existing module logger takes its new level at once. */
  setFilters(text: string): void {
    this.filters = parseLogFilters(text);
    this.filterText = text;
    this.root.level = this.levelFor('');
    for (const [module, children] of this.modules) for (const c of children) c.level = this.levelFor(module);
  }

  /** Replaces where logs go ("stderr file:/path"), at once and without a restart. */
  setOutputs(text: string): void {
    const outputs = parseLogOutputs(text);
    this.sink.set(outputs);
    this.outputs = text.trim().split(/\s+/).join(' ');
  }

  /** Flushes buffered log lines (before exit). */
  flush(): void {
    this.sink.flush();
  }

  private track(child: PinoLogger): void {
    const module = (child.bindings() as { module?: unknown }).module;
    if (typeof module !== 'string') return;
    child.level = this.levelFor(module);
    let set = this.modules.get(module);
    if (set === undefined) this.modules.set(module, (set = new Set()));
    set.add(child);
  }

  private levelFor(module: string): Level | 'silent' {
    let best: LogFilter | undefined;
    for (const f of this.filters) {
      if ((f.prefix === '' || module === f.prefix || module.startsWith(`${f.prefix}.`) || module.startsWith(f.prefix)) && (best === undefined || f.prefix.length >= best.prefix.length)) best = f;
    }
    return best?.level ?? 'info';
  }
}
