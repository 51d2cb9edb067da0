// The serial console hub: the shim listens on the console socket and QEMU dials in (again after
// a shim restart). Output is appended to log/NAME.console.log, kept in a small ring for clients
// that attach late, and fanned out to every open console stream; input goes to the guest.
import { createWriteStream, type WriteStream } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { listenUnix, unlinkIfOurs, VirtqError, type BoundSocket } from '../../protocol/index.js';
import { listenInherited } from '../../protocol/unix-listener.js';
import { fdOf, resumeReading, socketFromFd, stopReading } from '../../drivers/host/fd-handover.js';

const HISTORY_BYTES = 64 * 1024;

/** Receives console output. */
export type ConsoleSink = (chunk: Buffer) => void;

/** One VM's serial console. */
export class ConsoleHub {
  private server: Server | undefined;
  private bound: BoundSocket | undefined;
  private qemu: Socket | undefined;
  private readonly sinks = new Set<ConsoleSink>();
  private history: Buffer[] = [];
  private historyBytes = 0;
  private readonly log: WriteStream;

  constructor(private readonly socketPath: string, logFile: string) {
    this.log = createWriteStream(logFile, { flags: 'a', mode: 0o600 });
    this.log.on('error', () => undefined);
  }

  /** Starts listening for QEMU's connection; on `fd` when a predecessor handed its listener over. */
  async listen(fd?: number): Promise<void> {
    this.server = createServer((socket) => this.accept(socket));
    this.bound = fd === undefined ? await listenUnix(this.server, this.socketPath, 0o600) : await listenInherited(this.server, fd, this.socketPath, true);
  }

  /** A shim upgrade: QEMU's console connection, handed over as `fd`, is read here from now on. */
  adoptQemu(fd: number): void {
    this.accept(socketFromFd(fd));
  }

  /** A shim upgrade: the fds to hand over (the listener, and QEMU's connection if it is connected). */
  fds(): { listener: number; qemu: number | undefined } {
    if (this.server === undefined) throw new VirtqError('INTERNAL', 'console hub is not listening');
    return { listener: fdOf(this.server, 'the console listener'), qemu: this.qemu === undefined ? undefined : fdOf(this.qemu, 'the console connection') };
  }

  /** A shim upgrade: stops reading QEMU's output; what it writes next waits in the kernel for the successor. */
  stopReading(): void {
    if (this.qemu !== undefined) stopReading(this.qemu);
  }

  /** The upgrade was rolled back: reading QEMU's output again. */
  resumeAfterHandover(): void {
    if (this.qemu !== undefined) resumeReading(this.qemu);
  }

  /** The successor took over: closes this process's copies, removing nothing. */
  async release(): Promise<void> {
    this.qemu?.destroy();
    this.server?.close();
    await new Promise<void>((resolve) => this.log.end(resolve));
  }

  /** True while QEMU is connected. */
  get connected(): boolean {
    return this.qemu !== undefined;
  }

  /** Adds a sink; it first receives the recent history. Returns the function that removes it. */
  subscribe(sink: ConsoleSink, replayHistory = true): () => void {
    if (replayHistory && this.historyBytes > 0) sink(Buffer.concat(this.history));
    this.sinks.add(sink);
    return () => this.sinks.delete(sink);
  }

  /** Sends input to the guest's serial port; dropped when QEMU is not connected. */
  write(data: Uint8Array): void {
    this.qemu?.write(data);
  }

  /** Stops listening and closes the log. QEMU's side redials whoever listens next. */
  async close(): Promise<void> {
    this.qemu?.destroy();
    this.server?.close();
    if (this.bound !== undefined) await unlinkIfOurs(this.bound);
    await new Promise<void>((resolve) => this.log.end(resolve));
  }

  private accept(socket: Socket): void {
    this.qemu?.destroy();
    this.qemu = socket;
    socket.on('data', (chunk: Buffer) => this.output(chunk));
    socket.on('error', () => undefined);
    socket.on('close', () => { if (this.qemu === socket) this.qemu = undefined; });
  }

  private output(chunk: Buffer): void {
    this.log.write(chunk);
    this.history.push(chunk);
    this.historyBytes += chunk.length;
    while (this.historyBytes > HISTORY_BYTES && this.history.length > 1) {
      this.historyBytes -= (this.history.shift() as Buffer).length;
    }
    for (const sink of this.sinks) sink(chunk);
  }
}
