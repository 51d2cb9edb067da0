// The seam between the network driver and the host: every command (ip, nft, dnsmasq, tee) goes
// through a CommandRunner the daemon injects, so tests can run the same driver inside a network
// namespace and a daemon can run it for real. Also the tool → Debian package table.
import { VirtqError } from '../../protocol/errors.js';

/** What a finished command left. `code` is null when a signal ended it. */
export interface CommandResult {
  stdout: string;
  stderr: string;
  code: number | null;
}

/** Options of one short command. */
export interface RunOptions {
  /** Written to the command's stdin, which is then closed. */
  input?: string;
  /** Killed (SIGKILL) after this many milliseconds; the result then has code null. */
  timeoutMs?: number;
}

/** How a long-lived process ended. */
export interface ProcessExit {
  code: number | null;
  signal: string | null;
}

/** A long-lived process the runner started. */
export interface ProcessHandle {
  pid: number;
  /** Settles when the process has exited (and was reaped). */
  exited: Promise<ProcessExit>;
}

/** Options of a long-lived process. */
export interface SpawnOptions {
  /** stdout and stderr are appended to this file (a daemon's own log stays free of them). */
  logFile: string;
}

/**
 * Runs host commands. `spawn` starts a process that must outlive the caller (dnsmasq): in its
 * own session, stdio to a file, never killed with its parent. A command that is not installed
 * throws NOT_SUPPORTED naming it and its Debian package (see missingTool).
 */
export interface CommandRunner {
  run(cmd: string, args: readonly string[], opts?: RunOptions): Promise<CommandResult>;
  spawn(cmd: string, args: readonly string[], opts: SpawnOptions): Promise<ProcessHandle>;
  /** The absolute path `cmd` resolves to where commands run, or undefined when it is not installed. */
  which(cmd: string): Promise<string | undefined>;
}

/** The Debian package that ships each tool the driver runs. */
export const TOOL_PACKAGES: Readonly<Record<string, string>> = {
  ip: 'iproute2',
  nft: 'nftables',
  dnsmasq: 'dnsmasq-base',
  tee: 'coreutils',
};

/** The NOT_SUPPORTED error for a tool that is not installed; `purpose` says what needed it. */
export function missingTool(tools: readonly string[], purpose: string): VirtqError {
  const list = tools.map((t) => `${t} (Debian package ${TOOL_PACKAGES[t] ?? 'unknown'})`).join(', ');
  const pkgs = tools.map((t) => TOOL_PACKAGES[t] ?? t).join(' ');
  return new VirtqError('NOT_SUPPORTED', `${purpose} needs ${list}, which ${tools.length === 1 ? 'is' : 'are'} not installed; install with: apt-get install ${pkgs}`, {
    details: { missing: tools.map((t) => ({ binary: t, package: TOOL_PACKAGES[t] ?? null })) },
  });
}

/**
 * A runner that runs every command inside the network namespace `ns` (`ip netns exec NS CMD`).
 * `ip netns exec` execs the command, so a spawned process keeps the pid the handle reports.
 */
export function netnsRunner(inner: CommandRunner, ns: string): CommandRunner {
  return {
    run: (cmd, args, opts) => inner.run('ip', ['netns', 'exec', ns, cmd, ...args], opts),
    spawn: (cmd, args, opts) => inner.spawn('ip', ['netns', 'exec', ns, cmd, ...args], opts),
    which: (cmd) => inner.which(cmd),
  };
}

/** Runs a command that must succeed; a failure is OPERATION_FAILED (or a mapped code) saying `what`. */
export async function runOk(runner: CommandRunner, cmd: string, args: readonly string[], what: string, opts?: RunOptions): Promise<string> {
  const res = await runner.run(cmd, args, opts);
  if (res.code === 0) return res.stdout;
  throw commandError(what, cmd, args, res);
}

/** Maps a failed command to a VirtqError: EEXIST → ALREADY_EXISTS, EPERM → PERMISSION_DENIED. */
export function commandError(what: string, cmd: string, args: readonly string[], res: CommandResult): VirtqError {
  const text = res.stderr.trim() || res.stdout.trim() || `exit code ${String(res.code)}`;
  const details = { command: [cmd, ...args].join(' '), exitCode: res.code, stderr: res.stderr.slice(0, 2000) };
  const message = `${what} failed: ${text}`;
  if (/File exists/.test(text)) return new VirtqError('ALREADY_EXISTS', message, { details });
  if (/Operation not permitted|Permission denied/.test(text)) return new VirtqError('PERMISSION_DENIED', `${message} (the network driver needs CAP_NET_ADMIN)`, { details });
  return new VirtqError('OPERATION_FAILED', message, { details });
}
