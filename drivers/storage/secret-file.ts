// Hands a passphrase to qemu-img without a command line: a 0600 file in a fresh 0700 directory
// under the injected secret dir (tmpfs in production), alive only while the call runs. The
// directories carry a per-pool prefix so a pool's recover() removes those a kill -9 left.
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, open, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { optValue, type SecretArgs } from './qemu-img-args.js';

/**
 * Writes `passphrase` to a private file, runs `fn` with the qemu arguments naming it, then
 * removes the file and its directory, whatever `fn` does.
 */
export async function withSecretFile<T>(secretDir: string, prefix: string, passphrase: Uint8Array, fn: (secret: SecretArgs) => Promise<T>): Promise<T> {
  await mkdir(secretDir, { recursive: true, mode: 0o700 });
  const dir = await mkdtemp(join(secretDir, prefix)); // mkdtemp makes it 0700
  try {
    const file = join(dir, 'key');
    const fh = await open(file, 'wx', 0o600);
    try {
      await fh.writeFile(passphrase);
    } finally {
      await fh.close();
    }
    const id = `sec${randomBytes(4).toString('hex')}`;
    return await fn({ object: `secret,id=${id},file=${optValue(file)},format=raw`, id });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Removes the secret directories with `prefix` under `secretDir` (left by a killed process). */
export async function removeStaleSecretDirs(secretDir: string, prefix: string): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(secretDir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  const stale = names.filter((n) => n.startsWith(prefix));
  await Promise.all(stale.map((n) => rm(join(secretDir, n), { recursive: true, force: true })));
  return stale;
}
