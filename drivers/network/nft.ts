// NAT for a `nat` network, isolation for an `isolated` one: one nftables table per network
// (`table ip virtq_<uuid hex>`), replaced atomically in one `nft -f` transaction and removed on stop. Nothing outside that table is read or
// written. Base chains of different tables all see a packet: an accept here does not override a
// drop in a host firewall's own forward chain, and a reject here wins over accepts elsewhere.
import { formatSubnet } from './ipv4.js';
import { commandError, runOk, type CommandRunner } from './runner.js';
import type { NetworkConfig } from './types.js';
import { ipv4Subnet } from './validate.js';

/** The nftables table of network `cfg` (family ip). */
export function nftTableName(cfg: Pick<NetworkConfig, 'uuid'>): string {
  return `virtq_${cfg.uuid.replace(/-/g, '').toLowerCase()}`;
}

/**
 * The nft script that (re)creates the table of `cfg`, a `nat` network with an IPv4 plan:
 * masquerade the subnet going out of any interface but the bridge (multicast and broadcast left
 * alone, as libvirt does); forward the subnet out, let only replies in, and reject other traffic
 * from or to the bridge, so a guest on another network cannot open connections to this one.
 * The first two lines make the script work whether the table exists or not.
 */
export function natRuleset(cfg: NetworkConfig): string {
  if (cfg.ipv4 === undefined) throw new Error(`network ${cfg.name} has no IPv4 plan`);
  const table = nftTableName(cfg);
  const net = formatSubnet(ipv4Subnet(cfg.ipv4));
  const br = `"${cfg.bridge}"`;
  return [
    `table ip ${table} {}`,
    `delete table ip ${table}`,
    `table ip ${table} {`,
    `  comment "virtq network ${cfg.name} on ${cfg.bridge}"`,
    '  chain postrouting {',
    '    type nat hook postrouting priority srcnat; policy accept;',
    `    ip saddr ${net} ip daddr 224.0.0.0/24 return`,
    `    ip saddr ${net} ip daddr 255.255.255.255 return`,
    `    ip saddr ${net} ip daddr != ${net} oifname != ${br} masquerade`,
    '  }',
    '  chain forward {',
    '    type filter hook forward priority filter; policy accept;',
    `    iifname ${br} oifname ${br} accept`,
    `    iifname ${br} ip saddr ${net} accept`,
    `    iifname ${br} reject`,
    `    oifname ${br} ip daddr ${net} ct state established,related accept`,
    `    oifname ${br} reject`,
    '  }',
    '}',
    '',
  ].join('\n');
}

/**
 * The nft script that (re)creates the table of `cfg`, an `isolated` network: nothing is forwarded
 * into or out of its bridge. Without it a guest of a nat network reached an isolated guest: the
 * host forwarded its packets and the nat table masqueraded them as the isolated bridge's own
 * address, to which the guest replied on its link (libvirt's isolated networks reject the same).
 */
export function isolationRuleset(cfg: NetworkConfig): string {
  const table = nftTableName(cfg);
  const br = `"${cfg.bridge}"`;
  return [
    `table ip ${table} {}`,
    `delete table ip ${table}`,
    `table ip ${table} {`,
    `  comment "virtq network ${cfg.name} on ${cfg.bridge} (isolated)"`,
    '  chain forward {',
    '    type filter hook forward priority filter; policy accept;',
    `    iifname ${br} oifname ${br} accept`,
    `    iifname ${br} reject`,
    `    oifname ${br} reject`,
    '  }',
    '}',
    '',
  ].join('\n');
}

/** Creates or replaces the NAT table of `cfg` in one transaction. */
export async function applyNat(runner: CommandRunner, cfg: NetworkConfig): Promise<void> {
  await runOk(runner, 'nft', ['-f', '-'], `installing nftables table ${nftTableName(cfg)} for network ${cfg.name}`, { input: natRuleset(cfg) });
}

/** Creates or replaces the isolation table of `cfg` in one transaction. */
export async function applyIsolation(runner: CommandRunner, cfg: NetworkConfig): Promise<void> {
  await runOk(runner, 'nft', ['-f', '-'], `installing nftables table ${nftTableName(cfg)} for network ${cfg.name}`, { input: isolationRuleset(cfg) });
}

/** True when the table of `cfg` exists. */
export async function natPresent(runner: CommandRunner, cfg: NetworkConfig): Promise<boolean> {
  const args = ['list', 'table', 'ip', nftTableName(cfg)];
  const res = await runner.run('nft', args);
  if (res.code === 0) return true;
  if (/No such file or directory/.test(res.stderr)) return false;
  throw commandError(`looking up nftables table ${nftTableName(cfg)}`, 'nft', args, res);
}

/** Deletes the table of `cfg`; true when it existed. */
export async function removeNat(runner: CommandRunner, cfg: NetworkConfig): Promise<boolean> {
  const args = ['delete', 'table', 'ip', nftTableName(cfg)];
  const res = await runner.run('nft', args);
  if (res.code === 0) return true;
  if (/No such file or directory/.test(res.stderr)) return false;
  throw commandError(`removing nftables table ${nftTableName(cfg)}`, 'nft', args, res);
}

/**
 * Turns on IPv4 forwarding where the runner runs (the host, or the namespace it is in). This is
 * the one global setting the driver changes; it is never turned off again, as other things may
 * rely on it by then (libvirt does the same).
 */
export async function enableIpForward(runner: CommandRunner): Promise<void> {
  await runOk(runner, 'tee', ['/proc/sys/net/ipv4/ip_forward'], 'enabling IPv4 forwarding', { input: '1\n' });
}
