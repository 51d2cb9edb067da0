// The RPC client: pipelined calls matched by serial, per-call deadlines, pushed events as an
// async iterator, byte streams, and clean failure of everything in flight when the peer goes.
import { connect as netConnect, type Socket } from 'node:net';
import type { Clock, Disposable } from './clock.js';
import { delay } from './clock.js';
import { FramedConnection, readInto, type ByteChannel } from './connection.js';
import { VirtqError } from './errors.js';
import type { Message } from './message.js';
import { EventQueue } from './event-queue.js';
import { ByteStream, STREAM_PIECES_FROM, STREAM_WRITABLE_BYTES } from './byte-stream.js';
import { BytePieces } from './framing.js';

/** An event pushed by the server. */
export interface PushedEvent {
  prog: string;
  name: string;
  body: unknown;
}

/** Options of an RPC client. */
export interface RpcClientOptions {
  clock: Clock;
  /** Deadline for calls that give none (default 120 s). */
  defaultTimeoutMs?: number;
  maxFrameBytes?: number;
  /** Events queued while nobody reads them; older ones are dropped past this (default 10,000). */
  maxQueuedEvents?: number;
}

interface Pending {
  resolve(value: unknown): void;
  reject(err: VirtqError): void;
  /** When the call times out (clock.monotonic()); Infinity: never. */
  deadline: number;
  timeoutMs: number;
  prog: string;
  proc: string;
  stream: ByteStream | undefined;
}

/** A connection to one virtq server. */
export class RpcClient {
  private readonly conn: FramedConnection;
  // Calls awaiting their reply, by serial: a null-prototype object, not a Map. With the set/delete
  // churn of pipelined calls a Map rehashes every few dozen calls, and V8 links each obsolete
  // table to its successor (for live iterators); once one table reaches the old generation, every
  // later table and the calls it still holds are promoted at each scavenge until the next full
  // GC. Measured: +1.5 to 2.5 µs of client CPU per call at 64 in flight (bench/RESULTS.md).
  private pending: Record<number, Pending> = Object.create(null) as Record<number, Pending>;
  private readonly streams = new Map<number, ByteStream>();
  private readonly eventQueue: EventQueue<PushedEvent>;
  private nextSerial = 1;
  private closeError: VirtqError | undefined;
  private readonly closeListeners: Array<(err: VirtqError) => void> = [];
  // One timer for every call's deadline, armed for the earliest and left armed when calls are
  // answered: a timer set and cleared per call cost ~5 µs of client CPU back to back, ~15 µs
  // after an idle gap (bench/RESULTS.md, issue #13 session 19). Unref'd, as every clock timer.
  private sweep: { at: number; timer: Disposable } | undefined;
  /** Settles when the connection has closed, with the reason. */
  readonly closed: Promise<VirtqError>;

  constructor(socket: ByteChannel, private readonly opts: RpcClientOptions, readonly path = '') {
    this.eventQueue = new EventQueue(opts.maxQueuedEvents ?? 10_000);
    let onClosed!: (err: VirtqError) => void;
    this.closed = new Promise((resolve) => { onClosed = resolve; });
    this.conn = new FramedConnection(socket, {
      clock: opts.clock,
      ...(opts.maxFrameBytes === undefined ? {} : { maxFrameBytes: opts.maxFrameBytes }),
      bytePiecesFrom: STREAM_PIECES_FROM,
      onMessage: (msg) => this.onMessage(msg),
      onClose: (err) => {
        const reason = this.closeError ?? err ?? new VirtqError('CONNECTION_CLOSED', `connection to ${path || 'server'} closed`);
        this.closeError = reason;
        const pending = Object.values(this.pending);
        this.pending = Object.create(null) as Record<number, Pending>;
        this.sweep?.timer.dispose();
        this.sweep = undefined;
        for (const p of pending) p.reject(reason);
        for (const [, s] of this.streams) s.remoteEnded(reason);
        this.streams.clear();
        this.eventQueue.end();
        for (const l of this.closeListeners) l(reason);
        onClosed(reason);
      },
    });
  }

  /** Connects to a unix socket; NO_CONNECT names the socket when nobody serves it. */
  static connect(path: string, opts: RpcClientOptions): Promise<RpcClient> {
    return new Promise((resolve, reject) => {
      // Reads land in the connection's own buffers: a volume download's 1 MiB chunks arrive
      // whole, read by the kernel straight into them.
      let client: RpcClient | undefined;
      const socket = netConnect({ path, ...readInto(() => client?.conn) });
      const onError = (err: NodeJS.ErrnoException) => {
        socket.destroy();
        const why = err.code === 'ENOENT' ? 'no such socket' : err.code === 'ECONNREFUSED' ? 'nothing is listening' : err.code === 'EACCES' ? 'permission denied' : err.message;
        reject(new VirtqError(err.code === 'EACCES' ? 'PERMISSION_DENIED' : 'NO_CONNECT', `cannot connect to ${path}: ${why}`, { details: { socket: path }, cause: err }));
      };
      socket.once('error', onError);
      socket.once('connect', () => {
        socket.off('error', onError);
        client = new RpcClient(socket, opts, path);
        resolve(client);
      });
    });
  }

  /**
   * Connects, retrying with exponential backoff (10 ms doubling to 500 ms) until `deadlineMs` has
   * passed; for daemons that start in any order.
   */
  static async connectWithRetry(path: string, opts: RpcClientOptions & { deadlineMs: number }): Promise<RpcClient> {
    const start = opts.clock.monotonic();
    let wait = 10;
    for (;;) {
      try {
        return await RpcClient.connect(path, opts);
      } catch (err) {
        const e = VirtqError.from(err);
        if (e.code !== 'NO_CONNECT' || opts.clock.monotonic() - start + wait > opts.deadlineMs) throw e;
        await delay(opts.clock, wait);
        wait = Math.min(wait * 2, 500);
      }
    }
  }

  /** True once closed. */
  get isClosed(): boolean {
    return this.conn.closed;
  }

  /** Calls a procedure; rejects with the server's error, TIMEOUT or CONNECTION_CLOSED. */
  call(prog: string, proc: string, args: unknown, callOpts: { timeoutMs?: number } = {}): Promise<unknown> {
    return this.start(prog, proc, args, callOpts, undefined);
  }

  /** Calls a stream procedure; on success the returned stream carries bytes both ways. */
  async openStream(prog: string, proc: string, args: unknown, callOpts: { timeoutMs?: number } = {}): Promise<ByteStream> {
    const serial = this.nextSerial;
    const hold = `stream:${serial}`;
    const stream = new ByteStream({
      send: (data) => this.conn.send({ prog, proc, type: 'stream', serial, status: 'ok', body: data }),
      sendError: (err) => this.conn.send({ prog, proc, type: 'stream', serial, status: 'error', body: err.toWire() }),
      onEnd: () => this.streams.delete(serial),
      pause: () => this.conn.pauseReading(hold),
      resume: () => this.conn.resumeReading(hold),
      writable: () => this.conn.whenWritable(STREAM_WRITABLE_BYTES),
      recycle: (chunk) => this.conn.recycle(chunk),
      // An upload's file read straight into its frames (client/file-source.ts).
      chunkBuffer: (n) => this.conn.streamChunkBuffer(prog, proc, serial, n),
    });
    stream.opened = await this.start(prog, proc, args, callOpts, stream);
    return stream;
  }

  /** Pushed events, in order. Ends when the connection closes. */
  events(): AsyncIterable<PushedEvent> {
    return this.eventQueue;
  }

  /** Registers a listener for the connection closing. */
  onClose(listener: (err: VirtqError) => void): void {
    if (this.closeError !== undefined && this.conn.closed) listener(this.closeError);
    else this.closeListeners.push(listener);
  }

  /** Closes the connection; calls in flight fail with CONNECTION_CLOSED. */
  close(): void {
    this.closeError ??= new VirtqError('CONNECTION_CLOSED', 'connection closed by the client');
    this.conn.close();
  }

  private start(prog: string, proc: string, args: unknown, callOpts: { timeoutMs?: number }, stream: ByteStream | undefined): Promise<unknown> {
    if (this.conn.closed) return Promise.reject(this.closeError ?? new VirtqError('CONNECTION_CLOSED', 'connection is closed'));
    const serial = this.nextSerial;
    this.nextSerial = this.nextSerial >= 0xffff_fffe ? 1 : this.nextSerial + 1;
    return new Promise((resolve, reject) => {
      const timeoutMs = callOpts.timeoutMs ?? this.opts.defaultTimeoutMs ?? 120_000;
      const deadline = timeoutMs > 0 ? this.opts.clock.monotonic() + timeoutMs : Infinity;
      this.pending[serial] = { resolve, reject, deadline, timeoutMs, prog, proc, stream };
      if (deadline < (this.sweep?.at ?? Infinity)) this.armSweep(deadline);
      try {
        this.conn.send({ prog, proc, type: 'call', serial, status: 'ok', body: args ?? {} });
      } catch (err) {
        delete this.pending[serial];
        reject(VirtqError.from(err));
      }
    });
  }

  private armSweep(at: number): void {
    this.sweep?.timer.dispose();
    this.sweep = { at, timer: this.opts.clock.setTimeout(() => this.expire(), Math.max(0, at - this.opts.clock.monotonic())) };
  }

  // Fails the calls whose deadline has come, then arms the timer for the earliest one left.
  private expire(): void {
    this.sweep = undefined;
    const now = this.opts.clock.monotonic();
    let next = Infinity;
    for (const key of Object.keys(this.pending)) {
      const serial = Number(key);
      const p = this.pending[serial] as Pending;
      if (p.deadline <= now) {
        delete this.pending[serial];
        p.reject(new VirtqError('TIMEOUT', `${p.prog}.${p.proc} did not answer within ${p.timeoutMs} ms`));
      } else if (p.deadline < next) {
        next = p.deadline;
      }
    }
    if (next < Infinity) this.armSweep(next);
  }

  private onMessage(msg: Message): void {
    if (msg.type === 'reply') return this.onReply(msg);
    if (msg.type === 'event') {
      this.eventQueue.push({ prog: msg.prog, name: msg.proc, body: msg.body });
      return;
    }
    if (msg.type === 'stream') {
      const s = this.streams.get(msg.serial);
      if (s === undefined) return;
      if (msg.status === 'error') s.remoteEnded(VirtqError.fromWire(msg.body));
      else if (msg.body === null || msg.body === undefined) s.remoteEnded(undefined);
      else if (msg.body instanceof Uint8Array) s.remoteData(msg.body);
      else if (msg.body instanceof BytePieces) for (const piece of msg.body.pieces) s.remoteData(piece);
    }
  }

  private onReply(msg: Message): void {
    if (msg.serial === 0 && msg.status === 'error') {
      // A connection-level error (client cap, malformed frame): everything in flight fails with it.
      this.closeError = VirtqError.fromWire(msg.body);
      this.conn.close();
      return;
    }
    const p = this.pending[msg.serial];
    if (p === undefined) return;
    delete this.pending[msg.serial];
    if (msg.status === 'error') {
      p.reject(VirtqError.fromWire(msg.body));
      return;
    }
    if (p.stream !== undefined) this.streams.set(msg.serial, p.stream);
    p.resolve(msg.body);
  }
}
