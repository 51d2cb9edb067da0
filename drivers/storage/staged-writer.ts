// The write side of an upload: incoming chunks (of any size, as the socket hands them on) are
// copied into a few aligned staging buffers, and each full buffer is written at its file offset
// while the next one fills. Where the file is opened with O_DIRECT the writes go to the device as
// the stream flows, so the fsync before commit only flushes the device's cache; written through
// the page cache instead, 1 GiB stayed dirty until that fsync wrote it all back in one go (the
// kernel's own writeback starts at 10% of RAM), and copying into the page cache was the largest
// CPU cost of the driver (bench/RESULTS.md, issue #13 session 11). All-zero runs of HOLE_GRAIN
// bytes are not written: they stay holes.
import type { FileHandle } from 'node:fs/promises';

/** Bytes of one staging buffer: one write. */
export const WRITE_BATCH_BYTES = 8 * 1024 * 1024;
/**
 * Staging buffers written at once; one more fills meanwhile. Four kept the device busier than
 * two (1623 against 1965 ms CPU, 7.9 against 9.3 s wall at p50, load ~15: direction only), and
 * libuv's pool has four threads. Buffered writes with a background fdatasync every 64-256 MiB
 * lost to O_DIRECT in two A/B runs of three, on CPU and wall (bench/RESULTS.md, issue #13 session 12).
 * Session 13 tried 16 MiB x 4, 8 x 8 and 4 x 16 (no better: the device, not the pipeline, sets the
 * pace of direct writes here) and buffered + fdatasync again (1.7x the CPU: write() copying user
 * memory into fresh page-cache pages is this VM's most expensive path).
 */
const WRITES_IN_FLIGHT = 4;
/** Unit of hole detection: an aligned run of this many zero bytes is left as a hole. */
export const HOLE_GRAIN = 64 * 1024;
/** O_DIRECT alignment of offsets, lengths and memory (the largest logical block size in use). */
const DIRECT_ALIGN = 4096;
/** WebAssembly's page: the unit a WebAssembly.Memory is sized in. */
const WASM_PAGE = 64 * 1024;

const ZERO_GRAIN = new Uint8Array(HOLE_GRAIN);

/** Where the staged bytes go: the file, and what to do when it refuses O_DIRECT's alignment. */
export interface StagedTarget {
  fh: FileHandle;
  /** True when `fh` was opened with O_DIRECT. */
  direct: boolean;
  /**
   * Opens the same file again without O_DIRECT, for a filesystem that refuses a direct write
   * with EINVAL after all (its alignment is larger, or it lies in statfs): the writer goes on
   * through that handle, and closes it when done.
   */
  reopenBuffered?: () => Promise<FileHandle>;
}

/**
 * Memory aligned for O_DIRECT. A Buffer's memory comes from malloc (16-byte aligned) and there
 * is no way to ask for more; a WebAssembly.Memory's is mapped by V8 on a page boundary and never
 * moves while it is not grown, so views at multiples of DIRECT_ALIGN into it are aligned.
 */
function alignedBuffers(count: number, size: number): Buffer[] {
  const mem = new (wasmMemory())({ initial: Math.ceil((count * size) / WASM_PAGE) });
  return Array.from({ length: count }, (_, i) => Buffer.from(mem.buffer, i * size, size));
}

/** Writes a stream's bytes at increasing offsets from 0 through staging buffers (see the file's comment). */
export class StagedWriter {
  private readonly free: Buffer[];
  private current: Buffer;
  private filled = 0;
  /** File offset of `current`'s first byte. */
  private start = 0;
  /** Writes in flight, oldest first, each with the buffer it gives back. */
  private readonly inFlight: Array<{ done: Promise<void>; buf: Buffer }> = [];
  private fh: FileHandle;
  private direct: boolean;
  /** The handle without O_DIRECT, once a direct write was refused. */
  private reopened: Promise<FileHandle> | undefined;
  /** Offset just past the last byte accepted (written, staged or left as a hole). */
  end = 0;
  /** Bytes add() copied into the staging buffers (those claim() placed are not). */
  copied = 0;
  /** True while claim() may give memory: not while submit() waits, nor once finishing or failed. */
  private claimable = true;

  constructor(private readonly target: StagedTarget) {
    this.fh = target.fh;
    this.direct = target.direct;
    const buffers = alignedBuffers(WRITES_IN_FLIGHT + 1, WRITE_BATCH_BYTES);
    this.current = buffers.pop() as Buffer;
    this.free = buffers;
  }

  /**
   * Staging memory for the `n` stream bytes from file offset `offset` (at or past `end`), for a
   * socket to read them straight into (ByteStream.readInto): in the buffer being filled, or in
   * the free one that fills next; undefined when they do not fit there (the chunk is then copied
   * in as usual). Bytes placed so reach add() as a view of that memory, which add() does not copy.
   * Whatever chunks come between are copied to their own offsets, before it.
   */
  claim(offset: number, n: number): Buffer | undefined {
    if (!this.claimable || n === 0) return undefined;
    let rel = offset - this.start;
    let buf = this.current;
    if (rel < this.filled) return undefined;
    if (rel >= buf.length) {
      // submit() takes the last free buffer next.
      rel -= buf.length;
      buf = this.free[this.free.length - 1] as Buffer;
      if (buf === undefined) return undefined;
    }
    return rel + n <= buf.length ? buf.subarray(rel, rel + n) : undefined;
  }

  /** Copies `chunk` into the staging buffers (unless claim() placed it there), writing each one that fills. */
  async add(chunk: Uint8Array): Promise<void> {
    let at = 0;
    while (at < chunk.length) {
      const n = Math.min(chunk.length - at, this.current.length - this.filled);
      // A chunk read into the memory claim() gave is where it belongs already.
      const placed = at === 0 && chunk.buffer === this.current.buffer && chunk.byteOffset === this.current.byteOffset + this.filled;
      if (!placed) {
        this.current.set(n === chunk.length ? chunk : chunk.subarray(at, at + n), this.filled);
        this.copied += n;
      }
      this.filled += n;
      at += n;
      this.end += n;
      if (this.filled === this.current.length) await this.submit();
    }
  }

  /** Writes what is staged, waits for every write and sets the file's length (trailing holes included). */
  async finish(): Promise<void> {
    this.claimable = false;
    if (this.filled > 0) await this.submit();
    while (this.inFlight.length > 0) await (this.inFlight.shift() as { done: Promise<void> }).done;
    await this.fh.truncate(this.end);
    await this.closeReopened();
  }

  /** Waits for the writes in flight, ignoring their errors (the operation is failing anyway). */
  async settle(): Promise<void> {
    this.claimable = false;
    await Promise.allSettled(this.inFlight.splice(0).map((w) => w.done));
    await this.closeReopened().catch(() => undefined);
  }

  // Starts writing `current` and takes a free buffer to fill next, waiting for the oldest write when none is.
  private async submit(): Promise<void> {
    const buf = this.current;
    const done = this.writeRuns(buf, this.filled, this.start);
    done.catch(() => undefined); // awaited below or in finish(); settle() when the upload fails first
    this.inFlight.push({ done, buf });
    this.start += this.filled;
    this.filled = 0;
    let next = this.free.pop();
    // `current` is being written meanwhile: no claim may point into it.
    const was = this.claimable;
    this.claimable = false;
    try {
      while (next === undefined) {
        const oldest = this.inFlight.shift() as { done: Promise<void>; buf: Buffer };
        await oldest.done;
        next = oldest.buf;
      }
    } finally {
      this.current = next ?? this.current;
      this.claimable = was && next !== undefined;
    }
  }

  // Writes the non-zero runs of buf[0, filled) at `position` + their offset, one at a time.
  private async writeRuns(buf: Buffer, filled: number, position: number): Promise<void> {
    let run = -1;
    for (let g = 0; g < filled; g += HOLE_GRAIN) {
      const zero = isZeroGrain(buf, g, Math.min(g + HOLE_GRAIN, filled));
      if (!zero && run < 0) run = g;
      if (zero && run >= 0) {
        await this.write(buf, run, g, position);
        run = -1;
      }
    }
    if (run >= 0) await this.write(buf, run, filled, position);
  }

  // Writes buf[from, to) at position + from. A direct write's length is rounded up to the
  // alignment with zeros: only the stream's last write can end unaligned, and finish() truncates.
  private async write(buf: Buffer, from: number, to: number, position: number): Promise<void> {
    let end = to;
    if (this.direct && end % DIRECT_ALIGN !== 0) {
      end = Math.min(buf.length, Math.ceil(end / DIRECT_ALIGN) * DIRECT_ALIGN);
      buf.fill(0, to, end);
    }
    let done = from;
    while (done < end) {
      const fh = this.fh;
      let n: number;
      try {
        n = (await fh.write(buf, done, end - done, position + done)).bytesWritten;
      } catch (err) {
        if (fh !== this.target.fh || !this.target.direct || (err as NodeJS.ErrnoException).code !== 'EINVAL' || this.target.reopenBuffered === undefined) throw err;
        // Both writes in flight may meet it: one reopen, and each goes on through it.
        this.reopened ??= this.target.reopenBuffered();
        this.fh = await this.reopened;
        this.direct = false;
        continue;
      }
      if (n === 0) throw Object.assign(new Error('write wrote nothing'), { code: 'EIO' });
      done += n;
    }
  }

  private async closeReopened(): Promise<void> {
    const fh = this.reopened;
    this.reopened = undefined;
    await (await fh)?.close();
  }
}

/** The WebAssembly.Memory constructor: Node has it, but the build's libs (no DOM) do not declare it. */
function wasmMemory(): new (d: { initial: number }) => { buffer: ArrayBuffer } {
  return (globalThis as unknown as { WebAssembly: { Memory: new (d: { initial: number }) => { buffer: ArrayBuffer } } }).WebAssembly.Memory;
}

/** True when buf[from, to) is all zero bytes (memcmp stops at the first non-zero one). */
function isZeroGrain(buf: Buffer, from: number, to: number): boolean {
  return buf.compare(ZERO_GRAIN, 0, to - from, from, to) === 0;
}
