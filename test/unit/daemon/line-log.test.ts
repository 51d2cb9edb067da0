// The shim's pino-free log hub (daemon/line-log.ts) against the daemons' pino hub: the same calls
// through both must give the same lines (the time field aside), and it must keep LogHub's
// behaviour (levels by module at run time, output switching, a full disk never throwing).
import { afterEach, describe, expect, it } from 'vitest';
import { existsSync, readFileSync } from 'node:fs';
import { LogHub } from '../../../daemon/logging.js';
import { LineLogHub } from '../../../daemon/line-log.js';
import type { Logs } from '../../../daemon/log-filters.js';
import { VirtqError } from '../../../protocol/index.js';
import { tmpRoot, type TmpRoot } from '../../helpers/tmp-root.js';

type Hub = new (opts: { name: string; bindings: Record<string, unknown>; filters?: string; file?: string; stderr?: boolean }) => Logs;

/** Logs every case through `Hub` into a file and returns its lines with the time zeroed. */
function linesOf(Hub: Hub, file: string, run: (hub: Logs) => void): string[] {
  const hub = new Hub({ name: 'virtq-shim', bindings: { vm: 'vm1' }, filters: 'trace', file });
  run(hub);
  hub.flush();
  return readFileSync(file, 'utf8').split('\n').filter((l) => l !== '').map((l) => l.replace(/"time":\d+/, '"time":0'));
}

class Tagged { constructor(readonly tag: string, readonly value: string) {} toJSON(): unknown { return { tag: this.tag, value: this.value }; } }

// Built once: an Error's stack names where it was made, and both hubs must see the same one.
const ERRORS = {
  virtq: new VirtqError('NO_DOMAIN', 'no such VM', { details: { name: 'vm1' } }),
  causes: new Error('outer', { cause: new Error('inner', { cause: new VirtqError('INTERNAL', 'root') }) }),
  withProps: Object.assign(new Error('props'), { code: 'ENOSPC', errno: -28, syscall: 'write', value: 'hidden?' }),
  other: new Error('not serialized'),
  asObject: new VirtqError('TIMEOUT', 'as the object'),
  aggregate: new AggregateError([new Error('a1'), new TypeError('a2')], 'many'),
};

function corpus(hub: Logs): void {
  const log = hub.module('qemu.qmp');
  log.info({}, 'plain');
  log.info({ a: 1, b: 'two', c: true, d: null, e: [1, 'x', { f: 2 }], g: { h: { i: 'deep' } } }, 'fields');
  log.debug({ n: NaN, inf: Infinity, neg: -0, big: 1e21, u: undefined, fn: () => 1, s: Symbol('x') }, 'odd values');
  log.warn({ msg: 'inner', x: 1 }, 'outer');
  log.warn({ x: 1 });
  log.error({ text: 'quote " backslash \\ newline \n tab \t unicode é ☃ \u0001' }, 'escapes "here"\n');
  // Redaction: top-level, one level, two and three levels deep; arrays; absent fields stay absent.
  log.info({ password: 'p1', secret: { deep: 1 }, value: 42, passphrase: 'pp', token: 't-top' }, 'top');
  log.info({ auth: { password: 'p2', token: 't2', secret: 's2', user: 'u', passphrase: 'x' } }, 'nested');
  log.info({ list: [{ value: 'v1' }, { other: 1 }, 'str'], arr: ['value', 'password'] }, 'arrays');
  log.info({ a: { b: { value: 'v2' } }, c: { d: { e: { value: 'v3' } } }, f: { g: { h: { i: { value: 'v4' } } } } }, 'depth');
  log.info({ a: { value: undefined }, b: { value: null }, c: Object.create({ value: 'inherited' }) as object }, 'edge');
  log.info({ when: new Date(0), tagged: new Tagged('t', 'secret-ish'), wrapper: { t: new Tagged('u', 'v') } }, 'toJSON');
  // Errors: under err (pino's serializer), as the object itself, nested and with causes.
  log.error({ err: ERRORS.virtq }, 'lookup failed');
  log.error({ err: ERRORS.causes });
  log.warn({ err: ERRORS.withProps, other: ERRORS.other }, 'with props');
  log.error(ERRORS.asObject as unknown as object);
  log.error({ err: 'just a string' }, 'string err');
  log.error({ err: ERRORS.aggregate }, 'aggregate');
  // Children: more bindings, a second module, a binding that is redacted.
  const child = log.child({ job: 7, value: 'bound secret', nested: { password: 'pw' } });
  child.info({ step: 1 }, 'child');
  const other = hub.module('rpc.server').child({ module: 'rpc.client' });
  other.info({}, 'two modules');
}

describe('LineLogHub', () => {
  let root: TmpRoot;
  afterEach(() => root.remove());

  it('writes the lines pino writes for the same calls', () => {
    root = tmpRoot();
    const want = linesOf(LogHub, root.path('pino.log'), corpus);
    const got = linesOf(LineLogHub, root.path('line.log'), corpus);
    expect(want.length).toBe(20);
    for (let i = 0; i < want.length; i++) expect(got[i], `line ${i}`).toBe(want[i]);
    expect(got.length).toBe(want.length);
    expect(got.join('\n')).not.toMatch(/p1|p2|t2|s2|v1|v2|v3|bound secret|"pw"/);
  });

  it('writes a cycle and a BigInt instead of throwing (pino\'s fallback, without its depth limit)', () => {
    root = tmpRoot();
    const cyc: Record<string, unknown> = { name: 'cyc', n: 10n };
    cyc['self'] = cyc;
    const [line] = linesOf(LineLogHub, root.path('cyc.log'), (hub) => hub.module('x').info({ cyc }, 'cycle'));
    expect(JSON.parse(line as string)).toMatchObject({ module: 'x', cyc: { n: 10, name: 'cyc', self: '[Circular]' }, msg: 'cycle' });
  });

  it('applies the longest matching module filter and changes levels at run time, children included', () => {
    root = tmpRoot();
    const file = root.path('a.log');
    const hub = new LineLogHub({ name: 't', bindings: {}, filters: 'info', file });
    const qmp = hub.module('qemu.qmp');
    const qmpChild = qmp.child({ cmd: 'x' });
    const rpc = hub.module('rpc.server');
    qmp.debug({}, 'hidden-1');
    hub.setFilters('warn debug:qemu.qmp');
    qmp.debug({}, 'shown-1');
    qmpChild.debug({}, 'shown-3');
    rpc.info({}, 'hidden-2');
    rpc.warn({}, 'shown-2');
    hub.setFilters('silent');
    rpc.error({}, 'hidden-3');
    hub.flush();
    const text = readFileSync(file, 'utf8');
    for (const s of ['shown-1', 'shown-2', 'shown-3']) expect(text).toContain(s);
    for (const s of ['hidden-1', 'hidden-2', 'hidden-3']) expect(text).not.toContain(s);
    expect(hub.filtersText).toBe('silent');
  });

  it('switches outputs at run time', () => {
    root = tmpRoot();
    const hub = new LineLogHub({ name: 't', bindings: {}, file: root.path('first.log') });
    const log = hub.module('x');
    log.info({}, 'to-first');
    hub.setOutputs(`file:${root.path('sub', 'second.log')}`);
    log.info({}, 'to-second');
    hub.flush();
    expect(hub.outputsText).toBe(`file:${root.path('sub', 'second.log')}`);
    expect(existsSync(root.path('sub', 'second.log'))).toBe(true);
    expect(readFileSync(root.path('sub', 'second.log'), 'utf8')).toContain('to-second');
    expect(readFileSync(root.path('sub', 'second.log'), 'utf8')).not.toContain('to-first');
    expect(readFileSync(root.path('first.log'), 'utf8')).toContain('to-first');
    expect(() => hub.setOutputs('syslog')).toThrowError(expect.objectContaining({ code: 'INVALID_ARG' }));
  });

  it('never throws into the code that logs when the output cannot be written (a full disk)', () => {
    root = tmpRoot();
    const hub = new LineLogHub({ name: 't', bindings: {}, file: '/dev/full' });
    const log = hub.module('x');
    expect(() => {
      for (let i = 0; i < 20_000; i++) log.error({ i, pad: 'x'.repeat(200) }, 'cannot be written');
      hub.flush();
    }).not.toThrow();
  });
});
