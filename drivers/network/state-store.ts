// The driver's files under the state dir it is given, all written atomically:
//   instance-id                        this driver's mark in the ifalias of what it creates
//   networks/NAME/network.json         a running network: its config and what virtq created for it
//   networks/NAME/dnsmasq.{conf,pid,leases,log}
//   networks/NAME/ports/ID.json        one file per port, so create and delete touch one file
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, rm, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { VirtqError } from '../../protocol/errors.js';
import { isTempName, writeFileAtomic } from '../fs/atomic-file.js';
import type { DnsmasqPaths } from './dnsmasq-conf.js';
import type { NetworkConfig, NetworkPort } from './types.js';

/** What network.json records for a running network. */
export interface NetworkRecord {
  config: NetworkConfig;
  /** True when virtq created the bridge (and so deletes it on stop). */
  createdBridge: boolean;
  startedAt: number;
}

/** The driver's state dir. */
export class StateStore {
  constructor(readonly dir: string) {}

  /** The dir of network `name`. */
  networkDir(name: string): string {
    return join(this.dir, 'networks', name);
  }

  /** The dnsmasq files of network `name`. */
  dnsmasqPaths(name: string): DnsmasqPaths {
    const d = this.networkDir(name);
    return { conf: join(d, 'dnsmasq.conf'), pid: join(d, 'dnsmasq.pid'), leases: join(d, 'dnsmasq.leases'), log: join(d, 'dnsmasq.log') };
  }

  /** This driver's instance id (8 hex digits), created on first use. */
  async instanceId(): Promise<string> {
    const file = join(this.dir, 'instance-id');
    try {
      const id = (await readFile(file, 'utf8')).trim();
      if (/^[0-9a-f]{8}$/.test(id)) return id;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw failed(`cannot read ${file}`, err);
    }
    const id = randomBytes(4).toString('hex');
    await writeFileAtomic(file, `${id}\n`, 0o644);
    return id;
  }

  /** Creates the dirs of network `name` (0700: the conf and leases are the daemon's business). */
  async prepareNetwork(name: string): Promise<void> {
    await mkdir(join(this.networkDir(name), 'ports'), { recursive: true, mode: 0o700 });
  }

  async saveNetwork(record: NetworkRecord): Promise<void> {
    await writeFileAtomic(join(this.networkDir(record.config.name), 'network.json'), `${JSON.stringify(record, null, 2)}\n`);
  }

  /** The record of network `name`, if it is recorded as running. */
  async loadNetwork(name: string): Promise<NetworkRecord | undefined> {
    const rec = await readJson<NetworkRecord>(join(this.networkDir(name), 'network.json'));
    return rec?.config?.name === name ? rec : undefined;
  }

  /** Every network recorded as running. */
  async loadNetworks(): Promise<NetworkRecord[]> {
    const out: NetworkRecord[] = [];
    for (const name of await listDir(join(this.dir, 'networks'))) {
      const rec = await this.loadNetwork(name);
      if (rec !== undefined) out.push(rec);
    }
    return out;
  }

  /** Forgets network `name`: its record, conf, pid file, leases, log and port records. */
  async removeNetwork(name: string): Promise<void> {
    await rm(this.networkDir(name), { recursive: true, force: true });
  }

  /**
   * Writes a port's record, atomically but not fsync'd: it matters across a crash of the daemon
   * (the page cache keeps it), not of the host, which takes the tap and the VM with it (a VM started
   * again asks for its port again). Two fsyncs were most of a port's creation time under I/O load.
   */
  async savePort(port: NetworkPort): Promise<void> {
    await writeFileAtomic(join(this.networkDir(port.network), 'ports', `${port.id}.json`), `${JSON.stringify(port)}\n`, 0o600, { durable: false });
  }

  async removePort(port: NetworkPort): Promise<void> {
    await unlink(join(this.networkDir(port.network), 'ports', `${port.id}.json`)).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') throw failed(`cannot remove the record of port ${port.id}`, err);
    });
  }

  /** The port records of network `name` (unreadable or foreign files are skipped). */
  async loadPorts(name: string): Promise<NetworkPort[]> {
    const dir = join(this.networkDir(name), 'ports');
    const out: NetworkPort[] = [];
    for (const file of await listDir(dir)) {
      if (isTempName(file) || !file.endsWith('.json')) continue;
      const port = await readJson<NetworkPort>(join(dir, file));
      if (port !== undefined && port.network === name && `${port.id}.json` === file && typeof port.tap === 'string') out.push(port);
    }
    return out;
  }
}

function failed(message: string, err: unknown): VirtqError {
  return new VirtqError('OPERATION_FAILED', `${message}: ${(err as Error).message}`, { cause: err });
}

async function listDir(dir: string): Promise<string[]> {
  try {
    return (await readdir(dir)).sort();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw failed(`cannot list ${dir}`, err);
  }
}

async function readJson<T>(file: string): Promise<T | undefined> {
  try {
    return JSON.parse(await readFile(file, 'utf8')) as T;
  } catch {
    return undefined;
  }
}
