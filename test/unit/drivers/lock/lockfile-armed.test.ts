// The lockfile manager's armed leases (a migration's destination readies its holders during the
// transfer; the switchover only tells them to lock): nothing is held before `acquire`, a conflict
// then keeps nothing, a taken lease lives exactly as long as the QEMU it is bound to, a disarmed
// holder ends, and a holder that died before the go falls back to the usual path. Real flock(1),
// a `sleep` holding the lifeline standing in for QEMU.
import { spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
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
const A2: LeaseOwner = { ...A, shimPid: 12 };
const B: LeaseOwner = { vm: 'vm-b', uuid: 'bbbbbbbb-0000-4000-8000-000000000002', shimPid: 22 };

beforeEach(() => {
  dir = realpathSync(mkdtempSync(join(tmpdir(), 'virtq-lockfile-armed-')));
  disk = join(dir, 'disk.raw');
  writeFileSync(disk, '');
  procs = [];
});
afterEach(() => {
  for (const p of procs) p.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

const space = (): Lockspace => new Lockspace(join(dir, 'space'));
const manager = (): LockfileManager => new LockfileManager({ space: space(), lifelineDir: join(dir, 'run'), host: 'h1', clock, flock: 'flock', perl: holderPerl });

const fakeQemu = (leases: StartLeases): Promise<ChildProcess> => spawnFakeQemu(leases, procs);


/** The pids of processes whose parent is this test (the armed holders among them). */
function armedShells(): number[] {
  const out = spawnSyncText('ps', ['-o', 'pid=,args=', '--ppid', String(process.pid)]);
  return out.split('\n').filter((l) => l.includes('read -r go') || l.includes('/^go (')).map((l) => Number.parseInt(l.trim(), 10));
}

function spawnSyncText(cmd: string, args: string[]): string {
  return spawnSync(cmd, args, { encoding: 'utf8' }).stdout;
}

// Both kinds of holder: in-process (perl, the default where perl-base is installed) and flock(1) children (the fallback).
describe.each([['perl', '/usr/bin/perl'], ['flock(1)', undefined]])('LockfileManager armed leases (holders: %s)', (_kind, perl) => {
  beforeEach(() => { holderPerl = perl; });

  it('hands a lease over at acquire, not before, bound to the destination QEMU\'s life', async () => {
    const m = manager();
    const source = await fakeQemu(await m.acquireForStart(A, [{ path: disk, mode: 'exclusive' }]));
    const dest = await fakeQemu(await m.acquireForStart(A2, []));
    const armed = await m.armForRunning(A2, dest.pid as number, [{ path: disk, mode: 'exclusive' }]);
    // Armed, the destination holds nothing: the source's lease is untouched and still its own.
    expect(await space().readRecord(resourceKey(disk), A.uuid)).toMatchObject({ qemuPid: source.pid });
    await m.releaseAll(A, [disk]);
    await armed.acquire();
    const rec = await space().readRecord(resourceKey(disk), A.uuid);
    expect(rec).toMatchObject({ qemuPid: dest.pid, mode: 'exclusive' });
    expect(isAlive({ pid: rec?.holderPid as number, start: rec?.holderStart as number })).toBe(true);
    await expect(m.acquireForStart(B, [{ path: disk, mode: 'shared' }])).rejects.toMatchObject({ code: 'LOCK_CONFLICT', message: expect.stringContaining(`QEMU pid ${dest.pid}`) });
    await expect(armed.acquire()).rejects.toMatchObject({ code: 'OPERATION_INVALID' });
    // The lease ends with the destination QEMU, as any holder's does.
    await killed(dest);
    await eventually(() => !isAlive({ pid: rec?.holderPid as number, start: rec?.holderStart as number }));
    await fakeQemu(await m.acquireForStart(B, [{ path: disk, mode: 'exclusive' }]));
  });

  it('takes nothing when the disk was taken by another VM meanwhile: LOCK_CONFLICT naming it', async () => {
    const m = manager();
    const dest = await fakeQemu(await m.acquireForStart(A2, []));
    const armed = await m.armForRunning(A2, dest.pid as number, [{ path: disk, mode: 'exclusive' }, { path: join(dir, 'free.raw'), mode: 'exclusive' }]);
    const armedPids = armedShells();
    expect(armedPids).toHaveLength(2);
    // Armed holders hold no lock: another VM can lease the disk.
    const other = await fakeQemu(await m.acquireForStart(B, [{ path: disk, mode: 'shared' }]));
    await expect(armed.acquire()).rejects.toMatchObject({ code: 'LOCK_CONFLICT', message: expect.stringContaining('VM "vm-b"') });
    expect(await space().readRecord(resourceKey(disk), A.uuid)).toBeUndefined();
    expect(await space().readRecord(resourceKey(join(dir, 'free.raw')), A.uuid)).toBeUndefined();
    // (B's own perl holder has the same command line: only the armed ones must be gone.)
    await eventually(() => armedShells().every((pid) => !armedPids.includes(pid)));
    await killed(other);
    await m.releaseAll(B, [disk]);
    await fakeQemu(await m.acquireForStart(A, [{ path: disk, mode: 'exclusive' }, { path: join(dir, 'free.raw'), mode: 'exclusive' }]));
  });

  it('ends disarmed holders, which never locked anything', async () => {
    const m = manager();
    const dest = await fakeQemu(await m.acquireForStart(A2, []));
    const armed = await m.armForRunning(A2, dest.pid as number, [{ path: disk, mode: 'exclusive' }]);
    expect(armedShells()).toHaveLength(1);
    armed.disarm();
    await eventually(() => armedShells().length === 0);
    await fakeQemu(await m.acquireForStart(B, [{ path: disk, mode: 'exclusive' }]));
  });

  it('falls back to the usual path when an armed holder died before the go', async () => {
    const m = manager();
    const dest = await fakeQemu(await m.acquireForStart(A2, []));
    const armed = await m.armForRunning(A2, dest.pid as number, [{ path: disk, mode: 'exclusive' }]);
    const [shell] = armedShells();
    process.kill(shell as number, 'SIGKILL');
    await eventually(() => armedShells().length === 0);
    await armed.acquire();
    expect(await space().readRecord(resourceKey(disk), A.uuid)).toMatchObject({ qemuPid: dest.pid });
    await expect(m.acquireForStart(B, [{ path: disk, mode: 'shared' }])).rejects.toMatchObject({ code: 'LOCK_CONFLICT' });
  });
});
