// dnsmasq's DHCP lease file, one lease a line: `EXPIRY MAC IP HOSTNAME CLIENT-ID` (EXPIRY in
// seconds since the epoch, 0 for infinite; `*` for an unknown hostname or client id). IPv6 lines
// (after a `duid` line) are skipped: virtq networks are IPv4 only.
import { readFile } from 'node:fs/promises';
import { VirtqError } from '../../protocol/errors.js';
import { parseIpv4 } from './ipv4.js';
import type { DhcpLease } from './types.js';

/** Parses lease file text; malformed lines are skipped, as dnsmasq itself does on reading. */
export function parseLeases(text: string): DhcpLease[] {
  const leases: DhcpLease[] = [];
  for (const line of text.split('\n')) {
    const [expiry, mac, ip, hostname, clientId] = line.trim().split(/\s+/);
    if (expiry === undefined || mac === undefined || ip === undefined) continue;
    if (!/^\d+$/.test(expiry) || parseIpv4(ip) === undefined || !/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i.test(mac)) continue;
    const lease: DhcpLease = { mac: mac.toLowerCase(), ip, expiresAt: expiry === '0' ? null : Number(expiry) * 1000 };
    if (hostname !== undefined && hostname !== '*') lease.hostname = hostname;
    if (clientId !== undefined && clientId !== '*') lease.clientId = clientId;
    leases.push(lease);
  }
  return leases;
}

/** The leases in `file`, those expired before `now` (ms) left out; no file means no leases. */
export async function readLeases(file: string, now: number): Promise<DhcpLease[]> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw new VirtqError('OPERATION_FAILED', `cannot read DHCP leases from ${file}: ${(err as Error).message}`, { cause: err });
  }
  return parseLeases(text).filter((l) => l.expiresAt === null || l.expiresAt > now);
}
