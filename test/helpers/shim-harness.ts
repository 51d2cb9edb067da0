// Runs the built virtq-shim binary as a user would, under a temporary root, and cleans up after
// it: every shim and QEMU the test started is killed, whatever state the test left them in.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { Readable } from 'node:stream';
import { createInterface } from 'node:readline';
import {
  RpcClient, rootLayout, shimStateFile, systemClock, typedClient, virtqProgram,
  type Definition, type TypedClient, type VirtqProgram,
} from '../../protocol/index.js';
import { testAccel, testGuest } from './test-guest.js';
import { SerialReader } from './serial-reader.js';
import type { TmpRoot } from './tmp-root.js';
import { killProcessesUnder } from './kill-under.js';

/** The built shim binary. */
export const SHIM_BIN = new URL('../../dist/bin/virtq-shim.js', import.meta.url).pathname;

/** What the shim prints on stdout once the VM is up or has failed. */
export interface ShimReply {
  ok: boolean;
  name?: string;
  uuid?: string;
  state?: string;
  socket?: string;
  shimPid?: number;
  qemuPid?: number;
  error?: { code: string; message: string };
}

/** A definition of the Linux test guest. */
export function guestDefinition(name: string, extra: Partial<Definition> & { cmdline?: string } = {}): Definition {
  const g = testGuest();
  const { cmdline, ...rest } = extra;
  return {
    name, memoryMiB: 128, vcpus: 1, accel: testAccel(),
    kernel: { path: g.kernel, initrd: g.initrd, cmdline: `console=ttyS0 quiet panic=-1 ${cmdline ?? ''}`.trim() },
    ...rest,
  };
}

/** A started shim process and a client connected to it. */
export interface RunningShim {
  reply: ShimReply;
  proc: ChildProcess;
  exited: Promise<number | null>;
  api: TypedClient<VirtqProgram>;
  rpc: RpcClient;
}

/** Starts and tracks shims under one temporary root. */
export class ShimHarness {
  private readonly procs: ChildProcess[] = [];
  private readonly clients: RpcClient[] = [];
  private readonly names = new Set<string>();
  readonly clock = systemClock();

  /** `prefix` runs each shim under a wrapper, e.g. `['ip', 'netns', 'exec', NS]` (which execs it: same pid). */
  constructor(readonly root: TmpRoot, private readonly prefix: readonly string[] = []) {}

  get layout() {
    return rootLayout(this.root.dir);
  }

  /** Runs `virtq-shim` with `args` and waits for its JSON line. */
  async run(args: string[], name: string): Promise<{ reply: ShimReply; proc: ChildProcess; exited: Promise<number | null> }> {
    this.names.add(name);
    const [cmd, ...rest] = [...this.prefix, process.execPath, SHIM_BIN, '--root', this.root.dir, ...args] as [string, ...string[]];
    const proc = spawn(cmd, rest, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.procs.push(proc);
    const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
    let stderr = '';
    proc.stderr?.on('data', (d: Buffer) => { stderr += d.toString(); });
    const lines = createInterface({ input: proc.stdout as Readable });
    const first = await new Promise<string>((resolve, reject) => {
      lines.once('line', resolve);
      void exited.then((code) => reject(new Error(`virtq-shim exited (${code}) without a reply: ${stderr}`)));
    });
    lines.close();
    proc.stdout?.resume();
    return { reply: JSON.parse(first) as ShimReply, proc, exited };
  }

  /** Starts a VM from `def` and connects to its shim. */
  async start(def: Definition, extraArgs: string[] = ['--no-register']): Promise<RunningShim> {
    const file = this.root.path(`${def.name}.def.json`);
    writeFileSync(file, JSON.stringify(def));
    const run = await this.run(['--definition', file, ...extraArgs], def.name);
    if (!run.reply.ok) throw new Error(`shim failed: ${JSON.stringify(run.reply.error)}`);
    return { ...run, ...(await this.connect(run.reply.socket as string)) };
  }

  /** Connects to a shim socket. */
  async connect(socket: string): Promise<{ rpc: RpcClient; api: TypedClient<VirtqProgram> }> {
    const rpc = await RpcClient.connect(socket, { clock: this.clock, defaultTimeoutMs: 60_000 });
    this.clients.push(rpc);
    return { rpc, api: typedClient(virtqProgram, rpc) };
  }

  /** Opens the VM's console as a SerialReader. */
  async console(rpc: RpcClient, name: string): Promise<{ reader: SerialReader; write(text: string): void; close(): void }> {
    const stream = await rpc.openStream('virtq', 'openConsole', { name });
    const reader = new SerialReader(Readable.from(stream));
    return { reader, write: (text) => stream.write(text), close: () => stream.end() };
  }

  /** The QEMU pid recorded in a VM's state file. */
  qemuPid(name: string): number | undefined {
    try {
      return (JSON.parse(readFileSync(shimStateFile(this.layout, name), 'utf8')) as { qemuPid?: number }).qemuPid;
    } catch {
      return undefined;
    }
  }

  /** Kills every shim and QEMU this harness started and removes the root. */
  async cleanup(): Promise<void> {
    for (const c of this.clients) c.close();
    for (const name of this.names) {
      const pid = this.qemuPid(name);
      if (pid !== undefined) try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
    }
    await Promise.all(this.procs.map((p) => new Promise<void>((resolve) => {
      if (p.exitCode !== null || p.signalCode !== null) return resolve();
      p.once('exit', () => resolve());
      p.kill('SIGKILL');
    })));
    killProcessesUnder(this.root.dir);
    this.root.remove();
  }
}
