// The wire lock: released procedures, events and error codes are never removed, renamed,
// reordered or changed (read-only flag, servers, stream, since); new ones are only appended.
import { describe, expect, it } from 'vitest';
import { checkWire, compareWireLock, currentWireLock, readWireLock, type WireLock } from '../../../scripts/check-wire.js';

const REFRESH = 'refresh the lock with UPDATE_WIRE_LOCK=1 npm run check:wire (or UPDATE_WIRE_LOCK=1 npx vitest run test/unit/protocol/wire-lock.test.ts)';
const clone = (lock: WireLock): WireLock => JSON.parse(JSON.stringify(lock)) as WireLock;

describe('protocol/wire-lock.json', () => {
  it('never removes, renames, reorders or changes a released entry', () => {
    const { diff } = checkWire(process.env['UPDATE_WIRE_LOCK'] === '1');
    expect(diff.breaking, 'released entries may only be appended to; a deliberate break means editing protocol/wire-lock.json by hand').toEqual([]);
  });

  it('records every entry of the catalogue', () => {
    const { appended } = compareWireLock(readWireLock(), currentWireLock());
    expect(appended, `new entries are not locked yet: ${REFRESH}`).toEqual([]);
  });
});

describe('compareWireLock', () => {
  const base = currentWireLock();
  const virtq = (l: WireLock) => l.programs[0]!;

  it('accepts an unchanged catalogue', () => {
    expect(compareWireLock(base, base)).toEqual({ breaking: [], appended: [] });
  });

  it('reports appended procedures, events, programs and codes as appended, not breaking', () => {
    const locked = clone(base);
    virtq(locked).procedures.pop();
    virtq(locked).events.pop();
    locked.programs.pop();
    const lastError = locked.errors.pop()!;
    const diff = compareWireLock(locked, base);
    expect(diff.breaking).toEqual([]);
    expect(diff.appended).toContain(`procedure virtq.${virtq(base).procedures.at(-1)!.name}`);
    expect(diff.appended).toContain('event virtq.lifecycle');
    const lastProgram = base.programs[base.programs.length - 1]!;
    expect(diff.appended).toContain(`program ${lastProgram.name}`);
    expect(diff.appended).toContain(`procedure ${lastProgram.name}.${lastProgram.procedures[0]!.name}`);
    expect(diff.appended).toContain(`error ${lastError.name}`);
  });

  it('records a procedure served by more daemons as widened, and by fewer as breaking', () => {
    const admin = (l: WireLock) => l.programs.find((p) => p.name === 'admin')!;
    const locked = clone(base);
    admin(locked).procedures[0]!.servers = ['aggregator', 'shim'];
    expect(compareWireLock(locked, base)).toEqual({ breaking: [], appended: [expect.stringMatching(/^procedure admin\.serverInfo \(now also served by .*storage/)] });
    expect(compareWireLock(base, locked).breaking).toEqual([expect.stringMatching(/admin\.serverInfo changed/)]);
  });

  it('breaks when a procedure is removed or renamed', () => {
    const current = clone(base);
    virtq(current).procedures.splice(1, 1);
    expect(compareWireLock(base, current).breaking[0]).toMatch(/procedure virtq\.getInfo \(#2\) is now procedure virtq\.getDefinition/);
    const renamed = clone(base);
    virtq(renamed).procedures[0]!.name = 'getStatus';
    expect(compareWireLock(base, renamed).breaking).toEqual([expect.stringMatching(/virtq\.getState .*virtq\.getStatus/)]);
  });

  it('breaks when procedures are reordered', () => {
    const current = clone(base);
    const procs = virtq(current).procedures;
    [procs[0], procs[1]] = [procs[1]!, procs[0]!];
    expect(compareWireLock(base, current).breaking).toHaveLength(2);
  });

  it('breaks when a procedure changes its read-only flag, servers, stream flag or since', () => {
    for (const change of [
      (p: WireLock['programs'][number]['procedures'][number]) => { p.readonly = !p.readonly; },
      (p: WireLock['programs'][number]['procedures'][number]) => { p.servers = ['shim']; },
      (p: WireLock['programs'][number]['procedures'][number]) => { p.stream = !p.stream; },
      (p: WireLock['programs'][number]['procedures'][number]) => { p.since = '9.9'; },
    ]) {
      const current = clone(base);
      change(virtq(current).procedures[0]!);
      expect(compareWireLock(base, current).breaking).toEqual([expect.stringMatching(/^procedure virtq\.getState changed/)]);
    }
  });

  it('breaks when an event, a program or an error code goes away', () => {
    const current = clone(base);
    virtq(current).events.pop();
    current.errors.splice(2, 1);
    current.programs.splice(1, 1);
    const breaking = compareWireLock(base, current).breaking.join('\n');
    expect(breaking).toMatch(/event virtq\.lifecycle \(#1\) was removed/);
    expect(breaking).toMatch(/error NO_DOMAIN \(#3\) is now error NAME_IN_USE/);
    expect(breaking).toMatch(/program registry \(#2\) is now program admin/);
  });
});
