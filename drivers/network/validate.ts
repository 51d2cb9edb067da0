// Validation of network configs, alone and against each other: names, interface names, the
// IPv4 plan (gateway, DHCP pool inside the subnet) and conflicts between networks (the same
// bridge, overlapping subnets). Pure: every refusal is an INVALID_ARG or IN_USE naming the field.
import { VirtqError } from '../../protocol/errors.js';
import { NAME_PATTERN } from '../../protocol/definition.js';
import { formatIpv4, formatSubnet, parseIpv4, subnetContains, subnetOf, subnetsOverlap, type Subnet } from './ipv4.js';
import type { NetworkConfig, NetworkIpv4 } from './types.js';

const NAME_RE = new RegExp(NAME_PATTERN);
const UUID_RE = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;
const IFNAME_RE = /^[A-Za-z0-9_][A-Za-z0-9_.-]*$/;
const DNS_LABEL_RE = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

/** Linux's IFNAMSIZ less the terminating NUL. */
export const IFNAME_MAX_BYTES = 15;

function invalid(field: string, message: string): never {
  throw new VirtqError('INVALID_ARG', `${field}: ${message}`, { details: { field } });
}

/** Checks a Linux interface name: 1–15 bytes of letters, digits, `_`, `.`, `-`, not starting with `.` or `-`. */
export function validateIfname(name: string, field = 'bridge'): void {
  const bytes = Buffer.byteLength(name, 'utf8');
  if (bytes === 0 || bytes > IFNAME_MAX_BYTES) {
    invalid(field, `interface name "${name}" is ${bytes} bytes; Linux allows 1 to ${IFNAME_MAX_BYTES}`);
  }
  if (!IFNAME_RE.test(name)) {
    invalid(field, `interface name "${name}" may hold only letters, digits, "_", "." and "-", and must not start with "." or "-"`);
  }
}

/** Checks a DNS domain: dot-separated labels of lowercase letters, digits and inner `-`, ≤ 253 bytes. */
export function validateDomain(domain: string, field = 'domain'): void {
  if (domain.length === 0 || domain.length > 253 || !domain.split('.').every((l) => DNS_LABEL_RE.test(l))) {
    invalid(field, `"${domain}" is not a DNS domain (labels of a-z, 0-9 and inner "-", separated by ".")`);
  }
}

/** The subnet of a network's IPv4 plan; the plan must have passed validateIpv4. */
export function ipv4Subnet(ipv4: NetworkIpv4): Subnet {
  return subnetOf(parseIpv4(ipv4.address) ?? 0, ipv4.prefix);
}

/** Checks the gateway address, the prefix and the DHCP pool of `ipv4`; returns its subnet. */
export function validateIpv4(ipv4: NetworkIpv4, field = 'ipv4'): Subnet {
  const gw = parseIpv4(ipv4.address);
  if (gw === undefined) invalid(`${field}.address`, `"${ipv4.address}" is not an IPv4 address`);
  if (!Number.isInteger(ipv4.prefix) || ipv4.prefix < 1 || ipv4.prefix > 30) {
    invalid(`${field}.prefix`, `${String(ipv4.prefix)} is not a usable prefix length (1 to 30)`);
  }
  const first = Math.floor(gw / 2 ** 24);
  if (first === 0 || first === 127 || first >= 224) {
    invalid(`${field}.address`, `${ipv4.address} is not a unicast host address (0/8, 127/8 and 224/3 are reserved)`);
  }
  const subnet = subnetOf(gw, ipv4.prefix);
  const cidr = formatSubnet(subnet);
  if (gw === subnet.network) invalid(`${field}.address`, `${ipv4.address} is the network address of ${cidr}; use a host address such as the first one`);
  if (gw === subnet.broadcast) invalid(`${field}.address`, `${ipv4.address} is the broadcast address of ${cidr}`);
  if (ipv4.dhcp !== undefined) validateDhcp(ipv4.dhcp, subnet, gw, `${field}.dhcp`);
  return subnet;
}

function validateDhcp(dhcp: { start: string; end: string }, subnet: Subnet, gw: number, field: string): void {
  const cidr = formatSubnet(subnet);
  const bounds: Array<[string, string]> = [['start', dhcp.start], ['end', dhcp.end]];
  for (const [key, text] of bounds) {
    const value = parseIpv4(text);
    if (value === undefined) invalid(`${field}.${key}`, `"${text}" is not an IPv4 address`);
    if (!subnetContains(subnet, value)) invalid(`${field}.${key}`, `${text} is outside the network's subnet ${cidr}`);
    if (value === subnet.network) invalid(`${field}.${key}`, `${text} is the network address of ${cidr}`);
    if (value === subnet.broadcast) invalid(`${field}.${key}`, `${text} is the broadcast address of ${cidr}`);
  }
  const start = parseIpv4(dhcp.start) ?? 0;
  const end = parseIpv4(dhcp.end) ?? 0;
  if (start > end) invalid(field, `the pool starts (${dhcp.start}) after it ends (${dhcp.end})`);
  if (gw >= start && gw <= end) {
    invalid(field, `the pool ${dhcp.start}-${dhcp.end} contains the bridge's own address ${formatIpv4(gw)}; start it after the gateway`);
  }
}

/**
 * Checks one network config on its own and returns it normalised (UUID lowercase). Throws
 * INVALID_ARG naming the offending field.
 */
export function validateNetworkConfig(cfg: NetworkConfig): NetworkConfig {
  if (typeof cfg.name !== 'string' || !NAME_RE.test(cfg.name)) {
    invalid('name', `"${String(cfg.name)}" is not a network name (1-64 of letters, digits, ".", "_", "-", "+", not starting with "." or "-")`);
  }
  if (typeof cfg.uuid !== 'string' || !UUID_RE.test(cfg.uuid)) invalid('uuid', `"${String(cfg.uuid)}" is not a UUID`);
  if (cfg.type !== 'nat' && cfg.type !== 'isolated' && cfg.type !== 'bridge') {
    invalid('type', `"${String(cfg.type)}" is not a network type (nat, isolated or bridge)`);
  }
  validateIfname(cfg.bridge, 'bridge');
  if (cfg.type === 'bridge') {
    if (cfg.ipv4 !== undefined) invalid('ipv4', 'a bridge network uses the host bridge as it is; virtq sets no address on it');
    if (cfg.domain !== undefined) invalid('domain', 'a bridge network has no dnsmasq of virtq to serve a domain');
  } else {
    if (cfg.ipv4 === undefined) invalid('ipv4', `a ${cfg.type} network needs an IPv4 address and prefix for its bridge`);
    validateIpv4(cfg.ipv4);
    if (cfg.domain !== undefined) validateDomain(cfg.domain);
  }
  return { ...cfg, uuid: cfg.uuid.toLowerCase() };
}

/**
 * Checks `cfg` against the other networks of the host (the daemon's defined ones, `cfg` itself
 * excluded by name): the same name or UUID is ALREADY_EXISTS; the same bridge, or an IPv4 subnet
 * overlapping another's, is IN_USE naming the other network.
 */
export function checkConflicts(cfg: NetworkConfig, others: readonly NetworkConfig[]): void {
  const mine = cfg.ipv4 === undefined ? undefined : ipv4Subnet(cfg.ipv4);
  for (const other of others) {
    if (other.name === cfg.name) continue;
    if (other.uuid.toLowerCase() === cfg.uuid.toLowerCase()) {
      throw new VirtqError('ALREADY_EXISTS', `network "${other.name}" already has UUID ${cfg.uuid}`, { details: { network: other.name } });
    }
    if (other.bridge === cfg.bridge) {
      throw new VirtqError('IN_USE', `bridge ${cfg.bridge} is already used by network "${other.name}"; choose another bridge name`, { details: { network: other.name, field: 'bridge' } });
    }
    if (mine === undefined || other.ipv4 === undefined) continue;
    const theirs = ipv4Subnet(other.ipv4);
    if (subnetsOverlap(mine, theirs)) {
      throw new VirtqError('IN_USE', `subnet ${formatSubnet(mine)} overlaps subnet ${formatSubnet(theirs)} of network "${other.name}"; choose a subnet no other network uses`, { details: { network: other.name, field: 'ipv4' } });
    }
  }
}
