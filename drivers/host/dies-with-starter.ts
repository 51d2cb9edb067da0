// Helper programs started so that the kernel SIGKILLs them when the process that started them
// dies: util-linux's `setpriv --pdeathsig KILL` (essential on Debian) sets the signal and execs
// the program, which keeps it. A daemon killed -9 mid-operation otherwise leaves its helpers
// working for nobody: a capabilities probe waiting on a closed stdin for good, a full clone's cp
// or qemu-img convert filling a temp file the restarted daemon has already removed while it holds
// the source's image lock. Where there is no setpriv, the program starts as it is. The signal
// follows the thread that spawned: every spawn here is made on the event loop's, which lives as
// long as the process.
import { spawn, type ChildProcessByStdio, type SpawnOptions } from 'node:child_process';
import { existsSync } from 'node:fs';
import type { Readable, Writable } from 'node:stream';

/** Where Debian's util-linux puts setpriv. */
export const SETPRIV = '/usr/bin/setpriv';

/** `[command, argv]` running `binary args` bound to die with its starter (as is without `setpriv`). */
export function boundCommand(binary: string, args: readonly string[], setpriv = SETPRIV): [string, string[]] {
  return existsSync(setpriv) ? [setpriv, ['--pdeathsig', 'KILL', '--', binary, ...args]] : [binary, [...args]];
}

/** How a bound program ended. */
export interface BoundExit {
  code: number | null;
  signal: string | null;
  /** Set when the program could not be started at all (e.g. ENOENT), by Node or by setpriv. */
  error?: Error;
}

/** A bound program with stdout and stderr piped (stdin too when `stdin` is 'pipe'). */
export interface BoundChild<In extends Writable | null> {
  child: ChildProcessByStdio<In, Readable, Readable>;
  /** Settles once the program has exited and its pipes are drained ('close'). */
  ended: Promise<BoundExit>;
}

/** setpriv's own words when it cannot execute the program (then it exits 126 or 127). */
const SETPRIV_EXEC_FAILED = /^setpriv: failed to execute (.*)$/m;

/**
 * Spawns `binary args` bound to its starter. A program setpriv could not execute ends with the
 * same `error` a direct spawn's ENOENT or EACCES gives, so callers tell "not installed" apart
 * from "failed" as before.
 */
export function spawnBound(binary: string, args: readonly string[], stdin: 'pipe', options?: Pick<SpawnOptions, 'env'>): BoundChild<Writable>;
export function spawnBound(binary: string, args: readonly string[], stdin: 'ignore', options?: Pick<SpawnOptions, 'env'>): BoundChild<null>;
export function spawnBound(binary: string, args: readonly string[], stdin: 'pipe' | 'ignore', options: Pick<SpawnOptions, 'env'> = {}): BoundChild<Writable | null> {
  const [command, argv] = boundCommand(binary, args);
  const child = spawn(command, argv, { ...options, stdio: [stdin, 'pipe', 'pipe'] }) as ChildProcessByStdio<Writable | null, Readable, Readable>;
  let head = '';
  if (command !== binary) child.stderr.on('data', (d: Buffer | string) => { if (head.length < 1024) head += String(d); });
  const ended = new Promise<BoundExit>((resolve) => {
    child.once('error', (error) => resolve({ code: null, signal: null, error }));
    child.once('close', (code, signal) => {
      const failed = command !== binary && (code === 126 || code === 127) ? SETPRIV_EXEC_FAILED.exec(head) : null;
      resolve(failed === null ? { code, signal } : { code, signal, error: new Error(failed[1]) });
    });
  });
  return { child, ended };
}

/** Runs `binary args` bound to its starter to its end: resolves with stdout; rejects with stderr's text, or why it could not start. */
export async function runBound(binary: string, args: readonly string[]): Promise<string> {
  const { child, ended } = spawnBound(binary, args, 'ignore');
  const out: Buffer[] = [];
  let err = '';
  child.stdout.on('data', (d: Buffer) => { out.push(d); });
  child.stderr.on('data', (d: Buffer) => { if (err.length < 8192) err += d.toString(); });
  const exit = await ended;
  if (exit.error !== undefined) throw new Error(`cannot run ${binary}: ${exit.error.message}`);
  if (exit.code !== 0) throw new Error(err.trim() || `${binary} ended with ${exit.signal ?? `code ${String(exit.code)}`}`);
  return Buffer.concat(out).toString();
}
