// A whole buffer written with synchronous calls. write(2) may take only part of it without an
// error — on a full disk the part that fits — and Node's writeSync returns that count: a caller
// that ignores it leaves a torn record it believes written (chaos seed 28218, the event journal).
import { writeSync } from 'node:fs';

/** Writes all of `bytes` at the descriptor's offset; the call that cannot (ENOSPC, say) throws. */
export function writeAllSync(fd: number, bytes: Uint8Array): void {
  for (let off = 0; off < bytes.length;) off += writeSync(fd, bytes, off, bytes.length - off);
}
