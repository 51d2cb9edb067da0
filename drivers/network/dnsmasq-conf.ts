// The dnsmasq configuration of one `nat`/`isolated` network (pure): DHCP and DNS on the bridge
// only, every file under the network's state dir, nothing read from /etc/dnsmasq.conf, the
// host's /etc/hosts, or (for an isolated network, which has no way out) the host's resolv.conf.
import { formatIpv4, parseIpv4 } from './ipv4.js';
import type { NetworkConfig } from './types.js';
import { ipv4Subnet } from './validate.js';

/** Where one network's dnsmasq keeps its files. */
export interface DnsmasqPaths {
  conf: string;
  pid: string;
  leases: string;
  log: string;
}

/** dnsmasq's command line: the conf file says everything; `-k` keeps it our child while we live. */
export function dnsmasqArgs(paths: DnsmasqPaths): string[] {
  return ['--keep-in-foreground', `--conf-file=${paths.conf}`];
}

/**
 * The marker that identifies a network's dnsmasq in /proc/PID/cmdline (NUL-separated): the conf
 * file path is unique to the network's state dir, so a recycled pid cannot be mistaken for it.
 */
export function dnsmasqCmdlineMarker(paths: DnsmasqPaths): string {
  return `\0--conf-file=${paths.conf}\0`;
}

/** The conf file text for `cfg` (which must have an IPv4 plan). */
export function dnsmasqConf(cfg: NetworkConfig, paths: DnsmasqPaths): string {
  if (cfg.ipv4 === undefined) throw new Error(`network ${cfg.name} has no IPv4 plan`);
  const subnet = ipv4Subnet(cfg.ipv4);
  const lines = [
    `# virtq network ${cfg.name} (${cfg.uuid}); written by virtq on every start, do not edit`,
    'strict-order',
    `pid-file=${paths.pid}`,
    'except-interface=lo',
    'bind-interfaces',
    `interface=${cfg.bridge}`,
    'no-hosts',
    'log-facility=-',
  ];
  if (cfg.type === 'isolated') lines.push('no-resolv');
  if (cfg.domain !== undefined) lines.push(`domain=${cfg.domain}`, `local=/${cfg.domain}/`, 'expand-hosts');
  if (cfg.ipv4.dhcp !== undefined) {
    const { start, end } = cfg.ipv4.dhcp;
    const size = (parseIpv4(end) ?? 0) - (parseIpv4(start) ?? 0) + 1;
    lines.push(
      `dhcp-range=${start},${end},${formatIpv4(subnet.netmask)},1h`,
      `dhcp-lease-max=${size}`,
      `dhcp-leasefile=${paths.leases}`,
      'dhcp-authoritative',
      'dhcp-no-override',
      // dnsmasq otherwise pings each new address before offering it and holds the offer up to 3 s;
      // guests booting together then time out and lose leases. The lease file already knows every
      // address of the pool; only a guest configured by hand inside the pool could clash.
      'no-ping',
    );
    // An isolated network has no way out: hand out no router, so guests get no default route.
    if (cfg.type === 'isolated') lines.push('dhcp-option=option:router');
  }
  return `${lines.join('\n')}\n`;
}
