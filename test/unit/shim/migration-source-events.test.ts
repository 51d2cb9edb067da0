// The source's waits with QEMU's MIGRATION events flowing (session 24): an event that names the
// status waited for ends the wait without a query-migrate (inside the switchover's pause that query
// was a round trip more), an event of a state on the way wakes no query, the fallback's timer still
// queries, and a `failed` event is queried so that QEMU's own error reaches the caller.
import { describe, expect, it } from 'vitest';
import { scriptedSource } from '../../helpers/scripted-source.js';
import { MigrationWakeups } from '../../../shim/vm/migration-wakeups.js';
import type { DestinationLink } from '../../../shim/migration-link.js';

/** QEMU's statuses after `migrate` and after `migrate-continue`, each sent as an event `ms` after that command. */
type Plan = Array<[status: string, ms: number]>;

function setUp(afterMigrate: Plan, afterContinue: Plan, finishFails = false) {
  const order: string[] = [];
  const wakeups = new MigrationWakeups();
  let state = 'none';
  const play = (plan: Plan): void => {
    for (const [status, ms] of plan) {
      setTimeout(() => {
        state = status;
        order.push(`event:${status}`);
        wakeups.onEvent({ event: 'MIGRATION', data: { status } });
      }, ms);
    }
  };
  const answer = () => ({
    // Before `completed`, total-time is the time so far and there is no downtime yet.
    status: state, 'total-time': state === 'completed' ? 900 : 5, ...(state === 'completed' ? { downtime: 40 } : {}), ram: { total: 1, transferred: 1, remaining: 0 },
    ...(state === 'failed' ? { 'error-desc': 'Unable to write to socket: Broken pipe' } : {}),
  });
  const monitor = {
    raw: (cmd: { execute: string }): Promise<unknown> => {
      if (cmd.execute === 'migrate') play(afterMigrate);
      if (cmd.execute === 'migrate-continue') { order.push('migrate-continue'); play(afterContinue); }
      if (cmd.execute === 'query-migrate') { order.push(`query:${state}`); return Promise.resolve(answer()); }
      return Promise.resolve(cmd.execute === 'query-migrate-capabilities' ? [] : {});
    },
    queryStatus: () => Promise.resolve({ status: 'paused', running: false }),
    cont: (): Promise<void> => { order.push('cont'); return Promise.resolve(); },
    stop: () => Promise.resolve(),
  };
  const vm = {
    def: { name: 'm1', uuid: '11111111-2222-3333-4444-555555555555', disks: [], interfaces: [] },
    state: 'running', reason: 'booted', qemuPid: 4242,
    expectedPause: undefined as string | undefined,
    jobs: { run: <T>(_name: string, f: () => Promise<T>): Promise<T> => f() },
    kill: (intent: string): Promise<void> => { order.push(`kill:${intent}`); vm.state = 'shutoff'; vm.reason = intent; return Promise.resolve(); },
    monitor: () => monitor,
  };
  const link: DestinationLink = {
    prepare: () => Promise.resolve({ uri: 'unix:/nonexistent/m.sock', early: true, claimsInFinish: true }),
    claim: () => Promise.resolve(),
    // A destination whose load failed with the stream: its finish fails a little after this QEMU said `failed`.
    finish: () => { order.push('finish'); return finishFails ? new Promise((_resolve, reject) => setTimeout(() => reject(new Error('its QEMU exited')), 30)) : Promise.resolve(); },
    abort: () => { order.push('abort'); return Promise.resolve(); },
    forget: () => Promise.resolve(),
    lost: () => Promise.resolve(undefined),
    define: () => Promise.resolve(),
    close: () => undefined,
  };
  const source = scriptedSource(vm, link, order, { wakeups, destCheckMs: 10_000 });
  return { order, migrate: () => source.migrate({ name: 'm1', destUri: 'qemu:///system?root=/nonexistent', live: true }, () => Promise.resolve()) };
}

const between = (order: string[], from: string, to: string): string[] => order.slice(order.indexOf(from) + 1, order.indexOf(to));

describe('the source\'s waits on QEMU\'s MIGRATION events', () => {
  it('hands the leases over on the pre-switchover event itself, with no query inside the pause', async () => {
    // `completed` within the switchover's 10 ms fallback: no timer's query sees it before its event.
    const { order, migrate } = setUp([['setup', 0], ['active', 3], ['pre-switchover', 15]], [['device', 1], ['completed', 4]]);
    const r = await migrate();
    expect(r.reason).toBe('migrated');
    expect(order[order.indexOf('event:pre-switchover') + 1]).toBe('released');
    // The result's figures are QEMU's final ones, asked once it completed (the events carry none).
    expect(r).toMatchObject({ downtimeMs: 40 });
  });

  it('queries no state on the way: only the first look, before any event, asks QEMU', async () => {
    const { order, migrate } = setUp([['setup', 1], ['active', 3], ['pre-switchover', 15]], [['device', 2], ['completed', 10]]);
    await migrate();
    expect(between(order, 'event:setup', 'event:pre-switchover').filter((s) => s.startsWith('query:'))).toEqual([]);
    expect(between(order, 'migrate-continue', 'event:completed').filter((s) => s.startsWith('query:'))).toEqual([]);
    expect(order.indexOf('finish')).toBeLessThan(order.indexOf('event:completed'));
    expect(order.at(-1)).toBe('kill:migrated');
  });

  it('still queries on the fallback\'s timer when no event comes for a while', async () => {
    // 100 ms is the bulk phase's fallback once events flow: a quiet 350 ms holds at least two queries
    // (three when timers are on time; the margin is for a loaded machine).
    const { order, migrate } = setUp([['setup', 0], ['active', 3], ['pre-switchover', 360]], [['completed', 5]]);
    await migrate();
    expect(between(order, 'event:active', 'event:pre-switchover').filter((s) => s === 'query:active').length).toBeGreaterThanOrEqual(2);
  });

  it('asks QEMU about a failed event, so the caller gets its error, and rolls back', async () => {
    const { order, migrate } = setUp([['setup', 0], ['active', 3], ['pre-switchover', 10]], [['device', 2], ['failed', 8]], true);
    await expect(migrate()).rejects.toMatchObject({ code: 'OPERATION_FAILED', message: expect.stringContaining('Broken pipe') });
    expect(order).toContain('query:failed');
    expect(order).toContain('leases back');
    expect(order.some((s) => s.startsWith('kill:'))).toBe(false);
  });
});
