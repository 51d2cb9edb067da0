// One framed connection over a stream socket: frames in and out, CBOR, message header checks,
// write batching and backpressure, the partial-frame deadline. Client and server both build on
// it; it knows nothing of serial matching or dispatch.
import type { Duplex } from 'node:stream';
import type { ByteBudget } from './byte-budget.js';
import type { CborLimits } from './cbor-limits.js';
import type { Clock, Disposable } from './clock.js';
import { createCodec, type Codec } from './codec.js';
import { VirtqError } from './errors.js';
import { BytePieces, DEFAULT_MAX_FRAME_BYTES, FrameDecoder, HEAD_PEEK_BYTES, bytesBodyFrameFor, encodeBytesBodyFrame, encodeFrame } from './framing.js';
import { streamHeadOf, type PayloadSink } from './stream-frames.js';
import { errorReply, parseMessage, type Message } from './message.js';

/** Options of a framed connection. */
export interface FramedConnectionOptions {
  clock: Clock;
  maxFrameBytes?: number;
  /**
   * The largest frame this end sends (default maxFrameBytes). A server takes only small frames
   * from read-only clients yet answers them in full (a listing, a volume download's chunks).
   */
  maxSendFrameBytes?: number;
  /** Close the connection when a started frame is not completed within this time (0: never). */
  partialFrameTimeoutMs?: number;
  /** Bounds on each incoming frame's CBOR, checked before decoding (servers; none by default). */
  decodeLimits?: CborLimits;
  /**
   * Stop reading from the peer while more than this many bytes wait to be sent to it, until they
   * drain: a peer that sends calls but never reads the replies cannot grow our memory (servers).
   */
  readPauseBytes?: number;
  /**
   * Shared by the connections of one socket: the bytes of frames started and not finished that
   * they may hold together. A connection whose partial frame would pass it is dropped (servers).
   */
  partialBudget?: ByteBudget;
  /**
   * Stream frames of at least this many bytes that arrive over several socket reads are handed
   * on with their byte body as BytePieces (the reads' own buffers) instead of joined into one
   * fresh buffer (default: never). For receivers of large streams: a volume download's client.
   */
  bytePiecesFrom?: number;
  onMessage(msg: Message): void;
  /** A decodable frame that is not a valid message: the connection stays open. */
  onBadMessage?(err: VirtqError, serial: number | undefined): void;
  /** Called once, with the error that ended the connection, if any. */
  onClose(err: VirtqError | undefined): void;
}

/**
 * The byte stream a connection runs over: a unix or TCP socket, or any duplex (an `ssh` child's
 * stdio, client/ssh-transport.ts); sockets also get Nagle turned off.
 */
export type ByteChannel = Duplex & { setNoDelay?: (noDelay?: boolean) => unknown };

/** Stream chunks from this size on are framed by encodeBytesBodyFrame. */
const BYTES_FAST_PATH = 4096;
const EMPTY = new Uint8Array(0);
/**
 * Frames of stream chunks between these sizes go into buffers reused once the socket has written
 * them (at most SPARE_FRAMES kept per connection): moving a volume then allocates no fresh memory
 * per chunk, and each fresh MiB costs hundreds of page faults (glibc maps buffers this large anew).
 */
const REUSED_MIN_BYTES = 64 * 1024;
const REUSED_MAX_BYTES = 4 * 1024 * 1024;
const SPARE_FRAMES = 4;
/** Received frame buffers kept for reuse: a stream holds up to STREAM_HIGH_WATER (4 MiB) unread, plus one or two in hand. */
const SPARE_READS = 8;

/** A socket speaking virtq frames. */
export class FramedConnection {
  private readonly decoder: FrameDecoder;
  private readonly codec: Codec;
  private readonly maxFrameBytes: number;
  private readonly maxSendFrameBytes: number;
  private partialTimer: Disposable | undefined;
  private corked = false;
  /** A frame went out uncorked in this tick (send()): the next ones in the tick are corked. */
  private tickSent = false;
  private readonly endTick = (): void => { this.tickSent = false; };
  /** Why reading is paused (unread replies, a stream's unread bytes); reads resume when none is left. */
  private readonly holds = new Set<string>();
  private closedWith: VirtqError | undefined | null = null;
  /** Bytes of our partial frame taken from opts.partialBudget. */
  private budgetHeld = 0;
  /** Frame buffers of stream chunks the socket has written, for the next chunks. */
  private readonly spareFrames: Buffer[] = [];
  /** Memory of large frames read into our own buffers, lent out until recycle() gives it back. */
  private readonly lent = new WeakSet<ArrayBufferLike>();
  /** Memory given back by recycle(), for the next large frames read. */
  private readonly spareReads: ArrayBuffer[] = [];
  /** Frames handed out by streamChunkBuffer() and not sent yet, by their memory. */
  private readonly filling = new WeakMap<ArrayBufferLike, { frame: Buffer; reused: Buffer | undefined; at: number; n: number; head: Uint8Array }>();
  /** Where the byte bodies of streams' large frames are read to, by stream serial (setPayloadSink). */
  private readonly sinks = new Map<number, PayloadSink>();

  constructor(readonly socket: ByteChannel, private readonly opts: FramedConnectionOptions) {
    this.maxFrameBytes = opts.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES;
    this.maxSendFrameBytes = opts.maxSendFrameBytes ?? this.maxFrameBytes;
    this.decoder = new FrameDecoder(this.maxFrameBytes, opts.bytePiecesFrom);
    this.decoder.allocFrame = (size) => this.allocReadFrame(size);
    this.codec = createCodec(opts.decodeLimits);
    socket.setNoDelay?.(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (err) => this.finish(new VirtqError('CONNECTION_CLOSED', `connection error: ${err.message}`, { cause: err })));
    socket.on('close', () => this.finish(undefined));
  }

  /** Bytes queued for the peer that it has not read yet. */
  get unsentBytes(): number { return this.socket.writableLength; }

  /** True once the connection has closed. */
  get closed(): boolean { return this.closedWith !== null; }

  /** Encodes and queues one message; throws FRAME_TOO_LARGE when it exceeds the limit. */
  send(msg: Message): void {
    if (this.closed || this.socket.destroyed) return;
    const { frame, reused } = this.frameOf(msg);
    // A reply outside a batch and the first other frame of a tick (a lone call) go out at once, no
    // cork (it cost a client ~15-35 µs of CPU per call, issue #13 session 19); later ones are corked.
    if (!this.corked && msg.type !== 'reply') {
      if (this.tickSent) this.corkForTick();
      else { this.tickSent = true; process.nextTick(this.endTick); }
    }
    if (reused === undefined) this.socket.write(frame);
    else this.socket.write(frame, () => { if (this.spareFrames.length < SPARE_FRAMES) this.spareFrames.push(reused); });
    const limit = this.opts.readPauseBytes;
    if (limit !== undefined && !this.holds.has('replies') && this.socket.writableLength > limit) {
      // write() returned false past its high-water mark, so 'drain' follows once the peer reads.
      this.pauseReading('replies');
      this.socket.once('drain', () => this.resumeReading('replies'));
    }
  }

  // Batches every frame written from now to the end of this tick into one syscall.
  private corkForTick(): void {
    this.corked = true;
    this.socket.cork();
    process.nextTick(() => {
      this.corked = false;
      this.socket.uncork();
    });
  }

  // Stream data (uploads, downloads, the console) skips the CBOR encoder's copies of its bytes;
  // large chunks go into a spare frame buffer, given back (`reused`) once the socket has written
  // it, or were written into their frame already (streamChunkBuffer).
  private frameOf(msg: Message): { frame: Buffer; reused?: Buffer } {
    const body = msg.body;
    if (msg.type === 'stream' && body instanceof Uint8Array && body.length >= BYTES_FAST_PATH) {
      const head = this.codec.encode({ ...msg, body: EMPTY });
      const lent = this.filling.get(body.buffer);
      if (lent !== undefined) {
        this.filling.delete(body.buffer);
        // The very view handed out, for the very message: its frame is whole. Anything else is copied.
        const same = body.byteOffset === lent.at && body.length === lent.n && Buffer.compare(head, lent.head) === 0;
        if (same) return lent.reused === undefined ? { frame: lent.frame } : { frame: lent.frame, reused: lent.reused };
      }
      const { alloc, reused } = this.frameAlloc();
      const frame = encodeBytesBodyFrame(head, body, this.maxSendFrameBytes, alloc);
      if (frame !== undefined) return reused() === undefined ? { frame } : { frame, reused: reused() as Buffer };
    }
    return { frame: this.codec.frame(msg, this.maxSendFrameBytes) };
  }

  // Memory for one stream frame: a spare frame buffer (or a fresh one to keep) for the sizes reused.
  private frameAlloc(): { alloc: (size: number) => Buffer; reused: () => Buffer | undefined } {
    let reused: Buffer | undefined;
    const alloc = (size: number): Buffer => {
      if (size < REUSED_MIN_BYTES || size > REUSED_MAX_BYTES) return Buffer.allocUnsafe(size);
      const i = this.spareFrames.findIndex((b) => b.length >= size && b.length <= 2 * size);
      reused = i >= 0 ? (this.spareFrames.splice(i, 1)[0] as Buffer) : Buffer.allocUnsafe(Math.ceil(size / REUSED_MIN_BYTES) * REUSED_MIN_BYTES);
      return reused.subarray(0, size);
    };
    return { alloc, reused: () => reused };
  }

  /** Memory for the next `n`-byte chunk of stream `serial` inside its frame: sent as that very view, not copied (ByteStream.chunkBuffer). */
  streamChunkBuffer(prog: string, proc: string, serial: number, n: number): Uint8Array | undefined {
    if (n < REUSED_MIN_BYTES || n > REUSED_MAX_BYTES || this.closed) return undefined;
    const head = this.codec.encode({ prog, proc, type: 'stream', serial, status: 'ok', body: EMPTY });
    const { alloc, reused } = this.frameAlloc();
    const made = bytesBodyFrameFor(head, n, this.maxSendFrameBytes, alloc);
    if (made === undefined) return undefined;
    const body = made.frame.subarray(made.at, made.at + n);
    this.filling.set(body.buffer, { frame: made.frame, reused: reused(), at: body.byteOffset, n, head });
    return body;
  }

  /** Stops reading from the peer for `why` until resumeReading(why) (holds add up). */
  pauseReading(why: string): void {
    if (this.holds.has(why)) return;
    this.holds.add(why);
    if (this.holds.size > 1) return;
    this.socket.pause();
    // A frame we stopped reading is not the peer's delay: its deadline restarts on resume.
    this.partialTimer?.dispose();
    this.partialTimer = undefined;
  }

  /** Lifts one hold; reading resumes once none is left. */
  resumeReading(why: string): void {
    if (!this.holds.delete(why) || this.holds.size > 0 || this.closed) return;
    this.socket.resume();
    this.armPartialTimer();
  }

  /** Resolves once at most `limit` bytes wait to be sent to the peer (at once when already so, or closed). */
  whenWritable(limit: number): Promise<void> {
    if (this.closed || this.socket.destroyed || this.socket.writableLength <= limit) return Promise.resolve();
    return new Promise((resolve) => {
      const check = (): void => {
        if (this.closed || this.socket.destroyed || this.socket.writableLength <= limit) {
          this.socket.off('drain', check);
          this.socket.off('close', check);
          resolve();
        }
      };
      this.socket.on('drain', check).on('close', check);
    });
  }

  /** Sends a connection-level error (serial 0), then closes. */
  fail(err: VirtqError): void {
    if (this.closed) return;
    let frame: Buffer | undefined;
    try {
      frame = this.codec.frame(errorReply('', '', 0, err.toWire()), this.maxSendFrameBytes);
    } catch {
      // The connection is being dropped either way.
    }
    if (frame === undefined) this.socket.end();
    else this.socket.end(frame);
    // A peer that never reads must not keep the socket open.
    this.opts.clock.setTimeout(() => this.socket.destroy(), 1000);
    this.finish(err);
  }

  /** Closes the connection. */
  close(): void {
    this.socket.destroy();
    this.finish(undefined);
  }

  /**
   * For a socket made with `onread` (readInto below): the buffer its next read fills. Large
   * frames are read straight into their own buffer: a unix socket's 'data' path costs a fresh
   * 64 KiB buffer and a JS call per read, ~5x the CPU of reads into our own (bench/RESULTS.md, issue #13 session 10).
   */
  readBuffer(): Buffer {
    return this.decoder.readBuffer();
  }

  /**
   * Gives back a chunk of a received stream frame once its reader is done with it (a download's
   * sink has written it): the frame's memory is read into again. Fresh 1 MiB buffers per frame
   * cost a page fault per 4 KiB and V8 a full GC per ~64 MiB of them. Anything not lent by this
   * connection (or given back already) is ignored.
   */
  recycle(chunk: Uint8Array): void {
    const mem = chunk.buffer;
    if (!this.lent.has(mem)) return;
    this.lent.delete(mem);
    if (this.spareReads.length < SPARE_READS && mem instanceof ArrayBuffer) this.spareReads.push(mem);
  }

  /** Reads stream `serial`'s large byte bodies into what `sink` gives (onread sockets; undefined: no more); all else as before. */
  setPayloadSink(serial: number, sink: PayloadSink | undefined): void {
    if (sink === undefined) this.sinks.delete(serial);
    else this.sinks.set(serial, sink);
    this.decoder.claimPayload = this.sinks.size === 0 ? undefined : (head, frameLength) => this.claimPayload(head, frameLength);
  }

  // A large frame's head arrived: when it is an ok stream frame with a byte body, of a stream
  // with a sink, its body goes where the sink says. Its head is decoded again, whole, on arrival.
  private claimPayload(head: Buffer, frameLength: number): { data: number; payload: Buffer } | undefined {
    let found: ReturnType<typeof streamHeadOf>;
    try {
      found = streamHeadOf(this.codec, head, frameLength);
    } catch {
      return undefined; // decoded again when whole, and refused then
    }
    const m = found?.item as { type?: unknown; status?: unknown; serial?: unknown } | undefined;
    if (found === undefined || m?.status !== 'ok' || typeof m.serial !== 'number') return undefined;
    const mem = this.sinks.get(m.serial)?.(frameLength - found.data);
    if (mem === undefined) return undefined;
    return { data: found.data, payload: Buffer.from(mem.buffer, mem.byteOffset, mem.byteLength) };
  }

  private allocReadFrame(size: number): Buffer {
    if (size < REUSED_MIN_BYTES || size > REUSED_MAX_BYTES + HEAD_PEEK_BYTES) return Buffer.allocUnsafe(size);
    const i = this.spareReads.findIndex((b) => b.byteLength >= size && b.byteLength <= 2 * size);
    // A buffer this large has memory of its own (Node pools only small ones).
    const frame = i >= 0 ? Buffer.from(this.spareReads.splice(i, 1)[0] as ArrayBuffer, 0, size) : Buffer.allocUnsafe(size);
    this.lent.add(frame.buffer);
    return frame;
  }

  /** For a socket made with `onread`: `n` bytes were read into `buf` (readBuffer()'s, or the socket's first). */
  onRead(n: number, buf: Uint8Array): void {
    if (!this.closed) this.decodeAndDeliver(() => this.decoder.pushRead(n, buf));
  }

  private onData(chunk: Buffer): void {
    // Dropped: what the peer still sends before the socket goes is not kept.
    if (!this.closed) this.decodeAndDeliver(() => this.decoder.pushPieces(chunk));
  }

  private decodeAndDeliver(decode: () => Array<Buffer | BytePieces>): void {
    let frames: Array<Buffer | BytePieces>;
    try {
      frames = decode();
    } catch (err) {
      this.fail(VirtqError.from(err));
      return;
    }
    this.deliver(frames);
  }

  private deliver(frames: Array<Buffer | BytePieces>): void {
    // Several calls in one read (a pipelining client): their replies, sent in this tick's
    // microtasks, leave in one write.
    if (frames.length > 1 && !this.corked && !this.closed) this.corkForTick();
    for (const frame of frames) {
      if (this.closed) return;
      let item: unknown;
      try {
        item = frame instanceof BytePieces ? this.decodePieces(frame) : this.codec.decode(frame);
      } catch (err) {
        this.fail(VirtqError.from(err));
        return;
      }
      let msg: Message;
      try {
        msg = parseMessage(item);
      } catch (err) {
        const e = VirtqError.from(err);
        const serial = e.details?.['serial'];
        this.opts.onBadMessage?.(e, typeof serial === 'number' ? serial : undefined);
        continue;
      }
      this.opts.onMessage(msg);
    }
    if (!this.accountPartial()) return;
    this.armPartialTimer();
  }

  // A frame left in pieces: a stream message's head is decoded alone (its byte body as an empty
  // byte string) and the body stays in pieces; any other message is joined and decoded whole.
  private decodePieces(frame: BytePieces): unknown {
    const found = streamHeadOf(this.codec, frame.head(HEAD_PEEK_BYTES), frame.length);
    if (found !== undefined) return { ...found.item, body: frame.from(found.data) };
    return this.codec.decode(frame.join());
  }

  // Holds what the decoder buffers against the socket's shared budget; false once dropped for it.
  private accountPartial(): boolean {
    const budget = this.opts.partialBudget;
    if (budget === undefined || this.closed) return true;
    const now = this.decoder.bufferedBytes;
    if (now <= this.budgetHeld) {
      budget.give(this.budgetHeld - now);
      this.budgetHeld = now;
      return true;
    }
    if (budget.tryTake(now - this.budgetHeld)) {
      this.budgetHeld = now;
      return true;
    }
    this.fail(new VirtqError('FRAME_TOO_LARGE', `unfinished frames on this socket already hold ${Math.round(budget.held / 1024)} KiB (limit ${Math.round(budget.limit / 1024)} KiB); this connection's partial frame of ${Math.round(now / 1024)} KiB is refused: send smaller frames, or finish them faster`));
    return false;
  }

  private armPartialTimer(): void {
    const ms = this.opts.partialFrameTimeoutMs ?? 0;
    if (!this.decoder.partial) {
      this.partialTimer?.dispose();
      this.partialTimer = undefined;
      return;
    }
    if (ms <= 0 || this.partialTimer !== undefined || this.holds.size > 0) return;
    this.partialTimer = this.opts.clock.setTimeout(() => {
      this.fail(new VirtqError('FRAME_TIMEOUT', `a partial frame was not completed within ${ms} ms`));
    }, ms);
  }

  private finish(err: VirtqError | undefined): void {
    if (this.closedWith !== null) return;
    this.closedWith = err;
    this.partialTimer?.dispose();
    this.opts.partialBudget?.give(this.budgetHeld);
    this.budgetHeld = 0;
    this.opts.onClose(err);
  }
}

// Sockets made to read into a connection's buffers, and the payload sink type: stream-frames.ts.
export { readInto, type PayloadSink } from './stream-frames.js';
