// The shared QMP socket (run/shims/NAME-qmp-proxy.sock): many QMP tools at once on the shim's one
// monitor connection. Each client gets QMP as QEMU speaks it (session.ts); its commands pass the
// allow-list (policy.ts), run on the shim's monitor under the client's own id, and a
// state-changing one runs as the VM's job and taints the VM. Every QEMU event goes to every
// negotiated client. The number of clients is bounded; one over the bound is told so and closed.
import { createServer, type Server, type Socket } from 'node:net';
import { listenUnix, unlinkIfOurs, VirtqError, type BoundSocket, type Logger } from '../../protocol/index.js';
import type { HypervisorMonitor } from '../../drivers/hypervisor/types.js';
import { classify } from './policy.js';
import { QmpProxySession, qmpError, type QmpReplyBody, type SessionLimits } from './session.js';

/** Bounds of the socket. */
export interface ProxyLimits extends SessionLimits {
  maxClients: number;
}

/** Default bounds: generous for tools, small enough that a flood costs the shim little. */
export const DEFAULT_PROXY_LIMITS: ProxyLimits = {
  maxClients: 32,
  maxInputBytes: 1024 * 1024,
  // query-qmp-schema alone is ~150 KiB: a client may lag a few of those, not more.
  maxUnreadBytes: 4 * 1024 * 1024,
  maxQueued: 16,
};

/** What the socket needs from its shim. */
export interface QmpProxyDeps {
  path: string;
  log: Logger;
  /** Commands that may change the VM and are allowed (policy.ts refuses the shim's own whatever this says). */
  allow: ReadonlySet<string>;
  /** The VM's monitor; throws when QEMU is not connected. */
  monitor(): HypervisorMonitor;
  /** Runs `fn` as the VM's one job, so a tool's change never interleaves with virtq's own. */
  runJob<T>(name: string, fn: () => Promise<T>): Promise<T>;
  /** A state-changing command ran (or may have: it timed out): the VM is tainted. */
  onChanged(command: string): void;
  limits?: Partial<ProxyLimits>;
}

const UNKNOWN_VERSION = { qemu: { major: 0, minor: 0, micro: 0 }, package: '' };

/** The listening socket and its clients. */
export class QmpProxyServer {
  private server: Server | undefined;
  private bound: BoundSocket | undefined;
  private readonly sessions = new Set<QmpProxySession>();
  private readonly limits: ProxyLimits;
  private version: unknown;
  private full = false;

  constructor(private readonly d: QmpProxyDeps) {
    this.limits = { ...DEFAULT_PROXY_LIMITS, ...d.limits };
  }

  /** Number of connected clients. */
  get clients(): number {
    return this.sessions.size;
  }

  async listen(): Promise<void> {
    this.server = createServer((socket) => this.accept(socket));
    this.bound = await listenUnix(this.server, this.d.path, 0o600);
  }

  /** Fans one QEMU event out to every negotiated client; never throws into the monitor. */
  publish(event: Record<string, unknown>): void {
    for (const s of this.sessions) {
      try {
        s.event(event);
      } catch (err) {
        this.d.log.warn({ err }, 'shared QMP socket: cannot deliver an event');
      }
    }
  }

  /** Stops serving (idempotent); `listen` may serve again (a shim upgrade that rolled back). */
  async close(): Promise<void> {
    const { server, bound } = this;
    this.server = undefined;
    this.bound = undefined;
    server?.close();
    for (const s of [...this.sessions]) s.close();
    if (bound !== undefined) await unlinkIfOurs(bound);
  }

  private accept(socket: Socket): void {
    if (this.sessions.size >= this.limits.maxClients) {
      if (!this.full) this.d.log.warn({ msgId: 'QMP_PROXY_FULL', maxClients: this.limits.maxClients }, 'shared QMP socket: too many clients; refusing new ones');
      this.full = true;
      socket.on('error', () => undefined);
      socket.end(`${JSON.stringify(qmpError(`too many clients on this QMP socket (at most ${this.limits.maxClients}); try again later`))}\r\n`);
      socket.destroySoon();
      return;
    }
    this.full = false;
    const session: QmpProxySession = new QmpProxySession(socket, {
      log: this.d.log, limits: this.limits, greeting: this.greeting(),
      execute: (name, args) => this.execute(name, args),
      onClose: () => this.sessions.delete(session),
    });
    this.sessions.add(session);
  }

  // QEMU's own version, asked once; a greeting never waits on a QEMU that is not there.
  private async greeting(): Promise<Record<string, unknown>> {
    if (this.version === undefined) {
      try {
        this.version = await this.d.monitor().raw({ execute: 'query-version' });
      } catch {
        return { version: UNKNOWN_VERSION, capabilities: [] };
      }
    }
    return { version: this.version, capabilities: [] };
  }

  private async execute(name: string, args: Record<string, unknown> | undefined): Promise<QmpReplyBody> {
    const verdict = classify(name, args, this.d.allow);
    if (verdict.kind === 'refused') {
      this.d.log.info({ msgId: 'QMP_PROXY_REFUSED', command: name }, 'shared QMP socket: command refused');
      return qmpError(verdict.desc);
    }
    const command = args === undefined ? { execute: name } : { execute: name, arguments: args };
    if (verdict.kind === 'read') return this.forward(() => this.d.monitor().raw(command));
    return this.forward(() => this.d.runJob(`qmp-proxy ${name}`, async () => {
      let ran = false;
      try {
        const result = await this.d.monitor().raw(command);
        ran = true;
        return result;
      } catch (err) {
        ran = VirtqError.from(err).code === 'TIMEOUT';
        throw err;
      } finally {
        if (ran) {
          // Argument names only: values may be secrets (object-add of a secret).
          this.d.log.warn({ msgId: 'QMP_PROXY_COMMAND', command: name, arguments: Object.keys(args ?? {}) }, 'shared QMP socket: a tool changed the VM');
          this.d.onChanged(name);
        }
      }
    }));
  }

  private async forward(run: () => Promise<unknown>): Promise<QmpReplyBody> {
    try {
      const result = await run();
      return { return: result ?? {} };
    } catch (err) {
      const e = VirtqError.from(err);
      const details = e.details as { class?: unknown; desc?: unknown } | undefined;
      if (e.code === 'QMP_ERROR' && typeof details?.class === 'string') return qmpError(String(details.desc ?? e.message), details.class);
      return qmpError(e.message);
    }
  }
}
