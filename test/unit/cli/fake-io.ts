// A fake outside world for CLI unit tests: captured stdout and stderr, a scripted stdin, and a
// fake server whose procedures answer from a table, so runCli runs without any daemon.
import { EventEmitter } from 'node:events';
import { EventQueue, VirtqError, type LifecycleEvent } from '../../../protocol/index.js';
import type { CliByteStream, CliIo, ConsoleStream, Sink, Stdin } from '../../../cli/io.js';
import { runCli } from '../../../cli/run.js';
import { FakeClock } from '../../helpers/fake-clock.js';

/** Captures what is written. */
export class FakeSink implements Sink {
  text = '';
  constructor(readonly isTTY = false, readonly columns = 100) {}
  write(data: string | Uint8Array): void {
    this.text += typeof data === 'string' ? data : Buffer.from(data).toString('utf8');
  }
}

/** A stdin the test feeds. */
export class FakeStdin extends EventEmitter implements Stdin {
  readonly rawModes: boolean[] = [];
  paused = true;
  constructor(readonly isTTY = false) { super(); }
  setRawMode(raw: boolean): void { this.rawModes.push(raw); }
  pause(): void { this.paused = true; }
  resume(): void { this.paused = false; }
  send(text: string | Buffer): void { this.emit('data', typeof text === 'string' ? Buffer.from(text) : text); }
  finish(): void { this.emit('end'); }
}

/** A console stream whose guest side the test drives. */
export class FakeConsole implements ConsoleStream {
  readonly fromGuest = new EventQueue<Uint8Array>(1000);
  readonly typed: string[] = [];
  ended = false;
  error: VirtqError | undefined;
  write(data: Uint8Array | string): void { this.typed.push(typeof data === 'string' ? data : Buffer.from(data).toString('utf8')); }
  end(): void { this.ended = true; this.fromGuest.end(); }
  guest(text: string): void { this.fromGuest.push(Buffer.from(text)); }
  [Symbol.asyncIterator](): AsyncIterator<Uint8Array> { return this.fromGuest[Symbol.asyncIterator](); }
}

/** A procedure's fake implementation: a value, or a function of the arguments (which may throw). */
export type FakeProc = unknown | ((args: Record<string, unknown>) => unknown);

/** Options of a fake world. */
export interface FakeWorld {
  procs?: Record<string, FakeProc>;
  admin?: Record<string, FakeProc>;
  env?: NodeJS.ProcessEnv;
  uid?: number;
  cwd?: string;
  stdinTTY?: boolean;
  stderrTTY?: boolean;
  events?: EventQueue<LifecycleEvent>;
  console?: FakeConsole;
  /** Makes connecting fail with this error. */
  connectError?: VirtqError;
  /** Procedures of the secondary daemons' programs (storage, secret), by name. */
  service?: Record<string, FakeProc>;
  /** Stream procedures of those programs: each opens the stream the test built. */
  streams?: Record<string, (args: Record<string, unknown>) => CliByteStream>;
  /** Events the service connection pushes. */
  serviceEvents?: EventQueue<{ prog: string; name: string; body: unknown }>;
  /** Local files by path, as bytes. */
  files?: Map<string, Buffer>;
}

/** The fake world and what happened in it. */
export interface Fake {
  io: CliIo;
  stdout: FakeSink;
  stderr: FakeSink;
  stdin: FakeStdin;
  clock: FakeClock;
  calls: Array<{ proc: string; args: unknown; timeoutMs?: number | undefined }>;
  uris: string[];
  closed: number;
  /** Local files after the run (written ones included). */
  files: Map<string, Buffer>;
  /** Sends Ctrl-C to the running command. */
  interrupt(): void;
  /** Runs the CLI and returns its exit status. */
  run(...argv: string[]): Promise<number>;
}

function answer(table: Record<string, FakeProc>, proc: string, args: unknown): Promise<unknown> {
  if (!Object.hasOwn(table, proc)) return Promise.reject(new VirtqError('NOT_SUPPORTED', `fake has no ${proc}`));
  const impl = table[proc];
  try {
    return Promise.resolve(typeof impl === 'function' ? (impl as (a: Record<string, unknown>) => unknown)(args as Record<string, unknown>) : impl);
  } catch (err) {
    return Promise.reject(err);
  }
}

/** Builds a fake world. */
export function fake(world: FakeWorld = {}): Fake {
  const stdout = new FakeSink();
  const stderr = new FakeSink(world.stderrTTY ?? false);
  const stdin = new FakeStdin(world.stdinTTY ?? false);
  const clock = new FakeClock();
  const files = world.files ?? new Map<string, Buffer>();
  const interrupts = new Set<() => void>();
  const f: Fake = {
    stdout, stderr, stdin, clock, calls: [], uris: [], closed: 0, files,
    interrupt: () => { for (const h of [...interrupts]) h(); },
    io: {
      env: world.env ?? {}, cwd: world.cwd ?? '/home/u', uid: world.uid ?? 1000, stdout, stderr, stdin, clock,
      connect: async (uri) => {
        f.uris.push(uri);
        if (world.connectError !== undefined) throw world.connectError;
        return {
          call: (proc, args, opts) => { f.calls.push({ proc, args, timeoutMs: opts?.timeoutMs }); return answer(world.procs ?? {}, proc, args); },
          events: async (filter) => {
            f.calls.push({ proc: 'subscribeEvents', args: filter });
            const q = world.events ?? new EventQueue<LifecycleEvent>(10);
            const it = q[Symbol.asyncIterator]();
            const iter: AsyncIterableIterator<LifecycleEvent> = { next: () => it.next(), return: () => it.return?.() ?? Promise.resolve({ value: undefined, done: true }), [Symbol.asyncIterator]: () => iter };
            return iter;
          },
          console: async (name) => {
            f.calls.push({ proc: 'openConsole', args: { name } });
            return world.console ?? new FakeConsole();
          },
          close: () => { f.closed++; },
        };
      },
      connectService: async (program, uri) => {
        f.uris.push(`${program}:${uri}`);
        if (world.connectError !== undefined) throw world.connectError;
        return {
          call: (proc, args, opts) => { f.calls.push({ proc, args, timeoutMs: opts?.timeoutMs }); return answer(world.service ?? {}, proc, args); },
          openStream: async (proc, args) => {
            f.calls.push({ proc, args });
            const open = world.streams?.[proc];
            if (open === undefined) throw new VirtqError('NOT_SUPPORTED', `fake has no stream ${proc}`);
            return open(args as Record<string, unknown>);
          },
          events: () => world.serviceEvents ?? new EventQueue(10),
          close: () => { f.closed++; },
        };
      },
      files: {
        size: async (path) => {
          const b = files.get(path);
          if (b === undefined) throw new VirtqError('INVALID_ARG', `${path}: no such file`);
          return b.length;
        },
        read: (path) => (async function* () {
          const b = files.get(path) ?? Buffer.alloc(0);
          for (let i = 0; i < b.length; i += 4) yield b.subarray(i, i + 4);
        })(),
        create: async (path) => {
          const parts: Buffer[] = [];
          return {
            write: async (chunk) => { parts.push(Buffer.from(chunk)); },
            commit: async () => { files.set(path, Buffer.concat(parts)); },
            abort: async () => { parts.length = 0; },
          };
        },
      },
      onInterrupt: (handler) => {
        interrupts.add(handler);
        return { dispose: () => { interrupts.delete(handler); } };
      },
      connectAdmin: async (uri) => {
        f.uris.push(`admin:${uri}`);
        if (world.connectError !== undefined) throw world.connectError;
        return {
          call: (proc, args) => { f.calls.push({ proc, args }); return answer(world.admin ?? {}, proc, args); },
          close: () => { f.closed++; },
        };
      },
    },
    run: (...argv) => runCli(argv, f.io),
  };
  return f;
}
