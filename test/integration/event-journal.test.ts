// The event journal with real QEMU (decision 0019): kill -9 of the shim and of virtqemud around a
// guest poweroff, a crash and a destroy; each VM's journal still tells how it stopped, dominfo
// shows it, and a client that comes back with its last sequence numbers sees every event once.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { delay, systemClock, type LifecycleEvent, type RpcClient } from '../../protocol/index.js';
import { DaemonHarness, type RunningDaemon } from '../helpers/daemon-harness.js';
import { guestDefinition, SHIM_BIN } from '../helpers/shim-harness.js';
import { idleGuest } from '../helpers/test-guest.js';
import { tmpRoot } from '../helpers/tmp-root.js';
import { procState } from '../../drivers/host/proc.js';

const idleDef = (name: string) => ({ name, memoryMiB: 32, vcpus: 1, accel: 'tcg' as const, kernel: { path: idleGuest().kernel } });

function attachShim(h: DaemonHarness, name: string): Promise<{ ok: boolean }> {
  const shim = spawn(process.execPath, [SHIM_BIN, '--root', h.root.dir, '--attach', name], { stdio: ['ignore', 'pipe', 'ignore'] });
  return new Promise((resolve) => {
    let out = '';
    shim.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('\n')) resolve(JSON.parse(out.split('\n')[0] as string) as { ok: boolean });
    });
  });
}

async function until(check: () => Promise<boolean> | boolean, ms: number, what: string): Promise<void> {
  const clock = systemClock();
  const end = clock.monotonic() + ms;
  while (!(await check())) {
    if (clock.monotonic() > end) throw new Error(`${what} did not happen within ${ms} ms`);
    await delay(clock, 50);
  }
}

/** Collects the lifecycle events pushed on `rpc` (of VM `name`). */
function collect(rpc: RpcClient, name: string): LifecycleEvent[] {
  const got: LifecycleEvent[] = [];
  void (async () => {
    for await (const ev of rpc.events()) {
      const body = ev.body as LifecycleEvent;
      if (ev.name === 'lifecycle' && body.name === name) got.push(body);
    }
  })();
  return got;
}

const seqs = (evs: LifecycleEvent[]) => evs.map((e) => e.seq);
const kinds = (evs: LifecycleEvent[]) => evs.map((e) => e.event);

describe('the event journal', () => {
  let h: DaemonHarness;
  let daemon: RunningDaemon;
  beforeEach(async () => { h = new DaemonHarness(tmpRoot()); daemon = await h.startDaemon(); });
  afterEach(async () => { await h.cleanup(); });

  async function killDaemon(): Promise<void> {
    daemon.proc.kill('SIGKILL');
    await daemon.exited;
  }

  it('keeps a guest poweroff that happened while the shim was dead, and a resuming client sees every event once', async () => {
    const { rpc, api } = await h.client();
    await rpc.call('virtq', 'subscribeEvents', {});
    const live = collect(rpc, 'off1');
    const row = await api.create({ definition: guestDefinition('off1', { cmdline: 'tg_autopoweroff=4' }) });
    await until(() => live.some((e) => e.event === 'started'), 10_000, 'the started event');
    const seen = Math.max(...live.map((e) => e.seq ?? 0));
    // The shim dies; the guest powers itself off with nobody listening (QEMU stays, -no-shutdown).
    await delay(h.clock, 500);
    process.kill(row.shimPid as number, 'SIGKILL');
    rpc.close();
    await delay(h.clock, 6000);
    expect(procState(row.qemuPid as number)).toMatch(/[RS]/);
    // The successor finds QEMU shut down, journals it, and lets it go.
    const attached = await attachShim(h, 'off1');
    expect(attached, JSON.stringify(attached)).toMatchObject({ ok: true });
    const again = await h.client();
    await until(async () => (await again.api.getEvents({ name: 'off1' })).events.at(-1)?.event === 'stopped', 20_000, 'the stop');

    const history = await again.api.getEvents({ name: 'off1' });
    expect(kinds(history.events)).toEqual(expect.arrayContaining(['started', 'shim-attached', 'shutdown', 'stopped']));
    expect(seqs(history.events)).toEqual(history.events.map((_, i) => i + 1));
    expect(history.events.at(-1)).toMatchObject({ event: 'stopped', state: 'shutoff', reason: 'shutdown', seq: history.last });

    // Resume from the last event seen: the rest once, in order, then live.
    const back = await h.client();
    const resumed = collect(back.rpc, 'off1');
    const reply = await back.rpc.call('virtq', 'subscribeEvents', { name: 'off1', since: seen }) as { last: Record<string, number> };
    expect(reply.last).toEqual({ off1: history.last });
    await until(() => resumed.length >= history.last - seen, 5000, 'the replay');
    expect(seqs([...live.filter((e) => (e.seq ?? 0) <= seen), ...resumed])).toEqual(history.events.map((e) => e.seq));
    // The journal answers for the VM whether or not it is still listed.
    await expect(back.api.getEvents({ name: 'off1', since: history.last })).resolves.toMatchObject({ events: [], last: history.last });
  });

  it('records a crash that happened with the shim and virtqemud both dead, and dominfo shows it', async () => {
    const { api } = await h.client();
    await api.define({ definition: idleDef('crash1') });
    const row = await api.start({ name: 'crash1' });
    const before = await api.getEvents({ name: 'crash1' });
    expect(kinds(before.events)).toEqual(['started']);
    await delay(h.clock, 300); // QEMU finishes its own start before its shim vanishes
    await killDaemon();
    process.kill(row.shimPid as number, 'SIGKILL');
    process.kill(row.qemuPid as number, 'SIGKILL');
    await until(() => procState(row.qemuPid as number) === undefined || procState(row.qemuPid as number) === 'Z', 5000, 'the QEMU exit');

    daemon = await h.startDaemon();
    const again = await h.client();
    const history = await again.api.getEvents({ name: 'crash1' });
    expect(history.events.map((e) => [e.seq, e.event, e.reason])).toEqual([[1, 'started', 'booted'], [2, 'crashed', 'lost-while-virtqemud-was-down']]);
    const info = await again.api.getInfo({ name: 'crash1' });
    expect(info).toMatchObject({ state: 'crashed', lastStop: { seq: 2, state: 'crashed', reason: 'lost-while-virtqemud-was-down' } });
    // A second restart finds it journaled already: no second crash record.
    await killDaemon();
    daemon = await h.startDaemon();
    const third = await h.client();
    expect((await third.api.getEvents({ name: 'crash1' })).last).toBe(2);
    // Host-wide resume tells each VM's last number.
    const reply = await third.rpc.call('virtq', 'subscribeEvents', { sinceByVm: { crash1: 1 } }) as { last: Record<string, number> };
    expect(reply.last).toEqual({ crash1: 2 });
  });

  it('journals a destroy done while virtqemud was dead; a client resuming host-wide gets it once, then live events', async () => {
    const { api } = await h.client();
    await api.define({ definition: idleDef('gone1') });
    const row = await api.start({ name: 'gone1' });
    await api.suspend({ name: 'gone1' });
    await api.resume({ name: 'gone1' });
    const first = await api.getEvents({ name: 'gone1' });
    expect(kinds(first.events)).toEqual(['started', 'suspended', 'resumed']);
    await killDaemon();
    const shim = await h.connect(row.shimSocket as string);
    await expect(shim.api.destroy({ name: 'gone1' })).resolves.toMatchObject({ state: 'shutoff', reason: 'destroyed' });
    daemon = await h.startDaemon();

    const back = await h.client();
    const got = collect(back.rpc, 'gone1');
    const reply = await back.rpc.call('virtq', 'subscribeEvents', { sinceByVm: { gone1: first.last } }) as { last: Record<string, number> };
    await until(() => got.length >= 1, 5000, 'the replay');
    expect(got.map((e) => [e.seq, e.event, e.reason])).toEqual([[4, 'stopped', 'destroyed']]);
    expect(reply.last).toEqual({ gone1: 4 });
    expect(await back.api.getInfo({ name: 'gone1' })).toMatchObject({ state: 'shutoff', lastStop: { seq: 4, state: 'shutoff', reason: 'destroyed' } });
    // Live again: the next run's events follow with the next numbers, none twice.
    await back.api.start({ name: 'gone1' });
    await back.api.destroy({ name: 'gone1' });
    await until(() => got.some((e) => e.seq === 6), 10_000, 'the live events');
    expect(seqs(got)).toEqual([4, 5, 6]);
    expect(kinds(got)).toEqual(['stopped', 'started', 'stopped']);
  });

  it('refuses hostile since values with INVALID_ARG and keeps the connection usable', async () => {
    const { rpc, api } = await h.client();
    await api.create({ definition: idleDef('host1') });
    const bad: unknown[] = [
      { name: 'host1', since: -1 }, { name: 'host1', since: 2 ** 60 }, { name: 'host1', since: '1' }, { name: 'host1', since: 1.5 },
      { name: 'host1', since: 999 }, { since: 1 }, { name: 'host1', since: 0, sinceTime: 0 }, { sinceByVm: { '../etc': 1 } },
      { sinceByVm: { host1: -3 } }, { sinceByVm: [] }, { sinceTime: 'yesterday' }, { sinceTime: -5 }, { name: 'host1', sinceByVm: {} },
    ];
    for (const args of bad) await expect(rpc.call('virtq', 'subscribeEvents', args), JSON.stringify(args)).rejects.toMatchObject({ code: 'INVALID_ARG' });
    await expect(api.getEvents({ name: 'host1', since: 999 })).rejects.toMatchObject({ code: 'INVALID_ARG', message: expect.stringContaining('past the last event') });
    await expect(rpc.call('virtq', 'getEvents', { name: 'host1', limit: 0 })).rejects.toMatchObject({ code: 'INVALID_ARG' });
    await expect(api.getEvents({ name: 'nosuch' })).rejects.toMatchObject({ code: 'NO_DOMAIN' });
    await expect(api.getEvents({ name: 'host1', since: 0 })).resolves.toMatchObject({ last: 1, events: [{ event: 'started', seq: 1 }] });
    await expect(api.getEvents({ name: 'host1', sinceTime: Date.now() + 60_000 })).resolves.toMatchObject({ events: [], last: 1 });
  });
});
