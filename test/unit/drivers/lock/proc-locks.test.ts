// The /proc/locks probe against real leases (the lockfile manager with flock(1) and a stand-in
// QEMU): it says "maybe held" while a lease is held and "free" once it is gone, and never "free"
// when it cannot tell.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { systemClock } from '../../../../protocol/clock.js';
import { LockfileManager } from '../../../../drivers/lock/lockfile-manager.js';
import { Lockspace } from '../../../../drivers/lock/lockspace.js';
import { lockedInodes, ProcLocksProbe, procLocksProbeFor } from '../../../../drivers/lock/proc-locks.js';
import type { LeaseOwner } from '../../../../drivers/lock/types.js';

let dir = '';
let disk = '';
let procs: ChildProcess[] = [];
const A: LeaseOwner = { vm: 'vm-a', uuid: 'aaaaaaaa-0000-4000-8000-000000000001', shimPid: 11 };

beforeEach(() => {
  dir = realpathSync(mkdtempSync(join(tmpdir(), 'virtq-proclocks-')));
  disk = join(dir, 'disk.raw');
  writeFileSync(disk, '');
  procs = [];
});
afterEach(() => {
  for (const p of procs) p.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

const space = () => join(dir, 'space');
const manager = () => new LockfileManager({ space: new Lockspace(space()), lifelineDir: join(dir, 'run'), host: 'h1', clock: systemClock(), flock: 'flock' });

async function eventually(cond: () => Promise<boolean>, ms = 5000): Promise<void> {
  const until = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > until) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

describe('lockedInodes', () => {
  it('reads the inode of every lock and waiter line, and nothing else', () => {
    const table = [
      '1: FLOCK  ADVISORY  WRITE 1234 fe:00:1484655 0 EOF',
      '1: -> FLOCK  ADVISORY  READ  1240 fe:00:99 0 EOF',
      '2: POSIX  ADVISORY  WRITE 14461 00:1f:7 0 0',
      'garbage line',
      '',
    ].join('\n');
    expect([...lockedInodes(table)].sort()).toEqual(['1484655', '7', '99']);
  });
});

describe('ProcLocksProbe', () => {
  it('says maybe held while a VM holds the lease, free before and after, for the real lock table', async () => {
    const probe = new ProcLocksProbe(space());
    expect(await probe.mayBeHeld(disk)).toBe(false); // no lock file yet
    const m = manager();
    const leases = await m.acquireForStart(A, [{ path: disk, mode: 'exclusive' }]);
    const qemu = spawn('sleep', ['600'], { stdio: ['ignore', 'ignore', 'ignore', ...leases.inheritFds], detached: true });
    procs.push(qemu);
    await leases.spawned(qemu.pid as number);
    expect(await probe.mayBeHeld(disk)).toBe(true);
    expect(await probe.mayBeHeld(join(dir, 'other.raw'))).toBe(false);
    // The same disk through a symlink is the same lease.
    const { symlinkSync } = await import('node:fs');
    symlinkSync(disk, join(dir, 'link.raw'));
    expect(await probe.mayBeHeld(join(dir, 'link.raw'))).toBe(true);
    qemu.kill('SIGKILL');
    await m.releaseAll(A, [disk]);
    await eventually(async () => !(await probe.mayBeHeld(disk)));
    // The lock file stays, unlocked: free.
    expect(await probe.mayBeHeld(disk)).toBe(false);
  });

  it('answers for the path asked, canonical ones included, when two paths alternate (its last-name memo)', async () => {
    const m = manager();
    const other = join(dir, 'other.raw');
    writeFileSync(other, '');
    const leases = await m.acquireForStart(A, [{ path: disk, mode: 'exclusive' }]);
    const qemu = spawn('sleep', ['600'], { stdio: ['ignore', 'ignore', 'ignore', ...leases.inheritFds], detached: true });
    procs.push(qemu);
    await leases.spawned(qemu.pid as number);
    const probe = new ProcLocksProbe(space());
    for (let i = 0; i < 2; i += 1) {
      expect(await probe.mayBeHeld(disk, { canonical: true })).toBe(true);
      expect(await probe.mayBeHeld(other, { canonical: true })).toBe(false);
      expect(await probe.mayBeHeld(disk, { canonical: true })).toBe(true);
    }
    qemu.kill('SIGKILL');
    await m.releaseAll(A, [disk]);
  });

  it('says maybe held when the lock table cannot be read', async () => {
    await manager().holdExclusive(disk, async () => undefined); // makes the lock file
    const probe = new ProcLocksProbe(space(), () => Promise.reject(new Error('EACCES')));
    expect(await probe.mayBeHeld(disk)).toBe(true);
  });

  it('is made only for a working lockfile manager', async () => {
    const dirs = { config: join(dir, 'etc'), state: join(dir, 'lib'), runtime: join(dir, 'run') };
    // Without a config, the default lockspace under the state dir (the plugin makes it on load).
    expect(await procLocksProbeFor({ status: { plugin: 'lockfile', ok: true }, manager: manager() }, dirs)).toBeUndefined();
    mkdirSync(join(dir, 'lib', 'lockspace'), { recursive: true });
    expect(await procLocksProbeFor({ status: { plugin: 'lockfile', ok: true }, manager: manager() }, dirs)).toBeInstanceOf(ProcLocksProbe);
    expect(await procLocksProbeFor({ status: { plugin: 'lockfile', ok: false, error: 'x' }, manager: undefined }, dirs)).toBeUndefined();
    expect(await procLocksProbeFor({ status: { plugin: 'nop', ok: true }, manager: manager() }, dirs)).toBeUndefined();
  });
});
