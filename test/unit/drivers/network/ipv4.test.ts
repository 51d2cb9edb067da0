// IPv4 arithmetic: dotted quads, subnets, containment and overlap, CIDR parsing.
import { describe, expect, it } from 'vitest';
import { formatIpv4, formatSubnet, netmaskOf, parseCidr, parseIpv4, subnetContains, subnetOf, subnetsOverlap } from '../../../../drivers/network/ipv4.js';

describe('parseIpv4', () => {
  it('parses dotted quads to uint32 and back', () => {
    expect(parseIpv4('192.168.122.1')).toBe(0xc0a87a01);
    expect(parseIpv4('255.255.255.255')).toBe(0xffffffff);
    expect(parseIpv4('0.0.0.0')).toBe(0);
    expect(formatIpv4(0xc0a87a01)).toBe('192.168.122.1');
    expect(formatIpv4(0xffffffff)).toBe('255.255.255.255');
  });

  it('refuses malformed text, octets over 255 and leading zeros', () => {
    for (const bad of ['', '1.2.3', '1.2.3.4.5', '256.1.1.1', '1.2.3.-4', '01.2.3.4', ' 1.2.3.4', 'a.b.c.d', '1.2.3.4/24']) {
      expect(parseIpv4(bad), bad).toBeUndefined();
    }
  });
});

describe('subnetOf', () => {
  it('derives network, broadcast and netmask from an address and a prefix', () => {
    const s = subnetOf(parseIpv4('10.1.2.3') ?? 0, 20);
    expect(formatIpv4(s.network)).toBe('10.1.0.0');
    expect(formatIpv4(s.broadcast)).toBe('10.1.15.255');
    expect(formatIpv4(s.netmask)).toBe('255.255.240.0');
    expect(formatSubnet(s)).toBe('10.1.0.0/20');
    expect(formatIpv4(netmaskOf(0))).toBe('0.0.0.0');
    expect(formatIpv4(netmaskOf(32))).toBe('255.255.255.255');
    expect(formatIpv4(subnetOf(parseIpv4('200.1.1.1') ?? 0, 1).network)).toBe('128.0.0.0');
  });

  it('contains its network and broadcast addresses and nothing outside', () => {
    const s = subnetOf(parseIpv4('192.168.1.77') ?? 0, 24);
    expect(subnetContains(s, parseIpv4('192.168.1.0') ?? -1)).toBe(true);
    expect(subnetContains(s, parseIpv4('192.168.1.255') ?? -1)).toBe(true);
    expect(subnetContains(s, parseIpv4('192.168.2.0') ?? -1)).toBe(false);
    expect(subnetContains(s, parseIpv4('192.168.0.255') ?? -1)).toBe(false);
  });
});

describe('subnetsOverlap', () => {
  const cidr = (t: string) => parseCidr(t) ?? (() => { throw new Error(t); })();

  it('sees nested and equal subnets as overlapping, either way round', () => {
    expect(subnetsOverlap(cidr('10.0.0.0/8'), cidr('10.200.3.0/24'))).toBe(true);
    expect(subnetsOverlap(cidr('10.200.3.0/24'), cidr('10.0.0.0/8'))).toBe(true);
    expect(subnetsOverlap(cidr('192.168.1.0/24'), cidr('192.168.1.128/25'))).toBe(true);
    expect(subnetsOverlap(cidr('192.168.1.0/24'), cidr('192.168.1.0/24'))).toBe(true);
  });

  it('sees adjacent subnets as disjoint', () => {
    expect(subnetsOverlap(cidr('192.168.1.0/25'), cidr('192.168.1.128/25'))).toBe(false);
    expect(subnetsOverlap(cidr('192.168.1.0/24'), cidr('192.168.2.0/24'))).toBe(false);
  });
});

describe('parseCidr', () => {
  it('parses a/n, normalises to the network and takes a bare address as /32', () => {
    expect(formatSubnet(parseCidr('10.9.8.7/16') ?? subnetOf(0, 0))).toBe('10.9.0.0/16');
    expect(parseCidr('10.9.8.7')?.prefix).toBe(32);
  });

  it('refuses a bad prefix or a second slash', () => {
    for (const bad of ['10.0.0.0/33', '10.0.0.0/', '10.0.0.0/x', '10.0.0.0/8/8', 'default']) expect(parseCidr(bad), bad).toBeUndefined();
  });
});
