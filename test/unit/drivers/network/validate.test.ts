// Network config validation: names, interface names, the IPv4 plan, conflicts between networks.
import { describe, expect, it } from 'vitest';
import { checkConflicts, validateDomain, validateIfname, validateNetworkConfig } from '../../../../drivers/network/validate.js';
import type { NetworkConfig } from '../../../../drivers/network/types.js';
import { defaultNetwork } from '../../../../drivers/network/defaults.js';

const NAT: NetworkConfig = {
  name: 'default', uuid: '8F6C2A7E-3B1D-4C5E-9A0F-1B2C3D4E5F60', type: 'nat', bridge: 'virbr0',
  ipv4: { address: '192.168.122.1', prefix: 24, dhcp: { start: '192.168.122.2', end: '192.168.122.254' } },
};
const with4 = (ipv4: NetworkConfig['ipv4']): NetworkConfig => ({ ...NAT, ipv4 });
const invalidAt = (field: string) => expect.objectContaining({ code: 'INVALID_ARG', message: expect.stringContaining(field) });

describe('validateNetworkConfig', () => {
  it('accepts a nat network and lowercases its UUID', () => {
    expect(validateNetworkConfig(NAT).uuid).toBe('8f6c2a7e-3b1d-4c5e-9a0f-1b2c3d4e5f60');
    expect(validateNetworkConfig({ ...NAT, type: 'isolated', domain: 'vm.example' }).type).toBe('isolated');
    expect(validateNetworkConfig({ name: 'lan', uuid: NAT.uuid, type: 'bridge', bridge: 'br0' }).bridge).toBe('br0');
  });

  it('refuses bad names, UUIDs and types', () => {
    expect(() => validateNetworkConfig({ ...NAT, name: '-x' })).toThrow(invalidAt('name'));
    expect(() => validateNetworkConfig({ ...NAT, name: 'a/b' })).toThrow(invalidAt('name'));
    expect(() => validateNetworkConfig({ ...NAT, name: 'x'.repeat(65) })).toThrow(invalidAt('name'));
    expect(() => validateNetworkConfig({ ...NAT, uuid: 'nope' })).toThrow(invalidAt('uuid'));
    expect(() => validateNetworkConfig({ ...NAT, type: 'route' as 'nat' })).toThrow(invalidAt('type'));
  });

  it('requires an IPv4 plan for nat and isolated, and refuses one for bridge', () => {
    expect(() => validateNetworkConfig({ ...NAT, ipv4: undefined })).toThrow(invalidAt('ipv4'));
    expect(() => validateNetworkConfig({ ...NAT, type: 'bridge' })).toThrow(invalidAt('ipv4'));
    expect(() => validateNetworkConfig({ name: 'lan', uuid: NAT.uuid, type: 'bridge', bridge: 'br0', domain: 'x.test' })).toThrow(invalidAt('domain'));
  });

  it('refuses a gateway that is the network or broadcast address, or not a host address', () => {
    expect(() => validateNetworkConfig(with4({ address: '192.168.122.0', prefix: 24 }))).toThrow(/network address of 192\.168\.122\.0\/24/);
    expect(() => validateNetworkConfig(with4({ address: '192.168.122.255', prefix: 24 }))).toThrow(/broadcast address/);
    expect(() => validateNetworkConfig(with4({ address: '127.0.0.1', prefix: 8 }))).toThrow(invalidAt('ipv4.address'));
    expect(() => validateNetworkConfig(with4({ address: '224.0.0.1', prefix: 24 }))).toThrow(invalidAt('ipv4.address'));
    expect(() => validateNetworkConfig(with4({ address: '10.0.0.300', prefix: 24 }))).toThrow(invalidAt('ipv4.address'));
  });

  it('refuses prefixes that leave no room for guests', () => {
    expect(() => validateNetworkConfig(with4({ address: '10.0.0.1', prefix: 31 }))).toThrow(invalidAt('ipv4.prefix'));
    expect(() => validateNetworkConfig(with4({ address: '10.0.0.1', prefix: 0 }))).toThrow(invalidAt('ipv4.prefix'));
    expect(() => validateNetworkConfig(with4({ address: '10.0.0.1', prefix: 24.5 }))).toThrow(invalidAt('ipv4.prefix'));
    expect(validateNetworkConfig(with4({ address: '10.0.0.1', prefix: 30 })).ipv4?.prefix).toBe(30);
  });

  it('keeps the DHCP pool inside the subnet, off its network, broadcast and gateway addresses, and in order', () => {
    const dhcp = (start: string, end: string) => with4({ address: '192.168.122.1', prefix: 24, dhcp: { start, end } });
    expect(() => validateNetworkConfig(dhcp('192.168.123.2', '192.168.123.9'))).toThrow(/outside the network's subnet 192\.168\.122\.0\/24/);
    expect(() => validateNetworkConfig(dhcp('192.168.122.2', '192.168.123.9'))).toThrow(invalidAt('ipv4.dhcp.end'));
    expect(() => validateNetworkConfig(dhcp('192.168.122.0', '192.168.122.9'))).toThrow(/network address/);
    expect(() => validateNetworkConfig(dhcp('192.168.122.2', '192.168.122.255'))).toThrow(/broadcast address/);
    expect(() => validateNetworkConfig(dhcp('192.168.122.9', '192.168.122.2'))).toThrow(/starts \(192\.168\.122\.9\) after it ends/);
    expect(() => validateNetworkConfig(dhcp('192.168.122.1', '192.168.122.9'))).toThrow(/contains the bridge's own address 192\.168\.122\.1/);
    expect(() => validateNetworkConfig(with4({ address: '192.168.122.100', prefix: 24, dhcp: { start: '192.168.122.2', end: '192.168.122.200' } }))).toThrow(/own address/);
    expect(() => validateNetworkConfig(dhcp('x', '192.168.122.9'))).toThrow(invalidAt('ipv4.dhcp.start'));
    expect(validateNetworkConfig(dhcp('192.168.122.2', '192.168.122.2')).ipv4?.dhcp?.start).toBe('192.168.122.2');
  });

  it('refuses a domain that is not a DNS name', () => {
    expect(() => validateDomain('Bad_Domain')).toThrow(invalidAt('domain'));
    expect(() => validateDomain('a..b')).toThrow(invalidAt('domain'));
    expect(() => validateDomain('-a.b')).toThrow(invalidAt('domain'));
    expect(() => validateDomain('vm.example.org')).not.toThrow();
  });
});

describe('validateIfname', () => {
  it('accepts 15 bytes and refuses 16', () => {
    expect(() => validateIfname('a'.repeat(15))).not.toThrow();
    expect(() => validateIfname('a'.repeat(16))).toThrow(/16 bytes; Linux allows 1 to 15/);
    expect(() => validateIfname('')).toThrow(invalidAt('bridge'));
  });

  it('counts bytes, not characters, and refuses unsafe characters', () => {
    expect(() => validateIfname('brü', 'x')).toThrow(invalidAt('x'));
    expect(() => validateIfname('ü'.repeat(8), 'x')).toThrow(/16 bytes/);
    for (const bad of ['br 0', 'br/0', 'br:0', '-br', '.br', '..', 'br$x']) expect(() => validateIfname(bad), bad).toThrow(invalidAt('bridge'));
    expect(() => validateIfname('virbr-0.1_x')).not.toThrow();
  });
});

describe('checkConflicts', () => {
  const other = (over: Partial<NetworkConfig>): NetworkConfig => ({ ...NAT, name: 'other', uuid: '00000000-0000-4000-8000-000000000001', bridge: 'virbr1', ipv4: { address: '10.0.0.1', prefix: 24 }, ...over });

  it('refuses a subnet that overlaps another network, naming it', () => {
    expect(() => checkConflicts(NAT, [other({ ipv4: { address: '192.168.0.1', prefix: 16 } })])).toThrow(
      expect.objectContaining({ code: 'IN_USE', message: expect.stringMatching(/192\.168\.122\.0\/24 overlaps subnet 192\.168\.0\.0\/16 of network "other"/) }),
    );
    expect(() => checkConflicts(NAT, [other({ ipv4: { address: '192.168.122.129', prefix: 25 } })])).toThrow(expect.objectContaining({ code: 'IN_USE' }));
  });

  it('accepts adjacent subnets, bridge networks and the network itself', () => {
    expect(() => checkConflicts(NAT, [other({ ipv4: { address: '192.168.123.1', prefix: 24 } })])).not.toThrow();
    expect(() => checkConflicts(NAT, [{ name: 'lan', uuid: '00000000-0000-4000-8000-000000000002', type: 'bridge', bridge: 'br0' }])).not.toThrow();
    expect(() => checkConflicts(NAT, [NAT])).not.toThrow();
  });

  it('refuses the same bridge or the same UUID', () => {
    expect(() => checkConflicts(NAT, [other({ bridge: 'virbr0' })])).toThrow(expect.objectContaining({ code: 'IN_USE', message: expect.stringContaining('bridge virbr0') }));
    expect(() => checkConflicts(NAT, [other({ uuid: NAT.uuid.toLowerCase() })])).toThrow(expect.objectContaining({ code: 'ALREADY_EXISTS' }));
  });
});

describe('defaultNetwork', () => {
  it('is valid and does not collide with libvirt\'s default network', () => {
    const cfg = validateNetworkConfig(defaultNetwork('00000000-0000-4000-8000-000000000009'));
    const libvirt: NetworkConfig = { name: 'libvirt', uuid: '00000000-0000-4000-8000-00000000000a', type: 'nat', bridge: 'virbr0', ipv4: { address: '192.168.122.1', prefix: 24 } };
    expect(() => checkConflicts(cfg, [libvirt])).not.toThrow();
  });
});
