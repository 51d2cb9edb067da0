// The at-rest format of a secret value: AES-256-GCM under the host key, a fresh 12-byte IV per
// write, and the header plus the secret's UUID as additional authenticated data, so a value file
// copied under another secret's name, or a header edited, fails to open.
//
//   0  magic "VQSV" | 4 format (1) | 5 reserved (0,0,0) | 8 key id (8) | 16 IV (12) | 28 tag (16) | 44 ciphertext
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';

const MAGIC = Buffer.from('VQSV', 'latin1');
const FORMAT = 1;
const HEADER_BYTES = 16;
const IV_BYTES = 12;
const TAG_BYTES = 16;

/** Bytes a sealed value adds to its plaintext. */
export const SEALED_OVERHEAD = HEADER_BYTES + IV_BYTES + TAG_BYTES;

/**
 * A short public fingerprint of a host key, stored in each sealed value so a value sealed under
 * another key is told apart from a damaged one. 8 bytes of a hash: it reveals nothing usable.
 */
export function hostKeyId(key: Uint8Array): Buffer {
  return createHash('sha256').update('virtq secret host key id\0').update(key).digest().subarray(0, 8);
}

function header(keyId: Uint8Array): Buffer {
  const h = Buffer.alloc(HEADER_BYTES);
  MAGIC.copy(h, 0);
  h[4] = FORMAT;
  Buffer.from(keyId).copy(h, 8);
  return h;
}

function aad(head: Uint8Array, uuid: string): Buffer {
  return Buffer.concat([head, Buffer.from(uuid, 'utf8')]);
}

/** Encrypts `plaintext` for the secret `uuid` under `key` (32 bytes). */
export function sealValue(key: Uint8Array, uuid: string, plaintext: Uint8Array): Buffer {
  const head = header(hostKeyId(key));
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv('aes-256-gcm', key, iv, { authTagLength: TAG_BYTES });
  cipher.setAAD(aad(head, uuid));
  const body = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return Buffer.concat([head, iv, cipher.getAuthTag(), body]);
}

/** Why a sealed value did not open: damaged or tampered, or sealed under another host key. */
export type OpenFailure = { reason: 'VALUE_CORRUPT' | 'VALUE_WRONG_KEY'; detail: string };

/** The outcome of openValue: the plaintext, or why not (never an exception). */
export type OpenResult = { ok: true; value: Buffer } | ({ ok: false } & OpenFailure);

/** Decrypts and authenticates a sealed value of the secret `uuid`. */
export function openValue(key: Uint8Array, uuid: string, sealed: Uint8Array): OpenResult {
  const buf = Buffer.from(sealed.buffer, sealed.byteOffset, sealed.byteLength);
  if (buf.length < SEALED_OVERHEAD + 1) return { ok: false, reason: 'VALUE_CORRUPT', detail: `file is ${buf.length} bytes, too short for a sealed value` };
  if (!buf.subarray(0, 4).equals(MAGIC)) return { ok: false, reason: 'VALUE_CORRUPT', detail: 'not a virtq secret value file (bad magic)' };
  if (buf[4] !== FORMAT) return { ok: false, reason: 'VALUE_CORRUPT', detail: `unknown value format ${String(buf[4])} (this virtq reads format ${FORMAT})` };
  const head = buf.subarray(0, HEADER_BYTES);
  const fileKeyId = head.subarray(8, 16);
  const ownKeyId = hostKeyId(key);
  if (!fileKeyId.equals(ownKeyId)) {
    return { ok: false, reason: 'VALUE_WRONG_KEY', detail: `sealed under host key id ${fileKeyId.toString('hex')}, but this host key's id is ${ownKeyId.toString('hex')}` };
  }
  const iv = buf.subarray(HEADER_BYTES, HEADER_BYTES + IV_BYTES);
  const tag = buf.subarray(HEADER_BYTES + IV_BYTES, SEALED_OVERHEAD);
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, iv, { authTagLength: TAG_BYTES });
    decipher.setAAD(aad(head, uuid));
    decipher.setAuthTag(tag);
    const value = Buffer.concat([decipher.update(buf.subarray(SEALED_OVERHEAD)), decipher.final()]);
    return { ok: true, value };
  } catch {
    return { ok: false, reason: 'VALUE_CORRUPT', detail: 'authentication failed: the file was modified, truncated, or belongs to another secret' };
  }
}
