// The NAT ruleset of a nat network: one table of its own, replaced atomically; masquerade out of
// any interface but the bridge, replies only into the bridge.
import { describe, expect, it } from 'vitest';
import { isolationRuleset, natRuleset, nftTableName } from '../../../../drivers/network/nft.js';
import type { NetworkConfig } from '../../../../drivers/network/types.js';

const NAT: NetworkConfig = {
  name: 'default', uuid: '8F6C2A7E-3B1D-4C5E-9A0F-1B2C3D4E5F60', type: 'nat', bridge: 'virbr0',
  ipv4: { address: '192.168.122.1', prefix: 24 },
};

describe('natRuleset', () => {
  it('names one table per network after its UUID', () => {
    expect(nftTableName(NAT)).toBe('virtq_8f6c2a7e3b1d4c5e9a0f1b2c3d4e5f60');
  });

  it('replaces the table in one script whether it exists or not', () => {
    const script = natRuleset(NAT).split('\n');
    expect(script.slice(0, 3)).toEqual([
      'table ip virtq_8f6c2a7e3b1d4c5e9a0f1b2c3d4e5f60 {}',
      'delete table ip virtq_8f6c2a7e3b1d4c5e9a0f1b2c3d4e5f60',
      'table ip virtq_8f6c2a7e3b1d4c5e9a0f1b2c3d4e5f60 {',
    ]);
    expect(script.filter((l) => /^(table|delete) /.test(l)).every((l) => l.includes('virtq_8f6c2a7e'))).toBe(true);
  });

  it('masquerades the subnet leaving by any other interface, and lets only replies in', () => {
    const script = natRuleset(NAT);
    expect(script).toContain('ip saddr 192.168.122.0/24 ip daddr != 192.168.122.0/24 oifname != "virbr0" masquerade');
    expect(script).toContain('ip saddr 192.168.122.0/24 ip daddr 224.0.0.0/24 return');
    expect(script).toContain('iifname "virbr0" ip saddr 192.168.122.0/24 accept');
    expect(script).toContain('oifname "virbr0" ip daddr 192.168.122.0/24 ct state established,related accept');
    expect(script.indexOf('oifname "virbr0" reject')).toBeGreaterThan(script.indexOf('ct state established,related accept'));
    expect(script).toContain('comment "virtq network default on virbr0"');
  });
});

describe('isolationRuleset', () => {
  it('forwards nothing into or out of an isolated network\'s bridge, in a table of its own', () => {
    const script = isolationRuleset({ ...NAT, type: 'isolated', bridge: 'vqiso0' }).split('\n');
    expect(script.slice(0, 3)).toEqual([
      'table ip virtq_8f6c2a7e3b1d4c5e9a0f1b2c3d4e5f60 {}',
      'delete table ip virtq_8f6c2a7e3b1d4c5e9a0f1b2c3d4e5f60',
      'table ip virtq_8f6c2a7e3b1d4c5e9a0f1b2c3d4e5f60 {',
    ]);
    expect(script.map((l) => l.trim()).filter((l) => /^(iif|oif)name/.test(l))).toEqual(['iifname "vqiso0" oifname "vqiso0" accept', 'iifname "vqiso0" reject', 'oifname "vqiso0" reject']);
    expect(script.join('\n')).not.toContain('masquerade');
  });
});
