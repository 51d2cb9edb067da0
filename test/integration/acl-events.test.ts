// Access rules and the event journal on a real virtqemud (issue #19): a client whose rules hide
// some VMs gets none of their events, neither replayed (host-wide `sinceByVm`, `sinceTime`) nor
// live, is not told their last sequence numbers, and its listing still counts them as hidden.
import { writeFileSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { connect, type Connection } from '../../client/index.js';
import type { AclRule, LifecycleEvent } from '../../protocol/index.js';
import { ServiceHarness } from '../helpers/service-harness.js';
import { idleGuest } from '../helpers/test-guest.js';
import { TestPki, clientPki, startTls, type TestCa } from '../helpers/tls-certs.js';
import { tmpRoot } from '../helpers/tmp-root.js';

const idleDef = (name: string) => ({ name, memoryMiB: 32, vcpus: 1, accel: 'tcg' as const, kernel: { path: idleGuest().kernel } });
const RULES: AclRule[] = [
  { id: 'alice-web', match: { x509: 'O=virtq-test,CN=alice' }, procedures: ['*'], vms: ['web*'], action: 'allow' },
  { id: 'alice-rest', match: { x509: 'O=virtq-test,CN=alice' }, procedures: ['*'], action: 'deny' },
];

/** Every lifecycle event pushed on `conn`, in arrival order. */
async function collect(conn: Connection, filter: Parameters<Connection['events']>[0] = {}): Promise<LifecycleEvent[]> {
  const got: LifecycleEvent[] = [];
  const it = await conn.events(filter);
  void (async () => { for await (const ev of it) got.push(ev); })();
  return got;
}

describe('access rules and events', () => {
  let h: ServiceHarness;
  let pki: TestPki;
  let ca: TestCa;
  beforeEach(() => {
    h = new ServiceHarness(tmpRoot());
    pki = new TestPki(h.root.path('pki'));
    ca = pki.ca('main');
    writeFileSync(h.root.path('acl.json'), JSON.stringify({ rules: RULES }));
  });
  afterEach(async () => { await h.cleanup(); });

  it('keeps hidden VMs\' events out of host-wide replay and the live feed; the listing counts them', async () => {
    const { port } = await startTls(h, 'virtqemud', pki, ca, ['--acl', h.root.path('acl.json')]);
    const owner = await connect(h.uri('qemu'));
    for (const name of ['web1', 'db1', 'db2']) {
      await owner.virtq.define({ definition: idleDef(name) });
      await owner.virtq.start({ name });
    }
    await owner.virtq.destroy({ name: 'db2' });
    const uri = `qemu+tls://127.0.0.1:${port}/system?pkipath=${clientPki(pki, ca, 'alice', '/O=virtq-test/CN=alice')}`;

    // Host-wide resume from nothing: the owner is told every VM's history, alice only web1's.
    const ownerSeen = await owner.virtq.subscribeEvents({ sinceByVm: {} });
    expect(Object.keys(ownerSeen.last ?? {}).sort()).toEqual(['db1', 'db2', 'web1']);
    const alice = await connect(uri);
    const replayed = await alice.virtq.subscribeEvents({ sinceByVm: { db1: 0 } });
    expect(Object.keys(replayed.last ?? {})).toEqual(['web1']);
    const aliceEvents = await collect(alice);
    await expect.poll(() => aliceEvents.map((e) => `${e.name}:${e.event}`)).toEqual(['web1:started']);
    expect(aliceEvents[0]?.seq).toBeGreaterThan(0);
    // A time-based resume hides them as well.
    const byTime = await connect(uri);
    const byTimeEvents = await collect(byTime, { sinceTime: 0 });
    await expect.poll(() => byTimeEvents.map((e) => e.name)).toEqual(['web1']);

    // Live: stops and starts of hidden VMs never reach alice; web1's do, in journal order. The
    // owner's queue holds its own replay first.
    const live = await collect(owner);
    await owner.virtq.destroy({ name: 'db1' });
    await owner.virtq.start({ name: 'db2' });
    await owner.virtq.destroy({ name: 'web1' });
    await owner.virtq.define({ definition: idleDef('db3') });
    await expect.poll(() => live.map((e) => `${e.name}:${e.event}`)).toEqual([
      'db1:started', 'db2:started', 'db2:stopped', 'web1:started', 'db1:stopped', 'db2:started', 'web1:stopped', 'db3:defined',
    ]);
    await expect.poll(() => aliceEvents.map((e) => `${e.name}:${e.event}`)).toEqual(['web1:started', 'web1:stopped']);
    await expect.poll(() => byTimeEvents.map((e) => `${e.name}:${e.event}`)).toEqual(['web1:started', 'web1:stopped']);
    const seqs = aliceEvents.map((e) => e.seq as number);
    expect(seqs[1]).toBe((seqs[0] as number) + 1);

    // The listing: three VMs hidden, counted and not named.
    const listed = await alice.virtq.listDomains({});
    expect(listed.domains.map((d) => d.name)).toEqual(['web1']);
    expect(listed.hidden).toBe(3);
    // A hidden VM's events cannot be asked for by name.
    await expect(alice.virtq.subscribeEvents({ name: 'db1', since: 0 })).rejects.toMatchObject({ code: 'PERMISSION_DENIED' });
    await expect(alice.virtq.getEvents({ name: 'db2' })).rejects.toMatchObject({ code: 'PERMISSION_DENIED' });
    await owner.virtq.destroy({ name: 'db2' });
    alice.close();
    byTime.close();
    owner.close();
  }, 120_000);
});
