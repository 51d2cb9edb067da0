// GET /sd/fleet: Prometheus HTTP service discovery for a whole etcd fleet. Two real virtqemuds
// with --cluster and --http against a real three-member etcd: each host advertises its --http
// address in its host entry, either host's /sd/fleet lists both (each target serving /metrics),
// and a host killed with SIGKILL (no goodbye) leaves the list once its lease has expired.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually, startFleet, type Fleet } from '../../helpers/fleet.js';

interface Group { targets: string[]; labels: Record<string, string> }

describe('GET /sd/fleet', () => {
  let fleet: Fleet;
  beforeAll(async () => { fleet = await startFleet(2, 2, ['--http', '127.0.0.1:0']); }, 120_000);
  afterAll(async () => { await fleet?.cleanup(); }, 120_000);

  const port = (i: number): number => {
    const p = fleet.hosts[i]?.daemon.reply.httpPort;
    if (p === undefined) throw new Error(`host${i} reported no httpPort`);
    return p;
  };
  const sd = async (i: number): Promise<Group[]> => {
    const res = await fetch(`http://127.0.0.1:${port(i)}/sd/fleet`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/json');
    return (await res.json()) as Group[];
  };

  it('lists every host of the fleet with its metrics address, labelled host and cluster', async () => {
    const want = [0, 1].map((i) => ({ targets: [`127.0.0.1:${port(i)}`], labels: { __metrics_path__: '/metrics', host: `host${i}`, cluster: fleet.prefix } }));
    // The address is published once the HTTP server listens, just after the join.
    await eventually(async () => JSON.stringify(await sd(0)) === JSON.stringify(want), 30_000, 'both hosts in /sd/fleet');
    expect(await sd(1)).toEqual(want);
    for (const g of want) {
      const metrics = await (await fetch(`http://${g.targets[0]}${g.labels.__metrics_path__}`)).text();
      expect(metrics).toMatch(/^virtq_daemon_domains/m);
    }
    // The per-host /sd is unchanged beside it.
    expect(await (await fetch(`http://127.0.0.1:${port(0)}/sd`)).json()).toEqual([]);
  }, 60_000);

  it('drops a host killed without a goodbye once its lease expires', async () => {
    const killed = fleet.hosts[1]?.daemon;
    killed?.proc.kill('SIGKILL');
    await killed?.exited;
    await eventually(async () => (await sd(0)).map((g) => g.labels.host).join() === 'host0', 30_000, 'host1 to leave /sd/fleet');
    expect(await sd(0)).toEqual([{ targets: [`127.0.0.1:${port(0)}`], labels: { __metrics_path__: '/metrics', host: 'host0', cluster: fleet.prefix } }]);
  }, 60_000);
});
