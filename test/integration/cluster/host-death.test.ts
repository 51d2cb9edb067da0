// kill -9 of a whole "host" of an etcd fleet: its virtqemud, its shims and its QEMUs (every
// process under its root), with real etcd and real virtqemuds. Its lease expires after the TTL;
// with --cluster-reclaim-after the other hosts free its names once it has stayed away that long
// more, and may then define and start them; the fleet view shows the host gone. Not before.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Etcd3 } from 'etcd3';
import { idleGuest } from '../../helpers/test-guest.js';
import { etcdClient, eventually, startFleet, type Fleet, type FleetHost } from '../../helpers/fleet.js';
import { killProcessesUnder } from '../../helpers/kill-under.js';
import { hostMonotonicMs, readHostLease } from '../../../drivers/lock/etcd-host-lease.js';
import { virtq } from '../../e2e/virtq-cli.js';
import type { FleetDomain, FleetHost as ViewHost } from '../../../client/fleet-view.js';

const idleDef = (name: string) => ({ name, memoryMiB: 32, vcpus: 1, accel: 'tcg' as const, kernel: { path: idleGuest().kernel } });
// The fleet helper's TTL: at 2 s a host at load ~30 lost its own lease before the kill (its
// renewals, every TTL/3, stalled past the TTL), and the test's first define was refused.
const TTL = 3;
// What the test does between the expiry and the reclaim (a define, and `virtq hosts`: a Node CLI
// start, seconds at load ~30) must fit in this window; at 3 s the names were freed before it ended.
const RECLAIM = 6;
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

    const killedAt = hostMonotonicMs();
    const killed = killProcessesUnder(c.harness.root.dir);
    expect(killed).toEqual(expect.arrayContaining(pids));
    await eventually(async () => !pids.some(alive), 10_000, 'host2\'s processes to die');
    // The last renewal etcd confirmed to host2, as host2 published it (run/cluster-lease.json, rewritten
    // after each): sent at aliveUntil − TTL, before the kill, so aliveUntil is at most TTL after it.
    const lastLease = readHostLease(c.harness.layout.runtime);
    expect(lastLease?.lease).toBeDefined();
    const aliveUntil = lastLease?.aliveUntil as number;
    expect(aliveUntil).toBeLessThanOrEqual(killedAt + TTL * 1000);
    // Its lease still runs: its names are its own.
    expect(await code(a.api.define({ definition: idleDef('dead1') }))).toBe('NAME_IN_USE');

    // The lease expires: no-lease, its names still held (its QEMUs could be running for all etcd knows).
    await eventually(async () => (await etcd.get(`${fleet.prefix}/hosts/host2`).string()) === null, 30_000, 'host2\'s lease to expire');
    const expiredAt = hostMonotonicMs();
    // Not before the TTL has run from that renewal: etcd restarts a lease's TTL when it processes a
    // renewal, which is after it was sent (decision 0024). Counted from the kill the expiry is
    // earlier by however long before the kill that renewal was sent: up to one heartbeat (TTL/3
    // after the previous heartbeat ended, plus that heartbeat's own etcd calls), more than the
    // 500 ms a bound of TTL − 500 ms allowed (CI, session 12: 1441 ms after the kill, TTL 2 s).
    expect(expiredAt, `expired ${expiredAt - killedAt} ms after the kill, the last renewal sent ${killedAt - (aliveUntil - TTL * 1000)} ms before it`).toBeGreaterThanOrEqual(aliveUntil);
    expect(await code(b.api.define({ definition: idleDef('dead2') }))).toBe('NAME_IN_USE');
    // The earliest its names can be freed (see freedAt below). A view read by then shows it
    // no-lease with its VMs; a later one may already show it gone: at load ~50 this test saw the
    // expiry 3.5 s late and `virtq hosts` took seconds more (fleet-view.test checks no-lease alone).
    const reclaimFrom = aliveUntil + RECLAIM * 1000 - Math.max(500, (TTL * 1000) / 3);
    const seen = (await hosts()).find((h) => h.host === 'host2');
    if (hostMonotonicMs() < reclaimFrom) expect(seen).toMatchObject({ state: 'no-lease', vms: 3 });
    else expect(seen?.state).toMatch(/^(no-lease|gone)$/);

    // Gone for --cluster-reclaim-after more: its names are free.
    const freedAt = await eventually(async () => ((await etcd.getAll().prefix(`${fleet.prefix}/names/dead`).keys()).length === 0 ? hostMonotonicMs() : undefined), 60_000, 'host2\'s names to be freed');
    // A reaper counts a host missing from the start of the pass whose read (deadline TTL/3, at least
    // 500 ms) found its entry gone, so from at most that deadline before the expiry, itself no
    // earlier than aliveUntil; measured from aliveUntil, not from this test's own (later) sighting.
    expect(freedAt).toBeGreaterThan(reclaimFrom);
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
