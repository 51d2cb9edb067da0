// The secondary daemons of a chaos root: virtstoraged and virtsecretd run from their built
// binaries under the same root as virtqemud (debug logs, so more log lines are searched for
// secret values), are killed with -9 at random moments and restarted, and their stderr is kept
// so that it can be searched too.
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { systemClock } from '../../protocol/index.js';
import { connectSecret, type SecretClient } from '../../client/secret-client.js';
import { connectStorage, type StorageClient } from '../../client/storage-client.js';
import { daemonBin } from '../helpers/service-harness.js';
import { rootEnv } from './world.js';

/** The secondary daemons chaos runs. */
export type SideDaemon = 'virtstoraged' | 'virtsecretd';

interface Running {
  proc: ChildProcess;
  exited: Promise<void>;
}

const clock = systemClock();

/** virtstoraged and virtsecretd under one root. */
export class SideDaemons {
  private readonly running = new Map<SideDaemon, Running>();
  private readonly spawned: ChildProcess[] = [];
  private readonly clients = new Set<{ close(): void }>();
  /** Everything the daemons wrote to stderr, by daemon (searched for secret values at the end). */
  readonly stderr: Record<SideDaemon, string> = { virtstoraged: '', virtsecretd: '' };

  constructor(readonly root: string) {}

  uri(scheme: 'storage' | 'secret'): string {
    return `${scheme}:///system?root=${this.root}`;
  }

  /** Starts `d` and waits for its ready line; throws with its stderr when it fails. */
  async start(d: SideDaemon): Promise<void> {
    const proc = spawn(process.execPath, [daemonBin(d), '--root', this.root, '--log-filters', 'debug'], { stdio: ['ignore', 'pipe', 'pipe'], env: rootEnv(this.root) });
    this.spawned.push(proc);
    const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
    let own = '';
    proc.stderr?.on('data', (chunk: Buffer) => {
      own += chunk.toString();
      this.stderr[d] += chunk.toString();
    });
    const lines = createInterface({ input: proc.stdout as NodeJS.ReadableStream });
    const line = await new Promise<string>((resolve, reject) => {
      lines.once('line', resolve);
      void exited.then(() => reject(new Error(`${d} exited before serving: ${own.trim()}`)));
    });
    lines.close();
    proc.stdout?.resume();
    const reply = JSON.parse(line) as { ok: boolean; error?: { code: string; message: string } };
    if (!reply.ok) throw new Error(`${d} failed to start: ${reply.error?.code}: ${reply.error?.message}`);
    this.running.set(d, { proc, exited });
  }

  /** kill -9 of `d`; resolves once it is gone. */
  async kill(d: SideDaemon): Promise<void> {
    const r = this.running.get(d);
    this.running.delete(d);
    if (r === undefined) return;
    r.proc.kill('SIGKILL');
    await r.exited;
  }

  /** True while `d`, as started here, runs. */
  up(d: SideDaemon): boolean {
    const r = this.running.get(d);
    return r !== undefined && r.proc.exitCode === null && r.proc.signalCode === null;
  }

  /** A client of virtstoraged (closed on dispose if the caller does not). */
  async storage(): Promise<StorageClient> {
    return this.keep(await connectStorage(this.uri('storage'), { clock, timeoutMs: 60_000 }));
  }

  /** A client of virtsecretd. */
  async secret(): Promise<SecretClient> {
    return this.keep(await connectSecret(this.uri('secret'), { clock, timeoutMs: 60_000 }));
  }

  private keep<C extends { close(): void; conn: { closed: Promise<unknown> } }>(c: C): C {
    this.clients.add(c);
    void c.conn.closed.then(() => this.clients.delete(c), () => this.clients.delete(c));
    return c;
  }

  /** Kills both daemons and closes every client. */
  async dispose(): Promise<void> {
    for (const c of this.clients) c.close();
    for (const p of this.spawned) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
    await Promise.all(this.spawned.map((p) => (p.exitCode !== null || p.signalCode !== null ? undefined : new Promise((r) => p.once('exit', r)))));
    this.running.clear();
  }
}
