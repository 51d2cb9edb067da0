// Embedded mode (qemu:///embed?root=DIR): no daemon. This router starts shims itself
// (`virtq-shim --embed`), lists VMs by scanning DIR/run/shims/*.json, and sends each per-VM call
// to its VM's shim socket read from the state file. The VMs are private to the application.
import { existsSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  ACTIVE_STATES, EventQueue, RpcClient, VirtqError, definitionValidator, shimDir, shimStateFile, startRequestText, virtqProgram,
  type ArgsOf, type ByteStream, type CallOptions, type Clock, type DomainRow, type DomainState, type Layout, type ProcSpec, type ProcsWith, type PushedEvent, type VirtqProgram,
} from '../protocol/index.js';
import { spawnShim, type ShimReady } from '../daemon/shim-bootstrap.js';
import { ShimPool } from '../daemon/shim-pool.js';
import { withShimCodeCache } from '../daemon/shim-code-cache-env.js';
import type { Router } from './router.js';
import { readShimState, type ShimStateFile } from './resolve.js';

/** How the embed router runs shims. */
export interface EmbedOptions {
  root: string;
  layout: Layout;
  clock: Clock;
  defaultTimeoutMs: number;
  /** The command that runs virtq-shim, e.g. `[process.execPath, '/x/dist/bin/virtq-shim.js']`. */
  shimCommand: readonly string[];
  /** How long a new shim may take to report its VM running. */
  startTimeoutMs: number;
  /** virtstoraged and virtsecretd the VMs' shims use for volume and encrypted disks. */
  storageUri: string;
  secretUri: string;
  /** virtnetworkd, for the VMs' network interfaces. */
  networkUri: string;
  /** Warm shims kept ready for plain starts (docs/decisions/0026-warm-shim-pool.md; 0: none). */
  shimPool: number;
}

type Procs = VirtqProgram['procs'];

/** The per-VM procedures the catalogue marks `hostCache`. */
type HostCached = ProcsWith<Procs, 'hostCache'>;

/** A stopped VM's answers from its state file (only those `hostCache` marks 'inactive' are asked). */
const fromStateFile: Readonly<Record<HostCached, (state: ShimStateFile) => unknown>> = {
  getState: (state) => { const row = rowFromState(state); return { state: row.state, reason: row.reason }; },
  getDefinition: (state) => state.definition,
  getInfo: () => undefined,
};

/** The procedures the embed router answers itself (`embed: 'router'` in the catalogue). */
type RouterProc = ProcsWith<Procs, 'embed', 'router'>;

/** The virtq-shim beside this module (dist/bin, dist/lib/client or a source checkout), else `virtq-shim` on PATH. */
export function defaultShimCommand(execPath: string): string[] {
  const here = dirname(fileURLToPath(import.meta.url));
  const candidates = [join(here, 'virtq-shim.js'), join(here, '..', '..', 'bin', 'virtq-shim.js'), join(here, '..', 'dist', 'bin', 'virtq-shim.js')];
  const found = candidates.find((c) => existsSync(c));
  return found === undefined ? ['virtq-shim'] : [execPath, found];
}

function alive(pid: number | undefined): boolean {
  if (pid === undefined) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** A listing row from a state file; a VM whose shim and QEMU are both gone counts as shut off. */
export function rowFromState(s: ShimStateFile): DomainRow {
  const shimUp = alive(s.shimPid);
  let state = s.state as DomainState;
  let reason = s.reason;
  if (!shimUp && !alive(s.qemuPid) && ACTIVE_STATES.has(state)) { state = 'shutoff'; reason = 'unknown'; }
  return {
    name: s.name, uuid: s.uuid, state, reason, persistent: false, autostart: false, shimUp,
    ...(shimUp ? { shimSocket: s.sockets.rw } : {}),
    ...(shimUp && s.shimPid !== undefined ? { shimPid: s.shimPid } : {}),
    ...(ACTIVE_STATES.has(state) && s.qemuPid !== undefined ? { qemuPid: s.qemuPid } : {}),
  };
}

/** Routes the `virtq` program over the shims of one embed root. */
export class EmbedRouter implements Router {
  readonly closed: Promise<VirtqError>;
  private markClosed!: (err: VirtqError) => void;
  private readonly shims = new Map<string, RpcClient>();
  private readonly pumped = new WeakSet<RpcClient>();
  private readonly queue = new EventQueue<PushedEvent>(10_000);
  private subscribedAll = false;
  private isClosed = false;

  private readonly pool: ShimPool | undefined;

  constructor(private readonly opts: EmbedOptions) {
    this.closed = new Promise((resolve) => { this.markClosed = resolve; });
    const [command, ...base] = opts.shimCommand;
    if (opts.shimPool > 0 && command !== undefined) {
      this.pool = new ShimPool({ size: opts.shimPool, command, args: [...base, ...this.shimArgs()], env: withShimCodeCache(process.env, opts.layout), clock: opts.clock });
      this.pool.fill();
    }
  }


  async call(prog: string, proc: string, args: unknown, opts: CallOptions): Promise<unknown> {
    this.checkOpen();
    if (prog !== virtqProgram.name || !Object.hasOwn(virtqProgram.procs, proc)) {
      throw new VirtqError('NOT_SUPPORTED', `${prog}.${proc} is not available in embedded mode`);
    }
    const parsed = virtqProgram.argValidators.get(proc)?.parse(args ?? {}, `${proc} arguments`) as Record<string, unknown>;
    const spec: ProcSpec = virtqProgram.procs[proc as keyof Procs];
    if (spec.embed === 'router') return this.local[proc as RouterProc](parsed);
    if (spec.embed === 'unavailable') {
      throw new VirtqError('NOT_SUPPORTED', `${proc} needs virtqemud: embedded mode has no persistent definitions (use create)`);
    }
    const name = String(parsed['name']);
    const client = await this.shim(name);
    if (client === undefined) return this.fromStateFile(name, proc);
    try {
      return await client.call(prog, proc, parsed, opts);
    } catch (err) {
      // The shim of a VM that has just stopped exits: a call on the cached connection can meet
      // that close before the connection has noticed it. Once the state file records a final
      // state, the VM is simply not running: answer as for any stopped VM.
      if (!(err instanceof VirtqError) || err.code !== 'CONNECTION_CLOSED') throw err;
      const state = await readShimState(shimStateFile(this.opts.layout, name));
      if (state === undefined || ACTIVE_STATES.has(state.state as DomainState)) throw err;
      this.shims.delete(name);
      return this.fromStateFile(name, proc);
    }
  }

  async openStream(prog: string, proc: string, args: unknown, opts: CallOptions): Promise<ByteStream> {
    this.checkOpen();
    const name = String((args as { name?: unknown }).name);
    const client = await this.shim(name);
    if (client === undefined) throw await this.notRunning(name, proc);
    return client.openStream(prog, proc, args, opts);
  }

  events(): AsyncIterable<PushedEvent> {
    return this.queue;
  }

  close(): void {
    if (this.isClosed) return;
    this.isClosed = true;
    // The idle warm shims go (they hold nothing); started VMs and their shims stay.
    this.pool?.close();
    for (const c of this.shims.values()) c.close();
    this.shims.clear();
    this.queue.end();
    this.markClosed(new VirtqError('CONNECTION_CLOSED', 'connection closed by the client'));
  }

  // What the router answers itself, by procedure; a catalogue entry without one fails tsc.
  private readonly local: Readonly<Record<RouterProc, (parsed: Record<string, unknown>) => Promise<unknown>>> = {
    listDomains: async (parsed) => ({ domains: await this.list(parsed as ArgsOf<Procs['listDomains']>) }),
    lookupByName: (parsed) => this.lookup((r) => r.name === parsed['name'], `named "${String(parsed['name'])}"`),
    lookupByUUID: (parsed) => this.lookup((r) => r.uuid === String(parsed['uuid']).toLowerCase(), `with UUID ${String(parsed['uuid'])}`),
    create: (parsed) => this.create(parsed as ArgsOf<Procs['create']>),
    subscribeEvents: (parsed) => this.subscribe(parsed['name'] as string | undefined, parsed),
  };

  private checkOpen(): void {
    if (this.isClosed) throw new VirtqError('CONNECTION_CLOSED', 'connection is closed');
  }

  private async states(): Promise<ShimStateFile[]> {
    let files: string[];
    try {
      files = (await readdir(shimDir(this.opts.layout))).filter((f) => f.endsWith('.json')).sort();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw VirtqError.from(err);
    }
    const states = await Promise.all(files.map((f) => readShimState(join(shimDir(this.opts.layout), f)).catch(() => undefined)));
    return states.filter((s): s is ShimStateFile => s !== undefined);
  }

  private async list(filter: ArgsOf<Procs['listDomains']>): Promise<DomainRow[]> {
    const rows = (await this.states()).map(rowFromState);
    return rows.filter((r) => {
      const active = ACTIVE_STATES.has(r.state);
      if (filter.active === true && filter.inactive !== true && !active) return false;
      if (filter.inactive === true && filter.active !== true && active) return false;
      if (filter.persistent === true && filter.transient !== true) return false;
      return filter.state === undefined || r.state === filter.state;
    });
  }

  private async lookup(match: (r: DomainRow) => boolean, what: string): Promise<DomainRow> {
    const row = (await this.list({})).find(match);
    if (row === undefined) throw new VirtqError('NO_DOMAIN', `no VM ${what} under ${this.opts.root}`);
    return row;
  }

  // A connected client for VM `name`'s shim; undefined when the VM has a state file but no shim serves it.
  private async shim(name: string): Promise<RpcClient | undefined> {
    const cached = this.shims.get(name);
    if (cached !== undefined && !cached.isClosed) return cached;
    const state = await readShimState(shimStateFile(this.opts.layout, name));
    if (state === undefined) throw new VirtqError('NO_DOMAIN', `no VM "${name}" under ${this.opts.root}`);
    try {
      const client = await RpcClient.connect(state.sockets.rw, { clock: this.opts.clock, defaultTimeoutMs: this.opts.defaultTimeoutMs });
      if (this.isClosed) { client.close(); this.checkOpen(); }
      this.shims.set(name, client);
      return client;
    } catch (err) {
      const e = VirtqError.from(err);
      // A shim that recorded a final state is finishing (or gone): the VM is simply not running.
      if (e.code !== 'NO_CONNECT' || (alive(state.shimPid) && ACTIVE_STATES.has(state.state as DomainState))) throw e;
      return undefined;
    }
  }

  // Answers what a stopped VM can still answer from its state file.
  private async fromStateFile(name: string, proc: string): Promise<unknown> {
    const state = await readShimState(shimStateFile(this.opts.layout, name));
    if (state === undefined) throw new VirtqError('NO_DOMAIN', `no VM "${name}" under ${this.opts.root}`);
    const spec: ProcSpec | undefined = Object.hasOwn(virtqProgram.procs, proc) ? virtqProgram.procs[proc as keyof Procs] : undefined;
    // What the catalogue says virtqemud answers for an inactive VM, embed answers from the file.
    if (spec?.hostCache?.includes('inactive') === true) {
      const answer = fromStateFile[proc as HostCached](state);
      if (answer !== undefined) return answer;
    }
    throw await this.notRunning(name, proc);
  }

  private async notRunning(name: string, proc: string): Promise<VirtqError> {
    const state = await readShimState(shimStateFile(this.opts.layout, name));
    const row = state === undefined ? undefined : rowFromState(state);
    if (row !== undefined && ACTIVE_STATES.has(row.state)) {
      return new VirtqError('SHIM_UNAVAILABLE', `the shim of VM "${name}" is not reachable; the VM may still run (re-attach with virtq-shim --attach ${name})`);
    }
    return new VirtqError('OPERATION_INVALID', `cannot ${proc} VM "${name}": it is ${row?.state ?? 'shutoff'}`, { details: { state: row?.state ?? 'shutoff' } });
  }

  // One VM's replay (since, sinceTime) is its shim's; without a name each shim replays after sinceTime.
  private async subscribe(name: string | undefined, args: Record<string, unknown> = {}): Promise<Record<string, never>> {
    if (name === undefined && (args['since'] !== undefined || args['sinceByVm'] !== undefined)) {
      throw new VirtqError('INVALID_ARG', 'embedded mode resumes one VM at a time: give a VM name with since');
    }
    const resume = { ...(args['since'] === undefined ? {} : { since: args['since'] }), ...(args['sinceTime'] === undefined ? {} : { sinceTime: args['sinceTime'] }) };
    const names = name === undefined ? (await this.list({ active: true })).map((r) => r.name) : [name];
    if (name === undefined) this.subscribedAll = true;
    for (const n of names) {
      const client = await this.shim(n);
      if (client === undefined) {
        if (name !== undefined) throw await this.notRunning(n, 'subscribeEvents');
        continue;
      }
      await client.call(virtqProgram.name, 'subscribeEvents', { name: n, ...resume });
      this.pump(client);
    }
    return {};
  }

  private pump(client: RpcClient): void {
    if (this.pumped.has(client)) return;
    this.pumped.add(client);
    void (async () => {
      for await (const ev of client.events()) this.queue.push(ev);
    })();
  }

  private async create(args: ArgsOf<Procs['create']>): Promise<DomainRow> {
    const def = definitionValidator.parse(args.definition, 'definition');
    const reply = await this.launchShim(startRequestText(def, args.paused === true, undefined), def.name);
    if (this.subscribedAll) await this.subscribe(def.name).catch(() => undefined);
    const now = reply.reason === undefined ? await this.askState(def.name) : { state: reply.state, reason: reply.reason };
    return {
      name: def.name, uuid: reply.uuid, state: now.state, reason: now.reason, persistent: false, autostart: false, shimUp: true,
      shimSocket: reply.socket, shimPid: reply.shimPid,
      ...(reply.qemuPid === undefined ? {} : { qemuPid: reply.qemuPid }),
    };
  }

  // A shim whose ready line has no reason (one older than this library, given as shimCommand): the state
  // file may lag its reply, so ask the shim itself. A shim of this version says both in its ready line,
  // which it prints after cont; connecting to it right after cost 20-60 ms while it settles (session 18).
  private async askState(name: string): Promise<{ state: DomainState; reason: string }> {
    const client = await this.shim(name);
    if (client === undefined) throw await this.notRunning(name, 'create');
    return await client.call(virtqProgram.name, 'getState', { name }) as { state: DomainState; reason: string };
  }

  /** Every start's shim arguments, warm or cold: the start itself (paused or not) comes on stdin. */
  private shimArgs(): string[] {
    return ['--embed', '--root', this.opts.root, '--storage-uri', this.opts.storageUri, '--secret-uri', this.opts.secretUri, '--network-uri', this.opts.networkUri, '--definition', '-', '--start-request'];
  }

  // Runs `virtq-shim --embed` detached (the VM outlives this process) and waits for its ready line;
  // a start takes a warm shim when the pool has one, and the pool refills once it is over.
  private launchShim(request: string, name: string): Promise<ShimReady> {
    const [command, ...base] = this.opts.shimCommand;
    if (command === undefined) return Promise.reject(new VirtqError('INVALID_ARG', 'shimCommand is empty'));
    const wait = { name, clock: this.opts.clock, timeoutMs: this.opts.startTimeoutMs, logHint: `see ${join(this.opts.layout.log, `${name}.log`)}` };
    const warm = this.pool?.take(name);
    if (warm !== undefined) {
      const started = warm.shim.hand(request, wait);
      void started.finally(() => this.pool?.fill()).catch(() => undefined);
      return started;
    }
    return spawnShim({ command, args: [...base, ...this.shimArgs()], definition: request, stderr: 'ignore', env: withShimCodeCache(process.env, this.opts.layout), ...wait });
  }
}
