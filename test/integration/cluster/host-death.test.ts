// kill -9 of a whole "host" of an etcd fleet: its virtqemud, its shims and its QEMUs (every
// process under its root), with real etcd and real virtqemuds. Its lease expires after the TTL;
// with --cluster-reclaim-after the other hosts free its names once it has stayed away that long
// more, and may then define and start them; the fleet view shows the host gone. Not before.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Etcd3 } from 'etcd3';
import { systemClock } from '../../../protocol/index.js';
import { idleGuest } from '../../helpers/test-guest.js';
import { etcdClient, eventually, startFleet, type Fleet, type FleetHost } from '../../helpers/fleet.js';
import { killProcessesUnder } from '../../helpers/kill-under.js';
import { virtq } from '../../e2e/virtq-cli.js';
import type { FleetDomain, FleetHost as ViewHost } from '../../../client/fleet-view.js';

const idleDef = (name: string) => ({ name, memoryMiB: 32, vcpus: 1, accel: 'tcg' as const, kernel: { path: idleGuest().kernel } });
const TTL = 2;
const RECLAIM = 3;
const clock = systemClock();
const alive = (pid: number): boolean => { try { process.kill(pid, 0); return true; } catch { return false; } };

describe('a whole host killed', () => {
  let fleet: Fleet;
  let etcd: Etcd3;
  beforeAll(async () => {
    fleet = await startFleet(3, TTL, ['--cluster-reclaim-after', String(RECLAIM)]);
    etcd = etcdClient(fleet);
  }, 120_000);
  afterAll(async () => {
    etcd?.close();
    await fleet?.cleanup();
  }, 120_000);

  const hosts = async (): Promise<ViewHost[]> => {
    const r = await virtq(['hosts', '--cluster', fleet.etcd.uri(fleet.prefix), '--json']);
    expect(r.stderr).toBe('');
    return JSON.parse(r.stdout) as ViewHost[];
  };
  const code = (p: Promise<unknown>): Promise<string> => p.then(() => 'accepted', (e: { code: string }) => e.code);

  it('its lease expires, then its names are freed for the other hosts, and the fleet view shows it gone', async () => {
    const [a, b, c] = fleet.hosts as [FleetHost, FleetHost, FleetHost];
    await c.api.define({ definition: idleDef('dead1') });
    await c.api.start({ name: 'dead1' });
    await c.api.define({ definition: idleDef('dead2') });
    await c.api.create({ definition: idleDef('dead3') });
    const row = await c.api.lookupByName({ name: 'dead1' });
    const pids = [row.qemuPid as number, row.shimPid as number, c.daemon.reply.pid as number];
    expect(pids.every(alive)).toBe(true);

    const killedAt = clock.monotonic();
    const killed = killProcessesUnder(c.harness.root.dir);
    expect(killed).toEqual(expect.arrayContaining(pids));
    await eventually(async () => !pids.some(alive), 10_000, 'host2\'s processes to die');
    // Its lease still runs: its names are its own.
    expect(await code(a.api.define({ definition: idleDef('dead1') }))).toBe('NAME_IN_USE');

    // The lease expires: no-lease, its names still held (its QEMUs could be running for all etcd knows).
    await eventually(async () => (await etcd.get(`${fleet.prefix}/hosts/host2`).string()) === null, 30_000, 'host2\'s lease to expire');
    const expiredAt = clock.monotonic();
    expect(expiredAt - killedAt).toBeGreaterThan(TTL * 1000 - 500);
    expect((await hosts()).find((h) => h.host === 'host2')).toMatchObject({ state: 'no-lease', vms: 3 });
    expect(await code(b.api.define({ definition: idleDef('dead2') }))).toBe('NAME_IN_USE');

    // Gone for --cluster-reclaim-after more: its names are free.
    const freedAt = await eventually(async () => ((await etcd.getAll().prefix(`${fleet.prefix}/names/dead`).keys()).length === 0 ? clock.monotonic() : undefined), 60_000, 'host2\'s names to be freed');
    expect(freedAt - expiredAt).toBeGreaterThan(RECLAIM * 1000 - 1500);
    expect(await etcd.getAll().prefix(`${fleet.prefix}/uuids/`).strings().then((kv) => Object.values(kv).filter((v) => v.includes('host2')))).toEqual([]);
    await a.api.define({ definition: idleDef('dead1') });
    await a.api.start({ name: 'dead1' });
    await b.api.define({ definition: idleDef('dead2') });
    await b.api.create({ definition: idleDef('dead3') });
    expect(await code(b.api.define({ definition: idleDef('dead1') }))).toBe('NAME_IN_USE');

    const view = await hosts();
    expect(view.find((h) => h.host === 'host2')).toMatchObject({ state: 'gone', vms: 0 });
    expect(view.filter((h) => h.state === 'up').map((h) => h.host)).toEqual(['host0', 'host1']);
    const fleetRows = JSON.parse((await virtq(['fleet', '--cluster', fleet.etcd.uri(fleet.prefix), '--json'])).stdout) as FleetDomain[];
    expect(fleetRows.filter((d) => d.name.startsWith('dead')).map((d) => [d.name, d.host, d.state])).toEqual([['dead1', 'host0', 'running'], ['dead2', 'host1', 'shutoff'], ['dead3', 'host1', 'running']]);
    await a.api.destroy({ name: 'dead1' });
    await b.api.destroy({ name: 'dead3' });
  }, 180_000);
});
