// The host key: 32 random bytes in a 0600 file owned by the daemon's user, made on first start and
// never remade while values sealed under it exist. Anything else about the file (looser mode,
// another owner, wrong length, a symlink) stops the daemon with a message saying what to fix.
import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { link, mkdir, open, readdir, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { VirtqError } from '../../protocol/errors.js';

/** The length of a host key (AES-256). */
export const HOST_KEY_BYTES = 32;

/** Why the host key could not be used, as a stable string in the error's details. */
export type HostKeyProblem = 'KEY_MISSING' | 'KEY_MODE' | 'KEY_OWNER' | 'KEY_LENGTH' | 'KEY_NOT_FILE' | 'KEY_UNREADABLE';

function keyError(problem: HostKeyProblem, file: string, message: string, cause?: unknown): VirtqError {
  return new VirtqError('OPERATION_FAILED', message, { details: { reason: problem, file }, cause });
}

/** What loadHostKey needs to know besides the path. */
export interface HostKeyOptions {
  /** How many sealed values are stored: a missing key is then an error, never a new key. */
  storedValues: number;
  /** Where they are (for the message). */
  valueDir: string;
  /** The uid that must own the key; undefined skips the check. */
  uid: number | undefined;
}

/** Reads the host key, or creates it when none exists and no stored value needs the old one. */
export async function loadHostKey(file: string, opts: HostKeyOptions): Promise<{ key: Buffer; created: boolean }> {
  let fh;
  try {
    fh = await open(file, constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return createOrRefuse(file, opts);
    if (code === 'ELOOP') throw keyError('KEY_NOT_FILE', file, `host key ${file} is a symlink; it must be a regular file (replace the link with the file it points to)`, err);
    throw keyError('KEY_UNREADABLE', file, `cannot read host key ${file}: ${(err as Error).message}`, err);
  }
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw keyError('KEY_NOT_FILE', file, `host key ${file} is not a regular file`);
    const mode = st.mode & 0o777;
    if ((mode & 0o077) !== 0) {
      throw keyError('KEY_MODE', file, `host key ${file} has mode 0${mode.toString(8)}, looser than 0600: other users may have read it. `
        + `Consider the key exposed; then run "chmod 600 ${file}" (the daemon will not start until then)`);
    }
    if (opts.uid !== undefined && st.uid !== opts.uid) {
      throw keyError('KEY_OWNER', file, `host key ${file} is owned by uid ${st.uid}, not by this daemon's uid ${opts.uid}; run "chown ${opts.uid} ${file}"`);
    }
    if (st.size !== HOST_KEY_BYTES) {
      throw keyError('KEY_LENGTH', file, `host key ${file} is ${st.size} bytes; a host key is exactly ${HOST_KEY_BYTES}. `
        + 'Restore the right key file from a backup (stored values cannot be read without it); remove it only if no secret values are stored');
    }
    const key = Buffer.alloc(HOST_KEY_BYTES);
    const { bytesRead } = await fh.read(key, 0, HOST_KEY_BYTES, 0);
    if (bytesRead !== HOST_KEY_BYTES) throw keyError('KEY_LENGTH', file, `host key ${file} shrank while being read (${bytesRead} bytes)`);
    await removeStaleTemps(file);
    return { key, created: false };
  } finally {
    await fh.close();
  }
}

async function createOrRefuse(file: string, opts: HostKeyOptions): Promise<{ key: Buffer; created: boolean }> {
  if (opts.storedValues > 0) {
    throw keyError('KEY_MISSING', file, `host key ${file} is missing, but ${opts.storedValues} stored secret value(s) in ${opts.valueDir} were sealed with it. `
      + 'Restore the key file from a backup. No new key is made: it would leave those values unreadable '
      + '(to start over without them, remove the *.value files)');
  }
  const key = randomBytes(HOST_KEY_BYTES);
  if (await createKeyFile(file, key)) {
    await removeStaleTemps(file);
    return { key, created: true };
  }
  // Another process made the key between our open() and link(): use its key, not ours.
  key.fill(0);
  return loadHostKey(file, opts);
}

/**
 * Writes the key to a temp file (O_EXCL, 0600, fsync), then link()s it into place: link fails
 * if the key exists, as O_EXCL would, and the key file never exists half-written. False if
 * another creator won (the key appeared, or that creator, done, removed our temp as stale).
 */
async function createKeyFile(file: string, key: Buffer): Promise<boolean> {
  const dir = dirname(file);
  const tmp = join(dir, `${tempPrefix(file)}${randomBytes(4).toString('hex')}.tmp`);
  try {
    await mkdir(dir, { recursive: true, mode: 0o755 });
    const fh = await open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
    try {
      await fh.writeFile(key);
      await fh.sync();
    } finally {
      await fh.close();
    }
    try {
      await link(tmp, file);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EEXIST' || code === 'ENOENT') return false;
      throw err;
    }
    await unlink(tmp).catch(() => undefined);
    const dh = await open(dir, 'r');
    try {
      await dh.sync();
    } finally {
      await dh.close();
    }
    return true;
  } catch (err) {
    throw keyError('KEY_UNREADABLE', file, `cannot create host key ${file}: ${(err as Error).message}`, err);
  } finally {
    await unlink(tmp).catch(() => undefined);
  }
}

function tempPrefix(file: string): string {
  return `.${basename(file)}.`;
}

/**
 * Once the key exists, any key temp file beside it is a leftover of a crashed creation (a key
 * never used, or a second copy of this one) or of a creator that lost the race: removed.
 */
async function removeStaleTemps(file: string): Promise<void> {
  const dir = dirname(file);
  const prefix = tempPrefix(file);
  for (const name of await readdir(dir).catch(() => [])) {
    if (name.startsWith(prefix) && name.endsWith('.tmp')) await unlink(join(dir, name)).catch(() => undefined);
  }
}
