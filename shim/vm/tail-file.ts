// The last bytes of a log file, for error messages that show what QEMU said before it died.
import { open } from 'node:fs/promises';

/** Up to `maxBytes` from the end of `file`, trimmed; '' when unreadable. */
export async function tailFile(file: string, maxBytes: number): Promise<string> {
  try {
    const fh = await open(file, 'r');
    try {
      const { size } = await fh.stat();
      const start = Math.max(0, size - maxBytes);
      const buf = Buffer.alloc(size - start);
      await fh.read(buf, 0, buf.length, start);
      return buf.toString('utf8').trim();
    } finally {
      await fh.close();
    }
  } catch {
    return '';
  }
}
