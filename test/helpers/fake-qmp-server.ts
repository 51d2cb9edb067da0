// A scripted stand-in for QEMU's QMP monitor: expected command → reply, replies recorded from
// real QEMU in test/fixtures/qmp/, plus events, garbage and hang-ups on demand. Like QEMU with a
// client chardev it dials the test's listener, so the monitor under test sees an accepted socket.
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createConnection, createServer } from 'node:net';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A JSON object as QEMU sends it. */
export type QmpObject = Record<string, unknown>;

/** A reply the fake sends: a recorded `{return}`/`{error}` object, or a function of the command. */
export type FakeReply = QmpObject | ((command: QmpObject) => QmpObject);

/** How an expected command is answered. */
export interface ExpectOptions {
  /** `auto` replies at once (default); `manual` waits for `release()`; `never` leaves it unanswered. */
  mode?: 'auto' | 'manual' | 'never';
  /** Events sent just before the reply, as QEMU sends RESUME before `cont` returns. */
  eventsBefore?: QmpObject[];
}

/** A handle on one scripted command. */
export interface Expectation {
  /** Resolves with the command once the fake has received it. */
  readonly received: Promise<QmpObject>;
  /** Sends the reply of a `manual` expectation (after it was received). */
  release(): void;
}

/** Options for creating a fake. */
export interface FakeQmpOptions {
  /** The greeting to send on connect; `null` sends none. Default: the recorded QEMU 7.2 greeting. */
  greeting?: QmpObject | null;
  /** The reply to `qmp_capabilities`. Default: the recorded `{return: {}}`. */
  capabilitiesReply?: QmpObject;
}

interface Step { command: string; reply: FakeReply; options: ExpectOptions; resolve: (c: QmpObject) => void; release: () => void }

/** Loads `test/fixtures/qmp/<name>.json`. */
export function loadQmpFixture<T = QmpObject>(name: string): T {
  return JSON.parse(readFileSync(new URL(`../fixtures/qmp/${name}.json`, import.meta.url), 'utf8')) as T;
}

/** The scripted QEMU side of one QMP connection. */
export class FakeQmpServer {
  /** Every command received, `qmp_capabilities` included, in order. */
  readonly received: QmpObject[] = [];
  /** Resolves when the monitor side has closed the connection. */
  readonly peerClosed: Promise<void>;
  private readonly steps: Step[] = [];
  private readonly problems: string[] = [];
  private negotiated = false;
  private buffer = '';

  private constructor(private readonly peer: Socket, private readonly options: FakeQmpOptions, private readonly cleanup: () => Promise<void>) {
    this.peerClosed = new Promise((resolve) => peer.once('close', () => resolve()));
    peer.on('error', () => undefined);
    peer.on('data', (chunk: Buffer) => this.onData(chunk.toString('utf8')));
    const greeting = options.greeting === undefined ? loadQmpFixture('greeting-7.2') : options.greeting;
    if (greeting !== null) this.write(greeting);
  }

  /**
   * Listens on a unix socket in a fresh temp dir, dials it as QEMU's client chardev would, and
   * returns the fake plus the accepted socket, which is what the shim hands to QmpMonitor.attach.
   */
  static async accepted(options: FakeQmpOptions = {}): Promise<{ fake: FakeQmpServer; socket: Socket }> {
    const dir = await mkdtemp(join(tmpdir(), 'virtq-fakeqmp-'));
    const path = join(dir, 'qmp.sock');
    const listener = createServer();
    await new Promise<void>((resolve, reject) => listener.once('error', reject).listen(path, () => resolve()));
    const accepted = new Promise<Socket>((resolve) => listener.once('connection', resolve));
    const peer = createConnection({ path });
    await new Promise<void>((resolve, reject) => peer.once('connect', () => resolve()).once('error', reject));
    const socket = await accepted;
    // Stops accepting and unlinks the socket file now; the accepted connection lives on.
    listener.close();
    const fake = new FakeQmpServer(peer, options, () => rm(dir, { recursive: true, force: true }));
    return { fake, socket };
  }

  /**
   * Serves QMP on a unix socket (as `-qmp unix:PATH,server=on` does) for the plain client case;
   * `fake` resolves when a client connects.
   */
  static async listening(options: FakeQmpOptions = {}): Promise<{ path: string; fake: Promise<FakeQmpServer>; dispose: () => Promise<void> }> {
    const dir = await mkdtemp(join(tmpdir(), 'virtq-fakeqmp-'));
    const path = join(dir, 'qmp.sock');
    const listener = createServer();
    await new Promise<void>((resolve, reject) => listener.once('error', reject).listen(path, () => resolve()));
    const fake = new Promise<FakeQmpServer>((resolve) => listener.once('connection', (peer) => {
      resolve(new FakeQmpServer(peer, options, async () => undefined));
    }));
    const dispose = async (): Promise<void> => {
      listener.close();
      await rm(dir, { recursive: true, force: true });
    };
    return { path, fake, dispose };
  }

  /** Scripts the next command: it must be `command`, and gets `reply` (its `id` is echoed). */
  expect(command: string, reply: FakeReply, options: ExpectOptions = {}): Expectation {
    let resolve!: (c: QmpObject) => void;
    const received = new Promise<QmpObject>((r) => { resolve = r; });
    const step: Step = { command, reply, options, resolve, release: () => undefined };
    this.steps.push(step);
    return { received, release: () => step.release() };
  }

  /** Sends an event now, stamped like QEMU's. */
  emitEvent(event: string, data?: QmpObject): void {
    const timestamp = { seconds: 1_700_000_000, microseconds: 250_000 };
    this.write(data === undefined ? { timestamp, event } : { timestamp, event, data });
  }

  /** Sends a recorded message (event or otherwise) as-is. */
  send(message: QmpObject): void {
    this.write(message);
  }

  /** Sends raw text: garbage, partial lines, several lines in one write. */
  sendRaw(text: string | Buffer): void {
    this.peer.write(text);
  }

  /** Hangs up as QEMU does when it exits. */
  hangUp(): void {
    this.peer.end();
  }

  /** Throws if a scripted command was never received or an unexpected one arrived. */
  assertDone(): void {
    const left = this.steps.map((s) => s.command);
    const all = [...this.problems, ...(left.length > 0 ? [`expected but not received: ${left.join(', ')}`] : [])];
    if (all.length > 0) throw new Error(`fake qmp server: ${all.join('; ')}`);
  }

  /** Closes the fake's side and removes its temp dir. */
  async dispose(): Promise<void> {
    this.peer.destroy();
    await this.cleanup();
  }

  private onData(text: string): void {
    this.buffer += text;
    for (let nl = this.buffer.indexOf('\n'); nl !== -1; nl = this.buffer.indexOf('\n')) {
      const line = this.buffer.slice(0, nl).trim();
      this.buffer = this.buffer.slice(nl + 1);
      if (line !== '') this.onCommand(JSON.parse(line) as QmpObject);
    }
  }

  private onCommand(command: QmpObject): void {
    this.received.push(command);
    const name = String(command['execute']);
    if (!this.negotiated) {
      if (name !== 'qmp_capabilities') return this.reply(command, loadQmpFixture('query-status-negotiation-required'));
      const reply = this.options.capabilitiesReply ?? loadQmpFixture<QmpObject>('qmp_capabilities-ok');
      this.negotiated = 'return' in reply;
      return this.reply(command, reply);
    }
    const step = this.steps.shift();
    if (step === undefined || step.command !== name) {
      this.problems.push(`unexpected command ${name}${step === undefined ? '' : ` (expected ${step.command})`}`);
      return this.reply(command, { error: { class: 'CommandNotFound', desc: `fake: unexpected command ${name}` } });
    }
    const answer = (): void => {
      for (const e of step.options.eventsBefore ?? []) this.write(e);
      this.reply(command, typeof step.reply === 'function' ? step.reply(command) : step.reply);
    };
    const mode = step.options.mode ?? 'auto';
    if (mode === 'auto') answer();
    else if (mode === 'manual') step.release = answer;
    step.resolve(command);
  }

  private reply(command: QmpObject, reply: QmpObject): void {
    this.write('id' in command ? { ...reply, id: command['id'] } : reply);
  }

  private write(message: QmpObject): void {
    // QEMU terminates every message with CRLF; mirror it so the client's framing is tested against it.
    if (!this.peer.destroyed) this.peer.write(`${JSON.stringify(message)}\r\n`);
  }
}
