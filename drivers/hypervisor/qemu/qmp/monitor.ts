// QmpMonitor: the one QMP entry point the rest of virtq uses. It owns one monitor connection
// (transport → protocol → this facade), knows QEMU's command names and reply shapes, and
// reports events and the end of the connection only through the callbacks its owner passes in.
import type { Socket } from 'node:net';
import type { Clock } from '../../../../protocol/clock.js';
import { VirtqError } from '../../../../protocol/errors.js';
import { QmpEventDispatcher } from './events.js';
import type { QmpEventCallbacks } from './events.js';
import { QmpProtocol, silentQmpLogger } from './qmp-protocol.js';
import type { QmpExecuteOptions, QmpLogger } from './qmp-protocol.js';
import { parseBlock, parseBlockstats, parseCommands, parseKvm, parseMachines, parseStatus } from './replies.js';
import type { QmpBlockInfo, QmpBlockStats, QmpKvmInfo, QmpMachine, QmpStatus } from './replies.js';
import { QmpTransport, connectQmp } from './transport.js';
import type { QmpGreeting, QmpHandover } from './transport.js';

export type { QmpBlockIoErrorEvent, QmpDeviceDeletedEvent, QmpEventCallbacks, QmpEventMeta, QmpGuestPanickedEvent, QmpResetEvent, QmpShutdownEvent } from './events.js';
export type { QmpExecuteOptions, QmpLogger } from './qmp-protocol.js';
export type { QmpBlockInfo, QmpBlockStats, QmpKvmInfo, QmpMachine, QmpStatus } from './replies.js';
export type { QmpGreeting } from './transport.js';

/** How a monitor is built. */
export interface QmpMonitorOptions {
  clock: Clock;
  /** Receives QMP events as typed calls. */
  callbacks: QmpEventCallbacks;
  /** Called once when the connection ends, with the reason (peer closed, local close, malformed input). */
  onClose?: (reason: VirtqError) => void;
  /** A pino-compatible logger; pass `log.child({ module: 'qemu.qmp' })`. */
  log?: QmpLogger;
  /** Deadline for each command unless the call gives its own. Default 30 s. */
  commandTimeoutMs?: number;
  /** Deadline for greeting + qmp_capabilities. Default 10 s. */
  handshakeTimeoutMs?: number;
  /** Longest accepted QMP line. Default 64 MiB. */
  maxLineBytes?: number;
  /** Called once per answered command with its duration in seconds. */
  onCommandDone?: (command: string, seconds: number, ok: boolean) => void;
  /** Called with every event message as QEMU sent it, after `callbacks` had it. */
  onRawEvent?: (message: Record<string, unknown>) => void;
}

/** Arguments of `device_add`: the driver, an id, and driver properties. */
export interface QmpDeviceAddArgs {
  driver: string;
  id?: string;
  [property: string]: unknown;
}

const DEFAULT_COMMAND_TIMEOUT_MS = 30_000;
const DEFAULT_HANDSHAKE_TIMEOUT_MS = 10_000;

/** A live QMP monitor connection to one QEMU process. Build it with {@link QmpMonitor.attach}. */
export class QmpMonitor {
  /** Resolves when the connection has ended, after `onClose` ran; never rejects. */
  readonly closed: Promise<void>;
  private reason: VirtqError | undefined;

  private constructor(
    /** QEMU's version and capabilities, from the greeting. */
    readonly greeting: QmpGreeting,
    private readonly protocol: QmpProtocol,
    options: QmpMonitorOptions,
    log: QmpLogger,
  ) {
    this.closed = protocol.closed.then((reason) => {
      this.reason = reason;
      log.debug({ code: reason.code, reason: reason.message }, 'qmp monitor closed');
      try {
        options.onClose?.(reason);
      } catch (err) {
        log.warn({ err }, 'qmp onClose callback threw');
      }
    });
  }

  /**
   * Takes over a connected socket (accepted from the shim's listener when QEMU dials its client
   * chardev, or dialled by us), reads the greeting and negotiates capabilities. On failure the
   * socket is destroyed and the promise rejects with TIMEOUT, QMP_ERROR, MALFORMED_MESSAGE or
   * CONNECTION_CLOSED.
   */
  static async attach(socket: Socket, options: QmpMonitorOptions): Promise<QmpMonitor> {
    const transport = new QmpTransport(socket, options.maxLineBytes === undefined ? {} : { maxLineBytes: options.maxLineBytes });
    const greeting = await transport.handshake(options.clock, options.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS);
    return QmpMonitor.over(transport, greeting, options);
  }

  /**
   * Continues a connection another shim negotiated and handed over (a shim upgrade): no greeting
   * comes again, and `leftover` (bytes it had read, not yet a whole line) is parsed first.
   */
  static resume(socket: Socket, greeting: QmpGreeting, leftover: Buffer, options: QmpMonitorOptions): QmpMonitor {
    const transport = new QmpTransport(socket, { leftover, ...(options.maxLineBytes === undefined ? {} : { maxLineBytes: options.maxLineBytes }) });
    return QmpMonitor.over(transport, greeting, options);
  }

  /** Stops reading and gives up the socket to another owner; only with no command in flight. */
  handOver(stopReading: (socket: Socket) => void): QmpHandover & { greeting: QmpGreeting } {
    return { ...this.protocol.handOver(stopReading), greeting: this.greeting };
  }

  private static over(transport: QmpTransport, greeting: QmpGreeting, options: QmpMonitorOptions): QmpMonitor {
    const log = options.log ?? silentQmpLogger;
    log.debug({ qemu: greeting.version.qemu, capabilities: greeting.capabilities }, 'qmp monitor attached');
    const events = new QmpEventDispatcher(options.callbacks, log);
    const protocol = new QmpProtocol(transport, {
      clock: options.clock,
      defaultTimeoutMs: options.commandTimeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS,
      onEvent: (m) => {
        events.dispatch(m);
        options.onRawEvent?.(m);
      },
      log,
      ...(options.onCommandDone === undefined ? {} : { onCommandDone: options.onCommandDone }),
    });
    return new QmpMonitor(greeting, protocol, options, log);
  }

  /** Dials a QMP server socket at `path` (QEMU's `-qmp unix:PATH,server=on`), then {@link attach}es. */
  static async connect(path: string, options: QmpMonitorOptions & { connectTimeoutMs?: number }): Promise<QmpMonitor> {
    const socket = await connectQmp(path, options.clock, options.connectTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS);
    return QmpMonitor.attach(socket, options);
  }

  /** Why the connection ended, once it has. */
  get closeReason(): VirtqError | undefined {
    return this.reason;
  }

  /** True once the connection has ended. */
  get isClosed(): boolean {
    return this.protocol.isClosed;
  }

  /** `query-status`: the run state and whether vCPUs run. */
  async queryStatus(options?: QmpExecuteOptions): Promise<QmpStatus> {
    return parseStatus(await this.protocol.execute('query-status', undefined, options));
  }

  /** `cont`: starts or resumes the vCPUs (a RESUME event follows). */
  async cont(options?: QmpExecuteOptions): Promise<void> {
    await this.protocol.execute('cont', undefined, options);
  }

  /** `stop`: pauses the vCPUs (a STOP event follows). */
  async stop(options?: QmpExecuteOptions): Promise<void> {
    await this.protocol.execute('stop', undefined, options);
  }

  /** `system_powerdown`: presses the ACPI power button; the guest decides what happens. */
  async systemPowerdown(options?: QmpExecuteOptions): Promise<void> {
    await this.protocol.execute('system_powerdown', undefined, options);
  }

  /** `system_reset`: resets the machine (a RESET event follows). */
  async systemReset(options?: QmpExecuteOptions): Promise<void> {
    await this.protocol.execute('system_reset', undefined, options);
  }

  /**
   * `quit`: QEMU exits at once. Once the command is sent, the connection closing before the
   * reply is read counts as success, since that is what quitting does.
   */
  async quit(options?: QmpExecuteOptions): Promise<void> {
    if (this.protocol.isClosed) throw new VirtqError('CONNECTION_CLOSED', 'qmp connection is closed; quit not sent');
    try {
      await this.protocol.execute('quit', undefined, options);
    } catch (err) {
      if (!(err instanceof VirtqError && err.code === 'CONNECTION_CLOSED')) throw err;
    }
  }

  /** `blockdev-add`: adds a block node graph described by `args` (`driver`, `node-name`, ...). */
  async blockdevAdd(args: Record<string, unknown>, options?: QmpExecuteOptions): Promise<void> {
    await this.protocol.execute('blockdev-add', args, options);
  }

  /** `blockdev-del`: removes a top-level block node that nothing uses any more. */
  /** `object-add` of a `secret` object holding `data` (QEMU keeps it in memory only). */
  async secretAdd(id: string, data: Uint8Array, options?: QmpExecuteOptions): Promise<void> {
    await this.protocol.execute('object-add', { 'qom-type': 'secret', id, data: Buffer.from(data).toString('base64'), format: 'base64' }, options);
  }

  /** `object-del`. */
  async objectDel(id: string, options?: QmpExecuteOptions): Promise<void> {
    await this.protocol.execute('object-del', { id }, options);
  }

  async blockdevDel(nodeName: string, options?: QmpExecuteOptions): Promise<void> {
    await this.protocol.execute('blockdev-del', { 'node-name': nodeName }, options);
  }

  /** `device_add`: hot-plugs a device. */
  async deviceAdd(args: QmpDeviceAddArgs, options?: QmpExecuteOptions): Promise<void> {
    await this.protocol.execute('device_add', { ...args }, options);
  }

  /**
   * `device_del`: requests removal. The reply only means the request was accepted; the device
   * is gone when DEVICE_DELETED arrives, which may need guest cooperation (PCI/ACPI).
   */
  async deviceDel(id: string, options?: QmpExecuteOptions): Promise<void> {
    await this.protocol.execute('device_del', { id }, options);
  }

  /** `netdev_add`: adds a network backend (`type`, `id`, and its properties, e.g. a tap's `ifname`). */
  async netdevAdd(args: { type: string; id: string; [property: string]: unknown }, options?: QmpExecuteOptions): Promise<void> {
    await this.protocol.execute('netdev_add', { ...args }, options);
  }

  /** `netdev_del`: removes a network backend no device uses any more. */
  async netdevDel(id: string, options?: QmpExecuteOptions): Promise<void> {
    await this.protocol.execute('netdev_del', { id }, options);
  }

  /** `qom-list`: the properties (children included) of the object at `path`, with their types. */
  async qomList(path: string, options?: QmpExecuteOptions): Promise<Array<{ name: string; type: string }>> {
    const out = await this.protocol.execute('qom-list', { path }, options);
    if (!Array.isArray(out)) return [];
    return out.flatMap((e: unknown) => {
      const o = e as { name?: unknown; type?: unknown };
      return typeof o.name === 'string' && typeof o.type === 'string' ? [{ name: o.name, type: o.type }] : [];
    });
  }

  /** `qom-get`: one property of the object at `path`. */
  async qomGet(path: string, property: string, options?: QmpExecuteOptions): Promise<unknown> {
    return this.protocol.execute('qom-get', { path, property }, options);
  }

  /** `query-blockstats`: I/O counters per block device. */
  async queryBlockstats(options?: QmpExecuteOptions): Promise<QmpBlockStats[]> {
    return parseBlockstats(await this.protocol.execute('query-blockstats', undefined, options));
  }

  /** `query-block`: block backends and their media. */
  async queryBlock(options?: QmpExecuteOptions): Promise<QmpBlockInfo[]> {
    return parseBlock(await this.protocol.execute('query-block', undefined, options));
  }

  /** `query-commands`: names of every command this QEMU accepts. */
  async queryCommands(options?: QmpExecuteOptions): Promise<string[]> {
    return parseCommands(await this.protocol.execute('query-commands', undefined, options));
  }

  /** `query-machines`: the machine types this QEMU binary offers. */
  async queryMachines(options?: QmpExecuteOptions): Promise<QmpMachine[]> {
    return parseMachines(await this.protocol.execute('query-machines', undefined, options));
  }

  /** `query-kvm`: whether KVM is present and in use. */
  async queryKvm(options?: QmpExecuteOptions): Promise<QmpKvmInfo> {
    return parseKvm(await this.protocol.execute('query-kvm', undefined, options));
  }

  /** `send-key`: presses `keys` (QKeyCode names such as `ctrl`, `alt`, `delete`) together. */
  async sendKey(keys: readonly string[], holdTimeMs?: number, options?: QmpExecuteOptions): Promise<void> {
    if (keys.length === 0) throw new VirtqError('INVALID_ARG', 'send-key needs at least one key');
    const args: Record<string, unknown> = { keys: keys.map((data) => ({ type: 'qcode', data })) };
    if (holdTimeMs !== undefined) args['hold-time'] = holdTimeMs;
    await this.protocol.execute('send-key', args, options);
  }

  /** `human-monitor-command`: runs an HMP command line and returns its text output. */
  async humanMonitorCommand(commandLine: string, options?: QmpExecuteOptions): Promise<string> {
    const out = await this.protocol.execute('human-monitor-command', { 'command-line': commandLine }, options);
    return typeof out === 'string' ? out : '';
  }

  /**
   * Raw passthrough for `qemuMonitorCommand`: sends `command` (`{"execute": ..., "arguments": ...}`)
   * and resolves with QEMU's raw `return` value; an error reply rejects with QMP_ERROR.
   */
  async raw(command: object, options?: QmpExecuteOptions): Promise<unknown> {
    if (Array.isArray(command)) throw new VirtqError('INVALID_ARG', 'a raw qmp command must be a JSON object');
    return this.protocol.executeRaw(command as Record<string, unknown>, options);
  }

  /** Closes the connection; commands in flight fail with CONNECTION_CLOSED. QEMU keeps running. */
  close(): void {
    this.protocol.close();
  }
}
