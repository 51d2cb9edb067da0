// The shim's bootstrap contract, as containerd's shim v2 has one: how a shim is started (its
// definition on stdin, detached, in a session of its own) and the one JSON line it prints on
// stdout once its VM runs, or why it does not (main-shell.ts's failedLine, as every daemon). virtqemud
// and embed mode both start shims through `spawnShim`; the shim builds its line with `readyLine`.
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { Type, type Static } from '@sinclair/typebox';
import { DomainState, VirtqError, lazyValidator, type Clock } from '../protocol/index.js';

/** The ready line of a shim whose VM is up. */
export const ShimReady = Type.Object({
  ok: Type.Literal(true),
  name: Type.String(),
  uuid: Type.String(),
  state: DomainState,
  /** The shim's read-write socket. */
  socket: Type.String(),
  shimPid: Type.Integer(),
  qemuPid: Type.Optional(Type.Integer()),
  /** A shim started for an incoming migration: where its QEMU listens for the stream. */
  incomingUri: Type.Optional(Type.String()),
});
export type ShimReady = Static<typeof ShimReady>;

const ShimFailed = Type.Object({ ok: Type.Literal(false), error: Type.Unknown() });
const readyValidator = lazyValidator(Type.Union([ShimReady, ShimFailed]));

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

/**
 * Starts a shim detached (its own session, no pipes kept once it has reported, so it and its VM
 * outlive the caller) and resolves with its ready line. A shim that reports a failure rejects
 * with its error; one that exits first rejects with OPERATION_FAILED and `details.shimExited`.
 */
export function spawnShim(launch: ShimLaunch): Promise<ShimReady> {
  const child = spawn(launch.command, [...launch.args], { detached: true, stdio: ['pipe', 'pipe', launch.stderr], ...(launch.env === undefined ? {} : { env: launch.env }) });
  const { stdin, stdout } = child;
  if (stdin === null || stdout === null) return Promise.reject(new VirtqError('INTERNAL', 'shim spawned without pipes'));
  return new Promise<ShimReady>((resolve, reject) => {
    const lines = createInterface({ input: stdout });
    let settled = false;
    const finish = (result: VirtqError | ShimReady): void => {
      if (settled) return;
      settled = true;
      timer.dispose();
      lines.close();
      stdout.destroy();
      child.unref();
      if (result instanceof VirtqError) reject(result); else resolve(result);
    };
    const timer = launch.clock.setTimeout(() => finish(new VirtqError('TIMEOUT', `the shim for "${launch.name}" did not report within ${launch.timeoutMs / 1000} s; ${launch.logHint}`)), launch.timeoutMs);
    lines.once('line', (line) => finish(parseReadyLine(line, launch.name)));
    child.once('error', (err) => finish(new VirtqError('OPERATION_FAILED', `cannot run ${launch.command}: ${err.message}`, { cause: err })));
    // 'close', not 'exit': the ready line may still be in the pipe when the process has exited.
    child.once('close', (code, signal) => finish(new VirtqError('OPERATION_FAILED',
      `the shim for "${launch.name}" exited with ${signal === null ? `status ${String(code)}` : signal} before reporting; ${launch.logHint}`, { details: { shimExited: true } })));
    stdin.on('error', () => undefined);
    stdin.end(launch.definition);
  });
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
