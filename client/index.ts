// The virtq client library, the package's main export: `connect(uri)` to virtqemud, to one VM's
// shim or to embedded shims, typed methods derived from the procedure catalogue, events, the
// console; typed clients of the storage, secret and host-device daemons. Also re-exports the schemas and types an application needs to use the results.
export { connect, connectAdmin, resolveDefaultUri, type ConnectOptions, type AdminConnection } from './connect.js';
export {
  Connection,
  type DomainHandle, type DomainMethods, type DomainProcedure, type PeerKind, type StreamProcedure, type VirtqMethods, type VirtqProcs,
} from './connection.js';
export { defaultShimCommand } from './embed.js';
export { connectDaemon, uriForProgram, type DaemonConnection, type DaemonConnectOptions } from './daemon-connection.js';
export { StorageClient, connectStorage, type JobControl } from './storage-client.js';
export { sendUpload, receiveDownload, type TransferControl, type TransferStream, type UploadSource } from './volume-transfer.js';
export { SecretClient, connectSecret } from './secret-client.js';
export { NodeDevClient, connectNodeDev } from './nodedev-client.js';
export { NetworkClient, connectNetwork } from './network-client.js';
export {
  VirtqError, errorCatalogue, isErrorCode, ByteStream, parseUri, defaultUri, virtqProgram, adminProgram,
  Definition, DiskSpec, DomainRow, DomainState, StateResult, LifecycleEvent, LifecycleEventKind, normalizeDefinition, definitionValidator,
  type ErrorCode, type WireError, type CallOptions, type Target, type TypedClient, type ArgsOf, type RetOf,
  type VirtqProgram, type AdminProgram, type NormalizedDefinition,
  // Each is a schema and the type of what it validates.
  DomainInfo, BlockStat, ListFilter, ServerInfo, ClientRow, Limits,
  storageProgram, secretProgram, PoolDefinition, PoolRow, VolumeRow, JobProgress, SecretDefinition, SecretRow, SecretUsage,
  type StorageProgram, type SecretProgram, type DaemonName,
  networkProgram, NetworkDefinition, NetworkRow, PortRow, LeaseRow, NetworkEvent, InterfaceAddresses, type NetworkProgram,
} from '../protocol/index.js';
export { nodedevProgram, NodeDeviceCap, NodeDeviceRow, NodeDevice, NodeDeviceEvent, type NodedevProgram } from '../protocol/index.js';
export { convertLibvirtXml, type LibvirtConvertOptions, type LibvirtConversion } from './libvirt/domain.js';
export type { LeftOut } from './libvirt/xml-tree.js';
