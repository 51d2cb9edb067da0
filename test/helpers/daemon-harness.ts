// Runs the built virtqemud under a temporary root, connects clients to it, and on cleanup kills
// the daemon and every shim and QEMU found under the root, whoever started them.
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import {
  RpcClient, daemonSockets, rootLayout, systemClock, typedClient, virtqProgram,
  type TypedClient, type VirtqProgram,
} from '../../protocol/index.js';
import type { TmpRoot } from './tmp-root.js';
import { killProcessesUnder } from './kill-under.js';
import { readStateFiles } from './state-files.js';

/** The built daemon binary. */
export const DAEMON_BIN = new URL('../../dist/bin/virtqemud.js', import.meta.url).pathname;

/** A running virtqemud process. */
export interface RunningDaemon {
  proc: ChildProcess;
  exited: Promise<number | null>;
  reply: { ok: boolean; pid?: number; httpPort?: number; error?: { code: string; message: string } };
}

/** Starts virtqemud instances and clients under one root. */
export class DaemonHarness {
  readonly clock = systemClock();
  private readonly procs: ChildProcess[] = [];
  private readonly clients: RpcClient[] = [];

  constructor(readonly root: TmpRoot) {}

  get layout() {
    return rootLayout(this.root.dir);
  }

  get sockets() {
    return daemonSockets(this.layout);
  }

  /**
   * Starts virtqemud and waits until it serves: `node virtqemud.js` (its bundle), or with
   * `asProgram` the file run as a program, as systemd and a shell do (its launcher, which starts it
   * from its startup snapshot when the build made one), with `env` added to the environment.
   */
  async startDaemon(extra: string[] = [], opts: { asProgram?: boolean; env?: NodeJS.ProcessEnv } = {}): Promise<RunningDaemon> {
    const args = ['--root', this.root.dir, ...extra];
    const spawnOpts = { stdio: ['ignore', 'pipe', 'pipe'] as ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...opts.env } };
    const proc = opts.asProgram === true ? spawn(DAEMON_BIN, args, spawnOpts) : spawn(process.execPath, [DAEMON_BIN, ...args], spawnOpts);
    this.procs.push(proc);
    const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
    let stderr = '';
    proc.stderr?.on('data', (d: Buffer) => { stderr += d.toString(); });
    const lines = createInterface({ input: proc.stdout as NodeJS.ReadableStream });
    const line = await new Promise<string>((resolve, reject) => {
      lines.once('line', resolve);
      void exited.then((code) => reject(new Error(`virtqemud exited (${code}): ${stderr}`)));
    });
    lines.close();
    proc.stdout?.resume();
    return { proc, exited, reply: JSON.parse(line) as RunningDaemon['reply'] };
  }

  /** A client of the read-write (or read-only) daemon socket. */
  async client(readOnly = false): Promise<{ rpc: RpcClient; api: TypedClient<VirtqProgram> }> {
    const rpc = await RpcClient.connect(readOnly ? this.sockets.ro : this.sockets.rw, { clock: this.clock, defaultTimeoutMs: 120_000 });
    this.clients.push(rpc);
    return { rpc, api: typedClient(virtqProgram, rpc) };
  }

  /** A client of any socket (a shim's, say). */
  async connect(socket: string): Promise<{ rpc: RpcClient; api: TypedClient<VirtqProgram> }> {
    const rpc = await RpcClient.connect(socket, { clock: this.clock, defaultTimeoutMs: 120_000 });
    this.clients.push(rpc);
    return { rpc, api: typedClient(virtqProgram, rpc) };
  }

  /** The runtime state files under the root. */
  states(): Array<{ name: string; shimPid: number; qemuPid?: number; state: string; reason: string }> {
    return readStateFiles(this.layout);
  }

  /** The daemon processes started so far, oldest first. */
  get daemons(): readonly ChildProcess[] {
    return this.procs;
  }

  /** Kills daemons, shims and QEMUs under the root, then removes it. */
  async cleanup(): Promise<void> {
    for (const c of this.clients) c.close();
    for (const p of this.procs) p.kill('SIGKILL');
    for (const s of this.states()) {
      for (const pid of [s.qemuPid, s.shimPid]) if (pid !== undefined) try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
    }
    await Promise.all(this.procs.map((p) => (p.exitCode !== null || p.signalCode !== null ? undefined : new Promise((r) => p.once('exit', r)))));
    killProcessesUnder(this.root.dir);
    this.root.remove();
  }
}
