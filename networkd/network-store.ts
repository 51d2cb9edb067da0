// virtnetworkd's networks: their definitions on disk (etc/network/NAME.json, written atomically,
// with the autostart flag), which of them run (the driver's own record under lib/network, so a
// daemon killed with -9 adopts what ran: bridges, dnsmasq, NAT tables, ports), and the default
// network defined (not started) on first run. Starting and stopping go through the driver.
import { randomUUID } from 'node:crypto';
import { mkdir, readdir, readFile, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { VirtqError, type Layout, type Logger, type NetworkDefinition } from '../protocol/index.js';
import { isTempName, writeFileAtomic } from '../drivers/fs/atomic-file.js';
import type { NetworkDriver } from '../drivers/network/network-driver.js';
import type { NetworkConfig } from '../drivers/network/types.js';
import { checkConflicts, validateNetworkConfig } from '../drivers/network/validate.js';
import type { HostNetworkView } from './default-network.js';
import { chooseDefaultNetwork } from './default-network.js';

/** One defined network. */
export interface NetworkEntry {
  config: NetworkConfig;
  autostart: boolean;
}

/** What the store tells the rest of the daemon. */
export interface StoreEvents {
  changed(kind: 'defined' | 'undefined' | 'started' | 'stopped', network: string): void;
}

const NAME = /^[A-Za-z0-9_+][A-Za-z0-9._+-]{0,63}$/;

/** The networks of one virtnetworkd. */
export class NetworkStore {
  private readonly entries = new Map<string, NetworkEntry>();
  private readonly dir: string;

  constructor(layout: Layout, private readonly driver: NetworkDriver, private readonly log: Logger, private readonly events: StoreEvents) {
    this.dir = join(layout.config, 'network');
  }

  /**
   * Loads the definitions (the default network on first run), adopts the networks that ran
   * (driver.recover) and starts the autostart ones. One network's failure is logged, not fatal.
   */
  async load(hostView: () => Promise<HostNetworkView>): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o755 });
    for (const file of (await readdir(this.dir)).sort()) {
      if (!file.endsWith('.json') || isTempName(file)) continue;
      try {
        const saved = JSON.parse(await readFile(join(this.dir, file), 'utf8')) as { config?: NetworkConfig; autostart?: unknown };
        const config = validateNetworkConfig(saved.config as NetworkConfig);
        if (`${config.name}.json` !== file) throw new Error('the file name is not the network name');
        this.entries.set(config.name, { config, autostart: saved.autostart === true });
      } catch (err) {
        this.log.warn({ file, err: VirtqError.from(err).message, msgId: 'NETWORK_FILE_UNREADABLE' }, 'skipping an unreadable network definition');
      }
    }
    if (this.entries.size === 0 && !(await exists(join(this.dir, '.initialized')))) {
      const def = chooseDefaultNetwork(await hostView(), []);
      await this.save({ config: def, autostart: false });
      await writeFileAtomic(join(this.dir, '.initialized'), '1\n', 0o644);
      this.log.info({ network: def.name, bridge: def.bridge, subnet: `${def.ipv4?.address}/${def.ipv4?.prefix}`, msgId: 'NETWORK_DEFAULT_DEFINED' }, 'default network defined');
    }
    for (const r of await this.driver.recover()) {
      if (r.error !== undefined) this.log.error({ network: r.name, code: r.error.code, err: r.error.message, msgId: 'NETWORK_RECOVER_FAILED' }, 'cannot adopt a network that was running');
      else this.log.info({ network: r.name, msgId: 'NETWORK_ADOPTED' }, 'network adopted');
    }
    // A network that ran without a definition (its file removed meanwhile) is defined again: it is running.
    for (const cfg of this.driver.activeNetworks()) {
      if (!this.entries.has(cfg.name)) await this.save({ config: cfg, autostart: false });
    }
    for (const e of this.all()) {
      if (!e.autostart || this.isActive(e.config.name)) continue;
      await this.start(e.config.name).catch((err: unknown) => {
        const x = VirtqError.from(err);
        this.log.error({ network: e.config.name, code: x.code, err: x.message, msgId: 'NETWORK_AUTOSTART_FAILED' }, 'cannot autostart network');
      });
    }
  }

  /** Every network, by name. */
  all(): NetworkEntry[] {
    return [...this.entries.values()].sort((a, b) => a.config.name.localeCompare(b.config.name));
  }

  /** A network; NO_NETWORK (details.state 'undefined') when there is none. */
  get(name: string): NetworkEntry {
    const e = this.entries.get(name);
    if (e === undefined) throw new VirtqError('NO_NETWORK', `no network named "${name}"`, { details: { network: name, state: 'undefined' } });
    return e;
  }

  isActive(name: string): boolean {
    return this.driver.activeNetworks().some((c) => c.name === name);
  }

  /** An active network; NO_NETWORK (details.state 'inactive') when it is not started. */
  active(name: string): NetworkEntry {
    const e = this.get(name);
    if (!this.isActive(name)) throw new VirtqError('NO_NETWORK', `network "${name}" is not active (start it with: virtq net-start ${name})`, { details: { network: name, state: 'inactive' } });
    return e;
  }

  /** Defines a network, or replaces an inactive network's definition (keeping its UUID and bridge unless given). */
  async define(def: NetworkDefinition): Promise<NetworkEntry> {
    const old = this.entries.get(def.name);
    if (old !== undefined && this.isActive(def.name)) throw new VirtqError('OPERATION_INVALID', `network "${def.name}" is active: stop it (net-destroy) before redefining it`);
    const bridge = def.bridge ?? old?.config.bridge ?? (def.type === 'bridge' ? undefined : this.freeBridge());
    if (bridge === undefined) throw new VirtqError('INVALID_ARG', 'bridge: a bridge network names the host bridge its VMs join', { details: { field: 'bridge' } });
    const config = validateNetworkConfig({
      name: def.name, uuid: def.uuid ?? old?.config.uuid ?? randomUUID(), type: def.type, bridge,
      ...(def.ipv4 === undefined ? {} : { ipv4: def.ipv4 }), ...(def.domain === undefined ? {} : { domain: def.domain }),
    });
    checkConflicts(config, this.all().map((e) => e.config));
    const entry: NetworkEntry = { config, autostart: old?.autostart ?? false };
    await this.save(entry);
    this.events.changed('defined', config.name);
    return this.get(config.name);
  }

  /** Forgets an inactive network. */
  async undefine(name: string): Promise<void> {
    this.get(name);
    if (this.isActive(name)) throw new VirtqError('OPERATION_INVALID', `network "${name}" is active: stop it (net-destroy) before undefining it`);
    await unlink(join(this.dir, `${name}.json`)).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') throw new VirtqError('OPERATION_FAILED', `cannot remove the definition of network "${name}": ${err.message}`);
    });
    this.entries.delete(name);
    this.events.changed('undefined', name);
  }

  /** Starts a network (a no-op when it runs). */
  async start(name: string): Promise<NetworkEntry> {
    const e = this.get(name);
    if (this.isActive(name)) return e;
    await this.driver.startNetwork(e.config);
    this.log.info({ network: name, bridge: e.config.bridge, msgId: 'NETWORK_STARTED' }, 'network started');
    this.events.changed('started', name);
    return e;
  }

  /** Stops a network; its ports must be gone already (or `force` deletes them, without events). */
  async stop(name: string, force: boolean): Promise<NetworkEntry> {
    const e = this.get(name);
    await this.driver.stopNetwork(e.config, { force });
    this.log.info({ network: name, msgId: 'NETWORK_STOPPED' }, 'network stopped');
    this.events.changed('stopped', name);
    return e;
  }

  /** Marks a network to start with the daemon. */
  async setAutostart(name: string, autostart: boolean): Promise<void> {
    const e = this.get(name);
    await this.save({ ...e, autostart });
  }

  private freeBridge(): string {
    const used = new Set(this.all().map((e) => e.config.bridge));
    let n = 0;
    while (used.has(`virtqbr${n}`)) n++;
    return `virtqbr${n}`;
  }

  private async save(e: NetworkEntry): Promise<void> {
    if (!NAME.test(e.config.name)) throw new VirtqError('INVALID_ARG', `"${e.config.name}" is not a network name`);
    await writeFileAtomic(join(this.dir, `${e.config.name}.json`), `${JSON.stringify({ format: 1, config: e.config, autostart: e.autostart }, null, 2)}\n`, 0o644);
    this.entries.set(e.config.name, { config: e.config, autostart: e.autostart });
  }
}

async function exists(path: string): Promise<boolean> {
  return readFile(path).then(() => true, () => false);
}
