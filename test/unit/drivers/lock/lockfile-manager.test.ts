// The lockfile manager with real flock(1) and a stand-in for QEMU (a `sleep` that inherits the
// lifeline as fd 3): conflicts name the holder, shared leases coexist, a lease lives exactly as
// long as the process holding the lifeline, and hot-plug leases bind to a running process.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { systemClock } from '../../../../protocol/clock.js';
import { isAlive } from '../../../../drivers/lock/flock.js';
import { LockfileManager } from '../../../../drivers/lock/lockfile-manager.js';
import { Lockspace, resourceKey } from '../../../../drivers/lock/lockspace.js';
import type { LeaseOwner, StartLeases } from '../../../../drivers/lock/types.js';
import { eventually, fakeQemu as spawnFakeQemu, killed } from '../../../helpers/lease-processes.js';

let dir = '';
let holderPerl: string | undefined;
let disk = '';
let procs: ChildProcess[] = [];
const clock = systemClock();
const A: LeaseOwner = { vm: 'vm-a', uuid: 'aaaaaaaa-0000-4000-8000-000000000001', shimPid: 11 };
const B: LeaseOwner = { vm: 'vm-b', uuid: 'bbbbbbbb-0000-4000-8000-000000000002', shimPid: 22 };

beforeEach(() => {
  dir = realpathSync(mkdtempSync(join(tmpdir(), 'virtq-lockfile-')));
  disk = join(dir, 'disk.raw');
  writeFileSync(disk, '');
  writeFileSync(join(dir, 'other.raw'), '');
  procs = [];
});
afterEach(() => {
  for (const p of procs) p.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

const manager = (host = 'h1') => new LockfileManager({ space: new Lockspace(join(dir, 'space')), lifelineDir: join(dir, 'run'), host, clock, flock: 'flock', perl: holderPerl });

const fakeQemu = (leases: StartLeases): Promise<ChildProcess> => spawnFakeQemu(leases, procs);


// Both kinds of holder: in-process (perl, the default where perl-base is installed) and flock(1) children (the fallback).
describe.each([['perl', '/usr/bin/perl'], ['flock(1)', undefined]])('LockfileManager (holders: %s)', (_kind, perl) => {
  beforeEach(() => { holderPerl = perl; });

  it('refuses a second exclusive lease with LOCK_CONFLICT naming the holder and its QEMU pid', async () => {
    const m = manager();
    const qemu = await fakeQemu(await m.acquireForStart(A, [{ path: disk, mode: 'exclusive' }]));
    const err = await manager().acquireForStart(B, [{ path: disk, mode: 'exclusive' }]).catch((e: unknown) => e);
    expect(err).toMatchObject({
      code: 'LOCK_CONFLICT',
      message: `cannot lease disk ${disk} (exclusive): it is in use by VM "vm-a" (uuid ${A.uuid}, QEMU pid ${qemu.pid} on host h1, exclusive lease)`,
      details: { resource: disk, holders: [{ vm: 'vm-a', uuid: A.uuid, host: 'h1', mode: 'exclusive', qemuPid: qemu.pid }] },
    });
  });

  it('lets shared leases coexist and keeps an exclusive one out', async () => {
    const m = manager();
    await fakeQemu(await m.acquireForStart(A, [{ path: disk, mode: 'shared' }]));
    await fakeQemu(await m.acquireForStart(B, [{ path: disk, mode: 'shared' }]));
    const err = await m.acquireForStart({ ...B, vm: 'vm-c', uuid: 'c' }, [{ path: disk, mode: 'exclusive' }]).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'LOCK_CONFLICT', details: { holders: expect.arrayContaining([expect.objectContaining({ vm: 'vm-a' }), expect.objectContaining({ vm: 'vm-b' })]) } });
  });

  it('takes nothing when one disk of several conflicts', async () => {
    const m = manager();
    await fakeQemu(await m.acquireForStart(A, [{ path: disk, mode: 'exclusive' }]));
    const other = join(dir, 'other.raw');
    await expect(m.acquireForStart(B, [{ path: other, mode: 'exclusive' }, { path: disk, mode: 'exclusive' }])).rejects.toMatchObject({ code: 'LOCK_CONFLICT' });
    await fakeQemu(await m.acquireForStart({ ...B, uuid: 'c' }, [{ path: other, mode: 'exclusive' }]));
  });

  it('keeps the lease while the lifeline holder runs and frees it when that process exits', async () => {
    const m = manager();
    const qemu = await fakeQemu(await m.acquireForStart(A, [{ path: disk, mode: 'exclusive' }]));
    const rec = await new Lockspace(join(dir, 'space')).readRecord(resourceKey(disk), A.uuid);
    const holder = { pid: rec?.holderPid as number, start: rec?.holderStart as number };
    expect(isAlive(holder)).toBe(true);
    // No release call: the kernel frees the lifeline when the process dies, and the holder follows.
    await killed(qemu);
    await eventually(() => !isAlive(holder));
    await fakeQemu(await m.acquireForStart(B, [{ path: disk, mode: 'exclusive' }]));
  });

  it('gives every lease back on abort and leaves no lifeline file behind', async () => {
    const m = manager();
    const leases = await m.acquireForStart(A, [{ path: disk, mode: 'exclusive' }]);
    expect(readdirSync(join(dir, 'run'))).toEqual([]);
    await leases.abort();
    await fakeQemu(await m.acquireForStart(B, [{ path: disk, mode: 'exclusive' }]));
  });

  it('releaseAll resolves only once the disk is free again', async () => {
    const m = manager();
    const qemu = await fakeQemu(await m.acquireForStart(A, [{ path: disk, mode: 'exclusive' }]));
    await killed(qemu);
    await m.releaseAll(A, [disk]);
    await fakeQemu(await m.acquireForStart(B, [{ path: disk, mode: 'exclusive' }]));
    expect(await new Lockspace(join(dir, 'space')).readRecord(resourceKey(disk), A.uuid)).toBeUndefined();
  });

  it('hands a lease from one QEMU of a VM to another (migration): the old one\'s releaseAll leaves the new one\'s lease alone', async () => {
    const m = manager();
    const source = await fakeQemu(await m.acquireForStart(A, [{ path: disk, mode: 'exclusive' }]));
    const dest = await fakeQemu(await m.acquireForStart({ ...A, shimPid: 12 }, []));
    // The destination cannot take it while the source holds it.
    await expect(m.acquireForRunning({ ...A, shimPid: 12 }, dest.pid as number, { path: disk, mode: 'exclusive' })).rejects.toMatchObject({ code: 'LOCK_CONFLICT' });
    await m.releaseAll(A, [disk]);
    await m.acquireForRunning({ ...A, shimPid: 12 }, dest.pid as number, { path: disk, mode: 'exclusive' });
    // The source QEMU then exits and its shim gives back what is its own: nothing any more.
    await killed(source);
    await m.releaseAll(A, [disk], source.pid as number);
    expect(await new Lockspace(join(dir, 'space')).readRecord(resourceKey(disk), A.uuid)).toMatchObject({ qemuPid: dest.pid });
    await expect(m.acquireForStart(B, [{ path: disk, mode: 'shared' }])).rejects.toMatchObject({ code: 'LOCK_CONFLICT' });
    await m.releaseAll(A, [disk], dest.pid as number);
    await fakeQemu(await m.acquireForStart(B, [{ path: disk, mode: 'shared' }]));
  });

  it('binds a hot-plug lease to a running process and gives it back on release', async () => {
    const m = manager();
    const qemu = await fakeQemu(await m.acquireForStart(A, []));
    await m.acquireForRunning(A, qemu.pid as number, { path: disk, mode: 'exclusive' });
    await expect(m.acquireForStart(B, [{ path: disk, mode: 'shared' }])).rejects.toMatchObject({
      code: 'LOCK_CONFLICT', message: expect.stringContaining(`VM "vm-a" (uuid ${A.uuid}, QEMU pid ${qemu.pid}`),
    });
    await m.release(A, disk);
    await fakeQemu(await m.acquireForStart(B, [{ path: disk, mode: 'shared' }]));
  });

  it('ends a hot-plug lease with the process it is bound to', async () => {
    const m = manager();
    const qemu = await fakeQemu(await m.acquireForStart(A, []));
    await m.acquireForRunning(A, qemu.pid as number, { path: disk, mode: 'exclusive' });
    await killed(qemu);
    const rec = await new Lockspace(join(dir, 'space')).readRecord(resourceKey(disk), A.uuid);
    await eventually(() => !isAlive({ pid: rec?.holderPid as number, start: rec?.holderStart as number }));
    await fakeQemu(await m.acquireForStart(B, [{ path: disk, mode: 'exclusive' }]));
  });

  it('refuses a hot-plug lease for a process that holds no lifeline', async () => {
    const plain = spawn('sleep', ['600'], { stdio: 'ignore' });
    procs.push(plain);
    await expect(manager().acquireForRunning(A, plain.pid as number, { path: disk, mode: 'exclusive' })).rejects.toMatchObject({ code: 'LOCK_MANAGER_UNAVAILABLE' });
  });

  it('names holders on other hosts and drops stale local records', async () => {
    const space = new Lockspace(join(dir, 'space'));
    const remote = manager('h2');
    await fakeQemu(await remote.acquireForStart(A, [{ path: disk, mode: 'shared' }]));
    // A stale local record (its holder is long gone) must not be named.
    const key = resourceKey(disk);
    await space.writeRecord(key, { format: 1, resource: disk, mode: 'exclusive', host: 'h1', vm: 'ghost', uuid: 'g', shimPid: 1, holderPid: 999999, holderStart: 1, since: 0 });
    const err = await manager('h1').acquireForStart(B, [{ path: disk, mode: 'exclusive' }]).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'LOCK_CONFLICT', details: { holders: [expect.objectContaining({ vm: 'vm-a', host: 'h2' })] } });
    expect(await space.readRecord(key, 'g')).toBeUndefined();
  });
});
