// The network virtnetworkd defines (not starts) on its first run, as libvirt defines "default":
// NAT on 192.168.122.0/24 like libvirt's, or the first 192.168.N.0/24 after it that no host
// route or address overlaps (libvirt itself may hold .122), on the first free virtqbrN bridge.
import { randomUUID } from 'node:crypto';
import { listLinks, listRoutes } from '../drivers/network/ip-link.js';
import { parseCidr, parseIpv4, subnetOf, subnetsOverlap, type Subnet } from '../drivers/network/ipv4.js';
import type { CommandRunner } from '../drivers/network/runner.js';
import type { NetworkConfig } from '../drivers/network/types.js';

/** What the host already uses: subnets (routes) and interface names. */
export interface HostNetworkView {
  subnets: Subnet[];
  links: Set<string>;
}

/** Reads the host's routes and interfaces through `runner`; an empty view when `ip` fails. */
export async function hostNetworkView(runner: CommandRunner): Promise<HostNetworkView> {
  const [routes, links] = await Promise.all([listRoutes(runner).catch(() => []), listLinks(runner).catch(() => [])]);
  const subnets = routes.map((r) => parseCidr(r.dst)).filter((s): s is Subnet => s !== undefined);
  return { subnets, links: new Set(links.map((l) => l.name)) };
}

/**
 * The default network for a host with `view`, avoiding the subnets and bridges of `others` (the
 * networks already defined) too; `uuid` makes it reproducible in tests.
 */
export function chooseDefaultNetwork(view: HostNetworkView, others: readonly NetworkConfig[], uuid: string = randomUUID()): NetworkConfig {
  const taken = [...view.subnets, ...others.flatMap((o) => (o.ipv4 === undefined ? [] : [parseCidr(`${o.ipv4.address}/${o.ipv4.prefix}`)]))].filter((s): s is Subnet => s !== undefined);
  let third = 122;
  for (; third <= 254; third++) {
    const candidate = subnetOf(parseIpv4(`192.168.${third}.0`) ?? 0, 24);
    if (!taken.some((t) => subnetsOverlap(t, candidate))) break;
  }
  if (third > 254) third = 122; // nothing free: libvirt's range, and start reports the overlap
  const bridges = new Set([...view.links, ...others.map((o) => o.bridge)]);
  let n = 0;
  while (bridges.has(`virtqbr${n}`)) n++;
  const net = `192.168.${third}`;
  return { name: 'default', uuid, type: 'nat', bridge: `virtqbr${n}`, ipv4: { address: `${net}.1`, prefix: 24, dhcp: { start: `${net}.2`, end: `${net}.254` } } };
}
