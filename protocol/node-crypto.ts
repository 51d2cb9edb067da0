// node:crypto kept out of processes that never need it (issue 15 target 2). Loading it costs a
// process ~0.95 MiB of PSS (OpenSSL's state: bench/RESULTS.md, session 8), and a shim needed it at
// every start only for SHA-256 of short strings (cache keys, lease keys, socket names) and unique
// temporary file names. Those get a small SHA-256 here (the same digests, so every key on disk
// stays what it was) and a non-cryptographic suffix; what needs real randomness or OpenSSL
// (ciphers, X.509, bulk hashing) loads node:crypto on first use through nodeCrypto(); UUIDs
// read the kernel's random pool directly.
import { closeSync, openSync, readSync } from 'node:fs';

/** node:crypto, loaded on first use. Synchronous, so callers keep their shape. */
export function nodeCrypto(): typeof import('node:crypto') {
  return process.getBuiltinModule('node:crypto');
}

/**
 * A random RFC 4122 version 4 UUID from 16 bytes of the kernel's CSPRNG (getrandom's pool, read
 * through /dev/urandom): what node:crypto's randomUUID gives, without loading OpenSSL for it (a
 * shim started without a UUID in its definition makes one).
 */
export function randomUuid(): string {
  const b = Buffer.alloc(16);
  const fd = openSync('/dev/urandom', 'r');
  try {
    if (readSync(fd, b, 0, 16, null) !== 16) return nodeCrypto().randomUUID();
  } finally {
    closeSync(fd);
  }
  b[6] = ((b[6] as number) & 0x0f) | 0x40;
  b[8] = ((b[8] as number) & 0x3f) | 0x80;
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

let tempCounter = 0;

/**
 * A suffix that makes a temporary file's name unique among this host's processes: the pid, a
 * per-process counter and 32 random bits. Not a secret: every caller creates the file exclusively
 * (O_EXCL, or a bind that fails when the name exists), so a guessed name only fails that create.
 */
export function tempSuffix(): string {
  tempCounter = (tempCounter + 1) % 0x100000000;
  const random = Math.floor(Math.random() * 0x100000000).toString(16).padStart(8, '0');
  return `${process.pid.toString(36)}${tempCounter.toString(36)}${random}`;
}

// FIPS 180-4 round constants: the first 32 bits of the fractional parts of the cube roots of the
// first 64 primes (K) and of the square roots of the first 8 (H0); computed rather than listed, on
// the first hash, not at load: the loop is ~10,000 interpreted calls, and most processes that load
// this module (the CLI's fast path among them) never hash (bench/RESULTS.md, issue 15, session 14).
interface Sha256Constants { readonly K: Uint32Array; readonly H0: Uint32Array }
let constants: Sha256Constants | undefined;

function sha256Constants(): Sha256Constants {
  if (constants !== undefined) return constants;
  const K = new Uint32Array(64);
  const H0 = new Uint32Array(8);
  const primes: number[] = [];
  for (let n = 2; primes.length < 64; n++) if (primes.every((p) => n % p !== 0)) primes.push(n);
  const frac = (x: number): number => Math.floor((x - Math.floor(x)) * 0x100000000) >>> 0;
  primes.forEach((p, i) => { K[i] = frac(Math.cbrt(p)); if (i < 8) H0[i] = frac(Math.sqrt(p)); });
  constants = { K, H0 };
  return constants;
}

/**
 * SHA-256 of `data` (a string is hashed as its UTF-8 bytes). Meant for short inputs on paths that
 * run at start (a few per start); anything bulk (image checksums) uses nodeCrypto().
 */
export function sha256(data: string | Uint8Array): Buffer {
  const { K, H0 } = sha256Constants();
  const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  const bitLength = bytes.length * 8;
  const padded = new Uint8Array((((bytes.length + 9) + 63) >> 6) << 6);
  padded.set(bytes);
  padded[bytes.length] = 0x80;
  const view = new DataView(padded.buffer);
  view.setUint32(padded.length - 8, Math.floor(bitLength / 0x100000000));
  view.setUint32(padded.length - 4, bitLength >>> 0);
  const h = Uint32Array.from(H0);
  const w = new Uint32Array(64);
  const rotr = (x: number, n: number): number => (x >>> n) | (x << (32 - n));
  for (let off = 0; off < padded.length; off += 64) {
    for (let t = 0; t < 16; t++) w[t] = view.getUint32(off + t * 4);
    for (let t = 16; t < 64; t++) {
      const a = w[t - 15] as number;
      const b = w[t - 2] as number;
      const s0 = rotr(a, 7) ^ rotr(a, 18) ^ (a >>> 3);
      const s1 = rotr(b, 17) ^ rotr(b, 19) ^ (b >>> 10);
      w[t] = ((w[t - 16] as number) + s0 + (w[t - 7] as number) + s1) >>> 0;
    }
    let [a, b, c, d, e, f, g, hh] = h as unknown as [number, number, number, number, number, number, number, number];
    for (let t = 0; t < 64; t++) {
      const S1 = rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25);
      const ch = (e & f) ^ (~e & g);
      const t1 = (hh + S1 + ch + (K[t] as number) + (w[t] as number)) >>> 0;
      const S0 = rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22);
      const maj = (a & b) ^ (a & c) ^ (b & c);
      const t2 = (S0 + maj) >>> 0;
      hh = g; g = f; f = e; e = (d + t1) >>> 0; d = c; c = b; b = a; a = (t1 + t2) >>> 0;
    }
    const add = [a, b, c, d, e, f, g, hh];
    for (let i = 0; i < 8; i++) h[i] = ((h[i] as number) + (add[i] as number)) >>> 0;
  }
  const out = Buffer.alloc(32);
  for (let i = 0; i < 8; i++) out.writeUInt32BE(h[i] as number, i * 4);
  return out;
}

/** The hex SHA-256 of `data` (see sha256). */
export function sha256Hex(data: string | Uint8Array): string {
  return sha256(data).toString('hex');
}

/**
 * sha256Hex through OpenSSL's one-shot digest (Node ≥ 20.12), for processes that load node:crypto
 * anyway (virtstoraged): on a loop idle between calls it took ~45 µs where the JS one took ~90
 * (issue #13, session 27), once per volume delete. The same digest.
 */
export function nativeSha256Hex(data: string): string {
  const crypto = nodeCrypto();
  return typeof crypto.hash === 'function' ? crypto.hash('sha256', data, 'hex') : sha256Hex(data);
}
