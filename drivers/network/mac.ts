// MAC addresses: parsing user input into the one form virtq stores (lowercase, colons), the
// checks a NIC's address must pass, generation in QEMU's 52:54:00 prefix, and the host-side tap
// address derived from the guest's.
import { randomBytes } from 'node:crypto';
import { VirtqError } from '../../protocol/errors.js';

const MAC_RE = /^([0-9a-fA-F]{2})([:-])([0-9a-fA-F]{2})\2([0-9a-fA-F]{2})\2([0-9a-fA-F]{2})\2([0-9a-fA-F]{2})\2([0-9a-fA-F]{2})$/;

/** The prefix QEMU (and libvirt) use for generated NIC addresses: locally administered, unicast. */
export const QEMU_MAC_PREFIX = '52:54:00';

/**
 * Parses a NIC's MAC (`aa:bb:cc:dd:ee:ff` or with `-`) into lowercase with colons. Throws
 * INVALID_ARG when malformed, multicast (the low bit of the first octet) or all zero, naming `field`.
 */
export function parseMac(text: string, field = 'mac'): string {
  const m = MAC_RE.exec(text);
  if (m === null) {
    throw new VirtqError('INVALID_ARG', `${field}: "${text}" is not a MAC address (six hex octets separated by ":", e.g. 52:54:00:12:34:56)`);
  }
  const octets = [m[1], m[3], m[4], m[5], m[6], m[7]].map((o) => (o ?? '').toLowerCase());
  const first = parseInt(octets[0] ?? '0', 16);
  if ((first & 1) === 1) {
    throw new VirtqError('INVALID_ARG', `${field}: ${octets.join(':')} is a multicast address; a NIC needs a unicast one (even first octet)`);
  }
  if (octets.every((o) => o === '00')) {
    throw new VirtqError('INVALID_ARG', `${field}: 00:00:00:00:00:00 is not a usable NIC address`);
  }
  return octets.join(':');
}

/** A random MAC in 52:54:00; `random(n)` gives n random bytes (injected by tests). */
export function generateMac(random: (n: number) => Uint8Array = randomBytes): string {
  const tail = [...random(3)].map((b) => b.toString(16).padStart(2, '0'));
  return [QEMU_MAC_PREFIX, ...tail].join(':');
}

/** A generated MAC not in `taken` (lowercase); gives up with INTERNAL after 64 draws. */
export function generateUniqueMac(taken: ReadonlySet<string>, random: (n: number) => Uint8Array = randomBytes): string {
  for (let i = 0; i < 64; i++) {
    const mac = generateMac(random);
    if (!taken.has(mac)) return mac;
  }
  throw new VirtqError('INTERNAL', 'cannot generate a MAC address that is not in use on the network');
}

/**
 * The host-side address of the tap for a guest NIC `mac`: the same with `fe` as first octet, as
 * libvirt does. A high first octet keeps the tap from ever being the lowest address on the bridge,
 * and differing from the guest keeps the bridge's forwarding table unambiguous.
 */
export function tapMacFor(mac: string): string {
  return `fe${mac.slice(2)}`;
}
