// The registry program: shims claim their VM's name and UUID, report state changes, and let go.
// A registration is bound to the connection that made it; when that connection drops while the
// VM runs, the VM is listed with its shim lost (the VM itself keeps running).
import { VirtqError, registryProgram, type Clock, type Handlers, type ServerClient } from '../../protocol/index.js';
import { isActive, type DomainRecord, type DomainRegistry } from '../registry.js';
import type { Events } from '../events.js';

/**
 * How long a re-attaching shim's registration waits for the connection of the shim it replaces to
 * be seen closed. An upgrading shim closes its connection before its successor registers, but
 * the two sockets' events may reach this loop in either order (CI saw the successor first).
 */
export const REPLACED_CLOSE_GRACE_MS = 2000;

type RegistryHandlers = Handlers<typeof registryProgram>;
type Registration = Parameters<NonNullable<RegistryHandlers['register']>>[0];
type CallContext = Parameters<NonNullable<RegistryHandlers['register']>>[1];

/** Handlers of the registry program. */
export function registryHandlers(registry: DomainRegistry, events: Events, clock: Clock, onShimGone: (r: DomainRecord) => void, onAdopted?: (r: DomainRecord) => void): RegistryHandlers {
  const bound = new Map<ServerClient, DomainRecord>();
  // A registration waiting for the shim it replaces to let go: its connection's next calls wait for
  // it, so they still run in the order sent (nothing else here waits).
  const waiting = new Map<ServerClient, Promise<unknown>>();
  const inOrder = <T>(client: ServerClient, fn: () => T): T | Promise<T> => {
    const before = waiting.get(client);
    return before === undefined ? fn() : before.then(fn, fn);
  };
  const recordOf = (client: ServerClient): DomainRecord => {
    const r = bound.get(client);
    if (r === undefined) throw new VirtqError('OPERATION_INVALID', 'this connection has not registered a VM');
    return r;
  };
  const bind = (reg: Registration, ctx: CallContext): Record<string, never> => {
    if (bound.has(ctx.client)) throw new VirtqError('OPERATION_INVALID', 'this connection already registered a VM');
    let r = registry.get(reg.name);
    if (r === undefined) {
      r = registry.claim({ name: reg.name, uuid: reg.uuid, persistent: false, autostart: false, definition: undefined, state: reg.state, reason: reg.reason });
      onAdopted?.(r);
    } else if (r.uuid !== reg.uuid.toLowerCase()) {
      throw new VirtqError('NAME_IN_USE', `VM name "${reg.name}" is already taken by VM uuid ${r.uuid}`);
    } else if (r.shim?.conn !== undefined && !r.shim.conn.conn.closed) {
      throw new VirtqError('NAME_IN_USE', `VM "${reg.name}" is already served by shim pid ${r.shim.pid}`);
    } else if (!reg.reattach && isActive(r) && !r.starting) {
      throw new VirtqError('NAME_IN_USE', `VM "${reg.name}" is still running (QEMU pid ${r.qemuPid ?? '?'}); re-attach its shim instead`);
    }
    const record = r;
    registry.shimRegistered(record,
      { pid: reg.shimPid, socket: reg.socket, roSocket: reg.roSocket, adminSocket: reg.adminSocket, stateFile: reg.stateFile, conn: ctx.client, ...(reg.info === undefined ? {} : { info: reg.info }) },
      { state: reg.state, reason: reg.reason, qemuPid: reg.qemuPid });
    bound.set(ctx.client, record);
    ctx.client.onClose(() => {
      bound.delete(ctx.client);
      if (record.shim?.conn !== ctx.client) return;
      if (isActive(record)) {
        registry.shimLost(record);
        events.lifecycle(record, 'shim-lost');
      } else {
        onShimGone(record);
      }
    });
    if (reg.reattach) events.lifecycle(record, 'shim-attached');
    // What the shim journaled while it could not report here is told now, before its next update.
    events.catchUp(record);
    return {};
  };
  return {
    register: (reg, ctx) => {
      const replaced = reg.reattach ? replacedShimClosed(registry.get(reg.name), reg.uuid, clock) : undefined;
      if (replaced === undefined) return inOrder(ctx.client, () => bind(reg, ctx));
      const done = replaced.then(() => bind(reg, ctx));
      const tail = done.catch(() => undefined);
      waiting.set(ctx.client, tail);
      void tail.then(() => { if (waiting.get(ctx.client) === tail) waiting.delete(ctx.client); });
      return done;
    },
    update: (u, ctx) => inOrder(ctx.client, () => {
      const r = recordOf(ctx.client);
      registry.shimReported(r, { state: u.state, reason: u.reason, qemuPid: u.qemuPid }, u.info);
      if (u.event !== undefined) events.lifecycle(r, u.event, u.details, { seq: u.seq, timestamp: u.timestamp });
      return {};
    }),
    unregister: (_a, ctx) => inOrder(ctx.client, () => {
      const r = recordOf(ctx.client);
      bound.delete(ctx.client);
      if (r.shim?.conn === ctx.client) onShimGone(r);
      return {};
    }),
  };
}

// Resolves once the shim connection bound to `r` (same UUID) has closed, or after the grace (a shim
// that really still serves the VM is then refused as before); undefined when there is none to wait for.
function replacedShimClosed(r: DomainRecord | undefined, uuid: string, clock: Clock): Promise<void> | undefined {
  const old = r?.shim?.conn;
  if (r === undefined || r.uuid !== uuid.toLowerCase() || old === undefined || old.conn.closed) return undefined;
  return new Promise((resolve) => {
    const timer = clock.setTimeout(resolve, REPLACED_CLOSE_GRACE_MS);
    old.onClose(() => { timer.dispose(); resolve(); });
  });
}
