// The shim's registrar (shim/registration.ts): a start's updates go out at once, not each after
// the previous reply, and the registrar counts them for the ready line (issue 15, session 14):
// virtqemud's start reply then waits for its own listing instead of the shim waiting for replies.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RpcServer, VirtqError, registryProgram, silentLogger, systemClock } from '../../../protocol/index.js';
import { connectRegistrar, type Registrar } from '../../../shim/registration.js';
import { rejoinWaits } from '../../../shim/rejoin-pace.js';
import { tmpRoot, type TmpRoot } from '../../helpers/tmp-root.js';

const clock = systemClock();

describe('VirtqemudRegistrar', () => {
  let root: TmpRoot;
  let server: RpcServer;
  let registrar: Registrar | undefined;
  const seen: string[] = [];
  const release: Array<() => void> = [];

  const registered: Array<{ at: number; reattach: boolean; state: string }> = [];
  const calls: string[] = [];
  let refuse = false;
  /** Called at the next `register` the server takes (once). */
  let onRegistered: (() => void) | undefined;
  const serve = async (): Promise<RpcServer> => {
    const s = new RpcServer({ daemon: 'virtqemud', version: '0.1', role: 'aggregator', clock, log: silentLogger() });
    s.register({
      program: registryProgram,
      handlers: {
        register: (r) => {
          calls.push('register');
          if (refuse) throw new VirtqError('NAME_IN_USE', 'taken');
          registered.push({ at: performance.now(), reattach: r.reattach, state: r.state });
          onRegistered?.();
          onRegistered = undefined;
          return {};
        },
        // Replies only when the test releases it: a later update must not wait for it.
        update: (u) => { seen.push(u.state); calls.push(`update ${u.state}`); return new Promise((resolve) => release.push(() => resolve({}))); },
        unregister: () => ({}),
      },
    });
    await s.listen(root.path('rw.sock'), 'rw', 0o600);
    return s;
  };

  beforeEach(async () => {
    root = tmpRoot();
    seen.length = 0;
    onRegistered = undefined;
    release.length = 0;
    registered.length = 0;
    calls.length = 0;
    refuse = false;
    server = await serve();
  });

  afterEach(async () => {
    registrar?.close();
    await server.close();
    root.remove();
  });

  const reg = {
    name: 'r1', uuid: '00000000-0000-4000-8000-000000000001', shimPid: process.pid, socket: '/r/r1.sock', roSocket: '/r/r1-ro.sock',
    adminSocket: '/r/r1-admin.sock', stateFile: '/r/r1.json', state: 'starting', reason: 'booting', reattach: false,
  } as const;

  // Issue 15 target 4, session 15: a restarted virtqemud serves its first listing without the shims, so
  // they do not rush it: no try before the pace's first wait, even with the socket back at once.
  it('registers again as a re-attach after virtqemud returns, not before the first paced wait', async () => {
    registrar = await connectRegistrar(root.path('rw.sock'), clock, silentLogger(), 5000, { firstMs: 150, spreadMs: 50, maxMs: 400, random: () => 0.5 });
    await registrar.register(reg);
    const lost = performance.now();
    await server.close();
    server = await serve();
    for (let i = 0; i < 200 && registered.length < 2; i++) await new Promise((r) => setTimeout(r, 5));
    expect(registered.map((r) => r.reattach)).toEqual([false, true]);
    // 150 + 0.5 × 50 ms after the loss (timers fire no earlier than asked; a little slack for the clocks).
    expect((registered[1] as { at: number }).at - lost).toBeGreaterThanOrEqual(170);
  });

  // Session 21 (the migration chaos): a state change while virtqemud is lost is tried at once, so a
  // restarted virtqemud lists it now, not after the pace's wait (a VM that migrated away within that
  // wait was listed running there, then shutoff/migrated for good).
  it('re-registers at once, with the new state, when the state changes while it waits to rejoin', async () => {
    // Its log says when it noticed the loss (the connection's close event): from then on it waits to rejoin.
    let noticed: () => void = () => undefined;
    const lost = new Promise<void>((resolve) => { noticed = resolve; });
    const log = { ...silentLogger(), warn: (o: object) => { if ((o as { msgId?: string }).msgId === 'VIRTQEMUD_LOST') noticed(); } };
    registrar = await connectRegistrar(root.path('rw.sock'), clock, log, 5000, { firstMs: 60_000, spreadMs: 0, maxMs: 60_000, random: () => 0 });
    await registrar.register({ ...reg, state: 'running', reason: 'booted' });
    await server.close();
    server = await serve();
    await lost;
    const before = registered.length;
    const again = new Promise<void>((resolve) => { onRegistered = resolve; });
    registrar.update({ state: 'paused', reason: 'migration' });
    // Registered again (a re-attach) within the test's timeout, not after the minute the pace would have waited, with the new state.
    await again;
    expect(registered.slice(before)).toEqual([expect.objectContaining({ reattach: true, state: 'paused' })]);
  }, 10_000); // a registrar that waited for its pace would take the whole minute

  it('paces its tries: the first in [first, first + spread), then doubling to the cap, each ±25 %', () => {
    const rs = [0, 0.999, 0, 0.999, 0, 0.5];
    const next = rejoinWaits({ firstMs: 300, spreadMs: 500, maxMs: 2000, random: () => rs.shift() ?? 0.5 });
    expect(next()).toBe(300);
    expect(next()).toBeCloseTo(300 * 1.2495, 5);
    expect(next()).toBe(600 * 0.75);
    expect(next()).toBeCloseTo(1200 * 1.2495, 5);
    expect(next()).toBe(2000 * 0.75);
    expect(next()).toBe(2000);
    expect(next()).toBe(2000);
  });

  it('sends each update without waiting for the previous reply, counts them, and flush waits for every reply', async () => {
    registrar = await connectRegistrar(root.path('rw.sock'), clock, silentLogger(), 5000);
    registrar.update({ state: 'starting', reason: 'booting' }); // before register: kept for re-registration, not sent
    expect(registrar.sent).toBe(0);
    await registrar.register({
      name: 'r1', uuid: '00000000-0000-4000-8000-000000000001', shimPid: process.pid, socket: '/r/r1.sock', roSocket: '/r/r1-ro.sock',
      adminSocket: '/r/r1-admin.sock', stateFile: '/r/r1.json', state: 'starting', reason: 'booting', reattach: false,
    });
    registrar.update({ state: 'starting', reason: 'booting', qemuPid: 42 });
    registrar.update({ state: 'running', reason: 'booted', qemuPid: 42 });
    expect(registrar.sent).toBe(2);
    await registrar.posted();
    // Both reached virtqemud's handler although the first is not answered yet.
    for (let i = 0; i < 100 && seen.length < 2; i++) await new Promise((r) => setTimeout(r, 10));
    expect(seen).toEqual(['starting', 'running']);
    let flushed = false;
    void registrar.flush().then(() => { flushed = true; });
    await new Promise((r) => setTimeout(r, 20));
    expect(flushed).toBe(false);
    for (const r of release) r();
    await registrar.flush();
    expect(flushed).toBe(true);
  });

  // Issue 15 target 1, session 16: a start's QEMU spawns while `register` is in flight, and its
  // `starting` update (QEMU's pid) must reach virtqemud after the register, not be dropped.
  it('sends and counts updates made while register awaits its reply, after the register frame', async () => {
    registrar = await connectRegistrar(root.path('rw.sock'), clock, silentLogger(), 5000);
    const registering = registrar.register(reg);
    registrar.update({ state: 'starting', reason: 'booting', qemuPid: 42 });
    expect(registrar.sent).toBe(1);
    await registering;
    for (let i = 0; i < 100 && seen.length < 1; i++) await new Promise((r) => setTimeout(r, 10));
    expect(calls).toEqual(['register', 'update starting']);
    for (const r of release) r();
    await registrar.flush();
  });

  it('after a refused register, later updates are not sent', async () => {
    refuse = true;
    registrar = await connectRegistrar(root.path('rw.sock'), clock, silentLogger(), 5000);
    await expect(registrar.register(reg)).rejects.toMatchObject({ code: 'NAME_IN_USE' });
    registrar.update({ state: 'running', reason: 'booted', qemuPid: 42 });
    expect(registrar.sent).toBe(0);
    await new Promise((r) => setTimeout(r, 50));
    expect(calls).toEqual(['register']);
  });
});
