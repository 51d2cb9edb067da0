// The source shim's connection to the destination virtqemud of a migration: prepare (claim the
// name, start the incoming shim), then the destination shim's steps, forwarded by name. Each call
// has its own deadline so a hung destination never holds the source's VM paused for long.
import { ACTIVE_STATES, RpcClient, VirtqError, delay, parseUri, typedClient, virtqProgram, type Clock, type MigrationTransport, type NormalizedDefinition, type TypedClient, type VirtqProgram } from '../protocol/index.js';
import { askVirtqemud } from './ask-virtqemud.js';

/** How long the destination gets to start its shim and QEMU. */
const PREPARE_TIMEOUT_MS = 60_000;
/** How long a switchover step on the destination may take (the source is paused meanwhile). */
const STEP_TIMEOUT_MS = 30_000;
/** How long a check that the destination still serves the VM may take before it counts as not answered. */
const CHECK_TIMEOUT_MS = 5_000;

/** What the source needs of the destination. */
export interface DestinationLink {
  /**
   * Claims the name and UUID there and starts the incoming QEMU; answers the stream's URI, whether
   * `finish` may be asked before the source completed (PrepareResult.switchoverEarly), and whether
   * `finish` can take the leases itself (PrepareResult.switchoverClaims).
   */
  prepare(def: NormalizedDefinition, transport: MigrationTransport): Promise<{ uri: string; early: boolean; claimsInFinish: boolean }>;
  /** The destination leases the disks (the source has released them). */
  claim(name: string): Promise<void>;
  /** The destination (with `claim`: leases the disks, then) waits for the last state and runs the guest (as soon as it is loaded). */
  finish(name: string, claim?: boolean): Promise<void>;
  /** The destination stops its QEMU and lets the name go; resolves once its leases are free. */
  abort(name: string): Promise<void>;
  /**
   * After an abort the destination could not do itself (its shim was gone): waits until its
   * virtqemud sees that VM `uuid` stopped, then forgets it there, so the name is free again.
   */
  forget(name: string, uuid: string, waitMs: number): Promise<void>;
  /**
   * Why the destination can no longer take the VM `uuid` (its shim gone, the VM gone there, its
   * virtqemud unreachable), or undefined while it can. A slow or failed answer of another kind is
   * no loss: the next check asks again.
   */
  lost(name: string, uuid: string): Promise<VirtqError | undefined>;
  /**
   * Stores the definition there (--persistent), after the guest runs there: asked again, on a
   * fresh connection, while that virtqemud restarts or its host's fleet lease has lapsed.
   */
  define(def: NormalizedDefinition): Promise<void>;
  close(): void;
}

/** Connects to the virtqemud that `destUri` names; `defineWaitMs` bounds `define`'s tries. */
export async function connectDestination(destUri: string, clock: Clock, defineWaitMs: number): Promise<DestinationLink> {
  const target = parseUri(destUri);
  if (target.kind !== 'daemon' || target.daemon !== 'virtqemud' || target.readOnly) {
    throw new VirtqError('INVALID_ARG', `the destination must be a virtqemud read-write URI (qemu:///system, qemu:///system?root=DIR), not ${destUri}`);
  }
  const rpc = await RpcClient.connect(target.socket, { clock, defaultTimeoutMs: STEP_TIMEOUT_MS }).catch((err: unknown) => {
    throw new VirtqError('NO_CONNECT', `cannot reach the destination virtqemud at ${target.socket}: ${VirtqError.from(err).message}`, { cause: err });
  });
  const api: TypedClient<VirtqProgram> = typedClient(virtqProgram, rpc);
  return {
    prepare: async (definition, transport) => {
      const r = await api.migratePrepare({ definition, transport }, { timeoutMs: PREPARE_TIMEOUT_MS });
      return { uri: r.uri, early: r.switchoverEarly === true, claimsInFinish: r.switchoverClaims === true };
    },
    claim: async (name) => { await api.migrateIncomingClaim({ name }); },
    // Through the destination virtqemud: in a fleet it moves the VM's claim before the guest runs there.
    finish: async (name, claim) => { await api.migrateSwitchover(claim === true ? { name, claim } : { name }); },
    abort: async (name) => { await api.migrateIncomingAbort({ name }); },
    forget: async (name, uuid, waitMs) => {
      const end = clock.monotonic() + waitMs;
      for (;;) {
        const row = await api.lookupByName({ name }).catch((err: unknown) => {
          if (VirtqError.from(err).code === 'NO_DOMAIN') return undefined;
          throw err;
        });
        if (row === undefined || row.uuid !== uuid.toLowerCase()) return;
        if (!ACTIVE_STATES.has(row.state)) {
          if (!row.persistent) await api.undefine({ name });
          return;
        }
        if (clock.monotonic() > end) throw new VirtqError('TIMEOUT', `the destination still lists VM "${name}" as ${row.state} after ${waitMs} ms`);
        await delay(clock, 100);
      }
    },
    lost: async (name, uuid) => {
      try {
        const row = await api.lookupByName({ name }, { timeoutMs: CHECK_TIMEOUT_MS });
        if (row.uuid !== uuid.toLowerCase()) return new VirtqError('NO_DOMAIN', `the destination no longer has the incoming VM "${name}" (it lists another VM of that name)`);
        if (!row.shimUp) return new VirtqError('SHIM_UNAVAILABLE', `the destination's shim for VM "${name}" is gone: nothing there can take the guest over`);
        return undefined;
      } catch (err) {
        const e = VirtqError.from(err);
        if (e.code === 'NO_DOMAIN') return new VirtqError('NO_DOMAIN', `the destination no longer has the incoming VM "${name}"`, { cause: err });
        if (e.code === 'CONNECTION_CLOSED') return new VirtqError('CONNECTION_CLOSED', `lost the destination virtqemud at ${target.socket}: ${e.message}`, { cause: err });
        return undefined;
      }
    },
    define: async (definition) => { await askVirtqemud(target.socket, clock, defineWaitMs, (a) => a.define({ definition })); },
    close: () => rpc.close(),
  };
}
