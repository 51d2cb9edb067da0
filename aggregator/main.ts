// virtqemud: the host's aggregator daemon. The only file that touches process.*: parses argv,
// starts the daemon, prints one JSON line when it serves, and stops cleanly on SIGTERM/SIGINT
// (shims and VMs keep running).
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { daemonSockets, VirtqError } from '../protocol/index.js';
import { composeDaemon, type DaemonOptions } from './compose.js';

const VERSION = '0.1.0';
const USAGE = `usage: virtqemud [--root DIR | --system | --session] [--log-filters F] [--log-stderr]

Serves the host's VMs: registers their shims, keeps names and UUIDs unique, stores persistent
definitions, starts VMs in detached shims and answers the host listing.

  --root DIR          keep config, state, sockets and logs under DIR (clients: qemu:///system?root=DIR)
  --system            the FHS layout (/etc/virtq, /var/lib/virtq, /run/virtq); default for root
  --session           the per-user layout (XDG dirs); default for other users
  --shim PATH         the virtq-shim binary (default: next to this one, or $VIRTQ_SHIM)
  --log-filters F     e.g. "debug:registry warn:rpc" (default: $LOG_FILTERS or info)
  --log-stderr        also log to stderr
  --reconcile-ms N    period of the reconciliation pass (default 5000)
  --http HOST:PORT    serve GET /metrics (the whole host) and /sd for Prometheus
  --metrics-refresh-ms N  how often shims' metrics are fetched in the background (default 5000)
  --partial-frame-timeout-ms N  drop a client that leaves a frame unfinished this long (default 30000)`;

function parse(argv: string[]): DaemonOptions | 'help' {
  const { values } = parseArgs({
    args: argv,
    options: {
      root: { type: 'string' }, system: { type: 'boolean' }, session: { type: 'boolean' }, shim: { type: 'string' },
      'log-filters': { type: 'string' }, 'log-stderr': { type: 'boolean' }, 'reconcile-ms': { type: 'string' }, http: { type: 'string' }, 'metrics-refresh-ms': { type: 'string' },
      'partial-frame-timeout-ms': { type: 'string' }, help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help === true) return 'help';
  const reconcileMs = Number(values['reconcile-ms'] ?? '5000');
  if (!Number.isInteger(reconcileMs) || reconcileMs < 0) throw new VirtqError('INVALID_ARG', '--reconcile-ms must be a whole number');
  const metricsRefreshMs = Number(values['metrics-refresh-ms'] ?? '5000');
  if (!Number.isInteger(metricsRefreshMs) || metricsRefreshMs < 50) throw new VirtqError('INVALID_ARG', '--metrics-refresh-ms must be a whole number ≥ 50');
  const partialFrameTimeoutMs = Number(values['partial-frame-timeout-ms'] ?? '30000');
  if (!Number.isInteger(partialFrameTimeoutMs) || partialFrameTimeoutMs < 1) throw new VirtqError('INVALID_ARG', '--partial-frame-timeout-ms must be a whole number ≥ 1');
  const uid = process.getuid?.() ?? 0;
  return {
    root: values.root,
    mode: values.system === true ? 'system' : values.session === true ? 'session' : uid === 0 ? 'system' : 'session',
    shimBinary: values.shim ?? process.env['VIRTQ_SHIM'] ?? fileURLToPath(new URL('./virtq-shim.js', import.meta.url)),
    logFilters: values['log-filters'], logStderr: values['log-stderr'] === true, reconcileMs, httpAddress: values.http, metricsRefreshMs,
    partialFrameTimeoutMs,
  };
}

async function main(): Promise<void> {
  let opts: DaemonOptions | 'help';
  try {
    opts = parse(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`virtqemud: ${(err as Error).message}\n${USAGE}\n`);
    process.exit(2);
  }
  if (opts === 'help') {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  process.stdout.on('error', () => undefined);
  try {
    const { daemon, logs, layout } = await composeDaemon(opts, process.env, VERSION);
    process.stdout.write(`${JSON.stringify({ ok: true, pid: process.pid, socket: daemonSockets(layout).rw, httpPort: daemon.httpPort, recovered: daemon.recovery })}\n`);
    const stop = () => {
      void daemon.close().then(() => {
        logs.flush();
        process.exit(0);
      });
    };
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  } catch (err) {
    const e = VirtqError.from(err);
    process.stdout.write(`${JSON.stringify({ ok: false, error: e.toWire() })}\n`);
    process.stderr.write(`virtqemud: ${e.code}: ${e.message}\n`);
    process.exit(1);
  }
}

void main();
