// Three "hosts" on one machine for the etcd fleet's tests: a real three-member etcd cluster and
// one real virtqemud per host, each under its own temporary root, all joined with --cluster.
// cleanup() kills the daemons and every shim and QEMU of every root, then the etcd cluster.
import { randomUUID } from 'node:crypto';
import { Etcd3 } from 'etcd3';
import { delay, systemClock, type TypedClient, type VirtqProgram } from '../../protocol/index.js';
import { DaemonHarness, type RunningDaemon } from './daemon-harness.js';
import { startEtcdCluster, type EtcdCluster } from './etcd-cluster.js';
import { tmpRoot } from './tmp-root.js';
import { readHostLease } from '../../drivers/lock/etcd-host-lease.js';

/** One host of the test fleet. */
export interface FleetHost {
  id: string;
  harness: DaemonHarness;
  daemon: RunningDaemon;
  api: TypedClient<VirtqProgram>;
}

/** A running test fleet. */
export interface Fleet {
  etcd: EtcdCluster;
  prefix: string;
  hosts: FleetHost[];
  cleanup(): Promise<void>;
}

/**
 * Starts etcd and `count` virtqemuds joined to it (lease TTL `ttlSec`); `setup` prepares each root
 * before its daemon starts; `clusterUri` may give host `i` another --cluster URI (e.g. through a proxy).
 */
export async function startFleet(count = 3, ttlSec = 3, extra: string[] = [], setup?: (h: DaemonHarness) => void, clusterUri?: (i: number, etcd: EtcdCluster, prefix: string) => Promise<string>): Promise<Fleet> {
  const etcd = await startEtcdCluster();
  const prefix = `vq-${randomUUID().slice(0, 8)}`;
  const hosts: FleetHost[] = [];
  const fleet: Fleet = {
    etcd, prefix, hosts,
    cleanup: async () => {
      for (const h of hosts) await h.harness.cleanup();
      await etcd.stop();
    },
  };
  try {
    for (let i = 0; i < count; i++) {
      const harness = new DaemonHarness(tmpRoot());
      const id = `host${i}`;
      setup?.(harness);
      const uri = clusterUri === undefined ? etcd.uri(prefix) : await clusterUri(i, etcd, prefix);
      const daemon = await harness.startDaemon(['--cluster', uri, '--cluster-host', id, '--cluster-ttl', String(ttlSec), '--reconcile-ms', '0', ...extra]);
      hosts.push({ id, harness, daemon, api: (await harness.client()).api });
    }
    // A virtqemud waits at most its TTL for its first join, then serves anyway (refusing defines
    // with CLUSTER_UNAVAILABLE until it has joined): at load ~45 a test's first define met a host
    // that had not joined yet. The fleet is up once every host has published its lease.
    await eventually(async () => hosts.every((h) => readHostLease(h.harness.layout.runtime)?.lease !== undefined), 60_000, 'every host to join the etcd fleet');
  } catch (err) {
    await fleet.cleanup();
    throw err;
  }
  return fleet;
}

/** A plain etcd3 client of the fleet's etcd (every member, no TLS), for tests to look at and change keys; close() it after. */
export function etcdClient(fleet: Fleet): Etcd3 {
  return new Etcd3({ hosts: fleet.etcd.members.map((m) => `http://${m.client}`) });
}

/** Polls `fn` until it resolves truthy (or throws after `ms`). */
export async function eventually<T>(fn: () => Promise<T | undefined | false>, ms = 30_000, what = 'condition'): Promise<T> {
  const clock = systemClock();
  const end = clock.monotonic() + ms;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined && v !== false) return v;
    } catch (err) {
      last = err;
    }
    if (clock.monotonic() > end) throw new Error(`timed out waiting for ${what}${last === undefined ? '' : `: ${String(last)}`}`);
    await delay(clock, 100);
  }
}
