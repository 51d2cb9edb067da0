// Which names may name a volume: a single path component of safe characters, so a name can
// never reach outside its pool's directory nor collide with the driver's own dot-files.
import { VirtqError } from '../../protocol/errors.js';

/** Longest name in bytes: NAME_MAX of Linux filesystems. */
export const MAX_VOLUME_NAME_BYTES = 255;

const VOLUME_NAME_RE = /^[A-Za-z0-9_+][A-Za-z0-9._+-]*$/;

/** Why `name` is not a valid volume name, or undefined when it is. */
export function volumeNameProblem(name: unknown): string | undefined {
  if (typeof name !== 'string') return 'it is not a string';
  if (name.length === 0) return 'it is empty';
  const bytes = Buffer.byteLength(name, 'utf8');
  if (bytes > MAX_VOLUME_NAME_BYTES) return `it is ${bytes} bytes long (at most ${MAX_VOLUME_NAME_BYTES})`;
  if (name.includes('\0')) return 'it contains a NUL byte';
  if (name.includes('/')) return 'it contains "/"';
  if (name.startsWith('.')) return 'it starts with "." (names starting with a dot are reserved for the driver\'s temp files)';
  if (name.startsWith('-')) return 'it starts with "-"';
  if (!VOLUME_NAME_RE.test(name)) return 'it may contain only letters, digits, ".", "_", "+" and "-"';
  return undefined;
}

/** Throws INVALID_ARG naming the problem when `name` is not a valid volume name. */
export function checkVolumeName(name: unknown): asserts name is string {
  const problem = volumeNameProblem(name);
  if (problem === undefined) return;
  const shown = typeof name === 'string' ? JSON.stringify(name.length > 80 ? `${name.slice(0, 80)}…` : name) : String(name);
  throw new VirtqError('INVALID_ARG', `invalid volume name ${shown}: ${problem}`, { details: { field: 'name' } });
}
