// Smoke tests for what every integration test relies on: QEMU answers QMP on this host, and the Linux test
// guest boots to GUEST-READY under TCG and powers off through the ACPI button. Everything spawned dies with its test.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, readFileSync, watch } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect, createServer } from 'node:net';
import type { Server, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it, expect } from 'vitest';
import { SerialReader } from '../helpers/serial-reader.js';
import { testAccel, testGuest, testGuestDir } from '../helpers/test-guest.js';

interface QmpMessage {
  QMP?: unknown;
  id?: string;
  return?: unknown;
  error?: { class: string; desc: string };
  event?: string;
  data?: Record<string, unknown>;
}

/** Just enough QMP for a smoke test: newline-delimited JSON, replies matched by id, events remembered. */
class TinyQmp {
  private buffered = '';
  private nextId = 0;
  private readonly replies = new Map<string, { resolve: (m: QmpMessage) => void; reject: (e: Error) => void }>();
  private readonly events: QmpMessage[] = [];
  private readonly listeners = new Set<(m: QmpMessage) => void>();
  readonly greeting: Promise<QmpMessage>;

  constructor(private readonly socket: Socket) {
    let greet: (m: QmpMessage) => void = () => {};
    this.greeting = new Promise((resolve) => { greet = resolve; });
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      this.buffered += chunk;
      let nl: number;
      while ((nl = this.buffered.indexOf('\n')) >= 0) {
        const msg = JSON.parse(this.buffered.slice(0, nl)) as QmpMessage;
        this.buffered = this.buffered.slice(nl + 1);
        if (msg.QMP !== undefined) greet(msg);
        else if (msg.event !== undefined) this.onEvent(msg);
        else if (msg.id !== undefined) this.onReply(msg.id, msg);
      }
    });
    // QEMU may reset the connection as it quits; either way pending replies will never come.
    const fail = (): void => {
      for (const r of this.replies.values()) r.reject(new Error('qmp: connection closed before the reply'));
      this.replies.clear();
    };
    socket.on('error', fail);
    socket.on('close', fail);
  }

  execute(command: string, args?: Record<string, unknown>): Promise<QmpMessage> {
    const id = `smoke-${this.nextId++}`;
    return new Promise((resolve, reject) => {
      this.replies.set(id, { resolve, reject });
      this.socket.write(`${JSON.stringify({ execute: command, id, ...(args ? { arguments: args } : {}) })}\n`);
    });
  }

  /** Resolves with the first event named `name`, including one that came before the call. */
  waitEvent(name: string, timeoutMs: number): Promise<QmpMessage> {
    const seen = this.events.find((m) => m.event === name);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const listener = (m: QmpMessage): void => {
        if (m.event !== name) return;
        clearTimeout(timer);
        this.listeners.delete(listener);
        resolve(m);
      };
      const timer = setTimeout(() => {
        this.listeners.delete(listener);
        reject(new Error(`qmp: no ${name} event within ${timeoutMs} ms`));
      }, timeoutMs);
      this.listeners.add(listener);
    });
  }

  private onEvent(msg: QmpMessage): void {
    this.events.push(msg);
    for (const l of [...this.listeners]) l(msg);
  }

  private onReply(id: string, msg: QmpMessage): void {
    const pending = this.replies.get(id);
    if (!pending) return;
    this.replies.delete(id);
    if (msg.error) pending.reject(new Error(`qmp: ${msg.error.class}: ${msg.error.desc}`));
    else pending.resolve(msg);
  }
}

interface Qemu {
  child: ChildProcess;
  /** Settles when the process exits; rejects if it could not be spawned. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stderr: () => string;
}

/** Owns one test's temp dir, processes, servers and sockets, and tears all of them down in `dispose`. */
class Scratch {
  private readonly children: ChildProcess[] = [];
  private readonly closers: (() => void)[] = [];

  private constructor(readonly dir: string) {}

  static async create(): Promise<Scratch> {
    return new Scratch(await mkdtemp(join(tmpdir(), 'virtq-smoke-')));
  }

  spawnQemu(args: string[]): Qemu {
    const child = spawn('qemu-system-x86_64', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    this.children.push(child);
    let stderr = '';
    child.stderr?.setEncoding('utf8').on('data', (s: string) => { stderr += s; });
    const exited = once(child, 'exit').then(([code, signal]) => ({
      code: code as number | null,
      signal: signal as NodeJS.Signals | null,
    }));
    // Keep an early spawn error from surfacing as an unhandled rejection before someone awaits `exited`.
    exited.catch(() => {});
    return { child, exited, stderr: () => stderr };
  }

  /** A unix socket server QEMU dials as a client: nothing it writes is lost and nobody polls for a path. */
  async listen(name: string): Promise<{ path: string; accepted: Promise<Socket> }> {
    const path = join(this.dir, name);
    const server: Server = createServer();
    this.closers.push(() => server.close());
    const accepted = once(server, 'connection').then(([s]) => this.track(s as Socket));
    accepted.catch(() => {});
    server.listen(path);
    await once(server, 'listening');
    return { path, accepted };
  }

  /** Resolves when `name` appears in the temp dir, told by inotify rather than found by polling. */
  pathCreated(name: string): Promise<void> {
    const watcher = watch(this.dir);
    this.closers.push(() => watcher.close());
    return new Promise((resolve) => {
      watcher.on('change', (_type, file) => { if (file === name) resolve(); });
      if (existsSync(join(this.dir, name))) resolve();
    });
  }

  track(socket: Socket): Socket {
    // A reset from a dying QEMU is expected at teardown; readers that care listen for errors themselves.
    socket.on('error', () => {});
    this.closers.push(() => socket.destroy());
    return socket;
  }

  async dispose(): Promise<void> {
    await Promise.all(this.children.map(async (child) => {
      if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
      const gone = once(child, 'exit');
      child.kill('SIGKILL');
      await gone;
    }));
    for (const close of this.closers) close();
    await rm(this.dir, { recursive: true, force: true });
  }
}

/** Rejects with QEMU's stderr if it exits before `p` settles, so a bad argv fails fast and says why. */
function unlessExited<T>(qemu: Qemu, p: Promise<T>): Promise<T> {
  const died = qemu.exited.then(({ code, signal }) => {
    throw new Error(`qemu exited (code ${code}, signal ${signal}) early; stderr:\n${qemu.stderr()}`);
  });
  died.catch(() => {});
  return Promise.race([p, died]);
}

/**
 * Connects to a unix socket QEMU serves. QEMU binds and then listens, so a connect in between is refused:
 * retry that at once (the gap is microseconds), never after a sleep.
 */
async function connectUnix(path: string, attempts = 10_000): Promise<Socket> {
  for (let i = 0; ; i++) {
    const socket = connect(path);
    try {
      await once(socket, 'connect');
      return socket;
    } catch (err) {
      socket.destroy();
      if ((err as NodeJS.ErrnoException).code !== 'ECONNREFUSED' || i >= attempts) throw err;
    }
  }
}

describe('QEMU on this host', () => {
  it('answers QMP on a unix socket it serves, reports prelaunch under -S and quits', async () => {
    const scratch = await Scratch.create();
    try {
      const sock = join(scratch.dir, 'qmp.sock');
      const listening = scratch.pathCreated('qmp.sock');
      const qemu = scratch.spawnQemu([
        '-accel', 'tcg', '-machine', 'pc', '-nodefaults', '-display', 'none', '-S',
        '-qmp', `unix:${sock},server=on,wait=off`,
      ]);
      await unlessExited(qemu, listening);
      const qmp = new TinyQmp(scratch.track(await unlessExited(qemu, connectUnix(sock))));

      const greeting = await unlessExited(qemu, qmp.greeting);
      expect(greeting.QMP).toMatchObject({ version: { qemu: { major: expect.any(Number) } } });
      await qmp.execute('qmp_capabilities');
      const status = await qmp.execute('query-status');
      expect(status.return).toMatchObject({ status: 'prelaunch', running: false });

      await qmp.execute('quit');
      expect(await qemu.exited).toEqual({ code: 0, signal: null });
    } finally {
      await scratch.dispose();
    }
  });
});

describe('the Linux test guest', () => {
  it('boots to GUEST-READY (TCG unless VIRTQ_TEST_KVM=1) and powers off on system_powerdown', { timeout: 120_000 }, async () => {
    const guest = testGuest();
    const scratch = await Scratch.create();
    let resend: NodeJS.Timeout | undefined;
    try {
      const serialEnd = await scratch.listen('ser.sock');
      const qmpEnd = await scratch.listen('qmp.sock');
      const started = performance.now();
      // The command line validated in TEST-GUEST.md; the test listens and QEMU connects as the client.
      const qemu = scratch.spawnQemu([
        '-accel', testAccel(), '-machine', 'pc', '-m', '128', '-smp', '1',
        '-nodefaults', '-no-user-config', '-display', 'none',
        '-kernel', guest.kernel, '-initrd', guest.initrd, '-append', 'console=ttyS0 quiet panic=-1',
        '-chardev', `socket,id=ser0,path=${serialEnd.path}`, '-serial', 'chardev:ser0',
        '-chardev', `socket,id=qmp0,path=${qmpEnd.path}`, '-mon', 'chardev=qmp0,mode=control',
      ]);
      const serial = new SerialReader(await unlessExited(qemu, serialEnd.accepted));
      const qmp = new TinyQmp(await unlessExited(qemu, qmpEnd.accepted));
      await unlessExited(qemu, qmp.greeting);
      await qmp.execute('qmp_capabilities');

      await unlessExited(qemu, serial.waitFor('GUEST-READY', 90_000));
      console.info(`test guest: spawn -> GUEST-READY ${((performance.now() - started) / 1000).toFixed(2)} s`);

      // A press can still be lost (TEST-GUEST.md pitfall 2), so press again every 2 s until the guest reacts.
      const shutdown = qmp.waitEvent('SHUTDOWN', 20_000);
      const press = (): void => { qmp.execute('system_powerdown').catch(() => {}); };
      press();
      resend = setInterval(press, 2_000);
      expect((await shutdown).data).toEqual({ guest: true, reason: 'guest-shutdown' });
      expect(await qemu.exited).toEqual({ code: 0, signal: null });
      // QEMU may exit before the last serial bytes are read; the wait ends as soon as they are, or the socket closes.
      await serial.waitFor('GUEST-POWEROFF acpi-power-button', 5_000);
    } finally {
      clearInterval(resend);
      await scratch.dispose();
    }
  });

  // The migration bench's busy guest (scripts/build-test-guest.sh: tg-dirty): started from the
  // console it keeps rewriting memory, which QEMU's own dirty-rate measurement must see.
  it('tg-dirty, typed on the console, keeps dirtying guest memory (QEMU calc-dirty-rate)', { timeout: 150_000 }, async () => {
    const guest = testGuest();
    const request = (JSON.parse(readFileSync(join(testGuestDir(), 'manifest.json'), 'utf8')) as { request: string }).request;
    expect(request, 'the test guest predates tg-dirty: bash scripts/build-test-guest.sh --force').toMatch(/rootfs=\d+/);
    const scratch = await Scratch.create();
    try {
      const serialEnd = await scratch.listen('ser.sock');
      const qmpEnd = await scratch.listen('qmp.sock');
      const qemu = scratch.spawnQemu([
        '-accel', testAccel(), '-machine', 'pc', '-m', '128', '-smp', '1',
        '-nodefaults', '-no-user-config', '-display', 'none',
        '-kernel', guest.kernel, '-initrd', guest.initrd, '-append', 'console=ttyS0 quiet panic=-1',
        '-chardev', `socket,id=ser0,path=${serialEnd.path}`, '-serial', 'chardev:ser0',
        '-chardev', `socket,id=qmp0,path=${qmpEnd.path}`, '-mon', 'chardev=qmp0,mode=control',
      ]);
      const serialSocket = await unlessExited(qemu, serialEnd.accepted);
      const serial = new SerialReader(serialSocket);
      const qmp = new TinyQmp(await unlessExited(qemu, qmpEnd.accepted));
      await unlessExited(qemu, qmp.greeting);
      await qmp.execute('qmp_capabilities');
      await unlessExited(qemu, serial.waitFor('GUEST-READY', 90_000));
      const rate = async (): Promise<number> => {
        // Page sampling (the default) compares page hashes: tg-dirty writes another byte each pass.
        // Two seconds a sample: under TCG on a loaded host one 16 MiB pass can take longer than one.
        await qmp.execute('calc-dirty-rate', { 'calc-time': 2 });
        for (;;) {
          const r = (await qmp.execute('query-dirty-rate')).return as { status: string; 'dirty-rate'?: number };
          if (r.status === 'measured') return r['dirty-rate'] ?? 0;
          await new Promise((res) => setTimeout(res, 100));
        }
      };
      // The quieter of two samples: the guest may still be settling just after it is ready.
      const idle = Math.min(await rate(), await rate());
      // A bare line starts the console shell (TEST-GUEST.md); then the command, in the background.
      serialSocket.write('\n');
      await serial.waitFor('tg# ', 20_000);
      serialSocket.write('tg-dirty 16 &\n');
      await unlessExited(qemu, serial.waitFor('TG-DIRTY-RUNNING 16', 60_000));
      // The busiest of up to four samples must at least double the idle rate: a slow pass may
      // straddle one window, never four (tg-dirty loops forever).
      const bar = Math.max(1, idle * 2);
      let busy = 0;
      for (let i = 0; i < 4 && busy <= bar; i++) busy = Math.max(busy, await rate());
      expect(busy, `dirty rate ${busy} MB/s with tg-dirty running, ${idle} MB/s idle`).toBeGreaterThan(bar);
      await qmp.execute('quit').catch(() => undefined);
      await qemu.exited;
    } finally {
      await scratch.dispose();
    }
  });
});
