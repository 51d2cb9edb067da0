// virtq migrate, domjobinfo and domjobabort against a fake daemon: the options as the procedure's
// arguments, no client deadline, a progress bar from domjobinfo on a terminal only, virsh's text.
import { describe, expect, it } from 'vitest';
import type { JobInfo, MigrateResult } from '../../../protocol/index.js';
import { fake } from './fake-io.js';

const settle = async (): Promise<void> => { for (let i = 0; i < 50; i++) await Promise.resolve(); };
const job: JobInfo = {
  type: 'migration', status: 'active', elapsedMs: 1500, totalBytes: 134_217_728, transferredBytes: 50 * 1024 * 1024,
  remainingBytes: 50 * 1024 * 1024, rateBytesPerSec: 30 * 1024 * 1024, expectedDowntimeMs: 20, dirtySyncCount: 1,
};
const result: MigrateResult = { state: 'shutoff', reason: 'migrated', totalMs: 2400, downtimeMs: 12, transferredBytes: 100 * 1024 * 1024 };

describe('virtq migrate', () => {
  it('passes every option, waits without a deadline, and draws the bar from domjobinfo on a terminal', async () => {
    let finish: (r: MigrateResult) => void = () => undefined;
    const f = fake({ stderrTTY: true, procs: { migrate: () => new Promise<MigrateResult>((resolve) => { finish = resolve; }), getJobInfo: job } });
    const done = f.run('migrate', 'web1', 'qemu:///system?root=/h2', '--live', '--persistent', '--undefine-source', '--timeout', '60', '--bandwidth', '100', '--max-downtime', '50', '--auto-converge', '--transport', 'tcp');
    await settle();
    await f.clock.advance(500);
    await settle();
    expect(f.stderr.text).toContain("Migrating 'web1' [");
    expect(f.stderr.text).toContain('50%');
    finish(result);
    expect(await done).toBe(0);
    const call = f.calls.find((c) => c.proc === 'migrate');
    expect(call).toEqual({ proc: 'migrate', timeoutMs: 0, args: {
      name: 'web1', destUri: 'qemu:///system?root=/h2', live: true, persistent: true, undefineSource: true, timeoutSec: 60, bandwidth: 100, maxDowntimeMs: 50, autoConverge: true, transport: 'tcp',
    } });
    expect(f.stdout.text).toBe("Domain 'web1' migrated to qemu:///system?root=/h2 in 2.4 s (100.00 MiB sent, paused 12 ms)\n");
  });

  it('with --json writes progress events as JSON lines on stderr and the result as one JSON document on stdout', async () => {
    let finish: (r: MigrateResult) => void = () => undefined;
    const f = fake({ stderrTTY: true, procs: { migrate: () => new Promise<MigrateResult>((resolve) => { finish = resolve; }), getJobInfo: job } });
    const done = f.run('migrate', 'web1', 'qemu:///system?root=/h2', '--json');
    await settle();
    await f.clock.advance(500);
    await settle();
    await f.clock.advance(500);
    await settle();
    finish(result);
    expect(await done).toBe(0);
    expect(JSON.parse(f.stdout.text)).toEqual(result);
    const events = f.stderr.text.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(events.length).toBeGreaterThanOrEqual(2);
    expect(events[0]).toEqual({ event: 'progress', name: 'web1', ...job });
    expect(f.stderr.text).not.toContain('[');
  });

  it('polls nothing when neither a terminal nor --json asks for progress', async () => {
    const f = fake({ stderrTTY: false, procs: { migrate: result, getJobInfo: job } });
    expect(await f.run('migrate', 'web1', 'qemu:///system?root=/h2')).toBe(0);
    expect(f.calls.map((c) => c.proc)).toEqual(['migrate']);
  });

  it('refuses a bandwidth that is not a whole number of MiB/s', async () => {
    const f = fake({ procs: { migrate: result } });
    expect(await f.run('migrate', 'web1', 'qemu:///system?root=/h2', '--bandwidth', 'fast')).toBe(2);
    expect(f.calls).toEqual([]);
  });

  it('shows domjobinfo as virsh does, and a VM without a job as None', async () => {
    const f = fake({ procs: { getJobInfo: job } });
    expect(await f.run('domjobinfo', 'web1')).toBe(0);
    expect(f.stdout.text).toContain('Data remaining:    50.00 MiB\n');
    expect(f.stdout.text).toContain('Expected downtime: 20 ms\n');
    const none = fake({ procs: { getJobInfo: { ...job, type: 'none', status: 'none' } } });
    expect(await none.run('domjobinfo', 'web1')).toBe(0);
    expect(none.stdout.text).toBe('Job type:         None\n');
    const merge = fake({ procs: { getJobInfo: { ...job, type: 'block-commit', status: 'running' } } });
    expect(await merge.run('domjobinfo', 'web1')).toBe(0);
    expect(merge.stdout.text).toContain('Operation:         Snapshot delete (block commit)\n');
    expect(merge.stdout.text).toContain('Data remaining:    50.00 MiB\n');
    expect(merge.stdout.text).not.toContain('Expected downtime');
  });
});
