// Accumulates a guest's serial output and lets tests wait, by events, for markers in it. Markers match as
// substrings: once the console shell runs, its prompt and escape codes share lines with them (TEST-GUEST.md pitfall 5).
import { StringDecoder } from 'node:string_decoder';
import type { Readable } from 'node:stream';

interface Waiter {
  marker: string;
  /** Where the next search starts; it advances as output arrives so old text is not rescanned. */
  scanFrom: number;
  resolve: (end: number) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

const TAIL_CHARS = 2000;

/** Reads a serial stream (a socket QEMU's chardev connected to) into one growing string. */
export class SerialReader {
  private text = '';
  private closed = false;
  private readonly waiters = new Set<Waiter>();
  private readonly decoder = new StringDecoder('utf8');
  private readonly onData = (chunk: Buffer | string): void => {
    this.append(typeof chunk === 'string' ? chunk : this.decoder.write(chunk));
  };
  private readonly onClose = (): void => {
    this.append(this.decoder.end());
    this.closed = true;
    // Nothing more can arrive, so a marker not seen yet never will: fail now rather than at the timeout.
    for (const w of this.waiters) this.settle(w, new Error(this.describe(w.marker, 'the serial stream closed')));
  };

  constructor(private readonly stream: Readable) {
    stream.on('data', this.onData);
    stream.on('end', this.onClose);
    stream.on('close', this.onClose);
    // A reset connection is just another way for the guest's output to end.
    stream.on('error', this.onClose);
  }

  /** Everything read so far. */
  get output(): string {
    return this.text;
  }

  /** The current end of the output: pass it to `waitFor` to wait for the *next* occurrence of a marker. */
  mark(): number {
    return this.text.length;
  }

  /**
   * Resolves when `marker` occurs in the output at or after `fromOffset`, with the offset just past it (a mark
   * for the next wait). Rejects with the tail of the output on timeout or when the stream ends without it.
   */
  waitFor(marker: string, timeoutMs: number, fromOffset = 0): Promise<number> {
    const found = this.text.indexOf(marker, fromOffset);
    if (found >= 0) return Promise.resolve(found + marker.length);
    if (this.closed) return Promise.reject(new Error(this.describe(marker, 'the serial stream closed')));
    return new Promise<number>((resolve, reject) => {
      const waiter: Waiter = {
        marker,
        scanFrom: Math.max(fromOffset, this.text.length - marker.length + 1, 0),
        resolve,
        reject,
        timer: setTimeout(() => {
          this.settle(waiter, new Error(this.describe(marker, `${timeoutMs} ms passed`)));
        }, timeoutMs),
      };
      this.waiters.add(waiter);
    });
  }

  /** Stops listening and rejects pending waits; the stream itself belongs to the caller. */
  dispose(): void {
    this.stream.off('data', this.onData);
    this.stream.off('end', this.onClose);
    this.stream.off('close', this.onClose);
    this.stream.off('error', this.onClose);
    for (const w of this.waiters) this.settle(w, new Error(this.describe(w.marker, 'the reader was disposed')));
  }

  private append(chunk: string): void {
    if (chunk === '') return;
    this.text += chunk;
    for (const w of this.waiters) {
      const found = this.text.indexOf(w.marker, w.scanFrom);
      if (found >= 0) {
        this.settle(w, found + w.marker.length);
      } else {
        // A marker may straddle two chunks, so keep its length minus one of the old text in the next scan.
        w.scanFrom = Math.max(w.scanFrom, this.text.length - w.marker.length + 1);
      }
    }
  }

  private settle(w: Waiter, result: number | Error): void {
    clearTimeout(w.timer);
    this.waiters.delete(w);
    if (typeof result === 'number') w.resolve(result);
    else w.reject(result);
  }

  private describe(marker: string, why: string): string {
    const tail = this.text.slice(-TAIL_CHARS).replace(/\r/g, '');
    return `serial: no ${JSON.stringify(marker)} (${why}); output ends with:\n${tail}`;
  }
}
