// Runs built daemons (virtqemud, virtstoraged, virtsecretd, ...) under one temporary root, as
// their binaries, and kills every one of them (and whatever they started) on cleanup.
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { rootLayout, serviceSockets, type DaemonName } from '../../protocol/index.js';
import type { TmpRoot } from './tmp-root.js';
import { killProcessesUnder } from './kill-under.js';

/** A built daemon binary. */
export const daemonBin = (daemon: DaemonName): string => new URL(`../../dist/bin/${daemon}.js`, import.meta.url).pathname;

/** A running daemon process and its ready line. */
export interface RunningProcess {
  proc: ChildProcess;
  pid: number;
  exited: Promise<number | null>;
  reply: { ok: boolean; pid?: number; socket?: string; httpPort?: number; error?: { code: string; message: string } };
  stderr(): string;
}

/** Starts daemons under `root`; `cleanup()` kills them all. */
export class ServiceHarness {
  private readonly procs: ChildProcess[] = [];

  /** `prefix` runs each daemon under a wrapper, e.g. `['ip', 'netns', 'exec', NS]` (which execs it: same pid). */
  constructor(readonly root: TmpRoot, private readonly prefix: readonly string[] = []) {}

  get layout() {
    return rootLayout(this.root.dir);
  }

  sockets(daemon: DaemonName) {
    return serviceSockets(this.layout, daemon);
  }

  /** The URI of `daemon` under this root. */
  uri(scheme: string, ro = false): string {
    return `${scheme}:///system?root=${this.root.dir}${ro ? '&mode=ro' : ''}`;
  }

  /** Starts `daemon` with `--root` and `extra` flags, and resolves with its ready line (ok or not). */
  async start(daemon: DaemonName, extra: string[] = [], env: NodeJS.ProcessEnv = process.env): Promise<RunningProcess> {
    const argv = [process.execPath, daemonBin(daemon), '--root', this.root.dir, ...extra];
    const [cmd, ...args] = [...this.prefix, ...argv] as [string, ...string[]];
    const proc = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env });
    this.procs.push(proc);
    const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
    let stderr = '';
    proc.stderr?.on('data', (d: Buffer) => { stderr += d.toString(); });
    const lines = createInterface({ input: proc.stdout as NodeJS.ReadableStream });
    const line = await new Promise<string>((resolve, reject) => {
      lines.once('line', resolve);
      void exited.then((code) => reject(new Error(`${daemon} exited (${code}) before its ready line: ${stderr}`)));
    });
    lines.close();
    proc.stdout?.resume();
    return { proc, pid: proc.pid as number, exited, reply: JSON.parse(line) as RunningProcess['reply'], stderr: () => stderr };
  }

  /** Kills one daemon with `signal` and waits for it to exit. */
  async kill(p: RunningProcess, signal: NodeJS.Signals = 'SIGKILL'): Promise<number | null> {
    p.proc.kill(signal);
    return p.exited;
  }

  /** Kills every daemon started here and every process under the root, then removes the root. */
  async cleanup(): Promise<void> {
    for (const p of this.procs) p.kill('SIGKILL');
    await Promise.all(this.procs.map((p) => (p.exitCode !== null || p.signalCode !== null ? undefined : new Promise((r) => p.once('exit', r)))));
    killProcessesUnder(this.root.dir);
    this.root.remove();
  }
}
