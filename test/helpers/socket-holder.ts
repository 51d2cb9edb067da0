// A stand-in for systemd's socket units, for tests: this process binds a daemon's unix sockets
// and hands them to a small shell (the "service manager") that holds them for the whole test and
// never accepts; each `start()` runs the daemon once with the sockets as fds 3, 4, … and
// LISTEN_FDS / LISTEN_PID / LISTEN_FDNAMES set as sd_listen_fds(3) expects. The sockets outlive
// every daemon instance, as they do under systemd, so a restart finds the clients queued on them.
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, linkSync, renameSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { createInterface } from 'node:readline';
import { procState } from '../../drivers/host/proc.js';
import { socketInode } from '../../drivers/host/unix-sockets.js';

/** One socket to pass: where to bind it, its mode and, optionally, its LISTEN_FDNAMES entry. */
export interface HeldSocket {
  path: string;
  mode?: number;
  name?: string;
}

/** A daemon instance started on the held sockets. */
export interface ActivatedDaemon {
  pid: number;
  reply: { ok: boolean; pid?: number; activated?: string[]; error?: { code: string; message: string } };
  /** Resolves once the process is gone. */
  exited: Promise<number | string>;
}

// Runs the daemon once per line read: `LISTEN_PID=$$ exec` makes the daemon's pid the one named.
const MANAGER = 'while read -r _; do sh -c \'LISTEN_PID=$$; export LISTEN_PID; exec "$@"\' sh "$@" & done; wait';

/** Binds `sockets`, hands them to a holder shell, and starts `command` on them on demand. */
export class SocketHolder {
  private readonly lines: string[] = [];
  private readonly waiters: Array<() => void> = [];
  /** What the daemons wrote on stderr. */
  stderrText = '';

  private constructor(private readonly holder: ChildProcess, readonly inodes: number[]) {}

  /** Binds each socket (in this process, released once the holder has its copy) and starts the holder. */
  static async start(sockets: readonly HeldSocket[], command: readonly string[], env: NodeJS.ProcessEnv = process.env): Promise<SocketHolder> {
    const servers: Server[] = [];
    try {
      for (const s of sockets) {
        const server = createServer();
        await new Promise<void>((resolve, reject) => { server.once('error', reject); server.listen(s.path, resolve); });
        chmodSync(s.path, s.mode ?? 0o600);
        servers.push(server);
      }
      const fds = servers.map((s) => (s as unknown as { _handle: { fd: number } })._handle.fd);
      const names = sockets.every((s) => s.name !== undefined) ? { LISTEN_FDNAMES: sockets.map((s) => s.name).join(':') } : {};
      const holder = spawn('sh', ['-c', MANAGER, 'holder', ...command], {
        stdio: ['pipe', 'pipe', 'pipe', ...fds],
        env: { ...env, LISTEN_FDS: String(fds.length), ...names },
      });
      const h = new SocketHolder(holder, fds.map((fd) => socketInode(fd) as number));
      holder.stderr?.on('data', (d: Buffer) => { h.stderrText += d.toString(); });
      createInterface({ input: holder.stdout as NodeJS.ReadableStream }).on('line', (line) => {
        h.lines.push(line);
        for (const w of h.waiters.splice(0)) w();
      });
      return h;
    } finally {
      // The holder has its own copies: this process must not accept on them. Closing a server
      // unlinks its path (libuv does), so the file is kept under a second name and put back.
      servers.forEach((server, i) => {
        const path = (sockets[i] as HeldSocket).path;
        linkSync(path, `${path}.keep`);
        server.close();
        renameSync(`${path}.keep`, path);
      });
    }
  }

  /** Starts the daemon once and resolves with its ready line. */
  async startDaemon(): Promise<ActivatedDaemon> {
    const seen = this.lines.length;
    this.holder.stdin?.write('start\n');
    while (this.lines.length === seen) await new Promise<void>((resolve) => this.waiters.push(resolve));
    const reply = JSON.parse(this.lines[seen] as string) as ActivatedDaemon['reply'];
    const pid = reply.pid ?? 0;
    return { pid, reply, exited: pid === 0 ? Promise.resolve('failed') : exitOf(pid) };
  }

  /** Kills the holder: the sockets close with it (their files stay, as systemd's would without RemoveOnStop). */
  async stop(): Promise<void> {
    if (this.holder.exitCode !== null || this.holder.signalCode !== null) return;
    const gone = new Promise((resolve) => this.holder.once('exit', resolve));
    this.holder.kill('SIGKILL');
    await gone;
  }
}

/** Resolves once `pid` (the holder's child, not ours) is gone or a zombie, checking /proc every 20 ms. */
function exitOf(pid: number): Promise<number | string> {
  return new Promise((resolve) => {
    const timer = setInterval(() => {
      const state = procState(pid);
      if (state === undefined || state === 'Z') {
        clearInterval(timer);
        resolve('exited');
      }
    }, 20);
  });
}
