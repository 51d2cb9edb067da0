// The pci.ids parser: vendors and their products, subsystem lines and the class section skipped.
import { describe, expect, it } from 'vitest';
import { loadPciIds, PciIds } from '../../../../drivers/nodedev/pci-ids.js';
import { nodeSysfsIo } from '../../../../drivers/nodedev/sysfs.js';

const TEXT = [
  '#\tList of PCI IDs',
  '',
  '1AF4  Red Hat, Inc.',
  '\t1041  Virtio 1.0 network device',
  '\t\t1af4 1100  QEMU Virtual Machine',
  '8086  Intel Corporation',
  '\t2922  82801IR/IO/IH (ICH9R/DO/DH) 6 port SATA Controller [AHCI mode]',
  'C 01  Mass storage controller',
  '\t06  SATA controller',
  '0106  not a vendor: inside the class section',
].join('\n');

describe('PciIds', () => {
  it('finds vendor and product names by id, with or without 0x, in any case', () => {
    const ids = PciIds.parse(TEXT);
    expect(ids.vendor('0x1af4')).toBe('Red Hat, Inc.');
    expect(ids.vendor('8086')).toBe('Intel Corporation');
    expect(ids.product('0x8086', '0x2922')).toBe('82801IR/IO/IH (ICH9R/DO/DH) 6 port SATA Controller [AHCI mode]');
    expect(ids.product('1af4', '1041')).toBe('Virtio 1.0 network device');
  });

  it('does not mistake subsystem lines or the class section for vendors or products', () => {
    const ids = PciIds.parse(TEXT);
    expect(ids.product('1af4', '1100')).toBeUndefined();
    expect(ids.vendor('0106')).toBeUndefined();
    expect(ids.product('8086', '0006')).toBeUndefined();
  });

  it('is absent when no file is installed at any of the paths', () => {
    expect(loadPciIds(nodeSysfsIo(), ['/nonexistent/pci.ids'])).toBeUndefined();
  });
});
