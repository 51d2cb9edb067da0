// The storage part of a chaos iteration (issue #13): virtstoraged and virtsecretd under the
// iteration's root, a seeded schedule of their operations run beside the VM schedule (its own
// random stream, so the VM schedule of a seed is the same with or without it), and faults of its
// own: kill -9 of either daemon at a random moment (often in the middle of a clone or a slow
// upload) and a client hanging up mid-upload or mid-clone. The invariants are in
// storage-invariants.ts.
import { join } from 'node:path';
import { rootLayout } from '../../protocol/index.js';
import { Rng } from './rng.js';
import { SecretOps } from './secret-ops.js';
import { SideDaemons, type SideDaemon } from './side-daemons.js';
import { StorageContext, SLOTS, type StorageHooks, type StorageOp, type StorageOpKind } from './storage-context.js';
import { StorageInvariants } from './storage-invariants.js';
import { secretdRestart, KiB } from './storage-model.js';
import { VolumeOps } from './storage-ops.js';
import { sleep, type QemuProc } from './world.js';

const STEP_WEIGHTS = { idle: 46, ops: 28, background: 8, killStoraged: 3, killSecretd: 2, hangUp: 5 };

const OP_WEIGHTS: Record<StorageOpKind, number> = {
  volCreate: 14, thinClone: 6, fullClone: 6, upload: 10, download: 5, resize: 5, volDelete: 6, refresh: 2, volList: 3,
  vmCreate: 5, vmDestroy: 4,
  secretDefine: 9, secretSet: 8, secretGet: 6, secretUndefine: 3, secretList: 2, secretBad: 2,
};

/** What is running when virtstoraged is killed (a clone or a slow upload, mostly). */
const MID_STORAGE: StorageOpKind[] = ['thinClone', 'fullClone', 'fullClone', 'upload', 'upload', 'volCreate', 'resize', 'volDelete', 'vmCreate'];
const MID_SECRET: StorageOpKind[] = ['secretDefine', 'secretSet', 'secretSet', 'secretUndefine', 'secretGet'];
const HANG_UP: StorageOpKind[] = ['upload', 'upload', 'thinClone', 'fullClone', 'secretSet'];

/** Runs the storage schedule of one iteration and checks it. */
export class StorageChaos {
  private readonly rng: Rng;
  private readonly side: SideDaemons;
  readonly ctx: StorageContext;
  private readonly volumes: VolumeOps;
  private readonly secrets: SecretOps;
  private readonly invariants: StorageInvariants;
  private values = 0;

  constructor(seed: number, root: string, private readonly hooks: StorageHooks) {
    this.rng = new Rng((seed ^ 0x5eed5707) >>> 0);
    this.side = new SideDaemons(root);
    const layout = rootLayout(root);
    this.ctx = new StorageContext(seed, this.side, hooks, join(layout.state, 'images'));
    this.volumes = new VolumeOps(this.ctx);
    this.secrets = new SecretOps(this.ctx);
    this.invariants = new StorageInvariants(this.ctx, layout.log);
  }

  /** Starts both daemons. */
  async start(): Promise<void> {
    await Promise.all([this.side.start('virtsecretd'), this.side.start('virtstoraged')]);
  }

  private drawOp(): StorageOp {
    const kind = this.rng.weighted(OP_WEIGHTS);
    const parts = Array.from({ length: this.rng.int(1, 3) }, (): [number, number, number] => [this.rng.int(0, 63) * 32 * KiB, this.rng.int(1, 64) * 4 * KiB, this.rng.int(0, 2 ** 30)]);
    const hangUp = this.rng.chance(0.1);
    const hangUpMs = this.rng.int(0, 60);
    this.values++;
    return {
      kind, idx: this.rng.int(0, 1000), idx2: this.rng.int(0, 1000), aim: this.rng.chance(0.8), format: this.rng.chance(0.5) ? 'raw' : 'qcow2',
      size: this.rng.int(0, 11), delta: this.rng.int(1, 16) * 64 * KiB, parts, flag: this.rng.chance(0.7),
      slowMs: this.rng.chance(0.5) ? this.rng.int(1, 12) : 0, hangUpMs: hangUp ? hangUpMs : undefined, slot: this.rng.int(0, SLOTS - 1),
      value: `vqchaos-${this.ctx.seed}-${this.values}-${this.rng.int(0, 2 ** 30).toString(36)}`,
    };
  }

  private run(op: StorageOp): Promise<void> {
    return op.kind.startsWith('secret') ? this.secrets.run(op) : this.volumes.run(op);
  }

  /** One step of the storage schedule (often none), run beside the VM step. */
  async step(): Promise<void> {
    const kind = this.rng.weighted(STEP_WEIGHTS);
    switch (kind) {
      case 'idle':
        return;
      case 'ops': {
        const ops = Array.from({ length: this.rng.int(1, 3) }, () => this.drawOp());
        const shared = this.rng.chance(0.5);
        const how = ops.map(() => ({ share: this.rng.chance(0.6), pick: this.rng.int(0, 1), asSource: this.rng.chance(0.5) }));
        // Concurrent calls on one name: often race the others on a volume (or secret) of the first.
        if (ops.length > 1 && shared) this.race(ops[0] as StorageOp, ops.slice(1), how.slice(1));
        await Promise.all(ops.map((o) => this.run(o)));
        return;
      }
      case 'background': {
        const n = this.rng.int(1, 2);
        for (let i = 0; i < n; i++) this.hooks.track(this.run(this.drawOp()));
        return;
      }
      case 'killStoraged':
        return this.kill('virtstoraged', MID_STORAGE);
      case 'killSecretd':
        return this.kill('virtsecretd', MID_SECRET);
      case 'hangUp': {
        const op = this.drawOp();
        op.kind = this.rng.pick(HANG_UP);
        op.hangUpMs = this.rng.int(0, 80);
        op.slowMs = this.rng.int(2, 12);
        this.hooks.count('faults', `client hang-up mid-${op.kind === 'upload' ? 'upload' : op.kind === 'secretSet' ? 'set-value' : 'clone'}`);
        await this.run(op);
        return;
      }
    }
  }

  private race(first: StorageOp, others: StorageOp[], how: Array<{ share: boolean; pick: number; asSource: boolean }>): void {
    const secret = (o: StorageOp): boolean => o.kind.startsWith('secret');
    const names = secret(first) ? [this.secrets.target(first)] : this.volumes.names(first);
    others.forEach((o, i) => {
      const h = how[i];
      if (h === undefined || !h.share || names.length === 0 || secret(o) !== secret(first)) return;
      const name = names[h.pick % names.length] as string;
      if (secret(o)) o.name = name;
      else VolumeOps.share(o, name, h.asSource);
    });
  }

  /** kill -9 of `d` `before` ms after starting 0–2 of its operations, restarted `down` ms later. */
  private async kill(d: SideDaemon, kinds: StorageOpKind[]): Promise<void> {
    const ops = Array.from({ length: this.rng.int(0, 2) }, () => this.drawOp());
    for (const o of ops) {
      o.kind = this.rng.pick(kinds);
      o.hangUpMs = undefined;
      if (o.kind === 'upload') o.slowMs = this.rng.int(2, 12);
    }
    const before = this.rng.int(0, 80);
    const down = this.rng.int(0, 250);
    const running = new Set<StorageOp>(ops);
    for (const o of ops) this.hooks.track(this.run(o).finally(() => running.delete(o)));
    await sleep(before);
    if (!this.side.up(d)) await this.restart(d);
    this.hooks.count('faults', `kill -9 ${d}`);
    const unanswered = new Set([...running].map((o) => (o.kind === 'upload' ? 'upload' : o.kind.endsWith('Clone') ? 'clone' : undefined)));
    // Counted apart too (a subset of the kills): the kills that met a transfer or a clone under way.
    if (unanswered.has('upload')) this.hooks.count('faults', `kill -9 ${d}, an upload unanswered`);
    if (unanswered.has('clone')) this.hooks.count('faults', `kill -9 ${d}, a clone unanswered`);
    const mid = [...running].map((o) => o.kind).join(', ');
    this.hooks.trace(`FAULT kill -9 ${d} ${before} ms after starting ${ops.length} calls (${mid === '' ? 'none still running' : `still running: ${mid}`}), restart in ${down} ms`);
    this.ctx.gen[d]++;
    await this.side.kill(d);
    if (d === 'virtsecretd') this.ctx.secrets.everywhere(secretdRestart);
    await sleep(down);
    await this.restart(d);
  }

  private async restart(d: SideDaemon): Promise<void> {
    try {
      await this.side.start(d);
    } catch (err) {
      this.hooks.violation(`${d} did not restart${this.hooks.diskFull() ? ' (disk full)' : ''}: ${(err as Error).message}`);
      await this.side.start(d);
    }
  }

  /** Both daemons up (before the iteration waits for the calls in flight). */
  async ensureUp(): Promise<void> {
    await Promise.all((['virtsecretd', 'virtstoraged'] as const).filter((d) => !this.side.up(d)).map((d) => this.restart(d)));
  }

  /** S1, after every step. */
  checkInUse(when: string, qemus: QemuProc[]): void {
    this.invariants.checkInUse(when, qemus);
  }

  /** S2–S5 once quiet; then both daemons killed and restarted, and S2–S5 again. */
  async checkAtEnd(convergeMs: number, qemus: () => QemuProc[]): Promise<void> {
    await this.invariants.checkAll('at the end', convergeMs, false);
    this.hooks.count('faults', 'kill -9 virtstoraged');
    this.hooks.count('faults', 'kill -9 virtsecretd');
    this.hooks.trace('FAULT kill -9 virtstoraged and virtsecretd (quiet), restart');
    for (const d of ['virtstoraged', 'virtsecretd'] as const) this.ctx.gen[d]++;
    await this.killDaemons();
    this.ctx.secrets.everywhere(secretdRestart);
    await this.ensureUp();
    await this.invariants.checkAll('after a restart', convergeMs, true);
    this.invariants.checkInUse('after a restart', qemus());
    for (const n of this.ctx.vols.notes.concat(this.ctx.secrets.notes)) this.hooks.note(`seed ${this.ctx.seed}: ${n}`);
  }

  /** kill -9 of both daemons, for the last check that nothing they started outlives them. */
  async killDaemons(): Promise<void> {
    await Promise.all([this.side.kill('virtstoraged'), this.side.kill('virtsecretd')]);
  }

  async dispose(): Promise<void> {
    await this.side.dispose();
  }
}
