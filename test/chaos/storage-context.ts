// What the storage part of a chaos iteration shares: the daemons, the models of volumes and
// secrets, pooled clients, the hooks into the iteration's report, and how a call's outcome is
// read (certain, or uncertain because the daemon died or the client hung up).
import { VirtqError, isErrorCode, type RpcClient } from '../../protocol/index.js';
import type { SecretClient } from '../../client/secret-client.js';
import type { StorageClient } from '../../client/storage-client.js';
import { PossibleStates } from './possible.js';
import type { SideDaemons } from './side-daemons.js';
import { secretKey, volKey, type SecretState, type VolState } from './storage-model.js';

/** How the storage part reports into the iteration. */
export interface StorageHooks {
  trace(line: string): void;
  violation(what: string): void;
  note(what: string): void;
  count(what: 'ops' | 'faults' | 'errors', key: string): void;
  /** A VM was told stopped (it counts as a recorded end for invariant 1). */
  stopAck(name: string): void;
  /** Background work the iteration waits for before its checks. */
  track(p: Promise<void>): void;
  /** A client of virtqemud. */
  virtq(): Promise<RpcClient>;
  diskFull(): boolean;
}

export type Outcome<T> =
  | { ok: true; value: T }
  | { ok: false; code: string; message: string; uncertain: boolean };

const UNCERTAIN = new Set(['CONNECTION_CLOSED', 'TIMEOUT']);

/** Runs `fn`, turning its error into an outcome. */
export async function attempt<T>(fn: () => Promise<T>): Promise<Outcome<T>> {
  try {
    return { ok: true, value: await fn() };
  } catch (err) {
    const e = VirtqError.from(err);
    return { ok: false, code: e.code, message: e.message, uncertain: UNCERTAIN.has(e.code) };
  }
}

/** What the model makes of an outcome; a call whose client hung up on purpose is never certain. */
export function modelOutcome(out: Outcome<unknown>, hungUp: boolean): 'ok' | 'failed' | 'unknown' {
  if (out.ok) return 'ok';
  return out.uncertain || hungUp ? 'unknown' : 'failed';
}

export const POOL = 'default';
export const SLOTS = 2;

/** The shared state of the storage part of one iteration. */
export class StorageContext {
  readonly vols = new PossibleStates<VolState>(volKey, 'none');
  readonly secrets = new PossibleStates<SecretState>(secretKey, 'none');
  /** Every secret value ever sent: none may appear in a log. */
  readonly values = new Set<string>();
  /** Running VMs on volumes, as last started here: VM name → volume. */
  readonly vms = new Map<string, string>();
  /**
   * Thin clones as made: overlay name → its file's inode and its source's, read right after the
   * clone answered. While the overlay is that file, its source must stay that file: a backing
   * file replaced or deleted under an overlay changes (or breaks) what the overlay's guest reads.
   */
  readonly overlays = new Map<string, { ino: number; source: string; sourceIno: number }>();
  /** How often each daemon was killed: a call that spans a kill saw a restart. */
  readonly gen = { virtstoraged: 0, virtsecretd: 0 };
  private readonly storageSlots: Array<StorageClient | undefined> = [];
  private readonly secretSlots: Array<SecretClient | undefined> = [];
  private readonly closed = new WeakSet<object>();

  constructor(readonly seed: number, readonly side: SideDaemons, readonly hooks: StorageHooks, readonly poolDir: string) {}

  /** A pooled virtstoraged client (reconnected when its connection died). */
  async storage(slot: number): Promise<StorageClient> {
    const c = this.storageSlots[slot];
    if (c !== undefined && !this.closed.has(c)) return c;
    const fresh = await this.watch(await this.side.storage());
    this.storageSlots[slot] = fresh;
    return fresh;
  }

  /** A pooled virtsecretd client. */
  async secret(slot: number): Promise<SecretClient> {
    const c = this.secretSlots[slot];
    if (c !== undefined && !this.closed.has(c)) return c;
    const fresh = await this.watch(await this.side.secret());
    this.secretSlots[slot] = fresh;
    return fresh;
  }

  private watch<C extends { conn: { closed: Promise<unknown> } }>(c: C): C {
    void c.conn.closed.then(() => this.closed.add(c), () => this.closed.add(c));
    return c;
  }

  /**
   * Counts an outcome; an error outside the catalogue (or INTERNAL) breaks an invariant. Others
   * than `usual`, and (for the daemons' own writes, `ownWrites`) a full disk not said as NO_SPACE,
   * are noted.
   */
  outcome(what: string, out: Outcome<unknown>, usual: ReadonlySet<string>, ownWrites = true): void {
    this.hooks.count('errors', out.ok ? 'ok' : out.code);
    if (out.ok) return;
    if (!isErrorCode(out.code) || out.code === 'INTERNAL') this.hooks.violation(`${what}: an error outside the catalogue's expected codes: ${out.code}: ${out.message}`);
    else if (!usual.has(out.code)) this.hooks.note(`seed ${this.seed}: ${what}: ${out.code}: ${out.message}`);
    else if (ownWrites && out.code !== 'NO_SPACE' && /no space left/i.test(out.message)) this.hooks.note(`seed ${this.seed}: ${what}: a full disk reported as ${out.code}, not NO_SPACE: ${out.message}`);
  }

  /** `ok` or `CODE: first line of the message`, for the trace. */
  static shown(out: Outcome<unknown>): string {
    return out.ok ? 'ok' : `${out.code}: ${out.message.split('\n')[0]?.slice(0, 160)}`;
  }
}

/** The storage operations chaos draws. */
export type StorageOpKind =
  | 'volCreate' | 'thinClone' | 'fullClone' | 'upload' | 'download' | 'resize' | 'volDelete' | 'refresh' | 'volList'
  | 'vmCreate' | 'vmDestroy'
  | 'secretDefine' | 'secretSet' | 'secretGet' | 'secretUndefine' | 'secretList' | 'secretBad';

/** What the summary calls each operation (virsh's names where there is one). */
export const OP_NAMES: Record<StorageOpKind, string> = {
  volCreate: 'vol-create', thinClone: 'vol-clone thin', fullClone: 'vol-clone full', upload: 'vol-upload', download: 'vol-download',
  resize: 'vol-resize', volDelete: 'vol-delete', refresh: 'pool-refresh', volList: 'vol-list', vmCreate: 'create on a volume', vmDestroy: 'destroy on a volume',
  secretDefine: 'secret-define', secretSet: 'secret-set-value', secretGet: 'secret-get-value', secretUndefine: 'secret-undefine', secretList: 'secret-list',
  secretBad: 'secret-set-value refused',
};

/** One drawn storage operation: every draw made up front, so a seed keeps its schedule. */
export interface StorageOp {
  kind: StorageOpKind;
  /** Picks the target among the names the operation can act on (or any name when `aim` is false). */
  idx: number;
  /** Picks a second name: a clone's source, a VM's volume. */
  idx2: number;
  aim: boolean;
  format: 'raw' | 'qcow2';
  /** A size choice (index into the size table) and a growth step. */
  size: number;
  delta: number;
  /** Extents of an upload: [offset, length, seed]. */
  parts: Array<[number, number, number]>;
  flag: boolean;
  /** Milliseconds between an upload's chunks (0: as fast as it goes). */
  slowMs: number;
  /** Hang up this long after the call starts. */
  hangUpMs: number | undefined;
  slot: number;
  /** A value to set (secrets). */
  value: string;
  /** The volume, VM or secret it acts on, once chosen (a batch may set it to race another call). */
  name?: string;
  /** A clone's source, a VM's volume, once chosen. */
  source?: string;
}
