// The shim's ready line: what the shim prints is what the starters accept, and anything else is
// a typed error rather than a cast.
import { describe, expect, it } from 'vitest';
import { VirtqError } from '../../../protocol/index.js';
import { parseReadyLine, readyLine } from '../../../daemon/shim-bootstrap.js';
import { failedLine } from '../../../daemon/main-shell.js';

describe('shim ready line', () => {
  const ready = { name: 'web1', uuid: '5f2b1d3a-9c4e-4d6f-8a1b-2c3d4e5f6a7b', state: 'running' as const, socket: '/r/web1.sock', shimPid: 12, qemuPid: 13 };

  it('round-trips a started VM', () => {
    expect(parseReadyLine(readyLine(ready), 'web1')).toEqual({ ok: true, ...ready });
  });

  it('turns a reported failure into its error, code and message kept', () => {
    const parsed = parseReadyLine(failedLine(new VirtqError('LOCK_CONFLICT', 'disk /x is leased by db1')), 'web1');
    expect(parsed).toBeInstanceOf(VirtqError);
    expect(parsed).toMatchObject({ code: 'LOCK_CONFLICT', message: 'disk /x is leased by db1' });
  });

  it.each([
    ['not JSON', 'Segmentation fault', 'unreadable reply'],
    ['a wrong shape', JSON.stringify({ ok: true, name: 'web1' }), 'not its ready line'],
    ['an unknown state', readyLine({ ...ready, state: 'dancing' as 'running' }), 'not its ready line'],
  ])('refuses %s with INTERNAL naming the VM', (_what, line, words) => {
    const parsed = parseReadyLine(line, 'web1');
    expect(parsed).toBeInstanceOf(VirtqError);
    expect(parsed).toMatchObject({ code: 'INTERNAL', message: expect.stringContaining(words) });
    expect((parsed as VirtqError).message).toContain('"web1"');
  });
});
