// A lasting claim conflict is logged when it starts, at most once a minute while it lasts, and
// when it ends — not at every sync (every 10 s), which buried the log.
import { describe, expect, it } from 'vitest';
import type { Logger } from '../../../protocol/index.js';
import { ConflictLog, type FoundConflict } from '../../../aggregator/cluster/conflict-log.js';
import { FakeClock } from '../../helpers/fake-clock.js';

function recorder(): { log: Logger; lines: Array<{ level: string; msgId: unknown; name: unknown; extra: Record<string, unknown> }> } {
  const lines: Array<{ level: string; msgId: unknown; name: unknown; extra: Record<string, unknown> }> = [];
  const at = (level: string) => (obj: object): void => {
    const o = obj as Record<string, unknown>;
    lines.push({ level, msgId: o['msgId'], name: o['name'], extra: o });
  };
  const log: Logger = { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error'), child: () => log };
  return { log, lines };
}

const web1: FoundConflict = { name: 'web1', uuid: 'u1', heldBy: 'host2', message: 'name "web1" is held by host2' };
const db1: FoundConflict = { name: 'db1', uuid: 'u2', heldBy: 'host3', message: 'name "db1" is held by host3' };

describe('claim conflict logging', () => {
  it('logs a conflict when it starts, once a minute while it lasts, and when it ends', async () => {
    const clock = new FakeClock();
    const { log, lines } = recorder();
    const c = new ConflictLog(clock, log);
    // A sync every 10 s for 3 minutes with web1 in conflict all along.
    for (let t = 0; t <= 180_000; t += 10_000) {
      c.found([web1]);
      await clock.advance(10_000);
    }
    const errors = lines.filter((l) => l.msgId === 'CLUSTER_CLAIM_CONFLICT');
    expect(errors.map((l) => l.extra['lastingMs'])).toEqual([undefined, 60_000, 120_000, 180_000]);
    expect(errors.every((l) => l.level === 'error' && l.name === 'web1' && l.extra['heldBy'] === 'host2' && l.extra['err'] === web1.message)).toBe(true);
    c.found([]);
    expect(lines.at(-1)).toMatchObject({ level: 'info', msgId: 'CLUSTER_CLAIM_CONFLICT_ENDED', name: 'web1', extra: { uuid: 'u1', heldBy: 'host2', lastedMs: 190_000 } });
    c.found([]);
    expect(lines).toHaveLength(5);
  });

  it('tracks each conflict on its own; a new holder is a new conflict', async () => {
    const clock = new FakeClock();
    const { log, lines } = recorder();
    const c = new ConflictLog(clock, log);
    c.found([web1]);
    await clock.advance(10_000);
    c.found([web1, db1]);
    await clock.advance(10_000);
    c.found([db1, { ...web1, heldBy: 'host4' }]);
    expect(lines.map((l) => `${String(l.msgId)} ${String(l.name)} ${String(l.extra['heldBy'])}`)).toEqual([
      'CLUSTER_CLAIM_CONFLICT web1 host2',
      'CLUSTER_CLAIM_CONFLICT db1 host3',
      'CLUSTER_CLAIM_CONFLICT web1 host4',
      'CLUSTER_CLAIM_CONFLICT_ENDED web1 host2',
    ]);
  });
});
