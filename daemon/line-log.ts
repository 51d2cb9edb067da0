// Every daemon's and shim's log hub: the lines, levels, filters and outputs of daemon/logging.ts's
// LogHub, written by daemon/line-format.ts instead of pino (a settled shim without pino, its
// serializers, redaction and sonic-boom holds ~0.3 MiB less; bench/RESULTS.md, issue 15, session 10;
// a volume create's info line costs virtstoraged less CPU without it, issue 13, session 15).
// Writes are synchronous, as the daemons' are: the last lines before a crash are the ones wanted.
// A write that fails (a full disk, a pipe that would block) never throws into the code that
// logged: the destination keeps what it could not write (up to MAX_UNWRITTEN bytes, then drops
// lines) and writes it with the next line; a failing destination is not retried by flush().
import { closeSync, mkdirSync, openSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Logger } from '../protocol/index.js';
import { CENSOR, REDACT_PATHS, initialOutputs, levelFor, outputsText, parseLogFilters, parseLogOutputs, type LogFilter, type LogLevel, type LogOutput, type Logs } from './log-filters.js';
import { LEVEL_NUMBERS, fieldsJson, messageJson, stringifiers, type Stringifiers } from './line-format.js';

const MAX_UNWRITTEN = 4 * 1024 * 1024;

/** One output: fd 2 or an appended file, with what it could not write yet. */
class Destination {
  // What could not be written yet, oldest first, and its size.
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  failing = false;

  private constructor(readonly out: LogOutput, private readonly fd: number) {}

  static open(out: LogOutput): Destination {
    if (out.kind === 'stderr') return new Destination(out, 2);
    mkdirSync(dirname(out.path), { recursive: true });
    return new Destination(out, openSync(out.path, 'a'));
  }

  write(line: string): void {
    if (this.pending.length === 0) {
      // The usual case: nothing held back, the line written as it is (no Buffer made for it).
      try {
        const n = writeSync(this.fd, line);
        this.failing = false;
        if (n === Buffer.byteLength(line)) return;
        // A short write: the rest is held back as bytes.
        this.hold(Buffer.from(line).subarray(n));
      } catch {
        this.failing = true;
        this.hold(Buffer.from(line));
      }
      return;
    }
    this.hold(Buffer.from(line));
    this.drain();
  }

  private hold(buf: Buffer): void {
    if (this.pendingBytes + buf.length > MAX_UNWRITTEN) return;
    this.pending.push(buf);
    this.pendingBytes += buf.length;
  }

  // One chunk at a time, never concatenated: on a full disk every line retries only the oldest.
  drain(): void {
    try {
      while (this.pending.length > 0) {
        const chunk = this.pending[0] as Buffer;
        const n = writeSync(this.fd, chunk);
        this.pendingBytes -= n;
        if (n < chunk.length) this.pending[0] = chunk.subarray(n);
        else this.pending.shift();
      }
      this.failing = false;
    } catch {
      this.failing = true;
    }
  }

  close(): void {
    if (!this.failing) this.drain();
    // Never close the process's stderr.
    if (this.out.kind === 'file') try { closeSync(this.fd); } catch { /* already gone */ }
  }
}

/** The hub's side of its loggers: where lines go and how fields are written. */
interface Sink {
  readonly s: Stringifiers;
  write(line: string): void;
  track(logger: LineLogger, bindings: Readonly<Record<string, unknown>>): void;
}

/** A pino-compatible logger writing through a Sink; `level` is its threshold. */
class LineLogger implements Logger {
  threshold = 0;

  constructor(private readonly sink: Sink, private readonly chindings: string, readonly bindings: Readonly<Record<string, unknown>>) {}

  private log(num: number, obj: unknown, msg: unknown): void {
    if (num < this.threshold) return;
    let fields: object;
    if (obj === undefined || obj === null) fields = {};
    else if (obj instanceof Error) {
      fields = { err: obj };
      if (msg === undefined) msg = obj.message;
    } else if (typeof obj === 'object') {
      fields = obj;
      const err = (obj as { err?: unknown }).err;
      if (msg === undefined && (obj as { msg?: unknown }).msg === undefined && err) msg = (err as { message?: unknown }).message;
    } else {
      // log.info('text'): pino takes a bare string as the message.
      fields = {};
      msg = obj;
    }
    this.sink.write(`{"level":${num},"time":${Date.now()}${this.chindings}${fieldsJson(fields, this.sink.s)}${messageJson(msg, this.sink.s)}}\n`);
  }

  trace(obj: object, msg?: string): void { this.log(LEVEL_NUMBERS.trace, obj, msg); }
  debug(obj: object, msg?: string): void { this.log(LEVEL_NUMBERS.debug, obj, msg); }
  info(obj: object, msg?: string): void { this.log(LEVEL_NUMBERS.info, obj, msg); }
  warn(obj: object, msg?: string): void { this.log(LEVEL_NUMBERS.warn, obj, msg); }
  error(obj: object, msg?: string): void { this.log(LEVEL_NUMBERS.error, obj, msg); }
  fatal(obj: object, msg?: string): void { this.log(LEVEL_NUMBERS.fatal, obj, msg); }

  child(bindings: Record<string, unknown>): LineLogger {
    const c = new LineLogger(this.sink, this.chindings + fieldsJson(bindings, this.sink.s, true), { ...this.bindings, ...bindings });
    c.threshold = this.threshold;
    this.sink.track(c, c.bindings);
    return c;
  }
}

const thresholdOf = (level: LogLevel): number => (level === 'silent' ? Infinity : LEVEL_NUMBERS[level]);

/** Owns a daemon's or shim's root logger and the levels of its module loggers (the surface of LogHub). */
export class LineLogHub implements Logs {
  private filters: LogFilter[];
  private filterText: string;
  private outputs: string;
  private dests: Destination[] = [];
  private readonly root: LineLogger;
  private readonly modules = new Map<string, Set<LineLogger>>();

  constructor(opts: { name: string; bindings: Record<string, unknown>; filters?: string; file?: string; stderr?: boolean }) {
    this.filterText = opts.filters ?? 'info';
    this.filters = parseLogFilters(this.filterText);
    const outputs = initialOutputs(opts.file, opts.stderr);
    this.outputs = outputsText(outputs);
    this.setDestinations(outputs);
    const sink: Sink = {
      s: stringifiers(REDACT_PATHS, CENSOR),
      write: (line) => { for (const d of this.dests) d.write(line); },
      track: (logger, bindings) => this.track(logger, bindings),
    };
    // pino's root: its base bindings, then its name.
    const base = { pid: process.pid, ...opts.bindings, name: opts.name };
    this.root = new LineLogger(sink, fieldsJson(base, sink.s, true), {});
    this.root.threshold = thresholdOf(levelFor(this.filters, ''));
  }

  module(name: string): Logger {
    return this.root.child({ module: name });
  }

  get filtersText(): string {
    return this.filterText;
  }

  get outputsText(): string {
    return this.outputs;
  }

  setFilters(text: string): void {
    this.filters = parseLogFilters(text);
    this.filterText = text;
    this.root.threshold = thresholdOf(levelFor(this.filters, ''));
    for (const [module, loggers] of this.modules) for (const l of loggers) l.threshold = thresholdOf(levelFor(this.filters, module));
  }

  setOutputs(text: string): void {
    this.setDestinations(parseLogOutputs(text));
    this.outputs = text.trim().split(/\s+/).join(' ');
  }

  flush(): void {
    for (const d of this.dests) if (!d.failing) d.drain();
  }

  private setDestinations(outputs: readonly LogOutput[]): void {
    const old = this.dests;
    this.dests = outputs.map((o) => Destination.open(o));
    for (const d of old) d.close();
  }

  private track(logger: LineLogger, bindings: Readonly<Record<string, unknown>>): void {
    const module = bindings['module'];
    if (typeof module !== 'string') return;
    logger.threshold = thresholdOf(levelFor(this.filters, module));
    let set = this.modules.get(module);
    if (set === undefined) this.modules.set(module, (set = new Set()));
    set.add(logger);
  }
}
