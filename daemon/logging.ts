// Logging for both daemons: pino JSON lines with dotted module names, per-module levels from
// filters like "debug:qemu.qmp warn:rpc" (longest matching prefix wins), changeable at run time
// through the admin API, and secrets redacted.
import { pino, type Logger as PinoLogger, type Level } from 'pino';
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

/** Owns a daemon's root logger and the levels of its module loggers. */
export class LogHub {
  readonly root: PinoLogger;
  private filters: LogFilter[];
  private filterText: string;
  private outputs: string;
  private readonly modules = new Map<string, Set<PinoLogger>>();

  constructor(opts: { name: string; bindings: Record<string, unknown>; filters?: string; file?: string; stderr?: boolean }) {
    this.filterText = opts.filters ?? 'info';
    this.filters = parseLogFilters(this.filterText);
    const streams: pino.StreamEntry[] = [];
    if (opts.file !== undefined) streams.push({ level: 'trace', stream: pino.destination({ dest: opts.file, mkdir: true, sync: false }) });
    if (opts.stderr === true || opts.file === undefined) streams.push({ level: 'trace', stream: pino.destination({ dest: 2, sync: true }) });
    this.outputs = [opts.stderr === true || opts.file === undefined ? 'stderr' : '', opts.file === undefined ? '' : `file:${opts.file}`].filter(Boolean).join(' ');
    this.root = pino({
      name: opts.name,
      base: { pid: process.pid, ...opts.bindings },
      level: 'trace',
      redact: { paths: ['*.password', '*.secret', '*.token', 'secret', 'password'], censor: '[redacted]' },
      onChild: (child) => this.track(child),
    }, pino.multistream(streams));
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

  /** Flushes buffered log lines (before exit). */
  flush(): void {
    this.root.flush();
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
