// The fleet view through the real CLI: `virtq fleet` and `virtq hosts` read a real etcd and
// three real virtqemuds; a host whose virtqemud is SIGSTOPped past its lease TTL shows as
// no-lease, its VMs still listed from their claims (state unknown).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { idleGuest } from '../../helpers/test-guest.js';
import { eventually, startFleet, type Fleet } from '../../helpers/fleet.js';
import { virtq } from '../../e2e/virtq-cli.js';
import type { FleetDomain, FleetHost } from '../../../client/fleet-view.js';

const idleDef = (name: string) => ({ name, memoryMiB: 32, vcpus: 1, accel: 'tcg' as const, kernel: { path: idleGuest().kernel } });

describe('virtq fleet / virtq hosts', () => {
  let fleet: Fleet;
  beforeAll(async () => {
    fleet = await startFleet(3, 2);
    for (const [i, h] of fleet.hosts.entries()) await h.api.define({ definition: idleDef(`vm${i}`) });
    await fleet.hosts[0]?.api.define({ definition: idleDef('vm0b') });
  }, 120_000);
  afterAll(async () => {
    for (const h of fleet?.hosts ?? []) h.daemon.proc.kill('SIGCONT');
    await fleet?.cleanup();
  }, 120_000);

  const clusterUri = (): string => `cluster:///?etcd=${fleet.etcd.endpoints}&prefix=${fleet.prefix}`;
  const json = async <T>(args: string[]): Promise<T> => {
    const r = await virtq([...args, '--json']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    return JSON.parse(r.stdout) as T;
  };

  it('lists every VM of every host with its host, through -c cluster:/// or --cluster', async () => {
    const rows = await json<FleetDomain[]>(['-c', clusterUri(), 'fleet']);
    expect(rows.map((r) => [r.host, r.name, r.state])).toEqual([['host0', 'vm0', 'shutoff'], ['host0', 'vm0b', 'shutoff'], ['host1', 'vm1', 'shutoff'], ['host2', 'vm2', 'shutoff']]);
    const again = await json<FleetDomain[]>(['fleet', '--cluster', fleet.etcd.uri(fleet.prefix)]);
    expect(again).toEqual(rows);
    const text = await virtq(['fleet', '--cluster', fleet.etcd.uri(fleet.prefix)]);
    expect(text.stdout).toMatch(/Host\s+Name\s+UUID\s+State/);
    expect(text.stdout).toMatch(/host1\s+vm1\s/);
  });

  it('lists the hosts with their state, and a silent host as no-lease once its lease expired', async () => {
    const hosts = await json<FleetHost[]>(['hosts', '--cluster', fleet.etcd.uri(fleet.prefix)]);
    expect(hosts.map((h) => [h.host, h.state, h.vms])).toEqual([['host0', 'up', 2], ['host1', 'up', 1], ['host2', 'up', 1]]);
    expect(hosts[1]?.pid).toBe(fleet.hosts[1]?.daemon.reply.pid);

    fleet.hosts[2]?.daemon.proc.kill('SIGSTOP');
    await eventually(async () => {
      const now = await json<FleetHost[]>(['hosts', '--cluster', fleet.etcd.uri(fleet.prefix)]);
      const h2 = now.find((h) => h.host === 'host2');
      return h2?.state === 'no-lease' && h2.vms === 1;
    }, 60_000, 'host2 to show no-lease');
    const rows = await json<FleetDomain[]>(['fleet', '--cluster', fleet.etcd.uri(fleet.prefix)]);
    expect(rows.find((r) => r.name === 'vm2')).toMatchObject({ host: 'host2', state: 'unknown' });
    expect(rows.find((r) => r.name === 'vm1')).toMatchObject({ host: 'host1', state: 'shutoff' });
    fleet.hosts[2]?.daemon.proc.kill('SIGCONT');
    await eventually(async () => (await json<FleetHost[]>(['hosts', '--cluster', fleet.etcd.uri(fleet.prefix)])).every((h) => h.state === 'up'), 60_000, 'host2 back up');
  }, 120_000);

  it('refuses a bad fleet URI with a typed error, and a cluster: URI for a host command', async () => {
    for (const args of [['fleet', '--cluster', 'etcd://nohostport/p'], ['hosts', '--cluster', 'cluster:///?etcd=127.0.0.1:1'], ['fleet']]) {
      const r = await virtq(args, { env: { VIRTQ_CLUSTER: '' } });
      expect(r.code, args.join(' ')).toBe(1);
      expect(r.stderr).toMatch(/^virtq: INVALID_ARG: /);
    }
    const r = await virtq(['-c', clusterUri(), 'list']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/INVALID_ARG: .*virtq fleet/);
  });

  it('says CLUSTER_UNAVAILABLE when etcd does not answer', async () => {
    const r = await virtq(['hosts', '--cluster', 'etcd://127.0.0.1:1/p'], { timeoutMs: 60_000 });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^virtq: CLUSTER_UNAVAILABLE: /);
  }, 90_000);
});
