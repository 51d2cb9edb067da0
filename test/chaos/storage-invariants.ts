// The storage invariants of a chaos iteration:
//   S1. no live QEMU holds a volume file that was deleted or replaced under it (after every step);
//   S2. every volume the model says exists exists, with the format and guest-visible bytes of a
//       state the model allows; none exists that the model does not know; virtstoraged lists
//       exactly the volume files; after a restart no temp (`.`) file is left in the pool dir;
//   S3. every secret holds the value last set (or is gone when undefined, or ephemeral across a
//       restart), and virtsecretd lists exactly the secrets the model allows;
//   S4. no secret value (as text, base64, hex or a byte list) appears in any log under the root
//       or on the daemons' stderr;
//   S5. both daemons answer once the schedule is over.
// S2 and S3 are given the convergence bound the VM listing gets.
import { readFileSync, readdirSync, readlinkSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { probeImage, why } from './image-probe.js';
import { SecretOps, SECRETS } from './secret-ops.js';
import { POOL, type StorageContext, type StorageOp } from './storage-context.js';
import { VOLUMES } from './storage-ops.js';
import { contentHash, describeVol, type VolState } from './storage-model.js';
import { sleep } from './world.js';

/** Every way a value may be written out by mistake. */
export function encodings(value: string): string[] {
  const bytes = [...Buffer.from(value)];
  return [value, Buffer.from(value).toString('base64'), Buffer.from(value).toString('hex'), bytes.join(','), bytes.join(', '), bytes.slice(0, 8).map((b, i) => `"${i}":${b}`).join(',')];
}

function inode(path: string): number | undefined {
  try {
    return statSync(path).ino;
  } catch {
    return undefined;
  }
}

function filesUnder(dir: string): string[] {
  let out: string[] = [];
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch {
    return out;
  }
  for (const e of entries) {
    const p = join(dir, e);
    try {
      if (statSync(p).isDirectory()) out = out.concat(filesUnder(p));
      else out.push(p);
    } catch {
      // gone
    }
  }
  return out;
}

/** How the final checks read a value: the pooled client, never hanging up. */
const READ: StorageOp = { kind: 'secretGet', idx: 0, idx2: 0, aim: false, format: 'raw', size: 0, delta: 0, parts: [], flag: true, slowMs: 0, hangUpMs: undefined, slot: 0, value: '' };

/** The storage invariants of one iteration. */
export class StorageInvariants {
  private readonly reported = new Set<string>();

  constructor(private readonly ctx: StorageContext, private readonly logDir: string) {}

  private v(what: string): void {
    this.ctx.hooks.violation(what);
  }

  /** S1, for the live QEMUs of the root. */
  checkInUse(when: string, qemus: Array<{ pid: number; name: string }>): void {
    for (const q of qemus) {
      let fds: string[];
      try {
        fds = readdirSync(`/proc/${q.pid}/fd`);
      } catch {
        continue;
      }
      for (const fd of fds) {
        let target: string;
        try {
          target = readlinkSync(`/proc/${q.pid}/fd/${fd}`);
        } catch {
          continue;
        }
        if (!target.startsWith(`${this.ctx.poolDir}/`) || !target.endsWith(' (deleted)')) continue;
        const key = `${q.pid} ${target}`;
        if (this.reported.has(key)) continue;
        this.reported.add(key);
        this.v(`${when}: the QEMU of ${q.name} (pid ${q.pid}) runs on ${target}: a volume was deleted or replaced under a running VM`);
      }
    }
  }

  /** S2 to S5, each given `convergeMs` to hold. */
  async checkAll(when: string, convergeMs: number, afterRestart: boolean): Promise<void> {
    await this.converge(`volumes ${when}`, convergeMs, () => this.volumeProblems(afterRestart));
    await this.converge(`secrets ${when}`, convergeMs, () => this.secretProblems());
    for (const p of this.logProblems()) this.v(`${when}: ${p}`);
  }

  private async converge(what: string, convergeMs: number, problems: () => Promise<string[]>): Promise<void> {
    const start = Date.now();
    for (let round = 0; ; round++) {
      const found = await problems();
      if (found.length === 0) {
        this.ctx.hooks.trace(`${what}: as the model allows, in ${Date.now() - start} ms`);
        return;
      }
      if (round === 0) this.ctx.hooks.trace(`${what}: not yet: ${found.join('; ')}`);
      if (Date.now() - start > convergeMs) {
        for (const p of found) this.v(`${what} (within ${convergeMs} ms): ${p}`);
        return;
      }
      await sleep(250);
    }
  }

  private possible(name: string, all: Map<string, Map<string, VolState>>): VolState[] {
    return [...(all.get(name)?.values() ?? ['none' as const])];
  }

  async volumeProblems(afterRestart: boolean): Promise<string[]> {
    const problems: string[] = [];
    const files = readdirSync(this.ctx.poolDir);
    if (afterRestart) for (const f of files.filter((n) => n.startsWith('.'))) problems.push(`temp file ${f} is still in the pool dir after a restart of virtstoraged`);
    const onDisk = new Set(files.filter((n) => !n.startsWith('.')));
    for (const f of onDisk) if (!VOLUMES.includes(f)) problems.push(`a file ${f} is in the pool dir, which no operation made`);
    let listed: Map<string, string>;
    try {
      const c = await this.ctx.storage(0);
      listed = new Map((await c.api.listVolumes({ pool: POOL })).volumes.map((r) => [r.name, r.format]));
    } catch (err) {
      return [...problems, `virtstoraged does not list the pool: ${(err as Error).message}`];
    }
    const all = new Map(this.ctx.vols.all());
    const each = await Promise.all(VOLUMES.map((name) => this.volumeProblem(name, this.possible(name, all), onDisk.has(name), listed.get(name))));
    return [...problems, ...each.flat()];
  }

  private async volumeProblem(name: string, states: VolState[], onDisk: boolean, listedAs: string | undefined): Promise<string[]> {
    const problems: string[] = [];
    const shown = states.map(describeVol).join(' | ');
    if (onDisk !== (listedAs !== undefined)) problems.push(`${name} is ${onDisk ? '' : 'not '}in the pool dir but virtstoraged ${listedAs !== undefined ? 'lists' : 'does not list'} it`);
    if (!onDisk) {
      if (!states.includes('none')) problems.push(`volume ${name} is lost (expected ${shown})`);
      return problems;
    }
    let probe;
    try {
      probe = await probeImage(join(this.ctx.poolDir, name));
    } catch (err) {
      return [...problems, `volume ${name} cannot be read: ${why(err)} (expected ${shown})`];
    }
    const seen = `${probe.format} ${probe.capacity / 1024} KiB ${probe.hash.slice(0, 12)}`;
    if (!states.some((s) => s !== 'none' && s.f === probe.format && s.c.cap === probe.capacity && contentHash(s.c) === probe.hash)) {
      problems.push(`volume ${name} is ${seen}, none of what the model allows (${shown})`);
    }
    if (listedAs !== undefined && listedAs !== probe.format) problems.push(`virtstoraged lists ${name} as ${listedAs}, qemu-img reads ${probe.format}`);
    const overlay = this.ctx.overlays.get(name);
    if (overlay !== undefined && inode(join(this.ctx.poolDir, name)) === overlay.ino && inode(join(this.ctx.poolDir, overlay.source)) !== overlay.sourceIno) {
      problems.push(`thin clone ${name} reads through ${overlay.source}, which was replaced or deleted after the clone was made`);
    }
    return problems;
  }

  async secretProblems(): Promise<string[]> {
    const problems: string[] = [];
    let listed: Set<string>;
    try {
      const c = await this.ctx.secret(0);
      listed = new Set((await c.api.listSecrets({})).secrets.map((s) => s.uuid));
    } catch (err) {
      return [`virtsecretd does not list its secrets: ${(err as Error).message}`];
    }
    const all = new Map(this.ctx.secrets.all());
    for (const u of listed) if (!SECRETS.includes(u)) problems.push(`secret ${u} exists, which was never defined`);
    const reads = new SecretOps(this.ctx);
    for (const uuid of SECRETS) {
      const states = [...(all.get(uuid)?.values() ?? ['none' as const])];
      if (listed.has(uuid) && !states.some((s) => s !== 'none')) problems.push(`secret ${uuid} is listed; the model says it cannot exist`);
      if (!listed.has(uuid) && !states.includes('none')) problems.push(`secret ${uuid} is lost (expected ${states.map((s) => JSON.stringify(s)).join(' | ')})`);
      // useValue reads every defined secret's value (getValue would refuse the private ones).
      const problem = await reads.read(READ, uuid, true, true);
      if (problem !== undefined) problems.push(problem);
    }
    return problems;
  }

  /** S4: every value, in every encoding, searched in every log file and in the daemons' stderr. */
  logProblems(): string[] {
    const problems: string[] = [];
    const texts: Array<[string, string]> = filesUnder(this.logDir).map((f) => [f, readFileSync(f, 'latin1')]);
    for (const [d, text] of Object.entries(this.ctx.side.stderr)) texts.push([`${d}'s stderr`, text]);
    for (const value of this.ctx.values) {
      for (const enc of encodings(value)) {
        for (const [where, text] of texts) if (text.includes(enc)) problems.push(`secret value ${value} appears in ${where}${enc === value ? '' : ` (as ${enc})`}`);
      }
    }
    return problems;
  }
}
