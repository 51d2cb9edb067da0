// The error catalogue: every code virtq puts on the wire, with its meaning. Codes are stable
// strings: never renamed, never reused. Foreign errors (errno, QMP classes) are mapped to one
// of these where they are first seen; docs/protocol.md is generated from this table.

/** One entry of the error catalogue. */
export interface ErrorSpec {
  /** What the code means for the person reading it. */
  readonly description: string;
  /** The virtq version that introduced the code. */
  readonly since: string;
}

/** Every error code virtq emits, with its documentation. Append only. */
export const errorCatalogue = {
  INTERNAL: { description: 'An unexpected failure inside virtq; the daemon log has the details.', since: '0.1' },
  INVALID_ARG: { description: 'An argument or definition failed validation; the message names the field path.', since: '0.1' },
  NO_DOMAIN: { description: 'No VM with that name or UUID is known here.', since: '0.1' },
  NAME_IN_USE: { description: 'The name is already held by another VM (defined or running).', since: '0.1' },
  UUID_IN_USE: { description: 'The UUID is already held by another VM (defined or running).', since: '0.1' },
  OPERATION_INVALID: { description: 'The operation is not allowed in the VM\'s current state; the message names the state.', since: '0.1' },
  OPERATION_FAILED: { description: 'The operation was attempted and failed (for example QEMU exited while starting).', since: '0.1' },
  PERMISSION_DENIED: { description: 'The connection may not call this procedure (a write on a read-only socket).', since: '0.1' },
  TIMEOUT: { description: 'The operation did not finish before its deadline.', since: '0.1' },
  LOCK_CONFLICT: { description: 'A disk lease is held by another VM; the message names the holder.', since: '0.1' },
  LOCK_MANAGER_UNAVAILABLE: { description: 'The configured lock manager failed to load or its version check; no VM may start.', since: '0.1' },
  QMP_ERROR: { description: 'QEMU\'s monitor answered a command with an error; details carry the QMP error class.', since: '0.1' },
  NOT_SUPPORTED: { description: 'This server or driver does not implement the requested procedure or feature.', since: '0.1' },
  UNKNOWN_PROGRAM: { description: 'The message names a program this server does not serve.', since: '0.1' },
  UNKNOWN_PROCEDURE: { description: 'The message names a procedure the program does not have.', since: '0.1' },
  FRAME_TOO_LARGE: { description: 'A frame exceeded the maximum size; the connection is closed.', since: '0.1' },
  MALFORMED_FRAME: { description: 'A frame could not be decoded as CBOR; the connection is closed.', since: '0.1' },
  MALFORMED_MESSAGE: { description: 'A decoded frame is not a valid message header.', since: '0.1' },
  FRAME_TIMEOUT: { description: 'A partial frame was not completed in time; the connection is closed.', since: '0.1' },
  TOO_MANY_CLIENTS: { description: 'The server already has its maximum number of clients; try again later.', since: '0.1' },
  TOO_MANY_CALLS: { description: 'This connection already has the maximum number of calls in flight.', since: '0.1' },
  CONNECTION_CLOSED: { description: 'The connection closed before the reply arrived.', since: '0.1' },
  NO_CONNECT: { description: 'No server answers at the socket; the message names the socket tried.', since: '0.1' },
  SOCKET_IN_USE: { description: 'A live process already serves this socket; a second instance refuses to start.', since: '0.1' },
  SHIM_UNAVAILABLE: { description: 'The VM\'s shim is not reachable (lost or not yet re-attached); the VM itself may still run.', since: '0.1' },
  CLIENT_TOO_SLOW: { description: 'The client left too many pushed events or stream bytes unread; the server dropped the connection (reconnect and read, or subscribe less).', since: '0.1' },
  WRONG_DAEMON: { description: 'The program is served by another daemon; the message names that daemon and its URI.', since: '0.2' },
  NO_STORAGE_POOL: { description: 'No storage pool with that name is defined (or it is not started, when the message says so).', since: '0.2' },
  NO_STORAGE_VOL: { description: 'No volume with that name in the pool.', since: '0.2' },
  NO_SECRET: { description: 'No secret with that UUID (or usage) is defined.', since: '0.2' },
  NO_NETWORK: { description: 'No network with that name is defined (or it is not started, when the message says so).', since: '0.2' },
  NO_NETWORK_PORT: { description: 'No network port with that id on the network.', since: '0.2' },
  NO_NODE_DEVICE: { description: 'No host device with that name.', since: '0.2' },
  ALREADY_EXISTS: { description: 'An object of that kind with that name or UUID already exists (a pool, volume, secret, network or port); the message names it.', since: '0.2' },
  IN_USE: { description: 'The object is in use by something that depends on it (a running VM, a network port, a volume); the message names the user.', since: '0.2' },
  NO_SPACE: { description: 'The filesystem ran out of space; nothing was left half-written under the final name.', since: '0.2' },
  OPERATION_ABORTED: { description: 'The operation was cancelled (by its client, or because its client went away) and rolled back.', since: '0.2' },
  INVALID_SAVE_IMAGE: { description: 'The file is not a usable virtq save image (truncated, unfinished, corrupt, foreign or of another format version); details.reason says which. Nothing was started.', since: '0.3' },
  NO_DOMAIN_SNAPSHOT: { description: 'The VM has no snapshot with that name.', since: '0.3' },
  CLUSTER_UNAVAILABLE: { description: 'This host of an etcd fleet has lost etcd or its host lease: running VMs keep running, but VMs are not defined, created or started until the lease is back (the message says since when).', since: '0.3' },
} as const satisfies Record<string, ErrorSpec>;

/** A stable error code. */
export type ErrorCode = keyof typeof errorCatalogue;

/** The error shape carried in a reply's body. */
export interface WireError {
  code: ErrorCode;
  message: string;
  details?: Record<string, unknown>;
}

/** True when `code` is a code of the catalogue. */
export function isErrorCode(code: unknown): code is ErrorCode {
  return typeof code === 'string' && Object.hasOwn(errorCatalogue, code);
}

/** The one error class that crosses module boundaries in virtq. */
export class VirtqError extends Error {
  override readonly name = 'VirtqError';
  readonly code: ErrorCode;
  readonly details: Record<string, unknown> | undefined;

  constructor(code: ErrorCode, message: string, options: { details?: Record<string, unknown>; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.details = options.details;
  }

  /** The value sent on the wire. */
  toWire(): WireError {
    return this.details === undefined
      ? { code: this.code, message: this.message }
      : { code: this.code, message: this.message, details: this.details };
  }

  /** Rebuilds an error received on the wire; unknown codes become INTERNAL, keeping the text. */
  static fromWire(value: unknown): VirtqError {
    if (typeof value !== 'object' || value === null) return new VirtqError('INTERNAL', `malformed error value: ${String(value)}`);
    const v = value as { code?: unknown; message?: unknown; details?: unknown };
    const message = typeof v.message === 'string' ? v.message : 'no message';
    const details = typeof v.details === 'object' && v.details !== null ? (v.details as Record<string, unknown>) : undefined;
    if (!isErrorCode(v.code)) return new VirtqError('INTERNAL', `${String(v.code)}: ${message}`, { details });
    return new VirtqError(v.code, message, { details });
  }

  /** Wraps anything thrown into a VirtqError; non-virtq errors become INTERNAL. */
  static from(err: unknown): VirtqError {
    if (err instanceof VirtqError) return err;
    const message = err instanceof Error ? err.message : String(err);
    return new VirtqError('INTERNAL', message, { cause: err });
  }
}
