// virtstoraged as a daemon of the framework: pools under its layout (the default pool in
// lib/images), the lock manager of the same root (to know which volumes VMs use), virtsecretd
// for LUKS passphrases (reached through its public client, like any application), and the
// `storage` program's handlers.
import { mkdir } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { storageProgram } from '../protocol/index.js';
import { served, type ServiceDefinition } from '../daemon/run-service.js';
import { LineLogHub } from '../daemon/line-log.js';
import { stringOption, wholeNumber } from '../daemon/options.js';
import { connectSecret } from '../client/secret-client.js';
import { builtinLockPlugins } from '../drivers/lock/builtin.js';
import { loadLockManager } from '../drivers/lock/loader.js';
import { DirPool } from '../drivers/storage/dir-pool.js';
import { FileCopier } from '../drivers/storage/file-copy.js';
import { QemuImg } from '../drivers/storage/qemu-img.js';
import { storageHandlers } from './handlers.js';
import { procLocksProbeFor } from '../drivers/lock/proc-locks.js';
import { InUseGuard } from './in-use.js';
import { Jobs } from './jobs.js';
import { StorageMetrics } from './metrics.js';
import { PoolStore } from './pool-store.js';
import { VolumeRecords } from './volume-records.js';

/** virtstoraged's own options. */
export interface StoragedOptions {
  /** virtsecretd, for encrypted volumes (default: the one of the same root or mode). */
  secretUri: string | undefined;
  /** The qemu-img binary (default: qemu-img from PATH). */
  qemuImg: string | undefined;
  /** The cp binary full clones copy with (default: cp from PATH). */
  cp: string | undefined;
  /** PBKDF time per key slot of new LUKS volumes (QEMU's encrypt.iter-time); undefined: QEMU's 2000 ms. */
  luksIterTimeMs: number | undefined;
}

function secretBeside(root: string | undefined, mode: 'system' | 'session'): string {
  return root === undefined ? `secret:///${mode}` : `secret:///system?root=${root}`;
}

/** virtstoraged, defined for the framework. */
export function storagedService(version: string): ServiceDefinition<StoragedOptions> {
  return {
    daemon: 'virtstoraged',
    version,
    makeLogs: (opts) => new LineLogHub(opts),
    summary: `Serves storage pools (directories) and their volumes: create, clone, resize, delete, upload and
download, LUKS encryption with passphrases from virtsecretd. A volume a running VM uses is never
deleted or changed under it (the lock manager's leases say which).`,
    options: { 'secret-uri': { type: 'string' }, 'qemu-img': { type: 'string' }, cp: { type: 'string' }, 'luks-iter-time-ms': { type: 'string' } },
    optionsUsage: `  --secret-uri URI    virtsecretd, for LUKS volumes (default: secret:///system?root=DIR, or of the mode)
  --qemu-img PATH     the qemu-img binary (default: qemu-img from PATH)
  --cp PATH           the GNU cp (≥ 9.0) full clones copy with (default: cp from PATH)
  --luks-iter-time-ms N  PBKDF time per key slot of new LUKS volumes, paid again at every open (default QEMU's 2000)`,
    parseExtra: (values) => {
      const iter = stringOption(values, 'luks-iter-time-ms');
      return { secretUri: stringOption(values, 'secret-uri'), qemuImg: stringOption(values, 'qemu-img'), cp: stringOption(values, 'cp'), luksIterTimeMs: iter === undefined ? undefined : wholeNumber(iter, 'luks-iter-time-ms', 2000, 1) };
    },
    build: async ({ layout, clock, logs, common, extra, service }) => {
      const log = logs.module('storage');
      const lock = await loadLockManager(layout, builtinLockPlugins(), { host: hostname(), clock });
      if (!lock.status.ok) log.error({ ...lock.status, msgId: 'LOCK_MANAGER_UNAVAILABLE' }, 'lock manager unavailable: volumes cannot be deleted, resized or uploaded into');
      const secretUri = extra.secretUri ?? secretBeside(common.root, common.mode);
      // Passphrase files live a moment in the runtime dir (a tmpfs on a real host), never on a command line.
      const qemuImg = new QemuImg(extra.qemuImg === undefined ? {} : { binary: extra.qemuImg });
      const copier = new FileCopier(extra.cp === undefined ? {} : { binary: extra.cp });
      const secretDir = join(layout.runtime, 'virtstoraged');
      await mkdir(secretDir, { recursive: true, mode: 0o700 });
      const records = new VolumeRecords(layout);
      await records.load();
      const pools = new PoolStore(layout, (def) => new DirPool(def, { qemuImg, copier, secretDir, recordedFormat: (name) => records.get(def.name, name).format }), log);
      await pools.load();
      await records.settleReplacements((pool, volume) => {
        const dir = pools.all().find((e) => e.definition.name === pool)?.definition.path;
        return dir === undefined ? undefined : join(dir, volume);
      });
      const metrics = new StorageMetrics(service.metrics, pools, clock);
      const jobs = new Jobs(clock, service.workers);
      const secretValue = async (uuid: string, purpose: string): Promise<Uint8Array> => {
        const client = await connectSecret(secretUri, { clock, waitMs: 10_000, timeoutMs: 30_000 });
        try {
          return (await client.api.useValue({ uuid, consumer: { purpose } })).value;
        } finally {
          client.close();
        }
      };
      return {
        served: [served(storageProgram, storageHandlers({ pools, jobs, guard: new InUseGuard(lock, log, await procLocksProbeFor(lock, layout)), metrics, records, secretValue, log, luksIterTimeMs: extra.luksIterTimeMs }))],
        info: () => ({ pools: pools.all().length, active: pools.all().filter((e) => e.pool !== undefined).length, jobs: jobs.list().length, lockManager: lock.status }),
        close: async () => {
          for (const j of jobs.list()) { try { jobs.cancel(j.job); } catch { /* finished */ } }
          await records.close();
        },
      };
    },
  };
}
