// Raw QMP through socat (Debian's), a client nobody here wrote: the test writes bytes to socat's
// stdin and reads the JSON lines socat prints from the socket.
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';

/** One socat process connected to a unix socket. */
export class SocatQmp {
  /** Every JSON object received, in order. */
  readonly received: Array<Record<string, unknown>> = [];
  readonly exited: Promise<number | null>;
  private readonly proc: ChildProcess;
  private waiters: Array<() => void> = [];

  constructor(path: string) {
    this.proc = spawn('socat', ['-', `UNIX-CONNECT:${path}`], { stdio: ['pipe', 'pipe', 'inherit'] });
    this.exited = new Promise((resolve) => this.proc.once('exit', (code) => resolve(code)));
    const lines = createInterface({ input: this.proc.stdout! });
    lines.on('line', (line) => {
      if (line.trim() === '') return;
      this.received.push(JSON.parse(line) as Record<string, unknown>);
      for (const w of this.waiters.splice(0)) w();
    });
    this.proc.stdin!.on('error', () => undefined);
  }

  /** Writes raw text (an object is sent as one JSON line). */
  send(input: string | object): void {
    this.proc.stdin!.write(typeof input === 'string' ? input : `${JSON.stringify(input)}\n`);
  }

  /** The first message received at or after index `from` that `match` accepts. */
  async next(match: (m: Record<string, unknown>) => boolean, timeoutMs = 20_000, from = 0): Promise<Record<string, unknown>> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.received.slice(from).find(match);
      if (found !== undefined) return found;
      if (Date.now() > deadline) throw new Error(`no matching QMP message within ${timeoutMs} ms; got ${JSON.stringify(this.received).slice(-800)}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, 200);
        this.waiters.push(() => { clearTimeout(t); resolve(); });
      });
    }
  }

  /** Sends `command` with `id` and waits for the reply carrying that id. */
  async call(command: object, id: unknown): Promise<Record<string, unknown>> {
    const from = this.received.length;
    this.send({ ...command, id });
    return this.next((m) => JSON.stringify(m['id']) === JSON.stringify(id), 20_000, from);
  }

  /** Stops socat. */
  close(): Promise<number | null> {
    this.proc.stdin!.end();
    this.proc.kill('SIGTERM');
    return this.exited;
  }
}
