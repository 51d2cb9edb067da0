// The `etcd` lock plugin, used by every shim of a virtqemud run with --cluster (docs/locking.md):
// disk leases held in the local lockspace AND as etcd keys bound to the host's etcd lease, so a
// disk on shared storage is leased fleet-wide. It reads the host lease virtqemud publishes in
// `run/cluster-lease.json`; options are the lockfile plugin's (for the local half).
import { hostMonotonicMs, readHostLease } from './etcd-host-lease.js';
import { EtcdDiskKeys } from './etcd-disk-keys.js';
import { EtcdLockManager } from './etcd-manager.js';
import { lockfileLockPlugin } from './lockfile.js';
import { VirtqError } from '../../protocol/errors.js';
import { etcdClientOptions } from '../../protocol/etcd-options.js';
import { importModule } from '../../protocol/dynamic-import.js';
import { LOCK_ABI_VERSION, REQUIRED_LOCK_FEATURES, type LockEnv, type LockManager, type LockPlugin } from './types.js';

async function create(config: Readonly<Record<string, unknown>>, env: LockEnv): Promise<LockManager> {
  const first = readHostLease(env.runtimeDir);
  if (first === undefined) {
    throw new VirtqError('LOCK_MANAGER_UNAVAILABLE', 'the etcd lock plugin needs a virtqemud run with --cluster under this root (it publishes run/cluster-lease.json)');
  }
  const local = await lockfileLockPlugin.create({ ...config, plugin: 'lockfile' }, env);
  let Client: typeof import('etcd3').Etcd3;
  try {
    ({ Etcd3: Client } = await importModule<typeof import('etcd3')>('etcd3'));
  } catch (err) {
    throw new VirtqError('LOCK_MANAGER_UNAVAILABLE', `cannot load the etcd client (npm etcd3): ${(err as Error).message}`, { cause: err });
  }
  // Every unary call has a deadline: a minority member answers nothing until quorum is back.
  const callMs = Math.min(3000, Math.max(500, (first.ttlSec * 1000) / 3));
  // As virtqemud's client: TLS with the files virtqemud was given, when it has a CA.
  const client = new Client(etcdClientOptions({
    endpoints: first.endpoints, callMs, pemErrorCode: 'LOCK_MANAGER_UNAVAILABLE', ...(first.tls === undefined ? {} : { tls: first.tls }),
  }));
  return new EtcdLockManager({
    local, host: first.host, clock: env.clock,
    keys: new EtcdDiskKeys(client, first.prefix, first.host, callMs, first.endpoints),
    readLease: () => readHostLease(env.runtimeDir),
    hostNow: hostMonotonicMs,
  });
}

/** The etcd plugin. @since 0.3 */
export const etcdLockPlugin: LockPlugin = {
  name: 'etcd',
  abiVersion: LOCK_ABI_VERSION,
  features: [...REQUIRED_LOCK_FEATURES, 'holder-identity', 'fleet-wide', 'fencing'],
  requires: ['inherit-fds', 'pause-on-lease-loss'],
  enforcing: true,
  create,
};
