// The shim's registration with virtqemud: claim the name and UUID (refused with NAME_IN_USE
// before QEMU is spawned), report state changes, and register again when virtqemud restarts.
// The registration lives as long as this connection.
import {
  RpcClient, VirtqError, registryProgram, typedClient,
  type ArgsOf, type Clock, type Logger, type TypedClient,
} from '../protocol/index.js';
import { DEFAULT_REJOIN_PACE, rejoinWaits, type RejoinPace } from './rejoin-pace.js';

type Registration = ArgsOf<typeof registryProgram.procs.register>;
type Update = ArgsOf<typeof registryProgram.procs.update>;

/** What the shim needs from its registration. */
export interface Registrar {
  register(reg: Registration): Promise<void>;
  /** Reports a state change; queued, never blocks the VM. */
  update(u: Update): void;
  unregister(): Promise<void>;
  /** Settles once every queued update has been delivered (or failed). */
  flush(): Promise<void>;
  /**
   * Updates sent on this registration so far. A start's ready line carries it, so that
   * virtqemud can wait for its own listing to show them instead of this shim waiting for the replies.
   */
  readonly sent: number;
  /** Settles once every update sent so far has been written to the connection (not answered). */
  posted(): Promise<void>;
  close(): void;
}

/** Connects to virtqemud's read-write socket, waiting up to `timeoutMs` for it to come up. */
export async function connectRegistrar(socket: string, clock: Clock, log: Logger, timeoutMs: number, pace: RejoinPace = DEFAULT_REJOIN_PACE): Promise<Registrar> {
  let client: RpcClient;
  try {
    client = await RpcClient.connectWithRetry(socket, { clock, deadlineMs: timeoutMs, defaultTimeoutMs: 30_000 });
  } catch (err) {
    throw new VirtqError('NO_CONNECT', `virtqemud is not running: nothing answered at ${socket} within ${Math.round(timeoutMs / 1000)} s (start virtqemud, or run the shim with --no-register)`, { cause: err });
  }
  return new VirtqemudRegistrar(socket, client, clock, log, pace);
}

class VirtqemudRegistrar implements Registrar {
  private api: TypedClient<typeof registryProgram>;
  private current: Registration | undefined;
  private last: Update | undefined;
  private closed = false;
  private queue: Promise<void> = Promise.resolve();
  /** Ends the current wait between two re-registration tries early (set while one waits). */
  private nudge: (() => void) | undefined;
  sent = 0;

  constructor(
    private readonly socket: string, private client: RpcClient, private readonly clock: Clock, private readonly log: Logger,
    private readonly pace: RejoinPace,
  ) {
    this.api = typedClient(registryProgram, client);
    this.watch();
  }

  // Current from the call on: updates sent before its reply (a start whose QEMU spawns beside it, shim.ts)
  // follow it on this connection, which virtqemud runs in order. A refusal leaves nothing current.
  async register(reg: Registration): Promise<void> {
    this.current = reg;
    try {
      await this.api.register(reg);
    } catch (err) {
      if (this.current === reg) this.current = undefined;
      throw err;
    }
  }

  // Sent at once, not after the previous update's reply: virtqemud runs a connection's calls in the
  // order they arrive (its update handler is synchronous), so the order holds, and the last update
  // of a start is in the socket before the ready line that counts it (issue 15).
  update(u: Update): void {
    this.last = u;
    if (this.current === undefined) return;
    // virtqemud lost and waited for (reconnect): a state change is tried at once, not after the pace's
    // wait, so a restarted virtqemud lists it now (a VM that migrates away within the wait would
    // otherwise be listed running there, and never unregister). One try per change, not in step with other shims.
    this.nudge?.();
    this.sent++;
    const delivered = this.api.update(u).then(() => undefined, (err: unknown) => {
      this.log.debug({ err }, 'state update not delivered; it is sent again on re-registration');
    });
    this.queue = this.queue.then(() => delivered);
  }

  flush(): Promise<void> {
    return this.queue;
  }

  // The connection batches the frames of one tick and writes them on the next (protocol/connection.ts):
  // after one turn of the event loop they are in the kernel.
  posted(): Promise<void> {
    return new Promise((resolve) => setImmediate(resolve));
  }

  async unregister(): Promise<void> {
    await this.queue;
    if (this.current === undefined || this.client.isClosed) return;
    this.current = undefined;
    await this.api.unregister({}).catch(() => undefined);
  }

  close(): void {
    this.closed = true;
    this.client.close();
  }

  // virtqemud restarted: register again as a re-attach, with the latest state, paced (shim/rejoin-pace.ts):
  // never at once, when the daemon has only just died, and never in step with the other shims.
  private watch(): void {
    this.client.onClose(() => {
      if (this.closed || this.current === undefined) return;
      this.log.warn({ msgId: 'VIRTQEMUD_LOST' }, 'lost connection to virtqemud; re-registering when it returns');
      void this.reconnect();
    });
  }

  private async reconnect(): Promise<void> {
    const nextWait = rejoinWaits(this.pace);
    for (;;) {
      await this.pause(nextWait());
      if (this.closed || this.current === undefined) return;
      try {
        this.client = await RpcClient.connect(this.socket, { clock: this.clock, defaultTimeoutMs: 30_000 });
        this.api = typedClient(registryProgram, this.client);
        const reg = { ...latest(this.current, this.last), reattach: true };
        await this.api.register(reg);
        this.sent = 0; // virtqemud counts a registration's updates from its register
        this.log.info({ msgId: 'REREGISTERED' }, 'registered again with virtqemud');
        this.watch();
        return;
      } catch (err) {
        this.client.close();
        const code = VirtqError.from(err).code;
        if (code === 'NAME_IN_USE' || code === 'UUID_IN_USE') {
          this.log.error({ err, msgId: 'REREGISTER_REFUSED' }, 'virtqemud refused the re-registration');
          return;
        }
      }
    }
  }

  // The wait before a try: `ms`, or until an update nudges it.
  private pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        timer.dispose();
        this.nudge = undefined;
        resolve();
      };
      const timer = this.clock.setTimeout(done, ms);
      this.nudge = done;
    });
  }
}

// The registration as it stands after the last update: the one made at start-up predates QEMU,
// so its state and QEMU pid are those of the latest update.
function latest(reg: Registration, last: Update | undefined): Registration {
  if (last === undefined) return reg;
  const { qemuPid: _spawnedSince, ...rest } = reg;
  return {
    ...rest, state: last.state, reason: last.reason,
    ...(last.qemuPid === undefined ? {} : { qemuPid: last.qemuPid }), ...(last.info === undefined ? {} : { info: last.info }),
  };
}
