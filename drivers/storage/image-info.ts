// Reads what qemu-img says about an image file (`info --output=json`, with or without
// `--backing-chain`) into the part of VolumeInfo that comes from the image's own metadata.
import { VirtqError } from '../../protocol/errors.js';
import type { QemuImg } from './qemu-img.js';
import type { BackingRef, ImageFormat } from './types.js';

/** What the image's metadata says; the file's name, path and allocation come from stat. */
export interface ImageInfo {
  format: ImageFormat;
  capacity: number;
  backingChain: BackingRef[];
  encrypted: boolean;
  /** Set when part of the chain could not be read (a missing backing file). */
  problem?: string;
  /**
   * True when the file alone is the whole image and holds nothing `qemu-img convert` would drop:
   * no backing file, no external data file, no internal snapshot, no bitmap, not marked corrupt.
   * A byte copy of such a file is then the image a convert would make (a full clone's fast path).
   */
  selfContained?: boolean;
}

interface RawImage {
  format?: unknown;
  'virtual-size'?: unknown;
  filename?: unknown;
  encrypted?: unknown;
  'full-backing-filename'?: unknown;
  'backing-filename'?: unknown;
  'backing-filename-format'?: unknown;
  snapshots?: unknown;
  'format-specific'?: { data?: Record<string, unknown> };
}

function asImage(value: unknown, where: string): RawImage {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new VirtqError('INTERNAL', `qemu-img info: ${where} is not an object`);
  }
  return value as RawImage;
}

const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);

function backingOf(image: RawImage): string | undefined {
  return str(image['full-backing-filename']) ?? str(image['backing-filename']);
}

/**
 * Parses `qemu-img info --output=json` output: one object, or the array `--backing-chain` prints
 * (the image first, then each backing image). Throws INTERNAL on a shape qemu-img never prints.
 */
export function parseImageInfo(json: string): ImageInfo {
  let parsed: unknown;
  try {
    parsed = JSON.parse(json);
  } catch (err) {
    throw new VirtqError('INTERNAL', `qemu-img info printed no JSON: ${(err as Error).message}`, { cause: err });
  }
  const images = (Array.isArray(parsed) ? parsed : [parsed]).map((v, i) => asImage(v, `entry ${i}`));
  const top = images[0];
  if (top === undefined) throw new VirtqError('INTERNAL', 'qemu-img info printed an empty chain');
  const capacity = top['virtual-size'];
  if (typeof capacity !== 'number' || typeof top.format !== 'string') {
    throw new VirtqError('INTERNAL', 'qemu-img info: the image has no format or virtual-size');
  }
  const backingChain: BackingRef[] = [];
  for (let i = 1; i < images.length; i += 1) {
    const image = images[i] as RawImage;
    const above = images[i - 1] as RawImage;
    backingChain.push({ path: backingOf(above) ?? str(image.filename) ?? '', format: str(image.format) ?? 'unknown' });
  }
  // Without --backing-chain (or when it stops early) the top still names its backing file.
  const last = images[images.length - 1] as RawImage;
  const dangling = images.length === 1 ? backingOf(last) : undefined;
  if (dangling !== undefined) backingChain.push({ path: dangling, format: str(last['backing-filename-format']) ?? 'unknown' });
  return { format: top.format, capacity, backingChain, encrypted: top.encrypted === true, selfContained: selfContained(top, backingChain.length) };
}

/** See ImageInfo.selfContained: only raw and qcow2 are judged; any other format is not. */
function selfContained(top: RawImage, backing: number): boolean {
  if (backing > 0 || (Array.isArray(top.snapshots) && top.snapshots.length > 0)) return false;
  if (top.format === 'raw') return true;
  if (top.format !== 'qcow2') return false;
  const data = top['format-specific']?.data ?? {};
  return data['data-file'] === undefined && data.corrupt !== true && !(Array.isArray(data.bitmaps) && data.bitmaps.length > 0);
}

/**
 * Inspects `path` with `qemu-img info -U` (so an image a running VM holds can be read). When the
 * chain cannot be opened (a backing file is missing), reports the top image with `problem` set.
 */
export async function inspectImage(qemuImg: QemuImg, path: string, what: string): Promise<ImageInfo> {
  try {
    return parseImageInfo(await qemuImg.run(['info', '-U', '--output=json', '--backing-chain', path], { what }));
  } catch (chainErr) {
    if (!(chainErr instanceof VirtqError) || chainErr.code !== 'OPERATION_FAILED') throw chainErr;
    const top = parseImageInfo(await qemuImg.run(['info', '-U', '--output=json', path], { what }));
    if (top.backingChain.length === 0) throw chainErr;
    return { ...top, problem: `its backing chain cannot be opened: ${chainErr.message}` };
  }
}

/**
 * The format qemu-img reads in `path`; 'unknown' when it cannot open it (bytes that look like an
 * image and are not one), as DirPool lists such a volume.
 */
export async function probedFormat(qemuImg: QemuImg, path: string, what: string): Promise<string> {
  try {
    return parseImageInfo(await qemuImg.run(['info', '-U', '--output=json', path], { what })).format;
  } catch (err) {
    if (err instanceof VirtqError && err.code === 'OPERATION_FAILED') return 'unknown';
    throw err;
  }
}

