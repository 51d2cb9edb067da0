// QEMU's side of a migration as plain functions over the VM's monitor: the capabilities and
// parameters a virtq migration sets, starting and continuing it, and query-migrate's answer
// turned into the figures `domjobinfo` shows.
import { VirtqError, type JobInfo, type MigrateArgs } from '../../protocol/index.js';
import type { HypervisorMonitor } from '../../drivers/hypervisor/types.js';

/** QEMU's own cap is bytes per second; "unlimited" is its largest value libvirt also uses (in MiB/s, INT64_MAX / 1 MiB). */
const UNLIMITED_BYTES_PER_SEC = 2 ** 53 - 1;
/** QEMU's default downtime limit, kept when none is given. */
const DEFAULT_DOWNTIME_MS = 300;

/** query-migrate's answer, the parts virtq uses. */
export interface MigrationStatus {
  status: string;
  totalTimeMs: number;
  downtimeMs: number | undefined;
  expectedDowntimeMs: number | undefined;
  totalBytes: number;
  transferredBytes: number;
  remainingBytes: number;
  mbps: number;
  dirtySyncCount: number;
  /** Setup phase (connect, capabilities) and the guest's dirtying rate (pages/s) as QEMU measured them. */
  setupTimeMs: number;
  dirtyPagesRate: number;
  /** auto-converge's current vCPU throttle, 0 when it never throttled. */
  throttlePercent: number;
  error: string | undefined;
}

/** Statuses after which QEMU's source side does nothing more. */
export const FINISHED = new Set(['completed', 'failed', 'cancelled']);

/** Sets what every virtq migration relies on: a pause before switchover (for the lease handover) and the caller's limits. */
export async function setUpSource(mon: HypervisorMonitor, a: Pick<MigrateArgs, 'autoConverge' | 'bandwidth' | 'maxDowntimeMs'>): Promise<void> {
  await mon.raw({ execute: 'migrate-set-capabilities', arguments: { capabilities: [
    { capability: 'pause-before-switchover', state: true },
    { capability: 'events', state: true },
    { capability: 'auto-converge', state: a.autoConverge === true },
  ] } });
  await mon.raw({ execute: 'migrate-set-parameters', arguments: {
    'max-bandwidth': a.bandwidth === undefined ? UNLIMITED_BYTES_PER_SEC : a.bandwidth * 1024 * 1024,
    'downtime-limit': a.maxDowntimeMs ?? DEFAULT_DOWNTIME_MS,
  } });
}

/** Reads query-migrate; `none` when no migration ever ran in this QEMU. */
export async function queryMigrate(mon: HypervisorMonitor): Promise<MigrationStatus> {
  return parseMigrationStatus(await mon.raw({ execute: 'query-migrate' }));
}

/** query-migrate's JSON as a MigrationStatus; anything missing counts as zero. */
export function parseMigrationStatus(raw: unknown): MigrationStatus {
  const o = isObject(raw) ? raw : {};
  const ram = isObject(o['ram']) ? o['ram'] : {};
  const num = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) ? v : 0);
  const opt = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);
  return {
    status: typeof o['status'] === 'string' ? o['status'] : 'none',
    totalTimeMs: num(o['total-time']),
    downtimeMs: opt(o['downtime']),
    expectedDowntimeMs: opt(o['expected-downtime']),
    totalBytes: num(ram['total']),
    transferredBytes: num(ram['transferred']),
    remainingBytes: num(ram['remaining']),
    mbps: num(ram['mbps']),
    dirtySyncCount: num(ram['dirty-sync-count']),
    setupTimeMs: num(o['setup-time']),
    dirtyPagesRate: num(ram['dirty-pages-rate']),
    throttlePercent: num(o['cpu-throttle-percentage']),
    error: typeof o['error-desc'] === 'string' ? o['error-desc'] : undefined,
  };
}

/**
 * QEMU 7.x reports `completed` from its migration thread before its main loop has stored the
 * migration's times: a poll that sees the status first reads total-time and downtime as 0. The
 * figures are final once total-time is set; this reads until then (at most `tries` times).
 */
export async function finalStatus(mon: HypervisorMonitor, first: MigrationStatus, wait: () => Promise<void>, tries = 50): Promise<MigrationStatus> {
  let s = first;
  for (let i = 0; i < tries && s.status === 'completed' && s.totalTimeMs === 0; i++) {
    await wait();
    s = await queryMigrate(mon);
  }
  return s;
}

/** The capabilities switched on and the parameters in effect, for the log of a finished migration. */
export async function migrationSettings(mon: HypervisorMonitor): Promise<{ capabilities: string[]; parameters: Record<string, unknown> }> {
  // Sent together: QEMU answers them in order, one wake-up of each side instead of two.
  const [caps, params] = await Promise.all([mon.raw({ execute: 'query-migrate-capabilities' }), mon.raw({ execute: 'query-migrate-parameters' })]);
  const on = Array.isArray(caps) ? caps.filter((c): c is { capability: string; state: true } => isObject(c) && c['state'] === true && typeof c['capability'] === 'string').map((c) => c.capability) : [];
  const keep = ['max-bandwidth', 'downtime-limit', 'multifd-channels', 'cpu-throttle-initial', 'cpu-throttle-increment', 'x-checkpoint-delay', 'announce-initial'];
  const parameters = isObject(params) ? Object.fromEntries(keep.filter((k) => k in params).map((k) => [k, params[k]])) : {};
  return { capabilities: on, parameters };
}

/** The figures of `domjobinfo` from QEMU's status and the job's own clock. */
export function jobInfoOf(s: MigrationStatus | undefined, elapsedMs: number): JobInfo {
  if (s === undefined) {
    return { type: 'none', status: 'none', elapsedMs: 0, totalBytes: 0, transferredBytes: 0, remainingBytes: 0, rateBytesPerSec: 0, dirtySyncCount: 0 };
  }
  return {
    type: 'migration', status: s.status, elapsedMs, totalBytes: s.totalBytes, transferredBytes: s.transferredBytes,
    remainingBytes: s.remainingBytes, rateBytesPerSec: rateOf(s), dirtySyncCount: s.dirtySyncCount,
    ...(s.expectedDowntimeMs === undefined ? {} : { expectedDowntimeMs: s.expectedDowntimeMs }),
    ...(s.downtimeMs === undefined ? {} : { downtimeMs: s.downtimeMs }),
  };
}

// QEMU measures the rate once per pass over memory; during the first pass it reads 0, and the
// average so far is the better figure.
function rateOf(s: MigrationStatus): number {
  if (s.mbps > 0) return Math.round((s.mbps * 1e6) / 8);
  return s.totalTimeMs > 0 ? Math.round((s.transferredBytes * 1000) / s.totalTimeMs) : 0;
}

/** The error for a migration QEMU reports as failed. */
export function migrationFailed(s: MigrationStatus): VirtqError {
  return new VirtqError('OPERATION_FAILED', `migration failed in QEMU: ${s.error ?? 'no reason given'}`, { details: { status: s.status } });
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
