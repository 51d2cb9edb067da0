// The `admin` program: the same procedures on every daemon (virtqemud, each shim, the secondary daemons), served on
// the admin socket only. Server-level procedures are answered by the RPC server itself.
import { Type, type Static } from '@sinclair/typebox';
import { defineProgram, proc } from './catalogue.js';
import { Empty } from './types.js';

/** Every daemon serves the admin program (callShims excepted). */
const both = ['shim', 'aggregator', 'storage', 'secret', 'network', 'nodedev'] as const;
const aggregator = ['aggregator'] as const;
const daemons = ['aggregator', 'storage', 'secret', 'network', 'nodedev'] as const;

/** A daemon's limits on clients, calls in flight and workers. */
export const Limits = Type.Object({
  maxClients: Type.Integer({ minimum: 1, maximum: 1_000_000 }),
  maxInflightPerClient: Type.Integer({ minimum: 1, maximum: 1_000_000 }),
  /** How many long operations run at once: shim starts on virtqemud, volume jobs on virtstoraged (a shim's VM runs one job at a time regardless). */
  workerConcurrency: Type.Integer({ minimum: 1, maximum: 1024 }),
});

/** One client connected to a daemon. */
export const ClientRow = Type.Object({
  id: Type.Integer(),
  socket: Type.Union([Type.Literal('rw'), Type.Literal('ro'), Type.Literal('admin')]),
  connectedAt: Type.Number(),
  calls: Type.Integer(),
  inFlight: Type.Integer(),
});

/** A daemon's version, uptime, counts and limits. */
export const ServerInfo = Type.Object({
  daemon: Type.String(),
  version: Type.String(),
  pid: Type.Integer(),
  uptimeSec: Type.Number(),
  clients: Type.Integer(),
  inFlight: Type.Integer(),
  limits: Limits,
  details: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
});

/** One metric family, as prom-client's getMetricsAsJSON gives it. */
export const MetricFamily = Type.Object({
  name: Type.String(),
  help: Type.String(),
  type: Type.String(),
  values: Type.Array(Type.Object({
    labels: Type.Record(Type.String(), Type.Union([Type.String(), Type.Number()])),
    value: Type.Number(),
    metricName: Type.Optional(Type.String()),
  })),
});

/** What one shim upgrade did (decision 0021). */
export const ShimUpgrade = Type.Object({
  name: Type.String(),
  oldPid: Type.Integer(),
  newPid: Type.Integer(),
  /** Milliseconds during which nobody read QEMU's monitor and console (its output waited in the kernel). */
  cutoverMs: Type.Number(),
});

export const adminProgram = defineProgram('admin', 'Runtime administration of any virtq daemon (admin socket only).', {
  serverInfo: proc({ args: Empty, ret: ServerInfo, servers: both, readonly: true, since: '0.1', cli: 'server-info',
    description: 'Version, uptime, client and in-flight counts, limits.' }),
  listClients: proc({ args: Empty, ret: Type.Object({ clients: Type.Array(ClientRow) }), servers: both, readonly: true, since: '0.1', cli: 'client-list',
    description: 'The connected clients.' }),
  disconnectClient: proc({ args: Type.Object({ id: Type.Integer() }, { additionalProperties: false }), ret: Empty, servers: both, readonly: false, since: '0.1', cli: 'client-disconnect',
    description: 'Closes one client\'s connection.' }),
  getLimits: proc({ args: Empty, ret: Limits, servers: both, readonly: true, since: '0.1',
    description: 'The server\'s limits.' }),
  setLimits: proc({ args: Type.Partial(Limits, { additionalProperties: false }), ret: Limits, servers: both, readonly: false, since: '0.1', cli: 'limits',
    description: 'Changes limits at run time; returns the new limits.' }),
  getLogFilters: proc({ args: Empty, ret: Type.Object({ filters: Type.String() }), servers: both, readonly: true, since: '0.1',
    description: 'The per-module log filters, e.g. "debug:qemu.qmp warn:rpc".' }),
  setLogFilters: proc({ args: Type.Object({ filters: Type.String({ maxLength: 4096 }) }, { additionalProperties: false }), ret: Empty, servers: both, readonly: false, since: '0.1', cli: 'log-filters',
    description: 'Replaces the per-module log filters at run time.' }),
  getLogOutputs: proc({ args: Empty, ret: Type.Object({ outputs: Type.String() }), servers: both, readonly: true, since: '0.1',
    description: 'Where logs go, e.g. "stderr file:/var/log/virtq/virtqemud.log".' }),
  setLogOutputs: proc({ args: Type.Object({ outputs: Type.String({ maxLength: 4096 }) }, { additionalProperties: false }), ret: Empty, servers: both, readonly: false, since: '0.1', cli: 'log-outputs',
    description: 'Replaces the log outputs at run time.' }),
  getMetrics: proc({ args: Empty, ret: Type.Object({ families: Type.Array(MetricFamily) }), servers: both, readonly: true, since: '0.1',
    description: 'The daemon\'s own metrics (a shim\'s carry its VM\'s domain and uuid labels); virtqemud merges every shim\'s into /metrics.' }),
  callShims: proc({
    args: Type.Object({ procedure: Type.String({ pattern: '^[A-Za-z]{1,64}$' }), args: Type.Optional(Type.Record(Type.String(), Type.Unknown())) }, { additionalProperties: false }),
    ret: Type.Object({ results: Type.Array(Type.Object({ name: Type.String(), ok: Type.Boolean(), result: Type.Optional(Type.Unknown()), error: Type.Optional(Type.Object({ code: Type.String(), message: Type.String() })) })) }),
    servers: aggregator, readonly: false, since: '0.1', cli: 'all-shims',
    description: 'Runs one admin procedure on every running VM\'s shim (e.g. setLogFilters host-wide); one result per shim.' }),
  reloadTls: proc({ args: Empty, ret: Type.Object({ cert: Type.String(), key: Type.String(), ca: Type.String() }), servers: daemons, readonly: false, since: '0.3', cli: 'tls-reload',
    description: 'Re-reads the TLS certificate, key and CA for new handshakes; connected clients stay. Bad files keep the old ones.' }),
  reloadConfig: proc({ args: Empty, ret: Type.Object({ file: Type.String(), rules: Type.Integer() }), servers: daemons, readonly: false, since: '0.3', cli: 'config-reload',
    description: 'Re-reads the access-rules file; a syntax error (with line and column), a bad rule or a lock-out of the admin keeps the old rules.' }),
  getConfig: proc({ args: Type.Object({ key: Type.Optional(Type.String({ maxLength: 128 })) }, { additionalProperties: false }), ret: Type.Object({ values: Type.Record(Type.String(), Type.Unknown()) }),
    servers: daemons, readonly: true, since: '0.3', cli: 'config-get',
    description: 'One runtime setting by key (log.filters, limits.maxClients, tls.cert, acl.file, ...), or all of them.' }),
  setConfig: proc({ args: Type.Object({ key: Type.String({ maxLength: 128 }), value: Type.String({ maxLength: 4096 }) }, { additionalProperties: false }), ret: Type.Object({ key: Type.String(), value: Type.Unknown() }),
    servers: daemons, readonly: false, since: '0.3', cli: 'config-set',
    description: 'Changes one runtime setting; an unknown key is refused with the list of known ones.' }),
  upgrade: proc({ args: Empty, ret: ShimUpgrade, servers: ['shim'], readonly: false, since: '0.2',
    description: 'Re-executes this shim from the binary on disk, handing its sockets and QEMU connections to the successor (the VM never stops; leases stay with QEMU); clients see a clean close and reconnect. A successor that fails leaves this shim serving (OPERATION_FAILED, details.rolledBack). Also SIGUSR2.' }),
  upgradeShims: proc({
    args: Type.Object({
      name: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9_+][A-Za-z0-9._+-]{0,63}$' })),
      all: Type.Optional(Type.Boolean()),
      parallel: Type.Optional(Type.Integer({ minimum: 1, maximum: 16 })),
      timeoutSec: Type.Optional(Type.Integer({ minimum: 1, maximum: 3600 })),
    }, { additionalProperties: false }),
    ret: Type.Object({ results: Type.Array(Type.Object({
      name: Type.String(), ok: Type.Boolean(), result: Type.Optional(ShimUpgrade), error: Type.Optional(Type.Object({ code: Type.String(), message: Type.String() })),
    })) }),
    servers: aggregator, readonly: false, since: '0.2', cli: 'upgrade',
    description: 'Upgrades one VM\'s shim (name) or every running VM\'s (all), a few at a time (parallel, default 2), each within timeoutSec (default 120); one result per shim, a failed one still serving.' }),
}, {}, ['admin']);
export type AdminProgram = typeof adminProgram;

// Each schema above is also the name of the type it validates.
export type Limits = Static<typeof Limits>;
export type ClientRow = Static<typeof ClientRow>;
export type ServerInfo = Static<typeof ServerInfo>;
