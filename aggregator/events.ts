// Host-wide lifecycle events: shims' events and virtqemud's own (defined, undefined, shim-lost)
// pushed to every client that subscribed, for all VMs or one.
import { LIFECYCLE_EVENT_KINDS, VirtqError, type LifecycleEvent, type LifecycleEventKind, type Clock, type RpcServer, type ServerClient } from '../protocol/index.js';
import type { DomainRecord } from './registry.js';

const KINDS: ReadonlySet<string> = new Set(LIFECYCLE_EVENT_KINDS);

/** Publishes lifecycle events. */
export class Events {
  constructor(private readonly server: () => RpcServer | undefined, private readonly clock: Clock) {}

  /** Subscribes `client` to every VM's events, or to `name`'s. */
  subscribe(client: ServerClient, name: string | undefined): void {
    client.subscriptions.add(name === undefined ? 'lifecycle' : `lifecycle:${name}`);
  }

  /** Publishes an event about `r` in its current state. */
  lifecycle(r: DomainRecord, kind: string, details?: Record<string, unknown>): void {
    if (!KINDS.has(kind)) throw new VirtqError('INVALID_ARG', `unknown lifecycle event "${kind}"`);
    const event: LifecycleEvent = {
      name: r.name, uuid: r.uuid, event: kind as LifecycleEventKind, state: r.state, reason: r.reason, timestamp: this.clock.now(),
      ...(details === undefined ? {} : { details }),
    };
    const one = `lifecycle:${r.name}`;
    this.server()?.publish('virtq', 'lifecycle', event, (c) => c.subscriptions.has('lifecycle') || c.subscriptions.has(one));
  }
}
