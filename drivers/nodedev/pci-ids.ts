// Vendor and product names from the PCI ID database (pciutils' pci.ids, Debian's package
// `pci.ids` at /usr/share/misc/pci.ids). Optional: without the file, devices have ids only.
import type { SysfsIo } from './sysfs.js';

/** Where distributions install pci.ids; the first readable one is used. */
export const DEFAULT_PCI_IDS_PATHS: readonly string[] = ['/usr/share/misc/pci.ids', '/usr/share/hwdata/pci.ids'];

/**
 * A parsed pci.ids: vendor and product names by 4-digit hex id. Only the vendor lines are
 * indexed (about 2,500 of 40,000 lines); a product is found by scanning its vendor's block of
 * the kept text, which costs microseconds and saves building tens of thousands of strings.
 */
export class PciIds {
  private readonly text: string;
  /** Vendor id → [start of the vendor's name, end of its block]. */
  private readonly vendors: Map<string, [number, number]>;

  private constructor(text: string, vendors: Map<string, [number, number]>) {
    this.text = text;
    this.vendors = vendors;
  }

  /**
   * Parses the text of pci.ids: `vvvv  Name` lines, each followed by `\tdddd  Name` product lines
   * (and subsystem lines, two tabs deep); the class section (`C xx`) ends the part read.
   */
  static parse(text: string): PciIds {
    const classes = text.search(/^C /m);
    const body = classes < 0 ? text : text.slice(0, classes);
    const vendors = new Map<string, [number, number]>();
    let previous: [number, number] | undefined;
    for (const m of body.matchAll(/^([0-9a-fA-F]{4})[ \t]+/gm)) {
      if (previous !== undefined) previous[1] = m.index;
      previous = [m.index + m[0].length, body.length];
      vendors.set((m[1] as string).toLowerCase(), previous);
    }
    return new PciIds(body, vendors);
  }

  /** The vendor's name; `id` is `8086` or `0x8086`. */
  vendor(id: string): string | undefined {
    const at = this.vendors.get(plain(id));
    return at === undefined ? undefined : this.lineFrom(at[0]);
  }

  /** The product's name under its vendor. */
  product(vendorId: string, productId: string): string | undefined {
    const at = this.vendors.get(plain(vendorId));
    if (at === undefined) return undefined;
    const block = this.text.slice(at[0], at[1]);
    const m = new RegExp(`\n\t${escapeId(plain(productId))}[ \t]+`, 'i').exec(block);
    return m === null ? undefined : this.lineFrom(at[0] + m.index + m[0].length);
  }

  private lineFrom(start: number): string | undefined {
    const end = this.text.indexOf('\n', start);
    const name = this.text.slice(start, end < 0 ? undefined : end).trim();
    return name === '' ? undefined : name;
  }
}

/** The first readable database among `paths`, parsed; undefined when none is installed. */
export function loadPciIds(io: SysfsIo, paths: readonly string[]): PciIds | undefined {
  for (const path of paths) {
    let text: string;
    try {
      text = io.readFile(path);
    } catch {
      // Not installed here (or unreadable): names are a nicety, try the next place.
      continue;
    }
    return PciIds.parse(text);
  }
  return undefined;
}

function plain(id: string): string {
  return id.toLowerCase().replace(/^0x/, '');
}

// Ids come from sysfs or a caller; only four hex digits may reach the pattern.
function escapeId(id: string): string {
  return /^[0-9a-f]{4}$/.test(id) ? id : '(?!)';
}
