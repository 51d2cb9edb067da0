// The QMP message layer: tags every command with an id, matches replies by id (commands are
// pipelined; QEMU answers them in order but the id is what we trust), maps error replies to
// QMP_ERROR, times commands out on the injected clock, and hands events to one callback.
import type { Clock, Disposable } from '../../../../protocol/clock.js';
import { VirtqError } from '../../../../protocol/errors.js';
import type { QmpMessage, QmpTransport } from './transport.js';

/** The logging the QMP client needs; pino's Logger satisfies it. */
export interface QmpLogger {
  debug(obj: Record<string, unknown>, msg: string): void;
  warn(obj: Record<string, unknown>, msg: string): void;
}

/** A logger that drops everything, used when none is given. */
export const silentQmpLogger: QmpLogger = Object.freeze({ debug: () => undefined, warn: () => undefined });

/** Options for a {@link QmpProtocol}. */
export interface QmpProtocolOptions {
  clock: Clock;
  /** Called for every message that has an `event` member, in arrival order. */
  onEvent: (message: QmpMessage) => void;
  /** Deadline for a command whose caller gives none. */
  defaultTimeoutMs: number;
  log?: QmpLogger;
  /** Called once per answered command with its duration, for the latency histogram. */
  onCommandDone?: (command: string, seconds: number, ok: boolean) => void;
}

/** Per-command options. */
export interface QmpExecuteOptions {
  /** Milliseconds before the command fails with TIMEOUT; the late reply is then dropped. */
  timeoutMs?: number;
}

interface Pending {
  command: string;
  started: number;
  timer: Disposable;
  resolve: (value: unknown) => void;
  reject: (err: VirtqError) => void;
}

/** Ids, replies, timeouts and events over one {@link QmpTransport} whose handshake is done. */
export class QmpProtocol {
  private readonly clock: Clock;
  private readonly log: QmpLogger;
  private readonly defaultTimeoutMs: number;
  private readonly onEvent: (message: QmpMessage) => void;
  private readonly onCommandDone: QmpProtocolOptions['onCommandDone'];
  private readonly pending = new Map<string, Pending>();
  private nextId = 1;

  constructor(private readonly transport: QmpTransport, options: QmpProtocolOptions) {
    this.clock = options.clock;
    this.log = options.log ?? silentQmpLogger;
    this.defaultTimeoutMs = options.defaultTimeoutMs;
    this.onEvent = options.onEvent;
    this.onCommandDone = options.onCommandDone;
    transport.listen((m) => this.onMessage(m));
    void transport.closed.then((reason) => this.rejectAll(reason));
  }

  /** Resolves with the close reason once the connection has ended. */
  get closed(): Promise<VirtqError> {
    return this.transport.closed;
  }

  /** True once the connection has ended. */
  get isClosed(): boolean {
    return this.transport.isClosed;
  }

  /** Lets go of the connection for another shim (see QmpTransport.handOver); only with no command in flight. */
  handOver(stopReading: (socket: import('node:net').Socket) => void): import('./transport.js').QmpHandover {
    if (this.pending.size > 0) throw new VirtqError('OPERATION_INVALID', `qmp has ${this.pending.size} command(s) in flight; cannot hand the connection over`);
    return this.transport.handOver(stopReading);
  }

  /** Number of commands sent and not yet answered. */
  get inFlight(): number {
    return this.pending.size;
  }

  /**
   * Runs `command` with `args` and resolves with its `return` value. Fails with QMP_ERROR
   * (details: class, desc, command), TIMEOUT, or CONNECTION_CLOSED.
   */
  execute(command: string, args?: Record<string, unknown>, options: QmpExecuteOptions = {}): Promise<unknown> {
    const message: Record<string, unknown> = args === undefined ? { execute: command } : { execute: command, arguments: args };
    return this.send(command, message, options);
  }

  /**
   * Runs a caller-built command object (`{"execute": ..., "arguments": ...}`) as-is, for raw
   * passthrough; any `id` in it is replaced by ours. Resolves with the raw `return` value.
   */
  executeRaw(command: Record<string, unknown>, options: QmpExecuteOptions = {}): Promise<unknown> {
    const name = command['execute'] ?? command['exec-oob'];
    if (typeof name !== 'string' || name === '') {
      return Promise.reject(new VirtqError('INVALID_ARG', 'a raw qmp command needs a string "execute" member'));
    }
    return this.send(name, { ...command }, options);
  }

  /** Closes the connection; pending commands fail with CONNECTION_CLOSED. */
  close(): void {
    this.transport.close();
  }

  private send(command: string, message: Record<string, unknown>, options: QmpExecuteOptions): Promise<unknown> {
    if (this.transport.isClosed) {
      return Promise.reject(new VirtqError('CONNECTION_CLOSED', `qmp connection is closed; ${command} not sent`, { details: { command } }));
    }
    const id = `virtq-${this.nextId++}`;
    const timeoutMs = options.timeoutMs ?? this.defaultTimeoutMs;
    return new Promise<unknown>((resolve, reject) => {
      const timer = this.clock.setTimeout(() => this.expire(id, timeoutMs), timeoutMs);
      this.pending.set(id, { command, started: this.clock.monotonic(), timer, resolve, reject });
      this.log.debug({ id, command }, 'qmp command');
      try {
        this.transport.send({ ...message, id });
      } catch (err) {
        this.settle(id)?.reject(VirtqError.from(err));
      }
    });
  }

  private onMessage(message: QmpMessage): void {
    if (typeof message['event'] === 'string') {
      this.onEvent(message);
      return;
    }
    if (!('return' in message) && !('error' in message)) {
      this.log.warn({ message }, 'qmp message is neither a reply nor an event; dropped');
      return;
    }
    const id = message['id'];
    const entry = typeof id === 'string' ? this.settle(id) : undefined;
    if (entry === undefined) {
      this.log.warn({ id }, 'qmp reply matches no pending command; dropped');
      return;
    }
    const ms = this.clock.monotonic() - entry.started;
    this.onCommandDone?.(entry.command, ms / 1000, !('error' in message));
    if ('error' in message) {
      const err = toQmpError(entry.command, message['error']);
      this.log.debug({ id, command: entry.command, ms, class: err.details?.['class'] }, 'qmp error reply');
      entry.reject(err);
    } else {
      this.log.debug({ id, command: entry.command, ms }, 'qmp reply');
      entry.resolve(message['return']);
    }
  }

  private expire(id: string, timeoutMs: number): void {
    const entry = this.settle(id);
    if (entry === undefined) return;
    this.log.warn({ id, command: entry.command, timeoutMs }, 'qmp command timed out');
    entry.reject(new VirtqError('TIMEOUT', `qmp command ${entry.command} got no reply within ${timeoutMs} ms`, {
      details: { command: entry.command, timeoutMs },
    }));
  }

  private settle(id: string): Pending | undefined {
    const entry = this.pending.get(id);
    if (entry === undefined) return undefined;
    this.pending.delete(id);
    entry.timer.dispose();
    return entry;
  }

  private rejectAll(reason: VirtqError): void {
    for (const id of [...this.pending.keys()]) {
      const entry = this.settle(id);
      if (entry === undefined) continue;
      entry.reject(new VirtqError('CONNECTION_CLOSED', `qmp connection closed before ${entry.command} was answered: ${reason.message}`, {
        cause: reason,
        details: { command: entry.command },
      }));
    }
  }
}

/** Maps a QMP `error` member (`{class, desc}`) to a QMP_ERROR VirtqError. */
export function toQmpError(command: string, error: unknown): VirtqError {
  const e = typeof error === 'object' && error !== null ? (error as { class?: unknown; desc?: unknown }) : {};
  const cls = typeof e.class === 'string' ? e.class : 'GenericError';
  const desc = typeof e.desc === 'string' ? e.desc : JSON.stringify(error);
  return new VirtqError('QMP_ERROR', `${command}: ${desc}`, { details: { class: cls, desc, command } });
}
