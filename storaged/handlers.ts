// virtstoraged's handlers: the `storage` program over the pool store and the driver's pools.
// Volumes a VM uses are protected through the lock manager (InUseGuard); long operations are
// jobs (progress, cancel); uploads and downloads move bytes over the call's stream.
import { VirtqError, type ByteStream, type CallContext, type Handlers, type Logger, type PoolRow, type StorageProgram, type VolumeRow } from '../protocol/index.js';
import type { StoragePool, VolumeInfo } from '../drivers/storage/types.js';
import type { Jobs } from './jobs.js';
import type { InUseGuard } from './in-use.js';
import type { PoolEntry, PoolStore } from './pool-store.js';
import type { StorageMetrics } from './metrics.js';
import type { VolumeSecrets } from './volume-secrets.js';

/** What the handlers work with. */
export interface StorageDeps {
  pools: PoolStore;
  jobs: Jobs;
  guard: InUseGuard;
  metrics: StorageMetrics;
  volumeSecrets: VolumeSecrets;
  /** A secret's value from virtsecretd, for `purpose` (creating or opening a LUKS volume). */
  secretValue(uuid: string, purpose: string): Promise<Uint8Array>;
  log: Logger;
}

async function poolRow(e: PoolEntry): Promise<PoolRow> {
  const base = { name: e.definition.name, type: e.definition.type, path: e.definition.path, autostart: e.autostart };
  if (e.pool === undefined) return { ...base, state: 'inactive', capacity: 0, allocation: 0, available: 0, volumes: 0 };
  const [info, volumes] = await Promise.all([e.pool.info(), e.pool.list()]);
  return { ...base, state: 'active', ...info, volumes: volumes.length };
}

/** Builds the storage program's handlers. */
export function storageHandlers(d: StorageDeps): Handlers<StorageProgram> {
  const { pools, jobs, guard, metrics } = d;
  const row = (pool: string, v: VolumeInfo): VolumeRow => {
    const secret = d.volumeSecrets.get(pool, v.name);
    return {
      pool, name: v.name, path: v.path, format: v.format, capacity: v.capacity, allocation: v.allocation, encrypted: v.encrypted,
      backingChain: v.backingChain.map((b) => ({ path: b.path, format: b.format })),
      ...(secret === undefined ? {} : { secret }), ...(v.problem === undefined ? {} : { problem: v.problem }),
    };
  };
  const passphraseOf = async (pool: string, name: string, purpose: string): Promise<{ passphrase: Uint8Array } | undefined> => {
    const uuid = d.volumeSecrets.get(pool, name);
    return uuid === undefined ? undefined : { passphrase: await d.secretValue(uuid, purpose) };
  };
  return {
    listPools: async () => ({ pools: await Promise.all(pools.all().map(poolRow)) }),
    getPool: ({ name }) => poolRow(pools.get(name)),
    definePool: async ({ definition }) => {
      const e = await pools.define(definition);
      d.log.info({ pool: definition.name, path: definition.path, msgId: 'POOL_DEFINED' }, 'pool defined');
      return poolRow(e);
    },
    undefinePool: async ({ name }) => { await pools.undefine(name); return {}; },
    startPool: async ({ name, build }) => poolRow(await pools.start(name, build === true)),
    stopPool: async ({ name }) => {
      const pool = pools.active(name);
      const users = await guard.users((await pool.list()).map((v) => v.path));
      if (users.length > 0) throw new VirtqError('IN_USE', `storage pool "${name}" has volumes in use by ${users.map((u) => (u === 'a VM' ? u : `VM "${u}"`)).join(', ')}: stop those VMs first`, { details: { vms: users } });
      return poolRow(await pools.stop(name));
    },
    setPoolAutostart: async ({ name, autostart }) => { await pools.setAutostart(name, autostart); return {}; },
    refreshPool: ({ name }) => { pools.active(name); return poolRow(pools.get(name)); },
    listVolumes: async ({ pool }) => ({ volumes: (await pools.active(pool).list()).map((v) => row(pool, v)) }),
    getVolume: async ({ pool, name }) => row(pool, await pools.active(pool).volumeInfo(name)),
    createVolume: ({ pool, name, format, capacity, backing, encryption }) => metrics.timed('create', async () => {
      const p = pools.active(pool);
      const base = backing === undefined ? undefined : await pools.active(backing.pool).volumeInfo(backing.name);
      const passphrase = encryption === undefined ? undefined : await d.secretValue(encryption.secret, `create volume ${pool}/${name}`);
      const v = await p.create({
        name, format: format ?? (base !== undefined || passphrase !== undefined ? 'qcow2' : 'raw'), capacityBytes: capacity,
        ...(base === undefined ? {} : { backing: { path: base.path, format: base.format } }),
        ...(passphrase === undefined ? {} : { encryption: { passphrase } }),
      });
      if (encryption !== undefined) await d.volumeSecrets.set(pool, name, encryption.secret.toLowerCase());
      d.log.info({ pool, volume: name, format: v.format, capacity, msgId: 'VOLUME_CREATED' }, 'volume created');
      return row(pool, v);
    }),
    cloneVolume: ({ pool, source, name, thin, job }, ctx) => metrics.timed('clone', () => jobs.run(ctx.client, job, { operation: 'clone', pool, volume: name }, async ({ signal, report }) => {
      const v = await pools.active(pool).clone(source, name, { mode: thin === true ? 'thin' : 'full' }, { signal, onProgress: report });
      const secret = d.volumeSecrets.get(pool, source);
      if (secret !== undefined) await d.volumeSecrets.set(pool, name, secret);
      return row(pool, v);
    })),
    resizeVolume: ({ pool, name, capacity, shrink }) => metrics.timed('resize', async () => {
      const p = pools.active(pool);
      const encryption = await passphraseOf(pool, name, `resize volume ${pool}/${name}`);
      const v = await guard.exclusive(await p.path(name), `resize volume ${pool}/${name}`, () => p.resize(name, capacity, { shrink: shrink === true, ...(encryption === undefined ? {} : { encryption }) }));
      return row(pool, v);
    }),
    deleteVolume: ({ pool, name }) => metrics.timed('delete', async () => {
      const p = pools.active(pool);
      await guard.exclusive(await p.path(name), `delete volume ${pool}/${name}`, () => p.delete(name));
      // Written only for a volume that had a secret: the volume is gone, and a full disk must not make its delete fail.
      if (d.volumeSecrets.get(pool, name) !== undefined) await d.volumeSecrets.set(pool, name, undefined);
      d.log.info({ pool, volume: name, msgId: 'VOLUME_DELETED' }, 'volume deleted');
      return {};
    }),
    uploadVolume: async ({ pool, name, length }, ctx) => {
      const p = pools.active(pool);
      const path = await p.path(name);
      // Refused up front with a plain error while a VM uses it; held exclusively for the whole upload.
      await guard.exclusive(path, `upload into volume ${pool}/${name}`, async () => undefined);
      const stream = ctx.openStream();
      void finishUpload(d, ctx, stream, p, { pool, name, path, length });
      return {};
    },
    downloadVolume: async ({ pool, name }, ctx) => {
      const dl = await pools.active(pool).download(name);
      const stream = ctx.openStream();
      void sendDownload(d, ctx, stream, dl, { pool, name });
      return { length: dl.totalBytes };
    },
    listJobs: () => ({ jobs: jobs.list() }),
    cancelJob: ({ job }) => { jobs.cancel(job); return {}; },
  };
}

// The upload's bytes arrive after the reply: the stream ends (done) once the volume holds them, or fails.
async function finishUpload(d: StorageDeps, ctx: CallContext, stream: ByteStream, p: StoragePool, v: { pool: string; name: string; path: string; length: number }): Promise<void> {
  try {
    await d.metrics.timed('upload', () => d.jobs.run(ctx.client, undefined, { operation: 'upload', pool: v.pool, volume: v.name }, ({ signal, report }) =>
      d.guard.exclusive(v.path, `upload into volume ${v.pool}/${v.name}`, () => p.upload(v.name, stream, { signal, onProgress: report }, { lengthBytes: v.length }))));
    d.metrics.transferred('in', v.length);
    d.log.info({ pool: v.pool, volume: v.name, bytes: v.length, msgId: 'VOLUME_UPLOADED' }, 'volume uploaded');
    stream.end();
  } catch (err) {
    const e = VirtqError.from(err);
    d.log.info({ pool: v.pool, volume: v.name, code: e.code, msgId: 'VOLUME_UPLOAD_FAILED' }, e.message);
    stream.fail(e);
  }
}

async function sendDownload(d: StorageDeps, ctx: CallContext, stream: ByteStream, dl: AsyncIterable<Uint8Array> & { totalBytes: number; close(): Promise<void> }, v: { pool: string; name: string }): Promise<void> {
  let sent = 0;
  try {
    await d.metrics.timed('download', () => d.jobs.run(ctx.client, undefined, { operation: 'download', pool: v.pool, volume: v.name }, async ({ signal, report }) => {
      for await (const chunk of dl) {
        if (stream.ended || signal.aborted) throw new VirtqError('OPERATION_ABORTED', `the download of ${v.pool}/${v.name} was cancelled by its client`);
        stream.write(chunk);
        sent += chunk.length;
        report(sent, dl.totalBytes);
        await stream.drain();
      }
    }));
    stream.end();
  } catch (err) {
    stream.fail(VirtqError.from(err));
  } finally {
    d.metrics.transferred('out', sent);
    await dl.close().catch(() => undefined);
  }
}
