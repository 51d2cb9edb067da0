// What the source does inside the guest's pause before switchover (issue 16, session 19): QEMU's
// own `pre-switchover` event starts the handover with no query-migrate after it, and the claim is
// sent as soon as the leases are given up, before the source journals their release (the journal's
// writes overlap the claim's trip). The order that makes it safe stays: released, then claimed.
import { describe, expect, it } from 'vitest';
import { silentLogger, systemClock, VirtqError, type ResolvedDefinition } from '../../../protocol/index.js';
import type { LockManager } from '../../../drivers/lock/types.js';
import { MigrationSource } from '../../../shim/vm/migration-source.js';
import { MigrationWakeups } from '../../../shim/vm/migration-wakeups.js';
import { VmLeases } from '../../../shim/vm/leases.js';
import type { Vm } from '../../../shim/vm/vm.js';
import type { DestinationLink } from '../../../shim/migration-link.js';

const def = {
  name: 'm1', uuid: '11111111-2222-3333-4444-555555555555', disks: [{ path: '/images/m1.raw', format: 'raw', target: 'vda', readonly: false }], interfaces: [],
} as unknown as ResolvedDefinition;

function setUp(o: { refuseClaim?: boolean } = {}) {
  const order: string[] = [];
  const wakeups = new MigrationWakeups();
  const event = (status: string) => wakeups.onEvent({ event: 'MIGRATION', data: { status } });
  let paused = false;
  let continued = false;
  let cancelled = false;
  const answer = (status: string) => ({ status, 'total-time': 900, downtime: 40, ram: { total: 1, transferred: 1, remaining: 0 } });
  const vm = {
    def, state: 'running', reason: 'booted', qemuPid: 4242,
    expectedPause: undefined as string | undefined,
    expectedResume: undefined as string | undefined,
    jobs: { run: <T>(_name: string, f: () => Promise<T>): Promise<T> => f() },
    kill: (intent: string): Promise<void> => { order.push(`kill:${intent}`); vm.state = 'shutoff'; vm.reason = intent; return Promise.resolve(); },
    monitor: () => ({
      raw: (cmd: { execute: string }): Promise<unknown> => {
        if (cmd.execute === 'migrate') {
          // QEMU's events as they come: the transfer is under way, then it pauses before switchover.
          setTimeout(() => event('active'), 1);
          setTimeout(() => { paused = true; event('pre-switchover'); }, 15);
        }
        if (cmd.execute === 'migrate-continue') { continued = true; order.push('migrate-continue'); }
        if (cmd.execute === 'migrate_cancel') { cancelled = true; order.push('migrate_cancel'); }
        if (cmd.execute !== 'query-migrate') return Promise.resolve(cmd.execute === 'query-migrate-capabilities' ? [] : {});
        const status = cancelled ? 'cancelled' : continued ? 'completed' : paused ? 'pre-switchover' : 'active';
        order.push(`query:${status}`);
        return Promise.resolve(answer(status));
      },
      queryStatus: () => Promise.resolve({ status: 'paused', running: false }),
      cont: (): Promise<void> => { order.push('cont'); return Promise.resolve(); },
      stop: () => Promise.resolve(),
    }),
  };
  const manager = {
    resourceKey: (path: string) => Promise.resolve(path),
    releaseAll: () => { order.push('released'); return Promise.resolve(); },
    acquireForRunning: () => { order.push('leases back'); return Promise.resolve(); },
  } as unknown as LockManager;
  const leases = new VmLeases({ manager, status: { plugin: 'test', ok: true } }, { vm: def.name, uuid: def.uuid, shimPid: 1 }, silentLogger());
  leases.onChange = (c) => { order.push(`journal:${c.kind}`); };
  const link: DestinationLink = {
    prepare: () => Promise.resolve({ uri: 'unix:/nonexistent/m.sock', early: true }),
    claim: () => {
      order.push('claim');
      // As the RPC connection writes a call's frame: at the next tick (its cork).
      process.nextTick(() => order.push('claim written'));
      return o.refuseClaim === true ? Promise.reject(new VirtqError('LOCK_CONFLICT', 'held elsewhere')) : Promise.resolve();
    },
    finish: () => { order.push('finish'); return Promise.resolve(); },
    abort: () => { order.push('abort'); return Promise.resolve(); },
    forget: () => Promise.resolve(),
    define: () => Promise.resolve(),
    close: () => undefined,
  };
  const source = new MigrationSource({
    vm: vm as unknown as Vm, leases, clock: systemClock(), log: silentLogger(), wakeups,
    connect: () => Promise.resolve(link), undefineSource: () => Promise.resolve(),
  });
  return { source, order };
}

const migrate = (s: MigrationSource) => s.migrate({ name: 'm1', destUri: 'qemu:///system?root=/nonexistent', live: true });

describe('the source in the guest\'s pause before switchover', () => {
  it('hands the leases over on QEMU\'s pre-switchover event, without asking query-migrate again', async () => {
    const { source, order } = setUp();
    const r = await migrate(source);
    expect(r.reason).toBe('migrated');
    const released = order.indexOf('released');
    expect(released).toBeGreaterThan(0);
    expect(order.slice(0, released)).not.toContain('query:pre-switchover');
    expect(order.slice(0, released)).toContain('query:active');
  });

  it('sends the claim before it journals the release, and only after the leases are given up', async () => {
    const { source, order } = setUp();
    await migrate(source);
    expect(order.indexOf('released')).toBeLessThan(order.indexOf('claim'));
    expect(order.indexOf('claim')).toBeLessThan(order.indexOf('claim written'));
    expect(order.indexOf('claim written')).toBeLessThan(order.indexOf('journal:lease-released'));
    expect(order.indexOf('journal:lease-released')).toBeLessThan(order.indexOf('migrate-continue'));
  });

  it('takes its leases back and resumes nothing early when the destination refuses the claim', async () => {
    const { source, order } = setUp({ refuseClaim: true });
    await expect(migrate(source)).rejects.toMatchObject({ code: 'LOCK_CONFLICT' });
    expect(order).not.toContain('migrate-continue');
    expect(order.indexOf('abort')).toBeLessThan(order.indexOf('leases back'));
    expect(order.indexOf('leases back')).toBeLessThan(order.indexOf('migrate_cancel'));
  });
});
