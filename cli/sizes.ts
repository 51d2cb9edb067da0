// Byte sizes as people write them (virsh's units: `10G`, `512MiB`, `1.5GB`, `4096`) and as the
// CLI prints them (`1.00 GiB`).
import { InvalidArgumentError } from 'commander';

const POWERS: Readonly<Record<string, number>> = { '': 0, k: 1, m: 2, g: 3, t: 4, p: 5, e: 6 };

/** Parses a size: a bare number is bytes; K/M/G/T/P/E and KiB... are powers of 1024, KB/MB... of 1000. */
export function parseSize(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(?:([kmgtpe]?)(ib|b)?|bytes?)\s*$/i.exec(text);
  if (m === null) throw new InvalidArgumentError(`"${text}" is not a size (e.g. 10G, 512MiB, 1.5GB, 4096)`);
  const unit = (m[2] ?? '').toLowerCase();
  const base = m[3]?.toLowerCase() === 'b' && unit !== '' ? 1000 : 1024;
  const bytes = Number(m[1]) * base ** (POWERS[unit] ?? 0);
  if (!Number.isSafeInteger(Math.round(bytes)) || bytes < 1) throw new InvalidArgumentError(`"${text}" is out of range`);
  return Math.round(bytes);
}

export { formatSize } from './size-format.js';
