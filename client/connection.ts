// A connection to virtq as an application sees it: typed methods for every procedure of the
// `virtq` program, per-VM handles, lifecycle events and the serial console, over whichever
// router the URI chose (virtqemud, one shim, or embedded shims).
import {
  lazyValidator, LifecycleEvent, typedClient, virtqProgram,
  type ArgsOf, type ByteStream, type SubscribeEventsArgs, type CallOptions, type RetOf, type StreamProcs, type TypedClient, type VirtqError, type VirtqProgram,
} from '../protocol/index.js';
import type { Router } from './router.js';

/** The `virtq` program's procedures, by name. */
export type VirtqProcs = VirtqProgram['procs'];

/** Procedures that open a byte stream (`stream: true` in the catalogue); reach them through `Connection.console`. */
export type StreamProcedure = StreamProcs<VirtqProgram>;

/** One typed method per procedure of the `virtq` program (stream procedures excepted). */
export type VirtqMethods = TypedClient<VirtqProgram>;

/** Procedures whose arguments name one VM: the methods of a `DomainHandle`. */
export type DomainProcedure = {
  [K in keyof VirtqMethods]: ArgsOf<VirtqProcs[K]> extends { name: string } ? K : never;
}[keyof VirtqMethods];

type RestArgs<K extends DomainProcedure> = Omit<ArgsOf<VirtqProcs[K]>, 'name'>;

/** The per-VM methods with the VM's name bound: `conn.domain('web1').suspend()`. */
export type DomainMethods = {
  [K in DomainProcedure]: Record<string, never> extends RestArgs<K>
    ? (args?: RestArgs<K>, opts?: CallOptions) => Promise<RetOf<VirtqProcs[K]>>
    : (args: RestArgs<K>, opts?: CallOptions) => Promise<RetOf<VirtqProcs[K]>>;
};

/** One VM, addressed by name through a connection. */
export type DomainHandle = DomainMethods & {
  readonly name: string;
  /** Opens the VM's serial console. */
  console(): Promise<ByteStream>;
  /** Subscribes to this VM's lifecycle events. */
  events(): Promise<AsyncIterableIterator<LifecycleEvent>>;
};

/** What a connection talks to. */
export type PeerKind = 'daemon' | 'shim' | 'embed';

/** True for procedures whose arguments require a VM `name` (the runtime twin of DomainProcedure). */
function namesOneVm(procName: string): boolean {
  const spec = virtqProgram.procs[procName as keyof VirtqProcs];
  const required = (spec.args as { required?: unknown }).required;
  return !spec.stream && Array.isArray(required) && required.includes('name');
}

/** A connection to virtqemud, to one VM's shim, or to the shims of an embedding application. */
export class Connection {
  /** The `virtq` program's procedures as typed methods: `conn.virtq.getInfo({ name })`. */
  readonly virtq: VirtqMethods;
  private readonly isEvent = lazyValidator(LifecycleEvent, 'lifecycle-event');

  /** @internal Built by `connect()`. */
  constructor(
    /** The URI this connection was opened with. */
    readonly uri: string,
    /** What serves the connection. */
    readonly peer: PeerKind,
    /** True on a read-only socket: calls that change state fail with PERMISSION_DENIED. */
    readonly readOnly: boolean,
    private readonly router: Router,
  ) {
    this.virtq = typedClient(virtqProgram, router);
  }

  /** Settles with the reason once the connection has closed (by either side). */
  get closed(): Promise<VirtqError> {
    return this.router.closed;
  }

  /**
   * Calls a procedure of the `virtq` program by name with unchecked argument types; the server
   * validates them. For generic callers such as the CLI; applications use `virtq` or `domain()`.
   */
  call(procedure: keyof VirtqMethods, args: unknown, opts: CallOptions = {}): Promise<unknown> {
    return this.router.call(virtqProgram.name, procedure, args, opts);
  }

  /** A handle on VM `name`: its per-VM procedures with the name filled in. */
  domain(name: string): DomainHandle {
    const handle: Record<string, unknown> = {
      name,
      console: () => this.console(name),
      events: () => this.events({ name }),
    };
    for (const procName of Object.keys(virtqProgram.procs)) {
      if (!namesOneVm(procName)) continue;
      handle[procName] = (args?: Record<string, unknown>, opts?: CallOptions) => this.router.call(virtqProgram.name, procName, { ...args, name }, opts ?? {});
    }
    return handle as DomainHandle;
  }

  /**
   * Subscribes to lifecycle events (of one VM, or of every VM the peer knows) and returns them as
   * an async iterator that ends when the connection closes. Events are queued from the moment the
   * subscription is in place. A connection has one event queue: iterate it from one place.
   * With `since` (one VM), `sinceTime` or `sinceByVm` (every VM) the journal's events after that
   * point come first, then the live ones, with no gap and no duplicate; each event's `seq` is
   * where to resume after a reconnect.
   */
  async events(filter: { name?: string } & Omit<SubscribeEventsArgs, 'name'> = {}): Promise<AsyncIterableIterator<LifecycleEvent>> {
    const { name, since, sinceTime, sinceByVm } = filter;
    await this.router.call(virtqProgram.name, 'subscribeEvents', {
      ...(name === undefined ? {} : { name }), ...(since === undefined ? {} : { since }),
      ...(sinceTime === undefined ? {} : { sinceTime }), ...(sinceByVm === undefined ? {} : { sinceByVm }),
    }, {});
    const pushed = this.router.events()[Symbol.asyncIterator]();
    const isEvent = this.isEvent;
    const iterator: AsyncIterableIterator<LifecycleEvent> = {
      async next(): Promise<IteratorResult<LifecycleEvent>> {
        for (;;) {
          const r = await pushed.next();
          if (r.done === true) return { value: undefined, done: true };
          const { prog, name, body } = r.value;
          if (prog === virtqProgram.name && name === 'lifecycle' && isEvent.check(body)) {
            if (filter.name === undefined || body.name === filter.name) return { value: body, done: false };
          }
        }
      },
      async return(): Promise<IteratorResult<LifecycleEvent>> {
        await pushed.return?.();
        return { value: undefined, done: true };
      },
      [Symbol.asyncIterator]() { return iterator; },
    };
    return iterator;
  }

  /**
   * Opens VM `name`'s serial console: iterate the stream for the guest's output (recent history
   * first), `write()` to type, `end()` to leave. The VM keeps running.
   */
  console(name: string, opts: CallOptions = {}): Promise<ByteStream> {
    return this.router.openStream(virtqProgram.name, 'openConsole', { name }, opts);
  }

  /** Closes the connection; calls in flight fail with CONNECTION_CLOSED. VMs keep running. */
  close(): void {
    this.router.close();
  }
}
