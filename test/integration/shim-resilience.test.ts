// What happens around the shim: QEMU killed from outside, the shim killed (the VM survives and
// a successor re-attaches), a second shim for a name already in use, and bad definitions.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { delay, systemClock, type LifecycleEvent } from '../../protocol/index.js';
import { procState } from '../../shim/vm/qemu-process.js';
import { guestDefinition, ShimHarness } from '../helpers/shim-harness.js';
import { tmpRoot } from '../helpers/tmp-root.js';
import { idleGuest } from '../helpers/test-guest.js';

describe('virtq-shim resilience', () => {
  let h: ShimHarness;
  beforeEach(() => { h = new ShimHarness(tmpRoot()); });
  afterEach(async () => { await h.cleanup(); });

  it('reports a crash with the signal when QEMU is killed from outside', async () => {
    const vm = await h.start(guestDefinition('crash1'));
    await vm.rpc.call('virtq', 'subscribeEvents', {});
    const events = vm.rpc.events()[Symbol.asyncIterator]();
    process.kill(vm.reply.qemuPid as number, 'SIGKILL');
    let ev: LifecycleEvent;
    do ev = (await events.next()).value.body as LifecycleEvent; while (ev.event !== 'crashed');
    expect(ev).toMatchObject({ name: 'crash1', state: 'crashed', reason: 'signal-SIGKILL', details: { signal: 'SIGKILL' } });
    await expect(vm.exited).resolves.toBe(0);
    const state = JSON.parse(readFileSync(h.root.path('run', 'shims', 'crash1.json'), 'utf8')) as Record<string, unknown>;
    expect(state).toMatchObject({ state: 'crashed', reason: 'signal-SIGKILL' });
  });

  it('keeps the VM running when the shim is killed, and a successor re-attaches with the same state', async () => {
    const vm = await h.start(guestDefinition('phoenix'));
    const con = await h.console(vm.rpc, 'phoenix');
    await con.reader.waitFor('GUEST-READY', 30_000);
    await vm.api.suspend({ name: 'phoenix' });
    const qemuPid = vm.reply.qemuPid as number;
    vm.proc.kill('SIGKILL');
    await vm.exited;
    expect(procState(qemuPid)).toMatch(/[RS]/);

    // Starting the same name afresh is refused while its QEMU lives.
    writeFileSync(h.root.path('phoenix2.json'), JSON.stringify(guestDefinition('phoenix')));
    const dup = await h.run(['--no-register', '--definition', h.root.path('phoenix2.json')], 'phoenix');
    expect(dup.reply).toMatchObject({ ok: false, error: { code: 'NAME_IN_USE', message: expect.stringContaining('--attach') } });

    const successor = await h.run(['--no-register', '--attach', 'phoenix'], 'phoenix');
    expect(successor.reply).toMatchObject({ ok: true, qemuPid, state: 'paused' });
    const { api, rpc } = await h.connect(successor.reply.socket as string);
    const info = await api.getInfo({ name: 'phoenix' });
    expect(info).toMatchObject({ state: 'paused', reason: 'user', qemuPid, shimPid: successor.proc.pid });
    await api.resume({ name: 'phoenix' });
    const con2 = await h.console(rpc, 'phoenix');
    con2.write('\n');
    await con2.reader.waitFor('tg# ', 20_000);
    await expect(api.shutdown({ name: 'phoenix', timeoutSec: 30 })).resolves.toEqual({ state: 'shutoff', reason: 'shutdown' });
    await expect(successor.exited).resolves.toBe(0);
  });

  it('leaves the VM running when the shim gets SIGTERM', async () => {
    const vm = await h.start(guestDefinition('term1'));
    vm.proc.kill('SIGTERM');
    await expect(vm.exited).resolves.toBe(0);
    expect(procState(vm.reply.qemuPid as number)).toMatch(/[RS]/);
    const successor = await h.run(['--no-register', '--attach', 'term1'], 'term1');
    expect(successor.reply).toMatchObject({ ok: true, state: 'running' });
  });

  it('runs a successor without virtqemud when its predecessor ran without it, whatever its flags', async () => {
    const vm = await h.start(guestDefinition('solo1'));
    vm.proc.kill('SIGTERM');
    await expect(vm.exited).resolves.toBe(0);
    // No --no-register: before, it waited for a virtqemud that never knew the VM, then gave up.
    const successor = await h.run(['--register-timeout', '1', '--attach', 'solo1'], 'solo1');
    expect(successor.reply).toMatchObject({ ok: true, state: 'running' });
    // Past its 1 s register timeout it still serves: it never waited for virtqemud.
    const outcome = await Promise.race([successor.exited.then(() => 'exited'), delay(systemClock(), 1500).then(() => 'serving')]);
    expect(outcome).toBe('serving');
    const { api } = await h.connect(successor.reply.socket as string);
    await expect(api.getState({ name: 'solo1' })).resolves.toMatchObject({ state: 'running' });
    const state = JSON.parse(readFileSync(h.root.path('run', 'shims', 'solo1.json'), 'utf8')) as Record<string, unknown>;
    expect(state).toMatchObject({ registered: false });
    await api.destroy({ name: 'solo1' });
    await expect(successor.exited).resolves.toBe(0);
  });

  it('refuses a second shim for a name that a live shim serves', async () => {
    await h.start(guestDefinition('dup1'));
    writeFileSync(h.root.path('dup.json'), JSON.stringify(guestDefinition('dup1')));
    const second = await h.run(['--no-register', '--definition', h.root.path('dup.json')], 'dup1');
    expect(second.reply).toMatchObject({ ok: false, error: { code: 'NAME_IN_USE' } });
    await expect(second.exited).resolves.toBe(1);
  });

  it('refuses a bad definition with the field path and starts nothing', async () => {
    const bad = { ...guestDefinition('bad1'), memoryMiB: 'lots' };
    writeFileSync(h.root.path('bad.json'), JSON.stringify(bad));
    const r = await h.run(['--no-register', '--definition', h.root.path('bad.json')], 'bad1');
    expect(r.reply).toMatchObject({ ok: false, error: { code: 'INVALID_ARG', message: expect.stringContaining('/memoryMiB') } });
    await expect(r.exited).resolves.toBe(1);
  });

  // Found by the chaos suite (a disk that filled up while a VM started): the shim reported a VM
  // started whose state file it could not write, so nobody could have taken it over; and a start
  // that failed after QEMU was spawned left that QEMU running with nothing managing it.
  it('does not start a VM whose state file cannot be written, and leaves no QEMU behind', async () => {
    // A directory where the state file goes: every atomic write of it fails at the rename.
    mkdirSync(h.root.path('run', 'shims', 'nostate1.json'), { recursive: true });
    writeFileSync(h.root.path('nostate1.def.json'), JSON.stringify({ name: 'nostate1', memoryMiB: 32, vcpus: 1, accel: 'tcg', kernel: { path: idleGuest().kernel } }));
    const r = await h.run(['--no-register', '--definition', h.root.path('nostate1.def.json')], 'nostate1');
    expect(r.reply).toMatchObject({ ok: false, error: { code: 'OPERATION_FAILED', message: expect.stringContaining('cannot start VM "nostate1": cannot write') } });
    await expect(r.exited).resolves.toBe(1);
    const qemus = readdirSync('/proc').filter((p) => {
      try {
        return /^\d+$/.test(p) && readFileSync(`/proc/${p}/cmdline`, 'latin1').includes(h.root.dir) && !['Z', 'X'].includes(procState(Number(p)) ?? 'X');
      } catch {
        return false;
      }
    });
    expect(qemus).toEqual([]);
  });

  it('reports attaching to a VM that does not run as NO_DOMAIN', async () => {
    const r = await h.run(['--no-register', '--attach', 'ghost'], 'ghost');
    expect(r.reply).toMatchObject({ ok: false, error: { code: 'NO_DOMAIN' } });
  });
});
