// Length-prefixed frames. The size limit is checked on the 4-byte header, before a byte of the
// body is buffered, so a hostile peer cannot make the decoder allocate more than the maximum.
// The wire table is FRAME_LAYOUT below; docs/protocol.md renders it verbatim.
import { BytePieces } from './byte-pieces.js';
import { VirtqError } from './errors.js';

/** The frame and message header, field by field: the wire table of the protocol. */
export const FRAME_LAYOUT = `\
+----------------+------------------------------------------------------------+
| u32 BE length  | one CBOR item: { prog, proc, type, serial, status, body }   |
+----------------+------------------------------------------------------------+

prog    text   program: "virtq" | "registry" | "admin"
proc    text   procedure (call/reply) or event name (event); the opening call's name (stream)
type    text   "call" | "reply" | "event" | "stream"
serial  uint   chosen by the caller; a reply and stream chunks echo the serial of their call;
               events carry 0. Serial 0 on a reply means a connection-level error.
status  text   "ok" | "error"; on "error" the body is { code, message, details? }
body    any    the arguments, result, event payload or stream chunk`;

/** Default maximum frame body, as libvirt's VIR_NET_MESSAGE_MAX. */
export const DEFAULT_MAX_FRAME_BYTES = 16 * 1024 * 1024;
/** The length in front of every frame's CBOR. */
export const FRAME_HEADER_BYTES = 4;

function checkPayloadBytes(n: number, maxFrameBytes: number): void {
  if (n > maxFrameBytes) throw new VirtqError('FRAME_TOO_LARGE', `message of ${n} bytes exceeds the ${maxFrameBytes}-byte frame limit`);
}

/** Prepends the 4-byte big-endian length to `payload`. */
export function encodeFrame(payload: Uint8Array, maxFrameBytes = DEFAULT_MAX_FRAME_BYTES): Buffer {
  checkPayloadBytes(payload.length, maxFrameBytes);
  const frame = Buffer.allocUnsafe(FRAME_HEADER_BYTES + payload.length);
  frame.writeUInt32BE(payload.length, 0);
  frame.set(payload, FRAME_HEADER_BYTES);
  return frame;
}

/**
 * Makes a frame of `frame`, a message encoded after FRAME_HEADER_BYTES of headroom
 * (encodePlainCbor's): writes its length there, with encodeFrame's limit; no second buffer and
 * copy. The length goes in byte by byte: one call less to wake after an idle pause (plain-cbor.ts).
 */
export function sealFrame(frame: Buffer, maxFrameBytes = DEFAULT_MAX_FRAME_BYTES): Buffer {
  const n = frame.length - FRAME_HEADER_BYTES;
  checkPayloadBytes(n, maxFrameBytes);
  frame[0] = n >>> 24;
  frame[1] = (n >>> 16) & 0xff;
  frame[2] = (n >>> 8) & 0xff;
  frame[3] = n & 0xff;
  return frame;
}

/** How a message whose last field is an empty `body` byte string ends in CBOR: the key "body", then h''. */
const EMPTY_BODY_TAIL = Buffer.from([0x64, 0x62, 0x6f, 0x64, 0x79, 0x40]);

/**
 * The frame of a message whose body is a byte string (stream data), built with the body's bytes
 * copied once, straight into the frame: `head` is the CBOR of the same message with an empty
 * body as its last field, whose empty byte string gets the body's real length and bytes. The
 * result is byte for byte encodeFrame(encode(message)); the CBOR encoder would instead copy a
 * large body into a scratch buffer 4 times its size, and encodeFrame copy it again. Returns
 * undefined when `head` does not end with the empty body (the caller encodes as usual). `alloc`
 * gives the frame's memory (a reused buffer, say).
 */
export function encodeBytesBodyFrame(head: Uint8Array, body: Uint8Array, maxFrameBytes = DEFAULT_MAX_FRAME_BYTES, alloc: (size: number) => Buffer = Buffer.allocUnsafe): Buffer | undefined {
  const made = bytesBodyFrameFor(head, body.length, maxFrameBytes, alloc);
  made?.frame.set(body, made.at);
  return made?.frame;
}

/**
 * As encodeBytesBodyFrame for a body of `n` bytes not yet there: the frame with everything but
 * the body's bytes, which go at `at` (a sender that reads them straight there copies nothing).
 */
export function bytesBodyFrameFor(head: Uint8Array, n: number, maxFrameBytes = DEFAULT_MAX_FRAME_BYTES, alloc: (size: number) => Buffer = Buffer.allocUnsafe): { frame: Buffer; at: number } | undefined {
  const tail = head.length - EMPTY_BODY_TAIL.length;
  if (tail < 0 || Buffer.compare(head.subarray(tail), EMPTY_BODY_TAIL) !== 0) return undefined;
  // A CBOR byte string's head: major type 2 with the length inline, or in 1, 2 or 4 bytes.
  const lengthBytes = n < 24 ? 0 : n < 0x100 ? 1 : n < 0x10000 ? 2 : 4;
  const payload = head.length + lengthBytes + n;
  if (payload > maxFrameBytes || n > 0xffff_ffff) {
    throw new VirtqError('FRAME_TOO_LARGE', `message of ${payload} bytes exceeds the ${maxFrameBytes}-byte frame limit`);
  }
  const frame = alloc(FRAME_HEADER_BYTES + payload);
  frame.writeUInt32BE(payload, 0);
  frame.set(head.subarray(0, head.length - 1), FRAME_HEADER_BYTES);
  let at = FRAME_HEADER_BYTES + head.length - 1;
  if (lengthBytes === 0) frame[at++] = 0x40 + n;
  else if (lengthBytes === 1) { frame[at++] = 0x58; frame[at++] = n; }
  else if (lengthBytes === 2) { frame[at++] = 0x59; frame.writeUInt16BE(n, at); at += 2; }
  else { frame[at++] = 0x5a; frame.writeUInt32BE(n, at); at += 4; }
  return { frame, at };
}

// Frame bodies left in pieces, and where a stream frame's byte body starts: byte-pieces.ts.
export { BytePieces, bytesBodyAt } from './byte-pieces.js';

/** The buffer a socket read in our own buffers fills between large frames (Node's own reads are 64 KiB too). */
const READ_SCRATCH_BYTES = 64 * 1024;
/** `b` itself, or a copy when its memory is `mem` (a read buffer that is read into again). */
function ownedCopy(b: Buffer, mem: ArrayBufferLike): Buffer {
  return b.buffer === mem ? Buffer.from(b) : b;
}

/** Bytes of a large frame that must have arrived before its own buffer is allocated (half a scratch read). */
const READ_INTO_AFTER = READ_SCRATCH_BYTES / 2;
/** Bytes of a frame read to find where its byte body starts (a stream frame's head is ~50). */
export const HEAD_PEEK_BYTES = 256;
/**
 * The read that follows a frame whose body went to a payload sink: small, so that little of the
 * next frame's body (likely the same stream's) lands in the scratch buffer and is copied from it.
 */
const AFTER_SUNK_READ_BYTES = 4 * 1024;

/**
 * Memory for the byte body of a large frame that is arriving: given `head` (its first bytes, at
 * most HEAD_PEEK_BYTES) and its length, `data` is where its byte body starts and `payload` the
 * memory the body's frameLength - data bytes are read into (an upload's staging buffer), or
 * undefined: the frame is read as usual.
 */
export type PayloadClaim = (head: Buffer, frameLength: number) => { data: number; payload: Buffer } | undefined;

/**
 * Splits a byte stream into frame bodies. Chunks are kept as they arrive and joined only once a
 * whole frame is present, so a large frame arriving in many chunks is copied once; from
 * `piecesFrom` bytes on, such a frame is not joined at all but returned as BytePieces.
 */
export class FrameDecoder {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private expected = -1;
  /** The large frame being read straight into (readBuffer/pushRead), and how much of it is filled. */
  private into: Buffer | undefined;
  private filled = 0;
  /** Where readBuffer() pointed the last read: `into`, or the reused scratch buffer. */
  private readingInto = false;
  private scratch: Buffer | undefined;
  /** With `into` a claimed payload: the frame's head before it (owned), handed on with it. */
  private intoHead: Buffer | undefined;
  /** True after a frame whose body went to a payload sink, until the next read. */
  private afterSunk = false;

  /**
   * Asked, once a large frame's head has arrived and no frame completed in the same read, for
   * memory its byte body is read into (FramedConnection's payload sinks). Unset: never asked.
   */
  claimPayload: PayloadClaim | undefined;

  /** Gives the buffer a large frame is read into (readBuffer/pushRead): a fresh one, or a recycled one. */
  allocFrame: (size: number) => Buffer = Buffer.allocUnsafe;

  constructor(private readonly maxFrameBytes = DEFAULT_MAX_FRAME_BYTES, private readonly piecesFrom = Infinity) {}

  /** True while part of a frame is buffered. */
  get partial(): boolean {
    return this.buffered > 0;
  }

  /**
   * Bytes of unfinished frames held (a frame's header is counted once its body is awaited). A
   * frame read straight into its own buffer counts whole from its first byte: that much memory
   * is held, and a socket's shared budget must refuse it before a hostile peer's headers alone
   * make every connection allocate the frame limit.
   */
  get bufferedBytes(): number {
    return this.into !== undefined ? Math.max(this.buffered, this.into.length) : this.buffered;
  }

  /** Feeds bytes; returns every frame body completed by them, joined. Throws FRAME_TOO_LARGE. */
  push(chunk: Buffer): Buffer[] {
    return this.pushPieces(chunk).map((f) => (f instanceof BytePieces ? f.join() : f));
  }

  /** As push(), with frames from `piecesFrom` bytes that arrived in several chunks left in pieces. */
  pushPieces(chunk: Buffer): Array<Buffer | BytePieces> {
    const frames: Array<Buffer | BytePieces> = [];
    if (this.buffered === 0 && this.expected < 0) return this.fastPath(chunk, frames);
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    this.drain(frames);
    return frames;
  }

  /**
   * For a socket that reads into buffers we give (net's `onread`): the buffer its next read
   * should fill. Inside a frame of `piecesFrom` bytes or more, the rest of that frame's own
   * buffer, so the kernel copies its bytes straight to where they stay (no fresh 64 KiB buffer
   * per read, no join); between frames, a reused scratch buffer. Call pushRead() after the read.
   */
  readBuffer(): Buffer {
    this.readingInto = this.into !== undefined;
    if (this.into !== undefined) return this.into.subarray(this.filled);
    this.scratch ??= Buffer.allocUnsafe(READ_SCRATCH_BYTES);
    if (this.afterSunk) {
      this.afterSunk = false;
      return this.scratch.subarray(0, AFTER_SUNK_READ_BYTES);
    }
    return this.scratch;
  }

  /**
   * As pushPieces() for the `n` bytes just read into `buf`: readBuffer()'s buffer (or, for the
   * socket's first read, the one it was made with). A large frame comes whole, as BytePieces of one buffer.
   */
  pushRead(n: number, buf: Uint8Array): Array<Buffer | BytePieces> {
    const into = this.into;
    if (this.readingInto && into !== undefined) {
      this.filled += n;
      this.buffered += n;
      if (this.filled < into.length) return [];
      const head = this.intoHead;
      this.into = undefined;
      this.intoHead = undefined;
      this.expected = -1;
      this.buffered = 0;
      this.afterSunk = head !== undefined;
      return [new BytePieces(head === undefined ? [into] : [head, into])];
    }
    // The scratch buffer is read into again: what stays of it is copied, once. Decoded in place
    // first, so the head of a large frame goes straight into that frame's buffer instead of into
    // a fresh copy of the whole read and then the frame's buffer (two copies and a 64 KiB
    // allocation per 1 MiB stream frame, ~6% of virtstoraged's CPU in an upload).
    const mem = buf.buffer;
    const frames = this.pushPieces(Buffer.from(mem, buf.byteOffset, n));
    // Not when this read completed frames: they are delivered after this returns, and a sink's
    // memory for the next bytes of a stream depends on every earlier chunk of it having reached it.
    if (frames.length === 0 && this.claimInto()) {
      // The arrived bytes are in the claimed memory and the frame's own head.
    } else if (this.expected >= this.piecesFrom && this.buffered < this.expected && this.buffered >= READ_INTO_AFTER) {
      // A large frame is arriving: its buffer takes what arrived of it and the reads that follow.
      // Not on its header alone: a peer that announces 16 MiB and stalls holds what it sent, not
      // 16 MiB of ours (and of the socket's shared partial-frame budget) until its timeout.
      const frame = this.allocFrame(this.expected);
      let at = 0;
      for (const c of this.chunks) { frame.set(c, at); at += c.length; }
      this.chunks = [];
      this.into = frame;
      this.filled = at;
    } else {
      this.chunks = this.chunks.map((c) => ownedCopy(c, mem));
    }
    return frames.map((f) => (f instanceof BytePieces ? (f.pieces.some((p) => p.buffer === mem) ? new BytePieces(f.pieces.map((p) => ownedCopy(p, mem))) : f) : ownedCopy(f, mem)));
  }

  // Asks claimPayload for the byte body of the large frame arriving; on a claim, moves what
  // arrived of it into its head and the claimed memory, and reads the rest straight there.
  private claimInto(): boolean {
    const claim = this.claimPayload;
    const length = this.expected;
    if (claim === undefined || length < this.piecesFrom || this.buffered >= length || this.buffered < Math.min(HEAD_PEEK_BYTES, length)) return false;
    const first = this.chunks[0] as Buffer;
    const head = first.length >= HEAD_PEEK_BYTES ? first.subarray(0, HEAD_PEEK_BYTES) : Buffer.concat(this.chunks).subarray(0, HEAD_PEEK_BYTES);
    const got = claim(head, length);
    if (got === undefined) return false;
    if (got.data > this.buffered || got.payload.length !== length - got.data) {
      throw new VirtqError('INTERNAL', `a payload claim of ${got.payload.length} bytes at ${got.data} does not fit a frame of ${length} bytes`);
    }
    const own = Buffer.allocUnsafe(got.data);
    let at = 0;
    for (const c of this.chunks) {
      const toHead = Math.max(0, Math.min(c.length, got.data - at));
      if (toHead > 0) c.copy(own, at, 0, toHead);
      if (toHead < c.length) got.payload.set(c.subarray(toHead), at + toHead - got.data);
      at += c.length;
    }
    this.chunks = [];
    this.into = got.payload;
    this.intoHead = own;
    this.filled = at - got.data;
    return true;
  }

  // The common case: a chunk holding whole frames, nothing buffered before it.
  private fastPath(chunk: Buffer, frames: Array<Buffer | BytePieces>): Array<Buffer | BytePieces> {
    let offset = 0;
    while (chunk.length - offset >= FRAME_HEADER_BYTES) {
      const length = chunk.readUInt32BE(offset);
      this.checkLength(length);
      if (chunk.length - offset - FRAME_HEADER_BYTES < length) break;
      frames.push(chunk.subarray(offset + FRAME_HEADER_BYTES, offset + FRAME_HEADER_BYTES + length));
      offset += FRAME_HEADER_BYTES + length;
    }
    if (offset < chunk.length) {
      const rest = chunk.subarray(offset);
      this.chunks.push(rest);
      this.buffered = rest.length;
      this.drain(frames);
    }
    return frames;
  }

  private drain(frames: Array<Buffer | BytePieces>): void {
    for (;;) {
      if (this.expected < 0) {
        if (this.buffered < FRAME_HEADER_BYTES) return;
        const head = this.take(FRAME_HEADER_BYTES);
        this.expected = head.readUInt32BE(0);
        this.checkLength(this.expected);
      }
      if (this.buffered < this.expected) return;
      const first = this.chunks[0];
      const whole = first !== undefined && first.length >= this.expected;
      frames.push(whole || this.expected < this.piecesFrom ? this.take(this.expected) : new BytePieces(this.takePieces(this.expected)));
      this.expected = -1;
    }
  }

  private checkLength(length: number): void {
    if (length > this.maxFrameBytes) {
      throw new VirtqError('FRAME_TOO_LARGE', `incoming frame of ${length} bytes exceeds the ${this.maxFrameBytes}-byte limit`);
    }
  }

  // The next n bytes as subarrays of the chunks that hold them.
  private takePieces(n: number): Buffer[] {
    const out: Buffer[] = [];
    let left = n;
    while (left > 0) {
      const c = this.chunks[0] as Buffer;
      if (c.length <= left) {
        out.push(c);
        this.chunks.shift();
        left -= c.length;
      } else {
        out.push(c.subarray(0, left));
        this.chunks[0] = c.subarray(left);
        left = 0;
      }
    }
    this.buffered -= n;
    return out;
  }

  private take(n: number): Buffer {
    const first = this.chunks[0];
    if (first !== undefined && first.length >= n) {
      const out = first.subarray(0, n);
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
      this.buffered -= n;
      return out;
    }
    const out = Buffer.allocUnsafe(n);
    let filled = 0;
    while (filled < n) {
      const c = this.chunks[0] as Buffer;
      const used = Math.min(c.length, n - filled);
      c.copy(out, filled, 0, used);
      filled += used;
      if (used === c.length) this.chunks.shift();
      else this.chunks[0] = c.subarray(used);
    }
    this.buffered -= n;
    return out;
  }
}
