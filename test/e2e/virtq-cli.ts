// Runs the built CLI (dist/bin/virtq.js) as a user would: a program with arguments, stdin,
// a working directory and an environment, capturing stdout, stderr and the exit status. Also
// checks --json output against its documented schema.
import { spawn, type ChildProcess } from 'node:child_process';
import { dirname } from 'node:path';
import { expect } from 'vitest';
import type { TSchema } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import { connectAdmin } from '../../client/index.js';

/** The built CLI. */
export const VIRTQ_BIN = new URL('../../dist/bin/virtq.js', import.meta.url).pathname;

/** What one run printed and how it exited. */
export interface VirtqResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Options of one run. */
export interface VirtqRunOptions {
  input?: string;
  cwd?: string;
  env?: Record<string, string>;
  timeoutMs?: number;
}

/** A CLI process still running. */
export interface RunningVirtq {
  proc: ChildProcess;
  /** Everything printed on stdout so far. */
  stdout(): string;
  /** Resolves once stdout holds `count` lines. */
  lines(count: number): Promise<string[]>;
  result: Promise<VirtqResult>;
}

/** Starts `virtq ARGS` (VIRTQ_DEFAULT_URI cleared unless given). */
export function startVirtq(args: string[], opts: VirtqRunOptions = {}): RunningVirtq {
  const env: NodeJS.ProcessEnv = { ...process.env, ...opts.env };
  if (opts.env?.['VIRTQ_DEFAULT_URI'] === undefined) delete env['VIRTQ_DEFAULT_URI'];
  // Run as a program, as a user does: its launcher starts the CLI's snapshot (decision 0028);
  // the node running the tests first on PATH, the binary the snapshot was built by.
  env['PATH'] = `${dirname(process.execPath)}:${env['PATH'] ?? ''}`;
  const proc = spawn(VIRTQ_BIN, args, { cwd: opts.cwd, env, stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  const waiters: Array<() => void> = [];
  proc.stdout?.on('data', (d: Buffer) => { stdout += d.toString(); for (const w of waiters.splice(0)) w(); });
  proc.stderr?.on('data', (d: Buffer) => { stderr += d.toString(); });
  const timeoutMs = opts.timeoutMs ?? 90_000;
  const result = new Promise<VirtqResult>((resolve, reject) => {
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`virtq ${args.join(' ')} did not finish within ${timeoutMs} ms; stdout: ${stdout} stderr: ${stderr}`));
    }, timeoutMs);
    proc.once('exit', (code) => { clearTimeout(timer); resolve({ code, stdout, stderr }); });
  });
  proc.stdin?.on('error', () => undefined);
  if (opts.input !== undefined) proc.stdin?.end(opts.input);
  const split = (): string[] => stdout.split('\n').filter((l) => l !== '');
  return {
    proc, result, stdout: () => stdout,
    lines: (count) => new Promise((resolve, reject) => {
      const check = (): void => {
        if (split().length >= count) resolve(split());
        else if (proc.exitCode !== null) reject(new Error(`virtq exited with ${split().length} of ${count} lines: ${stdout} ${stderr}`));
        else waiters.push(check);
      };
      void result.then(check, reject);
      check();
    }),
  };
}

/** Runs `virtq ARGS` to completion (stdin closed at once unless `input` is given). */
export function virtq(args: string[], opts: VirtqRunOptions = {}): Promise<VirtqResult> {
  return startVirtq(args, { input: '', ...opts }).result;
}

/** Runs `virtq ARGS`, expects status 0, and returns stdout. */
export async function virtqOk(args: string[], opts: VirtqRunOptions = {}): Promise<string> {
  const r = await virtq(args, opts);
  expect(r, `virtq ${args.join(' ')}`).toMatchObject({ code: 0, stderr: '' });
  return r.stdout;
}

/** Runs `virtq ARGS --json`, expects status 0 and output matching `schema`, and returns it parsed. */
export async function virtqJson<T = unknown>(args: string[], schema: TSchema, opts: VirtqRunOptions = {}): Promise<T> {
  const value = JSON.parse(await virtqOk([...args, '--json'], opts)) as unknown;
  expectSchema(value, schema);
  return value as T;
}

/** Expects `value` to match `schema`, naming the first mismatch. */
export function expectSchema(value: unknown, schema: TSchema): void {
  const check = TypeCompiler.Compile(schema);
  const first = check.Errors(value).First();
  expect(first === undefined ? 'ok' : `${first.path}: ${first.message}`, JSON.stringify(value)).toBe('ok');
}

/** Expects a failed operation: status 1 and exactly one `virtq: CODE: ...` line on stderr. */
export function expectFailure(r: VirtqResult, code: string, message?: RegExp): void {
  expect(r.code, r.stderr).toBe(1);
  expect(r.stdout).toBe('');
  const lines = r.stderr.split('\n').filter((l) => l !== '');
  expect(lines, r.stderr).toHaveLength(1);
  expect(lines[0]).toMatch(new RegExp(`^virtq: ${code}: `));
  if (message !== undefined) expect(lines[0]).toMatch(message);
}

/** The ids of the clients connected to the daemon or shim whose admin socket is `adminSocket`. */
export async function clientIds(adminSocket: string): Promise<Set<number>> {
  const adm = await connectAdmin(`qemu+shim://${adminSocket}`);
  try {
    return new Set((await adm.admin.listClients({})).clients.map((c) => c.id));
  } finally {
    adm.close();
  }
}

/**
 * Resolves once `count` read-write clients not in `before` have made a call: `virtq event`
 * processes have subscribed, so events caused from now on reach them.
 */
export async function waitForSubscribers(adminSocket: string, before: ReadonlySet<number>, count: number): Promise<void> {
  const adm = await connectAdmin(`qemu+shim://${adminSocket}`);
  try {
    for (let i = 0; i < 400; i++) {
      const { clients } = await adm.admin.listClients({});
      if (clients.filter((c) => c.socket === 'rw' && !before.has(c.id) && c.calls >= 1).length >= count) return;
      await new Promise((r) => setTimeout(r, 25));
    }
    throw new Error(`${count} event subscribers never showed up on ${adminSocket}`);
  } finally {
    adm.close();
  }
}
