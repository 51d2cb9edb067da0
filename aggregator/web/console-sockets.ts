// The serial console in the browser: a WebSocket at /console/NAME carries the bytes of the VM's
// console both ways, forwarded to the shim's console stream exactly as virtqemud's openConsole
// proxy does (over its read-write socket: the console is a write procedure). The upgrade is
// refused with 403 before any WebSocket exists unless the request may write; a console that
// cannot open (no such VM, not running) closes with code 4404 or 4409 and the reason.
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
import { VirtqError, type ByteStream, type Logger } from '../../protocol/index.js';
import type { HostConnection } from './host-link.js';
import { httpStatus } from './replies.js';

/** Consoles open at once past this are refused (503). */
export const MAX_CONSOLES = 16;
/** A browser message (keystrokes, a paste) larger than this closes its socket. */
export const MAX_INPUT_BYTES = 64 * 1024;
/** Guest output not yet sent to a slow browser past which reading the guest waits. */
const SEND_HIGH_WATER = 1024 * 1024;

/** Writes a plain HTTP refusal on a socket that asked to upgrade, and closes it. */
export function refuseUpgrade(socket: Duplex, status: number, why: string): void {
  const text = `${why}\n`;
  const reason = status === 403 ? 'Forbidden' : status === 404 ? 'Not Found' : status === 503 ? 'Service Unavailable' : 'Bad Request';
  socket.end(`HTTP/1.1 ${status} ${reason}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(text)}\r\nConnection: close\r\n\r\n${text}`);
}

/** The browser consoles. */
export class ConsoleSockets {
  private readonly wss = new WebSocketServer({ noServer: true, maxPayload: MAX_INPUT_BYTES, perMessageDeflate: false });
  private closed = false;

  constructor(private readonly writer: () => Promise<HostConnection>, private readonly log: Logger) {}

  /** Consoles open now. */
  get size(): number {
    return this.wss.clients.size;
  }

  /** Takes the upgrade of a request already allowed to write. */
  upgrade(req: IncomingMessage, socket: Duplex, head: Buffer, name: string): void {
    if (this.closed || this.wss.clients.size >= MAX_CONSOLES) {
      refuseUpgrade(socket, 503, `this web view already has ${this.wss.clients.size} consoles open`);
      return;
    }
    this.wss.handleUpgrade(req, socket, head, (ws) => void this.attach(ws, name));
  }

  /** Closes every console (the VMs keep running). */
  close(): void {
    this.closed = true;
    for (const ws of this.wss.clients) ws.close(1001, 'virtqemud is stopping');
    this.wss.close();
  }

  private async attach(ws: WebSocket, name: string): Promise<void> {
    // Listeners first: a browser may send (or send too much) before the VM's console is open, and
    // an 'error' without a listener would take the daemon down.
    let stream: ByteStream | undefined;
    const early: Uint8Array[] = [];
    ws.on('error', () => stream?.end());
    ws.on('close', () => stream?.end());
    ws.on('message', (data: RawData) => {
      if (stream === undefined) {
        early.push(toBytes(data));
        if (early.reduce((n, b) => n + b.length, 0) > MAX_INPUT_BYTES) ws.close(1009, 'too much input before the console opened');
        return;
      }
      stream.write(toBytes(data));
      // The browser types faster than the VM's connection takes it only when pasting: wait for it.
      ws.pause();
      void stream.drain().then(() => ws.resume());
    });
    try {
      stream = await (await this.writer()).rpc.openStream('virtq', 'openConsole', { name });
    } catch (err) {
      const e = VirtqError.from(err);
      // Close codes 4000-4999 are the application's: 4000 + the HTTP status of the error. Reasons are at most 123 bytes.
      ws.close(4000 + Math.min(httpStatus(e.code), 999), `${e.code}: ${e.message}`.slice(0, 120));
      return;
    }
    if (ws.readyState !== ws.OPEN) {
      stream.end();
      return;
    }
    this.log.info({ name, msgId: 'WEB_CONSOLE_OPENED' }, 'console opened from the web view');
    for (const bytes of early.splice(0)) stream.write(bytes);
    await this.pump(ws, stream);
  }

  // The guest's output to the browser, holding back while the browser has not taken what was sent.
  private async pump(ws: WebSocket, stream: ByteStream): Promise<void> {
    try {
      for await (const chunk of stream) {
        if (ws.readyState !== ws.OPEN) break;
        if (ws.bufferedAmount < SEND_HIGH_WATER) ws.send(chunk);
        else await new Promise<void>((resolve) => ws.send(chunk, () => resolve()));
      }
    } finally {
      stream.end();
      const why = stream.error === undefined ? 'the console closed' : `${stream.error.code}: ${stream.error.message}`;
      if (ws.readyState === ws.OPEN) ws.close(stream.error === undefined ? 1000 : 4500, why.slice(0, 120));
    }
  }
}

function toBytes(data: RawData): Uint8Array {
  if (Array.isArray(data)) return Buffer.concat(data);
  return data instanceof ArrayBuffer ? new Uint8Array(data) : data;
}
