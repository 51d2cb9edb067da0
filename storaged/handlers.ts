// virtstoraged's handlers: the `storage` program over the pool store and the driver's pools.
// Volumes a VM uses are protected through the lock manager (InUseGuard); long operations are
// jobs (progress, cancel); uploads and downloads move bytes over the call's stream.
import { VirtqError, type ByteStream, type CallContext, type Handlers, type Logger, type PoolRow, type StorageProgram, type VolumeRow } from '../protocol/index.js';
import type { StagedUpload, StoragePool, VolumeInfo } from '../drivers/storage/types.js';
import type { Jobs } from './jobs.js';
import type { InUseGuard } from './in-use.js';
import type { PoolEntry, PoolStore } from './pool-store.js';
import type { StorageMetrics } from './metrics.js';
import type { VolumeRecord, VolumeRecords } from './volume-records.js';
import { recordWhileMaking } from './record-while-making.js';

/** What the handlers work with. */
export interface StorageDeps {
  pools: PoolStore;
  jobs: Jobs;
  guard: InUseGuard;
  metrics: StorageMetrics;
  records: VolumeRecords;
  /** A secret's value from virtsecretd, for `purpose` (creating or opening a LUKS volume). */
  secretValue(uuid: string, purpose: string): Promise<Uint8Array>;
  log: Logger;
  /** PBKDF time per key slot of new LUKS volumes (undefined: QEMU's default). */
  luksIterTimeMs?: number | undefined;
}

// A pool's row. An active pool whose directory went away (or became a file) under the daemon
// fails getPool with the reason; in a listing (`listing`) it shows no space and no volumes
// rather than failing the whole list, so one broken pool does not hide every other.
async function poolRow(e: PoolEntry, listing = false): Promise<PoolRow> {
  const base = { name: e.definition.name, type: e.definition.type, path: e.definition.path, autostart: e.autostart };
  const empty = { capacity: 0, allocation: 0, available: 0, volumes: 0 };
  if (e.pool === undefined) return { ...base, state: 'inactive', ...empty };
  try {
    const [info, volumes] = await Promise.all([e.pool.info(), e.pool.list()]);
    return { ...base, state: 'active', ...info, volumes: volumes.length };
  } catch (err) {
    if (!listing) throw err;
    return { ...base, state: 'active', ...empty };
  }
}

/** Builds the storage program's handlers. */
export function storageHandlers(d: StorageDeps): Handlers<StorageProgram> {
  const { pools, jobs, guard, metrics } = d;
  const row = (pool: string, v: VolumeInfo): VolumeRow => {
    const { secret, format } = d.records.get(pool, v.name);
    return {
      pool, name: v.name, path: v.path, format: format ?? v.format, capacity: v.capacity, allocation: v.allocation, encrypted: v.encrypted,
      backingChain: v.backingChain.map((b) => ({ path: b.path, format: b.format })),
      ...(format === undefined ? { formatProbed: true } : {}),
      ...(secret === undefined ? {} : { secret }), ...(v.problem === undefined ? {} : { problem: v.problem }),
    };
  };
  const passphraseOf = async (pool: string, name: string, purpose: string): Promise<{ passphrase: Uint8Array } | undefined> => {
    const uuid = d.records.get(pool, name).secret;
    return uuid === undefined ? undefined : { passphrase: await d.secretValue(uuid, purpose) };
  };
  return {
    listPools: async () => ({ pools: await Promise.all(pools.all().map((e) => poolRow(e, true))) }),
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
      // A pool whose directory is gone or no longer a directory has no volumes a VM could open by name.
      const volumes = await pool.list().catch(async (err: unknown) => {
        if (await pool.check().then(() => true, () => false)) throw err;
        return [];
      });
      const users = await guard.users(volumes.map((v) => v.path), `stop storage pool "${name}"`);
      if (users.length > 0) throw new VirtqError('IN_USE', `storage pool "${name}" has volumes in use by ${users.map((u) => (u === 'a VM' ? u : `VM "${u}"`)).join(', ')}: stop those VMs first`, { details: { vms: users } });
      return poolRow(await pools.stop(name));
    },
    setPoolAutostart: async ({ name, autostart }) => { await pools.setAutostart(name, autostart); return {}; },
    refreshPool: ({ name }) => { pools.active(name); return poolRow(pools.get(name)); },
    listVolumes: async ({ pool }) => ({ volumes: (await pools.active(pool).list()).map((v) => row(pool, v)) }),
    getVolume: async ({ pool, name }) => {
      const v = await pools.active(pool).volumeInfo(name);
      // How a VM finds a volume's path: a just-created volume's record is on the disk before a
      // guest can write into it (record-while-making.ts, durability 'use').
      await d.records.settled(pool, name);
      return row(pool, v);
    },
    createVolume: ({ pool, name, format, capacity, backing, encryption }) => metrics.timed('create', async () => {
      const p = pools.active(pool);
      const base = backing === undefined ? undefined : await pools.active(backing.pool).volumeInfo(backing.name);
      const passphrase = encryption === undefined ? undefined : await d.secretValue(encryption.secret, `create volume ${pool}/${name}`);
      const f = format ?? (base !== undefined || passphrase !== undefined ? 'qcow2' : 'raw');
      const secret = encryption?.secret.toLowerCase();
      // What virtstoraged makes it as (the format asked for), recorded while the file is made; the
      // reply waits for the record's sync only when it names a secret (see RecordDurability).
      const v = await recordWhileMaking({ records: d.records, pool: p, poolName: pool, name, log: d.log }, { format: f, ...(secret === undefined ? {} : { secret }) }, (onClaimed) => p.create({
        name, format: f, capacityBytes: capacity,
        ...(base === undefined ? {} : { backing: { path: base.path, format: base.format } }),
        ...(passphrase === undefined ? {} : { encryption: { passphrase, ...(d.luksIterTimeMs === undefined ? {} : { iterTimeMs: d.luksIterTimeMs }) } }),
      }, { onClaimed }), secret === undefined ? 'use' : 'reply');
      // Written once the reply is on its way: a line is a write(2), and the caller waits for nothing it says.
      setImmediate(() => d.log.info({ pool, volume: name, format: v.format, capacity, msgId: 'VOLUME_CREATED' }, 'volume created'));
      return row(pool, v);
    }),
    cloneVolume: ({ pool, source, name, thin, job }, ctx) => metrics.timed('clone', () => jobs.run(ctx.client, job, { operation: 'clone', pool, volume: name }, async ({ signal, report }) => {
      const p = pools.active(pool);
      const from = d.records.get(pool, source);
      // The copy's format follows the source's record (a guess only for a file put there by hand).
      const format = thin === true ? 'qcow2' : (from.format ?? (await p.volumeInfo(source)).format) === 'qcow2' ? 'qcow2' : 'raw';
      // Recorded as what it was made from, never as what its bytes (the source's, guest-written)
      // look like; then described again, now that a raw copy is never probed.
      const v = await recordWhileMaking({ records: d.records, pool: p, poolName: pool, name, log: d.log }, { format, ...(from.secret === undefined ? {} : { secret: from.secret }) },
        (onClaimed) => p.clone(source, name, { mode: thin === true ? 'thin' : 'full' }, { signal, onProgress: report, onClaimed }));
      return row(pool, format === v.format ? v : await p.volumeInfo(name));
    })),
    resizeVolume: ({ pool, name, capacity, shrink }) => metrics.timed('resize', async () => {
      const p = pools.active(pool);
      const encryption = await passphraseOf(pool, name, `resize volume ${pool}/${name}`);
      const v = await guard.exclusive(await p.path(name), `resize volume ${pool}/${name}`, () => p.resize(name, capacity, { shrink: shrink === true, ...(encryption === undefined ? {} : { encryption }) }));
      return row(pool, v);
    }),
    deleteVolume: ({ pool, name }) => metrics.timed('delete', async () => {
      const p = pools.active(pool);
      // The pool resolves the volume once, for the lease check and the removal both. Once the
      // name is gone, its record is forgotten while the directory's fsync runs: best effort, so
      // a full disk cannot fail a delete that happened, and not waited for (two fsyncs, most of a
      // small delete's time). Writes are serialised and this one comes before the reply, so a
      // create of the name afterwards records after it; a record left by a kill names no file,
      // and one of a raw volume only ever keeps a file from being probed.
      let removed = (): void => undefined;
      const removal = new Promise<void>((resolve) => { removed = resolve; });
      const forget = (): void => void d.records.set(pool, name, undefined, removal).catch((err: unknown) => d.log.warn({ pool, volume: name, err, msgId: 'VOLUME_RECORD_NOT_WRITTEN' }, 'cannot forget the deleted volume\'s record'));
      await p.delete(name, undefined, (path, remove) => guard.removing(path, `delete volume ${pool}/${name}`, remove), forget).finally(removed);
      setImmediate(() => d.log.info({ pool, volume: name, msgId: 'VOLUME_DELETED' }, 'volume deleted')); // after the reply, as a create's
      return {};
    }),
    uploadVolume: async ({ pool, name, length }, ctx) => {
      const p = pools.active(pool);
      const path = await p.path(name);
      // Refused up front with a plain error while a VM uses it; held exclusively for the whole upload.
      await guard.check(path, `upload into volume ${pool}/${name}`);
      // Uploaded bytes may look like an image header: the record saying what the volume is must be on the disk first.
      await d.records.settled(pool, name);
      const stream = ctx.openStream();
      void finishUpload(d, ctx, stream, p, { pool, name, path, length });
      return {};
    },
    downloadVolume: async ({ pool, name }, ctx) => {
      // Each chunk is framed (copied) as soon as it is written to the stream, so its buffer is
      // free again by the next one (ServerClient copies what it holds back before the reply).
      const dl = await pools.active(pool).download(name, {}, { reuseBuffers: true });
      const stream = ctx.openStream();
      void sendDownload(d, ctx, stream, dl, { pool, name });
      return { length: dl.totalBytes };
    },
    listJobs: () => ({ jobs: jobs.list() }),
    cancelJob: ({ job }) => { jobs.cancel(job); return {}; },
  };
}

/**
 * The bytes of an upload stream. A stream the client ends with an error frame ends its iteration
 * like a clean end; without this check an error sent after the last byte committed the upload
 * the client had just abandoned.
 */
async function* uploadBytes(stream: ByteStream, v: { pool: string; name: string }): AsyncGenerator<Uint8Array> {
  for await (const chunk of stream) yield chunk;
  const e = stream.error;
  if (e !== undefined) throw new VirtqError('OPERATION_ABORTED', `the upload into ${v.pool}/${v.name} was ended by its client with an error (${String(e.code)}: ${String(e.message).slice(0, 200)}); the volume was not changed`);
}

// The upload's bytes arrive after the reply: the stream ends (done) once the volume holds them, or fails.
async function finishUpload(d: StorageDeps, ctx: CallContext, stream: ByteStream, p: StoragePool, v: { pool: string; name: string; path: string; length: number }): Promise<void> {
  try {
    await d.metrics.timed('upload', () => d.jobs.run(ctx.client, undefined, { operation: 'upload', pool: v.pool, volume: v.name }, ({ signal, report }) =>
      d.guard.exclusive(v.path, `upload into volume ${v.pool}/${v.name}`, async () => {
        // Uploaded bytes never make a volume qcow2 that was not made qcow2 (a raw volume stays raw
        // whatever header it now holds), but a qcow2 volume given bytes that are not an image is raw.
        // That change is on the disk before the bytes replace the volume's, as a line naming the new
        // file, and settled (by which file holds the name) once the upload ends, however it ends,
        // or at the next start after a kill (chaos seed 27278: written after the replacement, a
        // kill left raw bytes recorded qcow2). A line that cannot be written abandons the upload.
        const before = d.records.get(v.pool, v.name);
        let staged = false;
        const beforeCommit = before.format !== 'qcow2' ? undefined : async (upload: StagedUpload): Promise<void> => {
          if (upload.format === 'qcow2') return;
          staged = true;
          await d.records.set(v.pool, v.name, { ...before, replacedBy: { ino: upload.ino, format: 'raw' } });
        };
        try {
          await p.upload(v.name, uploadBytes(stream, v), { signal, onProgress: report }, { lengthBytes: v.length, recycle: (chunk) => stream.recycle(chunk), readInto: (sink) => stream.readInto(sink), ...(beforeCommit === undefined ? {} : { beforeCommit }) });
        } finally {
          // Should this line not reach the disk, the daemon answers from memory, the next line
          // written carries it, and the one before settles a restart meanwhile.
          if (staged) {
            await d.records.settleReplacement(v.pool, v.name, v.path)
              .catch((err: unknown) => d.log.warn({ pool: v.pool, volume: v.name, err, msgId: 'VOLUME_RECORD_NOT_WRITTEN' }, 'cannot record the uploaded volume\'s format'));
          }
        }
      })));
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
