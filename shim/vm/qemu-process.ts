// The QEMU process as the shim sees it: a child it spawned (exit status known) or a process it
// re-attached to (not its child: exit is detected from /proc, where a reaped or zombie process
// shows, never from kill(pid, 0), which a not-yet-reaped orphan still answers).
import { spawn as spawnChild, type ChildProcess } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { procState } from '../../drivers/host/proc.js';
import type { Clock } from '../../protocol/clock.js';
import type { OomWatch } from './oom-watch.js';

export { procState, isLiveQemu } from '../../drivers/host/proc.js';

/** How the QEMU process ended. */
export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** False when the process was not our child, so its status is unknown. */
  known: boolean;
  /** Set for a SIGKILL the kernel's OOM killer sent (shim/vm/oom-watch.ts says how it knows). */
  oom?: { counter: string; own: boolean };
}

/** A running QEMU process. */
export interface QemuProcess {
  readonly pid: number;
  readonly exited: Promise<ExitInfo>;
  readonly isChild: boolean;
  kill(signal: NodeJS.Signals): void;
  /** Tells an attached watcher to look now (the monitor closed). */
  poke(): void;
}

/**
 * Variables the shim's shebang sets for the shim's own Node process (scripts/build.mjs), which
 * QEMU must not inherit: `MALLOC_ARENA_MAX=2` trims the shim's glibc heap (~0.8 MiB PSS per
 * shim) but would also cap QEMU's I/O threads, whose malloc behaviour was never measured with it.
 */
const SHIM_ONLY_ENV = ['MALLOC_ARENA_MAX'] as const;

/** The environment QEMU runs with: the shim's, less what only the shim's Node process is tuned by. */
export function qemuEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const out = { ...env };
  for (const k of SHIM_ONLY_ENV) delete out[k];
  return out;
}

/** Starts processes; injected so tests and benchmarks can count or replace spawns. */
export interface Spawner {
  /** `inheritFds` become the child's fds 3, 4, ... in order (disk lease lifelines, see drivers/lock, then a restore's image). */
  spawn(file: string, args: readonly string[], opts: { logFile: string; inheritFds?: readonly number[] }): QemuProcess;
}

/**
 * The real spawner: QEMU in its own process group, stdout and stderr appended to the log file;
 * with `oom`, in a memory cgroup of its own so an OOM kill is told apart from another SIGKILL.
 */
export function childSpawner(oom?: OomWatch, env?: NodeJS.ProcessEnv): Spawner {
  return {
    spawn(file, args, { logFile, inheritFds = [] }) {
      const fd = openSync(logFile, 'a', 0o600);
      try {
        return qemuChild(spawnChild(file, args, { detached: true, stdio: ['ignore', fd, fd, ...inheritFds], ...(env === undefined ? {} : { env }) }), oom);
      } finally {
        closeSync(fd);
      }
    },
  };
}

/** QEMU as the shim's child process `child` (spawned directly, or a launcher that has been told to exec it: same pid). */
export function qemuChild(child: ChildProcess, oom?: OomWatch): QemuProcess {
  let done = false;
  const armed = child.pid === undefined ? undefined : oom?.(child.pid);
  const exited = new Promise<ExitInfo>((resolve) => {
    child.once('exit', (code, signal) => {
      const oomKilled = signal === 'SIGKILL' && armed?.killed() === true;
      armed?.dispose();
      resolve({ code, signal, known: true, ...(oomKilled && armed !== undefined ? { oom: armed.evidence } : {}) });
    });
    child.once('error', () => resolve({ code: 127, signal: null, known: true }));
  });
  void exited.then(() => { done = true; });
  if (child.pid === undefined) {
    return { pid: 0, exited, isChild: true, kill: () => undefined, poke: () => undefined };
  }
  const pid = child.pid;
  // Once reaped, the pid may be reused: never signal it again.
  return { pid, exited, isChild: true, kill: (sig) => { if (!done) try { process.kill(pid, sig); } catch { /* gone */ } }, poke: () => undefined };
}

/** Watches a QEMU process that is not our child. */
export function attachedProcess(pid: number, clock: Clock, pollMs = 1000): QemuProcess {
  let settle!: (e: ExitInfo) => void;
  const exited = new Promise<ExitInfo>((resolve) => { settle = resolve; });
  let done = false;
  const look = (): void => {
    if (done) return;
    const s = procState(pid);
    if (s === undefined || s === 'Z' || s === 'X') {
      done = true;
      settle({ code: null, signal: null, known: false });
    }
  };
  const check = (): void => {
    look();
    if (!done) clock.setTimeout(check, pollMs);
  };
  clock.setTimeout(check, pollMs);
  return {
    pid,
    exited,
    isChild: false,
    kill: (sig) => { if (!done) try { process.kill(pid, sig); } catch { /* gone */ } },
    poke: () => {
      // After the monitor closes QEMU is normally exiting: look a few times quickly.
      for (const ms of [0, 20, 100, 300]) clock.setTimeout(look, ms);
    },
  };
}
