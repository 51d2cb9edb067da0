// IPv4 arithmetic on unsigned 32-bit integers: parsing dotted quads, subnets from an address and
// a prefix, containment and overlap. Pure; callers turn `undefined` into a typed error.

/** A subnet: its network address, prefix length and the derived bounds (all as uint32). */
export interface Subnet {
  network: number;
  prefix: number;
  broadcast: number;
  netmask: number;
}

const QUAD = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

/** `a.b.c.d` → uint32; undefined for anything else (leading zeros are refused: `010` is ambiguous). */
export function parseIpv4(text: string): number | undefined {
  const m = QUAD.exec(text);
  if (m === null) return undefined;
  let value = 0;
  for (const part of m.slice(1)) {
    if (part.length > 1 && part.startsWith('0')) return undefined;
    const n = Number(part);
    if (n > 255) return undefined;
    value = value * 256 + n;
  }
  return value;
}

/** uint32 → `a.b.c.d`. */
export function formatIpv4(value: number): string {
  return [24, 16, 8, 0].map((shift) => Math.floor(value / 2 ** shift) % 256).join('.');
}

/** The netmask of `prefix` (0–32) as uint32. */
export function netmaskOf(prefix: number): number {
  return prefix === 0 ? 0 : (0xffffffff - (2 ** (32 - prefix) - 1)) >>> 0;
}

/** The subnet `address/prefix` lies in. */
export function subnetOf(address: number, prefix: number): Subnet {
  const size = 2 ** (32 - prefix);
  const network = address - (address % size);
  return { network, prefix, broadcast: network + size - 1, netmask: netmaskOf(prefix) };
}

/** True when `address` lies in `subnet` (its network and broadcast addresses included). */
export function subnetContains(subnet: Subnet, address: number): boolean {
  return address >= subnet.network && address <= subnet.broadcast;
}

/** True when the two subnets share at least one address (one then contains the other). */
export function subnetsOverlap(a: Subnet, b: Subnet): boolean {
  return a.network <= b.broadcast && b.network <= a.broadcast;
}

/** `network/prefix` in CIDR notation. */
export function formatSubnet(subnet: Subnet): string {
  return `${formatIpv4(subnet.network)}/${subnet.prefix}`;
}

/** `a.b.c.d/n` (or a bare address, as /32) → Subnet; undefined when malformed. */
export function parseCidr(text: string): Subnet | undefined {
  const [addr, len, extra] = text.split('/');
  if (addr === undefined || extra !== undefined) return undefined;
  const address = parseIpv4(addr);
  const prefix = len === undefined ? 32 : /^\d{1,2}$/.test(len) ? Number(len) : NaN;
  if (address === undefined || !(prefix >= 0 && prefix <= 32)) return undefined;
  return subnetOf(address, prefix);
}
