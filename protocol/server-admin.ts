// The admin procedures every RpcServer answers itself: server info, the client list,
// disconnecting a client and the limits. Log filters and outputs belong to the daemon, which
// registers its own handlers for them.
import { adminProgram } from './admin-program.js';
import { VirtqError } from './errors.js';
import type { Limits } from './admin-program.js';
import type { Handlers } from './handlers.js';
import type { ServerClient } from './server-client.js';

/** What the admin handlers see of the server they describe. */
export interface AdminSurface {
  readonly limits: Limits;
  clients(): ServerClient[];
  client(id: number): ServerClient | undefined;
  uptimeSec(): number;
}

/** Who the server is, for serverInfo. */
export interface AdminIdentity {
  daemon: string;
  version: string;
  info?: () => Record<string, unknown>;
}

/** Builds the server-level admin handlers for `server`. */
export function serverAdminHandlers(server: AdminSurface, opts: AdminIdentity): { program: typeof adminProgram; handlers: Handlers<typeof adminProgram> } {
  const inFlight = () => server.clients().reduce((n, c) => n + c.inFlight, 0);
  return {
    program: adminProgram,
    handlers: {
      serverInfo: () => ({
        daemon: opts.daemon, version: opts.version, pid: process.pid, uptimeSec: server.uptimeSec(),
        clients: server.clients().length, inFlight: inFlight(), limits: { ...server.limits },
        ...(opts.info === undefined ? {} : { details: opts.info() }),
      }),
      listClients: () => ({
        clients: server.clients().map((c) => ({ id: c.id, socket: c.access, connectedAt: c.connectedAt, calls: c.calls, inFlight: c.inFlight })),
      }),
      disconnectClient: ({ id }) => {
        const c = server.client(id);
        if (c === undefined) throw new VirtqError('INVALID_ARG', `no client with id ${id}`);
        c.conn.close();
        return {};
      },
      getLimits: () => ({ ...server.limits }),
      setLimits: (changes) => {
        Object.assign(server.limits, changes);
        return { ...server.limits };
      },
    },
  };
}
