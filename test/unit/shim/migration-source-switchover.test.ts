// The source's switchover with a scripted QEMU and a fake destination (session 15): a destination
// whose prepare answered `switchoverEarly` is asked to finish right after `migrate-continue`,
// while this QEMU still sends the last state; one that did not (an etcd fleet, an older build)
// only once this QEMU reports `completed`. A guest that runs on the destination has migrated even
// if this side's wait failed; a failed early finish rolls back as before, after it settled.
// Session 21: a destination lost while memory moves (its shim or virtqemud gone) is seen by the
// source's check and the migration cancelled at once, with nothing handed over.
// Session 22: a destination that leases the disks in its finish is asked for both right after
// `migrate-continue`, which follows the release at once; a claim that fails there rolls back
// once this QEMU completed, its guest continued only after the leases are back.
import { describe, expect, it } from 'vitest';
import { VirtqError, type MigrateArgs } from '../../../protocol/index.js';
import type { MigrationSource } from '../../../shim/vm/migration-source.js';
import { scriptedSource } from '../../helpers/scripted-source.js';
import type { DestinationLink } from '../../../shim/migration-link.js';

interface Script {
  early: boolean;
  /** The destination's prepare says its finish takes the leases itself (PrepareResult.switchoverClaims). */
  claimsInFinish?: boolean;
  /** query-migrate's answers after migrate-continue, in turn (the last repeats; an Error throws). */
  afterContinue: Array<string | Error>;
  finish: () => Promise<void>;
  /** query-migrate answers `active` for this many polls before `pre-switchover` (Infinity: until cancelled). */
  activePolls?: number;
  /** The destination check's answers, in turn (the last repeats); none: the destination is fine. */
  lost?: Array<VirtqError | undefined>;
  /** The destination's abort fails (its shim is gone): the source then has it forget the VM. */
  abortFails?: boolean;
  /** vm.monitor() throws after its first call (QEMU's monitor gone; the migration holds the first). */
  monitorGoneLater?: boolean;
  /** The destination's `define` (--persistent) fails. */
  defineFails?: boolean;
}

function setUp(script: Script) {
  const order: string[] = [];
  const graces: number[] = [];
  let continued = false;
  let cancelled = false;
  let n = 0;
  let polls = 0;
  let checks = 0;
  let monitors = 0;
  const answer = (status: string) => ({ status, 'total-time': 900, downtime: 40, ram: { total: 1, transferred: 1, remaining: 0 } });
  const vm = {
    def: { name: 'm1', uuid: '11111111-2222-3333-4444-555555555555', disks: [], interfaces: [] },
    state: 'running',
    reason: 'booted',
    qemuPid: 4242,
    expectedPause: undefined as string | undefined,
    expectedResume: undefined as string | undefined,
    jobs: { run: <T>(_name: string, f: () => Promise<T>): Promise<T> => f() },
    // The grace is recorded too: a migrated source is SIGKILLed at once (0, session 17).
    kill: (intent: string, graceMs: number): Promise<void> => { order.push(`kill:${intent}`); graces.push(graceMs); vm.state = 'shutoff'; vm.reason = intent; return Promise.resolve(); },
    noteEnd: (note: Record<string, unknown>): void => { order.push(`note:${JSON.stringify(note)}`); },
    monitor: () => {
      if (script.monitorGoneLater === true && monitors++ > 0) throw new VirtqError('CONNECTION_CLOSED', 'QEMU\'s monitor is gone');
      return monitor;
    },
  };
  const monitor = {
    raw: (cmd: { execute: string }): Promise<unknown> => {
      if (cmd.execute === 'migrate-continue') { continued = true; order.push('migrate-continue'); }
      if (cmd.execute === 'migrate_cancel') { cancelled = true; order.push('migrate_cancel'); }
      if (cmd.execute !== 'query-migrate') return Promise.resolve(cmd.execute === 'query-migrate-capabilities' ? [] : {});
      if (cancelled && !continued) return Promise.resolve(answer('cancelled'));
      if (!continued) return Promise.resolve(answer(polls++ < (script.activePolls ?? 0) ? 'active' : 'pre-switchover'));
      const a = script.afterContinue[Math.min(n++, script.afterContinue.length - 1)] ?? 'completed';
      if (a instanceof Error) return Promise.reject(a);
      order.push(`qemu:${a}`);
      return Promise.resolve(answer(a));
    },
    queryStatus: () => Promise.resolve({ status: 'paused', running: false }),
    cont: (): Promise<void> => { order.push('cont'); return Promise.resolve(); },
    stop: () => Promise.resolve(),
  };
  const link: DestinationLink = {
    prepare: () => Promise.resolve({ uri: 'unix:/nonexistent/m.sock', early: script.early, claimsInFinish: script.claimsInFinish === true }),
    claim: () => { order.push('claim'); return Promise.resolve(); },
    finish: (_name, claim) => { order.push(claim === true ? 'finish+claim' : 'finish'); return script.finish().then(() => { order.push('finished'); }, (err: unknown) => { order.push('finish failed'); throw err; }); },
    abort: () => { order.push('abort'); return script.abortFails === true ? Promise.reject(new VirtqError('SHIM_UNAVAILABLE', 'its shim is gone')) : Promise.resolve(); },
    forget: () => { order.push('forget'); return Promise.resolve(); },
    lost: () => {
      const k = checks++;
      return Promise.resolve(script.lost === undefined ? undefined : script.lost[Math.min(k, script.lost.length - 1)]);
    },
    define: () => { order.push('define'); return script.defineFails === true ? Promise.reject(new VirtqError('NO_SPACE', 'no space left on the destination')) : Promise.resolve(); },
    close: () => undefined,
  };
  const source = scriptedSource(vm, link, order, { destCheckMs: 15, undefineSource: () => { order.push('undefine source'); return Promise.resolve(); } });
  return { source, order, vm, graces, checks: () => checks };
}

const migrate = (s: MigrationSource, moves: Pick<MigrateArgs, 'persistent' | 'undefineSource'> = {}, persisted = () => Promise.resolve()) =>
  s.migrate({ name: 'm1', destUri: 'qemu:///system?root=/nonexistent', live: true, ...moves }, persisted);

describe('the source\'s switchover', () => {
  it('asks an early destination to finish right after migrate-continue, before its QEMU completed', async () => {
    const { source, order, graces } = setUp({ early: true, afterContinue: ['device', 'device', 'completed'], finish: () => Promise.resolve() });
    const r = await migrate(source);
    expect(r.reason).toBe('migrated');
    expect(order.indexOf('finish')).toBe(order.indexOf('migrate-continue') + 1);
    expect(order.indexOf('finish')).toBeLessThan(order.indexOf('qemu:completed'));
    expect(order.at(-1)).toBe('kill:migrated');
    expect(graces).toEqual([0]);
    expect(order).not.toContain('abort');
  });

  it('goes on right after the release when the destination claims in its finish, and asks for both at once', async () => {
    const { source, order } = setUp({ early: true, claimsInFinish: true, afterContinue: ['device', 'device', 'completed'], finish: () => Promise.resolve() });
    const r = await migrate(source);
    expect(r.reason).toBe('migrated');
    expect(order).not.toContain('claim');
    expect(order.indexOf('migrate-continue')).toBe(order.indexOf('released') + 1);
    expect(order.indexOf('finish+claim')).toBe(order.indexOf('migrate-continue') + 1);
    expect(order.indexOf('finish+claim')).toBeLessThan(order.indexOf('qemu:completed'));
    expect(order.at(-1)).toBe('kill:migrated');
  });

  it('claims inside the pause when the destination does not claim in its finish, or is not asked early', async () => {
    for (const script of [{ early: true, claimsInFinish: false }, { early: false, claimsInFinish: true }]) {
      const { source, order } = setUp({ ...script, afterContinue: ['device', 'completed'], finish: () => Promise.resolve() });
      await migrate(source);
      expect(order.indexOf('claim')).toBe(order.indexOf('released') + 1);
      expect(order.indexOf('migrate-continue')).toBe(order.indexOf('claim') + 1);
      expect(order).toContain('finish');
      expect(order).not.toContain('finish+claim');
    }
  });

  it('rolls back a claim refused in the finish after this QEMU completed: destination stopped, leases back, then cont', async () => {
    const refused = new VirtqError('LOCK_CONFLICT', 'the disk is leased by another QEMU');
    const { source, order } = setUp({ early: true, claimsInFinish: true, afterContinue: ['device', 'completed'], finish: () => Promise.reject(refused) });
    await expect(migrate(source)).rejects.toBe(refused);
    expect(order).not.toContain('claim');
    expect(order.indexOf('finish failed')).toBeLessThan(order.indexOf('abort'));
    expect(order.indexOf('qemu:completed')).toBeLessThan(order.indexOf('abort'));
    expect(order.indexOf('abort')).toBeLessThan(order.indexOf('leases back'));
    // A completed QEMU waits paused with its images inactive: only `cont`, after the leases, brings the guest back.
    expect(order.indexOf('leases back')).toBeLessThan(order.indexOf('cont'));
    expect(order.some((s) => s.startsWith('kill:'))).toBe(false);
  });

  it('asks any other destination only once its QEMU completed', async () => {
    const { source, order } = setUp({ early: false, afterContinue: ['device', 'completed'], finish: () => Promise.resolve() });
    await migrate(source);
    expect(order.indexOf('finish')).toBeGreaterThan(order.indexOf('qemu:completed'));
    expect(order.at(-1)).toBe('kill:migrated');
  });

  it('reports the migration done when the guest runs on the destination though this monitor failed', async () => {
    const gone = new VirtqError('CONNECTION_CLOSED', 'the monitor closed');
    const { source, order } = setUp({ early: true, afterContinue: [gone], finish: () => Promise.resolve() });
    const r = await migrate(source);
    expect(r.reason).toBe('migrated');
    expect(order).not.toContain('abort');
    expect(order).not.toContain('leases back');
    expect(order).not.toContain('cont');
    expect(order.at(-1)).toBe('kill:migrated');
  });

  it('rolls back once a failed early finish settled: destination stopped, leases back, no kill', async () => {
    let fail: (err: Error) => void = () => undefined;
    const finish = () => new Promise<void>((_resolve, reject) => { fail = reject; });
    const { source, order } = setUp({ early: true, afterContinue: ['device', 'failed'], finish });
    const call = migrate(source);
    // The destination's QEMU exits on its failed load a little later than the source says `failed`.
    setTimeout(() => fail(new VirtqError('SHIM_UNAVAILABLE', 'its QEMU exited')), 30);
    await expect(call).rejects.toMatchObject({ code: 'OPERATION_FAILED' });
    expect(order).toContain('finish failed');
    expect(order.indexOf('finish failed')).toBeLessThan(order.indexOf('abort'));
    expect(order.indexOf('abort')).toBeLessThan(order.indexOf('leases back'));
    expect(order.some((s) => s.startsWith('kill:'))).toBe(false);
  });
});

describe('the destination lost while memory moves', () => {
  const gone = new VirtqError('SHIM_UNAVAILABLE', 'the destination\'s shim for VM "m1" is gone');

  it('cancels the migration at once with the destination\'s reason; nothing was handed over, the destination is forgotten', async () => {
    const { source, order } = setUp({ early: true, afterContinue: ['completed'], finish: () => Promise.resolve(), activePolls: Infinity, lost: [undefined, undefined, gone], abortFails: true });
    await expect(migrate(source)).rejects.toMatchObject({ code: 'SHIM_UNAVAILABLE', message: expect.stringContaining('shim for VM "m1" is gone') });
    expect(order).toEqual(expect.arrayContaining(['migrate_cancel', 'abort', 'forget']));
    for (const step of ['released', 'claim', 'leases back', 'finish', 'migrate-continue']) expect(order).not.toContain(step);
    expect(order.some((s) => s.startsWith('kill:'))).toBe(false);
    expect(await source.jobInfo()).toMatchObject({ type: 'none' });
  });

  // Session 21's review: the check's cancel asks vm.monitor() afresh; with QEMU's monitor gone that
  // throws, which ended the shim (an unhandled rejection) before the check caught it.
  it('fails with the destination\'s reason, and nothing unhandled, when its cancel cannot reach QEMU', async () => {
    const { source, order } = setUp({ early: true, afterContinue: ['completed'], finish: () => Promise.resolve(), activePolls: Infinity, lost: [gone], abortFails: true, monitorGoneLater: true });
    await expect(migrate(source)).rejects.toMatchObject({ code: 'SHIM_UNAVAILABLE' });
    for (const step of ['released', 'claim', 'finish']) expect(order).not.toContain(step);
  });

  it('keeps asking while the destination can take the guest, and stops once the switchover is reached', async () => {
    const { source, order, checks } = setUp({ early: true, afterContinue: ['completed'], finish: () => Promise.resolve(), activePolls: 12 });
    const r = await migrate(source);
    expect(r.reason).toBe('migrated');
    const seen = checks();
    expect(seen).toBeGreaterThan(0);
    await new Promise((resolve) => setTimeout(resolve, 60));
    expect(checks()).toBe(seen);
    expect(order).toContain('claim');
  });
});

// Session 30: what the source still owes after the guest runs there (--persistent, --undefine-source).
describe('the source\'s definition after a migration', () => {
  const done = { early: true, afterContinue: ['completed'], finish: () => Promise.resolve() };

  it('writes down that the undefine is owed, waits for the state file, then asks for it; all after the destination stored the definition', async () => {
    const { source, order } = setUp(done);
    const r = await migrate(source, { persistent: true, undefineSource: true }, () => { order.push('persisted'); return Promise.resolve(); });
    expect(r.reason).toBe('migrated');
    expect(order.slice(order.indexOf('kill:migrated') + 1)).toEqual(['define', 'note:{"undefineSource":true}', 'persisted', 'undefine source']);
    expect(source.owesUndefine()).toBe(false);
  });

  it('keeps the definition here when the destination could not store it', async () => {
    const { source, order } = setUp({ ...done, defineFails: true });
    const r = await migrate(source, { persistent: true, undefineSource: true });
    expect(r.reason).toBe('migrated');
    expect(order).toContain('define');
    expect(order).not.toContain('undefine source');
    expect(order.some((s) => s.startsWith('note:'))).toBe(false);
    expect(source.owesUndefine()).toBe(false);
  });

  it('--undefine-source alone (a transient guest there, as asked) owes and removes the definition without a define', async () => {
    const { source, order } = setUp(done);
    await migrate(source, { undefineSource: true });
    expect(order).not.toContain('define');
    expect(order.slice(-2)).toEqual(['note:{"undefineSource":true}', 'undefine source']);
  });
});
