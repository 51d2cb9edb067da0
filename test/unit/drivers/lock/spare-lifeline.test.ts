// A warm pool shim's spare lifeline (drivers/lock/spare-lifeline.ts): it leaves no file behind,
// is locked exclusively before any VM exists, and a start that takes it binds its disks' leases
// to it exactly as to a lifeline of its own (the lease lives as long as the QEMU holding it).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readlinkSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { systemClock } from '../../../../protocol/clock.js';
import { LockfileManager } from '../../../../drivers/lock/lockfile-manager.js';
import { Lockspace } from '../../../../drivers/lock/lockspace.js';
import { lockSpareLifeline } from '../../../../drivers/lock/spare-lifeline.js';
import type { LeaseOwner, SpareLifeline } from '../../../../drivers/lock/types.js';

let dir = '';
let procs: ChildProcess[] = [];
let spares: Array<SpareLifeline | undefined> = [];
/** A spare made for the test, discarded after it (which also ends its idle holder). */
const made = (flock = 'flock', perl?: string): SpareLifeline | undefined => {
  const s = perl === undefined ? lockSpareLifeline(flock, join(dir, 'run')) : lockSpareLifeline(flock, join(dir, 'run'), perl);
  spares.push(s);
  return s;
};
const A: LeaseOwner = { vm: 'vm-a', uuid: 'aaaaaaaa-0000-4000-8000-000000000001', shimPid: 11 };
const B: LeaseOwner = { vm: 'vm-b', uuid: 'bbbbbbbb-0000-4000-8000-000000000002', shimPid: 22 };

beforeEach(() => {
  dir = realpathSync(mkdtempSync(join(tmpdir(), 'virtq-spare-')));
  writeFileSync(join(dir, 'disk.raw'), '');
  procs = [];
  spares = [];
});
afterEach(() => {
  for (const s of spares) s?.discard();
  for (const p of procs) p.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

/** Exit status of a non-blocking shared flock(1) on a new description of this process's `fd` (75: held exclusively). */
const tryShared = (fd: number): number | null => spawnSync('flock', ['-n', '-E', '75', '-s', `/proc/${process.pid}/fd/${fd}`, 'true']).status;

function exited(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => { child.once('exit', () => resolve()); child.kill('SIGKILL'); });
}

describe('lockSpareLifeline', () => {
  it('locks an anonymous lifeline exclusively and leaves no file in the directory', () => {
    const spare = made();
    const fd = spare?.take();
    expect(fd).toBeTypeOf('number');
    expect(readdirSync(join(dir, 'run'))).toEqual([]);
    expect(readlinkSync(`/proc/self/fd/${fd}`)).toMatch(/\.lifeline \(deleted\)$/);
    expect(tryShared(fd as number)).toBe(75);
    expect(spare?.take()).toBeUndefined(); // taken once
  });

  it('is undefined when flock(1) cannot run, so the start makes its own', () => {
    expect(made(join(dir, 'no-such-flock'))).toBeUndefined();
    expect(readdirSync(join(dir, 'run'))).toEqual([]);
  });

  it('discard closes an untaken spare (its lock goes with it)', () => {
    const spare = made();
    const fd = spare?.take() as number;
    const other = made();
    other?.discard();
    expect(other?.take()).toBeUndefined();
    expect(tryShared(fd)).toBe(75);
  });

  it('is the lifeline of the first start: its disk lease lives exactly as long as the QEMU holding it', async () => {
    const disk = join(dir, 'disk.raw');
    const spare = made();
    const m = new LockfileManager({ space: new Lockspace(join(dir, 'space')), lifelineDir: join(dir, 'run'), host: 'h1', clock: systemClock(), flock: 'flock', spare });
    const leases = await m.acquireForStart(A, [{ path: disk, mode: 'exclusive' }]);
    const qemu = spawn('sleep', ['600'], { stdio: ['ignore', 'ignore', 'ignore', ...leases.inheritFds], detached: true });
    procs.push(qemu);
    await leases.spawned(qemu.pid as number);
    expect(readlinkSync(`/proc/${qemu.pid}/fd/3`)).toMatch(/\.lifeline \(deleted\)$/);
    expect(spare?.take()).toBeUndefined(); // the manager took it
    await expect(m.acquireForStart(B, [{ path: disk, mode: 'exclusive' }])).rejects.toMatchObject({ code: 'LOCK_CONFLICT' });
    // A hot-plug binds to the same lifeline through QEMU's fd 3.
    const other = join(dir, 'other.raw');
    writeFileSync(other, '');
    await m.acquireForRunning(A, qemu.pid as number, { path: other, mode: 'exclusive' });
    await exited(qemu);
    // The kernel drops the lifeline with QEMU, the holders follow, and both disks are free again.
    const until = Date.now() + 5000;
    for (;;) {
      const taken = await m.acquireForStart(B, [{ path: disk, mode: 'exclusive' }, { path: other, mode: 'exclusive' }]).then((l) => l, () => undefined);
      if (taken !== undefined) { await taken.abort(); break; }
      if (Date.now() > until) throw new Error('leases not freed after QEMU exited');
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    expect(readdirSync(join(dir, 'run'))).toEqual([]);
  });

  it('comes with an idle in-process holder that becomes the first disk\'s holder (no spawn at the start), and ends unused on discard', async () => {
    const idle = (): number[] => spawnSync('ps', ['-o', 'pid=,args=', '--ppid', String(process.pid)], { encoding: 'utf8' }).stdout
      .split('\n').filter((l) => l.includes('/^go (')).map((l) => Number.parseInt(l.trim(), 10));
    const unused = made();
    expect(idle()).toHaveLength(1);
    unused?.discard();
    const until = Date.now() + 5000;
    while (idle().length > 0 && Date.now() < until) await new Promise((resolve) => setTimeout(resolve, 10));
    expect(idle()).toEqual([]);
    const spare = made();
    const [pid] = idle();
    const disk = join(dir, 'disk.raw');
    const m = new LockfileManager({ space: new Lockspace(join(dir, 'space')), lifelineDir: join(dir, 'run'), host: 'h1', clock: systemClock(), flock: 'flock', perl: '/usr/bin/perl', spare });
    const leases = await m.acquireForStart(A, [{ path: disk, mode: 'exclusive' }]);
    const qemu = spawn('sleep', ['600'], { stdio: ['ignore', 'ignore', 'ignore', ...leases.inheritFds], detached: true });
    procs.push(qemu);
    await leases.spawned(qemu.pid as number);
    expect(await new Lockspace(join(dir, 'space')).readRecord(await m.resourceKey(disk), A.uuid)).toMatchObject({ holderPid: pid });
    spare?.discard(); // as the shim does after its start: the holder in use is not disarmed
    await expect(m.acquireForStart(B, [{ path: disk, mode: 'shared' }])).rejects.toMatchObject({ code: 'LOCK_CONFLICT' });
    await m.releaseAll(A, [disk]);
    const free = await m.acquireForStart(B, [{ path: disk, mode: 'exclusive' }]);
    await free.abort();
  });

  it('gives its idle holder to no start of a root configured with another perl: that start spawns the configured one', async () => {
    const ownPerl = join(dir, 'perl');
    symlinkSync('/usr/bin/perl', ownPerl);
    const idle = (): number[] => spawnSync('ps', ['-o', 'pid=,args=', '--ppid', String(process.pid)], { encoding: 'utf8' }).stdout
      .split('\n').filter((l) => l.includes('/^go (')).map((l) => Number.parseInt(l.trim(), 10));
    const spare = made();
    const [idlePid] = idle();
    expect(idlePid).toBeTypeOf('number');
    const disk = join(dir, 'disk.raw');
    const m = new LockfileManager({ space: new Lockspace(join(dir, 'space')), lifelineDir: join(dir, 'run'), host: 'h1', clock: systemClock(), flock: 'flock', perl: ownPerl, spare });
    const leases = await m.acquireForStart(A, [{ path: disk, mode: 'exclusive' }]);
    const qemu = spawn('sleep', ['600'], { stdio: ['ignore', 'ignore', 'ignore', ...leases.inheritFds], detached: true });
    procs.push(qemu);
    await leases.spawned(qemu.pid as number);
    const rec = await new Lockspace(join(dir, 'space')).readRecord(await m.resourceKey(disk), A.uuid);
    expect(rec?.holderPid).toBeTypeOf('number');
    expect(rec?.holderPid).not.toBe(idlePid);
    const until = Date.now() + 5000;
    while (idle().includes(idlePid as number) && Date.now() < until) await new Promise((resolve) => setTimeout(resolve, 10));
    expect(idle()).not.toContain(idlePid);
    await m.releaseAll(A, [disk]);
  });

  it('comes without a holder when perl is missing; the start then spawns its own', async () => {
    const spare = made('flock', join(dir, 'no-such-perl'));
    expect(spare?.held()).toBeTypeOf('number');
    const m = new LockfileManager({ space: new Lockspace(join(dir, 'space')), lifelineDir: join(dir, 'run'), host: 'h1', clock: systemClock(), flock: 'flock', spare });
    const leases = await m.acquireForStart(A, [{ path: join(dir, 'disk.raw'), mode: 'exclusive' }]);
    await leases.abort();
  });

  // Issue 16: a migration's destination starts leasing nothing and arms its disks during the transfer.
  describe('kept for a migration destination\'s arming (armLater)', () => {
    const idle = (): number[] => spawnSync('ps', ['-o', 'pid=,args=', '--ppid', String(process.pid)], { encoding: 'utf8' }).stdout
      .split('\n').filter((l) => l.includes('/^go (')).map((l) => Number.parseInt(l.trim(), 10));
    const gone = async (): Promise<void> => {
      const until = Date.now() + 5000;
      while (idle().length > 0 && Date.now() < until) await new Promise((resolve) => setTimeout(resolve, 10));
      expect(idle()).toEqual([]);
    };
    const destination = async (armLater: boolean, perl = '/usr/bin/perl'): Promise<{ m: LockfileManager; qemu: ChildProcess; pid: number | undefined }> => {
      const spare = made('flock', '/usr/bin/perl');
      const [pid] = idle();
      const m = new LockfileManager({ space: new Lockspace(join(dir, 'space')), lifelineDir: join(dir, 'run'), host: 'h1', clock: systemClock(), flock: 'flock', perl, spare });
      const leases = await m.acquireForStart(A, [], armLater ? { armLater } : undefined);
      const qemu = spawn('sleep', ['600'], { stdio: ['ignore', 'ignore', 'ignore', ...leases.inheritFds], detached: true });
      procs.push(qemu);
      await leases.spawned(qemu.pid as number);
      spare?.discard(); // as the shim does after its start
      return { m, qemu, pid };
    };

    it('becomes the armed disk\'s holder: the arming spawns nothing, the lease is the QEMU\'s', async () => {
      const disk = join(dir, 'disk.raw');
      const { m, qemu, pid } = await destination(true);
      expect(idle()).toEqual([pid]); // kept past the start
      const armed = await m.armForRunning(A, qemu.pid as number, [{ path: disk, mode: 'exclusive' }]);
      expect(idle()).toEqual([pid]); // no new holder
      await armed.acquire();
      expect(await new Lockspace(join(dir, 'space')).readRecord(await m.resourceKey(disk), A.uuid)).toMatchObject({ holderPid: pid, qemuPid: qemu.pid });
      await expect(m.acquireForStart(B, [{ path: disk, mode: 'shared' }])).rejects.toMatchObject({ code: 'LOCK_CONFLICT' });
      await exited(qemu);
      const until = Date.now() + 5000;
      for (;;) {
        const taken = await m.acquireForStart(B, [{ path: disk, mode: 'exclusive' }]).then((l) => l, () => undefined);
        if (taken !== undefined) { await taken.abort(); break; }
        if (Date.now() > until) throw new Error('lease not freed after QEMU exited');
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    });

    it('ends when QEMU exits before the arming, and is not kept without armLater nor for another configured perl', async () => {
      const first = await destination(true);
      expect(idle()).toHaveLength(1);
      await exited(first.qemu);
      await first.m.releaseAll(A, [join(dir, 'disk.raw')], first.qemu.pid as number);
      await gone();
      await destination(false);
      await gone();
      // A root configured with its own perl (a test's refusing one, say) arms with that perl, not the spare's default one.
      const ownPerl = join(dir, 'perl');
      symlinkSync('/usr/bin/perl', ownPerl);
      await destination(true, ownPerl);
      await gone();
    });

    it('is not handed to an arming for another lifeline', async () => {
      const { m, pid } = await destination(true);
      const leases = await m.acquireForStart(B, []);
      const other = spawn('sleep', ['600'], { stdio: ['ignore', 'ignore', 'ignore', ...leases.inheritFds], detached: true });
      procs.push(other);
      await leases.spawned(other.pid as number);
      const armed = await m.armForRunning(B, other.pid as number, [{ path: join(dir, 'disk.raw'), mode: 'exclusive' }]);
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(idle()).not.toContain(pid);
      armed.disarm();
      await gone();
    });
  });
});
