// The QMP byte layer: owns one connected socket, splits it into newline-delimited JSON objects
// (bounded by maxLineBytes before anything is buffered past it), performs the greeting and
// qmp_capabilities handshake, and reports the end of the connection exactly once.
import { createConnection } from 'node:net';
import type { Socket } from 'node:net';
import type { Clock } from '../../../../protocol/clock.js';
import { VirtqError } from '../../../../protocol/errors.js';

/** One JSON object received from QEMU (a greeting, a reply or an event). */
export type QmpMessage = Record<string, unknown>;

/** The version and capabilities QEMU announces in its greeting. */
export interface QmpGreeting {
  version: { qemu: { major: number; minor: number; micro: number }; package: string };
  capabilities: string[];
}

/** Options for a {@link QmpTransport}. */
export interface QmpTransportOptions {
  /** Longest accepted line in bytes, newline excluded; a longer one closes the connection. Default 64 MiB. */
  maxLineBytes?: number;
  /** A connection handed over by another shim mid-stream: the bytes it had read but not yet parsed come first. */
  leftover?: Buffer;
}

/** What a transport gives up when its socket is handed to another process (see {@link QmpTransport.handOver}). */
export interface QmpHandover {
  socket: Socket;
  /** Read from the socket but not yet a whole line: the next owner parses them first. */
  leftover: Buffer;
}

/** Default cap on one QMP line: generous for query-qmp-schema, small enough that a broken peer cannot exhaust memory. */
export const DEFAULT_MAX_LINE_BYTES = 64 * 1024 * 1024;

const NEWLINE = 0x0a;

/**
 * Newline-delimited JSON over a socket that is already connected: accepted from a listener
 * (QEMU dialling a client chardev) or dialled by {@link connectQmp}. Messages received before
 * {@link listen} is called are queued, so the handshake can read them in order first.
 */
export class QmpTransport {
  /** Resolves once, with the reason, when the connection is gone (never rejects). */
  readonly closed: Promise<VirtqError>;
  private readonly maxLineBytes: number;
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private queue: QmpMessage[] = [];
  private waiters: Array<{ resolve: (m: QmpMessage) => void; reject: (e: VirtqError) => void }> = [];
  private listener: ((m: QmpMessage) => void) | undefined;
  private reason: VirtqError | undefined;
  private socketError: Error | undefined;
  private resolveClosed!: (reason: VirtqError) => void;

  constructor(private readonly socket: Socket, options: QmpTransportOptions = {}) {
    this.maxLineBytes = options.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES;
    this.closed = new Promise((resolve) => { this.resolveClosed = resolve; });
    if (options.leftover !== undefined && options.leftover.length > 0) this.onData(options.leftover);
    socket.on('data', this.onDataBound);
    socket.on('error', this.onErrorBound);
    socket.on('close', this.onCloseBound);
    if (socket.destroyed) this.finish(new VirtqError('CONNECTION_CLOSED', 'qmp socket already closed'));
  }

  private readonly onDataBound = (chunk: Buffer): void => this.onData(chunk);
  private readonly onErrorBound = (err: Error): void => { this.socketError ??= err; };
  private readonly onCloseBound = (): void => this.finish(this.socketError === undefined
    ? new VirtqError('CONNECTION_CLOSED', 'qmp connection closed by peer')
    : new VirtqError('CONNECTION_CLOSED', `qmp connection failed: ${this.socketError.message}`, { cause: this.socketError }));

  /**
   * Stops reading and lets go of the socket without closing it, for a shim upgrade: nothing more
   * is read here, so every byte QEMU sends after this stays in the kernel for the next owner.
   * The transport then counts as closed (reason CONNECTION_CLOSED "handed over").
   */
  handOver(stopReading: (socket: Socket) => void): QmpHandover {
    stopReading(this.socket);
    this.socket.off('data', this.onDataBound);
    this.socket.off('close', this.onCloseBound);
    const leftover = Buffer.concat(this.pending);
    this.pending = [];
    this.pendingBytes = 0;
    this.finish(new VirtqError('CONNECTION_CLOSED', 'qmp connection handed over to another shim'));
    return { socket: this.socket, leftover };
  }

  /** True once the connection has ended for any reason. */
  get isClosed(): boolean {
    return this.reason !== undefined;
  }

  /** Writes one message as a JSON line; throws CONNECTION_CLOSED after close. */
  send(message: object): void {
    if (this.reason !== undefined) throw closedError(this.reason);
    this.socket.write(`${JSON.stringify(message)}\n`);
  }

  /** Resolves with the next queued message; only for use before {@link listen}. */
  next(): Promise<QmpMessage> {
    if (this.listener !== undefined) return Promise.reject(new VirtqError('INTERNAL', 'qmp transport already has a listener'));
    const queued = this.queue.shift();
    if (queued !== undefined) return Promise.resolve(queued);
    if (this.reason !== undefined) return Promise.reject(closedError(this.reason));
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  /** Delivers every queued and future message to `onMessage`, in order. Call at most once. */
  listen(onMessage: (message: QmpMessage) => void): void {
    if (this.listener !== undefined) throw new VirtqError('INTERNAL', 'qmp transport already has a listener');
    this.listener = onMessage;
    const queued = this.queue;
    this.queue = [];
    for (const m of queued) onMessage(m);
  }

  /**
   * Reads the greeting, sends `qmp_capabilities` and waits for its empty return, all within
   * `timeoutMs` on `clock`. Any failure closes the transport and rejects with a VirtqError.
   */
  async handshake(clock: Clock, timeoutMs: number): Promise<QmpGreeting> {
    const timer = clock.setTimeout(() => this.close(new VirtqError('TIMEOUT', `qmp handshake did not finish within ${timeoutMs} ms`)), timeoutMs);
    try {
      const greeting = parseGreeting(await this.next());
      this.send({ execute: 'qmp_capabilities' });
      const reply = await this.next();
      if (!('return' in reply)) {
        const err = reply['error'] as { class?: unknown; desc?: unknown } | undefined;
        throw new VirtqError('QMP_ERROR', `qmp_capabilities failed: ${String(err?.desc ?? JSON.stringify(reply))}`, {
          details: { class: String(err?.class ?? 'GenericError'), desc: String(err?.desc ?? ''), command: 'qmp_capabilities' },
        });
      }
      return greeting;
    } catch (err) {
      const e = err instanceof VirtqError && err.code === 'CONNECTION_CLOSED' && err.cause instanceof VirtqError ? err.cause : VirtqError.from(err);
      this.close(e);
      throw e;
    } finally {
      timer.dispose();
    }
  }

  /** Closes the connection; `reason` becomes the close reason if none was recorded yet. */
  close(reason: VirtqError = new VirtqError('CONNECTION_CLOSED', 'qmp connection closed locally')): void {
    this.finish(reason);
    this.socket.destroy();
  }

  private onData(chunk: Buffer): void {
    let start = 0;
    while (this.reason === undefined) {
      const nl = chunk.indexOf(NEWLINE, start);
      if (nl === -1) break;
      const piece = chunk.subarray(start, nl);
      start = nl + 1;
      if (this.pendingBytes + piece.length > this.maxLineBytes) return this.tooLong();
      const line = this.pendingBytes === 0 ? piece : Buffer.concat([...this.pending, piece]);
      this.pending = [];
      this.pendingBytes = 0;
      this.onLine(line);
    }
    if (this.reason !== undefined || start >= chunk.length) return;
    const rest = chunk.subarray(start);
    if (this.pendingBytes + rest.length > this.maxLineBytes) return this.tooLong();
    this.pending.push(rest);
    this.pendingBytes += rest.length;
  }

  private onLine(line: Buffer): void {
    const text = line.toString('utf8').trim();
    if (text === '') return;
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (err) {
      this.close(new VirtqError('MALFORMED_FRAME', `qmp peer sent a line that is not JSON: ${text.slice(0, 80)}`, { cause: err }));
      return;
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      this.close(new VirtqError('MALFORMED_FRAME', `qmp peer sent JSON that is not an object: ${text.slice(0, 80)}`));
      return;
    }
    this.deliver(value as QmpMessage);
  }

  private deliver(message: QmpMessage): void {
    if (this.listener !== undefined) return this.listener(message);
    const waiter = this.waiters.shift();
    if (waiter !== undefined) waiter.resolve(message);
    else this.queue.push(message);
  }

  private tooLong(): void {
    this.pending = [];
    this.pendingBytes = 0;
    this.close(new VirtqError('FRAME_TOO_LARGE', `qmp line exceeds ${this.maxLineBytes} bytes`, { details: { maxLineBytes: this.maxLineBytes } }));
  }

  private finish(reason: VirtqError): void {
    if (this.reason !== undefined) return;
    this.reason = reason;
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w.reject(closedError(reason));
    this.resolveClosed(reason);
  }
}

/**
 * Dials a QMP server socket at `path` (QEMU started with `-qmp unix:PATH,server=on`), failing
 * with NO_CONNECT when nobody listens and TIMEOUT after `timeoutMs`. The socket is returned
 * unread: hand it to a {@link QmpTransport} (or QmpMonitor.attach) for the greeting.
 */
export function connectQmp(path: string, clock: Clock, timeoutMs: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = createConnection({ path });
    const timer = clock.setTimeout(() => {
      socket.destroy();
      reject(new VirtqError('TIMEOUT', `connecting to qmp socket ${path} took longer than ${timeoutMs} ms`));
    }, timeoutMs);
    socket.once('connect', () => {
      timer.dispose();
      resolve(socket);
    });
    // Stays registered after connect (rejecting then is a no-op), so an error before the
    // transport attaches its own listener cannot crash the process.
    socket.on('error', (err) => {
      timer.dispose();
      socket.destroy();
      reject(new VirtqError('NO_CONNECT', `cannot connect to qmp socket ${path}: ${err.message}`, { cause: err, details: { path } }));
    });
  });
}

function closedError(reason: VirtqError): VirtqError {
  return reason.code === 'CONNECTION_CLOSED'
    ? reason
    : new VirtqError('CONNECTION_CLOSED', `qmp connection closed: ${reason.message}`, { cause: reason });
}

function parseGreeting(message: QmpMessage): QmpGreeting {
  const qmp = message['QMP'];
  if (typeof qmp !== 'object' || qmp === null) {
    throw new VirtqError('MALFORMED_MESSAGE', `expected a qmp greeting, got ${JSON.stringify(message).slice(0, 120)}`);
  }
  const { version, capabilities } = qmp as { version?: { qemu?: Record<string, unknown>; package?: unknown }; capabilities?: unknown };
  const q = version?.qemu ?? {};
  return {
    version: {
      qemu: { major: Number(q['major'] ?? 0), minor: Number(q['minor'] ?? 0), micro: Number(q['micro'] ?? 0) },
      package: typeof version?.package === 'string' ? version.package : '',
    },
    capabilities: Array.isArray(capabilities) ? capabilities.filter((c): c is string => typeof c === 'string') : [],
  };
}
