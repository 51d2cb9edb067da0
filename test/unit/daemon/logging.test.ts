import { afterEach, describe, expect, it } from 'vitest';
import { readFileSync, existsSync } from 'node:fs';
import { LogHub, parseLogFilters, parseLogOutputs } from '../../../daemon/logging.js';
import { tmpRoot, type TmpRoot } from '../../helpers/tmp-root.js';

describe('LogHub', () => {
  let root: TmpRoot;
  afterEach(() => root.remove());

  it('applies the longest matching module filter and changes levels at run time', () => {
    root = tmpRoot();
    const file = root.path('a.log');
    const hub = new LogHub({ name: 't', bindings: {}, filters: 'info', file });
    const qmp = hub.module('qemu.qmp');
    const rpc = hub.module('rpc.server');
    qmp.debug({}, 'hidden-1');
    hub.setFilters('warn debug:qemu.qmp');
    qmp.debug({}, 'shown-1');
    rpc.info({}, 'hidden-2');
    rpc.warn({}, 'shown-2');
    hub.flush();
    const text = readFileSync(file, 'utf8');
    expect(text).toContain('shown-1');
    expect(text).toContain('shown-2');
    expect(text).not.toContain('hidden-1');
    expect(text).not.toContain('hidden-2');
  });

  it('switches outputs at run time', () => {
    root = tmpRoot();
    const hub = new LogHub({ name: 't', bindings: {}, file: root.path('first.log') });
    const log = hub.module('x');
    log.info({}, 'to-first');
    hub.setOutputs(`file:${root.path('second.log')}`);
    log.info({}, 'to-second');
    hub.flush();
    expect(hub.outputsText).toBe(`file:${root.path('second.log')}`);
    expect(existsSync(root.path('second.log'))).toBe(true);
    expect(readFileSync(root.path('second.log'), 'utf8')).toContain('to-second');
    expect(readFileSync(root.path('second.log'), 'utf8')).not.toContain('to-first');
  });

  // Found by the chaos suite: on a full disk a log call threw ENOSPC into whatever was logging
  // (a shim start aborted with QEMU running; calls failed with INTERNAL).
  it('never throws into the code that logs when the output cannot be written (a full disk)', () => {
    root = tmpRoot();
    const hub = new LogHub({ name: 't', bindings: {}, file: '/dev/full' });
    const log = hub.module('x');
    expect(() => {
      for (let i = 0; i < 1000; i++) log.error({ i, pad: 'x'.repeat(200) }, 'cannot be written');
      hub.flush();
    }).not.toThrow();
  });

  it('redacts secrets', () => {
    root = tmpRoot();
    const hub = new LogHub({ name: 't', bindings: {}, file: root.path('s.log') });
    hub.module('x').info({ auth: { password: 'hunter2' } }, 'login');
    hub.flush();
    expect(readFileSync(root.path('s.log'), 'utf8')).not.toContain('hunter2');
  });

  it('refuses unknown levels and outputs with INVALID_ARG', () => {
    expect(() => parseLogFilters('loud:x')).toThrowError(expect.objectContaining({ code: 'INVALID_ARG' }));
    expect(() => parseLogOutputs('syslog')).toThrowError(expect.objectContaining({ code: 'INVALID_ARG' }));
    expect(() => parseLogOutputs('file:relative.log')).toThrowError(expect.objectContaining({ code: 'INVALID_ARG' }));
    expect(parseLogOutputs('stderr file:/x/y.log')).toEqual([{ kind: 'stderr' }, { kind: 'file', path: '/x/y.log' }]);
  });
});
