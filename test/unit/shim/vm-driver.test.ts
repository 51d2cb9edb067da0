// The Vm over a fake HypervisorDriver: a move an operation asks for is refused by the lifecycle
// table; a move the hypervisor reports is taken and logged as reconciled.
import type { Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import { silentLogger, VirtqError, type Clock, type Logger, type ResolvedDefinition } from '../../../protocol/index.js';
import type { HypervisorDriver, HypervisorEvents, HypervisorMonitor } from '../../../drivers/hypervisor/types.js';
import type { MonitorListener } from '../../../shim/vm/monitor-listener.js';
import type { ExitInfo, QemuProcess } from '../../../shim/vm/qemu-process.js';
import { Vm, type VmDeps } from '../../../shim/vm/vm.js';
import { noSecretDaemon } from '../../../shim/vm/disk-resolver.js';

// Timers never fire: nothing here waits on time.
const clock: Clock = { now: () => 0, monotonic: () => 0, setTimeout: () => ({ dispose: () => undefined }) };
const def: ResolvedDefinition = {
  name: 'vm1', uuid: '00000000-0000-4000-8000-000000000001', memoryMiB: 64, vcpus: 1, machine: 'pc',
  disks: [], interfaces: [], onPoweroff: 'destroy', onReboot: 'restart', onCrash: 'preserve',
};

function world(running = true) {
  const conts: number[] = [];
  const warnings: string[] = [];
  const log: Logger = { ...silentLogger(), warn: (_o: object, msg?: string) => { warnings.push(msg ?? ''); }, child: () => log };
  let events: HypervisorEvents | undefined;
  const monitor: HypervisorMonitor = {
    isClosed: false, queryStatus: async () => ({ running, status: running ? 'running' : 'paused' }),
    cont: async () => { conts.push(spawns); }, stop: async () => undefined, systemPowerdown: async () => undefined, systemReset: async () => undefined,
    quit: async () => undefined, raw: async () => ({}), plugDisk: async () => undefined, unplugDisk: async () => undefined,
    plugNic: async () => undefined, unplugNic: async () => undefined, diskStats: async () => [], close: () => undefined,
    handOver: () => { throw new Error('not handed over in these tests'); },
  };
  const driver: HypervisorDriver = {
    prepareLaunch: async () => ({ binary: '/bin/qemu', argv: ['-S'] }),
    connectMonitor: async (_s, o) => { events = o.events; return monitor; },
  };
  let spawns = 0;
  let exit!: (e: ExitInfo) => void;
  const exited = new Promise<ExitInfo>((resolve) => { exit = resolve; });
  const kills: string[] = [];
  const proc: QemuProcess = { pid: 4242, exited, isChild: true, kill: (sig) => { kills.push(String(sig)); exit({ code: null, signal: 'SIGKILL' } as unknown as ExitInfo); }, poke: () => undefined };
  const deps: VmDeps = {
    clock, log, driver, qemuLogFile: '/dev/null', secrets: noSecretDaemon('vm-driver-test'),
    spawner: { spawn: () => { spawns++; return proc; } },
    monitors: { next: async () => ({}) as Socket, resumeOf: () => undefined } as unknown as MonitorListener,
    leases: {
      acquireForStart: async () => ({ inheritFds: [], spawned: async () => undefined, abort: async () => undefined }),
      releaseAll: async () => undefined, diskHooks: () => ({}), refuseWhileFenced: () => undefined,
    },
    onLifecycle: () => undefined,
  };
  return { vm: new Vm(def, deps), deps, warnings, events: () => events!, spawns: () => spawns, conts, kills };
}

describe('Vm over a HypervisorDriver', () => {
  it('starts through the driver and follows the events it reports', async () => {
    const w = world();
    await w.vm.start(false);
    expect(w.vm.state).toBe('running');
    expect(w.spawns()).toBe(1);
    w.events().onStop();
    expect([w.vm.state, w.vm.reason]).toEqual(['paused', 'unknown']);
    w.events().onResume();
    expect(w.vm.state).toBe('running');
  });

  it('refuses a requested move the table does not allow, before anything is spawned', async () => {
    const w = world();
    await w.vm.start(false);
    const err = await w.vm.start(false).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(VirtqError);
    expect((err as VirtqError).code).toBe('OPERATION_INVALID');
    expect(w.spawns()).toBe(1);
    expect(w.vm.state).toBe('running');
  });

  it('takes a move the hypervisor reports even when the table does not foresee it, and logs it', async () => {
    const w = world(true);
    // The state file said shutoff, but the QEMU found running says otherwise: QEMU wins.
    await w.vm.reattach(process.pid, { state: 'shutoff', reason: 'shutdown', tainted: false, qemuStartedAt: undefined });
    expect(w.vm.state).toBe('running');
    expect(w.warnings.some((m) => m.includes('lifecycle table does not allow'))).toBe(true);
  });

  // Issue 15 target 1, session 16: a start virtqemud asked for spawns QEMU (stopped, -S) while its
  // registration is in flight; the guest must not run before the registration is accepted.
  it('spawns QEMU before `claimed` settles, but continues it only after', async () => {
    const w = world();
    let accept!: () => void;
    const claimed = new Promise<void>((resolve) => { accept = resolve; });
    const starting = w.vm.start(false, undefined, claimed);
    for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
    expect(w.spawns()).toBe(1);
    expect(w.conts).toEqual([]);
    expect(w.vm.state).toBe('starting');
    accept();
    await starting;
    expect(w.conts).toEqual([1]);
    expect(w.vm.state).toBe('running');
  });

  // Issue 15 target 1, session 18: the argv line is written once QEMU is on its way, so its
  // serialization and write overlap QEMU's start instead of preceding it; a failed spawn still logs it.
  it('logs the QEMU argv after the spawn, with its pid, and before rethrowing a failed spawn', async () => {
    const order: string[] = [];
    const lines: Array<{ obj: Record<string, unknown>; msg: string }> = [];
    const logged = (deps: VmDeps): void => {
      deps.log.info = (obj: object, msg?: string) => { order.push(`log:${msg ?? ''}`); lines.push({ obj: obj as Record<string, unknown>, msg: msg ?? '' }); };
    };
    const w = world();
    logged(w.deps);
    const spawn = w.deps.spawner.spawn.bind(w.deps.spawner);
    w.deps.spawner = { spawn: (file, args, opts) => { order.push('spawn'); return spawn(file, args, opts); } };
    await w.vm.start(false);
    expect(order.indexOf('spawn')).toBeGreaterThanOrEqual(0);
    expect(order.indexOf('log:spawning qemu')).toBeGreaterThan(order.indexOf('spawn'));
    expect(lines.find((l) => l.msg === 'spawning qemu')?.obj).toMatchObject({ argv: ['-S'], qemuPid: 4242 });

    const f = world();
    logged(f.deps);
    f.deps.spawner = { spawn: () => { throw new VirtqError('OPERATION_FAILED', 'no such binary'); } };
    lines.length = 0;
    await expect(f.vm.start(false)).rejects.toMatchObject({ code: 'OPERATION_FAILED' });
    expect(lines.find((l) => l.msg === 'spawning qemu')?.obj).toMatchObject({ argv: ['-S'] });
  });

  // Issue 15 target 1, session 19: a new VM's start does the rest of its claim (ro/admin binds, the API,
  // `register`) beside QEMU's start: given as a function, it begins only once QEMU is spawned.
  it('begins a `claimed` function only after the spawn, and continues QEMU only once it settles', async () => {
    const w = world();
    let accept!: () => void;
    const spawnsAtCall: number[] = [];
    const starting = w.vm.start(false, undefined, () => {
      spawnsAtCall.push(w.spawns());
      return new Promise<void>((resolve) => { accept = resolve; });
    });
    for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
    expect(spawnsAtCall).toEqual([1]);
    expect(w.conts).toEqual([]);
    accept();
    await starting;
    expect(w.conts).toEqual([1]);

    const f = world();
    const err = await f.vm.start(false, undefined, () => Promise.reject(new VirtqError('NAME_IN_USE', 'taken'))).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(VirtqError);
    expect(f.kills).toEqual(['SIGKILL']);
    expect(f.conts).toEqual([]);
    expect(f.vm.state).not.toBe('running');
  });

  it('kills the stopped QEMU and never continues it when `claimed` rejects', async () => {
    const w = world();
    const claimed = Promise.reject(new VirtqError('NAME_IN_USE', 'taken'));
    claimed.catch(() => undefined);
    const err = await w.vm.start(false, undefined, claimed).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(VirtqError);
    expect(w.spawns()).toBe(1);
    expect(w.kills).toEqual(['SIGKILL']);
    expect(w.conts).toEqual([]);
    expect(w.vm.state).not.toBe('running');
  });

  // Issue 16, session 17: a migrated source's QEMU is SIGKILLed at once (grace 0); any other stop
  // with a grace period still asks QEMU to exit with SIGTERM first. Both end shutoff with the intent.
  it('stops QEMU with SIGKILL at once for grace 0, with SIGTERM otherwise', async () => {
    for (const [grace, signal, intent] of [[0, 'SIGKILL', 'migrated'], [5000, 'SIGTERM', 'destroyed']] as const) {
      const w = world();
      await w.vm.start(false);
      await w.vm.kill(intent, grace);
      expect(w.kills).toEqual([signal]);
      expect([w.vm.state, w.vm.reason]).toEqual(['shutoff', intent]);
    }
  });
});
