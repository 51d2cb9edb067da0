// query-migrate's answer as domjobinfo shows it: figures read from QEMU's JSON, missing or
// hostile members counting as zero, the rate averaged while QEMU has not measured one yet.
import { describe, expect, it } from 'vitest';
import { finalStatus, jobInfoOf, migrationFailed, migrationSettings, parseMigrationStatus } from '../../../shim/vm/migration-qmp.js';
import type { HypervisorMonitor } from '../../../drivers/hypervisor/types.js';

/** A monitor answering `raw` from a list of replies per command, the last one repeating. */
function monitorOf(replies: Record<string, unknown[]>): { mon: HypervisorMonitor; calls: string[] } {
  const calls: string[] = [];
  const raw = (cmd: object): Promise<unknown> => {
    const name = (cmd as { execute: string }).execute;
    calls.push(name);
    const list = replies[name] ?? [];
    return Promise.resolve(list.length > 1 ? list.shift() : list[0]);
  };
  return { mon: { raw } as unknown as HypervisorMonitor, calls };
}

describe('migration status', () => {
  it('reads an active migration', () => {
    const s = parseMigrationStatus({
      status: 'active', 'total-time': 2000, 'expected-downtime': 40,
      ram: { total: 134_217_728, transferred: 20_000_000, remaining: 100_000_000, mbps: 800, 'dirty-sync-count': 2 },
    });
    expect(jobInfoOf(s, 2100)).toEqual({
      type: 'migration', status: 'active', elapsedMs: 2100, totalBytes: 134_217_728, transferredBytes: 20_000_000,
      remainingBytes: 100_000_000, rateBytesPerSec: 100_000_000, expectedDowntimeMs: 40, dirtySyncCount: 2,
    });
  });

  it('averages the rate during the first pass, when QEMU reports 0 Mbit/s', () => {
    const s = parseMigrationStatus({ status: 'active', 'total-time': 4000, ram: { transferred: 4_000_000, mbps: 0 } });
    expect(jobInfoOf(s, 4000).rateBytesPerSec).toBe(1_000_000);
  });

  it('takes nonsense as zero and a job-less VM as none', () => {
    expect(parseMigrationStatus({ status: 7, ram: { total: 'x', remaining: Infinity } })).toMatchObject({ status: 'none', totalBytes: 0, remainingBytes: 0 });
    expect(parseMigrationStatus(null).status).toBe('none');
    expect(jobInfoOf(undefined, 0)).toMatchObject({ type: 'none', status: 'none' });
  });

  it('reports a failed migration with QEMU\'s reason', () => {
    const err = migrationFailed(parseMigrationStatus({ status: 'failed', 'error-desc': 'Unable to write to socket: Broken pipe' }));
    expect(err).toMatchObject({ code: 'OPERATION_FAILED', message: 'migration failed in QEMU: Unable to write to socket: Broken pipe' });
  });

  it('reads setup time, the dirtying rate and the throttle', () => {
    const s = parseMigrationStatus({ status: 'completed', 'setup-time': 12, 'cpu-throttle-percentage': 30, ram: { 'dirty-pages-rate': 5000 } });
    expect(s).toMatchObject({ setupTimeMs: 12, throttlePercent: 30, dirtyPagesRate: 5000 });
  });

  it('reads a completed migration again until QEMU has stored its times', async () => {
    const first = parseMigrationStatus({ status: 'completed', 'total-time': 0, downtime: 0 });
    const { mon, calls } = monitorOf({ 'query-migrate': [{ status: 'completed', 'total-time': 0 }, { status: 'completed', 'total-time': 900, downtime: 120 }] });
    const s = await finalStatus(mon, first, () => Promise.resolve());
    expect(s).toMatchObject({ totalTimeMs: 900, downtimeMs: 120 });
    expect(calls).toEqual(['query-migrate', 'query-migrate']);
  });

  it('gives up reading after its tries, and reads nothing for figures already set', async () => {
    const { mon, calls } = monitorOf({ 'query-migrate': [{ status: 'completed', 'total-time': 0 }] });
    const zero = parseMigrationStatus({ status: 'completed', 'total-time': 0 });
    expect((await finalStatus(mon, zero, () => Promise.resolve(), 3)).totalTimeMs).toBe(0);
    expect(calls).toHaveLength(3);
    const set = parseMigrationStatus({ status: 'completed', 'total-time': 5 });
    expect(await finalStatus(mon, set, () => Promise.resolve())).toBe(set);
    expect(calls).toHaveLength(3);
  });

  it('lists the capabilities switched on and the parameters that shape a migration', async () => {
    const { mon } = monitorOf({
      'query-migrate-capabilities': [[{ capability: 'xbzrle', state: false }, { capability: 'pause-before-switchover', state: true }, { capability: 'events', state: true }]],
      'query-migrate-parameters': [{ 'max-bandwidth': 1000, 'downtime-limit': 300, 'tls-creds': '', 'multifd-channels': 2 }],
    });
    expect(await migrationSettings(mon)).toEqual({
      capabilities: ['pause-before-switchover', 'events'], parameters: { 'max-bandwidth': 1000, 'downtime-limit': 300, 'multifd-channels': 2 },
    });
  });
});
