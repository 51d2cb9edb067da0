// Block devices from /sys/class/block: disks and their partitions (a partition's parent is its
// disk), size in bytes, removable and read-only flags, model and serial where the device says.
import type { CapReader, ReadContext } from './cap-reader.js';
import { capReader, compact, isVirtual, parentName } from './cap-reader.js';
import { blockDeviceName } from './names.js';
import type { BlockDevice, BlockDeviceRow } from './types.js';

const DIR = 'class/block';
// `size` is always in 512-byte sectors, whatever the device's logical block size.
const SECTOR = 512;

/** The block device reader. */
export const blockReader: CapReader<BlockDeviceRow, BlockDevice> = capReader({
  cap: 'block',
  dir: DIR,
  isDevice: () => true,
  nameOf: (_sysfs, entry) => blockDeviceName(entry),
  row: blockRow,
  detail: blockDetail,
});

function blockRow(ctx: ReadContext, sysname: string, real: string): BlockDeviceRow {
  const { sysfs } = ctx;
  const sectors = sysfs.int(`${DIR}/${sysname}/size`);
  return compact<BlockDeviceRow>({
    name: blockDeviceName(sysname),
    cap: 'block',
    parent: parentName(real),
    device: sysname,
    sizeBytes: sectors === undefined || sectors < 0 ? undefined : sectors * SECTOR,
    partition: sysfs.int(`${DIR}/${sysname}/partition`),
    virtual: isVirtual(real),
  });
}

function blockDetail(ctx: ReadContext, sysname: string, real: string): BlockDevice {
  const { sysfs } = ctx;
  const at = (attr: string): string => `${DIR}/${sysname}/${attr}`;
  const row = blockRow(ctx, sysname, real);
  const dev = sysfs.attr(at('dev'));
  return compact<BlockDevice>({
    ...row,
    path: sysfs.abs(real),
    // The kernel writes `!` for `/` in names of devices that live in a subdirectory of /dev.
    devPath: `/dev/${sysname.replace(/!/g, '/')}`,
    majorMinor: dev !== undefined && /^\d+:\d+$/.test(dev) ? dev : undefined,
    removable: flag(sysfs.attr(at('removable'))),
    readOnly: flag(sysfs.attr(at('ro'))),
    model: sysfs.attr(at('device/model')),
    serial: sysfs.attr(at('serial')) ?? sysfs.attr(at('device/serial')),
    partitions: row.partition === undefined ? partitionsOf(ctx, sysname) : [],
  });
}

/** A disk's partitions in number order: the subdirectories named after it that carry a partition number. */
function partitionsOf(ctx: ReadContext, disk: string): string[] {
  const found: { entry: string; n: number }[] = [];
  for (const entry of ctx.sysfs.list(`${DIR}/${disk}`)) {
    if (!entry.startsWith(disk) || entry === disk) continue;
    const n = ctx.sysfs.int(`${DIR}/${disk}/${entry}/partition`);
    if (n !== undefined) found.push({ entry, n });
  }
  return found.sort((a, b) => a.n - b.n).map((p) => blockDeviceName(p.entry));
}

function flag(text: string | undefined): boolean | undefined {
  return text === '1' ? true : text === '0' ? false : undefined;
}
