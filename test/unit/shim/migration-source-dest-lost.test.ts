// The destination lost while memory moves (session 21): its shim or its virtqemud gone, nothing
// there could take the guest, so the source cancels at once instead of at the switchover (which a
// capped transfer reaches only much later), with the destination's reason as the error. The
// leases were never given up; the guest runs on here. Once the switchover is reached, the check stops.
import { describe, expect, it } from 'vitest';
import { silentLogger, systemClock, VirtqError } from '../../../protocol/index.js';
import { MigrationSource } from '../../../shim/vm/migration-source.js';
import type { Vm } from '../../../shim/vm/vm.js';
import type { DestinationLink } from '../../../shim/migration-link.js';

/** `lostAfter`: the destination check answers "lost" from that call on (undefined: never). `preAfter`: query-migrate says pre-switchover from that poll on. */
function setUp(lostAfter: number | undefined, preAfter: number | undefined) {
  const order: string[] = [];
  let checks = 0;
  let polls = 0;
  let cancelled = false;
  const answer = (status: string) => ({ status, 'total-time': 900, downtime: 40, ram: { total: 1, transferred: 1, remaining: 0 } });
  const vm = {
    def: { name: 'm1', uuid: '11111111-2222-3333-4444-555555555555', disks: [], interfaces: [] },
    state: 'running', reason: 'booted', qemuPid: 4242,
    expectedPause: undefined as string | undefined, expectedResume: undefined as string | undefined,
    jobs: { run: <T>(_name: string, f: () => Promise<T>): Promise<T> => f() },
    kill: (intent: string): Promise<void> => { order.push(`kill:${intent}`); vm.state = 'shutoff'; vm.reason = intent; return Promise.resolve(); },
    monitor: () => ({
      raw: (cmd: { execute: string }): Promise<unknown> => {
        if (cmd.execute === 'migrate_cancel') { cancelled = true; order.push('migrate_cancel'); }
        if (cmd.execute === 'migrate-continue') order.push('migrate-continue');
        if (cmd.execute !== 'query-migrate') return Promise.resolve(cmd.execute === 'query-migrate-capabilities' ? [] : {});
        polls++;
        if (cancelled) return Promise.resolve(answer('cancelled'));
        if (preAfter !== undefined && polls >= preAfter) return Promise.resolve(answer(order.includes('migrate-continue') ? 'completed' : 'pre-switchover'));
        return Promise.resolve(answer('active'));
      },
      queryStatus: () => Promise.resolve({ status: 'running', running: true }),
      cont: (): Promise<void> => { order.push('cont'); return Promise.resolve(); },
      stop: () => Promise.resolve(),
    }),
  };
  const link: DestinationLink = {
    prepare: () => Promise.resolve({ uri: 'unix:/nonexistent/m.sock', early: true }),
    claim: () => { order.push('claim'); return Promise.resolve(); },
    finish: () => { order.push('finish'); return Promise.resolve(); },
    abort: () => { order.push('abort'); return Promise.reject(new VirtqError('SHIM_UNAVAILABLE', 'its shim is gone')); },
    forget: () => { order.push('forget'); return Promise.resolve(); },
    lost: () => {
      checks++;
      return Promise.resolve(lostAfter !== undefined && checks >= lostAfter ? new VirtqError('SHIM_UNAVAILABLE', 'the destination\'s shim for VM "m1" is gone') : undefined);
    },
    define: () => Promise.resolve(),
    close: () => undefined,
  };
  const source = new MigrationSource({
    vm: vm as unknown as Vm,
    leases: {
      handOver: () => { order.push('released'); return Promise.resolve(); },
      acquireAllForRunning: () => { order.push('leases back'); return Promise.resolve(); },
    },
    clock: systemClock(), log: silentLogger(), connect: () => Promise.resolve(link), undefineSource: () => Promise.resolve(),
    destCheckMs: 15,
  });
  return { source, order, checks: () => checks };
}

const migrate = (s: MigrationSource) => s.migrate({ name: 'm1', destUri: 'qemu:///system?root=/nonexistent', live: true });

describe('the destination lost while memory moves', () => {
  it('cancels the migration at once with the destination\'s reason; nothing was handed over, the destination is forgotten', async () => {
    const { source, order } = setUp(3, undefined);
    await expect(migrate(source)).rejects.toMatchObject({ code: 'SHIM_UNAVAILABLE', message: expect.stringContaining('shim for VM "m1" is gone') });
    expect(order).toContain('migrate_cancel');
    expect(order).toContain('abort');
    expect(order).toContain('forget');
    for (const step of ['released', 'claim', 'leases back', 'finish', 'migrate-continue']) expect(order).not.toContain(step);
    expect(order.some((s) => s.startsWith('kill:'))).toBe(false);
    expect(await source.jobInfo()).toMatchObject({ type: 'none' });
  });

  it('keeps asking while the destination can take the guest, and stops once the switchover is reached', async () => {
    const { source, order, checks } = setUp(undefined, 12);
    const r = await migrate(source);
    expect(r.reason).toBe('migrated');
    const seen = checks();
    expect(seen).toBeGreaterThan(0);
    await new Promise((resolve) => setTimeout(resolve, 60));
    expect(checks()).toBe(seen);
    expect(order).toContain('claim');
  });
});
