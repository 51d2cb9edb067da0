// A VM's disks as QEMU needs them: a volume disk (`source: {pool, volume}`) becomes the path
// virtstoraged gives for it, and an encrypted disk's passphrase is fetched from virtsecretd and
// handed to QEMU in a 0600 file that lives only until QEMU has read it. The daemons are reached
// through the lookups given (the public clients); a daemon or pool that is not up yet is waited
// for until the deadline, then the error names what is missing.
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { OverlayVolumes } from './external-snapshot.js';
import { VirtqError, delay, type Clock, type NormalizedDefinition, type NormalizedDisk, type ResolvedDefinition, type ResolvedDisk } from '../../protocol/index.js';

/** What the resolver (and an external snapshot, for a volume disk's overlay) asks virtstoraged. */
export interface VolumeLookup extends OverlayVolumes {
  /** Where the volume is, its format, and for a LUKS volume the secret virtstoraged created it with. */
  volume(pool: string, volume: string): Promise<{ path: string; format: string; formatProbed: boolean; encrypted: boolean; secret?: string }>;
}

/** What the resolver asks virtsecretd. */
export interface SecretLookup {
  /** A secret's value for `consumer`; NO_SECRET when there is none. */
  value(uuid: string, consumer: { vm: string; purpose: string }): Promise<Uint8Array>;
  /** The secret whose usage is the volume `pool/volume`, if any (a LUKS volume's own passphrase). */
  forVolume(pool: string, volume: string): Promise<string | undefined>;
}

/** The passphrases of a VM's encrypted disks, as its Vm uses them. */
export type DiskSecrets = Pick<DiskResolver, 'withLaunchSecrets' | 'passphrase'>;

/** For a shim with no secret daemon: VMs start as long as none of their disks is encrypted. */
export function noSecretDaemon(vm: string): DiskSecrets {
  const refuse = (): never => { throw new VirtqError('NOT_SUPPORTED', `VM "${vm}" has encrypted disks and this shim has no secret daemon to ask`); };
  return {
    withLaunchSecrets: (def, launch) => (def.disks.some((d) => d.encryption !== undefined) ? refuse() : launch(new Map())),
    passphrase: async () => refuse(),
  };
}

/** Passphrase files for one launch. */
export interface LaunchSecrets {
  /** By disk target. */
  readonly files: ReadonlyMap<string, string>;
  /** Removes the files (QEMU has read them, or will never run). */
  cleanup(): Promise<void>;
}

/** What resolution is built from. */
export interface ResolverDeps {
  vm: string;
  clock: Clock;
  volumes: VolumeLookup;
  secrets: SecretLookup;
  /** A private directory (made 0700) for passphrase files. */
  secretDir: string;
  /** How long to wait for a daemon or pool that is not up yet. */
  waitMs: number;
}

/** Worth waiting for: a daemon not up yet, a pool defined but not started yet. */
function retryable(e: VirtqError): boolean {
  return e.code === 'NO_CONNECT' || (e.code === 'NO_STORAGE_POOL' && e.details?.['state'] === 'inactive');
}

/** Resolves one VM's disks. */
export class DiskResolver {
  constructor(private readonly d: ResolverDeps) {}

  /** Every disk of `def` resolved. */
  async definition(def: NormalizedDefinition): Promise<ResolvedDefinition> {
    const disks: ResolvedDisk[] = [];
    for (const disk of def.disks) disks.push(await this.disk(disk));
    return { ...def, disks };
  }

  /** One disk resolved: a path disk as it is, a volume disk with virtstoraged's path and format. */
  async disk(disk: NormalizedDisk): Promise<ResolvedDisk> {
    if (disk.path !== undefined) return { ...disk, path: disk.path };
    const source = disk.source;
    if (source === undefined) throw new VirtqError('INVALID_ARG', `disk ${disk.target}: give a path or a source`);
    const what = `disk ${disk.target} of VM "${this.d.vm}" (volume ${source.pool}/${source.volume})`;
    const vol = await this.waiting(what, () => this.d.volumes.volume(source.pool, source.volume));
    // A format virtstoraged only guessed from the file's bytes is not believed (a guest can write a
    // qcow2 header into a raw disk): the disk's own format counts, raw unless it says otherwise.
    const format = vol.formatProbed ? disk.format : vol.format;
    if (format !== 'raw' && format !== 'qcow2') throw new VirtqError('INVALID_ARG', `${what}: format ${format} is not supported (raw or qcow2)`);
    let encryption = disk.encryption ?? (vol.secret === undefined ? undefined : { secret: vol.secret });
    if (vol.encrypted && encryption === undefined) {
      const secret = await this.d.secrets.forVolume(source.pool, source.volume).catch(() => undefined);
      if (secret === undefined) {
        throw new VirtqError('INVALID_ARG', `${what} is LUKS-encrypted: give the disk "encryption": {"secret": UUID}, or define a secret with usage volume ${source.pool}/${source.volume}`);
      }
      encryption = { secret };
    }
    return { ...disk, path: vol.path, format, ...(encryption === undefined ? {} : { encryption }) };
  }

  /** The passphrase of an encrypted disk, from virtsecretd. */
  async passphrase(disk: ResolvedDisk): Promise<Uint8Array> {
    const uuid = disk.encryption?.secret;
    if (uuid === undefined) throw new VirtqError('INTERNAL', `disk ${disk.target} is not encrypted`);
    try {
      return await this.waiting(`the secret of disk ${disk.target}`, () => this.d.secrets.value(uuid, { vm: this.d.vm, purpose: `disk ${disk.target}` }));
    } catch (err) {
      const e = VirtqError.from(err);
      throw new VirtqError(e.code, `disk ${disk.target} of VM "${this.d.vm}" needs secret ${uuid}: ${e.message}`, { cause: err, details: { target: disk.target, secret: uuid } });
    }
  }

  /**
   * Runs `launch` with the passphrase file of each encrypted disk of `def` (0600, in a 0700
   * directory), removed once it settles: QEMU reads them at start-up, before it dials the monitor.
   */
  async withLaunchSecrets<T>(def: ResolvedDefinition, launch: (files: ReadonlyMap<string, string>) => Promise<T>): Promise<T> {
    const secrets = await this.launchSecrets(def);
    try {
      return await launch(secrets.files);
    } finally {
      await secrets.cleanup();
    }
  }

  /** Writes the passphrase file of each encrypted disk of `def` (0600, in a 0700 directory). */
  async launchSecrets(def: ResolvedDefinition): Promise<LaunchSecrets> {
    const encrypted = def.disks.filter((d) => d.encryption !== undefined);
    const dir = this.d.secretDir;
    const cleanup = (): Promise<void> => rm(dir, { recursive: true, force: true });
    if (encrypted.length === 0) return { files: new Map(), cleanup: async () => undefined };
    const files = new Map<string, string>();
    try {
      await mkdir(dir, { recursive: true, mode: 0o700 });
      for (const disk of encrypted) {
        const file = join(dir, `${disk.target}.key`);
        await writeFile(file, await this.passphrase(disk), { mode: 0o600, flag: 'w' });
        files.set(disk.target, file);
      }
    } catch (err) {
      await cleanup();
      throw err;
    }
    return { files, cleanup };
  }

  // Retries while the daemon or the pool is not up yet, until the deadline.
  private async waiting<T>(what: string, fn: () => Promise<T>): Promise<T> {
    const started = this.d.clock.monotonic();
    for (let wait = 50; ; wait = Math.min(wait * 2, 1000)) {
      try {
        return await fn();
      } catch (err) {
        const e = VirtqError.from(err);
        const left = this.d.waitMs - (this.d.clock.monotonic() - started);
        if (!retryable(e) || left <= 0) {
          const waited = retryable(e) && this.d.waitMs > 0 ? ` (waited ${Math.round(this.d.waitMs / 1000)} s)` : '';
          throw new VirtqError(e.code, `${what}: ${e.message}${waited}`, { cause: err, ...(e.details === undefined ? {} : { details: e.details }) });
        }
        await delay(this.d.clock, Math.min(wait, left));
      }
    }
  }
}
