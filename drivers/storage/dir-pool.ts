// One `dir` storage pool: a directory whose regular files are its volumes. Owns the pool's
// checks, its listing (qemu-img answers cached per file version), the per-volume busy marks
// that keep two changes of one volume apart, and recovery after a kill. Names starting with a
// dot are the driver's own temp files and never volumes.
import { createHash } from 'node:crypto';
import { chmod, mkdir, readdir, realpath, statfs, unlink } from 'node:fs/promises';
import type { BigIntStats } from 'node:fs';
import { tmpdir } from 'node:os';
import { isAbsolute, join, normalize } from 'node:path';
import { VirtqError } from '../../protocol/errors.js';
import { BusyMarks } from './busy-marks.js';
import { inspectImage, type ImageInfo } from './image-info.js';
import { fileVersion, InfoCache } from './info-cache.js';
import { FileCopier } from './file-copy.js';
import { checkEncryptedArgs } from './qemu-img-args.js';
import { QemuImg } from './qemu-img.js';
import { removeStaleSecretDirs, withSecretFile } from './secret-file.js';
import { openDownload } from './transfer.js';
import type { CloneMode, CreateVolumeSpec, RemovalGuard, DownloadOptions, OpControl, PoolConfig, PoolInfo, RecoverReport, ResizeOptions, StoragePool, UploadOptions, VolumeDownload, VolumeFormat, VolumeInfo } from './types.js';
import { describe, exists, fsError, fsyncPath, isTempName, TempNames } from './volume-files.js';
import { removeVolumeFile } from './volume-remove.js';
import { poolFsFor, threadPoolFs, type PoolFs } from './pool-fs.js';
import { resolveVolume, type ResolvedVolume } from './volume-lookup.js';
import { fileKind } from '../fs/file-kind.js';
import { checkCreateSpec, cloneVolumeFile, createSparseVolume, createVolumeFile, isSparseRaw, resizeVolumeFile, uploadVolumeFile, type OpsContext } from './volume-ops.js';
import { checkVolumeName } from './volume-name.js';
import { mapLimit } from './map-limit.js';

/** What a pool is given besides its configuration; every field has a production default. */
export interface DirPoolDeps {
  /** The qemu-img runner (default: `qemu-img` from PATH). */
  qemuImg?: QemuImg;
  /** What makes a full clone's byte copies (default: `cp` from PATH). */
  copier?: FileCopier;
  /** Where passphrase files live for the moment qemu-img needs them: a tmpfs (default: the OS temp dir). */
  secretDir?: string;
  /**
   * The format the daemon recorded for a volume when it made it, if any. A volume recorded raw is
   * never probed: a guest owns every byte of a raw image and could write a qcow2 header naming a
   * host file as its backing image; taking qemu-img's guess would then open that file.
   */
  recordedFormat?: (name: string) => VolumeFormat | undefined;
  /** How many `qemu-img info` run at once while listing (default 4). */
  inspectConcurrency?: number;
}

/** Mode of a pool directory `build()` creates: others may reach volumes they know, not list them. */
export const POOL_DIR_MODE = 0o711;

/**
 * Calls `ctl.onClaimed` (OpControl): its write, as a promise awaited later (after the file is
 * made), and handled from now on, so a rejection meanwhile is never an unhandled one.
 */
function claimed(ctl: Pick<OpControl, 'onClaimed'>): Promise<void> {
  const recorded = Promise.resolve(ctl.onClaimed?.());
  recorded.catch(() => undefined);
  return recorded;
}

/** A `dir` pool. One instance per pool; instances share nothing. */
export class DirPool implements StoragePool {
  readonly config: Readonly<PoolConfig>;
  private readonly qemuImg: QemuImg;
  private readonly secretDir: string;
  private readonly secretPrefix: string;
  private readonly concurrency: number;
  private readonly recordedFormat: ((name: string) => VolumeFormat | undefined) | undefined;
  private readonly cache = new InfoCache();
  private readonly busy: BusyMarks;
  private ops: OpsContext;
  /** The pool's metadata calls: direct on a local filesystem (pool-fs.ts), chosen per device of its directory. */
  private fs: PoolFs = threadPoolFs;
  private fsDev: bigint | undefined;
  /** Closes of deleted volumes' files under way (their blocks are freed by the close). */
  private readonly freeing = new Set<Promise<void>>();

  constructor(config: PoolConfig, deps: DirPoolDeps = {}) {
    if (config.type !== 'dir') throw new VirtqError('INVALID_ARG', `pool ${JSON.stringify(config.name)}: type ${JSON.stringify(config.type)} is not "dir"`, { details: { field: 'type' } });
    if (typeof config.path !== 'string' || !isAbsolute(config.path) || normalize(config.path) !== config.path || (config.path.endsWith('/') && config.path !== '/')) {
      throw new VirtqError('INVALID_ARG', `pool ${JSON.stringify(config.name)}: path must be an absolute, normalised directory path, got ${JSON.stringify(config.path)}`, { details: { field: 'path' } });
    }
    this.config = { ...config };
    this.qemuImg = deps.qemuImg ?? new QemuImg();
    this.secretDir = deps.secretDir ?? tmpdir();
    this.secretPrefix = `vq-secret-${createHash('sha256').update(config.path).digest('hex').slice(0, 12)}-`;
    this.concurrency = Math.max(1, deps.inspectConcurrency ?? 4);
    this.recordedFormat = deps.recordedFormat;
    this.busy = new BusyMarks(config.name);
    this.ops = {
      pool: config.name,
      dir: config.path,
      qemuImg: this.qemuImg,
      copier: deps.copier ?? new FileCopier(),
      fs: this.fs,
      tempName: new TempNames().next,
      withSecret: (passphrase, fn) => withSecretFile(this.secretDir, this.secretPrefix, passphrase, fn),
    };
  }

  private get label(): string {
    return `pool ${JSON.stringify(this.config.name)}`;
  }

  /**
   * Checks the pool's path is a directory (not a symlink, a file or a device). Throws
   * NO_STORAGE_POOL when it does not exist, INVALID_ARG when it is something else.
   */
  async check(): Promise<void> {
    await this.checked();
  }

  /** check(), returning the directory's lstat. */
  private async checked(): Promise<BigIntStats> {
    const path = this.config.path;
    let st;
    try {
      st = await this.fs.lstat(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new VirtqError('NO_STORAGE_POOL', `${this.label}: its directory ${path} does not exist; build the pool`, { cause: err });
      throw this.pathError(err, 'checking');
    }
    if (st.isSymbolicLink()) {
      const target = await realpath(path).catch(() => 'a missing target');
      throw new VirtqError('INVALID_ARG', `${this.label}: ${path} is a symlink (to ${target}); give the directory itself as the pool's path`, { details: { field: 'path' } });
    }
    if (!st.isDirectory()) throw new VirtqError('INVALID_ARG', `${this.label}: ${path} is ${fileKind(st)}, not a directory`, { details: { field: 'path' } });
    return st;
  }

  /** Creates the pool's directory (and its parents) with mode 0711 when missing, then checks it. */
  async build(): Promise<void> {
    try {
      if (!(await exists(this.config.path))) {
        await mkdir(this.config.path, { recursive: true, mode: POOL_DIR_MODE });
        await chmod(this.config.path, POOL_DIR_MODE); // whatever the umask
      }
    } catch (err) {
      throw this.pathError(err, 'building');
    }
    await this.check();
  }

  /** A filesystem error met on the pool's own path, typed: a path through a file is a bad path. */
  private pathError(err: unknown, doing: string): VirtqError {
    if ((err as NodeJS.ErrnoException).code === 'ENOTDIR') {
      return new VirtqError('INVALID_ARG', `${this.label}: ${this.config.path} goes through something that is not a directory; give a directory's path`, { details: { field: 'path' }, cause: err });
    }
    return fsError(err, { pool: this.config.name, name: '' }, `${doing} ${this.label}`);
  }

  /** Capacity, allocation and available bytes of the pool's filesystem. */
  async info(): Promise<PoolInfo> {
    await this.freed();
    await this.check();
    const s = await statfs(this.config.path);
    return { capacity: s.blocks * s.bsize, allocation: (s.blocks - s.bfree) * s.bsize, available: s.bavail * s.bsize };
  }

  /** Every volume, sorted by name: the regular files (and in-pool symlinks to one) with a valid name. */
  async list(): Promise<VolumeInfo[]> {
    return this.listIn(await this.realDir());
  }

  /** list() with the pool directory already checked and resolved (one lstat and realpath fewer). */
  private async listIn(realDir: string): Promise<VolumeInfo[]> {
    const names = (await this.fs.readdir(this.config.path)).filter((n) => !n.startsWith('.')).sort();
    const found = await mapLimit(names, this.concurrency, async (name) => {
      try {
        const vol = await this.resolveIn(realDir, name);
        return this.describeVolume(vol, await this.imageInfo(vol));
      } catch (err) {
        // Not a volume (a directory, a bad name, a symlink out of the pool) or gone meanwhile.
        if (err instanceof VirtqError && (err.code === 'INVALID_ARG' || err.code === 'NO_STORAGE_VOL')) return undefined;
        throw err;
      }
    });
    const volumes = found.filter((v): v is VolumeInfo => v !== undefined);
    this.cache.retainOnly(new Set(volumes.map((v) => v.name)));
    return volumes;
  }

  /** The absolute, resolved path a VM opens for volume `name`. */
  async path(name: string): Promise<string> {
    return (await this.resolve(name)).path;
  }

  /** What volume `name` is: format, sizes, backing chain, encryption. */
  async volumeInfo(name: string): Promise<VolumeInfo> {
    const vol = await this.resolve(name);
    return this.describeVolume(vol, await this.imageInfo(vol));
  }

  /** Creates a volume; ALREADY_EXISTS when anything has the name. */
  async create(spec: CreateVolumeSpec, ctl: Pick<OpControl, 'onClaimed'> = {}): Promise<VolumeInfo> {
    checkCreateSpec(spec);
    if (isSparseRaw(spec)) return this.createSparse(spec, ctl);
    const realDir = await this.realDir();
    return this.exclusive(spec.name, 'create', async () => {
      await this.refuseExisting(spec.name);
      if (spec.backing !== undefined && !(await exists(spec.backing.path, this.fs))) {
        throw new VirtqError('NO_STORAGE_VOL', `creating ${describe({ pool: this.config.name, name: spec.name })}: its backing image ${spec.backing.path} does not exist`, { details: { field: 'backing.path' } });
      }
      const recorded = claimed(ctl);
      const known = await this.keptIfRecorded(spec.name, createVolumeFile(this.ops, spec), recorded);
      return this.madeVolume(spec.name, known, realDir);
    });
  }

  /**
   * A plain raw volume (sparse-volume.ts): the link itself claims the name (ALREADY_EXISTS when it
   * is taken), and the rest a reply needs — `onClaimed` (the record's line), the pool's real path,
   * the new file's lstat — runs while the file's fsync does.
   */
  private async createSparse(spec: CreateVolumeSpec, ctl: Pick<OpControl, 'onClaimed'>): Promise<VolumeInfo> {
    await this.checkedFs();
    return this.exclusive(spec.name, 'create', () => createSparseVolume(this.ops, spec, async (known) => {
      const recorded = claimed(ctl);
      const made = await this.madeVolume(spec.name, known, await this.fs.realpath(this.config.path));
      await recorded; // a failure: createSparseVolume removes the volume, still under its busy mark
      return made;
    }));
  }

  /**
   * `made` (a create or clone that links its volume into place), then `recorded` (onClaimed's
   * write); when that fails, the new volume is removed while the caller still holds its busy mark,
   * so no clone of the new name can have started and keep it.
   */
  private async keptIfRecorded<T>(name: string, made: Promise<T>, recorded: Promise<void>): Promise<T> {
    const value = await made;
    try {
      await recorded;
    } catch (err) {
      await this.fs.unlink(join(this.config.path, name)).catch(() => undefined);
      throw err;
    }
    return value;
  }

  /** Clones `source` as `name`: `full` an independent copy, `thin` a qcow2 overlay of it. */
  async clone(source: string, name: string, options: { mode: CloneMode }, ctl: OpControl = {}): Promise<VolumeInfo> {
    checkVolumeName(name);
    await this.freed(); // a copy needs the space a delete just gave back
    const realDir = await this.realDir();
    const src = await this.resolveIn(realDir, source);
    // A volume cloned onto its own name already exists (before the busy marks could call it busy).
    if (source === name) await this.refuseExisting(name);
    // The source is marked read for the whole clone: an upload, resize or delete of it is refused meanwhile.
    return this.busy.reading(source, `clone of it to ${JSON.stringify(name)}`, () => this.exclusive(name, 'clone', async () => {
      await this.refuseExisting(name);
      const recorded = claimed(ctl);
      return this.madeVolume(name, await this.keptIfRecorded(name, cloneVolumeFile(this.ops, src, await this.imageInfo(src), name, options.mode, ctl), recorded), realDir);
    }));
  }

  /** Sets the capacity of `name`; below the current one only with `shrink`. */
  async resize(name: string, capacityBytes: number, options: ResizeOptions): Promise<VolumeInfo> {
    return this.exclusive(name, 'resize', async () => {
      const vol = await this.resolve(name);
      await resizeVolumeFile(this.ops, vol, await this.imageInfo(vol), capacityBytes, options);
      return this.volumeInfo(name);
    });
  }

  /**
   * Deletes `name`; IN_USE while another volume of the pool reads through it. Durable when it
   * resolves (the directory fsynced without the name); the file's blocks are freed just after
   * (see `freeAfter`), and info() waits for that. `guard` (when given, instead of `confirm`) is
   * handed the volume's resolved path and runs the removal, giving it its confirm: the volume is
   * resolved once for the lease check and the removal.
   */
  async delete(name: string, confirm?: () => Promise<void>, guard?: RemovalGuard, onGone?: () => void): Promise<void> {
    if (guard === undefined) {
      await this.exclusive(name, 'delete', async () => {
        const realDir = await this.realDir();
        await this.removeIn(realDir, await this.resolveIn(realDir, name), confirm, onGone);
      });
      return;
    }
    // Resolved before the busy mark, as a caller's path() was: the guard first refuses a change
    // of the volume under way naming it (an upload's), then the removal takes the mark.
    checkVolumeName(name);
    const realDir = await this.realDir();
    const vol = await this.resolveIn(realDir, name);
    await guard(vol.path, (c) => this.exclusive(name, 'delete', () => this.removeIn(realDir, vol, c, onGone)));
  }

  /** The removal of resolved `vol`, under its busy mark. */
  private async removeIn(realDir: string, vol: ResolvedVolume, confirm: (() => Promise<void>) | undefined, onGone: (() => void) | undefined): Promise<void> {
    await this.refuseBackingOf(vol, 'delete', realDir);
    await removeVolumeFile({ dir: this.config.path, fs: this.fs, tempName: this.ops.tempName, freeAfter: (f) => this.freeAfter(f) }, vol, confirm, onGone);
    this.cache.delete(vol.ref.name);
  }

  /** Resolves once the files of deleted volumes are freed. */
  private async freed(): Promise<void> {
    await Promise.all(this.freeing);
  }

  /** Tracks `freeing` (a close or unlink that frees a deleted file's blocks) without waiting; info() waits for every such one, so its free space is true. */
  private freeAfter(freeing: Promise<void>): void {
    const done: Promise<void> = freeing.catch(() => undefined).finally(() => this.freeing.delete(done));
    this.freeing.add(done);
  }

  /** Replaces the bytes of `name` with `data` (never longer than its capacity or its file); see UploadOptions. */
  async upload(name: string, data: AsyncIterable<Uint8Array>, ctl: OpControl = {}, options: UploadOptions = {}): Promise<VolumeInfo> {
    return this.exclusive(name, 'upload', async () => {
      const vol = await this.resolve(name);
      await this.refuseBackingOf(vol, 'upload to');
      await uploadVolumeFile(this.ops, vol, data, ctl, options, (await this.imageInfo(vol)).capacity);
      return this.volumeInfo(name);
    });
  }

  /** The bytes of `name`'s file, as it is now, in chunks, with progress. */
  async download(name: string, ctl: OpControl = {}, options: DownloadOptions = {}): Promise<VolumeDownload> {
    const vol = await this.resolve(name);
    try {
      return await openDownload(vol.path, `downloading ${describe(vol.ref)}`, ctl, options);
    } catch (err) {
      throw fsError(err, vol.ref, `downloading ${describe(vol.ref)}`);
    }
  }

  /** Resolves when `passphrase` unlocks encrypted volume `name`; INVALID_ARG when it does not. */
  async checkPassphrase(name: string, passphrase: Uint8Array): Promise<void> {
    const vol = await this.resolve(name);
    const info = await this.imageInfo(vol);
    if (!info.encrypted) throw new VirtqError('OPERATION_INVALID', `${describe(vol.ref)} is not encrypted`);
    const what = `unlocking ${describe(vol.ref)}`;
    await withSecretFile(this.secretDir, this.secretPrefix, passphrase, (secret) => this.qemuImg.run(checkEncryptedArgs(vol.path, info.format, secret), { what }));
  }

  /**
   * Removes what a killed process left: temp files in the pool's directory and this pool's
   * passphrase dirs. Call it when the daemon starts, before any operation on the pool.
   */
  async recover(): Promise<RecoverReport> {
    await this.check();
    const temps = (await readdir(this.config.path)).filter(isTempName);
    await Promise.all(temps.map((n) => unlink(join(this.config.path, n)).catch(() => undefined)));
    if (temps.length > 0) await fsyncPath(this.config.path);
    const secrets = await removeStaleSecretDirs(this.secretDir, this.secretPrefix);
    return { removed: [...temps, ...secrets] };
  }

  /** Checks the pool's directory and resolves its real path at once (one thread-pool round trip); the check's error wins. */
  private async realDir(): Promise<string> {
    const real = this.fs.realpath(this.config.path);
    real.catch(() => undefined); // awaited below unless the check fails first
    await this.checkedFs();
    return real;
  }

  /** Checks the pool's directory (as check()) and picks its calls' form for the device it is on. */
  private async checkedFs(): Promise<void> {
    const st = await this.checked();
    // Decided once per device the directory is on (a filesystem mounted over it later is seen at
    // the next operation's lstat).
    if (st.dev !== this.fsDev) await this.chooseFs(st.dev);
  }

  private async chooseFs(dev: bigint): Promise<void> {
    this.fs = await poolFsFor(this.config.path);
    this.fsDev = dev;
    this.ops = { ...this.ops, fs: this.fs };
  }

  private async resolve(name: string): Promise<ResolvedVolume> {
    checkVolumeName(name);
    return this.resolveIn(await this.realDir(), name);
  }

  /** resolve() in the pool directory already checked and resolved as `realDir` by this operation. */
  private resolveIn(realDir: string, name: string): Promise<ResolvedVolume> {
    return resolveVolume(this.config.name, this.config.path, realDir, name, this.fs);
  }

  /** The image info of `vol`, from the cache while its file is unchanged. */
  private async imageInfo(vol: ResolvedVolume): Promise<ImageInfo> {
    if (this.recordedFormat?.(vol.ref.name) === 'raw') return { format: 'raw', capacity: Number(vol.st.size), backingChain: [], encrypted: false };
    const version = fileVersion(vol.st);
    const cached = this.cache.get(vol.ref.name, version);
    if (cached !== undefined) return cached;
    let info: ImageInfo;
    try {
      info = await inspectImage(this.qemuImg, vol.path, `inspecting ${describe(vol.ref)}`);
    } catch (err) {
      if (!(err instanceof VirtqError) || err.code !== 'OPERATION_FAILED') throw err;
      info = { format: 'unknown', capacity: Number(vol.st.size), backingChain: [], encrypted: false, problem: err.message };
    }
    this.cache.set(vol.ref.name, version, info);
    return info;
  }

  /**
   * The info of a volume just made in `realDir` (resolved by the same operation: not checked
   * again), seeding the cache with what the maker knows it is.
   */
  private async madeVolume(name: string, known: ImageInfo | undefined, realDir: string): Promise<VolumeInfo> {
    const vol = await this.resolveIn(realDir, name);
    if (known !== undefined) this.cache.set(name, fileVersion(vol.st), known);
    return this.describeVolume(vol, await this.imageInfo(vol));
  }

  private describeVolume(vol: ResolvedVolume, info: ImageInfo): VolumeInfo {
    const out: VolumeInfo = {
      name: vol.ref.name, path: vol.path, format: info.format, capacity: info.capacity,
      allocation: Number(vol.st.blocks) * 512, backingChain: info.backingChain.map((b) => ({ ...b })), encrypted: info.encrypted,
    };
    if (info.problem !== undefined) out.problem = info.problem;
    return out;
  }

  private async refuseExisting(name: string): Promise<void> {
    if (await exists(join(this.config.path, name), this.fs)) {
      throw new VirtqError('ALREADY_EXISTS', `${describe({ pool: this.config.name, name })} already exists; delete it first or choose another name`);
    }
  }

  /** IN_USE when another volume of the pool has `vol` in its backing chain. */
  private async refuseBackingOf(vol: ResolvedVolume, action: string, realDir?: string): Promise<void> {
    const users = await this.backingUsers(vol, realDir ?? await this.realDir());
    if (users.length === 0) return;
    const names = users.map((u) => JSON.stringify(u)).join(', ');
    throw new VirtqError('IN_USE', `cannot ${action} ${describe(vol.ref)}: it is the backing image of ${names}; delete or flatten those first`, { details: { users } });
  }

  /**
   * The other volumes of the pool with `vol` in their backing chain, as a listing would find them.
   * A volume the daemon recorded raw has no chain (imageInfo never probes it), so it is passed
   * over without its lstat: a delete's check costs a call per qcow2 (or unknown) file only.
   */
  private async backingUsers(vol: ResolvedVolume, realDir: string): Promise<string[]> {
    const names = (await this.fs.readdir(this.config.path)).filter((n) => !n.startsWith('.') && n !== vol.ref.name && this.recordedFormat?.(n) !== 'raw');
    const users = await mapLimit(names, this.concurrency, async (name) => {
      try {
        const info = await this.imageInfo(await this.resolveIn(realDir, name));
        return info.backingChain.some((b) => b.path === vol.path) ? name : undefined;
      } catch (err) {
        // Not a volume (a directory, a bad name, a symlink out of the pool) or gone meanwhile, as in listIn.
        if (err instanceof VirtqError && (err.code === 'INVALID_ARG' || err.code === 'NO_STORAGE_VOL')) return undefined;
        throw err;
      }
    });
    return users.filter((u): u is string => u !== undefined).sort();
  }

  private exclusive<T>(name: string, op: string, fn: () => Promise<T>): Promise<T> {
    checkVolumeName(name);
    return this.busy.run(name, op, fn);
  }
}
