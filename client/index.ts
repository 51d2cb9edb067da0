// The virtq client library, the package's main export: `connect(uri)` to virtqemud, to one VM's
// shim or to embedded shims, typed methods derived from the procedure catalogue, events, the
// console. Also re-exports the schemas and types an application needs to use the results.
import type { Static } from '@sinclair/typebox';
import * as protocol from '../protocol/index.js';

export { connect, connectAdmin, resolveDefaultUri, type ConnectOptions, type AdminConnection } from './connect.js';
export {
  Connection,
  type DomainHandle, type DomainMethods, type DomainProcedure, type PeerKind, type StreamProcedure, type VirtqMethods, type VirtqProcs,
} from './connection.js';
export { defaultShimCommand } from './embed.js';
export {
  VirtqError, errorCatalogue, isErrorCode, ByteStream, parseUri, defaultUri, virtqProgram, adminProgram,
  Definition, DiskSpec, DomainRow, DomainState, StateResult, LifecycleEvent, LifecycleEventKind, normalizeDefinition, definitionValidator,
  type ErrorCode, type WireError, type CallOptions, type Target, type TypedClient, type ArgsOf, type RetOf,
  type VirtqProgram, type AdminProgram, type NormalizedDefinition,
} from '../protocol/index.js';

/** Schema of `getInfo`'s result. */
export const DomainInfo = protocol.DomainInfo;
/** `getInfo`'s result: state, vCPUs, memory, CPU time, pids, uptime, taint. */
export type DomainInfo = Static<typeof DomainInfo>;
/** Schema of one row of `blockStats`. */
export const BlockStat = protocol.BlockStat;
/** Read and write counters of one disk. */
export type BlockStat = Static<typeof BlockStat>;
/** Schema of `listDomains`' filter. */
export const ListFilter = protocol.ListFilter;
/** Which VMs `listDomains` returns; no field set means every VM. */
export type ListFilter = Static<typeof ListFilter>;
/** Schema of admin `serverInfo`'s result. */
export const ServerInfo = protocol.ServerInfo;
/** A daemon's version, uptime, counts and limits. */
export type ServerInfo = Static<typeof ServerInfo>;
/** Schema of one connected client in admin `listClients`. */
export const ClientRow = protocol.ClientRow;
/** One client connected to a daemon. */
export type ClientRow = Static<typeof ClientRow>;
/** Schema of a daemon's limits. */
export const Limits = protocol.Limits;
/** A daemon's limits on clients, calls in flight and workers. */
export type Limits = Static<typeof Limits>;
