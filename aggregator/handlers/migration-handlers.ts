// The destination side of a live migration on virtqemud: `migratePrepare` claims the VM's name and
// UUID here first (NAME_IN_USE when another VM has the name), then starts a shim whose QEMU waits
// for the incoming stream, and answers where it listens. From then on the source shim speaks to
// that shim through the per-VM procedures this daemon forwards by name. In an etcd fleet the
// VM's cluster-wide claim stays its source host's until `migrateSwitchover` moves it here, just
// before the guest runs here (aggregator/cluster/claim-transfer.ts).
import { VirtqError, migrationSocket, normalizeDefinition, randomUuid, virtqProgram, type Fallback, type Handlers, type StateResult, type VirtqProgram } from '../../protocol/index.js';
import { isActive } from '../registry.js';
import { startShim, type HostDeps } from './host-handlers.js';
import type { ShimPool } from '../shim-pool.js';

/**
 * How long after the switchover the destination's warm pool refills. In that time the source stops
 * its QEMU and answers its caller while the guest already runs here: a new Node process loading
 * then (a core's worth of CPU for a few hundred ms) competed with both on a two-core host.
 */
const REFILL_AFTER_SWITCHOVER_MS = 500;

/**
 * Builds the host handlers of migration. `shims` are the connections `forward` uses: the incoming
 * shim's is opened once it is ready, during the transfer, not by the first call forwarded to it
 * (the lease claim, inside the source's pause).
 */
export function migrationHostHandlers(d: HostDeps, forward: Fallback, shims?: Pick<ShimPool, 'warm'>): Handlers<VirtqProgram> {
  return {
    migratePrepare: async ({ definition, transport }) => {
      if (definition.uuid === undefined) throw new VirtqError('INVALID_ARG', 'invalid definition: /uuid: a migrating VM keeps its UUID, so the definition must carry it');
      const def = normalizeDefinition(definition, randomUuid);
      const existing = d.registry.get(def.name);
      let record;
      if (existing === undefined) {
        // Claimed before anything starts: the name is this migration's, or the call fails here.
        record = d.registry.claim({ name: def.name, uuid: def.uuid, persistent: false, autostart: false, definition: undefined, state: 'shutoff', reason: 'migrating' });
      } else if (existing.uuid !== def.uuid.toLowerCase()) {
        throw new VirtqError('NAME_IN_USE', `VM name "${def.name}" is already taken here by another VM (uuid ${existing.uuid})`, { details: { uuid: existing.uuid } });
      } else if (isActive(existing) || existing.starting) {
        throw new VirtqError('OPERATION_INVALID', `VM "${def.name}" is already ${existing.starting ? 'starting' : existing.state} here`);
      } else {
        // Its stored definition (a VM that once lived here) comes back to life by migration.
        record = existing;
      }
      let uri: string | undefined;
      try {
        // In a fleet: the claim held by the source host for this very VM stays there for now.
        await d.cluster?.expectIncoming(def.name, def.uuid);
        const domain = await startShim(d, record, def, true, { kind: 'migration', transport: transport ?? 'unix' }, (s) => { uri = s.incomingUri; });
        // The switchover's calls are the first forwarded to that shim: its connect (a wake-up of both
        // processes and of this one) happens now, while memory moves, not in the guest's pause.
        if (domain.shimSocket !== undefined) shims?.warm(domain.shimSocket, def.name);
        // Without a fleet nothing here must wait for the source's `completed`: the source may ask
        // for the switchover as soon as its QEMU sends the last state (decision 0018, session 15).
        return { uri: uri ?? `unix:${migrationSocket(d.layout, def.name)}`, domain, switchoverEarly: d.cluster === undefined, switchoverClaims: true };
      } catch (err) {
        if (existing === undefined && d.registry.get(def.name) === record && !record.starting && record.shim === undefined) d.registry.remove(record);
        throw err;
      }
    },
    migrateSwitchover: async ({ name, claim }, ctx) => {
      d.registry.require(name);
      // The guest is paused on both sides: the claim moves now or the migration fails with it at the source.
      await d.cluster?.takeIncoming(name);
      try {
        const res = await forward(virtqProgram, 'migrateIncomingFinish', claim === true ? { name, claim } : { name }, ctx) as StateResult;
        d.cluster?.settleIncoming(name);
        return res;
      } catch (err) {
        // Back to the source before the source rolls back (and before this record can go).
        await d.cluster?.returnIncoming(name).catch(() => undefined);
        throw err;
      } finally {
        // The transfer is over: the warm pool, left short while it ran (aggregator/spawner.ts), refills
        // once the source has had the time to finish too.
        d.spawner.warm?.(REFILL_AFTER_SWITCHOVER_MS);
      }
    },
  };
}
