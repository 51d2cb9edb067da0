// The network driver a daemon (virtnetworkd) holds: starts and stops networks, creates and deletes
// their ports, lists DHCP leases, and after a crash adopts what it finds instead of duplicating
// it. One operation at a time per network; knows nothing of RPC. State dir layout: state-store.ts.
import type { Clock } from '../../protocol/clock.js';
import { VirtqError } from '../../protocol/errors.js';
import { bridgeMacFor, removeBridge, requireTools, setupBridge, setupNat, teardownNat } from './bridge-setup.js';
import type { DriverContext } from './context.js';
import { ensureDnsmasq, stopDnsmasqService } from './dnsmasq-service.js';
import { KeyedMutex } from './keyed-mutex.js';
import { readLeases } from './leases.js';
import * as portOps from './ports.js';
import type { CommandRunner } from './runner.js';
import { StateStore } from './state-store.js';
import type { BackoffPolicy, Supervisor } from './supervisor.js';
import type { DhcpLease, NetworkConfig, NetworkEvent, NetworkPort, NetworkStatus, PortRequest } from './types.js';
import { checkConflicts, validateNetworkConfig } from './validate.js';

/** What a daemon gives the driver. */
export interface NetworkDriverOptions {
  /** The driver's own dir (e.g. `ROOT/lib/network` or `ROOT/run/network`); created when absent. */
  stateDir: string;
  runner: CommandRunner;
  clock: Clock;
  /** Receives dnsmasq deaths and restarts, adoptions and cleaned-up leaks (for logs and metrics). */
  onEvent?: (event: NetworkEvent) => void;
  /** Restart backoff of dnsmasq; default 0.5 s doubling to 30 s. */
  dnsmasqBackoff?: BackoffPolicy;
  /** How often an adopted dnsmasq is checked for life, ms; default 1000. */
  adoptedPollMs?: number;
}

interface ActiveNetwork {
  config: NetworkConfig;
  dnsmasq: Supervisor | undefined;
  ports: portOps.PortTable;
}

/** What recover() found for one network recorded as running. */
export interface RecoveredNetwork {
  name: string;
  error?: VirtqError;
  ports?: portOps.PortRecovery;
}

/** The network driver. Build it with `NetworkDriver.open`. */
export class NetworkDriver {
  private readonly active = new Map<string, ActiveNetwork>();
  private readonly locks = new KeyedMutex();

  private constructor(private readonly ctx: DriverContext, private readonly opts: NetworkDriverOptions) {}

  /** Opens the driver over `opts.stateDir` (creating its instance id on first use). Starts nothing. */
  static async open(opts: NetworkDriverOptions): Promise<NetworkDriver> {
    const store = new StateStore(opts.stateDir);
    const onEvent = opts.onEvent ?? ((): void => undefined);
    const ctx: DriverContext = { runner: opts.runner, clock: opts.clock, store, instance: await store.instanceId(), emit: onEvent };
    return new NetworkDriver(ctx, opts);
  }

  /**
   * Starts network `cfg`, or adopts what an earlier run of the driver left running (bridge,
   * dnsmasq, nft table, ports). Idempotent. A network already running with another config is
   * OPERATION_INVALID; conflicts with other running networks are IN_USE; a missing tool is
   * NOT_SUPPORTED naming its Debian package. On failure, what this call created is removed.
   */
  async startNetwork(config: NetworkConfig): Promise<NetworkStatus> {
    const cfg = validateNetworkConfig(config);
    return this.locks.run(cfg.name, async () => {
      const current = this.active.get(cfg.name);
      if (current !== undefined && JSON.stringify(current.config) !== JSON.stringify(cfg)) {
        throw new VirtqError('OPERATION_INVALID', `network "${cfg.name}" is running with another configuration; stop it first`, { details: { network: cfg.name } });
      }
      checkConflicts(cfg, [...this.active.values()].map((a) => a.config));
      await requireTools(this.ctx, cfg);
      // Only a fresh start is rolled back: what an earlier run left (and guests may use) stays.
      const fresh = current === undefined && (await this.ctx.store.loadNetwork(cfg.name)) === undefined;
      try {
        await this.bringUp(cfg, current);
      } catch (err) {
        if (fresh) await this.teardown(cfg, this.active.get(cfg.name)).catch(() => undefined);
        throw err;
      }
      return this.statusOf(cfg.name);
    });
  }

  private async bringUp(cfg: NetworkConfig, current: ActiveNetwork | undefined): Promise<void> {
    await this.ctx.store.prepareNetwork(cfg.name);
    const createdBridge = await setupBridge(this.ctx, cfg);
    await setupNat(this.ctx, cfg);
    const dnsmasq = cfg.type === 'bridge' ? undefined : current?.dnsmasq ?? await ensureDnsmasq(this.ctx, cfg, {
      adoptedPollMs: this.opts.adoptedPollMs ?? 1000,
      ...(this.opts.dnsmasqBackoff === undefined ? {} : { backoff: this.opts.dnsmasqBackoff }),
    });
    const net: ActiveNetwork = { config: cfg, dnsmasq, ports: new Map() };
    this.active.set(cfg.name, net);
    await portOps.recoverPorts(this.ctx, cfg, net.ports);
    await this.ctx.store.saveNetwork({ config: cfg, createdBridge, startedAt: this.ctx.clock.now() });
  }

  /**
   * Stops network `cfg`: its ports (only with `force`; otherwise ports are IN_USE), dnsmasq, nft
   * table and bridge, removing only what virtq created. Stopping a network that does not run
   * cleans up whatever is left of it and succeeds.
   */
  async stopNetwork(config: NetworkConfig, opts: { force?: boolean } = {}): Promise<void> {
    const cfg = validateNetworkConfig(config);
    await this.locks.run(cfg.name, async () => {
      const net = this.active.get(cfg.name);
      const ports = net?.ports ?? new Map((await this.ctx.store.loadPorts(cfg.name)).map((p) => [p.id, p]));
      if (ports.size > 0 && opts.force !== true) {
        const users = [...new Set([...ports.values()].map((p) => p.vmUuid))];
        throw new VirtqError('IN_USE', `network "${cfg.name}" has ${ports.size} port(s) in use by VM(s) ${users.join(', ')}; stop them first or stop the network with force`, {
          details: { network: cfg.name, ports: [...ports.keys()], vms: users },
        });
      }
      for (const id of [...ports.keys()]) await portOps.deletePort(this.ctx, cfg, ports, id);
      await this.teardown(cfg, net);
    });
  }

  private async teardown(cfg: NetworkConfig, net: ActiveNetwork | undefined): Promise<void> {
    if (cfg.type !== 'bridge') await stopDnsmasqService(this.ctx, cfg, net?.dnsmasq);
    await teardownNat(this.ctx, cfg);
    await removeBridge(this.ctx, cfg);
    this.active.delete(cfg.name);
    await portOps.sweepForeignNetworkTaps(this.ctx, new Set([...this.active.values()].map((a) => a.config.uuid)));
    await this.ctx.store.removeNetwork(cfg.name);
  }

  /**
   * After a restart: adopts every network the state dir records as running (as startNetwork
   * does), then deletes taps of this driver that belong to no running network. One network's
   * failure is reported in its entry and does not stop the others.
   */
  async recover(): Promise<RecoveredNetwork[]> {
    const out: RecoveredNetwork[] = [];
    for (const rec of await this.ctx.store.loadNetworks()) {
      try {
        await this.startNetwork(rec.config);
        out.push({ name: rec.config.name });
      } catch (err) {
        out.push({ name: rec.config.name, error: VirtqError.from(err) });
      }
    }
    await portOps.sweepForeignNetworkTaps(this.ctx, new Set([...this.active.values()].map((a) => a.config.uuid)));
    return out;
  }

  /** Re-reads the port records of running network `name` and reconciles them with the host's taps. */
  async recoverPorts(name: string): Promise<portOps.PortRecovery> {
    return this.locks.run(name, async () => {
      const net = this.need(name);
      return portOps.recoverPorts(this.ctx, net.config, net.ports);
    });
  }

  /** Creates a port (a tap on the bridge) for a VM NIC on running network `name`. */
  async createPort(name: string, req: PortRequest): Promise<NetworkPort> {
    return this.locks.run(name, async () => {
      const net = this.need(name);
      return { ...(await portOps.createPort(this.ctx, net.config, net.ports, bridgeMacFor(net.config), req)) };
    });
  }

  /** Deletes port `id` of running network `name` (NO_NETWORK_PORT when there is none). */
  async deletePort(name: string, id: string): Promise<void> {
    await this.locks.run(name, async () => {
      const net = this.need(name);
      await portOps.deletePort(this.ctx, net.config, net.ports, id);
    });
  }

  /** The ports of running network `name`, oldest first. */
  listPorts(name: string): NetworkPort[] {
    return [...this.need(name).ports.values()].sort((a, b) => a.createdAt - b.createdAt || a.id.localeCompare(b.id)).map((p) => ({ ...p }));
  }

  /** The unexpired DHCP leases of running network `name` (none for a `bridge` network). */
  async leases(name: string): Promise<DhcpLease[]> {
    const net = this.need(name);
    if (net.config.type === 'bridge') return [];
    return readLeases(this.ctx.store.dnsmasqPaths(name).leases, this.ctx.clock.now());
  }

  /** The configs of the networks this driver runs. */
  activeNetworks(): NetworkConfig[] {
    return [...this.active.values()].map((a) => ({ ...a.config }));
  }

  /** The state of running network `name`, for info and metrics. */
  networkStatus(name: string): NetworkStatus {
    return this.statusOf(name);
  }

  /**
   * Stops supervising and forgets everything, leaving networks, dnsmasq and taps running: what a
   * daemon does when it exits (a successor adopts them with recover()).
   */
  detach(): void {
    for (const net of this.active.values()) void net.dnsmasq?.stop();
    this.active.clear();
  }

  private statusOf(name: string): NetworkStatus {
    const net = this.need(name);
    const status: NetworkStatus = {
      name, type: net.config.type, bridge: net.config.bridge, dnsmasqRestarts: net.dnsmasq?.restarts ?? 0, ports: net.ports.size,
    };
    const pid = net.dnsmasq?.pid;
    if (pid !== undefined) status.dnsmasqPid = pid;
    return status;
  }

  private need(name: string): ActiveNetwork {
    const net = this.active.get(name);
    if (net === undefined) throw new VirtqError('NO_NETWORK', `network "${name}" is not started`, { details: { network: name } });
    return net;
  }
}
