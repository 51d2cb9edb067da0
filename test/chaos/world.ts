// The world a chaos iteration runs in: a temporary root (a small tmpfs when we may mount one, so
// the disk can be filled), the built virtqemud, clients, and the truth about processes read from
// /proc: QEMUs, shims and lease holders whose command line or open files name the root, and every
// process started under it, found by a variable in its environment.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import {
  closeSync, cpSync, mkdirSync, mkdtempSync, openSync, readFileSync, readdirSync, readlinkSync, rmSync, unlinkSync, writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { RpcClient, daemonSockets, rootLayout, systemClock, type Layout } from '../../protocol/index.js';
import { DAEMON_BIN } from '../helpers/daemon-harness.js';
import { SHIM_BIN } from '../helpers/shim-harness.js';
import { processesWithEnv } from '../helpers/env-processes.js';
import { readStateFiles } from '../helpers/state-files.js';
import { procState } from '../../drivers/host/proc.js';

/** A live QEMU under the root, as /proc shows it. */
export interface QemuProc {
  pid: number;
  name: string;
  uuid: string;
}

/** A process under the root. */
export interface Proc {
  pid: number;
  args: string[];
}

/** A runtime state file as the shim wrote it (only the fields the checks read). */
export interface StateFile {
  name: string;
  uuid: string;
  shimPid: number;
  qemuPid?: number;
  state: string;
  reason: string;
  sockets: { rw: string };
}

const clock = systemClock();

/** Sleeps `ms` of real time. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function readArgs(pid: number): string[] | undefined {
  try {
    const raw = readFileSync(`/proc/${pid}/cmdline`, 'latin1');
    return raw.split('\0').filter((a, i, all) => a !== '' || i < all.length - 1);
  } catch {
    return undefined;
  }
}

/** Every live (not zombie) process, with its arguments. */
function allProcs(): Proc[] {
  const out: Proc[] = [];
  for (const entry of readdirSync('/proc')) {
    const pid = Number(entry);
    if (!Number.isInteger(pid) || pid === process.pid) continue;
    const state = procState(pid);
    if (state === undefined || state === 'Z' || state === 'X') continue;
    const args = readArgs(pid);
    if (args !== undefined && args.length > 0) out.push({ pid, args });
  }
  return out;
}

/** The parent of `pid` (/proc/PID/stat's 4th field), if it runs. */
function parentPid(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  } catch {
    return undefined;
  }
}

/**
 * The variable every process of a chaos root carries in its environment, and so everything it
 * starts unless that spawn replaces the environment: a process whose command line names no root
 * (a capabilities probe, a clone's cp) is still found as the root's.
 */
const ROOT_VAR = 'VIRTQ_CHAOS_ROOT';

/** The environment the chaos world starts its daemons and shims with. */
export function rootEnv(root: string): NodeJS.ProcessEnv {
  return { ...process.env, [ROOT_VAR]: root };
}

/** Live processes started, directly or not, under `root` (see ROOT_VAR). */
export function processesOfRoot(root: string): Proc[] {
  return processesWithEnv(ROOT_VAR, root);
}

/** The value following `flag` in `args`. */
function argAfter(args: string[], flag: string): string | undefined {
  const i = args.indexOf(flag);
  return i >= 0 ? args[i + 1] : undefined;
}

/** Worlds not yet disposed, so a test that timed out can still clean up after itself. */
export const openWorlds = new Set<ChaosWorld>();

/** One chaos root with its virtqemud. */
export class ChaosWorld {
  readonly layout: Layout;
  readonly tmpfs: boolean;
  daemon: { proc: ChildProcess; exited: Promise<void> } | undefined;
  private filler: string | undefined;
  private readonly spawned: ChildProcess[] = [];
  private readonly clients = new Set<RpcClient>();

  /** Why the root is not a tmpfs, when one was asked for and could not be mounted. */
  tmpfsError: string | undefined;

  private constructor(readonly root: string, tmpfs: boolean) {
    this.layout = rootLayout(root);
    this.tmpfs = tmpfs;
  }

  /** A fresh root: a tmpfs of `size` when running as root (and `tmpfsSize` is not "off"). */
  static create(tmpfsSize: string): ChaosWorld {
    const root = mkdtempSync(join(tmpdir(), 'vq-chaos-'));
    let tmpfs = false;
    let tmpfsError: string | undefined;
    if (tmpfsSize !== 'off' && process.getuid?.() === 0) {
      const r = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${tmpfsSize},mode=0755`, 'tmpfs', root], { encoding: 'utf8' });
      tmpfs = r.status === 0;
      if (!tmpfs) tmpfsError = `mount -t tmpfs failed: ${(r.stderr || r.error?.message || `exit ${r.status}`).trim()}`;
    } else if (tmpfsSize !== 'off') {
      tmpfsError = 'not root: no tmpfs can be mounted';
    }
    const w = new ChaosWorld(root, tmpfs);
    w.tmpfsError = tmpfsError;
    openWorlds.add(w);
    mkdirSync(w.path('disks'), { recursive: true });
    return w;
  }

  path(...parts: string[]): string {
    return join(this.root, ...parts);
  }

  get sockets(): { rw: string; ro: string; admin: string } {
    return daemonSockets(this.layout);
  }

  /** A sparse raw image (takes no space on tmpfs until written). */
  image(name: string): string {
    const file = this.path('disks', `${name}.img`);
    const fd = openSync(file, 'a');
    closeSync(fd);
    spawnSync('truncate', ['-s', '1M', file]);
    return file;
  }

  // --- virtqemud -----------------------------------------------------------------------

  /** Starts virtqemud and waits for its ready line; throws with its stderr when it fails. */
  async startDaemon(): Promise<void> {
    // Reconciliation every second: virtqemud is killed often, and a 5 s pass would rarely run.
    const proc = spawn(process.execPath, [DAEMON_BIN, '--root', this.root, '--reconcile-ms', '1000'], { stdio: ['ignore', 'pipe', 'pipe'], env: rootEnv(this.root) });
    this.spawned.push(proc);
    const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
    let stderr = '';
    proc.stderr?.on('data', (d: Buffer) => { stderr += d.toString(); });
    const lines = createInterface({ input: proc.stdout as NodeJS.ReadableStream });
    const line = await new Promise<string>((resolve, reject) => {
      lines.once('line', resolve);
      void exited.then(() => reject(new Error(`virtqemud exited before serving: ${stderr.trim()}`)));
    });
    lines.close();
    proc.stdout?.resume();
    const reply = JSON.parse(line) as { ok: boolean; error?: { code: string; message: string } };
    if (!reply.ok) throw new Error(`virtqemud failed to start: ${reply.error?.code}: ${reply.error?.message}`);
    this.daemon = { proc, exited };
  }

  /** SIGTERM to virtqemud (its orderly stop); false when it had to be killed after `ms`. */
  async stopDaemon(ms = 15_000): Promise<boolean> {
    const d = this.daemon;
    this.daemon = undefined;
    if (d === undefined) return true;
    d.proc.kill('SIGTERM');
    const inTime = await Promise.race([d.exited.then(() => true), sleep(ms).then(() => false)]);
    if (!inTime) {
      d.proc.kill('SIGKILL');
      await d.exited;
    }
    return inTime;
  }

  /** kill -9 of virtqemud; resolves once it is gone. */
  async killDaemon(): Promise<void> {
    const d = this.daemon;
    this.daemon = undefined;
    if (d === undefined) return;
    d.proc.kill('SIGKILL');
    await d.exited;
  }

  /** True while the daemon we started runs. */
  get daemonUp(): boolean {
    return this.daemon !== undefined && this.daemon.proc.exitCode === null && this.daemon.proc.signalCode === null;
  }

  /** A client of virtqemud's read-write socket. */
  async connect(socket = this.sockets.rw): Promise<RpcClient> {
    const c = await RpcClient.connect(socket, { clock, defaultTimeoutMs: 90_000 });
    this.clients.add(c);
    c.onClose(() => this.clients.delete(c));
    return c;
  }

  /** Runs `virtq-shim --attach NAME`; resolves with its reply line. */
  attach(name: string): Promise<{ ok: boolean; error?: { code: string; message: string } }> {
    const proc = spawn(process.execPath, [SHIM_BIN, '--root', this.root, '--attach', name], { stdio: ['ignore', 'pipe', 'ignore'], detached: true, env: rootEnv(this.root) });
    this.spawned.push(proc);
    return new Promise((resolve) => {
      let out = '';
      const done = (r: { ok: boolean; error?: { code: string; message: string } }) => {
        proc.stdout?.destroy();
        proc.unref();
        resolve(r);
      };
      proc.stdout?.on('data', (d: Buffer) => {
        out += d.toString();
        const nl = out.indexOf('\n');
        if (nl >= 0) {
          try {
            done(JSON.parse(out.slice(0, nl)) as { ok: boolean });
          } catch {
            done({ ok: false, error: { code: 'UNREADABLE', message: out } });
          }
        }
      });
      proc.once('exit', (code) => done({ ok: false, error: { code: 'EXITED', message: `exited ${code} without a reply` } }));
    });
  }

  // --- the truth from /proc ------------------------------------------------------------

  private mine(args: string[]): boolean {
    return args.some((a) => a === this.root || a.includes(`${this.root}/`));
  }

  /** Live QEMUs whose command line names the root. */
  qemus(): QemuProc[] {
    return allProcs().filter((p) => (p.args[0] ?? '').includes('qemu-system') && this.mine(p.args)).map((p) => {
      const nameArg = argAfter(p.args, '-name') ?? '';
      const name = (/^guest=((?:[^,]|,,)*)/.exec(nameArg)?.[1] ?? nameArg).replace(/,,/g, ',');
      return { pid: p.pid, name, uuid: (argAfter(p.args, '-uuid') ?? '').toLowerCase() };
    });
  }

  /** Live shims under the root. */
  shims(): Proc[] {
    return allProcs().filter((p) => p.args.some((a) => a.includes('virtq-shim')) && this.mine(p.args));
  }

  /**
   * Lease holders and helpers of the root's lockspace: flock processes whose command line names
   * it or which hold a file under the root open (a holder is `flock -s 4`; its lease is fd 3).
   */
  holders(): Proc[] {
    const lockspace = join(this.layout.state, 'lockspace');
    return allProcs().filter((p) => {
      if (!(p.args[0] ?? '').endsWith('flock')) return false;
      if (p.args.some((a) => a.includes(lockspace))) return true;
      try {
        return readdirSync(`/proc/${p.pid}/fd`).some((fd) => {
          try {
            return readlinkSync(`/proc/${p.pid}/fd/${fd}`).startsWith(`${this.root}/`);
          } catch {
            return false;
          }
        });
      } catch {
        return false;
      }
    });
  }

  /**
   * Every process under the root but the daemon: QEMUs, shims, holders; `pool` are the live warm
   * pool's idle shims (see livePool), alive by design and so not left over.
   */
  leftovers(pool: ReadonlySet<number> = new Set()): { qemus: QemuProc[]; shims: Proc[]; holders: Proc[] } {
    return { qemus: this.qemus(), shims: this.shims().filter((p) => !pool.has(p.pid)), holders: this.holders() };
  }

  /**
   * The live virtqemud's idle warm shims (its serverInfo details.shimPool, decision 0026), each
   * checked against /proc: a live shim of this root, a child of that virtqemud, and no VM's (no
   * state file names it). Anything it lists that fails a check is not a pool member here, so it
   * still counts as left over; undefined when virtqemud does not answer.
   */
  async livePool(): Promise<{ size: number; idle: number[] } | undefined> {
    const daemonPid = this.daemon?.proc.pid;
    if (daemonPid === undefined || !this.daemonUp) return undefined;
    let info: { details?: { shimPool?: { size: number; idle: number[] } } };
    try {
      const admin = await this.connect(this.sockets.admin);
      try { info = await admin.call('admin', 'serverInfo', {}) as typeof info; } finally { admin.close(); }
    } catch {
      return undefined;
    }
    const pool = info.details?.shimPool;
    if (pool === undefined) return undefined;
    const owned = new Set(this.states().map((s) => s.shimPid));
    return { size: pool.size, idle: pool.idle.filter((pid) => this.isShim(pid) && parentPid(pid) === daemonPid && !owned.has(pid)) };
  }

  /** The runtime state files (unreadable ones skipped: they are written atomically). */
  states(): StateFile[] {
    return readStateFiles<StateFile>(this.layout);
  }

  /** The state file of `name`, if readable. */
  state(name: string): StateFile | undefined {
    return this.states().find((s) => s.name === name);
  }

  /** True when `pid` runs and is a shim of this root. */
  isShim(pid: number): boolean {
    const args = procState(pid) === 'Z' ? undefined : readArgs(pid);
    return args !== undefined && args.some((a) => a.includes('virtq-shim')) && this.mine(args);
  }

  // --- the disk ------------------------------------------------------------------------

  /** True while the filler holds the tmpfs full. */
  get diskFull(): boolean {
    return this.filler !== undefined;
  }

  /** Fills the tmpfs to the last page. */
  fillDisk(): void {
    if (!this.tmpfs || this.filler !== undefined) return;
    const file = this.path('filler');
    const fd = openSync(file, 'w');
    const big = Buffer.alloc(64 * 1024);
    const page = Buffer.alloc(4096);
    try {
      for (const buf of [big, page]) {
        for (;;) {
          try {
            writeSync(fd, buf);
          } catch {
            break;
          }
        }
      }
    } finally {
      closeSync(fd);
    }
    this.filler = file;
  }

  /** Gives the space back. */
  freeDisk(): void {
    if (this.filler === undefined) return;
    try {
      unlinkSync(this.filler);
    } catch {
      // gone
    }
    this.filler = undefined;
  }

  // --- cleanup -------------------------------------------------------------------------

  /** SIGKILLs every process of the root (daemon, shims, QEMUs, holders). */
  killAll(): void {
    for (const c of this.clients) c.close();
    for (const p of this.spawned) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
    for (const p of [...this.qemus(), ...this.shims(), ...this.holders()]) {
      try { process.kill(p.pid, 'SIGKILL'); } catch { /* gone */ }
    }
    for (const p of [...allProcs().filter((x) => this.mine(x.args)), ...processesOfRoot(this.root)]) {
      try { process.kill(p.pid, 'SIGKILL'); } catch { /* gone */ }
    }
  }

  /** Keeps the logs of a failed iteration (copied off the tmpfs) and returns where. */
  preserveLogs(seed: number): string | undefined {
    const dest = join(tmpdir(), `vq-chaos-failed-${seed}-${Date.now()}`);
    try {
      cpSync(this.layout.log, join(dest, 'log'), { recursive: true });
      cpSync(this.layout.runtime, join(dest, 'run'), { recursive: true, filter: (src) => !src.endsWith('.sock') });
      cpSync(this.layout.config, join(dest, 'etc'), { recursive: true });
      return dest;
    } catch {
      return undefined;
    }
  }

  /** Kills everything, unmounts the tmpfs and removes the root. */
  async dispose(): Promise<void> {
    openWorlds.delete(this);
    this.killAll();
    await Promise.all(this.spawned.map((p) => (p.exitCode !== null || p.signalCode !== null ? undefined : new Promise((r) => p.once('exit', r)))));
    // Processes SIGKILLed a moment ago may still hold files open on the tmpfs.
    for (let i = 0; i < 50 && (this.qemus().length > 0 || this.shims().length > 0 || this.holders().length > 0); i++) {
      this.killAll();
      await sleep(100);
    }
    if (this.tmpfs) {
      let r = spawnSync('umount', [this.root]);
      for (let i = 0; i < 20 && r.status !== 0; i++) {
        await sleep(100);
        r = spawnSync('umount', [this.root]);
      }
      if (r.status !== 0) spawnSync('umount', ['-l', this.root]);
    }
    rmSync(this.root, { recursive: true, force: true });
  }
}
