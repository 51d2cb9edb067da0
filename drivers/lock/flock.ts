// flock(2) from Node, which has no binding for it, through util-linux flock(1): a short-lived
// `flock -n FD` locks an open file description the caller passes in (the lock then belongs to
// that description, not to the helper), and a holder process keeps a lease's description open
// until it can take a shared lock on a lifeline that only QEMU holds, that is until QEMU exits.
import { spawn } from 'node:child_process';
import { closeSync, constants, openSync } from 'node:fs';
import type { Clock } from '../../protocol/clock.js';
import { processStart } from '../host/proc.js';
import { VirtqError } from '../../protocol/errors.js';
import type { LeaseMode } from './types.js';

/** The exit status flock(1) is told to use for "held by someone else". */
export const FLOCK_CONFLICT_EXIT = 75;

/** A running process, identified by pid and start time (so a reused pid is never mistaken for it). */
export interface ProcessId {
  pid: number;
  start: number;
}

/** Runs `flock ARGS` with `fds` as its fds 3, 4, ...; resolves with its exit status and stderr. */
function runFlock(flock: string, args: string[], fds: number[]): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(flock, args, { stdio: ['ignore', 'ignore', 'pipe', ...fds] });
    let stderr = '';
    child.stderr?.setEncoding('utf8').on('data', (s: string) => { stderr += s; });
    child.once('error', (err) => reject(new VirtqError('LOCK_MANAGER_UNAVAILABLE', `cannot run ${flock} (util-linux): ${err.message}`, { cause: err })));
    child.once('close', (code) => resolve({ code, stderr: stderr.trim() }));
  });
}

/**
 * Checks that flock(1) runs with the options leases use (`-E` is missing from old util-linux) by
 * taking and dropping a shared lock on `dir`; throws LOCK_MANAGER_UNAVAILABLE saying why not.
 */
export async function checkFlock(flock: string, dir: string): Promise<void> {
  const { code, stderr } = await runFlock(flock, ['-n', '-E', String(FLOCK_CONFLICT_EXIT), '-s', dir, 'true'], []);
  if (code !== 0) throw new VirtqError('LOCK_MANAGER_UNAVAILABLE', `${flock} cannot lock ${dir} (exit ${code}): ${stderr}`);
}

/**
 * Tries to lock the open file description behind `fd` without waiting. The lock stays with the
 * description after the helper exits: it is released when the last fd referring to it closes.
 */
export async function tryLock(flock: string, fd: number, mode: LeaseMode): Promise<'locked' | 'conflict'> {
  const { code, stderr } = await runFlock(flock, ['-n', '-E', String(FLOCK_CONFLICT_EXIT), mode === 'exclusive' ? '-x' : '-s', '3'], [fd]);
  if (code === 0) return 'locked';
  if (code === FLOCK_CONFLICT_EXIT) return 'conflict';
  throw new VirtqError('OPERATION_FAILED', `flock failed (exit ${code}): ${stderr}`);
}

/**
 * Starts a holder: `flock -s 4` with the locked lease description as fd 3 and a private
 * description of the lifeline as fd 4. It blocks until the lifeline's exclusive lock is gone
 * (its QEMU exited), then exits, closing the lease. Detached, so it outlives the shim.
 */
export function spawnHolder(flock: string, leaseFd: number, lifelineFd: number): ProcessId {
  const child = spawn(flock, ['-s', '4'], { stdio: ['ignore', 'ignore', 'ignore', leaseFd, lifelineFd], detached: true });
  child.once('error', () => undefined);
  child.unref();
  const pid = child.pid;
  if (pid === undefined) throw new VirtqError('LOCK_MANAGER_UNAVAILABLE', `cannot start a lease holder (${flock})`);
  const start = processStart(pid);
  if (start === undefined) throw new VirtqError('OPERATION_FAILED', `lease holder ${pid} exited at once`);
  return { pid, start };
}

/** True while the process `id` runs (a zombie has closed its fds, so it counts as gone). */
export function isAlive(id: ProcessId): boolean {
  const start = processStart(id.pid);
  return start !== undefined && start === id.start;
}

/** How long stopHolder polls a killed holder every millisecond before it polls every 5. */
const FAST_POLL_FOR_MS = 20;

/** Kills the holder `id` if it still runs and resolves once it is gone (its fds closed). */
export async function stopHolder(id: ProcessId, clock: Clock, timeoutMs = 5000): Promise<boolean> {
  if (!isAlive(id)) return true;
  try {
    process.kill(id.pid, 'SIGKILL');
  } catch {
    return true;
  }
  const start = clock.monotonic();
  const until = start + timeoutMs;
  while (isAlive(id)) {
    const now = clock.monotonic();
    if (now > until) return false;
    // A killed holder is normally gone within a millisecond, and a migration's switchover waits
    // for this with the guest paused: 1 ms polls at first, 5 ms after that.
    await new Promise<void>((resolve) => clock.setTimeout(resolve, now - start < FAST_POLL_FOR_MS ? 1 : 5));
  }
  return true;
}

/**
 * A holder spawned ahead of its lock (a migration's destination, armed during the transfer): a
 * shell that waits for a line `go` on its stdin, then runs `flock -n` on the lease description
 * (fd 3) and, once locked, says `locked` and becomes the usual holder (`exec flock -s 4`, same
 * pid and start time). Two process spawns from a Node process (tens of ms under load, inside the
 * guest's pause) become one fork of a small shell. Before `go` it holds no lock; its stdin
 * closing (the shim gone, or disarmed) ends it.
 */
export interface ArmedHolder {
  readonly id: ProcessId;
  /** Tries the lock now: `locked` (the holder now holds it), `conflict`, or `failed` (it died: use the usual path). */
  go(): Promise<'locked' | 'conflict' | 'failed'>;
  /** Ends a holder that was never told `go` (it holds nothing); a no-op after `go`. */
  disarm(): void;
}

// $0 is flock's path, $1 its mode flag. `exit $?` passes flock's conflict status (-E) through.
const ARMED_SCRIPT = 'read -r go && [ "$go" = go ] || exit 1; "$0" -n -E 75 "$1" 3 || exit $?; echo locked; exec "$0" -s 4 </dev/null >/dev/null';

/** Spawns an armed holder for the (unlocked) lease description `leaseFd`, bound to `lifelineFd`. */
export function armHolder(flock: string, leaseFd: number, lifelineFd: number, mode: LeaseMode): ArmedHolder {
  const child = spawn('/bin/sh', ['-c', ARMED_SCRIPT, flock, mode === 'exclusive' ? '-x' : '-s'], {
    stdio: ['pipe', 'pipe', 'ignore', leaseFd, lifelineFd], detached: true,
  });
  child.once('error', () => undefined);
  const { stdin, stdout } = child;
  stdin?.on('error', () => undefined);
  const pid = child.pid;
  const start = pid === undefined ? undefined : processStart(pid);
  if (pid === undefined || start === undefined || stdin === null || stdout === null) {
    child.kill('SIGKILL');
    throw new VirtqError('LOCK_MANAGER_UNAVAILABLE', `cannot start an armed lease holder (/bin/sh, ${flock})`);
  }
  let told = false;
  // Nothing of it keeps the shim alive: a holder outlives its shim, an armed one ends with it.
  const letGo = (): void => {
    stdin.destroy();
    stdout.destroy();
    child.unref();
  };
  let out = '';
  stdout.setEncoding('utf8');
  const said = new Promise<'locked' | 'conflict' | 'failed'>((resolve) => {
    stdout.on('data', (s: string) => {
      out += s;
      if (out.includes('locked\n')) resolve('locked');
    });
    child.once('exit', (code) => resolve(code === FLOCK_CONFLICT_EXIT ? 'conflict' : 'failed'));
  });
  // Nor does an armed one waiting: a shim whose VM ended before any `go` exits, which ends it.
  child.unref();
  unrefStream(stdin);
  unrefStream(stdout);
  return {
    id: { pid, start },
    go: async () => {
      if (told) return 'failed';
      told = true;
      stdin.write('go\n');
      const r = await said;
      letGo();
      return r;
    },
    disarm: () => {
      if (told) return;
      told = true;
      child.kill('SIGKILL');
      letGo();
    },
  };
}

/** What a holder's `go` came to: `failed` means it died or could not lock for another reason (use flock(1)'s way). */
export type GoResult = 'locked' | 'conflict' | 'failed';

/**
 * A holder started ahead of its lock, told at most once to take it: an in-process one
 * (perl-holder.ts) or an armed flock(1) one (`armFlockHolder`). Once locked, either is a
 * flock(1) holder like `spawnHolder`'s: released by `stopHolder`.
 */
export interface PreparedHolder {
  readonly id: ProcessId;
  go(mode: LeaseMode, lockFile: string): Promise<GoResult>;
  /** Ends a holder never told `go` (it holds nothing); a no-op after `go`. */
  disarm(): void;
}

/**
 * An armed flock(1) holder as a PreparedHolder, for hosts without perl: it opens `lockFile`
 * now (its lock and mode are fixed here, `go`'s arguments are the same ones).
 */
export function armFlockHolder(flock: string, lockFile: string, lifelineFd: number, mode: LeaseMode): PreparedHolder {
  const leaseFd = openSync(lockFile, constants.O_RDWR | constants.O_CREAT, 0o644);
  try {
    const armed = armHolder(flock, leaseFd, lifelineFd, mode);
    return { id: armed.id, go: () => armed.go(), disarm: () => armed.disarm() };
  } finally {
    closeSync(leaseFd);
  }
}

/** A child's stdio pipe is a net.Socket, whose handle can be unref'd; the stream types do not say so. */
function unrefStream(s: object): void {
  if ('unref' in s && typeof s.unref === 'function') (s.unref as () => void).call(s);
}
