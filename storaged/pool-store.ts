// virtstoraged's pools: their definitions on disk (etc/storage/pools/NAME.json, written
// atomically), which of them are active (run/virtstoraged/active-pools.json, so a daemon killed
// and restarted brings back the pools that were running), and the driver pool of each active
// one. The default pool (lib/images) is defined, built and started on first start, as libvirt
// does.
import { mkdir, readFile, readdir, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { VirtqError, type Layout, type Logger, type PoolDefinition } from '../protocol/index.js';
import { writeFileAtomic, isTempName } from '../drivers/fs/atomic-file.js';
import type { StoragePool } from '../drivers/storage/types.js';

/** One pool as the daemon holds it. */
export interface PoolEntry {
  definition: PoolDefinition;
  autostart: boolean;
  /** The driver pool while the pool is active. */
  pool: StoragePool | undefined;
}

const NAME = /^[A-Za-z0-9_+][A-Za-z0-9._+-]{0,63}$/;

/** The pools of one virtstoraged. */
export class PoolStore {
  private readonly entries = new Map<string, PoolEntry>();
  private readonly dir: string;
  private readonly activeFile: string;

  constructor(private readonly layout: Layout, private readonly makePool: (def: PoolDefinition) => StoragePool, private readonly log: Logger) {
    this.dir = join(layout.config, 'storage', 'pools');
    this.activeFile = join(layout.runtime, 'virtstoraged', 'active-pools.json');
  }

  /** Loads the definitions, defines the default pool on first start, and starts what should run. */
  async load(): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o755 });
    for (const file of (await readdir(this.dir)).sort()) {
      if (!file.endsWith('.json') || isTempName(file)) continue;
      try {
        const saved = JSON.parse(await readFile(join(this.dir, file), 'utf8')) as { definition?: PoolDefinition; autostart?: unknown };
        const def = saved.definition;
        if (def === undefined || typeof def.name !== 'string' || !NAME.test(def.name) || `${def.name}.json` !== file || def.type !== 'dir' || typeof def.path !== 'string') throw new Error('not a pool definition');
        this.entries.set(def.name, { definition: def, autostart: saved.autostart === true, pool: undefined });
      } catch (err) {
        this.log.warn({ file, err, msgId: 'POOL_FILE_UNREADABLE' }, 'skipping an unreadable pool definition');
      }
    }
    const first = this.entries.size === 0 && !(await this.exists(join(this.dir, '.initialized')));
    if (first) {
      await this.save({ definition: { name: 'default', type: 'dir', path: join(this.layout.state, 'images') }, autostart: true, pool: undefined });
      await writeFileAtomic(join(this.dir, '.initialized'), '1\n', 0o644);
    }
    const wasActive = await this.readActive();
    for (const e of this.entries.values()) {
      if (!e.autostart && !wasActive.has(e.definition.name)) continue;
      await this.start(e.definition.name, first && e.definition.name === 'default').catch((err: unknown) => {
        this.log.error({ pool: e.definition.name, err, msgId: 'POOL_START_FAILED' }, 'cannot start pool');
      });
    }
  }

  /** Every pool, by name. */
  all(): PoolEntry[] {
    return [...this.entries.values()].sort((a, b) => a.definition.name.localeCompare(b.definition.name));
  }

  /** A pool; NO_STORAGE_POOL (details.state 'undefined') when there is none. */
  get(name: string): PoolEntry {
    const e = this.entries.get(name);
    if (e === undefined) throw new VirtqError('NO_STORAGE_POOL', `no storage pool named "${name}"`, { details: { pool: name, state: 'undefined' } });
    return e;
  }

  /** An active pool's driver; NO_STORAGE_POOL (details.state 'inactive') when it is not started. */
  active(name: string): StoragePool {
    const e = this.get(name);
    if (e.pool === undefined) throw new VirtqError('NO_STORAGE_POOL', `storage pool "${name}" is not active (start it with: virtq pool-start ${name})`, { details: { pool: name, state: 'inactive' } });
    return e.pool;
  }

  /** Defines a pool, or replaces an inactive pool's definition. */
  async define(def: PoolDefinition): Promise<PoolEntry> {
    const old = this.entries.get(def.name);
    if (old?.pool !== undefined) throw new VirtqError('OPERATION_INVALID', `storage pool "${def.name}" is active: stop it before redefining it`);
    for (const e of this.entries.values()) {
      if (e.definition.name !== def.name && e.definition.path === def.path) throw new VirtqError('ALREADY_EXISTS', `storage pool "${e.definition.name}" already uses ${def.path}`);
    }
    this.makePool(def); // checks the definition's shape (absolute, normalised path) before it is stored
    const entry: PoolEntry = { definition: def, autostart: old?.autostart ?? false, pool: undefined };
    await this.save(entry);
    return entry;
  }

  /** Forgets an inactive pool; its directory and volumes stay. */
  async undefine(name: string): Promise<void> {
    const e = this.get(name);
    if (e.pool !== undefined) throw new VirtqError('OPERATION_INVALID', `storage pool "${name}" is active: stop it (pool-destroy) before undefining it`);
    await unlink(join(this.dir, `${name}.json`)).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') throw new VirtqError('OPERATION_FAILED', `cannot remove the definition of pool "${name}": ${err.message}`);
    });
    this.entries.delete(name);
  }

  /** Starts a pool: checks (or with `build` makes) its directory and cleans what a killed daemon left. */
  async start(name: string, build: boolean): Promise<PoolEntry> {
    const e = this.get(name);
    if (e.pool !== undefined) return e;
    const pool = this.makePool(e.definition);
    if (build) await pool.build();
    await pool.check();
    const report = await pool.recover();
    if (report.removed.length > 0) this.log.info({ pool: name, removed: report.removed, msgId: 'POOL_RECOVERED' }, 'removed what an interrupted operation left');
    e.pool = pool;
    await this.writeActive();
    return e;
  }

  /** Stops a pool (the caller has checked that no VM uses its volumes). */
  async stop(name: string): Promise<PoolEntry> {
    const e = this.get(name);
    e.pool = undefined;
    await this.writeActive();
    return e;
  }

  /** Marks a pool to start with the daemon. */
  async setAutostart(name: string, autostart: boolean): Promise<void> {
    const e = this.get(name);
    await this.save({ ...e, autostart });
    e.autostart = autostart;
  }

  private async save(e: PoolEntry): Promise<void> {
    await writeFileAtomic(join(this.dir, `${e.definition.name}.json`), `${JSON.stringify({ format: 1, definition: e.definition, autostart: e.autostart })}\n`, 0o644);
    const existing = this.entries.get(e.definition.name);
    if (existing === undefined) this.entries.set(e.definition.name, e);
    else existing.definition = e.definition;
  }

  private async readActive(): Promise<Set<string>> {
    try {
      const names = JSON.parse(await readFile(this.activeFile, 'utf8')) as unknown;
      return new Set(Array.isArray(names) ? names.filter((n): n is string => typeof n === 'string') : []);
    } catch {
      return new Set();
    }
  }

  private async writeActive(): Promise<void> {
    await mkdir(join(this.layout.runtime, 'virtstoraged'), { recursive: true, mode: 0o755 });
    const names = this.all().filter((e) => e.pool !== undefined).map((e) => e.definition.name);
    await writeFileAtomic(this.activeFile, `${JSON.stringify(names)}\n`, 0o644);
  }

  private async exists(path: string): Promise<boolean> {
    return readFile(path).then(() => true, () => false);
  }
}
