// The default network of a first run: libvirt's 192.168.122.0/24 unless the host already routes
// it (libvirt's own virbr0, a VPN, another virtq root), then the next free /24; a free virtqbrN.
import { describe, expect, it } from 'vitest';
import { chooseDefaultNetwork } from '../../../networkd/default-network.js';
import { parseCidr, type Subnet } from '../../../drivers/network/ipv4.js';
import { validateNetworkConfig } from '../../../drivers/network/validate.js';

const cidrs = (...c: string[]): Subnet[] => c.map((x) => parseCidr(x) as Subnet);
const UUID = '8f6c2a7e-3b1d-4c5e-9a0f-1b2c3d4e5f60';

describe('chooseDefaultNetwork', () => {
  it('is a nat network on 192.168.122.0/24 and virtqbr0 on an empty host', () => {
    const net = chooseDefaultNetwork({ subnets: [], links: new Set(['lo']) }, [], UUID);
    expect(net).toEqual({ name: 'default', uuid: UUID, type: 'nat', bridge: 'virtqbr0', ipv4: { address: '192.168.122.1', prefix: 24, dhcp: { start: '192.168.122.2', end: '192.168.122.254' } } });
    expect(validateNetworkConfig(net)).toEqual(net);
  });

  it('skips subnets the host routes and bridges that exist', () => {
    const net = chooseDefaultNetwork({ subnets: cidrs('192.168.122.0/24', '192.168.120.0/23', '10.0.0.0/8'), links: new Set(['virtqbr0']) }, [], UUID);
    expect(net.ipv4?.address).toBe('192.168.123.1');
    expect(net.bridge).toBe('virtqbr1');
    const wide = chooseDefaultNetwork({ subnets: cidrs('192.168.122.0/23'), links: new Set() }, [], UUID);
    expect(wide.ipv4?.address).toBe('192.168.124.1');
  });
});
