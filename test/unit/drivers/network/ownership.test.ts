// Ownership marks: tap names derived from port ids, ifalias marks written and read back.
import { describe, expect, it } from 'vitest';
import { bridgeAlias, parseOwnerMark, portAlias, tapNameFor } from '../../../../drivers/network/ownership.js';

describe('tapNameFor', () => {
  it('derives a 15-byte name from the port id', () => {
    const tap = tapNameFor('0123abcd-ef45-4678-9abc-def012345678');
    expect(tap).toBe('vq-0123abcdef45');
    expect(Buffer.byteLength(tap)).toBe(15);
  });
});

describe('parseOwnerMark', () => {
  it('reads back the marks of bridges and taps', () => {
    expect(parseOwnerMark(bridgeAlias('a1b2c3d4', 'net-uuid'))).toEqual({ kind: 'net', instance: 'a1b2c3d4', network: 'net-uuid' });
    expect(parseOwnerMark(portAlias('a1b2c3d4', 'net-uuid', 'port-uuid'))).toEqual({ kind: 'port', instance: 'a1b2c3d4', network: 'net-uuid', port: 'port-uuid' });
  });

  it('ignores aliases virtq did not write', () => {
    for (const alias of [undefined, '', 'uplink', 'virtq', 'virtq::net:x', 'virtq:a:net', 'virtq:a:vm:x', 'virtq:a:port:x', 'virtq:a:net:x:y']) {
      expect(parseOwnerMark(alias), String(alias)).toBeUndefined();
    }
  });
});
