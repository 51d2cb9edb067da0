// query-migrate's answer as domjobinfo shows it: figures read from QEMU's JSON, missing or
// hostile members counting as zero, the rate averaged while QEMU has not measured one yet.
import { describe, expect, it } from 'vitest';
import { jobInfoOf, migrationFailed, parseMigrationStatus } from '../../../shim/vm/migration-qmp.js';

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
});
