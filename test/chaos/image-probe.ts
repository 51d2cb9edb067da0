// What a volume file is, seen from outside virtstoraged: its format and capacity from
// `qemu-img info`, and the SHA-256 of its guest-visible bytes from `qemu-img convert -O raw`
// (qcow2 chains followed), which is what the chaos model predicts.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** A volume file as qemu-img reads it. */
export interface Probe {
  format: string;
  capacity: number;
  /** SHA-256 (hex) of the guest-visible bytes. */
  hash: string;
  /** The backing file it reads through, if any. */
  backing?: string;
}

/** Probes `file` (read with -U, as a running VM may hold it); throws with qemu-img's message when it cannot be read. */
export async function probeImage(file: string): Promise<Probe> {
  const { stdout } = await run('qemu-img', ['info', '-U', '--output=json', file], { env: { ...process.env, LC_ALL: 'C' } });
  const info = JSON.parse(stdout) as { format: string; 'virtual-size': number; 'full-backing-filename'?: string; 'backing-filename'?: string };
  // Out of the chaos root: its tmpfs may be full, and the copy is as large as the volume.
  const dir = await mkdtemp(join(tmpdir(), 'vq-chaos-probe-'));
  try {
    const out = join(dir, 'guest.raw');
    await run('qemu-img', ['convert', '-U', '-f', info.format, '-O', 'raw', file, out], { env: { ...process.env, LC_ALL: 'C' } });
    const hash = createHash('sha256').update(await readFile(out)).digest('hex');
    const backing = info['full-backing-filename'] ?? info['backing-filename'];
    return { format: info.format, capacity: info['virtual-size'], hash, ...(backing === undefined ? {} : { backing }) };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Probes bytes (a download) by writing them to a temp file first. */
export async function probeBytes(bytes: Buffer): Promise<Probe> {
  const dir = await mkdtemp(join(tmpdir(), 'vq-chaos-dl-'));
  try {
    const file = join(dir, 'download');
    await writeFile(file, bytes);
    return await probeImage(file);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** The first line of a failed command's message. */
export function why(err: unknown): string {
  const e = err as { stderr?: string; message?: string };
  return ((e.stderr ?? '').trim() || (e.message ?? String(err))).split('\n')[0] ?? '';
}
