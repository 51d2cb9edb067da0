// The shim running the real test guest under QEMU: boot, queries, pause, disks, passthrough,
// reset and a clean guest shutdown, all through the shim's own socket.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { VirtqError, type LifecycleEvent } from '../../protocol/index.js';
import { guestDefinition, ShimHarness } from '../helpers/shim-harness.js';
import { tmpRoot } from '../helpers/tmp-root.js';

async function nextEvent(events: AsyncIterator<{ name: string; body: unknown }>, kind: string): Promise<LifecycleEvent> {
  for (;;) {
    const r = await events.next();
    if (r.done === true) throw new Error(`event stream ended before ${kind}`);
    const ev = r.value.body as LifecycleEvent;
    if (ev.event === kind) return ev;
  }
}

describe('virtq-shim lifecycle', () => {
  let h: ShimHarness;
  beforeEach(() => { h = new ShimHarness(tmpRoot()); });
  afterEach(async () => { await h.cleanup(); });

  it('boots the guest, serves queries, pauses, hot-plugs a disk, taints on passthrough, resets and shuts down', async () => {
    const vm = await h.start(guestDefinition('life1'));
    expect(vm.reply).toMatchObject({ ok: true, name: 'life1', state: 'running' });
    const con = await h.console(vm.rpc, 'life1');
    await con.reader.waitFor('GUEST-READY', 30_000);

    const info = await vm.api.getInfo({ name: 'life1' });
    expect(info).toMatchObject({ name: 'life1', state: 'running', reason: 'booted', vcpus: 1, memoryMiB: 128, tainted: false, accel: 'tcg' });
    expect(info.qemuPid).toBe(vm.reply.qemuPid);
    expect(info.cpuTimeSec).toBeGreaterThan(0);
    expect(info.uptimeSec).toBeGreaterThan(0);
    // The console log is written behind the live stream: it has the line within moments.
    await expect.poll(() => readFileSync(h.root.path('log', 'life1.console.log'), 'utf8'), { timeout: 2000 }).toContain('GUEST-READY');

    await vm.rpc.call('virtq', 'subscribeEvents', { name: 'life1' });
    const events = vm.rpc.events()[Symbol.asyncIterator]();
    await expect(vm.api.suspend({ name: 'life1' })).resolves.toEqual({ state: 'paused', reason: 'user' });
    expect((await nextEvent(events, 'suspended')).state).toBe('paused');
    await expect(vm.api.suspend({ name: 'life1' })).rejects.toMatchObject({ code: 'OPERATION_INVALID', message: expect.stringContaining('paused') });
    await expect(vm.api.resume({ name: 'life1' })).resolves.toEqual({ state: 'running', reason: 'unpaused' });
    expect((await nextEvent(events, 'resumed')).state).toBe('running');

    // Hot-plug a disk and see the guest find it, then unplug it.
    const img = h.root.path('extra.img');
    execFileSync('qemu-img', ['create', '-q', '-f', 'raw', img, '8M']);
    let mark = con.reader.mark();
    await vm.api.attachDisk({ name: 'life1', disk: { path: img, target: 'vdb', format: 'raw' } });
    await con.reader.waitFor('TG-BLOCK-ADD vda sectors=16384', 20_000, mark);
    expect((await vm.api.getDefinition({ name: 'life1' })).disks).toEqual([expect.objectContaining({ path: img, target: 'vdb' })]);
    expect((await vm.api.blockStats({ name: 'life1' })).disks).toEqual([expect.objectContaining({ target: 'vdb' })]);
    mark = con.reader.mark();
    await vm.api.detachDisk({ name: 'life1', target: 'vdb' });
    await con.reader.waitFor('TG-BLOCK-REMOVE vda', 20_000, mark);
    expect((await vm.api.getDefinition({ name: 'life1' })).disks).toEqual([]);
    await expect(vm.api.detachDisk({ name: 'life1', target: 'vdb' })).rejects.toMatchObject({ code: 'INVALID_ARG' });

    // Raw QMP passthrough works and taints the VM.
    const raw = await vm.api.qemuMonitorCommand({ name: 'life1', command: { execute: 'query-status' } });
    expect(raw.result).toMatchObject({ status: 'running' });
    expect((await vm.api.getInfo({ name: 'life1' })).tainted).toBe(true);
    await expect(vm.api.qemuMonitorCommand({ name: 'life1', command: { execute: 'no-such-command' } })).rejects.toMatchObject({ code: 'QMP_ERROR' });

    // Reset: the guest boots again.
    mark = con.reader.mark();
    await vm.api.reset({ name: 'life1' });
    expect((await nextEvent(events, 'reset')).name).toBe('life1');
    await con.reader.waitFor('GUEST-READY', 30_000, mark);

    // Shutdown through ACPI: the guest powers off and the shim records why, then exits.
    const result = await vm.api.shutdown({ name: 'life1', timeoutSec: 30 });
    expect(result).toEqual({ state: 'shutoff', reason: 'shutdown' });
    expect((await nextEvent(events, 'stopped')).reason).toBe('shutdown');
    await expect(vm.exited).resolves.toBe(0);
    const state = JSON.parse(readFileSync(h.root.path('run', 'shims', 'life1.json'), 'utf8')) as { state: string; reason: string };
    expect(state).toMatchObject({ state: 'shutoff', reason: 'shutdown' });
    expect(existsSync(h.root.path('run', 'shims', 'life1.sock'))).toBe(false);
    expect(readFileSync(h.root.path('log', 'life1.console.log'), 'utf8')).toContain('GUEST-POWEROFF');
  });

  it('forces a shutdown that the guest ignores once the timeout passes, and says so', async () => {
    const vm = await h.start(guestDefinition('deaf1', { cmdline: 'tg_noacpi=1' }));
    const con = await h.console(vm.rpc, 'deaf1');
    await con.reader.waitFor('GUEST-READY', 30_000);
    await expect(vm.api.shutdown({ name: 'deaf1', timeoutSec: 2 })).resolves.toEqual({ state: 'shutoff', reason: 'shutdown-timeout' });
    await expect(vm.exited).resolves.toBe(0);
  });

  it('answers names it does not run with NO_DOMAIN and bad arguments with INVALID_ARG', async () => {
    const vm = await h.start(guestDefinition('names1'));
    await expect(vm.api.getState({ name: 'other' })).rejects.toMatchObject({ code: 'NO_DOMAIN' });
    await expect(vm.rpc.call('virtq', 'getState', { name: '../etc' })).rejects.toMatchObject({ code: 'INVALID_ARG' });
    await expect(vm.rpc.call('virtq', 'listDomains', {})).rejects.toMatchObject({ code: 'NOT_SUPPORTED' });
    const ro = await h.connect(h.root.path('run', 'shims', 'names1-ro.sock'));
    await expect(ro.api.getState({ name: 'names1' })).resolves.toMatchObject({ state: 'running' });
    await expect(ro.api.destroy({ name: 'names1' })).rejects.toSatisfy((e: VirtqError) => e.code === 'PERMISSION_DENIED');
    await expect(ro.api.qemuMonitorCommand({ name: 'names1', command: { execute: 'quit' } })).rejects.toMatchObject({ code: 'PERMISSION_DENIED' });
    await expect(vm.api.destroy({ name: 'names1' })).resolves.toEqual({ state: 'shutoff', reason: 'destroyed' });
  });
});
