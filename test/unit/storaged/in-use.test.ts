// InUseGuard's removal without a lease process: with the /proc/locks probe saying nobody leases a
// volume, a delete takes no lease; when a lease appears between the probe and the unlink, the
// volume is put back and the lock manager decides (LOCK_CONFLICT naming the VM, volume kept).
import { existsSync, mkdirSync, mkdtempSync, readdirSync, realpathSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { VirtqError, silentLogger } from '../../../protocol/index.js';
import { DirPool } from '../../../drivers/storage/dir-pool.js';
import { ProcLocksProbe } from '../../../drivers/lock/proc-locks.js';
import type { LoadedLock } from '../../../drivers/lock/loader.js';
import { canonicalPath, lockFileName } from '../../../drivers/lock/lockspace.js';
import { InUseGuard } from '../../../storaged/in-use.js';

let dir = '';
let poolDir = '';
let space = '';
beforeEach(() => {
  dir = realpathSync(mkdtempSync(join(tmpdir(), 'virtq-inuse-')));
  poolDir = join(dir, 'pool');
  space = join(dir, 'space');
  mkdirSync(poolDir);
  mkdirSync(space);
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** A lock manager whose holdExclusive counts its calls and refuses while `vm` is set. */
function fakeLock(state: { vm?: string; calls: number }): LoadedLock {
  return {
    status: { plugin: 'lockfile', ok: true },
    manager: {
      resourceKey: async (p) => p,
      acquireForStart: () => Promise.reject(new Error('unused')),
      acquireForRunning: () => Promise.reject(new Error('unused')),
      release: async () => undefined,
      releaseAll: async () => undefined,
      holdExclusive: async (path, fn) => {
        state.calls += 1;
        if (state.vm !== undefined) throw new VirtqError('LOCK_CONFLICT', `cannot lease disk ${path}`, { details: { holders: [{ vm: state.vm }] } });
        return fn();
      },
    },
  };
}

/** A lock table listing the lease file of `disk` from the `reads`-th read on (never when 0). */
async function table(disk: string, heldFrom: number): Promise<{ read: () => Promise<string>; reads: () => number }> {
  const lockFile = join(space, lockFileName(await canonicalPath(disk)));
  writeFileSync(lockFile, '');
  const line = `1: FLOCK  ADVISORY  WRITE 99 fe:00:${statSync(lockFile).ino} 0 EOF\n`;
  let n = 0;
  return { read: async () => { n += 1; return heldFrom > 0 && n >= heldFrom ? line : ''; }, reads: () => n };
}

async function setup(heldFrom: number, vm?: string) {
  const pool = new DirPool({ name: 'p', type: 'dir', path: poolDir });
  await pool.create({ name: 'v.raw', format: 'raw', capacityBytes: 4096 });
  const path = await pool.path('v.raw');
  const t = await table(path, heldFrom);
  const state: { vm?: string; calls: number } = { calls: 0, ...(vm === undefined ? {} : { vm }) };
  const guard = new InUseGuard(fakeLock(state), silentLogger(), new ProcLocksProbe(space, t.read));
  return { pool, path, t, state, guard };
}

/**
 * The two ways a removal reaches the guard: the guard around the pool's delete with the path
 * resolved first (`outside`), or the pool resolving once and handing the guard its path (`inside`,
 * what virtstoraged's deleteVolume does).
 */
type Form = 'outside' | 'inside';
function removeVolume(form: Form, guard: InUseGuard, pool: DirPool, path: string): Promise<void> {
  if (form === 'outside') return guard.removing(path, 'delete it', (confirm) => pool.delete('v.raw', confirm));
  return pool.delete('v.raw', undefined, (p, remove) => guard.removing(p, 'delete it', remove));
}

describe.each<Form>(['outside', 'inside'])('InUseGuard.removing, guard %s the pool\'s delete', (form) => {
  it('deletes without a lease when nobody leases the volume, before and after it is moved aside', async () => {
    const { pool, path, t, state, guard } = await setup(0);
    await removeVolume(form, guard, pool, path);
    expect(state.calls).toBe(0);
    expect(t.reads()).toBe(2);
    // The moved-aside file is unlinked once the directory's fsync is done, not waited for; info() waits for it.
    await pool.info();
    expect(readdirSync(poolDir)).toEqual([]);
  });

  it('puts the volume back when a lease appears meanwhile, and the lock manager refuses naming the VM', async () => {
    const { pool, path, state, guard } = await setup(2, 'web1');
    const err = await removeVolume(form, guard, pool, path).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'LOCK_CONFLICT', details: { vms: ['web1'] } });
    expect(err).toBeInstanceOf(VirtqError);
    expect(state.calls).toBe(1);
    expect(readdirSync(poolDir)).toEqual(['v.raw']); // no temp file left either
  });

  it('deletes under the lease when the lease that appeared is gone by then', async () => {
    const { pool, path, state, guard } = await setup(2);
    await removeVolume(form, guard, pool, path);
    expect(state.calls).toBe(1);
    expect(existsSync(path)).toBe(false);
  });

  it('asks the lock manager at once when the probe sees a lock', async () => {
    const { pool, path, t, state, guard } = await setup(1, 'db');
    await expect(removeVolume(form, guard, pool, path)).rejects.toMatchObject({ code: 'LOCK_CONFLICT' });
    expect(t.reads()).toBe(1);
    expect(state.calls).toBe(1);
    expect(readdirSync(poolDir)).toEqual(['v.raw']);
    await expect(guard.check(path, 'upload')).rejects.toMatchObject({ code: 'LOCK_CONFLICT' });
    expect(await guard.users([path])).toEqual(['db']);
  });
});
