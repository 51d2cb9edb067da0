// Names and UUIDs are unique across an etcd fleet: three real virtqemuds (three roots, three
// "hosts") on a real three-member etcd race to define one name, and exactly one wins every time.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import type { Etcd3 } from 'etcd3';
import { systemClock, type VirtqError } from '../../../protocol/index.js';
import { idleGuest } from '../../helpers/test-guest.js';
import { etcdClient, eventually, startFleet, type Fleet } from '../../helpers/fleet.js';
import { rangeAll } from '../../../client/etcd-range.js';
import { EtcdReader } from '../../../client/etcd-reader.js';

const idleDef = (name: string, uuid?: string) => ({ name, memoryMiB: 32, vcpus: 1, accel: 'tcg' as const, kernel: { path: idleGuest().kernel }, ...(uuid === undefined ? {} : { uuid }) });
// 1,000 races were run once (VQ_CLUSTER_RACES=1000, recorded in bench/RESULTS.md); the suite runs a bounded number.
const RACES = Number(process.env['VQ_CLUSTER_RACES'] ?? 40);

describe('cluster-wide claims', () => {
  let fleet: Fleet;
  let etcd: Etcd3;
  beforeAll(async () => {
    fleet = await startFleet();
    etcd = etcdClient(fleet);
  }, 120_000);
  afterAll(async () => {
    etcd?.close();
    await fleet?.cleanup();
  }, 120_000);

  it(`racing defines of one name on three hosts: exactly one wins, ${RACES} times`, async () => {
    for (let i = 0; i < RACES; i++) {
      const name = `race${i}`;
      const results = await Promise.allSettled(fleet.hosts.map((h) => h.api.define({ definition: idleDef(name) })));
      const winners = results.flatMap((r, j) => (r.status === 'fulfilled' ? [j] : []));
      expect(winners, `race ${i}`).toHaveLength(1);
      for (const r of results) if (r.status === 'rejected') expect((r.reason as VirtqError).code).toBe('NAME_IN_USE');
      const winner = fleet.hosts[winners[0] as number];
      const claim = JSON.parse(await etcd.get(`${fleet.prefix}/names/${name}`).string() ?? '{}') as { host?: string; uuid?: string };
      expect(claim.host).toBe(winner?.id);
      // Only the winner lists it.
      for (const h of fleet.hosts) expect((await h.api.listDomains({})).domains.some((d) => d.name === name)).toBe(h === winner);
    }
  }, 600_000);

  it('a UUID is unique across the fleet too, and a loser learns which host holds the name', async () => {
    const uuid = randomUUID();
    const [a, b] = fleet.hosts;
    await a?.api.define({ definition: idleDef('uuid-a', uuid) });
    await expect(b?.api.define({ definition: idleDef('uuid-b', uuid) })).rejects.toMatchObject({ code: 'UUID_IN_USE', message: expect.stringContaining('host0') });
    await expect(b?.api.define({ definition: idleDef('uuid-a') })).rejects.toMatchObject({ code: 'NAME_IN_USE', message: expect.stringContaining('host0') });
    // Nothing of the refused defines stays claimed or listed.
    expect(await etcd.get(`${fleet.prefix}/names/uuid-b`).string()).toBeNull();
    expect((await b?.api.listDomains({}))?.domains.map((d) => d.name)).not.toContain('uuid-b');
  });

  it('undefine releases the claim: another host may then take the name', async () => {
    const [a, b] = fleet.hosts;
    await a?.api.define({ definition: idleDef('moving') });
    await expect(b?.api.define({ definition: idleDef('moving') })).rejects.toMatchObject({ code: 'NAME_IN_USE' });
    await a?.api.undefine({ name: 'moving' });
    await eventually(async () => (await etcd.get(`${fleet.prefix}/names/moving`).string()) === null, 10_000, 'the claim to go');
    await expect(b?.api.define({ definition: idleDef('moving') })).resolves.toMatchObject({ name: 'moving' });
  });

  it('a transient VM holds its name fleet-wide while it runs and releases it when it stops', async () => {
    const [a, b] = fleet.hosts;
    await a?.api.create({ definition: idleDef('temp1') });
    await expect(b?.api.create({ definition: idleDef('temp1') })).rejects.toMatchObject({ code: 'NAME_IN_USE' });
    await a?.api.destroy({ name: 'temp1' });
    await eventually(async () => (await etcd.get(`${fleet.prefix}/names/temp1`).string()) === null, 30_000, 'the transient claim to go');
    await expect(b?.api.define({ definition: idleDef('temp1') })).resolves.toMatchObject({ name: 'temp1' });
  }, 120_000);

  it('reads a prefix in pages that add up to the whole range', async () => {
    const whole = await etcd.getAll().prefix(`${fleet.prefix}/names/`).strings();
    expect(Object.keys(whole).length).toBeGreaterThan(RACES);
    for (const page of [1, 7, 1000]) expect(Object.fromEntries(await rangeAll(etcd, `${fleet.prefix}/names/`, page))).toEqual(whole);
    expect(await rangeAll(etcd, `${fleet.prefix}/nothing-here/`, 7)).toEqual([]);
  });

  it('reads the same pages with the fleet view\'s own reader (gRPC over HTTP/2, no etcd3), past a dead member', async () => {
    const whole = await etcd.getAll().prefix(`${fleet.prefix}/names/`).strings();
    // The first endpoint refuses connections: each call moves on to a live member.
    const reader = new EtcdReader({ endpoints: ['127.0.0.1:1', ...fleet.etcd.members.map((m) => m.client)], callMs: 5000 }, systemClock());
    try {
      for (const page of [1, 7, 1000]) expect(Object.fromEntries(await reader.rangePrefix(`${fleet.prefix}/names/`, page))).toEqual(whole);
      expect(await reader.rangePrefix(`${fleet.prefix}/nothing-here/`, 7)).toEqual([]);
      const [name, value] = Object.entries(whole)[0] ?? [];
      expect(await reader.get(name as string)).toBe(value);
      expect(await reader.get(`${fleet.prefix}/names/no-such-vm`)).toBeNull();
    } finally {
      reader.close();
    }
    const dead = new EtcdReader({ endpoints: ['127.0.0.1:1'], callMs: 2000 }, systemClock());
    await expect(dead.get('x')).rejects.toMatchObject({ code: 'CLUSTER_UNAVAILABLE', message: expect.stringContaining('ECONNREFUSED') });
    dead.close();
  });

  it('hosts publish themselves under their lease', async () => {
    const hosts = await etcd.getAll().prefix(`${fleet.prefix}/hosts/`).strings();
    expect(Object.keys(hosts).sort()).toEqual(fleet.hosts.map((h) => `${fleet.prefix}/hosts/${h.id}`).sort());
    const entry = JSON.parse(hosts[`${fleet.prefix}/hosts/host1`] as string) as { socket: string; pid: number };
    expect(entry.socket).toBe(fleet.hosts[1]?.harness.sockets.rw);
    expect(entry.pid).toBe(fleet.hosts[1]?.daemon.reply.pid);
  });
});
