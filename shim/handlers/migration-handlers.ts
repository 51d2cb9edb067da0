// The shim's handlers for the migration procedures: `migrate`, `getJobInfo` and `abortJob` on the
// source (the last two also for another job that reports progress), the `migrateIncoming*` steps on a destination shim (started with --incoming).
import { VirtqError, type Handlers, type VirtqProgram } from '../../protocol/index.js';
import type { Vm } from '../vm/vm.js';
import type { MigrationSource } from '../vm/migration-source.js';
import type { MigrationIncoming } from '../vm/migration-incoming.js';

/** What the migration handlers need. */
export interface MigrationHandlerDeps {
  vm: Vm;
  source: MigrationSource;
  /** Present in a shim started for an incoming migration. */
  incoming: MigrationIncoming | undefined;
  persisted(): Promise<void>;
}

/** Builds the handlers. */
export function migrationHandlers(d: MigrationHandlerDeps): Handlers<VirtqProgram> {
  const { vm } = d;
  const mine = (name: string): void => {
    if (name !== vm.def.name) throw new VirtqError('NO_DOMAIN', `this shim runs VM "${vm.def.name}", not "${name}"`);
  };
  const stateResult = async () => { await d.persisted(); return { state: vm.state, reason: vm.reason }; };
  const incoming = (): MigrationIncoming => {
    if (d.incoming === undefined) throw new VirtqError('OPERATION_INVALID', `VM "${vm.def.name}" was not started for an incoming migration`);
    return d.incoming;
  };
  return {
    migrate: async (args) => {
      mine(args.name);
      if (d.incoming?.waiting === true) throw new VirtqError('OPERATION_INVALID', `VM "${vm.def.name}" is itself waiting for an incoming migration`);
      const result = await d.source.migrate(args, d.persisted);
      await d.persisted();
      return result;
    },
    // A job that reports progress itself (a snapshot delete's block-commit) answers first.
    getJobInfo: async ({ name }) => { mine(name); return vm.jobs.progress?.info() ?? d.source.jobInfo(); },
    abortJob: async ({ name }) => {
      mine(name);
      const job = vm.jobs.progress;
      await (job === undefined ? d.source.abort() : job.abort());
      return stateResult();
    },
    // Answered without waiting for the journal's fsync and virtqemud's ack of the lease event: the
    // source's guest is paused until this answer, and the claim changes no state (paused,
    // incoming-migration) a successor must find; the lease itself is the lock manager's, recorded
    // before claim() resolves. The event is durable before the guest runs here: finish waits for it.
    migrateIncomingClaim: async ({ name }) => { mine(name); await incoming().claim(); return { state: vm.state, reason: vm.reason }; },
    migrateIncomingFinish: async ({ name, claim }) => { mine(name); await incoming().finish(claim === true ? { claim } : {}); return stateResult(); },
    migrateIncomingAbort: async ({ name }) => { mine(name); await incoming().abort(); return stateResult(); },
  };
}
