// Logging for the daemons: pino JSON lines with dotted module names, per-module levels from
// filters like "debug:qemu.qmp warn:rpc" (longest matching prefix wins), changeable at run time
// through the admin API, and secrets redacted. Every daemon and the shim now write the same lines
// without pino (daemon/line-log.ts); this hub stays as the reference that line-log.test.ts compares
// those lines with. The filter syntax and the redact paths are daemon/log-filters.ts's.
import { pino, type DestinationStream, type Logger as PinoLogger } from 'pino';
import type { Logger } from '../protocol/index.js';
import { CENSOR, REDACT_PATHS, initialOutputs, levelFor, outputsText, parseLogFilters, parseLogOutputs, type LogFilter, type LogLevel, type LogOutput, type Logs } from './log-filters.js';

export { parseLogFilters, parseLogOutputs, type LogFilter, type LogLevel, type LogOutput, type Logs } from './log-filters.js';

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
export class LogHub implements Logs {
  readonly root: PinoLogger;
  private filters: LogFilter[];
  private filterText: string;
  private outputs: string;
  private readonly modules = new Map<string, Set<PinoLogger>>();
  private readonly sink = new SwitchableOutput();

  constructor(opts: { name: string; bindings: Record<string, unknown>; filters?: string; file?: string; stderr?: boolean }) {
    this.filterText = opts.filters ?? 'info';
    this.filters = parseLogFilters(this.filterText);
    const outputs = initialOutputs(opts.file, opts.stderr);
    this.outputs = outputsText(outputs);
    this.sink.set(outputs);
    this.root = pino({
      name: opts.name,
      base: { pid: process.pid, ...opts.bindings },
      level: 'trace',
      redact: { paths: [...REDACT_PATHS], censor: CENSOR },
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

  private levelFor(module: string): LogLevel {
    return levelFor(this.filters, module);
  }
}
