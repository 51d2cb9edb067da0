// Runs a QEMU binary once with no machine and QMP on stdio, pipelines the capability queries and
// `quit`, and collects the replies by id. Knows nothing of caching; capabilities.ts owns that.
import type { Readable, Writable } from 'node:stream';
import type { Clock } from '../../../protocol/clock.js';
import { VirtqError } from '../../../protocol/errors.js';
import { spawnBound, type BoundExit } from '../../host/dies-with-starter.js';

/** How a probe process ended (`error`: it could not be started at all, e.g. ENOENT). */
export type ProbeExit = BoundExit;

/** The running probe process, as the probe needs it: stdio pipes, its end, a way to stop it. */
export interface ProbeProcess {
  readonly stdin: Writable;
  readonly stdout: Readable;
  readonly stderr: Readable;
  readonly exited: Promise<ProbeExit>;
  kill(): void;
}

/** Starts `binary` with `args` and pipes on all three stdio streams; `exited` settles after stdout ends. */
export type ProbeSpawn = (binary: string, args: readonly string[]) => ProbeProcess;

/** The QMP commands the probe runs, in order; replies are keyed by these names. */
export const PROBE_COMMANDS = ['query-version', 'query-machines', 'query-commands', 'query-command-line-options', 'query-kvm'] as const;

/** One probe command's name. */
export type ProbeCommand = (typeof PROBE_COMMANDS)[number];

/** The probe's command line: paused, nothing emulated, QMP on stdio; KVM tried first when asked. */
export function probeArgs(tryKvm: boolean): string[] {
  const accel = tryKvm ? ['-accel', 'kvm', '-accel', 'tcg'] : ['-accel', 'tcg'];
  return ['-S', '-nodefaults', '-no-user-config', '-display', 'none', '-machine', 'none', ...accel, '-qmp', 'stdio'];
}

/**
 * The real spawn: pipes on all three streams, bound to die with its starter
 * (drivers/host/dies-with-starter.ts). A starter killed before it sent `quit` (a shim killed while
 * it starts a VM) left QEMU waiting on a closed stdin for good: QMP on stdio does not end QEMU at
 * its end of file (chaos).
 */
export const spawnProbe: ProbeSpawn = (binary, args) => {
  const { child, ended } = spawnBound(binary, args, 'pipe');
  return { stdin: child.stdin, stdout: child.stdout, stderr: child.stderr, exited: ended, kill: () => child.kill('SIGKILL') };
};

/**
 * Runs the probe and returns each command's `return` value. Throws TIMEOUT when QEMU does not
 * finish within `timeoutMs`, OPERATION_FAILED when it cannot start, exits early or answers an error.
 */
export async function runProbe(binary: string, spawn: ProbeSpawn, clock: Clock, tryKvm: boolean, timeoutMs: number): Promise<Map<ProbeCommand, unknown>> {
  const proc = spawn(binary, probeArgs(tryKvm));
  const replies = new Map<ProbeCommand, unknown>();
  const errors: string[] = [];
  let stderr = '';
  proc.stderr.setEncoding('utf8');
  proc.stderr.on('data', (s: string) => { stderr = (stderr + s).slice(-2000); });
  proc.stdin.on('error', () => { /* QEMU gone: reported through `exited` */ });
  readLines(proc.stdout, (line) => collect(line, replies, errors));
  for (const command of ['qmp_capabilities', ...PROBE_COMMANDS, 'quit']) {
    proc.stdin.write(`${JSON.stringify({ execute: command, id: command })}\n`);
  }
  const timeout = new Promise<'timeout'>((resolve) => {
    const timer = clock.setTimeout(() => resolve('timeout'), timeoutMs);
    void proc.exited.finally(() => timer.dispose());
  });
  const ended = await Promise.race([proc.exited, timeout]);
  if (ended === 'timeout') {
    proc.kill();
    throw new VirtqError('TIMEOUT', `probing ${binary}: no answer within ${timeoutMs} ms`, { details: { binary } });
  }
  if (ended.error !== undefined) {
    throw new VirtqError('OPERATION_FAILED', `probing ${binary}: cannot start it: ${ended.error.message}`, { details: { binary }, cause: ended.error });
  }
  const missing = PROBE_COMMANDS.filter((c) => !replies.has(c));
  if (errors.length > 0 || missing.length > 0) {
    const why = errors.length > 0 ? errors.join('; ') : `no reply to ${missing.join(', ')} (exit ${String(ended.code ?? ended.signal)})`;
    throw new VirtqError('OPERATION_FAILED', `probing ${binary}: ${why}${stderr === '' ? '' : `: ${stderr.trim()}`}`, { details: { binary } });
  }
  return replies;
}

function collect(line: string, replies: Map<ProbeCommand, unknown>, errors: string[]): void {
  let msg: unknown;
  try {
    msg = JSON.parse(line);
  } catch {
    errors.push(`unparsable QMP line ${JSON.stringify(line.slice(0, 200))}`);
    return;
  }
  if (typeof msg !== 'object' || msg === null) return;
  const m = msg as { id?: unknown; return?: unknown; error?: { class?: unknown; desc?: unknown } };
  const id = PROBE_COMMANDS.find((c) => c === m.id);
  if (id === undefined) return; // greeting, events, qmp_capabilities and quit
  if (m.error !== undefined) errors.push(`${id}: ${String(m.error.class)}: ${String(m.error.desc)}`);
  else replies.set(id, m.return);
}

function readLines(stream: Readable, onLine: (line: string) => void): void {
  let buf = '';
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => {
    buf += chunk;
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl).trim();
      buf = buf.slice(nl + 1);
      if (line !== '') onLine(line);
    }
  });
}
