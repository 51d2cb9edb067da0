// Network interfaces in a VM definition: the MAC is generated when absent (the same for the same
// UUID and position) and kept, so define → dumpdef shows it; bad, multicast and duplicate MACs are
// refused with the field's path; a running VM's definition shows no port.
import { describe, expect, it } from 'vitest';
import { asDefined, definitionValidator, derivedMac, normalizeDefinition, type ResolvedDefinition } from '../../../protocol/definition.js';

const UUID = '6f1c1f0e-3b0a-4d55-9d2e-0c4b8f6a7e21';
const base = { name: 'web1', uuid: UUID, memoryMiB: 128 };
const norm = (interfaces: unknown[]) => normalizeDefinition({ ...base, interfaces }, () => UUID);

describe('normalizeDefinition with network interfaces', () => {
  it('gives a network interface without a MAC the derived one, and keeps a given one (lowercase)', () => {
    const def = norm([{ type: 'network', network: 'default' }, { type: 'network', network: 'lab', mac: '52:54:00:0A:0B:0C' }, { type: 'user' }]);
    expect(def.interfaces).toEqual([
      { type: 'network', network: 'default', mac: derivedMac(UUID, 0) },
      { type: 'network', network: 'lab', mac: '52:54:00:0a:0b:0c' },
      { type: 'user' },
    ]);
    expect(derivedMac(UUID, 0)).toMatch(/^52:54:00(:[0-9a-f]{2}){3}$/);
    // What is stored is normalized again at load: the same.
    expect(normalizeDefinition(JSON.parse(JSON.stringify(def)), () => 'other').interfaces).toEqual(def.interfaces);
  });

  it('refuses a multicast, all-zero or duplicate MAC, naming the field', () => {
    expect(() => norm([{ type: 'network', network: 'n', mac: '01:00:5e:00:00:01' }])).toThrow(expect.objectContaining({ code: 'INVALID_ARG', message: expect.stringMatching(/\/interfaces\/0\/mac: .*multicast/) }));
    expect(() => norm([{ type: 'network', network: 'n', mac: '00:00:00:00:00:00' }])).toThrow(expect.objectContaining({ code: 'INVALID_ARG' }));
    expect(() => norm([{ type: 'network', network: 'n', mac: '52:54:00:00:00:01' }, { type: 'network', network: 'm', mac: '52:54:00:00:00:01' }]))
      .toThrow(expect.objectContaining({ code: 'INVALID_ARG', message: expect.stringContaining('/interfaces/1/mac') }));
    expect(() => norm([{ type: 'network', network: 'n', mac: 'nope' }])).toThrow(expect.objectContaining({ code: 'INVALID_ARG' }));
    expect(() => norm([{ type: 'network', network: '../x' }])).toThrow(expect.objectContaining({ code: 'INVALID_ARG' }));
  });

  it('accepts no port in a definition, and shows none in a running VM\'s', () => {
    expect(definitionValidator.check({ ...base, interfaces: [{ type: 'network', network: 'n', port: { id: 'x', tap: 'y' } }] })).toBe(false);
    const def = norm([{ type: 'network', network: 'default' }]);
    const running: ResolvedDefinition = { ...def, disks: [], interfaces: [{ type: 'network', network: 'default', mac: '52:54:00:00:00:01', port: { id: 'p', tap: 'vq-p' } }] };
    expect(asDefined(running).interfaces).toEqual([{ type: 'network', network: 'default', mac: '52:54:00:00:00:01' }]);
  });
});
