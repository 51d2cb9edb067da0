// MAC addresses: parsing and normalising, unicast-only, generation in 52:54:00, the tap's address.
import { describe, expect, it } from 'vitest';
import { generateMac, generateUniqueMac, parseMac, tapMacFor } from '../../../../drivers/network/mac.js';

describe('parseMac', () => {
  it('normalises to lowercase with colons', () => {
    expect(parseMac('52:54:00:AB:cD:eF')).toBe('52:54:00:ab:cd:ef');
    expect(parseMac('52-54-00-12-34-56')).toBe('52:54:00:12:34:56');
  });

  it('refuses malformed addresses, naming the field', () => {
    for (const bad of ['', '52:54:00:12:34', '52:54:00:12:34:56:78', '52:54-00:12:34:56', '5254.0012.3456', 'zz:54:00:12:34:56', '2:54:00:12:34:56']) {
      expect(() => parseMac(bad, 'interfaces[0].mac'), bad).toThrow(expect.objectContaining({ code: 'INVALID_ARG', message: expect.stringContaining('interfaces[0].mac') }));
    }
  });

  it('refuses multicast and broadcast addresses', () => {
    expect(() => parseMac('01:00:5e:00:00:01')).toThrow(/multicast/);
    expect(() => parseMac('ff:ff:ff:ff:ff:ff')).toThrow(/multicast/);
    expect(() => parseMac('53:54:00:00:00:01')).toThrow(/multicast/);
    expect(parseMac('02:00:00:00:00:01')).toBe('02:00:00:00:00:01');
  });

  it('refuses the all-zero address', () => {
    expect(() => parseMac('00:00:00:00:00:00')).toThrow(expect.objectContaining({ code: 'INVALID_ARG' }));
  });
});

describe('generateMac', () => {
  it('generates in 52:54:00 from the random source', () => {
    expect(generateMac(() => Uint8Array.from([0x0a, 0xbc, 0xff]))).toBe('52:54:00:0a:bc:ff');
    expect(parseMac(generateMac())).toMatch(/^52:54:00:[0-9a-f]{2}:[0-9a-f]{2}:[0-9a-f]{2}$/);
  });

  it('skips addresses already taken, and gives up after many draws', () => {
    const draws = [[1, 1, 1], [1, 1, 1], [2, 2, 2]];
    let i = 0;
    const random = () => Uint8Array.from(draws[i++] ?? [9, 9, 9]);
    expect(generateUniqueMac(new Set(['52:54:00:01:01:01']), random)).toBe('52:54:00:02:02:02');
    expect(() => generateUniqueMac(new Set(['52:54:00:00:00:00']), () => new Uint8Array(3))).toThrow(expect.objectContaining({ code: 'INTERNAL' }));
  });
});

describe('tapMacFor', () => {
  it('replaces the first octet with fe', () => {
    expect(tapMacFor('52:54:00:12:34:56')).toBe('fe:54:00:12:34:56');
  });
});
