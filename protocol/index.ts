// The public surface of the protocol package: what the shim, virtqemud, the CLI and management
// applications import. Nothing else in protocol/ is imported from outside.
export * from './errors.js';
export * from './clock.js';
export * from './logger.js';
export * from './definition.js';
export * from './schema.js';
export * from './types.js';
export * from './catalogue.js';
export { vmProcs, DomainInfo, BlockStat, InterfaceAddresses } from './vm-program.js';
export { SnapshotInfo, saveVmProcs, saveHostProcs } from './save-program.js';
export { virtqProgram, ListFilter, type VirtqProgram } from './host-program.js';
export { migrationSocket, UNDEFINE_SOURCE_NOTE, JobInfo, MigrationTransport, type MigrateArgs, type MigrateResult, type PrepareResult } from './migration-procs.js';
export { registryProgram, Registration, ShimVmInfo, type RegistryProgram } from './registry-program.js';
export { adminProgram, Limits, ClientRow, ServerInfo, MetricFamily, type AdminProgram } from './admin-program.js';
export { DEFAULT_MAX_FRAME_BYTES, FrameDecoder, encodeFrame } from './framing.js';
export { createCodec, type Codec } from './codec.js';
export { checkCborLimits, DEFAULT_CALL_LIMITS, type CborLimits } from './cbor-limits.js';
export { parseMessage, type Message, type MessageType, type MessageStatus } from './message.js';
export { FramedConnection, type ByteChannel } from './connection.js';
export { RpcClient, type PushedEvent, type RpcClientOptions } from './client.js';
export { typedClient, type Caller, type StreamProcs, type TypedClient, type CallOptions } from './typed-client.js';
export { ByteStream } from './byte-stream.js';
export { EventQueue } from './event-queue.js';
export { RpcServer, ServerClient, RO_MAX_FRAME_BYTES, PARTIAL_FRAME_BUDGET_BYTES, type Access, type Peer, type CallContext, type Handler, type Handlers, type Fallback, type RpcServerOptions, type ServerLimits } from './server.js';
export { TlsListener, loadTlsMaterial, nodeTls, subjectDn, type TlsFiles, type TlsListenerOptions } from './tls-listener.js';
export { listenUnix, listenInherited, unlinkIfOurs, isLive, MAX_SOCKET_PATH, type BoundSocket } from './unix-listener.js';
export * from './paths.js';
export { nodeCrypto, randomUuid, sha256, sha256Hex, tempSuffix } from './node-crypto.js';
export * from './uri.js';
export * from './uri-tls.js';
export { MAX_UNREAD_PUSH_BYTES } from './server-client.js';
export { DAEMONS, DAEMON_NAMES, daemonServing, daemonForScheme, type DaemonName, type DaemonSpec } from './services.js';
export { storageProgram, PoolName, VolumeName, VolumeFormat, JobId, PoolDefinition, PoolRow, VolumeRow, JobProgress, type StorageProgram } from './storage-program.js';
export { secretProgram, SecretUuid, SecretUsage, SecretDefinition, SecretRow, type SecretProgram } from './secret-program.js';
export {
  nodedevProgram, NodeDeviceCap, NodeDeviceName, NodeDeviceRow, NodeDevice, NodeDeviceEvent,
  PciDeviceRow, UsbDeviceRow, NetDeviceRow, BlockDeviceRow, PciDevice, UsbDevice, NetDevice, BlockDevice, type NodedevProgram,
} from './nodedev-program.js';
export { networkProgram, NetworkName, PortId, Mac, NetworkIpv4, NetworkDefinition, NetworkRow, PortRow, LeaseRow, NetworkEvent, type NetworkProgram } from './network-program.js';
export { PROCEDURE_CLASSES, procedureClasses, type ProcedureClass } from './acl-classes.js';
export { AclFile, AclMatch, AclRule, AclRules, describeIdentity, identityOf, isPerVmFiltered, vmOfCall, type AclCall, type AclDecision, type AclIdentity } from './acl-rules.js';
export { AclPolicy, type AccessPolicy, type Denial } from './acl-policy.js';

export * from './journal-types.js';
export { IncomingState, StartRequest, parseStartRequest, startRequestText } from './incoming.js';
