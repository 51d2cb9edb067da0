// The host side of a network below dnsmasq: the tools it needs, its bridge (created, adopted, or
// for a `bridge` network only checked), route conflicts, and NAT. Every step is idempotent, so a
// start after a crash adopts what is there instead of duplicating it.
import { createHash } from 'node:crypto';
import { VirtqError } from '../../protocol/errors.js';
import type { DriverContext } from './context.js';
import { createBridge, deleteLink, ensureAddressUp, getLink, listRoutes } from './ip-link.js';
import { formatSubnet, parseCidr, subnetsOverlap } from './ipv4.js';
import { QEMU_MAC_PREFIX } from './mac.js';
import { applyIsolation, applyNat, enableIpForward, removeNat } from './nft.js';
import { bridgeAlias, parseOwnerMark } from './ownership.js';
import { missingTool } from './runner.js';
import type { NetworkConfig } from './types.js';
import { ipv4Subnet } from './validate.js';

/** The tools a network of `cfg.type` needs. */
export function toolsFor(cfg: NetworkConfig): string[] {
  if (cfg.type === 'nat') return ['ip', 'dnsmasq', 'nft', 'tee'];
  if (cfg.type === 'isolated') return ['ip', 'dnsmasq', 'nft'];
  return ['ip'];
}

/** Throws NOT_SUPPORTED naming every tool `cfg` needs that is not installed, and its package. */
export async function requireTools(ctx: DriverContext, cfg: NetworkConfig): Promise<void> {
  const missing: string[] = [];
  for (const tool of toolsFor(cfg)) {
    if ((await ctx.runner.which(tool)) === undefined) missing.push(tool);
  }
  if (missing.length > 0) throw missingTool(missing, `network "${cfg.name}" (${cfg.type})`);
}

/** The bridge's own address, derived from the network's UUID so it is the same on every start. */
export function bridgeMacFor(cfg: Pick<NetworkConfig, 'uuid'>): string {
  const h = createHash('sha256').update(cfg.uuid).digest();
  return [QEMU_MAC_PREFIX, ...[...h.subarray(0, 3)].map((b) => b.toString(16).padStart(2, '0'))].join(':');
}

/** Refuses a subnet that overlaps a route the host already has on another interface. */
async function checkRoutes(ctx: DriverContext, cfg: NetworkConfig): Promise<void> {
  if (cfg.ipv4 === undefined) return;
  const mine = ipv4Subnet(cfg.ipv4);
  for (const route of await listRoutes(ctx.runner)) {
    if (route.dst === 'default' || route.dev === cfg.bridge) continue;
    const theirs = parseCidr(route.dst);
    if (theirs !== undefined && subnetsOverlap(mine, theirs)) {
      throw new VirtqError('IN_USE', `subnet ${formatSubnet(mine)} of network "${cfg.name}" overlaps the host's route ${route.dst}${route.dev === undefined ? '' : ` on ${route.dev}`}; choose another subnet`, {
        details: { route: route.dst, dev: route.dev ?? null },
      });
    }
  }
}

/**
 * Makes the network's bridge exist, addressed and up. Returns true when it is virtq's (created
 * now or adopted from an earlier run); a `bridge` network's host bridge is only checked.
 * A host interface of that name that virtq did not create is IN_USE, naming it.
 */
export async function setupBridge(ctx: DriverContext, cfg: NetworkConfig): Promise<boolean> {
  const link = await getLink(ctx.runner, cfg.bridge);
  if (cfg.type === 'bridge') {
    if (link === undefined) {
      throw new VirtqError('OPERATION_FAILED', `network "${cfg.name}" attaches to host bridge ${cfg.bridge}, which does not exist; create it first`, { details: { bridge: cfg.bridge } });
    }
    if (link.kind !== 'bridge') {
      throw new VirtqError('INVALID_ARG', `bridge: host interface ${cfg.bridge} is a ${link.kind ?? 'plain device'}, not a bridge`, { details: { field: 'bridge' } });
    }
    return false;
  }
  if (link !== undefined && !isOurBridge(ctx, cfg, link.alias)) {
    throw new VirtqError('IN_USE', `interface ${cfg.bridge} already exists on the host and was not created by virtq for network "${cfg.name}"; choose another bridge name`, {
      details: { interface: cfg.bridge, alias: link.alias ?? null },
    });
  }
  await checkRoutes(ctx, cfg);
  if (link === undefined) await createBridge(ctx.runner, cfg.bridge, bridgeMacFor(cfg), bridgeAlias(ctx.instance, cfg.uuid));
  const ipv4 = cfg.ipv4;
  if (ipv4 !== undefined) await ensureAddressUp(ctx.runner, cfg.bridge, `${ipv4.address}/${ipv4.prefix}`);
  return true;
}

function isOurBridge(ctx: DriverContext, cfg: NetworkConfig, alias: string | undefined): boolean {
  const mark = parseOwnerMark(alias);
  return mark?.kind === 'net' && mark.instance === ctx.instance && mark.network === cfg.uuid;
}

/** Deletes the network's bridge if virtq created it; a bridge of anyone else is left alone. */
export async function removeBridge(ctx: DriverContext, cfg: NetworkConfig): Promise<void> {
  if (cfg.type === 'bridge') return;
  const link = await getLink(ctx.runner, cfg.bridge);
  if (link !== undefined && isOurBridge(ctx, cfg, link.alias)) await deleteLink(ctx.runner, cfg.bridge);
}

/** NAT on for a `nat` network, the isolation table for an `isolated` one (replacing a table of an earlier run). */
export async function setupNat(ctx: DriverContext, cfg: NetworkConfig): Promise<void> {
  if (cfg.type === 'nat') {
    await enableIpForward(ctx.runner);
    await applyNat(ctx.runner, cfg);
  } else if (cfg.type === 'isolated') {
    await applyIsolation(ctx.runner, cfg);
  }
}

/** Removes the NAT table of the network, if nft is there to have made one. */
export async function teardownNat(ctx: DriverContext, cfg: NetworkConfig): Promise<void> {
  if (cfg.type !== 'bridge' && (await ctx.runner.which('nft')) !== undefined) await removeNat(ctx.runner, cfg);
}
