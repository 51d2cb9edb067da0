// A world for virtnetworkd's tests: a network namespace of the test's own, a temporary root, the
// built virtnetworkd and shims run inside the namespace (`ip netns exec`), so the host's
// interfaces and ruleset are never touched; what virtq left in the namespace (bridges, taps, nft
// tables, dnsmasq) can be listed, and cleanup kills every process and deletes the namespace.
import { readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { connectNetwork, type NetworkClient } from '../../client/network-client.js';
import { createNetns, netnsExists, type TestNetns } from '../integration/network-driver-harness.js';
import { ServiceHarness, type RunningProcess } from './service-harness.js';
import { ShimHarness } from './shim-harness.js';
import { tmpRoot, type TmpRoot } from './tmp-root.js';

/** What virtq made that is still in the namespace. */
export interface Leftovers {
  /** Interfaces other than lo and those the test made itself. */
  links: string[];
  /** nft tables whose name starts with virtq_. */
  nftTables: string[];
  /** dnsmasq processes in the namespace. */
  dnsmasq: number[];
}

/** Options virtnetworkd gets in tests: a quick liveness check, a short grace. */
export const FAST_CHECKS = ['--port-check-ms', '200', '--port-grace-ms', '3000'];

/** One test's namespace, root, daemon and shims. */
export class NetworkdWorld {
  readonly root: TmpRoot;
  readonly ns: TestNetns;
  readonly services: ServiceHarness;
  readonly shims: ShimHarness;
  daemon: RunningProcess | undefined;
  private readonly clients: NetworkClient[] = [];

  constructor(prefix = 'vq-nd-') {
    this.root = tmpRoot(prefix);
    this.ns = createNetns();
    const wrap = ['ip', 'netns', 'exec', this.ns.name];
    this.services = new ServiceHarness(this.root, wrap);
    this.shims = new ShimHarness(this.root, wrap);
  }

  /** virtnetworkd's URI under the root. */
  uri(ro = false): string {
    return `network:///system?root=${this.root.dir}${ro ? '&mode=ro' : ''}`;
  }

  /** Starts virtnetworkd in the namespace; throws unless it reports ready. */
  async start(extra: string[] = FAST_CHECKS, env: NodeJS.ProcessEnv = process.env): Promise<RunningProcess> {
    const p = await this.services.start('virtnetworkd', extra, env);
    if (!p.reply.ok) throw new Error(`virtnetworkd did not start: ${JSON.stringify(p.reply)} ${p.stderr()}`);
    this.daemon = p;
    return p;
  }

  /** kill -9 of the running virtnetworkd. */
  async kill9(): Promise<void> {
    if (this.daemon !== undefined) await this.services.kill(this.daemon, 'SIGKILL');
    this.daemon = undefined;
  }

  /** A client of virtnetworkd, closed at cleanup. */
  async client(ro = false): Promise<NetworkClient> {
    const c = await connectNetwork(this.uri(ro), { timeoutMs: 60_000 });
    this.clients.push(c);
    return c;
  }

  /** Runs a command in the namespace, returning its stdout. */
  sh(cmd: string, args: readonly string[]): string {
    return execFileSync('ip', ['netns', 'exec', this.ns.name, cmd, ...args], { encoding: 'utf8' });
  }

  /** The tap devices in the namespace. */
  taps(): string[] {
    const links = JSON.parse(this.sh('ip', ['-j', '-d', 'link', 'show'])) as Array<{ ifname: string; linkinfo?: { info_kind?: string } }>;
    return links.filter((l) => l.linkinfo?.info_kind === 'tun').map((l) => l.ifname).sort();
  }

  /** What virtq left in the namespace; `ours` are interfaces the test made itself. */
  leftovers(ours: readonly string[] = []): Leftovers {
    const links = (JSON.parse(this.sh('ip', ['-j', 'link', 'show'])) as Array<{ ifname: string }>).map((l) => l.ifname).filter((n) => n !== 'lo' && !ours.includes(n));
    const tables = (JSON.parse(this.sh('nft', ['-j', 'list', 'tables'])) as { nftables: Array<{ table?: { name: string } }> }).nftables;
    const nftTables = tables.flatMap((t) => (t.table?.name.startsWith('virtq_') === true ? [t.table.name] : []));
    const pids = execFileSync('ip', ['netns', 'pids', this.ns.name], { encoding: 'utf8' }).split('\n').filter((l) => l !== '').map(Number);
    const dnsmasq = pids.filter((pid) => {
      try {
        return readFileSync(`/proc/${pid}/cmdline`, 'latin1').includes('dnsmasq');
      } catch {
        return false;
      }
    });
    return { links, nftTables, dnsmasq };
  }

  /** Kills every shim, QEMU and daemon, deletes the namespace and the root; throws if the namespace stays. */
  async cleanup(): Promise<void> {
    for (const c of this.clients) c.close();
    await this.shims.cleanup();
    await this.services.cleanup();
    await this.ns.remove();
    if (netnsExists(this.ns.name)) throw new Error(`network namespace ${this.ns.name} is still there`);
  }
}
