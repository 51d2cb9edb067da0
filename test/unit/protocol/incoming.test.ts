// The start request a shim run with --start-request reads on stdin: what it accepts and the
// INVALID_ARG (naming the field) for everything else.
import { describe, expect, it } from 'vitest';
import { VirtqError, parseStartRequest, startRequestText } from '../../../protocol/index.js';

describe('parseStartRequest', () => {
  it('reads back what startRequestText writes, for each kind of start', () => {
    const def = { name: 'a', memoryMiB: 32 };
    expect(parseStartRequest(startRequestText(def, false, undefined))).toEqual({ definition: def, paused: false });
    expect(parseStartRequest(startRequestText(def, true, undefined))).toEqual({ definition: def, paused: true });
    expect(parseStartRequest(startRequestText(def, false, { kind: 'image', file: '/x/a.save' }))).toEqual({ definition: def, paused: false, incoming: { kind: 'image', file: '/x/a.save' } });
    for (const transport of ['unix', 'tcp'] as const) {
      expect(parseStartRequest(startRequestText(def, true, { kind: 'migration', transport }))).toEqual({ definition: def, paused: true, incoming: { kind: 'migration', transport } });
    }
  });

  it('refuses what is not a start request with INVALID_ARG naming the field', () => {
    const bad: Array<[string, RegExp]> = [
      ['', /not valid JSON/],
      ['{"definition":{}', /not valid JSON/],
      ['{"name":"a","memoryMiB":32}', /start request: \/definition|start request: \/paused|start request: \/name/],
      ['{"definition":{},"paused":"yes"}', /\/paused/],
      ['{"definition":{},"paused":false,"incoming":{"kind":"image","file":"rel.save"}}', /\/incoming/],
      ['{"definition":{},"paused":false,"incoming":{"kind":"migration","transport":"rdma"}}', /\/incoming/],
      ['{"definition":{},"paused":false,"incoming":{"kind":"image","file":"/a","transport":"tcp"}}', /\/incoming/],
      ['{"definition":{},"paused":false,"extra":1}', /start request/],
      ['null', /start request: \//],
    ];
    for (const [text, message] of bad) {
      let err: unknown;
      try { parseStartRequest(text); } catch (e) { err = e; }
      expect(err, text).toBeInstanceOf(VirtqError);
      expect((err as VirtqError).code, text).toBe('INVALID_ARG');
      expect((err as VirtqError).message, text).toMatch(message);
    }
  });
});
