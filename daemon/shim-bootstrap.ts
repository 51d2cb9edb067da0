// The shim's bootstrap contract, as containerd's shim v2 has one: how a shim is started (its
// definition on stdin, detached, in a session of its own) and the one JSON line it prints on
// stdout once its VM runs, or why it does not (main-shell.ts's failedLine, as every daemon). virtqemud
// and embed mode both start shims through `spawnShim`; the shim builds its line with `readyLine`.
import { spawn } from 'node:child_process';
import type { Socket } from 'node:net';
import { createInterface } from 'node:readline';
import { Type, type Static } from '@sinclair/typebox';
import { DomainState, VirtqError, lazyValidator, type Clock } from '../protocol/index.js';

/** The ready line of a shim whose VM is up. */
export const ShimReady = Type.Object({
  ok: Type.Literal(true),
  name: Type.String(),
  uuid: Type.String(),
  state: DomainState,
  /** Why the VM is in that state, as getState says (embed mode's create answers with it, no second call). */
  reason: Type.Optional(Type.String()),
  /** The shim's read-write socket. */
  socket: Type.String(),
  shimPid: Type.Integer(),
  qemuPid: Type.Optional(Type.Integer()),
  /** A shim started for an incoming migration: where its QEMU listens for the stream. */
  incomingUri: Type.Optional(Type.String()),
  /**
   * A start on stdin (--start-request) of a registered shim: the state updates it sent virtqemud
   * before this line, without waiting for their replies. virtqemud replies to the start once its
   * listing has that many from this shim (aggregator/listed-wait.ts). Absent: the shim waited.
   */
  reports: Type.Optional(Type.Integer({ minimum: 0 })),
});
export type ShimReady = Static<typeof ShimReady>;

const ShimFailed = Type.Object({ ok: Type.Literal(false), error: Type.Unknown() });
const readyValidator = lazyValidator(Type.Union([ShimReady, ShimFailed]), 'shim-ready');

/** The line a shim prints once its VM is up. */
export function readyLine(ready: Omit<ShimReady, 'ok'>): string {
  const line: ShimReady = { ok: true, ...ready };
  return JSON.stringify(line);
}

/** How to start one shim. */
export interface ShimLaunch {
  command: string;
  args: readonly string[];
  /** The VM definition, written to the shim's stdin. */
  definition: string;
  /** The VM's name, for messages. */
  name: string;
  /** A file descriptor for the shim's stderr, or 'ignore'. */
  stderr: number | 'ignore';
  env?: NodeJS.ProcessEnv;
  clock: Clock;
  timeoutMs: number;
  /** Where a person should look when the shim fails, e.g. "see log/web1.log". */
  logHint: string;
}

/** How to run a shim process before its definition is known (a warm shim waits for it on stdin). */
export type ShimProcess = Pick<ShimLaunch, 'command' | 'args' | 'stderr' | 'env'>;

/** What the caller waits with once it hands a shim its definition. */
export type ShimWait = Pick<ShimLaunch, 'name' | 'clock' | 'timeoutMs' | 'logHint'>;

/** A started shim process that has not been given its definition yet. */
export interface WaitingShim {
  readonly pid: number | undefined;
  /** False once it was handed a definition, discarded, or exited on its own. */
  readonly idle: boolean;
  /** Writes `definition` to its stdin and resolves with its ready line (as spawnShim). */
  hand(definition: string, wait: ShimWait): Promise<ShimReady>;
  /** Kills an idle shim (it holds nothing yet: no VM, no socket, no log file of a VM). */
  discard(): void;
}

/**
 * Starts a shim detached (its own session, no pipes kept once it has reported, so it and its VM
 * outlive the caller) and resolves with its ready line. A shim that reports a failure rejects
 * with its error; one that exits first rejects with OPERATION_FAILED and `details.shimExited`.
 */
export function spawnShim(launch: ShimLaunch): Promise<ShimReady> {
  return startWaitingShim(launch).hand(launch.definition, launch);
}

/**
 * Starts a shim that loads its code and then blocks reading its definition from stdin: the one
 * bootstrap spawnShim uses, split so a warm pool can start it ahead (docs/decisions/0026). What
 * it prints or how it exits before `hand` is kept and reported by `hand`.
 */
export function startWaitingShim(p: ShimProcess): WaitingShim {
  const child = spawn(p.command, [...p.args], { detached: true, stdio: ['pipe', 'pipe', p.stderr], ...(p.env === undefined ? {} : { env: p.env }) });
  const { stdin, stdout } = child;
  // An idle shim does not keep its starter's process alive (an embedding application that exits
  // leaves it to read EOF and exit); a hand-off does, until the shim has answered.
  const pipes = [stdin, stdout] as unknown as Array<Socket | null>;
  const hold = (on: boolean): void => {
    if (on) child.ref(); else child.unref();
    for (const s of pipes) if (on) s?.ref(); else s?.unref();
  };
  hold(false);
  let state: 'idle' | 'handed' | 'gone' = 'idle';
  type Outcome = { line: string } | { error: Error } | { exit: string };
  let early: Outcome | undefined;
  let deliver: (o: Outcome) => void = (o) => { early ??= o; if (state === 'idle') state = 'gone'; };
  const lines = stdout === null ? undefined : createInterface({ input: stdout });
  lines?.once('line', (line) => deliver({ line }));
  child.once('error', (error) => deliver({ error }));
  // 'close', not 'exit': the ready line may still be in the pipe when the process has exited.
  child.once('close', (code, signal) => deliver({ exit: signal === null ? `status ${String(code)}` : signal }));
  stdin?.on('error', () => undefined);
  return {
    pid: child.pid,
    get idle() { return state === 'idle'; },
    discard() {
      if (state !== 'idle') return;
      state = 'gone';
      child.kill('SIGKILL');
      lines?.close();
      child.unref();
    },
    hand(definition, wait) {
      if (stdin === null || stdout === null || lines === undefined) return Promise.reject(new VirtqError('INTERNAL', 'shim spawned without pipes'));
      state = 'handed';
      hold(true);
      return new Promise<ShimReady>((resolve, reject) => {
        let settled = false;
        const finish = (o: Outcome): void => {
          if (settled) return;
          settled = true;
          timer.dispose();
          lines.close();
          stdout.destroy();
          child.unref();
          let result: VirtqError | ShimReady;
          if ('line' in o) result = parseReadyLine(o.line, wait.name);
          else if ('error' in o) result = o.error instanceof VirtqError ? o.error : new VirtqError('OPERATION_FAILED', `cannot run ${p.command}: ${o.error.message}`, { cause: o.error });
          else result = new VirtqError('OPERATION_FAILED', `the shim for "${wait.name}" exited with ${o.exit} before reporting; ${wait.logHint}`, { details: { shimExited: true } });
          if (result instanceof VirtqError) reject(result); else resolve(result);
        };
        const timer = wait.clock.setTimeout(() => finish({ error: new VirtqError('TIMEOUT', `the shim for "${wait.name}" did not report within ${wait.timeoutMs / 1000} s; ${wait.logHint}`) }), wait.timeoutMs);
        deliver = finish;
        if (early !== undefined) finish(early);
        else stdin.end(definition);
      });
    },
  };
}

/** How to run a shim for a one-off task (`--reap`): it prints one line and exits. */
export interface ShimTask {
  command: string;
  args: readonly string[];
  what: string;
  clock: Clock;
  timeoutMs: number;
  env?: NodeJS.ProcessEnv;
}

/** Runs a shim task and resolves with its `{ok: true, ...}` line; rejects with its error. */
export function runShimTask(task: ShimTask): Promise<Record<string, unknown>> {
  const child = spawn(task.command, [...task.args], { stdio: ['ignore', 'pipe', 'pipe'], ...(task.env === undefined ? {} : { env: task.env }) });
  return new Promise((resolve, reject) => {
    let out = '';
    // The tail of stderr: why a task that printed no line failed (a crash, a kill).
    let err = '';
    const timer = task.clock.setTimeout(() => { child.kill('SIGKILL'); reject(new VirtqError('TIMEOUT', `${task.what}: the shim did not finish within ${task.timeoutMs / 1000} s`)); }, task.timeoutMs);
    child.stdout?.on('data', (d: Buffer) => { out += d.toString(); });
    child.stderr?.on('data', (d: Buffer) => { err = (err + d.toString()).slice(-1000); });
    child.once('error', (e) => { timer.dispose(); reject(new VirtqError('OPERATION_FAILED', `${task.what}: cannot run ${task.command}: ${e.message}`, { cause: e })); });
    child.once('close', (code, signal) => {
      timer.dispose();
      let value: unknown;
      try { value = JSON.parse(out.split('\n')[0] ?? ''); } catch { value = undefined; }
      const v = value as { ok?: unknown; error?: unknown } | undefined;
      if (v?.ok === true) resolve(v as Record<string, unknown>);
      else if (v?.ok === false) reject(VirtqError.fromWire(v.error));
      else reject(new VirtqError('INTERNAL', `${task.what}: the shim ${signal === null ? `exited with ${String(code)}` : `was killed by ${signal}`} and printed ${JSON.stringify(out.slice(0, 200))}${err === '' ? '' : `; its stderr ends: ${err.trim()}`}`));
    });
  });
}

/** The shim's ready line as a result, or its failure (or an unreadable line) as an error. */
export function parseReadyLine(line: string, name: string): ShimReady | VirtqError {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return new VirtqError('INTERNAL', `the shim for "${name}" printed an unreadable reply: ${line.slice(0, 200)}`);
  }
  if (!readyValidator.check(value)) return new VirtqError('INTERNAL', `the shim for "${name}" printed a reply that is not its ready line: ${line.slice(0, 200)}`);
  return value.ok ? value : VirtqError.fromWire(value.error);
}
