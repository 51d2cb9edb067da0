// virtstoraged and virtsecretd as built binaries under one temporary root, with what the
// hostile-input tests must never lose: a volume of known bytes, the pool's definition file, a
// secret's metadata file and value. `intact()` asserts all of it and that both daemons serve.
// virtstoraged runs qemu-img and cp through wrappers that, while `slowMarker` exists, finish a
// `convert` or a copy (a full clone) and then hang: a clone that stays under way until it is cancelled.
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connectSecret, connectStorage, type SecretClient, type StorageClient } from '../../client/index.js';
import { isTempName } from '../../drivers/storage/volume-files.js';
import { RpcClient, VirtqError, systemClock } from '../../protocol/index.js';
import { ServiceHarness, type RunningProcess } from './service-harness.js';
import { tmpRoot } from './tmp-root.js';

export const MiB = 1024 * 1024;
/** The volume whose bytes must never change. */
export const KEEP = 'keep.raw';
/** The secret value that must never appear in a log. */
export const SECRET_VALUE = Buffer.from('hostile-suite passphrase 9c41e2 do-not-log');

/** One async chunk source of `bytes`, for uploads. */
export async function* chunks(bytes: Buffer, size = MiB): AsyncGenerator<Uint8Array> {
  for (let off = 0; off < bytes.length; off += size) yield bytes.subarray(off, off + size);
}

export const sha256 = (path: string): string => createHash('sha256').update(readFileSync(path)).digest('hex');

/** The typed error `call()` is refused with; fails the test when it is not refused. */
export async function refusal(call: () => Promise<unknown>): Promise<VirtqError> {
  try {
    await call();
  } catch (err) {
    if (err instanceof VirtqError) return err;
    throw new Error(`expected a VirtqError, got ${String(err)}`);
  }
  throw new Error('expected a refusal');
}

/** True while `pid` exists and is not a zombie. */
export function alive(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

/** Polls `check` every `every` ms until it holds or `ms` passes; returns its last result. */
export async function until(check: () => boolean | Promise<boolean>, ms = 10_000, every = 20): Promise<boolean> {
  const end = Date.now() + ms;
  for (;;) {
    if (await check()) return true;
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, every));
  }
}

/** The two daemons, their clients, and what must survive. */
export class StorageWorld {
  storaged!: RunningProcess;
  secretd!: RunningProcess;
  storage!: StorageClient;
  storageRo!: StorageClient;
  secret!: SecretClient;
  secretRo!: SecretClient;
  /** The default pool's directory. */
  readonly poolDir: string;
  readonly poolFile: string;
  poolBytes = '';
  keepSum = '';
  keepSecret = '';
  secretMetaFile = '';
  secretMetaBytes = '';
  /** Volume names the default pool must list, besides KEEP. */
  readonly expected = new Set<string>([KEEP]);
  /** While this file exists, a full clone hangs after copying (see the file's header). */
  readonly slowMarker: string;
  /** Written by the wrapper once a slow clone has copied everything. */
  readonly copiedMarker: string;

  private constructor(readonly h: ServiceHarness) {
    this.poolDir = join(h.layout.state, 'images');
    this.poolFile = join(h.layout.config, 'storage', 'pools', 'default.json');
    this.slowMarker = h.root.path('slow-convert');
    this.copiedMarker = h.root.path('convert-copied');
  }

  static async start(): Promise<StorageWorld> {
    const w = new StorageWorld(new ServiceHarness(tmpRoot('vq-sbi-')));
    const wrapper = w.h.root.path('qemu-img-wrapper');
    writeFileSync(wrapper, `#!/bin/sh
if [ "$1" = convert ] && [ -e ${w.slowMarker} ]; then qemu-img "$@" || exit $?; : > ${w.copiedMarker}; exec sleep 120; fi
exec qemu-img "$@"
`);
    chmodSync(wrapper, 0o755);
    const cpWrapper = w.h.root.path('cp-wrapper');
    writeFileSync(cpWrapper, `#!/bin/sh
if [ -e ${w.slowMarker} ]; then cp "$@" || exit $?; : > ${w.copiedMarker}; exec sleep 120; fi
exec cp "$@"
`);
    chmodSync(cpWrapper, 0o755);
    w.secretd = await w.h.start('virtsecretd', ['--log-filters', 'debug']);
    w.storaged = await w.h.start('virtstoraged', ['--log-filters', 'debug', '--qemu-img', wrapper, '--cp', cpWrapper]);
    w.storage = await connectStorage(w.h.uri('storage'));
    w.storageRo = await connectStorage(w.h.uri('storage', true));
    w.secret = await connectSecret(w.h.uri('secret'));
    w.secretRo = await connectSecret(w.h.uri('secret', true));
    await w.storage.api.createVolume({ pool: 'default', name: KEEP, capacity: MiB });
    const bytes = randomBytes(MiB);
    await w.storage.upload('default', KEEP, chunks(bytes), bytes.length);
    w.keepSum = sha256(join(w.poolDir, KEEP));
    w.poolBytes = readFileSync(w.poolFile, 'utf8');
    const s = await w.secret.api.defineSecret({ definition: { usage: { type: 'text', text: 'keep' }, description: 'must survive' } });
    await w.secret.api.setValue({ uuid: s.uuid, value: SECRET_VALUE });
    w.keepSecret = s.uuid;
    w.secretMetaFile = join(w.h.layout.state, 'secrets', `${s.uuid}.json`);
    w.secretMetaBytes = readFileSync(w.secretMetaFile, 'utf8');
    return w;
  }

  /** A raw connection to one of the daemons' sockets. */
  raw(daemon: 'virtstoraged' | 'virtsecretd', access: 'rw' | 'ro' | 'admin' = 'rw'): Promise<RpcClient> {
    return RpcClient.connect(this.h.sockets(daemon)[access], { clock: systemClock() });
  }

  /** Names of the default pool's volumes. */
  async volumes(): Promise<string[]> {
    return (await this.storage.api.listVolumes({ pool: 'default' })).volumes.map((v) => v.name).sort();
  }

  /** Temp files in `dir` (the default pool's directory unless given). */
  temps(dir = this.poolDir): string[] {
    return readdirSync(dir).filter(isTempName);
  }

  /** Writes `bytes` as a new file volume `name` in the default pool, bypassing the daemon. */
  plant(name: string, bytes: Buffer): string {
    const path = join(this.poolDir, name);
    writeFileSync(path, bytes, { mode: 0o600 });
    this.expected.add(name);
    return path;
  }

  /** Both daemons serve, nothing under way, and nothing was lost or left half-made. */
  async intact(): Promise<string[]> {
    const problems: string[] = [];
    const want = (ok: boolean, what: string): void => { if (!ok) problems.push(what); };
    want(alive(this.storaged.pid) && alive(this.secretd.pid), 'a daemon died');
    want(await until(async () => (await this.storage.api.listJobs({})).jobs.length === 0, 10_000), 'jobs still under way');
    want(JSON.stringify(await this.volumes()) === JSON.stringify([...this.expected].sort()), `volumes listed: ${JSON.stringify(await this.volumes())}`);
    want((await this.storageRo.api.getVolume({ pool: 'default', name: KEEP })).capacity === MiB, 'keep volume info');
    want(sha256(join(this.poolDir, KEEP)) === this.keepSum, 'keep volume bytes changed');
    want(this.temps().length === 0, `temp files left: ${this.temps().join(', ')}`);
    want(readFileSync(this.poolFile, 'utf8') === this.poolBytes, 'pool definition file changed');
    want((await this.storageRo.api.listPools({})).pools.some((p) => p.name === 'default' && p.state === 'active'), 'default pool not active');
    want(readFileSync(this.secretMetaFile, 'utf8') === this.secretMetaBytes, 'secret metadata file changed');
    want((await this.secretRo.api.getSecret({ uuid: this.keepSecret })).hasValue, 'secret lost its value');
    want(Buffer.from((await this.secret.api.getValue({ uuid: this.keepSecret })).value).equals(SECRET_VALUE), 'secret value changed');
    want(this.leakedSecret().length === 0, `secret value in a log: ${this.leakedSecret().join(', ')}`);
    return problems;
  }

  /** The daemon logs that contain the secret value (as text, base64 or hex). */
  leakedSecret(): string[] {
    const forms = [SECRET_VALUE.toString('utf8'), SECRET_VALUE.toString('base64'), SECRET_VALUE.toString('hex')];
    return ['virtstoraged', 'virtsecretd'].filter((d) => {
      const file = join(this.h.layout.log, `${d}.log`);
      const text = existsSync(file) ? readFileSync(file, 'utf8') : '';
      return forms.some((f) => text.includes(f));
    });
  }

  async stop(): Promise<void> {
    for (const c of [this.storage, this.storageRo, this.secret, this.secretRo]) c?.close();
    await this.h.cleanup();
  }
}
