// The `etcd` lock plugin's fail-closed rule, with the real loader and a real etcd client: chosen
// by default where virtqemud publishes a host lease, it refuses every lease with
// CLUSTER_UNAVAILABLE when etcd cannot be reached or the host lease is not live, and keeps nothing.
import { mkdirSync, writeFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { systemClock } from '../../../protocol/index.js';
import { builtinLockPlugins } from '../../../drivers/lock/builtin.js';
import { loadLockManager, type LockDirs } from '../../../drivers/lock/loader.js';
import { hostMonotonicMs, writeHostLease } from '../../../drivers/lock/etcd-host-lease.js';
import { freePort } from '../../helpers/free-port.js';
import { tmpRoot, type TmpRoot } from '../../helpers/tmp-root.js';

const owner = { vm: 'web1', uuid: '7d1c0b9e-5a37-4f57-9a2c-2f4c5b1d7e01', shimPid: process.pid };

describe('etcd lock plugin', () => {
  let root: TmpRoot | undefined;
  afterEach(() => root?.remove());

  async function setup(aliveForMs: number): Promise<{ dirs: LockDirs; disk: string }> {
    root = tmpRoot('vq-etcdlock-');
    const dirs = { config: root.path('etc'), state: root.path('lib'), runtime: root.path('run') };
    for (const d of Object.values(dirs)) mkdirSync(d, { recursive: true });
    const disk = root.path('disk.raw');
    writeFileSync(disk, '');
    // Nothing listens on this port: etcd is unreachable.
    writeHostLease(dirs.runtime, { format: 1, endpoints: [`127.0.0.1:${await freePort()}`], prefix: 'vq', host: 'host0', ttlSec: 2, lease: '1234', aliveUntil: hostMonotonicMs() + aliveForMs, pid: process.pid });
    return { dirs, disk };
  }

  it('is chosen under a fleet and refuses leases with CLUSTER_UNAVAILABLE when etcd is unreachable, keeping no local lease', async () => {
    const { dirs, disk } = await setup(60_000);
    const lock = await loadLockManager(dirs, builtinLockPlugins(), { host: 'host0', clock: systemClock() });
    expect(lock.status).toEqual({ plugin: 'etcd', ok: true });
    await expect(lock.manager?.acquireForStart(owner, [{ path: disk, mode: 'exclusive' }])).rejects.toMatchObject({ code: 'CLUSTER_UNAVAILABLE', message: expect.stringContaining('cannot reach its etcd fleet') });
    // The local half was given back: the lockfile plugin on the same root gets the disk.
    writeFileSync(`${dirs.config}/lock.json`, JSON.stringify({ plugin: 'lockfile' }));
    const local = await loadLockManager(dirs, builtinLockPlugins(), { host: 'host0', clock: systemClock() });
    expect(local.status.plugin).toBe('lockfile');
    const taken = await local.manager?.acquireForStart(owner, [{ path: disk, mode: 'exclusive' }]);
    await taken?.abort();
  }, 60_000);

  it('refuses leases with CLUSTER_UNAVAILABLE when the host lease is not live', async () => {
    const { dirs, disk } = await setup(-1);
    const lock = await loadLockManager(dirs, builtinLockPlugins(), { host: 'host0', clock: systemClock() });
    await expect(lock.manager?.acquireForStart(owner, [{ path: disk, mode: 'exclusive' }])).rejects.toMatchObject({ code: 'CLUSTER_UNAVAILABLE', message: expect.stringContaining('no live lease') });
  });

  it('is unavailable (fail closed) when named without a fleet', async () => {
    const { dirs } = await setup(60_000);
    const { rmSync } = await import('node:fs');
    rmSync(`${dirs.runtime}/cluster-lease.json`);
    writeFileSync(`${dirs.config}/lock.json`, JSON.stringify({ plugin: 'etcd' }));
    const lock = await loadLockManager(dirs, builtinLockPlugins(), { host: 'host0', clock: systemClock() });
    expect(lock.status).toMatchObject({ plugin: 'etcd', ok: false, error: expect.stringContaining('--cluster') });
  });
});
