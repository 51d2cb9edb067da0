// QEMU spawned by a launcher a warm pool shim started while it idled (issue 15 target 1, session
// 15; docs/decisions/0026-warm-shim-pool.md). Spawning QEMU from the shim forks a ~50 MiB Node
// process (its page tables, then the child's own work until its execve, which uv_spawn waits for)
// and runs Node's spawn code for the first time, all on the start's path. A pool shim instead
// starts `/bin/sh` once, before its hand-off, reading commands from a pipe, with the spare lease
// lifeline as its fd 3; the start writes it one `exec` line, so QEMU *is* that process: the shim's
// child with the pid Node tracks, in its own session (detached), with the environment, working
// directory and umask a direct spawn gives, stdin /dev/null, stdout and stderr appended to the
// VM's QEMU log (created by the shim first, mode 0600, as a direct spawn does) and the lifeline's
// own open file description as fd 3 (checked by device and inode, since an fd number can be
// reused). Any other spawn (a restore's image as fd 4, no lifeline, another lifeline) is a plain
// spawn, and the launcher is killed. An idle launcher reads EOF and exits when its shim goes.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, fstatSync, openSync } from 'node:fs';
import { procState } from '../../drivers/host/proc.js';
import type { OomWatch } from './oom-watch.js';
import { qemuChild, type Spawner } from './qemu-process.js';

/** A pre-started launcher: serves one spawn whose only inherited fd is the lifeline it holds. */
export interface QemuLauncher {
  readonly pid: number | undefined;
  /** A spawner that hands the first spawn it can serve to the launcher and everything else to `plain`. */
  spawner(plain: Spawner, oom?: OomWatch): Spawner;
  /** Kills it unless it ran QEMU (a start that did not use it; a failed start's shim exits anyway). */
  discard(): void;
}

/** `s` as one single-quoted sh word (any byte but NUL, which no argv holds). */
export function shQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** The line the launcher runs: exec QEMU with its stdio as a direct spawn's; fd 3 (the lifeline) is inherited as it is. */
export function execLine(file: string, args: readonly string[], logFile: string): string {
  return `exec ${[file, ...args].map(shQuote).join(' ')} 0</dev/null 1>>${shQuote(logFile)} 2>&1\n`;
}

/**
 * Starts the launcher with `lifelineFd` as its fd 3 and QEMU's environment. Undefined when it
 * cannot (no shell): starts then spawn QEMU directly, as a cold shim does.
 */
export function startQemuLauncher(lifelineFd: number, env: NodeJS.ProcessEnv, shell = '/bin/sh'): QemuLauncher | undefined {
  let child: ChildProcess;
  let lifeline: { dev: number; ino: number };
  try {
    const st = fstatSync(lifelineFd);
    lifeline = { dev: st.dev, ino: st.ino };
    child = spawn(shell, [], { detached: true, stdio: ['pipe', 'ignore', 'ignore', lifelineFd], env });
  } catch {
    return undefined;
  }
  const pid = child.pid;
  if (pid === undefined) return undefined;
  child.stdin?.on('error', () => undefined);
  child.on('error', () => undefined);
  // Idle, it keeps nothing alive: a shim that exits before its start (a bad definition) just goes.
  child.unref();
  (child.stdin as unknown as { unref?: () => void } | null)?.unref?.();
  let state: 'idle' | 'used' | 'gone' = 'idle';
  child.once('exit', () => { if (state === 'idle') state = 'gone'; });
  const serves = (inheritFds: readonly number[]): boolean => {
    if (state !== 'idle' || inheritFds.length !== 1 || inheritFds[0] !== lifelineFd) return false;
    const s = procState(pid);
    if (s === undefined || s === 'Z' || s === 'X') return false;
    try {
      const st = fstatSync(lifelineFd);
      return st.dev === lifeline.dev && st.ino === lifeline.ino;
    } catch {
      return false;
    }
  };
  const discard = (): void => {
    if (state !== 'idle') return;
    state = 'gone';
    child.stdin?.destroy();
    try { child.kill('SIGKILL'); } catch { /* gone */ }
  };
  return {
    pid,
    discard,
    spawner: (plain, oom) => ({
      spawn(file, args, opts) {
        if (!serves(opts.inheritFds ?? [])) {
          discard();
          return plain.spawn(file, args, opts);
        }
        // Created (or its errors thrown) here, with the mode a direct spawn gives it; sh only appends.
        closeSync(openSync(opts.logFile, 'a', 0o600));
        state = 'used';
        child.ref();
        child.stdin?.end(execLine(file, args, opts.logFile));
        return qemuChild(child, oom);
      },
    }),
  };
}
