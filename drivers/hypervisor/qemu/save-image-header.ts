// The save image's own header (virtq save / managedsave): a versioned, checksummed prefix that
// carries the VM definition ahead of QEMU's migration stream, so `restore` can refuse a
// truncated, unfinished or foreign file before any QEMU runs. Layout (all integers big-endian):
//
//   0  16 B  magic "VIRTQ-SAVEIMAGE\n"
//  16   4 B  format version (1)
//  20   4 B  header JSON length L (≤ 1 MiB)
//  24   8 B  payload length P (0 while the save is still being written)
//  32  32 B  SHA-256 of the header JSON
//  64   L B  header JSON: { definition, running, savedAt }
//  64+L P B  QEMU's migration stream, exactly P bytes, nothing after it
import { open, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { VirtqError } from '../../../protocol/errors.js';
import { nodeCrypto } from '../../../protocol/node-crypto.js';

export const SAVE_MAGIC = Buffer.from('VIRTQ-SAVEIMAGE\n', 'latin1');
export const SAVE_FORMAT_VERSION = 1;
const FIXED = 64;
const MAX_JSON = 1024 * 1024;
const PAYLOAD_LENGTH_AT = 24;

/** What the header says besides QEMU's stream. */
export interface SaveImageMeta {
  /** The VM's definition as defined (volumes, not their paths), unvalidated until the reader's caller normalizes it. */
  definition: unknown;
  /** The vCPUs ran when the save began: restore resumes them unless asked for paused. */
  running: boolean;
  /** Milliseconds since the epoch. */
  savedAt: number;
}

/** A checked image: where QEMU's stream starts and how long it is. */
export interface SaveImage extends SaveImageMeta {
  file: string;
  payloadOffset: number;
  payloadBytes: number;
}

/** The header bytes for `meta`, with the payload length still 0 (see `payloadLengthBytes`). */
export function encodeSaveHeader(meta: SaveImageMeta): Buffer {
  const json = Buffer.from(JSON.stringify(meta), 'utf8');
  if (json.length > MAX_JSON) throw new VirtqError('INVALID_ARG', `the VM's definition is too large for a save image (${json.length} bytes)`);
  const fixed = Buffer.alloc(FIXED);
  SAVE_MAGIC.copy(fixed, 0);
  fixed.writeUInt32BE(SAVE_FORMAT_VERSION, 16);
  fixed.writeUInt32BE(json.length, 20);
  nodeCrypto().createHash('sha256').update(json).digest().copy(fixed, 32);
  return Buffer.concat([fixed, json]);
}

/** Where the payload length is written once the stream is complete, and its bytes. */
export function payloadLengthBytes(length: number): { position: number; bytes: Buffer } {
  const bytes = Buffer.alloc(8);
  bytes.writeBigUInt64BE(BigInt(length));
  return { position: PAYLOAD_LENGTH_AT, bytes };
}

const bad = (file: string, why: string, details: Record<string, unknown> = {}): VirtqError =>
  new VirtqError('INVALID_SAVE_IMAGE', `${file} is not a usable virtq save image: ${why}`, { details: { file, ...details } });

/** Reads and checks the header of `file` (and that the file is exactly as long as it says); INVALID_SAVE_IMAGE otherwise. */
export async function readSaveImage(file: string): Promise<SaveImage> {
  const { image, handle } = await openSaveImage(file);
  await handle.close();
  return image;
}

/**
 * `readSaveImage`, keeping the file open: the handle's file offset is left at the payload's
 * first byte, so a QEMU given this descriptor (`migrate-incoming fd:N`) reads exactly the stream
 * of the file that was checked, not of one renamed into its place since. The caller closes it.
 */
export async function openSaveImage(file: string): Promise<{ image: SaveImage; handle: FileHandle }> {
  let fh: FileHandle;
  try {
    fh = await open(file, 'r');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new VirtqError('INVALID_ARG', `save image ${file} does not exist`, { details: { file } });
    throw new VirtqError('OPERATION_FAILED', `cannot read save image ${file}: ${(err as Error).message}`, { details: { file } });
  }
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw bad(file, 'it is not a regular file');
    const image = await checkHeader(file, fh, st.size);
    return { image, handle: fh };
  } catch (err) {
    await fh.close();
    throw err;
  }
}

// Reads sequentially from offset 0 (position null), which leaves the offset at the payload.
async function readFully(fh: FileHandle, buf: Buffer): Promise<void> {
  for (let at = 0; at < buf.length;) {
    const { bytesRead } = await fh.read(buf, at, buf.length - at, null);
    if (bytesRead === 0) throw new Error('unexpected end of file');
    at += bytesRead;
  }
}

async function checkHeader(file: string, fh: FileHandle, size: number): Promise<SaveImage> {
  if (size < FIXED) throw bad(file, `it is ${size} bytes long, shorter than any header (truncated or not a save image)`, { reason: 'truncated' });
  const fixed = Buffer.alloc(FIXED);
  await readFully(fh, fixed);
  if (!fixed.subarray(0, SAVE_MAGIC.length).equals(SAVE_MAGIC)) throw bad(file, 'it does not start with the virtq save image signature (a foreign file)', { reason: 'foreign' });
  const version = fixed.readUInt32BE(16);
  if (version !== SAVE_FORMAT_VERSION) throw bad(file, `its format version is ${version}; this virtq reads version ${SAVE_FORMAT_VERSION}`, { reason: 'version', version });
  const jsonLength = fixed.readUInt32BE(20);
  if (jsonLength === 0 || jsonLength > MAX_JSON) throw bad(file, `its header length ${jsonLength} is out of range (corrupt)`, { reason: 'corrupt' });
  const payloadBytes = Number(fixed.readBigUInt64BE(PAYLOAD_LENGTH_AT));
  if (size < FIXED + jsonLength) throw bad(file, 'its header is cut short (truncated)', { reason: 'truncated' });
  const json = Buffer.alloc(jsonLength);
  await readFully(fh, json);
  if (!nodeCrypto().createHash('sha256').update(json).digest().equals(fixed.subarray(32, 64))) throw bad(file, 'its header checksum does not match (corrupt)', { reason: 'corrupt' });
  if (payloadBytes === 0) throw bad(file, 'the save that wrote it never finished (no memory state recorded)', { reason: 'incomplete' });
  const expected = FIXED + jsonLength + payloadBytes;
  if (size !== expected) {
    throw bad(file, size < expected ? `it is ${size} bytes long but its header promises ${expected} (truncated)` : `it has ${size - expected} bytes after the memory state (corrupt)`, { reason: size < expected ? 'truncated' : 'corrupt', size, expected });
  }
  let meta: Partial<SaveImageMeta>;
  try {
    meta = JSON.parse(json.toString('utf8')) as Partial<SaveImageMeta>;
  } catch {
    throw bad(file, 'its header is not valid JSON (corrupt)', { reason: 'corrupt' });
  }
  if (typeof meta !== 'object' || meta === null || typeof meta.definition !== 'object' || meta.definition === null || typeof meta.running !== 'boolean' || typeof meta.savedAt !== 'number') {
    throw bad(file, 'its header lacks the definition, running or savedAt field (corrupt)', { reason: 'corrupt' });
  }
  return { file, definition: meta.definition, running: meta.running, savedAt: meta.savedAt, payloadOffset: FIXED + jsonLength, payloadBytes };
}

/** Where `managedsave` keeps VM `name`'s image under a daemon's state dir. */
export function managedSaveFile(stateDir: string, name: string): string {
  return join(stateDir, 'save', `${name}.save`);
}
