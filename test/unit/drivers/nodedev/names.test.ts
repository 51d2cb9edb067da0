// Device names: built from sysfs names in libvirt's style, and parsed back with INVALID_ARG for
// anything that cannot be a name of ours.
import { describe, expect, it } from 'vitest';
import { blockDeviceName, netDeviceName, parseDeviceName, pciDeviceName, usbDeviceName } from '../../../../drivers/nodedev/names.js';
import { VirtqError } from '../../../../protocol/errors.js';

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return err instanceof VirtqError ? err.code : 'not a VirtqError';
  }
  return undefined;
}

describe('device names', () => {
  it('builds libvirt-style names for each kind', () => {
    expect(pciDeviceName('0000:00:1f.2')).toBe('pci_0000_00_1f_2');
    expect(pciDeviceName('10000:e1:00.7')).toBe('pci_10000_e1_00_7');
    expect(usbDeviceName('usb1')).toBe('usb_usb1');
    expect(usbDeviceName('1-1')).toBe('usb_1_1');
    expect(usbDeviceName('3-1.4.2')).toBe('usb_3_1_4_2');
    expect(netDeviceName('eth0', '52:54:00:12:34:56')).toBe('net_eth0_52_54_00_12_34_56');
    expect(netDeviceName('br-lan', '52:54:00:aa:bb:cc')).toBe('net_br_lan_52_54_00_aa_bb_cc');
    expect(netDeviceName('tun0', undefined)).toBe('net_tun0');
    expect(blockDeviceName('vda')).toBe('block_vda');
    expect(blockDeviceName('dm-0')).toBe('block_dm_0');
    expect(blockDeviceName('cciss!c0d0')).toBe('block_cciss_c0d0');
  });

  it('parses PCI and USB names back to their sysfs names', () => {
    expect(parseDeviceName('pci_0000_00_1f_2')).toEqual({ cap: 'pci', address: '0000:00:1f.2' });
    expect(parseDeviceName('usb_usb2')).toEqual({ cap: 'usb', sysname: 'usb2' });
    expect(parseDeviceName('usb_1_1')).toEqual({ cap: 'usb', sysname: '1-1' });
    expect(parseDeviceName('usb_3_1_4_2')).toEqual({ cap: 'usb', sysname: '3-1.4.2' });
    for (const sysname of ['usb1', '1-1', '3-1.4.2', '12-3']) {
      const parsed = parseDeviceName(usbDeviceName(sysname));
      expect(parsed).toEqual({ cap: 'usb', sysname });
    }
  });

  it('says which kind a net or block name is', () => {
    expect(parseDeviceName('net_eth0_52_54_00_12_34_56')).toEqual({ cap: 'net' });
    expect(parseDeviceName('block_vda1')).toEqual({ cap: 'block' });
  });

  it('refuses malformed names with INVALID_ARG', () => {
    for (const bad of [
      '', 'x'.repeat(256), 'vda', 'computer', 'scsi_host0', 'block_', 'block_vd-a', 'net_eth0 ', 'pci_0000_00_1F_2',
      'pci_0000_00_1f', 'pci_0000_00_1f_8', 'pci_00_00_1f_2', 'usb_1', 'usb_1__2', 'usb_usbx', 'usb_1_1_1_0:', '../etc',
      'block_../../etc',
    ]) {
      expect(codeOf(() => parseDeviceName(bad)), bad).toBe('INVALID_ARG');
    }
  });

  it('tells the caller what form the kind expects', () => {
    expect(() => parseDeviceName('pci_0000_00_1F_2')).toThrow(/pci_DDDD_BB_SS_F in lower-case hex/);
    expect(() => parseDeviceName('usb_1')).toThrow(/usb_BUS_PORT/);
    expect(() => parseDeviceName('disk_vda')).toThrow(/starts with pci_, usb_, net_ or block_/);
  });
});
