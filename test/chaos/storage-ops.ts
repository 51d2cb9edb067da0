// The volume operations of a chaos iteration, through virtstoraged's public client: create (raw
// or qcow2), thin and full clone, upload of known content (slowly, so a kill or a hang-up can
// land in the middle), download compared with the model, resize, delete, pool refresh and list;
// and VMs on volumes through virtqemud (an idle guest), so that deletes meet LOCK_CONFLICT.
import { statSync } from 'node:fs';
import { join } from 'node:path';
import type { StorageClient } from '../../client/storage-client.js';
import type { DomainRow } from '../../protocol/index.js';
import { idleGuest } from '../helpers/test-guest.js';
import { probeBytes, why } from './image-probe.js';
import { POOL, StorageContext, attempt, modelOutcome, type Outcome, type StorageOp, OP_NAMES } from './storage-context.js';
import {
  KiB, MiB, cloneVol, contentBytes, contentHash, createVol, deleteVol, describeVol, resizeVol, uploadVol,
  type Content, type VolState,
} from './storage-model.js';
import type { Transition } from './possible.js';
import { sleep } from './world.js';

/** Volume names (the most volumes at once). */
export const VOLUMES = ['v0', 'v1', 'v2', 'v3', 'v4', 'v5'];
/** Names of the VMs on volumes. */
export const VOLUME_VMS = ['sv0', 'sv1'];
/** Sizes a volume is made with; growth stops at MAX_CAP. */
export const SIZES = [256 * KiB, 512 * KiB, MiB, 2 * MiB];
const MAX_CAP = 4 * MiB;
const UPLOAD_CHUNK = 256 * KiB;

/** Upload extents clipped to `cap`: what the bytes really are, so a later resize keeps them right. */
export function makeContent(cap: number, parts: Array<[number, number, number]>): Content {
  return { cap, parts: parts.filter(([at]) => at < cap).map(([at, len, seed]) => [at, Math.min(len, cap - at), seed]) };
}

const existing = (m: Map<string, VolState>): Array<Exclude<VolState, 'none'>> => [...m.values()].filter((s): s is Exclude<VolState, 'none'> => s !== 'none');

/** Runs volume and VM operations and feeds what they learn to the model. */
export class VolumeOps {
  private readonly kernel = idleGuest().kernel;

  constructor(private readonly ctx: StorageContext) {}

  private get model() {
    return this.ctx.vols;
  }

  /** A name the operation can act on: existing volumes, or free names to create. */
  private aim(op: StorageOp, idx: number, want: 'existing' | 'free'): string {
    if (!op.aim) return VOLUMES[idx % VOLUMES.length] as string;
    const names = VOLUMES.filter((n) => {
      const r = this.model.reachable(n);
      return want === 'free' ? existing(r).length === 0 : !r.has('"none"');
    });
    return names.length === 0 ? VOLUMES[idx % VOLUMES.length] as string : names[idx % names.length] as string;
  }

  /** The volume `op` acts on (a clone's new name), chosen once. */
  target(op: StorageOp): string {
    if (op.name !== undefined) return op.name;
    const inUse = [...this.ctx.vms.values()].sort();
    switch (op.kind) {
      case 'volCreate': case 'thinClone': case 'fullClone':
        op.name = this.aim(op, op.idx, 'free');
        break;
      case 'volDelete': case 'upload': case 'resize':
        // Often (a delete: most of the time) a volume a VM runs on: LOCK_CONFLICT.
        op.name = (op.kind === 'volDelete' ? op.flag : op.idx2 % 4 === 0) && inUse.length > 0 ? inUse[op.idx % inUse.length] as string : this.aim(op, op.idx, 'existing');
        break;
      default:
        op.name = this.aim(op, op.idx, 'existing');
    }
    return op.name;
  }

  /** A clone's source or a VM's volume, chosen once. */
  source(op: StorageOp): string {
    op.source ??= this.aim(op, op.idx2, 'existing');
    return op.source;
  }

  /** The volumes `op` names, chosen now (for a batch that makes other calls race on them). */
  names(op: StorageOp): string[] {
    switch (op.kind) {
      case 'thinClone': case 'fullClone': return [this.target(op), this.source(op)];
      case 'vmCreate': return [this.source(op)];
      case 'refresh': case 'volList': case 'vmDestroy': return [];
      default: return [this.target(op)];
    }
  }

  /** Makes `op` act on `volume`: its target, or (`asSource`) a clone's source or a VM's volume. */
  static share(op: StorageOp, volume: string, asSource: boolean): void {
    if (op.kind === 'vmCreate' || (asSource && (op.kind === 'thinClone' || op.kind === 'fullClone'))) op.source = volume;
    else op.name = volume;
  }

  /** A call on a pooled client, or on a fresh one that hangs up after `op.hangUpMs`. */
  private async call<T>(op: StorageOp, fn: (c: StorageClient) => Promise<T>): Promise<{ out: Outcome<T>; hungUp: boolean }> {
    let fresh: StorageClient | undefined;
    let timer: NodeJS.Timeout | undefined;
    const out = await attempt(async () => {
      let c: StorageClient;
      if (op.hangUpMs === undefined) {
        c = await this.ctx.storage(op.slot);
      } else {
        fresh = await this.ctx.side.storage();
        c = fresh;
        const f = fresh;
        timer = setTimeout(() => f.close(), op.hangUpMs);
      }
      return fn(c);
    });
    if (timer !== undefined) clearTimeout(timer);
    fresh?.close();
    return { out, hungUp: fresh !== undefined };
  }

  /** Runs a changing call as one model transition on `name`. */
  private async change<T>(op: StorageOp, what: string, name: string, t: Transition<VolState>, fn: (c: StorageClient) => Promise<T>, beforeEnd?: () => void): Promise<Outcome<T>> {
    const p = this.model.begin(name, t);
    const { out, hungUp } = await this.call(op, fn);
    beforeEnd?.();
    if (!this.model.end(p, modelOutcome(out, hungUp))) {
      this.ctx.hooks.violation(`${what} succeeded, which none of the states the model allows for ${name} permits (${[...this.model.reachable(name).values()].map(describeVol).join(' | ')})`);
    }
    this.done(op, what, out, hungUp);
    return out;
  }

  private done(op: StorageOp, what: string, out: Outcome<unknown>, hungUp: boolean): void {
    this.ctx.outcome(what, out, VOL_USUAL);
    this.ctx.hooks.trace(`${what}${hungUp ? ` (hang up after ${op.hangUpMs} ms)` : ''} → ${StorageContext.shown(out)}`);
  }

  async run(op: StorageOp): Promise<void> {
    this.ctx.hooks.count('ops', OP_NAMES[op.kind]);
    switch (op.kind) {
      case 'volCreate': {
        const name = this.target(op);
        const cap = SIZES[op.size % SIZES.length] as number;
        await this.change(op, `vol-create ${name} ${op.format} ${cap / KiB} KiB`, name, createVol(op.format, cap), (c) => c.api.createVolume({ pool: POOL, name, format: op.format, capacity: cap }));
        return;
      }
      case 'thinClone':
      case 'fullClone': {
        const thin = op.kind === 'thinClone';
        const source = this.source(op);
        const name = this.target(op);
        // The source as it may be when the clone reads it: from before the call to after it.
        const sources = existing(this.model.reachable(source));
        const widen = (): void => { sources.push(...existing(this.model.reachable(source))); };
        const out = await this.change(op, `vol-clone ${source} → ${name}${thin ? ' (thin)' : ''}`, name, (s) => cloneVol(sources, thin)(s), (c) => c.cloneVolume({ pool: POOL, source, name, thin }), widen);
        if (out.ok && thin) this.recordOverlay(name, source);
        return;
      }
      case 'upload':
        return this.upload(op);
      case 'download':
        return this.download(op);
      case 'resize': {
        const name = this.target(op);
        const base = Math.max(MiB, ...existing(this.model.reachable(name)).map((s) => s.c.cap));
        const cap = op.flag ? Math.min(base + op.delta, MAX_CAP) : Math.max(base - op.delta, 64 * KiB);
        await this.change(op, `vol-resize ${name} ${cap / KiB} KiB`, name, resizeVol(cap), (c) => c.api.resizeVolume({ pool: POOL, name, capacity: cap }));
        return;
      }
      case 'volDelete': {
        const name = this.target(op);
        await this.change(op, `vol-delete ${name}`, name, deleteVol, (c) => c.api.deleteVolume({ pool: POOL, name }));
        return;
      }
      case 'refresh': {
        const { out, hungUp } = await this.call(op, (c) => c.api.refreshPool({ name: POOL }));
        this.done(op, `pool-refresh ${POOL}`, out, hungUp);
        return;
      }
      case 'volList':
        return this.list(op);
      case 'vmCreate':
        return this.vmCreate(op);
      case 'vmDestroy':
        return this.vmDestroy(op);
      default:
        throw new Error(`not a volume operation: ${op.kind}`);
    }
  }

  private recordOverlay(name: string, source: string): void {
    try {
      this.ctx.overlays.set(name, { ino: statSync(join(this.ctx.poolDir, name)).ino, source, sourceIno: statSync(join(this.ctx.poolDir, source)).ino });
    } catch {
      // Already gone (deleted by a racing call): nothing to hold it to.
    }
  }

  private async upload(op: StorageOp): Promise<void> {
    const name = this.target(op);
    const raw = existing(this.model.reachable(name)).filter((s) => s.f === 'raw').map((s) => s.c.cap);
    // Mostly the whole volume; sometimes a drawn size (longer than the volume: refused).
    const len = op.flag && raw.length > 0 ? Math.min(...raw) : SIZES[op.size % SIZES.length] as number;
    const content = makeContent(len, op.parts);
    const bytes = contentBytes(content);
    const slowMs = op.slowMs;
    async function* chunks(): AsyncGenerator<Uint8Array> {
      for (let off = 0; off < bytes.length; off += UPLOAD_CHUNK) {
        yield bytes.subarray(off, off + UPLOAD_CHUNK);
        if (slowMs > 0) await sleep(slowMs);
      }
    }
    await this.change(op, `vol-upload ${name} ${len / KiB} KiB ${contentHash(content).slice(0, 12)}${slowMs > 0 ? ` (${slowMs} ms between chunks)` : ''}`, name, uploadVol(content), (c) => c.upload(POOL, name, chunks(), len));
  }

  private async download(op: StorageOp): Promise<void> {
    const name = this.target(op);
    const before = [...this.model.reachable(name).values()];
    const got: Buffer[] = [];
    const { out, hungUp } = await this.call(op, (c) => c.download(POOL, name, async (chunk) => { got.push(Buffer.from(chunk)); }));
    const states = [...before, ...this.model.reachable(name).values()];
    this.done(op, `vol-download ${name}`, out, hungUp);
    if (!out.ok) {
      if (out.code === 'NO_STORAGE_VOL' && !states.includes('none')) this.ctx.hooks.violation(`vol-download ${name}: NO_STORAGE_VOL, but the volume must exist (${states.map(describeVol).join(' | ')})`);
      return;
    }
    let probe;
    try {
      probe = await probeBytes(Buffer.concat(got));
    } catch (err) {
      this.ctx.hooks.violation(`vol-download ${name}: the downloaded bytes are no readable image: ${why(err)}`);
      return;
    }
    const fits = existing(new Map(states.map((s) => [JSON.stringify(s), s]))).some((s) => s.f === probe.format && s.c.cap === probe.capacity && contentHash(s.c) === probe.hash);
    if (!fits) this.ctx.hooks.violation(`vol-download ${name}: got ${probe.format} ${probe.capacity / KiB} KiB ${probe.hash.slice(0, 12)}, expected one of ${states.map(describeVol).join(' | ')}`);
  }

  private async list(op: StorageOp): Promise<void> {
    const before = new Map(VOLUMES.map((n) => [n, [...this.model.reachable(n).values()]]));
    const { out, hungUp } = await this.call(op, (c) => c.api.listVolumes({ pool: POOL }));
    this.done(op, 'vol-list', out, hungUp);
    if (!out.ok) return;
    const listed = new Set(out.value.volumes.map((v) => v.name));
    for (const n of listed) if (!VOLUMES.includes(n)) this.ctx.hooks.violation(`vol-list shows ${JSON.stringify(n)}, which no operation made`);
    for (const n of VOLUMES) {
      const states = [...(before.get(n) ?? []), ...this.model.reachable(n).values()];
      if (listed.has(n) && !states.some((s) => s !== 'none')) this.ctx.hooks.violation(`vol-list shows ${n}, which the model says cannot exist`);
      if (!listed.has(n) && !states.includes('none')) this.ctx.hooks.violation(`vol-list misses ${n}, which must exist (${states.map(describeVol).join(' | ')})`);
    }
  }

  private async vmCreate(op: StorageOp): Promise<void> {
    const free = VOLUME_VMS.filter((n) => !this.ctx.vms.has(n));
    const name = free.length === 0 ? VOLUME_VMS[op.idx % VOLUME_VMS.length] as string : free[op.idx % free.length] as string;
    const volume = this.source(op);
    const definition = {
      name, memoryMiB: 32, vcpus: 1, accel: 'tcg', kernel: { path: this.kernel },
      disks: [{ source: { pool: POOL, volume }, target: 'vda' }],
    };
    const out = await attempt(async () => {
      const c = await this.ctx.hooks.virtq();
      try {
        return await c.call('virtq', 'create', { definition }) as DomainRow;
      } finally {
        c.close();
      }
    });
    if (out.ok) this.ctx.vms.set(name, volume);
    this.ctx.outcome(`create ${name} on volume ${volume}`, out, VM_USUAL, false);
    this.ctx.hooks.trace(`create ${name} on volume ${volume} → ${StorageContext.shown(out)}`);
  }

  private async vmDestroy(op: StorageOp): Promise<void> {
    const name = VOLUME_VMS[op.idx % VOLUME_VMS.length] as string;
    const out = await attempt(async () => {
      const c = await this.ctx.hooks.virtq();
      try {
        return await c.call('virtq', 'destroy', { name, graceMs: 200 }) as DomainRow;
      } finally {
        c.close();
      }
    });
    if (out.ok || (!out.ok && out.code === 'NO_DOMAIN')) this.ctx.vms.delete(name);
    if (out.ok && (out.value.state === 'shutoff' || out.value.state === 'crashed')) this.ctx.hooks.stopAck(name);
    this.ctx.outcome(`destroy ${name}`, out, VM_USUAL, false);
    this.ctx.hooks.trace(`destroy ${name} (on volume) → ${StorageContext.shown(out)}`);
  }
}

/** Outcomes expected of volume operations under these faults; others are noted for a look. */
const VOL_USUAL: ReadonlySet<string> = new Set(['NO_STORAGE_VOL', 'ALREADY_EXISTS', 'IN_USE', 'LOCK_CONFLICT', 'INVALID_ARG', 'NO_SPACE', 'CONNECTION_CLOSED', 'NO_CONNECT', 'OPERATION_ABORTED']);
/** And of VMs on volumes (a shim killed while it starts fails the start: OPERATION_FAILED). */
const VM_USUAL: ReadonlySet<string> = new Set([...VOL_USUAL, 'NAME_IN_USE', 'NO_DOMAIN', 'OPERATION_INVALID', 'OPERATION_FAILED', 'SHIM_UNAVAILABLE']);
