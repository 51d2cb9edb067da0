// The warm shim pool (docs/decisions/0026-warm-shim-pool.md): virtqemud keeps idle shims that
// have loaded their code; a start hands one its definition. A VM started that way must be the
// same as a cold one in everything a person or virtqemud can see, and the pool must leave no
// process behind when virtqemud stops.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { existsSync, readdirSync, readFileSync, readlinkSync, realpathSync } from 'node:fs';
import { join } from 'node:path';
import { RpcClient, delay, shimSockets } from '../../protocol/index.js';
import { idleShimPids, listedPool, stateShape as shape, until } from '../helpers/shim-pool-probe.js';
import { DaemonHarness } from '../helpers/daemon-harness.js';
import { idleGuest } from '../helpers/test-guest.js';
import { tmpRoot } from '../helpers/tmp-root.js';
import { procState } from '../../drivers/host/proc.js';

const idleDef = (name: string) => ({ name, memoryMiB: 32, vcpus: 1, accel: 'tcg' as const, kernel: { path: idleGuest().kernel } });

/** Shim processes under the root that have no VM yet (no state file names them). */
function idleShims(h: DaemonHarness): number[] {
  return idleShimPids(h.root.dir, new Set(h.states().map((s) => s.shimPid)));
}

describe('warm shim pool', () => {
  let h: DaemonHarness;
  beforeEach(() => { h = new DaemonHarness(tmpRoot()); });
  afterEach(async () => { await h.cleanup(); });

  it('starts a VM in a pre-started shim that is the same as a cold one, re-attaches after a restart, upgrades, and leaves nothing behind', async () => {
    // A cold VM first, as the reference: no pool.
    const cold = await h.startDaemon(['--shim-pool', '0']);
    let { api } = await h.client();
    expect(await api.create({ definition: idleDef('cold1') })).toMatchObject({ state: 'running', qemuPid: expect.any(Number) });
    expect(idleShims(h)).toEqual([]);
    cold.proc.kill('SIGTERM');
    await cold.exited;

    // The default pool is one shim, and virtqemud lists it (what tests and operators tell from an orphan).
    const daemon = await h.startDaemon();
    ({ api } = await h.client());
    const [warmPid] = await until(h, 'an idle shim', () => { const p = idleShims(h); return p.length === 1 ? p : undefined; });
    // It waits for its definition: no VM, no socket, no state file, no log of a VM.
    await delay(h.clock, 300);
    expect(idleShims(h)).toEqual([warmPid]);
    expect(await listedPool(h)).toEqual({ size: 1, idle: [warmPid] });
    expect(h.states().map((s) => s.name)).toEqual(['cold1']);

    // The shim's ready line no longer waits for its last update's reply; the create's reply still
    // comes only once virtqemud's listing says running (aggregator/listed-wait.ts).
    // Loaded and waiting (blocked reading its stdin), it has started QEMU's launcher (shim/vm/qemu-launcher.ts) and,
    // with perl, an idle lease holder (drivers/lock/spare-lifeline.ts): its two children, holding nothing yet.
    const children = (): number[] => readFileSync(`/proc/${String(warmPid)}/task/${String(warmPid)}/children`, 'latin1').trim().split(' ').filter((c) => c !== '').map(Number);
    const exe = (pid: number): string => readlinkSync(`/proc/${String(pid)}/exe`);
    const idleKids = await until(h, 'the idle shim to wait with its launcher and idle holder', () => (readFileSync(`/proc/${String(warmPid)}/syscall`, 'latin1').startsWith('0 0x0 ') && children().length === 2 ? children() : undefined));
    expect(idleKids.map(exe).sort()).toEqual([realpathSync('/bin/sh'), realpathSync('/usr/bin/perl')].sort());
    const launcher = idleKids.find((pid) => exe(pid) === realpathSync('/bin/sh'));
    const row = await api.create({ definition: idleDef('warm1') });
    expect(row).toMatchObject({ state: 'running', shimPid: warmPid, qemuPid: expect.any(Number) });
    const info = await api.getInfo({ name: 'warm1' });
    expect(info).toMatchObject({ state: 'running', shimPid: warmPid });
    // Its QEMU is the launcher the pool shim started while idle (older than the call: shim/vm/qemu-launcher.ts),
    // and looks exactly like a cold shim's directly spawned one: parent, session, stdio, fd 3, environment.
    expect(info.qemuPid).toBe(launcher);
    const qemuShape = (name: string, pid: number, shimPid: number) => {
      const st = readFileSync(`/proc/${pid}/stat`, 'latin1').split(') ')[1]?.split(' ') ?? [];
      const fd = (n: number) => readlinkSync(`/proc/${pid}/fd/${n}`).replace(name, 'NAME').replace(/\/[^/]*\.lifeline \(deleted\)$/, '/L.lifeline (deleted)');
      return {
        parentIsShim: Number(st[1]) === shimPid, sessionLeader: Number(st[3]) === pid, fds: [0, 1, 2, 3].map(fd),
        env: readFileSync(`/proc/${pid}/environ`, 'latin1').split('\0').sort(), exe: readlinkSync(`/proc/${pid}/exe`),
      };
    };
    const coldInfo = await api.getInfo({ name: 'cold1' });
    expect(qemuShape('warm1', info.qemuPid as number, warmPid as number)).toEqual(qemuShape('cold1', coldInfo.qemuPid as number, coldInfo.shimPid as number));
    expect(qemuShape('warm1', info.qemuPid as number, warmPid as number)).toMatchObject({ parentIsShim: true, sessionLeader: true });
    // Same sockets, state file and logs as a cold shim's.
    for (const s of Object.values(shimSockets(h.layout, 'warm1'))) expect(existsSync(s)).toBe(true);
    expect(shape(h, 'warm1')).toEqual(shape(h, 'cold1'));
    expect(existsSync(join(h.layout.log, 'warm1.shim-stderr.log'))).toBe(true);
    expect(existsSync(join(h.layout.log, 'warm1.log'))).toBe(existsSync(join(h.layout.log, 'cold1.log')));
    const cmdline = (pid: number) => readFileSync(`/proc/${pid}/cmdline`, 'latin1').split('\0').filter((a) => a !== h.root.dir);
    expect(cmdline(warmPid as number)).toEqual(cmdline(info.shimPid as number));
    expect(cmdline(warmPid as number)).toEqual(cmdline((await api.getInfo({ name: 'cold1' })).shimPid as number));

    // The pool refills in the background, bounded at its size.
    const [refill] = await until(h, 'a refill', () => { const p = idleShims(h); return p.length === 1 ? p : undefined; });
    expect(refill).not.toBe(warmPid);
    // The taken shim is a VM's now, listed no more; the new one is.
    expect((await listedPool(h)).idle).toEqual([refill]);

    // virtqemud's stop kills the idle shim and nothing else; the next one relists the warm VM.
    daemon.proc.kill('SIGTERM');
    await daemon.exited;
    await until(h, 'the idle shim to go', () => (procState(refill as number) === undefined ? true : undefined), 10_000);
    expect(procState(warmPid as number)).toMatch(/[RS]/);
    expect(readdirSync(h.layout.log).filter((f) => f.startsWith('shim-pool-'))).toEqual([]);
    await h.startDaemon(['--shim-pool', '0']);
    ({ api } = await h.client());
    const listed = await (async () => {
      for (let i = 0; i < 200; i++) {
        const d = (await api.listDomains({})).domains.find((r) => r.name === 'warm1');
        if (d?.state === 'running' && d.shimPid === warmPid) return d;
        await delay(h.clock, 50);
      }
      return undefined;
    })();
    expect(listed).toMatchObject({ name: 'warm1', state: 'running', shimPid: warmPid });

    // A warm shim upgrades like any other: its successor runs the same QEMU.
    const admin = await RpcClient.connect(shimSockets(h.layout, 'warm1').admin, { clock: h.clock, defaultTimeoutMs: 120_000 });
    const result = await admin.call('admin', 'upgrade', {}) as { newPid: number };
    admin.close();
    expect(result.newPid).not.toBe(warmPid);
    expect(await api.getInfo({ name: 'warm1' })).toMatchObject({ state: 'running', qemuPid: info.qemuPid });
    await api.destroy({ name: 'warm1' });
    await api.destroy({ name: 'cold1' });
    // The destroyed VMs' shims exit on their own a moment after the reply; then none is left.
    await until(h, 'no shim left', () => (idleShims(h).length === 0 ? true : undefined), 10_000);
  }, 180_000);

  it('an idle shim exits on its own when virtqemud is killed (its stdin closes), the next virtqemud lists only its own, and a broken pool size is refused', async () => {
    const daemon = await h.startDaemon(['--shim-pool', '2']);
    const idle = await until(h, 'two idle shims', () => { const p = idleShims(h); return p.length === 2 ? p.sort((a, b) => a - b) : undefined; });
    expect(await listedPool(h)).toEqual({ size: 2, idle });
    daemon.proc.kill('SIGKILL');
    await daemon.exited;
    for (const pid of idle) await until(h, `idle shim ${pid} to exit`, () => (procState(pid) === undefined || procState(pid) === 'Z' ? true : undefined), 10_000);
    expect(h.states()).toEqual([]);
    // A restarted virtqemud (default pool: one) starts its own idle shim and lists that one only.
    const again = await h.startDaemon();
    const [fresh] = await until(h, 'a new idle shim', () => { const p = idleShims(h); return p.length === 1 ? p : undefined; });
    expect(idle).not.toContain(fresh);
    expect(await listedPool(h)).toEqual({ size: 1, idle: [fresh] });
    again.proc.kill('SIGKILL');
    await again.exited;
    await until(h, 'the new idle shim to exit', () => (idleShims(h).length === 0 ? true : undefined), 10_000);
    // $VIRTQ_SHIM_POOL=0 (or --shim-pool 0) turns the pool off: none started, none listed.
    process.env['VIRTQ_SHIM_POOL'] = '0';
    try { await h.startDaemon(); } finally { delete process.env['VIRTQ_SHIM_POOL']; }
    await delay(h.clock, 500);
    expect(idleShims(h)).toEqual([]);
    expect(await listedPool(h)).toEqual({ size: 0, idle: [] });
    await expect(h.startDaemon(['--shim-pool', '17'])).rejects.toThrow(/at most 16/);
    await expect(h.startDaemon(['--shim-pool', 'many'])).rejects.toThrow(/whole number/);
  }, 60_000);
});
