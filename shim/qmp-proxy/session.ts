// One client of the shared QMP socket, speaking QMP as QEMU does: the greeting, capabilities
// negotiation, then commands answered in order with the client's own `id`, and every event once
// negotiated. Its commands run one at a time (reading pauses while a few wait), and a client that
// does not read what it is sent is disconnected once that passes a bound.
import type { Socket } from 'node:net';
import type { Logger } from '../../protocol/index.js';
import { JsonStreamSplitter, PieceTooLarge, type StreamPiece } from './json-stream.js';

/** A QMP reply body without its id: `{"return": ...}` or `{"error": {"class", "desc"}}`. */
export type QmpReplyBody = { return: unknown } | { error: { class: string; desc: string } };

/** Bounds on one client. */
export interface SessionLimits {
  /** Longest accepted JSON input in bytes; a longer one ends the connection. */
  maxInputBytes: number;
  /** Bytes written and not yet read by the client past which it is disconnected. */
  maxUnreadBytes: number;
  /** Inputs waiting to run before reading pauses. */
  maxQueued: number;
}

/** What a session needs from its server. */
export interface SessionDeps {
  log: Logger;
  limits: SessionLimits;
  /** The greeting's `QMP` member, sent first. */
  greeting: Promise<Record<string, unknown>>;
  /** Runs one command the client sent after negotiation (policy and forwarding). */
  execute(name: string, args: Record<string, unknown> | undefined): Promise<QmpReplyBody>;
  onClose(): void;
}

const MAX_DEPTH = 64;
const TOP_LEVEL_KEYS = new Set(['execute', 'arguments', 'id']);

export function qmpError(desc: string, cls = 'GenericError'): QmpReplyBody {
  return { error: { class: cls, desc } };
}

/** One connected client. */
export class QmpProxySession {
  private negotiated = false;
  private closed = false;
  private readonly queue: StreamPiece[] = [];
  private running = false;
  private greeted = false;
  private readonly splitter: JsonStreamSplitter;

  constructor(private readonly socket: Socket, private readonly d: SessionDeps) {
    this.splitter = new JsonStreamSplitter({ maxBytes: d.limits.maxInputBytes, maxDepth: MAX_DEPTH });
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', () => undefined);
    socket.on('close', () => this.finish());
    void d.greeting.then((qmp) => {
      this.send({ QMP: qmp });
      this.greeted = true;
      void this.pump();
    });
  }

  /** Delivers one QEMU event, once the client has negotiated capabilities. */
  event(message: Record<string, unknown>): void {
    if (this.negotiated) this.send(message);
  }

  /** Ends the connection. */
  close(): void {
    this.socket.destroy();
    this.finish();
  }

  private onData(chunk: Buffer): void {
    if (this.closed) return;
    let pieces: StreamPiece[];
    try {
      pieces = this.splitter.push(chunk);
    } catch (err) {
      if (!(err instanceof PieceTooLarge)) throw err;
      this.d.log.warn({ msgId: 'QMP_PROXY_INPUT_TOO_LARGE', reason: err.message }, 'shared QMP socket: client input too large; disconnecting it');
      this.send(qmpError(`${err.message}; closing the connection`));
      this.socket.pause();
      this.socket.destroySoon();
      this.finish();
      return;
    }
    this.queue.push(...pieces);
    if (this.queue.length >= this.d.limits.maxQueued) this.socket.pause();
    void this.pump();
  }

  // Runs queued inputs one at a time, in order: replies come back in the order commands came.
  private async pump(): Promise<void> {
    if (this.running || !this.greeted) return;
    this.running = true;
    try {
      for (let piece = this.queue.shift(); piece !== undefined && !this.closed; piece = this.queue.shift()) {
        const reply = await this.answer(piece);
        this.send(reply);
        if (this.queue.length < this.d.limits.maxQueued && !this.closed) this.socket.resume();
      }
    } finally {
      this.running = false;
    }
  }

  private async answer(piece: StreamPiece): Promise<Record<string, unknown>> {
    if (piece.kind === 'garbage') return qmpError(`JSON parse error, invalid input: ${piece.text.slice(0, 60)}`);
    let msg: unknown;
    try {
      msg = JSON.parse(piece.text);
    } catch (err) {
      return qmpError(`JSON parse error, ${(err as Error).message}`);
    }
    if (typeof msg !== 'object' || msg === null || Array.isArray(msg)) return qmpError('QMP input must be a JSON object');
    const input = msg as Record<string, unknown>;
    const withId = (body: QmpReplyBody): Record<string, unknown> => ('id' in input ? { ...body, id: input['id'] } : { ...body });
    if ('exec-oob' in input) return withId(qmpError("out-of-band execution is not offered on this socket (no 'oob' capability)"));
    const extra = Object.keys(input).find((k) => !TOP_LEVEL_KEYS.has(k));
    if (extra !== undefined) return withId(qmpError(`QMP input member '${extra}' is unexpected`));
    const name = input['execute'];
    if (typeof name !== 'string') return withId(qmpError("QMP input lacks member 'execute'"));
    const args = input['arguments'];
    if (args !== undefined && (typeof args !== 'object' || args === null || Array.isArray(args))) {
      return withId(qmpError("QMP input member 'arguments' must be an object"));
    }
    return withId(await this.command(name, args as Record<string, unknown> | undefined));
  }

  private async command(name: string, args: Record<string, unknown> | undefined): Promise<QmpReplyBody> {
    if (name === 'qmp_capabilities') {
      if (this.negotiated) return qmpError('Capabilities negotiation is already complete, command ignored', 'CommandNotFound');
      const enable = args?.['enable'];
      if (Array.isArray(enable) && enable.length > 0) return qmpError(`Capability '${String(enable[0])}' not available`);
      this.negotiated = true;
      return { return: {} };
    }
    if (!this.negotiated) return qmpError("Expecting capabilities negotiation with 'qmp_capabilities'", 'CommandNotFound');
    return this.d.execute(name, args);
  }

  private send(message: object): void {
    if (this.closed || this.socket.destroyed) return;
    this.socket.write(`${JSON.stringify(message)}\r\n`);
    if (this.socket.writableLength > this.d.limits.maxUnreadBytes) {
      this.d.log.warn({ msgId: 'QMP_PROXY_CLIENT_SLOW', unreadBytes: this.socket.writableLength }, 'shared QMP socket: a client does not read its replies and events; disconnecting it');
      this.close();
    }
  }

  private finish(): void {
    if (this.closed) return;
    this.closed = true;
    this.queue.length = 0;
    this.d.onClose();
  }
}
