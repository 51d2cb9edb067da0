// virtqemud's reconciliation of a VM whose shim is not connected and whose QEMU is gone (session 21,
// found by the migration chaos): a shim whose VM migrated away removes its state file and may end
// before it re-registered with a restarted virtqemud. Its end is in its journal, so the transient
// VM goes, as when a shim lets go; before, it stayed listed as shutoff/migrated until undefined.
// A transient VM whose end is known nowhere stays listed (crashed: lost), and a persistent one stays.
// A journaled end its shim could not write to its state file (a full disk) is written there before
// the transient VM goes (chaos seed 32209): else the next virtqemud lists it again, as lost.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { readFileSync, writeFileSync } from 'node:fs';
import { reconcile } from '../../../aggregator/reconcile.js';
import { DomainRegistry } from '../../../aggregator/registry.js';
import { Events } from '../../../aggregator/events.js';
import { HostJournal } from '../../../aggregator/host-journal.js';
import { JournalWriter } from '../../../drivers/journal/journal-writer.js';
import { eventBody } from '../../../daemon/journal-events.js';
import { LineLogHub } from '../../../daemon/line-log.js';
import { silentLogger, type LifecycleEvent } from '../../../protocol/index.js';
import { FakeClock } from '../../helpers/fake-clock.js';
import { tmpRoot, type TmpRoot } from '../../helpers/tmp-root.js';

const UUID = '0b6b1a3c-6d3e-4c1e-9a55-3f1f7e2b9d11';
/** A pid no process has (above the kernel's pid_max default): its QEMU is gone. */
const GONE_PID = 4_194_304 + 7;

describe('reconcile: a VM found stopped whose shim is not connected', () => {
  let root: TmpRoot;
  let clock: FakeClock;
  let registry: DomainRegistry;
  let events: Events;
  beforeEach(() => {
    root = tmpRoot();
    clock = new FakeClock();
    registry = new DomainRegistry();
    const journal = new HostJournal(root.path('state'), clock, new LineLogHub({ name: 't', bindings: {}, filters: 'silent' }).module('journal'), process.pid);
    events = new Events(registry, clock, journal);
  });
  afterEach(() => { root.remove(); });

  // As recovery leaves it: adopted from its (then) state file, running, its shim not re-registered.
  const recovered = (name: string, persistent: boolean) => {
    const r = registry.claim({ name, uuid: UUID, persistent, autostart: false, definition: undefined, state: 'running', reason: 'booted' });
    registry.shimAdopted(r, { pid: GONE_PID, socket: root.path(`${name}.sock`), roSocket: root.path(`${name}-ro.sock`), adminSocket: root.path(`${name}-admin.sock`), stateFile: root.path(`${name}.json`), conn: undefined },
      { state: 'running', reason: 'booted', qemuPid: GONE_PID }, true);
    return r;
  };
  // What the shim journaled last before it went (its state file is gone: removed, as a migrated-away shim does).
  const journaled = (name: string, ev: Pick<LifecycleEvent, 'event' | 'state' | 'reason'>) => {
    const w = JournalWriter.open({ dir: events.journal.dir(name), clock });
    w.append(eventBody({ name, uuid: UUID, ...ev, timestamp: clock.now() }), clock.now());
    w.close();
  };

  it('removes a transient VM whose journal records its end (migrated away)', async () => {
    recovered('mig1', false);
    journaled('mig1', { event: 'stopped', state: 'shutoff', reason: 'migrated' });
    await reconcile(registry, events, silentLogger(), { clock });
    expect(registry.get('mig1')).toBeUndefined();
  });

  it('keeps a persistent one, stopped as journaled', async () => {
    recovered('mig2', true);
    journaled('mig2', { event: 'stopped', state: 'shutoff', reason: 'migrated' });
    await reconcile(registry, events, silentLogger(), { clock });
    expect(registry.get('mig2')).toMatchObject({ state: 'shutoff', reason: 'migrated' });
  });

  it('tells the caller of each VM it found stopped, with the state file as read, once it is released', async () => {
    const r = recovered('mig3', true);
    const state = {
      format: 1, name: 'mig3', uuid: UUID, shimPid: GONE_PID, qemuStartedAt: 1, accel: 'tcg', definition: { name: 'mig3', uuid: UUID },
      sockets: { rw: 'rw', ro: 'ro', admin: 'admin', monitor: 'mon', console: 'con' },
      state: 'shutoff', reason: 'migrated', tainted: false, private: false, updatedAt: 1, details: { undefineSource: true },
    };
    writeFileSync(root.path('mig3.json'), JSON.stringify(state));
    const told: Array<{ name: string; shimGone: boolean; saved: unknown }> = [];
    await reconcile(registry, events, silentLogger(), { clock, ended: async (rec, saved) => { told.push({ name: rec.name, shimGone: rec.shim === undefined, saved }); } });
    expect(told).toEqual([{ name: 'mig3', shimGone: true, saved: expect.objectContaining({ state: 'shutoff', reason: 'migrated', details: { undefineSource: true } }) }]);
    expect(registry.get('mig3')).toBe(r);
  });

  it('puts a journaled end in a state file its shim could not write (a full disk), then removes the transient VM', async () => {
    recovered('full1', false);
    const state = {
      format: 1, name: 'full1', uuid: UUID, shimPid: GONE_PID, qemuPid: GONE_PID, qemuStartedAt: 1, accel: 'tcg', definition: { name: 'full1', uuid: UUID },
      sockets: { rw: 'rw', ro: 'ro', admin: 'admin', monitor: 'mon', console: 'con' },
      state: 'running', reason: 'booted', tainted: false, private: false, updatedAt: 1,
    };
    writeFileSync(root.path('full1.json'), JSON.stringify(state));
    journaled('full1', { event: 'crashed', state: 'crashed', reason: 'signal-SIGKILL' });
    await reconcile(registry, events, silentLogger(), { clock });
    expect(registry.get('full1')).toBeUndefined();
    // The next virtqemud reads this file: a stale "running" would list the VM again, as lost while it was down.
    const after = JSON.parse(readFileSync(root.path('full1.json'), 'utf8')) as Record<string, unknown>;
    expect(after).toMatchObject({ uuid: UUID, state: 'crashed', reason: 'signal-SIGKILL', updatedAt: clock.now() });
    expect(after['qemuPid']).toBeUndefined();
  });

  // As recovery adopts a migration's source shim that has just written shutoff/migrated (cluster chaos seed 32508).
  const adoptedStopped = (name: string, shimPid: number) => {
    const r = registry.claim({ name, uuid: UUID, persistent: false, autostart: false, definition: undefined, state: 'shutoff', reason: 'migrated' });
    registry.shimAdopted(r, { pid: shimPid, socket: root.path(`${name}.sock`), roSocket: root.path(`${name}-ro.sock`), adminSocket: root.path(`${name}-admin.sock`), stateFile: root.path(`${name}.json`), conn: undefined },
      { state: 'shutoff', reason: 'migrated', qemuPid: undefined }, true);
    return r;
  };

  it('tells of a stopped VM whose adopted shim has ended without registering, as a shim gone', async () => {
    const r = adoptedStopped('src1', GONE_PID);
    const gone: string[] = [];
    await reconcile(registry, events, silentLogger(), { clock, shimGone: async (rec) => { gone.push(rec.name); } });
    expect(gone).toEqual(['src1']);
    expect(registry.get('src1')).toBe(r);
  });

  it('does not while that shim still runs', async () => {
    // This test's own process stands in for a shim that runs but does not answer on its socket.
    adoptedStopped('src2', process.pid);
    const gone: string[] = [];
    await reconcile(registry, events, silentLogger(), { clock, shimGone: async (rec) => { gone.push(rec.name); } });
    expect(gone).toEqual([]);
  });

  it('keeps a transient one whose end is known nowhere, listed as lost', async () => {
    recovered('lost1', false);
    await reconcile(registry, events, silentLogger(), { clock });
    expect(registry.get('lost1')).toMatchObject({ state: 'crashed', reason: 'lost' });
  });
});
