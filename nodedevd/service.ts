// virtnodedevd as a daemon of the framework: the node device driver over one sysfs root (default
// /sys; tests pass a tree they built), polled every --poll-ms for devices that appear or go, each
// change pushed as a `device` event to the connections that subscribed. It keeps no state on
// disk: what it serves is read from sysfs at each call, so a restart has nothing to recover.
import { isAbsolute } from 'node:path';
import { VirtqError, nodedevProgram, type NodeDeviceEvent } from '../protocol/index.js';
import { served, type ServiceDefinition } from '../daemon/run-service.js';
import { LineLogHub } from '../daemon/line-log.js';
import { stringOption, wholeNumber } from '../daemon/options.js';
import { NodeDevices } from '../drivers/nodedev/node-devices.js';
import { DEFAULT_WATCH_INTERVAL_MS } from '../drivers/nodedev/watch.js';
import { nodedevHandlers, wantsDeviceEvents } from './handlers.js';
import { NodedevMetrics } from './metrics.js';

/** virtnodedevd's own options. */
export interface NodedevdOptions {
  /** The sysfs root (absolute). */
  sysfs: string;
  /** Time between two polls of sysfs, in ms. */
  pollMs: number;
}

/** The shortest poll interval accepted: below it the daemon would spend its time listing directories. */
export const MIN_POLL_MS = 10;
// A sysfs that keeps failing is logged at most this often (every failure is counted).
const POLL_FAILURE_LOG_MS = 60_000;

/** Reads --sysfs and --poll-ms. */
export function parseNodedevdOptions(values: Readonly<Record<string, string | boolean | undefined>>): NodedevdOptions {
  const sysfs = stringOption(values, 'sysfs') ?? '/sys';
  if (!isAbsolute(sysfs)) throw new VirtqError('INVALID_ARG', `--sysfs must be an absolute path, not "${sysfs}"`);
  return { sysfs, pollMs: wholeNumber(stringOption(values, 'poll-ms'), 'poll-ms', DEFAULT_WATCH_INTERVAL_MS, MIN_POLL_MS) };
}

/** virtnodedevd, defined for the framework. */
export function nodedevdService(version: string): ServiceDefinition<NodedevdOptions> {
  return {
    daemon: 'virtnodedevd',
    version,
    makeLogs: (opts) => new LineLogHub(opts),
    summary: `Shows the host's devices as sysfs does: PCI functions (ids, driver, IOMMU group), USB devices,
network interfaces and block devices, read-only; pushes an event when one appears or goes
(sysfs is polled). It changes nothing on the host.`,
    options: { sysfs: { type: 'string' }, 'poll-ms': { type: 'string' } },
    optionsUsage: `  --sysfs DIR         the sysfs root to read (default /sys)
  --poll-ms N         look for devices that appeared or went every N ms (default ${DEFAULT_WATCH_INTERVAL_MS}, at least ${MIN_POLL_MS})`,
    parseExtra: (values) => parseNodedevdOptions(values),
    build: async ({ clock, logs, extra, service }) => {
      const log = logs.module('nodedev');
      const devices = new NodeDevices({ root: extra.sysfs });
      const metrics = new NodedevMetrics(service.metrics, devices);
      let lastFailureLog = Number.NEGATIVE_INFINITY;
      // The first listing is taken here: a sysfs root that cannot be read stops the start, naming it.
      const watch = devices.watch((change) => {
        const ev: NodeDeviceEvent = { event: change.kind, name: change.name, cap: change.cap, timestamp: clock.now() };
        metrics.event(ev.event);
        log.info({ ...ev, msgId: ev.event === 'added' ? 'NODEDEV_ADDED' : 'NODEDEV_REMOVED' }, `host device ${ev.event}`);
        service.server.publish(nodedevProgram.name, 'device', ev, wantsDeviceEvents);
      }, {
        clock,
        intervalMs: extra.pollMs,
        onError: (err) => {
          metrics.pollFailed();
          if (clock.monotonic() - lastFailureLog < POLL_FAILURE_LOG_MS) return;
          lastFailureLog = clock.monotonic();
          log.warn({ code: err.code, sysfs: extra.sysfs, msgId: 'NODEDEV_POLL_FAILED' }, `polling sysfs failed (retried every ${extra.pollMs} ms): ${err.message}`);
        },
      });
      log.info({ sysfs: extra.sysfs, pollMs: extra.pollMs, msgId: 'NODEDEV_WATCHING' }, 'watching host devices');
      return {
        served: [served(nodedevProgram, nodedevHandlers(devices))],
        info: () => ({ sysfs: extra.sysfs, pollMs: extra.pollMs }),
        ready: () => ({ sysfs: extra.sysfs }),
        close: async () => watch.dispose(),
      };
    },
  };
}
