// How a shim takes part in migrations, kept out of shim.ts: the source side every shim has, and
// for a shim started with --incoming, a QEMU launched listening (or with `-incoming defer`) and no disk lease
// (only the lifeline the leases taken at switchover will be bound to).
import { VirtqError, daemonSockets, migrationSocket, type Clock, type Handlers, type IncomingState, type Layout, type Logger, type VirtqProgram } from '../protocol/index.js';
import { askVirtqemud } from './ask-virtqemud.js';
import { rm } from 'node:fs/promises';
import type { Vm } from './vm/vm.js';
import type { IncomingStart } from './vm/incoming.js';
import { restoreStep } from './handlers/save-handlers.js';
import type { VmLeases } from './vm/leases.js';
import { MigrationSource } from './vm/migration-source.js';
import { INCOMING_REASON, MigrationIncoming } from './vm/migration-incoming.js';
import { migrationHandlers } from './handlers/migration-handlers.js';
import { MigrationWakeups } from './vm/migration-wakeups.js';
import { connectDestination } from './migration-link.js';

/** A shim's migration parts. */
export interface ShimMigration {
  /** Present when the shim was started for an incoming migration. */
  incoming: MigrationIncoming | undefined;
  handlers(persisted: () => Promise<void>): Handlers<VirtqProgram>;
  /**
   * Once the VM has ended: removes its state file when it lives on elsewhere (migrated away) or
   * never ran here (a failed incoming migration), so a restarted virtqemud does not list it here.
   */
  forgetIfGone(stateFile: string): Promise<void>;
  /** Settles once a finished outgoing migration has moved the VM's definition (MigrationSource.tidied). */
  tidied(): Promise<void>;
  /** After re-attaching: cancels a migration the predecessor left running in QEMU. */
  recover(): Promise<void>;
  /** Every monitor event of the VM's QEMU (the shim's event tap): MIGRATION wakes the polls. */
  onEvent(event: Record<string, unknown>): void;
}

/** Builds the migration parts of the shim of `vm`. */
export function shimMigration(o: { vm: Vm; leases: VmLeases; clock: Clock; log: Logger; layout: Layout; incoming: 'unix' | 'tcp' | undefined }): ShimMigration {
  const { vm, leases, clock, log, layout } = o;
  const wakeups = new MigrationWakeups();
  const source = new MigrationSource({
    vm, leases, clock, log, wakeups,
    connect: (uri) => connectDestination(uri, clock, MOVE_DEFINITION_WAIT_MS),
    undefineSource: (name) => undefineHere(daemonSockets(layout).rw, name, clock),
  });
  const incoming = o.incoming !== undefined ? new MigrationIncoming({ vm, leases, clock, log, wakeups, socketPath: migrationSocket(layout, vm.def.name), transport: o.incoming }) : undefined;
  return {
    incoming,
    handlers: (persisted) => migrationHandlers({ vm, source, incoming, persisted }),
    recover: () => source.recover(),
    tidied: () => source.tidied(),
    onEvent: (event) => wakeups.onEvent(event),
    forgetIfGone: async (stateFile) => {
      // Kept while --undefine-source is owed: it is what tells the next virtqemud to remove the definition.
      const gone = (vm.state === 'shutoff' && vm.reason === 'migrated' && !source.owesUndefine()) || (incoming !== undefined && !incoming.ran);
      if (gone) await rm(stateFile, { force: true }).catch(() => undefined);
    },
  };
}

/** What `incoming` needs to become a start step. */
export interface IncomingStartDeps { vm: Vm; clock: Clock; monitorSocket: string; migration: ShimMigration | undefined }

/**
 * The start step of a VM that gets its state from `incoming` (none: it boots): a checked save
 * image, or the listener of an incoming migration, which leases no disk until switchover.
 */
export async function incomingStart(incoming: IncomingState | undefined, d: IncomingStartDeps): Promise<IncomingStart | undefined> {
  if (incoming === undefined) return undefined;
  if (incoming.kind === 'image') return restoreStep(incoming.file, d.vm, d.clock);
  const listener = d.migration?.incoming;
  if (listener === undefined) throw new VirtqError('INTERNAL', `VM "${d.vm.def.name}" was started for a migration without its incoming side`);
  const atSpawn = listener.spawnListening();
  const spawned = atSpawn === undefined ? {} : { uri: () => atSpawn.uri, qemuArgs: atSpawn.qemuArgs };
  return { leasesDisks: false, reason: INCOMING_REASON, ...spawned, load: () => listener.listen() };
}

/**
 * How long a source shim waits for its virtqemud to remove the definition of a VM that migrated
 * away (--undefine-source), and for the destination to store it (--persistent). Killed or
 * restarting meanwhile, virtqemud is back within seconds under systemd (or the chaos world); a
 * definition left here would list the VM on two hosts.
 */
const MOVE_DEFINITION_WAIT_MS = 30_000;

/**
 * Undefines `name` on this host's virtqemud, asking again while it is down or restarting
 * (askVirtqemud) until `waitMs`. A definition already gone (NO_DOMAIN: an undefine that landed
 * before its reply was lost) is the wanted end.
 */
export async function undefineHere(socket: string, name: string, clock: Clock, waitMs = MOVE_DEFINITION_WAIT_MS): Promise<void> {
  await askVirtqemud(socket, clock, waitMs, (api) => api.undefine({ name })).catch((err: unknown) => {
    if (VirtqError.from(err).code !== 'NO_DOMAIN') throw err;
  });
}
