// Network ports: one persistent tap per VM NIC, attached to the network's bridge, recorded in one
// file per port before the call returns. Recovery reconciles records with the taps on the host:
// a record whose tap is gone gets its tap back (same name, same MAC), a tap marked as one of this
// network's ports with no record is deleted. Callers hold the network's lock.
import { randomUUID } from 'node:crypto';
import { VirtqError } from '../../protocol/errors.js';
import type { DriverContext } from './context.js';
import { attachUp, createTap, deleteLink, listLinks, type LinkInfo } from './ip-link.js';
import { generateUniqueMac, parseMac, tapMacFor } from './mac.js';
import { parseOwnerMark, portAlias, tapNameFor, TAP_PREFIX } from './ownership.js';
import type { NetworkConfig, NetworkPort, PortRequest, TapOwner } from './types.js';

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** The ports of one running network, in memory; the records on disk mirror it. */
export type PortTable = Map<string, NetworkPort>;

function validOwner(owner: TapOwner | undefined): TapOwner | undefined {
  if (owner === undefined) return undefined;
  for (const key of ['uid', 'gid'] as const) {
    const v = owner[key];
    if (v !== undefined && !(Number.isInteger(v) && v >= 0 && v < 2 ** 32)) {
      throw new VirtqError('INVALID_ARG', `owner.${key}: ${String(v)} is not a user or group id`, { details: { field: `owner.${key}` } });
    }
  }
  return owner.uid === undefined && owner.gid === undefined ? undefined : { ...owner };
}

/**
 * Creates a port on `cfg`'s bridge. A MAC already used on the network (by a port, or the
 * bridge's own `bridgeMac`) is ALREADY_EXISTS naming the holder.
 */
export async function createPort(ctx: DriverContext, cfg: NetworkConfig, ports: PortTable, bridgeMac: string, req: PortRequest): Promise<NetworkPort> {
  const vmUuid = String(req.vmUuid).toLowerCase();
  if (!UUID_RE.test(vmUuid)) throw new VirtqError('INVALID_ARG', `vmUuid: "${String(req.vmUuid)}" is not a UUID`, { details: { field: 'vmUuid' } });
  const owner = validOwner(req.owner);
  const taken = new Set([...ports.values()].map((p) => p.mac).concat(bridgeMac));
  const mac = req.mac === undefined ? generateUniqueMac(taken) : parseMac(req.mac);
  const holder = [...ports.values()].find((p) => p.mac === mac);
  if (holder !== undefined) {
    throw new VirtqError('ALREADY_EXISTS', `MAC ${mac} is already used on network "${cfg.name}" by port ${holder.id} of VM ${holder.vmUuid}`, {
      details: { mac, port: holder.id, vmUuid: holder.vmUuid, tap: holder.tap },
    });
  }
  if (mac === bridgeMac) throw new VirtqError('ALREADY_EXISTS', `MAC ${mac} is the address of network "${cfg.name}"'s bridge ${cfg.bridge}`, { details: { mac } });
  let id = randomUUID();
  const tapsInUse = new Set([...ports.values()].map((p) => p.tap));
  while (tapsInUse.has(tapNameFor(id))) id = randomUUID();
  const port: NetworkPort = { id, network: cfg.name, vmUuid, mac, tap: tapNameFor(id), createdAt: ctx.clock.now() };
  if (owner !== undefined) port.owner = owner;
  if (req.vmName !== undefined) port.vmName = req.vmName;
  // Tap and record are made side by side (one process and one write overlap). A crash
  // between them leaves a record without tap (recovery re-creates the tap) or a marked tap
  // without record (recovery deletes it): never a tap nobody will clean up.
  const [tap, record] = await Promise.allSettled([makeTap(ctx, cfg, port), ctx.store.savePort(port)]);
  if (tap.status === 'rejected' || record.status === 'rejected') {
    if (tap.status === 'fulfilled') await deleteLink(ctx.runner, port.tap).catch(() => undefined);
    if (record.status === 'fulfilled') await ctx.store.removePort(port).catch(() => undefined);
    throw tap.status === 'rejected' ? tap.reason : (record as PromiseRejectedResult).reason;
  }
  ports.set(id, port);
  return port;
}

function makeTap(ctx: DriverContext, cfg: NetworkConfig, port: NetworkPort): Promise<void> {
  const spec = { name: port.tap, bridge: cfg.bridge, mac: tapMacFor(port.mac), alias: portAlias(ctx.instance, cfg.uuid, port.id) };
  return createTap(ctx.runner, port.owner === undefined ? spec : { ...spec, owner: port.owner });
}

/** Deletes port `id`: its tap (gone already is fine), then its record. */
export async function deletePort(ctx: DriverContext, cfg: NetworkConfig, ports: PortTable, id: string): Promise<void> {
  const port = ports.get(id);
  if (port === undefined) {
    throw new VirtqError('NO_NETWORK_PORT', `network "${cfg.name}" has no port ${id}`, { details: { network: cfg.name, port: id } });
  }
  await deleteLink(ctx.runner, port.tap);
  await ctx.store.removePort(port);
  ports.delete(id);
}

/** What recoverPorts did. */
export interface PortRecovery {
  /** Ports whose tap was there (re-attached to the bridge when it had been detached). */
  kept: string[];
  /** Ports whose tap was gone and was created again. */
  recreated: string[];
  /** Taps marked as ports of this network that no record knows: deleted. */
  removedTaps: string[];
}

function markOf(link: LinkInfo): ReturnType<typeof parseOwnerMark> {
  return link.kind === 'tun' && link.name.startsWith(TAP_PREFIX) ? parseOwnerMark(link.alias) : undefined;
}

/** Loads the port records of `cfg` and reconciles them with the host's taps into `ports`. */
export async function recoverPorts(ctx: DriverContext, cfg: NetworkConfig, ports: PortTable): Promise<PortRecovery> {
  const result: PortRecovery = { kept: [], recreated: [], removedTaps: [] };
  const records = await ctx.store.loadPorts(cfg.name);
  const links = new Map((await listLinks(ctx.runner)).map((l) => [l.name, l]));
  for (const port of records) {
    const link = links.get(port.tap);
    const mark = link === undefined ? undefined : markOf(link);
    if (link !== undefined && mark?.kind === 'port' && mark.port === port.id && mark.instance === ctx.instance) {
      if (link.master !== cfg.bridge || !link.up) await attachUp(ctx.runner, port.tap, cfg.bridge);
      result.kept.push(port.id);
    } else if (link === undefined) {
      await makeTap(ctx, cfg, port);
      ctx.emit({ kind: 'port-recreated', network: cfg.name, port: port.id, tap: port.tap });
      result.recreated.push(port.id);
    } else {
      // Another interface holds the tap's name: the record cannot be honoured.
      await ctx.store.removePort(port);
      continue;
    }
    ports.set(port.id, port);
  }
  for (const link of links.values()) {
    const mark = markOf(link);
    if (mark?.kind !== 'port' || mark.instance !== ctx.instance || mark.network !== cfg.uuid || ports.has(mark.port)) continue;
    await deleteLink(ctx.runner, link.name);
    ctx.emit({ kind: 'tap-leak-removed', tap: link.name, alias: link.alias ?? '' });
    result.removedTaps.push(link.name);
  }
  return result;
}

/**
 * Deletes every tap this driver instance marked as a port of a network not in `active` (left by
 * a crash during a stop, or by a network whose state was removed). Returns the taps deleted.
 */
export async function sweepForeignNetworkTaps(ctx: DriverContext, active: ReadonlySet<string>): Promise<string[]> {
  const removed: string[] = [];
  for (const link of await listLinks(ctx.runner)) {
    const mark = markOf(link);
    if (mark?.kind !== 'port' || mark.instance !== ctx.instance || active.has(mark.network)) continue;
    await deleteLink(ctx.runner, link.name);
    ctx.emit({ kind: 'tap-leak-removed', tap: link.name, alias: link.alias ?? '' });
    removed.push(link.name);
  }
  return removed;
}
