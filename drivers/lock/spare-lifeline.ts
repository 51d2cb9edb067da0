// A lease lifeline locked ahead of its VM (issue 15, docs/decisions/0026-warm-shim-pool.md): a
// warm pool shim locks one while it waits for its definition, so the start after the hand-off
// spawns QEMU without waiting for a flock(1) child for the lifeline (the one child a disk-less
// VM's start had, about a tenth of virtq's side of a warm start).
//
// What it is, and why this is safe: a file created in the lifeline directory and unlinked at
// once (the two calls back to back, so nothing is left behind even by a SIGKILL of an idle pool
// shim), then locked exclusively on the shim's own description, exactly as a start's own
// lifeline is (lockfile-manager.ts makes its lifelines the same way). Nobody else can name or
// lock it; it leases nothing; a pool shim that is killed takes the lock with it. QEMU inherits it
// as fd 3 and `readlink /proc/QEMU/fd/3` ends in `.lifeline (deleted)` either way, so a VM of a
// warm shim and one of a cold shim are indistinguishable. With perl, an idle in-process lease
// holder comes with it (issue 15: a warm start then forks no flock(1) at all, nor anything else,
// for its first disk); the holder holds nothing before the start tells it `go`.
import { spawnSync } from 'node:child_process';
import { accessSync, closeSync, constants, fstatSync, mkdirSync, openSync, readlinkSync, statSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { VirtqError } from '../../protocol/errors.js';
import { tempSuffix } from '../../protocol/node-crypto.js';
import { FLOCK_CONFLICT_EXIT, type PreparedHolder } from './flock.js';
import { DEFAULT_PERL, startHolder } from './perl-holder.js';
import type { SpareLifeline } from './types.js';

/**
 * Creates, unlinks and locks a lifeline file in `dir`, synchronously (a pool shim does it before it
 * blocks reading its definition). Undefined when any step fails: the start then makes its own.
 */
export function lockSpareLifeline(flock: string, dir: string, perl: string | undefined = DEFAULT_PERL): SpareLifeline | undefined {
  let fd: number | undefined;
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const file = lifelineFile(dir, process.pid);
    fd = openSync(file, constants.O_RDWR | constants.O_CREAT | constants.O_EXCL, 0o600);
    unlinkSync(file);
    const r = spawnSync(flock, ['-n', '-E', String(FLOCK_CONFLICT_EXIT), '-x', '3'], { stdio: ['ignore', 'ignore', 'ignore', fd] });
    if (r.status !== 0) throw new Error(`flock exited with ${String(r.status)}`);
  } catch {
    if (fd !== undefined) closeSync(fd);
    return undefined;
  }
  const idle = perl === undefined ? undefined : idleHolder(perl, flock, fd);
  return spare(fd, idle === undefined ? undefined : { h: idle, perl, flock });
}

/**
 * An in-process lease holder (perl-holder.ts) started idle on its own description of the spare
 * lifeline, so that the start's first disk spawns nothing either. It holds nothing until told
 * `go`; the pool shim's death (its stdin's EOF) or `discard` ends it. Undefined without perl.
 */
function idleHolder(perl: string, flock: string, lifelineFd: number): PreparedHolder | undefined {
  try {
    accessSync(perl, constants.X_OK);
    const own = openSync(`/proc/self/fd/${lifelineFd}`, constants.O_RDONLY);
    try {
      return startHolder(perl, flock, own);
    } finally {
      closeSync(own);
    }
  } catch {
    return undefined; // the start spawns its holders itself
  }
}

/**
 * The idle holder a spare lifeline came with (lockSpareLifeline), taken at most once: for the lockfile
 * manager, and only if it runs the `perl` and `flock` that manager is configured with; otherwise it
 * is ended, and the start spawns the configured ones as a cold shim does.
 */
export function takeSpareHolder(s: SpareLifeline | undefined, perl: string | undefined, flock: string): PreparedHolder | undefined {
  type Taker = (perl: string | undefined, flock: string) => PreparedHolder | undefined;
  return s !== undefined && 'takeHolder' in s && typeof s.takeHolder === 'function' ? (s.takeHolder as Taker)(perl, flock) : undefined;
}

/** A fresh lifeline's name: unique, and ending in `.lifeline` (what a hot-plug checks QEMU's fd 3 for). */
export function lifelineFile(dir: string, shimPid: number): string {
  return join(dir, `${shimPid}.${tempSuffix()}.lifeline`);
}

/** The fd QEMU inherits the lifeline as (the first of StartLeases.inheritFds). */
const QEMU_LIFELINE_FD = 3;
const LIFELINE_SUFFIX = /\.lifeline( \(deleted\))?$/;

/** QEMU's lifeline as a holder opens it; LOCK_MANAGER_UNAVAILABLE when QEMU has none. */
export function runningLifeline(qemuPid: number): string {
  const lifeline = `/proc/${qemuPid}/fd/${QEMU_LIFELINE_FD}`;
  let target = '';
  try {
    target = readlinkSync(lifeline);
  } catch {
    // handled below
  }
  if (!LIFELINE_SUFFIX.test(target)) {
    throw new VirtqError('LOCK_MANAGER_UNAVAILABLE', `QEMU pid ${qemuPid} holds no lease lifeline (it was started without the lockfile plugin?); restart the VM to hot-plug disks with leases`);
  }
  return lifeline;
}

type IdleHolder = { h: PreparedHolder; perl: string; flock: string };

function spare(fd: number, idle: IdleHolder | undefined): SpareLifeline & { takeHolder(perl: string | undefined, flock: string): PreparedHolder | undefined } {
  let held: number | undefined = fd;
  let holder = idle;
  return {
    takeHolder(perl, flock) {
      const k = holder;
      holder = undefined;
      if (k === undefined || (k.perl === perl && k.flock === flock)) return k?.h;
      k.h.disarm();
      return undefined;
    },
    take() {
      const f = held;
      held = undefined;
      return f;
    },
    held: () => held,
    discard() {
      if (held !== undefined) closeSync(held);
      held = undefined;
      holder?.h.disarm();
      holder = undefined;
    },
  };
}

/**
 * A warm shim's idle holder kept past a start that leased nothing, for the arming of the same
 * QEMU's disks (a migration's destination, issue 16): the arming then spawns no process while
 * memory moves. Handed only to an arming whose lifeline is the same file (QEMU's fd 3 is the
 * spare lifeline it inherited); let go otherwise, or once QEMU exited. It holds nothing until `go`.
 */
export class KeptHolder {
  private holder: { h: PreparedHolder; dev: number; ino: number } | undefined;

  keep(h: PreparedHolder, lifelineFd: number): void {
    this.drop();
    const st = fstatSync(lifelineFd);
    this.holder = { h, dev: st.dev, ino: st.ino };
  }

  /** The kept holder if it waits on the lifeline at `lifelinePath` (e.g. /proc/PID/fd/3); undefined otherwise (and let go). */
  take(lifelinePath: string): PreparedHolder | undefined {
    const k = this.holder;
    this.holder = undefined;
    if (k === undefined) return undefined;
    try {
      const st = statSync(lifelinePath);
      if (st.dev === k.dev && st.ino === k.ino) return k.h;
    } catch {
      // no such lifeline: not this holder's
    }
    k.h.disarm();
    return undefined;
  }

  drop(): void {
    this.holder?.h.disarm();
    this.holder = undefined;
  }
}
