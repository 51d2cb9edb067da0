// The real CommandRunner: node:child_process with an explicit environment (PATH decides which
// tools exist, so a test can take one away). Long-lived processes are detached into their own
// session with stdio to a log file, so they outlive the daemon that started them.
import { spawn } from 'node:child_process';
import { accessSync, closeSync, constants, openSync, statSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { VirtqError } from '../../protocol/errors.js';
import { missingTool, type CommandResult, type CommandRunner, type ProcessExit, type ProcessHandle, type RunOptions, type SpawnOptions } from './runner.js';

/** What the host runner is given; `env` defaults to the daemon's own environment. */
export interface HostRunnerOptions {
  env?: NodeJS.ProcessEnv;
}

/** The CommandRunner a daemon uses: commands run on this host, as this process's user. */
export function hostRunner(options: HostRunnerOptions = {}): CommandRunner {
  const env = options.env ?? process.env;
  const which = (cmd: string): string | undefined => {
    if (cmd.includes('/')) return isExecutable(cmd) ? cmd : undefined;
    for (const dir of (env['PATH'] ?? '').split(delimiter)) {
      if (dir !== '' && isExecutable(join(dir, cmd))) return join(dir, cmd);
    }
    return undefined;
  };
  return {
    run: (cmd, args, opts) => runCommand(env, cmd, args, opts ?? {}),
    spawn: (cmd, args, opts) => spawnDetached(env, cmd, args, opts),
    which: async (cmd) => which(cmd),
  };
}

function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

function runCommand(env: NodeJS.ProcessEnv, cmd: string, args: readonly string[], opts: RunOptions): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env, stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let timer: NodeJS.Timeout | undefined;
    if (opts.timeoutMs !== undefined) timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs);
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', (e: NodeJS.ErrnoException) => {
      if (timer !== undefined) clearTimeout(timer);
      reject(e.code === 'ENOENT' ? missingTool([cmd], 'the network driver') : new VirtqError('OPERATION_FAILED', `cannot run ${cmd}: ${e.message}`, { cause: e }));
    });
    child.on('close', (code) => {
      if (timer !== undefined) clearTimeout(timer);
      resolve({ stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8'), code });
    });
    // A command that exits without reading its stdin must not crash us with EPIPE.
    child.stdin.on('error', () => undefined);
    child.stdin.end(opts.input ?? '');
  });
}

function spawnDetached(env: NodeJS.ProcessEnv, cmd: string, args: readonly string[], opts: SpawnOptions): Promise<ProcessHandle> {
  return new Promise((resolve, reject) => {
    let fd: number;
    try {
      fd = openSync(opts.logFile, 'a', 0o600);
    } catch (e) {
      reject(new VirtqError('OPERATION_FAILED', `cannot open ${opts.logFile} for ${cmd}'s output: ${(e as Error).message}`, { cause: e }));
      return;
    }
    const child = spawn(cmd, args, { env, detached: true, stdio: ['ignore', fd, fd] });
    closeSync(fd);
    const exited = new Promise<ProcessExit>((res) => {
      child.on('exit', (code, signal) => res({ code, signal }));
    });
    child.on('error', (e: NodeJS.ErrnoException) => {
      reject(e.code === 'ENOENT' ? missingTool([cmd], 'the network driver') : new VirtqError('OPERATION_FAILED', `cannot start ${cmd}: ${e.message}`, { cause: e }));
    });
    child.on('spawn', () => {
      child.unref();
      if (child.pid === undefined) reject(new VirtqError('OPERATION_FAILED', `cannot start ${cmd}: no pid`));
      else resolve({ pid: child.pid, exited });
    });
  });
}
