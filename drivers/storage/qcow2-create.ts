// An empty qcow2 image made here instead of by spawning `qemu-img create` (~25 ms of a create,
// almost all of it the process's start). Only the one shape this driver creates: version 3
// (compat 1.1), 64 KiB clusters, 16-bit refcounts, no encryption, no extended L2 entries, zlib,
// optionally a backing file name with its format. The layout is the one qemu-img 7.2 writes, so
// the two are byte-identical (a unit test checks that against the real qemu-img):
//   cluster 0  header, header extensions (backing format, feature name table), end marker,
//              then the backing file name
//   cluster 1  refcount table: one entry, the refcount block below
//   cluster 2  refcount block: refcount 1 for every metadata cluster
//   cluster 3… L1 table, all zero (no L2 table yet: every guest cluster unallocated)
// The format is QEMU's docs/interop/qcow2.txt. Anything else (LUKS, conversions, resize) stays
// with qemu-img.
import { open } from 'node:fs/promises';
import { VirtqError } from '../../protocol/errors.js';

const CLUSTER_BITS = 16;
const CLUSTER = 1 << CLUSTER_BITS;
/** Header length of a v3 header with the compression_type byte (104) padded to a multiple of 8. */
const HEADER_LENGTH = 112;
/** qemu's limit on the L1 table (QCOW_MAX_L1_SIZE, 32 MiB): with 64 KiB clusters, 2 PiB of guest. */
const MAX_L1_ENTRIES = (32 << 20) / 8;
const L2_ENTRIES = CLUSTER / 8;
/** 16-bit refcounts: one refcount block counts this many clusters (2 GiB of file). */
const REFBLOCK_ENTRIES = CLUSTER / 2;
/** The spec's limit on a backing file name. */
const MAX_BACKING_NAME = 1023;

const EXT_END = 0x00000000;
const EXT_BACKING_FORMAT = 0xe2792aca;
const EXT_FEATURE_NAMES = 0x6803f857;

/**
 * The feature name table qemu-img 7.2 writes (type: 0 incompatible, 1 compatible, 2 autoclear;
 * bit; name). Optional in the spec; kept so a tool that meets one of these bits set later (by
 * QEMU, on this image) can name it, and so the image is the one qemu-img makes.
 */
const FEATURE_NAMES: ReadonlyArray<readonly [number, number, string]> = [
  [0, 0, 'dirty bit'],
  [0, 1, 'corrupt bit'],
  [0, 2, 'external data file'],
  [0, 3, 'compression type'],
  [0, 4, 'extended L2 entries'],
  [1, 0, 'lazy refcounts'],
  [2, 0, 'bitmaps'],
  [2, 1, 'raw external data'],
];
const FEATURE_ENTRY = 48;

/** What the image reads through until written. */
export interface Qcow2Backing {
  /** Stored as given (qemu resolves a relative name against the overlay's directory). */
  name: string;
  /** qemu's name for its format (`raw`, `qcow2`, ...). */
  format: string;
}

/** The bytes of a new image: `chunks` written from offset 0, then the file extended to `length`. */
export interface Qcow2Layout {
  chunks: Buffer[];
  /** The file's length: the L1 table's end (its zeros are a hole, as unwritten L1 entries). */
  length: number;
  /** The virtual size in the header: the capacity rounded up to 512 bytes, as qemu-img does. */
  virtualSize: number;
  l1Entries: number;
}

const roundUp = (n: number, to: number): number => Math.ceil(n / to) * to;

/**
 * The number of L1 entries an image of `capacityBytes` needs; INVALID_ARG (naming the largest
 * capacity) when that is past qemu's L1 limit, as `qemu-img create` would refuse it.
 */
export function checkQcow2Capacity(capacityBytes: number): number {
  if (!Number.isSafeInteger(capacityBytes) || capacityBytes < 0) {
    throw new VirtqError('INVALID_ARG', `capacityBytes must be a whole number of bytes ≥ 0, got ${String(capacityBytes)}`, { details: { field: 'capacityBytes' } });
  }
  const l1Entries = Math.ceil(Math.ceil(roundUp(capacityBytes, 512) / CLUSTER) / L2_ENTRIES);
  if (l1Entries > MAX_L1_ENTRIES) {
    const max = MAX_L1_ENTRIES * L2_ENTRIES * CLUSTER;
    throw new VirtqError('INVALID_ARG', `capacityBytes ${capacityBytes} is too large for a qcow2 image with 64 KiB clusters (at most ${max} bytes)`, { details: { field: 'capacityBytes', maxBytes: max } });
  }
  return l1Entries;
}

/**
 * The image of `capacityBytes` (rounded up to 512-byte sectors) with `backing`. INVALID_ARG when
 * the capacity needs an L1 table above qemu's limit or a backing name the header cannot hold.
 */
export function qcow2Layout(capacityBytes: number, backing?: Qcow2Backing): Qcow2Layout {
  const l1Entries = checkQcow2Capacity(capacityBytes);
  const virtualSize = roundUp(capacityBytes, 512);
  const l1Clusters = Math.ceil((l1Entries * 8) / CLUSTER);
  // Header, refcount table, refcount block, L1: at most 3 + 512 clusters under qemu's L1 limit,
  // so one refcount block (32768 clusters) and a one-cluster refcount table always count them all.
  const metaClusters = 3 + l1Clusters;
  if (metaClusters > REFBLOCK_ENTRIES) throw new Error(`qcow2 layout: ${metaClusters} metadata clusters need more than one refcount block`);

  const header = Buffer.alloc(CLUSTER);
  const extEnd = writeExtensions(header, backing);
  let backingOffset = 0;
  let backingSize = 0;
  if (backing !== undefined) {
    const name = Buffer.from(backing.name, 'utf8');
    if (name.length === 0 || name.length > MAX_BACKING_NAME || name.includes(0)) {
      throw new VirtqError('INVALID_ARG', `a qcow2 backing file name must be 1–${MAX_BACKING_NAME} bytes without NUL, got ${name.length} bytes`, { details: { field: 'backing.path' } });
    }
    backingOffset = extEnd;
    backingSize = name.length;
    name.copy(header, backingOffset);
  }
  header.write('QFI\xfb', 0, 'latin1');
  header.writeUInt32BE(3, 4); // version
  header.writeBigUInt64BE(BigInt(backingOffset), 8);
  header.writeUInt32BE(backingSize, 16);
  header.writeUInt32BE(CLUSTER_BITS, 20);
  header.writeBigUInt64BE(BigInt(virtualSize), 24);
  header.writeUInt32BE(0, 32); // crypt_method: none
  header.writeUInt32BE(l1Entries, 36);
  // An image with no L1 entries has no L1 table: qemu-img records offset 0 then.
  header.writeBigUInt64BE(l1Entries === 0 ? 0n : BigInt(3 * CLUSTER), 40);
  header.writeBigUInt64BE(BigInt(CLUSTER), 48); // refcount table in cluster 1
  header.writeUInt32BE(1, 56); // refcount_table_clusters
  header.writeUInt32BE(0, 60); // nb_snapshots
  header.writeBigUInt64BE(0n, 64); // snapshots_offset
  header.writeBigUInt64BE(0n, 72); // incompatible features: none (no extended L2, zlib)
  header.writeBigUInt64BE(0n, 80); // compatible features: no lazy refcounts
  header.writeBigUInt64BE(0n, 88); // autoclear features
  header.writeUInt32BE(4, 96); // refcount_order: 16 bits
  header.writeUInt32BE(HEADER_LENGTH, 100);
  // Byte 104 compression_type 0 (zlib) and the padding to 112 stay zero.

  const reftable = Buffer.alloc(CLUSTER);
  reftable.writeBigUInt64BE(BigInt(2 * CLUSTER), 0); // refcount block in cluster 2
  const refblock = Buffer.alloc(CLUSTER);
  // The header, the refcount table, the refcount block itself; the L1 clusters only when there
  // is an L1 table (a zero-capacity image has none, as qemu-img makes it).
  const counted = l1Entries === 0 ? 3 : metaClusters;
  for (let i = 0; i < counted; i += 1) refblock.writeUInt16BE(1, i * 2);

  return { chunks: [header, reftable, refblock], length: 3 * CLUSTER + l1Entries * 8, virtualSize, l1Entries };
}

/** Writes the header extensions after the header; returns where the area (end marker included) ends. */
function writeExtensions(buf: Buffer, backing: Qcow2Backing | undefined): number {
  let at = HEADER_LENGTH;
  const ext = (type: number, data: Buffer): void => {
    buf.writeUInt32BE(type, at);
    buf.writeUInt32BE(data.length, at + 4);
    data.copy(buf, at + 8);
    at += 8 + roundUp(data.length, 8);
  };
  if (backing !== undefined) {
    if (!/^[a-z0-9]+$/.test(backing.format)) {
      throw new VirtqError('INVALID_ARG', `backing format must be a qemu format name, got ${JSON.stringify(backing.format)}`, { details: { field: 'backing.format' } });
    }
    ext(EXT_BACKING_FORMAT, Buffer.from(backing.format, 'latin1'));
  }
  const names = Buffer.alloc(FEATURE_NAMES.length * FEATURE_ENTRY);
  FEATURE_NAMES.forEach(([type, bit, name], i) => {
    names[i * FEATURE_ENTRY] = type;
    names[i * FEATURE_ENTRY + 1] = bit;
    names.write(name, i * FEATURE_ENTRY + 2, 'latin1');
  });
  ext(EXT_FEATURE_NAMES, names);
  buf.writeUInt32BE(EXT_END, at);
  buf.writeUInt32BE(0, at + 4);
  return at + 8;
}

/**
 * Creates `path` (it must not exist) with `mode` as the empty qcow2 image `qcow2Layout` describes:
 * one writev of its three metadata clusters, then the length set (the L1 table reads as zeros).
 * Not fsynced: the caller's commit does that (volume-files.ts).
 */
export async function writeQcow2(path: string, mode: number, capacityBytes: number, backing?: Qcow2Backing): Promise<Qcow2Layout> {
  const layout = qcow2Layout(capacityBytes, backing);
  const fh = await open(path, 'wx', mode);
  try {
    const want = layout.chunks.reduce((n, c) => n + c.length, 0);
    // One writev as a rule; a short one (a nearly full filesystem) is continued, and the call
    // that cannot write anything more fails with the filesystem's error (ENOSPC: NO_SPACE).
    let done = (await fh.writev(layout.chunks, 0)).bytesWritten;
    if (done < want) {
      const data = Buffer.concat(layout.chunks);
      while (done < want) done += (await fh.write(data, done, want - done, done)).bytesWritten;
    }
    if (layout.length > want) await fh.truncate(layout.length);
  } finally {
    await fh.close();
  }
  return layout;
}
