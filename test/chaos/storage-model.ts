// The states chaos expects of volumes and secrets, and the transitions of their operations (see
// possible.ts). A volume's content is described, not stored: its capacity and a few seeded
// extents of pseudo-random bytes over zeros, so the model can follow hundreds of uploads,
// clones and resizes and still say which guest-visible bytes (their SHA-256) each state means.
import { createCipheriv, createHash } from 'node:crypto';
import type { Transition } from './possible.js';

export const KiB = 1024;
export const MiB = 1024 * KiB;

/** Guest-visible bytes: zeros of `cap` bytes with seeded pseudo-random extents `[at, len, seed]`. */
export interface Content {
  cap: number;
  parts: Array<[number, number, number]>;
}

export type VolumeFormat = 'raw' | 'qcow2';

/** A volume as the model knows it. */
export type VolState = 'none' | { f: VolumeFormat; c: Content };

/** A secret as the model knows it: its value (null: none set yet), private, ephemeral. */
export type SecretState = 'none' | { v: string | null; p: boolean; e: boolean };

export const volKey = (s: VolState): string => JSON.stringify(s);
export const secretKey = (s: SecretState): string => JSON.stringify(s);

/** The bytes of `c`, materialised. */
export function contentBytes(c: Content): Buffer {
  const out = Buffer.alloc(c.cap);
  for (const [at, len, seed] of c.parts) {
    if (at >= c.cap) continue;
    const key = createHash('sha256').update(`chaos-extent-${seed}`).digest().subarray(0, 16);
    const cipher = createCipheriv('aes-128-ctr', key, Buffer.alloc(16));
    const bytes = cipher.update(Buffer.alloc(Math.min(len, c.cap - at)));
    bytes.copy(out, at);
  }
  return out;
}

const hashes = new Map<string, string>();

/** SHA-256 (hex) of the bytes of `c`, cached. */
export function contentHash(c: Content): string {
  const key = JSON.stringify(c);
  let h = hashes.get(key);
  if (h === undefined) {
    h = createHash('sha256').update(contentBytes(c)).digest('hex');
    if (hashes.size > 5000) hashes.clear();
    hashes.set(key, h);
  }
  return h;
}

/** One line about a state, for messages. */
export function describeVol(s: VolState): string {
  return s === 'none' ? 'absent' : `${s.f} ${s.c.cap / KiB} KiB ${contentHash(s.c).slice(0, 12)}`;
}

// --- volume transitions --------------------------------------------------------------------

export const createVol = (f: VolumeFormat, cap: number): Transition<VolState> => (s) => (s === 'none' ? [{ f, c: { cap, parts: [] } }] : []);

/** A clone of a source that may be in any of `sources`: thin is a qcow2 reading through it, full keeps its format. */
export const cloneVol = (sources: VolState[], thin: boolean): Transition<VolState> => (s) => {
  if (s !== 'none') return [];
  return sources.flatMap((x) => (x === 'none' ? [] : [{ f: thin ? 'qcow2' as const : x.f, c: x.c }]));
};

/** An upload replaces the file's bytes: the volume becomes raw with exactly those bytes. */
export const uploadVol = (c: Content): Transition<VolState> => (s) => {
  if (s === 'none') return [];
  // A raw file takes no more than its size; a qcow2 file's size is not modelled.
  if (s.f === 'raw' && c.cap > s.c.cap) return [];
  return [{ f: 'raw', c }];
};

export const resizeVol = (cap: number): Transition<VolState> => (s) => (s === 'none' || cap < s.c.cap ? [] : [{ f: s.f, c: { cap, parts: s.c.parts } }]);

export const deleteVol: Transition<VolState> = (s) => (s === 'none' ? [] : ['none']);

// --- secret transitions --------------------------------------------------------------------

export const defineSecret = (p: boolean, e: boolean): Transition<SecretState> => (s) => {
  if (s === 'none') return [{ v: null, p, e }];
  // A private secret is never made readable by a redefinition.
  return s.p && !p ? [] : [{ v: s.v, p, e }];
};

export const setSecret = (v: string): Transition<SecretState> => (s) => (s === 'none' ? [] : [{ ...s, v }]);

export const undefineSecret: Transition<SecretState> = (s) => (s === 'none' ? [] : ['none']);

/** What a restart of virtsecretd does: ephemeral secrets are gone. */
export const secretdRestart: Transition<SecretState> = (s) => (s !== 'none' && s.e ? ['none'] : [s]);

/** Whether a getValue outcome fits one of `states`; the reason when it does not. */
export function checkRead(states: SecretState[], out: { ok: true; value: string } | { ok: false; code: string }): string | undefined {
  const fits = states.some((s) => {
    if (out.ok) return s !== 'none' && !s.p && s.v === out.value;
    switch (out.code) {
      case 'NO_SECRET': return s === 'none';
      case 'PERMISSION_DENIED': return s !== 'none' && s.p;
      case 'OPERATION_INVALID': return s !== 'none' && s.v === null;
      // The stored value cannot be read back: corrupt.
      case 'OPERATION_FAILED': return false;
      default: return true;
    }
  });
  if (fits) return undefined;
  const shown = states.map((s) => (s === 'none' ? 'absent' : `${s.v === null ? 'no value' : `value ${s.v}`}${s.p ? ' private' : ''}${s.e ? ' ephemeral' : ''}`)).join(' | ');
  return `${out.ok ? `read value ${out.value}` : `read failed ${out.code}`}, but the secret can only be: ${shown}`;
}
