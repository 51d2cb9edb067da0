// USB devices from /sys/bus/usb/devices: root hubs (`usb1`) and devices (`1-1.2`); interfaces
// (`1-1:1.0`) are parts of a device, not devices, and are left out as libvirt's usb_device cap does.
import type { CapReader, ReadContext } from './cap-reader.js';
import { capReader, compact, parentName } from './cap-reader.js';
import { USB_DEVICE, usbDeviceName } from './names.js';
import type { UsbDevice, UsbDeviceRow } from './types.js';

const DIR = 'bus/usb/devices';
const HUB_CLASS = '09';

/** The USB reader. */
export const usbReader: CapReader<UsbDeviceRow, UsbDevice> = capReader({
  cap: 'usb',
  dir: DIR,
  isDevice: (entry) => USB_DEVICE.test(entry),
  nameOf: (_sysfs, entry) => usbDeviceName(entry),
  row: usbRow,
  detail: usbDetail,
});

function usbRow(ctx: ReadContext, sysname: string, real: string): UsbDeviceRow {
  const { sysfs } = ctx;
  const at = (attr: string): string => `${DIR}/${sysname}/${attr}`;
  return compact<UsbDeviceRow>({
    name: usbDeviceName(sysname),
    cap: 'usb',
    parent: parentName(real),
    busnum: sysfs.int(at('busnum')),
    devnum: sysfs.int(at('devnum')),
    vendorId: hex4(sysfs.attr(at('idVendor'))),
    productId: hex4(sysfs.attr(at('idProduct'))),
    product: sysfs.attr(at('product')),
  });
}

function usbDetail(ctx: ReadContext, sysname: string, real: string): UsbDevice {
  const { sysfs } = ctx;
  const at = (attr: string): string => `${DIR}/${sysname}/${attr}`;
  const deviceClass = sysfs.attr(at('bDeviceClass'));
  const speed = sysfs.attr(at('speed'));
  return compact<UsbDevice>({
    ...usbRow(ctx, sysname, real),
    path: sysfs.abs(real),
    manufacturer: sysfs.attr(at('manufacturer')),
    serial: sysfs.attr(at('serial')),
    speedMbps: speed !== undefined && /^\d+(\.\d+)?$/.test(speed) ? Number(speed) : undefined,
    deviceClass: deviceClass !== undefined && /^[0-9a-fA-F]{2}$/.test(deviceClass) ? deviceClass.toLowerCase() : undefined,
    hub: deviceClass === HUB_CLASS,
    driver: sysfs.linkName(at('driver')),
  });
}

function hex4(text: string | undefined): string | undefined {
  return text !== undefined && /^[0-9a-fA-F]{4}$/.test(text) ? text.toLowerCase() : undefined;
}
