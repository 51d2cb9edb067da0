// dnsmasq's configuration: bound to the bridge only, every file under the state dir, nothing
// read from the host's dnsmasq.conf or /etc/hosts, no upstream and no router for isolated networks.
import { describe, expect, it } from 'vitest';
import { dnsmasqArgs, dnsmasqCmdlineMarker, dnsmasqConf } from '../../../../drivers/network/dnsmasq-conf.js';
import type { NetworkConfig } from '../../../../drivers/network/types.js';

const PATHS = { conf: '/s/n/dnsmasq.conf', pid: '/s/n/dnsmasq.pid', leases: '/s/n/dnsmasq.leases', log: '/s/n/dnsmasq.log' };
const NAT: NetworkConfig = {
  name: 'default', uuid: '8f6c2a7e-3b1d-4c5e-9a0f-1b2c3d4e5f60', type: 'nat', bridge: 'virbr0',
  ipv4: { address: '192.168.122.1', prefix: 24, dhcp: { start: '192.168.122.2', end: '192.168.122.254' } }, domain: 'vm.test',
};
const lines = (text: string) => text.split('\n').filter((l) => l !== '' && !l.startsWith('#'));

describe('dnsmasqConf', () => {
  it('serves DHCP and DNS on the bridge only, with its files under the state dir', () => {
    expect(lines(dnsmasqConf(NAT, PATHS))).toEqual([
      'strict-order',
      'pid-file=/s/n/dnsmasq.pid',
      'except-interface=lo',
      'bind-interfaces',
      'interface=virbr0',
      'no-hosts',
      'log-facility=-',
      'domain=vm.test',
      'local=/vm.test/',
      'expand-hosts',
      'dhcp-range=192.168.122.2,192.168.122.254,255.255.255.0,1h',
      'dhcp-lease-max=253',
      'dhcp-leasefile=/s/n/dnsmasq.leases',
      'dhcp-authoritative',
      'dhcp-no-override',
      'no-ping',
    ]);
  });

  it('gives an isolated network no upstream servers and no router', () => {
    const conf = lines(dnsmasqConf({ ...NAT, type: 'isolated', domain: undefined }, PATHS));
    expect(conf).toContain('no-resolv');
    expect(conf).toContain('dhcp-option=option:router');
    expect(conf.some((l) => l.startsWith('domain='))).toBe(false);
  });

  it('serves DNS only when the network has no DHCP pool', () => {
    const conf = lines(dnsmasqConf({ ...NAT, ipv4: { address: '10.0.0.1', prefix: 24 } }, PATHS));
    expect(conf.some((l) => l.startsWith('dhcp-'))).toBe(false);
    expect(conf).toContain('interface=virbr0');
  });
});

describe('dnsmasqArgs', () => {
  it('reads only our conf file and stays in the foreground', () => {
    expect(dnsmasqArgs(PATHS)).toEqual(['--keep-in-foreground', '--conf-file=/s/n/dnsmasq.conf']);
    expect(dnsmasqCmdlineMarker(PATHS)).toBe('\0--conf-file=/s/n/dnsmasq.conf\0');
  });
});
